// Shared helpers of the element GstHarness tests: GStreamer init, the test model packages
// (AXSTREAM_TEST_MODELS), video caps, seeded buffers, errors posted on an element's bus.
#pragma once

#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

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

// Raw video caps of `format` at width x height and 30 fps, in DMABuf memory when asked.
inline std::string video_caps(const char *format, int width, int height, bool dmabuf = false) {
  return std::string("video/x-raw") + (dmabuf ? "(memory:DMABuf)" : "") + ",format=" + format +
         ",width=" + std::to_string(width) + ",height=" + std::to_string(height) +
         ",framerate=30/1";
}

// A buffer of `size` bytes from std::mt19937(seed), PTS 0: the same seed gives the same frame.
inline GstBuffer *random_buffer(gsize size, uint32_t seed) {
  GstBuffer *buffer = gst_buffer_new_allocate(nullptr, size, nullptr);
  GstMapInfo map;
  gst_buffer_map(buffer, &map, GST_MAP_WRITE);
  std::mt19937 rng(seed);
  for (gsize i = 0; i < map.size; ++i) map.data[i] = uint8_t(rng());
  gst_buffer_unmap(buffer, &map);
  GST_BUFFER_PTS(buffer) = 0;
  return buffer;
}

// A copy of the buffer's bytes (int8_t for tensors, uint8_t for pixels).
template <typename T = int8_t>
std::vector<T> buffer_bytes(GstBuffer *buffer) {
  GstMapInfo map;
  EXPECT_TRUE(gst_buffer_map(buffer, &map, GST_MAP_READ));
  std::vector<T> out(map.data, map.data + map.size);
  gst_buffer_unmap(buffer, &map);
  return out;
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
  std::string error() { return pop(GST_MESSAGE_ERROR); }
  // The same for the first warning message.
  std::string warning() { return pop(GST_MESSAGE_WARNING); }

 private:
  std::string pop(GstMessageType type) {
    GstMessage *message = gst_bus_pop_filtered(bus_, type);
    if (!message) return {};
    GError *error = nullptr;
    gchar *debug = nullptr;
    if (type == GST_MESSAGE_WARNING)
      gst_message_parse_warning(message, &error, &debug);
    else
      gst_message_parse_error(message, &error, &debug);
    std::string text = std::string(error->message) + " | " + (debug ? debug : "");
    g_error_free(error);
    g_free(debug);
    gst_message_unref(message);
    return text;
  }

  GstBus *bus_;
};

// Takes `element` to PAUSED expecting that to fail, then back to NULL, and unrefs it. Returns
// the error it posted (BusWatch::error): what a start-up error test checks.
inline std::string error_when_started(GstElement *element) {
  BusWatch bus(element);
  EXPECT_EQ(gst_element_set_state(element, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  std::string error = bus.error();
  gst_element_set_state(element, GST_STATE_NULL);
  gst_object_unref(element);
  return error;
}

}  // namespace axtest
