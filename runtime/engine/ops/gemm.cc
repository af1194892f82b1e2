// Gemm (transA/transB, alpha/beta, broadcast C) and MatMul (numpy batching, 1-D promotion).
#include <dnnl.h>

#include "../conv_dnnl.h"
#include "../float16.h"
#include "../parallel.h"

namespace axstream::engine {
namespace {

// C[M,N] += A[M,K] * B[K,N], all row-major with the given leading dimensions: oneDNN's
// blocked sgemm (AVX2/AVX-512 kernels, the executor's OpenMP threads), or the plain loops when
// AXSTREAM_ENGINE_REFERENCE=1 asked for reference kernels at compile time.
void sgemm(bool use_dnnl, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
           const float *b, int64_t ldb, float *c, int64_t ldc) {
  if (use_dnnl && m > 0 && n > 0 && k > 0 &&
      dnnl_sgemm('N', 'N', m, n, k, 1.f, a, lda, b, ldb, 1.f, c, ldc) == dnnl_success)
    return;
  parallel_for(m, worth_splitting(m * n * k, 32768), [&](int64_t i) {
    float *crow = c + i * ldc;
    for (int64_t p = 0; p < k; ++p) {
      float av = a[i * lda + p];
      const float *brow = b + p * ldb;
      for (int64_t j = 0; j < n; ++j) crow[j] += av * brow[j];
    }
  });
}

// The epilogue half_compute's fuse_half_bias_add gives a float16/bfloat16 model's MatMul/Gemm
// followed by a bias Add: each element rounded to the half type, as the Casts between them did,
// then the float32 bias of its column added, as the Add did. Nothing without the attribute.
struct RoundedBias {
  DType half = DType::f32;
  std::shared_ptr<const Tensor> column;  // (N), one float32 per output column

