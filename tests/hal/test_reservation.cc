// Reservation of AIPU cores across threads and processes through the runtime directory's locks.
#include <gtest/gtest.h>
#include <pwd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "axstream/error.h"
#include "expected_error.h"
#include "hal_test_env.h"

namespace axstream::hal::testing {
namespace {

using Reserve = SimTest;

std::string holder_of(pid_t pid) {
  struct passwd *entry = ::getpwuid(::geteuid());
  return std::string(entry ? entry->pw_name : std::to_string(::geteuid())) + ":" +
         std::to_string(pid);
}

std::string device_in_use_message(Device &device, int count) {
  return test::message_of<DeviceInUse>([&] { device.reserve(count); });
}

TEST_F(Reserve, FourSingleReservationsSucceedAndTheFifthIsDeviceInUse) {
  auto metis = device();
  std::vector<std::unique_ptr<Reservation>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(metis->reserve(1));
    EXPECT_EQ(held.back()->cores(), std::vector<int>{i});
    EXPECT_EQ(held.back()->device_name(), "metis-0:1:0");
  }
  std::string message = device_in_use_message(*metis, 1);
  EXPECT_NE(message.find("metis-0:1:0"), std::string::npos) << message;
  EXPECT_NE(message.find("0 of 4 cores free"), std::string::npos) << message;
  EXPECT_NE(message.find(holder_of(::getpid())), std::string::npos) << message;
}

TEST_F(Reserve, TakesTheLowestFreeCoresAndReleasedCoresComeBack) {
  auto metis = device();
  auto first = metis->reserve(1);
  auto pair = metis->reserve(2);
  EXPECT_EQ(pair->cores(), (std::vector<int>{1, 2}));
  first.reset();
  auto again = metis->reserve(2);
  EXPECT_EQ(again->cores(), (std::vector<int>{0, 3}));
}

TEST_F(Reserve, FailedReservationKeepsNoCore) {
  auto metis = device();
  auto three = metis->reserve(3);
  EXPECT_THROW(metis->reserve(2), DeviceInUse);
  auto last = metis->reserve(1);  // core 3 was taken and given back by the failed attempt
  EXPECT_EQ(last->cores(), std::vector<int>{3});
}

TEST_F(Reserve, CountOutsideOneToCoreCountIsInvalidArgument) {
  auto metis = device();
  EXPECT_THROW(metis->reserve(0), InvalidArgument);
  EXPECT_THROW(metis->reserve(-1), InvalidArgument);
  EXPECT_THROW(metis->reserve(5), InvalidArgument);
}

TEST_F(Reserve, DevicesHaveIndependentCores) {
  set_env(sim::kDevicesEnv, "2");
  auto all_of_first = device("metis-0:1:0")->reserve(4);
  auto all_of_second = device("metis-0:2:0")->reserve(4);
  EXPECT_EQ(all_of_second->cores().size(), 4u);
}

TEST_F(Reserve, FailsWhenCoresAreHeldByAnotherProcessNamingIt) {
  HelperProcess holder({"hold", "metis-0:1:0", "4"});
  ASSERT_EQ(holder.read_line(), "held " + std::to_string(holder.pid()) + " 0 1 2 3");
  std::string message = device_in_use_message(*device(), 1);
  EXPECT_NE(message.find("metis-0:1:0"), std::string::npos) << message;
  EXPECT_NE(message.find("core 0 held by " + holder_of(holder.pid())), std::string::npos)
      << message;
  EXPECT_EQ(holder.finish(), 0);
  EXPECT_NO_THROW(device()->reserve(4));
}

TEST_F(Reserve, AnotherProcessIsRefusedCoresHeldHere) {
  auto mine = device()->reserve(3);
  HelperProcess other({"reserve", "metis-0:1:0", "2"});
  std::string line = other.read_line();
  EXPECT_EQ(line.rfind("DeviceInUse: ", 0), 0u) << line;
  EXPECT_NE(line.find(holder_of(::getpid())), std::string::npos) << line;
  EXPECT_EQ(other.finish(), 1);
  HelperProcess takes_the_last({"reserve", "metis-0:1:0", "1"});
  EXPECT_EQ(takes_the_last.read_line(), "ok");
}

TEST_F(Reserve, PartialHoldElsewhereLeavesTheOtherCores) {
  HelperProcess holder({"hold", "metis-0:1:0", "2"});
  ASSERT_EQ(holder.read_line(), "held " + std::to_string(holder.pid()) + " 0 1");
  auto rest = device()->reserve(2);
  EXPECT_EQ(rest->cores(), (std::vector<int>{2, 3}));
}

TEST_F(Reserve, LockDiesWithTheHolderProcess) {
  HelperProcess holder({"hold", "metis-0:1:0", "4"});
  ASSERT_EQ(holder.read_line(), "held " + std::to_string(holder.pid()) + " 0 1 2 3");
  EXPECT_THROW(device()->reserve(1), DeviceInUse);
  holder.kill_and_reap();
  auto all = device()->reserve(4);
  EXPECT_EQ(all->cores().size(), 4u);
  EXPECT_EQ(device()->info().in_use_by, holder_of(::getpid()));
}

// A forked child (multiprocessing, an app's helper) shares the lock files' open file
// descriptions: unless it closes its copies, the cores stay locked after the holder lets go.
TEST_F(Reserve, ForkedChildNeitherKeepsNorDisturbsTheParentsLocks) {
  auto held = device()->reserve(4);
  int to_child[2], from_child[2];
  ASSERT_EQ(::pipe2(to_child, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(from_child, O_CLOEXEC), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Drop the inherited reservation (as a child's interpreter would at exit), say so, then
    // live on until the parent is done.
    ::close(to_child[1]);
    ::close(from_child[0]);
    held.reset();
    char done = 'd';
    [[maybe_unused]] ssize_t written = ::write(from_child[1], &done, 1);
    char ignored;
    [[maybe_unused]] ssize_t got = ::read(to_child[0], &ignored, 1);
    ::_exit(0);
  }
  ::close(to_child[0]);
  ::close(from_child[1]);
  char done = 0;
  ASSERT_EQ(::read(from_child[0], &done, 1), 1);
  DeviceInfo info = device()->info();
  EXPECT_EQ(info.in_use, 4);
  EXPECT_EQ(info.in_use_by, holder_of(::getpid()));
  held.reset();
  HelperProcess other({"reserve", "metis-0:1:0", "4"});
  EXPECT_EQ(other.read_line(), "ok") << "the child still alive kept the released cores";
  ::close(to_child[1]);
  ::close(from_child[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST_F(Reserve, InUseCountsCoresOfEveryProcessAndNamesEachHolderOnce) {
  auto metis = device();
  EXPECT_EQ(metis->info().in_use, 0);
  auto mine = metis->reserve(1);
  HelperProcess holder({"hold", "metis-0:1:0", "2"});
  ASSERT_EQ(holder.read_line(), "held " + std::to_string(holder.pid()) + " 1 2");
  DeviceInfo info = metis->info();
  EXPECT_EQ(info.in_use, 3);
  EXPECT_EQ(info.in_use_by, holder_of(::getpid()) + "," + holder_of(holder.pid()));
  EXPECT_EQ(holder.finish(), 0);
  mine.reset();
  info = metis->info();
  EXPECT_EQ(info.in_use, 0);
  EXPECT_EQ(info.in_use_by, "");
}

TEST_F(Reserve, LockFilesLiveInTheRuntimeDirectory) {
  auto held = device()->reserve(1);
  EXPECT_TRUE(std::filesystem::exists(runtime_dir_ + "/metis-0:1:0.core0.lock"));
}

// Probing in_use takes no lock, so it never makes a reservation elsewhere fail.
TEST_F(Reserve, ReadingInUseNeverDisturbsReservations) {
  auto metis = device();
  std::atomic<bool> done{false};
  std::thread prober([&] {
    while (!done) metis->info();
  });
  int failures = 0;
  for (int i = 0; i < 300; ++i) {
    try {
      auto all = metis->reserve(4);
    } catch (const DeviceInUse &) {
      ++failures;
    }
  }
  done = true;
  prober.join();
  EXPECT_EQ(failures, 0);
}

TEST_F(Reserve, UnusableRuntimeDirectoryIsConnectionError) {
  std::string file = runtime_dir_ + "/not-a-directory";
  std::FILE *created = std::fopen(file.c_str(), "w");
  ASSERT_NE(created, nullptr);
  std::fclose(created);
  set_env(sim::kRuntimeDirEnv, file);
  try {
    device()->reserve(1);
    FAIL() << "reserve succeeded without a runtime directory";
  } catch (const ConnectionError &error) {
    EXPECT_NE(std::string(error.what())
                  .find("runtime directory '" + file +
                        "' is not usable: not "
                        "a directory"),
              std::string::npos)
        << error.what();
  }
  // Listing and reading still work (nothing can be held or configured there): only the calls
  // that need the directory fail, with the message above.
  EXPECT_EQ(device()->info().in_use, 0);
  EXPECT_EQ(device()->read_configuration().at("clock_profile"), "800");
  EXPECT_THROW(device()->configure({{"clock_profile", "500"}}), ConnectionError);
}

}  // namespace
}  // namespace axstream::hal::testing
