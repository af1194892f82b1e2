"""Reliability of axelera.runtime under misuse and hostile environments (issue 10): what the
owners' tests in tests/python and tests/runtime do not already cover. Every scenario that could
crash runs in a child process, so a crash is reported as that test failing with the signal
instead of taking the whole pytest process down."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from conftest import empty_outputs, random_inputs


def run_child(script, *args, timeout=120):
    """Runs `script` with `args` in a fresh interpreter with this environment."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout, env=os.environ.copy())


def assert_no_crash(result):
    assert result.returncode >= 0, (
        f"child died of signal {-result.returncode}\nstdout:\n{result.stdout}\n"
        f"stderr:\n{result.stderr}")
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def test_package_changed_on_disk_while_loaded_keeps_running_and_reload_names_the_file(
        axr, package, tmp_path):
    copy = tmp_path / "pkg"
    shutil.copytree(package("resnet_tiny"), copy)
    with axr.Context() as context:
        model = context.load_model(str(copy))
        connection = context.device_connect(None, 1)
        instance = connection.load_model_instance(model)
        inputs = random_inputs(model, seed=3)
        expected = empty_outputs(model)
        instance.run(inputs, expected)
        # Corrupt every file of the package, then delete the directory.
        (copy / "core.onnx").write_bytes(b"\x00garbage" * 100)
        (copy / "manifest.json").write_text("{ not json")
        (copy / "model.json").write_text("[]")
        for _ in range(3):
            outputs = empty_outputs(model)
            instance.run(inputs, outputs)
            for got, want in zip(outputs, expected):
                np.testing.assert_array_equal(got, want)
        with pytest.raises(axr.InvalidArgument, match="model.json|manifest.json"):
            context.load_model(str(copy))
        shutil.rmtree(copy)
        outputs = empty_outputs(model)
        instance.run(inputs, outputs)
        np.testing.assert_array_equal(outputs[0], expected[0])
        with pytest.raises(axr.InvalidArgument, match=str(copy)):
            context.load_model(str(copy))


RELEASE_WHILE_RUNNING = """
    import sys, threading, numpy as np, axelera.runtime as axr
    path = sys.argv[1]
    context = axr.Context()
    model = context.load_model(path)
    instance = context.device_connect(None, 1).load_model_instance(model)
    inputs = [np.zeros(i.shape, i.dtype) for i in model.inputs()]
    outputs = [np.zeros(i.shape, i.dtype) for i in model.outputs()]
    started, results = threading.Event(), {"ok": 0, "errors": []}
    def worker():
        while True:
            try:
                instance.run(inputs, outputs)
                results["ok"] += 1
                started.set()
            except Exception as error:
                results["errors"].append(f"{type(error).__name__}: {error}")
                started.set()
                return
    thread = threading.Thread(target=worker, name="runner")
    thread.start()
    assert started.wait(60)
    context.release()
    thread.join(60)
    assert not thread.is_alive(), "run() kept going after the context was released"
    print("ok", results["ok"])
    print("error", results["errors"][0] if results["errors"] else "")
"""


def test_context_released_while_another_thread_runs_gives_a_clear_error(axr, package):
    result = run_child(RELEASE_WHILE_RUNNING, package("resnet_tiny"), timeout=180)
    assert_no_crash(result)
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert int(lines["ok"]) >= 1
    # The run in flight finishes; the next one is refused naming the released object.
    assert lines["error"].startswith("InvalidArgument"), lines["error"]
    assert "released" in lines["error"], lines["error"]


HOLD_AND_RUN = """
    import sys, numpy as np, axelera.runtime as axr
    context = axr.Context()
    model = context.load_model(sys.argv[1])
    instance = context.device_connect(None, 4).load_model_instance(model, aipu_cores=1)
    inputs = [np.zeros(i.shape, i.dtype) for i in model.inputs()]
    outputs = [np.zeros(i.shape, i.dtype) for i in model.outputs()]
    instance.run(inputs, outputs)
    print("held", flush=True)
    while True:
        instance.run(inputs, outputs)
"""


def test_device_reserved_by_a_sigkilled_process_is_free_again(axr, package):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD_AND_RUN), str(package("resnet_tiny"))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert holder.stdout.readline().strip() == "held", holder.stderr.read()
        with axr.Context() as context:
            (device,) = context.list_devices()
            assert device.in_use and str(holder.pid) in device.in_use_by
            with pytest.raises(axr.DeviceInUse, match=str(holder.pid)):
                context.device_connect(None, 1)
        holder.send_signal(signal.SIGKILL)  # killed mid-run: no destructor, no cleanup
        assert holder.wait(timeout=30) == -signal.SIGKILL
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    with axr.Context() as context:
        (device,) = context.list_devices()
        assert str(holder.pid) not in device.in_use_by
        context.device_connect(None, 4).release()


