// The requantisation of int32 convolution accumulators to output bytes, lane by lane on
// AVX-512, as oneDNN 2.6's int8 convolutions compute it (conv_dnnl.h, DnnlQConvParams), shared
// by the engine's own int8 convolution kernels (depthwise_int8.cc, stem_int8.cc) so that both
// give oneDNN's bytes by the same instructions.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "intrinsics.h"
#include "no_contract.h"

#define AXSTREAM_AVX512_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

namespace axstream::engine {

// What follows the accumulator: y = saturate(round(clamp((float(acc) + bias[c]) * scale[c],
// act_lo, act_hi) [+ z - z] + dst_zero_point)), each operation rounded as oneDNN's is. The
// clamp and the saturation commute with the monotone additions and the rounding, so they act
// on the result as output bytes (`lower`, `upper`).
struct RequantiseSteps {
  bool dst_signed = false;
  // false: the (integer) bias joins the initial accumulators instead (bias_joins_accumulators).
  bool add_bias = true;
  std::vector<float> adds;         // the zero points added in float after the scale, in order
  uint8_t lower = 0, upper = 255;  // the activation's bounds as output bytes (the type's bits)
  bool clamps = false;             // lower or upper is not the type's own bound
};

// The activation bound `v` (output units) after the zero-point additions, as the output byte
// it clamps to (saturated to the type; infinite: the type's own bound).
AXSTREAM_NO_CONTRACT inline uint8_t bound_byte(float v, const std::vector<float> &adds,
                                               bool dst_signed) {
  const float lo = dst_signed ? -128.f : 0.f, hi = dst_signed ? 127.f : 255.f;
  for (float a : adds) v = v + a;
  v = std::nearbyint(std::min(std::max(v, lo), hi));
  return static_cast<uint8_t>(static_cast<int>(v));
}

// The steps for an output of `dst_signed` type with these zero points (`rounds_as_int8_zero_point`
// as DnnlQConvParams has it: z added, then -z) and activation bounds (output units).
inline RequantiseSteps requantise_steps(bool dst_signed, int32_t dst_zero_point,
                                        int32_t rounds_as_int8_zero_point, float act_lo,
                                        float act_hi) {
  RequantiseSteps s;
  s.dst_signed = dst_signed;
  if (rounds_as_int8_zero_point != 0) {
    s.adds.push_back(static_cast<float>(rounds_as_int8_zero_point));
    s.adds.push_back(-static_cast<float>(rounds_as_int8_zero_point));
  }
  if (dst_zero_point != 0) s.adds.push_back(static_cast<float>(dst_zero_point));
  s.lower = bound_byte(act_lo, s.adds, dst_signed);
  s.upper = bound_byte(act_hi, s.adds, dst_signed);
  s.clamps = s.lower != (dst_signed ? 0x80 : 0) || s.upper != (dst_signed ? 0x7f : 0xff);
  return s;
}

// Whether every output channel's bias is an integer that, added to any accumulator of its
// weights (`per_channel` int8 each, over sources of 0..255), stays below 2^24 (float's
// integers): then it adds exactly in int32, in the initial accumulator, and the float sum
// float(acc) + bias equals float(acc + bias).
inline bool bias_joins_accumulators(const int8_t *weights, int64_t channels, int64_t per_channel,
                                    const std::vector<float> &bias_acc) {
  for (int64_t c = 0; c < channels; ++c) {
    int64_t magnitude = 0;
    for (int64_t i = 0; i < per_channel; ++i)
      magnitude += std::abs(static_cast<int>(weights[c * per_channel + i]));
    const float b = bias_acc[c];
    if (b != std::nearbyint(b) ||
        255.0 * static_cast<double>(magnitude) + std::fabs(b) >= std::ldexp(1.0, 24))
      return false;
  }
  return true;
}

// Whether every scaled accumulator of these weights, biases and scales stays far inside int32
// (the range of the float-to-int32 conversion), over sources of 0..255.
inline bool scaled_accumulators_fit(const int8_t *weights, int64_t channels, int64_t per_channel,
                                    const std::vector<float> &bias_acc,
                                    const std::vector<float> &output_scales) {
  for (int64_t c = 0; c < channels; ++c) {
    double magnitude = 0;
    for (int64_t i = 0; i < per_channel; ++i)
      magnitude += std::abs(static_cast<int>(weights[c * per_channel + i]));
    const double reach = (255.0 * magnitude + std::fabs(bias_acc[c])) *
                             std::fabs(static_cast<double>(output_scales[c])) +
                         512.0;
    if (!std::isfinite(bias_acc[c]) || !std::isfinite(output_scales[c]) ||
        !(reach < std::ldexp(1.0, 30)))
      return false;
  }
  return true;
}

// Sixteen accumulators to their rounded int32 results: float(acc) [+ bias], * scale, the
// zero points added, rounded half to even (MXCSR's default). Saturation and the activation's
// clamp are the caller's, on the result as bytes.
AXSTREAM_NO_CONTRACT AXSTREAM_AVX512_VNNI inline __m512i requantise_lanes(const RequantiseSteps &s,
                                                                          __m512i acc, __m512 bias,
                                                                          __m512 scale) {
  __m512 f = _mm512_cvtepi32_ps(acc);
  if (s.add_bias) f = _mm512_add_ps(f, bias);
  f = _mm512_mul_ps(f, scale);
  for (float a : s.adds) f = _mm512_add_ps(f, _mm512_set1_ps(a));
  return _mm512_cvtps_epi32(f);
}

// requantise_lanes without branches, for epilogues the compiler should keep in registers: the
// bias always added (0 where it joined the accumulators) and always kMaxAdds zero-point
// additions (`adds`: s.adds, then 0). float(acc) is never -0, and x + 0 differs from x only for
// x = -0 (giving +0), which converts to the same integer and adds to the next zero point the
// same: so the same results as requantise_lanes, bit for bit.
constexpr int kMaxAdds = 3;
AXSTREAM_NO_CONTRACT AXSTREAM_AVX512_VNNI inline __m512i requantise_lanes_fixed(
    __m512i acc, __m512 bias, __m512 scale, const __m512 *adds) {
  __m512 f = _mm512_add_ps(_mm512_cvtepi32_ps(acc), bias);
  f = _mm512_mul_ps(f, scale);
  for (int i = 0; i < kMaxAdds; ++i) f = _mm512_add_ps(f, adds[i]);
  return _mm512_cvtps_epi32(f);
}

// An epilogue's form for a template argument: bit 0 a float bias to add, bits 1-2 the count of
// zero points added in float (RequantiseSteps::adds), so that a kernel's epilogue neither tests
// the bias nor loops over the additions per vector (the depthwise rows form, the 24-channel
// VNNI stem).
constexpr int kRequantiseFormBias = 1, kRequantiseForms = 2 << 2;

inline int requantise_form(const RequantiseSteps &rq) {
  return (rq.add_bias ? kRequantiseFormBias : 0) | (static_cast<int>(rq.adds.size()) << 1);
}

// kCount accumulators as requantise_lanes does each, in the form kForm (requantise_form; `adds`
// the zero points as vectors, read only as far as the form has them): the same operations per
// lane, so the same results.
template <int kForm, int kCount>
AXSTREAM_NO_CONTRACT AXSTREAM_AVX512_VNNI inline void requantise_lanes_form(const __m512i *acc,
                                                                            const __m512 *bias,
                                                                            const __m512 *scale,
                                                                            const __m512 *adds,
                                                                            __m512i *result) {
  __m512 f[kCount];
  for (int j = 0; j < kCount; ++j) f[j] = _mm512_cvtepi32_ps(acc[j]);
  if constexpr ((kForm & kRequantiseFormBias) != 0)
    for (int j = 0; j < kCount; ++j) f[j] = _mm512_add_ps(f[j], bias[j]);
  for (int j = 0; j < kCount; ++j) f[j] = _mm512_mul_ps(f[j], scale[j]);
  for (int a = 0; a < (kForm >> 1); ++a)
    for (int j = 0; j < kCount; ++j) f[j] = _mm512_add_ps(f[j], adds[a]);
  for (int j = 0; j < kCount; ++j) result[j] = _mm512_cvtps_epi32(f[j]);
}

// Four vectors of int32 results to 64 bytes of the destination's type by saturating packs (the
// type's bounds, as a clamp to them and a narrowing give), then the activation's clamp if
// rq.clamps: dword 4l of the result holds a's lanes 4l..4l+3 as bytes, 4l + 1 b's, 4l + 2 c's,
// 4l + 3 d's (the packs work within 128-bit lanes; the caller orders them).
template <bool kSigned>
AXSTREAM_AVX512_VNNI inline __m512i pack_bytes(const RequantiseSteps &rq, __m512i a, __m512i b,
                                               __m512i c, __m512i d) {
  const __m512i low = _mm512_packs_epi32(a, b), high = _mm512_packs_epi32(c, d);
  __m512i y;
  if constexpr (kSigned) {
    y = _mm512_packs_epi16(low, high);
    if (rq.clamps)
      y = _mm512_min_epi8(_mm512_max_epi8(y, _mm512_set1_epi8(static_cast<char>(rq.lower))),
                          _mm512_set1_epi8(static_cast<char>(rq.upper)));
  } else {
    y = _mm512_packus_epi16(low, high);
    if (rq.clamps)
      y = _mm512_min_epu8(_mm512_max_epu8(y, _mm512_set1_epi8(static_cast<char>(rq.lower))),
                          _mm512_set1_epi8(static_cast<char>(rq.upper)));
  }
  return y;
}

// kCount accumulators' lanes as requantise_lanes does each, operation by operation across
// them (the same operations per lane, so the same bytes): their values stay in registers, where
// one call per accumulator in a loop kept its results on the stack (GCC did not unroll that loop
// around the loop over the zero-point additions).
template <int kCount>
AXSTREAM_NO_CONTRACT AXSTREAM_AVX512_VNNI inline void requantise_lanes(const RequantiseSteps &s,
                                                                       const __m512i *acc,
                                                                       const __m512 *bias,
                                                                       const __m512 *scale,
                                                                       __m512i *result) {
  __m512 f[kCount];
  for (int j = 0; j < kCount; ++j) f[j] = _mm512_cvtepi32_ps(acc[j]);
  if (s.add_bias)
    for (int j = 0; j < kCount; ++j) f[j] = _mm512_add_ps(f[j], bias[j]);
  for (int j = 0; j < kCount; ++j) f[j] = _mm512_mul_ps(f[j], scale[j]);
  for (float a : s.adds) {
    const __m512 add = _mm512_set1_ps(a);
    for (int j = 0; j < kCount; ++j) f[j] = _mm512_add_ps(f[j], add);
  }
  for (int j = 0; j < kCount; ++j) result[j] = _mm512_cvtps_epi32(f[j]);
}

}  // namespace axstream::engine
