"""axelera.runtime — run compiled models on Metis AIPUs (here: axstream's simulated Metis).

Typical use::

    import numpy as np
    import axelera.runtime as axr

    with axr.Context() as context:
        model = context.load_model("models/resnet50")
        connection = context.device_connect(None, 1)
        instance = connection.load_model_instance(model, num_sub_devices=1, aipu_cores=1)
        inputs = [np.zeros(i.shape, i.dtype) for i in model.inputs()]
        outputs = [np.zeros(o.shape, o.dtype) for o in model.outputs()]
        instance.run(inputs, outputs)

Objects: Object, Context, Connection, Model, ModelInstance. Types: BoardType, DeviceInfo,
TensorInfo. axstream extensions: RunProfile (ModelInstance.profile()), DmaBuffer (zero-copy
buffers for instances loaded with input_dmabuf/output_dmabuf). Exceptions: ConnectionError, DeviceInUse, IncompatibleDevice, InternalError,
InvalidArgument, InvalidConfiguration, NotImplemented, Pending, UnknownError (all subclasses of
axelera.runtime.Error and of a fitting builtin, e.g. InvalidArgument is also a ValueError).
"""

import importlib.util as _importlib_util
import sys as _sys

# Installed, the extension sits inside this package; in a build tree it is the top-level
# module `_axelera_runtime` found through PYTHONPATH=<build>/python.
if _importlib_util.find_spec(__name__ + "._axelera_runtime") is not None:
    from . import _axelera_runtime as _ext
else:
    try:
        import _axelera_runtime as _ext  # type: ignore[no-redef]
    except ModuleNotFoundError as _error:
        if _error.name != "_axelera_runtime":
            raise
        # Half of the build-tree path (PYTHONPATH=python only) or another interpreter: say
        # what is missing instead of "No module named '_axelera_runtime'".
        raise ModuleNotFoundError(
            "axelera.runtime: its compiled part _axelera_runtime is not on sys.path; from the "
            "repository root use PYTHONPATH=python:build/python (<source>/python:<build>/python), "
            "or meson install. It is built for Debian's /usr/bin/python3; this is "
            f"{_sys.executable} (Python {_sys.version_info[0]}.{_sys.version_info[1]})",
            name="_axelera_runtime") from None

__version__ = _ext.__version__  # axstream's version (meson project())

from ._types import BoardType, DeviceInfo, TensorInfo
# axcompile's entry point (docs/compiler.md): axr.compile, but not in __all__, so that
# `from axelera.runtime import *` leaves the builtin compile() alone.
from . import _compile

compile = _compile.compile  # noqa: A001

Object = _ext.Object
Context = _ext.Context
Connection = _ext.Connection
Model = _ext.Model
ModelInstance = _ext.ModelInstance
RunProfile = _ext.RunProfile
DmaBuffer = _ext.DmaBuffer

Error = _ext.Error
ConnectionError = _ext.ConnectionError  # noqa: A001 - the documented name
DeviceInUse = _ext.DeviceInUse
IncompatibleDevice = _ext.IncompatibleDevice
InternalError = _ext.InternalError
InvalidArgument = _ext.InvalidArgument
InvalidConfiguration = _ext.InvalidConfiguration
NotImplemented = _ext.NotImplemented  # noqa: A001 - the documented name
Pending = _ext.Pending
UnknownError = _ext.UnknownError

for _cls in (Object, Context, Connection, Model, ModelInstance, RunProfile, DmaBuffer,
             BoardType, DeviceInfo, TensorInfo):
    _cls.__module__ = __name__
del _cls

__all__ = [
    "Object",
    "Context",
    "Connection",
    "Model",
    "ModelInstance",
    "RunProfile",
    "DmaBuffer",
    "BoardType",
    "DeviceInfo",
    "TensorInfo",
    "Error",
    "ConnectionError",
    "DeviceInUse",
    "IncompatibleDevice",
    "InternalError",
    "InvalidArgument",
    "InvalidConfiguration",
    "NotImplemented",
    "Pending",
    "UnknownError",
]
