// The preprocessor's row kernels as plain loops the compiler vectorises (and AVX2 intrinsics
// where it does not). Built twice (gst/preprocess/meson.build): AXSTREAM_PREPROCESS_KERNEL_SET
// names the set, -mavx2 is on for the avx2 one. Everything here has internal linkage and no
// standard-library templates are used, so no AVX2-compiled inline function can be picked by
// the linker for the baseline code.
#include <cstdint>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "kernels.h"

#ifndef AXSTREAM_PREPROCESS_KERNEL_SET
#error "define AXSTREAM_PREPROCESS_KERNEL_SET (baseline or avx2)"
#endif

namespace axstream::preprocess::kernels {

namespace {

// YUV -> RGB fixed point (YuvCoefficients, kernels.h): OpenCV's shift (color_yuv.simd.hpp).
constexpr int kYuvShift = 20;
constexpr int kYuvHalf = 1 << (kYuvShift - 1);
// OpenCV's RGB -> gray weights for 8-bit pixels (color_rgb.simd.hpp RGB2Gray<uchar>, shift 15).
constexpr int kGrayShift = 15;
constexpr int kR2Y = 9798;
constexpr int kG2Y = 19235;
constexpr int kB2Y = 3735;

#define AXPP_INLINE inline __attribute__((always_inline))

AXPP_INLINE int clamp_u8(int v) { return v < 0 ? 0 : (v > 255 ? 255 : v); }
AXPP_INLINE int clamp_i8(int v) { return v < -128 ? -128 : (v > 127 ? 127 : v); }

// max(Y - offset, 0) * cy: OpenCV clamps video-range luma below black (offset 0: full range).
AXPP_INLINE int luma_term(int y, int offset, int cy) { return (y > offset ? y - offset : 0) * cy; }

AXPP_INLINE void yuv_to_rgb(int y, int u, int v, const YuvCoefficients &c, int &r, int &g, int &b) {
  const int luma = luma_term(y, c.y_offset, c.cy);
  u -= 128;
  v -= 128;
  r = clamp_u8((luma + kYuvHalf + c.cvr * v) >> kYuvShift);
  g = clamp_u8((luma + kYuvHalf + c.cvg * v + c.cug * u) >> kYuvShift);
  b = clamp_u8((luma + kYuvHalf + c.cub * u) >> kYuvShift);
}

void gather_u8(const uint8_t *__restrict row, const int32_t *__restrict index, int n,
               uint8_t *__restrict out) {
  for (int j = 0; j < n; ++j) out[j] = row[index[j]];
}

void gather_u32(const uint8_t *__restrict row, const int32_t *__restrict index, int n,
                uint32_t *__restrict out) {
  int j = 0;
#if defined(__AVX2__)
  for (; j + 8 <= n; j += 8) {
    const __m256i offsets = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(index + j));
    _mm256_storeu_si256(reinterpret_cast<__m256i *>(out + j),
                        _mm256_i32gather_epi32(reinterpret_cast<const int *>(row), offsets, 1));
  }
#endif
  for (; j < n; ++j) std::memcpy(out + j, row + index[j], 4);
}

template <int ChromaStep>
AXPP_INLINE void yuv_row_to_rgb0(const uint8_t *__restrict y, const uint8_t *__restrict u,
                                 const uint8_t *__restrict v, int pixels, const YuvCoefficients &c,
                                 uint32_t *__restrict out) {
  const int pairs = pixels / 2;
  const int offset = c.y_offset, cy = c.cy, cub = c.cub, cug = c.cug, cvg = c.cvg, cvr = c.cvr;
  for (int k = 0; k < pairs; ++k) {
    const int uu = u[k * ChromaStep] - 128, vv = v[k * ChromaStep] - 128;
    const int ruv = kYuvHalf + cvr * vv;
    const int guv = kYuvHalf + cvg * vv + cug * uu;
    const int buv = kYuvHalf + cub * uu;
    for (int i = 0; i < 2; ++i) {
      const int luma = luma_term(y[2 * k + i], offset, cy);
      const uint32_t r = uint32_t(clamp_u8((luma + ruv) >> kYuvShift));
      const uint32_t g = uint32_t(clamp_u8((luma + guv) >> kYuvShift));
      const uint32_t b = uint32_t(clamp_u8((luma + buv) >> kYuvShift));
      out[2 * k + i] = r | (g << 8) | (b << 16);
    }
  }
  if (pixels % 2) {
    // The last column of an odd-width row: its own chroma sample, no right neighbour.
    int r, g, b;
    yuv_to_rgb(y[2 * pairs], u[pairs * ChromaStep], v[pairs * ChromaStep], c, r, g, b);
    out[2 * pairs] = uint32_t(r) | uint32_t(g) << 8 | uint32_t(b) << 16;
  }
}

void split_bytes(const uint8_t *__restrict bytes, int pairs, uint8_t *__restrict even,
                 uint8_t *__restrict odd) {
  int i = 0;
#if defined(__AVX2__)
  const __m256i low_bytes = _mm256_set1_epi16(0x00ff);
  for (; i + 32 <= pairs; i += 32) {
    const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(bytes + 2 * i));
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(bytes + 2 * i + 32));
    // packus works per 128-bit lane: the 64-bit quarters come out as a0 b0 a1 b1.
    const __m256i evens =
        _mm256_packus_epi16(_mm256_and_si256(a, low_bytes), _mm256_and_si256(b, low_bytes));
    const __m256i odds = _mm256_packus_epi16(_mm256_srli_epi16(a, 8), _mm256_srli_epi16(b, 8));
    _mm256_storeu_si256(reinterpret_cast<__m256i *>(even + i),
                        _mm256_permute4x64_epi64(evens, 0xd8));
    _mm256_storeu_si256(reinterpret_cast<__m256i *>(odd + i), _mm256_permute4x64_epi64(odds, 0xd8));
  }
