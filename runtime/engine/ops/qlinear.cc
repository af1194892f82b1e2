// Integer operator-format ops: QLinearConv, QLinearMatMul (int8/uint8, per-tensor or
// per-channel weights), ConvInteger and MatMulInteger. Exact integer arithmetic: int32
// accumulation of (x - x_zero_point) * (w - w_zero_point), then for the QLinear ops
// requantisation by x_scale * w_scale / y_scale, round half to even, + y_zero_point, saturate.
// passes.cc lowers the common QLinearConv (int8 symmetric weights) onto axstream.QConv's
// oneDNN path; what is left runs here.
#include <immintrin.h>

#include "../cpu_features.h"
#include "../parallel.h"
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

// Exact int16 dot product of two zero-padded rows of length n (a multiple of 16).
__attribute__((target("avx2"))) int32_t dot_int16_avx2(const int16_t *a, const int16_t *b,
                                                       int64_t n) {
  __m256i acc = _mm256_setzero_si256();
  for (int64_t i = 0; i < n; i += 16)
    acc = _mm256_add_epi32(
        acc, _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(a + i)),
                               _mm256_loadu_si256(reinterpret_cast<const __m256i *>(b + i))));
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

inline int32_t dot_int16(const int16_t *a, const int16_t *b, int64_t n) {
  if (cpu_allows_avx2_fma()) return dot_int16_avx2(a, b, n);
  int32_t acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += static_cast<int32_t>(a[i]) * b[i];
  return acc;
}

// int32 convolution of zero-point-shifted inputs: acc[n, m, (oz,) oy, ox].
void conv_int32(const ConvShape &s, const int32_t *x, const int32_t *w, int32_t *acc) {
  conv_direct(s, x, w, static_cast<const int32_t *>(nullptr), acc, [](int32_t *, int64_t) {});
}

// Geometry shared by QLinearConv and ConvInteger (1-D to 3-D).
ConvShape integer_conv_shape(OpContext &ctx, const Shape &xs, const Shape &ws, Shape &out) {
  int64_t group = conv_group(ctx, xs, ws, "integer convolutions");
  Shape kernel(ws.begin() + 2, ws.end());
  WindowGeometry g = WindowGeometry::resolve(ctx, Shape(xs.begin() + 2, xs.end()), kernel, false);
  out = {xs[0], ws[0]};
  out.insert(out.end(), g.out.begin(), g.out.end());
  return conv_shape(xs, ws, g, group);
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
    float x_scale = static_cast<float>(ctx.require_scalar(1, "x_scale").as_double(0));
    float y_scale = static_cast<float>(ctx.require_scalar(6, "y_scale").as_double(0));
    y_zero = static_cast<int32_t>(ctx.require_scalar(7, "y_zero_point").as_int(0));
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
  int64_t n_y = product(out, 0, out.size()), plane = s.od * s.oh * s.ow;
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
  k->macs = static_cast<uint64_t>(n_y * (s.c / s.group) * s.kd * s.kh * s.kw);
  k->impl = qlinear ? "int32-accumulating reference, requantised" : "int32 reference";
  return k;
}

// What turns an integer matmul's int32 accumulator in column j into its output:
// acc * multiplier[j] + offset[j], in y's quantised units, or in real units when a fused
// activation follows (which then quantises through inv_y_scale). MatMulInteger keeps the
// identity (1, 0): its output is the accumulator.
struct MatMulRequantisation {
  explicit MatMulRequantisation(int64_t n)
      : multiplier(static_cast<size_t>(n), 1.f), offset(static_cast<size_t>(n), 0.f) {}
  std::vector<float> multiplier;
  std::vector<float> offset;  // bias / y_scale
  int32_t y_zero = 0;
  float inv_y_scale = 1.f;
};

