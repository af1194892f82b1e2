#include "pointwise_int8.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <numeric>
#include <utility>

#include "../cpu_features.h"
#include "../parallel.h"
#include "axstream/error.h"
#include "intrinsics.h"
#include "requantise_lanes.h"

namespace axstream::engine {

bool own_pointwise_available() { return cpu_allows_avx512vnni(); }

void check_own_pointwise_setting(const char *setting) {
  const std::string asked = setting ? setting : "auto";
  if (asked != "auto" && asked != "1" && asked != "0")
    throw InvalidConfiguration("AXSTREAM_ENGINE_OWN_POINTWISE: expected auto, 1 or 0, got '" +
                               asked + "'");
}

bool own_pointwise_chosen(const PointwiseInt8Params &p, const char *setting) {
  check_own_pointwise_setting(setting);
  const std::string asked = setting ? setting : "auto";
  if (asked == "1") return true;
  if (asked == "0") return false;
  // Measured only on a host without AMX (AMD EPYC, AVX-512 VNNI: docs/performance.md "Own int8
  // 1x1 kernel" and "Own 1x1 kernel for 25-32 channels"), against oneDNN's brgconv_1x1 on
  // AVX-512 VNNI, on BlazeFace's and PP-OCR cls's residual convolutions: every such step
  // measured, 8 to 96 output channels, faster (24 -> 24 1.28-1.51x; 28 and 32 output channels
  // 1.04-1.16x since the epilogue's packed stores, where they had been 0.91-1.01x). Without a
  // sum, small convolutions ran faster but large ones slower (PP-OCR det's 16->32 0.84x,
  // YOLOv5s's 64->32 0.91x), so those stay on oneDNN. Where oneDNN may take AMX for these
  // convolutions it was not measured, so it stays there.
  if (cpu_allows_amx_int8()) return false;
  return p.has_sum && p.out_channels <= 96;
}

namespace {

// How it works. A 1x1 convolution at stride 1 without padding over NHWC activations is a
// matrix product: pixel i's output channels are its in_channels source bytes times the weights.
// Pixels go in blocks of kPixels; a block's source bytes are staged (an int8 source flipped to
// uint8 by xor 0x80, as oneDNN does) so that every pixel's last quad of bytes may be read whole.
// Per quad of input channels, the quad of each pixel is broadcast to 16 lanes and multiplied by
// vpdpbusd into one int32 vector per 16 output channels, against the quad's weights (four
// input channels by 16 output channels, packed once at compile time; 0 past the channels). The
// accumulators start at -(zero point [+ 128 for an int8 source]) * sum(w) (and an integer bias
// where it joins), so they hold oneDNN's sum((x - zero_point) * w) exactly. The block's outputs
// are then requantised 16 at a time (as one run of bytes where the channels are not a multiple
// of 16, epilogue_block) as the depthwise and stem kernels do (requantise_lanes.h) or, with a
// residual sum, to the convolution's own output r, and r and the skip byte s go through the
// post-op chain oneDNN's kernels apply (residual_sum_chain.h), one IEEE operation each in the
// same order, to the destination byte. Over one run of bytes, four vectors' results go to 64
// bytes at a time by saturating packs (flat_block), which also clamp them to the type.

constexpr int64_t kMaxInChannels = 512;
constexpr int kMaxVectors = 6;  // 96 output channels
constexpr int kMaxPixels = 12;

struct alignas(64) Vector {
  uint8_t bytes[64];
};

// The sum's chain as vector operands (residual_sum_chain_output's order).
struct ChainConstants {
  bool subtract_zero_point = false, linear = false, relu = false, round = false;
  ResidualSumChain::Scale scale = ResidualSumChain::Scale::none;
  float conv_zero_point = 0.f, alpha = 1.f, beta = 0.f, sum_scale = 1.f, scale_operand = 1.f;
  int32_t skip_zero_point = 0;
  bool skip_signed = true;
  float y_zero_point = 0.f, y_lo = -128.f, y_hi = 127.f;
};

// The chain's operands as vectors. Where the chain leaves out its zero point's subtraction
// the kernel subtracts 0, and where the destination has no zero point it adds 0 (x - 0 and x + 0
// give x, but for the sign of a zero, which the final conversion to an integer drops).
struct SumLanes {
  __m512 conv_zero_add, r_lo, r_hi, conv_zero_sub, alpha, beta, sum_scale, scale_operand, y_zero,
      y_lo, y_hi;
  __m512i skip_offset;  // the skip's zero point (+ 128 for int8, flipped to uint8)
  __m512i skip_zero;    // the skip's zero point (for its bytes widened as their own type)
  __m128i skip_flip;
};

struct Plan {
  int64_t pixels = 0, cin = 0, cout = 0, quads = 0;
  int n_vectors = 0;
  bool src_signed = true;
  RequantiseSteps rq;
  int32_t lower = 0, upper = 0;  // rq's byte bounds as int32 values of the output type
  bool has_sum = false;
  ChainConstants chain;
  // Weights (quads x n_vectors), then per output vector: initial accumulators, biases and
  // scales (one vector each), then per phase of the flat epilogue: biases and scales.
  std::vector<Vector> table;
  size_t constants_at = 0, phases_at = 0;
  int64_t phases = 0;  // lcm(cout, 16) / 16: the flat epilogue's vectors per channel pattern
  bool flat = false;   // the epilogue runs over the block's outputs as one run of bytes
  SumLanes sum{};
  void (*epilogue)(const Plan &, const int32_t *, int64_t, const uint8_t *, uint8_t *) = nullptr;
};

// The low bytes of 16 int32 lanes (in the bytes' range) stored to `out` where `mask` is set.
// (Narrowing in a register, then storing the bytes, measured the same on the AMD EPYC host:
// BlazeFace back's 1x1 steps 1.28-1.31 against 1.29-1.33 ms per inference.)
AXSTREAM_AVX512_VNNI inline void store_bytes(__m512i lanes, __mmask16 mask, uint8_t *out) {
  _mm512_mask_cvtepi32_storeu_epi8(out, mask, lanes);
}

// (Filled through a pointer: a caller without AVX-512 may not take vectors by value.)
AXSTREAM_AVX512_VNNI void fill_sum_lanes(const ChainConstants &c, float conv_zero_add, int32_t r_lo,
                                         int32_t r_hi, SumLanes *lanes) {
  SumLanes &k = *lanes;
  k.conv_zero_add = _mm512_set1_ps(conv_zero_add);
  k.r_lo = _mm512_set1_ps(static_cast<float>(r_lo));
  k.r_hi = _mm512_set1_ps(static_cast<float>(r_hi));
  k.conv_zero_sub = _mm512_set1_ps(c.subtract_zero_point ? c.conv_zero_point : 0.f);
  k.alpha = _mm512_set1_ps(c.alpha);
  k.beta = _mm512_set1_ps(c.beta);
  k.sum_scale = _mm512_set1_ps(c.sum_scale);
  k.scale_operand = _mm512_set1_ps(c.scale_operand);
  k.y_zero = _mm512_set1_ps(c.y_zero_point);
  k.y_lo = _mm512_set1_ps(c.y_lo);
  k.y_hi = _mm512_set1_ps(c.y_hi);
  k.skip_offset = _mm512_set1_epi32(c.skip_zero_point + (c.skip_signed ? 128 : 0));
  k.skip_zero = _mm512_set1_epi32(c.skip_zero_point);
  k.skip_flip = _mm_set1_epi8(c.skip_signed ? static_cast<char>(0x80) : 0);
}

// The chain's form as a template argument: bit 0 its linear, bit 1 its Relu, bits 2-3 its scale
// (0 none, 1 multiply, 2 divide), bit 4 its rounding, bit 5 a zero point to subtract, bit 6 a
// float bias to add, bit 7 a destination zero point to add. The operations it leaves out are
// not run (adding a joined bias's 0, or subtracting a zero point of 0 where only the
// destination's was not 0, had been one operation of ~19 per vector for nothing).
constexpr int kLinear = 1, kRelu = 2, kMultiply = 4, kDivide = 8, kRound = 16, kSubtract = 32,
              kBias = 64, kDestinationZero = 128;

// A chain multiplies or divides, not both (ResidualSumChain::Scale): 192 of the 256 bit
// patterns are forms, and only those are compiled, each as two epilogues (flat, for both skip
// types, and per pixel), which the compile time of this file is mostly made of.
constexpr bool is_chain_form(int form) {
  return (form & (kMultiply | kDivide)) != (kMultiply | kDivide);
}
constexpr int kChainForms = 192;

// The index-th form in increasing order of bits (the epilogue tables' order).
constexpr int chain_form_at(size_t index) {
  size_t seen = 0;
  for (int form = 0; form < 256; ++form)
    if (is_chain_form(form) && seen++ == index) return form;
  return -1;
}

static_assert(chain_form_at(kChainForms - 1) == 255 - kMultiply && chain_form_at(kChainForms) < 0);

// A form's place in the epilogue tables.
size_t chain_form_index(int form) {
  size_t index = 0;
  for (int f = 0; f < form; ++f) index += is_chain_form(f);
  return index;
}

int chain_form(const ChainConstants &c, bool add_bias) {
  return (c.linear ? kLinear : 0) | (c.relu ? kRelu : 0) |
         (c.scale == ResidualSumChain::Scale::multiply ? kMultiply : 0) |
         (c.scale == ResidualSumChain::Scale::divide ? kDivide : 0) | (c.round ? kRound : 0) |
         (c.subtract_zero_point ? kSubtract : 0) | (add_bias ? kBias : 0) |
         (c.y_zero_point != 0.f ? kDestinationZero : 0);
}

// Sixteen accumulators and their skips (`sf`: s - its zero point, in float) through the chain
// up to the destination's clamp: requantised to the convolution's own output r as
// requantise_lanes.h does (the rounding as vrndscaleps and the clamp to r's type in float,
// the same values as vcvtps2dq and an integer clamp), then r and s through the chain as
// residual_sum_chain_output computes it, one IEEE operation each in its order.
template <int kForm>
AXSTREAM_NO_CONTRACT AXSTREAM_AVX512_VNNI inline __m512 sum_chain_lanes(const SumLanes &c,
                                                                        __m512i acc, __m512 bias,
                                                                        __m512 scale, __m512 sf) {
  __m512 v = _mm512_cvtepi32_ps(acc);
  if constexpr ((kForm & kBias) != 0) v = _mm512_add_ps(v, bias);
  v = _mm512_roundscale_ps(_mm512_add_ps(_mm512_mul_ps(v, scale), c.conv_zero_add),
                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  v = _mm512_min_ps(_mm512_max_ps(v, c.r_lo), c.r_hi);
  if constexpr ((kForm & kSubtract) != 0) v = _mm512_sub_ps(v, c.conv_zero_sub);
  if constexpr ((kForm & kLinear) != 0) v = _mm512_fmadd_ps(v, c.alpha, c.beta);
  v = _mm512_fmadd_ps(sf, c.sum_scale, v);
  if constexpr ((kForm & kRelu) != 0) v = _mm512_max_ps(v, _mm512_setzero_ps());
  if constexpr ((kForm & kMultiply) != 0) v = _mm512_mul_ps(v, c.scale_operand);
  if constexpr ((kForm & kDivide) != 0) v = _mm512_div_ps(v, c.scale_operand);
  if constexpr ((kForm & kRound) != 0)
    v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  if constexpr ((kForm & kDestinationZero) != 0) v = _mm512_add_ps(v, c.y_zero);
  return v;
}

// Sixteen accumulators to the `mask`ed destination bytes (sum_chain_lanes, clamped to the
// destination's type in float).
template <int kForm>
AXSTREAM_NO_CONTRACT AXSTREAM_AVX512_VNNI inline void sum_epilogue_lanes(
    const SumLanes &c, __m512i acc, __m512 bias, __m512 scale, __mmask16 mask, const uint8_t *skip,
    uint8_t *out) {
  const __m128i s = _mm_xor_si128(_mm_maskz_loadu_epi8(mask, skip), c.skip_flip);
  const __m512 sf = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(s), c.skip_offset));
  __m512 v = sum_chain_lanes<kForm>(c, acc, bias, scale, sf);
  v = _mm512_min_ps(_mm512_max_ps(v, c.y_lo), c.y_hi);
  store_bytes(_mm512_cvtps_epi32(v), mask, out);
}

// A block's accumulators: kPixels pixels' staged source bytes (`cin` apart) times the weights,
// from the initial values (`init`, every third vector), stored kPixels x kVectors at
// `out` (pixels `out_stride` int32 apart). Not inlined: as a function of its own GCC keeps the
// accumulators in registers across the quad loop; inlined into the block loop it copied each
// of them around every iteration (a register move per vpdpbusd, 1.6x slower).
template <int kVectors, int kPixels, bool kHalfLast>
AXSTREAM_AVX512_VNNI __attribute__((noinline)) void dot_block(const uint8_t *staged, int64_t cin,
                                                              int64_t quads, const __m512i *w,
                                                              const __m512i *init, int32_t *out,
                                                              int64_t out_stride) {
  // kHalfLast: the last vector's used lanes are 8 at most, so its products run at 256 bits
  // (half the work on Zen 4's 256-bit units; lanes 8-15 are left unwritten).
  constexpr int kWhole = kHalfLast ? kVectors - 1 : kVectors;
  __m512i acc[kPixels][kVectors];
  __m256i half[kPixels];
#pragma GCC unroll 12
  for (int q = 0; q < kPixels; ++q) {
#pragma GCC unroll 6
    for (int v = 0; v < kWhole; ++v) acc[q][v] = _mm512_load_si512(init + 3 * v);
    if constexpr (kHalfLast)
      half[q] = _mm512_castsi512_si256(_mm512_load_si512(init + 3 * (kVectors - 1)));
  }
  for (int64_t quad = 0; quad < quads; ++quad) {
    __m512i wq[kVectors];
#pragma GCC unroll 6
    for (int v = 0; v < kWhole; ++v) wq[v] = _mm512_load_si512(w + quad * kVectors + v);
    const __m256i wh = kHalfLast ? _mm256_load_si256(reinterpret_cast<const __m256i *>(
                                       w + quad * kVectors + kVectors - 1))
                                 : _mm256_setzero_si256();
    const uint8_t *at = staged + 4 * quad;
#pragma GCC unroll 12
    for (int q = 0; q < kPixels; ++q) {
      int32_t four;
      std::memcpy(&four, at + q * cin, 4);
      const __m512i x = _mm512_set1_epi32(four);
#pragma GCC unroll 6
      for (int v = 0; v < kWhole; ++v) acc[q][v] = _mm512_dpbusd_epi32(acc[q][v], x, wq[v]);
      if constexpr (kHalfLast)
        half[q] = _mm256_dpbusd_epi32(half[q], _mm512_castsi512_si256(x), wh);
    }
  }
  // In order: where out_stride is cout, a part-used last vector is overwritten by the next
  // pixel's first.
#pragma GCC unroll 12
  for (int q = 0; q < kPixels; ++q) {
#pragma GCC unroll 6
    for (int v = 0; v < kWhole; ++v) _mm512_storeu_si512(out + q * out_stride + 16 * v, acc[q][v]);
    if constexpr (kHalfLast)
      _mm256_storeu_si256(reinterpret_cast<__m256i *>(out + q * out_stride + 16 * (kVectors - 1)),
                          half[q]);
  }
}

// The requantisation of 16 accumulators with the constants `bias` and `scale` to output bytes
// (requantise_lanes.h; the `mask`ed lanes stored at `out`).
AXSTREAM_NO_CONTRACT AXSTREAM_AVX512_VNNI inline void epilogue_lanes(const Plan &p, __m512i acc,
                                                                     __m512 bias, __m512 scale,
                                                                     __mmask16 mask, uint8_t *out) {
  __m512i y = requantise_lanes(p.rq, acc, bias, scale);
  y = _mm512_min_epi32(_mm512_max_epi32(y, _mm512_set1_epi32(p.lower)), _mm512_set1_epi32(p.upper));
  store_bytes(y, mask, out);
}

// One vector of a block's epilogue: its output bytes at `out + at`, with the sum's chain (form
// kForm, the skip's bytes at `skip + at`) or without a sum (kForm -1). (A function, not a lambda
// in epilogue_block: clang gives a lambda none of its function's target features.)
template <int kForm>
AXSTREAM_NO_CONTRACT AXSTREAM_AVX512_VNNI inline void block_lanes(
    const Plan &p, const SumLanes &sum, __m512i acc, __m512 bias, __m512 scale, __mmask16 mask,
    const uint8_t *skip, uint8_t *out, int64_t at) {
  if constexpr (kForm >= 0)
    sum_epilogue_lanes<kForm>(sum, acc, bias, scale, mask, skip + at, out + at);
  else
    epilogue_lanes(p, acc, bias, scale, mask, out + at);
}

// Four vectors of 16 int32 values to their 64 bytes in order, saturated to the destination's
// type (`y_signed` or not; the same bytes as a clamp to it and vpmovdb): the packs interleave
// them by 128-bit lanes (lane l: 4 values of each vector in turn), one permutation of dwords
// puts them back in order. One store of 64 bytes where vpmovdb stored 16 at a time.
AXSTREAM_AVX512_VNNI inline __m512i pack_bytes(bool y_signed, const __m512i *y) {
  const __m512i low = _mm512_packs_epi32(y[0], y[1]), high = _mm512_packs_epi32(y[2], y[3]);
  const __m512i bytes = y_signed ? _mm512_packs_epi16(low, high) : _mm512_packus_epi16(low, high);
  return _mm512_permutexvar_epi32(
      _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15), bytes);
}

