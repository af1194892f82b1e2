#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets from the test model packages
(tests/data/make_test_models.py output) plus the small hand-written seeds in fuzz/corpus/.

Packages: the generated test packages and, when given, the compiled demo packages
(~/.cache/axstream/models: BlazeFace, PP-OCR).
  fuzz_model_package/  model.json + "\\n@@MANIFEST@@\\n" + manifest.json of every package,
                       and the committed fuzz/corpus/model_package/*.txt
  fuzz_onnx_import/    every *.onnx of the packages (core, preamble, postamble) up to 200 kB,
                       and one tiny model per indexing/sampling/recurrent op (op_seeds below:
                       TopK, GatherND, Scatter*, OneHot, RoiAlign, GridSample, cubic Resize,
                       LSTM/GRU/RNN, losses, N-D ConvTranspose, ..., float16/bfloat16/double
                       initializers behind a Cast, graphs computing in float16/bfloat16, the
                       three as graph inputs through Cast chains, CastLike, the data ops, the
                       float64 reductions, and half models reaching each half_compute fusion:
                       Gemm + Relu, MatMul + bias Add + Relu, Conv/ConvTranspose + BatchNorm
                       + Clip, reductions and element-wise ops in float16 and bfloat16), which
                       the packages' convolution graphs never reach
  fuzz_decoders/       the committed fuzz/corpus/decoders/* (libFuzzer also starts from empty)

Run: /usr/bin/python3 make_seeds.py --models BUILD/tests/data/models --out DIR [--target T]
(--target: write only that target's corpus, so parallel fuzz runs do not race on the others.)
"""
import argparse
import glob
import os
import shutil

import numpy as np
from onnx import TensorProto, helper, numpy_helper

SEP = b"\n@@MANIFEST@@\n"
MAX_ONNX_SEED = 200000
TARGETS = ("fuzz_model_package", "fuzz_onnx_import", "fuzz_decoders")


def op_seeds():
    """(name, model bytes): one node each, a float input x (1, 2, 4, 4), parameters as
    initializers, so mutations land in the kernels' attribute and index handling."""
    def model(node, inits, outputs=("y",), opset=16, x_shape=(1, 2, 4, 4), extra_tensors=(),
              x_type=TensorProto.FLOAT):
        nodes = node if isinstance(node, list) else [node]
        x = helper.make_tensor_value_info("x", x_type, list(x_shape))
        graph = helper.make_graph(
            nodes, nodes[-1].op_type, [x],
            [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in outputs],
            [numpy_helper.from_array(np.asarray(a), n) for n, a in inits] + list(extra_tensors))
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 7
        return m.SerializeToString()

    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    return [
        ("topk", model(helper.make_node("TopK", ["x", "k"], ["y", "i"], axis=-1),
                       [("k", i64(2))], ("y", "i"))),
        ("gathernd", model(helper.make_node("GatherND", ["x", "i"], ["y"], batch_dims=1),
                           [("i", i64(1, 0).reshape(1, 1, 2))])),
        ("scatternd", model(helper.make_node("ScatterND", ["x", "i", "u"], ["y"], reduction="add"),
                            [("i", i64(0, 1).reshape(1, 2)),
                             ("u", np.ones((1, 4, 4), np.float32))])),
        ("scatterelements", model(
            helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], axis=3, reduction="mul"),
            [("i", np.full((1, 2, 4, 1), -1, np.int64)), ("u", np.ones((1, 2, 4, 1), np.float32))])),
        ("onehot", model(helper.make_node("OneHot", ["x", "d", "v"], ["y"], axis=1),
                         [("d", np.array(3, np.int64)), ("v", np.array([0, 1], np.float32))])),
        ("roialign", model(
            helper.make_node("RoiAlign", ["x", "r", "b"], ["y"], output_height=2, output_width=2,
                             sampling_ratio=0, mode="max"),
            [("r", np.array([[0.5, 0.5, 3, 3]], np.float32)), ("b", i64(0))])),
        ("gridsample", model(
            helper.make_node("GridSample", ["x", "g"], ["y"], mode="bicubic",
                             padding_mode="reflection"),
            [("g", np.linspace(-1.5, 1.5, 16, dtype=np.float32).reshape(1, 2, 4, 2))])),
        ("resize_cubic_crop", model(
            helper.make_node("Resize", ["x", "roi", "s"], ["y"], mode="cubic", exclude_outside=1,
                             coordinate_transformation_mode="tf_crop_and_resize"),
            [("roi", np.array([0, 0, 0.1, 0.2, 1, 1, 0.9, 0.7], np.float32)),
             ("s", np.array([1, 1, 1.5, 0.5], np.float32))])),
        ("maxunpool", model(
            helper.make_node("MaxUnpool", ["x", "i"], ["y"], kernel_shape=[2, 2], strides=[2, 2]),
            [("i", np.arange(32, dtype=np.int64).reshape(1, 2, 4, 4) * 2)])),
        ("lrn", model(helper.make_node("LRN", ["x"], ["y"], size=3), [])),
        ("det", model(helper.make_node("Det", ["x"], ["y"]), [])),
        ("mvn", model(helper.make_node("MeanVarianceNormalization", ["x"], ["y"]), [])),
        # Recurrent layers on x (seq 4, batch 2, input 4) — batch-major for the GRU — with
        # every optional input and output, so mutations reach their shape and length checks.
        ("lstm", model(
            helper.make_node("LSTM", ["x", "w", "r", "b", "lens", "h0", "c0", "p"],
                             ["y", "yh", "yc"], hidden_size=3, direction="bidirectional",
                             clip=5.0),
            [("w", np.full((2, 12, 4), 0.1, np.float32)), ("r", np.full((2, 12, 3), 0.1, np.float32)),
             ("b", np.zeros((2, 24), np.float32)), ("lens", np.array([4, 2], np.int32)),
             ("h0", np.zeros((2, 2, 3), np.float32)), ("c0", np.zeros((2, 2, 3), np.float32)),
             ("p", np.full((2, 9), 0.1, np.float32))], ("y", "yh", "yc"), 14, (4, 2, 4))),
        ("gru", model(
            helper.make_node("GRU", ["x", "w", "r", "b"], ["y", "yh"], hidden_size=3, layout=1,
                             linear_before_reset=1),
            [("w", np.full((1, 9, 4), 0.1, np.float32)), ("r", np.full((1, 9, 3), 0.1, np.float32)),
             ("b", np.zeros((1, 18), np.float32))], ("y", "yh"), 14, (2, 4, 4))),
        ("rnn", model(
            helper.make_node("RNN", ["x", "w", "r"], ["y", "yh"], hidden_size=3,
                             direction="reverse", activations=["LeakyRelu"],
                             activation_alpha=[0.2]),
            [("w", np.full((1, 3, 4), 0.1, np.float32)), ("r", np.full((1, 3, 3), 0.1, np.float32))],
            ("y", "yh"), 14, (4, 2, 4))),
        # The losses (weights, a negative ignore_index, log_prob), a grouped 3-D ConvTranspose
        # with every geometry attribute, CumSum, training-mode BatchNormalization.
        ("sce", model(
            helper.make_node("SoftmaxCrossEntropyLoss", ["x", "t", "w"], ["y", "lp"],
                             reduction="mean", ignore_index=-1),
            [("t", np.array([[[0, 1, -1, 1]] * 4], np.int64)), ("w", np.array([0.5, 2], np.float32))],
            ("y", "lp"))),
        ("nllloss", model(
            helper.make_node("NegativeLogLikelihoodLoss", ["x", "t"], ["y"], reduction="none"),
            [("t", np.ones((1, 4, 4), np.int32))])),
        ("convtranspose3d", model(
            helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], group=2, strides=[2, 1, 2],
                             pads=[1, 0, 1, 0, 1, 1], dilations=[1, 2, 1],
                             output_padding=[1, 0, 1]),
            [("w", np.full((2, 2, 2, 3, 3), 0.1, np.float32)), ("b", np.zeros(4, np.float32))],
            x_shape=(1, 2, 2, 3, 3))),
        ("cumsum", model(helper.make_node("CumSum", ["x", "a"], ["y"], exclusive=1, reverse=1),
                         [("a", i64(2))])),
        ("batchnorm_training", model(
            helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"],
                             training_mode=1),
            [("s", np.ones(2, np.float32)), ("b", np.zeros(2, np.float32)),
             ("m", np.zeros(2, np.float32)), ("v", np.ones(2, np.float32))], ("y", "rm", "rv"), 15)),
        # More of the same ops: NLL's mean with weights and ignore_index, SCE's sum, a grouped
        # dilated 1-D and a SAME_UPPER 3-D ConvTranspose, training-mode Dropout (ratio 0).
        ("nll_mean_weighted", model(
            helper.make_node("NegativeLogLikelihoodLoss", ["x", "t", "w"], ["y"],
                             reduction="mean", ignore_index=-1),
            [("t", np.array([[[0, 1, -1, 1]] * 4], np.int64)),
             ("w", np.array([0.5, 2.0], np.float32))])),
        ("sce_sum", model(
            helper.make_node("SoftmaxCrossEntropyLoss", ["x", "t"], ["y", "lp"],
                             reduction="sum", ignore_index=1),
            [("t", np.array([[[0, 1, 1, 0]] * 4], np.int32))], ("y", "lp"))),
        ("convtranspose1d", model(
            helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=[2], pads=[1, 0],
                             output_padding=[1], dilations=[2], group=2),
            [("w", np.full((2, 1, 3), 0.5, np.float32)), ("b", np.ones(2, np.float32))],
            x_shape=(1, 2, 4))),
        ("convtranspose3d_same_upper", model(
            helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[1, 2, 2],
                             auto_pad="SAME_UPPER"),
            [("w", np.full((2, 3, 2, 2, 2), 0.25, np.float32))], x_shape=(1, 2, 2, 4, 4))),
        ("dropout_training", model(
            helper.make_node("Dropout", ["x", "ratio", "mode"], ["y", "mask"]),
            [("ratio", np.array(0.0, np.float32)), ("mode", np.array(True))], ("y", "mask"))),
        # Half-precision weights as torch .half() exports write them: a float16 initializer (raw
        # data) through Cast(to=FLOAT) into Conv, folded at load; and a bfloat16 initializer
        # (16-bit patterns in int32_data) and a double one cast and added to x, so mutations
        # reach the storage types' decoding and Cast.
        ("conv_half_weights", model(
            [helper.make_node("Cast", ["w16"], ["w"], to=TensorProto.FLOAT),
             helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
            [("w16", np.linspace(-1, 1, 2 * 2 * 3 * 3).astype(np.float16).reshape(2, 2, 3, 3))])),
        ("bfloat16_double_cast_add", model(
            [helper.make_node("Cast", ["b16"], ["b"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["d"], ["dc"], to=TensorProto.FLOAT),
             helper.make_node("Sum", ["x", "b", "dc"], ["y"])],
            [("d", np.linspace(-2, 2, 4))],
            extra_tensors=[helper.make_tensor("b16", TensorProto.BFLOAT16, [4],
                                              [1.0, -2.5, 65280.0, 0.5])])),
        # A graph computing in float16 (convert_float_to_float16 with keep_io_types): x cast to
        # half, Conv with half weights and bias, Relu, MaxPool, Add and Softmax in float16, each
        # run in float32 between Casts the compiler inserts; and bfloat16 Mul/Sigmoid, so
        # mutations reach the Cast insertion and the round-trip pass.
        ("half_compute_convnet", model(
            [helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16),
             helper.make_node("Conv", ["x16", "w16", "b16"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("MaxPool", ["x16"], ["mx"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Add", ["m", "mx"], ["s"]),
             helper.make_node("Softmax", ["s"], ["y16"], axis=1),
             helper.make_node("Cast", ["y16"], ["y"], to=TensorProto.FLOAT)],
            [("w16", np.linspace(-1, 1, 2 * 2 * 3 * 3).astype(np.float16).reshape(2, 2, 3, 3)),
             ("b16", np.array([0.25, -0.5], np.float16))])),
        ("bfloat16_compute", model(
            [helper.make_node("Cast", ["x"], ["xb"], to=TensorProto.BFLOAT16),
             helper.make_node("Mul", ["xb", "gain"], ["g"]),
             helper.make_node("Sigmoid", ["g"], ["y"])],
            [], extra_tensors=[helper.make_tensor("gain", TensorProto.BFLOAT16, [1],
                                                  [1.5])])),
        # The storage types as graph inputs and outputs: a Cast chain through every float type
        # and an integer, CastLike, the ops that only move, select or compare (float16/bfloat16)
        # and the ones that compute float64 in double, so mutations reach their kernels.
        ("float16_input_cast_chain", model(
            [helper.make_node("Cast", ["x"], ["b"], to=TensorProto.BFLOAT16),
             helper.make_node("Cast", ["b"], ["d"], to=TensorProto.DOUBLE),
             helper.make_node("Cast", ["d"], ["i"], to=TensorProto.INT32),
             helper.make_node("Cast", ["i"], ["h"], to=TensorProto.FLOAT16),
             helper.make_node("CastLike", ["h", "like"], ["y"])],
            [("like", np.zeros(1, np.float64))], x_type=TensorProto.FLOAT16)),
        ("float16_moves", model(
            [helper.make_node("CastLike", ["x", "like"], ["h"]),
             helper.make_node("Transpose", ["h"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["t", "s"], ["r"]),
             helper.make_node("Concat", ["r", "c"], ["cat"], axis=1),
             helper.make_node("Pad", ["cat", "p", "pv"], ["pad"], mode="reflect"),
             helper.make_node("Gather", ["pad", "g"], ["y"], axis=1),
             helper.make_node("ArgMax", ["pad"], ["am"], axis=1, select_last_index=1)],
            [("like", np.zeros(1, np.float16)), ("s", i64(1, 32)),
             ("c", np.linspace(-3, 3, 4).astype(np.float16).reshape(1, 4)), ("p", i64(0, 2, 0, 2)),
             ("pv", np.array(1.5, np.float16)), ("g", i64(0, -1, 5))], ("y", "am"))),
        ("bfloat16_compare_where", model(
            [helper.make_node("Cast", ["x"], ["b"], to=TensorProto.BFLOAT16),
             helper.make_node("Less", ["b", "t"], ["m"]),
             helper.make_node("Where", ["m", "b", "z"], ["w"]),
             helper.make_node("Slice", ["w", "st", "en", "ax"], ["sl"]),
             helper.make_node("Tile", ["sl", "rep"], ["y"]),
             helper.make_node("ArgMin", ["w"], ["am"], axis=-1, keepdims=0)],
            [("st", i64(1)), ("en", i64(-1)), ("ax", i64(3)), ("rep", i64(1, 2, 1, 1))],
            ("y", "am"), extra_tensors=[
                helper.make_tensor("t", TensorProto.BFLOAT16, [4], [0.5, -1.0, 2.0, 0.0]),
                helper.make_tensor("z", TensorProto.BFLOAT16, [1], [-0.0])])),
        ("float64_reduce_cumsum_einsum", model(
            [helper.make_node("ReduceLogSumExp", ["x"], ["r"], axes=[1], keepdims=0),
             helper.make_node("CumSum", ["x", "a"], ["c"], reverse=1),
             helper.make_node("Einsum", ["c", "r"], ["e"], equation="bchw,bvw->bhv"),
             helper.make_node("ReduceProd", ["e"], ["y"], axes=[-1], keepdims=0)],
            [("a", i64(-1))], opset=13, x_type=TensorProto.DOUBLE)),
        ("float16_constant_onehot_eyelike", model(
            [helper.make_node("Constant", [], ["v"], value=numpy_helper.from_array(
                 np.array([-65504, 65504], np.float16))),
             helper.make_node("OneHot", ["x", "d", "v"], ["o"], axis=-1),
             helper.make_node("ConstantOfShape", ["sh"], ["k"], value=numpy_helper.from_array(
                 np.array([0.25], np.float16))),
             helper.make_node("EyeLike", ["k"], ["y"], k=1, dtype=TensorProto.BFLOAT16),
             helper.make_node("Trilu", ["o", "tk"], ["tri"], upper=0)],
            [("d", np.array(5, np.int64)), ("sh", i64(3, 4)), ("tk", i64(-1))], ("y", "tri"),
            x_shape=(2, 3), x_type=TensorProto.INT64)),
        # Half models as convert_float_to_float16 / torch .half() write them, reaching each fusion
        # of half_compute: Gemm + Relu, MatMul + Add(bias) + Relu, Conv + BatchNormalization +
        # Clip (half-exact bounds), ConvTranspose + BatchNormalization, the reductions and the
        # element-wise ops computed in float32 between Casts, in float16 and bfloat16.
        ("half_gemm_relu", model(
            [helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16),
             helper.make_node("Flatten", ["x16"], ["f"]),
             helper.make_node("Gemm", ["f", "w16", "b16"], ["g"], transB=1, alpha=0.5),
             helper.make_node("Relu", ["g"], ["y"])],
            [("w16", np.linspace(-1, 1, 3 * 32).astype(np.float16).reshape(3, 32)),
             ("b16", np.array([0.25, -0.5, 1.0], np.float16))])),
        ("half_matmul_add_relu", model(
            [helper.make_node("Reshape", ["x", "s"], ["r"]),
             helper.make_node("MatMul", ["r", "w16"], ["m"]),
             helper.make_node("Add", ["m", "b16"], ["a"]),
             helper.make_node("Relu", ["a"], ["y"])],
            [("s", i64(2, 16)),
             ("w16", np.linspace(-1, 1, 16 * 5).astype(np.float16).reshape(16, 5)),
             ("b16", np.linspace(-0.5, 0.5, 5).astype(np.float16))], x_type=TensorProto.FLOAT16)),
        ("bfloat16_matmul_add_relu", model(
            [helper.make_node("Cast", ["x"], ["xb"], to=TensorProto.BFLOAT16),
             helper.make_node("MatMul", ["xb", "wb"], ["m"]),
             helper.make_node("Add", ["bb", "m"], ["a"]),
             helper.make_node("Relu", ["a"], ["yb"]),
             helper.make_node("Cast", ["yb"], ["y"], to=TensorProto.FLOAT)],
            [], extra_tensors=[
                helper.make_tensor("wb", TensorProto.BFLOAT16, [4, 3],
                                   list(np.linspace(-1, 1, 12))),
                helper.make_tensor("bb", TensorProto.BFLOAT16, [3], [0.5, -0.25, 2.0])])),
        ("half_conv_bn_clip", model(
            [helper.make_node("Cast", ["x"], ["x16"], to=TensorProto.FLOAT16),
             helper.make_node("Conv", ["x16", "w16"], ["c"], pads=[1, 1, 1, 1], group=2),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["n"],
                              epsilon=1e-3),
             helper.make_node("Clip", ["n", "lo", "hi"], ["k"]),
             helper.make_node("ConvTranspose", ["k", "wt16"], ["t"], strides=[2, 2]),
             helper.make_node("BatchNormalization", ["t", "s", "b", "m", "v"], ["y"])],
            [("w16", np.linspace(-1, 1, 2 * 1 * 3 * 3).astype(np.float16).reshape(2, 1, 3, 3)),
             ("wt16", np.linspace(-1, 1, 2 * 2 * 2 * 2).astype(np.float16).reshape(2, 2, 2, 2)),
             ("s", np.array([1.5, 0.5], np.float16)), ("b", np.array([0.1, -0.1], np.float16)),
             ("m", np.array([0.0, 0.25], np.float16)), ("v", np.array([1.0, 2.0], np.float16)),
             ("lo", np.array(0, np.float16)), ("hi", np.array(6, np.float16))])),
        ("half_reductions", model(
            [helper.make_node("ReduceMean", ["x"], ["rm"], axes=[2, 3], keepdims=1),
             helper.make_node("ReduceSum", ["x", "ax"], ["rs"], keepdims=0),
             helper.make_node("ReduceMax", ["x"], ["mx"], axes=[1]),
             helper.make_node("ReduceL2", ["x"], ["l2"], axes=[-1], keepdims=0),
             helper.make_node("GlobalAveragePool", ["x"], ["gap"]),
             helper.make_node("Sub", ["x", "rm"], ["y"])],
            [("ax", i64(1))], ("y", "rs", "mx", "l2", "gap"), opset=13,
            x_type=TensorProto.FLOAT16)),
        ("half_elementwise", model(
            [helper.make_node("Div", ["x", "d"], ["q"]),
             helper.make_node("Exp", ["q"], ["e"]),
             helper.make_node("Sqrt", ["e"], ["r"]),
             helper.make_node("Tanh", ["r"], ["t"]),
             helper.make_node("LeakyRelu", ["t"], ["l"], alpha=0.1),
             helper.make_node("Pow", ["l", "p"], ["w"]),
             helper.make_node("Clip", ["w", "lo"], ["c"]),
             helper.make_node("Max", ["c", "x"], ["mx"]),
             helper.make_node("HardSigmoid", ["mx"], ["hs"]),
             helper.make_node("Erf", ["hs"], ["y"])],
            [("d", np.array([3.0], np.float16)), ("p", np.array(2.0, np.float32)),
             ("lo", np.array(-0.5, np.float16))], x_type=TensorProto.FLOAT16)),
        ("bfloat16_elementwise_reduce", model(
            [helper.make_node("Abs", ["x"], ["a"]),
             helper.make_node("Log", ["a"], ["l"]),
             helper.make_node("Mul", ["l", "a"], ["m"]),
             helper.make_node("Softmax", ["m"], ["s"], axis=-1),
             helper.make_node("ReduceSum", ["s"], ["y"], axes=[1], keepdims=1),
             helper.make_node("Cast", ["y"], ["y32"], to=TensorProto.FLOAT)],
            [], ("y", "y32"), opset=12, x_type=TensorProto.BFLOAT16)),
    ]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", required=True, action="append",
                    help="a directory of packages (repeatable: test packages, demo packages)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--target", choices=TARGETS)
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    dirs = {t: os.path.join(args.out, t) for t in TARGETS if args.target in (None, t)}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    packages = [p for d in args.models for p in sorted(glob.glob(os.path.join(d, "*", "model.json")))]
    for pkg in packages:
        pdir = os.path.dirname(pkg)
        name = os.path.basename(pdir)
        with open(pkg, "rb") as f:
            model = f.read()
        with open(os.path.join(pdir, "manifest.json"), "rb") as f:
            manifest = f.read()
        if "fuzz_model_package" in dirs:
            with open(os.path.join(dirs["fuzz_model_package"], name + ".seed"), "wb") as f:
                f.write(model + SEP + manifest)
        for onnx in glob.glob(os.path.join(pdir, "*.onnx")) if "fuzz_onnx_import" in dirs else []:
            if os.path.getsize(onnx) > MAX_ONNX_SEED:
                continue  # beyond the runs' -max_len: it would be cut, not parsed
            shutil.copy(onnx, os.path.join(dirs["fuzz_onnx_import"],
                                           name + "_" + os.path.basename(onnx)))
    if "fuzz_onnx_import" in dirs:
        for name, data in op_seeds():
            with open(os.path.join(dirs["fuzz_onnx_import"], "op_" + name + ".onnx"), "wb") as f:
                f.write(data)
    for sub, target in (("model_package", "fuzz_model_package"), ("decoders", "fuzz_decoders"),
                        ("onnx_import", "fuzz_onnx_import")):
        if target not in dirs:
            continue
        for seed in glob.glob(os.path.join(here, "corpus", sub, "*")):
            shutil.copy(seed, dirs[target])
    for t, d in dirs.items():
        print("%s: %d seeds" % (t, len(os.listdir(d))))


if __name__ == "__main__":
    main()
