// Helpers the box detectors (yolov5, yolov8, ssd) share: the best class of a score row, tensor
// pixels -> frame pixels, labelling and NMS with the options' defaults.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "axstream/decoders/decoder.h"
#include "axstream/decoders/nms.h"
#include "axstream/error.h"

namespace axstream::decoders::detail {

// Index and value of the largest of `count` scores (strided by `stride` floats).
inline std::pair<int, float> best_class(const float *scores, int count, int stride = 1) {
  int best = 0;
  float best_score = scores[0];
  for (int c = 1; c < count; ++c)
    if (scores[c * stride] > best_score) {
      best_score = scores[c * stride];
      best = c;
    }
  return {best, best_score};
}

inline Box box_from_centre(float cx, float cy, float w, float h) {
  return {cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2};
}

// NMS per class, then labels and frame coordinates.
inline std::vector<Detection> finish_detections(std::vector<Detection> candidates,
                                                const DecoderOptions &options, float default_iou,
                                                const Geometry &geometry) {
  const float iou_threshold = options.nms_iou < 0 ? default_iou : options.nms_iou;
  std::vector<Detection> kept = nms(std::move(candidates), iou_threshold, options.max_detections);
  for (Detection &d : kept) {
    d.label = label_of(options.labels, d.class_id);
    d.box = {static_cast<float>(geometry.frame_x(d.box.x0)),
             static_cast<float>(geometry.frame_y(d.box.y0)),
             static_cast<float>(geometry.frame_x(d.box.x1)),
             static_cast<float>(geometry.frame_y(d.box.y1))};
  }
  return kept;
}

// Raw heads' `activations` config: "logits" (default: the decoder applies the sigmoid) or
// "sigmoid" (the exported graph already did).
inline bool sigmoid_applied(const std::map<std::string, std::string> &config, const char *decoder) {
  const auto found = config.find("activations");
  if (found == config.end() || found->second == "logits") return false;
  if (found->second == "sigmoid") return true;
  throw InvalidArgument(std::string(decoder) + " decoder: activations '" + found->second +
                        "', expected logits or sigmoid");
}

inline std::string describe_outputs(const std::vector<FloatTensor> &outputs) {
  std::string text;
  for (const auto &t : outputs)
    text += (text.empty() ? "" : ", ") + t.name + " " + t.shape_string();
  return text.empty() ? "no outputs" : text;
}

}  // namespace axstream::decoders::detail