// QLinearMatMul's (and axstream.QGemm's) from its constant scales, y zero point and bias
// (input 8, QGemm's C in real units, one per column), checked against the n output columns.
MatMulRequantisation qlinear_matmul_requantisation(const OpContext &ctx, int64_t n,
                                                   bool real_units) {
  MatMulRequantisation r(n);
  float a_scale = static_cast<float>(ctx.require_scalar(1, "a_scale").as_double(0));
  float y_scale = static_cast<float>(ctx.require_scalar(6, "y_scale").as_double(0));
  if (real_units) {
    r.inv_y_scale = 1.f / y_scale;
    y_scale = 1.f;
  }
  if (ctx.has_input(7))
    r.y_zero = static_cast<int32_t>(ctx.require_scalar(7, "y_zero_point").as_int(0));
  const Tensor &b_scale = ctx.require_constant(4, "b_scale");
  if (b_scale.count() != 1 && b_scale.count() != n)
    ctx.fail("b_scale has " + std::to_string(b_scale.count()) + " values for " + std::to_string(n) +
             " columns");
  for (int64_t j = 0; j < n; ++j)
    r.multiplier[j] =
        a_scale * static_cast<float>(b_scale.as_double(b_scale.count() == 1 ? 0 : j)) / y_scale;
  if (ctx.has_input(8)) {
    const Tensor &c = ctx.require_constant(8, "bias");
    if (c.count() != n || c.dtype != DType::f32)
      ctx.fail("bias must be float32 with " + std::to_string(n) + " values");
    for (int64_t j = 0; j < n; ++j) r.offset[j] = c.data<float>()[j] / y_scale;
  }
  return r;
}

// Input slots of QLinearMatMul and axstream.QGemm (qlinear) and of MatMulInteger.
template <bool qlinear>
struct MatMulSlots {
  static constexpr size_t kA = 0, kAZ = 2, kB = qlinear ? 3 : 1, kBZ = qlinear ? 5 : 3;
};

// Zero points may be omitted (the QDQ fusions pass what the DequantizeLinear had); QGemm
// takes a bias too.
template <bool qlinear>
void check_integer_matmul_inputs(OpContext &ctx) {
  if (qlinear) {
    for (size_t slot : {size_t{0}, size_t{1}, size_t{3}, size_t{4}, size_t{6}})
      if (!ctx.has_input(slot)) ctx.fail("input " + std::to_string(slot) + " is required");
    if (ctx.input_count() > (ctx.node().domain == "axstream" ? 9u : 8u))  // QGemm: + bias
      ctx.fail("too many inputs: " + std::to_string(ctx.input_count()));
  } else {
    ctx.expect_inputs(2, 4);
  }
}

// An integer matmul's shapes: a (m x k, a 1-D a promoted to 1 x k) times b (k x n) over
// broadcast batch dims.
struct IntegerMatMulShapes {
  Shape as, bs, a_batch, b_batch, batch, out;
  int64_t m = 0, k = 0, n = 0;
};

IntegerMatMulShapes integer_matmul_shapes(OpContext &ctx, size_t a_slot, size_t b_slot) {
  IntegerMatMulShapes s;
  Shape &as = s.as, &bs = s.bs;
  as = ctx.in_shape(a_slot);
  bs = ctx.in_shape(b_slot);
  if (bs.size() < 2 || as.empty())
    ctx.unsupported("integer MatMul with a 1-D b (" + shape_str(as) + " x " + shape_str(bs) + ")");
  bool a_vec = as.size() == 1;  // numpy promotion: (k) -> (1, k), the 1 dropped again after
  if (a_vec) as.insert(as.begin(), 1);
  s.m = as[as.size() - 2];
  s.k = as.back();
  s.n = bs.back();
  if (bs[bs.size() - 2] != s.k)
    ctx.fail("inner dims differ: " + shape_str(as) + " x " + shape_str(bs));
  s.a_batch.assign(as.begin(), as.end() - 2);
  s.b_batch.assign(bs.begin(), bs.end() - 2);
  s.batch = broadcast_shapes(s.a_batch, s.b_batch, ctx.where());
  s.out = s.batch;
  if (!a_vec) s.out.push_back(s.m);
  s.out.push_back(s.n);
  return s;
}

