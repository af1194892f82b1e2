// axinference with a batch-4 package (the seeded resnet_tiny_b4: resnet_tiny's core graph with
// batch 4): frames of several shared elements are gathered into whole-batch runs, every frame
// gets exactly the output a batch-1 run of its own input gives, and a lone stream is not held
// back by a batch that never fills.
#include <random>
#include <vector>

#include "axinference_test_util.h"
#include "axstream/gst/axtensormeta.h"
#include "axstream/gst/axtensorpool.h"
#include "axstream/runtime/runtime.h"

namespace {

const auto *gst_environment = ::testing::AddGlobalTestEnvironment(new axtest::GstEnvironment);

using namespace axtest;  // the shared axinference test helpers

// The axinference inside a harness (gst_harness_new_parse wraps it in a bin). Unref when done.
GstElement *inference_of(GstHarness *h) { return gst_harness_find_element(h, "axinference"); }

TEST(AxInferenceBatching, FourSharedStreamsRunInFullBatchesEachGettingItsOwnResults) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny_b4");
  AXTEST_REQUIRE_MODEL(single, "resnet_tiny");
  DirectRun direct(single);
  constexpr int kStreams = 4, kFrames = 6;
  std::vector<GstHarness *> streams;
  // A long wait: a batch runs only when full, so the fill shows that streams were gathered.
  for (int s = 0; s < kStreams; ++s)
    streams.push_back(inference_harness(model, "shared=true batch-timeout=2000000"));
  std::vector<std::vector<Bytes>> inputs(kStreams);
  for (int f = 0; f < kFrames; ++f)
    for (int s = 0; s < kStreams; ++s) {
      inputs[s].push_back(random_input(direct.input_size(), uint32_t(100 * s + f)));
      ASSERT_EQ(
          gst_harness_push(streams[s], frame_with_tensor(model, inputs[s][f], f * GST_MSECOND)),
          GST_FLOW_OK);
    }
  for (int s = 0; s < kStreams; ++s)
    for (int f = 0; f < kFrames; ++f) {
      GstBuffer *out = gst_harness_pull(streams[s]);
      ASSERT_NE(out, nullptr) << "stream " << s << " frame " << f;
      EXPECT_EQ(GST_BUFFER_PTS(out), GstClockTime(f * GST_MSECOND)) << "stream " << s;
      EXPECT_EQ(output_of(out), direct.run(inputs[s][f])) << "stream " << s << " frame " << f;
      gst_buffer_unref(out);
    }
  guint64 runs = 0;
  gdouble fill = 0;
  GstElement *first = inference_of(streams[0]), *last = inference_of(streams[3]);
  g_object_get(first, "batch-runs", &runs, "batch-fill", &fill, nullptr);
  EXPECT_EQ(runs, guint64(kStreams * kFrames / 4));
  EXPECT_DOUBLE_EQ(fill, 4.0);
  // The statistics are the shared instance's: every element reports the same.
  gdouble other_fill = 0;
  g_object_get(last, "batch-fill", &other_fill, nullptr);
  EXPECT_DOUBLE_EQ(other_fill, fill);
  gst_object_unref(first);
  gst_object_unref(last);
  for (GstHarness *h : streams) gst_harness_teardown(h);
}

TEST(AxInferenceBatching, LoneStreamRunsPartialBatchesAfterTheTimeout) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny_b4");
  AXTEST_REQUIRE_MODEL(single, "resnet_tiny");
  DirectRun direct(single);
  // One frame in flight at a time: the batch can never fill, each frame runs alone after 1 ms.
  GstHarness *h = inference_harness(model, "batch-timeout=1000 max-inflight=1");
  for (int f = 0; f < 3; ++f) {
    const Bytes input = random_input(direct.input_size(), uint32_t(7 + f));
    ASSERT_EQ(gst_harness_push(h, frame_with_tensor(model, input, f * GST_MSECOND)), GST_FLOW_OK);
    GstBuffer *out = gst_harness_pull(h);
    ASSERT_NE(out, nullptr);
    EXPECT_EQ(output_of(out), direct.run(input)) << "frame " << f;
    gst_buffer_unref(out);
  }
  guint64 runs = 0;
  gdouble fill = 0;
  GstElement *inference = inference_of(h);
  g_object_get(inference, "batch-runs", &runs, "batch-fill", &fill, nullptr);
  gst_object_unref(inference);
  EXPECT_EQ(runs, 3u);
  EXPECT_DOUBLE_EQ(fill, 1.0);
  gst_harness_teardown(h);
}

