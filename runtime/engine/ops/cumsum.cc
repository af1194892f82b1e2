// CumSum: running sums along one axis (a constant), inclusive or exclusive, forward or reverse;
// float32, float64 (in double) and the integer types.
#include "common.h"

namespace axstream::engine {
namespace {

// Along `len` rows of `inner` elements, for each of `outer` blocks. The running sums of one block
// live in `sums` (inner of them). Integers add in their unsigned type: an overflow wraps (as
// numpy and onnxruntime give it) instead of being undefined behaviour.
template <typename T, bool = std::is_integral_v<T>>
struct RunningSum {
  using type = T;
};
template <typename T>
struct RunningSum<T, true> {
  using type = std::make_unsigned_t<T>;
};

template <typename T>
void cumsum(const T *x, T *y, int64_t outer, int64_t len, int64_t inner, bool exclusive,
            bool reverse, void *scratch) {
  using Sum = typename RunningSum<T>::type;
  Sum *sums = static_cast<Sum *>(scratch);
  for (int64_t block = 0; block < outer; ++block) {
    std::fill(sums, sums + inner, Sum(0));
    for (int64_t step = 0; step < len; ++step) {
      int64_t row = block * len + (reverse ? len - 1 - step : step);
      const T *xr = x + row * inner;
      T *yr = y + row * inner;
      for (int64_t i = 0; i < inner; ++i) {
        Sum before = sums[i];
        sums[i] = static_cast<Sum>(before + static_cast<Sum>(xr[i]));
        yr[i] = static_cast<T>(exclusive ? before : sums[i]);
      }
    }
  }
}

std::unique_ptr<Kernel> compile_cumsum(OpContext &ctx) {
  ctx.expect_inputs(2, 2);
  const Shape &in = ctx.in_shape(0);
  DType dtype = ctx.in_dtype(0);
  ctx.set_output(0, dtype, in);
  const Tensor &axis_tensor = ctx.require_constant(1, "axis");
  if (axis_tensor.count() != 1 ||
      (axis_tensor.dtype != DType::i32 && axis_tensor.dtype != DType::i64))
    ctx.fail("axis must be one int32 or int64, got " + std::string(dtype_name(axis_tensor.dtype)) +
             shape_str(axis_tensor.shape));
  if (in.empty()) ctx.fail("input must have at least one dim");
  int64_t axis = ctx.axis(axis_tensor.as_int(0), in.size());
  if (dtype == DType::bool_) ctx.fail("input is bool, expected a number type");
  if (ctx.infer_only()) return nullptr;
  bool exclusive = ctx.attr_i("exclusive", 0) != 0, reverse = ctx.attr_i("reverse", 0) != 0;
  int64_t outer = product(in, 0, axis), len = in[axis], inner = product(in, axis + 1, in.size());
  auto k = make_kernel([=](ExecContext &ec, const void *const *i, void *const *o) {
    dispatch_numeric_or_float64_dtype(dtype, [&](auto zero) {
      using T = decltype(zero);
      cumsum(static_cast<const T *>(i[0]), static_cast<T *>(o[0]), outer, len, inner, exclusive,
             reverse, ec.scratch);
    });
  });
  k->scratch_bytes = static_cast<size_t>(inner) * 8;  // one running sum (at most 8 bytes) each
  k->macs = static_cast<uint64_t>(outer * len * inner);
  return k;
}

}  // namespace

AXSTREAM_ENGINE_FLOAT64_OP(CumSum, "CumSum", 11, 17, compile_cumsum)

}  // namespace axstream::engine
