// BatchNormalization, channel axis 1: inference mode (the given statistics) and training mode
// (opset 14+: the batch's own statistics, and the updated running mean and variance).
#include "common.h"

namespace axstream::engine {
namespace {

std::unique_ptr<Kernel> compile_batchnorm(OpContext &ctx) {
  ctx.expect_inputs(5, 5);
  // Opset 14 made training mode an attribute with exactly defined outputs; before it, extra
  // outputs meant training with saved_mean/saved_var whose meaning was left to the runtime.
  bool training = ctx.opset() >= 14 && ctx.attr_i("training_mode", 0) != 0;
  if (ctx.opset() < 14 && ctx.output_count() > 1)
    ctx.unsupported(
        "training-mode BatchNormalization before opset 14 (its saved_mean and "
        "saved_var outputs are not defined exactly; opset 14+ is supported)");
  if (!training && ctx.output_count() > 1)
    ctx.fail("running_mean and running_var outputs need training_mode = 1");
  const Shape &in = ctx.in_shape(0);
  if (in.size() < 2) ctx.fail("input must have a channel axis, got " + shape_str(in));
  ctx.set_output(0, DType::f32, in);
  for (size_t i = 1; i < 5; ++i)
    if (ctx.in_shape(i) != Shape{in[1]})
      ctx.fail("parameter " + std::to_string(i) + " has shape " + shape_str(ctx.in_shape(i)) +
               ", expected (" + std::to_string(in[1]) + ")");
  size_t outputs = ctx.output_count();
  if (outputs > 3)
    ctx.fail(std::to_string(outputs) +
             " outputs, expected at most 3 (Y, running_mean, running_var)");
  for (size_t i = 1; i < outputs; ++i) ctx.set_output(i, DType::f32, Shape{in[1]});
  if (ctx.infer_only()) return nullptr;
  for (size_t i = 0; i < 5; ++i)
    if (ctx.in_dtype(i) != DType::f32)
      ctx.unsupported("input " + std::to_string(i) + " of type " + dtype_name(ctx.in_dtype(i)) +
                      " (float32 only)");
  float eps = ctx.attr_f("epsilon", 1e-5f), momentum = ctx.attr_f("momentum", 0.9f);
  int64_t n = in[0], c = in[1], inner = product(in, 2, in.size());
  auto k = make_kernel([=](ExecContext &, const void *const *i, void *const *o) {
    const float *x = static_cast<const float *>(i[0]);
    const float *scale = static_cast<const float *>(i[1]), *bias = static_cast<const float *>(i[2]);
    const float *mean = static_cast<const float *>(i[3]), *var = static_cast<const float *>(i[4]);
    float *y = static_cast<float *>(o[0]);
    for (int64_t ch = 0; ch < c; ++ch) {
      float ch_mean = mean[ch], ch_var = var[ch];
      if (training) {
        // The batch's mean and (population) variance over every axis but the channel's, in
        // two passes for accuracy.
        double sum = 0, squares = 0, count = static_cast<double>(n * inner);
        for (int64_t b = 0; b < n; ++b)
          for (int64_t j = 0; j < inner; ++j) sum += x[(b * c + ch) * inner + j];
        double batch_mean = sum / count;
        for (int64_t b = 0; b < n; ++b)
          for (int64_t j = 0; j < inner; ++j) {
            double d = x[(b * c + ch) * inner + j] - batch_mean;
            squares += d * d;
          }
        ch_mean = static_cast<float>(batch_mean);
        ch_var = static_cast<float>(squares / count);
        if (outputs > 1)
          static_cast<float *>(o[1])[ch] = mean[ch] * momentum + ch_mean * (1.f - momentum);
        if (outputs > 2)
          static_cast<float *>(o[2])[ch] = var[ch] * momentum + ch_var * (1.f - momentum);
      }
      float mul = scale[ch] / std::sqrt(ch_var + eps), add = bias[ch] - ch_mean * mul;
      for (int64_t b = 0; b < n; ++b) {
        const float *xp = x + (b * c + ch) * inner;
        float *yp = y + (b * c + ch) * inner;
        for (int64_t j = 0; j < inner; ++j) yp[j] = xp[j] * mul + add;
      }
    }
  });
  k->macs = static_cast<uint64_t>(n * c * inner * (training ? 3 : 1));
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP(BatchNormalization, "BatchNormalization", 7, 17, compile_batchnorm)

}  // namespace axstream::engine
