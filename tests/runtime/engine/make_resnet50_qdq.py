#!/usr/bin/python3
"""Writes a ResNet-50-shaped QDQ int8 model (seeded random weights, BatchNorm folded) for the
engine benchmark: make_resnet50_qdq.py OUT.onnx [--weight-bits 8|7] [--float].
--float writes the same network in float32 (dequantised weights, no Q/DQ nodes, float input),
for comparison with float runtimes such as OpenCV DNN."""
import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ap = argparse.ArgumentParser()
ap.add_argument('out')
ap.add_argument('--weight-bits', type=int, default=8)
ap.add_argument('--float', action='store_true')
ap.add_argument('--small', action='store_true',
                help='a 32x32 two-stage ResNet-style model whose output is the last quantised '
                     'activation (for tests)')
args = ap.parse_args()
wmax = 127 if args.weight_bits == 8 else 64
rng = np.random.default_rng(50)
nodes, inits = [], []
counter = [0]


def name(prefix):
    counter[0] += 1
    return f'{prefix}{counter[0]}'


def const(value, prefix='c'):
    n = name(prefix)
    inits.append(numpy_helper.from_array(np.asarray(value), n))
    return n


ACT_SCALE, ACT_ZP = const(np.float32(0.05), 'as'), const(np.int8(0), 'az')


def activation_qdq(op, prefix, x):
    """`op` (QuantizeLinear or DequantizeLinear) of `x` with the activation scale and zero point;
    `x` itself in the float model."""
    if args.float:
        return x
    y = name(prefix)
    nodes.append(helper.make_node(op, [x, ACT_SCALE, ACT_ZP], [y]))
    return y


def q(x):
    return activation_qdq('QuantizeLinear', 'q', x)


def dq(x):
    return activation_qdq('DequantizeLinear', 'dq', x)


def conv(xq, cin, cout, k, stride=1, relu=True):
    """xq: quantised input; returns quantised output."""
    w = rng.integers(-wmax, wmax + 1, (cout, cin, k, k)).astype(np.int8)
    ws = (np.full(cout, 1.0 / (wmax * np.sqrt(cin * k * k)), np.float32) * 2).astype(np.float32)
    b = rng.integers(-100, 100, cout).astype(np.int32)
    wd, bd, c = name('wd'), name('bd'), name('conv')
    if args.float:
        wd = const((w.astype(np.float32) * ws[:, None, None, None]).astype(np.float32), 'w')
        bd = const((b.astype(np.float32) * ws * np.float32(0.05)).astype(np.float32), 'b')
    else:
        nodes.append(helper.make_node('DequantizeLinear', [const(w, 'w'), const(ws, 'ws'), const(np.zeros(cout, np.int8), 'wz')], [wd], axis=0))
        nodes.append(helper.make_node('DequantizeLinear', [const(b, 'b'), const((ws * 0.05).astype(np.float32), 'bs')], [bd], axis=0))
    nodes.append(helper.make_node('Conv', [dq(xq), wd, bd], [c], kernel_shape=[k, k], strides=[stride, stride],
                                  pads=[k // 2] * 4))
    if relu:
        r = name('relu')
        nodes.append(helper.make_node('Relu', [c], [r]))
        c = r
    return q(c)


def bottleneck(xq, cin, width, stride):
    cout = width * 4
    y = conv(xq, cin, width, 1)
    y = conv(y, width, width, 3, stride)
    y = conv(y, width, cout, 1, relu=False)
    short = conv(xq, cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else xq
    s, r = name('add'), name('relu')
    nodes.append(helper.make_node('Add', [dq(y), dq(short)], [s]))
    nodes.append(helper.make_node('Relu', [s], [r]))
    return q(r), cout


STEM, STAGES, SIZE = (16, [(8, 1, 1), (16, 2, 2)], 32) if args.small else \
    (64, [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], 224)
x = conv('input', 3, STEM, 7, 2)
p = name('pool')
nodes.append(helper.make_node('MaxPool', [dq(x)], [p], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
y, c = q(p), STEM
for width, blocks, stride in STAGES:
    for i in range(blocks):
        y, c = bottleneck(y, c, width, stride if i == 0 else 1)
if args.small:
    nodes.append(helper.make_node('Identity', [y], ['output']))
    out_info = helper.make_tensor_value_info('output', TensorProto.FLOAT if args.float else TensorProto.INT8,
                                             [1, c, SIZE // 8, SIZE // 8])
else:
    g, f = name('gap'), name('flat')
    nodes.append(helper.make_node('GlobalAveragePool', [dq(y)], [g]))
    nodes.append(helper.make_node('Flatten', [g], [f]))
    fc_w = (rng.standard_normal((1000, 2048)) * 0.02).astype(np.float32)
    nodes.append(helper.make_node('Gemm', [f, const(fc_w, 'fcw'), const(np.zeros(1000, np.float32), 'fcb')], ['logits'], transB=1))
    out_info = helper.make_tensor_value_info('logits', TensorProto.FLOAT, [1, 1000])
graph = helper.make_graph(nodes, 'resnet50_qdq',
                          [helper.make_tensor_value_info('input', TensorProto.FLOAT if args.float else TensorProto.INT8, [1, 3, SIZE, SIZE])],
                          [out_info], inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
model.ir_version = 7
onnx.save(model, args.out)
