"""axelera.runtime.objects: the same classes under the module path some programs written for
Axelera's runtime import (``from axelera.runtime import objects as axr``)."""

from . import *  # noqa: F401,F403 - the package's names, re-exported
from . import __all__ as _package_names

__all__ = list(_package_names)
