// Per-inference latency of an ONNX model through the engine: bench_engine MODEL [iterations]
// [threads] [INPUT=D,D,...]. Prints one line with p50/min latency and process CPU time (inputs
// are seeded bytes); INPUT=dims fixes a dynamic input, e.g. x=1,3,640,640.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <random>
#include <vector>

#include "axstream/runtime/engine.h"

int main(int argc, char **argv) {
  using namespace axstream::engine;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.onnx [iterations] [threads] [INPUT=D,D,...]\n", argv[0]);
    return 2;
  }
  int iterations = argc > 2 ? std::atoi(argv[2]) : 20;
  CompileOptions options;
  options.threads = argc > 3 ? std::atoi(argv[3]) : 1;
  if (argc > 4) {
    std::string spec = argv[4];
    auto eq = spec.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "input shape '%s': expected NAME=D,D,...\n", argv[4]);
      return 2;
    }
    std::vector<int64_t> dims;
    for (size_t at = eq + 1; at < spec.size();) {
      size_t comma = spec.find(',', at);
      dims.push_back(std::stoll(spec.substr(at, comma - at)));
      at = comma == std::string::npos ? spec.size() : comma + 1;
    }
    options.input_shapes[spec.substr(0, eq)] = dims;
  }
  auto t0 = std::chrono::steady_clock::now();
  auto program = Program::from_file(argv[1], options);
  double compile_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  std::mt19937 rng(7);
  std::vector<std::vector<uint8_t>> inputs, outputs;
  std::vector<const void *> in_ptrs;
  std::vector<void *> out_ptrs;
  for (const auto &d : program->inputs()) {
    inputs.emplace_back(d.byte_size());
    for (auto &b : inputs.back()) b = static_cast<uint8_t>(rng() % 64);
    in_ptrs.push_back(inputs.back().data());
  }
  for (const auto &d : program->outputs()) {
    outputs.emplace_back(d.byte_size());
    out_ptrs.push_back(outputs.back().data());
  }
  auto exec = program->make_executor();
  exec->run(in_ptrs, out_ptrs);  // warm-up
  std::vector<double> ms;
  // Process CPU time too: on a loaded machine wall time mostly measures waiting for a core.
  std::clock_t cpu0 = std::clock();
  for (int i = 0; i < iterations; ++i) {
    auto s = std::chrono::steady_clock::now();
    exec->run(in_ptrs, out_ptrs);
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - s).count());
  }
  double cpu_ms = 1000.0 * static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC / iterations;
  std::sort(ms.begin(), ms.end());
  std::printf(
      "%s: %d threads, compile %.0f ms, latency p50 %.2f ms, min %.2f ms, CPU %.2f ms per "
      "inference, %.2f GMACs\n",
      argv[1], options.threads, compile_ms, ms[ms.size() / 2], ms.front(), cpu_ms,
      program->macs() / 1e9);
  return 0;
}
