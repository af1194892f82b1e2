#include <sys/stat.h>

#include <cstring>
#include <exception>
#include <new>

#include "axstream/hal/dmabuf.h"
#include "axstream/hal/fork_reset.h"
#include "runtime_impl.h"
#include "shape_text.h"

namespace axstream::runtime {

namespace {

constexpr const char *kValidKeys =
    "aipu_cores, num_sub_devices, input_dmabuf, output_dmabuf, device_profiling, "
    "host_profiling, double_buffer, elf_in_ddr";

bool parse_bool(const std::string &key, const std::string &value) {
  if (value == "1" || value == "true" || value == "True") return true;
  if (value == "0" || value == "false" || value == "False") return false;
  throw InvalidArgument("load_model_instance: " + key + "='" + value +
                        "' is not a boolean (expected 1, 0, true or false)");
}

// Decimal digits only, as the booleans take their exact words: stol alone also took leading
// blanks and a '+' (" 1", "+1"), which a boolean refused.
int parse_count(const std::string &key, const std::string &value) {
  bool digits = !value.empty() && value.size() <= 5 &&
                value.find_first_not_of("0123456789") == std::string::npos;
  long parsed = digits ? std::stol(value) : -1;
  if (!digits || parsed > 1024)
    throw InvalidArgument("load_model_instance: " + key + "='" + value +
                          "' is not a count (expected an integer in 0..1024)");
  return static_cast<int>(parsed);
}

// Holds one of the instance's in-flight slots (ModelInstance::concurrent_runs) for a run.
class FlightSlot {
 public:
  FlightSlot(ModelInstance::Impl::RunGate &gate, int limit) : gate_(gate) {
    std::unique_lock lock(gate.flight_mutex);
    gate.flight_changed.wait(lock, [&] { return gate.in_flight < limit; });
    ++gate.in_flight;
  }
  ~FlightSlot() {
    {
      std::lock_guard lock(gate_.flight_mutex);
      --gate_.in_flight;
    }
    gate_.flight_changed.notify_one();
  }

