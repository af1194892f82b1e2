#!/usr/bin/python3
"""axrun on a test package (through the runtime) and an ONNX model (through the engine): each
core count asked gives one line with a positive rate, p50 <= p99 and one utilisation figure per
core that worked; bad arguments exit 2 naming the problem; --help exits 0."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

axrun, package, onnx_model = sys.argv[1:4]
LINE = re.compile(r'^cores=(\d+): ([0-9.]+) inferences/s, latency p50 ([0-9.]+) ms, '
                  r'p99 ([0-9.]+) ms \((\d+) runs\); utilisation:((?: \S+ \d+%)+)$')


def check(model, cores, expect_core_names):
    out = subprocess.run([axrun, model, '-n', '4', '--warmup', '1', '--cores',
                          ','.join(map(str, cores))], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [l for l in out.stdout.splitlines() if l.startswith('cores=')]
    assert len(lines) == len(cores), out.stdout
    for line, c in zip(lines, cores):
        m = LINE.match(line)
        assert m, line
        assert int(m.group(1)) == c and float(m.group(2)) > 0, line
        assert float(m.group(3)) <= float(m.group(4)), line
        assert int(m.group(5)) == 4 * c, line
        names = re.findall(r' (\S+) \d+%', m.group(6))
        busy = [n for n in names if n.startswith(expect_core_names)]
        assert len(busy) >= c, f'expected {c} core figures in: {line}'
    return out.stdout


print(check(package, [1, 2], 'axcore'))
print(check(onnx_model, [1, 2], 'core'))
bad = subprocess.run([axrun, onnx_model, '--cores', '0'], capture_output=True, text=True)
assert bad.returncode == 2 and "--cores expects an integer in 1..64, got '0'" in bad.stderr, bad
# More cores than the default 4-core device: the runtime names the largest device (it was a
# usage error capped at 4 even on a simulated device of 8 or 16 sub-devices).
many = subprocess.run([axrun, package, '-n', '2', '--warmup', '0', '--cores', '8'],
                      capture_output=True, text=True, timeout=60)
assert many.returncode == 1 and 'no device has 8 sub-devices (largest has 4)' in many.stderr, many
eight = subprocess.run([axrun, package, '-n', '2', '--warmup', '0', '--cores', '8'],
                       capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, AXSTREAM_SIM_SUBDEVICES='8'))
assert eight.returncode == 0 and 'cores=8: ' in eight.stdout, eight
# The package's model.json is the package too (as load_model takes it), not an ONNX model.
print(check(package + '/model.json', [1], 'axcore'))
# A corrupt package: exit 1 with the loader's message naming the file and the field.
with tempfile.TemporaryDirectory() as scratch:
    broken = os.path.join(scratch, 'broken')
    shutil.copytree(package, broken)
    with open(os.path.join(broken, 'model.json')) as f:
        text = f.read()
    with open(os.path.join(broken, 'model.json'), 'w') as f:
        f.write(text.replace('"core.onnx"', '"../core.onnx"'))
    for model in (broken, broken + '/model.json'):
        out = subprocess.run([axrun, model, '-n', '1', '--cores', '1'], capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 1 and "model.json: field 'core_graph'" in out.stderr and \
            'it leaves the directory' in out.stderr, out
# float16/bfloat16/float64 inputs get the float32 inputs' values (uniform in [-1, 1)) in their
# type, not random bytes: each input (float16 and bfloat16 plus one, computed in float32 between
# Casts) becomes Gather indices in [0, 2) through a Cast to int64; a random 16- or 64-bit pattern
# (inf, NaN, 1e4, 1e300) would index out of range and fail the run.
import onnx
from onnx import TensorProto, helper
with tempfile.TemporaryDirectory() as scratch:
    nodes, inputs, outputs = [], [], []
    for name, elem in (('h', TensorProto.FLOAT16), ('b', TensorProto.BFLOAT16),
                       ('d', TensorProto.DOUBLE)):
        inputs.append(helper.make_tensor_value_info(name, elem, [1, 256]))
        source = name
        if elem != TensorProto.DOUBLE:
            nodes.append(helper.make_node('CastLike', ['one', name], [name + '_one']))
            nodes.append(helper.make_node('Add', [name, name + '_one'], [name + '_plus_one']))
            source = name + '_plus_one'
        nodes.append(helper.make_node('Cast', [source], [name + '_index'], to=TensorProto.INT64))
        nodes.append(helper.make_node('Gather', ['rows', name + '_index'], [name + '_rows']))
        outputs.append(helper.make_tensor_value_info(name + '_rows', TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, 'half_inputs', inputs, outputs, [
        helper.make_tensor('one', TensorProto.FLOAT, [], [1.0]),
        helper.make_tensor('rows', TensorProto.FLOAT, [2, 3], [0, 1, 2, 3, 4, 5])])
    half_model = os.path.join(scratch, 'half_inputs.onnx')
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 15)]), half_model)
    print(check(half_model, [1], 'core'))

# A batch-4 package: a run infers 4 inputs, and inferences/s counted runs only (blazeface-front-b4
# showed half blazeface-front's rate while inferring twice its frames per second); the header
# says so and a line under each round gives inputs/s, 4 x the runs' rate.
batched = os.path.join(os.path.dirname(package), 'resnet_tiny_b4')
text = check(batched, [1], 'axcore')
assert 'batch 4: each run infers 4 inputs (inferences/s counts runs)' in text, text
runs_rate = float(re.search(r'^cores=1: ([0-9.]+) inferences/s', text, re.M).group(1))
inputs_line = re.search(r'^  batch 4: ([0-9.]+) inputs/s$', text, re.M)
assert inputs_line and abs(float(inputs_line.group(1)) - 4 * runs_rate) <= 0.05, text
assert 'inputs/s' not in check(package, [1], 'axcore'), 'a batch-1 package has no batch line'

missing = subprocess.run([axrun, package + '/nope'], capture_output=True, text=True)
assert missing.returncode == 1 and 'no such file' in missing.stderr, missing
# --help is asked for, not a mistake: the usage on stdout, exit 0.
usage = subprocess.run([axrun, '--help'], capture_output=True, text=True)
assert usage.returncode == 0 and usage.stdout.startswith('usage: axrun MODEL'), usage
print('axrun smoke: ok')
