"""Several Python threads running several instances at once: the GIL is released during run(),
results equal those of a single instance, and the simulated cores work in parallel."""

import os
import sys
import threading
import time

import numpy as np
import pytest

import axelera.runtime as axr
from conftest import empty_outputs, random_inputs

THREADS = 4
RUNS_PER_THREAD = 8


def run_threads(target, count):
    errors = []

    def guarded(index):
        try:
            target(index)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(i,), name=f"axr-test-{i}")
               for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors


@pytest.mark.parametrize("name", ["resnet_tiny", "two_outputs"])
def test_four_threads_with_four_instances_give_the_results_of_one(package, name):
    path = package(name)
    with axr.Context() as context:
        model = context.load_model(path)
        inputs = [random_inputs(model, seed) for seed in range(RUNS_PER_THREAD)]

        single_connection = context.device_connect(None, 1)
        single = single_connection.load_model_instance(model)
        expected = []
        for batch in inputs:
            outputs = empty_outputs(model)
            single.run(batch, outputs)
            expected.append(outputs)
        single_connection.release()  # frees its core for the four instances

        instances = [context.device_connect(None, 1).load_model_instance(
            model, num_sub_devices=1, aipu_cores=1) for _ in range(THREADS)]
        results = [[None] * RUNS_PER_THREAD for _ in range(THREADS)]

        def work(index):
            for run in range(RUNS_PER_THREAD):
                # Each thread walks the inputs in a different order.
                k = (run + index * 3) % RUNS_PER_THREAD
                outputs = empty_outputs(model)
                instances[index].run(inputs[k], outputs)
                results[index][k] = outputs

        run_threads(work, THREADS)
        for thread_results in results:
            for got, want in zip(thread_results, expected):
                for a, b in zip(got, want):
                    np.testing.assert_array_equal(a, b)


def test_threads_sharing_one_instance_get_consistent_results(package):
    with axr.Context() as context:
        model = context.load_model(package("resnet_tiny"))
        instance = context.device_connect(None, 2).load_model_instance(model, double_buffer=True)
        inputs = random_inputs(model, 3)
        expected = empty_outputs(model)
        instance.run(inputs, expected)

        def work(index):
            for _ in range(RUNS_PER_THREAD):
                outputs = empty_outputs(model)
                instance.run(inputs, outputs)
                np.testing.assert_array_equal(outputs[0], expected[0])

        run_threads(work, THREADS)


def test_gil_is_released_while_the_device_runs(package):
    # With a 5 s switch interval a thread holding the GIL keeps it for its whole loop of runs;
    # only a run() that releases the GIL lets this thread tick in between.
    with axr.Context() as context:
        model = context.load_model(package("resnet_tiny"))
        instance = context.device_connect(None, 1).load_model_instance(model)
        inputs, outputs = random_inputs(model), empty_outputs(model)
        instance.run(inputs, outputs)  # warm-up
        runs = 0

        def worker():
            nonlocal runs
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                instance.run(inputs, outputs)
                runs += 1

        previous = sys.getswitchinterval()
        sys.setswitchinterval(5.0)
        try:
            thread = threading.Thread(target=worker, name="axr-gil-worker")
            ticks = 0
            thread.start()
            while thread.is_alive():
                ticks += 1
                time.sleep(0.0005)
            thread.join()
        finally:
            sys.setswitchinterval(previous)
        assert runs > 0
        assert ticks > 20, f"only {ticks} ticks during {runs} runs: run() holds the GIL"


def test_release_while_another_thread_runs_stops_it_with_invalid_argument(package):
    context = axr.Context()
    model = context.load_model(package("resnet_tiny"))
    instance = context.device_connect(None, 2).load_model_instance(model, double_buffer=True)
    inputs, outputs = random_inputs(model), empty_outputs(model)
    stopped = []
    started = threading.Event()

    def loop():
        try:
            while True:
                instance.run(inputs, outputs)
                started.set()
        except axr.InvalidArgument as error:
            stopped.append(str(error))

    thread = threading.Thread(target=loop, name="axr-release-race")
    thread.start()
    assert started.wait(60)
    context.release()
    thread.join(60)
    assert not thread.is_alive()
    assert stopped and "released" in stopped[0]


DAEMON_THREADS_AT_EXIT = """
import sys, threading, time, numpy as np, axelera.runtime as axr
context = axr.Context()
model = context.load_model(sys.argv[1])
connection = context.device_connect(None, 2)
started = threading.Barrier(3)
def loop(instance):
    inputs = [np.zeros(i.shape, i.dtype) for i in model.inputs()]
    outputs = [np.zeros(o.shape, o.dtype) for o in model.outputs()]
    started.wait()
    while True:
        instance.run(inputs, outputs)
for _ in range(2):
    threading.Thread(target=loop, args=(connection.load_model_instance(model),),
                     daemon=True).start()
started.wait()
time.sleep(0.2)
"""


@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="under ASan/UBSan: the sanitizers themselves misreport threads that "
                    "CPython stops mid-call at exit (UBSan flags pybind11's catch of "
                    "__forced_unwind, LeakSanitizer can crash walking the dying threads)")
def test_interpreter_exit_with_daemon_threads_in_run_exits_cleanly(package):
    # CPython ends a daemon thread that takes the GIL back during finalisation with
    # pthread_exit; with pybind11's noexcept GIL guard that aborted ("terminate called without
    # an active exception", exit -6).
    import os
    import subprocess

    result = subprocess.run([sys.executable, "-c", DAEMON_THREADS_AT_EXIT,
                             str(package("resnet_tiny"))],
                            capture_output=True, text=True, timeout=60, env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


FORK_AFTER_A_RUN = """
import os, sys, numpy as np, axelera.runtime as axr
def run_once():
    with axr.Context() as context:
        model = context.load_model(sys.argv[1])
        instance = context.device_connect(None, 1).load_model_instance(model)
        outputs = [np.zeros(o.shape, o.dtype) for o in model.outputs()]
        instance.run([np.ones(i.shape, i.dtype) for i in model.inputs()], outputs)
        return outputs[0].tobytes()
expected = run_once()
for child_runs in (True, False):
    pid = os.fork()
    if pid == 0:
        # os._exit, as fork children do: no exit handlers (LeakSanitizer's among them, which
        # would report the parent's worker-thread state the child inherited without threads).
        os._exit(0 if not child_runs or run_once() == expected else 3)
    print(child_runs, os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


def test_forked_child_runs_models_after_the_parent_ran_one(package):
    # multiprocessing forks on Linux: the child inherited the parent's simulated cores without
    # their worker threads, so its first run() waited forever.
    import os
    import subprocess

    result = subprocess.run([sys.executable, "-c", FORK_AFTER_A_RUN, str(package("resnet_tiny"))],
                            capture_output=True, text=True, timeout=60, env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "0", "False", "0"], result.stdout + result.stderr
