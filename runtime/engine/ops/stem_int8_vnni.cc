#include "stem_int8_vnni.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "../cpu_features.h"
#include "intrinsics.h"
#include "requantise_lanes.h"

namespace axstream::engine {

namespace {

// How it works. The output channels go in lanes: per output pixel one int32 zmm accumulator per
// 16 channels and, for the last 1 to 8, a ymm one (24 channels: a zmm and a ymm, which costs
// Zen 4 half a zmm's vpdpbusd). Source rows are staged once each per thread into a ring of
// kernel_h padded rows: the padding and the bytes past the image as the source zero point, an
// int8 source flipped to uint8 (xor 0x80, its zero point with it) and input channels whose
// weights are all 0 left out (a package's 4th, padding channel: 3 bytes a pixel), so a pixel's
// taps in kernel row ky are kernel_w * c contiguous bytes of a staged row, c the channels kept.
// Those bytes are read 4 at a time, broadcast to every lane (vpbroadcastd) and multiplied by
// vpdpbusd against that quad's weights, packed once at compile time (reduction byte
// 4 * quad + i = kx * c + channel, 0 past the kernel row: BlazeFace's 5x5 over 3 channels is 4
// quads a kernel row, the 16th weight 0). A block of pixels of one output row is computed at a
// time (each quad's weights loaded once for the block), for independent accumulator chains.
// Exactness: the accumulators start at -(zero point [+ 128]) * sum(w) (and an integer bias where
// it joins), so they end as oneDNN's sum((x - zero_point) * w), the padding as the zero point;
// the epilogue is the AMX form's (requantise_lanes.h).

#define AXSTREAM_STEM_VNNI \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,ssse3,bmi,bmi2")))
#define AXSTREAM_STEM_VBMI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vbmi")))

struct alignas(64) Vector {
  uint8_t bytes[64];
};

struct Plan : PlanGeometry {
  int64_t cin = 0, cout = 0;
  std::vector<int> kept;  // the source channels read (some weight not 0), in order
  int64_t c = 0;          // kept.size(): bytes per pixel of a staged row
  int64_t quads = 0;      // (kernel_w * c + 3) / 4: broadcasts per kernel row
  int64_t block = 0;      // pixels per block
  int64_t row_bytes = 0;  // a staged row: every block's windows and a quad's slack, padded
  int groups = 0;         // accumulator vectors per pixel
  uint8_t flip = 0, zero_byte = 0;  // 0x80 for an int8 source; the zero point as staged
  RequantiseSteps rq;
  int32_t lower = 0, upper = 0;  // rq's byte bounds as int32 values of the output type
  Vector adds[kMaxAdds] = {};    // rq.adds (then 0) for requantise_lanes_fixed, 16 lanes each
  // Per 16 bytes of the source (16 / cin pixels), the pshufb control that gathers the kept
  // channels' bytes of those pixels to the front.
  Vector gather;
  int64_t gather_pixels = 0;
  Vector gather_wide;  // the same for 64 bytes (vpermb), where the CPU has AVX-512 VBMI
  bool vbmi = false;
  std::vector<Vector> weights;    // (ky, quad, group): 16 lanes of 4 int8 weights
  std::vector<Vector> constants;  // per group: initial accumulators, biases, scales
  std::vector<uint8_t> zero_row;  // a padding row above or below the image, as staged
};

// Source row `row` (in_w pixels of cin bytes) staged into `to` (row_bytes): pixel x at
// (x + pad_left) * c, the kept channels only, flipped; the zero point elsewhere.
AXSTREAM_STEM_VNNI void stage_row(const Plan &p, const uint8_t *row, uint8_t *to) {
  const int64_t left = p.pad_left * p.c, middle = p.in_w * p.c;
  std::memset(to, p.zero_byte, static_cast<size_t>(left));
  uint8_t *out = to + left;
  const __m128i gather = _mm_load_si128(reinterpret_cast<const __m128i *>(p.gather.bytes));
  const __m128i flip = _mm_set1_epi8(static_cast<char>(p.flip));
  int64_t x = 0;
  // 16 source bytes in, gather_pixels * c out (the rest of the 16-byte store is overwritten by
  // the next step, or by the right padding after the loop).
  for (; x * p.cin + 16 <= p.in_w * p.cin; x += p.gather_pixels) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i *>(row + x * p.cin));
    _mm_storeu_si128(reinterpret_cast<__m128i *>(out + x * p.c),
                     _mm_xor_si128(_mm_shuffle_epi8(v, gather), flip));
  }
  for (; x < p.in_w; ++x)
    for (int64_t k = 0; k < p.c; ++k)
      out[x * p.c + k] =
          static_cast<uint8_t>(row[x * p.cin + p.kept[static_cast<size_t>(k)]] ^ p.flip);
  std::memset(to + left + middle, p.zero_byte, static_cast<size_t>(p.row_bytes - left - middle));
}

