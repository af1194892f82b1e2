#include "depthwise_int8.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>

#include "../compiler.h"
#include "../cpu_features.h"
#include "../parallel.h"
#include "axstream/error.h"
#include "intrinsics.h"
#include "requantise_lanes.h"

namespace axstream::engine {

bool own_depthwise_available() { return cpu_allows_avx512vnni(); }

namespace {

constexpr int kMaxQuads = 10;  // 5x5: five rows of two column quads

// Quads per output vector in channel strips: vertical quads of 4 kernel rows per column (a
// remainder of 2 or 3 rows one more, its rows past the kernel weighing 0), and a last row left
// alone (kernel_h % 4 == 1) by column quads.
int64_t strip_quad_count(int64_t kernel_h, int64_t kernel_w) {
  const int64_t rest = kernel_h % 4;
  return (kernel_h / 4 + (rest >= 2 ? 1 : 0)) * kernel_w + (rest == 1 ? (kernel_w + 3) / 4 : 0);
}

}  // namespace

bool strips_form(const DepthwiseInt8Params &p) {
  return (p.kernel_h >= 4 || (p.kernel_h == 3 && p.channels % 64 == 0)) &&
         strip_quad_count(p.kernel_h, p.kernel_w) <= kMaxQuads;
}

bool own_depthwise_chosen(const DepthwiseInt8Params &p, const char *setting,
                          const std::string &onednn_impl) {
  return own_depthwise_chosen(p, setting, onednn_impl, cpu_allows_amx_int8(),
                              cpu_allows_avx512vbmi());
}

bool own_depthwise_chosen(const DepthwiseInt8Params &p, const char *setting,
                          const std::string &onednn_impl, bool amx_host, bool vbmi_host) {
  const std::string asked = setting ? setting : "auto";
  if (asked == "1") return true;
  if (asked == "0") return false;
  if (asked != "auto")
    throw InvalidConfiguration("AXSTREAM_ENGINE_OWN_DEPTHWISE: expected auto, 1 or 0, got '" +
                               asked + "'");
  // Measured per step (the least of runs alternating with oneDNN) on BlazeFace, MobileNetV2,
  // SSD-MobileNet and PP-OCR (docs/performance.md). Channel strips: every 5x5 of PP-OCR det
  // and rec, strides 1, 2 and (2,1), ran 1.27-1.81x as fast as oneDNN's jit_int8; 3x3 over
  // whole 64-channel strips 1.06-1.33x at stride 1, (2,1) and (1,2) (PP-OCR rec's 64 and 128
  // channels, MobileNetV2's 192 to 960 against brdgmm_dw, SSD-MobileNet's 128 to 1024) and
  // 0.99-2.0x at stride 2. Rows: 3x3 at stride 1 with rows of up to 4 KB (width x channels)
  // 0.98-1.7x as fast as jit_int8 (BlazeFace's 24- to 96-channel layers, PP-OCR rec's first);
  // wider rows 0.88-1.07x, brdgmm_dw 0.81-1.0x, stride 2 (its source rows split into two
  // phases pixel by pixel, as before the gathered form) 0.4-1.0x. Strips over part-used strips
  // (channels not a multiple of 64) lost (0.36-0.88x), hence not that form there.
  if (strips_form(p)) return true;
  const bool brdgmm = onednn_impl.find("brdgmm") != std::string::npos;
  // Stride (2,2) 3x3 against jit_int8 on an AMD EPYC (Zen 4) host without AMX, the rows form
  // gathering each tap's bytes with VBMI byte permutes (channels under 64) or copying whole
  // pixels, rows of up to 8 KB: BlazeFace's four (24 to 42 channels, rows of 1.3 to 3 KB)
  // 1.13-1.86x, PP-OCR det's 48 and 96 channels (rows of 7.5 KB) 1.12-1.32x; det's 32 channels
  // at 320x320 (rows of 10 KB) 0.91-1.11x. Not measured with AMX (nor against brdgmm_dw),
  // where it stays on oneDNN, as without VBMI under 64 channels (the pixel-by-pixel phase
  // split, which lost).
  if (p.kernel_h == 3 && p.kernel_w == 3 && p.stride_h == 2 && p.stride_w == 2)
    return !amx_host && !brdgmm && p.in_w * p.channels <= 8192 && (vbmi_host || p.channels >= 64);
  const bool narrow_3x3 = p.kernel_h == 3 && p.kernel_w == 3 && p.in_w * p.channels <= 4096;
  if (!narrow_3x3 || p.stride_w != 1) return false;
  if (!brdgmm) return p.stride_h == 1;
  // Against brdgmm_dw the rows form lost on the AMX host (0.81-1.0x) but won on an AMD EPYC
  // (Zen 4) host without AMX, whose VNNI kernels are the same: 1.08-1.11x at stride 1
  // (MobileNetV2's 32 channels at 112x112, PP-OCR cls's 32 at 6x96) and 1.23-1.75x at stride
  // (2,1) (PP-OCR cls's 8 and 24 channels, rows of 96). AMX is the feature this engine sees
  // that tells those hosts apart; stride (2,1) against brdgmm_dw was not measured with AMX, so
  // it stays on oneDNN there.
  return !amx_host && (p.stride_h == 1 || p.stride_h == 2);
}

namespace {

// How it works. An output row of NHWC bytes (out_w * channels) is cut into 64-byte vectors;
// for a tap, the input bytes that meet them are the same 64 bytes of a source row shifted by
// the tap's column (source rows are copied padded with the source zero point and, for stride 2,
// split into even and odd pixels, so every tap is one unaligned load). The vectors of four
// neighbouring columns of a kernel row are interleaved bytewise (unpack 8, then 16) into four
// vectors of u8 quads, once per source row (a ring of kernel_h such rows), and vpdpbusd
// multiplies them with the weights' s8 quads into 16 int32 lanes each: a 3x3 kernel is three
// quads per output vector, a 5x5 ten. The interleaving permutes output positions within 128-bit
// lanes, and the packs that narrow the four int32 accumulators to bytes undo exactly that
// permutation, so the per-lane constants (weights, bias, scale) are stored permuted once and
// nothing is shuffled back. A vector's channels repeat every channels / gcd(channels, 64)
// vectors (its phase); each phase has its table.
//
// Exactness: the source goes in as uint8 (int8 flipped by 128, its zero point with it), the
// padding holds the zero point, and the accumulators start at -zero_point * sum(weights), so
// they hold the exact sum of (x - zero_point) * w that oneDNN's kernels compute. Then, per
// lane, as oneDNN's int8 convolutions do: float(acc) + bias, * scale, the activation clamp,
// the float additions of the zero points, saturation and rounding half to even; the clamp and
// saturation commute with the monotone additions and rounding, so they become byte min/max
// and the saturating packs. An integer bias (in accumulator units, as the engine passes it
// where it can) joins the initial accumulator instead: the same float sum, exactly.

constexpr int kLanes = 16;      // int32 lanes of a zmm
constexpr int64_t kSlack = 64;  // a vector may read this far past a row's last pixel

int64_t align64(int64_t n) { return (n + 63) / 64 * 64; }

// Where dword `d` of accumulator `j` lands in the 64 output bytes of a vector.
int output_byte(int j, int d) { return 16 * (d / 4) + 4 * j + d % 4; }

struct Plan : PlanGeometry {
  int64_t c = 0;
  int groups = 0;  // column quads per kernel row: ceil(kernel_w / 4)
  int quads = 0;   // kernel_h * groups
  int phases = 0;
  bool phase_blocks = false;  // rows phase by phase (run_row): vectors >= 4 * phases
  int64_t vectors = 0;        // 64-byte vectors per output row
  int64_t row_bytes = 0;      // a padded source row (one stride phase; gathered: the whole row)
  int64_t quad_row_bytes = 0, thread_bytes = 0;
  // 3-row kernels of one column group at stride 1 (run_pair_row): output rows in pairs, over a
  // ring of kernel_h + 1 quad rows (ring_rows; else kernel_h).
  bool row_pairs = false;
  int64_t ring_rows = 0;
  uint8_t flip = 0, zero_byte = 0;  // the source's sign flip and its zero point as uint8
  RequantiseSteps rq;               // the epilogue (requantise_lanes.h)
  // Stride 2 across over fewer than 64 channels with VBMI (build_gathered_quads): per phase, the
  // byte indices of a vector's tap into the three source vectors from its first byte, the
  // first two's (vpermt2b) then the second and third's, and which bytes come from the latter.
  bool gathered = false;
  std::vector<uint64_t> from_third;
  std::vector<int64_t> gather_base;  // per phase: its first vector's first source byte
  // Per phase: quads * 4 weight vectors, then 4 initial accumulators, 4 biases, 4 scales.
  int64_t phase_vectors = 0;
  // Channel strips (kernels of 4 rows or more; "Channel strips" below): the strip's weight
  // vectors and constants take the place of a phase's, strip s at table + s * phase_vectors.
  bool strips = false;
  int64_t strip_count = 0;
  int vertical_groups = 0;       // quads of 4 kernel rows (rows past the kernel weigh 0)
  int last_row_quads = 0;        // column quads of a last kernel row left alone (kernel_h % 4 == 1)
  int64_t tile = 0;              // output pixels per tile, a multiple of 4
  int64_t tile_pixels = 0;       // source pixels (padded) a tile reads: (tile - 1) * sw + kw
  int64_t strip_quad_bytes = 0;  // one quad buffer: tile_pixels quads of 4 vectors
  // Output rows in pairs (stride_h 1, a last kernel row left alone): the first of a pair takes
  // its first kernel row alone and the next 4 * vertical_groups as vertical quads, which are
  // then the second's; its strips' tables follow the others', at strip_count * phase_vectors.
  bool paired = false;
  struct alignas(64) Vector {
    uint8_t bytes[64];
  };
  std::shared_ptr<std::vector<Vector>> table;
  std::shared_ptr<std::vector<Vector>> gather;  // per phase: two index vectors
};

// The zero points added in float, one vector each (0 past p.rq's), for a block's registers.
struct ZeroPointAdds {
  __m512 add[3];
};

AXSTREAM_AVX512_VNNI inline ZeroPointAdds zero_point_adds(const RequantiseSteps &rq) {
  ZeroPointAdds z;
  for (size_t i = 0; i < 3; ++i) z.add[i] = _mm512_set1_ps(i < rq.adds.size() ? rq.adds[i] : 0.f);
  return z;
}

// The 64 output bytes of four accumulators (dword d of accumulator j: output byte
// output_byte(j, d)), with the lanes' biases and scales at `constants` (4 vectors each). kForm
// >= 0 (requantise_form): requantise_lanes<4>'s operations in that form, the same per lane.
template <bool kSigned, int kForm = -1>
AXSTREAM_NO_CONTRACT AXSTREAM_AVX512_VNNI inline __m512i requantise(
    const Plan &p, const __m512i *acc, const __m512i *constants,
    const ZeroPointAdds *adds = nullptr) {
  const auto *bias = reinterpret_cast<const __m512 *>(constants);
  const __m512 *scale = bias + 4;
  __m512i r[4];
  if constexpr (kForm < 0)
    requantise_lanes<4>(p.rq, acc, bias, scale, r);
  else
    requantise_lanes_form<kForm, 4>(acc, bias, scale, adds->add, r);
  return pack_bytes<kSigned>(p.rq, r[0], r[1], r[2], r[3]);
}

// The first `count` (1 to 64) bytes of `y` to `to`.
AXSTREAM_AVX512_VNNI inline void store_bytes(uint8_t *to, __m512i y, int64_t count) {
  if (count >= 64)
    _mm512_storeu_si512(to, y);
  else
    _mm512_mask_storeu_epi8(to, (uint64_t{1} << count) - 1, y);
}

// kBlock output vectors v, v + step, .., v + (kBlock - 1) * step of a row in lock step, so
// that their dependent chains (vpdpbusd into each accumulator, then the epilogue's conversions)
// overlap; k[b] is vector b's phase table. kOnePhase: `step` is the number of phases, so the
// vectors share one phase and its table k[0], and each weight vector is loaded once for kBlock
// vpdpbusd; else (step 1, consecutive vectors) once for each.
template <int kQuads, bool kSigned, int kForm, int kBlock, bool kOnePhase>
AXSTREAM_NO_CONTRACT AXSTREAM_AVX512_VNNI inline void run_block(
    const Plan &p, const __m512i *const *x, int64_t v, int64_t step, const __m512i *const *k,
    const ZeroPointAdds &adds, uint8_t *out) {
  __m512i acc[kBlock][4];
  for (int b = 0; b < kBlock; ++b)
    for (int j = 0; j < 4; ++j) acc[b][j] = k[kOnePhase ? 0 : b][kQuads * 4 + j];
#pragma GCC unroll 10
  for (int q = 0; q < kQuads; ++q)
    for (int j = 0; j < 4; ++j) {
      if constexpr (kOnePhase) {
        const __m512i w = _mm512_load_si512(k[0] + 4 * q + j);
        for (int b = 0; b < kBlock; ++b)
          acc[b][j] = _mm512_dpbusd_epi32(acc[b][j], x[q][4 * (v + b * step) + j], w);
      } else {
        for (int b = 0; b < kBlock; ++b)
          acc[b][j] = _mm512_dpbusd_epi32(acc[b][j], x[q][4 * (v + b * step) + j],
                                          _mm512_load_si512(k[b] + 4 * q + j));
      }
    }
  // One phase: its biases and scales loaded once for the block's vectors (the stores between
  // them could alias the table for the compiler, which then loaded them again per vector).
  __m512i shared[8];
  if constexpr (kOnePhase)
    for (int i = 0; i < 8; ++i) shared[i] = _mm512_load_si512(k[0] + kQuads * 4 + 4 + i);
#pragma GCC unroll 4
  for (int b = 0; b < kBlock; ++b) {
    const int64_t off = 64 * (v + b * step);
    store_bytes(
        out + off,
        requantise<kSigned, kForm>(p, acc[b], kOnePhase ? shared : k[b] + kQuads * 4 + 4, &adds),
        std::min<int64_t>(64, p.out_w * p.c - off));
  }
}

// A phase's vectors of a row from `v` on (every `step` = phases), four at a time, then the rest
// (0 to 3) in one block.
template <int kQuads, bool kSigned, int kForm>
AXSTREAM_NO_CONTRACT AXSTREAM_AVX512_VNNI inline void run_phase(const Plan &p,
                                                                const __m512i *const *x, int64_t v,
                                                                const __m512i *k,
                                                                const ZeroPointAdds &adds,
                                                                uint8_t *out) {
  const int64_t step = p.phases;
  const __m512i *const tables[1] = {k};
  for (; v + 3 * step < p.vectors; v += 4 * step)
    run_block<kQuads, kSigned, kForm, 4, true>(p, x, v, step, tables, adds, out);
  const int64_t rest = (p.vectors - v + step - 1) / step;
  if (rest == 3)
    run_block<kQuads, kSigned, kForm, 3, true>(p, x, v, step, tables, adds, out);
  else if (rest == 2)
    run_block<kQuads, kSigned, kForm, 2, true>(p, x, v, step, tables, adds, out);
  else if (rest == 1)
    run_block<kQuads, kSigned, kForm, 1, true>(p, x, v, step, tables, adds, out);
}

// One output row from its kernel rows' quad rows: quads[q] is kernel row q / groups' quad
// row, at column group q % groups. Where every phase has four vectors or more in the row
// (BlazeFace's 24 channels at 128x128 have 16 in each of 3 phases), phase by phase (its vectors
// ph, ph + phases, ..) in blocks of four of one table; else (36 channels at 32x32: 18 vectors
// in 16 phases) four consecutive vectors at a time, each of its phase, then the rest one by one.
template <int kQuads, bool kSigned, int kForm = -1>
AXSTREAM_NO_CONTRACT AXSTREAM_AVX512_VNNI void run_row(const Plan &p, const __m512i *const *quads,
                                                       uint8_t *out) {
  const __m512i *x[kQuads];
  for (int q = 0; q < kQuads; ++q) x[q] = quads[q];
  const auto *table = reinterpret_cast<const __m512i *>(p.table->data());
  const ZeroPointAdds adds = zero_point_adds(p.rq);
  if (p.phase_blocks) {
    for (int phase = 0; phase < p.phases; ++phase)
      run_phase<kQuads, kSigned, kForm>(p, x, phase, table + phase * p.phase_vectors, adds, out);
    return;
  }
  const __m512i *k[4];
  int phase = 0;
  int64_t v = 0;
  for (; v + 4 <= p.vectors; v += 4) {
    for (int b = 0; b < 4; ++b) {
      k[b] = table + phase * p.phase_vectors;
      if (++phase == p.phases) phase = 0;
    }
    run_block<kQuads, kSigned, kForm, 4, false>(p, x, v, 1, k, adds, out);
  }
  for (; v < p.vectors; ++v) {
    k[0] = table + phase * p.phase_vectors;
    run_block<kQuads, kSigned, kForm, 1, false>(p, x, v, 1, k, adds, out);
    if (++phase == p.phases) phase = 0;
  }
}

// kBlock vectors v, v + step, .. of one phase (its table `k`) in two output rows at once (the
// 3-row kernels of one column group at stride 1), from the quad rows of their four source rows
// (src[s]: the first row's source row s): each quad vector is loaded once for both rows,
// weighing kernel row s for the first and s - 1 for the second, where a row at a time loaded
// each three times (12 quad loads per 64 output bytes, and the loads bound the blocks). The
// accumulators of both rows are live throughout; one accumulator index j at a time, so that only
// its three weight vectors are.
template <bool kSigned, int kForm, int kBlock>
AXSTREAM_NO_CONTRACT AXSTREAM_AVX512_VNNI inline void run_pair_block(
    const Plan &p, const __m512i *const *src, int64_t v, int64_t step, const __m512i *k,
    const ZeroPointAdds &adds, uint8_t *out0, uint8_t *out1) {
  __m512i acc[2][kBlock][4];
  for (int j = 0; j < 4; ++j) {
    const __m512i init = _mm512_load_si512(k + 12 + j);
    for (int b = 0; b < kBlock; ++b) acc[0][b][j] = acc[1][b][j] = init;
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    const __m512i w0 = _mm512_load_si512(k + j), w1 = _mm512_load_si512(k + 4 + j),
                  w2 = _mm512_load_si512(k + 8 + j);
    for (int b = 0; b < kBlock; ++b) {
      const int64_t at = 4 * (v + b * step) + j;
      const __m512i x0 = _mm512_load_si512(src[0] + at), x1 = _mm512_load_si512(src[1] + at),
                    x2 = _mm512_load_si512(src[2] + at), x3 = _mm512_load_si512(src[3] + at);
      acc[0][b][j] = _mm512_dpbusd_epi32(acc[0][b][j], x0, w0);
      acc[1][b][j] = _mm512_dpbusd_epi32(acc[1][b][j], x1, w0);
      acc[0][b][j] = _mm512_dpbusd_epi32(acc[0][b][j], x1, w1);
      acc[1][b][j] = _mm512_dpbusd_epi32(acc[1][b][j], x2, w1);
      acc[0][b][j] = _mm512_dpbusd_epi32(acc[0][b][j], x2, w2);
      acc[1][b][j] = _mm512_dpbusd_epi32(acc[1][b][j], x3, w2);
    }
  }
  __m512i shared[8];  // the phase's biases and scales
  for (int i = 0; i < 8; ++i) shared[i] = _mm512_load_si512(k + 16 + i);
#pragma GCC unroll 4
  for (int b = 0; b < kBlock; ++b) {
    const int64_t off = 64 * (v + b * step), bytes = std::min<int64_t>(64, p.out_w * p.c - off);
    store_bytes(out0 + off, requantise<kSigned, kForm>(p, acc[0][b], shared, &adds), bytes);
    store_bytes(out1 + off, requantise<kSigned, kForm>(p, acc[1][b], shared, &adds), bytes);
  }
}

// Two output rows of a 3-row kernel of one column group at stride 1 (p.row_pairs), phase by
// phase in blocks of two vectors (each phase's table loaded once per block; phases with fewer
// vectors than two, such as 36 channels at 32x32, in blocks of one).
template <bool kSigned, int kForm>
AXSTREAM_NO_CONTRACT AXSTREAM_AVX512_VNNI void run_pair_row(const Plan &p,
                                                            const __m512i *const *src,
                                                            uint8_t *out0, uint8_t *out1) {
  const auto *table = reinterpret_cast<const __m512i *>(p.table->data());
  const ZeroPointAdds adds = zero_point_adds(p.rq);
  const int64_t step = p.phases;
  for (int phase = 0; phase < p.phases; ++phase) {
    const __m512i *k = table + phase * p.phase_vectors;
    int64_t v = phase;
    for (; v + step < p.vectors; v += 2 * step)
      run_pair_block<kSigned, kForm, 2>(p, src, v, step, k, adds, out0, out1);
    if (v < p.vectors) run_pair_block<kSigned, kForm, 1>(p, src, v, step, k, adds, out0, out1);
  }
}

using PairFn = void (*)(const Plan &, const __m512i *const *, uint8_t *, uint8_t *);

template <bool kSigned, int kForm = 0>
PairFn pair_fn(int form) {
  if constexpr (kForm + 1 < kRequantiseForms)
    if (form != kForm) return pair_fn<kSigned, kForm + 1>(form);
  return run_pair_row<kSigned, kForm>;
}

using RowFn = void (*)(const Plan &, const __m512i *const *, uint8_t *);

// The 3x3 rows form (3 quads) in the epilogue form `form` (requantise_form).
template <bool kSigned, int kForm = 0>
RowFn row_3x3_fn(int form) {
  if constexpr (kForm + 1 < kRequantiseForms)
    if (form != kForm) return row_3x3_fn<kSigned, kForm + 1>(form);
  return run_row<3, kSigned, kForm>;
}

template <bool kSigned, int kQuads = 1>
RowFn row_fn(int quads, int form) {
  if constexpr (kQuads == kMaxQuads) {
    return run_row<kQuads, kSigned>;
  } else {
    if (quads != kQuads) return row_fn<kSigned, kQuads + 1>(quads, form);
    if constexpr (kQuads == 3) return row_3x3_fn<kSigned>(form);
    return run_row<kQuads, kSigned>;
  }
}

// `count` bytes, flipped to uint8 when `flip` (0x80).
AXSTREAM_AVX512_VNNI inline void copy_bytes(uint8_t *to, const uint8_t *from, int64_t count,
                                            uint8_t flip) {
  const __m512i x = _mm512_set1_epi8(static_cast<char>(flip));
  int64_t i = 0;
  for (; i + 64 <= count; i += 64)
    _mm512_storeu_si512(to + i, _mm512_xor_si512(_mm512_loadu_si512(from + i), x));
  if (i < count) {
    const __mmask64 m = (uint64_t{1} << (count - i)) - 1;
    _mm512_mask_storeu_epi8(to + i, m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, from + i), x));
  }
}

