// Per-tensor (de)quantisation between float and int8/uint8, plain and NCHW <-> NHWC
// (nhwc_quantize.h).
#include "nhwc_quantize.h"

#include <algorithm>
#include <string>
#include <type_traits>

#include "../cpu_features.h"
#include "axstream/error.h"
#include "intrinsics.h"
#include "quantize_lanes.h"

namespace axstream::engine {
namespace {

// ---- element by element: the reference, and the SSE2 path's tensors under one block --------

template <typename Q>
void quantize_elements(const float *xn, Q *yn, int64_t c, int64_t hw,
                       const PerTensorQuantizer<Q> &q) {
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t p = 0; p < hw; ++p) yn[p * c + ch] = q(xn[ch * hw + p]);
}

template <typename T>
float dequantize_one(T q, float scale, int32_t zero) {
  return static_cast<float>(static_cast<int32_t>(q) - zero) * scale;
}

template <typename T>
void dequantize_elements(const T *xn, float *yn, int64_t c, int64_t hw, float scale, int32_t zero) {
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t p = 0; p < hw; ++p) yn[ch * hw + p] = dequantize_one(xn[p * c + ch], scale, zero);
}

// ---- SSE2: blocks of 16 pixels x 16 channels -------------------------------------------------

// Past the last whole block the final block overlaps the one before it (its elements are written
// twice, the same bytes); a tensor of fewer than 16 pixels or channels goes element by element.
constexpr int64_t kSseBlock = 16;

int64_t overlapping_block_start(int64_t i, int64_t size) { return std::min(i, size - kSseBlock); }

// A 16x16 byte block turned around (row r of `src` becomes column r of `dst`): four rounds
// of interleaving row i with row i + 8 transpose it, 64 SSE2 unpacks instead of 256 strided
// byte moves.
void transpose_16x16_bytes(const uint8_t *src, int64_t src_stride, uint8_t *dst,
                           int64_t dst_stride) {
  __m128i rows[16], next[16];
  for (int i = 0; i < 16; ++i)
    rows[i] = _mm_loadu_si128(reinterpret_cast<const __m128i *>(src + i * src_stride));
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 8; ++i) {
      next[2 * i] = _mm_unpacklo_epi8(rows[i], rows[i + 8]);
      next[2 * i + 1] = _mm_unpackhi_epi8(rows[i], rows[i + 8]);
    }
    std::copy(next, next + 16, rows);
  }
  for (int i = 0; i < 16; ++i)
    _mm_storeu_si128(reinterpret_cast<__m128i *>(dst + i * dst_stride), rows[i]);
}

// 16 pixels of 16 channels quantised contiguously, then the block turned around.
template <typename Q>
void quantize_sse2(const float *xn, Q *yn, int64_t c, int64_t hw, const PerTensorQuantizer<Q> &q) {
  constexpr int64_t B = kSseBlock;
  alignas(16) Q block[B * B];
  for (int64_t pi = 0; pi < hw; pi += B)
    for (int64_t ci = 0; ci < c; ci += B) {
      const int64_t p0 = overlapping_block_start(pi, hw), c0 = overlapping_block_start(ci, c);
      for (int64_t ch = 0; ch < B; ++ch) {
        const float *run = xn + (c0 + ch) * hw + p0;
        for (int64_t i = 0; i < B; ++i) block[ch * B + i] = q(run[i]);
      }
      transpose_16x16_bytes(reinterpret_cast<const uint8_t *>(block), B,
                            reinterpret_cast<uint8_t *>(yn + p0 * c + c0), c);
    }
}

// 16 pixels of 16 channels turned around, then each channel's run dequantised.
template <typename T>
void dequantize_sse2(const T *xn, float *yn, int64_t c, int64_t hw, float scale, int32_t zero) {
  constexpr int64_t B = kSseBlock;
  alignas(16) T block[B * B];
  for (int64_t pi = 0; pi < hw; pi += B)
    for (int64_t ci = 0; ci < c; ci += B) {
      const int64_t p0 = overlapping_block_start(pi, hw), c0 = overlapping_block_start(ci, c);
      transpose_16x16_bytes(reinterpret_cast<const uint8_t *>(xn + p0 * c + c0), c,
                            reinterpret_cast<uint8_t *>(block), B);
      for (int64_t ch = 0; ch < B; ++ch) {
        float *out = yn + (c0 + ch) * hw + p0;
        for (int64_t i = 0; i < B; ++i) out[i] = dequantize_one(block[ch * B + i], scale, zero);
      }
    }
}

