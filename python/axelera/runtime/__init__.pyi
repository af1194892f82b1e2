"""Type stubs for axelera.runtime (see axelera-runtime-api.md)."""

import builtins
import enum
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple, Type, Union

import numpy as np

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

_Device = Union["DeviceInfo", str]
_KwValue = Union[bool, int, float, str]

class BoardType(enum.Enum):
    alpha_pcie = 0
    alpha_m2 = 1
    pcie = 2
    m2 = 3
    devboard = 4
    sbc = 5
    unknown = 6

class DeviceInfo:
    name: str
    subdevice_count: int
    max_memory: int
    in_use: bool
    in_use_by: str
    board_type: BoardType
    firmware_version: str
    board_revision: int
    flashed_firmware_version: str
    board_controller_firmware_version: str
    board_controller_board_type: str
    in_use_count: int
    def __init__(
        self,
        name: str,
        subdevice_count: int = ...,
        max_memory: int = ...,
        in_use: bool = ...,
        in_use_by: str = ...,
        board_type: BoardType = ...,
        firmware_version: str = ...,
        board_revision: int = ...,
        flashed_firmware_version: str = ...,
        board_controller_firmware_version: str = ...,
        board_controller_board_type: str = ...,
        in_use_count: int = ...,
    ) -> None: ...

class TensorInfo:
    shape: Tuple[int, ...]
    dtype: np.dtype
    name: str
    padding: List[Tuple[int, int]]
    scale: float
    zero_point: int
    def __init__(
        self,
        shape: Sequence[int],
        dtype: Any = ...,
        name: str = ...,
        padding: Optional[Sequence[Tuple[int, int]]] = ...,
        scale: float = ...,
        zero_point: int = ...,
    ) -> None: ...
    @property
    def size(self) -> int: ...
    @property
    def unpadded_shape(self) -> Tuple[int, ...]: ...

class Object:
    @property
    def context(self) -> Context: ...
    @property
    def released(self) -> bool: ...
    def release(self) -> None: ...

class Context(Object):
    def __init__(self) -> None: ...
    def __enter__(self) -> Context: ...
    def __exit__(self, *args: Any) -> bool: ...
    def release(self) -> None: ...
    def list_devices(self) -> List[DeviceInfo]: ...
    def configure_device(self, device: _Device, **kwargs: _KwValue) -> bool: ...
    def device_ready(self, device: _Device) -> bool: ...
    def read_device_configuration(self, device: _Device) -> Dict[str, str]: ...
    def device_connect(
        self, device: Optional[_Device] = None, num_sub_devices: int = 1, **kwargs: _KwValue
    ) -> Connection: ...
    def load_model(self, path: Union[str, os.PathLike]) -> Model: ...

class Connection(Object):
    def load_model_instance(self, model: Model, **kwargs: Union[bool, int]) -> ModelInstance: ...
    @property
    def device_name(self) -> str: ...
    @property
    def num_sub_devices(self) -> int: ...

class Model(Object):
    @property
    def properties(self) -> Dict[str, str]: ...
    @property
    def name(self) -> str: ...
    def inputs(self) -> List[TensorInfo]: ...
    def outputs(self) -> List[TensorInfo]: ...

class RunProfile:
    @property
    def host_total(self) -> float: ...
    @property
    def device_compute(self) -> float: ...
    @property
    def per_core(self) -> List[float]: ...
    @property
    def bytes_copied(self) -> int: ...
    @property
    def runs(self) -> int: ...

class DmaBuffer:
    def __init__(self, size: int, name: str = ...) -> None: ...
    @property
    def fd(self) -> int: ...
    def fileno(self) -> int: ...
    def dup_fd(self) -> int: ...
    @property
    def size(self) -> int: ...
    @property
    def backend(self) -> str: ...
    @property
    def is_dmabuf(self) -> bool: ...
    def begin_cpu_access(self, mode: str = ...) -> None: ...
    def end_cpu_access(self, mode: str = ...) -> None: ...
    def array(self, shape: Sequence[int], dtype: Any = ...) -> np.ndarray: ...

_FdArgument = Union[int, DmaBuffer, Tuple[int, int]]

class ModelInstance(Object):
    def run(
        self,
        inputs: Sequence[Union[np.ndarray, _FdArgument]],
        outputs: Sequence[Union[np.ndarray, _FdArgument]],
    ) -> None: ...
    def profile(self) -> RunProfile: ...
    @property
    def options(self) -> Dict[str, Union[bool, int]]: ...
    @property
    def model(self) -> Model: ...

class Error(Exception): ...
class ConnectionError(Error, builtins.ConnectionError): ...
class DeviceInUse(Error, RuntimeError): ...
class IncompatibleDevice(Error, RuntimeError): ...
class InternalError(Error, RuntimeError): ...
class InvalidArgument(Error, ValueError): ...
class InvalidConfiguration(Error, ValueError): ...
class NotImplemented(Error, NotImplementedError): ...
class Pending(Error, RuntimeError): ...
class UnknownError(Error, RuntimeError): ...

def compile(
    model: Union[str, "os.PathLike[str]"],
    calib: Union[str, "os.PathLike[str]"],
    output_dir: Optional[Union[str, "os.PathLike[str]"]] = None,
    **options: Any,
) -> str: ...
