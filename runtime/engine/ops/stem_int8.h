// The engine's own int8 convolution of few input channels (a network's first convolution, the
// "stem", over an image's 3 channels padded to 4) over NHWC activations on AMX tiles, giving
// the bytes of oneDNN's int8 convolution with the same requantisation (conv_dnnl.h,
// DnnlQConvParams) where axstream.QConv would run that.
#pragma once

#include <string>

#include "common.h"
#include "own_conv_params.h"

namespace axstream::engine {

struct StemInt8Params : OwnConvParams {
  int64_t in_channels = 0, out_channels = 0;
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