// Without a sum, the flat epilogue's form as -1 - (bit 0: a float bias to add, bit 1: a clamp
// to the activation's bounds, bits 2-3: the count of zero points added in float), so that
// neither a test of either flag nor a loop over the additions runs per vector (they took about
// as long as the requantisation's four operations).
constexpr int kPlainBias = 1, kPlainClamps = 2, kPlainForms = 16;

int plain_form(const RequantiseSteps &rq) {
  return (rq.add_bias ? kPlainBias : 0) | (rq.clamps ? kPlainClamps : 0) |
         (static_cast<int>(rq.adds.size()) << 2);
}

// The constants of a flat epilogue without a sum, in registers for a block.
struct PlainLanes {
  __m512 adds[3];
  __m512i lower, upper;  // the activation's bounds as int32 values of the output type
};

// One vector of the flat epilogue as int32 values for pack_bytes, which saturates them to the
// destination's type: without a sum (kForm < 0, plain_form) requantised as requantise_lanes
// does and clamped to the activation's bounds where it has any; with one the chain's
// value clamped only from above in float (vcvtps2dq could not give the lower bound's bytes
// from above it: a value beyond int32 becomes INT32_MIN, which saturates to the lower bound
// as the clamp would). The skip's 16 bytes (kMasked: the `mask`ed ones) widened as their own
// type (kSkipSigned), one operation fewer than the flip to uint8.
template <int kForm, bool kSkipSigned, bool kMasked>
AXSTREAM_NO_CONTRACT AXSTREAM_AVX512_VNNI inline __m512i flat_lanes(const SumLanes &c,
                                                                    const PlainLanes &plain,
                                                                    __m512i acc, __m512 bias,
                                                                    __m512 scale, __mmask16 mask,
                                                                    const uint8_t *skip) {
  if constexpr (kForm < 0) {
    constexpr int kPlain = -1 - kForm, kAdds = kPlain >> 2;
    __m512 f = _mm512_cvtepi32_ps(acc);
    if constexpr ((kPlain & kPlainBias) != 0) f = _mm512_add_ps(f, bias);
    f = _mm512_mul_ps(f, scale);
    if constexpr (kAdds > 0) f = _mm512_add_ps(f, plain.adds[0]);
    if constexpr (kAdds > 1) f = _mm512_add_ps(f, plain.adds[1]);
    if constexpr (kAdds > 2) f = _mm512_add_ps(f, plain.adds[2]);
    const __m512i y = _mm512_cvtps_epi32(f);
    if constexpr ((kPlain & kPlainClamps) != 0)
      return _mm512_min_epi32(_mm512_max_epi32(y, plain.lower), plain.upper);
    return y;
  } else {
    const __m128i s = kMasked ? _mm_maskz_loadu_epi8(mask, skip)
                              : _mm_loadu_si128(reinterpret_cast<const __m128i *>(skip));
    const __m512i wide = kSkipSigned ? _mm512_cvtepi8_epi32(s) : _mm512_cvtepu8_epi32(s);
    const __m512 sf = _mm512_cvtepi32_ps(_mm512_sub_epi32(wide, c.skip_zero));
    return _mm512_cvtps_epi32(
        _mm512_min_ps(sum_chain_lanes<kForm>(c, acc, bias, scale, sf), c.y_hi));
  }
}

