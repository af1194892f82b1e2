// axinference's state changes against a thread reading its properties meanwhile, on a whole
// pipeline (videotestsrc ! axpreprocess ! axinference ! fakesink: system plugins, which the
// harness tests of test_axinference*.cc do without).
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <iostream>
#include <thread>

#include "gst_test_util.h"

namespace {

const auto *gst_environment = ::testing::AddGlobalTestEnvironment(new axtest::GstEnvironment);

// The batch-runs/batch-fill getters read the element's instance, which each stop drops (its
// batch collector destroyed with the last reference) and each start replaces: a thread polling
// them while the pipeline cycles PLAYING->NULL must never see freed memory (ASan in
// scripts/sanitize.sh) or a torn value. The reader must see runs of some cycle, so it really
// overlapped running instances. On the code before the getters took the state's device_mutex
// this passed in release builds (the window is a few instructions), and failed in every ASan +
// UBSan run (axinference, the batch collector and this test instrumented, 5 of 5): a
// heap-use-after-free in BatchCollector::statistics() called from the getter, or a member call
// on the instance pointer another thread had just nulled.
TEST(AxInferenceStateChanges, BatchStatisticsCanBeReadWhileThePipelineStartsAndStops) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny_b4");
  GError *error = nullptr;
  GstElement *pipeline = gst_parse_launch(
      ("videotestsrc ! video/x-raw,width=64,height=48 ! axpreprocess model=" + model +
       " ! axinference name=inference batch-timeout=200 model=" + model + " ! fakesink")
          .c_str(),
      &error);
  ASSERT_EQ(error, nullptr) << error->message;
  GstElement *inference = gst_bin_get_by_name(GST_BIN(pipeline), "inference");
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0}, reads_with_runs{0}, bad_fills{0};
  std::thread reader([&] {
    while (!stop) {
      guint64 runs = 0;
      gdouble fill = -1;
      g_object_get(inference, "batch-runs", &runs, "batch-fill", &fill, nullptr);
      // 0 with no instance or no run yet, else 1..4 items per run of the batch-4 package.
      if (!(fill == 0.0 || (fill >= 1.0 && fill <= 4.0))) bad_fills++;
      if (runs > 0) reads_with_runs++;
      reads++;
    }
  });
  // At least 10 cycles, then more for up to ~5 s (far fewer under ASan than in a release build;
  // under ASan at a load of 8, 5 s alone gave 7).
  const gint64 start = g_get_monotonic_time();
  int cycles = 0;
  for (; cycles < 10 || (cycles < 300 && g_get_monotonic_time() - start < 5 * G_USEC_PER_SEC);
       ++cycles) {
    gst_element_set_state(pipeline, GST_STATE_PLAYING);
    // Prerolled: a frame went through a batch run (partial, after batch-timeout).
    ASSERT_EQ(gst_element_get_state(pipeline, nullptr, nullptr, 10 * GST_SECOND),
              GST_STATE_CHANGE_SUCCESS)
        << "cycle " << cycles;
    ASSERT_EQ(gst_element_set_state(pipeline, GST_STATE_NULL), GST_STATE_CHANGE_SUCCESS)
        << "cycle " << cycles;
  }
  stop = true;
  reader.join();
  guint64 runs_stopped = 1;
  g_object_get(inference, "batch-runs", &runs_stopped, nullptr);
  gst_object_unref(inference);
  gst_object_unref(pipeline);
  std::cout << cycles << " PLAYING->NULL cycles, " << reads.load() << " reads of both properties ("
            << reads_with_runs.load() << " with runs)\n";
  EXPECT_GT(reads.load(), 0u);
  EXPECT_GT(reads_with_runs.load(), 0u)
      << "the reader never saw a running instance in " << cycles << " cycles";
  EXPECT_EQ(bad_fills.load(), 0u);
  EXPECT_EQ(runs_stopped, 0u);  // no instance after NULL
}

}  // namespace
