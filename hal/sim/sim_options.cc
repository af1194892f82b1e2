// Parsing of the AXSTREAM_SIM_* environment, the simulator's configuration file and the runtime
// directory default.
#include "sim_options.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include "axstream/error.h"
#include "axstream/hal/sim.h"

namespace axstream::hal::sim {

namespace {

constexpr int kMaxDevices = 16;
constexpr int kMaxSubdevices = 16;
constexpr long kMaxConfigDelayMs = 60000;

std::string trim(const std::string &text) {
  size_t first = text.find_first_not_of(" \t\r");
  if (first == std::string::npos) return {};
  size_t last = text.find_last_not_of(" \t\r");
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

// One setting and where it came from, for error messages: "environment variable
// AXSTREAM_SIM_DEVICES" or "AXSTREAM_SIM_CONFIG file '/etc/sim.conf' line 3: devices".
struct Setting {
  std::string value;
  std::string origin;
};

[[noreturn]] void bad_setting(const Setting &setting, const std::string &expected) {
  throw InvalidConfiguration(setting.origin + "='" + setting.value + "': expected " + expected);
}

// The configuration file: `key = value` lines, '#' comments. Device-wide keys, or board keys
// for one device as `<device name>.<key>`.
constexpr const char *kFileKeys[] = {"devices", "subdevices", "board_type", "config_delay_ms",
                                     "pacing"};
constexpr const char *kBoardKeys[] = {"board_type",
                                      "board_revision",
                                      "max_memory",
                                      "firmware_version",
                                      "flashed_firmware_version",
                                      "board_controller_firmware_version",
                                      "board_controller_board_type"};

bool is_board_key(const std::string &key) {
  return std::find_if(std::begin(kBoardKeys), std::end(kBoardKeys),
                      [&](const char *name) { return key == name; }) != std::end(kBoardKeys);
}

std::string valid_file_keys() {
  std::set<std::string> keys(std::begin(kFileKeys), std::end(kFileKeys));
  keys.insert(std::begin(kBoardKeys), std::end(kBoardKeys));
  std::string text;
  for (const auto &key : keys) text += (text.empty() ? "" : ", ") + key;
  return text + ", and <device>.<board key>";
}

class ConfigFile {
 public:
  ConfigFile() = default;
  explicit ConfigFile(const std::string &path) : path_(path) {
    std::ifstream in(path);
    if (!in)
      throw InvalidConfiguration(std::string("environment variable ") + kConfigFileEnv + "='" +
                                 path + "': cannot read the file");
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
      std::string text = trim(line.substr(0, line.find('#')));
      if (text.empty()) continue;
      const std::string where =
          "AXSTREAM_SIM_CONFIG file '" + path + "' line " + std::to_string(number);
      size_t equals = text.find('=');
      if (equals == std::string::npos)
        throw InvalidConfiguration(where + ": expected key = value, got '" + text + "'");
      std::string key = trim(text.substr(0, equals));
      std::string value = trim(text.substr(equals + 1));
      size_t dot = key.rfind('.');
      const std::string bare = dot == std::string::npos ? key : key.substr(dot + 1);
      const bool known =
          dot == std::string::npos
              ? is_board_key(key) || std::find_if(std::begin(kFileKeys), std::end(kFileKeys),
                                                  [&](const char *name) { return key == name; }) !=
                                         std::end(kFileKeys)
              : is_board_key(bare);
      if (!known)
        throw InvalidConfiguration(where + ": unknown key '" + key +
                                   "' (valid: " + valid_file_keys() + ")");
      if (!settings_.emplace(key, Setting{value, where + ": " + key}).second)
        throw InvalidConfiguration(where + ": '" + key + "' is set twice");
    }
  }
  std::optional<Setting> find(const std::string &key) const {
    auto found = settings_.find(key);
    if (found == settings_.end()) return std::nullopt;
    return found->second;
  }
  // The `<device>.` keys whose device is not among `names`.
  void check_devices(const std::vector<std::string> &names) const {
    for (const auto &[key, setting] : settings_) {
      size_t dot = key.rfind('.');
      if (dot == std::string::npos) continue;
      std::string device = key.substr(0, dot);
      if (std::find(names.begin(), names.end(), device) == names.end()) {
        std::string known;
        for (const auto &name : names) known += (known.empty() ? "" : ", ") + name;
        throw InvalidConfiguration(setting.origin + ": no simulated device '" + device +
                                   "' (devices: " + (known.empty() ? "none" : known) + ")");
      }
    }
  }

 private:
  std::string path_;
  std::map<std::string, Setting> settings_;
};

// The environment variable wins over the file's key.
std::optional<Setting> lookup(const char *variable, const ConfigFile &file,
                              const std::string &key) {
  if (const char *value = env(variable))
    return Setting{value, std::string("environment variable ") + variable};
  return file.find(key);
}

// Device names become lock file names, so they keep to a safe alphabet.
bool valid_device_name(const std::string &name) {
  if (name.empty() || name.size() > 64 || name[0] == '.' || name[0] == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' ||
           c == '.' || c == '_' || c == '-';
  });
}

std::vector<std::string> read_device_names(const std::optional<Setting> &setting) {
  if (!setting) return {"metis-0:1:0"};
  const std::string &text = setting->value;
  long count = 0;
  if (parse_integer(text, count)) {
    if (count < 0 || count > kMaxDevices)
      bad_setting(*setting, "a device count in [0, " + std::to_string(kMaxDevices) +
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
      bad_setting(*setting,
                  "a device count or comma-separated device names of letters, digits and "
                  "':._-' (bad name '" +
                      name + "')");
    if (!seen.insert(name).second)
      bad_setting(*setting, "distinct device names ('" + name + "' appears twice)");
    names.push_back(name);
    if (names.size() > static_cast<size_t>(kMaxDevices))
      bad_setting(*setting, "at most " + std::to_string(kMaxDevices) + " devices");
    start = comma + 1;
  }
  return names;
}

BoardType parse_board_type(const Setting &setting) {
  std::string text = trim(setting.value);
  std::string valid;
  for (int type = 0; type <= static_cast<int>(BoardType::unknown); ++type) {
    const char *name = board_type_name(static_cast<BoardType>(type));
    if (text == name) return static_cast<BoardType>(type);
    valid += (valid.empty() ? "" : ", ") + std::string(name);
  }
  bad_setting(setting, "one of " + valid);
}

bool parse_flag(const Setting &setting) {
  std::string text = trim(setting.value);
  if (text == "1" || text == "true" || text == "yes" || text == "on") return true;
  if (text == "0" || text == "false" || text == "no" || text == "off") return false;
  bad_setting(setting, "1/true/yes/on or 0/false/no/off");
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

// Version strings end up in DeviceInfo and the C API's 256-byte fields.
std::string parse_text(const Setting &setting) {
  if (setting.value.empty() || setting.value.size() > 255 ||
      std::any_of(setting.value.begin(), setting.value.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
    bad_setting(setting, "1 to 255 printable characters");
  return setting.value;
}

// `prefix` is "" for the device-wide keys or "<device>." for one device's; a device's own key
// wins over the device-wide one. The environment sets the board type of every device.
BoardData read_board(const BoardData &base, const ConfigFile &file, const std::string &prefix) {
  BoardData board = base;
  auto find = [&](const char *key) { return file.find(prefix + key); };
  std::optional<Setting> type = prefix.empty()
                                    ? lookup(kBoardTypeEnv, file, "board_type")
                                    : (env(kBoardTypeEnv) ? std::nullopt : find("board_type"));
  if (type) {
    board.board_type = parse_board_type(*type);
    board.board_controller_board_type = controller_board_type(board.board_type);
  }
  if (auto revision = find("board_revision")) {
    long value = 0;
    if (!parse_integer(revision->value, value) || value < 0 || value > 0xffff)
      bad_setting(*revision, "an integer in [0, 65535]");
    board.board_revision = static_cast<int>(value);
  }
  if (auto memory = find("max_memory")) {
    long value = 0;
    // At least the 1 MiB configure()'s ddr_size asks for.
    if (!parse_integer(memory->value, value) || value < (1l << 20))
      bad_setting(*memory, "a size in bytes, at least 1048576");
    board.max_memory = static_cast<uint64_t>(value);
  }
  if (auto text = find("firmware_version")) board.firmware_version = parse_text(*text);
  if (auto text = find("flashed_firmware_version"))
    board.flashed_firmware_version = parse_text(*text);
  if (auto text = find("board_controller_firmware_version"))
    board.board_controller_firmware_version = parse_text(*text);
  if (auto text = find("board_controller_board_type"))
    board.board_controller_board_type = parse_text(*text);
  return board;
}

}  // namespace

std::string runtime_dir() {
  if (const char *value = env(kRuntimeDirEnv)) return value;
  return "/tmp/axstream-" + std::to_string(::getuid());
}

const BoardData &SimOptions::board_of(const std::string &device_name) const {
  auto found = device_boards.find(device_name);
  return found == device_boards.end() ? board : found->second;
}

SimOptions read_sim_options() {
  ConfigFile file;
  if (const char *path = env(kConfigFileEnv)) file = ConfigFile(path);
  SimOptions options;
  options.device_names = read_device_names(lookup(kDevicesEnv, file, "devices"));
  file.check_devices(options.device_names);
  if (auto setting = lookup(kSubdevicesEnv, file, "subdevices")) {
    long count = 0;
    if (!parse_integer(setting->value, count) || count < 1 || count > kMaxSubdevices)
      bad_setting(*setting,
                  "a sub-device (core) count in [1, " + std::to_string(kMaxSubdevices) + "]");
    options.subdevice_count = static_cast<int>(count);
  }
  options.board.board_controller_board_type = controller_board_type(options.board.board_type);
  options.board = read_board(options.board, file, "");
  for (const auto &name : options.device_names) {
    BoardData board = read_board(options.board, file, name + ".");
    if (!(board == options.board)) options.device_boards.emplace(name, board);
  }
  if (auto setting = lookup(kConfigDelayEnv, file, "config_delay_ms")) {
    long delay = 0;
    if (!parse_integer(setting->value, delay) || delay < 0 || delay > kMaxConfigDelayMs)
      bad_setting(*setting, "milliseconds in [0, " + std::to_string(kMaxConfigDelayMs) + "]");
    options.config_delay = std::chrono::milliseconds(delay);
  }
  if (auto setting = lookup(kPacingEnv, file, "pacing")) options.pacing = parse_flag(*setting);
  options.runtime_dir = runtime_dir();
  return options;
}

}  // namespace axstream::hal::sim