// ---- AVX-512: blocks of 64 pixels x 16 channels ----------------------------------------------

// Each 128-bit lane of a 512-bit register holds its own 16x16 byte block, so one round of
// unpacks turns four blocks at once: on the NCHW side lane k of row i holds channel i's pixels
// 16k..16k+15, on the NHWC side pixel 16k + i's 16 channels. So each NCHW row is read or
// written as 256 contiguous bytes of floats, and the blocks walk a tile of pixels one group of
// 16 channels after another: 16 float streams at a time, the tile's int8 bytes (at most 256
// pixels x C) staying in cache between the groups. Partial blocks (the last pixels, the last
// channels) are masked, so every element is written once and any size takes this path.
#define AX_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
// for_each_block and the block lambdas passed to it: inlined by GCC's early inliner, as the loops
// were when written out in each kernel; inlined later, quantisation ran ~8% slower (its rows
// kept in registers, the stores fully unrolled, bench_nhwc_quantize).
#define AX_AVX512_INLINE __attribute__((target("avx512f,avx512bw,avx512vl"), always_inline))

constexpr int64_t kBlockPixels = 64, kBlockChannels = 16, kTilePixels = 256;

AX_AVX512 inline void transpose_lanes_16x16(__m512i rows[16]) {
  __m512i next[16];
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 8; ++i) {
      next[2 * i] = _mm512_unpacklo_epi8(rows[i], rows[i + 8]);
      next[2 * i + 1] = _mm512_unpackhi_epi8(rows[i], rows[i + 8]);
    }
    for (int i = 0; i < 16; ++i) rows[i] = next[i];
  }
}

// The first `count` of 16 bits (count may be <= 0 or > 16).
__mmask16 first_bits16(int64_t count) {
  return count >= 16  ? __mmask16(0xFFFF)
         : count <= 0 ? __mmask16(0)
                      : static_cast<__mmask16>((1u << count) - 1);
}

// Four vectors of 16 quantised int32 (in Q's range, so the saturating packs are exact) as one
// vector of bytes whose lane k holds vector k: the packs interleave 4-byte groups across the
// lanes, one dword permute puts them back.
template <typename Q>
AX_AVX512 inline __m512i pack_lanes(__m512i q0, __m512i q1, __m512i q2, __m512i q3) {
  const __m512i words01 = _mm512_packs_epi32(q0, q1), words23 = _mm512_packs_epi32(q2, q3);
  const __m512i bytes = std::is_signed_v<Q> ? _mm512_packs_epi16(words01, words23)
                                            : _mm512_packus_epi16(words01, words23);
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_epi32(order, bytes);
}

// The walk both AVX-512 kernels take: tiles of kTilePixels pixels, each one group of
// kBlockChannels channels after another in blocks of kBlockPixels; `block(c0, channels,
// channel_mask, p0, pixels)` handles the block at channel c0 and pixel p0, of which `channels`
// and `pixels` are real. The lambda passed carries AX_AVX512_INLINE too.
template <typename Block>
AX_AVX512_INLINE inline void for_each_block(int64_t c, int64_t hw, Block block) {
  for (int64_t tile = 0; tile < hw; tile += kTilePixels)
    for (int64_t c0 = 0; c0 < c; c0 += kBlockChannels) {
      const int64_t channels = std::min(kBlockChannels, c - c0);
      const __mmask16 channel_mask = first_bits16(channels);
      for (int64_t p0 = tile; p0 < std::min(tile + kTilePixels, hw); p0 += kBlockPixels)
        block(c0, channels, channel_mask, p0, std::min(kBlockPixels, hw - p0));
    }
}

