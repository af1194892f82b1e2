#include "passes.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "compiler.h"
#include "conv_dnnl.h"
#include "half_compute.h"

namespace axstream::engine {
namespace {

// Identity and inference-mode Dropout forward their input: readers are rewired to it. One that
// makes a graph output (a package's core output after its NHWC Transpose, axcompile's
// `.../output`) instead has the node making its input write the output itself, where that
// input is a node's, read by nothing else and no graph input or output: one copy and one step
// fewer (unless AXSTREAM_ENGINE_OUTPUT_IDENTITY=0; the same bytes).
void remove_identities(Graph &graph) {
  std::set<int> graph_outputs(graph.outputs.begin(), graph.outputs.end());
  std::set<int> graph_inputs(graph.inputs.begin(), graph.inputs.end());
  const bool into_outputs = setting_not_zero("AXSTREAM_ENGINE_OUTPUT_IDENTITY");
  const std::vector<int> producer = graph.producers();
  const std::vector<int> uses = graph.use_counts();
  std::vector<int> replace(graph.values.size());
  for (size_t v = 0; v < replace.size(); ++v) replace[v] = static_cast<int>(v);
  for (Node &n : graph.nodes) {
    if (n.dead || !n.domain.empty()) continue;
    // Its input as the graph has it: a forwarded one's use count would not count the readers
    // rewired to it.
    const int read = n.inputs.empty() ? -1 : n.inputs[0];
    for (int &in : n.inputs)
      if (in >= 0) in = replace[in];
    bool forward = n.op_type == "Identity" ||
                   (n.op_type == "Dropout" && n.outputs.size() == 1 && n.inputs.size() == 1);
    if (!forward || n.inputs.empty() || n.inputs[0] < 0) continue;
    const int in = n.inputs[0], out = n.outputs[0];
    if (!graph_outputs.count(out)) {
      replace[out] = in;
      n.dead = true;
      continue;
    }
    if (!into_outputs || n.op_type != "Identity" || n.outputs.size() != 1 || in != read ||
        producer[in] < 0 || uses[in] != 1 || graph_outputs.count(in) || graph_inputs.count(in) ||
        graph.values[in].constant || graph.values[in].dtype != graph.values[out].dtype ||
        graph.values[in].shape != graph.values[out].shape)
      continue;
    for (int &made : graph.nodes[producer[in]].outputs)
      if (made == in) made = out;
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
      : g(graph),
        producer(graph.producers()),
        uses(graph.use_counts()),
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
bool is_op_in(const Node &n, const char *domain, const char *op) {
  return !n.dead && n.domain == domain && n.op_type == op;
}

const Tensor *constant_of(const Graph &g, const Node &n, size_t i) {
  return i < n.inputs.size() && n.inputs[i] >= 0 ? g.values[n.inputs[i]].constant.get() : nullptr;
}

bool all_zero(const Tensor *t) {
  if (!t) return true;
  for (int64_t i = 0; i < t->count(); ++i)
    if (t->as_int(i) != 0) return false;
  return true;
}

// Every live node reading `v` (graph outputs not counted).
std::vector<Node *> readers_of(Graph &g, int v) {
  std::vector<Node *> r;
  for (Node &n : g.nodes) {
    if (n.dead) continue;
    for (int in : n.inputs)
      if (in == v) {
        r.push_back(&n);
        break;
      }
  }
  return r;
}

// A float32 constant scalar (any rank, one element), or nullptr.
const Tensor *scalar_constant(const Graph &g, int v) {
  if (v < 0 || !g.values[v].constant) return nullptr;
  const Tensor *t = g.values[v].constant.get();
  return t->count() == 1 && t->dtype == DType::f32 ? t : nullptr;
}

Attribute float_attr(float f) {
  Attribute a;
  a.kind = Attribute::Kind::f;
  a.f = f;
  return a;
}
Attribute int_attr(int64_t i) {
  Attribute a;
  a.kind = Attribute::Kind::i;
  a.i = i;
  return a;
}
Attribute string_attr(const std::string &s) {
  Attribute a;
  a.kind = Attribute::Kind::s;
  a.s = s;
  return a;
}

int input_or_none(const Node &n, size_t i) { return i < n.inputs.size() ? n.inputs[i] : -1; }

// A new node of the engine's own domain (axstream, opset 1), as the fusions write them.
Node axstream_node(const std::string &name, const std::string &op_type) {
  Node node;
  node.name = name;
  node.op_type = op_type;
  node.domain = "axstream";
  node.opset = 1;
  return node;
}

// Whether a and b are the same value or equal one-element constants (both absent counts).
bool same_scalar_constant(const Graph &g, int a, int b) {
  if (a == b) return true;
  if (a < 0 || b < 0 || !g.values[a].constant || !g.values[b].constant) return false;
  const Tensor &ta = *g.values[a].constant, &tb = *g.values[b].constant;
  return ta.count() == 1 && tb.count() == 1 && ta.dtype == tb.dtype && ta.bytes == tb.bytes;
}

// A new constant value holding `t`.
int add_constant(Graph &g, const std::string &name, TensorPtr t) {
  Value v;
  v.name = name;
  v.dtype = t->dtype;
  v.shape = t->shape;
  v.shape_known = true;
  v.constant = std::move(t);
  return g.add_value(std::move(v));
}

// The DequantizeLinear producing `v` from a real input, or nullptr.
Node *dequantize_producing(const ValueLinks &links, int v) {
  if (v < 0 || links.producer[v] < 0) return nullptr;
  Node &n = links.g.nodes[links.producer[v]];
  return is_op(n, "DequantizeLinear") && !n.inputs.empty() && n.inputs[0] >= 0 ? &n : nullptr;
}

// A ConvTranspose that lower_qdq_conv_transpose_tiles rewrites: its b x b int8 weights
// (cin, cout, b, b), their scale, the bias (float, or int32 with bias_scale), the activation
// it keeps and the QuantizeLinear after it.
struct QdqTileConvTranspose {
  Node *w_dq = nullptr;
  const Tensor *w = nullptr, *w_scale = nullptr;
  int64_t cin = 0, cout = 0, b = 0;
  bool w_per_channel = false;
  int b_in = -1;
  const Tensor *bias = nullptr, *bias_scale = nullptr;
  Node *act = nullptr, *q = nullptr;
};

bool dequantize_has_zero_point_0(const Graph &g, const Node &dq) {
  return input_or_none(dq, 2) < 0 || (constant_of(g, dq, 2) && all_zero(constant_of(g, dq, 2)));
}

// The weights: a per-tensor or per-output-channel (axis 1) DequantizeLinear of 4-D int8
// b x b windows (b >= 2) with zero point 0, and attributes saying the windows tile the output.
bool match_tile_weights(const Graph &g, const ValueLinks &links, const Node &ct,
                        QdqTileConvTranspose &m) {
  auto ints_or = [](const Node &n, const char *name, std::vector<int64_t> dflt) {
    return n.attrs.count(name) ? n.attrs.at(name).ints : dflt;
  };
  m.w_dq = dequantize_producing(links, ct.inputs[1]);
  m.w = m.w_dq ? constant_of(g, *m.w_dq, 0) : nullptr;
  m.w_scale = m.w_dq ? constant_of(g, *m.w_dq, 1) : nullptr;
  if (!m.w || m.w->dtype != DType::i8 || m.w->shape.size() != 4 || !m.w_scale ||
      !dequantize_has_zero_point_0(g, *m.w_dq))
    return false;
  m.cin = m.w->shape[0];
  m.cout = m.w->shape[1];
  m.b = m.w->shape[2];
  if (m.w->shape[3] != m.b || m.b < 2) return false;
  std::vector<int64_t> bb = {m.b, m.b}, ones = {1, 1}, zeros4 = {0, 0, 0, 0}, zeros2 = {0, 0};
  if (ints_or(ct, "kernel_shape", bb) != bb || ints_or(ct, "strides", ones) != bb ||
      ints_or(ct, "dilations", ones) != ones || ints_or(ct, "pads", zeros4) != zeros4 ||
      ints_or(ct, "output_padding", zeros2) != zeros2)
    return false;
  m.w_per_channel = m.w_scale->count() != 1;
  return !m.w_per_channel || (m.w_scale->count() == m.cout && m.w_dq->attrs.count("axis") &&
                              m.w_dq->attrs.at("axis").i == 1);
}

// The bias: none, a float constant, or DequantizeLinear of an int32 constant (zero point 0),
// one value per output channel.
bool match_tile_bias(const Graph &g, const ValueLinks &links, const Node &ct,
                     QdqTileConvTranspose &m) {
  m.b_in = input_or_none(ct, 2);
  if (m.b_in < 0) return true;
  if (g.values[m.b_in].constant && g.values[m.b_in].constant->dtype == DType::f32) {
    m.bias = g.values[m.b_in].constant.get();
  } else if (Node *b_dq = dequantize_producing(links, m.b_in)) {
    m.bias = constant_of(g, *b_dq, 0);
    m.bias_scale = constant_of(g, *b_dq, 1);
    if (!m.bias || m.bias->dtype != DType::i32 || !m.bias_scale ||
        !dequantize_has_zero_point_0(g, *b_dq) ||
        (m.bias_scale->count() != 1 && m.bias_scale->count() != m.cout))
      return false;
  } else {
    return false;
  }
  return m.bias->count() == m.cout;
}

std::optional<QdqTileConvTranspose> match_qdq_tile_conv_transpose(const Graph &g,
                                                                  const ValueLinks &links,
                                                                  const Node &ct) {
  if (!is_op(ct, "ConvTranspose") || ct.inputs.size() < 2 || ct.outputs.size() != 1) return {};
  if (ct.attrs.count("group") && ct.attrs.at("group").i != 1) return {};
  if (ct.attrs.count("output_shape") || ct.attrs.count("auto_pad")) return {};
  if (!dequantize_producing(links, ct.inputs[0])) return {};
  QdqTileConvTranspose m;
  if (!match_tile_weights(g, links, ct, m) || !match_tile_bias(g, links, ct, m)) return {};
  Node *next = links.single_reader(ct.outputs[0]);
  // An element-wise activation commutes with moving the tiles: it stays on the convolution
  // (PP-OCR det's output Sigmoid, kept in the core by our compiler).
  m.act = next && (is_op(*next, "Relu") || is_op(*next, "Sigmoid")) ? next : nullptr;
  m.q = m.act ? links.single_reader(m.act->outputs[0]) : next;
  if (!m.q || !is_op(*m.q, "QuantizeLinear") || m.q->inputs.size() < 2 || m.q->outputs.size() != 1)
    return {};
  return m;
}

// The nodes replacing a matched ConvTranspose (and its activation, which it marks dead):
// DequantizeLinear of the 1x1 weights (and bias), Conv, the activation, Q -> DQ with the
// output's parameters, DepthToSpace; the QuantizeLinear then reads the moved tiles.
std::vector<Node> tile_conv_transpose_as_1x1_conv(Graph &g, const ValueLinks &links, Node &ct,
                                                  const QdqTileConvTranspose &m) {
  const int64_t cin = m.cin, cout = m.cout, b = m.b;
  const Tensor *w = m.w, *bias = m.bias, *bias_scale = m.bias_scale;
  Node *act = m.act, *q = m.q;
  // Weights as a 1x1 convolution: row (co, ky, kx), column ci.
  int64_t rows = cout * b * b;
  auto w1 = std::make_shared<Tensor>(DType::i8, Shape{rows, cin, 1, 1});
  for (int64_t ci = 0; ci < cin; ++ci)
    for (int64_t r = 0; r < rows; ++r) w1->bytes[r * cin + ci] = w->bytes[ci * rows + r];
  // Per output channel values, repeated for its b*b rows.
  auto repeat = [&](const Tensor &t) {
    auto r = std::make_shared<Tensor>(t.dtype, Shape{rows});
    size_t es = dtype_size(t.dtype);
    for (int64_t k = 0; k < rows; ++k)
      std::copy_n(t.bytes.begin() + (k / (b * b)) * es, es, r->bytes.begin() + k * es);
    return r;
  };
  std::string base = ct.name.empty() ? g.values[ct.outputs[0]].name : ct.name;
  auto new_value = [&](const std::string &name) {
    Value v;
    v.name = base + "/" + name;
    return g.add_value(std::move(v));
  };
  auto node = [&](const std::string &op, std::vector<int> in, int out) {
    Node n;
    n.name = base + "/" + op;
    n.op_type = op;
    n.opset = op == "DepthToSpace" ? 13 : q->opset;
    n.inputs = std::move(in);
    n.outputs = {out};
    return n;
  };
  std::vector<Node> added;
  int w1_dq = new_value("1x1 weight");
  Node wdq = node("DequantizeLinear",
                  {add_constant(g, base + "/1x1 weight int8", w1),
                   m.w_per_channel ? add_constant(g, base + "/1x1 weight scale", repeat(*m.w_scale))
                                   : m.w_dq->inputs[1]},
                  w1_dq);
  wdq.opset = m.w_dq->opset;
  if (m.w_per_channel) wdq.attrs["axis"] = int_attr(0);
  added.push_back(wdq);
  int bias1 = -1;
  if (bias && !bias_scale) {
    bias1 = add_constant(g, base + "/1x1 bias", repeat(*bias));
  } else if (bias) {
    bias1 = new_value("1x1 bias");
    Node bdq = node(
        "DequantizeLinear",
        {add_constant(g, base + "/1x1 bias int32", repeat(*bias)),
         bias_scale->count() == 1 ? g.nodes[links.producer[m.b_in]].inputs[1]
                                  : add_constant(g, base + "/1x1 bias scale", repeat(*bias_scale))},
        bias1);
    if (bias_scale->count() != 1) bdq.attrs["axis"] = int_attr(0);
    added.push_back(bdq);
  }
  int conv_out = new_value("1x1");
  Node conv = node("Conv", {ct.inputs[0], w1_dq}, conv_out);
  conv.opset = 11;
  if (bias1 >= 0) conv.inputs.push_back(bias1);
  added.push_back(conv);
  int act_out = conv_out;
  if (act) {
    act_out = new_value("1x1 " + act->op_type);
    Node a = node(act->op_type, {conv_out}, act_out);
    a.opset = act->opset;
    added.push_back(a);
  }
  int q1 = new_value("1x1 q"), d1 = new_value("1x1 dq"), moved = new_value("tiles");
  std::vector<int> q_params(q->inputs.begin() + 1, q->inputs.end());
  std::vector<int> q_in = {act_out}, dq_in = {q1};
  q_in.insert(q_in.end(), q_params.begin(), q_params.end());
  dq_in.insert(dq_in.end(), q_params.begin(), q_params.end());
  added.push_back(node("QuantizeLinear", q_in, q1));
  added.push_back(node("DequantizeLinear", dq_in, d1));
  Node d2s = node("DepthToSpace", {d1}, moved);
  d2s.attrs["blocksize"] = int_attr(b);
  d2s.attrs["mode"] = string_attr("CRD");
  added.push_back(d2s);
  q->inputs[0] = moved;
  ct.dead = true;
  if (act) act->dead = true;
  return added;
}

// A ConvTranspose whose b x b windows tile the output (stride = kernel, no pads, dilation 1,
// one group) is a 1x1 convolution to C_out*b*b channels followed by DepthToSpace (CRD). On a
// quantised one — DequantizeLinear(int8 w), then [Relu|Sigmoid] -> QuantizeLinear — that turns
// into DequantizeLinear(x) -> Conv(1x1) -> [Relu|Sigmoid] -> Q -> DQ -> DepthToSpace -> Q with the
// output's parameters on both Qs: the convolution fuses into an int8 QConv and DepthToSpace moves
// the int8 values (quantising commutes with moving them), so PP-OCR det's head upsamplings run int8
// instead of float. Runs before the QDQ conv fusion.
void lower_qdq_conv_transpose_tiles(Graph &g) {
  ValueLinks links(g);
  std::map<size_t, std::vector<Node>> inserts;  // new nodes, placed before node index
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (auto match = match_qdq_tile_conv_transpose(g, links, g.nodes[i]))
      inserts[i] = tile_conv_transpose_as_1x1_conv(g, links, g.nodes[i], *match);
  }
  if (inserts.empty()) return;
  std::vector<Node> nodes;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (auto it = inserts.find(i); it != inserts.end())
      for (Node &n : it->second) nodes.push_back(std::move(n));
    nodes.push_back(std::move(g.nodes[i]));
  }
  g.nodes = std::move(nodes);
}

// DequantizeLinear(x) -> Conv(., DequantizeLinear(int8 w), [bias]) -> [Relu|Clip|Sigmoid] ->
// QuantizeLinear becomes one axstream.QConv: integer convolution with requantisation (a
// Sigmoid applies to the dequantised accumulator before it).
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
    if (is_op(*next, "Relu") || is_op(*next, "Sigmoid")) {
      activation = next->op_type;
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

    Node fused = axstream_node(conv.name.empty() ? q->name : conv.name, "QConv");
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

// The fused node of a per-tensor quantised binary op: Q(DQ(a) op DQ(b) [Relu]) with inputs
// a, a_scale, a_zero, b, b_scale, b_zero, y_scale, y_zero and the Q's outputs.
Node fused_q_binary(const char *op_type, const std::string &name, const Node &da, const Node &db,
                    const Node &q, bool relu) {
  Node fused = axstream_node(name.empty() ? q.name : name, op_type);
  fused.inputs = {da.inputs[0], da.inputs[1],         input_or_none(da, 2), db.inputs[0],
                  db.inputs[1], input_or_none(db, 2), q.inputs[1],          input_or_none(q, 2)};
  fused.outputs = q.outputs;
  if (relu) fused.attrs["_relu"] = int_attr(1);
  return fused;
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
    // QAdd adds b's product in one rounding (ops/quantized_join.h), as a convolution's sum
    // post-op adds the operand it reads from memory: only a convolution writing a can take the
    // add bit-exactly (fuse_residual_add_into_conv). Put first an operand a QConv writes for
    // this add alone. Decided here, on every CPU and setting, so outputs never depend on them.
    auto conv_written_for_add = [&](const Node &dq) {
      const int v = dq.inputs[0];
      return producer[v] >= 0 && is_op_in(g.nodes[producer[v]], "axstream", "QConv") &&
             single_reader(v) == &dq;
    };
    if (!conv_written_for_add(*da) && conv_written_for_add(*db)) std::swap(da, db);
    Node fused = fused_q_binary("QAdd", add.name, *da, *db, *q, relu != nullptr);
    da->dead = db->dead = add.dead = true;
    if (relu) relu->dead = true;
    *q = std::move(fused);
  }
}

// The int8 weights w - w_zero_point (per tensor or per output channel) of a quantised
// convolution, or nullptr when a value falls outside int8 (then only an int32 kernel is exact).
std::shared_ptr<Tensor> zero_point_shifted_weights(const Tensor &w, const Tensor *zero_point) {
  if (w.dtype != DType::i8 && w.dtype != DType::u8) return nullptr;
  if (w.dtype == DType::i8 && all_zero(zero_point)) return nullptr;  // usable as it is
  int64_t channels = w.shape[0], per_channel = w.count() / channels;
  if (zero_point && zero_point->count() != 1 && zero_point->count() != channels) return nullptr;
  auto shifted = std::make_shared<Tensor>(DType::i8, w.shape);
  for (int64_t i = 0; i < w.count(); ++i) {
    int64_t zp =
        zero_point ? zero_point->as_int(zero_point->count() == 1 ? 0 : i / per_channel) : 0;
    int64_t v = w.as_int(i) - zp;
    if (v < -128 || v > 127) return nullptr;
    shifted->data<int8_t>()[i] = static_cast<int8_t>(v);
  }
  return shifted;
}

// QLinearConv with constant int8 weights, per-tensor activation parameters and a constant
// int32 bias is the same arithmetic as the fused QDQ conv: it becomes axstream.QConv and so
// runs on oneDNN (integer, or float with (de)quantising reorders on CPUs without VNNI, where
// results may differ from exact integer rounding by one step). Weights with a zero point
// (uint8 weights, as onnxruntime's U8U8 quantiser writes them, or int8 with per-channel zero
// points) take the same path once w - w_zero_point, computed here once, fits int8: oneDNN's
// convolution has no weight zero point. Other QLinearConvs keep the exact int32 reference
// kernel (ops/qlinear.cc).
void lower_qlinear_conv(Graph &g) {
  auto constant = [&](int v) { return v >= 0 ? g.values[v].constant.get() : nullptr; };
  for (Node &n : g.nodes) {
    if (!is_op(n, "QLinearConv") || n.inputs.size() < 8) continue;
    const Tensor *xs = constant(n.inputs[1]), *w = constant(n.inputs[3]);
    const Tensor *ws = constant(n.inputs[4]), *ys = constant(n.inputs[6]);
    int xz = input_or_none(n, 2), wz = input_or_none(n, 5), yz = input_or_none(n, 7);
    int bias = input_or_none(n, 8);
    if (!xs || xs->count() != 1 || xs->dtype != DType::f32 || !ys || ys->count() != 1 ||
        ys->dtype != DType::f32 || !w || w->shape.size() < 3 || w->shape.size() > 5 || !ws ||
        ws->dtype != DType::f32 || (ws->count() != 1 && ws->count() != w->shape[0]))
      continue;
    if ((xz >= 0 && (!constant(xz) || constant(xz)->count() != 1)) ||
        (yz >= 0 && (!constant(yz) || constant(yz)->count() != 1)) || (wz >= 0 && !constant(wz)) ||
        (bias >= 0 && (!constant(bias) || constant(bias)->dtype != DType::i32)))
      continue;
    int weights = n.inputs[3];
    if (w->dtype != DType::i8 || !all_zero(constant(wz))) {
      auto shifted = zero_point_shifted_weights(*w, constant(wz));
      if (!shifted) continue;
      weights = add_constant(g, g.values[weights].name + " minus zero point", shifted);
    }
    int bias_scale = -1;
    if (bias >= 0) {
      auto bs = std::make_shared<Tensor>(DType::f32, Shape{ws->count()});
      for (int64_t c = 0; c < ws->count(); ++c)
        bs->data<float>()[c] = xs->data<float>()[0] * ws->data<float>()[c];
      bias_scale = add_constant(g, g.values[n.outputs[0]].name + " bias scale", bs);
    }
    n.inputs = {n.inputs[0], n.inputs[1], xz,          weights, n.inputs[4],
                bias,        bias_scale,  n.inputs[6], yz};
    n.op_type = "QConv";
    n.domain = "axstream";
    n.opset = 1;
  }
}

// Conv/ConvTranspose/Gemm -> BatchNormalization with constant weights and statistics (a float
// graph): the BatchNorm's per-channel scale and shift go into the weights and bias, and the
// BatchNorm disappears. Runs after folding, when weights are plain float constants.
void fold_batchnorm(Graph &g) {
  ValueLinks links(g);
  for (Node &producer : g.nodes) {
    bool conv = is_op(producer, "Conv"), deconv = is_op(producer, "ConvTranspose"),
         gemm = is_op(producer, "Gemm");
    // A half model's Gemm that rounds its product before adding a bias (fuse_half_bias_add):
    // scaling its weights would scale a value before that rounding, not after.
    if (!(conv || deconv || gemm) || producer.outputs.size() != 1 ||
        producer.attrs.count("_bias_after_rounding_to"))
      continue;
    Node *bn = links.single_reader(producer.outputs[0]);
    if (!bn || !is_op(*bn, "BatchNormalization") || bn->outputs.size() != 1 ||
        (bn->attrs.count("training_mode") && bn->attrs.at("training_mode").i != 0))
      continue;
    const Tensor *w = constant_of(g, producer, 1);
    if (!w || w->dtype != DType::f32 || w->shape.size() < 2) continue;
    const Tensor *bias = constant_of(g, producer, 2);
    if (producer.inputs.size() > 2 && producer.inputs[2] >= 0 &&
        (!bias || bias->dtype != DType::f32))
      continue;
    const Tensor *params[4];
    bool ok = true;
    for (int i = 0; i < 4; ++i) {
      params[i] = constant_of(g, *bn, static_cast<size_t>(i + 1));
      if (!params[i] || params[i]->dtype != DType::f32) ok = false;
    }
    if (!ok) continue;
    int64_t channels = params[0]->count();
    for (int i = 1; i < 4; ++i)
      if (params[i]->count() != channels) ok = false;
    int64_t group = producer.attrs.count("group") ? producer.attrs.at("group").i : 1;
    bool trans_b = gemm && producer.attrs.count("transB") && producer.attrs.at("transB").i != 0;
    float alpha = gemm && producer.attrs.count("alpha") ? producer.attrs.at("alpha").f : 1.f;
    float beta = gemm && producer.attrs.count("beta") ? producer.attrs.at("beta").f : 1.f;
    int64_t out_channels = conv     ? w->shape[0]
                           : deconv ? w->shape[1] * group
                                    : (trans_b ? w->shape[0] : w->shape[1]);
    if (!ok || out_channels != channels || (gemm && w->shape.size() != 2)) continue;
    if (bias && bias->count() != channels) continue;  // Gemm's C broadcast over rows only
    float eps = bn->attrs.count("epsilon") ? bn->attrs.at("epsilon").f : 1e-5f;
    std::vector<float> scale(static_cast<size_t>(channels)), shift(scale.size());
    for (int64_t c = 0; c < channels; ++c) {
      scale[c] = params[0]->data<float>()[c] / std::sqrt(params[3]->data<float>()[c] + eps);
      float b = bias ? bias->data<float>()[c] * (gemm ? beta : 1.f) : 0.f;
      shift[c] = (b - params[2]->data<float>()[c]) * scale[c] + params[1]->data<float>()[c];
    }
    auto w2 = std::make_shared<Tensor>(*w);
    float *wd = w2->data<float>();
    int64_t n = w2->count();
    if (conv) {
      int64_t per = n / channels;
      for (int64_t i = 0; i < n; ++i) wd[i] *= scale[i / per];
    } else if (deconv) {
      // (C_in, C_out / group, k...): output channel = group of the input channel * (C_out /
      // group) + dim 1.
      int64_t cin = w2->shape[0], cout_g = w2->shape[1], per = n / (cin * cout_g);
      for (int64_t i = 0; i < n; ++i) {
        int64_t ci = i / (cout_g * per), j = (i / per) % cout_g;
        wd[i] *= scale[(ci / (cin / group)) * cout_g + j];
      }
    } else {
      int64_t cols = w2->shape[1];
      for (int64_t i = 0; i < n; ++i) wd[i] *= scale[trans_b ? i / cols : i % cols];
      (void)alpha;  // alpha scales A*B; the per-column factor commutes with it
    }
    auto b2 = std::make_shared<Tensor>(DType::f32, Shape{channels});
    std::copy(shift.begin(), shift.end(), b2->data<float>());
    std::string base = producer.name.empty() ? g.values[producer.outputs[0]].name : producer.name;
    producer.inputs[1] = add_constant(g, base + " weights (BatchNorm folded)", w2);
    if (producer.inputs.size() < 3) producer.inputs.resize(3, -1);
    producer.inputs[2] = add_constant(g, base + " bias (BatchNorm folded)", b2);
    if (gemm) producer.attrs["beta"] = float_attr(1.f);
    producer.outputs = bn->outputs;
    bn->dead = true;
  }
}

// The attributes a fused float activation node `act` (Relu, Clip with constant bounds,
// LeakyRelu, HardSwish) leaves on the node running it: `<prefix>_activation` and its
// parameters (`<prefix>_act_min`, ...), as FusedActivation::from reads them. False for another
// node (a Clip whose bounds are computed at run time included).
bool float_activation_attrs(const Graph &g, const Node &act, const std::string &prefix,
                            std::map<std::string, Attribute> &attrs) {
  if (is_op(act, "Relu")) {
    attrs[prefix + "_activation"] = string_attr("Relu");
  } else if (is_op(act, "LeakyRelu")) {
    attrs[prefix + "_activation"] = string_attr("LeakyRelu");
    attrs[prefix + "_act_alpha"] =
        float_attr(act.attrs.count("alpha") ? act.attrs.at("alpha").f : 0.01f);
  } else if (is_op(act, "HardSwish")) {
    attrs[prefix + "_activation"] = string_attr("HardSwish");
  } else if (is_op(act, "Clip")) {
    float lo = -INFINITY, hi = INFINITY;
    if (act.opset < 11) {
      if (act.attrs.count("min")) lo = act.attrs.at("min").f;
      if (act.attrs.count("max")) hi = act.attrs.at("max").f;
    } else {
      for (size_t k = 1; k < act.inputs.size(); ++k)
        if (act.inputs[k] >= 0 && !scalar_constant(g, act.inputs[k])) return false;
      if (const Tensor *t = act.inputs.size() > 1 ? scalar_constant(g, act.inputs[1]) : nullptr)
        lo = t->data<float>()[0];
      if (const Tensor *t = act.inputs.size() > 2 ? scalar_constant(g, act.inputs[2]) : nullptr)
        hi = t->data<float>()[0];
    }
    attrs[prefix + "_activation"] = string_attr("Clip");
    attrs[prefix + "_act_min"] = float_attr(lo);
    attrs[prefix + "_act_max"] = float_attr(hi);
  } else {
    return false;
  }
  return true;
}

// Conv/Gemm/MatMul (float) -> Relu | Clip(constant bounds) | LeakyRelu | HardSwish |
// x * Sigmoid(x) (SiLU/Swish): the activation runs inside the producer (a oneDNN post-op for
// convolutions), saving a pass over the tensor.
void fuse_float_activations(Graph &g) {
  ValueLinks links(g);
  for (Node &producer : g.nodes) {
    if (!(is_op(producer, "Conv") || is_op(producer, "Gemm") || is_op(producer, "MatMul")) ||
        producer.outputs.size() != 1 || producer.attrs.count("_activation"))
      continue;
    int y = producer.outputs[0];
    if (g.values[y].dtype != DType::f32 || links.graph_outputs.count(y)) continue;
    std::vector<Node *> readers = readers_of(g, y);
    std::map<std::string, Attribute> attrs;
    std::vector<Node *> absorbed;
    if (readers.size() == 1 && links.uses[y] == 1) {
      if (!float_activation_attrs(g, *readers[0], "", attrs)) continue;
      absorbed = {readers[0]};
    } else if (readers.size() == 2 && links.uses[y] == 2) {
      Node *sig = is_op(*readers[0], "Sigmoid") ? readers[0] : readers[1];
      Node *mul = sig == readers[0] ? readers[1] : readers[0];
      if (!is_op(*sig, "Sigmoid") || !is_op(*mul, "Mul") || mul->inputs.size() != 2) continue;
      int s = sig->outputs[0];
      bool pair = (mul->inputs[0] == y && mul->inputs[1] == s) ||
                  (mul->inputs[1] == y && mul->inputs[0] == s);
      if (!pair || links.single_reader(s) != mul) continue;
      attrs["_activation"] = string_attr("SiLU");
      absorbed = {sig, mul};
    } else {
      continue;
    }
    for (auto &[k, a] : attrs) producer.attrs[k] = a;
    producer.outputs = absorbed.back()->outputs;
    for (Node *n : absorbed) n->dead = true;
  }
}

// The value a two-input node reads besides `v`, or -1.
int other_input(const Node &n, int v) {
  return n.inputs.size() == 2 ? (n.inputs[0] == v ? n.inputs[1] : n.inputs[0]) : -1;
}

// Walks a decomposed layer norm from value to value, collecting the nodes it passes in
// `chain` (they all go when the pattern is fused).
struct LayerNormWalk {
  Graph &g;
  const ValueLinks &links;