// Pixel `from` (`c` bytes) to `to`, flipped, in whole 64-byte vectors: the bytes past c land
// where the next pixel of the phase row goes (written after it) or in the row's slack, and the
// reads end within the source row, instead of a masked load and store per pixel (on Zen 4 both
// took about the same time: the stores, not their masks, cost; the gathered form avoids them).
AXSTREAM_AVX512_VNNI inline void copy_pixel(uint8_t *to, const uint8_t *from, int64_t c,
                                            __m512i flip) {
  for (int64_t i = 0; i < c; i += 64)
    _mm512_storeu_si512(to + i, _mm512_xor_si512(_mm512_loadu_si512(from + i), flip));
}

// Source row `in` (null: a padding row) padded with the zero point, as the pixels of each
// stride phase ph (rows[ph]: those at ph + sw * m, m from 0, counting the left padding), uint8.
AXSTREAM_AVX512_VNNI void build_rows(const Plan &p, const uint8_t *in, uint8_t *const *rows) {
  const int64_t width = p.row_bytes / p.c;
  if (!in) {
    for (int64_t ph = 0; ph < p.sw; ++ph)
      std::memset(rows[ph], p.zero_byte, static_cast<size_t>(p.row_bytes));
    return;
  }
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(p.flip));
  // Whole vectors where a pixel's reach (its channels rounded up to 64) ends within the source
  // row and within the phase row: source pixels before whole_source, phase pixels before
  // whole_phase.
  const int64_t reach = align64(p.c);
  const int64_t whole_source = p.in_w * p.c >= reach ? (p.in_w * p.c - reach) / p.c + 1 : 0;
  const int64_t whole_phase = (p.row_bytes - reach) / p.c + 1;
  for (int64_t ph = 0; ph < p.sw; ++ph) {
    uint8_t *row = rows[ph];
    // The first m whose pixel m * sw + ph - pad_left is in the image, and the end.
    const int64_t first = std::max<int64_t>(0, (p.pad_left - ph + p.sw - 1) / p.sw);
    const int64_t last = p.in_w - 1 + p.pad_left - ph;  // m * sw of the last pixel in it
    const int64_t end = last < 0 ? first : std::max(first, std::min(width, last / p.sw + 1));
    std::memset(row, p.zero_byte, static_cast<size_t>(first * p.c));
    if (p.sw == 1) {
      copy_bytes(row + first * p.c, in + (first + ph - p.pad_left) * p.c, (end - first) * p.c,
                 p.flip);
    } else {
      for (int64_t m = first; m < end; ++m) {
        const int64_t ix = m * p.sw + ph - p.pad_left;
        if (ix < whole_source && m < whole_phase)
          copy_pixel(row + m * p.c, in + ix * p.c, p.c, flip);
        else
          copy_bytes(row + m * p.c, in + ix * p.c, p.c, p.flip);
      }
    }
    std::memset(row + end * p.c, p.zero_byte, static_cast<size_t>(p.row_bytes - end * p.c));
  }
}

