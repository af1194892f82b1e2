// The C API (axruntime/axruntime.h): every function, its NULL/invalid-argument behaviour, error
// mapping, per-thread last errors, device reservation, and results equal to the C++ runtime's.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "axruntime/axruntime.hpp"
#include "axstream/runtime/runtime.h"
#include "cast_output_package.h"

namespace {

std::string model_path(const char *name) {
  const char *models = std::getenv("AXSTREAM_TEST_MODELS");
  if (models == nullptr) return {};
  std::filesystem::path path = std::filesystem::path(models) / name;
  return std::filesystem::exists(path / "model.json") ? path.string() : std::string();
}

#define REQUIRE_MODEL(variable, name)                                                    \
  const std::string variable = model_path(name);                                         \
  if (variable.empty()) {                                                                \
    GTEST_SKIP() << "test package " << name << " not found under $AXSTREAM_TEST_MODELS"; \
  }

std::string last_error() { return axr_last_error_string(nullptr); }

class CapiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    context_ = axr::to_ptr(axr_create_context());
    ASSERT_NE(context_, nullptr);
  }
  axrContext *ctx() { return context_.get(); }

  axrDeviceInfo first_device() {
    axrDeviceInfo *devices = nullptr;
    size_t count = axr_list_devices(ctx(), &devices);
    EXPECT_GE(count, 1u) << last_error();
    return count > 0 ? devices[0] : axrDeviceInfo{};
  }

  axr::ptr<axrContext> context_;
};

TEST(CapiStatic, ApiVersionIsOnePointZero) { EXPECT_EQ(axr_api_version(), 0x10000u); }

TEST(CapiStatic, ErrorStringNamesEveryResultAndIsNeverNull) {
  std::vector<std::string> seen;
  for (int result = AXR_SUCCESS; result <= AXR_ERROR_UNKNOWN_ERROR; ++result) {
    const char *text = axr_error_string(static_cast<axrResult>(result));
    ASSERT_NE(text, nullptr);
    EXPECT_GT(std::strlen(text), 0u);
    for (const auto &previous : seen) EXPECT_NE(previous, text);
    seen.emplace_back(text);
  }
  EXPECT_STREQ(axr_error_string(AXR_ERROR_DEVICE_IN_USE), "device in use");
  EXPECT_NE(axr_error_string(static_cast<axrResult>(99)), nullptr);
}

TEST(CapiStatic, EnumValuesFollowTheDocumentedOrder) {
  EXPECT_EQ(AXR_SUCCESS, 0);
  EXPECT_EQ(AXR_ERROR_PENDING_ERROR, 10);
  EXPECT_EQ(AXR_ERROR_UNKNOWN_ERROR, 11);
  EXPECT_EQ(AXR_LOG_ERROR, 6);
  EXPECT_EQ(AXR_FLOAT, 2);
  EXPECT_EQ(AXR_MAX_TENSOR_DIMS, 8);
  EXPECT_EQ(AXR_BOARD_TYPE_UNKNOWN, 6);
  EXPECT_EQ(AXR_BOARD_METIS_OMEGA_PCIE, AXR_BOARD_TYPE_PCIE);
}

TEST(CapiStatic, BoardTypeStringUsesPythonBoardTypeNames) {
  EXPECT_STREQ(axr_board_type_string(AXR_BOARD_TYPE_ALPHA_PCIE), "alpha_pcie");
  EXPECT_STREQ(axr_board_type_string(AXR_BOARD_TYPE_PCIE), "pcie");
  EXPECT_STREQ(axr_board_type_string(AXR_BOARD_TYPE_M2), "m2");
  EXPECT_STREQ(axr_board_type_string(AXR_BOARD_TYPE_SBC), "sbc");
  EXPECT_STREQ(axr_board_type_string(AXR_BOARD_TYPE_UNKNOWN), "unknown");
  EXPECT_NE(axr_board_type_string(static_cast<axrBoardType>(42)), nullptr);
}

TEST(CapiStatic, NullArgumentsReturnTheDocumentedFailureWithoutCrashing) {
  axr_destroy(nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_SUCCESS);

  auto expect_invalid = [](const char *call) {
    EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT) << call;
    EXPECT_NE(std::strstr(axr_last_error_string(nullptr), "NULL"), nullptr)
        << call << ": " << axr_last_error_string(nullptr);
  };
  EXPECT_EQ(axr_get_context(nullptr), nullptr);
  expect_invalid("axr_get_context");
  axr_set_logger(nullptr, AXR_LOG_INFO, nullptr, nullptr);
  expect_invalid("axr_set_logger");
  EXPECT_EQ(axr_create_properties(nullptr, "a=1"), nullptr);
  expect_invalid("axr_create_properties");
  EXPECT_EQ(axr_get_property(nullptr, "a"), nullptr);
  expect_invalid("axr_get_property");
  axr_set_property(nullptr, "a", "1");
  expect_invalid("axr_set_property");
  axr_del_property(nullptr, "a");
  expect_invalid("axr_del_property");
  EXPECT_EQ(axr_list_properties(nullptr), nullptr);
  expect_invalid("axr_list_properties");
  axrDeviceInfo *devices = nullptr;
  EXPECT_EQ(axr_list_devices(nullptr, &devices), 0u);
  expect_invalid("axr_list_devices");
  EXPECT_EQ(axr_configure_device(nullptr, nullptr, nullptr), AXR_ERROR_INVALID_ARGUMENT);
  expect_invalid("axr_configure_device");
  EXPECT_EQ(axr_device_ready(nullptr, nullptr), AXR_ERROR_INVALID_ARGUMENT);
  expect_invalid("axr_device_ready");
  EXPECT_EQ(axr_read_device_configuration(nullptr, nullptr), nullptr);
  expect_invalid("axr_read_device_configuration");
  EXPECT_EQ(axr_device_connect(nullptr, nullptr, 1, nullptr), nullptr);
  expect_invalid("axr_device_connect");
  EXPECT_EQ(axr_load_model(nullptr, "x"), nullptr);
  expect_invalid("axr_load_model");
  EXPECT_EQ(axr_num_model_inputs(nullptr), 0u);
  expect_invalid("axr_num_model_inputs");
  EXPECT_EQ(axr_num_model_outputs(nullptr), 0u);
  expect_invalid("axr_num_model_outputs");
  EXPECT_EQ(axr_get_model_input(nullptr, 0).ndims, 0u);
  expect_invalid("axr_get_model_input");
  EXPECT_EQ(axr_get_model_output(nullptr, 0).ndims, 0u);
  expect_invalid("axr_get_model_output");
  EXPECT_EQ(axr_get_model_properties(nullptr), nullptr);
  expect_invalid("axr_get_model_properties");
  EXPECT_EQ(axr_tensor_size(nullptr), 0u);
  expect_invalid("axr_tensor_size");
  EXPECT_EQ(axr_load_model_instance(nullptr, nullptr, nullptr), nullptr);
  expect_invalid("axr_load_model_instance");
  EXPECT_EQ(axr_run_model_instance(nullptr, nullptr, 0, nullptr, 0), AXR_ERROR_INVALID_ARGUMENT);
  expect_invalid("axr_run_model_instance");
}

