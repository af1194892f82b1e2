// Program and Executor: the public face of the engine (engine.h).
#include "axstream/runtime/engine.h"

#include <omp.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dnnl.hpp>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "axstream/error.h"
#include "compiler.h"
#include "onnx_import.h"

namespace axstream::engine {

const char *dtype_name(DType dtype) noexcept {
  switch (dtype) {
    case DType::f32:
      return "float32";
    case DType::i8:
      return "int8";
    case DType::u8:
      return "uint8";
    case DType::i32:
      return "int32";
    case DType::i64:
      return "int64";
    case DType::bool_:
      return "bool";
    case DType::f16:
      return "float16";
    case DType::bf16:
      return "bfloat16";
    case DType::f64:
      return "float64";
    case DType::i16:
      return "int16";
    case DType::u16:
      return "uint16";
    case DType::u32:
      return "uint32";
    case DType::u64:
      return "uint64";
  }
  return "unknown";
}

size_t dtype_size(DType dtype) noexcept {
  switch (dtype) {
    case DType::f32:
      return 4;
    case DType::i8:
      return 1;
    case DType::u8:
      return 1;
    case DType::i32:
      return 4;
    case DType::i64:
      return 8;
    case DType::bool_:
      return 1;
    case DType::f16:
    case DType::bf16:
      return 2;
    case DType::f64:
      return 8;
    case DType::i16:
    case DType::u16:
      return 2;
    case DType::u32:
      return 4;
    case DType::u64:
      return 8;
  }
  return 0;
}

size_t TensorDesc::element_count() const {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

namespace {

class ProgramImpl final : public Program, public std::enable_shared_from_this<ProgramImpl> {
 public:
  ProgramImpl(CompiledGraph compiled, int threads)
      : compiled_(std::move(compiled)), threads_(threads < 1 ? 1 : threads) {}
  const std::vector<TensorDesc> &inputs() const override { return compiled_.inputs; }
  const std::vector<TensorDesc> &outputs() const override { return compiled_.outputs; }
  uint64_t macs() const override { return compiled_.macs; }
  std::string describe() const override { return compiled_.description; }
  std::unique_ptr<Executor> make_executor() const override;

  const CompiledGraph &compiled() const { return compiled_; }
  int threads() const { return threads_; }

 private:
  CompiledGraph compiled_;
  int threads_;
};

class ExecutorImpl final : public Executor {
 public:
  explicit ExecutorImpl(std::shared_ptr<const ProgramImpl> program)
      : program_(std::move(program)),
        arena_(program_->compiled().arena_bytes),
        scratch_(program_->compiled().scratch_bytes),
        stream_(cpu_engine()) {
    const CompiledGraph &cg = program_->compiled();
    value_ptr_.assign(cg.graph.values.size(), nullptr);
    for (size_t v = 0; v < cg.graph.values.size(); ++v) {
      if (cg.graph.values[v].constant)
        value_ptr_[v] = const_cast<uint8_t *>(cg.graph.values[v].constant->bytes.data());
      else if (cg.arena_offset[v] >= 0)
        value_ptr_[v] = arena_.data() + cg.arena_offset[v];
    }
    const char *env = std::getenv("AXSTREAM_ENGINE_PROFILE");
    profile_ = env && (std::string(env) == "1" || std::string(env) == "steps");
    profile_steps_ = env && std::string(env) == "steps";
    in_ptrs_.resize(cg.steps.size());
    out_ptrs_.resize(cg.steps.size());
    step_shapes_.resize(cg.steps.size());
    for (size_t s = 0; s < cg.steps.size(); ++s) {
      in_ptrs_[s].resize(cg.steps[s].inputs.size());
      out_ptrs_[s].resize(cg.steps[s].outputs.size());
      step_shapes_[s].resize(cg.steps[s].outputs.size());
    }
    // A data-dependent output's shape is the one its step reports on each run.
    output_shapes_.resize(cg.outputs.size());
    output_source_.assign(cg.outputs.size(), {-1, -1});
    for (size_t o = 0; o < cg.outputs.size(); ++o) {
      output_shapes_[o] = cg.outputs[o].shape;
      if (!cg.outputs[o].data_dependent_shape) continue;
      for (size_t s = 0; s < cg.steps.size(); ++s)
        for (size_t k = 0; k < cg.steps[s].outputs.size(); ++k)
          if (cg.steps[s].outputs[k] == cg.graph.outputs[o]) {
            output_source_[o] = {static_cast<int>(s), static_cast<int>(k)};
            step_shapes_[s][k] = cg.outputs[o].shape;
          }
    }
  }

  ~ExecutorImpl() override {
    // AXSTREAM_ENGINE_PROFILE=1: time per op type over this executor's runs, to stderr
    // (=steps: per step, in step order, named by node).
    // The calling thread's CPU time too: on a loaded machine wall time mostly measures waiting
    // (oneDNN's and OpenMP's other threads are not counted, so read it with threads = 1).
    for (const auto &[op, entry] : profile_totals_)
      std::fprintf(stderr, "engine profile: %10.2f ms (CPU %10.2f ms) in %6d calls  %s\n",
                   entry.wall_ms, entry.cpu_ms, entry.calls, op.c_str());
  }

  void run(const std::vector<const void *> &inputs, const std::vector<void *> &outputs) override {
    const CompiledGraph &cg = program_->compiled();
    const Graph &g = cg.graph;
    if (inputs.size() != cg.inputs.size() || outputs.size() != cg.outputs.size())
      throw InvalidArgument(
          "executor of '" + g.source_name + "': expected " + std::to_string(cg.inputs.size()) +
          " inputs and " + std::to_string(cg.outputs.size()) + " outputs, got " +
          std::to_string(inputs.size()) + " and " + std::to_string(outputs.size()));
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!inputs[i] && cg.inputs[i].byte_size() != 0)
        throw InvalidArgument("executor of '" + g.source_name + "': input " + std::to_string(i) +
                              " is a null pointer");
      value_ptr_[g.inputs[i]] = const_cast<void *>(inputs[i]);
    }
    for (size_t o = 0; o < outputs.size(); ++o) {
      if (!outputs[o] && cg.outputs[o].byte_size() != 0)
        throw InvalidArgument("executor of '" + g.source_name + "': output " + std::to_string(o) +
                              " is a null pointer");
      if (cg.output_bound[o]) value_ptr_[g.outputs[o]] = outputs[o];
    }
    omp_set_num_threads(program_->threads());
    ExecContext ctx{scratch_.data(), &stream_, &cpu_engine(), nullptr, &kernel_states_};
    auto step_start = std::chrono::steady_clock::now();
    double step_cpu_start = profile_ ? thread_cpu_ms() : 0.0;
    for (size_t s = 0; s < cg.steps.size(); ++s) {
      const Step &step = cg.steps[s];
      for (size_t i = 0; i < step.inputs.size(); ++i)
        in_ptrs_[s][i] = step.inputs[i] >= 0 ? value_ptr_[step.inputs[i]] : nullptr;
      for (size_t i = 0; i < step.outputs.size(); ++i)
        out_ptrs_[s][i] = value_ptr_[step.outputs[i]];
      ctx.output_shapes = step_shapes_[s].data();
      step.kernel->run(ctx, in_ptrs_[s].data(), out_ptrs_[s].data());
      if (profile_) {
        auto now = std::chrono::steady_clock::now();
        const Node &n = g.nodes[step.node];
        std::string key =
            n.op_type + (step.kernel->impl.empty() ? "" : " [" + step.kernel->impl + "]");
        if (profile_steps_) {
          char order[24];
          std::snprintf(order, sizeof order, "%4zu ", s);
          key = order + key + " '" + n.label(g.values) + "'";
        }
        double cpu_now = thread_cpu_ms();
        ProfileEntry &entry = profile_totals_[key];
        entry.wall_ms += std::chrono::duration<double, std::milli>(now - step_start).count();
        entry.cpu_ms += cpu_now - step_cpu_start;
        entry.calls += 1;
        step_start = now;
        step_cpu_start = cpu_now;
      }
    }
    for (size_t o = 0; o < outputs.size(); ++o) {
      const auto [step, index] = output_source_[o];
      size_t bytes = cg.outputs[o].byte_size();
      if (step >= 0) {  // what the run wrote, at most the bound
        output_shapes_[o] = step_shapes_[step][index];
        bytes = dtype_size(cg.outputs[o].dtype);
        for (int64_t d : output_shapes_[o]) bytes *= static_cast<size_t>(d);
      }
      if (!cg.output_bound[o] && bytes != 0)
        std::memcpy(outputs[o], value_ptr_[g.outputs[o]], bytes);
    }
  }

  const std::vector<int64_t> &output_shape(size_t o) const override {
    if (o >= output_shapes_.size())
      throw InvalidArgument("executor of '" + program_->compiled().graph.source_name +
                            "': output " + std::to_string(o) + " asked for, the program has " +
                            std::to_string(output_shapes_.size()));
    return output_shapes_[o];
  }

 private:
  std::shared_ptr<const ProgramImpl> program_;
  AlignedBuffer arena_;
  AlignedBuffer scratch_;
  dnnl::stream stream_;
  KernelStates kernel_states_;  // this executor's, made on each kernel's first run
  std::vector<void *> value_ptr_;
  std::vector<std::vector<const void *>> in_ptrs_;
  std::vector<std::vector<void *>> out_ptrs_;
  std::vector<std::vector<Shape>> step_shapes_;  // ExecContext::output_shapes of each step
  std::vector<Shape> output_shapes_;             // of the last run
  // Per graph output: the (step, output index) reporting its data-dependent shape, or -1.
  std::vector<std::pair<int, int>> output_source_;
  static double thread_cpu_ms() {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) * 1e-6;
  }
  struct ProfileEntry {
    double wall_ms = 0, cpu_ms = 0;
    int calls = 0;
  };
  bool profile_ = false, profile_steps_ = false;
  std::map<std::string, ProfileEntry> profile_totals_;
};

