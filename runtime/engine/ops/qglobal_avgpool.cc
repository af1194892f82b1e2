// axstream.QGlobalAveragePool: quantize(GlobalAveragePool(dequantize(x))) for a 4-D int8/uint8
// x with per-tensor parameters (made by passes.cc; the SE blocks' squeeze). The sum is exact
// in int32, so the mean differs from the float path's sequential float sum only by that sum's
// rounding: at most one output step, where a value sits on a rounding boundary. With _nhwc=1,
// x is NHWC; the (N,C,1,1) output reads the same in either layout.
// Inputs: x, x_scale, x_zero_point, y_scale, y_zero_point.
#include "common.h"

namespace axstream::engine {
namespace {

enum Slot { kX, kXScale, kXZero, kYScale, kYZero };

template <typename X, typename Y>
void qglobal_average(const X *x, Y *y, int64_t images, int64_t channels, int64_t size, bool nhwc,
                     float x_scale, int32_t x_zero, float y_scale, int32_t y_zero, int32_t *sums) {
  constexpr float lo = std::numeric_limits<Y>::lowest(), hi = std::numeric_limits<Y>::max();
  constexpr float kRound = 12582912.f;  // 1.5 * 2^23: round half to even for |v| < 2^22
  const float zero = static_cast<float>(y_zero);
  for (int64_t n = 0; n < images; ++n) {
    const X *xn = x + n * channels * size;
    if (nhwc) {
      std::fill(sums, sums + channels, 0);
      for (int64_t s = 0; s < size; ++s)
        for (int64_t c = 0; c < channels; ++c) sums[c] += xn[s * channels + c];
    } else {
      for (int64_t c = 0; c < channels; ++c) {
        int32_t sum = 0;
        for (int64_t s = 0; s < size; ++s) sum += xn[c * size + s];
        sums[c] = sum;
      }
    }
    for (int64_t c = 0; c < channels; ++c) {
      float mean = static_cast<float>(static_cast<int64_t>(sums[c]) - int64_t{x_zero} * size) *
                   x_scale / static_cast<float>(size);
      float v = mean / y_scale;
      v = v >= lo - zero ? v : lo - zero;
      v = v > hi - zero ? hi - zero : v;
      v = (v + kRound) - kRound;
      y[n * channels + c] = static_cast<Y>(static_cast<int32_t>(v + zero));
    }
  }
}

std::unique_ptr<Kernel> compile_qglobal_average_pool(OpContext &ctx) {
  ctx.expect_inputs(4, 5);
  const Shape &xs = ctx.in_shape(kX);
  if (xs.size() != 4) ctx.fail("expected a 4-D input, got " + shape_str(xs));
  DType y_type = ctx.has_input(kYZero) ? ctx.in_dtype(kYZero) : DType::u8;
  ctx.set_output(0, y_type, {xs[0], xs[1], 1, 1});
  if (ctx.infer_only()) return nullptr;
  DType x_type = ctx.in_dtype(kX);
  auto is_q8 = [](DType t) { return t == DType::i8 || t == DType::u8; };
  if (!is_q8(x_type) || !is_q8(y_type))
    ctx.unsupported("QGlobalAveragePool needs int8/uint8 tensors");
  int64_t size = xs[2] * xs[3];
  // int32 sums of up to 2^23 values of |x| <= 255 cannot overflow.
  if (size > (int64_t{1} << 23)) ctx.unsupported("planes over 2^23 elements");
  auto scale = [&](int slot, const char *what) { return ctx.scalar_scale(slot, what); };
  auto zero = [&](int slot, const char *what) { return ctx.zero_point_or_zero(slot, what); };
  float x_scale = scale(kXScale, "x_scale"), y_scale = scale(kYScale, "y_scale");
  int32_t x_zero = zero(kXZero, "x_zero_point"), y_zero = zero(kYZero, "y_zero_point");
  bool nhwc = ctx.attr_i("_nhwc", 0) != 0;
  int64_t images = xs[0], channels = xs[1];
  auto k = make_kernel([=](ExecContext &ec, const void *const *in, void *const *o) {
    auto *sums = static_cast<int32_t *>(ec.scratch);
    dispatch_dtype(x_type, [&](auto x_t) {
      using X = decltype(x_t);
      if constexpr (std::is_same_v<X, int8_t> || std::is_same_v<X, uint8_t>) {
        const X *x = static_cast<const X *>(in[kX]);
        if (y_type == DType::i8)
          qglobal_average(x, static_cast<int8_t *>(o[0]), images, channels, size, nhwc, x_scale,
                          x_zero, y_scale, y_zero, sums);
        else
          qglobal_average(x, static_cast<uint8_t *>(o[0]), images, channels, size, nhwc, x_scale,
                          x_zero, y_scale, y_zero, sums);
      }
    });
  });
  k->scratch_bytes = static_cast<size_t>(channels) * sizeof(int32_t);
  k->macs = static_cast<uint64_t>(images * channels * size);
  k->impl = nhwc ? "int32 sums nhwc" : "int32 sums";
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP_EX(AxQGlobalAveragePool, "axstream", "QGlobalAveragePool", 1, 1,
                      compile_qglobal_average_pool, false)

}  // namespace axstream::engine
