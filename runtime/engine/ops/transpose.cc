// Transpose (any rank, any dtype).
#include <cstring>

#include "common.h"

namespace axstream::engine {
namespace {

template <typename T>
void permute(const BroadcastPlan &plan, const T *x, T *y) {
  plan.for_each2([&](int64_t o, int64_t i, int64_t) { y[o] = x[i]; });
}

std::unique_ptr<Kernel> compile_transpose(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  const Shape &in = ctx.in_shape(0);
  size_t r = in.size();
  std::vector<int64_t> perm = ctx.attr_ints("perm");
  if (perm.empty())
    for (size_t i = 0; i < r; ++i) perm.push_back(static_cast<int64_t>(r - 1 - i));
  if (perm.size() != r)
    ctx.fail("perm " + shape_str(perm) + " does not match rank " + std::to_string(r));
  std::vector<bool> seen(r, false);
  Shape out(r), strides(r);
  Shape in_strides = strides_of(in);
  for (size_t i = 0; i < r; ++i) {
    int64_t p = ctx.axis(perm[i], r, "perm entry");
    if (seen[p]) ctx.fail("perm " + shape_str(perm) + " is not a permutation");
    seen[p] = true;
    out[i] = in[p];
    strides[i] = in_strides[p];
  }
  DType dt = ctx.in_dtype(0);
  ctx.set_output(0, dt, out);
  if (ctx.infer_only()) return nullptr;
  size_t es = dtype_size(dt);
  bool dst_nhwc = ctx.attr_i("_dst_nhwc", 0) != 0, src_nhwc = ctx.attr_i("_src_nhwc", 0) != 0;
  if (dst_nhwc || src_nhwc) {
    // NHWC -> NCHW whose result passes.cc keeps stored NHWC (an int8 package input read by
    // int8 convolutions), or NCHW -> NHWC of a value it keeps stored NHWC (an int8 package
    // output after int8 ops): the bytes stay as they are.
    if (dst_nhwc && perm != std::vector<int64_t>{0, 3, 1, 2})
      ctx.fail("_dst_nhwc needs perm (0,3,1,2)");
    if (src_nhwc && perm != std::vector<int64_t>{0, 2, 3, 1})
      ctx.fail("_src_nhwc needs perm (0,2,3,1)");
    size_t bytes = static_cast<size_t>(product(in, 0, r)) * es;
    auto k = make_kernel([bytes](ExecContext &, const void *const *i, void *const *o) {
      std::memcpy(o[0], i[0], bytes);
    });
    k->impl = dst_nhwc ? "copy, output kept NHWC" : "copy, input kept NHWC";
    return k;
  }
  if (ctx.attr_i("_nhwc_to_nchw", 0) != 0) {
    // A layout change passes.cc inserts (logically the identity, perm (0,1,2,3)): the input is
    // stored NHWC, for its readers that need NCHW; read it with NHWC strides.
    if (r != 4 || perm != std::vector<int64_t>{0, 1, 2, 3})
      ctx.fail("_nhwc_to_nchw needs a 4-D input and perm (0,1,2,3)");
    strides = {in[1] * in[2] * in[3], 1, in[3] * in[1], in[1]};
  }
  Shape walk = out;  // the output in its storage order
  if (ctx.attr_i("_nchw_to_nhwc", 0) != 0) {
    // The other way (a graph input joined to NHWC int8 values): the output is stored NHWC, so
    // walk it as (N,H,W,C) reading the NCHW input.
    if (r != 4 || perm != std::vector<int64_t>{0, 1, 2, 3})
      ctx.fail("_nchw_to_nhwc needs a 4-D input and perm (0,1,2,3)");
    walk = {in[0], in[2], in[3], in[1]};
    strides = {in[1] * in[2] * in[3], in[3], 1, in[2] * in[3]};
  }
  BroadcastPlan plan = BroadcastPlan::strided(walk, strides);
  return make_kernel([plan, es](ExecContext &, const void *const *in, void *const *o) {
    switch (es) {
      case 1:
        permute(plan, static_cast<const uint8_t *>(in[0]), static_cast<uint8_t *>(o[0]));
        break;
      case 2:
        permute(plan, static_cast<const uint16_t *>(in[0]), static_cast<uint16_t *>(o[0]));
        break;
      case 4:
        permute(plan, static_cast<const uint32_t *>(in[0]), static_cast<uint32_t *>(o[0]));
        break;
      default:
        permute(plan, static_cast<const uint64_t *>(in[0]), static_cast<uint64_t *>(o[0]));
        break;
    }
  });
}

}  // namespace

AXSTREAM_ENGINE_DATA_OP(Transpose, "Transpose", 1, 17, compile_transpose, false)

}  // namespace axstream::engine
