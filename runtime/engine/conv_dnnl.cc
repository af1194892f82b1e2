#include "conv_dnnl.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <functional>
#include <limits>
#include <type_traits>

#include "axstream/error.h"
#include "compiler.h"
#include "cpu_features.h"
#include "parallel.h"
#include "residual_sum_chain.h"

namespace axstream::engine {

bool dnnl_kernels_enabled() {
  // Read at each compile so tests can build reference and oneDNN programs side by side.
  const char *env = std::getenv("AXSTREAM_ENGINE_REFERENCE");
  return !(env && std::string(env) == "1");
}

bool dnnl_cpu_has_vnni() {
  static const bool vnni = [] {
    auto isa = dnnl::get_effective_cpu_isa();
    return isa == dnnl::cpu_isa::avx2_vnni || isa == dnnl::cpu_isa::avx512_core_vnni ||
           isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
  }();
  return vnni;
}

namespace {

// Whether oneDNN runs AMX kernels here (ONEDNN_MAX_CPU_ISA may cap it below).
bool dnnl_cpu_has_amx() {
  static const bool amx = dnnl::get_effective_cpu_isa() == dnnl::cpu_isa::avx512_core_amx;
  return amx;
}

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

memory::dims dims_of(const Shape &s) { return memory::dims(s.begin(), s.end()); }

size_t align64(size_t n) { return (n + 63) / 64 * 64; }

// The caller's layout of a convolution's activations: NCHW or NCDHW, or NHWC when asked.
tag plain_tag(const Shape &s, bool nhwc = false) {
  return s.size() == 5 ? tag::ncdhw : nhwc ? tag::nhwc : tag::nchw;
}

// The caller's weights: OI[D]HW, seen as G x O/G x I [D]HW when the convolution is grouped.
memory::desc user_weights_desc(const DnnlConvParams &p, memory::data_type type) {
  bool three_d = p.weights.size() == 5;
  Shape shape = p.weights;
  if (p.group == 1) return memory::desc(dims_of(shape), type, three_d ? tag::oidhw : tag::oihw);
  shape[0] /= p.group;
  shape.insert(shape.begin(), p.group);
  return memory::desc(dims_of(shape), type, three_d ? tag::goidhw : tag::goihw);
}

// oneDNN counts dilation from 0 (ONNX from 1).
memory::dims dilation_of(const DnnlConvParams &p) {
  memory::dims d;
  for (int64_t v : p.dilation) d.push_back(v - 1);
  return d;
}

void append_activation(dnnl::post_ops &ops, const FusedActivation &act) {
  using Kind = FusedActivation::Kind;
  // Relu as a clip to [0, inf): the same max(x, 0) in oneDNN's vector kernels, but its scalar
  // post-ops (the gemm convolutions it picks on SSE4.1-only CPUs) compute relu as x * 0 below
  // zero, giving -0.0 where the engine's Relu gives +0.0 (other bytes in a float output).
  if (act.kind == Kind::relu)
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, 0.f,
                       std::numeric_limits<float>::infinity());
  else if (act.kind == Kind::clip)
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_clip, act.lo, act.hi);
  else if (act.kind == Kind::leaky_relu)
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, act.alpha, 0.f);
  else if (act.kind == Kind::hard_swish)
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_hardswish, 0.f, 0.f);
  else if (act.kind == Kind::swish)
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_swish, 1.f, 0.f);
  else if (act.kind == Kind::sigmoid)
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_logistic, 0.f, 0.f);
}

dnnl::post_ops activation_post_ops(const FusedActivation &act) {
  dnnl::post_ops ops;
  append_activation(ops, act);
  return ops;
}

// (De)quantisation folded into the layout reorder around a float convolution:
// to = scale * (from - src zero point) + dst zero point, rounded half to even and saturated.
struct ReorderQuant {
  bool active = false;
  DType dtype = DType::i8;  // of the quantised (caller) side
  float scale = 1.f;        // dequantise: multiply; quantise: divide
  int32_t zero_point_value = 0;
  dnnl::primitive_attr attr;
  std::shared_ptr<memory> zero_point;  // runtime s32 zero point, or null when it is 0
  int zero_point_arg = 0;
};

ReorderQuant reorder_quant(DType dtype, float scale, int arg, int32_t zero_point) {
  ReorderQuant r;
  r.active = true;
  r.dtype = dtype;
  r.scale = scale;
  r.zero_point_value = zero_point;
  r.attr.set_output_scales(0, {arg == DNNL_ARG_DST ? 1.f / scale : scale});
  if (zero_point != 0) {
    r.attr.set_zero_points(arg, 0, {DNNL_RUNTIME_S32_VAL});
    r.zero_point = std::make_shared<memory>(memory::desc({1}, dt::s32, tag::x), cpu_engine());
    *static_cast<int32_t *>(r.zero_point->get_data_handle()) = zero_point;
    r.zero_point_arg = DNNL_ARG_ATTR_ZERO_POINTS | arg;
  }
  return r;
}

// oneDNN 2.6's reorders with scales between plain int8 and blocked float are slow (tens of ms
// per ResNet layer), so the common case — channels blocked by 8 (nChw8c), C a multiple of 8 —
// is done here: one pass that (de)quantises and (un)blocks.
// 8x8 float transpose of r[0..7] in place (AVX2).
__attribute__((target("avx2"))) inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

// Pixels [0, hw8) of one 8-channel block, 8 at a time.
template <typename Q>
__attribute__((target("avx2"))) void dequantize_block_avx2(const Q *in, float *out, int64_t hw,
                                                           int64_t hw8, float scale,
                                                           int32_t zero_point) {
  const __m256i zp = _mm256_set1_epi32(zero_point);
  const __m256 sc = _mm256_set1_ps(scale);
  for (int64_t i = 0; i < hw8; i += 8) {
    __m256 r[8];
    for (int k = 0; k < 8; ++k) {
      __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i *>(in + k * hw + i));
      __m256i v = std::is_signed_v<Q> ? _mm256_cvtepi8_epi32(bytes) : _mm256_cvtepu8_epi32(bytes);
      r[k] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(v, zp)), sc);
    }
    transpose8(r);
    for (int j = 0; j < 8; ++j) _mm256_storeu_ps(out + (i + j) * 8, r[j]);
  }
}

template <typename Q>
__attribute__((target("avx2"))) void quantize_block_avx2(const float *in, Q *out, int64_t hw,
                                                         int64_t hw8, float scale, float lo_v,
                                                         float hi_v, float zero) {
  const __m256 sc = _mm256_set1_ps(scale), lo = _mm256_set1_ps(lo_v), hi = _mm256_set1_ps(hi_v),
               z = _mm256_set1_ps(zero);
  alignas(32) int32_t tmp[8];
  for (int64_t i = 0; i < hw8; i += 8) {
    __m256 r[8];
    for (int j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(in + (i + j) * 8);
    transpose8(r);
    for (int k = 0; k < 8; ++k) {
      __m256 v = _mm256_div_ps(r[k], sc);
      v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
      v = _mm256_add_ps(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), z);
      _mm256_store_si256(reinterpret_cast<__m256i *>(tmp), _mm256_cvtps_epi32(v));
      Q *o = out + k * hw + i;
      for (int j = 0; j < 8; ++j) o[j] = static_cast<Q>(tmp[j]);
    }
  }
}

