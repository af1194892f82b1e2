// QuantizeLinear / DequantizeLinear, per tensor and per axis (ONNX semantics: divide by the
// scale, round half to even, add the zero point, saturate).
// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized where they are inlined (its bug
// 105593, fixed in the headers of GCC 13): silenced for the header's lines only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <type_traits>

#include "common.h"

namespace axstream::engine {
namespace {

struct QuantParams {
  std::vector<float> scale;
  std::vector<int32_t> zero_point;
  int64_t block = 1;     // elements sharing one channel (product of dims after axis)
  int64_t channels = 1;  // 1 for per-tensor
};

QuantParams quant_params(OpContext &ctx, const Shape &data_shape) {
  QuantParams p;
  const Tensor &scale = ctx.require_constant(1, "scale");
  if (scale.dtype != DType::f32) ctx.fail("scale must be float32");
  for (int64_t i = 0; i < scale.count(); ++i) p.scale.push_back(scale.data<float>()[i]);
  if (ctx.has_input(2)) {
    const Tensor &zp = ctx.require_constant(2, "zero_point");
    if (zp.count() != scale.count())
      ctx.fail("zero_point has " + std::to_string(zp.count()) + " elements, scale " +
               std::to_string(scale.count()));
    for (int64_t i = 0; i < zp.count(); ++i)
      p.zero_point.push_back(static_cast<int32_t>(zp.as_int(i)));
  } else {
    p.zero_point.assign(p.scale.size(), 0);
  }
  if (scale.shape.size() > 1)
    ctx.fail("scale must be a scalar or 1-D, got " + shape_str(scale.shape));
  if (!scale.shape.empty() && (scale.count() > 1 || ctx.has_attr("axis"))) {
    int64_t axis = ctx.axis(ctx.attr_i("axis", 1), data_shape.size());
    if (data_shape[axis] != scale.count())
      ctx.fail("scale has " + std::to_string(scale.count()) + " elements but axis " +
               std::to_string(axis) + " of " + shape_str(data_shape) + " has " +
               std::to_string(data_shape[axis]));
    p.channels = scale.count();
    p.block = product(data_shape, axis + 1, data_shape.size());
  }
  return p;
}

template <typename Q>
void quantize(const float *x, Q *y, int64_t n, const QuantParams &p) {
  constexpr float lo = std::numeric_limits<Q>::lowest(), hi = std::numeric_limits<Q>::max();
  if (p.channels == 1) {
    // Clamp to the integer range first (the bounds are integers, so this commutes with the
    // rounding), then round half to even by adding and removing 1.5 * 2^23: exact for
    // |v| < 2^22 under the default rounding mode, and vectorisable unlike std::nearbyint.
    float scale = p.scale[0], zero = static_cast<float>(p.zero_point[0]);
    float lo_v = lo - zero, hi_v = hi - zero;
    constexpr float kRound = 12582912.f;
    for (int64_t i = 0; i < n; ++i) {
      float v = x[i] / scale;
      // Written so NaN (which fails every comparison) clamps to the low bound: a NaN -> int
      // cast is undefined behaviour (found by fuzz_onnx_import).
      v = v >= lo_v ? v : lo_v;
      v = v > hi_v ? hi_v : v;
      v = (v + kRound) - kRound;
      y[i] = static_cast<Q>(static_cast<int32_t>(v + zero));
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    int64_t c = (i / p.block) % p.channels;
    float v = round_half_even(x[i] / p.scale[c]) + static_cast<float>(p.zero_point[c]);
    y[i] = static_cast<Q>(v >= lo ? (v > hi ? hi : v) : lo);  // NaN -> lo, as above
  }
}

std::unique_ptr<Kernel> compile_quantize(OpContext &ctx) {
  ctx.expect_inputs(2, 3);
  DType out = ctx.has_input(2) ? ctx.in_dtype(2) : DType::u8;
  if (out != DType::u8 && out != DType::i8)
    ctx.unsupported(std::string("output dtype ") + dtype_name(out) + " (expected int8 or uint8)");
  ctx.set_output(0, out, ctx.in_shape(0));
  if (ctx.infer_only()) return nullptr;
  DType in = ctx.in_dtype(0);
  if (in != DType::f32 && in != DType::i32)
    ctx.unsupported(std::string("input dtype ") + dtype_name(in) + " (expected float32 or int32)");
  QuantParams p = quant_params(ctx, ctx.in_shape(0));
  int64_t n = product(ctx.in_shape(0), 0, ctx.in_shape(0).size());
  auto k = make_kernel([p, n, in, out](ExecContext &, const void *const *i, void *const *o) {
    std::vector<float> converted;
    const float *x = static_cast<const float *>(i[0]);
    if (in == DType::i32) {
      converted.resize(n);
      for (int64_t e = 0; e < n; ++e)
        converted[e] = static_cast<float>(static_cast<const int32_t *>(i[0])[e]);
      x = converted.data();
    }
    if (out == DType::i8)
      quantize(x, static_cast<int8_t *>(o[0]), n, p);
    else
      quantize(x, static_cast<uint8_t *>(o[0]), n, p);
  });
  k->macs = static_cast<uint64_t>(n);
  return k;
}

std::unique_ptr<Kernel> compile_dequantize(OpContext &ctx) {
  ctx.expect_inputs(2, 3);
  ctx.set_output(0, DType::f32, ctx.in_shape(0));
  if (ctx.infer_only()) return nullptr;
  DType in = ctx.in_dtype(0);
  if (in != DType::u8 && in != DType::i8 && in != DType::i32)
    ctx.unsupported(std::string("input dtype ") + dtype_name(in) +
                    " (expected int8, uint8 or int32)");
  QuantParams p = quant_params(ctx, ctx.in_shape(0));
  int64_t n = product(ctx.in_shape(0), 0, ctx.in_shape(0).size());
  auto k = make_kernel([p, n, in](ExecContext &, const void *const *i, void *const *o) {
    float *y = static_cast<float *>(o[0]);
    dispatch_dtype(in, [&](auto zero) {
      using T = decltype(zero);
      // int32 x minus an int32 zero point can overflow int32 (found by fuzz_onnx_import).
      using Wide = std::conditional_t<std::is_same_v<T, int32_t>, int64_t, int32_t>;
      const T *x = static_cast<const T *>(i[0]);
      if (p.channels == 1) {
        float s = p.scale[0];
        Wide zp = p.zero_point[0];
        for (int64_t e = 0; e < n; ++e) y[e] = static_cast<float>(static_cast<Wide>(x[e]) - zp) * s;
      } else {
        for (int64_t e = 0; e < n; ++e) {
          int64_t c = (e / p.block) % p.channels;
          y[e] = static_cast<float>(static_cast<Wide>(x[e]) - static_cast<Wide>(p.zero_point[c])) *
                 p.scale[c];
        }
      }
    });
  });
  k->macs = static_cast<uint64_t>(n);
  return k;
}

// axstream.QAdd (passes.cc): quantize([relu](dequantize(a) + dequantize(b))), per-tensor
// parameters, equal shapes; the unfused float arithmetic in one vectorisable pass.
enum QAddSlot { kA, kAScale, kAZero, kB, kBScale, kBZero, kYScale, kYZero };

bool cpu_has_avx512f() {
  static const bool avx512f = __builtin_cpu_supports("avx512f");
  return avx512f;
}

template <typename Q>
__attribute__((target("avx512f"))) inline __m512 load16_minus_zero(const Q *p, __m512i zero) {
  __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i *>(p));
  __m512i v = std::is_signed_v<Q> ? _mm512_cvtepi8_epi32(bytes) : _mm512_cvtepu8_epi32(bytes);
  return _mm512_cvtepi32_ps(_mm512_sub_epi32(v, zero));
}

// qadd's loop body on 16 elements at a time; returns how many it did (n rounded down to 16).
// The same IEEE operations in the same order as the scalar loop, so the results are
// bit-identical: fp-contract=off keeps a * sa + b * sb from becoming an FMA (avx512f enables
// FMA), and max_ps(bound, v) / min_ps(bound, v) return v when it is NaN, as the scalar
// comparisons do.
template <typename A, typename B, typename Y>
__attribute__((target("avx512f"), optimize("fp-contract=off"))) int64_t qadd_avx512(
    const A *a, const B *b, Y *y, int64_t n, float sa, int32_t za, float sb, int32_t zb, float sy,
    float floor_v, float lo_v, float hi_v, float zero) {
  constexpr float kRound = 12582912.f;
  const __m512i za_v = _mm512_set1_epi32(za), zb_v = _mm512_set1_epi32(zb);
  const __m512 sa_v = _mm512_set1_ps(sa), sb_v = _mm512_set1_ps(sb), sy_v = _mm512_set1_ps(sy),
               floor_ps = _mm512_set1_ps(floor_v), lo_ps = _mm512_set1_ps(lo_v),
               hi_ps = _mm512_set1_ps(hi_v), round_ps = _mm512_set1_ps(kRound),
               zero_ps = _mm512_set1_ps(zero);
  const int64_t n16 = n / 16 * 16;
  for (int64_t i = 0; i < n16; i += 16) {
    __m512 fa = _mm512_mul_ps(load16_minus_zero(a + i, za_v), sa_v);
    __m512 fb = _mm512_mul_ps(load16_minus_zero(b + i, zb_v), sb_v);
    __m512 s = _mm512_max_ps(floor_ps, _mm512_add_ps(fa, fb));
    __m512 v = _mm512_div_ps(s, sy_v);
    v = _mm512_min_ps(hi_ps, _mm512_max_ps(lo_ps, v));
    v = _mm512_sub_ps(_mm512_add_ps(v, round_ps), round_ps);
    __m512i q = _mm512_cvttps_epi32(_mm512_add_ps(v, zero_ps));
    _mm_storeu_si128(reinterpret_cast<__m128i *>(y + i), _mm512_cvtepi32_epi8(q));
  }
  return n16;
}

template <typename A, typename B, typename Y>
void qadd(const A *a, const B *b, Y *y, int64_t n, float sa, int32_t za, float sb, int32_t zb,
          float sy, int32_t zy, bool relu) {
  constexpr float lo = std::numeric_limits<Y>::lowest(), hi = std::numeric_limits<Y>::max();
  const float zero = static_cast<float>(zy), lo_v = lo - zero, hi_v = hi - zero;
  constexpr float kRound = 12582912.f;  // 1.5 * 2^23: round half to even for |v| < 2^22
  const float floor_v = relu ? 0.f : -INFINITY;
  // The residual joins of a ResNet are ~5.5 M elements per inference: 16 lanes at a time
  // where the CPU has them, with the same IEEE operations in the same order (bit-exact).
  const int64_t done = cpu_has_avx512f()
                           ? qadd_avx512(a, b, y, n, sa, za, sb, zb, sy, floor_v, lo_v, hi_v, zero)
                           : 0;
  for (int64_t i = done; i < n; ++i) {
    float s = static_cast<float>(static_cast<int32_t>(a[i]) - za) * sa +
              static_cast<float>(static_cast<int32_t>(b[i]) - zb) * sb;
    s = s < floor_v ? floor_v : s;
    float v = s / sy;
    v = v < lo_v ? lo_v : v;
    v = v > hi_v ? hi_v : v;
    v = (v + kRound) - kRound;
    y[i] = static_cast<Y>(static_cast<int32_t>(v + zero));
  }
}

std::unique_ptr<Kernel> compile_qadd(OpContext &ctx) {
  const Shape &shape = ctx.in_shape(kA);
  if (ctx.in_shape(kB) != shape)
    ctx.fail("QAdd inputs differ in shape: " + shape_str(shape) + " and " +
             shape_str(ctx.in_shape(kB)));
  DType out = ctx.has_input(kYZero) ? ctx.in_dtype(kYZero) : DType::u8;
  ctx.set_output(0, out, shape);
  if (ctx.infer_only()) return nullptr;
  DType ta = ctx.in_dtype(kA), tb = ctx.in_dtype(kB);
  auto is_q8 = [](DType t) { return t == DType::i8 || t == DType::u8; };
  if (!is_q8(ta) || !is_q8(tb) || !is_q8(out)) ctx.unsupported("QAdd needs int8/uint8 tensors");
  auto scale = [&](int slot, const char *what) { return ctx.scalar_scale(slot, what); };
  auto zero = [&](int slot, const char *what) { return ctx.zero_point_or_zero(slot, what); };
  float sa = scale(kAScale, "a_scale"), sb = scale(kBScale, "b_scale"),
        sy = scale(kYScale, "y_scale");
  int32_t za = zero(kAZero, "a_zero_point"), zb = zero(kBZero, "b_zero_point"),
          zy = zero(kYZero, "y_zero_point");
  bool relu = ctx.attr_i("_relu", 0) != 0;
  int64_t n = product(shape, 0, shape.size());
  auto k = make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
    dispatch_dtype(ta, [&](auto za_t) {
      using A = decltype(za_t);
      dispatch_dtype(tb, [&](auto zb_t) {
        using B = decltype(zb_t);
        const A *a = static_cast<const A *>(in[kA]);
        const B *b = static_cast<const B *>(in[kB]);
        if constexpr ((std::is_same_v<A, int8_t> || std::is_same_v<A, uint8_t>)&&(
                          std::is_same_v<B, int8_t> || std::is_same_v<B, uint8_t>)) {
          if (out == DType::i8)
            qadd(a, b, static_cast<int8_t *>(o[0]), n, sa, za, sb, zb, sy, zy, relu);
          else
            qadd(a, b, static_cast<uint8_t *>(o[0]), n, sa, za, sb, zb, sy, zy, relu);
        }
      });
    });
  });
  k->impl = relu ? "fused dequantize-add-relu-quantize" : "fused dequantize-add-quantize";
  k->macs = static_cast<uint64_t>(n);
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP_EX(AxQAdd, "axstream", "QAdd", 1, 1, compile_qadd, false)
AXSTREAM_ENGINE_OP(QuantizeLinear, "QuantizeLinear", 10, 17, compile_quantize)
AXSTREAM_ENGINE_OP(DequantizeLinear, "DequantizeLinear", 10, 17, compile_dequantize)

}  // namespace axstream::engine
