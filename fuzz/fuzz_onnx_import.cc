// libFuzzer target: the engine's ONNX import (axstream::engine::Program::from_bytes) on fuzzed
// ONNX bytes. Accepted graphs are also executed once on zeroed inputs (when small), since a graph
// that imports but then reads out of bounds is as much a bug as a parse crash. Rejections must be
// axstream::Error (InvalidArgument / NotImplemented); anything else is a finding.
#include <cstdint>
#include <string>
#include <vector>

#include "axstream/error.h"
#include "axstream/runtime/engine.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string bytes(reinterpret_cast<const char *>(data), size);
  try {
    // Modest graphs only: the fuzzer should spend its time on parsing, not on filling and
    // folding huge tensors (a CI run timed out at 2.3 GB RSS) or on convolutions.
    axstream::engine::CompileOptions options;
    options.max_tensor_bytes = 1 << 22;
    // NMS, NonZero and Unique run too: their buffers below are their upper bounds' size.
    options.allow_data_dependent_shapes = true;
    auto program = axstream::engine::Program::from_bytes(bytes, "fuzz.onnx", options);
    (void)program->describe();
    constexpr uint64_t kMaxMacs = 50'000'000;
    if (program->macs() > kMaxMacs) return 0;
    std::vector<std::vector<uint8_t>> in, out;
    for (const auto &t : program->inputs()) in.emplace_back(t.byte_size());
    for (const auto &t : program->outputs()) out.emplace_back(t.byte_size());
    std::vector<const void *> in_ptrs;
    std::vector<void *> out_ptrs;
    for (auto &b : in) in_ptrs.push_back(b.data());
    for (auto &b : out) out_ptrs.push_back(b.data());
    program->make_executor()->run(in_ptrs, out_ptrs);
  } catch (const axstream::Error &) {
  }
  return 0;
}
