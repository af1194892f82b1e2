// axtracker and the SORT tracker library: stable ids for moving boxes, through occlusions.
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>

#include "gst_test_util.h"
#include "sort_tracker.h"

const auto *gst_environment = ::testing::AddGlobalTestEnvironment(new axtest::GstEnvironment);

using axstream::tracker::Box;
using axstream::tracker::Detection;
using axstream::tracker::SortTracker;
using axstream::tracker::TrackerConfig;

namespace {

// Two objects moving in opposite directions across a 640-pixel-wide frame.
std::vector<Detection> scene(int frame, bool hide_first) {
  std::vector<Detection> detections;
  if (!hide_first) detections.push_back({{20.0 + 6 * frame, 100, 40, 80}, 0});
  detections.push_back({{560.0 - 5 * frame, 300, 50, 50}, 0});
  return detections;
}

}  // namespace

TEST(SortTracker, IdsStayStableThroughAFiveFrameOcclusion) {
  SortTracker tracker(TrackerConfig{.max_age = 10, .min_hits = 3, .iou_threshold = 0.3});
  int64_t first_id = -1, second_id = -1;
  for (int frame = 0; frame < 40; ++frame) {
    bool occluded = frame >= 15 && frame < 20;  // the first object vanishes for 5 frames
    auto assignments = tracker.update(scene(frame, occluded));
    if (frame == 0) {
      first_id = assignments[0].track_id;
      second_id = assignments[1].track_id;
      ASSERT_GE(first_id, 0);
      ASSERT_GE(second_id, 0);
      ASSERT_NE(first_id, second_id);
      continue;
    }
    if (occluded) {
      ASSERT_EQ(assignments.size(), 1u);
      EXPECT_EQ(assignments[0].track_id, second_id) << "frame " << frame;
    } else {
      ASSERT_EQ(assignments.size(), 2u);
      EXPECT_EQ(assignments[0].track_id, first_id) << "frame " << frame;
      EXPECT_EQ(assignments[1].track_id, second_id) << "frame " << frame;
    }
  }
}

TEST(SortTracker, TrackOlderThanMaxAgeIsRetiredAndANewIdGiven) {
  SortTracker tracker(TrackerConfig{.max_age = 2, .min_hits = 1, .iou_threshold = 0.3});
  int64_t id = tracker.update({{{100, 100, 50, 50}, 0}})[0].track_id;
  for (int i = 0; i < 4; ++i) tracker.update({});
  EXPECT_EQ(tracker.live_tracks(), 0u);
  int64_t new_id = tracker.update({{{100, 100, 50, 50}, 0}})[0].track_id;
  EXPECT_NE(new_id, id);
}

TEST(SortTracker, NewTrackIsUnconfirmedUntilMinHits) {
  SortTracker tracker(TrackerConfig{.max_age = 5, .min_hits = 3, .iou_threshold = 0.3});
  tracker.update({});  // the first frame confirms at once; start later
  EXPECT_EQ(tracker.update({{{10, 10, 30, 30}, 1}})[0].track_id, -1);
  EXPECT_EQ(tracker.update({{{12, 10, 30, 30}, 1}})[0].track_id, -1);
  EXPECT_GE(tracker.update({{{14, 10, 30, 30}, 1}})[0].track_id, 0);
}

TEST(SortTracker, DifferentClassesDoNotShareATrack) {
  SortTracker tracker(TrackerConfig{.max_age = 5, .min_hits = 1, .iou_threshold = 0.3});
  int64_t person = tracker.update({{{10, 10, 30, 30}, 0}})[0].track_id;
  int64_t car = tracker.update({{{10, 10, 30, 30}, 2}})[0].track_id;
  EXPECT_NE(person, car);
}

TEST(SortTracker, IouOfDisjointAndIdenticalBoxes) {
  EXPECT_DOUBLE_EQ(axstream::tracker::iou({0, 0, 10, 10}, {20, 20, 10, 10}), 0.0);
  EXPECT_DOUBLE_EQ(axstream::tracker::iou({0, 0, 10, 10}, {0, 0, 10, 10}), 1.0);
  EXPECT_NEAR(axstream::tracker::iou({0, 0, 10, 10}, {5, 0, 10, 10}), 50.0 / 150.0, 1e-12);
}

TEST(AxTracker, WritesTrackIdIntoEachRoiAcrossFrames) {
  GstHarness *h = gst_harness_new_parse("axtracker min-hits=1");
  gst_harness_set_src_caps_str(h, "video/x-raw,format=GRAY8,width=640,height=480,framerate=30/1");
  gint64 ids[5];
  for (int frame = 0; frame < 5; ++frame) {
    GstBuffer *buffer = gst_buffer_new_allocate(nullptr, 640 * 480, nullptr);
    auto *roi = gst_buffer_add_video_region_of_interest_meta(buffer, "person", 50 + 4 * frame,
                                                              60, 40, 80);
    gst_video_region_of_interest_meta_add_param(
        roi, gst_structure_new("ax-detection", "class-id", G_TYPE_INT, 0, nullptr));
    ASSERT_EQ(gst_harness_push(h, buffer), GST_FLOW_OK);
    GstBuffer *out = gst_harness_pull(h);
    auto *out_roi = gst_buffer_get_video_region_of_interest_meta(out);
    ASSERT_NE(out_roi, nullptr);
    const GstStructure *params = gst_video_region_of_interest_meta_get_param(out_roi, "ax-detection");
    ASSERT_NE(params, nullptr);
    ASSERT_TRUE(gst_structure_get_int64(params, "track-id", &ids[frame])) << "frame " << frame;
    EXPECT_EQ(ids[frame], ids[0]);
    gst_buffer_unref(out);
  }
  gst_harness_teardown(h);
}
