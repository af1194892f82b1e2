// Reads an ONNX ModelProto into the engine's graph IR (initializers, external data,
// Constant nodes, graph input shapes fixed by CompileOptions::input_shapes).
#pragma once

#include <string>

#include "graph.h"

namespace axstream::engine {

// `base_dir` is where external data files are looked up ("" for none).
Graph import_onnx(const std::string &onnx_bytes, const std::string &source_name,
                  const std::string &base_dir, const CompileOptions &options);

// Converts one TensorProto (exposed for the conformance test's .pb files).
Tensor tensor_from_onnx_bytes(const std::string &bytes, const std::string &source_name);

}  // namespace axstream::engine
