// Per-tensor QuantizeLinear (float -> int8/uint8) and DequantizeLinear (int8/uint8 -> float) at
// the float/int8 boundaries: element i to element i, and the transposing ones where passes.cc
// keeps the int8 side NHWC and the float side NCHW (an NCHW float tensor into an NHWC int8 one
// and back).
#pragma once

#include <cstdint>
#include <limits>

namespace axstream::engine {

// One per-tensor quantisation step, shared by the plain and the NHWC-writing kernels so both
// compute the same bytes. Clamp to the integer range first (the bounds are integers, so this
// commutes with the rounding), then round half to even by adding and removing 1.5 * 2^23:
// exact for |v| < 2^22 under the default rounding mode, and vectorisable unlike
// std::nearbyint.
template <typename Q>
struct PerTensorQuantizer {
  PerTensorQuantizer(float scale_value, int32_t zero_point)
      : scale(scale_value),
        zero(static_cast<float>(zero_point)),
        lo_v(static_cast<float>(std::numeric_limits<Q>::lowest()) - zero),
        hi_v(static_cast<float>(std::numeric_limits<Q>::max()) - zero) {}
  static constexpr float kRound = 12582912.f;  // 1.5 * 2^23
  Q operator()(float x) const {
    float v = x / scale;
    // Written so NaN (which fails every comparison) clamps to the low bound: a NaN -> int
    // cast is undefined behaviour (found by fuzz_onnx_import).
    v = v >= lo_v ? v : lo_v;
    v = v > hi_v ? hi_v : v;
    v = (v + kRound) - kRound;
    return static_cast<Q>(static_cast<int32_t>(v + zero));
  }
  float scale, zero, lo_v, hi_v;
};

// The (N,C,H,W) extent of the tensor, H and W as one: the NCHW side is (n, c, hw), the NHWC
// side (n, hw, c).
struct NhwcQuantShape {
  int64_t n = 0, c = 0, hw = 0;
};

// Which instructions run the kernels; every path writes the same bytes. `element` goes one
// element at a time (the reference), `sse2` turns 16 pixels x 16 channels with SSE2 unpacks
// (the plain kernels: the compiler's vectorisation of the element loop), `avx512` 16 lanes at a
// time and 64 pixels x 16 channels per transposed block with AVX-512 (F, BW, VL) ones, `best`
// is the widest this CPU runs.
enum class NhwcQuantPath { element, sse2, avx512, best };

bool nhwc_quant_path_supported(NhwcQuantPath path);
// The path `best` stands for on this CPU.
NhwcQuantPath best_nhwc_quant_path();
const char *nhwc_quant_path_name(NhwcQuantPath path);

// Q: int8_t or uint8_t; y[i] = quantizer(x[i]).
template <typename Q>
void quantize_per_tensor(const float *x, Q *y, int64_t count,
                         const PerTensorQuantizer<Q> &quantizer,
                         NhwcQuantPath path = NhwcQuantPath::best);

// T: int8_t or uint8_t; y[i] = (x[i] - zero_point) * scale.
template <typename T>
void dequantize_per_tensor(const T *x, float *y, int64_t count, float scale, int32_t zero_point,
                           NhwcQuantPath path = NhwcQuantPath::best);

// Q: int8_t or uint8_t. x is (n, c, hw), y (n, hw, c). Throws InternalError for a path this CPU
// does not run.
template <typename Q>
void quantize_nchw_to_nhwc(const float *x, Q *y, const NhwcQuantShape &shape,
                           const PerTensorQuantizer<Q> &quantizer,
                           NhwcQuantPath path = NhwcQuantPath::best);

// T: int8_t or uint8_t. x is (n, hw, c), y (n, c, hw): y = (x - zero_point) * scale.
template <typename T>
void dequantize_nhwc_to_nchw(const T *x, float *y, const NhwcQuantShape &shape, float scale,
                             int32_t zero_point, NhwcQuantPath path = NhwcQuantPath::best);

}  // namespace axstream::engine
