"""axelera.runtime.axruntime: the C API's device types (axruntime/axruntime.h) as ctypes.

In Axelera's runtime this module is the ctypes layer under the Python API; programs use it
directly only to make devices by hand (Voyager's tests build ``DeviceInfo`` structs to mock
``list_devices()`` and wrap them with ``axelera.runtime.DeviceInfo(raw)``). Here it holds just
those two types, laid out exactly as libaxruntime's ``axrDeviceInfo`` and ``axrBoardType``.
"""

import ctypes
import enum

__all__ = ["BoardType", "DeviceInfo"]

_TEXT = ctypes.c_char * 256


class BoardType(enum.IntEnum):
    """axrBoardType, under the names of Axelera's C enum (AXR_BOARD_METIS_<name>)."""

    ALPHA_PCIE = 0
    ALPHA_M2 = 1
    OMEGA_PCIE = 2
    OMEGA_M2 = 3
    OMEGA_DEVBOARD = 4
    OMEGA_SBC = 5
    UNKNOWN = 6


class DeviceInfo(ctypes.Structure):
    """axrDeviceInfo; positional construction follows the C field order."""

    _fields_ = [
        ("name", _TEXT),
        ("subdevice_count", ctypes.c_size_t),
        ("max_memory", ctypes.c_size_t),
        ("in_use", ctypes.c_int),
        ("in_use_by", _TEXT),
        ("board_type", ctypes.c_int),
        ("firmware_version", _TEXT),
        ("board_revision", ctypes.c_int),
        ("flashed_firmware_version", _TEXT),
        ("board_controller_firmware_version", _TEXT),
        ("board_controller_board_type", _TEXT),
    ]