// oneDNN 2.6's reorders with scales between plain int8 and blocked float are slow (tens of ms
// per ResNet layer), so the common case — channels blocked by 8 (nChw8c), C a multiple of 8 —
// is done here: one pass that (de)quantises and (un)blocks (8x8 transposes on AVX2).
// Both directions walk the n * c / 8 blocks of 8 channels in parallel:
// `convert(block's source, block's destination, hw8)`, where pixels [0, hw8) go to the AVX2
// kernel (none without AVX2 and FMA) and the rest element by element.
template <typename From, typename To, typename Convert>
void for_each_channel_block(const From *src, To *dst, int64_t n, int64_t c, int64_t hw,
                            Convert convert) {
  int64_t blocks = n * (c / 8);
  int64_t hw8 = cpu_allows_avx2_fma() ? hw / 8 * 8 : 0;
  parallel_for(
      blocks, worth_splitting(), [&](int64_t b) __attribute__((always_inline)) {
        convert(src + b * 8 * hw, dst + b * 8 * hw, hw8);
      });
}

template <typename Q>
void dequantize_to_nchw8c(const Q *src, float *dst, int64_t n, int64_t c, int64_t hw, float scale,
                          int32_t zero_point) {
  for_each_channel_block(src, dst, n, c, hw, [&](const Q *in, float *out, int64_t hw8) {
    if (hw8) dequantize_block_avx2(in, out, hw, hw8, scale, zero_point);
    for (int64_t i = hw8; i < hw; ++i)
      for (int k = 0; k < 8; ++k)
        out[i * 8 + k] =
            static_cast<float>(static_cast<int32_t>(in[k * hw + i]) - zero_point) * scale;
  });
}

template <typename Q>
void quantize_from_nchw8c(const float *src, Q *dst, int64_t n, int64_t c, int64_t hw, float scale,
                          int32_t zero_point) {
  constexpr float lo = std::numeric_limits<Q>::lowest(), hi = std::numeric_limits<Q>::max();
  const float zero = static_cast<float>(zero_point), lo_v = lo - zero, hi_v = hi - zero;
  constexpr float kRound = 12582912.f;  // 1.5 * 2^23: round half to even for |v| < 2^22
  for_each_channel_block(src, dst, n, c, hw, [&](const float *in, Q *out, int64_t hw8) {
    if (hw8) quantize_block_avx2(in, out, hw, hw8, scale, lo_v, hi_v, zero);
    for (int k = 0; k < 8; ++k)
      for (int64_t i = hw8; i < hw; ++i) {
        float v = in[i * 8 + k] / scale;
        v = v < lo_v ? lo_v : v;
        v = v > hi_v ? hi_v : v;
        v = (v + kRound) - kRound;
        out[k * hw + i] = static_cast<Q>(static_cast<int32_t>(v + zero));
      }
  });
}

// oneDNN 2.6's jit:uni reorder from int8/uint8 NCHW to float NHWC ignores a source zero point
// at some shapes (C above 16 and not a multiple of 4 with H x W a multiple of 64: BlazeFace's
// 42 channels of 32x32 read as q * scale, not (q - zero point) * scale); its depthwise brdgmm
// kernels ask for NHWC on AVX-512 without VNNI (docs/runtime.md, "CPU features"), so that
// dequantisation is done here, by the same formula.
template <typename Q>
void dequantize_to_nhwc(const Q *src, float *dst, int64_t n, int64_t c, int64_t hw, float scale,
                        int32_t zero_point) {
  parallel_for(
      n * hw, worth_splitting(), [&](int64_t p) __attribute__((always_inline)) {
        const Q *in = src + p / hw * c * hw + p % hw;
        float *out = dst + p * c;
        for (int64_t k = 0; k < c; ++k)
          out[k] = static_cast<float>(static_cast<int32_t>(in[k * hw]) - zero_point) * scale;
      });
}

bool is_nhwc_f32(const memory::desc &d) {
  return d.dims().size() == 4 && d == memory::desc(d.dims(), dt::f32, tag::nhwc);
}

bool is_nchw(const memory::desc &d) {
  return d.dims().size() == 4 && d == memory::desc(d.dims(), d.data_type(), tag::nchw);
}

bool is_nhwc_u8(const memory::desc &d) {
  return d.dims().size() == 4 && d == memory::desc(d.dims(), dt::u8, tag::nhwc);
}

bool is_nchw8c_f32(const memory::desc &d) {
  auto dims = d.dims();
  return dims.size() == 4 && dims[1] % 8 == 0 && d == memory::desc(dims, dt::f32, tag::nChw8c);
}

// A uint8 source copied into a buffer padded with its zero point, for a convolution then run
// without padding: a pad of the zero point adds (zp - zp) * w = 0 to the accumulator, as the
// convolution's own padding does, so the output bytes are the same. oneDNN 2.6 on AVX-512 VNNI
// has no brgconv for a padded convolution with a source zero point (it runs jit_int8) but takes
// the padded source; there the two are as fast (docs/performance.md), so it is off by default.
struct SourcePad {
  bool active = false;
  memory::desc padded;  // uint8 NHWC, H and W grown by the pads
  int64_t top = 0, left = 0;
  uint8_t fill = 0;  // the uint8 zero point
};

// to[i] = from[i] ^ flip: restrict pointers and a local flip, so the compiler vectorises it (in
// the row lambda below, the byte stores might alias its captured sizes and flip, which it then
// reloaded every byte: ~0.1 ms for ResNet-50's 224x224x4 input).
void xor_copy(const uint8_t *__restrict from, uint8_t *__restrict to, size_t count, uint8_t flip) {
  for (size_t i = 0; i < count; ++i) to[i] = from[i] ^ flip;
}

// The rows of `padded` (N x Hp x Wp x C) around and beside an H x W interior at (top, left) are
// set to `fill`; with `from` (NHWC, N x H x W x C) the interior is copied from it, xor `flip`.
void pad_nhwc_rows(const uint8_t *from, uint8_t *to, int64_t n, int64_t c, int64_t h, int64_t w,
                   int64_t padded_h, int64_t padded_w, int64_t top, int64_t left, uint8_t fill,
                   uint8_t flip) {
  const int64_t row = padded_w * c, right = (padded_w - left - w) * c;
  parallel_for(
      n * padded_h, worth_splitting(), [&](int64_t r) __attribute__((always_inline)) {
        uint8_t *out = to + r * row;
        const int64_t y = r % padded_h - top;
        if (y < 0 || y >= h) {
          std::memset(out, fill, static_cast<size_t>(row));
          return;
        }
        std::memset(out, fill, static_cast<size_t>(left * c));
        std::memset(out + (left + w) * c, fill, static_cast<size_t>(right));
        if (!from) return;
        const uint8_t *in = from + ((r / padded_h) * h + y) * w * c;
        uint8_t *interior = out + left * c;
        if (flip == 0)
          std::memcpy(interior, in, static_cast<size_t>(w * c));
        else
          xor_copy(in, interior, static_cast<size_t>(w * c), flip);
      });
}

