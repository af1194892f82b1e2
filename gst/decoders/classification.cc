// classification: the top-k classes of the model's score vector (any shape whose elements are
// the classes, e.g. (1,1000) or (1,1000,1,1)); softmax first when asked.
#include <algorithm>
#include <numeric>

#include "axstream/decoders/decoder.h"
#include "axstream/error.h"

namespace axstream::decoders {
namespace {

class ClassificationDecoder final : public Decoder {
 public:
  explicit ClassificationDecoder(const DecoderOptions &options) : options_(options) {}
  const char *name() const override { return "classification"; }

  void check_outputs(const std::vector<FloatTensor> &outputs) const override {
    if (outputs.empty())
      throw InvalidArgument(
          "classification decoder: the model has no outputs, expected one "
          "score tensor of shape (1,classes)");
    const FloatTensor &scores = outputs[0];
    const size_t batch = scores.shape.empty() ? 1 : static_cast<size_t>(scores.shape[0]);
    if (batch != 1 || scores.element_count() < 1)
      throw InvalidArgument("classification decoder: output '" + scores.name + "' has shape " +
                            scores.shape_string() + ", expected (1,classes)");
  }

  DecodeResult decode(const std::vector<FloatTensor> &outputs, const Geometry &) const override {
    check_outputs(outputs);
    std::vector<float> scores = outputs[0].data;
    if (options_.softmax) softmax_inplace(scores);
    std::vector<int> order(scores.size());
    std::iota(order.begin(), order.end(), 0);
    const size_t k = std::min<size_t>(options_.top_k > 0 ? options_.top_k : 1, scores.size());
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) {
      return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
    });
    const float threshold = options_.conf_threshold < 0 ? 0.0f : options_.conf_threshold;
    DecodeResult result;
    for (size_t i = 0; i < k; ++i) {
      const int class_id = order[i];
      if (scores[class_id] < threshold) break;
      result.classes.push_back({class_id, scores[class_id], label_of(options_.labels, class_id)});
    }
    return result;
  }

 private:
  DecoderOptions options_;
};

}  // namespace

std::unique_ptr<Decoder> make_classification_decoder(const DecoderOptions &options) {
  return std::make_unique<ClassificationDecoder>(options);
}

}  // namespace axstream::decoders
