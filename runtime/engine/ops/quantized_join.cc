#include "quantized_join.h"

#include <cmath>
#include <limits>
#include <type_traits>

#include "../cpu_features.h"
#include "../op_registry.h"
#include "intrinsics.h"

namespace axstream::engine {
namespace {

constexpr float kRound = 12582912.f;  // 1.5 * 2^23: round half to even for |v| < 2^22

// The bounds of y's type minus its zero point, and Relu's floor.
struct Bounds {
  float lo, hi, zero, floor;
};

template <typename Y>
Bounds bounds_of(const QuantizedJoin &p) {
  const float zero = static_cast<float>(p.y_zero);
  return {std::numeric_limits<Y>::lowest() - zero, std::numeric_limits<Y>::max() - zero, zero,
          p.relu ? 0.f : -INFINITY};
}

// One element, as the unfused kernels compute it: dequantise both sides, add or multiply,
// Relu, divide by the scale, clamp (NaN to the low bound, as QuantizeLinear), round half to
// even, add the zero point.
template <typename Y>
inline Y requantise(float s, float y_scale, const Bounds &b) {
  s = s > b.floor ? s : b.floor;  // as Relu: NaN to the floor
  float v = s / y_scale;
  v = v >= b.lo ? v : b.lo;
  v = v > b.hi ? b.hi : v;
  v = (v + kRound) - kRound;
  return static_cast<Y>(static_cast<int32_t>(v + b.zero));
}

template <typename Q>
inline float dequantise(Q q, int32_t zero, float scale) {
  return static_cast<float>(static_cast<int32_t>(q) - zero) * scale;
}

#define AXSTREAM_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl"), optimize("fp-contract=off")))

// 16 int8/uint8 values (the lanes of `mask`) minus a zero point, as floats.
template <typename Q>
AXSTREAM_AVX512 inline __m512 load16(const Q *p, __m512i zero, __mmask16 mask) {
  __m128i bytes = _mm_maskz_loadu_epi8(mask, p);
  __m512i v = std::is_signed_v<Q> ? _mm512_cvtepi8_epi32(bytes) : _mm512_cvtepu8_epi32(bytes);
  return _mm512_cvtepi32_ps(_mm512_sub_epi32(v, zero));
}

// The vector form of requantise() above: the same IEEE operations in the same order, so the
// results are bit-identical (fp-contract=off keeps a * sa + b * sb from becoming an FMA, and
// max_ps(v, bound) returns the bound where v is NaN, as the scalar comparisons do).
struct Lanes {
  __m512 y_scale, floor, lo, hi, round, zero;
};

AXSTREAM_AVX512 inline Lanes lanes_of(float y_scale, const Bounds &b) {
  return {_mm512_set1_ps(y_scale), _mm512_set1_ps(b.floor), _mm512_set1_ps(b.lo),
          _mm512_set1_ps(b.hi),    _mm512_set1_ps(kRound),  _mm512_set1_ps(b.zero)};
}

template <typename Y>
AXSTREAM_AVX512 inline void store16(Y *y, __m512 s, const Lanes &l, __mmask16 mask) {
  s = _mm512_max_ps(s, l.floor);  // the second operand where s is NaN, as in requantise()
  __m512 v = _mm512_div_ps(s, l.y_scale);
  v = _mm512_min_ps(_mm512_max_ps(v, l.lo), l.hi);
  v = _mm512_sub_ps(_mm512_add_ps(v, l.round), l.round);
  __m512i q = _mm512_cvttps_epi32(_mm512_add_ps(v, l.zero));
  _mm_mask_storeu_epi8(y, mask, _mm512_cvtepi32_epi8(q));
}

// kOp: what joins the two dequantised sides (QuantizedJoin's mul / fused_multiply_add_b).
enum class JoinOp { add, mul, fused_multiply_add_b };

template <JoinOp kOp, typename A, typename B, typename Y>
AXSTREAM_AVX512 void join_avx512(const A *a, const B *b, Y *y, int64_t count,
                                 const QuantizedJoin &p, const Bounds &bounds) {
  const Lanes l = lanes_of(p.y_scale, bounds);
  const __m512i za = _mm512_set1_epi32(p.a_zero), zb = _mm512_set1_epi32(p.b_zero);
  const __m512 sa = _mm512_set1_ps(p.a_scale), sb = _mm512_set1_ps(p.b_scale);
  for (int64_t i = 0; i < count; i += 16) {
    const __mmask16 mask = count - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (count - i)) - 1);
    __m512 fa = _mm512_mul_ps(load16(a + i, za, mask), sa);
    __m512 s;
    if constexpr (kOp == JoinOp::fused_multiply_add_b) {
      s = _mm512_fmadd_ps(load16(b + i, zb, mask), sb, fa);
    } else {
      __m512 fb = _mm512_mul_ps(load16(b + i, zb, mask), sb);
      s = kOp == JoinOp::mul ? _mm512_mul_ps(fa, fb) : _mm512_add_ps(fa, fb);
    }
    store16(y + i, s, l, mask);
  }
}