CONTEND = """
    import os, sys, time, axelera.runtime as axr
    start_at = float(sys.argv[1])
    context = axr.Context()
    while time.time() < start_at:
        time.sleep(0.005)
    try:
        connection = context.device_connect(None, 1)
        print("core", connection, flush=True)
    except axr.DeviceInUse as error:
        print("in_use", error, flush=True)
    sys.stdin.readline()
"""


def test_six_processes_contending_for_four_cores_get_a_core_or_device_in_use(axr):
    start_at = time.time() + 3.0  # all six connect at the same instant
    children = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(CONTEND), str(start_at)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=os.environ.copy())
                for _ in range(6)]
    try:
        lines = {}
        for child in children:
            line = child.stdout.readline().strip()
            assert line, child.stderr.read()
            lines[child.pid] = line
        holders = [pid for pid, line in lines.items() if line.startswith("core")]
        refused = [pid for pid, line in lines.items() if line.startswith("in_use")]
        assert len(holders) == 4 and len(refused) == 2, lines
        for pid in refused:
            # The refusal names at least one holding process.
            assert any(str(h) in lines[pid] for h in holders), lines[pid]
        with axr.Context() as context:
            (device,) = context.list_devices()
            assert device.in_use
            for pid in holders:
                assert str(pid) in device.in_use_by, device.in_use_by
            for pid in refused:
                assert str(pid) not in device.in_use_by, device.in_use_by
            # Never two processes on one core: all four are taken, so this process gets none.
            with pytest.raises(axr.DeviceInUse):
                context.device_connect(None, 1)
    finally:
        for child in children:
            child.stdin.close()
        for child in children:
            child.wait(timeout=30)


def test_configure_device_during_a_run_neither_crashes_nor_corrupts_results(axr, package):
    import threading

    with axr.Context() as context:
        model = context.load_model(str(package("resnet_tiny")))
        (device,) = context.list_devices()
        instance = context.device_connect(device, 1).load_model_instance(model)
        inputs = random_inputs(model, seed=5)
        expected = empty_outputs(model)
        instance.run(inputs, expected)
        stop, failures, runs = threading.Event(), [], [0]

        def worker():
            while not stop.is_set():
                outputs = empty_outputs(model)
                try:
                    instance.run(inputs, outputs)
                except Exception as error:
                    failures.append(error)
                    continue
                runs[0] += 1
                if not np.array_equal(outputs[0], expected[0]):
                    failures.append(AssertionError("result changed during configure_device"))

        thread = threading.Thread(target=worker, name="runner")
        thread.start()
        try:
            for profile in (800, 400, 800):
                context.configure_device(device, clock_profile=profile)
                deadline = time.time() + 30
                while not context.device_ready(device):
                    assert time.time() < deadline, "device never became ready"
                    time.sleep(0.01)
        finally:
            stop.set()
            thread.join(60)
        assert runs[0] > 0
        # Runs may be refused while the device reconfigures, but only with a clear error.
        for failure in failures:
            assert not isinstance(failure, AssertionError), failure
            assert "config" in str(failure).lower(), failure


def test_fds_closed_while_runs_are_in_flight_never_crash(axr, package):
    import threading

    with axr.Context() as context:
        model = context.load_model(str(package("resnet_tiny")))
        instance = context.device_connect(None, 1).load_model_instance(model, input_dmabuf=True,
                                                                       output_dmabuf=True)
        errors, runs, stop = [], [0], threading.Event()

        def make_fds():
            fds = []
            for info in list(model.inputs()) + list(model.outputs()):
                fd = os.memfd_create("reliability")
                os.ftruncate(fd, int(np.prod(info.shape)) * np.dtype(info.dtype).itemsize)
                fds.append(fd)
            return fds

        n_in = len(model.inputs())
        for _ in range(20):
            fds = make_fds()

            def worker(fds=fds):
                for _ in range(5):
                    try:
                        instance.run(fds[:n_in], fds[n_in:])
                        runs[0] += 1
                    except Exception as error:
                        errors.append(error)

            thread = threading.Thread(target=worker, name="runner")
            thread.start()
            time.sleep(0.001)
            for fd in fds:
                os.close(fd)
            thread.join(60)
        assert runs[0] + len(errors) == 100
        for error in errors:
            assert isinstance(error, axr.InvalidArgument), error
            assert "fd" in str(error), error