 private:
  ModelInstance::Impl::RunGate &gate_;
};

// A child forked while other threads of the parent were inside run() inherits their slots and
// locks, held by threads it does not have: its first run() or release() would wait forever.
void renew_run_locks(ModelInstance::Impl &impl) {
  // Not destroyed: a mutex held by a thread that is gone cannot be.
  new (&impl.gate) ModelInstance::Impl::RunGate();
  hal::renew_lock(impl.profile_mutex);
  impl.fd_mappings.renew_lock_after_fork();
}
using ForkRenewedInstances = hal::ForkResetSet<ModelInstance::Impl, &renew_run_locks>;

// One side's arguments against the package's tensors: their count, each one's size and, for
// host buffers, a pointer.
void check_arguments(const ModelInstance &instance, const std::vector<Argument> &arguments,
                     const std::vector<TensorInfo> &tensors, const char *kind, bool dmabuf) {
  if (arguments.size() != tensors.size())
    throw InvalidArgument(instance.describe() + ": expected " + std::to_string(tensors.size()) +
                          " " + kind + "s, got " + std::to_string(arguments.size()));
  for (size_t t = 0; t < arguments.size(); ++t) {
    const Argument &argument = arguments[t];
    const TensorInfo &tensor = tensors[t];
    // Spelled out only for an error: every run checks every argument.
    auto what = [&] {
      return std::string(kind) + " " + std::to_string(t) + " '" + tensor.name + "' of " +
             instance.describe();
    };
    if (argument.size != 0 && argument.size != tensor.size())
      throw InvalidArgument(what() + ": expected " + std::to_string(tensor.size()) +
                            " bytes (int8 " + shape_text(tensor.shape) + "), got " +
                            std::to_string(argument.size));
    // An offset is where an fd's tensor starts; with a host pointer it would be silently
    // ignored and the run would read or write the bytes at ptr, not at ptr + offset.
    if (!dmabuf && argument.offset != 0)
      throw InvalidArgument(what() + ": offset " + std::to_string(argument.offset) +
                            " is for an fd argument (" + kind +
                            "_dmabuf=1); a host buffer starts at ptr, so pass ptr + offset");
    if (!dmabuf && !argument.ptr)
      throw InvalidArgument(
          what() + ": expected a host buffer of " + std::to_string(tensor.size()) +
          " bytes, got a null pointer" +
          (argument.fd >= 0 ? " (an fd needs " + std::string(kind) + "_dmabuf=1)" : ""));
  }
}

// Where a run reads its inputs and writes its outputs, the fd mappings it holds meanwhile, and
// the copies of inputs that share memory with an output (separate_inputs_from_outputs).
struct RunBuffers {
  std::vector<std::shared_ptr<hal::BufferFdMapping>> mappings;
  std::vector<const uint8_t *> input_base;
  std::vector<uint8_t *> output_base;
  std::vector<std::unique_ptr<uint8_t[]>> input_copies;
  uint64_t bytes_copied = 0;
};

// Maps fd arguments for this run; the engine reads and writes them in place (no copies). memfd
// and shared-memory mappings are kept from run to run (fd_mapping_cache.h).
RunBuffers map_arguments(const ModelInstance &instance, ModelInstance::Impl &m,
                         const std::vector<Argument> &inputs,
                         const std::vector<Argument> &outputs) {
  const ModelPackage &package = *m.package;
  RunBuffers buffers;
  // Sized once: growing it pushed four reallocations into every run of a 1-in, 4-out model.
  buffers.mappings.reserve((m.options.input_dmabuf ? inputs.size() : 0) +
                           (m.options.output_dmabuf ? outputs.size() : 0));
  buffers.input_base.resize(inputs.size());
  buffers.output_base.resize(outputs.size());
  for (size_t t = 0; t < inputs.size(); ++t) {
    if (m.options.input_dmabuf) {
      buffers.mappings.push_back(m.fd_mappings.map(
          inputs[t].fd, inputs[t].offset, package.inputs[t].size(), hal::CpuAccess::read, [&] {
            return "input " + std::to_string(t) + " '" + package.inputs[t].name + "' of " +
                   instance.describe();
          }));
      buffers.input_base[t] = buffers.mappings.back()->data();
    } else {
      buffers.input_base[t] = static_cast<const uint8_t *>(inputs[t].ptr);
    }
  }
  for (size_t t = 0; t < outputs.size(); ++t) {
    if (m.options.output_dmabuf) {
      buffers.mappings.push_back(m.fd_mappings.map(
          outputs[t].fd, outputs[t].offset, package.outputs[t].size(), hal::CpuAccess::write, [&] {
            return "output " + std::to_string(t) + " '" + package.outputs[t].name + "' of " +
                   instance.describe();
          }));
      buffers.output_base[t] = buffers.mappings.back()->data();
    } else {
      buffers.output_base[t] = static_cast<uint8_t *>(outputs[t].ptr);
    }
  }
  return buffers;
}

// The memory one argument occupies: an address range of this process for a host buffer, a byte
// range of a file (memfd, shared memory, dmabuf: by device and inode, so two fds of one buffer
// are the same memory) for an fd.
struct MemorySpan {
  bool in_file = false;
  dev_t device = 0;
  ino_t inode = 0;
  uint64_t begin = 0, end = 0;

