#!/usr/bin/python3
"""Writes seeded engine test cases in the ONNX backend-test layout (model.onnx +
test_data_set_0/{input,output}_N.pb), expected outputs computed with numpy.

usage: gen_cases.py OUTDIR STAMP   (the case folders under OUTDIR, then STAMP once done)"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "common"))
from outdir_arg import arguments  # noqa: E402

OUT, STAMP = arguments(__doc__, ["OUTDIR", "STAMP"])
rng = np.random.default_rng(1234)
NP2ONNX = {np.float32: TensorProto.FLOAT, np.int8: TensorProto.INT8, np.uint8: TensorProto.UINT8,
           np.int64: TensorProto.INT64, np.int32: TensorProto.INT32,
           np.bool_: TensorProto.BOOL, np.float16: TensorProto.FLOAT16,
           np.float64: TensorProto.DOUBLE}


def onnx_type(a):
    return NP2ONNX[a.dtype.type]


def save(name, nodes, inputs, outputs, initializers=(), opset=13, extra_sets=(), other_opsets=()):
    """inputs/outputs: list of (name, array). extra_sets: further (inputs, outputs) arrays,
    in the same order, written as test_data_set_1, 2, ...; other_opsets: (domain, version)."""
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(n, onnx_type(a), a.shape) for n, a in inputs],
        [helper.make_tensor_value_info(n, onnx_type(a), a.shape) for n, a in outputs],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', opset)] +
                              [helper.make_opsetid(d, v) for d, v in other_opsets])
    model.ir_version = 7
    d = os.path.join(OUT, name)
    os.makedirs(os.path.join(d, 'test_data_set_0'), exist_ok=True)
    onnx.save(model, os.path.join(d, 'model.onnx'))
    sets = [(inputs, outputs)] + [
        (list(zip([n for n, _ in inputs], ins)), list(zip([n for n, _ in outputs], outs)))
        for ins, outs in extra_sets]
    for index, (set_inputs, set_outputs) in enumerate(sets):
        set_dir = os.path.join(d, f'test_data_set_{index}')
        os.makedirs(set_dir, exist_ok=True)
        for kind, items in (('input', set_inputs), ('output', set_outputs)):
            for i, (n, a) in enumerate(items):
                with open(os.path.join(set_dir, f'{kind}_{i}.pb'), 'wb') as f:
                    f.write(numpy_helper.from_array(np.asarray(a), n).SerializeToString())


def conv3d_ref(x, w, b=None, stride=(1, 1, 1), pads=(0,) * 6, dil=(1, 1, 1), group=1):
    n, c, d, h, wd = x.shape
    m, cg, kd, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0)) + tuple((pads[i], pads[i + 3]) for i in range(3)))
    od, oh, ow = ((size + pads[i] + pads[i + 3] - dil[i] * (k - 1) - 1) // stride[i] + 1
                  for i, (size, k) in enumerate(((d, kd), (h, kh), (wd, kw))))
    y = np.zeros((n, m, od, oh, ow), np.float64)
    mg = m // group
    for g in range(group):
        xg = xp[:, g * cg:(g + 1) * cg].astype(np.float64)
        wg = w[g * mg:(g + 1) * mg].astype(np.float64)
        for kz in range(kd):
            for ky in range(kh):
                for kx in range(kw):
                    zs, ys, xs = kz * dil[0], ky * dil[1], kx * dil[2]
                    patch = xg[:, :, zs:zs + stride[0] * (od - 1) + 1:stride[0],
                               ys:ys + stride[1] * (oh - 1) + 1:stride[1],
                               xs:xs + stride[2] * (ow - 1) + 1:stride[2]]
                    y[:, g * mg:(g + 1) * mg] += np.einsum('ncdhw,mc->nmdhw', patch,
                                                           wg[:, :, kz, ky, kx])
    if b is not None:
        y += b.reshape(1, -1, 1, 1, 1)
    return y.astype(np.float32)


def conv_ref(x, w, b=None, stride=(1, 1), pads=(0, 0, 0, 0), dil=(1, 1), group=1):
    """2-D: the 3-D reference with a depth of one."""
    y = conv3d_ref(x[:, :, None], w[:, :, None], b, (1,) + tuple(stride),
                   (0, pads[0], pads[1], 0, pads[2], pads[3]), (1,) + tuple(dil), group)
    return y[:, :, 0]


def quantize(x, scale, zp, dtype):
    info = np.iinfo(dtype)
    return np.clip(np.rint(x / scale) + zp, info.min, info.max).astype(dtype)


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32)


# --- float Conv variants -------------------------------------------------------------------
x = f32(1, 4, 9, 11)
w = f32(6, 2, 3, 3)
b = f32(6)
save('conv_grouped_strided_padded_dilated',
     [helper.make_node('Conv', ['x', 'w', 'b'], ['y'], group=2, strides=[2, 1], pads=[1, 2, 0, 1],
                       dilations=[1, 2])],
     [('x', x)], [('y', conv_ref(x, w, b, (2, 1), (1, 2, 0, 1), (1, 2), 2))], [('w', w), ('b', b)])
x = f32(1, 8, 10, 10)
w = f32(8, 1, 3, 3)
# SAME_UPPER with stride 2 on an even size: total pad 1, all of it at the end.
save('conv_depthwise_same_upper_stride2',
     [helper.make_node('Conv', ['x', 'w'], ['y'], group=8, strides=[2, 2], auto_pad='SAME_UPPER')],
     [('x', x)], [('y', conv_ref(x, w, None, (2, 2), (0, 0, 1, 1), (1, 1), 8))], [('w', w)])
x = f32(2, 3, 7, 7)
w = f32(5, 3, 1, 1)
save('conv_relu_1x1_batch2', [helper.make_node('Conv', ['x', 'w'], ['c']),
                              helper.make_node('Relu', ['c'], ['y'])],
     [('x', x)], [('y', np.maximum(conv_ref(x, w), 0))], [('w', w)])

x = f32(1, 4, 5, 6, 7)
w = f32(6, 2, 2, 3, 3)
b = f32(6)
save('conv3d_grouped_strided_padded_dilated',
     [helper.make_node('Conv', ['x', 'w', 'b'], ['y'], group=2, strides=[1, 2, 1],
                       pads=[1, 0, 1, 0, 1, 1], dilations=[1, 1, 2])],
     [('x', x)],
     [('y', conv3d_ref(x, w, b, (1, 2, 1), (1, 0, 1, 0, 1, 1), (1, 1, 2), 2))],
     [('w', w), ('b', b)])

# --- QDQ Conv: int8 in, int8 out, per-channel weights, int32 bias ------------------------------
x_scale, x_zp, y_scale, y_zp = np.float32(0.05), np.int8(-3), np.float32(0.08), np.int8(5)
xq = rng.integers(-128, 128, (1, 16, 12, 12)).astype(np.int8)
wq = rng.integers(-127, 128, (32, 16, 3, 3)).astype(np.int8)
w_scale = (rng.random(32) * 0.01 + 0.002).astype(np.float32)
bq = rng.integers(-2000, 2000, 32).astype(np.int32)
xf = (xq.astype(np.float32) - x_zp) * x_scale
wf = wq.astype(np.float32) * w_scale.reshape(-1, 1, 1, 1)
bf = bq.astype(np.float32) * (x_scale * w_scale)
yf = np.maximum(conv_ref(xf, wf, bf, (1, 1), (1, 1, 1, 1)), 0)
qdq_nodes = [
    helper.make_node('DequantizeLinear', ['x', 'xs', 'xz'], ['xd']),
    helper.make_node('DequantizeLinear', ['w', 'ws', 'wz'], ['wd'], axis=0),
    helper.make_node('DequantizeLinear', ['b', 'bs', 'bz'], ['bd'], axis=0),
    helper.make_node('Conv', ['xd', 'wd', 'bd'], ['c'], pads=[1, 1, 1, 1]),
    helper.make_node('Relu', ['c'], ['r']),
    helper.make_node('QuantizeLinear', ['r', 'ys', 'yz'], ['y']),
]
qdq_inits = [('xs', x_scale), ('xz', x_zp), ('w', wq), ('ws', w_scale),
             ('wz', np.zeros(32, np.int8)), ('b', bq), ('bs', x_scale * w_scale),
             ('bz', np.zeros(32, np.int32)), ('ys', y_scale), ('yz', y_zp)]
save('qdq_conv_relu_int8', qdq_nodes, [('x', xq)], [('y', quantize(yf, y_scale, y_zp, np.int8))],
     qdq_inits)

# The same pattern in 3-D (video / volumetric models): runs on oneDNN's int8 3-D convolution.
xq = rng.integers(-128, 128, (1, 8, 4, 6, 6)).astype(np.int8)
wq = rng.integers(-127, 128, (16, 8, 3, 3, 3)).astype(np.int8)
w_scale = (rng.random(16) * 0.005 + 0.001).astype(np.float32)
bq = rng.integers(-2000, 2000, 16).astype(np.int32)
xf = (xq.astype(np.float32) - x_zp) * x_scale
wf = wq.astype(np.float32) * w_scale.reshape(-1, 1, 1, 1, 1)
bf = bq.astype(np.float32) * (x_scale * w_scale)
yf = np.maximum(conv3d_ref(xf, wf, bf, pads=(1,) * 6), 0)
qdq3d_nodes = [n for n in qdq_nodes]
qdq3d_nodes[3] = helper.make_node('Conv', ['xd', 'wd', 'bd'], ['c'], pads=[1] * 6)
save('qdq_conv3d_relu_int8', qdq3d_nodes, [('x', xq)],
     [('y', quantize(yf, y_scale, y_zp, np.int8))],
     [('xs', x_scale), ('xz', x_zp), ('w', wq), ('ws', w_scale), ('wz', np.zeros(16, np.int8)),
      ('b', bq), ('bs', x_scale * w_scale), ('bz', np.zeros(16, np.int32)), ('ys', y_scale),
      ('yz', y_zp)])

# YOLO-style: QDQ conv -> SiLU with a Q/DQ pair on the sigmoid (as axcompile writes it) ->
# QDQ 1x1 conv. The SiLU becomes one 256-entry axstream.QLookup, and on VNNI CPUs the int8
# tensors between the convs and the lookup stay NHWC.
def q8(x, scale, zp):
    return quantize(x, np.float32(scale), np.int8(zp), np.int8)


def dq8(q, scale, zp):
    return ((q.astype(np.int32) - zp).astype(np.float32) * np.float32(scale)).astype(np.float32)


xq = rng.integers(-128, 128, (1, 8, 10, 10)).astype(np.int8)
w1 = rng.integers(-127, 128, (16, 8, 3, 3)).astype(np.int8)
w1_scale = (rng.random(16) * 0.004 + 0.002).astype(np.float32)
w2 = rng.integers(-127, 128, (8, 16, 1, 1)).astype(np.int8)
w2_scale = (rng.random(8) * 0.002 + 0.001).astype(np.float32)
c_scale, c_zp, s_scale, s_zp, m_scale, m_zp = 0.06, 10, 1 / 255, -128, 0.04, -100
yq_scale, yq_zp = 0.05, 3
c = q8(conv_ref(dq8(xq, x_scale, x_zp), w1.astype(np.float32) * w1_scale.reshape(-1, 1, 1, 1),
                None, (1, 1), (1, 1, 1, 1)), c_scale, c_zp)
cf = dq8(c, c_scale, c_zp)
sig = dq8(q8((1 / (1 + np.exp(-cf))).astype(np.float32), s_scale, s_zp), s_scale, s_zp)
m = q8((cf * sig).astype(np.float32), m_scale, m_zp)
y = q8(conv_ref(dq8(m, m_scale, m_zp), w2.astype(np.float32) * w2_scale.reshape(-1, 1, 1, 1)),
       yq_scale, yq_zp)
save('qdq_conv_silu_conv_lookup_table', [
    helper.make_node('DequantizeLinear', ['x', 'xs', 'xz'], ['xd']),
    helper.make_node('DequantizeLinear', ['w1', 'w1s', 'w1z'], ['w1d'], axis=0),
    helper.make_node('Conv', ['xd', 'w1d'], ['c'], pads=[1, 1, 1, 1]),
    helper.make_node('QuantizeLinear', ['c', 'cs', 'cz'], ['cq']),
    helper.make_node('DequantizeLinear', ['cq', 'cs', 'cz'], ['cd']),
    helper.make_node('Sigmoid', ['cd'], ['s']),
    helper.make_node('QuantizeLinear', ['s', 'ss', 'sz'], ['sq']),
    helper.make_node('DequantizeLinear', ['sq', 'ss', 'sz'], ['sd']),
    helper.make_node('Mul', ['cd', 'sd'], ['m']),
    helper.make_node('QuantizeLinear', ['m', 'ms', 'mz'], ['mq']),
    helper.make_node('DequantizeLinear', ['mq', 'ms', 'mz'], ['md']),
    helper.make_node('DequantizeLinear', ['w2', 'w2s', 'w2z'], ['w2d'], axis=0),
    helper.make_node('Conv', ['md', 'w2d'], ['c2']),
    helper.make_node('QuantizeLinear', ['c2', 'ys', 'yz'], ['y'])],
    [('x', xq)], [('y', y)],
    [('xs', x_scale), ('xz', x_zp), ('w1', w1), ('w1s', w1_scale), ('w1z', np.zeros(16, np.int8)),
     ('cs', np.float32(c_scale)), ('cz', np.int8(c_zp)), ('ss', np.float32(s_scale)),
     ('sz', np.int8(s_zp)), ('ms', np.float32(m_scale)), ('mz', np.int8(m_zp)), ('w2', w2),
     ('w2s', w2_scale), ('w2z', np.zeros(8, np.int8)), ('ys', np.float32(yq_scale)),
     ('yz', np.int8(yq_zp))])


# 7-bit weights (|w| <= 64) take oneDNN's integer path even on AVX2; uint8 activations,
# grouped strided conv, Clip fused as the activation.
xq = rng.integers(0, 256, (1, 8, 11, 11)).astype(np.uint8)
wq = rng.integers(-64, 65, (16, 4, 3, 3)).astype(np.int8)
w_scale = (rng.random(16) * 0.02 + 0.005).astype(np.float32)
bias_f = f32(16) * 0.5
x_scale, x_zp, y_scale, y_zp = np.float32(0.03), np.uint8(120), np.float32(0.04), np.uint8(10)
xf = (xq.astype(np.float32) - x_zp) * x_scale
wf = wq.astype(np.float32) * w_scale.reshape(-1, 1, 1, 1)
yf = np.clip(conv_ref(xf, wf, bias_f, (2, 2), (1, 1, 1, 1), (1, 1), 2), 0, 6)
save('qdq_conv_uint8_grouped_clip_7bit_weights', [
    helper.make_node('DequantizeLinear', ['x', 'xs', 'xz'], ['xd']),
    helper.make_node('DequantizeLinear', ['w', 'ws'], ['wd'], axis=0),
    helper.make_node('Conv', ['xd', 'wd', 'b'], ['c'], pads=[1, 1, 1, 1], strides=[2, 2], group=2),
    helper.make_node('Clip', ['c', 'lo', 'hi'], ['r']),
    helper.make_node('QuantizeLinear', ['r', 'ys', 'yz'], ['y'])],
    [('x', xq)], [('y', quantize(yf, y_scale, y_zp, np.uint8))],
    [('xs', x_scale), ('xz', x_zp), ('w', wq), ('ws', w_scale), ('b', bias_f), ('lo', np.float32(0)),
     ('hi', np.float32(6)), ('ys', y_scale), ('yz', y_zp)])

# A BlazeFace-shaped depthwise QDQ convolution: 42 channels (above 16, not a multiple of 4),
# 16x16 pixels (a multiple of 64), stride 2, padding on the bottom/right only, full-range
# weights and a non-zero input zero point. Without VNNI it runs as a float convolution between
# (de)quantising reorders; on AVX-512 oneDNN's depthwise kernel wants NHWC there, and oneDNN
# 2.6's int8 NCHW -> float NHWC reorder drops the zero point at such shapes (outputs off by up
# to 203 steps): meson runs engine_test under ONEDNN_MAX_CPU_ISA=AVX512_CORE too.
dw_own = np.random.default_rng(42)
xq = dw_own.integers(-128, 128, (1, 42, 16, 16)).astype(np.int8)
wq = dw_own.integers(-127, 128, (42, 1, 3, 3)).astype(np.int8)
w_scale = (dw_own.random(42) * 0.01 + 0.002).astype(np.float32)
bias_f = (dw_own.random(42).astype(np.float32) - 0.5)
x_scale, x_zp, y_scale, y_zp = np.float32(0.05), np.int8(-37), np.float32(0.04), np.int8(5)
xf = (xq.astype(np.float32) - np.float32(x_zp)) * x_scale
wf = wq.astype(np.float32) * w_scale.reshape(-1, 1, 1, 1)
yf = conv_ref(xf, wf, bias_f, (2, 2), (0, 0, 1, 1), (1, 1), 42)
save('qdq_depthwise_conv_42_channels_zero_point', [
    helper.make_node('DequantizeLinear', ['x', 'xs', 'xz'], ['xd']),
    helper.make_node('DequantizeLinear', ['w', 'ws'], ['wd'], axis=0),
    helper.make_node('Conv', ['xd', 'wd', 'b'], ['c'], pads=[0, 0, 1, 1], strides=[2, 2],
                     group=42, kernel_shape=[3, 3]),
    helper.make_node('QuantizeLinear', ['c', 'ys', 'yz'], ['y'])],
    [('x', xq)], [('y', quantize(yf, y_scale, y_zp, np.int8))],
    [('xs', x_scale), ('xz', x_zp), ('w', wq), ('ws', w_scale), ('b', bias_f), ('ys', y_scale),
     ('yz', y_zp)])

# QDQ with uint8 activations through Add, MaxPool and Concat (float ops between Q/DQ).
a = rng.integers(0, 256, (1, 4, 6, 6)).astype(np.uint8)
c = rng.integers(0, 256, (1, 4, 6, 6)).astype(np.uint8)
s1, z1, s2, z2, s3, z3 = np.float32(0.02), np.uint8(128), np.float32(0.03), np.uint8(100), np.float32(0.05), np.uint8(90)
ad = (a.astype(np.float32) - z1) * s1
cd = (c.astype(np.float32) - z2) * s2
added = ad + cd
pooled = added.reshape(1, 4, 3, 2, 3, 2).max(axis=(3, 5))
cat = np.concatenate([pooled, pooled[:, :2]], axis=1)
save('qdq_uint8_add_maxpool_concat', [
    helper.make_node('DequantizeLinear', ['a', 's1', 'z1'], ['ad']),
    helper.make_node('DequantizeLinear', ['c', 's2', 'z2'], ['cd']),
    helper.make_node('Add', ['ad', 'cd'], ['sum']),
    helper.make_node('MaxPool', ['sum'], ['pool'], kernel_shape=[2, 2], strides=[2, 2]),
    helper.make_node('Slice', ['pool', 'st', 'en', 'ax'], ['part']),
    helper.make_node('Concat', ['pool', 'part'], ['cat'], axis=1),
    helper.make_node('QuantizeLinear', ['cat', 's3', 'z3'], ['y'])],
    [('a', a), ('c', c)], [('y', quantize(cat, s3, z3, np.uint8))],
    [('s1', s1), ('z1', z1), ('s2', s2), ('z2', z2), ('s3', s3), ('z3', z3),
     ('st', np.array([0], np.int64)), ('en', np.array([2], np.int64)), ('ax', np.array([1], np.int64))])

# Residual join: QuantizeLinear(Relu(DequantizeLinear(a) + DequantizeLinear(b))) fuses into
# axstream.QAdd (int8 + uint8 -> int8, with zero points; the scales make exact .5 ties and
# saturation), and the same without Relu to uint8.
qa = rng.integers(-128, 128, (1, 8, 5, 7)).astype(np.int8)
qb = rng.integers(0, 256, (1, 8, 5, 7)).astype(np.uint8)
sa, za, sb, zb = np.float32(0.5), np.int8(3), np.float32(0.25), np.uint8(128)
sy, zy = np.float32(0.5), np.int8(-5)
join = (qa.astype(np.float32) - np.float32(za)) * sa + (qb.astype(np.float32) - np.float32(zb)) * sb
sy2, zy2 = np.float32(0.2), np.uint8(100)
save('qdq_residual_add_relu_fused', [
    helper.make_node('DequantizeLinear', ['a', 'sa', 'za'], ['ad']),
    helper.make_node('DequantizeLinear', ['b', 'sb', 'zb'], ['bd']),
    helper.make_node('Add', ['ad', 'bd'], ['sum']),
    helper.make_node('Relu', ['sum'], ['r']),
    helper.make_node('QuantizeLinear', ['r', 'sy', 'zy'], ['y']),
    helper.make_node('DequantizeLinear', ['a', 'sa', 'za'], ['ad2']),
    helper.make_node('DequantizeLinear', ['b', 'sb', 'zb'], ['bd2']),
    helper.make_node('Add', ['ad2', 'bd2'], ['sum2']),
    helper.make_node('QuantizeLinear', ['sum2', 'sy2', 'zy2'], ['y2'])],
    [('a', qa), ('b', qb)],
    [('y', quantize(np.maximum(join, 0), sy, zy, np.int8)), ('y2', quantize(join, sy2, zy2, np.uint8))],
    [('sa', sa), ('za', za), ('sb', sb), ('zb', zb), ('sy', sy), ('zy', zy), ('sy2', sy2), ('zy2', zy2)])

# Round half to even and saturation in QuantizeLinear.
v = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 300.0, -300.0, 2.4999], np.float32)
save('quantize_rounds_half_even_and_saturates',
     [helper.make_node('QuantizeLinear', ['x', 's', 'z'], ['y'])],
     [('x', v)], [('y', quantize(v, np.float32(1.0), np.int8(0), np.int8))],
     [('s', np.float32(1.0)), ('z', np.int8(0))])

# --- element-wise with broadcasting ---------------------------------------------------------
p, q = f32(2, 3, 4, 5), f32(3, 1, 5)
r = np.abs(f32(1, 4, 1)) + 0.5
save('broadcast_add_sub_mul_div', [
    helper.make_node('Add', ['p', 'q'], ['t0']),
    helper.make_node('Mul', ['t0', 'q'], ['t1']),
    helper.make_node('Sub', ['t1', 'p'], ['t2']),
    helper.make_node('Div', ['t2', 'r'], ['y'])],
    [('p', p), ('q', q), ('r', r)], [('y', ((p + q) * q - p) / r)])
save('sigmoid_softmax_clip', [
    helper.make_node('Sigmoid', ['x'], ['s']),
    helper.make_node('Softmax', ['x'], ['sm'], axis=1),
    helper.make_node('Clip', ['x', 'lo', 'hi'], ['cl']),
    helper.make_node('Identity', ['cl'], ['id'])],
    [('x', p)],
    [('s', 1 / (1 + np.exp(-p))), ('sm', np.exp(p) / np.exp(p).sum(axis=1, keepdims=True)),
     ('id', np.clip(p, -0.5, 0.7))],
    [('lo', np.float32(-0.5)), ('hi', np.float32(0.7))])

# --- Gemm / MatMul ------------------------------------------------------------------------------
A, B, C = f32(7, 5), f32(6, 7), f32(6)
save('gemm_transa_transb_alpha_beta',
     [helper.make_node('Gemm', ['a', 'b', 'c'], ['y'], transA=1, transB=1, alpha=0.5, beta=2.0)],
     [('a', A)], [('y', 0.5 * A.T @ B.T + 2.0 * C)], [('b', B), ('c', C)])
M1, M2 = f32(2, 1, 3, 4), f32(5, 4, 6)
save('matmul_batched_broadcast', [helper.make_node('MatMul', ['a', 'b'], ['y'])],
     [('a', M1), ('b', M2)], [('y', np.matmul(M1, M2))])

# --- pooling ------------------------------------------------------------------------------------
x = f32(1, 3, 7, 7)
xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
avg = np.zeros((1, 3, 4, 4), np.float32)
for i in range(4):
    for j in range(4):
        avg[:, :, i, j] = xp[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3].mean(axis=(2, 3))
save('averagepool_count_include_pad',
     [helper.make_node('AveragePool', ['x'], ['y'], kernel_shape=[3, 3], strides=[2, 2],
                       pads=[1, 1, 1, 1], count_include_pad=1)],
     [('x', x)], [('y', avg)])
xn = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
mx = np.zeros((1, 3, 4, 4), np.float32)
for i in range(4):
    for j in range(4):
        mx[:, :, i, j] = xn[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3].max(axis=(2, 3))
save('maxpool_pads_strides_and_global_average', [
    helper.make_node('MaxPool', ['x'], ['y'], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
    helper.make_node('GlobalAveragePool', ['x'], ['g'])],
    [('x', x)], [('y', mx), ('g', x.mean(axis=(2, 3), keepdims=True))])

# 3-D pooling: strided, padded windows (max pads with -inf, average counts the padding).
x = f32(1, 2, 5, 6, 7)
xp0 = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1), (0, 0)))
xpn = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
od, oh, ow = 3, 3, 3
avg3 = np.zeros((1, 2, od, oh, ow), np.float32)
max3 = np.zeros((1, 2, od, oh, ow), np.float32)
for a in range(od):
    for b_ in range(oh):
        for c_ in range(ow):
            sl = (slice(None), slice(None), slice(2 * a, 2 * a + 3), slice(2 * b_, 2 * b_ + 3),
                  slice(2 * c_, 2 * c_ + 3))
            avg3[:, :, a, b_, c_] = xp0[sl].mean(axis=(2, 3, 4))
            max3[:, :, a, b_, c_] = xpn[sl].max(axis=(2, 3, 4))
save('pool_3d_strided_padded', [
    helper.make_node('AveragePool', ['x'], ['avg'], kernel_shape=[3, 3, 3], strides=[2, 2, 2],
                     pads=[1, 1, 0, 1, 1, 0], count_include_pad=1),
    helper.make_node('MaxPool', ['x'], ['mx'], kernel_shape=[3, 3, 3], strides=[2, 2, 2],
                     pads=[1, 1, 0, 1, 1, 0])],
    [('x', x)], [('avg', avg3), ('mx', max3)])

# --- shapes: Shape/Gather/ConstantOfShape folding, Reshape 0/-1, Transpose, Pad, Squeeze ----
x = f32(2, 3, 4, 5)
save('shape_folding_reshape_transpose_pad', [
    helper.make_node('Shape', ['x'], ['shp']),
    helper.make_node('Gather', ['shp', 'idx'], ['first2'], axis=0),
    helper.make_node('Concat', ['first2', 'minus1'], ['target'], axis=0),
    helper.make_node('Reshape', ['x', 'target'], ['r']),  # (2,3,20)
    helper.make_node('Reshape', ['r', 'zero_minus1'], ['r2']),  # (2,60)
    helper.make_node('Transpose', ['x'], ['t'], perm=[0, 2, 3, 1]),
    helper.make_node('Pad', ['t', 'pads', 'pv'], ['padded'], mode='constant'),
    helper.make_node('Unsqueeze', ['r2', 'ax0'], ['u']),
    helper.make_node('Squeeze', ['u', 'ax0'], ['s']),
    helper.make_node('Flatten', ['padded'], ['f'], axis=2),
    helper.make_node('ConstantOfShape', ['shp'], ['ones'], value=numpy_helper.from_array(np.array([1.5], np.float32))),
    helper.make_node('Add', ['x', 'ones'], ['plus'])],
    [('x', x)],
    [('s', x.reshape(2, 60)),
     ('f', np.pad(x.transpose(0, 2, 3, 1), ((0, 0), (1, 0), (0, 2), (0, 0)), constant_values=0.25).reshape(2 * 5, -1)),
     ('plus', x + 1.5)],
    [('idx', np.array([0, 1], np.int64)), ('minus1', np.array([-1], np.int64)),
     ('zero_minus1', np.array([0, -1], np.int64)), ('pads', np.array([0, 1, 0, 0, 0, 0, 2, 0], np.int64)),
     ('pv', np.float32(0.25)), ('ax0', np.array([0], np.int64))])
save('slice_negative_steps_and_axes', [
    helper.make_node('Slice', ['x', 'st', 'en', 'ax', 'sp'], ['y'])],
    [('x', x)], [('y', x[:, :, ::-2, 1:4])],
    [('st', np.array([-1, 1], np.int64)), ('en', np.array([-100, 4], np.int64)),
     ('ax', np.array([2, -1], np.int64)), ('sp', np.array([-2, 1], np.int64))])

# --- opset 9: attribute forms of Pad/Clip/Slice, legacy Softmax ------------------------------
x = f32(2, 3, 4)
e = np.exp(x.reshape(2, 12))
save('opset9_attribute_forms', [
    helper.make_node('Pad', ['x'], ['p'], pads=[0, 0, 1, 0, 0, 1], value=-1.0),
    helper.make_node('Clip', ['p'], ['c'], min=-0.3, max=0.4),
    helper.make_node('Slice', ['x'], ['s'], starts=[1], ends=[3], axes=[1]),
    helper.make_node('Softmax', ['x'], ['sm'])],
    [('x', x)],
    [('c', np.clip(np.pad(x, ((0, 0), (0, 0), (1, 1)), constant_values=-1.0), -0.3, 0.4)),
     ('s', x[:, 1:3]), ('sm', (e / e.sum(axis=1, keepdims=True)).reshape(2, 3, 4))],
    opset=9)

# --- float graph passes: BatchNorm folding, activation fusion, decomposed LayerNorm ----------
def bn_ref(y, g, b, m, v, eps=1e-5):
    shape = (1, -1) + (1,) * (y.ndim - 2)
    return (y - m.reshape(shape)) / np.sqrt(v.reshape(shape) + eps) * g.reshape(shape) + b.reshape(shape)


def bn_params(c):
    return (f32(c), f32(c), f32(c) * 0.1, (np.abs(f32(c)) + 0.5).astype(np.float32))


x = f32(1, 6, 9, 9)
w = f32(8, 6, 3, 3) * 0.3
b = f32(8)
g_, be, mu, var = bn_params(8)
save('conv_batchnorm_relu_folded', [
    helper.make_node('Conv', ['x', 'w', 'b'], ['c'], pads=[1, 1, 1, 1]),
    helper.make_node('BatchNormalization', ['c', 'g', 'be', 'mu', 'var'], ['n']),
    helper.make_node('Relu', ['n'], ['y'])],
    [('x', x)], [('y', np.maximum(bn_ref(conv_ref(x, w, b, (1, 1), (1, 1, 1, 1)), g_, be, mu, var), 0))],
    [('w', w), ('b', b), ('g', g_), ('be', be), ('mu', mu), ('var', var)])

A, B, C = f32(4, 10), f32(12, 10), f32(12)
g_, be, mu, var = bn_params(12)
save('gemm_batchnorm_folded', [
    helper.make_node('Gemm', ['a', 'b', 'c'], ['t'], transB=1, alpha=0.5, beta=2.0),
    helper.make_node('BatchNormalization', ['t', 'g', 'be', 'mu', 'var'], ['y'], epsilon=1e-3)],
    [('a', A)], [('y', bn_ref(0.5 * A @ B.T + 2.0 * C, g_, be, mu, var, 1e-3))],
    [('b', B), ('c', C), ('g', g_), ('be', be), ('mu', mu), ('var', var)])


def deconv_ref(x, w, stride, group):
    n, cin, h, wd = x.shape
    _, coutg, kh, kw = w.shape
    cing = cin // group
    y = np.zeros((n, coutg * group, (h - 1) * stride + kh, (wd - 1) * stride + kw), np.float64)
    for gi in range(group):
        for ci in range(cing):
            for i in range(h):
                for j in range(wd):
                    y[:, gi * coutg:(gi + 1) * coutg, i * stride:i * stride + kh, j * stride:j * stride + kw] += \
                        x[:, gi * cing + ci, i, j][:, None, None, None] * w[gi * cing + ci][None]
    return y.astype(np.float32)


x = f32(1, 4, 5, 5)
w = f32(4, 3, 3, 3) * 0.3
g_, be, mu, var = bn_params(6)
save('convtranspose_grouped_batchnorm_folded', [
    helper.make_node('ConvTranspose', ['x', 'w'], ['t'], strides=[2, 2], group=2),
    helper.make_node('BatchNormalization', ['t', 'g', 'be', 'mu', 'var'], ['y'])],
    [('x', x)], [('y', bn_ref(deconv_ref(x, w, 2, 2), g_, be, mu, var))],
    [('w', w), ('g', g_), ('be', be), ('mu', mu), ('var', var)])

x = f32(1, 4, 8, 8)
w = f32(6, 4, 3, 3) * 0.4
c = conv_ref(x, w, None, (1, 1), (1, 1, 1, 1))
save('conv_activations_fused', [
    helper.make_node('Conv', ['x', 'w'], ['c1'], pads=[1, 1, 1, 1]),
    helper.make_node('Sigmoid', ['c1'], ['s1']),
    helper.make_node('Mul', ['c1', 's1'], ['silu']),
    helper.make_node('Conv', ['x', 'w'], ['c2'], pads=[1, 1, 1, 1]),
    helper.make_node('LeakyRelu', ['c2'], ['leaky'], alpha=0.2),
    helper.make_node('Conv', ['x', 'w'], ['c3'], pads=[1, 1, 1, 1]),
    helper.make_node('HardSwish', ['c3'], ['hswish']),
    helper.make_node('Conv', ['x', 'w'], ['c4'], pads=[1, 1, 1, 1]),
    helper.make_node('Clip', ['c4', 'lo', 'hi'], ['relu6'])],
    [('x', x)],
    [('silu', c / (1 + np.exp(-c))), ('leaky', np.where(c >= 0, c, 0.2 * c)),
     ('hswish', c * np.clip(c / 6 + 0.5, 0, 1)), ('relu6', np.clip(c, 0, 6))],
    [('w', w), ('lo', np.float32(0)), ('hi', np.float32(6))], opset=14)

x = f32(2, 5, 16)
gamma, beta = f32(16), f32(16)
mean = x.mean(axis=-1, keepdims=True)
ln = (x - mean) / np.sqrt(((x - mean) ** 2).mean(axis=-1, keepdims=True) + 1e-5) * gamma + beta
save('layernorm_decomposed_fused', [
    helper.make_node('ReduceMean', ['x'], ['m'], axes=[-1]),
    helper.make_node('Sub', ['x', 'm'], ['d']),
    helper.make_node('Pow', ['d', 'two'], ['sq']),
    helper.make_node('ReduceMean', ['sq'], ['v'], axes=[-1]),
    helper.make_node('Add', ['v', 'eps'], ['ve']),
    helper.make_node('Sqrt', ['ve'], ['sd']),
    helper.make_node('Div', ['d', 'sd'], ['nrm']),
    helper.make_node('Mul', ['nrm', 'gamma'], ['scaled']),
    helper.make_node('Add', ['scaled', 'beta'], ['y'])],
    [('x', x)], [('y', ln)],
    [('two', np.float32(2)), ('eps', np.float32(1e-5)), ('gamma', gamma), ('beta', beta)])

# --- quantised operator formats and QDQ fusion into MatMul / MaxPool ------------------------
xq = rng.integers(0, 256, (1, 6, 7, 7)).astype(np.uint8)
wq = rng.integers(-128, 128, (4, 3, 3, 3)).astype(np.int8)
x_scale, x_zp, y_scale, y_zp = np.float32(0.02), np.uint8(130), np.float32(0.05), np.uint8(120)
w_scale = (rng.random(4) * 0.02 + 0.005).astype(np.float32)
w_zp = np.array([0, 3, -2, 1], np.int8)
wq[1, 0, 0, 0] = -128  # -128 - 3 leaves int8: this one must stay on the int32 kernel
bq = rng.integers(-500, 500, 4).astype(np.int32)
acc = conv_ref((xq.astype(np.float64) - x_zp).astype(np.float32),
               (wq.astype(np.float64) - w_zp.reshape(-1, 1, 1, 1)).astype(np.float32), None,
               (2, 2), (1, 1, 1, 1), (1, 1), 2).astype(np.float64) + bq.reshape(1, -1, 1, 1)
mult = (x_scale * w_scale / y_scale).astype(np.float32).reshape(1, -1, 1, 1)
yq = np.clip(np.rint((acc.astype(np.float32) * mult)) + y_zp, 0, 255).astype(np.uint8)
save('qlinearconv_uint8_x_int8_per_channel_weights', [
    helper.make_node('QLinearConv', ['x', 'xs', 'xz', 'w', 'ws', 'wz', 'ys', 'yz', 'b'], ['y'],
                     pads=[1, 1, 1, 1], strides=[2, 2], group=2)],
    [('x', xq)], [('y', yq)],
    [('xs', x_scale), ('xz', x_zp), ('w', wq), ('ws', w_scale), ('wz', w_zp), ('ys', y_scale),
     ('yz', y_zp), ('b', bq)])

# uint8 weights with zero points near 128 (onnxruntime's U8U8 quantisation): w - w_zp fits
# int8, so the engine lowers it to its oneDNN int8 convolution; exact on VNNI CPUs.
wq = rng.integers(0, 256, (4, 6, 3, 3)).astype(np.uint8)
w_zp = np.array([120, 128, 135, 128], np.uint8)
wq = np.clip(wq.astype(np.int32), w_zp.reshape(-1, 1, 1, 1).astype(np.int32) - 128,
             w_zp.reshape(-1, 1, 1, 1).astype(np.int32) + 127).astype(np.uint8)
acc = conv_ref((xq.astype(np.float64) - x_zp).astype(np.float32),
               (wq.astype(np.float64) - w_zp.reshape(-1, 1, 1, 1)).astype(np.float32), None,
               (1, 1), (1, 1, 1, 1)).astype(np.float64) + bq.reshape(1, -1, 1, 1)
mult = (x_scale * w_scale / y_scale).astype(np.float32).reshape(1, -1, 1, 1)
yq = np.clip(np.rint((acc.astype(np.float32) * mult)) + y_zp, 0, 255).astype(np.uint8)
save('qlinearconv_uint8_weights_with_zero_points_lowered', [
    helper.make_node('QLinearConv', ['x', 'xs', 'xz', 'w', 'ws', 'wz', 'ys', 'yz', 'b'], ['y'],
                     pads=[1, 1, 1, 1])],
    [('x', xq)], [('y', yq)],
    [('xs', x_scale), ('xz', x_zp), ('w', wq), ('ws', w_scale), ('wz', w_zp), ('ys', y_scale),
     ('yz', y_zp), ('b', bq)])

# Symmetric int8 weights: lowered onto axstream.QConv (oneDNN), within one step of exact.
xq = rng.integers(-128, 128, (1, 8, 9, 9)).astype(np.int8)
wq = rng.integers(-127, 128, (16, 8, 3, 3)).astype(np.int8)
x_scale, x_zp, y_scale, y_zp = np.float32(0.04), np.int8(5), np.float32(0.3), np.int8(-3)
w_scale = (rng.random(16) * 0.01 + 0.002).astype(np.float32)
bq = rng.integers(-3000, 3000, 16).astype(np.int32)
acc = conv_ref((xq.astype(np.float64) - x_zp).astype(np.float32), wq.astype(np.float32), None,
               (1, 1), (1, 1, 1, 1)).astype(np.float64) + bq.reshape(1, -1, 1, 1)
mult = (x_scale * w_scale / y_scale).astype(np.float32).reshape(1, -1, 1, 1)
yq = np.clip(np.rint((acc.astype(np.float32) * mult)) + y_zp, -128, 127).astype(np.int8)
save('qlinearconv_int8_symmetric_lowered_to_qconv', [
    helper.make_node('QLinearConv', ['x', 'xs', 'xz', 'w', 'ws', 'wz', 'ys', 'yz', 'b'], ['y'],
                     pads=[1, 1, 1, 1])],
    [('x', xq)], [('y', yq)],
    [('xs', x_scale), ('xz', x_zp), ('w', wq), ('ws', w_scale), ('wz', np.zeros(16, np.int8)),
     ('ys', y_scale), ('yz', y_zp), ('b', bq)])

aq = rng.integers(-128, 128, (2, 3, 20)).astype(np.int8)
bq8 = rng.integers(-128, 128, (20, 5)).astype(np.int8)
a_scale, a_zp, y_scale, y_zp = np.float32(0.03), np.int8(-4), np.float32(0.2), np.int8(2)
b_scale = (rng.random(5) * 0.02 + 0.01).astype(np.float32)
b_zp = np.array([0, 1, -1, 2, 0], np.int8)
acc = (aq.astype(np.int64) - a_zp) @ (bq8.astype(np.int64) - b_zp)
ymm = np.clip(np.rint(acc.astype(np.float32) * (a_scale * b_scale / y_scale).astype(np.float32)) + y_zp,
              -128, 127).astype(np.int8)
save('qlinearmatmul_int8_per_column', [
    helper.make_node('QLinearMatMul', ['a', 'as', 'az', 'b', 'bs', 'bz', 'ys', 'yz'], ['y'])],
    [('a', aq)], [('y', ymm)],
    [('as', a_scale), ('az', a_zp), ('b', bq8), ('bs', b_scale), ('bz', b_zp), ('ys', y_scale),
     ('yz', y_zp)])
# The same arithmetic written as QDQ around a float MatMul fuses into QLinearMatMul.
save('qdq_matmul_fused_per_column', [
    helper.make_node('DequantizeLinear', ['a', 'as', 'az'], ['ad']),
    helper.make_node('DequantizeLinear', ['b', 'bs', 'bz'], ['bd'], axis=1),
    helper.make_node('MatMul', ['ad', 'bd'], ['m']),
    helper.make_node('QuantizeLinear', ['m', 'ys', 'yz'], ['y'])],
    [('a', aq)], [('y', ymm)],
    [('as', a_scale), ('az', a_zp), ('b', bq8), ('bs', b_scale), ('bz', b_zp), ('ys', y_scale),
     ('yz', y_zp)])

# A QDQ classifier head: Gemm with transB, per-output-channel int8 weights and a dequantised
# int32 bias fuses into axstream.QGemm.
aq = rng.integers(0, 256, (2, 24)).astype(np.uint8)
wq = rng.integers(-127, 128, (10, 24)).astype(np.int8)
a_scale, a_zp, y_scale, y_zp = np.float32(0.02), np.uint8(128), np.float32(0.05), np.int8(1)
w_scale = (rng.random(10) * 0.02 + 0.01).astype(np.float32)
bias_q = rng.integers(-400, 400, 10).astype(np.int32)
acc = (aq.astype(np.int64) - a_zp) @ wq.astype(np.int64).T
real = acc.astype(np.float32) * (a_scale * w_scale) + bias_q.astype(np.float32) * (a_scale * w_scale)
save('qdq_gemm_transb_bias_fused', [
    helper.make_node('DequantizeLinear', ['a', 'as', 'az'], ['ad']),
    helper.make_node('DequantizeLinear', ['w', 'ws'], ['wd'], axis=0),
    helper.make_node('DequantizeLinear', ['b', 'bs'], ['bd'], axis=0),
    helper.make_node('Gemm', ['ad', 'wd', 'bd'], ['g'], transB=1),
    helper.make_node('QuantizeLinear', ['g', 'ys', 'yz'], ['y'])],
    [('a', aq)], [('y', quantize(real, y_scale, y_zp, np.int8))],
    [('as', a_scale), ('az', a_zp), ('w', wq), ('ws', w_scale), ('b', bias_q),
     ('bs', (a_scale * w_scale).astype(np.float32)), ('ys', y_scale), ('yz', y_zp)])

xq = rng.integers(-128, 128, (1, 3, 8, 8)).astype(np.int8)
s_, z_ = np.float32(0.1), np.int8(-7)
save('qdq_maxpool_runs_on_int8', [
    helper.make_node('DequantizeLinear', ['x', 's', 'z'], ['xd']),
    helper.make_node('MaxPool', ['xd'], ['p'], kernel_shape=[2, 2], strides=[2, 2]),
    helper.make_node('QuantizeLinear', ['p', 's', 'z'], ['y'])],
    [('x', xq)], [('y', xq.reshape(1, 3, 4, 2, 4, 2).max(axis=(3, 5)))], [('s', s_), ('z', z_)])

# PP-OCR det's head upsampling: 2x2 windows at stride 2 tile the output (the ConvTranspose
# kernel writes each output pixel once there), two images, bias.
x = f32(2, 6, 5, 7)
w = f32(6, 4, 2, 2) * 0.4
b = f32(4)
save('convtranspose_2x2_stride2_bias_tiles', [
    helper.make_node('ConvTranspose', ['x', 'w', 'b'], ['y'], strides=[2, 2])],
    [('x', x)], [('y', deconv_ref(x, w, 2, 1) + b[None, :, None, None])], [('w', w), ('b', b)])

# --- vision-model ops (issue #4): attributes and dtypes the ONNX backend cases miss ----------
# TopK over axis 0 of int32 data full of ties (the lower index first) and a detection head's
# 2000 scores cut to 100 (float, smallest first).
x = rng.integers(0, 4, (7, 5)).astype(np.int32)
order = np.argsort(-x, axis=0, kind='stable')[:3]
scores = rng.standard_normal((1, 2000)).astype(np.float32)
low = np.argsort(scores, axis=1, kind='stable')[:, :100]
save('topk_int32_ties_axis0_and_smallest_100_of_2000', [
    helper.make_node('TopK', ['x', 'k3'], ['v', 'i'], axis=0),
    helper.make_node('TopK', ['scores', 'k100'], ['sv', 'si'], largest=0)],
    [('x', x), ('scores', scores)],
    [('v', np.take_along_axis(x, order, 0)), ('i', order.astype(np.int64)),
     ('sv', np.take_along_axis(scores, low, 1)), ('si', low.astype(np.int64))],
    [('k3', np.array([3], np.int64)), ('k100', np.array([100], np.int64))])

# GatherND with batch_dims=1 on int64 data, a negative index; ScatterND replacing rows of a
# float tensor (negative index) and adding int32 elements at repeated indices (opset 16).
data = rng.integers(-50, 50, (2, 3, 4)).astype(np.int64)
idx = np.array([[[2], [-3]], [[0], [1]]], np.int64)
gathered = np.stack([data[b][idx[b, :, 0]] for b in range(2)])
base = f32(3, 4)
rows = np.array([[-1], [0]], np.int64)
row_updates = f32(2, 4)
replaced = base.copy()
replaced[2], replaced[0] = row_updates[0], row_updates[1]
counts = rng.integers(0, 9, (2, 3)).astype(np.int32)
cells = np.array([[0, 1], [1, 2], [0, 1]], np.int64)
adds = np.array([5, 7, 11], np.int32)
summed = counts.copy()
for (r, c), a in zip(cells, adds):
    summed[r, c] += a
save('gathernd_batch_dims_int64_and_scatternd_rows_and_add', [
    helper.make_node('GatherND', ['data', 'idx'], ['g'], batch_dims=1),
    helper.make_node('ScatterND', ['base', 'rows', 'row_updates'], ['replaced']),
    helper.make_node('ScatterND', ['counts', 'cells', 'adds'], ['summed'], reduction='add')],
    [('data', data), ('base', base), ('counts', counts)],
    [('g', gathered), ('replaced', replaced), ('summed', summed)],
    [('idx', idx), ('rows', rows), ('row_updates', row_updates), ('cells', cells),
     ('adds', adds)], opset=16)

# ScatterElements along axis 0 multiplying int64 data at repeated positions (opset 16).
data = rng.integers(1, 6, (3, 4)).astype(np.int64)
idx = np.array([[0, 2, -1, 1], [0, 0, 2, 1]], np.int64)
upd = rng.integers(1, 4, (2, 4)).astype(np.int64)
product_ = data.copy()
for i in range(2):
    for j in range(4):
        product_[idx[i, j] % 3, j] *= upd[i, j]
save('scatterelements_axis0_mul_int64_repeated', [
    helper.make_node('ScatterElements', ['data', 'idx', 'upd'], ['y'], axis=0, reduction='mul')],
    [('data', data)], [('y', product_)], [('idx', idx), ('upd', upd)], opset=16)

# OneHot of int32 class ids along axis 0 into uint8 (an out-of-range id gives an all-off column).
ids = np.array([[0, 4, -1], [2, 9, -5]], np.int32)
onehot = np.zeros((5, 2, 3), np.uint8)
for (r, c), v in np.ndenumerate(ids):
    if -5 <= v < 5:
        onehot[v % 5, r, c] = 255
save('onehot_int32_ids_axis0_uint8', [
    helper.make_node('OneHot', ['ids', 'depth', 'values'], ['y'], axis=0)],
    [('ids', ids)], [('y', onehot)],
    [('depth', np.array(5, np.int64)), ('values', np.array([0, 255], np.uint8))], opset=11)

# LRN with an even size (window c-1 .. c+2) on a 1-D spatial input.
x = f32(2, 6, 7)
sq = np.zeros_like(x)
for c in range(6):
    sq[:, c] = (x[:, max(0, c - 1):min(5, c + 2) + 1] ** 2).sum(axis=1)
save('lrn_even_size_1d', [
    helper.make_node('LRN', ['x'], ['y'], size=4, alpha=1e-2, beta=0.6, bias=1.5)],
    [('x', x)], [('y', (x / (1.5 + 1e-2 / 4 * sq) ** 0.6).astype(np.float32))])

# Linear Resize of a 3-D tensor's last dim (runs as separable taps; the 4-D loop needs N, C
# fixed) and EyeLike with a negative k to int64; Det of 4x4 matrices.
x = f32(1, 3, 8)
pos = np.clip((np.arange(20) + 0.5) / 2.5 - 0.5, 0, 7)
i0 = np.floor(pos).astype(int)
i1 = np.minimum(i0 + 1, 7)
w = (pos - i0).astype(np.float32)
resized = x[..., i0] * (1 - w) + x[..., i1] * w
m = f32(2, 4, 4)
save('resize_linear_3d_eyelike_det', [
    helper.make_node('Resize', ['x', '', 'scales'], ['r'], mode='linear'),
    helper.make_node('EyeLike', ['m2'], ['eye'], k=-1, dtype=TensorProto.INT64),
    helper.make_node('Det', ['m'], ['det'])],
    [('x', x), ('m2', f32(3, 4)), ('m', m)],
    [('r', resized.astype(np.float32)), ('eye', np.eye(3, 4, -1, dtype=np.int64)),
     ('det', np.linalg.det(m.astype(np.float64)).astype(np.float32))],
    [('scales', np.array([1, 1, 2.5], np.float32))])

# Compress of int8 rows by a constant condition, ReverseSequence of (time, batch, feature).
x = rng.integers(-100, 100, (4, 3)).astype(np.int8)
seq = rng.integers(-9, 9, (5, 3, 2)).astype(np.int32)
lens = np.array([5, 1, 3], np.int64)
rev = seq.copy()
for b, n in enumerate(lens):
    rev[:n, b] = seq[:n, b][::-1]
save('compress_int8_rows_reversesequence_int32', [
    helper.make_node('Compress', ['x', 'keep'], ['c'], axis=0),
    helper.make_node('ReverseSequence', ['seq', 'lens'], ['rev'], batch_axis=1, time_axis=0)],
    [('x', x), ('seq', seq)], [('c', x[[0, 2, 3]]), ('rev', rev)],
    [('keep', np.array([True, False, True, True])), ('lens', lens)], opset=11)


def roi_align_ref(x, rois, batch_indices, out_h, out_w, ratio, scale, mode, half_pixel):
    """ONNX Runtime's RoiAlign, which the ONNX reference copies (its max takes the largest
    weighted corner)."""
    n_rois, channels, height, width = len(rois), x.shape[1], x.shape[2], x.shape[3]
    y = np.zeros((n_rois, channels, out_h, out_w), np.float64)
    for r, (box, b) in enumerate(zip(rois.astype(np.float64), batch_indices)):
        off = 0.5 if half_pixel else 0.0
        x0, y0, x1, y1 = box * scale - off
        rw, rh = x1 - x0, y1 - y0
        if not half_pixel:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / out_h, rw / out_w
        gh = ratio if ratio > 0 else int(np.ceil(rh / out_h))
        gw = ratio if ratio > 0 else int(np.ceil(rw / out_w))
        for ph in range(out_h):
            for pw in range(out_w):
                samples = []
                for iy in range(gh):
                    sy = y0 + ph * bh + (iy + 0.5) * bh / gh
                    for ix in range(gw):
                        sx = x0 + pw * bw + (ix + 0.5) * bw / gw
                        if sy < -1 or sy > height or sx < -1 or sx > width:
                            samples.append(np.zeros((4, channels)))
                            continue
                        sy_, sx_ = max(sy, 0.0), max(sx, 0.0)
                        yl, xl = int(sy_), int(sx_)
                        if yl >= height - 1:
                            yl = yh = height - 1
                            sy_ = float(yl)
                        else:
                            yh = yl + 1
                        if xl >= width - 1:
                            xl = xh = width - 1
                            sx_ = float(xl)
                        else:
                            xh = xl + 1
                        ly, lx = sy_ - yl, sx_ - xl
                        img = x[b].astype(np.float64)
                        samples.append(np.stack([(1 - ly) * (1 - lx) * img[:, yl, xl],
                                                 (1 - ly) * lx * img[:, yl, xh],
                                                 ly * (1 - lx) * img[:, yh, xl],
                                                 ly * lx * img[:, yh, xh]]))
                if mode == 'max':
                    y[r, :, ph, pw] = np.max([s.max(axis=0) for s in samples], axis=0)
                else:
                    y[r, :, ph, pw] = np.sum([s.sum(axis=0) for s in samples], axis=0) / max(
                        gh * gw, 1)
    return y.astype(np.float32)


# RoiAlign on a half-resolution feature map of two images: max with an adaptive sampling grid
# (sampling_ratio 0) and avg in the legacy output_half_pixel mode, several channels.
x = f32(2, 3, 12, 10)
rois = np.array([[2.3, 1.7, 15.1, 20.9], [0.4, 5.5, 9.8, 11.2], [-3.1, -1.3, 6.6, 7.7]],
                np.float32)
batch_indices = np.array([1, 0, 1], np.int64)
save('roialign_max_adaptive_grid_and_avg_legacy_two_images', [
    helper.make_node('RoiAlign', ['x', 'rois', 'bi'], ['ymax'], mode='max', output_height=3,
                     output_width=4, sampling_ratio=0, spatial_scale=0.5),
    helper.make_node('RoiAlign', ['x', 'rois', 'bi'], ['yavg'], output_height=2, output_width=2,
                     sampling_ratio=0, spatial_scale=0.5,
                     coordinate_transformation_mode='output_half_pixel')],
    [('x', x)],
    [('ymax', roi_align_ref(x, rois, batch_indices, 3, 4, 0, 0.5, 'max', True)),
     ('yavg', roi_align_ref(x, rois, batch_indices, 2, 2, 0, 0.5, 'avg', False))],
    [('rois', rois), ('bi', batch_indices)], opset=16)


def grid_sample_ref(x, grid, mode, padding, align_corners):
    """ONNX Runtime's GridSample: padding applies to each tap read (reflection reflects the
    tap index by the corner pixels' centres, or their outer edges)."""
    n_, c_, h, w = x.shape
    lo = 0.0 if align_corners else -0.5
    bounds = (lo, w - 1 - lo), (lo, h - 1 - lo)

    def reflect(v, low, high):
        rng_ = high - low
        if v < low:
            d = low - v
            k = int(d / rng_)
            r = d - k * rng_
            return low + r if k % 2 == 0 else high - r
        if v > high:
            d = v - high
            k = int(d / rng_)
            r = d - k * rng_
            return high - r if k % 2 == 0 else low + r
        return v

    def at(img, row, col):
        if padding == 'zeros':
            return img[row, col] if 0 <= row < h and 0 <= col < w else 0.0
        if padding == 'border':
            return img[min(max(row, 0), h - 1), min(max(col, 0), w - 1)]
        col = int(reflect(float(col), *bounds[0]))
        row = int(reflect(float(row), *bounds[1]))
        return img[row, col]

    def cubic(t):
        a, t = -0.75, abs(t)
        return [((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
                ((a + 2) * t - (a + 3)) * t * t + 1,
                ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
                ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a]

    def denorm(v, size):
        return (v + 1) / 2 * (size - 1) if align_corners else ((v + 1) * size - 1) / 2

    out = np.zeros((n_, c_) + grid.shape[1:3], np.float64)
    for n in range(n_):
        for c in range(c_):
            img = x[n, c].astype(np.float64)
            for i in range(grid.shape[1]):
                for j in range(grid.shape[2]):
                    sx = denorm(float(grid[n, i, j, 0]), w)
                    sy = denorm(float(grid[n, i, j, 1]), h)
                    if mode == 'nearest':
                        out[n, c, i, j] = at(img, int(np.rint(sy)), int(np.rint(sx)))
                    elif mode == 'bilinear':
                        x1, y1 = int(np.floor(sx)), int(np.floor(sy))
                        dx, dy = sx - x1, sy - y1
                        out[n, c, i, j] = ((1 - dy) * ((1 - dx) * at(img, y1, x1) +
                                                       dx * at(img, y1, x1 + 1)) +
                                           dy * ((1 - dx) * at(img, y1 + 1, x1) +
                                                 dx * at(img, y1 + 1, x1 + 1)))
                    else:
                        x0, y0 = int(np.floor(sx)) - 1, int(np.floor(sy)) - 1
                        wx, wy = cubic(sx - x0 - 1), cubic(sy - y0 - 1)
                        out[n, c, i, j] = sum(wy[r] * sum(wx[q] * at(img, y0 + r, x0 + q)
                                                          for q in range(4)) for r in range(4))
    return out.astype(np.float32)


# GridSample over two images of three channels, grid points reaching past the borders: bilinear
# with zeros, nearest with border and align_corners, bicubic with reflection.
x = f32(2, 3, 5, 6)
grid = rng.uniform(-1.3, 1.3, (2, 4, 7, 2)).astype(np.float32)
save('gridsample_batched_channels_three_modes', [
    helper.make_node('GridSample', ['x', 'grid'], ['bilinear']),
    helper.make_node('GridSample', ['x', 'grid'], ['nearest'], mode='nearest',
                     padding_mode='border', align_corners=1),
    helper.make_node('GridSample', ['x', 'grid'], ['bicubic'], mode='bicubic',
                     padding_mode='reflection')],
    [('x', x)],
    [('bilinear', grid_sample_ref(x, grid, 'bilinear', 'zeros', False)),
     ('nearest', grid_sample_ref(x, grid, 'nearest', 'border', True)),
     ('bicubic', grid_sample_ref(x, grid, 'bicubic', 'reflection', False))],
    [('grid', grid)], opset=16)


def maxpool_indices_ref(x, k, stride, pads, column_major=False):
    """2-D MaxPool with ONNX's Indices: the first maximum in window order, its index into the
    whole flattened input (plane offset included), row- or column-major within the plane."""
    n_, c_, h, w = x.shape
    oh = (h + pads[0] + pads[2] - k) // stride + 1
    ow = (w + pads[1] + pads[3] - k) // stride + 1
    y = np.zeros((n_, c_, oh, ow), x.dtype)
    idx = np.zeros((n_, c_, oh, ow), np.int64)
    for n in range(n_):
        for c in range(c_):
            for i in range(oh):
                for j in range(ow):
                    best = None
                    for ky in range(k):
                        for kx in range(k):
                            r, q = i * stride - pads[0] + ky, j * stride - pads[1] + kx
                            if 0 <= r < h and 0 <= q < w and (best is None or x[n, c, r, q] > best):
                                best, at = x[n, c, r, q], (r, q)
                    y[n, c, i, j] = best
                    within = at[1] * h + at[0] if column_major else at[0] * w + at[1]
                    idx[n, c, i, j] = (n * c_ + c) * h * w + within
    return y, idx


# MaxPool's Indices on int8 with pads and column-major storage, and the SegNet pattern: a float
# MaxPool's Indices feeding MaxUnpool (the maxima back in place, zeros elsewhere).
xi = rng.integers(-128, 128, (2, 3, 5, 6)).astype(np.int8)
yi, ii = maxpool_indices_ref(xi, 3, 2, (1, 1, 1, 1), column_major=True)
xf = f32(1, 2, 6, 8)
yf, jf = maxpool_indices_ref(xf, 2, 2, (0, 0, 0, 0))
unpooled = np.zeros(xf.size, np.float32)
unpooled[jf.ravel()] = yf.ravel()
save('maxpool_indices_int8_column_major_and_maxunpool_round_trip', [
    helper.make_node('MaxPool', ['xi'], ['yi', 'ii'], kernel_shape=[3, 3], strides=[2, 2],
                     pads=[1, 1, 1, 1], storage_order=1),
    helper.make_node('MaxPool', ['xf'], ['yf', 'jf'], kernel_shape=[2, 2], strides=[2, 2]),
    helper.make_node('MaxUnpool', ['yf', 'jf'], ['unpooled'], kernel_shape=[2, 2],
                     strides=[2, 2])],
    [('xi', xi), ('xf', xf)],
    [('yi', yi), ('ii', ii), ('unpooled', unpooled.reshape(xf.shape))], opset=12)


# MeanVarianceNormalization per image and channel (axes H, W; the backend cases keep the
# default N, H, W) on a 4-D input with an offset, and over the last axis of a 3-D one.
x4 = f32(2, 3, 4, 5) * 3 + 1
x3 = f32(2, 3, 7)


def mvn_ref(x, axes):
    mean = x.astype(np.float64).mean(axis=axes, keepdims=True)
    std = np.sqrt((x.astype(np.float64) ** 2).mean(axis=axes, keepdims=True) - mean ** 2)
    return ((x - mean) / (std + 1e-9)).astype(np.float32)


save('mvn_per_channel_and_last_axis', [
    helper.make_node('MeanVarianceNormalization', ['x4'], ['y4'], axes=[2, 3]),
    helper.make_node('MeanVarianceNormalization', ['x3'], ['y3'], axes=[-1])],
    [('x4', x4), ('x3', x3)], [('y4', mvn_ref(x4, (2, 3))), ('y3', mvn_ref(x3, (2,)))])


# Empty slices: GatherND and ScatterND on data with a zero-sized trailing dim copy nothing (a
# null pointer handed to memcpy was undefined behaviour, caught by UBSan).
empty = np.zeros((2, 0), np.float32)
save('gathernd_scatternd_empty_slices', [
    helper.make_node('GatherND', ['empty', 'row'], ['g']),
    helper.make_node('ScatterND', ['empty', 'row', 'nothing'], ['s'])],
    [('empty', empty)], [('g', np.zeros((1, 0), np.float32)), ('s', empty)],
    [('row', np.array([[1]], np.int64)), ('nothing', np.zeros((1, 0), np.float32))])


# CastLike to the engine's own dtypes (every backend case uses float16/double/bfloat16/strings):
# float -> int32 truncates toward zero, int64 -> float, uint8 -> int8 wraps as Cast does.
f = np.array([[-2.7, -0.5, 0.0, 1.9], [3.5, 100.2, -100.9, 7.0]], np.float32)
i64 = np.array([-3, 0, 5, 1 << 40], np.int64)
u8 = np.array([0, 127, 128, 255], np.uint8)
save('castlike_float_int64_uint8', [
    helper.make_node('CastLike', ['f', 'like_i32'], ['f_as_i32']),
    helper.make_node('CastLike', ['i64', 'like_f32'], ['i64_as_f32']),
    helper.make_node('CastLike', ['u8', 'like_i8'], ['u8_as_i8'])],
    [('f', f), ('i64', i64), ('u8', u8)],
    [('f_as_i32', f.astype(np.int32)), ('i64_as_f32', i64.astype(np.float32)),
     ('u8_as_i8', u8.astype(np.int8))],
    [('like_i32', np.zeros(1, np.int32)), ('like_f32', np.zeros(1, np.float32)),
     ('like_i8', np.zeros(1, np.int8))], opset=15)


# Cast between every pair of float32, float64, float16, int8, uint8, int32, int64 and bool
# (bfloat16 has no numpy type: test_engine.cc), against numpy's astype. Float sources hold
# values every integer target holds once truncated towards zero (numpy's out-of-range float ->
# int is undefined; the engine saturates, tested in test_engine.cc), with a second, non-negative
# set for uint8; into float16 the rounding cases: 65504 (largest), 65519 (rounds down to it),
# 65520 (rounds to inf), a subnormal, 2^-25 (a tie to 0), 1 + 2^-11 (a tie to 1), 1 + 3 * 2^-11
# (a tie up), NaN, +-inf, -0; from float64, 1 + 2^-11 + 2^-40 rounds up to 1 + 2^-10, where
# going through float32 (which drops the 2^-40) would tie back to 1.
CAST_TYPES = [np.float32, np.float64, np.float16, np.int8, np.uint8, np.int32, np.int64, np.bool_]
signed_values = [-100.75, -2.5, -0.0, 0.0, 0.4999, 1.5, 2.5, 99.9]
half_rounding = [65504.0, 65519.0, 65520.0, 6e-8, 2.0 ** -25, 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11,
                 float('nan'), float('inf'), float('-inf'), -0.0, 1 + 2.0 ** -11 + 2.0 ** -40]
cast_nodes, cast_inputs, cast_outputs = [], [], []
for src in CAST_TYPES:
    src_name = np.dtype(src).name
    if np.issubdtype(src, np.floating):
        signed = np.array(signed_values, src)
        unsigned = np.abs(signed)
        cast_inputs += [(f'{src_name}_signed', signed), (f'{src_name}_unsigned', unsigned)]
    else:
        signed = np.array([-100, -3, -1, 0, 1, 2, 100, 127] if src not in (np.uint8, np.bool_)
                          else [0, 1, 2, 100, 127, 200, 255, 3], src)
        unsigned = signed
        cast_inputs += [(f'{src_name}_signed', signed)]
    for dst in CAST_TYPES:
        if dst is src:
            continue
        dst_name = np.dtype(dst).name
        x_name = f'{src_name}_unsigned' if np.issubdtype(src, np.floating) and dst is np.uint8 \
            else f'{src_name}_signed'
        x = unsigned if x_name.endswith('unsigned') else signed
        y_name = f'{src_name}_to_{dst_name}'
        cast_nodes.append(helper.make_node('Cast', [x_name], [y_name],
                                           to=NP2ONNX[dst]))
        cast_outputs.append((y_name, x.astype(dst)))
for src in (np.float32, np.float64):
    x = np.array(half_rounding, src)
    name = f'{np.dtype(src).name}_half_rounding'
    cast_inputs.append((name, x))
    cast_nodes.append(helper.make_node('Cast', [name], [name + '_to_float16'],
                                       to=TensorProto.FLOAT16))
    cast_outputs.append((name + '_to_float16', x.astype(np.float16)))
save('cast_every_pair_float16_float64_integers_bool', cast_nodes, cast_inputs, cast_outputs)


# float16 and float64 through the ops that only move data (Transpose, Concat, Gather, Slice,
# Reshape, Pad, Expand), then CastLike to float32.
h = rng.standard_normal((2, 3, 4)).astype(np.float16)
d = rng.standard_normal((2, 3, 4))
save('float16_float64_data_movement', [
    helper.make_node('Transpose', ['h'], ['ht'], perm=[2, 0, 1]),
    helper.make_node('Concat', ['h', 'h'], ['hc'], axis=1),
    helper.make_node('Gather', ['d', 'rows'], ['dg'], axis=2),
    helper.make_node('Slice', ['d', 'starts', 'ends', 'axis1'], ['ds']),
    helper.make_node('Reshape', ['h', 'flat'], ['hr']),
    helper.make_node('Pad', ['d', 'pads', 'fill'], ['dp']),
    helper.make_node('Expand', ['h1', 'wide'], ['he']),
    helper.make_node('CastLike', ['d', 'like_f32'], ['d32'])],
    [('h', h), ('d', d), ('h1', h[:1, :1])],
    [('ht', h.transpose(2, 0, 1)), ('hc', np.concatenate([h, h], 1)),
     ('dg', d[:, :, [3, 0]]), ('ds', d[:, 1:3]), ('hr', h.reshape(-1)),
     ('dp', np.pad(d, ((0, 0), (1, 0), (0, 2)), constant_values=-0.125)),
     ('he', np.broadcast_to(h[:1, :1], (3, 1, 4)).copy()), ('d32', d.astype(np.float32))],
    [('rows', np.array([3, 0], np.int64)), ('starts', np.array([1], np.int64)),
     ('ends', np.array([3], np.int64)), ('axis1', np.array([1], np.int64)), ('flat', np.array([-1], np.int64)),
     ('pads', np.array([0, 1, 0, 0, 0, 2], np.int64)), ('fill', np.array(-0.125, np.float64)),
     ('wide', np.array([3, 1, 4], np.int64)), ('like_f32', np.zeros(1, np.float32))], opset=15)


# float64 computed in double (CumSum, the reductions, Einsum: a float32 result would differ in
# the 8th digit, past the case runner's float64 comparison, which is exact up to 1e-12), and
# float16 compared and selected exactly (ArgMax, Less, Where).
d = rng.standard_normal((3, 5)) * 1e3 + 1.0 / 3
e = rng.standard_normal((5, 2))
h = (rng.standard_normal((3, 5)) * 4).astype(np.float16)
g = (rng.standard_normal((3, 5)) * 4).astype(np.float16)
save('float64_compute_float16_compare', [
    helper.make_node('CumSum', ['d', 'axis1'], ['d_cumsum']),
    helper.make_node('ReduceLogSumExp', ['e'], ['e_lse'], axes=[0], keepdims=0),
    helper.make_node('ReduceMean', ['d'], ['d_mean'], axes=[1]),
    helper.make_node('Einsum', ['d', 'e'], ['d_e'], equation='ij,jk->ik'),
    helper.make_node('ArgMax', ['h'], ['h_argmax'], axis=1),
    helper.make_node('Less', ['h', 'g'], ['h_less']),
    helper.make_node('Where', ['h_less', 'h', 'g'], ['h_min'])],
    [('d', d), ('e', e), ('h', h), ('g', g)],
    [('d_cumsum', np.cumsum(d, axis=1)), ('e_lse', np.log(np.exp(e).sum(axis=0))),
     ('d_mean', d.mean(axis=1, keepdims=True)), ('d_e', d @ e),
     ('h_argmax', h.argmax(axis=1).reshape(3, 1)), ('h_less', h < g), ('h_min', np.where(h < g, h, g))],
    [('axis1', np.array(1, np.int64))])


# DynamicQuantizeLinear on values all above 0 (the range still starts at 0: zero point 0) and
# on an all-zero tensor (range 0: scale 0, every value the zero point 0, where the function's
# 0 / 0 would be NaN).
pos = rng.uniform(0.5, 6.0, (3, 5)).astype(np.float32)
pos_scale = np.float32(pos.max() / np.float32(255))
save('dynamicquantizelinear_positive_and_all_zero', [
    helper.make_node('DynamicQuantizeLinear', ['pos'], ['pq', 'ps', 'pz']),
    helper.make_node('DynamicQuantizeLinear', ['zeros'], ['zq', 'zs', 'zz'])],
    [('pos', pos), ('zeros', np.zeros((2, 3), np.float32))],
    [('pq', np.clip(np.rint(pos / pos_scale), 0, 255).astype(np.uint8)),
     ('ps', np.array(pos_scale, np.float32)), ('pz', np.array(0, np.uint8)),
     ('zq', np.zeros((2, 3), np.uint8)), ('zs', np.array(0, np.float32)),
     ('zz', np.array(0, np.uint8))], opset=11)


# x[mask] with a constant mask, as exporters write it: NonZero of the constant (folded at compile
# time to its exact (2, count) result), Transpose, GatherND on the run-time x.
mask = rng.random((3, 4)) > 0.5
x = f32(3, 4)
save('nonzero_of_constant_mask_gathers', [
    helper.make_node('NonZero', ['mask'], ['where']),
    helper.make_node('Transpose', ['where'], ['pairs'], perm=[1, 0]),
    helper.make_node('GatherND', ['x', 'pairs'], ['picked'])],
    [('x', x)], [('picked', x[mask])], [('mask', mask)])


# --- LSTM / GRU / RNN: what the backend cases miss (they are single-direction, batch <= 3,
# default activations, no sequence_lens) --------------------------------------------------------
RNN_ACTS = {
    'Sigmoid': lambda x, a, b: 1 / (1 + np.exp(-x)), 'Tanh': lambda x, a, b: np.tanh(x),
    'Relu': lambda x, a, b: np.maximum(x, 0), 'Affine': lambda x, a, b: a * x + b,
    'LeakyRelu': lambda x, a, b: np.where(x >= 0, x, a * x),
    'ThresholdedRelu': lambda x, a, b: np.where(x > a, x, 0),
    'ScaledTanh': lambda x, a, b: a * np.tanh(b * x),
    'HardSigmoid': lambda x, a, b: np.clip(a * x + b, 0, 1),
    'Elu': lambda x, a, b: np.where(x >= 0, x, a * (np.exp(x) - 1)),
    'Softsign': lambda x, a, b: x / (1 + np.abs(x)), 'Softplus': lambda x, a, b: np.log1p(np.exp(x))}
RNN_ALPHA = {'Affine': 1.0, 'LeakyRelu': 0.01, 'ThresholdedRelu': 1.0, 'ScaledTanh': 1.0,
             'HardSigmoid': 0.2, 'Elu': 1.0}
RNN_BETA = {'Affine': 0.0, 'ScaledTanh': 1.0, 'HardSigmoid': 0.5}


def rnn_ref(cell, x, w, r, b=None, lens=None, h0=None, c0=None, p=None, direction='forward',
            layout=0, hidden=None, activations=None, alphas=(), betas=(), clip=None,
            linear_before_reset=0, input_forget=0):
    """ONNX LSTM (gates i, o, f, c) / GRU (z, r, h) / RNN in float64: returns Y, Y_h, Y_c."""
    x, w, r = (a.astype(np.float64) for a in (x, w, r))
    if layout:
        x = x.transpose(1, 0, 2)
        h0 = None if h0 is None else h0.transpose(1, 0, 2)
        c0 = None if c0 is None else c0.transpose(1, 0, 2)
    seq, batch, _ = x.shape
    dirs, hid = w.shape[0], r.shape[2]
    gates = {'LSTM': 4, 'GRU': 3, 'RNN': 1}[cell]
    per_dir = {'LSTM': ['Sigmoid', 'Tanh', 'Tanh'], 'GRU': ['Sigmoid', 'Tanh'], 'RNN': ['Tanh']}[cell]
    names = activations or per_dir * dirs
    alphas, betas = list(alphas), list(betas)
    fns = []
    for n in names:
        a = alphas.pop(0) if n in RNN_ALPHA and alphas else RNN_ALPHA.get(n, 0.0)
        bb = betas.pop(0) if n in RNN_BETA and betas else RNN_BETA.get(n, 0.0)
        fns.append(lambda v, f=RNN_ACTS[n], a=a, bb=bb: f(v, a, bb))
    cl = (lambda v: np.clip(v, -clip, clip)) if clip else (lambda v: v)
    y = np.zeros((seq, dirs, batch, hid))
    yh = np.zeros((dirs, batch, hid))
    yc = np.zeros((dirs, batch, hid))
    for d in range(dirs):
        f = fns[d * len(per_dir):(d + 1) * len(per_dir)]
        bias = np.zeros(2 * gates * hid) if b is None else b[d].astype(np.float64)
        wb, rb = bias[:gates * hid], bias[gates * hid:]
        pp = np.zeros(3 * hid) if p is None else p[d].astype(np.float64)
        rev = direction == 'reverse' or d == 1
        for n in range(batch):
            h = np.zeros(hid) if h0 is None else h0[d, n].astype(np.float64)
            c = np.zeros(hid) if c0 is None else c0[d, n].astype(np.float64)
            length = seq if lens is None else int(lens[n])
            for step in range(length):
                t = length - 1 - step if rev else step
                gx = w[d] @ x[t, n] + wb
                if cell == 'LSTM':
                    g = gx + r[d] @ h + rb
                    gi, go, gf, gc = np.split(g, 4)
                    i = f[0](cl(gi + pp[:hid] * c))
                    fg = 1 - i if input_forget else f[0](cl(gf + pp[2 * hid:] * c))
                    c = fg * c + i * f[1](cl(gc))
                    o = f[0](cl(go + pp[hid:2 * hid] * c))
                    h = o * f[2](c)
                elif cell == 'GRU':
                    rz = gx[:2 * hid] + r[d][:2 * hid] @ h + rb[:2 * hid]
                    z, rr = np.split(f[0](cl(rz)), 2)
                    rh = r[d][2 * hid:]
                    if linear_before_reset:
                        hh = gx[2 * hid:] + rr * (rh @ h + rb[2 * hid:])
                    else:
                        hh = gx[2 * hid:] + rh @ (rr * h) + rb[2 * hid:]
                    h = (1 - z) * f[1](cl(hh)) + z * h
                else:
                    h = f[0](cl(gx + r[d] @ h + rb))
                y[t, d, n] = h
            yh[d, n], yc[d, n] = h, c
    if layout:
        y, yh, yc = y.transpose(2, 0, 1, 3), yh.transpose(1, 0, 2), yc.transpose(1, 0, 2)
    return tuple(a.astype(np.float32) for a in (y, yh, yc))


def rnn_weights(cell, dirs, inp, hid, scale=0.4):
    g = {'LSTM': 4, 'GRU': 3, 'RNN': 1}[cell]
    return (f32(dirs, g * hid, inp) * scale, f32(dirs, g * hid, hid) * scale,
            f32(dirs, 2 * g * hid) * scale)


# Bidirectional LSTM, batch 3, with a constant sequence_lens (steps past a row's length are
# zero in Y; the reverse direction starts at the row's last step) and peepholes.
x = f32(5, 3, 4)
w, r, b = rnn_weights('LSTM', 2, 4, 6)
p = f32(2, 18) * 0.3
lens = np.array([5, 3, 1], np.int32)
y, yh, yc = rnn_ref('LSTM', x, w, r, b, lens, p=p, direction='bidirectional')
save('lstm_bidirectional_constant_sequence_lens_peepholes_batch3',
     [helper.make_node('LSTM', ['x', 'w', 'r', 'b', 'lens', '', '', 'p'], ['y', 'yh', 'yc'],
                       hidden_size=6, direction='bidirectional')],
     [('x', x)], [('y', y), ('yh', yh), ('yc', yc)],
     [('w', w), ('r', r), ('b', b), ('lens', lens), ('p', p)], opset=14)

# sequence_lens read at run time: set 0 cuts rows short (the reference loops run), set 1 has
# every row full (oneDNN's primitive runs); initial states given.
h0, c0 = f32(2, 3, 6), f32(2, 3, 6)
lens_short = np.array([4, 5, 2], np.int32)
lens_full = np.array([5, 5, 5], np.int32)
x1 = f32(5, 3, 4)
save('lstm_bidirectional_run_time_sequence_lens_initial_states',
     [helper.make_node('LSTM', ['x', 'w', 'r', 'b', 'lens', 'h0', 'c0'], ['y', 'yh', 'yc'],
                       hidden_size=6, direction='bidirectional')],
     [('x', x), ('lens', lens_short)],
     list(zip(('y', 'yh', 'yc'), rnn_ref('LSTM', x, w, r, b, lens_short, h0, c0,
                                         direction='bidirectional'))),
     [('w', w), ('r', r), ('b', b), ('h0', h0), ('c0', c0)], opset=14,
     extra_sets=[([x1, lens_full], rnn_ref('LSTM', x1, w, r, b, lens_full, h0, c0,
                                           direction='bidirectional'))])

# layout = 1 (batch-major X, Y, states), bidirectional, batch 2, peepholes and initial states.
x = f32(2, 4, 3)
w, r, b = rnn_weights('LSTM', 2, 3, 5)
p = f32(2, 15) * 0.3
h0, c0 = f32(2, 2, 5), f32(2, 2, 5)
save('lstm_layout1_bidirectional_peepholes_initial_states_batch2',
     [helper.make_node('LSTM', ['x', 'w', 'r', 'b', '', 'h0', 'c0', 'p'], ['y', 'yh', 'yc'],
                       hidden_size=5, direction='bidirectional', layout=1)],
     [('x', x)],
     list(zip(('y', 'yh', 'yc'), rnn_ref('LSTM', x, w, r, b, None, h0, c0, p,
                                         direction='bidirectional', layout=1))),
     [('w', w), ('r', r), ('b', b), ('h0', h0), ('c0', c0), ('p', p)], opset=14)

# Reverse LSTM without a bias, Y_h only.
x = f32(6, 2, 3)
w, r, _ = rnn_weights('LSTM', 1, 3, 4)
save('lstm_reverse_no_bias_y_h_only',
     [helper.make_node('LSTM', ['x', 'w', 'r'], ['', 'yh'], hidden_size=4, direction='reverse')],
     [('x', x)], [('yh', rnn_ref('LSTM', x, w, r, direction='reverse')[1])],
     [('w', w), ('r', r)], opset=14)

# What oneDNN cannot express, on the reference loops: clip, coupled input/forget gates and
# activations with alpha/beta (consumed in order by the functions that take them).
x = f32(4, 2, 3) * 2
w, r, b = rnn_weights('LSTM', 2, 3, 4, scale=0.8)
acts = ['HardSigmoid', 'LeakyRelu', 'Softsign', 'Sigmoid', 'ScaledTanh', 'Elu']
alphas, betas = [0.3, 0.05, 0.9, 1.5], [0.4, 0.7]
save('lstm_clip_input_forget_activations_with_alpha_beta',
     [helper.make_node('LSTM', ['x', 'w', 'r', 'b'], ['y', 'yh', 'yc'], hidden_size=4,
                       direction='bidirectional', clip=1.5, input_forget=1, activations=acts,
                       activation_alpha=alphas, activation_beta=betas)],
     [('x', x)],
     list(zip(('y', 'yh', 'yc'), rnn_ref('LSTM', x, w, r, b, direction='bidirectional',
                                         activations=acts, alphas=alphas, betas=betas,
                                         clip=1.5, input_forget=1))),
     [('w', w), ('r', r), ('b', b)], opset=14)

# GRU: bidirectional linear_before_reset at batch 2 (oneDNN's lbr_gru, Y re-laid from its
# (seq, batch, dirs * hidden)), reverse with initial_h (gru), and clip + other activations.
x = f32(5, 2, 4)
w, r, b = rnn_weights('GRU', 2, 4, 6)
save('gru_bidirectional_linear_before_reset_batch2',
     [helper.make_node('GRU', ['x', 'w', 'r', 'b'], ['y', 'yh'], hidden_size=6,
                       direction='bidirectional', linear_before_reset=1)],
     [('x', x)],
     list(zip(('y', 'yh'), rnn_ref('GRU', x, w, r, b, direction='bidirectional',
                                   linear_before_reset=1)[:2])),
     [('w', w), ('r', r), ('b', b)], opset=14)
w, r, b = rnn_weights('GRU', 1, 4, 6)
h0 = f32(1, 2, 6)
save('gru_reverse_initial_h',
     [helper.make_node('GRU', ['x', 'w', 'r', 'b', '', 'h0'], ['y', 'yh'], hidden_size=6,
                       direction='reverse')],
     [('x', x)],
     list(zip(('y', 'yh'), rnn_ref('GRU', x, w, r, b, None, h0, direction='reverse')[:2])),
     [('w', w), ('r', r), ('b', b), ('h0', h0)], opset=14)
acts = ['HardSigmoid', 'Softplus']
save('gru_layout1_clip_hard_sigmoid_softplus',
     [helper.make_node('GRU', ['x', 'w', 'r', 'b'], ['y', 'yh'], hidden_size=6, layout=1,
                       clip=0.8, activations=acts)],
     [('x', x)],
     list(zip(('y', 'yh'), rnn_ref('GRU', x, w, r, b, layout=1, activations=acts,
                                   clip=0.8)[:2])),
     [('w', w), ('r', r), ('b', b)], opset=14)

# RNN: bidirectional Relu with initial_h at batch 2 (oneDNN's vanilla RNN), and different
# activations per direction (reference loops).
x = f32(4, 2, 3)
w, r, b = rnn_weights('RNN', 2, 3, 5)
h0 = f32(2, 2, 5)
save('rnn_bidirectional_relu_initial_h_batch2',
     [helper.make_node('RNN', ['x', 'w', 'r', 'b', '', 'h0'], ['y', 'yh'], hidden_size=5,
                       direction='bidirectional', activations=['Relu', 'Relu'])],
     [('x', x)],
     list(zip(('y', 'yh'), rnn_ref('RNN', x, w, r, b, None, h0, direction='bidirectional',
                                   activations=['Relu', 'Relu'])[:2])),
     [('w', w), ('r', r), ('b', b), ('h0', h0)], opset=14)
save('rnn_bidirectional_tanh_then_affine',
     [helper.make_node('RNN', ['x', 'w', 'r', 'b'], ['y', 'yh'], hidden_size=5,
                       direction='bidirectional', activations=['Tanh', 'Affine'],
                       activation_alpha=[0.5], activation_beta=[0.1])],
     [('x', x)],
     list(zip(('y', 'yh'), rnn_ref('RNN', x, w, r, b, direction='bidirectional',
                                   activations=['Tanh', 'Affine'], alphas=[0.5],
                                   betas=[0.1])[:2])),
     [('w', w), ('r', r), ('b', b)], opset=14)

# A CRNN text-recogniser tail: Conv + Relu over a (1, 1, 4, 12) strip, its columns as a
# sequence (Reshape to (1, C*H, W), Transpose to (W, 1, C*H)), a bidirectional LSTM, the two
# directions side by side (Transpose + Reshape) and a MatMul to per-column class scores.
img = f32(1, 1, 4, 12)
cw, cb = f32(8, 1, 3, 3) * 0.5, f32(8) * 0.1
w, r, b = rnn_weights('LSTM', 2, 32, 16, scale=0.2)
cls = f32(32, 10) * 0.3
feat = np.maximum(conv_ref(img, cw, cb, (1, 1), (1, 1, 1, 1)), 0)
seq_in = feat.reshape(1, 32, 12).transpose(2, 0, 1)
y = rnn_ref('LSTM', seq_in, w, r, b, direction='bidirectional')[0]
scores = y.transpose(0, 2, 1, 3).reshape(12, 1, 32) @ cls
save('crnn_conv_bidirectional_lstm_matmul', [
    helper.make_node('Conv', ['img', 'cw', 'cb'], ['c'], pads=[1, 1, 1, 1]),
    helper.make_node('Relu', ['c'], ['f']),
    helper.make_node('Reshape', ['f', 'flat'], ['cols']),
    helper.make_node('Transpose', ['cols'], ['seq'], perm=[2, 0, 1]),
    helper.make_node('LSTM', ['seq', 'w', 'r', 'b'], ['y'], hidden_size=16,
                     direction='bidirectional'),
    helper.make_node('Transpose', ['y'], ['yt'], perm=[0, 2, 1, 3]),
    helper.make_node('Reshape', ['yt', 'both'], ['joined']),
    helper.make_node('MatMul', ['joined', 'cls'], ['scores'])],
    [('img', img)], [('scores', scores)],
    [('cw', cw), ('cb', cb), ('flat', np.array([1, 32, 12], np.int64)), ('w', w), ('r', r),
     ('b', b), ('both', np.array([12, 1, 32], np.int64)), ('cls', cls)], opset=14)


# --- ConvTranspose 1-D and 3-D: strides, pads, dilations, output_padding, groups, SAME -------
def deconv_nd_ref(x, w, b=None, strides=None, pads=None, dil=None, out_pad=None, group=1):
    """ConvTranspose of any rank: each kernel tap scatters x @ w[tap] at tap * dilation + input
    position * stride of the uncropped output, which the pads then crop."""
    r = x.ndim - 2
    strides, dil = strides or (1,) * r, dil or (1,) * r
    pads, out_pad = pads or (0,) * (2 * r), out_pad or (0,) * r
    cg, mg, k = x.shape[1] // group, w.shape[1], w.shape[2:]
    full = [(x.shape[2 + i] - 1) * strides[i] + (k[i] - 1) * dil[i] + 1 + out_pad[i]
            for i in range(r)]
    y = np.zeros((x.shape[0], mg * group, *full))
    for g in range(group):
        xg = x[:, g * cg:(g + 1) * cg].astype(np.float64)
        for tap in np.ndindex(*k):
            part = np.einsum('nc...,cm->nm...', xg, w[(slice(g * cg, (g + 1) * cg), slice(None)) + tap])
            at = tuple(slice(tap[i] * dil[i], tap[i] * dil[i] + (x.shape[2 + i] - 1) * strides[i] + 1,
                             strides[i]) for i in range(r))
            y[(slice(None), slice(g * mg, (g + 1) * mg)) + at] += part
    y = y[(slice(None), slice(None)) + tuple(slice(pads[i], full[i] - pads[r + i]) for i in range(r))]
    if b is not None:
        y += b.reshape(1, -1, *([1] * r))
    return y.astype(np.float32)


x, w, b = f32(2, 4, 7), f32(4, 3, 5), f32(6)
save('convtranspose1d_grouped_strided_padded_dilated_output_padding', [
    helper.make_node('ConvTranspose', ['x', 'w', 'b'], ['y'], group=2, strides=[3], pads=[1, 2],
                     dilations=[2], output_padding=[1])],
    [('x', x)], [('y', deconv_nd_ref(x, w, b, (3,), (1, 2), (2,), (1,), 2))], [('w', w), ('b', b)])
# SAME_LOWER: output = input * stride, the odd total pad (1) at the beginning.
x, w = f32(1, 2, 5), f32(2, 3, 3)
save('convtranspose1d_same_lower_stride2', [
    helper.make_node('ConvTranspose', ['x', 'w'], ['y'], strides=[2], auto_pad='SAME_LOWER')],
    [('x', x)], [('y', deconv_nd_ref(x, w, None, (2,), (1, 0)))], [('w', w)])
x, w, b = f32(1, 4, 3, 4, 5), f32(4, 2, 2, 3, 3), f32(4)
save('convtranspose3d_grouped_strided_padded_dilated_output_padding', [
    helper.make_node('ConvTranspose', ['x', 'w', 'b'], ['y'], group=2, strides=[2, 1, 2],
                     pads=[1, 0, 1, 0, 1, 1], dilations=[1, 2, 1], output_padding=[1, 0, 1])],
    [('x', x)],
    [('y', deconv_nd_ref(x, w, b, (2, 1, 2), (1, 0, 1, 0, 1, 1), (1, 2, 1), (1, 0, 1), 2))],
    [('w', w), ('b', b)])
# 2x2x2 windows at stride 2 tile the output (each output element written once).
x, w, b = f32(2, 3, 2, 3, 4), f32(3, 2, 2, 2, 2), f32(2)
save('convtranspose3d_2x2x2_stride2_bias_tiles', [
    helper.make_node('ConvTranspose', ['x', 'w', 'b'], ['y'], strides=[2, 2, 2])],
    [('x', x)], [('y', deconv_nd_ref(x, w, b, (2, 2, 2)))], [('w', w), ('b', b)])


# --- the losses: int32 targets, weights with ignore_index, every reduction, log_prob ----------
def nll_ref(log_prob, target, weight=None, reduction='mean', ignore_index=None):
    """ONNX's NegativeLogLikelihoodLoss: -log_prob[target] * weight[target]; ignored items lose
    0 and weigh 0; mean divides by the sum of the weights applied."""
    kept = np.ones(target.shape, bool) if ignore_index is None else target != ignore_index
    t = np.where(kept, target, 0).astype(np.int64)
    picked = np.take_along_axis(log_prob, t[:, None], 1)[:, 0]
    item_weight = np.where(kept, 1.0 if weight is None else weight[t], 0.0)
    loss = -picked.astype(np.float64) * item_weight
    if reduction == 'none':
        return loss.astype(np.float32)
    total = loss.sum() / (item_weight.sum() if reduction == 'mean' else 1.0)
    return np.array(total, np.float32)


def log_softmax_ref(x):
    z = x.astype(np.float64) - x.max(axis=1, keepdims=True)
    return (z - np.log(np.exp(z).sum(axis=1, keepdims=True))).astype(np.float32)


# int32 targets (every backend case has int64), a negative ignore_index with weights and the
# mean over N-D items, and the sum without weights.
scores = f32(3, 4, 2, 3)
target = rng.integers(0, 4, (3, 2, 3)).astype(np.int32)
target[0, 1, 2] = target[2, 0, 0] = -1
weight = rng.uniform(0.2, 2.0, 4).astype(np.float32)
save('nllloss_int32_target_weight_negative_ii_mean_and_sum', [
    helper.make_node('NegativeLogLikelihoodLoss', ['x', 't', 'w'], ['mean'], ignore_index=-1),
    helper.make_node('NegativeLogLikelihoodLoss', ['x', 't2'], ['sum'], reduction='sum')],
    [('x', scores), ('t', target), ('w', weight), ('t2', np.abs(target))],
    [('mean', nll_ref(scores, target, weight, 'mean', -1)),
     ('sum', nll_ref(scores, np.abs(target), None, 'sum'))])
# SoftmaxCrossEntropyLoss on (N, C) with int32 labels, weights and an ignore_index above the
# classes, every reduction, and its log_prob output.
scores = f32(6, 5) * 3
labels = rng.integers(0, 5, 6).astype(np.int32)
labels[4] = 7
weight = rng.uniform(0.2, 2.0, 5).astype(np.float32)
log_prob = log_softmax_ref(scores)
save('sce_int32_labels_weight_high_ii_every_reduction_log_prob', [
    helper.make_node('SoftmaxCrossEntropyLoss', ['x', 'l', 'w'], ['none', 'log_prob'],
                     reduction='none', ignore_index=7),
    helper.make_node('SoftmaxCrossEntropyLoss', ['x', 'l', 'w'], ['sum'], reduction='sum',
                     ignore_index=7),
    helper.make_node('SoftmaxCrossEntropyLoss', ['x', 'l', 'w'], ['mean'], ignore_index=7)],
    [('x', scores), ('l', labels), ('w', weight)],
    [('none', nll_ref(log_prob, labels, weight, 'none', 7)), ('log_prob', log_prob),
     ('sum', nll_ref(log_prob, labels, weight, 'sum', 7)),
     ('mean', nll_ref(log_prob, labels, weight, 'mean', 7))])


# --- CumSum on the types the engine has (every backend case is float64): float32 exclusive and
# reverse along a middle axis, int32 along the last (axis -1, given as int32), int64 reversed ---
x = f32(2, 5, 3)
xi = rng.integers(-50, 50, (3, 4)).astype(np.int32)
xl = rng.integers(-10**12, 10**12, (6,)).astype(np.int64)
# Exclusive reverse: element j sums the elements after j (0 for the last).
after = np.flip(np.cumsum(np.flip(x, 1), 1, dtype=np.float32), 1)
exclusive_reverse = np.concatenate([after[:, 1:], np.zeros((2, 1, 3), np.float32)], 1)
save('cumsum_float_exclusive_reverse_int32_last_axis_int64_reverse', [
    helper.make_node('CumSum', ['x', 'one'], ['y'], exclusive=1, reverse=1),
    helper.make_node('CumSum', ['xi', 'last'], ['yi']),
    helper.make_node('CumSum', ['xl', 'zero'], ['yl'], reverse=1)],
    [('x', x), ('xi', xi), ('xl', xl)],
    [('y', exclusive_reverse), ('yi', np.cumsum(xi, 1, dtype=np.int32)),
     ('yl', np.flip(np.cumsum(np.flip(xl))))],
    [('one', np.array(1, np.int64)), ('last', np.array(-1, np.int32)),
     ('zero', np.array([0], np.int64))], opset=14)



# --- Adam (ai.onnx.preview.training): the backend's test_adam_multiple with the epsilon its
# expected outputs assume set on the node (onnx/onnx#7749), and a later step (T = 3: the
# bias-corrected rate) with norm_coefficient_post ---------------------------------------------
def adam_ref(r, t, x, g, v, h, norm, norm_post, alpha, beta, eps):
    gr = norm * x.astype(np.float64) + g
    v_new = alpha * v + (1 - alpha) * gr
    h_new = beta * h + (1 - beta) * gr * gr
    rate = r * np.sqrt(1 - beta ** t) / (1 - alpha ** t) if t > 0 else r
    x_new = (1 - norm_post) * (x - rate * (v_new / (np.sqrt(h_new) + eps)))
    return [a.astype(np.float32) for a in (x_new, v_new, h_new)]


training = [('ai.onnx.preview.training', 1)]
x1, g1, v1, h1 = (np.array(a, np.float32) for a in ([1.0], [-1.0], [2.0], [0.5]))
x2, g2, v2, h2 = (np.array(a, np.float32) for a in ([1.0, 2.0], [-1.0, -3.0], [4.0, 1.0],
                                                     [1.0, 10.0]))
first, second = (adam_ref(0.1, 0, x, g, v, h, 0.001, 0.0, 0.95, 0.85, 1e-2)
                 for x, g, v, h in ((x1, g1, v1, h1), (x2, g2, v2, h2)))
save('adam_multiple_epsilon', [
    helper.make_node('Adam', ['R', 'T', 'X1', 'X2', 'G1', 'G2', 'V1', 'V2', 'H1', 'H2'],
                     ['X1_new', 'X2_new', 'V1_new', 'V2_new', 'H1_new', 'H2_new'],
                     norm_coefficient=0.001, alpha=0.95, beta=0.85, epsilon=1e-2,
                     domain='ai.onnx.preview.training')],
    [('R', np.array(0.1, np.float32)), ('T', np.array(0, np.int64)), ('X1', x1), ('X2', x2),
     ('G1', g1), ('G2', g2), ('V1', v1), ('V2', v2), ('H1', h1), ('H2', h2)],
    [('X1_new', first[0]), ('X2_new', second[0]), ('V1_new', first[1]), ('V2_new', second[1]),
     ('H1_new', first[2]), ('H2_new', second[2])], other_opsets=training)
x, g, v, h = f32(3, 4), f32(3, 4), f32(3, 4), np.abs(f32(3, 4))
save('adam_step3_norm_coefficient_post', [
    helper.make_node('Adam', ['R', 'T', 'X', 'G', 'V', 'H'], ['X_new', 'V_new', 'H_new'],
                     norm_coefficient=0.01, norm_coefficient_post=0.05,
                     domain='ai.onnx.preview.training')],
    [('R', np.array(0.05, np.float32)), ('T', np.array(3, np.int64)), ('X', x), ('G', g),
     ('V', v), ('H', h)],
    list(zip(('X_new', 'V_new', 'H_new'), adam_ref(0.05, 3, x, g, v, h, 0.01, 0.05, 0.9, 0.999,
                                                   1e-6))), other_opsets=training)



# --- Hann/Hamming/Blackman windows of a constant size (the backend cases feed the size as an
# input), exact pi: a frame windowed by a periodic Hann, a symmetric Blackman and Hamming ------
def cosine_window(size, a0, a1, a2, periodic):
    phase = 2 * np.pi * np.arange(size) / (size if periodic else size - 1)
    return (a0 - a1 * np.cos(phase) + a2 * np.cos(2 * phase)).astype(np.float32)


frame = f32(8)
save('windows_hann_frame_blackman_hamming_symmetric', [
    helper.make_node('HannWindow', ['eight'], ['hann']),
    helper.make_node('Mul', ['frame', 'hann'], ['windowed']),
    helper.make_node('BlackmanWindow', ['six'], ['blackman'], periodic=0),
    helper.make_node('HammingWindow', ['five'], ['hamming'], periodic=0)],
    [('frame', frame)],
    [('windowed', frame * cosine_window(8, 0.5, 0.5, 0, True)),
     ('blackman', cosine_window(6, 0.42, 0.5, 0.08, False)),
     ('hamming', cosine_window(5, 25 / 46, 21 / 46, 0, False))],
    [('eight', np.array(8, np.int64)), ('six', np.array(6, np.int32)),
     ('five', np.array(5, np.int64))], opset=17)



# --- TfIdfVectorizer in IDF and TFIDF modes with weights (the backend cases are all TF, without
# weights), int64 ids in 2 rows, unigrams and bigrams with skips up to 1 ----------------------
def tfidf_ref(ids, pool, starts, indexes, mode, min_n, max_n, max_skip, weights):
    grams, at = {}, 0
    for i, begin in enumerate(starts):
        n, end = i + 1, starts[i + 1] if i + 1 < len(starts) else len(pool)
        for j in range(begin, end, n):
            grams[tuple(pool[j:j + n])] = indexes[at]
            at += 1
    out = np.zeros((ids.shape[0], max(indexes) + 1), np.float32)
    for r, row in enumerate(ids):
        for n in range(min_n, max_n + 1):
            for skip in range(max_skip + 1 if n > 1 else 1):
                for start in range(len(row) - (n - 1) * (skip + 1)):
                    gram = tuple(int(row[start + k * (skip + 1)]) for k in range(n))
                    if gram in grams:
                        out[r, grams[gram]] += 1
    w = np.ones(out.shape[1], np.float32)
    w[list(indexes)] = weights
    return ((out > 0) * w if mode == 'IDF' else out * w).astype(np.float32)


ids = rng.integers(1, 6, (2, 9)).astype(np.int64)
pool, starts, indexes = [2, 3, 5, 1, 2, 2, 4, 3, 3], [0, 3], [4, 0, 2, 1, 5, 3]
weights = [0.5, 2.0, 1.5, 0.25, 3.0, 0.75]
save('tfidf_idf_and_tfidf_weights_int64_rows_skip1', [
    helper.make_node('TfIdfVectorizer', ['ids'], [m.lower()], mode=m, min_gram_length=1,
                     max_gram_length=2, max_skip_count=1, pool_int64s=pool, ngram_counts=starts,
                     ngram_indexes=indexes, weights=weights) for m in ('IDF', 'TFIDF')],
    [('ids', ids)],
    [(m.lower(), tfidf_ref(ids, pool, starts, indexes, m, 1, 2, 1, weights))
     for m in ('IDF', 'TFIDF')], opset=9)



# --- MelWeightMatrix with fractional triangles (the backend case's bands are one bin wide):
# 10 bands of a 64-point DFT at 16 kHz between 100 and 7000 Hz, as ONNX's reference computes it
def mel_weight_matrix_ref(mel_bins, dft_length, sample_rate, lower, upper):
    low = 2595 * np.log10(1 + np.float32(lower) / 700)
    high = 2595 * np.log10(1 + np.float32(upper) / 700)
    edges = np.arange(0, mel_bins + 2) * ((high - low) / (mel_bins + 2)) + low
    edges = (((dft_length + 1) * (700 * (np.power(10, edges / 2595) - 1))) // sample_rate)
    edges = edges.astype(int)
    out = np.zeros((dft_length // 2 + 1, mel_bins))
    for i in range(mel_bins):
        left, center, right = edges[i], edges[i + 1], edges[i + 2]
        if center == left:
            out[center, i] = 1
        else:
            out[left:center + 1, i] = (np.arange(left, center + 1) - left) / (center - left)
        if right > center:
            out[center:right, i] = (right - np.arange(center, right)) / (right - center)
    return out.astype(np.float32)


mel = mel_weight_matrix_ref(10, 64, 16000, 100.0, 7000.0)
assert 0 < mel[(mel > 0) & (mel < 1)].size, 'no fractional weight: the case would check little'
save('melweightmatrix_fractional_bands', [
    helper.make_node('MelWeightMatrix', ['bins', 'dft', 'rate', 'low', 'high'], ['mel'])],
    [], [('mel', mel)],
    [('bins', np.array(10, np.int64)), ('dft', np.array(64, np.int64)),
     ('rate', np.array(16000, np.int64)), ('low', np.array(100.0, np.float32)),
     ('high', np.array(7000.0, np.float32))], opset=17)



# --- Einsum in float32 (every backend case is float64): batch matmul, a transpose, a batch
# diagonal, a sum, an inner product, implicit output, "..." with broadcasting, three operands --
einsum_cases = [
    ('bij,bjk->bik', [f32(2, 3, 4), f32(2, 4, 5)]),
    ('ij->ji', [f32(3, 4)]),
    ('bii->bi', [f32(2, 3, 3)]),
    ('ij->i', [f32(3, 4)]),
    ('i,i', [f32(5), f32(5)]),
    ('ij,jk', [f32(3, 4), f32(4, 2)]),
    ('...ij,...jk->...ik', [f32(2, 1, 3, 4), f32(3, 4, 2)]),
    ('ab,bc,cd->ad', [f32(2, 3), f32(3, 4), f32(4, 2)]),
]
names = [f'e{k}' for k in range(len(einsum_cases))]
save('einsum_float_matmul_transpose_diagonal_sum_inner_implicit_ellipsis_three', [
    helper.make_node('Einsum', [f'{n}_{i}' for i in range(len(ops))], [n], equation=eq)
    for n, (eq, ops) in zip(names, einsum_cases)],
    [(f'{n}_{i}', a) for n, (_, ops) in zip(names, einsum_cases) for i, a in enumerate(ops)],
    [(n, np.asarray(np.einsum(eq, *[a.astype(np.float64) for a in ops]), np.float32))
     for n, (eq, ops) in zip(names, einsum_cases)], opset=12)



# --- DFT on the radix-2 path (the backend cases are length 10, the direct sum): real input
# padded to 16 and one-sided, complex input cut to 8 along axis 2, an inverse of length 32, and
# a length-12 one-sided direct sum ------------------------------------------------------------
def dft_ref(x, axis, length, inverse=False, onesided=False):
    signal = x[..., 0] + (1j * x[..., 1] if x.shape[-1] == 2 else 0)
    f = (np.fft.ifft if inverse else np.fft.fft)(signal.astype(np.complex128), n=length, axis=axis)
    if onesided:
        f = np.take(f, np.arange(length // 2 + 1), axis=axis)
    return np.stack([f.real, f.imag], -1).astype(np.float32)


real, cplx, longer = f32(2, 11, 3, 1), f32(1, 4, 9, 2), f32(1, 32, 2)
twelve = f32(3, 12, 1)
save('dft_radix2_padded_onesided_cut_complex_inverse_direct', [
    helper.make_node('DFT', ['real', 'n16'], ['r16'], axis=1, onesided=1),
    helper.make_node('DFT', ['cplx', 'n8'], ['c8'], axis=2),
    helper.make_node('DFT', ['longer'], ['inv'], axis=1, inverse=1),
    helper.make_node('DFT', ['twelve'], ['d12'], axis=1, onesided=1)],
    [('real', real), ('cplx', cplx), ('longer', longer), ('twelve', twelve)],
    [('r16', dft_ref(real, 1, 16, onesided=True)), ('c8', dft_ref(cplx, 2, 8)),
     ('inv', dft_ref(longer, 1, 32, inverse=True)), ('d12', dft_ref(twelve, 1, 12, onesided=True))],
    [('n16', np.array(16, np.int64)), ('n8', np.array(8, np.int64))], opset=17)



# --- STFT of a complex two-channel batch, two-sided, the window a run-time input (the backend
# cases are real, one-sided, the window constant once frozen) --------------------------------
signal, window = f32(2, 40, 2), np.abs(f32(8))
frames = np.stack([signal[:, f * 6:f * 6 + 8] for f in range((40 - 8) // 6 + 1)], 1)
spectra = np.fft.fft((frames[..., 0] + 1j * frames[..., 1]) * window, axis=-1)
save('stft_complex_twosided_run_time_window', [
    helper.make_node('STFT', ['signal', 'step', 'window'], ['y'], onesided=0)],
    [('signal', signal), ('window', window)],
    [('y', np.stack([spectra.real, spectra.imag], -1).astype(np.float32))],
    [('step', np.array(6, np.int64))], opset=17)


# --- a float model converted to compute in float16 (as onnxconverter-common's
# convert_float_to_float16 writes it), and in float32: the engine runs each float16 op in float32
# between Casts; numpy evaluates every op in float64 on the stored values and rounds its result to
# the model's type, as a half-precision evaluation of each op does. test_engine.cc's HalfCompute
# tests run these (half_compute_*: not GeneratedCase, their tolerance is half precision's) ------
def to_float16(nodes, inputs, outputs, initializers, keep_io_types):
    """The float32 model as float16: float initializers to half, inputs and outputs float16, or
    kept float32 behind a Cast to float16 on each input and a Cast to float32 on each output."""
    initializers = [(n, a.astype(np.float16) if a.dtype == np.float32 else a)
                    for n, a in initializers]
    if not keep_io_types:
        return (nodes, [(n, a.astype(np.float16)) for n, a in inputs],
                [(n, a.astype(np.float16)) for n, a in outputs], initializers)
    rename = {n: n + '_float16' for n, _ in inputs + outputs}
    body = [helper.make_node(node.op_type, [rename.get(i, i) for i in node.input],
                             [rename.get(o, o) for o in node.output], name=node.name)
            for node in nodes]
    for node, original in zip(body, nodes):
        node.attribute.extend(original.attribute)
    return ([helper.make_node('Cast', [n], [rename[n]], name=n + '_to_float16',
                              to=TensorProto.FLOAT16) for n, _ in inputs] + body +
            [helper.make_node('Cast', [rename[n]], [n], name=n + '_to_float32',
                              to=TensorProto.FLOAT) for n, _ in outputs],
            inputs, outputs, initializers)


def small_convnet_ref(x, p, dt):
    """Conv+Relu -> MaxPool -> Conv, Add (residual) -> Reshape -> MatMul+Add -> Relu -> Gemm ->
    Softmax (and the residual sum, an output too), each op in float64 on `dt` values, its result rounded to `dt`."""
    r = lambda a: np.asarray(a, np.float64).astype(dt)
    w = {n: a.astype(dt).astype(np.float64) for n, a in p.items()}
    x = r(x).astype(np.float64)
    c1 = r(conv_ref_f64(x, w['w1'], w['b1'], (1, 1, 1, 1)))
    a1 = r(np.maximum(c1.astype(np.float64), 0))
    m1 = r(a1.astype(np.float64).reshape(1, 4, 4, 2, 4, 2).max(axis=(3, 5)))
    c2 = r(conv_ref_f64(m1.astype(np.float64), w['w2'], w['b2'], (1, 1, 1, 1)))
    s = r(m1.astype(np.float64) + c2.astype(np.float64))
    flat = s.reshape(1, 64)
    h = r(flat.astype(np.float64) @ w['w3'])
    h = r(h.astype(np.float64) + w['b3'])
    h = r(np.maximum(h.astype(np.float64), 0))
    z = r(h.astype(np.float64) @ w['w4'] + w['b4'])
    e = np.exp(z.astype(np.float64) - z.astype(np.float64).max(axis=1, keepdims=True))
    return r(e / e.sum(axis=1, keepdims=True)), s


def conv_ref_f64(x, w, b, pads):
    n, c, hh, ww = x.shape
    m, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    y = np.zeros((n, m, hh + pads[0] + pads[2] - kh + 1, ww + pads[1] + pads[3] - kw + 1))
    for ky in range(kh):
        for kx in range(kw):
            y += np.einsum('nchw,mc->nmhw', xp[:, :, ky:ky + y.shape[2], kx:kx + y.shape[3]],
                           w[:, :, ky, kx])
    return y + b.reshape(1, -1, 1, 1)


convnet_params = {'w1': f32(4, 3, 3, 3) * 0.5, 'b1': f32(4) * 0.1, 'w2': f32(4, 4, 3, 3) * 0.3,
                  'b2': f32(4) * 0.1, 'w3': f32(64, 16) * 0.1, 'b3': f32(16) * 0.1,
                  'w4': f32(16, 10) * 0.15, 'b4': f32(10) * 0.1}
convnet_x = f32(1, 3, 8, 8)
convnet_nodes = [
    helper.make_node('Conv', ['x', 'w1', 'b1'], ['c1'], name='conv1', pads=[1, 1, 1, 1]),
    helper.make_node('Relu', ['c1'], ['a1'], name='relu1'),
    helper.make_node('MaxPool', ['a1'], ['m1'], name='pool1', kernel_shape=[2, 2], strides=[2, 2]),
    helper.make_node('Conv', ['m1', 'w2', 'b2'], ['c2'], name='conv2', pads=[1, 1, 1, 1]),
    helper.make_node('Add', ['m1', 'c2'], ['s'], name='residual'),
    helper.make_node('Reshape', ['s', 'flat_shape'], ['flat'], name='flatten'),
    helper.make_node('MatMul', ['flat', 'w3'], ['h0'], name='fc1'),
    helper.make_node('Add', ['h0', 'b3'], ['h1'], name='fc1_bias'),
    helper.make_node('Relu', ['h1'], ['h'], name='relu2'),
    helper.make_node('Gemm', ['h', 'w4', 'b4'], ['z'], name='fc2'),
    helper.make_node('Softmax', ['z'], ['y'], name='softmax', axis=1)]
convnet_inits = sorted(convnet_params.items()) + [('flat_shape', np.array([1, 64], np.int64))]
y32, s32 = small_convnet_ref(convnet_x, convnet_params, np.float32)
save('half_compute_convnet_float32', convnet_nodes, [('x', convnet_x)], [('y', y32), ('s', s32)],
     convnet_inits)
y16, s16 = small_convnet_ref(convnet_x, convnet_params, np.float16)
for keep_io in (False, True):
    io_type = np.float32 if keep_io else np.float16
    save('half_compute_convnet_float16' + ('_keep_io_types' if keep_io else ''),
         *to_float16(convnet_nodes, [('x', convnet_x)],
                     [('y', y16.astype(io_type)), ('s', s16.astype(io_type))], convnet_inits,
                     keep_io))


# Control flow (If, Loop, Scan): what the backend cases (test_if, test_loop11, test_scan_sum,
# test_scan9_sum) miss. Subgraph value infos leave shapes out: the engine takes them from the
# node's inputs.
def body_graph(name, nodes, inputs, outputs):
    """inputs/outputs: (name, onnx element type) pairs, shapes left to the node."""
    return helper.make_graph(nodes, name,
                             [helper.make_tensor_value_info(n, t, None) for n, t in inputs],
                             [helper.make_tensor_value_info(n, t, None) for n, t in outputs])


F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL

# Scan (opset 11): one scan input reversed along axis 1, one forward along axis 0, a scan output
# written in reverse along axis 1 and one along axis -1; the body reads `bias`, a graph input.
scan_s0, scan_x1, scan_x2, scan_bias = f32(3, 2), f32(3, 4, 2), f32(4, 3, 1), f32(3, 2)
scan_body = body_graph('scan_body', [
    helper.make_node('Mul', ['x1_t', 'x2_t'], ['prod']),
    helper.make_node('Add', ['s_in', 'prod'], ['sum0']),
    helper.make_node('Add', ['sum0', 'bias'], ['s_out']),
    helper.make_node('Identity', ['s_out'], ['y1_t']),
    helper.make_node('Tanh', ['prod'], ['y2_t'])],
    [('s_in', F), ('x1_t', F), ('x2_t', F)], [('s_out', F), ('y1_t', F), ('y2_t', F)])
state, y1_rows, y2_rows = scan_s0.copy(), [None] * 4, [None] * 4
for t in range(4):
    prod = scan_x1[:, 3 - t, :] * scan_x2[t]
    state = state + prod + scan_bias
    y1_rows[3 - t], y2_rows[t] = state, np.tanh(prod)
save('scan_reverse_and_axes',
     [helper.make_node('Scan', ['s0', 'x1', 'x2'], ['s', 'y1', 'y2'], name='scan',
                       body=scan_body, num_scan_inputs=2, scan_input_axes=[1, 0],
                       scan_input_directions=[1, 0], scan_output_axes=[1, -1],
                       scan_output_directions=[1, 0])],
     [('s0', scan_s0), ('x1', scan_x1), ('x2', scan_x2), ('bias', scan_bias)],
     [('s', state), ('y1', np.stack(y1_rows, axis=1)), ('y2', np.stack(y2_rows, axis=-1))],
     opset=11)

# Scan (opset 8): a batch of 2, the scan input read in reverse.
scan8_s0, scan8_x = f32(2, 3), f32(2, 5, 3)
scan8_body = body_graph('scan8_body', [
    helper.make_node('Mul', ['s_in', 'x_t'], ['s_out']),
    helper.make_node('Neg', ['s_out'], ['y_t'])],
    [('s_in', F), ('x_t', F)], [('s_out', F), ('y_t', F)])
scan8_state, scan8_rows = scan8_s0.copy(), []
for t in range(5):
    scan8_state = scan8_state * scan8_x[:, 4 - t]
    scan8_rows.append(-scan8_state)
save('scan8_batched_reverse',
     [helper.make_node('Scan', ['', 's0', 'x'], ['s', 'y'], name='scan8', body=scan8_body,
                       num_scan_inputs=1, directions=[1])],
     [('s0', scan8_s0), ('x', scan8_x)], [('s', scan8_state), ('y', np.stack(scan8_rows, 1))],
     opset=8)

# If: the condition at run time, both branches reading outer-scope values (an initializer and a
# graph input); test data for both branches.
if_x, if_y, if_w = f32(2, 3), f32(2, 3), f32(2, 3)
if_then = body_graph('then', [helper.make_node('Add', ['x', 'w'], ['then_out'])], [],
                     [('then_out', F)])
if_else = body_graph('else', [helper.make_node('Mul', ['x', 'y'], ['else_out'])], [],
                     [('else_out', F)])
save('if_branches_read_outer_scope',
     [helper.make_node('If', ['c'], ['z'], name='if', then_branch=if_then, else_branch=if_else)],
     [('c', np.array(True)), ('x', if_x), ('y', if_y)], [('z', if_x + if_w)], [('w', if_w)],
     extra_sets=[([np.array(False), if_x, if_y], [if_x * if_y])])

# A Scan inside an If branch (a running sum of x's rows), the other branch a Neg: nesting, and
# the outer graph's x read two scopes down.
nest_x = f32(4, 3)
nest_scan_body = body_graph('nest_scan_body', [
    helper.make_node('Add', ['acc_in', 'row'], ['acc_out']),
    helper.make_node('Identity', ['acc_out'], ['row_out'])],
    [('acc_in', F), ('row', F)], [('acc_out', F), ('row_out', F)])
nest_then = body_graph('nest_then', [
    helper.make_node('Scan', ['zeros', 'x'], ['total', 'running'], name='inner_scan',
                     body=nest_scan_body, num_scan_inputs=1)], [], [('running', F)])
nest_else = body_graph('nest_else', [helper.make_node('Neg', ['x'], ['negated'])], [],
                       [('negated', F)])
save('if_with_nested_scan',
     [helper.make_node('If', ['c'], ['z'], name='if_nested', then_branch=nest_then,
                       else_branch=nest_else)],
     [('c', np.array(True)), ('x', nest_x)], [('z', np.cumsum(nest_x, axis=0))],
     [('zeros', np.zeros(3, np.float32))], extra_sets=[([np.array(False), nest_x], [-nest_x])])

# Loop with a constant trip count (an initializer), no condition, a loop-carried state and a
# scan output; the body reads the outer W and its iteration number.
loop_h0, loop_w = f32(2, 3), f32(3, 3) * 0.5
loop_body = body_graph('loop_body', [
    helper.make_node('MatMul', ['h_in', 'W'], ['hw']),
    helper.make_node('Cast', ['i'], ['i_float'], to=TensorProto.FLOAT),
    helper.make_node('Add', ['hw', 'i_float'], ['pre']),
    helper.make_node('Tanh', ['pre'], ['h_out']),
    helper.make_node('ReduceSum', ['h_out'], ['row_sum'], axes=[1], keepdims=0),
    helper.make_node('Identity', ['cond_in'], ['cond_out'])],
    [('i', I64), ('cond_in', B), ('h_in', F)], [('cond_out', B), ('h_out', F), ('row_sum', F)])
loop_h, loop_rows = loop_h0.copy(), []
for i in range(5):
    loop_h = np.tanh(loop_h @ loop_w + np.float32(i)).astype(np.float32)
    loop_rows.append(loop_h.sum(axis=1))
save('loop_constant_trip_count',
     [helper.make_node('Loop', ['M', '', 'h0'], ['h', 'sums'], name='loop', body=loop_body)],
     [('h0', loop_h0)], [('h', loop_h), ('sums', np.stack(loop_rows))],
     [('M', np.array(5, np.int64)), ('W', loop_w)], opset=11)

# Loop with a run-time trip count and a condition the body computes (stop once the sum passes
# `limit`): loop-carried values only, so the shapes stay static; three runs, ending on M, on
# the condition and at once (M = 0).
dyn_x = np.abs(f32(4)) + 0.5
dyn_body = body_graph('dyn_body', [
    helper.make_node('Add', ['acc_in', 'x'], ['acc_out']),
    helper.make_node('ReduceSum', ['acc_out'], ['total'], keepdims=0),
    helper.make_node('Less', ['total', 'limit'], ['cond_out'])],
    [('i', I64), ('cond_in', B), ('acc_in', F)], [('cond_out', B), ('acc_out', F)])


def dyn_loop_ref(m, limit):
    acc = np.zeros(4, np.float32)
    cond = True
    for _ in range(m):
        if not cond:
            break
        acc = acc + dyn_x
        cond = acc.sum() < limit
    return acc


dyn_sets = [(np.array(m, np.int64), np.array(limit, np.float32)) for m, limit in
            ((3, 1e6), (50, 20.0), (0, 1.0))]
save('loop_run_time_trip_count_and_condition',
     [helper.make_node('Loop', ['M', 'start', 'acc0'], ['acc'], name='dyn_loop', body=dyn_body)],
     [('M', dyn_sets[0][0]), ('limit', dyn_sets[0][1])],
     [('acc', dyn_loop_ref(3, 1e6))],
     [('start', np.array(True)), ('acc0', np.zeros(4, np.float32)), ('x', dyn_x)], opset=11,
     extra_sets=[([m, limit], [dyn_loop_ref(int(m), float(limit))]) for m, limit in dyn_sets[1:]])


# Sequences and optionals (resolved when the program compiles): what the backend cases
# (test_sequence_insert_*, test_sequence_map_*, test_optional_*) miss. A list is a sequence
# (SequenceProto), Optional(v) an optional (OptionalProto, v None for an empty one); the engine
# takes and gives them as their tensors ("x[0]", "x[1]", ...).
class Optional:
    def __init__(self, value, elem_type=TensorProto.FLOAT):
        self.value, self.elem_type = value, elem_type


def value_info(name, a):
    if isinstance(a, list):
        return helper.make_tensor_sequence_value_info(name, onnx_type(a[0]), None)
    if isinstance(a, Optional):
        inner = (helper.make_sequence_type_proto(helper.make_tensor_type_proto(a.elem_type, None))
                 if isinstance(a.value, list) else helper.make_tensor_type_proto(a.elem_type, None))
        return helper.make_value_info(name, helper.make_optional_type_proto(inner))
    return helper.make_tensor_value_info(name, onnx_type(a), a.shape)


def value_proto(name, a):
    if isinstance(a, list):
        return numpy_helper.from_list([np.asarray(t) for t in a], name)
    if isinstance(a, Optional):
        return numpy_helper.from_optional(a.value, name)
    return numpy_helper.from_array(np.asarray(a), name)


def save_values(name, nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, name, [value_info(n, a) for n, a in inputs],
                              [value_info(n, a) for n, a in outputs],
                              [numpy_helper.from_array(np.asarray(a), n) for n, a in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', opset)])
    model.ir_version = 8
    d = os.path.join(OUT, name, 'test_data_set_0')
    os.makedirs(d, exist_ok=True)
    onnx.save(model, os.path.join(OUT, name, 'model.onnx'))
    for kind, items in (('input', inputs), ('output', outputs)):
        for i, (n, a) in enumerate(items):
            with open(os.path.join(d, f'{kind}_{i}.pb'), 'wb') as f:
                f.write(value_proto(n, a).SerializeToString())


def i64(v):
    return np.array(v, np.int64)


# Insert at -1 (before the last, as Python's list.insert), erase the last (no position) and at
# -3, SequenceAt at -2, SequenceLength; a sequence input of three shapes, a sequence output.
seq_x, seq_t = [f32(2), f32(3, 1), f32(4)], f32(5)
seq_inserted = seq_x[:2] + [seq_t] + seq_x[2:]
seq_erased = seq_inserted[:-1]
seq_erased.pop(-3)
save_values('sequence_insert_erase_negative_positions', [
    helper.make_node('SequenceInsert', ['x', 't', 'minus1'], ['s1']),
    helper.make_node('SequenceErase', ['s1'], ['s2']),
    helper.make_node('SequenceErase', ['s2', 'minus3'], ['y']),
    helper.make_node('SequenceAt', ['s1', 'minus2'], ['at']),
    helper.make_node('SequenceLength', ['s1'], ['n'])],
    [('x', seq_x), ('t', seq_t)],
    [('y', seq_erased), ('at', seq_inserted[-2]), ('n', i64(4))],
    [('minus1', i64(-1)), ('minus2', i64(-2)), ('minus3', np.array(-3, np.int32))])

# SplitToSequence: keepdims=0 without split (Squeezed pieces), a 1-D split, a scalar split
# whose last chunk is shorter; ConcatFromSequence with new_axis=1 at a negative axis.
split_x = f32(2, 5, 3)
save_values('split_to_sequence_and_concat_from_sequence', [
    helper.make_node('SplitToSequence', ['x'], ['rows'], axis=1, keepdims=0),
    helper.make_node('ConcatFromSequence', ['rows'], ['stacked'], axis=-1, new_axis=1),
    helper.make_node('SplitToSequence', ['x', 'sizes'], ['parts'], axis=-2),
    helper.make_node('SplitToSequence', ['x', 'chunk'], ['chunks'], axis=1),
    helper.make_node('ConcatFromSequence', ['chunks'], ['joined'], axis=1)],
    [('x', split_x)],
    [('stacked', np.stack([split_x[:, i] for i in range(5)], axis=-1)),
     ('parts', [split_x[:, :1], split_x[:, 1:1], split_x[:, 1:5]]),
     ('chunks', [split_x[:, :2], split_x[:, 2:4], split_x[:, 4:]]), ('joined', split_x)],
    [('sizes', i64([1, 0, 4])), ('chunk', i64(2))], opset=13)

# SequenceMap over a SequenceConstruct and a sequence input, its body reading a graph
# initializer from the outer scope; SequenceEmpty grown by SequenceInsert.
map_a, map_b, map_w = f32(2, 3), f32(4), f32(1)
map_body = body_graph('map_body', [
    helper.make_node('Add', ['a', 'b'], ['sum']),
    helper.make_node('Mul', ['sum', 'w'], ['out'])],
    [('a', F), ('b', F)], [('out', F)])
save_values('sequence_map_with_outer_scope_value', [
    helper.make_node('SequenceConstruct', ['a0', 'a1'], ['seq_a']),
    helper.make_node('SequenceMap', ['seq_a', 'seq_b'], ['mapped'], body=map_body),
    helper.make_node('SequenceEmpty', [], ['empty'], dtype=TensorProto.FLOAT),
    helper.make_node('SequenceInsert', ['empty', 'a1'], ['one']),
    helper.make_node('SequenceInsert', ['one', 'a0', 'zero'], ['two'])],
    [('a0', map_a), ('a1', map_a * 2), ('seq_b', [map_b[:3], map_b[1:]])],
    [('mapped', [(map_a + map_b[:3]) * map_w, (map_a * 2 + map_b[1:]) * map_w]),
     ('two', [map_a, map_a * 2])],
    [('w', map_w), ('zero', i64(0))])

# Optional of a tensor and an empty one: OptionalHasElement folds to a constant,
# OptionalGetElement is the tensor; an optional sequence input and output.
opt_x, opt_seq = f32(3, 2), [f32(2), f32(1)]
save_values('optional_tensor_and_empty', [
    helper.make_node('Optional', ['x'], ['ox']),
    helper.make_node('Optional', [], ['none'], type=helper.make_tensor_type_proto(F, None)),
    helper.make_node('OptionalHasElement', ['ox'], ['has_x']),
    helper.make_node('OptionalHasElement', ['none'], ['has_none']),
    helper.make_node('OptionalGetElement', ['ox'], ['got']),
    helper.make_node('Relu', ['got'], ['relu']),
    helper.make_node('OptionalGetElement', ['oseq'], ['seq']),
    helper.make_node('Identity', ['oseq'], ['oseq_out'])],
    [('x', opt_x), ('oseq', Optional(opt_seq))],
    [('has_x', np.array(True)), ('has_none', np.array(False)), ('relu', np.maximum(opt_x, 0)),
     ('seq', opt_seq), ('oseq_out', Optional(opt_seq))], opset=16)


# A Loop carrying a sequence is unrolled when the program compiles (M a constant, the iteration
# number a constant in each copy of the body): a sequence grown by SequenceInsert at the
# iteration number, a tensor accumulator, a scan output; a second Loop whose body's condition
# output is a constant false runs once whatever M says.
loop_seq_x = f32(4, 3)
loop_seq_body = body_graph('loop_seq_body', [
    helper.make_node('Identity', ['cond_in'], ['cond_out']),
    helper.make_node('Gather', ['x', 'i'], ['row'], axis=0),
    helper.make_node('SequenceInsert', ['seq_in', 'row', 'i'], ['seq_out']),
    helper.make_node('Add', ['acc_in', 'row'], ['acc_out']),
    helper.make_node('Mul', ['acc_out', 'two'], ['scan_row'])],
    [('i', I64), ('cond_in', B)], [('cond_out', B)])
loop_seq_body.input.append(helper.make_tensor_sequence_value_info('seq_in', F, None))
loop_seq_body.input.append(helper.make_tensor_value_info('acc_in', F, None))
loop_seq_body.output.append(helper.make_tensor_sequence_value_info('seq_out', F, None))
loop_seq_body.output.append(helper.make_tensor_value_info('acc_out', F, None))
loop_seq_body.output.append(helper.make_tensor_value_info('scan_row', F, None))
once_body = body_graph('once_body', [
    helper.make_node('Constant', [], ['cond_out'], value=helper.make_tensor('f', B, [], [False])),
    helper.make_node('SequenceInsert', ['seq_in', 'x'], ['seq_out'])],
    [('i', I64), ('cond_in', B)], [('cond_out', B)])
once_body.input.append(helper.make_tensor_sequence_value_info('seq_in', F, None))
once_body.output.append(helper.make_tensor_sequence_value_info('seq_out', F, None))
loop_acc, loop_scan = np.zeros(3, np.float32), []
for i in range(3):
    loop_acc = loop_acc + loop_seq_x[i]
    loop_scan.append(loop_acc * 2)
save_values('loop_over_sequence_unrolled', [
    helper.make_node('SequenceEmpty', [], ['empty'], dtype=TensorProto.FLOAT),
    helper.make_node('Loop', ['M', '', 'empty', 'acc0'], ['rows', 'acc', 'scan'], body=loop_seq_body),
    helper.make_node('Loop', ['M', 'start', 'empty'], ['once'], body=once_body)],
    [('x', loop_seq_x)],
    [('rows', [loop_seq_x[0], loop_seq_x[1], loop_seq_x[2]]), ('acc', loop_acc),
     ('scan', np.stack(loop_scan)), ('once', [loop_seq_x])],
    [('M', i64(3)), ('acc0', np.zeros(3, np.float32)), ('two', np.array(2, np.float32)),
     ('start', np.array(True))], opset=13)


with open(STAMP, 'w') as stamp:
    stamp.write('generated\n')