// Four vectors bytewise interleaved into four vectors of u8 quads (dword lane d of vector j:
// bytes output_byte(j, d) of x[0] .. x[3]).
AXSTREAM_AVX512_VNNI inline void interleave(const __m512i *x, __m512i *to) {
  const __m512i ab_lo = _mm512_unpacklo_epi8(x[0], x[1]), ab_hi = _mm512_unpackhi_epi8(x[0], x[1]),
                cd_lo = _mm512_unpacklo_epi8(x[2], x[3]), cd_hi = _mm512_unpackhi_epi8(x[2], x[3]);
  _mm512_store_si512(to, _mm512_unpacklo_epi16(ab_lo, cd_lo));
  _mm512_store_si512(to + 1, _mm512_unpackhi_epi16(ab_lo, cd_lo));
  _mm512_store_si512(to + 2, _mm512_unpacklo_epi16(ab_hi, cd_hi));
  _mm512_store_si512(to + 3, _mm512_unpackhi_epi16(ab_hi, cd_hi));
}

// The quad row of one source row from its phase rows: per column group g and output vector v,
// four vectors whose dwords hold the bytes of columns 4g .. 4g + 3 (zero past the kernel).
AXSTREAM_AVX512_VNNI void build_quads(const Plan &p, const uint8_t *const *phase_rows,
                                      __m512i *quads) {
  const __m512i zero = _mm512_setzero_si512();
  for (int g = 0; g < p.groups; ++g) {
    const uint8_t *col[4] = {nullptr, nullptr, nullptr, nullptr};
    for (int b = 0; b < 4; ++b) {
      const int64_t kx = 4 * g + b;
      if (kx < p.kw) col[b] = phase_rows[kx % p.sw] + kx / p.sw * p.c;
    }
    __m512i *to = quads + g * p.vectors * 4;
    for (int64_t v = 0; v < p.vectors; ++v) {
      __m512i x[4];
      for (int b = 0; b < 4; ++b) x[b] = col[b] ? _mm512_loadu_si512(col[b] + 64 * v) : zero;
      interleave(x, to + 4 * v);
    }
  }
}

