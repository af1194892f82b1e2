#include "requantise_rows.h"

#include <cmath>
#include <limits>
#include <type_traits>

#include "../compiler.h"
#include "../cpu_features.h"
#include "intrinsics.h"
#include "nhwc_quantize.h"
#include "no_contract.h"
#include "quantize_lanes.h"

namespace axstream::engine {
namespace {

// Where each output value comes from: an accumulator (acc * multiplier + offset), sigmoid's
// scale / (1 + e), or softmax's v * scale.
enum class Source { affine, sigmoid, scaled };

struct RowArgs {
  const int32_t *acc = nullptr;
  const float *values = nullptr;  // sigmoid's e, softmax's v
  const float *multiplier = nullptr, *offset = nullptr;
  float scale = 1.f;
};

// Every function below computes one IEEE operation per step of the scalar formula, in its
// order, under AXSTREAM_NO_CONTRACT (no_contract.h): no product and following sum fused.

template <Source kSource>
AXSTREAM_NO_CONTRACT inline float value_at(const RowArgs &a, int64_t j) {
  if constexpr (kSource == Source::affine)
    return static_cast<float>(a.acc[j]) * a.multiplier[j] + a.offset[j];
  else if constexpr (kSource == Source::sigmoid)
    return a.scale / (1.f + a.values[j]);
  else
    return a.values[j] * a.scale;
}

// The scalar form, which the vector forms reproduce bit for bit; Y is int8_t or uint8_t.
template <typename Y>
AXSTREAM_NO_CONTRACT inline Y requantised(float v, float zero) {
  constexpr float lo = std::numeric_limits<Y>::lowest(), hi = std::numeric_limits<Y>::max();
  v = std::nearbyint(v) + zero;  // round half to even in the default rounding mode
  v = v >= lo ? (v > hi ? hi : v) : lo;
  return static_cast<Y>(v);
}

template <Source kSource, typename Y>
AXSTREAM_NO_CONTRACT void row_scalar(const RowArgs &a, int64_t begin, int64_t count,
                                     int32_t zero_point, Y *y) {
  const float zero = static_cast<float>(zero_point);
  for (int64_t j = begin; j < count; ++j) y[j] = requantised<Y>(value_at<kSource>(a, j), zero);
}

#define AXSTREAM_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl"), optimize("fp-contract=off")))
#define AXSTREAM_AVX2 __attribute__((target("avx2,fma"), optimize("fp-contract=off")))

// std::nearbyint's rounding: the current rounding direction (MXCSR; round half to even unless
// a caller changed it), no inexact exception.
constexpr int kNearbyint = _MM_FROUND_CUR_DIRECTION | _MM_FROUND_NO_EXC;

template <Source kSource>
AXSTREAM_AVX512 inline __m512 values16(const RowArgs &a, int64_t j, __mmask16 mask, __m512 scale) {
  if constexpr (kSource == Source::affine) {
    const __m512 acc = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(mask, a.acc + j));
    return _mm512_add_ps(_mm512_mul_ps(acc, _mm512_maskz_loadu_ps(mask, a.multiplier + j)),
                         _mm512_maskz_loadu_ps(mask, a.offset + j));
  } else if constexpr (kSource == Source::sigmoid) {
    return _mm512_div_ps(
        scale, _mm512_add_ps(_mm512_set1_ps(1.f), _mm512_maskz_loadu_ps(mask, a.values + j)));
  } else {
    return _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, a.values + j), scale);
  }
}

// Sixteen columns at a time, the last few under a mask. max_ps(v, lo) returns lo where v is
// NaN (its second operand), as the scalar comparison does; the clamped value is an integer in
// Y's range, so truncating it to int32 and then to bytes is exact.
template <Source kSource, typename Y>
AXSTREAM_AVX512 void row_avx512(const RowArgs &a, int64_t count, int32_t zero_point, Y *y) {
  const __m512 lo = _mm512_set1_ps(std::numeric_limits<Y>::lowest());
  const __m512 hi = _mm512_set1_ps(std::numeric_limits<Y>::max());
  const __m512 zero = _mm512_set1_ps(static_cast<float>(zero_point));
  const __m512 scale = _mm512_set1_ps(a.scale);
  for (int64_t j = 0; j < count; j += 16) {
    const __mmask16 mask = count - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (count - j)) - 1);
    __m512 v = values16<kSource>(a, j, mask, scale);
    v = _mm512_add_ps(_mm512_roundscale_ps(v, kNearbyint), zero);
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    _mm_mask_storeu_epi8(y + j, mask, _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(v)));
  }
}

