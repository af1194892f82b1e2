// Data movement by index arithmetic: DepthToSpace, SpaceToDepth, Trilu, GatherElements, Range,
// ReverseSequence, Compress.
#include <immintrin.h>

#include <cstring>

#include "../cpu_features.h"
#include "common.h"

namespace axstream::engine {
namespace {

// Copies element src_index(o) of the input to each output element o, any dtype.
template <typename F>
std::unique_ptr<Kernel> gather_kernel(int64_t count, size_t element_size, F src_index) {
  return make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
    const uint8_t *x = static_cast<const uint8_t *>(in[0]);
    uint8_t *y = static_cast<uint8_t *>(o[0]);
    for (int64_t i = 0; i < count; ++i)
      std::memcpy(y + i * element_size, x + src_index(i) * element_size, element_size);
  });
}

// DepthToSpace on NHWC int8 (_nhwc=1, passes.cc): output pixel (oy, ox) takes its oc channels
// from input pixel (oy / b, ox / b), channel ch from `source_channel(ch, oy % b, ox % b)`. For one
// output row (fixed oy % b) a run of `run` input pixels gives run * b output pixels: one fixed
// byte permutation of run * c input bytes (at most 128) into run * b * oc output bytes (at most
// 64), which AVX-512 VBMI does in one two-register permute.
struct DepthToSpaceNhwc {
  int64_t n, h, w, c, b, oc, run;
  std::vector<std::vector<uint8_t>> index;  // per oy % b: 64 source byte offsets in a run
};

__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void depth_to_space_nhwc_vbmi(
    const DepthToSpaceNhwc &d, const uint8_t *x, uint8_t *y) {
  const int64_t out_w = d.w * d.b, pixel_out = d.b * d.oc;
  auto first_bits = [](int64_t bits) -> __mmask64 {
    return bits >= 64 ? ~__mmask64(0) : bits <= 0 ? __mmask64(0) : (__mmask64(1) << bits) - 1;
  };
  for (int64_t image = 0; image < d.n; ++image)
    for (int64_t iy = 0; iy < d.h; ++iy)
      for (int64_t by = 0; by < d.b; ++by) {
        const __m512i index = _mm512_loadu_si512(d.index[by].data());
        const uint8_t *in_row = x + (image * d.h + iy) * d.w * d.c;
        uint8_t *out_row = y + ((image * d.h + iy) * d.b + by) * out_w * d.oc;
        for (int64_t ix = 0; ix < d.w; ix += d.run) {
          const int64_t pixels = std::min(d.run, d.w - ix), bytes = pixels * d.c;
          const uint8_t *p = in_row + ix * d.c;
          __m512i lo = _mm512_maskz_loadu_epi8(first_bits(bytes), p);
          __m512i hi = _mm512_maskz_loadu_epi8(first_bits(bytes - 64), p + 64);
          _mm512_mask_storeu_epi8(out_row + ix * pixel_out, first_bits(pixels * pixel_out),
                                  _mm512_permutex2var_epi8(lo, index, hi));
        }
      }
}