template <typename Q>
AX_AVX512 void quantize_avx512(const float *xn, Q *yn, int64_t c, int64_t hw,
                               const PerTensorQuantizer<Q> &q) {
  const QuantizeLanes l = quantize_lanes(q);
  const auto quantize_block = [=](int64_t c0, int64_t channels, __mmask16 channel_mask, int64_t p0,
                                  int64_t pixels) AX_AVX512_INLINE {
    __m512i rows[16];
    if (pixels == kBlockPixels) {
      for (int64_t i = 0; i < 16; ++i) {
        if (i >= channels) {  // its bytes land in channels not stored
          rows[i] = _mm512_setzero_si512();
          continue;
        }
        const float *run = xn + (c0 + i) * hw + p0;
        rows[i] = pack_lanes<Q>(
            quantize16(l, _mm512_loadu_ps(run)), quantize16(l, _mm512_loadu_ps(run + 16)),
            quantize16(l, _mm512_loadu_ps(run + 32)), quantize16(l, _mm512_loadu_ps(run + 48)));
      }
    } else {
      const __mmask16 m0 = first_bits16(pixels), m1 = first_bits16(pixels - 16),
                      m2 = first_bits16(pixels - 32), m3 = first_bits16(pixels - 48);
      for (int64_t i = 0; i < 16; ++i) {
        if (i >= channels) {
          rows[i] = _mm512_setzero_si512();
          continue;
        }
        const float *run = xn + (c0 + i) * hw + p0;
        rows[i] = pack_lanes<Q>(quantize16(l, _mm512_maskz_loadu_ps(m0, run)),
                                quantize16(l, _mm512_maskz_loadu_ps(m1, run + 16)),
                                quantize16(l, _mm512_maskz_loadu_ps(m2, run + 32)),
                                quantize16(l, _mm512_maskz_loadu_ps(m3, run + 48)));
      }
    }
    transpose_lanes_16x16(rows);
    Q *first = yn + p0 * c + c0;
    auto lane_pixels = [pixels](int64_t lane) { return std::min<int64_t>(16, pixels - 16 * lane); };
    for (int64_t i = 0; i < lane_pixels(0); ++i)
      _mm_mask_storeu_epi8(first + i * c, channel_mask, _mm512_castsi512_si128(rows[i]));
    for (int64_t i = 0; i < lane_pixels(1); ++i)
      _mm_mask_storeu_epi8(first + (16 + i) * c, channel_mask,
                           _mm512_extracti32x4_epi32(rows[i], 1));
    for (int64_t i = 0; i < lane_pixels(2); ++i)
      _mm_mask_storeu_epi8(first + (32 + i) * c, channel_mask,
                           _mm512_extracti32x4_epi32(rows[i], 2));
    for (int64_t i = 0; i < lane_pixels(3); ++i)
      _mm_mask_storeu_epi8(first + (48 + i) * c, channel_mask,
                           _mm512_extracti32x4_epi32(rows[i], 3));
  };
  for_each_block(c, hw, quantize_block);
}

// The block's channels of one pixel; a pixel past the last gives zeros, dequantised into
// pixels not stored.
template <typename T>
AX_AVX512 inline __m128i load_channels(const T *first, int64_t pixel, int64_t pixels, int64_t c,
                                       __mmask16 channel_mask) {
  return pixel < pixels ? _mm_maskz_loadu_epi8(channel_mask, first + pixel * c)
                        : _mm_setzero_si128();
}

