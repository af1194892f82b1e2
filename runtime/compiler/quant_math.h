// The quantisation arithmetic axcompile uses: asymmetric int8 activations, symmetric
// per-channel int8 weights, int32 biases, and the hardware-friendly output channel widths.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace axstream::compiler {

struct QuantParams {
  double scale = 1.0;
  int zero_point = 0;
};

// Per-tensor asymmetric int8 covering [lo, hi] (always including 0, so zero is exact).
QuantParams asymmetric_int8(double lo, double hi);

int8_t quantize_int8(float value, const QuantParams &params);
float dequantize_int8(int8_t value, const QuantParams &params);

// Symmetric per-channel int8 of `weights` laid out with `channels` slices along `axis` of `shape`;
// scales[c] = max|w_c| / 127 (1 for an all-zero channel).
struct ChannelQuantized {
  std::vector<int8_t> values;
  std::vector<float> scales;
};
ChannelQuantized quantize_per_channel(const std::vector<float> &weights,
                                      const std::vector<int64_t> &shape, int axis);

// Channel width a core output is padded to: up to 16 the next power of two, up to 256 a
// multiple of 16, above that a multiple of 64 (1000 -> 1024).
int64_t padded_channels(int64_t channels);

}  // namespace axstream::compiler
