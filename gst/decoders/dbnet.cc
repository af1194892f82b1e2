// dbnet: DBNet text detection (PaddleOCR det models) from the (1, 1, H, W) text probability map
// at the model's input resolution: pixels above 0.3 form regions; each region's minimum-area
// rectangle, scored by the mean probability inside the region, is kept when the score reaches
// conf-threshold (default 0.6) and grown by the DBNet unclip distance area * 1.5 / perimeter.
// A detection's box is the rectangle's axis-aligned bounds; its 4 keypoints are the rotated
// rectangle's corners (for rotated crops), both in frame pixels. Label "text".
#include <opencv2/imgproc.hpp>

#include "axstream/error.h"
#include "detection_common.h"

namespace axstream::decoders {
namespace {

constexpr float kBinaryThreshold = 0.3f;
constexpr float kDefaultBoxThreshold = 0.6f;
constexpr double kUnclipRatio = 1.5;
constexpr float kMinSide = 3.0f;

class DbNetDecoder final : public Decoder {
 public:
  explicit DbNetDecoder(const DecoderOptions &options) : options_(options) {}
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
    const cv::Mat probability(height, width, CV_32FC1, const_cast<float *>(t.data.data()));
    cv::Mat binary = probability > kBinaryThreshold;
    std::vector<std::vector<cv::Point>> contours;
    cv::findContours(binary, contours, cv::RETR_LIST, cv::CHAIN_APPROX_SIMPLE);
    const float threshold =
        options_.conf_threshold < 0 ? kDefaultBoxThreshold : options_.conf_threshold;
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
      const float score = static_cast<float>(cv::mean(probability(bounds), mask)[0]);
      if (score < threshold) continue;
      const double area = double(rect.size.width) * rect.size.height;
      const double perimeter = 2.0 * (double(rect.size.width) + rect.size.height);
      const double distance = area * kUnclipRatio / perimeter;
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
        x0 = std::min(x0, p.x), y0 = std::min(y0, p.y);
        x1 = std::max(x1, p.x), y1 = std::max(y1, p.y);
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

 private:
  DecoderOptions options_;
};

}  // namespace

std::unique_ptr<Decoder> make_dbnet_decoder(const DecoderOptions &options) {
  return std::make_unique<DbNetDecoder>(options);
}

}  // namespace axstream::decoders
