// Builds the small ONNX graphs the engine tests feed to the passes (nodes, initializers, Q/DQ).
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <vector>

namespace axstream::test {

constexpr auto kFloat = onnx::TensorProto::FLOAT;
constexpr auto kInt8 = onnx::TensorProto::INT8;
constexpr auto kUint8 = onnx::TensorProto::UINT8;
constexpr auto kInt32 = onnx::TensorProto::INT32;
constexpr auto kFloat16 = onnx::TensorProto::FLOAT16;

// An opset-13 model whose graph grows one call at a time. Nodes are named "<output>/<op>".
struct GraphBuilder {
  onnx::ModelProto model;
  onnx::GraphProto *graph;

  explicit GraphBuilder(const std::string &name) : graph(model.mutable_graph()) {
    model.set_ir_version(7);
    model.add_opset_import()->set_version(13);
    graph->set_name(name);
  }

  onnx::NodeProto *node(const std::string &op, const std::vector<std::string> &in,
                        const std::string &out) {
    auto *n = graph->add_node();
    n->set_op_type(op);
    n->set_name(out + "/" + op);
    for (const auto &i : in) n->add_input(i);
    n->add_output(out);
    return n;
  }

  // `values` go to float_data for FLOAT tensors and to int32_data for the integer types.
  std::string initializer(const std::string &name, onnx::TensorProto::DataType type,
                          const std::vector<int64_t> &dims, const std::vector<float> &values) {
    auto *t = graph->add_initializer();
    t->set_name(name);
    t->set_data_type(type);
    for (int64_t d : dims) t->add_dims(d);
    for (float v : values) {
      if (type == kFloat)
        t->add_float_data(v);
      else
        t->add_int32_data(static_cast<int32_t>(v));
    }
    return name;
  }

  // A FLOAT16 initializer of raw half bit patterns.
  std::string half_initializer(const std::string &name, const std::vector<int64_t> &dims,
                               const std::vector<uint16_t> &bits) {
    auto *t = graph->add_initializer();
    t->set_name(name);
    t->set_data_type(kFloat16);
    for (int64_t d : dims) t->add_dims(d);
    t->set_raw_data(std::string(reinterpret_cast<const char *>(bits.data()), bits.size() * 2));
    return name;
  }

  // Dequantizes q into y through scalar initializers `<params>s` (scale) and `<params>z` (int8
  // zero point). With `zeros` named, the result goes to y + "/raw" and an Add of `zeros` (all
  // 0) makes y: the same arithmetic with no Q/DQ pattern left for the passes to fuse.
  void dequantize(const std::string &q, const std::string &y, float scale, int zero_point,
                  const std::string &params, const std::string &zeros = "") {
    const std::string out = zeros.empty() ? y : y + "/raw";
    node("DequantizeLinear",
         {q, initializer(params + "s", kFloat, {}, {scale}),
          initializer(params + "z", kInt8, {}, {static_cast<float>(zero_point)})},
         out);
    if (!zeros.empty()) node("Add", {out, zeros}, y);
  }

  // Quantizes x into y through scalar initializers `<params>s` and `<params>z` (of `type`).
  void quantize(const std::string &x, const std::string &y, float scale, int zero_point,
                const std::string &params, onnx::TensorProto::DataType type = kInt8) {
    node("QuantizeLinear",
         {x, initializer(params + "s", kFloat, {}, {scale}),
          initializer(params + "z", type, {}, {static_cast<float>(zero_point)})},
         y);
  }

  // A 1x1 convolution x -> y with int8 `weights` (out x in) dequantized at one scale through
  // the parameters `<weight_params>s`, `<weight_params>z`.
  void conv1x1(const std::string &x, const std::string &y, int64_t out_channels,
               int64_t in_channels, const std::vector<float> &weights, float weight_scale,
               const std::string &weight_params) {
    initializer(y + "/w", kInt8, {out_channels, in_channels, 1, 1}, weights);
    dequantize(y + "/w", y + "/w/dq", weight_scale, 0, weight_params);
    node("Conv", {x, y + "/w/dq"}, y);
  }

  void input(const std::string &name, onnx::TensorProto::DataType type,
             const std::vector<int64_t> &dims) {
    describe(graph->add_input(), name, type, dims);
  }
  void output(const std::string &name, onnx::TensorProto::DataType type,
              const std::vector<int64_t> &dims) {
    describe(graph->add_output(), name, type, dims);
  }

 private:
  static void describe(onnx::ValueInfoProto *vi, const std::string &name,
                       onnx::TensorProto::DataType type, const std::vector<int64_t> &dims) {
    vi->set_name(name);
    auto *tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(type);
    for (int64_t d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
  }
};

inline onnx::AttributeProto *add_attribute(onnx::NodeProto *n, const char *name,
                                           onnx::AttributeProto::AttributeType type) {
  auto *a = n->add_attribute();
  a->set_name(name);
  a->set_type(type);
  return a;
}
inline void set_int(onnx::NodeProto *n, const char *name, int64_t value) {
  add_attribute(n, name, onnx::AttributeProto::INT)->set_i(value);
}
inline void set_ints(onnx::NodeProto *n, const char *name, const std::vector<int64_t> &values) {
  auto *a = add_attribute(n, name, onnx::AttributeProto::INTS);
  for (int64_t v : values) a->add_ints(v);
}
inline void set_float(onnx::NodeProto *n, const char *name, float value) {
  add_attribute(n, name, onnx::AttributeProto::FLOAT)->set_f(value);
}
inline void set_string(onnx::NodeProto *n, const char *name, const char *value) {
  add_attribute(n, name, onnx::AttributeProto::STRING)->set_s(value);
}
// A subgraph attribute (If's branches, a Loop or Scan body): the graph a GraphBuilder built.
inline void set_graph(onnx::NodeProto *n, const char *name, const GraphBuilder &body) {
  *add_attribute(n, name, onnx::AttributeProto::GRAPH)->mutable_g() = body.model.graph();
}

}  // namespace axstream::test
