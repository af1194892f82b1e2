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
#include "tensor_view.h"

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
                                                const DecoderOptions &options,
                                                const Geometry &geometry) {
  std::vector<Detection> kept = nms(std::move(candidates), options.nms_iou, options.max_detections);
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

// The YOLO decoders (yolov5, yolov8): outputs are either one decoded tensor or three raw heads;
// the float and int8 paths run the same Derived::decode_views on FloatView / QuantizedView.
// Derived provides check_outputs (the accepted layouts) and
// template <class View> DecodeResult decode_views(const std::vector<View> &, const Geometry &).
template <class Derived>
class YoloDecoder : public Decoder {
 public:
  YoloDecoder(const DecoderOptions &options, const char *name)
      : options_(options),
        sigmoid_applied_(sigmoid_applied(options.config, name)),
        threshold_(options.conf_threshold),
        name_(name) {}
  const char *name() const override { return name_; }

  DecodeResult decode(const std::vector<FloatTensor> &outputs,
                      const Geometry &geometry) const override {
    check_outputs(outputs);
    return derived().decode_views(views_of<FloatView>(outputs), geometry);
  }
  bool has_int8_path() const override { return true; }
  bool applies_sigmoid(const std::vector<FloatTensor> &outputs) const override {
    return !sigmoid_applied_ && outputs.size() == 3;  // raw heads; the decoded form has none
  }
  DecodeResult decode_quantized(const std::vector<QuantizedTensor> &outputs,
                                const Geometry &geometry) const override {
    check_outputs(shapes_of(outputs));
    return derived().decode_views(views_of<QuantizedView>(outputs), geometry);
  }

 protected:
  // Three 4-D heads whose heights (and widths) halve from one to the next, in any order.
  static bool heads_halve(const std::vector<FloatTensor> &heads) {
    std::vector<const FloatTensor *> sorted = {&heads[0], &heads[1], &heads[2]};
    std::sort(sorted.begin(), sorted.end(),
              [](auto *a, auto *b) { return a->shape[2] < b->shape[2]; });
    for (int i = 1; i < 3; ++i)
      if (sorted[i]->shape[2] != 2 * sorted[i - 1]->shape[2] ||
          sorted[i]->shape[3] != 2 * sorted[i - 1]->shape[3])
        return false;
    return true;
  }

  const DecoderOptions options_;
  const bool sigmoid_applied_;
  const float threshold_;  // conf-threshold, or the decoder's default

 private:
  const Derived &derived() const { return static_cast<const Derived &>(*this); }
  const char *name_;
};

}  // namespace axstream::decoders::detail
