// Float Conv (1-D/2-D, groups, strides, pads/auto_pad, dilations, bias, fused activation).
#include <omp.h>

#include "../conv_dnnl.h"
#include "common.h"

namespace axstream::engine {
namespace {

struct ConvShape {
  int64_t n, c, h, w, m, group, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl;
};

void conv_reference(const ConvShape &s, const float *x, const float *wt, const float *bias,
                    float *y, const FusedActivation &act) {
  int64_t cg = s.c / s.group, mg = s.m / s.group;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < s.n; ++n) {
    for (int64_t m = 0; m < s.m; ++m) {
      int64_t g = m / mg;
      float *out = y + (n * s.m + m) * s.oh * s.ow;
      float b = bias ? bias[m] : 0.f;
      for (int64_t i = 0; i < s.oh * s.ow; ++i) out[i] = b;
      for (int64_t ci = 0; ci < cg; ++ci) {
        const float *in = x + (n * s.c + g * cg + ci) * s.h * s.w;
        for (int64_t ky = 0; ky < s.kh; ++ky) {
          for (int64_t kx = 0; kx < s.kw; ++kx) {
            float wv = wt[((m * cg + ci) * s.kh + ky) * s.kw + kx];
            int64_t xoff = kx * s.dw - s.pl;
            // ow range with 0 <= ow*sw + xoff < w
            int64_t ow_lo = xoff >= 0 ? 0 : (-xoff + s.sw - 1) / s.sw;
            int64_t ow_hi = s.w - xoff <= 0 ? 0 : std::min(s.ow, (s.w - xoff + s.sw - 1) / s.sw);
            for (int64_t oy = 0; oy < s.oh; ++oy) {
              int64_t iy = oy * s.sh - s.pt + ky * s.dh;
              if (iy < 0 || iy >= s.h) continue;
              const float *row = in + iy * s.w + xoff;
              float *orow = out + oy * s.ow;
              if (s.sw == 1)
                for (int64_t ox = ow_lo; ox < ow_hi; ++ox) orow[ox] += wv * row[ox];
              else
                for (int64_t ox = ow_lo; ox < ow_hi; ++ox) orow[ox] += wv * row[ox * s.sw];
            }
          }
        }
      }
      act.apply(out, s.oh * s.ow);
    }
  }
}

std::unique_ptr<Kernel> compile_conv(OpContext &ctx) {
  ctx.expect_inputs(2, 3);
  const Shape &xs = ctx.in_shape(0);
  const Shape &ws = ctx.in_shape(1);
  if (xs.size() < 3 || xs.size() > 4 || ws.size() != xs.size())
    ctx.unsupported("only 1-D and 2-D convolutions are supported (input " + shape_str(xs) +
                    ", weight " + shape_str(ws) + ")");
  int64_t group = ctx.attr_i("group", 1);
  if (group <= 0 || xs[1] % group || ws[0] % group || ws[1] * group != xs[1])
    ctx.fail("input channels " + std::to_string(xs[1]) + ", weight " + shape_str(ws) +
             " and group " + std::to_string(group) + " do not agree");
  Shape kernel(ws.begin() + 2, ws.end());
  if (ctx.has_attr("kernel_shape") && ctx.attr_ints("kernel_shape") != kernel)
    ctx.fail("kernel_shape attribute contradicts the weight shape " + shape_str(ws));
  WindowGeometry g = WindowGeometry::resolve(ctx, Shape(xs.begin() + 2, xs.end()), kernel, false);
  Shape out = {xs[0], ws[0]};
  out.insert(out.end(), g.out.begin(), g.out.end());
  ctx.set_output(0, DType::f32, out);
  if (ctx.has_input(2) && ctx.in_shape(2) != Shape{ws[0]})
    ctx.fail("bias shape " + shape_str(ctx.in_shape(2)) + " is not (" + std::to_string(ws[0]) +
             ")");
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::f32 || ctx.in_dtype(1) != DType::f32)
    ctx.unsupported("Conv on non-float32 inputs");
  bool two_d = xs.size() == 4;
  ConvShape s{xs[0],
              xs[1],
              two_d ? xs[2] : 1,
              two_d ? xs[3] : xs[2],
              ws[0],
              group,
              two_d ? ws[2] : 1,
              two_d ? ws[3] : ws[2],
              two_d ? g.out[0] : 1,
              two_d ? g.out[1] : g.out[0],
              two_d ? g.stride[0] : 1,
              g.stride.back(),
              two_d ? g.dilation[0] : 1,
              g.dilation.back(),
              two_d ? g.pad_begin[0] : 0,
              g.pad_begin.back()};
  FusedActivation act = FusedActivation::from(ctx);
  uint64_t macs = static_cast<uint64_t>(s.n * s.m * s.oh * s.ow * (s.c / group) * s.kh * s.kw);
  if (two_d && ctx.constant(1) && (!ctx.has_input(2) || ctx.constant(2))) {
    DnnlConvParams p{xs, ws, out, g.stride, g.dilation, g.pad_begin, g.pad_end, group, act};
    if (auto k = make_dnnl_conv_f32(p, *ctx.constant(1), ctx.constant(2))) {
      k->macs = macs;
      return k;
    }
  }
  bool has_bias = ctx.has_input(2);
  auto k = make_kernel([s, act, has_bias](ExecContext &, const void *const *in, void *const *o) {
    conv_reference(s, static_cast<const float *>(in[0]), static_cast<const float *>(in[1]),
                   has_bias ? static_cast<const float *>(in[2]) : nullptr,
                   static_cast<float *>(o[0]), act);
  });
  k->macs = macs;
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP(Conv, "Conv", 1, 17, compile_conv)

}  // namespace axstream::engine
