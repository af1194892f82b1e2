#!/usr/bin/python3
"""Which instruction set ONNX Runtime's hot code used, from a perf profile.

  perf record -F 1999 -o ort.data -- node benchmarks/bench_ort.mjs --only resnet50 \\
      --threads 1 --dtype int8-u8act
  benchmarks/ort_kernel_isa.py ort.data [LIBONNXRUNTIME]

libonnxruntime.so from npm is stripped, so samples cannot be named by function; instead each
sampled address is classed by the instructions around it in the library's disassembly (objdump):
AMX (tdpbusd/tdpbssd...), AVX512-VNNI or AVX-VNNI (vpdpbusd[s]), float FMA (vfmadd), other.
Prints the share of all samples in each class (docs/performance.md, "Engine vs ONNX Runtime").
"""
import bisect
import collections
import os
import re
import subprocess
import sys

NEIGHBOURS = 40  # instructions either side: one unrolled kernel loop body


def disassembly(library):
    text = subprocess.run(['objdump', '-d', '--no-show-raw-insn', library], check=True,
                          capture_output=True, text=True).stdout
    ops = {}
    for line in text.splitlines():
        m = re.match(r'\s*([0-9a-f]+):\t(\S+)(\s+\S+)?', line)
        if m:
            ops[int(m.group(1), 16)] = (m.group(2), m.group(3) or '')
    return ops


def classify(window):
    names = [op for op, _ in window]
    if any(n.startswith(('tdpb', 'tileload', 'tilestore')) for n in names):
        return 'AMX'
    if any(n.startswith('vpdpbus') for n in names):
        vex = any(n == '{vex}' for n in names) or not any('zmm' in a for _, a in window)
        return 'AVX-VNNI (ymm)' if vex else 'AVX512-VNNI'
    if any('vfmadd' in n for n in names):
        return 'float FMA'
    return 'other'


def main(argv):
    if len(argv) not in (2, 3):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    data = argv[1]
    data_dir = os.environ.get('AXSTREAM_DATA_DIR', os.path.expanduser('~/.cache/axstream'))
    library = argv[2] if len(argv) == 3 else os.path.join(
        data_dir, 'npm/node_modules/onnxruntime-node/bin/napi-v3/linux/x64/libonnxruntime.so.1.20.1')
    report = subprocess.run(['perf', 'report', '-i', data, '--sort', 'dso,sym', '-F',
                             'overhead,dso,sym', '--stdio'], check=True, capture_output=True,
                            text=True).stdout
    ops = disassembly(library)
    addresses = sorted(ops)
    shares = collections.Counter()
    outside = 0.0
    for line in report.splitlines():
        m = re.match(r'\s*([\d.]+)%\s+(\S+)\s+\[\.\]\s+0x([0-9a-f]+)\s*$', line)
        if not m:
            m2 = re.match(r'\s*([\d.]+)%', line)
            if m2:
                outside += float(m2.group(1))
            continue
        share, dso, address = float(m.group(1)), m.group(2), int(m.group(3), 16)
        if not dso.startswith('libonnxruntime'):
            outside += share
            continue
        i = bisect.bisect_left(addresses, address)
        window = [ops[a] for a in addresses[max(0, i - NEIGHBOURS):i + NEIGHBOURS]]
        shares[classify(window)] += share
    print(f'{data}: share of all samples by the instructions around each sampled address')
    for name, share in shares.most_common():
        print(f'  libonnxruntime {name:16s} {share:5.1f}%')
    print(f'  elsewhere (node, libc, kernel) {outside:5.1f}%')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
