// dbnet: DBNet text detection (PaddleOCR det models) from the (1, 1, H, W) text probability map
// at the model's input resolution: pixels above 0.3 (config `binary-threshold`) form regions;
// each region's minimum-area rectangle, scored by the mean probability inside the region, is
// kept when the score reaches conf-threshold (default 0.6) and grown by the DBNet unclip
// distance area * 1.5 / perimeter (config `unclip-ratio`).
// A detection's box is the rectangle's axis-aligned bounds; its 4 keypoints are the rotated
// rectangle's corners (for rotated crops), both in frame pixels. Label "text". Config
// `activations=logits` for a map before its sigmoid (what axdecode uses when the package's
// postamble is that Sigmoid, as PP-OCR det's is); int8 maps are thresholded on the raw int8.
#include <array>
#include <opencv2/imgproc.hpp>

#include "axstream/error.h"
#include "detection_common.h"
#include "tensor_view.h"

namespace axstream::decoders {
namespace {

// PaddleOCR's DBPostProcess defaults (thresh, unclip_ratio).
constexpr float kDefaultBinaryThreshold = 0.3f;
constexpr double kDefaultUnclipRatio = 1.5;
constexpr float kMinSide = 3.0f;

class DbNetDecoder final : public Decoder {
 public:
  explicit DbNetDecoder(const DecoderOptions &options) : options_(options) {
    const auto found = options.config.find("activations");
    const std::string activations = found == options.config.end() ? "sigmoid" : found->second;
    if (activations != "sigmoid" && activations != "logits")
      throw InvalidArgument("dbnet decoder: activations '" + activations +
                            "', expected sigmoid (a probability map) or logits");
    logits_ = activations == "logits";
    const std::vector<double> threshold = config_numbers(options.config, "binary-threshold");
    if (!threshold.empty()) {
      if (threshold.size() != 1 || !(threshold[0] >= 0 && threshold[0] < 1))
        throw InvalidArgument("dbnet decoder: binary-threshold '" +
                              options.config.at("binary-threshold") +
                              "', expected one probability in [0, 1)");
      binary_threshold_ = static_cast<float>(threshold[0]);
    }
    const std::vector<double> unclip = config_numbers(options.config, "unclip-ratio");
    if (!unclip.empty()) {
      if (unclip.size() != 1 || !(unclip[0] >= 0 && unclip[0] <= 100))
        throw InvalidArgument("dbnet decoder: unclip-ratio '" + options.config.at("unclip-ratio") +
                              "', expected one number in [0, 100]");
      unclip_ratio_ = unclip[0];
    }
  }
  const char *name() const override { return "dbnet"; }

  void check_outputs(const std::vector<FloatTensor> &outputs) const override {
    if (outputs.empty() || outputs[0].shape.size() != 4 || outputs[0].shape[0] != 1 ||
        outputs[0].shape[1] != 1 || outputs[0].shape[2] < 2 || outputs[0].shape[3] < 2)
      throw InvalidArgument("dbnet decoder: expected a (1,1,H,W) probability map, got " +
                            detail::describe_outputs(outputs));
  }

  DecodeResult decode(const std::vector<FloatTensor> &outputs,
                      const Geometry &geometry) const override {
    check_outputs(outputs);
    const FloatTensor &t = outputs[0];
    const int height = static_cast<int>(t.shape[2]), width = static_cast<int>(t.shape[3]);
    cv::Mat probability(height, width, CV_32FC1, const_cast<float *>(t.data.data()));
    if (logits_) {
      probability = probability.clone();
      float *values = probability.ptr<float>();
      for (size_t i = 0; i < probability.total(); ++i) values[i] = sigmoid(values[i]);
    }
    return regions(probability > binary_threshold_, geometry,
                   [&](const cv::Rect &bounds) { return cv::Mat(probability(bounds)); });
  }

  // The map's pixels as int8: the binary map from the smallest int8 whose probability (the
  // dequantised value, or its sigmoid) exceeds binary-threshold, computed with the float path's
  // arithmetic, and probabilities (a 256-entry table) only inside each region's bounds, for its
  // score.
  bool has_int8_path() const override { return true; }
  DecodeResult decode_quantized(const std::vector<QuantizedTensor> &outputs,
                                const Geometry &geometry) const override {
    check_outputs(shapes_of(outputs));
    const QuantizedTensor &t = outputs[0];
    const int height = static_cast<int>(t.shape[2]), width = static_cast<int>(t.shape[3]);
    std::array<float, 256> probability_of;
    int first_above = 128;
    for (int q = 127; q >= -128; --q) {
      const float value = t.dequantize(static_cast<int8_t>(q));
      probability_of[size_t(q + 128)] = logits_ ? sigmoid(value) : value;
      if (probability_of[size_t(q + 128)] > binary_threshold_) first_above = q;
    }
    const detail::QuantizedReader read(t);
    cv::Mat binary(height, width, CV_8UC1);
    uint8_t *bits = binary.ptr<uint8_t>();
    const size_t pixels = static_cast<size_t>(height) * width;
    for (size_t i = 0; i < pixels; ++i) bits[i] = read(i) >= first_above ? 255 : 0;
    return regions(binary, geometry, [&](const cv::Rect &bounds) {
      cv::Mat probability(bounds.size(), CV_32FC1);
      for (int y = 0; y < bounds.height; ++y) {
        float *row = probability.ptr<float>(y);
        const size_t first = static_cast<size_t>(bounds.y + y) * width + bounds.x;
        for (int x = 0; x < bounds.width; ++x)
          row[x] = probability_of[size_t(read(first + x) + 128)];
      }
      return probability;
    });
  }