  static RoundedBias from(OpContext &ctx, size_t input, int64_t columns) {
    RoundedBias r;
    const std::string to = ctx.attr_s("_bias_after_rounding_to", "");
    if (to.empty()) return r;
    if (to == "float16")
      r.half = DType::f16;
    else if (to == "bfloat16")
      r.half = DType::bf16;
    else
      ctx.fail("_bias_after_rounding_to '" + to + "': expected float16 or bfloat16");
    const Tensor *bias = ctx.has_input(input) ? ctx.constant(input) : nullptr;
    if (!bias || bias->dtype != DType::f32 || bias->shape != Shape{columns})
      ctx.fail("the bias after rounding (input " + std::to_string(input) +
               ") must be a float32 constant of shape (" + std::to_string(columns) + ")");
    r.column = std::make_shared<Tensor>(*bias);
    return r;
  }
  bool enabled() const { return half != DType::f32; }
  void apply(float *y, int64_t count) const {
    const int64_t columns = enabled() ? column->count() : 0;
    if (columns == 0) return;
    const float *b = column->data<float>();
    for (int64_t row = 0; row < count / columns; ++row) {
      float *yr = y + row * columns;
      if (half == DType::f16)
        for (int64_t c = 0; c < columns; ++c) yr[c] = half_to_float(float_to_half(yr[c])) + b[c];
      else
        for (int64_t c = 0; c < columns; ++c)
          yr[c] = bfloat16_to_float(float_to_bfloat16(yr[c])) + b[c];
    }
  }
};

void transpose2d(const float *src, float *dst, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
}

std::unique_ptr<Kernel> compile_gemm(OpContext &ctx) {
  const bool rounded_bias = !ctx.attr_s("_bias_after_rounding_to", "").empty();
  ctx.expect_inputs(2, rounded_bias ? 4 : 3);
  const Shape &as = ctx.in_shape(0), &bs = ctx.in_shape(1);
  if (as.size() != 2 || bs.size() != 2)
    ctx.fail("A and B must be 2-D, got " + shape_str(as) + " and " + shape_str(bs));
  bool ta = ctx.attr_i("transA", 0) != 0, tb = ctx.attr_i("transB", 0) != 0;
  float alpha = ctx.attr_f("alpha", 1.f), beta = ctx.attr_f("beta", 1.f);
  int64_t m = ta ? as[1] : as[0], k = ta ? as[0] : as[1];
  int64_t kb = tb ? bs[1] : bs[0], n = tb ? bs[0] : bs[1];
  if (k != kb) ctx.fail("inner dims differ: A " + shape_str(as) + ", B " + shape_str(bs));
  Shape out = {m, n};
  bool has_c = ctx.has_input(2);
  if (has_c && broadcast_shapes(ctx.in_shape(2), out, ctx.where()) != out)
    ctx.fail("C of shape " + shape_str(ctx.in_shape(2)) + " does not broadcast to " +
             shape_str(out));
  ctx.set_output(0, DType::f32, out);
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::f32 || ctx.in_dtype(1) != DType::f32)
    ctx.unsupported("Gemm on non-float32 inputs");
  FusedActivation act = FusedActivation::from(ctx);
  RoundedBias bias = RoundedBias::from(ctx, 3, n);
  bool use_dnnl = dnnl_kernels_enabled();
  // A constant B is laid out once as (K, N), scaled by alpha.
  std::shared_ptr<std::vector<float>> packed_b;
  if (const Tensor *b = ctx.constant(1)) {
    packed_b = std::make_shared<std::vector<float>>(static_cast<size_t>(k * n));
    if (tb)
      transpose2d(b->data<float>(), packed_b->data(), n, k);
    else
      std::copy(b->data<float>(), b->data<float>() + k * n, packed_b->data());
    for (float &v : *packed_b) v *= alpha;
  }
  BroadcastPlan c_plan;
  if (has_c) c_plan = BroadcastPlan({out, ctx.in_shape(2)}, out);
  size_t a_bytes = ta ? static_cast<size_t>(m * k) * 4 : 0;
  size_t b_bytes = packed_b ? 0 : static_cast<size_t>(k * n) * 4;
  auto kern = make_kernel([=](ExecContext &ec, const void *const *in, void *const *o) {
    float *y = static_cast<float *>(o[0]);
    const float *a = static_cast<const float *>(in[0]);
    float *scratch = static_cast<float *>(ec.scratch);
    if (ta) {
      transpose2d(a, scratch, k, m);
      a = scratch;
    }
    const float *b = packed_b ? packed_b->data() : static_cast<const float *>(in[1]);
    if (!packed_b) {
      float *bt = scratch + a_bytes / 4;
      if (tb)
        transpose2d(b, bt, n, k);
      else
        std::copy(b, b + k * n, bt);
      for (int64_t i = 0; i < k * n; ++i) bt[i] *= alpha;
      b = bt;
    }
    if (has_c) {
      const float *c = static_cast<const float *>(in[2]);
      c_plan.for_each2([&](int64_t oi, int64_t, int64_t ic) { y[oi] = beta * c[ic]; });
    } else {
      std::fill(y, y + m * n, 0.f);
    }
    sgemm(use_dnnl, m, n, k, a, k, b, n, y, n);
    bias.apply(y, m * n);
    act.apply(y, m * n);
  });
  kern->scratch_bytes = a_bytes + b_bytes;
  kern->impl = use_dnnl ? "oneDNN sgemm" : "reference loops";
  kern->macs = static_cast<uint64_t>(m * n * k);
  return kern;
}

std::unique_ptr<Kernel> compile_matmul(OpContext &ctx) {
  const bool rounded_bias = !ctx.attr_s("_bias_after_rounding_to", "").empty();
  ctx.expect_inputs(2, rounded_bias ? 3 : 2);
  Shape as = ctx.in_shape(0), bs = ctx.in_shape(1);
  if (as.empty() || bs.empty()) ctx.fail("MatMul inputs must have rank >= 1");
  bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
  if (a_vec) as.insert(as.begin(), 1);
  if (b_vec) bs.push_back(1);
  int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  if (bs[bs.size() - 2] != k)
    ctx.fail("inner dims differ: " + shape_str(ctx.in_shape(0)) + " x " +
             shape_str(ctx.in_shape(1)));
  Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
  Shape batch = broadcast_shapes(a_batch, b_batch, ctx.where());
  Shape out = batch;
  if (!a_vec) out.push_back(m);
  if (!b_vec) out.push_back(n);
  ctx.set_output(0, DType::f32, out);
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::f32 || ctx.in_dtype(1) != DType::f32)
    ctx.unsupported("MatMul on non-float32 inputs");
  FusedActivation act = FusedActivation::from(ctx);
  if (rounded_bias && b_vec) ctx.fail("a bias after rounding needs a matrix B, got a vector");
  RoundedBias bias = RoundedBias::from(ctx, 2, n);
  bool use_dnnl = dnnl_kernels_enabled();
  // Batch index -> offsets of the A and B matrices.
  Shape batch_plus = batch;
  batch_plus.push_back(1);
  Shape a_b = a_batch, b_b = b_batch;
  a_b.push_back(1);
  b_b.push_back(1);
  BroadcastPlan plan({a_b, b_b}, batch_plus);
  std::vector<std::pair<int64_t, int64_t>> offsets;
  plan.for_each2([&](int64_t, int64_t ia, int64_t ib) {
    offsets.push_back({ia * m * k, ib * k * n});
  });
  auto kern = make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
    const float *a = static_cast<const float *>(in[0]);
    const float *b = static_cast<const float *>(in[1]);
    float *y = static_cast<float *>(o[0]);
    for (size_t i = 0; i < offsets.size(); ++i) {
      float *yi = y + static_cast<int64_t>(i) * m * n;
      std::fill(yi, yi + m * n, 0.f);
      sgemm(use_dnnl, m, n, k, a + offsets[i].first, k, b + offsets[i].second, n, yi, n);
    }
    bias.apply(y, static_cast<int64_t>(offsets.size()) * m * n);
    act.apply(y, static_cast<int64_t>(offsets.size()) * m * n);
  });
  kern->macs = static_cast<uint64_t>(offsets.size() * m * n * k);
  kern->impl = use_dnnl ? "oneDNN sgemm" : "reference loops";
  return kern;
}

}  // namespace

AXSTREAM_ENGINE_OP(Gemm, "Gemm", 7, 17, compile_gemm)
AXSTREAM_ENGINE_OP(MatMul, "MatMul", 1, 17, compile_matmul)

}  // namespace axstream::engine
