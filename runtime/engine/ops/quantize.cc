// QuantizeLinear / DequantizeLinear, per tensor and per axis (ONNX semantics: divide by the
// scale, round half to even, add the zero point, saturate), and DynamicQuantizeLinear.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common.h"
#include "nhwc_quantize.h"
#include "quantized_join.h"

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
  for (int64_t i = 0; i < scale.count(); ++i) {
    // x / 0 and NaN scales give no number the graph could mean: a corrupt model, said as such.
    float value = scale.data<float>()[i];
    if (!std::isfinite(value) || value == 0)
      ctx.fail("scale[" + std::to_string(i) + "] is " + std::to_string(value) +
               ": expected a finite non-zero number");
    p.scale.push_back(value);
  }
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
    quantize_per_tensor(x, y, n, PerTensorQuantizer<Q>(p.scale[0], p.zero_point[0]));
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    int64_t c = (i / p.block) % p.channels;
    float v = round_half_even(x[i] / p.scale[c]) + static_cast<float>(p.zero_point[c]);
    y[i] = static_cast<Q>(v >= lo ? (v > hi ? hi : v) : lo);  // NaN -> lo, as above
  }
}

// quantize() into an int8 or uint8 output.
void quantize_into(DType out, const float *x, void *y, int64_t n, const QuantParams &p) {
  if (out == DType::i8)
    quantize(x, static_cast<int8_t *>(y), n, p);
  else
    quantize(x, static_cast<uint8_t *>(y), n, p);
}

// The (N,C,H*W) of a 4-D tensor kept NHWC by passes.cc (_dst_nhwc on a QuantizeLinear,
// _src_nhwc on a DequantizeLinear: the float side stays NCHW), after checking the op qualifies.
NhwcQuantShape nhwc_shape(OpContext &ctx, const char *attr, const QuantParams &p) {
  const Shape &s = ctx.in_shape(0);
  if (s.size() != 4) ctx.fail(std::string(attr) + " needs a 4-D input, got " + shape_str(s));
  if (p.channels != 1)
    ctx.fail(std::string(attr) + " needs a per-tensor scale, got " + std::to_string(p.channels) +
             " channels");
  return {s[0], s[1], s[2] * s[3]};
}

