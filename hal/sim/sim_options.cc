// Parsing of the AXSTREAM_SIM_* environment and the runtime directory default.
#include "sim_options.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <set>

#include "axstream/error.h"
#include "axstream/hal/sim.h"

namespace axstream::hal::sim {

namespace {

constexpr int kMaxDevices = 16;
constexpr int kMaxSubdevices = 16;
constexpr long kMaxConfigDelayMs = 60000;

std::string trim(const std::string &text) {
  size_t first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return {};
  size_t last = text.find_last_not_of(" \t");
  return text.substr(first, last - first + 1);
}

bool parse_integer(const std::string &text, long &value) {
  std::string trimmed = trim(text);
  if (trimmed.empty()) return false;
  auto [end, error] = std::from_chars(trimmed.data(), trimmed.data() + trimmed.size(), value);
  return error == std::errc() && end == trimmed.data() + trimmed.size();
}

const char *env(const char *name) {
  const char *value = std::getenv(name);
  return value && *value ? value : nullptr;
}

[[noreturn]] void bad_variable(const char *name, const std::string &value,
                               const std::string &expected) {
  throw InvalidConfiguration(std::string("environment variable ") + name + "='" + value +
                             "': expected " + expected);
}

// Device names become lock file names, so they keep to a safe alphabet.
bool valid_device_name(const std::string &name) {
  if (name.empty() || name.size() > 64 || name[0] == '.' || name[0] == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' ||
           c == '.' || c == '_' || c == '-';
  });
}

std::vector<std::string> read_device_names() {
  const char *value = env(kDevicesEnv);
  if (!value) return {"metis-0:1:0"};
  std::string text = value;
  long count = 0;
  if (parse_integer(text, count)) {
    if (count < 0 || count > kMaxDevices)
      bad_variable(kDevicesEnv, text,
                   "a device count in [0, " + std::to_string(kMaxDevices) +
                       "] or a comma-separated list of device names");
    std::vector<std::string> names;
    for (long bus = 1; bus <= count; ++bus)
      names.push_back("metis-0:" + std::to_string(bus) + ":0");
    return names;
  }
  std::vector<std::string> names;
  std::set<std::string> seen;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    std::string name = trim(text.substr(start, comma - start));
    if (!valid_device_name(name))
      bad_variable(kDevicesEnv, text,
                   "a device count or comma-separated device names of letters, digits and "
                   "':._-' (bad name '" +
                       name + "')");
    if (!seen.insert(name).second)
      bad_variable(kDevicesEnv, text, "distinct device names ('" + name + "' appears twice)");
    names.push_back(name);
    if (names.size() > static_cast<size_t>(kMaxDevices))
      bad_variable(kDevicesEnv, text, "at most " + std::to_string(kMaxDevices) + " devices");
    start = comma + 1;
  }
  return names;
}

BoardType read_board_type() {
  const char *value = env(kBoardTypeEnv);
  if (!value) return BoardType::pcie;
  std::string text = trim(value);
  std::string valid;
  for (int type = 0; type <= static_cast<int>(BoardType::unknown); ++type) {
    const char *name = board_type_name(static_cast<BoardType>(type));
    if (text == name) return static_cast<BoardType>(type);
    valid += (valid.empty() ? "" : ", ") + std::string(name);
  }
  bad_variable(kBoardTypeEnv, value, "one of " + valid);
}

bool read_flag(const char *name) {
  const char *value = env(name);
  if (!value) return false;
  std::string text = trim(value);
  if (text == "1" || text == "true" || text == "yes" || text == "on") return true;
  if (text == "0" || text == "false" || text == "no" || text == "off") return false;
  bad_variable(name, value, "1/true/yes/on or 0/false/no/off");
}

std::string controller_board_type(BoardType type) {
  switch (type) {
    case BoardType::m2:
    case BoardType::alpha_m2:
      return "metis-m2-bc";
    case BoardType::devboard:
      return "metis-devboard-bc";
    case BoardType::sbc:
      return "metis-sbc-bc";
    case BoardType::unknown:
      return "unknown";
    default:
      return "metis-pcie-bc";
  }
}

}  // namespace

std::string runtime_dir() {
  if (const char *value = env(kRuntimeDirEnv)) return value;
  return "/tmp/axstream-" + std::to_string(::getuid());
}

SimOptions read_sim_options() {
  SimOptions options;
  options.device_names = read_device_names();
  if (const char *value = env(kSubdevicesEnv)) {
    long count = 0;
    if (!parse_integer(value, count) || count < 1 || count > kMaxSubdevices)
      bad_variable(kSubdevicesEnv, value,
                   "a sub-device (core) count in [1, " + std::to_string(kMaxSubdevices) + "]");
    options.subdevice_count = static_cast<int>(count);
  }
  options.board.board_type = read_board_type();
  options.board.board_controller_board_type = controller_board_type(options.board.board_type);
  if (const char *value = env(kConfigDelayEnv)) {
    long delay = 0;
    if (!parse_integer(value, delay) || delay < 0 || delay > kMaxConfigDelayMs)
      bad_variable(kConfigDelayEnv, value,
                   "milliseconds in [0, " + std::to_string(kMaxConfigDelayMs) + "]");
    options.config_delay = std::chrono::milliseconds(delay);
  }
  options.pacing = read_flag(kPacingEnv);
  options.runtime_dir = runtime_dir();
  return options;
}

}  // namespace axstream::hal::sim
