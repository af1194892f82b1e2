// Integer operator-format ops: QLinearConv, QLinearMatMul (int8/uint8, per-tensor or
// per-channel weights), ConvInteger and MatMulInteger. Exact integer arithmetic: int32
// accumulation of (x - x_zero_point) * (w - w_zero_point), then for the QLinear ops
// requantisation by x_scale * w_scale / y_scale, round half to even, + y_zero_point, saturate.
// passes.cc lowers the common QLinearConv (int8 symmetric weights) onto axstream.QConv's
// oneDNN path; what is left runs here.
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <memory>

#include "../cpu_features.h"
#include "../parallel.h"
#include "conv_reference.h"
#include "requantise_rows.h"

namespace axstream::engine {
namespace {

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
  if (!is_int8_or_uint8(xt) || !is_int8_or_uint8(wt) || (qlinear && !is_int8_or_uint8(yt)))
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
    // QGemm: + bias, + the fused DequantizeLinear -> Add -> QuantizeLinear's five (9-13).
    const size_t most = ctx.node().domain != "axstream"                  ? 8u
                        : ctx.attr_i("_dequantize_add_quantize", 0) != 0 ? 14u
                                                                         : 9u;
    if (ctx.input_count() > most) ctx.fail("too many inputs: " + std::to_string(ctx.input_count()));
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

// What both matmul kernels do with an output row's int32 accumulators: requantise them (or
// store them, MatMulInteger), or keep real values for the fused activation and apply it. The
// arithmetic runs a row at a time in requantise_rows.h's vector forms (bit-identical to the
// scalar loop); a fused activation's std::exp stays scalar.
struct MatMulEpilogue {
  bool qlinear = false;
  DType yt = DType::i32;
  MatMulActivation activation = MatMulActivation::none;
  std::vector<float> multiplier, offset;
  int32_t y_zero = 0;
  float inv_y_scale = 1.f;
  int64_t n = 0;
  RowIsa isa = RowIsa::scalar;
  // A DequantizeLinear -> Add (per column) -> QuantizeLinear after the requantisation, fused by
  // passes.cc (axstream.QGemm's inputs 9-13): each requantised row goes through their
  // arithmetic into the output type out_t (dequantize_add_quantize_row, the same bytes).
  struct ThenAdd {
    bool active = false;
    float dq_scale = 1.f, q_scale = 1.f;
    int32_t dq_zero = 0, q_zero = 0;
    std::vector<float> added;
    DType out_t = DType::i8;
  } then_add;