// stage_row with vpermb (AVX-512 VBMI): 64 source bytes (64 / cin pixels) per step.
AXSTREAM_STEM_VBMI void stage_row_vbmi(const Plan &p, const uint8_t *row, uint8_t *to) {
  const int64_t left = p.pad_left * p.c, middle = p.in_w * p.c;
  std::memset(to, p.zero_byte, static_cast<size_t>(left));
  uint8_t *out = to + left;
  const __m512i gather = _mm512_load_si512(p.gather_wide.bytes);
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(p.flip));
  const int64_t step = 64 / p.cin;
  int64_t x = 0;
  for (; x * p.cin + 64 <= p.in_w * p.cin; x += step) {
    const __m512i v = _mm512_loadu_si512(row + x * p.cin);
    _mm512_storeu_si512(out + x * p.c, _mm512_xor_si512(_mm512_permutexvar_epi8(gather, v), flip));
  }
  for (; x < p.in_w; ++x)
    for (int64_t k = 0; k < p.c; ++k)
      out[x * p.c + k] =
          static_cast<uint8_t>(row[x * p.cin + p.kept[static_cast<size_t>(k)]] ^ p.flip);
  std::memset(to + left + middle, p.zero_byte, static_cast<size_t>(p.row_bytes - left - middle));
}

// Four lanes' bytes at `at` broadcast to 16 lanes.
AXSTREAM_STEM_VNNI inline __m512i broadcast_quad(const uint8_t *at) {
  int32_t v;
  std::memcpy(&v, at, 4);
  return _mm512_set1_epi32(v);
}

// 16 accumulators to output bytes, stored at `out` (`bytes` of them, 1 to 16).
AXSTREAM_NO_CONTRACT AXSTREAM_STEM_VNNI inline void store_lanes(const Plan &p, __m512i acc,
                                                                const __m512i *k, int bytes,
                                                                uint8_t *out) {
  const auto *adds = reinterpret_cast<const __m512 *>(p.adds);
  __m512i y =
      requantise_lanes_fixed(acc, _mm512_castsi512_ps(k[1]), _mm512_castsi512_ps(k[2]), adds);
  y = _mm512_min_epi32(_mm512_max_epi32(y, _mm512_set1_epi32(p.lower)), _mm512_set1_epi32(p.upper));
  const __m128i b = _mm512_cvtepi32_epi8(y);
  if (bytes == 16)
    _mm_storeu_si128(reinterpret_cast<__m128i *>(out), b);
  else
    _mm_mask_storeu_epi8(out, static_cast<__mmask16>((1u << bytes) - 1), b);
}

// Two pixels' last `bytes` (1 to 8) channels, in lanes 0-7 and 8-15, to output bytes at `out`
// and (if `second`) `out` + cout.
AXSTREAM_NO_CONTRACT AXSTREAM_STEM_VNNI inline void store_pair(const Plan &p, __m512i acc,
                                                               const __m512i *k, int bytes,
                                                               uint8_t *out, bool second) {
  const auto *adds = reinterpret_cast<const __m512 *>(p.adds);
  __m512i y =
      requantise_lanes_fixed(acc, _mm512_castsi512_ps(k[1]), _mm512_castsi512_ps(k[2]), adds);
  y = _mm512_min_epi32(_mm512_max_epi32(y, _mm512_set1_epi32(p.lower)), _mm512_set1_epi32(p.upper));
  const __m128i b = _mm512_cvtepi32_epi8(y);
  if (bytes == 8) {
    _mm_storel_epi64(reinterpret_cast<__m128i *>(out), b);
    if (second)
      _mm_storel_epi64(reinterpret_cast<__m128i *>(out + p.cout), _mm_unpackhi_epi64(b, b));
  } else {
    const auto mask = static_cast<__mmask16>((1u << bytes) - 1);
    _mm_mask_storeu_epi8(out, mask, b);
    if (second) _mm_mask_storeu_epi8(out + p.cout - 8, static_cast<__mmask16>(mask << 8), b);
  }
}

