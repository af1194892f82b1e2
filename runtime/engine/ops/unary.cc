// Element-wise activations and math functions (float32; Neg/Abs/Clip also on integers).
#include "common.h"
#include "vector_exp.h"

namespace axstream::engine {
namespace {

// A float32 elementwise op over the whole tensor: row(x, y, n) maps n values.
template <typename Row>
std::unique_ptr<Kernel> float_unary_rows(OpContext &ctx, Row row) {
  ctx.expect_inputs(1, 1);
  ctx.set_output(0, ctx.in_dtype(0), ctx.in_shape(0));
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::f32)
    ctx.unsupported(std::string("dtype ") + dtype_name(ctx.in_dtype(0)) + " (expected float32)");
  int64_t n = product(ctx.in_shape(0), 0, ctx.in_shape(0).size());
  auto k = make_kernel([n, row](ExecContext &, const void *const *in, void *const *out) {
    row(static_cast<const float *>(in[0]), static_cast<float *>(out[0]), n);
  });
  k->macs = static_cast<uint64_t>(n);
  return k;
}

template <typename F>
std::unique_ptr<Kernel> float_unary(OpContext &ctx, F f) {
  return float_unary_rows(ctx, [f](const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
  });
}

std::unique_ptr<Kernel> compile_relu(OpContext &ctx) {
  return float_unary(ctx, [](float x) { return x > 0.f ? x : 0.f; });
}
std::unique_ptr<Kernel> compile_leaky_relu(OpContext &ctx) {
  float alpha = ctx.attr_f("alpha", 0.01f);
  return float_unary(ctx, [alpha](float x) { return x >= 0.f ? x : x * alpha; });
}
std::unique_ptr<Kernel> compile_elu(OpContext &ctx) {
  float alpha = ctx.attr_f("alpha", 1.f);
  return float_unary(ctx, [alpha](float x) { return x >= 0.f ? x : alpha * (std::exp(x) - 1.f); });
}
// The vector exp's rows (vector_exp.h), std::exp where the CPU has neither AVX2 nor AVX-512.
std::unique_ptr<Kernel> compile_sigmoid(OpContext &ctx) {
  const ExpIsa isa = vector_exp_isa();
  return float_unary_rows(
      ctx, [isa](const float *x, float *y, int64_t n) { sigmoid_row(isa, x, y, n); });
}
std::unique_ptr<Kernel> compile_hard_sigmoid(OpContext &ctx) {
  float alpha = ctx.attr_f("alpha", 0.2f), beta = ctx.attr_f("beta", 0.5f);
  return float_unary(
      ctx, [alpha, beta](float x) { return std::max(0.f, std::min(1.f, alpha * x + beta)); });
}
std::unique_ptr<Kernel> compile_hard_swish(OpContext &ctx) {
  return float_unary(ctx, [](float x) { return x * std::max(0.f, std::min(1.f, x / 6.f + 0.5f)); });
}
std::unique_ptr<Kernel> compile_tanh(OpContext &ctx) {
  return float_unary(ctx, [](float x) { return std::tanh(x); });
}
std::unique_ptr<Kernel> compile_exp(OpContext &ctx) {
  return float_unary(ctx, [](float x) { return std::exp(x); });
}
std::unique_ptr<Kernel> compile_log(OpContext &ctx) {
  return float_unary(ctx, [](float x) { return std::log(x); });
}
std::unique_ptr<Kernel> compile_sqrt(OpContext &ctx) {
  return float_unary(ctx, [](float x) { return std::sqrt(x); });
}
std::unique_ptr<Kernel> compile_erf(OpContext &ctx) {
  return float_unary(ctx, [](float x) { return std::erf(x); });
}
std::unique_ptr<Kernel> compile_reciprocal(OpContext &ctx) {
  return float_unary(ctx, [](float x) { return 1.f / x; });
}
std::unique_ptr<Kernel> compile_floor(OpContext &ctx) {
  return float_unary(ctx, [](float x) { return std::floor(x); });
}
std::unique_ptr<Kernel> compile_ceil(OpContext &ctx) {
  return float_unary(ctx, [](float x) { return std::ceil(x); });
}
std::unique_ptr<Kernel> compile_softplus(OpContext &ctx) {
  return float_unary(ctx, [](float x) { return std::log1p(std::exp(x)); });
}

std::unique_ptr<Kernel> compile_softsign(OpContext &ctx) {
  return float_unary(ctx, [](float x) { return x / (1.f + std::fabs(x)); });
}
std::unique_ptr<Kernel> compile_selu(OpContext &ctx) {
  float alpha = ctx.attr_f("alpha", 1.67326319217681884765625f);
  float gamma = ctx.attr_f("gamma", 1.05070102214813232421875f);
  return float_unary(ctx, [alpha, gamma](float x) {
    return x > 0.f ? gamma * x : gamma * (alpha * std::exp(x) - alpha);
  });
}
std::unique_ptr<Kernel> compile_celu(OpContext &ctx) {
  float alpha = ctx.attr_f("alpha", 1.f);
  return float_unary(ctx, [alpha](float x) {
    return std::max(0.f, x) + std::min(0.f, alpha * (std::exp(x / alpha) - 1.f));
  });
}
std::unique_ptr<Kernel> compile_thresholded_relu(OpContext &ctx) {
  float alpha = ctx.attr_f("alpha", 1.f);
  return float_unary(ctx, [alpha](float x) { return x > alpha ? x : 0.f; });
}
std::unique_ptr<Kernel> compile_shrink(OpContext &ctx) {
  float lambd = ctx.attr_f("lambd", 0.5f), bias = ctx.attr_f("bias", 0.f);
  return float_unary(
      ctx, [lambd, bias](float x) { return x < -lambd ? x + bias : (x > lambd ? x - bias : 0.f); });
}
std::unique_ptr<Kernel> compile_round(OpContext &ctx) {
  return float_unary(ctx, [](float x) { return std::nearbyint(x); });
}
#define AXSTREAM_FLOAT_MATH(name, fn)                            \
  std::unique_ptr<Kernel> compile_##name(OpContext &ctx) {       \
    return float_unary(ctx, [](float x) { return std::fn(x); }); \
  }
