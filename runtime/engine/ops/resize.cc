// Resize (opsets 10-17: nearest and linear, ONNX coordinate transformation modes) and
// Upsample (opsets 7-9). Linear interpolates the last two dims of a 4-D input.
#include <cstring>

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

std::unique_ptr<Kernel> resize_common(OpContext &ctx, std::vector<float> scales, Shape sizes,
                                      const std::string &mode, const std::string &coord,
                                      const std::string &nearest_mode) {
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
      if (scales[d] <= 0) ctx.fail("scale " + std::to_string(scales[d]) + " is not positive");
      out[d] = static_cast<int64_t>(std::floor(static_cast<float>(in[d]) * scales[d]));
    }
  }
  ctx.set_output(0, ctx.in_dtype(0), out);
  if (ctx.infer_only()) return nullptr;
  if (mode != "nearest" && mode != "linear") ctx.unsupported("mode '" + mode + "'");
  if (coord == "tf_crop_and_resize")
    ctx.unsupported("coordinate_transformation_mode tf_crop_and_resize");
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
  DType dt = ctx.in_dtype(0);
  if (mode == "nearest") {
    // Separable: each output row (all dims but the last) copies from one input row through
    // one column map. Upsampling repeats rows, which are then copied whole from the row
    // before. (A per-element index table cost 8 bytes read per element moved.) With _nhwc=1
    // (passes.cc: an int8 value between int8 convolutions, stored NHWC) the rows are (N, H),
    // the columns W and each column moves a pixel's C channels at once; N and C must map to
    // themselves.
    bool nhwc = ctx.attr_i("_nhwc", 0) != 0;
    Shape src = in, dst = out;
    std::vector<const Axis *> maps;
    for (const Axis &a : axes) maps.push_back(&a);
    int64_t unit = 1;  // elements moved together
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
      unit = in[1];
    }
    size_t rank = src.size();
    Shape in_strides = strides_of(src);
    int64_t n = product(dst, 0, rank);
    int64_t width = rank ? dst[rank - 1] : 1, rows = width ? n / width : 0;
    std::vector<int64_t> row_src(static_cast<size_t>(rows)), col_src(static_cast<size_t>(width));
    for (int64_t j = 0; j < width; ++j)
      col_src[j] = rank ? maps[rank - 1]->i0[j] * in_strides[rank - 1] * unit : 0;
    std::vector<int64_t> idx(rank ? rank - 1 : 0, 0);
    for (int64_t row = 0; row < rows; ++row) {
      int64_t s = 0;
      for (size_t d = 0; d + 1 < rank; ++d) s += maps[d]->i0[idx[d]] * in_strides[d];
      row_src[row] = s * unit;
      for (int d = static_cast<int>(rank) - 2; d >= 0; --d) {
        if (++idx[d] < dst[d]) break;
        idx[d] = 0;
      }
    }
    size_t es = dtype_size(dt), column_bytes = es * static_cast<size_t>(unit);
    auto k = make_kernel([row_src = std::move(row_src), col_src = std::move(col_src), width, es,
                          column_bytes](ExecContext &, const void *const *i, void *const *o) {
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
  if (r != 4 || scales[0] != 1.f || scales[1] != 1.f)
    ctx.unsupported("linear Resize is implemented for the H and W dims of 4-D inputs, got " +
                    shape_str(in));
  if (dt != DType::f32) ctx.unsupported("linear Resize of non-float32 data");
  int64_t planes = in[0] * in[1], ih = in[2], iw = in[3], oh = out[2], ow = out[3];
  Axis ay = axes[2], ax = axes[3];
  auto k = make_kernel([=](ExecContext &, const void *const *i, void *const *o) {
    const float *x = static_cast<const float *>(i[0]);
    float *y = static_cast<float *>(o[0]);
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < planes; ++p) {
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
    }
  });
  k->macs = static_cast<uint64_t>(planes * oh * ow * 3);
  return k;
}

std::vector<float> float_values(const Tensor &t) {
  std::vector<float> v;
  for (int64_t i = 0; i < t.count(); ++i) v.push_back(static_cast<float>(t.as_double(i)));
  return v;
}

std::unique_ptr<Kernel> compile_resize(OpContext &ctx) {
  std::string mode = ctx.attr_s("mode", "nearest");
  if (ctx.opset() < 11) {
    ctx.expect_inputs(2, 2);
    return resize_common(ctx, float_values(ctx.require_constant(1, "scales")), {}, mode,
                         "asymmetric", "floor");
  }
  ctx.expect_inputs(1, 4);
  std::vector<float> scales;
  Shape sizes;
  if (ctx.has_input(3)) sizes = ctx.constant_ints(3, "sizes");
  if (ctx.has_input(2)) scales = float_values(ctx.require_constant(2, "scales"));
  if (sizes.empty() && scales.empty()) ctx.fail("neither scales nor sizes is given");
  if (ctx.attr_i("exclude_outside", 0) != 0 || ctx.has_attr("axes") ||
      ctx.attr_s("keep_aspect_ratio_policy", "stretch") != "stretch")
    ctx.unsupported("exclude_outside / axes / keep_aspect_ratio_policy");
  return resize_common(ctx, scales, sizes, mode,
                       ctx.attr_s("coordinate_transformation_mode", "half_pixel"),
                       ctx.attr_s("nearest_mode", "round_prefer_floor"));
}

std::unique_ptr<Kernel> compile_upsample(OpContext &ctx) {
  std::string mode = ctx.attr_s("mode", "nearest");
  std::vector<float> scales =
      ctx.opset() < 9 ? ctx.attr_floats("scales") : float_values(ctx.require_constant(1, "scales"));
  return resize_common(ctx, scales, {}, mode, "asymmetric", "floor");
}

}  // namespace

AXSTREAM_ENGINE_OP(Resize, "Resize", 10, 17, compile_resize)
AXSTREAM_ENGINE_OP(Upsample, "Upsample", 7, 9, compile_upsample)

}  // namespace axstream::engine
