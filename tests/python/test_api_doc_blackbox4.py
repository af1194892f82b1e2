"""A fourth black-box audit of axelera.runtime, written from Axelera's API doc alone
(/work/shared/axelera-runtime-api.md), as an outside tester would: every documented class,
method, argument (positional and keyword), default, property type, enum, exception, the doc's
code examples run verbatim, lifetimes (objects outliving their Context, released parents),
threads and wrong inputs.

Model paths in the doc's examples are the generated test packages (AXSTREAM_TEST_MODELS):
resnet_tiny (one input (1,32,32,4) int8, channel padding (0,1); one output (1,1,1,1024),
padding (0,24)), resnet_tiny_b4 (batch 4), resnet_tiny_pre/_post (with a preamble/postamble
graph) and two_outputs. Each package's reference/ holds a padded input and its expected padded
outputs, so results are checked, not only shapes.
"""

import dataclasses
import doctest
import enum
import gc
import inspect
import mmap
import os
import pathlib
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from conftest import empty_outputs, random_inputs, reset_devices

import axelera.runtime as axr

DOC_EXCEPTIONS = ("ConnectionError", "DeviceInUse", "IncompatibleDevice", "InternalError",
                  "InvalidArgument", "InvalidConfiguration", "NotImplemented", "Pending",
                  "UnknownError")
ALL_ERRORS = tuple(getattr(axr, name) for name in DOC_EXCEPTIONS)

LOAD_MODEL_INSTANCE_KWARGS = {  # the doc's table: name -> default
    "aipu_cores": 0, "num_sub_devices": 0, "input_dmabuf": 0, "device_profiling": 0,
    "host_profiling": 0, "output_dmabuf": 0, "double_buffer": 0, "elf_in_ddr": 1,
}


def reference_arrays(package_dir, model):
    """The package's reference input(s) and expected output(s), shaped as the TensorInfos."""
    ref = pathlib.Path(package_dir) / "reference"
    inputs = [np.fromfile(ref / f"input_{i}.bin", dtype=info.dtype).reshape(info.shape)
              for i, info in enumerate(model.inputs())]
    expected = [np.fromfile(ref / f"output_{i}.bin", dtype=info.dtype).reshape(info.shape)
                for i, info in enumerate(model.outputs())]
    return inputs, expected


def use_devices(monkeypatch, count, subdevices=None):
    monkeypatch.setenv("AXSTREAM_SIM_DEVICES", str(count))
    if subdevices is not None:
        monkeypatch.setenv("AXSTREAM_SIM_SUBDEVICES", str(subdevices))
    reset_devices()