// Two pixels of 24 channels to their 48 output bytes at `out` (only the first's 24 unless
// `second`): `first` and `next` their channels 0-15, `both` their channels 16-23 (lanes 0-7 and
// 8-15), `k` the first group's constants and `paired` the doubled last group's. The saturating
// packs narrow the three to bytes (the type's bounds, as the clamp to them and vpmovdb give), by
// 128-bit lanes: dword 4l of `first`'s lanes 4l..4l+3, 4l + 1 `next`'s, 4l + 2 `both`'s; one
// dword permutation puts them in output order and one masked store writes them, where the
// per-vector epilogue (store_lanes, store_pair) clamped, narrowed and stored each vector.
template <int kForm, bool kSigned>
AXSTREAM_NO_CONTRACT AXSTREAM_STEM_VNNI inline void store_pair_24(const Plan &p, __m512i first,
                                                                  __m512i next, __m512i both,
                                                                  const __m512i *k,
                                                                  const __m512i *paired,
                                                                  bool second, uint8_t *out) {
  const auto *adds = reinterpret_cast<const __m512 *>(p.adds);
  const __m512 bias[3] = {_mm512_castsi512_ps(k[1]), _mm512_castsi512_ps(k[1]),
                          _mm512_castsi512_ps(paired[1])};
  const __m512 scale[3] = {_mm512_castsi512_ps(k[2]), _mm512_castsi512_ps(k[2]),
                           _mm512_castsi512_ps(paired[2])};
  const __m512i acc[3] = {first, next, both};
  __m512i y[3];
  requantise_lanes_form<kForm, 3>(acc, bias, scale, adds, y);
  __m512i bytes = pack_bytes<kSigned>(p.rq, y[0], y[1], y[2], y[2]);
  bytes = _mm512_permutexvar_epi32(
      _mm512_setr_epi32(0, 4, 8, 12, 2, 6, 1, 5, 9, 13, 10, 14, 3, 7, 11, 15), bytes);
  _mm512_mask_storeu_epi32(out, static_cast<__mmask16>(second ? 0x0fff : 0x003f), bytes);
}

// Output pixels [ox, ox + count) of one output row (count <= kN) to `out`, their kernel rows'
// staged source rows at `rows`: kZ zmm accumulators per pixel, and a ymm one if kY. kForm -1:
// each vector's epilogue by itself (store_lanes, store_pair); else 24 channels (kZ 1, kY) in
// the epilogue form kForm, two pixels at a time (store_pair_24).
template <int kZ, bool kY, int kN, int kForm, bool kSigned>
AXSTREAM_NO_CONTRACT AXSTREAM_STEM_VNNI void run_block(const Plan &p, const uint8_t *const *rows,
                                                       int64_t ox, int64_t count, uint8_t *out) {
  constexpr int kG = kZ + (kY ? 1 : 0);
  constexpr int kZA = kZ > 0 ? kZ : 1;
  const auto *w = reinterpret_cast<const __m512i *>(p.weights.data());
  const auto *k = reinterpret_cast<const __m512i *>(p.constants.data());
  __m512i acc[kN][kZA];
  __m256i acc_y[kN];
  for (int n = 0; n < kN; ++n) {
    for (int z = 0; z < kZ; ++z) acc[n][z] = k[3 * z];
    if constexpr (kY) acc_y[n] = _mm512_castsi512_si256(k[3 * kZ]);
  }
  const int64_t ps = p.sw * p.c;
  for (int64_t ky = 0; ky < p.kh; ++ky) {
    const uint8_t *s = rows[ky] + ox * ps;
    const __m512i *wk = w + ky * p.quads * kG;
    for (int64_t q = 0; q < p.quads; ++q, s += 4, wk += kG) {
      __m512i wz[kZA];
      for (int z = 0; z < kZ; ++z) wz[z] = _mm512_load_si512(wk + z);
      __m256i wy = _mm256_setzero_si256();
      if constexpr (kY) wy = _mm256_load_si256(reinterpret_cast<const __m256i *>(wk + kZ));
#pragma GCC unroll 16
      for (int n = 0; n < kN; ++n) {
        const __m512i b = broadcast_quad(s + n * ps);
        for (int z = 0; z < kZ; ++z) acc[n][z] = _mm512_dpbusd_epi32(acc[n][z], b, wz[z]);
        if constexpr (kY) acc_y[n] = _mm256_dpbusd_epi32(acc_y[n], _mm512_castsi512_si256(b), wy);
      }
    }
  }
  if constexpr (kForm >= 0) {
    static_assert(kZ == 1 && kY, "the packed epilogue is for 24 channels");
    const __m512i *paired = k + 3 * kG;
#pragma GCC unroll 16
    for (int n = 0; n < kN; n += 2) {
      if (n >= count) break;
      const bool second = n + 1 < count;
      const int m = n + 1 < kN ? n + 1 : n;
      const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(acc_y[n]), acc_y[m], 1);
      store_pair_24<kForm, kSigned>(p, acc[n][0], acc[m][0], both, k, paired, second,
                                    out + n * p.cout);
    }
    return;
  }
  const int last = static_cast<int>(p.cout - 16 * (kG - 1));  // the last group's channels