TEST_F(CapiTest, NullArgumentsBesideAValidHandleAreRejected) {
  auto properties = axr_create_properties(ctx(), nullptr);
  ASSERT_NE(properties, nullptr);
  EXPECT_EQ(axr_get_property(properties, nullptr), nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);
  axr_set_property(properties, "key", nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(axr_list_properties(properties), "");
  EXPECT_EQ(axr_load_model(ctx(), nullptr), nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(last_error().c_str(), "axr_load_model: path is NULL");
  // The root as a package directory: the message named "//model.json".
  EXPECT_EQ(axr_load_model(ctx(), "/"), nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("/model.json"), std::string::npos) << last_error();
  EXPECT_EQ(last_error().find("//"), std::string::npos) << last_error();
  EXPECT_EQ(axr_configure_device(ctx(), nullptr, properties), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(axr_device_ready(ctx(), nullptr), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(axr_read_device_configuration(ctx(), nullptr), nullptr);
}

TEST_F(CapiTest, DestroyedOrMistypedHandlesAreRejected) {
  axrProperties *properties = axr_create_properties(ctx(), "a=1");
  ASSERT_NE(properties, nullptr);
  axr_destroy(AXR_OBJECT(properties));
  EXPECT_EQ(axr_last_error(nullptr), AXR_SUCCESS);
  EXPECT_EQ(axr_get_property(properties, "a"), nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("not a live axr object"), std::string::npos) << last_error();
  axr_destroy(AXR_OBJECT(properties));  // twice: rejected, not a double free
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);
  std::ostringstream address;  // the message names the stale handle by its address
  address << "object (" << static_cast<const void *>(properties) << ") is not a live axr object";
  EXPECT_NE(last_error().find(address.str()), std::string::npos) << last_error();

  EXPECT_EQ(axr_num_model_inputs(reinterpret_cast<axrModel *>(ctx())), 0u);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("is an axrContext, expected an axrModel"), std::string::npos)
      << last_error();
}

// A handle is never reused: destroying a stale one (say from an axr::ptr that outlived its
// context) is rejected instead of destroying whatever object the allocator put at that address.
TEST(CapiHandles, StaleHandlesNeverNameANewerObject) {
  axrContext *first = axr_create_context();
  axrProperties *first_properties = axr_create_properties(first, "a=1");
  axr_destroy(AXR_OBJECT(first));
  axrContext *second = axr_create_context();
  axrProperties *second_properties = axr_create_properties(second, "b=2");
  EXPECT_NE(second, first);
  EXPECT_NE(second_properties, first_properties);
  axr_destroy(AXR_OBJECT(first_properties));
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);
  axr_destroy(AXR_OBJECT(first));
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_STREQ(axr_get_property(second_properties, "b"), "2") << last_error();
  EXPECT_EQ(axr_get_context(AXR_OBJECT(second_properties)), second);
  axr_destroy(AXR_OBJECT(second));
  EXPECT_EQ(axr_last_error(nullptr), AXR_SUCCESS) << last_error();
}

TEST_F(CapiTest, GetContextReturnsTheOwningContext) {
  EXPECT_EQ(axr_get_context(AXR_OBJECT(ctx())), ctx());
  axrProperties *properties = axr_create_properties(ctx(), "");
  EXPECT_EQ(axr_get_context(AXR_OBJECT(properties)), ctx());
}

TEST_F(CapiTest, PropertiesParseSetDeleteAndList) {
  axrProperties *properties = axr_create_properties(ctx(), "b=2; a = 1 \nc=x=y;;");
  ASSERT_NE(properties, nullptr) << last_error();
  EXPECT_STREQ(axr_get_property(properties, "a"), "1");
  EXPECT_STREQ(axr_get_property(properties, "b"), "2");
  EXPECT_STREQ(axr_get_property(properties, "c"), "x=y");
  EXPECT_EQ(axr_get_property(properties, "missing"), nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_SUCCESS);  // absent is not an error
  EXPECT_STREQ(axr_list_properties(properties), "a;b;c");
  axr_set_property(properties, "d", "4");
  axr_set_property(properties, "a", "10");
  axr_del_property(properties, "b");
  axr_del_property(properties, "never-there");
  EXPECT_EQ(axr_last_error(nullptr), AXR_SUCCESS);
  EXPECT_STREQ(axr_get_property(properties, "a"), "10");
  EXPECT_STREQ(axr_list_properties(properties), "a;c;d");

  axrProperties *repeated = axr_create_properties(ctx(), "k=1;empty=;k=2;");
  ASSERT_NE(repeated, nullptr) << last_error();
  EXPECT_STREQ(axr_get_property(repeated, "k"), "2");  // the last of a repeated key
  EXPECT_STREQ(axr_get_property(repeated, "empty"), "");
  EXPECT_STREQ(axr_list_properties(repeated), "empty;k");
}

// A key the key=value;key=value form cannot hold would make axr_list_properties name keys that
// do not exist ("x;y" lists as two).
TEST_F(CapiTest, SetPropertyRejectsKeysTheStringFormCannotHold) {
  axrProperties *properties = axr_create_properties(ctx(), "a=1");
  ASSERT_NE(properties, nullptr) << last_error();
  for (const char *key : {"x;y", "k=v", "two\nlines", " padded"}) {
    axr_set_property(properties, key, "1");
    EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_VALUE_ERROR) << key;
    EXPECT_NE(last_error().find("axr_set_property: key '"), std::string::npos) << last_error();
  }
  EXPECT_STREQ(axr_list_properties(properties), "a");
  axr_set_property(properties, "with space", "v;w=x");  // inner blanks, and any value, are fine
  EXPECT_EQ(axr_last_error(nullptr), AXR_SUCCESS) << last_error();
  EXPECT_STREQ(axr_get_property(properties, "with space"), "v;w=x");
  EXPECT_STREQ(axr_list_properties(properties), "a;with space");
}

// The lookups a program calls while reporting an error leave that error in place, whatever order
// printf's arguments are evaluated in.
TEST_F(CapiTest, PureLookupsLeaveTheLastError) {
  axr_load_model(ctx(), nullptr);
  ASSERT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);
  const std::string message = last_error();
  axr_error_string(AXR_ERROR_INVALID_ARGUMENT);
  axr_board_type_string(AXR_BOARD_TYPE_PCIE);
  axr_api_version();
  axr_last_error_string(AXR_OBJECT(ctx()));
  EXPECT_EQ(axr_last_error(AXR_OBJECT(ctx())), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(last_error(), message);
}

