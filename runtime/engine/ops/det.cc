// Det: the determinant of each square matrix in the last two dims, by LU decomposition with
// partial pivoting in double precision.
#include "common.h"

namespace axstream::engine {
namespace {

std::unique_ptr<Kernel> compile_det(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  const Shape &xs = ctx.in_shape(0);
  if (xs.size() < 2 || xs[xs.size() - 1] != xs[xs.size() - 2])
    ctx.fail("input must be (..., M, M), got " + shape_str(xs));
  Shape out(xs.begin(), xs.end() - 2);
  ctx.set_output(0, ctx.in_dtype(0), out);
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::f32)
    ctx.unsupported(std::string("dtype ") + dtype_name(ctx.in_dtype(0)));
  int64_t m = xs.back(), matrices = product(out, 0, out.size());
  auto k = make_kernel([=](ExecContext &ec, const void *const *in, void *const *o) {
    const float *x = static_cast<const float *>(in[0]);
    float *y = static_cast<float *>(o[0]);
    double *a = static_cast<double *>(ec.scratch);
    for (int64_t b = 0; b < matrices; ++b) {
      for (int64_t i = 0; i < m * m; ++i) a[i] = x[b * m * m + i];
      double det = 1.0;
      for (int64_t col = 0; col < m && det != 0.0; ++col) {
        int64_t pivot = col;
        for (int64_t r = col + 1; r < m; ++r)
          if (std::fabs(a[r * m + col]) > std::fabs(a[pivot * m + col])) pivot = r;
        if (a[pivot * m + col] == 0.0) {
          det = 0.0;
          break;
        }
        if (pivot != col) {
          for (int64_t j = 0; j < m; ++j) std::swap(a[pivot * m + j], a[col * m + j]);
          det = -det;
        }
        det *= a[col * m + col];
        for (int64_t r = col + 1; r < m; ++r) {
          double f = a[r * m + col] / a[col * m + col];
          for (int64_t j = col; j < m; ++j) a[r * m + j] -= f * a[col * m + j];
        }
      }
      y[b] = static_cast<float>(det);
    }
  });
  k->scratch_bytes = static_cast<size_t>(m * m) * sizeof(double);
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP(Det, "Det", 11, 17, compile_det)

}  // namespace axstream::engine