// The element loop of quantized_join() without AVX-512. The fused multiply-add variant is
// compiled a second time for CPUs with FMA (one instruction instead of a call, and vectorised);
// contraction stays off so that no other a * s + b becomes an FMA.
template <JoinOp kOp, typename A, typename B, typename Y>
inline void join_loop(const A *a, const B *b, Y *y, int64_t count, const QuantizedJoin &p,
                      const Bounds &bounds) {
  for (int64_t i = 0; i < count; ++i) {
    float fa = dequantise(a[i], p.a_zero, p.a_scale);
    float s;
    if constexpr (kOp == JoinOp::fused_multiply_add_b) {
      s = std::fma(static_cast<float>(static_cast<int32_t>(b[i]) - p.b_zero), p.b_scale, fa);
    } else {
      float fb = dequantise(b[i], p.b_zero, p.b_scale);
      s = kOp == JoinOp::mul ? fa * fb : fa + fb;
    }
    y[i] = requantise<Y>(s, p.y_scale, bounds);
  }
}

template <typename A, typename B, typename Y>
__attribute__((target("avx2,fma"), optimize("fp-contract=off"))) void join_fma_avx2(
    const A *a, const B *b, Y *y, int64_t count, const QuantizedJoin &p, const Bounds &bounds) {
  join_loop<JoinOp::fused_multiply_add_b>(a, b, y, count, p, bounds);
}

template <bool kMul, typename A, typename Y>
AXSTREAM_AVX512 void join_channels_avx512(const A *a, const float *b_real, Y *y, int64_t pixels,
                                          int64_t channels, const QuantizedJoin &p,
                                          const Bounds &bounds) {
  const Lanes l = lanes_of(p.y_scale, bounds);
  const __m512i za = _mm512_set1_epi32(p.a_zero);
  const __m512 sa = _mm512_set1_ps(p.a_scale);
  for (int64_t px = 0; px < pixels; ++px) {
    const A *ap = a + px * channels;
    Y *yp = y + px * channels;
    for (int64_t c = 0; c < channels; c += 16) {
      const __mmask16 mask =
          channels - c >= 16 ? __mmask16(0xffff) : __mmask16((1u << (channels - c)) - 1);
      __m512 fa = _mm512_mul_ps(load16(ap + c, za, mask), sa);
      __m512 fb = _mm512_maskz_loadu_ps(mask, b_real + c);
      store16(yp + c, kMul ? _mm512_mul_ps(fa, fb) : _mm512_add_ps(fa, fb), l, mask);
    }
  }
}

}  // namespace