// A per-tensor scale and zero point computed at run time (DynamicQuantizeLinear written out as
// its function body): read and checked at each run, then the same arithmetic.
std::unique_ptr<Kernel> compile_quantize_run_time_params(OpContext &ctx, int64_t n, DType in,
                                                         DType out) {
  for (size_t i = 1; i < 3 && ctx.has_input(i); ++i)
    if (product(ctx.in_shape(i), 0, ctx.in_shape(i).size()) != 1 || ctx.in_shape(i).size() > 1)
      ctx.unsupported(std::string("input ") + std::to_string(i) +
                      (i == 1 ? " (scale)" : " (zero_point)") + " of shape " +
                      shape_str(ctx.in_shape(i)) +
                      " must be a constant: only a per-tensor one may be computed at run time");
  if (ctx.in_dtype(1) != DType::f32) ctx.fail("scale must be float32");
  if (in != DType::f32) ctx.unsupported("int32 input with a scale computed at run time");
  bool has_zero_point = ctx.has_input(2);
  std::string where = ctx.where();
  auto k = make_kernel([=](ExecContext &, const void *const *i, void *const *o) {
    float scale = *static_cast<const float *>(i[1]);
    if (!std::isfinite(scale) || scale == 0)
      throw InvalidArgument(where + ": scale is " + std::to_string(scale) +
                            " at run time: expected a finite non-zero number");
    QuantParams p;
    p.scale = {scale};
    p.zero_point = {0};
    if (has_zero_point)
      p.zero_point[0] = out == DType::i8 ? *static_cast<const int8_t *>(i[2])
                                         : *static_cast<const uint8_t *>(i[2]);
    const float *x = static_cast<const float *>(i[0]);
    quantize_into(out, x, o[0], n, p);
  });
  k->macs = static_cast<uint64_t>(n);
  return k;
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
  int64_t n = product(ctx.in_shape(0), 0, ctx.in_shape(0).size());
  if (!ctx.constant(1) || (ctx.has_input(2) && !ctx.constant(2)))
    return compile_quantize_run_time_params(ctx, n, in, out);
  QuantParams p = quant_params(ctx, ctx.in_shape(0));
  if (ctx.attr_i("_dst_nhwc", 0) != 0) {
    // passes.cc keeps the output NHWC for its int8 readers (a float block's result read by
    // int8 convolutions and residual adds): transposed while quantising, no reorder after.
    const NhwcQuantShape shape = nhwc_shape(ctx, "_dst_nhwc", p);
    if (in != DType::f32) ctx.fail("_dst_nhwc needs a float32 input");
    const float scale = p.scale[0];
    const int32_t zero_point = p.zero_point[0];
    auto k = make_kernel([=](ExecContext &, const void *const *i, void *const *o) {
      const float *x = static_cast<const float *>(i[0]);
      if (out == DType::i8)
        quantize_nchw_to_nhwc(x, static_cast<int8_t *>(o[0]), shape,
                              PerTensorQuantizer<int8_t>(scale, zero_point));
      else
        quantize_nchw_to_nhwc(x, static_cast<uint8_t *>(o[0]), shape,
                              PerTensorQuantizer<uint8_t>(scale, zero_point));
    });
    k->impl = std::string("quantize NCHW -> NHWC, ") + nhwc_quant_path_name(best_nhwc_quant_path());
    k->macs = static_cast<uint64_t>(n);
    return k;
  }
  auto k = make_kernel([p, n, in, out](ExecContext &, const void *const *i, void *const *o) {
    std::vector<float> converted;
    const float *x = static_cast<const float *>(i[0]);
    if (in == DType::i32) {
      converted.resize(n);
      for (int64_t e = 0; e < n; ++e)
        converted[e] = static_cast<float>(static_cast<const int32_t *>(i[0])[e]);
      x = converted.data();
    }
    quantize_into(out, x, o[0], n, p);
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
  if (ctx.attr_i("_src_nhwc", 0) != 0) {
    // passes.cc keeps the input NHWC (an int8 value a float block reads besides int8 ops):
    // blocks of 16 pixels x 16 channels turned around and dequantised, no reorder before.
    const NhwcQuantShape shape = nhwc_shape(ctx, "_src_nhwc", p);
    if (in != DType::u8 && in != DType::i8) ctx.fail("_src_nhwc needs an int8 or uint8 input");
    auto k = make_kernel([p, shape, in](ExecContext &, const void *const *i, void *const *o) {
      float *y = static_cast<float *>(o[0]);
      const float s = p.scale[0];
      const int32_t zp = p.zero_point[0];
      dispatch_dtype(in, [&](auto zero) {
        using T = decltype(zero);
        if constexpr (std::is_same_v<T, int8_t> || std::is_same_v<T, uint8_t>)
          dequantize_nhwc_to_nchw(static_cast<const T *>(i[0]), y, shape, s, zp);
      });
    });
    k->impl =
        std::string("dequantize NHWC -> NCHW, ") + nhwc_quant_path_name(best_nhwc_quant_path());
    k->macs = static_cast<uint64_t>(n);
    return k;
  }
  auto k = make_kernel([p, n, in](ExecContext &, const void *const *i, void *const *o) {
    float *y = static_cast<float *>(o[0]);
    dispatch_dtype(in, [&](auto zero) {
      using T = decltype(zero);
      // int32 x minus an int32 zero point can overflow int32 (found by fuzz_onnx_import).
      using Wide = std::conditional_t<std::is_same_v<T, int32_t>, int64_t, int32_t>;
      const T *x = static_cast<const T *>(i[0]);
      if constexpr (std::is_same_v<T, int8_t> || std::is_same_v<T, uint8_t>) {
        if (p.channels == 1) return dequantize_per_tensor(x, y, n, p.scale[0], p.zero_point[0]);
      }
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
// parameters, equal shapes; the unfused float arithmetic in one vectorisable pass, but for b's
// product added in one rounding (QuantizedJoin::fused_multiply_add_b). Inputs as
// QuantizedJoinSlot (quantized_join.h).
std::unique_ptr<Kernel> compile_qadd(OpContext &ctx) {
  const Shape &shape = ctx.in_shape(kJoinA);
  if (ctx.in_shape(kJoinB) != shape)
    ctx.fail("QAdd inputs differ in shape: " + shape_str(shape) + " and " +
             shape_str(ctx.in_shape(kJoinB)));
  DType out = ctx.has_input(kJoinYZero) ? ctx.in_dtype(kJoinYZero) : DType::u8;
  ctx.set_output(0, out, shape);
  if (ctx.infer_only()) return nullptr;
  DType ta = ctx.in_dtype(kJoinA), tb = ctx.in_dtype(kJoinB);
  if (!is_int8_or_uint8(ta) || !is_int8_or_uint8(tb) || !is_int8_or_uint8(out))
    ctx.unsupported("QAdd needs int8/uint8 tensors");
  QuantizedJoin join = quantized_join_params(ctx);
  // b's product joins a's in one rounding, as a convolution's sum post-op adds it, so that
  // passes.cc may fuse the add into the convolution writing a without changing a bit.
  join.fused_multiply_add_b = true;
  int64_t n = product(shape, 0, shape.size());
  auto k = make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
    dispatch_dtype(ta, [&](auto za_t) {
      using A = decltype(za_t);
      dispatch_dtype(tb, [&](auto zb_t) {
        using B = decltype(zb_t);
        const A *a = static_cast<const A *>(in[kJoinA]);
        const B *b = static_cast<const B *>(in[kJoinB]);
        if constexpr ((std::is_same_v<A, int8_t> || std::is_same_v<A, uint8_t>)&&(
                          std::is_same_v<B, int8_t> || std::is_same_v<B, uint8_t>)) {
          // The residual joins of a ResNet are ~5.5 M elements per inference: 16 lanes at a
          // time where the CPU has them (quantized_join.h).
          if (out == DType::i8)
            quantized_join(a, b, static_cast<int8_t *>(o[0]), n, join);
          else
            quantized_join(a, b, static_cast<uint8_t *>(o[0]), n, join);
        }
      });
    });
  });
  k->impl = join.relu ? "fused dequantize-add-relu-quantize" : "fused dequantize-add-quantize";
  k->macs = static_cast<uint64_t>(n);
  return k;
}

// DynamicQuantizeLinear: uint8 with the scale and zero point of x's range widened to hold 0,
// ONNX's function body step by step. An all-zero (or empty) x has range 0: its scale is 0 and
// every value is the zero point 0 (the function's 0 / 0 would be NaN, cast undefined).
std::unique_ptr<Kernel> compile_dynamic_quantize(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  ctx.set_output(0, DType::u8, ctx.in_shape(0));
  ctx.set_output(1, DType::f32, {});
  ctx.set_output(2, DType::u8, {});
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::f32)
    ctx.unsupported(std::string("input dtype ") + dtype_name(ctx.in_dtype(0)) +
                    " (expected float32)");
  int64_t n = product(ctx.in_shape(0), 0, ctx.in_shape(0).size());
  return make_kernel([n](ExecContext &, const void *const *i, void *const *o) {
    const float *x = static_cast<const float *>(i[0]);
    uint8_t *y = static_cast<uint8_t *>(o[0]);
    float lo = 0.f, hi = 0.f;  // NaN fails both comparisons and is left out of the range
    for (int64_t e = 0; e < n; ++e) {
      lo = x[e] < lo ? x[e] : lo;
      hi = x[e] > hi ? x[e] : hi;
    }
    float scale = (hi - lo) / 255.f;
    uint8_t zero_point = 0;
    if (scale > 0.f) {
      float z = round_half_even(0.f - lo / scale);
      zero_point = static_cast<uint8_t>(std::clamp(z, 0.f, 255.f));
      const float lo_v = -static_cast<float>(zero_point), hi_v = 255.f - zero_point;
      for (int64_t e = 0; e < n; ++e) {
        float v = x[e] / scale;
        v = v >= lo_v ? v : lo_v;  // NaN -> the low bound, as QuantizeLinear
        v = v > hi_v ? hi_v : v;
        y[e] = static_cast<uint8_t>(round_half_even(v) + zero_point);
      }
    } else if (n > 0) {
      std::memset(y, 0, static_cast<size_t>(n));
    }
    *static_cast<float *>(o[1]) = scale;
    *static_cast<uint8_t *>(o[2]) = zero_point;
  });
}

}  // namespace

AXSTREAM_ENGINE_OP_EX(AxQAdd, "axstream", "QAdd", 1, 1, compile_qadd, false)
AXSTREAM_ENGINE_OP(QuantizeLinear, "QuantizeLinear", 10, 17, compile_quantize)
AXSTREAM_ENGINE_OP(DequantizeLinear, "DequantizeLinear", 10, 17, compile_dequantize)
AXSTREAM_ENGINE_OP(DynamicQuantizeLinear, "DynamicQuantizeLinear", 11, 17, compile_dynamic_quantize)

}  // namespace axstream::engine
