#!/usr/bin/python3
"""Generates the test model packages (seeded, deterministic) into --out:

  resnet_tiny       ResNet-style QDQ int8 classifier, input int8 (1,32,32,4) padded from 3
                    channels, output int8 (1,1,1,1024) holding 1000 classes
  resnet_tiny_b4    the same core graph with batch 4 in model.json
  resnet_tiny_post  resnet_tiny + a float softmax postamble (postamble.onnx)
  resnet_tiny_pre   resnet_tiny + a float normalisation preamble (preamble.onnx)
  two_outputs       two outputs of different shapes and scales: a per-pixel NHWC head
                    (1,16,16,8) padded from 6 channels and a 10-class head (1,1,1,16)

Each package also gets reference/input_<i>.bin and reference/output_<i>.bin: a seeded int8
input (padding filled with the zero point) and the outputs of tests/data/qdq_reference.py
for it, raw bytes of the whole padded batch tensors.

Run: /usr/bin/python3 make_test_models.py --out DIR [--stamp FILE]
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qdq_reference  # noqa: E402

OPSET = 13


class QdqBuilder:
    """Builds a QDQ int8 graph while calibrating each activation's scale on float data."""

    def __init__(self, rng, calibration):
        self.rng = rng
        self.nodes = []
        self.initializers = []
        self.count = 0
        # name -> float calibration activations (batch of samples), for scale selection.
        self.calibration = calibration

    def name(self, prefix):
        self.count += 1
        return "%s_%d" % (prefix, self.count)

    def const(self, prefix, array):
        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op, inputs, prefix, **attrs):
        out = self.name(prefix)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def dequantize(self, q_name, scale, zero_point, axis=None):
        s = self.const("scale", np.array(scale, np.float32))
        z = self.const("zp", np.array(zero_point, np.int8 if np.asarray(zero_point).dtype != np.int32 else np.int32))
        attrs = {} if axis is None else {"axis": axis}
        return self.node("DequantizeLinear", [q_name, s, z], "dq", **attrs)

    def quantize(self, f_name, scale, zero_point):
        s = self.const("scale", np.array(scale, np.float32))
        z = self.const("zp", np.array(zero_point, np.int8))
        return self.node("QuantizeLinear", [f_name, s, z], "q")

    def weights(self, shape):
        """He-initialised float weights, quantised per output channel (symmetric int8)."""
        fan_in = int(np.prod(shape[1:]))
        w = self.rng.normal(0, np.sqrt(2.0 / fan_in), size=shape).astype(np.float32)
        w_scale = (np.abs(w.reshape(shape[0], -1)).max(axis=1) / 127.0).astype(np.float32)
        w_q = np.clip(np.rint(w / w_scale.reshape((-1,) + (1,) * (len(shape) - 1))), -127,
                      127).astype(np.int8)
        return w_q, w_scale


def activation_params(values, relu):
    """Per-tensor asymmetric int8 parameters covering the calibration range."""
    lo = 0.0 if relu else float(min(values.min(), 0.0))
    hi = float(max(values.max(), 1e-3))
    scale = np.float32((hi - lo) / 255.0)
    zero_point = int(np.clip(np.rint(-128 - lo / scale), -128, 127))
    return scale, zero_point


