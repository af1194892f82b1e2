#include "half_compute.h"

#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "float16.h"

namespace axstream::engine {
namespace {

bool is_half(DType dtype) { return dtype == DType::f16 || dtype == DType::bf16; }

// ONNX's TensorProto element types of the dtypes a Cast inserted here writes.
int64_t onnx_element_type(DType dtype) {
  switch (dtype) {
    case DType::f16:
      return 10;
    case DType::bf16:
      return 16;
    default:
      return 1;  // float32
  }
}

// Cast-13: every opset from 13 on reads float16/bfloat16 the same way.
Node cast_node(const std::string &name, int from, int to, DType dtype) {
  Node cast;
  cast.name = name;
  cast.op_type = "Cast";
  cast.opset = 13;
  cast.inputs = {from};
  cast.outputs = {to};
  Attribute a;
  a.kind = Attribute::Kind::i;
  a.i = onnx_element_type(dtype);
  cast.attrs["to"] = a;
  return cast;
}

}  // namespace

bool needs_float32_compute(const Graph &graph, const OpDef &def, const Node &node) {
  if (def.moves_any_dtype) return false;
  for (int v : node.inputs)
    if (v >= 0 && is_half(graph.values[static_cast<size_t>(v)].dtype)) return true;
  return false;
}

DType first_float_input_dtype(const Graph &graph, const Node &node) {
  for (int v : node.inputs)
    if (v >= 0 && is_floating_dtype(graph.values[static_cast<size_t>(v)].dtype))
      return graph.values[static_cast<size_t>(v)].dtype;
  return DType::f32;
}

size_t insert_float32_input_casts(Graph &graph, size_t index, std::map<int, int> &widened) {
  std::vector<Node> casts;
  const std::string label = graph.nodes[index].label(graph.values);
  for (size_t i = 0; i < graph.nodes[index].inputs.size(); ++i) {
    int v = graph.nodes[index].inputs[i];
    if (v < 0 || !is_half(graph.values[static_cast<size_t>(v)].dtype)) continue;
    auto [it, inserted] = widened.try_emplace(v, -1);
    if (inserted) {
      Value f32;
      f32.name = graph.values[static_cast<size_t>(v)].name + "/float32";
      f32.dtype = DType::f32;
      it->second = graph.add_value(std::move(f32));
      casts.push_back(cast_node(label + "/input" + std::to_string(i) + "_to_float32", v, it->second,
                                DType::f32));
    }
    graph.nodes[index].inputs[i] = it->second;
  }
  graph.nodes.insert(graph.nodes.begin() + static_cast<std::ptrdiff_t>(index), casts.begin(),
                     casts.end());
  return casts.size();
}

size_t insert_half_output_casts(Graph &graph, size_t index, DType half) {
  if (!is_half(half) || graph.nodes[index].attrs.count("dtype")) return 0;
  std::vector<Node> casts;
  const std::string label = graph.nodes[index].label(graph.values);
  // An unnamed node keeps the label of its original output, not of its float32 one.
  if (graph.nodes[index].name.empty()) graph.nodes[index].name = label;
  for (size_t i = 0; i < graph.nodes[index].outputs.size(); ++i) {
    int v = graph.nodes[index].outputs[i];
    if (v < 0 || graph.values[static_cast<size_t>(v)].dtype != DType::f32) continue;
    // The float32 result gets a value of its own; the original one, which readers and graph
    // outputs name, becomes the Cast's output (its dtype set when the Cast is inferred).
    Value f32 = graph.values[static_cast<size_t>(v)];
    f32.name += "/float32_unrounded";
    int wide = graph.add_value(std::move(f32));
    graph.values[static_cast<size_t>(v)].constant.reset();
    graph.values[static_cast<size_t>(v)].dtype = half;
    graph.nodes[index].outputs[i] = wide;
    casts.push_back(cast_node(label + "/output" + std::to_string(i) + "_to_" + dtype_name(half),
                              wide, v, half));
  }
  graph.nodes.insert(graph.nodes.begin() + static_cast<std::ptrdiff_t>(index) + 1, casts.begin(),
                     casts.end());
  return casts.size();
}

namespace {

// Ops whose every float output element is one of their float input elements, or a value any
// half format holds exactly (0, +-1, an integer of at most the input's magnitude), so on inputs
// exact in a half format their float32 result is exact in it too.
bool selects_half_values(const Node &n) {
  static const std::set<std::string> ops = {
      "Relu",      "Abs",   "Neg",  "Max",   "Min",  "MaxPool",       "ReduceMax",
      "ReduceMin", "Floor", "Ceil", "Round", "Sign", "GlobalMaxPool", "Clip"};
  if (!n.domain.empty() || !ops.count(n.op_type)) return false;
  // Clip before opset 11 takes its bounds as float attributes, which need not be exact.
  return !n.attrs.count("min") && !n.attrs.count("max");
}

const Node *cast_to(const Graph &g, const Node &n, DType to) {
  if (n.dead || !n.domain.empty() || n.op_type != "Cast") return nullptr;
  auto it = n.attrs.find("to");
  if (it == n.attrs.end() || it->second.i != onnx_element_type(to)) return nullptr;
  if (n.inputs.size() != 1 || n.inputs[0] < 0) return nullptr;
  return &n;
}

// Whether float32 constant `t` holds only values `half` represents exactly.
bool constant_exact_in(const Tensor &t, DType half) {
  if (t.dtype != DType::f32) return false;
  const float *x = t.data<float>();
  for (int64_t i = 0; i < t.count(); ++i) {
    if (std::isnan(x[i])) continue;
    float back = half == DType::f16 ? half_to_float(float_to_half(x[i]))
                                    : bfloat16_to_float(float_to_bfloat16(x[i]));
    if (back != x[i]) return false;
  }
  return true;
}

}  // namespace

namespace {

// Whether Relu or Clip node `act` gives the same half value whether its input is rounded to
// `half` before it or its output after it: Clip's bounds must be constants `half` holds exactly.
bool commutes_with_half_rounding(const Graph &g, const Node &act, DType half) {
  if (act.dead || !act.domain.empty()) return false;
  if (act.op_type == "Relu") return true;
  if (act.op_type != "Clip") return false;
  for (const char *bound : {"min", "max"}) {
    auto it = act.attrs.find(bound);
    if (it == act.attrs.end()) continue;
    Tensor t(DType::f32, Shape{1});
    t.data<float>()[0] = it->second.f;
    if (!constant_exact_in(t, half)) return false;
  }
  for (size_t i = 1; i < act.inputs.size(); ++i) {
    int v = act.inputs[i];
    if (v < 0) continue;
    const Value &value = g.values[static_cast<size_t>(v)];
    if (!value.constant || value.constant->count() != 1 ||
        !constant_exact_in(*value.constant, half))
      return false;
  }
  return true;
}

bool is_live_op(const Node &n, const char *op) {
  return !n.dead && n.domain.empty() && n.op_type == op && n.outputs.size() == 1;
}

// An inference-mode BatchNormalization, which fold_batchnorm folds into a Conv,
// ConvTranspose or Gemm producing its input.
bool is_inference_batchnorm(const Node &n) {
  if (!is_live_op(n, "BatchNormalization")) return false;
  auto it = n.attrs.find("training_mode");
  return it == n.attrs.end() || it->second.i == 0;
}

bool folds_batchnorm(const Node &n) {
  if (n.attrs.count("_bias_after_rounding_to")) return false;  // see fold_batchnorm
  return is_live_op(n, "Conv") || is_live_op(n, "ConvTranspose") || is_live_op(n, "Gemm");
}

bool fuses_activation(const Node &n) {
  return (is_live_op(n, "Conv") || is_live_op(n, "Gemm") || is_live_op(n, "MatMul")) &&
         !n.attrs.count("_activation");
}

}  // namespace

namespace {

// The one live node reading each value, for values read once (graph outputs count as reads).
class SingleReaders {
 public:
  explicit SingleReaders(Graph &g) : g_(g), uses_(g.use_counts()), reader_(g.values.size(), -1) {
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      if (g.nodes[i].dead) continue;
      for (int v : g.nodes[i].inputs)
        if (v >= 0) reader_[static_cast<size_t>(v)] = static_cast<int>(i);
    }
  }
  Node *of(int v) const {
    if (v < 0 || uses_[static_cast<size_t>(v)] != 1 || reader_[static_cast<size_t>(v)] < 0)
      return nullptr;
    return &g_.nodes[static_cast<size_t>(reader_[static_cast<size_t>(v)])];
  }
  int uses(int v) const { return uses_[static_cast<size_t>(v)]; }