// One axrProperties set in one thread while others read it: the map is never read mid-change
// (ASan, scripts/sanitize.sh, saw heap-use-after-free inside axr_list_properties before).
TEST_F(CapiTest, PropertiesSetInOneThreadAndReadInOthersStayConsistent) {
  axrProperties *shared = axr_create_properties(ctx(), "stable=1");
  std::atomic<int> failures{0}, started{0};
  auto start_together = [&] {
    ++started;
    while (started < 3) std::this_thread::yield();
  };
  std::thread writer([&] {
    start_together();
    for (int i = 0; i < 20000; ++i) {
      std::string key = "key_" + std::to_string(i % 40);
      axr_set_property(shared, key.c_str(), ("value_" + std::to_string(i) + "_not_short").c_str());
      if (i % 3 == 0) axr_del_property(shared, key.c_str());
      if (axr_last_error(nullptr) != AXR_SUCCESS) ++failures;
    }
  });
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      start_together();
      for (int i = 0; i < 20000; ++i) {
        if (axr_list_properties(shared) == nullptr) ++failures;
        const char *stable = axr_get_property(shared, "stable");
        if (stable == nullptr || std::strcmp(stable, "1") != 0) ++failures;
      }
    });
  }
  writer.join();
  for (auto &reader : readers) reader.join();
  EXPECT_EQ(failures, 0);
}

TEST_F(CapiTest, MalformedInitialPropertiesAreAValueError) {
  EXPECT_EQ(axr_create_properties(ctx(), "a=1;oops"), nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_VALUE_ERROR);
  EXPECT_NE(last_error().find("'oops'"), std::string::npos) << last_error();
  EXPECT_EQ(axr_create_properties(ctx(), "=1"), nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_VALUE_ERROR);
}

TEST_F(CapiTest, LastErrorIsPerThread) {
  std::string seen_a, seen_b;
  axrResult result_a = AXR_SUCCESS, result_b = AXR_SUCCESS;
  std::atomic<int> arrived{0};
  auto wait_for_both = [&] {
    ++arrived;
    while (arrived.load() < 2) std::this_thread::yield();
  };
  std::thread a([&] {
    axr_load_model(ctx(), nullptr);  // INVALID_ARGUMENT
    wait_for_both();
    result_a = axr_last_error(AXR_OBJECT(ctx()));
    seen_a = axr_last_error_string(AXR_OBJECT(ctx()));
  });
  std::thread b([&] {
    axr_create_properties(ctx(), "broken");  // VALUE_ERROR
    wait_for_both();
    result_b = axr_last_error(AXR_OBJECT(ctx()));
    seen_b = axr_last_error_string(AXR_OBJECT(ctx()));
  });
  a.join();
  b.join();
  EXPECT_EQ(result_a, AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(seen_a, "axr_load_model: path is NULL");
  EXPECT_EQ(result_b, AXR_ERROR_VALUE_ERROR);
  EXPECT_NE(seen_b.find("axr_create_properties: properties entry 'broken'"), std::string::npos)
      << seen_b;
  EXPECT_EQ(axr_last_error(nullptr), AXR_SUCCESS);  // this thread made no failing call
}

TEST_F(CapiTest, SuccessfulCallClearsTheLastError) {
  axr_load_model(ctx(), nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);
  axr_destroy(AXR_OBJECT(axr_create_properties(ctx(), "a=1")));
  EXPECT_EQ(axr_last_error(nullptr), AXR_SUCCESS);
  EXPECT_STREQ(axr_last_error_string(nullptr), "");
}

struct LogRecord {
  axrLogLevel level;
  std::string message;
};

void record_log(void *arg, axrLogLevel level, const char *message) {
  static_cast<std::vector<LogRecord> *>(arg)->push_back({level, message});
}

TEST_F(CapiTest, LoggerReceivesMessagesAtOrAboveItsLevel) {
  std::vector<LogRecord> records;
  axr_set_logger(ctx(), AXR_LOG_ERROR, record_log, &records);
  ASSERT_EQ(axr_last_error(nullptr), AXR_SUCCESS);
  axrProperties *properties = axr_create_properties(ctx(), "");
  axr_destroy(AXR_OBJECT(properties));  // a DEBUG message: below ERROR, not delivered
  EXPECT_TRUE(records.empty());
  axr_load_model(ctx(), "/nonexistent/package");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].level, AXR_LOG_ERROR);
  EXPECT_EQ(records[0].message, last_error());
  EXPECT_NE(records[0].message.find("/nonexistent/package"), std::string::npos)
      << records[0].message;

  records.clear();
  axr_set_logger(ctx(), AXR_LOG_TRACE, record_log, &records);
  axr_destroy(AXR_OBJECT(axr_create_properties(ctx(), "")));
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].level, AXR_LOG_DEBUG);
  EXPECT_EQ(records[0].message, "axr_destroy: destroying properties");

  records.clear();
  axr_set_logger(ctx(), AXR_LOG_TRACE, nullptr, nullptr);
  axr_load_model(ctx(), "/nonexistent/package");
  EXPECT_TRUE(records.empty());

  axr_set_logger(ctx(), static_cast<axrLogLevel>(17), record_log, &records);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_VALUE_ERROR);
}

// A logger that calls back into the API (which docs/c-api.md allows), with the call it makes.
struct CallingLogger {
  std::function<void()> call;
  std::vector<LogRecord> records;
};

void calling_log(void *arg, axrLogLevel level, const char *message) {
  auto *logger = static_cast<CallingLogger *>(arg);
  logger->records.push_back({level, message});
  logger->call();
}

