// Data flow through whole pipelines as DeepStream / DL Streamer applications run them: state
// cycles (threads, fds and the device given back), a tee of two axinference branches, two
// pipelines on one device, and downstream refusing frames while a pipeline plays. A program of
// its own: a process this size makes more than 2048 GLib quarks, and GLib then drops its first
// quark block, which LeakSanitizer can only tell from a leak of ours with full stacks
// (fast_unwind_on_malloc=0, tests/gst/meson.build; scripts/lsan.supp), too slow for the harness
// tests of test_data_flow.cc.
#include <dirent.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "axinference_test_util.h"
#include "axstream/gst/axtensormeta.h"
#include "gst_test_util.h"

namespace {

const auto *gst_environment = ::testing::AddGlobalTestEnvironment(new axtest::GstEnvironment);

using axtest::Bytes;

// --- state cycles ------------------------------------------------------------------------------

int count_dir(const char *path) {
  int count = 0;
  if (DIR *dir = opendir(path)) {
    while (dirent *entry = readdir(dir))
      if (entry->d_name[0] != '.') ++count;
    closedir(dir);
  }
  return count;
}

// This process's threads whose name starts with `prefix`.
int threads_named(const std::string &prefix) {
  int count = 0;
  if (DIR *dir = opendir("/proc/self/task")) {
    while (dirent *entry = readdir(dir)) {
      if (entry->d_name[0] == '.') continue;
      std::ifstream comm(std::string("/proc/self/task/") + entry->d_name + "/comm");
      std::string name;
      std::getline(comm, name);
      if (name.rfind(prefix, 0) == 0) ++count;
    }
    closedir(dir);
  }
  return count;
}

// A pipeline from gst_parse_launch; frames reaching the sink named "out" are counted.
class Pipeline {
 public:
  explicit Pipeline(const std::string &launch) {
    GError *error = nullptr;
    pipeline_ = gst_parse_launch(launch.c_str(), &error);
    if (error) {
      ADD_FAILURE() << launch << ": " << error->message;
      g_error_free(error);
    }
    GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline_), "out");
    GstPad *pad = gst_element_get_static_pad(sink, "sink");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, count, &frames_, nullptr);
    gst_object_unref(pad);
    gst_object_unref(sink);
  }
  ~Pipeline() {
    gst_element_set_state(pipeline_, GST_STATE_NULL);
    gst_object_unref(pipeline_);
  }
  Pipeline(const Pipeline &) = delete;
  Pipeline &operator=(const Pipeline &) = delete;
  GstStateChangeReturn set(GstState state) {
    gst_element_set_state(pipeline_, state);
    return gst_element_get_state(pipeline_, nullptr, nullptr, 10 * GST_SECOND);
  }
  // Waits up to 10 s for `n` frames at the sink in all.
  bool wait_frames(int n) {
    for (int i = 0; i < 2000 && frames_ < n; ++i) g_usleep(5000);
    return frames_ >= n;
  }
  int frames() const { return frames_; }
  // The first error posted, or "" (with `eos`: waits up to 20 s for EOS or an error).
  std::string error(bool eos = false) {
    GstBus *bus = gst_element_get_bus(pipeline_);
    GstMessage *message =
        eos ? gst_bus_timed_pop_filtered(bus, 20 * GST_SECOND,
                                         GstMessageType(GST_MESSAGE_EOS | GST_MESSAGE_ERROR))
            : gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
    gst_object_unref(bus);
    if (!message) return eos ? "no EOS" : "";
    std::string text;
    if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR) text = axtest::message_text(message);
    gst_message_unref(message);
    return text;
  }
  GstElement *get() { return pipeline_; }

 private:
  static GstPadProbeReturn count(GstPad *, GstPadProbeInfo *, gpointer frames) {
    ++*static_cast<std::atomic<int> *>(frames);
    return GST_PAD_PROBE_OK;
  }
  GstElement *pipeline_ = nullptr;
  std::atomic<int> frames_{0};
};