#pragma GCC unroll 16
  for (int n = 0; n < kN; ++n) {
    if (n >= count) break;
    uint8_t *o = out + n * p.cout;
    for (int z = 0; z < kZ; ++z)
      store_lanes(p, acc[n][z], k + 3 * z, z + 1 < kG ? 16 : last, o + 16 * z);
  }
  if constexpr (kY) {
    // Two pixels' last 1 to 8 channels in one vector (the constants doubled: `paired`).
    const __m512i *paired = k + 3 * kG;
#pragma GCC unroll 16
    for (int n = 0; n < kN; n += 2) {
      if (n >= count) break;
      const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(acc_y[n]),
                                              n + 1 < kN ? acc_y[n + 1] : acc_y[n], 1);
      store_pair(p, both, paired, last, out + n * p.cout + 16 * kZ, n + 1 < count);
    }
  }
}

// Output rows [begin, end) of batch x out_h.
template <int kZ, bool kY, int kN, int kForm = -1, bool kSigned = false>
AXSTREAM_STEM_VNNI void run_rows(const Plan &p, const uint8_t *src, uint8_t *dst, int64_t begin,
                                 int64_t end) {
  // A ring of kernel_h staged rows, keyed by batch * in_h + iy: one output row's kernel rows
  // are kernel_h consecutive keys, hence in distinct slots.
  std::vector<uint8_t> ring(static_cast<size_t>(p.kh * p.row_bytes));
  std::vector<int64_t> held(static_cast<size_t>(p.kh), -1);
  const uint8_t *rows[16];
  for (int64_t r = begin; r < end; ++r) {
    const int64_t n = r / p.out_h, oy = r % p.out_h;
    for (int64_t ky = 0; ky < p.kh; ++ky) {
      const int64_t iy = oy * p.sh - p.pad_top + ky;
      if (iy < 0 || iy >= p.in_h) {
        rows[ky] = p.zero_row.data();
        continue;
      }
      const int64_t key = n * p.in_h + iy, slot = key % p.kh;
      uint8_t *staged = ring.data() + slot * p.row_bytes;
      if (held[static_cast<size_t>(slot)] != key) {
        if (p.vbmi)
          stage_row_vbmi(p, src + key * p.in_w * p.cin, staged);
        else
          stage_row(p, src + key * p.in_w * p.cin, staged);
        held[static_cast<size_t>(slot)] = key;
      }
      rows[ky] = staged;
    }
    uint8_t *out = dst + r * p.out_w * p.cout;
    for (int64_t ox = 0; ox < p.out_w; ox += kN)
      run_block<kZ, kY, kN, kForm, kSigned>(p, rows, ox, std::min<int64_t>(kN, p.out_w - ox),
                                            out + ox * p.cout);
  }
}

