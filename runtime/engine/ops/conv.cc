// Float Conv (1-D to 3-D, groups, strides, pads/auto_pad, dilations, bias, fused activation).
#include <omp.h>

#include <vector>

#include "../conv_dnnl.h"
#include "conv_reference.h"

namespace axstream::engine {
namespace {

std::unique_ptr<Kernel> compile_conv(OpContext &ctx) {
  ctx.expect_inputs(2, 3);
  const Shape &xs = ctx.in_shape(0);
  const Shape &ws = ctx.in_shape(1);
  int64_t group = conv_group(ctx, xs, ws, "convolutions");
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
  ConvShape s = conv_shape(xs, ws, g, group);
  FusedActivation act = FusedActivation::from(ctx);
  uint64_t macs =
      static_cast<uint64_t>(s.n * s.m * s.od * s.oh * s.ow * (s.c / group) * s.kd * s.kh * s.kw);
  // passes.cc keeps a mixed-precision model's float blocks NHWC between NHWC int8 ones.
  const bool src_nhwc = ctx.attr_i("_src_nhwc", 0) != 0, dst_nhwc = ctx.attr_i("_dst_nhwc", 0) != 0;
  if ((src_nhwc || dst_nhwc) && xs.size() != 4)
    ctx.fail("_src_nhwc/_dst_nhwc need a 2-D convolution (4-D tensors), got input " +
             shape_str(xs));
  // oneDNN has 2-D and 3-D convolutions; 1-D ones run on the reference loops.
  if (xs.size() >= 4 && ctx.constant(1) && (!ctx.has_input(2) || ctx.constant(2))) {
    DnnlConvParams p{xs, ws, out, g.stride, g.dilation, g.pad_begin, g.pad_end, group, act};
    p.src_nhwc = src_nhwc;
    p.dst_nhwc = dst_nhwc;
    if (auto k = make_dnnl_conv_f32(p, *ctx.constant(1), ctx.constant(2))) {
      k->macs = macs;
      return k;
    }
  }
  bool has_bias = ctx.has_input(2);
  auto k = make_kernel([s, act, has_bias, xs, out, src_nhwc, dst_nhwc](
                           ExecContext &, const void *const *in, void *const *o) {
    // The reference loops read and write NCHW: NHWC buffers are turned around on the way (a
    // fallback for a convolution oneDNN has no implementation of, not a fast path).
    std::vector<float> x_nchw, y_nchw;
    const float *x = static_cast<const float *>(in[0]);
    float *y = static_cast<float *>(o[0]);
    auto turn = [](const Shape &nchw, bool to_nhwc, const float *from, float *to) {
      const int64_t n = nchw[0], c = nchw[1], hw = nchw[2] * nchw[3];
      for (int64_t b = 0; b < n; ++b)
        for (int64_t ch = 0; ch < c; ++ch)
          for (int64_t p = 0; p < hw; ++p) {
            const int64_t planar = (b * c + ch) * hw + p, interleaved = (b * hw + p) * c + ch;
            to[to_nhwc ? interleaved : planar] = from[to_nhwc ? planar : interleaved];
          }
    };
    if (src_nhwc) {
      x_nchw.resize(static_cast<size_t>(product(xs, 0, xs.size())));
      turn(xs, false, x, x_nchw.data());
      x = x_nchw.data();
    }
    if (dst_nhwc) y_nchw.resize(static_cast<size_t>(product(out, 0, out.size())));
    conv_reference(s, x, static_cast<const float *>(in[1]),
                   has_bias ? static_cast<const float *>(in[2]) : nullptr,
                   dst_nhwc ? y_nchw.data() : y, act);
    if (dst_nhwc) turn(out, true, y_nchw.data(), y);
  });
  k->macs = macs;
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP(Conv, "Conv", 1, 17, compile_conv)

}  // namespace axstream::engine
