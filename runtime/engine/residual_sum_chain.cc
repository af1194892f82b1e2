// Choosing the residual sum's post-op chain (residual_sum_chain.h): the candidates in order of
// cost, each checked against axstream.QAdd over all 65536 operand pairs.
#include "residual_sum_chain.h"

#include <algorithm>
#include <cmath>
#include <dnnl.hpp>
#include <vector>

#include "ops/quantized_join.h"

namespace axstream::engine {
namespace {

using Scale = ResidualSumChain::Scale;

// The QAdd's outputs (ops/quantized_join.h, with the sum's one-rounding multiply-add) for
// every r of the convolution's type (major) and s of the skip's type (minor).
template <typename A, typename B, typename Y>
std::vector<int32_t> qadd_outputs(const QuantizedJoin &join) {
  std::vector<A> a(65536);
  std::vector<B> b(65536);
  std::vector<Y> y(65536);
  for (int i = 0; i < 65536; ++i) {
    a[i] = static_cast<A>(i >> 8);
    b[i] = static_cast<B>(i & 255);
  }
  quantized_join<A, B, Y>(a.data(), b.data(), y.data(), 65536, join);
  return std::vector<int32_t>(y.begin(), y.end());
}

template <typename A, typename B>
std::vector<int32_t> qadd_outputs_y(DType y, const QuantizedJoin &join) {
  return y == DType::u8 ? qadd_outputs<A, B, uint8_t>(join) : qadd_outputs<A, B, int8_t>(join);
}

template <typename A>
std::vector<int32_t> qadd_outputs_b(DType b, DType y, const QuantizedJoin &join) {
  return b == DType::u8 ? qadd_outputs_y<A, uint8_t>(y, join) : qadd_outputs_y<A, int8_t>(y, join);
}

std::vector<int32_t> qadd_outputs(const ResidualSumParams &p) {
  const QuantizedJoin join = residual_sum_join(p);
  return p.conv_dtype == DType::u8 ? qadd_outputs_b<uint8_t>(p.skip_dtype, p.y_dtype, join)
                                   : qadd_outputs_b<int8_t>(p.skip_dtype, p.y_dtype, join);
}

int32_t value_of(DType t, int index) {  // the index-th byte as a value of t
  return t == DType::u8 ? index : static_cast<int8_t>(static_cast<uint8_t>(index));
}

// Relative cost of the chain's variable part (the head's clip and round are always there): a
// binary post-op reads its operand through the kernel's arguments, a division is slow.
int cost_of(const ResidualSumChain &c, bool conv_zero_point) {
  int cost = conv_zero_point ? (c.head_zero_point_by_binary ? 2 : 1) : 0;
  cost +=
      (c.subtract_zero_point ? 2 : 0) + (c.linear ? 1 : 0) + (c.relu ? 1 : 0) + (c.round ? 1 : 0);
  cost += c.scale == Scale::multiply ? 2 : c.scale == Scale::divide ? 4 : 0;
  return cost;
}

// The candidates, cheapest first; the last one repeats the unfused operations one for one
// (exact by construction: the linear with beta 0 is the multiplication).
std::vector<ResidualSumChain> candidates(const ResidualSumParams &p) {
  const bool zc = p.conv_zero_point != 0;
  std::vector<std::pair<int, ResidualSumChain>> list;
  for (Scale scale : {Scale::none, Scale::multiply, Scale::divide})
    for (bool zero_point_in_beta : {true, false})
      for (bool relu : {false, true})
        for (bool round : {false, true}) {
          if ((!zc && !zero_point_in_beta) || (relu && !p.relu)) continue;
          // Scale::none folds the division into the linear and the sum's scale.
          const double k = scale == Scale::none ? 1.0 / static_cast<double>(p.y_scale) : 1.0;
          ResidualSumChain c;
          c.alpha = static_cast<float>(static_cast<double>(p.conv_scale) * k);
          c.beta = zero_point_in_beta ? static_cast<float>(-static_cast<double>(p.conv_zero_point) *
                                                           static_cast<double>(p.conv_scale) * k)
                                      : 0.f;
          c.subtract_zero_point = zc && !zero_point_in_beta;
          c.linear = c.alpha != 1.f || c.beta != 0.f;
          c.head_zero_point_by_binary = zc && c.linear;
          c.sum_scale = static_cast<float>(static_cast<double>(p.skip_scale) * k);
          c.relu = relu;
          c.scale = scale;
          c.scale_operand = scale == Scale::multiply
                                ? static_cast<float>(1.0 / static_cast<double>(p.y_scale))
                                : p.y_scale;
          c.round = round;
          list.push_back({cost_of(c, zc), c});
        }
  std::stable_sort(list.begin(), list.end(),
                   [](const auto &x, const auto &y) { return x.first < y.first; });
  std::vector<ResidualSumChain> out;
  for (auto &entry : list) out.push_back(entry.second);
  return out;  // the last: divide, zero point subtracted, relu as asked, round
}

}  // namespace

std::string ResidualSumChain::describe() const {
  std::string s = head_zero_point_by_binary ? "add " : "";
  s += "clip round";
  if (subtract_zero_point) s += " sub";
  if (linear) s += " linear";
  s += " sum";
  if (relu) s += " relu";
  if (scale == Scale::multiply) s += " mul";
  if (scale == Scale::divide) s += " div";
  if (round) s += " round";
  return s;
}

// One IEEE operation per post-op: no contraction of a product and a sum into an FMA the
// kernels do not do.
__attribute__((optimize("fp-contract=off"))) int32_t residual_sum_chain_output(
    const ResidualSumChain &chain, const ResidualSumParams &p, int32_t r, int32_t s) {
  float v = static_cast<float>(r);
  if (chain.subtract_zero_point) v = v - static_cast<float>(p.conv_zero_point);
  if (chain.linear) v = std::fma(v, chain.alpha, chain.beta);  // oneDNN's eltwise_linear
  v = std::fma(static_cast<float>(s - p.skip_zero_point), chain.sum_scale, v);
  if (chain.relu) v = v > 0.f ? v : 0.f;  // vmaxps(v, 0)
  if (chain.scale == Scale::multiply) v = v * chain.scale_operand;
  if (chain.scale == Scale::divide) v = v / chain.scale_operand;
  if (chain.round) v = std::nearbyint(v);
  // The destination: zero point added in float, saturated, converted rounding half to even.
  if (p.y_zero_point != 0) v = v + static_cast<float>(p.y_zero_point);
  const float lo = p.y_dtype == DType::u8 ? 0.f : -128.f;
  const float hi = p.y_dtype == DType::u8 ? 255.f : 127.f;
  v = std::min(std::max(v, lo), hi);
  return static_cast<int32_t>(std::nearbyint(v));
}

QuantizedJoin residual_sum_join(const ResidualSumParams &p) {
  QuantizedJoin join;
  join.a_scale = p.conv_scale;
  join.a_zero = p.conv_zero_point;
  join.b_scale = p.skip_scale;
  join.b_zero = p.skip_zero_point;
  join.y_scale = p.y_scale;
  join.y_zero = p.y_zero_point;
  join.relu = p.relu;
  join.fused_multiply_add_b = true;  // the sum post-op's one FMA
  return join;
}

ResidualSumChain choose_residual_sum_chain(const ResidualSumParams &p) {
  const std::vector<int32_t> want = qadd_outputs(p);
  const std::vector<ResidualSumChain> list = candidates(p);
  for (const ResidualSumChain &chain : list) {
    bool exact = true;
    for (int i = 0; exact && i < 65536; ++i)
      exact = residual_sum_chain_output(chain, p, value_of(p.conv_dtype, i >> 8),
                                        value_of(p.skip_dtype, i & 255)) == want[i];
    if (exact) return chain;
  }
  return list.back();
}

// One IEEE operation per post-op; `scalar` gives each binary post-op its
// one-float operand. oneDNN 2.6's injector keeps one set of parameters per eltwise algorithm (a
// second eltwise_linear runs with the first one's alpha and beta), so each parametrised eltwise
// algorithm appears once and the other constant operations are binary post-ops on one float.
void append_residual_sum(const ResidualSumParams &sum, const ResidualSumChain &chain,
                         dnnl::post_ops &ops, const std::function<void(float)> &scalar) {
  using memory = dnnl::memory;
  auto binary = [&](dnnl::algorithm op, float value) {
    ops.append_binary(op,
                      memory::desc({1, 1, 1, 1}, memory::data_type::f32, memory::format_tag::nchw));
    scalar(value);
  };
  const auto conv_zero = static_cast<float>(sum.conv_zero_point);
  // The convolution's own output: its zero point added in float before the rounding (as
  // oneDNN adds a destination zero point), saturated, rounded half to even.
  if (sum.conv_zero_point != 0) {
    if (chain.head_zero_point_by_binary)
      binary(dnnl::algorithm::binary_add, conv_zero);
    else
      ops.append_eltwise(1.f, dnnl::algorithm::eltwise_linear, 1.f, conv_zero);
  }
  const bool conv_i8 = sum.conv_dtype == DType::i8;
  ops.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, conv_i8 ? -128.f : 0.f,
                     conv_i8 ? 127.f : 255.f);
  ops.append_eltwise(1.f, dnnl::algorithm::eltwise_round, 0.f, 0.f);
  // Dequantised as the add reads it, in the form the chain was checked in.
  if (chain.subtract_zero_point) binary(dnnl::algorithm::binary_sub, conv_zero);
  if (chain.linear)
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_linear, chain.alpha, chain.beta);
  // oneDNN's sum: (skip - zero point) * scale added in one FMA (a plain add at scale 1).
  ops.append_sum(chain.sum_scale, sum.skip_zero_point,
                 sum.skip_dtype == DType::u8 ? memory::data_type::u8 : memory::data_type::s8);
  if (chain.relu) ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  if (chain.scale == ResidualSumChain::Scale::multiply)
    binary(dnnl::algorithm::binary_mul, chain.scale_operand);
  if (chain.scale == ResidualSumChain::Scale::divide)
    binary(dnnl::algorithm::binary_div, chain.scale_operand);
  // The destination zero point is added to the (rounded) value and saturated by the primitive.
  if (chain.round) ops.append_eltwise(1.f, dnnl::algorithm::eltwise_round, 0.f, 0.f);
}

}  // namespace axstream::engine
