// Frame -> padded int8 NHWC model input in one fused pass (crop, bilinear resize with letterbox or
// stretch, colour conversion, normalisation, quantisation, padding). GStreamer-free.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "axstream/preprocess/yuv_coefficients.h"

namespace axstream::preprocess {

namespace kernels {
struct KernelSet;
}

// YUY2 (Y0 U Y1 V) and UYVY (U Y0 V Y1): packed 4:2:2, one U,V pair per two pixels of a row.
enum class PixelFormat { NV12, I420, YUY2, UYVY, RGB, BGR, RGBA, BGRA, RGBx, BGRx, GRAY8 };
enum class ColorOrder { RGB, BGR, GRAY };  // channel order the model wants
// Letterbox: scaled to fit keeping the aspect ratio, centred, border = pad_value. Stretch: each
// axis scaled to the tensor. PadRight: PaddleOCR's recogniser resize -- scaled to the tensor
// height keeping the aspect ratio (width ceil(height * aspect), at most the tensor's: longer
// crops are squeezed), left-aligned, the rest of each row the normalised zero (the zero point;
// for axpreprocess's preamble pixels, quantised as pixel - 128, that is pixel 0).
enum class ResizeMode { Letterbox, Stretch, PadRight };

// "NV12", "RGBx", ... (GStreamer's format names); throws InvalidArgument for anything else.
PixelFormat pixel_format_from_string(const std::string &name);
const char *pixel_format_name(PixelFormat format);
// How YUV frames (NV12, I420, YUY2, UYVY) become RGB: their colour matrix and range (GStreamer's
// GstVideoColorimetry matrix and range; the transfer function and primaries are not applied, as
// videoconvert does not apply them either when only the matrix differs).
enum class YuvMatrix { BT601, BT709, BT2020, SMPTE240M, FCC };
enum class YuvRange { Limited, Full };  // Y 16..235, UV 16..240 / all of 0..255
struct Colorimetry {
  YuvMatrix matrix = YuvMatrix::BT601;
  YuvRange range = YuvRange::Limited;
};
// "bt601", "bt709", "bt2020", "smpte240m", "fcc"
const char *yuv_matrix_name(YuvMatrix matrix);
const char *yuv_range_name(YuvRange range);  // "limited", "full"
// The fixed-point constants of one matrix and range: round(coefficient * 2^20) of the standard's
// Kr/Kb formulas (scaled by 255/219 and 255/224 for limited range), except BT.601 limited range,
// which is OpenCV's own constants (cvtColor's, so that case stays bit-exact with OpenCV).
YuvCoefficients yuv_coefficients(const Colorimetry &colorimetry);

// "RGB", "BGR", "GRAY" (case-insensitive); throws InvalidArgument otherwise.
ColorOrder color_order_from_string(const std::string &name);
const char *color_order_name(ColorOrder order);

// One video frame in CPU memory. Planes: NV12 = Y, UV; I420 = Y, U, V; packed/GRAY8 = one plane.
// YUY2/UYVY rows hold ceil(width / 2) 4-byte pairs, as GStreamer lays them out (an odd-width
// frame's last pixel is the first half of a pair).
struct Frame {
  PixelFormat format = PixelFormat::RGB;
  int width = 0;
  int height = 0;
  std::array<const uint8_t *, 3> planes{};
  std::array<int, 3> strides{};
};

struct Rect {
  int x = 0, y = 0, width = 0, height = 0;
};

// The device tensor: padded NHWC (batch 1), with the manifest's padding and quantisation.
struct TensorSpec {
  int height = 0, width = 0, channels = 0;  // padded shape
  int pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  int channel_pad_low = 0, channel_pad_high = 0;
  double scale = 1.0;
  int zero_point = 0;
  int unpadded_height() const { return height - pad_top - pad_bottom; }
  int unpadded_width() const { return width - pad_left - pad_right; }
  int unpadded_channels() const { return channels - channel_pad_low - channel_pad_high; }
  size_t size() const { return size_t(height) * size_t(width) * size_t(channels); }
};

// float = (pixel * pixel_scale - mean[c]) / std[c], c in the model's channel order.
struct Normalisation {
  double pixel_scale = 1.0 / 255.0;
  std::array<double, 3> mean{0.0, 0.0, 0.0};
  std::array<double, 3> std{1.0, 1.0, 1.0};
};

struct Options {
  ResizeMode resize = ResizeMode::Letterbox;
  uint8_t pad_value = 0;  // pixel value of the letterbox border (before normalisation)
                          // (PadRight pads with the normalised zero instead)
  ColorOrder color = ColorOrder::RGB;
  Normalisation normalisation;
  std::optional<Rect> crop;  // frame region to use; whole frame when absent
  // YUV (NV12, I420, YUY2, UYVY) -> RGB matrix and range (ignored for other formats and for gray
  // models, which take the luma as it is, as cv::COLOR_YUV2GRAY does).
  Colorimetry colorimetry;
  // Use the AVX2 row kernels where the CPU has AVX2 (false: the x86-64 baseline kernels). Both
  // give the same bytes; the switch exists so tests and benchmarks can run either.
  bool use_avx2 = true;
};

// Frame -> tensor coordinates: tensor_x = offset_x + (frame_x - crop_x) * scale_x (same for y),
// tensor coordinates without the tensor's own padding.
struct Geometry {
  Rect crop;
  double scale_x = 1.0, scale_y = 1.0;
  int offset_x = 0, offset_y = 0;             // letterbox border (left, top)
  int content_width = 0, content_height = 0;  // resized frame inside the tensor
  int tensor_width = 0, tensor_height = 0;    // unpadded tensor size
};

// Quantises one float the way the device input expects: round half to even, saturate to int8.
int8_t quantise(double value, double scale, int zero_point);

// Configured once per (frame size/format, tensor, options): precomputes the resize taps and
// weights per output column and row and the per-channel quantisation, so the per-frame work is
// gather, convert, interpolate, quantise on whole rows with vectorised kernels (AVX2 where the CPU
// has it). The result is bit-exact with cv::cvtColor followed by cv::resize INTER_LINEAR
// (half-pixel centres, 11-bit fixed-point weights) and the per-channel normalise + quantise; for
// YUV frames of another matrix or range, the same arithmetic with that colorimetry's constants.
class Preprocessor {
 public:
  // Throws InvalidArgument naming the bad value (crop outside the frame, a tensor whose unpadded
  // channels do not fit the colour order, ...). YUV frames may have odd sizes: NV12/I420 chroma
  // planes are ceil(width / 2) x ceil(height / 2), YUY2/UYVY rows ceil(width / 2) pairs, as
  // GStreamer lays them out.
  Preprocessor(PixelFormat format, int frame_width, int frame_height, const TensorSpec &tensor,
               const Options &options);

