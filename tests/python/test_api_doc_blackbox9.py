"""Black-box audit 9 of axelera.runtime: the memory a program hands to run() (outputs sharing
memory with inputs or with each other) and the TensorInfo a program builds itself (hashing,
values no quantisation can have). Only what the audit found broken is here; what it found working
is listed in docs/reliability.md.

  R1 run() with an output that shares memory with an input (a program reusing one buffer, or an
     fd of the same memfd on both sides) gave wrong results on a batched model spread over
     several sub-devices: one core wrote its outputs over inputs another had still to read
     (8 of 20 runs of resnet_tiny_b4 on 3 cores). A device reads its inputs before it writes
     its outputs, so the results are those of separate buffers now
     -> test_an_output_sharing_memory_with_an_input_gets_the_separate_buffers_result,
        test_an_output_fd_of_the_input_memfd_gets_the_separate_buffers_result
  R2 two outputs in the same memory were written over each other without a word
     -> test_outputs_sharing_memory_are_invalid_argument_naming_both
  R3 a numpy scalar given for a tensor was reported as "got int8", as if an int8 array
     -> test_a_numpy_scalar_for_a_tensor_is_named_a_scalar
  T1 TensorInfo was unhashable (a set of a model's tensors, functools.lru_cache on a
     quantiser keyed by its TensorInfo raised TypeError)
     -> test_tensor_info_is_hashable_consistently_with_equality
  T2 TensorInfo took values no tensor can have: a NaN, infinite, zero or negative scale, a
     zero_point outside its integer dtype, an object or string dtype
     -> test_tensor_info_refuses_values_no_quantised_tensor_has
  C1 configure_device(device, bogus=None): an unknown property with a value of no kwarg type
     was InvalidArgument about the value, where every other unknown property is
     InvalidConfiguration (the runtime reports keys before values)
     -> test_an_unknown_configure_device_property_is_invalid_configuration_whatever_its_value
  L1 profile() of a released ModelInstance answered, where every other call raises
     -> test_profile_of_a_released_instance_raises_like_every_call

Each of those failed on the code before this audit.
"""

import functools
import math
import os

import numpy as np
import pytest


def reference_outputs(instance, inputs):
    outputs = [np.zeros(info.shape, info.dtype) for info in instance.model.outputs()]
    instance.run(inputs, outputs)
    return outputs


def random_input(info, seed):
    return np.random.default_rng(seed).integers(-128, 128, info.shape).astype(info.dtype)


