// Frame skipping (axpreprocess inference-interval) through axpreprocess ! axinference: which
// frames get a tensor and an output, the skipped marker, where the count starts over, and the
// property's range.
#include <gst/video/video.h>

#include <string>
#include <vector>

#include "axstream/gst/axresultmeta.h"
#include "axstream/gst/axtensormeta.h"
#include "gst_test_util.h"

namespace {

const auto *gst_environment = ::testing::AddGlobalTestEnvironment(new axtest::GstEnvironment);

// resnet_tiny's input is 32x32: frames that size keep the preprocessing trivial.
constexpr int kWidth = 32, kHeight = 32;

// axpreprocess ! axinference on `model` with `interval`, RGB kWidth x kHeight caps set, the bin's
// messages on `bus`; torn down with the object.
struct IntervalHarness {
  IntervalHarness(const std::string &model, guint interval)
      : h(gst_harness_new_parse(("axpreprocess name=pre model=" + model + " inference-interval=" +
                                 std::to_string(interval) + " ! axinference model=" + model)
                                    .c_str())),
        bus(h->element) {
    gst_harness_set_src_caps_str(h, axtest::video_caps("RGB", kWidth, kHeight).c_str());
  }
  ~IntervalHarness() { gst_harness_teardown(h); }
  IntervalHarness(const IntervalHarness &) = delete;
  IntervalHarness &operator=(const IntervalHarness &) = delete;

  GstHarness *h;
  axtest::BusWatch bus;
};

struct FrameResult {
  bool inferred = false;   // an OUTPUT tensor meta: axinference ran the frame
  bool marked = false;     // the ax-inference-skipped marker
  bool has_input = false;  // an INPUT tensor meta: axpreprocess made a tensor
};

FrameResult push_frame(GstHarness *h, int index, int width = kWidth, int height = kHeight) {
  GstBuffer *in = axtest::random_buffer(gsize(width) * height * 3, uint32_t(index));
  GST_BUFFER_PTS(in) = GstClockTime(index) * GST_SECOND / 30;
  FrameResult result;
  GstBuffer *out = gst_harness_push_and_pull(h, in);
  EXPECT_NE(out, nullptr) << "frame " << index;
  if (!out) return result;
  result.inferred = gst_buffer_get_ax_tensor_meta(out, GST_AX_TENSOR_OUTPUT, nullptr, -1);
  result.has_input = gst_buffer_get_ax_tensor_meta(out, GST_AX_TENSOR_INPUT, nullptr, -1);
  result.marked = gst_buffer_get_ax_inference_skipped(out, nullptr);
  gst_buffer_unref(out);
  return result;
}

// The frames of `count` pushed that were inferred; checks each is inferred or marked, not both.
std::vector<int> inferred_frames(GstHarness *h, int first, int count) {
  std::vector<int> inferred;
  for (int i = first; i < first + count; ++i) {
    const FrameResult r = push_frame(h, i);
    EXPECT_NE(r.inferred, r.marked) << "frame " << i << ": inferred and marked alike";
    EXPECT_EQ(r.has_input, r.inferred) << "frame " << i;
    if (r.inferred) inferred.push_back(i);
  }
  return inferred;
}

void push_segment(GstHarness *h) {
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_segment(&segment)));
}

}  // namespace

TEST(InferenceInterval, ThreeInfersFramesZeroThreeSixNineAndMarksTheOthers) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  IntervalHarness harness(model, 3);
  GstHarness *h = harness.h;
  GstBuffer *in = axtest::random_buffer(kWidth * kHeight * 3, 0);
  std::vector<int> inferred;
  for (int i = 0; i < 10; ++i) {
    GstBuffer *out = gst_harness_push_and_pull(h, gst_buffer_copy(in));
    ASSERT_NE(out, nullptr);
    const GstStructure *marker = gst_buffer_get_ax_inference_skipped(out, model.c_str());
    if (gst_buffer_get_ax_tensor_meta(out, GST_AX_TENSOR_OUTPUT, nullptr, -1)) {
      inferred.push_back(i);
      EXPECT_EQ(marker, nullptr) << "frame " << i;
    } else {
      ASSERT_NE(marker, nullptr) << "frame " << i << " has neither an output nor the marker";
      EXPECT_STREQ(gst_structure_get_string(marker, "roi"), "frame");
      guint interval = 0;
      EXPECT_TRUE(gst_structure_get_uint(marker, "interval", &interval));
      EXPECT_EQ(interval, 3u);
    }
    gst_buffer_unref(out);
  }
  gst_buffer_unref(in);
  EXPECT_EQ(inferred, (std::vector<int>{0, 3, 6, 9}));
  // Skipped frames are no misconfiguration: axinference does not warn about missing tensors.
  EXPECT_EQ(harness.bus.warning(), "");
}

