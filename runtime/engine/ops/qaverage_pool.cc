// axstream.QAveragePool: quantize(AveragePool(dequantize(x))) for a 4-D int8/uint8 x (2-D
// windows: kernel_shape, strides, pads, auto_pad, ceil_mode, count_include_pad as AveragePool)
// with per-tensor parameters (made by passes.cc; PP-OCR rec's 3x2 pool before its neck). Each
// output's taps inside the input are summed exactly in int32; the mean is (sum - x_zero_point
// x taps) x x_scale / divisor (the taps, or with count_include_pad the window's positions inside
// the padded input), requantised by QGlobalAveragePool's IEEE operations in its order. The float
// path's float sum rounds on the way, so the two differ by at most one output step, where a
// value sits on a rounding boundary. With _nhwc=1, x and y are NHWC.
// Inputs: x, x_scale, x_zero_point, y_scale, y_zero_point.
#include "../compiler.h"
#include "../cpu_features.h"
#include "../parallel.h"
#include "average_requantise.h"
#include "common.h"
#include "intrinsics.h"

namespace axstream::engine {
namespace {

enum Slot { kX, kXScale, kXZero, kYScale, kYZero };

// The taps of one output row (or column) inside the input: kernel indices [first, last), and
// the window's positions inside the padded input (what count_include_pad divides by).
struct TapRange {
  int64_t first, last, padded;
};

// One spatial dim's tap ranges for every output position.
std::vector<TapRange> tap_ranges(int64_t size, int64_t kernel, int64_t stride, int64_t dilation,
                                 int64_t pad_begin, int64_t pad_end, int64_t outputs) {
  std::vector<TapRange> ranges(outputs);
  for (int64_t o = 0; o < outputs; ++o) {
    const int64_t start = o * stride - pad_begin;
    TapRange &r = ranges[o];
    r.first = kernel;
    r.last = 0;
    for (int64_t k = 0; k < kernel; ++k) {
      const int64_t i = start + k * dilation;
      if (i < 0 || i >= size) continue;
      r.first = std::min(r.first, k);
      r.last = k + 1;
    }
    if (r.first >= r.last) r.first = r.last = 0;
    // Positions inside [-pad_begin, size + pad_end): padding counts, the part past it that
    // ceil_mode adds does not (AveragePool's rule, as ops/pool.cc counts it).
    const int64_t end = std::min(start + (kernel - 1) * dilation + 1, size + pad_end);
    r.padded = (end - start + dilation - 1) / dilation;
  }
  return ranges;
}

struct Window {
  int64_t h, w, oh, ow, sh, sw, dh, dw, pt, pl;
  std::vector<TapRange> rows, cols;
  bool include_pad;