AXSTREAM_FLOAT_MATH(sin, sin)
AXSTREAM_FLOAT_MATH(cos, cos)
AXSTREAM_FLOAT_MATH(tan, tan)
AXSTREAM_FLOAT_MATH(asin, asin)
AXSTREAM_FLOAT_MATH(acos, acos)
AXSTREAM_FLOAT_MATH(atan, atan)
AXSTREAM_FLOAT_MATH(sinh, sinh)
AXSTREAM_FLOAT_MATH(cosh, cosh)
AXSTREAM_FLOAT_MATH(asinh, asinh)
AXSTREAM_FLOAT_MATH(acosh, acosh)
AXSTREAM_FLOAT_MATH(atanh, atanh)
#undef AXSTREAM_FLOAT_MATH

// IsNaN / IsInf (detect_positive, detect_negative): float32 -> bool.
template <bool is_nan>
std::unique_ptr<Kernel> compile_float_test(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  ctx.set_output(0, DType::bool_, ctx.in_shape(0));
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::f32) ctx.unsupported("non-float32 input");
  bool pos = ctx.attr_i("detect_positive", 1) != 0, neg = ctx.attr_i("detect_negative", 1) != 0;
  int64_t n = product(ctx.in_shape(0), 0, ctx.in_shape(0).size());
  return make_kernel([=](ExecContext &, const void *const *in, void *const *out) {
    const float *x = static_cast<const float *>(in[0]);
    bool *y = static_cast<bool *>(out[0]);
    for (int64_t i = 0; i < n; ++i)
      y[i] =
          is_nan ? std::isnan(x[i]) : std::isinf(x[i]) && ((x[i] > 0 && pos) || (x[i] < 0 && neg));
  });
}

