"""Plain value types of axelera.runtime: BoardType, DeviceInfo and TensorInfo.

They are pure Python (an enum and two dataclasses) so that they behave exactly like the
documented types: BoardType is a real ``enum.Enum``, TensorInfo is constructible by users
and works directly with ``numpy.pad``. The C++ extension converts the runtime's structs
into these classes.
"""

# No `from __future__ import annotations`: the classes' __module__ is axelera.runtime, whose
# namespace has no Tuple, Optional or np, so string annotations made typing.get_type_hints() (and
# what builds on it: pydantic, cattrs, inspect.signature(eval_str=True)) raise NameError.
import dataclasses
import enum
import math
import operator
from typing import Any, List, Optional, Tuple

import numpy as np

from . import axruntime as _c

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

    ``DeviceInfo(raw)`` with a C struct ``axelera.runtime.axruntime.DeviceInfo`` takes every
    field from it (as Axelera's runtime does; Voyager's tests make devices that way).
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

    def __post_init__(self) -> None:
        raw = self.name
        if not isinstance(raw, _c.DeviceInfo):
            return
        text = {field: getattr(raw, field).decode("utf-8", "replace")
                for field in ("name", "in_use_by", "firmware_version", "flashed_firmware_version",
                              "board_controller_firmware_version", "board_controller_board_type")}
        try:
            board_type = BoardType(raw.board_type)
        except ValueError:
            board_type = BoardType.unknown
        values = dict(text, subdevice_count=raw.subdevice_count, max_memory=raw.max_memory,
                      in_use=raw.in_use > 0, board_type=board_type,
                      board_revision=raw.board_revision, in_use_count=raw.in_use)
        for field, value in values.items():
            object.__setattr__(self, field, value)  # frozen: set once, here

    def __str__(self) -> str:
        return self.name


def _invalid_argument(message: str) -> Exception:
    # The extension defines the exception classes; fall back to ValueError (their builtin
    # base) only if this module is used without it.
    try:
        from . import InvalidArgument
    except ImportError:  # pragma: no cover - extension missing
        return ValueError(message)
    return InvalidArgument(message)


