// Reserved cores of a simulated device.
#include "sim_reservation.h"

#include "axstream/error.h"
#include "sim_device.h"

namespace axstream::hal::sim {

SimReservation::SimReservation(std::shared_ptr<SimDevice> device, std::vector<int> cores,
                               std::vector<CoreLock> locks)
    : device_(std::move(device)), cores_(std::move(cores)), locks_(std::move(locks)) {}

SimReservation::~SimReservation() {
  // Another process may take the cores the moment the locks go: finish our work on them first.
  // Each core's worker runs what is queued and stops; nothing else in this process can hold the
  // core until the locks go.
  for (int core : cores_) device_->retire_worker(core);
}

const std::string &SimReservation::device_name() const { return device_->name(); }

std::future<CoreJobTiming> SimReservation::submit(size_t core_index, CoreJob job) {
  if (core_index >= cores_.size())
    throw InvalidArgument("submit to '" + device_->name() + "': core index " +
                          std::to_string(core_index) + " is out of range (the reservation holds " +
                          std::to_string(cores_.size()) + " cores)");
  if (!job.work)
    throw InvalidArgument("submit to '" + device_->name() + "' core " +
                          std::to_string(cores_[core_index]) + ": the job has no work");
  return device_->submit_to_core(cores_[core_index], std::move(job));
}

}  // namespace axstream::hal::sim
