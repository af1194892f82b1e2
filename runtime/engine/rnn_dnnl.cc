#include "rnn_dnnl.h"

#include <algorithm>
#include <cstring>
#include <dnnl.hpp>
#include <type_traits>

#include "compiler.h"
#include "conv_dnnl.h"  // dnnl_kernels_enabled

namespace axstream::engine {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

size_t align64(size_t n) { return (n + 63) / 64 * 64; }

// oneDNN's gate order from ONNX's: LSTM i, f, c, o from ONNX's i, o, f, c (peepholes i, f, o
// from i, o, f); GRU (u, r, o) and RNN share ONNX's order.
constexpr int kLstmGateFromOnnx[4] = {0, 2, 3, 1};
constexpr int kLstmPeepholeFromOnnx[3] = {0, 2, 1};

int onnx_gate_count(RnnCell cell) {
  return cell == RnnCell::lstm ? 4 : cell == RnnCell::gru ? 3 : 1;
}

// (batch, dirs, hidden) <-> (dirs, batch, hidden): ONNX layout 1 states vs oneDNN's ldnc.
void swap_leading_dims(const float *from, float *to, int64_t a, int64_t b, int64_t hidden) {
  for (int64_t i = 0; i < a; ++i)
    for (int64_t j = 0; j < b; ++j)
      std::memcpy(to + (j * a + i) * hidden, from + (i * b + j) * hidden,
                  static_cast<size_t>(hidden) * sizeof(float));
}

// Which state arguments the primitive gets: an LSTM's h and c go together (oneDNN wants both
// or neither), a missing one given as zeros or written to scratch.
struct StateArgs {
  bool src_h, src_c, dst_h, dst_c;
};
StateArgs state_args(const DnnlRnnParams &p) {
  bool lstm = p.cell == RnnCell::lstm;
  bool src = p.has_initial_h || (lstm && p.has_initial_c);
  bool dst = p.has_y_h || (lstm && p.has_y_c);
  return {src, lstm && src, dst, lstm && dst};
}

class DnnlRnnLayer : public DnnlRnn {
 public:
  DnnlRnnLayer(const DnnlRnnParams &p, dnnl::primitive_desc_base pd, dnnl::primitive prim,
               std::vector<std::pair<int, std::shared_ptr<memory>>> weights)
      : p_(p),
        pd_(std::move(pd)),
        prim_(std::move(prim)),
        weights_(std::move(weights)),
        src_layer_({p.seq, p.batch, p.input}, dt::f32, p.batch_major ? tag::ntc : tag::tnc),
        dst_layer_({p.seq, p.batch, p.directions * p.hidden}, dt::f32,
                   p.batch_major ? tag::ntc : tag::tnc),
        state_({1, p.directions, p.batch, p.hidden}, dt::f32, tag::ldnc) {
    // oneDNN names its RNN implementations "ref:any" whatever gemm kernels they run.
    static const char *const kNames[] = {"oneDNN lstm_forward", "oneDNN gru_forward",
                                         "oneDNN vanilla_rnn_forward"};
    impl = p.cell == RnnCell::gru && p.linear_before_reset ? "oneDNN lbr_gru_forward"
                                                           : kNames[static_cast<int>(p.cell)];
    impl += std::string(" (") + pd_.impl_info_str() + ")";
    int64_t d = p.directions, n = p.batch, h = p.hidden;
    // Buffers are shared with the caller unless ONNX's layout differs from oneDNN's: states
    // are (dirs, batch, hidden) in both only for layout 0 (or when one of those dims is 1),
    // Y is (seq, dirs, batch, hidden) where oneDNN writes (seq, batch, dirs * hidden).
    states_direct_ = !p.batch_major || d == 1 || n == 1;
    y_direct_ = p.has_y && (p.batch_major || d == 1 || n == 1);
    size_t state_bytes = static_cast<size_t>(d * n * h) * sizeof(float);
    size_t offset = align64(pd_.scratchpad_desc().get_size());
    auto take = [&](bool needed, size_t bytes) {
      size_t at = offset;
      if (needed) offset += align64(bytes);
      return at;
    };
    StateArgs a = state_args(p);
    h0_offset_ = take(a.src_h && !(p.has_initial_h && states_direct_), state_bytes);
    c0_offset_ = take(a.src_c && !(p.has_initial_c && states_direct_), state_bytes);
    y_offset_ = take(!y_direct_, static_cast<size_t>(p.seq) * state_bytes);
    yh_offset_ = take(a.dst_h && !(p.has_y_h && states_direct_), state_bytes);
    yc_offset_ = take(a.dst_c && !(p.has_y_c && states_direct_), state_bytes);
    scratch_bytes = offset;
  }

