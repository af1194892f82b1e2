#include "passes.h"

#include <cmath>
#include <set>

namespace axstream::engine {
namespace {

// Identity and inference-mode Dropout forward their input: readers are rewired to it.
void remove_identities(Graph &graph) {
  std::set<int> graph_outputs(graph.outputs.begin(), graph.outputs.end());
  std::vector<int> replace(graph.values.size());
  for (size_t v = 0; v < replace.size(); ++v) replace[v] = static_cast<int>(v);
  for (Node &n : graph.nodes) {
    if (n.dead || !n.domain.empty()) continue;
    for (int &in : n.inputs)
      if (in >= 0) in = replace[in];
    bool forward = n.op_type == "Identity" ||
                   (n.op_type == "Dropout" && n.outputs.size() == 1 && n.inputs.size() == 1);
    if (!forward || n.inputs.empty() || n.inputs[0] < 0 || graph_outputs.count(n.outputs[0]))
      continue;
    replace[n.outputs[0]] = n.inputs[0];
    n.dead = true;
  }
}

}  // namespace

void eliminate_dead_nodes(Graph &graph) {
  bool changed = true;
  while (changed) {
    changed = false;
    std::vector<int> uses = graph.use_counts();
    for (Node &n : graph.nodes) {
      if (n.dead) continue;
      bool used = false;
      for (int v : n.outputs)
        if (v >= 0 && uses[v] > 0) used = true;
      if (!used) {
        n.dead = true;
        changed = true;
      }
    }
  }
}

namespace {

// Who produces and reads each value, for the fusion passes' pattern matching.
struct ValueLinks {
  explicit ValueLinks(Graph &graph)
      : g(graph), producer(graph.producers()), uses(graph.use_counts()),
        consumer(graph.values.size(), -1),
        graph_outputs(graph.outputs.begin(), graph.outputs.end()) {
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      if (g.nodes[i].dead) continue;
      for (int v : g.nodes[i].inputs)
        if (v >= 0) consumer[v] = static_cast<int>(i);
    }
  }
  // The node reading `v` when it is its only reader and `v` is not a graph output.
  Node *single_reader(int v) const {
    if (v < 0 || uses[v] != 1 || graph_outputs.count(v) || consumer[v] < 0) return nullptr;
    return &g.nodes[consumer[v]];
  }