// The flat epilogue of a block: its count x cout outputs as vectors of 16 channels in the
// pattern repeating every `phases` vectors, four vectors (64 bytes) per store, the last store
// masked to the outputs.
template <int kForm, bool kSkipSigned>
AXSTREAM_NO_CONTRACT AXSTREAM_AVX512_VNNI inline void flat_block(const Plan &p, const SumLanes &c,
                                                                 const int32_t *block,
                                                                 int64_t count, const uint8_t *skip,
                                                                 uint8_t *out) {
  const int64_t outputs = count * p.cout, phases = p.phases;
  const auto *phase = reinterpret_cast<const __m512 *>(p.table.data() + p.phases_at);
  const bool y_signed = kForm >= 0 ? p.chain.y_lo < 0.f : p.rq.dst_signed;
  PlainLanes plain;
  for (size_t i = 0; i < 3; ++i)
    plain.adds[i] = _mm512_set1_ps(i < p.rq.adds.size() ? p.rq.adds[i] : 0.f);
  plain.lower = _mm512_set1_epi32(p.lower);
  plain.upper = _mm512_set1_epi32(p.upper);
  int64_t f = 0, ph = 0;
  for (; outputs - 16 * f >= 64; f += 4) {
    __m512i y[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      y[j] = flat_lanes<kForm, kSkipSigned, false>(
          c, plain, _mm512_load_si512(block + 16 * (f + j)), phase[2 * ph], phase[2 * ph + 1],
          0xffff, kForm >= 0 ? skip + 16 * (f + j) : nullptr);
      if (++ph == phases) ph = 0;
    }
    _mm512_storeu_si512(out + 16 * f, pack_bytes(y_signed, y));
  }
  const int64_t left = outputs - 16 * f;  // 0 to 63
  if (left == 0) return;
  __m512i y[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                  _mm512_setzero_si512()};
  for (int j = 0; 16 * j < left; ++j) {
    const int64_t lanes = std::min<int64_t>(16, left - 16 * j);
    const __mmask16 mask = static_cast<__mmask16>((1u << lanes) - 1);
    y[j] = flat_lanes<kForm, kSkipSigned, true>(c, plain, _mm512_load_si512(block + 16 * (f + j)),
                                                phase[2 * ph], phase[2 * ph + 1], mask,
                                                kForm >= 0 ? skip + 16 * (f + j) : nullptr);
    if (++ph == phases) ph = 0;
  }
  _mm512_mask_storeu_epi8(out + 16 * f, (__mmask64{1} << left) - 1, pack_bytes(y_signed, y));
}