#endif
  for (; i < pairs; ++i) {
    even[i] = bytes[2 * i];
    odd[i] = bytes[2 * i + 1];
  }
}

void nv12_row_to_rgb0(const uint8_t *y, const uint8_t *uv, int pixels, const YuvCoefficients &c,
                      uint32_t *out) {
  yuv_row_to_rgb0<2>(y, uv, uv + 1, pixels, c, out);
}

void i420_row_to_rgb0(const uint8_t *y, const uint8_t *u, const uint8_t *v, int pixels,
                      const YuvCoefficients &c, uint32_t *out) {
  yuv_row_to_rgb0<1>(y, u, v, pixels, c, out);
}

template <bool TwoTaps>
AXPP_INLINE void yuv_taps_body(const YuvTaps &t, const YuvCoefficients &c, const Weights &w, int n,
                               int16_t *__restrict r, int16_t *__restrict g,
                               int16_t *__restrict b) {
  const uint8_t *__restrict y0 = t.y0, *__restrict u0 = t.u0, *__restrict v0 = t.v0;
  const uint8_t *__restrict y1 = t.y1, *__restrict u1 = t.u1, *__restrict v1 = t.v1;
  const int16_t *__restrict w0 = w.weight0, *__restrict w1 = w.weight1;
  for (int j = 0; j < n; ++j) {
    int r0, g0, b0;
    yuv_to_rgb(y0[j], u0[j], v0[j], c, r0, g0, b0);
    if constexpr (TwoTaps) {
      int r1, g1, b1;
      yuv_to_rgb(y1[j], u1[j], v1[j], c, r1, g1, b1);
      r[j] = int16_t((r0 * w0[j] + r1 * w1[j]) >> 4);
      g[j] = int16_t((g0 * w0[j] + g1 * w1[j]) >> 4);
      b[j] = int16_t((b0 * w0[j] + b1 * w1[j]) >> 4);
    } else {
      r[j] = int16_t((r0 * w0[j]) >> 4);
      g[j] = int16_t((g0 * w0[j]) >> 4);
      b[j] = int16_t((b0 * w0[j]) >> 4);
    }
  }
}

void yuv_taps(const YuvTaps &taps, const YuvCoefficients &c, const Weights &w, int n, int16_t *r,
              int16_t *g, int16_t *b) {
  if (w.weight1)
    yuv_taps_body<true>(taps, c, w, n, r, g, b);
  else
    yuv_taps_body<false>(taps, c, w, n, r, g, b);
}

