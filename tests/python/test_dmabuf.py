"""run() with file descriptors (instances loaded with input_dmabuf/output_dmabuf): memfd fds
stand in for dmabufs on machines without /dev/dma_heap."""

import os

import numpy as np
import pytest

import axelera.runtime as axr
from conftest import empty_outputs, random_inputs


def memfd_with(data: bytes, name="axr-test"):
    fd = os.memfd_create(name)
    os.ftruncate(fd, len(data))
    os.pwrite(fd, data, 0)
    return fd


def read_fd(fd, size):
    return os.pread(fd, size, 0)


def array_run(connection, model, seed):
    """Seeded inputs and what an array instance of `model` outputs for them: the results the
    fd runs must reproduce."""
    inputs = random_inputs(model, seed)
    expected = empty_outputs(model)
    connection.load_model_instance(model).run(inputs, expected)
    return inputs, expected


@pytest.fixture
def context():
    with axr.Context() as context:
        yield context


@pytest.mark.parametrize("name", ["resnet_tiny", "two_outputs"])
def test_fd_inputs_and_outputs_give_the_array_results(context, package, name):
    model = context.load_model(package(name))
    connection = context.device_connect(None, 2)
    inputs, expected = array_run(connection, model, 5)
    fds = connection.load_model_instance(model, input_dmabuf=True, output_dmabuf=True)
    assert fds.options["input_dmabuf"] and fds.options["output_dmabuf"]

    in_fds = [memfd_with(a.tobytes()) for a in inputs]
    out_fds = [memfd_with(bytes(o.size)) for o in model.outputs()]
    try:
        fds.run(in_fds, out_fds)
        for fd, info, want in zip(out_fds, model.outputs(), expected):
            got = np.frombuffer(read_fd(fd, info.size), dtype=info.dtype).reshape(info.shape)
            np.testing.assert_array_equal(got, want)
    finally:
        for fd in in_fds + out_fds:
            os.close(fd)


def test_fd_inputs_with_array_outputs(context, package):
    model = context.load_model(package("resnet_tiny"))
    connection = context.device_connect(None, 1)
    instance = connection.load_model_instance(model, input_dmabuf=True)
    inputs = random_inputs(model, 2)
    fd = memfd_with(inputs[0].tobytes())
    try:
        outputs = empty_outputs(model)
        instance.run([fd], outputs)
        reference = connection.load_model_instance(model)
        expected = empty_outputs(model)
        reference.run(inputs, expected)
        np.testing.assert_array_equal(outputs[0], expected[0])
    finally:
        os.close(fd)


def test_dma_buffers_with_numpy_views_run_zero_copy(context, package):
    model = context.load_model(package("two_outputs"))
    connection = context.device_connect(None, 1)
    instance = connection.load_model_instance(model, input_dmabuf=True, output_dmabuf=True)
    inputs, expected = array_run(connection, model, 9)

    in_buffers = [axr.DmaBuffer(i.size, name="axr-test-in") for i in model.inputs()]
    out_buffers = [axr.DmaBuffer(o.size) for o in model.outputs()]
    assert all(b.size == i.size for b, i in zip(in_buffers, model.inputs()))
    assert in_buffers[0].backend in ("dma_heap", "udmabuf", "memfd")
    for buffer, info, data in zip(in_buffers, model.inputs(), inputs):
        view = buffer.array(info.shape, info.dtype)
        buffer.begin_cpu_access("write")
        view[...] = data
        buffer.end_cpu_access("write")
    instance.run(in_buffers, out_buffers)  # objects with fileno()
    for buffer, info, want in zip(out_buffers, model.outputs(), expected):
        np.testing.assert_array_equal(buffer.array(info.shape, info.dtype), want)


def test_fd_with_offset_tuple(context, package):
    model = context.load_model(package("resnet_tiny"))
    connection = context.device_connect(None, 1)
    instance = connection.load_model_instance(model, input_dmabuf=True, output_dmabuf=True)
    inputs, expected = array_run(connection, model, 4)

    offset = 4096
    (info,) = model.inputs()
    (out_info,) = model.outputs()
    buffer = axr.DmaBuffer(offset + info.size + out_info.size)
    buffer.array(offset + info.size)[offset:] = inputs[0].ravel()
    out_offset = offset + info.size
    instance.run([(buffer.fd, offset)], [(buffer.fd, out_offset)])
    got = np.frombuffer(buffer, np.int8, count=out_info.size, offset=out_offset)
    np.testing.assert_array_equal(got.reshape(out_info.shape), expected[0])
    with pytest.raises(axr.InvalidArgument, match="offset"):
        instance.run([(buffer.fd, -1)], [(buffer.fd, out_offset)])


def test_dma_buffer_array_larger_than_the_buffer_is_invalid_argument():
    buffer = axr.DmaBuffer(16)
    with pytest.raises(axr.InvalidArgument, match="16 bytes"):
        buffer.array((5,), np.float32)
    view = buffer.array((4,), np.float32)
    view[:] = 1.5
    del buffer
    assert float(view.sum()) == 6.0  # the view keeps the buffer alive


def test_dma_buffer_array_shape_that_wraps_or_is_no_count_is_invalid_argument():
    buffer = axr.DmaBuffer(16)
    # 2**32 x 2**32 int8 is 2**64 bytes: a size_t product wraps to 0, which "fits".
    for shape in ((2**32, 2**32), (2**62, 4), (2**70,)):
        with pytest.raises(axr.InvalidArgument, match="more than 2\\^64 bytes"):
            buffer.array(shape)
    for shape in ((-1, 4), (1.5, 4), "ab"):
        with pytest.raises(axr.InvalidArgument, match="non-negative integer dimensions"):
            buffer.array(shape)
    assert buffer.array((np.int64(2), 8)).shape == (2, 8)


def test_too_small_fd_is_invalid_argument(context, package):
    model = context.load_model(package("resnet_tiny"))
    instance = context.device_connect(None, 1).load_model_instance(
        model, input_dmabuf=True, output_dmabuf=True)
    small = memfd_with(b"\0" * 16)
    out = memfd_with(bytes(model.outputs()[0].size))
    try:
        with pytest.raises(axr.InvalidArgument, match="16 bytes"):
            instance.run([small], [out])
    finally:
        os.close(small)
        os.close(out)


def test_arrays_for_a_dmabuf_instance_are_invalid_argument(context, package):
    model = context.load_model(package("resnet_tiny"))
    instance = context.device_connect(None, 1).load_model_instance(model, input_dmabuf=True)
    with pytest.raises(axr.InvalidArgument, match="file descriptor"):
        instance.run(random_inputs(model), empty_outputs(model))
    with pytest.raises(axr.InvalidArgument, match="non-negative"):
        instance.run([-1], empty_outputs(model))
    with pytest.raises(axr.InvalidArgument):
        instance.run([True], empty_outputs(model))


def test_closed_fd_is_invalid_argument(context, package):
    model = context.load_model(package("resnet_tiny"))
    instance = context.device_connect(None, 1).load_model_instance(model, input_dmabuf=True)
    fd = memfd_with(bytes(model.inputs()[0].size))
    os.close(fd)
    with pytest.raises(axr.InvalidArgument, match=f"fd {fd}"):
        instance.run([fd], empty_outputs(model))
