// ReduceMean/Max/Min/Sum and ArgMax/ArgMin over any set of axes. The reductions accumulate in
// double, so float64 is computed in its own precision; ArgMax/ArgMin only compare (exactly, in
// double), so they take float16 and bfloat16 too.
#include "common.h"

namespace axstream::engine {
namespace {

enum class Reduce { mean, max, min, sum, l1, l2, prod, sum_square, log_sum, log_sum_exp };

template <Reduce kind>
std::unique_ptr<Kernel> compile_reduce(OpContext &ctx) {
  const Shape &in = ctx.in_shape(0);
  size_t r = in.size();
  std::vector<int64_t> axes;
  bool axes_from_input = kind == Reduce::sum && ctx.opset() >= 13;
  if (axes_from_input) {
    if (ctx.has_input(1)) axes = ctx.constant_ints(1, "axes");
  } else {
    axes = ctx.attr_ints("axes");
  }
  bool keepdims = ctx.attr_i("keepdims", 1) != 0;
  bool noop = axes.empty() && ctx.attr_i("noop_with_empty_axes", 0) != 0;
  std::vector<bool> reduced(r, axes.empty() && !noop);
  for (int64_t a : axes) reduced[ctx.axis(a, r)] = true;
  Shape out, kept(r);
  for (size_t d = 0; d < r; ++d) {
    kept[d] = reduced[d] ? 1 : in[d];
    if (!reduced[d])
      out.push_back(in[d]);
    else if (keepdims)
      out.push_back(1);
  }
  DType dt = ctx.in_dtype(0);
  ctx.set_output(0, dt, out);
  if (ctx.infer_only()) return nullptr;
  if (dt != DType::f32 && dt != DType::f64 && dt != DType::i32 && dt != DType::i64)
    ctx.unsupported(std::string("dtype ") + dtype_name(dt));
  Shape kept_strides = strides_of(kept), walk(r);
  for (size_t d = 0; d < r; ++d) walk[d] = reduced[d] ? 0 : kept_strides[d];
  BroadcastPlan plan = BroadcastPlan::strided(in, walk);
  int64_t n_out = product(kept, 0, r), group = n_out ? plan.count / std::max<int64_t>(n_out, 1) : 0;
  auto k =
      make_kernel([plan, n_out, group, dt](ExecContext &, const void *const *i, void *const *o) {
        dispatch_numeric_or_float64_dtype(dt, [&](auto zero) {
          using T = decltype(zero);
          const T *x = static_cast<const T *>(i[0]);
          T *y = static_cast<T *>(o[0]);
          std::vector<double> acc(static_cast<size_t>(n_out), kind == Reduce::max    ? -INFINITY
                                                              : kind == Reduce::min  ? INFINITY
                                                              : kind == Reduce::prod ? 1.0
                                                                                     : 0.0);
          plan.for_each2([&](int64_t xi, int64_t yi, int64_t) {
            double v = static_cast<double>(x[xi]);
            switch (kind) {
              case Reduce::max:
                acc[yi] = std::max(acc[yi], v);
                break;
              case Reduce::min:
                acc[yi] = std::min(acc[yi], v);
                break;
              case Reduce::l1:
                acc[yi] += std::fabs(v);
                break;
              case Reduce::l2:
              case Reduce::sum_square:
                acc[yi] += v * v;
                break;
              case Reduce::prod:
                acc[yi] *= v;
                break;
              case Reduce::log_sum_exp:
                acc[yi] += std::exp(v);
                break;
              default:
                acc[yi] += v;
            }
          });
          for (int64_t j = 0; j < n_out; ++j) {
            double r = acc[j];
            if (kind == Reduce::mean) r /= static_cast<double>(group);
            if (kind == Reduce::l2) r = std::sqrt(r);
            if (kind == Reduce::log_sum || kind == Reduce::log_sum_exp) r = std::log(r);
            y[j] = saturating_cast<T>(r);
          }
        });
      });
  k->macs = static_cast<uint64_t>(plan.count);
  return k;
}

template <bool is_max>
std::unique_ptr<Kernel> compile_arg(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  const Shape &in = ctx.in_shape(0);
  int64_t axis = ctx.axis(ctx.attr_i("axis", 0), in.size());
  bool keepdims = ctx.attr_i("keepdims", 1) != 0;
  bool last = ctx.attr_i("select_last_index", 0) != 0;
  Shape out;
  for (size_t d = 0; d < in.size(); ++d) {
    if (static_cast<int64_t>(d) != axis)
      out.push_back(in[d]);
    else if (keepdims)
      out.push_back(1);
  }
  ctx.set_output(0, DType::i64, out);
  if (ctx.infer_only()) return nullptr;
  DType dt = ctx.in_dtype(0);
  int64_t outer = product(in, 0, axis), len = in[axis], inner = product(in, axis + 1, in.size());
  // Each output element is the index of one element of its line: an empty line has none (the
  // kernel would read its first element, past the end of an empty input).
  if (len == 0 && outer * inner > 0)
    ctx.fail("axis " + std::to_string(axis) + " of input shape " + shape_str(in) +
             " has no element, so there is no index to return");
  // Each line's best index, its elements read by load(x, index).
  auto scan = [=](const void *x, int64_t *y, auto load) {
    for (int64_t a = 0; a < outer; ++a)
      for (int64_t b = 0; b < inner; ++b) {
        int64_t best_j = 0;
        auto best = load(x, a * len * inner + b);
        for (int64_t j = 1; j < len; ++j) {
          auto v = load(x, (a * len + j) * inner + b);
          bool better = is_max ? (last ? v >= best : v > best) : (last ? v <= best : v < best);
          if (better) {
            best = v;
            best_j = j;
          }
        }
        y[a * inner + b] = best_j;
      }
  };
  // Integers in their own type (a double rounds int64/uint64 values past 2^53, so two of them
  // could tie), floats of every width and bool as doubles.
  if (!is_floating_dtype(dt) && dt != DType::bool_) {
    std::unique_ptr<Kernel> k;
    dispatch_dtype_and_opt_in_integers(dt, [&](auto zero) {
      using T = decltype(zero);
      k = make_kernel([scan](ExecContext &, const void *const *i, void *const *o) {
        scan(i[0], static_cast<int64_t *>(o[0]),
             [](const void *x, int64_t index) { return static_cast<const T *>(x)[index]; });
      });
    });
    return k;
  }
  return make_kernel([scan, dt](ExecContext &, const void *const *i, void *const *o) {
    scan(i[0], static_cast<int64_t *>(o[0]),
         [dt](const void *x, int64_t index) { return load_as_double(x, dt, index); });
  });
}

}  // namespace

AXSTREAM_ENGINE_FLOAT64_OP(ReduceMean, "ReduceMean", 1, 17, compile_reduce<Reduce::mean>)
AXSTREAM_ENGINE_FLOAT64_OP(ReduceMax, "ReduceMax", 1, 17, compile_reduce<Reduce::max>)
AXSTREAM_ENGINE_FLOAT64_OP(ReduceMin, "ReduceMin", 1, 17, compile_reduce<Reduce::min>)
AXSTREAM_ENGINE_FLOAT64_OP(ReduceSum, "ReduceSum", 1, 17, compile_reduce<Reduce::sum>)
AXSTREAM_ENGINE_FLOAT64_OP(ReduceL1, "ReduceL1", 1, 17, compile_reduce<Reduce::l1>)
AXSTREAM_ENGINE_FLOAT64_OP(ReduceL2, "ReduceL2", 1, 17, compile_reduce<Reduce::l2>)
AXSTREAM_ENGINE_FLOAT64_OP(ReduceProd, "ReduceProd", 1, 17, compile_reduce<Reduce::prod>)
AXSTREAM_ENGINE_FLOAT64_OP(ReduceSumSquare, "ReduceSumSquare", 1, 17,
                           compile_reduce<Reduce::sum_square>)
AXSTREAM_ENGINE_FLOAT64_OP(ReduceLogSum, "ReduceLogSum", 1, 17, compile_reduce<Reduce::log_sum>)
AXSTREAM_ENGINE_FLOAT64_OP(ReduceLogSumExp, "ReduceLogSumExp", 1, 17,
                           compile_reduce<Reduce::log_sum_exp>)
AXSTREAM_ENGINE_DATA_OP(ArgMax, "ArgMax", 1, 17, compile_arg<true>, false)
AXSTREAM_ENGINE_DATA_OP(ArgMin, "ArgMin", 1, 17, compile_arg<false>, false)

}  // namespace axstream::engine