def _exact_int(value: Any) -> int:
    """value as an int when it is one (a Python or numpy integer, or an integral float such as
    JSON's 3.0); anything else raises TypeError, so 1.5, True or "3" are never quietly turned
    into 1, 1 or 3."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value) or not float(value).is_integer():
            raise TypeError(value)
        return int(value)
    return operator.index(value)


def _real(value: Any) -> float:
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise TypeError(value)
    return float(value)


def _int_sequence(value: Any) -> Tuple[int, ...]:
    # A str or bytes is a sequence too, but "12" is not the shape (1, 2).
    if isinstance(value, (str, bytes)):
        raise TypeError(value)
    return tuple(_exact_int(v) for v in value)


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
    dtype: np.dtype[Any] = np.int8  # type: ignore[assignment]
    name: str = ""
    padding: Optional[List[Tuple[int, int]]] = None
    scale: float = 1.0
    zero_point: int = 0

    def __post_init__(self) -> None:
        try:
            self.shape = _int_sequence(self.shape)
        except (TypeError, ValueError):
            raise _invalid_argument(
                f"TensorInfo shape: expected a sequence of ints, got {self.shape!r}") from None
        if any(d < 0 for d in self.shape):
            raise _invalid_argument(
                f"TensorInfo shape: expected non-negative dimensions, got {self.shape}")
        # np.dtype(None) is float64: a None here is a mistake, not a tensor of doubles.
        if self.dtype is None:
            raise _invalid_argument("TensorInfo dtype: expected a numpy dtype, got None")
        try:
            self.dtype = np.dtype(self.dtype)
        except TypeError:
            # bfloat16 is an ONNX type a model may use, but numpy has none to hold it.
            hint = " (numpy has no bfloat16)" if str(self.dtype) == "bfloat16" else ""
            raise _invalid_argument(
                f"TensorInfo dtype: expected a numpy dtype, got {self.dtype!r}{hint}") from None
        # A tensor holds numbers: an object, string or record dtype has no bytes a device or a
        # quantisation could use.
        if self.dtype.kind not in "biufc" or self.dtype.fields is not None:
            raise _invalid_argument(
                f"TensorInfo dtype: expected a numeric numpy dtype, got {self.dtype!r}")
        if self.padding is None:
            self.padding = [(0, 0)] * len(self.shape)
        else:
            try:
                self.padding = [_int_sequence(p) for p in self.padding]  # type: ignore
            except (TypeError, ValueError):
                raise _invalid_argument(
                    f"TensorInfo padding: expected {len(self.shape)} (start, end) pairs of ints "
                    f"for shape {self.shape}, got {self.padding!r}") from None
            if len(self.padding) != len(self.shape) or any(len(p) != 2 for p in self.padding):
                raise _invalid_argument(
                    f"TensorInfo padding: expected {len(self.shape)} (start, end) pairs for "
                    f"shape {self.shape}, got {self.padding}")
            for dim, (begin, end) in zip(self.shape, self.padding):
                if begin < 0 or end < 0 or begin + end > dim:
                    raise _invalid_argument(
                        f"TensorInfo padding: expected non-negative pads within shape "
                        f"{self.shape}, got {self.padding}")
        if not isinstance(self.name, str):
            raise _invalid_argument(f"TensorInfo name: expected a str, got {self.name!r}")
        # A number, not its text: float("0.5") would take a str the dataclass field rejects.
        for field, convert in (("scale", _real), ("zero_point", _exact_int)):
            try:
                setattr(self, field, convert(getattr(self, field)))
            except (TypeError, ValueError):
                raise _invalid_argument(
                    f"TensorInfo {field}: expected {'a float' if convert is _real else 'an int'}, "
                    f"got {getattr(self, field)!r}") from None
        # What a model package's manifest may hold (docs/model-package.md): a finite scale > 0
        # (x / scale quantises) and, for an integer tensor, a zero_point its dtype holds (the
        # doc's np.pad(..., constant_values=zero_point) writes it into the tensor).
        if not math.isfinite(self.scale) or self.scale <= 0:
            raise _invalid_argument(
                f"TensorInfo scale: expected a finite number > 0, got {self.scale!r}")
        if self.dtype.kind in "iu":
            limits = np.iinfo(self.dtype)
            if not limits.min <= self.zero_point <= limits.max:
                raise _invalid_argument(
                    f"TensorInfo zero_point: expected an int in [{limits.min}, {limits.max}] for "
                    f"dtype {self.dtype}, got {self.zero_point}")

    # Equal TensorInfos hash alike (a set of a model's tensors, functools.lru_cache keyed by one).
    # The fields stay assignable: like any key, one must not be changed while in a set or dict.
    def __hash__(self) -> int:
        shape = self._assigned_ints("shape")
        padding = (tuple(self._assigned_ints("padding")) if self.padding is not None else
                   ((0, 0),) * len(shape))
        return hash((shape, np.dtype(self.dtype), self.name, padding, self.scale,
                     self.zero_point))

    # The fields stay plain, assignable dataclass fields, so the properties read them as a user
    # may have set them after construction (info.dtype = np.float32, info.padding = None).
    def _assigned_ints(self, field: str) -> Any:
        """shape as ints, or padding as pairs of ints, as assigned: refused as the constructor
        refuses them, never truncated (a shape assigned (1.5, 2) is not 2 bytes)."""
        value = getattr(self, field)
        try:
            if field == "shape":
                return _int_sequence(value)
            return [_int_sequence(pair) for pair in value]
        except (TypeError, ValueError):
            expected = "a sequence of ints" if field == "shape" else "(start, end) pairs of ints"
            raise _invalid_argument(
                f"TensorInfo {field}: expected {expected}, got {value!r}") from None

    @property
    def size(self) -> int:
        """The size of the (padded) tensor in bytes."""
        return math.prod(self._assigned_ints("shape")) * np.dtype(self.dtype).itemsize

    @property
    def unpadded_shape(self) -> Tuple[int, ...]:
        """The shape of the tensor without padding."""
        shape = self._assigned_ints("shape")
        padding = self._assigned_ints("padding") if self.padding is not None else [(0, 0)] * len(
            shape)
        # zip would quietly drop dimensions when shape or padding was assigned another rank.
        if len(padding) != len(shape):
            raise _invalid_argument(
                f"TensorInfo unpadded_shape: padding {list(padding)} has {len(padding)} "
                f"(start, end) pairs, but shape {shape} has {len(shape)} dimensions")
        if any(len(pair) != 2 for pair in padding):
            raise _invalid_argument(
                f"TensorInfo unpadded_shape: padding {padding}: expected (start, end) pairs")
        return tuple(d - b - e for d, (b, e) in zip(shape, padding))
