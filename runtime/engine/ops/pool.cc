// MaxPool, AveragePool (count_include_pad, ceil_mode), GlobalAveragePool, GlobalMaxPool.
#include "common.h"

namespace axstream::engine {
namespace {

struct PoolShape {
  int64_t planes, h, w, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl, pb, pr;
};

PoolShape pool_shape(OpContext &ctx, const Shape &xs, bool ceil_mode, Shape &out) {
  if (xs.size() < 3 || xs.size() > 4)
    ctx.unsupported("only 1-D and 2-D pooling is supported, input " + shape_str(xs));
  Shape kernel = ctx.attr_ints("kernel_shape");
  if (kernel.size() != xs.size() - 2) ctx.fail("kernel_shape must have one entry per spatial dim");
  WindowGeometry g =
      WindowGeometry::resolve(ctx, Shape(xs.begin() + 2, xs.end()), kernel, ceil_mode);
  out = {xs[0], xs[1]};
  out.insert(out.end(), g.out.begin(), g.out.end());
  bool two = xs.size() == 4;
  return {xs[0] * xs[1],      two ? xs[2] : 1,         xs.back(),         two ? kernel[0] : 1,
          kernel.back(),      two ? g.out[0] : 1,      g.out.back(),      two ? g.stride[0] : 1,
          g.stride.back(),    two ? g.dilation[0] : 1, g.dilation.back(), two ? g.pad_begin[0] : 0,
          g.pad_begin.back(), two ? g.pad_end[0] : 0,  g.pad_end.back()};
}

template <typename T>
void max_pool(const PoolShape &s, const T *x, T *y) {
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < s.planes; ++p) {
    const T *in = x + p * s.h * s.w;
    T *out = y + p * s.oh * s.ow;
    for (int64_t oy = 0; oy < s.oh; ++oy)
      for (int64_t ox = 0; ox < s.ow; ++ox) {
        T best = std::numeric_limits<T>::lowest();
        if constexpr (std::is_floating_point_v<T>) best = -INFINITY;
        for (int64_t ky = 0; ky < s.kh; ++ky) {
          int64_t iy = oy * s.sh - s.pt + ky * s.dh;
          if (iy < 0 || iy >= s.h) continue;
          for (int64_t kx = 0; kx < s.kw; ++kx) {
            int64_t ix = ox * s.sw - s.pl + kx * s.dw;
            if (ix < 0 || ix >= s.w) continue;
            best = std::max(best, in[iy * s.w + ix]);
          }
        }
        out[oy * s.ow + ox] = best;
      }
  }
}

void avg_pool(const PoolShape &s, bool count_include_pad, const float *x, float *y) {
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < s.planes; ++p) {
    const float *in = x + p * s.h * s.w;
    float *out = y + p * s.oh * s.ow;
    for (int64_t oy = 0; oy < s.oh; ++oy)
      for (int64_t ox = 0; ox < s.ow; ++ox) {
        float sum = 0.f;
        int64_t n = 0;
        for (int64_t ky = 0; ky < s.kh; ++ky) {
          int64_t iy = oy * s.sh - s.pt + ky * s.dh;
          if (iy < 0 || iy >= s.h) continue;
          for (int64_t kx = 0; kx < s.kw; ++kx) {
            int64_t ix = ox * s.sw - s.pl + kx * s.dw;
            if (ix < 0 || ix >= s.w) continue;
            sum += in[iy * s.w + ix];
            ++n;
          }
        }
        if (count_include_pad) {
          // Padding counts, but not the extra window part that ceil_mode adds past it.
          int64_t y0 = oy * s.sh - s.pt, x0 = ox * s.sw - s.pl;
          int64_t y1 = std::min(y0 + (s.kh - 1) * s.dh + 1, s.h + s.pb);
          int64_t x1 = std::min(x0 + (s.kw - 1) * s.dw + 1, s.w + s.pr);
          n = ((y1 - y0 + s.dh - 1) / s.dh) * ((x1 - x0 + s.dw - 1) / s.dw);
        }
        out[oy * s.ow + ox] = n ? sum / static_cast<float>(n) : 0.f;
      }
  }
}

