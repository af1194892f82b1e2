// Each installed C++ runtime header compiles on its own (included first, nothing before it) and
// warning-free under the warnings C++ projects turn into errors (-Wall -Wextra -Wpedantic -Wshadow
// -Wconversion -Wsign-conversion -Wold-style-cast -Werror), in C++17 and C++20: meson builds this
// file once per header (AXSTREAM_HEADER) and standard. The program then uses the headers' inline
// code as an application would and checks what it answers.
#include AXSTREAM_HEADER

#include <cstdio>

#include "axstream/runtime/model_package.h"

int main() {
  int failures = 0;
  auto check = [&failures](bool condition, const char *what) {
    if (!condition) {
      std::fprintf(stderr, "CHECK(%s) failed\n", what);
      ++failures;
    }
  };
  axstream::runtime::ModelPackage package;
  package.directory = "/";
  package.core_graph = "core.onnx";
  check(package.core_graph_path() == "/core.onnx", "path_of at the root");
  package.directory = "/models/resnet";
  check(package.path_of("model.json") == "/models/resnet/model.json", "path_of");
  axstream::engine::TensorDesc desc;
  desc.dtype = axstream::engine::DType::f32;
  desc.shape = {1, 3, 2};
  check(desc.byte_size() == 24, "TensorDesc::byte_size");
  axstream::runtime::TensorInfo info;
  info.shape = {1, 4, 4, 8};
  info.padding = {{0, 0}, {1, 1}, {0, 0}, {0, 4}};
  check(info.size() == 128, "TensorInfo::size");
  check(info.unpadded_shape() == std::vector<int64_t>{1, 2, 4, 4}, "TensorInfo::unpadded_shape");
  try {
    throw axstream::InvalidArgument("probe");
  } catch (const axstream::Error &error) {
    check(error.kind() == axstream::ErrorKind::InvalidArgument, "ErrorKind");
  }
  return failures == 0 ? 0 : 1;
}
