// Graph rewrites: QDQ fusion (before folding, while quantised weights are still int8),
// BatchNorm folding, activation fusion, Identity removal and dead-node elimination.
#pragma once

#include "graph.h"

namespace axstream::engine {

// Runs on the imported graph, before shapes are known.
void run_prefold_passes(Graph &graph);
// Runs once shapes are inferred and constants folded.
void run_postfold_passes(Graph &graph);
// Marks nodes whose outputs nobody reads as dead.
void eliminate_dead_nodes(Graph &graph);

}  // namespace axstream::engine