  // The first normalised axis of a keepdims ReduceMean over the trailing axes, or -1.
  int64_t trailing_axis(const Node &r) const {
    const Value &in = g.values[r.inputs[0]];
    if (!in.shape_known || !r.attrs.count("axes") || r.inputs.size() != 1) return -1;
    if (r.attrs.count("keepdims") && r.attrs.at("keepdims").i == 0) return -1;
    int64_t rank = static_cast<int64_t>(in.shape.size());
    std::vector<int64_t> axes = r.attrs.at("axes").ints;
    for (int64_t &a : axes) a = a < 0 ? a + rank : a;
    std::sort(axes.begin(), axes.end());
    for (size_t i = 0; i < axes.size(); ++i)
      if (axes[i] != rank - static_cast<int64_t>(axes.size()) + static_cast<int64_t>(i)) return -1;
    return axes.empty() ? -1 : axes[0];
  }

  // `v`, or, when v's only reader is a per-tensor QuantizeLinear whose output only a
  // DequantizeLinear with the same parameters reads, that DequantizeLinear's output (the pair
  // is appended to `chain`).
  int past_qdq(int v, std::vector<Node *> &chain) const {
    Node *q = links.single_reader(v);
    if (!q || !is_op(*q, "QuantizeLinear") || q->inputs.size() < 2 || q->outputs.size() != 1)
      return v;
    Node *dq = links.single_reader(q->outputs[0]);
    if (!dq || !is_op(*dq, "DequantizeLinear") || dq->outputs.size() != 1 ||
        dq->inputs.size() < 2 || !same_scalar_constant(g, q->inputs[1], dq->inputs[1]) ||
        !same_scalar_constant(g, input_or_none(*q, 2), input_or_none(*dq, 2)))
      return v;
    chain.push_back(q);
    chain.push_back(dq);
    return dq->outputs[0];
  }