  // Columns [j0, j1) of output row `row` (batch * m + i) from their accumulators acc[j0, j1);
  // `real` is the row's n floats of scratch (a fused activation's). A softmax takes the whole
  // row (j0 = 0, j1 = n).
  void columns(void *y, int64_t row, int64_t j0, int64_t j1, const int32_t *acc,
               float *real) const {
    const int64_t at = row * n + j0, count = j1 - j0;
    if (!qlinear) {
      std::memcpy(static_cast<int32_t *>(y) + at, acc + j0, static_cast<size_t>(count) * 4);
      return;
    }
    const size_t size = yt == DType::i8 ? sizeof(int8_t) : sizeof(uint8_t);
    void *out = static_cast<uint8_t *>(y) + at * static_cast<int64_t>(size);
    if (activation == MatMulActivation::none) {
      requantise_affine_row(isa, acc + j0, multiplier.data() + j0, offset.data() + j0, count,
                            y_zero, yt, out);
      if (then_add.active)
        dequantize_add_quantize_row(isa, out, yt, then_add.dq_scale, then_add.dq_zero,
                                    then_add.added.data() + j0, then_add.q_scale, then_add.q_zero,
                                    then_add.out_t, count, out);
      return;
    }
    affine_real_row(isa, acc + j0, multiplier.data() + j0, offset.data() + j0, count, real + j0);
    if (activation == MatMulActivation::sigmoid) {
      for (int64_t j = j0; j < j1; ++j) real[j] = std::exp(-real[j]);
      requantise_sigmoid_row(isa, real + j0, inv_y_scale, count, y_zero, yt, out);
    } else {
      float top = *std::max_element(real + j0, real + j1), sum = 0.f;
      for (int64_t j = j0; j < j1; ++j) sum += (real[j] = std::exp(real[j] - top));
      requantise_scaled_row(isa, real + j0, inv_y_scale / sum, count, y_zero, yt, out);
    }
  }
};

MatMulEpilogue matmul_epilogue(bool qlinear, DType yt, MatMulActivation activation,
                               MatMulRequantisation requantisation, int64_t n) {
  MatMulEpilogue e;
  e.qlinear = qlinear;
  e.yt = yt;
  e.activation = activation;
  e.multiplier = std::move(requantisation.multiplier);
  e.offset = std::move(requantisation.offset);
  e.y_zero = requantisation.y_zero;
  e.inv_y_scale = requantisation.inv_y_scale;
  e.n = n;
  e.isa = requantise_row_isa();
  return e;
}

// "int32-accumulating matmul (<how>), <activation>, requantised (<isa> rows)", or
// MatMulInteger's "int32 matmul (<how>)".
std::string matmul_impl(const MatMulEpilogue &e, const std::string &how) {
  if (!e.qlinear) return "int32 matmul (" + how + ")";
  return "int32-accumulating matmul (" + how + ")" +
         (e.activation == MatMulActivation::sigmoid   ? ", sigmoid"
          : e.activation == MatMulActivation::softmax ? ", softmax over rows"
                                                      : "") +
         ", requantised (" + row_isa_name(e.isa) + " rows)" +
         (e.then_add.active ? std::string(", then dequantize-add-quantize (") +
                                  (e.isa == RowIsa::avx512 ? "avx512" : "scalar") + " rows)"
                            : std::string());
}

// Weights for vpdpbusd (u8 x s8, four products summed into each int32 lane): b - b_zero_point
// as int8, laid out [matrix][n / 16][k / 4][16 columns][4 rows], so the 16 lanes of a zmm are
// 16 output columns and one row of a (broadcast 4 bytes at a time) meets each weight byte once:
// m = 1 needs no horizontal sum. k is padded to 4 and n to 16 with zero weights.
//
// a goes in unsigned: a_u = a for uint8 a, a + 128 for int8 a (its sign bit flipped). With
// c = b - b_zero_point, the int16 path's accumulator is
//   sum_p (a_p - az) * c_pj = sum_p a_u,p * c_pj - (shift + az) * colsum_j,
// shift = 128 for int8 a and 0 for uint8 a, colsum_j = sum_p c_pj (computed here, once).
// Bounds, for k <= kMaxVnniK = 65536: |a_u * c| <= 255 * 128 = 32640, so every partial sum of
// the dot product is within 32640 * 65536 = 2139095040 < 2^31; |colsum_j| <= 128 * 65536 and
// shift + az is within [0, 255] (a's zero point has a's type), so the correction is within the
// same bound, and so is the result (the int16 path's exact accumulator). Nothing wraps; a longer
// k runs on the int16 path. (A zero point of the other type, which ONNX forbids, could push the
// correction past 2^31: vpmulld and vpsubd then wrap modulo 2^32 as the int16 path's vector adds
// do, so the two still give the same bits.)
constexpr int64_t kMaxVnniK = 65536;

enum class VnniIsa { none, avx512, avx_vnni };

struct VnniPackedB {
  int64_t k4 = 0, blocks = 0;       // k rounded up to 4; n / 16 rounded up
  std::vector<int8_t> storage;      // 64 bytes more than the weights, for alignment
  int8_t *weights = nullptr;        // 64-byte aligned within storage
  std::vector<int32_t> column_sum;  // [matrix][blocks * 16]
  const int8_t *matrix(int64_t mat) const { return weights + mat * blocks * k4 * 16; }
  const int32_t *sums(int64_t mat) const { return column_sum.data() + mat * blocks * 16; }
};

// Packs a constant b (b_mats matrices of k x n) minus its zero points (per column); empty when
// some b - b_zero_point leaves int8, which vpdpbusd's signed operand cannot hold.
std::shared_ptr<VnniPackedB> vnni_pack_b(const void *b, DType t, const std::vector<int32_t> &zp,
                                         int64_t b_mats, int64_t k, int64_t n) {
  auto packed = std::make_shared<VnniPackedB>();
  VnniPackedB &p = *packed;
  p.k4 = (k + 3) / 4 * 4;
  p.blocks = (n + 15) / 16;
  const size_t bytes = static_cast<size_t>(b_mats * p.blocks * p.k4 * 16);
  p.storage.assign(bytes + 64, 0);
  p.weights = p.storage.data() + (64 - reinterpret_cast<uintptr_t>(p.storage.data()) % 64) % 64;
  p.column_sum.assign(static_cast<size_t>(b_mats * p.blocks * 16), 0);
  for (int64_t mat = 0; mat < b_mats; ++mat)
    for (int64_t j = 0; j < n; ++j) {
      int8_t *column = p.weights + (mat * p.blocks + j / 16) * p.k4 * 16 + (j % 16) * 4;
      int32_t sum = 0;
      for (int64_t r = 0; r < k; ++r) {
        int32_t c = q8_at(b, t, (mat * k + r) * n + j) - zp[j];
        if (c < -128 || c > 127) return nullptr;
        column[(r / 4) * 64 + r % 4] = static_cast<int8_t>(c);
        sum += c;
      }
      p.column_sum[mat * p.blocks * 16 + j] = sum;
    }
  return packed;
}

// Up to four rows of a (consecutive rows of one batch matrix: a_u, a_u + k4, ...) against the
// 16 * (end - begin) columns of blocks [begin, end) of one packed matrix: acc (rows of
// acc_stride) gets the dot products minus correction * column_sum. Each step loads a weight
// vector once for all the rows and broadcasts each row's 4 bytes once for all the blocks;
// kRows x kBlocks independent accumulation chains.
struct VnniRows {
  const uint8_t *a_u;
  int rows;
  const int8_t *w;
  const int32_t *sums;
  int64_t k4;
  int32_t correction;
  int32_t *acc;
  int64_t acc_stride;
};

template <int kRows, int kBlocks>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) inline void vnni_tile_avx512(
    const VnniRows &t, int64_t blk) {
  const int64_t stride = t.k4 * 16;
  const int8_t *w = t.w + blk * stride;
  __m512i s[kRows][kBlocks];
  for (int r = 0; r < kRows; ++r)
    for (int b = 0; b < kBlocks; ++b) s[r][b] = _mm512_setzero_si512();
  for (int64_t q = 0; q < t.k4; q += 4) {
    __m512i a[kRows];
    for (int r = 0; r < kRows; ++r) {
      int32_t a4;
      std::memcpy(&a4, t.a_u + r * t.k4 + q, 4);
      a[r] = _mm512_set1_epi32(a4);
    }
    for (int b = 0; b < kBlocks; ++b) {
      const __m512i wv = _mm512_load_si512(w + b * stride + q * 16);
      for (int r = 0; r < kRows; ++r) s[r][b] = _mm512_dpbusd_epi32(s[r][b], a[r], wv);
    }
  }
  const __m512i c = _mm512_set1_epi32(t.correction);
  for (int b = 0; b < kBlocks; ++b) {
    const __m512i cs = _mm512_mullo_epi32(c, _mm512_loadu_si512(t.sums + (blk + b) * 16));
    for (int r = 0; r < kRows; ++r)
      _mm512_storeu_si512(t.acc + r * t.acc_stride + (blk + b) * 16, _mm512_sub_epi32(s[r][b], cs));
  }
}

// The full 4 x 4 tile (all but the tails), with its 16 accumulators as named variables: from
// the array form above GCC 12 copied every accumulator to another register before each
// vpdpbusd and back after it, and kept two on the stack (38 moves and 2 stores per 16 dot
// products), so the kernel ran at about half the vpdpbusd rate. The same instructions on the
// same values otherwise, so the same accumulators.
template <>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) inline void vnni_tile_avx512<4, 4>(
    const VnniRows &t, int64_t blk) {
  const int64_t stride = t.k4 * 16;
  const int8_t *w = t.w + blk * stride;
  const uint8_t *a_u = t.a_u;
  __m512i s00 = _mm512_setzero_si512(), s01 = s00, s02 = s00, s03 = s00, s10 = s00, s11 = s00,
          s12 = s00, s13 = s00, s20 = s00, s21 = s00, s22 = s00, s23 = s00, s30 = s00, s31 = s00,
          s32 = s00, s33 = s00;
  for (int64_t q = 0; q < t.k4; q += 4) {
    int32_t a4[4];
    for (int r = 0; r < 4; ++r) std::memcpy(&a4[r], a_u + r * t.k4 + q, 4);
    const __m512i a0 = _mm512_set1_epi32(a4[0]), a1 = _mm512_set1_epi32(a4[1]),
                  a2 = _mm512_set1_epi32(a4[2]), a3 = _mm512_set1_epi32(a4[3]);
    const int8_t *wq = w + q * 16;
    const __m512i w0 = _mm512_load_si512(wq), w1 = _mm512_load_si512(wq + stride),
                  w2 = _mm512_load_si512(wq + 2 * stride), w3 = _mm512_load_si512(wq + 3 * stride);
    s00 = _mm512_dpbusd_epi32(s00, a0, w0);
    s10 = _mm512_dpbusd_epi32(s10, a1, w0);
    s20 = _mm512_dpbusd_epi32(s20, a2, w0);
    s30 = _mm512_dpbusd_epi32(s30, a3, w0);
    s01 = _mm512_dpbusd_epi32(s01, a0, w1);
    s11 = _mm512_dpbusd_epi32(s11, a1, w1);
    s21 = _mm512_dpbusd_epi32(s21, a2, w1);
    s31 = _mm512_dpbusd_epi32(s31, a3, w1);
    s02 = _mm512_dpbusd_epi32(s02, a0, w2);
    s12 = _mm512_dpbusd_epi32(s12, a1, w2);
    s22 = _mm512_dpbusd_epi32(s22, a2, w2);
    s32 = _mm512_dpbusd_epi32(s32, a3, w2);
    s03 = _mm512_dpbusd_epi32(s03, a0, w3);
    s13 = _mm512_dpbusd_epi32(s13, a1, w3);
    s23 = _mm512_dpbusd_epi32(s23, a2, w3);
    s33 = _mm512_dpbusd_epi32(s33, a3, w3);
  }
  const __m512i c = _mm512_set1_epi32(t.correction);
  const __m512i sums[4][4] = {
      {s00, s01, s02, s03}, {s10, s11, s12, s13}, {s20, s21, s22, s23}, {s30, s31, s32, s33}};
  for (int b = 0; b < 4; ++b) {
    const __m512i cs = _mm512_mullo_epi32(c, _mm512_loadu_si512(t.sums + (blk + b) * 16));
    for (int r = 0; r < 4; ++r)
      _mm512_storeu_si512(t.acc + r * t.acc_stride + (blk + b) * 16,
                          _mm512_sub_epi32(sums[r][b], cs));
  }
}

