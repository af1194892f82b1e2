#include "graph.h"

namespace axstream::engine {

std::string Node::label(const std::vector<Value> &values) const {
  if (!name.empty()) return name;
  std::string s = op_type;
  if (!outputs.empty() && outputs[0] >= 0) s += " -> " + values[outputs[0]].name;
  return s;
}

std::vector<int> Graph::use_counts() const {
  std::vector<int> counts(values.size(), 0);
  for (const Node &n : nodes) {
    if (n.dead) continue;
    for (int v : n.inputs)
      if (v >= 0) ++counts[v];
  }
  for (int v : outputs) ++counts[v];
  return counts;
}

std::vector<int> Graph::producers() const {
  std::vector<int> producer(values.size(), -1);
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].dead) continue;
    for (int v : nodes[i].outputs)
      if (v >= 0) producer[v] = static_cast<int>(i);
  }
  return producer;
}

}  // namespace axstream::engine