using RowsFn = void (*)(const Plan &, const uint8_t *, uint8_t *, int64_t, int64_t);

// The layout for `cout` channels: zmm groups, a ymm one, pixels per block (accumulators and
// weights within the 32 vector registers, at least 8 chains).
RowsFn rows_fn(int64_t cout, int64_t *block) {
  const int64_t rem = cout % 16;
  const int z = static_cast<int>(cout / 16 + (rem > 8 ? 1 : 0));
  const bool y = rem > 0 && rem <= 8;
#define AXSTREAM_STEM_LAYOUT(kZ, kY, kN) \
  if (z == kZ && y == kY) {              \
    *block = kN;                         \
    return run_rows<kZ, kY, kN>;         \
  }
  AXSTREAM_STEM_LAYOUT(0, true, 12)
  AXSTREAM_STEM_LAYOUT(1, false, 12)
  AXSTREAM_STEM_LAYOUT(1, true, 12)
  AXSTREAM_STEM_LAYOUT(2, false, 8)
  AXSTREAM_STEM_LAYOUT(2, true, 6)
  AXSTREAM_STEM_LAYOUT(3, false, 6)
  AXSTREAM_STEM_LAYOUT(3, true, 5)
#undef AXSTREAM_STEM_LAYOUT
  *block = 5;
  return run_rows<4, false, 5>;
}

// The 24-channel layout (a zmm and a ymm per pixel, blocks of 12) with the packed epilogue of
// form `form` (requantise_form) into a signed or unsigned output.
template <int kForm = 0>
RowsFn packed_24_fn(int form, bool dst_signed) {
  if constexpr (kForm + 1 < kRequantiseForms)
    if (form != kForm) return packed_24_fn<kForm + 1>(form, dst_signed);
  return dst_signed ? run_rows<1, true, 12, kForm, true> : run_rows<1, true, 12, kForm, false>;
}

