// oneDNN-backed convolution kernels (float32 and fused int8), built once at compile time.
#pragma once

#include "ops/common.h"

namespace axstream::engine {

struct DnnlConvParams {
  Shape src, weights, dst;  // NCHW / OIHW / NCHW
  Shape stride, dilation, pad_begin, pad_end;
  int64_t group = 1;
  FusedActivation activation;
};

// Whether oneDNN kernels may be used (AXSTREAM_ENGINE_REFERENCE=1 forces the reference ones).
bool dnnl_kernels_enabled();

// nullptr when oneDNN has no implementation for this shape.
std::unique_ptr<Kernel> make_dnnl_conv_f32(const DnnlConvParams &p, const Tensor &weights,
                                           const Tensor *bias);

}  // namespace axstream::engine
