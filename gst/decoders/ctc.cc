// ctc: greedy CTC decoding of a text recogniser's (1, T, classes) per-step probabilities
// (PaddleOCR's rec models): best class per step, repeats merged, blanks dropped. Class 0 is the
// blank, class i the dictionary's line i - 1 (the `labels` file, e.g. ppocr_keys_v1.txt), and
// one class beyond the dictionary is a space. Confidence is the mean probability of the emitted
// characters; a line below conf-threshold (default 0) is not reported. int8 outputs (the
// probabilities quantised in the core) are decoded on the raw int8: argmax per step.
#include <cstdint>

#include "axstream/error.h"
#include "detection_common.h"
#include "tensor_view.h"

namespace axstream::decoders {
namespace {

class CtcDecoder final : public Decoder {
 public:
  explicit CtcDecoder(const DecoderOptions &options) : options_(options) {}
  const char *name() const override { return "ctc"; }

  void check_outputs(const std::vector<FloatTensor> &outputs) const override {
    if (outputs.empty() || outputs[0].shape.size() != 3 || outputs[0].shape[0] != 1 ||
        outputs[0].shape[2] < 2)
      throw InvalidArgument("ctc decoder: expected a (1,steps,classes) tensor, got " +
                            detail::describe_outputs(outputs));
    const int64_t classes = outputs[0].shape[2];
    const int64_t dictionary = static_cast<int64_t>(options_.labels.size());
    if (dictionary > 0 && classes != dictionary + 1 && classes != dictionary + 2)
      throw InvalidArgument("ctc decoder: output '" + outputs[0].name + "' has " +
                            std::to_string(classes) + " classes, expected the blank + " +
                            std::to_string(dictionary) +
                            " dictionary entries (+ 1 space): " + std::to_string(dictionary + 1) +
                            " or " + std::to_string(dictionary + 2));
  }

  DecodeResult decode(const std::vector<FloatTensor> &outputs, const Geometry &) const override {
    check_outputs(outputs);
    return decode_view(detail::FloatView(outputs[0]));
  }
  // Probabilities quantised in the core (axcompile keeps PP-OCR rec's Softmax there): the best
  // class per step is the argmax of the raw int8 (the same order), only the emitted ones are
  // dequantised.
  bool has_int8_path() const override { return true; }
  DecodeResult decode_quantized(const std::vector<QuantizedTensor> &outputs,
                                const Geometry &) const override {
    check_outputs(shapes_of(outputs));
    return decode_view(detail::QuantizedView(outputs[0]));
  }

 private:
  template <class View>
  DecodeResult decode_view(const View &scores) const {
    const int steps = static_cast<int>(scores.shape()[1]);
    const int classes = static_cast<int>(scores.shape()[2]);
    const int dictionary = static_cast<int>(options_.labels.size());
    TextResult line;
    double score_sum = 0;
    int emitted = 0, previous = 0;
    for (int s = 0; s < steps; ++s) {
      // First maximum, as detail::best_class.
      const size_t first = static_cast<size_t>(s) * classes;
      int best = 0;
      auto best_key = scores.key(first);
      for (int c = 1; c < classes; ++c)
        if (const auto key = scores.key(first + c); key > best_key) best_key = key, best = c;
      if (best != 0 && best != previous) {
        if (dictionary == 0)
          line.text.append("[").append(std::to_string(best)).append("]");
        else if (best <= dictionary)
          line.text += options_.labels[best - 1];
        else
          line.text += " ";
        score_sum += scores.value_of_key(best_key);
        ++emitted;
      }
      previous = best;
    }
    line.confidence = emitted ? static_cast<float>(score_sum / emitted) : 0.0f;
    DecodeResult result;
    const float threshold = options_.conf_threshold;
    if (!line.text.empty() && line.confidence >= threshold) result.texts.push_back(line);
    return result;
  }

  DecoderOptions options_;
};

}  // namespace

std::unique_ptr<Decoder> make_ctc_decoder(const DecoderOptions &options) {
  return std::make_unique<CtcDecoder>(options);
}

}  // namespace axstream::decoders