  void run(ExecContext &ctx, const float *x, const float *initial_h, const float *initial_c,
           float *y, float *y_h, float *y_c, void *scratch_ptr) const override {
    std::unique_ptr<KernelState> local;
    RunState &st = kernel_state<RunState>(ctx, this, local, [&] { return make_run_state(ctx); });
    auto *scratch = static_cast<uint8_t *>(scratch_ptr);
    int64_t d = p_.directions, n = p_.batch, h = p_.hidden;
    StateArgs a = state_args(p_);
    auto at = [&](size_t offset) { return reinterpret_cast<float *>(scratch + offset); };
    // An initial state as oneDNN reads it: the caller's, re-laid, or zeros when absent.
    auto state_in = [&](const float *given, size_t offset) -> float * {
      if (given && states_direct_) return const_cast<float *>(given);
      if (given)
        swap_leading_dims(given, at(offset), n, d, h);
      else
        std::fill(at(offset), at(offset) + d * n * h, 0.f);
      return at(offset);
    };
    auto state_out = [&](float *wanted, size_t offset) {
      return wanted && states_direct_ ? wanted : at(offset);
    };
    // Every handle, every run: the buffers are the run's (an enclosing kernel may hand each run
    // its own scratch, and the caller its own inputs and outputs).
    st.src_layer.set_data_handle(const_cast<float *>(x));
    if (a.src_h) st.src_iter.set_data_handle(state_in(initial_h, h0_offset_));
    if (a.src_c) st.src_iter_c.set_data_handle(state_in(initial_c, c0_offset_));
    float *y_buffer = y_direct_ ? y : at(y_offset_);
    float *yh_buffer = state_out(y_h, yh_offset_), *yc_buffer = state_out(y_c, yc_offset_);
    st.dst_layer.set_data_handle(y_buffer);
    if (a.dst_h) st.dst_iter.set_data_handle(yh_buffer);
    if (a.dst_c) st.dst_iter_c.set_data_handle(yc_buffer);
    st.scratchpad.set_data_handle(scratch);
    // The C call: the C++ one rebuilds an argument vector from a map on every run.
    dnnl::error::wrap_c_api(
        dnnl_primitive_execute(prim_.get(), ctx.stream->get(), static_cast<int>(st.args.size()),
                               st.args.data()),
        "could not execute an RNN primitive");
    ctx.stream->wait();
    // oneDNN's (seq, batch, dirs, hidden) into ONNX's (seq, dirs, batch, hidden).
    if (p_.has_y && !y_direct_)
      for (int64_t t = 0; t < p_.seq; ++t)
        swap_leading_dims(y_buffer + t * n * d * h, y + t * d * n * h, n, d, h);
    if (!states_direct_) {
      if (y_h) swap_leading_dims(yh_buffer, y_h, d, n, h);
      if (y_c) swap_leading_dims(yc_buffer, y_c, d, n, h);
    }
  }

 private:
  // The memory objects and argument list of one executor's runs, built on its first run: each
  // run only points them at its buffers (set_data_handle), as DnnlConvKernel's RunState does.
  struct RunState final : KernelState {
    memory src_layer, src_iter, src_iter_c, dst_layer, dst_iter, dst_iter_c, scratchpad;
    std::vector<dnnl_exec_arg_t> args;
  };

  std::unique_ptr<RunState> make_run_state(ExecContext &ctx) const {
    auto &eng = *ctx.engine;
    auto st = std::make_unique<RunState>();
    StateArgs a = state_args(p_);
    // Created on a null buffer: run() points every one at its buffer before each execution.
    auto add = [&](int arg, memory &mem, const memory::desc &md) {
      mem = memory(md, eng, nullptr);
      st->args.push_back({arg, mem.get()});
    };
    add(DNNL_ARG_SRC_LAYER, st->src_layer, src_layer_);
    if (a.src_h) add(DNNL_ARG_SRC_ITER, st->src_iter, state_);
    if (a.src_c) add(DNNL_ARG_SRC_ITER_C, st->src_iter_c, state_);
    add(DNNL_ARG_DST_LAYER, st->dst_layer, dst_layer_);
    if (a.dst_h) add(DNNL_ARG_DST_ITER, st->dst_iter, state_);
    if (a.dst_c) add(DNNL_ARG_DST_ITER_C, st->dst_iter_c, state_);
    add(DNNL_ARG_SCRATCHPAD, st->scratchpad, pd_.scratchpad_desc());
    for (const auto &[arg, mem] : weights_) st->args.push_back({arg, mem->get()});
    return st;
  }

