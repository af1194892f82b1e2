// Many short copies at fixed strides: the channel slices an NHWC Concat or QConcat writes per
// pixel, or a Split reads, which are too short for a memcpy call each to pay.
#pragma once

#include <cstdint>

namespace axstream::engine {

// `count` runs of `run` bytes from x (one every `x_stride` bytes) to y (one every `y_stride`
// bytes). With AVX-512 BW a run shorter than 512 bytes is 64-byte moves and one masked move for
// its tail, in a loop over the runs; longer runs, and CPUs without it, take a memcpy each.
void copy_runs(const uint8_t *x, int64_t x_stride, uint8_t *y, int64_t y_stride, int64_t run,
               int64_t count);

}  // namespace axstream::engine
