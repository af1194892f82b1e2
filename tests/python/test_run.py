"""Model, Connection.load_model_instance and ModelInstance.run on the generated test packages:
results against the numpy reference of the same QDQ graph, and every argument check."""

import os

import numpy as np
import pytest

import axelera.runtime as axr
from conftest import empty_outputs, random_inputs, reset_devices


def max_lsb_difference(actual, expected):
    return int(np.max(np.abs(actual.astype(np.int32) - expected.astype(np.int32))))


@pytest.fixture
def context():
    with axr.Context() as context:
        yield context


def load(context, path, **kwargs):
    model = context.load_model(path)
    connection = context.device_connect(None, kwargs.pop("cores", 1))
    return model, connection.load_model_instance(model, **kwargs)


def test_model_tensor_infos_match_the_manifest(context, package):
    model = context.load_model(package("resnet_tiny"))
    assert isinstance(model, axr.Model) and model.context is context
    (i,) = model.inputs()
    (o,) = model.outputs()
    assert isinstance(i, axr.TensorInfo) and isinstance(o, axr.TensorInfo)
    assert i.shape == (1, 32, 32, 4) and i.unpadded_shape == (1, 32, 32, 3)
    assert i.padding == [(0, 0), (0, 0), (0, 0), (0, 1)]
    assert i.dtype == np.int8 and i.size == 32 * 32 * 4
    assert i.scale > 0 and -128 <= i.zero_point <= 127
    assert o.shape == (1, 1, 1, 1024) and o.unpadded_shape == (1, 1, 1, 1000)
    assert o.padding == [(0, 0), (0, 0), (0, 0), (0, 24)]
    assert o.name


def test_model_properties_is_a_dict_with_the_documented_keys(context, package):
    model = context.load_model(package("resnet_tiny") / "model.json")
    properties = model.properties
    assert properties["input_tensor_layout"] == "NHWC"
    assert properties["preamble_graph"] == "" and properties["postamble_graph"] == ""
    post = context.load_model(package("resnet_tiny_post")).properties
    assert post["postamble_graph"] == "postamble.onnx"
    pre = context.load_model(package("resnet_tiny_pre")).properties
    assert pre["preamble_graph"] == "preamble.onnx"


def test_two_outputs_model_names_and_shapes(context, package):
    model = context.load_model(package("two_outputs"))
    assert [o.name for o in model.outputs()] == ["boxes", "scores"]
    assert [o.shape for o in model.outputs()] == [(1, 16, 16, 8), (1, 1, 1, 16)]
    assert [o.unpadded_shape for o in model.outputs()] == [(1, 16, 16, 6), (1, 1, 1, 10)]
    assert model.inputs()[0].name == "image"


def test_load_model_missing_package_is_invalid_argument(context, tmp_path):
    with pytest.raises(axr.InvalidArgument, match="nothing_here"):
        context.load_model(tmp_path / "nothing_here")


def test_load_model_corrupt_manifest_is_invalid_argument(context, package, tmp_path):
    import shutil

    copy = tmp_path / "broken"
    shutil.copytree(package("resnet_tiny"), copy)
    (copy / "manifest.json").write_text("{ not json")
    with pytest.raises(axr.InvalidArgument, match="manifest.json"):
        context.load_model(copy)


def test_load_model_takes_a_path_that_is_not_utf8(context, package, tmp_path):
    import shutil

    copy = os.fsencode(str(tmp_path)) + b"/pkg\xff"
    shutil.copytree(os.fsencode(str(package("resnet_tiny"))), copy)
    for form in (copy, os.fsdecode(copy), os.fsdecode(copy + b"/model.json")):
        assert context.load_model(form).inputs()[0].shape == (1, 32, 32, 4), form
    # The message quotes the path; its undecodable byte must not empty the exception.
    with pytest.raises(axr.InvalidArgument) as raised:
        context.load_model(copy + b"\xfe")
    assert str(raised.value) == (f"model package {tmp_path}/pkg\\xff\\xfe does not exist "
                                 "(expected a package directory or its model.json)")


def test_load_model_takes_str_bytes_and_pathlike_paths(context, package):
    path = package("resnet_tiny")
    for form in (str(path), path, os.fsencode(str(path)), os.fsencode(str(path / "model.json"))):
        assert context.load_model(form).inputs()[0].shape == (1, 32, 32, 4), form


def test_load_model_reads_a_model_file_of_another_name(context, package, tmp_path):
    import shutil

    copy = tmp_path / "renamed"
    shutil.copytree(package("resnet_tiny"), copy)
    (copy / "model.json").rename(copy / "resnet_tiny.json")
    assert context.load_model(copy / "resnet_tiny.json").outputs()[0].shape == (1, 1, 1, 1024)
    (copy / "garbage.json").write_text("{ not json")
    with pytest.raises(axr.InvalidArgument, match="garbage.json"):
        context.load_model(copy / "garbage.json")


