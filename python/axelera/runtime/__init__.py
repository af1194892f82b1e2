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

# Installed, the extension sits inside this package; in a build tree it is the top-level
# module `_axelera_runtime` found through PYTHONPATH=<build>/python.
if _importlib_util.find_spec(__name__ + "._axelera_runtime") is not None:
    from . import _axelera_runtime as _ext
else:
    import _axelera_runtime as _ext  # type: ignore[no-redef]

__version__ = _ext.__version__  # axstream's version (meson project())

from ._types import BoardType, DeviceInfo, TensorInfo
from ._compile import compile  # noqa: A001 - axcompile entry point (docs/compiler.md)

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
    "compile",
]