// a's zero point per tensor, b's per tensor or per column; returns b's count.
int64_t checked_b_zero_point_count(OpContext &ctx, size_t az_slot, size_t bz_slot, int64_t n) {
  auto count_of = [&](size_t slot) {
    return ctx.has_input(slot) ? product(ctx.in_shape(slot), 0, ctx.in_shape(slot).size())
                               : int64_t{1};
  };
  int64_t az_count = count_of(az_slot), bz_count = count_of(bz_slot);
  if (az_count != 1) ctx.unsupported("a_zero_point must be per tensor");
  if (bz_count != 1 && bz_count != n)
    ctx.fail("b_zero_point has " + std::to_string(bz_count) + " values for " + std::to_string(n) +
             " columns");
  return bz_count;
}

// axstream.QGemm's fused output activation (passes.cc): applied to each row of real values
// (accumulator * a_scale * b_scale + C), which is then quantised.
enum class MatMulActivation { none, sigmoid, softmax };

MatMulActivation fused_matmul_activation(OpContext &ctx) {
  std::string a = ctx.attr_s("_activation", "");
  if (a == "Sigmoid") return MatMulActivation::sigmoid;
  if (a == "Softmax") return MatMulActivation::softmax;
  if (!a.empty()) ctx.fail("unknown fused activation '" + a + "' (expected Sigmoid or Softmax)");
  return MatMulActivation::none;
}

// Per batch matrix, where its a and b start (elements), with a's and b's batch dims
// broadcast.
std::vector<std::pair<int64_t, int64_t>> batch_offsets(const IntegerMatMulShapes &s) {
  const int64_t m = s.m, k = s.k, n = s.n;
  Shape a_b = s.a_batch, b_b = s.b_batch, batch_plus = s.batch;
  a_b.push_back(1);
  b_b.push_back(1);
  batch_plus.push_back(1);
  std::vector<std::pair<int64_t, int64_t>> offsets;
  BroadcastPlan({a_b, b_b}, batch_plus).for_each2([&](int64_t, int64_t ia, int64_t ib) {
    offsets.push_back({ia * m * k, ib * k * n});
  });
  return offsets;
}