 private:
  Graph &g_;
  std::vector<int> uses_;
  std::vector<int> reader_;
};

// A float32 result rounded to a half type and widened back: `narrow` (a Cast to `half`) is the
// only reader of `wide`, which `made` produces, and `widen` (a Cast to float32) is the only reader
// of the half value. `made` is null when `narrow` starts no such round trip.
struct HalfRoundTrip {
  int wide = -1;
  DType half = DType::f32;
  Node *made = nullptr;
  Node *widen = nullptr;
};

HalfRoundTrip half_round_trip(Graph &g, const std::vector<int> &producer,
                              const SingleReaders &readers, const Node &narrow) {
  if (narrow.dead || narrow.outputs.size() != 1 || narrow.inputs.empty()) return {};
  const int wide = narrow.inputs[0];
  if (wide < 0 || g.values[static_cast<size_t>(wide)].dtype != DType::f32) return {};
  const DType half = g.values[static_cast<size_t>(narrow.outputs[0])].dtype;
  if (!is_half(half) || !cast_to(g, narrow, half)) return {};
  const int made_by = producer[static_cast<size_t>(wide)];
  if (made_by < 0 || readers.uses(wide) != 1) return {};
  Node *widen = readers.of(narrow.outputs[0]);
  if (!widen || !cast_to(g, *widen, DType::f32) || widen->outputs.size() != 1) return {};
  return {wide, half, &g.nodes[static_cast<size_t>(made_by)], widen};
}

// `bias` as one float32 per column of an output of shape `out`, when it varies over the last
// axis only and does not broadcast `out` (shape (N), (1, N), a scalar, ...); otherwise null.
std::shared_ptr<Tensor> bias_per_column(const Tensor &bias, const Shape &out) {
  if (bias.dtype != DType::f32 || out.empty() || bias.shape.size() > out.size()) return nullptr;
  const int64_t columns = out.back();
  for (size_t i = 0; i + 1 < bias.shape.size(); ++i)
    if (bias.shape[i] != 1) return nullptr;
  if (!bias.shape.empty() && bias.shape.back() != 1 && bias.shape.back() != columns) return nullptr;
  if (bias.count() != 1 && bias.count() != columns) return nullptr;
  auto column = std::make_shared<Tensor>(DType::f32, Shape{columns});
  for (int64_t c = 0; c < columns; ++c)
    column->data<float>()[c] = bias.data<float>()[bias.count() == 1 ? 0 : c];
  return column;
}

}  // namespace

