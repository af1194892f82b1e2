// The worker thread of a simulated AIPU core.
#include "core_worker.h"

#include <pthread.h>

namespace axstream::hal::sim {

CoreWorker::CoreWorker(std::string thread_name, PacedTime paced_time)
    : thread_name_(std::move(thread_name)),
      paced_time_(std::move(paced_time)),
      thread_([this] { run(); }) {}

CoreWorker::~CoreWorker() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

std::future<CoreJobTiming> CoreWorker::submit(CoreJob job) {
  Queued queued{std::move(job), {}};
  auto future = queued.done.get_future();
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(queued));
  }
  wake_.notify_one();
  return future;
}

void CoreWorker::run() {
  // Linux limits thread names to 15 characters.
  ::pthread_setname_np(::pthread_self(), thread_name_.substr(0, 15).c_str());
  for (;;) {
    Queued queued;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and every job has run
      queued = std::move(queue_.front());
      queue_.pop_front();
    }
    if (!queued.job.work) {
      queued.done.set_value(CoreJobTiming{});
      continue;
    }
    try {
      const auto job_start = std::chrono::steady_clock::now();
      // Asked at the start, so a configuration change applies from the next job on.
      std::optional<std::chrono::nanoseconds> modelled = paced_time_(queued.job.macs);
      const auto work_start = std::chrono::steady_clock::now();
      queued.job.work();
      CoreJobTiming timing;
      timing.compute = std::chrono::steady_clock::now() - work_start;
      timing.device = timing.compute;
      if (modelled) {
        // A real core would still be busy: keep this one busy as long.
        std::this_thread::sleep_until(job_start + *modelled);
        timing.device = *modelled;
      }
      queued.done.set_value(timing);
    } catch (...) {
      queued.done.set_exception(std::current_exception());
    }
    // Drop the job (and what its closure holds) before waiting for the next one.
    queued.job = CoreJob{};
  }
}

}  // namespace axstream::hal::sim
