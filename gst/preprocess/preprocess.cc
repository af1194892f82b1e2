// The fused frame -> tensor pass. Bit-exactness with OpenCV (cvtColor, then resize INTER_LINEAR)
// comes from using OpenCV's own fixed-point arithmetic: BT.601 20-bit YUV->RGB, 14-bit RGB->gray,
// 11-bit resize weights with the same rounding of the vertical pass.
#include "axstream/preprocess/preprocess.h"

#include <strings.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "axstream/error.h"

namespace axstream::preprocess {

namespace {

constexpr int kResizeCoefBits = 11;
constexpr int kResizeCoefScale = 1 << kResizeCoefBits;

// OpenCV's ITU-R BT.601 video-range YUV -> RGB constants (color_yuv.simd.hpp).
constexpr int kYuvShift = 20;
constexpr int kCY = 1220542;
constexpr int kCUB = 2116026;
constexpr int kCUG = -409993;
constexpr int kCVG = -852492;
constexpr int kCVR = 1673527;

// OpenCV's RGB -> gray weights (color.hpp, yuv_shift 14).
constexpr int kR2Y = 4899;
constexpr int kG2Y = 9617;
constexpr int kB2Y = 1868;

inline int clamp_u8(int v) { return v < 0 ? 0 : (v > 255 ? 255 : v); }

struct YuvTables {
  std::array<int32_t, 256> y;   // max(0, Y - 16) * CY
  std::array<int32_t, 256> rv;  // half + CVR * (V - 128)
  std::array<int32_t, 256> gv;  // half + CVG * (V - 128)
  std::array<int32_t, 256> gu;  // CUG * (U - 128)
  std::array<int32_t, 256> bu;  // half + CUB * (U - 128)
  // saturate_cast<uchar> of (sum >> 20) as a lookup: no data-dependent branches in the hot loop.
  static constexpr int kClampOffset = 512;
  std::array<uint8_t, 2048> clamp;  // sums >> 20 lie in [-259, 535]
  YuvTables() {
    const int half = 1 << (kYuvShift - 1);
    for (int i = 0; i < 256; ++i) {
      y[i] = std::max(0, i - 16) * kCY;
      rv[i] = half + kCVR * (i - 128);
      gv[i] = half + kCVG * (i - 128);
      gu[i] = kCUG * (i - 128);
      bu[i] = half + kCUB * (i - 128);
    }
    for (int i = 0; i < 2048; ++i) clamp[i] = uint8_t(clamp_u8(i - kClampOffset));
  }
};
const YuvTables kYuv;

inline void yuv_to_rgb(int y, int u, int v, int32_t *px) {
  const int32_t yy = kYuv.y[y];
  const uint8_t *clamp = kYuv.clamp.data() + YuvTables::kClampOffset;
  px[0] = clamp[(yy + kYuv.rv[v]) >> kYuvShift];
  px[1] = clamp[(yy + kYuv.gv[v] + kYuv.gu[u]) >> kYuvShift];
  px[2] = clamp[(yy + kYuv.bu[u]) >> kYuvShift];
}

// Fetchers: one source row, pixel x as R,G,B (channels == 3) or gray (channels == 1).
template <int Bpp, int R, int G, int B, bool Gray>
struct PackedFetch {
  static constexpr int channels = Gray ? 1 : 3;
  const uint8_t *row;
  static PackedFetch at(const Frame &frame, int y) {
    return {frame.planes[0] + size_t(y) * size_t(frame.strides[0])};
  }
  void operator()(int x, int32_t *px) const {
    const uint8_t *p = row + size_t(x) * Bpp;
    if constexpr (Gray) {
      px[0] = (p[R] * kR2Y + p[G] * kG2Y + p[B] * kB2Y + (1 << 13)) >> 14;
    } else {
      px[0] = p[R];
      px[1] = p[G];
      px[2] = p[B];
    }
  }
};

struct GrayFetch {
  static constexpr int channels = 1;
  const uint8_t *row;
  static GrayFetch at(const Frame &frame, int y) {
    return {frame.planes[0] + size_t(y) * size_t(frame.strides[0])};
  }
  void operator()(int x, int32_t *px) const { px[0] = row[x]; }
};

// Gray from YUV is the luma plane (cv::COLOR_YUV2GRAY_*).
template <bool Gray>
struct Nv12Fetch {
  static constexpr int channels = Gray ? 1 : 3;
  const uint8_t *y_row, *uv_row;
  static Nv12Fetch at(const Frame &frame, int y) {
    return {frame.planes[0] + size_t(y) * size_t(frame.strides[0]),
            frame.planes[1] + size_t(y / 2) * size_t(frame.strides[1])};
  }
  void operator()(int x, int32_t *px) const {
    if constexpr (Gray) {
      px[0] = y_row[x];
    } else {
      const uint8_t *uv = uv_row + (x & ~1);
      yuv_to_rgb(y_row[x], uv[0], uv[1], px);
    }
  }
};

template <bool Gray>
struct I420Fetch {
  static constexpr int channels = Gray ? 1 : 3;
  const uint8_t *y_row, *u_row, *v_row;
  static I420Fetch at(const Frame &frame, int y) {
    return {frame.planes[0] + size_t(y) * size_t(frame.strides[0]),
            frame.planes[1] + size_t(y / 2) * size_t(frame.strides[1]),
            frame.planes[2] + size_t(y / 2) * size_t(frame.strides[2])};
  }
  void operator()(int x, int32_t *px) const {
    if constexpr (Gray) {
      px[0] = y_row[x];
    } else {
      yuv_to_rgb(y_row[x], u_row[x >> 1], v_row[x >> 1], px);
    }
  }
};

// Whole-row YUV -> planar RGB with OpenCV's arithmetic (no tables, so it vectorises; an AVX2
// clone is picked at run time where the CPU has it). `pairs` chroma samples = 2 * pairs pixels.
template <int ChromaStep>
inline __attribute__((always_inline)) void yuv_row_to_rgb_body(const uint8_t *y, const uint8_t *u,
                                                               const uint8_t *v, int pairs,
                                                               uint8_t *r, uint8_t *g, uint8_t *b) {
  const int half = 1 << (kYuvShift - 1);
  for (int k = 0; k < pairs; ++k) {
    const int uu = u[k * ChromaStep] - 128, vv = v[k * ChromaStep] - 128;
    const int ruv = half + kCVR * vv;
    const int guv = half + kCVG * vv + kCUG * uu;
    const int buv = half + kCUB * uu;
    for (int i = 0; i < 2; ++i) {
      const int yy = std::max(0, int(y[2 * k + i]) - 16) * kCY;
      r[2 * k + i] = uint8_t(std::clamp((yy + ruv) >> kYuvShift, 0, 255));
      g[2 * k + i] = uint8_t(std::clamp((yy + guv) >> kYuvShift, 0, 255));
      b[2 * k + i] = uint8_t(std::clamp((yy + buv) >> kYuvShift, 0, 255));
    }
  }
}

__attribute__((target_clones("avx2", "default"))) void nv12_row_to_rgb(const uint8_t *y,
                                                                       const uint8_t *uv, int pairs,
                                                                       uint8_t *r, uint8_t *g,
                                                                       uint8_t *b) {
  yuv_row_to_rgb_body<2>(y, uv, uv + 1, pairs, r, g, b);
}

__attribute__((target_clones("avx2", "default"))) void i420_row_to_rgb(const uint8_t *y,
                                                                       const uint8_t *u,
                                                                       const uint8_t *v, int pairs,
                                                                       uint8_t *r, uint8_t *g,
                                                                       uint8_t *b) {
  yuv_row_to_rgb_body<1>(y, u, v, pairs, r, g, b);
}

// Sources: give the fetcher of one source row. Direct sources read the frame per tap; the YUV
// source converts the needed span of a row once, then taps read planar RGB.
template <typename Fetch>
struct DirectSource {
  static constexpr int channels = Fetch::channels;
  const Frame &frame;
  DirectSource(const Frame &f, int, int) : frame(f) {}
  Fetch row(int y) { return Fetch::at(frame, y); }
};

struct PlanarRgbFetch {
  static constexpr int channels = 3;
  const uint8_t *r, *g, *b;
  int begin;
  void operator()(int x, int32_t *px) const {
    x -= begin;
    px[0] = r[x];
    px[1] = g[x];
    px[2] = b[x];
  }
};

template <bool Nv12>
struct YuvRowSource {
  static constexpr int channels = 3;
  const Frame &frame;
  int begin, pairs;
  std::vector<uint8_t> planes;
  // [first, last] frame columns the taps read.
  YuvRowSource(const Frame &f, int first, int last) : frame(f), begin(first & ~1) {
    pairs = (std::min(last + 2, f.width) - begin) / 2;
    planes.resize(size_t(pairs) * 2 * 3);
  }
  PlanarRgbFetch row(int y) {
    uint8_t *r = planes.data(), *g = r + 2 * pairs, *b = g + 2 * pairs;
    const uint8_t *luma = frame.planes[0] + size_t(y) * size_t(frame.strides[0]) + begin;
    if constexpr (Nv12) {
      nv12_row_to_rgb(luma, frame.planes[1] + size_t(y / 2) * size_t(frame.strides[1]) + begin,
                      pairs, r, g, b);
    } else {
      i420_row_to_rgb(luma, frame.planes[1] + size_t(y / 2) * size_t(frame.strides[1]) + begin / 2,
                      frame.planes[2] + size_t(y / 2) * size_t(frame.strides[2]) + begin / 2, pairs,
                      r, g, b);
    }
    return {r, g, b, begin};
  }
};

std::string describe(const Rect &r) {
  std::ostringstream s;
  s << "(" << r.x << "," << r.y << "," << r.width << "," << r.height << ")";
  return s.str();
}

// OpenCV resize's per-axis tables (resize.cpp, resizeGeneric_ setup for INTER_LINEAR).
void linear_tables(int src_size, int dst_size, bool clamp_weights, std::vector<int32_t> &first,
                   std::vector<int32_t> &second, std::vector<int16_t> &weights) {
  const double inv_scale = double(dst_size) / src_size;
  const double scale = 1.0 / inv_scale;
  first.resize(dst_size);
  second.resize(dst_size);
  weights.resize(2 * size_t(dst_size));
  for (int d = 0; d < dst_size; ++d) {
    float f = float((d + 0.5) * scale - 0.5);
    int s = int(std::floor(f));
    f -= float(s);
    if (clamp_weights) {
      // Columns: OpenCV clamps the tap and zeroes the fraction at the borders.
      if (s < 0) {
        f = 0.f;
        s = 0;
      }
      if (s >= src_size - 1) {
        f = 0.f;
        s = src_size - 1;
      }
    }
    // Rows: OpenCV keeps the weights and clips the row indices instead.
    first[d] = std::clamp(s, 0, src_size - 1);
    second[d] = std::clamp(s + 1, 0, src_size - 1);
    weights[2 * d] = int16_t(std::lrint((1.f - f) * kResizeCoefScale));
    weights[2 * d + 1] = int16_t(std::lrint(f * kResizeCoefScale));
  }
}

}  // namespace

PixelFormat pixel_format_from_string(const std::string &name) {
  static const std::pair<const char *, PixelFormat> names[] = {
      {"NV12", PixelFormat::NV12}, {"I420", PixelFormat::I420}, {"RGB", PixelFormat::RGB},
      {"BGR", PixelFormat::BGR},   {"RGBA", PixelFormat::RGBA}, {"BGRA", PixelFormat::BGRA},
      {"RGBx", PixelFormat::RGBx}, {"BGRx", PixelFormat::BGRx}, {"GRAY8", PixelFormat::GRAY8}};
  for (const auto &[text, format] : names)
    if (name == text) return format;
  throw InvalidArgument("pixel format '" + name +
                        "': expected one of NV12, I420, RGB, BGR, RGBA, BGRA, RGBx, BGRx, GRAY8");
}

const char *pixel_format_name(PixelFormat format) {
  switch (format) {
    case PixelFormat::NV12:
      return "NV12";
    case PixelFormat::I420:
      return "I420";
    case PixelFormat::RGB:
      return "RGB";
    case PixelFormat::BGR:
      return "BGR";
    case PixelFormat::RGBA:
      return "RGBA";
    case PixelFormat::BGRA:
      return "BGRA";
    case PixelFormat::RGBx:
      return "RGBx";
    case PixelFormat::BGRx:
      return "BGRx";
    case PixelFormat::GRAY8:
      return "GRAY8";
  }
  return "?";
}

ColorOrder color_order_from_string(const std::string &name) {
  if (strcasecmp(name.c_str(), "RGB") == 0) return ColorOrder::RGB;
  if (strcasecmp(name.c_str(), "BGR") == 0) return ColorOrder::BGR;
  if (strcasecmp(name.c_str(), "GRAY") == 0) return ColorOrder::GRAY;
  throw InvalidArgument("colour format '" + name + "': expected RGB, BGR or GRAY");
}

const char *color_order_name(ColorOrder order) {
  switch (order) {
    case ColorOrder::RGB:
      return "RGB";
    case ColorOrder::BGR:
      return "BGR";
    case ColorOrder::GRAY:
      return "GRAY";
  }
  return "?";
}

int8_t quantise(double value, double scale, int zero_point) {
  // nearbyint rounds half to even in the default rounding mode, as numpy.round does.
  const double q = std::nearbyint(value / scale) + zero_point;
  return int8_t(std::clamp(q, -128.0, 127.0));
}

Preprocessor::Preprocessor(PixelFormat format, int frame_width, int frame_height,
                           const TensorSpec &tensor, const Options &options)
    : format_(format),
      frame_width_(frame_width),
      frame_height_(frame_height),
      tensor_(tensor),
      options_(options) {
  if (frame_width <= 0 || frame_height <= 0)
    throw InvalidArgument("frame size " + std::to_string(frame_width) + "x" +
                          std::to_string(frame_height) + ": expected a positive width and height");
  if ((format == PixelFormat::NV12 || format == PixelFormat::I420) &&
      (frame_width % 2 != 0 || frame_height % 2 != 0))
    throw InvalidArgument(std::string(pixel_format_name(format)) + " frame size " +
                          std::to_string(frame_width) + "x" + std::to_string(frame_height) +
                          ": expected even width and height");
  const int tensor_width = tensor.unpadded_width(), tensor_height = tensor.unpadded_height();
  if (tensor.height <= 0 || tensor.width <= 0 || tensor.channels <= 0 || tensor_width <= 0 ||
      tensor_height <= 0 || tensor.pad_top < 0 || tensor.pad_left < 0 || tensor.pad_bottom < 0 ||
      tensor.pad_right < 0 || tensor.channel_pad_low < 0 || tensor.channel_pad_high < 0)
    throw InvalidArgument("tensor shape (1," + std::to_string(tensor.height) + "," +
                          std::to_string(tensor.width) + "," + std::to_string(tensor.channels) +
                          ") with its padding: expected a non-empty unpadded image");
  const int colour_channels = options.color == ColorOrder::GRAY ? 1 : 3;
  if (tensor.unpadded_channels() != colour_channels)
    throw InvalidArgument("tensor with " + std::to_string(tensor.unpadded_channels()) +
                          " unpadded channels: colour format " + color_order_name(options.color) +
                          " expects " + std::to_string(colour_channels));
  if (!(tensor.scale > 0.0) || tensor.zero_point < -128 || tensor.zero_point > 127)
    throw InvalidArgument("tensor quantisation scale " + std::to_string(tensor.scale) +
                          " zero_point " + std::to_string(tensor.zero_point) +
                          ": expected scale > 0 and zero_point in [-128, 127]");
  for (int c = 0; c < colour_channels; ++c)
    if (options.normalisation.std[c] == 0.0)
      throw InvalidArgument("std of channel " + std::to_string(c) + " is 0: expected non-zero");

  Rect crop{0, 0, frame_width, frame_height};
  if (options.crop) {
    crop = *options.crop;
    if (crop.width <= 0 || crop.height <= 0 || crop.x < 0 || crop.y < 0 ||
        crop.x + crop.width > frame_width || crop.y + crop.height > frame_height)
      throw InvalidArgument(
          "crop " + describe(crop) + ": expected a non-empty rectangle inside the " +
          std::to_string(frame_width) + "x" + std::to_string(frame_height) + " frame");
  }

  Geometry &g = geometry_;
  g.crop = crop;
  g.tensor_width = tensor_width;
  g.tensor_height = tensor_height;
  if (options.resize == ResizeMode::Stretch) {
    g.content_width = tensor_width;
    g.content_height = tensor_height;
  } else if (int64_t(tensor_width) * crop.height <= int64_t(tensor_height) * crop.width) {
    g.content_width = tensor_width;
    g.content_height = std::clamp(int(std::lround(double(crop.height) * tensor_width / crop.width)),
                                  1, tensor_height);
  } else {
    g.content_height = tensor_height;
    g.content_width = std::clamp(int(std::lround(double(crop.width) * tensor_height / crop.height)),
                                 1, tensor_width);
  }
  g.offset_x = (tensor_width - g.content_width) / 2;
  g.offset_y = (tensor_height - g.content_height) / 2;
  g.scale_x = double(g.content_width) / crop.width;
  g.scale_y = double(g.content_height) / crop.height;

  linear_tables(crop.width, g.content_width, true, x0_, x1_, alpha_);
  linear_tables(crop.height, g.content_height, false, y0_, y1_, beta_);

  // What the fetcher gives: gray from GRAY8 frames or for gray models, else R,G,B.
  fetched_channels_ = (format == PixelFormat::GRAY8 || options.color == ColorOrder::GRAY) ? 1 : 3;
  if (fetched_channels_ == 1)
    source_of_channel_ = {0, 0, 0};
  else if (options.color == ColorOrder::BGR)
    source_of_channel_ = {2, 1, 0};
  else
    source_of_channel_ = {0, 1, 2};

  const Normalisation &n = options.normalisation;
  for (int k = 0; k < colour_channels; ++k)
    for (int v = 0; v < 256; ++v)
      lut_[k][v] =
          quantise((v * n.pixel_scale - n.mean[k]) / n.std[k], tensor.scale, tensor.zero_point);

  // Fast path tables: fetched channel f's value -> its model channel's byte in a 4-byte pixel.
  packed_rgb_ = colour_channels == 3 && tensor.channels == 4 && tensor.channel_pad_low == 0;
  if (packed_rgb_) {
    for (int k = 0; k < 3; ++k) {
      // With one fetched (gray) channel every model channel reads it: table k serves channel k.
      const int table = fetched_channels_ == 1 ? k : source_of_channel_[k];
      for (int v = 0; v < 256; ++v)
        packed_lut_[table][v] = uint32_t(uint8_t(lut_[k][v])) << (8 * k);
    }
    packed_padding_ = uint32_t(uint8_t(tensor.zero_point)) << 24;
  }

  const int C = tensor.channels;
  padding_row_.assign(size_t(tensor.width) * C, int8_t(tensor.zero_point));
  border_row_ = padding_row_;
  for (int x = tensor.pad_left; x < tensor.pad_left + tensor_width; ++x)
    for (int k = 0; k < colour_channels; ++k)
      border_row_[size_t(x) * C + tensor.channel_pad_low + k] = lut_[k][options.pad_value];
}

void Preprocessor::check_frame(const Frame &frame) const {
  if (frame.format != format_ || frame.width != frame_width_ || frame.height != frame_height_)
    throw InvalidArgument(std::string("frame ") + pixel_format_name(frame.format) + " " +
                          std::to_string(frame.width) + "x" + std::to_string(frame.height) +
                          ": the preprocessor was configured for " + pixel_format_name(format_) +
                          " " + std::to_string(frame_width_) + "x" + std::to_string(frame_height_));
}

template <typename Source>
void Preprocessor::run_with(const Frame &frame, int8_t *tensor) const {
  constexpr int FC = Source::channels;
  const Geometry &g = geometry_;
  const int width = g.content_width;
  const int C = tensor_.channels;
  const size_t row_bytes = size_t(tensor_.width) * C;
  const int colour_channels = options_.color == ColorOrder::GRAY ? 1 : 3;

  // Two horizontally resized source rows (OpenCV's row cache), planar per fetched channel,
  // holding OpenCV's (sum of 2^11-weighted taps) >> 4, which fits int16.
  std::vector<int16_t> rows[2] = {std::vector<int16_t>(size_t(width) * FC),
                                  std::vector<int16_t>(size_t(width) * FC)};
  std::vector<uint8_t> resized(size_t(width) * FC);  // one output row, planar
  int row_source[2] = {-1, -1};
  const int32_t *x0 = x0_.data(), *x1 = x1_.data();
  const int16_t *alpha = alpha_.data();
  const int crop_x = g.crop.x, crop_y = g.crop.y;

  Source source(frame, crop_x + x0_.front(), crop_x + x1_.back());
  auto horizontal = [&](int src_row, int16_t *out) {
    const auto fetch = source.row(crop_y + src_row);
    int32_t p0[3], p1[3];
    for (int j = 0; j < width; ++j) {
      const int a0 = alpha[2 * j], a1 = alpha[2 * j + 1];
      fetch(crop_x + x0[j], p0);
      if (a1 == 0) {
        // Zero-weight taps (borders, integer scale factors) add nothing: skip the fetch.
        for (int c = 0; c < FC; ++c) out[c * width + j] = int16_t((p0[c] * a0) >> 4);
        continue;
      }
      fetch(crop_x + x1[j], p1);
      for (int c = 0; c < FC; ++c) out[c * width + j] = int16_t((p0[c] * a0 + p1[c] * a1) >> 4);
    }
  };
  auto row_for = [&](int src_row) -> const int16_t * {
    for (int i = 0; i < 2; ++i)
      if (row_source[i] == src_row) return rows[i].data();
    return nullptr;
  };

  const int content_begin = tensor_.pad_top + g.offset_y;
  const int content_end = content_begin + g.content_height;
  const int image_end = tensor_.pad_top + tensor_.unpadded_height();
  const size_t left_bytes = size_t(tensor_.pad_left + g.offset_x) * C;
  const size_t content_bytes = size_t(width) * C;
  const int channel_low = tensor_.channel_pad_low;
  const int s0 = source_of_channel_[0], s1 = source_of_channel_[1], s2 = source_of_channel_[2];
  const int n = width * FC;

  for (int r = 0; r < tensor_.height; ++r) {
    int8_t *out = tensor + size_t(r) * row_bytes;
    if (r < tensor_.pad_top || r >= image_end) {
      std::memcpy(out, padding_row_.data(), row_bytes);
      continue;
    }
    if (r < content_begin || r >= content_end) {
      std::memcpy(out, border_row_.data(), row_bytes);
      continue;
    }
    const int dy = r - content_begin;
    const int b0 = beta_[2 * dy], b1 = beta_[2 * dy + 1];
    // A zero-weight second row contributes nothing: do not resize it.
    const int sy0 = y0_[dy], sy1 = b1 == 0 ? sy0 : y1_[dy];
    const int16_t *h0 = row_for(sy0);
    const int16_t *h1 = row_for(sy1);
    if (!h0 || !h1) {
      // Refill the slot(s) not needed by this output row.
      for (int need : {sy0, sy1}) {
        if (row_for(need)) continue;
        const int slot = (row_source[0] == sy0 || row_source[0] == sy1) ? 1 : 0;
        horizontal(need, rows[slot].data());
        row_source[slot] = need;
      }
      h0 = row_for(sy0);
      h1 = row_for(sy1);
    }
    // OpenCV's vertical pass: 16x16 -> high 16 bits products, rounded. Vectorises (pmulhw).
    uint8_t *v = resized.data();
    const int16_t w0 = int16_t(b0), w1 = int16_t(b1);
    for (int i = 0; i < n; ++i) {
      const int value = ((int16_t((w0 * h0[i]) >> 16) + int16_t((w1 * h1[i]) >> 16) + 2) >> 2);
      v[i] = uint8_t(value > 255 ? 255 : (value < 0 ? 0 : value));
    }

    std::memcpy(out, border_row_.data(), left_bytes);
    std::memcpy(out + left_bytes + content_bytes, border_row_.data() + left_bytes + content_bytes,
                row_bytes - left_bytes - content_bytes);
    int8_t *px = out + left_bytes;
    const uint8_t *v0 = v, *v1 = FC == 3 ? v + width : v, *v2 = FC == 3 ? v + 2 * width : v;
    if (packed_rgb_) {
      // RGB(+1 padding channel) tensors: three table lookups build each 4-byte pixel.
      const uint32_t *t0 = packed_lut_[0].data(), *t1 = packed_lut_[1].data(),
                     *t2 = packed_lut_[2].data();
      const uint32_t pad = packed_padding_;
      for (int j = 0; j < width; ++j, px += 4) {
        const uint32_t word = t0[v0[j]] | t1[v1[j]] | t2[v2[j]] | pad;
        std::memcpy(px, &word, 4);
      }
      continue;
    }
    const uint8_t *planes[3] = {v0, v1, v2};
    for (int j = 0; j < width; ++j, px += C) {
      if (C != colour_channels) std::memset(px, tensor_.zero_point, C);
      if (colour_channels == 3) {
        px[channel_low] = lut_[0][planes[s0][j]];
        px[channel_low + 1] = lut_[1][planes[s1][j]];
        px[channel_low + 2] = lut_[2][planes[s2][j]];
      } else {
        px[channel_low] = lut_[0][v0[j]];
      }
    }
  }
}

void Preprocessor::run(const Frame &frame, int8_t *tensor) const {
  check_frame(frame);
  const bool gray = options_.color == ColorOrder::GRAY;
  switch (format_) {
    case PixelFormat::NV12:
      return gray ? run_with<DirectSource<Nv12Fetch<true>>>(frame, tensor)
                  : run_with<YuvRowSource<true>>(frame, tensor);
    case PixelFormat::I420:
      return gray ? run_with<DirectSource<I420Fetch<true>>>(frame, tensor)
                  : run_with<YuvRowSource<false>>(frame, tensor);
    case PixelFormat::RGB:
      return gray ? run_with<DirectSource<PackedFetch<3, 0, 1, 2, true>>>(frame, tensor)
                  : run_with<DirectSource<PackedFetch<3, 0, 1, 2, false>>>(frame, tensor);
    case PixelFormat::BGR:
      return gray ? run_with<DirectSource<PackedFetch<3, 2, 1, 0, true>>>(frame, tensor)
                  : run_with<DirectSource<PackedFetch<3, 2, 1, 0, false>>>(frame, tensor);
    case PixelFormat::RGBA:
    case PixelFormat::RGBx:
      return gray ? run_with<DirectSource<PackedFetch<4, 0, 1, 2, true>>>(frame, tensor)
                  : run_with<DirectSource<PackedFetch<4, 0, 1, 2, false>>>(frame, tensor);
    case PixelFormat::BGRA:
    case PixelFormat::BGRx:
      return gray ? run_with<DirectSource<PackedFetch<4, 2, 1, 0, true>>>(frame, tensor)
                  : run_with<DirectSource<PackedFetch<4, 2, 1, 0, false>>>(frame, tensor);
    case PixelFormat::GRAY8:
      return run_with<DirectSource<GrayFetch>>(frame, tensor);
  }
}

}  // namespace axstream::preprocess
