// Shared helpers of the element GstHarness tests: GStreamer init, the test model packages
// (AXSTREAM_TEST_MODELS), video caps, seeded buffers, errors posted on an element's bus.
#pragma once

#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
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

// The text + debug of an error or warning message.
inline std::string message_text(GstMessage *message) {
  GError *error = nullptr;
  gchar *debug = nullptr;
  if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_WARNING)
    gst_message_parse_warning(message, &error, &debug);
  else
    gst_message_parse_error(message, &error, &debug);
  std::string text = std::string(error->message) + " | " + (debug ? debug : "");
  g_error_free(error);
  g_free(debug);
  return text;
}

// Whether `element` (taken) offers GstVideoCropMeta upstream in its answer to an ALLOCATION
// query for `caps`, when downstream (the harness's sink) takes crop metas, as a display sink does.
inline bool offers_crop_meta(GstElement *element, const std::string &caps) {
  GstHarness *harness = gst_harness_new_with_element(element, "sink", "src");
  gst_harness_add_propose_allocation_meta(harness, GST_VIDEO_CROP_META_API_TYPE, nullptr);
  gst_harness_set_src_caps_str(harness, caps.c_str());
  GstCaps *parsed = gst_caps_from_string(caps.c_str());
  GstQuery *query = gst_query_new_allocation(parsed, TRUE);
  gst_caps_unref(parsed);
  EXPECT_TRUE(gst_pad_peer_query(harness->srcpad, query));
  const bool offered = gst_query_find_allocation_meta(query, GST_VIDEO_CROP_META_API_TYPE, nullptr);
  gst_query_unref(query);
  gst_harness_teardown(harness);
  return offered;
}

// A 64x48 `format` frame of zeros, laid out by GstVideoMeta, whose GstVideoCropMeta shows the
// `width` x `height` region at x, y (as videocrop attaches it instead of copying).
inline GstBuffer *cropped_frame(GstVideoFormat format, guint x, guint y, guint width,
                                guint height) {
  GstVideoInfo whole;
  gst_video_info_set_format(&whole, format, 64, 48);
  GstBuffer *buffer = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(&whole), nullptr);
  gst_buffer_memset(buffer, 0, 0, GST_VIDEO_INFO_SIZE(&whole));
  gst_buffer_add_video_meta_full(buffer, GST_VIDEO_FRAME_FLAG_NONE, format, 64, 48,
                                 GST_VIDEO_INFO_N_PLANES(&whole), whole.offset, whole.stride);
  GstVideoCropMeta *crop = gst_buffer_add_video_crop_meta(buffer);
  crop->x = x;
  crop->y = y;
  crop->width = width;
  crop->height = height;
  return buffer;
}

// A box normalised to the frame, as DL Streamer's "detection" ROI parameter holds it.
struct NormalisedBox {
  double x_min = -1, y_min = -1, x_max = -1, y_max = -1;
};

// The box in `roi`'s "detection" structure (what gstgva's normalized_rect() reads); nullopt
// when the structure or one of its four fields is missing.
inline std::optional<NormalisedBox> dlstreamer_box(GstVideoRegionOfInterestMeta *roi) {
  const GstStructure *detection = gst_video_region_of_interest_meta_get_param(roi, "detection");
  NormalisedBox box;
  if (!detection || !gst_structure_get_double(detection, "x_min", &box.x_min) ||
      !gst_structure_get_double(detection, "y_min", &box.y_min) ||
      !gst_structure_get_double(detection, "x_max", &box.x_max) ||
      !gst_structure_get_double(detection, "y_max", &box.y_max))
    return std::nullopt;
  return box;
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
  // The first error or warning, prefixed "error: " or "warning: " (error() and warning() drop
  // the messages of the other kind posted before the one they return).
  std::string error_or_warning() {
    GstMessage *message =
        gst_bus_pop_filtered(bus_, GstMessageType(GST_MESSAGE_ERROR | GST_MESSAGE_WARNING));
    if (!message) return {};
    std::string text = (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR ? "error: " : "warning: ") +
                       message_text(message);
    gst_message_unref(message);
    return text;
  }

 private:
  std::string pop(GstMessageType type) {
    GstMessage *message = gst_bus_pop_filtered(bus_, type);
    if (!message) return {};
    std::string text = message_text(message);
    gst_message_unref(message);
    return text;
  }

  GstBus *bus_;
};

