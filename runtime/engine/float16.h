// IEEE binary16 (float16) and bfloat16 <-> float/double conversions for the engine's 16-bit
// storage types: widening is exact, narrowing rounds to nearest, ties to even, as numpy's
// astype(float16), torch and ONNX Runtime do. Plain integer code (no F16C), so the result does
// not depend on the host CPU.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace axstream::engine {
namespace float16_detail {

inline uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
inline float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// A binary floating-point format of 16 bits: sign, kExponentBits, kMantissaBits.
template <int kExponentBits, int kMantissaBits>
struct Format16 {
  static_assert(1 + kExponentBits + kMantissaBits == 16, "a 16-bit format");
  static constexpr int kBias = (1 << (kExponentBits - 1)) - 1;
  static constexpr int kMinNormalExponent = 1 - kBias;
  static constexpr uint32_t kExponentMask = (1u << kExponentBits) - 1;
  static constexpr uint32_t kMantissaMask = (1u << kMantissaBits) - 1;
  static constexpr uint16_t kInfinity = static_cast<uint16_t>(kExponentMask << kMantissaBits);

  // Exact: every value of the format is a float (bfloat16's subnormals are float subnormals).
  static float to_float(uint16_t bits) {
    const uint32_t sign = static_cast<uint32_t>(bits >> 15) << 31;
    const uint32_t exponent = (bits >> kMantissaBits) & kExponentMask;
    const uint32_t mantissa = bits & kMantissaMask;
    uint32_t out;
    if (exponent == kExponentMask) {
      // Inf, or NaN with its payload in the top mantissa bits (quiet stays quiet).
      out = sign | 0x7f800000u | (mantissa << (23 - kMantissaBits));
    } else if (exponent == 0) {
      // Zero or subnormal: mantissa * 2^(kMinNormalExponent - kMantissaBits), exact in float.
      float magnitude =
          std::ldexp(static_cast<float>(mantissa), kMinNormalExponent - kMantissaBits);
      return bits >> 15 ? -magnitude : magnitude;
    } else {
      out = sign | ((exponent - kBias + 127) << 23) | (mantissa << (23 - kMantissaBits));
    }
    return float_of(out);
  }

  // Rounds a double straight to the format (no double rounding through float): nearest, ties to
  // even; past the largest finite value it is +-inf; NaN stays NaN (quiet, sign kept).
  static uint16_t from_double(double value) {
    uint64_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    const uint16_t sign = static_cast<uint16_t>((bits >> 63) << 15);
    const int biased = static_cast<int>((bits >> 52) & 0x7ff);
    const uint64_t fraction = bits & ((uint64_t(1) << 52) - 1);
    if (biased == 0x7ff) {
      if (fraction == 0) return sign | kInfinity;
      const uint16_t payload = static_cast<uint16_t>(fraction >> (52 - kMantissaBits));
      return sign | kInfinity | static_cast<uint16_t>(1u << (kMantissaBits - 1)) | payload;
    }
    // A double subnormal is far below half the smallest subnormal of either format.
    if (biased == 0) return sign;
    const int exponent = biased - 1023;
    if (exponent > kBias) return sign | kInfinity;
    const uint64_t significand = fraction | (uint64_t(1) << 52);  // value = significand * 2^(e-52)
    // The quantum (value of one unit in the last place) of the result: 2^(quantum_exponent).
    const int quantum_exponent =
        (exponent < kMinNormalExponent ? kMinNormalExponent : exponent) - kMantissaBits;
    const int shift = quantum_exponent - (exponent - 52);  // >= 52 - kMantissaBits
    // significand < 2^53, so with shift >= 54 the value is below half a quantum: +-0.
    if (shift >= 54) return sign;
    uint64_t units = significand >> shift;
    const uint64_t rest = significand & ((uint64_t(1) << shift) - 1);
    const uint64_t half = uint64_t(1) << (shift - 1);
    if (rest > half || (rest == half && (units & 1))) ++units;
    // Subnormal: units is the encoding (units == 2^kMantissaBits carries into the smallest
    // normal). Normal: units holds the implicit bit, so the exponent field is one less, and a
    // carry out of the mantissa bumps the exponent (to inf past the largest finite value).
    uint32_t encoded = exponent < kMinNormalExponent
                           ? static_cast<uint32_t>(units)
                           : (static_cast<uint32_t>(exponent + kBias - 1) << kMantissaBits) +
                                 static_cast<uint32_t>(units);
    if (encoded >= kInfinity) encoded = kInfinity;
    return sign | static_cast<uint16_t>(encoded);
  }
};

using Half = Format16<5, 10>;
using BFloat16 = Format16<8, 7>;

}  // namespace float16_detail