  Graph &g;
  std::vector<int> producer;
  std::vector<int> uses;
  std::vector<int> consumer;  // the one reader, when there is one
  std::set<int> graph_outputs;
};


bool is_op(const Node &n, const char *op) { return !n.dead && n.domain.empty() && n.op_type == op; }

const Tensor *constant_of(const Graph &g, const Node &n, size_t i) {
  return i < n.inputs.size() && n.inputs[i] >= 0 ? g.values[n.inputs[i]].constant.get() : nullptr;
}

bool all_zero(const Tensor *t) {
  if (!t) return true;
  for (int64_t i = 0; i < t->count(); ++i)
    if (t->as_int(i) != 0) return false;
  return true;
}

// DequantizeLinear(x) -> Conv(., DequantizeLinear(int8 w), [bias]) -> [Relu|Clip] ->
// QuantizeLinear becomes one axstream.QConv: integer convolution with requantisation.
// Only patterns with per-tensor activation scales and symmetric int8 weights are taken.
void fuse_qdq_conv(Graph &g) {
  ValueLinks links(g);
  const std::vector<int> &producer = links.producer;
  auto single_reader = [&](int v) { return links.single_reader(v); };
  auto dq_of = [&](int v) -> Node * {
    if (v < 0 || producer[v] < 0) return nullptr;
    Node &n = g.nodes[producer[v]];
    return is_op(n, "DequantizeLinear") ? &n : nullptr;
  };
  for (size_t ci = 0; ci < g.nodes.size(); ++ci) {
    Node &conv = g.nodes[ci];
    if (!is_op(conv, "Conv") || conv.inputs.size() < 2) continue;
    Node *x_dq = dq_of(conv.inputs[0]);
    Node *w_dq = dq_of(conv.inputs[1]);
    if (!x_dq || !w_dq) continue;
    const Tensor *xs = constant_of(g, *x_dq, 1), *ws = constant_of(g, *w_dq, 1);
    const Tensor *w = constant_of(g, *w_dq, 0);
    if (!xs || xs->count() != 1 || constant_of(g, *x_dq, 0) || !ws || !w || w->dtype != DType::i8)
      continue;
    if ((x_dq->inputs.size() > 2 && x_dq->inputs[2] >= 0 && !constant_of(g, *x_dq, 2)) ||
        (w_dq->inputs.size() > 2 && w_dq->inputs[2] >= 0 && !all_zero(constant_of(g, *w_dq, 2))) ||
        (w_dq->inputs.size() > 2 && w_dq->inputs[2] >= 0 && !constant_of(g, *w_dq, 2)))
      continue;
    if (ws->count() > 1 && w_dq->attrs.count("axis") && w_dq->attrs.at("axis").i != 0) continue;
    int bias_raw = -1, bias_scale = -1;
    if (conv.inputs.size() > 2 && conv.inputs[2] >= 0) {
      int b = conv.inputs[2];
      if (g.values[b].constant && g.values[b].constant->dtype == DType::f32) {
        bias_raw = b;
      } else if (Node *b_dq = dq_of(b)) {
        const Tensor *braw = constant_of(g, *b_dq, 0);
        if (!braw || braw->dtype != DType::i32 || !constant_of(g, *b_dq, 1)) continue;
        if (b_dq->inputs.size() > 2 && b_dq->inputs[2] >= 0 && !all_zero(constant_of(g, *b_dq, 2)))
          continue;
        bias_raw = b_dq->inputs[0];
        bias_scale = b_dq->inputs[1];
      } else {
        continue;
      }
    }
    Node *next = single_reader(conv.outputs[0]);
    if (!next) continue;
    std::string activation;
    float act_min = -INFINITY, act_max = INFINITY;
    Node *act = nullptr;
    if (is_op(*next, "Relu")) {
      activation = "Relu";
      act = next;
    } else if (is_op(*next, "Clip")) {
      if (next->opset < 11) {
        act_min = next->attrs.count("min") ? next->attrs.at("min").f : -INFINITY;
        act_max = next->attrs.count("max") ? next->attrs.at("max").f : INFINITY;
      } else {
        bool ok = true;
        for (size_t k = 1; k < next->inputs.size(); ++k)
          if (next->inputs[k] >= 0 && !constant_of(g, *next, k)) ok = false;
        if (!ok) continue;
        if (const Tensor *lo = constant_of(g, *next, 1))
          act_min = static_cast<float>(lo->as_double(0));
        if (const Tensor *hi = constant_of(g, *next, 2))
          act_max = static_cast<float>(hi->as_double(0));
      }
      activation = "Clip";
      act = next;
    }
    Node *q = act ? single_reader(act->outputs[0]) : next;
    if (!q || !is_op(*q, "QuantizeLinear")) continue;
    const Tensor *ys = constant_of(g, *q, 1);
    if (!ys || ys->count() != 1 ||
        (q->inputs.size() > 2 && q->inputs[2] >= 0 && !constant_of(g, *q, 2)))
      continue;

    Node fused;
    fused.name = conv.name.empty() ? q->name : conv.name;
    fused.op_type = "QConv";
    fused.domain = "axstream";
    fused.opset = 1;
    auto input_or_none = [](const Node &n, size_t i) {
      return i < n.inputs.size() ? n.inputs[i] : -1;
    };
    fused.inputs = {x_dq->inputs[0], x_dq->inputs[1], input_or_none(*x_dq, 2),
                    w_dq->inputs[0], w_dq->inputs[1], bias_raw,
                    bias_scale,      q->inputs[1],    input_or_none(*q, 2)};
    fused.outputs = q->outputs;
    fused.attrs = conv.attrs;
    if (!activation.empty()) {
      Attribute a;
      a.kind = Attribute::Kind::s;
      a.s = activation;
      fused.attrs["_activation"] = a;
      Attribute lo, hi;
      lo.kind = hi.kind = Attribute::Kind::f;
      lo.f = activation == "Relu" ? 0.f : act_min;
      hi.f = act_max;
      fused.attrs["_act_min"] = lo;
      fused.attrs["_act_max"] = hi;
    }
    conv.dead = true;
    if (act) act->dead = true;
    *q = std::move(fused);  // in the Q node's place: all its inputs exist by then
  }
}

// QuantizeLinear([Relu](Add(DequantizeLinear(a), DequantizeLinear(b)))) with per-tensor
// constant scales and equal shapes (a ResNet residual join) becomes one axstream.QAdd that
// runs the same float arithmetic element by element in one pass. Runs after shape inference.
void fuse_qdq_add(Graph &g) {
  ValueLinks links(g);
  const std::vector<int> &producer = links.producer;
  const std::vector<int> &uses = links.uses;
  const std::set<int> &graph_outputs = links.graph_outputs;
  auto single_reader = [&](int v) { return links.single_reader(v); };
  // A per-tensor DequantizeLinear of int8/uint8 with constant scale (and zero point), read
  // only by the Add.
  auto per_tensor_dq = [&](int v) -> Node * {
    if (v < 0 || producer[v] < 0 || uses[v] != 1 || graph_outputs.count(v)) return nullptr;
    Node &n = g.nodes[producer[v]];
    if (!is_op(n, "DequantizeLinear") || n.inputs.empty() || n.inputs[0] < 0) return nullptr;
    DType t = g.values[n.inputs[0]].dtype;
    if (t != DType::i8 && t != DType::u8) return nullptr;
    const Tensor *s = constant_of(g, n, 1);
    if (!s || s->count() != 1 || s->dtype != DType::f32) return nullptr;
    if (n.inputs.size() > 2 && n.inputs[2] >= 0 && !constant_of(g, n, 2)) return nullptr;
    return &n;
  };
  auto input_or_none = [](const Node &n, size_t i) { return i < n.inputs.size() ? n.inputs[i] : -1; };
  for (Node &add : g.nodes) {
    if (!is_op(add, "Add") || add.inputs.size() != 2) continue;
    Node *da = per_tensor_dq(add.inputs[0]), *db = per_tensor_dq(add.inputs[1]);
    if (!da || !db || da == db) continue;
    const Value &va = g.values[da->inputs[0]], &vb = g.values[db->inputs[0]];
    if (!va.shape_known || !vb.shape_known || va.shape != vb.shape) continue;
    Node *next = single_reader(add.outputs[0]);
    if (!next) continue;
    Node *relu = is_op(*next, "Relu") ? next : nullptr;
    Node *q = relu ? single_reader(relu->outputs[0]) : next;
    if (!q || !is_op(*q, "QuantizeLinear")) continue;
    const Tensor *ys = constant_of(g, *q, 1);
    if (!ys || ys->count() != 1 || ys->dtype != DType::f32 ||
        (q->inputs.size() > 2 && q->inputs[2] >= 0 && !constant_of(g, *q, 2)))
      continue;
    Node fused;
    fused.name = add.name.empty() ? q->name : add.name;
    fused.op_type = "QAdd";
    fused.domain = "axstream";
    fused.opset = 1;
    fused.inputs = {da->inputs[0], da->inputs[1], input_or_none(*da, 2),
                    db->inputs[0], db->inputs[1], input_or_none(*db, 2),
                    q->inputs[1],  input_or_none(*q, 2)};
    fused.outputs = q->outputs;
    if (relu) {
      Attribute a;
      a.kind = Attribute::Kind::i;
      a.i = 1;
      fused.attrs["_relu"] = a;
    }
    da->dead = db->dead = add.dead = true;
    if (relu) relu->dead = true;
    *q = std::move(fused);
  }
}

}  // namespace

void run_prefold_passes(Graph &graph) { fuse_qdq_conv(graph); }

void run_postfold_passes(Graph &graph) {
  remove_identities(graph);
  fuse_qdq_add(graph);
}

}  // namespace axstream::engine