def test_core_graph_computing_a_float16_output_is_refused_naming_the_tensor(context, package,
                                                                            tmp_path):
    """A package's device tensors are int8 (the manifest's dtypes, what TensorInfo reports); a
    core graph whose output is made float16 by a last Cast is refused when the instance is
    loaded, naming the output and the dtype, never run on data of the wrong type."""
    import shutil

    import onnx
    from onnx import TensorProto, helper

    copy = tmp_path / "half_output"
    shutil.copytree(package("resnet_tiny"), copy)
    core = onnx.load(str(copy / "core.onnx"))
    output = core.graph.output[0].name
    for node in core.graph.node:
        node.output[:] = [name + "_int8" if name == output else name for name in node.output]
    core.graph.node.append(helper.make_node("Cast", [output + "_int8"], [output], name="to_half",
                                            to=TensorProto.FLOAT16))
    onnx.save(core, str(copy / "core.onnx"))
    model = context.load_model(copy)
    assert model.outputs()[0].dtype == np.int8
    with pytest.raises(axr.InvalidArgument,
                       match=f"output 0 '{output}' is float16: .*device tensors are int8"):
        context.device_connect(None, 1).load_model_instance(model)


def test_load_model_of_a_non_package_file_says_what_it_expected(context, package):
    with pytest.raises(axr.InvalidArgument, match="core.onnx is a file but not a model file"):
        context.load_model(package("resnet_tiny") / "core.onnx")


@pytest.mark.parametrize("name", ["resnet_tiny", "two_outputs"])
def test_run_matches_the_numpy_reference_within_one_lsb(context, package, reference, name):
    model, instance = load(context, package(name))
    assert isinstance(instance, axr.ModelInstance)
    for seed in range(3):
        inputs = random_inputs(model, seed)
        outputs = empty_outputs(model)
        assert instance.run(inputs, outputs) is None
        expected = reference.run_package_reference(str(package(name)), inputs)
        assert len(expected) == len(outputs)
        for actual, wanted in zip(outputs, expected):
            assert actual.shape == wanted.shape
            assert max_lsb_difference(actual, wanted) <= 1
        assert np.any(outputs[0] != 0)


def test_run_matches_the_packaged_reference_files(context, package):
    path = package("resnet_tiny")
    model, instance = load(context, path)
    (info,) = model.inputs()
    data = np.fromfile(path / "reference" / "input_0.bin", dtype=np.int8).reshape(info.shape)
    outputs = empty_outputs(model)
    instance.run([data], outputs)
    expected = np.fromfile(path / "reference" / "output_0.bin", dtype=np.int8)
    assert max_lsb_difference(outputs[0].ravel(), expected) <= 1


def test_batch_four_spreads_over_four_cores_and_matches_the_reference(context, package,
                                                                      reference):
    path = package("resnet_tiny_b4")
    model, instance = load(context, path, cores=4, aipu_cores=4)
    assert model.inputs()[0].shape == (4, 32, 32, 4)
    assert instance.options["aipu_cores"] == 4
    inputs = random_inputs(model, 7)
    outputs = empty_outputs(model)
    instance.run(inputs, outputs)
    expected = reference.run_package_reference(str(path), inputs)
    assert max_lsb_difference(outputs[0], expected[0]) <= 1
    # Items differ, so each core really computed its own item.
    assert not np.array_equal(outputs[0][0], outputs[0][1])


def test_run_accepts_tuples_and_overwrites_outputs_in_place(context, package):
    model, instance = load(context, package("resnet_tiny"))
    inputs = random_inputs(model, 1)
    first = empty_outputs(model)
    instance.run(tuple(inputs), tuple(first))
    second = [np.full(o.shape, 99, o.dtype) for o in model.outputs()]
    instance.run(inputs, second)
    np.testing.assert_array_equal(first[0], second[0])


def test_load_model_instance_accepts_bool_and_int_kwargs(context, package):
    model = context.load_model(package("resnet_tiny"))
    connection = context.device_connect(None, 1)
    instance = connection.load_model_instance(
        model, aipu_cores=1, num_sub_devices=1, input_dmabuf=False, output_dmabuf=0,
        device_profiling=True, host_profiling=1, double_buffer=True, elf_in_ddr=True)
    assert instance.options["double_buffer"] is True
    assert instance.options["host_profiling"] is True
    assert instance.context is context


