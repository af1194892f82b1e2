// The engine's graph IR: values (typed, statically shaped, possibly constant) and nodes in
// execution order, as imported from ONNX and rewritten by the passes.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tensor.h"

namespace axstream::engine {

struct Graph;

struct Attribute {
  enum class Kind { f, i, s, t, floats, ints, strings, graph } kind = Kind::i;
  float f = 0;
  int64_t i = 0;
  std::string s;
  TensorPtr t;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  // An If branch or a Loop/Scan body (Kind::graph), imported as its own graph.
  std::shared_ptr<const Graph> graph;
};

struct Value {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  bool shape_known = false;
  // `shape` is an upper bound: the producer reports the actual shape when it runs
  // (OpContext::set_output_upper_bound). Only a graph output may be one.
  bool data_dependent = false;
  TensorPtr constant;  // set for initializers and folded values
  // A sequence or an optional is resolved when the program compiles (sequences.h): `elements`
  // lists the tensor values it holds (an optional: none or one; an optional sequence: one, the
  // sequence), `dtype` is its elements' type, and no kernel ever reads or writes it.
  enum class Kind { tensor, sequence, optional } kind = Kind::tensor;
  std::vector<int> elements;
};

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;  // "" for the ONNX default domain, "axstream" for fused internal ops
  int opset = 0;
  std::vector<int> inputs;  // value ids, -1 for an omitted optional input
  std::vector<int> outputs;
  std::map<std::string, Attribute> attrs;
  bool dead = false;

  // A printable name: the node name, or op type plus first output when unnamed.
  std::string label(const std::vector<Value> &values) const;
};

struct Graph {
  std::string source_name;
  std::vector<Value> values;
  std::vector<Node> nodes;
  std::vector<int> inputs;  // non-constant graph inputs, in ONNX order
  std::vector<int> outputs;
  std::map<std::string, int> opsets;  // domain -> version
  // A subgraph's last `captured_inputs` inputs are the outer-scope values it reads by name; its
  // node lists the same values, in the same order, after its own ONNX inputs.
  size_t captured_inputs = 0;
  // An If branch or a Loop/Scan/SequenceMap body: its outputs stay as the graph gives them
  // (a sequence or optional output is refused, not expanded into tensors).
  bool is_subgraph = false;
  // A subgraph declaring a sequence or optional input or output: its node is resolved when the
  // program compiles (sequences.h: an If's branch inlined, a Loop unrolled), not run as a program.
  bool has_container_io = false;
  size_t max_tensor_bytes = CompileOptions{}.max_tensor_bytes;  // its subgraphs compile with it

  int add_value(Value v) {
    values.push_back(std::move(v));
    return static_cast<int>(values.size()) - 1;
  }
  // Number of live node inputs and graph outputs reading each value.
  std::vector<int> use_counts() const;
  // Index of the live node producing each value (-1 for inputs/constants).
  std::vector<int> producers() const;
};

}  // namespace axstream::engine
