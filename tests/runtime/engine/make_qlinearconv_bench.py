#!/usr/bin/python3
"""Writes two seeded QLinearConv models of one ResNet-50 stage-1 3x3 layer (uint8 activations
and weights, 1x64x56x56 -> 1x64x56x56, 116 MMAC) for engine-bench:

  OUTDIR/qlinearconv_u8w_zp128.onnx  weight zero point 128: w - 128 fits int8, so the engine
                                     runs it on oneDNN's int8 convolution
  OUTDIR/qlinearconv_u8w_zp0.onnx    weight zero point 0 with weights up to 255: w - 0 does not
                                     fit int8, so it stays on the exact int32 reference kernel

usage: make_qlinearconv_bench.py OUTDIR
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "common"))
from outdir_arg import output_dir  # noqa: E402

rng = np.random.default_rng(11)
out_dir = output_dir(__doc__)
os.makedirs(out_dir, exist_ok=True)
w = rng.integers(0, 256, (64, 64, 3, 3)).astype(np.uint8)
b = rng.integers(-5000, 5000, 64).astype(np.int32)
for name, w_zp in (('qlinearconv_u8w_zp128', 128), ('qlinearconv_u8w_zp0', 0)):
    inits = [numpy_helper.from_array(v, n) for n, v in (
        ('xs', np.float32(0.02)), ('xz', np.uint8(128)), ('w', w), ('ws', np.float32(0.003)),
        ('wz', np.uint8(w_zp)), ('ys', np.float32(0.05)), ('yz', np.uint8(128)), ('b', b))]
    node = helper.make_node('QLinearConv', ['x', 'xs', 'xz', 'w', 'ws', 'wz', 'ys', 'yz', 'b'],
                            ['y'], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [node], name, [helper.make_tensor_value_info('x', TensorProto.UINT8, [1, 64, 56, 56])],
        [helper.make_tensor_value_info('y', TensorProto.UINT8, [1, 64, 56, 56])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    onnx.save(model, os.path.join(out_dir, name + '.onnx'))