// Runs a convolution primitive between plain NCHW caller buffers, reordering the activations
// into the primitive's preferred layout when it chose a blocked one.
class DnnlConvKernel : public Kernel {
 public:
  DnnlConvKernel(dnnl::convolution_forward::primitive_desc pd, memory::desc user_src,
                 memory::desc user_dst, std::shared_ptr<memory> weights,
                 std::shared_ptr<memory> bias,
                 std::vector<std::pair<int, std::shared_ptr<memory>>> extra_args = {},
                 bool flip_src_sign = false, ReorderQuant src_q = {}, ReorderQuant dst_q = {},
                 SourcePad src_pad = {})
      : pd_(pd),
        conv_(pd),
        user_src_(user_src),
        user_dst_(user_dst),
        weights_(std::move(weights)),
        bias_(std::move(bias)),
        extra_args_(std::move(extra_args)),
        flip_src_sign_(flip_src_sign),
        src_q_(std::move(src_q)),
        dst_q_(std::move(dst_q)),
        src_pad_(std::move(src_pad)) {
    impl = pd.impl_info_str();
    auto &eng = cpu_engine();
    if (src_pad_.active) {
      impl = "source padded with its zero point + " + impl;
      // NHWC sources are padded row by row (the flip folded in); others are reordered into the
      // padded buffer's interior.
      if (!is_nhwc_u8(user_src)) {
        auto d = user_src.dims();
        src_pad_interior_ = src_pad_.padded.submemory_desc(d, {0, 0, src_pad_.top, src_pad_.left});
        src_pad_reorder_ =
            dnnl::reorder(dnnl::reorder::primitive_desc(eng, user_src, eng, src_pad_interior_));
      }
    }
    src_reorder_needed_ = !src_pad_.active && pd.src_desc() != user_src;
    dst_reorder_needed_ = pd.dst_desc() != user_dst;
    // The hand-written (de)quantising loops read and write NCHW caller buffers.
    src_blocked_loop_ = src_q_.active && is_nchw8c_f32(pd.src_desc()) && is_nchw(user_src);
    src_nhwc_loop_ = src_q_.active && is_nhwc_f32(pd.src_desc()) && is_nchw(user_src);
    dst_blocked_loop_ = dst_q_.active && is_nchw8c_f32(pd.dst_desc()) && is_nchw(user_dst);
    if (src_reorder_needed_ && !src_blocked_loop_ && !src_nhwc_loop_)
      src_reorder_ = dnnl::reorder(
          dnnl::reorder::primitive_desc(eng, user_src, eng, pd.src_desc(), src_q_.attr));
    if (dst_reorder_needed_ && !dst_blocked_loop_)
      dst_reorder_ = dnnl::reorder(
          dnnl::reorder::primitive_desc(eng, pd.dst_desc(), eng, user_dst, dst_q_.attr));
    pad_offset_ = align64(pd.scratchpad_desc().get_size());
    dst_offset_ = pad_offset_ + (src_reorder_needed_ ? align64(pd.src_desc().get_size()) : 0);
    flip_offset_ = dst_offset_ + (dst_reorder_needed_ ? align64(pd.dst_desc().get_size()) : 0);
    const bool flip_copied = flip_src_sign_ && !(src_pad_.active && is_nhwc_u8(user_src));
    pad_src_offset_ = flip_offset_ + (flip_copied ? align64(user_src.get_size()) : 0);
    scratch_bytes = pad_src_offset_ + (src_pad_.active ? align64(src_pad_.padded.get_size()) : 0);
    pad_rows_ = src_pad_.active && is_nhwc_u8(user_src);
    user_src_dims_ = user_src.dims();
    user_dst_dims_ = user_dst.dims();
    if (src_pad_.active) src_pad_dims_ = src_pad_.padded.dims();
  }

  // The primitive sums a residual (a float convolution's sum post-op): input 3, in the caller's
  // destination layout, goes into the destination before the convolution runs.
  void enable_sum() {
    sum_ = true;
    output_may_overwrite_input = 3;
    if (dst_reorder_needed_)
      skip_reorder_ = dnnl::reorder(
          dnnl::reorder::primitive_desc(cpu_engine(), user_dst_, cpu_engine(), pd_.dst_desc()));
    impl += " + sum post-op";
  }

  void run(ExecContext &ctx, const void *const *in, void *const *out) const override {
    std::unique_ptr<KernelState> local;
    RunState &st = kernel_state<RunState>(ctx, this, local, [&] { return make_run_state(ctx); });
    auto *scratch = static_cast<uint8_t *>(ctx.scratch);
    void *src_ptr = const_cast<void *>(in[0]);
    if (flip_src_sign_ && !pad_rows_) {
      // int8 -> uint8 by adding 128 (the zero point moved with it): oneDNN's u8 path keeps
      // the weights exact on CPUs without VNNI, where its s8 path halves them.
      size_t n = user_src_.get_size();
      const uint8_t *from = static_cast<const uint8_t *>(in[0]);
      uint8_t *to = scratch + flip_offset_;
      for (size_t i = 0; i < n; ++i) to[i] = from[i] ^ 0x80;
      src_ptr = to;
    }
    st.bind(scratch, src_ptr, out[0], *this);
    if (src_pad_.active) {
      const auto &d = user_src_dims_, &p = src_pad_dims_;
      pad_nhwc_rows(pad_rows_ ? static_cast<const uint8_t *>(src_ptr) : nullptr,
                    scratch + pad_src_offset_, d[0], d[1], d[2], d[3], p[2], p[3], src_pad_.top,
                    src_pad_.left, src_pad_.fill, pad_rows_ && flip_src_sign_ ? 0x80 : 0);
      if (!pad_rows_) execute(src_pad_reorder_, ctx, st.src_pad_reorder_args);
    } else if (src_reorder_needed_) {
      if (src_blocked_loop_ || src_nhwc_loop_) {
        const auto &d = user_src_dims_;
        float *to = reinterpret_cast<float *>(scratch + pad_offset_);
        auto dequantize = [&](auto *from) {
          if (src_blocked_loop_)
            dequantize_to_nchw8c(from, to, d[0], d[1], d[2] * d[3], src_q_.scale,
                                 src_q_.zero_point_value);
          else
            dequantize_to_nhwc(from, to, d[0], d[1], d[2] * d[3], src_q_.scale,
                               src_q_.zero_point_value);
        };
        if (src_q_.dtype == DType::i8)
          dequantize(static_cast<const int8_t *>(src_ptr));
        else
          dequantize(static_cast<const uint8_t *>(src_ptr));
      } else {
        execute(src_reorder_, ctx, st.src_reorder_args);
      }
    }
    if (sum_) {
      // Read before any write: in place, out[0] is the skip's buffer.
      if (dst_reorder_needed_) {
        st.user_skip.set_data_handle(const_cast<void *>(in[3]));
        execute(skip_reorder_, ctx, st.skip_reorder_args);
      } else if (out[0] != in[3]) {
        std::memcpy(out[0], in[3], user_dst_.get_size());
      }
    }
    execute(conv_, ctx, st.conv_args);
    if (dst_reorder_needed_ && dst_blocked_loop_) {
      ctx.stream->wait();
      const auto &d = user_dst_dims_;
      const float *from = reinterpret_cast<const float *>(scratch + dst_offset_);
      if (dst_q_.dtype == DType::i8)
        quantize_from_nchw8c(from, static_cast<int8_t *>(out[0]), d[0], d[1], d[2] * d[3],
                             dst_q_.scale, dst_q_.zero_point_value);
      else
        quantize_from_nchw8c(from, static_cast<uint8_t *>(out[0]), d[0], d[1], d[2] * d[3],
                             dst_q_.scale, dst_q_.zero_point_value);
    } else if (dst_reorder_needed_) {
      execute(dst_reorder_, ctx, st.dst_reorder_args);
    }
    ctx.stream->wait();
  }

 private:
  // The memory objects and argument lists of one executor's runs, built on its first run:
  // each run only points them at its buffers (set_data_handle) instead of creating them.
  struct RunState final : KernelState {
    memory user_src, user_dst;  // the caller's buffers
    memory user_skip;           // a residual sum's skip, when reordered into the destination
    memory src, dst;            // what the convolution reads and writes, when in scratch
    memory pad;                 // oneDNN's scratchpad
    memory interior;            // the padded source's interior (SourcePad, not row by row)
    std::vector<dnnl_exec_arg_t> conv_args, src_reorder_args, dst_reorder_args,
        src_pad_reorder_args, skip_reorder_args;

