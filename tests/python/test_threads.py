"""Several Python threads running several instances at once: the GIL is released during run(),
results equal those of a single instance, and the simulated cores work in parallel."""

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


def test_gil_is_released_while_the_device_runs(package, monkeypatch):
    # Pacing makes a run take the modelled device time (not host CPU), long at a low clock.
    monkeypatch.setenv("AXSTREAM_SIM_PACING", "1")
    from conftest import reset_devices

    reset_devices()
    with axr.Context() as context:
        (device,) = context.list_devices()
        ready = context.configure_device(device, clock_profile=100,
                                         **{f"mvm_utilisation_core_{i}": 1 for i in range(4)})
        while not ready:
            time.sleep(0.02)
            ready = context.device_ready(device)
        model = context.load_model(package("resnet_tiny"))
        instances = [context.device_connect(None, 1).load_model_instance(model)
                     for _ in range(THREADS)]
        inputs = random_inputs(model)

        def timed_run(instance, count):
            start = time.monotonic()
            for _ in range(count):
                instance.run(inputs, empty_outputs(model))
            return time.monotonic() - start

        one_run = timed_run(instances[0], 3) / 3
        if one_run < 0.002:
            pytest.skip(f"a paced run takes {one_run * 1e3:.2f} ms, too short to compare")
        count = max(2, min(100, int(0.15 / one_run) + 1))
        serial = timed_run(instances[0], count) * THREADS

        # While the paced runs sleep on the device, this thread keeps running Python code.
        ticks = 0
        start = time.monotonic()
        thread_list = [threading.Thread(target=timed_run, args=(i, count)) for i in instances]
        for thread in thread_list:
            thread.start()
        while any(t.is_alive() for t in thread_list):
            ticks += 1
            time.sleep(0.001)
        parallel = time.monotonic() - start
        assert ticks > 10
        # Four cores in parallel: about serial / 4; allow a wide margin on a loaded machine.
        assert parallel < 0.6 * serial, (parallel, serial)