TEST(InferenceInterval, OneInfersEveryFrameWithoutAMarker) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  IntervalHarness harness(model, 1);
  GstHarness *h = harness.h;
  EXPECT_EQ(inferred_frames(h, 0, 5), (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_EQ(harness.bus.warning(), "");
}

TEST(InferenceInterval, AFlushRestartsTheCountSoTheNextFrameIsInferred) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  IntervalHarness harness(model, 3);
  GstHarness *h = harness.h;
  EXPECT_EQ(inferred_frames(h, 0, 2), (std::vector<int>{0}));  // frame 1 skipped, 2 would be
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_start()));
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_stop(TRUE)));
  push_segment(h);
  EXPECT_EQ(inferred_frames(h, 2, 4), (std::vector<int>{2, 5}));
}

TEST(InferenceInterval, ANewSegmentRestartsTheCount) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  IntervalHarness harness(model, 4);
  GstHarness *h = harness.h;
  EXPECT_EQ(inferred_frames(h, 0, 3), (std::vector<int>{0}));
  push_segment(h);  // a non-flushing seek
  EXPECT_EQ(inferred_frames(h, 3, 5), (std::vector<int>{3, 7}));
}

TEST(InferenceInterval, NewCapsRestartTheCount) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  IntervalHarness harness(model, 3);
  GstHarness *h = harness.h;
  EXPECT_EQ(inferred_frames(h, 0, 2), (std::vector<int>{0}));
  gst_harness_set_src_caps_str(h, axtest::video_caps("RGB", 48, 32).c_str());
  EXPECT_TRUE(push_frame(h, 2, 48, 32).inferred);
  EXPECT_TRUE(push_frame(h, 3, 48, 32).marked);
}

TEST(InferenceInterval, ChangedWhilePlayingAppliesFromTheNextFrame) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  IntervalHarness harness(model, 5);
  GstHarness *h = harness.h;
  EXPECT_EQ(inferred_frames(h, 0, 2), (std::vector<int>{0}));
  GstElement *preprocess = gst_bin_get_by_name(GST_BIN(h->element), "pre");
  g_object_set(preprocess, "inference-interval", 2u, nullptr);
  gst_object_unref(preprocess);
  EXPECT_EQ(inferred_frames(h, 2, 4), (std::vector<int>{2, 4}));
  EXPECT_EQ(harness.bus.warning(), "");  // mutable while playing: no "can only be changed" warning
}

// A cascade: the detector's axpreprocess skipped the frame, so the second stage (roi=objects,
// no tracker between) got nothing to crop. Its axinference passes the frame without a warning;
// a frame with no tensor and no marker still warns.
TEST(InferenceInterval, SecondStageAfterASkippedDetectorDoesNotWarn) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  axtest::WatchedInference inference(model, kWidth, kHeight);
  GstHarness *h = inference.h;
  axtest::BusWatch &bus = inference.bus;
  GstBuffer *frame = gst_buffer_new_allocate(nullptr, kWidth * kHeight * 3, nullptr);
  gst_buffer_add_ax_inference_skipped_meta(frame, "/models/detector", FALSE, 3);
  GstBuffer *out = gst_harness_push_and_pull(h, frame);
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(gst_buffer_get_ax_tensor_meta(out, GST_AX_TENSOR_OUTPUT, nullptr, -1), nullptr);
  gst_buffer_unref(out);
  EXPECT_EQ(bus.warning(), "");
  out =
      gst_harness_push_and_pull(h, gst_buffer_new_allocate(nullptr, kWidth * kHeight * 3, nullptr));
  gst_buffer_unref(out);
  EXPECT_NE(bus.warning().find("a frame has no input tensor for model"), std::string::npos);
}

TEST(InferenceInterval, ZeroIsOutsideThePropertysRange) {
  GstElement *element = gst_element_factory_make("axpreprocess", nullptr);
  ASSERT_NE(element, nullptr);
  GParamSpec *pspec =
      g_object_class_find_property(G_OBJECT_GET_CLASS(element), "inference-interval");
  ASSERT_NE(pspec, nullptr);
  EXPECT_EQ(G_PARAM_SPEC_UINT(pspec)->minimum, 1u);
  EXPECT_EQ(G_PARAM_SPEC_UINT(pspec)->default_value, 1u);
  GValue value = G_VALUE_INIT;
  g_value_init(&value, G_TYPE_UINT);
  g_value_set_uint(&value, 0);
  EXPECT_TRUE(g_param_value_validate(pspec, &value));  // 0 is not a valid value
  EXPECT_EQ(g_value_get_uint(&value), 1u);
  EXPECT_NE(std::string(g_param_spec_get_blurb(pspec)).find("0 is refused"), std::string::npos);
  gst_object_unref(element);
}