    // Every handle, every run: the scratch buffer may move (an enclosing kernel hands each run
    // its own), and oneDNN zero-fills a blocked layout's padding when a handle is set, as it
    // did when these were created per run (other steps reuse the scratch in between).
    void bind(uint8_t *scratch, void *src_ptr, void *dst_ptr, const DnnlConvKernel &k) {
      user_src.set_data_handle(src_ptr);
      user_dst.set_data_handle(dst_ptr);
      pad.set_data_handle(scratch);
      if (k.src_pad_.active) {
        src.set_data_handle(scratch + k.pad_src_offset_);
        if (!k.pad_rows_) interior.set_data_handle(scratch + k.pad_src_offset_);
      } else if (k.src_reorder_needed_) {
        src.set_data_handle(scratch + k.pad_offset_);
      }
      if (k.dst_reorder_needed_) dst.set_data_handle(scratch + k.dst_offset_);
    }
  };

  std::unique_ptr<RunState> make_run_state(ExecContext &ctx) const {
    auto &eng = *ctx.engine;
    auto st = std::make_unique<RunState>();
    // Created on a null buffer: bind() points every one at its buffer before each run.
    st->user_src = memory(user_src_, eng, nullptr);
    st->user_dst = memory(user_dst_, eng, nullptr);
    st->src = st->user_src;
    st->dst = st->user_dst;
    if (src_pad_.active)
      st->src = memory(src_pad_.padded, eng, nullptr);
    else if (src_reorder_needed_)
      st->src = memory(pd_.src_desc(), eng, nullptr);
    if (dst_reorder_needed_) st->dst = memory(pd_.dst_desc(), eng, nullptr);
    st->pad = memory(pd_.scratchpad_desc(), eng, nullptr);
    st->conv_args = {{DNNL_ARG_SRC, st->src.get()},
                     {DNNL_ARG_WEIGHTS, weights_->get()},
                     {DNNL_ARG_DST, st->dst.get()},
                     {DNNL_ARG_SCRATCHPAD, st->pad.get()}};
    if (bias_) st->conv_args.push_back({DNNL_ARG_BIAS, bias_->get()});
    for (const auto &[arg, mem] : extra_args_) st->conv_args.push_back({arg, mem->get()});
    if (src_pad_.active && !pad_rows_) {
      // The caller's source reordered into the padded buffer's interior (a descriptor with
      // the padded strides and the interior's offset, on the padded buffer's handle).
      st->interior = memory(src_pad_interior_, eng, nullptr);
      st->src_pad_reorder_args = {{DNNL_ARG_FROM, st->user_src.get()},
                                  {DNNL_ARG_TO, st->interior.get()}};
    } else if (src_reorder_needed_ && !src_blocked_loop_ && !src_nhwc_loop_) {
      st->src_reorder_args = {{DNNL_ARG_FROM, st->user_src.get()}, {DNNL_ARG_TO, st->src.get()}};
      if (src_q_.zero_point)
        st->src_reorder_args.push_back({src_q_.zero_point_arg, src_q_.zero_point->get()});
    }
    if (sum_ && dst_reorder_needed_) {
      st->user_skip = memory(user_dst_, eng, nullptr);
      st->skip_reorder_args = {{DNNL_ARG_FROM, st->user_skip.get()}, {DNNL_ARG_TO, st->dst.get()}};
    }
    if (dst_reorder_needed_ && !dst_blocked_loop_) {
      st->dst_reorder_args = {{DNNL_ARG_FROM, st->dst.get()}, {DNNL_ARG_TO, st->user_dst.get()}};
      if (dst_q_.zero_point)
        st->dst_reorder_args.push_back({dst_q_.zero_point_arg, dst_q_.zero_point->get()});
    }
    return st;
  }

  static void execute(const dnnl::primitive &prim, ExecContext &ctx,
                      const std::vector<dnnl_exec_arg_t> &args) {
    // The C call: the C++ one rebuilds an argument vector from a map on every run.
    dnnl::error::wrap_c_api(dnnl_primitive_execute(prim.get(), ctx.stream->get(),
                                                   static_cast<int>(args.size()), args.data()),
                            "could not execute a primitive");
  }

 private:
  dnnl::convolution_forward::primitive_desc pd_;
  dnnl::convolution_forward conv_;
  memory::desc user_src_, user_dst_;
  std::shared_ptr<memory> weights_, bias_;
  std::vector<std::pair<int, std::shared_ptr<memory>>> extra_args_;
  bool src_reorder_needed_ = false, dst_reorder_needed_ = false;
  bool src_blocked_loop_ = false, dst_blocked_loop_ = false;  // hand-written (de)quantise
  bool src_nhwc_loop_ = false;
  dnnl::reorder src_reorder_, dst_reorder_;
  size_t pad_offset_ = 0, dst_offset_ = 0, flip_offset_ = 0;
  bool flip_src_sign_ = false;
  ReorderQuant src_q_, dst_q_;
  SourcePad src_pad_;
  memory::desc src_pad_interior_;  // the caller's source inside the padded buffer
  dnnl::reorder src_pad_reorder_;
  size_t pad_src_offset_ = 0;
  bool pad_rows_ = false;  // the source padded row by row (NHWC uint8), not reordered
  memory::dims user_src_dims_, user_dst_dims_, src_pad_dims_;
  bool sum_ = false;
  dnnl::reorder skip_reorder_;  // the skip into the primitive's destination layout
};

dt dnnl_type(DType t) {
  switch (t) {
    case DType::i8:
      return dt::s8;
    case DType::u8:
      return dt::u8;
    case DType::i32:
      return dt::s32;
    default:
      return dt::f32;
  }
}

// A padded 2-D convolution with a (uint8) source zero point, as it would read its source
// padded explicitly (inactive for others: without a zero point oneDNN pads as fast itself).
SourcePad zero_point_pad(const DnnlConvParams &p, int32_t src_zero_point) {
  SourcePad pad;
  if (src_zero_point == 0 || p.src.size() != 4) return pad;
  bool pads = false;
  for (size_t i = 0; i < 2; ++i) {
    if (p.pad_begin[i] < 0 || p.pad_end[i] < 0) return pad;
    pads = pads || p.pad_begin[i] > 0 || p.pad_end[i] > 0;
  }
  if (!pads) return pad;
  pad.active = true;
  pad.top = p.pad_begin[0];
  pad.left = p.pad_begin[1];
  pad.fill = static_cast<uint8_t>(src_zero_point);
  pad.padded = memory::desc({p.src[0], p.src[1], p.src[2] + p.pad_begin[0] + p.pad_end[0],
                             p.src[3] + p.pad_begin[1] + p.pad_end[1]},
                            dt::u8, tag::nhwc);
  return pad;
}

bool has_padding(const DnnlConvParams &p) {
  for (size_t i = 0; i < p.pad_begin.size(); ++i)
    if (p.pad_begin[i] != 0 || p.pad_end[i] != 0) return true;
  return false;
}

// Whether float(x + b) == float(x + e) for every real x = integer + e with |x| < 2^24, where
// b is the float nearest e (a double). Both round once; they differ only where a rounding
// boundary (a midpoint between floats, or a tie) lies between x + e and x + b. Within the floats
// of one exponent (spacing ulp <= 1, a power of two dividing 1) x + e keeps the same offset e mod
// ulp from the grid, so one test per exponent decides: the offset must stay more than |b - e|
// away from the midpoint ulp / 2. x + e never comes nearer zero than e's distance to an integer.
bool rounds_as_exact_bias(double e, float b) {
  const double error = std::fabs(static_cast<double>(b) - e);
  if (error == 0) return true;
  const double nearest_integer_distance = std::fabs(e - std::nearbyint(e));
  if (nearest_integer_distance == 0) return false;  // x + e can be 0: float(b - e) is not
  for (int exponent = std::ilogb(nearest_integer_distance); exponent < 24; ++exponent) {
    const double ulp = std::ldexp(1.0, exponent - 23);
    const double offset = e - std::floor(e / ulp) * ulp;  // exact: e and ulp are doubles
    if (std::fabs(offset - ulp / 2) <= error) return false;
  }
  return true;
}

