// Data flow through the elements as DeepStream / DL Streamer applications drive it, where unit
// tests of one element with one caps usually stop, on GstHarness: flushing seeks with frames in
// flight in axinference's queue, caps changes mid-stream, GAP events, untimed, short and
// interlaced frames, caps an element refuses, and downstream refusing frames. Whole pipelines
// (state cycles, tees, several pipelines) are in test_data_flow_pipelines.cc.
#include <gst/allocators/gstdmabuf.h>
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <future>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "axinference_test_util.h"
#include "axstream/gst/axresultmeta.h"
#include "axstream/gst/axtensormeta.h"
#include "gst_test_util.h"

namespace {

const auto *gst_environment = ::testing::AddGlobalTestEnvironment(new axtest::GstEnvironment);

using axtest::Bytes;

Bytes read_bytes(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string ms(GstClockTime time) {
  return GST_CLOCK_TIME_IS_VALID(time) ? std::to_string(time / GST_MSECOND) : "none";
}

// What reaches a pad, in order, one line per item: "buffer 33" (pts in ms, or "none"),
// "caps RGB 16x16", "segment 5000" (start in ms), "gap 66", "flush-stop", "eos".
class StreamLog {
 public:
  explicit StreamLog(GstPad *pad)
      : probe_(pad,
               GstPadProbeType(GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM |
                               GST_PAD_PROBE_TYPE_EVENT_FLUSH),
               probe, this) {}
  std::vector<std::string> entries() {
    std::lock_guard<std::mutex> lock(mutex_);
    return entries_;
  }
  // Waits up to 10 s for `entry` to be logged.
  bool wait_for(const std::string &entry) {
    for (int i = 0; i < 2000; ++i) {
      {
        std::lock_guard<std::mutex> lock(mutex_);
        for (const auto &e : entries_)
          if (e == entry) return true;
      }
      g_usleep(5000);
    }
    return false;
  }
  // The entries after the last `marker`.
  std::vector<std::string> after(const std::string &marker) {
    std::vector<std::string> all = entries(), out;
    for (const auto &e : all) {
      if (e == marker)
        out.clear();
      else
        out.push_back(e);
    }
    return out;
  }

 private:
  static GstPadProbeReturn probe(GstPad *, GstPadProbeInfo *info, gpointer data) {
    auto *self = static_cast<StreamLog *>(data);
    std::string entry;
    if (GST_PAD_PROBE_INFO_TYPE(info) & GST_PAD_PROBE_TYPE_BUFFER) {
      entry = "buffer " + ms(GST_BUFFER_PTS(GST_PAD_PROBE_INFO_BUFFER(info)));
    } else {
      GstEvent *event = GST_PAD_PROBE_INFO_EVENT(info);
      switch (GST_EVENT_TYPE(event)) {
        case GST_EVENT_CAPS: {
          GstCaps *caps;
          gst_event_parse_caps(event, &caps);
          GstVideoInfo video;
          gst_video_info_from_caps(&video, caps);
          entry = std::string("caps ") + GST_VIDEO_INFO_NAME(&video) + " " +
                  std::to_string(GST_VIDEO_INFO_WIDTH(&video)) + "x" +
                  std::to_string(GST_VIDEO_INFO_HEIGHT(&video));
          break;
        }
        case GST_EVENT_SEGMENT: {
          const GstSegment *segment;
          gst_event_parse_segment(event, &segment);
          entry = "segment " + ms(segment->start);
          break;
        }
        case GST_EVENT_GAP: {
          GstClockTime timestamp, duration;
          gst_event_parse_gap(event, &timestamp, &duration);
          entry = "gap " + ms(timestamp);
          break;
        }
        case GST_EVENT_FLUSH_STOP:
          entry = "flush-stop";
          break;
        case GST_EVENT_EOS:
          entry = "eos";
          break;
        default:
          return GST_PAD_PROBE_OK;
      }
    }
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->entries_.push_back(entry);
    return GST_PAD_PROBE_OK;
  }
  std::mutex mutex_;
  std::vector<std::string> entries_;
  axtest::PadProbe probe_;  // last: removed first
};

// Holds the first buffer leaving `element`'s source pad for `hold` (or until release()):
// axinference's pushing thread is busy, so what comes after it waits in the element's queue (frames
// done, events behind them).
struct HeldFirstPush {
  explicit HeldFirstPush(GstElement *element,
                         std::chrono::milliseconds hold = std::chrono::milliseconds(300))
      : hold(hold), probe_(element, "src", GST_PAD_PROBE_TYPE_BUFFER, probe, this) {}
  // Waits until the first buffer is held.
  bool held() {
    return entered.get_future().wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  }
  void release() {
    std::lock_guard<std::mutex> lock(mutex);
    released = true;
    wake.notify_all();
  }
  static GstPadProbeReturn probe(GstPad *, GstPadProbeInfo *, gpointer data) {
    auto *self = static_cast<HeldFirstPush *>(data);
    if (self->first.exchange(false)) {
      self->entered.set_value();
      std::unique_lock<std::mutex> lock(self->mutex);
      self->wake.wait_for(lock, self->hold, [&] { return self->released; });
    }
    return GST_PAD_PROBE_OK;
  }
  const std::chrono::milliseconds hold;
  std::promise<void> entered;
  std::atomic<bool> first{true};
  std::mutex mutex;
  std::condition_variable wake;
  bool released = false;
  axtest::PadProbe probe_;  // last: removed first
};

GstEvent *segment_from(GstClockTime start) {
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  segment.start = segment.time = start;
  return gst_event_new_segment(&segment);
}

GstEvent *caps_event(const std::string &caps_text) {
  GstCaps *caps = gst_caps_from_string(caps_text.c_str());
  GstEvent *event = gst_event_new_caps(caps);
  gst_caps_unref(caps);
  return event;
}

// A seeded frame of the size `caps_text` describes (GStreamer's default layout).
GstBuffer *video_frame(const std::string &caps_text, uint32_t seed, GstClockTime pts) {
  GstCaps *caps = gst_caps_from_string(caps_text.c_str());
  GstVideoInfo info;
  EXPECT_TRUE(gst_video_info_from_caps(&info, caps));
  gst_caps_unref(caps);
  GstBuffer *buffer = axtest::random_buffer(GST_VIDEO_INFO_SIZE(&info), seed);
  GST_BUFFER_PTS(buffer) = pts;
  return buffer;
}

// axinference on `model` in a harness fed 16x16 RGB frames, with its element and a bus watch.
struct AxInferenceHarness {
  explicit AxInferenceHarness(const std::string &model, const std::string &extra = "")
      : h(axtest::inference_harness(model, extra)),
        element(gst_harness_find_element(h, "axinference")),
        bus(element) {}
  ~AxInferenceHarness() {
    gst_object_unref(element);
    gst_harness_teardown(h);
  }
  AxInferenceHarness(const AxInferenceHarness &) = delete;
  AxInferenceHarness &operator=(const AxInferenceHarness &) = delete;
  GstHarness *h;
  GstElement *element;
  axtest::BusWatch bus;
};

// --- flushing seeks and EOS with frames in flight --------------------------------------------

// A flushing seek while axinference holds finished frames waiting behind a push: none of them may
// come out after the FLUSH_STOP, the new segment comes first, then every frame pushed after it,
// once each and in order, with its own results, and the EOS after the last of them.
TEST(AxInferenceFlow, FlushWithFramesInFlightLetsNoStaleFrameOutAndLosesNoneAfter) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  AxInferenceHarness inference(model, "max-inflight=4");
  GstHarness *h = inference.h;
  HeldFirstPush held(inference.element);
  StreamLog log(h->sinkpad);
  const Bytes input = read_bytes(model + "/reference/input_0.bin");
  const Bytes reference = read_bytes(model + "/reference/output_0.bin");
  for (int i = 0; i < 4; ++i)
    ASSERT_EQ(gst_harness_push(h, axtest::frame_with_tensor(model, input, i * 33 * GST_MSECOND)),
              GST_FLOW_OK);
  ASSERT_TRUE(held.held());
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_start()));
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_stop(TRUE)));
  while (GstBuffer *stale = gst_harness_try_pull(h)) gst_buffer_unref(stale);
  ASSERT_TRUE(gst_harness_push_event(h, segment_from(5 * GST_SECOND)));
  const int after = 8;
  std::vector<std::string> expected = {"segment 5000"};
  for (int i = 0; i < after; ++i) {
    const GstClockTime pts = 5 * GST_SECOND + i * 33 * GST_MSECOND;
    ASSERT_EQ(gst_harness_push(h, axtest::frame_with_tensor(model, input, pts)), GST_FLOW_OK);
    expected.push_back("buffer " + ms(pts));
  }
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
  expected.push_back("eos");
  ASSERT_TRUE(log.wait_for("eos"));
  EXPECT_EQ(log.after("flush-stop"), expected);
  for (int i = 0; i < after; ++i) {
    GstBuffer *out = gst_harness_pull(h);
    ASSERT_NE(out, nullptr);
    EXPECT_EQ(axtest::output_of(out), reference) << "frame " << i;
    gst_buffer_unref(out);
  }
  EXPECT_EQ(inference.bus.error(), "");
}