// The epilogue of a block of `count` pixels whose accumulators are at `block` (kFlat:
// count x cout int32 in a row, else n_vectors x 16 per pixel), to `out` (the skip's bytes at
// `skip`). kForm: the sum's chain form, or -1 without a sum. kFlat: the outputs as vectors of 16
// channels in a pattern repeating every `phases` vectors, not per pixel and 16 channels (a
// part-used last vector per pixel).
template <int kForm, bool kFlat>
AXSTREAM_NO_CONTRACT AXSTREAM_AVX512_VNNI __attribute__((noinline)) void epilogue_block(
    const Plan &p, const int32_t *block, int64_t count, const uint8_t *skip, uint8_t *out) {
  // A copy the stores (bytes, which may alias anything) cannot change: it stays in registers.
  const SumLanes sum = p.sum;
  if constexpr (kFlat) {
    if (kForm >= 0 && p.chain.skip_signed)
      flat_block<kForm, true>(p, sum, block, count, skip, out);
    else
      flat_block<kForm, false>(p, sum, block, count, skip, out);
  } else {
    const int64_t cout = p.cout;
    const auto *k = reinterpret_cast<const __m512i *>(p.table.data() + p.constants_at);
    const int n = p.n_vectors;
    const int last_lanes = static_cast<int>(cout - 16 * (n - 1));  // 1 to 16
    const __mmask16 last_mask = static_cast<__mmask16>((1u << last_lanes) - 1);
    for (int64_t q = 0; q < count; ++q)
      for (int v = 0; v < n; ++v)
        block_lanes<kForm>(p, sum, _mm512_load_si512(block + 16 * (q * n + v)),
                           _mm512_castsi512_ps(k[3 * v + 1]), _mm512_castsi512_ps(k[3 * v + 2]),
                           v + 1 < n ? __mmask16(0xffff) : last_mask, skip, out, q * cout + 16 * v);
  }
}

