// Validation, asynchronous application and cross-process visibility of device configuration.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <thread>

#include "axstream/error.h"
#include "expected_error.h"
#include "hal_test_env.h"

namespace axstream::hal::testing {
namespace {

using namespace std::chrono_literals;
using Settings = std::map<std::string, std::string>;

class Configure : public SimTest {
 protected:
  static constexpr std::chrono::milliseconds kDelay{400};
  void SetUp() override {
    SimTest::SetUp();
    set_env(sim::kConfigDelayEnv, std::to_string(kDelay.count()));
  }
  // The message of the error `settings` raise, checked to be of type `E`.
  template <typename E>
  std::string error_of(const Settings &settings) {
    return test::message_of<E>([&] { device()->configure(settings); });
  }
  static bool wait_ready(Device &device, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!device.ready()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }
};

TEST_F(Configure, ReadConfigurationHasEveryKeyAtItsDefault) {
  Settings expected{{"clock_profile", "800"}};
  for (int core = 0; core < 4; ++core) {
    expected["clock_profile_core_" + std::to_string(core)] = "800";
    expected["mvm_utilisation_core_" + std::to_string(core)] = "100";
  }
  expected["ddr_size"] = std::to_string(device()->info().max_memory);  // all of the board's DDR
  EXPECT_EQ(device()->read_configuration(), expected);
  EXPECT_TRUE(device()->ready());
}

TEST_F(Configure, UnknownKeyIsInvalidConfigurationListingValidKeys) {
  std::string message = error_of<InvalidConfiguration>({{"turbo", "1"}});
  EXPECT_NE(message.find("metis-0:1:0"), std::string::npos) << message;
  EXPECT_NE(message.find("'turbo'"), std::string::npos) << message;
  EXPECT_NE(message.find("clock_profile, clock_profile_core_0..3, mvm_utilisation_core_0..3"),
            std::string::npos)
      << message;
  // Unknown even beside a valid key, and reported before a bad value.
  message = error_of<InvalidConfiguration>({{"clock_profile", "x"}, {"mvm_utilisation", "50"}});
  EXPECT_NE(message.find("'mvm_utilisation'"), std::string::npos) << message;
}

TEST_F(Configure, PerCoreKeysStopAtTheLastCore) {
  set_env(sim::kSubdevicesEnv, "2");
  EXPECT_EQ(device()->configure({{"clock_profile_core_1", "500"}}), false);
  std::string message = error_of<InvalidConfiguration>({{"clock_profile_core_2", "500"}});
  EXPECT_NE(message.find("clock_profile_core_0..1"), std::string::npos) << message;
  message = error_of<InvalidConfiguration>({{"mvm_utilisation_core_01", "50"}});
  EXPECT_NE(message.find("'mvm_utilisation_core_01'"), std::string::npos) << message;
}

TEST_F(Configure, NonIntegerValueIsInvalidArgumentNamingKeyValueAndRange) {
  std::string message = error_of<InvalidArgument>({{"clock_profile", "fast"}});
  EXPECT_NE(message.find("clock_profile='fast'"), std::string::npos) << message;
  EXPECT_NE(message.find("[100, 1000]"), std::string::npos) << message;
  for (const char *bad : {"", "800.5", "8e2", " 800", "0x320"})
    EXPECT_NE(error_of<InvalidArgument>({{"clock_profile", bad}}).find("clock_profile='"),
              std::string::npos)
        << "'" << bad << "' was accepted";
}

TEST_F(Configure, OutOfRangeValueIsInvalidArgument) {
  EXPECT_NE(error_of<InvalidArgument>({{"clock_profile", "99"}}).find("'99'"), std::string::npos);
  EXPECT_NE(error_of<InvalidArgument>({{"clock_profile_core_3", "1001"}}).find("'1001'"),
            std::string::npos);
  std::string message = error_of<InvalidArgument>({{"mvm_utilisation_core_0", "0"}});
  EXPECT_NE(message.find("mvm_utilisation_core_0='0'"), std::string::npos) << message;
  EXPECT_NE(message.find("[1, 100]"), std::string::npos) << message;
  EXPECT_NE(error_of<InvalidArgument>({{"mvm_utilisation_core_0", "101"}}).find("'101'"),
            std::string::npos);
  EXPECT_EQ(device()->configure({{"clock_profile", "100"}, {"mvm_utilisation_core_2", "1"}}),
            false);
}

TEST_F(Configure, RejectedRequestChangesNothing) {
  auto before = device()->read_configuration();
  error_of<InvalidArgument>({{"clock_profile", "500"}, {"mvm_utilisation_core_0", "150"}});
  EXPECT_EQ(device()->read_configuration(), before);
  EXPECT_TRUE(device()->ready());
}

TEST_F(Configure, ReturnsFalseThenReadyTurnsTrueAfterTheDelay) {
  auto metis = device();
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(metis->configure({{"clock_profile", "1000"}}));
  EXPECT_TRUE(pending_unless_delay_passed(metis->ready(), start, kDelay));
  ASSERT_TRUE(wait_ready(*metis, 5s));
  EXPECT_GE(std::chrono::steady_clock::now() - start, kDelay);
  EXPECT_EQ(metis->read_configuration().at("clock_profile"), "1000");
}

TEST_F(Configure, SameValuesAreAppliedAtOnce) {
  auto metis = device();
  EXPECT_TRUE(metis->configure({{"clock_profile", "800"}}));
  EXPECT_TRUE(metis->configure({}));
  const auto asked = std::chrono::steady_clock::now();
  EXPECT_FALSE(metis->configure({{"mvm_utilisation_core_1", "50"}}));
  // Same as the pending change: still pending until it lands.
  EXPECT_TRUE(pending_unless_delay_passed(metis->configure({{"mvm_utilisation_core_1", "50"}}),
                                          asked, kDelay));
  ASSERT_TRUE(wait_ready(*metis, 5s));
  EXPECT_TRUE(metis->configure({{"mvm_utilisation_core_1", "50"}}));
}

// Voyager's device manager configures ddr_size (bytes) and device_firmware='1' beside the clocks.
TEST_F(Configure, DdrSizeIsKeptUpToTheBoardsMemory) {
  auto metis = device();
  const uint64_t capacity = metis->info().max_memory;
  EXPECT_FALSE(metis->configure({{"ddr_size", std::to_string(capacity / 2)}}));
  EXPECT_EQ(metis->read_configuration().at("ddr_size"), std::to_string(capacity / 2));
  std::string message = error_of<InvalidArgument>({{"ddr_size", std::to_string(capacity + 1)}});
  EXPECT_NE(message.find("ddr_size='" + std::to_string(capacity + 1) + "'"), std::string::npos)
      << message;
  EXPECT_NE(message.find(", " + std::to_string(capacity) + "]"), std::string::npos) << message;
  EXPECT_NE(error_of<InvalidArgument>({{"ddr_size", "1GB"}}).find("'1GB'"), std::string::npos);
}

TEST_F(Configure, DeviceFirmwareIsAcceptedAndChangesNoSetting) {
  auto metis = device();
  auto before = metis->read_configuration();
  EXPECT_TRUE(metis->configure({{"device_firmware", "1"}}));
  EXPECT_EQ(metis->read_configuration(), before);
  std::string message = error_of<InvalidArgument>({{"device_firmware", "2"}});
  EXPECT_NE(message.find("device_firmware='2'"), std::string::npos) << message;
}

TEST_F(Configure, ZeroDelayAppliesAtOnce) {
  set_env(sim::kConfigDelayEnv, "0");
  EXPECT_TRUE(device()->configure({{"clock_profile", "400"}}));
  EXPECT_TRUE(device()->ready());
}

TEST_F(Configure, ClockProfileSetsEveryCoreAndPerCoreKeysOverrideIt) {
  auto metis = device();
  metis->configure({{"clock_profile", "600"}, {"clock_profile_core_2", "300"}});
  auto settings = metis->read_configuration();
  EXPECT_EQ(settings.at("clock_profile"), "600");
  EXPECT_EQ(settings.at("clock_profile_core_0"), "600");
  EXPECT_EQ(settings.at("clock_profile_core_1"), "600");
  EXPECT_EQ(settings.at("clock_profile_core_2"), "300");
  EXPECT_EQ(settings.at("clock_profile_core_3"), "600");
  metis->configure({{"clock_profile_core_0", "700"}});
  EXPECT_EQ(metis->read_configuration().at("clock_profile_core_2"), "300");
  metis->configure({{"clock_profile", "+900"}});
  for (int core = 0; core < 4; ++core)
    EXPECT_EQ(metis->read_configuration().at("clock_profile_core_" + std::to_string(core)), "900");
}

// A child forked by one thread while another is inside configure() shares the configuration
// lock's open file: unless it closes its copy, every configure() anywhere waits for it to exit.
TEST_F(Configure, ChildrenForkedDuringAConfigureNeverKeepItsLock) {
  set_env(sim::kConfigDelayEnv, "0");
  auto metis = device();
  std::atomic<bool> stop{false};
  std::promise<void> stopped;
  std::thread configurer([&] {
    for (int i = 0; !stop; ++i) metis->configure({{"clock_profile", i % 2 ? "500" : "600"}});
    stopped.set_value();
  });
  int release_children[2];
  ASSERT_EQ(::pipe2(release_children, O_CLOEXEC), 0);
  std::vector<pid_t> children;
  for (int i = 0; i < 20; ++i) {  // most land inside a configure(), which holds the lock
    pid_t child = ::fork();
    if (child == 0) {
      ::close(release_children[1]);
      char ignored;
      [[maybe_unused]] ssize_t got = ::read(release_children[0], &ignored, 1);
      ::_exit(0);
    }
    children.push_back(child);
    std::this_thread::sleep_for(1ms);
  }
  stop = true;
  const bool finished = stopped.get_future().wait_for(3s) == std::future_status::ready;
  EXPECT_TRUE(finished) << "configure() waits for a forked child's copy of the lock";
  if (finished) {
    HelperProcess other({"configure", "metis-0:1:0", "clock_profile=700"});
    EXPECT_EQ(other.read_line(3s), "applied") << "a forked child kept the configuration lock";
  }
  // The children exit, which frees a lock they kept, so the thread ends either way.
  ::close(release_children[0]);
  ::close(release_children[1]);
  for (pid_t child : children) ::waitpid(child, nullptr, 0);
  configurer.join();
}

TEST_F(Configure, ConfigurationIsSharedWithOtherProcesses) {
  constexpr std::chrono::milliseconds kSharedDelay{2000};
  set_env(sim::kConfigDelayEnv, std::to_string(kSharedDelay.count()));
  auto metis = device();
  const auto asked = std::chrono::steady_clock::now();
  EXPECT_FALSE(metis->configure({{"clock_profile", "1000"}, {"mvm_utilisation_core_3", "25"}}));
  {
    HelperProcess reader({"read", "metis-0:1:0"});
    Settings seen;
    for (std::string line = reader.read_line(); !line.empty(); line = reader.read_line())
      seen[line.substr(0, line.find('='))] = line.substr(line.find('=') + 1);
    EXPECT_EQ(seen.at("clock_profile"), "1000");
    EXPECT_EQ(seen.at("clock_profile_core_1"), "1000");
    EXPECT_EQ(seen.at("mvm_utilisation_core_3"), "25");
    EXPECT_TRUE(pending_unless_delay_passed(seen.at("ready") != "0", asked, kSharedDelay))
        << "the change is pending for every process";
    EXPECT_EQ(reader.finish(), 0);
  }
  ASSERT_TRUE(wait_ready(*metis, 5s));
  const auto written = std::chrono::steady_clock::now();
  HelperProcess writer({"configure", "metis-0:1:0", "clock_profile_core_0=200"});
  EXPECT_EQ(writer.read_line(), "pending");
  EXPECT_EQ(writer.finish(), 0);
  EXPECT_EQ(metis->read_configuration().at("clock_profile_core_0"), "200");
  // The helper's start and exit (LeakSanitizer's scan under ASan) can take a while on a loaded
  // machine.
  EXPECT_TRUE(pending_unless_delay_passed(metis->ready(), written, kSharedDelay));
}

TEST_F(Configure, ErrorsInAnotherProcessAreTheSameTypes) {
  HelperProcess writer({"configure", "metis-0:1:0", "clock_profile=5000"});
  std::string line = writer.read_line();
  EXPECT_EQ(line.rfind("InvalidArgument: ", 0), 0u) << line;
  EXPECT_EQ(writer.finish(), 1);
}

TEST_F(Configure, CorruptStateFileIsReportedNamingIt) {
  std::string path = runtime_dir_ + "/metis-0:1:0.config";
  std::FILE *file = std::fopen(path.c_str(), "w");
  ASSERT_NE(file, nullptr);
  std::fputs("version=1\nclock_profile=12345\n", file);
  std::fclose(file);
  try {
    device()->read_configuration();
    FAIL() << "corrupt configuration file was read";
  } catch (const InvalidConfiguration &error) {
    EXPECT_NE(std::string(error.what()).find(path), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace axstream::hal::testing