// The flushing seek's classic deadlock: upstream's streaming thread blocked in chain waiting for
// a free slot (max-inflight reached, the pushing thread busy) when the seek's FLUSH_START comes
// from another thread. The blocked push returns FLUSHING and streaming goes on after FLUSH_STOP.
TEST(AxInferenceFlow, FlushUnblocksUpstreamWaitingForAFreeSlot) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  AxInferenceHarness inference(model, "max-inflight=1");
  GstHarness *h = inference.h;
  HeldFirstPush held(inference.element, std::chrono::seconds(10));
  const Bytes input = read_bytes(model + "/reference/input_0.bin");
  ASSERT_EQ(gst_harness_push(h, axtest::frame_with_tensor(model, input, 0)), GST_FLOW_OK);
  ASSERT_TRUE(held.held());
  // The first frame is being pushed; the second takes the one slot; the third must wait.
  ASSERT_EQ(gst_harness_push(h, axtest::frame_with_tensor(model, input, 33 * GST_MSECOND)),
            GST_FLOW_OK);
  std::shared_future<GstFlowReturn> blocked =
      std::async(std::launch::async, [&] {
        return gst_harness_push(h, axtest::frame_with_tensor(model, input, 66 * GST_MSECOND));
      }).share();
  EXPECT_EQ(blocked.wait_for(std::chrono::milliseconds(100)), std::future_status::timeout)
      << "the third frame was not held back by max-inflight=1";
  // FLUSH_START waits for the push under way: let it end once the flush has reached the element,
  // which the blocked push returning shows. Released any earlier (a timer raced the FLUSH_START
  // on a loaded machine), the held push would end, the pusher take the second frame (freeing its
  // slot) and the third frame go in with GST_FLOW_OK before the flush. The 5 s are only an upper
  // bound for an element that does not wake the blocked push (then "deadlock" below).
  std::thread releaser([&, blocked] {
    blocked.wait_for(std::chrono::seconds(5));
    held.release();
  });
  EXPECT_TRUE(gst_harness_push_event(h, gst_event_new_flush_start()));
  releaser.join();
  ASSERT_EQ(blocked.wait_for(std::chrono::seconds(5)), std::future_status::ready) << "deadlock";
  EXPECT_EQ(blocked.get(), GST_FLOW_FLUSHING);
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_stop(TRUE)));
  while (GstBuffer *stale = gst_harness_try_pull(h)) gst_buffer_unref(stale);
  ASSERT_TRUE(gst_harness_push_event(h, segment_from(5 * GST_SECOND)));
  ASSERT_EQ(gst_harness_push(h, axtest::frame_with_tensor(model, input, 5 * GST_SECOND)),
            GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull(h);
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(GST_BUFFER_PTS(out), 5 * GST_SECOND);
  gst_buffer_unref(out);
}

