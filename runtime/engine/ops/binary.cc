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

// The type an integer T's sums, differences and products are computed in: its unsigned
// counterpart, at least unsigned int wide, so that they wrap modulo 2^n as ONNX (numpy) defines
// them. In T itself an int32 or int64 overflow is undefined behaviour, and so is a uint16
// product, which C++ promotes to (signed) int: 65535 * 65535 overflows it.
template <typename T>
using WrapType =
    std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;

template <typename T>
inline T apply(BinOp op, T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    using W = WrapType<T>;
    switch (op) {
      case BinOp::add:
        return static_cast<T>(static_cast<W>(a) + static_cast<W>(b));
      case BinOp::sub:
        return static_cast<T>(static_cast<W>(a) - static_cast<W>(b));
      case BinOp::mul:
        return static_cast<T>(static_cast<W>(a) * static_cast<W>(b));
      default:
        break;
    }
    if constexpr (std::is_signed_v<T>) {
      // The lowest value over -1 overflows (it is the lowest again, wrapped, and its remainder
      // 0): undefined behaviour in C++, a trap on x86.
      if (b == T(-1) && (op == BinOp::div || op == BinOp::mod || op == BinOp::fmod))
        return op == BinOp::div ? static_cast<T>(W(0) - static_cast<W>(a)) : T(0);
    }
  }
  switch (op) {
    case BinOp::add:
      return a + b;
    case BinOp::sub:
      return a - b;
    case BinOp::mul:
      return a * b;
    case BinOp::div:
      return b == T(0) && !std::is_floating_point_v<T> ? T(0) : static_cast<T>(a / b);
    case BinOp::pow:
      if constexpr (std::is_integral_v<T>)
        return saturating_cast<T>(std::pow(static_cast<double>(a), static_cast<double>(b)));
      else
        return static_cast<T>(std::pow(static_cast<double>(a), static_cast<double>(b)));
    case BinOp::prelu:
      return a < T(0) ? apply(BinOp::mul, a, b) : a;
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
      } else if constexpr (std::is_unsigned_v<T>) {
        return b == T(0) ? T(0) : static_cast<T>(a % b);
      } else {
        if (b == T(0)) return T(0);
        T r = static_cast<T>(a % b);
        // r and b of opposite signs: their sum lies between them, so it does not overflow.
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
  // Pow's base is float or int32/int64 in ONNX (T); its exponent (T1) may be any integer, read
  // by the mixed-type kernel below.
  if (op == BinOp::pow && is_opt_in_integer_dtype(dt))
    ctx.unsupported(std::string("base of dtype ") + dtype_name(dt) +
                    " (expected float32, int8, uint8, int32 or int64; int16, uint16, uint32 and "
                    "uint64 are exponent types in ONNX's Pow)");
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
  // int16, uint16, uint32 and uint64 reach only the ops registered for them (the compiler
  // refuses them for PRelu).
  if (dt == DType::bool_ || is_storage_only_dtype(dt))
    ctx.unsupported(std::string("dtype ") + dtype_name(dt) +
                    " (expected float32 or an integer dtype)");
  dispatch_dtype_and_opt_in_integers(dt, [&](auto zero) {
    using T = decltype(zero);
    if constexpr (!std::is_same_v<T, bool>)
      k = make_kernel([plan](ExecContext &, const void *const *in, void *const *o) {
        run_binary<op>(plan, static_cast<const T *>(in[0]), static_cast<const T *>(in[1]),
                       static_cast<T *>(o[0]));
      });
  });
  k->macs = static_cast<uint64_t>(plan.count);
  return k;
}

template <BinOp op, typename T>
bool compare(T a, T b) {
  switch (op) {
    case BinOp::equal:
      return a == b;
    case BinOp::less:
      return a < b;
    case BinOp::greater:
      return a > b;
    case BinOp::less_equal:
      return a <= b;
    case BinOp::greater_equal:
      return a >= b;
    case BinOp::logical_and:
      return a != T(0) && b != T(0);
    case BinOp::logical_or:
      return a != T(0) || b != T(0);
    default:
      return (a != T(0)) != (b != T(0));
  }
}