  // The only reader of `v` (looking past a Q/DQ pair) when it is an `op`, and the value it
  // reads.
  struct Step {
    Node *node = nullptr;
    int value = -1;
  };
  Step next_op(int v, const char *op, std::vector<Node *> &chain) const {
    std::vector<Node *> pair;
    int read = past_qdq(v, pair);
    Node *n = links.single_reader(read);
    if (!n || !is_op(*n, op)) return {};
    chain.insert(chain.end(), pair.begin(), pair.end());
    chain.push_back(n);
    return {n, read};
  }
};

// The statistics of a layer norm starting at mean1, up to d / Sqrt(v + eps): x, the first
// normalised axis, eps, the Div and every node passed.
struct LayerNormStatistics {
  int x = -1;
  int64_t axis = -1;
  const Tensor *eps = nullptr;
  Node *div = nullptr;
  std::vector<Node *> chain;
};

// d's two readers: the Div by the standard deviation and the square (Pow 2 or d * d).
bool find_square_and_div(Graph &g, const ValueLinks &links, int d, Node *&square, Node *&div) {
  std::vector<Node *> d_readers = readers_of(g, d);
  if (d_readers.size() != 2 || links.uses[d] != 2 || links.graph_outputs.count(d)) return false;
  for (Node *r : d_readers) {
    if (is_op(*r, "Div") && r->inputs.size() == 2 && r->inputs[0] == d) div = r;
    if (is_op(*r, "Pow") && r->inputs.size() == 2 && r->inputs[0] == d) {
      const Tensor *e = scalar_constant(g, r->inputs[1]);
      if (e && e->data<float>()[0] == 2.f) square = r;
    }
    if (is_op(*r, "Mul") && r->inputs.size() == 2 && r->inputs[0] == d && r->inputs[1] == d)
      square = r;
  }
  return square && div;
}

std::optional<LayerNormStatistics> match_layer_norm_statistics(const LayerNormWalk &walk,
                                                               Node &mean1) {
  Graph &g = walk.g;
  const ValueLinks &links = walk.links;
  if (!is_op(mean1, "ReduceMean") || mean1.inputs.empty()) return {};
  LayerNormStatistics s;
  s.axis = walk.trailing_axis(mean1);
  if (s.axis < 0) return {};
  s.x = mean1.inputs[0];
  std::vector<Node *> &chain = s.chain;
  chain = {&mean1};
  auto [sub, m] = walk.next_op(mean1.outputs[0], "Sub", chain);
  if (!sub || sub->inputs.size() != 2 || sub->inputs[0] != s.x || sub->inputs[1] != m) return {};
  int d = walk.past_qdq(sub->outputs[0], chain);
  Node *square = nullptr, *div = nullptr;
  if (!find_square_and_div(g, links, d, square, div)) return {};
  chain.push_back(square);
  Node *mean2 = walk.next_op(square->outputs[0], "ReduceMean", chain).node;
  if (!mean2 || walk.trailing_axis(*mean2) != s.axis) return {};
  auto [add_eps, variance] = walk.next_op(mean2->outputs[0], "Add", chain);
  if (!add_eps) return {};
  s.eps = scalar_constant(g, other_input(*add_eps, variance));
  if (!s.eps) return {};
  Node *sqrt = walk.next_op(add_eps->outputs[0], "Sqrt", chain).node;
  if (!sqrt) return {};
  int std_dev = walk.past_qdq(sqrt->outputs[0], chain);
  if (links.single_reader(std_dev) != div || div->inputs[1] != std_dev) return {};
  chain.push_back(div);
  s.div = div;
  return s;
}

// The optional affine tail after the Div: * gamma [+ beta], constants that broadcast over the
// normalised dims only. Sets gamma, beta and the tail's last node; what it takes joins chain.
struct LayerNormAffine {
  int gamma = -1, beta = -1;
  Node *last = nullptr;
};

LayerNormAffine match_layer_norm_affine(const LayerNormWalk &walk, LayerNormStatistics &s,
                                        const Shape &block) {
  Graph &g = walk.g;
  auto fits_block = [&](int v) {
    const Value &val = g.values[v];
    return val.constant && val.dtype == DType::f32 && val.shape.size() <= block.size() &&
           broadcast_shapes(block, val.shape, "layer norm") == block;
  };
  LayerNormAffine affine;
  affine.last = s.div;
  std::vector<Node *> tail;
  if (auto [mul, normalised] = walk.next_op(s.div->outputs[0], "Mul", tail); mul) {
    int c = other_input(*mul, normalised);
    if (c >= 0 && fits_block(c)) {
      affine.gamma = c;
      affine.last = mul;
      s.chain.insert(s.chain.end(), tail.begin(), tail.end());
      tail.clear();
      if (auto [add, scaled] = walk.next_op(mul->outputs[0], "Add", tail); add) {
        int b = other_input(*add, scaled);
        if (b >= 0 && fits_block(b)) {
          affine.beta = b;
          affine.last = add;
          s.chain.insert(s.chain.end(), tail.begin(), tail.end());
        }
      }
    }
  }
  return affine;
}

// A constant of ones over the normalised block: gamma when the pattern has no Mul.
int unit_layer_norm_scale(Graph &g, int x, const Shape &block) {
  auto ones =
      std::make_shared<Tensor>(DType::f32, Shape{checked_element_count(block, "layer norm block")});
  std::fill(ones->data<float>(), ones->data<float>() + ones->count(), 1.f);
  ones->shape = block;
  return add_constant(g, g.values[x].name + " layer norm scale", ones);
}

// The decomposed layer norm of pre-opset-17 exporters:
//   m = ReduceMean(x, trailing axes); d = x - m; v = ReduceMean(d^2) (Pow 2 or d*d);
//   y = d / Sqrt(v + eps) [* gamma] [+ beta]
// becomes one axstream.LayerNorm (one pass per row instead of nine over the tensor). A
// quantised model may hold a QuantizeLinear -> DequantizeLinear pair on any intermediate value
// (our compiler quantises m and d, which feed Subs of two activations): those pairs go too, so
// the statistics come from the float input without intermediate rounding. The pairs on x and
// y stay: the op reads the dequantised input and its result is quantised for its readers.
void fuse_layer_norm(Graph &g) {
  ValueLinks links(g);
  LayerNormWalk walk{g, links};
  for (Node &mean1 : g.nodes) {
    std::optional<LayerNormStatistics> s = match_layer_norm_statistics(walk, mean1);
    if (!s) continue;
    const Shape &xs = g.values[s->x].shape;
    Shape block(xs.begin() + s->axis, xs.end());
    LayerNormAffine affine = match_layer_norm_affine(walk, *s, block);
    if (affine.gamma < 0) affine.gamma = unit_layer_norm_scale(g, s->x, block);
    Node fused = axstream_node(mean1.name.empty() ? affine.last->name : mean1.name, "LayerNorm");
    fused.inputs = {s->x, affine.gamma, affine.beta};
    fused.outputs = affine.last->outputs;
    fused.attrs["axis"] = int_attr(s->axis);
    fused.attrs["epsilon"] = float_attr(s->eps->data<float>()[0]);
    for (Node *n : s->chain) n->dead = true;
    *affine.last = std::move(fused);  // in the last node's place: every input exists by then
  }
}

// A MatMul or Gemm that fuse_qdq_matmul replaces: its dequantised inputs a and b (b an
// int8/uint8 constant with `columns` output columns), the bias in real units (Gemm's C or an
// Add after it), the activation and the QuantizeLinear it ends in.
struct QdqMatMul {
  bool gemm = false, trans_b = false;
  Node *da = nullptr, *db = nullptr;
  const Tensor *b = nullptr;
  int64_t columns = 0;
  std::shared_ptr<Tensor> bias;
  Node *bias_add = nullptr, *act = nullptr, *q = nullptr;
};

// A one-element constant at `slot`, or nothing there.
bool per_tensor_input(const Graph &g, const Node &n, size_t slot) {
  int v = input_or_none(n, slot);
  return v < 0 || (g.values[v].constant && g.values[v].constant->count() == 1);
}

// Gemm's C: a float constant, or DequantizeLinear of an int32 constant, one value per column
// (or one for all); it is added in real units before requantisation. False when C is there
// but is neither.
bool gemm_bias_in_real_units(const Graph &g, const ValueLinks &links, int c_in, float beta,
                             QdqMatMul &m) {
  const int64_t columns = m.columns;
  const Tensor *c = g.values[c_in].constant.get();
  const Tensor *c_scale = nullptr, *c_zero = nullptr;  // per tensor or per column
  if (!c) {
    Node *dc = dequantize_producing(links, c_in);
    if (!dc || input_or_none(*dc, 1) < 0) return false;
    c = g.values[dc->inputs[0]].constant.get();
    c_scale = g.values[dc->inputs[1]].constant.get();
    int zv = input_or_none(*dc, 2);
    if (!c_scale || (zv >= 0 && !(c_zero = g.values[zv].constant.get()))) return false;
  }
  auto per_column = [&](const Tensor *t) { return !t || t->count() == 1 || t->count() == columns; };
  if (!c || !per_column(c) || !per_column(c_scale) || !per_column(c_zero) ||
      (c->shape.size() == 2 && c->shape[0] != 1) || c->shape.size() > 2)
    return false;
  auto at = [](const Tensor *t, int64_t j, double dflt) {
    return t ? t->as_double(t->count() == 1 ? 0 : j) : dflt;
  };
  m.bias = std::make_shared<Tensor>(DType::f32, Shape{columns});
  for (int64_t j = 0; j < columns; ++j)
    m.bias->data<float>()[j] =
        static_cast<float>(beta * at(c_scale, j, 1.0) * (at(c, j, 0.0) - at(c_zero, j, 0.0)));
  return true;
}

// a: a per-tensor DequantizeLinear of a computed value; b: a per-tensor or per-column
// (its output-column axis) DequantizeLinear with a constant zero point.
bool quantisation_fits(const Graph &g, const QdqMatMul &m) {
  const Node &da = *m.da, &db = *m.db;
  if (g.values[da.inputs[0]].constant) return false;
  if (!per_tensor_input(g, da, 1) || !per_tensor_input(g, da, 2) || input_or_none(da, 1) < 0)
    return false;
  const Tensor *bs = input_or_none(db, 1) >= 0 ? g.values[db.inputs[1]].constant.get() : nullptr;
  if (!bs) return false;
  if (bs->count() != 1) {
    // Per column only: the quantisation axis must be b's output-column dim.
    int64_t rank = static_cast<int64_t>(m.b->shape.size());
    int64_t axis = db.attrs.count("axis") ? db.attrs.at("axis").i : 1;
    if (axis < 0) axis += rank;
    if (axis != (m.trans_b ? 0 : rank - 1) || bs->count() != m.columns) return false;
    int bz = input_or_none(db, 2);
    if (bz >= 0 && !g.values[bz].constant) return false;
  }
  return true;
}

// What follows the product: [Add of a per-column constant] -> [Sigmoid | Softmax over the last
// axis] -> a per-tensor QuantizeLinear. The Add counts only before an activation.
bool match_quantised_head(const Graph &g, const ValueLinks &links, const Node &mm, QdqMatMul &m) {
  const int64_t columns = m.columns;
  Node *q = links.single_reader(mm.outputs[0]);
  if (q && is_op(*q, "Add") && q->inputs.size() == 2 && !m.bias) {
    int other = q->inputs[0] == mm.outputs[0] ? q->inputs[1] : q->inputs[0];
    const Tensor *c = other >= 0 ? g.values[other].constant.get() : nullptr;
    if (c && c->dtype == DType::f32 && c->count() == columns && !c->shape.empty() &&
        c->shape.back() == columns) {
      m.bias = std::make_shared<Tensor>(DType::f32, Shape{columns});
      std::copy_n(c->data<float>(), columns, m.bias->data<float>());
      m.bias_add = q;
      q = links.single_reader(q->outputs[0]);
    }
  }
  auto last_axis = [](const Node &n) {
    if (!n.attrs.count("axis")) return n.opset >= 13;
    return n.attrs.at("axis").i == -1;
  };
  if (q && (is_op(*q, "Sigmoid") || (is_op(*q, "Softmax") && last_axis(*q)))) {
    m.act = q;
    q = links.single_reader(q->outputs[0]);
  }
  if (m.bias_add && !m.act) return false;  // a bias without the activation stays a float Add
  if (!q || !is_op(*q, "QuantizeLinear") || !per_tensor_input(g, *q, 1) ||
      !per_tensor_input(g, *q, 2) || input_or_none(*q, 1) < 0 || input_or_none(*q, 2) < 0)
    return false;
  m.q = q;
  return true;
}

std::optional<QdqMatMul> match_qdq_matmul(const Graph &g, const ValueLinks &links, Node &mm) {
  QdqMatMul m;
  m.gemm = is_op(mm, "Gemm");
  if (!(is_op(mm, "MatMul") || m.gemm) || mm.inputs.size() < 2) return {};
  if (m.gemm) {
    auto attr = [&](const char *k, double d) {
      return mm.attrs.count(k)
                 ? (mm.attrs.at(k).kind == Attribute::Kind::f ? mm.attrs.at(k).f : mm.attrs.at(k).i)
                 : d;
    };
    if (attr("transA", 0) != 0 || attr("alpha", 1) != 1) return {};
  }
  m.trans_b = m.gemm && mm.attrs.count("transB") && mm.attrs.at("transB").i != 0;
  float beta = m.gemm && mm.attrs.count("beta") ? mm.attrs.at("beta").f : 1.f;
  m.da = dequantize_producing(links, mm.inputs[0]);
  m.db = dequantize_producing(links, mm.inputs[1]);
  if (!m.da || !m.db || m.da == m.db) return {};
  m.b = g.values[m.db->inputs[0]].constant.get();
  const Tensor *b = m.b;
  if (!b || (b->dtype != DType::i8 && b->dtype != DType::u8) || b->shape.size() < 2) return {};
  if (m.trans_b && b->shape.size() != 2) return {};
  m.columns = m.trans_b ? b->shape[0] : b->shape.back();
  int c_in = m.gemm && mm.inputs.size() > 2 ? mm.inputs[2] : -1;
  if (c_in >= 0 && !gemm_bias_in_real_units(g, links, c_in, beta, m)) return {};
  if (!quantisation_fits(g, m) || !match_quantised_head(g, links, mm, m)) return {};
  return m;
}

// The matched nodes become one QLinearMatMul, or axstream.QGemm for a Gemm or with an
// activation, in the QuantizeLinear's place; b is laid out (K, N) once when transposed.
void replace_with_quantised_matmul(Graph &g, Node &mm, const QdqMatMul &m) {
  Node *da = m.da, *db = m.db, *q = m.q;
  const Tensor *b = m.b;
  int b_value = db->inputs[0];
  if (m.trans_b) {  // laid out once as (K, N)
    auto bt = std::make_shared<Tensor>(b->dtype, Shape{b->shape[1], b->shape[0]});
    int64_t rows = b->shape[0], cols = b->shape[1];
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) bt->bytes[c * rows + r] = b->bytes[r * cols + c];
    b_value = add_constant(g, g.values[b_value].name + " transposed", bt);
  }
  Node fused;
  fused.name = mm.name.empty() ? q->name : mm.name;
  const bool axstream_op = m.gemm || m.act;
  fused.op_type = axstream_op ? "QGemm" : "QLinearMatMul";
  fused.domain = axstream_op ? "axstream" : "";
  fused.opset = axstream_op ? 1 : 10;
  if (m.act) fused.attrs["_activation"] = string_attr(m.act->op_type);
  fused.inputs = {
      da->inputs[0],         input_or_none(*da, 1), input_or_none(*da, 2), b_value,
      input_or_none(*db, 1), input_or_none(*db, 2), input_or_none(*q, 1),  input_or_none(*q, 2)};
  if (m.bias) fused.inputs.push_back(add_constant(g, fused.name + " bias", m.bias));
  fused.outputs = q->outputs;
  mm.dead = true;
  if (m.bias_add) m.bias_add->dead = true;
  if (m.act) m.act->dead = true;
  *q = std::move(fused);
}

// DequantizeLinear(a) x DequantizeLinear(int8/uint8 constant b) -> MatMul -> QuantizeLinear,
// per-tensor activations, per-tensor or per-column b: one QLinearMatMul with int32
// accumulation and requantisation; the same around a Gemm (transB, beta and a constant or
// dequantised C allowed; not transA or alpha) gives axstream.QGemm, which adds C before
// requantising. A MatMul/Gemm -> [Add of a per-column constant] -> Sigmoid | Softmax over the
// last axis -> QuantizeLinear (a classifier or CTC head whose probabilities our compiler keeps in
// the core) becomes a QGemm with that activation on the real-valued result before
// requantising, instead of a float MatMul. Runs before folding, while b is still integer.
void fuse_qdq_matmul(Graph &g) {
  ValueLinks links(g);
  for (Node &mm : g.nodes)
    if (std::optional<QdqMatMul> match = match_qdq_matmul(g, links, mm))
      replace_with_quantised_matmul(g, mm, *match);
}

// A per-tensor QuantizeLinear's arithmetic (divide, round half to even, add the zero point,
// saturate), as ops/quantize.cc computes it, for tables built at compile time.
struct QuantStep {
  float scale = 1.f;
  int32_t zero_point = 0;
  DType dtype = DType::u8;
  float quantize(float x) const {
    float lo = dtype == DType::i8 ? -128.f : 0.f, hi = dtype == DType::i8 ? 127.f : 255.f;
    float v = x / scale, z = static_cast<float>(zero_point);
    v = v >= lo - z ? v : lo - z;
    v = v > hi - z ? hi - z : v;
    return std::nearbyint(v) + z;
  }
  float dequantize(float q) const { return (q - static_cast<float>(zero_point)) * scale; }
};

// The parameters of a Q or DQ node with a constant float scale and an optional constant zero
// point, both one value; false otherwise.
bool per_tensor_step(const Graph &g, const Node &n, DType dtype, QuantStep &step) {
  const Tensor *scale = n.inputs.size() > 1 ? scalar_constant(g, n.inputs[1]) : nullptr;
  if (!scale) return false;
  int zp = input_or_none(n, 2);
  if (zp >= 0 && (!g.values[zp].constant || g.values[zp].constant->count() != 1)) return false;
  step.scale = scale->data<float>()[0];
  step.zero_point = zp >= 0 ? static_cast<int32_t>(g.values[zp].constant->as_int(0)) : 0;
  step.dtype = dtype;
  return step.scale > 0.f && std::isfinite(step.scale);
}

// DequantizeLinear(x) -> SiLU (x * Sigmoid(x), optionally with a Q/DQ pair on the sigmoid, as
// our compiler writes it) -> QuantizeLinear, with per-tensor int8/uint8 parameters, is a
// function of x's 256 values: it becomes one axstream.QLookup whose table is that arithmetic
// evaluated once here, so YOLO-style convolution outputs stay int8 (and NHWC) between convs.
void fuse_qdq_silu(Graph &g) {
  ValueLinks links(g);
  for (Node &dq : g.nodes) {
    if (!is_op(dq, "DequantizeLinear") || dq.inputs.empty() || dq.inputs[0] < 0 ||
        dq.outputs.size() != 1)
      continue;
    QuantStep x_step;
    if (!is_int8_or_uint8(g.values[dq.inputs[0]].dtype) ||
        !per_tensor_step(g, dq, g.values[dq.inputs[0]].dtype, x_step))
      continue;
    int d = dq.outputs[0];
    std::vector<Node *> readers = readers_of(g, d);
    if (readers.size() != 2 || links.uses[d] != 2 || links.graph_outputs.count(d)) continue;
    Node *sig = is_op(*readers[0], "Sigmoid") ? readers[0] : readers[1];
    Node *mul = sig == readers[0] ? readers[1] : readers[0];
    if (!is_op(*sig, "Sigmoid") || !is_op(*mul, "Mul") || mul->inputs.size() != 2 ||
        sig->outputs.size() != 1 || mul->outputs.size() != 1)
      continue;
    std::vector<Node *> chain = {&dq, sig, mul};
    // The sigmoid's output, possibly through a Q/DQ pair, is Mul's other input.
    int s = sig->outputs[0];
    bool sig_quantised = false;
    QuantStep sig_step;
    if (Node *sq = links.single_reader(s);
        sq && is_op(*sq, "QuantizeLinear") && sq->outputs.size() == 1) {
      Node *sdq = links.single_reader(sq->outputs[0]);
      DType sdt = g.values[sq->outputs[0]].dtype;
      QuantStep back;
      if (!sdq || !is_op(*sdq, "DequantizeLinear") || !is_int8_or_uint8(sdt) ||
          !per_tensor_step(g, *sq, sdt, sig_step) || !per_tensor_step(g, *sdq, sdt, back) ||
          back.scale != sig_step.scale || back.zero_point != sig_step.zero_point)
        continue;
      sig_quantised = true;
      s = sdq->outputs[0];
      chain.push_back(sq);
      chain.push_back(sdq);
    }
    bool pair = (mul->inputs[0] == d && mul->inputs[1] == s) ||
                (mul->inputs[1] == d && mul->inputs[0] == s);
    if (!pair || links.single_reader(s) != mul) continue;
    Node *q = links.single_reader(mul->outputs[0]);
    if (!q || !is_op(*q, "QuantizeLinear") || q->outputs.size() != 1) continue;
    DType y_dtype = g.values[q->outputs[0]].dtype;
    QuantStep y_step;
    if (!is_int8_or_uint8(y_dtype) || !per_tensor_step(g, *q, y_dtype, y_step)) continue;
    auto table = std::make_shared<Tensor>(y_dtype, Shape{256});
    int first = x_step.dtype == DType::i8 ? -128 : 0;
    for (int i = 0; i < 256; ++i) {
      float x = x_step.dequantize(static_cast<float>(first + i));
      float sigmoid = 1.f / (1.f + std::exp(-x));
      if (sig_quantised) sigmoid = sig_step.dequantize(sig_step.quantize(sigmoid));
      float y = y_step.quantize(x * sigmoid);
      if (y_dtype == DType::i8)
        table->data<int8_t>()[i] = static_cast<int8_t>(y);
      else
        table->data<uint8_t>()[i] = static_cast<uint8_t>(y);
    }
    Node fused = axstream_node(sig->name.empty() ? q->name : sig->name, "QLookup");
    fused.inputs = {dq.inputs[0],
                    add_constant(g, g.values[q->outputs[0]].name + " SiLU table", table)};
    fused.outputs = q->outputs;
    fused.attrs["_function"] = string_attr("SiLU");
    for (Node *n : chain) n->dead = true;
    *q = std::move(fused);  // in the Q node's place: its input exists by then
  }
}

// Float ops whose every output element is a function of the same element of their inputs
// (one-element constants aside), so a chain of them on one int8 tensor is a function of its
// 256 values.
bool is_elementwise_float_op(const Node &n) {
  static const std::set<std::string> ops = {
      "Add",         "Sub",       "Mul",      "Div",
      "Pow",         "Max",       "Min",      "Sum",
      "Mean",        "Clip",      "Relu",     "LeakyRelu",
      "Elu",         "Selu",      "Celu",     "Sigmoid",
      "HardSigmoid", "HardSwish", "Tanh",     "Exp",
      "Log",         "Sqrt",      "Erf",      "Reciprocal",
      "Neg",         "Abs",       "Floor",    "Ceil",
      "Round",       "Softplus",  "Softsign", "ThresholdedRelu",
      "Shrink",      "Sign",      "Identity"};
  return !n.dead && n.domain.empty() && n.outputs.size() == 1 && ops.count(n.op_type) &&
         !n.attrs.count("_activation");
}

// The 256 outputs of `terminal` (a QuantizeLinear in `members`) for every value of the int8
// `source` tensor, computed by constant-folding a copy of the members on a tensor holding all
// 256 values: the engine's own kernels evaluate it, so the table is bit-exact to the unfused
// ops by construction. nullptr when a kernel refuses (the unfused graph then reports it).
std::shared_ptr<Tensor> tabulate(const Graph &g, int source, const std::vector<Node *> &members,
                                 const Node &terminal) {
  Graph table_graph;
  table_graph.source_name = g.source_name + " (lookup table)";
  table_graph.opsets = g.opsets;
  const Value &x = g.values[source];
  Shape codes_shape(std::max<size_t>(x.shape.size(), 1), 1);
  codes_shape.back() = 256;
  auto codes = std::make_shared<Tensor>(x.dtype, codes_shape);
  for (int i = 0; i < 256; ++i)
    codes->bytes[i] = static_cast<uint8_t>(x.dtype == DType::i8 ? i - 128 : i);
  std::map<int, int> copied;  // value id in g -> in table_graph
  copied[source] = add_constant(table_graph, x.name, codes);
  auto copy_input = [&](int v) -> int {
    if (v < 0) return -1;
    if (auto it = copied.find(v); it != copied.end()) return it->second;
    Value c;
    c.name = g.values[v].name;
    c.dtype = g.values[v].dtype;
    c.shape = g.values[v].shape;
    c.shape_known = true;
    c.constant = g.values[v].constant;  // shared: read only
    return copied[v] = table_graph.add_value(std::move(c));
  };
  for (const Node *n : members) {
    Node c = *n;
    for (int &in : c.inputs) in = copy_input(in);
    for (int &out : c.outputs) {
      Value v;
      v.name = g.values[out].name;
      int id = table_graph.add_value(std::move(v));
      copied[out] = id;
      out = id;
    }
    table_graph.nodes.push_back(std::move(c));
    if (n == &terminal) break;
  }
  try {
    infer_and_fold(table_graph, size_t(1) << 20);
  } catch (const Error &) {
    return nullptr;
  }
  const TensorPtr &result = table_graph.values[copied.at(terminal.outputs[0])].constant;
  if (!result || result->count() != 256) return nullptr;
  auto table = std::make_shared<Tensor>(result->dtype, Shape{256});
  table->bytes.assign(result->bytes.begin(), result->bytes.begin() + 256);
  return table;
}

// DequantizeLinear(x) followed by any graph of float element-wise ops on that one tensor and
// one-element constants (hard-swish, hard-sigmoid, the learnable affine x * a + b of PP-LCNet,
// Clip, Sigmoid, Tanh, ... with or without Q/DQ pairs between them) up to a QuantizeLinear is a
// function of x's 256 values: each such QuantizeLinear whose result leaves the chain becomes one
// axstream.QLookup of x. The float ops stay only where something else still reads them.
void fuse_qdq_elementwise_tables(Graph &g) {
  std::vector<std::vector<int>> readers(g.values.size());
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (int v : g.nodes[i].inputs)
      if (v >= 0 && (readers[v].empty() || readers[v].back() != static_cast<int>(i)))
        readers[v].push_back(static_cast<int>(i));
  std::set<int> graph_outputs(g.outputs.begin(), g.outputs.end());
  auto one_element_constant = [&](int v) {
    return g.values[v].constant && g.values[v].constant->count() == 1;
  };
  for (size_t s = 0; s < g.nodes.size(); ++s) {
    Node &dq = g.nodes[s];
    if (!is_op(dq, "DequantizeLinear") || dq.outputs.size() != 1 || dq.inputs.empty() ||
        dq.inputs[0] < 0 || g.values[dq.inputs[0]].constant)
      continue;
    int source = dq.inputs[0];
    const Value &x = g.values[source];
    QuantStep step;
    if (!is_int8_or_uint8(x.dtype) || !x.shape_known || !per_tensor_step(g, dq, x.dtype, step))
      continue;
    // Grow the chain: a node joins once every non-constant input is computed inside it.
    std::set<int> inside_values = {dq.outputs[0]};
    std::set<int> member_ids = {static_cast<int>(s)};
    std::vector<int> pending = {dq.outputs[0]};
    while (!pending.empty()) {
      int v = pending.back();
      pending.pop_back();
      for (int r : readers[v]) {
        Node &n = g.nodes[r];
        if (member_ids.count(r) || n.dead) continue;
        bool q = is_op(n, "QuantizeLinear"), d = is_op(n, "DequantizeLinear");
        if (!q && !d && !is_elementwise_float_op(n)) continue;
        bool joins = n.outputs.size() == 1 && n.outputs[0] >= 0;
        for (size_t i = 0; i < n.inputs.size() && joins; ++i) {
          int in = n.inputs[i];
          if (in < 0) continue;
          joins = (q || d) && i > 0 ? one_element_constant(in)
                                    : inside_values.count(in) || one_element_constant(in);
        }
        if (!joins || ((q || d) && !inside_values.count(n.inputs[0]))) continue;
        const Value &out = g.values[n.outputs[0]];
        if (!out.shape_known || out.shape != x.shape || (q && !is_int8_or_uint8(out.dtype)) ||
            (!q && out.dtype != DType::f32))
          continue;
        member_ids.insert(r);
        inside_values.insert(n.outputs[0]);
        pending.push_back(n.outputs[0]);
      }
    }
    std::vector<Node *> members;
    for (int id : member_ids) members.push_back(&g.nodes[id]);  // in graph order
    for (Node *q : members) {
      if (!is_op(*q, "QuantizeLinear")) continue;
      // Tabulated when its int8 result is read outside the chain, directly or as the float
      // of a DequantizeLinear in the chain that something outside reads (that one stays).
      int y = q->outputs[0];
      auto read_outside = [&](int v) {
        if (graph_outputs.count(v)) return true;
        for (int r : readers[v])
          if (!g.nodes[r].dead && !member_ids.count(r)) return true;
        return false;
      };
      bool leaves = read_outside(y);
      for (int r : readers[y])
        if (member_ids.count(r) && is_op(g.nodes[r], "DequantizeLinear") &&
            read_outside(g.nodes[r].outputs[0]))
          leaves = true;
      if (!leaves) continue;
      std::shared_ptr<Tensor> table = tabulate(g, source, members, *q);
      if (!table) continue;
      std::string function;
      for (const Node *n : members) {
        if (n == q) break;
        if (n->op_type == "QuantizeLinear" || n->op_type == "DequantizeLinear") continue;
        function += (function.empty() ? "" : ",") + n->op_type;
      }
      Node fused = axstream_node(q->name, "QLookup");
      fused.inputs = {source, add_constant(g, g.values[y].name + " table", table)};
      readers.emplace_back();
      readers[source].push_back(static_cast<int>(q - g.nodes.data()));
      fused.outputs = {y};
      fused.attrs["_function"] = string_attr(function.empty() ? "requantise" : function);
      *q = std::move(fused);  // in the Q node's place: x exists by then
    }
    // The chain's float ops nobody reads any more go now, so later sources skip them.
    eliminate_dead_nodes(g);
  }
}

// Ops that only move or select elements of their first input (any others are constant shapes,
// indices or parameters). MaxPool selects by value, which the monotonic (de)quantisation keeps.
bool moves_elements(const Graph &g, const Node &n) {
  static const std::set<std::string> ops = {"Reshape",      "Flatten", "Squeeze", "Unsqueeze",
                                            "Transpose",    "Slice",   "MaxPool", "DepthToSpace",
                                            "SpaceToDepth", "Resize",  "Expand",  "Tile"};
  if (n.dead || !n.domain.empty() || !ops.count(n.op_type) || n.outputs.size() != 1 ||
      n.inputs.empty() || n.inputs[0] < 0)
    return false;
  if (n.op_type == "Resize" && (!n.attrs.count("mode") ? false : n.attrs.at("mode").s != "nearest"))
    return false;
  for (size_t i = 1; i < n.inputs.size(); ++i)
    if (n.inputs[i] >= 0 && !g.values[n.inputs[i]].constant) return false;
  return true;
}

// DequantizeLinear -> an element-moving op (above) -> QuantizeLinear, per-tensor parameters:
// the op runs on the int8/uint8 tensor itself, exactly. With the same parameters on both sides
// nothing else is needed; otherwise the QuantizeLinear becomes a 256-entry requantisation
// table (axstream.QLookup) of the moved int8 values.
void fuse_qdq_data_movement(Graph &g) {
  ValueLinks links(g);
  for (Node &op : g.nodes) {
    if (!moves_elements(g, op)) continue;
    int xin = op.inputs[0];
    if (links.producer[xin] < 0) continue;
    Node &dq = g.nodes[links.producer[xin]];
    if (!is_op(dq, "DequantizeLinear") || dq.inputs.empty() || dq.inputs[0] < 0 ||
        g.values[dq.inputs[0]].constant)
      continue;
    DType x_type = g.values[dq.inputs[0]].dtype;
    QuantStep x_step, y_step;
    if (!is_int8_or_uint8(x_type) || !per_tensor_step(g, dq, x_type, x_step)) continue;
    Node *q = links.single_reader(op.outputs[0]);
    if (!q || !is_op(*q, "QuantizeLinear") || q->outputs.size() != 1) continue;
    DType y_type = g.values[q->outputs[0]].dtype;
    if (!is_int8_or_uint8(y_type) || !per_tensor_step(g, *q, y_type, y_step)) continue;
    if (x_type == y_type && x_step.scale == y_step.scale &&
        x_step.zero_point == y_step.zero_point) {
      op.inputs[0] = dq.inputs[0];
      op.outputs = q->outputs;
      q->dead = true;  // the DequantizeLinear goes too once nobody else reads it
      continue;
    }
    Node requantise = *q;
    requantise.inputs[0] = dq.outputs[0];
    std::shared_ptr<Tensor> table = tabulate(g, dq.inputs[0], {&dq, &requantise}, requantise);
    if (!table) continue;
    Value moved;
    moved.name = g.values[op.outputs[0]].name + "/int8";
    moved.dtype = x_type;
    moved.shape = g.values[op.outputs[0]].shape;
    moved.shape_known = true;
    int moved_id = g.add_value(std::move(moved));
    op.inputs[0] = dq.inputs[0];
    op.outputs = {moved_id};
    Node lookup = axstream_node(q->name, "QLookup");
    lookup.inputs = {moved_id, add_constant(g, g.values[q->outputs[0]].name + " table", table)};
    lookup.outputs = q->outputs;
    lookup.attrs["_function"] = string_attr("requantise");
    *q = std::move(lookup);  // after the op, in the Q node's place
  }
}

// DequantizeLinear -> Split -> one QuantizeLinear per output, each with the DequantizeLinear's
// dtype and per-tensor parameters (YOLOv8's C2f blocks, as our compiler writes them): the Split
// runs on the int8/uint8 tensor itself, exactly (quantising a dequantised value with the same
// parameters gives it back), instead of dequantising it, splitting floats and quantising each
// part. Split along channels then stays NHWC with its neighbours (elementwise_int8_values).
// AXSTREAM_ENGINE_INT8_SPLIT=0 keeps the float Split (the same bytes either way).
void fuse_qdq_split(Graph &g) {
  if (!setting_not_zero("AXSTREAM_ENGINE_INT8_SPLIT")) return;
  ValueLinks links(g);
  for (Node &split : g.nodes) {
    if (!is_op(split, "Split") || split.inputs.empty() || split.inputs[0] < 0 ||
        split.outputs.empty() || links.producer[split.inputs[0]] < 0 ||
        (split.inputs.size() > 1 && split.inputs[1] >= 0 && !g.values[split.inputs[1]].constant))
      continue;
    Node &dq = g.nodes[links.producer[split.inputs[0]]];
    if (!is_op(dq, "DequantizeLinear") || dq.inputs.empty() || dq.inputs[0] < 0 ||
        g.values[dq.inputs[0]].constant)
      continue;
    const DType x_type = g.values[dq.inputs[0]].dtype;
    QuantStep x_step;
    if (!is_int8_or_uint8(x_type) || !per_tensor_step(g, dq, x_type, x_step)) continue;
    std::vector<Node *> quantizes;
    for (int out : split.outputs) {
      Node *q = out < 0 ? nullptr : links.single_reader(out);
      QuantStep y_step;
      if (!q || !is_op(*q, "QuantizeLinear") || q->outputs.size() != 1 ||
          g.values[q->outputs[0]].dtype != x_type || !per_tensor_step(g, *q, x_type, y_step) ||
          y_step.scale != x_step.scale || y_step.zero_point != x_step.zero_point)
        break;
      quantizes.push_back(q);
    }
    if (quantizes.size() != split.outputs.size()) continue;
    split.inputs[0] = dq.inputs[0];
    for (size_t i = 0; i < quantizes.size(); ++i) {
      split.outputs[i] = quantizes[i]->outputs[0];
      quantizes[i]->dead = true;  // the DequantizeLinear goes too once nobody else reads it
    }
  }
}

// The constant float `source` quantised by a copy of `q` (a per-tensor QuantizeLinear), folded
// by the engine's own kernel so it is bit-exact to quantising it at run time; nullptr when the
// kernel refuses or the constant is larger than a pad's fill should be.
TensorPtr quantised_constant(const Graph &g, int source, const Node &q) {
  const Value &x = g.values[source];
  if (!x.constant || x.dtype != DType::f32 || x.constant->count() > (int64_t(1) << 20))
    return nullptr;
  Graph fold_graph;
  fold_graph.source_name = g.source_name + " (quantised constant)";
  fold_graph.opsets = g.opsets;
  Node c = q;
  for (int &in : c.inputs) {
    if (in < 0) continue;
    Value v = g.values[in == q.inputs[0] ? source : in];  // the constant, scale, zero point
    if (!v.constant) return nullptr;
    in = fold_graph.add_value(std::move(v));
  }
  Value y;
  y.name = g.values[q.outputs[0]].name;
  c.outputs = {fold_graph.add_value(std::move(y))};
  fold_graph.nodes.push_back(std::move(c));
  try {
    infer_and_fold(fold_graph, size_t(1) << 20);
  } catch (const Error &) {
    return nullptr;
  }
  return fold_graph.values[fold_graph.nodes[0].outputs[0]].constant;
}

// DequantizeLinear(x_i) for every input -> Concat -> QuantizeLinear, per-tensor parameters:
// one axstream.QConcat on the int8 tensors, each input copied as is when its parameters are
// the output's, else through its 256-entry requantisation table. A float constant input (the
// zeros of a channel Pad, which BlazeFace's ONNX export writes as a Concat) is quantised here by
// the QuantizeLinear itself and copied: the same bytes the float Concat + QuantizeLinear make.
void fuse_qdq_concat(Graph &g) {
  ValueLinks links(g);
  for (Node &cat : g.nodes) {
    if (!is_op(cat, "Concat") || cat.outputs.size() != 1 || cat.inputs.empty()) continue;
    Node *q = links.single_reader(cat.outputs[0]);
    if (!q || !is_op(*q, "QuantizeLinear") || q->outputs.size() != 1) continue;
    DType y_type = g.values[q->outputs[0]].dtype;
    QuantStep y_step;
    if (!is_int8_or_uint8(y_type) || !per_tensor_step(g, *q, y_type, y_step)) continue;
    std::vector<int> xs, tables;
    for (int in : cat.inputs) {
      if (in >= 0 && g.values[in].constant) {
        TensorPtr quantised = quantised_constant(g, in, *q);
        if (!quantised || quantised->dtype != y_type) break;
        xs.push_back(add_constant(g, g.values[in].name + "/q", quantised));
        tables.push_back(-1);
        continue;
      }
      Node *dq = in >= 0 && links.producer[in] >= 0 ? &g.nodes[links.producer[in]] : nullptr;
      QuantStep x_step;
      if (!dq || !is_op(*dq, "DequantizeLinear") || dq->inputs.empty() || dq->inputs[0] < 0 ||
          g.values[dq->inputs[0]].constant || !is_int8_or_uint8(g.values[dq->inputs[0]].dtype) ||
          !per_tensor_step(g, *dq, g.values[dq->inputs[0]].dtype, x_step))
        break;
      xs.push_back(dq->inputs[0]);
      if (x_step.dtype == y_type && x_step.scale == y_step.scale &&
          x_step.zero_point == y_step.zero_point) {
        tables.push_back(-1);
        continue;
      }
      Node requantise = *q;
      requantise.inputs[0] = dq->outputs[0];
      std::shared_ptr<Tensor> table = tabulate(g, dq->inputs[0], {dq, &requantise}, requantise);
      if (!table) break;
      tables.push_back(add_constant(
          g, g.values[q->outputs[0]].name + " table " + std::to_string(tables.size()), table));
    }
    if (xs.size() != cat.inputs.size() || tables.size() != xs.size()) continue;
    Node fused = axstream_node(cat.name.empty() ? q->name : cat.name, "QConcat");
    fused.inputs = xs;
    fused.inputs.insert(fused.inputs.end(), tables.begin(), tables.end());
    fused.outputs = q->outputs;
    fused.attrs["axis"] = int_attr(cat.attrs.count("axis") ? cat.attrs.at("axis").i : 0);
    fused.attrs["_out_int8"] = int_attr(y_type == DType::i8 ? 1 : 0);
    cat.dead = true;
    *q = std::move(fused);  // the DequantizeLinears go once nobody else reads them
  }
}

// Whether DQ -> AveragePool -> Q fuses into axstream.QAveragePool: unless
// AXSTREAM_ENGINE_QAVERAGE_POOL=0 (then the float pool runs between the two, as before 7 Dec
// 2026; outputs within one step, for comparing). Read at each compile.
bool qaverage_pool_enabled() { return setting_not_zero("AXSTREAM_ENGINE_QAVERAGE_POOL"); }

// DequantizeLinear(x) -> GlobalAveragePool | AveragePool (2-D windows, its attributes kept) ->
// QuantizeLinear, 4-D int8/uint8 x, per-tensor parameters: axstream.QGlobalAveragePool |
// axstream.QAveragePool, exact int32 sums (the float path's sequential float sum rounds on the
// way: results may differ by one output step).
void fuse_qdq_average_pools(Graph &g) {
  ValueLinks links(g);
  const bool windows = qaverage_pool_enabled();
  for (Node &pool : g.nodes) {
    const bool global = is_op(pool, "GlobalAveragePool");
    if (!(global || (windows && is_op(pool, "AveragePool"))) || pool.inputs.size() != 1 ||
        pool.outputs.size() != 1 || pool.inputs[0] < 0 || links.producer[pool.inputs[0]] < 0)
      continue;
    // int32 sums hold 2^23 values of |x| <= 255 (qaverage_pool.cc refuses larger windows).
    if (!global &&
        (!pool.attrs.count("kernel_shape") || pool.attrs.at("kernel_shape").ints.size() != 2 ||
         pool.attrs.at("kernel_shape").ints[0] * pool.attrs.at("kernel_shape").ints[1] >
             (int64_t{1} << 23)))
      continue;
    Node &dq = g.nodes[links.producer[pool.inputs[0]]];
    QuantStep x_step, y_step;
    if (!is_op(dq, "DequantizeLinear") || dq.inputs.empty() || dq.inputs[0] < 0 ||
        g.values[dq.inputs[0]].constant || g.values[dq.inputs[0]].shape.size() != 4 ||
        !is_int8_or_uint8(g.values[dq.inputs[0]].dtype) ||
        !per_tensor_step(g, dq, g.values[dq.inputs[0]].dtype, x_step))
      continue;
    Node *q = links.single_reader(pool.outputs[0]);
    if (!q || !is_op(*q, "QuantizeLinear") || q->outputs.size() != 1 ||
        !is_int8_or_uint8(g.values[q->outputs[0]].dtype) ||
        !per_tensor_step(g, *q, g.values[q->outputs[0]].dtype, y_step))
      continue;
    Node fused = axstream_node(pool.name.empty() ? q->name : pool.name,
                               global ? "QGlobalAveragePool" : "QAveragePool");
    fused.inputs = {dq.inputs[0], dq.inputs[1], input_or_none(dq, 2), q->inputs[1],
                    input_or_none(*q, 2)};
    fused.outputs = q->outputs;
    if (!global) fused.attrs = pool.attrs;
    pool.dead = true;
    *q = std::move(fused);  // the DequantizeLinear goes once nobody else reads it
  }
}

// QLinearMatMul (or an axstream.QGemm without a fused activation) -> DequantizeLinear -> Add of
// one float constant per output column -> QuantizeLinear, all per tensor, with no other reader
// in between: a Linear layer whose bias is added in float after the product's own
// requantisation, as PP-OCR rec's package has its CTC head (40 x 6625 values through three
// float passes, ~0.15 ms of its ~3 ms). The matmul becomes an axstream.QGemm that runs the
// three ops' arithmetic on each requantised row while it is in cache (inputs 9-13: the
// DequantizeLinear's scale and zero point, the added values, the QuantizeLinear's scale and
// zero point; ops/requantise_rows.h), the same IEEE operations in their order, so the same
// bytes. AXSTREAM_ENGINE_MATMUL_BIAS_REQUANTISE=0 keeps the three ops.
void fuse_matmul_dequantize_add_quantize(Graph &g) {
  if (!setting_not_zero("AXSTREAM_ENGINE_MATMUL_BIAS_REQUANTISE")) return;
  ValueLinks links(g);
  for (Node &mm : g.nodes) {
    const bool qgemm = is_op_in(mm, "axstream", "QGemm");
    if (!(is_op(mm, "QLinearMatMul") || qgemm) || mm.attrs.count("_activation") ||
        mm.attrs.count("_dequantize_add_quantize") || mm.outputs.size() != 1 ||
        input_or_none(mm, 7) < 0)
      continue;
    const int y = mm.outputs[0];
    const DType yt = g.values[y].dtype;
    const Shape &y_shape = g.values[y].shape;
    QuantStep dq_step, q_step;
    Node *dq = links.single_reader(y);
    if (!is_int8_or_uint8(yt) || y_shape.empty() || !dq || !is_op(*dq, "DequantizeLinear") ||
        dq->inputs[0] != y || dq->outputs.size() != 1 || !per_tensor_step(g, *dq, yt, dq_step))
      continue;
    Node *add = links.single_reader(dq->outputs[0]);
    if (!add || !is_op(*add, "Add") || add->inputs.size() != 2 || add->outputs.size() != 1 ||
        g.values[add->outputs[0]].shape != y_shape)
      continue;
    const int added = add->inputs[0] == dq->outputs[0] ? add->inputs[1] : add->inputs[0];
    const Tensor *c = added >= 0 ? g.values[added].constant.get() : nullptr;
    const int64_t columns = y_shape.back();
    if (!c || c->dtype != DType::f32 || c->count() != columns || c->shape.empty() ||
        c->shape.back() != columns || c->shape.size() > y_shape.size())
      continue;
    Node *q = links.single_reader(add->outputs[0]);
    if (!q || !is_op(*q, "QuantizeLinear") || q->outputs.size() != 1 || input_or_none(*q, 2) < 0 ||
        !is_int8_or_uint8(g.values[q->outputs[0]].dtype) ||
        !per_tensor_step(g, *q, g.values[q->outputs[0]].dtype, q_step))
      continue;
    Node fused = mm;
    fused.op_type = "QGemm";
    fused.domain = "axstream";
    fused.opset = 1;
    fused.inputs.resize(9, -1);
    for (int v : {dq->inputs[1], input_or_none(*dq, 2), added, q->inputs[1], q->inputs[2]})
      fused.inputs.push_back(v);
    fused.attrs["_dequantize_add_quantize"] = int_attr(1);
    fused.outputs = q->outputs;
    mm.dead = true;
    dq->dead = true;
    add->dead = true;
    *q = std::move(fused);  // in the QuantizeLinear's place: every input exists by then
  }
}

// QuantizeLinear([Relu](DequantizeLinear(a) Add|Mul DequantizeLinear(b))), per-tensor
// constant parameters, b of a's shape or one value per channel (1,C,1,1) (the SE block's
// x * gate, the joins after it): one axstream.QBinary that computes the same float expressions
// element by element on the int8 tensors. Unlike the QAdd fusion, the DequantizeLinears may
// have other readers (they stay for them). Runs after the QAdd fusion.
void fuse_qdq_binary(Graph &g) {
  ValueLinks links(g);
  auto per_tensor_dq = [&](int v) -> Node * {
    if (v < 0 || links.producer[v] < 0) return nullptr;
    Node &n = g.nodes[links.producer[v]];
    QuantStep step;
    if (!is_op(n, "DequantizeLinear") || n.inputs.empty() || n.inputs[0] < 0 ||
        g.values[n.inputs[0]].constant || !is_int8_or_uint8(g.values[n.inputs[0]].dtype) ||
        !per_tensor_step(g, n, g.values[n.inputs[0]].dtype, step))
      return nullptr;
    return &n;
  };
  for (Node &op : g.nodes) {
    bool mul = is_op(op, "Mul");
    if (!(mul || is_op(op, "Add")) || op.inputs.size() != 2 || op.outputs.size() != 1) continue;
    Node *da = per_tensor_dq(op.inputs[0]), *db = per_tensor_dq(op.inputs[1]);
    if (!da || !db) continue;
    const Value &out = g.values[op.outputs[0]];
    const Value &va = g.values[da->inputs[0]], &vb = g.values[db->inputs[0]];
    if (!out.shape_known || !va.shape_known || !vb.shape_known) continue;
    if (va.shape != out.shape) std::swap(da, db);  // both ops commute
    const Shape &sa = g.values[da->inputs[0]].shape, &sb = g.values[db->inputs[0]].shape;
    bool per_channel = sa.size() == 4 && sb.size() == 4 && sb[0] == 1 && sb[1] == sa[1] &&
                       sb[2] == 1 && sb[3] == 1;
    if (sa != out.shape || (sb != sa && !per_channel)) continue;
    Node *next = links.single_reader(op.outputs[0]);
    if (!next) continue;
    Node *relu = is_op(*next, "Relu") ? next : nullptr;
    Node *q = relu ? links.single_reader(relu->outputs[0]) : next;
    QuantStep y_step;
    if (!q || !is_op(*q, "QuantizeLinear") || q->outputs.size() != 1 ||
        !is_int8_or_uint8(g.values[q->outputs[0]].dtype) ||
        !per_tensor_step(g, *q, g.values[q->outputs[0]].dtype, y_step))
      continue;
    Node fused = fused_q_binary("QBinary", op.name, *da, *db, *q, relu != nullptr);
    fused.attrs["_op"] = string_attr(mul ? "Mul" : "Add");
    op.dead = true;
    if (relu) relu->dead = true;
    *q = std::move(fused);  // the DequantizeLinears go once nobody else reads them
  }
}

bool is_int8_4d(const Value &v) {
  return v.shape_known && v.shape.size() == 4 && is_int8_or_uint8(v.dtype);
}

// A nearest Resize of a 4-D int8 tensor that keeps N and C (only H and W scale), in a
// coordinate mode where a scale of 1 maps every index to itself: ops/resize.cc can then move
// whole NHWC pixels.
bool nhwc_resize(const Graph &g, const Node &n) {
  if (n.inputs.empty() || n.inputs[0] < 0 || n.outputs.size() != 1) return false;
  const Value &in = g.values[n.inputs[0]], &out = g.values[n.outputs[0]];
  if (!is_int8_4d(in) || !out.shape_known || out.shape.size() != 4 || out.shape[0] != in.shape[0] ||
      out.shape[1] != in.shape[1])
    return false;
  std::string coordinates = n.attrs.count("coordinate_transformation_mode")
                                ? n.attrs.at("coordinate_transformation_mode").s
                                : "half_pixel";
  return coordinates != "tf_half_pixel_for_nn" && coordinates != "tf_crop_and_resize";
}

// The activations of an element-wise int8 op, which must share one layout; empty otherwise.
// (A model file may hold these ops itself, with any inputs: only well-formed ones count.)
std::vector<int> elementwise_int8_values(const Graph &g, const Node &n) {
  std::vector<int> values;
  if (is_op_in(n, "axstream", "QAdd") && n.inputs.size() >= 4 && n.outputs.size() == 1)
    values = {n.inputs[0], n.inputs[3], n.outputs[0]};
  else if (is_op_in(n, "axstream", "QLookup") && n.inputs.size() == 2 && n.outputs.size() == 1)
    values = {n.inputs[0], n.outputs[0]};
  else if (is_op_in(n, "axstream", "QBinary") && n.inputs.size() >= 4 && n.outputs.size() == 1)
    // A per-channel b (1,C,1,1) reads the same in either layout: it is not one of them.
    values = n.inputs[0] >= 0 && n.inputs[3] >= 0 && n.inputs[0] != n.inputs[3] &&
                     g.values[n.inputs[0]].shape != g.values[n.inputs[3]].shape
                 ? std::vector<int>{n.inputs[0], n.outputs[0]}
                 : std::vector<int>{n.inputs[0], n.inputs[3], n.outputs[0]};
  else if (is_op(n, "MaxPool") && n.inputs.size() == 1 && n.outputs.size() == 1 &&
           n.inputs[0] >= 0 && g.values[n.inputs[0]].shape.size() == 4 &&
           is_int8_or_uint8(g.values[n.inputs[0]].dtype))
    values = {n.inputs[0], n.outputs[0]};  // int8 MaxPool (the data-movement fusion)
  else if (is_op_in(n, "axstream", "QGlobalAveragePool") && !n.inputs.empty() &&
           n.outputs.size() == 1)
    // Only x has a layout: the (N,C,1,1) output reads the same either way.
    values = {n.inputs[0], n.inputs[0]};
  else if (is_op_in(n, "axstream", "QAveragePool") && !n.inputs.empty() && n.outputs.size() == 1)
    values = {n.inputs[0], n.outputs[0]};
  else if (is_op(n, "Resize") && moves_elements(g, n) && n.outputs.size() == 1 && nhwc_resize(g, n))
    values = {n.inputs[0], n.outputs[0]};
  else if (is_op(n, "DepthToSpace") && n.inputs.size() == 1 && n.outputs.size() == 1 &&
           n.inputs[0] >= 0 && is_int8_4d(g.values[n.inputs[0]]))
    values = {n.inputs[0], n.outputs[0]};
  else if (is_op(n, "Split") && !n.inputs.empty() && n.inputs[0] >= 0 &&
           is_int8_4d(g.values[n.inputs[0]]) && n.attrs.count("axis") &&
           (n.attrs.at("axis").i == 1 || n.attrs.at("axis").i == -3)) {
    // An int8 Split along channels (fuse_qdq_split) reads each pixel's channel vector in slices:
    // its input and every output share one layout (listed input first, as an activation).
    values.push_back(n.inputs[0]);
    for (int v : n.outputs) values.push_back(v);
  } else if (is_op_in(n, "axstream", "QConcat") && n.outputs.size() == 1 &&
             n.inputs.size() % 2 == 0 && n.attrs.count("axis") &&
             g.values[n.outputs[0]].shape.size() == 4 &&
             (n.attrs.at("axis").i == 1 || n.attrs.at("axis").i == -3)) {
    // Along channels, NHWC concatenates each pixel's channel vectors. A constant of one byte
    // repeated (a channel Pad's zero points) reads the same in either layout: not one of them.
    for (size_t i = 0; i < n.inputs.size() / 2; ++i) {
      const Tensor *constant = n.inputs[i] < 0 ? nullptr : g.values[n.inputs[i]].constant.get();
      if (!constant || !constant->is_one_repeated_int8()) values.push_back(n.inputs[i]);
    }
    values.push_back(n.outputs[0]);
  }
  for (int v : values)
    if (v < 0) return {};
  return values;
}

// A Transpose NHWC -> NCHW (an int8 package's input on its way to the first convolution):
// with its result kept NHWC it only copies; the same for NCHW -> NHWC of a value kept NHWC
// (an int8 package's output).
bool is_transpose_with_perm(const Node &n, const std::vector<int64_t> &perm) {
  return is_op(n, "Transpose") && n.inputs.size() == 1 && n.outputs.size() == 1 &&
         n.attrs.count("perm") && n.attrs.at("perm").ints == perm;
}
bool is_nhwc_to_nchw(const Node &n) { return is_transpose_with_perm(n, {0, 3, 1, 2}); }
bool is_nchw_to_nhwc(const Node &n) { return is_transpose_with_perm(n, {0, 2, 3, 1}); }

// A QuantizeLinear of a 4-D float tensor into int8 with per-tensor constant parameters (a
// float block's result, where mixed precision kept some nodes float): ops/quantize.cc can
// write its output NHWC while it quantises.
bool nhwc_quantize(const Graph &g, const Node &n) {
  if (!is_op(n, "QuantizeLinear") || n.inputs.size() < 2 || n.outputs.size() != 1 ||
      n.inputs[0] < 0)
    return false;
  const Value &x = g.values[n.inputs[0]], &y = g.values[n.outputs[0]];
  QuantStep step;
  return x.dtype == DType::f32 && x.shape_known && x.shape.size() == 4 && is_int8_4d(y) &&
         per_tensor_step(g, n, y.dtype, step);
}

// A DequantizeLinear of the 4-D int8 value `v` with per-tensor constant parameters (a float
// block reading an int8 value): ops/quantize.cc can read it NHWC while it dequantises.
bool nhwc_dequantize(const Graph &g, const Node &n, int v) {
  if (!is_op(n, "DequantizeLinear") || n.inputs.size() < 2 || n.outputs.size() != 1 ||
      n.inputs[0] != v || v < 0 || std::count(n.inputs.begin(), n.inputs.end(), v) != 1)
    return false;
  QuantStep step;
  return is_int8_4d(g.values[v]) && per_tensor_step(g, n, g.values[v].dtype, step);
}

// Whether `n` reads the int8 value `v` in a way that works on NHWC: as a QConv's input, or as
// an activation of a layout-sharing element-wise op (`joined`: then its layout binds the op's).
bool reads_nhwc(const Graph &g, const Node &n, int v, bool *joined = nullptr) {
  std::vector<int> ew = elementwise_int8_values(g, n);
  const bool activation = !ew.empty() && std::find(ew.begin(), ew.end() - 1, v) != ew.end() - 1;
  if (joined) *joined = activation;
  return activation || (is_op_in(n, "axstream", "QConv") && !n.inputs.empty() && n.inputs[0] == v &&
                        std::count(n.inputs.begin(), n.inputs.end(), v) == 1);
}

// The int8 4-D values that may be kept NHWC: made by a QConv, an element-wise int8 op, an
// NHWC -> NCHW Transpose or a float block's QuantizeLinear, and read only as a QConv's input,
// an element-wise op's activation, by an NCHW -> NHWC Transpose or by a DequantizeLinear (a
// float block's input). A QuantizeLinear's output only where some reader is no
// DequantizeLinear: Q and DQ alone gain nothing from turning it around twice.
std::set<int> nhwc_candidates(Graph &g, const ValueLinks &links) {
  std::set<int> graph_inputs(g.inputs.begin(), g.inputs.end());
  std::set<int> nhwc;
  for (size_t v = 0; v < g.values.size(); ++v) {
    const Value &val = g.values[v];
    int id = static_cast<int>(v);
    if (val.constant || !val.shape_known || val.shape.size() != 4 ||
        (val.dtype != DType::i8 && val.dtype != DType::u8) || links.graph_outputs.count(id) ||
        graph_inputs.count(id) || links.producer[v] < 0)
      continue;
    const Node &producer = g.nodes[links.producer[v]];
    const bool quantized = nhwc_quantize(g, producer);
    // reorder_graph_boundaries' copy of a graph input
    const bool input_copy =
        is_transpose_with_perm(producer, {0, 1, 2, 3}) && graph_inputs.count(producer.inputs[0]);
    if (!is_op_in(producer, "axstream", "QConv") && elementwise_int8_values(g, producer).empty() &&
        !is_nhwc_to_nchw(producer) && !quantized && !input_copy)
      continue;
    std::vector<Node *> readers = readers_of(g, id);
    bool ok = !readers.empty(), only_dequantized = true;
    for (Node *r : readers) {
      bool dequantized = nhwc_dequantize(g, *r, id);
      only_dequantized = only_dequantized && dequantized;
      if (!reads_nhwc(g, *r, id) && !is_nchw_to_nhwc(*r) &&
          !is_transpose_with_perm(*r, {0, 1, 2, 3}) && !dequantized)
        ok = false;
    }
    if (ok && !(quantized && only_dequantized)) nhwc.insert(id);
  }
  return nhwc;
}

// A float Conv over 4-D tensors with constant weights (and bias): ops/conv.cc hands oneDNN
// NHWC buffers where _src_nhwc / _dst_nhwc say so.
bool nhwc_float_conv(const Graph &g, const Node &n) {
  if (!is_op(n, "Conv") || n.inputs.size() < 2 || n.outputs.size() != 1 || n.inputs[0] < 0 ||
      n.outputs[0] < 0 || !constant_of(g, n, 1) ||
      (n.inputs.size() > 2 && n.inputs[2] >= 0 && !constant_of(g, n, 2)))
    return false;
  const Value &x = g.values[n.inputs[0]], &y = g.values[n.outputs[0]];
  return x.dtype == DType::f32 && x.shape_known && x.shape.size() == 4 && y.shape_known &&
         y.shape.size() == 4;
}

// The activations of a float op computing element by element with every input of the output's
// 4-D shape (no broadcasting), which then works in any layout its values share; empty
// otherwise.
std::vector<int> elementwise_float_values(const Graph &g, const Node &n) {
  const bool binary = is_op(n, "Add") || is_op(n, "Sub") || is_op(n, "Mul");
  const bool unary = is_op(n, "Relu") || is_op(n, "Sigmoid");
  if ((!binary && !unary) || n.inputs.size() != (binary ? 2u : 1u) || n.outputs.size() != 1)
    return {};
  std::vector<int> values(n.inputs.begin(), n.inputs.end());
  values.push_back(n.outputs[0]);
  for (int v : values) {
    if (v < 0) return {};
    const Value &val = g.values[v];
    if (val.dtype != DType::f32 || !val.shape_known || val.shape.size() != 4 ||
        val.shape != g.values[n.outputs[0]].shape)
      return {};
  }
  return values;
}

// The activations of a float op that works in any layout its 4-D values share: a same-shape
// element-wise op, a Concat (ops/concat_split.cc remaps the axis with _nhwc=1 and turns its
// constant inputs, which are not among these values, once when it compiles) or a 2-D MaxPool
// without Indices (ops/pool.cc pools each pixel's channel vector with _nhwc=1); empty otherwise.
std::vector<int> layout_neutral_float_values(const Graph &g, const Node &n) {
  std::vector<int> values = elementwise_float_values(g, n);
  if (!values.empty()) return values;
  auto float_4d = [&g](int v) {
    return v >= 0 && g.values[v].dtype == DType::f32 && g.values[v].shape_known &&
           g.values[v].shape.size() == 4;
  };
  if (is_op(n, "Concat") && !n.inputs.empty() && n.outputs.size() == 1 && n.attrs.count("axis")) {
    for (int v : n.inputs) {
      if (!float_4d(v)) return {};
      if (!g.values[v].constant) values.push_back(v);
    }
  } else if (is_op(n, "MaxPool") && n.inputs.size() == 1 && n.outputs.size() == 1) {
    values.push_back(n.inputs[0]);
  } else {
    return {};
  }
  if (values.empty() || !float_4d(n.outputs[0])) return {};
  values.push_back(n.outputs[0]);
  return values;
}

// Whether the float side of the int8 NHWC boundary may be kept NHWC too: on unless
// AXSTREAM_ENGINE_FLOAT_NHWC=0 (then it stays NCHW, as before; the same bytes either way).
// Read at each compile.
bool float_nhwc_enabled() { return setting_not_zero("AXSTREAM_ENGINE_FLOAT_NHWC"); }

// The float 4-D values that may be kept NHWC with the int8 ones around them (a mixed-precision
// model's float blocks): made by a DequantizeLinear of an NHWC int8 value, a float Conv or a
// layout-neutral float op (same-shape element-wise, Concat, MaxPool), and read only as a float
// Conv's input, by such a layout-neutral op, or by a QuantizeLinear whose int8 output stays
// NHWC. The Q/DQ at the block's edges then need no transpose and oneDNN, which runs these
// convolutions NHWC, no reorder around them. A layout-neutral op whose values would mix layouts
// (a Concat one of whose inputs must stay NCHW, say) drops them all. An int8 value such a
// QuantizeLinear makes and only DequantizeLinears read (a quantisation round trip inside a float
// block, which nhwc_candidates leaves NCHW: next to NCHW float values turning it twice gains
// nothing) joins the float values on its two sides: all NHWC, the int8 value added to `nhwc`
// (its Q/DQ plain), or none.
std::set<int> float_nhwc_values(Graph &g, const ValueLinks &links, std::set<int> &nhwc) {
  std::set<int> float_nhwc;
  if (!float_nhwc_enabled()) return float_nhwc;
  std::set<int> graph_inputs(g.inputs.begin(), g.inputs.end());
  std::map<int, std::vector<int>> round_trips;  // int8 value -> its Q's input, its DQs' outputs
  for (size_t v = 0; v < g.values.size(); ++v) {
    const int id = static_cast<int>(v);
    if (nhwc.count(id) || g.values[v].constant || !is_int8_4d(g.values[v]) ||
        links.graph_outputs.count(id) || links.producer[v] < 0)
      continue;
    const Node &quantize = g.nodes[links.producer[v]];
    if (!nhwc_quantize(g, quantize)) continue;
    std::vector<int> joined = {quantize.inputs[0]};
    std::vector<Node *> readers = readers_of(g, id);
    bool ok = !readers.empty();
    for (Node *r : readers) {
      ok = ok && nhwc_dequantize(g, *r, id);
      if (ok) joined.push_back(r->outputs[0]);
    }
    if (ok) round_trips[id] = std::move(joined);
  }
  auto int8_side_nhwc = [&](int v) { return nhwc.count(v) || round_trips.count(v); };
  for (size_t v = 0; v < g.values.size(); ++v) {
    const Value &val = g.values[v];
    const int id = static_cast<int>(v);
    if (val.constant || !val.shape_known || val.shape.size() != 4 || val.dtype != DType::f32 ||
        links.graph_outputs.count(id) || graph_inputs.count(id) || links.producer[v] < 0)
      continue;
    const Node &producer = g.nodes[links.producer[v]];
    if (!(nhwc_dequantize(g, producer, producer.inputs[0]) && int8_side_nhwc(producer.inputs[0])) &&
        !nhwc_float_conv(g, producer) && layout_neutral_float_values(g, producer).empty())
      continue;
    std::vector<Node *> readers = readers_of(g, id);
    bool ok = !readers.empty();
    for (Node *r : readers)
      if (!(nhwc_float_conv(g, *r) && r->inputs[0] == id &&
            std::count(r->inputs.begin(), r->inputs.end(), id) == 1) &&
          layout_neutral_float_values(g, *r).empty() &&
          !(nhwc_quantize(g, *r) && r->inputs[0] == id && int8_side_nhwc(r->outputs[0])))
        ok = false;
    if (ok) float_nhwc.insert(id);
  }
  auto drop_if_mixed = [&float_nhwc](const std::vector<int> &values) {
    size_t in_set = 0;
    for (int v : values) in_set += float_nhwc.count(v);
    if (in_set == 0 || in_set == values.size()) return false;
    for (int v : values) float_nhwc.erase(v);
    return true;
  };
  for (bool changed = true; changed;) {
    changed = false;
    for (const Node &n : g.nodes) {
      std::vector<int> values = layout_neutral_float_values(g, n);
      if (!values.empty() && drop_if_mixed(values)) changed = true;
    }
    for (const auto &[round_trip, joined] : round_trips)
      if (drop_if_mixed(joined)) changed = true;
  }
  for (const auto &[round_trip, joined] : round_trips)
    if (float_nhwc.count(joined[0])) nhwc.insert(round_trip);
  return float_nhwc;
}

// An element-wise op needs its inputs and output in one layout: drop the values of any op
// that would mix them, until none does.
void drop_mixed_layouts(const Graph &g, std::set<int> &nhwc) {
  for (bool changed = true; changed;) {
    changed = false;
    for (const Node &n : g.nodes) {
      std::vector<int> values = elementwise_int8_values(g, n);
      if (values.empty() || n.dead) continue;
      size_t in_set = 0;
      for (int v : values) in_set += nhwc.count(v);
      if (in_set == 0 || in_set == values.size()) continue;
      for (int v : values) nhwc.erase(v);
      changed = true;
    }
  }
}

// An identity Transpose `from` -> `to`: a layout change once mark_nhwc_activations marks it
// (_nhwc_to_nchw or _nchw_to_nhwc), otherwise a copy keep_int8_activations_nhwc removes.
Node identity_transpose(const std::string &name, int from, int to) {
  Node reorder;
  reorder.name = name;
  reorder.op_type = "Transpose";
  reorder.opset = 13;
  reorder.inputs = {from};
  reorder.outputs = {to};
  Attribute perm;
  perm.kind = Attribute::Kind::ints;
  perm.ints = {0, 1, 2, 3};
  reorder.attrs["perm"] = perm;
  return reorder;
}

// An identity Transpose of `v` for node `reader` (inserted just before it), which reads the copy
// instead: where `v` stays NHWC, mark_nhwc_activations makes it the NHWC -> NCHW reorder.
bool read_through_reorder(Graph &g, size_t reader, int v) {
  for (size_t r = 0; r < reader; ++r)  // one reorder serves every reader after it
    if (is_transpose_with_perm(g.nodes[r], {0, 1, 2, 3}) && g.nodes[r].inputs[0] == v) {
      for (int &in : g.nodes[reader].inputs)
        if (in == v) in = g.nodes[r].outputs[0];
      return false;
    }
  Value copy = g.values[v];
  copy.name += "/nchw";
  int copy_id = g.add_value(std::move(copy));
  for (int &in : g.nodes[reader].inputs)
    if (in == v) in = copy_id;
  g.nodes.insert(g.nodes.begin() + static_cast<std::ptrdiff_t>(reader),
                 identity_transpose(g.values[copy_id].name, v, copy_id));
  return true;
}

// Graph inputs and outputs are NCHW (the caller's buffers). Where one is joined to int8 values
// through a layout-sharing op (a residual add whose skip is the graph input, or whose sum is a
// graph output) the whole chain joined to it kept NCHW; one reorder at the boundary serves
// instead. An input's NHWC readers read an identity Transpose of it (_nchw_to_nhwc when the
// copy stays NHWC); an output's producer writes a copy that its NHWC readers read and an
// identity Transpose turns into the output (_nhwc_to_nchw). Returns those output-side copies.
std::set<int> reorder_graph_boundaries(Graph &g) {
  std::set<int> graph_outputs(g.outputs.begin(), g.outputs.end()), output_copies;
  auto add_copy = [&g](int v) {
    Value copy = g.values[v];
    copy.name += "/nhwc";
    return g.add_value(std::move(copy));
  };
  const std::vector<int> graph_inputs = g.inputs;
  for (int v : graph_inputs) {
    if (v < 0 || !is_int8_4d(g.values[v]) || graph_outputs.count(v)) continue;
    std::vector<size_t> nhwc_readers;
    bool joined_any = false;
    for (size_t r = 0; r < g.nodes.size(); ++r) {
      const Node &n = g.nodes[r];
      bool joined = false;
      if (n.dead || !reads_nhwc(g, n, v, &joined)) continue;
      nhwc_readers.push_back(r);
      joined_any = joined_any || joined;
    }
    if (!joined_any) continue;  // convolutions alone reorder it as well themselves
    const int copy_id = add_copy(v);
    for (size_t r : nhwc_readers)
      for (int &in : g.nodes[r].inputs)
        if (in == v) in = copy_id;
    g.nodes.insert(g.nodes.begin(), identity_transpose(g.values[copy_id].name, v, copy_id));
  }
  for (size_t p = 0; p < g.nodes.size(); ++p) {
    if (g.nodes[p].dead || g.nodes[p].outputs.size() != 1) continue;
    const int v = g.nodes[p].outputs[0];
    if (v < 0 || !graph_outputs.count(v) || !is_int8_4d(g.values[v])) continue;
    std::vector<int> produced_by = elementwise_int8_values(g, g.nodes[p]);
    bool joined_any = !produced_by.empty() && produced_by.back() == v;
    if (!joined_any && !is_op_in(g.nodes[p], "axstream", "QConv")) continue;
    std::vector<size_t> nhwc_readers;
    for (size_t r = p + 1; r < g.nodes.size(); ++r) {
      bool joined = false;
      if (g.nodes[r].dead || !reads_nhwc(g, g.nodes[r], v, &joined)) continue;
      nhwc_readers.push_back(r);
      joined_any = joined_any || joined;
    }
    if (!joined_any) continue;  // a convolution writing an output reorders it itself
    const int copy_id = add_copy(v);
    g.nodes[p].outputs[0] = copy_id;
    for (size_t r : nhwc_readers)
      for (int &in : g.nodes[r].inputs)
        if (in == v) in = copy_id;
    output_copies.insert(copy_id);
    g.nodes.insert(g.nodes.begin() + static_cast<std::ptrdiff_t>(p + 1),
                   identity_transpose(g.values[v].name + "/nchw", copy_id, v));
    ++p;
  }
  return output_copies;
}

// An int8 4-D value an NHWC-capable op makes, read both by ops that take it NHWC (a QConv's
// input, a layout-sharing op's activation) and by others (BlazeFace's last int8 block output,
// read by its float blocks too): the others read a copy through an identity Transpose, which
// becomes the NHWC -> NCHW reorder when the value stays NHWC. Without it one such reader keeps
// NCHW every value joined to it through the element-wise ops (all of BlazeFace's blocks,
// chained by their skips).
void split_nchw_readers(Graph &g) {
  std::set<int> graph_outputs(g.outputs.begin(), g.outputs.end());
  for (size_t p = 0; p < g.nodes.size(); ++p) {
    if (g.nodes[p].dead || g.nodes[p].outputs.size() != 1) continue;
    if (!is_op_in(g.nodes[p], "axstream", "QConv") &&
        elementwise_int8_values(g, g.nodes[p]).empty() && !nhwc_quantize(g, g.nodes[p]))
      continue;
    int v = g.nodes[p].outputs[0];
    if (v < 0 || !is_int8_4d(g.values[v]) || graph_outputs.count(v)) continue;
    std::vector<size_t> others;
    bool nhwc_reader = false;
    for (size_t r = p + 1; r < g.nodes.size(); ++r) {
      const Node &n = g.nodes[r];
      if (n.dead || std::find(n.inputs.begin(), n.inputs.end(), v) == n.inputs.end()) continue;
      if (reads_nhwc(g, n, v))
        nhwc_reader = true;
      else if (!nhwc_dequantize(g, n, v))  // reads either layout, no reorder needed
        others.push_back(r);
    }
    if (!nhwc_reader || others.empty()) continue;
    // One reorder, before the first other reader, which all the others read.
    size_t shift = read_through_reorder(g, others[0], v) ? 1 : 0;
    for (size_t k = 1; k < others.size(); ++k) read_through_reorder(g, others[k] + shift, v);
  }
}

// A layout-sharing op whose output stays NCHW (read by float ops: BlazeFace's last int8 block
// pads its skip for the float blocks after it) reads its NHWC inputs through reorders rather
// than keeping NCHW every value joined to it through the element-wise ops (all of BlazeFace's
// int8 blocks, chained by their skips).
void reorder_inputs_of_nchw_outputs(Graph &g, const std::set<int> &nhwc) {
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    std::vector<int> values = elementwise_int8_values(g, g.nodes[i]);
    if (values.empty() || g.nodes[i].dead || nhwc.count(values.back())) continue;
    std::set<int> inputs(values.begin(), values.end() - 1);
    for (int v : inputs)
      if (nhwc.count(v) && read_through_reorder(g, i, v)) ++i;  // the reader moved one on
  }
}

