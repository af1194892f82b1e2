// Turns an imported graph into an executable plan: shape inference with constant folding,
// the optimisation passes, kernel compilation and memory planning.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "op_registry.h"

namespace axstream::engine {

struct Step {
  int node = -1;
  std::unique_ptr<Kernel> kernel;
  std::vector<int> inputs;  // value ids (-1: omitted)
  std::vector<int> outputs;
  bool in_place = false;  // output 0 shares the buffer of Kernel::output_may_overwrite_input
};

struct CompiledGraph {
  Graph graph;
  std::vector<Step> steps;
  // Per value: byte offset in the executor's arena, or -1 (input, constant, bound output).
  std::vector<int64_t> arena_offset;
  size_t arena_bytes = 0;
  size_t scratch_bytes = 0;
  uint64_t macs = 0;
  std::vector<TensorDesc> inputs, outputs;
  // Graph output i is written straight into the caller's buffer by its producer.
  std::vector<bool> output_bound;
  std::string description;
};

CompiledGraph compile_graph(Graph graph, const CompileOptions &options);

// Shape inference and constant folding over all live nodes, in order. A node whose output
// shape depends on run-time values is NotImplemented unless allow_data_dependent
// (CompileOptions::allow_data_dependent_shapes); folded, it takes its actual shape.
void infer_and_fold(Graph &graph, size_t max_tensor_bytes, bool allow_data_dependent = false);

// The oneDNN CPU engine shared by every program (created once).
dnnl::engine &cpu_engine();

// An engine setting that is on unless the environment variable `name` is "0" (read at each
// compile, so tests can build programs with and without it side by side); a value other than
// unset, "1" or "0" throws InvalidConfiguration naming the setting and the value.
bool setting_not_zero(const char *name);

}  // namespace axstream::engine
