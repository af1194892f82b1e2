// ssd: SSD-style detectors, boxes (1, N, 4) + scores (1, N, classes) with class 0 the
// background. Reported class ids skip the background (score column c -> class id c - 1), so a
// COCO labels file without a background line lines up. Per-class NMS (defaults in registry.cc).
// Two box forms:
//  - decoded (no prior config): normalised corners x0, y0, x1, y1 (0..1 of the model input),
//    scores are probabilities;
//  - prior-encoded (config `feature-maps=...` or `priors-file=...`): per prior (cx, cy, w, h,
//    normalised) deltas dx, dy, dw, dh (`box-order=yxhw`: TensorFlow's dy, dx, dh, dw):
//      cx = prior.cx + dx * v0 * prior.w,  w = prior.w * exp(dw * v1)   (v = `variances`)
//    scores are logits, softmax over the classes (`scores=softmax|sigmoid|none`).
// Priors from the config follow Caffe SSD / ssd.pytorch's PriorBox: for feature map k of size
// f_k (cell step `steps` or image-size / f_k), centres (j + 0.5) step / image-size; per cell a
// min-size square, a sqrt(min * max) square when max-sizes is given, and for each aspect ratio r
// of the level (`aspect-ratios=2|2,3|...`, levels split by '|') boxes min*sqrt(r) x min/sqrt(r)
// and its transpose; `clip=1` clamps them to 0..1. `priors-file`: one prior per line,
// "cx cy w h" normalised. int8 outputs threshold on the raw int8 (softmax rows only after the
// background-vs-best logit gap passes, sigmoid/probabilities by a precomputed int8 threshold).
// A package whose postamble concatenates per-level heads (SSD's loc and conf Concat, each head
// quantised on its own) hands them over as parts (for_logits): rows are offsets into the parts,
// and each score part is thresholded in its own int8 domain.
#include <array>
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>

#include "axstream/error.h"
#include "detection_common.h"
#include "tensor_view.h"

namespace axstream::decoders {
namespace {

enum class ScoreKind { probabilities, softmax, sigmoid };

struct Prior {
  float cx, cy, w, h;
};

// The tensors whose rows, concatenated, are the boxes (1,N,4) and the scores (1,N,classes): one
// each, or the parts a postamble's Concat joins.
struct Layout {
  std::vector<size_t> boxes, scores;
};

// int8 softmax rows: the best class's softmax estimated from the int8 logits, each exp(l_c -
// l_max) from a table over the 256 int8 distances below the row's largest, before the float
// softmax's 2 x classes exps. The estimate differs from the float softmax by less than
// 1e-4 x (1 + scale) (relative: float rounding of the dequantised logits, at most 255 x scale,
// of their differences, expf, the table and the sums), so a row it puts below
// threshold x (1 - margin), margin 1e-3 x (1 + scale), cannot reach the threshold: the
// detections stay those of the float path.
template <class View>
struct SoftmaxEstimate {
  SoftmaxEstimate(const View &, float) {}
  bool below_threshold(const View &, size_t, int, int) const { return false; }
};

template <>
struct SoftmaxEstimate<detail::QuantizedView> {
  SoftmaxEstimate(const detail::QuantizedView &scores, float threshold)
      : at_least(threshold * (1.0f - 1e-3f * (1.0f + scores.scale()))) {
    for (int distance = 0; distance < 256; ++distance)
      exp_below[size_t(distance)] =
          static_cast<float>(std::exp(-double(distance) * double(scores.scale())));
  }
  // Whether row `first`'s best class (`column`) certainly has a softmax below the threshold.
  bool below_threshold(const detail::QuantizedView &scores, size_t first, int classes,
                       int column) const {
    // Empty rows, and rows of more than 256 classes as always, take the exact path instead.
    if (classes <= 0 || classes > 256) return false;
    // Read in place (no copy into a local array, whose reads GCC could not prove initialised):
    // logits are int8 keys, so every distance `most - logit` indexes the 256-entry table.
    const int8_t *run = scores.run(first, 1, size_t(classes));
    auto logit = [&](int c) -> int { return run ? run[c] : scores.key(first + size_t(c)); };
    int most = logit(0);
    for (int c = 1; c < classes; ++c) most = std::max(most, logit(c));
    float sum = 0;
    for (int c = 0; c < classes; ++c) sum += exp_below[size_t(most - logit(c))];
    return exp_below[size_t(most - logit(column))] < at_least * sum;
  }
  std::array<float, 256> exp_below;
  float at_least;
};

class SsdDecoder final : public Decoder {
 public:
  explicit SsdDecoder(const DecoderOptions &options) : options_(options) {
    const auto &config = options.config;
    auto text = [&](const char *key, const char *fallback) {
      const auto found = config.find(key);
      return found == config.end() ? std::string(fallback) : found->second;
    };
    const std::string box_order = text("box-order", "xywh");
    if (box_order != "xywh" && box_order != "yxhw")
      throw InvalidArgument("ssd decoder: box-order '" + box_order + "', expected xywh or yxhw");
    yx_order_ = box_order == "yxhw";
    const bool encoded = config.count("feature-maps") || config.count("priors-file");
    if (config.count("feature-maps") && config.count("priors-file"))
      throw InvalidArgument("ssd decoder: give feature-maps or priors-file, not both");
    const std::string scores = text("scores", encoded ? "softmax" : "none");
    if (scores == "softmax")
      score_kind_ = ScoreKind::softmax;
    else if (scores == "sigmoid")
      score_kind_ = ScoreKind::sigmoid;
    else if (scores == "none")
      score_kind_ = ScoreKind::probabilities;
    else
      throw InvalidArgument("ssd decoder: scores '" + scores +
                            "', expected softmax, sigmoid or none");
    const auto variances = config_numbers(config, "variances");
    if (!variances.empty()) {
      if (variances.size() != 2 || variances[0] <= 0 || variances[1] <= 0)
        throw InvalidArgument("ssd decoder: variances '" + text("variances", "") +
                              "', expected two positive numbers (centre, size)");
      variances_ = {static_cast<float>(variances[0]), static_cast<float>(variances[1])};
    }
    if (config.count("priors-file")) {
      priors_ = read_priors(config.at("priors-file"));
      encoded_ = true;
    } else if (config.count("feature-maps")) {
      priors_ = generate_priors(config);
      encoded_ = true;
    }
  }
  const char *name() const override { return "ssd"; }