// Tells each kernel which of its activations are NHWC (_nhwc, _src_nhwc, _dst_nhwc). A Q/DQ
// between an NHWC float and an NHWC int8 value is a plain one, unmarked.
void mark_nhwc_activations(Graph &g, const std::set<int> &nhwc, const std::set<int> &float_nhwc) {
  for (Node &n : g.nodes) {
    if ((is_op_in(n, "axstream", "QBinary") || is_op_in(n, "axstream", "QConcat")) &&
        !elementwise_int8_values(g, n).empty() && nhwc.count(n.outputs[0]))
      n.attrs["_nhwc"] = int_attr(1);
    if (is_nhwc_to_nchw(n) && nhwc.count(n.outputs[0])) n.attrs["_dst_nhwc"] = int_attr(1);
    if (is_nchw_to_nhwc(n) && nhwc.count(n.inputs[0])) n.attrs["_src_nhwc"] = int_attr(1);
    if (is_transpose_with_perm(n, {0, 1, 2, 3}) && nhwc.count(n.inputs[0]))
      n.attrs["_nhwc_to_nchw"] = int_attr(1);
    if (is_transpose_with_perm(n, {0, 1, 2, 3}) && !nhwc.count(n.inputs[0]) &&
        nhwc.count(n.outputs[0]))
      n.attrs["_nchw_to_nhwc"] = int_attr(1);
    if (nhwc_quantize(g, n) && nhwc.count(n.outputs[0]) && !float_nhwc.count(n.inputs[0]))
      n.attrs["_dst_nhwc"] = int_attr(1);
    if (!n.inputs.empty() && nhwc_dequantize(g, n, n.inputs[0]) && nhwc.count(n.inputs[0]) &&
        !float_nhwc.count(n.outputs[0]))
      n.attrs["_src_nhwc"] = int_attr(1);
    if (nhwc_float_conv(g, n)) {
      if (float_nhwc.count(n.inputs[0])) n.attrs["_src_nhwc"] = int_attr(1);
      if (float_nhwc.count(n.outputs[0])) n.attrs["_dst_nhwc"] = int_attr(1);
    }
    // A float Concat or MaxPool runs NHWC when all its values are (float_nhwc_values dropped
    // the others); the element-wise ops need no telling.
    if ((is_op(n, "Concat") || is_op(n, "MaxPool")) && !layout_neutral_float_values(g, n).empty() &&
        float_nhwc.count(n.outputs[0]))
      n.attrs["_nhwc"] = int_attr(1);
    if ((is_op_in(n, "axstream", "QGlobalAveragePool") || is_op_in(n, "axstream", "QAveragePool") ||
         is_op(n, "MaxPool") || is_op(n, "Resize") || is_op(n, "DepthToSpace") ||
         is_op(n, "Split")) &&
        !elementwise_int8_values(g, n).empty() && nhwc.count(n.inputs[0]))
      n.attrs["_nhwc"] = int_attr(1);
    if (!is_op_in(n, "axstream", "QConv") || n.inputs.empty() || n.outputs.empty()) continue;
    if (nhwc.count(n.inputs[0])) n.attrs["_src_nhwc"] = int_attr(1);
    if (nhwc.count(n.outputs[0])) n.attrs["_dst_nhwc"] = int_attr(1);
  }
}

