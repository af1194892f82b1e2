#include "stem_int8.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "../cpu_features.h"
#include "../parallel.h"
#include "axstream/error.h"
#include "intrinsics.h"
#include "requantise_lanes.h"
#include "stem_int8_vnni.h"

namespace axstream::engine {

bool own_stem_available() { return cpu_allows_amx_int8() || cpu_allows_avx512vnni(); }

void check_own_stem_setting(const char *setting) {
  const std::string asked = setting ? setting : "auto";
  if (asked != "auto" && asked != "1" && asked != "0")
    throw InvalidConfiguration("AXSTREAM_ENGINE_OWN_STEM: expected auto, 1 or 0, got '" + asked +
                               "'");
}

bool own_stem_chosen(const StemInt8Params &p, const char *setting) {
  return own_stem_chosen(p, setting, cpu_allows_amx_int8());
}

bool own_stem_chosen(const StemInt8Params &p, const char *setting, bool amx_host) {
  check_own_stem_setting(setting);
  const std::string asked = setting ? setting : "auto";
  if (asked == "1") return true;
  if (asked == "0") return false;
  const int64_t taps = p.kernel_h * p.kernel_w;
  // AMX form: measured per step against oneDNN's pick on the stems of the cached models
  // (docs/runtime.md "The stem kernel", docs/performance.md): 5x5 and larger kernels ran
  // 1.09-1.33x as fast as oneDNN (BlazeFace's 5x5/2 against jit_int8, ResNet-50's 7x7/2 and
  // YOLOv5s' 6x6/2 against its AMX jit kernel); the 3x3/2 stems 0.73-1.02x (16 output channels
  // 0.73-0.85x: PP-OCR, YOLOv8n), so those stay on oneDNN.
  if (amx_host) return taps >= 25;
  // AVX-512 VNNI form (hosts without AMX; measured on an AMD EPYC, Zen 4, against oneDNN's
  // jit_int8 and brgconv_1x1): BlazeFace's 5x5/2 4->24 1.15-1.31x; PP-OCR cls's 3x3/2 4->8
  // 1.05-1.23x and its 1x1 2->8 1.65-1.79x; YOLOv5s' 6x6/2 4->32 0.97-1.05x and the 3x3/2 stems
  // to 16 and 32 channels 0.70-1.09x (PP-OCR det and rec, YOLOv8n, SSD-MobileNet), so those stay
  // on oneDNN. Not measured on an AMX host, which takes the AMX form.
  return p.out_channels <= 8 || (taps >= 25 && p.out_channels <= 24);
}

namespace {

// How it works. Output pixels go in blocks of up to 16 of one output row (one AMX tile row
// each). With few input channels a pixel's taps in kernel row ky are kernel_w * in_channels
// contiguous source bytes, and the next pixel's start stride_w * in_channels bytes further: so
// one tile load with that row stride reads, for 16 pixels, 64 source bytes from each pixel's
// first tap of row ky, the pixel's receptive-field row and the bytes after it, with no im2col
// copy. The weights are packed once, at compile time, into AMX's B layout per kernel row (16
// rows of 4 reduction bytes by 16 output channels): reduction byte kx * in_channels + ci holds
// w[oc][ci][ky][kx] for kx < kernel_w and 0 past the kernel, so the bytes after the window
// count nothing. Per kernel row, the A tile meets one B tile per 16 output channels (tdpbssd
// for an int8 source, tdpbusd for uint8: no flip) into up to four 16x16 int32 C tiles, stored
// to a small buffer and requantised per pixel and 16 channels (requantise_lanes.h, as the
// depthwise kernel). Blocks whose windows reach the padding (a row's first and last, the rows
// above and below the image) or whose 64-byte reads would pass the source's end read a staged
// copy of their source row span instead, the padding as the source zero point. The
// accumulators hold sum(x * w); the per-channel initial value -zero_point * sum(w) (an integer
// bias too where it joins) makes it oneDNN's sum((x - zero_point) * w), exactly.

constexpr int kTileRows = 16;   // pixels per block, rows of an A or C tile
constexpr int kTileBytes = 64;  // bytes per tile row
constexpr int kMaxNTiles = 4;   // 64 output channels
constexpr int kMaxKernelRows = 8;
constexpr int64_t kMaxStride = 4;
// A staged span: 16 pixels' starts stride_w * in_channels apart and 64 bytes from the last.
constexpr int64_t kSpanBytes = (kTileRows - 1) * kMaxStride * 4 + kTileBytes;

struct alignas(64) Vector {
  uint8_t bytes[64];
};

struct Plan : PlanGeometry {
  int64_t cin = 0, cout = 0;
  int64_t pixel_stride = 0;  // stride_w * in_channels: bytes between pixels' first taps
  int64_t span_bytes = 0;    // 15 * pixel_stride + 64: the bytes a block's tile load reads
  int64_t src_bytes = 0;
  int n_tiles = 0;
  bool src_signed = true;
  uint8_t zero_byte = 0;  // the source zero point's bits
  RequantiseSteps rq;
  int32_t lower = 0, upper = 0;  // rq's byte bounds as int32 values of the output type
  // B tiles (kernel_h x n_tiles, 1 KB each), then per output tile: initial accumulators,
  // biases and scales (one vector each).
  std::vector<Vector> table;
  size_t constants_at = 0;  // vector index of the first output tile's constants
};

// AMX tile configuration (palette 1): tiles 0-3 the accumulators, 4 the pixels, 5-7 the
// weights, all 16 rows of 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette_id = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

#define AXSTREAM_AMX                                                        \
  __attribute__((                                                           \
      target("amx-tile,amx-int8,avx512f,avx512bw,avx512vl,avx512vnni,avx2," \
             "fma,bmi,bmi2")))

// GCC's tile intrinsics are asm statements that take the buffers' addresses in registers, not
// as memory operands: the stores into those buffers must be made before them.
inline void compiler_barrier() { __asm__ volatile("" ::: "memory"); }

// The span a block's tile load reads for source row `row` (null: a padding row), from pixel
// `ix` on (possibly left of the image), the pixels outside [0, in_w) as the zero point.
void stage_span(const Plan &p, const uint8_t *row, int64_t ix, uint8_t *to) {
  std::memset(to, p.zero_byte, static_cast<size_t>(p.span_bytes));
  if (!row) return;
  // Bytes [begin, end) of the span lie in the image's row.
  const int64_t begin = std::max<int64_t>(0, -ix * p.cin);
  const int64_t end = std::min<int64_t>(p.span_bytes, (p.in_w - ix) * p.cin);
  if (end > begin)
    std::memcpy(to + begin, row + ix * p.cin + begin, static_cast<size_t>(end - begin));
}

// The C tiles of kGroup blocks (kGroup * kNTiles <= 4 accumulator tiles, so that as many
// independent chains of tdp* run at a time): per kernel row, each block's A tile (its pixels,
// `a[g][ky]`, pixel_stride apart) times that row's B tiles. Tile numbers are the
// instructions' immediates, hence one body per layout.
template <int kNTiles, int kGroup, bool kSigned>
AXSTREAM_AMX void multiply_group(const Plan &p, const uint8_t *const (*a)[kMaxKernelRows],
                                 const uint8_t *b, int32_t *c) {
#define AXSTREAM_STEM_DP(dst, x, w) \
  do {                              \
    if constexpr (kSigned)          \
      _tile_dpbssd(dst, x, w);      \
    else                            \
      _tile_dpbusd(dst, x, w);      \
  } while (0)
  static_assert(kGroup * kNTiles <= 4, "four accumulator tiles");
  constexpr int64_t kB = kTileRows * kTileBytes;  // bytes per B tile
  constexpr int64_t kBlockInts = kTileRows * kNTiles * 16;
  const int64_t ps = p.pixel_stride;
  _tile_zero(0);
  if constexpr (kGroup * kNTiles > 1) _tile_zero(1);
  if constexpr (kGroup * kNTiles > 2) _tile_zero(2);
  if constexpr (kGroup * kNTiles > 3) _tile_zero(3);
  for (int64_t ky = 0; ky < p.kh; ++ky) {
    const uint8_t *bk = b + ky * kNTiles * kB;
    if constexpr (kNTiles == 1) {
      // Four blocks, one B tile.
      _tile_loadd(6, bk, kTileBytes);
      _tile_loadd(4, a[0][ky], ps);
      AXSTREAM_STEM_DP(0, 4, 6);
      if constexpr (kGroup > 1) {
        _tile_loadd(5, a[1][ky], ps);
        AXSTREAM_STEM_DP(1, 5, 6);
      }
      if constexpr (kGroup > 2) {
        _tile_loadd(4, a[2][ky], ps);
        AXSTREAM_STEM_DP(2, 4, 6);
      }
      if constexpr (kGroup > 3) {
        _tile_loadd(5, a[3][ky], ps);
        AXSTREAM_STEM_DP(3, 5, 6);
      }
    } else if constexpr (kNTiles == 2) {
      // Two blocks, two B tiles.
      _tile_loadd(6, bk, kTileBytes);
      _tile_loadd(7, bk + kB, kTileBytes);
      _tile_loadd(4, a[0][ky], ps);
      AXSTREAM_STEM_DP(0, 4, 6);
      AXSTREAM_STEM_DP(1, 4, 7);
      if constexpr (kGroup > 1) {
        _tile_loadd(5, a[1][ky], ps);
        AXSTREAM_STEM_DP(2, 5, 6);
        AXSTREAM_STEM_DP(3, 5, 7);
      }
    } else {
      // One block, three or four B tiles.
      _tile_loadd(4, a[0][ky], ps);
      _tile_loadd(6, bk, kTileBytes);
      AXSTREAM_STEM_DP(0, 4, 6);
      _tile_loadd(7, bk + kB, kTileBytes);
      AXSTREAM_STEM_DP(1, 4, 7);
      _tile_loadd(5, bk + 2 * kB, kTileBytes);
      AXSTREAM_STEM_DP(2, 4, 5);
      if constexpr (kNTiles > 3) {
        _tile_loadd(6, bk + 3 * kB, kTileBytes);
        AXSTREAM_STEM_DP(3, 4, 6);
      }
    }
  }
#undef AXSTREAM_STEM_DP
  constexpr int64_t stride = kNTiles * kTileBytes;
  if constexpr (kNTiles == 1) {
    _tile_stored(0, c, stride);
    if constexpr (kGroup > 1) _tile_stored(1, c + kBlockInts, stride);
    if constexpr (kGroup > 2) _tile_stored(2, c + 2 * kBlockInts, stride);
    if constexpr (kGroup > 3) _tile_stored(3, c + 3 * kBlockInts, stride);
  } else if constexpr (kNTiles == 2) {
    _tile_stored(0, c, stride);
    _tile_stored(1, c + 16, stride);
    if constexpr (kGroup > 1) {
      _tile_stored(2, c + kBlockInts, stride);
      _tile_stored(3, c + kBlockInts + 16, stride);
    }
  } else {
    _tile_stored(0, c, stride);
    _tile_stored(1, c + 16, stride);
    _tile_stored(2, c + 32, stride);
    if constexpr (kNTiles > 3) _tile_stored(3, c + 48, stride);
  }
}

// Pixel rows [0, count) of the C buffer requantised to the output at `out` (cout bytes each).
template <int kNTiles>
AXSTREAM_NO_CONTRACT AXSTREAM_AMX void requantise_block(const Plan &p, const int32_t *c,
                                                        int64_t count, uint8_t *out) {
  const auto *k = reinterpret_cast<const __m512i *>(p.table.data() + p.constants_at);
  const __m512i lower = _mm512_set1_epi32(p.lower), upper = _mm512_set1_epi32(p.upper);
  const int last_bytes = static_cast<int>(p.cout - 16 * (kNTiles - 1));  // 1 to 16
  const __mmask16 last_mask = static_cast<__mmask16>((1u << last_bytes) - 1);
  for (int64_t r = 0; r < count; ++r, out += p.cout) {
    for (int t = 0; t < kNTiles; ++t) {
      const __m512i *kt = k + 3 * t;
      const __m512i acc = _mm512_add_epi32(_mm512_load_si512(c + r * kNTiles * 16 + t * 16), kt[0]);
      __m512i y =
          requantise_lanes(p.rq, acc, _mm512_castsi512_ps(kt[1]), _mm512_castsi512_ps(kt[2]));
      y = _mm512_min_epi32(_mm512_max_epi32(y, lower), upper);
      const __m128i bytes = _mm512_cvtepi32_epi8(y);
      if (t + 1 < kNTiles || last_bytes == 16)
        _mm_storeu_si128(reinterpret_cast<__m128i *>(out + 16 * t), bytes);
      else
        _mm_mask_storeu_epi8(out + 16 * t, last_mask, bytes);
    }
  }
}

// Output rows [begin, end) of batch x out_h, in blocks of up to 16 pixels of one row, kGroup
// blocks at a time.
template <int kNTiles, int kGroup, bool kSigned>
AXSTREAM_AMX void run_rows(const Plan &p, const uint8_t *src, uint8_t *dst, int64_t begin,
                           int64_t end) {
  alignas(64) uint8_t staged[kGroup][kMaxKernelRows][kSpanBytes];
  alignas(64) int32_t c[kGroup * kTileRows * kNTiles * 16];
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.rows[t] = kTileRows;
    config.colsb[t] = kTileBytes;
  }
  compiler_barrier();
  _tile_loadconfig(&config);
  const uint8_t *b = p.table.front().bytes;
  const uint8_t *a[kGroup][kMaxKernelRows];
  const int64_t row_blocks = (p.out_w + kTileRows - 1) / kTileRows;
  const int64_t first = begin * row_blocks, blocks = end * row_blocks;
  // How far ahead the next group's source lies: prefetched, since tile loads wait for each row
  // they miss (a block's rows are overlapping loads over ~3 cache lines per kernel row). Two
  // lines per kernel row and block, one group ahead into L1 and four into L2, ran 6-8% faster
  // than every line of the span one group ahead into L1 (docs/performance.md).
  const int64_t ahead = kGroup * kTileRows * p.pixel_stride;
  for (int64_t i = first; i < blocks; i += kGroup) {
    int64_t count[kGroup];
    uint8_t *out[kGroup];
    bool staged_any = false;
    for (int g = 0; g < kGroup; ++g) {
      // Past the last block, a group repeats it (its sums are not stored).
      const int64_t block = std::min(i + g, blocks - 1), r = block / row_blocks;
      const int64_t ox = block % row_blocks * kTileRows;
      count[g] = i + g < blocks ? std::min<int64_t>(kTileRows, p.out_w - ox) : 0;
      out[g] = dst + (r * p.out_w + ox) * p.cout;
      const int64_t n = r / p.out_h, oy = r % p.out_h, iy0 = oy * p.sh - p.pad_top;
      const uint8_t *image = src + n * p.in_h * p.in_w * p.cin;
      const int64_t ix = ox * p.sw - p.pad_left;  // the block's first pixel's first tap
      // Within the row: every window of the block's pixels (not those past its count, whose
      // sums are not stored); within the source: all 16 tile rows' 64 bytes.
      const int64_t pixels = std::max<int64_t>(count[g], 1);
      const bool inside_w = ix >= 0 && (ox + pixels - 1) * p.sw - p.pad_left + p.kw <= p.in_w;
      for (int64_t ky = 0; ky < p.kh; ++ky) {
        const int64_t iy = iy0 + ky;
        const uint8_t *row = iy >= 0 && iy < p.in_h ? image + iy * p.in_w * p.cin : nullptr;
        if (row && inside_w && (row - src) + ix * p.cin + p.span_bytes <= p.src_bytes) {
          a[g][ky] = row + ix * p.cin;
          // The two lines past this block's span, a group ahead into L1 and four into L2.
          const char *next = reinterpret_cast<const char *>(a[g][ky] + p.span_bytes);
          _mm_prefetch(next + ahead, _MM_HINT_T0);
          _mm_prefetch(next + ahead + kTileBytes, _MM_HINT_T0);
          _mm_prefetch(next + 4 * ahead, _MM_HINT_T1);
          _mm_prefetch(next + 4 * ahead + kTileBytes, _MM_HINT_T1);
        } else {
          stage_span(p, row, ix, staged[g][ky]);
          a[g][ky] = staged[g][ky];
          staged_any = true;
        }
      }
    }
    if (staged_any) compiler_barrier();
    multiply_group<kNTiles, kGroup, kSigned>(p, a, b, c);
    for (int g = 0; g < kGroup; ++g)
      requantise_block<kNTiles>(p, c + g * kTileRows * kNTiles * 16, count[g], out[g]);
  }
  _tile_release();
}

using RowsFn = void (*)(const Plan &, const uint8_t *, uint8_t *, int64_t, int64_t);

template <bool kSigned>
RowsFn rows_fn(int n_tiles) {
  switch (n_tiles) {
    case 1:
      return run_rows<1, 4, kSigned>;
    case 2:
      return run_rows<2, 2, kSigned>;
    case 3:
      return run_rows<3, 1, kSigned>;
    default:
      return run_rows<4, 1, kSigned>;
  }
}

bool refuse(std::string *why_not, const std::string &why) {
  if (why_not) *why_not = why;
  return false;
}

bool check(const StemInt8Params &d, const Tensor &w, std::string *why_not) {
  if (d.in_channels < 1 || d.in_channels > 4) return refuse(why_not, "over 4 input channels");
  if (d.out_channels < 1 || d.out_channels > 16 * kMaxNTiles)
    return refuse(why_not, "over 64 output channels");
  if (d.kernel_h < 1 || d.kernel_w < 1 || d.kernel_h > kMaxKernelRows ||
      d.kernel_w * d.in_channels > kTileBytes)
    return refuse(why_not, "a kernel past 8 rows or a kernel row past 64 bytes");
  if (d.stride_h < 1 || d.stride_w < 1 || d.stride_w > kMaxStride)
    return refuse(why_not, "a stride below 1 or a horizontal stride past 4");
  if (d.pad_top < 0 || d.pad_left < 0 || d.pad_top >= d.kernel_h || d.pad_left >= d.kernel_w)
    return refuse(why_not, "pads outside [0, kernel)");
  if ((d.src_dtype != DType::i8 && d.src_dtype != DType::u8) ||
      (d.dst_dtype != DType::i8 && d.dst_dtype != DType::u8))
    return refuse(why_not, "activations not int8 or uint8");
  const int64_t per_channel = d.in_channels * d.kernel_h * d.kernel_w;
  if (w.dtype != DType::i8 || w.count() != d.out_channels * per_channel)
    return refuse(why_not, "weights not int8 (out, in, kh, kw)");
  if (static_cast<int64_t>(d.output_scales.size()) != d.out_channels ||
      static_cast<int64_t>(d.bias_acc.size()) != d.out_channels)
    return refuse(why_not, "per-channel constants of another size");
  if (d.batch < 1 || d.out_w < 1 || d.out_h < 1 || d.in_h < 1 || d.in_w < 1)
    return refuse(why_not, "an empty input or output");
  if (!scaled_accumulators_fit(w.data<int8_t>(), d.out_channels, per_channel, d.bias_acc,
                               d.output_scales))
    return refuse(why_not, "a scaled accumulator could leave int32");
  return true;
}

Plan make_plan(const StemInt8Params &d, const Tensor &w) {
  Plan p;
  static_cast<PlanGeometry &>(p) = plan_geometry(d);
  p.cin = d.in_channels;
  p.cout = d.out_channels;
  p.pixel_stride = p.sw * p.cin;
  p.span_bytes = (kTileRows - 1) * p.pixel_stride + kTileBytes;
  p.src_bytes = p.batch * p.in_h * p.in_w * p.cin;
  p.n_tiles = static_cast<int>((p.cout + 15) / 16);
  p.src_signed = d.src_dtype == DType::i8;
  p.zero_byte = static_cast<uint8_t>(d.src_zero_point);
  const int8_t *wd = w.data<int8_t>();
  const int64_t per_channel = p.cin * p.kh * p.kw;
  p.rq = requantise_steps(d.dst_dtype == DType::i8, d.dst_zero_point, d.rounds_as_int8_zero_point,
                          d.act_lo, d.act_hi);
  p.rq.add_bias = !bias_joins_accumulators(wd, p.cout, per_channel, d.bias_acc);
  const bool dst_signed = p.rq.dst_signed;
  p.lower = dst_signed ? static_cast<int8_t>(p.rq.lower) : p.rq.lower;
  p.upper = dst_signed ? static_cast<int8_t>(p.rq.upper) : p.rq.upper;
  const size_t b_vectors = static_cast<size_t>(p.kh * p.n_tiles) * kTileRows;
  p.constants_at = b_vectors;
  p.table.assign(b_vectors + static_cast<size_t>(3 * p.n_tiles), Vector{});
  // B tile (ky, t), row r, column j, byte i: output channel 16t + j, reduction byte
  // 4r + i = kx * in_channels + ci of the pixel's span in kernel row ky (0 past the kernel).
  for (int64_t ky = 0; ky < p.kh; ++ky)
    for (int t = 0; t < p.n_tiles; ++t) {
      uint8_t *tile = p.table[static_cast<size_t>((ky * p.n_tiles + t) * kTileRows)].bytes;
      for (int r = 0; r < kTileRows; ++r)
        for (int j = 0; j < 16; ++j)
          for (int i = 0; i < 4; ++i) {
            const int64_t oc = 16 * t + j, k = 4 * r + i, kx = k / p.cin, ci = k % p.cin;
            if (oc >= p.cout || kx >= p.kw) continue;
            tile[r * kTileBytes + 4 * j + i] =
                static_cast<uint8_t>(wd[((oc * p.cin + ci) * p.kh + ky) * p.kw + kx]);
          }
    }
  for (int64_t oc = 0; oc < p.cout; ++oc) {
    int32_t sum = 0;
    for (int64_t i = 0; i < per_channel; ++i) sum += wd[oc * per_channel + i];
    const int32_t init =
        -d.src_zero_point * sum + (p.rq.add_bias ? 0 : static_cast<int32_t>(d.bias_acc[oc]));
    const float bias = p.rq.add_bias ? d.bias_acc[oc] : 0.f, scale = d.output_scales[oc];
    const size_t at = p.constants_at + static_cast<size_t>(3 * (oc / 16));
    const size_t lane = static_cast<size_t>(oc % 16) * 4;
    std::memcpy(p.table[at].bytes + lane, &init, 4);
    std::memcpy(p.table[at + 1].bytes + lane, &bias, 4);
    std::memcpy(p.table[at + 2].bytes + lane, &scale, 4);
  }
  return p;
}

}  // namespace

std::unique_ptr<Kernel> make_stem_int8(const StemInt8Params &d, const Tensor &weights,
                                       std::string *why_not) {
  if (!own_stem_available()) {
    refuse(why_not, "no AMX-INT8 or AVX-512 VNNI here");
    return nullptr;
  }
  if (!check(d, weights, why_not)) return nullptr;
  if (!cpu_allows_amx_int8()) return make_stem_int8_vnni(d, weights);
  auto plan = std::make_shared<const Plan>(make_plan(d, weights));
  const RowsFn fn = plan->src_signed ? rows_fn<true>(plan->n_tiles) : rows_fn<false>(plan->n_tiles);
  return make_stem_kernel(d, plan, fn, "AMX");
}

}  // namespace axstream::engine
