#include <algorithm>

#include "axstream/hal/fork_reset.h"
#include "runtime_impl.h"

namespace axstream::runtime {

Connection::Connection(ObjectKey, std::shared_ptr<Context> owner, std::unique_ptr<Impl> impl)
    : Object(std::move(owner)), impl_(std::move(impl)) {
  hal::ForkRenewedMutexes::add(&impl_->mutex);
}

Connection::~Connection() { hal::ForkRenewedMutexes::remove(&impl_->mutex); }

Connection::Impl &Connection::impl() { return *impl_; }

std::string Connection::describe() const { return "Connection to " + impl_->device_name; }

const std::string &Connection::device_name() const { return impl_->device_name; }

int Connection::num_sub_devices() const { return impl_->num_cores; }

void Connection::on_release() {
  std::lock_guard lock(impl_->mutex);
  impl_->reservation.reset();
}

std::shared_ptr<ModelInstance> Connection::load_model_instance(const std::shared_ptr<Model> &model,
                                                               const Properties &properties) {
  ensure_alive();
  return load_model_instance(model, InstanceOptions::from_properties(properties));
}

std::shared_ptr<ModelInstance> Connection::load_model_instance(const std::shared_ptr<Model> &model,
                                                               const InstanceOptions &options) {
  ensure_alive();
  if (!model) throw InvalidArgument(describe() + ": load_model_instance needs a model, got none");
  if (model->released()) throw InvalidArgument(model->describe() + " was released");
  if (model->context() != context())
    throw InvalidArgument(describe() + ": " + model->describe() + " belongs to another Context");
  auto package = model->package();

  if (options.aipu_cores < 0 || options.num_sub_devices < 0)
    throw InvalidArgument(describe() + ": aipu_cores and num_sub_devices must be >= 0");
  // Axelera's two kwargs say different things: num_sub_devices is how many of the connection's
  // sub-devices run the batch, aipu_cores how much L2 (in cores' worth) the model gets. So they
  // may differ (programs written for Metis pass num_sub_devices=1, aipu_cores=4 on a one-core
  // connection), and only num_sub_devices is bounded by the connection. The simulator has no L2
  // to allocate: aipu_cores picks the cores only when num_sub_devices is not given and it fits.
  if (options.num_sub_devices > impl_->num_cores)
    throw InvalidArgument(describe() + " has " + std::to_string(impl_->num_cores) +
                          " sub-devices, " + model->describe() +
                          " asked for num_sub_devices=" + std::to_string(options.num_sub_devices));
  const int device_cores = impl_->device->info().subdevice_count;
  if (options.aipu_cores > device_cores)
    throw IncompatibleDevice(describe() + ": aipu_cores=" + std::to_string(options.aipu_cores) +
                             " for " + model->describe() + ", but the device has " +
                             std::to_string(device_cores) + " AIPU cores");
  int requested = options.num_sub_devices;
  if (requested == 0 && options.aipu_cores <= impl_->num_cores) requested = options.aipu_cores;
  // Cores beyond the batch would have no item to run.
  int used =
      requested ? std::min(requested, package->batch) : std::min(package->batch, impl_->num_cores);

  auto program = model->program();
  auto instance_impl = std::make_unique<ModelInstance::Impl>();
  instance_impl->options = options;
  if (options.aipu_cores == 0) instance_impl->options.aipu_cores = used;
  instance_impl->options.num_sub_devices = used;
  instance_impl->model = model;
  instance_impl->package = package;
  instance_impl->program = program;
  for (int k = 0; k < used; ++k) instance_impl->executors.push_back(program->make_executor());

  std::shared_ptr<ModelInstance> instance;
  {
    std::lock_guard lock(impl_->mutex);
    if (!impl_->reservation) throw InvalidArgument(describe() + " was released");
    instance_impl->reservation = impl_->reservation.get();
    for (int k = 0; k < used; ++k)
      instance_impl->cores.push_back((impl_->next_core + k) % impl_->num_cores);
    impl_->next_core = (impl_->next_core + used) % impl_->num_cores;
  }
  instance_impl->connection = std::static_pointer_cast<Connection>(shared_from_this());
  instance = std::make_shared<ModelInstance>(ObjectKey(), context(), std::move(instance_impl));
  adopt(instance);
  model->adopt(instance);
  return instance;
}

}  // namespace axstream::runtime
