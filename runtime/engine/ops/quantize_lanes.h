// QuantizeLinear's and DequantizeLinear's per-tensor arithmetic on 16 float lanes (AVX-512), as
// PerTensorQuantizer and the scalar DequantizeLinear compute it: shared by the NHWC quantise
// kernels (nhwc_quantize.cc) and the matmul's fused dequantize-add-quantize rows
// (requantise_rows.cc), so every path writes the same bytes. Always inlined: a caller that adds
// to dequantize16's product must be compiled with fp-contract=off (requantise_rows.cc is), or
// the two roundings could become one fused multiply-add.
#pragma once

#include <type_traits>

#include "intrinsics.h"
#include "nhwc_quantize.h"

namespace axstream::engine {

#define AXSTREAM_QUANTIZE_LANES \
  __attribute__((target("avx512f,avx512bw,avx512vl"), always_inline)) inline

struct QuantizeLanes {
  __m512 scale, lo, hi, round, zero;
};

template <typename Q>
AXSTREAM_QUANTIZE_LANES QuantizeLanes quantize_lanes(const PerTensorQuantizer<Q> &q) {
  return {_mm512_set1_ps(q.scale), _mm512_set1_ps(q.lo_v), _mm512_set1_ps(q.hi_v),
          _mm512_set1_ps(PerTensorQuantizer<Q>::kRound), _mm512_set1_ps(q.zero)};
}

// PerTensorQuantizer::operator() on 16 lanes: max/min take their second operand where the first
// is NaN, so NaN clamps to the low bound as there; the result is an integer in Q's range.
AXSTREAM_QUANTIZE_LANES __m512i quantize16(const QuantizeLanes &l, __m512 x) {
  __m512 v = _mm512_div_ps(x, l.scale);
  v = _mm512_min_ps(_mm512_max_ps(v, l.lo), l.hi);
  v = _mm512_sub_ps(_mm512_add_ps(v, l.round), l.round);
  return _mm512_cvttps_epi32(_mm512_add_ps(v, l.zero));
}

// DequantizeLinear of 16 int8/uint8 values T: float(q - zero) * scale.
template <typename T>
AXSTREAM_QUANTIZE_LANES __m512 dequantize16(__m128i bytes, __m512i zero, __m512 scale) {
  __m512i v = std::is_signed_v<T> ? _mm512_cvtepi8_epi32(bytes) : _mm512_cvtepu8_epi32(bytes);
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(v, zero)), scale);
}

}  // namespace axstream::engine
