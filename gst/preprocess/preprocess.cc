// The fused frame -> tensor pass. Bit-exactness with OpenCV (cvtColor, then resize INTER_LINEAR)
// comes from using OpenCV's own fixed-point arithmetic: BT.601 20-bit YUV->RGB, 15-bit RGB->gray,
// 11-bit resize weights with the same rounding of the vertical pass. The per-row work runs in
// kernels.cc (vectorised, AVX2 where the CPU has it); this file plans it once per configuration.
#include "axstream/preprocess/preprocess.h"

#include <strings.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "axstream/error.h"
#include "kernels.h"

namespace axstream::preprocess {

namespace {

constexpr int kResizeCoefBits = 11;
constexpr int kResizeCoefScale = 1 << kResizeCoefBits;

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

// Per block of 8 columns, the pshufb controls of kernels::YuvTapIndex's windows: tap k's
// `tap_bytes` bytes go to bytes 4k.. of the result, from the 32 bytes at the block's first tap.
// Empty when some block's taps do not fit in those 32 bytes.
std::vector<uint8_t> window_controls(const std::vector<int32_t> &offsets, int tap_bytes) {
  const size_t blocks = offsets.size() / 8;
  std::vector<uint8_t> controls(blocks * 64, 0x80);  // 0x80: zero byte
  for (size_t block = 0; block < blocks; ++block) {
    const int32_t first = offsets[8 * block];
    uint8_t *low = controls.data() + 64 * block, *high = low + 32;
    for (int k = 0; k < 8; ++k) {
      const int32_t at = offsets[8 * block + k] - first;
      if (at < 0 || at + tap_bytes > 32) return {};
      for (int i = 0; i < tap_bytes; ++i) {
        const int position = at + i, lane_byte = 4 * k + i;
        if (position < 16)
          low[lane_byte] = uint8_t(position);
        else
          high[lane_byte] = uint8_t(position - 16);
      }
    }
  }
  return controls;
}

}  // namespace

PixelFormat pixel_format_from_string(const std::string &name) {
  static const std::pair<const char *, PixelFormat> names[] = {
      {"NV12", PixelFormat::NV12}, {"I420", PixelFormat::I420},  {"YUY2", PixelFormat::YUY2},
      {"UYVY", PixelFormat::UYVY}, {"RGB", PixelFormat::RGB},    {"BGR", PixelFormat::BGR},
      {"RGBA", PixelFormat::RGBA}, {"BGRA", PixelFormat::BGRA},  {"RGBx", PixelFormat::RGBx},
      {"BGRx", PixelFormat::BGRx}, {"GRAY8", PixelFormat::GRAY8}};
  for (const auto &[text, format] : names)
    if (name == text) return format;
  throw InvalidArgument("pixel format '" + name +
                        "': expected one of NV12, I420, YUY2, UYVY, RGB, BGR, RGBA, BGRA, RGBx, "
                        "BGRx, GRAY8");
}

const char *pixel_format_name(PixelFormat format) {
  switch (format) {
    case PixelFormat::NV12:
      return "NV12";
    case PixelFormat::I420:
      return "I420";
    case PixelFormat::YUY2:
      return "YUY2";
    case PixelFormat::UYVY:
      return "UYVY";
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

namespace {

// Throws InvalidArgument naming the first value the preprocessor cannot work with.
void check_configuration(int frame_width, int frame_height, const TensorSpec &tensor,
                         const Options &options) {
  if (frame_width <= 0 || frame_height <= 0)
    throw InvalidArgument("frame size " + std::to_string(frame_width) + "x" +
                          std::to_string(frame_height) + ": expected a positive width and height");
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
}

// The crop (the whole frame by default), checked to lie inside the frame.
Rect checked_crop(const Options &options, int frame_width, int frame_height) {
  Rect crop{0, 0, frame_width, frame_height};
  if (options.crop) {
    crop = *options.crop;
    if (crop.width <= 0 || crop.height <= 0 || crop.x < 0 || crop.y < 0 ||
        crop.x + crop.width > frame_width || crop.y + crop.height > frame_height)
      throw InvalidArgument(
          "crop " + describe(crop) + ": expected a non-empty rectangle inside the " +
          std::to_string(frame_width) + "x" + std::to_string(frame_height) + " frame");
  }
  return crop;
}

// Where the resized crop sits in the unpadded tensor: stretched over it, scaled to its height
// from the left (PadRight), or letterboxed in its middle.
Geometry letterbox_geometry(const Rect &crop, int tensor_width, int tensor_height,
                            ResizeMode resize) {
  Geometry g;
  g.crop = crop;
  g.tensor_width = tensor_width;
  g.tensor_height = tensor_height;
  if (resize == ResizeMode::Stretch) {
    g.content_width = tensor_width;
    g.content_height = tensor_height;
  } else if (resize == ResizeMode::PadRight) {
    g.content_height = tensor_height;
    g.content_width = int(std::clamp(std::ceil(double(tensor_height) * crop.width / crop.height),
                                     1.0, double(tensor_width)));
  } else if (int64_t(tensor_width) * crop.height <= int64_t(tensor_height) * crop.width) {
    g.content_width = tensor_width;
    g.content_height = std::clamp(int(std::lround(double(crop.height) * tensor_width / crop.width)),
                                  1, tensor_height);
  } else {
    g.content_height = tensor_height;
    g.content_width = std::clamp(int(std::lround(double(crop.width) * tensor_height / crop.height)),
                                 1, tensor_width);
  }
  const bool centred = resize != ResizeMode::PadRight;
  g.offset_x = centred ? (tensor_width - g.content_width) / 2 : 0;
  g.offset_y = centred ? (tensor_height - g.content_height) / 2 : 0;
  g.scale_x = double(g.content_width) / crop.width;
  g.scale_y = double(g.content_height) / crop.height;
  return g;
}

}  // namespace

Preprocessor::Preprocessor(PixelFormat format, int frame_width, int frame_height,
                           const TensorSpec &tensor, const Options &options)
    : format_(format),
      frame_width_(frame_width),
      frame_height_(frame_height),
      tensor_(tensor),
      options_(options),
      yuv_(yuv_coefficients(options.colorimetry)) {
  check_configuration(frame_width, frame_height, tensor, options);
  const Rect crop = checked_crop(options, frame_width, frame_height);
  geometry_ =
      letterbox_geometry(crop, tensor.unpadded_width(), tensor.unpadded_height(), options.resize);
  const Geometry &g = geometry_;
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
  plan_quantisation();
  const int colour_channels = options.color == ColorOrder::GRAY ? 1 : 3;
  packed_rgb_ = colour_channels == 3 && tensor.channels == 4 && tensor.channel_pad_low == 0;
  packed_padding_ = uint32_t(uint8_t(tensor.zero_point)) << 24;

  kernels_ = &kernels::baseline_kernels();
#if defined(AXSTREAM_PREPROCESS_AVX2_KERNELS)
  if (options.use_avx2 && __builtin_cpu_supports("avx2")) kernels_ = &kernels::avx2_kernels();
#endif
  plan_rows();
  fill_border_rows();
  // Sparse: the content reads under 3/4 of the source rows its span covers (see kLoadBlockRows).
  int rows_read = 0, last_row = -1;
  for (int dy = 0; dy < geometry_.content_height; ++dy)
    for (int src_row : source_rows(dy))
      if (src_row > last_row) {
        ++rows_read;
        last_row = src_row;
      }
  const int rows_spanned = last_row - source_rows(0)[0] + 1;
  sparse_rows_ = 4 * rows_read < 3 * rows_spanned;
}

// lut_: int8 of every 8-bit value per model channel; the same as fixed-point affines where
// those reproduce every entry (affine_exact_).
void Preprocessor::plan_quantisation() {
  const TensorSpec &tensor = tensor_;
  const int colour_channels = options_.color == ColorOrder::GRAY ? 1 : 3;
  const Normalisation &n = options_.normalisation;
  for (int k = 0; k < colour_channels; ++k)
    for (int v = 0; v < 256; ++v)
      lut_[k][v] =
          quantise((v * n.pixel_scale - n.mean[k]) / n.std[k], tensor.scale, tensor.zero_point);

  // The same tables as fixed-point affines, which vectorise: q = floor(a * v + b + 1/2) with
  // a = pixel_scale / std / scale and b = zero_point - mean / std / scale, with as many fraction
  // bits as int32 allows. Used only when they give lut_ exactly for every value (ties of the
  // half-to-even rounding, or too little precision, fall back to the tables).
  affine_exact_ = true;
  for (int k = 0; k < colour_channels && affine_exact_; ++k) {
    const double a = n.pixel_scale / n.std[k] / tensor.scale;
    const double b = tensor.zero_point - n.mean[k] / n.std[k] / tensor.scale + 0.5;
    bool found = false;
    for (int shift = 30; shift >= 0 && !found; --shift) {
      const double unit = std::ldexp(1.0, shift);
      const int64_t multiplier = std::llround(a * unit), addend = std::llround(b * unit);
      if (std::abs(multiplier) * 255 + std::abs(addend) >= (int64_t(1) << 31)) continue;
      found = true;
      for (int v = 0; v < 256 && found; ++v) {
        const int64_t q = std::clamp<int64_t>((v * multiplier + addend) >> shift, -128, 127);
        found = q == lut_[k][v];
      }
      quant_multiplier_[k] = int32_t(multiplier);
      quant_addend_[k] = int32_t(addend);
      quant_shift_[k] = shift;
      break;  // the most precise affine that fits decides
    }
    affine_exact_ = found;
  }
}

// The rows outside the content: the tensor's own padding (zero point) and the letterbox
// border (the normalised pad value; PadRight's border is the zero point).
void Preprocessor::fill_border_rows() {
  const TensorSpec &tensor = tensor_;
  const int tensor_width = tensor.unpadded_width();
  const int colour_channels = options_.color == ColorOrder::GRAY ? 1 : 3;
  const int C = tensor.channels;
  padding_row_.assign(size_t(tensor.width) * C, int8_t(tensor.zero_point));
  border_row_ = padding_row_;  // PadRight's border: the normalised zero, i.e. the zero point
  if (options_.resize != ResizeMode::PadRight)
    for (int x = tensor.pad_left; x < tensor.pad_left + tensor_width; ++x)
      for (int k = 0; k < colour_channels; ++k)
        border_row_[size_t(x) * C + tensor.channel_pad_low + k] = lut_[k][options_.pad_value];
}

void Preprocessor::check_frame(const Frame &frame) const {
  if (frame.format != format_ || frame.width != frame_width_ || frame.height != frame_height_)
    throw InvalidArgument(std::string("frame ") + pixel_format_name(frame.format) + " " +
                          std::to_string(frame.width) + "x" + std::to_string(frame.height) +
                          ": the preprocessor was configured for " + pixel_format_name(format_) +
                          " " + std::to_string(frame_width_) + "x" + std::to_string(frame_height_));
}

const char *Preprocessor::kernel_set_name() const { return kernels_->name; }

void Preprocessor::plan_rows() {
  const Geometry &g = geometry_;
  const int width = g.content_width;
  const int crop_x = g.crop.x;
  weight0_.resize(size_t(width));
  weight1_.resize(size_t(width));
  two_taps_ = false;
  for (int j = 0; j < width; ++j) {
    weight0_[j] = alpha_[2 * j];
    weight1_[j] = alpha_[2 * j + 1];
    two_taps_ = two_taps_ || weight1_[j] != 0;
  }
  pairs_ = two_taps_;
  for (int j = 0; j < width && pairs_; ++j)
    pairs_ = x0_[j] == x0_[0] + 2 * j && x1_[j] == x0_[j] + 1;
  packed422_ = format_ == PixelFormat::YUY2 || format_ == PixelFormat::UYVY;
  nv12_layout_ = format_ == PixelFormat::NV12 || packed422_;
  const bool yuv = nv12_layout_ || format_ == PixelFormat::I420;
  if (packed422_) {
    // Whole pairs around every column a plan reads (YuvRow's span, YuvTaps' chroma pairs).
    split_begin_ = (crop_x + x0_.front()) & ~1;
    split_end_ = ((crop_x + x1_.back()) | 1) + 1;
  }
  tap0_.resize(size_t(width));
  tap1_.resize(size_t(width));
  safe_taps0_ = safe_taps1_ = width;
  if (fetched_channels_ == 1 && (yuv || format_ == PixelFormat::GRAY8)) {
    // Gray from YUV is the luma plane (cv::COLOR_YUV2GRAY_*).
    plan_ = RowPlan::Gray;
    for (int j = 0; j < width; ++j) {
      tap0_[j] = crop_x + x0_[j];
      tap1_[j] = crop_x + x1_[j];
    }
    return;
  }
  if (yuv) {
    // Converting a whole row is contiguous and vectorises best; converting only the taps does
    // less work once the taps are sparse (strong downscales).
    const int first = crop_x + x0_.front(), last = crop_x + x1_.back();
    // Whole chroma pairs from an even column; an odd-width frame's last column is a pair's
    // first half, converted alone with the chroma sample that covers it.
    span_begin_ = first & ~1;
    span_pixels_ = std::min((last | 1) + 1, frame_width_) - span_begin_;
    const double conversions = double(width) * (two_taps_ ? 2 : 1);
    plan_ = span_pixels_ <= 1.5 * conversions ? RowPlan::YuvRow : RowPlan::YuvTaps;
    if (pairs_ && first % 2 == 0) plan_ = RowPlan::YuvPairs;
    channel_shift_ = {0, 8, 16};
    if (plan_ == RowPlan::YuvRow) {
      for (int j = 0; j < width; ++j) {
        tap0_[j] = (crop_x + x0_[j] - span_begin_) * 4;
        tap1_[j] = (crop_x + x1_[j] - span_begin_) * 4;
      }
      return;
    }
    chroma0_.resize(size_t(width));
    chroma1_.resize(size_t(width));
    const bool nv12 = nv12_layout_;
    for (int j = 0; j < width; ++j) {
      tap0_[j] = crop_x + x0_[j];
      tap1_[j] = crop_x + x1_[j];
      chroma0_[j] = nv12 ? tap0_[j] & ~1 : tap0_[j] >> 1;
      chroma1_[j] = nv12 ? tap1_[j] & ~1 : tap1_[j] >> 1;
    }
    if (kernels_->yuv_gather_taps) {
      luma_window0_ = window_controls(tap0_, 1);
      chroma_window0_ = window_controls(chroma0_, nv12 ? 2 : 1);
      if (two_taps_) {
        luma_window1_ = window_controls(tap1_, 1);
        chroma_window1_ = window_controls(chroma1_, nv12 ? 2 : 1);
      }
    }
    return;
  }
  plan_ = fetched_channels_ == 1 ? RowPlan::PackedGray : RowPlan::Packed;
  const bool bgr_order =
      format_ == PixelFormat::BGR || format_ == PixelFormat::BGRA || format_ == PixelFormat::BGRx;
  channel_shift_ = bgr_order ? std::array<int, 3>{16, 8, 0} : std::array<int, 3>{0, 8, 16};
  bytes_per_pixel_ = (format_ == PixelFormat::RGB || format_ == PixelFormat::BGR) ? 3 : 4;
  // A 4-byte read of a 3-byte pixel must not pass the end of the row's pixels (the last row of
  // a frame may end there): the columns past safe_taps read their 3 bytes one by one.
  const int64_t row_end = int64_t(frame_width_) * bytes_per_pixel_;
  safe_taps0_ = safe_taps1_ = 0;
  for (int j = 0; j < width; ++j) {
    tap0_[j] = (crop_x + x0_[j]) * bytes_per_pixel_;
    tap1_[j] = (crop_x + x1_[j]) * bytes_per_pixel_;
    if (tap0_[j] + 4 <= row_end) safe_taps0_ = j + 1;
    if (tap1_[j] + 4 <= row_end) safe_taps1_ = j + 1;
  }
}

// The rows of one source line: plane 0 (luma, gray or packed pixels) and, for NV12/I420, the
// chroma rows (NV12: U at chroma1, V at chroma2 = chroma1 + 1).
struct Preprocessor::SourceRow {
  const uint8_t *plane0, *chroma1, *chroma2;
};

// run()'s per-call state: the frame, scratch memory and what every row reuses.
struct Preprocessor::RunState {
  RunState(const Preprocessor &p, const Frame &frame);

  const Frame &frame;
  const size_t n;  // output columns of the content (geometry_.content_width)
  // Scratch: two horizontally resized rows (OpenCV's row cache), planar int16 per fetched
  // channel, holding OpenCV's (sum of 2^11-weighted taps) >> 4; gathered taps; one vertically
  // resized row (planar u8); quantised planes; 32-bit taps or output pixels; a converted row.
  std::vector<int16_t> rows;
  std::vector<uint8_t> bytes;
  std::vector<uint32_t> words;
  uint8_t *taps, *resized;
  int8_t *quantised;
  uint32_t *word0, *word1, *converted;
  // YUY2/UYVY: one source row split into luma and NV12 UV, indexed by frame column (zeroed, and
  // 32 bytes longer than the row, so 4-byte tap reads past the split columns read zeros).
  std::vector<uint8_t> split;
  uint8_t *split_luma = nullptr, *split_chroma = nullptr;
  int16_t *row_slot[2];
  int row_source[2] = {-1, -1};  // source row held by each slot of the row cache
  int loaded_row = -1;           // the last source row load_source_rows brought into cache

  kernels::Weights weights;
  kernels::ChannelShifts shifts;
  kernels::Affine affine[3];
  const uint8_t *plane_of_channel[3];  // in `resized`, per model channel
  // Source bytes the taps of one row read (crop-relative columns), for load_source_rows.
  size_t touched_begin, touched_end;

  // The cached horizontally resized source row, or nullptr.
  const int16_t *row_for(int src_row) const {
    for (int i = 0; i < 2; ++i)
      if (row_source[i] == src_row) return row_slot[i];
    return nullptr;
  }
};

inline Preprocessor::RunState::RunState(const Preprocessor &p, const Frame &frame)
    : frame(frame),
      n(size_t(p.geometry_.content_width)),
      rows(2 * size_t(p.fetched_channels_) * n),
      bytes(6 * n + size_t(p.fetched_channels_) * n + 3 * n),
      words(2 * n + (p.plan_ == RowPlan::YuvRow ? size_t(p.span_pixels_) : 0)),
      weights{p.weight0_.data(), p.two_taps_ ? p.weight1_.data() : nullptr},
      shifts{p.channel_shift_[0], p.channel_shift_[1], p.channel_shift_[2]} {
  taps = bytes.data();
  resized = taps + 6 * n;
  quantised = reinterpret_cast<int8_t *>(resized + size_t(p.fetched_channels_) * n);
  word0 = words.data();
  word1 = word0 + n;
  converted = word1 + n;
  if (p.packed422_) {
    const size_t split_row = size_t(p.split_end_) + 32;
    split.assign(2 * split_row, 0);
    split_luma = split.data();
    split_chroma = split.data() + split_row;
  }
  row_slot[0] = rows.data();
  row_slot[1] = rows.data() + size_t(p.fetched_channels_) * n;
  for (int c = 0; c < 3; ++c)
    affine[c] = {p.quant_multiplier_[c], p.quant_addend_[c], p.quant_shift_[c]};
  for (int c = 0; c < 3; ++c) plane_of_channel[c] = resized + size_t(p.source_of_channel_[c]) * n;
  const int bpp =
      p.plan_ == RowPlan::Packed || p.plan_ == RowPlan::PackedGray ? p.bytes_per_pixel_ : 1;
  touched_begin = size_t(p.geometry_.crop.x + p.x0_.front()) * bpp;
  touched_end = size_t(p.geometry_.crop.x + p.x1_.back() + 1) * bpp;
}

// Where the content reads its source rows sparsely (a downscale by more than ~2.7x, so rows are
// skipped), before each block of kLoadBlockRows output rows one byte of every cache line its
// source rows' taps read is loaded, in a loop of independent loads, so the block's misses are all
// in flight at once; the kernels then find the rows in cache. There the tap gathers stall on the
// misses one by one, and __builtin_prefetch two rows ahead hid little of it on this machine: a
// Megamind.avi frame (720x528 NV12, not in cache, as a frame reaches axpreprocess in a pipeline)
// -> 128x128 took 0.27 ms with the prefetches, 0.115 ms with the loads (0.09-0.10 ms when the
// frame is in cache). Where every row is read (upscales, 720p -> 640x360) the rows stream in
// order, the hardware prefetcher follows, and a load pass before the compute only added its time
// (720p NV12 -> 640 out of cache, bench_preprocess: ~0.5 -> ~0.64 ms), so those keep the
// prefetches. A frame already in cache pays for the loads: 1080p BGRx -> 640x640 (bench_preprocess,
// the 8.3 MB frame in L3) 0.27 -> 0.30 ms. Blocks of 8 rows keep what is loaded ahead small (a
// 1080p BGRx row spans 7.5 KB).
constexpr int kLoadBlockRows = 8;

void Preprocessor::run(const Frame &frame, int8_t *tensor) const {
  check_frame(frame);
  const Geometry &g = geometry_;
  const size_t row_bytes = size_t(tensor_.width) * tensor_.channels;
  RunState state(*this, frame);

  const int content_begin = tensor_.pad_top + g.offset_y;
  const int content_end = content_begin + g.content_height;
  const int image_end = tensor_.pad_top + tensor_.unpadded_height();
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
    if (!sparse_rows_)
      prefetch_rows_ahead(dy, content_end - content_begin, state);
    else if (dy % kLoadBlockRows == 0)
      load_source_rows(dy, std::min(dy + kLoadBlockRows, content_end - content_begin), state);
    resize_row(dy, state);
    write_content_row(state, out);
  }
}

// run()'s steps below are `inline` (they are only called from here): they run once per row,
// and as out-of-line calls they made small tensors 8-14% slower (bench_preprocess, 1080p BGRx
// -> 224x224: 0.090 -> 0.103 ms).

// Output row dy's two source rows, as the vertical pass weighs them: a zero-weight second row
// contributes nothing, so it is not resized.
inline std::array<int, 2> Preprocessor::source_rows(int dy) const {
  const int first = y0_[dy];
  return {first, beta_[2 * dy + 1] == 0 ? first : y1_[dy]};
}

// Two rows ahead (and one, for the first rows), so a shared machine's longer memory latency is
// covered too.
inline void Preprocessor::prefetch_rows_ahead(int dy, int content_height,
                                              const RunState &state) const {
  const auto [sy0, sy1] = source_rows(dy);
  for (int ahead = dy == 0 ? 1 : 2; ahead <= 2 && dy + ahead < content_height; ++ahead) {
    const auto [next0, next1] = source_rows(dy + ahead);
    if (next0 != sy0 && next0 != sy1) prefetch_source_row(next0, state);
    if (next1 != next0 && next1 != sy0 && next1 != sy1) prefetch_source_row(next1, state);
  }
}

// visit(row, begin, end) for each plane's bytes [begin, end) that the taps read on source row
// src_row (crop-relative columns): luma or packed pixels, then the chroma rows if fetched.
template <typename Visit>
inline void Preprocessor::visit_source_row(int src_row, const RunState &state,
                                           Visit &&visit) const {
  const Frame &frame = state.frame;
  const int y = geometry_.crop.y + src_row;
  if (packed422_) {
    // The bytes resize_source_row splits: 2 per pixel.
    visit(frame.planes[0] + size_t(y) * size_t(frame.strides[0]), 2 * size_t(split_begin_),
          2 * size_t(split_end_));
    return;
  }
  visit(frame.planes[0] + size_t(y) * size_t(frame.strides[0]), state.touched_begin,
        state.touched_end);
  const bool yuv = format_ == PixelFormat::NV12 || format_ == PixelFormat::I420;
  if (!yuv || fetched_channels_ == 1) return;
  const bool nv12 = format_ == PixelFormat::NV12;
  // I420's chroma rows hold ceil(width / 2) samples, so the last one read is (end + 1) / 2 - 1.
  const size_t chroma_begin = nv12 ? state.touched_begin : state.touched_begin / 2;
  const size_t chroma_end = nv12 ? state.touched_end : (state.touched_end + 1) / 2;
  for (int p = 1; p <= (nv12 ? 1 : 2); ++p)
    visit(frame.planes[p] + size_t(y / 2) * size_t(frame.strides[p]), chroma_begin, chroma_end);
}

// The taps' gathers stall on cache misses one by one; asking for the next source row's lines a
// row ahead lets them arrive in parallel.
inline void Preprocessor::prefetch_source_row(int src_row, const RunState &state) const {
  visit_source_row(src_row, state, [](const uint8_t *row, size_t begin, size_t end) {
    for (size_t b = begin; b < end + 64; b += 64) __builtin_prefetch(row + b);
  });
}

// The source rows of output rows [dy_begin, dy_end) into cache (see kLoadBlockRows).
inline void Preprocessor::load_source_rows(int dy_begin, int dy_end, RunState &state) const {
  unsigned sum = 0;
  auto load_lines = [&sum](const uint8_t *row, size_t begin, size_t end) {
    for (size_t b = begin; b < end; b += 64) sum += row[b];
    sum += row[end - 1];
  };
  for (int dy = dy_begin; dy < dy_end; ++dy) {
    for (int src_row : source_rows(dy)) {
      if (src_row <= state.loaded_row) continue;  // rows only move down the frame
      state.loaded_row = src_row;
      visit_source_row(src_row, state, load_lines);
    }
  }
  // The loads are wanted for their side effect on the cache only: keep the compiler from
  // dropping them.
  asm volatile("" : : "r"(sum));
}

// Output row dy of the content into state.resized: its source rows resized horizontally (the
// ones not in the row cache), then blended vertically.
inline void Preprocessor::resize_row(int dy, RunState &state) const {
  const auto [sy0, sy1] = source_rows(dy);
  const int16_t *h0 = state.row_for(sy0);
  const int16_t *h1 = state.row_for(sy1);
  if (!h0 || !h1) {
    // Refill the slot(s) not needed by this output row.
    for (int need : {sy0, sy1}) {
      if (state.row_for(need)) continue;
      const int slot = (state.row_source[0] == sy0 || state.row_source[0] == sy1) ? 1 : 0;
      resize_source_row(need, state, state.row_slot[slot]);
      state.row_source[slot] = need;
    }
    h0 = state.row_for(sy0);
    h1 = state.row_for(sy1);
  }
  kernels_->vertical(h0, h1, beta_[2 * dy], beta_[2 * dy + 1],
                     fetched_channels_ * geometry_.content_width, state.resized);
}

// Source row src_row (crop-relative) resized horizontally into `out`: planar int16 per fetched
// channel, by the row plan chosen at construction.
inline void Preprocessor::resize_source_row(int src_row, RunState &state, int16_t *out) const {
  const kernels::KernelSet &k = *kernels_;
  const Frame &frame = state.frame;
  const int width = geometry_.content_width;
  const size_t n = state.n;
  const int y = geometry_.crop.y + src_row;
  SourceRow row{frame.planes[0] + size_t(y) * size_t(frame.strides[0]), nullptr, nullptr};
  if (packed422_) {
    // YUY2: luma at even bytes, U,V at odd ones; UYVY the other way round. Split into a luma row
    // and an NV12 UV row (this row's own chroma: 4:2:2 has a chroma row per luma row), indexed by
    // frame column, the NV12 plans then read them.
    const bool yuy2 = format_ == PixelFormat::YUY2;
    k.split_bytes(row.plane0 + 2 * size_t(split_begin_), split_end_ - split_begin_,
                  (yuy2 ? state.split_luma : state.split_chroma) + split_begin_,
                  (yuy2 ? state.split_chroma : state.split_luma) + split_begin_);
    row = SourceRow{state.split_luma, state.split_chroma, state.split_chroma + 1};
  } else if (format_ == PixelFormat::NV12) {
    row.chroma1 = frame.planes[1] + size_t(y / 2) * size_t(frame.strides[1]);
    row.chroma2 = row.chroma1 + 1;
  } else if (format_ == PixelFormat::I420) {
    row.chroma1 = frame.planes[1] + size_t(y / 2) * size_t(frame.strides[1]);
    row.chroma2 = frame.planes[2] + size_t(y / 2) * size_t(frame.strides[2]);
  }
  switch (plan_) {
    case RowPlan::Gray: {
      if (pairs_) {
        k.gray_pairs(row.plane0 + tap0_[0], state.weights, width, out);
        return;
      }
      k.gather_u8(row.plane0, tap0_.data(), width, state.taps);
      if (two_taps_) k.gather_u8(row.plane0, tap1_.data(), width, state.taps + n);
      k.gray_taps(state.taps, state.taps + n, state.weights, width, out);
      return;
    }
    case RowPlan::YuvPairs: {
      const int first = tap0_[0];
      if (nv12_layout_)
        k.yuv_pairs(row.plane0 + first, row.chroma1 + first, row.chroma2 + first, 2, yuv_,
                    state.weights, width, out, out + n, out + 2 * n);
      else
        k.yuv_pairs(row.plane0 + first, row.chroma1 + first / 2, row.chroma2 + first / 2, 1, yuv_,
                    state.weights, width, out, out + n, out + 2 * n);
      return;
    }
    case RowPlan::YuvTaps:
      resize_yuv_taps(row, state, out);
      return;
    case RowPlan::YuvRow:
    case RowPlan::Packed:
    case RowPlan::PackedGray:
      resize_packed(row, state, out);
      return;
  }
}

// RowPlan::YuvTaps: the AVX2 kernel straight from the rows where it can, then the remaining
// columns (or all of them) gathered into byte arrays and converted.
inline void Preprocessor::resize_yuv_taps(const SourceRow &row, RunState &state,
                                          int16_t *out) const {
  const kernels::KernelSet &k = *kernels_;
  const int width = geometry_.content_width;
  const size_t n = state.n;
  int done = 0;
  if (k.yuv_gather_taps) {
    const bool nv12 = nv12_layout_;
    // Chroma rows hold ceil(width / 2) samples (U,V pairs for NV12).
    const int chroma_samples = (frame_width_ + 1) / 2;
    const kernels::YuvRows yuv_rows{row.plane0,
                                    row.chroma1,
                                    row.chroma2,
                                    frame_width_,
                                    nv12 ? 2 * chroma_samples : chroma_samples,
                                    nv12};
    auto controls = [](const std::vector<uint8_t> &c) { return c.empty() ? nullptr : c.data(); };
    const kernels::YuvTapIndex index{tap0_.data(),
                                     chroma0_.data(),
                                     tap1_.data(),
                                     chroma1_.data(),
                                     controls(luma_window0_),
                                     controls(chroma_window0_),
                                     controls(luma_window1_),
                                     controls(chroma_window1_)};
    done =
        k.yuv_gather_taps(yuv_rows, index, yuv_, state.weights, width, out, out + n, out + 2 * n);
  }
  if (done == width) return;
  const int rest = width - done;
  uint8_t *const taps = state.taps;
  const kernels::YuvTaps yuv{taps,         taps + n,     taps + 2 * n,
                             taps + 3 * n, taps + 4 * n, taps + 5 * n};
  k.gather_u8(row.plane0, tap0_.data() + done, rest, taps);
  k.gather_u8(row.chroma1, chroma0_.data() + done, rest, taps + n);
  k.gather_u8(row.chroma2, chroma0_.data() + done, rest, taps + 2 * n);
  if (two_taps_) {
    k.gather_u8(row.plane0, tap1_.data() + done, rest, taps + 3 * n);
    k.gather_u8(row.chroma1, chroma1_.data() + done, rest, taps + 4 * n);
    k.gather_u8(row.chroma2, chroma1_.data() + done, rest, taps + 5 * n);
  }
  const kernels::Weights rest_weights{weight0_.data() + done,
                                      two_taps_ ? weight1_.data() + done : nullptr};
  k.yuv_taps(yuv, yuv_, rest_weights, rest, out + done, out + n + done, out + 2 * n + done);
}

// RowPlan::Packed, PackedGray and YuvRow (whose used span is converted to packed pixels first):
// gather the 32-bit taps, then pick and interpolate R, G, B (or gray).
inline void Preprocessor::resize_packed(const SourceRow &row, RunState &state, int16_t *out) const {
  const kernels::KernelSet &k = *kernels_;
  const int width = geometry_.content_width;
  const size_t n = state.n;
  if (plan_ == RowPlan::Packed && pairs_ && bytes_per_pixel_ == 4) {
    k.packed_pairs(row.plane0 + tap0_[0], state.weights, width, state.shifts, out, out + n,
                   out + 2 * n);
    return;
  }
  const uint8_t *source = row.plane0;
  if (plan_ == RowPlan::YuvRow) {
    if (nv12_layout_)
      k.nv12_row_to_rgb0(row.plane0 + span_begin_, row.chroma1 + span_begin_, span_pixels_, yuv_,
                         state.converted);
    else
      k.i420_row_to_rgb0(row.plane0 + span_begin_, row.chroma1 + span_begin_ / 2,
                         row.chroma2 + span_begin_ / 2, span_pixels_, yuv_, state.converted);
    source = reinterpret_cast<const uint8_t *>(state.converted);
  }
  gather_words(source, tap0_, safe_taps0_, state.word0);
  if (two_taps_) gather_words(source, tap1_, safe_taps1_, state.word1);
  if (plan_ == RowPlan::PackedGray)
    k.packed_gray_taps(state.word0, state.word1, state.weights, width, state.shifts, out);
  else
    k.packed_taps(state.word0, state.word1, state.weights, width, state.shifts, out, out + n,
                  out + 2 * n);
}

// 32-bit taps at row + index[j]; the columns past `safe` read their 3 bytes one by one, so the
// read stays inside the row.
inline void Preprocessor::gather_words(const uint8_t *row, const std::vector<int32_t> &index,
                                       int safe, uint32_t *out) const {
  kernels_->gather_u32(row, index.data(), safe, out);
  for (int j = safe; j < geometry_.content_width; ++j) {
    const uint8_t *p = row + index[j];
    out[j] = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16;
  }
}

// One tensor row of content from state.resized: the letterbox border left and right of it,
// the quantised colour channels in the tensor's layout.
inline void Preprocessor::write_content_row(RunState &state, int8_t *out) const {
  const kernels::KernelSet &k = *kernels_;
  const int width = geometry_.content_width;
  const size_t n = state.n;
  const int C = tensor_.channels;
  const size_t row_bytes = size_t(tensor_.width) * C;
  const int colour_channels = options_.color == ColorOrder::GRAY ? 1 : 3;
  const size_t left_bytes = size_t(tensor_.pad_left + geometry_.offset_x) * C;
  const size_t content_bytes = n * C;
  const uint8_t *const *plane_of_channel = state.plane_of_channel;
  if (packed_rgb_ && affine_exact_) {
    // The Metis layout (RGB + 1 padding channel): whole 4-byte pixels, then one copy.
    std::memcpy(out, border_row_.data(), left_bytes);
    std::memcpy(out + left_bytes + content_bytes, border_row_.data() + left_bytes + content_bytes,
                row_bytes - left_bytes - content_bytes);
    k.quantise_rgb0(plane_of_channel[0], plane_of_channel[1], plane_of_channel[2], state.affine,
                    packed_padding_, width, state.word0);
    std::memcpy(out + left_bytes, state.word0, content_bytes);
    return;
  }
  if (colour_channels == 3 && C == 3 && affine_exact_) {
    // Plain RGB tensors: 4-byte pixels from the same kernel, packed to 3 bytes (each store
    // overlaps the next pixel, which overwrites it; the last one stores exactly 3 bytes).
    std::memcpy(out, border_row_.data(), left_bytes);
    k.quantise_rgb0(plane_of_channel[0], plane_of_channel[1], plane_of_channel[2], state.affine, 0,
                    width, state.word0);
    int8_t *px = out + left_bytes;
    for (int j = 0; j + 1 < width; ++j) std::memcpy(px + 3 * size_t(j), state.word0 + j, 4);
    std::memcpy(px + 3 * (n - 1), state.word0 + (n - 1), 3);
    std::memcpy(out + left_bytes + content_bytes, border_row_.data() + left_bytes + content_bytes,
                row_bytes - left_bytes - content_bytes);
    return;
  }
  quantise_planes(state);
  const int8_t *quantised = state.quantised;
  if (C == 1) {
    std::memcpy(out, border_row_.data(), left_bytes);
    std::memcpy(out + left_bytes, quantised, n);
    std::memcpy(out + left_bytes + n, border_row_.data() + left_bytes + n,
                row_bytes - left_bytes - n);
    return;
  }
  // Any other layout: the border row gives padding channels and borders, then the colour
  // channels are interleaved into it.
  std::memcpy(out, border_row_.data(), row_bytes);
  int8_t *px = out + left_bytes + tensor_.channel_pad_low;
  for (int c = 0; c < colour_channels; ++c) {
    const int8_t *q = quantised + size_t(c) * n;
    for (int j = 0; j < width; ++j) px[size_t(j) * C + c] = q[j];
  }
}

// The resized row's colour channels quantised into planar int8 (state.quantised): the affine
// kernel when it is exact, else the lookup tables.
inline void Preprocessor::quantise_planes(RunState &state) const {
  const int width = geometry_.content_width;
  const int colour_channels = options_.color == ColorOrder::GRAY ? 1 : 3;
  for (int c = 0; c < colour_channels; ++c) {
    int8_t *q = state.quantised + size_t(c) * state.n;
    if (affine_exact_) {
      kernels_->quantise(state.plane_of_channel[c], state.affine[c], width, q);
    } else {
      const int8_t *lut = lut_[c].data();
      const uint8_t *v = state.plane_of_channel[c];
      for (int j = 0; j < width; ++j) q[j] = lut[v[j]];
    }
  }
}

}  // namespace axstream::preprocess
