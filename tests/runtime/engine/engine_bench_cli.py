#!/usr/bin/python3
"""engine-bench (the latency tool docs/performance.md runs) as a user meets it: --help is the
usage and exit 0, a bad count or input shape exits 2 naming it, a model that does not load exits
1 with the engine's message; before, --help and a missing file aborted on an uncaught exception,
a bad count ran zero iterations and crashed, and a bad dimension aborted in std::stoll."""
import subprocess
import sys

engine_bench, onnx_model = sys.argv[1:3]


def expect(args, status, text):
    out = subprocess.run([engine_bench, *args], capture_output=True, text=True, timeout=60)
    stream = out.stdout if status == 0 else out.stderr
    assert out.returncode == status and text in stream, \
        f'engine-bench {args}: expected exit {status} and {text!r}, got {out.returncode}\n' \
        f'{out.stdout}{out.stderr}'


expect(['--help'], 0, 'usage: ')
expect([], 2, 'usage: ')
expect(['/nonexistent.onnx'], 1, "engine-bench: /nonexistent.onnx: ONNX model '/nonexistent.onnx'")
expect([onnx_model, 'abc'], 2, "iterations 'abc': expected an integer in 1..1000000")
expect([onnx_model, '2', '0'], 2, "threads '0': expected an integer in 1..256")
expect([onnx_model, '2', '1', 'x=1,,3'], 2, "input shape 'x=1,,3'")
expect([onnx_model, '2', '1'], 0, 'latency p50')
print('PASS')
