// The device registry: every backend's devices, enumerated once per process.
#include "axstream/hal/device.h"

#include <mutex>

#include "sim/sim_device.h"

namespace axstream::hal {

namespace {

using Enumerate = std::vector<std::shared_ptr<Device>> (*)();

// One entry per backend; a driver backend for real boards goes beside the simulator.
constexpr Enumerate kBackends[] = {
    &sim::enumerate_devices,
};

struct Registry {
  std::mutex mutex;
  bool enumerated = false;
  std::vector<std::shared_ptr<Device>> devices;
  std::vector<std::string> names;  // devices[i]'s name, so lookups need not probe lock files
};

Registry &registry() {
  static Registry instance;
  return instance;
}

}  // namespace

const char *board_type_name(BoardType type) noexcept {
  switch (type) {
    case BoardType::alpha_pcie:
      return "alpha_pcie";
    case BoardType::alpha_m2:
      return "alpha_m2";
    case BoardType::pcie:
      return "pcie";
    case BoardType::m2:
      return "m2";
    case BoardType::devboard:
      return "devboard";
    case BoardType::sbc:
      return "sbc";
    case BoardType::unknown:
      return "unknown";
  }
  return "unknown";
}

const std::vector<std::shared_ptr<Device>> &devices() {
  Registry &state = registry();
  std::lock_guard lock(state.mutex);
  if (!state.enumerated) {
    // Enumerate into a local list, so a backend that throws (bad environment) leaves the
    // registry empty and the next call tries again.
    std::vector<std::shared_ptr<Device>> found;
    for (Enumerate enumerate : kBackends) {
      auto backend_devices = enumerate();
      found.insert(found.end(), backend_devices.begin(), backend_devices.end());
    }
    state.names.clear();
    for (const auto &device : found) state.names.push_back(device->info().name);
    state.devices = std::move(found);
    state.enumerated = true;
  }
  return state.devices;
}

std::shared_ptr<Device> find_device(const std::string &name) {
  devices();
  Registry &state = registry();
  std::lock_guard lock(state.mutex);
  for (size_t i = 0; i < state.devices.size(); ++i)
    if (state.names[i] == name) return state.devices[i];
  return nullptr;
}

void reset_devices_for_testing() {
  Registry &state = registry();
  std::lock_guard lock(state.mutex);
  state.devices.clear();
  state.names.clear();
  state.enumerated = false;
}

}  // namespace axstream::hal
