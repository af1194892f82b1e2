"""``python3 -m axelera.runtime.compile MODEL.onnx --calib ... [axcompile options]``: runs axcompile
(found as axelera.runtime.compile() finds it) with these arguments.

The Python function and its documentation are ``axelera.runtime.compile`` (implemented in
axelera/runtime/_compile.py). This module is only the ``-m`` entry point: the package does not
import it, so runpy runs it without warning that it had been imported first.
"""

import sys

from ._compile import compile, find_axcompile, main  # noqa: F401,A004 - the same names as before

if __name__ == "__main__":
    sys.exit(main())
