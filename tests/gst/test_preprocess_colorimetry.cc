// The preprocessor's YUV -> RGB for each colour matrix and range against the standards' own
// formulas (Kr/Kb, computed here in double): every row plan (whole rows, exact 2x pairs, sparse
// taps), AVX2 and baseline kernels, NV12, I420, YUY2 and UYVY, 3- and 4-channel tensors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "axstream/preprocess/preprocess.h"
#include "axstream/preprocess/rotated_crop.h"
#include "tensor_difference.h"

namespace pp = axstream::preprocess;

namespace {

struct Standard {
  pp::YuvMatrix matrix;
  double kr, kb;  // ITU-R BT.601, BT.709, BT.2020, SMPTE 240M, FCC 73.682
};
constexpr Standard kStandards[] = {{pp::YuvMatrix::BT601, 0.299, 0.114},
                                   {pp::YuvMatrix::BT709, 0.2126, 0.0722},
                                   {pp::YuvMatrix::BT2020, 0.2627, 0.0593},
                                   {pp::YuvMatrix::SMPTE240M, 0.212, 0.087},
                                   {pp::YuvMatrix::FCC, 0.30, 0.11}};

// E'R, E'G, E'B from Y'CbCr as the standards define them, as 8-bit values.
std::array<int, 3> reference_rgb(const Standard &s, bool full, int y, int u, int v) {
  const double luma = full ? y / 255.0 : (y - 16) / 219.0;
  const double cb = full ? (u - 128) / 255.0 : (u - 128) / 224.0;
  const double cr = full ? (v - 128) / 255.0 : (v - 128) / 224.0;
  const double kg = 1.0 - s.kr - s.kb;
  const double r = luma + 2.0 * (1.0 - s.kr) * cr;
  const double g = luma - 2.0 * s.kb * (1.0 - s.kb) / kg * cb - 2.0 * s.kr * (1.0 - s.kr) / kg * cr;
  const double b = luma + 2.0 * (1.0 - s.kb) * cb;
  auto to8 = [](double value) { return int(std::clamp(std::lround(value * 255.0), 0L, 255L)); };
  return {to8(r), to8(g), to8(b)};
}

// A random 4:2:0 frame in the range's legal values (video range: Y 16..235, U/V 16..240), and
// the same picture as packed RGB through reference_rgb; YUY2/UYVY hold it with each chroma row
// repeated for its two luma rows.
struct TestFrame {
  std::vector<uint8_t> y, u, v, uv, yuy2, uyvy, rgb;
  int width, height;
  pp::Frame frame(pp::PixelFormat format) const {
    pp::Frame f;
    f.format = format;
    f.width = width;
    f.height = height;
    f.planes[0] = y.data();
    f.strides[0] = width;
    if (format == pp::PixelFormat::NV12) {
      f.planes[1] = uv.data();
      f.strides[1] = width;
    } else if (format == pp::PixelFormat::YUY2 || format == pp::PixelFormat::UYVY) {
      f.planes[0] = format == pp::PixelFormat::YUY2 ? yuy2.data() : uyvy.data();
      f.strides[0] = 2 * width;
    } else {
      f.planes[1] = u.data();
      f.planes[2] = v.data();
      f.strides[1] = f.strides[2] = width / 2;
    }
    return f;
  }
  pp::Frame rgb_frame() const {
    pp::Frame f;
    f.format = pp::PixelFormat::RGB;
    f.width = width;
    f.height = height;
    f.planes[0] = rgb.data();
    f.strides[0] = width * 3;
    return f;
  }
};

TestFrame make_frame(const Standard &s, bool full, int width, int height, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> luma(full ? 0 : 16, full ? 255 : 235);
  std::uniform_int_distribution<int> chroma(full ? 0 : 16, full ? 255 : 240);
  TestFrame f;
  f.width = width;
  f.height = height;
  f.y.resize(size_t(width) * height);
  f.u.resize(size_t(width / 2) * (height / 2));
  f.v.resize(f.u.size());
  f.uv.resize(2 * f.u.size());
  for (auto &b : f.y) b = uint8_t(luma(rng));
  for (size_t i = 0; i < f.u.size(); ++i) {
    f.u[i] = uint8_t(chroma(rng));
    f.v[i] = uint8_t(chroma(rng));
    f.uv[2 * i] = f.u[i];
    f.uv[2 * i + 1] = f.v[i];
  }
  f.rgb.resize(size_t(width) * height * 3);
  f.yuy2.resize(size_t(width) * height * 2);
  f.uyvy.resize(f.yuy2.size());
  for (int row = 0; row < height; ++row)
    for (int col = 0; col < width; ++col) {
      const size_t c = size_t(row / 2) * (width / 2) + col / 2;
      const size_t at = (size_t(row) * width + col) * 2;
      f.yuy2[at] = f.uyvy[at + 1] = f.y[size_t(row) * width + col];
      f.yuy2[at + 1] = f.uyvy[at] = col % 2 ? f.v[c] : f.u[c];
      const auto rgb = reference_rgb(s, full, f.y[size_t(row) * width + col], f.u[c], f.v[c]);
      for (int k = 0; k < 3; ++k) f.rgb[(size_t(row) * width + col) * 3 + k] = uint8_t(rgb[k]);
    }
  return f;
}

// A tensor whose int8 values are pixel - 128 (scale 1 on pixels 0..255, zero point -128).
pp::TensorSpec pixel_tensor(int width, int height, int channels) {
  pp::TensorSpec t;
  t.width = width;
  t.height = height;
  t.channels = channels;
  t.channel_pad_high = channels - 3;
  t.scale = 1.0;
  t.zero_point = -128;
  return t;
}

pp::Options pixel_options(const pp::Colorimetry &colorimetry, bool avx2) {
  pp::Options o;
  o.resize = pp::ResizeMode::Stretch;
  o.normalisation.pixel_scale = 1.0;
  o.colorimetry = colorimetry;
  o.use_avx2 = avx2;
  return o;
}

std::string describe(const pp::Colorimetry &c) {
  return std::string(pp::yuv_matrix_name(c.matrix)) + " " + pp::yuv_range_name(c.range);
}

// Largest difference between the YUV frame's tensor and the reference RGB picture's tensor
// (the same resize and quantisation of already-converted pixels).
int worst_difference(const TestFrame &f, pp::PixelFormat format, const pp::Colorimetry &c,
                     int tensor_w, int tensor_h, int channels, bool avx2) {
  const pp::TensorSpec t = pixel_tensor(tensor_w, tensor_h, channels);
  const pp::Options o = pixel_options(c, avx2);
  std::vector<int8_t> ours(t.size()), reference(t.size());
  pp::Preprocessor(format, f.width, f.height, t, o).run(f.frame(format), ours.data());
  pp::Preprocessor(pp::PixelFormat::RGB, f.width, f.height, t, o)
      .run(f.rgb_frame(), reference.data());
  return axtest::tensor_difference(ours, reference).worst;
}

class PreprocessColorimetry
    : public ::testing::TestWithParam<std::tuple<int, bool, pp::PixelFormat>> {};

// No resize (whole rows converted), exact 2x (pixel pairs), 5x (sparse taps; AVX2 gathers) and
// 3x (taps windows): within one level of the standard's formula, whose rounding the fixed point
// can miss by one.
TEST_P(PreprocessColorimetry, EveryRowPlanMatchesTheStandardsFormulaWithinOneLevel) {
  const auto [index, full, format] = GetParam();
  const Standard &s = kStandards[index];
  const pp::Colorimetry c{s.matrix, full ? pp::YuvRange::Full : pp::YuvRange::Limited};
  const TestFrame f = make_frame(s, full, 160, 120, 17 + index);
  const int sizes[][2] = {{160, 120}, {80, 60}, {32, 24}, {53, 40}};
  for (const bool avx2 : {true, false})
    for (const auto &size : sizes)
      for (const int channels : {3, 4})
        EXPECT_LE(worst_difference(f, format, c, size[0], size[1], channels, avx2), 1)
            << describe(c) << " " << pp::pixel_format_name(format) << " -> " << size[0] << "x"
            << size[1] << "x" << channels << (avx2 ? " avx2" : " baseline");
}

INSTANTIATE_TEST_SUITE_P(
    MatricesAndRanges, PreprocessColorimetry,
    ::testing::Combine(::testing::Range(0, int(std::size(kStandards))), ::testing::Bool(),
                       ::testing::Values(pp::PixelFormat::NV12, pp::PixelFormat::I420,
                                         pp::PixelFormat::YUY2, pp::PixelFormat::UYVY)),
    [](const auto &info) {
      const pp::YuvMatrix m = kStandards[std::get<0>(info.param)].matrix;
      return std::string(pp::yuv_matrix_name(m)) +
             (std::get<1>(info.param) ? "_full" : "_limited") + "_" +
             pp::pixel_format_name(std::get<2>(info.param));
    });

// Known values: BT.709 video-range 75% red (Y 51, U 109, V 212), 100% reds and full-range
// white/black, each a flat frame, so the result is the conversion alone.
TEST(PreprocessColorimetryValues, Bt709RedAndFullRangeExtremesComeOutAsTheStandardSays) {
  struct Case {
    pp::Colorimetry c;
    int y, u, v;
    std::array<int, 3> rgb;
  };
  const Case cases[] = {
      {{pp::YuvMatrix::BT709, pp::YuvRange::Limited}, 51, 109, 212, {191, 0, 1}},
      {{pp::YuvMatrix::BT709, pp::YuvRange::Limited}, 63, 102, 240, {255, 0, 0}},
      {{pp::YuvMatrix::BT601, pp::YuvRange::Limited}, 81, 90, 240, {255, 0, 0}},
      {{pp::YuvMatrix::BT709, pp::YuvRange::Full}, 255, 128, 128, {255, 255, 255}},
      {{pp::YuvMatrix::BT2020, pp::YuvRange::Full}, 0, 128, 128, {0, 0, 0}},
      {{pp::YuvMatrix::BT709, pp::YuvRange::Full}, 54, 99, 255, {255, 0, 0}},
  };
  for (const Case &k : cases) {
    std::vector<uint8_t> y(16 * 16, uint8_t(k.y)), uv(16 * 8);
    for (size_t i = 0; i < uv.size(); i += 2) {
      uv[i] = uint8_t(k.u);
      uv[i + 1] = uint8_t(k.v);
    }
    pp::Frame f;
    f.format = pp::PixelFormat::NV12;
    f.width = f.height = 16;
    f.planes = {y.data(), uv.data(), nullptr};
    f.strides = {16, 16, 0};
    const pp::TensorSpec t = pixel_tensor(16, 16, 3);
    std::vector<int8_t> out(t.size());
    pp::Preprocessor(pp::PixelFormat::NV12, 16, 16, t, pixel_options(k.c, true)).run(f, out.data());
    for (int ch = 0; ch < 3; ++ch)
      EXPECT_NEAR(int(out[ch]) + 128, k.rgb[ch], 1) << describe(k.c) << " channel " << ch;
  }
}

// The constants are round(coefficient * 2^20) of the standard's formulas (BT.601 video range:
// OpenCV's own, which round the coefficients to 3 decimals first).
TEST(PreprocessColorimetryValues, ConstantsAreTheFormulasTimesTwoToTheTwenty) {
  const pp::YuvCoefficients opencv = pp::yuv_coefficients({});
  EXPECT_EQ(opencv.cy, 1220542);
  EXPECT_EQ(opencv.cvr, 1673527);
  const pp::YuvCoefficients bt709 =
      pp::yuv_coefficients({pp::YuvMatrix::BT709, pp::YuvRange::Limited});
  EXPECT_EQ(bt709.y_offset, 16);
  EXPECT_EQ(bt709.cvr, std::lround(1.5748 * 255.0 / 224.0 * (1 << 20)));
  EXPECT_EQ(bt709.cub, std::lround(1.8556 * 255.0 / 224.0 * (1 << 20)));
  const pp::YuvCoefficients full = pp::yuv_coefficients({pp::YuvMatrix::BT601, pp::YuvRange::Full});
  EXPECT_EQ(full.y_offset, 0);
  EXPECT_EQ(full.cy, 1 << 20);
  EXPECT_EQ(full.cvr, std::lround(1.402 * (1 << 20)));
}

// Rotated crops (secondary inference on text boxes) convert with the frame's colorimetry too: an
// axis-aligned "rotation" of a flat BT.709 75% red frame is that red.
TEST(PreprocessColorimetryValues, RotatedCropsUseTheColorimetry) {
  std::vector<uint8_t> y(32 * 32, 51), uv(32 * 16);
  for (size_t i = 0; i < uv.size(); i += 2) {
    uv[i] = 109;
    uv[i + 1] = 212;
  }
  pp::Frame f;
  f.format = pp::PixelFormat::NV12;
  f.width = f.height = 32;
  f.planes = {y.data(), uv.data(), nullptr};
  f.strides = {32, 32, 0};
  const std::array<pp::Point2, 4> corners = {pp::Point2{4, 4}, pp::Point2{28, 4},
                                             pp::Point2{28, 20}, pp::Point2{4, 20}};
  const pp::RgbImage bt709 =
      pp::rotated_crop(f, corners, {pp::YuvMatrix::BT709, pp::YuvRange::Limited});
  const pp::RgbImage bt601 = pp::rotated_crop(f, corners);
  ASSERT_FALSE(bt709.pixels.empty());
  const size_t centre = (size_t(bt709.height / 2) * bt709.width + bt709.width / 2) * 3;
  EXPECT_NEAR(bt709.pixels[centre], 191, 1);
  EXPECT_NEAR(bt709.pixels[centre + 1], 0, 1);
  EXPECT_NEAR(bt709.pixels[centre + 2], 1, 1);
  EXPECT_GT(std::abs(int(bt601.pixels[centre]) - 191), 10) << "BT.601 reads it another red";
}

}  // namespace
