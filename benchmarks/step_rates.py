#!/usr/bin/python3
"""The engine's per-step rate (GMAC/s) beside its kernel's median on similar shapes; outliers flagged.

    benchmarks/step_rates.py [--build build] [--runs 200] [--rounds 3] [--below 0.6] NAME|PATH ...

NAME is a package under $AXSTREAM_BENCH_MODELS/pkg (default $AXSTREAM_DATA_DIR/bench/pkg: resnet50,
yolov5s, ...) or $AXSTREAM_DATA_DIR/models (blazeface-front, ppocr-det, ...); PATH a core.onnx.
For each model, runs `engine-bench CORE RUNS 1` on one thread with AXSTREAM_PRINT_GRAPH=1 and
AXSTREAM_ENGINE_PROFILE=steps ROUNDS times, each time for RUNS and for RUNS/5 runs, takes each
step's thread CPU per call from the difference (so the warm-up run's one-time costs, such as
oneDNN generating its sgemm kernels on the first call, drop out), keeps the least, and
takes each step's MACs from the printed graph's shapes (convolutions: output elements x weight
elements per output channel; matmuls: output elements x the shared dimension; their sum is
printed beside the program's own count, which also counts other ops' elements). Steps with
MACs are grouped by op, oneDNN (or own) kernel, kernel size, stride and whether they are
depthwise, and, where 3 or more steps also share them, by reduction length K and output channels N
(each to the nearest power of 2; marked g), across all models given; a step whose rate is below
BELOW x its group's median (groups of 3 or more) is flagged (*), and "excess"
is the time it would save at the median rate. Steps without MACs (pools, adds, copies) are
grouped by op and implementation and rated in bytes read and written (inputs that are not
constants, and outputs) per ns. Sorted by excess, largest
first. Judge on a shared machine with several rounds: the figure is CPU time, not wall.
"""
import argparse
import math
import os
import re
import statistics
import subprocess
import sys

PROFILE_LINE = re.compile(
    r"engine profile:\s+\S+ ms \(CPU\s+(\S+) ms\) in\s+(\d+) calls\s+(\d+) (\S+)(?: \[(.*)\])? '(.*)'$")
PROGRAM_LINE = re.compile(r"program '.*': (\d+) steps, .* (\d+) MACs$")
STEP_LINE = re.compile(r"^  (\S+) '([^']*)'(.*)$")
VALUE = re.compile(r"'((?:[^']|'(?! ))*)' (\w+)\(([\d,]*)\)( const)?")
DTYPE_BYTES = {"int8": 1, "uint8": 1, "bool": 1, "int16": 2, "uint16": 2, "float16": 2,
               "bfloat16": 2, "int32": 4, "uint32": 4, "float32": 4, "int64": 8, "uint64": 8,
               "float64": 8}
CONV_OPS = {"QConv", "Conv", "QLinearConv", "ConvInteger"}
MATMUL_OPS = {"QLinearMatMul", "MatMul", "MatMulInteger", "QGemm", "Gemm", "QMatMul"}


def prod(xs):
    out = 1
    for x in xs:
        out *= x
    return out


def parse_values(text):
    return [(name, dtype, tuple(int(d) for d in shape.split(",") if d), bool(const))
            for name, dtype, shape, const in VALUE.findall(text)]


def attribute(text, name):
    m = re.search(r"\b" + name + r"=(\([\d,-]*\)|-?\d+)", text)
    return m.group(1) if m else ""


def step_macs(op, attrs, inputs, outputs):
    if not outputs:
        return 0
    out = outputs[0][2]
    if op in CONV_OPS:
        weights = [v for v in inputs[1:] if v[3] and len(v[2]) >= 3]
        return prod(out) * prod(weights[0][2][1:]) if weights else 0
    if op in MATMUL_OPS and inputs and inputs[0][2]:
        a = inputs[0][2]
        k = a[-2] if attribute(attrs, "transA") == "1" and len(a) >= 2 else a[-1]
        return prod(out) * k
    return 0