// PLAYING -> PAUSED -> PLAYING goes on streaming; PLAYING -> NULL gives back the device (the
// element reserves all four cores again on the next start), joins axinference's threads and
// closes every fd it opened: after five more cycles the process has the fds and threads it had
// after the first.
TEST(StateCycles, PauseResumesAndNullReleasesDeviceThreadsAndFds) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  axtest::TempFile results("ax-data-flow-cycles");
  Pipeline pipeline(
      "videotestsrc pattern=ball ! video/x-raw,format=RGB,width=64,height=48 ! "
      "axpreprocess model=" +
      model + " ! axinference model=" + model +
      " num-sub-devices=4 max-inflight=4 ! axdecode decoder=classification ! "
      "axtracker ! axoverlay ! axmetapublish location=" +
      results.path() + " ! fakesink name=out sync=false");
  int fds_after_first = 0, threads_after_first = 0;
  for (int cycle = 0; cycle < 6; ++cycle) {
    ASSERT_EQ(pipeline.set(GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS)
        << "cycle " << cycle << ": " << pipeline.error();
    ASSERT_TRUE(pipeline.wait_frames(pipeline.frames() + 5)) << "cycle " << cycle;
    // axinference names its threads as it creates them (going to PAUSED). The instance runs one
    // frame at a time (no double-buffer): one runner computing, one waiting with the next frame,
    // whatever max-inflight allows to queue.
    EXPECT_EQ(threads_named("axinf-"), 2 + 1) << "2 runners and the push thread";
    ASSERT_EQ(pipeline.set(GST_STATE_PAUSED), GST_STATE_CHANGE_SUCCESS);
    ASSERT_EQ(pipeline.set(GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS);
    ASSERT_TRUE(pipeline.wait_frames(pipeline.frames() + 5)) << "after PAUSED, cycle " << cycle;
    ASSERT_EQ(pipeline.set(GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
    EXPECT_EQ(threads_named("axinf-"), 0) << "cycle " << cycle;
    if (cycle == 0) {
      fds_after_first = count_dir("/proc/self/fd");
      threads_after_first = count_dir("/proc/self/task");
    }
  }
  EXPECT_EQ(pipeline.error(), "");
  EXPECT_EQ(count_dir("/proc/self/fd"), fds_after_first);
  // GLib's thread pools may keep an idle thread or two of their own.
  EXPECT_LE(count_dir("/proc/self/task"), threads_after_first + 2);
}

// axinference keeps as many run threads as its instance can use, one more waiting with the next
// frame prepared (the instance computes one run at a time, two with double-buffer), never more
// than max-inflight; frames beyond them queue.
TEST(StateCycles, RunThreadsFollowTheInstancesConcurrentRuns) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  struct Expected {
    const char *properties;
    int runners;
  };
  for (const Expected &e :
       {Expected{"max-inflight=8", 2}, Expected{"max-inflight=8 double-buffer=true", 3},
        Expected{"max-inflight=1", 1}}) {
    Pipeline pipeline(
        "videotestsrc pattern=ball ! video/x-raw,format=RGB,width=64,height=48 ! "
        "axpreprocess model=" +
        model + " ! axinference model=" + model + " " + e.properties +
        " ! fakesink name=out sync=false");
    ASSERT_EQ(pipeline.set(GST_STATE_PLAYING), GST_STATE_CHANGE_SUCCESS) << pipeline.error();
    ASSERT_TRUE(pipeline.wait_frames(10)) << e.properties;
    // Named as they are created (going to PAUSED): a surplus thread shows whether it ran or not.
    EXPECT_EQ(threads_named("axinf-run"), e.runners) << e.properties;
    ASSERT_EQ(pipeline.set(GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS);
    EXPECT_EQ(pipeline.error(), "") << e.properties;
  }
}

// --- tees and several pipelines on one device --------------------------------------------------

// Each frame's output tensor bytes at the sink named `sink`, by pts; fails on a frame with more
// than one output meta (a branch must not see the other branch's results).
class OutputsAt {
 public:
  OutputsAt(GstElement *pipeline, const char *sink)
      : sink_(gst_bin_get_by_name(GST_BIN(pipeline), sink)),
        probe_(sink_, "sink", GST_PAD_PROBE_TYPE_BUFFER, probe, this) {}
  ~OutputsAt() { gst_object_unref(sink_); }
  OutputsAt(const OutputsAt &) = delete;
  OutputsAt &operator=(const OutputsAt &) = delete;
  std::map<GstClockTime, Bytes> outputs() {
    std::lock_guard<std::mutex> lock(mutex_);
    return outputs_;
  }
  int with_several_outputs() const { return several_; }

 private:
  static GstPadProbeReturn probe(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *self = static_cast<OutputsAt *>(data);
    GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER(info);
    int count = 0;
    gpointer iter = nullptr;
    while (GstMeta *meta =
               gst_buffer_iterate_meta_filtered(buffer, &iter, GST_AX_TENSOR_META_API_TYPE))
      count += reinterpret_cast<GstAxTensorMeta *>(meta)->kind == GST_AX_TENSOR_OUTPUT;
    if (count > 1) ++self->several_;
    Bytes bytes = axtest::output_of(buffer);
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->outputs_[GST_BUFFER_PTS(buffer)] = std::move(bytes);
    return GST_PAD_PROBE_OK;
  }
  std::mutex mutex_;
  std::map<GstClockTime, Bytes> outputs_;
  std::atomic<int> several_{0};
  GstElement *sink_;
  axtest::PadProbe probe_;  // last: removed first
};

std::string source(const std::string &model, int frames) {
  return "videotestsrc pattern=ball num-buffers=" + std::to_string(frames) +
         " ! video/x-raw,format=RGB,width=64,height=48 ! axpreprocess model=" + model;
}

// A tee of two axinference branches on the same model, unshared (an instance each) and shared
// (one instance): both branches get every frame with the same results and only their own.
TEST(TeeFlow, TwoInferenceBranchesOnOneModelGetEveryFrameWithEqualResults) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  const int frames = 12;
  std::map<GstClockTime, Bytes> unshared;
  for (const char *shared : {"false", "true"}) {
    const std::string branch =
        " ! queue ! axinference model=" + model + " shared=" + shared + " ! fakesink sync=false";
    Pipeline pipeline(source(model, frames) + " ! tee name=t t." + branch + " name=a t." + branch +
                      " name=out");
    OutputsAt a(pipeline.get(), "a"), b(pipeline.get(), "out");
    pipeline.set(GST_STATE_PLAYING);
    EXPECT_EQ(pipeline.error(true), "") << "shared=" << shared;
    EXPECT_EQ(a.outputs().size(), size_t(frames)) << "shared=" << shared;
    EXPECT_EQ(a.outputs(), b.outputs()) << "shared=" << shared;
    EXPECT_EQ(a.with_several_outputs() + b.with_several_outputs(), 0) << "shared=" << shared;
    if (unshared.empty())
      unshared = a.outputs();
    else
      EXPECT_EQ(a.outputs(), unshared) << "the shared instance's results differ";
  }
}

// Two pipelines of one process on the same device at once, each with its own instance: both end
// with every frame and the same results.
TEST(TeeFlow, TwoPipelinesOnOneDeviceBothGetEveryFrame) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  const int frames = 12;
  const std::string launch = source(model, frames) + " ! axinference model=" + model +
                             " max-inflight=2 ! fakesink name=out sync=false";
  Pipeline first(launch), second(launch);
  OutputsAt first_out(first.get(), "out"), second_out(second.get(), "out");
  first.set(GST_STATE_PLAYING);
  second.set(GST_STATE_PLAYING);
  EXPECT_EQ(first.error(true), "");
  EXPECT_EQ(second.error(true), "");
  EXPECT_EQ(first_out.outputs().size(), size_t(frames));
  EXPECT_EQ(first_out.outputs(), second_out.outputs());
}

// The same refusals in a running pipeline: a fatal one ends it with exactly one error (posted by
// the source, which the flow return reached, naming it), EOS from downstream ends it with EOS, and
// the pipeline stops at once either way.
TEST(AxInferenceFlow, DownstreamRefusalInAPipelineEndsItWithOneMessage) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  for (GstFlowReturn refusal : {GST_FLOW_NOT_LINKED, GST_FLOW_ERROR, GST_FLOW_EOS}) {
    auto pipeline = std::make_unique<Pipeline>(source(model, -1) + " ! axinference model=" + model +
                                               " ! fakesink name=out sync=false");
    GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline->get()), "out");
    GstPad *pad = gst_element_get_static_pad(sink, "sink");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, axtest::refuse_buffer,
                      GINT_TO_POINTER(refusal), nullptr);
    gst_object_unref(pad);
    gst_object_unref(sink);
    pipeline->set(GST_STATE_PLAYING);
    const std::string error = pipeline->error(true);
    if (refusal == GST_FLOW_EOS) {
      EXPECT_EQ(error, "") << "downstream's EOS ends the stream";
    } else {
      EXPECT_NE(error.find(gst_flow_get_name(refusal)), std::string::npos) << error;
      EXPECT_EQ(pipeline->error(), "") << "a second error";
    }
    const auto start = std::chrono::steady_clock::now();
    pipeline.reset();
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2))
        << gst_flow_get_name(refusal);
  }
}

