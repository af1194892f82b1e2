// Ops that only re-label or copy data: Reshape, Flatten, Squeeze, Unsqueeze, Identity,
// Dropout (inference, or training with ratio 0), Shape, Size, ConstantOfShape, Cast, CastLike,
// Expand, Tile.
#include "../float16.h"
#include "common.h"

namespace axstream::engine {
namespace {

std::unique_ptr<Kernel> copy_kernel(OpContext &ctx, Shape out) {
  ctx.set_output(0, ctx.in_dtype(0), out);
  if (ctx.infer_only()) return nullptr;
  size_t bytes = static_cast<size_t>(product(out, 0, out.size())) * dtype_size(ctx.in_dtype(0));
  auto kernel = make_kernel([bytes](ExecContext &, const void *const *in, void *const *o) {
    if (bytes && in[0] != o[0]) std::memcpy(o[0], in[0], bytes);
  });
  // Same bytes in and out: where the input dies here the memory planner gives the output the
  // input's buffer, and the step is a view (nothing copied). A graph input, a constant or an
  // output bound to the caller's buffer is still copied.
  kernel->output_may_overwrite_input = 0;
  return kernel;
}

std::unique_ptr<Kernel> compile_reshape(OpContext &ctx) {
  const Shape &in = ctx.in_shape(0);
  Shape target;
  if (ctx.opset() < 5) {
    target = ctx.attr_ints("shape");
  } else {
    ctx.expect_inputs(2, 2);
    target = ctx.constant_ints(1, "shape");
  }
  bool allowzero = ctx.attr_i("allowzero", 0) != 0;
  int64_t total = product(in, 0, in.size()), known = 1, infer_at = -1;
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] == 0 && !allowzero) {
      if (i >= in.size())
        ctx.fail("shape " + shape_str(target) + " copies dim " + std::to_string(i) +
                 " the input lacks");
      target[i] = in[i];
    }
    if (target[i] == -1) {
      if (infer_at >= 0) ctx.fail("shape " + shape_str(target) + " has two -1 entries");
      infer_at = static_cast<int64_t>(i);
      continue;
    }
    if (target[i] < 0) ctx.fail("shape " + shape_str(target) + " has a negative entry");
    if (__builtin_mul_overflow(known, target[i], &known))
      ctx.fail("shape " + shape_str(target) + " has more elements than a 64-bit count holds");
  }
  if (infer_at >= 0) {
    if (known == 0 || total % known)
      ctx.fail("cannot reshape " + shape_str(in) + " to " + shape_str(target));
    target[infer_at] = total / known;
  }
  // `known` is the product of the explicit entries; with a -1 the inferred one made it `total`.
  if (infer_at < 0 && known != total)
    ctx.fail("cannot reshape " + shape_str(in) + " (" + std::to_string(total) + " elements) to " +
             shape_str(target));
  return copy_kernel(ctx, target);
}

std::unique_ptr<Kernel> compile_flatten(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  const Shape &in = ctx.in_shape(0);
  int64_t axis = ctx.attr_i("axis", 1);
  if (axis < 0) axis += static_cast<int64_t>(in.size());
  if (axis < 0 || axis > static_cast<int64_t>(in.size())) ctx.fail("axis out of range");
  return copy_kernel(ctx, {product(in, 0, axis), product(in, axis, in.size())});
}

std::vector<int64_t> axes_of(OpContext &ctx, bool required) {
  if (ctx.opset() >= 13) {
    if (ctx.has_input(1)) return ctx.constant_ints(1, "axes");
    return {};
  }
  (void)required;
  return ctx.attr_ints("axes");
}

