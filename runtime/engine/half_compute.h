// Float16/bfloat16 compute through float32: the compile-time rewrite that gives every float op
// without a half kernel Casts to float32 on its half inputs and back on its float outputs, as
// ONNX Runtime's CPU provider does, and the pass dropping the round trips that change nothing.
#pragma once

#include <map>

#include "op_registry.h"

namespace axstream::engine {

// Whether `node` reads a float16/bfloat16 value that `def`'s kernel cannot take (it computes:
// not OpDef::moves_any_dtype), so it must run in float32.
bool needs_float32_compute(const Graph &graph, const OpDef &def, const Node &node);

// Inserts a Cast to float32 before node `index` for each of its float16/bfloat16 inputs and
// rewires the node to read them; returns how many nodes were inserted (the node moves that far).
// `widened` maps each half value already cast (by an earlier node's Cast, which runs first) to
// its float32 copy: a value read by several ops is widened once.
size_t insert_float32_input_casts(Graph &graph, size_t index, std::map<int, int> &widened);

// After node `index` was compiled on float32 inputs: each float32 output becomes a new value
// that a Cast inserted after the node narrows back into the original one (so its readers and
// the graph outputs keep their dtype `half`). Outputs whose dtype a `dtype` attribute names, and
// any output when the node's first float input was float32 (Pow(float32, float16) is float32),
// stay. Returns the number of Casts inserted.
size_t insert_half_output_casts(Graph &graph, size_t index, DType half);

// The half dtype a node computing through float32 writes: that of its first float input.
DType first_float_input_dtype(const Graph &graph, const Node &node);

// MatMul/Gemm -> Cast(float32 -> half) -> Cast(half -> float32) -> Add(constant bias over the
// last axis), as torch exports Linear in float16 on 3-D input: the producer rounds its result to
// `half` and adds the bias itself (attribute `_bias_after_rounding_to`, the bias its last
// input), the same float32 operations on the same values as the unfused graph, so the result is
// bit-identical; the Add's own rounding stays after it, so round_half_after_activations can then
// move a following Relu/Clip into the producer. The product's rounding is kept, not dropped:
// round(round(x) + b) differs from round(x + b). Runs after folding, before that pass.
void fuse_half_bias_add(Graph &graph);

// Conv/Gemm/MatMul -> Cast(float32 -> half) -> Cast(half -> float32) -> Relu | Clip (bounds
// exact in `half`) -> Cast(float32 -> half): the activation reads the unrounded float32 result
// and only its own output is rounded. Rounding to nearest is monotonic and keeps half values,
// so it commutes with these activations (the result is the same half value, but for the sign
// of an exact -0 sum), and the activation can then fuse into its producer. LeakyRelu does not
// commute (alpha * x rounds differently). An inference BatchNormalization after a Conv,
// ConvTranspose or Gemm reads its unrounded result the same way, so that fold_batchnorm folds
// it: not bit-identical (one rounding where the graph has two, float32 folded weights), the
// choice ONNX Runtime makes for float16 models too. Runs after folding, before
// drop_exact_half_round_trips.
void round_half_after_activations(Graph &graph);

// Cast(float32 -> half) -> Cast(half -> float32) pairs whose float32 value is exactly
// representable in `half` (it only selects among half values: Relu, MaxPool, Max, ...) are a
// no-op: their readers read the float32 value directly. Runs after folding.
void drop_exact_half_round_trips(Graph &graph);

}  // namespace axstream::engine
