// yolov5: YOLOv5 detections, from either export form:
//  - decoded: one (1, N, 5 + classes) tensor of cx, cy, w, h (input pixels), objectness and class
//    probabilities (Ultralytics' default ONNX export, "output0");
//  - raw heads: three (1, 3 * (5 + classes), H, W) tensors (strides 8, 16, 32) of logits,
//    decoded with the default COCO anchors: xy = (2 sigmoid - 0.5 + cell) * stride,
//    wh = (2 sigmoid)^2 * anchor; config `activations=sigmoid` for heads exported with the
//    sigmoid already applied (then the values are used as they are).
// score = objectness * best class probability; per-class NMS (defaults in registry.cc).
// int8 outputs are thresholded on the raw int8 and only candidates dequantised (tensor_view.h);
// a package whose postamble is the heads' Sigmoid decodes that way too (for_logits).
#include "axstream/error.h"
#include "detection_common.h"
#include "tensor_view.h"

namespace axstream::decoders {
namespace {

// Anchors (w, h) in input pixels for strides 8, 16, 32 (yolov5s.yaml).
constexpr float kAnchors[3][6] = {
    {10, 13, 16, 30, 33, 23}, {30, 61, 62, 45, 59, 119}, {116, 90, 156, 198, 373, 326}};

class YoloV5Decoder final : public detail::YoloDecoder<YoloV5Decoder> {
 public:
  explicit YoloV5Decoder(const DecoderOptions &options) : YoloDecoder(options, "yolov5") {}

  void check_outputs(const std::vector<FloatTensor> &outputs) const override {
    if (is_decoded(outputs) || are_raw_heads(outputs)) return;
    throw InvalidArgument(
        "yolov5 decoder: expected one tensor (1,N,5+classes) or three raw heads "
        "(1,3*(5+classes),H,W) with H halving, got " +
        detail::describe_outputs(outputs));
  }

  // Raw heads configured `activations=sigmoid` whose sigmoid is the postamble's: the logits mode
  // applies it to candidates itself.
  std::unique_ptr<Decoder> for_logits(const std::vector<FloatTensor> &outputs,
                                      const std::vector<bool> &before_sigmoid) const override {
    if (!sigmoid_applied_ || !are_raw_heads(outputs) || before_sigmoid.size() != outputs.size() ||
        std::find(before_sigmoid.begin(), before_sigmoid.end(), false) != before_sigmoid.end())
      return nullptr;
    DecoderOptions logits = options_;
    logits.config["activations"] = "logits";
    return std::make_unique<YoloV5Decoder>(logits);
  }

 private:
  friend class detail::YoloDecoder<YoloV5Decoder>;

  template <class View>
  DecodeResult decode_views(const std::vector<View> &outputs, const Geometry &geometry) const {
    const float threshold = threshold_;
    std::vector<Detection> candidates;
    if (outputs.size() == 1) {
      const View &t = outputs[0];
      const int rows = static_cast<int>(t.shape()[1]), values = static_cast<int>(t.shape()[2]);
      const auto objectness_key = t.key_at_least(threshold);
      for (int r = 0; r < rows; ++r) {
        const size_t v = static_cast<size_t>(r) * values;
        if (!(t.key(v + 4) >= objectness_key)) continue;  // objectness bounds the score
        const int class_id = detail::best_key(t, v + 5, values - 5);
        const float score = t.value(v + 4) * t.value(v + 5 + class_id);
        if (score < threshold) continue;
        candidates.push_back(
            {detail::box_from_centre(t.value(v), t.value(v + 1), t.value(v + 2), t.value(v + 3)),
             score,
             class_id,
             {},
             {}});
      }
    } else {
      if (geometry.tensor_width <= 0 || geometry.tensor_height <= 0)
        throw InvalidArgument(
            "yolov5 decoder: raw heads need the model input size in the "
            "geometry, got " +
            std::to_string(geometry.tensor_width) + "x" + std::to_string(geometry.tensor_height));
      // Heads ordered by stride (largest grid first).
      std::vector<const View *> heads = {&outputs[0], &outputs[1], &outputs[2]};
      std::sort(heads.begin(), heads.end(),
                [](auto *a, auto *b) { return a->shape()[2] > b->shape()[2]; });
      // Heads already through a sigmoid compare probabilities, else logits.
      const float logit_threshold =
          sigmoid_applied_ ? threshold : std::log(threshold / (1.0f - threshold));
      const bool applied = sigmoid_applied_;
      for (int level = 0; level < 3; ++level) {
        const View &t = *heads[level];
        const int values = static_cast<int>(t.shape()[1] / 3);
        const int h = static_cast<int>(t.shape()[2]), w = static_cast<int>(t.shape()[3]);
        const float stride_x = static_cast<float>(geometry.tensor_width) / w;
        const float stride_y = static_cast<float>(geometry.tensor_height) / h;
        const size_t plane = static_cast<size_t>(h) * w;
        const auto logit_key = t.key_at_least(logit_threshold);
        const auto sig = t.table([applied](float x) { return applied ? x : sigmoid(x); });
        for (int a = 0; a < 3; ++a) {
          const size_t base = static_cast<size_t>(a) * values * plane;
          for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
              const size_t cell = base + static_cast<size_t>(y) * w + x;
              auto at = [&](int k) { return cell + k * plane; };
              if (!(t.key(at(4)) >= logit_key)) continue;
              const int class_id = detail::best_key(t, at(5), values - 5, plane);
              const float score = sig(at(4)) * sig(at(5 + class_id));
              if (score < threshold) continue;
              const float cx = (2 * sig(at(0)) - 0.5f + x) * stride_x;
              const float cy = (2 * sig(at(1)) - 0.5f + y) * stride_y;
              const float bw = std::pow(2 * sig(at(2)), 2.0f) * kAnchors[level][2 * a];
              const float bh = std::pow(2 * sig(at(3)), 2.0f) * kAnchors[level][2 * a + 1];
              candidates.push_back(
                  {detail::box_from_centre(cx, cy, bw, bh), score, class_id, {}, {}});
            }
        }
      }
    }
    DecodeResult result;
    result.detections = detail::finish_detections(std::move(candidates), options_, geometry);
    return result;
  }

  static bool is_decoded(const std::vector<FloatTensor> &outputs) {
    // Rows outnumber values (25200 x 85 at 640x640); (1, 84, 8400) is YOLOv8's layout.
    return outputs.size() == 1 && outputs[0].shape.size() == 3 && outputs[0].shape[0] == 1 &&
           outputs[0].shape[2] > 5 && outputs[0].shape[1] >= outputs[0].shape[2];
  }
  static bool are_raw_heads(const std::vector<FloatTensor> &outputs) {
    if (outputs.size() != 3) return false;
    for (const auto &t : outputs)
      if (t.shape.size() != 4 || t.shape[0] != 1 || t.shape[1] % 3 != 0 || t.shape[1] / 3 <= 5 ||
          t.shape[1] != outputs[0].shape[1])
        return false;
    return heads_halve(outputs);
  }
};

}  // namespace

std::unique_ptr<Decoder> make_yolov5_decoder(const DecoderOptions &options) {
  return std::make_unique<YoloV5Decoder>(options);
}

}  // namespace axstream::decoders
