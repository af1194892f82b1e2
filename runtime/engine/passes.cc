#include "passes.h"

#include <set>

namespace axstream::engine {
namespace {

// Identity and inference-mode Dropout forward their input: readers are rewired to it.
void remove_identities(Graph &graph) {
  std::set<int> graph_outputs(graph.outputs.begin(), graph.outputs.end());
  std::vector<int> replace(graph.values.size());
  for (size_t v = 0; v < replace.size(); ++v) replace[v] = static_cast<int>(v);
  for (Node &n : graph.nodes) {
    if (n.dead || !n.domain.empty()) continue;
    for (int &in : n.inputs)
      if (in >= 0) in = replace[in];
    bool forward = n.op_type == "Identity" ||
                   (n.op_type == "Dropout" && n.outputs.size() == 1 && n.inputs.size() == 1);
    if (!forward || n.inputs.empty() || n.inputs[0] < 0 || graph_outputs.count(n.outputs[0]))
      continue;
    replace[n.outputs[0]] = n.inputs[0];
    n.dead = true;
  }
}

}  // namespace

void eliminate_dead_nodes(Graph &graph) {
  bool changed = true;
  while (changed) {
    changed = false;
    std::vector<int> uses = graph.use_counts();
    for (Node &n : graph.nodes) {
      if (n.dead) continue;
      bool used = false;
      for (int v : n.outputs)
        if (v >= 0 && uses[v] > 0) used = true;
      if (!used) {
        n.dead = true;
        changed = true;
      }
    }
  }
}

void run_prefold_passes(Graph &graph) { (void)graph; }

void run_postfold_passes(Graph &graph) { remove_identities(graph); }

}  // namespace axstream::engine
