// classification: the top-k classes of the model's score vector (any shape whose elements are
// the classes, e.g. (1,1000) or (1,1000,1,1)); softmax first when asked. Ranking is on the raw
// values (int8 for quantised outputs), so only the top k are dequantised (tensor_view.h).
#include <algorithm>
#include <numeric>

#include "axstream/decoders/decoder.h"
#include "axstream/error.h"
#include "tensor_view.h"

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

  DecodeResult decode(const std::vector<FloatTensor> &outputs,
                      const Geometry &geometry) const override {
    check_outputs(outputs);
    return decode_view(detail::FloatView(outputs[0]), geometry);
  }
  bool has_int8_path() const override { return true; }
  DecodeResult decode_quantized(const std::vector<QuantizedTensor> &outputs,
                                const Geometry &geometry) const override {
    check_outputs(shapes_of(outputs));
    return decode_view(detail::QuantizedView(outputs[0]), geometry);
  }

 private:
  // Ranks on keys (int8 or float: the same order), then computes only the top k's scores.
  template <class View>
  DecodeResult decode_view(const View &scores, const Geometry &) const {
    const size_t count = scores.element_count();
    std::vector<int> order(count);
    std::iota(order.begin(), order.end(), 0);
    const size_t k = std::min<size_t>(options_.top_k > 0 ? options_.top_k : 1, count);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int a, int b) {
      const auto key_a = scores.key(a), key_b = scores.key(b);
      return key_a > key_b || (key_a == key_b && a < b);
    });
    std::vector<float> top(k);
    if (options_.softmax) {
      // exp(x - max) of every score (a 256-entry table for int8), summed in double in order.
      const float max_value = scores.value(order[0]);
      const auto exp_shifted =
          scores.table([max_value](float x) { return std::exp(x - max_value); });
      double sum = 0;
      for (size_t i = 0; i < count; ++i) sum += exp_shifted(i);
      for (size_t i = 0; i < k; ++i) top[i] = static_cast<float>(exp_shifted(order[i]) / sum);
    } else {
      for (size_t i = 0; i < k; ++i) top[i] = scores.value(order[i]);
    }
    const float threshold = options_.conf_threshold;
    DecodeResult result;
    for (size_t i = 0; i < k; ++i) {
      if (top[i] < threshold) break;
      result.classes.push_back({order[i], top[i], label_of(options_.labels, order[i])});
    }
    return result;
  }

  DecoderOptions options_;
};

}  // namespace

std::unique_ptr<Decoder> make_classification_decoder(const DecoderOptions &options) {
  return std::make_unique<ClassificationDecoder>(options);
}

}  // namespace axstream::decoders
