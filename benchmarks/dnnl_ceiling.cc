#include "dnnl_ceiling.h"

#include <time.h>

#include <dnnl.hpp>
#include <map>
#include <random>
#include <stdexcept>

#include "compiler.h"
#include "residual_sum_chain.h"

namespace axstream::bench {
namespace {

using dnnl::memory;
using engine::Graph;
using engine::Node;
using engine::Shape;
using dt = memory::data_type;
using tag = memory::format_tag;

memory::dims dims_of(const Shape &s) { return memory::dims(s.begin(), s.end()); }

int64_t attr_i(const Node &n, const std::string &name, int64_t dflt) {
  auto it = n.attrs.find(name);
  return it == n.attrs.end() ? dflt : it->second.i;
}
// A node's one-value constant input at `slot` (a scale: 1 when absent; a zero point: 0).
const engine::Tensor *constant_at(const Graph &g, const Node &n, size_t slot) {
  if (slot >= n.inputs.size() || n.inputs[slot] < 0) return nullptr;
  return g.values[n.inputs[slot]].constant.get();
}

std::string attr_s(const Node &n, const std::string &name) {
  auto it = n.attrs.find(name);
  return it == n.attrs.end() ? "" : it->second.s;
}
Shape attr_ints(const Node &n, const std::string &name, Shape dflt) {
  auto it = n.attrs.find(name);
  return it == n.attrs.end() ? dflt : it->second.ints;
}

// A window op's strides, dilations (oneDNN counts from 0) and pads, from the ONNX attributes
// and the input and output shapes the engine inferred (auto_pad included).
struct Window {
  memory::dims kernel, stride, dilation, pad_begin, pad_end;
};

Window window_of(const Node &n, const Shape &in, const Shape &kernel, const Shape &out) {
  Window w;
  Shape stride = attr_ints(n, "strides", {1, 1}), dilation = attr_ints(n, "dilations", {1, 1});
  Shape pads = attr_ints(n, "pads", {0, 0, 0, 0});
  const std::string auto_pad = attr_s(n, "auto_pad");
  if (stride.size() != 2 || dilation.size() != 2 || pads.size() != 4)
    throw std::runtime_error("node '" + n.name + "': expected 2-D strides/dilations/pads");
  for (size_t i = 0; i < 2; ++i) {
    int64_t extent = (kernel[i] - 1) * dilation[i] + 1;
    int64_t begin = pads[i], end = pads[i + 2];
    if (auto_pad == "VALID") begin = end = 0;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      int64_t total = std::max<int64_t>(0, (out[i] - 1) * stride[i] + extent - in[i]);
      begin = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      end = total - begin;
    }
    w.kernel.push_back(kernel[i]);
    w.stride.push_back(stride[i]);
    w.dilation.push_back(dilation[i] - 1);
    w.pad_begin.push_back(begin);
    // Floor-mode outputs can leave input rows unread: oneDNN wants the pad that fits exactly.
    w.pad_end.push_back((out[i] - 1) * stride[i] + extent - in[i] - begin);
  }
  return w;
}

class Chain final : public DnnlCeiling {
 public:
  Chain(const engine::CompiledGraph &cg, bool with_zero_points)
      : with_zero_points_(with_zero_points) {
    build(cg);
  }

  void run() override {
    for (auto &layer : layers_) layer.primitive.execute(stream_, layer.args);
    stream_.wait();
  }

  std::string contents() const override { return contents_; }

  std::vector<DnnlCeiling::Layer> time_layers(int runs) override {
    std::vector<double> total(layers_.size(), 0.0);
    for (int r = 0; r < runs; ++r) {
      double before = thread_cpu_ms();
      for (size_t l = 0; l < layers_.size(); ++l) {
        layers_[l].primitive.execute(stream_, layers_[l].args);
        stream_.wait();
        const double now = thread_cpu_ms();
        total[l] += now - before;
        before = now;
      }
    }
    std::vector<DnnlCeiling::Layer> out;
    for (size_t l = 0; l < layers_.size(); ++l) {
      out.push_back(layers_[l].about);
      out.back().cpu_ms = runs > 0 ? total[l] / runs : 0.0;
    }
    return out;
  }

