// Broadcasting binary and variadic element-wise ops: arithmetic, comparison, Where, BitShift.
#include "common.h"

namespace axstream::engine {
namespace {

enum class BinOp {
  add,
  sub,
  mul,
  div,
  pow,
  prelu,
  max,
  min,
  mod,
  fmod,
  equal,
  less,
  greater,
  less_equal,
  greater_equal,
  logical_and,
  logical_or,
  logical_xor
};

template <typename T>
inline T apply(BinOp op, T a, T b) {
  switch (op) {
    case BinOp::add:
      return a + b;
    case BinOp::sub:
      return a - b;
    case BinOp::mul:
      return a * b;
    case BinOp::div:
      return b == T(0) && !std::is_floating_point_v<T> ? T(0) : a / b;
    case BinOp::pow:
      return static_cast<T>(std::pow(static_cast<double>(a), static_cast<double>(b)));
    case BinOp::prelu:
      return a < T(0) ? a * b : a;
    case BinOp::max:
      return a > b ? a : b;
    case BinOp::min:
      return a < b ? a : b;
    case BinOp::fmod:
      if constexpr (std::is_floating_point_v<T>)
        return std::fmod(a, b);
      else
        return b == T(0) ? T(0) : static_cast<T>(a % b);
    case BinOp::mod:  // integer modulo with the divisor's sign (Python's %)
      if constexpr (std::is_floating_point_v<T>) {
        T r = std::fmod(a, b);
        return r != T(0) && ((r < T(0)) != (b < T(0))) ? r + b : r;
      } else {
        if (b == T(0)) return T(0);
        T r = static_cast<T>(a % b);
        return r != T(0) && ((r < T(0)) != (b < T(0))) ? static_cast<T>(r + b) : r;
      }
    default:
      return T(0);
  }
}

template <BinOp op, typename T>
void run_binary(const BroadcastPlan &plan, const T *a, const T *b, T *out) {
  const Shape &sa = plan.in_strides[0];
  const Shape &sb = plan.in_strides[1];
  size_t rank = plan.out_shape.size();
  bool same_a = true, same_b = true;
  Shape dense = strides_of(plan.out_shape);
  for (size_t i = 0; i < rank; ++i) {
    if (plan.out_shape[i] == 1) continue;
    same_a &= sa[i] == dense[i];
    same_b &= sb[i] == dense[i];
  }
  bool scalar_b = std::all_of(sb.begin(), sb.end(), [](int64_t s) { return s == 0; });
  int64_t n = plan.count;
  if (same_a && same_b) {
    for (int64_t i = 0; i < n; ++i) out[i] = apply(op, a[i], b[i]);
  } else if (same_a && scalar_b) {
    T bv = b[0];
    for (int64_t i = 0; i < n; ++i) out[i] = apply(op, a[i], bv);
  } else {
    plan.for_each2([&](int64_t o, int64_t ia, int64_t ib) { out[o] = apply(op, a[ia], b[ib]); });
  }
}

template <BinOp op>
std::unique_ptr<Kernel> compile_binary(OpContext &ctx) {
  ctx.expect_inputs(2, 2);
  DType dt = ctx.in_dtype(0);
  if (op != BinOp::pow && ctx.in_dtype(1) != dt)
    ctx.fail(std::string("input dtypes differ: ") + dtype_name(dt) + " and " +
             dtype_name(ctx.in_dtype(1)));
  Shape out = broadcast_shapes(ctx.in_shape(0), ctx.in_shape(1), ctx.where());
  Shape slope = ctx.in_shape(1);
  if (op == BinOp::prelu && out != ctx.in_shape(0)) {
    ctx.fail("slope of shape " + shape_str(slope) + " does not broadcast to the input " +
             shape_str(ctx.in_shape(0)));
  }
  ctx.set_output(0, dt, out);
  if (ctx.infer_only()) return nullptr;
  BroadcastPlan plan({ctx.in_shape(0), ctx.in_shape(1)}, out);
  std::unique_ptr<Kernel> k;
  if (op == BinOp::pow && ctx.in_dtype(1) != dt) {
    DType et = ctx.in_dtype(1);
    DType bt = dt;
    return make_kernel([plan, et, bt](ExecContext &, const void *const *in, void *const *o) {
      plan.for_each2([&](int64_t oi, int64_t ia, int64_t ib) {
        store_from_double(o[0], bt, oi,
                          std::pow(load_as_double(in[0], bt, ia), load_as_double(in[1], et, ib)));
      });
    });
  }
  // Mod's result in double is exact (fmod is), so float64 gets a double kernel; the other
  // binary ops are registered without float64 and never see it.
  if constexpr (op == BinOp::fmod) {
    if (dt == DType::f64) {
      k = make_kernel([plan](ExecContext &, const void *const *in, void *const *o) {
        run_binary<op>(plan, static_cast<const double *>(in[0]), static_cast<const double *>(in[1]),
                       static_cast<double *>(o[0]));
      });
      k->macs = static_cast<uint64_t>(plan.count);
      return k;
    }
  }
  switch (dt) {
    case DType::f32:
      k = make_kernel([plan](ExecContext &, const void *const *in, void *const *o) {
        run_binary<op>(plan, static_cast<const float *>(in[0]), static_cast<const float *>(in[1]),
                       static_cast<float *>(o[0]));
      });
      break;
    case DType::i32:
      k = make_kernel([plan](ExecContext &, const void *const *in, void *const *o) {
        run_binary<op>(plan, static_cast<const int32_t *>(in[0]),
                       static_cast<const int32_t *>(in[1]), static_cast<int32_t *>(o[0]));
      });
      break;
    case DType::i64:
      k = make_kernel([plan](ExecContext &, const void *const *in, void *const *o) {
        run_binary<op>(plan, static_cast<const int64_t *>(in[0]),
                       static_cast<const int64_t *>(in[1]), static_cast<int64_t *>(o[0]));
      });
      break;
    case DType::i8:
      k = make_kernel([plan](ExecContext &, const void *const *in, void *const *o) {
        run_binary<op>(plan, static_cast<const int8_t *>(in[0]), static_cast<const int8_t *>(in[1]),
                       static_cast<int8_t *>(o[0]));
      });
      break;
    case DType::u8:
      k = make_kernel([plan](ExecContext &, const void *const *in, void *const *o) {
        run_binary<op>(plan, static_cast<const uint8_t *>(in[0]),
                       static_cast<const uint8_t *>(in[1]), static_cast<uint8_t *>(o[0]));
      });
      break;
    default:
      ctx.unsupported(std::string("dtype ") + dtype_name(dt) +
                      " (expected float32, int8, uint8, int32 or int64)");
  }
  k->macs = static_cast<uint64_t>(plan.count);
  return k;
}

template <BinOp op>
std::unique_ptr<Kernel> compile_compare(OpContext &ctx) {
  ctx.expect_inputs(2, 2);
  DType dt = ctx.in_dtype(0);
  if (ctx.in_dtype(1) != dt) ctx.fail("input dtypes differ");
  Shape out = broadcast_shapes(ctx.in_shape(0), ctx.in_shape(1), ctx.where());
  ctx.set_output(0, DType::bool_, out);
  if (ctx.infer_only()) return nullptr;
  // Compared as doubles, which hold every value of every dtype but int64 beyond 2^53 exactly.
  BroadcastPlan plan({ctx.in_shape(0), ctx.in_shape(1)}, out);
  return make_kernel([plan, dt](ExecContext &, const void *const *in, void *const *o) {
    bool *r = static_cast<bool *>(o[0]);
    plan.for_each2([&](int64_t oi, int64_t ia, int64_t ib) {
      double a = load_as_double(in[0], dt, ia), b = load_as_double(in[1], dt, ib);
      switch (op) {
        case BinOp::equal:
          r[oi] = a == b;
          break;
        case BinOp::less:
          r[oi] = a < b;
          break;
        case BinOp::greater:
          r[oi] = a > b;
          break;
        case BinOp::less_equal:
          r[oi] = a <= b;
          break;
        case BinOp::greater_equal:
          r[oi] = a >= b;
          break;
        case BinOp::logical_and:
          r[oi] = a != 0 && b != 0;
          break;
        case BinOp::logical_or:
          r[oi] = a != 0 || b != 0;
          break;
        default:
          r[oi] = (a != 0) != (b != 0);
          break;
      }
    });
  });
}

// Max/Min take 1..N inputs, all broadcast together.
template <BinOp op>
std::unique_ptr<Kernel> compile_variadic(OpContext &ctx) {
  ctx.expect_inputs(1, 64);
  DType dt = ctx.in_dtype(0);
  Shape out = ctx.in_shape(0);
  for (size_t i = 1; i < ctx.input_count(); ++i) {
    if (ctx.in_dtype(i) != dt) ctx.fail("input dtypes differ");
    out = broadcast_shapes(out, ctx.in_shape(i), ctx.where());
  }
  ctx.set_output(0, dt, out);
  if (ctx.infer_only()) return nullptr;
  bool mean = op == BinOp::div;  // Mean: the sum divided by the input count
  // Max and Min select one of their inputs, so they take int8/uint8 and float64 (exact in
  // double); Sum and Mean are registered without float64.
  bool selects = op == BinOp::max || op == BinOp::min;
  if (dt != DType::f32 && dt != DType::i32 && dt != DType::i64 &&
      !(selects && (dt == DType::i8 || dt == DType::u8 || dt == DType::f64)))
    ctx.unsupported(std::string("dtype ") + dtype_name(dt));
  std::vector<BroadcastPlan> plans;
  for (size_t i = 0; i < ctx.input_count(); ++i)
    plans.emplace_back(std::vector<Shape>{out, ctx.in_shape(i)}, out);
  return make_kernel([plans, dt, mean](ExecContext &, const void *const *in, void *const *o) {
    dispatch_numeric_or_float64_dtype(dt, [&](auto zero) {
      using T = decltype(zero);
      T *r = static_cast<T *>(o[0]);
      const T *a0 = static_cast<const T *>(in[0]);
      plans[0].for_each2([&](int64_t oi, int64_t, int64_t ib) { r[oi] = a0[ib]; });
      for (size_t i = 1; i < plans.size(); ++i) {
        const T *ai = static_cast<const T *>(in[i]);
        plans[i].for_each2([&](int64_t oi, int64_t, int64_t ib) {
          r[oi] = apply(mean ? BinOp::add : op, r[oi], ai[ib]);
        });
      }
      if (mean)
        for (int64_t i = 0; i < plans[0].count; ++i)
          r[i] = static_cast<T>(r[i] / static_cast<T>(plans.size()));
    });
  });
}

std::unique_ptr<Kernel> compile_mod(OpContext &ctx) {
  if (ctx.attr_i("fmod", 0) != 0) return compile_binary<BinOp::fmod>(ctx);
  DType dt = ctx.in_dtype(0);
  if ((dt == DType::f32 || dt == DType::f64) && !ctx.infer_only())
    ctx.fail(std::string("Mod on ") + dtype_name(dt) + " needs fmod=1");
  return compile_binary<BinOp::mod>(ctx);
}

std::unique_ptr<Kernel> compile_where(OpContext &ctx) {
  ctx.expect_inputs(3, 3);
  // The kernel loads the condition as bool: any other dtype's bytes are not valid bools.
  if (ctx.in_dtype(0) != DType::bool_)
    ctx.fail(std::string("condition must be bool, got ") + dtype_name(ctx.in_dtype(0)));
  DType dt = ctx.in_dtype(1);
  if (ctx.in_dtype(2) != dt) ctx.fail("X and Y dtypes differ");
  Shape out = broadcast_shapes(broadcast_shapes(ctx.in_shape(0), ctx.in_shape(1), ctx.where()),
                               ctx.in_shape(2), ctx.where());
  ctx.set_output(0, dt, out);
  if (ctx.infer_only()) return nullptr;
  BroadcastPlan plan({ctx.in_shape(0), ctx.in_shape(1), ctx.in_shape(2)}, out);
  size_t es = dtype_size(dt);
  return make_kernel([plan, es](ExecContext &, const void *const *in, void *const *o) {
    const bool *c = static_cast<const bool *>(in[0]);
    for (int64_t i = 0; i < plan.count; ++i) {
      const uint8_t *src = c[plan.input_index(0, i)]
                               ? static_cast<const uint8_t *>(in[1]) + plan.input_index(1, i) * es
                               : static_cast<const uint8_t *>(in[2]) + plan.input_index(2, i) * es;
      std::memcpy(static_cast<uint8_t *>(o[0]) + i * es, src, es);
    }
  });
}

// BitShift on unsigned integers (uint8, the one the engine holds): a shift by the bit width or
// more gives 0, as the shifted-out bits would.
std::unique_ptr<Kernel> compile_bit_shift(OpContext &ctx) {
  ctx.expect_inputs(2, 2);
  DType dt = ctx.in_dtype(0);
  if (ctx.in_dtype(1) != dt) ctx.fail("X and Y dtypes differ");
  std::string direction = ctx.attr_s("direction", "");
  if (direction != "LEFT" && direction != "RIGHT")
    ctx.fail("direction must be LEFT or RIGHT, got '" + direction + "'");
  Shape out = broadcast_shapes(ctx.in_shape(0), ctx.in_shape(1), ctx.where());
  ctx.set_output(0, dt, out);
  if (ctx.infer_only()) return nullptr;
  if (dt != DType::u8)
    ctx.unsupported(std::string("dtype ") + dtype_name(dt) + " (BitShift takes unsigned integers)");
  BroadcastPlan plan({ctx.in_shape(0), ctx.in_shape(1)}, out);
  bool left = direction == "LEFT";
  return make_kernel([plan, left](ExecContext &, const void *const *in, void *const *o) {
    const uint8_t *x = static_cast<const uint8_t *>(in[0]),
                  *s = static_cast<const uint8_t *>(in[1]);
    uint8_t *y = static_cast<uint8_t *>(o[0]);
    plan.for_each2([&](int64_t oi, int64_t xi, int64_t si) {
      unsigned shift = s[si];
      y[oi] = shift >= 8 ? 0 : static_cast<uint8_t>(left ? x[xi] << shift : x[xi] >> shift);
    });
  });
}

}  // namespace

AXSTREAM_ENGINE_OP(Add, "Add", 7, 17, compile_binary<BinOp::add>)
AXSTREAM_ENGINE_OP(Sub, "Sub", 7, 17, compile_binary<BinOp::sub>)
AXSTREAM_ENGINE_OP(Mul, "Mul", 7, 17, compile_binary<BinOp::mul>)
AXSTREAM_ENGINE_OP(Div, "Div", 7, 17, compile_binary<BinOp::div>)
AXSTREAM_ENGINE_OP(Pow, "Pow", 7, 17, compile_binary<BinOp::pow>)
AXSTREAM_ENGINE_OP(PRelu, "PRelu", 7, 17, compile_binary<BinOp::prelu>)
AXSTREAM_ENGINE_FLOAT64_OP(Max, "Max", 8, 17, compile_variadic<BinOp::max>)
AXSTREAM_ENGINE_FLOAT64_OP(Min, "Min", 8, 17, compile_variadic<BinOp::min>)
AXSTREAM_ENGINE_DATA_OP(Equal, "Equal", 7, 17, compile_compare<BinOp::equal>, false)
AXSTREAM_ENGINE_DATA_OP(Less, "Less", 7, 17, compile_compare<BinOp::less>, false)
AXSTREAM_ENGINE_DATA_OP(Greater, "Greater", 7, 17, compile_compare<BinOp::greater>, false)
AXSTREAM_ENGINE_DATA_OP(Where, "Where", 9, 17, compile_where, false)
AXSTREAM_ENGINE_FLOAT64_OP(Mod, "Mod", 10, 17, compile_mod)
AXSTREAM_ENGINE_OP(Sum, "Sum", 8, 17, compile_variadic<BinOp::add>)
AXSTREAM_ENGINE_OP(Mean, "Mean", 8, 17, compile_variadic<BinOp::div>)
AXSTREAM_ENGINE_DATA_OP(LessOrEqual, "LessOrEqual", 12, 17, compile_compare<BinOp::less_equal>,
                        false)
AXSTREAM_ENGINE_DATA_OP(GreaterOrEqual, "GreaterOrEqual", 12, 17,
                        compile_compare<BinOp::greater_equal>, false)
AXSTREAM_ENGINE_OP(And, "And", 7, 17, compile_compare<BinOp::logical_and>)
AXSTREAM_ENGINE_OP(Or, "Or", 7, 17, compile_compare<BinOp::logical_or>)
AXSTREAM_ENGINE_OP(Xor, "Xor", 7, 17, compile_compare<BinOp::logical_xor>)
AXSTREAM_ENGINE_OP(BitShift, "BitShift", 11, 17, compile_bit_shift)

}  // namespace axstream::engine
