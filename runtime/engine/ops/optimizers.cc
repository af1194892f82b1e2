// The training-preview optimizer steps (domain ai.onnx.preview.training, opset 1): Adagrad,
// Momentum (standard and Nesterov) and Adam over any number of float32 tensors, with the
// learning rate R and the step count T read at run time. Each is a fixed formula of its inputs.
#include "common.h"

namespace axstream::engine {
namespace {

enum class Optimizer { adagrad, momentum, adam };

struct OptimizerStep {
  Optimizer kind = Optimizer::adagrad;
  bool nesterov = false;
  float norm_coefficient = 0.f, norm_coefficient_post = 0.f, epsilon = 0.f, decay_factor = 0.f;
  float alpha = 0.f, beta = 0.f;
  std::vector<int64_t> counts;  // elements of each optimized tensor
};

// Inputs R, T, then per optimized tensor X..., G..., and the state(s): H... (Adagrad), V...
// (Momentum), V..., H... (Adam). Outputs X_new..., then the new states in the same order.
size_t states_of(Optimizer kind) { return kind == Optimizer::adam ? 2 : 1; }

OptimizerStep plan_step(OpContext &ctx, Optimizer kind) {
  OptimizerStep s;
  s.kind = kind;
  size_t per_tensor = 2 + states_of(kind);
  size_t inputs = ctx.input_count();
  if (inputs < 2 + per_tensor || (inputs - 2) % per_tensor)
    ctx.fail(std::to_string(inputs) + " inputs, expected R, T and " + std::to_string(per_tensor) +
             " per optimized tensor");
  size_t tensors = (inputs - 2) / per_tensor;
  if (ctx.output_count() != tensors * (1 + states_of(kind)))
    ctx.fail(std::to_string(ctx.output_count()) + " outputs, expected " +
             std::to_string(tensors * (1 + states_of(kind))) + " for " + std::to_string(tensors) +
             " optimized tensor(s)");
  if (ctx.in_dtype(0) != DType::f32 || product(ctx.in_shape(0), 0, ctx.in_shape(0).size()) != 1)
    ctx.fail("R (the learning rate) must be one float");
  if (ctx.in_dtype(1) != DType::i64 || product(ctx.in_shape(1), 0, ctx.in_shape(1).size()) != 1)
    ctx.fail("T (the step count) must be one int64");
  for (size_t t = 0; t < tensors; ++t) {
    const Shape &x = ctx.in_shape(2 + t);
    for (size_t group = 1; group < per_tensor; ++group) {
      size_t i = 2 + group * tensors + t;
      if (ctx.in_shape(i) != x || ctx.in_dtype(i) != ctx.in_dtype(2 + t))
        ctx.fail("input " + std::to_string(i) + " is " + dtype_name(ctx.in_dtype(i)) +
                 shape_str(ctx.in_shape(i)) + ", expected " + dtype_name(ctx.in_dtype(2 + t)) +
                 shape_str(x) + " as its tensor X");
    }
    for (size_t group = 0; group <= states_of(kind); ++group)
      ctx.set_output(group * tensors + t, ctx.in_dtype(2 + t), x);
    if (!ctx.infer_only() && ctx.in_dtype(2 + t) != DType::f32)
      ctx.unsupported(std::string("optimized tensors of type ") + dtype_name(ctx.in_dtype(2 + t)) +
                      " (float32 only)");
    s.counts.push_back(product(x, 0, x.size()));
  }
  s.norm_coefficient = ctx.attr_f("norm_coefficient", 0.f);
  if (kind == Optimizer::adagrad) {
    s.epsilon = ctx.attr_f("epsilon", 1e-6f);
    s.decay_factor = ctx.attr_f("decay_factor", 0.f);
  } else if (kind == Optimizer::momentum) {
    for (const char *name : {"alpha", "beta", "mode", "norm_coefficient"})
      if (!ctx.has_attr(name)) ctx.fail(std::string("attribute '") + name + "' is required");
    std::string mode = ctx.attr_s("mode", "");
    if (mode != "standard" && mode != "nesterov")
      ctx.fail("mode '" + mode + "' is not one of standard, nesterov");
    s.nesterov = mode == "nesterov";
    s.alpha = ctx.attr_f("alpha", 0.f);
    s.beta = ctx.attr_f("beta", 0.f);
  } else {
    s.alpha = ctx.attr_f("alpha", 0.9f);
    s.beta = ctx.attr_f("beta", 0.999f);
    s.epsilon = ctx.attr_f("epsilon", 1e-6f);
    s.norm_coefficient_post = ctx.attr_f("norm_coefficient_post", 0.f);
  }
  return s;
}

// One step over tensor t: each element's update is ONNX's formula for this optimizer, in double.
void step_tensor(const OptimizerStep &s, double rate, int64_t step, size_t t, const void *const *in,
                 void *const *out) {
  size_t n = s.counts.size();
  const float *x = static_cast<const float *>(in[2 + t]);
  const float *g = static_cast<const float *>(in[2 + n + t]);
  const float *state = static_cast<const float *>(in[2 + 2 * n + t]);
  float *x_new = static_cast<float *>(out[t]);
  float *state_new = static_cast<float *>(out[n + t]);
  const double nc = s.norm_coefficient, eps = s.epsilon, alpha = s.alpha, beta = s.beta;
  const int64_t count = s.counts[t];
  if (s.kind == Optimizer::adagrad) {
    // H accumulates squared gradients; the rate decays with the step count.
    double r = rate / (1.0 + static_cast<double>(step) * s.decay_factor);
    for (int64_t i = 0; i < count; ++i) {
      double gr = nc * x[i] + g[i], h = state[i] + gr * gr;
      state_new[i] = static_cast<float>(h);
      x_new[i] = static_cast<float>(x[i] - r * gr / (std::sqrt(h) + eps));
    }
  } else if (s.kind == Optimizer::momentum) {
    // The gradient's coefficient is 1 at the first step (T = 0).
    double beta_adjusted = step > 0 ? beta : 1.0;
    for (int64_t i = 0; i < count; ++i) {
      double gr = nc * x[i] + g[i], v = alpha * state[i] + beta_adjusted * gr;
      state_new[i] = static_cast<float>(v);
      x_new[i] = static_cast<float>(x[i] - rate * (s.nesterov ? gr + alpha * v : v));
    }
  } else {
    // Bias-corrected rate from the second step on (T > 0).
    double r = step > 0 ? rate * std::sqrt(1.0 - std::pow(beta, static_cast<double>(step))) /
                              (1.0 - std::pow(alpha, static_cast<double>(step)))
                        : rate;
    const float *h_in = static_cast<const float *>(in[2 + 3 * n + t]);
    float *h_out = static_cast<float *>(out[2 * n + t]);
    for (int64_t i = 0; i < count; ++i) {
      double gr = nc * x[i] + g[i];
      double v = alpha * state[i] + (1.0 - alpha) * gr;
      double h = beta * h_in[i] + (1.0 - beta) * gr * gr;
      state_new[i] = static_cast<float>(v);
      h_out[i] = static_cast<float>(h);
      double moved = x[i] - r * (v / (std::sqrt(h) + eps));
      x_new[i] = static_cast<float>((1.0 - s.norm_coefficient_post) * moved);
    }
  }
}

template <Optimizer kind>
std::unique_ptr<Kernel> compile_optimizer(OpContext &ctx) {
  OptimizerStep s = plan_step(ctx, kind);
  if (ctx.infer_only()) return nullptr;
  auto k = make_kernel([s](ExecContext &, const void *const *in, void *const *out) {
    double rate = *static_cast<const float *>(in[0]);
    int64_t step = *static_cast<const int64_t *>(in[1]);
    for (size_t t = 0; t < s.counts.size(); ++t) step_tensor(s, rate, step, t, in, out);
  });
  for (int64_t c : s.counts) k->macs += static_cast<uint64_t>(c) * 6;
  return k;
}

constexpr const char *kTrainingDomain = "ai.onnx.preview.training";

}  // namespace

AXSTREAM_ENGINE_OP_EX(Adagrad, kTrainingDomain, "Adagrad", 1, 1,
                      compile_optimizer<Optimizer::adagrad>, false)
AXSTREAM_ENGINE_OP_EX(Momentum, kTrainingDomain, "Momentum", 1, 1,
                      compile_optimizer<Optimizer::momentum>, false)
AXSTREAM_ENGINE_OP_EX(Adam, kTrainingDomain, "Adam", 1, 1, compile_optimizer<Optimizer::adam>,
                      false)

}  // namespace axstream::engine
