// The engine's own int8 depthwise convolution over NHWC activations (one output channel per
// input channel), on AVX-512 VNNI, giving the bytes of oneDNN's int8 convolution with the same
// requantisation (conv_dnnl.h, DnnlQConvParams) where axstream.QConv would run that.
#pragma once

#include <string>

#include "common.h"
#include "own_conv_params.h"

namespace axstream::engine {

struct DepthwiseInt8Params : OwnConvParams {
  int64_t channels = 0;
};

// Whether the CPU (capped by ONEDNN_MAX_CPU_ISA) has AVX-512 VNNI, which the kernel needs.
bool own_depthwise_available();

// Whether the kernel takes its channel-strip form for `p` (docs/runtime.md "The depthwise
// kernel"): kernels of 4 rows or more, and 3x3 kernels over whole 64-channel strips, of up to
// 10 quads per output vector (not 10x4, 6x5, ...: those take the rows form).
bool strips_form(const DepthwiseInt8Params &p);

// Whether the engine's kernel is chosen for `p` over oneDNN's (`onednn_impl`, the kernel oneDNN
// picks for it), given the setting AXSTREAM_ENGINE_OWN_DEPTHWISE ("1" wherever it applies, "0"
// never, null or "auto": where it measured faster, docs/runtime.md "The depthwise kernel": the
// channel-strip form, and 3x3 kernels at stride 1 with rows of up to 4 KB; where oneDNN picks
// brdgmm_dw, only on hosts without AMX-INT8 and then at strides 1 and (2,1); 3x3 at stride
// (2,2) with rows of up to 8 KB against jit_int8 only on hosts without AMX-INT8, under 64
// channels only with AVX-512 VBMI). Throws InvalidConfiguration for any other setting. A fixed
// rule, not a timing.
bool own_depthwise_chosen(const DepthwiseInt8Params &p, const char *setting,
                          const std::string &onednn_impl);
// The same rule for a host with AMX-INT8 (`amx_host`) or without and with AVX-512 VBMI
// (`vbmi_host`) or without, whatever this one has.
bool own_depthwise_chosen(const DepthwiseInt8Params &p, const char *setting,
                          const std::string &onednn_impl, bool amx_host, bool vbmi_host);

// The kernel for `p` with weights (channels, 1, kernel_h, kernel_w) int8, or nullptr and the
// reason in `why_not` where it does not apply (no AVX-512 VNNI, strides other than 1 and 2,
// kernels past 5 rows of 8 columns, pads past the kernel, accumulators whose scaled range could
// leave int32).
std::unique_ptr<Kernel> make_depthwise_int8(const DepthwiseInt8Params &p, const Tensor &weights,
                                            std::string *why_not = nullptr);

}  // namespace axstream::engine