std::unique_ptr<Kernel> compile_squeeze(OpContext &ctx) {
  const Shape &in = ctx.in_shape(0);
  std::vector<int64_t> axes = axes_of(ctx, false);
  std::vector<bool> drop(in.size(), false);
  if (axes.empty()) {
    for (size_t i = 0; i < in.size(); ++i) drop[i] = in[i] == 1;
  } else {
    for (int64_t a : axes) {
      int64_t ax = ctx.axis(a, in.size());
      if (in[ax] != 1)
        ctx.fail("cannot squeeze axis " + std::to_string(a) + " of " + shape_str(in));
      drop[ax] = true;
    }
  }
  Shape out;
  for (size_t i = 0; i < in.size(); ++i)
    if (!drop[i]) out.push_back(in[i]);
  return copy_kernel(ctx, out);
}

std::unique_ptr<Kernel> compile_unsqueeze(OpContext &ctx) {
  const Shape &in = ctx.in_shape(0);
  std::vector<int64_t> axes = axes_of(ctx, true);
  size_t rank = in.size() + axes.size();
  std::vector<bool> inserted(rank, false);
  for (int64_t a : axes) {
    int64_t ax = ctx.axis(a, rank);
    if (inserted[ax]) ctx.fail("axis " + std::to_string(a) + " given twice");
    inserted[ax] = true;
  }
  Shape out;
  size_t j = 0;
  for (size_t i = 0; i < rank; ++i) out.push_back(inserted[i] ? 1 : in[j++]);
  return copy_kernel(ctx, out);
}

std::unique_ptr<Kernel> compile_identity(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  return copy_kernel(ctx, ctx.in_shape(0));
}

std::unique_ptr<Kernel> compile_dropout(OpContext &ctx) {
  ctx.expect_inputs(1, 3);
  // Training mode (opset 12+: input 2) zeroes a random `ratio` of the elements and scales the
  // rest by 1 / (1 - ratio): with ratio 0 that is the input unchanged, as in inference.
  if (ctx.has_input(2)) {
    const Tensor *training = ctx.constant(2);
    if (!training)
      ctx.unsupported(
          "input 2 (training_mode) must be a constant: training-mode Dropout is "
          "random unless its ratio is 0");
    if (training->count() != 1) ctx.fail("training_mode must be one bool");
    if (training->as_int(0) != 0) {
      const Tensor *ratio = ctx.has_input(1) ? ctx.constant(1) : nullptr;
      if (ctx.has_input(1) && !ratio)
        ctx.unsupported(
            "input 1 (ratio) of a training-mode Dropout must be a constant: it is "
            "random unless its ratio is 0");
      if (ratio && (ratio->dtype != DType::f32 || ratio->count() != 1))
        ctx.fail("ratio must be one float");
      float drop = ratio ? ratio->data<float>()[0] : 0.5f;
      if (!(drop >= 0.f && drop < 1.f))
        ctx.fail("ratio " + std::to_string(drop) + " is outside [0, 1)");
      if (drop != 0.f)
        ctx.unsupported("training-mode Dropout with ratio " + std::to_string(drop) +
                        " zeroes a random subset of the elements: its result is not a "
                        "function of the inputs (only ratio 0 is deterministic)");
    }
  }
  if (ctx.output_count() > 1) {
    // The mask of an inference-mode (or ratio 0) Dropout is all true.
    ctx.set_output(1, DType::bool_, ctx.in_shape(0));
  }
  auto copy = copy_kernel(ctx, ctx.in_shape(0));
  if (!copy || ctx.output_count() == 1) return copy;
  int64_t n = product(ctx.in_shape(0), 0, ctx.in_shape(0).size());
  size_t bytes = static_cast<size_t>(n) * dtype_size(ctx.in_dtype(0));
  return make_kernel([bytes, n](ExecContext &, const void *const *in, void *const *o) {
    if (bytes) std::memcpy(o[0], in[0], bytes);
    std::fill(static_cast<bool *>(o[1]), static_cast<bool *>(o[1]) + n, true);
  });
}