  bool overlaps(const MemorySpan &other) const {
    if (in_file != other.in_file || begin >= end || other.begin >= other.end) return false;
    if (in_file && (device != other.device || inode != other.inode)) return false;
    return begin < other.end && other.begin < end;
  }
};

std::vector<MemorySpan> memory_spans(const std::vector<Argument> &arguments,
                                     const std::vector<TensorInfo> &tensors, bool dmabuf) {
  std::vector<MemorySpan> spans(arguments.size());
  for (size_t t = 0; t < arguments.size(); ++t) {
    MemorySpan &span = spans[t];
    const uint64_t size = tensors[t].size();
    if (!dmabuf) {
      span.begin = reinterpret_cast<uintptr_t>(arguments[t].ptr);
    } else {
      struct stat st {};
      if (::fstat(arguments[t].fd, &st) != 0) continue;  // mapped already: cannot happen
      span.in_file = true;
      span.device = st.st_dev;
      span.inode = st.st_ino;
      span.begin = arguments[t].offset;
    }
    span.end = span.begin + size;
  }
  return spans;
}

// A device reads its inputs into its own memory before it writes any output, so a program may
// hand run() an output that shares memory with an input (one buffer reused, or the input's
// memfd again) and get the results of separate buffers. Here the cores read the inputs in place
// while others write outputs, so such an input is copied first (counted in bytes_copied). Two
// outputs in the same memory have no such answer: InvalidArgument naming both. A host buffer
// and an fd are not compared (an fd's own mapping of a host array's memory is not seen).
void separate_inputs_from_outputs(const ModelInstance &instance, const ModelPackage &package,
                                  const InstanceOptions &options,
                                  const std::vector<Argument> &inputs,
                                  const std::vector<Argument> &outputs, RunBuffers &buffers) {
  const auto input_spans = memory_spans(inputs, package.inputs, options.input_dmabuf);
  const auto output_spans = memory_spans(outputs, package.outputs, options.output_dmabuf);
  auto label = [&](const char *kind, size_t t, const TensorInfo &tensor) {
    return std::string(kind) + " " + std::to_string(t) + " ('" + tensor.name + "')";
  };
  for (size_t t = 1; t < output_spans.size(); ++t)
    for (size_t u = 0; u < t; ++u)
      if (output_spans[t].overlaps(output_spans[u]))
        throw InvalidArgument(label("output", t, package.outputs[t]) + " of " +
                              instance.describe() + " shares memory with " +
                              label("output", u, package.outputs[u]) +
                              ": each output needs memory of its own");
  for (size_t t = 0; t < input_spans.size(); ++t) {
    bool shared = false;
    for (const MemorySpan &output : output_spans)
      shared = shared || input_spans[t].overlaps(output);
    if (!shared) continue;
    const size_t size = package.inputs[t].size();
    auto copy = std::make_unique<uint8_t[]>(size);
    std::memcpy(copy.get(), buffers.input_base[t], size);
    buffers.input_base[t] = copy.get();
    buffers.input_copies.push_back(std::move(copy));
    buffers.bytes_copied += size;
  }
}

// The jobs a run queued, each with its core, and the first error queueing them.
struct SubmittedRun {
  struct Job {
    size_t core;
    std::future<hal::CoreJobTiming> timing;
  };
  std::vector<Job> jobs;
  std::exception_ptr failure;
};

// Queues one job per batch item in contiguous slices of the batch per core: items
// [k*N/K, (k+1)*N/K) go to core k. A failure stops the queueing; the jobs already queued
// still have to be waited for.
SubmittedRun submit_batch(ModelInstance::Impl &m, const RunBuffers &buffers) {
  const ModelPackage &package = *m.package;
  const size_t batch = static_cast<size_t>(package.batch);
  const size_t used_cores = m.executors.size();
  const size_t input_count = buffers.input_base.size(), output_count = buffers.output_base.size();
  std::vector<size_t> input_item_bytes, output_item_bytes;
  input_item_bytes.reserve(package.inputs.size());
  output_item_bytes.reserve(package.outputs.size());
  for (const auto &tensor : package.inputs) input_item_bytes.push_back(tensor.size() / batch);
  for (const auto &tensor : package.outputs) output_item_bytes.push_back(tensor.size() / batch);

  SubmittedRun run;
  run.jobs.reserve(batch);
  const uint64_t macs = m.program->macs();
  try {
    for (size_t k = 0; k < used_cores; ++k) {
      size_t first = k * batch / used_cores, last = (k + 1) * batch / used_cores;
      for (size_t item = first; item < last; ++item) {
        hal::CoreJob job;
        job.macs = macs;
        engine::Executor *executor = m.executors[k].get();
        std::vector<const void *> item_inputs(input_count);
        std::vector<void *> item_outputs(output_count);
        for (size_t t = 0; t < input_count; ++t)
          item_inputs[t] = buffers.input_base[t] + item * input_item_bytes[t];
        for (size_t t = 0; t < output_count; ++t)
          item_outputs[t] = buffers.output_base[t] + item * output_item_bytes[t];
        job.work = [executor, item_inputs = std::move(item_inputs),
                    item_outputs = std::move(item_outputs)] {
          executor->run(item_inputs, item_outputs);
        };
        run.jobs.push_back({k, m.reservation->submit(m.cores[k], std::move(job))});
      }
    }
  } catch (...) {
    run.failure = std::current_exception();
  }
  return run;
}

// A run's device time, per core and in all.
struct RunTiming {
  std::vector<std::chrono::nanoseconds> per_core;
  std::chrono::nanoseconds device_total{0};
};

// Waits for every queued job (before the buffers and mappings go away), keeping the first
// failure in run.failure.
RunTiming wait_for_jobs(SubmittedRun &run, size_t used_cores) {
  RunTiming timing;
  timing.per_core.assign(used_cores, std::chrono::nanoseconds{0});
  for (auto &job : run.jobs) {
    try {
      hal::CoreJobTiming job_timing = job.timing.get();
      timing.per_core[job.core] += job_timing.device;
      timing.device_total += job_timing.device;
    } catch (...) {
      if (!run.failure) run.failure = std::current_exception();
    }
  }
  return timing;
}

// A runtime error passes through; anything else becomes an InternalError naming the instance.
[[noreturn]] void rethrow_as_run_error(const ModelInstance &instance, std::exception_ptr failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const Error &) {
    throw;
  } catch (const std::exception &error) {
    throw InternalError(instance.describe() + ": run failed: " + error.what());
  } catch (...) {
    throw InternalError(instance.describe() + ": run failed with an unknown exception");
  }
}

void record_profile(ModelInstance::Impl &m, std::chrono::steady_clock::time_point host_start,
                    RunTiming &&timing, uint64_t bytes_copied) {
  std::lock_guard lock(m.profile_mutex);
  ++m.profile.runs;
  if (m.options.device_profiling || m.options.host_profiling) {
    m.profile.host_total = std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now() - host_start);
    m.profile.device_compute = timing.device_total;
    m.profile.per_core = std::move(timing.per_core);
    // Inputs and outputs are read and written in place, but for inputs sharing an output's
    // memory (separate_inputs_from_outputs).
    m.profile.bytes_copied = bytes_copied;
  }
}

}  // namespace