std::unique_ptr<Executor> ProgramImpl::make_executor() const {
  return std::make_unique<ExecutorImpl>(shared_from_this());
}

std::shared_ptr<const Program> compile(const std::string &bytes, const std::string &source_name,
                                       const std::string &base_dir, const CompileOptions &options) {
  if (options.threads < 1)
    throw InvalidArgument("compiling '" + source_name + "': CompileOptions::threads is " +
                          std::to_string(options.threads) +
                          ": an executor needs at least one thread");
  Graph graph = import_onnx(bytes, source_name, base_dir, options);
  // oneDNN fixes a primitive's thread count when it is created (it runs with an explicit
  // num_threads), so the primitives are built under the program's thread count: a threads=1
  // program then really uses one core, and executors on several threads do not oversubscribe.
  struct OmpThreads {
    int previous = omp_get_max_threads();
    explicit OmpThreads(int n) { omp_set_num_threads(n); }
    ~OmpThreads() { omp_set_num_threads(previous); }
  } omp_threads(options.threads);
  auto program =
      std::make_shared<ProgramImpl>(compile_graph(std::move(graph), options), options.threads);
  const char *env = std::getenv("AXSTREAM_PRINT_GRAPH");
  if (options.print_graph || (env && std::string(env) == "1")) std::cerr << program->describe();
  return program;
}

}  // namespace