TEST_F(CapiTest, LoggerCallingBackIntoTheApiLeavesTheLoggedCallsOwnResult) {
  axrProperties *properties = axr_create_properties(ctx(), "key=1");
  // A successful call inside the logger must not turn the failure it hears about into success.
  CallingLogger succeeding{[&] { axr_get_property(properties, "key"); }, {}};
  axr_set_logger(ctx(), AXR_LOG_TRACE, calling_log, &succeeding);
  EXPECT_EQ(axr_load_model(ctx(), "/nonexistent/package"), nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("/nonexistent/package"), std::string::npos) << last_error();
  EXPECT_EQ(axr_configure_device(ctx(), nullptr, nullptr), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(last_error(), "axr_configure_device: device is NULL");
  ASSERT_EQ(succeeding.records.size(), 2u);

  // A failing call inside the logger must not turn a successful call into a failure.
  CallingLogger failing{[] { axr_get_property(nullptr, "key"); }, {}};
  axr_set_logger(ctx(), AXR_LOG_TRACE, calling_log, &failing);
  axr_destroy(AXR_OBJECT(axr_create_properties(ctx(), "")));  // an AXR_LOG_DEBUG message
  ASSERT_EQ(failing.records.size(), 1u);
  EXPECT_EQ(axr_last_error(nullptr), AXR_SUCCESS) << last_error();
  EXPECT_STREQ(axr_last_error_string(nullptr), "");
  axr_set_logger(ctx(), AXR_LOG_TRACE, nullptr, nullptr);
}

// The state a logger's `arg` points to, with a check that no callback uses it once "freed".
struct GuardedLoggerState {
  std::atomic<bool> entered{false};
  std::atomic<bool> freed{false};
  std::atomic<int> used_after_free{0};
};

void slow_log(void *arg, axrLogLevel, const char *) {
  auto *state = static_cast<GuardedLoggerState *>(arg);
  state->entered = true;
  // Still inside the callback when the other thread replaces the logger or destroys the context.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  if (state->freed) ++state->used_after_free;
}

// After axr_set_logger (or axr_destroy of the context) returns, the old logger is not running and
// is not called again, so the program may free what its `arg` points to.
TEST(CapiLogger, NoCallbackOfAReplacedLoggerRunsAfterSetLoggerReturns) {
  for (bool destroy_context : {false, true}) {
    axrContext *context = axr_create_context();
    GuardedLoggerState state;
    axr_set_logger(context, AXR_LOG_ERROR, slow_log, &state);
    std::thread failing([&] { axr_load_model(context, "/nonexistent/package"); });
    while (!state.entered) std::this_thread::yield();
    if (destroy_context) {
      axr_destroy(AXR_OBJECT(context));
    } else {
      axr_set_logger(context, AXR_LOG_ERROR, nullptr, nullptr);
    }
    EXPECT_EQ(axr_last_error(nullptr), AXR_SUCCESS) << last_error();
    state.freed = true;
    failing.join();
    EXPECT_EQ(state.used_after_free, 0) << (destroy_context ? "axr_destroy" : "axr_set_logger")
                                        << " returned while the old logger was still running";
    if (!destroy_context) axr_destroy(AXR_OBJECT(context));
  }
}

// Waits up to `limit` for the forked child `pid`; kills it and returns false if it is still
// running then (hung), true if it exited with status 0.
bool child_exits_cleanly(pid_t pid, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// A child forked while other threads of the parent are inside axr calls (or inside a logger
// callback) can use the API: a lock another thread held at fork() stayed locked in the child for
// good, and about half such children hung in their first call.
TEST(CapiFork, ChildForkedWhileOtherThreadsCallTheApiIsNotBlocked) {
  axrContext *context = axr_create_context();
  axrProperties *properties = axr_create_properties(context, "a=1");
  GuardedLoggerState logging;
  axr_set_logger(context, AXR_LOG_ERROR, slow_log, &logging);
  std::atomic<bool> stop{false};
  std::vector<std::thread> callers;
  for (int t = 0; t < 2; ++t) {
    callers.emplace_back([&] {
      while (!stop) {
        axr_get_property(properties, "a");
        axr_set_property(properties, "b", "2");
        axr_list_properties(properties);
      }
    });
  }
  // And one thread inside the (slow) logger at most forks.
  callers.emplace_back([&] {
    while (!stop) axr_load_model(context, "/nonexistent/package");
  });
  int not_clean = 0;
  constexpr int kForks = 60;
  for (int i = 0; i < kForks; ++i) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0) << std::strerror(errno);
    if (pid == 0) {
      axrContext *own = axr_create_context();
      bool ok = own != nullptr && axr_get_property(properties, "a") != nullptr;
      axr_set_property(properties, "c", "3");
      ok = ok && axr_last_error(nullptr) == AXR_SUCCESS;
      axr_set_logger(context, AXR_LOG_ERROR, nullptr, nullptr);  // the parent's callbacks: gone
      axr_destroy(AXR_OBJECT(own));
      axr_destroy(AXR_OBJECT(context));
      ::_exit(ok && axr_last_error(nullptr) == AXR_SUCCESS ? 0 : 1);
    }
    if (!child_exits_cleanly(pid, std::chrono::seconds(5))) ++not_clean;
  }
  stop = true;
  for (auto &caller : callers) caller.join();
  EXPECT_EQ(not_clean, 0) << not_clean << " of " << kForks
                          << " forked children hung or failed in their axr calls";
  axr_destroy(AXR_OBJECT(context));
}

// A logger may replace itself (or destroy its context) from inside its own callback: that call
// cannot wait for the callback it is in.
void replacing_log(void *arg, axrLogLevel, const char *) {
  auto *context = static_cast<axrContext *>(arg);
  axr_set_logger(context, AXR_LOG_ERROR, nullptr, nullptr);
}

TEST(CapiLogger, ALoggerMayReplaceItselfFromItsOwnCallback) {
  axrContext *context = axr_create_context();
  axr_set_logger(context, AXR_LOG_ERROR, replacing_log, context);
  EXPECT_EQ(axr_load_model(context, "/nonexistent/package"), nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);
  axr_destroy(AXR_OBJECT(context));
  EXPECT_EQ(axr_last_error(nullptr), AXR_SUCCESS) << last_error();
}

TEST_F(CapiTest, ErrorsOfTheLoggersOwnCallsAreNotLoggedBackIntoIt) {
  // The logger's own call fails on the same context: delivering that error to the logger again
  // would recurse without end (a stack overflow before).
  CallingLogger logger{[&] { axr_load_model(ctx(), "/nonexistent/from-the-logger"); }, {}};
  axr_set_logger(ctx(), AXR_LOG_ERROR, calling_log, &logger);
  EXPECT_EQ(axr_load_model(ctx(), "/nonexistent/package"), nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("/nonexistent/package"), std::string::npos) << last_error();
  ASSERT_EQ(logger.records.size(), 1u);
  EXPECT_NE(logger.records[0].message.find("/nonexistent/package"), std::string::npos);
  // Outside the callback the logger hears every error again.
  axr_load_model(ctx(), "/nonexistent/second");
  EXPECT_EQ(logger.records.size(), 2u);
  axr_set_logger(ctx(), AXR_LOG_TRACE, nullptr, nullptr);
}

TEST_F(CapiTest, ListDevicesFillsDeviceInfo) {
  size_t count = axr_list_devices(ctx(), nullptr);
  ASSERT_GE(count, 1u) << last_error();
  axrDeviceInfo *devices = nullptr;
  ASSERT_EQ(axr_list_devices(ctx(), &devices), count);
  ASSERT_NE(devices, nullptr);
  const axrDeviceInfo &device = devices[0];
  EXPECT_EQ(std::string(device.name).rfind("metis-", 0), 0u) << device.name;
  EXPECT_EQ(device.subdevice_count, 4u);
  EXPECT_EQ(device.in_use, 0);
  EXPECT_GE(device.board_type, AXR_BOARD_TYPE_ALPHA_PCIE);
  EXPECT_LE(device.board_type, AXR_BOARD_TYPE_UNKNOWN);

  auto connection = axr_device_connect(ctx(), nullptr, 1, nullptr);
  ASSERT_NE(connection, nullptr) << last_error();
  ASSERT_EQ(axr_list_devices(ctx(), &devices), count);
  EXPECT_EQ(devices[0].in_use, 1);
  EXPECT_NE(std::string(devices[0].in_use_by).find(std::to_string(getpid())), std::string::npos)
      << devices[0].in_use_by;
}

