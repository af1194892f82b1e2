"""``python3 -m axelera.runtime.compile MODEL.onnx --calib ... [axcompile options]``: runs axcompile
(found as axelera.runtime.compile() finds it) with these arguments.

The Python function and its documentation are ``axelera.runtime.compile`` (implemented in
axelera/runtime/_compile.py). This module is only the ``-m`` entry point: the package does not
import it, so runpy runs it without warning that it had been imported first.
"""

import inspect
import sys
import types

from ._compile import compile, find_axcompile, main  # noqa: A004 - the same names as before

# Re-exported (programs imported find_axcompile from here), so pyflakes counts them as used.
__all__ = ["compile", "find_axcompile", "main"]


class _CallableModule(types.ModuleType):
    """This module, callable as the function it is named after.

    Importing ``axelera.runtime.compile`` (as older programs did for ``find_axcompile``, or as
    Sphinx and other tools walking the package do) makes Python bind the package's attribute
    ``compile`` to this module, so ``axr.compile(...)`` raised "'module' object is not callable";
    calling the module runs the function."""

    def __call__(self, *args, **kwargs):
        return compile(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
__signature__ = inspect.signature(compile)

if __name__ == "__main__":
    sys.exit(main())
