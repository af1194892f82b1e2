#!/usr/bin/python3
"""Writes the seeded FLOAT test models the compiler tests quantise, plus calibration and
held-out images: a small ResNet-style classifier (NCHW, Softmax tail) and a two-output
detector-like model (NHWC input like BlazeFace, Transpose/Reshape/Sigmoid tails; also ending
in NonMaxSuppression), and two small
classifiers with an unquantisable head (Cast+Sqrt on an NHWC input, a Pow gamma on an NCHW one),
and a classifier of PP-LCNetV3-style blocks (constant scale after each conv, hard-swish written out);
the classifier also in float16 (with and without keep_io_types), bfloat16 (keep_io_types) and
float64.

usage: make_float_models.py OUTDIR   -> OUTDIR/{classifier,detector,nms_detector,dynamic,unsupported,control_flow,sequence,
                                        preamble_nhwc,preamble_nchw,hardswish,crnn,
                                        crnn_time_major,classifier_f16,classifier_f16_io,
                                        classifier_bf16_io,classifier_f64}.onnx, OUTDIR/calib/*.png,
                                        OUTDIR/heldout/*.png
"""
import os
import sys

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "python"))
from onnx_graph_builder import GraphBuilder  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from outdir_arg import output_dir  # noqa: E402

OPSET = 13


class Builder(GraphBuilder):
    def __init__(self, seed):
        super().__init__(seed, OPSET, "axstream-tests")

    def conv_bn(self, x, cin, cout, k=3, stride=1, relu=True, group=1):
        fan_in = cin // group * k * k
        w = self.rng.normal(0, np.sqrt(2.0 / fan_in), (cout, cin // group, k, k)).astype(np.float32)
        y = self.node("Conv", [x, self.const(w, "w")], kernel_shape=[k, k], strides=[stride, stride],
                      pads=[k // 2] * 4, group=group)
        bn = [self.rng.uniform(0.6, 1.4, cout), self.rng.normal(0, 0.1, cout),
              self.rng.normal(0, 0.1, cout), self.rng.uniform(0.5, 1.5, cout)]
        y = self.node("BatchNormalization", [y] + [self.const(a.astype(np.float32), "bn") for a in bn])
        return self.node("Relu", [y]) if relu else y

    def classifier_head(self, x, channels, classes=10):
        """Global average pool, flatten, a seeded fully-connected layer and Softmax -> 'probs'."""
        x = self.node("GlobalAveragePool", [x])
        x = self.node("Flatten", [x], axis=1)
        w = self.rng.normal(0, np.sqrt(1.0 / channels), (classes, channels)).astype(np.float32)
        b = self.rng.normal(0, 0.1, classes).astype(np.float32)
        logits = self.node("Gemm", [x, self.const(w, "fc_w"), self.const(b, "fc_b")], transB=1)
        self.nodes.append(helper.make_node("Softmax", [logits], ["probs"], name="softmax", axis=-1))


def classifier():
    b = Builder(1234)
    x = b.conv_bn("image", 3, 16, stride=2)
    x = b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    for _ in range(2):  # identity residual blocks
        y = b.conv_bn(x, 16, 16)
        y = b.conv_bn(y, 16, 16, relu=False)
        x = b.node("Relu", [b.node("Add", [x, y])])
    y = b.conv_bn(x, 16, 32, stride=2)  # projection block
    y = b.conv_bn(y, 32, 32, relu=False)
    s = b.conv_bn(x, 16, 32, k=1, stride=2, relu=False)
    x = b.node("Relu", [b.node("Add", [s, y])])
    b.classifier_head(x, 32)
    return b.model([helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 64, 64])],
                   [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])], "classifier")


def dynamic_classifier():
    """The classifier with a dynamic batch and spatial size, as PaddleOCR exports them."""
    m = classifier()
    dims = m.graph.input[0].type.tensor_type.shape.dim
    for d, name in ((dims[0], "N"), (dims[2], "H"), (dims[3], "W")):
        d.ClearField("dim_value")
        d.dim_param = name
    m.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    onnx.checker.check_model(m)
    return m


def pooled_net(b, last, name, extra_opsets=()):
    """b's nodes ending in a global average pool of `last` (8 channels) as the model `name`:
    input image 1x3x32x32, output pooled 1x8x1x1."""
    b.nodes.append(helper.make_node("GlobalAveragePool", [last], ["pooled"], name="pool"))
    graph = helper.make_graph(b.nodes, name,
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [1, 8, 1, 1])],
                              b.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                *[helper.make_opsetid(d, v) for d, v in extra_opsets]])
    m.ir_version = 7
    return m


