#!/usr/bin/python3
"""Writes seeded engine test cases in the ONNX backend-test layout (model.onnx +
test_data_set_0/{input,output}_N.pb), expected outputs computed with numpy."""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = sys.argv[1]
rng = np.random.default_rng(1234)
NP2ONNX = {np.float32: TensorProto.FLOAT, np.int8: TensorProto.INT8, np.uint8: TensorProto.UINT8,
           np.int64: TensorProto.INT64, np.int32: TensorProto.INT32}


def onnx_type(a):
    return NP2ONNX[a.dtype.type]


def save(name, nodes, inputs, outputs, initializers=(), opset=13):
    """inputs/outputs: list of (name, array)."""
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info(n, onnx_type(a), a.shape) for n, a in inputs],
        [helper.make_tensor_value_info(n, onnx_type(a), a.shape) for n, a in outputs],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in initializers])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', opset)])
    model.ir_version = 7
    d = os.path.join(OUT, name)
    os.makedirs(os.path.join(d, 'test_data_set_0'), exist_ok=True)
    onnx.save(model, os.path.join(d, 'model.onnx'))
    for kind, items in (('input', inputs), ('output', outputs)):
        for i, (n, a) in enumerate(items):
            with open(os.path.join(d, 'test_data_set_0', f'{kind}_{i}.pb'), 'wb') as f:
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

with open(sys.argv[2], 'w') as stamp:
    stamp.write('generated\n')