// oneDNN 2.6 computes a convolution with a source zero point as float(acc - zp * sum(w)) +
// bias (the compensation in int32, one float rounding), and without one float(acc) + bias'.
// With bias' = bias - zp * sum(w) both accumulators convert exactly (|acc| <= 255 * sum|w| <
// 2^23) and, where bias' is that number's nearest float, both sums round the same real number
// (or the same one off by less than any rounding boundary it could cross: rounds_as_exact_bias),
// so every later step sees the same float. Folds the zero point into `bias_acc` when that holds
// for every output channel (weights OI[D]HW int8); false, bias_acc untouched, when it does not.
bool fold_source_zero_point(const Tensor &weights, int32_t src_zero_point,
                            std::vector<float> &bias_acc) {
  const int64_t channels = weights.shape[0];
  if (channels == 0 || static_cast<int64_t>(bias_acc.size()) != channels) return false;
  const int64_t per_channel = weights.count() / channels;
  const int8_t *w = weights.data<int8_t>();
  std::vector<float> folded(bias_acc.size());
  for (int64_t c = 0; c < channels; ++c) {
    int64_t sum = 0, magnitude = 0;
    for (int64_t i = 0; i < per_channel; ++i) {
      sum += w[c * per_channel + i];
      magnitude += std::abs(static_cast<int64_t>(w[c * per_channel + i]));
    }
    const double exact = static_cast<double>(bias_acc[c]) -
                         static_cast<double>(src_zero_point) * static_cast<double>(sum);
    // The sum stays below 2^24, where float spacing is at most 1.
    if (255.0 * static_cast<double>(magnitude) + std::fabs(static_cast<double>(bias_acc[c])) +
            std::fabs(exact) >=
        std::ldexp(1.0, 23))
      return false;
    folded[c] = static_cast<float>(exact);
    if (!rounds_as_exact_bias(exact, folded[c])) return false;
  }
  bias_acc = std::move(folded);
  return true;
}

// A convolution's output scales, biases (accumulator units) and weights as oneDNN gets them:
// the caller's, except the output channels whose every output is one byte whatever the source,
// whose three are zeroed (`constant`: how many).
struct ChannelConstants {
  std::vector<float> output_scales, bias_acc;
  Tensor zeroed_weights;  // a copy with those channels' weights 0, where there are any
  int64_t constant = 0;
};

// Output channels of about zero scale: BatchNorm folded with a gamma of about 0 gives weight
// scales such as 6.6e-42 (PP-OCR rec's Conv.20 and Conv.28: 1 of 240 and 14 of 480 channels),
// whose output scales are denormal floats. oneDNN computes scale[c] * (acc + bias[c]) in float,
// and on Intel CPUs each multiplication by a denormal takes a microcode assist: Conv.28 took
// ~390 us per call on AMX brgconv_1x1, ~85 with those scales 0 (docs/performance.md). A scale
// of 3.5e-34 with a bias of -3.3e8 (rec's Conv.30) is as dead, and its bias keeps the source
// zero point from folding. Where
//   |scale| * (255 * sum|w| + |bias|) * gain <= 2^-30
// (255 * sum|w| bounds |acc - zero point * sum w| for a uint8 source; gain 2 * max(1, |alpha|))
// the value reaching the destination zero point is within 2^-30 of the one a scale of 0 gives
// there, for every source: the activations taken here keep a value that small within
// gain/2 of it (Relu, LeakyRelu, HardSwish, Swish: |f(v)| <= max(1, |alpha|) |v|) or map v
// and 0 to the same clip bound, or to tiny values (Clip: monotone); a residual sum follows the
// convolution's own rounding. Adding an integer zero point of |z| <= 255 in float (the
// destination's, or the uint8 retype's -128 and +128) then gives z exactly, and the rounding
// half to even 0 where z is 0: one byte for every source, the one scale 0 gives. So those
// channels' scale, bias and weights become 0: the same bytes, no denormal, and the zero point
// folds into the remaining biases more often. Sigmoid (applied to the real value, then scaled
// by 1 / output scale, where 0 is a tie of 0.5) is left alone, as is every channel with
// AXSTREAM_ENGINE_CONSTANT_CHANNELS=0.
ChannelConstants zero_constant_channels(const DnnlQConvParams &q, const Tensor &weights) {
  ChannelConstants k;
  k.output_scales = q.output_scales;
  k.bias_acc = q.bias_acc;
  using Kind = FusedActivation::Kind;
  const FusedActivation &act = q.conv.activation;
  const int64_t channels = weights.shape.empty() ? 0 : weights.shape[0];
  if (!setting_not_zero("AXSTREAM_ENGINE_CONSTANT_CHANNELS") || channels == 0 ||
      q.post_activation_multiplier != 1.f ||
      (act.kind != Kind::none && act.kind != Kind::relu && act.kind != Kind::clip &&
       act.kind != Kind::leaky_relu && act.kind != Kind::hard_swish && act.kind != Kind::swish) ||
      (q.dst_dtype != DType::i8 && q.dst_dtype != DType::u8) ||
      static_cast<int64_t>(q.output_scales.size()) != channels ||
      static_cast<int64_t>(q.bias_acc.size()) != channels || weights.dtype != DType::i8)
    return k;
  for (int32_t z : {q.dst_zero_point, q.rounds_as_int8_zero_point, q.sum.conv_zero_point})
    if (std::abs(z) > 255) return k;
  const double alpha = act.kind == Kind::leaky_relu ? std::fabs(static_cast<double>(act.alpha)) : 1;
  const double gain = 2.0 * std::max(1.0, alpha);
  const int64_t per_channel = weights.count() / channels;
  const int8_t *w = weights.data<int8_t>();
  for (int64_t c = 0; c < channels; ++c) {
    const int8_t *row = w + c * per_channel;
    int64_t magnitude = 0;
    for (int64_t i = 0; i < per_channel; ++i) magnitude += std::abs(static_cast<int32_t>(row[i]));
    const double scale = std::fabs(static_cast<double>(q.output_scales[c]));
    const double bias = std::fabs(static_cast<double>(q.bias_acc[c]));
    if (!std::isfinite(bias) ||
        !(scale * (255.0 * static_cast<double>(magnitude) + bias) * gain <= std::ldexp(1.0, -30)))
      continue;
    if (scale == 0 && bias == 0 && magnitude == 0) continue;  // nothing to zero
    if (k.constant++ == 0) k.zeroed_weights = weights;
    std::memset(k.zeroed_weights.data<int8_t>() + c * per_channel, 0,
                static_cast<size_t>(per_channel));
    k.output_scales[c] = 0.f;
    k.bias_acc[c] = 0.f;
  }
  return k;
}

// The implementation a primitive descriptor factory gives, or "" when oneDNN has none.
template <typename Factory>
std::string impl_or_empty(Factory make) {
  try {
    return make().impl_info_str();
  } catch (const dnnl::error &) {
    return "";
  }
}

bool is_amx_impl(const std::string &impl) { return impl.find("amx") != std::string::npos; }

