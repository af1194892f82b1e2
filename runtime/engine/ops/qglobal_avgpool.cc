// axstream.QGlobalAveragePool: quantize(GlobalAveragePool(dequantize(x))) for a 4-D int8/uint8
// x with per-tensor parameters (made by passes.cc; the SE blocks' squeeze). The sum is exact
// in int32, so the mean differs from the float path's sequential float sum only by that sum's
// rounding: at most one output step, where a value sits on a rounding boundary. With _nhwc=1,
// x is NHWC; the (N,C,1,1) output reads the same in either layout.
// Inputs: x, x_scale, x_zero_point, y_scale, y_zero_point.
#include "../compiler.h"
#include "../cpu_features.h"
#include "average_requantise.h"
#include "common.h"
#include "intrinsics.h"

namespace axstream::engine {
namespace {

enum Slot { kX, kXScale, kXZero, kYScale, kYZero };

// NHWC on AVX-512: 64 channels a step, their int32 sums kept in four registers over all the
// pixels (the plain loop reads and writes the whole row of sums at every pixel), then
// requantised 16 channels at a time (average_requantise.h: the same bytes as the plain loop).
// |sum - zero point x size| <= 255 x size fits int32 for the 2^23 pixels allowed.
template <typename X, typename Y>
__attribute__((target("avx512f,avx512bw"))) void qglobal_average_nhwc_avx512(
    const X *x, Y *y, int64_t images, int64_t channels, int64_t size,
    const AverageRequantisation &r) {
  const AverageRequantiser512<Y> requantiser(r);
  const __m512 count_v = _mm512_set1_ps(static_cast<float>(size));
  const __m512i offset = _mm512_set1_epi32(static_cast<int32_t>(int64_t{r.x_zero} * size));
  for (int64_t n = 0; n < images; ++n) {
    const X *xn = x + n * channels * size;
    Y *yn = y + n * channels;
    for (int64_t c0 = 0; c0 < channels; c0 += 64) {
      const int64_t left = std::min<int64_t>(64, channels - c0);
      const __mmask64 mask = left == 64 ? ~__mmask64{0} : (__mmask64{1} << left) - 1;
      __m512i sums[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                         _mm512_setzero_si512()};
      for (int64_t p = 0; p < size; ++p)
        add_to_channel_sums<X>(sums, _mm512_maskz_loadu_epi8(mask, xn + p * channels + c0));
      requantiser.store(sums, left, offset, count_v, yn + c0);
    }
  }
}

template <typename X, typename Y>
void qglobal_average(const X *x, Y *y, int64_t images, int64_t channels, int64_t size, bool nhwc,
                     const AverageRequantisation &r, int32_t *sums) {
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
    for (int64_t c = 0; c < channels; ++c)
      y[n * channels + c] = requantise_average<Y>(sums[c], size, size, r);
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
  if (!is_int8_or_uint8(x_type) || !is_int8_or_uint8(y_type))
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
  // AXSTREAM_ENGINE_VECTOR_GLOBAL_POOL=0 keeps the plain loop (the same bytes), for comparing.
  const bool avx512 =
      nhwc && cpu_allows_avx512bw() && setting_not_zero("AXSTREAM_ENGINE_VECTOR_GLOBAL_POOL");
  const AverageRequantisation r{x_scale, y_scale, x_zero, y_zero};
  auto k = make_kernel([=](ExecContext &ec, const void *const *in, void *const *o) {
    auto *sums = static_cast<int32_t *>(ec.scratch);
    dispatch_dtype(x_type, [&](auto x_t) {
      using X = decltype(x_t);
      if constexpr (std::is_same_v<X, int8_t> || std::is_same_v<X, uint8_t>) {
        const X *x = static_cast<const X *>(in[kX]);
        if (avx512 && y_type == DType::i8)
          qglobal_average_nhwc_avx512(x, static_cast<int8_t *>(o[0]), images, channels, size, r);
        else if (avx512)
          qglobal_average_nhwc_avx512(x, static_cast<uint8_t *>(o[0]), images, channels, size, r);
        else if (y_type == DType::i8)
          qglobal_average(x, static_cast<int8_t *>(o[0]), images, channels, size, nhwc, r, sums);
        else
          qglobal_average(x, static_cast<uint8_t *>(o[0]), images, channels, size, nhwc, r, sums);
      }
    });
  });
  k->scratch_bytes = static_cast<size_t>(channels) * sizeof(int32_t);
  k->macs = static_cast<uint64_t>(images * channels * size);
  k->impl = avx512 ? "int32 sums nhwc, avx512" : nhwc ? "int32 sums nhwc" : "int32 sums";
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP_EX(AxQGlobalAveragePool, "axstream", "QGlobalAveragePool", 1, 1,
                      compile_qglobal_average_pool, false)

}  // namespace axstream::engine
