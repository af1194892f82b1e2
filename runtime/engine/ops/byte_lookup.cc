#include "byte_lookup.h"

#include <immintrin.h>

#include "../cpu_features.h"

namespace axstream::engine {
namespace {

// The table's four 64-entry quarters and the flip, held in registers.
struct VbmiTable {
  __m512i t0, t1, t2, t3, flip_bits;
};

__attribute__((target("avx512f,avx512bw,avx512vbmi"))) inline VbmiTable load_vbmi_table(
    const uint8_t table[256], uint8_t flip) {
  return {_mm512_loadu_si512(table), _mm512_loadu_si512(table + 64),
          _mm512_loadu_si512(table + 128), _mm512_loadu_si512(table + 192),
          _mm512_set1_epi8(static_cast<char>(flip))};
}

// table[x ^ flip] for each of the 64 bytes of x.
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) inline __m512i lookup_vbmi(
    const VbmiTable &t, __m512i x) {
  const __m512i index = _mm512_xor_si512(x, t.flip_bits);
  // Each permute reads 128 entries by the index's low 7 bits; bit 7 picks the half.
  const __m512i low = _mm512_permutex2var_epi8(t.t0, index, t.t1);
  const __m512i high = _mm512_permutex2var_epi8(t.t2, index, t.t3);
  return _mm512_mask_blend_epi8(_mm512_movepi8_mask(index), low, high);
}

// One run of `count` bytes, the last 1..63 under a mask: short runs (an NHWC pixel's channels
// in QConcat) stay on the permutes too.
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) inline void lookup_run_vbmi(
    const VbmiTable &t, const uint8_t *x, uint8_t *y, int64_t count) {
  int64_t i = 0;
  for (; i + 64 <= count; i += 64)
    _mm512_storeu_si512(y + i, lookup_vbmi(t, _mm512_loadu_si512(x + i)));
  if (i < count) {
    const __mmask64 mask = (__mmask64(1) << (count - i)) - 1;
    _mm512_mask_storeu_epi8(y + i, mask, lookup_vbmi(t, _mm512_maskz_loadu_epi8(mask, x + i)));
  }
}

__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void byte_lookup_vbmi(
    const uint8_t *x, uint8_t *y, int64_t count, const uint8_t table[256], uint8_t flip) {
  lookup_run_vbmi(load_vbmi_table(table, flip), x, y, count);
}

__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void byte_lookup_runs_vbmi(
    const uint8_t *x, int64_t run, uint8_t *y, int64_t y_stride, int64_t runs,
    const uint8_t table[256], uint8_t flip) {
  const VbmiTable t = load_vbmi_table(table, flip);
  for (int64_t r = 0; r < runs; ++r, x += run, y += y_stride) lookup_run_vbmi(t, x, y, run);
}

}  // namespace

void byte_lookup(const uint8_t *x, uint8_t *y, int64_t count, const uint8_t table[256],
                 uint8_t flip) {
  if (cpu_allows_avx512vbmi()) return byte_lookup_vbmi(x, y, count, table, flip);
  for (int64_t i = 0; i < count; ++i) y[i] = table[x[i] ^ flip];
}

void byte_lookup_runs(const uint8_t *x, int64_t run, uint8_t *y, int64_t y_stride, int64_t runs,
                      const uint8_t table[256], uint8_t flip) {
  if (cpu_allows_avx512vbmi()) return byte_lookup_runs_vbmi(x, run, y, y_stride, runs, table, flip);
  for (int64_t r = 0; r < runs; ++r, x += run, y += y_stride)
    for (int64_t i = 0; i < run; ++i) y[i] = table[x[i] ^ flip];
}

}  // namespace axstream::engine
