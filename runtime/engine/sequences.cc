#include "sequences.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <optional>

#include "axstream/error.h"
#include "op_registry.h"
#include "ops/common.h"

namespace axstream::engine {
namespace {

using Kind = Value::Kind;

const char *kind_name(Kind kind) {
  switch (kind) {
    case Kind::sequence:
      return "sequence";
    case Kind::optional:
      return "optional";
    case Kind::tensor:
      break;
  }
  return "tensor";
}

// "a sequence", "an optional", "a tensor".
std::string a_kind(Kind kind) {
  return std::string(kind == Kind::optional ? "an " : "a ") + kind_name(kind);
}

// The ops resolved here, with the opset that introduced them.
int first_opset(const std::string &op_type) {
  static const std::map<std::string, int> ops{
      {"SequenceConstruct", 11}, {"SequenceEmpty", 11},      {"SequenceInsert", 11},
      {"SequenceErase", 11},     {"SequenceAt", 11},         {"SequenceLength", 11},
      {"SplitToSequence", 11},   {"ConcatFromSequence", 11}, {"SequenceMap", 17},
      {"Optional", 15},          {"OptionalHasElement", 15}, {"OptionalGetElement", 15}};
  auto it = ops.find(op_type);
  return it == ops.end() ? -1 : it->second;
}

// The dtype of a container's tensors: its first element's (inferred by now), else the one it
// was made with (an empty sequence's `dtype`).
DType element_dtype(const Graph &graph, const Value &value) {
  if (value.kind == Kind::tensor || value.elements.empty()) return value.dtype;
  return element_dtype(graph, graph.values[static_cast<size_t>(value.elements.front())]);
}

// Gives value `id` a container's kind, elements and element dtype.
void make_container(Graph &graph, int id, Kind kind, DType dtype, std::vector<int> elements) {
  Value &v = graph.values[static_cast<size_t>(id)];
  v.kind = kind;
  v.dtype = dtype;
  v.elements = std::move(elements);
  v.shape.clear();
  v.shape_known = false;
}

void make_constant(Graph &graph, int id, Tensor tensor) {
  Value &v = graph.values[static_cast<size_t>(id)];
  v.dtype = tensor.dtype;
  v.shape = tensor.shape;
  v.shape_known = true;
  v.constant = std::make_shared<Tensor>(std::move(tensor));
}

int add_constant(Graph &graph, const std::string &name, Tensor tensor) {
  Value v;
  v.name = name;
  int id = graph.add_value(std::move(v));
  make_constant(graph, id, std::move(tensor));
  return id;
}

Tensor int64_tensor(const std::vector<int64_t> &values, bool scalar) {
  Tensor t(DType::i64, scalar ? Shape{} : Shape{static_cast<int64_t>(values.size())});
  std::copy(values.begin(), values.end(), t.data<int64_t>());
  return t;
}

// A node the lowering adds: an ONNX op at opset 13 (Split, Squeeze and Unsqueeze take their
// sizes and axes as inputs there).
Node tensor_node(const std::string &name, const std::string &op_type, std::vector<int> inputs,
                 std::vector<int> outputs) {
  Node n;
  n.name = name;
  n.op_type = op_type;
  n.opset = 13;
  n.inputs = std::move(inputs);
  n.outputs = std::move(outputs);
  return n;
}

// Rewrites node `index` in place into an Identity of `source` (a tensor): SequenceAt,
// OptionalGetElement.
void become_identity(Graph &graph, size_t index, int source) {
  Node &node = graph.nodes[index];
  node.op_type = "Identity";
  node.opset = 13;
  node.attrs.clear();
  node.inputs = {source};
}

const Value &container_input(const OpContext &ctx, size_t i, Kind kind, const char *what) {
  const Value &v = ctx.input(i);
  if (v.kind != kind)
    ctx.fail("input " + std::to_string(i) + " (" + what + ") '" + v.name + "' is " +
             a_kind(v.kind) + ", expected " + a_kind(kind));
  return v;
}

// A position or index read from constant input i, checked against [-count, last] and made
// non-negative. A run-time one is NotImplemented (the runner then freezes it).
int64_t position(const OpContext &ctx, size_t i, const char *what, int64_t count, int64_t last) {
  const Tensor &t = ctx.require_scalar(i, what);
  if (t.dtype != DType::i32 && t.dtype != DType::i64)
    ctx.fail("input " + std::to_string(i) + " (" + what + ") has dtype " + dtype_name(t.dtype) +
             ", expected int32 or int64");
  const int64_t p = t.dtype == DType::i64 ? t.data<int64_t>()[0] : t.data<int32_t>()[0];
  if (p < -count || p > last)
    ctx.fail(std::string(what) + " " + std::to_string(p) + " is out of range for a sequence of " +
             std::to_string(count) + " tensors (expected " + std::to_string(-count) + " to " +
             std::to_string(last) + ")");
  return p < 0 ? p + count : p;
}

void lower_sequence_construct(Graph &graph, Node &node, const OpContext &ctx) {
  if (node.inputs.empty()) ctx.fail("expected at least one input tensor");
  std::vector<int> elements;
  for (size_t i = 0; i < node.inputs.size(); ++i) {
    const Value &v = ctx.input(i);
    if (v.kind != Kind::tensor)
      ctx.fail("input " + std::to_string(i) + " '" + v.name + "' is " + a_kind(v.kind) +
               ", expected a tensor");
    if (v.dtype != ctx.in_dtype(0))
      ctx.fail("input " + std::to_string(i) + " '" + v.name + "' has dtype " + dtype_name(v.dtype) +
               ", input 0 " + dtype_name(ctx.in_dtype(0)) +
               " (a sequence's tensors share one dtype)");
    elements.push_back(node.inputs[i]);
  }
  make_container(graph, node.outputs.at(0), Kind::sequence, ctx.in_dtype(0), elements);
  node.dead = true;
}

void lower_sequence_empty(Graph &graph, Node &node, const OpContext &ctx) {
  const int64_t type = ctx.attr_i("dtype", 1);  // float, as ONNX defaults it
  std::optional<DType> dtype = dtype_of_onnx_element_type(type);
  if (!dtype) ctx.unsupported("dtype " + std::to_string(type) + " is not an engine tensor type");
  make_container(graph, node.outputs.at(0), Kind::sequence, *dtype, {});
  node.dead = true;
}

void lower_sequence_insert(Graph &graph, Node &node, const OpContext &ctx) {
  ctx.expect_inputs(2, 3);
  const Value &sequence = container_input(ctx, 0, Kind::sequence, "input_sequence");
  const Value &tensor = ctx.input(1);
  if (tensor.kind != Kind::tensor)
    ctx.fail("input 1 (tensor) '" + tensor.name + "' is " + a_kind(tensor.kind));
  const DType dtype = element_dtype(graph, sequence);
  if (tensor.dtype != dtype)
    ctx.fail("input 1 (tensor) '" + tensor.name + "' has dtype " + dtype_name(tensor.dtype) +
             ", the sequence's tensors " + dtype_name(dtype));
  std::vector<int> elements = sequence.elements;
  const auto count = static_cast<int64_t>(elements.size());
  const int64_t at = ctx.has_input(2) ? position(ctx, 2, "position", count, count) : count;
  elements.insert(elements.begin() + at, node.inputs[1]);
  make_container(graph, node.outputs.at(0), Kind::sequence, dtype, elements);
  node.dead = true;
}

void lower_sequence_erase(Graph &graph, Node &node, const OpContext &ctx) {
  ctx.expect_inputs(1, 2);
  const Value &sequence = container_input(ctx, 0, Kind::sequence, "input_sequence");
  std::vector<int> elements = sequence.elements;
  const auto count = static_cast<int64_t>(elements.size());
  if (count == 0)
    ctx.fail("input 0 '" + sequence.name + "' is an empty sequence: nothing to erase");
  const int64_t at = ctx.has_input(1) ? position(ctx, 1, "position", count, count - 1) : count - 1;
  elements.erase(elements.begin() + at);
  make_container(graph, node.outputs.at(0), Kind::sequence, element_dtype(graph, sequence),
                 elements);
  node.dead = true;
}

void lower_sequence_at(Graph &graph, size_t index, const OpContext &ctx) {
  ctx.expect_inputs(2, 2);
  const Value &sequence = container_input(ctx, 0, Kind::sequence, "input_sequence");
  const auto count = static_cast<int64_t>(sequence.elements.size());
  const int64_t at = position(ctx, 1, "position", count, count - 1);
  become_identity(graph, index, sequence.elements[static_cast<size_t>(at)]);
}

void lower_sequence_length(Graph &graph, Node &node, const OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  const Value &sequence = container_input(ctx, 0, Kind::sequence, "input_sequence");
  make_constant(graph, node.outputs.at(0),
                int64_tensor({static_cast<int64_t>(sequence.elements.size())}, true));
  node.dead = true;
}

// Every tensor of a sequence is a value and a node of the graph (SequenceMap's body copied for
// each), so a split into more tensors than this (a model splitting a long axis into rows) is
// refused rather than made into millions of nodes.
constexpr size_t kMaxSplitToSequenceTensors = 4096;

// SplitToSequence: a Split with one output per tensor of the sequence (Squeezed along the axis
// when `split` is absent and keepdims is 0).
void lower_split_to_sequence(Graph &graph, size_t index) {
  std::vector<int64_t> sizes;
  bool squeeze = false;
  int64_t axis = 0;
  DType dtype;
  {
    const Node &node = graph.nodes[index];
    OpContext ctx(graph, node, true);
    ctx.expect_inputs(1, 2);
    if (ctx.input(0).kind != Kind::tensor)
      ctx.fail("input 0 '" + ctx.input(0).name + "' is not a tensor");
    const Shape &in = ctx.in_shape(0);
    dtype = ctx.in_dtype(0);
    axis = ctx.axis(ctx.attr_i("axis", 0), in.size());
    const int64_t length = in[static_cast<size_t>(axis)];
    if (!ctx.has_input(1)) {
      sizes.assign(static_cast<size_t>(length), 1);
      squeeze = ctx.attr_i("keepdims", 1) == 0;
    } else {
      const Tensor &split = ctx.require_constant(1, "split");
      if (split.dtype != DType::i32 && split.dtype != DType::i64)
        ctx.fail("input 1 (split) has dtype " + std::string(dtype_name(split.dtype)) +
                 ", expected int32 or int64");
      if (split.shape.size() > 1)
        ctx.fail("input 1 (split) must be a scalar or 1-D, got shape " + shape_str(split.shape));
      std::vector<int64_t> values = ctx.constant_ints(1, "split");
      if (split.shape.empty()) {
        // A chunk size: the last chunk takes what is left.
        const int64_t chunk = values.at(0);
        if (chunk <= 0) ctx.fail("split " + std::to_string(chunk) + " must be positive");
        for (int64_t start = 0; start < length; start += chunk)
          sizes.push_back(std::min(chunk, length - start));
      } else {
        int64_t sum = 0;
        for (int64_t s : values) {
          if (s < 0) ctx.fail("split holds the negative size " + std::to_string(s));
          sum += s;
        }
        if (sum != length)
          ctx.fail("split sizes add up to " + std::to_string(sum) + ", axis " +
                   std::to_string(axis) + " of " + shape_str(in) + " has " +
                   std::to_string(length));
        sizes = values;
      }
    }
  }
  if (sizes.size() > kMaxSplitToSequenceTensors) {
    const OpContext ctx(graph, graph.nodes[index], true);
    ctx.unsupported("it would split into " + std::to_string(sizes.size()) +
                    " tensors; the engine makes each tensor of a sequence a value of the graph "
                    "when it compiles, up to " +
                    std::to_string(kMaxSplitToSequenceTensors));
  }
  const Node original = graph.nodes[index];
  const int sequence = original.outputs.at(0);
  const std::string base = original.label(graph.values);
  if (sizes.empty()) {
    make_container(graph, sequence, Kind::sequence, dtype, {});
    graph.nodes[index].dead = true;
    return;
  }
  std::vector<int> pieces, elements;
  for (size_t i = 0; i < sizes.size(); ++i) {
    Value piece;
    piece.name = base + "/" + std::to_string(i) + (squeeze ? "/unsqueezed" : "");
    pieces.push_back(graph.add_value(std::move(piece)));
  }
  const int split_sizes = add_constant(graph, base + "/split", int64_tensor(sizes, false));
  Node split = tensor_node(original.name, "Split", {original.inputs[0], split_sizes}, pieces);
  split.attrs["axis"].i = axis;
  std::vector<Node> added{std::move(split)};
  if (squeeze) {
    const int axes = add_constant(graph, base + "/axes", int64_tensor({axis}, false));
    for (size_t i = 0; i < pieces.size(); ++i) {
      Value element;
      element.name = base + "/" + std::to_string(i);
      const int id = graph.add_value(std::move(element));
      elements.push_back(id);
      added.push_back(
          tensor_node(base + "/squeeze" + std::to_string(i), "Squeeze", {pieces[i], axes}, {id}));
    }
  } else {
    elements = pieces;
  }
  make_container(graph, sequence, Kind::sequence, dtype, elements);
  graph.nodes[index] = std::move(added.front());
  graph.nodes.insert(graph.nodes.begin() + static_cast<std::ptrdiff_t>(index) + 1,
                     std::make_move_iterator(added.begin() + 1),
                     std::make_move_iterator(added.end()));
}

// ConcatFromSequence: a Concat of the tensors (each Unsqueezed first with new_axis 1).
void lower_concat_from_sequence(Graph &graph, size_t index) {
  std::vector<int> elements;
  int64_t axis = 0;
  bool new_axis = false;
  {
    const Node &node = graph.nodes[index];
    OpContext ctx(graph, node, true);
    ctx.expect_inputs(1, 1);
    const Value &sequence = container_input(ctx, 0, Kind::sequence, "input_sequence");
    if (sequence.elements.empty())
      ctx.fail("input 0 '" + sequence.name + "' is an empty sequence: nothing to concatenate");
    if (!ctx.has_attr("axis")) ctx.fail("attribute 'axis' is missing");
    new_axis = ctx.attr_i("new_axis", 0) != 0;
    const size_t rank = graph.values[static_cast<size_t>(sequence.elements[0])].shape.size();
    axis = ctx.axis(ctx.attr_i("axis", 0), rank + (new_axis ? 1 : 0));
    elements = sequence.elements;
  }
  Node concat = graph.nodes[index];
  concat.op_type = "Concat";
  concat.opset = 13;
  concat.attrs.clear();
  concat.attrs["axis"].i = axis;
  std::vector<Node> added;
  if (new_axis) {
    const std::string base = concat.label(graph.values);
    const int axes = add_constant(graph, base + "/axes", int64_tensor({axis}, false));
    for (size_t i = 0; i < elements.size(); ++i) {
      Value row;
      row.name = base + "/unsqueezed" + std::to_string(i);
      const int id = graph.add_value(std::move(row));
      added.push_back(tensor_node(base + "/unsqueeze" + std::to_string(i), "Unsqueeze",
                                  {elements[i], axes}, {id}));
      elements[i] = id;
    }
  }
  concat.inputs = elements;
  added.push_back(std::move(concat));
  graph.nodes[index] = std::move(added.front());
  graph.nodes.insert(graph.nodes.begin() + static_cast<std::ptrdiff_t>(index) + 1,
                     std::make_move_iterator(added.begin() + 1),
                     std::make_move_iterator(added.end()));
}

// Copies `body` into `graph` for one run of it, its input k reading outer value inputs[k]:
// its values get `prefix` on their names, its nodes go to the end of `nodes`. Returns the outer
// values of its outputs. A nested subgraph's outer-scope reads are inputs of its node, so they
// are remapped with the rest.
std::vector<int> inline_body(Graph &graph, const Graph &body, const std::vector<int> &inputs,
                             const std::string &prefix, std::vector<Node> &nodes) {
  std::vector<int> map(body.values.size(), -1);
  for (size_t k = 0; k < body.inputs.size(); ++k) {
    int outer = inputs.at(k);
    const Value &declared = body.values[static_cast<size_t>(body.inputs[k])];
    const Value &given = graph.values[static_cast<size_t>(outer)];
    if (declared.kind == Kind::optional && given.kind != Kind::optional) {
      // A value passed where the body declares an optional is the optional holding it (a Loop
      // carrying an optional sequence whose body gives the sequence).
      Value wrapped;
      wrapped.name = prefix + declared.name;
      const DType dtype = element_dtype(graph, given);
      outer = graph.add_value(std::move(wrapped));
      make_container(graph, outer, Kind::optional, dtype, {inputs.at(k)});
    }
    map[static_cast<size_t>(body.inputs[k])] = outer;
  }
  for (size_t v = 0; v < body.values.size(); ++v) {
    if (map[v] >= 0) continue;
    Value copy = body.values[v];
    copy.name = prefix + copy.name;
    map[v] = graph.add_value(std::move(copy));
  }
  for (const Node &n : body.nodes) {
    Node copy = n;
    if (!copy.name.empty()) copy.name = prefix + copy.name;
    for (int &in : copy.inputs)
      if (in >= 0) in = map[static_cast<size_t>(in)];
    for (int &out : copy.outputs) out = map[static_cast<size_t>(out)];
    nodes.push_back(std::move(copy));
  }
  std::vector<int> outputs;
  for (int out : body.outputs) outputs.push_back(map[static_cast<size_t>(out)]);
  return outputs;
}

// Replaces node `index` by `added`, or marks it dead and inserts `added` after it.
void replace_node(Graph &graph, size_t index, std::vector<Node> added) {
  graph.nodes[index].dead = true;
  graph.nodes.insert(graph.nodes.begin() + static_cast<std::ptrdiff_t>(index) + 1,
                     std::make_move_iterator(added.begin()), std::make_move_iterator(added.end()));
}

const Graph &graph_attribute(const OpContext &ctx, const char *name) {
  auto it = ctx.node().attrs.find(name);
  if (it == ctx.node().attrs.end() || !it->second.graph)
    ctx.fail(std::string("attribute '") + name + "' (a graph) is missing");
  return *it->second.graph;
}

// SequenceMap: the body inlined once per position of the sequences (their length is known),
// its nodes inserted after the node, which is then dead; output j is the sequence of the body's
// output j over the iterations.
void lower_sequence_map(Graph &graph, size_t index) {
  const Node node = graph.nodes[index];
  OpContext ctx(graph, graph.nodes[index], true);
  const Graph &body = graph_attribute(ctx, "body");
  const size_t formal = node.inputs.size() - body.captured_inputs;
  if (body.inputs.size() != node.inputs.size())
    ctx.fail("its body takes " + std::to_string(body.inputs.size() - body.captured_inputs) +
             " inputs, the node gives " + std::to_string(formal));
  if (body.outputs.size() != node.outputs.size())
    ctx.fail("its body gives " + std::to_string(body.outputs.size()) + " outputs, the node has " +
             std::to_string(node.outputs.size()));
  if (body.has_container_io)
    ctx.unsupported("its body takes or gives sequences or optionals (a sequence of sequences)");
  const Value &first = container_input(ctx, 0, Kind::sequence, "input_sequence");
  const size_t count = first.elements.size();
  for (size_t i = 1; i < formal; ++i) {
    const Value &v = ctx.input(i);
    if (v.kind == Kind::optional)
      ctx.fail("input " + std::to_string(i) + " '" + v.name + "' is an optional");
    if (v.kind == Kind::sequence && v.elements.size() != count)
      ctx.fail("input " + std::to_string(i) + " '" + v.name + "' holds " +
               std::to_string(v.elements.size()) + " tensors, input 0 '" + first.name + "' " +
               std::to_string(count) + " (every sequence it maps must have the same length)");
  }
  const std::string base = node.label(graph.values);
  std::vector<std::vector<int>> outputs(node.outputs.size());
  std::vector<Node> inlined;
  for (size_t iteration = 0; iteration < count; ++iteration) {
    std::vector<int> inputs;
    for (size_t k = 0; k < body.inputs.size(); ++k) {
      const Value &v = graph.values[static_cast<size_t>(node.inputs[k])];
      inputs.push_back(k < formal && v.kind == Kind::sequence ? v.elements[iteration]
                                                              : node.inputs[k]);
    }
    std::vector<int> results =
        inline_body(graph, body, inputs, base + "/" + std::to_string(iteration) + "/", inlined);
    for (size_t j = 0; j < results.size(); ++j) outputs[j].push_back(results[j]);
  }
  for (size_t j = 0; j < node.outputs.size(); ++j)
    // The dtype is the body's outputs' once inferred (element_dtype reads it from them).
    make_container(graph, node.outputs[j], Kind::sequence, DType::f32, outputs[j]);
  replace_node(graph, index, std::move(inlined));
}

// What a Loop body's condition output is whenever the body runs (its condition input is then
// true): a constant, or the condition input passed on through Identity; nullopt when computed.
std::optional<bool> body_condition(const Graph &body) {
  int v = body.outputs.at(0);
  const std::vector<int> producers = body.producers();
  for (;;) {
    if (body.inputs.size() > 1 && v == body.inputs[1]) return true;
    const Value &value = body.values[static_cast<size_t>(v)];
    if (value.constant && value.constant->count() == 1) return value.constant->as_double(0) != 0;
    const int producer = producers[static_cast<size_t>(v)];
    if (producer < 0) return std::nullopt;
    const Node &n = body.nodes[static_cast<size_t>(producer)];
    if (n.op_type != "Identity" || n.inputs.empty() || n.inputs[0] < 0) return std::nullopt;
    v = n.inputs[0];
  }
}

// A sequence's length changes from one iteration to the next, so a Loop over sequences or
// optionals is unrolled when the program compiles (its body inlined once per iteration, the
// iteration number a constant): the trip count must be a constant, and the loop unable to end
// early except by a constant condition.
constexpr int64_t kMaxUnrolledIterations = 64;

void lower_loop(Graph &graph, size_t index) {
  const Node node = graph.nodes[index];
  OpContext ctx(graph, graph.nodes[index], true);
  const Graph &body = graph_attribute(ctx, "body");
  const size_t formal = node.inputs.size() - body.captured_inputs;
  if (formal < 2 || body.inputs.size() != node.inputs.size() || body.outputs.size() < formal - 1 ||
      node.outputs.size() != body.outputs.size() - 1)
    ctx.fail("its body's inputs and outputs do not match the node's");
  const size_t carried = formal - 2, scans = node.outputs.size() - carried;
  if (!ctx.has_input(0))
    ctx.unsupported(
        "it has no trip count M; a loop over sequences or optionals is unrolled when the program "
        "compiles, which needs M a constant");
  const Tensor &m = ctx.require_scalar(0, "trip count M, which a loop over sequences unrolls");
  const int64_t trip_count = std::max<int64_t>(0, static_cast<int64_t>(m.as_double(0)));
  if (trip_count > kMaxUnrolledIterations)
    ctx.unsupported(
        "a loop over sequences or optionals is unrolled when the program compiles, "
        "up to " +
        std::to_string(kMaxUnrolledIterations) + " iterations; this loop has " +
        std::to_string(trip_count));
  bool running = !ctx.has_input(1) || ctx.require_scalar(1, "condition").as_double(0) != 0;
  const std::optional<bool> keeps_running = body_condition(body);
  if (!keeps_running)
    ctx.unsupported("its body computes its condition output '" +
                    body.values[static_cast<size_t>(body.outputs[0])].name +
                    "' at run time; a loop over sequences or optionals is unrolled when the "
                    "program compiles, which needs its iteration count known then (a condition "
                    "output that is a constant or the condition input passed on)");
  const std::string base = node.label(graph.values);
  std::vector<int> state(node.inputs.begin() + 2,
                         node.inputs.begin() + static_cast<std::ptrdiff_t>(formal));
  std::vector<std::vector<int>> rows(scans);
  std::vector<Node> added;
  for (int64_t iteration = 0; iteration < trip_count && running; ++iteration) {
    const std::string prefix = base + "/" + std::to_string(iteration) + "/";
    Tensor condition(DType::bool_, {});
    condition.bytes[0] = 1;
    std::vector<int> inputs{
        add_constant(graph, prefix + "iteration", int64_tensor({iteration}, true)),
        add_constant(graph, prefix + "condition", std::move(condition))};
    inputs.insert(inputs.end(), state.begin(), state.end());
    inputs.insert(inputs.end(), node.inputs.begin() + static_cast<std::ptrdiff_t>(formal),
                  node.inputs.end());
    const std::vector<int> results = inline_body(graph, body, inputs, prefix, added);
    std::copy(results.begin() + 1, results.begin() + 1 + static_cast<std::ptrdiff_t>(carried),
              state.begin());
    for (size_t s = 0; s < scans; ++s) rows[s].push_back(results[1 + carried + s]);
    running = *keeps_running;
  }
  // The final values through Identity, which passes a sequence or optional on as well.
  for (size_t j = 0; j < carried; ++j)
    added.push_back(
        tensor_node(base + "/out" + std::to_string(j), "Identity", {state[j]}, {node.outputs[j]}));
  for (size_t s = 0; s < scans; ++s) {
    if (rows[s].empty())
      ctx.unsupported("no iteration runs, so its scan output " + std::to_string(s) +
                      " has no shape to be empty in");
    const int axes = add_constant(graph, base + "/scan_axes", int64_tensor({0}, false));
    std::vector<int> unsqueezed;
    for (size_t r = 0; r < rows[s].size(); ++r) {
      Value row;
      row.name = base + "/scan" + std::to_string(s) + "/row" + std::to_string(r);
      unsqueezed.push_back(graph.add_value(std::move(row)));
      added.push_back(
          tensor_node(graph.values[static_cast<size_t>(unsqueezed.back())].name + "/Unsqueeze",
                      "Unsqueeze", {rows[s][r], axes}, {unsqueezed.back()}));
    }
    Node concat = tensor_node(base + "/scan" + std::to_string(s), "Concat", unsqueezed,
                              {node.outputs[carried + s]});
    concat.attrs["axis"].i = 0;
    added.push_back(std::move(concat));
  }
  replace_node(graph, index, std::move(added));
}

// An If whose branches give sequences or optionals, or read them: the branch its condition
// takes is inlined, so the condition must be a constant.
void lower_if(Graph &graph, size_t index) {
  const Node node = graph.nodes[index];
  OpContext ctx(graph, graph.nodes[index], true);
  const bool condition =
      ctx.require_scalar(0,
                         "condition, which picks the branch whose sequences or optionals the "
                         "program holds")
          .as_double(0) != 0;
  const Graph &branch = graph_attribute(ctx, condition ? "then_branch" : "else_branch");
  if (branch.inputs.size() + 1 != node.inputs.size() ||
      branch.outputs.size() != node.outputs.size())
    ctx.fail("its branch's inputs and outputs do not match the node's");
  std::vector<Node> added;
  const std::string base = node.label(graph.values);
  const std::vector<int> results =
      inline_body(graph, branch, std::vector<int>(node.inputs.begin() + 1, node.inputs.end()),
                  base + (condition ? "/then/" : "/else/"), added);
  for (size_t j = 0; j < results.size(); ++j)
    added.push_back(tensor_node(base + "/out" + std::to_string(j), "Identity", {results[j]},
                                {node.outputs[j]}));
  replace_node(graph, index, std::move(added));
}

void lower_optional(Graph &graph, Node &node, const OpContext &ctx) {
  ctx.expect_inputs(0, 1);
  if (!ctx.has_input(0)) {
    // Its `type` attribute (a TypeProto) is not imported: an empty optional's element type
    // matters to nothing the engine does with it.
    make_container(graph, node.outputs.at(0), Kind::optional, DType::f32, {});
  } else {
    const Value &element = ctx.input(0);
    if (element.kind == Kind::optional) ctx.fail("input 0 '" + element.name + "' is an optional");
    make_container(graph, node.outputs.at(0), Kind::optional, element_dtype(graph, element),
                   {node.inputs[0]});
  }
  node.dead = true;
}

void lower_optional_has_element(Graph &graph, Node &node, const OpContext &ctx) {
  ctx.expect_inputs(0, 1);
  if (!ctx.has_input(0) && ctx.opset() < 18) ctx.fail("input 0 is required before opset 18");
  bool present = false;
  if (ctx.has_input(0)) {
    const Value &v = ctx.input(0);
    if (v.kind != Kind::optional && ctx.opset() < 18)
      ctx.fail("input 0 '" + v.name + "' is " + a_kind(v.kind) +
               ", expected an optional (a tensor or sequence only from opset 18)");
    present = v.kind != Kind::optional || !v.elements.empty();
  }
  Tensor result(DType::bool_, {});
  result.bytes[0] = present ? 1 : 0;
  make_constant(graph, node.outputs.at(0), std::move(result));
  node.dead = true;
}

void lower_optional_get_element(Graph &graph, size_t index, const OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  const Value &v = ctx.input(0);
  int element = ctx.node().inputs[0];
  if (v.kind == Kind::optional) {
    if (v.elements.empty()) ctx.fail("input 0 '" + v.name + "' is an optional without an element");
    element = v.elements.front();
  } else if (ctx.opset() < 18) {
    ctx.fail("input 0 '" + v.name + "' is " + a_kind(v.kind) +
             ", expected an optional (a tensor or sequence only from opset 18)");
  }
  const Value &got = graph.values[static_cast<size_t>(element)];
  if (got.kind == Kind::tensor) {
    become_identity(graph, index, element);
    return;
  }
  Node &node = graph.nodes[index];
  make_container(graph, node.outputs.at(0), got.kind, got.dtype, got.elements);
  node.dead = true;
}

// A node whose subgraph takes or gives sequences or optionals (an If branch returning one, a
// Loop body carrying one).
bool has_container_subgraph(const Node &node) {
  for (const auto &[name, attr] : node.attrs)
    if (attr.graph && attr.graph->has_container_io) return true;
  return false;
}

}  // namespace

bool is_sequence_op(const std::string &op_type) { return first_opset(op_type) >= 0; }

bool is_sequence_node(const Graph &graph, const Node &node) {
  if (node.domain.empty() && is_sequence_op(node.op_type)) return true;
  if (has_container_subgraph(node)) return true;
  for (int v : node.inputs)
    if (v >= 0 && graph.values[static_cast<size_t>(v)].kind != Kind::tensor) return true;
  return false;
}

void lower_sequence_node(Graph &graph, size_t index) {
  Node &node = graph.nodes[index];
  const OpContext ctx(graph, node, true);
  const int since = node.domain.empty() ? first_opset(node.op_type) : -1;
  if (since < 0 && node.domain.empty() && node.op_type == "Loop") return lower_loop(graph, index);
  if (since < 0 && node.domain.empty() && node.op_type == "If") return lower_if(graph, index);
  if (since < 0 && has_container_subgraph(node))
    ctx.unsupported(
        "its subgraph takes or gives sequences or optionals; the engine resolves them "
        "when it compiles, which it does for If (a constant condition) and Loop "
        "(unrolled), not for this op");
  if (since < 0) {
    size_t i = 0;
    while (i < node.inputs.size() &&
           (node.inputs[i] < 0 ||
            graph.values[static_cast<size_t>(node.inputs[i])].kind == Kind::tensor))
      ++i;
    const Value &container = ctx.input(i);
    if (node.domain.empty() && node.op_type == "Identity" && node.inputs.size() == 1) {
      make_container(graph, node.outputs.at(0), container.kind, container.dtype,
                     container.elements);
      node.dead = true;
      return;
    }
    ctx.unsupported("input " + std::to_string(i) + " '" + container.name + "' is " +
                    a_kind(container.kind) +
                    "; the engine resolves sequences and optionals when it compiles, and only "
                    "the sequence and optional ops, Identity, If (a constant condition) and Loop "
                    "(unrolled) take them (docs/runtime.md)");
  }
  if (node.opset < since) ctx.unsupported("the op is defined from opset " + std::to_string(since));
  if (node.op_type == "SequenceEmpty") return lower_sequence_empty(graph, node, ctx);
  if (node.op_type == "SequenceConstruct") return lower_sequence_construct(graph, node, ctx);
  if (node.op_type == "SequenceInsert") return lower_sequence_insert(graph, node, ctx);
  if (node.op_type == "SequenceErase") return lower_sequence_erase(graph, node, ctx);
  if (node.op_type == "SequenceAt") return lower_sequence_at(graph, index, ctx);
  if (node.op_type == "SequenceLength") return lower_sequence_length(graph, node, ctx);
  if (node.op_type == "SplitToSequence") return lower_split_to_sequence(graph, index);
  if (node.op_type == "ConcatFromSequence") return lower_concat_from_sequence(graph, index);
  if (node.op_type == "SequenceMap") return lower_sequence_map(graph, index);
  if (node.op_type == "Optional") return lower_optional(graph, node, ctx);
  if (node.op_type == "OptionalHasElement") return lower_optional_has_element(graph, node, ctx);
  lower_optional_get_element(graph, index, ctx);
}

void expand_sequence_outputs(Graph &graph) {
  std::vector<int> outputs;
  for (size_t o = 0; o < graph.outputs.size(); ++o) {
    const int id = graph.outputs[o];
    const Value container = graph.values[static_cast<size_t>(id)];
    if (container.kind == Kind::tensor) {
      outputs.push_back(id);
      continue;
    }
    if (graph.is_subgraph)
      throw NotImplemented(graph.source_name + ": output " + std::to_string(o) + " '" +
                           container.name + "' is " + a_kind(container.kind) +
                           "; If, Loop and Scan run over tensors only (docs/runtime.md)");
    // An optional sequence's tensors are named as the sequence's.
    std::vector<int> tensors = container.elements;
    bool indexed = container.kind == Kind::sequence;
    if (container.kind == Kind::optional && !tensors.empty()) {
      const Value &inner = graph.values[static_cast<size_t>(tensors.front())];
      if (inner.kind == Kind::sequence) {
        tensors = inner.elements;
        indexed = true;
      }
    }
    for (size_t i = 0; i < tensors.size(); ++i) {
      Value out;
      out.name = indexed ? container.name + "[" + std::to_string(i) + "]" : container.name;
      const int out_id = graph.add_value(std::move(out));
      graph.nodes.push_back(
          tensor_node(graph.values[static_cast<size_t>(out_id)].name + "/Identity", "Identity",
                      {tensors[i]}, {out_id}));
      outputs.push_back(out_id);
    }
  }
  graph.outputs = std::move(outputs);
}

}  // namespace axstream::engine
