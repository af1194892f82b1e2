// What the simulated backend reads from the environment and its configuration file when devices
// are enumerated.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "axstream/hal/device.h"

namespace axstream::hal::sim {

// Board data one simulated device reports in its DeviceInfo.
struct BoardData {
  BoardType board_type = BoardType::pcie;
  uint64_t max_memory = 4ull << 30;
  int board_revision = 2;
  std::string firmware_version = "v1.2.0-sim";
  std::string flashed_firmware_version = "v1.2.0-sim";
  std::string board_controller_firmware_version = "v1.4.1-sim";
  std::string board_controller_board_type;
  bool operator==(const BoardData &) const = default;
};

struct SimOptions {
  std::vector<std::string> device_names;
  int subdevice_count = 4;
  BoardData board;                                 // of every device...
  std::map<std::string, BoardData> device_boards;  // ...but those the file sets apart
  const BoardData &board_of(const std::string &device_name) const;
  std::string runtime_dir;
  std::chrono::milliseconds config_delay{200};
  bool pacing = false;
};

// Throws InvalidConfiguration naming the variable (or the file, line and key) and its value when
// one is malformed.
SimOptions read_sim_options();

}  // namespace axstream::hal::sim