 private:
  struct Primitive {
    dnnl::primitive primitive;
    std::unordered_map<int, memory> args;
    DnnlCeiling::Layer about;  // which engine step, which oneDNN kernel
  };

  static double thread_cpu_ms() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) * 1e-6;
  }

  // Names the layer just added after engine step `step` (node `n`) and its implementation.
  void describe_last(const Node &n, const std::string &impl) {
    layers_.back().about =
        DnnlCeiling::Layer{current_step_, n.op_type, n.label(graph_->values), impl, 0.0};
    impls_[impl] += 1;
  }

  float scale_at(const Node &n, size_t slot) const {
    const engine::Tensor *t = constant_at(*graph_, n, slot);
    return t ? static_cast<float>(t->as_double(0)) : 1.f;
  }
  int32_t zero_point_at(const Node &n, size_t slot) const {
    const engine::Tensor *t = constant_at(*graph_, n, slot);
    return t ? static_cast<int32_t>(t->as_int(0)) : 0;
  }

  // A fresh buffer of `md` filled with seeded random bytes (kept alive by the layer args).
  memory random_buffer(const memory::desc &md) {
    memory m(md, eng_);
    auto *p = static_cast<uint8_t *>(m.get_data_handle());
    if (md.data_type() == dt::f32) {  // random bytes are not all finite floats
      auto *f = reinterpret_cast<float *>(p);
      for (size_t i = 0; i < md.get_size() / sizeof(float); ++i)
        f[i] = static_cast<float>(rng_() >> 24) / 256.f - 0.5f;
      return m;
    }
    for (size_t i = 0; i < md.get_size(); ++i) p[i] = static_cast<uint8_t>(rng_() >> 24);
    return m;
  }

  // The activation buffer of engine value `v` seen as `md`: the producer's, or (a graph input,
  // an op outside the chain made it, or the producer's has another size: float next to int8)
  // a random one made once.
  memory activation(int v, const memory::desc &md) {
    auto it = buffers_.find(v);
    if (it != buffers_.end() && it->second.get_desc().get_size() == md.get_size())
      return memory(md, eng_, it->second.get_data_handle());
    auto key = std::make_pair(v, md.get_size());
    auto other = stand_ins_.find(key);
    if (other == stand_ins_.end()) other = stand_ins_.emplace(key, random_buffer(md)).first;
    return memory(md, eng_, other->second.get_data_handle());
  }

  memory scratchpad(const memory::desc &md) {
    if (md.get_size() > scratch_bytes_) scratch_bytes_ = md.get_size();
    return memory(md, eng_, nullptr);  // pointed at the shared scratch buffer in finish()
  }

  // int8 (QConv: weights are input 3) or, for the convolutions a package keeps float, f32
  // (Conv: input 1) with f32 NHWC activations and oneDNN's preferred f32 weight layout.
  // With sum_from >= 0 the convolution sums that value in the post-op chain the engine runs
  // for `sum` (residual_sum_chain.h), chosen from the same parameters.
  void add_conv(const Node &n, int sum_from, const engine::ResidualSumParams &sum,
                bool int8 = true) {
    const Graph &g = *graph_;
    const Shape &ws = g.values[n.inputs[int8 ? 3 : 1]].shape, &ys = g.values[n.outputs[0]].shape;
    // A convolution reading a package's input as it is has that input's N,H,W,C shape
    // (_src_nhwc_order); oneDNN's dims are N,C,H,W whatever the memory order.
    Shape xs = g.values[n.inputs[0]].shape;
    if (attr_i(n, "_src_nhwc_order", 0) != 0) xs = {xs[0], xs[3], xs[1], xs[2]};
    const dt act_type = int8 ? dt::u8 : dt::f32, w_type = int8 ? dt::s8 : dt::f32;
    const int64_t group = attr_i(n, "group", 1);
    Window win = window_of(n, {xs[2], xs[3]}, {ws[2], ws[3]}, {ys[2], ys[3]});
    memory::desc src(dims_of(xs), act_type, tag::nhwc), dst(dims_of(ys), act_type, tag::nhwc);
    memory::dims wdims = dims_of(ws);
    tag wtag = tag::oihw;
    if (group > 1) {
      wdims[0] /= group;
      wdims.insert(wdims.begin(), group);
      wtag = tag::goihw;
    }
    memory::desc any_w(wdims, w_type, tag::any), bias({ws[0]}, dt::f32, tag::x);
    dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference,
                                         dnnl::algorithm::convolution_direct, src, any_w, bias, dst,
                                         win.stride, win.dilation, win.pad_begin, win.pad_end);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (int8) attr.set_output_scales(1 << 1, std::vector<float>(size_t(ws[0]), 1.f / 512));
    // With the package's zero points (the engine's int8 source flipped to u8 moves its zero
    // point by 128), oneDNN 2.6 may pick another implementation: the cost of asymmetric
    // activations, as against the engine's own overhead.
    std::vector<std::pair<int, memory>> zero_points;
    if (int8 && with_zero_points_) {
      auto zero_point = [&](int slot, int shift) -> int32_t {
        if (slot >= int(n.inputs.size()) || n.inputs[slot] < 0) return shift;
        const auto &c = g.values[n.inputs[slot]].constant;
        return c ? int32_t(c->as_int(0)) + shift : shift;
      };
      bool src_signed = g.values[n.inputs[0]].dtype == engine::DType::i8;
      // A convolution summing a residual writes the add's output: its zero point.
      const int dst_slot = sum_from >= 0 ? 13 : 8;
      int32_t src_zp = zero_point(2, src_signed ? 128 : 0), dst_zp = zero_point(dst_slot, 0);
      for (auto [arg, value] : {std::pair{DNNL_ARG_SRC, src_zp}, {DNNL_ARG_DST, dst_zp}}) {
        if (value == 0) continue;
        attr.set_zero_points(arg, 0, {DNNL_RUNTIME_S32_VAL});
        memory m(memory::desc({1}, dt::s32, tag::x), eng_);
        *static_cast<int32_t *>(m.get_data_handle()) = value;
        zero_points.push_back({DNNL_ARG_ATTR_ZERO_POINTS | arg, m});
      }
    }
    dnnl::post_ops ops;
    const std::string act = attr_s(n, "_activation");
    if (act == "Relu") ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
    if (act == "Clip") ops.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, 0.f, 6.f);
    if (act == "SiLU") ops.append_eltwise(1.f, dnnl::algorithm::eltwise_swish, 1.f, 0.f);
    if (act == "LeakyRelu") ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.1f, 0.f);
    if (act == "HardSwish") ops.append_eltwise(1.f, dnnl::algorithm::eltwise_hardswish, 0.f, 0.f);
    std::vector<std::pair<int, memory>> post_op_operands;
    if (sum_from >= 0) {
      engine::ResidualSumParams on_u8 = sum;  // this chain's activations are all uint8
      on_u8.skip_dtype = engine::DType::u8;
      engine::append_residual_sum(
          on_u8, engine::choose_residual_sum_chain(sum), ops, [&](float value) {
            memory m(memory::desc({1, 1, 1, 1}, dt::f32, tag::nchw), eng_);
            *static_cast<float *>(m.get_data_handle()) = value;
            post_op_operands.push_back(
                {DNNL_ARG_ATTR_MULTIPLE_POST_OP(ops.len() - 1) | DNNL_ARG_SRC_1, m});
          });
    }
    attr.set_post_ops(ops);
    dnnl::convolution_forward::primitive_desc pd(desc, attr, eng_);
    memory user_w = random_buffer(memory::desc(wdims, w_type, wtag));
    memory w(pd.weights_desc(), eng_);
    dnnl::reorder(user_w, w).execute(stream_, user_w, w);
    stream_.wait();
    memory b = random_buffer(bias);
    for (int64_t c = 0; c < ws[0]; ++c) static_cast<float *>(b.get_data_handle())[c] = 0.5f;
    // With a sum the result lands on the other operand's buffer, which becomes the output's.
    memory out = sum_from >= 0 ? activation(sum_from, dst) : random_buffer(dst);
    buffers_[n.outputs[0]] = out;
    layers_.push_back({dnnl::convolution_forward(pd),
                       {{DNNL_ARG_SRC, activation(n.inputs[0], src)},
                        {DNNL_ARG_WEIGHTS, w},
                        {DNNL_ARG_BIAS, b},
                        {DNNL_ARG_DST, out},
                        {DNNL_ARG_SCRATCHPAD, scratchpad(pd.scratchpad_desc())}},
                       {}});
    for (const auto &[arg, m] : zero_points) layers_.back().args.insert({arg, m});
    for (const auto &[arg, m] : post_op_operands) layers_.back().args.insert({arg, m});
    describe_last(n, pd.impl_info_str());
  }

  void add_pool(const Node &n, bool global) {
    const Graph &g = *graph_;
    const Shape &xs = g.values[n.inputs[0]].shape, &ys = g.values[n.outputs[0]].shape;
    Shape kernel = global ? Shape{xs[2], xs[3]} : attr_ints(n, "kernel_shape", {});
    if (kernel.size() != 2) throw std::runtime_error("node '" + n.name + "': not a 2-D pool");
    Window win = global ? Window{dims_of(kernel), {1, 1}, {0, 0}, {0, 0}, {0, 0}}
                        : window_of(n, {xs[2], xs[3]}, kernel, {ys[2], ys[3]});
    memory::desc src(dims_of(xs), dt::u8, tag::nhwc), dst(dims_of(ys), dt::u8, tag::nhwc);
    dnnl::pooling_forward::desc desc(
        dnnl::prop_kind::forward_inference,
        global ? dnnl::algorithm::pooling_avg_exclude_padding : dnnl::algorithm::pooling_max, src,
        dst, win.stride, win.kernel, win.pad_begin, win.pad_end);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::pooling_forward::primitive_desc pd(desc, attr, eng_);
    memory out = random_buffer(dst);
    buffers_[n.outputs[0]] = out;
    layers_.push_back({dnnl::pooling_forward(pd),
                       {{DNNL_ARG_SRC, activation(n.inputs[0], src)},
                        {DNNL_ARG_DST, out},
                        {DNNL_ARG_SCRATCHPAD, scratchpad(pd.scratchpad_desc())}},
                       {}});
    describe_last(n, pd.impl_info_str());
  }

  void add_gemm(const Node &n) {
    const Graph &g = *graph_;
    const Shape &xs = g.values[n.inputs[0]].shape, &ys = g.values[n.outputs[0]].shape;
    memory::desc src({xs[0], xs[1]}, dt::u8, tag::nc), dst({ys[0], ys[1]}, dt::s8, tag::nc);
    memory::desc any_w({ys[1], xs[1]}, dt::s8, tag::any), bias({ys[1]}, dt::f32, tag::x);
    dnnl::inner_product_forward::desc desc(dnnl::prop_kind::forward_inference, src, any_w, bias,
                                           dst);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    attr.set_output_scales(1 << 1, std::vector<float>(size_t(ys[1]), 1.f / 512));
    dnnl::inner_product_forward::primitive_desc pd(desc, attr, eng_);
    memory user_w = random_buffer(memory::desc({ys[1], xs[1]}, dt::s8, tag::oi));
    memory w(pd.weights_desc(), eng_);
    dnnl::reorder(user_w, w).execute(stream_, user_w, w);
    stream_.wait();
    memory b(bias, eng_);
    std::fill_n(static_cast<float *>(b.get_data_handle()), ys[1], 0.5f);
    memory out = random_buffer(dst);
    buffers_[n.outputs[0]] = out;
    layers_.push_back({dnnl::inner_product_forward(pd),
                       {{DNNL_ARG_SRC, activation(n.inputs[0], src)},
                        {DNNL_ARG_WEIGHTS, w},
                        {DNNL_ARG_BIAS, b},
                        {DNNL_ARG_DST, out},
                        {DNNL_ARG_SCRATCHPAD, scratchpad(pd.scratchpad_desc())}},
                       {}});
    describe_last(n, pd.impl_info_str());
  }

  static bool is(const Node &n, const char *domain, const char *op) {
    return n.domain == domain && n.op_type == op;
  }

  void build(const engine::CompiledGraph &cg) {
    const Graph &g = cg.graph;
    graph_ = &g;
    // Position of each value's producing step, and of every step reading it.
    std::map<int, size_t> made_at;
    std::map<int, std::vector<size_t>> read_at;
    for (size_t s = 0; s < cg.steps.size(); ++s) {
      for (int v : cg.steps[s].outputs) made_at[v] = s;
      for (int v : cg.steps[s].inputs)
        if (v >= 0) read_at[v].push_back(s);
    }
    // Residual QAdds: the QConv making the later operand (read by nothing else) sums the
    // earlier one in place, if nothing reads that one after the convolution.
    // conv step -> (summand value, the add's parameters)
    std::map<size_t, std::pair<int, engine::ResidualSumParams>> sum_into;
    std::map<size_t, bool> add_fused;
    for (size_t s = 0; s < cg.steps.size(); ++s) {
      const Node &add = g.nodes[cg.steps[s].node];
      if (!is(add, "axstream", "QAdd") || g.values[add.inputs[0]].shape.size() != 4) continue;
      int a = add.inputs[0], b = add.inputs[3];
      if (!made_at.count(a) || !made_at.count(b)) continue;
      if (made_at[a] > made_at[b]) std::swap(a, b);
      size_t conv = made_at[b];
      if (!is(g.nodes[cg.steps[conv].node], "axstream", "QConv") || read_at[b].size() != 1)
        continue;
      bool read_later = false;
      for (size_t r : read_at[a]) read_later |= r != s && r > conv;
      if (read_later) continue;
      // The convolution's output is the QAdd's operand at slot 0 or 3, the summand the other.
      const size_t conv_at = add.inputs[0] == b ? 0 : 3, skip_at = 3 - conv_at;
      engine::ResidualSumParams p;
      p.conv_dtype = g.values[b].dtype;
      p.conv_scale = scale_at(add, conv_at + 1);
      p.conv_zero_point = zero_point_at(add, conv_at + 2);
      p.skip_dtype = g.values[a].dtype;
      p.skip_scale = scale_at(add, skip_at + 1);
      p.skip_zero_point = zero_point_at(add, skip_at + 2);
      p.relu = attr_i(add, "_relu", 0) != 0;
      p.y_scale = scale_at(add, 6);
      p.y_dtype = g.values[add.outputs[0]].dtype;
      p.y_zero_point = zero_point_at(add, 7);
      sum_into[conv] = {a, p};
      add_fused[s] = true;
    }
    int convs = 0, sums = 0, pools = 0, gemms = 0, float_convs = 0;
    std::map<std::string, int> left_out;
    for (size_t s = 0; s < cg.steps.size(); ++s) {
      const Node &n = g.nodes[cg.steps[s].node];
      current_step_ = s;
      const bool four_d = g.values[n.inputs[0]].shape.size() == 4;
      if (is(n, "axstream", "QConv") && four_d) {
        auto sum = sum_into.find(s);
        int sum_from = sum == sum_into.end() ? -1 : sum->second.first;
        engine::ResidualSumParams p;
        if (sum != sum_into.end()) p = sum->second.second;
        // A residual the engine already fused into the convolution (its slots 9-13, qconv.cc).
        if (n.inputs.size() > 9 && n.inputs[9] >= 0) {
          sum_from = n.inputs[9];
          p.conv_dtype = n.inputs.size() > 8 && n.inputs[8] >= 0 ? g.values[n.inputs[8]].dtype
                                                                 : engine::DType::u8;
          p.conv_scale = scale_at(n, 7);
          p.conv_zero_point = zero_point_at(n, 8);
          p.skip_dtype = g.values[sum_from].dtype;
          p.skip_scale = scale_at(n, 10);
          p.skip_zero_point = zero_point_at(n, 11);
          p.relu = attr_i(n, "_sum_relu", 0) != 0;
          p.y_scale = scale_at(n, 12);
          p.y_dtype = g.values[n.outputs[0]].dtype;
          p.y_zero_point = zero_point_at(n, 13);
        }
        add_conv(n, sum_from, p);
        ++convs;
        sums += sum_from >= 0;
      } else if (is(n, "", "Conv") && four_d && g.values[n.inputs[0]].dtype == engine::DType::f32) {
        add_conv(n, -1, {}, false);
        ++float_convs;
      } else if (is(n, "", "MaxPool") && four_d &&
                 g.values[n.inputs[0]].dtype != engine::DType::f32) {
        add_pool(n, false);
        ++pools;
      } else if (is(n, "axstream", "QGlobalAveragePool") && four_d) {
        add_pool(n, true);
        ++pools;
      } else if (is(n, "axstream", "QGemm") && g.values[n.inputs[0]].shape.size() == 2) {
        add_gemm(n);
        ++gemms;
      } else if (add_fused.count(s)) {
        // no primitive: its convolution sums it (its output buffer is set below)
      } else {
        left_out[n.op_type] += 1;
      }
      // A fused QAdd's output is its convolution's output.
      if (add_fused.count(s)) {
        int a = n.inputs[0], b = n.inputs[3];
        int later = made_at[a] > made_at[b] ? a : b;
        buffers_[n.outputs[0]] = buffers_.at(later);
      }
    }
    scratch_ = memory(memory::desc({int64_t(scratch_bytes_ + 1)}, dt::u8, tag::x), eng_);
    for (auto &layer : layers_) {
      auto it = layer.args.find(DNNL_ARG_SCRATCHPAD);
      it->second = memory(it->second.get_desc(), eng_, scratch_.get_data_handle());
    }
    contents_ = std::to_string(convs) + " int8 conv" +
                (with_zero_points_ ? " with the package's zero points" : "") + " (" +
                std::to_string(sums) + " with the residual add as sum post-op), " +
                std::to_string(float_convs) + " f32 conv (kept float by the package), " +
                std::to_string(pools) + " pool, " + std::to_string(gemms) + " inner product";
    std::string impls;
    for (const auto &[impl, count] : impls_)
      impls += (impls.empty() ? "" : ", ") + impl + " x" + std::to_string(count);
    contents_ += " [" + impls + "]";
    std::string rest;
    for (const auto &[op, count] : left_out)
      rest += (rest.empty() ? "" : ", ") + op + " x" + std::to_string(count);
    contents_ += "; left out: " + (rest.empty() ? std::string("nothing") : rest);
  }

  dnnl::engine eng_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_{eng_};
  const Graph *graph_ = nullptr;
  bool with_zero_points_ = false;
  std::vector<Primitive> layers_;
  std::map<int, memory> buffers_;  // engine value id -> its buffer in the chain
  std::map<std::pair<int, size_t>, memory> stand_ins_;  // (value, bytes) -> a random buffer
  std::map<std::string, int> impls_;
  size_t scratch_bytes_ = 0;
  size_t current_step_ = 0;  // the engine step build() is making a layer for
  memory scratch_;
  std::mt19937 rng_{5};
  std::string contents_;
};

}  // namespace

std::unique_ptr<DnnlCeiling> DnnlCeiling::build(const engine::CompiledGraph &graph,
                                                bool with_zero_points) {
  return std::make_unique<Chain>(graph, with_zero_points);
}

}  // namespace axstream::bench
