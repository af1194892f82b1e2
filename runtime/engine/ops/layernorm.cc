// LayerNormalization (opset 17; also axstream.LayerNorm, which passes.cc makes from the
// decomposed ReduceMean-Sub-Pow-ReduceMean-Add-Sqrt-Div-[Mul]-[Add] form older exporters write)
// InstanceNormalization and MeanVarianceNormalization. Statistics in float, one pass over each
// normalised row (MVN: one pass over the input for both moments).
#include "../parallel.h"
#include "common.h"

namespace axstream::engine {
namespace {

// For each element of the normalised block (dims axis..end), its index into a parameter
// broadcast to that block, or an empty table when the parameter is absent.
std::vector<int64_t> parameter_index(OpContext &ctx, size_t input, const Shape &block) {
  if (!ctx.has_input(input)) return {};
  const Shape &ps = ctx.in_shape(input);
  if (ps.size() > block.size() || broadcast_shapes(block, ps, ctx.where()) != block)
    ctx.fail("parameter " + std::to_string(input) + " of shape " + shape_str(ps) +
             " does not broadcast to the normalised shape " + shape_str(block));
  BroadcastPlan plan({block, ps}, block);
  std::vector<int64_t> index(static_cast<size_t>(plan.count));
  plan.for_each2([&](int64_t o, int64_t, int64_t ip) { index[o] = ip; });
  return index;
}

std::unique_ptr<Kernel> compile_layer_norm(OpContext &ctx) {
  ctx.expect_inputs(2, 3);
  const Shape &xs = ctx.in_shape(0);
  int64_t axis = ctx.axis(ctx.attr_i("axis", -1), xs.size());
  float epsilon = ctx.attr_f("epsilon", 1e-5f);
  ctx.set_output(0, ctx.in_dtype(0), xs);
  Shape stats_shape = xs;
  for (size_t d = static_cast<size_t>(axis); d < xs.size(); ++d) stats_shape[d] = 1;
  for (size_t i = 1; i < ctx.output_count(); ++i) ctx.set_output(i, DType::f32, stats_shape);
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::f32 || ctx.in_dtype(1) != DType::f32)
    ctx.unsupported("LayerNormalization on non-float32 tensors");
  Shape block(xs.begin() + axis, xs.end());
  std::vector<int64_t> scale_index = parameter_index(ctx, 1, block);
  std::vector<int64_t> bias_index = parameter_index(ctx, 2, block);
  int64_t rows = product(xs, 0, static_cast<size_t>(axis)), len = product(block, 0, block.size());
  size_t outputs = ctx.output_count();
  bool has_bias = ctx.has_input(2);
  auto k = make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
    const float *x = static_cast<const float *>(in[0]);
    const float *scale = static_cast<const float *>(in[1]);
    const float *bias = has_bias ? static_cast<const float *>(in[2]) : nullptr;
    float *y = static_cast<float *>(o[0]);
    parallel_for(rows, worth_splitting(rows * len, 65536), [&](int64_t r) {
      const float *xr = x + r * len;
      float *yr = y + r * len;
      float mean = 0.f;
      for (int64_t i = 0; i < len; ++i) mean += xr[i];
      mean /= static_cast<float>(len);
      float var = 0.f;
      for (int64_t i = 0; i < len; ++i) var += (xr[i] - mean) * (xr[i] - mean);
      var /= static_cast<float>(len);
      float inv_std = 1.f / std::sqrt(var + epsilon);
      for (int64_t i = 0; i < len; ++i) {
        float v = (xr[i] - mean) * inv_std * scale[scale_index[i]];
        yr[i] = bias ? v + bias[bias_index[i]] : v;
      }
      if (outputs > 1 && o[1]) static_cast<float *>(o[1])[r] = mean;
      if (outputs > 2 && o[2]) static_cast<float *>(o[2])[r] = inv_std;
    });
  });
  k->macs = static_cast<uint64_t>(rows * len * 4);
  k->impl = "one-pass layer norm";
  return k;
}