def control_flow():
    """A conv net whose second conv sits in an If branch (its weights inside the subgraph)."""
    b = Builder(98)
    x = b.conv_bn("image", 3, 8, stride=2)
    w = b.rng.normal(0, 0.2, (8, 8, 3, 3)).astype(np.float32)
    then_branch = helper.make_graph(
        [helper.make_node("Conv", [x, "branch_w"], ["then_out"], pads=[1, 1, 1, 1])], "then",
        [], [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "branch_w")])
    else_branch = helper.make_graph(
        [helper.make_node("Relu", [x], ["else_out"])], "else",
        [], [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, None)])
    b.inits.append(numpy_helper.from_array(np.array(True), "use_conv"))
    b.nodes.append(helper.make_node("If", ["use_conv"], ["branched"], name="branch_node",
                                    then_branch=then_branch, else_branch=else_branch))
    return pooled_net(b, "branched", "control_flow")


def unsupported():
    """A conv net with an op from a private domain in the middle: nothing can run it."""
    b = Builder(99)
    x = b.conv_bn("image", 3, 8, stride=2)
    b.nodes.append(helper.make_node("Frobnicate", [x], ["frobnicated"], name="frobnicate_node",
                                    domain="axstream.test"))
    y = b.conv_bn("frobnicated", 8, 8)
    return pooled_net(b, y, "unsupported", extra_opsets=[("axstream.test", 1)])


def crnn(time_major_output):
    """A CRNN text recogniser, 1x3x32x64: two Conv+Relu (the second a 16-row kernel, height 1),
    the 32 columns as a sequence, a bidirectional LSTM (hidden 24), class scores per column and
    their Softmax — (1, 32, 11) batch-first, or (32, 1, 11) time-major as the LSTM writes it."""
    rng = np.random.default_rng(21)

    def t(name, a):
        return numpy_helper.from_array(a if a.dtype == np.int64 else a.astype(np.float32), name)

    inits = [t("c1w", rng.standard_normal((8, 3, 3, 3)) * 0.4), t("c1b", np.zeros(8)),
             t("c2w", rng.standard_normal((16, 8, 16, 3)) * 0.05), t("c2b", np.zeros(16)),
             t("cols_shape", np.array([1, 16, 32], np.int64)),
             t("w", rng.standard_normal((2, 96, 16)) * 0.3),
             t("r", rng.standard_normal((2, 96, 24)) * 0.3), t("b", rng.standard_normal((2, 192)) * 0.1),
             t("joined_shape", np.array([32, 1, 48] if time_major_output else [1, 32, 48], np.int64)),
             t("classes", rng.standard_normal((48, 11)) * 0.5)]
    nodes = [helper.make_node("Conv", ["image", "c1w", "c1b"], ["c1"], strides=[2, 2],
                              pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "c2w", "c2b"], ["c2"], pads=[0, 1, 0, 1], name="conv2"),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("Reshape", ["r2", "cols_shape"], ["cols"], name="columns"),
             helper.make_node("Transpose", ["cols"], ["seq"], perm=[2, 0, 1], name="to_time_major"),
             helper.make_node("LSTM", ["seq", "w", "r", "b"], ["y"], hidden_size=24,
                              direction="bidirectional", name="lstm"),
             helper.make_node("Transpose", ["y"], ["y_t"],
                              perm=[0, 2, 1, 3] if time_major_output else [2, 0, 1, 3],
                              name="directions_last"),
             helper.make_node("Reshape", ["y_t", "joined_shape"], ["joined"], name="join"),
             helper.make_node("MatMul", ["joined", "classes"], ["logits"], name="classify"),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=-1, name="softmax")]
    out_shape = [32, 1, 11] if time_major_output else [1, 32, 11]
    graph = helper.make_graph(
        nodes, "crnn", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 64])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, out_shape)], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 7
    return m


def detector():
    b = Builder(4321)
    x = b.node("Transpose", ["input"], perm=[0, 3, 1, 2])  # NHWC model input, like BlazeFace
    x = b.conv_bn(x, 3, 16, stride=2)                       # 48x48
    x = b.conv_bn(x, 16, 16, k=3, group=16)                 # depthwise
    x = b.conv_bn(x, 16, 24, k=1)
    x = b.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])  # 24x24
    a = b.conv_bn(x, 24, 24)
    c = b.conv_bn(x, 24, 8, k=1)
    x = b.node("Concat", [a, c], axis=1)                    # 32 channels
    x = b.conv_bn(x, 32, 32, stride=2)                      # 12x12
    y = b.conv_bn(x, 32, 32, relu=False)
    x = b.node("Relu", [b.node("Add", [x, y])])
    heads = []
    for channels, last, out in ((2, 1, "scores"), (8, 4, "boxes")):
        w = b.rng.normal(0, np.sqrt(1.0 / 32), (channels, 32, 1, 1)).astype(np.float32)
        h = b.node("Conv", [x, b.const(w, "head_w"), b.const(b.rng.normal(0, 0.2, channels).astype(np.float32))],
                   kernel_shape=[1, 1])
        h = b.node("Transpose", [h], perm=[0, 2, 3, 1])
        shape = b.const(np.array([1, 288, last], dtype=np.int64), "shape")
        if out == "scores":
            h = b.node("Reshape", [h, shape])
            b.nodes.append(helper.make_node("Sigmoid", [h], [out], name="sigmoid"))
        else:
            b.nodes.append(helper.make_node("Reshape", [h, shape], [out], name="reshape_boxes"))
        heads.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 288, last]))
    return b.model([helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 96, 96, 3])], heads,
                   "detector")