// Caps queued behind frames are dropped by a flush with them; upstream does not send its sticky
// caps again after a flush, so axinference must keep them for the stream after it (as queue keeps
// sticky events), or frames of the new caps leave under the old ones.
TEST(AxInferenceFlow, CapsQueuedBehindFramesAtAFlushStillReachDownstream) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  AxInferenceHarness inference(model, "max-inflight=4");
  GstHarness *h = inference.h;
  HeldFirstPush held(inference.element);
  StreamLog log(h->sinkpad);
  const Bytes input = read_bytes(model + "/reference/input_0.bin");
  ASSERT_EQ(gst_harness_push(h, axtest::frame_with_tensor(model, input, 0)), GST_FLOW_OK);
  ASSERT_TRUE(held.held());
  ASSERT_TRUE(gst_harness_push_event(h, caps_event(axtest::video_caps("NV12", 32, 24))));
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_start()));
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_stop(TRUE)));
  ASSERT_TRUE(gst_harness_push_event(h, segment_from(5 * GST_SECOND)));
  ASSERT_EQ(gst_harness_push(h, axtest::frame_with_tensor(model, input, 5 * GST_SECOND)),
            GST_FLOW_OK);
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
  ASSERT_TRUE(log.wait_for("eos"));
  EXPECT_EQ(log.after("flush-stop"),
            (std::vector<std::string>{"caps NV12 32x24", "segment 5000", "buffer 5000", "eos"}));
  GstCaps *current = gst_pad_get_current_caps(h->sinkpad);
  ASSERT_NE(current, nullptr);
  GstVideoInfo info;
  ASSERT_TRUE(gst_video_info_from_caps(&info, current));
  EXPECT_EQ(GST_VIDEO_INFO_FORMAT(&info), GST_VIDEO_FORMAT_NV12);
  EXPECT_EQ(GST_VIDEO_INFO_WIDTH(&info), 32);
  gst_caps_unref(current);
}

