// Softmax, LogSoftmax, Hardmax (opset < 13: over the flattened trailing dims from axis; 13+: one
// axis).
#include "softmax.h"

#include "vector_exp.h"

namespace axstream::engine {
namespace {

template <SoftmaxKind kind>
std::unique_ptr<Kernel> compile_softmax(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  const Shape &in = ctx.in_shape(0);
  ctx.set_output(0, ctx.in_dtype(0), in);
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::f32) ctx.unsupported("Softmax on non-float32 input");
  bool legacy = ctx.opset() < 13;
  int64_t axis = in.empty() ? 0 : ctx.axis(ctx.attr_i("axis", legacy ? 1 : -1), in.size());
  // Softmax over `len` elements spaced `inner` apart, for `outer * inner` such groups.
  int64_t outer = product(in, 0, axis);
  int64_t len = legacy ? product(in, axis, in.size()) : (in.empty() ? 1 : in[axis]);
  int64_t inner = legacy ? 1 : product(in, axis + 1, in.size());
  std::unique_ptr<Kernel> k;
  if (kind != SoftmaxKind::hardmax && inner == 1) {
    // Rows of contiguous elements (axis -1, or any legacy axis): the vector exp (vector_exp.h).
    const ExpIsa isa = vector_exp_isa();
    k = make_kernel([isa, outer, len](ExecContext &, const void *const *i, void *const *o) {
      softmax_rows(isa, kind == SoftmaxKind::log_softmax, static_cast<const float *>(i[0]),
                   static_cast<float *>(o[0]), outer, len);
    });
  } else {
    k = make_kernel([outer, len, inner](ExecContext &, const void *const *i, void *const *o) {
      softmax_groups<kind>(static_cast<const float *>(i[0]), static_cast<float *>(o[0]), outer, len,
                           inner);
    });
  }
  k->macs = static_cast<uint64_t>(outer * len * inner * 4);
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP(Softmax, "Softmax", 1, 17, compile_softmax<SoftmaxKind::softmax>)
AXSTREAM_ENGINE_OP(LogSoftmax, "LogSoftmax", 1, 17, compile_softmax<SoftmaxKind::log_softmax>)
AXSTREAM_ENGINE_OP(Hardmax, "Hardmax", 1, 17, compile_softmax<SoftmaxKind::hardmax>)

}  // namespace axstream::engine
