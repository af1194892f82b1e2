"""Fifth black-box audit of axelera.runtime, written from the API document
(/work/shared/axelera-runtime-api.md) and from programs users run against Voyager SDK's
axelera.runtime (examples/axruntime/python/*.py, axelera/app/device_manager.py), without
reading the implementation.

Angle of this audit: (a) one assertion per behavioural sentence of the document, listed
first as a checklist; (b) whole user programs rather than single calls; (c) misuse of
every public call: wrong argument types, awkward numpy arrays, calls after release and
after the with-block, in any order.

Checklist (doc sentence -> test):
 Object
  O1 "All objects created by the runtime are owned by the Context that created them."
     -> test_every_object_reports_the_context_that_created_it
  O2 "When the Context is released, all objects created by it are also released."
     -> test_context_release_releases_models_connections_and_instances
  O3 "context: Reference to the Context that owns this object."
     -> test_every_object_reports_the_context_that_created_it
  O4 "release(): Release the object and all its children."
     -> test_connection_release_releases_its_instances_but_not_the_model,
        test_model_release_releases_the_instances_made_from_it,
        test_model_instance_release_leaves_its_connection_usable
 Context
  C1 "Normally you would create it in a with statement ... with axr.Context() as context:
     devices = context.list_devices()" -> test_with_statement_binds_a_context_that_lists_devices
  C2 "Alternatively, you can call release() to release the context and all its children."
     -> test_context_release_releases_models_connections_and_instances
  C3 configure_device: "Returns True if the configuration setting is complete, False if it
     is pending." "Return type: bool" -> test_configure_device_returns_a_bool_then_ready_turns_true
  C4 the two-device polling example -> test_doc_two_device_configuration_loop_terminates
  C5 property table defaults: clock_profile 800, clock_profile_core_0-3 800,
     mvm_utilisation_core_0-3 100 -> test_read_device_configuration_shows_documented_defaults
  C6 "Device clock profile in MHz", "Per-core ... in MHz", "Per-core MVM utilisation as
     percentage" -> test_configured_values_read_back_in_documented_units,
     test_mvm_utilisation_outside_a_percentage_is_rejected
  C7 "Valid properties are:" (the table) -> test_configure_device_rejects_an_unknown_property
  C8 device_connect(device=None, num_sub_devices=1): defaults, "Return type: Connection"
     -> test_device_connect_defaults_return_a_connection
  C9 "This reserves the sub-devices so that other processes cannot use them."
     -> test_reserved_sub_devices_are_refused_to_another_process_until_released
  C10 device_ready "Returns True if ... complete, False if is pending." "Return type: bool"
     -> test_configure_device_returns_a_bool_then_ready_turns_true
  C11 list_devices "List all devices on the system." "Return type: list[DeviceInfo]"
     -> test_list_devices_lists_every_simulated_device
  C12 load_model "The returned model can be loaded onto multiple Connection objects"
     "Return type: Model" -> test_one_model_loads_onto_several_connections
  C13 read_device_configuration "Return type: dict[str, str]"
     -> test_read_device_configuration_shows_documented_defaults
  C14 release "is called automatically when Context is used as a context manager."
     -> test_leaving_the_with_block_releases_everything
 Connection
  N1 load_model_instance "Valid kwargs are" the table, with defaults; "Return type:
     ModelInstance" -> test_load_model_instance_accepts_every_documented_kwarg_at_its_default
  N2 "num_sub_devices ... set to batch size of the model", "aipu_cores ... set to batch size"
     -> test_batched_model_runs_on_as_many_sub_devices_as_its_batch
  N3 kwargs outside the table -> test_load_model_instance_rejects_an_unknown_kwarg
 Model
  M1 properties preamble_graph / postamble_graph "Relative path to a ... ONNX file",
     "input_tensor_layout Always NHWC" -> test_model_properties_as_documented
  M2 inputs()/outputs() "Return type: list[TensorInfo]"
     -> test_inputs_and_outputs_are_tensor_info_lists
 ModelInstance
  R1 "Otherwise it should be a list of numpy arrays." "Return type: None"
     -> test_run_fills_the_output_arrays_in_place_and_returns_none
  R2 "On failure, an exception is raised." -> the misuse tests at the end
  R3 "If the model instance was created with input_dmabuf=True then inputs must be a list of
     file descriptors." -> test_input_dmabuf_instance_refuses_numpy_arrays
 Types
  T1 BoardType enum names and values -> test_board_type_is_the_documented_enum
  T2 DeviceInfo fields and types, "for metis this is 4", "will always be 0"
     -> test_device_info_fields_have_documented_types
  T3 TensorInfo fields and defaults "dtype = np.int8", "name = ''", "scale = 1.0",
     "zero_point = 0" -> test_tensor_info_defaults
  T4 "size: The size of the tensor in bytes." -> test_tensor_info_size_is_in_bytes
  T5 "unpadded_shape: The shape of the tensor without padding." and both doc snippets
     -> test_doc_quantise_and_pad_snippet, test_doc_depad_and_dequantise_snippet
  T6 "padding: list[tuple[int, int]]" -> test_tensor_info_padding_is_a_list_of_int_pairs
 Exceptions
  E1 the nine exception classes -> test_the_nine_documented_exceptions_are_distinct_exceptions
"""

import enum
import os
import queue
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from conftest import reset_devices

EXCEPTION_NAMES = ("ConnectionError", "DeviceInUse", "IncompatibleDevice", "InternalError",
                   "InvalidArgument", "InvalidConfiguration", "NotImplemented", "Pending",
                   "UnknownError")


def documented_errors(axr):
    return tuple(getattr(axr, name) for name in EXCEPTION_NAMES)


def model_path(package_dir):
    """What the Voyager examples pass to load_model: the package's model.json."""
    return package_dir / "model.json"


def reference_io(package_dir, model):
    """The seeded reference input/output tensors stored with each test package."""
    ins = [np.fromfile(package_dir / "reference" / f"input_{i}.bin", dtype=info.dtype)
           .reshape(info.shape) for i, info in enumerate(model.inputs())]
    outs = [np.fromfile(package_dir / "reference" / f"output_{i}.bin", dtype=info.dtype)
            .reshape(info.shape) for i, info in enumerate(model.outputs())]
    return ins, outs


def assert_runs_to(instance, inputs, expected):
    """Run `instance` on `inputs` into a fresh zeroed output and expect `expected` exactly."""
    out = np.zeros_like(expected)
    instance.run(inputs, [out])
    np.testing.assert_array_equal(out, expected)


def expect_result_or_contiguity_refusal(axr, instance, inputs, outputs, out, expected):
    """run() either refuses a non-contiguous array naming contiguity, or gives `expected` in
    `out` (a hidden temporary copy must not swallow the result)."""
    try:
        instance.run(inputs, outputs)
    except axr.InvalidArgument as error:
        assert "contiguous" in str(error)
    else:
        np.testing.assert_array_equal(out, expected)


def zeros_like_infos(infos):
    return [np.zeros(info.shape, dtype=info.dtype) for info in infos]


def use_devices(monkeypatch, count, subdevices=4):
    monkeypatch.setenv("AXSTREAM_SIM_DEVICES", str(count))
    monkeypatch.setenv("AXSTREAM_SIM_SUBDEVICES", str(subdevices))
    reset_devices()


# ---------------------------------------------------------------------------------------
# (a) one assertion per documented behaviour
# ---------------------------------------------------------------------------------------


def test_the_nine_documented_exceptions_are_distinct_exceptions(axr):
    classes = documented_errors(axr)
    assert len(set(classes)) == 9
    for cls in classes:
        assert isinstance(cls, type) and issubclass(cls, Exception), cls
    # The documented names must not be the builtins they shadow: a user writing
    # `except axr.ConnectionError` must not catch socket errors, and axr.NotImplemented
    # must be raisable (the builtin NotImplemented is a constant, not an exception).
    import builtins
    assert axr.ConnectionError is not builtins.ConnectionError
    assert axr.NotImplemented is not builtins.NotImplemented
    with pytest.raises(axr.NotImplemented):
        raise axr.NotImplemented("x")


