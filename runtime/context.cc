#include "runtime_impl.h"

namespace axstream::runtime {

namespace {

std::shared_ptr<hal::Device> find_device_or_throw(const DeviceInfo &device) {
  auto found = hal::find_device(device.name);
  if (!found) {
    std::string known;
    for (const auto &candidate : hal::devices()) {
      if (!known.empty()) known += ", ";
      known += candidate->info().name;
    }
    throw InvalidArgument("unknown device '" + device.name +
                          "' (devices: " + (known.empty() ? "none" : known) + ")");
  }
  return found;
}

}  // namespace

Context::Context(PrivateTag) : Object(nullptr) {}

std::shared_ptr<Context> Context::create() { return std::make_shared<Context>(PrivateTag{}); }

std::vector<DeviceInfo> Context::list_devices() const {
  ensure_alive();
  std::vector<DeviceInfo> infos;
  for (const auto &device : hal::devices()) infos.push_back(device->info());
  return infos;
}

bool Context::configure_device(const DeviceInfo &device, const Properties &settings) {
  ensure_alive();
  return find_device_or_throw(device)->configure(settings);
}

bool Context::device_ready(const DeviceInfo &device) const {
  ensure_alive();
  return find_device_or_throw(device)->ready();
}

Properties Context::read_device_configuration(const DeviceInfo &device) const {
  ensure_alive();
  return find_device_or_throw(device)->read_configuration();
}

std::shared_ptr<Connection> Context::device_connect(const DeviceInfo *device, int num_sub_devices,
                                                    const Properties &properties) {
  ensure_alive();
  // Axelera's one connect option. The device's firmware is the one this runtime drives, so there
  // is nothing to check or reload; the value is validated and otherwise has no effect.
  for (const auto &[key, value] : properties) {
    if (key != "device_firmware_check")
      throw InvalidArgument("device_connect: unknown property '" + key +
                            "' (valid: device_firmware_check)");
    if (value != "0" && value != "1")
      throw InvalidArgument("device_connect: device_firmware_check='" + value +
                            "': expected 0 or 1");
  }
  if (num_sub_devices < 1)
    throw InvalidArgument("device_connect: num_sub_devices must be at least 1, got " +
                          std::to_string(num_sub_devices));

  auto impl = std::make_unique<Connection::Impl>();
  if (device) {
    impl->device = find_device_or_throw(*device);
    impl->reservation = impl->device->reserve(num_sub_devices);
  } else {
    // The first device that has num_sub_devices free cores.
    std::string busy;
    int largest = 0;
    for (const auto &candidate : hal::devices()) {
      int cores = candidate->info().subdevice_count;
      largest = std::max(largest, cores);
      if (cores < num_sub_devices) continue;
      try {
        impl->reservation = candidate->reserve(num_sub_devices);
        impl->device = candidate;
        break;
      } catch (const DeviceInUse &error) {
        if (!busy.empty()) busy += "; ";
        busy += error.what();
      }
    }
    if (!impl->reservation) {
      // No board at all: nothing to connect to, whatever the request (ConnectionError, as a
      // device that cannot be reached), not a request too large for the devices there are.
      if (hal::devices().empty())
        throw ConnectionError("device_connect: no Axelera device found (list_devices() is empty)");
      if (busy.empty())
        throw InvalidArgument("device_connect: no device has " + std::to_string(num_sub_devices) +
                              " sub-devices (largest has " + std::to_string(largest) + ")");
      throw DeviceInUse("device_connect: no device has " + std::to_string(num_sub_devices) +
                        " free sub-devices: " + busy);
    }
  }
  impl->device_name = impl->reservation->device_name();
  impl->num_cores = static_cast<int>(impl->reservation->cores().size());
  auto connection = std::make_shared<Connection>(ObjectKey(), context(), std::move(impl));
  adopt(connection);
  return connection;
}

std::shared_ptr<Model> Context::load_model(const std::string &path) {
  ensure_alive();
  auto model = std::make_shared<Model>(ObjectKey(), context(), load_model_package(path));
  adopt(model);
  return model;
}

}  // namespace axstream::runtime