template <int kRows>
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void vnni_rows_avx512(const VnniRows &t,
                                                                             int64_t begin,
                                                                             int64_t end) {
  int64_t blk = begin;
  for (; blk + 4 <= end; blk += 4) vnni_tile_avx512<kRows, 4>(t, blk);
  for (; blk < end; ++blk) vnni_tile_avx512<kRows, 1>(t, blk);
}

// The same on ymm with AVX-VNNI (16 registers): each 16-column block is two 8-lane halves
// (bytes 0-31 and 32-63 of each 64-byte step).
template <int kRows, int kBlocks>
__attribute__((target("avx2,avxvnni"))) inline void vnni_tile_avx(const VnniRows &t, int64_t blk) {
  const int64_t stride = t.k4 * 16;
  const int8_t *w = t.w + blk * stride;
  __m256i s[kRows][2 * kBlocks];
  for (int r = 0; r < kRows; ++r)
    for (int h = 0; h < 2 * kBlocks; ++h) s[r][h] = _mm256_setzero_si256();
  for (int64_t q = 0; q < t.k4; q += 4) {
    __m256i a[kRows];
    for (int r = 0; r < kRows; ++r) {
      int32_t a4;
      std::memcpy(&a4, t.a_u + r * t.k4 + q, 4);
      a[r] = _mm256_set1_epi32(a4);
    }
    for (int h = 0; h < 2 * kBlocks; ++h) {
      const __m256i wv = _mm256_load_si256(
          reinterpret_cast<const __m256i *>(w + (h / 2) * stride + q * 16 + (h % 2) * 32));
      for (int r = 0; r < kRows; ++r) s[r][h] = _mm256_dpbusd_avx_epi32(s[r][h], a[r], wv);
    }
  }
  const __m256i c = _mm256_set1_epi32(t.correction);
  for (int h = 0; h < 2 * kBlocks; ++h) {
    const __m256i cs = _mm256_mullo_epi32(
        c, _mm256_loadu_si256(reinterpret_cast<const __m256i *>(t.sums + blk * 16 + h * 8)));
    for (int r = 0; r < kRows; ++r)
      _mm256_storeu_si256(reinterpret_cast<__m256i *>(t.acc + r * t.acc_stride + blk * 16 + h * 8),
                          _mm256_sub_epi32(s[r][h], cs));
  }
}

