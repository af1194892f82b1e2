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
  int max_age = 30;             // frames a track survives without a matching detection
  int min_hits = 3;             // matches before a track's id is reported
  double iou_threshold = 0.3;   // minimum IoU between prediction and detection to match
  bool per_class = true;        // only match detections of the track's class
};

struct Detection {
  Box box;
  int class_id = -1;
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