def hardswish_model():
    """PP-LCNetV3-style blocks: conv + BatchNorm, a learnable scale (Mul by one constant), then
    hard-swish written out as PaddlePaddle exports it: x * Clip(x + 3, 0, 6) / 6."""
    b = Builder(8642)
    x = "image"
    for cin, cout, stride in ((3, 8, 2), (8, 16, 2), (16, 16, 1)):
        x = b.conv_bn(x, cin, cout, stride=stride, relu=False)
        x = b.node("Mul", [b.const(np.array([b.rng.uniform(0.5, 2.0)], np.float32), "lab"), x])
        clipped = b.node("Clip", [b.node("Add", [x, b.const(np.float32(3.0), "three")]),
                                  b.const(np.float32(0.0), "zero"), b.const(np.float32(6.0), "six")])
        x = b.node("Div", [b.node("Mul", [x, clipped], prefix="hardswish_mul"),
                           b.const(np.float32(6.0), "six")])
    b.classifier_head(x, 16)
    return b.model([helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
                   [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])], "hardswish")


def preamble_model(nchw):
    """A small classifier whose head the int8 core has no kernel for: Cast + Sqrt (NHWC input,
    then the Transpose to NCHW that the NHWC device input absorbs) or a Pow gamma (NCHW input).
    axcompile splits the head off into preamble.onnx."""
    b = Builder(2468 if nchw else 1357)
    if nchw:
        x = b.node("Pow", ["image", b.const(np.array(0.45, np.float32), "gamma")])
    else:
        x = b.node("Cast", ["image"], to=TensorProto.FLOAT)
        x = b.node("Sqrt", [x])
        x = b.node("Transpose", [x], perm=[0, 3, 1, 2])
    x = b.conv_bn(x, 3, 8, stride=2)    # 16x16
    x = b.conv_bn(x, 8, 16, stride=2)   # 8x8
    x = b.conv_bn(x, 16, 16)
    b.classifier_head(x, 16)
    shape = [1, 3, 32, 32] if nchw else [1, 32, 32, 3]
    return b.model([helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
                   [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])],
                   "preamble_nchw" if nchw else "preamble_nhwc")


def bfloat16_bits(values):
    """float32 -> bfloat16 bit patterns (uint16), rounded to nearest even (numpy has no bfloat16)."""
    bits = np.ascontiguousarray(values, np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def to_half(model, dtype, keep_io_types):
    """The float32 model in float16, bfloat16 or float64, as onnxconverter-common's
    convert_float_to_float16 writes it: float initializers in the half type, the graph's inputs
    and outputs half too, or (keep_io_types) float32 with a Cast to half after each input and a
    Cast to float32 before each output."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for init in g.initializer:
        if init.data_type != TensorProto.FLOAT:
            continue
        a = numpy_helper.to_array(init)
        if dtype != TensorProto.BFLOAT16:
            numpy_type = np.float16 if dtype == TensorProto.FLOAT16 else np.float64
            init.CopyFrom(numpy_helper.from_array(a.astype(numpy_type), init.name))
        else:
            init.CopyFrom(helper.make_tensor(init.name, TensorProto.BFLOAT16, a.shape,
                                             bfloat16_bits(a).tobytes(), raw=True))
    for v in list(g.value_info) + ([] if keep_io_types else list(g.input) + list(g.output)):
        if v.type.tensor_type.elem_type == TensorProto.FLOAT:
            v.type.tensor_type.elem_type = dtype
    if keep_io_types:
        casts_in, casts_out = [], []
        for v in g.input:
            casts_in.append(helper.make_node("Cast", [v.name], [v.name + "_half"],
                                             name=v.name + "_to_half", to=dtype))
            for node in g.node:
                node.input[:] = [v.name + "_half" if i == v.name else i for i in node.input]
        for v in g.output:
            for node in g.node:
                node.output[:] = [v.name + "_half" if o == v.name else o for o in node.output]
            casts_out.append(helper.make_node("Cast", [v.name + "_half"], [v.name],
                                              name=v.name + "_to_float", to=TensorProto.FLOAT))
        nodes = casts_in + list(g.node) + casts_out
        del g.node[:]
        g.node.extend(nodes)
    onnx.checker.check_model(m)
    return m


def images(directory, count, seed):
    """Smooth seeded scenes (gradients, discs, boxes, noise) so activations look natural."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = 120, 160
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        img = np.zeros((h, w, 3), np.float32)
        for ch in range(3):
            img[..., ch] = rng.uniform(0, 255) + rng.uniform(-1, 1) * xx + rng.uniform(-1, 1) * yy
        for _ in range(rng.integers(2, 6)):
            colour = rng.uniform(0, 255, 3).tolist()
            if rng.random() < 0.5:
                cv2.circle(img, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(rng.integers(5, 40)),
                           colour, -1)
            else:
                p = rng.integers(0, [w, h, w, h])
                cv2.rectangle(img, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), colour, -1)
        img += rng.normal(0, 6, img.shape)
        cv2.imwrite(os.path.join(directory, f"img_{i:03d}.png"), np.clip(img, 0, 255).astype(np.uint8))