#if defined(__AVX2__)
// 8 columns: gather Y, U, V (4-byte reads, low byte kept) and convert them as yuv_to_rgb does.
// The bytes of 8 taps from the 32 bytes at `row + first` by two in-lane shuffles (no gather).
AXPP_INLINE __m256i window_taps(const uint8_t *row, int first, const uint8_t *controls) {
  const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(row + first));
  const __m256i low = _mm256_permute2x128_si256(bytes, bytes, 0x00);
  const __m256i high = _mm256_permute2x128_si256(bytes, bytes, 0x11);
  return _mm256_or_si256(
      _mm256_shuffle_epi8(low, _mm256_loadu_si256(reinterpret_cast<const __m256i *>(controls))),
      _mm256_shuffle_epi8(high,
                          _mm256_loadu_si256(reinterpret_cast<const __m256i *>(controls + 32))));
}

// 4 bytes at each of 8 offsets (the caller keeps only the low one or two).
AXPP_INLINE __m256i gather_taps(const uint8_t *row, const int32_t *offsets) {
  return _mm256_i32gather_epi32(reinterpret_cast<const int *>(row),
                                _mm256_loadu_si256(reinterpret_cast<const __m256i *>(offsets)), 1);
}

// 8 columns: Y, U, V taps (windows where given, else gathers) converted as yuv_to_rgb does.
template <bool Interleaved>
AXPP_INLINE void gather_convert8(const YuvRows &rows, const YuvCoefficients &c, const int32_t *luma,
                                 const int32_t *chroma, const uint8_t *luma_window,
                                 const uint8_t *chroma_window, __m256i &r, __m256i &g, __m256i &b) {
  const __m256i byte_mask = _mm256_set1_epi32(255);
  const __m256i y = luma_window ? window_taps(rows.y, luma[0], luma_window)
                                : _mm256_and_si256(gather_taps(rows.y, luma), byte_mask);
  __m256i u, v;
  if constexpr (Interleaved) {
    const __m256i uv =
        chroma_window ? window_taps(rows.u, chroma[0], chroma_window) : gather_taps(rows.u, chroma);
    u = _mm256_and_si256(uv, byte_mask);
    v = _mm256_and_si256(_mm256_srli_epi32(uv, 8), byte_mask);
  } else if (chroma_window) {
    u = window_taps(rows.u, chroma[0], chroma_window);
    v = window_taps(rows.v, chroma[0], chroma_window);
  } else {
    u = _mm256_and_si256(gather_taps(rows.u, chroma), byte_mask);
    v = _mm256_and_si256(gather_taps(rows.v, chroma), byte_mask);
  }
  const __m256i k128 = _mm256_set1_epi32(128);
  u = _mm256_sub_epi32(u, k128);
  v = _mm256_sub_epi32(v, k128);
  const __m256i zero = _mm256_setzero_si256(), max = _mm256_set1_epi32(255);
  const __m256i luma_term = _mm256_add_epi32(
      _mm256_mullo_epi32(_mm256_max_epi32(_mm256_sub_epi32(y, _mm256_set1_epi32(c.y_offset)), zero),
                         _mm256_set1_epi32(c.cy)),
      _mm256_set1_epi32(kYuvHalf));
  auto channel = [&](__m256i chroma_term) {
    const __m256i value = _mm256_srai_epi32(_mm256_add_epi32(luma_term, chroma_term), kYuvShift);
    return _mm256_min_epi32(_mm256_max_epi32(value, zero), max);
  };
  r = channel(_mm256_mullo_epi32(v, _mm256_set1_epi32(c.cvr)));
  g = channel(_mm256_add_epi32(_mm256_mullo_epi32(v, _mm256_set1_epi32(c.cvg)),
                               _mm256_mullo_epi32(u, _mm256_set1_epi32(c.cug))));
  b = channel(_mm256_mullo_epi32(u, _mm256_set1_epi32(c.cub)));
}

AXPP_INLINE void store8_i16(int16_t *out, __m256i value) {
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(value, value), 0x08);
  _mm_storeu_si128(reinterpret_cast<__m128i *>(out), _mm256_castsi256_si128(packed));
}

