// A copy of a compiled model package whose core graph ends in a Cast of its first output to
// another ONNX type (float16, bfloat16): for the tests that such a graph is refused at load.
#pragma once

#include <onnx/onnx_pb.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace axstream::test {

// Writes the copy of the package at `source` into the existing directory `dir`; returns the
// name of the output the Cast now makes.
inline std::string write_package_with_cast_output(const std::filesystem::path &source,
                                                  const std::filesystem::path &dir, int onnx_type) {
  for (const char *file : {"model.json", "manifest.json"})
    std::filesystem::copy_file(source / file, dir / file);
  onnx::ModelProto proto;
  {
    std::ifstream in(source / "core.onnx", std::ios::binary);
    if (!proto.ParseFromIstream(&in))
      throw std::runtime_error((source / "core.onnx").string() + ": not an ONNX model");
  }
  auto *graph = proto.mutable_graph();
  const std::string output = graph->output(0).name();
  for (auto &node : *graph->mutable_node())
    for (auto &name : *node.mutable_output())
      if (name == output) name = output + "_int8";
  auto *cast = graph->add_node();
  cast->set_op_type("Cast");
  cast->set_name("to_" + std::string(onnx::TensorProto::DataType_Name(
                             static_cast<onnx::TensorProto::DataType>(onnx_type))));
  cast->add_input(output + "_int8");
  cast->add_output(output);
  auto *to = cast->add_attribute();
  to->set_name("to");
  to->set_type(onnx::AttributeProto::INT);
  to->set_i(onnx_type);
  std::ofstream out(dir / "core.onnx", std::ios::binary);
  if (!proto.SerializeToOstream(&out))
    throw std::runtime_error((dir / "core.onnx").string() + ": cannot write");
  return output;
}

}  // namespace axstream::test