// Whether int8 activations may be kept NHWC: always, unless AXSTREAM_ENGINE_NHWC=0 (the NCHW
// path, whose outputs are the same bytes: tests and whole-model comparisons check the layout
// decisions against it). Read at each compile, as dnnl_kernels_enabled().
bool int8_nhwc_enabled() { return setting_not_zero("AXSTREAM_ENGINE_NHWC"); }

// oneDNN's int8 convolutions work on NHWC activations (on VNNI/AMX CPUs); with NCHW tensors
// between ops every one reorders its input in and its output back. An int8 4-D value that only
// axstream.QConvs (as their input) and the layout-free int8 ops (QAdd, QLookup, QBinary,
// QConcat on channels, Q(Global)AveragePool, int8 MaxPool, nearest Resize over H and W,
// DepthToSpace: any layout works when their inputs and output share it) produce and read stays
// NHWC instead: the QConvs get _src_nhwc / _dst_nhwc, the others _nhwc where their kernel needs
// to know, and the reorders vanish. A Transpose NHWC -> NCHW feeding them (a package's input)
// or NCHW -> NHWC reading them (its output) becomes a copy. At the float/int8 boundary of a
// mixed-precision model the conversions turn the layout around: a QuantizeLinear of a float
// block's result writes NHWC (_dst_nhwc), a DequantizeLinear into a float block reads NHWC
// (_src_nhwc), so the int8 blocks between float ones, joined by their residual adds, stay NHWC
// instead of all NCHW. The float values inside such a block that only float Convs, same-shape
// element-wise float ops and those Q/DQ touch stay NHWC too (float_nhwc_values): oneDNN runs the
// float convolutions NHWC anyway, so their reorders vanish and the Q/DQ become plain passes.
// Graph inputs and outputs, and values other ops touch, keep NCHW. Only where the oneDNN int8
// path is the one that runs (VNNI, oneDNN on).
void keep_int8_activations_nhwc(Graph &g) {
  if (!dnnl_kernels_enabled() || !dnnl_cpu_has_vnni() || !int8_nhwc_enabled()) return;
  eliminate_dead_nodes(g);  // the fusions leave DequantizeLinears nobody reads any more
  split_nchw_readers(g);
  const std::set<int> output_copies = reorder_graph_boundaries(g);
  ValueLinks links(g);
  std::set<int> nhwc = nhwc_candidates(g, links);
  reorder_inputs_of_nchw_outputs(g, nhwc);
  drop_mixed_layouts(g, nhwc);
  const ValueLinks links_now(g);  // reorder_inputs_of_nchw_outputs may have added nodes
  const std::set<int> float_nhwc = float_nhwc_values(g, links_now, nhwc);
  mark_nhwc_activations(g, nhwc, float_nhwc);
  // The identity Transposes whose input and output stayed in one layout after all would only
  // copy: read the input instead, or for a graph output's copy, write the output again.
  std::set<int> graph_outputs(g.outputs.begin(), g.outputs.end());
  for (Node &n : g.nodes) {
    if (!is_transpose_with_perm(n, {0, 1, 2, 3}) || n.attrs.count("_nhwc_to_nchw") ||
        n.attrs.count("_nchw_to_nhwc"))
      continue;
    if (output_copies.count(n.inputs[0])) {
      const int copy = n.inputs[0], output = n.outputs[0];
      for (Node &other : g.nodes) {
        if (&other == &n || other.dead) continue;
        for (int &out : other.outputs)
          if (out == copy) out = output;
        for (int &in : other.inputs)
          if (in == copy) in = output;
      }
      n.dead = true;
      continue;
    }
    if (graph_outputs.count(n.outputs[0])) continue;
    for (Node &reader : g.nodes)
      for (int &in : reader.inputs)
        if (in == n.outputs[0]) in = n.inputs[0];
    n.dead = true;
  }
  eliminate_dead_nodes(g);
}