// Caps changes while frames are in flight: each frame leaves under the caps it came with, and the
// EOS after the last frame.
TEST(AxInferenceFlow, EachFrameLeavesUnderItsOwnCapsWhenCapsChangeWithFramesInFlight) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  AxInferenceHarness inference(model, "max-inflight=4");
  GstHarness *h = inference.h;
  HeldFirstPush held(inference.element);
  StreamLog log(h->sinkpad);
  const Bytes input = read_bytes(model + "/reference/input_0.bin");
  auto push = [&](int pts_ms) {
    return gst_harness_push(h, axtest::frame_with_tensor(model, input, pts_ms * GST_MSECOND));
  };
  ASSERT_EQ(push(0), GST_FLOW_OK);
  ASSERT_TRUE(held.held());
  ASSERT_EQ(push(33), GST_FLOW_OK);
  ASSERT_TRUE(gst_harness_push_event(h, caps_event(axtest::video_caps("RGB", 32, 32))));
  ASSERT_EQ(push(66), GST_FLOW_OK);
  ASSERT_EQ(push(100), GST_FLOW_OK);
  ASSERT_TRUE(gst_harness_push_event(h, caps_event(axtest::video_caps("NV12", 16, 16))));
  ASSERT_EQ(push(133), GST_FLOW_OK);
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
  ASSERT_TRUE(log.wait_for("eos"));
  const std::vector<std::string> expected = {"buffer 0",   "buffer 33",  "caps RGB 32x32",
                                             "buffer 66",  "buffer 100", "caps NV12 16x16",
                                             "buffer 133", "eos"};
  // The harness's first caps and segment may have gone out before the log was attached.
  EXPECT_EQ(log.after("segment 0"), expected);
}

// --- downstream refusing frames ----------------------------------------------------------------

// Downstream returning FLUSHING, EOS, NOT_LINKED or ERROR to axinference's pushes mid-stream:
// upstream's next push gets that flow return (upstream stops and, for the fatal ones, posts the
// error, as with queue), the element neither hangs nor posts a second error, and it stops at once.
TEST(AxInferenceFlow, DownstreamFlowReturnsReachUpstreamAndTheElementStopsCleanly) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  const Bytes input = read_bytes(model + "/reference/input_0.bin");
  for (GstFlowReturn refusal :
       {GST_FLOW_FLUSHING, GST_FLOW_EOS, GST_FLOW_NOT_LINKED, GST_FLOW_ERROR}) {
    auto inference = std::make_unique<AxInferenceHarness>(model, "max-inflight=2");
    GstHarness *h = inference->h;
    gst_pad_add_probe(h->sinkpad, GST_PAD_PROBE_TYPE_BUFFER, axtest::refuse_buffer,
                      GINT_TO_POINTER(refusal), nullptr);
    GstFlowReturn ret = GST_FLOW_OK;
    for (int i = 0; i < 500 && ret == GST_FLOW_OK; ++i)
      ret = gst_harness_push(h, axtest::frame_with_tensor(model, input, i * GST_MSECOND));
    EXPECT_EQ(ret, refusal) << gst_flow_get_name(refusal);
    EXPECT_EQ(gst_harness_push(h, axtest::frame_with_tensor(model, input, GST_SECOND)), refusal)
        << "the next frame too";
    EXPECT_EQ(inference->bus.error(), "") << gst_flow_get_name(refusal);
    const auto start = std::chrono::steady_clock::now();
    inference.reset();
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2))
        << gst_flow_get_name(refusal);
  }
}

