// The requantisation QGlobalAveragePool and QAveragePool share: an exact integer sum of a
// window's int8/uint8 values becomes the output value quantize(mean(dequantize(x))) by the float
// path's IEEE operations in its order (no FMA: a product is followed by a division), so the
// plain loops and the AVX-512 ones give the same bytes.
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

#include "intrinsics.h"

namespace axstream::engine {

struct AverageRequantisation {
  float x_scale, y_scale;
  int32_t x_zero, y_zero;
};

inline constexpr float kAverageRound = 12582912.f;  // 1.5 * 2^23: round half to even, |v| < 2^22

// One channel's integer `sum` over `taps` values, divided by `divisor` (the taps, or the
// window's padded size with count_include_pad), as the output type Y.
template <typename Y>
Y requantise_average(int64_t sum, int64_t taps, int64_t divisor, const AverageRequantisation &r) {
  constexpr float lo = std::numeric_limits<Y>::lowest(), hi = std::numeric_limits<Y>::max();
  const float zero = static_cast<float>(r.y_zero);
  float mean =
      static_cast<float>(sum - int64_t{r.x_zero} * taps) * r.x_scale / static_cast<float>(divisor);
  float v = mean / r.y_scale;
  v = v >= lo - zero ? v : lo - zero;
  v = v > hi - zero ? hi - zero : v;
  v = (v + kAverageRound) - kAverageRound;
  return static_cast<Y>(static_cast<int32_t>(v + zero));
}

#define AXSTREAM_AVX512BW __attribute__((target("avx512f,avx512bw")))

// 64 channels' int32 sums in four registers (16 channels each): add 64 more values of X.
template <typename X>
AXSTREAM_AVX512BW inline void add_to_channel_sums(__m512i sums[4], __m512i bytes) {
  const __m128i part[4] = {_mm512_castsi512_si128(bytes), _mm512_extracti32x4_epi32(bytes, 1),
                           _mm512_extracti32x4_epi32(bytes, 2),
                           _mm512_extracti32x4_epi32(bytes, 3)};
  for (int q = 0; q < 4; ++q)
    sums[q] = _mm512_add_epi32(sums[q], std::is_signed_v<X> ? _mm512_cvtepi8_epi32(part[q])
                                                            : _mm512_cvtepu8_epi32(part[q]));
}

// requantise_average on 16 channels at a time, in its operations and order.
template <typename Y>
struct AverageRequantiser512 {
  __m512 lo, hi, round, zero, x_scale, y_scale;

  AXSTREAM_AVX512BW explicit AverageRequantiser512(const AverageRequantisation &r) {
    const float z = static_cast<float>(r.y_zero);
    lo = _mm512_set1_ps(static_cast<float>(std::numeric_limits<Y>::lowest()) - z);
    hi = _mm512_set1_ps(static_cast<float>(std::numeric_limits<Y>::max()) - z);
    round = _mm512_set1_ps(kAverageRound);
    zero = _mm512_set1_ps(z);
    x_scale = _mm512_set1_ps(r.x_scale);
    y_scale = _mm512_set1_ps(r.y_scale);
  }

  // Writes the first `left` (<= 64) of the four registers' sums, each less `offset` (zero
  // point x taps) and divided by `divisor`, to out[0, left).
  AXSTREAM_AVX512BW void store(const __m512i sums[4], int64_t left, __m512i offset, __m512 divisor,
                               Y *out) const {
    const __mmask64 mask = left == 64 ? ~__mmask64{0} : (__mmask64{1} << left) - 1;
    for (int q = 0; q * 16 < left; ++q) {
      __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(sums[q], offset));
      v = _mm512_div_ps(_mm512_mul_ps(v, x_scale), divisor);
      v = _mm512_div_ps(v, y_scale);
      v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
      v = _mm512_sub_ps(_mm512_add_ps(v, round), round);
      const auto lanes = static_cast<__mmask16>(mask >> (q * 16));
      _mm512_mask_cvtepi32_storeu_epi8(out + q * 16, lanes,
                                       _mm512_cvttps_epi32(_mm512_add_ps(v, zero)));
    }
  }
};

#undef AXSTREAM_AVX512BW

}  // namespace axstream::engine