TEST_F(CapiTest, ConfigureDeviceMapsUnknownKeysBadValuesAndPending) {
  axrDeviceInfo device = first_device();
  auto unknown = axr_create_properties(ctx(), "clock_speed=800");
  EXPECT_EQ(axr_configure_device(ctx(), &device, unknown), AXR_ERROR_INVALID_CONFIGURATION);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_CONFIGURATION);
  EXPECT_NE(last_error().find("clock_speed"), std::string::npos) << last_error();

  auto bad_value = axr_create_properties(ctx(), "clock_profile=fast");
  EXPECT_EQ(axr_configure_device(ctx(), &device, bad_value), AXR_ERROR_VALUE_ERROR);
  EXPECT_NE(last_error().find("fast"), std::string::npos) << last_error();

  // A rejected configuration applies none of its entries, the valid ones included.
  auto mixed = axr_create_properties(ctx(), "clock_profile=400;mvm_utilisation_core_0=0");
  EXPECT_EQ(axr_configure_device(ctx(), &device, mixed), AXR_ERROR_VALUE_ERROR);
  auto mixed_unknown = axr_create_properties(ctx(), "clock_profile=400;bogus=1");
  EXPECT_EQ(axr_configure_device(ctx(), &device, mixed_unknown), AXR_ERROR_INVALID_CONFIGURATION);
  axrProperties *unchanged = axr_read_device_configuration(ctx(), &device);
  ASSERT_NE(unchanged, nullptr) << last_error();
  EXPECT_STREQ(axr_get_property(unchanged, "clock_profile"), "800");
  EXPECT_STREQ(axr_get_property(unchanged, "mvm_utilisation_core_0"), "100");

  axrDeviceInfo missing = device;
  std::snprintf(missing.name, sizeof missing.name, "metis-9:9:9");
  auto good = axr_create_properties(ctx(), "clock_profile=400");
  EXPECT_EQ(axr_configure_device(ctx(), &missing, good), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("metis-9:9:9"), std::string::npos) << last_error();

  axrResult result = axr_configure_device(ctx(), &device, good);
  ASSERT_TRUE(result == AXR_SUCCESS || result == AXR_ERROR_PENDING_ERROR) << last_error();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (result == AXR_ERROR_PENDING_ERROR && std::chrono::steady_clock::now() < deadline) {
    EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_PENDING_ERROR);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    result = axr_device_ready(ctx(), &device);
  }
  EXPECT_EQ(result, AXR_SUCCESS);
  axrProperties *configuration = axr_read_device_configuration(ctx(), &device);
  ASSERT_NE(configuration, nullptr) << last_error();
  EXPECT_STREQ(axr_get_property(configuration, "clock_profile"), "400");

  auto restore = axr_create_properties(ctx(), "clock_profile=800");
  result = axr_configure_device(ctx(), &device, restore);
  while (result == AXR_ERROR_PENDING_ERROR && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    result = axr_device_ready(ctx(), &device);
  }
  EXPECT_EQ(result, AXR_SUCCESS);
}