// Whether a package's NHWC input goes to its first convolution as it is (unless
// AXSTREAM_ENGINE_CONV_READS_INPUT=0; the outputs are the same either way).
bool conv_reads_input_enabled() { return setting_not_zero("AXSTREAM_ENGINE_CONV_READS_INPUT"); }

// The channels [0, kept) that `slice` keeps of its NHWC int8 input's C > kept (a Slice of the
// last axis from 0, step 1: a package's channel padding cut off), or 0 for any other Slice.
int64_t leading_channels_kept(const Graph &g, const Node &slice) {
  if (!is_op(slice, "Slice") || slice.inputs.size() < 4 || slice.inputs.size() > 5 ||
      slice.outputs.size() != 1 || slice.inputs[0] < 0)
    return 0;
  const Value &in = g.values[slice.inputs[0]];
  if (in.dtype != DType::i8 || in.shape.size() != 4 || in.constant) return 0;
  const Tensor *starts = constant_of(g, slice, 1), *ends = constant_of(g, slice, 2),
               *axes = constant_of(g, slice, 3), *steps = constant_of(g, slice, 4);
  if (!starts || !ends || !axes || starts->count() != 1 || ends->count() != 1 ||
      axes->count() != 1 || (slice.inputs.size() == 5 && (!steps || steps->count() != 1)))
    return 0;
  const int64_t channels = in.shape[3];
  if ((axes->as_int(0) != 3 && axes->as_int(0) != -1) || starts->as_int(0) != 0 ||
      (steps && steps->as_int(0) != 1))
    return 0;
  const int64_t end = ends->as_int(0);
  return end > 0 && end < channels ? end : 0;
}