template <bool TwoTaps, bool Interleaved>
int yuv_gather_taps_body(const YuvRows &rows, const YuvTapIndex &index, const YuvCoefficients &c,
                         const Weights &w, int n, int16_t *r, int16_t *g, int16_t *b) {
  // Taps grow with the column, so the blocks whose reads stay inside the rows are a prefix.
  auto fits = [&](const int32_t *offsets, const uint8_t *window, int j, int bytes) {
    return window ? offsets[j] + 32 <= bytes : offsets[j + 7] + 4 <= bytes;
  };
  auto block_fits = [&](int j) {
    bool ok = fits(index.luma0, index.luma_window0, j, rows.y_bytes) &&
              fits(index.chroma0, index.chroma_window0, j, rows.chroma_bytes);
    if constexpr (TwoTaps)
      ok = ok && fits(index.luma1, index.luma_window1, j, rows.y_bytes) &&
           fits(index.chroma1, index.chroma_window1, j, rows.chroma_bytes);
    return ok;
  };
  int safe = n & ~7;
  while (safe > 0 && !block_fits(safe - 8)) safe -= 8;
  auto window = [](const uint8_t *controls, int j) {
    return controls ? controls + size_t(j / 8) * 64 : nullptr;
  };
  for (int j = 0; j < safe; j += 8) {
    __m256i r0, g0, b0;
    gather_convert8<Interleaved>(rows, c, index.luma0 + j, index.chroma0 + j,
                                 window(index.luma_window0, j), window(index.chroma_window0, j), r0,
                                 g0, b0);
    if constexpr (!TwoTaps) {
      // One tap: its weight is 2^11, so (value * 2^11) >> 4 is value << 7.
      store8_i16(r + j, _mm256_slli_epi32(r0, 7));
      store8_i16(g + j, _mm256_slli_epi32(g0, 7));
      store8_i16(b + j, _mm256_slli_epi32(b0, 7));
      continue;
    }
    const __m256i w0 =
        _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(w.weight0 + j)));
    r0 = _mm256_mullo_epi32(r0, w0);
    g0 = _mm256_mullo_epi32(g0, w0);
    b0 = _mm256_mullo_epi32(b0, w0);
    if constexpr (TwoTaps) {
      __m256i r1, g1, b1;
      gather_convert8<Interleaved>(rows, c, index.luma1 + j, index.chroma1 + j,
                                   window(index.luma_window1, j), window(index.chroma_window1, j),
                                   r1, g1, b1);
      const __m256i w1 =
          _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(w.weight1 + j)));
      r0 = _mm256_add_epi32(r0, _mm256_mullo_epi32(r1, w1));
      g0 = _mm256_add_epi32(g0, _mm256_mullo_epi32(g1, w1));
      b0 = _mm256_add_epi32(b0, _mm256_mullo_epi32(b1, w1));
    }
    store8_i16(r + j, _mm256_srai_epi32(r0, 4));
    store8_i16(g + j, _mm256_srai_epi32(g0, 4));
    store8_i16(b + j, _mm256_srai_epi32(b0, 4));
  }
  return safe;
}

int yuv_gather_taps(const YuvRows &rows, const YuvTapIndex &index, const YuvCoefficients &c,
                    const Weights &w, int n, int16_t *r, int16_t *g, int16_t *b) {
  if (w.weight1)
    return rows.interleaved ? yuv_gather_taps_body<true, true>(rows, index, c, w, n, r, g, b)
                            : yuv_gather_taps_body<true, false>(rows, index, c, w, n, r, g, b);
  return rows.interleaved ? yuv_gather_taps_body<false, true>(rows, index, c, w, n, r, g, b)
                          : yuv_gather_taps_body<false, false>(rows, index, c, w, n, r, g, b);
}
#endif

template <int ChromaStep>
AXPP_INLINE void yuv_pairs_body(const uint8_t *__restrict y, const uint8_t *__restrict u,
                                const uint8_t *__restrict v, const YuvCoefficients &c,
                                const Weights &w, int n, int16_t *__restrict r,
                                int16_t *__restrict g, int16_t *__restrict b) {
  const int16_t *__restrict w0 = w.weight0, *__restrict w1 = w.weight1;
  const int offset = c.y_offset, cy = c.cy, cub = c.cub, cug = c.cug, cvg = c.cvg, cvr = c.cvr;
  for (int j = 0; j < n; ++j) {
    const int uu = u[j * ChromaStep] - 128, vv = v[j * ChromaStep] - 128;
    const int ruv = kYuvHalf + cvr * vv;
    const int guv = kYuvHalf + cvg * vv + cug * uu;
    const int buv = kYuvHalf + cub * uu;
    const int luma0 = luma_term(y[2 * j], offset, cy), luma1 = luma_term(y[2 * j + 1], offset, cy);
    const int a0 = w0[j], a1 = w1[j];
    r[j] = int16_t(
        (clamp_u8((luma0 + ruv) >> kYuvShift) * a0 + clamp_u8((luma1 + ruv) >> kYuvShift) * a1) >>
        4);
    g[j] = int16_t(
        (clamp_u8((luma0 + guv) >> kYuvShift) * a0 + clamp_u8((luma1 + guv) >> kYuvShift) * a1) >>
        4);
    b[j] = int16_t(
        (clamp_u8((luma0 + buv) >> kYuvShift) * a0 + clamp_u8((luma1 + buv) >> kYuvShift) * a1) >>
        4);
  }
}

