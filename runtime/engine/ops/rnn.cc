// LSTM, GRU and RNN (ONNX opsets 7 and 14): directions, initial states, peepholes, the
// activation attributes, clip, GRU's linear_before_reset, LSTM's input_forget, layout 0/1 and
// sequence_lens (a constant or read at run time). oneDNN's RNN primitives run the layers they
// express exactly; the reference loops run the rest and AXSTREAM_ENGINE_REFERENCE=1.
#include <dnnl.h>

#include <algorithm>
#include <cctype>

#include "../conv_dnnl.h"
#include "../rnn_dnnl.h"
#include "common.h"

namespace axstream::engine {
namespace {

// ONNX's inputs and outputs of the three ops (GRU and RNN stop after initial_h / Y_h).
enum RnnInput { kX, kW, kR, kB, kSequenceLens, kInitialH, kInitialC, kPeepholes };
enum RnnOutput { kY, kYH, kYC };

// How many inputs the op may have: LSTM adds initial_c and P after GRU's and RNN's six.
size_t rnn_max_inputs(RnnCell cell) { return cell == RnnCell::lstm ? 8 : 6; }

// One of the activation functions the ONNX recurrent ops name in `activations`.
struct RnnActivation {
  enum class Kind {
    relu,
    tanh,
    sigmoid,
    affine,
    leaky_relu,
    thresholded_relu,
    scaled_tanh,
    hard_sigmoid,
    elu,
    softsign,
    softplus
  } kind = Kind::tanh;
  float alpha = 0.f, beta = 0.f;

