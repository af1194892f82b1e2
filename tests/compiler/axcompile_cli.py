#!/usr/bin/python3
"""axcompile as a user meets it at the terminal: Ctrl-C (SIGINT) or SIGTERM during calibration
stops at the next image with a message and exit 128+signal, leaving no temporary directory and
an earlier package at --output-dir as it was; progress bars show on a terminal, only finished
stages on a pipe, none with --quiet; a usage error is one line naming the problem (the 50-line
usage after it pushed it off the screen); an error starts its own line.

    axcompile_cli.py AXCOMPILE FLOAT_MODELS_DIR AXCOMPILE_SOURCE COMPILER_DOC

Every option the source parses is in --help, and every long one in docs/compiler.md.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile

import cv2
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'common'))
from terminal import run_on_terminal_then_signal  # noqa: E402

axcompile, models, source, doc = sys.argv[1:5]
classifier = os.path.join(models, 'classifier.onnx')


def run(*args):
    return subprocess.run([axcompile, *args], capture_output=True, text=True, timeout=120)




with tempfile.TemporaryDirectory(prefix='axcompile-cli-') as scratch:
    # 400 small images: calibration takes a second or more, long enough to be interrupted in.
    images = os.path.join(scratch, 'images')
    os.mkdir(images)
    rng = np.random.default_rng(7)
    for i in range(400):
        cv2.imwrite(os.path.join(images, f'{i:03d}.png'),
                    rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    # An earlier package at the output directory (model.json marks one): kept as it was.
    package = os.path.join(scratch, 'pkg')
    os.mkdir(package)
    with open(os.path.join(package, 'model.json'), 'w') as f:
        f.write('{"earlier": true}\n')

    def assert_nothing_left():
        assert sorted(os.listdir(scratch)) == ['images', 'pkg'], os.listdir(scratch)
        assert os.listdir(package) == ['model.json'], os.listdir(package)
        with open(os.path.join(package, 'model.json')) as f:
            assert f.read() == '{"earlier": true}\n'

    compile_args = [classifier, '--calib', images, '--num-calib', '400', '--output-dir', package]
    status, terminal, _, took = run_on_terminal_then_signal(
        [axcompile, *compile_args], signal.SIGINT, wait_for=b'calibrating [')
    assert status == 130, (status, terminal)
    assert 'calibrating [' in terminal, terminal
    # The half-drawn bar is ended first: the message starts its own line.
    assert '\r\naxcompile: interrupted by SIGINT (Ctrl-C): no package written\r\n' in terminal, \
        terminal
    assert took < 2, f'{took:.1f} s from SIGINT to exit'
    assert_nothing_left()
    print(f'SIGINT during calibration: exit 130 {took:.2f} s after the signal')

    status, terminal, _, took = run_on_terminal_then_signal(
        [axcompile, *compile_args], signal.SIGTERM, wait_for=b'calibrating [')
    assert status == 143, (status, terminal)
    assert '\r\naxcompile: interrupted by SIGTERM: no package written\r\n' in terminal, terminal
    assert took < 2, f'{took:.1f} s from SIGTERM to exit'
    assert_nothing_left()

    # On a pipe: only each finished stage; with --quiet nothing but the report on stdout.
    small = [classifier, '--calib', images, '--num-calib', '8', '--output-dir',
             os.path.join(scratch, 'small')]
    piped = run(*small)
    assert piped.returncode == 0, piped
    assert piped.stderr.startswith('calibrating [' + '#' * 30 + '] '), piped.stderr
    assert '\r' not in piped.stderr, piped.stderr
    quiet = run(*small, '-q')
    assert quiet.returncode == 0 and quiet.stderr == '', quiet
    assert quiet.stdout.startswith('package   '), quiet.stdout
    # --no-check says that it skipped the check: it blamed a lack of held-out images.
    unchecked = run(*small, '-q', '--no-check')
    assert unchecked.returncode == 0, unchecked
    assert 'accuracy vs float model: not checked (--no-check)\n' in unchecked.stdout, unchecked
    # --quiet on a terminal too (run to its end: the signal goes to an exited process).
    status, terminal, _, _ = run_on_terminal_then_signal([axcompile, *small, '--quiet'], 0)
    assert status == 0 and terminal == '', (status, terminal)

    # An error before any bar: no blank line first.
    missing = run(os.path.join(scratch, 'none.onnx'), '--calib', images)
    assert missing.returncode == 1 and missing.stderr.startswith('axcompile: error ('), missing
    # A FIFO as the model blocked axcompile until a writer came.
    fifo = os.path.join(scratch, 'fifo.onnx')
    os.mkfifo(fifo)
    out = run(fifo, '--calib', images)
    assert out.returncode == 1 and f"model '{fifo}': not a regular file" in out.stderr, out
    os.remove(fifo)

    usage_errors = {
        ('--batch', 'abc'): "axcompile: --batch: expected a finite number, got 'abc'",
        ('--num-calib', '1e12'):
            "axcompile: --num-calib: expected an integer in 1..100000, got '1e12'",
        ('--bogus',): 'axcompile: unknown option --bogus',
    }
    for args, message in usage_errors.items():
        out = run(classifier, '--calib', images, *args)
        assert out.returncode == 2, (args, out)
        assert out.stderr == message + ' (axcompile --help lists the options)\n', (args, out.stderr)

    usage = run('--help')
    assert usage.returncode == 0 and usage.stdout.startswith('usage: axcompile MODEL.onnx'), usage
    for words in ('--quiet, -q', '--verbose, -v', 'Exit status: 0', '130 interrupted'):
        assert words in usage.stdout, (words, usage.stdout)
    with open(source) as f:
        parsed = set(re.findall(r'arg == "(-[-\w]*)"', f.read()))
    with open(doc) as f:
        doc_text = f.read()
    assert len(parsed) > 25, parsed
    for option in sorted(parsed):
        assert re.search(re.escape(option) + r'\b', usage.stdout), f'{option} not in --help'
        if option.startswith('--') and option != '--help':
            assert option in doc_text, f'{option} not in {doc}'
print('axcompile cli: ok')