  DnnlRnnParams p_;
  dnnl::primitive_desc_base pd_;
  dnnl::primitive prim_;
  std::vector<std::pair<int, std::shared_ptr<memory>>> weights_;
  memory::desc src_layer_, dst_layer_, state_;  // the caller's plain layouts
  bool states_direct_ = true, y_direct_ = true;
  size_t h0_offset_ = 0, c0_offset_ = 0, y_offset_ = 0, yh_offset_ = 0, yc_offset_ = 0;
};

// ONNX's (dirs, gates * hidden, cols) matrices with the gates put in oneDNN's order: the
// (layers=1, dirs, cols, gates, hidden) tensor in the ldgoi layout.
std::vector<float> gates_in_dnnl_order(const DnnlRnnParams &p, const float *m, int64_t cols) {
  int64_t gates = onnx_gate_count(p.cell), block = p.hidden * cols;
  std::vector<float> out(static_cast<size_t>(p.directions * gates * block));
  for (int64_t d = 0; d < p.directions; ++d)
    for (int64_t g = 0; g < gates; ++g) {
      int64_t from = p.cell == RnnCell::lstm ? kLstmGateFromOnnx[g] : g;
      std::memcpy(out.data() + (d * gates + g) * block, m + (d * gates + from) * block,
                  static_cast<size_t>(block) * sizeof(float));
    }
  return out;
}

// oneDNN's one bias per gate (Wb + Rb); a linear-before-reset GRU keeps the hidden gate's
// recurrence bias apart, as a fourth gate.
std::vector<float> dnnl_bias(const DnnlRnnParams &p, const float *b, int64_t bias_gates) {
  int64_t gates = onnx_gate_count(p.cell), h = p.hidden;
  std::vector<float> out(static_cast<size_t>(p.directions * bias_gates * h), 0.f);
  if (!b) return out;
  for (int64_t d = 0; d < p.directions; ++d) {
    const float *wb = b + d * 2 * gates * h, *rb = wb + gates * h;
    float *o = out.data() + d * bias_gates * h;
    for (int64_t g = 0; g < gates; ++g) {
      int64_t from = p.cell == RnnCell::lstm ? kLstmGateFromOnnx[g] : g;
      bool split = p.linear_before_reset && g == 2;
      for (int64_t i = 0; i < h; ++i)
        o[g * h + i] = wb[from * h + i] + (split ? 0.f : rb[from * h + i]);
    }
    if (p.linear_before_reset)
      for (int64_t i = 0; i < h; ++i) o[3 * h + i] = rb[2 * h + i];
  }
  return out;
}

// A primitive and the weight layouts it chose.
struct RnnPrimitive {
  dnnl::primitive_desc_base pd;
  dnnl::primitive prim;
  memory::desc weights_layer, weights_iter, weights_peephole;
};

template <typename Primitive>
RnnPrimitive make_rnn_primitive(const typename Primitive::desc &desc,
                                const dnnl::primitive_attr &attr, const dnnl::engine &eng) {
  typename Primitive::primitive_desc pd(desc, attr, eng);
  RnnPrimitive made{pd, Primitive(pd), pd.weights_layer_desc(), pd.weights_iter_desc(), {}};
  if constexpr (std::is_same_v<Primitive, dnnl::lstm_forward>)
    made.weights_peephole = pd.weights_peephole_desc();
  return made;
}

}  // namespace