def test_board_type_is_the_documented_enum(axr):
    documented = {"alpha_pcie": 0, "alpha_m2": 1, "pcie": 2, "m2": 3, "devboard": 4, "sbc": 5,
                  "unknown": 6}
    assert issubclass(axr.BoardType, enum.Enum)
    assert {member.name: member.value for member in axr.BoardType} == documented
    for name, value in documented.items():
        assert axr.BoardType[name] is axr.BoardType(value) is getattr(axr.BoardType, name)


def test_with_statement_binds_a_context_that_lists_devices(axr):
    with axr.Context() as context:
        assert isinstance(context, axr.Context)
        assert isinstance(context, axr.Object)
        devices = context.list_devices()
        assert type(devices) is list
        assert devices and all(isinstance(d, axr.DeviceInfo) for d in devices)


def test_list_devices_lists_every_simulated_device(axr, monkeypatch):
    use_devices(monkeypatch, 3)
    with axr.Context() as context:
        names = [d.name for d in context.list_devices()]
    assert names == ["metis-0:1:0", "metis-0:2:0", "metis-0:3:0"]


def test_device_info_fields_have_documented_types(axr):
    with axr.Context() as context:
        (device,) = context.list_devices()
    assert isinstance(device.name, str) and device.name == "metis-0:1:0"
    # "for metis this is 4"
    assert type(device.subdevice_count) is int and device.subdevice_count == 4
    # "Note in the current implementation this field is not populated and will always be 0"
    # describes Axelera's runtime; axstream populates max_memory, in_use and in_use_by
    # (docs/python-api.md, DeviceInfo), so only the types and the idle values are checked.
    assert type(device.max_memory) is int and device.max_memory >= 0
    assert device.in_use is False and device.in_use == 0  # nothing is connected
    assert isinstance(device.in_use_by, str) and device.in_use_by == ""
    assert isinstance(device.board_type, axr.BoardType)
    assert device.board_type is axr.BoardType.pcie
    for field in ("firmware_version", "flashed_firmware_version",
                  "board_controller_firmware_version", "board_controller_board_type"):
        assert isinstance(getattr(device, field), str), field
    assert type(device.board_revision) is int


def test_configure_device_returns_a_bool_then_ready_turns_true(axr):
    with axr.Context() as context:
        (device,) = context.list_devices()
        result = context.configure_device(device, clock_profile=400)
        assert type(result) is bool
        deadline = time.monotonic() + 5
        while not result:
            assert time.monotonic() < deadline, "configuration never completed"
            time.sleep(0.02)
            result = context.device_ready(device)
            assert type(result) is bool
        assert context.device_ready(device) is True
        assert context.read_device_configuration(device)["clock_profile"] == "400"


def test_doc_two_device_configuration_loop_terminates(axr, monkeypatch):
    use_devices(monkeypatch, 2)
    with axr.Context() as context:
        device0, device1 = context.list_devices()
        start = time.monotonic()
        # The document's example, verbatim apart from the timeout guard.
        res0 = context.configure_device(device0, clock_profile=1000)
        res1 = context.configure_device(device1, clock_profile=1000)
        while not res0 or not res1:
            assert time.monotonic() - start < 5
            time.sleep(0.05)
            res0 = context.device_ready(device0)
            res1 = context.device_ready(device1)
        for device in (device0, device1):
            assert context.read_device_configuration(device)["clock_profile"] == "1000"


def test_read_device_configuration_shows_documented_defaults(axr):
    with axr.Context() as context:
        (device,) = context.list_devices()
        config = context.read_device_configuration(device)
    assert type(config) is dict
    assert all(type(k) is str and type(v) is str for k, v in config.items())
    assert config["clock_profile"] == "800"
    for core in range(4):
        assert config[f"clock_profile_core_{core}"] == "800"
        assert config[f"mvm_utilisation_core_{core}"] == "100"


def wait_ready(context, device, first):
    deadline = time.monotonic() + 5
    ready = first
    while not ready:
        assert time.monotonic() < deadline
        time.sleep(0.02)
        ready = context.device_ready(device)


def test_configured_values_read_back_in_documented_units(axr):
    with axr.Context() as context:
        (device,) = context.list_devices()
        wait_ready(context, device,
                   context.configure_device(device, clock_profile_core_2=600,
                                            mvm_utilisation_core_1=50))
        config = context.read_device_configuration(device)
        # MHz and percent as plain integers, so int() of the value is the setting (what
        # Voyager's device_manager does with clock_profile_core_N).
        assert int(config["clock_profile_core_2"]) == 600
        assert int(config["mvm_utilisation_core_1"]) == 50
        assert config["clock_profile_core_0"] == "800"  # the other cores keep the default
        assert config["mvm_utilisation_core_0"] == "100"


def test_mvm_utilisation_outside_a_percentage_is_rejected(axr):
    with axr.Context() as context:
        (device,) = context.list_devices()
        for bad in (101, -1):
            with pytest.raises((axr.InvalidArgument, axr.InvalidConfiguration)) as caught:
                context.configure_device(device, mvm_utilisation_core_0=bad)
            assert "mvm_utilisation_core_0" in str(caught.value)
        # a rejected request leaves the configuration as it was
        wait_ready(context, device, context.device_ready(device))
        assert context.read_device_configuration(device)["mvm_utilisation_core_0"] == "100"


def test_configure_device_rejects_an_unknown_property(axr):
    with axr.Context() as context:
        (device,) = context.list_devices()
        with pytest.raises((axr.InvalidArgument, axr.InvalidConfiguration)) as caught:
            context.configure_device(device, clock_profle=800)  # typo of clock_profile
        assert "clock_profle" in str(caught.value)
        with pytest.raises((axr.InvalidArgument, axr.InvalidConfiguration)) as caught:
            context.configure_device(device, clock_profile_core_4=800)  # cores are 0-3
        assert "clock_profile_core_4" in str(caught.value)


def test_device_connect_defaults_return_a_connection(axr, package):
    with axr.Context() as context:
        connection = context.device_connect()
        assert isinstance(connection, axr.Connection)
        assert isinstance(connection, axr.Object)
        # num_sub_devices=1 by default: three more single connections fit on the 4 cores
        others = [context.device_connect(None, 1) for _ in range(3)]
        assert all(isinstance(c, axr.Connection) for c in others)


def test_every_object_reports_the_context_that_created_it(axr, package):
    with axr.Context() as first, axr.Context() as second:
        model = first.load_model(model_path(package("resnet_tiny")))
        connection = first.device_connect(None, 1)
        instance = connection.load_model_instance(model)
        other = second.device_connect(None, 1)
        assert model.context is first
        assert connection.context is first
        assert instance.context is first
        assert other.context is second
        # A Context is an Object too; it is its own owner.
        assert first.context is first
        for obj in (model, connection, instance):
            assert isinstance(obj, axr.Object)


def test_a_model_is_not_loaded_onto_another_contexts_connection(axr, package):
    # "All objects created by the runtime are owned by the Context that created them": an
    # instance of first's model on second's connection would have two owners, so the load is
    # refused by name (docs/python-api.md, Lifetimes) rather than tying the two together.
    with axr.Context() as first, axr.Context() as second:
        model = first.load_model(model_path(package("resnet_tiny")))
        with pytest.raises(axr.InvalidArgument, match="another Context"):
            second.device_connect(None, 1).load_model_instance(model)


