// oneDNN-backed LSTM, GRU and vanilla RNN layers (ONNX LSTM/GRU/RNN nodes oneDNN expresses
// exactly), with the weights reordered into oneDNN's layout once at compile time.
#pragma once

#include "op_registry.h"

namespace axstream::engine {

enum class RnnCell { lstm, gru, rnn };

// Sigmoid/tanh-only cells (LSTM, GRU) ignore this; a vanilla RNN applies it to its one gate.
enum class RnnActivationKind { tanh, relu, sigmoid };

// One ONNX recurrent node's geometry: X is (seq, batch, input) — (batch, seq, input) when
// batch_major (ONNX layout = 1) — and the outputs follow the same layout.
struct DnnlRnnParams {
  RnnCell cell = RnnCell::lstm;
  RnnActivationKind activation = RnnActivationKind::tanh;
  bool linear_before_reset = false;  // GRU
  int64_t seq = 0, batch = 0, input = 0, hidden = 0, directions = 1;
  bool reverse = false;  // one direction, from the last step to the first
  bool batch_major = false;
  bool has_initial_h = false, has_initial_c = false, has_peepholes = false;
  bool has_y = false, has_y_h = false, has_y_c = false;
};

// Runs one layer between the node's buffers; scratch is at least scratch_bytes (64-aligned).
class DnnlRnn {
 public:
  virtual ~DnnlRnn() = default;
  // Pointers of absent optional inputs/outputs are null (has_* in the params said which).
  virtual void run(ExecContext &ctx, const float *x, const float *initial_h, const float *initial_c,
                   float *y, float *y_h, float *y_c, void *scratch) const = 0;
  size_t scratch_bytes = 0;
  std::string impl;
};

// w, r, b, p in ONNX's layout: W (dirs, gates*hidden, input), R (dirs, gates*hidden, hidden),
// B (dirs, 2*gates*hidden) or null, P (dirs, 3*hidden) or null. nullptr when oneDNN has no
// implementation for this layer (the reference kernel runs instead).
std::unique_ptr<DnnlRnn> make_dnnl_rnn(const DnnlRnnParams &p, const float *w, const float *r,
                                       const float *b, const float *peepholes);

}  // namespace axstream::engine