template <typename F>
std::unique_ptr<Kernel> numeric_unary(OpContext &ctx, F f) {
  ctx.expect_inputs(1, 1);
  DType dt = ctx.in_dtype(0);
  ctx.set_output(0, dt, ctx.in_shape(0));
  if (ctx.infer_only()) return nullptr;
  if (dt == DType::bool_ || dt == DType::f16)
    ctx.unsupported(std::string("dtype ") + dtype_name(dt));
  int64_t n = product(ctx.in_shape(0), 0, ctx.in_shape(0).size());
  return make_kernel([n, f, dt](ExecContext &, const void *const *in, void *const *out) {
    dispatch_numeric_dtype(dt, [&](auto zero) {
      using T = decltype(zero);
      const T *x = static_cast<const T *>(in[0]);
      T *y = static_cast<T *>(out[0]);
      for (int64_t i = 0; i < n; ++i) y[i] = static_cast<T>(f(x[i]));
    });
  });
}
std::unique_ptr<Kernel> compile_neg(OpContext &ctx) {
  return numeric_unary(ctx, [](auto x) { return -x; });
}
std::unique_ptr<Kernel> compile_abs(OpContext &ctx) {
  return numeric_unary(ctx, [](auto x) { return x < 0 ? -x : x; });
}

std::unique_ptr<Kernel> compile_sign(OpContext &ctx) {
  return numeric_unary(ctx, [](auto x) {
    using T = decltype(x);
    return static_cast<T>((x > T(0)) - (x < T(0)));
  });
}

std::unique_ptr<Kernel> compile_not(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  ctx.set_output(0, DType::bool_, ctx.in_shape(0));
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::bool_) ctx.fail("expected a bool input");
  int64_t n = product(ctx.in_shape(0), 0, ctx.in_shape(0).size());
  return make_kernel([n](ExecContext &, const void *const *in, void *const *out) {
    for (int64_t i = 0; i < n; ++i)
      static_cast<bool *>(out[0])[i] = !static_cast<const bool *>(in[0])[i];
  });
}

// Clip: bounds are attributes before opset 11, optional scalar inputs from 11 on.
std::unique_ptr<Kernel> compile_clip(OpContext &ctx) {
  ctx.expect_inputs(1, 3);
  DType dt = ctx.in_dtype(0);
  ctx.set_output(0, dt, ctx.in_shape(0));
  if (ctx.infer_only()) return nullptr;
  double lo = -INFINITY, hi = INFINITY;
  if (ctx.opset() < 11) {
    lo = ctx.attr_f("min", -3.402823466e38f);
    hi = ctx.attr_f("max", 3.402823466e38f);
  } else {
    if (ctx.has_input(1)) lo = ctx.require_scalar(1, "min").as_double(0);
    if (ctx.has_input(2)) hi = ctx.require_scalar(2, "max").as_double(0);
  }
  if (dt == DType::bool_ || dt == DType::f16)
    ctx.unsupported(std::string("dtype ") + dtype_name(dt));
  int64_t n = product(ctx.in_shape(0), 0, ctx.in_shape(0).size());
  return make_kernel([n, lo, hi, dt](ExecContext &, const void *const *in, void *const *out) {
    dispatch_numeric_dtype(dt, [&](auto zero) {
      using T = decltype(zero);
      const T *x = static_cast<const T *>(in[0]);
      T *y = static_cast<T *>(out[0]);
      T tlo = lo < static_cast<double>(std::numeric_limits<T>::lowest())
                  ? std::numeric_limits<T>::lowest()
                  : static_cast<T>(lo);
      T thi = hi > static_cast<double>(std::numeric_limits<T>::max())
                  ? std::numeric_limits<T>::max()
                  : static_cast<T>(hi);
      for (int64_t i = 0; i < n; ++i) y[i] = x[i] < tlo ? tlo : (x[i] > thi ? thi : x[i]);
    });
  });
}

}  // namespace

