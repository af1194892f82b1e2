#!/usr/bin/python3
"""Python threads running axelera.runtime instances at once: do two threads overlap on 2 cores?

run() releases the GIL, so two threads on two instances (each on its own simulated core) should
compute at the same time; one instance runs one call at a time (two with double_buffer=True),
so two threads on it queue. One line per case, the baseline (one thread, same case) measured in
the same run: runs/s with 2 threads, runs/s with 1, their ratio, and the process CPU seconds per
wall second with 2 threads (about 2 when both compute at once, about 1 when they take turns).
Median of --rounds rounds, each --seconds long per thread count.

  benchmarks/bench_python_threads.py [--model PACKAGE] [--rounds 3] [--seconds 1.5]

Default model: blazeface-front of the set-up's cache (AXSTREAM_CACHE, default ~/.cache/axstream),
else the test package resnet_tiny (AXSTREAM_TEST_MODELS, default build/tests/data/models).
Environment: AXSTREAM_BUILD (default build/).
"""
import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("AXSTREAM_BUILD", HERE / "build"))
CACHE = Path(os.environ.get("AXSTREAM_CACHE", Path.home() / ".cache" / "axstream"))
sys.path[:0] = [str(HERE / "python"), str(BUILD / "python")]
# A device of our own: no other program's reservations.
os.environ.setdefault("AXSTREAM_RUNTIME_DIR", tempfile.mkdtemp(prefix="axstream-bench-"))

import numpy as np  # noqa: E402

import axelera.runtime as axr  # noqa: E402


def default_model():
    blazeface = CACHE / "models" / "blazeface-front"
    if (blazeface / "model.json").is_file():
        return blazeface
    models = Path(os.environ.get("AXSTREAM_TEST_MODELS", BUILD / "tests" / "data" / "models"))
    return models / "resnet_tiny"


def measure(instances, model, threads, seconds):
    """(runs per second, process CPU seconds per wall second) of `threads` threads, thread k on
    instances[k % len(instances)]."""
    inputs = [np.zeros(i.shape, i.dtype) for i in model.inputs()]
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    end = [0.0]

    def loop(k):
        outputs = [np.zeros(o.shape, o.dtype) for o in model.outputs()]
        instance = instances[k % len(instances)]
        start.wait()
        while time.perf_counter() < end[0]:
            instance.run(inputs, outputs)
            counts[k] += 1

    workers = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    end[0] = wall0 + seconds
    start.wait()
    for worker in workers:
        worker.join()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return sum(counts) / wall, cpu / wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.5)
    args = parser.parse_args()
    path = args.model or default_model()
    with axr.Context() as context:
        model = context.load_model(path)
        connection = context.device_connect(num_sub_devices=2)
        cases = [
            ("one instance", [connection.load_model_instance(model)]),
            ("one instance, double_buffer", [connection.load_model_instance(model,
                                                                            double_buffer=True)]),
            ("two instances", [connection.load_model_instance(model) for _ in range(2)]),
        ]
        print(f"model {path.name}; {args.rounds} rounds of {args.seconds} s per case and count")
        for name, instances in cases:
            measure(instances, model, 2, 0.2)  # warm-up
            one, two, load = [], [], []
            for _ in range(args.rounds):
                one.append(measure(instances, model, 1, args.seconds)[0])
                rate, cpu = measure(instances, model, 2, args.seconds)
                two.append(rate)
                load.append(cpu)
            one_rate, two_rate = statistics.median(one), statistics.median(two)
            print(f"{name:30s} 2 threads {two_rate:8.1f} runs/s   1 thread {one_rate:8.1f} runs/s"
                  f"   ratio {two_rate / one_rate:4.2f}   CPU/wall (2 threads) "
                  f"{statistics.median(load):4.2f}")


if __name__ == "__main__":
    main()