// InstanceNormalization: per (n, c) plane, with per-channel scale and bias.
std::unique_ptr<Kernel> compile_instance_norm(OpContext &ctx) {
  ctx.expect_inputs(3, 3);
  const Shape &xs = ctx.in_shape(0);
  if (xs.size() < 3) ctx.fail("input must have spatial dims, got " + shape_str(xs));
  ctx.set_output(0, ctx.in_dtype(0), xs);
  for (size_t i = 1; i < 3; ++i)
    if (ctx.in_shape(i) != Shape{xs[1]})
      ctx.fail("parameter " + std::to_string(i) + " has shape " + shape_str(ctx.in_shape(i)) +
               ", expected (" + std::to_string(xs[1]) + ")");
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::f32) ctx.unsupported("non-float32 input");
  float epsilon = ctx.attr_f("epsilon", 1e-5f);
  int64_t channels = xs[1], planes = xs[0] * xs[1], len = product(xs, 2, xs.size());
  auto k = make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
    const float *x = static_cast<const float *>(in[0]);
    const float *scale = static_cast<const float *>(in[1]);
    const float *bias = static_cast<const float *>(in[2]);
    float *y = static_cast<float *>(o[0]);
    for (int64_t p = 0; p < planes; ++p) {
      const float *xp = x + p * len;
      float *yp = y + p * len;
      double mean = 0, var = 0;
      for (int64_t i = 0; i < len; ++i) mean += xp[i];
      mean /= static_cast<double>(len);
      for (int64_t i = 0; i < len; ++i) var += (xp[i] - mean) * (xp[i] - mean);
      var /= static_cast<double>(len);
      float mul = scale[p % channels] / static_cast<float>(std::sqrt(var + epsilon));
      float add = bias[p % channels] - static_cast<float>(mean) * mul;
      for (int64_t i = 0; i < len; ++i) yp[i] = xp[i] * mul + add;
    }
  });
  k->macs = static_cast<uint64_t>(planes * len * 3);
  return k;
}

// MeanVarianceNormalization: (x - mean) / (sqrt(E[x^2] - mean^2) + 1e-9) over `axes` (default
// N, H, W), ONNX's function body term by term; the moments accumulate in double.
std::unique_ptr<Kernel> compile_mean_variance_norm(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  const Shape &xs = ctx.in_shape(0);
  std::vector<int64_t> axes = ctx.attr_ints("axes", {0, 2, 3});
  std::vector<bool> reduced(xs.size(), false);
  for (int64_t a : axes) reduced[ctx.axis(a, xs.size())] = true;
  ctx.set_output(0, ctx.in_dtype(0), xs);
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::f32)
    ctx.unsupported(std::string("dtype ") + dtype_name(ctx.in_dtype(0)));
  Shape kept(xs.size());
  for (size_t d = 0; d < xs.size(); ++d) kept[d] = reduced[d] ? 1 : xs[d];
  Shape kept_strides = strides_of(kept), walk(xs.size());
  for (size_t d = 0; d < xs.size(); ++d) walk[d] = reduced[d] ? 0 : kept_strides[d];
  BroadcastPlan plan = BroadcastPlan::strided(xs, walk);
  int64_t groups = product(kept, 0, kept.size());
  double per_group = groups ? static_cast<double>(plan.count) / static_cast<double>(groups) : 0;
  auto k = make_kernel([=](ExecContext &ec, const void *const *in, void *const *o) {
    const float *x = static_cast<const float *>(in[0]);
    float *y = static_cast<float *>(o[0]);
    double *sum = static_cast<double *>(ec.scratch), *sum_squares = sum + groups;
    std::fill(sum, sum + 2 * groups, 0.0);
    plan.for_each2([&](int64_t xi, int64_t g, int64_t) {
      sum[g] += x[xi];
      sum_squares[g] += static_cast<double>(x[xi]) * x[xi];
    });
    for (int64_t g = 0; g < groups; ++g) {
      double mean = sum[g] / per_group;
      sum[g] = mean;
      sum_squares[g] = std::sqrt(std::max(0.0, sum_squares[g] / per_group - mean * mean)) + 1e-9;
    }
    plan.for_each2([&](int64_t xi, int64_t g, int64_t) {
      y[xi] = static_cast<float>((x[xi] - sum[g]) / sum_squares[g]);
    });
  });
  k->scratch_bytes = static_cast<size_t>(2 * groups) * sizeof(double);
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP(LayerNormalization, "LayerNormalization", 17, 17, compile_layer_norm)
AXSTREAM_ENGINE_OP_EX(AxLayerNorm, "axstream", "LayerNorm", 1, 1, compile_layer_norm, false)
AXSTREAM_ENGINE_OP(InstanceNormalization, "InstanceNormalization", 6, 17, compile_instance_norm)
AXSTREAM_ENGINE_OP(MeanVarianceNormalization, "MeanVarianceNormalization", 9, 17,
                   compile_mean_variance_norm)

}  // namespace axstream::engine
