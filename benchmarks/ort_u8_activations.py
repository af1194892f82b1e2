#!/usr/bin/python3
"""Writes a package's core.onnx with uint8 activations for ONNX Runtime's int8 baseline.

  ort_u8_activations.py CORE.onnx OUT.onnx

The same quantised graph, every activation re-expressed in uint8: each activation
QuantizeLinear/DequantizeLinear zero point z (int8) becomes z + 128 (uint8), so q_u8 = q_s8 + 128
and every dequantised value is unchanged; weights stay int8 (per-channel, zero point 0), biases
int32. Graph inputs and outputs become uint8 (a caller adds 128), and a Pad of a quantised
tensor pads with its constant + 128.

Why: ONNX Runtime's x86 CPU provider fuses DequantizeLinear-op-QuantizeLinear into its int8
kernels (QLinearConv, QLinearAdd, ... on MLAS) only for uint8 activations with int8 weights. Its
QDQS8ToU8Transformer rewrites int8 activation pairs to uint8 itself, but only where a
QuantizeLinear has one consumer; a tensor read by two nodes (a residual shortcut) stays int8 and
every Conv and Add reading it runs in float (ResNet-50: 21 of 53 convolutions and all 16 Adds).
This form is what that transformer would make of the whole graph, so bench_ort.mjs times ONNX
Runtime's int8 kernels on every quantised node (docs/performance.md, "Engine vs ONNX Runtime").
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper


def convert(model):
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    # Activation Q/DQ: a DequantizeLinear whose data is not an initializer, every QuantizeLinear.
    zero_points = set()
    for node in graph.node:
        if node.op_type not in ('QuantizeLinear', 'DequantizeLinear'):
            continue
        if node.op_type == 'DequantizeLinear' and node.input[0] in inits:
            continue  # a weight or a bias
        if len(node.input) < 3 or node.input[2] not in inits:
            raise ValueError(f"{node.op_type} '{node.name}': no zero point initializer "
                             '(a uint8 default would change its meaning)')
        zero_points.add(node.input[2])
    shared = {name for node in graph.node
              if not (node.op_type in ('QuantizeLinear', 'DequantizeLinear'))
              for name in node.input if name in zero_points}
    if shared:
        raise ValueError(f'zero point(s) {sorted(shared)[:3]} also read by other nodes')
    converted = 0
    for name in zero_points:
        z = numpy_helper.to_array(inits[name])
        if z.dtype == np.uint8:
            continue
        if z.dtype != np.int8:
            raise ValueError(f"zero point '{name}' is {z.dtype}, expected int8")
        inits[name].CopyFrom(numpy_helper.from_array((z.astype(np.int16) + 128).astype(np.uint8), name))
        converted += 1
    # Pad of a quantised tensor (the padded int8 outputs): its constant moves with the zero point.
    for node in graph.node:
        if node.op_type == 'Pad' and len(node.input) > 2 and node.input[2] in inits:
            c = numpy_helper.to_array(inits[node.input[2]])
            if c.dtype == np.int8:
                inits[node.input[2]].CopyFrom(numpy_helper.from_array(
                    (c.astype(np.int16) + 128).astype(np.uint8), node.input[2]))
    for value in list(graph.input) + list(graph.output):
        if value.type.tensor_type.elem_type == TensorProto.INT8:
            value.type.tensor_type.elem_type = TensorProto.UINT8
    # Intermediate types are inferred again from the new zero points.
    del graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model)
    return model, converted


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    model, converted = convert(onnx.load(argv[1]))
    onnx.save(model, argv[2])
    print(f'{argv[2]}: {converted} activation zero points int8 -> uint8')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
