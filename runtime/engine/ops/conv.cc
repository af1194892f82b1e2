// Float Conv (1-D to 3-D, groups, strides, pads/auto_pad, dilations, bias, fused activation).
#include <omp.h>

#include <vector>

#include "../conv_dnnl.h"
#include "conv_reference.h"

namespace axstream::engine {
namespace {

// y = activation(y + skip), element by element, as the Add and the activation ops after an
// unfused convolution compute it (ops/binary.cc, ops/unary.cc): a residual sum where oneDNN's
// sum post-op is not taken.
void add_residual(float *y, const float *skip, int64_t n, const FusedActivation &act) {
  using Kind = FusedActivation::Kind;
  const float lo = act.lo, hi = act.hi, alpha = act.alpha;
  switch (act.kind) {
    case Kind::none:
      for (int64_t i = 0; i < n; ++i) y[i] = y[i] + skip[i];
      return;
    case Kind::relu:
      for (int64_t i = 0; i < n; ++i) {
        const float x = y[i] + skip[i];
        y[i] = x > 0.f ? x : 0.f;
      }
      return;
    case Kind::clip:
      for (int64_t i = 0; i < n; ++i) {
        const float x = y[i] + skip[i];
        y[i] = x < lo ? lo : (x > hi ? hi : x);
      }
      return;
    case Kind::leaky_relu:
      for (int64_t i = 0; i < n; ++i) {
        const float x = y[i] + skip[i];
        y[i] = x >= 0.f ? x : x * alpha;
      }
      return;
    default:
      throw InternalError("engine: a residual sum's activation must be Relu, Clip or LeakyRelu");
  }
}

// A oneDNN convolution followed, in the same step, by the engine's own residual add and
// activation: where oneDNN's sum post-op would not give the unfused bits (conv_dnnl.h).
class ConvThenResidualAdd : public Kernel {
 public:
  ConvThenResidualAdd(std::unique_ptr<Kernel> conv, int64_t count, FusedActivation act,
                      const std::string &why)
      : conv_(std::move(conv)), count_(count), act_(act) {
    scratch_bytes = conv_->scratch_bytes;
    impl = conv_->impl + " + add (no sum post-op: " + why + ")";
  }
  void run(ExecContext &ctx, const void *const *in, void *const *out) const override {
    conv_->run(ctx, in, out);
    add_residual(static_cast<float *>(out[0]), static_cast<const float *>(in[3]), count_, act_);
  }

 private:
  std::unique_ptr<Kernel> conv_;
  int64_t count_;
  FusedActivation act_;
};

std::unique_ptr<Kernel> compile_conv(OpContext &ctx) {
  // A residual add fused by passes.cc (fuse_float_residual_add_into_conv) is a fourth input.
  const bool sum = ctx.attr_i("_sum", 0) != 0;
  ctx.expect_inputs(2, sum ? 4 : 3);
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
  if (sum && (!ctx.has_input(3) || ctx.in_dtype(3) != DType::f32 || ctx.in_shape(3) != out))
    ctx.fail("_sum: input 3 (the residual) must be float32 of the output's shape " +
             shape_str(out) +
             (ctx.has_input(3) ? ", got " + std::string(dtype_name(ctx.in_dtype(3))) + " " +
                                     shape_str(ctx.in_shape(3))
                               : ", got none"));
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::f32 || ctx.in_dtype(1) != DType::f32)
    ctx.unsupported("Conv on non-float32 inputs");
  ConvShape s = conv_shape(xs, ws, g, group);
  FusedActivation act = FusedActivation::from(ctx);
  const FusedActivation sum_act = FusedActivation::from(ctx, "_sum");
  using Kind = FusedActivation::Kind;
  if (sum_act.kind != Kind::none && sum_act.kind != Kind::relu && sum_act.kind != Kind::clip &&
      sum_act.kind != Kind::leaky_relu)
    ctx.fail("_sum_activation must be Relu, Clip or LeakyRelu");
  if (!sum && sum_act.kind != Kind::none) ctx.fail("_sum_activation without _sum");
  const int64_t out_count = product(out, 0, out.size());
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
    p.sum = sum;
    p.sum_activation = sum_act;
    std::string refusal;
    if (auto k = make_dnnl_conv_f32(p, *ctx.constant(1), ctx.constant(2), nullptr, &refusal)) {
      k->macs = macs;
      return k;
    }
    if (sum) {
      p.sum = false;
      if (auto conv = make_dnnl_conv_f32(p, *ctx.constant(1), ctx.constant(2))) {
        auto k = std::make_unique<ConvThenResidualAdd>(
            std::move(conv), out_count, sum_act,
            refusal.empty() ? "oneDNN has no kernel for it" : refusal);
        k->macs = macs;
        return k;
      }
    }
  }
  bool has_bias = ctx.has_input(2);
  auto k = make_kernel([s, act, has_bias, xs, out, src_nhwc, dst_nhwc, sum, sum_act, out_count](
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
    if (sum) add_residual(y, static_cast<const float *>(in[3]), out_count, sum_act);
  });
  k->macs = macs;
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP(Conv, "Conv", 1, 17, compile_conv)

}  // namespace axstream::engine