  int64_t taps(int64_t oy, int64_t ox) const {
    return (rows[oy].last - rows[oy].first) * (cols[ox].last - cols[ox].first);
  }
  // What the mean divides by; 1 for a window with no tap (its sum, and so its mean, is 0, as
  // the float path writes 0 there).
  int64_t divisor(int64_t oy, int64_t ox) const {
    const int64_t n = include_pad ? rows[oy].padded * cols[ox].padded : taps(oy, ox);
    return std::max<int64_t>(n, 1);
  }
};

// The plain loops: NCHW planes, or NHWC pixels channel by channel.
template <typename X, typename Y>
void qaverage_row(const Window &s, const X *image, int64_t oy, Y *out, int64_t channels, bool nhwc,
                  const AverageRequantisation &r) {
  const TapRange &row = s.rows[oy];
  const int64_t plane = s.h * s.w;
  for (int64_t ox = 0; ox < s.ow; ++ox) {
    const TapRange &col = s.cols[ox];
    const int64_t taps = s.taps(oy, ox), divisor = s.divisor(oy, ox);
    for (int64_t c = 0; c < channels; ++c) {
      int32_t sum = 0;
      for (int64_t ky = row.first; ky < row.last; ++ky) {
        const int64_t iy = oy * s.sh - s.pt + ky * s.dh;
        for (int64_t kx = col.first; kx < col.last; ++kx) {
          const int64_t ix = ox * s.sw - s.pl + kx * s.dw;
          sum += nhwc ? image[(iy * s.w + ix) * channels + c] : image[c * plane + iy * s.w + ix];
        }
      }
      out[nhwc ? ox * channels + c : c * s.oh * s.ow + ox] =
          requantise_average<Y>(sum, taps, divisor, r);
    }
  }
}

// NHWC on AVX-512: each output pixel's channels 64 a step, their int32 sums kept in four
// registers over the window's taps, then requantised 16 at a time (average_requantise.h: the
// same bytes as the plain loop).
template <typename X, typename Y>
__attribute__((target("avx512f,avx512bw"))) void qaverage_row_nhwc_avx512(
    const Window &s, const X *image, int64_t oy, Y *out, int64_t channels,
    const AverageRequantisation &r) {
  const AverageRequantiser512<Y> requantiser(r);
  const TapRange &row = s.rows[oy];
  for (int64_t ox = 0; ox < s.ow; ++ox, out += channels) {
    const TapRange &col = s.cols[ox];
    const int64_t taps = s.taps(oy, ox);
    const __m512i offset = _mm512_set1_epi32(static_cast<int32_t>(int64_t{r.x_zero} * taps));
    const __m512 divisor_v = _mm512_set1_ps(static_cast<float>(s.divisor(oy, ox)));
    for (int64_t c0 = 0; c0 < channels; c0 += 64) {
      const int64_t left = std::min<int64_t>(64, channels - c0);
      const __mmask64 mask = left == 64 ? ~__mmask64{0} : (__mmask64{1} << left) - 1;
      __m512i sums[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                         _mm512_setzero_si512()};
      for (int64_t ky = row.first; ky < row.last; ++ky) {
        const int64_t iy = oy * s.sh - s.pt + ky * s.dh;
        for (int64_t kx = col.first; kx < col.last; ++kx) {
          const int64_t ix = ox * s.sw - s.pl + kx * s.dw;
          add_to_channel_sums<X>(
              sums, _mm512_maskz_loadu_epi8(mask, image + (iy * s.w + ix) * channels + c0));
        }
      }
      requantiser.store(sums, left, offset, divisor_v, out + c0);
    }
  }
}

template <typename X, typename Y>
void qaverage_pool(const Window &s, const X *x, Y *y, int64_t images, int64_t channels, bool nhwc,
                   bool avx512, const AverageRequantisation &r) {
  const int64_t in_image = channels * s.h * s.w, out_image = channels * s.oh * s.ow;
  parallel_for_2d(images, s.oh, worth_splitting(), [&](int64_t n, int64_t oy) {
    const X *image = x + n * in_image;
    Y *out = y + n * out_image + oy * (nhwc ? s.ow * channels : s.ow);
    if (avx512)
      qaverage_row_nhwc_avx512(s, image, oy, out, channels, r);
    else
      qaverage_row(s, image, oy, out, channels, nhwc, r);
  });
}

std::unique_ptr<Kernel> compile_qaverage_pool(OpContext &ctx) {
  ctx.expect_inputs(4, 5);
  const Shape &xs = ctx.in_shape(kX);
  if (xs.size() != 4) ctx.fail("expected a 4-D input, got " + shape_str(xs));
  const Shape kernel = ctx.attr_ints("kernel_shape");
  if (kernel.size() != 2) ctx.fail("kernel_shape must have 2 entries, got " + shape_str(kernel));
  const WindowGeometry g =
      WindowGeometry::resolve(ctx, {xs[2], xs[3]}, kernel, ctx.attr_i("ceil_mode", 0) != 0);
  DType y_type = ctx.has_input(kYZero) ? ctx.in_dtype(kYZero) : DType::u8;
  ctx.set_output(0, y_type, {xs[0], xs[1], g.out[0], g.out[1]});
  if (ctx.infer_only()) return nullptr;
  DType x_type = ctx.in_dtype(kX);
  if (!is_int8_or_uint8(x_type) || !is_int8_or_uint8(y_type))
    ctx.unsupported("QAveragePool needs int8/uint8 tensors");
  // int32 sums of up to 2^23 values of |x| <= 255 cannot overflow.
  if (kernel[0] * kernel[1] > (int64_t{1} << 23)) ctx.unsupported("windows over 2^23 elements");
  Window s{xs[2],
           xs[3],
           g.out[0],
           g.out[1],
           g.stride[0],
           g.stride[1],
           g.dilation[0],
           g.dilation[1],
           g.pad_begin[0],
           g.pad_begin[1],
           tap_ranges(xs[2], kernel[0], g.stride[0], g.dilation[0], g.pad_begin[0], g.pad_end[0],
                      g.out[0]),
           tap_ranges(xs[3], kernel[1], g.stride[1], g.dilation[1], g.pad_begin[1], g.pad_end[1],
                      g.out[1]),
           ctx.attr_i("count_include_pad", 0) != 0};
  AverageRequantisation r{ctx.scalar_scale(kXScale, "x_scale"),
                          ctx.scalar_scale(kYScale, "y_scale"),
                          ctx.zero_point_or_zero(kXZero, "x_zero_point"),
                          ctx.zero_point_or_zero(kYZero, "y_zero_point")};
  const bool nhwc = ctx.attr_i("_nhwc", 0) != 0;
  const int64_t images = xs[0], channels = xs[1];
  // AXSTREAM_ENGINE_VECTOR_AVERAGE_POOL=0 keeps the plain loop (the same bytes), for comparing.
  const bool avx512 =
      nhwc && cpu_allows_avx512bw() && setting_not_zero("AXSTREAM_ENGINE_VECTOR_AVERAGE_POOL");
  auto k = make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
    dispatch_dtype(x_type, [&](auto x_t) {
      using X = decltype(x_t);
      if constexpr (std::is_same_v<X, int8_t> || std::is_same_v<X, uint8_t>) {
        const X *x = static_cast<const X *>(in[kX]);
        if (y_type == DType::i8)
          qaverage_pool(s, x, static_cast<int8_t *>(o[0]), images, channels, nhwc, avx512, r);
        else
          qaverage_pool(s, x, static_cast<uint8_t *>(o[0]), images, channels, nhwc, avx512, r);
      }
    });
  });
  k->macs = static_cast<uint64_t>(images * channels * s.oh * s.ow * kernel[0] * kernel[1]);
  k->impl = avx512 ? "int32 sums nhwc, avx512" : nhwc ? "int32 sums nhwc" : "int32 sums";
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP_EX(AxQAveragePool, "axstream", "QAveragePool", 1, 1, compile_qaverage_pool,
                      false)

}  // namespace axstream::engine
