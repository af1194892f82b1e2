// ssd: SSD-style detectors exported with decoded boxes: boxes (1, N, 4) as normalised corners
// x0, y0, x1, y1 (0..1 of the model input) and scores (1, N, classes) with class 0 the
// background. Reported class ids skip the background (score column c -> class id c - 1), so a
// COCO labels file without a background line lines up. Per-class NMS at IoU 0.45; threshold 0.5.
// The prior-box (anchor-encoded) form is not decoded.
#include "axstream/error.h"
#include "detection_common.h"

namespace axstream::decoders {
namespace {

constexpr float kDefaultThreshold = 0.5f;
constexpr float kDefaultNmsIou = 0.45f;

class SsdDecoder final : public Decoder {
 public:
  explicit SsdDecoder(const DecoderOptions &options) : options_(options) {}
  const char *name() const override { return "ssd"; }

  void check_outputs(const std::vector<FloatTensor> &outputs) const override { find(outputs); }

  DecodeResult decode(const std::vector<FloatTensor> &outputs,
                      const Geometry &geometry) const override {
    const auto [boxes, scores] = find(outputs);
    if (geometry.tensor_width <= 0 || geometry.tensor_height <= 0)
      throw InvalidArgument(
          "ssd decoder: normalised boxes need the model input size in the "
          "geometry, got " +
          std::to_string(geometry.tensor_width) + "x" + std::to_string(geometry.tensor_height));
    const int rows = static_cast<int>(boxes->shape[1]);
    const int classes = static_cast<int>(scores->shape[2]);
    const float threshold =
        options_.conf_threshold < 0 ? kDefaultThreshold : options_.conf_threshold;
    const float w = static_cast<float>(geometry.tensor_width);
    const float h = static_cast<float>(geometry.tensor_height);
    std::vector<Detection> candidates;
    for (int r = 0; r < rows; ++r) {
      const float *s = scores->data.data() + static_cast<size_t>(r) * classes;
      const auto [column, score] = detail::best_class(s + 1, classes - 1);
      if (score < threshold) continue;
      const float *b = boxes->data.data() + static_cast<size_t>(r) * 4;
      candidates.push_back({{b[0] * w, b[1] * h, b[2] * w, b[3] * h}, score, column, {}, {}});
    }
    DecodeResult result;
    result.detections =
        detail::finish_detections(std::move(candidates), options_, kDefaultNmsIou, geometry);
    return result;
  }

 private:
  static std::pair<const FloatTensor *, const FloatTensor *> find(
      const std::vector<FloatTensor> &outputs) {
    const FloatTensor *boxes = nullptr, *scores = nullptr;
    for (const auto &t : outputs) {
      if (t.shape.size() != 3 || t.shape[0] != 1) continue;
      if (t.shape[2] == 4 && !boxes)
        boxes = &t;
      else if (t.shape[2] >= 2)
        scores = &t;
    }
    if (!boxes || !scores || boxes->shape[1] != scores->shape[1])
      throw InvalidArgument(
          "ssd decoder: expected boxes (1,N,4) and scores (1,N,classes) with "
          "the same N, got " +
          detail::describe_outputs(outputs));
    return {boxes, scores};
  }

  DecoderOptions options_;
};

}  // namespace

std::unique_ptr<Decoder> make_ssd_decoder(const DecoderOptions &options) {
  return std::make_unique<SsdDecoder>(options);
}

}  // namespace axstream::decoders