def test_load_model_instance_unknown_kwarg_is_invalid_argument(context, package):
    model = context.load_model(package("resnet_tiny"))
    connection = context.device_connect(None, 1)
    with pytest.raises(axr.InvalidArgument, match="warp_speed"):
        connection.load_model_instance(model, warp_speed=True)
    with pytest.raises(axr.InvalidArgument, match="aipu_cores"):
        connection.load_model_instance(model, aipu_cores=-1)
    with pytest.raises(axr.InvalidArgument, match="num_sub_devices=2"):
        connection.load_model_instance(model, num_sub_devices=2)  # connection has 1 core
    with pytest.raises(axr.IncompatibleDevice, match="aipu_cores=5"):
        connection.load_model_instance(model, aipu_cores=5)  # the device has 4


def test_aipu_cores_is_l2_and_may_exceed_num_sub_devices(context, package):
    """Axelera's doc: aipu_cores is the L2 to allocate, num_sub_devices the sub-devices to use;
    programs for Metis pass num_sub_devices=1, aipu_cores=4 on a one-sub-device connection."""
    model = context.load_model(package("resnet_tiny_b4"))
    connection = context.device_connect(None, 1)
    instance = connection.load_model_instance(model, num_sub_devices=1, aipu_cores=4)
    assert instance.options["aipu_cores"] == 4 and instance.options["num_sub_devices"] == 1
    alone = connection.load_model_instance(model, aipu_cores=4)
    assert alone.options["num_sub_devices"] == 1  # the connection's one core runs the batch
    inputs = random_inputs(model, 3)
    outputs, alone_outputs = empty_outputs(model), empty_outputs(model)
    instance.run(inputs, outputs)
    alone.run(inputs, alone_outputs)
    np.testing.assert_array_equal(outputs[0], alone_outputs[0])


def test_profile_reports_host_and_device_time(context, package):
    model = context.load_model(package("resnet_tiny"))
    connection = context.device_connect(None, 1)
    instance = connection.load_model_instance(model, host_profiling=True,
                                              device_profiling=True)
    inputs, outputs = random_inputs(model), empty_outputs(model)
    instance.run(inputs, outputs)
    instance.run(inputs, outputs)
    profile = instance.profile()
    assert isinstance(profile, axr.RunProfile)
    assert profile.runs == 2
    assert profile.host_total > 0 and profile.device_compute > 0
    assert len(profile.per_core) == 1 and profile.per_core[0] > 0
    assert "RunProfile(" in repr(profile)


def test_pacing_device_time_follows_clock_and_mvm_utilisation(monkeypatch, package):
    """In pacing mode a core's modelled time is macs / (clock * 32768 * utilisation): the
    profile shows the configuration's effect at once (AXSTREAM_SIM_CONFIG_DELAY_MS=0)."""
    monkeypatch.setenv("AXSTREAM_SIM_PACING", "1")
    monkeypatch.setenv("AXSTREAM_SIM_CONFIG_DELAY_MS", "0")
    reset_devices()
    with axr.Context() as context:
        device = context.list_devices()[0]
        model = context.load_model(package("resnet_tiny"))
        instance = context.device_connect(device, 1).load_model_instance(model,
                                                                         device_profiling=True)
        inputs, outputs = random_inputs(model), empty_outputs(model)

        def device_time(**settings):
            assert context.configure_device(device, **settings)
            instance.run(inputs, outputs)
            return instance.profile().device_compute

        full = device_time(clock_profile=800, mvm_utilisation_core_0=100)
        assert full > 0
        assert device_time(clock_profile=400) == pytest.approx(2 * full, rel=0.05)
        assert device_time(clock_profile=800, mvm_utilisation_core_0=25) == pytest.approx(
            4 * full, rel=0.05)
        assert device_time(clock_profile_core_0=100, mvm_utilisation_core_0=50) == (
            pytest.approx(16 * full, rel=0.05))


# --- argument checks: InvalidArgument naming the tensor, the expected and the actual ----------


@pytest.fixture
def tiny(context, package):
    return load(context, package("resnet_tiny"))


def test_wrong_dtype_and_shape_names_tensor_expected_and_actual(tiny):
    model, instance = tiny
    bad = np.zeros((1, 32, 32, 3), np.float32)
    with pytest.raises(axr.InvalidArgument) as error:
        instance.run([bad], empty_outputs(model))
    message = str(error.value)
    assert "input 0" in message and "'resnet_tiny'" in message
    assert "expected int8 array of shape (1,32,32,4)" in message
    assert "got float32 (1,32,32,3)" in message


def test_wrong_shape_alone_is_invalid_argument(tiny):
    model, instance = tiny
    with pytest.raises(axr.InvalidArgument, match=r"got int8 \(1,32,32,3\)"):
        instance.run([np.zeros((1, 32, 32, 3), np.int8)], empty_outputs(model))
    with pytest.raises(axr.InvalidArgument, match=r"output 0 .*got int8 \(1,1000\)"):
        instance.run(random_inputs(model), [np.zeros((1, 1000), np.int8)])