// The quad row of source row `in` at stride 1 across, read from the source itself: build_quads
// over the padded copy build_rows makes, without the copy (its store and load per 64 bytes and
// the padding's memsets, about a tenth of the 3x3 rows form's time on BlazeFace front, perf):
// each tap's 64 bytes are one load where they lie within the source row, and a masked load
// with the zero point elsewhere (the padding and past the row's end), flipped like the copy.
AXSTREAM_AVX512_VNNI inline __m512i direct_tap(uintptr_t row, int64_t at, int64_t bytes,
                                               __m512i zero, __m512i flip) {
  // (An address computed as an integer: it may lie before the row, its bytes masked.)
  const auto *from = reinterpret_cast<const uint8_t *>(row + static_cast<uintptr_t>(at));
  if (at >= 0 && at + 64 <= bytes) return _mm512_xor_si512(_mm512_loadu_si512(from), flip);
  const int64_t lo = std::max<int64_t>(0, -at), hi = std::min<int64_t>(64, bytes - at);
  const __mmask64 mask = hi <= lo ? 0
                                  : (hi == 64 ? ~__mmask64{0} : (__mmask64{1} << hi) - 1) &
                                        ~((__mmask64{1} << lo) - 1);
  return _mm512_xor_si512(_mm512_mask_loadu_epi8(zero, mask, from), flip);
}

AXSTREAM_AVX512_VNNI void build_quads_direct(const Plan &p, const uint8_t *in, __m512i *quads) {
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(p.flip));
  // The zero point as the source holds it (flipped back), so that the flip gives zero_byte.
  const __m512i zero = _mm512_set1_epi8(static_cast<char>(p.zero_byte ^ p.flip));
  const int64_t bytes = p.in_w * p.c;
  const auto row = reinterpret_cast<uintptr_t>(in);
  for (int g = 0; g < p.groups; ++g) {
    const int64_t kx = 4 * g, columns = std::min<int64_t>(4, p.kw - kx);
    const int64_t first = (kx - p.pad_left) * p.c;  // column kx's offset from the row's start
    __m512i *to = quads + g * p.vectors * 4;
    for (int64_t v = 0, at = first; v < p.vectors; ++v, at += 64) {
      const __m512i none = _mm512_setzero_si512();
      const __m512i x[4] = {direct_tap(row, at, bytes, zero, flip),
                            columns > 1 ? direct_tap(row, at + p.c, bytes, zero, flip) : none,
                            columns > 2 ? direct_tap(row, at + 2 * p.c, bytes, zero, flip) : none,
                            columns > 3 ? direct_tap(row, at + 3 * p.c, bytes, zero, flip) : none};
      interleave(x, to + 4 * v);
    }
  }
}