std::unique_ptr<Kernel> compile_shape(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  Shape in = ctx.in_shape(0);
  int64_t r = static_cast<int64_t>(in.size());
  int64_t start = ctx.attr_i("start", 0), end = ctx.attr_i("end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, start, r);
  Shape dims(in.begin() + start, in.begin() + end);
  ctx.set_output(0, DType::i64, {static_cast<int64_t>(dims.size())});
  return make_kernel([dims](ExecContext &, const void *const *, void *const *o) {
    std::copy(dims.begin(), dims.end(), static_cast<int64_t *>(o[0]));
  });
}

std::unique_ptr<Kernel> compile_size(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  int64_t n = product(ctx.in_shape(0), 0, ctx.in_shape(0).size());
  ctx.set_output(0, DType::i64, {});
  return make_kernel([n](ExecContext &, const void *const *, void *const *o) {
    *static_cast<int64_t *>(o[0]) = n;
  });
}

std::unique_ptr<Kernel> compile_constant_of_shape(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  Shape shape = ctx.constant_ints(0, "shape");
  const Tensor *value = ctx.attr_t("value");
  DType dt = value ? value->dtype : DType::f32;
  ctx.set_output(0, dt, shape);
  if (ctx.infer_only()) return nullptr;
  std::vector<uint8_t> element(dtype_size(dt), 0);
  if (value) {
    if (value->count() != 1) ctx.fail("value must hold one element");
    std::memcpy(element.data(), value->bytes.data(), element.size());
  }
  int64_t n = product(shape, 0, shape.size());
  return make_kernel([element, n](ExecContext &, const void *const *, void *const *o) {
    uint8_t *y = static_cast<uint8_t *>(o[0]);
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(y + i * element.size(), element.data(), element.size());
  });
}

// Integer (or bool) to integer (or bool): the low bits, as numpy and ONNX Runtime do (a double
// on the way would round values past 2^53 and saturate instead).
// Into a narrower or differently signed integer that is the value modulo 2^n (ONNX's Cast, C++'s
// conversion since C++20 and GCC's/clang's before it).
void cast_integers(const void *in, DType from, void *out, DType to, int64_t n) {
  dispatch_dtype_and_opt_in_integers(from, [&](auto from_zero) {
    const auto *x = static_cast<const decltype(from_zero) *>(in);
    dispatch_dtype_and_opt_in_integers(to, [&](auto to_zero) {
      using To = decltype(to_zero);
      auto *y = static_cast<To *>(out);
      for (int64_t i = 0; i < n; ++i) {
        if constexpr (std::is_same_v<To, bool>)
          y[i] = x[i] != 0;
        else
          y[i] = static_cast<To>(x[i]);
      }
    });
  });
}

// The float16 / bfloat16 -> float32 widening every half-weight model runs (folded at load when
// the weights are initializers): a table-free loop, exact.
template <float (*widen)(uint16_t)>
void widen_16_to_float(const void *in, void *out, int64_t n) {
  const auto *x = static_cast<const uint16_t *>(in);
  auto *y = static_cast<float *>(out);
  for (int64_t i = 0; i < n; ++i) y[i] = widen(x[i]);
}

// Cast's kernel to `dt` (Cast's `to`, CastLike's second input's dtype). Between any two of
// float32, float64, float16, bfloat16, the integers and bool, as numpy's astype: a float into an
// integer truncates towards zero and saturates (NaN reads 0), into bool is != 0; a value into
// float16/bfloat16 rounds to nearest even straight from its own precision (float64 -> float16
// is not rounded twice through float32), past the largest finite value to inf.
std::unique_ptr<Kernel> cast_to(OpContext &ctx, DType dt) {
  ctx.set_output(0, dt, ctx.in_shape(0));
  if (ctx.infer_only()) return nullptr;
  DType from = ctx.in_dtype(0);
  int64_t n = product(ctx.in_shape(0), 0, ctx.in_shape(0).size());
  if (from == dt)
    return make_kernel([n, dt](ExecContext &, const void *const *in, void *const *o) {
      // An empty tensor's buffers are null, which memcpy may not be given even for 0 bytes.
      if (n) std::memcpy(o[0], in[0], static_cast<size_t>(n) * dtype_size(dt));
    });
  if (!is_floating_dtype(from) && !is_floating_dtype(dt))
    return make_kernel([n, from, dt](ExecContext &, const void *const *in, void *const *o) {
      cast_integers(in[0], from, o[0], dt, n);
    });
  if (dt == DType::f32 && from == DType::f16)
    return make_kernel([n](ExecContext &, const void *const *in, void *const *o) {
      widen_16_to_float<half_to_float>(in[0], o[0], n);
    });
  if (dt == DType::f32 && from == DType::bf16)
    return make_kernel([n](ExecContext &, const void *const *in, void *const *o) {
      widen_16_to_float<bfloat16_to_float>(in[0], o[0], n);
    });
  if (dt == DType::f32 && from == DType::i64)
    // int64 -> float32 in one rounding (a double on the way rounds twice past 2^53).
    return make_kernel([n](ExecContext &, const void *const *in, void *const *o) {
      const auto *x = static_cast<const int64_t *>(in[0]);
      auto *y = static_cast<float *>(o[0]);
      for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(x[i]);
    });
  if (dt == DType::f32 && from == DType::u64)
    // uint64 -> float32 in one rounding too.
    return make_kernel([n](ExecContext &, const void *const *in, void *const *o) {
      const auto *x = static_cast<const uint64_t *>(in[0]);
      auto *y = static_cast<float *>(o[0]);
      for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(x[i]);
    });
  if (dt == DType::bf16 && from == DType::f32)
    return make_kernel([n](ExecContext &, const void *const *in, void *const *o) {
      const auto *x = static_cast<const float *>(in[0]);
      auto *y = static_cast<uint16_t *>(o[0]);
      for (int64_t i = 0; i < n; ++i) y[i] = float_to_bfloat16(x[i]);
    });
  // The narrowing after every op a float16 model computes in float32 (half_compute.h).
  if (dt == DType::f16 && from == DType::f32)
    return make_kernel([n](ExecContext &, const void *const *in, void *const *o) {
      const auto *x = static_cast<const float *>(in[0]);
      auto *y = static_cast<uint16_t *>(o[0]);
      for (int64_t i = 0; i < n; ++i) y[i] = float_to_half(x[i]);
    });
  // Every other pair through a double, which holds every float32, float16, bfloat16 and 32-bit
  // integer exactly, so the one rounding is the store's.
  return make_kernel([n, from, dt](ExecContext &, const void *const *in, void *const *o) {
    for (int64_t i = 0; i < n; ++i) store_from_double(o[0], dt, i, load_as_double(in[0], from, i));
  });
}

std::unique_ptr<Kernel> compile_cast(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  // Required: defaulting to float32 would run a Cast whose 'to' was misspelt or lost.
  if (!ctx.has_attr("to")) ctx.fail("attribute 'to' (the ONNX element type to cast to) is missing");
  int64_t to = ctx.attr_i("to", 1);
  std::optional<DType> dt = dtype_of_onnx_element_type(to);
  if (!dt) ctx.unsupported("cast to ONNX element type " + std::to_string(to));
  return cast_to(ctx, *dt);
}

// CastLike: Cast to the dtype of the second input (whose values are not read).
std::unique_ptr<Kernel> compile_cast_like(OpContext &ctx) {
  ctx.expect_inputs(2, 2);
  return cast_to(ctx, ctx.in_dtype(1));
}

// Expand and Tile: each output element copies one input element chosen by an index map.
std::unique_ptr<Kernel> gather_kernel(OpContext &ctx, const Shape &out, std::vector<int64_t> src) {
  ctx.set_output(0, ctx.in_dtype(0), out);
  if (ctx.infer_only()) return nullptr;
  size_t es = dtype_size(ctx.in_dtype(0));
  return make_kernel(
      [src = std::move(src), es](ExecContext &, const void *const *in, void *const *o) {
        const uint8_t *x = static_cast<const uint8_t *>(in[0]);
        uint8_t *y = static_cast<uint8_t *>(o[0]);
        for (size_t i = 0; i < src.size(); ++i) std::memcpy(y + i * es, x + src[i] * es, es);
      });
}

std::unique_ptr<Kernel> compile_expand(OpContext &ctx) {
  ctx.expect_inputs(2, 2);
  Shape target = ctx.constant_ints(1, "shape");
  Shape out = broadcast_shapes(ctx.in_shape(0), target, ctx.where());
  if (ctx.infer_only()) {
    ctx.set_output(0, ctx.in_dtype(0), out);
    return nullptr;
  }
  BroadcastPlan plan({ctx.in_shape(0), out}, out);
  std::vector<int64_t> src(static_cast<size_t>(plan.count));
  plan.for_each2([&](int64_t o, int64_t ia, int64_t) { src[o] = ia; });
  return gather_kernel(ctx, out, std::move(src));
}

std::unique_ptr<Kernel> compile_tile(OpContext &ctx) {
  ctx.expect_inputs(2, 2);
  const Shape &in = ctx.in_shape(0);
  Shape repeats = ctx.constant_ints(1, "repeats");
  if (repeats.size() != in.size()) ctx.fail("repeats must have one entry per input dim");
  Shape out(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (repeats[i] < 0)
      ctx.fail("repeats[" + std::to_string(i) + "] is " + std::to_string(repeats[i]) +
               ", expected 0 or more");
    if (__builtin_mul_overflow(in[i], repeats[i], &out[i]))
      ctx.fail("dim " + std::to_string(i) + " repeated " + std::to_string(repeats[i]) +
               " times is past int64");
  }
  if (ctx.infer_only()) {
    ctx.set_output(0, ctx.in_dtype(0), out);
    return nullptr;
  }
  Shape in_strides = strides_of(in);
  int64_t n = product(out, 0, out.size());
  std::vector<int64_t> src(static_cast<size_t>(n));
  for (int64_t o = 0; o < n; ++o) {
    int64_t rem = o, idx = 0;
    for (int d = static_cast<int>(out.size()) - 1; d >= 0; --d) {
      idx += ((rem % out[d]) % in[d]) * in_strides[d];
      rem /= out[d];
    }
    src[o] = idx;
  }
  return gather_kernel(ctx, out, std::move(src));
}

}  // namespace

