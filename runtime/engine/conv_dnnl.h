// oneDNN-backed convolution kernels (float32 and fused int8), built once at compile time.
#pragma once

#include "ops/common.h"
#include "residual_sum_chain.h"

namespace axstream::engine {

struct DnnlConvParams {
  Shape src, weights, dst;  // NCHW / OIHW / NCHW, or NCDHW / OIDHW / NCDHW (3-D)
  Shape stride, dilation, pad_begin, pad_end;
  int64_t group = 1;
  FusedActivation activation;
  // The caller's activations are NHWC (2-D only; passes.cc keeps int8 tensors between oneDNN
  // int8 convolutions NHWC so they need no reorder).
  bool src_nhwc = false, dst_nhwc = false;
  // Input channels whose weights are all zero (a package's channel padding read by the
  // convolution instead of sliced off, passes.cc): not counted in the AMX rule's reduction.
  int64_t zero_input_channels = 0;
  // A float convolution's residual sum (make_dnnl_conv_f32; passes.cc, the float residual
  // fusion): the kernel reads the skip as input 3, puts it in the destination (in place when
  // the memory plan gave the two one buffer, else a copy or a reorder into the primitive's
  // layout), and oneDNN adds it in a sum post-op of scale 1 after `activation` (the
  // convolution's own, none where the fusion runs), then runs `sum_activation`.
  bool sum = false;
  FusedActivation sum_activation{};
};

// Whether oneDNN kernels may be used (AXSTREAM_ENGINE_REFERENCE=1 forces the reference ones).
bool dnnl_kernels_enabled();
// Whether the CPU has VNNI (or AMX) int8 dot products, where oneDNN's int8 paths are exact.
bool dnnl_cpu_has_vnni();

// Quantised activations around a float convolution: the int8/uint8 NCHW source is dequantised
// (src_scale * (x - src_zero_point)) by the reorder into the convolution's layout, and the
// float result quantised (round half to even of y / dst_scale, + dst_zero_point, saturated) by
// the reorder out of it, so no separate (de)quantise passes run.
struct DnnlQuantIO {
  DType src_dtype = DType::i8, dst_dtype = DType::i8;
  float src_scale = 1.f, dst_scale = 1.f;
  int32_t src_zero_point = 0, dst_zero_point = 0;
};

// nullptr when oneDNN has no implementation for this shape. With q, src/dst are quantised.
// With p.sum, nullptr too where the sum would not give the unfused convolution's and add's bits
// (not the same oneDNN kernel with and without the sum, or a kernel not checked for it:
// float_sum_kernel_checked), and then, in `sum_refusal`, why.
std::unique_ptr<Kernel> make_dnnl_conv_f32(const DnnlConvParams &p, const Tensor &weights,
                                           const Tensor *bias, const DnnlQuantIO *q = nullptr,
                                           std::string *sum_refusal = nullptr);

// Whether `impl` (oneDNN's impl_info_str) names a float32 convolution kernel checked to give
// round(round(conv + bias) + skip) for a sum post-op of scale 1, the activation after it, bit
// for bit as the unfused Conv, Add and activation (engine_test's float residual tests;
// docs/runtime.md, "float residual adds", lists them).
bool float_sum_kernel_checked(const std::string &impl);

// Integer convolution: src int8/uint8 (zero point src_zero_point), weights int8 symmetric,
// dst = saturate(round(activation(scale[oc] * (acc + bias_acc[oc]))) + dst_zero_point), where the
// activation bounds are in units of the output scale.
struct DnnlQConvParams {
  DnnlConvParams conv;
  DType src_dtype = DType::i8, dst_dtype = DType::i8;
  int32_t src_zero_point = 0, dst_zero_point = 0;
  std::vector<float> output_scales;  // per output channel
  std::vector<float> bias_acc;       // per output channel, in accumulator units
  // An activation that does not commute with scaling (sigmoid) runs on the real-valued result:
  // output_scales then only dequantise the accumulator and this factor (1 / output scale)
  // follows the activation. 1: the activation runs in output units.
  float post_activation_multiplier = 1.f;
  // Nonzero z: a uint8 output (zero point 0) that stands for an int8 one with zero point z
  // (-128, passes.cc), rounded as that one is: oneDNN adds a destination zero point in float
  // before rounding, so z and then -z are added (both in float; the second is exact) in two
  // post-ops, which unlike a zero point leave every kernel open to the convolution.
  int32_t rounds_as_int8_zero_point = 0;
  // A residual add fused as oneDNN's sum post-op, in axstream.QAdd's arithmetic to the bit
  // (ops/quantized_join.h): on entry the destination buffer holds the skip. The scaled
  // accumulator is first requantised as the unfused convolution writes its own output (+ its
  // zero point in float, saturated to its type, rounded half to even), then
  // dst = saturate(round([relu](fma(skip - skip_zero_point, skip_scale,
  //                                 (conv - conv_zero_point) * conv_scale)) / y_scale)
  //                + dst_zero_point),
  // output_scales then being the convolution's own and dst_zero_point the add's. The
  // post-ops after the convolution's requantisation are the cheapest chain that gives this on
  // all 65536 operand pairs (residual_sum_chain.h). The destination keeps the caller's layout
  // (no reorder may come between).
  struct Sum : ResidualSumOperands {
    bool active = false;
  } sum;
};
// With a residual sum oneDNN cannot reproduce bit for bit here, nullptr and, in `sum_refusal`,
// why ("oneDNN picks <kernel> with it, <kernel> without", "<kernel> unchecked for it").
std::unique_ptr<Kernel> make_dnnl_qconv(const DnnlQConvParams &p, const Tensor &weights,
                                        std::string *sum_refusal = nullptr);

// Whether `text` (oneDNN's impl_info_str, or a program description's line naming it among other
// words) names one of the int8 convolution kernels checked to apply a residual sum's post-ops as
// residual_sum_chain.h models them, so make_dnnl_qconv may fuse the add as a sum post-op there
// (docs/runtime.md, "residual adds into convolutions", lists them). Tests and
// tools/sum-postop-compare expect the fusion exactly where the convolution's kernel is one.
bool residual_sum_kernel_checked(const std::string &text);

// The convolutions taking a residual add in `fused` (a program's description with the sum
// post-ops on: "+ sum post-op]", or "+ fused dequantize-add" where the add runs after the
// convolution), and how many of them run, in `unfused` (the description with
// AXSTREAM_ENGINE_SUM_POSTOP=0), a kernel residual_sum_kernel_checked names, with oneDNN picking
// that kernel with the sum too (else the fused line says "no sum post-op: oneDNN picks ..."):
// those must fuse. Where the unfused convolution runs the engine's own depthwise or stem kernel
// (oneDNN's bytes), the fused line's kernel is the one checked. For tests and
// tools/sum-postop-compare.
struct ResidualSumCount {
  size_t summing = 0, checked = 0;
};
ResidualSumCount count_residual_sums(const std::string &fused, const std::string &unfused);

// Whether a padded convolution with a source zero point reads its source padded explicitly
// with that zero point, given the implementations oneDNN picks for it as it is (`own_impl`)
// and for the padded source, unpadded (`padded_impl`, "" when there is none), and the setting
// AXSTREAM_ENGINE_ZP_PAD ("1" always, "0" never, null or anything else: automatic). Automatic
// takes the padded source only where it reaches an AMX kernel the padded convolution does not
// (oneDNN 2.6's brgconv refuses a source zero point with padding, so the padded convolution may
// miss brgconv's AMX kernel); on AVX-512 VNNI jit_int8 and brgconv are as fast, so the copy
// would only cost. Automatic takes it too where `flipped_and_folds` and the padded source runs
// AMX: the int8 source is copied to uint8 before every run anyway (the padding then joins that
// copy) and the zero point folds into the bias of the padded convolution, which then runs
// without one: ResNet-50's and YOLOv5s' stems on AMX's jit kernel ran faster so, the VNNI stems
// of the other packages no faster than jit_int8 with the zero point (docs/performance.md).
bool zero_point_padded_source_wins(const std::string &own_impl, const std::string &padded_impl,
                                   const char *setting, bool flipped_and_folds = false);

// Whether an int8 convolution of these shapes runs oneDNN's AMX kernel on a host that has one,
// rather than its first AVX-512 VNNI kernel, given the setting AXSTREAM_ENGINE_AMX ("1" AMX
// wherever oneDNN has it, "0" never, null or "auto": the rule measured on the cached models,
// docs/runtime.md "AMX or VNNI per convolution"). A fixed rule of the shapes, not a timing, so
// a program compiles to the same kernels on every run. Throws InvalidConfiguration for any
// other setting.
bool amx_convolution_chosen(const DnnlConvParams &p, const char *setting);

}  // namespace axstream::engine