  void check_outputs(const std::vector<FloatTensor> &outputs) const override { layout_of(outputs); }

  DecodeResult decode(const std::vector<FloatTensor> &outputs,
                      const Geometry &geometry) const override {
    return decode_views(detail::views_of<detail::FloatView>(outputs), layout_of(outputs), geometry);
  }
  bool has_int8_path() const override { return true; }
  DecodeResult decode_quantized(const std::vector<QuantizedTensor> &outputs,
                                const Geometry &geometry) const override {
    return decode_views(detail::views_of<detail::QuantizedView>(outputs),
                        layout_of(shapes_of(outputs)), geometry);
  }

  const std::vector<Prior> &priors() const { return priors_; }

  // Probability scores (`scores=none`) that are the postamble's sigmoid of the core's scores
  // (boxes untouched): `scores=sigmoid` on the logits gives the same. Boxes and scores split
  // into parts (a postamble's Concat of per-level heads): the same decoder over the parts.
  std::unique_ptr<Decoder> for_logits(const std::vector<FloatTensor> &outputs,
                                      const std::vector<bool> &before_sigmoid) const override {
    if (before_sigmoid.size() != outputs.size()) return nullptr;
    const bool split = outputs.size() != 2;
    const Layout layout = split ? split_layout(outputs) : find(outputs);
    if (layout.scores.empty()) return nullptr;
    for (size_t i : layout.boxes)
      if (before_sigmoid[i]) return nullptr;
    const bool sigmoid = before_sigmoid[layout.scores[0]];
    for (size_t i : layout.scores)
      if (before_sigmoid[i] != sigmoid) return nullptr;
    if (sigmoid && score_kind_ != ScoreKind::probabilities) return nullptr;
    if (!sigmoid && !split) return nullptr;  // nothing for a logits mode to do
    DecoderOptions logits = options_;
    if (sigmoid) logits.config["scores"] = "sigmoid";
    auto decoder = std::make_unique<SsdDecoder>(logits);
    if (split) {
      if (encoded_ && rows_of(outputs, layout.boxes) != priors_.size()) return nullptr;
      decoder->split_ = layout;
      decoder->split_shapes_ = outputs;
    }
    return decoder;
  }

