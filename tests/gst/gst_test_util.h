// Shared helpers of the axpreprocess / axinference GstHarness tests: GStreamer init, the test
// model packages (AXSTREAM_TEST_MODELS), errors posted on an element's bus.
#pragma once

#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

namespace axtest {

class GstEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { gst_init(nullptr, nullptr); }
};

inline std::string test_model(const char *name) {
  const char *dir = std::getenv("AXSTREAM_TEST_MODELS");
  if (!dir) return {};
  std::string path = std::string(dir) + "/" + name;
  return g_file_test((path + "/model.json").c_str(), G_FILE_TEST_EXISTS) ? path : std::string();
}

#define AXTEST_REQUIRE_MODEL(var, name)                                                   \
  const std::string var = axtest::test_model(name);                                       \
  if (var.empty()) {                                                                      \
    GTEST_SKIP() << "test package '" << name << "' not found: AXSTREAM_TEST_MODELS must " \
                 << "point at the generated tests/data/models";                           \
  }

// An element with its own bus, so errors it posts can be read back.
class BusWatch {
 public:
  explicit BusWatch(GstElement *element) : bus_(gst_bus_new()) {
    gst_element_set_bus(element, bus_);
  }
  ~BusWatch() { gst_object_unref(bus_); }
  BusWatch(const BusWatch &) = delete;
  BusWatch &operator=(const BusWatch &) = delete;
  // Text + debug of the first error message, or "" when none was posted.
  std::string error() {
    GstMessage *message = gst_bus_pop_filtered(bus_, GST_MESSAGE_ERROR);
    if (!message) return {};
    GError *error = nullptr;
    gchar *debug = nullptr;
    gst_message_parse_error(message, &error, &debug);
    std::string text = std::string(error->message) + " | " + (debug ? debug : "");
    g_error_free(error);
    g_free(debug);
    gst_message_unref(message);
    return text;
  }

 private:
  GstBus *bus_;
};

}  // namespace axtest
