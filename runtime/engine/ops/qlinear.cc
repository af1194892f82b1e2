// Integer operator-format ops: QLinearConv, QLinearMatMul (int8/uint8, per-tensor or
// per-channel weights), ConvInteger and MatMulInteger. Exact integer arithmetic: int32
// accumulation of (x - x_zero_point) * (w - w_zero_point), then for the QLinear ops
// requantisation by x_scale * w_scale / y_scale, round half to even, + y_zero_point, saturate.
// passes.cc lowers the common QLinearConv (int8 symmetric weights) onto axstream.QConv's
// oneDNN path; what is left runs here.
#include "conv_reference.h"

namespace axstream::engine {
namespace {

bool is_q8(DType t) { return t == DType::i8 || t == DType::u8; }

int32_t q8_at(const void *p, DType t, int64_t i) {
  return t == DType::i8 ? static_cast<const int8_t *>(p)[i] : static_cast<const uint8_t *>(p)[i];
}

// A zero point (scalar or per channel) read at run time: the conformance models pass them as
// graph inputs, which the engine only knows as constants when they are initializers.
std::vector<int32_t> zero_points(const void *p, DType t, int64_t count, int64_t wanted) {
  std::vector<int32_t> z(static_cast<size_t>(wanted), 0);
  if (!p) return z;
  for (int64_t i = 0; i < wanted; ++i) z[i] = q8_at(p, t, count == 1 ? 0 : i);
  return z;
}

// Requantisation of one int32 accumulator to int8/uint8 (ONNX: saturate(round(acc * m) + zp)).
inline void store_requantized(void *y, DType t, int64_t i, float acc_times_multiplier,
                              int32_t zero_point) {
  float v = round_half_even(acc_times_multiplier) + static_cast<float>(zero_point);
  float lo = t == DType::i8 ? -128.f : 0.f, hi = t == DType::i8 ? 127.f : 255.f;
  v = v >= lo ? (v > hi ? hi : v) : lo;
  if (t == DType::i8)
    static_cast<int8_t *>(y)[i] = static_cast<int8_t>(v);
  else
    static_cast<uint8_t *>(y)[i] = static_cast<uint8_t>(v);
}

// int32 convolution of zero-point-shifted inputs: acc[n, m, oy, ox].
void conv_int32(const ConvShape &s, const int32_t *x, const int32_t *w, int32_t *acc) {
  int64_t cg = s.c / s.group, mg = s.m / s.group;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t m = 0; m < s.m; ++m) {
      int64_t g = m / mg;
      int32_t *out = acc + (n * s.m + m) * s.oh * s.ow;
      std::fill(out, out + s.oh * s.ow, 0);
      for (int64_t ci = 0; ci < cg; ++ci) {
        const int32_t *in = x + (n * s.c + g * cg + ci) * s.h * s.w;
        for (int64_t ky = 0; ky < s.kh; ++ky)
          for (int64_t kx = 0; kx < s.kw; ++kx) {
            int32_t wv = w[((m * cg + ci) * s.kh + ky) * s.kw + kx];
            for (int64_t oy = 0; oy < s.oh; ++oy) {
              int64_t iy = oy * s.sh - s.pt + ky * s.dh;
              if (iy < 0 || iy >= s.h) continue;
              for (int64_t ox = 0; ox < s.ow; ++ox) {
                int64_t ix = ox * s.sw - s.pl + kx * s.dw;
                if (ix >= 0 && ix < s.w) out[oy * s.ow + ox] += wv * in[iy * s.w + ix];
              }
            }
          }
      }
    }
}

// Geometry shared by QLinearConv and ConvInteger (1-D and 2-D).
ConvShape integer_conv_shape(OpContext &ctx, const Shape &xs, const Shape &ws, Shape &out) {
  if (xs.size() < 3 || xs.size() > 4 || ws.size() != xs.size())
    ctx.unsupported("only 1-D and 2-D integer convolutions are supported (input " + shape_str(xs) +
                    ", weight " + shape_str(ws) + ")");
  int64_t group = ctx.attr_i("group", 1);
  if (group <= 0 || xs[1] % group || ws[0] % group || ws[1] * group != xs[1])
    ctx.fail("input channels " + std::to_string(xs[1]) + ", weight " + shape_str(ws) +
             " and group " + std::to_string(group) + " do not agree");
  Shape kernel(ws.begin() + 2, ws.end());
  WindowGeometry g = WindowGeometry::resolve(ctx, Shape(xs.begin() + 2, xs.end()), kernel, false);
  out = {xs[0], ws[0]};
  out.insert(out.end(), g.out.begin(), g.out.end());
  bool two_d = xs.size() == 4;
  return {xs[0],
          xs[1],
          two_d ? xs[2] : 1,
          xs.back(),
          ws[0],
          group,
          two_d ? ws[2] : 1,
          ws.back(),
          two_d ? g.out[0] : 1,
          g.out.back(),
          two_d ? g.stride[0] : 1,
          g.stride.back(),
          two_d ? g.dilation[0] : 1,
          g.dilation.back(),
          two_d ? g.pad_begin[0] : 0,
          g.pad_begin.back()};
}

// Converts a quantised tensor to int32 minus its zero point (per channel along `axis_block`
// blocks of `block` elements over `channels` channels).
void shift_to_int32(const void *q, DType t, int64_t n, const std::vector<int32_t> &zp,
                    int64_t block, int32_t *out) {
  int64_t channels = static_cast<int64_t>(zp.size());
  for (int64_t i = 0; i < n; ++i) out[i] = q8_at(q, t, i) - zp[(i / block) % channels];
}

// QLinearConv inputs: x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale,
// y_zero_point, [B int32]. ConvInteger inputs: x, w, [x_zero_point], [w_zero_point].
template <bool qlinear>
std::unique_ptr<Kernel> compile_integer_conv(OpContext &ctx) {
  const size_t kX = 0, kXZ = qlinear ? 2 : 2, kW = qlinear ? 3 : 1, kWZ = qlinear ? 5 : 3;
  if (qlinear)
    ctx.expect_inputs(8, 9);
  else
    ctx.expect_inputs(2, 4);
  const Shape &xs = ctx.in_shape(kX), &ws = ctx.in_shape(kW);
  Shape out;
  ConvShape s = integer_conv_shape(ctx, xs, ws, out);
  DType xt = ctx.in_dtype(kX), wt = ctx.in_dtype(kW);
  DType yt = qlinear ? ctx.in_dtype(7) : DType::i32;
  ctx.set_output(0, yt, out);
  if (ctx.infer_only()) return nullptr;
  if (!is_q8(xt) || !is_q8(wt) || (qlinear && !is_q8(yt)))
    ctx.unsupported(std::string("dtypes x ") + dtype_name(xt) + ", w " + dtype_name(wt) +
                    " (expected int8 or uint8)");
  int64_t m = ws[0];
  std::vector<float> multiplier;  // per output channel: x_scale * w_scale / y_scale
  std::vector<int32_t> bias(static_cast<size_t>(m), 0);
  int32_t y_zero = 0;
  if (qlinear) {
    float x_scale = static_cast<float>(ctx.require_constant(1, "x_scale").as_double(0));
    float y_scale = static_cast<float>(ctx.require_constant(6, "y_scale").as_double(0));
    y_zero = static_cast<int32_t>(ctx.require_constant(7, "y_zero_point").as_int(0));
    const Tensor &w_scale = ctx.require_constant(4, "w_scale");
    if (w_scale.count() != 1 && w_scale.count() != m)
      ctx.fail("w_scale has " + std::to_string(w_scale.count()) + " values for " +
               std::to_string(m) + " output channels");
    for (int64_t c = 0; c < m; ++c)
      multiplier.push_back(
          x_scale * static_cast<float>(w_scale.as_double(w_scale.count() == 1 ? 0 : c)) / y_scale);
    if (ctx.has_input(8)) {
      const Tensor &b = ctx.require_constant(8, "B");
      if (b.count() != m || b.dtype != DType::i32)
        ctx.fail("B must be int32 with " + std::to_string(m) + " values, got " +
                 dtype_name(b.dtype) + shape_str(b.shape));
      for (int64_t c = 0; c < m; ++c) bias[c] = b.data<int32_t>()[c];
    }
  }
  auto zp_count = [&](size_t slot) { return ctx.has_input(slot) ? ctx.in_shape(slot) : Shape{}; };
  int64_t xz_count = product(zp_count(kXZ), 0, zp_count(kXZ).size());
  int64_t wz_count = product(zp_count(kWZ), 0, zp_count(kWZ).size());
  if (xz_count != 1) ctx.unsupported("x_zero_point must be per tensor");
  if (wz_count != 1 && wz_count != m)
    ctx.fail("w_zero_point has " + std::to_string(wz_count) + " values for " + std::to_string(m) +
             " output channels");
  DType xzt = ctx.has_input(kXZ) ? ctx.in_dtype(kXZ) : xt;
  DType wzt = ctx.has_input(kWZ) ? ctx.in_dtype(kWZ) : wt;
  int64_t n_x = product(xs, 0, xs.size()), n_w = product(ws, 0, ws.size());
  int64_t n_y = product(out, 0, out.size()), plane = s.oh * s.ow;
  int64_t w_block = n_w / m;
  bool has_xz = ctx.has_input(kXZ), has_wz = ctx.has_input(kWZ);
  size_t scratch = static_cast<size_t>(n_x + n_w + (qlinear ? n_y : 0)) * sizeof(int32_t);
  auto k = make_kernel([=](ExecContext &ec, const void *const *in, void *const *o) {
    int32_t *x32 = static_cast<int32_t *>(ec.scratch);
    int32_t *w32 = x32 + n_x;
    int32_t *acc = qlinear ? w32 + n_w : static_cast<int32_t *>(o[0]);
    std::vector<int32_t> xz = zero_points(has_xz ? in[kXZ] : nullptr, xzt, 1, 1);
    std::vector<int32_t> wz = zero_points(has_wz ? in[kWZ] : nullptr, wzt, wz_count, m);
    shift_to_int32(in[kX], xt, n_x, xz, n_x, x32);
    shift_to_int32(in[kW], wt, n_w, wz, w_block, w32);
    conv_int32(s, x32, w32, acc);
    if (!qlinear) return;
    for (int64_t i = 0; i < n_y; ++i) {
      int64_t c = (i / plane) % m;
      store_requantized(o[0], yt, i, static_cast<float>(acc[i] + bias[c]) * multiplier[c], y_zero);
    }
  });
  k->scratch_bytes = scratch;
  k->macs = static_cast<uint64_t>(n_y * (s.c / s.group) * s.kh * s.kw);
  k->impl = qlinear ? "int32-accumulating reference, requantised" : "int32 reference";
  return k;
}

// QLinearMatMul inputs: a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
// y_zero_point. MatMulInteger inputs: A, B, [a_zero_point], [b_zero_point]. b's scale and
// zero point may be per output column (the last dim of b).
template <bool qlinear>
std::unique_ptr<Kernel> compile_integer_matmul(OpContext &ctx) {
  const size_t kA = 0, kAZ = 2, kB = qlinear ? 3 : 1, kBZ = qlinear ? 5 : 3;
  if (qlinear)
    ctx.expect_inputs(7, 8);
  else
    ctx.expect_inputs(2, 4);
  Shape as = ctx.in_shape(kA), bs = ctx.in_shape(kB);
  if (bs.size() < 2 || as.empty())
    ctx.unsupported("integer MatMul with a 1-D b (" + shape_str(as) + " x " + shape_str(bs) + ")");
  bool a_vec = as.size() == 1;  // numpy promotion: (k) -> (1, k), the 1 dropped again after
  if (a_vec) as.insert(as.begin(), 1);
  int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  if (bs[bs.size() - 2] != k)
    ctx.fail("inner dims differ: " + shape_str(as) + " x " + shape_str(bs));
  Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
  Shape batch = broadcast_shapes(a_batch, b_batch, ctx.label());
  Shape out = batch;
  if (!a_vec) out.push_back(m);
  out.push_back(n);
  DType at = ctx.in_dtype(kA), bt = ctx.in_dtype(kB);
  DType yt = !qlinear ? DType::i32 : ctx.has_input(7) ? ctx.in_dtype(7) : DType::u8;
  ctx.set_output(0, yt, out);
  if (ctx.infer_only()) return nullptr;
  if (!is_q8(at) || !is_q8(bt) || (qlinear && !is_q8(yt)))
    ctx.unsupported(std::string("dtypes a ") + dtype_name(at) + ", b " + dtype_name(bt) +
                    " (expected int8 or uint8)");
  auto count_of = [&](size_t slot) {
    return ctx.has_input(slot) ? product(ctx.in_shape(slot), 0, ctx.in_shape(slot).size())
                               : int64_t{1};
  };
  int64_t az_count = count_of(kAZ), bz_count = count_of(kBZ);
  if (az_count != 1) ctx.unsupported("a_zero_point must be per tensor");
  if (bz_count != 1 && bz_count != n)
    ctx.fail("b_zero_point has " + std::to_string(bz_count) + " values for " + std::to_string(n) +
             " columns");
  std::vector<float> multiplier(static_cast<size_t>(n), 1.f);
  int32_t y_zero = 0;
  if (qlinear) {
    float a_scale = static_cast<float>(ctx.require_constant(1, "a_scale").as_double(0));
    float y_scale = static_cast<float>(ctx.require_constant(6, "y_scale").as_double(0));
    if (ctx.has_input(7))
      y_zero = static_cast<int32_t>(ctx.require_constant(7, "y_zero_point").as_int(0));
    const Tensor &b_scale = ctx.require_constant(4, "b_scale");
    if (b_scale.count() != 1 && b_scale.count() != n)
      ctx.fail("b_scale has " + std::to_string(b_scale.count()) + " values for " +
               std::to_string(n) + " columns");
    for (int64_t j = 0; j < n; ++j)
      multiplier[j] =
          a_scale * static_cast<float>(b_scale.as_double(b_scale.count() == 1 ? 0 : j)) / y_scale;
  }
  Shape a_b = a_batch, b_b = b_batch, batch_plus = batch;
  a_b.push_back(1);
  b_b.push_back(1);
  batch_plus.push_back(1);
  std::vector<std::pair<int64_t, int64_t>> offsets;
  BroadcastPlan({a_b, b_b}, batch_plus).for_each2([&](int64_t, int64_t ia, int64_t ib) {
    offsets.push_back({ia * m * k, ib * k * n});
  });
  DType azt = ctx.has_input(kAZ) ? ctx.in_dtype(kAZ) : at;
  DType bzt = ctx.has_input(kBZ) ? ctx.in_dtype(kBZ) : bt;
  bool has_az = ctx.has_input(kAZ), has_bz = ctx.has_input(kBZ);
  int64_t n_a = product(as, 0, as.size()), n_b = product(bs, 0, bs.size());
  int64_t batches = static_cast<int64_t>(offsets.size());
  auto kern = make_kernel([=](ExecContext &ec, const void *const *in, void *const *o) {
    int32_t *a32 = static_cast<int32_t *>(ec.scratch);
    int32_t *b32 = a32 + n_a;
    int32_t *row = b32 + n_b;
    std::vector<int32_t> az = zero_points(has_az ? in[kAZ] : nullptr, azt, 1, 1);
    std::vector<int32_t> bz = zero_points(has_bz ? in[kBZ] : nullptr, bzt, bz_count, n);
    shift_to_int32(in[kA], at, n_a, az, n_a, a32);
    shift_to_int32(in[kB], bt, n_b, bz, 1, b32);  // column j of b is element j mod n
    for (int64_t bi = 0; bi < batches; ++bi)
      for (int64_t i = 0; i < m; ++i) {
        int32_t *acc = qlinear ? row : static_cast<int32_t *>(o[0]) + (bi * m + i) * n;
        std::fill(acc, acc + n, 0);
        const int32_t *arow = a32 + offsets[bi].first + i * k;
        const int32_t *bmat = b32 + offsets[bi].second;
        for (int64_t p = 0; p < k; ++p) {
          int32_t av = arow[p];
          const int32_t *brow = bmat + p * n;
          for (int64_t j = 0; j < n; ++j) acc[j] += av * brow[j];
        }
        if (qlinear)
          for (int64_t j = 0; j < n; ++j)
            store_requantized(o[0], yt, (bi * m + i) * n + j,
                              static_cast<float>(acc[j]) * multiplier[j], y_zero);
      }
  });
  kern->scratch_bytes = static_cast<size_t>(n_a + n_b + n) * sizeof(int32_t);
  kern->macs = static_cast<uint64_t>(batches * m * n * k);
  kern->impl = qlinear ? "int32-accumulating matmul, requantised" : "int32 matmul";
  return kern;
}

}  // namespace

AXSTREAM_ENGINE_OP(QLinearConv, "QLinearConv", 10, 17, compile_integer_conv<true>)
AXSTREAM_ENGINE_OP(ConvInteger, "ConvInteger", 10, 17, compile_integer_conv<false>)
AXSTREAM_ENGINE_OP(QLinearMatMul, "QLinearMatMul", 10, 17, compile_integer_matmul<true>)
AXSTREAM_ENGINE_OP(MatMulInteger, "MatMulInteger", 10, 17, compile_integer_matmul<false>)

}  // namespace axstream::engine
