// The decoder interface and its registry: a decoder turns the float model's outputs into
// detections or class scores; each one is one .cc file, registered by name in registry.cc.
#pragma once

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "axstream/decoders/types.h"

namespace axstream::decoders {

// Options every decoder reads. A negative threshold means "the decoder's own default":
// make_decoder replaces it with the registry's value before the decoder sees it.
struct DecoderOptions {
  float conf_threshold = -1.0f;
  float nms_iou = -1.0f;
  int max_detections = 100;
  int top_k = 5;
  bool softmax = false;             // classification: apply softmax to the scores first
  std::vector<std::string> labels;  // class id -> label; empty: "class <id>"
  // Decoder-specific settings (e.g. ssd's prior boxes), from parse_decoder_config(); make_decoder
  // rejects keys the decoder does not know.
  std::map<std::string, std::string> config;
};

// "key=value; key=value" (entries split at ';', spaces around keys and values trimmed) -> map.
// Throws InvalidArgument naming an entry without '=' or a repeated key.
std::map<std::string, std::string> parse_decoder_config(const std::string &text);
// Comma-separated numbers of config value `key`; InvalidArgument naming the key and the text.
std::vector<double> config_numbers(const std::map<std::string, std::string> &config,
                                   const std::string &key);

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual const char *name() const = 0;
  // Throws InvalidArgument naming the tensor and the shape expected when the model's float
  // outputs are not what this decoder parses. Called once per model before decode().
  virtual void check_outputs(const std::vector<FloatTensor> &outputs) const = 0;
  // Decodes one frame's (or one ROI's) outputs; boxes and keypoints in frame pixels.
  virtual DecodeResult decode(const std::vector<FloatTensor> &outputs,
                              const Geometry &geometry) const = 0;
  // The int8 fast path, for packages whose core outputs are the model's outputs (no postamble):
  // thresholds and ranks in the int8 domain (precomputed quantised thresholds, 256-entry
  // sigmoid/exp tables) and dequantises only candidates. Gives exactly decode() of the
  // dequantised tensors. Decoders without one (has_int8_path() false) dequantise everything.
  virtual bool has_int8_path() const { return false; }
  // True when this decoder applies a sigmoid to `outputs` itself (yolov5/yolov8 raw heads with
  // activations=logits, their default): outputs a package's postamble already ends in a Sigmoid
  // would be squashed twice, every score passing 0.25.
  virtual bool applies_sigmoid(const std::vector<FloatTensor> & /*outputs*/) const { return false; }
  virtual DecodeResult decode_quantized(const std::vector<QuantizedTensor> &outputs,
                                        const Geometry &geometry) const;
  // For a package whose postamble applies an element-wise sigmoid to the outputs marked in
  // `before_sigmoid` (OutputConverter::outputs_before_sigmoid()), or concatenates differently
  // quantised parts (OutputConverter::splits_outputs()): a decoder that takes those outputs
  // before the sigmoid (logits), split into their parts, and gives what this one gives on the
  // postamble's outputs, applying the sigmoid to candidates only; nullptr when this decoder has
  // no such mode for these outputs (the caller then keeps the postamble and the float path).
  // `outputs`: what decode_quantized() will get (OutputConverter::quantized_output_shapes()).
  virtual std::unique_ptr<Decoder> for_logits(const std::vector<FloatTensor> &outputs,
                                              const std::vector<bool> &before_sigmoid) const;
};

// Name and shape of each tensor without data, for shape checks on quantised outputs.
std::vector<FloatTensor> shapes_of(const std::vector<QuantizedTensor> &outputs);

using DecoderFactory = std::unique_ptr<Decoder> (*)(const DecoderOptions &options);

struct DecoderEntry {
  const char *name;
  const char *description;
  DecoderFactory make;
  std::vector<std::string> config_keys;  // what DecoderOptions::config may hold
  float default_conf_threshold;          // for DecoderOptions::conf_threshold < 0
  float default_nms_iou;                 // for DecoderOptions::nms_iou < 0; negative: no NMS
};

// All registered decoders, in registry order.
const std::vector<DecoderEntry> &decoder_registry();
// "blazeface, classification" for messages and property blurbs.
std::string decoder_names();
// "blazeface 0.75, ssd 0.5, ..." : each decoder's default of `field` (those where it is >= 0),
// for property blurbs.
std::string decoder_defaults(float DecoderEntry::*field);
// The decoder `name` with `options`' negative thresholds replaced by its defaults.
// Throws InvalidArgument naming the unknown decoder and the valid ones.
std::unique_ptr<Decoder> make_decoder(const std::string &name, const DecoderOptions &options);

// One label per line (trailing whitespace trimmed, empty lines kept so ids stay aligned).
// Throws InvalidArgument naming the file when it cannot be read.
std::vector<std::string> read_labels(const std::string &path);
// labels[class_id], or "class <id>" when out of range.
std::string label_of(const std::vector<std::string> &labels, int class_id);

// Numerically stable in-place softmax / logistic sigmoid.
void softmax_inplace(std::vector<float> &values);
inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

}  // namespace axstream::decoders