template <int kRows>
__attribute__((target("avx2,avxvnni"))) void vnni_rows_avx(const VnniRows &t, int64_t begin,
                                                           int64_t end) {
  int64_t blk = begin;
  if (kRows == 1)
    for (; blk + 2 <= end; blk += 2) vnni_tile_avx<kRows, 2>(t, blk);
  for (; blk < end; ++blk) vnni_tile_avx<kRows, 1>(t, blk);
}

// Blocks [begin, end) for t.rows (1 to 4) rows on the CPU's VNNI.
void vnni_rows(bool avx512, const VnniRows &t, int64_t begin, int64_t end) {
  using RowsFn = void (*)(const VnniRows &, int64_t, int64_t);
  static constexpr RowsFn zmm[] = {vnni_rows_avx512<1>, vnni_rows_avx512<2>, vnni_rows_avx512<3>,
                                   vnni_rows_avx512<4>};
  static constexpr RowsFn ymm[] = {vnni_rows_avx<1>, vnni_rows_avx<2>, vnni_rows_avx<3>,
                                   vnni_rows_avx<4>};
  (avx512 ? zmm : ymm)[t.rows - 1](t, begin, end);
}

// The kernel: zero-point-shifted operands packed as int16, dot products in int32, then the
// requantisation (or the raw accumulator for MatMulInteger), the activation on real rows.
template <bool qlinear>
std::unique_ptr<Kernel> int16_pair_matmul(OpContext &ctx, const IntegerMatMulShapes &shapes,
                                          int64_t bz_count, MatMulEpilogue epilogue) {
  constexpr size_t kA = MatMulSlots<qlinear>::kA, kAZ = MatMulSlots<qlinear>::kAZ,
                   kB = MatMulSlots<qlinear>::kB, kBZ = MatMulSlots<qlinear>::kBZ;
  const Shape &as = shapes.as, &bs = shapes.bs;
  const int64_t m = shapes.m, k = shapes.k, n = shapes.n;
  DType at = ctx.in_dtype(kA), bt = ctx.in_dtype(kB);
  const MatMulActivation activation = epilogue.activation;
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
    int32_t *acc_rows =
        reinterpret_cast<int32_t *>(static_cast<uint8_t *>(ec.scratch) + packed_bytes);
    float *real_rows = reinterpret_cast<float *>(acc_rows + batches * m * n);
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
          const int64_t row = bi * m + i;
          int32_t *acc = acc_rows + row * n;
          for (int64_t j = 0; j < n; ++j) acc[j] = dot_int16(arow, bcols + j * kp, kp);
          epilogue.columns(o[0], row, 0, n, acc, real_rows + row * n);
        });
  });
  kern->scratch_bytes =
      packed_bytes + static_cast<size_t>(batches * m * n) * sizeof(int32_t) +
      (activation != MatMulActivation::none ? static_cast<size_t>(batches * m * n) * sizeof(float)
                                            : 0);
  kern->macs = static_cast<uint64_t>(batches * m * n * k);
  kern->impl = matmul_impl(epilogue, "int16 pairs");
  return kern;
}

