// Helpers shared by the reference kernels: broadcasting plans, axis utilities.
#pragma once

#include <algorithm>
#include <cmath>
#include <optional>
#include <type_traits>

#include "../op_registry.h"

namespace axstream::engine {

// dispatch_dtype (tensor.h) over the arithmetic dtypes only, for kernels whose arithmetic means
// nothing on bool: f is never instantiated with bool, and a bool dtype is NotImplemented.
template <typename F>
void dispatch_numeric_dtype(DType dtype, F &&f) {
  if (dtype == DType::bool_)
    throw NotImplemented("engine: dtype bool is not supported by this arithmetic kernel");
  dispatch_dtype(dtype, [&](auto zero) {
    if constexpr (!std::is_same_v<decltype(zero), bool>) f(zero);
  });
}

// dispatch_numeric_dtype plus float64 as double, for the kernels registered with
// AXSTREAM_ENGINE_FLOAT64_OP (they compute in T, or accumulate in double, throughout).
template <typename F>
void dispatch_numeric_or_float64_dtype(DType dtype, F &&f) {
  if (dtype == DType::f64) return f(double{});
  dispatch_numeric_dtype(dtype, std::forward<F>(f));
}

// dispatch_numeric_or_float64_dtype plus int16, uint16, uint32 and uint64, for the kernels
// registered for them too (OpDef::computes_opt_in_integers).
template <typename F>
void dispatch_numeric_float64_or_opt_in_integer_dtype(DType dtype, F &&f) {
  if (!is_opt_in_integer_dtype(dtype)) return dispatch_numeric_or_float64_dtype(dtype, f);
  dispatch_dtype_and_opt_in_integers(dtype, [&](auto zero) {
    if constexpr (!std::is_same_v<decltype(zero), bool>) f(zero);
  });
}

// Precomputed walk over an output shape with per-input strides (0 on broadcast dims).
struct BroadcastPlan {
  Shape out_shape;
  std::vector<Shape> in_strides;  // per input, aligned to out_shape
  int64_t count = 0;

  BroadcastPlan() = default;
  BroadcastPlan(const std::vector<Shape> &inputs, const Shape &out) : out_shape(out) {
    count = 1;
    for (int64_t d : out) count *= d;
    for (const Shape &in : inputs) {
      Shape st(out.size(), 0);
      Shape s = strides_of(in);
      size_t off = out.size() - in.size();
      for (size_t i = 0; i < in.size(); ++i) st[off + i] = in[i] == 1 ? 0 : s[i];
      in_strides.push_back(st);
    }
  }

  // A walk over `out` reading one input through arbitrary per-dim strides.
  static BroadcastPlan strided(const Shape &out, const Shape &strides) {
    BroadcastPlan p;
    p.out_shape = out;
    p.count = 1;
    for (int64_t d : out) p.count *= d;
    p.in_strides = {strides, Shape(out.size(), 0)};
    return p;
  }

  // f(out_index, in0_index, in1_index, ...) for every output element, in order.
  template <typename F>
  void for_each2(F &&f) const {
    if (count == 0) return;
    size_t rank = out_shape.size();
    if (rank == 0) {
      f(0, 0, 0);
      return;
    }
    int64_t inner = out_shape[rank - 1];
    int64_t sa = in_strides[0][rank - 1], sb = in_strides[1][rank - 1];
    std::vector<int64_t> idx(rank, 0);
    int64_t ia = 0, ib = 0;
    for (int64_t o = 0; o < count; o += inner) {
      for (int64_t k = 0; k < inner; ++k) f(o + k, ia + k * sa, ib + k * sb);
      for (int d = static_cast<int>(rank) - 2; d >= 0; --d) {
        ++idx[d];
        ia += in_strides[0][d];
        ib += in_strides[1][d];
        if (idx[d] < out_shape[d]) break;
        ia -= in_strides[0][d] * out_shape[d];
        ib -= in_strides[1][d] * out_shape[d];
        idx[d] = 0;
      }
    }
  }

