// LRN (local response normalisation across channels, AlexNet/GoogLeNet/CaffeNet exports):
// y = x / (bias + alpha / size * sum of x^2 over `size` neighbouring channels)^beta.
#include "../parallel.h"
#include "common.h"

namespace axstream::engine {
namespace {

std::unique_ptr<Kernel> compile_lrn(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  const Shape &xs = ctx.in_shape(0);
  if (xs.size() < 3) ctx.fail("input must be (N, C, D1, ...), got " + shape_str(xs));
  if (!ctx.has_attr("size")) ctx.fail("attribute size is required");
  int64_t size = ctx.attr_i("size", 0);
  if (size <= 0) ctx.fail("size must be positive, got " + std::to_string(size));
  float alpha = ctx.attr_f("alpha", 1e-4f), beta = ctx.attr_f("beta", 0.75f);
  float bias = ctx.attr_f("bias", 1.f);
  ctx.set_output(0, ctx.in_dtype(0), xs);
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::f32)
    ctx.unsupported(std::string("dtype ") + dtype_name(ctx.in_dtype(0)));
  int64_t batch = xs[0], channels = xs[1], plane = product(xs, 2, xs.size());
  // The window of channel c is [c - before, c + after], clipped to the channels.
  int64_t before = (size - 1) / 2, after = size - 1 - before;
  float scale = alpha / static_cast<float>(size);
  auto k = make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
    const float *x = static_cast<const float *>(in[0]);
    float *y = static_cast<float *>(o[0]);
    parallel_for_2d(batch, channels, worth_splitting(), [&](int64_t n, int64_t c) {
      int64_t first = std::max<int64_t>(0, c - before);
      int64_t last = std::min(channels - 1, c + after);
      const float *xc = x + (n * channels + c) * plane;
      float *yc = y + (n * channels + c) * plane;
      for (int64_t p = 0; p < plane; ++p) {
        float square_sum = 0.f;
        for (int64_t j = first; j <= last; ++j) {
          float v = x[(n * channels + j) * plane + p];
          square_sum += v * v;
        }
        yc[p] = xc[p] / std::pow(bias + scale * square_sum, beta);
      }
    });
  });
  k->macs = static_cast<uint64_t>(batch * channels * plane * size);
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP(LRN, "LRN", 1, 17, compile_lrn)

}  // namespace axstream::engine
