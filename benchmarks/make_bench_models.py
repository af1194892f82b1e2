#!/usr/bin/python3
"""Writes the seeded FLOAT benchmark models: standard architectures with random weights (the
weights are seeded noise, so outputs are meaningless; the compute, shapes and op mix are the
real ones).

  resnet50.onnx     ResNet-50 v1.5 (bottlenecks 3-4-6-3, stride on the 3x3), 1x3x224x224 -> 1x1000
  mobilenetv2.onnx  MobileNetV2 1.0 (inverted residuals, ReLU6 as opset-10 Clip), 1x3x224x224 -> 1x1000
  yolov5s.onnx      YOLOv5s-like (v6.0 layout): CSP (C3) backbone with SiLU, SPPF, PAN neck,
                    3 anchor heads (3x85 channels at strides 8/16/32), 1x3x640x640.
                    Structurally faithful, not the Ultralytics graph: no Detect decode tail.
  yolov8n.onnx      YOLOv8n-like: C2f backbone/neck, SPPF, decoupled anchor-free head
                    (64 box-DFL + 80 class channels per level), 1x3x640x640, no DFL decode tail.
  ssd_mobilenet.onnx  SSD300-MobileNetV1: depthwise-separable backbone (ReLU), extra layers,
                    6 prior levels (19,10,5,3,2,1 cells; 4,6,6,6,4,4 priors per cell = 2268),
                    outputs loc (1,2268,4) box deltas and conf (1,2268,21) logits (VOC: background
                    + 20 classes); its priors are SSD_MOBILENET_PRIORS (axdecode decoder-config).
  crnn_lstm.onnx    the recurrent head of a CRNN text recogniser: one bidirectional LSTM over 40
                    feature columns of 512 channels, hidden size 256, (40,1,512) -> (40,2,1,256).
  deconv2d.onnx     a segmentation decoder's upsampling: ConvTranspose 4x4 stride 2 pad 1 (windows
                    overlap), (1,64,80,80) -> (1,32,160,160).
  deconv3d.onnx     a volumetric decoder's upsampling: ConvTranspose 3x3x3 stride 2 pad 1,
                    output_padding 1, (1,32,16,32,32) -> (1,16,32,64,64).

usage: make_bench_models.py OUTDIR [NAME...]   (default: all)
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools", "python"))
from onnx_graph_builder import GraphBuilder  # noqa: E402

OPSET = 13


class Builder(GraphBuilder):
    def __init__(self, seed, opset=OPSET):
        super().__init__(seed, opset, "axstream-benchmarks")

    def conv(self, x, cin, cout, k=1, s=1, group=1, act="relu", bias=True, gain=1.0):
        fan_in = cin // group * k * k
        w = self.rng.normal(0, gain * np.sqrt(2.0 / fan_in), (cout, cin // group, k, k)).astype(np.float32)
        ins = [x, self.const(w, "w")]
        if bias:
            ins.append(self.const(self.rng.normal(0, 0.05, cout).astype(np.float32), "b"))
        y = self.node("Conv", ins, kernel_shape=[k, k], strides=[s, s], pads=[(k - 1) // 2] * 4, group=group)
        if act == "relu":
            return self.node("Relu", [y])
        if act == "relu6":
            # OpenCV 4.6 reads only the attribute form of Clip (opset < 11).
            assert self.opset < 11
            return self.node("Clip", [y], min=0.0, max=6.0)
        if act == "silu":
            return self.node("Mul", [y, self.node("Sigmoid", [y])])
        return y


def classifier_model(b, x, channels, name):
    """Global average pool and a 1000-class fully connected layer on `x`: the 1x3x224x224
    "input" model."""
    x = b.node("GlobalAveragePool", [x])
    x = b.node("Flatten", [x], axis=1)
    w = b.rng.normal(0, np.sqrt(1.0 / channels), (1000, channels)).astype(np.float32)
    out = b.node("Gemm", [x, b.const(w, "fc"), b.const(np.zeros(1000, np.float32), "fcb")], transB=1)
    return b.model([helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
                   [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 1000])], name)


def resnet50():
    b = Builder(50)
    x = b.conv("input", 3, 64, k=7, s=2)
    x = b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for stage, (blocks, width) in enumerate(zip([3, 4, 6, 3], [64, 128, 256, 512])):
        for i in range(blocks):
            s = 2 if (i == 0 and stage > 0) else 1
            cout = width * 4
            y = b.conv(x, cin, width, k=1)
            y = b.conv(y, width, width, k=3, s=s)
            y = b.conv(y, width, cout, k=1, act=None, gain=0.3)
            short = b.conv(x, cin, cout, k=1, s=s, act=None) if (s != 1 or cin != cout) else x
            x = b.node("Relu", [b.node("Add", [y, short])])
            cin = cout
    return classifier_model(b, x, 2048, "resnet50")


def mobilenetv2():
    b = Builder(2, opset=10)
    x = b.conv("input", 3, 32, k=3, s=2, act="relu6")
    cin = 32
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1)]:
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = b.conv(x, cin, hidden, k=1, act="relu6") if t != 1 else x
            y = b.conv(y, hidden, hidden, k=3, s=stride, group=hidden, act="relu6")
            y = b.conv(y, hidden, c, k=1, act=None, gain=0.5)
            x = b.node("Add", [x, y]) if (stride == 1 and cin == c) else y
            cin = c
    x = b.conv(x, cin, 1280, k=1, act="relu6")
    return classifier_model(b, x, 1280, "mobilenetv2")


def bottleneck(b, x, c, shortcut):
    y = b.conv(x, c, c, k=1, act="silu")
    y = b.conv(y, c, c, k=3, act="silu", gain=0.5)
    return b.node("Add", [x, y]) if shortcut else y


def c3(b, x, cin, cout, n, shortcut=True):
    h = cout // 2
    a = b.conv(x, cin, h, k=1, act="silu")
    for _ in range(n):
        a = bottleneck(b, a, h, shortcut)
    c = b.conv(x, cin, h, k=1, act="silu")
    return b.conv(b.node("Concat", [a, c], axis=1), 2 * h, cout, k=1, act="silu")


def c2f(b, x, cin, cout, n, shortcut=True):
    h = cout // 2
    y = b.conv(x, cin, 2 * h, k=1, act="silu")
    parts = [b.name("split_a"), b.name("split_b")]
    b.nodes.append(helper.make_node("Split", [y, b.const(np.array([h, h], np.int64), "sp")], parts,
                                    name=parts[0] + "_node", axis=1))
    outs = list(parts)
    cur = parts[1]
    for _ in range(n):
        cur = bottleneck(b, cur, h, shortcut)
        outs.append(cur)
    return b.conv(b.node("Concat", outs, axis=1), (2 + n) * h, cout, k=1, act="silu")


def sppf(b, x, cin, cout):
    h = cin // 2
    x = b.conv(x, cin, h, k=1, act="silu")
    p1 = b.node("MaxPool", [x], kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2])
    p2 = b.node("MaxPool", [p1], kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2])
    p3 = b.node("MaxPool", [p2], kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2])
    return b.conv(b.node("Concat", [x, p1, p2, p3], axis=1), 4 * h, cout, k=1, act="silu")


def upsample(b, x):
    return b.node("Resize", [x, b.const(np.zeros(0, np.float32), "roi"), b.const(np.array([1, 1, 2, 2], np.float32), "scales")], mode="nearest")


def csp_backbone(b, block, stem_k, stem_width, depths):
    """The YOLO backbone: a k x k / 2 stem conv, then per stage a 3x3/2 conv doubling the width and
    `block` (c3 or c2f) of the stage's depth, then SPPF. Returns the stride 8, 16 and 32 features."""
    x = b.conv("images", 3, stem_width, k=stem_k, s=2, act="silu")
    width = stem_width
    stages = []
    for depth in depths:
        x = b.conv(x, width, 2 * width, k=3, s=2, act="silu")
        width *= 2
        x = block(b, x, width, width, depth)
        stages.append(x)
    return stages[-3], stages[-2], sppf(b, x, width, width)


