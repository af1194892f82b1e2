// The fixed-point YUV -> RGB constants of one colour matrix and range, shared by the row kernels
// (which must include nothing with inline standard-library code) and the public API.
#pragma once

#include <cstdint>

namespace axstream::preprocess {

// 20-bit fixed point (OpenCV's shift): luma = max(Y - y_offset, 0) * cy,
//   R = (luma + 2^19 + cvr * (V - 128)) >> 20, G = (luma + 2^19 + cvg * (V - 128) + cug * (U -
//   128))
//   >> 20, B = (luma + 2^19 + cub * (U - 128)) >> 20, each clamped to 0..255.
// The defaults are OpenCV's BT.601 video-range constants (cv::cvtColor's COLOR_YUV2RGB_*).
struct YuvCoefficients {
  int32_t y_offset = 16;
  int32_t cy = 1220542, cub = 2116026, cug = -409993, cvg = -852492, cvr = 1673527;
};

}  // namespace axstream::preprocess
