// RoiAlign (two-stage detectors' box pooling): each region of interest cut into
// output_height x output_width bins, each bin the average (or max) of a grid of bilinear samples.
// The arithmetic follows ONNX Runtime's kernel, which the ONNX reference copies, including its
// max mode taking the largest weighted corner rather than the interpolated value.
#include <cstdio>

#include "common.h"

namespace axstream::engine {
namespace {

// The samples one output bin averages (or maxes) at most: 1024 x 1024.
constexpr int64_t kMaxSamplesPerBin = int64_t{1} << 20;

// RoiAlign's attributes, checked.
struct RoiAlignAttributes {
  int64_t out_h = 1, out_w = 1, sampling_ratio = 0;
  float spatial_scale = 1.f;
  bool half_pixel = false, max_mode = false;
};

RoiAlignAttributes roi_align_attributes(OpContext &ctx) {
  RoiAlignAttributes a;
  a.out_h = ctx.attr_i("output_height", 1);
  a.out_w = ctx.attr_i("output_width", 1);
  a.sampling_ratio = ctx.attr_i("sampling_ratio", 0);
  a.spatial_scale = ctx.attr_f("spatial_scale", 1.f);
  std::string mode = ctx.attr_s("mode", "avg");
  // Opset 10 had no attribute and behaved as output_half_pixel; opset 16 defaults to half_pixel.
  std::string coord = ctx.attr_s("coordinate_transformation_mode",
                                 ctx.opset() >= 16 ? "half_pixel" : "output_half_pixel");
  if (a.out_h <= 0 || a.out_w <= 0)
    ctx.fail("output_height and output_width must be positive, got " + std::to_string(a.out_h) +
             " and " + std::to_string(a.out_w));
  // At most kMaxSamplesPerBin samples a bin (sampling_ratio^2).
  if (a.sampling_ratio < 0 || a.sampling_ratio > 1024)
    ctx.fail("sampling_ratio must be in [0, 1024], got " + std::to_string(a.sampling_ratio));
  if (!std::isfinite(a.spatial_scale))
    ctx.fail("spatial_scale " + std::to_string(a.spatial_scale) + " is not a finite number");
  if (mode != "avg" && mode != "max") ctx.fail("mode '" + mode + "' is not avg or max");
  if (coord != "half_pixel" && coord != "output_half_pixel")
    ctx.fail("coordinate_transformation_mode '" + coord +
             "' is not half_pixel or output_half_pixel");
  a.half_pixel = coord == "half_pixel";
  a.max_mode = mode == "max";
  return a;
}

// Where one box's bins and samples fall in the image: its start, each bin's size and the grid
// of samples per bin (count of them, at least 1).
struct RoiGrid {
  float start_w, start_h, bin_w, bin_h;
  int64_t grid_h, grid_w;
  float count;
};

// The box scaled to the feature map; a box that is not finite there, or would need more than
// kMaxSamplesPerBin samples a bin, is refused naming it.
inline RoiGrid roi_grid(const float *box, const RoiAlignAttributes &a, const std::string &where,
                        int64_t r) {
  auto roi_text = [&] {
    char text[160];
    std::snprintf(text, sizeof text, "(%g, %g, %g, %g)", box[0], box[1], box[2], box[3]);
    return where + ": roi " + std::to_string(r) + " " + text;
  };
  for (int j = 0; j < 4; ++j)
    if (!std::isfinite(box[j])) throw InvalidArgument(roi_text() + " is not four finite numbers");
  const float spatial_scale = a.spatial_scale;
  const float offset = a.half_pixel ? 0.5f : 0.f;
  float start_w = box[0] * spatial_scale - offset, start_h = box[1] * spatial_scale - offset;
  float roi_w = box[2] * spatial_scale - offset - start_w;
  float roi_h = box[3] * spatial_scale - offset - start_h;
  if (!a.half_pixel) {  // the legacy mode keeps every box at least one pixel
    roi_w = std::max(roi_w, 1.f);
    roi_h = std::max(roi_h, 1.f);
  }
  if (!std::isfinite(start_w) || !std::isfinite(start_h) || !std::isfinite(roi_w) ||
      !std::isfinite(roi_h))
    throw InvalidArgument(roi_text() + " at spatial_scale " + std::to_string(spatial_scale) +
                          " leaves the float range");
  const int64_t out_h = a.out_h, out_w = a.out_w;
  float bin_h = roi_h / static_cast<float>(out_h), bin_w = roi_w / static_cast<float>(out_w);
  // sampling_ratio 0 samples a bin about once per pixel: a box of more than kMaxSamplesPerBin
  // pixels a bin is refused rather than sampled for minutes (the bound was per side, 65536, and
  // a 32818 x 12286 box took 26 s on two channels: fuzz_onnx_import timeout).
  if (a.sampling_ratio == 0 &&
      !(roi_h / out_h <= 65536.f && roi_w / out_w <= 65536.f &&
        std::ceil(std::max(0.f, roi_h / out_h)) * std::ceil(std::max(0.f, roi_w / out_w)) <=
            kMaxSamplesPerBin))
    throw InvalidArgument(roi_text() + " at spatial_scale " + std::to_string(spatial_scale) +
                          " needs more than " + std::to_string(kMaxSamplesPerBin) +
                          " samples per bin");
  // An inverted box (end before start) samples nothing either way; its grid counts as 0.
  int64_t grid_h = a.sampling_ratio > 0
                       ? a.sampling_ratio
                       : static_cast<int64_t>(std::ceil(std::max(0.f, roi_h / out_h)));
  int64_t grid_w = a.sampling_ratio > 0
                       ? a.sampling_ratio
                       : static_cast<int64_t>(std::ceil(std::max(0.f, roi_w / out_w)));
  float count = static_cast<float>(std::max<int64_t>(grid_h * grid_w, 1));
  return {start_w, start_h, bin_w, bin_h, grid_h, grid_w, count};
}

// A bilinear sample's four corners (offsets in a plane) and weights; a sample more than a
// pixel outside the image counts as 0 (weights all 0).
struct SampleTaps {
  int64_t pos[4] = {0, 0, 0, 0};
  float weight[4] = {0.f, 0.f, 0.f, 0.f};
};

inline SampleTaps sample_taps(float sy, float sx, int64_t height, int64_t width) {
  SampleTaps taps;
  if (sy < -1.f || sy > height || sx < -1.f || sx > width) return taps;
  float py = std::max(sy, 0.f), px = std::max(sx, 0.f);
  int64_t y_low = static_cast<int64_t>(py), x_low = static_cast<int64_t>(px);
  int64_t y_high, x_high;
  if (y_low >= height - 1) {
    y_high = y_low = height - 1;
    py = static_cast<float>(y_low);
  } else {
    y_high = y_low + 1;
  }
  if (x_low >= width - 1) {
    x_high = x_low = width - 1;
    px = static_cast<float>(x_low);
  } else {
    x_high = x_low + 1;
  }
  float ly = py - y_low, lx = px - x_low, hy = 1.f - ly, hx = 1.f - lx;
  taps.pos[0] = y_low * width + x_low;
  taps.pos[1] = y_low * width + x_high;
  taps.pos[2] = y_high * width + x_low;
  taps.pos[3] = y_high * width + x_high;
  taps.weight[0] = hy * hx;
  taps.weight[1] = hy * lx;
  taps.weight[2] = ly * hx;
  taps.weight[3] = ly * lx;
  return taps;
}

// One bin (ph, pw) of a box over every channel into bin[c]: the sum (avg mode) or the largest
// weighted corner (max mode) of its samples.
inline void pool_bin(const float *xi, int64_t channels, int64_t height, int64_t width,
                     const RoiGrid &grid, int64_t ph, int64_t pw, bool max_mode, float *bin) {
  const int64_t plane = height * width;
  std::fill(bin, bin + channels, 0.f);
  bool first = true;
  for (int64_t iy = 0; iy < grid.grid_h; ++iy) {
    float sy =
        grid.start_h + ph * grid.bin_h + (iy + 0.5f) * grid.bin_h / static_cast<float>(grid.grid_h);
    for (int64_t ix = 0; ix < grid.grid_w; ++ix) {
      float sx = grid.start_w + pw * grid.bin_w +
                 (ix + 0.5f) * grid.bin_w / static_cast<float>(grid.grid_w);
      SampleTaps taps = sample_taps(sy, sx, height, width);
      const int64_t *pos = taps.pos;
      const float *weight = taps.weight;
      for (int64_t c = 0; c < channels; ++c) {
        const float *p = xi + c * plane;
        if (max_mode) {
          float v = std::max(std::max(weight[0] * p[pos[0]], weight[1] * p[pos[1]]),
                             std::max(weight[2] * p[pos[2]], weight[3] * p[pos[3]]));
          bin[c] = first ? v : std::max(bin[c], v);
        } else {
          bin[c] += weight[0] * p[pos[0]] + weight[1] * p[pos[1]] + weight[2] * p[pos[2]] +
                    weight[3] * p[pos[3]];
        }
      }
      first = false;
    }
  }
}

std::unique_ptr<Kernel> compile_roi_align(OpContext &ctx) {
  ctx.expect_inputs(3, 3);
  const Shape &xs = ctx.in_shape(0), &rs = ctx.in_shape(1), &bs = ctx.in_shape(2);
  if (xs.size() != 4) ctx.fail("X must be (N, C, H, W), got " + shape_str(xs));
  if (rs.size() != 2 || rs[1] != 4) ctx.fail("rois must be (num_rois, 4), got " + shape_str(rs));
  if (bs != Shape{rs[0]})
    ctx.fail("batch_indices must be (" + std::to_string(rs[0]) + "), got " + shape_str(bs));
  const RoiAlignAttributes a = roi_align_attributes(ctx);
  const int64_t out_h = a.out_h, out_w = a.out_w, sampling_ratio = a.sampling_ratio;
  const bool max_mode = a.max_mode;
  int64_t rois = rs[0], channels = xs[1], height = xs[2], width = xs[3], batch = xs[0];
  ctx.set_output(0, ctx.in_dtype(0), {rois, channels, out_h, out_w});
  if (ctx.infer_only()) return nullptr;
  // No channels or no rois: nothing to sample (the loops would still walk every bin's grid).
  if (rois == 0 || channels == 0)
    return make_kernel([](ExecContext &, const void *const *, void *const *) {});
  if (ctx.in_dtype(0) != DType::f32 || ctx.in_dtype(1) != DType::f32)
    ctx.unsupported("X and rois other than float32");
  DType it = ctx.in_dtype(2);
  if (it != DType::i64 && it != DType::i32) ctx.fail("batch_indices must be int64");
  std::string where = ctx.where();
  if (height < 1 || width < 1) ctx.fail("X " + shape_str(xs) + " has an empty image");
  auto k = make_kernel([=](ExecContext &ec, const void *const *in, void *const *o) {
    const float *x = static_cast<const float *>(in[0]);
    const float *boxes = static_cast<const float *>(in[1]);
    float *y = static_cast<float *>(o[0]);
    const int64_t plane = height * width, bins = out_h * out_w;
    float *bin = static_cast<float *>(ec.scratch);  // one bin's value per channel
    for (int64_t r = 0; r < rois; ++r) {
      int64_t image = it == DType::i64 ? static_cast<const int64_t *>(in[2])[r]
                                       : static_cast<const int32_t *>(in[2])[r];
      if (image < 0 || image >= batch)
        throw InvalidArgument(where + ": batch_indices[" + std::to_string(r) +
                              "] = " + std::to_string(image) + " is outside [0, " +
                              std::to_string(batch) + ")");
      const float *xi = x + image * channels * plane;
      const RoiGrid grid = roi_grid(boxes + r * 4, a, where, r);
      float *yr = y + r * channels * bins;
      for (int64_t ph = 0; ph < out_h; ++ph)
        for (int64_t pw = 0; pw < out_w; ++pw) {
          pool_bin(xi, channels, height, width, grid, ph, pw, max_mode, bin);
          for (int64_t c = 0; c < channels; ++c)
            yr[c * bins + ph * out_w + pw] = max_mode ? bin[c] : bin[c] / grid.count;
        }
    }
  });
  k->scratch_bytes = static_cast<size_t>(channels) * sizeof(float);
  // Four multiply-adds per sample and channel; an adaptive grid counted as for a box the size of
  // the image.
  int64_t grid_h = sampling_ratio > 0 ? sampling_ratio : height / out_h + 1;
  int64_t grid_w = sampling_ratio > 0 ? sampling_ratio : width / out_w + 1;
  k->macs = static_cast<uint64_t>(rois) * static_cast<uint64_t>(channels) *
            static_cast<uint64_t>(out_h * out_w) * static_cast<uint64_t>(grid_h * grid_w) * 4;
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP(RoiAlign, "RoiAlign", 10, 17, compile_roi_align)

}  // namespace axstream::engine