def downsample_merge(b, block, x, channels, lateral, lateral_channels, cout):
    """A PAN bottom-up step: a 3x3/2 conv of `x`, concatenated with the `lateral` feature, then
    one `block` without shortcuts."""
    x = b.conv(x, channels, channels, k=3, s=2, act="silu")
    return block(b, b.node("Concat", [x, lateral], axis=1), channels + lateral_channels, cout, 1,
                 shortcut=False)


def detection_model(b, heads, name):
    """The 1x3x640x640 "images" model whose outputs are `heads`, (tensor, channels) at strides
    8, 16 and 32."""
    outputs = [helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, channels, size, size])
               for (y, channels), size in zip(heads, [80, 40, 20])]
    return b.model([helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
                   outputs, name)


def yolov5s():
    b = Builder(5)
    p3, p4, x = csp_backbone(b, c3, 6, 32, [1, 2, 3, 1])  # v6.0 stem: 6x6/2 conv
    # PAN neck
    h10 = b.conv(x, 512, 256, k=1, act="silu")
    x = c3(b, b.node("Concat", [upsample(b, h10), p4], axis=1), 512, 256, 1, shortcut=False)
    h14 = b.conv(x, 256, 128, k=1, act="silu")
    out3 = c3(b, b.node("Concat", [upsample(b, h14), p3], axis=1), 256, 128, 1, shortcut=False)
    out4 = downsample_merge(b, c3, out3, 128, h14, 128, 256)
    out5 = downsample_merge(b, c3, out4, 256, h10, 256, 512)
    heads = [(b.node("Sigmoid", [b.conv(feat, c, 255, k=1, act=None, gain=0.3)]), 255)
             for feat, c in [(out3, 128), (out4, 256), (out5, 512)]]
    return detection_model(b, heads, "yolov5s")


def head_branch(b, x, cin, width):
    """One branch of YOLOv8's decoupled head: two 3x3 SiLU convs and a linear 1x1 conv."""
    x = b.conv(x, cin, width, k=3, act="silu")
    x = b.conv(x, width, width, k=3, act="silu")
    return b.conv(x, width, width, k=1, act=None, gain=0.3)


def yolov8n():
    b = Builder(8)
    p3, p4, p5 = csp_backbone(b, c2f, 3, 16, [1, 2, 2, 1])
    h12 = c2f(b, b.node("Concat", [upsample(b, p5), p4], axis=1), 384, 128, 1, shortcut=False)
    out3 = c2f(b, b.node("Concat", [upsample(b, h12), p3], axis=1), 192, 64, 1, shortcut=False)
    out4 = downsample_merge(b, c2f, out3, 64, h12, 128, 128)
    out5 = downsample_merge(b, c2f, out4, 128, p5, 256, 256)
    heads = []
    for feat, c in [(out3, 64), (out4, 128), (out5, 256)]:
        box = head_branch(b, feat, c, 64)
        cls = head_branch(b, feat, c, 80)
        heads.append((b.node("Concat", [box, b.node("Sigmoid", [cls])], axis=1), 144))
    return detection_model(b, heads, "yolov8n")


# The prior boxes ssd_mobilenet's rows are encoded against, as axdecode's decoder-config (the
# ssd.pytorch / Caffe SSD300 PriorBox layout; variances 0.1, 0.2).
SSD_MOBILENET_PRIORS = ("feature-maps=19,10,5,3,2,1; image-size=300; "
                        "min-sizes=60,105,150,195,240,285; max-sizes=105,150,195,240,285,300; "
                        "aspect-ratios=2|2,3|2,3|2,3|2|2; variances=0.1,0.2; clip=1")


def ssd_mobilenet():
    b = Builder(300)
    classes = 21

    def separable(x, cin, cout, s):
        x = b.conv(x, cin, cin, k=3, s=s, group=cin)
        return b.conv(x, cin, cout, k=1)

    x = b.conv("input", 3, 32, k=3, s=2)  # 150x150
    cin = 32
    taps = []  # (feature, channels): 19x19 after the last 512 block, 10x10 after 1024
    blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + \
             [(1024, 2), (1024, 1)]
    for i, (cout, s) in enumerate(blocks):
        x = separable(x, cin, cout, s)
        cin = cout
        if i == 10 or i == 12:
            taps.append((x, cout))
    for mid, cout in [(256, 512), (128, 256), (128, 256), (64, 128)]:  # 5, 3, 2, 1
        x = b.conv(b.conv(x, cin, mid, k=1), mid, cout, k=3, s=2)
        cin = cout
        taps.append((x, cout))
    locs, confs = [], []
    for (feature, channels), priors in zip(taps, [4, 6, 6, 6, 4, 4]):
        for width, out in [(4, locs), (classes, confs)]:
            y = b.conv(feature, channels, priors * width, k=3, act=None, gain=0.3)
            y = b.node("Transpose", [y], perm=[0, 2, 3, 1])
            out.append(b.node("Reshape", [y, b.const(np.array([1, -1, width], np.int64), "shape")]))
    b.nodes.append(helper.make_node("Concat", locs, ["loc"], name="loc_node", axis=1))
    b.nodes.append(helper.make_node("Concat", confs, ["conf"], name="conf_node", axis=1))
    rows = 19 * 19 * 4 + 10 * 10 * 6 + 5 * 5 * 6 + 3 * 3 * 6 + 2 * 2 * 4 + 1 * 4
    return b.model([helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 300, 300])],
                   [helper.make_tensor_value_info("loc", TensorProto.FLOAT, [1, rows, 4]),
                    helper.make_tensor_value_info("conf", TensorProto.FLOAT, [1, rows, classes])],
                   "ssd_mobilenet")