using EpilogueFn = void (*)(const Plan &, const int32_t *, int64_t, const uint8_t *, uint8_t *);

template <bool kFlat, size_t... kIndices>
constexpr std::array<EpilogueFn, sizeof...(kIndices)> sum_epilogues(
    std::index_sequence<kIndices...>) {
  return {epilogue_block<chain_form_at(kIndices), kFlat>...};
}

template <size_t... kPlains>
constexpr std::array<EpilogueFn, sizeof...(kPlains)> plain_epilogues(
    std::index_sequence<kPlains...>) {
  return {epilogue_block<-1 - static_cast<int>(kPlains), true>...};
}

EpilogueFn epilogue_fn(const Plan &p) {
  static constexpr auto flat = sum_epilogues<true>(std::make_index_sequence<kChainForms>());
  static constexpr auto pixels = sum_epilogues<false>(std::make_index_sequence<kChainForms>());
  static constexpr auto plain = plain_epilogues(std::make_index_sequence<kPlainForms>());
  if (!p.has_sum)
    return p.flat ? plain[static_cast<size_t>(plain_form(p.rq))] : epilogue_block<-1, false>;
  const size_t index = chain_form_index(chain_form(p.chain, p.rq.add_bias));
  return p.flat ? flat[index] : pixels[index];
}

