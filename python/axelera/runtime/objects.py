"""axelera.runtime.objects: the same classes under the module path some programs written for
Axelera's runtime import (``from axelera.runtime import objects as axr``)."""

from . import (  # noqa: F401 - re-exported
    BoardType,
    Connection,
    ConnectionError,
    Context,
    DeviceInfo,
    DeviceInUse,
    Error,
    IncompatibleDevice,
    InternalError,
    InvalidArgument,
    InvalidConfiguration,
    Model,
    ModelInstance,
    NotImplemented,
    Object,
    Pending,
    TensorInfo,
    UnknownError,
)

__all__ = [
    "Object",
    "Context",
    "Connection",
    "Model",
    "ModelInstance",
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
