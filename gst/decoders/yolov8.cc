// yolov8: YOLOv8 detections (anchor-free), from either export form:
//  - decoded: the Ultralytics ONNX export's one (1, 4 + classes, N) tensor (or its transpose
//    (1, N, 4 + classes)): cx, cy, w, h in input pixels and class probabilities, no objectness;
//  - raw DFL heads: three (1, 4 * 16 + classes, H, W) tensors (strides 8, 16, 32, H halving):
//    per side (left, top, right, bottom) a 16-bin distribution whose softmax expectation is the
//    distance from the anchor point (cell + 0.5) in strides, then class logits (sigmoid; config
//    `activations=sigmoid` when the export applied it already, as the yolov8n builder does).
// Per-class NMS (defaults in registry.cc). int8 outputs are thresholded on the raw int8 (class
// logits against a precomputed int8 threshold, sigmoid from a 256-entry table) and only
// candidates are dequantised (tensor_view.h). A package whose postamble concatenates the DFL
// bins with the class sigmoids hands them over split ((1,64,H,W) + (1,classes,H,W) per level,
// each its own quantisation), the classes as logits (for_logits).
#include <limits>

#include "axstream/error.h"
#include "detection_common.h"
#include "tensor_view.h"

namespace axstream::decoders {
namespace {

constexpr int kDflBins = 16;  // Ultralytics' reg_max
constexpr int kDflChannels = 4 * kDflBins;

// The softmax expectation sum(i * p_i) of `kDflBins` logits strided by `stride` from `first`.
template <class View>
float dfl_distance(const View &t, size_t first, size_t stride) {
  float logits[kDflBins];
  float max_logit = t.value(first);
  for (int i = 0; i < kDflBins; ++i) {
    logits[i] = t.value(first + i * stride);
    max_logit = std::max(max_logit, logits[i]);
  }
  float sum = 0, expected = 0;
  for (int i = 0; i < kDflBins; ++i) {
    const float e = std::exp(logits[i] - max_logit);
    sum += e;
    expected += e * static_cast<float>(i);
  }
  return expected / sum;
}

class YoloV8Decoder final : public detail::YoloDecoder<YoloV8Decoder> {
 public:
  explicit YoloV8Decoder(const DecoderOptions &options) : YoloDecoder(options, "yolov8") {}

  void check_outputs(const std::vector<FloatTensor> &outputs) const override {
    if (is_decoded(outputs) || are_dfl_heads(outputs) || are_split_heads(outputs)) return;
    throw InvalidArgument(
        "yolov8 decoder: expected one tensor (1,4+classes,N), three raw DFL heads "
        "(1,64+classes,H,W) with H halving, or those heads split as (1,64,H,W) and "
        "(1,classes,H,W) pairs, got " +
        detail::describe_outputs(outputs));
  }

  // DFL heads configured `activations=sigmoid` whose class channels went through the
  // postamble's sigmoid, handed over split (each part its own quantisation, the class parts
  // before the sigmoid): the logits mode applies it to candidates itself.
  std::unique_ptr<Decoder> for_logits(const std::vector<FloatTensor> &outputs,
                                      const std::vector<bool> &before_sigmoid) const override {
    if (!sigmoid_applied_ || !are_split_heads(outputs) ||
        before_sigmoid != std::vector<bool>{false, true, false, true, false, true})
      return nullptr;
    DecoderOptions logits = options_;
    logits.config["activations"] = "logits";
    return std::make_unique<YoloV8Decoder>(logits);
  }

 private:
  friend class detail::YoloDecoder<YoloV8Decoder>;

  template <class View>
  DecodeResult decode_views(const std::vector<View> &outputs, const Geometry &geometry) const {
    const float threshold = threshold_;
    std::vector<Detection> candidates =
        outputs.size() == 1 ? decoded_candidates(outputs[0], threshold)
                            : dfl_candidates(outputs, threshold, sigmoid_applied_, geometry);
    DecodeResult result;
    result.detections = detail::finish_detections(std::move(candidates), options_, geometry);
    return result;
  }

  template <class View>
  static std::vector<Detection> decoded_candidates(const View &t, float threshold) {
    // The box count is the larger dimension (8400 at 640x640 vs 84 values).
    const bool channels_first = t.shape()[1] < t.shape()[2];
    const int values = static_cast<int>(channels_first ? t.shape()[1] : t.shape()[2]);
    const int rows = static_cast<int>(channels_first ? t.shape()[2] : t.shape()[1]);
    const size_t value_stride = channels_first ? rows : 1;
    const auto score_key = t.key_at_least(threshold);
    std::vector<Detection> candidates;
    for (int r = 0; r < rows; ++r) {
      const size_t v = channels_first ? r : static_cast<size_t>(r) * values;
      const int class_id = detail::best_key(t, v + 4 * value_stride, values - 4, value_stride);
      const size_t best = v + (4 + class_id) * value_stride;
      if (!(t.key(best) >= score_key)) continue;
      candidates.push_back(
          {detail::box_from_centre(t.value(v), t.value(v + value_stride),
                                   t.value(v + 2 * value_stride), t.value(v + 3 * value_stride)),
           t.value(best),
           class_id,
           {},
           {}});
    }
    return candidates;
  }