  // Writes tensor.size() bytes at `tensor`. `frame` must match the configured format and size.
  // Safe to call from several threads at once (all scratch memory is per call).
  void run(const Frame &frame, int8_t *tensor) const;

  const Geometry &geometry() const { return geometry_; }
  const TensorSpec &tensor() const { return tensor_; }
  // "avx2" or "baseline": the row kernels this preprocessor runs.
  const char *kernel_set_name() const;

 private:
  // How one source row becomes a horizontally resized row. YUY2/UYVY rows are first split into a
  // luma row and an NV12 UV row (over the columns the taps read), then take the NV12 plans.
  enum class RowPlan {
    Gray,        // one byte plane (GRAY8, or the luma of NV12/I420 for gray models): gather taps
    Packed,      // packed RGB-like pixels: gather 32-bit taps, pick R, G, B
    PackedGray,  // the same, then RGB -> gray
    YuvTaps,     // NV12/I420: gather Y, U, V taps, convert only those (strong downscales)
    YuvRow,      // NV12/I420: convert the used span of the row, then gather (mild/no downscale)
    YuvPairs,    // NV12/I420, exact 2x: convert and blend contiguous pixel pairs, no gathers
  };
  void check_frame(const Frame &frame) const;
  void plan_quantisation();
  void plan_rows();
  void fill_border_rows();
  // run()'s steps, row by row (preprocess.cc).
  struct RunState;
  struct SourceRow;
  std::array<int, 2> source_rows(int dy) const;
  void prefetch_rows_ahead(int dy, int content_height, const RunState &state) const;
  void prefetch_source_row(int src_row, const RunState &state) const;
  template <typename Visit>
  void visit_source_row(int src_row, const RunState &state, Visit &&visit) const;
  void load_source_rows(int dy_begin, int dy_end, RunState &state) const;
  void resize_row(int dy, RunState &state) const;
  void resize_source_row(int src_row, RunState &state, int16_t *out) const;
  void resize_yuv_taps(const SourceRow &row, RunState &state, int16_t *out) const;
  void resize_packed(const SourceRow &row, RunState &state, int16_t *out) const;
  void gather_words(const uint8_t *row, const std::vector<int32_t> &index, int safe,
                    uint32_t *out) const;
  void write_content_row(RunState &state, int8_t *out) const;
  void quantise_planes(RunState &state) const;

