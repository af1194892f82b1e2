#include "qconcat_vectors.h"

#include <immintrin.h>

#include <algorithm>
#include <numeric>

#include "../compiler.h"
#include "../cpu_features.h"
#include "axstream/error.h"

namespace axstream::engine {
namespace {

// table[x] for each byte of x, the table's four quarters in t0..t3: each two-table permute reads
// 128 entries by the index's low 7 bits; bit 7 picks the half.
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) inline __m512i lookup(__m512i t0, __m512i t1,
                                                                             __m512i t2, __m512i t3,
                                                                             __m512i x) {
  const __m512i low = _mm512_permutex2var_epi8(t0, x, t1);
  const __m512i high = _mm512_permutex2var_epi8(t2, x, t3);
  return _mm512_mask_blend_epi8(_mm512_movepi8_mask(x), low, high);
}

}  // namespace

bool concat_vectors_allowed() {
  return cpu_allows_avx512vbmi() && setting_not_zero("AXSTREAM_ENGINE_QCONCAT_VECTOR");
}

ConcatVectors::ConcatVectors(const std::vector<ConcatPart> &parts, int64_t out_bytes)
    : out_bytes_(out_bytes) {
  if (parts.empty() || parts.size() > kMaxInputs || out_bytes < 1 ||
      out_bytes >= kConcatVectorStepBytes)
    throw InternalError("ConcatVectors: " + std::to_string(parts.size()) + " inputs of " +
                        std::to_string(out_bytes) + " bytes per step");
  const int64_t common = std::gcd(out_bytes, int64_t{64});
  steps_per_period_ = 64 / common;
  phases_ = out_bytes / common;
  inputs_.resize(parts.size());
  presets_.resize(static_cast<size_t>(phases_));
  for (size_t i = 0; i < parts.size(); ++i) {
    const ConcatPart &p = parts[i];
    Input &input = inputs_[i];
    input.bytes = p.bytes;
    input.period_bytes = steps_per_period_ * p.bytes;
    input.lookup = p.kind == ConcatPart::Kind::lookup;
    input.fill = p.kind == ConcatPart::Kind::fill;
    if (input.lookup && held_ < 0) held_ = static_cast<int>(i);
    if (input.lookup)
      for (int j = 0; j < 256; ++j) input.table[j] = p.table[static_cast<size_t>(j ^ p.flip)];
  }
  for (int64_t phase = 0; phase < phases_; ++phase) {
    phase_begin_.push_back(static_cast<int64_t>(gathers.size()));
    for (size_t i = 0; i < parts.size(); ++i) {
      const ConcatPart &p = parts[i];
      Gather g;
      g.part = static_cast<int>(i);
      int64_t first_byte = -1;
      for (int lane = 0; lane < 64; ++lane) {
        const int64_t o = phase * 64 + lane;  // in the period's output
        const int64_t step = o / out_bytes, within = o % out_bytes - p.offset;
        if (within < 0 || within >= p.bytes) continue;
        if (p.kind == ConcatPart::Kind::fill) {
          presets_[static_cast<size_t>(phase)].bytes[static_cast<size_t>(lane)] = p.fill_byte;
          continue;
        }
        // An input's bytes in one output vector are consecutive in the input: at most 64.
        const int64_t byte = step * p.bytes + within;
        if (first_byte < 0) first_byte = byte;
        g.index[static_cast<size_t>(lane)] = static_cast<uint8_t>(byte - first_byte);
        g.lanes |= uint64_t{1} << lane;
      }
      if (first_byte < 0) continue;
      g.input_offset = first_byte;
      gathers.push_back(g);
    }
  }
  phase_begin_.push_back(static_cast<int64_t>(gathers.size()));
  // One gather per phase: a single input not a fill (with steps under 64 bytes each input
  // has bytes in every vector).
  if (static_cast<int64_t>(gathers.size()) == phases_) {
    bool one = true;
    for (const Gather &g : gathers) one = one && g.part == gathers.front().part;
    if (one && (!inputs_[static_cast<size_t>(gathers.front().part)].lookup ||
                held_ == gathers.front().part))
      single_ = gathers.front().part;
  }
}

struct ConcatVectorsKernel {
  using Gather = ConcatVectors::Gather;
  using Input = ConcatVectors::Input;

