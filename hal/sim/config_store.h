// Configuration of a simulated device (clock profiles, MVM utilisation, DDR size): validation of
// the configure() properties, and the small text file in the runtime directory that makes the
// configuration, and when a pending change takes effect, the same for every process.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace axstream::hal::sim {

struct CoreSettings {
  int clock_mhz = 0;
  int mvm_utilisation = 0;  // percent
  bool operator==(const CoreSettings &) const = default;
};

struct DeviceSettings {
  int clock_profile = 0;  // the device-wide clock last set (clock_profile)
  std::vector<CoreSettings> cores;
  // Bytes of the board's DDR the runtime may use for models (Axelera's ddr_size; Voyager's
  // device manager sets it). The simulator runs models in host memory, so it is only kept and
  // reported; ddr_capacity (the board's max_memory) bounds it.
  uint64_t ddr_size = 0;
  uint64_t ddr_capacity = 0;
  bool operator==(const DeviceSettings &) const = default;

  static DeviceSettings defaults(int core_count, uint64_t ddr_capacity);
  // A copy with `properties` applied: clock_profile first (it sets every core's clock), then the
  // per-core keys and ddr_size. device_firmware (Axelera's "load the device firmware", 0 or 1) is
  // validated and has no effect: the simulated firmware is always the one this runtime drives.
  // Throws InvalidConfiguration for an unknown key and InvalidArgument for a value that is not an
  // integer in range, naming `device_name`, the key and the value; nothing is applied then.
  DeviceSettings with(const std::map<std::string, std::string> &properties,
                      const std::string &device_name) const;
  // All configurable keys with their values as strings.
  std::map<std::string, std::string> as_properties() const;
};

// Nanoseconds on CLOCK_REALTIME: the clock all processes share for "ready at".
int64_t realtime_ns();

struct ConfigState {
  DeviceSettings previous;  // in effect until ready_at_ns
  DeviceSettings target;    // what configure() asked for last
  int64_t ready_at_ns = 0;  // realtime_ns() when `target` takes effect
  bool ready(int64_t now_ns) const { return now_ns >= ready_at_ns; }
  const DeviceSettings &effective(int64_t now_ns) const {
    return ready(now_ns) ? target : previous;
  }
};

class ConfigStore {
 public:
  ConfigStore(std::string device_name, int core_count, uint64_t ddr_capacity,
              std::string runtime_dir);
  // The stored state, or the defaults when the device was never configured.
  ConfigState load() const;
  // Read-modify-write under an exclusive lock shared by all processes. `change` edits the state
  // and returns whether to store it. Returns the state after the change.
  ConfigState update(const std::function<bool(ConfigState &)> &change);
  const std::string &path() const { return path_; }

 private:
  ConfigState parse(const std::string &text) const;
  std::string serialise(const ConfigState &state) const;

  std::string device_name_;
  int core_count_;
  uint64_t ddr_capacity_;
  std::string runtime_dir_;
  std::string path_;
  std::string lock_path_;
};

}  // namespace axstream::hal::sim
