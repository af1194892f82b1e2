// The engine's own int8 convolution of few input channels (a network's first convolution, the
// "stem", over an image's 3 channels padded to 4) over NHWC activations on AMX tiles, giving
// the bytes of oneDNN's int8 convolution with the same requantisation (conv_dnnl.h,
// DnnlQConvParams) where axstream.QConv would run that.
#pragma once

#include <cmath>
#include <string>

#include "common.h"

namespace axstream::engine {

struct StemInt8Params {
  int64_t batch = 1, in_channels = 0, out_channels = 0, in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 0, kernel_w = 0, stride_h = 1, stride_w = 1, pad_top = 0, pad_left = 0;
  DType src_dtype = DType::i8, dst_dtype = DType::u8;
  int32_t src_zero_point = 0, dst_zero_point = 0;
  // As DnnlQConvParams::rounds_as_int8_zero_point: z added, then -z, in float before rounding.
  int32_t rounds_as_int8_zero_point = 0;
  // y = saturate(round(clamp((float(acc) + bias_acc[c]) * output_scales[c], act_lo, act_hi)
  //                    [+ z - z] + dst_zero_point)), each operation rounded as oneDNN's is.
  std::vector<float> output_scales, bias_acc;
  float act_lo = -INFINITY, act_hi = INFINITY;
};

// Whether the CPU (capped by ONEDNN_MAX_CPU_ISA at avx512_core_amx) has AMX-INT8 and AVX-512,
// which the kernel needs, and Linux let the process use the tiles.
bool own_stem_available();

// Whether the engine's kernel is chosen for `p` over oneDNN's, given the setting
// AXSTREAM_ENGINE_OWN_STEM ("1" wherever it applies, "0" never, null or "auto": where it
// measured faster, kernels of 25 taps or more, docs/runtime.md "The stem kernel"). Throws
// InvalidConfiguration for any other setting. A fixed rule of the shapes, not a timing.
bool own_stem_chosen(const StemInt8Params &p, const char *setting);

// Throws InvalidConfiguration unless `setting` (AXSTREAM_ENGINE_OWN_STEM) is null, "auto", "1"
// or "0".
void check_own_stem_setting(const char *setting);

// The kernel for `p` with weights (out_channels, in_channels, kernel_h, kernel_w) int8, or
// nullptr and the reason in `why_not` where it does not apply (no AMX, over 4 input or 64
// output channels, a kernel row past 32 bytes or a reduction past 256, pads outside [0, kernel),
// accumulators whose scaled range could leave int32).
std::unique_ptr<Kernel> make_stem_int8(const StemInt8Params &p, const Tensor &weights,
                                       std::string *why_not = nullptr);

}  // namespace axstream::engine