InstanceOptions InstanceOptions::from_properties(const Properties &properties) {
  InstanceOptions options;
  for (const auto &[key, value] : properties) {
    if (key == "aipu_cores")
      options.aipu_cores = parse_count(key, value);
    else if (key == "num_sub_devices")
      options.num_sub_devices = parse_count(key, value);
    else if (key == "input_dmabuf")
      options.input_dmabuf = parse_bool(key, value);
    else if (key == "output_dmabuf")
      options.output_dmabuf = parse_bool(key, value);
    else if (key == "device_profiling")
      options.device_profiling = parse_bool(key, value);
    else if (key == "host_profiling")
      options.host_profiling = parse_bool(key, value);
    else if (key == "double_buffer")
      options.double_buffer = parse_bool(key, value);
    else if (key == "elf_in_ddr")
      options.elf_in_ddr = parse_bool(key, value);
    else
      throw InvalidArgument("load_model_instance: unknown property '" + key +
                            "' (valid: " + kValidKeys + ")");
  }
  return options;
}

ModelInstance::ModelInstance(ObjectKey, std::shared_ptr<Context> owner, std::unique_ptr<Impl> impl)
    : Object(std::move(owner)), impl_(std::move(impl)) {
  ForkRenewedInstances::add(impl_.get());
}

ModelInstance::~ModelInstance() { ForkRenewedInstances::remove(impl_.get()); }

std::string ModelInstance::describe() const {
  return "ModelInstance of '" + impl_->package->name + "' on " + impl_->connection->device_name();
}

const InstanceOptions &ModelInstance::options() const { return impl_->options; }

std::shared_ptr<Model> ModelInstance::model() const {
  ensure_alive();  // run() reads the model first: a released instance says so before any check
  return impl_->model;
}

int ModelInstance::concurrent_runs() const { return impl_->options.double_buffer ? 2 : 1; }

RunProfile ModelInstance::profile() const {
  ensure_alive();
  std::lock_guard lock(impl_->profile_mutex);
  return impl_->profile;
}

void ModelInstance::on_release() {
  std::unique_lock lock(impl_->gate.release_mutex);  // waits for runs in flight
  impl_->executors.clear();
  impl_->reservation = nullptr;
  impl_->fd_mappings.clear();
}

void ModelInstance::run(const std::vector<Argument> &inputs, const std::vector<Argument> &outputs) {
  const auto host_start = std::chrono::steady_clock::now();
  std::shared_lock release_lock(impl_->gate.release_mutex);
  ensure_alive();
  Impl &m = *impl_;
  check_arguments(*this, inputs, m.package->inputs, "input", m.options.input_dmabuf);
  check_arguments(*this, outputs, m.package->outputs, "output", m.options.output_dmabuf);
  RunBuffers buffers = map_arguments(*this, m, inputs, outputs);
  separate_inputs_from_outputs(*this, *m.package, m.options, inputs, outputs, buffers);
  FlightSlot slot(m.gate, concurrent_runs());
  SubmittedRun submitted = submit_batch(m, buffers);
  RunTiming timing = wait_for_jobs(submitted, m.executors.size());
  if (submitted.failure) rethrow_as_run_error(*this, submitted.failure);
  record_profile(m, host_start, std::move(timing), buffers.bytes_copied);
}

}  // namespace axstream::runtime
