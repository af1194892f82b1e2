"""run() with file descriptors (instances loaded with input_dmabuf/output_dmabuf): memfd fds
stand in for dmabufs on machines without /dev/dma_heap."""

import mmap
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


@pytest.fixture
def context():
    with axr.Context() as context:
        yield context


@pytest.mark.parametrize("name", ["resnet_tiny", "two_outputs"])
def test_fd_inputs_and_outputs_give_the_array_results(context, package, name):
    model = context.load_model(package(name))
    connection = context.device_connect(None, 2)
    arrays = connection.load_model_instance(model)
    fds = connection.load_model_instance(model, input_dmabuf=True, output_dmabuf=True)
    assert fds.options["input_dmabuf"] and fds.options["output_dmabuf"]

    inputs = random_inputs(model, 5)
    expected = empty_outputs(model)
    arrays.run(inputs, expected)

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


def test_objects_with_fileno_are_accepted(context, package, tmp_path):
    model = context.load_model(package("resnet_tiny"))
    instance = context.device_connect(None, 1).load_model_instance(
        model, input_dmabuf=True, output_dmabuf=True)
    inputs = random_inputs(model)
    with open(tmp_path / "in.bin", "w+b") as fin, open(tmp_path / "out.bin", "w+b") as fout:
        fin.write(inputs[0].tobytes())
        fin.flush()
        fout.truncate(model.outputs()[0].size)
        instance.run([fin], [fout])
        with mmap.mmap(fout.fileno(), 0) as view:
            assert any(view[:])


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
