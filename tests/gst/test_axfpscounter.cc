// axfpscounter: counts every frame, reports at EOS on the bus.
#include <gst/check/gstharness.h>
#include <gst/check/gsttestclock.h>
#include <gst/gst.h>
#include <gtest/gtest.h>

#include "gst_test_util.h"

const auto *gst_environment = ::testing::AddGlobalTestEnvironment(new axtest::GstEnvironment);

TEST(AxFpsCounter, CountsEveryFrameAndPostsAFinalReportAtEos) {
  GstHarness *h =
      gst_harness_new_parse("axfpscounter name=counter silent=true interval=0 stream-id=3");
  GstBus *bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);
  gst_harness_set_src_caps_str(h, "video/x-raw,format=GRAY8,width=64,height=48,framerate=30/1");
  for (int i = 0; i < 25; ++i) {
    GstBuffer *buffer = gst_buffer_new_allocate(nullptr, 64 * 48, nullptr);
    GST_BUFFER_PTS(buffer) = i * GST_SECOND / 30;
    ASSERT_EQ(gst_harness_push(h, buffer), GST_FLOW_OK);
    gst_buffer_unref(gst_harness_pull(h));
    // interval=0: nothing is reported before the end of the stream.
    ASSERT_EQ(gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT), nullptr);
  }
  // The harness wraps a parsed element in a bin; read the property on the element itself.
  GstElement *counter = gst_bin_get_by_name(GST_BIN(h->element), "counter");
  ASSERT_NE(counter, nullptr);
  guint64 frames = 0;
  g_object_get(counter, "frames", &frames, nullptr);
  gst_object_unref(counter);
  EXPECT_EQ(frames, 25u);

  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
  GstMessage *message = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT);
  ASSERT_NE(message, nullptr) << "no report at EOS";
  const GstStructure *s = gst_message_get_structure(message);
  ASSERT_TRUE(gst_structure_has_name(s, "axfpscounter"));
  guint stream_id = 0;
  gboolean final = FALSE;
  frames = 0;
  EXPECT_TRUE(gst_structure_get_uint64(s, "frames", &frames));
  EXPECT_TRUE(gst_structure_get_uint(s, "stream-id", &stream_id));
  EXPECT_TRUE(gst_structure_get_boolean(s, "final", &final));
  EXPECT_EQ(frames, 25u);
  EXPECT_EQ(stream_id, 3u);
  EXPECT_TRUE(final);
  gst_message_unref(message);
  gst_element_set_bus(h->element, nullptr);
  gst_object_unref(bus);
  gst_harness_teardown(h);
}

// An application reads average-fps when its pipeline ended: the figure of the final report,
// however long after the EOS (it went on falling with the time since, 4370 fps at EOS read as
// 30 a second later).
TEST(AxFpsCounter, AverageFpsStopsAtTheEndOfTheStream) {
  GstHarness *h = gst_harness_new_parse("axfpscounter name=counter silent=true interval=0");
  GstBus *bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);
  gst_harness_set_src_caps_str(h, "video/x-raw,format=GRAY8,width=8,height=8,framerate=30/1");
  for (int i = 0; i < 10; ++i) {
    GstBuffer *buffer = gst_buffer_new_allocate(nullptr, 64, nullptr);
    GST_BUFFER_PTS(buffer) = i * GST_SECOND / 30;
    ASSERT_EQ(gst_harness_push(h, buffer), GST_FLOW_OK);
    gst_buffer_unref(gst_harness_pull(h));
    g_usleep(2000);  // a measurable stream: about 50 ms
  }
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
  GstMessage *message = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT);
  ASSERT_NE(message, nullptr) << "no report at EOS";
  double reported = 0;
  EXPECT_TRUE(
      gst_structure_get_double(gst_message_get_structure(message), "average-fps", &reported));
  gst_message_unref(message);
  EXPECT_GT(reported, 0);
  GstElement *counter = gst_bin_get_by_name(GST_BIN(h->element), "counter");
  ASSERT_NE(counter, nullptr);
  double at_eos = 0, later = 0;
  g_object_get(counter, "average-fps", &at_eos, nullptr);
  g_usleep(200000);
  g_object_get(counter, "average-fps", &later, nullptr);
  EXPECT_DOUBLE_EQ(at_eos, reported);
  EXPECT_DOUBLE_EQ(later, reported) << "read 0.2 s after the EOS";
  gst_object_unref(counter);
  gst_element_set_bus(h->element, nullptr);
  gst_object_unref(bus);
  gst_harness_teardown(h);
}