 private:
  template <class View>
  DecodeResult decode_views(const std::vector<View> &outputs, const Layout &layout,
                            const Geometry &geometry) const {
    if (geometry.tensor_width <= 0 || geometry.tensor_height <= 0)
      throw InvalidArgument(
          "ssd decoder: normalised boxes need the model input size in the "
          "geometry, got " +
          std::to_string(geometry.tensor_width) + "x" + std::to_string(geometry.tensor_height));
    const int classes = static_cast<int>(outputs[layout.scores[0]].shape()[2]);
    const float threshold = options_.conf_threshold;
    const float w = static_cast<float>(geometry.tensor_width);
    const float h = static_cast<float>(geometry.tensor_height);
    const float logit_threshold = threshold <= 0   ? -std::numeric_limits<float>::infinity()
                                  : threshold >= 1 ? std::numeric_limits<float>::infinity()
                                                   : std::log(threshold / (1.0f - threshold));
    // softmax: p_best <= 1 / (1 + exp(l_background - l_best)), so a row whose best logit is
    // not at least logit(threshold) above the background's cannot pass; the margin keeps float
    // rounding of the full softmax from ever deciding otherwise.
    const float softmax_gap = logit_threshold - 1e-3f;
    std::vector<Detection> candidates;
    size_t row = 0;  // over all score parts; a candidate's box is in the box part holding it
    size_t box_part = 0, box_part_first_row = 0;
    for (size_t score_part : layout.scores) {
      const View &scores = outputs[score_part];
      const size_t rows = static_cast<size_t>(scores.shape()[1]);
      // Each part its own quantisation: its own int8 threshold and sigmoid table.
      // Probabilities: the score itself against the threshold; sigmoid: its logit.
      const auto score_key =
          scores.key_at_least(score_kind_ == ScoreKind::sigmoid ? logit_threshold : threshold);
      const auto sig = scores.table([](float x) { return sigmoid(x); });
      const SoftmaxEstimate<View> estimate(scores, threshold);
      for (size_t r = 0; r < rows; ++r, ++row) {
        const size_t s = r * classes;
        const int column = 1 + detail::best_key(scores, s + 1, classes - 1);
        float score;
        if (score_kind_ == ScoreKind::softmax) {
          if (scores.value(s + column) - scores.value(s) < softmax_gap) continue;
          if (estimate.below_threshold(scores, s, classes, column)) continue;
          float max_logit = scores.value(s);
          for (int c = 1; c < classes; ++c) max_logit = std::max(max_logit, scores.value(s + c));
          float sum = 0;
          for (int c = 0; c < classes; ++c) sum += std::exp(scores.value(s + c) - max_logit);
          score = std::exp(scores.value(s + column) - max_logit) / sum;
        } else {
          if (!(scores.key(s + column) >= score_key)) continue;
          score = score_kind_ == ScoreKind::sigmoid ? sig(s + column) : scores.value(s + column);
        }
        if (score < threshold) continue;
        while (row - box_part_first_row >=
               static_cast<size_t>(outputs[layout.boxes[box_part]].shape()[1]))
          box_part_first_row += static_cast<size_t>(outputs[layout.boxes[box_part++]].shape()[1]);
        candidates.push_back(
            {decode_box(outputs[layout.boxes[box_part]], row - box_part_first_row, row, w, h),
             score,
             column - 1,  // class ids skip the background
             {},
             {}});
      }
    }
    DecodeResult result;
    result.detections = detail::finish_detections(std::move(candidates), options_, geometry);
    return result;
  }