template <typename T>
AX_AVX512 void dequantize_avx512(const T *xn, float *yn, int64_t c, int64_t hw, float scale,
                                 int32_t zero_point) {
  const __m512i zero = _mm512_set1_epi32(zero_point);
  const __m512 scale_lanes = _mm512_set1_ps(scale);
  const auto dequantize_block = [=](int64_t c0, int64_t channels, __mmask16 channel_mask,
                                    int64_t p0, int64_t pixels) AX_AVX512_INLINE {
    const T *first = xn + p0 * c + c0;
    __m512i rows[16];
    for (int64_t i = 0; i < 16; ++i) {
      __m512i row = _mm512_castsi128_si512(load_channels(first, i, pixels, c, channel_mask));
      row = _mm512_inserti32x4(row, load_channels(first, 16 + i, pixels, c, channel_mask), 1);
      row = _mm512_inserti32x4(row, load_channels(first, 32 + i, pixels, c, channel_mask), 2);
      rows[i] = _mm512_inserti32x4(row, load_channels(first, 48 + i, pixels, c, channel_mask), 3);
    }
    transpose_lanes_16x16(rows);
    if (pixels == kBlockPixels) {
      for (int64_t i = 0; i < channels; ++i) {
        float *run = yn + (c0 + i) * hw + p0;
        _mm512_storeu_ps(run, dequantize16<T>(_mm512_castsi512_si128(rows[i]), zero, scale_lanes));
        _mm512_storeu_ps(run + 16,
                         dequantize16<T>(_mm512_extracti32x4_epi32(rows[i], 1), zero, scale_lanes));
        _mm512_storeu_ps(run + 32,
                         dequantize16<T>(_mm512_extracti32x4_epi32(rows[i], 2), zero, scale_lanes));
        _mm512_storeu_ps(run + 48,
                         dequantize16<T>(_mm512_extracti32x4_epi32(rows[i], 3), zero, scale_lanes));
      }
    } else {
      const __mmask16 m0 = first_bits16(pixels), m1 = first_bits16(pixels - 16),
                      m2 = first_bits16(pixels - 32), m3 = first_bits16(pixels - 48);
      for (int64_t i = 0; i < channels; ++i) {
        float *run = yn + (c0 + i) * hw + p0;
        _mm512_mask_storeu_ps(run, m0,
                              dequantize16<T>(_mm512_castsi512_si128(rows[i]), zero, scale_lanes));
        _mm512_mask_storeu_ps(
            run + 16, m1,
            dequantize16<T>(_mm512_extracti32x4_epi32(rows[i], 1), zero, scale_lanes));
        _mm512_mask_storeu_ps(
            run + 32, m2,
            dequantize16<T>(_mm512_extracti32x4_epi32(rows[i], 2), zero, scale_lanes));
        _mm512_mask_storeu_ps(
            run + 48, m3,
            dequantize16<T>(_mm512_extracti32x4_epi32(rows[i], 3), zero, scale_lanes));
      }
    }
  };
  for_each_block(c, hw, dequantize_block);
}

// The plain kernels, 16 elements per step, the last step masked.
template <typename Q>
AX_AVX512 void quantize_plain_avx512(const float *x, Q *y, int64_t count,
                                     const PerTensorQuantizer<Q> &q) {
  const QuantizeLanes l = quantize_lanes(q);
  for (int64_t i = 0; i < count; i += 16) {
    const __mmask16 mask = first_bits16(count - i);
    const __m512i v = quantize16(l, _mm512_maskz_loadu_ps(mask, x + i));
    _mm_mask_storeu_epi8(y + i, mask, _mm512_cvtepi32_epi8(v));  // in Q's range: exact
  }
}

template <typename T>
AX_AVX512 void dequantize_plain_avx512(const T *x, float *y, int64_t count, float scale,
                                       int32_t zero_point) {
  const __m512i zero = _mm512_set1_epi32(zero_point);
  const __m512 scale_lanes = _mm512_set1_ps(scale);
  for (int64_t i = 0; i < count; i += 16) {
    const __mmask16 mask = first_bits16(count - i);
    _mm512_mask_storeu_ps(y + i, mask,
                          dequantize16<T>(_mm_maskz_loadu_epi8(mask, x + i), zero, scale_lanes));
  }
}

#undef AX_AVX512_INLINE
#undef AX_AVX512

NhwcQuantPath resolve(NhwcQuantPath path) {
  if (path == NhwcQuantPath::best) return best_nhwc_quant_path();
  if (!nhwc_quant_path_supported(path))
    throw InternalError(std::string("transposing (de)quantisation: path '") +
                        nhwc_quant_path_name(path) + "' needs instructions this CPU lacks");
  return path;
}

}  // namespace

bool nhwc_quant_path_supported(NhwcQuantPath path) {
  // SSE2 is x86-64's baseline; AVX-512 as the CPU and ONEDNN_MAX_CPU_ISA allow (cpu_features.h).
  return path != NhwcQuantPath::avx512 || cpu_allows_avx512bw();
}