def crnn_lstm():
    rng = np.random.default_rng(11)
    seq, inp, hid = 40, 512, 256

    def weights(*shape):
        return numpy_helper.from_array(
            (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32))

    w, r, b = weights(2, 4 * hid, inp), weights(2, 4 * hid, hid), weights(2, 8 * hid)
    for t, name in ((w, "w"), (r, "r"), (b, "b")):
        t.name = name
    graph = helper.make_graph(
        [helper.make_node("LSTM", ["x", "w", "r", "b"], ["y"], hidden_size=hid,
                          direction="bidirectional")],
        "crnn_lstm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [seq, 1, inp])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [seq, 2, 1, hid])], [w, r, b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def deconv(name, x_shape, w_shape, y_shape, **attrs):
    """One ConvTranspose with seeded weights and bias."""
    rng = np.random.default_rng(12)
    w = numpy_helper.from_array((rng.standard_normal(w_shape) * 0.1).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(w_shape[1]).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], kernel_shape=w_shape[2:],
                          **attrs)], name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], [w, b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def deconv2d():
    return deconv("deconv2d", [1, 64, 80, 80], (64, 32, 4, 4), [1, 32, 160, 160], strides=[2, 2],
                  pads=[1, 1, 1, 1])


def deconv3d():
    return deconv("deconv3d", [1, 32, 16, 32, 32], (32, 16, 3, 3, 3), [1, 16, 32, 64, 64],
                  strides=[2, 2, 2], pads=[1, 1, 1, 1, 1, 1], output_padding=[1, 1, 1])


def main():
    args = sys.argv[1:]
    if args and args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return
    # An option here would otherwise become the output folder ("--help/resnet50.onnx").
    if not args or args[0].startswith("-"):
        what = f"unknown option '{args[0]}'" if args else "no OUTDIR"
        print(f"make_bench_models.py: {what}\nusage: make_bench_models.py OUTDIR [NAME...]",
              file=sys.stderr)
        sys.exit(2)
    out = args[0]
    makers = [("resnet50", resnet50), ("mobilenetv2", mobilenetv2), ("yolov5s", yolov5s),
              ("yolov8n", yolov8n), ("ssd_mobilenet", ssd_mobilenet),
              ("crnn_lstm", crnn_lstm), ("deconv2d", deconv2d), ("deconv3d", deconv3d)]
    wanted = args[1:]
    unknown = set(wanted) - {name for name, _ in makers}
    if unknown:
        print(f"make_bench_models.py: unknown model(s) {', '.join(sorted(unknown))}; "
              f"expected {', '.join(name for name, _ in makers)}", file=sys.stderr)
        sys.exit(2)
    os.makedirs(out, exist_ok=True)
    for name, make in makers:
        if wanted and name not in wanted:
            continue
        path = os.path.join(out, name + ".onnx")
        onnx.save(make(), path)
        print(path)


if __name__ == "__main__":
    main()