def test_model_properties_as_documented(axr, package):
    with axr.Context() as context:
        plain = context.load_model(model_path(package("resnet_tiny")))
        pre = context.load_model(model_path(package("resnet_tiny_pre")))
        post = context.load_model(model_path(package("resnet_tiny_post")))
        for model in (plain, pre, post):
            assert model.properties["input_tensor_layout"] == "NHWC"
        pre_path = pre.properties["preamble_graph"]
        post_path = post.properties["postamble_graph"]
        # "Relative path to a preamble ONNX file"
        assert isinstance(pre_path, str) and not os.path.isabs(pre_path)
        assert (package("resnet_tiny_pre") / pre_path).is_file()
        assert isinstance(post_path, str) and not os.path.isabs(post_path)
        assert (package("resnet_tiny_post") / post_path).is_file()
        assert not plain.properties.get("preamble_graph")
        assert not plain.properties.get("postamble_graph")


def test_inputs_and_outputs_are_tensor_info_lists(axr, package):
    with axr.Context() as context:
        model = context.load_model(model_path(package("two_outputs")))
        inputs, outputs = model.inputs(), model.outputs()
    assert type(inputs) is list and type(outputs) is list
    assert len(inputs) == 1 and len(outputs) == 2
    for info in inputs + outputs:
        assert isinstance(info, axr.TensorInfo)
        assert type(info.shape) is tuple and all(type(d) is int for d in info.shape)
        assert np.dtype(info.dtype) == np.int8
        assert isinstance(info.scale, float) and isinstance(info.zero_point, int)
        assert len(info.padding) == len(info.shape)
    # the documented output shapes of two_outputs (tests/data/make_test_models.py)
    assert [o.shape for o in outputs] == [(1, 16, 16, 8), (1, 1, 1, 16)]
    assert [o.unpadded_shape for o in outputs] == [(1, 16, 16, 6), (1, 1, 1, 10)]


def test_run_fills_the_output_arrays_in_place_and_returns_none(axr, package):
    directory = package("two_outputs")
    with axr.Context() as context:
        model = context.load_model(model_path(directory))
        instance = context.device_connect().load_model_instance(model)
        inputs, expected = reference_io(directory, model)
        outputs = zeros_like_infos(model.outputs())
        identities = [id(o) for o in outputs]
        assert instance.run(inputs, outputs) is None
        assert [id(o) for o in outputs] == identities
        for got, want in zip(outputs, expected):
            np.testing.assert_array_equal(got, want)


def test_one_model_loads_onto_several_connections(axr, package):
    directory = package("resnet_tiny")
    with axr.Context() as context:
        model = context.load_model(model_path(directory))
        instances = [context.device_connect(None, 1).load_model_instance(model)
                     for _ in range(4)]
        inputs, (expected,) = reference_io(directory, model)
        for instance in instances:
            assert_runs_to(instance, inputs, expected)


def test_load_model_instance_accepts_every_documented_kwarg_at_its_default(axr, package):
    directory = package("resnet_tiny")
    with axr.Context() as context:
        model = context.load_model(model_path(directory))
        instance = context.device_connect().load_model_instance(
            model, aipu_cores=0, num_sub_devices=0, input_dmabuf=0, device_profiling=0,
            host_profiling=0, output_dmabuf=0, double_buffer=0, elf_in_ddr=1)
        assert isinstance(instance, axr.ModelInstance) and isinstance(instance, axr.Object)
        inputs, (expected,) = reference_io(directory, model)
        assert_runs_to(instance, inputs, expected)


def test_load_model_instance_rejects_an_unknown_kwarg(axr, package):
    with axr.Context() as context:
        model = context.load_model(model_path(package("resnet_tiny")))
        connection = context.device_connect()
        with pytest.raises((axr.InvalidArgument, axr.InvalidConfiguration)) as caught:
            connection.load_model_instance(model, double_bufer=1)
        assert "double_bufer" in str(caught.value)


def test_batched_model_runs_on_as_many_sub_devices_as_its_batch(axr, package):
    directory = package("resnet_tiny_b4")
    with axr.Context() as context:
        model = context.load_model(model_path(directory))
        batch = model.inputs()[0].shape[0]
        assert batch == 4
        connection = context.device_connect(None, batch)
        instance = connection.load_model_instance(model, num_sub_devices=batch,
                                                  aipu_cores=batch)
        inputs, (expected,) = reference_io(directory, model)
        assert_runs_to(instance, inputs, expected)


def test_input_dmabuf_instance_refuses_numpy_arrays(axr, package):
    with axr.Context() as context:
        model = context.load_model(model_path(package("resnet_tiny")))
        instance = context.device_connect().load_model_instance(model, input_dmabuf=True)
        with pytest.raises(axr.InvalidArgument, match="file descriptor"):
            instance.run([np.zeros(model.inputs()[0].shape, np.int8)],
                         zeros_like_infos(model.outputs()))


def test_tensor_info_defaults(axr):
    info = axr.TensorInfo((1, 4, 4, 3))
    assert info.shape == (1, 4, 4, 3) and type(info.shape) is tuple
    assert np.dtype(info.dtype) == np.int8
    assert info.name == ""
    assert info.scale == 1.0
    assert info.zero_point == 0
    assert info.unpadded_shape == info.shape  # no padding given: nothing to strip
    named = axr.TensorInfo((2, 3), dtype=np.float32, name="logits", scale=0.5, zero_point=-3)
    assert (np.dtype(named.dtype), named.name, named.scale, named.zero_point) == (
        np.float32, "logits", 0.5, -3)


def test_tensor_info_size_is_in_bytes(axr):
    assert axr.TensorInfo((1, 230, 240, 3)).size == 230 * 240 * 3
    assert axr.TensorInfo((2, 3), dtype=np.float32).size == 2 * 3 * 4
    assert axr.TensorInfo((5,), dtype=np.int16).size == 10
    # padded size: shape is the padded shape, so size counts the padding too
    padded = axr.TensorInfo((1, 1, 1, 1024), padding=[(0, 0), (0, 0), (0, 0), (0, 24)])
    assert padded.size == 1024


def test_tensor_info_padding_is_a_list_of_int_pairs(axr, package):
    with axr.Context() as context:
        model = context.load_model(model_path(package("resnet_tiny")))
        (info,) = model.inputs()
    assert type(info.padding) is list
    for pair in info.padding:
        # Voyager's examples hash tuple(info.padding) (functools.lru_cache) and slice with
        # `for b, e in info.padding`: each entry must be a hashable (start, end) pair.
        assert type(pair) is tuple and len(pair) == 2 and all(type(v) is int for v in pair)
    hash(tuple(info.padding))
    assert info.unpadded_shape == tuple(
        d - b - e for d, (b, e) in zip(info.shape, info.padding))


def test_doc_quantise_and_pad_snippet(axr):
    input = axr.TensorInfo((1, 230, 240, 3), padding=[(0, 0), (3, 3), (3, 13), (0, 1)])
    src = np.zeros(input.unpadded_shape, dtype=np.float32)
    quant = np.round((src / input.scale) + input.zero_point).clip(-128, 127).astype(np.int8)
    padded = np.pad(quant, input.padding, constant_values=input.zero_point)
    # the document's padding is applied on top of its shape: unpadded (1,224,224,2)
    assert input.unpadded_shape == (1, 224, 224, 2)
    assert padded.shape == input.shape


def test_doc_depad_and_dequantise_snippet(axr):
    output = axr.TensorInfo((1, 1, 1, 1024), padding=[(0, 0), (0, 0), (0, 0), (0, 24)])
    out = np.zeros(output.shape, dtype=np.int8)
    depadded = out[tuple(slice(b, -e if e else None) for b, e in output.padding)]
    dequant = (depadded.astype(np.float32) - output.zero_point) * output.scale
    assert depadded.shape == output.unpadded_shape == (1, 1, 1, 1000)
    assert dequant.dtype == np.float32