class Calibrated:
    """Tracks (graph name, float calibration values) of the current dequantised activation."""

    def __init__(self, builder, model_inputs, calib_inputs):
        self.b = builder
        self.model_inputs = model_inputs
        self.calib_inputs = calib_inputs

    def evaluate(self, output_name, nodes=None):
        graph = helper.make_graph(self.b.nodes, "calib", self.model_inputs,
                                  [helper.make_tensor_value_info(output_name, TensorProto.FLOAT,
                                                                 None)],
                                  initializer=self.b.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        return np.concatenate([qdq_reference.run_model(model, [x])[0] for x in self.calib_inputs])

    def requantize(self, f_name, relu):
        """Q then DQ `f_name` with parameters calibrated on its float values."""
        values = self.evaluate(f_name)
        scale, zp = activation_params(values, relu)
        q = self.b.quantize(f_name, scale, zp)
        return self.b.dequantize(q, scale, zp), q, scale, zp


def conv(cal, x, x_scale, c_in, c_out, k, stride, relu, zero_in_channels=()):
    b = cal.b
    w_q, w_scale = b.weights((c_out, c_in, k, k))
    for c in zero_in_channels:
        w_q[:, c] = 0
    bias = b.rng.normal(0, 0.1, size=c_out).astype(np.float32)
    bias_scale = (np.float32(x_scale) * w_scale).astype(np.float32)
    bias_q = np.rint(bias / bias_scale).astype(np.int32)
    w = b.dequantize(b.const("w", w_q), w_scale, np.zeros(c_out, np.int8), axis=0)
    bq = b.dequantize(b.const("b", bias_q), bias_scale, np.zeros(c_out, np.int32), axis=0)
    y = b.node("Conv", [x, w, bq], "conv", kernel_shape=[k, k], strides=[stride, stride],
               pads=[k // 2] * 4)
    if relu:
        y = b.node("Relu", [y], "relu")
    return cal.requantize(y, relu)


def gemm(cal, x, x_scale, c_in, c_out):
    b = cal.b
    w_q, w_scale = b.weights((c_out, c_in))
    bias = b.rng.normal(0, 0.1, size=c_out).astype(np.float32)
    bias_scale = (np.float32(x_scale) * w_scale).astype(np.float32)
    bias_q = np.rint(bias / bias_scale).astype(np.int32)
    w = b.dequantize(b.const("w", w_q), w_scale, np.zeros(c_out, np.int8), axis=0)
    bq = b.dequantize(b.const("b", bias_q), bias_scale, np.zeros(c_out, np.int32), axis=0)
    return b.node("Gemm", [x, w, bq], "gemm", transB=1)


def random_device_input(rng, shape, unpadded_channels, zero_point):
    """int8 NHWC tensor: random values in the real channels, zero_point in the padding."""
    x = np.full(shape, zero_point, np.int8)
    x[..., :unpadded_channels] = rng.integers(-128, 128, size=shape[:-1] + (unpadded_channels,),
                                              dtype=np.int16).astype(np.int8)
    return x


def pad_output(b, q_name, shape_nhwc, channels, padded_channels, zero_point):
    """Reshape/transpose already done by caller; pads the channel dim with the zero point."""
    pads = b.const("pads", np.array([0, 0, 0, 0, 0, 0, 0, padded_channels - channels], np.int64))
    value = b.const("pad_value", np.array(zero_point, np.int8))
    return b.node("Pad", [q_name, pads, value], "pad", mode="constant")


def finish(b, inputs, outputs, name):
    graph = helper.make_graph(b.nodes, name, inputs, outputs, initializer=b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="axstream make_test_models.py")
    onnx.checker.check_model(model)
    return model


def rename_output(b, current, final):
    """Makes the last node write `final` so the graph output has a readable name."""
    for node in b.nodes:
        for i, out in enumerate(node.output):
            if out == current:
                node.output[i] = final
        for i, inp in enumerate(node.input):
            if inp == current:
                node.input[i] = final
    return final


def image_input(rng, name, shape, in_scale, in_zp):
    """The stem of the image models: the int8 NHWC device input `name` (3 colour channels and a
    padding one) with its builder and calibration set; returns (builder, calibrated, graph inputs,
    the input dequantised and transposed to NCHW)."""
    inputs = [helper.make_tensor_value_info(name, TensorProto.INT8, list(shape))]
    calib = [random_device_input(rng, shape, 3, in_zp) for _ in range(8)]
    b = QdqBuilder(rng, None)
    cal = Calibrated(b, inputs, calib)
    x = b.dequantize(name, in_scale, in_zp)
    x = b.node("Transpose", [x], "to_nchw", perm=[0, 3, 1, 2])
    return b, cal, inputs, x


def build_resnet_tiny(rng):
    in_scale, in_zp = np.float32(0.02), -5
    shape = (1, 32, 32, 4)
    b, cal, inputs, x = image_input(rng, "input", shape, in_scale, in_zp)
    # The 4th (padding) input channel gets zero weights, as the compiler would.
    x1, _, s1, _ = conv(cal, x, in_scale, 4, 8, 3, 1, True, zero_in_channels=(3,))
    x2, _, s2, _ = conv(cal, x1, s1, 8, 16, 3, 2, True)
    x3, _, s3, _ = conv(cal, x2, s2, 16, 16, 3, 1, False)
    added = b.node("Add", [x3, x2], "residual")
    added = b.node("Relu", [added], "relu")
    x4, _, s4, _ = cal.requantize(added, True)
    x5, _, s5, _ = conv(cal, x4, s4, 16, 32, 1, 2, True)
    pooled = b.node("GlobalAveragePool", [x5], "gap")
    x6, _, s6, _ = cal.requantize(pooled, True)
    flat = b.node("Flatten", [x6], "flatten", axis=1)
    logits = gemm(cal, flat, s6, 32, 1000)
    values = cal.evaluate(logits)
    out_scale, out_zp = activation_params(values, False)
    q = b.quantize(logits, out_scale, out_zp)
    q = b.node("Reshape", [q, b.const("shape", np.array([1, 1, 1, 1000], np.int64))], "reshape")
    out = pad_output(b, q, None, 1000, 1024, out_zp)
    out = rename_output(b, out, "logits")
    outputs = [helper.make_tensor_value_info("logits", TensorProto.INT8, [1, 1, 1, 1024])]
    model = finish(b, inputs, outputs, "resnet_tiny")
    manifest_inputs = [dict(name="input", shape=[1, 32, 32, 4], padding=[0, 0, 0, 0, 0, 0, 0, 1],
                            scale=float(in_scale), zero_point=in_zp)]
    manifest_outputs = [dict(name="logits", shape=[1, 1, 1, 1024],
                             padding=[0, 0, 0, 0, 0, 0, 0, 24], scale=float(out_scale),
                             zero_point=out_zp, original_shape=[1, 1000], layout="none")]
    return model, manifest_inputs, manifest_outputs


def build_two_outputs(rng):
    in_scale, in_zp = np.float32(0.025), 3
    shape = (1, 16, 16, 4)
    b, cal, inputs, x = image_input(rng, "image", shape, in_scale, in_zp)
    x1, _, s1, _ = conv(cal, x, in_scale, 4, 8, 3, 1, True, zero_in_channels=(3,))

    # Head A: per-pixel 6 channels, NCHW -> NHWC, channels padded 6 -> 8.
    wa_q, wa_scale = b.weights((6, 8, 1, 1))
    wa = b.dequantize(b.const("w", wa_q), wa_scale, np.zeros(6, np.int8), axis=0)
    head_a = b.node("Conv", [x1, wa], "conv_a", kernel_shape=[1, 1])
    a_scale, a_zp = activation_params(cal.evaluate(head_a), False)
    qa = b.quantize(head_a, a_scale, a_zp)
    qa = b.node("Transpose", [qa], "to_nhwc", perm=[0, 2, 3, 1])
    out_a = rename_output(b, pad_output(b, qa, None, 6, 8, a_zp), "boxes")

    # Head B: pooled 10-class scores, padded 10 -> 16.
    pooled = b.node("GlobalAveragePool", [x1], "gap")
    xp, _, sp, _ = cal.requantize(pooled, True)
    flat = b.node("Flatten", [xp], "flatten", axis=1)
    scores = gemm(cal, flat, sp, 8, 10)
    b_scale, b_zp = activation_params(cal.evaluate(scores), False)
    qb = b.quantize(scores, b_scale, b_zp)
    qb = b.node("Reshape", [qb, b.const("shape", np.array([1, 1, 1, 10], np.int64))], "reshape")
    out_b = rename_output(b, pad_output(b, qb, None, 10, 16, b_zp), "scores")

    outputs = [helper.make_tensor_value_info(out_a, TensorProto.INT8, [1, 16, 16, 8]),
               helper.make_tensor_value_info(out_b, TensorProto.INT8, [1, 1, 1, 16])]
    model = finish(b, inputs, outputs, "two_outputs")
    manifest_inputs = [dict(name="image", shape=[1, 16, 16, 4], padding=[0, 0, 0, 0, 0, 0, 0, 1],
                            scale=float(in_scale), zero_point=in_zp)]
    manifest_outputs = [
        dict(name="boxes", shape=[1, 16, 16, 8], padding=[0, 0, 0, 0, 0, 0, 0, 2],
             scale=float(a_scale), zero_point=a_zp, original_shape=[1, 6, 16, 16], layout="NHWC"),
        dict(name="scores", shape=[1, 1, 1, 16], padding=[0, 0, 0, 0, 0, 0, 0, 6],
             scale=float(b_scale), zero_point=b_zp, original_shape=[1, 10], layout="none"),
    ]
    return model, manifest_inputs, manifest_outputs


def build_softmax_postamble():
    x = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])
    y = helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [1, 1000])
    graph = helper.make_graph([helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)],
                              "postamble", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model