#if defined(__AVX2__)
// 8 columns = 16 luma pixels sharing 8 chroma samples; returns the columns done (multiple of 8).
template <int ChromaStep>
int yuv_pairs_avx2(const uint8_t *y, const uint8_t *u, const uint8_t *v, const YuvCoefficients &c,
                   const Weights &w, int n, int16_t *r, int16_t *g, int16_t *b) {
  const __m128i split_even_odd =
      _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  const __m256i luma_offset = _mm256_set1_epi32(c.y_offset), k128 = _mm256_set1_epi32(128);
  const __m256i zero = _mm256_setzero_si256(), max = _mm256_set1_epi32(255);
  const __m256i cy = _mm256_set1_epi32(c.cy), half = _mm256_set1_epi32(kYuvHalf);
  const __m256i cvr = _mm256_set1_epi32(c.cvr), cvg = _mm256_set1_epi32(c.cvg);
  const __m256i cug = _mm256_set1_epi32(c.cug), cub = _mm256_set1_epi32(c.cub);
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m128i luma = _mm_shuffle_epi8(
        _mm_loadu_si128(reinterpret_cast<const __m128i *>(y + 2 * j)), split_even_odd);
    __m256i uu, vv;
    if constexpr (ChromaStep == 2) {
      const __m128i uv = _mm_shuffle_epi8(
          _mm_loadu_si128(reinterpret_cast<const __m128i *>(u + 2 * j)), split_even_odd);
      uu = _mm256_cvtepu8_epi32(uv);
      vv = _mm256_cvtepu8_epi32(_mm_srli_si128(uv, 8));
    } else {
      uu = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(u + j)));
      vv = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(v + j)));
    }
    uu = _mm256_sub_epi32(uu, k128);
    vv = _mm256_sub_epi32(vv, k128);
    const __m256i ruv = _mm256_add_epi32(half, _mm256_mullo_epi32(vv, cvr));
    const __m256i guv = _mm256_add_epi32(
        half, _mm256_add_epi32(_mm256_mullo_epi32(vv, cvg), _mm256_mullo_epi32(uu, cug)));
    const __m256i buv = _mm256_add_epi32(half, _mm256_mullo_epi32(uu, cub));
    const __m256i luma0 = _mm256_mullo_epi32(
        _mm256_max_epi32(_mm256_sub_epi32(_mm256_cvtepu8_epi32(luma), luma_offset), zero), cy);
    const __m256i luma1 = _mm256_mullo_epi32(
        _mm256_max_epi32(
            _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(luma, 8)), luma_offset), zero),
        cy);
    const __m256i w0 =
        _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(w.weight0 + j)));
    const __m256i w1 =
        _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(w.weight1 + j)));
    auto channel = [&](__m256i chroma_term) {
      auto value = [&](__m256i luma_term) {
        return _mm256_min_epi32(
            _mm256_max_epi32(_mm256_srai_epi32(_mm256_add_epi32(luma_term, chroma_term), kYuvShift),
                             zero),
            max);
      };
      return _mm256_srai_epi32(_mm256_add_epi32(_mm256_mullo_epi32(value(luma0), w0),
                                                _mm256_mullo_epi32(value(luma1), w1)),
                               4);
    };
    store8_i16(r + j, channel(ruv));
    store8_i16(g + j, channel(guv));
    store8_i16(b + j, channel(buv));
  }
  return j;
}
#endif

