// axstream.QConcat: Concat of int8/uint8 tensors into one quantised output (made by passes.cc
// from DequantizeLinear -> Concat -> QuantizeLinear). Inputs: x_0..x_{k-1}, then per input a
// 256-entry requantisation table (constant, the output's type) or none when x_i already has
// the output's parameters. With _nhwc=1 the 4-D tensors are NHWC and the axis is C (1); a
// constant input of one byte repeated (a channel Pad's zero points) is a fill, the same in
// either layout.
//
// Each input is a run of `bytes` per outer step (an NHWC pixel's channels: often 8..64 bytes),
// written at its offset in the output's step. Where the output's step is under 64 bytes and the
// CPU has VBMI (BlazeFace's channel pads: 24 channels and 4 zero points), the output is written
// 64 bytes at a time, each vector gathered from the inputs by byte permutes
// (qconcat_vectors.h). Otherwise the kernel goes input by input over a block of steps, so with
// AVX-512 each run is one masked load and store (or a vector fill, or VBMI permutes through
// byte_lookup_runs when it has a table) instead of a memcpy, memset or byte_lookup call per
// run; runs of 512 bytes and more (NCHW planes) keep memcpy/memset. (Building a whole pixel in
// one register, fills preset and each input merged in by a masked load, measured slower on
// BlazeFace's pads: its per-pixel loop over the inputs' descriptions reloads them after each
// store.)
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

#include "../cpu_features.h"
#include "../parallel.h"
#include "byte_lookup.h"
#include "common.h"
#include "copy_runs.h"
#include "qconcat_vectors.h"