NhwcQuantPath best_nhwc_quant_path() {
  return nhwc_quant_path_supported(NhwcQuantPath::avx512) ? NhwcQuantPath::avx512
                                                          : NhwcQuantPath::sse2;
}

const char *nhwc_quant_path_name(NhwcQuantPath path) {
  switch (path) {
    case NhwcQuantPath::element:
      return "element";
    case NhwcQuantPath::sse2:
      return "sse2";
    case NhwcQuantPath::avx512:
      return "avx512";
    case NhwcQuantPath::best:
      break;
  }
  return "best";
}

template <typename Q>
void quantize_per_tensor(const float *x, Q *y, int64_t count, const PerTensorQuantizer<Q> &q,
                         NhwcQuantPath path) {
  if (resolve(path) == NhwcQuantPath::avx512) return quantize_plain_avx512(x, y, count, q);
  for (int64_t i = 0; i < count; ++i) y[i] = q(x[i]);
}

template <typename T>
void dequantize_per_tensor(const T *x, float *y, int64_t count, float scale, int32_t zero_point,
                           NhwcQuantPath path) {
  if (resolve(path) == NhwcQuantPath::avx512)
    return dequantize_plain_avx512(x, y, count, scale, zero_point);
  for (int64_t i = 0; i < count; ++i) y[i] = dequantize_one(x[i], scale, zero_point);
}

template <typename Q>
void quantize_nchw_to_nhwc(const float *x, Q *y, const NhwcQuantShape &s,
                           const PerTensorQuantizer<Q> &q, NhwcQuantPath path) {
  path = resolve(path);
  for (int64_t n = 0; n < s.n; ++n) {
    const float *xn = x + n * s.c * s.hw;
    Q *yn = y + n * s.c * s.hw;
    if (path == NhwcQuantPath::avx512)
      quantize_avx512(xn, yn, s.c, s.hw, q);
    else if (path == NhwcQuantPath::sse2 && s.c >= kSseBlock && s.hw >= kSseBlock)
      quantize_sse2(xn, yn, s.c, s.hw, q);
    else
      quantize_elements(xn, yn, s.c, s.hw, q);
  }
}

template <typename T>
void dequantize_nhwc_to_nchw(const T *x, float *y, const NhwcQuantShape &s, float scale,
                             int32_t zero_point, NhwcQuantPath path) {
  path = resolve(path);
  for (int64_t n = 0; n < s.n; ++n) {
    const T *xn = x + n * s.c * s.hw;
    float *yn = y + n * s.c * s.hw;
    if (path == NhwcQuantPath::avx512)
      dequantize_avx512(xn, yn, s.c, s.hw, scale, zero_point);
    else if (path == NhwcQuantPath::sse2 && s.c >= kSseBlock && s.hw >= kSseBlock)
      dequantize_sse2(xn, yn, s.c, s.hw, scale, zero_point);
    else
      dequantize_elements(xn, yn, s.c, s.hw, scale, zero_point);
  }
}

template void quantize_per_tensor(const float *, int8_t *, int64_t,
                                  const PerTensorQuantizer<int8_t> &, NhwcQuantPath);
template void quantize_per_tensor(const float *, uint8_t *, int64_t,
                                  const PerTensorQuantizer<uint8_t> &, NhwcQuantPath);
template void dequantize_per_tensor(const int8_t *, float *, int64_t, float, int32_t,
                                    NhwcQuantPath);
template void dequantize_per_tensor(const uint8_t *, float *, int64_t, float, int32_t,
                                    NhwcQuantPath);
template void quantize_nchw_to_nhwc(const float *, int8_t *, const NhwcQuantShape &,
                                    const PerTensorQuantizer<int8_t> &, NhwcQuantPath);
template void quantize_nchw_to_nhwc(const float *, uint8_t *, const NhwcQuantShape &,
                                    const PerTensorQuantizer<uint8_t> &, NhwcQuantPath);
template void dequantize_nhwc_to_nchw(const int8_t *, float *, const NhwcQuantShape &, float,
                                      int32_t, NhwcQuantPath);
template void dequantize_nhwc_to_nchw(const uint8_t *, float *, const NhwcQuantShape &, float,
                                      int32_t, NhwcQuantPath);

}  // namespace axstream::engine
