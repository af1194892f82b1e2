// Tensors made from indices: OneHot (a depth-long axis holding on/off values) and EyeLike (a
// matrix of ones on one diagonal).
#include <cstring>

#include "common.h"

namespace axstream::engine {
namespace {

// OneHot(indices, depth, values=[off, on]): the output has depth inserted at `axis`. An index
// may count from the end (-depth..-1); one outside [-depth, depth) gives an all-off line.
std::unique_ptr<Kernel> compile_one_hot(OpContext &ctx) {
  ctx.expect_inputs(3, 3);
  const Tensor &depth_tensor = ctx.require_constant(1, "depth");
  if (depth_tensor.count() != 1)
    ctx.fail("depth must hold one value, got " + std::to_string(depth_tensor.count()));
  double depth_value = depth_tensor.as_double(0);
  if (!(depth_value >= 1) || depth_value > 1e15)
    ctx.fail("depth must be a positive number, got " + std::to_string(depth_value));
  int64_t depth = static_cast<int64_t>(depth_value);
  if (ctx.in_shape(2) != Shape{2})
    ctx.fail("values must be [off_value, on_value] (shape (2)), got " + shape_str(ctx.in_shape(2)));
  const Shape &is = ctx.in_shape(0);
  int64_t axis = ctx.axis(ctx.attr_i("axis", -1), is.size() + 1);
  Shape out = is;
  out.insert(out.begin() + axis, depth);
  DType dt = ctx.in_dtype(2), it = ctx.in_dtype(0);
  ctx.set_output(0, dt, out);
  if (ctx.infer_only()) return nullptr;
  if (it == DType::bool_) ctx.unsupported(std::string("indices of dtype ") + dtype_name(it));
  int64_t outer = product(is, 0, axis), inner = product(is, axis, is.size());
  size_t es = dtype_size(dt);
  return make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
    const uint8_t *off = static_cast<const uint8_t *>(in[2]), *on = off + es;
    uint8_t *y = static_cast<uint8_t *>(o[0]);
    for (int64_t i = 0; i < outer * depth * inner; ++i) std::memcpy(y + i * es, off, es);
    for (int64_t r = 0; r < outer; ++r)
      for (int64_t c = 0; c < inner; ++c) {
        // Float indices are truncated towards zero, as the reference casts them.
        double value = load_as_double(in[0], it, r * inner + c);
        if (!(std::fabs(value) < 9e18)) continue;  // NaN or beyond int64: out of range
        int64_t index = static_cast<int64_t>(value);
        if (index < 0) index += depth;
        if (index < 0 || index >= depth) continue;
        std::memcpy(y + ((r * depth + index) * inner + c) * es, on, es);
      }
  });
}

// EyeLike: a 2-D tensor of the input's shape, 1 where column - row == k, else 0; the dtype
// attribute (an ONNX element type) or else the input's.
std::unique_ptr<Kernel> compile_eye_like(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  const Shape &xs = ctx.in_shape(0);
  if (xs.size() != 2) ctx.fail("input must be 2-D, got " + shape_str(xs));
  DType dt = ctx.in_dtype(0);
  if (ctx.has_attr("dtype")) {
    int64_t to = ctx.attr_i("dtype", 1);
    std::optional<DType> named = dtype_of_onnx_element_type(to);
    if (!named) ctx.unsupported("dtype (ONNX element type " + std::to_string(to) + ")");
    dt = *named;
  }
  ctx.set_output(0, dt, xs);
  if (ctx.infer_only()) return nullptr;
  int64_t rows = xs[0], cols = xs[1];
  // A diagonal wholly outside the matrix leaves it zero; clamping keeps r + k in range.
  int64_t k = std::clamp<int64_t>(ctx.attr_i("k", 0), -rows, cols);
  size_t es = dtype_size(dt);
  std::vector<uint8_t> one(es);
  store_from_double(one.data(), dt, 0, 1.0);
  return make_kernel([=](ExecContext &, const void *const *, void *const *o) {
    uint8_t *y = static_cast<uint8_t *>(o[0]);
    if (rows > 0 && cols > 0) std::memset(y, 0, static_cast<size_t>(rows * cols) * es);
    for (int64_t r = std::max<int64_t>(0, -k); r < rows && r + k < cols; ++r)
      std::memcpy(y + (r * cols + r + k) * es, one.data(), es);
  });
}

}  // namespace

AXSTREAM_ENGINE_DATA_OP(OneHot, "OneHot", 9, 17, compile_one_hot, false)
AXSTREAM_ENGINE_DATA_OP(EyeLike, "EyeLike", 9, 17, compile_eye_like, false)

}  // namespace axstream::engine