  // Index into input `input` of output element `o` (cold paths).
  int64_t input_index(size_t input, int64_t o) const {
    int64_t r = 0;
    for (int d = static_cast<int>(out_shape.size()) - 1; d >= 0; --d) {
      r += (o % out_shape[d]) * in_strides[input][d];
      o /= out_shape[d];
    }
    return r;
  }
};

inline int64_t product(const Shape &s, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end && i < s.size(); ++i) p *= s[i];
  return p;
}

inline float round_half_even(float x) { return std::nearbyint(x); }

// The engine's dtype for an ONNX element type given as an attribute (Cast's `to`, EyeLike's and
// friends' `dtype`): float, uint8, int8, uint16, int16, int32, int64, bool, float16, double,
// uint32, uint64, bfloat16; std::nullopt for any other (string, complex, float8: the caller
// reports it as unsupported, naming the attribute).
inline std::optional<DType> dtype_of_onnx_element_type(int64_t elem_type) {
  switch (elem_type) {
    case 1:
      return DType::f32;
    case 2:
      return DType::u8;
    case 3:
      return DType::i8;
    case 4:
      return DType::u16;
    case 5:
      return DType::i16;
    case 6:
      return DType::i32;
    case 7:
      return DType::i64;
    case 9:
      return DType::bool_;
    case 10:
      return DType::f16;
    case 11:
      return DType::f64;
    case 12:
      return DType::u32;
    case 13:
      return DType::u64;
    case 16:
      return DType::bf16;
    default:
      return std::nullopt;
  }
}

}  // namespace axstream::engine

namespace axstream::engine {

// Geometry of a sliding-window op (Conv, pools) over the spatial dims, with ONNX's pads,
// auto_pad, strides, dilations and ceil_mode resolved.
struct WindowGeometry {
  Shape in, kernel, stride, dilation, pad_begin, pad_end, out;

  static WindowGeometry resolve(OpContext &ctx, const Shape &in_spatial, const Shape &kernel,
                                bool ceil_mode) {
    WindowGeometry g;
    size_t r = in_spatial.size();
    g.in = in_spatial;
    g.kernel = kernel;
    g.stride = ctx.attr_ints("strides", Shape(r, 1));
    g.dilation = ctx.attr_ints("dilations", Shape(r, 1));
    Shape pads = ctx.attr_ints("pads", Shape(2 * r, 0));
    if (g.kernel.size() != r || g.stride.size() != r || g.dilation.size() != r ||
        pads.size() != 2 * r)
      ctx.fail("kernel_shape/strides/dilations/pads do not match " + std::to_string(r) +
               " spatial dims");
    g.pad_begin.assign(pads.begin(), pads.begin() + r);
    g.pad_end.assign(pads.begin() + r, pads.end());
    std::string auto_pad = ctx.attr_s("auto_pad", "NOTSET");
    g.out.resize(r);
    for (size_t i = 0; i < r; ++i) {
      if (g.stride[i] <= 0 || g.dilation[i] <= 0 || g.kernel[i] <= 0)
        ctx.fail("non-positive kernel, stride or dilation");
      int64_t eff = (g.kernel[i] - 1) * g.dilation[i] + 1;
      if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
        g.out[i] = (g.in[i] + g.stride[i] - 1) / g.stride[i];
        int64_t total = std::max<int64_t>(0, (g.out[i] - 1) * g.stride[i] + eff - g.in[i]);
        g.pad_begin[i] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
        g.pad_end[i] = total - g.pad_begin[i];
        continue;
      }
      if (auto_pad == "VALID")
        g.pad_begin[i] = g.pad_end[i] = 0;
      else if (auto_pad != "NOTSET")
        ctx.fail("auto_pad '" + auto_pad + "' is not valid");
      int64_t span = g.in[i] + g.pad_begin[i] + g.pad_end[i] - eff;
      if (span < 0) ctx.fail("kernel larger than padded input");
      g.out[i] = (ceil_mode ? (span + g.stride[i] - 1) / g.stride[i] : span / g.stride[i]) + 1;
      // A window must start inside the input or left padding (ONNX/PyTorch ceil_mode rule).
      if (ceil_mode && (g.out[i] - 1) * g.stride[i] >= g.in[i] + g.pad_begin[i]) --g.out[i];
    }
    return g;
  }
};

