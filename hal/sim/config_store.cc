// Validation and cross-process storage of simulated device configuration.
#include "config_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <sstream>

#include "../unique_fd.h"
#include "axstream/error.h"
#include "axstream/hal/sim.h"
#include "fork_closed_fd.h"
#include "runtime_dir.h"

namespace axstream::hal::sim {

namespace {

constexpr const char *kClockProfile = "clock_profile";
constexpr const char *kCoreClockPrefix = "clock_profile_core_";
constexpr const char *kCoreMvmPrefix = "mvm_utilisation_core_";
constexpr const char *kDdrSize = "ddr_size";
constexpr const char *kDeviceFirmware = "device_firmware";
constexpr uint64_t kMinDdrSize = 1ull << 20;  // 1 MiB: below that no model fits
constexpr int kMinMvmUtilisation = 1;
constexpr int kMaxMvmUtilisation = 100;
constexpr int kFileVersion = 1;

bool parse_int(const std::string &text, long long &value) {
  if (text.empty()) return false;
  const char *begin = text.data();
  if (*begin == '+') ++begin;  // from_chars takes no plus sign; users may write one
  auto [end, error] = std::from_chars(begin, text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size() && begin != end;
}

// "clock_profile_core_2" with prefix "clock_profile_core_" -> 2; -1 if not a core index below
// core_count (no sign, no leading zeros).
int core_suffix(const std::string &key, const std::string &prefix, int core_count) {
  if (key.rfind(prefix, 0) != 0) return -1;
  std::string digits = key.substr(prefix.size());
  if (digits.empty() || digits.size() > 3 || (digits.size() > 1 && digits[0] == '0')) return -1;
  for (char c : digits)
    if (c < '0' || c > '9') return -1;
  int core = std::stoi(digits);
  return core < core_count ? core : -1;
}

std::string valid_keys(int core_count) {
  std::string last = std::to_string(core_count - 1);
  std::string range = core_count == 1 ? "0" : "0.." + last;
  return std::string(kClockProfile) + ", " + kCoreClockPrefix + range + ", " + kCoreMvmPrefix +
         range + ", " + kDdrSize + ", " + kDeviceFirmware;
}

bool is_device_key(const std::string &key) { return key == kDdrSize || key == kDeviceFirmware; }

long long checked_value(const std::string &device_name, const std::string &key,
                        const std::string &value, long long minimum, long long maximum,
                        const char *what) {
  long long parsed = 0;
  if (!parse_int(value, parsed) || parsed < minimum || parsed > maximum)
    throw InvalidArgument("configure '" + device_name + "': " + key + "='" + value +
                          "' is invalid: expected an integer " + what + " in [" +
                          std::to_string(minimum) + ", " + std::to_string(maximum) + "]");
  return parsed;
}

[[noreturn]] void io_failure(const std::string &what, const std::string &path) {
  throw ConnectionError("simulated device configuration: " + what + " '" + path +
                        "' failed: " + std::strerror(errno));
}

}  // namespace

DeviceSettings DeviceSettings::defaults(int core_count, uint64_t ddr_capacity) {
  DeviceSettings settings;
  settings.clock_profile = kDefaultClockMhz;
  settings.ddr_size = settings.ddr_capacity = ddr_capacity;
  settings.cores.assign(static_cast<size_t>(core_count),
                        CoreSettings{kDefaultClockMhz, kDefaultMvmUtilisation});
  return settings;
}

DeviceSettings DeviceSettings::with(const std::map<std::string, std::string> &properties,
                                    const std::string &device_name) const {
  const int core_count = static_cast<int>(cores.size());
  DeviceSettings result = *this;
  // Keys first, so an unknown key is reported even beside a bad value.
  for (const auto &[key, value] : properties) {
    if (key != kClockProfile && !is_device_key(key) &&
        core_suffix(key, kCoreClockPrefix, core_count) < 0 &&
        core_suffix(key, kCoreMvmPrefix, core_count) < 0)
      throw InvalidConfiguration("configure '" + device_name + "': unknown property '" + key +
                                 "' (valid properties: " + valid_keys(core_count) + ")");
  }
  if (auto found = properties.find(kClockProfile); found != properties.end()) {
    result.clock_profile = static_cast<int>(checked_value(
        device_name, found->first, found->second, kMinClockMhz, kMaxClockMhz, "clock in MHz"));
    for (auto &core : result.cores) core.clock_mhz = result.clock_profile;
  }
  for (const auto &[key, value] : properties) {
    if (int core = core_suffix(key, kCoreClockPrefix, core_count); core >= 0)
      result.cores[core].clock_mhz = static_cast<int>(
          checked_value(device_name, key, value, kMinClockMhz, kMaxClockMhz, "clock in MHz"));
    else if (int core = core_suffix(key, kCoreMvmPrefix, core_count); core >= 0)
      result.cores[core].mvm_utilisation = static_cast<int>(checked_value(
          device_name, key, value, kMinMvmUtilisation, kMaxMvmUtilisation, "percentage"));
    else if (key == kDdrSize)
      result.ddr_size = static_cast<uint64_t>(
          checked_value(device_name, key, value, static_cast<long long>(kMinDdrSize),
                        static_cast<long long>(ddr_capacity), "size in bytes"));
    else if (key == kDeviceFirmware)
      checked_value(device_name, key, value, 0, 1, "flag");
  }
  return result;
}

std::map<std::string, std::string> DeviceSettings::as_properties() const {
  std::map<std::string, std::string> properties;
  properties[kClockProfile] = std::to_string(clock_profile);
  for (size_t core = 0; core < cores.size(); ++core) {
    properties[kCoreClockPrefix + std::to_string(core)] = std::to_string(cores[core].clock_mhz);
    properties[kCoreMvmPrefix + std::to_string(core)] = std::to_string(cores[core].mvm_utilisation);
  }
  properties[kDdrSize] = std::to_string(ddr_size);
  return properties;
}

int64_t realtime_ns() {
  struct timespec now {};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

ConfigStore::ConfigStore(std::string device_name, int core_count, uint64_t ddr_capacity,
                         std::string runtime_dir)
    : device_name_(std::move(device_name)),
      core_count_(core_count),
      ddr_capacity_(ddr_capacity),
      runtime_dir_(std::move(runtime_dir)),
      path_(runtime_dir_ + "/" + device_name_ + ".config"),
      lock_path_(runtime_dir_ + "/" + device_name_ + ".config.lock") {}

std::string ConfigStore::serialise(const ConfigState &state) const {
  std::ostringstream out;
  out << "# axstream simulated device '" << device_name_ << "'; written by "
      << this_process_holder() << "\n";
  out << "version=" << kFileVersion << "\n";
  out << "ready_at_realtime_ns=" << state.ready_at_ns << "\n";
  for (const auto &[key, value] : state.target.as_properties()) out << key << '=' << value << '\n';
  for (const auto &[key, value] : state.previous.as_properties())
    out << "previous." << key << '=' << value << '\n';
  return out.str();
}

ConfigState ConfigStore::parse(const std::string &text) const {
  ConfigState state;
  state.previous = state.target = DeviceSettings::defaults(core_count_, ddr_capacity_);
  std::map<std::string, std::string> target, previous;
  std::istringstream in(text);
  std::string line;
  int line_number = 0;
  auto corrupt = [&](const std::string &why) {
    std::string where = line_number ? " line " + std::to_string(line_number) : std::string();
    return InvalidConfiguration("simulated device configuration file '" + path_ + "'" + where +
                                ": " + why + " (delete the file to return to the defaults)");
  };
  while (std::getline(in, line)) {
    ++line_number;
    if (line.empty() || line[0] == '#') continue;
    size_t equals = line.find('=');
    if (equals == std::string::npos) throw corrupt("expected key=value, got '" + line + "'");
    std::string key = line.substr(0, equals), value = line.substr(equals + 1);
    if (key == "version") {
      if (value != std::to_string(kFileVersion))
        throw corrupt("version " + value + ", expected " + std::to_string(kFileVersion));
    } else if (key == "ready_at_realtime_ns") {
      long long ready_at = 0;
      if (!parse_int(value, ready_at)) throw corrupt("ready_at_realtime_ns='" + value + "'");
      state.ready_at_ns = ready_at;
    } else if (key.rfind("previous.", 0) == 0) {
      previous[key.substr(9)] = value;
    } else {
      target[key] = value;
    }
  }
  // Keys of cores this process does not have (another process may have been started with more
  // sub-devices) are dropped; values are validated as configure() would.
  auto apply = [&](DeviceSettings &settings, std::map<std::string, std::string> &properties) {
    std::map<std::string, std::string> known;
    for (const auto &[key, value] : properties) {
      if (key == kClockProfile || key == kDdrSize ||
          core_suffix(key, kCoreClockPrefix, core_count_) >= 0 ||
          core_suffix(key, kCoreMvmPrefix, core_count_) >= 0)
        known[key] = value;
    }
    // The device-wide value alone, so it does not overwrite the per-core clocks stored with it.
    std::map<std::string, std::string> device_wide;
    if (auto found = known.find(kClockProfile); found != known.end()) {
      device_wide.insert(*found);
      known.erase(found);
    }
    try {
      settings = settings.with(device_wide, device_name_).with(known, device_name_);
    } catch (const Error &error) {
      line_number = 0;
      throw corrupt(error.what());
    }
  };
  apply(state.target, target);
  apply(state.previous, previous);
  return state;
}

ConfigState ConfigStore::load() const {
  UniqueFd fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    // Never configured (no file, or a runtime directory that is not one: configure() says so).
    if (errno != ENOENT && errno != ENOTDIR) io_failure("open", path_);
    ConfigState state;
    state.previous = state.target = DeviceSettings::defaults(core_count_, ddr_capacity_);
    return state;
  }
  std::string text;
  char chunk[4096];
  for (;;) {
    ssize_t length = ::read(fd.get(), chunk, sizeof chunk);
    if (length < 0) {
      if (errno == EINTR) continue;
      io_failure("read", path_);
    }
    if (length == 0) break;
    text.append(chunk, static_cast<size_t>(length));
  }
  return parse(text);
}

ConfigState ConfigStore::update(const std::function<bool(ConfigState &)> &change) {
  ensure_runtime_dir(runtime_dir_);
  // 0666 and the umask decide who else may configure (see kSharedFileMode). Fork-closed: a child
  // forked meanwhile by another thread would keep the flock, and every configure() anywhere
  // would wait for it to exit.
  ForkClosedFd lock = ForkClosedFd::open(lock_path_, O_RDWR | O_CREAT, kSharedFileMode);
  if (!lock) io_failure("open", lock_path_);
  while (::flock(lock.get(), LOCK_EX) != 0)
    if (errno != EINTR) io_failure("flock", lock_path_);

  ConfigState state = load();
  if (!change(state)) return state;

  // Write a new file and rename it over the old one, so readers see the old or the new whole.
  std::string text = serialise(state);
  // One writer at a time (the lock above), so one temporary name does; a crashed writer's file
  // (perhaps another user's) is removed first. Created, not mkstemp'd, so the umask applies.
  std::string temporary = path_ + ".new";
  if (::unlink(temporary.c_str()) != 0 && errno != ENOENT) io_failure("remove", temporary);
  UniqueFd out(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kSharedFileMode));
  if (!out) io_failure("create", temporary);
  size_t written = 0;
  while (written < text.size()) {
    ssize_t length = ::write(out.get(), text.data() + written, text.size() - written);
    if (length < 0) {
      if (errno == EINTR) continue;
      int saved = errno;
      ::unlink(temporary.c_str());
      errno = saved;
      io_failure("write", temporary);
    }
    written += static_cast<size_t>(length);
  }
  out.reset();
  if (::rename(temporary.c_str(), path_.c_str()) != 0) {
    int saved = errno;
    ::unlink(temporary.c_str());
    errno = saved;
    io_failure("rename to", path_);
  }
  return state;
}

}  // namespace axstream::hal::sim
