// Execution on simulated cores: ordering, parallelism, errors, worker threads, timing and pacing.
#include <gtest/gtest.h>
#include <pthread.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "axstream/error.h"
#include "hal_test_env.h"

namespace axstream::hal::testing {
namespace {

using namespace std::chrono_literals;
using Execute = SimTest;

CoreJob job_of(std::function<void()> work, uint64_t macs = 0) {
  CoreJob job;
  job.work = std::move(work);
  job.macs = macs;
  return job;
}

// MACs a core at `clock_mhz` and full utilisation needs `duration` for.
uint64_t macs_for(std::chrono::milliseconds duration, int clock_mhz) {
  return static_cast<uint64_t>(duration.count()) * static_cast<uint64_t>(clock_mhz) * 1000ull *
         sim::kMacsPerCycle;
}

TEST_F(Execute, JobsOnOneCoreCompleteInSubmissionOrder) {
  auto reservation = device()->reserve(1);
  std::mutex mutex;
  std::vector<int> order;
  std::vector<std::future<CoreJobTiming>> done;
  for (int i = 0; i < 50; ++i) {
    done.push_back(reservation->submit(0, job_of([&, i] {
                                         // Early jobs take longest: a queue that ran them
                                         // concurrently would reorder them.
                                         if (i < 3)
                                           std::this_thread::sleep_for(
                                               std::chrono::milliseconds(10 * (3 - i)));
                                         std::lock_guard lock(mutex);
                                         order.push_back(i);
                                       })));
  }
  for (auto &future : done) future.get();
  std::vector<int> expected(50);
  for (int i = 0; i < 50; ++i) expected[i] = i;
  EXPECT_EQ(order, expected);
}

TEST_F(Execute, JobsOnDifferentCoresRunInParallel) {
  auto reservation = device()->reserve(2);
  // Each job waits for the other to have started: only possible if both run at once.
  std::atomic<int> started{0};
  auto rendezvous = [&] {
    ++started;
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (started < 2) {
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("ran alone");
      std::this_thread::sleep_for(1ms);
    }
  };
  auto first = reservation->submit(0, job_of(rendezvous));
  auto second = reservation->submit(1, job_of(rendezvous));
  EXPECT_NO_THROW(first.get());
  EXPECT_NO_THROW(second.get());
}

TEST_F(Execute, WorkersAreNamedAfterDeviceAndCore) {
  auto reservation = device()->reserve(3);
  auto name_of_worker = [&](size_t index) {
    std::string name;
    reservation
        ->submit(index, job_of([&] {
                   char text[16] = {};
                   ::pthread_getname_np(::pthread_self(), text, sizeof text);
                   name = text;
                 }))
        .get();
    return name;
  };
  EXPECT_EQ(name_of_worker(0), "axcore-1:0-0");
  EXPECT_EQ(name_of_worker(2), "axcore-1:0-2");
}

TEST_F(Execute, ThrowingJobPropagatesAndTheCoreGoesOn) {
  auto reservation = device()->reserve(1);
  auto failing = reservation->submit(0, job_of([] { throw InvalidArgument("bad tensor"); }));
  bool ran_after = false;
  auto next = reservation->submit(0, job_of([&] { ran_after = true; }));
  EXPECT_THROW(
      {
        try {
          failing.get();
        } catch (const InvalidArgument &error) {
          EXPECT_STREQ(error.what(), "bad tensor");
          throw;
        }
      },
      InvalidArgument);
  next.get();
  EXPECT_TRUE(ran_after);
}

TEST_F(Execute, SubmitRejectsBadCoreIndexAndEmptyWork) {
  auto reservation = device()->reserve(2);
  EXPECT_THROW(reservation->submit(2, job_of([] {})), InvalidArgument);
  EXPECT_THROW(reservation->submit(0, CoreJob{}), InvalidArgument);
}

TEST_F(Execute, ReservationIndicesMapToItsCores) {
  auto metis = device();
  auto first = metis->reserve(1);
  auto second = metis->reserve(2);  // cores 1 and 2
  std::string name;
  second
      ->submit(1, job_of([&] {
                 char text[16] = {};
                 ::pthread_getname_np(::pthread_self(), text, sizeof text);
                 name = text;
               }))
      .get();
  EXPECT_EQ(name, "axcore-1:0-2");
}

TEST_F(Execute, ReleasingAReservationWaitsForItsQueuedJobs) {
  auto reservation = device()->reserve(1);
  std::atomic<int> finished{0};
  for (int i = 0; i < 3; ++i)
    reservation->submit(0, job_of([&] {
                          std::this_thread::sleep_for(20ms);
                          ++finished;
                        }));
  reservation.reset();
  EXPECT_EQ(finished, 3);
}

TEST_F(Execute, WithoutPacingDeviceTimeIsTheMeasuredComputeTime) {
  auto reservation = device()->reserve(1);
  CoreJobTiming timing =
      reservation->submit(0, job_of([] { std::this_thread::sleep_for(30ms); }, macs_for(5s, 800)))
          .get();
  EXPECT_GE(timing.compute, 30ms);
  EXPECT_EQ(timing.device, timing.compute);
}

TEST_F(Execute, ModelledTimeFollowsClockAndUtilisation) {
  EXPECT_EQ(sim::modelled_time(macs_for(100ms, 800), 800, 100), 100ms);
  EXPECT_EQ(sim::modelled_time(macs_for(100ms, 800), 400, 100), 200ms);
  EXPECT_EQ(sim::modelled_time(macs_for(100ms, 800), 800, 50), 200ms);
  EXPECT_EQ(sim::modelled_time(0, 800, 100), 0ns);
  EXPECT_THROW(sim::modelled_time(1, 0, 100), InvalidArgument);
}

TEST_F(Execute, PacingMakesAJobTakeTheModelledTime) {
  auto metis = device();
  sim::set_pacing(*metis, true);
  auto reservation = metis->reserve(1);
  auto start = std::chrono::steady_clock::now();
  CoreJobTiming timing = reservation->submit(0, job_of([] {}, macs_for(80ms, 800))).get();
  EXPECT_GE(std::chrono::steady_clock::now() - start, 80ms);
  EXPECT_EQ(timing.device, 80ms);
  EXPECT_LT(timing.compute, 80ms);
}

TEST_F(Execute, HalvingTheClockDoublesThePacedTime) {
  set_env(sim::kConfigDelayEnv, "0");
  set_env(sim::kPacingEnv, "1");
  auto metis = device();
  auto reservation = metis->reserve(2);
  const uint64_t macs = macs_for(60ms, 800);
  auto timed = [&](size_t index) {
    auto start = std::chrono::steady_clock::now();
    CoreJobTiming timing = reservation->submit(index, job_of([] {}, macs)).get();
    EXPECT_GE(std::chrono::steady_clock::now() - start, timing.device);
    return timing.device;
  };
  EXPECT_EQ(timed(0), 60ms);
  ASSERT_TRUE(metis->configure({{"clock_profile", "400"}}));
  EXPECT_EQ(timed(0), 120ms);
  EXPECT_EQ(timed(1), 120ms);
  ASSERT_TRUE(
      metis->configure({{"clock_profile_core_1", "800"}, {"mvm_utilisation_core_0", "50"}}));
  EXPECT_EQ(timed(0), 240ms);
  EXPECT_EQ(timed(1), 60ms);
}

TEST_F(Execute, PendingConfigurationTakesEffectWhenReady) {
  set_env(sim::kConfigDelayEnv, "500");
  auto metis = device();
  sim::set_pacing(*metis, true);
  auto reservation = metis->reserve(1);
  const uint64_t macs = macs_for(10ms, 800);
  const auto asked = std::chrono::steady_clock::now();
  ASSERT_FALSE(metis->configure({{"clock_profile", "200"}}));
  // The old clock holds while the change is pending (a job run past the delay, on a loaded
  // machine, rightly gets the new one).
  const auto pending_job = reservation->submit(0, job_of([] {}, macs)).get().device;
  EXPECT_TRUE(pending_job == 10ms || pending_job == 40ms) << pending_job.count() << " ns";
  EXPECT_TRUE(pending_unless_delay_passed(pending_job == 40ms, asked, 500ms))
      << "the old clock holds while the change is pending";
  while (!metis->ready()) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(reservation->submit(0, job_of([] {}, macs)).get().device, 40ms);
}

}  // namespace
}  // namespace axstream::hal::testing
