// One detection's results as the elements (and axstream.meta for Python) read and write them: the
// ROI's `ax-detection` parameter structure and the GstAxDetectionMeta that survives videoscale /
// videoconvert, kept in step by the one writer and read by the one reader here.
#pragma once

#include <gst/video/video.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace axstream::gst {

struct DetectionValues {
  std::optional<std::string> label;
  std::optional<double> confidence;
  std::optional<int> class_id;
  std::optional<int64_t> track_id;
  std::optional<std::string> text;
  std::optional<double> text_confidence;
  bool predicted = false;
  // Read only: the decoder writes keypoints (structure and GstAxKeypointsMeta) itself.
  std::vector<std::pair<double, double>> keypoints;
};

// The values of `roi` on `buffer`: from its `ax-detection` structure when it has one, otherwise
// (after an element that made a new frame) from the GstAxDetectionMeta and GstAxKeypointsMeta of
// its id. nullopt when neither is there.
std::optional<DetectionValues> read_detection(GstBuffer *buffer,
                                              const GstVideoRegionOfInterestMeta *roi);

// Sets every present value of `values` in `roi`'s `ax-detection` structure (added when missing;
// other fields such as keypoints kept) and in the GstAxDetectionMeta of its id (added when
// missing). `buffer` must be writable.
void write_detection(GstBuffer *buffer, GstVideoRegionOfInterestMeta *roi,
                     const DetectionValues &values);

// DL Streamer's view of `roi` (gstgva's RegionOfInterest confidence(), label_id(),
// normalized_rect() and object_id(); gvametaconvert; gvawatermark), from its `ax-detection`
// structure: a "detection" structure with the box normalised to the frame (x_min, y_min, x_max,
// y_max), confidence, label_id and label, and once tracked an "object_id" structure {id}. Each is
// added or brought up to date; "detection" only when the frame size is known (> 0).
void write_dlstreamer_params(GstVideoRegionOfInterestMeta *roi, int frame_width, int frame_height);

// One more than the largest ROI id on `buffer` (0 without ROIs): the id a new detection takes.
gint next_roi_id(GstBuffer *buffer);

}  // namespace axstream::gst