// A package's int8 input is NHWC with its channels padded (to 4 for RGB): the graph cuts the
// padding off with a Slice and turns it NCHW with a Transpose, which the NHWC pass leaves a
// copy (_dst_nhwc), for the first convolution. Where that convolution (group 1, NHWC source)
// is the Transpose's only reader, it reads the Slice's input itself, NHWC as it is
// (_src_nhwc_order: its input's shape is N,H,W,C), with zero weights for the cut channels:
// both passes go. Exact: a zero weight adds nothing to the accumulator whatever the padding
// holds, and oneDNN's source zero point compensation (zero point x sum of the weights, also
// when folded into the bias) sums the same weights. Without a Slice the Transpose's copy goes
// alone. Only on the NHWC path (VNNI/AMX, oneDNN on).
void read_nhwc_input_in_convolution(Graph &g) {
  if (!dnnl_kernels_enabled() || !dnnl_cpu_has_vnni() || !int8_nhwc_enabled() ||
      !conv_reads_input_enabled())
    return;
  ValueLinks links(g);
  for (Node &transpose : g.nodes) {
    if (!is_nhwc_to_nchw(transpose) || !transpose.attrs.count("_dst_nhwc") ||
        transpose.attrs.at("_dst_nhwc").i == 0)
      continue;
    Node *conv = links.single_reader(transpose.outputs[0]);
    if (!conv || !is_op_in(*conv, "axstream", "QConv") || conv->inputs.size() < 4 ||
        conv->inputs[0] != transpose.outputs[0] || !conv->attrs.count("_src_nhwc") ||
        conv->attrs.at("_src_nhwc").i == 0 || conv->attrs.count("_src_nhwc_order") ||
        (conv->attrs.count("group") && conv->attrs.at("group").i != 1))
      continue;
    const Tensor *weights = constant_of(g, *conv, 3);
    int source = transpose.inputs[0];
    if (!weights || weights->dtype != DType::i8 || weights->shape.size() != 4 ||
        g.values[source].dtype != DType::i8 || g.values[source].shape.size() != 4 ||
        weights->shape[1] != g.values[source].shape[3])
      continue;
    Node *slice = links.producer[source] >= 0 ? &g.nodes[links.producer[source]] : nullptr;
    const int64_t kept =
        slice && links.single_reader(source) == &transpose ? leading_channels_kept(g, *slice) : 0;
    if (kept > 0) {
      // Weights O x C x kh x kw grown to the padded input's channels, the new ones zero.
      const int64_t padded = g.values[slice->inputs[0]].shape[3];
      const Shape &ws = weights->shape;
      Shape grown_shape = {ws[0], padded, ws[2], ws[3]};
      auto grown = std::make_shared<Tensor>(DType::i8, grown_shape);
      std::fill(grown->bytes.begin(), grown->bytes.end(), 0);
      const int64_t taps = ws[2] * ws[3];
      for (int64_t o = 0; o < ws[0]; ++o)
        std::memcpy(grown->data<int8_t>() + o * padded * taps,
                    weights->data<int8_t>() + o * kept * taps, static_cast<size_t>(kept * taps));
      conv->inputs[3] = add_constant(g, conv->name + " weights for the padded channels", grown);
      conv->attrs["_zero_input_channels"] = int_attr(padded - kept);
      source = slice->inputs[0];
      slice->dead = true;
    }
    conv->inputs[0] = source;
    conv->attrs["_src_nhwc_order"] = int_attr(1);
    transpose.dead = true;
  }
  eliminate_dead_nodes(g);
}

