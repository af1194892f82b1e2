// axtracker and the SORT tracker library: stable ids for moving boxes, through occlusions.
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>

#include "axstream/gst/axresultmeta.h"
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

// Frame skipping: detections on frames 0, 3, 6, ... of an object moving 6 px a frame, predict()
// on the frames between.
TEST(SortTracker, PredictMovesTracksBetweenDetectionsKeepingTheirIds) {
  SortTracker tracker(TrackerConfig{.max_age = 3, .min_hits = 3, .iou_threshold = 0.3});
  auto box_at = [](int frame) { return Box{20.0 + 6 * frame, 100, 40, 80}; };
  const int64_t id = tracker.update({{box_at(0), 0}})[0].track_id;
  ASSERT_GE(id, 0);
  for (int frame = 1; frame < 30; ++frame) {
    if (frame % 3 == 0) {
      ASSERT_EQ(tracker.update({{box_at(frame), 0}})[0].track_id, id) << "frame " << frame;
      continue;
    }
    const auto predicted = tracker.predict();
    ASSERT_EQ(predicted.size(), 1u) << "frame " << frame;
    EXPECT_EQ(predicted[0].track_id, id);
    const double last_x = box_at(frame - frame % 3).x, next_x = box_at(frame - frame % 3 + 3).x;
    EXPECT_GE(predicted[0].box.x, last_x) << "frame " << frame;
    EXPECT_LE(predicted[0].box.x, next_x) << "frame " << frame;
    // Once the velocity is known (two detections), the prediction is near the true position.
    if (frame > 6) {  // braced: EXPECT_* expands to an if/else (-Wdangling-else)
      EXPECT_NEAR(predicted[0].box.x, box_at(frame).x, 2.0) << "frame " << frame;
    }
  }
}

TEST(SortTracker, MaxAgeCountsUpdatesNotPredictions) {
  SortTracker tracker(TrackerConfig{.max_age = 2, .min_hits = 1, .iou_threshold = 0.3});
  tracker.update({{{100, 100, 50, 50}, 0}});
  for (int i = 0; i < 20; ++i) tracker.predict();  // longer than max-age, but no detector ran
  EXPECT_EQ(tracker.live_tracks(), 1u);
  tracker.update({});
  tracker.update({});
  EXPECT_EQ(tracker.live_tracks(), 1u);
  tracker.update({});  // the third inferred frame without it
  EXPECT_EQ(tracker.live_tracks(), 0u);
}

TEST(SortTracker, PredictReportsOnlyTracksMatchedAtTheLastUpdate) {
  SortTracker tracker(TrackerConfig{.max_age = 5, .min_hits = 1, .iou_threshold = 0.3});
  tracker.update({{{100, 100, 50, 50}, 0}});
  EXPECT_EQ(tracker.predict().size(), 1u);
  tracker.update({});  // detector ran and found nothing: the track is alive but not reported
  EXPECT_EQ(tracker.live_tracks(), 1u);
  EXPECT_TRUE(tracker.predict().empty());
}

// Frames changed size (the same view scaled): after rescale() the scaled detections keep their
// track; without it they are too far from the old boxes to match.
TEST(SortTracker, RescaleMovesTracksToTheNewFrameSize) {
  for (bool rescaled : {true, false}) {
    SortTracker tracker(TrackerConfig{.max_age = 5, .min_hits = 3, .iou_threshold = 0.3});
    auto box_at = [](int frame, double sx, double sy) {
      return Box{(200.0 + 6 * frame) * sx, 100 * sy, 40 * sx, 80 * sy};
    };
    const int64_t id = tracker.update({{box_at(0, 1, 1), 0}})[0].track_id;
    for (int frame = 1; frame < 4; ++frame) tracker.update({{box_at(frame, 1, 1), 0}});
    if (rescaled) tracker.rescale(0.5, 0.75);
    const int64_t after = tracker.update({{box_at(4, 0.5, 0.75), 0}})[0].track_id;
    if (rescaled) {
      EXPECT_EQ(after, id);
      // The velocity moved to the new coordinates too: the next prediction is where it will be.
      const auto predicted = tracker.predict();
      ASSERT_EQ(predicted.size(), 1u);
      EXPECT_NEAR(predicted[0].box.x, box_at(5, 0.5, 0.75).x, 1.0);
    } else {
      EXPECT_NE(after, id);
    }
  }
}

