// yolov8: YOLOv8 detections from the Ultralytics ONNX export's decoded output (1, 4 + classes, N)
// (or its transpose (1, N, 4 + classes)): cx, cy, w, h in input pixels and class probabilities,
// no objectness. Per-class NMS at IoU 0.45; threshold 0.25. The raw DFL heads are not decoded.
#include "axstream/error.h"
#include "detection_common.h"

namespace axstream::decoders {
namespace {

constexpr float kDefaultThreshold = 0.25f;
constexpr float kDefaultNmsIou = 0.45f;

class YoloV8Decoder final : public Decoder {
 public:
  explicit YoloV8Decoder(const DecoderOptions &options) : options_(options) {}
  const char *name() const override { return "yolov8"; }

  void check_outputs(const std::vector<FloatTensor> &outputs) const override {
    if (outputs.size() == 1 && outputs[0].shape.size() == 3 && outputs[0].shape[0] == 1 &&
        std::min(outputs[0].shape[1], outputs[0].shape[2]) > 4)
      return;
    throw InvalidArgument("yolov8 decoder: expected one tensor (1,4+classes,N), got " +
                          detail::describe_outputs(outputs));
  }

  DecodeResult decode(const std::vector<FloatTensor> &outputs,
                      const Geometry &geometry) const override {
    check_outputs(outputs);
    const FloatTensor &t = outputs[0];
    // The box count is the larger dimension (8400 at 640x640 vs 84 values).
    const bool channels_first = t.shape[1] < t.shape[2];
    const int values = static_cast<int>(channels_first ? t.shape[1] : t.shape[2]);
    const int rows = static_cast<int>(channels_first ? t.shape[2] : t.shape[1]);
    const int value_stride = channels_first ? rows : 1;
    const float threshold =
        options_.conf_threshold < 0 ? kDefaultThreshold : options_.conf_threshold;
    std::vector<Detection> candidates;
    for (int r = 0; r < rows; ++r) {
      const float *v = t.data.data() + (channels_first ? r : static_cast<size_t>(r) * values);
      const auto [class_id, score] =
          detail::best_class(v + 4 * value_stride, values - 4, value_stride);
      if (score < threshold) continue;
      candidates.push_back(
          {detail::box_from_centre(v[0], v[value_stride], v[2 * value_stride], v[3 * value_stride]),
           score,
           class_id,
           {},
           {}});
    }
    DecodeResult result;
    result.detections =
        detail::finish_detections(std::move(candidates), options_, kDefaultNmsIou, geometry);
    return result;
  }

 private:
  DecoderOptions options_;
};

}  // namespace

std::unique_ptr<Decoder> make_yolov8_decoder(const DecoderOptions &options) {
  return std::make_unique<YoloV8Decoder>(options);
}

}  // namespace axstream::decoders
