"""A small numpy interpreter for the ONNX graphs of the test model packages (QDQ int8 core
graphs and float pre/postambles), with ONNX semantics, used as the reference in tests.

API (import with tests/data on sys.path, run with /usr/bin/python3):

    run_reference(onnx_path: str, inputs: list[np.ndarray]) -> list[np.ndarray]
        Runs the graph once; `inputs` in graph-input order (initializers excluded), each with the
        graph's dtype and exact shape; returns the graph outputs in order (int8 for the core
        graphs' outputs, float32 for float graphs).

    run_package_reference(package_dir: str, inputs: list[np.ndarray]) -> list[np.ndarray]
        Runs a package's core graph over a whole batch: `inputs` are the padded int8 device
        tensors of manifest shape (batch N); each batch item goes through core.onnx (batch 1)
        and the outputs are stacked back to the manifest's output shapes.

    OPS: dict[str, callable] -- the supported op types.

Supported ops: DequantizeLinear, QuantizeLinear (int8/uint8, per-tensor and per-axis), Conv,
Gemm, MatMul, Add, Sub, Mul, Div, Relu, Clip, Sigmoid, Softmax, GlobalAveragePool,
AveragePool, MaxPool, Flatten, Reshape, Transpose, Pad (constant), Concat, Identity.
Float arithmetic is done in float64 and rounded to float32 at every op output, as a float32
ONNX backend would within rounding; QuantizeLinear rounds half to even and saturates.
"""

import json
import os

import numpy as np
import onnx
from onnx import numpy_helper


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _f32(x):
    return np.asarray(x, dtype=np.float64).astype(np.float32)


def _axis_shape(x, axis, values):
    values = np.asarray(values)
    if values.ndim == 0 or values.size == 1:
        return values.reshape(())
    shape = [1] * x.ndim
    shape[axis] = values.size
    return values.reshape(shape)


def op_dequantize_linear(node, x, scale, zero_point=None):
    axis = _attrs(node).get("axis", 1)
    if axis < 0:
        axis += x.ndim
    zp = np.zeros((), np.int32) if zero_point is None else zero_point.astype(np.int32)
    scale = _axis_shape(x, axis, scale.astype(np.float32))
    zp = _axis_shape(x, axis, zp)
    return [((x.astype(np.int32) - zp).astype(np.float32) * scale).astype(np.float32)]


def op_quantize_linear(node, x, scale, zero_point=None):
    axis = _attrs(node).get("axis", 1)
    if axis < 0:
        axis += x.ndim
    dtype = np.uint8 if zero_point is None else zero_point.dtype
    zp = np.zeros((), np.int32) if zero_point is None else zero_point.astype(np.int32)
    info = np.iinfo(dtype)
    scale = _axis_shape(x, axis, scale.astype(np.float32))
    zp = _axis_shape(x, axis, zp)
    q = np.rint(x.astype(np.float32) / scale).astype(np.float64) + zp
    return [np.clip(q, info.min, info.max).astype(dtype)]