template <Source kSource>
AXSTREAM_AVX2 inline __m256 values8(const RowArgs &a, int64_t j, __m256 scale) {
  if constexpr (kSource == Source::affine) {
    const __m256 acc =
        _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(a.acc + j)));
    return _mm256_add_ps(_mm256_mul_ps(acc, _mm256_loadu_ps(a.multiplier + j)),
                         _mm256_loadu_ps(a.offset + j));
  } else if constexpr (kSource == Source::sigmoid) {
    return _mm256_div_ps(scale, _mm256_add_ps(_mm256_set1_ps(1.f), _mm256_loadu_ps(a.values + j)));
  } else {
    return _mm256_mul_ps(_mm256_loadu_ps(a.values + j), scale);
  }
}

// Eight columns at a time, the rest by the scalar loop.
template <Source kSource, typename Y>
AXSTREAM_AVX2 void row_avx2(const RowArgs &a, int64_t count, int32_t zero_point, Y *y) {
  const __m256 lo = _mm256_set1_ps(std::numeric_limits<Y>::lowest());
  const __m256 hi = _mm256_set1_ps(std::numeric_limits<Y>::max());
  const __m256 zero = _mm256_set1_ps(static_cast<float>(zero_point));
  const __m256 scale = _mm256_set1_ps(a.scale);
  int64_t j = 0;
  for (; j + 8 <= count; j += 8) {
    __m256 v = values8<kSource>(a, j, scale);
    v = _mm256_add_ps(_mm256_round_ps(v, kNearbyint), zero);
    v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
    const __m256i q = _mm256_cvttps_epi32(v);
    // int32 -> int16 (exact: within Y's range) -> int8/uint8 (exact too), the low 8 bytes.
    const __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    const __m128i q8 = std::is_signed_v<Y> ? _mm_packs_epi16(q16, q16) : _mm_packus_epi16(q16, q16);
    _mm_storel_epi64(reinterpret_cast<__m128i *>(y + j), q8);
  }
  row_scalar<kSource>(a, j, count, zero_point, y);
}

template <Source kSource, typename Y>
void row(RowIsa isa, const RowArgs &a, int64_t count, int32_t zero_point, Y *y) {
  if (isa == RowIsa::avx512)
    row_avx512<kSource>(a, count, zero_point, y);
  else if (isa == RowIsa::avx2)
    row_avx2<kSource>(a, count, zero_point, y);
  else
    row_scalar<kSource>(a, 0, count, zero_point, y);
}

template <Source kSource>
void row(RowIsa isa, const RowArgs &a, int64_t count, int32_t zero_point, DType yt, void *y) {
  if (yt == DType::i8)
    row<kSource>(isa, a, count, zero_point, static_cast<int8_t *>(y));
  else
    row<kSource>(isa, a, count, zero_point, static_cast<uint8_t *>(y));
}

AXSTREAM_AVX512 void affine_real_avx512(const RowArgs &a, int64_t count, float *real) {
  for (int64_t j = 0; j < count; j += 16) {
    const __mmask16 mask = count - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (count - j)) - 1);
    _mm512_mask_storeu_ps(real + j, mask,
                          values16<Source::affine>(a, j, mask, _mm512_setzero_ps()));
  }
}

AXSTREAM_NO_CONTRACT void affine_real_scalar(const RowArgs &a, int64_t begin, int64_t count,
                                             float *real) {
  for (int64_t j = begin; j < count; ++j) real[j] = value_at<Source::affine>(a, j);
}

AXSTREAM_AVX2 void affine_real_avx2(const RowArgs &a, int64_t count, float *real) {
  int64_t j = 0;
  for (; j + 8 <= count; j += 8)
    _mm256_storeu_ps(real + j, values8<Source::affine>(a, j, _mm256_setzero_ps()));
  affine_real_scalar(a, j, count, real);
}

// DequantizeLinear's value (dequantize_one in ops/nhwc_quantize.cc), then Add's sum, then
// QuantizeLinear's PerTensorQuantizer: three roundings, as three kernels make them.
template <typename X, typename Y>
AXSTREAM_NO_CONTRACT void dequantize_add_quantize_scalar(const X *x, float dq_scale,
                                                         int32_t dq_zero, const float *added,
                                                         const PerTensorQuantizer<Y> &quantize,
                                                         int64_t count, Y *y) {
  for (int64_t j = 0; j < count; ++j) {
    float v = static_cast<float>(static_cast<int32_t>(x[j]) - dq_zero) * dq_scale;
    v = v + added[j];
    y[j] = quantize(v);
  }
}