AXSTREAM_ENGINE_OP(Relu, "Relu", 6, 17, compile_relu)
AXSTREAM_ENGINE_OP(LeakyRelu, "LeakyRelu", 6, 17, compile_leaky_relu)
AXSTREAM_ENGINE_OP(Elu, "Elu", 6, 17, compile_elu)
AXSTREAM_ENGINE_OP(Sigmoid, "Sigmoid", 6, 17, compile_sigmoid)
AXSTREAM_ENGINE_OP(HardSigmoid, "HardSigmoid", 6, 17, compile_hard_sigmoid)
AXSTREAM_ENGINE_OP(HardSwish, "HardSwish", 14, 17, compile_hard_swish)
AXSTREAM_ENGINE_OP(Tanh, "Tanh", 6, 17, compile_tanh)
AXSTREAM_ENGINE_OP(Exp, "Exp", 6, 17, compile_exp)
AXSTREAM_ENGINE_OP(Log, "Log", 6, 17, compile_log)
AXSTREAM_ENGINE_OP(Sqrt, "Sqrt", 6, 17, compile_sqrt)
AXSTREAM_ENGINE_OP(Erf, "Erf", 9, 17, compile_erf)
AXSTREAM_ENGINE_OP(Reciprocal, "Reciprocal", 6, 17, compile_reciprocal)
AXSTREAM_ENGINE_OP(Floor, "Floor", 6, 17, compile_floor)
AXSTREAM_ENGINE_OP(Ceil, "Ceil", 6, 17, compile_ceil)
AXSTREAM_ENGINE_OP(Softplus, "Softplus", 1, 17, compile_softplus)
AXSTREAM_ENGINE_OP(Neg, "Neg", 6, 17, compile_neg)
AXSTREAM_ENGINE_OP(Abs, "Abs", 6, 17, compile_abs)
AXSTREAM_ENGINE_OP(Not, "Not", 1, 17, compile_not)
AXSTREAM_ENGINE_OP(Clip, "Clip", 6, 17, compile_clip)
AXSTREAM_ENGINE_OP(Softsign, "Softsign", 1, 17, compile_softsign)
AXSTREAM_ENGINE_OP(Selu, "Selu", 6, 17, compile_selu)
AXSTREAM_ENGINE_OP(Celu, "Celu", 12, 17, compile_celu)
AXSTREAM_ENGINE_OP(ThresholdedRelu, "ThresholdedRelu", 10, 17, compile_thresholded_relu)
AXSTREAM_ENGINE_OP(Shrink, "Shrink", 9, 17, compile_shrink)
AXSTREAM_ENGINE_OP(Round, "Round", 11, 17, compile_round)
AXSTREAM_ENGINE_OP(Sign, "Sign", 9, 17, compile_sign)
AXSTREAM_ENGINE_OP(Sin, "Sin", 7, 17, compile_sin)
AXSTREAM_ENGINE_OP(Cos, "Cos", 7, 17, compile_cos)
AXSTREAM_ENGINE_OP(Tan, "Tan", 7, 17, compile_tan)
AXSTREAM_ENGINE_OP(Asin, "Asin", 7, 17, compile_asin)
AXSTREAM_ENGINE_OP(Acos, "Acos", 7, 17, compile_acos)
AXSTREAM_ENGINE_OP(Atan, "Atan", 7, 17, compile_atan)
AXSTREAM_ENGINE_OP(Sinh, "Sinh", 9, 17, compile_sinh)
AXSTREAM_ENGINE_OP(Cosh, "Cosh", 9, 17, compile_cosh)
AXSTREAM_ENGINE_OP(Asinh, "Asinh", 9, 17, compile_asinh)
AXSTREAM_ENGINE_OP(Acosh, "Acosh", 9, 17, compile_acosh)
AXSTREAM_ENGINE_OP(Atanh, "Atanh", 9, 17, compile_atanh)
AXSTREAM_ENGINE_OP(IsNaN, "IsNaN", 9, 17, compile_float_test<true>)
AXSTREAM_ENGINE_OP(IsInf, "IsInf", 10, 17, compile_float_test<false>)

}  // namespace axstream::engine