  template <class View>
  static std::vector<Detection> dfl_candidates(const std::vector<View> &outputs, float threshold,
                                               bool sigmoid_applied, const Geometry &geometry) {
    if (geometry.tensor_width <= 0 || geometry.tensor_height <= 0)
      throw InvalidArgument(
          "yolov8 decoder: raw DFL heads need the model input size in the "
          "geometry, got " +
          std::to_string(geometry.tensor_width) + "x" + std::to_string(geometry.tensor_height));
    std::vector<Detection> candidates;
    // Class channels already through a sigmoid compare probabilities, else logits.
    const float logit_threshold = sigmoid_applied  ? threshold
                                  : threshold <= 0 ? -std::numeric_limits<float>::infinity()
                                  : threshold >= 1 ? std::numeric_limits<float>::infinity()
                                                   : std::log(threshold / (1.0f - threshold));
    // Per level: the view with the DFL bins and the one with the class channels (the same head,
    // or a split pair), and where the classes start in the latter.
    struct Level {
      const View *boxes, *classes;
      size_t class_channel;
    };
    std::vector<Level> levels;
    if (outputs.size() == 6) {
      for (size_t i = 0; i < 6; i += 2) levels.push_back({&outputs[i], &outputs[i + 1], 0});
    } else {
      for (const View &t : outputs) levels.push_back({&t, &t, size_t(kDflChannels)});
    }
    std::sort(levels.begin(), levels.end(), [](const Level &a, const Level &b) {
      return a.boxes->shape()[2] > b.boxes->shape()[2];
    });
    for (const Level &level : levels) {
      const View &t = *level.boxes, &scores = *level.classes;
      const int classes = static_cast<int>(scores.shape()[1] - int64_t(level.class_channel));
      const int h = static_cast<int>(t.shape()[2]), w = static_cast<int>(t.shape()[3]);
      const float stride_x = static_cast<float>(geometry.tensor_width) / w;
      const float stride_y = static_cast<float>(geometry.tensor_height) / h;
      const size_t plane = static_cast<size_t>(h) * w;
      const auto logit_key = scores.key_at_least(logit_threshold);
      const auto sig =
          scores.table([sigmoid_applied](float x) { return sigmoid_applied ? x : sigmoid(x); });
      for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
          const size_t cell = static_cast<size_t>(y) * w + x;
          const size_t class_first = level.class_channel * plane + cell;
          const int class_id = detail::best_key(scores, class_first, classes, plane);
          const size_t best = class_first + class_id * plane;
          if (!(scores.key(best) >= logit_key)) continue;
          const float score = sig(best);
          if (score < threshold) continue;
          const float anchor_x = x + 0.5f, anchor_y = y + 0.5f;
          const float left = dfl_distance(t, cell, plane);
          const float top = dfl_distance(t, kDflBins * plane + cell, plane);
          const float right = dfl_distance(t, 2 * kDflBins * plane + cell, plane);
          const float bottom = dfl_distance(t, 3 * kDflBins * plane + cell, plane);
          candidates.push_back({{(anchor_x - left) * stride_x, (anchor_y - top) * stride_y,
                                 (anchor_x + right) * stride_x, (anchor_y + bottom) * stride_y},
                                score,
                                class_id,
                                {},
                                {}});
        }
    }
    return candidates;
  }

  static bool is_decoded(const std::vector<FloatTensor> &outputs) {
    return outputs.size() == 1 && outputs[0].shape.size() == 3 && outputs[0].shape[0] == 1 &&
           std::min(outputs[0].shape[1], outputs[0].shape[2]) > 4;
  }
  // (1,64,H,W) DFL bins then (1,classes,H,W) for each of three levels, H halving.
  static bool are_split_heads(const std::vector<FloatTensor> &outputs) {
    if (outputs.size() != 6) return false;
    std::vector<FloatTensor> boxes;
    for (size_t i = 0; i < 6; i += 2) {
      const auto &bins = outputs[i].shape, &classes = outputs[i + 1].shape;
      if (bins.size() != 4 || classes.size() != 4 || bins[0] != 1 || classes[0] != 1 ||
          bins[1] != kDflChannels || classes[1] < 1 || classes[1] != outputs[1].shape[1] ||
          bins[2] != classes[2] || bins[3] != classes[3])
        return false;
      boxes.push_back(outputs[i]);
    }
    return heads_halve(boxes);
  }
  static bool are_dfl_heads(const std::vector<FloatTensor> &outputs) {
    if (outputs.size() != 3) return false;
    for (const auto &t : outputs)
      if (t.shape.size() != 4 || t.shape[0] != 1 || t.shape[1] <= kDflChannels ||
          t.shape[1] != outputs[0].shape[1])
        return false;
    return heads_halve(outputs);
  }
};

}  // namespace

std::unique_ptr<Decoder> make_yolov8_decoder(const DecoderOptions &options) {
  return std::make_unique<YoloV8Decoder>(options);
}

}  // namespace axstream::decoders