// Plays `pipeline` until its source gives up (an error from an element other than `element`),
// then a second more; returns the errors `element` posted meanwhile.
std::vector<std::string> errors_until_the_source_stops(Pipeline &pipeline, const char *element) {
  pipeline.set(GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus(pipeline.get());
  std::vector<std::string> errors;
  bool source_stopped = false;
  for (GstMessage *message;
       (message = gst_bus_timed_pop_filtered(bus, (source_stopped ? 1 : 10) * GST_SECOND,
                                             GST_MESSAGE_ERROR));) {
    GError *error = nullptr;
    gst_message_parse_error(message, &error, nullptr);
    if (std::string(GST_OBJECT_NAME(GST_MESSAGE_SRC(message))) == element)
      errors.push_back(error->message);
    else
      source_stopped = true;
    g_error_free(error);
    gst_message_unref(message);
  }
  pipeline.set(GST_STATE_NULL);
  gst_object_unref(bus);
  EXPECT_TRUE(source_stopped);
  return errors;
}

// Frames axpreprocess cannot take (here a crop beyond them): GstBaseTransform offers the refused
// caps again with each frame upstream pushes, and every attempt posted the same error again
// (7 on the bus for one refusal, 3 of them before the source's not-negotiated); one is posted.
TEST(CapsRefusal, CapsAxPreprocessCannotTakeArePostedOnceNotOncePerAttempt) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  Pipeline pipeline(
      "videotestsrc num-buffers=20 ! video/x-raw,format=RGB,width=160,height=120 ! "
      "axpreprocess name=pre model=" +
      model + " crop=0,0,300,200 ! fakesink name=out");
  const std::vector<std::string> errors = errors_until_the_source_stops(pipeline, "pre");
  ASSERT_EQ(errors.size(), 1u) << errors.front();
  EXPECT_NE(errors[0].find("cannot take RGB 160x120 frames: crop (0,0,300,200)"), std::string::npos)
      << errors[0];
}

