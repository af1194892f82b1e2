// Cores of a simulated device reserved by this process: their locks, and the way to their
// worker threads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "axstream/hal/device.h"
#include "core_lock.h"

namespace axstream::hal::sim {

class SimDevice;

class SimReservation : public Reservation {
 public:
  SimReservation(std::shared_ptr<SimDevice> device, std::vector<int> cores,
                 std::vector<CoreLock> locks);
  // Runs the jobs queued on the reserved cores and stops their workers, then releases the locks.
  ~SimReservation() override;

  const std::string &device_name() const override;
  const std::vector<int> &cores() const override { return cores_; }
  std::future<CoreJobTiming> submit(size_t core_index, CoreJob job) override;

 private:
  std::shared_ptr<SimDevice> device_;
  std::vector<int> cores_;
  std::vector<CoreLock> locks_;
};

}  // namespace axstream::hal::sim