#define AXSTREAM_AVX512_VBMI_VNNI \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")))

// Source row `in` (null: a padding row) as one padded row of uint8: pad_left pixels of the zero
// point, the row, then the zero point up to row_bytes.
AXSTREAM_AVX512_VNNI void build_padded_row(const Plan &p, const uint8_t *in, uint8_t *row) {
  if (!in) {
    std::memset(row, p.zero_byte, static_cast<size_t>(p.row_bytes));
    return;
  }
  const int64_t left = p.pad_left * p.c, bytes = p.in_w * p.c;
  std::memset(row, p.zero_byte, static_cast<size_t>(left));
  copy_bytes(row + left, in, bytes, p.flip);
  std::memset(row + left + bytes, p.zero_byte, static_cast<size_t>(p.row_bytes - left - bytes));
}

// The quads of output vectors [0, vectors) of one column group of kTaps taps (the rest
// weigh 0) from `row` + `tap`: the tables and base offsets of build_gathered_quads.
template <int kTaps>
AXSTREAM_AVX512_VBMI_VNNI void gather_group(const Plan &p, const uint8_t *row, __m512i *to) {
  const auto *indices = reinterpret_cast<const __m512i *>(p.gather->data());
  const int64_t period = 128 * p.phases;  // the source bytes of `phases` vectors
  int phase = 0;
  const uint8_t *period_row = row;
  for (int64_t v = 0; v < p.vectors; ++v) {
    const uint8_t *first = period_row + p.gather_base[static_cast<size_t>(phase)];
    const __m512i low = _mm512_load_si512(indices + 2 * phase);
    const __mmask64 third = p.from_third[static_cast<size_t>(phase)];
    __m512i x[4];
    for (int b = 0; b < 4; ++b) x[b] = _mm512_setzero_si512();
    for (int b = 0; b < kTaps; ++b) {
      const uint8_t *at = first + b * p.c;
      const __m512i a1 = _mm512_loadu_si512(at + 64);
      x[b] = _mm512_permutex2var_epi8(_mm512_loadu_si512(at), low, a1);
      if (third)
        x[b] = _mm512_mask_blend_epi8(
            third, x[b],
            _mm512_permutex2var_epi8(a1, _mm512_load_si512(indices + 2 * phase + 1),
                                     _mm512_loadu_si512(at + 128)));
    }
    interleave(x, to + 4 * v);
    if (++phase == p.phases) {
      phase = 0;
      period_row += period;
    }
  }
}

// The quad row of one source row at stride 2 across, from its padded row: output byte i (pixel
// i / c, channel i % c) meets, at tap kx, padded byte i + (i / c) * c + kx * c. For an output
// vector of phase ph that is its first byte's source (64 v + (64 v / c) * c, every `phases` vectors
// 128 * phases further) plus an index of phase ph's table, under 190 for channels under 64: two
// vpermt2b over three source vectors gather a tap's 64 bytes, which the phase rows (build_rows) had
// copied pixel by pixel, each pixel a 64-byte store of which only c bytes count (half the rows
// form's time at 24 channels on Zen 4, perf).
AXSTREAM_AVX512_VBMI_VNNI void build_gathered_quads(const Plan &p, const uint8_t *row,
                                                    __m512i *quads) {
  for (int g = 0; g < p.groups; ++g) {
    const uint8_t *tap = row + 4 * g * p.c;
    __m512i *to = quads + g * p.vectors * 4;
    switch (std::min<int64_t>(4, p.kw - 4 * g)) {
      case 1:
        gather_group<1>(p, tap, to);
        break;
      case 2:
        gather_group<2>(p, tap, to);
        break;
      case 3:
        gather_group<3>(p, tap, to);
        break;
      default:
        gather_group<4>(p, tap, to);
        break;
    }
  }
}

// A source row's quad row (null: a padding row's), through the phase rows or gathered.
void build_row_quads(const Plan &p, const uint8_t *in, uint8_t *const *phase_rows, __m512i *quads) {
  if (p.gathered) {
    build_padded_row(p, in, phase_rows[0]);
    build_gathered_quads(p, phase_rows[0], quads);
  } else if (p.sw == 1 && in) {
    build_quads_direct(p, in, quads);
  } else {
    build_rows(p, in, phase_rows);
    build_quads(p, phase_rows, quads);
  }
}

// Output rows [begin, end) of batch * out_h, with this thread's scratch: its phase rows, the
// padding rows' quad row and a ring of kernel_h quad rows (slot iy % kernel_h).
void run_rows(const Plan &p, RowFn row_fn, PairFn pair_fn, const uint8_t *src, uint8_t *dst,
              uint8_t *scratch, int64_t begin, int64_t end) {
  uint8_t *phase_rows[2] = {scratch, scratch + p.row_bytes};
  auto *zero_quads = reinterpret_cast<__m512i *>(scratch + 2 * p.row_bytes);
  uint8_t *ring = scratch + 2 * p.row_bytes + p.quad_row_bytes;
  build_row_quads(p, nullptr, phase_rows, zero_quads);
  std::vector<int64_t> held(static_cast<size_t>(p.ring_rows), -1);  // n * in_h + iy per slot
  const __m512i *quads[kMaxQuads + 1] = {};
  for (int64_t r = begin; r < end;) {
    const int64_t n = r / p.out_h, oy = r % p.out_h;
    // Rows oy and oy + 1 of one image: one source row more, each quad loaded once for both.
    const bool pair = p.row_pairs && r + 1 < end && oy + 1 < p.out_h;
    const int64_t kernel_rows = p.kh + (pair ? 1 : 0);
    for (int64_t ky = 0; ky < kernel_rows; ++ky) {
      const int64_t iy = oy * p.sh + ky - p.pad_top;
      const __m512i *row = zero_quads;
      if (iy >= 0 && iy < p.in_h) {
        const int64_t slot = iy % p.ring_rows;
        auto *slot_quads = reinterpret_cast<__m512i *>(ring + slot * p.quad_row_bytes);
        if (held[slot] != n * p.in_h + iy) {
          const uint8_t *in = src + (n * p.in_h + iy) * p.in_w * p.c;
          build_row_quads(p, in, phase_rows, slot_quads);
          held[slot] = n * p.in_h + iy;
        }
        row = slot_quads;
      }
      for (int g = 0; g < p.groups; ++g) quads[ky * p.groups + g] = row + g * p.vectors * 4;
    }
    uint8_t *out = dst + (n * p.out_h + oy) * p.out_w * p.c;
    if (pair) {
      pair_fn(p, quads, out, out + p.out_w * p.c);
      r += 2;
    } else {
      row_fn(p, quads, out);
      r += 1;
    }
  }
}