// The kernel: zero-point-shifted operands packed as int16, dot products in int32, then the
// requantisation (or the raw accumulator for MatMulInteger), the activation on real rows.
template <bool qlinear>
std::unique_ptr<Kernel> int16_pair_matmul(OpContext &ctx, const IntegerMatMulShapes &shapes,
                                          int64_t bz_count, MatMulActivation activation,
                                          MatMulRequantisation requantisation) {
  constexpr size_t kA = MatMulSlots<qlinear>::kA, kAZ = MatMulSlots<qlinear>::kAZ,
                   kB = MatMulSlots<qlinear>::kB, kBZ = MatMulSlots<qlinear>::kBZ;
  const Shape &as = shapes.as, &bs = shapes.bs;
  const int64_t m = shapes.m, k = shapes.k, n = shapes.n;
  DType at = ctx.in_dtype(kA), bt = ctx.in_dtype(kB);
  DType yt = !qlinear ? DType::i32 : ctx.has_input(7) ? ctx.in_dtype(7) : DType::u8;
  const std::vector<float> multiplier = std::move(requantisation.multiplier);
  const std::vector<float> offset = std::move(requantisation.offset);
  const int32_t y_zero = requantisation.y_zero;
  const float inv_y_scale = requantisation.inv_y_scale;
  std::vector<std::pair<int64_t, int64_t>> offsets = batch_offsets(shapes);
  DType azt = ctx.has_input(kAZ) ? ctx.in_dtype(kAZ) : at;
  DType bzt = ctx.has_input(kBZ) ? ctx.in_dtype(kBZ) : bt;
  bool has_az = ctx.has_input(kAZ), has_bz = ctx.has_input(kBZ);
  int64_t n_a = product(as, 0, as.size()), n_b = product(bs, 0, bs.size());
  int64_t batches = static_cast<int64_t>(offsets.size());
  // Both operands shifted by their zero points fit int16 (|v| <= 255), so products are
  // summed in pairs by pmaddwd into int32 exactly. a is packed by rows, b by columns
  // (transposed), each row padded with zeros to a multiple of 16 elements.
  int64_t kp = (k + 15) / 16 * 16;
  int64_t a_rows = n_a / std::max<int64_t>(k, 1), b_mats = n_b / std::max<int64_t>(k * n, 1);
  auto pack_b = [k, n, kp, b_mats](const void *b, DType t, const std::vector<int32_t> &zp,
                                   int16_t *out) {
    std::fill(out, out + b_mats * n * kp, int16_t{0});
    for (int64_t mat = 0; mat < b_mats; ++mat)
      for (int64_t p = 0; p < k; ++p)
        for (int64_t j = 0; j < n; ++j)
          out[(mat * n + j) * kp + p] =
              static_cast<int16_t>(q8_at(b, t, (mat * k + p) * n + j) - zp[j]);
  };
  std::shared_ptr<std::vector<int16_t>> packed_b;  // once, at compile time, for a constant b
  if (ctx.constant(kB) && (!has_bz || ctx.constant(kBZ))) {
    packed_b = std::make_shared<std::vector<int16_t>>(static_cast<size_t>(b_mats * n * kp));
    std::vector<int32_t> bz =
        zero_points(has_bz ? ctx.constant(kBZ)->bytes.data() : nullptr, bzt, bz_count, n);
    pack_b(ctx.constant(kB)->bytes.data(), bt, bz, packed_b->data());
  }
  const size_t packed_bytes =
      (static_cast<size_t>(a_rows * kp + (packed_b ? 0 : b_mats * n * kp)) * sizeof(int16_t) + 63) /
      64 * 64;
  auto kern = make_kernel([=](ExecContext &ec, const void *const *in, void *const *o) {
    int16_t *a16 = static_cast<int16_t *>(ec.scratch);
    int16_t *b16 = packed_b ? packed_b->data() : a16 + a_rows * kp;
    float *real_rows = reinterpret_cast<float *>(static_cast<uint8_t *>(ec.scratch) + packed_bytes);
    std::vector<int32_t> az = zero_points(has_az ? in[kAZ] : nullptr, azt, 1, 1);
    std::fill(a16, a16 + a_rows * kp, int16_t{0});
    for (int64_t r = 0; r < a_rows; ++r)
      for (int64_t p = 0; p < k; ++p)
        a16[r * kp + p] = static_cast<int16_t>(q8_at(in[kA], at, r * k + p) - az[0]);
    if (!packed_b)
      pack_b(in[kB], bt, zero_points(has_bz ? in[kBZ] : nullptr, bzt, bz_count, n), b16);
    parallel_for_2d(
        batches, m, worth_splitting(batches * m * n * k, 262144), [&](int64_t bi, int64_t i) {
          const int16_t *arow = a16 + (offsets[bi].first / k + i) * kp;
          const int16_t *bcols = b16 + offsets[bi].second / k * kp;  // (mat * k * n) / k = mat * n
          const int64_t row_start = (bi * m + i) * n;
          float *real = real_rows + row_start;
          for (int64_t j = 0; j < n; ++j) {
            int32_t acc = dot_int16(arow, bcols + j * kp, kp);
            int64_t y = row_start + j;
            if (activation != MatMulActivation::none)
              real[j] = static_cast<float>(acc) * multiplier[j] + offset[j];
            else if (qlinear)
              store_requantized(o[0], yt, y, static_cast<float>(acc) * multiplier[j] + offset[j],
                                y_zero);
            else
              static_cast<int32_t *>(o[0])[y] = acc;
          }
          if (activation == MatMulActivation::sigmoid) {
            for (int64_t j = 0; j < n; ++j)
              store_requantized(o[0], yt, row_start + j, inv_y_scale / (1.f + std::exp(-real[j])),
                                y_zero);
          } else if (activation == MatMulActivation::softmax) {
            float top = *std::max_element(real, real + n), sum = 0.f;
            for (int64_t j = 0; j < n; ++j) sum += (real[j] = std::exp(real[j] - top));
            const float to_output = inv_y_scale / sum;
            for (int64_t j = 0; j < n; ++j)
              store_requantized(o[0], yt, row_start + j, real[j] * to_output, y_zero);
          }
        });
  });
  kern->scratch_bytes = packed_bytes + (activation != MatMulActivation::none
                                            ? static_cast<size_t>(batches * m * n) * sizeof(float)
                                            : 0);
  kern->macs = static_cast<uint64_t>(batches * m * n * k);
  kern->impl = !qlinear ? "int32 matmul (int16 pairs)"
               : activation == MatMulActivation::sigmoid
                   ? "int32-accumulating matmul (int16 pairs), sigmoid, requantised"
               : activation == MatMulActivation::softmax
                   ? "int32-accumulating matmul (int16 pairs), softmax over rows, requantised"
                   : "int32-accumulating matmul (int16 pairs), requantised";
  return kern;
}