AXSTREAM_ENGINE_DATA_OP(Reshape, "Reshape", 1, 17, compile_reshape, false)
AXSTREAM_ENGINE_DATA_OP(Flatten, "Flatten", 1, 17, compile_flatten, false)
AXSTREAM_ENGINE_DATA_OP(Squeeze, "Squeeze", 1, 17, compile_squeeze, false)
AXSTREAM_ENGINE_DATA_OP(Unsqueeze, "Unsqueeze", 1, 17, compile_unsqueeze, false)
AXSTREAM_ENGINE_DATA_OP(Identity, "Identity", 1, 17, compile_identity, false)
AXSTREAM_ENGINE_DATA_OP(Dropout, "Dropout", 1, 17, compile_dropout, false)
AXSTREAM_ENGINE_DATA_OP(Shape, "Shape", 1, 17, compile_shape, true)
AXSTREAM_ENGINE_DATA_OP(Size, "Size", 1, 17, compile_size, true)
AXSTREAM_ENGINE_DATA_OP(ConstantOfShape, "ConstantOfShape", 9, 17, compile_constant_of_shape, false)
AXSTREAM_ENGINE_DATA_OP(Cast, "Cast", 6, 17, compile_cast, false)
AXSTREAM_ENGINE_DATA_OP(CastLike, "CastLike", 15, 17, compile_cast_like, false)
AXSTREAM_ENGINE_DATA_OP(Expand, "Expand", 8, 17, compile_expand, false)
AXSTREAM_ENGINE_DATA_OP(Tile, "Tile", 6, 17, compile_tile, false)

}  // namespace axstream::engine