namespace {
// The latency-ms of the final report of `description` (a pipeline with a counter named counter),
// run on a GstTestClock that jumps to each clock wait as it comes: frames meet the clock when
// the pipeline asks and not a moment later, however slow or busy the machine. On the system
// clock a non-live source's frames, which run one frame ahead of the sink, could reach the
// counter late on a loaded machine (descheduled > 1 frame) and count a latency.
double final_latency_ms(const char *description) {
  GError *error = nullptr;
  GstElement *pipeline = gst_parse_launch(description, &error);
  EXPECT_NE(pipeline, nullptr) << (error ? error->message : "");
  if (!pipeline) return -2;
  GstClock *clock = gst_test_clock_new();
  gst_pipeline_use_clock(GST_PIPELINE(pipeline), clock);
  GstBus *bus = gst_element_get_bus(pipeline);
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  double latency = -2;
  const gint64 deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
  for (;;) {
    GstMessage *message = gst_bus_pop_filtered(
        bus,
        static_cast<GstMessageType>(GST_MESSAGE_ELEMENT | GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
    if (!message) {
      // Nothing to read: release the next clock wait (source or sink), if one is pending.
      if (gst_test_clock_timed_wait_for_multiple_pending_ids(GST_TEST_CLOCK(clock), 1, 10, nullptr))
        gst_test_clock_crank(GST_TEST_CLOCK(clock));
      else if (g_get_monotonic_time() > deadline) {
        ADD_FAILURE() << "no EOS after 20 s: " << description;
        break;
      }
      continue;
    }
    const bool done = GST_MESSAGE_TYPE(message) != GST_MESSAGE_ELEMENT;
    const GstStructure *s = gst_message_get_structure(message);
    gboolean final = FALSE;
    if (GST_MESSAGE_TYPE(message) == GST_MESSAGE_ERROR) {
      GError *message_error = nullptr;
      gst_message_parse_error(message, &message_error, nullptr);
      ADD_FAILURE() << description << ": " << message_error->message;
      g_error_free(message_error);
    } else if (!done && gst_structure_has_name(s, "axfpscounter") &&
               gst_structure_get_boolean(s, "final", &final) && final) {
      gst_structure_get_double(s, "latency-ms", &latency);
    }
    gst_message_unref(message);
    if (done) break;
  }
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(clock);
  gst_object_unref(pipeline);
  return latency;
}
}  // namespace

// The description says when latency is measured: a user trying it with fakesink (sync=false)
// got fps lines without the latency the description promised.
TEST(AxFpsCounter, ReportsLatencyOnlyWhenFramesMeetTheClock) {
  EXPECT_GE(final_latency_ms("videotestsrc is-live=true num-buffers=3 ! "
                             "axfpscounter name=counter silent=true interval=0 ! fakesink"),
            0.0);
  EXPECT_EQ(final_latency_ms("videotestsrc num-buffers=3 ! "
                             "axfpscounter name=counter silent=true interval=0 ! fakesink"),
            -1.0);
}

// Going to PLAYING, a pipeline gives its elements the clock before their base time, and a
// non-live sink lets its prerolled frame go before upstream elements play: a frame passing while
// not PLAYING must not count a latency against a stale base time (CI once saw 5 hours).
TEST(AxFpsCounter, MeasuresNoLatencyBeforePlaying) {
  GstHarness *h = gst_harness_new_parse("axfpscounter name=counter silent=true interval=0");
  GstBus *bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);
  gst_harness_use_testclock(h);
  gst_harness_set_src_caps_str(h, "video/x-raw,format=GRAY8,width=64,height=48,framerate=30/1");
  ASSERT_NE(gst_element_set_state(h->element, GST_STATE_PAUSED), GST_STATE_CHANGE_FAILURE);
  GstElement *counter = gst_bin_get_by_name(GST_BIN(h->element), "counter");
  ASSERT_NE(counter, nullptr);
  gst_element_set_base_time(counter, 0);
  GstClock *clock = gst_element_get_clock(counter);
  ASSERT_NE(clock, nullptr) << "the counter needs a clock for this test to mean anything";
  gst_object_unref(clock);
  GstBuffer *buffer = gst_buffer_new_allocate(nullptr, 64 * 48, nullptr);
  GST_BUFFER_PTS(buffer) = 0;
  ASSERT_EQ(gst_harness_push(h, buffer), GST_FLOW_OK);
  gst_buffer_unref(gst_harness_pull(h));
  gst_object_unref(counter);

  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
  GstMessage *message = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT);
  ASSERT_NE(message, nullptr) << "no report at EOS";
  double latency = 0;
  EXPECT_TRUE(gst_structure_get_double(gst_message_get_structure(message), "latency-ms", &latency));
  EXPECT_EQ(latency, -1.0);
  gst_message_unref(message);
  gst_element_set_bus(h->element, nullptr);
  gst_object_unref(bus);
  gst_harness_teardown(h);
}