// The same 16 lanes at a time through dequantize16 and quantize16 (quantize_lanes.h), in this
// fp-contract=off function, so the product and the sum stay two roundings; the last few under a
// mask. Each 16 bytes of x are read before the same 16 of y are written, so y may be x.
template <typename X, typename Y>
AXSTREAM_AVX512 void dequantize_add_quantize_avx512(const X *x, float dq_scale, int32_t dq_zero,
                                                    const float *added,
                                                    const PerTensorQuantizer<Y> &quantize,
                                                    int64_t count, Y *y) {
  const __m512i x_zero = _mm512_set1_epi32(dq_zero);
  const __m512 x_scale = _mm512_set1_ps(dq_scale);
  const QuantizeLanes l = quantize_lanes(quantize);
  for (int64_t j = 0; j < count; j += 16) {
    const __mmask16 mask = count - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (count - j)) - 1);
    __m512 v = dequantize16<X>(_mm_maskz_loadu_epi8(mask, x + j), x_zero, x_scale);
    v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, added + j));  // no contraction: see above
    _mm_mask_storeu_epi8(y + j, mask, _mm512_cvtepi32_epi8(quantize16(l, v)));  // in Y's range
  }
}

template <typename X, typename Y>
void dequantize_add_quantize(RowIsa isa, const X *x, float dq_scale, int32_t dq_zero,
                             const float *added, float q_scale, int32_t q_zero, int64_t count,
                             Y *y) {
  const PerTensorQuantizer<Y> quantize(q_scale, q_zero);
  if (isa == RowIsa::avx512)
    dequantize_add_quantize_avx512(x, dq_scale, dq_zero, added, quantize, count, y);
  else
    dequantize_add_quantize_scalar(x, dq_scale, dq_zero, added, quantize, count, y);
}

template <typename X>
void dequantize_add_quantize(RowIsa isa, const X *x, float dq_scale, int32_t dq_zero,
                             const float *added, float q_scale, int32_t q_zero, DType yt,
                             int64_t count, void *y) {
  if (yt == DType::i8)
    dequantize_add_quantize(isa, x, dq_scale, dq_zero, added, q_scale, q_zero, count,
                            static_cast<int8_t *>(y));
  else
    dequantize_add_quantize(isa, x, dq_scale, dq_zero, added, q_scale, q_zero, count,
                            static_cast<uint8_t *>(y));
}

}  // namespace

RowIsa requantise_row_isa() {
  if (!setting_not_zero("AXSTREAM_ENGINE_VECTOR_EPILOGUE")) return RowIsa::scalar;
  if (cpu_allows_avx512bw()) return RowIsa::avx512;
  if (cpu_allows_avx2_fma()) return RowIsa::avx2;
  return RowIsa::scalar;
}

const char *row_isa_name(RowIsa isa) {
  return isa == RowIsa::avx512 ? "avx512" : isa == RowIsa::avx2 ? "avx2" : "scalar";
}

AXSTREAM_NO_CONTRACT void store_requantized(void *y, DType t, int64_t i, float v,
                                            int32_t zero_point) {
  const float zero = static_cast<float>(zero_point);
  if (t == DType::i8)
    static_cast<int8_t *>(y)[i] = requantised<int8_t>(v, zero);
  else
    static_cast<uint8_t *>(y)[i] = requantised<uint8_t>(v, zero);
}

void requantise_affine_row(RowIsa isa, const int32_t *acc, const float *multiplier,
                           const float *offset, int64_t count, int32_t zero_point, DType yt,
                           void *y) {
  RowArgs a;
  a.acc = acc;
  a.multiplier = multiplier;
  a.offset = offset;
  row<Source::affine>(isa, a, count, zero_point, yt, y);
}

void affine_real_row(RowIsa isa, const int32_t *acc, const float *multiplier, const float *offset,
                     int64_t count, float *real) {
  RowArgs a;
  a.acc = acc;
  a.multiplier = multiplier;
  a.offset = offset;
  if (isa == RowIsa::avx512)
    affine_real_avx512(a, count, real);
  else if (isa == RowIsa::avx2)
    affine_real_avx2(a, count, real);
  else
    affine_real_scalar(a, 0, count, real);
}

void requantise_sigmoid_row(RowIsa isa, const float *e, float scale, int64_t count,
                            int32_t zero_point, DType yt, void *y) {
  RowArgs a;
  a.values = e;
  a.scale = scale;
  row<Source::sigmoid>(isa, a, count, zero_point, yt, y);
}

void requantise_scaled_row(RowIsa isa, const float *v, float scale, int64_t count,
                           int32_t zero_point, DType yt, void *y) {
  RowArgs a;
  a.values = v;
  a.scale = scale;
  row<Source::scaled>(isa, a, count, zero_point, yt, y);
}

void dequantize_add_quantize_row(RowIsa isa, const void *x, DType xt, float dq_scale,
                                 int32_t dq_zero, const float *added, float q_scale, int32_t q_zero,
                                 DType yt, int64_t count, void *y) {
  if (xt == DType::i8)
    dequantize_add_quantize(isa, static_cast<const int8_t *>(x), dq_scale, dq_zero, added, q_scale,
                            q_zero, yt, count, y);
  else
    dequantize_add_quantize(isa, static_cast<const uint8_t *>(x), dq_scale, dq_zero, added, q_scale,
                            q_zero, yt, count, y);
}

}  // namespace axstream::engine