// DepthToSpace (DCR or CRD) and SpaceToDepth on NCHW, as reshape-transpose-reshape.
template <bool to_space>
std::unique_ptr<Kernel> compile_depth_space(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  const Shape &xs = ctx.in_shape(0);
  int64_t b = ctx.attr_i("blocksize", 0);
  if (xs.size() != 4) ctx.fail("expected an NCHW input, got " + shape_str(xs));
  if (b <= 0) ctx.fail("blocksize must be positive");
  int64_t n = xs[0], c = xs[1], h = xs[2], w = xs[3];
  bool crd = to_space && ctx.attr_s("mode", "DCR") == "CRD";
  Shape out;
  if (to_space) {
    if (c % (b * b)) ctx.fail("channels " + std::to_string(c) + " not divisible by blocksize^2");
    out = {n, c / (b * b), h * b, w * b};
  } else {
    if (h % b || w % b) ctx.fail("spatial dims not divisible by blocksize");
    out = {n, c * b * b, h / b, w / b};
  }
  ctx.set_output(0, ctx.in_dtype(0), out);
  if (ctx.infer_only()) return nullptr;
  int64_t oc = out[1], oh = out[2], ow = out[3];
  int64_t count = product(out, 0, 4);
  size_t es = dtype_size(ctx.in_dtype(0));
  auto source_channel = [=](int64_t ch, int64_t by, int64_t bx) {
    return crd ? ch * b * b + by * b + bx : (by * b + bx) * oc + ch;
  };
  if (ctx.attr_i("_nhwc", 0) != 0) {
    if (!to_space || es != 1) ctx.fail("_nhwc needs DepthToSpace on int8/uint8");
    DepthToSpaceNhwc d{n, h, w, c, b, oc, std::min<int64_t>(64 / (b * oc), 128 / c), {}};
    if (cpu_allows_avx512vbmi() && d.run >= 1) {
      for (int64_t by = 0; by < b; ++by) {
        std::vector<uint8_t> t(64, 0);
        for (int64_t j = 0; j < d.run * b * oc; ++j) {
          int64_t pixel = j / (b * oc), bx = j % (b * oc) / oc, ch = j % oc;
          t[j] = static_cast<uint8_t>(pixel * c + source_channel(ch, by, bx));
        }
        d.index.push_back(std::move(t));
      }
      auto k = make_kernel([d](ExecContext &, const void *const *in, void *const *o) {
        depth_to_space_nhwc_vbmi(d, static_cast<const uint8_t *>(in[0]),
                                 static_cast<uint8_t *>(o[0]));
      });
      k->impl = "nhwc, byte permutes";
      return k;
    }
    auto k = make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
      const uint8_t *x = static_cast<const uint8_t *>(in[0]);
      uint8_t *y = static_cast<uint8_t *>(o[0]);
      for (int64_t bn = 0; bn < n; ++bn)
        for (int64_t row = 0; row < oh; ++row)
          for (int64_t col = 0; col < ow; ++col, y += oc) {
            const uint8_t *p = x + ((bn * h + row / b) * w + col / b) * c;
            for (int64_t ch = 0; ch < oc; ++ch) y[ch] = p[source_channel(ch, row % b, col % b)];
          }
    });
    k->impl = "nhwc";
    return k;
  }
  if (to_space) {
    // Row by row: output row y of channel ch interleaves, for bx = 0..b-1, row y / b of the
    // source plane (by = y % b, bx). (PP-OCR det's int8 head upsampling runs here.)
    return make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
      const uint8_t *x = static_cast<const uint8_t *>(in[0]);
      uint8_t *y = static_cast<uint8_t *>(o[0]);
      for (int64_t bn = 0; bn < n; ++bn)
        for (int64_t ch = 0; ch < oc; ++ch)
          for (int64_t row = 0; row < oh; ++row, y += ow * es) {
            int64_t by = row % b;
            for (int64_t bx = 0; bx < b; ++bx) {
              int64_t src_c = source_channel(ch, by, bx);
              const uint8_t *src = x + (((bn * c + src_c) * h + row / b) * w) * es;
              if (es == 1)
                for (int64_t ix = 0; ix < w; ++ix) y[ix * b + bx] = src[ix];
              else
                for (int64_t ix = 0; ix < w; ++ix)
                  std::memcpy(y + (ix * b + bx) * es, src + ix * es, es);
            }
          }
    });
  }
  return gather_kernel(count, dtype_size(ctx.in_dtype(0)), [=](int64_t i) {
    int64_t x_ = i % ow, y_ = (i / ow) % oh, ch = (i / (ow * oh)) % oc, bn = i / (ow * oh * oc);
    if (to_space) {
      int64_t by = y_ % b, bx = x_ % b;
      int64_t src_c = crd ? ch * b * b + by * b + bx : (by * b + bx) * oc + ch;
      return ((bn * c + src_c) * h + y_ / b) * w + x_ / b;
    }
    // SpaceToDepth: output channel = (by * b + bx) * c + src channel.
    int64_t src_c = ch % c, blk = ch / c, by = blk / b, bx = blk % b;
    return ((bn * c + src_c) * h + y_ * b + by) * w + x_ * b + bx;
  });
}

// Trilu: keeps the upper (or lower) triangle of the last two dims from diagonal k.
std::unique_ptr<Kernel> compile_trilu(OpContext &ctx) {
  ctx.expect_inputs(1, 2);
  const Shape &xs = ctx.in_shape(0);
  if (xs.size() < 2) ctx.fail("input must have rank >= 2, got " + shape_str(xs));
  ctx.set_output(0, ctx.in_dtype(0), xs);
  if (ctx.infer_only()) return nullptr;
  int64_t k = 0;
  if (ctx.has_input(1)) {
    ctx.require_scalar(1, "k");  // one value (an empty k threw std::out_of_range)
    k = ctx.constant_ints(1, "k")[0];
  }
  bool upper = ctx.attr_i("upper", 1) != 0;
  int64_t rows = xs[xs.size() - 2], cols = xs.back(), count = product(xs, 0, xs.size());
  size_t es = dtype_size(ctx.in_dtype(0));
  return make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
    const uint8_t *x = static_cast<const uint8_t *>(in[0]);
    uint8_t *y = static_cast<uint8_t *>(o[0]);
    for (int64_t i = 0; i < count; ++i) {
      int64_t col = i % cols, row = (i / cols) % rows;
      bool keep = upper ? col - row >= k : col - row <= k;
      if (keep)
        std::memcpy(y + i * es, x + i * es, es);
      else
        std::memset(y + i * es, 0, es);
    }
  });
}

