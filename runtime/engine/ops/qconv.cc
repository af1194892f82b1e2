// axstream.QConv: the fused DequantizeLinear -> Conv -> [Relu|Clip|Sigmoid] -> QuantizeLinear
// pattern (made by passes.cc). oneDNN int8 convolution with requantisation when it has an
// implementation; otherwise the same ONNX arithmetic in float. With a residual (the int8 add
// that read it, fused by passes.cc), the add and its Relu run as oneDNN post-ops around its
// sum post-op, bit-exact to the unfused convolution and axstream.QAdd.
#include <cstring>

#include "../compiler.h"
#include "../conv_dnnl.h"
#include "conv_reference.h"
#include "depthwise_int8.h"
#include "pointwise_int8.h"
#include "quantized_join.h"
#include "stem_int8.h"

namespace axstream::engine {
namespace {

// Input slots, as passes.cc lays them out. kSkip..kSumYZero: the residual added to the
// convolution's requantised output (its scale and zero point) and the scale and zero point of
// the sum, present only in a convolution fused with its residual add.
enum Slot {
  kX,
  kXScale,
  kXZero,
  kW,
  kWScale,
  kBias,
  kBiasScale,
  kYScale,
  kYZero,
  kSkip,
  kSkipScale,
  kSkipZero,
  kSumYScale,
  kSumYZero
};

// oneDNN's int8 convolution is exact on CPUs with VNNI; without it (AVX2) pairs of u8 x s8
// products are summed in saturating int16, which is exact only while |weight| <= 64.
bool int8_path_is_exact(const Tensor &w) {
  if (dnnl_cpu_has_vnni()) return true;
  const int8_t *d = w.data<int8_t>();
  for (int64_t i = 0; i < w.count(); ++i)
    if (d[i] > 64 || d[i] < -64) return false;
  return true;
}

// What a QConv requantises with: the activations' scales and zero points and, per output
// channel, the weight scale and the bias in real units.
struct QConvConstants {
  float x_scale = 1.f, y_scale = 1.f;
  int32_t x_zero = 0, y_zero = 0;
  // -128: a uint8 output with zero point 0 standing for int8 with zero point -128, to be
  // rounded as that is (passes.cc's _rounds_as_int8); 0: none.
  int32_t rounds_as_int8_zero_point = 0;
  std::vector<float> w_scale, bias;
  std::vector<float> bias_acc;  // the bias in accumulator units (x_scale * w_scale)
};

std::vector<float> per_channel_weight_scales(OpContext &ctx, int64_t m) {
  const Tensor &w_scale_t = ctx.require_constant(kWScale, "w_scale");
  if (w_scale_t.count() != 1 && w_scale_t.count() != m)
    ctx.fail("w_scale has " + std::to_string(w_scale_t.count()) + " values for " +
             std::to_string(m) + " output channels");
  std::vector<float> w_scale(static_cast<size_t>(m));
  for (int64_t c = 0; c < m; ++c)
    w_scale[c] = w_scale_t.data<float>()[w_scale_t.count() == 1 ? 0 : c];
  return w_scale;
}

// The bias (int32 times its scale, or float) per output channel; 0 without one.
std::vector<float> bias_in_real_units(OpContext &ctx, int64_t m) {
  std::vector<float> bias(static_cast<size_t>(m), 0.f);
  if (ctx.has_input(kBias)) {
    const Tensor &b = ctx.require_constant(kBias, "bias");
    if (b.count() != m)
      ctx.fail("bias has " + std::to_string(b.count()) + " values for " + std::to_string(m) +
               " channels");
    if (ctx.has_input(kBiasScale)) {
      const Tensor &bs = ctx.require_constant(kBiasScale, "bias scale");
      for (int64_t c = 0; c < m; ++c)
        bias[c] =
            static_cast<float>(b.data<int32_t>()[c]) * bs.data<float>()[bs.count() == 1 ? 0 : c];
    } else {
      for (int64_t c = 0; c < m; ++c) bias[c] = b.data<float>()[c];
    }
  }
  return bias;
}

// The bias in accumulator units (those of x_scale * w_scale[c]). An int32 bias whose scale is
// that product up to its rounding to float (2^-21 relative: a few ulps), as quantisers write it,
// is the integer itself, as ONNX's QLinearConv adds its int32 bias to the accumulator: then a
// source zero point folds into it exactly (conv_dnnl.cc, fold_source_zero_point), which the
// quotient of the rounded floats, a few ulps off the integer, does not allow. Otherwise the
// real bias over that product (and always with AXSTREAM_ENGINE_INTEGER_BIAS=0).
std::vector<float> bias_in_accumulator_units(OpContext &ctx, const QConvConstants &k) {
  std::vector<float> acc(k.bias.size());
  const Tensor *b = ctx.has_input(kBias) && ctx.has_input(kBiasScale) &&
                            setting_not_zero("AXSTREAM_ENGINE_INTEGER_BIAS")
                        ? &ctx.require_constant(kBias, "bias")
                        : nullptr;
  const Tensor *bs = b ? &ctx.require_constant(kBiasScale, "bias scale") : nullptr;
  for (size_t c = 0; c < acc.size(); ++c) {
    acc[c] = k.bias[c] / (k.x_scale * k.w_scale[c]);
    if (!b || b->dtype != DType::i32) continue;
    const int32_t integer = b->data<int32_t>()[c];
    const double scale = bs->data<float>()[bs->count() == 1 ? 0 : c];
    const double unit = static_cast<double>(k.x_scale) * static_cast<double>(k.w_scale[c]);
    if (std::fabs(scale / unit - 1.0) <= std::ldexp(1.0, -21) && std::abs(integer) < (1 << 24))
      acc[c] = static_cast<float>(integer);
  }
  return acc;
}

QConvConstants read_qconv_constants(OpContext &ctx, int64_t m) {
  QConvConstants k;
  k.x_scale = static_cast<float>(ctx.require_scalar(kXScale, "x_scale").as_double(0));
  k.x_zero = ctx.has_input(kXZero)
                 ? static_cast<int32_t>(ctx.require_scalar(kXZero, "x_zero_point").as_int(0))
                 : 0;
  k.y_scale = static_cast<float>(ctx.require_scalar(kYScale, "y_scale").as_double(0));
  k.y_zero = ctx.has_input(kYZero)
                 ? static_cast<int32_t>(ctx.require_scalar(kYZero, "y_zero_point").as_int(0))
                 : 0;
  k.w_scale = per_channel_weight_scales(ctx, m);
  k.bias = bias_in_real_units(ctx, m);
  k.bias_acc = bias_in_accumulator_units(ctx, k);
  return k;
}

// oneDNN's int8 convolution: the requantisation folds into per-channel output scales and a
// bias in accumulator units.
DnnlQConvParams int8_conv_params(const DnnlConvParams &conv, const QConvConstants &k,
                                 DType in_dtype, DType out_dtype) {
  DnnlQConvParams q;
  q.conv = conv;
  const FusedActivation &act = conv.activation;
  // Sigmoid is applied to the dequantised accumulator (x_scale * w_scale * (acc + bias)), then
  // scaled to output units; the piecewise-linear activations commute with the output scale.
  const bool real_valued_activation = act.kind == FusedActivation::Kind::sigmoid;
  const float units = real_valued_activation ? 1.f : k.y_scale;
  if (real_valued_activation) q.post_activation_multiplier = 1.f / k.y_scale;
  q.conv.activation.lo = act.lo / units;
  q.conv.activation.hi = act.hi / units;
  q.src_dtype = in_dtype;
  q.dst_dtype = out_dtype;
  q.src_zero_point = k.x_zero;
  q.dst_zero_point = k.y_zero;
  q.rounds_as_int8_zero_point = k.rounds_as_int8_zero_point;
  for (size_t c = 0; c < k.w_scale.size(); ++c) {
    q.output_scales.push_back(k.x_scale * k.w_scale[c] / units);
    q.bias_acc.push_back(k.bias_acc[c]);
  }
  return q;
}

// Exactly the unfused ONNX arithmetic: dequantize, float conv (oneDNN f32 when available,
// with the (de)quantisation in its reorders if it can), activation, quantize.
std::unique_ptr<Kernel> dequantizing_qconv(const DnnlConvParams &conv, const ConvShape &s,
                                           const Tensor &w, const QConvConstants &constants,
                                           DType in_dtype, DType out_dtype, bool dnnl_rank,
                                           uint64_t macs) {
  const Shape xs = conv.src, ws = conv.weights, out = conv.dst;
  const bool src_nhwc = conv.src_nhwc, dst_nhwc = conv.dst_nhwc;
  const FusedActivation act = conv.activation;
  const float x_scale = constants.x_scale, y_scale = constants.y_scale;
  const int32_t x_zero = constants.x_zero, y_zero = constants.y_zero;
  const std::vector<float> &w_scale = constants.w_scale;
  const std::vector<float> bias = constants.bias;
  int64_t m = ws[0];
  auto w_float = std::make_shared<Tensor>(DType::f32, ws);
  int64_t per_oc = product(ws, 1, ws.size());
  for (int64_t i = 0; i < w.count(); ++i)
    w_float->data<float>()[i] = static_cast<float>(w.data<int8_t>()[i]) * w_scale[i / per_oc];
  Tensor bias_t(DType::f32, {m});
  std::copy(bias.begin(), bias.end(), bias_t.data<float>());
  DnnlConvParams float_params = conv;
  float_params.src_nhwc = false;
  float_params.dst_nhwc = false;
  DnnlQuantIO qio{in_dtype, out_dtype, x_scale, y_scale, x_zero, y_zero};
  if (auto k = dnnl_rank ? make_dnnl_conv_f32(conv, *w_float, &bias_t, &qio) : nullptr) {
    k->impl = "dequantizing reorder + " + k->impl + " + quantizing reorder";
    k->macs = macs;
    return k;
  }
  std::shared_ptr<Kernel> inner =
      dnnl_rank ? make_dnnl_conv_f32(float_params, *w_float, &bias_t) : nullptr;
  int64_t n_in = product(xs, 0, xs.size()), n_out = product(out, 0, out.size());
  size_t floats_bytes = static_cast<size_t>(n_in + n_out) * sizeof(float);
  // Where the caller's buffer holds NCHW element i (the float buffers here are NCHW).
  auto caller_offset = [](int64_t i, const Shape &nchw, bool nhwc) {
    if (!nhwc) return i;
    int64_t c = nchw[1], h = nchw[2], w = nchw[3];
    int64_t x = i % w, y = i / w % h, ch = i / (w * h) % c, n = i / (w * h * c);
    return ((n * h + y) * w + x) * c + ch;
  };
  auto k = make_kernel([=](ExecContext &ec, const void *const *in, void *const *o) {
    float *xf = static_cast<float *>(ec.scratch);
    float *yf = xf + n_in;
    for (int64_t i = 0; i < n_in; ++i) {
      int64_t at = caller_offset(i, xs, src_nhwc);
      int32_t v = in_dtype == DType::i8 ? static_cast<const int8_t *>(in[kX])[at]
                                        : static_cast<const uint8_t *>(in[kX])[at];
      xf[i] = static_cast<float>(v - x_zero) * x_scale;
    }
    if (inner) {
      ExecContext inner_ctx = ec.inner(static_cast<uint8_t *>(ec.scratch) + floats_bytes);
      const void *inner_in[] = {xf, nullptr, nullptr};
      void *inner_out[] = {yf};
      inner->run(inner_ctx, inner_in, inner_out);
    } else {
      conv_reference(s, xf, w_float->data<float>(), bias.data(), yf, act);
    }
    float lo = out_dtype == DType::i8 ? -128.f : 0.f, hi = out_dtype == DType::i8 ? 127.f : 255.f;
    for (int64_t i = 0; i < n_out; ++i) {
      float v =
          std::min(std::max(round_half_even(yf[i] / y_scale) + static_cast<float>(y_zero), lo), hi);
      int64_t at = caller_offset(i, out, dst_nhwc);
      if (out_dtype == DType::i8)
        static_cast<int8_t *>(o[0])[at] = static_cast<int8_t>(v);
      else
        static_cast<uint8_t *>(o[0])[at] = static_cast<uint8_t>(v);
    }
  });
  k->scratch_bytes = floats_bytes + (inner ? inner->scratch_bytes : 0);
  k->impl = inner ? "dequantize + " + inner->impl + " + quantize" : "reference float";
  k->macs = macs;
  return k;
}

// The geometry, types, zero points and requantisation that the engine's own NHWC int8 kernels
// (OwnConvParams in DepthwiseInt8Params and StemInt8Params) take from oneDNN's parameters for the
// same convolution, so that they give its bytes; the channel counts are each kernel's own.
template <typename Params>
Params own_kernel_params(const DnnlConvParams &conv, const DnnlQConvParams &q, DType in_dtype,
                         DType out_dtype) {
  Params d;
  d.batch = conv.src[0];
  d.in_h = conv.src[2];
  d.in_w = conv.src[3];
  d.out_h = conv.dst[2];
  d.out_w = conv.dst[3];
  d.kernel_h = conv.weights[2];
  d.kernel_w = conv.weights[3];
  d.stride_h = conv.stride[0];
  d.stride_w = conv.stride[1];
  d.pad_top = conv.pad_begin[0];
  d.pad_left = conv.pad_begin[1];
  d.src_dtype = in_dtype;
  d.dst_dtype = out_dtype;
  d.src_zero_point = q.src_zero_point;
  d.dst_zero_point = q.dst_zero_point;
  d.rounds_as_int8_zero_point = q.rounds_as_int8_zero_point;
  d.output_scales = q.output_scales;
  d.bias_acc = q.bias_acc;
  d.act_lo = q.conv.activation.lo;
  d.act_hi = q.conv.activation.hi;
  return d;
}

// The engine's own depthwise kernel (ops/depthwise_int8.h) for an NHWC depthwise 2-D
// convolution that oneDNN's int8 kernel `onednn` runs, with its bytes, where the setting or the
// rule takes it; nullptr elsewhere.
std::unique_ptr<Kernel> own_depthwise_qconv(const DnnlConvParams &conv, const QConvConstants &k,
                                            DType in_dtype, DType out_dtype, const Tensor &w,
                                            const Kernel &onednn) {
  using Kind = FusedActivation::Kind;
  const Kind kind = conv.activation.kind;
  if (!own_depthwise_available() || !dnnl_kernels_enabled() || conv.src.size() != 4 ||
      !conv.src_nhwc || !conv.dst_nhwc || conv.group != conv.src[1] ||
      conv.weights[0] != conv.group || conv.weights[1] != 1 || conv.zero_input_channels != 0 ||
      conv.dilation[0] != 1 || conv.dilation[1] != 1 ||
      (kind != Kind::none && kind != Kind::relu && kind != Kind::clip))
    return nullptr;
  const DnnlQConvParams q = int8_conv_params(conv, k, in_dtype, out_dtype);
  if (q.post_activation_multiplier != 1.f || !(q.conv.activation.lo <= q.conv.activation.hi))
    return nullptr;
  DepthwiseInt8Params d = own_kernel_params<DepthwiseInt8Params>(conv, q, in_dtype, out_dtype);
  d.channels = conv.src[1];
  if (!own_depthwise_chosen(d, std::getenv("AXSTREAM_ENGINE_OWN_DEPTHWISE"), onednn.impl))
    return nullptr;
  return make_depthwise_int8(d, w);
}

// The engine's own stem kernel (ops/stem_int8.h) for an NHWC 2-D convolution of up to 4 input
// channels that oneDNN's int8 kernel runs, with its bytes, where the setting
// (AXSTREAM_ENGINE_OWN_STEM, checked wherever such a convolution compiles) or the rule takes it;
// nullptr elsewhere.
std::unique_ptr<Kernel> own_stem_qconv(const DnnlConvParams &conv, const QConvConstants &k,
                                       DType in_dtype, DType out_dtype, const Tensor &w) {
  using Kind = FusedActivation::Kind;
  const Kind kind = conv.activation.kind;
  if (conv.src.size() != 4 || conv.group != 1 || conv.src[1] > 4 || !conv.src_nhwc ||
      !conv.dst_nhwc || conv.dilation[0] != 1 || conv.dilation[1] != 1 ||
      (kind != Kind::none && kind != Kind::relu && kind != Kind::clip))
    return nullptr;
  const char *setting = std::getenv("AXSTREAM_ENGINE_OWN_STEM");
  check_own_stem_setting(setting);
  if (!own_stem_available() || !dnnl_kernels_enabled()) return nullptr;
  const DnnlQConvParams q = int8_conv_params(conv, k, in_dtype, out_dtype);
  if (q.post_activation_multiplier != 1.f || !(q.conv.activation.lo <= q.conv.activation.hi))
    return nullptr;
  StemInt8Params d = own_kernel_params<StemInt8Params>(conv, q, in_dtype, out_dtype);
  d.in_channels = conv.src[1];
  d.out_channels = conv.weights[0];
  if (!own_stem_chosen(d, setting)) return nullptr;
  return make_stem_int8(d, w);
}

// The engine's own 1x1 kernel (ops/pointwise_int8.h) for an NHWC 1x1 convolution at stride 1
// without padding that oneDNN's int8 kernel `onednn` runs (with `sum`, the residual sum as its
// post-op chain `chain`), with its bytes, where the setting (AXSTREAM_ENGINE_OWN_POINTWISE,
// checked wherever such a convolution compiles) or the rule takes it; nullptr elsewhere.
std::unique_ptr<Kernel> own_pointwise_qconv(const DnnlConvParams &conv, const DnnlQConvParams &q,
                                            const Tensor &w, const Kernel &onednn,
                                            const ResidualSumParams *sum = nullptr) {
  using Kind = FusedActivation::Kind;
  const Kind kind = conv.activation.kind;
  if (conv.src.size() != 4 || conv.group != 1 || conv.weights[2] != 1 || conv.weights[3] != 1 ||
      conv.stride[0] != 1 || conv.stride[1] != 1 || conv.pad_begin[0] != 0 ||
      conv.pad_begin[1] != 0 || conv.pad_end[0] != 0 || conv.pad_end[1] != 0 || !conv.src_nhwc ||
      !conv.dst_nhwc || conv.dilation[0] != 1 || conv.dilation[1] != 1 ||
      (kind != Kind::none && kind != Kind::relu && kind != Kind::clip))
    return nullptr;
  const char *setting = std::getenv("AXSTREAM_ENGINE_OWN_POINTWISE");
  check_own_pointwise_setting(setting);
  if (!own_pointwise_available() || !dnnl_kernels_enabled()) return nullptr;
  if (q.post_activation_multiplier != 1.f || !(q.conv.activation.lo <= q.conv.activation.hi))
    return nullptr;
  PointwiseInt8Params d = own_kernel_params<PointwiseInt8Params>(
      conv, q, q.src_dtype, sum ? sum->conv_dtype : q.dst_dtype);
  d.in_channels = conv.src[1];
  d.out_channels = conv.weights[0];
  if (sum) {
    // The convolution's own output, requantised as its unfused kernel writes it; then the sum.
    d.dst_zero_point = sum->conv_zero_point;
    d.has_sum = true;
    d.sum = *sum;
    d.chain = choose_residual_sum_chain(*sum);
  }
  if (!own_pointwise_chosen(d, setting)) return nullptr;
  auto own = make_pointwise_int8(d, w);
  if (!own) return nullptr;
  // oneDNN's kernel whose bytes (and, with the sum, whose post-op chain) it gives: tests and
  // tools/sum-postop-compare check the fused sum against it (count_residual_sums).
  const std::string as = onednn.impl.substr(0, onednn.impl.find(" + sum post-op"));
  own->impl += " as " + as + (sum ? " + sum post-op" : "");
  return own;
}

// The convolution requantised to its own output: oneDNN's int8 kernel where it is exact and
// has an implementation (or the engine's own depthwise kernel, the same bytes), else the
// unfused float arithmetic.
std::unique_ptr<Kernel> plain_qconv(const DnnlConvParams &conv, const ConvShape &s, const Tensor &w,
                                    const QConvConstants &constants, DType in_dtype,
                                    DType out_dtype, bool dnnl_rank, uint64_t macs) {
  if (dnnl_rank && int8_path_is_exact(w)) {
    if (auto k = make_dnnl_qconv(int8_conv_params(conv, constants, in_dtype, out_dtype), w)) {
      if (auto own = own_depthwise_qconv(conv, constants, in_dtype, out_dtype, w, *k)) return own;
      if (auto own = own_stem_qconv(conv, constants, in_dtype, out_dtype, w)) {
        own->macs = macs;
        return own;
      }
      if (auto own = own_pointwise_qconv(
              conv, int8_conv_params(conv, constants, in_dtype, out_dtype), w, *k)) {
        own->macs = macs;
        return own;
      }
      k->macs = macs;
      return k;
    }
  }
  if (constants.rounds_as_int8_zero_point != 0) {
    // Elsewhere the int8 convolution itself, its bytes flipped to uint8 (q + 128 = q ^ 0x80).
    QConvConstants int8_constants = constants;
    int8_constants.y_zero = constants.rounds_as_int8_zero_point;
    int8_constants.rounds_as_int8_zero_point = 0;
    std::shared_ptr<Kernel> inner =
        dequantizing_qconv(conv, s, w, int8_constants, in_dtype, DType::i8, dnnl_rank, macs);
    const auto count = static_cast<size_t>(product(conv.dst, 0, conv.dst.size()));
    auto k = make_kernel([=](ExecContext &ec, const void *const *in, void *const *o) {
      inner->run(ec, in, o);
      auto *y = static_cast<uint8_t *>(o[0]);
      for (size_t i = 0; i < count; ++i) y[i] ^= 0x80;
    });
    k->scratch_bytes = inner->scratch_bytes;
    k->macs = macs;
    k->impl = inner->impl + " + int8 output flipped to uint8";
    return k;
  }
  return dequantizing_qconv(conv, s, w, constants, in_dtype, out_dtype, dnnl_rank, macs);
}

// A oneDNN convolution summing into its destination, which must hold the residual first: the
// memory plan usually gives the two one buffer (in place); otherwise the residual is copied.
class ResidualSumKernel final : public Kernel {
 public:
  ResidualSumKernel(std::unique_ptr<Kernel> conv, size_t bytes)
      : conv_(std::move(conv)), bytes_(bytes) {
    scratch_bytes = conv_->scratch_bytes;
    macs = conv_->macs;
    impl = conv_->impl + " + sum post-op";
    output_may_overwrite_input = kSkip;
  }
  void run(ExecContext &ctx, const void *const *in, void *const *out) const override {
    if (out[0] != in[kSkip]) std::memcpy(out[0], in[kSkip], bytes_);
    conv_->run(ctx, in, out);
  }