namespace axstream::engine {
namespace {

// Runs at least this long are copied and filled by memcpy/memset, which do as well there.
constexpr int64_t kLongRun = 512;
// Outer steps per block: a block's output (steps x the output's step) stays in L1/L2 while
// each input writes its runs into it, and blocks are what threads share.
constexpr int64_t kStepsPerBlock = 256;

// `count` runs of `run` bytes of `value` at y, every `y_stride` bytes.
__attribute__((target("avx512f,avx512bw"))) void fill_runs_avx512(uint8_t value, int64_t run,
                                                                  uint8_t *y, int64_t y_stride,
                                                                  int64_t count) {
  const __m512i v = _mm512_set1_epi8(static_cast<char>(value));
  const int64_t full = run / 64 * 64, tail = run - full;
  const __mmask64 mask = tail ? (__mmask64{1} << tail) - 1 : 0;
  for (int64_t s = 0; s < count; ++s, y += y_stride) {
    for (int64_t c = 0; c < full; c += 64) _mm512_storeu_si512(y + c, v);
    if (tail) _mm512_mask_storeu_epi8(y + full, mask, v);
  }
}

// Outer steps [first, first + steps) input by input.
void concat_parts(const std::vector<ConcatPart> &parts, int64_t out_bytes, bool avx512,
                  const void *const *in, uint8_t *y, int64_t first, int64_t steps) {
  for (size_t i = 0; i < parts.size(); ++i) {
    const ConcatPart &p = parts[i];
    const uint8_t *x = static_cast<const uint8_t *>(in[i]) + first * p.bytes;
    uint8_t *out = y + first * out_bytes + p.offset;
    const bool vector = avx512 && p.bytes < kLongRun;
    switch (p.kind) {
      case ConcatPart::Kind::fill:
        if (vector) {
          fill_runs_avx512(p.fill_byte, p.bytes, out, out_bytes, steps);
        } else {
          for (int64_t s = 0; s < steps; ++s, out += out_bytes)
            std::memset(out, p.fill_byte, static_cast<size_t>(p.bytes));
        }
        break;
      case ConcatPart::Kind::lookup:
        byte_lookup_runs(x, p.bytes, out, out_bytes, steps, p.table.data(), p.flip);
        break;
      case ConcatPart::Kind::copy:
        copy_runs(x, p.bytes, out, out_bytes, p.bytes, steps);
        break;
    }
  }
}

// The blocks of kStepsPerBlock outer steps, shared by threads where the tensor is big enough:
// each written by the whole-vector form where there is one (short steps on VBMI), else input
// by input.
void concat(const std::vector<ConcatPart> &parts, const ConcatVectors *vectors, int64_t outer,
            int64_t out_bytes, bool avx512, const void *const *in, uint8_t *y) {
  const int64_t blocks = (outer + kStepsPerBlock - 1) / kStepsPerBlock;
  const bool split = blocks > 1 && worth_splitting(outer * out_bytes, int64_t{1} << 16);
  parallel_for(
      blocks, split, [&](int64_t block) __attribute__((always_inline)) {
        const int64_t first = block * kStepsPerBlock;
        const int64_t steps = std::min(kStepsPerBlock, outer - first);
        if (vectors)
          vectors->run(in, y, outer, first, steps);
        else
          concat_parts(parts, out_bytes, avx512, in, y, first, steps);
      });
}

std::unique_ptr<Kernel> compile_qconcat(OpContext &ctx) {
  if (ctx.input_count() < 2 || ctx.input_count() % 2)
    ctx.fail("QConcat takes k inputs and k tables, got " + std::to_string(ctx.input_count()));
  size_t k = ctx.input_count() / 2;
  for (size_t i = 0; i < k; ++i)
    if (!ctx.has_input(i)) ctx.fail("QConcat input " + std::to_string(i) + " is missing");
  const Shape &first = ctx.in_shape(0);
  int64_t axis = ctx.axis(ctx.attr_i("axis", 0), first.size());
  Shape out = first;
  out[axis] = 0;
  for (size_t i = 0; i < k; ++i) {
    const Shape &s = ctx.in_shape(i);
    bool fits = s.size() == first.size();
    for (size_t d = 0; fits && d < s.size(); ++d)
      fits = static_cast<int64_t>(d) == axis || s[d] == first[d];
    if (!fits)
      ctx.fail("input " + std::to_string(i) + " " + shape_str(s) + " does not concatenate with " +
               shape_str(first) + " on axis " + std::to_string(axis));
    out[axis] += s[axis];
  }
  DType y_type = ctx.attr_i("_out_int8", 1) ? DType::i8 : DType::u8;
  ctx.set_output(0, y_type, out);
  if (ctx.infer_only()) return nullptr;
  bool nhwc = ctx.attr_i("_nhwc", 0) != 0;
  if (nhwc && (first.size() != 4 || axis != 1)) ctx.fail("_nhwc needs 4-D inputs and axis 1");
  std::vector<ConcatPart> parts(k);
  int64_t out_bytes = 0;
  size_t fills = 0, lookups = 0;
  for (size_t i = 0; i < k; ++i) {
    DType t = ctx.in_dtype(i);
    if (t != DType::i8 && t != DType::u8)
      ctx.unsupported("QConcat of " + std::string(dtype_name(t)));
    const Shape &s = ctx.in_shape(i);
    ConcatPart &p = parts[i];
    p.bytes = nhwc ? s[1] : product(s, axis, s.size());
    p.offset = out_bytes;
    out_bytes += p.bytes;
    p.flip = t == DType::i8 ? 0x80 : 0;  // int8 x indexes from -128
    if (ctx.has_input(k + i)) {
      const Tensor &table = ctx.require_constant(k + i, "table");
      if (table.count() != 256 || table.dtype != y_type)
        ctx.fail("table " + std::to_string(i) + " must hold 256 values of the output type");
      p.kind = ConcatPart::Kind::lookup;
      std::copy(table.bytes.begin(), table.bytes.begin() + 256, p.table.begin());
      ++lookups;
    } else if (t != y_type) {
      ctx.fail("input " + std::to_string(i) + " has another type than the output and no table");
    } else if (const Tensor *c = ctx.constant(i); c && c->is_one_repeated_int8()) {
      p.kind = ConcatPart::Kind::fill;
      p.fill_byte = c->bytes.front();
      ++fills;
    }
  }
  int64_t outer = nhwc ? out[0] * out[2] * out[3] : product(out, 0, axis);
  int64_t count = product(out, 0, out.size());
  const bool avx512 = cpu_allows_avx512bw();
  // A block's first step is a multiple of the vector form's period (a power of 2 up to 64).
  static_assert(kStepsPerBlock % 64 == 0);
  // The whole-vector form where it measured faster: short steps with one input gathered, the
  // others fills (BlazeFace's channel pads: ~2.5x). With two or three inputs gathered (YOLOv8n's
  // concat_30: three tables into 48 bytes) it measured as fast at best and up to 1.5x slower
  // than input by input (docs/performance.md, "QConcat whole-vector form").
  int64_t gathered = 0;
  for (const ConcatPart &p : parts) gathered += p.kind != ConcatPart::Kind::fill && p.bytes > 0;
  std::shared_ptr<const ConcatVectors> vectors;
  if (out_bytes > 0 && out_bytes < kConcatVectorStepBytes && gathered <= 1 &&
      k <= ConcatVectors::kMaxInputs && concat_vectors_allowed())
    vectors = std::make_shared<const ConcatVectors>(parts, out_bytes);
  auto kern = make_kernel([parts = std::move(parts), vectors, outer, out_bytes, avx512](
                              ExecContext &, const void *const *in, void *const *o) {
    concat(parts, vectors.get(), outer, out_bytes, avx512, in, static_cast<uint8_t *>(o[0]));
  });
  kern->macs = static_cast<uint64_t>(count);
  // What runs: the layout, how many inputs are copies, fills and lookups, the vector path.
  kern->impl = std::string(nhwc ? "int8 concat nhwc: " : "int8 concat: ") +
               std::to_string(k - fills - lookups) + " copied, " + std::to_string(fills) +
               " filled, " + std::to_string(lookups) + " requantised" +
               (vectors  ? ", vbmi 64-byte vectors"
                : avx512 ? ", avx512"
                         : "");
  return kern;
}

}  // namespace

AXSTREAM_ENGINE_OP_EX(AxQConcat, "axstream", "QConcat", 1, 1, compile_qconcat, false)

}  // namespace axstream::engine
