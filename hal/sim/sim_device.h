// The simulated Metis board: a Device whose cores are reserved through lock files shared by all
// processes, configured through a shared configuration file, and run by worker threads here.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "axstream/hal/device.h"
#include "config_store.h"
#include "core_worker.h"
#include "sim_options.h"

namespace axstream::hal::sim {

class SimDevice : public Device, public std::enable_shared_from_this<SimDevice> {
 public:
  // `index` is the position among enumerated devices, used to name worker threads.
  SimDevice(std::string name, int index, const SimOptions &options);
  ~SimDevice() override;

  DeviceInfo info() const override;
  std::unique_ptr<Reservation> reserve(int count) override;
  bool configure(const std::map<std::string, std::string> &settings) override;
  bool ready() const override;
  std::map<std::string, std::string> read_configuration() const override;

  const std::string &name() const { return name_; }
  void set_pacing(bool enabled) { pacing_ = enabled; }
  bool pacing() const { return pacing_; }
  std::string lock_path(int core) const;
  // Queue `job` on core `core` (a core number, not a reservation index).
  std::future<CoreJobTiming> submit_to_core(int core, CoreJob job);
  // Stops core `core`'s worker thread once the jobs queued on it have run (the next submit starts
  // another): called as this process's reservation of the core ends, so a process that holds no
  // core keeps no core thread.
  void retire_worker(int core);

 private:
  CoreWorker &worker(int core);
  std::optional<std::chrono::nanoseconds> paced_time(int core, uint64_t macs) const;

  const std::string name_;
  const int index_;
  const int subdevice_count_;
  const BoardData board_;
  const std::string runtime_dir_;
  const std::chrono::milliseconds config_delay_;
  std::atomic<bool> pacing_;
  mutable std::mutex config_mutex_;  // one configure() at a time in this process
  mutable ConfigStore config_;
  std::mutex workers_mutex_;
  pid_t workers_pid_ = 0;  // the process whose threads run workers_ (see worker())
  // Last: destroyed first, so draining workers can still read the configuration.
  std::vector<std::unique_ptr<CoreWorker>> workers_;  // made on first use
};

// Enumerates the simulated devices that the environment describes.
std::vector<std::shared_ptr<Device>> enumerate_devices();

}  // namespace axstream::hal::sim