  // A probability map the postamble's sigmoid made: the logits mode applies it itself.
  std::unique_ptr<Decoder> for_logits(const std::vector<FloatTensor> &outputs,
                                      const std::vector<bool> &before_sigmoid) const override {
    if (logits_ || before_sigmoid != std::vector<bool>{true}) return nullptr;
    DecoderOptions logits = options_;
    logits.config["activations"] = "logits";
    return std::make_unique<DbNetDecoder>(logits);
  }

 private:
  // Regions of `binary` (tensor pixels of the map), scored by the mean of
  // probability_in(bounds) (the map's probabilities inside a region's bounding rectangle).
  template <class ProbabilityIn>
  DecodeResult regions(const cv::Mat &binary_map, const Geometry &geometry,
                       ProbabilityIn probability_in) const {
    cv::Mat binary = binary_map;
    const int height = binary.rows, width = binary.cols;
    std::vector<std::vector<cv::Point>> contours;
    cv::findContours(binary, contours, cv::RETR_LIST, cv::CHAIN_APPROX_SIMPLE);
    const float threshold = options_.conf_threshold;
    // Map pixels are tensor pixels unless the map is smaller than the input (then scale up).
    const double to_tensor_x =
        geometry.tensor_width > 0 ? double(geometry.tensor_width) / width : 1;
    const double to_tensor_y =
        geometry.tensor_height > 0 ? double(geometry.tensor_height) / height : 1;
    DecodeResult result;
    for (const auto &contour : contours) {
      if (contour.size() < 3) continue;
      cv::RotatedRect rect = cv::minAreaRect(contour);
      if (std::min(rect.size.width, rect.size.height) < kMinSide) continue;
      // Mean probability inside the region, as PaddleOCR's fast box score.
      const cv::Rect bounds = cv::boundingRect(contour) & cv::Rect(0, 0, width, height);
      cv::Mat mask = cv::Mat::zeros(bounds.size(), CV_8UC1);
      cv::fillPoly(mask, std::vector<std::vector<cv::Point>>{contour}, 255, cv::LINE_8, 0,
                   -bounds.tl());
      const float score = static_cast<float>(cv::mean(probability_in(bounds), mask)[0]);
      if (score < threshold) continue;
      const double area = double(rect.size.width) * rect.size.height;
      const double perimeter = 2.0 * (double(rect.size.width) + rect.size.height);
      const double distance = area * unclip_ratio_ / perimeter;
      rect.size.width += static_cast<float>(2 * distance);
      rect.size.height += static_cast<float>(2 * distance);
      cv::Point2f corners[4];
      rect.points(corners);
      Detection d;
      d.score = score;
      d.class_id = 0;
      d.label = options_.labels.empty() ? "text" : label_of(options_.labels, 0);
      float x0 = 1e30f, y0 = 1e30f, x1 = -1e30f, y1 = -1e30f;
      for (const cv::Point2f &corner : corners) {
        const Point p{static_cast<float>(geometry.frame_x(corner.x * to_tensor_x)),
                      static_cast<float>(geometry.frame_y(corner.y * to_tensor_y))};
        d.keypoints.push_back(p);
        x0 = std::min(x0, p.x);
        y0 = std::min(y0, p.y);
        x1 = std::max(x1, p.x);
        y1 = std::max(y1, p.y);
      }
      d.box = {x0, y0, x1, y1};
      result.detections.push_back(std::move(d));
    }
    std::sort(result.detections.begin(), result.detections.end(),
              [](const Detection &a, const Detection &b) { return a.score > b.score; });
    if (options_.max_detections > 0 &&
        result.detections.size() > static_cast<size_t>(options_.max_detections))
      result.detections.resize(options_.max_detections);
    return result;
  }

  DecoderOptions options_;
  bool logits_ = false;                               // the map holds logits: probability = sigmoid
  float binary_threshold_ = kDefaultBinaryThreshold;  // probability a region's pixels exceed
  double unclip_ratio_ = kDefaultUnclipRatio;         // box growth: area * ratio / perimeter
};

}  // namespace

std::unique_ptr<Decoder> make_dbnet_decoder(const DecoderOptions &options) {
  return std::make_unique<DbNetDecoder>(options);
}

}  // namespace axstream::decoders