void yuv_pairs(const uint8_t *y, const uint8_t *u, const uint8_t *v, int chroma_step,
               const YuvCoefficients &c, const Weights &w, int n, int16_t *r, int16_t *g,
               int16_t *b) {
#if defined(__AVX2__)
  const int done = chroma_step == 2 ? yuv_pairs_avx2<2>(y, u, v, c, w, n, r, g, b)
                                    : yuv_pairs_avx2<1>(y, u, v, c, w, n, r, g, b);
  if (done == n) return;
  y += 2 * done;
  u += size_t(done) * chroma_step;
  v += size_t(done) * chroma_step;
  r += done;
  g += done;
  b += done;
  n -= done;
  const Weights rest{w.weight0 + done, w.weight1 + done};
  if (chroma_step == 2)
    yuv_pairs_body<2>(y, u, v, c, rest, n, r, g, b);
  else
    yuv_pairs_body<1>(y, u, v, c, rest, n, r, g, b);
  return;
#endif
  if (chroma_step == 2)
    yuv_pairs_body<2>(y, u, v, c, w, n, r, g, b);
  else
    yuv_pairs_body<1>(y, u, v, c, w, n, r, g, b);
}

void packed_pairs(const uint8_t *__restrict row, const Weights &w, int n, ChannelShifts s,
                  int16_t *__restrict r, int16_t *__restrict g, int16_t *__restrict b) {
  const int16_t *__restrict w0 = w.weight0, *__restrict w1 = w.weight1;
  const int sr = s.r, sg = s.g, sb = s.b;
  int j = 0;
#if defined(__AVX2__)
  // 8 columns: 16 pixels in two loads, split into even (first tap) and odd (second tap) pixels.
  const __m256i split = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
  const __m256i byte_mask = _mm256_set1_epi32(255);
  const __m128i shift_r = _mm_cvtsi32_si128(sr), shift_g = _mm_cvtsi32_si128(sg),
                shift_b = _mm_cvtsi32_si128(sb);
  for (; j + 8 <= n; j += 8) {
    const __m256i lo = _mm256_permutevar8x32_epi32(
        _mm256_loadu_si256(reinterpret_cast<const __m256i *>(row + 8 * size_t(j))), split);
    const __m256i hi = _mm256_permutevar8x32_epi32(
        _mm256_loadu_si256(reinterpret_cast<const __m256i *>(row + 8 * size_t(j) + 32)), split);
    const __m256i even = _mm256_permute2x128_si256(lo, hi, 0x20);
    const __m256i odd = _mm256_permute2x128_si256(lo, hi, 0x31);
    const __m256i a0 =
        _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(w0 + j)));
    const __m256i a1 =
        _mm256_cvtepi16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(w1 + j)));
    auto channel = [&](__m128i shift) {
      const __m256i p0 = _mm256_and_si256(_mm256_srl_epi32(even, shift), byte_mask);
      const __m256i p1 = _mm256_and_si256(_mm256_srl_epi32(odd, shift), byte_mask);
      return _mm256_srai_epi32(
          _mm256_add_epi32(_mm256_mullo_epi32(p0, a0), _mm256_mullo_epi32(p1, a1)), 4);
    };
    store8_i16(r + j, channel(shift_r));
    store8_i16(g + j, channel(shift_g));
    store8_i16(b + j, channel(shift_b));
  }
#endif
  for (; j < n; ++j) {
    uint32_t p[2];
    std::memcpy(p, row + 8 * size_t(j), 8);
    const int a0 = w0[j], a1 = w1[j];
    r[j] = int16_t((int((p[0] >> sr) & 255) * a0 + int((p[1] >> sr) & 255) * a1) >> 4);
    g[j] = int16_t((int((p[0] >> sg) & 255) * a0 + int((p[1] >> sg) & 255) * a1) >> 4);
    b[j] = int16_t((int((p[0] >> sb) & 255) * a0 + int((p[1] >> sb) & 255) * a1) >> 4);
  }
}

void gray_pairs(const uint8_t *__restrict row, const Weights &w, int n, int16_t *__restrict out) {
  const int16_t *__restrict w0 = w.weight0, *__restrict w1 = w.weight1;
  for (int j = 0; j < n; ++j) out[j] = int16_t((row[2 * j] * w0[j] + row[2 * j + 1] * w1[j]) >> 4);
}