// A device that takes a while to apply a configuration (AXSTREAM_SIM_CONFIG_DELAY_MS), a context
// and the 700 MHz settings the tests ask it for; the delay and the devices are reset afterwards.
class CapiPending : public ::testing::Test {
 protected:
  void start(const char *delay_ms) {
    ::setenv("AXSTREAM_SIM_CONFIG_DELAY_MS", delay_ms, 1);
    axstream::hal::reset_devices_for_testing();
    context = axr::to_ptr(axr_create_context());
    axrDeviceInfo *devices = nullptr;
    ASSERT_GE(axr_list_devices(context.get(), &devices), 1u) << last_error();
    device = devices[0];
    settings = axr::to_ptr(axr_create_properties(context.get(), "clock_profile=700"));
  }
  // Sets the clock back to 800 MHz and waits, up to `timeout`, until the device has applied it.
  void restore_default_clock(std::chrono::seconds timeout) {
    auto restore = axr::to_ptr(axr_create_properties(context.get(), "clock_profile=800"));
    axr_configure_device(context.get(), &device, restore.get());
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (axr_device_ready(context.get(), &device) == AXR_ERROR_PENDING_ERROR &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  void TearDown() override {
    settings.reset();
    context.reset();
    ::unsetenv("AXSTREAM_SIM_CONFIG_DELAY_MS");
    axstream::hal::reset_devices_for_testing();
  }

  axr::ptr<axrContext> context;
  axrDeviceInfo device{};
  axr::ptr<axrProperties> settings;
};

// With a configuration delay the PENDING results carry messages that name the function and the
// device, as every other error does.
TEST_F(CapiPending, PendingMessagesNameTheFunctionAndTheDevice) {
  ASSERT_NO_FATAL_FAILURE(start("300"));
  const auto asked = std::chrono::steady_clock::now();
  ASSERT_EQ(axr_configure_device(context.get(), &device, settings.get()), AXR_ERROR_PENDING_ERROR)
      << last_error();
  EXPECT_EQ(last_error().rfind("axr_configure_device: configuration of metis-0:1:0", 0), 0u)
      << last_error();
  // Pending until the 300 ms have passed since the change: a test descheduled for longer (a
  // loaded machine) rightly finds the device ready, and has no pending message to check.
  const axrResult ready = axr_device_ready(context.get(), &device);
  if (ready == AXR_ERROR_PENDING_ERROR) {
    EXPECT_EQ(last_error().rfind("axr_device_ready: configuration of metis-0:1:0", 0), 0u)
        << last_error();
  } else {
    EXPECT_EQ(ready, AXR_SUCCESS) << last_error();
    EXPECT_GE(std::chrono::steady_clock::now() - asked, std::chrono::milliseconds(300))
        << "ready before the configuration delay passed";
  }
  restore_default_clock(std::chrono::seconds(5));
}

// The PENDING result stays the last error when the logger hearing about it calls into the API.
TEST_F(CapiPending, PendingStaysTheLastErrorWhenTheLoggerCallsTheApi) {
  ASSERT_NO_FATAL_FAILURE(start("2000"));
  CallingLogger logger{[&] { axr_get_property(settings.get(), "clock_profile"); }, {}};
  axr_set_logger(context.get(), AXR_LOG_INFO, calling_log, &logger);
  ASSERT_EQ(axr_configure_device(context.get(), &device, settings.get()), AXR_ERROR_PENDING_ERROR)
      << last_error();
  EXPECT_FALSE(logger.records.empty());
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_PENDING_ERROR);
  EXPECT_EQ(last_error().rfind("axr_configure_device: configuration of metis-0:1:0", 0), 0u)
      << last_error();
  axr_set_logger(context.get(), AXR_LOG_INFO, nullptr, nullptr);
  restore_default_clock(std::chrono::seconds(10));
}

TEST_F(CapiTest, FifthSingleCoreConnectionFailsWithDeviceInUse) {
  std::vector<axrConnection *> connections;
  for (int i = 0; i < 4; ++i) {
    connections.push_back(axr_device_connect(ctx(), nullptr, 1, nullptr));
    ASSERT_NE(connections.back(), nullptr) << "connection " << i << ": " << last_error();
  }
  EXPECT_EQ(axr_device_connect(ctx(), nullptr, 1, nullptr), nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_DEVICE_IN_USE) << last_error();

  // Destroying a connection frees its core for the next one.
  axr_destroy(AXR_OBJECT(connections[2]));
  axrConnection *again = axr_device_connect(ctx(), nullptr, 1, nullptr);
  EXPECT_NE(again, nullptr) << last_error();
}

TEST_F(CapiTest, ConnectRejectsBadSubDeviceCountsAndUnknownDevices) {
  EXPECT_EQ(axr_device_connect(ctx(), nullptr, 0, nullptr), nullptr);
  EXPECT_NE(axr_last_error(nullptr), AXR_SUCCESS);
  EXPECT_EQ(axr_device_connect(ctx(), nullptr, 5, nullptr), nullptr);
  EXPECT_NE(axr_last_error(nullptr), AXR_SUCCESS);
  axrDeviceInfo missing = first_device();
  std::snprintf(missing.name, sizeof missing.name, "metis-7:0:0");
  EXPECT_EQ(axr_device_connect(ctx(), &missing, 1, nullptr), nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);
  axrDeviceInfo device = first_device();
  axrConnection *all = axr_device_connect(ctx(), &device, 4, nullptr);
  EXPECT_NE(all, nullptr) << last_error();
}

TEST_F(CapiTest, ConnectAcceptsOnlyDeviceFirmwareCheck) {
  auto check = axr_create_properties(ctx(), "device_firmware_check=1");
  EXPECT_NE(axr_device_connect(ctx(), nullptr, 1, check), nullptr) << last_error();
  auto unknown = axr_create_properties(ctx(), "turbo=1");
  EXPECT_EQ(axr_device_connect(ctx(), nullptr, 1, unknown), nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_CONFIGURATION);
  EXPECT_NE(last_error().find("'turbo'"), std::string::npos) << last_error();
  auto bad_value = axr_create_properties(ctx(), "device_firmware_check=maybe");
  EXPECT_EQ(axr_device_connect(ctx(), nullptr, 1, bad_value), nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_VALUE_ERROR);
}

TEST_F(CapiTest, DestroyingTheContextReleasesEverythingItOwns) {
  axrContext *context = axr_create_context();
  axrConnection *connection = axr_device_connect(context, nullptr, 4, nullptr);
  ASSERT_NE(connection, nullptr) << last_error();
  axrProperties *properties = axr_create_properties(context, "a=1");
  axr_destroy(AXR_OBJECT(context));
  EXPECT_EQ(axr_last_error(nullptr), AXR_SUCCESS);
  EXPECT_EQ(axr_get_property(properties, "a"), nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(axr_get_context(AXR_OBJECT(connection)), nullptr);
  // All four cores are free again.
  axrConnection *all = axr_device_connect(ctx(), nullptr, 4, nullptr);
  EXPECT_NE(all, nullptr) << last_error();
}

TEST_F(CapiTest, LoadModelReportsAMissingPackage) {
  EXPECT_EQ(axr_load_model(ctx(), "/nonexistent/package"), nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT) << last_error();
  EXPECT_NE(last_error().find("/nonexistent/package"), std::string::npos) << last_error();
}

TEST_F(CapiTest, ModelTensorInfoCarriesShapePaddingAndQuantisation) {
  REQUIRE_MODEL(path, "resnet_tiny");
  axrModel *model = axr_load_model(ctx(), path.c_str());
  ASSERT_NE(model, nullptr) << last_error();
  ASSERT_EQ(axr_num_model_inputs(model), 1u);
  ASSERT_EQ(axr_num_model_outputs(model), 1u);

  axrTensorInfo input = axr_get_model_input(model, 0);
  ASSERT_EQ(input.ndims, 4u);
  EXPECT_EQ(std::vector<size_t>(input.dims, input.dims + 4), (std::vector<size_t>{1, 32, 32, 4}));
  EXPECT_EQ(input.bits, 8u);
  EXPECT_EQ(input.type, static_cast<size_t>(AXR_SIGNED));
  EXPECT_EQ(input.padding[3][0], 0u);
  EXPECT_EQ(input.padding[3][1], 1u);
  EXPECT_EQ(input.padding[1][0] + input.padding[1][1], 0u);
  EXPECT_GT(input.scale, 0.0);
  EXPECT_EQ(axr_tensor_size(&input), 32u * 32u * 4u);

  axrTensorInfo output = axr_get_model_output(model, 0);
  ASSERT_EQ(output.ndims, 4u);
  EXPECT_EQ(output.dims[3], 1024u);
  EXPECT_EQ(output.padding[3][1], 24u);
  EXPECT_EQ(axr_tensor_size(&output), 1024u);

  // Same as the C++ runtime's TensorInfo.
  auto cxx_context = axstream::runtime::Context::create();
  auto cxx_model = cxx_context->load_model(path);
  auto cxx_input = cxx_model->inputs().at(0);
  EXPECT_EQ(input.scale, cxx_input.scale);
  EXPECT_EQ(input.zero_point, cxx_input.zero_point);
  EXPECT_EQ(std::string(input.name), cxx_input.name);
  EXPECT_EQ(axr_tensor_size(&input), cxx_input.size());
  cxx_context->release();

  axrTensorInfo beyond = axr_get_model_input(model, 1);
  EXPECT_EQ(beyond.ndims, 0u);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(axr_tensor_size(&beyond), 0u);
  EXPECT_EQ(axr_get_model_output(model, 7).ndims, 0u);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);

  axrProperties *properties = axr_get_model_properties(model);
  ASSERT_NE(properties, nullptr) << last_error();
  EXPECT_STREQ(axr_get_property(properties, "input_tensor_layout"), "NHWC");
  EXPECT_EQ(axr_get_context(AXR_OBJECT(properties)), ctx());
}

TEST(CapiStatic, TensorSizeIsElementsTimesBytesAndChecksOverflow) {
  axrTensorInfo info{};
  info.ndims = 3;
  info.dims[0] = 2;
  info.dims[1] = 3;
  info.dims[2] = 5;
  info.bits = 32;
  EXPECT_EQ(axr_tensor_size(&info), 120u);
  info.ndims = 9;
  EXPECT_EQ(axr_tensor_size(&info), 0u);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);
  info.ndims = 2;
  info.dims[0] = info.dims[1] = SIZE_MAX / 2;
  EXPECT_EQ(axr_tensor_size(&info), 0u);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_VALUE_ERROR);
  // The message names the dims that overflow, not just that something did.
  EXPECT_NE(std::strstr(axr_last_error_string(nullptr),
                        ("dims (" + std::to_string(SIZE_MAX / 2) + ",").c_str()),
            nullptr)
      << axr_last_error_string(nullptr);
}

class CapiModelTest : public CapiTest {
 protected:
  void SetUp() override {
    CapiTest::SetUp();
    path_ = model_path("resnet_tiny");
    if (path_.empty()) GTEST_SKIP() << "resnet_tiny not found under $AXSTREAM_TEST_MODELS";
    model_ = axr_load_model(ctx(), path_.c_str());
    ASSERT_NE(model_, nullptr) << last_error();
    input_info_ = axr_get_model_input(model_, 0);
    output_info_ = axr_get_model_output(model_, 0);
    input_.resize(axr_tensor_size(&input_info_));
    std::mt19937 random(7);
    for (auto &value : input_) value = static_cast<int8_t>(random() % 256 - 128);
  }

  axrModelInstance *load_instance(const char *properties = nullptr) {
    axrConnection *connection = axr_device_connect(ctx(), nullptr, 1, nullptr);
    EXPECT_NE(connection, nullptr) << last_error();
    axrProperties *settings = properties ? axr_create_properties(ctx(), properties) : nullptr;
    return axr_load_model_instance(connection, model_, settings);
  }

