// The engine's ceiling: oneDNN's own int8 primitives alone, chained in the order and with the
// shapes of an engine-compiled int8 graph, so the engine's overhead can be measured against the
// best oneDNN does on the same layers (docs/performance.md "Engine vs oneDNN's convolutions
// alone").
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace axstream::engine {
struct CompiledGraph;
}

namespace axstream::bench {

class DnnlCeiling {
 public:
  // One int8 oneDNN primitive per QConv (u8 source, s8 weights in oneDNN's preferred format
  // reordered once, NHWC activations, per-channel output scales, bias, the engine's fused
  // activation as a post-op, u8 output; the convolution whose output a residual QAdd reads
  // last takes the add as a sum post-op in the engine's bit-exact post-op chain for the add's
  // scales (residual_sum_chain.h), in place on the other operand's buffer), int8 MaxPool
  // and QGlobalAveragePool (pooling primitives) and a 2-D QGemm (u8 x s8 inner product). Every
  // other op is left out and listed by contents(). Buffers are allocated and filled here; run()
  // only executes. Primitives take the calling thread's OpenMP thread count: build and run on
  // the same thread after omp_set_num_threads(n). with_zero_points: the int8 convolutions take
  // the package's source and output zero points (as the engine runs them) instead of none.
  static std::unique_ptr<DnnlCeiling> build(const engine::CompiledGraph &graph,
                                            bool with_zero_points = false);
  virtual ~DnnlCeiling() = default;
  virtual void run() = 0;
  // What the chain holds and what it leaves out, e.g. "53 conv (16 with sum post-op), ...".
  virtual std::string contents() const = 0;

  // One primitive of the chain: the engine step it stands for (its index in the compiled
  // graph's step order and the node's label, as AXSTREAM_ENGINE_PROFILE=steps names them),
  // oneDNN's implementation and, after time_layers(), its CPU time.
  struct Layer {
    size_t step = 0;
    std::string op, label, impl;
    double cpu_ms = 0;  // the calling thread's CPU time per run
  };
  // Runs the chain `runs` times timing each primitive by the calling thread's CPU time
  // (so read it with one OpenMP thread); per layer the mean over the runs.
  virtual std::vector<Layer> time_layers(int runs) = 0;
};

}  // namespace axstream::bench