def test_context_release_releases_models_connections_and_instances(axr, package):
    context = axr.Context()
    model = context.load_model(model_path(package("resnet_tiny")))
    connection = context.device_connect(None, 4)
    instance = connection.load_model_instance(model)
    infos = model.inputs(), model.outputs()
    context.release()
    errors = documented_errors(axr)
    with pytest.raises(errors):
        model.inputs()
    with pytest.raises(errors):
        connection.load_model_instance(model)
    with pytest.raises(errors):
        instance.run(zeros_like_infos(infos[0]), zeros_like_infos(infos[1]))
    with pytest.raises(errors):
        context.list_devices()
    # the released connection gave its 4 sub-devices back
    with axr.Context() as again:
        again.device_connect(None, 4)
    # TensorInfo values taken before the release stay valid (they are plain data)
    assert infos[0][0].shape == (1, 32, 32, 4)


def test_leaving_the_with_block_releases_everything(axr, package):
    with axr.Context() as context:
        model = context.load_model(model_path(package("resnet_tiny")))
        instance = context.device_connect(None, 4).load_model_instance(model)
        ins, outs = zeros_like_infos(model.inputs()), zeros_like_infos(model.outputs())
    with pytest.raises(documented_errors(axr)):
        instance.run(ins, outs)
    with pytest.raises(documented_errors(axr)):
        context.device_connect()
    with axr.Context() as again:  # the four sub-devices are free again
        again.device_connect(None, 4)


def test_connection_release_releases_its_instances_but_not_the_model(axr, package):
    directory = package("resnet_tiny")
    with axr.Context() as context:
        model = context.load_model(model_path(directory))
        connection = context.device_connect(None, 4)
        instance = connection.load_model_instance(model)
        inputs, (expected,) = reference_io(directory, model)
        connection.release()
        with pytest.raises(documented_errors(axr)):
            instance.run(inputs, [np.zeros_like(expected)])
        # the model is the context's child, not the connection's: still loadable
        fresh = context.device_connect(None, 4).load_model_instance(model)
        assert_runs_to(fresh, inputs, expected)


def test_model_instance_release_leaves_its_connection_usable(axr, package):
    directory = package("resnet_tiny")
    with axr.Context() as context:
        model = context.load_model(model_path(directory))
        connection = context.device_connect()
        first = connection.load_model_instance(model)
        first.release()
        inputs, (expected,) = reference_io(directory, model)
        with pytest.raises(documented_errors(axr)):
            first.run(inputs, [np.zeros_like(expected)])
        second = connection.load_model_instance(model)
        assert_runs_to(second, inputs, expected)


RESERVE_IN_CHILD = r"""
import sys
import axelera.runtime as axr
with axr.Context() as context:
    try:
        context.device_connect(None, int(sys.argv[1]))
    except axr.DeviceInUse as error:
        print("DeviceInUse:", error)
        sys.exit(3)
print("connected")
"""


def run_child(count):
    return subprocess.run([sys.executable, "-c", RESERVE_IN_CHILD, str(count)],
                          capture_output=True, text=True, timeout=30, env=os.environ.copy())


def test_reserved_sub_devices_are_refused_to_another_process_until_released(axr):
    with axr.Context() as context:
        connection = context.device_connect(None, 3)
        child = run_child(2)  # only one sub-device is left
        assert child.returncode == 3, child.stdout + child.stderr
        assert "metis-0:1:0" in child.stdout  # the error names the device
        child = run_child(1)
        assert child.returncode == 0, child.stdout + child.stderr
        connection.release()
        child = run_child(4)
        assert child.returncode == 0, child.stdout + child.stderr


# ---------------------------------------------------------------------------------------
# (b) user programs
# ---------------------------------------------------------------------------------------


def test_program_two_models_in_one_context_share_the_device(axr, package):
    """A cascaded app (Voyager's axruntime_cascaded_pipeline.py shape): stage 1 and stage 2
    models, two cores each, from one Context."""
    d1, d2 = package("resnet_tiny"), package("two_outputs")
    with axr.Context() as ctx:
        stage1 = ctx.load_model(str(model_path(d1)))
        stage2 = ctx.load_model(str(model_path(d2)))
        conns1 = [ctx.device_connect(None, 1) for _ in range(2)]
        conns2 = [ctx.device_connect(None, 1) for _ in range(2)]
        inst1 = [c.load_model_instance(stage1, num_sub_devices=1, aipu_cores=1) for c in conns1]
        inst2 = [c.load_model_instance(stage2, num_sub_devices=1, aipu_cores=1) for c in conns2]
        in1, exp1 = reference_io(d1, stage1)
        in2, exp2 = reference_io(d2, stage2)
        for frame in range(6):
            out1 = zeros_like_infos(stage1.outputs())
            inst1[frame % 2].run(in1, out1)
            out2 = zeros_like_infos(stage2.outputs())
            inst2[frame % 2].run(in2, out2)
            for got, want in zip(out1 + out2, exp1 + exp2):
                np.testing.assert_array_equal(got, want)
        # the device is full now: a fifth core is refused with the documented type
        with pytest.raises(axr.DeviceInUse):
            ctx.device_connect(None, 1)


def test_program_two_models_in_two_contexts(axr, package):
    d1, d2 = package("resnet_tiny"), package("two_outputs")
    ctx1, ctx2 = axr.Context(), axr.Context()
    try:
        m1, m2 = ctx1.load_model(model_path(d1)), ctx2.load_model(model_path(d2))
        i1 = ctx1.device_connect(None, 2).load_model_instance(m1)
        i2 = ctx2.device_connect(None, 2).load_model_instance(m2)
        (in1, exp1), (in2, exp2) = reference_io(d1, m1), reference_io(d2, m2)
        ctx1.release()  # releasing one context leaves the other's objects alive
        out2 = zeros_like_infos(m2.outputs())
        i2.run(in2, out2)
        for got, want in zip(out2, exp2):
            np.testing.assert_array_equal(got, want)
        with pytest.raises(documented_errors(axr)):
            i1.run(in1, zeros_like_infos([axr.TensorInfo(e.shape) for e in exp1]))
    finally:
        ctx2.release()
        ctx1.release()  # a second release of a context is harmless


def test_program_streaming_loop_reuses_its_buffers(axr, package):
    """A camera loop: one input and one output buffer allocated once, refilled in place
    (inputs[0][:] = frame) every frame, as Voyager's examples do."""
    directory = package("resnet_tiny")
    with axr.Context() as ctx:
        model = ctx.load_model(model_path(directory))
        instance = ctx.device_connect().load_model_instance(model)
        (info,) = model.inputs()
        (out_info,) = model.outputs()
        inputs = [np.zeros(info.shape, np.int8)]
        outputs = [np.zeros(out_info.shape, np.int8)]
        ref_in, (ref_out,) = reference_io(directory, model)
        rng = np.random.default_rng(5)
        for frame in range(12):
            if frame % 3 == 0:
                inputs[0][:] = ref_in[0]
            else:
                core = rng.integers(-128, 128, size=info.unpadded_shape, dtype=np.int8)
                inputs[0][:] = np.pad(core, info.padding, constant_values=info.zero_point)
            outputs[0][:] = 77  # stale data must be overwritten, not kept
            instance.run(inputs, outputs)
            if frame % 3 == 0:
                np.testing.assert_array_equal(outputs[0], ref_out)
            else:
                assert not np.array_equal(outputs[0], ref_out)
                # the output's padding is rewritten too, not left holding the stale 77s
                np.testing.assert_array_equal(outputs[0][..., 1000:], ref_out[..., 1000:])