// Pixels [begin, end) (of batch x height x width), kPixels at a time. kFlat: the block's
// accumulators are stored count x cout in a row (kPixels a multiple of the flat pattern's
// pixels), else kVectors x 16 per pixel.
template <int kVectors, int kPixels, bool kFlat>
AXSTREAM_AVX512_VNNI void run_pixels(const Plan &p, const uint8_t *src, const uint8_t *skip,
                                     uint8_t *dst, int64_t begin, int64_t end) {
  static_assert(kVectors * kPixels <= 24, "accumulators in registers");
  alignas(64) uint8_t staged[kMaxPixels * kMaxInChannels + 128];
  alignas(64) int32_t block[kPixels * kVectors * 16 + 16] = {};  // lanes past the outputs: 0
  std::memset(staged, 0, sizeof staged);
  const __m512i flip = _mm512_set1_epi8(p.src_signed ? static_cast<char>(0x80) : 0);
  const auto *w = reinterpret_cast<const __m512i *>(p.table.data());
  const auto *k = reinterpret_cast<const __m512i *>(p.table.data() + p.constants_at);
  const int64_t cin = p.cin, cout = p.cout, stride = kFlat ? cout : 16 * kVectors;
  const bool half_last = p.cout - 16 * (kVectors - 1) <= 8;
  for (int64_t i = begin; i < end; i += kPixels) {
    const int64_t count = std::min<int64_t>(kPixels, end - i);
    // Stage the block's source bytes (flipped to uint8); past them, what earlier blocks left,
    // which only weights of 0 (past the channels) or pixels not stored read.
    const uint8_t *from = src + i * cin;
    const int64_t bytes = count * cin;
    for (int64_t at = 0; at < bytes; at += 64) {
      const int64_t n = std::min<int64_t>(64, bytes - at);
      const __mmask64 m = n == 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
      const __m512i v = _mm512_maskz_loadu_epi8(m, from + at);
      _mm512_store_si512(reinterpret_cast<__m512i *>(staged + at), _mm512_xor_si512(v, flip));
    }
    if (half_last)
      dot_block<kVectors, kPixels, true>(staged, cin, p.quads, w, k, block, stride);
    else
      dot_block<kVectors, kPixels, false>(staged, cin, p.quads, w, k, block, stride);
    p.epilogue(p, block, count, skip ? skip + i * cout : nullptr, dst + i * cout);
  }
}

using PixelsFn = void (*)(const Plan &, const uint8_t *, const uint8_t *, uint8_t *, int64_t,
                          int64_t);

// Pixels per block for 1 to 6 output vectors: as many accumulators as registers allow.
constexpr int kBlockPixels[kMaxVectors + 1] = {0, 12, 8, 8, 4, 4, 4};

template <bool kFlat>
PixelsFn pixels_fn(int n_vectors) {
  switch (n_vectors) {
    case 1:
      return run_pixels<1, kBlockPixels[1], kFlat>;
    case 2:
      return run_pixels<2, kBlockPixels[2], kFlat>;
    case 3:
      return run_pixels<3, kBlockPixels[3], kFlat>;
    case 4:
      return run_pixels<4, kBlockPixels[4], kFlat>;
    case 5:
      return run_pixels<5, kBlockPixels[5], kFlat>;
    default:
      return run_pixels<6, kBlockPixels[6], kFlat>;
  }
}

PixelsFn pixels_fn(const Plan &p) {
  return p.flat ? pixels_fn<true>(p.n_vectors) : pixels_fn<false>(p.n_vectors);
}

ChainConstants chain_constants(const ResidualSumParams &p, const ResidualSumChain &c) {
  ChainConstants k;
  k.subtract_zero_point = c.subtract_zero_point;
  k.linear = c.linear;
  k.relu = c.relu;
  k.round = c.round;
  k.scale = c.scale;
  k.conv_zero_point = static_cast<float>(p.conv_zero_point);
  k.alpha = c.alpha;
  k.beta = c.beta;
  k.sum_scale = c.sum_scale;
  k.scale_operand = c.scale_operand;
  k.skip_zero_point = p.skip_zero_point;
  k.skip_signed = p.skip_dtype == DType::i8;
  k.y_zero_point = static_cast<float>(p.y_zero_point);
  k.y_lo = p.y_dtype == DType::u8 ? 0.f : -128.f;
  k.y_hi = p.y_dtype == DType::u8 ? 255.f : 127.f;
  return k;
}

bool refuse(std::string *why_not, const std::string &why) {
  if (why_not) *why_not = why;
  return false;
}

bool int8_or_uint8(DType t) { return t == DType::i8 || t == DType::u8; }

