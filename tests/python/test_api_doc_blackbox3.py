"""A third black-box pass over axelera.runtime, written from Axelera's API doc alone
(axelera-runtime-api.md): what a tester reading only that doc would assert, and every code
example in it run literally (our test packages standing in for the models). Where the doc leaves
a choice, docs/python-api.md says which we made; the tests here pin those choices too."""

import dataclasses
import doctest
import enum
import inspect
import os
import pathlib
import pickle
import re
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import axelera.runtime as axr
from axelera.runtime import TensorInfo
from conftest import reset_devices

DOC_EXCEPTIONS = (axr.ConnectionError, axr.DeviceInUse, axr.IncompatibleDevice,
                  axr.InternalError, axr.InvalidArgument, axr.InvalidConfiguration,
                  axr.NotImplemented, axr.Pending, axr.UnknownError)


def wait_ready(context, device, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not context.device_ready(device):
        assert time.monotonic() < deadline, f"{device.name} not ready after {timeout} s"
        time.sleep(0.02)


def reference_io(package_dir):
    """The package's seeded padded input 0 and its reference output 0 (make_test_models.py)."""
    return ((package_dir / "reference" / "input_0.bin").read_bytes(),
            (package_dir / "reference" / "output_0.bin").read_bytes())


def as_tensor(data, info):
    return np.frombuffer(data, dtype=info.dtype).reshape(info.shape).copy()


@pytest.fixture
def context():
    with axr.Context() as context:
        yield context


@pytest.fixture
def tiny(context, package):
    """resnet_tiny loaded, one sub-device, one instance, and its reference input and output."""
    path = package("resnet_tiny")
    model = context.load_model(path)
    connection = context.device_connect(None, 1)
    instance = connection.load_model_instance(model)
    data_in, data_out = reference_io(path)
    return dataclasses.make_dataclass("Tiny", ["model", "connection", "instance", "input",
                                               "expected"])(
        model, connection, instance, as_tensor(data_in, model.inputs()[0]),
        as_tensor(data_out, model.outputs()[0]))


# --- Exceptions ------------------------------------------------------------------------------

def test_the_nine_exceptions_are_distinct_exception_classes_raisable_with_a_message():
    assert len(set(DOC_EXCEPTIONS)) == 9
    for cls in DOC_EXCEPTIONS:
        assert isinstance(cls, type) and issubclass(cls, Exception), cls
        with pytest.raises(cls) as caught:
            raise cls(f"{cls.__name__} happened")
        assert str(caught.value) == f"{cls.__name__} happened"
        for other in DOC_EXCEPTIONS:
            if other is not cls:
                assert not isinstance(caught.value, other), (cls, other)


def test_exceptions_survive_pickling_as_multiprocessing_sends_them():
    for cls in DOC_EXCEPTIONS:
        copy = pickle.loads(pickle.dumps(cls("device metis-0:1:0: boom")))
        assert type(copy) is cls and str(copy) == "device metis-0:1:0: boom"


def test_exceptions_from_the_runtime_are_picklable_too(context, tmp_path):
    with pytest.raises(axr.InvalidArgument) as caught:
        context.load_model(tmp_path / "missing")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is axr.InvalidArgument and str(copy) == str(caught.value)


# --- BoardType --------------------------------------------------------------------------------

def test_board_type_is_exactly_the_docs_enum():
    assert issubclass(axr.BoardType, enum.Enum)
    assert [(m.name, m.value) for m in axr.BoardType] == [
        ("alpha_pcie", 0), ("alpha_m2", 1), ("pcie", 2), ("m2", 3), ("devboard", 4), ("sbc", 5),
        ("unknown", 6)]
    assert all(type(m.value) is int for m in axr.BoardType)
    assert axr.BoardType(3) is axr.BoardType.m2
    assert axr.BoardType["sbc"] is axr.BoardType.sbc
    assert len(axr.BoardType) == 7


# --- Objects ---------------------------------------------------------------------------------

def test_every_object_kind_is_an_object_owned_by_its_context(tiny, context):
    for obj in (context, tiny.model, tiny.connection, tiny.instance):
        assert isinstance(obj, axr.Object)
    assert isinstance(context, axr.Context)
    assert isinstance(tiny.connection, axr.Connection)
    assert isinstance(tiny.model, axr.Model)
    assert isinstance(tiny.instance, axr.ModelInstance)
    assert tiny.model.context is context
    assert tiny.connection.context is context
    assert tiny.instance.context is context


def test_with_statement_gives_the_context_and_releases_it_on_exit():
    with axr.Context() as context:
        assert isinstance(context, axr.Context)
        devices = context.list_devices()
    assert type(devices) is list and devices
    with pytest.raises(DOC_EXCEPTIONS):
        context.list_devices()
    context.release()  # already released by the with statement: harmless


def test_with_block_exception_propagates_and_the_context_is_released():
    with pytest.raises(KeyError, match="mine"):
        with axr.Context() as context:
            raise KeyError("mine")
    with pytest.raises(DOC_EXCEPTIONS):
        context.list_devices()


def test_release_instead_of_with_releases_children(package):
    context = axr.Context()
    model = context.load_model(package("resnet_tiny"))
    connection = context.device_connect()
    instance = connection.load_model_instance(model)
    context.release()
    for call in (model.inputs, model.outputs, lambda: connection.load_model_instance(model),
                 lambda: instance.run([], [])):
        with pytest.raises(DOC_EXCEPTIONS, match="released"):
            call()
    for obj in (instance, connection, model, context):
        obj.release()
        obj.release()
    # The sub-device came back with the context.
    with axr.Context() as again:
        again.device_connect(None, 4).release()


def test_releasing_a_connection_releases_its_instances_and_frees_its_sub_devices(tiny, context):
    tiny.connection.release()
    with pytest.raises(DOC_EXCEPTIONS, match="released"):
        tiny.instance.run([tiny.input], [np.zeros_like(tiny.expected)])
    context.device_connect(None, 4).release()
    # The model is not a child of the connection: it loads again elsewhere.
    assert type(tiny.model.inputs()) is list


def test_releasing_an_instance_leaves_its_connection_and_model_usable(tiny):
    tiny.instance.release()
    with pytest.raises(DOC_EXCEPTIONS, match="released"):
        tiny.instance.run([tiny.input], [np.zeros_like(tiny.expected)])
    again = tiny.connection.load_model_instance(tiny.model)
    out = np.zeros_like(tiny.expected)
    again.run([tiny.input], [out])
    np.testing.assert_array_equal(out, tiny.expected)


def test_releasing_a_model_invalidates_it(context, package):
    model = context.load_model(package("resnet_tiny"))
    model.release()
    with pytest.raises(DOC_EXCEPTIONS, match="released"):
        model.inputs()
    with pytest.raises(DOC_EXCEPTIONS, match="released"):
        context.device_connect().load_model_instance(model)


# --- DeviceInfo and list_devices ------------------------------------------------------------

def test_device_info_fields_have_the_documented_types(context):
    (device,) = context.list_devices()
    assert isinstance(device, axr.DeviceInfo)
    assert re.fullmatch(r"metis-\d+:\d+:\d+", device.name), device.name
    expected_types = {
        "name": str, "subdevice_count": int, "max_memory": int, "in_use": bool,
        "in_use_by": str, "board_type": axr.BoardType, "firmware_version": str,
        "board_revision": int, "flashed_firmware_version": str,
        "board_controller_firmware_version": str, "board_controller_board_type": str}
    for field, cls in expected_types.items():
        value = getattr(device, field)
        assert type(value) is cls or (cls is axr.BoardType and isinstance(value, cls)), (
            field, type(value))
    assert device.subdevice_count == 4  # "for metis this is 4"
    assert device.in_use is False and device.in_use_by == ""


def test_list_devices_shows_this_process_using_a_device(context):
    connection = context.device_connect(None, 2)
    (device,) = context.list_devices()
    assert device.in_use is True
    assert f":{os.getpid()}" in device.in_use_by
    connection.release()
    assert context.list_devices()[0].in_use is False


def test_list_devices_returns_fresh_lists(context):
    first = context.list_devices()
    first.clear()
    assert len(context.list_devices()) == 1


# --- configure_device, device_ready, read_device_configuration -------------------------------

DOC_CONFIG_DEFAULTS = {"clock_profile": "800",
                       **{f"clock_profile_core_{i}": "800" for i in range(4)},
                       **{f"mvm_utilisation_core_{i}": "100" for i in range(4)}}


def test_read_device_configuration_is_a_str_to_str_dict_with_the_table_defaults(context):
    (device,) = context.list_devices()
    config = context.read_device_configuration(device)
    assert type(config) is dict
    for key, value in DOC_CONFIG_DEFAULTS.items():
        assert config[key] == value, key


def test_configure_device_example_literally_on_two_devices(monkeypatch):
    monkeypatch.setenv("AXSTREAM_SIM_DEVICES", "2")
    reset_devices()
    with axr.Context() as context:
        device0, device1 = context.list_devices()
        res0 = context.configure_device(device0, clock_profile=1000)
        res1 = context.configure_device(device1, clock_profile=1000)
        assert type(res0) is bool and type(res1) is bool
        while not res0 or not res1:
            time.sleep(0.05)
            res0 = context.device_ready(device0)
            res1 = context.device_ready(device1)
        assert type(res0) is bool
        assert context.read_device_configuration(device1)["clock_profile"] == "1000"


@pytest.mark.parametrize("key, value", [
    *[(f"clock_profile_core_{i}", 400 + 100 * i) for i in range(4)],
    *[(f"mvm_utilisation_core_{i}", 25 * (i + 1)) for i in range(4)],
])
def test_each_documented_property_is_set_and_read_back_alone(context, key, value):
    (device,) = context.list_devices()
    context.configure_device(device, **{key: value})
    wait_ready(context, device)
    config = context.read_device_configuration(device)
    assert config[key] == str(value)
    for other, default in DOC_CONFIG_DEFAULTS.items():
        if other != key and other != "clock_profile":
            assert config[other] == default, other


def test_clock_profile_sets_every_core_and_a_per_core_key_overrides_it(context):
    """Whatever the kwargs' order: the per-core key wins for its core (docs/python-api.md)."""
    (device,) = context.list_devices()
    for kwargs in (dict(clock_profile=600, clock_profile_core_1=400),
                   dict(clock_profile_core_1=400, clock_profile=600)):
        context.configure_device(device, **kwargs)
        wait_ready(context, device)
        config = context.read_device_configuration(device)
        assert config["clock_profile"] == "600"
        assert [config[f"clock_profile_core_{i}"] for i in range(4)] == ["600", "400", "600",
                                                                          "600"]
        context.configure_device(device, clock_profile=800)
        wait_ready(context, device)


def test_configure_device_with_everything_by_keyword(context):
    (device,) = context.list_devices()
    result = context.configure_device(device=device, clock_profile=600)
    assert type(result) is bool
    deadline = time.monotonic() + 10
    while not context.device_ready(device=device):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert context.read_device_configuration(device=device)["clock_profile"] == "600"


def test_device_ready_on_an_untouched_device_is_true(context):
    (device,) = context.list_devices()
    ready = context.device_ready(device)
    assert ready is True


def test_configure_device_with_no_property_changes_nothing(context):
    (device,) = context.list_devices()
    before = context.read_device_configuration(device)
    assert context.configure_device(device) is True
    assert context.read_device_configuration(device) == before


def test_configuration_errors_are_documented_exceptions_naming_the_key(context):
    (device,) = context.list_devices()
    with pytest.raises(DOC_EXCEPTIONS, match="clock_profle"):
        context.configure_device(device, clock_profle=1000)
    with pytest.raises(DOC_EXCEPTIONS, match="mvm_utilisation_core_0"):
        context.configure_device(device, mvm_utilisation_core_0=250)
    with pytest.raises(DOC_EXCEPTIONS, match="clock_profile_core_4"):
        context.configure_device(device, clock_profile_core_4=800)


# --- device_connect --------------------------------------------------------------------------

def test_device_connect_defaults_positional_and_keyword(context):
    (device,) = context.list_devices()
    connections = [context.device_connect(), context.device_connect(None),
                   context.device_connect(None, 1), context.device_connect(device, 1)]
    assert all(isinstance(connection, axr.Connection) for connection in connections)
    # Four single sub-device connections hold the whole device.
    with pytest.raises(axr.DeviceInUse):
        context.device_connect(device=device, num_sub_devices=1)


def test_num_sub_devices_takes_numpy_integers_and_names_itself_when_wrong(context):
    context.device_connect(None, np.int64(2)).release()
    for wrong in ("2", 2.0, 2 ** 40, None):
        with pytest.raises(axr.InvalidArgument, match="num_sub_devices"):
            context.device_connect(None, wrong)


def test_every_object_releases_itself_at_the_end_of_a_with_block(context, package):
    with context.load_model(package("resnet_tiny")) as model:
        with context.device_connect(None, 4) as connection:
            assert isinstance(connection, axr.Connection)
            with connection.load_model_instance(model) as instance:
                assert isinstance(instance, axr.ModelInstance)
            with pytest.raises(axr.InvalidArgument, match="released"):
                instance.run([], [])
        context.device_connect(None, 4).release()  # the with block gave the sub-devices back
        assert isinstance(model.inputs()[0], TensorInfo)
    with pytest.raises(axr.InvalidArgument, match="released"):
        model.inputs()


HOLD_ALL = textwrap.dedent("""
    import sys
    import axelera.runtime as axr
    with axr.Context() as context:
        connection = context.device_connect(num_sub_devices=4)
        print("held", flush=True)
        sys.stdin.readline()
    """)


def test_threads_racing_for_sub_devices_get_exactly_the_four_there_are(context):
    barrier = threading.Barrier(8)
    got, refused, other = [], [], []

    def connect():
        barrier.wait()
        try:
            got.append(context.device_connect(None, 1))
        except axr.DeviceInUse:
            refused.append(1)
        except Exception as error:  # noqa: BLE001 - reported below
            other.append(error)

    threads = [threading.Thread(target=connect, name=f"blackbox-connect-{i}") for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not other, other
    assert len(got) == 4 and len(refused) == 4
    assert context.list_devices()[0].in_use is True


def test_device_connect_reserves_against_other_processes(context):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_ALL], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(axr.DeviceInUse):
            context.device_connect(num_sub_devices=1)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    context.device_connect(num_sub_devices=4).release()


def test_device_connect_more_sub_devices_than_the_device_has_names_the_count(context):
    with pytest.raises(DOC_EXCEPTIONS, match="5"):
        context.device_connect(None, 5)
    with pytest.raises(DOC_EXCEPTIONS):
        context.device_connect(None, 0)


# --- load_model and Model ---------------------------------------------------------------------

def test_load_model_takes_str_and_path_and_the_path_keyword(context, package):
    path = package("resnet_tiny")
    for argument in (str(path), path, str(path / "model.json"), path / "model.json"):
        assert isinstance(context.load_model(argument), axr.Model)
    assert isinstance(context.load_model(path=str(path)), axr.Model)


def test_load_model_of_a_missing_file_names_it(context, tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(DOC_EXCEPTIONS, match=re.escape(str(missing))):
        context.load_model(str(missing))


def test_model_inputs_and_outputs_are_lists_of_tensor_info_with_exact_types(context, package):
    model = context.load_model(package("resnet_tiny"))
    for infos in (model.inputs(), model.outputs()):
        assert type(infos) is list and infos
        for info in infos:
            assert isinstance(info, TensorInfo)
            assert type(info.shape) is tuple and all(type(d) is int for d in info.shape)
            assert type(info.unpadded_shape) is tuple
            assert all(type(d) is int for d in info.unpadded_shape)
            assert type(info.padding) is list
            assert all(type(p) is tuple and len(p) == 2 and all(type(v) is int for v in p)
                       for p in info.padding)
            assert len(info.padding) == len(info.shape)
            assert type(info.scale) is float and type(info.zero_point) is int
            assert type(info.size) is int and type(info.name) is str
            assert info.dtype == np.int8 and np.dtype(info.dtype) == np.int8
            assert info.size == int(np.prod(info.shape)) * np.dtype(info.dtype).itemsize
    (inp,) = model.inputs()
    (out,) = model.outputs()
    assert inp.shape == (1, 32, 32, 4) and inp.unpadded_shape == (1, 32, 32, 3)
    assert out.shape == (1, 1, 1, 1024) and out.unpadded_shape == (1, 1, 1, 1000)
    assert out.padding == [(0, 0), (0, 0), (0, 0), (0, 24)]
    assert model.inputs() == model.inputs()


def test_model_properties_as_documented(context, package):
    plain = context.load_model(package("resnet_tiny"))
    pre = context.load_model(package("resnet_tiny_pre"))
    post = context.load_model(package("resnet_tiny_post"))
    assert plain.properties["input_tensor_layout"] == "NHWC"
    assert pre.properties["preamble_graph"] == "preamble.onnx"
    assert post.properties["postamble_graph"] == "postamble.onnx"
    # "Relative path": relative to the package, and the file is there.
    assert not os.path.isabs(pre.properties["preamble_graph"])
    assert (package("resnet_tiny_pre") / pre.properties["preamble_graph"]).is_file()
    for key in ("preamble_graph", "postamble_graph", "input_tensor_layout"):
        assert key in plain.properties
    # Absent graphs are '' (docs/python-api.md), and each property reads as an attribute too.
    assert plain.properties["preamble_graph"] == "" and plain.properties["postamble_graph"] == ""
    for model in (plain, pre, post):
        for key in ("preamble_graph", "postamble_graph", "input_tensor_layout"):
            assert getattr(model, key) == model.properties[key]
    pre.release()
    with pytest.raises(axr.InvalidArgument, match="released"):
        pre.preamble_graph


def test_one_model_loads_onto_several_connections(context, package):
    path = package("resnet_tiny")
    model = context.load_model(path)
    data_in, data_out = reference_io(path)
    expected = as_tensor(data_out, model.outputs()[0])
    for _ in range(2):
        instance = context.device_connect(None, 1).load_model_instance(model)
        out = np.zeros_like(expected)
        instance.run([as_tensor(data_in, model.inputs()[0])], [out])
        np.testing.assert_array_equal(out, expected)


# --- load_model_instance ----------------------------------------------------------------------

DOC_INSTANCE_DEFAULTS = dict(aipu_cores=0, num_sub_devices=0, input_dmabuf=0,
                             device_profiling=0, host_profiling=0, output_dmabuf=0,
                             double_buffer=0, elf_in_ddr=1)


def test_load_model_instance_with_every_documented_default_spelled_out(tiny):
    instance = tiny.connection.load_model_instance(tiny.model, **DOC_INSTANCE_DEFAULTS)
    assert isinstance(instance, axr.ModelInstance)
    out = np.zeros_like(tiny.expected)
    assert instance.run([tiny.input], [out]) is None
    np.testing.assert_array_equal(out, tiny.expected)


def test_load_model_instance_by_keyword_model(tiny):
    instance = tiny.connection.load_model_instance(model=tiny.model, num_sub_devices=1)
    out = np.zeros_like(tiny.expected)
    instance.run([tiny.input], [out])
    np.testing.assert_array_equal(out, tiny.expected)


@pytest.mark.parametrize("flag", ["device_profiling", "host_profiling", "double_buffer"])
def test_boolean_kwargs_as_true_still_give_the_reference_output(tiny, flag):
    instance = tiny.connection.load_model_instance(tiny.model, **{flag: True})
    for _ in range(3):
        out = np.zeros_like(tiny.expected)
        instance.run([tiny.input], [out])
        np.testing.assert_array_equal(out, tiny.expected)


def test_numpy_bools_are_flags_like_python_bools(tiny, recwarn):
    """np.bool_ (what a comparison or a config array gives) is a flag, not an index: numpy
    deprecates its __index__, so it used to warn and will fail with a newer numpy."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        instance = tiny.connection.load_model_instance(tiny.model, double_buffer=np.bool_(True),
                                                       host_profiling=np.bool_(False))
    assert instance.options["double_buffer"] is True
    assert instance.options["host_profiling"] is False
    out = np.zeros_like(tiny.expected)
    instance.run([tiny.input], [out])
    np.testing.assert_array_equal(out, tiny.expected)


def test_load_model_instance_rejects_an_unknown_kwarg_by_name(tiny):
    with pytest.raises(DOC_EXCEPTIONS, match="num_subdevices"):
        tiny.connection.load_model_instance(tiny.model, num_subdevices=1)


def test_load_model_instance_rejects_something_that_is_not_a_model(tiny):
    with pytest.raises((TypeError, *DOC_EXCEPTIONS)):
        tiny.connection.load_model_instance("resnet_tiny")


def test_more_sub_devices_than_the_connection_has_is_an_error(tiny):
    with pytest.raises(DOC_EXCEPTIONS):
        tiny.connection.load_model_instance(tiny.model, num_sub_devices=2)


def test_aipu_cores_beyond_the_device_is_incompatible_device(tiny):
    with pytest.raises(axr.IncompatibleDevice):
        tiny.connection.load_model_instance(tiny.model, aipu_cores=5)


# --- run --------------------------------------------------------------------------------------

def test_run_writes_the_reference_output_in_place_and_returns_none(tiny):
    out = np.full_like(tiny.expected, 7)
    outputs = [out]
    assert tiny.instance.run([tiny.input], outputs) is None
    assert outputs[0] is out
    np.testing.assert_array_equal(out, tiny.expected)


def test_run_takes_inputs_and_outputs_by_keyword(tiny):
    out = np.zeros_like(tiny.expected)
    tiny.instance.run(inputs=[tiny.input], outputs=[out])
    np.testing.assert_array_equal(out, tiny.expected)


def test_run_does_not_modify_its_input(tiny):
    before = tiny.input.copy()
    tiny.instance.run([tiny.input], [np.zeros_like(tiny.expected)])
    np.testing.assert_array_equal(tiny.input, before)


def test_run_repeats_deterministically(tiny):
    outs = [np.zeros_like(tiny.expected) for _ in range(3)]
    for out in outs:
        tiny.instance.run([tiny.input], [out])
    for out in outs:
        np.testing.assert_array_equal(out, tiny.expected)


def test_run_bad_arguments_are_documented_exceptions_naming_the_problem(tiny):
    out = np.zeros_like(tiny.expected)
    with pytest.raises(DOC_EXCEPTIONS, match="float32"):
        tiny.instance.run([tiny.input.astype(np.float32)], [out])
    with pytest.raises(DOC_EXCEPTIONS, match=r"1, ?32, ?32, ?3"):
        tiny.instance.run([tiny.input[..., :3].copy()], [out])
    with pytest.raises(DOC_EXCEPTIONS):
        tiny.instance.run([], [out])
    with pytest.raises(DOC_EXCEPTIONS):
        tiny.instance.run([tiny.input], [])
    with pytest.raises(DOC_EXCEPTIONS):
        tiny.instance.run([tiny.input, tiny.input], [out])
    # Nothing half-written on failure: the instance still runs afterwards.
    tiny.instance.run([tiny.input], [out])
    np.testing.assert_array_equal(out, tiny.expected)


def test_run_with_fds_on_an_array_instance_is_an_error(tiny):
    fd = os.memfd_create("axr-blackbox")
    try:
        with pytest.raises(DOC_EXCEPTIONS):
            tiny.instance.run([fd], [np.zeros_like(tiny.expected)])
    finally:
        os.close(fd)


def memfd_with(data):
    fd = os.memfd_create("axr-blackbox")
    os.ftruncate(fd, len(data))
    os.pwrite(fd, data, 0)
    return fd


def test_dmabuf_instances_take_lists_of_file_descriptors(tiny):
    info_in, info_out = tiny.model.inputs()[0], tiny.model.outputs()[0]
    both = tiny.connection.load_model_instance(tiny.model, input_dmabuf=True, output_dmabuf=True)
    in_only = tiny.connection.load_model_instance(tiny.model, input_dmabuf=True)
    out_only = tiny.connection.load_model_instance(tiny.model, output_dmabuf=True)
    in_fd = memfd_with(tiny.input.tobytes())
    out_fd = memfd_with(bytes(info_out.size))
    try:
        both.run([in_fd], [out_fd])
        assert os.pread(out_fd, info_out.size, 0) == tiny.expected.tobytes()
        out = np.zeros_like(tiny.expected)
        in_only.run([in_fd], [out])
        np.testing.assert_array_equal(out, tiny.expected)
        os.pwrite(out_fd, bytes(info_out.size), 0)
        out_only.run([tiny.input], [out_fd])
        assert os.pread(out_fd, info_out.size, 0) == tiny.expected.tobytes()
        with pytest.raises(DOC_EXCEPTIONS):
            both.run([tiny.input], [out_fd])  # arrays where fds were promised
        assert info_in.size == tiny.input.nbytes
    finally:
        os.close(in_fd)
        os.close(out_fd)


def test_batched_model_on_four_sub_devices(context, package):
    path = package("resnet_tiny_b4")
    model = context.load_model(path)
    (inp,) = model.inputs()
    (out_info,) = model.outputs()
    assert inp.shape[0] == 4 and out_info.shape[0] == 4
    connection = context.device_connect(None, 4)
    instance = connection.load_model_instance(model, num_sub_devices=4, aipu_cores=4)
    data_in, data_out = reference_io(path)
    out = np.zeros(out_info.shape, dtype=out_info.dtype)
    instance.run([as_tensor(data_in, inp)], [out])
    np.testing.assert_array_equal(out, as_tensor(data_out, out_info))


def test_two_output_model_fills_each_output(context, package):
    path = package("two_outputs")
    model = context.load_model(path)
    outputs = model.outputs()
    assert len(outputs) == 2 and outputs[0].shape != outputs[1].shape
    connection = context.device_connect()
    instance = connection.load_model_instance(model)
    inputs = [as_tensor((path / "reference" / f"input_{i}.bin").read_bytes(), info)
              for i, info in enumerate(model.inputs())]
    arrays = [np.zeros(info.shape, dtype=info.dtype) for info in outputs]
    instance.run(inputs, arrays)
    for i, (info, array) in enumerate(zip(outputs, arrays)):
        want = as_tensor((path / "reference" / f"output_{i}.bin").read_bytes(), info)
        np.testing.assert_array_equal(array, want)


# --- threads ----------------------------------------------------------------------------------

def test_one_instance_run_from_several_threads_at_once(tiny):
    errors = []
    results = []

    def worker():
        try:
            for _ in range(4):
                out = np.zeros_like(tiny.expected)
                tiny.instance.run([tiny.input], [out])
                results.append(out)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, name=f"blackbox-run-{i}") for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 16
    for out in results:
        np.testing.assert_array_equal(out, tiny.expected)


@pytest.mark.parametrize("kwargs", [{}, {"double_buffer": True}], ids=["plain", "double_buffer"])
def test_concurrent_runs_of_one_instance_each_get_their_own_inputs_results(tiny, kwargs):
    """Distinct inputs per thread: a run handed another run's result would show here (the
    same input everywhere could not tell them apart)."""
    instance = tiny.connection.load_model_instance(tiny.model, **kwargs)
    rng = np.random.default_rng(7)
    inputs = [rng.integers(-128, 128, tiny.input.shape, dtype=np.int8) for _ in range(6)]
    expected = []
    for array in inputs:
        out = np.zeros_like(tiny.expected)
        tiny.instance.run([array], [out])
        expected.append(out)
    assert len({e.tobytes() for e in expected}) == len(expected)
    mismatches, errors = [], []

    def worker(k):
        try:
            for _ in range(5):
                out = np.zeros_like(tiny.expected)
                instance.run([inputs[k]], [out])
                if not np.array_equal(out, expected[k]):
                    mismatches.append(k)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(k,), name=f"blackbox-own-{k}")
               for k in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert not mismatches, mismatches


def test_objects_made_in_one_thread_are_used_in_another(package):
    made = {}

    def make():
        made["context"] = axr.Context()
        made["model"] = made["context"].load_model(package("resnet_tiny"))

    t = threading.Thread(target=make, name="blackbox-make")
    t.start()
    t.join()
    context, model = made["context"], made["model"]
    try:
        instance = context.device_connect().load_model_instance(model)
        out = np.zeros(model.outputs()[0].shape, dtype=np.int8)
        path = package("resnet_tiny")
        data_in, data_out = reference_io(path)
        instance.run([as_tensor(data_in, model.inputs()[0])], [out])
        assert out.tobytes() == data_out
    finally:
        context.release()


# --- TensorInfo: the doc's examples, literally ------------------------------------------------

QUANTISE_EXAMPLE = """
>>> input = TensorInfo((1, 230, 240, 3), padding=[(0, 0), (3, 3), (3, 13), (0, 1)])
>>> src = np.zeros(input.unpadded_shape, dtype=np.float32)
>>> quant = np.round((src / input.scale) + input.zero_point).clip(-128, 127).astype(np.int8)
>>> padded = np.pad(quant, input.padding, constant_values=input.zero_point)
"""

DEQUANTISE_EXAMPLE = """
>>> output = TensorInfo((1, 1, 1, 1024), padding=[(0, 0), (0, 0), (0, 0), (0, 24)])
>>> out = np.zeros(output.shape, dtype=np.int8)
>>> depadded = out[tuple(slice(b, -e if e else None) for b, e in output.padding)]
>>> dequant = (depadded.astype(np.float32) - output.zero_point) * output.scale
"""


def run_doctest(text, scope):
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, scope, "axelera-runtime-api.md", None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test, clear_globs=False)
    assert runner.failures == 0
    return test.globs


def test_quantise_and_pad_example_as_a_doctest():
    scope = run_doctest(QUANTISE_EXAMPLE, {"TensorInfo": TensorInfo, "np": np})
    assert scope["padded"].shape == (1, 230, 240, 3)
    assert scope["input"].unpadded_shape == (1, 224, 224, 2)
    assert scope["padded"].dtype == np.int8 and scope["padded"].flags["C_CONTIGUOUS"]


def test_dequantise_example_as_a_doctest():
    scope = run_doctest(DEQUANTISE_EXAMPLE, {"TensorInfo": TensorInfo, "np": np})
    assert scope["dequant"].shape == (1, 1, 1, 1000)
    assert scope["dequant"].dtype == np.float32


def test_doc_examples_here_are_the_docs_own(monkeypatch):
    """The snippets above are the doc's, character for character (when the doc is at hand)."""
    doc = os.environ.get("AXSTREAM_API_DOC")
    if not doc or not pathlib.Path(doc).is_file():
        pytest.skip("AXSTREAM_API_DOC is not set to axelera-runtime-api.md")
    text = pathlib.Path(doc).read_text()
    for example in (QUANTISE_EXAMPLE, DEQUANTISE_EXAMPLE):
        for line in example.strip().splitlines():
            assert line in text, line
    assert "with axr.Context() as context:\n    devices = context.list_devices()" in text
    assert "res0 = context.configure_device(device0, clock_profile=1000)" in text


def test_readme_python_example_runs_as_written(package, capsys):
    """README's Python section, its model path the only thing changed (the build directory
    here need not be build/)."""
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = readme.split("## Python\n\n```python\n", 1)[1].split("```", 1)[0]
    readme_path = "build/tests/data/models/resnet_tiny/model.json"
    assert readme_path in code
    code = code.replace(readme_path, str(package("resnet_tiny") / "model.json"))
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's example
    assert "metis-0:1:0" in capsys.readouterr().out
    assert scope["y"].shape == (1, 1, 1, 1024) and scope["y"].any()


def test_doc_examples_with_a_real_models_tensor_infos_run_the_model(tiny):
    """The quantise/pad and depad/dequantise snippets with the model's own TensorInfos around a
    run: the padded input is the right buffer and the depadded output has the classes."""
    input, output = tiny.model.inputs()[0], tiny.model.outputs()[0]
    rng = np.random.default_rng(3)
    src = rng.uniform(-1, 1, input.unpadded_shape).astype(np.float32)
    quant = np.round((src / input.scale) + input.zero_point).clip(-128, 127).astype(np.int8)
    padded = np.pad(quant, input.padding, constant_values=input.zero_point)
    out = np.zeros(output.shape, dtype=np.int8)
    tiny.instance.run([padded], [out])
    depadded = out[tuple(slice(b, -e if e else None) for b, e in output.padding)]
    dequant = (depadded.astype(np.float32) - output.zero_point) * output.scale
    assert dequant.shape == (1, 1, 1, 1000)
    assert np.isfinite(dequant).all() and np.ptp(dequant) > 0


# --- TensorInfo as a type ---------------------------------------------------------------------

def test_tensor_info_documented_defaults_by_keyword():
    info = TensorInfo(shape=(1, 2, 2, 8))
    assert info.dtype == np.int8 and info.name == "" and info.scale == 1.0
    assert type(info.scale) is float and info.zero_point == 0 and type(info.zero_point) is int
    assert info.padding == [(0, 0)] * 4 and type(info.padding) is list
    assert info.size == 32 and type(info.size) is int


def test_tensor_info_size_and_unpadded_shape_are_plain_ints_from_numpy_ints():
    info = TensorInfo(tuple(np.int64(d) for d in (1, 4, 4, 8)),
                      padding=[(np.int64(0), np.int64(0))] * 3 + [(0, np.int64(2))])
    assert type(info.size) is int and info.size == 128
    assert info.unpadded_shape == (1, 4, 4, 6)
    assert all(type(d) is int for d in info.unpadded_shape + info.shape)


def test_tensor_info_dtype_given_as_type_or_string_sizes_by_its_itemsize():
    assert TensorInfo((2, 3), dtype=np.float32).size == 24
    assert TensorInfo((2, 3), dtype="uint8").size == 6
    assert TensorInfo((2, 3), dtype=np.dtype(np.int16)).size == 12


def test_tensor_info_equality_copy_and_pickle():
    import copy

    info = TensorInfo((1, 1, 1, 16), name="logits", padding=[(0, 0)] * 3 + [(0, 6)], scale=0.25,
                      zero_point=-3)
    assert info == copy.deepcopy(info) == pickle.loads(pickle.dumps(info))
    assert info != TensorInfo((1, 1, 1, 16), name="logits")
    assert "logits" in repr(info)


def test_tensor_info_properties_follow_field_changes():
    info = TensorInfo((1, 8))
    info.padding = [(0, 0), (1, 1)]
    assert info.unpadded_shape == (1, 6)


def test_tensor_info_size_and_unpadded_shape_follow_assigned_fields():
    """The fields are plain dataclass fields a user may assign: size used to fail on
    dtype = np.float32 (a type, not a dtype) and unpadded_shape gave () for padding = None."""
    info = TensorInfo((1, 4))
    info.dtype = np.float32
    assert info.size == 16
    info.dtype = "int16"
    assert info.size == 8
    info.padding = None
    assert info.unpadded_shape == (1, 4)
    info.shape = [1, 6]
    assert info.unpadded_shape == (1, 6) and info.size == 12


@pytest.mark.parametrize("kwargs, field", [
    (dict(padding=[(0, 0), (0, 0), (0, 0)]), "padding"),
    (dict(padding=[0, 1]), "padding"),
    (dict(padding=[("a", 0), (0, 0)]), "padding"),
    (dict(dtype="no-such-type"), "dtype"),
    (dict(scale="x"), "scale"),
    (dict(zero_point=None), "zero_point"),
])
def test_tensor_info_bad_field_is_invalid_argument_naming_it(kwargs, field):
    with pytest.raises(axr.InvalidArgument, match=f"TensorInfo {field}"):
        TensorInfo((1, 4), **kwargs)


# --- signatures -------------------------------------------------------------------------------

@pytest.mark.parametrize("method, params", [
    (axr.Context.configure_device, ["self", "device", "kwargs"]),
    (axr.Context.device_connect, ["self", "device", "num_sub_devices", "kwargs"]),
    (axr.Context.device_ready, ["self", "device"]),
    (axr.Context.list_devices, ["self"]),
    (axr.Context.load_model, ["self", "path"]),
    (axr.Context.read_device_configuration, ["self", "device"]),
    (axr.Context.release, ["self"]),
    (axr.Connection.load_model_instance, ["self", "model", "kwargs"]),
    (axr.Model.inputs, ["self"]),
    (axr.Model.outputs, ["self"]),
    (axr.ModelInstance.run, ["self", "inputs", "outputs"]),
    (axr.Object.release, ["self"]),
])
def test_method_parameter_names_are_the_docs(method, params):
    assert list(inspect.signature(method).parameters) == params