void fuse_half_bias_add(Graph &g) {
  std::vector<int> producer = g.producers();
  SingleReaders readers(g);
  for (Node &narrow : g.nodes) {
    const auto [wide, half, made_node, widen] = half_round_trip(g, producer, readers, narrow);
    if (!made_node) continue;
    Node &made = *made_node;
    if (!(is_live_op(made, "MatMul") || is_live_op(made, "Gemm")) ||
        made.attrs.count("_activation") || made.attrs.count("_bias_after_rounding_to"))
      continue;
    // A MatMul by a vector B has no column axis for the bias.
    if (made.inputs.size() < 2 || made.inputs[1] < 0 ||
        g.values[static_cast<size_t>(made.inputs[1])].shape.size() < 2)
      continue;
    const int rounded = widen->outputs[0];
    Node *add = readers.of(rounded);
    if (!add || !is_live_op(*add, "Add") || add->inputs.size() != 2) continue;
    const int bias = add->inputs[0] == rounded ? add->inputs[1] : add->inputs[0];
    if (bias < 0 || bias == rounded || !g.values[static_cast<size_t>(bias)].constant) continue;
    const Value &product = g.values[static_cast<size_t>(wide)];
    const Value &sum = g.values[static_cast<size_t>(add->outputs[0])];
    if (!product.shape_known || !sum.shape_known || product.shape != sum.shape ||
        sum.dtype != DType::f32)
      continue;
    std::shared_ptr<Tensor> column =
        bias_per_column(*g.values[static_cast<size_t>(bias)].constant, product.shape);
    if (!column) continue;
    Value bias_value;
    bias_value.name = g.values[static_cast<size_t>(bias)].name + "/per_column";
    bias_value.dtype = DType::f32;
    bias_value.shape = column->shape;
    bias_value.shape_known = true;
    bias_value.constant = column;
    // Gemm's optional C is input 2: the bias follows it (an omitted C as -1).
    if (is_live_op(made, "Gemm")) made.inputs.resize(3, -1);
    made.inputs.push_back(g.add_value(std::move(bias_value)));
    Attribute to;
    to.kind = Attribute::Kind::s;
    to.s = dtype_name(half);
    made.attrs["_bias_after_rounding_to"] = to;
    made.outputs = add->outputs;
    narrow.dead = true;
    widen->dead = true;
    add->dead = true;
  }
}

