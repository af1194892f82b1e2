// The oneDNN post-op chain of a residual add fused into an int8 convolution: the cheapest of a
// few candidate chains whose output equals axstream.QAdd's on every pair of int8 operands.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "ops/common.h"
#include "ops/quantized_join.h"

namespace dnnl {
struct post_ops;
}

namespace axstream::engine {

// The add fused into the convolution: its operands as DnnlQConvParams::Sum holds them, and its
// output.
struct ResidualSumOperands {
  DType conv_dtype = DType::i8;  // the convolution's own output: its bounds
  float conv_scale = 1.f;
  int32_t conv_zero_point = 0;
  DType skip_dtype = DType::i8;
  float skip_scale = 1.f;
  int32_t skip_zero_point = 0;
  bool relu = false;
  float y_scale = 1.f;  // the add's output scale
};

struct ResidualSumParams : ResidualSumOperands {
  DType y_dtype = DType::i8;
  int32_t y_zero_point = 0;
};

// The axstream.QAdd (ops/quantized_join.h) whose output the chain reproduces.
QuantizedJoin residual_sum_join(const ResidualSumParams &p);

// The post-ops after the convolution's output scales, in this order:
//   head (the unfused convolution's own output r, an integer as float): [+ conv zero point]
//   (eltwise_linear, or binary_add when the tail has the linear), clip to its type, round;
//   tail: [binary_sub conv zero point], [eltwise_linear: fma(v, alpha, beta)],
//   sum: fma(skip - skip zero point, sum_scale, v), [relu], [binary_mul or binary_div by
//   scale_operand], [round];
// then oneDNN adds the destination zero point, saturates and rounds half to even.
// Once r is known, what follows depends only on r and the skip, 256 x 256 pairs: a candidate is
// taken only if it gives the QAdd's output on all of them, so any candidate is bit-exact.
struct ResidualSumChain {
  bool head_zero_point_by_binary = false;  // the head adds the zero point as binary_add
  bool subtract_zero_point = false;
  bool linear = false;
  float alpha = 1.f, beta = 0.f;
  float sum_scale = 1.f;
  bool relu = false;
  enum class Scale { none, multiply, divide } scale = Scale::divide;
  float scale_operand = 1.f;
  bool round = true;

  std::string describe() const;  // e.g. "clip round linear sum div round"
};

// The cheapest exact chain (at worst the unfused operations one for one: sub, mul, sum, relu,
// div, round).
ResidualSumChain choose_residual_sum_chain(const ResidualSumParams &p);

// The destination value the chain gives for the convolution output r (r, a value of
// p.conv_dtype, stored as the unfused convolution writes it) and the skip value s, computing as
// oneDNN's brgemm and jit_int8 kernels do (one IEEE operation per post-op, the sum as one FMA).
int32_t residual_sum_chain_output(const ResidualSumChain &chain, const ResidualSumParams &p,
                                  int32_t r, int32_t s);

// Appends the chain's post-ops, after the convolution's output scales, to `ops`; `scalar` is
// called after each binary post-op is appended with its one-float operand (a 1x1x1x1 f32
// tensor the caller passes as that post-op's DNNL_ARG_SRC_1).
void append_residual_sum(const ResidualSumParams &sum, const ResidualSumChain &chain,
                         dnnl::post_ops &ops, const std::function<void(float)> &scalar);

}  // namespace axstream::engine