// Channel strips, for kernels of 4 rows or more and 3x3 kernels over whole 64-channel strips
// (strips_form; a 3x3 is 3 vertical quads whose fourth row weighs 0). The quad rows above hold
// every column quad of every source row: for a 5x5 kernel over 480 channels x 80 pixels, 300 KB per
// source row and 1.5 MB in the ring, so each output vector's ten quads came from L2 and L3 and the
// kernel ran at half oneDNN's speed. Here the work is cut into 64-channel strips of tiles of
// up to 32 output pixels of one output row. For each, the source pixels the tile reads are
// interleaved four kernel rows at a time (a vertical quad: rows ky .. ky + 3 of one pixel, the
// u8 quad vpdpbusd takes), once per pixel and used by each of the kernel's columns, and a
// kernel row left alone (kernel_h % 4 == 1) by column quads as above; a tile's quads (9 KB a
// quad row at 5x5) stay in L1. A 5x5 kernel is then 5 vertical quads and 2 column quads per
// output vector (28 vpdpbusd, was 40), and every quad is built from L1-resident source rows.
// Vertical quads are not shared between output rows (each starts at its own row), which costs
// their interleaving (8 shuffles per source pixel and quad row) but keeps the working set
// small. The lanes, the permuted constants and the epilogue are those above, per strip.

// The strip's 64 channels of source pixel `ix` of `row` (the strip's first channel of a
// source row; null: a padding row), uint8; the zero point outside the image.
AXSTREAM_AVX512_VNNI inline __m512i strip_pixel(const Plan &p, const uint8_t *row, int64_t ix,
                                                __mmask64 mask, __m512i flip, __m512i zero) {
  if (!row || ix < 0 || ix >= p.in_w) return zero;
  return _mm512_xor_si512(_mm512_maskz_loadu_epi8(mask, row + ix * p.c), flip);
}

// `count` outputs (up to p.tile) of a tile from its quads: quad q of output pixel x at
// base[q] + 4 * sw * x; `k` the strip's weights and constants; `out` the first output's strip.
template <int kQuads, bool kSigned>
AXSTREAM_NO_CONTRACT AXSTREAM_AVX512_VNNI void run_strip_tile(const Plan &p,
                                                              const __m512i *const *base,
                                                              const __m512i *k, int64_t count,
                                                              int64_t strip_bytes, uint8_t *out) {
  constexpr int kBlock = 4;  // output pixels in lock step, each a weight vector's reuse
  const int64_t step = 4 * p.sw;
  for (int64_t x = 0; x < count; x += kBlock) {
    __m512i acc[kBlock][4];
    for (int b = 0; b < kBlock; ++b)
      for (int j = 0; j < 4; ++j) acc[b][j] = k[kQuads * 4 + j];
#pragma GCC unroll 10
    for (int q = 0; q < kQuads; ++q)
      for (int j = 0; j < 4; ++j) {
        const __m512i w = _mm512_load_si512(k + 4 * q + j);
        for (int b = 0; b < kBlock; ++b)
          acc[b][j] = _mm512_dpbusd_epi32(acc[b][j], base[q][step * (x + b) + j], w);
      }
    for (int b = 0; b < kBlock && x + b < count; ++b)
      store_bytes(out + (x + b) * p.c, requantise<kSigned>(p, acc[b], k + kQuads * 4 + 4),
                  strip_bytes);
  }
}

using TileFn = void (*)(const Plan &, const __m512i *const *, const __m512i *, int64_t, int64_t,
                        uint8_t *);

template <bool kSigned, int kQuads = 1>
TileFn tile_fn(int quads) {
  if constexpr (kQuads == kMaxQuads) {
    return run_strip_tile<kQuads, kSigned>;
  } else {
    return quads == kQuads ? run_strip_tile<kQuads, kSigned> : tile_fn<kSigned, kQuads + 1>(quads);
  }
}

// The vertical quads of a tile's pixels [0, pixels) from source rows `rows` (4 per vertical
// group; null: padding or past the kernel), the first at source column `first`. Functions, not
// lambdas: a lambda does not take its function's target attribute, so the intrinsics in it
// would not inline.
AXSTREAM_AVX512_VNNI void build_vertical(const Plan &p, const uint8_t *const *rows, int64_t first,
                                         int64_t pixels, __mmask64 mask, __m512i flip, __m512i zero,
                                         __m512i *quads, int64_t quad_vectors) {
  for (int g = 0; g < p.vertical_groups; ++g)
    for (int64_t px = 0; px < pixels; ++px) {
      __m512i x[4];
      for (int b = 0; b < 4; ++b)
        x[b] = strip_pixel(p, rows[4 * g + b], first + px, mask, flip, zero);
      interleave(x, quads + g * quad_vectors + 4 * px);
    }
}

// The column quads of a tile's pixels [0, quad_pixels) of one source row.
AXSTREAM_AVX512_VNNI void build_columns(const Plan &p, const uint8_t *row, int64_t first,
                                        int64_t quad_pixels, __mmask64 mask, __m512i flip,
                                        __m512i zero, __m512i *to) {
  for (int64_t px = 0; px < quad_pixels; ++px) {
    __m512i x[4];
    for (int b = 0; b < 4; ++b) x[b] = strip_pixel(p, row, first + px + b, mask, flip, zero);
    interleave(x, to + 4 * px);
  }
}

// Output rows [begin, end) of batch * out_h by strips and tiles (two rows at a time where
// p.paired), with this thread's scratch: the vertical quads of each group of kernel rows, the
// last row's column quads, then a first row's.
AXSTREAM_AVX512_VNNI void run_strip_rows(const Plan &p, TileFn tile_fn, const uint8_t *src,
                                         uint8_t *dst, uint8_t *scratch, int64_t begin,
                                         int64_t end) {
  const auto *table = reinterpret_cast<const __m512i *>(p.table->data());
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(p.flip)),
                zero = _mm512_set1_epi8(static_cast<char>(p.zero_byte));
  auto *quads = reinterpret_cast<__m512i *>(scratch);
  const int64_t quad_vectors = p.strip_quad_bytes / 64;
  __m512i *last_row = quads + p.vertical_groups * quad_vectors;
  __m512i *first_row = last_row + quad_vectors;
  // Where each quad of output pixel 0 starts: vertical group g at kernel column kx, then the
  // last (or, row first, the first) row's column quads.
  const __m512i *base[kMaxQuads], *base_row_first[kMaxQuads];
  int n_base = 0;
  for (int g = 0; g < p.vertical_groups; ++g)
    for (int64_t kx = 0; kx < p.kw; ++kx, ++n_base)
      base[n_base] = base_row_first[n_base] = quads + g * quad_vectors + 4 * kx;
  for (int g = 0; g < p.last_row_quads; ++g, ++n_base) {
    base[n_base] = last_row + 16 * g;
    base_row_first[n_base] = first_row + 16 * g;
  }
  for (int64_t r = begin; r < end;) {
    const int64_t n = r / p.out_h, oy = r % p.out_h;
    // Rows oy and oy + 1 of one image: one source row more, the vertical quads shared.
    const bool pair = p.paired && r + 1 < end && oy + 1 < p.out_h;
    const int64_t kernel_rows = p.kh + (pair ? 1 : 0);
    for (int64_t s = 0; s < p.strip_count; ++s) {
      const int64_t strip_bytes = std::min<int64_t>(64, p.c - 64 * s);
      const __mmask64 mask = strip_bytes == 64 ? ~__mmask64{0} : (__mmask64{1} << strip_bytes) - 1;
      // The strip of each kernel row's source row (null: padding, or past the kernel).
      const uint8_t *rows[4 * kMaxQuads + 4] = {};
      for (int64_t ky = 0; ky < 4 * p.vertical_groups || ky < kernel_rows; ++ky) {
        const int64_t iy = oy * p.sh + ky - p.pad_top;
        if (ky < kernel_rows && iy >= 0 && iy < p.in_h)
          rows[ky] = src + (n * p.in_h + iy) * p.in_w * p.c + 64 * s;
      }
      const __m512i *k = table + s * p.phase_vectors;
      uint8_t *out = dst + (n * p.out_h + oy) * p.out_w * p.c + 64 * s;
      for (int64_t x0 = 0; x0 < p.out_w; x0 += p.tile) {
        const int64_t count = std::min(p.tile, p.out_w - x0), first = x0 * p.sw - p.pad_left;
        const int64_t pixels = (count - 1) * p.sw + p.kw;
        const int64_t quad_pixels = (count - 1) * p.sw + 4 * (p.last_row_quads - 1) + 1;
        if (pair) {
          build_vertical(p, rows + 1, first, pixels, mask, flip, zero, quads, quad_vectors);
          build_columns(p, rows[0], first, quad_pixels, mask, flip, zero, first_row);
          build_columns(p, rows[p.kh], first, quad_pixels, mask, flip, zero, last_row);
          tile_fn(p, base_row_first, k + p.strip_count * p.phase_vectors, count, strip_bytes,
                  out + x0 * p.c);
          tile_fn(p, base, k, count, strip_bytes, out + (p.out_w + x0) * p.c);
          continue;
        }
        build_vertical(p, rows, first, pixels, mask, flip, zero, quads, quad_vectors);
        if (p.last_row_quads > 0)
          build_columns(p, rows[p.kh - 1], first, quad_pixels, mask, flip, zero, last_row);
        tile_fn(p, base, k, count, strip_bytes, out + x0 * p.c);
      }
    }
    r += pair ? 2 : 1;
  }
}

