#include "byte_lookup.h"

#include <immintrin.h>

#include "../cpu_features.h"

namespace axstream::engine {
namespace {

__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void byte_lookup_vbmi(
    const uint8_t *x, uint8_t *y, int64_t count, const uint8_t table[256], uint8_t flip) {
  const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
  const __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
  const __m512i flip_bits = _mm512_set1_epi8(static_cast<char>(flip));
  int64_t i = 0;
  for (; i + 64 <= count; i += 64) {
    __m512i index = _mm512_xor_si512(_mm512_loadu_si512(x + i), flip_bits);
    // Each permute reads 128 entries by the index's low 7 bits; bit 7 picks the half.
    __m512i low = _mm512_permutex2var_epi8(t0, index, t1);
    __m512i high = _mm512_permutex2var_epi8(t2, index, t3);
    _mm512_storeu_si512(y + i, _mm512_mask_blend_epi8(_mm512_movepi8_mask(index), low, high));
  }
  if (i < count) {
    // The last 1..63 bytes under a mask: short runs (an NHWC pixel's channels in QConcat) stay
    // on the permutes too.
    const __mmask64 mask = (__mmask64(1) << (count - i)) - 1;
    __m512i index = _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, x + i), flip_bits);
    __m512i low = _mm512_permutex2var_epi8(t0, index, t1);
    __m512i high = _mm512_permutex2var_epi8(t2, index, t3);
    _mm512_mask_storeu_epi8(y + i, mask,
                            _mm512_mask_blend_epi8(_mm512_movepi8_mask(index), low, high));
  }
}

}  // namespace

void byte_lookup(const uint8_t *x, uint8_t *y, int64_t count, const uint8_t table[256],
                 uint8_t flip) {
  if (cpu_allows_avx512vbmi()) return byte_lookup_vbmi(x, y, count, table, flip);
  for (int64_t i = 0; i < count; ++i) y[i] = table[x[i] ^ flip];
}

}  // namespace axstream::engine