def nms_detector():
    """The detector with NonMaxSuppression in its graph, as SSD/TF and YOLO "end2end" exports
    have it: its output's row count depends on the scores, which no package tensor can hold."""
    m = detector()
    nodes = list(m.graph.node)
    nodes.append(helper.make_node("Transpose", ["scores"], ["scores_by_class"], name="scores_by_class",
                                  perm=[0, 2, 1]))
    nodes.append(helper.make_node("NonMaxSuppression",
                                  ["boxes", "scores_by_class", "nms_limit", "nms_iou", "nms_score"],
                                  ["selected"], name="nms"))
    inits = list(m.graph.initializer) + [
        numpy_helper.from_array(np.array([20], dtype=np.int64), "nms_limit"),
        numpy_helper.from_array(np.array([0.5], dtype=np.float32), "nms_iou"),
        numpy_helper.from_array(np.array([0.3], dtype=np.float32), "nms_score")]
    graph = helper.make_graph(nodes, "nms_detector", list(m.graph.input),
                              [helper.make_tensor_value_info("selected", TensorProto.INT64, ["selected", 3])],
                              inits)
    out = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    out.ir_version = m.ir_version
    return out


def sequence_model():
    """A conv net whose channels go through SplitToSequence and ConcatFromSequence."""
    b = Builder(99)
    x = b.conv_bn("image", 3, 8, stride=2)
    b.inits.append(numpy_helper.from_array(np.array([4, 4], np.int64), "halves"))
    b.nodes.append(helper.make_node("SplitToSequence", [x, "halves"], ["parts"], name="split_node",
                                    axis=1))
    b.nodes.append(helper.make_node("ConcatFromSequence", ["parts"], ["joined"], name="concat_node",
                                    axis=1))
    m = pooled_net(b, "joined", "sequence")
    onnx.checker.check_model(m)
    return m


def main():
    out = output_dir(__doc__)
    os.makedirs(out, exist_ok=True)
    onnx.save(classifier(), os.path.join(out, "classifier.onnx"))
    onnx.save(detector(), os.path.join(out, "detector.onnx"))
    onnx.save(nms_detector(), os.path.join(out, "nms_detector.onnx"))
    onnx.save(dynamic_classifier(), os.path.join(out, "dynamic.onnx"))
    onnx.save(unsupported(), os.path.join(out, "unsupported.onnx"))
    onnx.save(control_flow(), os.path.join(out, "control_flow.onnx"))
    onnx.save(sequence_model(), os.path.join(out, "sequence.onnx"))
    onnx.save(preamble_model(nchw=False), os.path.join(out, "preamble_nhwc.onnx"))
    onnx.save(preamble_model(nchw=True), os.path.join(out, "preamble_nchw.onnx"))
    onnx.save(hardswish_model(), os.path.join(out, "hardswish.onnx"))
    onnx.save(crnn(time_major_output=False), os.path.join(out, "crnn.onnx"))
    onnx.save(crnn(time_major_output=True), os.path.join(out, "crnn_time_major.onnx"))
    onnx.save(to_half(classifier(), TensorProto.FLOAT16, False), os.path.join(out, "classifier_f16.onnx"))
    onnx.save(to_half(classifier(), TensorProto.FLOAT16, True), os.path.join(out, "classifier_f16_io.onnx"))
    onnx.save(to_half(classifier(), TensorProto.BFLOAT16, True), os.path.join(out, "classifier_bf16_io.onnx"))
    onnx.save(to_half(classifier(), TensorProto.DOUBLE, False), os.path.join(out, "classifier_f64.onnx"))
    images(os.path.join(out, "calib"), 16, 7)
    images(os.path.join(out, "heldout"), 4, 8)


if __name__ == "__main__":
    main()
