// One simulated AIPU core in this process: a named thread running queued jobs one at a time, in
// submission order, and timing them (measured host time, and modelled device time when pacing).
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "axstream/hal/device.h"

namespace axstream::hal::sim {

class CoreWorker {
 public:
  // Asked when a job starts: the modelled device time of `macs`, or nullopt when not pacing.
  using PacedTime = std::function<std::optional<std::chrono::nanoseconds>(uint64_t macs)>;

  CoreWorker(std::string thread_name, PacedTime paced_time);
  ~CoreWorker();  // runs the jobs still queued, then joins the thread
  CoreWorker(const CoreWorker &) = delete;
  CoreWorker &operator=(const CoreWorker &) = delete;

  // A job with empty `work` is a barrier: its future is ready once earlier jobs are done.
  std::future<CoreJobTiming> submit(CoreJob job);

 private:
  struct Queued {
    CoreJob job;
    std::promise<CoreJobTiming> done;
  };
  void run();

  std::string thread_name_;
  PacedTime paced_time_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Queued> queue_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts after the members it uses exist
};

}  // namespace axstream::hal::sim
