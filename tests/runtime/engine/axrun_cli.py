#!/usr/bin/python3
"""axrun as a user meets it beyond the happy path: a package whose tensors would need terabytes is
refused before anything is allocated, naming the tensor and the sizes (it was a bare
std::bad_alloc); Ctrl-C (SIGINT) or SIGTERM mid-run stops within a moment with a message, exit
128+signal and the device's core locks free and cleared; a long round shows a progress line on a
terminal unless --quiet; bad command lines exit 2 naming the problem. Each case takes at most a
second or two (the progress line needs one). Every option the source parses is in --help, and
every long one in docs/runtime.md.

    axrun_cli.py AXRUN AXRUN_SOURCE RUNTIME_DOC
"""
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import tempfile

import onnx
from onnx import TensorProto, helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'common'))
from terminal import run_on_terminal_then_signal  # noqa: E402

axrun, source, doc = sys.argv[1:4]
# The core lock files are checked as this run leaves them, so the run gets a runtime dir of its
# own: a run killed earlier (a CI timeout, Ctrl-C) leaves its holders' names in the lock files of
# the build dir's (meson's AXSTREAM_RUNTIME_DIR; the locks died with it), and every later run
# then read them as not cleared.
_runtime = tempfile.TemporaryDirectory(prefix='axrun-cli-runtime-')
runtime_dir = os.environ['AXSTREAM_RUNTIME_DIR'] = _runtime.name


def write_identity_package(directory, core_shape, batch=1):
    """A package whose core graph is one int8 Identity of core_shape; model.json's batch scales
    the device tensors (batch, *core_shape[1:])."""
    os.makedirs(directory)
    x = helper.make_tensor_value_info('x', TensorProto.INT8, core_shape)
    y = helper.make_tensor_value_info('y', TensorProto.INT8, core_shape)
    graph = helper.make_graph([helper.make_node('Identity', ['x'], ['y'])], 'identity', [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)]),
              os.path.join(directory, 'core.onnx'))
    device_shape = [batch] + list(core_shape[1:])
    no_padding = [0] * (2 * len(core_shape))
    with open(os.path.join(directory, 'model.json'), 'w') as f:
        json.dump({'format_version': 1, 'name': 'identity', 'core_graph': 'core.onnx',
                   'batch': batch, 'input_tensor_layout': 'NHWC'}, f)
    with open(os.path.join(directory, 'manifest.json'), 'w') as f:
        json.dump({'manifest_version': 1, 'input_shapes': [device_shape],
                   'output_shapes': [device_shape], 'quantize_params': [[0.1, 0]],
                   'dequantize_params': [[0.1, 0]], 'n_padded_ch_inputs': [no_padding],
                   'n_padded_ch_outputs': [no_padding], 'input_names': ['x'],
                   'output_names': ['y'], 'input_dtypes': ['int8'], 'output_dtypes': ['int8']}, f)
    return directory


def run(*args):
    return subprocess.run([axrun, *args], capture_output=True, text=True, timeout=60)




def assert_cores_free_and_cleared():
    """Every core lock file under the runtime dir: no holder named, and no lock held on it."""
    locks = [n for n in os.listdir(runtime_dir) if n.endswith('.lock')]
    assert locks, f'no core lock files in {runtime_dir}: {os.listdir(runtime_dir)}'
    for name in locks:
        path = os.path.join(runtime_dir, name)
        with open(path, 'r+') as f:
            assert f.read() == '', f'{path} still names a holder'
            # A POSIX lock conflicts with the simulator's OFD locks: it fails while one is held.
            fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.lockf(f, fcntl.LOCK_UN)


