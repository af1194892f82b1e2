#include "subgraph.h"

#include <cstring>

namespace axstream::engine {

Subgraph::Subgraph(const Graph &body, const std::vector<Value> &formal,
                   const std::vector<const Value *> &captured, const std::string &what) {
  const size_t own_inputs = body.inputs.size() - body.captured_inputs;
  if (own_inputs != formal.size() || body.captured_inputs != captured.size())
    throw InvalidArgument(what + ": the subgraph declares " + std::to_string(own_inputs) +
                          " inputs, the node gives it " + std::to_string(formal.size()));
  Graph graph = body;
  graph.source_name = what;
  std::vector<int> inputs;
  for (size_t i = 0; i < graph.inputs.size(); ++i) {
    const Value &given = i < own_inputs ? formal[i] : *captured[i - own_inputs];
    Value &v = graph.values[static_cast<size_t>(graph.inputs[i])];
    v.dtype = given.dtype;
    v.shape = given.shape;
    v.shape_known = true;
    v.constant = given.constant;
    if (v.constant) continue;
    inputs.push_back(graph.inputs[i]);
    input_source_.push_back(i);
  }
  graph.inputs = std::move(inputs);
  CompileOptions options;
  options.max_tensor_bytes = body.max_tensor_bytes;
  compiled_ = compile_graph(std::move(graph), options);
  arena_bytes_ = round_up_64(compiled_.arena_bytes);
  workspace_bytes_ = arena_bytes_ + round_up_64(compiled_.scratch_bytes);
}

const Tensor *Subgraph::constant_output(size_t i) const {
  const Graph &g = compiled_.graph;
  return g.values[static_cast<size_t>(g.outputs.at(i))].constant.get();
}

void Subgraph::run(ExecContext &ctx, uint8_t *workspace, const std::vector<const void *> &inputs,
                   const std::vector<void *> &outputs) const {
  const CompiledGraph &cg = compiled_;
  const Graph &g = cg.graph;
  std::vector<void *> value_ptr(g.values.size(), nullptr);
  for (size_t v = 0; v < g.values.size(); ++v) {
    if (g.values[v].constant)
      value_ptr[v] = const_cast<uint8_t *>(g.values[v].constant->bytes.data());
    else if (cg.arena_offset[v] >= 0)
      value_ptr[v] = workspace + cg.arena_offset[v];
  }
  for (size_t i = 0; i < g.inputs.size(); ++i)
    value_ptr[static_cast<size_t>(g.inputs[i])] = const_cast<void *>(inputs[input_source_[i]]);
  for (size_t o = 0; o < g.outputs.size(); ++o)
    if (cg.output_bound[o]) value_ptr[static_cast<size_t>(g.outputs[o])] = outputs[o];
  ExecContext sub = ctx.inner(workspace + arena_bytes_);
  std::vector<const void *> step_inputs;
  std::vector<void *> step_outputs;
  for (const Step &step : cg.steps) {
    step_inputs.clear();
    step_outputs.clear();
    for (int v : step.inputs) step_inputs.push_back(v >= 0 ? value_ptr[v] : nullptr);
    for (int v : step.outputs) step_outputs.push_back(value_ptr[v]);
    step.kernel->run(sub, step_inputs.data(), step_outputs.data());
  }
  // An output the body reads straight from an input or a constant (a loop-carried value passed
  // through), or lists twice, is copied; memmove, as a caller may hand the same buffer.
  for (size_t o = 0; o < g.outputs.size(); ++o)
    if (!cg.output_bound[o] && cg.outputs[o].byte_size() != 0)
      std::memmove(outputs[o], value_ptr[static_cast<size_t>(g.outputs[o])],
                   cg.outputs[o].byte_size());
}

}  // namespace axstream::engine
