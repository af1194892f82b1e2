// A control-flow node's subgraph (an If branch, a Loop or Scan body) compiled as a program of its
// own, with static shapes from the node's inputs, and run by the node's kernel in its scratch.
#pragma once

#include <string>
#include <vector>

#include "compiler.h"

namespace axstream::engine {

class Subgraph {
 public:
  // `formal` gives the dtype and shape of each of the body's own inputs (a constant one is
  // folded into the body: Loop's condition, true whenever the body runs); `captured` the
  // outer-scope values the body reads, in the order of its last Graph::captured_inputs inputs
  // (constant ones fold into it too). `what` names the node and attribute, for errors.
  Subgraph(const Graph &body, const std::vector<Value> &formal,
           const std::vector<const Value *> &captured, const std::string &what);

  const std::vector<TensorDesc> &outputs() const { return compiled_.outputs; }
  // Output i's value when the body computes it at compile time, else nullptr.
  const Tensor *constant_output(size_t i) const;
  // Bytes of scratch run() needs (its arena and its kernels' scratch), a multiple of 64.
  size_t workspace_bytes() const { return workspace_bytes_; }
  uint64_t macs() const { return compiled_.macs; }

  // inputs: one pointer per formal input, then one per captured value; outputs: one per body
  // output, none of them overlapping an input. `workspace`: workspace_bytes(), 64-byte aligned.
  void run(ExecContext &ctx, uint8_t *workspace, const std::vector<const void *> &inputs,
           const std::vector<void *> &outputs) const;

 private:
  CompiledGraph compiled_;
  // For each input of the compiled program, its index in run()'s inputs.
  std::vector<size_t> input_source_;
  size_t arena_bytes_ = 0;  // compiled_.arena_bytes rounded up to 64
  size_t workspace_bytes_ = 0;
};

inline size_t round_up_64(size_t bytes) { return (bytes + 63) / 64 * 64; }

}  // namespace axstream::engine