  float operator()(float x) const {
    switch (kind) {
      case Kind::relu:
        return std::max(x, 0.f);
      case Kind::tanh:
        return std::tanh(x);
      case Kind::sigmoid:
        return 1.f / (1.f + std::exp(-x));
      case Kind::affine:
        return alpha * x + beta;
      case Kind::leaky_relu:
        return x >= 0.f ? x : alpha * x;
      case Kind::thresholded_relu:
        return x > alpha ? x : 0.f;
      case Kind::scaled_tanh:
        return alpha * std::tanh(beta * x);
      case Kind::hard_sigmoid:
        return std::clamp(alpha * x + beta, 0.f, 1.f);
      case Kind::elu:
        return x >= 0.f ? x : alpha * (std::exp(x) - 1.f);
      case Kind::softsign:
        return x / (1.f + std::fabs(x));
      case Kind::softplus:
        return x > 20.f ? x : std::log1p(std::exp(x));
    }
    return x;
  }
};

// The `activations` attribute, per direction, with activation_alpha/beta consumed in order by
// the functions that take them (ONNX's rule; defaults those of the same-named ONNX ops).
std::vector<RnnActivation> parse_activations(OpContext &ctx, const std::vector<std::string> &dflt,
                                             int64_t directions) {
  std::vector<std::string> names = dflt;
  if (ctx.has_attr("activations")) names = ctx.node().attrs.at("activations").strings;
  size_t per_direction = dflt.size();
  if (names.size() == per_direction && directions == 2) {
    std::vector<std::string> one_direction = names;
    names.insert(names.end(), one_direction.begin(), one_direction.end());
  }
  if (names.size() != per_direction * static_cast<size_t>(directions))
    ctx.fail("activations lists " + std::to_string(names.size()) + " functions, expected " +
             std::to_string(per_direction * directions) + " (" + std::to_string(per_direction) +
             " per direction)");
  std::vector<float> alphas = ctx.attr_floats("activation_alpha");
  std::vector<float> betas = ctx.attr_floats("activation_beta");
  size_t next_alpha = 0, next_beta = 0;
  std::vector<RnnActivation> out;
  for (const std::string &name : names) {
    std::string lower = name;
    for (char &c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    using Kind = RnnActivation::Kind;
    // name -> kind, default alpha and beta (NaN: the function takes none).
    struct Entry {
      const char *name;
      Kind kind;
      float alpha, beta;
    };
    static const Entry kEntries[] = {
        {"relu", Kind::relu, NAN, NAN},
        {"tanh", Kind::tanh, NAN, NAN},
        {"sigmoid", Kind::sigmoid, NAN, NAN},
        {"affine", Kind::affine, 1.f, 0.f},
        {"leakyrelu", Kind::leaky_relu, 0.01f, NAN},
        {"thresholdedrelu", Kind::thresholded_relu, 1.f, NAN},
        {"scaledtanh", Kind::scaled_tanh, 1.f, 1.f},
        {"hardsigmoid", Kind::hard_sigmoid, 0.2f, 0.5f},
        {"elu", Kind::elu, 1.f, NAN},
        {"softsign", Kind::softsign, NAN, NAN},
        {"softplus", Kind::softplus, NAN, NAN},
    };
    const Entry *entry = nullptr;
    for (const Entry &e : kEntries)
      if (lower == e.name) entry = &e;
    if (!entry)
      ctx.fail("unknown activation '" + name +
               "' (expected Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, "
               "HardSigmoid, Elu, Softsign or Softplus)");
    RnnActivation a;
    a.kind = entry->kind;
    if (!std::isnan(entry->alpha))
      a.alpha = next_alpha < alphas.size() ? alphas[next_alpha++] : entry->alpha;
    if (!std::isnan(entry->beta))
      a.beta = next_beta < betas.size() ? betas[next_beta++] : entry->beta;
    out.push_back(a);
  }
  return out;
}

// Everything a recurrent node's kernels need, resolved and checked at compile time.
struct RnnSpec {
  RnnCell cell = RnnCell::lstm;
  int64_t seq = 0, batch = 0, input = 0, hidden = 0, directions = 1, gates = 1;
  bool reverse = false, batch_major = false;
  bool linear_before_reset = false, input_forget = false;
  float clip = 0.f;                        // 0: no clipping
  std::vector<RnnActivation> activations;  // per direction: f[, g[, h]]
  bool fast_products = false;              // the loops' matrix-vector products on oneDNN's sgemm
  bool has_bias = false, has_sequence_lens = false, has_initial_h = false, has_initial_c = false,
       has_peepholes = false;
  size_t outputs = 0;

  // Offsets (in elements) of X's step t, batch b; of Y's; of a state's (initial_h, Y_h, ...).
  int64_t x_at(int64_t t, int64_t b) const {
    return (batch_major ? b * seq + t : t * batch + b) * input;
  }
  int64_t y_at(int64_t t, int64_t d, int64_t b) const {
    return (batch_major ? (b * seq + t) * directions + d : (t * directions + d) * batch + b) *
           hidden;
  }
  int64_t state_at(int64_t d, int64_t b) const {
    return (batch_major ? b * directions + d : d * batch + b) * hidden;
  }
  // Shapes of initial_h, initial_c, Y_h and Y_c; of Y.
  Shape state_shape() const {
    return batch_major ? Shape{batch, directions, hidden} : Shape{directions, batch, hidden};
  }
  Shape y_shape() const {
    return batch_major ? Shape{batch, seq, directions, hidden}
                       : Shape{seq, directions, batch, hidden};
  }
  size_t reference_scratch_floats() const {
    // Gate pre-activations, two hidden-sized temporaries, and the h and c states of a batch.
    return static_cast<size_t>((gates + 2) * hidden + 2 * batch * hidden);
  }
};

// The (run-time or constant) operands of one run, null when absent.
struct RnnOperands {
  const float *x, *w, *r, *b, *initial_h, *initial_c, *peepholes;
  const int32_t *sequence_lens;
};

// y += m (rows x cols, row-major) * v: oneDNN's sgemm when `fast` (the loops' sequential sums
// do not vectorise: 17x slower on a CRNN head), else the plain loops.
void add_matrix_vector(bool fast, const float *m, const float *v, int64_t rows, int64_t cols,
                       float *y) {
  if (fast && rows > 0 && cols > 0 &&
      dnnl_sgemm('N', 'T', 1, rows, cols, 1.f, v, cols, m, cols, 1.f, y, rows) == dnnl_success)
    return;
  for (int64_t i = 0; i < rows; ++i) {
    const float *row = m + i * cols;
    float acc = 0.f;
    for (int64_t k = 0; k < cols; ++k) acc += row[k] * v[k];
    y[i] += acc;
  }
}

// The ONNX equations, one batch row and one step at a time.
void run_reference(const RnnSpec &s, const RnnOperands &op, float *y, float *y_h, float *y_c,
                   float *scratch) {
  int64_t h = s.hidden, gh = s.gates * h;
  float *pre = scratch, *tmp = pre + gh, *next_h = tmp + h;
  float *state_h = next_h + h, *state_c = state_h + s.batch * h;
  auto clip = [&](float v) { return s.clip > 0.f ? std::clamp(v, -s.clip, s.clip) : v; };
  if (y) std::fill(y, y + s.seq * s.directions * s.batch * h, 0.f);
  size_t per_direction = s.activations.size() / static_cast<size_t>(s.directions);
  for (int64_t d = 0; d < s.directions; ++d) {
    const float *w = op.w + d * gh * s.input, *r = op.r + d * gh * h;
    const float *wb = op.b ? op.b + d * 2 * gh : nullptr, *rb = wb ? wb + gh : nullptr;
    const float *p = op.peepholes ? op.peepholes + d * 3 * h : nullptr;
    const RnnActivation *act = &s.activations[d * per_direction];
    bool reverse = s.reverse || d == 1;
    for (int64_t b = 0; b < s.batch; ++b) {
      float *hb = state_h + b * h, *cb = state_c + b * h;
      if (op.initial_h)
        std::copy_n(op.initial_h + s.state_at(d, b), h, hb);
      else
        std::fill(hb, hb + h, 0.f);
      if (op.initial_c)
        std::copy_n(op.initial_c + s.state_at(d, b), h, cb);
      else
        std::fill(cb, cb + h, 0.f);
      int64_t length = op.sequence_lens ? op.sequence_lens[b] : s.seq;
      for (int64_t step = 0; step < length; ++step) {
        int64_t t = reverse ? length - 1 - step : step;
        const float *x = op.x + s.x_at(t, b);
        std::fill(pre, pre + gh, 0.f);
        if (wb)
          for (int64_t i = 0; i < gh; ++i) pre[i] = wb[i];
        add_matrix_vector(s.fast_products, w, x, gh, s.input, pre);
        if (s.cell == RnnCell::lstm) {
          // Gates i, o, f, c.
          add_matrix_vector(s.fast_products, r, hb, gh, h, pre);
          if (rb)
            for (int64_t i = 0; i < gh; ++i) pre[i] += rb[i];
          float *gi = pre, *go = pre + h, *gf = pre + 2 * h, *gc = pre + 3 * h;
          for (int64_t i = 0; i < h; ++i) {
            float in = act[0](clip(gi[i] + (p ? p[i] * cb[i] : 0.f)));
            float forget =
                s.input_forget ? 1.f - in : act[0](clip(gf[i] + (p ? p[2 * h + i] * cb[i] : 0.f)));
            float cell = forget * cb[i] + in * act[1](clip(gc[i]));
            float out = act[0](clip(go[i] + (p ? p[h + i] * cell : 0.f)));
            cb[i] = cell;
            next_h[i] = out * act[2](cell);
          }
        } else if (s.cell == RnnCell::gru) {
          // Gates z, r, h: z and r see R h; the hidden gate sees R_h (r . h) or, linear before
          // reset, r . (R_h h + Rb_h).
          add_matrix_vector(s.fast_products, r, hb, 2 * h, h, pre);
          if (rb)
            for (int64_t i = 0; i < 2 * h; ++i) pre[i] += rb[i];
          float *gz = pre, *gr = pre + h, *gn = pre + 2 * h;
          for (int64_t i = 0; i < 2 * h; ++i) pre[i] = act[0](clip(pre[i]));
          const float *rh = r + 2 * h * h;
          if (s.linear_before_reset) {
            for (int64_t i = 0; i < h; ++i) tmp[i] = rb ? rb[2 * h + i] : 0.f;
            add_matrix_vector(s.fast_products, rh, hb, h, h, tmp);
            for (int64_t i = 0; i < h; ++i) gn[i] += gr[i] * tmp[i];
          } else {
            for (int64_t i = 0; i < h; ++i) tmp[i] = gr[i] * hb[i];
            add_matrix_vector(s.fast_products, rh, tmp, h, h, gn);
            if (rb)
              for (int64_t i = 0; i < h; ++i) gn[i] += rb[2 * h + i];
          }
          for (int64_t i = 0; i < h; ++i)
            next_h[i] = (1.f - gz[i]) * act[1](clip(gn[i])) + gz[i] * hb[i];
        } else {
          add_matrix_vector(s.fast_products, r, hb, h, h, pre);
          for (int64_t i = 0; i < h; ++i) next_h[i] = act[0](clip(pre[i] + (rb ? rb[i] : 0.f)));
        }
        std::copy_n(next_h, h, hb);
        if (y) std::copy_n(hb, h, y + s.y_at(t, d, b));
      }
      if (y_h) std::copy_n(hb, h, y_h + s.state_at(d, b));
      if (y_c) std::copy_n(cb, h, y_c + s.state_at(d, b));
    }
  }
}

class RnnKernel : public Kernel {
 public:
  RnnKernel(RnnSpec spec, size_t input_count, std::vector<TensorPtr> constants,
            std::unique_ptr<DnnlRnn> dnnl, std::string label)
      : input_count_(input_count),
        spec_(std::move(spec)),
        constants_(std::move(constants)),
        dnnl_(std::move(dnnl)),
        label_(std::move(label)) {
    scratch_bytes = spec_.reference_scratch_floats() * sizeof(float);
    if (dnnl_) scratch_bytes = std::max(scratch_bytes, dnnl_->scratch_bytes);
    impl = dnnl_                 ? dnnl_->impl
           : spec_.fast_products ? "loops with oneDNN sgemm products"
                                 : "reference loops";
  }

  void run(ExecContext &ctx, const void *const *in, void *const *out) const override {
    auto operand = [&](size_t i) -> const void * {
      if (i < constants_.size() && constants_[i]) return constants_[i]->bytes.data();
      return i < input_count_ ? in[i] : nullptr;
    };
    RnnOperands op{static_cast<const float *>(operand(kX)),
                   static_cast<const float *>(operand(kW)),
                   static_cast<const float *>(operand(kR)),
                   static_cast<const float *>(operand(kB)),
                   static_cast<const float *>(operand(kInitialH)),
                   static_cast<const float *>(operand(kInitialC)),
                   static_cast<const float *>(operand(kPeepholes)),
                   static_cast<const int32_t *>(operand(kSequenceLens))};
    // Lengths all equal to the sequence are no lengths at all (the fast path may run).
    bool full_lengths = true;
    if (op.sequence_lens)
      for (int64_t b = 0; b < spec_.batch; ++b) {
        int32_t length = op.sequence_lens[b];
        if (length < 0 || length > spec_.seq)
          throw InvalidArgument(label_ + ": sequence_lens[" + std::to_string(b) +
                                "] = " + std::to_string(length) + " is outside [0, " +
                                std::to_string(spec_.seq) + "] (the sequence length)");
        full_lengths = full_lengths && length == spec_.seq;
      }
    if (full_lengths) op.sequence_lens = nullptr;
    float *y = spec_.outputs > kY ? static_cast<float *>(out[kY]) : nullptr;
    float *y_h = spec_.outputs > kYH ? static_cast<float *>(out[kYH]) : nullptr;
    float *y_c = spec_.outputs > kYC ? static_cast<float *>(out[kYC]) : nullptr;
    if (dnnl_ && !op.sequence_lens)
      dnnl_->run(ctx, op.x, op.initial_h, op.initial_c, y, y_h, y_c, ctx.scratch);
    else
      run_reference(spec_, op, y, y_h, y_c, static_cast<float *>(ctx.scratch));
  }

 private:
  size_t input_count_;  // the node's (later optional inputs are absent)
  RnnSpec spec_;
  std::vector<TensorPtr> constants_;  // per input: its constant value, or null
  std::unique_ptr<DnnlRnn> dnnl_;
  std::string label_;
};

// The node's input and output counts and dtypes: float32 operands, an int32 sequence_lens.
void check_rnn_inputs_and_outputs(OpContext &ctx, RnnCell cell) {
  size_t max_inputs = rnn_max_inputs(cell);
  ctx.expect_inputs(3, max_inputs);
  if (ctx.output_count() > (cell == RnnCell::lstm ? 3u : 2u))
    ctx.fail("lists " + std::to_string(ctx.output_count()) + " outputs, the op has " +
             (cell == RnnCell::lstm ? "3 (Y, Y_h, Y_c)" : "2 (Y, Y_h)"));
  for (int i : {kX, kW, kR, kB, kInitialH, kInitialC, kPeepholes})
    if (static_cast<size_t>(i) < max_inputs && ctx.has_input(i) && ctx.in_dtype(i) != DType::f32)
      ctx.unsupported(std::string("input ") + std::to_string(i) + " of dtype " +
                      dtype_name(ctx.in_dtype(i)) + " (only float32 recurrent layers run)");
  if (ctx.has_input(kSequenceLens) && ctx.in_dtype(kSequenceLens) != DType::i32)
    ctx.fail(std::string("sequence_lens must be int32, got ") +
             dtype_name(ctx.in_dtype(kSequenceLens)));
}

// The direction and layout attributes.
void read_direction_and_layout(OpContext &ctx, RnnSpec &s) {
  std::string direction = ctx.attr_s("direction", "forward");
  if (direction == "bidirectional")
    s.directions = 2;
  else if (direction == "reverse")
    s.reverse = true;
  else if (direction != "forward")
    ctx.fail("direction '" + direction + "' (expected forward, reverse or bidirectional)");
  int64_t layout = ctx.opset() >= 14 ? ctx.attr_i("layout", 0) : 0;
  if (layout != 0 && layout != 1)
    ctx.fail("layout " + std::to_string(layout) + " (expected 0 or 1)");
  s.batch_major = layout == 1;
}

// The sequence, batch, input and hidden sizes from X, R and hidden_size; W and R checked
// against them.
void read_sizes_and_check_weights(OpContext &ctx, RnnSpec &s) {
  const Shape &xs = ctx.in_shape(kX), &ws = ctx.in_shape(kW), &rs = ctx.in_shape(kR);
  if (xs.size() != 3) ctx.fail("X must be 3-D, got " + shape_str(xs));
  s.seq = s.batch_major ? xs[1] : xs[0];
  s.batch = s.batch_major ? xs[0] : xs[1];
  s.input = xs[2];
  if (ws.size() != 3 || rs.size() != 3)
    ctx.fail("W and R must be 3-D, got " + shape_str(ws) + " and " + shape_str(rs));
  s.hidden = ctx.has_attr("hidden_size") ? ctx.attr_i("hidden_size", 0) : rs[2];
  if (s.hidden <= 0 || s.hidden > (int64_t{1} << 31))
    ctx.fail("hidden_size " + std::to_string(s.hidden) + " is outside 1..2^31");
  int64_t d = s.directions, h = s.hidden, gh = s.gates * h;
  // (seq, dirs, batch, hidden) bounds every loop and buffer below, even when no output is Y
  // (an empty X may have huge dims): InvalidArgument if its element count overflows.
  checked_element_count({s.seq, d, s.batch, h}, ctx.where() + " (its Y)");
  if (ws != Shape{d, gh, s.input})
    ctx.fail("W has shape " + shape_str(ws) + ", expected " + shape_str({d, gh, s.input}) +
             " (directions, " + std::to_string(s.gates) + " gates x hidden_size " +
             std::to_string(h) + ", input size)");
  if (rs != Shape{d, gh, h})
    ctx.fail("R has shape " + shape_str(rs) + ", expected " + shape_str({d, gh, h}) +
             " (directions, " + std::to_string(s.gates) + " gates x hidden_size " +
             std::to_string(h) + ", hidden_size)");
}

// Which optional operands the node has (B, sequence_lens, initial_h; LSTM's initial_c and P),
// each checked against the shape ONNX gives it.
void check_optional_operands(OpContext &ctx, RnnSpec &s) {
  auto expect_shape = [&](int i, const char *name, const Shape &expected) {
    if (!ctx.has_input(i)) return false;
    if (ctx.in_shape(i) != expected)
      ctx.fail(std::string(name) + " has shape " + shape_str(ctx.in_shape(i)) + ", expected " +
               shape_str(expected));
    return true;
  };
  int64_t d = s.directions, h = s.hidden;
  s.has_bias = expect_shape(kB, "B", {d, 2 * s.gates * h});
  s.has_sequence_lens = expect_shape(kSequenceLens, "sequence_lens", {s.batch});
  s.has_initial_h = expect_shape(kInitialH, "initial_h", s.state_shape());
  if (s.cell == RnnCell::lstm) {
    s.has_initial_c = expect_shape(kInitialC, "initial_c", s.state_shape());
    s.has_peepholes = expect_shape(kPeepholes, "P", {d, 3 * h});
  }
}

// clip, the cell's own flag (LSTM's input_forget, GRU's linear_before_reset) and the
// activations with the cell's defaults.
void read_cell_attributes(OpContext &ctx, RnnSpec &s) {
  s.clip = ctx.has_attr("clip") ? ctx.attr_f("clip", 0.f) : 0.f;
  if (ctx.has_attr("clip") && !(s.clip > 0.f))
    ctx.fail("clip " + std::to_string(s.clip) + " is not a positive threshold");
  if (s.cell == RnnCell::lstm) {
    s.input_forget = ctx.attr_i("input_forget", 0) != 0;
    s.activations = parse_activations(ctx, {"Sigmoid", "Tanh", "Tanh"}, s.directions);
  } else if (s.cell == RnnCell::gru) {
    s.linear_before_reset = ctx.attr_i("linear_before_reset", 0) != 0;
    s.activations = parse_activations(ctx, {"Sigmoid", "Tanh"}, s.directions);
  } else {
    s.activations = parse_activations(ctx, {"Tanh"}, s.directions);
  }
}

// A constant sequence_lens is checked now, whatever kernel runs: false when one of its lengths
// stops short of the sequence. A run-time sequence_lens is checked by each run.
bool constant_lengths_are_full(OpContext &ctx, const RnnSpec &s) {
  bool full_lengths = true;
  if (const Tensor *lens = ctx.constant(kSequenceLens))
    for (int64_t b = 0; b < s.batch; ++b) {
      int64_t length = lens->as_int(b);
      if (length < 0 || length > s.seq)
        ctx.fail("sequence_lens[" + std::to_string(b) + "] = " + std::to_string(length) +
                 " is outside [0, " + std::to_string(s.seq) + "] (the sequence length)");
      full_lengths = full_lengths && length == s.seq;
    }
  return full_lengths;
}

// oneDNN's cells are ONNX's with the default activations, no clip and no coupled gates;
// its weights are reordered once at compile time, so W, R, B and P must be constants.
bool dnnl_expresses(OpContext &ctx, const RnnSpec &s, bool full_lengths) {
  using Kind = RnnActivation::Kind;
  auto all_default = [&](std::initializer_list<Kind> kinds) {
    size_t k = 0;
    for (const RnnActivation &a : s.activations)
      if (a.kind != kinds.begin()[k++ % kinds.size()]) return false;
    return true;
  };
  bool rnn_uniform = s.cell == RnnCell::rnn &&
                     (s.directions == 1 || s.activations[0].kind == s.activations[1].kind);
  Kind rnn_kind = s.activations[0].kind;
  return s.clip == 0.f && !s.input_forget && full_lengths && s.seq > 0 && s.batch > 0 &&
         s.input > 0 && ctx.constant(kW) && ctx.constant(kR) && (!s.has_bias || ctx.constant(kB)) &&
         (!s.has_peepholes || ctx.constant(kPeepholes)) &&
         (s.cell == RnnCell::lstm ? all_default({Kind::sigmoid, Kind::tanh, Kind::tanh})
          : s.cell == RnnCell::gru
              ? all_default({Kind::sigmoid, Kind::tanh})
              : rnn_uniform && (rnn_kind == Kind::tanh || rnn_kind == Kind::relu ||
                                rnn_kind == Kind::sigmoid));
}

// oneDNN's primitive for a layer dnnl_expresses(), its weights reordered from the constants.
std::unique_ptr<DnnlRnn> make_dnnl_kernel(OpContext &ctx, const RnnSpec &s) {
  using Kind = RnnActivation::Kind;
  Kind rnn_kind = s.activations[0].kind;
  DnnlRnnParams p;
  p.cell = s.cell;
  p.activation = rnn_kind == Kind::relu      ? RnnActivationKind::relu
                 : rnn_kind == Kind::sigmoid ? RnnActivationKind::sigmoid
                                             : RnnActivationKind::tanh;
  p.linear_before_reset = s.linear_before_reset;
  p.seq = s.seq;
  p.batch = s.batch;
  p.input = s.input;
  p.hidden = s.hidden;
  p.directions = s.directions;
  p.reverse = s.reverse;
  p.batch_major = s.batch_major;
  p.has_initial_h = s.has_initial_h;
  p.has_initial_c = s.has_initial_c;
  p.has_peepholes = s.has_peepholes;
  p.has_y = s.outputs > kY;
  p.has_y_h = s.outputs > kYH;
  p.has_y_c = s.outputs > kYC;
  auto data = [&](int i) { return ctx.has_input(i) ? ctx.constant(i)->data<float>() : nullptr; };
  return make_dnnl_rnn(p, data(kW), data(kR), data(kB), data(kPeepholes));
}

// In double: steps x rows (bounded by X) times the weights (bounded by W and R) may pass
// int64, where the product would be undefined; saturated at UINT64_MAX.
uint64_t rnn_macs(const RnnSpec &s) {
  double macs = static_cast<double>(s.seq) * static_cast<double>(s.directions * s.batch) *
                static_cast<double>(s.gates * s.hidden) * static_cast<double>(s.input + s.hidden);
  return macs < 1.8e19 ? static_cast<uint64_t>(macs) : UINT64_MAX;
}

std::unique_ptr<Kernel> compile_rnn(OpContext &ctx, RnnCell cell) {
  check_rnn_inputs_and_outputs(ctx, cell);
  RnnSpec s;
  s.cell = cell;
  s.gates = cell == RnnCell::lstm ? 4 : cell == RnnCell::gru ? 3 : 1;
  s.outputs = ctx.output_count();
  read_direction_and_layout(ctx, s);
  read_sizes_and_check_weights(ctx, s);
  check_optional_operands(ctx, s);
  read_cell_attributes(ctx, s);
  if (s.outputs > kY) ctx.set_output(kY, DType::f32, s.y_shape());
  if (s.outputs > kYH) ctx.set_output(kYH, DType::f32, s.state_shape());
  if (s.outputs > kYC) ctx.set_output(kYC, DType::f32, s.state_shape());
  if (ctx.infer_only()) return nullptr;

  size_t max_inputs = rnn_max_inputs(cell);
  std::vector<TensorPtr> constants(max_inputs);
  for (size_t i = 0; i < max_inputs; ++i)
    if (ctx.has_input(i)) constants[i] = ctx.input(i).constant;
  bool full_lengths = constant_lengths_are_full(ctx, s);
  std::unique_ptr<DnnlRnn> dnnl;
  s.fast_products = dnnl_kernels_enabled();
  if (dnnl_expresses(ctx, s, full_lengths) && dnnl_kernels_enabled())
    dnnl = make_dnnl_kernel(ctx, s);
  auto kernel = std::make_unique<RnnKernel>(s, ctx.input_count(), std::move(constants),
                                            std::move(dnnl), ctx.where());
  kernel->macs = rnn_macs(s);
  return kernel;
}

std::unique_ptr<Kernel> compile_lstm(OpContext &ctx) { return compile_rnn(ctx, RnnCell::lstm); }
std::unique_ptr<Kernel> compile_gru(OpContext &ctx) { return compile_rnn(ctx, RnnCell::gru); }
std::unique_ptr<Kernel> compile_simple_rnn(OpContext &ctx) {
  return compile_rnn(ctx, RnnCell::rnn);
}

}  // namespace

AXSTREAM_ENGINE_OP(LSTM, "LSTM", 7, 21, compile_lstm)
AXSTREAM_ENGINE_OP(GRU, "GRU", 7, 21, compile_gru)
AXSTREAM_ENGINE_OP(RNN, "RNN", 7, 21, compile_simple_rnn)

}  // namespace axstream::engine