def test_program_enumerates_devices_and_picks_one_by_name(axr, monkeypatch, package):
    """Voyager's device selector: pick a device by name from list_devices() and use the
    DeviceInfo for configure, read and connect."""
    use_devices(monkeypatch, 2)
    directory = package("resnet_tiny")
    with axr.Context() as ctx:
        devices = ctx.list_devices()
        chosen = [d for d in devices if d.name == "metis-0:2:0"]
        assert len(chosen) == 1
        (device,) = chosen
        wait_ready(ctx, device, ctx.configure_device(device, clock_profile_core_0=500))
        assert int(ctx.read_device_configuration(device)["clock_profile_core_0"]) == 500
        # the other device is untouched
        assert ctx.read_device_configuration(devices[0])["clock_profile_core_0"] == "800"
        connection = ctx.device_connect(device, 4)
        model = ctx.load_model(model_path(directory))
        instance = connection.load_model_instance(model)
        ins, (expected,) = reference_io(directory, model)
        assert_runs_to(instance, ins, expected)
        # all four cores of metis-0:2:0 are held; metis-0:1:0 is still free
        with pytest.raises(axr.DeviceInUse) as caught:
            ctx.device_connect(device, 1)
        assert "metis-0:2:0" in str(caught.value)
        ctx.device_connect(devices[0], 4)


def test_program_catches_the_documented_exception_types(axr, package):
    """A program that wraps the runtime in `except (axr.X, axr.Y)` handlers: every failure
    it provokes must arrive as one of the nine documented classes, with a message."""
    caught = []
    with axr.Context() as ctx:
        attempts = [
            lambda: ctx.load_model("/nonexistent/model.json"),
            lambda: ctx.device_connect(None, 5),
            lambda: ctx.configure_device(ctx.list_devices()[0], clock_profile="fast"),
        ]
        model = ctx.load_model(model_path(package("resnet_tiny")))
        instance = ctx.device_connect().load_model_instance(model)
        attempts.append(lambda: instance.run([], []))
        for attempt in attempts:
            try:
                attempt()
            except documented_errors(axr) as error:
                caught.append(error)
                assert str(error), type(error)
    assert len(caught) == len(attempts)
    assert "/nonexistent/model.json" in str(caught[0])
    # Voyager's entry points catch RuntimeError around the whole program
    # (axruntime_dblbuff.py's entrypoint_main, device_manager's detect_metis_type): each
    # documented exception must land there too.
    for error in caught:
        assert isinstance(error, RuntimeError), type(error).__mro__
    for cls in documented_errors(axr):
        assert issubclass(cls, RuntimeError), cls


def test_program_uses_every_board_type_by_name_and_value(axr, monkeypatch):
    for member in axr.BoardType:
        monkeypatch.setenv("AXSTREAM_SIM_BOARD_TYPE", member.name)
        reset_devices()
        with axr.Context() as ctx:
            (device,) = ctx.list_devices()
        assert device.board_type is member
        assert device.board_type == axr.BoardType(member.value)
        # Voyager's device_manager switches on board_type.name
        assert device.board_type.name == member.name


def test_program_threaded_producer_consumer(axr, package):
    """Voyager's Worker pattern: one thread per ModelInstance, queues in and out, frames
    interleaved between workers; results must come back matched to their frames."""
    directory = package("resnet_tiny")
    with axr.Context() as ctx:
        model = ctx.load_model(model_path(directory))
        instances = [ctx.device_connect(None, 1).load_model_instance(model) for _ in range(2)]
        (info,) = model.inputs()
        ref_in, (ref_out,) = reference_io(directory, model)
        # expected results per frame, computed serially first
        frames = []
        rng = np.random.default_rng(9)
        for _ in range(10):
            core = rng.integers(-128, 128, size=info.unpadded_shape, dtype=np.int8)
            frames.append(np.pad(core, info.padding, constant_values=info.zero_point))
        serial = []
        for frame in frames:
            out = np.zeros_like(ref_out)
            instances[0].run([frame], [out])
            serial.append(out)

        inq = [queue.Queue() for _ in instances]
        outq = queue.Queue()

        def worker(index):
            while True:
                item = inq[index].get()
                if item is None:
                    return
                number, frame = item
                out = np.zeros_like(ref_out)
                try:
                    instances[index].run([frame], [out])
                except Exception as error:  # noqa: BLE001 - handed to the consumer
                    outq.put((number, error))
                else:
                    outq.put((number, out))

        threads = [threading.Thread(target=worker, args=(i,), name=f"worker-{i}")
                   for i in range(len(instances))]
        for thread in threads:
            thread.start()
        try:
            for number, frame in enumerate(frames):
                inq[number % len(instances)].put((number, frame))
            results = dict(outq.get(timeout=20) for _ in frames)
        finally:
            for q in inq:
                q.put(None)
            for thread in threads:
                thread.join(timeout=20)
        for number, expected in enumerate(serial):
            got = results[number]
            assert not isinstance(got, Exception), got
            np.testing.assert_array_equal(got, expected)


# ---------------------------------------------------------------------------------------
# (c) misuse
# ---------------------------------------------------------------------------------------


@pytest.fixture
def loaded(axr, package):
    """(context, model, instance, inputs, expected outputs) for resnet_tiny."""
    directory = package("resnet_tiny")
    context = axr.Context()
    model = context.load_model(model_path(directory))
    instance = context.device_connect().load_model_instance(model)
    inputs, expected = reference_io(directory, model)
    yield context, model, instance, inputs, expected
    context.release()


