// ConvTranspose (2-D, groups, strides, pads, dilations, output_padding, bias), float32.
#include <dnnl.h>

#include "../conv_dnnl.h"
#include "common.h"

namespace axstream::engine {
namespace {

std::unique_ptr<Kernel> compile_conv_transpose(OpContext &ctx) {
  ctx.expect_inputs(2, 3);
  const Shape &xs = ctx.in_shape(0), &ws = ctx.in_shape(1);
  if (xs.size() != 4 || ws.size() != 4)
    ctx.unsupported("only 2-D ConvTranspose is supported, input " + shape_str(xs));
  std::string auto_pad = ctx.attr_s("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" &&
      auto_pad != "SAME_LOWER")
    ctx.fail("auto_pad '" + auto_pad + "' is not valid");
  int64_t group = ctx.attr_i("group", 1);
  if (group <= 0 || xs[1] != ws[0] || xs[1] % group)
    ctx.fail("input channels, weight " + shape_str(ws) + " and group do not agree");
  Shape stride = ctx.attr_ints("strides", {1, 1}), dil = ctx.attr_ints("dilations", {1, 1});
  Shape pads = auto_pad == "VALID" ? Shape{0, 0, 0, 0} : ctx.attr_ints("pads", {0, 0, 0, 0});
  Shape out_pad = ctx.attr_ints("output_padding", {0, 0});
  if (stride.size() != 2 || dil.size() != 2 || pads.size() != 4 || out_pad.size() != 2)
    ctx.fail("strides/dilations/pads/output_padding do not match 2 spatial dims");
  int64_t m = ws[1] * group, cg = xs[1] / group, mg = ws[1];
  Shape out = {xs[0], m, 0, 0};
  // An explicit output_shape (or SAME auto_pad: input * stride) fixes the output size and the
  // pads follow from it (ONNX: an odd total pad puts the extra pixel at the end for SAME_UPPER,
  // at the beginning otherwise).
  Shape wanted = ctx.attr_ints("output_shape");
  if (wanted.size() > 2) wanted.erase(wanted.begin(), wanted.end() - 2);
  if (!wanted.empty() && wanted.size() != 2) ctx.fail("output_shape must have 2 spatial dims");
  bool same = auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER";
  if (wanted.empty() && same) wanted = {xs[2] * stride[0], xs[3] * stride[1]};
  if (!wanted.empty()) {
    for (int d = 0; d < 2; ++d) {
      int64_t total =
          stride[d] * (xs[2 + d] - 1) + out_pad[d] + (ws[2 + d] - 1) * dil[d] + 1 - wanted[d];
      // Floor division (as ONNX's Python reference): a negative total (output_shape larger
      // than the natural size) pads the end.
      int64_t small = total >= 0 ? total / 2 : -((-total + 1) / 2), large = total - small;
      bool begin_small = auto_pad == "SAME_UPPER";
      pads[d] = begin_small ? small : large;
      pads[d + 2] = begin_small ? large : small;
    }
  }
  for (int d = 0; d < 2; ++d) {
    out[2 + d] = stride[d] * (xs[2 + d] - 1) + out_pad[d] + (ws[2 + d] - 1) * dil[d] + 1 - pads[d] -
                 pads[d + 2];
    if (out[2 + d] <= 0) ctx.fail("output size is not positive");
  }
  ctx.set_output(0, DType::f32, out);
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::f32) ctx.unsupported("non-float32 ConvTranspose");
  bool has_bias = ctx.has_input(2);
  int64_t n = xs[0], h = xs[2], w = xs[3], kh = ws[2], kw = ws[3], oh = out[2], ow = out[3];
  // (The column buffer is capped at 1 GiB; a larger layer takes the direct loop.)
  if (dnnl_kernels_enabled() && mg * kh * kw <= (int64_t(1) << 28) / std::max<int64_t>(h * w, 1)) {
    // Per image and group, one GEMM gives every input pixel's contribution to each
    // (output channel, ky, kx): columns = W_g^T [mg*kh*kw x cg] * x_g [cg x h*w]; the columns
    // are then added at their output positions (col2im). The direct loop below scatters one
    // multiply at a time and ran PP-OCR det's two 2x2 upsamplings at ~1 GMAC/s.
    int64_t rows = mg * kh * kw, pixels = h * w;
    bool tiles = stride[0] == kh && stride[1] == kw && dil[0] == 1 && dil[1] == 1 &&
                 pads[0] == 0 && pads[1] == 0 && oh == h * kh && ow == w * kw;
    auto k = make_kernel([=](ExecContext &ec, const void *const *in, void *const *o) {
      const float *x = static_cast<const float *>(in[0]);
      const float *wt = static_cast<const float *>(in[1]);
      const float *b = has_bias ? static_cast<const float *>(in[2]) : nullptr;
      float *y = static_cast<float *>(o[0]);
      float *columns = static_cast<float *>(ec.scratch);
      for (int64_t b_i = 0; b_i < n; ++b_i)
        for (int64_t g = 0; g < group; ++g) {
          const float *xg = x + (b_i * xs[1] + g * cg) * pixels;
          const float *wg = wt + g * cg * rows;
          if (dnnl_sgemm('T', 'N', rows, pixels, cg, 1.f, wg, rows, xg, pixels, 0.f, columns,
                         pixels) != dnnl_success)
            throw InternalError("ConvTranspose: dnnl_sgemm failed");
#pragma omp parallel for schedule(static)
          for (int64_t ocg = 0; ocg < mg; ++ocg) {
            int64_t oc = g * mg + ocg;
            float *yp = y + (b_i * m + oc) * oh * ow;
            float bias = b ? b[oc] : 0.f;
            if (tiles) {
              // Windows that tile the output (stride = kernel, no pads): every output pixel
              // takes exactly one column entry, written row by row in one pass.
              for (int64_t iy = 0; iy < h; ++iy)
                for (int64_t ky = 0; ky < kh; ++ky) {
                  float *yrow = yp + (iy * kh + ky) * ow;
                  for (int64_t kx = 0; kx < kw; ++kx) {
                    const float *crow = columns + ((ocg * kh + ky) * kw + kx) * pixels + iy * w;
                    for (int64_t ix = 0; ix < w; ++ix) yrow[ix * kw + kx] = crow[ix] + bias;
                  }
                }
              continue;
            }
            std::fill(yp, yp + oh * ow, bias);
            for (int64_t ky = 0; ky < kh; ++ky)
              for (int64_t kx = 0; kx < kw; ++kx) {
                const float *col = columns + ((ocg * kh + ky) * kw + kx) * pixels;
                for (int64_t iy = 0; iy < h; ++iy) {
                  int64_t oy = iy * stride[0] - pads[0] + ky * dil[0];
                  if (oy < 0 || oy >= oh) continue;
                  float *yrow = yp + oy * ow;
                  const float *crow = col + iy * w;
                  int64_t ox0 = -pads[1] + kx * dil[1];
                  for (int64_t ix = 0; ix < w; ++ix) {
                    int64_t ox = ix * stride[1] + ox0;
                    if (ox >= 0 && ox < ow) yrow[ox] += crow[ix];
                  }
                }
              }
          }
        }
    });
    k->scratch_bytes = static_cast<size_t>(rows * pixels) * sizeof(float);
    k->macs = static_cast<uint64_t>(n * xs[1] * h * w * mg * kh * kw);
    k->impl = "oneDNN sgemm + col2im";
    return k;
  }
  auto k = make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
    const float *x = static_cast<const float *>(in[0]);
    const float *wt = static_cast<const float *>(in[1]);
    const float *b = has_bias ? static_cast<const float *>(in[2]) : nullptr;
    float *y = static_cast<float *>(o[0]);
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t b_i = 0; b_i < n; ++b_i)
      for (int64_t oc = 0; oc < m; ++oc) {
        int64_t g = oc / mg, ocg = oc % mg;
        float *yp = y + (b_i * m + oc) * oh * ow;
        std::fill(yp, yp + oh * ow, b ? b[oc] : 0.f);
        for (int64_t c = 0; c < cg; ++c) {
          int64_t ic = g * cg + c;
          const float *xp = x + (b_i * xs[1] + ic) * h * w;
          const float *wp = wt + (ic * mg + ocg) * kh * kw;
          for (int64_t iy = 0; iy < h; ++iy)
            for (int64_t ky = 0; ky < kh; ++ky) {
              int64_t oy = iy * stride[0] - pads[0] + ky * dil[0];
              if (oy < 0 || oy >= oh) continue;
              for (int64_t ix = 0; ix < w; ++ix) {
                float xv = xp[iy * w + ix];
                for (int64_t kx = 0; kx < kw; ++kx) {
                  int64_t ox = ix * stride[1] - pads[1] + kx * dil[1];
                  if (ox >= 0 && ox < ow) yp[oy * ow + ox] += xv * wp[ky * kw + kx];
                }
              }
            }
        }
      }
  });
  k->macs = static_cast<uint64_t>(n * xs[1] * h * w * mg * kh * kw);
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP(ConvTranspose, "ConvTranspose", 1, 17, compile_conv_transpose)

}  // namespace axstream::engine