std::unique_ptr<Kernel> compile_max_pool(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  if (ctx.output_count() > 1) ctx.unsupported("the Indices output of MaxPool");
  Shape out;
  PoolShape s = pool_shape(ctx, ctx.in_shape(0), ctx.attr_i("ceil_mode", 0) != 0, out);
  DType dt = ctx.in_dtype(0);
  ctx.set_output(0, dt, out);
  if (ctx.infer_only()) return nullptr;
  if (dt != DType::f32 && dt != DType::i8 && dt != DType::u8)
    ctx.unsupported(std::string("dtype ") + dtype_name(dt));
  auto k = make_kernel([s, dt](ExecContext &, const void *const *in, void *const *o) {
    if (dt == DType::f32)
      max_pool(s, static_cast<const float *>(in[0]), static_cast<float *>(o[0]));
    else if (dt == DType::i8)
      max_pool(s, static_cast<const int8_t *>(in[0]), static_cast<int8_t *>(o[0]));
    else
      max_pool(s, static_cast<const uint8_t *>(in[0]), static_cast<uint8_t *>(o[0]));
  });
  k->macs = static_cast<uint64_t>(s.planes * s.oh * s.ow * s.kh * s.kw);
  return k;
}

std::unique_ptr<Kernel> compile_avg_pool(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  Shape out;
  PoolShape s = pool_shape(ctx, ctx.in_shape(0), ctx.attr_i("ceil_mode", 0) != 0, out);
  ctx.set_output(0, ctx.in_dtype(0), out);
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::f32) ctx.unsupported("AveragePool on non-float32 input");
  bool include_pad = ctx.attr_i("count_include_pad", 0) != 0;
  auto k = make_kernel([s, include_pad](ExecContext &, const void *const *in, void *const *o) {
    avg_pool(s, include_pad, static_cast<const float *>(in[0]), static_cast<float *>(o[0]));
  });
  k->macs = static_cast<uint64_t>(s.planes * s.oh * s.ow * s.kh * s.kw);
  return k;
}

template <bool is_max>
std::unique_ptr<Kernel> compile_global_pool(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  const Shape &xs = ctx.in_shape(0);
  if (xs.size() < 3) ctx.fail("expected an input with spatial dims, got " + shape_str(xs));
  Shape out = {xs[0], xs[1]};
  out.resize(xs.size(), 1);
  ctx.set_output(0, ctx.in_dtype(0), out);
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::f32) ctx.unsupported("global pooling on non-float32 input");
  int64_t planes = xs[0] * xs[1], size = product(xs, 2, xs.size());
  auto k = make_kernel([planes, size](ExecContext &, const void *const *in, void *const *o) {
    const float *x = static_cast<const float *>(in[0]);
    float *y = static_cast<float *>(o[0]);
    for (int64_t p = 0; p < planes; ++p) {
      const float *plane = x + p * size;
      if (is_max) {
        float m = -INFINITY;
        for (int64_t i = 0; i < size; ++i) m = std::max(m, plane[i]);
        y[p] = m;
      } else {
        float sum = 0.f;
        for (int64_t i = 0; i < size; ++i) sum += plane[i];
        y[p] = sum / static_cast<float>(size);
      }
    }
  });
  k->macs = static_cast<uint64_t>(planes * size);
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP(MaxPool, "MaxPool", 1, 17, compile_max_pool)
AXSTREAM_ENGINE_OP(AveragePool, "AveragePool", 1, 17, compile_avg_pool)
AXSTREAM_ENGINE_OP(GlobalAveragePool, "GlobalAveragePool", 1, 17, compile_global_pool<false>)
AXSTREAM_ENGINE_OP(GlobalMaxPool, "GlobalMaxPool", 1, 17, compile_global_pool<true>)

}  // namespace axstream::engine
