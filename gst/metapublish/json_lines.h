// JSON Lines records of per-frame inference results, as axmetapublish writes them
// (schema: docs/metadata-schema.md). GStreamer-free so it is testable on its own.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace axstream::publish {

// One ranked class of a classification (of the whole frame or of one object).
struct PublishedClass {
  int class_id = -1;
  std::optional<std::string> label;
  double score = 0.0;
};

struct PublishedObject {
  std::string label;
  int class_id = -1;
  // Absent when the ROI carries no confidence: written as null, so a reader does not take an
  // unknown score for a real 0.
  std::optional<double> score;
  double x = 0, y = 0, width = 0, height = 0;  // frame pixels
  std::vector<std::pair<double, double>> keypoints;
  std::optional<int64_t> track_id;
  bool predicted = false;  // a tracker's prediction on a frame whose inference was skipped
  std::optional<std::string> text;
  std::vector<PublishedClass> classes;  // classification of this object, best first
  std::optional<int> roi_id;            // id of the GstVideoRegionOfInterestMeta
  std::optional<int> parent_id;
};

struct PublishedFrame {
  uint64_t frame = 0;
  std::optional<uint64_t> pts_ns;
  unsigned stream_id = 0;
  int width = 0, height = 0;
  std::vector<PublishedObject> objects;
  std::vector<PublishedClass> classes;  // classification of the whole frame, best first
  bool inference_skipped = false;       // axpreprocess inference-interval skipped this frame
};

// One line of JSON (no trailing newline). Strings are escaped per RFC 8259; non-finite numbers
// and an object's unknown score are written as null.
std::string to_json_line(const PublishedFrame &frame);

}  // namespace axstream::publish