bool refuse(std::string *why_not, const std::string &why) {
  if (why_not) *why_not = why;
  return false;
}

bool check(const DepthwiseInt8Params &d, const Tensor &w, std::string *why_not) {
  const int64_t taps = d.kernel_h * d.kernel_w;
  if (d.stride_h < 1 || d.stride_h > 2 || d.stride_w < 1 || d.stride_w > 2)
    return refuse(why_not, "strides other than 1 and 2");
  if (d.kernel_h < 1 || d.kernel_w < 1 || d.kernel_h * ((d.kernel_w + 3) / 4) > kMaxQuads)
    return refuse(why_not, "a kernel past 5 rows of 8 columns");
  if (d.pad_top < 0 || d.pad_left < 0 || d.pad_top >= d.kernel_h || d.pad_left >= d.kernel_w)
    return refuse(why_not, "pads outside [0, kernel)");
  if (w.dtype != DType::i8 || w.count() != d.channels * taps)
    return refuse(why_not, "weights not int8 (channels, 1, kh, kw)");
  if (static_cast<int64_t>(d.output_scales.size()) != d.channels ||
      static_cast<int64_t>(d.bias_acc.size()) != d.channels)
    return refuse(why_not, "per-channel constants of another size");
  if (d.channels < 1 || d.out_w < 1 || d.out_h < 1) return refuse(why_not, "an empty output");
  if (!scaled_accumulators_fit(w.data<int8_t>(), d.channels, taps, d.bias_acc, d.output_scales))
    return refuse(why_not, "a scaled accumulator could leave int32");
  return true;
}

// Quads per output vector of the channel-strip kernel (a huge number where it does not apply:
// see strips_form).
int strip_quads(const DepthwiseInt8Params &d) {
  if (!strips_form(d)) return 1 << 20;
  return static_cast<int>(strip_quad_count(d.kernel_h, d.kernel_w));
}

// Lane `lane` of accumulator j's constants in a table of p.quads * 4 weight vectors `v`, for
// channel c: its initial accumulator (-zero point * sum of weights, with an integer bias where
// p.rq.add_bias is off), float bias and scale.
void lane_constants(const Plan &p, const DepthwiseInt8Params &d, const int8_t *wd, int64_t c,
                    int32_t zero, int j, int lane, uint8_t *v) {
  const int64_t taps = p.kh * p.kw;
  int32_t sum = 0;
  for (int64_t t = 0; t < taps; ++t) sum += wd[c * taps + t];
  const int32_t init = -zero * sum + (p.rq.add_bias ? 0 : static_cast<int32_t>(d.bias_acc[c]));
  const float bias = p.rq.add_bias ? d.bias_acc[c] : 0.f, scale = d.output_scales[c];
  uint8_t *base = v + static_cast<size_t>(p.quads * 4) * 64;
  std::memcpy(base + (j * kLanes + lane) * 4, &init, 4);
  std::memcpy(base + ((4 + j) * kLanes + lane) * 4, &bias, 4);
  std::memcpy(base + ((8 + j) * kLanes + lane) * 4, &scale, 4);
}

// The channel-strip plan from the common part of `p`: per strip, its quads' weight vectors
// (vertical groups by kernel column, then the last row's column quads) and constants.
Plan make_strip_plan(Plan p, const DepthwiseInt8Params &d, const Tensor &w, int32_t zero) {
  const int8_t *wd = w.data<int8_t>();
  const int64_t taps = p.kh * p.kw;
  p.strips = true;
  p.row_pairs = false;
  p.strip_count = (p.c + 63) / 64;
  p.vertical_groups = static_cast<int>(p.kh / 4 + (p.kh % 4 >= 2 ? 1 : 0));
  p.last_row_quads = p.kh % 4 == 1 ? static_cast<int>((p.kw + 3) / 4) : 0;
  p.quads = strip_quads(d);
  p.tile = std::min<int64_t>(32, (p.out_w + 3) / 4 * 4);
  p.tile_pixels = (p.tile - 1) * p.sw + p.kw;
  p.strip_quad_bytes = p.tile_pixels * 4 * 64;
  p.paired = p.sh == 1 && p.last_row_quads > 0;
  // The vertical groups' quads, the last row's column quads (and the first row's).
  p.thread_bytes = (p.vertical_groups + (p.last_row_quads > 0 ? 1 : 0) + (p.paired ? 1 : 0)) *
                   p.strip_quad_bytes;
  p.phase_vectors = p.quads * 4 + 12;
  const int forms = p.paired ? 2 : 1;
  p.table = std::make_shared<std::vector<Plan::Vector>>(
      static_cast<size_t>(forms * p.strip_count * p.phase_vectors));
  for (int64_t form_strip = 0; form_strip < forms * p.strip_count; ++form_strip) {
    // Form 1: the first kernel row alone, the vertical quads from the second row on.
    const bool row_first = form_strip >= p.strip_count;
    const int64_t s = form_strip % p.strip_count;
    auto *v = reinterpret_cast<uint8_t *>(p.table->data() + form_strip * p.phase_vectors);
    for (int j = 0; j < 4; ++j)
      for (int lane = 0; lane < kLanes; ++lane) {
        const int64_t c = 64 * s + output_byte(j, lane);
        if (c >= p.c) continue;  // past the last channel: weights, constants 0 (the table's)
        const int8_t *wc = wd + c * taps;
        auto weight = [&](int64_t ky, int64_t kx) -> int8_t {
          return ky < p.kh && kx < p.kw ? wc[ky * p.kw + kx] : 0;
        };
        int q = 0;
        for (int g = 0; g < p.vertical_groups; ++g)
          for (int64_t kx = 0; kx < p.kw; ++kx, ++q)
            for (int b = 0; b < 4; ++b)
              v[((4 * q + j) * kLanes + lane) * 4 + b] =
                  static_cast<uint8_t>(weight(4 * g + b + (row_first ? 1 : 0), kx));
        for (int g = 0; g < p.last_row_quads; ++g, ++q)
          for (int b = 0; b < 4; ++b)
            v[((4 * q + j) * kLanes + lane) * 4 + b] =
                static_cast<uint8_t>(weight(row_first ? 0 : p.kh - 1, 4 * g + b));
        lane_constants(p, d, wd, c, zero, j, lane, v);
      }
  }
  return p;
}

