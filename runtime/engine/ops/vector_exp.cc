#include "vector_exp.h"

#include <cmath>

#include "../compiler.h"
#include "../cpu_features.h"
#include "intrinsics.h"
#include "softmax.h"

namespace axstream::engine {
namespace {

// Cephes' expf: x = n ln2 + r with |r| <= ln2/2 (ln2 in two parts, so n ln2 is exact), a
// degree-7 polynomial for exp(r), then 2^n in two halves so that results down to the
// subnormals are one rounding of the product. The input is first clamped to where exp is
// neither 0 nor +inf beyond doubt: below -104 it rounds to 0, above 88.8 to +inf.
constexpr float kExpLow = -104.f;
constexpr float kExpHigh = 88.8f;
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2High = 0.693359375f;  // 8 bits: n * kLn2High is exact for |n| <= 150
constexpr float kLn2Low = -2.12194440e-4f;
constexpr float kP0 = 1.9875691500e-4f;
constexpr float kP1 = 1.3981999507e-3f;
constexpr float kP2 = 8.3334519073e-3f;
constexpr float kP3 = 4.1665795894e-2f;
constexpr float kP4 = 1.6666665459e-1f;
constexpr float kP5 = 5.0000001201e-1f;
constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

// The same operations in the same order on both widths (explicit fused multiply-adds, no
// contraction of the rest), so that AVX2 and AVX-512 give the same bits.
#define AXSTREAM_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl"), optimize("fp-contract=off")))
#define AXSTREAM_AVX2 __attribute__((target("avx2,fma"), optimize("fp-contract=off")))

AXSTREAM_AVX512 inline __m512 exp16(__m512 x) {
  // max/min give their second operand for a NaN x: NaN is put back at the end.
  __m512 c = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(kExpLow)), _mm512_set1_ps(kExpHigh));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(c, _mm512_set1_ps(kLog2e)), kNearest);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2High), c);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Low), r);
  __m512 p = _mm512_set1_ps(kP0);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP5));
  __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.f));
  __m512i ni = _mm512_cvtps_epi32(n);  // n is an integer in [-150, 128]: exact
  __m512i n1 = _mm512_srai_epi32(ni, 1);
  __m512i n2 = _mm512_sub_epi32(ni, n1);
  const __m512i bias = _mm512_set1_epi32(127);
  __m512 s1 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n1, bias), 23));
  __m512 s2 = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n2, bias), 23));
  y = _mm512_mul_ps(_mm512_mul_ps(y, s1), s2);
  __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  return _mm512_mask_add_ps(y, nan, x, x);
}

AXSTREAM_AVX2 inline __m256 exp8(__m256 x) {
  __m256 c = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(kExpLow)), _mm256_set1_ps(kExpHigh));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(c, _mm256_set1_ps(kLog2e)), kNearest);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2High), c);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Low), r);
  __m256 p = _mm256_set1_ps(kP0);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP5));
  __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.f));
  __m256i ni = _mm256_cvtps_epi32(n);
  __m256i n1 = _mm256_srai_epi32(ni, 1);
  __m256i n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  y = _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
  __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
  return _mm256_blendv_ps(y, _mm256_add_ps(x, x), nan);
}

AXSTREAM_AVX512 inline __mmask16 tail16(int64_t left) {
  return static_cast<__mmask16>((1u << left) - 1u);
}

// Lanes below `left` (1..7) all ones: the AVX2 masked loads and stores of a row's tail.
AXSTREAM_AVX2 inline __m256i tail8(int64_t left) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(left)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// y[j] = F(x[j]) over a row: whole vectors, then the tail through masked loads and stores.
template <__m512 (*F)(__m512)>
AXSTREAM_AVX512 void map_row_avx512(const float *x, float *y, int64_t count) {
  int64_t j = 0;
  for (; j + 16 <= count; j += 16) _mm512_storeu_ps(y + j, F(_mm512_loadu_ps(x + j)));
  if (j < count) {
    __mmask16 m = tail16(count - j);
    _mm512_mask_storeu_ps(y + j, m, F(_mm512_maskz_loadu_ps(m, x + j)));
  }
}