// --- caps changes through the chain ------------------------------------------------------------

// The input tensor axpreprocess made for one frame (fresh elements that only ever saw its caps).
Bytes output_in_a_fresh_chain(const std::string &launch, const std::string &caps, uint32_t seed) {
  GstHarness *h = gst_harness_new_parse(launch.c_str());
  gst_harness_set_src_caps_str(h, caps.c_str());
  GstBuffer *out = gst_harness_push_and_pull(h, video_frame(caps, seed, 0));
  Bytes bytes = out ? axtest::output_of(out) : Bytes{};
  if (out) gst_buffer_unref(out);
  gst_harness_teardown(h);
  return bytes;
}

// Resolution and format changes (RGB <-> NV12, odd sizes) mid-stream through axpreprocess,
// axinference and axoverlay: every frame's results equal those of a chain that only saw its caps,
// and it leaves under its own caps.
TEST(ChainFlow, ResolutionAndFormatChangesGiveEachFrameTheResultsOfItsOwnCaps) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  const std::string launch = "axpreprocess model=" + model + " ! axinference model=" + model +
                             " max-inflight=3 ! axoverlay";
  const std::vector<std::string> caps = {
      axtest::video_caps("RGB", 64, 48),    axtest::video_caps("NV12", 64, 48),
      axtest::video_caps("RGB", 33, 17),    axtest::video_caps("NV12", 31, 7),
      axtest::video_caps("I420", 160, 120), axtest::video_caps("RGB", 64, 48)};
  GstHarness *h = gst_harness_new_parse(launch.c_str());
  StreamLog log(h->sinkpad);
  std::vector<std::string> expected_log;
  int frame = 0;
  std::vector<Bytes> expected;
  for (const std::string &c : caps) {
    gst_harness_set_src_caps_str(h, c.c_str());
    GstVideoInfo info;
    GstCaps *parsed = gst_caps_from_string(c.c_str());
    gst_video_info_from_caps(&info, parsed);
    gst_caps_unref(parsed);
    expected_log.push_back(std::string("caps ") + GST_VIDEO_INFO_NAME(&info) + " " +
                           std::to_string(GST_VIDEO_INFO_WIDTH(&info)) + "x" +
                           std::to_string(GST_VIDEO_INFO_HEIGHT(&info)));
    for (int i = 0; i < 2; ++i, ++frame) {
      expected.push_back(output_in_a_fresh_chain(launch, c, 500 + frame));
      ASSERT_EQ(gst_harness_push(h, video_frame(c, 500 + frame, frame * 33 * GST_MSECOND)),
                GST_FLOW_OK)
          << c;
      expected_log.push_back("buffer " + ms(frame * 33 * GST_MSECOND));
    }
  }
  for (int i = 0; i < frame; ++i) {
    GstBuffer *out = gst_harness_pull(h);
    ASSERT_NE(out, nullptr);
    EXPECT_FALSE(expected[i].empty());
    EXPECT_EQ(axtest::output_of(out), expected[i]) << "frame " << i;
    gst_buffer_unref(out);
  }
  // From the first frame on (GstHarness sends a segment with each caps: left out).
  std::vector<std::string> seen;
  for (const std::string &entry : log.entries())
    if (entry.rfind("segment", 0) != 0 && (!seen.empty() || entry == "buffer 0"))
      seen.push_back(entry);
  EXPECT_EQ(seen, std::vector<std::string>(expected_log.begin() + 1, expected_log.end()));
  gst_harness_teardown(h);
}

// --- caps an element refuses, interlaced frames ------------------------------------------

