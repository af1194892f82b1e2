"""A small seeded ONNX graph builder shared by the scripts that make test and benchmark models
(tests/compiler/make_float_models.py, benchmarks/make_bench_models.py)."""
import numpy as np
import onnx
from onnx import helper, numpy_helper


class GraphBuilder:
    """Collects nodes and initializers; every name is unique; weights come from a seeded RNG."""

    def __init__(self, seed, opset=13, producer="axstream"):
        self.opset = opset
        self.producer = producer
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, prefix):
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, array, prefix="c"):
        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array), n))
        return n

    def node(self, op, inputs, prefix=None, **attrs):
        out = self.name(prefix or op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out + "_node", **attrs))
        return out

    def model(self, inputs, outputs, name):
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                              producer_name=self.producer)
        m.ir_version = 7
        onnx.checker.check_model(m)
        return m