  // The box of `row` (of all rows), row `part_row` of `boxes`, in input pixels.
  template <class View>
  Box decode_box(const View &boxes, size_t part_row, size_t row, float w, float h) const {
    const size_t b = part_row * 4;
    if (encoded_) {
      const Prior &p = priors_[row];
      const float dx = boxes.value(b + (yx_order_ ? 1 : 0));
      const float dy = boxes.value(b + (yx_order_ ? 0 : 1));
      const float dw = boxes.value(b + (yx_order_ ? 3 : 2));
      const float dh = boxes.value(b + (yx_order_ ? 2 : 3));
      const float cx = p.cx + dx * variances_[0] * p.w;
      const float cy = p.cy + dy * variances_[0] * p.h;
      const float bw = p.w * std::exp(dw * variances_[1]);
      const float bh = p.h * std::exp(dh * variances_[1]);
      return {(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h};
    }
    return {boxes.value(b) * w, boxes.value(b + 1) * h, boxes.value(b + 2) * w,
            boxes.value(b + 3) * h};
  }

  // The layout of `outputs`: the parts for_logits found, or one boxes and one scores tensor.
  Layout layout_of(const std::vector<FloatTensor> &outputs) const {
    if (split_.scores.empty()) return find(outputs);
    bool same = outputs.size() == split_shapes_.size();
    for (size_t i = 0; same && i < outputs.size(); ++i)
      same = outputs[i].shape == split_shapes_[i].shape;
    if (!same)
      throw InvalidArgument("ssd decoder: expected the boxes' and scores' parts " +
                            detail::describe_outputs(split_shapes_) + ", got " +
                            detail::describe_outputs(outputs));
    return split_;
  }

  static size_t rows_of(const std::vector<FloatTensor> &outputs, const std::vector<size_t> &parts) {
    size_t rows = 0;
    for (size_t i : parts) rows += static_cast<size_t>(outputs[i].shape[1]);
    return rows;
  }

  // Boxes and scores as parts (OutputConverter::splits_outputs): the outputs in order are the
  // parts of one then the parts of the other, each (1,rows,4) for boxes or (1,rows,classes),
  // adding up to the same rows. An empty layout when they are not.
  static Layout split_layout(const std::vector<FloatTensor> &outputs) {
    // The width of outputs [from, to) when they are all (1,rows,width) of one width, else -1.
    auto width_of = [&](size_t from, size_t to) -> int64_t {
      int64_t width = -1;
      for (size_t i = from; i < to; ++i) {
        const auto &shape = outputs[i].shape;
        if (shape.size() != 3 || shape[0] != 1 || shape[1] <= 0 || shape[2] <= 0 ||
            (width >= 0 && shape[2] != width))
          return -1;
        width = shape[2];
      }
      return width;
    };
    for (size_t split = 1; split < outputs.size(); ++split) {
      std::vector<size_t> first(split), second(outputs.size() - split);
      std::iota(first.begin(), first.end(), size_t(0));
      std::iota(second.begin(), second.end(), split);
      const int64_t first_width = width_of(0, split),
                    second_width = width_of(split, outputs.size());
      if (first_width < 0 || second_width < 0 ||
          rows_of(outputs, first) != rows_of(outputs, second))
        continue;
      if (first_width == 4 && second_width >= 2) return {first, second};
      if (second_width == 4 && first_width >= 2) return {second, first};
    }
    return {};
  }

  // The boxes and scores tensors.
  Layout find(const std::vector<FloatTensor> &outputs) const {
    int boxes = -1, scores = -1;
    for (size_t i = 0; i < outputs.size(); ++i) {
      const auto &t = outputs[i];
      if (t.shape.size() != 3 || t.shape[0] != 1) continue;
      if (t.shape[2] == 4 && boxes < 0)
        boxes = int(i);
      else if (t.shape[2] >= 2)
        scores = int(i);
    }
    if (boxes < 0 || scores < 0 || outputs[boxes].shape[1] != outputs[scores].shape[1])
      throw InvalidArgument(
          "ssd decoder: expected boxes (1,N,4) and scores (1,N,classes) with "
          "the same N, got " +
          detail::describe_outputs(outputs));
    if (encoded_ && outputs[boxes].shape[1] != static_cast<int64_t>(priors_.size()))
      throw InvalidArgument("ssd decoder: the prior config gives " +
                            std::to_string(priors_.size()) + " priors, the model's boxes " +
                            outputs[boxes].name + " " + outputs[boxes].shape_string() +
                            " need one per row");
    return {{size_t(boxes)}, {size_t(scores)}};
  }

  static std::vector<Prior> read_priors(const std::string &path) {
    std::ifstream file(path);
    if (!file) throw InvalidArgument("ssd decoder: priors-file '" + path + "' cannot be read");
    std::vector<Prior> priors;
    std::string line;
    for (int number = 1; std::getline(file, line); ++number) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      std::istringstream in(line);
      Prior p;
      std::string rest;
      if (!(in >> p.cx >> p.cy >> p.w >> p.h) || (in >> rest))
        throw InvalidArgument("ssd decoder: priors-file '" + path + "' line " +
                              std::to_string(number) + " '" + line +
                              "': expected four numbers cx cy w h");
      priors.push_back(p);
    }
    if (priors.empty()) throw InvalidArgument("ssd decoder: priors-file '" + path + "' is empty");
    return priors;
  }

  static constexpr int kMaxPriors = 10'000'000;

