// Ops whose output shape depends on the input values: NonMaxSuppression, NonZero, Unique. The
// engine fixes every shape at compile time (one arena planned once), so on values computed at
// run time these are NotImplemented with that reason: a padded "maximum size" output would not
// be ONNX's result. NonZero of a constant (shape and mask arithmetic in exported graphs) is
// known when the model compiles and folds to its exact result.
#include <cstring>

#include "common.h"

namespace axstream::engine {
namespace {

[[noreturn]] void refuse_data_dependent(OpContext &ctx) {
  ctx.unsupported(
      "its output shape depends on the input values at run time, and the engine "
      "fixes every shape when it compiles the model (export the model without it "
      "and do this step on the outputs, as axstream's decoders do NMS)");
}

std::unique_ptr<Kernel> compile_data_dependent(OpContext &ctx) { refuse_data_dependent(ctx); }

// NonZero: the (rank, count) int64 coordinates of the non-zero elements in row-major order.
std::unique_ptr<Kernel> compile_non_zero(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  const Tensor *x = ctx.constant(0);
  if (!x) refuse_data_dependent(ctx);
  const Shape &xs = x->shape;
  if (xs.empty()) ctx.unsupported("a scalar input");
  if (x->dtype == DType::f16) ctx.unsupported("dtype float16");
  Shape strides = strides_of(xs);
  std::vector<int64_t> found;
  for (int64_t i = 0; i < x->count(); ++i)
    if (x->as_double(i) != 0.0) found.push_back(i);
  int64_t rank = static_cast<int64_t>(xs.size()), count = static_cast<int64_t>(found.size());
  ctx.set_output(0, DType::i64, {rank, count});
  if (ctx.infer_only()) return nullptr;
  std::vector<int64_t> coordinates(static_cast<size_t>(rank * count));
  for (int64_t j = 0; j < count; ++j)
    for (int64_t d = 0; d < rank; ++d) coordinates[d * count + j] = found[j] / strides[d] % xs[d];
  return make_kernel([coordinates](ExecContext &, const void *const *, void *const *o) {
    if (!coordinates.empty())
      std::memcpy(o[0], coordinates.data(), coordinates.size() * sizeof(int64_t));
  });
}

}  // namespace

AXSTREAM_ENGINE_OP(NonMaxSuppression, "NonMaxSuppression", 10, 17, compile_data_dependent)
AXSTREAM_ENGINE_OP(NonZero, "NonZero", 9, 17, compile_non_zero)
AXSTREAM_ENGINE_OP(Unique, "Unique", 11, 17, compile_data_dependent)

}  // namespace axstream::engine
