#include "sort_tracker.h"

#include <algorithm>
#include <opencv2/video/tracking.hpp>
#include <tuple>

namespace axstream::tracker {

double iou(const Box &a, const Box &b) {
  double x0 = std::max(a.x, b.x), y0 = std::max(a.y, b.y);
  double x1 = std::min(a.x + a.width, b.x + b.width);
  double y1 = std::min(a.y + a.height, b.y + b.height);
  double inter = std::max(0.0, x1 - x0) * std::max(0.0, y1 - y0);
  double uni = a.width * a.height + b.width * b.height - inter;
  return uni > 0 ? inter / uni : 0.0;
}

// State: centre x, centre y, width, height and their velocities (per frame).
struct SortTracker::Track {
  cv::KalmanFilter filter{8, 4, 0, CV_64F};
  int64_t id = -1;  // assigned when confirmed
  int class_id = -1;
  int hits = 1;
  int frames_since_update = 0;  // Kalman predictions since the last correction
  int misses = 0;               // update() calls in a row without a matching detection

  explicit Track(const Detection &detection) : class_id(detection.class_id) {
    cv::setIdentity(filter.transitionMatrix);
    for (int i = 0; i < 4; ++i) filter.transitionMatrix.at<double>(i, i + 4) = 1.0;
    filter.measurementMatrix = cv::Mat::zeros(4, 8, CV_64F);
    for (int i = 0; i < 4; ++i) filter.measurementMatrix.at<double>(i, i) = 1.0;
    // Position noise follows SORT: trust measurements, let velocities adapt slowly.
    cv::setIdentity(filter.processNoiseCov, cv::Scalar(1.0));
    for (int i = 4; i < 8; ++i) filter.processNoiseCov.at<double>(i, i) = 0.01;
    cv::setIdentity(filter.measurementNoiseCov, cv::Scalar(1.0));
    cv::setIdentity(filter.errorCovPost, cv::Scalar(10.0));
    for (int i = 4; i < 8; ++i) filter.errorCovPost.at<double>(i, i) = 1000.0;
    filter.statePost = cv::Mat::zeros(8, 1, CV_64F);
    cv::Mat z = measurement(detection.box);
    for (int i = 0; i < 4; ++i) filter.statePost.at<double>(i) = z.at<double>(i);
  }

  static cv::Mat measurement(const Box &box) {
    cv::Mat z(4, 1, CV_64F);
    z.at<double>(0) = box.x + box.width / 2;
    z.at<double>(1) = box.y + box.height / 2;
    z.at<double>(2) = box.width;
    z.at<double>(3) = box.height;
    return z;
  }

  static Box box_of(const cv::Mat &state) {
    double w = std::max(0.0, state.at<double>(2)), h = std::max(0.0, state.at<double>(3));
    return {state.at<double>(0) - w / 2, state.at<double>(1) - h / 2, w, h};
  }

  Box predict() {
    ++frames_since_update;
    return box_of(filter.predict());
  }
  Box correct(const Box &box) {
    frames_since_update = 0;
    misses = 0;
    ++hits;
    return box_of(filter.correct(measurement(box)));
  }
  Box current() const { return box_of(filter.statePost); }
};

SortTracker::SortTracker(const TrackerConfig &config) : config_(config) {}
SortTracker::~SortTracker() = default;
SortTracker::SortTracker(SortTracker &&) noexcept = default;
SortTracker &SortTracker::operator=(SortTracker &&) noexcept = default;

size_t SortTracker::live_tracks() const { return tracks_.size(); }

void SortTracker::reset() {
  tracks_.clear();
  next_id_ = 1;
  first_frame_ = true;
}

void SortTracker::rescale(double scale_x, double scale_y) {
  // The state (centre, size and their velocities) is linear in the coordinates: x' = S x, and
  // the covariances follow as S P S.
  cv::Mat scale = cv::Mat::zeros(8, 8, CV_64F);
  for (int i = 0; i < 8; ++i) scale.at<double>(i, i) = i % 2 == 0 ? scale_x : scale_y;
  for (auto &track : tracks_) {
    cv::KalmanFilter &filter = track->filter;
    filter.statePost = scale * filter.statePost;
    filter.statePre = scale * filter.statePre;
    filter.errorCovPost = scale * filter.errorCovPost * scale;
    filter.errorCovPre = scale * filter.errorCovPre * scale;
  }
}

std::vector<Assignment> SortTracker::update(const std::vector<Detection> &detections) {
  std::vector<Box> predicted;
  predicted.reserve(tracks_.size());
  for (auto &track : tracks_) {
    predicted.push_back(track->predict());
    ++track->misses;
  }

  // Greedy association by descending IoU: optimal for the well-separated boxes of typical
  // scenes and O(n^2 log n) without the Hungarian algorithm's cubic cost.
  std::vector<std::tuple<double, size_t, size_t>> pairs;
  for (size_t t = 0; t < tracks_.size(); ++t) {
    for (size_t d = 0; d < detections.size(); ++d) {
      if (config_.per_class && tracks_[t]->class_id != detections[d].class_id) continue;
      double overlap = iou(predicted[t], detections[d].box);
      if (overlap >= config_.iou_threshold) pairs.emplace_back(overlap, t, d);
    }
  }
  std::sort(pairs.begin(), pairs.end(),
            [](const auto &a, const auto &b) { return std::get<0>(a) > std::get<0>(b); });
  std::vector<int> track_of_detection(detections.size(), -1);
  std::vector<bool> track_taken(tracks_.size(), false);
  for (const auto &[overlap, t, d] : pairs) {
    if (track_taken[t] || track_of_detection[d] >= 0) continue;
    track_taken[t] = true;
    track_of_detection[d] = static_cast<int>(t);
  }

  std::vector<Assignment> result(detections.size());
  for (size_t d = 0; d < detections.size(); ++d) {
    Track *track;
    if (track_of_detection[d] >= 0) {
      track = tracks_[track_of_detection[d]].get();
      result[d].smoothed = track->correct(detections[d].box);
    } else {
      tracks_.push_back(std::make_unique<Track>(detections[d]));
      track = tracks_.back().get();
      result[d].smoothed = detections[d].box;
    }
    // Tracks seen in the first frames are confirmed at once, as in SORT.
    if (track->id < 0 && (track->hits >= config_.min_hits || first_frame_)) track->id = next_id_++;
    result[d].track_id = track->id;
  }
  first_frame_ = false;

  std::erase_if(tracks_, [&](const auto &track) { return track->misses > config_.max_age; });
  return result;
}

std::vector<PredictedTrack> SortTracker::predict() {
  std::vector<PredictedTrack> result;
  for (auto &track : tracks_) {
    const Box box = track->predict();
    if (track->id >= 0 && track->misses == 0) result.push_back({track->id, track->class_id, box});
  }
  return result;
}

}  // namespace axstream::tracker