  std::vector<int8_t> run(axrModelInstance *instance) {
    std::vector<int8_t> output(axr_tensor_size(&output_info_));
    axrArgument in{input_.data(), -1, 0, input_.size()};
    axrArgument out{output.data(), 0, 0, output.size()};
    EXPECT_EQ(axr_run_model_instance(instance, &in, 1, &out, 1), AXR_SUCCESS) << last_error();
    return output;
  }

  std::string path_;
  axrModel *model_ = nullptr;
  axrTensorInfo input_info_{}, output_info_{};
  std::vector<int8_t> input_;
};

TEST_F(CapiModelTest, LoadModelInstanceMapsUnknownKeysAndBadValues) {
  axrConnection *connection = axr_device_connect(ctx(), nullptr, 1, nullptr);
  ASSERT_NE(connection, nullptr) << last_error();
  auto unknown = axr_create_properties(ctx(), "aipu_cores=1;turbo=1");
  EXPECT_EQ(axr_load_model_instance(connection, model_, unknown), nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_CONFIGURATION);
  EXPECT_NE(last_error().find("'turbo'"), std::string::npos) << last_error();

  auto bad_value = axr_create_properties(ctx(), "aipu_cores=many");
  EXPECT_EQ(axr_load_model_instance(connection, model_, bad_value), nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_VALUE_ERROR);
  EXPECT_NE(last_error().find("many"), std::string::npos) << last_error();

  EXPECT_EQ(axr_load_model_instance(connection, nullptr, nullptr), nullptr);
  EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT);

  // Well-formed values the connection or the device cannot meet keep the runtime's error
  // (docs/c-api.md); out of the key's own range is a value error.
  struct {
    const char *settings;
    axrResult result;
  } const unmet[] = {{"num_sub_devices=2", AXR_ERROR_INVALID_ARGUMENT},
                     {"aipu_cores=5", AXR_ERROR_INCOMPATIBLE_DEVICE},
                     {"aipu_cores=-1", AXR_ERROR_VALUE_ERROR},
                     {"double_buffer=yes", AXR_ERROR_VALUE_ERROR}};
  for (const auto &[settings, result] : unmet) {
    auto properties = axr_create_properties(ctx(), settings);
    EXPECT_EQ(axr_load_model_instance(connection, model_, properties), nullptr) << settings;
    EXPECT_EQ(axr_last_error(nullptr), result) << settings << ": " << last_error();
  }

  auto valid = axr_create_properties(ctx(), "aipu_cores=1;double_buffer=0;elf_in_ddr=1");
  axrModelInstance *instance = axr_load_model_instance(connection, model_, valid);
  EXPECT_NE(instance, nullptr) << last_error();
  EXPECT_EQ(axr_get_context(AXR_OBJECT(instance)), ctx());
}

