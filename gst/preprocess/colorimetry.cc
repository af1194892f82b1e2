// YUV -> RGB constants per colour matrix and range, derived as OpenCV derives its BT.601 ones:
// each coefficient of the standard's formulas times 2^20, rounded (so a matrix costs nothing
// per pixel over another: the kernels only read different integers).
#include <cmath>

#include "axstream/preprocess/preprocess.h"

namespace axstream::preprocess {

namespace {

struct LumaWeights {
  double kr, kb;
};

// Kr, Kb of each matrix (ITU-R BT.601, BT.709, BT.2020 non-constant luminance, SMPTE 240M, FCC),
// the values gst_video_color_matrix_get_Kr_Kb gives.
LumaWeights luma_weights(YuvMatrix matrix) {
  switch (matrix) {
    case YuvMatrix::BT601:
      return {0.299, 0.114};
    case YuvMatrix::BT709:
      return {0.2126, 0.0722};
    case YuvMatrix::BT2020:
      return {0.2627, 0.0593};
    case YuvMatrix::SMPTE240M:
      return {0.212, 0.087};
    case YuvMatrix::FCC:
      return {0.30, 0.11};
  }
  return {0.299, 0.114};
}

int32_t fixed(double coefficient) { return int32_t(std::lround(coefficient * (1 << 20))); }

}  // namespace

const char *yuv_matrix_name(YuvMatrix matrix) {
  switch (matrix) {
    case YuvMatrix::BT601:
      return "bt601";
    case YuvMatrix::BT709:
      return "bt709";
    case YuvMatrix::BT2020:
      return "bt2020";
    case YuvMatrix::SMPTE240M:
      return "smpte240m";
    case YuvMatrix::FCC:
      return "fcc";
  }
  return "?";
}

const char *yuv_range_name(YuvRange range) { return range == YuvRange::Full ? "full" : "limited"; }

YuvCoefficients yuv_coefficients(const Colorimetry &colorimetry) {
  // OpenCV's own BT.601 video-range constants (1.164, 2.018, -0.391, -0.813, 1.596: rounded to
  // three decimals first), kept so that case is bit-exact with cv::cvtColor.
  if (colorimetry.matrix == YuvMatrix::BT601 && colorimetry.range == YuvRange::Limited)
    return YuvCoefficients{};
  const auto [kr, kb] = luma_weights(colorimetry.matrix);
  const double kg = 1.0 - kr - kb;
  // Limited range: Y 16..235 and U, V 16..240 stretched to 0..255 (GStreamer's offsets/scales).
  const bool full = colorimetry.range == YuvRange::Full;
  const double luma_scale = full ? 1.0 : 255.0 / 219.0;
  const double chroma_scale = full ? 1.0 : 255.0 / 224.0;
  YuvCoefficients c;
  c.y_offset = full ? 0 : 16;
  c.cy = fixed(luma_scale);
  c.cvr = fixed(2.0 * (1.0 - kr) * chroma_scale);
  c.cub = fixed(2.0 * (1.0 - kb) * chroma_scale);
  c.cug = fixed(-2.0 * kb * (1.0 - kb) / kg * chroma_scale);
  c.cvg = fixed(-2.0 * kr * (1.0 - kr) / kg * chroma_scale);
  return c;
}

}  // namespace axstream::preprocess