template <bool TwoTaps>
AXPP_INLINE void packed_taps_body(const uint32_t *__restrict tap0, const uint32_t *__restrict tap1,
                                  const Weights &w, int n, ChannelShifts s, int16_t *__restrict r,
                                  int16_t *__restrict g, int16_t *__restrict b) {
  const int16_t *__restrict w0 = w.weight0, *__restrict w1 = w.weight1;
  const int sr = s.r, sg = s.g, sb = s.b;
  for (int j = 0; j < n; ++j) {
    const uint32_t p0 = tap0[j];
    const int r0 = int((p0 >> sr) & 255), g0 = int((p0 >> sg) & 255), b0 = int((p0 >> sb) & 255);
    if constexpr (TwoTaps) {
      const uint32_t p1 = tap1[j];
      const int r1 = int((p1 >> sr) & 255), g1 = int((p1 >> sg) & 255), b1 = int((p1 >> sb) & 255);
      r[j] = int16_t((r0 * w0[j] + r1 * w1[j]) >> 4);
      g[j] = int16_t((g0 * w0[j] + g1 * w1[j]) >> 4);
      b[j] = int16_t((b0 * w0[j] + b1 * w1[j]) >> 4);
    } else {
      r[j] = int16_t((r0 * w0[j]) >> 4);
      g[j] = int16_t((g0 * w0[j]) >> 4);
      b[j] = int16_t((b0 * w0[j]) >> 4);
    }
  }
}

void packed_taps(const uint32_t *tap0, const uint32_t *tap1, const Weights &w, int n,
                 ChannelShifts shifts, int16_t *r, int16_t *g, int16_t *b) {
  if (w.weight1)
    packed_taps_body<true>(tap0, tap1, w, n, shifts, r, g, b);
  else
    packed_taps_body<false>(tap0, tap1, w, n, shifts, r, g, b);
}

AXPP_INLINE int packed_gray(uint32_t p, int sr, int sg, int sb) {
  return (int((p >> sr) & 255) * kR2Y + int((p >> sg) & 255) * kG2Y + int((p >> sb) & 255) * kB2Y +
          (1 << (kGrayShift - 1))) >>
         kGrayShift;
}

template <bool TwoTaps>
AXPP_INLINE void packed_gray_taps_body(const uint32_t *__restrict tap0,
                                       const uint32_t *__restrict tap1, const Weights &w, int n,
                                       ChannelShifts s, int16_t *__restrict out) {
  const int16_t *__restrict w0 = w.weight0, *__restrict w1 = w.weight1;
  const int sr = s.r, sg = s.g, sb = s.b;
  for (int j = 0; j < n; ++j) {
    const int g0 = packed_gray(tap0[j], sr, sg, sb);
    if constexpr (TwoTaps)
      out[j] = int16_t((g0 * w0[j] + packed_gray(tap1[j], sr, sg, sb) * w1[j]) >> 4);
    else
      out[j] = int16_t((g0 * w0[j]) >> 4);
  }
}

void packed_gray_taps(const uint32_t *tap0, const uint32_t *tap1, const Weights &w, int n,
                      ChannelShifts shifts, int16_t *gray) {
  if (w.weight1)
    packed_gray_taps_body<true>(tap0, tap1, w, n, shifts, gray);
  else
    packed_gray_taps_body<false>(tap0, tap1, w, n, shifts, gray);
}

void gray_taps(const uint8_t *__restrict tap0, const uint8_t *__restrict tap1, const Weights &w,
               int n, int16_t *__restrict out) {
  const int16_t *__restrict w0 = w.weight0, *__restrict w1 = w.weight1;
  if (w1) {
    for (int j = 0; j < n; ++j) out[j] = int16_t((tap0[j] * w0[j] + tap1[j] * w1[j]) >> 4);
  } else {
    for (int j = 0; j < n; ++j) out[j] = int16_t((tap0[j] * w0[j]) >> 4);
  }
}

void vertical(const int16_t *__restrict h0, const int16_t *__restrict h1, int w0, int w1, int n,
              uint8_t *__restrict out) {
  // 16x16 -> high 16 bits products, rounded: pmulhw, as OpenCV's VResizeLinearVec_32s8u.
  const int16_t weight0 = int16_t(w0), weight1 = int16_t(w1);
  int i = 0;
#if defined(__AVX2__)
  // (The compiler widens the products to 32 bits instead of using pmulhw.) Weights <= 2^11 and
  // rows <= 255 * 2^7 keep every sum far inside int16.
  const __m256i v0 = _mm256_set1_epi16(weight0), v1 = _mm256_set1_epi16(weight1);
  const __m256i two = _mm256_set1_epi16(2);
  auto blend16 = [&](int at) {
    const __m256i a =
        _mm256_mulhi_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(h0 + at)), v0);
    const __m256i b =
        _mm256_mulhi_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(h1 + at)), v1);
    return _mm256_srai_epi16(_mm256_add_epi16(_mm256_add_epi16(a, b), two), 2);
  };
  for (; i + 32 <= n; i += 32) {
    const __m256i bytes =
        _mm256_permute4x64_epi64(_mm256_packus_epi16(blend16(i), blend16(i + 16)), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i *>(out + i), bytes);
  }
