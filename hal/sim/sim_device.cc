// The simulated Metis device and its enumeration.
#include "sim_device.h"

#include <unistd.h>

#include <cmath>
#include <set>
#include <type_traits>

#include "axstream/error.h"
#include "axstream/hal/fork_reset.h"
#include "axstream/hal/sim.h"
#include "core_lock.h"
#include "runtime_dir.h"
#include "sim_reservation.h"

namespace axstream::hal::sim {

namespace {

// "metis-0:1:0" -> "1:0" (bus:slot), so worker threads read "axcore-1:0-2"; other names use the
// device's position.
std::string thread_tag(const std::string &name, int index) {
  size_t colon = name.find(':');
  if (name.rfind("metis-", 0) == 0 && colon != std::string::npos) return name.substr(colon + 1);
  return std::to_string(index);
}

template <typename D>
auto &as_sim_device(D &device, const char *call) {
  auto *sim =
      dynamic_cast<std::conditional_t<std::is_const_v<D>, const SimDevice, SimDevice> *>(&device);
  if (!sim)
    throw InvalidArgument(std::string(call) + ": device '" + device.info().name +
                          "' is not a simulated device");
  return *sim;
}

}  // namespace

std::chrono::nanoseconds modelled_time(uint64_t macs, int clock_mhz, int mvm_utilisation_percent) {
  if (clock_mhz <= 0 || mvm_utilisation_percent <= 0)
    throw InvalidArgument("modelled_time: clock " + std::to_string(clock_mhz) +
                          " MHz and MVM utilisation " + std::to_string(mvm_utilisation_percent) +
                          "% must be positive");
  // seconds = macs / (clock_MHz * 1e6 * MACs per cycle * utilisation / 100)
  long double nanoseconds =
      static_cast<long double>(macs) * 1e5L /
      (static_cast<long double>(clock_mhz) * kMacsPerCycle * mvm_utilisation_percent);
  return std::chrono::nanoseconds(static_cast<int64_t>(std::llround(nanoseconds)));
}

bool is_sim_device(const Device &device) {
  return dynamic_cast<const SimDevice *>(&device) != nullptr;
}

void set_pacing(Device &device, bool enabled) {
  as_sim_device(device, "set_pacing").set_pacing(enabled);
}

bool pacing(const Device &device) { return as_sim_device(device, "pacing").pacing(); }

SimDevice::SimDevice(std::string name, int index, const SimOptions &options)
    : name_(std::move(name)),
      index_(index),
      subdevice_count_(options.subdevice_count),
      board_(options.board_of(name_)),
      runtime_dir_(options.runtime_dir),
      config_delay_(options.config_delay),
      pacing_(options.pacing),
      config_(name_, subdevice_count_, board_.max_memory, runtime_dir_),
      workers_(static_cast<size_t>(subdevice_count_)) {
  // Taken by every submit and configure(): a child forked while another thread held one gets it
  // new.
  ForkRenewedMutexes::add(&workers_mutex_);
  ForkRenewedMutexes::add(&config_mutex_);
}

SimDevice::~SimDevice() {
  ForkRenewedMutexes::remove(&workers_mutex_);
  ForkRenewedMutexes::remove(&config_mutex_);
  // In a forked child that never ran a job the workers are the parent's, with no thread here to
  // join: let them go (see worker()).
  if (workers_pid_ != ::getpid())
    for (auto &inherited : workers_) static_cast<void>(inherited.release());
}

std::string SimDevice::lock_path(int core) const {
  return runtime_dir_ + "/" + name_ + ".core" + std::to_string(core) + ".lock";
}

DeviceInfo SimDevice::info() const {
  DeviceInfo info;
  info.name = name_;
  info.subdevice_count = subdevice_count_;
  info.max_memory = board_.max_memory;
  info.board_type = board_.board_type;
  info.firmware_version = board_.firmware_version;
  info.board_revision = board_.board_revision;
  info.flashed_firmware_version = board_.flashed_firmware_version;
  info.board_controller_firmware_version = board_.board_controller_firmware_version;
  info.board_controller_board_type = board_.board_controller_board_type;
  std::set<std::string> listed;
  for (int core = 0; core < subdevice_count_; ++core) {
    std::optional<std::string> holder = CoreLock::probe(lock_path(core));
    if (!holder) continue;
    ++info.in_use;
    if (listed.insert(*holder).second)
      info.in_use_by += (info.in_use_by.empty() ? "" : ",") + *holder;
  }
  return info;
}

std::unique_ptr<Reservation> SimDevice::reserve(int count) {
  if (count < 1 || count > subdevice_count_)
    throw InvalidArgument("reserve on '" + name_ + "': asked for " + std::to_string(count) +
                          " cores, expected 1 to " + std::to_string(subdevice_count_));
  ensure_runtime_dir(runtime_dir_);
  const std::string holder = this_process_holder();
  std::vector<int> cores;
  std::vector<CoreLock> locks;
  std::string busy;
  int busy_count = 0;
  for (int core = 0; core < subdevice_count_ && static_cast<int>(cores.size()) < count; ++core) {
    std::string current_holder;
    std::optional<CoreLock> lock = CoreLock::try_acquire(lock_path(core), holder, &current_holder);
    if (!lock) {
      busy += (busy.empty() ? "" : ", ") +
              ("core " + std::to_string(core) + " held by " + current_holder);
      ++busy_count;
      continue;
    }
    cores.push_back(core);
    locks.push_back(std::move(*lock));
  }
  if (static_cast<int>(cores.size()) < count) {
    throw DeviceInUse("device '" + name_ + "' has " +
                      std::to_string(subdevice_count_ - busy_count) + " of " +
                      std::to_string(subdevice_count_) + " cores free, " + std::to_string(count) +
                      " requested (" + busy + ")");
  }
  return std::make_unique<SimReservation>(shared_from_this(), std::move(cores), std::move(locks));
}

bool SimDevice::configure(const std::map<std::string, std::string> &settings) {
  // Validate before touching any file, so a bad request changes nothing anywhere.
  DeviceSettings::defaults(subdevice_count_, board_.max_memory).with(settings, name_);
  std::lock_guard lock(config_mutex_);
  bool applied = false;
  config_.update([&](ConfigState &state) {
    const int64_t now = realtime_ns();
    DeviceSettings next = state.target.with(settings, name_);
    if (next == state.target) {
      applied = state.ready(now);  // nothing new; true unless an earlier change is pending
      return false;
    }
    state.previous = state.effective(now);
    state.target = std::move(next);
    state.ready_at_ns =
        now + std::chrono::duration_cast<std::chrono::nanoseconds>(config_delay_).count();
    applied = config_delay_.count() == 0;
    return true;
  });
  return applied;
}

bool SimDevice::ready() const { return config_.load().ready(realtime_ns()); }

std::map<std::string, std::string> SimDevice::read_configuration() const {
  return config_.load().target.as_properties();
}

std::optional<std::chrono::nanoseconds> SimDevice::paced_time(int core, uint64_t macs) const {
  if (!pacing_) return std::nullopt;
  const ConfigState state = config_.load();
  const CoreSettings &settings = state.effective(realtime_ns()).cores.at(static_cast<size_t>(core));
  return modelled_time(macs, settings.clock_mhz, settings.mvm_utilisation);
}

CoreWorker &SimDevice::worker(int core) {
  std::lock_guard lock(workers_mutex_);
  // A forked child (multiprocessing's default on Linux) inherits the workers but not their
  // threads: jobs queued there would wait forever. The child makes its own; the inherited
  // objects are let go without their destructor, which would join a thread it does not have.
  if (workers_pid_ != ::getpid()) {
    for (auto &inherited : workers_) static_cast<void>(inherited.release());
    workers_pid_ = ::getpid();
  }
  auto &worker = workers_.at(static_cast<size_t>(core));
  if (!worker) {
    worker = std::make_unique<CoreWorker>(
        "axcore-" + thread_tag(name_, index_) + "-" + std::to_string(core),
        [this, core](uint64_t macs) { return paced_time(core, macs); });
  }
  return *worker;
}

std::future<CoreJobTiming> SimDevice::submit_to_core(int core, CoreJob job) {
  return worker(core).submit(std::move(job));
}

void SimDevice::retire_worker(int core) {
  std::unique_ptr<CoreWorker> retired;
  {
    std::lock_guard lock(workers_mutex_);
    // None made here yet, or a forked child's inherited ones, which worker() lets go.
    if (workers_pid_ != ::getpid()) return;
    retired = std::move(workers_.at(static_cast<size_t>(core)));
  }
  // Outside the lock, as its destructor runs the jobs still queued and joins the thread.
  retired.reset();
}

std::vector<std::shared_ptr<Device>> enumerate_devices() {
  SimOptions options = read_sim_options();
  std::vector<std::shared_ptr<Device>> devices;
  int index = 0;
  for (const auto &name : options.device_names)
    devices.push_back(std::make_shared<SimDevice>(name, index++, options));
  return devices;
}

}  // namespace axstream::hal::sim
