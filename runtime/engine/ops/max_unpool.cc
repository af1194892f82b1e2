// MaxUnpool: the inverse of MaxPool with its Indices output: zeros, with each input value
// written where its index (into the whole flattened unpooled tensor) points. A larger
// output_shape holds that unpooled tensor in its leading corner (the ONNX reference's rule).
#include <cstring>

#include "common.h"

namespace axstream::engine {
namespace {

std::unique_ptr<Kernel> compile_max_unpool(OpContext &ctx) {
  ctx.expect_inputs(2, 3);
  const Shape &xs = ctx.in_shape(0);
  if (xs.size() < 3) ctx.fail("input must be (N, C, D1, ...), got " + shape_str(xs));
  if (ctx.in_shape(1) != xs)
    ctx.fail("indices " + shape_str(ctx.in_shape(1)) + " must have the input's shape " +
             shape_str(xs));
  size_t spatial = xs.size() - 2;
  Shape kernel = ctx.attr_ints("kernel_shape");
  Shape strides = ctx.attr_ints("strides", Shape(spatial, 1));
  Shape pads = ctx.attr_ints("pads", Shape(2 * spatial, 0));
  if (kernel.size() != spatial || strides.size() != spatial || pads.size() != 2 * spatial)
    ctx.fail("kernel_shape/strides/pads do not match " + std::to_string(spatial) + " spatial dims");
  Shape unpooled = xs;
  for (size_t d = 0; d < spatial; ++d) {
    if (kernel[d] <= 0 || strides[d] <= 0) ctx.fail("non-positive kernel or stride");
    if (kernel[d] > (int64_t{1} << 31) || strides[d] > (int64_t{1} << 31) ||
        std::abs(pads[d]) > (int64_t{1} << 31) || std::abs(pads[d + spatial]) > (int64_t{1} << 31))
      ctx.fail("kernel_shape/strides/pads beyond 2^31");
    unpooled[d + 2] = (xs[d + 2] - 1) * strides[d] + kernel[d] - pads[d] - pads[d + spatial];
    if (unpooled[d + 2] <= 0) ctx.fail("the unpooled shape " + shape_str(unpooled) + " is empty");
  }
  Shape out = unpooled;
  if (ctx.has_input(2)) {
    Shape given = ctx.constant_ints(2, "output_shape");
    if (given.size() != xs.size() || given[0] != xs[0] || given[1] != xs[1])
      ctx.fail("output_shape " + shape_str(given) + " must be (N, C, ...) of the input " +
               shape_str(xs));
    for (size_t d = 0; d < spatial; ++d)
      if (given[d + 2] < unpooled[d + 2])
        ctx.fail("output_shape " + shape_str(given) + " is smaller than the unpooled " +
                 shape_str(unpooled));
    out = given;
  }
  ctx.set_output(0, ctx.in_dtype(0), out);
  if (ctx.infer_only()) return nullptr;
  DType it = ctx.in_dtype(1);
  if (it != DType::i64) ctx.fail(std::string("indices must be int64, got ") + dtype_name(it));
  int64_t count = product(xs, 0, xs.size()), total = product(out, 0, out.size());
  int64_t unpooled_total = product(unpooled, 0, unpooled.size());
  bool same = unpooled == out;
  Shape unpooled_strides = strides_of(unpooled), out_strides = strides_of(out);
  size_t es = dtype_size(ctx.in_dtype(0));
  std::string where = ctx.where();
  return make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
    const uint8_t *x = static_cast<const uint8_t *>(in[0]);
    const int64_t *indices = static_cast<const int64_t *>(in[1]);
    uint8_t *y = static_cast<uint8_t *>(o[0]);
    if (total) std::memset(y, 0, static_cast<size_t>(total) * es);
    for (int64_t i = 0; i < count; ++i) {
      int64_t target = indices[i];
      if (target < 0 || target >= unpooled_total)
        throw InvalidArgument(where + ": index " + std::to_string(target) +
                              " is outside the unpooled tensor's " +
                              std::to_string(unpooled_total) + " elements");
      if (!same) {
        int64_t rest = target;
        target = 0;
        for (size_t d = 0; d < unpooled.size(); ++d) {
          target += rest / unpooled_strides[d] * out_strides[d];
          rest %= unpooled_strides[d];
        }
      }
      std::memcpy(y + target * es, x + i * es, es);
    }
  });
}

}  // namespace

AXSTREAM_ENGINE_OP(MaxUnpool, "MaxUnpool", 9, 17, compile_max_unpool)

}  // namespace axstream::engine
