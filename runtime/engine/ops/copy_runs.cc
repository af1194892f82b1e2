#include "copy_runs.h"

#include <immintrin.h>

#include <cstring>

#include "../cpu_features.h"

namespace axstream::engine {
namespace {

// Runs at least this long are copied by memcpy, which does as well there.
constexpr int64_t kLongRun = 512;

__attribute__((target("avx512f,avx512bw"))) void copy_runs_avx512(const uint8_t *x,
                                                                  int64_t x_stride, uint8_t *y,
                                                                  int64_t y_stride, int64_t run,
                                                                  int64_t count) {
  const int64_t full = run / 64 * 64, tail = run - full;
  const __mmask64 mask = tail ? (__mmask64{1} << tail) - 1 : 0;
  for (int64_t s = 0; s < count; ++s, x += x_stride, y += y_stride) {
    for (int64_t c = 0; c < full; c += 64) _mm512_storeu_si512(y + c, _mm512_loadu_si512(x + c));
    if (tail) _mm512_mask_storeu_epi8(y + full, mask, _mm512_maskz_loadu_epi8(mask, x + full));
  }
}

}  // namespace

void copy_runs(const uint8_t *x, int64_t x_stride, uint8_t *y, int64_t y_stride, int64_t run,
               int64_t count) {
  if (run <= 0 || count <= 0) return;
  if (run < kLongRun && cpu_allows_avx512bw()) {
    copy_runs_avx512(x, x_stride, y, y_stride, run, count);
    return;
  }
  for (int64_t s = 0; s < count; ++s, x += x_stride, y += y_stride)
    std::memcpy(y, x, static_cast<size_t>(run));
}

}  // namespace axstream::engine
