"""Plain value types of axelera.runtime: BoardType, DeviceInfo and TensorInfo.

They are pure Python (an enum and two dataclasses) so that they behave exactly like the
documented types: BoardType is a real ``enum.Enum``, TensorInfo is constructible by users
and works directly with ``numpy.pad``. The C++ extension converts the runtime's structs
into these classes.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import List, Optional, Tuple

import numpy as np

__all__ = ["BoardType", "DeviceInfo", "TensorInfo"]


class BoardType(enum.Enum):
    """The kind of board a device sits on."""

    alpha_pcie = 0
    alpha_m2 = 1
    pcie = 2
    m2 = 3
    devboard = 4
    sbc = 5
    unknown = 6


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """The result of enumerating the available Axelera devices.

    DeviceInfo is also used to indicate which device to configure, read the
    configuration of, or connect to (pass it as the ``device`` argument of
    :class:`Context` methods).

    Attributes:
        name: The name of the device, for example ``'metis-0:1:0'``.
        subdevice_count: The number of sub-devices (AIPU cores) on the device; 4 for Metis.
        max_memory: The maximum memory available on the device, in bytes.
        in_use: True when at least one sub-device is reserved by any process.
        in_use_by: ``user:pid`` of each process holding sub-devices, comma separated.
        board_type: The board type of the device.
        firmware_version: The firmware version, e.g. ``v1.1.0-rc5-2-g1234567``.
        board_revision: The board revision.
        flashed_firmware_version: The version of the firmware stored in flash.
        board_controller_firmware_version: The board controller firmware version.
        board_controller_board_type: The board controller board type.
        in_use_count: (axstream extra) how many sub-devices are currently reserved.
    """

    name: str
    subdevice_count: int = 0
    max_memory: int = 0
    in_use: bool = False
    in_use_by: str = ""
    board_type: BoardType = BoardType.unknown
    firmware_version: str = ""
    board_revision: int = 0
    flashed_firmware_version: str = ""
    board_controller_firmware_version: str = ""
    board_controller_board_type: str = ""
    in_use_count: int = 0

    def __str__(self) -> str:
        return self.name


def _invalid_argument(message: str) -> Exception:
    # The extension defines the exception classes; fall back to ValueError (their builtin
    # base) only if this module is used without it.
    try:
        from . import InvalidArgument  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - extension missing
        return ValueError(message)
    return InvalidArgument(message)


@dataclasses.dataclass
class TensorInfo:
    """Information about a tensor input/output.

    This includes quantization and padding information from the model's
    manifest.json. To quantize and pad a tensor::

        >>> input = TensorInfo((1, 230, 240, 3), padding=[(0, 0), (3, 3), (3, 13), (0, 1)])
        >>> src = np.zeros(input.unpadded_shape, dtype=np.float32)
        >>> quant = np.round((src / input.scale) + input.zero_point).clip(-128, 127).astype(np.int8)
        >>> padded = np.pad(quant, input.padding, constant_values=input.zero_point)

    To depad and dequantize a tensor::

        >>> output = TensorInfo((1, 1, 1, 1024), padding=[(0, 0), (0, 0), (0, 0), (0, 24)])
        >>> out = np.zeros(output.shape, dtype=np.int8)
        >>> depadded = out[tuple(slice(b, -e if e else None) for b, e in output.padding)]
        >>> dequant = (depadded.astype(np.float32) - output.zero_point) * output.scale

    Attributes:
        shape: The (padded) shape of the tensor.
        dtype: The data type of the tensor (``np.int8`` by default).
        name: The name of the tensor.
        padding: Padding per dimension as ``[(start0, end0), (start1, end1), ...]`` (see
            ``numpy.pad``); defaults to no padding, ``[(0, 0)] * len(shape)``.
        scale: Scale for quantization/dequantization.
        zero_point: Zero-point for quantization/dequantization.
    """

    shape: Tuple[int, ...]
    dtype: np.dtype = np.int8  # type: ignore[assignment]
    name: str = ""
    padding: Optional[List[Tuple[int, int]]] = None  # type: ignore[assignment]
    scale: float = 1.0
    zero_point: int = 0

    def __post_init__(self) -> None:
        try:
            self.shape = tuple(int(d) for d in self.shape)
        except TypeError:
            raise _invalid_argument(
                f"TensorInfo shape: expected a sequence of ints, got {self.shape!r}") from None
        if any(d < 0 for d in self.shape):
            raise _invalid_argument(
                f"TensorInfo shape: expected non-negative dimensions, got {self.shape}")
        self.dtype = np.dtype(self.dtype)
        if self.padding is None:
            self.padding = [(0, 0)] * len(self.shape)
        else:
            self.padding = [tuple(int(v) for v in p) for p in self.padding]  # type: ignore
            if len(self.padding) != len(self.shape) or any(len(p) != 2 for p in self.padding):
                raise _invalid_argument(
                    f"TensorInfo padding: expected {len(self.shape)} (start, end) pairs for "
                    f"shape {self.shape}, got {self.padding}")
            for dim, (begin, end) in zip(self.shape, self.padding):
                if begin < 0 or end < 0 or begin + end > dim:
                    raise _invalid_argument(
                        f"TensorInfo padding: expected non-negative pads within shape "
                        f"{self.shape}, got {self.padding}")
        self.scale = float(self.scale)
        self.zero_point = int(self.zero_point)

    @property
    def size(self) -> int:
        """The size of the (padded) tensor in bytes."""
        return int(math.prod(self.shape)) * self.dtype.itemsize

    @property
    def unpadded_shape(self) -> Tuple[int, ...]:
        """The shape of the tensor without padding."""
        # (__post_init__ always sets padding; "or ()" is for the type checker.)
        return tuple(d - b - e for d, (b, e) in zip(self.shape, self.padding or ()))