 private:
  std::unique_ptr<Kernel> conv_;
  size_t bytes_;
};

// y = quantize([relu](dequantize(conv) + dequantize(skip))), the QAdd passes.cc fused in, bit
// for bit as the convolution and then axstream.QAdd compute it: on oneDNN the convolution's
// output requantisation, the add and the add's quantisation run as post-ops around a sum
// post-op (DnnlQConvParams::Sum); elsewhere the two kernels run one after the other.
std::unique_ptr<Kernel> residual_qconv(OpContext &ctx, const DnnlConvParams &conv,
                                       const ConvShape &s, const Tensor &w,
                                       const QConvConstants &constants, DType in_dtype,
                                       DType conv_dtype, DType out_dtype, bool dnnl_rank,
                                       uint64_t macs) {
  if (ctx.in_shape(kSkip) != conv.dst)
    ctx.fail("the residual summed into the convolution has shape " +
             shape_str(ctx.in_shape(kSkip)) + ", expected the output's " + shape_str(conv.dst));
  DType skip_dtype = ctx.in_dtype(kSkip);
  if (skip_dtype != DType::i8 && skip_dtype != DType::u8)
    ctx.unsupported(std::string("a residual of dtype ") + dtype_name(skip_dtype) +
                    " (expected int8 or uint8)");
  if (conv.activation.kind != FusedActivation::Kind::none)
    ctx.fail("a convolution with a fused activation cannot also sum a residual");
  QuantizedJoin join;
  join.a_scale = constants.y_scale;
  join.a_zero = constants.y_zero;
  join.b_scale = static_cast<float>(ctx.require_scalar(kSkipScale, "residual scale").as_double(0));
  join.b_zero =
      ctx.has_input(kSkipZero)
          ? static_cast<int32_t>(ctx.require_scalar(kSkipZero, "residual zero point").as_int(0))
          : 0;
  join.y_scale = static_cast<float>(ctx.require_scalar(kSumYScale, "sum scale").as_double(0));
  join.y_zero =
      ctx.has_input(kSumYZero)
          ? static_cast<int32_t>(ctx.require_scalar(kSumYZero, "sum zero point").as_int(0))
          : 0;
  join.relu = ctx.attr_i("_sum_relu", 0) != 0;
  join.fused_multiply_add_b = true;  // axstream.QAdd's arithmetic, which the sum reproduces
  const size_t count = static_cast<size_t>(product(conv.dst, 0, conv.dst.size()));

  std::string sum_refusal;  // why oneDNN's sum post-op is not taken, shown by describe()
  if (dnnl_rank && int8_path_is_exact(w)) {
    DnnlQConvParams q = int8_conv_params(conv, constants, in_dtype, out_dtype);
    q.dst_zero_point = join.y_zero;
    q.sum.active = true;
    q.sum.conv_dtype = conv_dtype;
    q.sum.conv_scale = join.a_scale;
    q.sum.conv_zero_point = join.a_zero;
    q.sum.skip_dtype = skip_dtype;
    q.sum.skip_scale = join.b_scale;
    q.sum.skip_zero_point = join.b_zero;
    q.sum.relu = join.relu;
    q.sum.y_scale = join.y_scale;
    if (auto k = make_dnnl_qconv(q, w, &sum_refusal)) {
      ResidualSumParams sum;
      static_cast<ResidualSumOperands &>(sum) = q.sum;
      sum.y_dtype = out_dtype;
      sum.y_zero_point = q.dst_zero_point;
      if (auto own = own_pointwise_qconv(conv, q, w, *k, &sum)) {
        own->macs = macs;
        return own;
      }
      k->macs = macs;
      return std::make_unique<ResidualSumKernel>(std::move(k), count);
    }
  }
  // Unfused: the convolution into scratch, then the add as axstream.QAdd computes it.
  std::shared_ptr<Kernel> inner =
      plain_qconv(conv, s, w, constants, in_dtype, conv_dtype, dnnl_rank, macs);
  const size_t inner_offset = (count + 63) / 64 * 64;
  auto k = make_kernel([=](ExecContext &ec, const void *const *in, void *const *o) {
    auto *conv_out = static_cast<uint8_t *>(ec.scratch);
    ExecContext inner_ctx = ec.inner(conv_out + inner_offset);
    void *inner_out[] = {conv_out};
    inner->run(inner_ctx, in, inner_out);
    const auto n = static_cast<int64_t>(count);
    dispatch_dtype(conv_dtype, [&](auto a_t) {
      dispatch_dtype(skip_dtype, [&](auto b_t) {
        using A = decltype(a_t);
        using B = decltype(b_t);
        if constexpr ((std::is_same_v<A, int8_t> || std::is_same_v<A, uint8_t>)&&(
                          std::is_same_v<B, int8_t> || std::is_same_v<B, uint8_t>)) {
          const A *a = reinterpret_cast<const A *>(conv_out);
          const B *b = static_cast<const B *>(in[kSkip]);
          if (out_dtype == DType::i8)
            quantized_join(a, b, static_cast<int8_t *>(o[0]), n, join);
          else
            quantized_join(a, b, static_cast<uint8_t *>(o[0]), n, join);
        }
      });
    });
  });
  k->scratch_bytes = inner_offset + inner->scratch_bytes;
  k->macs = macs + count;
  k->impl = inner->impl + " + fused dequantize-add" + (join.relu ? "-relu" : "") + "-quantize";
  if (!sum_refusal.empty()) k->impl += " (no sum post-op: " + sum_refusal + ")";
  k->output_may_overwrite_input = kSkip;  // the add reads each residual element, then writes it
  return k;
}

std::unique_ptr<Kernel> compile_qconv(OpContext &ctx) {
  Shape xs = ctx.in_shape(kX);
  // Set by passes.cc where the convolution reads a package's NHWC input as it is: its shape is
  // N,H,W,C, the convolution's source N,C,H,W read NHWC.
  const bool src_nhwc_order = ctx.attr_i("_src_nhwc_order", 0) != 0;
  if (src_nhwc_order) {
    if (xs.size() != 4) ctx.fail("_src_nhwc_order needs a 4-D input, got " + shape_str(xs));
    xs = {xs[0], xs[3], xs[1], xs[2]};
  }
  const Shape &ws = ctx.in_shape(kW);
  int64_t group = conv_group(ctx, xs, ws, "quantised convolutions");
  WindowGeometry g = WindowGeometry::resolve(ctx, Shape(xs.begin() + 2, xs.end()),
                                             Shape(ws.begin() + 2, ws.end()), false);
  const bool residual = ctx.has_input(kSkip);
  DType conv_dtype = ctx.has_input(kYZero) ? ctx.in_dtype(kYZero) : DType::u8;
  DType out_dtype = !residual                  ? conv_dtype
                    : ctx.has_input(kSumYZero) ? ctx.in_dtype(kSumYZero)
                                               : DType::u8;
  Shape out = {xs[0], ws[0]};
  out.insert(out.end(), g.out.begin(), g.out.end());
  ctx.set_output(0, out_dtype, out);
  if (ctx.infer_only()) return nullptr;
  DType in_dtype = ctx.in_dtype(kX);
  if (!is_int8_or_uint8(in_dtype) || !is_int8_or_uint8(out_dtype) || !is_int8_or_uint8(conv_dtype))
    ctx.unsupported("QConv needs int8/uint8 activations");

  QConvConstants constants = read_qconv_constants(ctx, ws[0]);
  const Tensor &w = ctx.require_constant(kW, "weights");
  FusedActivation act = FusedActivation::from(ctx);
  ConvShape s = conv_shape(xs, ws, g, group);
  uint64_t macs = static_cast<uint64_t>(product(out, 0, out.size()) * product(ws, 1, ws.size()));
  // oneDNN has 2-D and 3-D convolutions; 1-D ones run on the reference loops.
  bool dnnl_rank = xs.size() >= 4;

  // Set by passes.cc where the neighbours are int8 convolutions too (4-D only).
  bool src_nhwc = src_nhwc_order || ctx.attr_i("_src_nhwc", 0) != 0,
       dst_nhwc = ctx.attr_i("_dst_nhwc", 0) != 0;
  if ((src_nhwc || dst_nhwc) && xs.size() != 4)
    ctx.fail("NHWC activations need a 2-D convolution, input " + shape_str(xs));
  constants.rounds_as_int8_zero_point = static_cast<int32_t>(ctx.attr_i("_rounds_as_int8", 0));
  if (constants.rounds_as_int8_zero_point != 0 &&
      (residual || out_dtype != DType::u8 || constants.y_zero != 0 ||
       constants.rounds_as_int8_zero_point != -128))
    ctx.fail(
        "_rounds_as_int8 needs a uint8 output with zero point 0, no residual and the int8 "
        "zero point -128, got " +
        std::to_string(constants.rounds_as_int8_zero_point));

  DnnlConvParams conv{xs, ws, out, g.stride, g.dilation, g.pad_begin, g.pad_end, group, act};
  conv.src_nhwc = src_nhwc;
  conv.dst_nhwc = dst_nhwc;
  conv.zero_input_channels = ctx.attr_i("_zero_input_channels", 0);
  if (residual)
    return residual_qconv(ctx, conv, s, w, constants, in_dtype, conv_dtype, out_dtype, dnnl_rank,
                          macs);
  return plain_qconv(conv, s, w, constants, in_dtype, out_dtype, dnnl_rank, macs);
}

}  // namespace

AXSTREAM_ENGINE_OP_EX(AxQConv, "axstream", "QConv", 1, 1, compile_qconv, false)

}  // namespace axstream::engine