template <typename A, typename B, typename Y>
void quantized_join(const A *a, const B *b, Y *y, int64_t count, const QuantizedJoin &p) {
  const Bounds bounds = bounds_of<Y>(p);
  const QuantizedJoin local = p;  // y's stores cannot alias it, so the loops vectorise
  const JoinOp op = p.mul                    ? JoinOp::mul
                    : p.fused_multiply_add_b ? JoinOp::fused_multiply_add_b
                                             : JoinOp::add;
  if (cpu_allows_avx512bw()) {
    if (op == JoinOp::mul)
      join_avx512<JoinOp::mul>(a, b, y, count, local, bounds);
    else if (op == JoinOp::fused_multiply_add_b)
      join_avx512<JoinOp::fused_multiply_add_b>(a, b, y, count, local, bounds);
    else
      join_avx512<JoinOp::add>(a, b, y, count, local, bounds);
  } else if (op == JoinOp::mul) {
    join_loop<JoinOp::mul>(a, b, y, count, local, bounds);
  } else if (op == JoinOp::add) {
    join_loop<JoinOp::add>(a, b, y, count, local, bounds);
  } else if (cpu_allows_avx2_fma()) {
    join_fma_avx2(a, b, y, count, local, bounds);
  } else {
    join_loop<JoinOp::fused_multiply_add_b>(a, b, y, count, local, bounds);
  }
}

template <typename A, typename Y>
void quantized_join_channels(const A *a, const float *b_real, Y *y, int64_t pixels,
                             int64_t channels, const QuantizedJoin &p) {
  const Bounds bounds = bounds_of<Y>(p);
  if (cpu_allows_avx512bw()) {
    if (p.mul)
      join_channels_avx512<true>(a, b_real, y, pixels, channels, p, bounds);
    else
      join_channels_avx512<false>(a, b_real, y, pixels, channels, p, bounds);
    return;
  }
  for (int64_t px = 0; px < pixels; ++px)
    for (int64_t c = 0; c < channels; ++c) {
      int64_t i = px * channels + c;
      float fa = dequantise(a[i], p.a_zero, p.a_scale);
      y[i] = requantise<Y>(p.mul ? fa * b_real[c] : fa + b_real[c], p.y_scale, bounds);
    }
}

#define AXSTREAM_JOIN_FOR(A, B, Y) \
  template void quantized_join<A, B, Y>(const A *, const B *, Y *, int64_t, const QuantizedJoin &);
#define AXSTREAM_JOIN_FOR_Y(A, B) AXSTREAM_JOIN_FOR(A, B, int8_t) AXSTREAM_JOIN_FOR(A, B, uint8_t)
AXSTREAM_JOIN_FOR_Y(int8_t, int8_t)
AXSTREAM_JOIN_FOR_Y(int8_t, uint8_t)
AXSTREAM_JOIN_FOR_Y(uint8_t, int8_t)
AXSTREAM_JOIN_FOR_Y(uint8_t, uint8_t)
template void quantized_join_channels<int8_t, int8_t>(const int8_t *, const float *, int8_t *,
                                                      int64_t, int64_t, const QuantizedJoin &);
template void quantized_join_channels<int8_t, uint8_t>(const int8_t *, const float *, uint8_t *,
                                                       int64_t, int64_t, const QuantizedJoin &);
template void quantized_join_channels<uint8_t, int8_t>(const uint8_t *, const float *, int8_t *,
                                                       int64_t, int64_t, const QuantizedJoin &);
template void quantized_join_channels<uint8_t, uint8_t>(const uint8_t *, const float *, uint8_t *,
                                                        int64_t, int64_t, const QuantizedJoin &);

QuantizedJoin quantized_join_params(OpContext &ctx) {
  QuantizedJoin p;
  p.a_scale = ctx.scalar_scale(kJoinAScale, "a_scale");
  p.b_scale = ctx.scalar_scale(kJoinBScale, "b_scale");
  p.y_scale = ctx.scalar_scale(kJoinYScale, "y_scale");
  p.a_zero = ctx.zero_point_or_zero(kJoinAZero, "a_zero_point");
  p.b_zero = ctx.zero_point_or_zero(kJoinBZero, "b_zero_point");
  p.y_zero = ctx.zero_point_or_zero(kJoinYZero, "y_zero_point");
  p.relu = ctx.attr_i("_relu", 0) != 0;
  return p;
}

}  // namespace axstream::engine