bool check(const PointwiseInt8Params &d, const Tensor &w, std::string *why_not) {
  if (d.kernel_h != 1 || d.kernel_w != 1 || d.stride_h != 1 || d.stride_w != 1 || d.pad_top != 0 ||
      d.pad_left != 0 || d.out_h != d.in_h || d.out_w != d.in_w)
    return refuse(why_not, "not a 1x1 kernel at stride 1 without padding");
  if (d.in_channels < 1 || d.in_channels > kMaxInChannels)
    return refuse(why_not, "over 512 input channels");
  if (d.out_channels < 1 || d.out_channels > 16 * kMaxVectors)
    return refuse(why_not, "over 96 output channels");
  if (!int8_or_uint8(d.src_dtype) || !int8_or_uint8(d.dst_dtype) ||
      (d.has_sum && (!int8_or_uint8(d.sum.skip_dtype) || !int8_or_uint8(d.sum.y_dtype) ||
                     d.sum.conv_dtype != d.dst_dtype)))
    return refuse(why_not, "activations not int8 or uint8");
  // With a sum, the convolution's own output adds at most its zero point (sum_lanes).
  if (d.has_sum && d.rounds_as_int8_zero_point != 0)
    return refuse(why_not, "a residual sum into a retyped output");
  if (w.dtype != DType::i8 || w.count() != d.out_channels * d.in_channels)
    return refuse(why_not, "weights not int8 (out, in, 1, 1)");
  if (static_cast<int64_t>(d.output_scales.size()) != d.out_channels ||
      static_cast<int64_t>(d.bias_acc.size()) != d.out_channels)
    return refuse(why_not, "per-channel constants of another size");
  if (d.batch < 1 || d.in_h < 1 || d.in_w < 1) return refuse(why_not, "an empty input");
  if (!scaled_accumulators_fit(w.data<int8_t>(), d.out_channels, d.in_channels, d.bias_acc,
                               d.output_scales))
    return refuse(why_not, "a scaled accumulator could leave int32");
  return true;
}

Plan make_plan(const PointwiseInt8Params &d, const Tensor &w) {
  Plan p;
  p.pixels = d.batch * d.in_h * d.in_w;
  p.cin = d.in_channels;
  p.cout = d.out_channels;
  p.quads = (p.cin + 3) / 4;
  p.n_vectors = static_cast<int>((p.cout + 15) / 16);
  p.src_signed = d.src_dtype == DType::i8;
  const int8_t *wd = w.data<int8_t>();
  p.rq = requantise_steps(d.dst_dtype == DType::i8, d.dst_zero_point, d.rounds_as_int8_zero_point,
                          d.act_lo, d.act_hi);
  p.rq.add_bias = !bias_joins_accumulators(wd, p.cout, p.cin, d.bias_acc);
  p.lower = p.rq.dst_signed ? static_cast<int8_t>(p.rq.lower) : p.rq.lower;
  p.upper = p.rq.dst_signed ? static_cast<int8_t>(p.rq.upper) : p.rq.upper;
  const size_t w_vectors = static_cast<size_t>(p.quads * p.n_vectors);
  p.constants_at = w_vectors;
  p.table.assign(w_vectors + static_cast<size_t>(3 * p.n_vectors), Vector{});
  // Weight vector (quad, v), lane j, byte i: output channel 16v + j, input channel 4 quad + i.
  for (int64_t quad = 0; quad < p.quads; ++quad)
    for (int v = 0; v < p.n_vectors; ++v)
      for (int j = 0; j < 16; ++j)
        for (int i = 0; i < 4; ++i) {
          const int64_t oc = 16 * v + j, ci = 4 * quad + i;
          if (oc < p.cout && ci < p.cin)
            p.table[static_cast<size_t>(quad * p.n_vectors + v)].bytes[4 * j + i] =
                static_cast<uint8_t>(wd[oc * p.cin + ci]);
        }
  // The flip to uint8 adds 128 to every source byte: its products leave with the zero point's.
  const int32_t zero = d.src_zero_point + (p.src_signed ? 128 : 0);
  for (int64_t oc = 0; oc < p.cout; ++oc) {
    int32_t sum = 0;
    for (int64_t i = 0; i < p.cin; ++i) sum += wd[oc * p.cin + i];
    const int32_t init = -zero * sum + (p.rq.add_bias ? 0 : static_cast<int32_t>(d.bias_acc[oc]));
    const float bias = p.rq.add_bias ? d.bias_acc[oc] : 0.f, scale = d.output_scales[oc];
    const size_t at = p.constants_at + static_cast<size_t>(3 * (oc / 16));
    const size_t lane = static_cast<size_t>(oc % 16) * 4;
    std::memcpy(p.table[at].bytes + lane, &init, 4);
    std::memcpy(p.table[at + 1].bytes + lane, &bias, 4);
    std::memcpy(p.table[at + 2].bytes + lane, &scale, 4);
  }
  // The flat epilogue: its channel pattern repeats every lcm(cout, 16) outputs, which a block
  // must hold whole (so every block starts it afresh). A whole multiple of 16 channels takes it
  // too: its one loop ran BlazeFace's 28->32, 42->48 and 48->48 5-10% faster than the loop per
  // pixel and vector.
  const int64_t pattern = std::lcm<int64_t>(p.cout, 16);
  p.phases = pattern / 16;
  p.flat = kBlockPixels[p.n_vectors] * p.cout % pattern == 0;
  p.phases_at = p.table.size();
  p.table.resize(p.table.size() + static_cast<size_t>(2 * p.phases));
  for (int64_t ph = 0; ph < p.phases; ++ph)
    for (int j = 0; j < 16; ++j) {
      const int64_t oc = (16 * ph + j) % p.cout;
      const float bias = p.rq.add_bias ? d.bias_acc[oc] : 0.f, scale = d.output_scales[oc];
      std::memcpy(p.table[p.phases_at + static_cast<size_t>(2 * ph)].bytes + 4 * j, &bias, 4);
      std::memcpy(p.table[p.phases_at + static_cast<size_t>(2 * ph + 1)].bytes + 4 * j, &scale, 4);
    }
  p.has_sum = d.has_sum;
  if (d.has_sum) {
    p.chain = chain_constants(d.sum, d.chain);
    fill_sum_lanes(p.chain, p.rq.adds.empty() ? 0.f : p.rq.adds[0], p.lower, p.upper, &p.sum);
  }
  p.epilogue = epilogue_fn(p);
  return p;
}

}  // namespace

