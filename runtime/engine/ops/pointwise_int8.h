// The engine's own int8 1x1 convolution (stride 1, no padding) over NHWC activations of few
// channels, on AVX-512 VNNI, with a residual add optionally fused after it, giving the bytes of
// oneDNN's int8 convolution (and of its sum post-op chain, residual_sum_chain.h) with the same
// requantisation (conv_dnnl.h, DnnlQConvParams) where axstream.QConv would run that.
#pragma once

#include <string>
#include <vector>

#include "../residual_sum_chain.h"
#include "common.h"
#include "own_conv_params.h"

namespace axstream::engine {

struct PointwiseInt8Params : OwnConvParams {
  int64_t in_channels = 0, out_channels = 0;
  // A residual sum fused after the convolution (dst_dtype and dst_zero_point are then the
  // convolution's own output's, `sum` the add's): y = the chain's output for the convolution's
  // own output r and the skip s (residual_sum_chain_output), read from input 9.
  bool has_sum = false;
  ResidualSumParams sum;
  ResidualSumChain chain;
};

// Whether the CPU (capped by ONEDNN_MAX_CPU_ISA) has AVX-512 VNNI, which the kernel needs.
bool own_pointwise_available();

// Throws InvalidConfiguration unless `setting` (AXSTREAM_ENGINE_OWN_POINTWISE) is null, "auto",
// "1" or "0".
void check_own_pointwise_setting(const char *setting);

// Whether the engine's kernel is chosen for `p` over oneDNN's, given the setting
// AXSTREAM_ENGINE_OWN_POINTWISE ("1" wherever it applies, "0" never, null or "auto": where it
// measured faster, docs/runtime.md "The 1x1 kernel": a residual sum into up to 96 output
// channels, on CPUs without AMX-INT8 only, where oneDNN runs its AVX-512 VNNI kernels). Throws
// InvalidConfiguration for any other setting. A fixed rule of the shapes and the CPU, not a
// timing.
bool own_pointwise_chosen(const PointwiseInt8Params &p, const char *setting);

// The kernel for `p` with weights (out_channels, in_channels, 1, 1) int8, or nullptr and the
// reason in `why_not` where it does not apply (no AVX-512 VNNI, a kernel other than 1x1 at
// stride 1 without padding, over 512 input or 96 output channels, activations not int8 or
// uint8, accumulators whose scaled range could leave int32, a residual sum into a retyped
// output). Inputs: 0 the source, 9 the skip (with a sum; the output may be written over it).
std::unique_ptr<Kernel> make_pointwise_int8(const PointwiseInt8Params &p, const Tensor &weights,
                                            std::string *why_not = nullptr);

// The destination values the kernel's epilogue for `chain` gives for every convolution output
// r of p.conv_dtype (major) and skip s of p.skip_dtype (minor), the 65536 pairs in byte order:
// its flat epilogue (`flat`: runs of 64 bytes, saturating packs) or its epilogue per pixel and
// 16 channels; empty without AVX-512 VNNI. For tests against residual_sum_chain_output.
std::vector<int32_t> pointwise_sum_chain_outputs(const ResidualSumParams &p,
                                                 const ResidualSumChain &chain, bool flat);

}  // namespace axstream::engine