template <BinOp op>
std::unique_ptr<Kernel> compile_compare(OpContext &ctx) {
  ctx.expect_inputs(2, 2);
  DType dt = ctx.in_dtype(0);
  if (ctx.in_dtype(1) != dt) ctx.fail("input dtypes differ");
  Shape out = broadcast_shapes(ctx.in_shape(0), ctx.in_shape(1), ctx.where());
  ctx.set_output(0, DType::bool_, out);
  if (ctx.infer_only()) return nullptr;
  BroadcastPlan plan({ctx.in_shape(0), ctx.in_shape(1)}, out);
  // Integers are compared in their own type: a double does not hold int64 or uint64 values
  // beyond 2^53 exactly (2^53 + 1 would equal 2^53).
  if (!is_floating_dtype(dt) && dt != DType::bool_) {
    std::unique_ptr<Kernel> k;
    dispatch_dtype_and_opt_in_integers(dt, [&](auto zero) {
      using T = decltype(zero);
      k = make_kernel([plan](ExecContext &, const void *const *in, void *const *o) {
        const T *a = static_cast<const T *>(in[0]), *b = static_cast<const T *>(in[1]);
        bool *r = static_cast<bool *>(o[0]);
        plan.for_each2(
            [&](int64_t oi, int64_t ia, int64_t ib) { r[oi] = compare<op>(a[ia], b[ib]); });
      });
    });
    return k;
  }
  // Floats (float16 and bfloat16 among them) and bool as doubles, which hold them all exactly.
  return make_kernel([plan, dt](ExecContext &, const void *const *in, void *const *o) {
    bool *r = static_cast<bool *>(o[0]);
    plan.for_each2([&](int64_t oi, int64_t ia, int64_t ib) {
      r[oi] = compare<op>(load_as_double(in[0], dt, ia), load_as_double(in[1], dt, ib));
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
  // Max and Min select one of their inputs, so they take int8/uint8, float64 (exact in double)
  // and int16/uint16/uint32/uint64; Sum and Mean are registered without float64 and those.
  bool selects = op == BinOp::max || op == BinOp::min;
  if (dt != DType::f32 && dt != DType::i32 && dt != DType::i64 &&
      !(selects &&
        (dt == DType::i8 || dt == DType::u8 || dt == DType::f64 || is_opt_in_integer_dtype(dt))))
    ctx.unsupported(std::string("dtype ") + dtype_name(dt));
  std::vector<BroadcastPlan> plans;
  for (size_t i = 0; i < ctx.input_count(); ++i)
    plans.emplace_back(std::vector<Shape>{out, ctx.in_shape(i)}, out);
  return make_kernel([plans, dt, mean](ExecContext &, const void *const *in, void *const *o) {
    dispatch_numeric_float64_or_opt_in_integer_dtype(dt, [&](auto zero) {
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

// BitShift on the unsigned integers (uint8, uint16, uint32, uint64): a shift by the bit width or
// more gives 0, as the shifted-out bits would (in C++ it is undefined).
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
  if (dt != DType::u8 && dt != DType::u16 && dt != DType::u32 && dt != DType::u64)
    ctx.unsupported(std::string("dtype ") + dtype_name(dt) +
                    " (BitShift takes unsigned integers: uint8, uint16, uint32, uint64)");
  BroadcastPlan plan({ctx.in_shape(0), ctx.in_shape(1)}, out);
  bool left = direction == "LEFT";
  std::unique_ptr<Kernel> k;
  dispatch_dtype_and_opt_in_integers(dt, [&](auto zero) {
    using T = decltype(zero);
    if constexpr (std::is_unsigned_v<T> && !std::is_same_v<T, bool>) {
      k = make_kernel([plan, left](ExecContext &, const void *const *in, void *const *o) {
        const T *x = static_cast<const T *>(in[0]), *s = static_cast<const T *>(in[1]);
        T *y = static_cast<T *>(o[0]);
        plan.for_each2([&](int64_t oi, int64_t xi, int64_t si) {
          // Shifted as WrapType (unsigned int at least): uint16 promotes to int, where 0xffff
          // << 16 would overflow.
          const auto value = static_cast<WrapType<T>>(x[xi]);
          const T shift = s[si];
          y[oi] = shift >= sizeof(T) * 8 ? T(0)
                                         : static_cast<T>(left ? value << shift : value >> shift);
        });
      });
    }
  });
  return k;
}

}  // namespace

AXSTREAM_ENGINE_ALL_INTEGERS_OP(Add, "Add", 7, 17, compile_binary<BinOp::add>)
AXSTREAM_ENGINE_ALL_INTEGERS_OP(Sub, "Sub", 7, 17, compile_binary<BinOp::sub>)
AXSTREAM_ENGINE_ALL_INTEGERS_OP(Mul, "Mul", 7, 17, compile_binary<BinOp::mul>)
AXSTREAM_ENGINE_ALL_INTEGERS_OP(Div, "Div", 7, 17, compile_binary<BinOp::div>)
AXSTREAM_ENGINE_ALL_INTEGERS_OP(Pow, "Pow", 7, 17, compile_binary<BinOp::pow>)
AXSTREAM_ENGINE_OP(PRelu, "PRelu", 7, 17, compile_binary<BinOp::prelu>)
AXSTREAM_ENGINE_FLOAT64_ALL_INTEGERS_OP(Max, "Max", 8, 17, compile_variadic<BinOp::max>)
AXSTREAM_ENGINE_FLOAT64_ALL_INTEGERS_OP(Min, "Min", 8, 17, compile_variadic<BinOp::min>)
AXSTREAM_ENGINE_DATA_OP(Equal, "Equal", 7, 17, compile_compare<BinOp::equal>, false)
AXSTREAM_ENGINE_DATA_OP(Less, "Less", 7, 17, compile_compare<BinOp::less>, false)
AXSTREAM_ENGINE_DATA_OP(Greater, "Greater", 7, 17, compile_compare<BinOp::greater>, false)
AXSTREAM_ENGINE_DATA_OP(Where, "Where", 9, 17, compile_where, false)
AXSTREAM_ENGINE_FLOAT64_ALL_INTEGERS_OP(Mod, "Mod", 10, 17, compile_mod)
AXSTREAM_ENGINE_OP(Sum, "Sum", 8, 17, compile_variadic<BinOp::add>)
AXSTREAM_ENGINE_OP(Mean, "Mean", 8, 17, compile_variadic<BinOp::div>)
AXSTREAM_ENGINE_DATA_OP(LessOrEqual, "LessOrEqual", 12, 17, compile_compare<BinOp::less_equal>,
                        false)
AXSTREAM_ENGINE_DATA_OP(GreaterOrEqual, "GreaterOrEqual", 12, 17,
                        compile_compare<BinOp::greater_equal>, false)
AXSTREAM_ENGINE_OP(And, "And", 7, 17, compile_compare<BinOp::logical_and>)
AXSTREAM_ENGINE_OP(Or, "Or", 7, 17, compile_compare<BinOp::logical_or>)
AXSTREAM_ENGINE_OP(Xor, "Xor", 7, 17, compile_compare<BinOp::logical_xor>)
AXSTREAM_ENGINE_ALL_INTEGERS_OP(BitShift, "BitShift", 11, 17, compile_bit_shift)

}  // namespace axstream::engine
