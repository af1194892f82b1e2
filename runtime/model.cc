#include "axstream/hal/fork_reset.h"
#include "axstream/runtime/model_package.h"

namespace axstream::runtime {

// program_mutex_ is held while the core graph compiles: a child forked meanwhile compiles it
// itself instead of waiting for a thread it does not have.
Model::Model(ObjectKey, std::shared_ptr<Context> owner, std::shared_ptr<const ModelPackage> package)
    : Object(std::move(owner)), package_(std::move(package)) {
  hal::ForkRenewedMutexes::add(&program_mutex_);
}

Model::~Model() { hal::ForkRenewedMutexes::remove(&program_mutex_); }

std::string Model::describe() const { return "Model '" + package_->name + "'"; }

const std::string &Model::name() const { return package_->name; }

std::vector<TensorInfo> Model::inputs() const {
  ensure_alive();
  return package_->inputs;
}

std::vector<TensorInfo> Model::outputs() const {
  ensure_alive();
  return package_->outputs;
}

Properties Model::properties() const {
  ensure_alive();
  return {{"preamble_graph", package_->preamble_graph},
          {"postamble_graph", package_->postamble_graph},
          {"input_tensor_layout", package_->input_tensor_layout}};
}

std::shared_ptr<const ModelPackage> Model::package() const {
  ensure_alive();
  return package_;
}

std::shared_ptr<const engine::Program> Model::program() const {
  ensure_alive();
  std::lock_guard lock(program_mutex_);
  if (!program_) {
    engine::CompileOptions options;
    options.threads = 1;  // one simulated AIPU core runs one executor on one host thread
    program_ = engine::Program::from_file(package_->core_graph_path(), options);
    // The loader checked core.onnx's declared I/O; the compiled program must agree with it.
    auto check = [&](const std::vector<engine::TensorDesc> &descs,
                     const std::vector<TensorInfo> &tensors, const char *kind) {
      if (descs.size() != tensors.size())
        throw InvalidArgument(describe() + ": compiled core graph " + package_->core_graph_path() +
                              " has " + std::to_string(descs.size()) + " " + kind + "s, manifest " +
                              std::to_string(tensors.size()));
      for (size_t t = 0; t < descs.size(); ++t) {
        const engine::DType dtype = descs[t].dtype;
        if (dtype == engine::DType::f16 || dtype == engine::DType::bf16 ||
            dtype == engine::DType::f64 || dtype == engine::DType::i16 ||
            dtype == engine::DType::u16 || dtype == engine::DType::u32 ||
            dtype == engine::DType::u64)
          throw InvalidArgument(describe() + ": compiled core graph " + kind + " " +
                                std::to_string(t) + " '" + descs[t].name + "' is " +
                                engine::dtype_name(dtype) +
                                ": a model package's device tensors are int8 (manifest "
                                "dtypes), so its core graph's I/O cannot be float16, bfloat16, "
                                "float64, int16, uint16, uint32 or uint64; cast it in the "
                                "preamble/postamble graph");
        size_t per_item = tensors[t].size() / static_cast<size_t>(package_->batch);
        if (descs[t].byte_size() != per_item)
          throw InvalidArgument(
              describe() + ": compiled core graph " + kind + " " + std::to_string(t) + " '" +
              descs[t].name + "' is " + std::to_string(descs[t].byte_size()) + " bytes, expected " +
              std::to_string(per_item) + " (one batch item of " + tensors[t].name + ")");
      }
    };
    try {
      check(program_->inputs(), package_->inputs, "input");
      check(program_->outputs(), package_->outputs, "output");
    } catch (...) {
      program_.reset();
      throw;
    }
  }
  return program_;
}

void Model::on_release() {
  std::lock_guard lock(program_mutex_);
  program_.reset();
}

}  // namespace axstream::runtime