// The same results as Half::to_float and Half::from_double, without branches (F. Giesen's
// conversions, selecting with masks): a Cast after Relu sees half zeros, and a branch on
// zero/subnormal per element mispredicts on them (3-4x slower casts).
inline float half_to_float(uint16_t bits) {
  using namespace float16_detail;
  constexpr uint32_t kShiftedExponent = 0x7c00u << 13;
  const uint32_t magnitude = static_cast<uint32_t>(bits & 0x7fffu) << 13;
  const uint32_t exponent = magnitude & kShiftedExponent;
  const uint32_t normal = magnitude + ((127u - 15u) << 23);
  const uint32_t inf_nan = normal + ((128u - 16u) << 23);
  // Zero or subnormal: mantissa * 2^-24, made exactly as (1 + mantissa * 2^-10) * 2^-14 - 2^-14.
  const uint32_t subnormal = bits_of(float_of(normal + (1u << 23)) - float_of(113u << 23));
  const uint32_t is_inf_nan = 0u - static_cast<uint32_t>(exponent == kShiftedExponent);
  const uint32_t is_subnormal = 0u - static_cast<uint32_t>(exponent == 0);
  const uint32_t out =
      (inf_nan & is_inf_nan) | (subnormal & is_subnormal) | (normal & ~(is_inf_nan | is_subnormal));
  return float_of(out | (static_cast<uint32_t>(bits & 0x8000u) << 16));
}
inline uint16_t double_to_half(double value) { return float16_detail::Half::from_double(value); }
inline uint16_t float_to_half(float value) {
  using namespace float16_detail;
  const uint32_t all = bits_of(value);
  const uint32_t sign = all & 0x80000000u;
  const uint32_t magnitude = all ^ sign;
  // Below 2^-14 the result is subnormal or zero: adding 2^-1 (its float quantum is 2^-24, the
  // half subnormals' one) rounds to nearest even, and the low bits are the half encoding.
  const float denormal_magic = float_of(((127u - 15u) + (23u - 10u) + 1u) << 23);
  const uint32_t subnormal =
      bits_of(float_of(magnitude) + denormal_magic) - bits_of(denormal_magic);
  // Normal: rebias, then round the 13 dropped bits to nearest even (a carry bumps the exponent,
  // to inf past the largest finite value).
  const uint32_t normal =
      (magnitude + ((15u - 127u) << 23) + 0xfffu + ((magnitude >> 13) & 1u)) >> 13;
  // 2^16 and above, and inf: inf. NaN: quiet, the top of its payload kept.
  const uint32_t nan = 0x7e00u | ((magnitude >> 13) & 0x3ffu);
  const uint32_t is_nan = 0u - static_cast<uint32_t>(magnitude > 0x7f800000u);
  const uint32_t is_inf = 0u - static_cast<uint32_t>(magnitude >= ((127u + 16u) << 23));
  const uint32_t is_subnormal = 0u - static_cast<uint32_t>(magnitude < (113u << 23));
  const uint32_t finite = (subnormal & is_subnormal) | (normal & ~is_subnormal);
  const uint32_t out = (nan & is_nan) | (0x7c00u & is_inf & ~is_nan) | (finite & ~is_inf);
  return static_cast<uint16_t>(out | (sign >> 16));
}

inline float bfloat16_to_float(uint16_t bits) { return float16_detail::BFloat16::to_float(bits); }
inline uint16_t double_to_bfloat16(double value) {
  return float16_detail::BFloat16::from_double(value);
}
// The float's top 16 bits rounded on the low 16 (the usual bias trick; a double is not needed).
inline uint16_t float_to_bfloat16(float value) {
  const uint32_t bits = float16_detail::bits_of(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u)  // NaN: keep sign and top payload, force quiet
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace axstream::engine
