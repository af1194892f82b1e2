// The C++ runtime API: the same objects and behaviour as the axelera.runtime Python API
// (Context, Connection, Model, ModelInstance, TensorInfo, DeviceInfo), over the HAL and engine.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "axstream/error.h"
#include "axstream/hal/device.h"
#include "axstream/runtime/engine.h"

namespace axstream::runtime {

using hal::BoardType;
using hal::DeviceInfo;
using Properties = std::map<std::string, std::string>;

// A model input or output as the device sees it: padded shape, padding per dimension
// (numpy.pad style), quantisation. Comes from the package's manifest.json.
struct TensorInfo {
  std::vector<int64_t> shape;
  engine::DType dtype = engine::DType::i8;
  std::string name;
  std::vector<std::pair<int64_t, int64_t>> padding;  // empty == no padding
  double scale = 1.0;
  int zero_point = 0;

  size_t size() const;                          // bytes of the padded tensor
  std::vector<int64_t> unpadded_shape() const;  // shape minus padding
};

class Context;

// Base of every runtime object. All objects are owned by the Context that created them: releasing
// an object releases its children; any call on a released object throws InvalidArgument naming it.
class Object : public std::enable_shared_from_this<Object> {
 public:
  virtual ~Object();
  Object(const Object &) = delete;
  Object &operator=(const Object &) = delete;

  std::shared_ptr<Context> context() const;
  void release();
  bool released() const;
  // "Context", "Connection to metis-0:1:0", "Model 'resnet50'", ... for error messages.
  virtual std::string describe() const = 0;

 protected:
  explicit Object(std::shared_ptr<Context> owner);
  void adopt(const std::shared_ptr<Object> &child);
  void ensure_alive() const;    // throws InvalidArgument("<describe()> was released")
  virtual void on_release() {}  // free this object's own resources (children already released)

 private:
  // Context and Connection make objects that other objects own too (an instance is a child of
  // both its Connection and its Model).
  friend class Context;
  friend class Connection;

  std::shared_ptr<Context> owner_;  // null for the Context itself
  mutable std::mutex mutex_;
  std::vector<std::weak_ptr<Object>> children_;
  bool released_ = false;
};

class Connection;
class Model;
class ModelInstance;

// What the constructors of Model, Connection and ModelInstance take first, so that only Context
// and Connection make them (load_model, device_connect, load_model_instance): those adopt each
// new object, so that releasing its parent releases it. (Before the C++ API audit a program could
// std::make_shared a Model the Context did not own, one with no Context whose context() was the
// Model itself, or one without a package that crashed.)
class ObjectKey {
  friend class Context;
  friend class Connection;
  ObjectKey() {}  // user-provided: `ObjectKey{}` is no aggregate initialisation outside them
};

class Context final : public Object {
 public:
  static std::shared_ptr<Context> create();
  std::string describe() const override { return "Context"; }

  std::vector<DeviceInfo> list_devices() const;
  // Returns true when applied, false while pending (see device_ready).
  bool configure_device(const DeviceInfo &device, const Properties &settings);
  bool device_ready(const DeviceInfo &device) const;
  Properties read_device_configuration(const DeviceInfo &device) const;
  // device == nullptr: the first device with num_sub_devices free cores.
  std::shared_ptr<Connection> device_connect(const DeviceInfo *device = nullptr,
                                             int num_sub_devices = 1,
                                             const Properties &properties = {});
  // `path` is a package directory or its model.json.
  std::shared_ptr<Model> load_model(const std::string &path);

 private:
  struct PrivateTag {};

 public:
  explicit Context(PrivateTag);
};

struct ModelPackage;  // runtime/model_package.h

class Model final : public Object {
 public:
  Model(ObjectKey, std::shared_ptr<Context> owner, std::shared_ptr<const ModelPackage> package);
  ~Model() override;
  std::string describe() const override;
  const std::string &name() const;
  std::vector<TensorInfo> inputs() const;
  std::vector<TensorInfo> outputs() const;
  // preamble_graph, postamble_graph (relative paths, "" when absent), input_tensor_layout.
  Properties properties() const;
  std::shared_ptr<const ModelPackage> package() const;
  // The compiled core graph (batch 1): compiled on first use, then shared by every instance.
  std::shared_ptr<const engine::Program> program() const;

 private:
  void on_release() override;
  std::shared_ptr<const ModelPackage> package_;
  mutable std::mutex program_mutex_;
  mutable std::shared_ptr<const engine::Program> program_;
};

// load_model_instance's kwargs. Unknown keys or bad values -> InvalidArgument.
struct InstanceOptions {
  int aipu_cores = 0;       // 0: as many as the connection has, at most the model's batch
  int num_sub_devices = 0;  // 0: as aipu_cores
  bool input_dmabuf = false;
  bool output_dmabuf = false;
  bool device_profiling = false;
  bool host_profiling = false;
  bool double_buffer = false;
  bool elf_in_ddr = true;
  static InstanceOptions from_properties(const Properties &properties);
};

// One tensor argument of run(): host memory in `ptr`, or a dmabuf/memfd in `fd` (+offset).
// `offset` belongs to the fd: with host memory it must be 0 (else InvalidArgument).
// `size` 0 means unchecked, otherwise it must equal the TensorInfo size.
struct Argument {
  void *ptr = nullptr;
  int fd = -1;
  size_t offset = 0;
  size_t size = 0;
};

// Timing of the last run() when device_profiling or host_profiling is on (zeros otherwise);
// `runs` counts every completed run().
struct RunProfile {
  std::chrono::nanoseconds host_total{0};      // whole run() on the host
  std::chrono::nanoseconds device_compute{0};  // summed over cores
  std::vector<std::chrono::nanoseconds> per_core;
  uint64_t bytes_copied = 0;  // host copies made by the runtime for this run
  uint64_t runs = 0;          // runs so far
};

class Connection final : public Object {
 public:
  std::string describe() const override;
  const std::string &device_name() const;
  int num_sub_devices() const;
  std::shared_ptr<ModelInstance> load_model_instance(const std::shared_ptr<Model> &model,
                                                     const Properties &properties = {});
  std::shared_ptr<ModelInstance> load_model_instance(const std::shared_ptr<Model> &model,
                                                     const InstanceOptions &options);

  struct Impl;
  Connection(ObjectKey, std::shared_ptr<Context> owner, std::unique_ptr<Impl> impl);
  ~Connection() override;
  Impl &impl();

 private:
  void on_release() override;
  std::unique_ptr<Impl> impl_;
};

class ModelInstance final : public Object {
 public:
  std::string describe() const override;
  const InstanceOptions &options() const;
  std::shared_ptr<Model> model() const;
  // Thread-safe; blocks until the outputs are written. Throws InvalidArgument on wrong counts,
  // sizes or fds, naming the tensor and what was expected.
  void run(const std::vector<Argument> &inputs, const std::vector<Argument> &outputs);
  // How many run() calls execute at once: 1, or 2 with double_buffer (the next run's inputs
  // load while the current one computes). Further callers wait in run() for a slot.
  int concurrent_runs() const;
  RunProfile profile() const;

  struct Impl;
  ModelInstance(ObjectKey, std::shared_ptr<Context> owner, std::unique_ptr<Impl> impl);
  ~ModelInstance() override;

 private:
  void on_release() override;
  std::unique_ptr<Impl> impl_;
};

}  // namespace axstream::runtime