// The primitive descriptor `make` gives, moved along oneDNN's implementation list to its first
// AMX implementation (`want_amx`) or its first non-AMX one other than the reference kernel;
// as made where the list has no such implementation, or where its first is not AMX (the host
// or ONEDNN_MAX_CPU_ISA has none: nothing to choose).
template <typename Factory>
dnnl::convolution_forward::primitive_desc amx_or_vnni_impl(Factory make, bool want_amx) {
  auto pd = make();
  if (!is_amx_impl(pd.impl_info_str()) || want_amx) return pd;
  do {
    const std::string impl = pd.impl_info_str();
    if (!is_amx_impl(impl) && impl.rfind("ref", 0) != 0) return pd;
  } while (pd.next_impl());
  return make();
}

// Whether a post-op chain holds an eltwise_linear already.
bool has_eltwise_linear(const dnnl::post_ops &ops) {
  for (int i = 0; i < ops.len(); ++i) {
    if (ops.kind(i) != dnnl::primitive::kind::eltwise) continue;
    float scale = 0, alpha = 0, beta = 0;
    dnnl::algorithm algorithm;
    ops.get_params_eltwise(i, scale, algorithm, alpha, beta);
    if (algorithm == dnnl::algorithm::eltwise_linear) return true;
  }
  return false;
}

}  // namespace

bool amx_convolution_chosen(const DnnlConvParams &p, const char *setting) {
  const std::string asked = setting ? setting : "auto";
  if (asked == "1") return true;
  if (asked == "0") return false;
  if (asked != "auto")
    throw InvalidConfiguration("AXSTREAM_ENGINE_AMX: expected auto, 1 or 0, got '" + asked + "'");
  // Measured per convolution on the cached models (docs/runtime.md, "AMX or VNNI per
  // convolution"): oneDNN 2.6's AMX kernels took a fixed 10-40 us a call more than the VNNI
  // ones on this host, which only a large convolution earns back, and a reduction of under 96
  // values (input channels per group x kernel taps) fills less than two 64-byte tile rows,
  // where VNNI stayed 10-15% faster even at 50-60 M MACs. The fixed cost is oneDNN's AMX
  // jit/jit_1x1 kernels running CPUID (leaf 0x1D) 1-4 times per call, a hypervisor exit of
  // ~6.5 us each on this KVM guest (docs/runtime.md, "Where the AMX kernels' fixed cost
  // goes"): the thresholds are a virtual machine's, to re-measure on bare metal.
  constexpr int64_t kMinReduction = 96;
  constexpr double kMinMacs = 25e6;
  int64_t reduction = p.weights.size() > 1 ? p.weights[1] - p.zero_input_channels : 0;
  for (size_t i = 2; i < p.weights.size(); ++i) reduction *= p.weights[i];
  double macs = static_cast<double>(reduction);
  for (int64_t d : p.dst) macs *= static_cast<double>(d);  // N x O x spatial
  return reduction >= kMinReduction && macs >= kMinMacs;
}

bool zero_point_padded_source_wins(const std::string &own_impl, const std::string &padded_impl,
                                   const char *setting, bool flipped_and_folds) {
  const std::string asked = setting ? setting : "";
  if (padded_impl.empty() || asked == "0") return false;
  if (asked == "1") return true;
  return is_amx_impl(padded_impl) && (flipped_and_folds || !is_amx_impl(own_impl));
}

bool residual_sum_kernel_checked(const std::string &text) {
  // oneDNN 2.6's brgemm and jit_int8 kernels on AVX-512 VNNI, jit_uni_int8 on AVX2 VNNI and the
  // AMX jit, jit_1x1, brgconv and brgconv_1x1 kernels: every operand pair checked
  // (docs/runtime.md).
  // oneDNN names a kernel "<implementation>:<ISA>"; a description puts it among other words.
  auto checked = [](const std::string &impl) {
    auto is = [&](const std::string &prefix, const std::string &isa) {
      return impl.size() >= prefix.size() + isa.size() && impl.rfind(prefix, 0) == 0 &&
             impl.compare(impl.size() - isa.size(), isa.size(), isa) == 0;
    };
    return is("brg", ":avx512_core_vnni") || is("jit_int8", ":avx512_core_vnni") ||
           is("jit_uni_int8", ":avx2_vnni") || impl == "jit:avx512_core_amx_int8" ||
           impl == "jit_1x1:avx512_core_amx_int8" || impl == "brgconv:avx512_core_amx_int8" ||
           impl == "brgconv_1x1:avx512_core_amx_int8";
  };
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find_first_of(" []()\n", start);
    const std::string word = text.substr(start, end == std::string::npos ? end : end - start);
    if (word.find(':') != std::string::npos && checked(word)) return true;
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return false;
}

ResidualSumCount count_residual_sums(const std::string &fused, const std::string &unfused) {
  ResidualSumCount n;
  for (size_t at = 0; (at = fused.find("QConv '", at)) != std::string::npos; ++at) {
    const std::string line = fused.substr(at, fused.find('\n', at) - at);
    if (line.find("sum post-op]") == std::string::npos &&
        line.find("+ fused dequantize-add") == std::string::npos)
      continue;
    ++n.summing;
    // With the sum, oneDNN may pick another kernel than without: then it cannot fuse.
    if (line.find("(no sum post-op: oneDNN picks ") != std::string::npos) continue;
    const std::string name = line.substr(0, line.find("' ") + 1) + " ";  // "QConv 'node' "
    const size_t own = unfused.find(name);
    if (own == std::string::npos) continue;
    // The engine's own depthwise, stem and 1x1 kernels (ops/depthwise_int8.h, ops/stem_int8.h,
    // ops/pointwise_int8.h) give the bytes of oneDNN's kernel, which the fused line names (the
    // 1x1 kernel's, "as <kernel> + sum post-op", the chain it reproduces): make_dnnl_qconv fused
    // the sum only where oneDNN picks that same kernel without it.
    const std::string own_line = unfused.substr(own, unfused.find('\n', own) - own);
    const bool engine_kernel = own_line.find("axstream depthwise int8") != std::string::npos ||
                               own_line.find("axstream stem int8") != std::string::npos ||
                               own_line.find("axstream pointwise int8") != std::string::npos;
    n.checked += residual_sum_kernel_checked(engine_kernel ? line : own_line);
  }
  return n;
}