template <__m256 (*F)(__m256)>
AXSTREAM_AVX2 void map_row_avx2(const float *x, float *y, int64_t count) {
  int64_t j = 0;
  for (; j + 8 <= count; j += 8) _mm256_storeu_ps(y + j, F(_mm256_loadu_ps(x + j)));
  if (j < count) {
    __m256i m = tail8(count - j);
    _mm256_maskstore_ps(y + j, m, F(_mm256_maskload_ps(x + j, m)));
  }
}

AXSTREAM_AVX512 inline __m512 sigmoid16(__m512 x) {
  __m512 e = exp16(
      _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN))));
  return _mm512_div_ps(_mm512_set1_ps(1.f), _mm512_add_ps(_mm512_set1_ps(1.f), e));
}

AXSTREAM_AVX2 inline __m256 sigmoid8(__m256 x) {
  __m256 e = exp8(_mm256_xor_ps(x, _mm256_set1_ps(-0.f)));
  return _mm256_div_ps(_mm256_set1_ps(1.f), _mm256_add_ps(_mm256_set1_ps(1.f), e));
}

// One row of softmax_groups with inner = 1. The maximum skips NaN as the scalar loop's `>`
// does (max_ps returns its second operand, the running maximum, for a NaN lane).
AXSTREAM_AVX512 void softmax_row_avx512(bool log, const float *x, float *y, int64_t len) {
  const __m512 neg_inf = _mm512_set1_ps(-INFINITY);
  __m512 vmax = neg_inf;
  int64_t j = 0;
  for (; j + 16 <= len; j += 16) vmax = _mm512_max_ps(_mm512_loadu_ps(x + j), vmax);
  const int64_t body = j;
  const __mmask16 tail = j < len ? tail16(len - j) : 0;
  if (tail) vmax = _mm512_mask_max_ps(vmax, tail, _mm512_maskz_loadu_ps(tail, x + j), vmax);
  const float m = _mm512_reduce_max_ps(vmax);
  const __m512 vm = _mm512_set1_ps(m);
  __m512 vsum = _mm512_setzero_ps();
  for (j = 0; j < body; j += 16) {
    __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + j), vm));
    vsum = _mm512_add_ps(vsum, e);
    if (!log) _mm512_storeu_ps(y + j, e);
  }
  if (tail) {
    __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + j), vm));
    vsum = _mm512_mask_add_ps(vsum, tail, vsum, e);
    if (!log) _mm512_mask_storeu_ps(y + j, tail, e);
  }
  const float sum = _mm512_reduce_add_ps(vsum);
  if (log) {
    const __m512 log_sum = _mm512_set1_ps(std::log(sum));
    for (j = 0; j < body; j += 16)
      _mm512_storeu_ps(y + j, _mm512_sub_ps(_mm512_sub_ps(_mm512_loadu_ps(x + j), vm), log_sum));
    if (tail)
      _mm512_mask_storeu_ps(
          y + j, tail,
          _mm512_sub_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + j), vm), log_sum));
    return;
  }
  const __m512 vs = _mm512_set1_ps(sum);
  for (j = 0; j < body; j += 16) _mm512_storeu_ps(y + j, _mm512_div_ps(_mm512_loadu_ps(y + j), vs));
  if (tail)
    _mm512_mask_storeu_ps(y + j, tail, _mm512_div_ps(_mm512_maskz_loadu_ps(tail, y + j), vs));
}

