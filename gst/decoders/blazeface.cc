// blazeface: MediaPipe BlazeFace (front 128x128 and back 256x256). 896 anchors: a 16x16 grid
// with 2 anchors per cell then an 8x8 grid with 6, centres at (cell + 0.5) / grid, unit size.
// Each 16-vector is the box centre offset x, y, width, height, then 6 keypoints (x, y), all in
// input pixels; score = sigmoid(logit). Weighted NMS (default IoU and threshold in registry.cc).
// int8 score logits are compared with a precomputed int8 threshold; only candidates are
// dequantised, scored and their boxes read (tensor_view.h).
#include "axstream/decoders/blazeface.h"

#include <algorithm>

#include "axstream/decoders/decoder.h"
#include "axstream/decoders/nms.h"
#include "axstream/error.h"
#include "tensor_view.h"

namespace axstream::decoders {

namespace {

constexpr int kValuesPerAnchor = 16;
constexpr int kKeypoints = 6;
// MediaPipe clips raw score logits to +-100 before the sigmoid.
constexpr float kLogitClip = 100.0f;

struct Grid {
  int size;
  int anchors_per_cell;
  int count() const { return size * size * anchors_per_cell; }
};
constexpr Grid kGrids[] = {{16, 2}, {8, 6}};
constexpr int kAnchorCount = 16 * 16 * 2 + 8 * 8 * 6;

// On FloatTensor and QuantizedTensor alike (name, shape, element_count, shape_string): the int8
// path finds its parts on the views themselves, without copying their shapes per frame.
template <class Tensor>
int64_t rows_of(const Tensor &t) {
  // (1, N, C) or (N, C): N rows of C values
  return t.shape.size() >= 2 ? t.shape[t.shape.size() - 2] : 0;
}
template <class Tensor>
int64_t columns_of(const Tensor &t) {
  return t.shape.empty() ? 0 : t.shape.back();
}

// The score and box tensors of each grid (indices into the outputs), found by shape, in anchor
// order.
struct Parts {
  std::vector<size_t> scores;
  std::vector<size_t> boxes;
};

template <class Tensor>
Parts find_parts(const std::vector<Tensor> &outputs) {
  auto find = [&](int64_t rows, int64_t columns) -> int {
    for (size_t i = 0; i < outputs.size(); ++i) {
      const Tensor &t = outputs[i];
      if (rows_of(t) == rows && columns_of(t) == columns &&
          t.element_count() == static_cast<size_t>(rows * columns))
        return int(i);
    }
    return -1;
  };
  Parts parts;
  if (const int scores = find(kAnchorCount, 1); scores >= 0) {
    parts.scores = {size_t(scores)};
    const int boxes = find(kAnchorCount, kValuesPerAnchor);
    if (boxes < 0)
      throw InvalidArgument("blazeface decoder: the model has score tensor '" +
                            outputs[scores].name +
                            "' (1,896,1) but no box tensor of shape (1,896,16)");
    parts.boxes = {size_t(boxes)};
    return parts;
  }
  for (const Grid &grid : kGrids) {
    const int scores = find(grid.count(), 1);
    const int boxes = find(grid.count(), kValuesPerAnchor);
    if (scores < 0 || boxes < 0) {
      std::string got;
      for (const auto &t : outputs)
        got += (got.empty() ? "" : ", ") + t.name + " " + t.shape_string();
      throw InvalidArgument("blazeface decoder: expected score tensor (1," +
                            std::to_string(grid.count()) + ",1) and box tensor (1," +
                            std::to_string(grid.count()) + ",16) among the outputs, got " +
                            (got.empty() ? std::string("none") : got));
    }
    parts.scores.push_back(size_t(scores));
    parts.boxes.push_back(size_t(boxes));
  }
  return parts;
}

class BlazeFaceDecoder final : public Decoder {
 public:
  explicit BlazeFaceDecoder(const DecoderOptions &options)
      : options_(options), anchors_(blazeface_anchors()) {}
  const char *name() const override { return "blazeface"; }

  void check_outputs(const std::vector<FloatTensor> &outputs) const override {
    for (const auto &t : outputs)
      if (!t.shape.empty() && t.shape[0] != 1 && t.shape.size() == 3)
        throw InvalidArgument("blazeface decoder: output '" + t.name + "' has shape " +
                              t.shape_string() + ", expected batch 1");
    find_parts(outputs);
  }

