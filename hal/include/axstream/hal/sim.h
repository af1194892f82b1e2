// Knobs of the simulated Metis backend (hal/sim) that tests and tools use beside the Device API:
// the environment it reads, per-device pacing and the performance model of an AIPU core.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "axstream/hal/device.h"

namespace axstream::hal::sim {

// Read when devices are enumerated (see reset_devices_for_testing()).
// Device count ("2" -> metis-0:1:0, metis-0:2:0) or comma-separated device names; default 1.
inline constexpr const char *kDevicesEnv = "AXSTREAM_SIM_DEVICES";
inline constexpr const char *kSubdevicesEnv = "AXSTREAM_SIM_SUBDEVICES";        // cores, default 4
inline constexpr const char *kBoardTypeEnv = "AXSTREAM_SIM_BOARD_TYPE";         // default "pcie"
inline constexpr const char *kConfigDelayEnv = "AXSTREAM_SIM_CONFIG_DELAY_MS";  // default 200
inline constexpr const char *kPacingEnv = "AXSTREAM_SIM_PACING";                // "1" turns it on
// A file of `key = value` lines setting the same (devices, subdevices, board_type,
// config_delay_ms, pacing) and the board data of every device or of one (`<device>.<key>`);
// the environment variables above win over it. hal/README.md lists the keys.
inline constexpr const char *kConfigFileEnv = "AXSTREAM_SIM_CONFIG";
// Lock and configuration files shared by all processes; default /tmp/axstream-<uid>.
inline constexpr const char *kRuntimeDirEnv = "AXSTREAM_RUNTIME_DIR";

inline constexpr int kDefaultClockMhz = 800;
inline constexpr int kMinClockMhz = 100;
inline constexpr int kMaxClockMhz = 1000;
inline constexpr int kDefaultMvmUtilisation = 100;
inline constexpr uint64_t kMacsPerCycle = 32768;  // int8 MACs one core's MVM array does per clock

// Time a core needs for `macs` multiply-accumulates at `clock_mhz` and `mvm_utilisation_percent`.
std::chrono::nanoseconds modelled_time(uint64_t macs, int clock_mhz, int mvm_utilisation_percent);

// The runtime directory in effect for devices enumerated now (environment or default).
std::string runtime_dir();

bool is_sim_device(const Device &device);
// Pacing: each job takes at least its modelled device time. Throws InvalidArgument when
// `device` is not a simulated device.
void set_pacing(Device &device, bool enabled);
bool pacing(const Device &device);

}  // namespace axstream::hal::sim