def kernel_of(impl):
    """The kernel part of an implementation: oneDNN's `name:isa`, else the whole text."""
    m = re.search(r"\b([a-z_0-9]+:[a-z_0-9]+)\b", impl)
    return m.group(1) if m else impl


def run_model(build, core, runs, check_macs):
    env = dict(os.environ, AXSTREAM_ENGINE_PROFILE="steps", AXSTREAM_PRINT_GRAPH="1")
    out = subprocess.run([os.path.join(build, "tests/runtime/engine/engine-bench"), core,
                          str(runs), "1"], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"engine-bench {core} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    graph, profile, program_macs, in_program = [], {}, None, False
    for line in out.stderr.splitlines():
        m = PROGRAM_LINE.match(line)
        if m and program_macs is None:
            program_macs, in_program = int(m.group(2)), True
            continue
        m = PROFILE_LINE.match(line.strip())
        if m:
            cpu, calls, step, op, impl, label = m.groups()
            profile[int(step)] = (float(cpu) * 1e3, int(calls))
            continue
        if not in_program:
            continue
        m = STEP_LINE.match(line)
        if not m or m.group(1) in ("input", "output"):
            if not line.startswith("  "):
                in_program = False
            continue
        op = m.group(1).split(".")[-1]
        rest = m.group(3)
        head, _, tail = rest.partition(" -> ")
        attrs, _, ins = head.partition(" (")
        impl = re.search(r"\) \[(.*)\]", tail)
        outs = tail.split(") [")[0] if impl else tail
        inputs, outputs = parse_values(ins), parse_values(outs)
        graph.append({"op": op, "label": m.group(2), "attrs": attrs, "impl": impl.group(1) if impl else "",
                      "macs": step_macs(op, attrs, inputs, outputs), "inputs": inputs,
                      "outputs": outputs})
    if not graph or not profile:
        sys.exit(f"engine-bench {core} printed no graph or no step profile:\n{out.stderr[-2000:]}")
    if check_macs:
        counted = sum(s["macs"] for s in graph)
        print(f"# {core}: {counted / 1e6:.1f} M MACs in convolutions and matmuls, of the "
              f"program's {program_macs / 1e6:.1f} M (which counts other ops' elements too)")
    return graph, profile


def bucket(n):
    """n to the nearest power of 2 (log scale), so 'similar' is within about 1.4x either way."""
    return 1 << max(0, round(math.log2(max(n, 1))))


def group_keys(step):
    """The step's coarse group (op, kernel, kernel size, stride) and its fine group (also the
    reduction length and the output channels, each to a power of 2)."""
    op, attrs = step["op"], step["attrs"]
    if not step["macs"]:
        key = (op, kernel_of(step["impl"]))
        return key, key
    kshape = attribute(attrs, "kernel_shape").strip("()").replace(",", "x")
    stride = attribute(attrs, "strides").strip("()").replace(",", "x")
    group = attribute(attrs, "group")
    out = step["outputs"][0][2]
    channels = out[1] if len(out) >= 2 else 1
    depthwise = group not in ("", "1") and int(group) == channels
    coarse = (op + (" dw" if depthwise else ""), kernel_of(step["impl"]), kshape, stride)
    reduction = step["macs"] // max(1, prod(out))
    return coarse, coarse + (f"K~{bucket(reduction)}", f"N~{bucket(channels)}")


def resolve(name):
    if os.path.isfile(name):
        return name
    data = os.environ.get("AXSTREAM_DATA_DIR", os.path.expanduser("~/.cache/axstream"))
    bench = os.environ.get("AXSTREAM_BENCH_MODELS", os.path.join(data, "bench"))
    for core in (os.path.join(bench, "pkg", name, "core.onnx"),
                 os.path.join(data, "models", name, "core.onnx")):
        if os.path.exists(core):
            return core
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="+")
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--below", type=float, default=0.6)
    ap.add_argument("--all", action="store_true", help="print every step, not only the flagged")
    args = ap.parse_args()
    if not os.access(os.path.join(args.build, "tests/runtime/engine/engine-bench"), os.X_OK):
        sys.exit(f"{args.build}/tests/runtime/engine/engine-bench missing: build it (ninja -C "
                 f"{args.build} tests/runtime/engine/engine-bench) or pass --build")
    rows = []
    for name in args.names:
        core = resolve(name)
        if core is None:
            print(f"SKIPPED: {name}: no package (scripts/bench.sh or scripts/build-demo-models.sh makes it)")
            continue
        best, graph = {}, None
        for round_ in range(args.rounds):
            # The executor's profile counts engine-bench's warm-up run, whose one-time costs
            # (oneDNN's first sgemm call generating its kernels: ~25 ms) would show as a slow
            # step: the per-call figure is the difference between a long and a short run.
            graph, long_run = run_model(args.build, core, args.runs, round_ == 0)
            _, short_run = run_model(args.build, core, max(1, args.runs // 5), False)
            for step, (cpu, calls) in long_run.items():
                if step not in short_run or calls <= short_run[step][1]:
                    continue
                us = (cpu - short_run[step][0]) / (calls - short_run[step][1])
                best[step] = min(us, best.get(step, us))
        label = os.path.basename(os.path.dirname(core)) if not os.path.isfile(name) or \
            name.endswith("core.onnx") else name
        for i, step in enumerate(graph):
            if i not in best:
                continue
            us = max(best[i], 1e-3)
            moved = sum(prod(v[2]) * DTYPE_BYTES.get(v[1], 4)
                        for v in step["outputs"] + [v for v in step["inputs"] if not v[3]])
            rate = step["macs"] / us / 1e3 if step["macs"] else moved / us / 1e3
            coarse, fine = group_keys(step)
            rows.append({"model": label, "step": i, "us": us, "rate": rate, "coarse": coarse,
                         "fine": fine, **step})
    groups = {}
    for r in rows:
        groups.setdefault(r["coarse"], []).append(r["rate"])
        if r["fine"] != r["coarse"]:
            groups.setdefault(r["fine"], []).append(r["rate"])
    for r in rows:
        r["key"] = r["fine"] if len(groups[r["fine"]]) >= 3 else r["coarse"]
        rates = groups[r["key"]]
        median = statistics.median(rates)
        r["median"], r["n"] = median, len(rates)
        r["ratio"] = r["rate"] / median if median else 1.0
        r["excess"] = max(0.0, r["us"] - r["us"] * r["ratio"]) if r["ratio"] < 1 else 0.0
        r["flag"] = len(rates) >= 3 and r["ratio"] < args.below
    total = {}
    for r in rows:
        total[r["model"]] = total.get(r["model"], 0.0) + r["us"]
    print(f"# thread CPU us per call, least of {args.rounds} round(s) of {args.runs} runs less "
          f"{max(1, args.runs // 5)}; "
          "rate: GMAC/s (steps with MACs) or GB/s read and written (+); median over the group "
          "(op, kernel, kernel size, stride, and where 3 or more share them, reduction K and "
          "output channels N to a power of 2: g) in all models given")
    for model, us in total.items():
        print(f"# {model}: {us / 1e3:.3f} ms in steps")
    print(f"{'model':<16} {'step':>4} {'op':<14} {'us':>8} {'MMACs':>8} {'rate':>8} {'median':>8} "
          f"{'x med':>6} {'n':>4} {'excess':>7}  node | kernel | out shape")
    shown = sorted(rows, key=lambda r: -r["excess"])
    if not args.all:
        shown = [r for r in shown if r["flag"]]
    for r in shown:
        shape = "x".join(str(d) for d in r["outputs"][0][2]) if r["outputs"] else ""
        rate = f"{r['rate']:.1f}" + ("" if r["macs"] else "+")
        print(f"{r['model']:<16} {r['step']:>4} {r['key'][0]:<14} {r['us']:>8.1f} "
              f"{r['macs'] / 1e6:>8.1f} {rate:>8} {r['median']:>8.1f} {r['ratio']:>6.2f} "
              f"{r['n']:>3}{'g' if r['key'] != r['coarse'] else ' '} {r['excess']:>7.1f}{' *' if r['flag'] else '  '} {r['label']} | "
              f"{r['impl']} | {shape}")


if __name__ == "__main__":
    main()