// Pushes `frame` (taken) through `element` (taken) under `caps`, expecting GST_FLOW_ERROR, and
// returns the error the element posted (BusWatch::error; "" when none).
inline std::string error_of_push(GstElement *element, const std::string &caps, GstBuffer *frame) {
  BusWatch bus(element);
  GstHarness *harness = gst_harness_new_with_element(element, "sink", "src");
  gst_harness_set_src_caps_str(harness, caps.c_str());
  EXPECT_EQ(gst_harness_push(harness, frame), GST_FLOW_ERROR);
  std::string error = bus.error();
  gst_harness_teardown(harness);
  return error;
}

// Plays `pipeline` until EOS or an error and leaves it PLAYING (the caller reads what it needs,
// then sets it to NULL). Returns "" at EOS, else the error's text + debug or the timeout.
inline std::string play_until_eos(GstElement *pipeline, GstClockTime timeout = 60 * GST_SECOND) {
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus(pipeline);
  GstMessage *message =
      gst_bus_timed_pop_filtered(bus, timeout, GstMessageType(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  std::string error;
  if (!message) {
    error = "no EOS within " + std::to_string(timeout / GST_SECOND) + " s";
  } else if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR) {
    error = message_text(message);
  }
  if (message) gst_message_unref(message);
  gst_object_unref(bus);
  return error;
}

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

inline std::string read_file(const std::string &path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// An empty file under /tmp named after `prefix`, removed with the object.
class TempFile {
 public:
  explicit TempFile(const std::string &prefix) {
    std::string name = "/tmp/" + prefix + "-XXXXXX";
    int fd = mkstemp(name.data());
    if (fd >= 0) close(fd);
    path_ = name;
  }
  ~TempFile() { unlink(path_.c_str()); }
  TempFile(const TempFile &) = delete;
  TempFile &operator=(const TempFile &) = delete;
  const std::string &path() const { return path_; }

 private:
  std::string path_;
};

// A pad probe removed with its owner (the probes below point at the object holding them).
class PadProbe {
 public:
  PadProbe(GstPad *pad, GstPadProbeType type, GstPadProbeCallback callback, gpointer data)
      : pad_(GST_PAD(gst_object_ref(pad))),
        id_(gst_pad_add_probe(pad, type, callback, data, nullptr)) {}
  PadProbe(GstElement *element, const char *pad_name, GstPadProbeType type,
           GstPadProbeCallback callback, gpointer data)
      : pad_(gst_element_get_static_pad(element, pad_name)),
        id_(gst_pad_add_probe(pad_, type, callback, data, nullptr)) {}
  ~PadProbe() {
    gst_pad_remove_probe(pad_, id_);
    gst_object_unref(pad_);
  }
  PadProbe(const PadProbe &) = delete;
  PadProbe &operator=(const PadProbe &) = delete;

 private:
  GstPad *pad_;
  gulong id_;
};

// A pad probe answering every buffer with the flow return `refusal` (GINT_TO_POINTER of it), as
// a downstream element refusing frames would.
inline GstPadProbeReturn refuse_buffer(GstPad *, GstPadProbeInfo *info, gpointer refusal) {
  GST_PAD_PROBE_INFO_FLOW_RETURN(info) = GstFlowReturn(GPOINTER_TO_INT(refusal));
  return GST_PAD_PROBE_HANDLED;
}

// axinference on `model` alone in a harness fed RGB width x height frames, its bus messages
// watched; torn down with the object.
struct WatchedInference {
  WatchedInference(const std::string &model, int width, int height)
      : element(gst_element_factory_make("axinference", nullptr)), bus(with_model(element, model)) {
    h = gst_harness_new_with_element(element, "sink", "src");
    gst_harness_set_src_caps_str(h, video_caps("RGB", width, height).c_str());
  }
  ~WatchedInference() { gst_harness_teardown(h); }
  WatchedInference(const WatchedInference &) = delete;
  WatchedInference &operator=(const WatchedInference &) = delete;

  GstElement *element;
  BusWatch bus;
  GstHarness *h = nullptr;

 private:
  static GstElement *with_model(GstElement *element, const std::string &model) {
    g_object_set(element, "model", model.c_str(), nullptr);
    return element;
  }
};

}  // namespace axtest