TEST(CapsRefusal, InterleavedFramesAreTakenAlternateFieldsAreRefusedNamingElementAndCaps) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  const std::string launch = "axpreprocess model=" + model + " ! axinference model=" + model;
  const std::string progressive = axtest::video_caps("RGB", 64, 48);
  EXPECT_EQ(output_in_a_fresh_chain(launch, progressive + ",interlace-mode=interleaved", 7),
            output_in_a_fresh_chain(launch, progressive, 7));

  GstElement *element = gst_element_factory_make("axpreprocess", "pre");
  g_object_set(element, "model", model.c_str(), nullptr);
  axtest::BusWatch bus(element);
  GstHarness *h = gst_harness_new_with_element(element, "sink", "src");
  const std::string alternate =
      "video/x-raw(format:Interlaced),format=RGB,width=64,height=48,framerate=30/1,"
      "interlace-mode=alternate";
  gst_harness_set_src_caps_str(h, alternate.c_str());
  EXPECT_EQ(gst_harness_push(h, video_frame(progressive, 1, 0)), GST_FLOW_NOT_NEGOTIATED);
  const std::string error = bus.error();
  EXPECT_NE(error.find("pre"), std::string::npos) << error;
  EXPECT_NE(error.find("interlace-mode=(string)alternate"), std::string::npos) << error;
  gst_harness_teardown(h);
}

// A format an element does not take, arriving mid-stream (a capsfilter changed while playing):
// the error names the element, the caps and what it takes, not only upstream's "not-negotiated".
TEST(CapsRefusal, UnsupportedFormatMidStreamIsAnErrorNamingTheElementAndTheCaps) {
  for (const char *name : {"axoverlay", "axpreprocess", "axinference"}) {
    AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
    GstElement *element = gst_element_factory_make(name, "refusing");
    if (g_object_class_find_property(G_OBJECT_GET_CLASS(element), "model"))
      g_object_set(element, "model", model.c_str(), nullptr);
    axtest::BusWatch bus(element);
    GstHarness *h = gst_harness_new_with_element(element, "sink", "src");
    // axinference takes any video/x-raw itself: here its downstream takes only RGB.
    gst_harness_set_sink_caps_str(h, "video/x-raw,format=RGB");
    gst_harness_set_src_caps_str(h, axtest::video_caps("RGB", 64, 48).c_str());
    // A sticky event is stored on the harness's pad whatever happens: the frame after it fails.
    gst_harness_push_event(h, caps_event(axtest::video_caps("Y444", 64, 48)));
    EXPECT_EQ(gst_harness_push(h, video_frame(axtest::video_caps("Y444", 64, 48), 1, 0)),
              GST_FLOW_NOT_NEGOTIATED)
        << name;
    const std::string error = bus.error();
    EXPECT_NE(error.find("refusing"), std::string::npos) << name << ": " << error;
    EXPECT_NE(error.find("Y444"), std::string::npos) << name << ": " << error;
    EXPECT_NE(error.find("RGB"), std::string::npos) << name << " (what it takes): " << error;
    gst_harness_teardown(h);
  }
}

// Upstream's pad sends a refused sticky CAPS event again before each frame it pushes after it:
// each posted the same error again (5 on the bus for an appsrc going on with 7 frames). One per
// refusal; caps taken in between, or a new stream, let the next refusal post again.
TEST(CapsRefusal, ARefusedCapsEventSentAgainWithEachFrameIsPostedOnce) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstElement *element = gst_element_factory_make("axpreprocess", "refusing");
  g_object_set(element, "model", model.c_str(), nullptr);
  GstBus *bus = gst_bus_new();
  gst_element_set_bus(element, bus);
  GstHarness *h = gst_harness_new_with_element(element, "sink", "src");
  const auto errors = [&] {
    int count = 0;
    while (GstMessage *message = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR)) {
      ++count;
      gst_message_unref(message);
    }
    return count;
  };
  const std::string rgb = axtest::video_caps("RGB", 64, 48),
                    y444 = axtest::video_caps("Y444", 64, 48);
  gst_harness_set_src_caps_str(h, rgb.c_str());
  EXPECT_EQ(gst_harness_push(h, video_frame(rgb, 1, 0)), GST_FLOW_OK);
  gst_harness_push_event(h, caps_event(y444));
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(gst_harness_push(h, video_frame(y444, 2, i)), GST_FLOW_NOT_NEGOTIATED);
  EXPECT_EQ(errors(), 1);
  gst_harness_push_event(h, caps_event(rgb));
  EXPECT_EQ(gst_harness_push(h, video_frame(rgb, 3, 0)), GST_FLOW_OK);
  gst_harness_push_event(h, caps_event(y444));
  EXPECT_EQ(gst_harness_push(h, video_frame(y444, 4, 0)), GST_FLOW_NOT_NEGOTIATED);
  EXPECT_EQ(errors(), 1) << "a refusal after caps were taken again";
  gst_harness_teardown(h);
  gst_object_unref(bus);
}

