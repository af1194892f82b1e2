// SORT-style multi-object tracker: a constant-velocity Kalman filter per track and IoU
// association, giving detections stable ids across frames (and short occlusions).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace axstream::tracker {

struct Box {
  double x = 0, y = 0, width = 0, height = 0;
};

double iou(const Box &a, const Box &b);

struct TrackerConfig {
  int max_age = 30;            // updates (inferred frames) a track survives unmatched
  int min_hits = 3;            // matches before a track's id is reported
  double iou_threshold = 0.3;  // minimum IoU between prediction and detection to match
  bool per_class = true;       // only match detections of the track's class
};

struct Detection {
  Box box;
  int class_id = -1;
};

// A confirmed track moved by its motion estimate on a frame without detections.
struct PredictedTrack {
  int64_t track_id = -1;
  int class_id = -1;
  Box box;  // the Kalman prediction for this frame
};

// Result for one detection of a frame, in the order the detections were given.
struct Assignment {
  int64_t track_id = -1;  // -1 while the track is not yet confirmed (fewer than min_hits)
  Box smoothed;           // the Kalman-corrected box
};

class SortTracker {
 public:
  explicit SortTracker(const TrackerConfig &config = {});
  ~SortTracker();
  SortTracker(SortTracker &&) noexcept;
  SortTracker &operator=(SortTracker &&) noexcept;

  // Advances one frame: predicts every track, matches `detections`, updates, ages and retires.
  std::vector<Assignment> update(const std::vector<Detection> &detections);
  // Advances one frame whose detector did not run (frame skipping): every track moves by its
  // Kalman prediction (constant velocity) and none ages, so max_age counts update() calls only.
  // Returns the confirmed tracks matched at the last update(), the ones reported then, at their
  // predicted boxes. The next update() goes on from these predictions.
  std::vector<PredictedTrack> predict();
  // The frames changed size (a caps change mid-stream, the same view scaled): every track's
  // state moves to the new coordinates, x by scale_x and y by scale_y, keeping its id.
  void rescale(double scale_x, double scale_y);
  size_t live_tracks() const;
  void reset();

 private:
  struct Track;
  TrackerConfig config_;
  std::vector<std::unique_ptr<Track>> tracks_;
  int64_t next_id_ = 1;
  bool first_frame_ = true;
};

}  // namespace axstream::tracker