void round_half_after_activations(Graph &g) {
  std::vector<int> producer = g.producers();
  SingleReaders readers(g);
  auto only_reader = [&](int v) { return readers.of(v); };
  for (Node &narrow : g.nodes) {
    const auto [wide, half, made_node, widen] = half_round_trip(g, producer, readers, narrow);
    if (!made_node) continue;
    const Node &made = *made_node;
    Node *act = only_reader(widen->outputs[0]);
    if (!act || act->inputs[0] != widen->outputs[0] || act->outputs.size() != 1) continue;
    if (is_inference_batchnorm(*act)) {
      // Not exact: the folded BatchNorm rounds once where the graph rounds the convolution's
      // result and the BatchNorm's, as ONNX Runtime's fp16 Conv+BatchNorm fusion does too.
      // Only where fold_batchnorm can fold: constant weights and statistics.
      bool constants = made.inputs.size() > 1 && made.inputs[1] >= 0 &&
                       g.values[static_cast<size_t>(made.inputs[1])].constant;
      for (size_t i = 1; i < 5; ++i)
        constants = constants && i < act->inputs.size() && act->inputs[i] >= 0 &&
                    g.values[static_cast<size_t>(act->inputs[i])].constant;
      if (!folds_batchnorm(made) || !constants) continue;
    } else {
      // A BatchNorm this pass moved onto its convolution's float32 result folds into it, and
      // then the activation fuses into the convolution.
      const bool folded_batchnorm =
          is_inference_batchnorm(made) && made.inputs[0] >= 0 &&
          producer[static_cast<size_t>(made.inputs[0])] >= 0 &&
          fuses_activation(
              g.nodes[static_cast<size_t>(producer[static_cast<size_t>(made.inputs[0])])]);
      if (!(fuses_activation(made) || folded_batchnorm) ||
          !commutes_with_half_rounding(g, *act, half))
        continue;
    }
    // The activation's result must reach nothing but its own rounding to the same half type.
    Node *rounding = only_reader(act->outputs[0]);
    if (!rounding || !cast_to(g, *rounding, half) ||
        g.values[static_cast<size_t>(rounding->outputs[0])].dtype != half)
      continue;
    act->inputs[0] = wide;
    narrow.dead = true;
    widen->dead = true;
  }
}

void drop_exact_half_round_trips(Graph &g) {
  // The half format each float32 value is known to be exact in.
  std::map<int, DType> exact;
  auto exact_in = [&](int v, DType half) {
    const Value &value = g.values[static_cast<size_t>(v)];
    if (value.constant) return constant_exact_in(*value.constant, half);
    auto it = exact.find(v);
    return it != exact.end() && it->second == half;
  };
  std::vector<int> producer = g.producers();
  std::vector<int> replace(g.values.size());
  for (size_t v = 0; v < replace.size(); ++v) replace[v] = static_cast<int>(v);
  for (Node &n : g.nodes) {
    if (n.dead) continue;
    for (int &in : n.inputs)
      if (in >= 0) in = replace[static_cast<size_t>(in)];
    if (cast_to(g, n, DType::f32)) {
      int source = n.inputs[0];
      DType from = g.values[static_cast<size_t>(source)].dtype;
      if (!is_half(from)) continue;
      // Cast(half -> float32) of Cast(float32 -> half) of a float32 value exact in half: the
      // pair changes nothing, its readers take that value.
      int made_by = producer[static_cast<size_t>(source)];
      if (made_by >= 0 && cast_to(g, g.nodes[static_cast<size_t>(made_by)], from)) {
        int wide = g.nodes[static_cast<size_t>(made_by)].inputs[0];
        if (g.values[static_cast<size_t>(wide)].dtype == DType::f32 && exact_in(wide, from)) {
          replace[static_cast<size_t>(n.outputs[0])] = wide;
          continue;
        }
      }
      exact[n.outputs[0]] = from;
      continue;
    }
    if (!selects_half_values(n)) continue;
    // The half format of its computed float inputs (constants are checked against it).
    std::optional<DType> half;
    for (int in : n.inputs)
      if (in >= 0 && !g.values[static_cast<size_t>(in)].constant && exact.count(in)) {
        half = exact[in];
        break;
      }
    bool all_exact = half.has_value();
    for (int in : n.inputs)
      if (half && in >= 0 && g.values[static_cast<size_t>(in)].dtype == DType::f32 &&
          !exact_in(in, *half))
        all_exact = false;
    if (!all_exact || !half) continue;
    for (int out : n.outputs)
      if (out >= 0 && g.values[static_cast<size_t>(out)].dtype == DType::f32) exact[out] = *half;
  }
}

}  // namespace axstream::engine