def rejects(axr, call, *words):
    """call() must raise InvalidArgument (never a bare TypeError from argument conversion:
    docs/python-api.md, Bad arguments) naming the problem."""
    with pytest.raises(axr.InvalidArgument) as caught:
        call()
    message = str(caught.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    return caught.value


@pytest.mark.parametrize("bad_inputs", [None, "input", 3, [None], ["x"], [[1, 2, 3]]],
                         ids=["None", "str", "int", "[None]", "[str]", "[list]"])
def test_run_rejects_inputs_that_are_not_arrays(axr, loaded, bad_inputs):
    _, _, instance, _, expected = loaded
    rejects(axr, lambda: instance.run(bad_inputs, [np.zeros_like(expected[0])]))


@pytest.mark.parametrize("bad_outputs", [None, "out", [None], [b"bytes"]],
                         ids=["None", "str", "[None]", "[bytes]"])
def test_run_rejects_outputs_that_are_not_arrays(axr, loaded, bad_outputs):
    _, _, instance, inputs, _ = loaded
    rejects(axr, lambda: instance.run(inputs, bad_outputs))


def test_run_rejects_a_float_array_for_an_int8_input(axr, loaded):
    _, _, instance, inputs, expected = loaded
    error = rejects(axr, lambda: instance.run([inputs[0].astype(np.float32)],
                                              [np.zeros_like(expected[0])]), "float32")
    assert isinstance(error, axr.InvalidArgument)
    assert "int8" in str(error)


def test_run_rejects_a_uint8_array_for_an_int8_input(axr, loaded):
    _, _, instance, inputs, expected = loaded
    error = rejects(axr, lambda: instance.run([inputs[0].view(np.uint8)],
                                              [np.zeros_like(expected[0])]), "uint8")
    assert isinstance(error, axr.InvalidArgument)


def test_run_rejects_a_float_output_array(axr, loaded):
    _, _, instance, inputs, expected = loaded
    error = rejects(axr, lambda: instance.run(inputs, [expected[0].astype(np.float32)]),
                    "float32")
    assert isinstance(error, axr.InvalidArgument)


def test_run_rejects_a_big_endian_multi_byte_array(axr, loaded):
    _, _, instance, inputs, expected = loaded
    big = inputs[0].astype(">i2")
    error = rejects(axr, lambda: instance.run([big], [np.zeros_like(expected[0])]))
    assert isinstance(error, axr.InvalidArgument)


def test_run_accepts_an_explicitly_big_endian_int8_array(axr, loaded):
    # byte order means nothing for one-byte items: '>i1' is int8
    _, _, instance, inputs, expected = loaded
    out = np.zeros_like(expected[0])
    instance.run([inputs[0].astype(">i1")], [out])
    np.testing.assert_array_equal(out, expected[0])


def test_run_rejects_a_zero_dimensional_array(axr, loaded):
    _, _, instance, _, expected = loaded
    error = rejects(axr, lambda: instance.run([np.array(0, np.int8)],
                                              [np.zeros_like(expected[0])]))
    assert isinstance(error, axr.InvalidArgument)
    error = rejects(axr, lambda: instance.run([np.zeros((1, 32, 32, 4), np.int8)],
                                              [np.array(0, np.int8)]))
    assert isinstance(error, axr.InvalidArgument)


def test_run_rejects_a_wrong_shape_with_the_expected_shape_named(axr, loaded):
    _, _, instance, inputs, expected = loaded
    error = rejects(axr, lambda: instance.run([np.zeros((1, 32, 32, 3), np.int8)],
                                              [np.zeros_like(expected[0])]))
    assert isinstance(error, axr.InvalidArgument)
    assert "(1,32,32,4)" in str(error).replace(" ", "")


def test_run_rejects_a_wrong_number_of_tensors(axr, loaded):
    _, _, instance, inputs, expected = loaded
    out = [np.zeros_like(expected[0])]
    for call in (lambda: instance.run([], out), lambda: instance.run(inputs * 2, out),
                 lambda: instance.run(inputs, []), lambda: instance.run(inputs, out * 2)):
        assert isinstance(rejects(axr, call), axr.InvalidArgument)


def test_run_refuses_a_huge_tensor_list_at_once(axr, loaded):
    _, _, instance, inputs, expected = loaded
    start = time.monotonic()
    error = rejects(axr, lambda: instance.run(inputs * 10**6, [np.zeros_like(expected[0])]))
    assert "1000000" in str(error)
    error = rejects(axr, lambda: instance.run(inputs, [np.zeros_like(expected[0])] * 10**6))
    assert "1000000" in str(error)
    assert time.monotonic() - start < 2  # counted, not walked element by element


def test_run_reads_a_non_contiguous_input_correctly_or_refuses_it(axr, loaded):
    _, _, instance, inputs, expected = loaded
    wide = np.zeros(inputs[0].shape[:-1] + (8,), np.int8)
    wide[..., ::2] = inputs[0]
    view = wide[..., ::2]
    assert not view.flags.c_contiguous
    out = np.zeros_like(expected[0])
    expect_result_or_contiguity_refusal(axr, instance, [view], [out], out, expected[0])
    # a Fortran-ordered array of the right shape holds the right values in another order
    fortran = np.asfortranarray(inputs[0])
    out = np.zeros_like(expected[0])
    expect_result_or_contiguity_refusal(axr, instance, [fortran], [out], out, expected[0])


def test_run_writes_a_non_contiguous_output_or_refuses_it(axr, loaded):
    """Writing into a hidden temporary copy would silently lose the results."""
    _, _, instance, inputs, expected = loaded
    wide = np.zeros(expected[0].shape[:-1] + (2 * expected[0].shape[-1],), np.int8)
    view = wide[..., ::2]
    expect_result_or_contiguity_refusal(axr, instance, inputs, [view], view, expected[0])


def test_run_accepts_a_read_only_input_and_refuses_a_read_only_output(axr, loaded):
    _, _, instance, inputs, expected = loaded
    frozen = inputs[0].copy()
    frozen.flags.writeable = False
    out = np.zeros_like(expected[0])
    instance.run([frozen], [out])
    np.testing.assert_array_equal(out, expected[0])
    locked = np.zeros_like(expected[0])
    locked.flags.writeable = False
    error = rejects(axr, lambda: instance.run(inputs, [locked]))
    assert isinstance(error, axr.InvalidArgument)
    assert "writ" in str(error)  # "writeable"/"written"/"read-only ... write"
    assert not locked.any()


def test_load_model_rejects_wrong_argument_types(axr):
    # InvalidArgument as every other bad argument (docs/python-api.md), naming the call and
    # what it got, not os.fspath's anonymous TypeError.
    with axr.Context() as context:
        for bad in (None, 3, 1.5, ["model.json"]):
            with pytest.raises(axr.InvalidArgument) as caught:
                context.load_model(bad)
            assert "load_model" in str(caught.value)
            assert type(bad).__name__ in str(caught.value)
        with pytest.raises(documented_errors(axr)) as caught:
            context.load_model("")
        assert str(caught.value)


def test_load_model_accepts_str_path_and_directory(axr, package):
    """Voyager's examples pass a str or a pathlib.Path to model.json; some pass the
    package directory. Both must load the same model."""
    directory = package("resnet_tiny")
    with axr.Context() as context:
        shapes = {context.load_model(p).inputs()[0].shape
                  for p in (str(model_path(directory)), model_path(directory))}
    assert shapes == {(1, 32, 32, 4)}


@pytest.mark.parametrize("count", [0, -1, 5, 2**63, 10**30])
def test_device_connect_rejects_impossible_sub_device_counts(axr, count):
    with axr.Context() as context:
        with pytest.raises(axr.InvalidArgument) as caught:
            context.device_connect(None, count)
        assert str(count) in str(caught.value)
        # nothing was reserved by the refused call
        context.device_connect(None, 4)


@pytest.mark.parametrize("bad", ["1", 1.0, None], ids=["str", "float", "None"])
def test_device_connect_rejects_non_integer_sub_device_counts(axr, bad):
    with axr.Context() as context:
        with pytest.raises(axr.InvalidArgument, match="num_sub_devices"):
            context.device_connect(None, bad)


# An int is an index into list_devices() (docs/python-api.md, device arguments): 0 is the
# one device, 1 is out of range.
@pytest.mark.parametrize("bad", ["metis-0:9:0", 1, -1, 1.5, object()],
                         ids=["unknown-name", "index-1", "index-minus-1", "float", "object"])
def test_device_arguments_refuse_what_is_not_a_device(axr, bad):
    with axr.Context() as context:
        for call in (lambda: context.device_connect(bad),
                     lambda: context.configure_device(bad, clock_profile=800),
                     lambda: context.device_ready(bad),
                     lambda: context.read_device_configuration(bad)):
            with pytest.raises(axr.InvalidArgument, match="device"):
                call()


def test_configure_device_rejects_non_numeric_values(axr):
    with axr.Context() as context:
        (device,) = context.list_devices()
        for value in ("fast", None, [800], 800.5):
            with pytest.raises(axr.InvalidArgument, match="clock_profile"):
                context.configure_device(device, clock_profile=value)
        assert context.read_device_configuration(device)["clock_profile"] == "800"


def test_load_model_instance_rejects_what_is_not_a_model(axr, package):
    with axr.Context() as context:
        connection = context.device_connect()
        for bad in (None, "model.json", str(model_path(package("resnet_tiny"))), 0, connection,
                    context):
            with pytest.raises(axr.InvalidArgument) as caught:
                connection.load_model_instance(bad)
            message = str(caught.value)
            assert "model" in message and "metis-0:1:0" in message
            if bad is not None:
                assert type(bad).__name__ in message


def test_a_released_object_says_so_before_looking_at_its_arguments(axr, package):
    # docs/python-api.md: "... was released", before any check of its arguments.
    context = axr.Context()
    model = context.load_model(model_path(package("resnet_tiny")))
    connection = context.device_connect()
    instance = connection.load_model_instance(model)
    context.release()
    calls = {
        "load_model(None)": lambda: context.load_model(None),
        "load_model(3)": lambda: context.load_model(3),
        "load_model_instance(str)": lambda: connection.load_model_instance("model.json"),
        "load_model_instance(None)": lambda: connection.load_model_instance(None),
        "load_model_instance(bad value)": lambda: connection.load_model_instance(
            model, double_buffer=None),
        "configure_device(None)": lambda: context.configure_device(None, clock_profile=800),
        "device_ready(None)": lambda: context.device_ready(None),
        "read_device_configuration(object)": lambda: context.read_device_configuration(
            object()),
        "device_connect(object)": lambda: context.device_connect(object()),
        "device_connect(None, 'x')": lambda: context.device_connect(None, "x"),
        "device_connect(bad value)": lambda: context.device_connect(
            device_firmware_check=None),
        "run(None, None)": lambda: instance.run(None, None),
    }
    for what, call in calls.items():
        with pytest.raises(axr.InvalidArgument) as caught:
            call()
        assert "was released" in str(caught.value), what


def test_load_model_instance_rejects_bad_kwarg_values(axr, package):
    with axr.Context() as context:
        model = context.load_model(model_path(package("resnet_tiny")))
        connection = context.device_connect()
        for kwargs in ({"num_sub_devices": -1}, {"aipu_cores": "four"},
                       {"double_buffer": None}, {"num_sub_devices": 2**70}):
            with pytest.raises(axr.InvalidArgument) as caught:
                connection.load_model_instance(model, **kwargs)
            assert next(iter(kwargs)) in str(caught.value)


def test_model_from_a_released_context_cannot_be_loaded_elsewhere(axr, package):
    old = axr.Context()
    model = old.load_model(model_path(package("resnet_tiny")))
    old.release()
    with axr.Context() as context:
        connection = context.device_connect()
        with pytest.raises(documented_errors(axr)):
            connection.load_model_instance(model)


def test_every_call_after_release_raises_in_any_order(axr, package):
    directory = package("resnet_tiny")
    context = axr.Context()
    (device,) = context.list_devices()
    model = context.load_model(model_path(directory))
    connection = context.device_connect()
    instance = connection.load_model_instance(model)
    inputs, expected = reference_io(directory, model)
    context.release()
    errors = documented_errors(axr)
    calls = [
        lambda: context.list_devices(),
        lambda: context.load_model(model_path(directory)),
        lambda: context.device_connect(),
        lambda: context.configure_device(device, clock_profile=800),
        lambda: context.device_ready(device),
        lambda: context.read_device_configuration(device),
        lambda: connection.load_model_instance(model),
        lambda: model.inputs(),
        lambda: model.outputs(),
        lambda: instance.run(inputs, [np.zeros_like(expected[0])]),
    ]
    for call in calls + calls[::-1]:
        with pytest.raises(errors) as caught:
            call()
        assert "release" in str(caught.value)
    # releasing again, children first or parent first, is harmless
    for obj in (instance, connection, model, context, context):
        obj.release()


def test_releasing_children_then_parent_in_any_order_is_harmless(axr, package):
    directory = package("resnet_tiny")
    for order in ("children-first", "parent-first", "interleaved"):
        context = axr.Context()
        model = context.load_model(model_path(directory))
        connection = context.device_connect(None, 4)
        instance = connection.load_model_instance(model)
        objs = {"children-first": [instance, connection, model, context],
                "parent-first": [context, connection, instance, model],
                "interleaved": [connection, context, instance, model]}[order]
        for obj in objs:
            obj.release()
        with axr.Context() as check:  # every sub-device was given back
            check.device_connect(None, 4)


def test_context_exits_cleanly_when_the_body_raises(axr, package):
    with pytest.raises(KeyError):
        with axr.Context() as context:
            context.device_connect(None, 4)
            raise KeyError("user error")
    with axr.Context() as context:  # the with-block exit still released the reservation
        context.device_connect(None, 4)


def test_tensor_info_huge_shape_size_does_not_wrap(axr):
    info = axr.TensorInfo((2**20, 2**20, 2**20), dtype=np.float32)
    assert info.size == 2**60 * 4


def test_tensor_info_rejects_a_padding_of_the_wrong_rank(axr):
    with pytest.raises(axr.InvalidArgument, match="padding"):
        axr.TensorInfo((1, 4, 4, 3), padding=[(0, 0), (1, 1)])


@pytest.mark.parametrize("kwargs, field", [
    ({"shape": (1.5, 2)}, "shape"),
    ({"shape": (True, 2)}, "shape"),
    ({"shape": "12"}, "shape"),             # a str is a sequence, but not of dimensions
    ({"shape": ("1", "2")}, "shape"),
    ({"shape": (1, 4), "padding": [(0, 0), (0.5, 0)]}, "padding"),
    ({"shape": (1,), "zero_point": 1.5}, "zero_point"),
    ({"shape": (1,), "zero_point": "3"}, "zero_point"),
    ({"shape": (1,), "scale": "0.5"}, "scale"),
    ({"shape": (1,), "name": 3}, "name"),
])
def test_tensor_info_never_truncates_or_parses_a_field(axr, kwargs, field):
    """shape: tuple[int, ...], zero_point: int, name: str. 1.5 is not quietly the int 1 and
    "12" is not the shape (1, 2): a lossy field is refused, naming the field."""
    with pytest.raises(axr.InvalidArgument, match=f"TensorInfo {field}"):
        axr.TensorInfo(**kwargs)


def test_tensor_info_takes_numpy_integers_and_integral_floats(axr):
    # What a program computes its shapes with (numpy) and what JSON gives (3.0) are ints.
    info = axr.TensorInfo((np.int64(1), 4.0), padding=[(0, 0), (np.int32(1), 1.0)],
                          zero_point=np.int8(-5), scale=np.float32(0.25))
    assert info.shape == (1, 4) and all(type(d) is int for d in info.shape)
    assert info.padding == [(0, 0), (1, 1)] and all(type(v) is int for p in info.padding for v in p)
    assert info.zero_point == -5 and type(info.zero_point) is int
    assert info.scale == 0.25 and type(info.scale) is float
    assert info.unpadded_shape == (1, 2)


def test_tensor_infos_handed_out_are_copies(axr, package):
    """Programs keep and tweak TensorInfos (Voyager's preprocessing reads them per frame):
    changing one must not change what the model reports or what run() expects."""
    directory = package("resnet_tiny")
    with axr.Context() as context:
        model = context.load_model(model_path(directory))
        instance = context.device_connect().load_model_instance(model)
        mine = model.inputs()
        mine[0].shape = (9,)
        mine[0].padding = None
        mine.append("junk")
        model.properties["input_tensor_layout"] = "NCHW"
        assert len(model.inputs()) == 1
        assert model.inputs()[0].shape == (1, 32, 32, 4)
        assert model.inputs()[0].padding == [(0, 0), (0, 0), (0, 0), (0, 1)]
        assert model.properties["input_tensor_layout"] == "NHWC"
        inputs, (expected,) = reference_io(directory, model)
        assert_runs_to(instance, inputs, expected)


def test_tensor_info_device_info_and_errors_survive_pickling(axr, package):
    """multiprocessing hands TensorInfo/DeviceInfo to workers and sends exceptions back."""
    import pickle
    with axr.Context() as context:
        (device,) = context.list_devices()
        info = context.load_model(model_path(package("two_outputs"))).outputs()[0]
        try:
            context.device_connect(None, 9)
        except axr.InvalidArgument as error:
            raised = error
    assert pickle.loads(pickle.dumps(info)) == info
    assert pickle.loads(pickle.dumps(device)) == device
    back = pickle.loads(pickle.dumps(raised))
    assert type(back) is axr.InvalidArgument and str(back) == str(raised)


def test_model_release_releases_the_instances_made_from_it(axr, package):
    # "release(): Release the object and all its children": a ModelInstance is the loaded
    # form of its Model.
    directory = package("resnet_tiny")
    with axr.Context() as context:
        model = context.load_model(model_path(directory))
        instance = context.device_connect().load_model_instance(model)
        inputs, (expected,) = reference_io(directory, model)
        model.release()
        with pytest.raises(axr.InvalidArgument, match="released"):
            instance.run(inputs, [np.zeros_like(expected)])
        assert model.context is context  # "context" still answers after release


def test_run_writes_into_a_contiguous_view_of_a_ring_buffer(axr, loaded):
    """A ring of output slots, ring[k] passed as the output: the slot itself is written."""
    _, _, instance, inputs, expected = loaded
    ring = np.zeros((3,) + expected[0].shape, np.int8)
    instance.run(inputs, [ring[1]])
    np.testing.assert_array_equal(ring[1], expected[0])
    assert not ring[0].any() and not ring[2].any()


def test_run_writes_into_a_memory_mapped_output(axr, loaded, tmp_path):
    _, _, instance, inputs, expected = loaded
    mapped = np.memmap(tmp_path / "out.bin", dtype=np.int8, mode="w+", shape=expected[0].shape)
    instance.run(inputs, [mapped])
    mapped.flush()
    np.testing.assert_array_equal(np.fromfile(tmp_path / "out.bin", np.int8).reshape(
        expected[0].shape), expected[0])


def test_run_rejects_buffers_that_are_not_numpy_arrays(axr, loaded):
    # "Otherwise it should be a list of numpy arrays": a bytearray of the right size is not.
    _, _, instance, inputs, expected = loaded
    for raw in (bytearray(inputs[0].tobytes()), memoryview(inputs[0].tobytes())):
        error = rejects(axr, lambda: instance.run([raw], [np.zeros_like(expected[0])]))
        assert isinstance(error, axr.InvalidArgument)
        assert type(raw).__name__ in str(error)
    error = rejects(axr, lambda: instance.run(inputs[0][None], [np.zeros_like(expected[0])]))
    assert "list" in str(error)  # one stacked ndarray is not a list of arrays


@pytest.mark.parametrize("fd", [-1, "3", 3.0, True, 2**40],
                         ids=["negative", "str", "float", "bool", "huge"])
def test_dmabuf_instance_rejects_what_is_not_a_file_descriptor(axr, package, fd):
    with axr.Context() as context:
        model = context.load_model(model_path(package("resnet_tiny")))
        instance = context.device_connect().load_model_instance(model, input_dmabuf=True)
        with pytest.raises(axr.InvalidArgument, match="input 0"):
            instance.run([fd], zeros_like_infos(model.outputs()))


def test_dmabuf_instance_rejects_closed_short_and_pipe_descriptors(axr, package):
    directory = package("resnet_tiny")
    with axr.Context() as context:
        model = context.load_model(model_path(directory))
        instance = context.device_connect().load_model_instance(model, input_dmabuf=True)
        outputs = zeros_like_infos(model.outputs())
        short = os.memfd_create("short")
        os.ftruncate(short, 10)
        read_end, write_end = os.pipe()
        closed = os.memfd_create("closed")
        os.close(closed)
        try:
            with pytest.raises(axr.InvalidArgument, match="10 bytes"):
                instance.run([short], outputs)
            with pytest.raises(axr.InvalidArgument, match="pipe"):
                instance.run([read_end], outputs)
            with pytest.raises(axr.InvalidArgument, match=f"fd {closed}"):
                instance.run([closed], outputs)
            # and a right-sized memfd holding the reference input runs it
            (info,) = model.inputs()
            good = os.memfd_create("good")
            inputs, (expected,) = reference_io(directory, model)
            os.ftruncate(good, info.size)
            os.pwrite(good, inputs[0].tobytes(), 0)
            instance.run([good], outputs)
            np.testing.assert_array_equal(outputs[0], expected)
            os.close(good)
        finally:
            for fd in (short, read_end, write_end):
                os.close(fd)


@pytest.mark.parametrize("victim", ["context", "connection", "instance", "model"])
def test_release_while_other_threads_are_running_ends_them_cleanly(axr, package, victim):
    """A UI thread releases while workers are inside run(): each worker's next run raises
    InvalidArgument '... released'; none hangs, crashes or returns wrong data."""
    directory = package("resnet_tiny")
    for trial in range(4):
        context = axr.Context()
        model = context.load_model(model_path(directory))
        connection = context.device_connect(None, 1)
        instance = connection.load_model_instance(model)
        inputs, (expected,) = reference_io(directory, model)
        errors, wrong = [], []
        started = threading.Barrier(4)

        def loop():
            out = np.zeros_like(expected)
            started.wait()
            while True:
                try:
                    instance.run(inputs, [out])
                except Exception as error:  # noqa: BLE001 - checked below
                    errors.append(error)
                    return
                if not np.array_equal(out, expected):
                    wrong.append(out.copy())

        threads = [threading.Thread(target=loop, name=f"runner-{i}") for i in range(3)]
        for thread in threads:
            thread.start()
        started.wait()
        time.sleep(0.005 * trial)
        {"context": context, "connection": connection, "instance": instance,
         "model": model}[victim].release()
        for thread in threads:
            thread.join(timeout=10)
        assert not any(thread.is_alive() for thread in threads)
        assert len(errors) == 3 and not wrong
        for error in errors:
            assert isinstance(error, axr.InvalidArgument) and "released" in str(error), error
        context.release()


def test_program_voyager_device_manager_configuration(axr, monkeypatch):
    """axelera/app/device_manager.py: per-core clocks and MVM limits plus ddr_size and
    device_firmware='1' on every device, poll device_ready, then int() the per-core clocks
    read back."""
    use_devices(monkeypatch, 2)
    with axr.Context() as ctx:
        devices = ctx.list_devices()
        configures = {"ddr_size": 0x40000000, "device_firmware": "1"}
        for core in range(4):
            configures[f"mvm_utilisation_core_{core}"] = 75
            configures[f"clock_profile_core_{core}"] = 600
        ready = [ctx.configure_device(d, **configures) for d in devices]
        deadline = time.monotonic() + 5
        if not all(ready):
            while not all(ctx.device_ready(d) for d in devices):
                assert time.monotonic() < deadline
                time.sleep(0.05)
        for device in devices:
            cfg = ctx.read_device_configuration(device)
            assert {n: int(cfg[f"clock_profile_core_{n}"]) for n in range(4)} == dict.fromkeys(
                range(4), 600)
            assert {int(cfg[f"mvm_utilisation_core_{n}"]) for n in range(4)} == {75}
            assert int(cfg["ddr_size"]) == 0x40000000


def test_device_none_picks_a_device_with_enough_free_sub_devices(axr, monkeypatch):
    # "device: None means automatically select available device" (Voyager's yolo11 example)
    use_devices(monkeypatch, 2)
    with axr.Context() as ctx:
        first = ctx.device_connect(None, 3)
        second = ctx.device_connect(None, 2)  # metis-0:1:0 has only one left
        third = ctx.device_connect(None, 1)
        assert "metis-0:1:0" in repr(first)
        assert "metis-0:2:0" in repr(second) and "metis-0:1:0" in repr(third)
        used = {d.name: d.in_use for d in ctx.list_devices()}
        assert used == {"metis-0:1:0": True, "metis-0:2:0": True}
        with pytest.raises(axr.DeviceInUse):
            ctx.device_connect(None, 3)


def test_tensor_info_size_and_unpadded_shape_never_truncate_assigned_fields(axr):
    # The fields stay assignable (docs/python-api.md); what was assigned is read as the
    # constructor reads it: 1.5 is not the dimension 1, so size is not quietly 4 bytes.
    info = axr.TensorInfo((2, 4), padding=[(0, 0), (1, 1)])
    info.shape = (1.5, 4)
    with pytest.raises(axr.InvalidArgument, match="TensorInfo shape"):
        info.size
    with pytest.raises(axr.InvalidArgument, match="TensorInfo shape"):
        info.unpadded_shape
    info.shape = [np.int64(2), 4.0]  # numpy and integral values are ints
    assert info.size == 8 and info.unpadded_shape == (2, 2)
    info.padding = [(0, 0), (0.5, 0)]
    with pytest.raises(axr.InvalidArgument, match="TensorInfo padding"):
        info.unpadded_shape
    info.padding = [(0, 0), (1,)]
    with pytest.raises(axr.InvalidArgument, match="pairs"):
        info.unpadded_shape