// The group of a Conv-like node, after checking that input `xs` and weight `ws` are a 1-D or 2-D
// convolution (`kind` names it in the error) whose channels agree with that group.
inline int64_t conv_group(OpContext &ctx, const Shape &xs, const Shape &ws, const char *kind) {
  if (xs.size() < 3 || xs.size() > 5 || ws.size() != xs.size())
    ctx.unsupported(std::string("only 1-D, 2-D and 3-D ") + kind + " are supported (input " +
                    shape_str(xs) + ", weight " + shape_str(ws) + ")");
  int64_t group = ctx.attr_i("group", 1);
  if (group <= 0 || xs[1] % group || ws[0] % group || ws[1] * group != xs[1])
    ctx.fail("input channels " + std::to_string(xs[1]) + ", weight " + shape_str(ws) +
             " and group " + std::to_string(group) + " do not agree");
  return group;
}

// An activation fused into a producing kernel by the passes (attributes _activation,
// _act_min/_act_max for Clip, _act_alpha for LeakyRelu).
struct FusedActivation {
  enum class Kind { none, relu, clip, leaky_relu, hard_swish, swish, sigmoid } kind = Kind::none;
  float lo = -INFINITY, hi = INFINITY;
  float alpha = 0.f;
  // From `<prefix>_activation` and its parameters (`<prefix>_act_min`, ...): prefix "" for the
  // node's own activation, "_sum" for a float convolution's after its residual sum.
  static FusedActivation from(const OpContext &ctx, const std::string &prefix = "") {
    FusedActivation a;
    std::string k = ctx.attr_s(prefix + "_activation", "");
    if (k == "Relu") {
      a.kind = Kind::relu;
      a.lo = 0.f;
    } else if (k == "Clip") {
      a.kind = Kind::clip;
      a.lo = ctx.attr_f(prefix + "_act_min", -INFINITY);
      a.hi = ctx.attr_f(prefix + "_act_max", INFINITY);
    } else if (k == "LeakyRelu") {
      a.kind = Kind::leaky_relu;
      a.alpha = ctx.attr_f(prefix + "_act_alpha", 0.01f);
    } else if (k == "HardSwish") {
      a.kind = Kind::hard_swish;
    } else if (k == "SiLU") {
      a.kind = Kind::swish;
    } else if (k == "Sigmoid") {
      a.kind = Kind::sigmoid;
    } else if (!k.empty()) {
      ctx.fail("unknown fused activation '" + k + "'");
    }
    return a;
  }
  void apply(float *y, int64_t n) const {
    switch (kind) {
      case Kind::none:
        return;
      case Kind::relu:
      case Kind::clip:
        for (int64_t i = 0; i < n; ++i) y[i] = std::min(std::max(y[i], lo), hi);
        return;
      case Kind::leaky_relu:
        for (int64_t i = 0; i < n; ++i) y[i] = y[i] >= 0.f ? y[i] : y[i] * alpha;
        return;
      case Kind::hard_swish:
        for (int64_t i = 0; i < n; ++i)
          y[i] = y[i] * std::max(0.f, std::min(1.f, y[i] / 6.f + 0.5f));
        return;
      case Kind::swish:
        for (int64_t i = 0; i < n; ++i) y[i] = y[i] / (1.f + std::exp(-y[i]));
        return;
      case Kind::sigmoid:
        for (int64_t i = 0; i < n; ++i) y[i] = 1.f / (1.f + std::exp(-y[i]));
        return;
    }
  }
};

}  // namespace axstream::engine