namespace {

// A 640x480 frame (contents unused) with a "face" ROI of class 0 at x, or with the
// ax-inference-skipped marker when x < 0.
GstBuffer *tracker_frame(int x) {
  GstBuffer *buffer = gst_buffer_new_allocate(nullptr, 640 * 480, nullptr);
  if (x < 0) {
    gst_buffer_add_ax_inference_skipped_meta(buffer, "/models/detector", FALSE, 3);
    return buffer;
  }
  auto *roi = gst_buffer_add_video_region_of_interest_meta(buffer, "face", x, 60, 40, 80);
  roi->id = 0;
  gst_video_region_of_interest_meta_add_param(
      roi, gst_structure_new(GST_AX_DETECTION_PARAM, "label", G_TYPE_STRING, "face", "class-id",
                             G_TYPE_INT, 0, "confidence", G_TYPE_DOUBLE, 0.75, nullptr));
  return buffer;
}

struct TrackedRoi {
  guint x = 0;
  gint64 track_id = -1;
  gboolean predicted = FALSE;
  std::string label;
  double confidence = 0;
};

std::vector<TrackedRoi> tracked_rois(GstBuffer *buffer) {
  std::vector<TrackedRoi> out;
  gpointer iter = nullptr;
  while (GstMeta *meta = gst_buffer_iterate_meta_filtered(
             buffer, &iter, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)) {
    auto *roi = reinterpret_cast<GstVideoRegionOfInterestMeta *>(meta);
    TrackedRoi tracked;
    tracked.x = roi->x;
    if (const GstStructure *p = gst_video_region_of_interest_meta_get_param(roi, "ax-detection")) {
      gst_structure_get_int64(p, "track-id", &tracked.track_id);
      gst_structure_get_boolean(p, "predicted", &tracked.predicted);
      gst_structure_get_double(p, "confidence", &tracked.confidence);
      if (const gchar *label = gst_structure_get_string(p, "label")) tracked.label = label;
    }
    // The typed meta that survives videoscale holds the same values (test_detection_meta.cc).
    const GstAxDetectionMeta *typed = gst_buffer_get_ax_detection_meta(buffer, roi->id);
    if (tracked.track_id >= 0) {
      EXPECT_NE(typed, nullptr) << "roi " << roi->id;
    }
    if (typed && tracked.track_id >= 0) {
      EXPECT_EQ(typed->track_id, tracked.track_id);
      EXPECT_EQ(typed->predicted, tracked.predicted);
      EXPECT_DOUBLE_EQ(typed->score, tracked.confidence);
      EXPECT_STREQ(typed->label, tracked.label.c_str());
    }
    out.push_back(tracked);
  }
  return out;
}

}  // namespace

TEST(AxTracker, SkippedFramesGetPredictedObjectsWithTheirNeighboursIds) {
  GstHarness *h = gst_harness_new_parse("axtracker");
  gst_harness_set_src_caps_str(h, "video/x-raw,format=GRAY8,width=640,height=480,framerate=30/1");
  auto x_at = [](int frame) { return 20 + 6 * frame; };
  gint64 id = -1;
  for (int frame = 0; frame < 13; ++frame) {
    const bool inferred = frame % 3 == 0;
    GstBuffer *out = gst_harness_push_and_pull(h, tracker_frame(inferred ? x_at(frame) : -1));
    ASSERT_NE(out, nullptr);
    const std::vector<TrackedRoi> rois = tracked_rois(out);
    gst_buffer_unref(out);
    ASSERT_EQ(rois.size(), 1u) << "frame " << frame;
    if (frame == 0) id = rois[0].track_id;
    ASSERT_GE(id, 0);
    EXPECT_EQ(rois[0].track_id, id) << "frame " << frame;
    EXPECT_EQ(rois[0].predicted, !inferred) << "frame " << frame;
    if (inferred) continue;
    EXPECT_EQ(rois[0].label, "face");
    EXPECT_DOUBLE_EQ(rois[0].confidence, 0.75);
    const int last = frame - frame % 3;
    EXPECT_GE(int(rois[0].x), x_at(last)) << "frame " << frame;
    EXPECT_LE(int(rois[0].x), x_at(last + 3)) << "frame " << frame;
    if (frame > 3) {  // velocity known: strictly between the inferred boxes
      EXPECT_GT(int(rois[0].x), x_at(last)) << "frame " << frame;
      EXPECT_LT(int(rois[0].x), x_at(last + 3)) << "frame " << frame;
    }
  }
  gst_harness_teardown(h);
}