def wait_ready(context, device, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not context.device_ready(device):
        assert time.monotonic() < deadline, f"{device.name} never became ready"
        time.sleep(0.02)


# --------------------------------------------------------------------------------------------
# The doc's code examples, verbatim
# --------------------------------------------------------------------------------------------


def test_doc_example_context_with_statement_lists_devices():
    # "with axr.Context() as context:\n    devices = context.list_devices()"
    with axr.Context() as context:
        devices = context.list_devices()
    assert type(devices) is list
    assert len(devices) == 1
    assert isinstance(devices[0], axr.DeviceInfo)


def test_doc_example_configure_two_devices_verbatim(monkeypatch):
    use_devices(monkeypatch, 2)
    with axr.Context() as context:
        device0, device1 = context.list_devices()
        # The doc's snippet, unchanged (it needs only `time`, `context`, device0 and device1).
        res0 = context.configure_device(device0, clock_profile=1000)
        res1 = context.configure_device(device1, clock_profile=1000)
        assert type(res0) is bool and type(res1) is bool
        deadline = time.monotonic() + 10
        while not res0 or not res1:
            time.sleep(0.05)
            res0 = context.device_ready(device0)
            res1 = context.device_ready(device1)
            assert time.monotonic() < deadline
        for device in (device0, device1):
            config = context.read_device_configuration(device)
            for core in range(4):
                assert config[f"clock_profile_core_{core}"] == "1000", config


TENSOR_INFO_QUANTIZE_EXAMPLE = """
>>> input = TensorInfo((1, 230, 240, 3), padding=[(0, 0), (3, 3), (3, 13), (0, 1)])
>>> src = np.zeros(input.unpadded_shape, dtype=np.float32)
>>> quant = np.round((src / input.scale) + input.zero_point).clip(-128, 127).astype(np.int8)
>>> padded = np.pad(quant, input.padding, constant_values=input.zero_point)
"""

TENSOR_INFO_DEQUANTIZE_EXAMPLE = """
>>> output = TensorInfo((1, 1, 1, 1024), padding=[(0, 0), (0, 0), (0, 0), (0, 24)])
>>> out = np.zeros(output.shape, dtype=np.int8)
>>> depadded = out[tuple(slice(b, -e if e else None) for b, e in output.padding)]
>>> dequant = (depadded.astype(np.float32) - output.zero_point) * output.scale
"""


def run_doctest(text):
    globs = {"TensorInfo": axr.TensorInfo, "np": np}
    test = doctest.DocTestParser().get_doctest(text, globs, "doc", None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test, clear_globs=False)
    assert runner.failures == 0
    return test.globs


def test_doc_example_quantize_and_pad_verbatim():
    globs = run_doctest(TENSOR_INFO_QUANTIZE_EXAMPLE)
    assert globs["input"].unpadded_shape == (1, 224, 224, 2)
    assert globs["padded"].shape == (1, 230, 240, 3)
    assert globs["padded"].dtype == np.int8
    assert globs["padded"].shape == globs["input"].shape


def test_doc_example_depad_and_dequantize_verbatim():
    globs = run_doctest(TENSOR_INFO_DEQUANTIZE_EXAMPLE)
    assert globs["depadded"].shape == (1, 1, 1, 1000)
    assert globs["dequant"].dtype == np.float32
    assert globs["output"].unpadded_shape == globs["depadded"].shape


def test_doc_examples_round_trip_a_real_model(package):
    # The doc's quantise/pad and depad/dequantise recipe with a real model's TensorInfos: the
    # quantised reference input gives the package's reference output.
    path = package("resnet_tiny")
    with axr.Context() as context:
        model = context.load_model(path)
        connection = context.device_connect(None, 1)
        instance = connection.load_model_instance(model)
        inputs, expected = reference_arrays(path, model)
        input = model.inputs()[0]
        # Dequantise the reference input's core and quantise it again with the doc's formula.
        core = inputs[0][tuple(slice(b, -e if e else None) for b, e in input.padding)]
        src = (core.astype(np.float32) - input.zero_point) * input.scale
        quant = np.round((src / input.scale) + input.zero_point).clip(-128, 127).astype(np.int8)
        padded = np.pad(quant, input.padding, constant_values=input.zero_point)
        assert padded.shape == input.shape
        outputs = empty_outputs(model)
        instance.run([padded], outputs)
        output = model.outputs()[0]
        depadded = outputs[0][tuple(slice(b, -e if e else None) for b, e in output.padding)]
        exp = expected[0][tuple(slice(b, -e if e else None) for b, e in output.padding)]
        np.testing.assert_array_equal(depadded, exp)
        dequant = (depadded.astype(np.float32) - output.zero_point) * output.scale
        assert dequant.shape == output.unpadded_shape
        assert np.isfinite(dequant).all()


# --------------------------------------------------------------------------------------------
# Object, Context: construction, with, release, children
# --------------------------------------------------------------------------------------------


def test_every_runtime_object_is_an_object_whose_context_is_its_owner(package):
    with axr.Context() as context:
        assert isinstance(context, axr.Object)
        model = context.load_model(package("resnet_tiny"))
        connection = context.device_connect()
        instance = connection.load_model_instance(model)
        for obj, cls in ((connection, axr.Connection), (model, axr.Model),
                         (instance, axr.ModelInstance)):
            assert isinstance(obj, cls)
            assert isinstance(obj, axr.Object)
            assert obj.context is context
    for cls in (axr.Context, axr.Connection, axr.Model, axr.ModelInstance):
        assert issubclass(cls, axr.Object)


def test_object_is_abstract():
    # "Abstract base class for all objects in the runtime."
    with pytest.raises(TypeError):
        axr.Object()


def test_context_enter_returns_the_context_itself():
    context = axr.Context()
    with context as entered:
        assert entered is context
        assert entered.list_devices()


def test_context_with_block_exception_propagates_unchanged_and_releases(package):
    class Marker(Exception):
        pass

    marker = Marker("boom")
    with pytest.raises(Marker) as caught:
        with axr.Context() as context:
            context.device_connect(num_sub_devices=4)
            raise marker
    assert caught.value is marker
    # The with block released the context, so its four sub-devices are free again.
    with axr.Context() as other:
        other.device_connect(num_sub_devices=4)
    with pytest.raises(ALL_ERRORS):
        context.list_devices()


def test_context_release_twice_and_release_inside_with_are_harmless():
    with axr.Context() as context:
        context.release()
        context.release()
    context.release()


@pytest.mark.parametrize("call", [
    lambda c, d: c.list_devices(),
    lambda c, d: c.device_connect(),
    lambda c, d: c.configure_device(d, clock_profile=1000),
    lambda c, d: c.device_ready(d),
    lambda c, d: c.read_device_configuration(d),
    lambda c, d: c.load_model("/nonexistent"),
], ids=["list_devices", "device_connect", "configure_device", "device_ready",
        "read_device_configuration", "load_model"])
def test_every_context_method_raises_after_release(call):
    context = axr.Context()
    device = context.list_devices()[0]
    context.release()
    with pytest.raises(ALL_ERRORS) as caught:
        call(context, device)
    assert str(caught.value)


def test_context_release_releases_all_children(package):
    path = package("resnet_tiny")
    context = axr.Context()
    model = context.load_model(path)
    connection = context.device_connect(num_sub_devices=4)
    instance = connection.load_model_instance(model)
    inputs, outputs = random_inputs(model), empty_outputs(model)
    instance.run(inputs, outputs)
    context.release()
    with pytest.raises(ALL_ERRORS):
        instance.run(inputs, outputs)
    with pytest.raises(ALL_ERRORS):
        connection.load_model_instance(model)
    with pytest.raises(ALL_ERRORS):
        model.inputs()
    with pytest.raises(ALL_ERRORS):
        model.outputs()
    # The reservation went with it.
    with axr.Context() as other:
        other.device_connect(num_sub_devices=4)
    # Releasing children after their context is harmless; .context still answers.
    instance.release()
    connection.release()
    model.release()
    assert instance.context is context


def test_connection_release_releases_its_instances_and_frees_the_sub_devices(package):
    with axr.Context() as context:
        model = context.load_model(package("resnet_tiny"))
        connection = context.device_connect(num_sub_devices=4)
        instance = connection.load_model_instance(model)
        connection.release()
        with pytest.raises(ALL_ERRORS):
            instance.run(random_inputs(model), empty_outputs(model))
        again = context.device_connect(num_sub_devices=4)
        again.load_model_instance(model).run(random_inputs(model), empty_outputs(model))
        # The model itself belongs to the context, not to the released connection.
        assert len(model.inputs()) == 1


def test_instance_release_twice_then_run_raises(package):
    with axr.Context() as context:
        model = context.load_model(package("resnet_tiny"))
        instance = context.device_connect().load_model_instance(model)
        instance.release()
        instance.release()
        with pytest.raises(ALL_ERRORS) as caught:
            instance.run(random_inputs(model), empty_outputs(model))
        assert str(caught.value)


def test_children_keep_an_unnamed_context_alive(package):
    # `.context` is "Reference to the Context that owns this object": a Context referred to
    # only through its children must stay usable (no variable holds it here).
    connection = axr.Context().device_connect()
    gc.collect()
    model = connection.context.load_model(package("resnet_tiny"))
    instance = connection.load_model_instance(model)
    del connection
    gc.collect()
    outputs = empty_outputs(model)
    assert instance.run(random_inputs(model), outputs) is None
    assert instance.context is model.context
    model.context.release()


def test_objects_the_program_dropped_stay_owned_by_their_context():
    # "All objects created by the runtime are owned by the Context that created them. When the
    # Context is released, all objects created by it are also released."
    with axr.Context() as context:
        context.device_connect(num_sub_devices=3)  # no reference kept
        gc.collect()
        with pytest.raises(axr.DeviceInUse):
            context.device_connect(num_sub_devices=2)
        context.device_connect(num_sub_devices=1)
    with axr.Context() as context:
        context.device_connect(num_sub_devices=4)


def test_released_children_do_not_pile_up_in_a_long_lived_context():
    with axr.Context() as context:
        for _ in range(200):
            context.device_connect(num_sub_devices=4).release()
        context.device_connect(num_sub_devices=4)


def test_collected_context_frees_its_sub_devices():
    def hold_all():
        context = axr.Context()
        context.device_connect(num_sub_devices=4)

    hold_all()
    gc.collect()
    with axr.Context() as context:
        context.device_connect(num_sub_devices=4)


def test_repr_of_objects_never_raises_even_released(package):
    context = axr.Context()
    model = context.load_model(package("resnet_tiny"))
    connection = context.device_connect()
    instance = connection.load_model_instance(model)
    objects = (context, model, connection, instance)
    before = [repr(o) for o in objects]
    for text, cls in zip(before, ("Context", "Model", "Connection", "ModelInstance")):
        assert cls in text
    context.release()
    for o in objects:
        assert repr(o)
        assert str(o)


# --------------------------------------------------------------------------------------------
# Context methods: argument forms, return types, defaults
# --------------------------------------------------------------------------------------------


def test_documented_signatures():
    sig = inspect.signature
    assert list(sig(axr.Context.configure_device).parameters)[1:] == ["device", "kwargs"]
    params = sig(axr.Context.device_connect).parameters
    assert list(params)[1:] == ["device", "num_sub_devices", "kwargs"]
    assert params["device"].default is None
    assert params["num_sub_devices"].default == 1
    assert list(sig(axr.Context.device_ready).parameters)[1:] == ["device"]
    assert list(sig(axr.Context.list_devices).parameters)[1:] == []
    assert list(sig(axr.Context.load_model).parameters)[1:] == ["path"]
    assert list(sig(axr.Context.read_device_configuration).parameters)[1:] == ["device"]
    assert list(sig(axr.Connection.load_model_instance).parameters)[1:] == ["model", "kwargs"]
    assert list(sig(axr.ModelInstance.run).parameters)[1:] == ["inputs", "outputs"]
    assert list(sig(axr.Model.inputs).parameters)[1:] == []
    assert list(sig(axr.Model.outputs).parameters)[1:] == []


def test_keyword_forms_of_every_context_method(package):
    with axr.Context() as context:
        device = context.list_devices()[0]
        assert context.configure_device(device=device, clock_profile=800) in (True, False)
        wait_ready(context, device)
        assert context.device_ready(device=device) is True
        config = context.read_device_configuration(device=device)
        assert type(config) is dict
        model = context.load_model(path=str(package("resnet_tiny")))
        connection = context.device_connect(device=device, num_sub_devices=2)
        instance = connection.load_model_instance(model=model)
        outputs = empty_outputs(model)
        assert instance.run(inputs=random_inputs(model), outputs=outputs) is None


def test_device_connect_positional_device_and_count():
    with axr.Context() as context:
        device = context.list_devices()[0]
        first = context.device_connect(device, 3)
        second = context.device_connect(None, 1)
        assert isinstance(first, axr.Connection) and isinstance(second, axr.Connection)
        with pytest.raises(axr.DeviceInUse):
            context.device_connect(device, 1)


def test_device_connect_default_reserves_exactly_one_sub_device():
    # num_sub_devices=1 by default: four default connections fit a 4-sub-device device.
    with axr.Context() as context:
        connections = [context.device_connect() for _ in range(4)]
        with pytest.raises(axr.DeviceInUse):
            context.device_connect()
        connections[2].release()
        context.device_connect()


def test_device_connect_more_sub_devices_than_the_device_has_raises():
    with axr.Context() as context:
        with pytest.raises(ALL_ERRORS):
            context.device_connect(num_sub_devices=5)
        # Nothing was reserved by the failed call.
        context.device_connect(num_sub_devices=4)


def test_device_connect_bad_count_raises():
    with axr.Context() as context:
        for bad in (0, -1):
            with pytest.raises(ALL_ERRORS):
                context.device_connect(num_sub_devices=bad)


def test_device_connect_picks_a_device_among_several(monkeypatch):
    use_devices(monkeypatch, 2)
    with axr.Context() as context:
        devices = context.list_devices()
        assert [d.name for d in devices] == sorted({d.name for d in devices})
        first = context.device_connect(devices[0], 4)
        # device=None with the first device full: the second one is still free.
        second = context.device_connect(None, 4)
        assert first is not second
        with pytest.raises(axr.DeviceInUse):
            context.device_connect(devices[1], 1)


def test_list_devices_types_of_every_documented_field():
    with axr.Context() as context:
        devices = context.list_devices()
    assert type(devices) is list and len(devices) == 1
    d = devices[0]
    types = {
        "name": str, "subdevice_count": int, "max_memory": int, "in_use": bool,
        "in_use_by": str, "board_type": axr.BoardType, "firmware_version": str,
        "board_revision": int, "flashed_firmware_version": str,
        "board_controller_firmware_version": str, "board_controller_board_type": str,
    }
    for field, expected in types.items():
        value = getattr(d, field)
        assert isinstance(value, expected), (field, value)
        if expected is int:
            assert not isinstance(value, bool), field
    assert d.subdevice_count == 4  # "for metis this is 4"
    assert d.name.startswith("metis-")
    assert d.board_type is axr.BoardType.pcie
    assert d.in_use is False
    assert d.name in repr(d)


def test_list_devices_names_follow_the_doc_format(monkeypatch):
    # "The name of the device. For example 'metis-0:3:0'."
    use_devices(monkeypatch, 3)
    with axr.Context() as context:
        names = [d.name for d in context.list_devices()]
    assert len(names) == 3 and len(set(names)) == 3
    for name in names:
        prefix, rest = name.split("-", 1)
        assert prefix == "metis"
        assert all(part.isdigit() for part in rest.split(":")) and rest.count(":") == 2


def test_list_devices_returns_fresh_lists():
    with axr.Context() as context:
        a = context.list_devices()
        a.clear()
        assert len(context.list_devices()) == 1


def test_read_device_configuration_is_str_to_str_with_documented_defaults():
    with axr.Context() as context:
        device = context.list_devices()[0]
        config = context.read_device_configuration(device)
    assert type(config) is dict
    for key, value in config.items():
        assert type(key) is str and type(value) is str, (key, value)
    for core in range(4):
        assert config[f"clock_profile_core_{core}"] == "800"
        assert config[f"mvm_utilisation_core_{core}"] == "100"


def test_configure_device_pending_then_ready_then_read_back():
    with axr.Context() as context:
        device = context.list_devices()[0]
        result = context.configure_device(device, mvm_utilisation_core_2=50,
                                          clock_profile_core_1=400)
        assert type(result) is bool
        wait_ready(context, device)
        assert type(context.device_ready(device)) is bool
        config = context.read_device_configuration(device)
        assert config["mvm_utilisation_core_2"] == "50"
        assert config["mvm_utilisation_core_0"] == "100"
        assert config["clock_profile_core_1"] == "400"
        assert config["clock_profile_core_0"] == "800"


def test_configure_device_persists_into_a_new_context():
    with axr.Context() as context:
        device = context.list_devices()[0]
        context.configure_device(device, mvm_utilisation_core_3=25)
        wait_ready(context, device)
    with axr.Context() as context:
        device = context.list_devices()[0]
        assert context.read_device_configuration(device)["mvm_utilisation_core_3"] == "25"


def test_configure_device_with_no_change_is_complete_at_once():
    with axr.Context() as context:
        device = context.list_devices()[0]
        assert context.configure_device(device) is True
        assert context.device_ready(device) is True


@pytest.mark.parametrize("kwargs", [
    {"clock_profile_core_4": 800},  # "clock_profile_core_0-3"
    {"mvm_utilisation_core_4": 100},
    {"no_such_property": 1},
    {"clock_profile": 800, "bogus": 1},
], ids=["core4-clock", "core4-mvm", "unknown", "unknown-with-valid"])
def test_configure_device_rejects_undocumented_properties(kwargs):
    with axr.Context() as context:
        device = context.list_devices()[0]
        with pytest.raises((axr.InvalidConfiguration, axr.InvalidArgument)) as caught:
            context.configure_device(device, **kwargs)
        bad = [k for k in kwargs if k != "clock_profile"][0]
        assert bad in str(caught.value)
        # Nothing of the refused call was applied.
        assert context.device_ready(device) is True
        assert context.read_device_configuration(device)["clock_profile_core_0"] == "800"


@pytest.mark.parametrize("kwargs", [
    {"mvm_utilisation_core_0": 101}, {"mvm_utilisation_core_1": -1},
    {"clock_profile": -800}, {"clock_profile": "fast"},
])
def test_configure_device_rejects_bad_values(kwargs):
    with axr.Context() as context:
        device = context.list_devices()[0]
        with pytest.raises(ALL_ERRORS):
            context.configure_device(device, **kwargs)
        assert context.read_device_configuration(device)["mvm_utilisation_core_0"] == "100"


def test_load_model_accepts_str_and_pathlike_and_rejects_missing(package, tmp_path):
    path = package("resnet_tiny")
    with axr.Context() as context:
        for form in (str(path), pathlib.Path(path)):
            model = context.load_model(form)
            assert isinstance(model, axr.Model)
        with pytest.raises(ALL_ERRORS) as caught:
            context.load_model(tmp_path / "missing")
        assert "missing" in str(caught.value)
        (tmp_path / "garbage").mkdir()
        (tmp_path / "garbage" / "model.json").write_text("{not json")
        with pytest.raises(ALL_ERRORS):
            context.load_model(tmp_path / "garbage")


def test_one_model_on_several_connections(package):
    # "The returned model can be loaded onto multiple Connection objects"
    path = package("resnet_tiny")
    with axr.Context() as context:
        model = context.load_model(path)
        inputs, expected = reference_arrays(path, model)
        for _ in range(3):
            connection = context.device_connect()
            outputs = empty_outputs(model)
            connection.load_model_instance(model).run(inputs, outputs)
            np.testing.assert_array_equal(outputs[0], expected[0])


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


def test_model_inputs_outputs_are_lists_of_tensor_info_with_documented_types(package):
    with axr.Context() as context:
        model = context.load_model(package("two_outputs"))
        inputs, outputs = model.inputs(), model.outputs()
    assert type(inputs) is list and type(outputs) is list
    assert len(inputs) == 1 and len(outputs) == 2
    for info in inputs + outputs:
        assert isinstance(info, axr.TensorInfo)
        assert type(info.shape) is tuple and all(type(d) is int for d in info.shape)
        assert isinstance(info.dtype, np.dtype) and info.dtype == np.int8
        assert type(info.name) is str and info.name
        assert type(info.padding) is list
        assert all(type(p) is tuple and len(p) == 2 and all(type(v) is int for v in p)
                   for p in info.padding)
        assert len(info.padding) == len(info.shape)
        assert type(info.scale) is float and info.scale > 0
        assert type(info.zero_point) is int
        assert type(info.size) is int and info.size == int(np.prod(info.shape))
        assert type(info.unpadded_shape) is tuple
        assert info.unpadded_shape == tuple(
            d - b - e for d, (b, e) in zip(info.shape, info.padding))
    assert [o.name for o in outputs] == ["boxes", "scores"]
    assert inputs[0].name == "image"


def test_model_tensor_infos_match_the_package_manifest(package):
    with axr.Context() as context:
        model = context.load_model(package("resnet_tiny"))
        (inp,), (out,) = model.inputs(), model.outputs()
    assert inp.shape == (1, 32, 32, 4) and inp.unpadded_shape == (1, 32, 32, 3)
    assert inp.padding == [(0, 0), (0, 0), (0, 0), (0, 1)]
    assert inp.scale == pytest.approx(0.02) and inp.zero_point == -5
    assert out.shape == (1, 1, 1, 1024) and out.unpadded_shape == (1, 1, 1, 1000)
    assert out.padding == [(0, 0), (0, 0), (0, 0), (0, 24)]
    assert out.zero_point == -15


def test_model_inputs_return_independent_copies(package):
    with axr.Context() as context:
        model = context.load_model(package("resnet_tiny"))
        first = model.inputs()
        first.clear()
        second = model.inputs()
        second[0].zero_point = 99
        assert model.inputs()[0].zero_point == -5


@pytest.mark.parametrize("name,pre,post", [
    ("resnet_tiny", "", ""),
    ("resnet_tiny_pre", "preamble.onnx", ""),
    ("resnet_tiny_post", "", "postamble.onnx"),
])
def test_model_properties(package, name, pre, post):
    with axr.Context() as context:
        model = context.load_model(package(name))
        props = model.properties
        assert props["input_tensor_layout"] == "NHWC"  # "Always NHWC in this version."
        assert (props["preamble_graph"] or "") == pre
        assert (props["postamble_graph"] or "") == post
        assert model.input_tensor_layout == "NHWC"


# --------------------------------------------------------------------------------------------
# Connection.load_model_instance and ModelInstance.run
# --------------------------------------------------------------------------------------------


def test_load_model_instance_accepts_every_documented_kwarg_at_its_default(package):
    path = package("resnet_tiny")
    with axr.Context() as context:
        model = context.load_model(path)
        connection = context.device_connect()
        instance = connection.load_model_instance(model, **LOAD_MODEL_INSTANCE_KWARGS)
        assert isinstance(instance, axr.ModelInstance)
        inputs, expected = reference_arrays(path, model)
        outputs = empty_outputs(model)
        instance.run(inputs, outputs)
        np.testing.assert_array_equal(outputs[0], expected[0])


@pytest.mark.parametrize("kwarg", ["device_profiling", "host_profiling", "double_buffer"])
@pytest.mark.parametrize("value", [True, 1])
def test_boolean_kwargs_do_not_change_results(package, kwarg, value):
    path = package("resnet_tiny")
    with axr.Context() as context:
        model = context.load_model(path)
        instance = context.device_connect().load_model_instance(model, **{kwarg: value})
        inputs, expected = reference_arrays(path, model)
        for _ in range(3):
            outputs = empty_outputs(model)
            instance.run(inputs, outputs)
            np.testing.assert_array_equal(outputs[0], expected[0])


def test_load_model_instance_rejects_an_unknown_kwarg(package):
    with axr.Context() as context:
        model = context.load_model(package("resnet_tiny"))
        connection = context.device_connect()
        with pytest.raises((axr.InvalidArgument, TypeError)) as caught:
            connection.load_model_instance(model, aipu_core=1)  # sic: 'aipu_cores'
        assert "aipu_core" in str(caught.value)


def test_load_model_instance_rejects_a_non_model(package):
    with axr.Context() as context:
        connection = context.device_connect()
        for bad in (None, str(package("resnet_tiny")), context):
            with pytest.raises((axr.InvalidArgument, TypeError)):
                connection.load_model_instance(bad)


def test_batch_model_on_four_sub_devices(package):
    # aipu_cores / num_sub_devices: "set to batch size"
    path = package("resnet_tiny_b4")
    with axr.Context() as context:
        model = context.load_model(path)
        assert model.inputs()[0].shape[0] == 4
        connection = context.device_connect(num_sub_devices=4)
        instance = connection.load_model_instance(model, aipu_cores=4, num_sub_devices=4)
        inputs, expected = reference_arrays(path, model)
        outputs = empty_outputs(model)
        instance.run(inputs, outputs)
        np.testing.assert_array_equal(outputs[0], expected[0])


def test_run_two_outputs_matches_reference(package):
    path = package("two_outputs")
    with axr.Context() as context:
        model = context.load_model(path)
        instance = context.device_connect().load_model_instance(model)
        inputs, expected = reference_arrays(path, model)
        outputs = empty_outputs(model)
        assert instance.run(inputs, outputs) is None
        for got, exp in zip(outputs, expected):
            np.testing.assert_array_equal(got, exp)


def test_run_writes_outputs_in_place_and_depends_on_the_input(package):
    with axr.Context() as context:
        model = context.load_model(package("resnet_tiny"))
        instance = context.device_connect().load_model_instance(model)
        outputs_a, outputs_b = empty_outputs(model), empty_outputs(model)
        buffer_a = outputs_a[0]
        instance.run(random_inputs(model, seed=1), outputs_a)
        instance.run(random_inputs(model, seed=2), outputs_b)
        assert outputs_a[0] is buffer_a
        assert not np.array_equal(outputs_a[0], outputs_b[0])
        again = empty_outputs(model)
        instance.run(random_inputs(model, seed=1), again)
        np.testing.assert_array_equal(again[0], outputs_a[0])


def test_run_does_not_modify_inputs(package):
    with axr.Context() as context:
        model = context.load_model(package("resnet_tiny"))
        instance = context.device_connect().load_model_instance(model)
        inputs = random_inputs(model)
        copy = [a.copy() for a in inputs]
        instance.run(inputs, empty_outputs(model))
        for a, b in zip(inputs, copy):
            np.testing.assert_array_equal(a, b)


def _bad_run_cases(model):
    info_in, info_out = model.inputs()[0], model.outputs()[0]
    good_in = random_inputs(model)
    good_out = empty_outputs(model)
    return {
        "input float32": ([good_in[0].astype(np.float32)], good_out),
        "input uint8": ([good_in[0].view(np.uint8)], good_out),
        "input unpadded shape": ([np.zeros(info_in.unpadded_shape, np.int8)], good_out),
        "input too large": ([np.zeros(info_in.size + 1, np.int8)], good_out),
        "too many inputs": (good_in + good_in, good_out),
        "no inputs": ([], good_out),
        "output float32": (good_in, [np.zeros(info_out.shape, np.float32)]),
        "output too small": (good_in, [np.zeros(info_out.unpadded_shape, np.int8)]),
        "too many outputs": (good_in, good_out + empty_outputs(model)),
        "no outputs": (good_in, []),
    }


def test_run_rejects_wrong_arrays_with_invalid_argument(package):
    with axr.Context() as context:
        model = context.load_model(package("resnet_tiny"))
        instance = context.device_connect().load_model_instance(model)
        for case, (inputs, outputs) in _bad_run_cases(model).items():
            with pytest.raises(axr.InvalidArgument) as caught:
                instance.run(inputs, outputs)
            assert str(caught.value), case
        # The instance still works after all those refusals.
        outputs = empty_outputs(model)
        instance.run(random_inputs(model), outputs)


def test_run_rejects_non_arrays(package):
    with axr.Context() as context:
        model = context.load_model(package("resnet_tiny"))
        instance = context.device_connect().load_model_instance(model)
        for inputs, outputs in (
            (None, empty_outputs(model)),
            (random_inputs(model), None),
            (["not an array"], empty_outputs(model)),
            (random_inputs(model), [b"x" * model.outputs()[0].size]),
        ):
            with pytest.raises((axr.InvalidArgument, TypeError)):
                instance.run(inputs, outputs)


def test_run_rejects_read_only_and_non_contiguous_outputs(package):
    with axr.Context() as context:
        model = context.load_model(package("resnet_tiny"))
        instance = context.device_connect().load_model_instance(model)
        read_only = empty_outputs(model)
        read_only[0].flags.writeable = False
        with pytest.raises(axr.InvalidArgument):
            instance.run(random_inputs(model), read_only)
        assert not read_only[0].any()
        info = model.outputs()[0]
        strided = np.zeros((info.size * 2,), np.int8)[::2]
        with pytest.raises(axr.InvalidArgument):
            instance.run(random_inputs(model), [strided])


def test_run_accepts_a_non_contiguous_input_or_refuses_it_cleanly(package):
    # The doc only says "a list of numpy arrays": a strided view of the right shape and dtype
    # must either give the same result as its contiguous copy or be refused, never read the
    # wrong bytes.
    path = package("resnet_tiny")
    with axr.Context() as context:
        model = context.load_model(path)
        instance = context.device_connect().load_model_instance(model)
        inputs, expected = reference_arrays(path, model)
        big = np.zeros(inputs[0].shape[:-1] + (inputs[0].shape[-1] * 2,), np.int8)
        big[..., ::2] = inputs[0]
        view = big[..., ::2]
        assert view.shape == inputs[0].shape and not view.flags.c_contiguous
        outputs = empty_outputs(model)
        try:
            instance.run([view], outputs)
        except axr.InvalidArgument:
            return
        np.testing.assert_array_equal(outputs[0], expected[0])


def test_dmabuf_instances_take_file_descriptors(package):
    # "If the model instance was created with input_dmabuf=True then inputs must be a list of
    # file descriptors" (and output_dmabuf=True likewise for outputs).
    path = package("resnet_tiny")
    with axr.Context() as context:
        model = context.load_model(path)
        connection = context.device_connect()
        instance = connection.load_model_instance(model, input_dmabuf=True, output_dmabuf=True)
        inputs, expected = reference_arrays(path, model)
        in_fd = os.memfd_create("input")
        out_fd = os.memfd_create("output")
        try:
            os.ftruncate(in_fd, model.inputs()[0].size)
            os.ftruncate(out_fd, model.outputs()[0].size)
            os.pwrite(in_fd, inputs[0].tobytes(), 0)
            assert instance.run([in_fd], [out_fd]) is None
            got = np.frombuffer(os.pread(out_fd, model.outputs()[0].size, 0), np.int8)
            np.testing.assert_array_equal(got.reshape(expected[0].shape), expected[0])
            # numpy arrays are not file descriptors on this instance
            with pytest.raises((axr.InvalidArgument, TypeError)):
                instance.run(inputs, empty_outputs(model))
        finally:
            os.close(in_fd)
            os.close(out_fd)


def test_input_only_dmabuf_instance_writes_numpy_outputs(package):
    path = package("resnet_tiny")
    with axr.Context() as context:
        model = context.load_model(path)
        instance = context.device_connect().load_model_instance(model, input_dmabuf=1)
        inputs, expected = reference_arrays(path, model)
        fd = os.memfd_create("input")
        try:
            os.ftruncate(fd, model.inputs()[0].size)
            os.pwrite(fd, inputs[0].tobytes(), 0)
            outputs = empty_outputs(model)
            instance.run([fd], outputs)
            np.testing.assert_array_equal(outputs[0], expected[0])
            with pytest.raises(ALL_ERRORS):
                instance.run([1234567], outputs)  # not an open descriptor
        finally:
            os.close(fd)


# --------------------------------------------------------------------------------------------
# Device in use, across contexts and processes
# --------------------------------------------------------------------------------------------


def test_device_in_use_by_another_context_in_the_same_process():
    with axr.Context() as first, axr.Context() as second:
        held = first.device_connect(num_sub_devices=4)
        with pytest.raises(axr.DeviceInUse) as caught:
            second.device_connect()
        assert str(caught.value)
        held.release()
        second.device_connect(num_sub_devices=4)


HOLDER = textwrap.dedent("""
    import sys, time
    import axelera.runtime as axr
    context = axr.Context()
    connection = context.device_connect(num_sub_devices=4)
    print("held", flush=True)
    sys.stdin.readline()
    if sys.argv[1] == "release":
        context.release()
        print("released", flush=True)
        sys.stdin.readline()
""")


def _start_holder(mode):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, mode], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_device_in_use_by_another_process_then_free_after_it_releases():
    proc = _start_holder("release")
    try:
        with axr.Context() as context:
            with pytest.raises(axr.DeviceInUse):
                context.device_connect()
            proc.stdin.write("\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "released"
            context.device_connect(num_sub_devices=4).release()
    finally:
        proc.stdin.close()
        proc.wait(timeout=20)


def test_device_free_again_after_the_holding_process_is_killed():
    proc = _start_holder("kill")
    try:
        with axr.Context() as context:
            with pytest.raises(axr.DeviceInUse):
                context.device_connect(num_sub_devices=4)
            proc.kill()
            proc.wait(timeout=20)
            context.device_connect(num_sub_devices=4)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------------------------
# Threads and re-entrancy
# --------------------------------------------------------------------------------------------


def test_one_instance_run_from_many_threads_gives_each_its_own_result(package):
    with axr.Context() as context:
        model = context.load_model(package("resnet_tiny"))
        instance = context.device_connect(num_sub_devices=4).load_model_instance(
            model, aipu_cores=1, num_sub_devices=1)
        seeds = list(range(8))
        serial = {}
        for seed in seeds:
            out = empty_outputs(model)
            instance.run(random_inputs(model, seed), out)
            serial[seed] = out[0]
        errors = []

        def worker(seed):
            try:
                for _ in range(10):
                    out = empty_outputs(model)
                    instance.run(random_inputs(model, seed), out)
                    if not np.array_equal(out[0], serial[seed]):
                        errors.append(f"seed {seed}: wrong result")
            except Exception as error:  # noqa: BLE001 -- reported below
                errors.append(repr(error))

        threads = [threading.Thread(target=worker, args=(s,)) for s in seeds]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not any(t.is_alive() for t in threads)
        assert errors == []


def test_concurrent_device_connect_hands_out_each_sub_device_once():
    with axr.Context() as context:
        results = []
        barrier = threading.Barrier(6)

        def worker():
            barrier.wait()
            try:
                results.append(context.device_connect())
            except axr.DeviceInUse:
                results.append("in use")

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert sum(isinstance(r, axr.Connection) for r in results) == 4
        assert results.count("in use") == 2


def test_threads_configuring_different_cores_at_once_lose_no_setting():
    with axr.Context() as context:
        device = context.list_devices()[0]
        barrier = threading.Barrier(4)
        errors = []

        def worker(core):
            try:
                barrier.wait()
                context.configure_device(device, **{f"mvm_utilisation_core_{core}": 10 + core,
                                                    f"clock_profile_core_{core}": 500 + core})
                wait_ready(context, device)
            except Exception as error:  # noqa: BLE001 -- reported below
                errors.append(repr(error))

        threads = [threading.Thread(target=worker, args=(core,)) for core in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert errors == []
        config = context.read_device_configuration(device)
        for core in range(4):
            assert config[f"mvm_utilisation_core_{core}"] == str(10 + core), config
            assert config[f"clock_profile_core_{core}"] == str(500 + core), config


def test_releasing_the_context_while_another_thread_runs(package):
    context = axr.Context()
    model = context.load_model(package("resnet_tiny"))
    instance = context.device_connect().load_model_instance(model)
    inputs = random_inputs(model)
    started = threading.Event()
    outcome = []

    def runner():
        runs = 0
        try:
            while True:
                instance.run(inputs, empty_outputs(model))
                runs += 1
                started.set()
        except ALL_ERRORS as error:
            outcome.append((runs, error))
        except Exception as error:  # noqa: BLE001 -- the wrong kind, reported below
            outcome.append((runs, error))
            started.set()

    thread = threading.Thread(target=runner)
    thread.start()
    assert started.wait(timeout=20)
    context.release()
    thread.join(timeout=20)
    assert not thread.is_alive()
    runs, error = outcome[0]
    assert runs >= 1
    assert isinstance(error, ALL_ERRORS), repr(error)
    with axr.Context() as other:  # its sub-device was given back
        other.device_connect(num_sub_devices=4)


def test_contexts_created_and_released_in_threads(package):
    path = package("resnet_tiny")
    errors = []

    def worker():
        try:
            for _ in range(3):
                with axr.Context() as context:
                    model = context.load_model(path)
                    inputs, expected = reference_arrays(path, model)
                    connection = context.device_connect()
                    outputs = empty_outputs(model)
                    connection.load_model_instance(model).run(inputs, outputs)
                    if not np.array_equal(outputs[0], expected[0]):
                        errors.append("wrong result")
        except Exception as error:  # noqa: BLE001 -- reported below
            errors.append(repr(error))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []


# --------------------------------------------------------------------------------------------
# Types: BoardType, DeviceInfo, TensorInfo
# --------------------------------------------------------------------------------------------


BOARD_TYPES = [("alpha_pcie", 0), ("alpha_m2", 1), ("pcie", 2), ("m2", 3), ("devboard", 4),
               ("sbc", 5), ("unknown", 6)]


def test_board_type_is_the_documented_enum():
    assert issubclass(axr.BoardType, enum.Enum)
    assert [(m.name, m.value) for m in axr.BoardType] == BOARD_TYPES
    assert len(axr.BoardType) == 7
    for name, value in BOARD_TYPES:
        member = getattr(axr.BoardType, name)
        assert isinstance(member, axr.BoardType)
        assert axr.BoardType(value) is member
        assert axr.BoardType[name] is member
        assert type(member.value) is int
    with pytest.raises(ValueError):
        axr.BoardType(7)
    with pytest.raises(KeyError):
        axr.BoardType["PCIE"]
    # enum.Enum's own str/repr ("class BoardType(enum.Enum)")
    assert str(axr.BoardType.pcie) == "BoardType.pcie"
    assert repr(axr.BoardType.m2) == "<BoardType.m2: 3>"
    assert {axr.BoardType.sbc: "x"}[axr.BoardType(5)] == "x"


@pytest.mark.parametrize("name,value", BOARD_TYPES)
def test_device_info_reports_the_configured_board_type(monkeypatch, name, value):
    monkeypatch.setenv("AXSTREAM_SIM_BOARD_TYPE", name)
    reset_devices()
    with axr.Context() as context:
        board_type = context.list_devices()[0].board_type
    assert board_type is axr.BoardType(value)


def test_tensor_info_fields_and_defaults():
    info = axr.TensorInfo((1, 2, 3, 4))
    assert info.shape == (1, 2, 3, 4)
    assert info.dtype == np.int8  # "dtype: np.dtype = np.int8"
    assert info.name == ""
    assert info.scale == 1.0
    assert info.zero_point == 0
    assert [tuple(p) for p in info.padding] == [(0, 0)] * 4
    assert info.unpadded_shape == (1, 2, 3, 4)
    assert info.size == 24


def test_tensor_info_positional_field_order():
    # The doc lists shape, dtype, name, padding, scale, zero_point in that order.
    info = axr.TensorInfo((2, 6), np.float32, "t", [(0, 0), (1, 2)], 0.5, 3)
    assert info.shape == (2, 6)
    assert info.dtype == np.float32
    assert info.name == "t"
    assert info.padding == [(0, 0), (1, 2)]
    assert info.scale == 0.5
    assert info.zero_point == 3
    assert info.unpadded_shape == (2, 3)
    assert info.size == 2 * 6 * 4  # "The size of the tensor in bytes."


def test_tensor_info_keyword_construction():
    info = axr.TensorInfo(shape=(1, 8), dtype=np.int16, name="n", padding=[(0, 0), (0, 3)],
                          scale=0.25, zero_point=-2)
    assert (info.shape, info.name, info.scale, info.zero_point) == ((1, 8), "n", 0.25, -2)
    assert info.size == 16
    assert info.unpadded_shape == (1, 5)


def test_tensor_info_size_is_bytes_of_the_padded_shape():
    for dtype, itemsize in ((np.int8, 1), (np.uint8, 1), (np.int16, 2), (np.float32, 4),
                            (np.float64, 8), (np.int32, 4)):
        info = axr.TensorInfo((3, 5, 7), dtype, padding=[(0, 0), (1, 1), (0, 2)])
        assert info.size == 3 * 5 * 7 * itemsize, dtype
        assert info.unpadded_shape == (3, 3, 5)


def test_tensor_info_equality_follows_fields():
    a = axr.TensorInfo((1, 4), padding=[(0, 0), (0, 1)], scale=0.5, zero_point=1, name="x")
    b = axr.TensorInfo((1, 4), padding=[(0, 0), (0, 1)], scale=0.5, zero_point=1, name="x")
    c = axr.TensorInfo((1, 4), padding=[(0, 0), (0, 1)], scale=0.5, zero_point=2, name="x")
    assert a == b
    assert a != c
    assert "(1, 4)" in repr(a)


def test_tensor_info_shape_and_padding_are_normalised():
    # "shape: tuple[int, ...]", "padding: list[tuple[int, int]]"
    info = axr.TensorInfo([1, np.int64(5)], padding=[[0, 0], [np.int32(1), 2]])
    assert info.shape == (1, 5) and type(info.shape) is tuple
    assert all(type(d) is int for d in info.shape)
    assert info.padding == [(0, 0), (1, 2)]
    assert all(type(p) is tuple for p in info.padding)
    assert info.unpadded_shape == (1, 2)


def test_tensor_info_unpadded_shape_never_drops_dimensions_after_assignment():
    # "unpadded_shape: The shape of the tensor without padding." The fields are assignable;
    # after shape gets another rank than padding there is no right answer, and a shorter shape
    # would be a wrong one.
    info = axr.TensorInfo((4, 4))
    info.shape = (1, 2, 3)
    with pytest.raises(axr.InvalidArgument, match="2 .start, end. pairs.*3 dimensions"):
        info.unpadded_shape
    info.padding = None  # no padding, whatever the rank
    assert info.unpadded_shape == (1, 2, 3)
    info.padding = [(0, 0), (1, 1)]
    with pytest.raises(axr.InvalidArgument):
        info.unpadded_shape
    info.padding = [(0, 0), (0, 0), (1, 1)]
    assert info.unpadded_shape == (1, 2, 1)


@pytest.mark.parametrize("kwargs", [
    {"shape": (4, 4), "padding": [(0, 0)]},            # padding rank != shape rank
    {"shape": (4, 4), "padding": [(0, 0), (3, 2)]},    # more padding than the dimension
    {"shape": (4, -1)},                               # negative dimension
    {"shape": (4, 4), "padding": [(0, 0), (-1, 0)]},  # negative padding
    {"shape": (4, 4), "dtype": "not a dtype"},
])
def test_tensor_info_rejects_impossible_fields(kwargs):
    with pytest.raises((axr.InvalidArgument, ValueError, TypeError)):
        axr.TensorInfo(**kwargs)


def test_device_info_and_tensor_info_are_not_runtime_objects():
    assert not issubclass(axr.TensorInfo, axr.Object)
    assert not issubclass(axr.DeviceInfo, axr.Object)
    # TensorInfo's fields read like a dataclass's ("name: str = ''").
    assert [f.name for f in dataclasses.fields(axr.TensorInfo)][:6] == [
        "shape", "dtype", "name", "padding", "scale", "zero_point"]


# --------------------------------------------------------------------------------------------
# Exceptions
# --------------------------------------------------------------------------------------------


def test_every_documented_exception_is_a_distinct_exception_class():
    classes = [getattr(axr, name) for name in DOC_EXCEPTIONS]
    for name, cls in zip(DOC_EXCEPTIONS, classes):
        assert isinstance(cls, type) and issubclass(cls, Exception), name
        assert cls.__name__ == name
        assert cls.__module__.startswith("axelera.runtime"), (name, cls.__module__)
        with pytest.raises(cls) as caught:
            raise cls(f"{name} message")
        assert str(caught.value) == f"{name} message"
    for a in classes:
        for b in classes:
            if a is not b:
                assert not issubclass(a, b), (a, b)
    # axr.NotImplemented is a class, not Python's NotImplemented constant.
    assert axr.NotImplemented is not NotImplemented


def test_runtime_errors_carry_a_message_naming_the_problem(package):
    with axr.Context() as context:
        model = context.load_model(package("resnet_tiny"))
        instance = context.device_connect().load_model_instance(model)
        with pytest.raises(axr.InvalidArgument) as caught:
            instance.run([np.zeros((1, 32, 32, 4), np.float32)], empty_outputs(model))
        message = str(caught.value)
        assert "float32" in message and "int8" in message, message


def test_device_in_use_message_names_the_device():
    with axr.Context() as context:
        context.device_connect(num_sub_devices=4)
        name = context.list_devices()[0].name
        with pytest.raises(axr.DeviceInUse) as caught:
            context.device_connect(num_sub_devices=1)
        assert name in str(caught.value)