// An element after axinference refusing a frame with an error of its own (axdecode given outputs
// its decoder cannot take): axinference pushed it every frame it had in flight, and each posted
// the error again (5-6 on the bus, max-inflight 4). Frames after a refusal are dropped, as queue
// does: one frame reaches axdecode, one error.
TEST(AxInferenceFlow, FramesAfterADownstreamErrorAreNotPushedSoItIsPostedOnce) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  Pipeline pipeline(source(model, 40) + " ! axinference model=" + model +
                    " max-inflight=8 ! axdecode name=dec decoder=blazeface ! fakesink name=out");
  std::atomic<int> reaching_decode{0};
  GstElement *decode = gst_bin_get_by_name(GST_BIN(pipeline.get()), "dec");
  GstPad *pad = gst_element_get_static_pad(decode, "sink");
  gst_pad_add_probe(
      pad, GST_PAD_PROBE_TYPE_BUFFER,
      [](GstPad *, GstPadProbeInfo *, gpointer count) {
        ++*static_cast<std::atomic<int> *>(count);
        return GST_PAD_PROBE_OK;
      },
      &reaching_decode, nullptr);
  gst_object_unref(pad);
  gst_object_unref(decode);
  const std::vector<std::string> errors = errors_until_the_source_stops(pipeline, "dec");
  ASSERT_EQ(errors.size(), 1u) << errors.front();
  EXPECT_NE(errors[0].find("blazeface decoder: expected"), std::string::npos) << errors[0];
  EXPECT_EQ(reaching_decode, 1);
}

