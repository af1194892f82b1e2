// HannWindow, HammingWindow, BlackmanWindow (opset 17): a generalised cosine window of a constant
// size, periodic or symmetric, in the type `output_datatype` names.
#include "common.h"

namespace axstream::engine {
namespace {

// w[n] = a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N), N = size (periodic) or size - 1.
struct CosineWindow {
  double a0, a1, a2;
};
constexpr CosineWindow kHann{0.5, 0.5, 0.0};
constexpr CosineWindow kHamming{25.0 / 46.0, 21.0 / 46.0, 0.0};
constexpr CosineWindow kBlackman{0.42, 0.5, 0.08};
constexpr double kPi = 3.14159265358979323846;

template <const CosineWindow &window>
std::unique_ptr<Kernel> compile_window(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  const Tensor &size_tensor = ctx.require_constant(0, "size");
  if (size_tensor.count() != 1 ||
      (size_tensor.dtype != DType::i32 && size_tensor.dtype != DType::i64))
    ctx.fail("size must be one int32 or int64, got " + std::string(dtype_name(size_tensor.dtype)) +
             shape_str(size_tensor.shape));
  int64_t size = size_tensor.as_int(0);
  if (size < 0) ctx.fail("size " + std::to_string(size) + " is negative");
  int64_t elem_type = ctx.attr_i("output_datatype", 1);
  std::optional<DType> dtype = dtype_of_onnx_element_type(elem_type);
  if (!dtype || *dtype == DType::bool_)
    ctx.unsupported("output_datatype " + std::to_string(elem_type) +
                    " (float, uint8, int8, int32, int64 are supported)");
  ctx.set_output(0, *dtype, Shape{size});
  if (ctx.infer_only()) return nullptr;
  bool periodic = ctx.attr_i("periodic", 1) != 0;
  // A symmetric window of one element divides by 0: ONNX's reference gives NaN there as well.
  double period = static_cast<double>(periodic ? size : size - 1);
  DType out = *dtype;
  // Computed into the output at run time: a size the compiler later refuses as too large is
  // never allocated here.
  auto k = make_kernel([size, period, out](ExecContext &, const void *const *, void *const *o) {
    dispatch_numeric_dtype(out, [&](auto zero) {
      using T = decltype(zero);
      T *y = static_cast<T *>(o[0]);
      for (int64_t n = 0; n < size; ++n) {
        double phase = 2.0 * kPi * static_cast<double>(n) / period;
        double v = window.a0 - window.a1 * std::cos(phase) + window.a2 * std::cos(2.0 * phase);
        // (A NaN, a one-element symmetric window, reads 0 as an integer: casting it is
        // undefined.)
        y[n] = std::is_integral_v<T> && std::isnan(v) ? T(0) : static_cast<T>(v);
      }
    });
  });
  k->macs = static_cast<uint64_t>(size);
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP(HannWindow, "HannWindow", 17, 17, compile_window<kHann>)
AXSTREAM_ENGINE_OP(HammingWindow, "HammingWindow", 17, 17, compile_window<kHamming>)
AXSTREAM_ENGINE_OP(BlackmanWindow, "BlackmanWindow", 17, 17, compile_window<kBlackman>)

}  // namespace axstream::engine