def build_normalise_preamble(mean, std):
    """float NHWC RGB pixels 0..255 -> (pixel / 255 - mean) / std."""
    x = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 32, 32, 3])
    y = helper.make_tensor_value_info("normalised", TensorProto.FLOAT, [1, 32, 32, 3])
    inits = [numpy_helper.from_array(np.array(1 / 255.0, np.float32), "inv255"),
             numpy_helper.from_array(np.array(mean, np.float32), "mean"),
             numpy_helper.from_array(np.array(std, np.float32), "std")]
    nodes = [helper.make_node("Mul", ["pixels", "inv255"], ["scaled"]),
             helper.make_node("Sub", ["scaled", "mean"], ["centred"]),
             helper.make_node("Div", ["centred", "std"], ["normalised"])]
    graph = helper.make_graph(nodes, "preamble", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model


def write_package(out_dir, name, core, manifest_inputs, manifest_outputs, batch=1,
                  preamble=None, postamble=None, input_preprocess=None, rng=None):
    pkg = os.path.join(out_dir, name)
    os.makedirs(os.path.join(pkg, "reference"), exist_ok=True)
    onnx.save(core, os.path.join(pkg, "core.onnx"))
    if preamble is not None:
        onnx.save(preamble, os.path.join(pkg, "preamble.onnx"))
    if postamble is not None:
        onnx.save(postamble, os.path.join(pkg, "postamble.onnx"))
    model_json = {
        "format_version": 1,
        "name": name,
        "core_graph": "core.onnx",
        "batch": batch,
        "input_tensor_layout": "NHWC",
        "preamble_graph": "preamble.onnx" if preamble is not None else None,
        "postamble_graph": "postamble.onnx" if postamble is not None else None,
    }

    def batched(shape):
        return [batch] + list(shape[1:])

    manifest = {
        "manifest_version": 1,
        "model_lib_file": "model.json",
        "quantized_model_file": "core.onnx",
        "input_shapes": [batched(t["shape"]) for t in manifest_inputs],
        "output_shapes": [batched(t["shape"]) for t in manifest_outputs],
        "quantize_params": [[t["scale"], t["zero_point"]] for t in manifest_inputs],
        "dequantize_params": [[t["scale"], t["zero_point"]] for t in manifest_outputs],
        "n_padded_ch_inputs": [t["padding"] for t in manifest_inputs],
        "n_padded_ch_outputs": [t["padding"] for t in manifest_outputs],
        "preprocess_graph": model_json["preamble_graph"],
        "postprocess_graph": model_json["postamble_graph"],
        "input_names": [t["name"] for t in manifest_inputs],
        "output_names": [t["name"] for t in manifest_outputs],
        "input_dtypes": ["int8"] * len(manifest_inputs),
        "output_dtypes": ["int8"] * len(manifest_outputs),
        "output_info": [{"original_shape": batched(t["original_shape"]), "layout": t["layout"]}
                        for t in manifest_outputs],
    }
    if input_preprocess is not None:
        manifest["input_preprocess"] = input_preprocess
    with open(os.path.join(pkg, "model.json"), "w") as f:
        json.dump(model_json, f, indent=2)
        f.write("\n")
    with open(os.path.join(pkg, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")

    inputs = []
    for t in manifest_inputs:
        shape = tuple(batched(t["shape"]))
        channels = shape[-1] - t["padding"][-1] - t["padding"][-2]
        inputs.append(random_device_input(rng, shape, channels, t["zero_point"]))
    outputs = qdq_reference.run_package_reference(pkg, inputs)
    for i, x in enumerate(inputs):
        x.tofile(os.path.join(pkg, "reference", "input_%d.bin" % i))
    for i, y in enumerate(outputs):
        assert y.dtype == np.int8 and list(y.shape) == batched(manifest_outputs[i]["shape"]), \
            (name, y.dtype, y.shape)
        y.tofile(os.path.join(pkg, "reference", "output_%d.bin" % i))
    return pkg


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--stamp")
    args = parser.parse_args()
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)

    rng = np.random.default_rng(20261125)
    resnet, r_in, r_out = build_resnet_tiny(rng)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    preprocess = [{"color_format": "RGB", "pixel_scale": 1 / 255.0, "mean": mean, "std": std}]
    write_package(args.out, "resnet_tiny", resnet, r_in, r_out, input_preprocess=preprocess,
                  rng=np.random.default_rng(1))
    write_package(args.out, "resnet_tiny_b4", resnet, r_in, r_out, batch=4,
                  input_preprocess=preprocess, rng=np.random.default_rng(2))
    write_package(args.out, "resnet_tiny_post", resnet, r_in, r_out,
                  postamble=build_softmax_postamble(), input_preprocess=preprocess,
                  rng=np.random.default_rng(3))
    write_package(args.out, "resnet_tiny_pre", resnet, r_in, r_out,
                  preamble=build_normalise_preamble(mean, std), rng=np.random.default_rng(4))
    two, t_in, t_out = build_two_outputs(rng)
    write_package(args.out, "two_outputs", two, t_in, t_out, input_preprocess=[
        {"color_format": "BGR", "pixel_scale": 1.0, "mean": [104.0, 117.0, 123.0],
         "std": [58.0, 57.0, 57.5]}], rng=np.random.default_rng(5))
    if args.stamp:
        with open(args.stamp, "w") as f:
            f.write("resnet_tiny resnet_tiny_b4 resnet_tiny_post resnet_tiny_pre two_outputs\n")


if __name__ == "__main__":
    main()
