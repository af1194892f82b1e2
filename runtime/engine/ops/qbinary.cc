// axstream.QBinary: quantize([relu](dequantize(a) OP dequantize(b))) for OP = Add or Mul, with
// per-tensor parameters, b either a's shape or one value per channel of a 4-D a (1,C,1,1):
// the SE block's x * gate and the joins around it (made by passes.cc from the Q/DQ float ops).
// It evaluates the same float expressions the unfused DequantizeLinear, Add/Mul and
// QuantizeLinear kernels do, so it is bit-exact to them. With _nhwc=1, a and y are laid out
// NHWC (b, with H = W = 1, is the same either way).
// Inputs: a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point
// (QuantizedJoinSlot, quantized_join.h).
#include <type_traits>

#include "byte_lookup.h"
#include "common.h"
#include "quantized_join.h"

namespace axstream::engine {
namespace {

template <bool kMul, bool kRelu, typename A, typename B, typename Y>
inline Y qbinary_one(A a, B b, const QuantizedJoin &p) {
  constexpr float lo = std::numeric_limits<Y>::lowest(), hi = std::numeric_limits<Y>::max();
  constexpr float kRound = 12582912.f;  // 1.5 * 2^23: round half to even for |v| < 2^22
  float fa = static_cast<float>(static_cast<int32_t>(a) - p.a_zero) * p.a_scale;
  float fb = static_cast<float>(static_cast<int32_t>(b) - p.b_zero) * p.b_scale;
  float s = kMul ? fa * fb : fa + fb;
  if (kRelu) s = s > 0.f ? s : 0.f;
  const float zero = static_cast<float>(p.y_zero);
  float v = s / p.y_scale;
  // As QuantizeLinear: NaN fails both comparisons and clamps to the low bound.
  v = v >= lo - zero ? v : lo - zero;
  v = v > hi - zero ? hi - zero : v;
  v = (v + kRound) - kRound;
  return static_cast<Y>(static_cast<int32_t>(v + zero));
}

// a and y hold `count` elements; b as many, or one per channel: a is then (N, C, inner) NCHW
// or (N, inner, C) NHWC, b is (C) and `tables` (64-byte aligned scratch) has room for 256
// values per channel.
template <typename A, typename B, typename Y>
void qbinary(const A *a, const B *b, Y *y, int64_t count, int64_t channels, int64_t inner,
             bool same_shape, bool nhwc, const QuantizedJoin &p, Y *tables) {
  if (same_shape) return quantized_join(a, b, y, count, p);
  if (nhwc) {
    // Per channel on NHWC: each pixel's channel vector against b's dequantised values (in the
    // tables' scratch space).
    float *b_real = reinterpret_cast<float *>(tables);
    for (int64_t c = 0; c < channels; ++c)
      b_real[c] = static_cast<float>(static_cast<int32_t>(b[c]) - p.b_zero) * p.b_scale;
    return quantized_join_channels(a, b_real, y, count / channels, channels, p);
  }
  // Per channel, y is a function of a's 256 codes: one table per channel (built here, b is
  // computed at run time), then one lookup per element.
  constexpr uint8_t flip = std::is_same_v<A, int8_t> ? 0x80 : 0;  // int8 a indexes from -128
  auto table_entry = [&p](A av, B bv) {
    if (p.mul)
      return p.relu ? qbinary_one<true, true, A, B, Y>(av, bv, p)
                    : qbinary_one<true, false, A, B, Y>(av, bv, p);
    return p.relu ? qbinary_one<false, true, A, B, Y>(av, bv, p)
                  : qbinary_one<false, false, A, B, Y>(av, bv, p);
  };
  for (int64_t c = 0; c < channels; ++c)
    for (int i = 0; i < 256; ++i)
      tables[c * 256 + i] = table_entry(static_cast<A>(static_cast<uint8_t>(i ^ flip)), b[c]);
  const Y *t = tables;
  int64_t images = count / (channels * inner);
  for (int64_t n = 0; n < images; ++n)
    for (int64_t c = 0; c < channels; ++c) {
      int64_t base = (n * channels + c) * inner;
      byte_lookup(reinterpret_cast<const uint8_t *>(a + base),
                  reinterpret_cast<uint8_t *>(y + base), inner,
                  reinterpret_cast<const uint8_t *>(t + c * 256), flip);
    }
}

std::unique_ptr<Kernel> compile_qbinary(OpContext &ctx) {
  ctx.expect_inputs(7, 8);
  const Shape &shape = ctx.in_shape(kJoinA), &b_shape = ctx.in_shape(kJoinB);
  bool same_shape = b_shape == shape;
  bool per_channel = !same_shape && shape.size() == 4 && b_shape.size() == 4 && b_shape[0] == 1 &&
                     b_shape[1] == shape[1] && b_shape[2] == 1 && b_shape[3] == 1;
  if (!same_shape && !per_channel)
    ctx.fail("QBinary's b " + shape_str(b_shape) + " is neither a's shape " + shape_str(shape) +
             " nor one value per channel (1,C,1,1)");
  DType out = ctx.has_input(kJoinYZero) ? ctx.in_dtype(kJoinYZero) : DType::u8;
  ctx.set_output(0, out, shape);
  if (ctx.infer_only()) return nullptr;
  DType ta = ctx.in_dtype(kJoinA), tb = ctx.in_dtype(kJoinB);
  if (!is_int8_or_uint8(ta) || !is_int8_or_uint8(tb) || !is_int8_or_uint8(out))
    ctx.unsupported("QBinary needs int8/uint8 tensors");
  std::string op = ctx.attr_s("_op", "");
  if (op != "Add" && op != "Mul") ctx.fail("QBinary _op '" + op + "' (expected Add or Mul)");
  QuantizedJoin p = quantized_join_params(ctx);
  p.mul = op == "Mul";
  bool nhwc = ctx.attr_i("_nhwc", 0) != 0;
  int64_t count = product(shape, 0, shape.size());
  int64_t channels = per_channel ? shape[1] : 1;
  int64_t inner = per_channel ? shape[2] * shape[3] : 1;
  auto k = make_kernel([=](ExecContext &ec, const void *const *in, void *const *o) {
    dispatch_dtype(ta, [&](auto a_t) {
      using A = decltype(a_t);
      dispatch_dtype(tb, [&](auto b_t) {
        using B = decltype(b_t);
        if constexpr ((std::is_same_v<A, int8_t> || std::is_same_v<A, uint8_t>)&&(
                          std::is_same_v<B, int8_t> || std::is_same_v<B, uint8_t>)) {
          const A *a = static_cast<const A *>(in[kJoinA]);
          const B *b = static_cast<const B *>(in[kJoinB]);
          if (out == DType::i8)
            qbinary(a, b, static_cast<int8_t *>(o[0]), count, channels, inner, same_shape, nhwc, p,
                    static_cast<int8_t *>(ec.scratch));
          else
            qbinary(a, b, static_cast<uint8_t *>(o[0]), count, channels, inner, same_shape, nhwc, p,
                    static_cast<uint8_t *>(ec.scratch));
        }
      });
    });
  });
  k->scratch_bytes = per_channel ? static_cast<size_t>(channels) * 256 : 0;
  k->impl = std::string("fused dequantize-") + (p.mul ? "mul" : "add") + (p.relu ? "-relu" : "") +
            "-quantize" + (per_channel ? " per channel" : "") + (nhwc ? " nhwc" : "");
  k->macs = static_cast<uint64_t>(count);
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP_EX(AxQBinary, "axstream", "QBinary", 1, 1, compile_qbinary, false)

}  // namespace axstream::engine