// A format the first element takes and one after it does not (xRGB into axoverlay, then
// axpreprocess, which reads every format axoverlay draws on but xRGB and xBGR): the error names
// the caps and the element that refused them (posted by the element before it, whose
// GstBaseTransform checked the caps with it before sending them on).
TEST(CapsRefusal, FormatRefusedFurtherDownTheChainIsNamedToo) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstHarness *h =
      gst_harness_new_parse(("axoverlay ! axpreprocess name=refusing model=" + model).c_str());
  GstElement *overlay = gst_harness_find_element(h, "axoverlay");
  GstBus *bus = gst_bus_new();
  gst_element_set_bus(overlay, bus);
  GstElement *preprocess = gst_harness_find_element(h, "axpreprocess");
  gst_element_set_bus(preprocess, bus);
  gst_harness_set_src_caps_str(h, axtest::video_caps("RGB", 64, 48).c_str());
  gst_harness_push_event(h, caps_event(axtest::video_caps("xRGB", 64, 48)));
  EXPECT_EQ(gst_harness_push(h, video_frame(axtest::video_caps("xRGB", 64, 48), 1, 0)),
            GST_FLOW_NOT_NEGOTIATED);
  GstMessage *message = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
  ASSERT_NE(message, nullptr) << "no element named the refused caps";
  GError *error = nullptr;
  gst_message_parse_error(message, &error, nullptr);
  const std::string text = error->message;
  EXPECT_NE(text.find("refusing cannot take caps video/x-raw, format=(string)xRGB"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("NV12"), std::string::npos) << "what axpreprocess takes: " << text;
  g_error_free(error);
  gst_message_unref(message);
  gst_object_unref(preprocess);
  gst_object_unref(overlay);
  gst_harness_teardown(h);
  gst_object_unref(bus);
}

// --- gaps, untimed and short frames ----------------------------------------------------------

// GAP events keep their place through the whole chain, frames without timestamps are inferred,
// decoded, tracked, drawn and published (pts null) like the others.
TEST(ChainFlow, GapEventsAndFramesWithoutTimestampsPassTheWholeChain) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  axtest::TempFile results("ax-data-flow-gaps");
  GstHarness *h = gst_harness_new_parse(
      ("axpreprocess model=" + model + " ! axinference model=" + model +
       " ! axdecode decoder=classification ! axtracker ! axoverlay ! axmetapublish location=" +
       results.path())
          .c_str());
  const std::string caps = axtest::video_caps("RGB", 64, 48);
  gst_harness_set_src_caps_str(h, caps.c_str());
  StreamLog log(h->sinkpad);
  ASSERT_EQ(gst_harness_push(h, video_frame(caps, 1, GST_CLOCK_TIME_NONE)), GST_FLOW_OK);
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_gap(33 * GST_MSECOND, 33 * GST_MSECOND)));
  ASSERT_EQ(gst_harness_push(h, video_frame(caps, 2, GST_CLOCK_TIME_NONE)), GST_FLOW_OK);
  ASSERT_EQ(gst_harness_push(h, video_frame(caps, 3, GST_CLOCK_TIME_NONE)), GST_FLOW_OK);
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
  ASSERT_TRUE(log.wait_for("eos"));
  EXPECT_EQ(
      log.after("segment 0"),
      (std::vector<std::string>{"buffer none", "gap 33", "buffer none", "buffer none", "eos"}));
  for (int i = 0; i < 3; ++i) {
    GstBuffer *out = gst_harness_pull(h);
    ASSERT_NE(out, nullptr);
    EXPECT_NE(gst_buffer_get_ax_classification_meta(out, -1), nullptr) << "frame " << i;
    gst_buffer_unref(out);
  }
  gst_harness_teardown(h);
  const std::string lines = axtest::read_file(results.path());
  int count = 0;
  for (size_t at = lines.find("\"pts\":null"); at != std::string::npos;
       at = lines.find("\"pts\":null", at + 1))
    ++count;
  EXPECT_EQ(count, 3) << lines;
}