std::unique_ptr<Kernel> make_dnnl_qconv(const DnnlQConvParams &q, const Tensor &weights,
                                        std::string *sum_refusal) {
  if (!dnnl_kernels_enabled()) return nullptr;
  const DnnlConvParams &p = q.conv;
  DType src_dtype = q.src_dtype;
  int32_t src_zero_point = q.src_zero_point;
  bool flip = src_dtype == DType::i8;
  if (flip) {
    src_dtype = DType::u8;
    src_zero_point += 128;
  }
  // Channels whose outputs are one byte for every source run with scale, bias and weights 0.
  const ChannelConstants constants = zero_constant_channels(q, weights);
  const Tensor &w = constants.constant ? constants.zeroed_weights : weights;
  try {
    auto &eng = cpu_engine();
    memory::desc user_src(dims_of(p.src), dnnl_type(src_dtype), plain_tag(p.src, p.src_nhwc));
    memory::desc user_dst(dims_of(p.dst), dnnl_type(q.dst_dtype), plain_tag(p.dst, p.dst_nhwc));
    memory::desc user_w = user_weights_desc(p, dt::s8);
    memory::desc any_src(dims_of(p.src), dnnl_type(src_dtype), tag::any);
    memory::desc any_w(user_w.dims(), dt::s8, tag::any);
    memory::desc bias_md({p.weights[0]}, dt::f32, tag::x);
    memory::dims dil = dilation_of(p);
    std::vector<std::pair<int, std::shared_ptr<memory>>> extra;
    auto runtime_s32 = [&](int arg, int32_t value) {
      auto mem = std::make_shared<memory>(memory::desc({1}, dt::s32, tag::x), eng);
      *static_cast<int32_t *>(mem->get_data_handle()) = value;
      extra.push_back({arg, mem});
    };
    ResidualSumChain chain;
    ResidualSumParams params;
    if (q.sum.active) {
      static_cast<ResidualSumOperands &>(params) = q.sum;
      params.y_dtype = q.dst_dtype;
      params.y_zero_point = q.dst_zero_point;
      chain = choose_residual_sum_chain(params);
    }
    // With a residual sum, `with_sum` false gives the convolution as it runs unfused (its own
    // output type and zero point, any destination layout), to compare implementations.
    int32_t attr_src_zero_point = src_zero_point;  // 0 once folded into the bias
    const bool want_amx = amx_convolution_chosen(p, std::getenv("AXSTREAM_ENGINE_AMX"));
    bool dst_zero_point_post_op = setting_not_zero("AXSTREAM_ENGINE_DST_ZP_POSTOP");
    const bool binary_first = setting_not_zero("AXSTREAM_ENGINE_U8_RETYPE_BINARY_FIRST");
    // With `padded`, the convolution reads the source padded with its zero point, unpadded.
    auto primitive_desc = [&](bool with_sum, bool collect_args, const SourcePad *padded) {
      // The sum post-op reads the destination in place: it must be the caller's buffer as laid
      // out, not a reordered copy.
      const DType dst_dtype = q.sum.active && !with_sum ? q.sum.conv_dtype : q.dst_dtype;
      memory::desc any_dst =
          with_sum ? user_dst : memory::desc(dims_of(p.dst), dnnl_type(dst_dtype), tag::any);
      const memory::dims no_pad(p.pad_begin.size(), 0);
      dnnl::convolution_forward::desc desc(
          dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
          padded ? padded->padded : any_src, any_w, bias_md, any_dst, dims_of(p.stride), dil,
          padded ? no_pad : dims_of(p.pad_begin), padded ? no_pad : dims_of(p.pad_end));
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      attr.set_output_scales(1 << 1, constants.output_scales);
      dnnl::post_ops ops = activation_post_ops(p.activation);
      if (q.post_activation_multiplier != 1.f)
        ops.append_eltwise(1.f, dnnl::algorithm::eltwise_linear, q.post_activation_multiplier, 0.f);
      // Adds one float to every output as a binary post-op (oneDNN 2.6's brgconv kernels gave
      // a second eltwise_linear the first one's constants, so not as an eltwise).
      auto append_scalar_add = [&](float value) {
        const memory::desc scalar(memory::dims(p.dst.size(), 1), dt::f32,
                                  p.dst.size() == 5 ? tag::ncdhw : tag::nchw);
        ops.append_binary(dnnl::algorithm::binary_add, scalar);
        auto mem = std::make_shared<memory>(scalar, eng);
        *static_cast<float *>(mem->get_data_handle()) = value;
        if (collect_args)
          extra.push_back({DNNL_ARG_ATTR_MULTIPLE_POST_OP(ops.len() - 1) | DNNL_ARG_SRC_1, mem});
      };
      if (q.rounds_as_int8_zero_point != 0) {
        // As a destination zero point is added (in float, before the rounding), then back,
        // exactly. The same two additions run faster on AMX brgconv as binary add then
        // eltwise_linear than the other way round (3x3 64->64 at 56x56: 68-70 against 79-81 us,
        // performance.md); oneDNN 2.6's brgconv gives a second eltwise_linear the first one's
        // constants, so that order only where the chain has no other one.
        const auto zero_point = static_cast<float>(q.rounds_as_int8_zero_point);
        if (binary_first && !q.sum.active && !has_eltwise_linear(ops)) {
          append_scalar_add(zero_point);
          ops.append_eltwise(1.f, dnnl::algorithm::eltwise_linear, 1.f, -zero_point);
        } else {
          ops.append_eltwise(1.f, dnnl::algorithm::eltwise_linear, 1.f, zero_point);
          append_scalar_add(-zero_point);
        }
      }
      if (with_sum)
        append_residual_sum(params, chain, ops, [&](float value) {
          const int index = ops.len() - 1;
          auto mem = std::make_shared<memory>(memory::desc({1, 1, 1, 1}, dt::f32, tag::nchw), eng);
          *static_cast<float *>(mem->get_data_handle()) = value;
          if (collect_args)
            extra.push_back({DNNL_ARG_ATTR_MULTIPLE_POST_OP(index) | DNNL_ARG_SRC_1, mem});
        });
      const int32_t dst_zero_point =
          q.sum.active && !with_sum ? q.sum.conv_zero_point : q.dst_zero_point;
      // Where AMX is wanted and here, the destination zero point is the last post-op instead:
      // oneDNN adds it in float after the post-ops and before saturating and rounding, as this
      // does, so the bytes are the same, and without it oneDNN 2.6 may pick AMX brgconv (no CPUID
      // per call) over its AMX jit kernels (docs/runtime.md, "Destination zero points as a
      // post-op").
      const bool zero_point_by_post_op =
          dst_zero_point != 0 && want_amx && dnnl_cpu_has_amx() && dst_zero_point_post_op;
      if (zero_point_by_post_op) append_scalar_add(static_cast<float>(dst_zero_point));
      attr.set_post_ops(ops);
      for (auto [arg, value] :
           {std::pair{DNNL_ARG_SRC, attr_src_zero_point},
            std::pair{DNNL_ARG_DST, zero_point_by_post_op ? 0 : dst_zero_point}}) {
        if (value == 0) continue;
        attr.set_zero_points(arg, 0, {DNNL_RUNTIME_S32_VAL});
        if (collect_args) runtime_s32(DNNL_ARG_ATTR_ZERO_POINTS | arg, value);
      }
      return amx_or_vnni_impl(
          [&] { return dnnl::convolution_forward::primitive_desc(desc, attr, eng); }, want_amx);
    };
    // A padded convolution with a source zero point may read its source padded explicitly
    // with it (zero_point_padded_source_wins: where that reaches AMX, or when asked).
    // An NHWC int8 source is copied to uint8 before every run anyway: padded in that copy, its
    // zero point may fold into the bias (AXSTREAM_ENGINE_FLIP_PAD=0 leaves it to the rule above).
    const bool fold_on = setting_not_zero("AXSTREAM_ENGINE_ZP_FOLD");
    SourcePad src_pad = zero_point_pad(p, src_zero_point);
    if (src_pad.active) {
      auto impl = [&](const SourcePad *pad) {
        return impl_or_empty([&] { return primitive_desc(q.sum.active, false, pad); });
      };
      std::vector<float> trial_bias = constants.bias_acc;
      const bool flipped_and_folds = flip && p.src_nhwc && fold_on &&
                                     setting_not_zero("AXSTREAM_ENGINE_FLIP_PAD") &&
                                     fold_source_zero_point(w, src_zero_point, trial_bias);
      src_pad.active = zero_point_padded_source_wins(
          impl(nullptr), impl(&src_pad), std::getenv("AXSTREAM_ENGINE_ZP_PAD"), flipped_and_folds);
    }
    const SourcePad *padded = src_pad.active ? &src_pad : nullptr;
    // Unpadded (or so padded), the zero point folds into the bias where that is exact.
    std::vector<float> bias_acc = constants.bias_acc;
    const bool folded = src_zero_point != 0 && (padded || !has_padding(p)) && fold_on &&
                        fold_source_zero_point(w, src_zero_point, bias_acc);
    if (folded) attr_src_zero_point = 0;
    // The destination zero point as a post-op is for oneDNN to pick brgconv on AMX; where it
    // picks the same kernel either way (its AMX jit kernel: the stems, whose few input channels
    // brgconv refuses), the attribute is cheaper (ResNet-50's 7x7 stem alone ~265 -> ~237 us)
    // and gives the same bytes. AXSTREAM_ENGINE_DST_ZP_ATTR_SAME_KERNEL=0 keeps the post-op.
    if (dst_zero_point_post_op && !q.sum.active && q.dst_zero_point != 0 && want_amx &&
        dnnl_cpu_has_amx() && setting_not_zero("AXSTREAM_ENGINE_DST_ZP_ATTR_SAME_KERNEL")) {
      auto impl = [&] {
        return impl_or_empty([&] { return primitive_desc(false, false, padded); });
      };
      const std::string by_post_op = impl();
      dst_zero_point_post_op = false;  // what impl() builds next
      const std::string by_attribute = impl();
      dst_zero_point_post_op = by_post_op != by_attribute;
    }
    auto pd = primitive_desc(q.sum.active, true, padded);
    if (q.sum.active) {
      // The sum reproduces the unfused arithmetic where the convolution result reaches the
      // post-ops as it reaches the unfused output (the same implementation) and the kernel
      // applies them as the ones checked do (residual_sum_kernel_checked: scales, post-ops in
      // order, the sum as one FMA, the destination zero point added, then saturation and
      // rounding). oneDNN's reference kernel rounds its sum otherwise and would be many times
      // slower.
      const std::string fused_impl = pd.impl_info_str();
      const std::string unfused_impl = primitive_desc(false, false, padded).impl_info_str();
      const bool checked = residual_sum_kernel_checked(fused_impl);
      if (fused_impl != unfused_impl || !checked) {
        if (sum_refusal)
          *sum_refusal = fused_impl != unfused_impl ? "oneDNN picks " + fused_impl + " with it, " +
                                                          unfused_impl + " without"
                                                    : fused_impl + " unchecked for it";
        return nullptr;
      }
    }
    dnnl::stream stream(eng);
    memory user_w_mem(user_w, eng, const_cast<uint8_t *>(w.bytes.data()));
    auto w_mem = std::make_shared<memory>(pd.weights_desc(), eng);
    dnnl::reorder(user_w_mem, *w_mem).execute(stream, user_w_mem, *w_mem);
    auto b_mem = std::make_shared<memory>(bias_md, eng);
    std::memcpy(b_mem->get_data_handle(), bias_acc.data(), bias_acc.size() * sizeof(float));
    stream.wait();
    auto kernel = std::make_unique<DnnlConvKernel>(pd, user_src, user_dst, w_mem, b_mem, extra,
                                                   flip, ReorderQuant{}, ReorderQuant{}, src_pad);
    if (folded) kernel->impl = "source zero point folded into the bias + " + kernel->impl;
    if (constants.constant)
      kernel->impl = std::to_string(constants.constant) +
                     (constants.constant == 1 ? " constant output channel zeroed + "
                                              : " constant output channels zeroed + ") +
                     kernel->impl;
    if (q.sum.active) kernel->impl += " (" + chain.describe() + ")";
    return kernel;
  } catch (const dnnl::error &) {
    return nullptr;  // no oneDNN implementation: the reference kernel runs instead
  }
}