  // One phase's vector: the preset fills, each gathered input's bytes permuted into its lanes.
  // `x` points at each input's bytes of the period; `left` is how many there are from there to
  // the input's end, or null to load 64 bytes unchecked. The first requantised input's table is
  // in held[0..3]; any other's is loaded where it is used.
  __attribute__((target("avx512f,avx512bw,avx512vbmi,bmi2"))) static inline __m512i phase_vector(
      const ConcatVectors &c, int64_t phase, const uint8_t *const *x, const int64_t *left,
      const __m512i *held) {
    const size_t p = static_cast<size_t>(phase);
    __m512i v = _mm512_load_si512(c.presets_[p].bytes.data());
    for (int64_t g = c.phase_begin_[p]; g < c.phase_begin_[p + 1]; ++g) {
      const Gather &gather = c.gathers[static_cast<size_t>(g)];
      const Input &input = c.inputs_[static_cast<size_t>(gather.part)];
      const uint8_t *from = x[gather.part] + gather.input_offset;
      __m512i bytes;
      if (!left) {
        bytes = _mm512_loadu_si512(from);
      } else {
        const int64_t n = left[gather.part] - gather.input_offset;
        // Past the input's end (lanes a partial last vector does not store): nothing loaded.
        bytes = n >= 64 ? _mm512_loadu_si512(from)
                : n > 0 ? _mm512_maskz_loadu_epi8(_bzhi_u64(~uint64_t{0}, static_cast<unsigned>(n)),
                                                  from)
                        : _mm512_setzero_si512();
      }
      if (gather.part == c.held_) {
        bytes = lookup(held[0], held[1], held[2], held[3], bytes);
      } else if (input.lookup) {
        const uint8_t *t = input.table.data();
        bytes = lookup(_mm512_load_si512(t), _mm512_load_si512(t + 64), _mm512_load_si512(t + 128),
                       _mm512_load_si512(t + 192), bytes);
      }
      v = _mm512_mask_permutexvar_epi8(v, gather.lanes, _mm512_load_si512(gather.index.data()),
                                       bytes);
    }
    return v;
  }
};

__attribute__((target("avx512f,avx512bw,avx512vbmi,bmi2"))) void ConcatVectors::run(
    const void *const *in, uint8_t *y, int64_t outer, int64_t first, int64_t steps) const {
  using Kernel = ConcatVectorsKernel;
  const size_t k = inputs_.size();
  const int64_t period_out = steps_per_period_ * out_bytes_;
  const int64_t end = (first + steps) * out_bytes_;  // in y
  int64_t period = first / steps_per_period_;
  // Periods up to `whole` are all in the block, and no load of theirs reaches an input's end.
  int64_t whole = end / period_out;
  std::array<const uint8_t *, kMaxInputs> x{};
  std::array<int64_t, kMaxInputs> left{};
  for (size_t i = 0; i < k; ++i) {
    const Input &input = inputs_[i];
    if (input.fill || input.bytes == 0) continue;  // nothing loaded
    const int64_t total = outer * input.bytes;
    whole = std::min(whole, total < 64 ? 0 : (total - 64) / input.period_bytes);
  }
  __m512i held[4] = {};
  if (held_ >= 0) {
    const uint8_t *t = inputs_[static_cast<size_t>(held_)].table.data();
    for (int q = 0; q < 4; ++q) held[q] = _mm512_load_si512(t + 64 * q);
  }
  auto place = [&](int64_t p) {
    for (size_t i = 0; i < k; ++i) {
      const Input &input = inputs_[i];
      if (input.fill) continue;
      x[i] = static_cast<const uint8_t *>(in[i]) + p * input.period_bytes;
      left[i] = outer * input.bytes - p * input.period_bytes;
    }
  };
  if (single_ >= 0 && period < whole) {
    // One input to gather (a channel pad): its pointer and table in registers, no checks.
    const Input &input = inputs_[static_cast<size_t>(single_)];
    const uint8_t *xp = static_cast<const uint8_t *>(in[single_]) + period * input.period_bytes;
    uint8_t *yp = y + period * period_out;
    const Gather *gathers_data = gathers.data();
    const Preset *presets = presets_.data();
    for (; period < whole; ++period, xp += input.period_bytes) {
      for (int64_t phase = 0; phase < phases_; ++phase, yp += 64) {
        const Gather &gather = gathers_data[phase];
        __m512i bytes = _mm512_loadu_si512(xp + gather.input_offset);
        if (input.lookup) bytes = lookup(held[0], held[1], held[2], held[3], bytes);
        _mm512_storeu_si512(yp, _mm512_mask_permutexvar_epi8(
                                    _mm512_load_si512(presets[phase].bytes.data()), gather.lanes,
                                    _mm512_load_si512(gather.index.data()), bytes));
      }
    }
  }
  for (; period < whole; ++period) {
    place(period);
    uint8_t *yp = y + period * period_out;
    for (int64_t phase = 0; phase < phases_; ++phase, yp += 64)
      _mm512_storeu_si512(yp, Kernel::phase_vector(*this, phase, x.data(), nullptr, held));
  }
  // The block's last periods: loads bounded by the inputs' ends, the last store by the block's.
  for (int64_t at = period * period_out; at < end; ++period) {
    place(period);
    for (int64_t phase = 0; phase < phases_ && at < end; ++phase, at += 64) {
      const __m512i v = Kernel::phase_vector(*this, phase, x.data(), left.data(), held);
      if (end - at >= 64)
        _mm512_storeu_si512(y + at, v);
      else
        _mm512_mask_storeu_epi8(y + at, _bzhi_u64(~uint64_t{0}, static_cast<unsigned>(end - at)),
                                v);
    }
  }
}

}  // namespace axstream::engine