// GatherElements: out[i][j][k] = data[..index along axis..], int32/int64 indices.
std::unique_ptr<Kernel> compile_gather_elements(OpContext &ctx) {
  ctx.expect_inputs(2, 2);
  const Shape &ds = ctx.in_shape(0), &is = ctx.in_shape(1);
  if (ds.size() != is.size()) ctx.fail("data and indices ranks differ");
  int64_t axis = ctx.axis(ctx.attr_i("axis", 0), ds.size());
  ctx.set_output(0, ctx.in_dtype(0), is);
  if (ctx.infer_only()) return nullptr;
  DType it = ctx.in_dtype(1);
  if (it != DType::i32 && it != DType::i64) ctx.fail("indices must be int32 or int64");
  Shape dstride = strides_of(ds), istride = strides_of(is);
  int64_t count = product(is, 0, is.size()), len = ds[axis];
  size_t es = dtype_size(ctx.in_dtype(0));
  std::string label = ctx.where();
  return make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
    const uint8_t *x = static_cast<const uint8_t *>(in[0]);
    uint8_t *y = static_cast<uint8_t *>(o[0]);
    for (int64_t i = 0; i < count; ++i) {
      int64_t rest = i, src = 0;
      for (size_t d = 0; d < is.size(); ++d) {
        int64_t coord = rest / istride[d];
        rest %= istride[d];
        if (static_cast<int64_t>(d) == axis) {
          int64_t idx = static_cast<int64_t>(load_as_double(in[1], it, i));
          if (idx < 0) idx += len;
          if (idx < 0 || idx >= len)
            throw InvalidArgument(label + ": index " + std::to_string(idx) +
                                  " out of range for axis of size " + std::to_string(len));
          coord = idx;
        }
        src += coord * dstride[d];
      }
      std::memcpy(y + i * es, x + src * es, es);
    }
  });
}

// Range(start, limit, delta): constant inputs only (the output shape depends on them).
std::unique_ptr<Kernel> compile_range(OpContext &ctx) {
  ctx.expect_inputs(3, 3);
  DType dt = ctx.in_dtype(0);
  double start = ctx.require_scalar(0, "start").as_double(0);
  double limit = ctx.require_scalar(1, "limit").as_double(0);
  double delta = ctx.require_scalar(2, "delta").as_double(0);
  if (delta == 0) ctx.fail("delta is 0");
  int64_t count = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((limit - start) / delta)));
  ctx.set_output(0, dt, {count});
  if (ctx.infer_only()) return nullptr;
  return make_kernel([=](ExecContext &, const void *const *, void *const *o) {
    for (int64_t i = 0; i < count; ++i) store_from_double(o[0], dt, i, start + i * delta);
  });
}