def test_an_output_sharing_memory_with_an_input_gets_the_separate_buffers_result(axr, package):
    with axr.Context() as context:
        model = context.load_model(package("resnet_tiny_b4"))
        connection = context.device_connect(None, 4)
        instance = connection.load_model_instance(model, num_sub_devices=4, host_profiling=True)
        (input_info,), (output_info,) = model.inputs(), model.outputs()
        x = random_input(input_info, 1)
        (expected,) = reference_outputs(instance, [x])
        assert instance.profile().bytes_copied == 0
        # The output at the start, in the middle and at the end of the input's own buffer: each
        # core's items overlap inputs of the other cores.
        starts = (0, (x.size - output_info.size) // 2, x.size - output_info.size)
        for trial in range(30):
            buffer = x.copy().ravel()
            start = starts[trial % len(starts)]
            output = buffer[start:start + output_info.size]
            instance.run([buffer.reshape(input_info.shape)], [output])
            np.testing.assert_array_equal(output.reshape(output_info.shape), expected,
                                          err_msg=f"trial {trial}, output at byte {start}")
            # The runtime copied the input it shares memory with, and said so.
            assert instance.profile().bytes_copied == input_info.size
        # Disjoint buffers again: nothing copied.
        instance.run([x], [np.zeros(output_info.shape, np.int8)])
        assert instance.profile().bytes_copied == 0


def test_an_output_fd_of_the_input_memfd_gets_the_separate_buffers_result(axr, package):
    with axr.Context() as context:
        model = context.load_model(package("resnet_tiny_b4"))
        connection = context.device_connect(None, 4)
        (input_info,), (output_info,) = model.inputs(), model.outputs()
        x = random_input(input_info, 2)
        (expected,) = reference_outputs(connection.load_model_instance(model), [x])
        instance = connection.load_model_instance(model, input_dmabuf=True, output_dmabuf=True)
        input_fd = os.memfd_create("bb9-shared")
        # Another fd of the same memfd, as a program gets from dup() or a buffer pool.
        output_fd = os.dup(input_fd)
        try:
            os.ftruncate(input_fd, input_info.size)
            for trial in range(30):
                os.pwrite(input_fd, x.tobytes(), 0)
                offset = (trial % 3) * 1024
                instance.run([input_fd], [(output_fd, offset)])
                got = np.frombuffer(os.pread(input_fd, output_info.size, offset), np.int8)
                np.testing.assert_array_equal(got.reshape(output_info.shape), expected,
                                              err_msg=f"trial {trial}, output at byte {offset}")
        finally:
            os.close(output_fd)
            os.close(input_fd)


def test_outputs_sharing_memory_are_invalid_argument_naming_both(axr, package):
    with axr.Context() as context:
        model = context.load_model(package("two_outputs"))
        connection = context.device_connect()
        instance = connection.load_model_instance(model)
        boxes, scores = model.outputs()
        inputs = [random_input(info, 3) for info in model.inputs()]
        expected = reference_outputs(instance, inputs)
        buffer = np.zeros(boxes.size, np.int8)
        with pytest.raises(axr.InvalidArgument) as caught:
            instance.run(inputs, [buffer, buffer[100:100 + scores.size]])
        message = str(caught.value)
        assert "output 1 ('scores')" in message and "output 0 ('boxes')" in message, message
        # Side by side in one buffer is fine.
        buffer = np.zeros(boxes.size + scores.size, np.int8)
        outputs = [buffer[:boxes.size], buffer[boxes.size:]]
        instance.run(inputs, outputs)
        for got, want in zip(outputs, expected):
            np.testing.assert_array_equal(got.reshape(want.shape), want)

        fd_instance = connection.load_model_instance(model, output_dmabuf=True)
        fd = os.memfd_create("bb9-outputs")
        try:
            os.ftruncate(fd, boxes.size + scores.size)
            with pytest.raises(axr.InvalidArgument) as caught:
                fd_instance.run(inputs, [fd, (fd, boxes.size - 1)])
            assert "output 1 ('scores')" in str(caught.value)
            fd_instance.run(inputs, [fd, (fd, boxes.size)])
            got = np.frombuffer(os.pread(fd, scores.size, boxes.size), np.int8)
            np.testing.assert_array_equal(got.reshape(scores.shape), expected[1])
        finally:
            os.close(fd)


def test_a_numpy_scalar_for_a_tensor_is_named_a_scalar(axr, package):
    with axr.Context() as context:
        model = context.load_model(package("resnet_tiny"))
        instance = context.device_connect().load_model_instance(model)
        outputs = [np.zeros(info.shape, info.dtype) for info in model.outputs()]
        with pytest.raises(axr.InvalidArgument) as caught:
            instance.run([np.int8(0)], outputs)
        assert "got a numpy int8 scalar" in str(caught.value)


def test_tensor_info_is_hashable_consistently_with_equality(axr, package):
    TensorInfo = axr.TensorInfo
    a = TensorInfo((1, 230, 240, 3), padding=[(0, 0), (3, 3), (3, 13), (0, 1)])
    b = TensorInfo([1, 230, 240, 3], "int8", padding=[[0, 0], [3, 3], [3, 13], [0, 1]])
    assert a == b and hash(a) == hash(b)
    assert len({a, b, TensorInfo((1, 4))}) == 2

    @functools.lru_cache(maxsize=None)
    def quantiser(info):
        return lambda x: np.round(x / info.scale + info.zero_point).astype(info.dtype)

    assert quantiser(a) is quantiser(b)
    with axr.Context() as context:
        model = context.load_model(package("two_outputs"))
        assert {info.name for info in set(model.outputs())} == {"boxes", "scores"}
        assert set(model.inputs()) == set(model.inputs())


@pytest.mark.parametrize("field, value", [
    ("scale", float("nan")), ("scale", float("inf")), ("scale", 0.0), ("scale", -0.5),
    ("zero_point", 128), ("zero_point", -129), ("dtype", object), ("dtype", "U5"),
    ("dtype", [("a", np.int8)]),
])
def test_tensor_info_refuses_values_no_quantised_tensor_has(axr, field, value):
    with pytest.raises(axr.InvalidArgument) as caught:
        axr.TensorInfo((1, 4), **{field: value})
    assert f"TensorInfo {field}" in str(caught.value)


def test_tensor_info_keeps_every_value_a_tensor_may_have(axr):
    TensorInfo = axr.TensorInfo
    assert TensorInfo((1, 4), scale=1e-30).scale == 1e-30
    assert TensorInfo((1, 4), zero_point=-128).zero_point == -128
    assert TensorInfo((1, 4), np.uint8, zero_point=255).zero_point == 255
    # A float tensor's zero_point is not bounded by an integer range.
    assert TensorInfo((1, 4), np.float32, zero_point=1000).zero_point == 1000
    assert TensorInfo((1, 4), np.bool_).size == 4
    assert math.isclose(TensorInfo((1,), np.float16, scale=np.float32(0.5)).scale, 0.5)


def test_profile_of_a_released_instance_raises_like_every_call(axr, package):
    with axr.Context() as context:
        model = context.load_model(package("resnet_tiny"))
        instance = context.device_connect().load_model_instance(model, host_profiling=True)
        assert instance.profile().runs == 0
        instance.release()
        with pytest.raises(axr.InvalidArgument, match="was released"):
            instance.profile()


@pytest.mark.parametrize("value", [None, [800], {"a": 1}, object()], ids=lambda v: type(v).__name__)
def test_an_unknown_configure_device_property_is_invalid_configuration_whatever_its_value(
        axr, value):
    with axr.Context() as context:
        device = context.list_devices()[0]
        with pytest.raises(axr.InvalidConfiguration, match="unknown property 'bogus'"):
            context.configure_device(device, bogus=value)
        with pytest.raises(axr.InvalidConfiguration, match="unknown property 'bogus'"):
            context.configure_device(device, clock_profile=value, bogus=1)
        # A known property with such a value says what the value should be, and nothing is
        # applied.
        with pytest.raises(axr.InvalidArgument) as caught:
            context.configure_device(device, clock_profile=900, mvm_utilisation_core_0=value)
        assert "value of 'mvm_utilisation_core_0' must be a bool, int, float or str" in str(
            caught.value)
        assert context.read_device_configuration(device)["clock_profile"] == "800"