AXSTREAM_AVX2 float reduce_max8(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

AXSTREAM_AVX2 float reduce_add8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

AXSTREAM_AVX2 void softmax_row_avx2(bool log, const float *x, float *y, int64_t len) {
  const __m256 neg_inf = _mm256_set1_ps(-INFINITY);
  __m256 vmax = neg_inf;
  int64_t j = 0;
  for (; j + 8 <= len; j += 8) vmax = _mm256_max_ps(_mm256_loadu_ps(x + j), vmax);
  const int64_t body = j;
  const bool has_tail = j < len;
  const __m256i tail = tail8(has_tail ? len - j : 0);
  const __m256 tail_f = _mm256_castsi256_ps(tail);
  if (has_tail)  // lanes past the row read as -inf, which no maximum takes
    vmax = _mm256_max_ps(_mm256_blendv_ps(neg_inf, _mm256_maskload_ps(x + j, tail), tail_f), vmax);
  const float m = reduce_max8(vmax);
  const __m256 vm = _mm256_set1_ps(m);
  __m256 vsum = _mm256_setzero_ps();
  for (j = 0; j < body; j += 8) {
    __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm));
    vsum = _mm256_add_ps(vsum, e);
    if (!log) _mm256_storeu_ps(y + j, e);
  }
  if (has_tail) {
    __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(x + j, tail), vm));
    vsum = _mm256_add_ps(vsum, _mm256_and_ps(e, tail_f));
    if (!log) _mm256_maskstore_ps(y + j, tail, e);
  }
  const float sum = reduce_add8(vsum);
  if (log) {
    const __m256 log_sum = _mm256_set1_ps(std::log(sum));
    for (j = 0; j < body; j += 8)
      _mm256_storeu_ps(y + j, _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm), log_sum));
    if (has_tail)
      _mm256_maskstore_ps(
          y + j, tail, _mm256_sub_ps(_mm256_sub_ps(_mm256_maskload_ps(x + j, tail), vm), log_sum));
    return;
  }
  const __m256 vs = _mm256_set1_ps(sum);
  for (j = 0; j < body; j += 8) _mm256_storeu_ps(y + j, _mm256_div_ps(_mm256_loadu_ps(y + j), vs));
  if (has_tail)
    _mm256_maskstore_ps(y + j, tail, _mm256_div_ps(_mm256_maskload_ps(y + j, tail), vs));
}

}  // namespace

ExpIsa vector_exp_isa() {
  if (!setting_not_zero("AXSTREAM_ENGINE_VECTOR_EXP")) return ExpIsa::scalar;
  if (cpu_allows_avx512bw()) return ExpIsa::avx512;
  if (cpu_allows_avx2_fma()) return ExpIsa::avx2;
  return ExpIsa::scalar;
}

const char *exp_isa_name(ExpIsa isa) {
  return isa == ExpIsa::avx512 ? "avx512" : isa == ExpIsa::avx2 ? "avx2" : "scalar";
}

void exp_row(ExpIsa isa, const float *x, float *y, int64_t count) {
  if (count <= 0) return;
  if (isa == ExpIsa::avx512) return map_row_avx512<exp16>(x, y, count);
  if (isa == ExpIsa::avx2) return map_row_avx2<exp8>(x, y, count);
  for (int64_t j = 0; j < count; ++j) y[j] = std::exp(x[j]);
}

void sigmoid_row(ExpIsa isa, const float *x, float *y, int64_t count) {
  if (count <= 0) return;
  if (isa == ExpIsa::avx512) return map_row_avx512<sigmoid16>(x, y, count);
  if (isa == ExpIsa::avx2) return map_row_avx2<sigmoid8>(x, y, count);
  for (int64_t j = 0; j < count; ++j) y[j] = 1.f / (1.f + std::exp(-x[j]));
}

void softmax_rows(ExpIsa isa, bool log, const float *x, float *y, int64_t rows, int64_t len) {
  if (len <= 0 || rows <= 0) return;
  if (isa == ExpIsa::scalar) {
    if (log)
      softmax_groups<SoftmaxKind::log_softmax>(x, y, rows, len, 1);
    else
      softmax_groups<SoftmaxKind::softmax>(x, y, rows, len, 1);
    return;
  }
  for (int64_t row = 0; row < rows; ++row) {
    if (isa == ExpIsa::avx512)
      softmax_row_avx512(log, x + row * len, y + row * len, len);
    else
      softmax_row_avx2(log, x + row * len, y + row * len, len);
  }
}

}  // namespace axstream::engine
