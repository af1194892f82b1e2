// ConvTranspose (1-D to 3-D, groups, strides, pads/auto_pad, dilations, output_padding,
// output_shape, bias), float32.
#include <dnnl.h>

#include <limits>

#include "../conv_dnnl.h"
#include "../parallel.h"
#include "common.h"

namespace axstream::engine {
namespace {

// A 1-D or 2-D ConvTranspose is the 3-D one with leading spatial dims of 1: every per-dim array
// below is (depth, height, width).
struct TransposedGeometry {
  int64_t n = 0, c = 0, m = 0, group = 1, cg = 0, mg = 0;
  int64_t in[3] = {1, 1, 1}, kernel[3] = {1, 1, 1}, out[3] = {1, 1, 1};
  int64_t stride[3] = {1, 1, 1}, dilation[3] = {1, 1, 1}, pad_begin[3] = {0, 0, 0};

  int64_t in_volume() const { return in[0] * in[1] * in[2]; }
  int64_t kernel_volume() const { return kernel[0] * kernel[1] * kernel[2]; }
  int64_t out_volume() const { return out[0] * out[1] * out[2]; }
  // Windows that tile the output (stride = kernel, no pads, no overlap, nothing cut off):
  // every output element takes exactly one input element's contribution.
  bool tiles() const {
    for (int d = 0; d < 3; ++d)
      if (stride[d] != kernel[d] || dilation[d] != 1 || pad_begin[d] != 0 ||
          out[d] != in[d] * kernel[d])
        return false;
    return true;
  }
};

// Resolves strides, dilations, pads, auto_pad, output_padding and output_shape as ONNX does and
// sets the output; `xs`, `ws`: input (N, C, spatial...) and weight (C, M/group, kernel...).
TransposedGeometry resolve_geometry(OpContext &ctx, const Shape &xs, const Shape &ws) {
  if (xs.size() < 3 || xs.size() > 5 || ws.size() != xs.size())
    ctx.unsupported("only 1-D, 2-D and 3-D ConvTranspose are supported (input " + shape_str(xs) +
                    ", weight " + shape_str(ws) + ")");
  size_t r = xs.size() - 2;
  std::string auto_pad = ctx.attr_s("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" &&
      auto_pad != "SAME_LOWER")
    ctx.fail("auto_pad '" + auto_pad + "' is not valid");
  TransposedGeometry g;
  g.group = ctx.attr_i("group", 1);
  if (g.group <= 0 || xs[1] != ws[0] || xs[1] % g.group)
    ctx.fail("input channels " + std::to_string(xs[1]) + ", weight " + shape_str(ws) +
             " and group " + std::to_string(g.group) + " do not agree");
  Shape kernel(ws.begin() + 2, ws.end());
  if (ctx.has_attr("kernel_shape") && ctx.attr_ints("kernel_shape") != kernel)
    ctx.fail("kernel_shape " + shape_str(ctx.attr_ints("kernel_shape")) +
             " contradicts the weight shape " + shape_str(ws));
  Shape stride = ctx.attr_ints("strides", Shape(r, 1)),
        dil = ctx.attr_ints("dilations", Shape(r, 1));
  Shape pads = ctx.attr_ints("pads", Shape(2 * r, 0));
  if (auto_pad == "VALID") pads.assign(2 * r, 0);
  Shape out_pad = ctx.attr_ints("output_padding", Shape(r, 0));
  if (stride.size() != r || dil.size() != r || pads.size() != 2 * r || out_pad.size() != r)
    ctx.fail("strides/dilations/pads/output_padding do not match " + std::to_string(r) +
             " spatial dims");
  for (size_t d = 0; d < r; ++d) {
    if (stride[d] <= 0 || dil[d] <= 0 || kernel[d] <= 0)
      ctx.fail("non-positive kernel, stride or dilation");
    if (out_pad[d] < 0 || pads[d] < 0 || pads[d + r] < 0)
      ctx.fail("negative pads or output_padding");
  }
  // An explicit output_shape (or SAME auto_pad: input * stride) fixes the output size and the
  // pads follow from it (ONNX: an odd total pad puts the extra element at the end for
  // SAME_UPPER, at the beginning otherwise).
  Shape wanted = ctx.attr_ints("output_shape");
  if (wanted.size() > r) wanted.erase(wanted.begin(), wanted.end() - r);
  if (!wanted.empty() && wanted.size() != r)
    ctx.fail("output_shape must have " + std::to_string(r) + " spatial dims");
  bool same = auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER";
  // The sizes and pads below are computed in 128 bits and refused when they leave int64
  // (attributes from a file may claim anything).
  using Wide = __int128;
  auto narrow = [&](Wide v, size_t d, const char *what) {
    if (v < std::numeric_limits<int64_t>::min() || v > std::numeric_limits<int64_t>::max())
      ctx.fail(std::string(what) + " of spatial dim " + std::to_string(d) + " overflows int64");
    return static_cast<int64_t>(v);
  };
  if (wanted.empty() && same)
    for (size_t d = 0; d < r; ++d)
      wanted.push_back(narrow(Wide(xs[2 + d]) * stride[d], d, "input size * stride"));
  auto natural_size = [&](size_t d) {
    return Wide(stride[d]) * (xs[2 + d] - 1) + out_pad[d] + Wide(kernel[d] - 1) * dil[d] + 1;
  };
  if (!wanted.empty()) {
    for (size_t d = 0; d < r; ++d) {
      Wide total = natural_size(d) - wanted[d];
      // Floor division (as ONNX's Python reference): a negative total (output_shape larger
      // than the natural size) pads the end.
      Wide small = total >= 0 ? total / 2 : -((-total + 1) / 2), large = total - small;
      bool begin_small = auto_pad == "SAME_UPPER";
      pads[d] = narrow(begin_small ? small : large, d, "the pad output_shape implies");
      pads[d + r] = narrow(begin_small ? large : small, d, "the pad output_shape implies");
    }
  }
  g.n = xs[0];
  g.c = xs[1];
  g.cg = xs[1] / g.group;
  g.mg = ws[1];
  g.m = ws[1] * g.group;
  Shape out = {g.n, g.m};
  for (size_t d = 0; d < r; ++d) {
    size_t at = 3 - r + d;
    g.in[at] = xs[2 + d];
    g.kernel[at] = kernel[d];
    g.stride[at] = stride[d];
    g.dilation[at] = dil[d];
    g.pad_begin[at] = pads[d];
    narrow(natural_size(d), d, "the uncropped output size");
    g.out[at] = narrow(natural_size(d) - pads[d] - pads[d + r], d, "the output size");
    if (g.out[at] <= 0)
      ctx.fail("output size " + std::to_string(g.out[at]) + " of spatial dim " + std::to_string(d) +
               " is not positive");
    out.push_back(g.out[at]);
  }
  ctx.set_output(0, DType::f32, out);
  return g;
}

// Adds one kernel tap's contribution to an output channel's volume `y`: `values` (one per input
// element) times `scale` land at input position * stride - pad + tap * dilation when that is
// inside the output.
void scatter_tap(const TransposedGeometry &g, const int64_t tap[3], const float *values,
                 float scale, float *y) {
  int64_t offset[3];
  for (int d = 0; d < 3; ++d) offset[d] = tap[d] * g.dilation[d] - g.pad_begin[d];
  // The input columns whose output column is inside [0, out width).
  int64_t ix_lo = offset[2] >= 0 ? 0 : (-offset[2] + g.stride[2] - 1) / g.stride[2];
  int64_t ix_hi = g.out[2] - offset[2] <= 0
                      ? 0
                      : std::min(g.in[2], (g.out[2] - offset[2] + g.stride[2] - 1) / g.stride[2]);
  for (int64_t iz = 0; iz < g.in[0]; ++iz) {
    int64_t oz = iz * g.stride[0] + offset[0];
    if (oz < 0 || oz >= g.out[0]) continue;
    for (int64_t iy = 0; iy < g.in[1]; ++iy) {
      int64_t oy = iy * g.stride[1] + offset[1];
      if (oy < 0 || oy >= g.out[1]) continue;
      float *yrow = y + (oz * g.out[1] + oy) * g.out[2];
      const float *vrow = values + (iz * g.in[1] + iy) * g.in[2];
      for (int64_t ix = ix_lo; ix < ix_hi; ++ix)
        yrow[ix * g.stride[2] + offset[2]] += vrow[ix] * scale;
    }
  }
}

// Writes one output channel's volume when the windows tile it: output element
// (iz*kd+kz, iy*kh+ky, ix*kw+kx) = bias + columns of tap (kz, ky, kx) at input (iz, iy, ix).
void place_tiles(const TransposedGeometry &g, const float *columns, int64_t pixels, float bias,
                 float *y) {
  const int64_t kd = g.kernel[0], kh = g.kernel[1], kw = g.kernel[2];
  for (int64_t iz = 0; iz < g.in[0]; ++iz)
    for (int64_t kz = 0; kz < kd; ++kz)
      for (int64_t iy = 0; iy < g.in[1]; ++iy)
        for (int64_t ky = 0; ky < kh; ++ky) {
          float *yrow = y + ((iz * kd + kz) * g.out[1] + iy * kh + ky) * g.out[2];
          for (int64_t kx = 0; kx < kw; ++kx) {
            const float *crow =
                columns + ((kz * kh + ky) * kw + kx) * pixels + (iz * g.in[1] + iy) * g.in[2];
            for (int64_t ix = 0; ix < g.in[2]; ++ix) yrow[ix * kw + kx] = crow[ix] + bias;
          }
        }
}

std::unique_ptr<Kernel> compile_conv_transpose(OpContext &ctx) {
  ctx.expect_inputs(2, 3);
  const Shape &xs = ctx.in_shape(0), &ws = ctx.in_shape(1);
  TransposedGeometry g = resolve_geometry(ctx, xs, ws);
  bool has_bias = ctx.has_input(2);
  if (has_bias && ctx.in_shape(2) != Shape{g.m})
    ctx.fail("bias shape " + shape_str(ctx.in_shape(2)) + " is not (" + std::to_string(g.m) + ")");
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::f32 || ctx.in_dtype(1) != DType::f32)
    ctx.unsupported("non-float32 ConvTranspose");
  int64_t pixels = g.in_volume(), taps = g.kernel_volume(), rows = g.mg * taps;
  uint64_t macs = static_cast<uint64_t>(g.n * g.c * pixels * rows);
  // (The column buffer is capped at 1 GiB; a larger layer takes the direct loop.)
  if (dnnl_kernels_enabled() && rows <= (int64_t(1) << 28) / std::max<int64_t>(pixels, 1)) {
    // Per image and group, one GEMM gives every input element's contribution to each
    // (output channel, kernel tap): columns = W_g^T [mg*taps x cg] * x_g [cg x pixels]; the
    // columns are then added at their output positions (col2im). The direct loop below scatters
    // one multiply at a time and ran PP-OCR det's two 2x2 upsamplings at ~1 GMAC/s.
    bool tiles = g.tiles();
    std::string where = ctx.where();
    auto k = make_kernel([=](ExecContext &ec, const void *const *in, void *const *o) {
      const float *x = static_cast<const float *>(in[0]);
      const float *wt = static_cast<const float *>(in[1]);
      const float *b = has_bias ? static_cast<const float *>(in[2]) : nullptr;
      float *y = static_cast<float *>(o[0]);
      float *columns = static_cast<float *>(ec.scratch);
      int64_t out_volume = g.out_volume();
      for (int64_t image = 0; image < g.n; ++image)
        for (int64_t group = 0; group < g.group; ++group) {
          const float *xg = x + (image * g.c + group * g.cg) * pixels;
          const float *wg = wt + group * g.cg * rows;
          dnnl_status_t status = dnnl_sgemm('T', 'N', rows, pixels, g.cg, 1.f, wg, rows, xg, pixels,
                                            0.f, columns, pixels);
          if (status != dnnl_success)
            throw InternalError(where + ": dnnl_sgemm (M=" + std::to_string(rows) +
                                ", N=" + std::to_string(pixels) + ", K=" + std::to_string(g.cg) +
                                ") returned dnnl status " + std::to_string(int(status)) +
                                ", expected dnnl_success");
          parallel_for(g.mg, worth_splitting(), [&](int64_t ocg) {
            int64_t oc = group * g.mg + ocg;
            float *yc = y + (image * g.m + oc) * out_volume;
            const float *channel_columns = columns + ocg * taps * pixels;
            float bias = b ? b[oc] : 0.f;
            if (tiles) {
              place_tiles(g, channel_columns, pixels, bias, yc);
              return;
            }
            std::fill(yc, yc + out_volume, bias);
            int64_t tap[3];
            for (tap[0] = 0; tap[0] < g.kernel[0]; ++tap[0])
              for (tap[1] = 0; tap[1] < g.kernel[1]; ++tap[1])
                for (tap[2] = 0; tap[2] < g.kernel[2]; ++tap[2]) {
                  int64_t t = (tap[0] * g.kernel[1] + tap[1]) * g.kernel[2] + tap[2];
                  scatter_tap(g, tap, channel_columns + t * pixels, 1.f, yc);
                }
          });
        }
    });
    k->scratch_bytes = static_cast<size_t>(rows * pixels) * sizeof(float);
    k->macs = macs;
    k->impl = "oneDNN sgemm + col2im";
    return k;
  }
  // The reference: each (input channel, tap) adds that channel's input times the tap's weight
  // at the tap's output positions.
  auto k = make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
    const float *x = static_cast<const float *>(in[0]);
    const float *wt = static_cast<const float *>(in[1]);
    const float *b = has_bias ? static_cast<const float *>(in[2]) : nullptr;
    float *y = static_cast<float *>(o[0]);
    int64_t out_volume = g.out_volume();
    parallel_for_2d(g.n, g.m, worth_splitting(), [&](int64_t image, int64_t oc) {
      int64_t group = oc / g.mg, ocg = oc % g.mg;
      float *yc = y + (image * g.m + oc) * out_volume;
      std::fill(yc, yc + out_volume, b ? b[oc] : 0.f);
      for (int64_t c = 0; c < g.cg; ++c) {
        int64_t ic = group * g.cg + c;
        const float *xc = x + (image * g.c + ic) * pixels;
        const float *wc = wt + (ic * g.mg + ocg) * taps;
        int64_t tap[3];
        for (tap[0] = 0; tap[0] < g.kernel[0]; ++tap[0])
          for (tap[1] = 0; tap[1] < g.kernel[1]; ++tap[1])
            for (tap[2] = 0; tap[2] < g.kernel[2]; ++tap[2]) {
              int64_t t = (tap[0] * g.kernel[1] + tap[1]) * g.kernel[2] + tap[2];
              scatter_tap(g, tap, xc, wc[t], yc);
            }
      }
    });
  });
  k->macs = macs;
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP(ConvTranspose, "ConvTranspose", 1, 17, compile_conv_transpose)

}  // namespace axstream::engine