  static std::vector<Prior> generate_priors(const std::map<std::string, std::string> &config) {
    const auto feature_maps = config_numbers(config, "feature-maps");
    const auto image_size = config_numbers(config, "image-size");
    const auto min_sizes = config_numbers(config, "min-sizes");
    const auto max_sizes = config_numbers(config, "max-sizes");
    const auto steps = config_numbers(config, "steps");
    const auto clip = config_numbers(config, "clip");
    const size_t levels = feature_maps.size();
    auto fail = [&](const std::string &what) {
      throw InvalidArgument("ssd decoder prior config: " + what);
    };
    if (levels == 0) fail("feature-maps is empty");
    for (double f : feature_maps)
      if (f < 1 || f != std::floor(f)) fail("feature-maps must be positive integers");
    if (image_size.size() != 1 || image_size[0] <= 0)
      fail("image-size: expected one positive number (the model input size the sizes refer to)");
    if (min_sizes.size() != levels)
      fail("min-sizes has " + std::to_string(min_sizes.size()) + " values, expected " +
           std::to_string(levels) + " (one per feature map)");
    if (!max_sizes.empty() && max_sizes.size() != levels)
      fail("max-sizes has " + std::to_string(max_sizes.size()) + " values, expected " +
           std::to_string(levels) + " or none");
    if (!steps.empty() && steps.size() != levels)
      fail("steps has " + std::to_string(steps.size()) + " values, expected " +
           std::to_string(levels) + " or none");
    std::vector<std::vector<double>> ratios(levels);
    if (config.count("aspect-ratios")) {
      std::vector<std::string> parts;
      std::stringstream stream(config.at("aspect-ratios"));
      std::string part;
      while (std::getline(stream, part, '|')) parts.push_back(part);
      if (parts.size() != levels)
        fail("aspect-ratios has " + std::to_string(parts.size()) +
             " levels ('|'-separated), "
             "expected " +
             std::to_string(levels));
      for (size_t k = 0; k < levels; ++k) {
        ratios[k] = config_numbers({{"aspect-ratios", parts[k]}}, "aspect-ratios");
        for (double r : ratios[k])
          if (r <= 0) fail("aspect ratios must be positive");
      }
    }
    // Counted before any is made: a typo such as feature-maps=100000 would otherwise allocate
    // gigabytes (SSD300 has 8732 priors, SSD512 24564).
    double count = 0;
    for (size_t k = 0; k < levels; ++k)
      count += feature_maps[k] * feature_maps[k] *
               double(1 + (max_sizes.empty() ? 0 : 1) + 2 * ratios[k].size());
    if (count > kMaxPriors)
      fail("feature-maps and aspect-ratios make " + std::to_string(std::llround(count)) +
           " prior boxes, expected at most " + std::to_string(kMaxPriors));
    const double size = image_size[0];
    std::vector<Prior> priors;
    for (size_t k = 0; k < levels; ++k) {
      const int f = static_cast<int>(feature_maps[k]);
      const double cells = steps.empty() ? f : size / steps[k];
      const double s_k = min_sizes[k] / size;
      for (int i = 0; i < f; ++i)
        for (int j = 0; j < f; ++j) {
          const float cx = static_cast<float>((j + 0.5) / cells);
          const float cy = static_cast<float>((i + 0.5) / cells);
          priors.push_back({cx, cy, float(s_k), float(s_k)});
          if (!max_sizes.empty()) {
            const float s = static_cast<float>(std::sqrt(s_k * (max_sizes[k] / size)));
            priors.push_back({cx, cy, s, s});
          }
          for (double r : ratios[k]) {
            const double root = std::sqrt(r);
            priors.push_back({cx, cy, float(s_k * root), float(s_k / root)});
            priors.push_back({cx, cy, float(s_k / root), float(s_k * root)});
          }
        }
    }
    if (!clip.empty() && clip[0] != 0)
      for (Prior &p : priors)
        for (float *v : {&p.cx, &p.cy, &p.w, &p.h}) *v = std::clamp(*v, 0.0f, 1.0f);
    return priors;
  }

  DecoderOptions options_;
  ScoreKind score_kind_ = ScoreKind::probabilities;
  bool encoded_ = false;
  bool yx_order_ = false;
  std::array<float, 2> variances_ = {0.1f, 0.2f};
  std::vector<Prior> priors_;
  // Set by for_logits on split outputs: their layout and the shapes it holds for.
  Layout split_;
  std::vector<FloatTensor> split_shapes_;
};

}  // namespace

std::unique_ptr<Decoder> make_ssd_decoder(const DecoderOptions &options) {
  return std::make_unique<SsdDecoder>(options);
}

}  // namespace axstream::decoders
