// Shared by the hal tests: a fixture that gives every test its own runtime directory and a
// freshly enumerated simulated device set, and a child process running tests/hal/hal_helper.cc
// (a second process with its own file descriptors, as another application would be).
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "axstream/hal/device.h"
#include "axstream/hal/sim.h"

extern char **environ;

namespace axstream::hal::testing {

// A configuration change asked at `asked` stays pending for `delay`: `landed` (what ready() or a
// repeated configure() returned after it) must be false unless that much time has passed; a
// test descheduled past the delay (a loaded machine, the ASan run) rightly finds it landed.
inline ::testing::AssertionResult pending_unless_delay_passed(
    bool landed, std::chrono::steady_clock::time_point asked, std::chrono::milliseconds delay) {
  const auto elapsed = std::chrono::steady_clock::now() - asked;
  if (!landed || elapsed >= delay) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "the change landed "
         << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()
         << " ms after it was asked, before its " << delay.count() << " ms delay";
}

// Every test starts from the default environment (one device, four cores) in a runtime directory
// of its own, so tests neither see each other's locks nor those of other processes.
class SimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char *name : {sim::kDevicesEnv, sim::kSubdevicesEnv, sim::kBoardTypeEnv,
                             sim::kConfigDelayEnv, sim::kPacingEnv, sim::kConfigFileEnv})
      ::unsetenv(name);
    std::string pattern =
        (std::filesystem::temp_directory_path() / "axstream-hal-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    runtime_dir_ = pattern;
    ::setenv(sim::kRuntimeDirEnv, runtime_dir_.c_str(), 1);
    reset_devices_for_testing();
  }
  void TearDown() override {
    reset_devices_for_testing();
    std::error_code ignored;
    std::filesystem::remove_all(runtime_dir_, ignored);
  }
  // Sets `name` and enumerates the devices again.
  static void set_env(const char *name, const std::string &value) {
    ::setenv(name, value.c_str(), 1);
    reset_devices_for_testing();
  }
  static std::shared_ptr<Device> device(const std::string &name = "metis-0:1:0") {
    auto found = find_device(name);
    if (!found) throw std::runtime_error("no device " + name);
    return found;
  }
  std::string runtime_dir_;
};

// tests/hal/hal_helper run as a child process with pipes on its stdin and stdout. Killed (if
// still running) and reaped when destroyed.
class HelperProcess {
 public:
  explicit HelperProcess(const std::vector<std::string> &arguments) {
    int to_child[2], from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    ::posix_spawn_file_actions_adddup2(&actions, to_child[0], 0);
    ::posix_spawn_file_actions_adddup2(&actions, from_child[1], 1);
    std::vector<std::string> argv_text{helper_path()};
    argv_text.insert(argv_text.end(), arguments.begin(), arguments.end());
    std::vector<char *> argv;
    for (auto &argument : argv_text) argv.push_back(argument.data());
    argv.push_back(nullptr);
    int status = ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(to_child[0]);
    ::close(from_child[1]);
    stdin_ = to_child[1];
    stdout_ = from_child[0];
    if (status != 0) throw std::runtime_error("cannot start " + argv_text[0]);
  }
  ~HelperProcess() {
    if (stdin_ >= 0) ::close(stdin_);
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      wait();
    }
    ::close(stdout_);
  }
  pid_t pid() const { return pid_; }

  // One line of the child's output, without the newline; "" at end of output or after timeout.
  std::string read_line(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      size_t newline = buffer_.find('\n');
      if (newline != std::string::npos) {
        std::string line = buffer_.substr(0, newline);
        buffer_.erase(0, newline + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return {};
      struct pollfd ready {
        stdout_, POLLIN, 0
      };
      if (::poll(&ready, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[1024];
      ssize_t length = ::read(stdout_, chunk, sizeof chunk);
      if (length <= 0) {
        std::string rest = buffer_;
        buffer_.clear();
        return rest;
      }
      buffer_.append(chunk, static_cast<size_t>(length));
    }
  }
  // Closes the child's stdin (a holding child then releases and exits) and reaps it.
  int finish() {
    ::close(stdin_);
    stdin_ = -1;
    return wait();
  }
  void kill_and_reap() {
    ::kill(pid_, SIGKILL);
    wait();
  }

 private:
  static std::string helper_path() {
    if (const char *path = std::getenv("AXSTREAM_HAL_TEST_HELPER")) return path;
    return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "hal_helper").string();
  }
  int wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  pid_t pid_ = -1;
  bool reaped_ = false;
  int stdin_ = -1;
  int stdout_ = -1;
  std::string buffer_;
};

}  // namespace axstream::hal::testing
