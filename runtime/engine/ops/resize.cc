// Resize (opsets 10-17: nearest, linear and cubic, every ONNX coordinate transformation mode,
// exclude_outside) and Upsample (opsets 7-9). Nearest copies rows; linear over the last two
// dims of a 4-D input has its own loop; cubic, tf_crop_and_resize and exclude_outside run as
// one pass per resized dim over a table of taps (source index, weight) per output index.
#include <array>
#include <cstring>

#include "../parallel.h"
#include "common.h"

namespace axstream::engine {
namespace {

struct Axis {
  std::vector<int64_t> i0, i1;  // source indices per output index
  std::vector<float> w;         // weight of i1
};

// out_len is the unrounded in_len * scale, as the ONNX reference uses it.
float source_coordinate(const std::string &mode, int64_t o, float scale, int64_t in_len,
                        float out_len) {
  float x = static_cast<float>(o);
  if (mode == "half_pixel") return (x + 0.5f) / scale - 0.5f;
  if (mode == "pytorch_half_pixel") return out_len > 1.f ? (x + 0.5f) / scale - 0.5f : 0.f;
  if (mode == "align_corners")
    return out_len == 1.f ? 0.f : x * static_cast<float>(in_len - 1) / (out_len - 1.f);
  if (mode == "tf_half_pixel_for_nn") return (x + 0.5f) / scale;
  return x / scale;  // asymmetric
}

// ONNX's cubic convolution weights of the four taps floor(x) - 1 .. floor(x) + 2 for
// ratio = x - floor(x) (the reference's cubic_coeffs).
std::array<float, 4> cubic_weights(float ratio, float a) {
  auto near = [a](float d) { return ((a + 2) * d - (a + 3)) * d * d + 1; };       // |d| <= 1
  auto far = [a](float d) { return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a; };  // 1 < |d| < 2
  return {far(ratio + 1), near(ratio), near(1 - ratio), far(2 - ratio)};
}

// The taps of one resized dim: output index o reads sum over t of weight[o][t] * x[index[o][t]]
// or, when outside[o], is the extrapolation value (tf_crop_and_resize).
struct Taps {
  int64_t count = 0;  // taps per output index
  std::vector<int64_t> index;
  std::vector<float> weight;
  std::vector<uint8_t> outside;
  bool identity(int64_t in_len) const {
    if (static_cast<int64_t>(outside.size()) != in_len) return false;
    for (int64_t o = 0; o < in_len; ++o) {
      if (outside[o]) return false;
      for (int64_t t = 0; t < count; ++t) {
        float w = weight[o * count + t];
        if (index[o * count + t] == o ? w != 1.f : w != 0.f) return false;
      }
    }
    return true;
  }
};

struct ResizeParams {
  std::string mode, coord, nearest_mode;
  float cubic_a = -0.75f, extrapolation = 0.f;
  bool exclude_outside = false;
  std::vector<float> roi;  // tf_crop_and_resize: starts then ends, normalised
};

// Follows the ONNX reference's interpolate_1d_with_x, including its ratio 0 -> 1 rule.
Taps make_taps(const ResizeParams &p, int64_t in_len, int64_t out_len, float scale, size_t dim,
               size_t rank) {
  Taps taps;
  taps.count = p.mode == "cubic" ? 4 : p.mode == "linear" ? 2 : 1;
  float out_width = static_cast<float>(in_len) * scale;
  for (int64_t o = 0; o < out_len; ++o) {
    float x;
    bool outside = false;
    if (p.coord == "tf_crop_and_resize") {
      float start = p.roi[dim], end = p.roi[dim + rank], last = static_cast<float>(in_len - 1);
      x = out_len == 1
              ? (end - start) * last / 2
              : static_cast<float>(o) * (end - start) * last / static_cast<float>(out_len - 1);
      x += start * last;
      outside = x < 0 || x > last;
    } else {
      x = source_coordinate(p.coord, o, scale, in_len, out_width);
    }
    // A crop box so far out that its float arithmetic gives NaN (inf - inf) has no source
    // coordinate: it reads the extrapolation value (found by fuzz_onnx_import).
    if (std::isnan(x)) {
      x = 0.f;
      outside = true;
    }
    // A coordinate beyond any tap (scales near 0 stretch it) reads the edge either way; the
    // bound keeps the index arithmetic in range.
    x = std::clamp(x, -4.f, static_cast<float>(in_len) + 4.f);
    taps.outside.push_back(outside);
    float base = std::floor(x), ratio = x - base;
    int64_t first = static_cast<int64_t>(base);
    std::vector<float> w;
    if (p.mode == "nearest") {
      bool up;
      if (ratio == 0.f)
        up = false;
      else if (p.nearest_mode == "round_prefer_ceil")
        up = ratio >= 0.5f;
      else if (p.nearest_mode == "floor")
        up = false;
      else if (p.nearest_mode == "ceil")
        up = true;
      else
        up = ratio > 0.5f;
      w = {1.f};
      first += up ? 1 : 0;
    } else {
      if (ratio == 0.f) {  // the reference takes ratio 1 from the tap before
        ratio = 1.f;
        --first;
      }
      if (p.mode == "linear") {
        w = {1 - ratio, ratio};
      } else {
        std::array<float, 4> c = cubic_weights(ratio, p.cubic_a);
        w.assign(c.begin(), c.end());
        --first;
      }
    }
    float sum = 0.f;
    for (int64_t t = 0; t < taps.count; ++t) {
      int64_t i = first + t;
      if (p.exclude_outside && (i < 0 || i >= in_len)) w[t] = 0.f;
      sum += w[t];
    }
    for (int64_t t = 0; t < taps.count; ++t) {
      taps.index.push_back(std::clamp<int64_t>(first + t, 0, in_len - 1));  // edge padding
      taps.weight.push_back(p.exclude_outside && sum != 0.f ? w[t] / sum : w[t]);
    }
  }
  return taps;
}

// float32, any rank: one weighted pass per dim that is not an identity, innermost first (the
// reference's order), ping-ponging between two scratch buffers.
std::unique_ptr<Kernel> separable_resize(OpContext &ctx, const ResizeParams &p, const Shape &in,
                                         const Shape &out, const std::vector<float> &scales) {
  if (ctx.in_dtype(0) != DType::f32)
    ctx.unsupported("mode '" + p.mode + "' / coordinate_transformation_mode '" + p.coord +
                    "' on non-float32 data");
  if (p.coord == "tf_crop_and_resize" && p.roi.size() != 2 * in.size())
    ctx.fail("tf_crop_and_resize needs roi with " + std::to_string(2 * in.size()) +
             " values, got " + std::to_string(p.roi.size()));
  for (float v : p.roi)
    if (!std::isfinite(v)) ctx.fail("roi holds " + std::to_string(v) + ", not a finite number");
  for (size_t d = 0; d < in.size(); ++d)
    if (in[d] == 0 && out[d] > 0) ctx.fail("cannot resize the empty dim " + std::to_string(d));
  struct Pass {
    Taps taps;
    int64_t outer, in_len, out_len, inner;
  };
  std::vector<Pass> passes;
  Shape cur = in;
  int64_t largest = 0;
  for (size_t d = in.size(); d-- > 0;) {
    Taps taps = make_taps(p, in[d], out[d], scales[d], d, in.size());
    if (in[d] == out[d] && taps.identity(in[d])) continue;
    int64_t outer = product(cur, 0, d), inner = product(cur, d + 1, cur.size());
    passes.push_back({std::move(taps), outer, in[d], out[d], inner});
    cur[d] = out[d];
    largest = std::max(largest, product(cur, 0, cur.size()));
  }
  int64_t total_in = product(in, 0, in.size());
  float extrapolation = p.extrapolation;
  auto k = make_kernel([=](ExecContext &ec, const void *const *i, void *const *o) {
    const float *x = static_cast<const float *>(i[0]);
    float *y = static_cast<float *>(o[0]);
    if (passes.empty()) {
      if (total_in) std::memcpy(y, x, static_cast<size_t>(total_in) * sizeof(float));
      return;
    }
    float *buffers[2] = {static_cast<float *>(ec.scratch),
                         static_cast<float *>(ec.scratch) + largest};
    const float *src = x;
    for (size_t n = 0; n < passes.size(); ++n) {
      const Pass &pass = passes[n];
      float *dst = n + 1 == passes.size() ? y : buffers[n % 2];
      const int64_t count = pass.taps.count;
      for (int64_t r = 0; r < pass.outer; ++r) {
        const float *sr = src + r * pass.in_len * pass.inner;
        float *dr = dst + r * pass.out_len * pass.inner;
        for (int64_t j = 0; j < pass.out_len; ++j) {
          float *line = dr + j * pass.inner;
          if (pass.taps.outside[j]) {
            std::fill(line, line + pass.inner, extrapolation);
            continue;
          }
          std::fill(line, line + pass.inner, 0.f);
          for (int64_t t = 0; t < count; ++t) {
            float w = pass.taps.weight[j * count + t];
            const float *from = sr + pass.taps.index[j * count + t] * pass.inner;
            for (int64_t e = 0; e < pass.inner; ++e) line[e] += w * from[e];
          }
        }
      }
      src = dst;
    }
  });
  k->scratch_bytes = static_cast<size_t>(2 * largest) * sizeof(float);
  k->impl = "separable taps";
  return k;
}

// The output shape from sizes (then scales become out / in) or from scales (floored).
Shape resize_output_shape(OpContext &ctx, std::vector<float> &scales, const Shape &sizes) {
  const Shape &in = ctx.in_shape(0);
  size_t r = in.size();
  Shape out(r);
  if (!sizes.empty()) {
    if (sizes.size() != r)
      ctx.fail("sizes has " + std::to_string(sizes.size()) + " entries for rank " +
               std::to_string(r));
    out = sizes;
    scales.resize(r);
    for (size_t d = 0; d < r; ++d)
      scales[d] = static_cast<float>(out[d]) / static_cast<float>(in[d]);
  } else {
    if (scales.size() != r)
      ctx.fail("scales has " + std::to_string(scales.size()) + " entries for rank " +
               std::to_string(r));
    for (size_t d = 0; d < r; ++d) {
      float size = static_cast<float>(in[d]) * scales[d];
      if (!(scales[d] > 0) || !(size < 9.2e18f))
        ctx.fail("scale " + std::to_string(scales[d]) + " is not a positive number giving a size");
      out[d] = static_cast<int64_t>(std::floor(size));
    }
  }
  return out;
}

// Per dim, the one (nearest) or two (linear) source indices of each output index.
std::vector<Axis> two_tap_axes(const ResizeParams &params, const Shape &in, const Shape &out,
                               const std::vector<float> &scales) {
  const std::string &mode = params.mode, &coord = params.coord, &nearest_mode = params.nearest_mode;
  size_t r = in.size();
  std::vector<Axis> axes(r);
  for (size_t d = 0; d < r; ++d) {
    for (int64_t o = 0; o < out[d]; ++o) {
      float x =
          source_coordinate(coord, o, scales[d], in[d], static_cast<float>(in[d]) * scales[d]);
      if (mode == "nearest") {
        float fl = std::floor(x);
        int64_t i;
        if (nearest_mode == "floor")
          i = static_cast<int64_t>(fl);
        else if (nearest_mode == "ceil")
          i = static_cast<int64_t>(std::ceil(x));
        else if (nearest_mode == "round_prefer_ceil")
          i = static_cast<int64_t>(x - fl >= 0.5f ? fl + 1 : fl);
        else
          i = static_cast<int64_t>(x - fl > 0.5f ? fl + 1 : fl);
        i = std::clamp<int64_t>(i, 0, in[d] - 1);
        axes[d].i0.push_back(i);
        axes[d].i1.push_back(i);
        axes[d].w.push_back(0.f);
      } else {
        x = std::clamp(x, 0.f, static_cast<float>(in[d] - 1));
        int64_t i0 = static_cast<int64_t>(std::floor(x));
        axes[d].i0.push_back(i0);
        axes[d].i1.push_back(std::min(i0 + 1, in[d] - 1));
        axes[d].w.push_back(x - static_cast<float>(i0));
      }
    }
  }
  return axes;
}

// Where nearest_resize's kernel reads: the source offset of each output row and column, in
// elements, and how many elements a column moves at once.
struct NearestPlan {
  std::vector<int64_t> row_src, col_src;
  int64_t width = 1, unit = 1;
};

// Separable: each output row (all dims but the last) copies from one input row through one
// column map. With _nhwc=1 (passes.cc: an int8 value between int8 convolutions, stored NHWC)
// the rows are (N, H), the columns W and each column moves a pixel's C channels at once; N and
// C must map to themselves.
NearestPlan plan_nearest(OpContext &ctx, const Shape &in, const Shape &out,
                         const std::vector<Axis> &axes, bool nhwc) {
  size_t r = in.size();
  Shape src = in, dst = out;
  std::vector<const Axis *> maps;
  for (const Axis &a : axes) maps.push_back(&a);
  NearestPlan plan;
  if (nhwc) {
    auto identity = [](const Axis &a, int64_t len) {
      for (int64_t i = 0; i < len; ++i)
        if (a.i0[i] != i) return false;
      return true;
    };
    if (r != 4 || out[0] != in[0] || out[1] != in[1] || !identity(axes[0], in[0]) ||
        !identity(axes[1], in[1]))
      ctx.fail("_nhwc needs a 4-D input whose N and C map to themselves, got " + shape_str(in) +
               " -> " + shape_str(out));
    src = {in[0], in[2], in[3]};
    dst = {out[0], out[2], out[3]};
    maps = {&axes[0], &axes[2], &axes[3]};
    plan.unit = in[1];
  }
  size_t rank = src.size();
  Shape in_strides = strides_of(src);
  int64_t n = product(dst, 0, rank);
  plan.width = rank ? dst[rank - 1] : 1;
  int64_t rows = plan.width ? n / plan.width : 0;
  plan.row_src.resize(static_cast<size_t>(rows));
  plan.col_src.resize(static_cast<size_t>(plan.width));
  for (int64_t j = 0; j < plan.width; ++j)
    plan.col_src[j] = rank ? maps[rank - 1]->i0[j] * in_strides[rank - 1] * plan.unit : 0;
  std::vector<int64_t> idx(rank ? rank - 1 : 0, 0);
  for (int64_t row = 0; row < rows; ++row) {
    int64_t s = 0;
    for (size_t d = 0; d + 1 < rank; ++d) s += maps[d]->i0[idx[d]] * in_strides[d];
    plan.row_src[row] = s * plan.unit;
    for (int d = static_cast<int>(rank) - 2; d >= 0; --d) {
      if (++idx[d] < dst[d]) break;
      idx[d] = 0;
    }
  }
  return plan;
}

// Any dtype: upsampling repeats rows, which are then copied whole from the row before. (A
// per-element index table cost 8 bytes read per element moved.)
std::unique_ptr<Kernel> nearest_resize(OpContext &ctx, const Shape &in, const Shape &out,
                                       const std::vector<Axis> &axes) {
  bool nhwc = ctx.attr_i("_nhwc", 0) != 0;
  NearestPlan plan = plan_nearest(ctx, in, out, axes, nhwc);
  int64_t width = plan.width;
  size_t es = dtype_size(ctx.in_dtype(0)), column_bytes = es * static_cast<size_t>(plan.unit);
  auto k = make_kernel([row_src = std::move(plan.row_src), col_src = std::move(plan.col_src), width,
                        es, column_bytes](ExecContext &, const void *const *i, void *const *o) {
    const uint8_t *x = static_cast<const uint8_t *>(i[0]);
    uint8_t *y = static_cast<uint8_t *>(o[0]);
    size_t row_bytes = static_cast<size_t>(width) * column_bytes;
    for (size_t row = 0; row < row_src.size(); ++row, y += row_bytes) {
      if (row > 0 && row_src[row] == row_src[row - 1]) {
        std::memcpy(y, y - row_bytes, row_bytes);
        continue;
      }
      const uint8_t *xr = x + row_src[row] * es;
      if (column_bytes == 1) {
        for (int64_t j = 0; j < width; ++j) y[j] = xr[col_src[j]];
      } else if (column_bytes == 4) {
        for (int64_t j = 0; j < width; ++j) std::memcpy(y + j * 4, xr + col_src[j] * es, 4);
      } else {
        for (int64_t j = 0; j < width; ++j)
          std::memcpy(y + j * column_bytes, xr + col_src[j] * es, column_bytes);
      }
    }
  });
  if (nhwc) k->impl = "nhwc";
  return k;
}

// float32 NCHW, linear over H and W only: one bilinear loop per plane.
std::unique_ptr<Kernel> bilinear_resize(OpContext &ctx, const Shape &in, const Shape &out,
                                        const std::vector<Axis> &axes) {
  if (ctx.in_dtype(0) != DType::f32) ctx.unsupported("linear Resize of non-float32 data");
  int64_t planes = in[0] * in[1], ih = in[2], iw = in[3], oh = out[2], ow = out[3];
  Axis ay = axes[2], ax = axes[3];
  auto k = make_kernel([=](ExecContext &, const void *const *i, void *const *o) {
    const float *x = static_cast<const float *>(i[0]);
    float *y = static_cast<float *>(o[0]);
    parallel_for(planes, worth_splitting(), [&](int64_t p) {
      const float *xp = x + p * ih * iw;
      float *yp = y + p * oh * ow;
      for (int64_t oy = 0; oy < oh; ++oy) {
        const float *r0 = xp + ay.i0[oy] * iw, *r1 = xp + ay.i1[oy] * iw;
        float wy = ay.w[oy];
        for (int64_t ox = 0; ox < ow; ++ox) {
          float wx = ax.w[ox];
          float top = r0[ax.i0[ox]] + (r0[ax.i1[ox]] - r0[ax.i0[ox]]) * wx;
          float bottom = r1[ax.i0[ox]] + (r1[ax.i1[ox]] - r1[ax.i0[ox]]) * wx;
          yp[oy * ow + ox] = top + (bottom - top) * wy;
        }
      }
    });
  });
  k->macs = static_cast<uint64_t>(planes * oh * ow * 3);
  return k;
}

std::unique_ptr<Kernel> resize_common(OpContext &ctx, std::vector<float> scales, Shape sizes,
                                      const ResizeParams &params) {
  const std::string &mode = params.mode, &coord = params.coord;
  const Shape &in = ctx.in_shape(0);
  size_t r = in.size();
  Shape out = resize_output_shape(ctx, scales, sizes);
  ctx.set_output(0, ctx.in_dtype(0), out);
  if (ctx.infer_only()) return nullptr;
  // An empty output has nothing to compute, and its other dims may be huge: no per-dim tables
  // (a fuzzed (0, 1e12) output spent minutes building them).
  if (product(out, 0, r) == 0)
    return make_kernel([](ExecContext &, const void *const *, void *const *) {});
  if (mode != "nearest" && mode != "linear" && mode != "cubic")
    ctx.fail("mode '" + mode + "' is not one of nearest, linear, cubic");
  if (mode == "cubic" || coord == "tf_crop_and_resize" ||
      (params.exclude_outside && mode != "nearest"))
    return separable_resize(ctx, params, in, out, scales);
  if (mode == "linear" && (r != 4 || scales[0] != 1.f || scales[1] != 1.f))
    return separable_resize(ctx, params, in, out, scales);
  std::vector<Axis> axes = two_tap_axes(params, in, out, scales);
  if (mode == "nearest") return nearest_resize(ctx, in, out, axes);
  return bilinear_resize(ctx, in, out, axes);
}

std::vector<float> float_values(const Tensor &t) {
  std::vector<float> v;
  for (int64_t i = 0; i < t.count(); ++i) v.push_back(static_cast<float>(t.as_double(i)));
  return v;
}

std::unique_ptr<Kernel> compile_resize(OpContext &ctx) {
  ResizeParams params;
  params.mode = ctx.attr_s("mode", "nearest");
  if (ctx.opset() < 11) {
    ctx.expect_inputs(2, 2);
    params.coord = "asymmetric";
    params.nearest_mode = "floor";
    return resize_common(ctx, float_values(ctx.require_constant(1, "scales")), {}, params);
  }
  ctx.expect_inputs(1, 4);
  std::vector<float> scales;
  Shape sizes;
  if (ctx.has_input(3)) sizes = ctx.constant_ints(3, "sizes");
  if (ctx.has_input(2)) scales = float_values(ctx.require_constant(2, "scales"));
  if (sizes.empty() && scales.empty()) ctx.fail("neither scales nor sizes is given");
  if (ctx.has_attr("axes") || ctx.attr_s("keep_aspect_ratio_policy", "stretch") != "stretch")
    ctx.unsupported("axes / keep_aspect_ratio_policy (opset 18)");
  params.coord = ctx.attr_s("coordinate_transformation_mode", "half_pixel");
  params.nearest_mode = ctx.attr_s("nearest_mode", "round_prefer_floor");
  params.cubic_a = ctx.attr_f("cubic_coeff_a", -0.75f);
  params.exclude_outside = ctx.attr_i("exclude_outside", 0) != 0;
  params.extrapolation = ctx.attr_f("extrapolation_value", 0.f);
  if (params.coord == "tf_crop_and_resize" && !ctx.infer_only()) {
    if (!ctx.has_input(1)) ctx.fail("tf_crop_and_resize needs the roi input");
    params.roi = float_values(ctx.require_constant(1, "roi"));
  }
  static const char *const modes[] = {"half_pixel", "pytorch_half_pixel",   "align_corners",
                                      "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize"};
  if (std::find(std::begin(modes), std::end(modes), params.coord) == std::end(modes))
    ctx.fail("coordinate_transformation_mode '" + params.coord + "' is not an ONNX mode");
  return resize_common(ctx, scales, sizes, params);
}

std::unique_ptr<Kernel> compile_upsample(OpContext &ctx) {
  ResizeParams params;
  params.mode = ctx.attr_s("mode", "nearest");
  params.coord = "asymmetric";
  params.nearest_mode = "floor";
  std::vector<float> scales =
      ctx.opset() < 9 ? ctx.attr_floats("scales") : float_values(ctx.require_constant(1, "scales"));
  return resize_common(ctx, scales, {}, params);
}

}  // namespace

AXSTREAM_ENGINE_OP(Resize, "Resize", 10, 17, compile_resize)
AXSTREAM_ENGINE_OP(Upsample, "Upsample", 7, 9, compile_upsample)

}  // namespace axstream::engine