std::vector<int32_t> pointwise_sum_chain_outputs(const ResidualSumParams &p,
                                                 const ResidualSumChain &chain, bool flat) {
  if (!own_pointwise_available()) return {};
  // The kernel's epilogue over 4096 "pixels" of 16 channels: r (major) as its accumulator at
  // scale 1 without a bias, the 256 skip bytes (minor) repeating every 16 pixels.
  Plan plan;
  plan.cout = 16;
  plan.n_vectors = 1;
  plan.phases = 1;
  plan.flat = flat;
  plan.has_sum = true;
  plan.chain = chain_constants(p, chain);
  Vector bias_0{}, scale_1{};
  for (int j = 0; j < 16; ++j) {
    const float zero = 0.f, one = 1.f;
    std::memcpy(bias_0.bytes + 4 * j, &zero, 4);
    std::memcpy(scale_1.bytes + 4 * j, &one, 4);
  }
  plan.constants_at = 0;  // initial values (unused), biases, scales
  plan.phases_at = 3;     // biases, scales
  plan.table = {Vector{}, bias_0, scale_1, bias_0, scale_1};
  const int32_t r_lo = p.conv_dtype == DType::u8 ? 0 : -128, r_hi = r_lo + 255;
  fill_sum_lanes(plan.chain, 0.f, r_lo, r_hi, &plan.sum);
  plan.rq.add_bias = false;
  plan.epilogue = epilogue_fn(plan);
  std::vector<Vector> accumulators(4096);  // 65536 int32, aligned for the epilogue's loads
  auto *acc = reinterpret_cast<int32_t *>(accumulators.data());
  std::vector<uint8_t> skip(65536), y(65536);
  for (int i = 0; i < 65536; ++i) {
    const int r = i >> 8;
    acc[i] = p.conv_dtype == DType::u8 ? r : static_cast<int8_t>(static_cast<uint8_t>(r));
    skip[static_cast<size_t>(i)] = static_cast<uint8_t>(i);
  }
  plan.epilogue(plan, acc, 65536 / 16, skip.data(), y.data());
  std::vector<int32_t> out(65536);
  const bool y_signed = plan.chain.y_lo < 0.f;
  for (size_t i = 0; i < out.size(); ++i) out[i] = y_signed ? static_cast<int8_t>(y[i]) : y[i];
  return out;
}

std::unique_ptr<Kernel> make_pointwise_int8(const PointwiseInt8Params &d, const Tensor &weights,
                                            std::string *why_not) {
  if (!own_pointwise_available()) {
    refuse(why_not, "no AVX-512 VNNI here");
    return nullptr;
  }
  if (!check(d, weights, why_not)) return nullptr;
  auto plan = std::make_shared<const Plan>(make_plan(d, weights));
  const PixelsFn fn = pixels_fn(*plan);
  const int64_t pixels = plan->pixels;
  const uint64_t macs = static_cast<uint64_t>(pixels * d.in_channels * d.out_channels);
  const int threads = std::max(1, omp_get_max_threads());
  constexpr int kSkipInput = 9;  // qconv.cc's slot of the residual
  const int64_t block = kBlockPixels[plan->n_vectors];
  auto k = make_kernel([plan, fn, pixels, block, macs, threads](
                           ExecContext &, const void *const *in, void *const *out) {
    const auto *src = static_cast<const uint8_t *>(in[0]);
    const auto *skip = plan->has_sum ? static_cast<const uint8_t *>(in[kSkipInput]) : nullptr;
    auto *dst = static_cast<uint8_t *>(out[0]);
    // Whole blocks per thread: the flat epilogue's pattern starts with each block.
    split_own_kernel(pixels, block, macs, threads, [&](int, int64_t begin, int64_t end) {
      fn(*plan, src, skip, dst, begin, end);
    });
  });
  k->macs = macs;
  if (d.has_sum) k->output_may_overwrite_input = kSkipInput;  // each skip byte read, then written
  k->impl = "axstream pointwise int8 1x1 " + std::to_string(d.in_channels) + "->" +
            std::to_string(d.out_channels) + " (AVX-512 VNNI)";
  return k;
}

}  // namespace axstream::engine