TEST(AxInferenceBatching, EosRunsThePartialBatchAtOnceInsteadOfAfterTheTimeout) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny_b4");
  AXTEST_REQUIRE_MODEL(single, "resnet_tiny");
  DirectRun direct(single);
  // A batch-timeout of 100 s: without the drain the 2 frames would wait for 2 more that never come.
  GstHarness *h = inference_harness(model, "batch-timeout=100000000");
  std::vector<Bytes> inputs;
  for (int f = 0; f < 2; ++f) {
    inputs.push_back(random_input(direct.input_size(), uint32_t(40 + f)));
    ASSERT_EQ(gst_harness_push(h, frame_with_tensor(model, inputs[f], f * GST_MSECOND)),
              GST_FLOW_OK);
  }
  const gint64 start = g_get_monotonic_time();
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
  for (int f = 0; f < 2; ++f) {
    GstBuffer *out = nullptr;
    while (!out && g_get_monotonic_time() - start < 5 * G_USEC_PER_SEC) {
      out = gst_harness_try_pull(h);
      if (!out) g_usleep(1000);
    }
    ASSERT_NE(out, nullptr) << "frame " << f << " not out 5 s after EOS";
    EXPECT_EQ(output_of(out), direct.run(inputs[f])) << "frame " << f;
    gst_buffer_unref(out);
  }
  // EOS follows the frames.
  GstEvent *event = nullptr;
  while (g_get_monotonic_time() - start < 5 * G_USEC_PER_SEC) {
    event = gst_harness_try_pull_event(h);
    if (event && GST_EVENT_TYPE(event) == GST_EVENT_EOS) break;
    if (event) gst_event_unref(event);
    event = nullptr;
    g_usleep(1000);
  }
  ASSERT_NE(event, nullptr);
  gst_event_unref(event);
  gst_harness_teardown(h);
}

TEST(AxInferenceBatching, FlushAndStopDoNotWaitForABatchThatWillNotFill) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny_b4");
  AXTEST_REQUIRE_MODEL(single, "resnet_tiny");
  DirectRun direct(single);
  GstHarness *h = inference_harness(model, "batch-timeout=100000000");
  const Bytes input = random_input(direct.input_size(), 5);
  const gint64 start = g_get_monotonic_time();
  ASSERT_EQ(gst_harness_push(h, frame_with_tensor(model, input, 0)), GST_FLOW_OK);
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_start()));
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_stop(TRUE)));
  ASSERT_EQ(gst_harness_push(h, frame_with_tensor(model, input, 1)), GST_FLOW_OK);
  gst_harness_teardown(h);  // to NULL with the second frame waiting for 3 more
  EXPECT_LT(g_get_monotonic_time() - start, 5 * G_USEC_PER_SEC);
}

TEST(AxInferenceBatching, BatchOnePackagesReportNoBatchRuns) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstHarness *h = inference_harness(model, "");
  DirectRun direct(model);
  const Bytes input = random_input(direct.input_size(), 3);
  ASSERT_EQ(gst_harness_push(h, frame_with_tensor(model, input, 0)), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull(h);
  EXPECT_EQ(output_of(out), direct.run(input));
  gst_buffer_unref(out);
  guint64 runs = 1;
  GstElement *inference = inference_of(h);
  g_object_get(inference, "batch-runs", &runs, nullptr);
  gst_object_unref(inference);
  EXPECT_EQ(runs, 0u);
  gst_harness_teardown(h);
}

TEST(AxInferenceBatching, WholeBatchSizedInputIsAnErrorNamingTheItemSize) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny_b4");
  AXTEST_REQUIRE_MODEL(single, "resnet_tiny");
  DirectRun direct(single);
  GstHarness *h = inference_harness(model, "batch-timeout=0");
  axtest::BusWatch bus(h->element);
  const Bytes whole_batch = random_input(4 * direct.input_size(), 1);
  gst_harness_push(h, frame_with_tensor(model, whole_batch, 0));
  // The push thread posts the run's error when the frame's turn comes.
  std::string error;
  for (int i = 0; i < 300 && error.empty(); ++i) {
    g_usleep(10000);
    error = bus.error();
  }
  EXPECT_NE(error.find("expected one batch item of " + std::to_string(direct.input_size()) +
                       " bytes, got " + std::to_string(whole_batch.size())),
            std::string::npos)
      << error;
  gst_harness_teardown(h);
}

}  // namespace
