// Per-inference latency of an ONNX model through the engine: engine-bench MODEL [iterations]
// [threads] [INPUT=D,D,...]. Prints one line with p50/min latency and process CPU time (inputs
// are seeded bytes); INPUT=dims fixes a dynamic input, e.g. x=1,3,640,640.
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "axstream/error.h"
#include "axstream/runtime/engine.h"

namespace {

void usage(FILE *to, const char *program) {
  std::fprintf(to, "usage: %s MODEL.onnx [iterations] [threads] [INPUT=D,D,...]\n", program);
}

// A count in [1, most]: atoi's 0 for "abc" ran no iteration and read past an empty vector.
bool parse_count(const char *text, long most, int &count) {
  char *end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < 1 || value > most) return false;
  count = static_cast<int>(value);
  return true;
}

}  // namespace

int main(int argc, char **argv) {
  using namespace axstream::engine;
  if (argc == 2 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h"))) {
    usage(stdout, argv[0]);
    return 0;
  }
  if (argc < 2 || argc > 5 || argv[1][0] == '-') {
    usage(stderr, argv[0]);
    return 2;
  }
  int iterations = 20;
  if (argc > 2 && !parse_count(argv[2], 1000000, iterations)) {
    std::fprintf(stderr, "engine-bench: iterations '%s': expected an integer in 1..1000000\n",
                 argv[2]);
    return 2;
  }
  CompileOptions options;
  if (argc > 3 && !parse_count(argv[3], 256, options.threads)) {
    std::fprintf(stderr, "engine-bench: threads '%s': expected an integer in 1..256\n", argv[3]);
    return 2;
  }
  if (argc > 4) {
    const std::string spec = argv[4];
    const size_t eq = spec.find('=');
    std::vector<int64_t> dims;
    bool valid = eq != std::string::npos && eq > 0 && eq + 1 < spec.size();
    for (size_t at = eq + 1; valid && at <= spec.size();) {
      const size_t comma = std::min(spec.find(',', at), spec.size());
      int dim = 0;
      valid = parse_count(spec.substr(at, comma - at).c_str(), 1L << 30, dim);
      dims.push_back(dim);
      at = comma + 1;
    }
    if (!valid) {
      std::fprintf(stderr, "engine-bench: input shape '%s': expected NAME=D,D,... (dims >= 1)\n",
                   argv[4]);
      return 2;
    }
    options.input_shapes[spec.substr(0, eq)] = dims;
  }
  try {
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
  } catch (const axstream::Error &error) {
    std::fprintf(stderr, "engine-bench: %s: %s\n", argv[1], error.what());
    return 1;
  }
  return 0;
}