std::shared_ptr<const Program> Program::from_file(const std::string &onnx_path,
                                                  const CompileOptions &options) {
  // Only a regular file: a device would be read until memory runs out (/dev/zero) and a FIFO
  // blocks the open until some writer comes.
  std::error_code ec;
  const auto status = std::filesystem::status(onnx_path, ec);
  if (std::filesystem::is_directory(status))
    throw InvalidArgument("ONNX model '" + onnx_path + "': is a directory, not an ONNX file");
  if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
    throw InvalidArgument("ONNX model '" + onnx_path +
                          "': not a regular file (a device, FIFO or socket)");
  std::ifstream f(onnx_path, std::ios::binary);
  if (!f)
    throw InvalidArgument("ONNX model '" + onnx_path + "': cannot open file (" +
                          std::strerror(errno) + ")");
  std::ostringstream buffer;
  buffer << f.rdbuf();
  if (!f && !f.eof()) throw InvalidArgument("ONNX model '" + onnx_path + "': read failed");
  std::string dir;
  auto slash = onnx_path.rfind('/');
  if (slash != std::string::npos) dir = onnx_path.substr(0, slash);
  return compile(buffer.str(), onnx_path, dir.empty() ? "." : dir, options);
}

std::shared_ptr<const Program> Program::from_bytes(const std::string &onnx_bytes,
                                                   const std::string &source_name,
                                                   const CompileOptions &options) {
  return compile(onnx_bytes, source_name, "", options);
}

}  // namespace axstream::engine