// A frame smaller than its caps say (empty, or an fd frame cut short) is an error naming both
// sizes, never a read beyond the buffer.
TEST(ShortFrames, FramesSmallerThanTheirCapsAreAnErrorNamingTheSizes) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  struct Case {
    std::string caps;
    gsize size;
    bool dmabuf;
  };
  // 640x480 RGB needs 921600 bytes; the dmabuf frame has its first 64 rows (a whole page more
  // than a short mapping would cover, so a read past it faults).
  for (const Case &c : {Case{axtest::video_caps("RGB", 16, 16), 0, false},
                        Case{axtest::video_caps("NV12", 64, 48), 64 * 48, false},
                        Case{axtest::video_caps("RGB", 640, 480, true), 640 * 3 * 64, true}}) {
    GstElement *element = gst_element_factory_make("axpreprocess", nullptr);
    g_object_set(element, "model", model.c_str(), nullptr);
    axtest::BusWatch bus(element);
    GstHarness *h = gst_harness_new_with_element(element, "sink", "src");
    gst_harness_set_src_caps_str(h, c.caps.c_str());
    GstBuffer *frame = gst_buffer_new();
    if (c.dmabuf) {
      GstAllocator *allocator = gst_dmabuf_allocator_new();
      const int fd = memfd_create("short-frame", MFD_CLOEXEC);
      ASSERT_EQ(ftruncate(fd, off_t(c.size)), 0);
      gst_buffer_append_memory(frame, gst_dmabuf_allocator_alloc(allocator, fd, c.size));
      gst_object_unref(allocator);
    } else if (c.size) {
      gst_buffer_append_memory(frame, gst_allocator_alloc(nullptr, c.size, nullptr));
    }
    EXPECT_EQ(gst_harness_push(h, frame), GST_FLOW_ERROR) << c.caps;
    const std::string error = bus.error();
    EXPECT_NE(error.find("frame of " + std::to_string(c.size) + " bytes"), std::string::npos)
        << c.caps << ": " << error;
    GstCaps *caps = gst_caps_from_string(c.caps.c_str());
    GstVideoInfo info;
    gst_video_info_from_caps(&info, caps);
    gst_caps_unref(caps);
    EXPECT_NE(error.find(std::to_string(GST_VIDEO_INFO_SIZE(&info))), std::string::npos)
        << c.caps << ": " << error;
    gst_harness_teardown(h);
  }
}

// axoverlay (a GstVideoFilter) cannot map a short frame either: GStreamer's base class passes it
// on undrawn with a warning.
TEST(ShortFrames, OverlayPassesAShortFrameUndrawnWithAWarning) {
  GstElement *element = gst_element_factory_make("axoverlay", nullptr);
  axtest::BusWatch bus(element);
  GstHarness *h = gst_harness_new_with_element(element, "sink", "src");
  gst_harness_set_src_caps_str(h, axtest::video_caps("RGB", 16, 16).c_str());
  GstBuffer *frame = gst_buffer_new();
  gst_buffer_add_video_region_of_interest_meta(frame, "face", 2, 2, 8, 8);
  GstBuffer *out = gst_harness_push_and_pull(h, frame);
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(gst_buffer_get_size(out), 0u);
  gst_buffer_unref(out);
  EXPECT_NE(bus.warning().find("invalid video buffer"), std::string::npos);
  EXPECT_EQ(bus.error(), "");
  gst_harness_teardown(h);
}

// Interleaved interlaced frames hold the whole picture: axpreprocess makes the tensor of the
// same progressive frame. Alternate-field caps (one field per buffer) are refused, with an error
// that names the element and the caps.
}  // namespace
