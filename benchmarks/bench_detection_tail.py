#!/usr/bin/python3
"""The engine's TopK and GatherND on a detection head's tail, against numpy in the same run.

Case (one line: ours, the baseline, the ratio): a YOLOv5-sized head's 25200 objectness scores
cut to the best --k (TopK, sorted, ties to the lower index) and those rows gathered from the
(1, 25200, 85) predictions (GatherND, batch_dims 1). Ours: the model through `axrun --cores 1`
with AXSTREAM_ENGINE_PROFILE=1, the CPU time of its steps per inference (the figure that holds
on a shared machine; axrun's wall-clock rate there mostly measures waiting for a core). The
baseline: numpy doing the same (argpartition, a stable sort of the kept scores, fancy indexing),
CPU time per call, median of --rounds of --calls calls, on the same random inputs' sizes.

  benchmarks/bench_detection_tail.py [--k 300] [--runs 5000] [--rounds 5] [--calls 2000]

Environment: AXSTREAM_BUILD (default build/).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

HERE = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("AXSTREAM_BUILD", HERE / "build"))
ANCHORS, CHANNELS = 25200, 85


def tail_model(path, k):
    """scores (1, 25200), predictions (1, 25200, 85) -> best k scores, their indices and rows."""
    nodes = [
        helper.make_node("TopK", ["scores", "k"], ["best", "index"], axis=1),
        helper.make_node("Unsqueeze", ["index", "last"], ["index3"]),
        helper.make_node("GatherND", ["predictions", "index3"], ["rows"], batch_dims=1),
    ]
    graph = helper.make_graph(
        nodes, "detection_tail",
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, ANCHORS]),
         helper.make_tensor_value_info("predictions", TensorProto.FLOAT, [1, ANCHORS, CHANNELS])],
        [helper.make_tensor_value_info("best", TensorProto.FLOAT, [1, k]),
         helper.make_tensor_value_info("rows", TensorProto.FLOAT, [1, k, CHANNELS])],
        [helper.make_tensor("k", TensorProto.INT64, [1], [k]),
         helper.make_tensor("last", TensorProto.INT64, [1], [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.save(model, path)


def numpy_tail(scores, predictions, k):
    part = np.argpartition(-scores[0], k - 1)[:k]
    order = part[np.lexsort((part, -scores[0, part]))]
    return scores[0, order], predictions[0, order]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=300)
    parser.add_argument("--runs", type=int, default=5000, help="axrun's timed runs")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    axrun = BUILD / "tools" / "axrun"
    if not axrun.exists():
        print(f"SKIPPED: {axrun} not built")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "detection_tail.onnx")
        tail_model(model, args.k)
        out = subprocess.run([str(axrun), model, "--cores", "1", "-n", str(args.runs),
                              "--warmup", "50", "--quiet"],
                             env=dict(os.environ, AXSTREAM_ENGINE_PROFILE="1"),
                             check=True, capture_output=True, text=True)
    steps = re.findall(r"engine profile: +[0-9.]+ ms \(CPU +([0-9.]+) ms\) in +([0-9]+) calls",
                       out.stderr + out.stdout)
    if not steps:
        print(f"bench_detection_tail: no engine profile in axrun's output:\n{out.stderr}",
              file=sys.stderr)
        return 1
    engine_us = sum(float(cpu_ms) * 1000 / int(calls) for cpu_ms, calls in steps)
    rng = np.random.default_rng(7)
    scores = rng.random((1, ANCHORS), np.float32)
    predictions = rng.random((1, ANCHORS, CHANNELS), np.float32)
    rounds = []
    for _ in range(args.rounds):
        start = time.process_time()
        for _ in range(args.calls):
            numpy_tail(scores, predictions, args.k)
        rounds.append((time.process_time() - start) / args.calls * 1e6)
    numpy_us = statistics.median(rounds)
    print(f"detection tail (TopK {args.k} of {ANCHORS} + GatherND rows of {CHANNELS}): "
          f"engine {engine_us:.1f} us CPU, numpy {numpy_us:.1f} us CPU, "
          f"ratio {numpy_us / engine_us:.2f}x (load {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
