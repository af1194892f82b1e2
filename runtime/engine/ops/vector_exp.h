// exp over rows of float32 for the float ops that spend their time in it (Softmax, LogSoftmax,
// Sigmoid): 16 lanes at a time on AVX-512, 8 on AVX2, std::exp elsewhere (docs/runtime.md,
// "Vector exp").
#pragma once

#include <cstdint>

namespace axstream::engine {

// Which form runs: chosen once, when a kernel is compiled.
enum class ExpIsa { scalar, avx2, avx512 };

// The widest form the CPU (and ONEDNN_MAX_CPU_ISA's cap, cpu_features.h) allows, or scalar
// (std::exp, the engine's results before the vector forms) where AXSTREAM_ENGINE_VECTOR_EXP=0.
ExpIsa vector_exp_isa();
const char *exp_isa_name(ExpIsa isa);

// y[j] = exp(x[j]) for j < count. The vector forms give the same bits as each other, within
// 1 ulp of the correctly rounded value; NaN stays NaN, exp(+inf) = +inf, exp(-inf) = 0, and
// results overflow to +inf and underflow through the subnormals to 0 where the true value does.
void exp_row(ExpIsa isa, const float *x, float *y, int64_t count);

// y[j] = 1 / (1 + exp(-x[j])), ONNX Sigmoid.
void sigmoid_row(ExpIsa isa, const float *x, float *y, int64_t count);

// Softmax (log = false) or LogSoftmax (log = true) over each of `rows` contiguous rows of
// `len` elements, as softmax_groups (softmax.h) with inner = 1: the row's maximum ignores NaN,
// exp(x - max) is summed, then divided by the sum (or x - max - log(sum)).
void softmax_rows(ExpIsa isa, bool log, const float *x, float *y, int64_t rows, int64_t len);

}  // namespace axstream::engine
