"""What programs written for Axelera's runtime rely on that the API doc leaves unsaid: each test
is one habit of such programs (Voyager's examples and app, users' detectors and classifiers),
run against a generated test package. docs/python-api.md lists the choices these pin down."""

import ctypes
import functools
import gc
import os

import numpy as np
import pytest

import axelera.runtime as axr


@pytest.fixture
def context():
    with axr.Context() as context:
        yield context


def test_instance_keeps_running_when_the_program_kept_no_connection(context, package):
    # A ROS2 detector node keeps only `self.instance = connection.load_model_instance(...)`;
    # its local Connection is gone once __init__ returns.
    model = context.load_model(package("resnet_tiny"))
    instance = context.device_connect(None, 1).load_model_instance(model, aipu_cores=4)
    gc.collect()
    inputs = [np.zeros(i.shape, i.dtype) for i in model.inputs()]
    outputs = [np.zeros(o.shape, o.dtype) for o in model.outputs()]
    instance.run(inputs, outputs)
    with pytest.raises(axr.DeviceInUse):  # its core is still reserved
        context.device_connect(None, 4)
    del instance
    gc.collect()
    # "All objects created by the runtime are owned by the Context that created them": the
    # core stays reserved with no Python reference left, until the Context is released.
    with pytest.raises(axr.DeviceInUse):
        context.device_connect(None, 4)
    context.release()
    with axr.Context() as other:
        other.device_connect(None, 4)


def test_releasing_children_after_their_context_is_harmless(package):
    # Voyager releases its device manager's Context, then the inference operator releases its
    # instance and connection.
    context = axr.Context()
    model = context.load_model(package("resnet_tiny"))
    connection = context.device_connect(None, 1)
    instance = connection.load_model_instance(model)
    context.release()
    instance.release()
    connection.release()
    model.release()
    assert instance.released and connection.released and model.released


def test_tensor_infos_of_a_model_work_as_voyagers_examples_use_them(context, package):
    model = context.load_model(package("resnet_tiny"))
    (info,) = model.inputs()
    (out,) = model.outputs()
    # axruntime_dblbuff.py: fields as functools.lru_cache keys (hashable, tuple padding pairs)
    cached = functools.lru_cache()(lambda *key: key)
    cached(info.unpadded_shape, info.scale, info.zero_point, tuple(info.padding))
    # axruntime_yolo11.py logs f"{scale:.6f}"; a classifier unpacks the four (lo, hi) pairs
    assert f"{info.scale:.6f}" and isinstance(info.zero_point, int)
    (_, _), (top, _), (left, _), (channel, _) = info.padding
    # a tracker pads only if any pair differs from (0, 0): the pairs compare equal to tuples
    assert any(p != (0, 0) for p in info.padding) and info.padding[0] == (0, 0)
    # quantise + np.pad(padding[1:]) of an HWC image, broadcast into the (1,H,W,C) buffer
    _, height, width, channels = info.unpadded_shape
    image = np.random.default_rng(0).uniform(-1, 1, (height, width, channels))
    quantised = np.round(image / info.scale + info.zero_point).clip(-128, 127).astype(np.int8)
    buffer = np.zeros(info.shape, info.dtype)
    buffer[:] = np.pad(quantised, info.padding[1:], constant_values=info.zero_point)
    assert (buffer[0, top:top + height, left:left + width, channel:channel + channels]
            == quantised).all()
    assert (buffer[..., channels:] == info.zero_point).all()
    output = np.zeros(out.shape, out.dtype)
    context.device_connect(None, 1).load_model_instance(model).run([buffer], [output])
    # depad by slices built from the padding, squeeze, dequantise, argmax (the quickstart)
    depadded = output[tuple(slice(b, -e if e else None) for b, e in out.padding)].squeeze()
    scores = (depadded.astype(np.float32) - out.zero_point) * out.scale
    assert scores.shape == (out.unpadded_shape[-1],) and 0 <= int(np.argmax(scores)) < 1000


def test_device_info_made_from_a_c_struct_as_voyagers_tests_do(context):
    # Voyager's device-manager tests: runtime.DeviceInfo(runtime.axruntime.DeviceInfo(name, 4, 0,
    # 0, b'', board_type, b'', 0)), with board_type a runtime.axruntime.BoardType member.
    from axelera import runtime

    raw = runtime.axruntime.DeviceInfo(b"metis-0:1:0", 4, 0, 0, b"",
                                       runtime.axruntime.BoardType.OMEGA_M2, b"", 0)
    device = runtime.DeviceInfo(raw)
    assert device.name == "metis-0:1:0" and device.subdevice_count == 4
    assert device.board_type is axr.BoardType.m2 and device.in_use is False
    assert context.device_connect(device, 4).device_name == "metis-0:1:0"


def test_axruntime_device_info_has_the_c_librarys_layout():
    library = os.environ.get("AXSTREAM_CAPI_LIBRARY")
    if not library:
        pytest.skip("AXSTREAM_CAPI_LIBRARY (libaxruntime) is set by `meson test --suite python`")
    from axelera.runtime import axruntime

    capi = ctypes.CDLL(library)
    capi.axr_create_context.restype = ctypes.c_void_p
    capi.axr_list_devices.restype = ctypes.c_size_t
    capi.axr_list_devices.argtypes = [ctypes.c_void_p,
                                      ctypes.POINTER(ctypes.POINTER(axruntime.DeviceInfo))]
    capi.axr_destroy.argtypes = [ctypes.c_void_p]
    handle = capi.axr_create_context()
    try:
        devices = ctypes.POINTER(axruntime.DeviceInfo)()
        assert capi.axr_list_devices(handle, ctypes.byref(devices)) == 1
        device = axr.DeviceInfo(devices[0])
        with axr.Context() as context:
            (expected,) = context.list_devices()
        assert device == expected
        assert axruntime.BoardType(devices[0].board_type) is axruntime.BoardType.OMEGA_PCIE
    finally:
        capi.axr_destroy(handle)