// QLinearMatMul inputs: a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale,
// y_zero_point. MatMulInteger inputs: A, B, [a_zero_point], [b_zero_point]. b's scale and
// zero point may be per output column (the last dim of b).
template <bool qlinear>
std::unique_ptr<Kernel> compile_integer_matmul(OpContext &ctx) {
  constexpr size_t kA = MatMulSlots<qlinear>::kA, kAZ = MatMulSlots<qlinear>::kAZ,
                   kB = MatMulSlots<qlinear>::kB, kBZ = MatMulSlots<qlinear>::kBZ;
  check_integer_matmul_inputs<qlinear>(ctx);
  IntegerMatMulShapes shapes = integer_matmul_shapes(ctx, kA, kB);
  DType at = ctx.in_dtype(kA), bt = ctx.in_dtype(kB);
  DType yt = !qlinear ? DType::i32 : ctx.has_input(7) ? ctx.in_dtype(7) : DType::u8;
  ctx.set_output(0, yt, shapes.out);
  if (ctx.infer_only()) return nullptr;
  if (!is_q8(at) || !is_q8(bt) || (qlinear && !is_q8(yt)))
    ctx.unsupported(std::string("dtypes a ") + dtype_name(at) + ", b " + dtype_name(bt) +
                    " (expected int8 or uint8)");
  int64_t bz_count = checked_b_zero_point_count(ctx, kAZ, kBZ, shapes.n);
  MatMulActivation activation = fused_matmul_activation(ctx);
  MatMulRequantisation requantisation =
      qlinear ? qlinear_matmul_requantisation(ctx, shapes.n, activation != MatMulActivation::none)
              : MatMulRequantisation(shapes.n);
  return int16_pair_matmul<qlinear>(ctx, shapes, bz_count, activation, std::move(requantisation));
}

}  // namespace

AXSTREAM_ENGINE_OP(QLinearConv, "QLinearConv", 10, 17, compile_integer_conv<true>)
AXSTREAM_ENGINE_OP(ConvInteger, "ConvInteger", 10, 17, compile_integer_conv<false>)
AXSTREAM_ENGINE_OP(QLinearMatMul, "QLinearMatMul", 10, 17, compile_integer_matmul<true>)
AXSTREAM_ENGINE_OP(MatMulInteger, "MatMulInteger", 10, 17, compile_integer_matmul<false>)
AXSTREAM_ENGINE_OP_EX(AxQGemm, "axstream", "QGemm", 1, 1, compile_integer_matmul<true>, false)

}  // namespace axstream::engine
