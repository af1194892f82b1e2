// y = quantize([relu](dequantize(a) op dequantize(b))) element by element, op Add or Mul, with
// per-tensor parameters: the arithmetic of axstream.QAdd and axstream.QBinary, shared so both
// run it 16 lanes at a time on AVX-512, bit-exact to the unfused DequantizeLinear, Add/Mul,
// Relu and QuantizeLinear kernels (QAdd: but for the one rounding of its fused multiply-add).
#pragma once

#include <cstdint>

namespace axstream::engine {

struct QuantizedJoin {
  float a_scale = 1.f, b_scale = 1.f, y_scale = 1.f;
  int32_t a_zero = 0, b_zero = 0, y_zero = 0;
  bool mul = false, relu = false;
  // Add only: b's dequantised value is not rounded on its own but added to a's in one
  // rounding, fma(b - b_zero, b_scale, (a - a_zero) * a_scale), as oneDNN's sum post-op adds a
  // residual. axstream.QAdd computes this so that a convolution writing a can take the add
  // bit-exactly (passes.cc); it differs from rounding b's product first in ~1 of 10^6 outputs.
  bool fused_multiply_add_b = false;
};

class OpContext;

// The inputs of axstream.QAdd and axstream.QBinary, in this order.
enum QuantizedJoinSlot {
  kJoinA,
  kJoinAScale,
  kJoinAZero,
  kJoinB,
  kJoinBScale,
  kJoinBZero,
  kJoinYScale,
  kJoinYZero
};

// The scales and zero points of a QAdd/QBinary node (one float each, a missing zero point is 0)
// and its _relu attribute; `mul` is left false.
QuantizedJoin quantized_join_params(OpContext &ctx);

// a, b and y hold `count` elements each. A, B, Y: int8_t or uint8_t.
template <typename A, typename B, typename Y>
void quantized_join(const A *a, const B *b, Y *y, int64_t count, const QuantizedJoin &p);

// a and y are (pixels, channels) (NHWC), b one value per channel, already dequantised:
// b_real[c] = (b[c] - b_zero) * b_scale (the same float the unfused DequantizeLinear gives);
// fused_multiply_add_b does not apply (b is already rounded).
template <typename A, typename Y>
void quantized_join_channels(const A *a, const float *b_real, Y *y, int64_t pixels,
                             int64_t channels, const QuantizedJoin &p);

}  // namespace axstream::engine