  PixelFormat format_;
  int frame_width_, frame_height_;
  TensorSpec tensor_;
  Options options_;
  Geometry geometry_;
  int fetched_channels_ = 3;  // 3 (R,G,B planes after the horizontal pass) or 1 (gray)
  const kernels::KernelSet *kernels_ = nullptr;
  YuvCoefficients yuv_;  // options_.colorimetry's constants

  // OpenCV's resize tables (xofs/alpha, yofs/beta), in crop coordinates.
  std::vector<int32_t> x0_, x1_;
  std::vector<int16_t> alpha_;  // 2 per output column
  std::vector<int32_t> y0_, y1_;
  std::vector<int16_t> beta_;  // 2 per output row

  // Per output column: where the two taps are read in the source row (bytes from the row start
  // of plane 0, or of the converted span for YuvRow), their weights, and the chroma offsets.
  RowPlan plan_ = RowPlan::Packed;
  std::vector<int32_t> tap0_, tap1_, chroma0_, chroma1_;
  std::vector<int16_t> weight0_, weight1_;
  // YuvTaps with AVX2: shuffle controls per block of 8 columns picking the taps out of 32
  // bytes (kernels.h YuvTapIndex), empty where some block's taps spread wider (then gathers).
  std::vector<uint8_t> luma_window0_, chroma_window0_, luma_window1_, chroma_window1_;
  bool two_taps_ = true;      // some column has a non-zero second weight
  bool sparse_rows_ = false;  // the content skips source rows: loaded in blocks, not prefetched
  bool pairs_ = false;        // taps of column j are pixels x + 2j and x + 2j + 1 (exact 2x)
  bool nv12_layout_ = false;  // NV12, or YUY2/UYVY split into NV12 rows
  bool packed422_ = false;    // YUY2 or UYVY
  int split_begin_ = 0, split_end_ = 0;  // YUY2/UYVY: columns split per row (even, pair-aligned)
  int safe_taps0_ = 0, safe_taps1_ = 0;  // leading columns whose 4-byte tap read stays in the row
  int bytes_per_pixel_ = 1;
  std::array<int, 3> channel_shift_{0, 8, 16};  // bit of R, G, B in a gathered 32-bit pixel
  int span_begin_ = 0, span_pixels_ = 0;        // YuvRow: converted columns [begin, begin+pixels)

  // lut_[k][v]: int8 for value v of model channel k; source_of_channel_[k]: fetched channel.
  std::array<std::array<int8_t, 256>, 3> lut_{};
  std::array<int, 3> source_of_channel_{0, 1, 2};
  // The same as fixed-point affines (v * multiplier + addend) >> shift, used when they reproduce
  // lut_ for all 256 values of every channel (checked at construction).
  bool affine_exact_ = false;
  std::array<int32_t, 3> quant_multiplier_{}, quant_addend_{};
  std::array<int, 3> quant_shift_{};
  // RGB models with 4 padded channels (the Metis layout): whole 4-byte pixels at once.
  bool packed_rgb_ = false;
  uint32_t packed_padding_ = 0;
  std::vector<int8_t> border_row_;   // one padded tensor row of letterbox border + padding
  std::vector<int8_t> padding_row_;  // one tensor row of zero_point (tensor's own padding)
};

}  // namespace axstream::preprocess
