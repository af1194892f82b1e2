// The AVX-512 VNNI form of the engine's own int8 stem convolution (stem_int8.h), for CPUs
// without AMX: the same convolutions, the same bytes (oneDNN's), by vpdpbusd with the output
// channels in lanes.
#pragma once

#include <memory>

#include "common.h"
#include "stem_int8.h"

namespace axstream::engine {

// The kernel for `p` (which stem_int8.cc's checks admitted) with weights (out_channels,
// in_channels, kernel_h, kernel_w) int8. Needs AVX-512 VNNI (cpu_allows_avx512vnni).
std::unique_ptr<Kernel> make_stem_int8_vnni(const StemInt8Params &p, const Tensor &weights);

}  // namespace axstream::engine