Plan make_plan(const StemInt8Params &d, const Tensor &w, int64_t block) {
  Plan p;
  static_cast<PlanGeometry &>(p) = plan_geometry(d);
  p.cin = d.in_channels;
  p.cout = d.out_channels;
  const int8_t *wd = w.data<int8_t>();
  const int64_t taps = p.kh * p.kw, per_channel = p.cin * taps;
  for (int ci = 0; ci < p.cin; ++ci) {
    bool used = false;
    for (int64_t oc = 0; oc < p.cout && !used; ++oc)
      for (int64_t t = 0; t < taps && !used; ++t) used = wd[(oc * p.cin + ci) * taps + t] != 0;
    if (used) p.kept.push_back(ci);
  }
  if (p.kept.empty()) p.kept.push_back(0);
  p.c = static_cast<int64_t>(p.kept.size());
  p.quads = (p.kw * p.c + 3) / 4;
  p.block = block;
  const int64_t blocks = (p.out_w + block - 1) / block;
  // Pixels a staged row holds: every block's windows (the last block's past out_w too), and the
  // left padding; bytes: those, a quad's overrun, and the gathering stores' 16.
  const int64_t pixels = std::max((blocks * block - 1) * p.sw + p.kw, p.pad_left + p.in_w);
  p.row_bytes = (pixels * p.c + 4 + 16 + 63) / 64 * 64;
  p.flip = d.src_dtype == DType::i8 ? 0x80 : 0;
  p.zero_byte = static_cast<uint8_t>(static_cast<uint8_t>(d.src_zero_point) ^ p.flip);
  const int32_t zero = static_cast<int32_t>(p.zero_byte);
  p.zero_row.assign(static_cast<size_t>(p.row_bytes), p.zero_byte);
  p.gather_pixels = 16 / p.cin;
  for (int i = 0; i < 16; ++i) {
    const int64_t px = i / p.c, k = i % p.c;
    p.gather.bytes[i] = px < p.gather_pixels
                            ? static_cast<uint8_t>(px * p.cin + p.kept[static_cast<size_t>(k)])
                            : 0x80;
  }
  const int64_t wide_pixels = 64 / p.cin;
  for (int i = 0; i < 64; ++i) {
    const int64_t px = i / p.c, k = i % p.c;
    p.gather_wide.bytes[i] =
        px < wide_pixels ? static_cast<uint8_t>(px * p.cin + p.kept[static_cast<size_t>(k)]) : 0;
  }
  p.vbmi = cpu_allows_avx512vbmi();
  p.rq = requantise_steps(d.dst_dtype == DType::i8, d.dst_zero_point, d.rounds_as_int8_zero_point,
                          d.act_lo, d.act_hi);
  p.rq.add_bias = !bias_joins_accumulators(wd, p.cout, per_channel, d.bias_acc);
  for (size_t i = 0; i < p.rq.adds.size(); ++i) {
    const float a = p.rq.adds[i];
    for (int j = 0; j < 16; ++j) std::memcpy(p.adds[i].bytes + 4 * j, &a, 4);
  }
  const bool dst_signed = p.rq.dst_signed;
  p.lower = dst_signed ? static_cast<int8_t>(p.rq.lower) : p.rq.lower;
  p.upper = dst_signed ? static_cast<int8_t>(p.rq.upper) : p.rq.upper;
  p.groups = static_cast<int>((p.cout + 15) / 16);
  // (cout % 16 in 1..8 in a ymm group: the same 16-channel grouping, the lanes past 8 unused.)
  p.weights.assign(static_cast<size_t>(p.kh * p.quads * p.groups), Vector{});
  for (int64_t ky = 0; ky < p.kh; ++ky)
    for (int64_t q = 0; q < p.quads; ++q)
      for (int g = 0; g < p.groups; ++g) {
        uint8_t *v = p.weights[static_cast<size_t>((ky * p.quads + q) * p.groups + g)].bytes;
        for (int j = 0; j < 16; ++j)
          for (int i = 0; i < 4; ++i) {
            const int64_t oc = 16 * g + j, b = 4 * q + i, kx = b / p.c;
            if (oc >= p.cout || kx >= p.kw) continue;
            const int64_t ci = p.kept[static_cast<size_t>(b % p.c)];
            v[4 * j + i] = static_cast<uint8_t>(wd[((oc * p.cin + ci) * p.kh + ky) * p.kw + kx]);
          }
      }
  // Per group, then the last group's doubled (lanes 8-15 as 0-7) for store_pair.
  p.constants.assign(static_cast<size_t>(3 * p.groups + 3), Vector{});
  for (int64_t oc = 0; oc < p.cout; ++oc) {
    int32_t sum = 0;
    for (int64_t i = 0; i < per_channel; ++i) sum += wd[oc * per_channel + i];
    const int32_t init =
        -zero * sum +
        (p.rq.add_bias ? 0 : static_cast<int32_t>(d.bias_acc[static_cast<size_t>(oc)]));
    const float bias = p.rq.add_bias ? d.bias_acc[static_cast<size_t>(oc)] : 0.f;
    const float scale = d.output_scales[static_cast<size_t>(oc)];
    const size_t at = static_cast<size_t>(3 * (oc / 16)), lane = static_cast<size_t>(oc % 16) * 4;
    std::memcpy(p.constants[at].bytes + lane, &init, 4);
    std::memcpy(p.constants[at + 1].bytes + lane, &bias, 4);
    std::memcpy(p.constants[at + 2].bytes + lane, &scale, 4);
  }
  for (int i = 0; i < 3; ++i) {
    const uint8_t *last = p.constants[static_cast<size_t>(3 * (p.groups - 1) + i)].bytes;
    uint8_t *paired = p.constants[static_cast<size_t>(3 * p.groups + i)].bytes;
    std::memcpy(paired, last, 32);
    std::memcpy(paired + 32, last, 32);
  }
  return p;
}

}  // namespace

std::unique_ptr<Kernel> make_stem_int8_vnni(const StemInt8Params &d, const Tensor &weights) {
  int64_t block = 0;
  RowsFn fn = rows_fn(d.out_channels, &block);
  auto plan = std::make_shared<const Plan>(make_plan(d, weights, block));
  if (d.out_channels == 24) fn = packed_24_fn(requantise_form(plan->rq), plan->rq.dst_signed);
  return make_stem_kernel(d, plan, fn, "AVX-512 VNNI");
}

}  // namespace axstream::engine