with tempfile.TemporaryDirectory(prefix='axrun-cli-') as scratch:
    small = write_identity_package(os.path.join(scratch, 'small'), [1, 8, 8, 4])
    # 1 TiB per device tensor (batch 1024 of 1 GiB), under the loader's 2^40-element bound.
    huge = write_identity_package(os.path.join(scratch, 'huge'), [1, 4096, 4096, 64], batch=1024)

    out = run(huge, '-n', '1', '--cores', '1')
    assert out.returncode == 1, out
    assert 'bad_alloc' not in out.stderr, out.stderr
    for words in ("axrun: " + huge + ": its inputs and outputs need 2.0 TiB of host buffers "
                  "per core", "the largest is input 'x' int8 (1024,4096,4096,64), 1.0 TiB",
                  "more than this machine's", 'GiB of memory'):
        assert words in out.stderr, (words, out.stderr)
    print('terabyte package:', out.stderr.strip())

    # Ctrl-C while the timed runs go on: the progress line was on the terminal, the stop is
    # prompt and says so, the round cut short prints no figures, the cores are free again.
    status, terminal, stdout, took = run_on_terminal_then_signal(
        [axrun, small, '-n', '1000000', '--warmup', '0', '--cores', '1'], signal.SIGINT,
        wait_for=b'runs', wait_at_most=3.0)
    assert status == 130, (status, terminal)
    assert 'axrun: cores=1: ' in terminal and '/1000000 runs' in terminal, terminal
    assert 'axrun: interrupted by SIGINT (Ctrl-C): stopped after the inferences in progress' \
        in terminal, terminal
    assert took < 2, f'{took:.1f} s from SIGINT to exit'
    assert 'cores=1:' not in stdout, stdout
    assert_cores_free_and_cleared()
    again = run(small, '-n', '2', '--cores', '1,2')
    assert again.returncode == 0 and 'cores=2: ' in again.stdout, again
    print(f'SIGINT: exit 130 {took:.2f} s after the signal; cores free')

    # --quiet: no progress line even on a terminal; SIGTERM stops as cleanly (128+15).
    status, terminal, _, took = run_on_terminal_then_signal(
        [axrun, small, '-n', '1000000', '--warmup', '0', '--cores', '2', '--quiet'],
        signal.SIGTERM, wait_at_most=1.3)
    assert status == 143 and 'axrun: interrupted by SIGTERM' in terminal, (status, terminal)
    assert 'runs' not in terminal, f'--quiet showed progress: {terminal!r}'
    assert took < 2, f'{took:.1f} s from SIGTERM to exit'
    assert_cores_free_and_cleared()

    usage_errors = {
        ('--bogus', small): 'axrun: unknown option --bogus',
        (small, '--iterations'): 'axrun: --iterations needs a value',
        (small, '--iterations', 'abc'): "--iterations expects an integer in 1..1000000, got 'abc'",
        (small, '-n', '1e12'): "-n expects an integer in 1..1000000, got '1e12'",
        (small, '-n', '0'): "-n expects an integer in 1..1000000, got '0'",
        (small, '--warmup', '-1'): "--warmup expects an integer in 0..1000000, got '-1'",
        (small, '--cores', '1,,2'): "--cores expects an integer in 1..64, got ''",
        (small, small): 'axrun: more than one MODEL',
        (): 'axrun: MODEL is missing',
    }
    for args, message in usage_errors.items():
        out = run(*args)
        assert out.returncode == 2 and message in out.stderr, (args, out)
        assert 'usage: axrun MODEL' in out.stderr, (args, out.stderr)

    # Out of memory outside the tensor buffers (the latency records, the threads' stacks: 64
    # threads of 10^6 runs under a 300 MB address space): one message and exit 1. It was
    # std::terminate's abort, the exception leaving a feeding thread. Not under ASan, whose
    # shadow memory needs far more address space than that.
    if 'ASAN_OPTIONS' not in os.environ and 'libasan' not in os.environ.get('LD_PRELOAD', ''):
        import resource

        def small_address_space():
            resource.setrlimit(resource.RLIMIT_AS, (300 << 20, 300 << 20))

        out = subprocess.run([axrun, os.path.join(small, 'core.onnx'), '-n', '1000000',
                              '--cores', '64', '--warmup', '0', '-q'], capture_output=True,
                             text=True, timeout=60, preexec_fn=small_address_space)
        last = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ''
        assert out.returncode == 1 and last.startswith('axrun: ') and (
            'out of memory' in last or 'cannot start feeding thread' in last), out
        print('out of memory:', last)

    # Not regular files: /dev/zero was read until the out-of-memory killer came, a FIFO blocked.
    fifo = os.path.join(scratch, 'model.onnx')
    os.mkfifo(fifo)
    for model in (fifo, '/dev/zero'):
        out = run(model, '-n', '1')
        assert out.returncode == 1 and f"ONNX model '{model}': not a regular file" in out.stderr, out

    not_a_package = os.path.join(scratch, 'empty-dir')
    os.mkdir(not_a_package)
    out = run(not_a_package)
    assert out.returncode == 1 and not_a_package in out.stderr and \
        'model.json' in out.stderr, out

    usage = run('--help')
    assert usage.returncode == 0 and not usage.stderr, usage
    for words in ('Exit status: 0', '130 interrupted'):
        assert words in usage.stdout, (words, usage.stdout)
    # The example works as printed (with this build directory for build/).
    example = usage.stdout.split('Example (in the source tree, after ninja -C build):\n')[1]
    build_root = os.path.dirname(os.path.dirname(os.path.abspath(axrun)))
    words = [w.replace('build/', build_root + '/', 1) if w.startswith('build/') else w
             for w in example.split()]
    out = subprocess.run(words, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and 'cores=2: ' in out.stdout, (words, out)
    with open(source) as f:
        parsed = set(re.findall(r'a == "(-[-\w]*)"', f.read()))
    with open(doc) as f:
        doc_text = f.read()
    assert {'--iterations', '-n', '--cores', '--quiet'} <= parsed, parsed
    for option in sorted(parsed):
        assert re.search(re.escape(option) + r'\b', usage.stdout), f'{option} not in --help'
        if option.startswith('--') and option != '--help':
            assert option in doc_text, f'{option} not in {doc}'
print('axrun cli: ok')