std::unique_ptr<DnnlRnn> make_dnnl_rnn(const DnnlRnnParams &p, const float *w, const float *r,
                                       const float *b, const float *peepholes) {
  if (!dnnl_kernels_enabled()) return nullptr;
  try {
    auto &eng = cpu_engine();
    int64_t d = p.directions, n = p.batch, h = p.hidden, gates = onnx_gate_count(p.cell);
    int64_t bias_gates = p.linear_before_reset ? 4 : gates;
    tag layer_tag = p.batch_major ? tag::ntc : tag::tnc;
    memory::desc src_layer({p.seq, n, p.input}, dt::f32, layer_tag);
    memory::desc dst_layer({p.seq, n, d * h}, dt::f32, layer_tag);
    memory::desc state({1, d, n, h}, dt::f32, tag::ldnc), none;
    StateArgs a = state_args(p);
    memory::desc src_iter = a.src_h ? state : none, src_iter_c = a.src_c ? state : none;
    memory::desc dst_iter = a.dst_h ? state : none, dst_iter_c = a.dst_c ? state : none;
    memory::desc user_w({1, d, p.input, gates, h}, dt::f32, tag::ldgoi);
    memory::desc user_r({1, d, h, gates, h}, dt::f32, tag::ldgoi);
    memory::desc any_w({1, d, p.input, gates, h}, dt::f32, tag::any);
    memory::desc any_r({1, d, h, gates, h}, dt::f32, tag::any);
    memory::desc bias({1, d, bias_gates, h}, dt::f32, tag::ldgo);
    memory::desc peephole_md({1, d, 3, h}, dt::f32, tag::ldgo);
    auto direction = d == 2      ? dnnl::rnn_direction::bidirectional_concat
                     : p.reverse ? dnnl::rnn_direction::unidirectional_right2left
                                 : dnnl::rnn_direction::unidirectional_left2right;
    auto prop = dnnl::prop_kind::forward_inference;
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);

    RnnPrimitive made;
    if (p.cell == RnnCell::lstm) {
      made = make_rnn_primitive<dnnl::lstm_forward>(
          {prop, direction, src_layer, src_iter, src_iter_c, any_w, any_r,
           p.has_peepholes ? peephole_md : none, bias, dst_layer, dst_iter, dst_iter_c},
          attr, eng);
    } else if (p.cell == RnnCell::gru && p.linear_before_reset) {
      made = make_rnn_primitive<dnnl::lbr_gru_forward>(
          {prop, direction, src_layer, src_iter, any_w, any_r, bias, dst_layer, dst_iter}, attr,
          eng);
    } else if (p.cell == RnnCell::gru) {
      made = make_rnn_primitive<dnnl::gru_forward>(
          {prop, direction, src_layer, src_iter, any_w, any_r, bias, dst_layer, dst_iter}, attr,
          eng);
    } else {
      auto activation = p.activation == RnnActivationKind::relu ? dnnl::algorithm::eltwise_relu
                        : p.activation == RnnActivationKind::sigmoid
                            ? dnnl::algorithm::eltwise_logistic
                            : dnnl::algorithm::eltwise_tanh;
      made = make_rnn_primitive<dnnl::vanilla_rnn_forward>(
          {prop, activation, direction, src_layer, src_iter, any_w, any_r, bias, dst_layer,
           dst_iter},
          attr, eng);
    }

    // The weights, reordered once into the layout the primitive chose.
    dnnl::stream stream(eng);
    std::vector<std::pair<int, std::shared_ptr<memory>>> weights;
    auto place = [&](int arg, const memory::desc &user_md, const memory::desc &md,
                     std::vector<float> values) {
      memory user(user_md, eng, values.data());
      auto mem = std::make_shared<memory>(md, eng);
      dnnl::reorder(user, *mem).execute(stream, user, *mem);
      stream.wait();
      weights.push_back({arg, mem});
    };
    place(DNNL_ARG_WEIGHTS_LAYER, user_w, made.weights_layer, gates_in_dnnl_order(p, w, p.input));
    place(DNNL_ARG_WEIGHTS_ITER, user_r, made.weights_iter, gates_in_dnnl_order(p, r, h));
    place(DNNL_ARG_BIAS, bias, bias, dnnl_bias(p, b, bias_gates));
    if (p.has_peepholes) {
      std::vector<float> values(static_cast<size_t>(d * 3 * h));
      for (int64_t k = 0; k < d; ++k)
        for (int g = 0; g < 3; ++g)
          std::memcpy(values.data() + (k * 3 + g) * h,
                      peepholes + (k * 3 + kLstmPeepholeFromOnnx[g]) * h,
                      static_cast<size_t>(h) * sizeof(float));
      place(DNNL_ARG_WEIGHTS_PEEPHOLE, peephole_md, made.weights_peephole, std::move(values));
    }
    return std::make_unique<DnnlRnnLayer>(p, made.pd, made.prim, std::move(weights));
  } catch (const dnnl::error &) {
    return nullptr;  // no oneDNN implementation: the reference kernel runs instead
  }
}

}  // namespace axstream::engine
