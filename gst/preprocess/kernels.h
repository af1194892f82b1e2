// Row kernels of the preprocessor (private): tap gathers, colour conversion with horizontal
// interpolation, vertical interpolation and quantisation. kernels.cc is compiled twice, once for
// the x86-64 baseline and once with -mavx2; the Preprocessor picks one set at construction.
// Both sets compute the same integers (OpenCV's fixed-point arithmetic), only faster or slower.
// The YUV kernels take their matrix and range as YuvCoefficients (the frame's colorimetry).
#pragma once

#include <cstdint>

#include "axstream/preprocess/yuv_coefficients.h"

namespace axstream::preprocess::kernels {

// One model channel's pixel -> int8: clamp((value * multiplier + addend) >> shift, -128, 127).
struct Affine {
  int32_t multiplier = 0, addend = 0;
  int shift = 0;
};

// Bit positions of R, G and B in a little-endian 32-bit pixel (BGRx: 16, 8, 0).
struct ChannelShifts {
  int r = 0, g = 8, b = 16;
};

// Horizontal taps of one output row: value[j] = (tap0[j] * weight0[j] + tap1[j] * weight1[j]) >> 4
// per channel, OpenCV's 11-bit resize weights. weight1 == nullptr: every second weight is 0
// (integer downscales), so every first weight is 2^11; the second tap is neither gathered nor used.
struct Weights {
  const int16_t *weight0 = nullptr, *weight1 = nullptr;
};

// One (matrix, range)'s constants: axstream/preprocess/yuv_coefficients.h.
using YuvCoefficients = axstream::preprocess::YuvCoefficients;

struct YuvTaps {
  const uint8_t *y0, *u0, *v0;
  const uint8_t *y1, *u1, *v1;  // unused when single-tap
};

// The rows one YUV tap gather reads: luma, and chroma as one interleaved UV row (NV12, V at
// u + 1) or two rows (I420); bytes readable from each row start.
struct YuvRows {
  const uint8_t *y, *u, *v;
  int y_bytes, chroma_bytes;
  bool interleaved;
};

// Per output column: luma and chroma byte offsets of the two taps in their rows. The windows
// (nullptr: gather) hold, per block of 8 columns, two 32-byte pshufb controls that pick the
// block's tap bytes (1 per column, or U,V for NV12) out of the 32 bytes at its first tap, into
// the low bytes of 32-bit lanes: [controls for the low 16 bytes | for the high 16 bytes].
struct YuvTapIndex {
  const int32_t *luma0, *chroma0, *luma1, *chroma1;
  const uint8_t *luma_window0 = nullptr, *chroma_window0 = nullptr;
  const uint8_t *luma_window1 = nullptr, *chroma_window1 = nullptr;
};

struct KernelSet {
  const char *name;
  // out[j] = row[index[j]]
  void (*gather_u8)(const uint8_t *row, const int32_t *index, int n, uint8_t *out);
  // out[j] = the 4 bytes at row + index[j]; the caller keeps them inside readable memory.
  void (*gather_u32)(const uint8_t *row, const int32_t *index, int n, uint32_t *out);
  // `pixels` pixels of one YUV 4:2:0 row from an even column -> R | G << 8 | B << 16
  // (with `c`; cv::cvtColor's for BT.601 video range); an odd count ends with a lone pixel (an
  // odd-width frame's last). Every YUV kernel takes the coefficients of the frame's colorimetry.
  void (*nv12_row_to_rgb0)(const uint8_t *y, const uint8_t *uv, int pixels,
                           const YuvCoefficients &c, uint32_t *out);
  void (*i420_row_to_rgb0)(const uint8_t *y, const uint8_t *u, const uint8_t *v, int pixels,
                           const YuvCoefficients &c, uint32_t *out);
  // even[i] = bytes[2i], odd[i] = bytes[2i + 1] for i < pairs: a packed 4:2:2 row (YUY2: Y at
  // even bytes, U,V at odd; UYVY the other way round) split into a luma row and an NV12 UV row.
  void (*split_bytes)(const uint8_t *bytes, int pairs, uint8_t *even, uint8_t *odd);
  // Converts the gathered YUV taps to RGB and interpolates: planar int16 R, G, B.
  void (*yuv_taps)(const YuvTaps &taps, const YuvCoefficients &c, const Weights &w, int n,
                   int16_t *r, int16_t *g, int16_t *b);
  // AVX2 only (nullptr in other sets): gathers, converts and interpolates the YUV taps of whole
  // blocks of columns straight from the rows, for the leading columns whose 4-byte reads stay
  // inside the rows. Returns how many columns it did; the caller does the rest.
  int (*yuv_gather_taps)(const YuvRows &rows, const YuvTapIndex &index, const YuvCoefficients &c,
                         const Weights &w, int n, int16_t *r, int16_t *g, int16_t *b);
  // Exact 2x horizontal downscales, tap pair j = pixels 2j and 2j + 1 from an even start: the
  // same results from contiguous reads (no gathers). chroma_step: 2 for NV12's UV, 1 for I420.
  void (*yuv_pairs)(const uint8_t *y, const uint8_t *u, const uint8_t *v, int chroma_step,
                    const YuvCoefficients &c, const Weights &w, int n, int16_t *r, int16_t *g,
                    int16_t *b);
  void (*packed_pairs)(const uint8_t *row, const Weights &w, int n, ChannelShifts shifts,
                       int16_t *r, int16_t *g, int16_t *b);
  void (*gray_pairs)(const uint8_t *row, const Weights &w, int n, int16_t *out);
  // Packed 32-bit taps -> planar int16 R, G, B.
  void (*packed_taps)(const uint32_t *tap0, const uint32_t *tap1, const Weights &w, int n,
                      ChannelShifts shifts, int16_t *r, int16_t *g, int16_t *b);
  // Packed 32-bit taps -> gray (cv::COLOR_RGB2GRAY's 15-bit weights) -> int16.
  void (*packed_gray_taps)(const uint32_t *tap0, const uint32_t *tap1, const Weights &w, int n,
                           ChannelShifts shifts, int16_t *gray);
  // One-channel byte taps -> int16.
  void (*gray_taps)(const uint8_t *tap0, const uint8_t *tap1, const Weights &w, int n,
                    int16_t *out);
  // OpenCV's vertical pass: ((w0 * h0) >> 16) + ((w1 * h1) >> 16) + 2) >> 2, saturated to u8.
  void (*vertical)(const int16_t *h0, const int16_t *h1, int w0, int w1, int n, uint8_t *out);
  void (*quantise)(const uint8_t *value, Affine affine, int n, int8_t *out);
  // Three channel planes -> 4-byte pixels (channel k in byte k) | padding (byte 3).
  void (*quantise_rgb0)(const uint8_t *c0, const uint8_t *c1, const uint8_t *c2,
                        const Affine *affine, uint32_t padding, int n, uint32_t *out);
};

const KernelSet &baseline_kernels();
#if defined(AXSTREAM_PREPROCESS_AVX2_KERNELS)
const KernelSet &avx2_kernels();
#endif

}  // namespace axstream::preprocess::kernels