Plan make_plan(const DepthwiseInt8Params &d, const Tensor &w) {
  Plan p;
  static_cast<PlanGeometry &>(p) = plan_geometry(d);
  p.c = d.channels;
  const int64_t taps = p.kh * p.kw;
  p.groups = static_cast<int>((p.kw + 3) / 4);
  p.quads = static_cast<int>(p.kh) * p.groups;
  p.phases = static_cast<int>(p.c / std::gcd<int64_t>(p.c, 64));
  p.vectors = (p.out_w * p.c + 63) / 64;
  p.phase_blocks = p.vectors >= 4 * p.phases;
  // Pixels per phase row: out_w outputs and the kernel's reach beyond them, then a vector's
  // slack (read into lanes that are not stored), rows 64-byte aligned.
  const int64_t width = p.out_w + (p.kw - 1) / p.sw;
  p.row_bytes = align64(width * p.c + kSlack);
  p.gathered = p.sw == 2 && p.c < 64 && cpu_allows_avx512vbmi();
  if (p.gathered) {
    // The padded row holds the image and every byte a tap's three source vectors reach.
    const int64_t last = 64 * (p.vectors - 1);
    p.row_bytes =
        std::max(p.row_bytes, align64(std::max((p.in_w + p.pad_left) * p.c,
                                               last + last / p.c * p.c + (p.kw - 1) * p.c + 192)));
    p.gather = std::make_shared<std::vector<Plan::Vector>>(static_cast<size_t>(2 * p.phases));
    p.from_third.assign(static_cast<size_t>(p.phases), 0);
    p.gather_base.resize(static_cast<size_t>(p.phases));
    for (int ph = 0; ph < p.phases; ++ph) {
      const int64_t r = 64 * ph % p.c;
      p.gather_base[static_cast<size_t>(ph)] = 64 * ph + 64 * ph / p.c * p.c;
      uint8_t *low = p.gather->at(static_cast<size_t>(2 * ph)).bytes,
              *high = p.gather->at(static_cast<size_t>(2 * ph + 1)).bytes;
      for (int k = 0; k < 64; ++k) {
        const int64_t index = k + (r + k) / p.c * p.c;  // under 2 * 63 + c
        if (index < 128) {
          low[k] = static_cast<uint8_t>(index);
        } else {
          high[k] = static_cast<uint8_t>(index - 64);  // bit 6: the third vector
          p.from_third[static_cast<size_t>(ph)] |= uint64_t{1} << k;
        }
      }
    }
  }
  p.quad_row_bytes = p.groups * p.vectors * 4 * 64;
  p.row_pairs = p.kh == 3 && p.groups == 1 && p.sh == 1;
  p.ring_rows = p.kh + (p.row_pairs ? 1 : 0);
  p.thread_bytes = 2 * p.row_bytes + p.quad_row_bytes * (1 + p.ring_rows);
  p.flip = d.src_dtype == DType::i8 ? 0x80 : 0;
  const int32_t zero = d.src_zero_point + (p.flip ? 128 : 0);
  p.zero_byte = static_cast<uint8_t>(zero);
  p.rq = requantise_steps(d.dst_dtype == DType::i8, d.dst_zero_point, d.rounds_as_int8_zero_point,
                          d.act_lo, d.act_hi);
  const int8_t *wd = w.data<int8_t>();
  p.rq.add_bias = !bias_joins_accumulators(wd, p.c, taps, d.bias_acc);
  if (strip_quads(d) <= kMaxQuads) return make_strip_plan(p, d, w, zero);
  p.phase_vectors = p.quads * 4 + 12;
  p.table =
      std::make_shared<std::vector<Plan::Vector>>(static_cast<size_t>(p.phases * p.phase_vectors));
  for (int ph = 0; ph < p.phases; ++ph) {
    auto *v = reinterpret_cast<uint8_t *>(p.table->data() + ph * p.phase_vectors);
    for (int j = 0; j < 4; ++j)
      for (int lane = 0; lane < kLanes; ++lane) {
        const int64_t c = (64 * ph + output_byte(j, lane)) % p.c;
        const int8_t *wc = wd + c * taps;
        for (int q = 0; q < p.quads; ++q)
          for (int b = 0; b < 4; ++b) {
            const int64_t ky = q / p.groups, kx = 4 * (q % p.groups) + b;
            const int8_t weight = kx < p.kw ? wc[ky * p.kw + kx] : 0;
            v[((4 * q + j) * kLanes + lane) * 4 + b] = static_cast<uint8_t>(weight);
          }
        lane_constants(p, d, wd, c, zero, j, lane, v);
      }
  }
  return p;
}

}  // namespace

std::unique_ptr<Kernel> make_depthwise_int8(const DepthwiseInt8Params &d, const Tensor &weights,
                                            std::string *why_not) {
  if (!own_depthwise_available()) {
    refuse(why_not, "no AVX-512 VNNI here");
    return nullptr;
  }
  if (!check(d, weights, why_not)) return nullptr;
  auto plan = std::make_shared<const Plan>(make_plan(d, weights));
  const RowFn fn = plan->strips          ? nullptr
                   : plan->rq.dst_signed ? row_fn<true>(plan->quads, requantise_form(plan->rq))
                                         : row_fn<false>(plan->quads, requantise_form(plan->rq));
  const TileFn strip_fn = !plan->strips         ? nullptr
                          : plan->rq.dst_signed ? tile_fn<true>(plan->quads)
                                                : tile_fn<false>(plan->quads);
  const PairFn pairs = !plan->row_pairs      ? nullptr
                       : plan->rq.dst_signed ? pair_fn<true>(requantise_form(plan->rq))
                                             : pair_fn<false>(requantise_form(plan->rq));
  auto run = [fn, strip_fn, pairs](const Plan &p, const uint8_t *src, uint8_t *dst,
                                   uint8_t *scratch, int64_t begin, int64_t end) {
    if (strip_fn)
      run_strip_rows(p, strip_fn, src, dst, scratch, begin, end);
    else
      run_rows(p, fn, pairs, src, dst, scratch, begin, end);
  };
  const int64_t rows = d.batch * d.out_h;
  const uint64_t macs =
      static_cast<uint64_t>(rows * d.out_w * d.channels * d.kernel_h * d.kernel_w);
  // Each thread keeps its source rows in its own scratch: as many as the compile's threads.
  const int threads = std::max(1, omp_get_max_threads());
  auto k = make_kernel(
      [plan, run, rows, macs, threads](ExecContext &ec, const void *const *in, void *const *out) {
        const auto *src = static_cast<const uint8_t *>(in[0]);
        auto *dst = static_cast<uint8_t *>(out[0]);
        auto *scratch = static_cast<uint8_t *>(ec.scratch);
        const Plan &p = *plan;
        split_own_kernel(rows, 1, macs, threads, [&](int t, int64_t begin, int64_t end) {
          run(p, src, dst, scratch + t * p.thread_bytes, begin, end);
        });
      });
  k->scratch_bytes = static_cast<size_t>(plan->thread_bytes * threads);
  k->macs = macs;
  k->impl = "axstream depthwise int8 " + std::to_string(d.kernel_h) + "x" +
            std::to_string(d.kernel_w) + "/" + std::to_string(d.stride_h) +
            (plan->strips ? " (AVX-512 VNNI, NHWC channel strips)" : " (AVX-512 VNNI, NHWC rows)");
  return k;
}

}  // namespace axstream::engine