def test_arrays_of_another_shape_with_the_tensors_elements_run(tiny):
    """Axelera's runtime takes the buffer, not the shape: its own programs pass a flat output."""
    model, instance = tiny
    inputs, expected = random_inputs(model, 5), empty_outputs(model)
    instance.run(inputs, expected)
    flat = np.zeros(model.outputs()[0].size, np.int8)
    instance.run([inputs[0][0]], [flat])  # (32,32,4) input, 1-D output
    np.testing.assert_array_equal(flat, expected[0].ravel())


def test_wrong_dtype_alone_is_invalid_argument(tiny):
    model, instance = tiny
    with pytest.raises(axr.InvalidArgument, match=r"got uint8 \(1,32,32,4\)"):
        instance.run([np.zeros((1, 32, 32, 4), np.uint8)], empty_outputs(model))


def test_wrong_count_is_invalid_argument(tiny):
    model, instance = tiny
    inputs = random_inputs(model)
    with pytest.raises(axr.InvalidArgument, match="expected 1 input, got 2"):
        instance.run(inputs * 2, empty_outputs(model))
    with pytest.raises(axr.InvalidArgument, match="expected 1 output, got 0"):
        instance.run(inputs, [])


def test_non_list_arguments_are_invalid_argument(tiny):
    model, instance = tiny
    inputs, outputs = random_inputs(model), empty_outputs(model)
    with pytest.raises(axr.InvalidArgument, match="list of numpy arrays"):
        instance.run(inputs[0], outputs)
    with pytest.raises(axr.InvalidArgument, match="got list"):
        instance.run([inputs[0].tolist()], outputs)


def test_non_contiguous_input_is_invalid_argument(tiny):
    model, instance = tiny
    wide = np.zeros((1, 32, 64, 4), np.int8)
    view = wide[:, :, ::2, :]
    assert view.shape == (1, 32, 32, 4)
    with pytest.raises(axr.InvalidArgument, match="C-contiguous"):
        instance.run([view], empty_outputs(model))
    fortran = np.asfortranarray(random_inputs(model)[0])
    with pytest.raises(axr.InvalidArgument, match="C-contiguous"):
        instance.run([fortran], empty_outputs(model))


def test_read_only_output_is_invalid_argument(tiny):
    model, instance = tiny
    outputs = empty_outputs(model)
    outputs[0].flags.writeable = False
    with pytest.raises(axr.InvalidArgument, match="output 0.*read-only"):
        instance.run(random_inputs(model), outputs)


def test_read_only_input_is_fine(tiny):
    model, instance = tiny
    inputs = random_inputs(model)
    inputs[0].flags.writeable = False
    instance.run(inputs, empty_outputs(model))


def test_fds_without_dmabuf_option_are_invalid_argument(tiny):
    model, instance = tiny
    with pytest.raises(axr.InvalidArgument, match="input 0"):
        instance.run([3], empty_outputs(model))


def test_use_after_release_is_invalid_argument(context, package):
    model, instance = load(context, package("resnet_tiny"))
    inputs, outputs = random_inputs(model), empty_outputs(model)
    instance.release()
    with pytest.raises(axr.InvalidArgument, match="released"):
        instance.run(inputs, outputs)
    model.release()
    with pytest.raises(axr.InvalidArgument, match="released"):
        model.inputs()


def test_releasing_the_context_invalidates_instances(package):
    context = axr.Context()
    model, instance = load(context, package("resnet_tiny"))
    inputs, outputs = random_inputs(model), empty_outputs(model)
    instance.run(inputs, outputs)
    context.release()
    assert instance.released and model.released
    with pytest.raises(axr.InvalidArgument, match="released"):
        instance.run(inputs, outputs)


def test_package_without_manifest_loads_with_unquantised_unpadded_tensor_infos(context, package,
                                                                              tmp_path):
    # The doc: TensorInfo has quantization and padding "if manifest.json was found in the model".
    import shutil

    copy = tmp_path / "no_manifest"
    shutil.copytree(package("resnet_tiny"), copy)
    (copy / "manifest.json").unlink()
    model = context.load_model(copy)
    (i,), (o,) = model.inputs(), model.outputs()
    assert (i.shape, i.padding, i.scale, i.zero_point) == ((1, 32, 32, 4), [(0, 0)] * 4, 1.0, 0)
    assert o.shape == o.unpadded_shape == (1, 1, 1, 1024) and o.name == "logits"
    instance = context.device_connect(None, 1).load_model_instance(model)
    outputs = empty_outputs(model)
    instance.run(random_inputs(model), outputs)
    assert outputs[0].any()
