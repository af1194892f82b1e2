// MaxPool (with its Indices output), AveragePool (1-D to 3-D, count_include_pad, ceil_mode),
// GlobalAveragePool, GlobalMaxPool.
#include <algorithm>
#include <array>
#include <cmath>
#include <memory>
#include <string>

#include "../compiler.h"
#include "../cpu_features.h"
#include "../parallel.h"
#include "common.h"
#include "intrinsics.h"

namespace axstream::engine {
namespace {

// 1-D/2-D windows directly; a 3-D window runs as depth slices of 2-D planes (d* fields).
struct PoolShape {
  int64_t planes, h, w, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl, pb, pr;
  int64_t d = 1, kd = 1, od = 1, sd = 1, dd = 1, pf = 0, pk = 0;  // depth, front/back pads
};

PoolShape pool_shape(OpContext &ctx, const Shape &xs, bool ceil_mode, Shape &out) {
  if (xs.size() < 3 || xs.size() > 5)
    ctx.unsupported("only 1-D, 2-D and 3-D pooling is supported, input " + shape_str(xs));
  Shape kernel = ctx.attr_ints("kernel_shape");
  if (kernel.size() != xs.size() - 2) ctx.fail("kernel_shape must have one entry per spatial dim");
  WindowGeometry g =
      WindowGeometry::resolve(ctx, Shape(xs.begin() + 2, xs.end()), kernel, ceil_mode);
  out = {xs[0], xs[1]};
  out.insert(out.end(), g.out.begin(), g.out.end());
  size_t r = xs.size() - 2, y = r - std::min<size_t>(r, 2);  // index of the H dim, if any
  bool two = r >= 2;
  PoolShape p{
      xs[0] * xs[1],      two ? xs[2 + y] : 1,     xs.back(),         two ? kernel[y] : 1,
      kernel.back(),      two ? g.out[y] : 1,      g.out.back(),      two ? g.stride[y] : 1,
      g.stride.back(),    two ? g.dilation[y] : 1, g.dilation.back(), two ? g.pad_begin[y] : 0,
      g.pad_begin.back(), two ? g.pad_end[y] : 0,  g.pad_end.back()};
  if (r == 3) {
    p.d = xs[2];
    p.kd = kernel[0];
    p.od = g.out[0];
    p.sd = g.stride[0];
    p.dd = g.dilation[0];
    p.pf = g.pad_begin[0];
    p.pk = g.pad_end[0];
  }
  return p;
}

// The taps of output (oy, ox)'s window in the H and W dims that lie inside the input (padding
// skipped), in window order, as `tap(iy, ix)`: the walk pool_windows and max_pool_nhwc share.
// It and pool_windows' lambda are always_inline: inlined early, as the loops written in place
// were, GCC 12 gives the kernels the code it gave them before (inlined late, the float pools'
// loops kept more in memory).
template <typename Tap>
__attribute__((always_inline)) inline void for_each_tap_2d(const PoolShape &s, int64_t oy,
                                                           int64_t ox, Tap tap) {
  for (int64_t ky = 0; ky < s.kh; ++ky) {
    int64_t iy = oy * s.sh - s.pt + ky * s.dh;
    if (iy < 0 || iy >= s.h) continue;
    for (int64_t kx = 0; kx < s.kw; ++kx) {
      int64_t ix = ox * s.sw - s.pl + kx * s.dw;
      if (ix < 0 || ix >= s.w) continue;
      tap(iy, ix);
    }
  }
}

// Walks every output position of a pooling window over x: the taps inside the input (padding
// skipped) are folded by `reduce(acc, value, iz, iy, ix)` from `init`, then `store(output
// index, result, taps, oz, oy, ox)` writes the output.
template <typename T, typename Acc, typename Reduce, typename Store>
void pool_windows(const PoolShape &s, const T *x, Acc init, Reduce reduce, Store store) {
  int64_t hw = s.h * s.w, ohw = s.oh * s.ow;
  parallel_for_2d(
      s.planes, s.od, worth_splitting(), [&](int64_t p, int64_t oz) __attribute__((always_inline)) {
        const T *in = x + p * s.d * hw;
        int64_t out = (p * s.od + oz) * ohw;
        for (int64_t oy = 0; oy < s.oh; ++oy)
          for (int64_t ox = 0; ox < s.ow; ++ox) {
            Acc acc = init;
            int64_t taps = 0;
            for (int64_t kz = 0; kz < s.kd; ++kz) {
              int64_t iz = oz * s.sd - s.pf + kz * s.dd;
              if (iz < 0 || iz >= s.d) continue;
              for_each_tap_2d(
                  s, oy, ox, [&](int64_t iy, int64_t ix) __attribute__((always_inline)) {
                    acc = reduce(acc, in[iz * hw + iy * s.w + ix], iz, iy, ix);
                    ++taps;
                  });
            }
            store(out + oy * s.ow + ox, acc, taps, oz, oy, ox);
          }
      });
}

template <typename T>
void max_pool(const PoolShape &s, const T *x, T *y) {
  T lowest = std::is_floating_point_v<T> ? -INFINITY : std::numeric_limits<T>::lowest();
  pool_windows(
      s, x, lowest, [](T best, T v, int64_t, int64_t, int64_t) { return std::max(best, v); },
      [y](int64_t o, T best, int64_t, int64_t, int64_t, int64_t) { y[o] = best; });
}

// MaxPool with Indices: each maximum's position in the whole input flattened (plane offset
// included, padding not), row-major over the spatial dims or, with storage_order 1,
// column-major; the first maximum in window order wins a tie (ONNX Runtime's rule).
template <typename T>
void max_pool_with_indices(const PoolShape &s, bool column_major, const T *x, T *y,
                           int64_t *indices) {
  struct Best {
    T value;
    int64_t z = 0, y = 0, x = 0;
    bool any = false;
  };
  int64_t hw = s.h * s.w, plane_outputs = s.od * s.oh * s.ow;
  pool_windows(
      s, x, Best{},
      [](Best best, T v, int64_t iz, int64_t iy, int64_t ix) {
        return !best.any || v > best.value ? Best{v, iz, iy, ix, true} : best;
      },
      [&](int64_t o, const Best &best, int64_t, int64_t, int64_t, int64_t) {
        y[o] = best.any ? best.value : std::numeric_limits<T>::lowest();
        int64_t within = column_major ? (best.x * s.h + best.y) * s.d + best.z
                                      : (best.z * s.h + best.y) * s.w + best.x;
        indices[o] = o / plane_outputs * s.d * hw + within;
      });
}

// 2-D over NHWC int8/uint8 or float (the activations passes.cc keeps NHWC between int8
// convolutions, and the float blocks between them): each output pixel's channel vector is the
// maximum over the window's taps, channel by channel, in max_pool's tap order from max_pool's
// start (so the same bytes, NaN and signed zeros included).
template <typename T>
void max_pool_nhwc(const PoolShape &s, int64_t images, int64_t channels, const T *x, T *y) {
  const T lowest = std::is_floating_point_v<T> ? -INFINITY : std::numeric_limits<T>::lowest();
  parallel_for_2d(
      images, s.oh, worth_splitting(), [&](int64_t n, int64_t oy) __attribute__((always_inline)) {
        for (int64_t ox = 0; ox < s.ow; ++ox) {
          T *out = y + ((n * s.oh + oy) * s.ow + ox) * channels;
          std::fill(out, out + channels, lowest);
          // By value: the stores through `out` (bytes, which may alias anything) would otherwise
          // reload the channel count every element.
          for_each_tap_2d(s, oy, ox, [&s, x, n, channels, out](int64_t iy, int64_t ix) {
            const T *in = x + ((n * s.h + iy) * s.w + ix) * channels;
            for (int64_t c = 0; c < channels; ++c) out[c] = std::max(out[c], in[c]);
          });
        }
      });
}

// The 2x2, stride-2 windows without padding that lie inside the input (BlazeFace's and most
// detectors' int8 pools): max_pool_nhwc's result for integers, whose maximum does not depend on
// the taps' order, in one pass per output pixel over its four channel vectors.
bool is_inner_2x2_stride_2(const PoolShape &s) {
  return s.kh == 2 && s.kw == 2 && s.sh == 2 && s.sw == 2 && s.dh == 1 && s.dw == 1 && s.pt == 0 &&
         s.pl == 0 && 2 * s.oh <= s.h && 2 * s.ow <= s.w;
}

// One output row: each pixel's channels the maximum of its four taps, 64 channels per step
// with the last step masked.
template <typename T>
__attribute__((target("avx512f,avx512bw"))) void max_row_2x2_avx512(const T *top, const T *bottom,
                                                                    T *out, int64_t pixels,
                                                                    int64_t channels) {
  for (int64_t ox = 0; ox < pixels;
       ++ox, out += channels, top += 2 * channels, bottom += 2 * channels)
    for (int64_t c = 0; c < channels; c += 64) {
      const int64_t left = channels - c;
      const __mmask64 mask = left >= 64 ? ~__mmask64{0} : (__mmask64{1} << left) - 1;
      const __m512i a = _mm512_maskz_loadu_epi8(mask, top + c);
      const __m512i b = _mm512_maskz_loadu_epi8(mask, top + channels + c);
      const __m512i d = _mm512_maskz_loadu_epi8(mask, bottom + c);
      const __m512i e = _mm512_maskz_loadu_epi8(mask, bottom + channels + c);
      const __m512i m = std::is_signed_v<T>
                            ? _mm512_max_epi8(_mm512_max_epi8(a, b), _mm512_max_epi8(d, e))
                            : _mm512_max_epu8(_mm512_max_epu8(a, b), _mm512_max_epu8(d, e));
      _mm512_mask_storeu_epi8(out + c, mask, m);
    }
}

template <typename T>
void max_row_2x2(const T *top, const T *bottom, T *out, int64_t pixels, int64_t channels) {
  for (int64_t ox = 0; ox < pixels;
       ++ox, out += channels, top += 2 * channels, bottom += 2 * channels)
    for (int64_t c = 0; c < channels; ++c)
      out[c] =
          std::max(std::max(top[c], top[c + channels]), std::max(bottom[c], bottom[c + channels]));
}

// Where a pixel is at most 32 channels (BlazeFace's 24 and 28), `per` = 64 / channels output
// pixels come from one vector: their 2 * per input pixels of each row (at most 128 bytes) are
// two masked loads a row, the rows' maximum taken over whole vectors, and two VBMI permutes
// over those 128 bytes pick every pair's left and right pixel into the output's order, instead
// of four loads and a store per output pixel using `channels` of 64 lanes. The row's last
// pixels, fewer than `per`, take max_row_2x2_avx512.
struct PairPermutes {
  int64_t per = 0;  // output pixels per vector; 0: not used
  alignas(64) std::array<uint8_t, 64> left{}, right{};
};

PairPermutes pair_permutes(int64_t channels) {
  PairPermutes p;
  if (channels < 1 || channels > 32 || !cpu_allows_avx512vbmi() ||
      !setting_not_zero("AXSTREAM_ENGINE_VBMI_POOL_2X2"))
    return p;
  p.per = 64 / channels;
  for (int64_t j = 0; j < p.per * channels; ++j) {
    const int64_t pixel = j / channels, c = j % channels;
    p.left[static_cast<size_t>(j)] = static_cast<uint8_t>(2 * pixel * channels + c);
    p.right[static_cast<size_t>(j)] = static_cast<uint8_t>((2 * pixel + 1) * channels + c);
  }
  return p;
}

// The bytes' maximum, signed or not as T.
template <typename T>
__attribute__((target("avx512f,avx512bw"))) inline __m512i max_bytes(__m512i a, __m512i b) {
  return std::is_signed_v<T> ? _mm512_max_epi8(a, b) : _mm512_max_epu8(a, b);
}

template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vbmi,bmi2"))) void max_row_2x2_vbmi(
    const PairPermutes &p, const T *top, const T *bottom, T *out, int64_t pixels,
    int64_t channels) {
  const int64_t in_bytes = 2 * p.per * channels, out_bytes = p.per * channels;
  const __mmask64 low =
      _bzhi_u64(~uint64_t{0}, static_cast<unsigned>(std::min<int64_t>(in_bytes, 64)));
  const __mmask64 high =
      _bzhi_u64(~uint64_t{0}, static_cast<unsigned>(std::max<int64_t>(in_bytes - 64, 0)));
  const __mmask64 stored = _bzhi_u64(~uint64_t{0}, static_cast<unsigned>(out_bytes));
  const __m512i left = _mm512_load_si512(p.left.data()), right = _mm512_load_si512(p.right.data());
  int64_t ox = 0;
  for (; ox + p.per <= pixels; ox += p.per, top += in_bytes, bottom += in_bytes, out += out_bytes) {
    const __m512i v0 =
        max_bytes<T>(_mm512_maskz_loadu_epi8(low, top), _mm512_maskz_loadu_epi8(low, bottom));
    const __m512i v1 = max_bytes<T>(_mm512_maskz_loadu_epi8(high, top + 64),
                                    _mm512_maskz_loadu_epi8(high, bottom + 64));
    _mm512_mask_storeu_epi8(out, stored,
                            max_bytes<T>(_mm512_permutex2var_epi8(v0, left, v1),
                                         _mm512_permutex2var_epi8(v0, right, v1)));
  }
  if (ox < pixels) max_row_2x2_avx512(top, bottom, out, pixels - ox, channels);
}

template <typename T>
void max_pool_nhwc_2x2(const PoolShape &s, const PairPermutes &pairs, int64_t images,
                       int64_t channels, const T *x, T *y) {
  static_assert(std::is_integral_v<T> && sizeof(T) == 1);
  const int64_t row = s.w * channels;
  const bool avx512 = cpu_allows_avx512bw();
  parallel_for_2d(images, s.oh, worth_splitting(), [&](int64_t n, int64_t oy) {
    const T *top = x + (n * s.h + 2 * oy) * row;
    T *out = y + (n * s.oh + oy) * s.ow * channels;
    if (pairs.per)
      max_row_2x2_vbmi(pairs, top, top + row, out, s.ow, channels);
    else if (avx512)
      max_row_2x2_avx512(top, top + row, out, s.ow, channels);
    else
      max_row_2x2(top, top + row, out, s.ow, channels);
  });
}

// The 2x2, stride-2 windows inside a float NHWC input (BlazeFace front's float block pool):
// max_pool_nhwc's fold from -inf over the taps in its order (top left, top right, bottom left,
// bottom right), 16 channels a step with the last masked. Its std::max(out, in) is
// (out < in) ? in : out, which is _mm512_max_ps(in, out) — (in > out) ? in : out — so the same
// bits, NaN and signed zeros included.
__attribute__((target("avx512f"))) void max_row_2x2_f32_avx512(const float *top,
                                                               const float *bottom, float *out,
                                                               int64_t pixels, int64_t channels) {
  const __m512 lowest = _mm512_set1_ps(-INFINITY);
  for (int64_t ox = 0; ox < pixels;
       ++ox, out += channels, top += 2 * channels, bottom += 2 * channels)
    for (int64_t c = 0; c < channels; c += 16) {
      const int64_t left = channels - c;
      const __mmask16 mask =
          left >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
      __m512 m = _mm512_max_ps(_mm512_maskz_loadu_ps(mask, top + c), lowest);
      m = _mm512_max_ps(_mm512_maskz_loadu_ps(mask, top + channels + c), m);
      m = _mm512_max_ps(_mm512_maskz_loadu_ps(mask, bottom + c), m);
      m = _mm512_max_ps(_mm512_maskz_loadu_ps(mask, bottom + channels + c), m);
      _mm512_mask_storeu_ps(out + c, mask, m);
    }
}

void max_pool_nhwc_2x2_f32(const PoolShape &s, int64_t images, int64_t channels, const float *x,
                           float *y) {
  const int64_t row = s.w * channels;
  parallel_for_2d(images, s.oh, worth_splitting(), [&](int64_t n, int64_t oy) {
    const float *top = x + (n * s.h + 2 * oy) * row;
    max_row_2x2_f32_avx512(top, top + row, y + (n * s.oh + oy) * s.ow * channels, s.ow, channels);
  });
}

// Any other 2-D window over NHWC integers (ResNet's 3x3 stride-2 padded stem pool): one output
// row, each pixel's channels the maximum over its window's taps inside the input, 64 channels
// a step (the last masked) kept in a register until written once. The maximum of integers does
// not depend on the taps' order, and a window with no tap inside gives the type's lowest as
// max_pool_nhwc does, so the bytes are max_pool_nhwc's.
template <typename T>
__attribute__((target("avx512f,avx512bw"))) void max_row_nhwc_avx512(const PoolShape &s,
                                                                     const T *image, int64_t oy,
                                                                     T *out, int64_t channels) {
  const __m512i lowest = _mm512_set1_epi8(static_cast<char>(std::numeric_limits<T>::lowest()));
  for (int64_t ox = 0; ox < s.ow; ++ox, out += channels)
    for (int64_t c = 0; c < channels; c += 64) {
      const int64_t left = channels - c;
      const __mmask64 mask = left >= 64 ? ~__mmask64{0} : (__mmask64{1} << left) - 1;
      __m512i m = lowest;
      for (int64_t ky = 0; ky < s.kh; ++ky) {
        const int64_t iy = oy * s.sh - s.pt + ky * s.dh;
        if (iy < 0 || iy >= s.h) continue;
        for (int64_t kx = 0; kx < s.kw; ++kx) {
          const int64_t ix = ox * s.sw - s.pl + kx * s.dw;
          if (ix < 0 || ix >= s.w) continue;
          const __m512i v = _mm512_maskz_loadu_epi8(mask, image + (iy * s.w + ix) * channels + c);
          m = std::is_signed_v<T> ? _mm512_max_epi8(m, v) : _mm512_max_epu8(m, v);
        }
      }
      _mm512_mask_storeu_epi8(out + c, mask, m);
    }
}

template <typename T>
void max_pool_nhwc_integer(const PoolShape &s, int64_t images, int64_t channels, const T *x, T *y) {
  static_assert(std::is_integral_v<T> && sizeof(T) == 1);
  if (!cpu_allows_avx512bw()) return max_pool_nhwc(s, images, channels, x, y);
  parallel_for_2d(images, s.oh, worth_splitting(), [&](int64_t n, int64_t oy) {
    max_row_nhwc_avx512(s, x + n * s.h * s.w * channels, oy, y + (n * s.oh + oy) * s.ow * channels,
                        channels);
  });
}

// Window positions along one dim inside [0, size + pad_end), stepping by dilation: what
// count_include_pad counts (padding yes, the extra part that ceil_mode adds past it no).
inline int64_t padded_taps(int64_t start, int64_t k, int64_t dil, int64_t limit) {
  int64_t end = std::min(start + (k - 1) * dil + 1, limit);
  return (end - start + dil - 1) / dil;
}

// The output positions along one dim whose tap k lies inside the input: [first, last).
struct OutputSpan {
  int64_t first, last;
};
OutputSpan outputs_reading_tap(int64_t k, int64_t stride, int64_t dilation, int64_t pad_begin,
                               int64_t size, int64_t outputs) {
  // o * stride - pad_begin + k * dilation in [0, size)
  const int64_t offset = k * dilation - pad_begin;
  int64_t first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  int64_t last = size - offset <= 0 ? 0 : (size - 1 - offset) / stride + 1;
  first = std::min(first, outputs);
  last = std::clamp(last, first, outputs);
  return {first, last};
}

// A row of outputs at a time: for each tap of the window (kz, ky, kx in pool_windows' order)
// the outputs whose window holds it inside the input add it, a strided run along the row with
// no bounds test per tap, in a block of sums on the stack. Each output adds its taps in
// pool_windows' order from the same 0, so the same floats as that walk.
void avg_pool(const PoolShape &s, bool count_include_pad, const float *x, float *y) {
  constexpr int64_t kBlock = 256;
  const int64_t hw = s.h * s.w, ohw = s.oh * s.ow;
  std::vector<OutputSpan> spans(s.kw);
  for (int64_t kx = 0; kx < s.kw; ++kx)
    spans[kx] = outputs_reading_tap(kx, s.sw, s.dw, s.pl, s.w, s.ow);
  parallel_for_2d(s.planes, s.od, worth_splitting(), [&](int64_t p, int64_t oz) {
    const float *in = x + p * s.d * hw;
    float *out = y + (p * s.od + oz) * ohw;
    int64_t z_taps = 0;
    for (int64_t kz = 0; kz < s.kd; ++kz) {
      int64_t iz = oz * s.sd - s.pf + kz * s.dd;
      z_taps += iz >= 0 && iz < s.d;
    }
    for (int64_t oy = 0; oy < s.oh; ++oy) {
      int64_t y_taps = 0;
      for (int64_t ky = 0; ky < s.kh; ++ky) {
        int64_t iy = oy * s.sh - s.pt + ky * s.dh;
        y_taps += iy >= 0 && iy < s.h;
      }
      for (int64_t ox0 = 0; ox0 < s.ow; ox0 += kBlock) {
        const int64_t ox1 = std::min(s.ow, ox0 + kBlock);
        float sums[kBlock];
        std::fill(sums, sums + (ox1 - ox0), 0.f);
        for (int64_t kz = 0; kz < s.kd; ++kz) {
          int64_t iz = oz * s.sd - s.pf + kz * s.dd;
          if (iz < 0 || iz >= s.d) continue;
          for (int64_t ky = 0; ky < s.kh; ++ky) {
            int64_t iy = oy * s.sh - s.pt + ky * s.dh;
            if (iy < 0 || iy >= s.h) continue;
            const float *row = in + iz * hw + iy * s.w;
            for (int64_t kx = 0; kx < s.kw; ++kx) {
              const int64_t first = std::max(ox0, spans[kx].first),
                            last = std::min(ox1, spans[kx].last);
              const int64_t offset = kx * s.dw - s.pl;
              for (int64_t ox = first; ox < last; ++ox) sums[ox - ox0] += row[ox * s.sw + offset];
            }
          }
        }
        for (int64_t ox = ox0; ox < ox1; ++ox) {
          int64_t n = 0;
          if (count_include_pad) {
            n = padded_taps(oz * s.sd - s.pf, s.kd, s.dd, s.d + s.pk) *
                padded_taps(oy * s.sh - s.pt, s.kh, s.dh, s.h + s.pb) *
                padded_taps(ox * s.sw - s.pl, s.kw, s.dw, s.w + s.pr);
          } else {
            int64_t x_taps = 0;
            for (int64_t kx = 0; kx < s.kw; ++kx)
              x_taps += ox >= spans[kx].first && ox < spans[kx].last;
            n = z_taps * y_taps * x_taps;
          }
          out[oy * s.ow + ox] = n ? sums[ox - ox0] / static_cast<float>(n) : 0.f;
        }
      }
    }
  });
}

std::unique_ptr<Kernel> compile_max_pool(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  Shape out;
  PoolShape s = pool_shape(ctx, ctx.in_shape(0), ctx.attr_i("ceil_mode", 0) != 0, out);
  DType dt = ctx.in_dtype(0);
  ctx.set_output(0, dt, out);
  bool with_indices = ctx.output_count() > 1;
  if (with_indices) ctx.set_output(1, DType::i64, out);
  if (ctx.infer_only()) return nullptr;
  if (dt != DType::f32 && dt != DType::i8 && dt != DType::u8)
    ctx.unsupported(std::string("dtype ") + dtype_name(dt));
  if (with_indices) {
    int64_t storage_order = ctx.attr_i("storage_order", 0);
    if (storage_order != 0 && storage_order != 1)
      ctx.fail("storage_order must be 0 or 1, got " + std::to_string(storage_order));
    if (ctx.attr_i("_nhwc", 0) != 0) ctx.fail("_nhwc with the Indices output");
    bool column_major = storage_order == 1;
    auto k =
        make_kernel([s, dt, column_major](ExecContext &, const void *const *in, void *const *o) {
          int64_t *indices = static_cast<int64_t *>(o[1]);
          if (dt == DType::f32)
            max_pool_with_indices(s, column_major, static_cast<const float *>(in[0]),
                                  static_cast<float *>(o[0]), indices);
          else if (dt == DType::i8)
            max_pool_with_indices(s, column_major, static_cast<const int8_t *>(in[0]),
                                  static_cast<int8_t *>(o[0]), indices);
          else
            max_pool_with_indices(s, column_major, static_cast<const uint8_t *>(in[0]),
                                  static_cast<uint8_t *>(o[0]), indices);
        });
    k->macs = static_cast<uint64_t>(s.planes * s.od * s.oh * s.ow * s.kd * s.kh * s.kw);
    k->impl = "with indices";
    return k;
  }
  if (ctx.attr_i("_nhwc", 0) != 0) {
    const Shape &xs = ctx.in_shape(0);
    if (xs.size() != 4) ctx.fail("_nhwc needs a 4-D input, got " + shape_str(xs));
    int64_t images = xs[0], channels = xs[1];
    if (dt != DType::f32 && is_inner_2x2_stride_2(s)) {
      auto pairs = std::make_shared<const PairPermutes>(pair_permutes(channels));
      auto k = make_kernel(
          [s, dt, images, channels, pairs](ExecContext &, const void *const *in, void *const *o) {
            if (dt == DType::i8)
              max_pool_nhwc_2x2(s, *pairs, images, channels, static_cast<const int8_t *>(in[0]),
                                static_cast<int8_t *>(o[0]));
            else
              max_pool_nhwc_2x2(s, *pairs, images, channels, static_cast<const uint8_t *>(in[0]),
                                static_cast<uint8_t *>(o[0]));
          });
      k->macs = static_cast<uint64_t>(s.planes * s.oh * s.ow * 4);
      k->impl = pairs->per ? "nhwc, 2x2 stride 2, " + std::to_string(pairs->per) +
                                 " pixels per vbmi vector"
                           : std::string("nhwc, 2x2 stride 2");
      return k;
    }
    // Float 2x2/2 on AVX-512 unless AXSTREAM_ENGINE_FLOAT_POOL_2X2=0 (max_pool_nhwc's walk, the
    // same bits).
    if (dt == DType::f32 && is_inner_2x2_stride_2(s) && cpu_allows_avx512bw() &&
        setting_not_zero("AXSTREAM_ENGINE_FLOAT_POOL_2X2")) {
      auto k =
          make_kernel([s, images, channels](ExecContext &, const void *const *in, void *const *o) {
            max_pool_nhwc_2x2_f32(s, images, channels, static_cast<const float *>(in[0]),
                                  static_cast<float *>(o[0]));
          });
      k->macs = static_cast<uint64_t>(s.planes * s.oh * s.ow * 4);
      k->impl = "nhwc, 2x2 stride 2, avx512";
      return k;
    }
    auto k = make_kernel(
        [s, dt, images, channels](ExecContext &, const void *const *in, void *const *o) {
          if (dt == DType::f32)
            max_pool_nhwc(s, images, channels, static_cast<const float *>(in[0]),
                          static_cast<float *>(o[0]));
          else if (dt == DType::i8)
            max_pool_nhwc_integer(s, images, channels, static_cast<const int8_t *>(in[0]),
                                  static_cast<int8_t *>(o[0]));
          else
            max_pool_nhwc_integer(s, images, channels, static_cast<const uint8_t *>(in[0]),
                                  static_cast<uint8_t *>(o[0]));
        });
    k->macs = static_cast<uint64_t>(s.planes * s.oh * s.ow * s.kh * s.kw);
    k->impl = dt == DType::f32 ? "nhwc" : "nhwc, integer windows";
    return k;
  }
  auto k = make_kernel([s, dt](ExecContext &, const void *const *in, void *const *o) {
    if (dt == DType::f32)
      max_pool(s, static_cast<const float *>(in[0]), static_cast<float *>(o[0]));
    else if (dt == DType::i8)
      max_pool(s, static_cast<const int8_t *>(in[0]), static_cast<int8_t *>(o[0]));
    else
      max_pool(s, static_cast<const uint8_t *>(in[0]), static_cast<uint8_t *>(o[0]));
  });
  k->macs = static_cast<uint64_t>(s.planes * s.od * s.oh * s.ow * s.kd * s.kh * s.kw);
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
  k->macs = static_cast<uint64_t>(s.planes * s.od * s.oh * s.ow * s.kd * s.kh * s.kw);
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