bool float_sum_kernel_checked(const std::string &impl) {
  return impl == "brgconv:avx512_core" || impl == "brgconv_1x1:avx512_core";
}

std::unique_ptr<Kernel> make_dnnl_conv_f32(const DnnlConvParams &p, const Tensor &weights,
                                           const Tensor *bias, const DnnlQuantIO *q,
                                           std::string *sum_refusal) {
  if (!dnnl_kernels_enabled() || (p.sum && q)) return nullptr;
  try {
    auto &eng = cpu_engine();
    memory::desc user_src(dims_of(p.src), q ? dnnl_type(q->src_dtype) : dt::f32,
                          plain_tag(p.src, p.src_nhwc));
    memory::desc user_dst(dims_of(p.dst), q ? dnnl_type(q->dst_dtype) : dt::f32,
                          plain_tag(p.dst, p.dst_nhwc));
    memory::desc user_w = user_weights_desc(p, dt::f32);
    memory::desc any_src(dims_of(p.src), dt::f32, tag::any);
    memory::desc any_dst(dims_of(p.dst), dt::f32, tag::any);
    memory::desc any_w(user_w.dims(), dt::f32, tag::any);
    memory::desc bias_md({p.weights[0]}, dt::f32, tag::x);
    memory::dims dil = dilation_of(p);
    auto desc = bias ? dnnl::convolution_forward::desc(
                           dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                           any_src, any_w, bias_md, any_dst, dims_of(p.stride), dil,
                           dims_of(p.pad_begin), dims_of(p.pad_end))
                     : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference,
                                                       dnnl::algorithm::convolution_direct, any_src,
                                                       any_w, any_dst, dims_of(p.stride), dil,
                                                       dims_of(p.pad_begin), dims_of(p.pad_end));
    auto primitive_desc = [&](bool with_sum) {
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      dnnl::post_ops ops = activation_post_ops(p.activation);
      if (with_sum) {
        ops.append_sum(1.f);
        append_activation(ops, p.sum_activation);
      }
      attr.set_post_ops(ops);
      return dnnl::convolution_forward::primitive_desc(desc, attr, eng);
    };
    dnnl::convolution_forward::primitive_desc pd = primitive_desc(p.sum);
    if (p.sum) {
      // Exact only where the sum changes nothing of how the kernel computes the convolution:
      // the same kernel and layouts as without it, and a kernel checked to add bias before the
      // sum (float_sum_kernel_checked).
      const auto unfused = primitive_desc(false);
      const std::string fused_impl = pd.impl_info_str(), unfused_impl = unfused.impl_info_str();
      std::string refusal;
      if (fused_impl != unfused_impl)
        refusal = "oneDNN picks " + fused_impl + " with it, " + unfused_impl + " without";
      else if (pd.src_desc() != unfused.src_desc() || pd.dst_desc() != unfused.dst_desc() ||
               pd.weights_desc() != unfused.weights_desc())
        refusal = "oneDNN picks other layouts for " + fused_impl + " with it";
      else if (!float_sum_kernel_checked(fused_impl))
        refusal = fused_impl + " unchecked for it";
      if (!refusal.empty()) {
        if (sum_refusal) *sum_refusal = refusal;
        return nullptr;
      }
    }
    dnnl::stream stream(eng);
    memory user_w_mem(user_w, eng, const_cast<uint8_t *>(weights.bytes.data()));
    auto w_mem = std::make_shared<memory>(pd.weights_desc(), eng);
    dnnl::reorder(user_w_mem, *w_mem).execute(stream, user_w_mem, *w_mem);
    std::shared_ptr<memory> b_mem;
    if (bias) {
      b_mem = std::make_shared<memory>(bias_md, eng);
      std::memcpy(b_mem->get_data_handle(), bias->bytes.data(), bias->bytes.size());
    }
    stream.wait();
    if (!q) {
      auto kernel = std::make_unique<DnnlConvKernel>(pd, user_src, user_dst, w_mem, b_mem);
      if (p.sum) kernel->enable_sum();
      return kernel;
    }
    return std::make_unique<DnnlConvKernel>(
        pd, user_src, user_dst, w_mem, b_mem,
        std::vector<std::pair<int, std::shared_ptr<memory>>>{}, false,
        reorder_quant(q->src_dtype, q->src_scale, DNNL_ARG_SRC, q->src_zero_point),
        reorder_quant(q->dst_dtype, q->dst_scale, DNNL_ARG_DST, q->dst_zero_point));
  } catch (const dnnl::error &) {
    return nullptr;  // no oneDNN implementation: the reference kernel runs instead
  }
}

}  // namespace axstream::engine
