// Index-mapping ops: Slice (steps, negative indices), Pad (constant/reflect/edge), Gather.
#include "../cpu_features.h"
#include "common.h"
#include "intrinsics.h"

namespace axstream::engine {
namespace {

template <typename T>
void strided_copy(const BroadcastPlan &plan, int64_t base, const T *x, T *y) {
  plan.for_each2([&](int64_t o, int64_t i, int64_t) { y[o] = x[base + i]; });
}

// A Slice of the last axis only (an int8 package's input unpadded from 4 channels to 3, NHWC):
// `rows` runs of `run` bytes, `stride` bytes apart from `offset`. With stride <= 64, the runs of
// 64 / stride rows are one fixed byte permutation of a 64-byte load (AVX-512 VBMI).
struct RowRuns {
  int64_t rows, run, stride, offset;
  uint8_t index[64];
};

__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void copy_row_runs_vbmi(const RowRuns &r,
                                                                               const uint8_t *x,
                                                                               uint8_t *y) {
  const int64_t per_load = 64 / r.stride;
  const __m512i index = _mm512_loadu_si512(r.index);
  auto first_bits = [](int64_t bits) -> __mmask64 {
    return bits >= 64 ? ~__mmask64(0) : (__mmask64(1) << bits) - 1;
  };
  for (int64_t row = 0; row < r.rows; row += per_load) {
    const int64_t rows = std::min(per_load, r.rows - row);
    __m512i bytes = _mm512_maskz_loadu_epi8(first_bits(rows * r.stride), x + row * r.stride);
    _mm512_mask_storeu_epi8(y + row * r.run, first_bits(rows * r.run),
                            _mm512_permutexvar_epi8(index, bytes));
  }
}

std::unique_ptr<Kernel> compile_slice(OpContext &ctx) {
  const Shape &in = ctx.in_shape(0);
  std::vector<int64_t> starts, ends, axes, steps;
  if (ctx.opset() < 10) {
    starts = ctx.attr_ints("starts");
    ends = ctx.attr_ints("ends");
    axes = ctx.attr_ints("axes");
  } else {
    ctx.expect_inputs(3, 5);
    starts = ctx.constant_ints(1, "starts");
    ends = ctx.constant_ints(2, "ends");
    if (ctx.has_input(3)) axes = ctx.constant_ints(3, "axes");
    if (ctx.has_input(4)) steps = ctx.constant_ints(4, "steps");
  }
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    ctx.fail("starts, ends, axes and steps differ in length");
  size_t r = in.size();
  Shape begin(r, 0), step(r, 1), out = in;
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t a = ctx.axis(axes[i], r);
    int64_t dim = in[a], s = starts[i], e = ends[i], st = steps[i];
    if (st == 0) ctx.fail("step 0 on axis " + std::to_string(a));
    if (s < 0) s += dim;
    if (e < 0) e += dim;
    if (st > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
      out[a] = e > s ? (e - s + st - 1) / st : 0;
    } else {
      s = std::clamp<int64_t>(s, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
      out[a] = s > e ? (s - e - st - 1) / (-st) : 0;
    }
    begin[a] = s;
    step[a] = st;
  }
  ctx.set_output(0, ctx.in_dtype(0), out);
  if (ctx.infer_only()) return nullptr;
  Shape in_strides = strides_of(in), strides(r);
  int64_t base = 0;
  for (size_t d = 0; d < r; ++d) {
    strides[d] = in_strides[d] * step[d];
    if (out[d] > 0) base += begin[d] * in_strides[d];
  }
  size_t es = dtype_size(ctx.in_dtype(0));
  bool last_axis_only = r > 0 && out[r - 1] > 0 && step[r - 1] == 1;
  for (size_t d = 0; d + 1 < r; ++d) last_axis_only = last_axis_only && out[d] == in[d];
  if (cpu_allows_avx512vbmi() && last_axis_only && in[r - 1] * static_cast<int64_t>(es) <= 64) {
    RowRuns runs{product(out, 0, r - 1),
                 out[r - 1] * static_cast<int64_t>(es),
                 in[r - 1] * static_cast<int64_t>(es),
                 begin[r - 1] * static_cast<int64_t>(es),
                 {}};
    for (int64_t j = 0; j < 64 / runs.stride * runs.run; ++j)
      runs.index[j] = static_cast<uint8_t>(j / runs.run * runs.stride + runs.offset + j % runs.run);
    auto k = make_kernel([runs](ExecContext &, const void *const *in, void *const *o) {
      copy_row_runs_vbmi(runs, static_cast<const uint8_t *>(in[0]), static_cast<uint8_t *>(o[0]));
    });
    k->impl = "row runs, byte permutes";
    return k;
  }
  BroadcastPlan plan = BroadcastPlan::strided(out, strides);
  return make_kernel([plan, base, es](ExecContext &, const void *const *in, void *const *o) {
    switch (es) {
      case 1:
        strided_copy(plan, base, static_cast<const uint8_t *>(in[0]), static_cast<uint8_t *>(o[0]));
        break;
      case 2:
        strided_copy(plan, base, static_cast<const uint16_t *>(in[0]),
                     static_cast<uint16_t *>(o[0]));
        break;
      case 4:
        strided_copy(plan, base, static_cast<const uint32_t *>(in[0]),
                     static_cast<uint32_t *>(o[0]));
        break;
      default:
        strided_copy(plan, base, static_cast<const uint64_t *>(in[0]),
                     static_cast<uint64_t *>(o[0]));
        break;
    }
  });
}

// The output shape: each dim plus its begin and end pads, checked for overflow (pads from the
// file may be anything: found by fuzz_onnx_import), a negative size and padding an empty dim.
Shape padded_shape(OpContext &ctx, const Shape &in, const std::vector<int64_t> &pads,
                   const std::string &mode) {
  size_t r = in.size();
  Shape out(r);
  for (size_t d = 0; d < r; ++d) {
    if (__builtin_add_overflow(in[d], pads[d], &out[d]) ||
        __builtin_add_overflow(out[d], pads[d + r], &out[d]))
      ctx.fail("pads " + shape_str(pads) + " take dim " + std::to_string(d) +
               " beyond a 64-bit size");
    if (out[d] < 0)
      ctx.fail("pads " + shape_str(pads) + " shrink dim " + std::to_string(d) + " below 0");
    if (mode != "constant" && in[d] == 0 && out[d] > 0)
      ctx.fail("cannot " + mode + "-pad an empty dim");
  }
  return out;
}

// Per dim: output coordinate -> input coordinate, -1 for the constant.
std::vector<std::vector<int64_t>> pad_coordinate_maps(const Shape &in, const Shape &out,
                                                      const std::vector<int64_t> &pads,
                                                      const std::string &mode) {
  size_t r = in.size();
  std::vector<std::vector<int64_t>> maps(r);
  for (size_t d = 0; d < r; ++d) {
    for (int64_t o = 0; o < out[d]; ++o) {
      int64_t i = o - pads[d];
      if (i < 0 || i >= in[d]) {
        if (mode == "constant")
          i = -1;
        else if (mode == "edge")
          i = std::clamp<int64_t>(i, 0, in[d] - 1);
        else {
          int64_t period = 2 * (in[d] - 1);
          if (period == 0)
            i = 0;
          else {
            i = ((i % period) + period) % period;
            if (i >= in[d]) i = period - i;
          }
        }
      }
      maps[d].push_back(i);
    }
  }
  return maps;
}

// A run of consecutive output elements: copied from consecutive input elements from `in`, or
// (in < 0) `count` fill values.
struct PadRun {
  int64_t out, in, count;
};

// The element map as runs of consecutive copies or fills: a YOLO head's channel pad
// 255 -> 256 is then one 255-element copy and one fill per pixel, not a lookup per byte.
std::vector<PadRun> pad_runs(const Shape &in, const Shape &out,
                             const std::vector<std::vector<int64_t>> &maps) {
  size_t r = in.size();
  Shape in_strides = strides_of(in);
  int64_t n = product(out, 0, r);
  std::vector<int64_t> src(static_cast<size_t>(n));
  std::vector<int64_t> idx(r, 0);
  for (int64_t o = 0; o < n; ++o) {
    int64_t s = 0;
    for (size_t d = 0; d < r && s >= 0; ++d) {
      int64_t i = maps[d][idx[d]];
      s = i < 0 ? -1 : s + i * in_strides[d];
    }
    src[o] = s;
    for (int d = static_cast<int>(r) - 1; d >= 0; --d) {
      if (++idx[d] < out[d]) break;
      idx[d] = 0;
    }
  }
  std::vector<PadRun> runs;
  for (int64_t o = 0; o < n; ++o) {
    if (!runs.empty()) {
      PadRun &last = runs.back();
      bool extends = last.in < 0 ? src[o] < 0 : src[o] == last.in + last.count;
      if (extends) {
        ++last.count;
        continue;
      }
    }
    runs.push_back({o, src[o] < 0 ? -1 : src[o], 1});
  }
  return runs;
}

std::unique_ptr<Kernel> compile_pad(OpContext &ctx) {
  const Shape &in = ctx.in_shape(0);
  size_t r = in.size();
  std::vector<int64_t> pads;
  double value = 0;
  if (ctx.opset() < 11) {
    pads = ctx.attr_ints("pads");
    value = ctx.attr_f("value", 0.f);
  } else {
    ctx.expect_inputs(2, 3);
    pads = ctx.constant_ints(1, "pads");
    if (ctx.has_input(2)) value = ctx.require_scalar(2, "constant_value").as_double(0);
  }
  if (pads.size() != 2 * r)
    ctx.fail("pads has " + std::to_string(pads.size()) + " entries for rank " + std::to_string(r));
  std::string mode = ctx.attr_s("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge")
    ctx.fail("unknown mode '" + mode + "'");
  Shape out = padded_shape(ctx, in, pads, mode);
  DType dt = ctx.in_dtype(0);
  ctx.set_output(0, dt, out);
  if (ctx.infer_only()) return nullptr;
  std::vector<PadRun> runs = pad_runs(in, out, pad_coordinate_maps(in, out, pads, mode));
  size_t es = dtype_size(dt);
  std::vector<uint8_t> fill(es);
  store_from_double(fill.data(), dt, 0, value);
  // A constant_value of the data's own dtype is copied as it is: a double on the way would round
  // an int64/uint64 past 2^53.
  if (ctx.opset() >= 11 && ctx.has_input(2) && ctx.in_dtype(2) == dt)
    std::memcpy(fill.data(), ctx.require_scalar(2, "constant_value").bytes.data(), es);
  return make_kernel(
      [runs = std::move(runs), es, fill](ExecContext &, const void *const *in, void *const *o) {
        const uint8_t *x = static_cast<const uint8_t *>(in[0]);
        uint8_t *y = static_cast<uint8_t *>(o[0]);
        for (const PadRun &run : runs) {
          uint8_t *to = y + run.out * es;
          if (run.in >= 0) {
            std::memcpy(to, x + run.in * es, static_cast<size_t>(run.count) * es);
          } else if (es == 1) {
            std::memset(to, fill[0], static_cast<size_t>(run.count));
          } else {
            for (int64_t i = 0; i < run.count; ++i) std::memcpy(to + i * es, fill.data(), es);
          }
        }
      });
}

std::unique_ptr<Kernel> compile_gather(OpContext &ctx) {
  ctx.expect_inputs(2, 2);
  const Shape &data = ctx.in_shape(0), &indices = ctx.in_shape(1);
  int64_t axis = ctx.axis(ctx.attr_i("axis", 0), data.size());
  Shape out(data.begin(), data.begin() + axis);
  out.insert(out.end(), indices.begin(), indices.end());
  out.insert(out.end(), data.begin() + axis + 1, data.end());
  ctx.set_output(0, ctx.in_dtype(0), out);
  if (ctx.infer_only()) return nullptr;
  DType it = ctx.in_dtype(1);
  if (it != DType::i32 && it != DType::i64) ctx.fail("indices must be int32 or int64");
  int64_t outer = product(data, 0, axis), inner = product(data, axis + 1, data.size());
  int64_t dim = data[axis], nidx = product(indices, 0, indices.size());
  size_t es = dtype_size(ctx.in_dtype(0));
  std::string label = ctx.where();
  return make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
    const uint8_t *x = static_cast<const uint8_t *>(in[0]);
    uint8_t *y = static_cast<uint8_t *>(o[0]);
    for (int64_t j = 0; j < nidx; ++j) {
      int64_t i = it == DType::i64 ? static_cast<const int64_t *>(in[1])[j]
                                   : static_cast<const int32_t *>(in[1])[j];
      if (i < 0) i += dim;
      if (i < 0 || i >= dim)
        throw InvalidArgument(label + ": index " + std::to_string(i) + " out of range [0, " +
                              std::to_string(dim) + ")");
      for (int64_t r = 0; r < outer; ++r)
        std::memcpy(y + ((r * nidx + j) * inner) * es, x + ((r * dim + i) * inner) * es,
                    static_cast<size_t>(inner) * es);
    }
  });
}

}  // namespace

AXSTREAM_ENGINE_DATA_OP(Slice, "Slice", 1, 17, compile_slice, false)
AXSTREAM_ENGINE_DATA_OP(Pad, "Pad", 2, 17, compile_pad, false)
AXSTREAM_ENGINE_DATA_OP(Gather, "Gather", 1, 17, compile_gather, false)

}  // namespace axstream::engine
