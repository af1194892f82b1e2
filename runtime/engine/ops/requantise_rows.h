// The integer matmul's epilogue over a row of columns: int32 accumulators to int8/uint8 (or to
// the real values a fused sigmoid/softmax reads, and those back to int8/uint8), 16 lanes at a
// time on AVX-512 and 8 on AVX2, bit-identical to the scalar loop (ops/qlinear.cc uses it).
#pragma once

#include <cstdint>

#include "../tensor.h"

namespace axstream::engine {

// Which form of the row kernels runs: chosen once, when a kernel is compiled.
enum class RowIsa { scalar, avx2, avx512 };

// The widest form the CPU (and ONEDNN_MAX_CPU_ISA's cap, cpu_features.h) allows, or scalar
// where AXSTREAM_ENGINE_VECTOR_EPILOGUE=0 (to compare the two).
RowIsa requantise_row_isa();
const char *row_isa_name(RowIsa isa);

// One value to int8/uint8 y[i] (ONNX: saturate(round_half_even(v) + zero_point), NaN to the
// low bound). Everything in this file rounds this way.
void store_requantized(void *y, DType t, int64_t i, float v, int32_t zero_point);

// y[j] = requantised(float(acc[j]) * multiplier[j] + offset[j]) for j < count: a product and
// a sum, each rounded (never one fused multiply-add).
void requantise_affine_row(RowIsa isa, const int32_t *acc, const float *multiplier,
                           const float *offset, int64_t count, int32_t zero_point, DType yt,
                           void *y);

// real[j] = float(acc[j]) * multiplier[j] + offset[j], rounded as above.
void affine_real_row(RowIsa isa, const int32_t *acc, const float *multiplier, const float *offset,
                     int64_t count, float *real);

// Sigmoid's output: y[j] = requantised(scale / (1 + e[j])), e[j] = exp(-real) computed by the
// caller (std::exp stays scalar: no vector exp gives glibc's bits).
void requantise_sigmoid_row(RowIsa isa, const float *e, float scale, int64_t count,
                            int32_t zero_point, DType yt, void *y);

// Softmax's output: y[j] = requantised(v[j] * scale).
void requantise_scaled_row(RowIsa isa, const float *v, float scale, int64_t count,
                           int32_t zero_point, DType yt, void *y);

// A requantised row (x, int8/uint8) through DequantizeLinear, Add and QuantizeLinear, all per
// tensor but the added values (one per column), with those kernels' arithmetic in their order
// (ops/quantize.cc, ops/nhwc_quantize.h): v = float(x[j] - dq_zero) * dq_scale, then
// v + added[j], then PerTensorQuantizer(q_scale, q_zero) (divide, clamp, round half to even,
// + zero point) into y[j] (int8/uint8; y may be x). AVX-512 or the scalar loop (AVX2 runs the
// scalar loop).
void dequantize_add_quantize_row(RowIsa isa, const void *x, DType xt, float dq_scale,
                                 int32_t dq_zero, const float *added, float q_scale, int32_t q_zero,
                                 DType yt, int64_t count, void *y);

}  // namespace axstream::engine