// --- a webcam's packed 4:2:2 into axoverlay ----------------------------------------------------

// v4l2src's YUY2/UYVY straight into axoverlay, as into axpreprocess, with no videoconvert: the
// pipeline negotiates (before: not-negotiated, axoverlay took RGB-family, NV12 and I420 only) and
// the box lands where the ROI says, in BT.601 green, on an odd-sized frame.
TEST(PackedYuvOverlay, WebcamFormatsReachAxoverlayWithoutVideoconvertAndGetTheBox) {
  for (const char *format : {"YUY2", "UYVY"}) {
    Pipeline pipeline(
        std::string("videotestsrc pattern=black num-buffers=2 ! video/x-raw,format=") + format +
        ",width=65,height=49 ! identity name=mark ! axoverlay draw-labels=false ! "
        "fakesink name=out");
    GstElement *mark = gst_bin_get_by_name(GST_BIN(pipeline.get()), "mark");
    GstElement *out = gst_bin_get_by_name(GST_BIN(pipeline.get()), "out");
    axtest::PadProbe add_roi(
        mark, "src", GST_PAD_PROBE_TYPE_BUFFER,
        [](GstPad *, GstPadProbeInfo *info, gpointer) {
          GstBuffer *buffer = gst_buffer_make_writable(GST_PAD_PROBE_INFO_BUFFER(info));
          gst_buffer_add_video_region_of_interest_meta(buffer, "face", 20, 10, 45, 20);
          GST_PAD_PROBE_INFO_DATA(info) = buffer;
          return GST_PAD_PROBE_OK;
        },
        nullptr);
    std::vector<uint8_t> drawn;
    axtest::PadProbe keep(
        out, "sink", GST_PAD_PROBE_TYPE_BUFFER,
        [](GstPad *, GstPadProbeInfo *info, gpointer data) {
          auto *bytes = static_cast<std::vector<uint8_t> *>(data);
          if (bytes->empty())
            *bytes = axtest::buffer_bytes<uint8_t>(GST_PAD_PROBE_INFO_BUFFER(info));
          return GST_PAD_PROBE_OK;
        },
        &drawn);
    EXPECT_EQ(axtest::play_until_eos(pipeline.get()), "") << format;
    gst_element_set_state(pipeline.get(), GST_STATE_NULL);
    gst_object_unref(mark);
    gst_object_unref(out);
    const int stride = 33 * 4;  // ceil(65 / 2) macropixels of 4 bytes
    ASSERT_EQ(drawn.size(), size_t(stride * 49)) << format;
    const bool yuy2 = std::string(format) == "YUY2";
    // Pixel (30, 10) on the top edge, and (64, 20) on the right edge, the last column: the box's
    // luma and its pair's chroma; (40, 20) inside the box stays black.
    for (const auto &[x, y] : {std::pair{30, 10}, std::pair{64, 20}}) {
      const uint8_t *pair = drawn.data() + y * stride + x / 2 * 4;
      EXPECT_EQ(int(pair[yuy2 ? (x % 2) * 2 : 1 + (x % 2) * 2]), 145) << format << " Y " << x;
      EXPECT_EQ(int(pair[yuy2 ? 1 : 0]), 54) << format << " U " << x;
      EXPECT_EQ(int(pair[yuy2 ? 3 : 2]), 34) << format << " V " << x;
    }
    const uint8_t *inside = drawn.data() + 20 * stride + 20 * 4;
    EXPECT_EQ(int(inside[yuy2 ? 0 : 1]), 16) << format << " inside";
    EXPECT_EQ(int(inside[yuy2 ? 1 : 0]), 128) << format << " inside";
  }
}

}  // namespace