def op_conv(node, x, w, b=None):
    a = _attrs(node)
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise NotImplementedError("Conv auto_pad")
    group = a.get("group", 1)
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    sh, sw = a.get("strides", [1, 1])
    dh, dw = a.get("dilations", [1, 1])
    pt, pl, pb, pr = a.get("pads", [0, 0, 0, 0])
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, m, oh, ow), np.float64)
    mg = m // group
    w64 = w.astype(np.float64)
    for g in range(group):
        xs = xp[:, g * cg:(g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                           j * dw:j * dw + sw * (ow - 1) + 1:sw]
                out[:, g * mg:(g + 1) * mg] += np.einsum(
                    "nchw,mc->nmhw", patch, w64[g * mg:(g + 1) * mg, :, i, j])
    if b is not None:
        out += b.astype(np.float64).reshape(1, -1, 1, 1)
    return [_f32(out)]


def op_gemm(node, a_in, b_in, c_in=None):
    a = _attrs(node)
    A = a_in.astype(np.float64)
    B = b_in.astype(np.float64)
    if a.get("transA", 0):
        A = A.T
    if a.get("transB", 0):
        B = B.T
    y = a.get("alpha", 1.0) * (A @ B)
    if c_in is not None:
        y = y + a.get("beta", 1.0) * c_in.astype(np.float64)
    return [_f32(y)]


def op_matmul(node, a, b):
    return [_f32(np.matmul(a.astype(np.float64), b.astype(np.float64)))]


def _binary(fn):
    def op(node, a, b):
        return [_f32(fn(a.astype(np.float64), b.astype(np.float64)))]
    return op


def op_relu(node, x):
    return [np.maximum(x, 0).astype(x.dtype)]


def op_clip(node, x, lo=None, hi=None):
    a = _attrs(node)
    lo = a.get("min", -np.inf) if lo is None else lo
    hi = a.get("max", np.inf) if hi is None else hi
    return [np.clip(x, lo, hi).astype(x.dtype)]


def op_sigmoid(node, x):
    return [_f32(1.0 / (1.0 + np.exp(-x.astype(np.float64))))]


def op_softmax(node, x):
    axis = _attrs(node).get("axis", -1)
    x64 = x.astype(np.float64)
    e = np.exp(x64 - x64.max(axis=axis, keepdims=True))
    return [_f32(e / e.sum(axis=axis, keepdims=True))]


def op_global_average_pool(node, x):
    axes = tuple(range(2, x.ndim))
    return [_f32(x.astype(np.float64).mean(axis=axes, keepdims=True))]


def _pool(node, x, reduce):
    a = _attrs(node)
    kh, kw = a["kernel_shape"]
    sh, sw = a.get("strides", [1, 1])
    pt, pl, pb, pr = a.get("pads", [0, 0, 0, 0])
    fill = -np.inf if reduce == "max" else np.nan
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
    n, c, h, w = xp.shape
    oh = (h - kh) // sh + 1
    ow = (w - kw) // sw + 1
    windows = np.stack([xp[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
                        for i in range(kh) for j in range(kw)], axis=0)
    if reduce == "max":
        return [_f32(windows.max(axis=0))]
    if a.get("count_include_pad", 0):
        return [_f32(np.nan_to_num(windows, nan=0.0).mean(axis=0))]
    return [_f32(np.nanmean(windows, axis=0))]


def op_flatten(node, x):
    axis = _attrs(node).get("axis", 1)
    lead = int(np.prod(x.shape[:axis])) if axis else 1
    return [x.reshape(lead, -1)]


def op_reshape(node, x, shape):
    shape = [int(s) for s in shape]
    if not _attrs(node).get("allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [x.reshape(shape)]


def op_transpose(node, x):
    perm = _attrs(node).get("perm", list(range(x.ndim))[::-1])
    return [np.ascontiguousarray(np.transpose(x, perm))]


def op_pad(node, x, pads, value=None, axes=None):
    mode = _attrs(node).get("mode", b"constant")
    if mode not in (b"constant", "constant"):
        raise NotImplementedError("Pad mode %r" % mode)
    pads = [int(p) for p in pads]
    r = x.ndim
    widths = [(pads[i], pads[i + r]) for i in range(r)]
    fill = 0 if value is None or value.size == 0 else value.reshape(()).item()
    return [np.pad(x, widths, constant_values=fill).astype(x.dtype)]


def op_concat(node, *xs):
    return [np.concatenate(xs, axis=_attrs(node)["axis"])]


def op_identity(node, x):
    return [x]


OPS = {
    "DequantizeLinear": op_dequantize_linear,
    "QuantizeLinear": op_quantize_linear,
    "Conv": op_conv,
    "Gemm": op_gemm,
    "MatMul": op_matmul,
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": _binary(np.divide),
    "Relu": op_relu,
    "Clip": op_clip,
    "Sigmoid": op_sigmoid,
    "Softmax": op_softmax,
    "GlobalAveragePool": op_global_average_pool,
    "AveragePool": lambda node, x: _pool(node, x, "avg"),
    "MaxPool": lambda node, x: _pool(node, x, "max"),
    "Flatten": op_flatten,
    "Reshape": op_reshape,
    "Transpose": op_transpose,
    "Pad": op_pad,
    "Concat": op_concat,
    "Identity": op_identity,
}


def graph_inputs(model):
    initializers = {i.name for i in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def run_model(model, inputs, keep=None):
    """Runs a loaded ModelProto; with `keep` (a dict) every intermediate value is stored in it."""
    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    real_inputs = graph_inputs(model)
    if len(inputs) != len(real_inputs):
        raise ValueError("graph has %d inputs, got %d" % (len(real_inputs), len(inputs)))
    for info, array in zip(real_inputs, inputs):
        values[info.name] = np.asarray(array)
    for node in model.graph.node:
        if node.op_type == "Constant":
            values[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
            continue
        if node.op_type not in OPS:
            raise NotImplementedError("op %s (node %s)" % (node.op_type, node.name))
        args = [values[name] if name else None for name in node.input]
        while args and args[-1] is None:
            args.pop()
        outputs = OPS[node.op_type](node, *args)
        for name, value in zip(node.output, outputs):
            values[name] = value
    if keep is not None:
        keep.update(values)
    return [values[o.name] for o in model.graph.output]


def run_reference(onnx_path, inputs):
    return run_model(onnx.load(onnx_path), inputs)


def run_package_reference(package_dir, inputs):
    with open(os.path.join(package_dir, "model.json")) as f:
        model_json = json.load(f)
    model = onnx.load(os.path.join(package_dir, model_json["core_graph"]))
    batch = model_json.get("batch", 1)
    per_item = []
    for b in range(batch):
        per_item.append(run_model(model, [x[b:b + 1] for x in inputs]))
    return [np.concatenate([item[o] for item in per_item], axis=0)
            for o in range(len(per_item[0]))]