  DecodeResult decode(const std::vector<FloatTensor> &outputs,
                      const Geometry &geometry) const override {
    return decode_views(detail::views_of<detail::FloatView>(outputs), find_parts(outputs),
                        geometry);
  }
  bool has_int8_path() const override { return true; }
  DecodeResult decode_quantized(const std::vector<QuantizedTensor> &outputs,
                                const Geometry &geometry) const override {
    return decode_views(detail::views_of<detail::QuantizedView>(outputs), find_parts(outputs),
                        geometry);
  }

 private:
  template <class View>
  DecodeResult decode_views(const std::vector<View> &outputs, const Parts &parts,
                            const Geometry &geometry) const {
    if (geometry.tensor_width <= 0 || geometry.tensor_height <= 0)
      throw InvalidArgument("blazeface decoder: the tensor geometry has input size " +
                            std::to_string(geometry.tensor_width) + "x" +
                            std::to_string(geometry.tensor_height) +
                            ", expected the model input size (128x128 or 256x256)");
    const float threshold = options_.conf_threshold;
    const float nms_iou = options_.nms_iou;
    // Threshold on the logit so only candidates pay for the sigmoid and the box decode.
    const float logit_threshold = threshold <= 0   ? -kLogitClip
                                  : threshold >= 1 ? kLogitClip
                                                   : std::log(threshold / (1.0f - threshold));
    const float width = static_cast<float>(geometry.tensor_width);
    const float height = static_cast<float>(geometry.tensor_height);

    std::vector<Detection> candidates;
    size_t anchor_index = 0;
    for (size_t part = 0; part < parts.scores.size(); ++part) {
      const View &scores = outputs[parts.scores[part]];
      const View &boxes = outputs[parts.boxes[part]];
      // clamp(logit) >= t is logit >= t for t inside the clip range; at -clip every anchor is.
      const bool every_anchor = !(logit_threshold > -kLogitClip);
      const auto logit_key = scores.key_at_least(logit_threshold);
      // Only candidates are scored, a few per frame: a sigmoid each costs less than a 256-entry
      // table (256 expf) built per part and frame, and gives the same floats.
      const auto score_of = [&scores](size_t row) {
        return sigmoid(std::clamp(scores.value(row), -kLogitClip, kLogitClip));
      };
      const size_t rows = static_cast<size_t>(scores.shape()[scores.shape().size() - 2]);
      for (size_t row = 0; row < rows; ++row, ++anchor_index) {
        if (!every_anchor && !(scores.key(row) >= logit_key)) continue;
        const size_t v = row * kValuesPerAnchor;
        // Anchor centres are normalised; the raw values are in input pixels.
        const Point anchor = anchors_[anchor_index];
        const float cx = anchor.x * width + boxes.value(v);
        const float cy = anchor.y * height + boxes.value(v + 1);
        const float box_w = boxes.value(v + 2), box_h = boxes.value(v + 3);
        Detection d;
        d.box = {cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2};
        d.score = score_of(row);
        if (d.score < threshold) continue;
        d.class_id = 0;
        for (int k = 0; k < kKeypoints; ++k)
          d.keypoints.push_back({anchor.x * width + boxes.value(v + 4 + 2 * k),
                                 anchor.y * height + boxes.value(v + 5 + 2 * k)});
        candidates.push_back(std::move(d));
      }
    }
    DecodeResult result;
    result.detections = weighted_nms(std::move(candidates), nms_iou, options_.max_detections);
    const std::string label = options_.labels.empty() ? "face" : label_of(options_.labels, 0);
    for (Detection &d : result.detections) {
      d.label = label;
      d.box = {static_cast<float>(geometry.frame_x(d.box.x0)),
               static_cast<float>(geometry.frame_y(d.box.y0)),
               static_cast<float>(geometry.frame_x(d.box.x1)),
               static_cast<float>(geometry.frame_y(d.box.y1))};
      for (Point &p : d.keypoints)
        p = {static_cast<float>(geometry.frame_x(p.x)), static_cast<float>(geometry.frame_y(p.y))};
    }
    return result;
  }

  DecoderOptions options_;
  std::vector<Point> anchors_;
};

}  // namespace

std::vector<Point> blazeface_anchors() {
  std::vector<Point> anchors;
  anchors.reserve(kAnchorCount);
  for (const Grid &grid : kGrids)
    for (int y = 0; y < grid.size; ++y)
      for (int x = 0; x < grid.size; ++x)
        for (int a = 0; a < grid.anchors_per_cell; ++a)
          anchors.push_back({(x + 0.5f) / grid.size, (y + 0.5f) / grid.size});
  return anchors;
}

std::unique_ptr<Decoder> make_blazeface_decoder(const DecoderOptions &options) {
  return std::make_unique<BlazeFaceDecoder>(options);
}

}  // namespace axstream::decoders