// The VNNI kernel (see VnniPackedB) for a constant b whose b - b_zero_point fits int8 and k up
// to kMaxVnniK, on a CPU with AVX-512 VNNI or AVX-VNNI; nullptr otherwise (the int16 path runs).
// The same int32 accumulators as int16_pair_matmul, then the same epilogue.
template <bool qlinear>
std::unique_ptr<Kernel> vnni_matmul(OpContext &ctx, const IntegerMatMulShapes &shapes,
                                    int64_t bz_count, MatMulEpilogue &epilogue) {
  constexpr size_t kA = MatMulSlots<qlinear>::kA, kAZ = MatMulSlots<qlinear>::kAZ,
                   kB = MatMulSlots<qlinear>::kB, kBZ = MatMulSlots<qlinear>::kBZ;
  const int64_t m = shapes.m, k = shapes.k, n = shapes.n;
  const VnniIsa isa = cpu_allows_avx512vnni() ? VnniIsa::avx512
                      : cpu_allows_avx_vnni() ? VnniIsa::avx_vnni
                                              : VnniIsa::none;
  const bool has_bz = ctx.has_input(kBZ), has_az = ctx.has_input(kAZ);
  if (isa == VnniIsa::none || k < 1 || k > kMaxVnniK || n < 1 || !ctx.constant(kB) ||
      (has_bz && !ctx.constant(kBZ)))
    return nullptr;
  const DType at = ctx.in_dtype(kA), bt = ctx.in_dtype(kB);
  const DType azt = has_az ? ctx.in_dtype(kAZ) : at, bzt = has_bz ? ctx.in_dtype(kBZ) : bt;
  const std::vector<std::pair<int64_t, int64_t>> offsets = batch_offsets(shapes);
  const int64_t n_a = product(shapes.as, 0, shapes.as.size());
  const int64_t n_b = product(shapes.bs, 0, shapes.bs.size());
  const int64_t a_rows = n_a / k, b_mats = n_b / (k * n);
  const int64_t batches = static_cast<int64_t>(offsets.size()), rows = batches * m;
  std::shared_ptr<const VnniPackedB> packed =
      vnni_pack_b(ctx.constant(kB)->bytes.data(), bt,
                  zero_points(has_bz ? ctx.constant(kBZ)->bytes.data() : nullptr, bzt, bz_count, n),
                  b_mats, k, n);
  if (!packed) return nullptr;
  const int64_t k4 = packed->k4, blocks = packed->blocks;
  const bool avx512 = isa == VnniIsa::avx512;
  const MatMulActivation activation = epilogue.activation;
  // Scratch: a as unsigned bytes (rows of k4), the accumulators (rows of blocks * 16), the real
  // rows of a fused activation.
  const size_t a_bytes = (static_cast<size_t>(a_rows * k4) + 63) / 64 * 64;
  const size_t acc_bytes = static_cast<size_t>(rows * blocks * 16) * sizeof(int32_t);
  auto kern = make_kernel([=](ExecContext &ec, const void *const *in, void *const *o) {
    uint8_t *a_u = static_cast<uint8_t *>(ec.scratch);
    int32_t *acc = reinterpret_cast<int32_t *>(a_u + a_bytes);
    float *real_rows = reinterpret_cast<float *>(a_u + a_bytes + acc_bytes);
    const int32_t a_zero = zero_points(has_az ? in[kAZ] : nullptr, azt, 1, 1)[0];
    const int32_t correction = (at == DType::i8 ? 128 : 0) + a_zero;
    const uint8_t flip = at == DType::i8 ? 0x80 : 0;
    const uint8_t *a = static_cast<const uint8_t *>(in[kA]);
    for (int64_t r = 0; r < a_rows; ++r) {
      uint8_t *dst = a_u + r * k4;
      for (int64_t p = 0; p < k; ++p) dst[p] = a[r * k + p] ^ flip;
      std::fill(dst + k, dst + k4, uint8_t{0});
    }
    // Rows go in groups of up to four of one batch matrix (each weight load serves them all).
    // Few groups (m = 1: a classifier) split their columns among the threads too; a softmax
    // needs its whole row in one place.
    const int64_t row_groups = (m + 3) / 4, groups = batches * row_groups;
    const bool split = worth_splitting(rows * n * k, 262144);
    const int64_t threads = split ? omp_get_max_threads() : 1;
    const int64_t chunks = activation == MatMulActivation::softmax || groups >= 2 * threads
                               ? 1
                               : std::min<int64_t>(blocks, threads);
    parallel_for_2d(groups, chunks, split, [&](int64_t group, int64_t chunk) {
      const int64_t bi = group / row_groups, i0 = group % row_groups * 4;
      const int64_t begin = blocks * chunk / chunks, end = blocks * (chunk + 1) / chunks;
      const int64_t mat = offsets[bi].second / (k * n), row0 = bi * m + i0;
      VnniRows tile{a_u + (offsets[bi].first / k + i0) * k4,
                    static_cast<int>(std::min<int64_t>(4, m - i0)),
                    packed->matrix(mat),
                    packed->sums(mat),
                    k4,
                    correction,
                    acc + row0 * blocks * 16,
                    blocks * 16};
      vnni_rows(avx512, tile, begin, end);
      const int64_t j0 = begin * 16, j1 = std::min(n, end * 16);
      for (int64_t row = row0; row < row0 + tile.rows; ++row)
        epilogue.columns(o[0], row, j0, j1, acc + row * blocks * 16, real_rows + row * n);
    });
  });
  kern->scratch_bytes =
      a_bytes + acc_bytes +
      (activation != MatMulActivation::none ? static_cast<size_t>(rows * n) * sizeof(float) : 0);
  kern->macs = static_cast<uint64_t>(rows * n * k);
  kern->impl = matmul_impl(epilogue, isa == VnniIsa::avx512 ? "VNNI u8*s8, packed columns"
                                                            : "AVX-VNNI u8*s8, packed columns");
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
  const bool then_add = qlinear && ctx.attr_i("_dequantize_add_quantize", 0) != 0;
  if (then_add && !ctx.has_input(13))
    ctx.fail("_dequantize_add_quantize needs the QuantizeLinear's zero point (input 13)");
  ctx.set_output(0, then_add ? ctx.in_dtype(13) : yt, shapes.out);
  if (ctx.infer_only()) return nullptr;
  if (!is_int8_or_uint8(at) || !is_int8_or_uint8(bt) || (qlinear && !is_int8_or_uint8(yt)))
    ctx.unsupported(std::string("dtypes a ") + dtype_name(at) + ", b " + dtype_name(bt) +
                    " (expected int8 or uint8)");
  int64_t bz_count = checked_b_zero_point_count(ctx, kAZ, kBZ, shapes.n);
  MatMulActivation activation = fused_matmul_activation(ctx);
  MatMulRequantisation requantisation =
      qlinear ? qlinear_matmul_requantisation(ctx, shapes.n, activation != MatMulActivation::none)
              : MatMulRequantisation(shapes.n);
  MatMulEpilogue epilogue =
      matmul_epilogue(qlinear, yt, activation, std::move(requantisation), shapes.n);
  if (then_add) {
    if (activation != MatMulActivation::none || !is_int8_or_uint8(ctx.in_dtype(13)))
      ctx.fail("_dequantize_add_quantize needs no fused activation and an int8 or uint8 output");
    auto scale = [&](size_t slot, const char *what) {
      const float v = static_cast<float>(ctx.require_scalar(slot, what).as_double(0));
      if (!std::isfinite(v) || v == 0)
        ctx.fail(std::string(what) + " is " + std::to_string(v) +
                 ": expected a finite non-zero number");
      return v;
    };
    MatMulEpilogue::ThenAdd &t = epilogue.then_add;
    t.active = true;
    t.dq_scale = scale(9, "the fused DequantizeLinear's scale");
    t.q_scale = scale(12, "the fused QuantizeLinear's scale");
    if (ctx.has_input(10))
      t.dq_zero = static_cast<int32_t>(
          ctx.require_scalar(10, "the fused DequantizeLinear's zero point").as_int(0));
    t.q_zero = static_cast<int32_t>(
        ctx.require_scalar(13, "the fused QuantizeLinear's zero point").as_int(0));
    const Tensor &added = ctx.require_constant(11, "the fused Add's values");
    if (added.dtype != DType::f32 || added.count() != shapes.n)
      ctx.fail("the fused Add's values must be float32 with " + std::to_string(shapes.n) +
               " values, got " + dtype_name(added.dtype) + shape_str(added.shape));
    t.added.assign(added.data<float>(), added.data<float>() + shapes.n);
    t.out_t = ctx.in_dtype(13);
  }
  if (auto vnni = vnni_matmul<qlinear>(ctx, shapes, bz_count, epilogue)) return vnni;
  return int16_pair_matmul<qlinear>(ctx, shapes, bz_count, std::move(epilogue));
}

}  // namespace

AXSTREAM_ENGINE_OP(QLinearConv, "QLinearConv", 10, 17, compile_integer_conv<true>)
AXSTREAM_ENGINE_OP(ConvInteger, "ConvInteger", 10, 17, compile_integer_conv<false>)
AXSTREAM_ENGINE_OP(QLinearMatMul, "QLinearMatMul", 10, 17, compile_integer_matmul<true>)
AXSTREAM_ENGINE_OP(MatMulInteger, "MatMulInteger", 10, 17, compile_integer_matmul<false>)
AXSTREAM_ENGINE_OP_EX(AxQGemm, "axstream", "QGemm", 1, 1, compile_integer_matmul<true>, false)

}  // namespace axstream::engine