// oneDNN's int8 convolutions on VNNI read uint8 sources: ConvKernel flips an int8 input to
// uint8 (zero point + 128) in a pass over it before every convolution. An int8 value whose
// producer is one of our exact int8 kernels that can as well write uint8 (QLookup: its table
// flipped; QBinary, QAdd: by their output zero point's type) and whose readers all take a
// uint8 input with its zero point (QConv, QLookup, QBinary, QAdd, Q(Global)AveragePool), one of
// them a QConv, becomes uint8 with every zero point moved by 128: the same real values, so the
// same results, without the flips.
// A QConv's own int8 output with zero point -128 (most post-ReLU activations) becomes uint8
// with zero point 0 too (unless AXSTREAM_ENGINE_U8_RETYPE=0): then neither that convolution
// nor its QConv readers have a zero point, which oneDNN 2.6 needs to pick its brgconv kernels.
// oneDNN adds a destination zero point in float before rounding, and float(y - 128) can round a
// near-tie y differently from y, so the QConv is marked _rounds_as_int8 = -128: its kernel
// repeats that float addition and adds 128 back (exact) before rounding (qconv.cc). Not a
// QConv whose output a QAdd's first operand reads: that add fuses into it as a sum post-op.
bool uint8_retype_enabled() { return setting_not_zero("AXSTREAM_ENGINE_U8_RETYPE"); }

void uint8_convolution_inputs(Graph &g) {
  if (!dnnl_kernels_enabled() || !dnnl_cpu_has_vnni()) return;
  const bool retype_convolutions = uint8_retype_enabled();
  ValueLinks links(g);
  // Where a reader's zero point for its input `v` sits (0: a table, none), or -1 when the
  // reader cannot take uint8 there.
  auto zero_point_slot = [](const Node &n, int v) -> int {
    size_t at = std::find(n.inputs.begin(), n.inputs.end(), v) - n.inputs.begin();
    if (at == n.inputs.size() || std::count(n.inputs.begin(), n.inputs.end(), v) != 1) return -1;
    if ((is_op_in(n, "axstream", "QConv") || is_op_in(n, "axstream", "QGlobalAveragePool") ||
         is_op_in(n, "axstream", "QAveragePool")) &&
        at == 0)
      return 2;
    if ((is_op_in(n, "axstream", "QBinary") || is_op_in(n, "axstream", "QAdd")) &&
        (at == 0 || at == 3))
      return static_cast<int>(at) + 2;
    if (is_op_in(n, "axstream", "QLookup") && at == 0) return 0;
    return -1;
  };
  // The one-value int8 zero point at `slot` of n (0 when absent); false when it is not one.
  auto int8_zero_point = [&g](const Node &n, size_t slot, int32_t &value) {
    value = 0;
    if (slot >= n.inputs.size() || n.inputs[slot] < 0) return true;
    const Tensor *t = g.values[n.inputs[slot]].constant.get();
    if (!t || t->dtype != DType::i8 || t->count() != 1) return false;
    value = t->data<int8_t>()[0];
    return true;
  };
  auto set_uint8_zero_point = [&g](Node &n, size_t slot, int32_t int8_value) {
    auto t = std::make_shared<Tensor>(DType::u8, Shape{});
    t->data<uint8_t>()[0] = static_cast<uint8_t>(int8_value + 128);
    if (n.inputs.size() <= slot) n.inputs.resize(slot + 1, -1);
    n.inputs[slot] = add_constant(g, n.name + " uint8 zero point", t);
  };
  for (size_t v = 0; v < g.values.size(); ++v) {
    int id = static_cast<int>(v);
    if (g.values[v].dtype != DType::i8 || g.values[v].constant || links.producer[v] < 0 ||
        links.graph_outputs.count(id))
      continue;
    Node &producer = g.nodes[links.producer[v]];
    if (producer.outputs.size() != 1) continue;
    bool lookup = is_op_in(producer, "axstream", "QLookup") && producer.inputs.size() == 2 &&
                  producer.inputs[1] >= 0 && g.values[producer.inputs[1]].constant &&
                  g.values[producer.inputs[1]].constant->dtype == DType::i8;
    bool join =
        (is_op_in(producer, "axstream", "QBinary") || is_op_in(producer, "axstream", "QAdd")) &&
        producer.inputs.size() > 7 && producer.inputs[7] >= 0;
    int32_t y_zero = 0;
    // A plain QConv (no residual: slots 9-13 absent) writing int8 with zero point -128.
    const bool conv = retype_convolutions && is_op_in(producer, "axstream", "QConv") &&
                      producer.inputs.size() == 9 && producer.inputs[8] >= 0 &&
                      int8_zero_point(producer, 8, y_zero) && y_zero == -128;
    if (!lookup && !conv && !(join && int8_zero_point(producer, 7, y_zero))) continue;
    std::vector<Node *> readers = readers_of(g, id);
    bool ok = !readers.empty(), conv_reads = false;
    std::vector<int32_t> reader_zero(readers.size(), 0);
    for (size_t r = 0; ok && r < readers.size(); ++r) {
      int slot = zero_point_slot(*readers[r], id);
      ok = slot >= 0 && (slot == 0 || int8_zero_point(*readers[r], slot, reader_zero[r]));
      if (conv && is_op_in(*readers[r], "axstream", "QAdd") && readers[r]->inputs[0] == id)
        ok = false;
      conv_reads = conv_reads || is_op_in(*readers[r], "axstream", "QConv");
    }
    if (!ok || !(conv_reads || conv)) continue;
    if (conv) {
      set_uint8_zero_point(producer, 8, y_zero);
      producer.attrs["_rounds_as_int8"] = int_attr(y_zero);
    } else if (lookup) {
      auto table = std::make_shared<Tensor>(*g.values[producer.inputs[1]].constant);
      table->dtype = DType::u8;
      for (uint8_t &b : table->bytes) b ^= 0x80;  // int8 t -> uint8 t + 128
      producer.inputs[1] = add_constant(g, producer.name + " uint8 table", table);
    } else {
      set_uint8_zero_point(producer, 7, y_zero);
    }
    g.values[v].dtype = DType::u8;
    for (size_t r = 0; r < readers.size(); ++r) {
      int slot = zero_point_slot(*readers[r], id);
      if (slot > 0) set_uint8_zero_point(*readers[r], slot, reader_zero[r]);
    }
  }
}

// Whether residual adds fuse into convolutions: unless AXSTREAM_ENGINE_SUM_POSTOP=0 (the
// outputs are the same either way; the setting compares the two). On since the post-op chain
// is chosen per add (residual_sum_chain.h), cheaper than the QAdd pass on ResNet-50 and
// BlazeFace (docs/performance.md). Read at each compile, as dnnl_kernels_enabled().
bool residual_sum_enabled() { return setting_not_zero("AXSTREAM_ENGINE_SUM_POSTOP"); }

// A residual join QAdd(QConv(x), skip) [Relu] (a ResNet block's end) becomes one QConv that adds
// skip in oneDNN's sum post-op, the Relu after it, instead of a pass over both int8 tensors:
// the QConv takes skip, its scale and zero point and the QAdd's output scale and zero point
// (slots 9-13, qconv.cc) and _sum_relu, and moves to the QAdd's place (skip may be made after
// the convolution). The memory plan lets it write over skip when nothing reads skip later.
// The post-ops around the sum repeat the convolution's own requantisation and the QAdd's
// arithmetic operation for operation, so the outputs are bit-exact to the unfused pair (which
// is why only the QAdd's first operand can be the convolution: fuse_qdq_add puts it there).
// Only where oneDNN's int8 convolutions run (VNNI, oneDNN on), 2-D, with an NHWC output
// (oneDNN 2.6 has only its reference kernel for a sum into NCHW int8) and without an
// activation of the convolution's own; after the NHWC and uint8 passes, so layouts, types and
// zero points are final.
void fuse_residual_add_into_conv(Graph &g) {
  if (!dnnl_kernels_enabled() || !dnnl_cpu_has_vnni() || !residual_sum_enabled()) return;
  ValueLinks links(g);
  for (Node &add : g.nodes) {
    if (add.dead || !is_op_in(add, "axstream", "QAdd") || add.inputs.size() < 7 ||
        add.outputs.size() != 1 || add.inputs[0] < 0 || add.inputs[0] == add.inputs[3])
      continue;
    const int a = add.inputs[0];
    if (links.producer[a] < 0 || links.single_reader(a) != &add) continue;
    Node &conv = g.nodes[links.producer[a]];
    if (!is_op_in(conv, "axstream", "QConv") || conv.outputs.size() != 1 || conv.inputs.empty() ||
        conv.inputs[0] < 0 || conv.inputs.size() > 9 || conv.attrs.count("_activation") ||
        conv.attrs.count("_rounds_as_int8") || g.values[conv.inputs[0]].shape.size() != 4 ||
        !conv.attrs.count("_dst_nhwc") || conv.attrs.at("_dst_nhwc").i == 0)
      continue;
    Node fused = conv;
    fused.inputs.resize(9, -1);
    for (size_t slot : {3, 4, 5, 6, 7}) fused.inputs.push_back(input_or_none(add, slot));
    if (add.attrs.count("_relu") && add.attrs.at("_relu").i != 0)
      fused.attrs["_sum_relu"] = int_attr(1);
    fused.outputs = add.outputs;
    conv.dead = true;
    add = std::move(fused);
  }
}

// Whether float residual adds fuse into convolutions: unless AXSTREAM_ENGINE_FLOAT_SUM_POSTOP=0
// (the outputs are the same either way; the setting compares the two). Read at each compile.
bool float_residual_sum_enabled() { return setting_not_zero("AXSTREAM_ENGINE_FLOAT_SUM_POSTOP"); }

// A float Conv the float residual fusion may take: 2-D, its weights and bias constant (so oneDNN
// runs it), no activation of its own (that would come before the add) and no sum yet.
bool float_conv_takes_a_sum(const Graph &g, const Node &conv) {
  if (!is_op(conv, "Conv") || conv.outputs.size() != 1 || conv.inputs.size() < 2 ||
      conv.inputs.size() > 3 || conv.attrs.count("_activation") || conv.attrs.count("_sum") ||
      conv.inputs[0] < 0 || conv.inputs[1] < 0)
    return false;
  const Value &x = g.values[conv.inputs[0]], &y = g.values[conv.outputs[0]];
  return x.dtype == DType::f32 && y.dtype == DType::f32 && x.shape_known && x.shape.size() == 4 &&
         g.values[conv.inputs[1]].constant &&
         (conv.inputs.size() < 3 || conv.inputs[2] < 0 || g.values[conv.inputs[2]].constant);
}

// The float counterpart of fuse_residual_add_into_conv: Add(Conv(x), skip) [-> Relu |
// LeakyRelu], skip of exactly the convolution output's shape (no broadcast), becomes one Conv
// reading skip as a fourth input (`_sum=1`, the activation after the add as `_sum_activation`):
// oneDNN adds skip in a sum post-op of scale 1 (an FMA by 1.0, so round(conv + skip), as the
// Add rounds) and runs the activation after it, instead of two passes over the tensor. The
// convolution's output must have no other reader and not be a graph output, and the Conv no
// activation of its own. The two operands of a same-shape Add share one layout (the NHWC
// passes keep them so), which the convolution's output keeps. The fused Conv takes the Add's
// place (skip may be made after the convolution); the memory plan lets it write over skip when
// nothing reads skip later, else it copies skip into its output first. ops/conv.cc fuses only
// where oneDNN's kernel for the convolution was checked to give the unfused bits (the same
// kernel with and without the sum); elsewhere the engine's own add and activation follow the
// convolution in the same step (docs/runtime.md, "float residual adds"). A Clip after the add
// stays its own step: oneDNN's clip post-op takes NaN to a bound where the Clip op keeps NaN.
void fuse_float_residual_add_into_conv(Graph &g) {
  if (!dnnl_kernels_enabled() || !float_residual_sum_enabled()) return;
  ValueLinks links(g);
  for (Node &add : g.nodes) {
    if (!is_op(add, "Add") || add.inputs.size() != 2 || add.outputs.size() != 1 ||
        add.inputs[0] < 0 || add.inputs[1] < 0 || add.inputs[0] == add.inputs[1])
      continue;
    Node *conv = nullptr;
    int skip = -1;
    for (int k : {0, 1}) {
      const int a = add.inputs[k], other = add.inputs[1 - k];
      if (links.producer[a] < 0 || links.single_reader(a) != &add) continue;
      Node &candidate = g.nodes[links.producer[a]];
      const Value &av = g.values[a], &ov = g.values[other];
      if (!float_conv_takes_a_sum(g, candidate) || ov.dtype != DType::f32 || !ov.shape_known ||
          ov.shape != av.shape)
        continue;
      conv = &candidate;
      skip = other;
      break;
    }
    if (!conv) continue;
    Node fused = *conv;
    fused.inputs.resize(3, -1);
    fused.inputs.push_back(skip);
    fused.attrs["_sum"] = int_attr(1);
    fused.outputs = add.outputs;
    Node *act = links.single_reader(add.outputs[0]);
    std::map<std::string, Attribute> act_attrs;
    if (act && !act->inputs.empty() && act->inputs[0] == add.outputs[0] &&
        !is_op(*act, "HardSwish") && !is_op(*act, "Clip") &&
        float_activation_attrs(g, *act, "_sum", act_attrs)) {
      for (auto &[k, a] : act_attrs) fused.attrs[k] = a;
      fused.outputs = act->outputs;
      act->dead = true;
    }
    conv->dead = true;
    add = std::move(fused);
  }
}

}  // namespace

void run_prefold_passes(Graph &graph) {
  lower_qlinear_conv(graph);
  lower_qdq_conv_transpose_tiles(graph);
  fuse_qdq_conv(graph);
  fuse_qdq_matmul(graph);
}

void run_postfold_passes(Graph &graph) {
  remove_identities(graph);
  fuse_half_bias_add(graph);            // before an activation after the bias is moved onto it
  round_half_after_activations(graph);  // before the round trips after them are judged exact
  drop_exact_half_round_trips(graph);
  fold_batchnorm(graph);
  fuse_float_activations(graph);
  fuse_layer_norm(graph);
  fuse_qdq_add(graph);
  fuse_qdq_silu(graph);
  fuse_qdq_elementwise_tables(graph);
  fuse_qdq_data_movement(graph);
  fuse_qdq_split(graph);
  fuse_qdq_concat(graph);
  fuse_qdq_average_pools(graph);
  fuse_matmul_dequantize_add_quantize(graph);  // before a QBinary could take the Add
  fuse_qdq_binary(graph);
  keep_int8_activations_nhwc(graph);
  read_nhwc_input_in_convolution(graph);
  uint8_convolution_inputs(graph);
  fuse_residual_add_into_conv(graph);
  fuse_float_residual_add_into_conv(graph);  // after the NHWC passes: layouts are final
}

}  // namespace axstream::engine
