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
    float f;
    std::memcpy(&f, &out, sizeof f);
    return f;
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

inline float half_to_float(uint16_t bits) { return float16_detail::Half::to_float(bits); }
inline uint16_t double_to_half(double value) { return float16_detail::Half::from_double(value); }
inline uint16_t float_to_half(float value) { return double_to_half(value); }

inline float bfloat16_to_float(uint16_t bits) { return float16_detail::BFloat16::to_float(bits); }
inline uint16_t double_to_bfloat16(double value) {
  return float16_detail::BFloat16::from_double(value);
}
// The float's top 16 bits rounded on the low 16 (the usual bias trick; a double is not needed).
inline uint16_t float_to_bfloat16(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u)  // NaN: keep sign and top payload, force quiet
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace axstream::engine
