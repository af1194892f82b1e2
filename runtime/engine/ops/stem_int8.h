// The engine's own int8 convolution of few input channels (a network's first convolution, the
// "stem", over an image's 3 channels padded to 4) over NHWC activations, on AMX tiles or, on
// CPUs without AMX, AVX-512 VNNI (stem_int8_vnni.h), giving the bytes of oneDNN's int8
// convolution with the same requantisation (conv_dnnl.h, DnnlQConvParams) where axstream.QConv
// would run that.
#pragma once

#include <string>

#include "common.h"
#include "own_conv_params.h"

namespace axstream::engine {

struct StemInt8Params : OwnConvParams {
  int64_t in_channels = 0, out_channels = 0;
};

// Whether the CPU (capped by ONEDNN_MAX_CPU_ISA) has AMX-INT8 and AVX-512, and Linux let the
// process use the tiles (the AMX form), or AVX-512 VNNI (the VNNI form).
bool own_stem_available();

// Whether the engine's kernel is chosen for `p` over oneDNN's, given the setting
// AXSTREAM_ENGINE_OWN_STEM ("1" wherever it applies, "0" never, null or "auto": where it
// measured faster, docs/runtime.md "The stem kernel": on AMX hosts kernels of 25 taps or more,
// elsewhere those into up to 24 output channels and any into up to 8). Throws
// InvalidConfiguration for any other setting. A fixed rule of the shapes, not a timing.
bool own_stem_chosen(const StemInt8Params &p, const char *setting);
// The same rule for a host with AMX-INT8 (`amx_host`: the AMX form) or without (the AVX-512
// VNNI form), whatever this one has.
bool own_stem_chosen(const StemInt8Params &p, const char *setting, bool amx_host);

// Throws InvalidConfiguration unless `setting` (AXSTREAM_ENGINE_OWN_STEM) is null, "auto", "1"
// or "0".
void check_own_stem_setting(const char *setting);

// The kernel for `p` with weights (out_channels, in_channels, kernel_h, kernel_w) int8, or
// nullptr and the reason in `why_not` where it does not apply (no AMX or AVX-512 VNNI, over 4
// input or 64 output channels, a kernel past 8 rows or a kernel row past 64 bytes, a horizontal
// stride past 4, pads outside [0, kernel), accumulators whose scaled range could leave int32).
std::unique_ptr<Kernel> make_stem_int8(const StemInt8Params &p, const Tensor &weights,
                                       std::string *why_not = nullptr);

}  // namespace axstream::engine