TEST_F(CapiModelTest, RunRejectsWrongCountsSizesAndMissingData) {
  axrModelInstance *instance = load_instance();
  ASSERT_NE(instance, nullptr) << last_error();
  std::vector<int8_t> output(axr_tensor_size(&output_info_));
  axrArgument in{input_.data(), -1, 0, input_.size()};
  axrArgument out{output.data(), -1, 0, output.size()};
  axrArgument two_inputs[2] = {in, in};

  EXPECT_EQ(axr_run_model_instance(instance, &in, 0, &out, 1), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(axr_run_model_instance(instance, two_inputs, 2, &out, 1), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(axr_run_model_instance(instance, &in, 1, &out, 0), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(axr_run_model_instance(instance, nullptr, 1, &out, 1), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_EQ(last_error(), "axr_run_model_instance: inputs is NULL but num_inputs is 1");
  EXPECT_EQ(axr_run_model_instance(instance, &in, 1, nullptr, 1), AXR_ERROR_INVALID_ARGUMENT);

  axrArgument short_input{input_.data(), -1, 0, input_.size() - 1};
  EXPECT_EQ(axr_run_model_instance(instance, &short_input, 1, &out, 1), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find(std::to_string(input_.size())), std::string::npos) << last_error();
  axrArgument long_output{output.data(), -1, 0, output.size() + 8};
  EXPECT_EQ(axr_run_model_instance(instance, &in, 1, &long_output, 1), AXR_ERROR_INVALID_ARGUMENT);
  axrArgument nothing{nullptr, -1, 0, 0};
  EXPECT_EQ(axr_run_model_instance(instance, &nothing, 1, &out, 1), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("input 0: ptr is NULL"), std::string::npos) << last_error();

  // Size 0 means unchecked.
  axrArgument unchecked{input_.data(), 0, 0, 0};
  EXPECT_EQ(axr_run_model_instance(instance, &unchecked, 1, &out, 1), AXR_SUCCESS) << last_error();
}

TEST_F(CapiModelTest, ResultsEqualTheCxxRuntimeForTheSameInput) {
  axrModelInstance *instance = load_instance();
  ASSERT_NE(instance, nullptr) << last_error();
  std::vector<int8_t> c_output = run(instance);

  auto cxx_context = axstream::runtime::Context::create();
  auto connection = cxx_context->device_connect(nullptr, 1);
  auto cxx_instance = connection->load_model_instance(cxx_context->load_model(path_));
  std::vector<int8_t> cxx_output(c_output.size());
  axstream::runtime::Argument in, out;
  in.ptr = input_.data();
  out.ptr = cxx_output.data();
  cxx_instance->run({in}, {out});
  cxx_context->release();

  EXPECT_EQ(c_output, cxx_output);
  // A real result: not all one value.
  EXPECT_NE(std::count(c_output.begin(), c_output.end(), c_output[0]),
            static_cast<long>(c_output.size()));
}

TEST_F(CapiModelTest, DmabufArgumentsWithOffsetGiveTheHostMemoryResult) {
  axrModelInstance *host_instance = load_instance();
  ASSERT_NE(host_instance, nullptr) << last_error();
  std::vector<int8_t> expected = run(host_instance);

  axrModelInstance *instance = load_instance("input_dmabuf=1;output_dmabuf=1");
  ASSERT_NE(instance, nullptr) << last_error();
  const size_t offset = 4096;
  int input_fd = memfd_create("capi-input", MFD_CLOEXEC);
  int output_fd = memfd_create("capi-output", MFD_CLOEXEC);
  ASSERT_GE(input_fd, 0);
  ASSERT_GE(output_fd, 0);
  ASSERT_EQ(ftruncate(input_fd, offset + input_.size()), 0);
  ASSERT_EQ(ftruncate(output_fd, expected.size()), 0);
  ASSERT_EQ(pwrite(input_fd, input_.data(), input_.size(), offset),
            static_cast<ssize_t>(input_.size()));
  axrArgument in{nullptr, input_fd, offset, input_.size()};
  axrArgument out{nullptr, output_fd, 0, expected.size()};
  EXPECT_EQ(axr_run_model_instance(instance, &in, 1, &out, 1), AXR_SUCCESS) << last_error();
  std::vector<int8_t> actual(expected.size());
  ASSERT_EQ(pread(output_fd, actual.data(), actual.size(), 0), static_cast<ssize_t>(actual.size()));
  EXPECT_EQ(actual, expected);
  close(input_fd);
  close(output_fd);
}

TEST_F(CapiModelTest, InstancesRunConcurrentlyFromSeveralThreads) {
  axrModelInstance *reference = load_instance();
  ASSERT_NE(reference, nullptr) << last_error();
  std::vector<int8_t> expected = run(reference);
  axr_destroy(AXR_OBJECT(reference));

  constexpr int kThreads = 3;
  std::vector<std::vector<int8_t>> results(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      axrConnection *connection = axr_device_connect(ctx(), nullptr, 1, nullptr);
      axrModelInstance *instance = axr_load_model_instance(connection, model_, nullptr);
      if (instance == nullptr) {
        errors[t] = last_error();
        return;
      }
      for (int i = 0; i < 5; ++i) {
        std::vector<int8_t> output(expected.size());
        axrArgument in{input_.data(), -1, 0, input_.size()};
        axrArgument out{output.data(), -1, 0, output.size()};
        if (axr_run_model_instance(instance, &in, 1, &out, 1) != AXR_SUCCESS) {
          errors[t] = last_error();
          return;
        }
        results[t] = output;
        if (output != expected) return;
      }
    });
  }
  for (auto &thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(errors[t], "") << "thread " << t;
    EXPECT_EQ(results[t], expected) << "thread " << t;
  }
}

TEST_F(CapiModelTest, DestroyingAModelDestroysItsInstances) {
  axrModelInstance *instance = load_instance();
  ASSERT_NE(instance, nullptr) << last_error();
  axr_destroy(AXR_OBJECT(model_));
  EXPECT_EQ(axr_last_error(nullptr), AXR_SUCCESS);
  std::vector<int8_t> output(axr_tensor_size(&output_info_));
  axrArgument in{input_.data(), -1, 0, 0};
  axrArgument out{output.data(), -1, 0, 0};
  EXPECT_EQ(axr_run_model_instance(instance, &in, 1, &out, 1), AXR_ERROR_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("not a live axr object"), std::string::npos) << last_error();
}

// Another thread's axr_destroy of the context must not free the handles a call is using: every
// call either completes or fails with AXR_ERROR_INVALID_ARGUMENT ("not a live axr object" /
// "was released"). Under ASan (scripts/sanitize.sh) a handle freed mid-call is a failure.
TEST_F(CapiModelTest, DestroyingTheContextWhileOtherThreadsUseItFailsCallsCleanly) {
  constexpr int kThreads = 3;
  std::atomic<int> iterations{0};
  std::vector<std::string> unexpected(kThreads);
  std::vector<std::thread> threads;
  axrContext *context = context_.release();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<int8_t> output(axr_tensor_size(&output_info_));
      auto stop = [&](const char *call) {  // the first failed call ends the thread
        if (axr_last_error(nullptr) != AXR_ERROR_INVALID_ARGUMENT)
          unexpected[t] = std::string(call) + ": " + last_error();
      };
      for (;;) {
        axrModel *model = axr_load_model(context, path_.c_str());
        if (model == nullptr) return stop("axr_load_model");
        axrConnection *connection = axr_device_connect(context, nullptr, 1, nullptr);
        if (connection == nullptr) return stop("axr_device_connect");
        axrModelInstance *instance = axr_load_model_instance(connection, model, nullptr);
        if (instance == nullptr) return stop("axr_load_model_instance");
        axrArgument in{input_.data(), -1, 0, 0}, out{output.data(), -1, 0, 0};
        if (axr_run_model_instance(instance, &in, 1, &out, 1) != AXR_SUCCESS)
          return stop("axr_run_model_instance");
        axrDeviceInfo *devices = nullptr;
        if (axr_list_devices(context, &devices) == 0) return stop("axr_list_devices");
        axr_destroy(AXR_OBJECT(connection));
        ++iterations;
      }
    });
  }
  while (iterations < kThreads) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  axr_destroy(AXR_OBJECT(context));
  EXPECT_EQ(axr_last_error(nullptr), AXR_SUCCESS) << last_error();
  for (auto &thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(unexpected[t], "") << "thread " << t;
  // Everything the threads reserved was given back.
  auto fresh = axr::to_ptr(axr_create_context());
  EXPECT_NE(axr_device_connect(fresh.get(), nullptr, 4, nullptr), nullptr) << last_error();
}

TEST_F(CapiModelTest, CoreGraphComputingAHalfOutputFailsToLoadNamingTheTensor) {
  // axrTensorInfo reports a package's device tensors, which are int8 (the manifest's dtypes):
  // a core graph made to end in a Cast to float16 or bfloat16 is refused at
  // axr_load_model_instance with INVALID_ARGUMENT naming the output and its dtype, never run.
  for (int type : {onnx::TensorProto::FLOAT16, onnx::TensorProto::BFLOAT16}) {
    const char *dtype = type == onnx::TensorProto::FLOAT16 ? "float16" : "bfloat16";
    char dir_template[] = "/tmp/capi_half_output_XXXXXX";
    ASSERT_NE(mkdtemp(dir_template), nullptr) << std::strerror(errno);
    const std::filesystem::path dir = dir_template;
    const std::string output = axstream::test::write_package_with_cast_output(path_, dir, type);
    axrModel *model = axr_load_model(ctx(), dir.c_str());
    ASSERT_NE(model, nullptr) << last_error();
    axrTensorInfo info = axr_get_model_output(model, 0);
    EXPECT_EQ(info.type, static_cast<size_t>(AXR_SIGNED)) << dtype;
    EXPECT_EQ(info.bits, 8u) << dtype;
    axrConnection *connection = axr_device_connect(ctx(), nullptr, 1, nullptr);
    ASSERT_NE(connection, nullptr) << last_error();
    EXPECT_EQ(axr_load_model_instance(connection, model, nullptr), nullptr) << dtype;
    EXPECT_EQ(axr_last_error(nullptr), AXR_ERROR_INVALID_ARGUMENT) << last_error();
    EXPECT_NE(last_error().find("output 0 '" + output + "' is " + dtype), std::string::npos)
        << last_error();
    EXPECT_NE(last_error().find("device tensors are int8"), std::string::npos) << last_error();
    std::filesystem::remove_all(dir);
  }
}

TEST_F(CapiModelTest, CxxHeaderOwnsHandlesThroughUniquePtr) {
  axrConnection *connection = axr_device_connect(ctx(), nullptr, 4, nullptr);
  ASSERT_NE(connection, nullptr) << last_error();
  {
    auto owned = axr::to_ptr(connection);
    static_assert(std::is_same_v<decltype(owned), axr::ptr<axrConnection>>);
  }
  // The unique_ptr destroyed the connection: its four cores are free again.
  EXPECT_NE(axr_device_connect(ctx(), nullptr, 4, nullptr), nullptr) << last_error();
}

}  // namespace

int main(int argc, char **argv) {
  // Reservation lock files go to a directory of this test process's own (meson sets it).
  if (const char *dir = std::getenv("AXSTREAM_RUNTIME_DIR")) {
    std::filesystem::create_directories(dir);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