// ReverseSequence: for each batch entry b, the first sequence_lens[b] steps along the time
// axis reversed, the rest copied; batch and time axes are 0 and 1 (either way round).
std::unique_ptr<Kernel> compile_reverse_sequence(OpContext &ctx) {
  ctx.expect_inputs(2, 2);
  const Shape &xs = ctx.in_shape(0);
  if (xs.size() < 2) ctx.fail("input must have rank >= 2, got " + shape_str(xs));
  int64_t batch_axis = ctx.attr_i("batch_axis", 1), time_axis = ctx.attr_i("time_axis", 0);
  if (!((batch_axis == 0 && time_axis == 1) || (batch_axis == 1 && time_axis == 0)))
    ctx.fail("batch_axis and time_axis must be 0 and 1 (either way round), got " +
             std::to_string(batch_axis) + " and " + std::to_string(time_axis));
  int64_t batch = xs[batch_axis], steps = xs[time_axis];
  if (ctx.in_shape(1) != Shape{batch})
    ctx.fail("sequence_lens must have shape (" + std::to_string(batch) + "), got " +
             shape_str(ctx.in_shape(1)));
  ctx.set_output(0, ctx.in_dtype(0), xs);
  if (ctx.infer_only()) return nullptr;
  DType lt = ctx.in_dtype(1);
  if (lt != DType::i64 && lt != DType::i32)
    ctx.fail(std::string("sequence_lens must be int64 or int32, got ") + dtype_name(lt));
  size_t es = dtype_size(ctx.in_dtype(0));
  int64_t inner = product(xs, 2, xs.size());
  size_t row_bytes = static_cast<size_t>(inner) * es;
  int64_t batch_stride = (batch_axis == 0 ? steps : 1) * inner;
  int64_t time_stride = (time_axis == 0 ? batch : 1) * inner;
  std::string where = ctx.where();
  return make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
    const uint8_t *x = static_cast<const uint8_t *>(in[0]);
    uint8_t *y = static_cast<uint8_t *>(o[0]);
    for (int64_t b = 0; b < batch && row_bytes; ++b) {
      int64_t len = lt == DType::i64 ? static_cast<const int64_t *>(in[1])[b]
                                     : static_cast<const int32_t *>(in[1])[b];
      if (len < 0 || len > steps)
        throw InvalidArgument(where + ": sequence_lens[" + std::to_string(b) +
                              "] = " + std::to_string(len) + " is outside [0, " +
                              std::to_string(steps) + "]");
      for (int64_t t = 0; t < steps; ++t) {
        int64_t source = t < len ? len - 1 - t : t;
        std::memcpy(y + (b * batch_stride + t * time_stride) * es,
                    x + (b * batch_stride + source * time_stride) * es, row_bytes);
      }
    }
  });
}

// Compress: the slices along `axis` (of the flattened input without one) whose condition is
// true. The output's length is the count of trues, so the condition must be a constant; a
// condition shorter than the axis counts as false beyond its end.
std::unique_ptr<Kernel> compile_compress(OpContext &ctx) {
  ctx.expect_inputs(2, 2);
  const Tensor &condition = ctx.require_constant(1, "condition");
  if (condition.shape.size() != 1)
    ctx.fail("condition must be 1-D, got " + shape_str(condition.shape));
  const Shape &xs = ctx.in_shape(0);
  bool flatten = !ctx.has_attr("axis");
  Shape in = flatten ? Shape{product(xs, 0, xs.size())} : xs;
  int64_t axis = flatten ? 0 : ctx.axis(ctx.attr_i("axis", 0), xs.size());
  if (condition.count() > in[axis])
    ctx.fail("condition has " + std::to_string(condition.count()) +
             " entries for an axis of size " + std::to_string(in[axis]));
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < condition.count(); ++i)
    if (condition.as_int(i) != 0) kept.push_back(i);
  Shape out = in;
  out[axis] = static_cast<int64_t>(kept.size());
  ctx.set_output(0, ctx.in_dtype(0), out);
  if (ctx.infer_only()) return nullptr;
  int64_t outer = product(in, 0, axis), len = in[axis];
  size_t slice_bytes =
      static_cast<size_t>(product(in, axis + 1, in.size())) * dtype_size(ctx.in_dtype(0));
  return make_kernel([=](ExecContext &, const void *const *i, void *const *o) {
    const uint8_t *x = static_cast<const uint8_t *>(i[0]);
    uint8_t *y = static_cast<uint8_t *>(o[0]);
    for (int64_t r = 0; r < outer && slice_bytes; ++r)
      for (int64_t k : kept) {
        std::memcpy(y, x + (r * len + k) * slice_bytes, slice_bytes);
        y += slice_bytes;
      }
  });
}

}  // namespace

AXSTREAM_ENGINE_DATA_OP(DepthToSpace, "DepthToSpace", 1, 17, compile_depth_space<true>, false)
AXSTREAM_ENGINE_DATA_OP(SpaceToDepth, "SpaceToDepth", 1, 17, compile_depth_space<false>, false)
AXSTREAM_ENGINE_DATA_OP(Trilu, "Trilu", 14, 17, compile_trilu, false)
AXSTREAM_ENGINE_DATA_OP(GatherElements, "GatherElements", 11, 17, compile_gather_elements, false)
AXSTREAM_ENGINE_OP(Range, "Range", 11, 17, compile_range)
AXSTREAM_ENGINE_DATA_OP(ReverseSequence, "ReverseSequence", 10, 17, compile_reverse_sequence, false)
AXSTREAM_ENGINE_DATA_OP(Compress, "Compress", 9, 17, compile_compress, false)

}  // namespace axstream::engine
