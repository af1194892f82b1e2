// What the simulated backend reads from the environment when devices are enumerated.
#pragma once

#include <chrono>
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
};

struct SimOptions {
  std::vector<std::string> device_names;
  int subdevice_count = 4;
  BoardData board;
  std::string runtime_dir;
  std::chrono::milliseconds config_delay{200};
  bool pacing = false;
};

// Throws InvalidConfiguration naming the variable and its value when one is malformed.
SimOptions read_sim_options();

}  // namespace axstream::hal::sim
