// BatchNormalization in inference mode (running statistics), channel axis 1.
#include "common.h"

namespace axstream::engine {
namespace {

std::unique_ptr<Kernel> compile_batchnorm(OpContext &ctx) {
  ctx.expect_inputs(5, 5);
  if (ctx.output_count() > 1 || ctx.attr_i("training_mode", 0) != 0)
    ctx.unsupported("training-mode BatchNormalization (extra outputs)");
  const Shape &in = ctx.in_shape(0);
  if (in.size() < 2) ctx.fail("input must have a channel axis, got " + shape_str(in));
  ctx.set_output(0, DType::f32, in);
  for (size_t i = 1; i < 5; ++i)
    if (ctx.in_shape(i) != Shape{in[1]})
      ctx.fail("parameter " + std::to_string(i) + " has shape " + shape_str(ctx.in_shape(i)) +
               ", expected (" + std::to_string(in[1]) + ")");
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::f32) ctx.unsupported("non-float32 input");
  float eps = ctx.attr_f("epsilon", 1e-5f);
  int64_t n = in[0], c = in[1], inner = product(in, 2, in.size());
  auto k = make_kernel([=](ExecContext &, const void *const *i, void *const *o) {
    const float *x = static_cast<const float *>(i[0]);
    const float *scale = static_cast<const float *>(i[1]), *bias = static_cast<const float *>(i[2]);
    const float *mean = static_cast<const float *>(i[3]), *var = static_cast<const float *>(i[4]);
    float *y = static_cast<float *>(o[0]);
    for (int64_t b = 0; b < n; ++b)
      for (int64_t ch = 0; ch < c; ++ch) {
        float mul = scale[ch] / std::sqrt(var[ch] + eps), add = bias[ch] - mean[ch] * mul;
        const float *xp = x + (b * c + ch) * inner;
        float *yp = y + (b * c + ch) * inner;
        for (int64_t j = 0; j < inner; ++j) yp[j] = xp[j] * mul + add;
      }
  });
  k->macs = static_cast<uint64_t>(n * c * inner);
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP(BatchNormalization, "BatchNormalization", 7, 17, compile_batchnorm)

}  // namespace axstream::engine