#endif
  for (; i < n; ++i) {
    const int value =
        (int16_t((weight0 * h0[i]) >> 16) + int16_t((weight1 * h1[i]) >> 16) + 2) >> 2;
    out[i] = uint8_t(clamp_u8(value));
  }
}

void quantise(const uint8_t *__restrict value, Affine a, int n, int8_t *__restrict out) {
  const int32_t multiplier = a.multiplier, addend = a.addend;
  const int shift = a.shift;
  for (int j = 0; j < n; ++j)
    out[j] = int8_t(clamp_i8((int32_t(value[j]) * multiplier + addend) >> shift));
}

void quantise_rgb0(const uint8_t *__restrict c0, const uint8_t *__restrict c1,
                   const uint8_t *__restrict c2, const Affine *affine, uint32_t padding, int n,
                   uint32_t *__restrict out) {
  const int32_t m0 = affine[0].multiplier, m1 = affine[1].multiplier, m2 = affine[2].multiplier;
  const int32_t a0 = affine[0].addend, a1 = affine[1].addend, a2 = affine[2].addend;
  const int s0 = affine[0].shift, s1 = affine[1].shift, s2 = affine[2].shift;
  int j = 0;
#if defined(__AVX2__)
  // 8 pixels: each channel widened to 32 bits, affine, clamped, moved to its byte.
  const __m256i low = _mm256_set1_epi32(-128), high = _mm256_set1_epi32(127);
  const __m256i byte_mask = _mm256_set1_epi32(255), pad = _mm256_set1_epi32(int(padding));
  auto channel = [&](const uint8_t *c, int32_t m, int32_t a, int shift) {
    const __m256i value =
        _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(c + j)));
    const __m256i q = _mm256_sra_epi32(
        _mm256_add_epi32(_mm256_mullo_epi32(value, _mm256_set1_epi32(m)), _mm256_set1_epi32(a)),
        _mm_cvtsi32_si128(shift));
    return _mm256_and_si256(_mm256_min_epi32(_mm256_max_epi32(q, low), high), byte_mask);
  };
  for (; j + 8 <= n; j += 8) {
    const __m256i word = _mm256_or_si256(
        _mm256_or_si256(channel(c0, m0, a0, s0), _mm256_slli_epi32(channel(c1, m1, a1, s1), 8)),
        _mm256_or_si256(_mm256_slli_epi32(channel(c2, m2, a2, s2), 16), pad));
    _mm256_storeu_si256(reinterpret_cast<__m256i *>(out + j), word);
  }
#endif
  for (; j < n; ++j) {
    const uint32_t q0 = uint32_t(clamp_i8((int32_t(c0[j]) * m0 + a0) >> s0)) & 255;
    const uint32_t q1 = uint32_t(clamp_i8((int32_t(c1[j]) * m1 + a1) >> s1)) & 255;
    const uint32_t q2 = uint32_t(clamp_i8((int32_t(c2[j]) * m2 + a2) >> s2)) & 255;
    out[j] = q0 | (q1 << 8) | (q2 << 16) | padding;
  }
}

}  // namespace

#define AXPP_CONCAT_(a, b) a##b
#define AXPP_CONCAT(a, b) AXPP_CONCAT_(a, b)
#define AXPP_STRINGIFY_(a) #a
#define AXPP_STRINGIFY(a) AXPP_STRINGIFY_(a)

const KernelSet &AXPP_CONCAT(AXSTREAM_PREPROCESS_KERNEL_SET, _kernels)() {
  static const KernelSet set = {
    AXPP_STRINGIFY(AXSTREAM_PREPROCESS_KERNEL_SET),
    gather_u8,
    gather_u32,
    nv12_row_to_rgb0,
    i420_row_to_rgb0,
    split_bytes,
    yuv_taps,
#if defined(__AVX2__)
    yuv_gather_taps,
#else
    nullptr,
#endif
    yuv_pairs,
    packed_pairs,
    gray_pairs,
    packed_taps,
    packed_gray_taps,
    gray_taps,
    vertical,
    quantise,
    quantise_rgb0,
  };
  return set;
}

}  // namespace axstream::preprocess::kernels