TEST(AxTracker, AnInferredFrameWithoutDetectionsIsNotASkippedOne) {
  GstHarness *h = gst_harness_new_parse("axtracker");
  gst_harness_set_src_caps_str(h, "video/x-raw,format=GRAY8,width=640,height=480,framerate=30/1");
  GstBuffer *out = gst_harness_push_and_pull(h, tracker_frame(100));
  EXPECT_EQ(tracked_rois(out).size(), 1u);
  gst_buffer_unref(out);
  // The detector ran and found nothing: no object is made up for it...
  out = gst_harness_push_and_pull(h, gst_buffer_new_allocate(nullptr, 640 * 480, nullptr));
  EXPECT_TRUE(tracked_rois(out).empty());
  gst_buffer_unref(out);
  // ...nor on the skipped frame after it (the track was not seen at the last detector run).
  out = gst_harness_push_and_pull(h, tracker_frame(-1));
  EXPECT_TRUE(tracked_rois(out).empty());
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

TEST(AxTracker, PredictedBoxesAreClampedToTheFrame) {
  GstHarness *h = gst_harness_new_parse("axtracker");
  gst_harness_set_src_caps_str(h, "video/x-raw,format=GRAY8,width=640,height=480,framerate=30/1");
  // Moving right 30 px a frame out of the frame's right edge.
  for (int x : {500, 530, 560, -1, -1, -1}) {
    GstBuffer *out = gst_harness_push_and_pull(h, tracker_frame(x));
    gpointer iter = nullptr;
    while (GstMeta *meta = gst_buffer_iterate_meta_filtered(
               out, &iter, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)) {
      auto *roi = reinterpret_cast<GstVideoRegionOfInterestMeta *>(meta);
      EXPECT_LE(roi->x + roi->w, 640u);
      EXPECT_LE(roi->y + roi->h, 480u);
    }
    gst_buffer_unref(out);
  }
  gst_harness_teardown(h);
}

TEST(AxTracker, WritesTrackIdIntoEachRoiAcrossFrames) {
  GstHarness *h = gst_harness_new_parse("axtracker min-hits=1");
  gst_harness_set_src_caps_str(h, "video/x-raw,format=GRAY8,width=640,height=480,framerate=30/1");
  gint64 ids[5];
  for (int frame = 0; frame < 5; ++frame) {
    GstBuffer *buffer = gst_buffer_new_allocate(nullptr, 640 * 480, nullptr);
    auto *roi =
        gst_buffer_add_video_region_of_interest_meta(buffer, "person", 50 + 4 * frame, 60, 40, 80);
    gst_video_region_of_interest_meta_add_param(
        roi, gst_structure_new("ax-detection", "class-id", G_TYPE_INT, 0, nullptr));
    ASSERT_EQ(gst_harness_push(h, buffer), GST_FLOW_OK);
    GstBuffer *out = gst_harness_pull(h);
    auto *out_roi = gst_buffer_get_video_region_of_interest_meta(out);
    ASSERT_NE(out_roi, nullptr);
    const GstStructure *params =
        gst_video_region_of_interest_meta_get_param(out_roi, "ax-detection");
    ASSERT_NE(params, nullptr);
    ASSERT_TRUE(gst_structure_get_int64(params, "track-id", &ids[frame])) << "frame " << frame;
    EXPECT_EQ(ids[frame], ids[0]);
    // DL Streamer's object_id() (gvatrack's "object_id" structure) reads the same id.
    const GstStructure *object_id =
        gst_video_region_of_interest_meta_get_param(out_roi, "object_id");
    ASSERT_NE(object_id, nullptr) << "frame " << frame;
    gint id = -1;
    ASSERT_TRUE(gst_structure_get_int(object_id, "id", &id));
    EXPECT_EQ(id, ids[frame]);
    gst_buffer_unref(out);
  }
  gst_harness_teardown(h);
}

// A caps change to another frame size mid-stream (the same view scaled, as an adaptive stream
// does): the object keeps its id on the first frame of the new size, and the predictions of the
// skipped frames after it are in the new coordinates.
TEST(AxTracker, FrameSizeChangeMidStreamKeepsIdsAndPredictsInTheNewSize) {
  GstHarness *h = gst_harness_new_parse("axtracker");
  gst_harness_set_src_caps_str(h, "video/x-raw,format=GRAY8,width=640,height=480,framerate=30/1");
  auto push = [&](GstBuffer *frame) {
    GstBuffer *out = gst_harness_push_and_pull(h, frame);
    std::vector<TrackedRoi> rois = out ? tracked_rois(out) : std::vector<TrackedRoi>{};
    if (out) gst_buffer_unref(out);
    return rois;
  };
  gint64 id = -1;
  for (int frame = 0; frame < 4; ++frame) {
    const std::vector<TrackedRoi> rois = push(tracker_frame(200 + 6 * frame));
    ASSERT_EQ(rois.size(), 1u);
    id = rois[0].track_id;
  }
  ASSERT_GE(id, 0);
  gst_harness_set_src_caps_str(h, "video/x-raw,format=GRAY8,width=320,height=240,framerate=30/1");
  // Frame 4 at half the size: the face is at x (200 + 24) / 2, y 30, 20x40.
  GstBuffer *half = gst_buffer_new_allocate(nullptr, 320 * 240, nullptr);
  auto *roi = gst_buffer_add_video_region_of_interest_meta(half, "face", 112, 30, 20, 40);
  roi->id = 0;
  gst_video_region_of_interest_meta_add_param(
      roi, gst_structure_new(GST_AX_DETECTION_PARAM, "label", G_TYPE_STRING, "face", "class-id",
                             G_TYPE_INT, 0, "confidence", G_TYPE_DOUBLE, 0.75, nullptr));
  std::vector<TrackedRoi> rois = push(half);
  ASSERT_EQ(rois.size(), 1u);
  EXPECT_EQ(rois[0].track_id, id) << "the object lost its id at the size change";
  // A skipped frame: predicted at about (200 + 30) / 2 = 115, 3 px a frame at this size.
  rois = push(tracker_frame(-1));
  ASSERT_EQ(rois.size(), 1u);
  EXPECT_EQ(rois[0].track_id, id);
  EXPECT_TRUE(rois[0].predicted);
  EXPECT_NEAR(double(rois[0].x), 115.0, 2.0);
  gst_harness_teardown(h);
}
