#!/usr/bin/python3
"""The engine's per-step profile beside oneDNN's chain of the same layers, one line per step.

    benchmarks/ceiling_layers.py [--build build] [--runs 300] [--rounds 1] NAME [NAME ...]

NAME is a bench package (resnet50, yolov5s, ...) under $AXSTREAM_BENCH_MODELS (default
$AXSTREAM_DATA_DIR/bench, i.e. ~/.cache/axstream/bench). Runs, on one thread, `engine-bench
PKG/core.onnx RUNS 1` with AXSTREAM_ENGINE_PROFILE=steps and `bench_engine --ceiling-layers NAME
--runs RUNS` (dnnl_ceiling.h: each primitive of the chain timed on its own), alternately ROUNDS
times, and prints per engine step the thread CPU microseconds per run of each side (the minimum
over the rounds) with each side's kernel, then the steps the chain does not have and the totals.
"""
import argparse
import os
import re
import subprocess
import sys

ENGINE_LINE = re.compile(
    r"engine profile:\s+\S+ ms \(CPU\s+(\S+) ms\) in\s+(\d+) calls\s+(\d+) (\S+)(?: \[(.*)\])? '(.*)'$")
CHAIN_LINE = re.compile(r"ceiling-layer\s+(\d+) (\S+) \[(.*)\] '(.*)' (\S+)$")


def engine_steps(build, core, runs):
    env = dict(os.environ, AXSTREAM_ENGINE_PROFILE="steps")
    out = subprocess.run([os.path.join(build, "tests/runtime/engine/engine-bench"), core,
                          str(runs), "1"], env=env, capture_output=True, text=True, check=True)
    steps = {}
    for line in out.stderr.splitlines():
        m = ENGINE_LINE.match(line.strip())
        if m:
            cpu, calls, step, op, impl, label = m.groups()
            steps[int(step)] = (op, impl or "", label, float(cpu) / int(calls) * 1e3)
    if not steps:
        sys.exit("engine-bench printed no step profile:\n" + out.stderr[-2000:])
    return steps


def chain_layers(build, name, runs):
    out = subprocess.run([os.path.join(build, "benchmarks/bench_engine"), "--ceiling-layers", name,
                          "--runs", str(runs)], capture_output=True, text=True, check=True)
    layers = {}
    for line in out.stdout.splitlines():
        m = CHAIN_LINE.match(line.strip())
        if m:
            step, op, impl, label, ms = m.groups()
            layers[int(step)] = (op, impl, label, float(ms) * 1e3)
    if not layers:
        sys.exit("bench_engine printed no ceiling layers:\n" + out.stdout[-2000:] + out.stderr[-2000:])
    return layers


def keep_min(into, new):
    for k, v in new.items():
        into[k] = v if k not in into or v[3] < into[k][3] else into[k]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="+")
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    data = os.environ.get("AXSTREAM_DATA_DIR", os.path.expanduser("~/.cache/axstream"))
    bench = os.environ.get("AXSTREAM_BENCH_MODELS", os.path.join(data, "bench"))
    for name in args.names:
        core = os.path.join(bench, "pkg", name, "core.onnx")
        if not os.path.exists(core):
            print(f"SKIPPED: {name}: {core} missing (scripts/bench.sh makes it)")
            continue
        engine, chain = {}, {}
        for _ in range(args.rounds):
            keep_min(engine, engine_steps(args.build, core, args.runs))
            keep_min(chain, chain_layers(args.build, name, args.runs))
        print(f"# {name}: thread CPU us per run, min of {args.rounds} round(s) of {args.runs} runs")
        print(f"{'step':>4} {'op':<18} {'engine us':>9} {'chain us':>9} {'diff':>7}  "
              "node | engine kernel | chain kernel")
        both_engine = both_chain = 0.0
        for step in sorted(chain):
            c_op, c_impl, c_label, c_us = chain[step]
            if step not in engine:
                print(f"{step:>4} {c_op:<18} {'-':>9} {c_us:9.1f} {'':>7}  {c_label} | - | {c_impl}")
                continue
            op, impl, label, us = engine[step]
            both_engine += us
            both_chain += c_us
            print(f"{step:>4} {op:<18} {us:9.1f} {c_us:9.1f} {us - c_us:+7.1f}  "
                  f"{label} | {impl} | {c_impl}")
        only = {s: v for s, v in engine.items() if s not in chain}
        print("# engine steps the chain does not have:")
        for step in sorted(only):
            op, impl, label, us = only[step]
            print(f"{step:>4} {op:<18} {us:9.1f} {'-':>9} {'':>7}  {label} | {impl}")
        only_us = sum(v[3] for v in only.values())
        print(f"# totals: layers on both sides engine {both_engine:.1f} us, chain {both_chain:.1f} "
              f"us ({both_engine - both_chain:+.1f}); engine-only steps {only_us:.1f} us; "
              f"engine {both_engine + only_us:.1f} us")


if __name__ == "__main__":
    main()
