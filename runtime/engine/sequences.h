// Sequences and optionals, resolved when a program compiles: a sequence is an ordered list of
// tensor values whose count and shapes are fixed, an optional holds one value or none, and the
// ops on them become tensor ops (Identity, Split, Squeeze, Unsqueeze, Concat), constants or
// nothing at all, so no kernel ever sees one.
#pragma once

#include <cstddef>
#include <string>

#include "graph.h"

namespace axstream::engine {

// Whether `op_type` (of the ONNX domain) is one of the sequence and optional ops resolved here
// (SequenceConstruct ... SequenceMap, Optional, OptionalHasElement, OptionalGetElement).
bool is_sequence_op(const std::string &op_type);

// A sequence or optional op (SequenceInsert, SplitToSequence, OptionalGetElement, ...), a node
// whose subgraph takes or gives one (an If branch, a Loop body), or any node reading a sequence
// or optional value: lower_sequence_node must resolve it first.
bool is_sequence_node(const Graph &graph, const Node &node);

// Resolves node `index`: its sequence and optional outputs get their elements, and it is marked
// dead, or it is rewritten into a tensor op at `index` (with any nodes it needs inserted around
// it: those before it at `index`), which the caller infers next. Every node before `index` has
// been inferred. An If over sequences inlines the branch its (constant) condition takes; a Loop
// over them is unrolled (a constant trip count up to 64, the iteration number a constant in each
// copy of its body, a condition output that is a constant or the condition input). A position,
// index, condition or trip count that is not a constant is NotImplemented naming the node and
// the input; an out-of-range position InvalidArgument naming the node and the position; any
// other node reading a sequence or optional is NotImplemented naming it and the value.
void lower_sequence_node(Graph &graph, size_t index);

// Each sequence or optional graph output becomes the tensors it holds, named by the rule
// docs/runtime.md gives ("y[0]", "y[1]", ... for sequence "y"; "o" for an optional tensor "o"
// that has one; nothing for an empty one), through Identity nodes appended to the graph, which
// the caller infers. A subgraph's sequence or optional output is NotImplemented, naming it.
void expand_sequence_outputs(Graph &graph);

}  // namespace axstream::engine
