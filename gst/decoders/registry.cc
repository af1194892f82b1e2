// The one table of decoders. Adding a decoder: one .cc file with its make_* function, one line
// here.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "axstream/decoders/decoder.h"
#include "axstream/error.h"
#include "axstream/utf8.h"

namespace axstream::decoders {

std::unique_ptr<Decoder> make_blazeface_decoder(const DecoderOptions &options);
std::unique_ptr<Decoder> make_classification_decoder(const DecoderOptions &options);
std::unique_ptr<Decoder> make_ctc_decoder(const DecoderOptions &options);
std::unique_ptr<Decoder> make_dbnet_decoder(const DecoderOptions &options);
std::unique_ptr<Decoder> make_ssd_decoder(const DecoderOptions &options);
std::unique_ptr<Decoder> make_yolov5_decoder(const DecoderOptions &options);
std::unique_ptr<Decoder> make_yolov8_decoder(const DecoderOptions &options);

const std::vector<DecoderEntry> &decoder_registry() {
  static const std::vector<DecoderEntry> registry = {
      {"blazeface",
       "MediaPipe BlazeFace: face boxes + 6 keypoints, weighted NMS",
       make_blazeface_decoder,
       {},
       0.75f,
       0.3f},
      {"classification",
       "top-k classes of a score vector (optional softmax)",
       make_classification_decoder,
       {},
       0.0f,
       -1.0f},
      {"ctc",
       "greedy CTC text over (1,steps,classes) with a dictionary (labels)",
       make_ctc_decoder,
       {},
       0.0f,
       -1.0f},
      {"dbnet",
       "DBNet text regions from a (1,1,H,W) probability map (rotated boxes)",
       make_dbnet_decoder,
       {"activations", "binary-threshold", "unclip-ratio"},
       0.6f,
       -1.0f},
      {"ssd",
       "SSD boxes (1,N,4) + scores (1,N,classes), class 0 background; decoded corners, or "
       "box deltas against prior boxes (config)",
       make_ssd_decoder,
       {"feature-maps", "image-size", "min-sizes", "max-sizes", "aspect-ratios", "steps",
        "variances", "clip", "priors-file", "box-order", "scores"},
       0.5f,
       0.45f},
      {"yolov5",
       "YOLOv5 decoded (1,N,5+classes) or raw heads with COCO anchors",
       make_yolov5_decoder,
       {"activations"},
       0.25f,
       0.45f},
      {"yolov8",
       "YOLOv8 decoded (1,4+classes,N) or raw DFL heads (1,64+classes,H,W)",
       make_yolov8_decoder,
       {"activations"},
       0.25f,
       0.45f},
  };
  return registry;
}

std::string decoder_names() {
  std::string names;
  for (const auto &entry : decoder_registry()) {
    if (!names.empty()) names += ", ";
    names += entry.name;
  }
  return names;
}

std::string decoder_defaults(float DecoderEntry::*field) {
  std::string text;
  for (const auto &entry : decoder_registry()) {
    if (entry.*field < 0) continue;
    char value[32];
    std::snprintf(value, sizeof value, "%g", static_cast<double>(entry.*field));
    text += (text.empty() ? "" : ", ") + std::string(entry.name) + " " + value;
  }
  return text;
}

std::unique_ptr<Decoder> make_decoder(const std::string &name, const DecoderOptions &options) {
  for (const auto &entry : decoder_registry()) {
    if (name != entry.name) continue;
    for (const auto &[key, value] : options.config)
      if (std::find(entry.config_keys.begin(), entry.config_keys.end(), key) ==
          entry.config_keys.end()) {
        std::string valid;
        for (const auto &k : entry.config_keys) valid += (valid.empty() ? "" : ", ") + k;
        throw InvalidArgument("decoder '" + name + "': unknown config key '" + key +
                              "', expected " + (valid.empty() ? "no config" : "one of " + valid));
      }
    DecoderOptions resolved = options;
    if (resolved.conf_threshold < 0) resolved.conf_threshold = entry.default_conf_threshold;
    if (resolved.nms_iou < 0) resolved.nms_iou = entry.default_nms_iou;
    return entry.make(resolved);
  }
  throw InvalidArgument("decoder '" + name + "' is unknown: expected one of " + decoder_names());
}

std::vector<std::string> read_labels(const std::string &path) {
  std::ifstream file(path);
  if (!file) throw InvalidArgument("labels file '" + path + "' cannot be opened for reading");
  // A directory opens and reads as nothing, which would pass for an empty labels file.
  std::error_code error;
  if (std::filesystem::is_directory(path, error))
    throw InvalidArgument("labels file '" + path +
                          "' is a directory: expected a text file with one label per line");
  std::vector<std::string> labels;
  std::string line;
  while (std::getline(file, line)) {
    // Windows editors start UTF-8 files with a byte order mark: not part of label 0.
    if (labels.empty() && line.compare(0, 3, "\xef\xbb\xbf") == 0) line.erase(0, 3);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    // Labels go into JSON Lines (UTF-8 by definition) and onto the video: a Latin-1 or UTF-16
    // file would give unreadable records or garbled text, frame after frame.
    if (!axstream::is_utf8(line))
      throw InvalidArgument("labels file '" + path + "' line " + std::to_string(labels.size() + 1) +
                            " is not UTF-8 text: expected one UTF-8 label per line (convert with "
                            "e.g. iconv -f LATIN1 -t UTF-8)");
    labels.push_back(line);
  }
  if (file.bad()) throw InvalidArgument("labels file '" + path + "' could not be read");
  return labels;
}

std::string label_of(const std::vector<std::string> &labels, int class_id) {
  if (class_id >= 0 && static_cast<size_t>(class_id) < labels.size()) return labels[class_id];
  return "class " + std::to_string(class_id);
}

static std::string trimmed(const std::string &text) {
  size_t begin = 0, end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  return text.substr(begin, end - begin);
}

// The parts of `text` between `separator`s, each trimmed (empty ones kept).
static std::vector<std::string> split_trimmed(const std::string &text, char separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(separator, start);
    if (end == std::string::npos) end = text.size();
    parts.push_back(trimmed(text.substr(start, end - start)));
    start = end + 1;
  }
  return parts;
}

std::map<std::string, std::string> parse_decoder_config(const std::string &text) {
  std::map<std::string, std::string> config;
  for (const std::string &entry : split_trimmed(text, ';')) {
    if (entry.empty()) continue;
    const size_t eq = entry.find('=');
    if (eq == std::string::npos)
      throw InvalidArgument("decoder config entry '" + entry + "': expected key=value");
    const std::string key = trimmed(entry.substr(0, eq));
    if (!config.emplace(key, trimmed(entry.substr(eq + 1))).second)
      throw InvalidArgument("decoder config: key '" + key + "' given twice in '" + text + "'");
  }
  return config;
}

std::vector<double> config_numbers(const std::map<std::string, std::string> &config,
                                   const std::string &key) {
  std::vector<double> numbers;
  const auto found = config.find(key);
  if (found == config.end()) return numbers;
  const std::string &text = found->second;
  for (const std::string &item : split_trimmed(text, ',')) {
    char *parsed_end = nullptr;
    const double value = std::strtod(item.c_str(), &parsed_end);
    if (item.empty() || *parsed_end != '\0' || !std::isfinite(value))
      throw InvalidArgument("decoder config '" + key + "=" + text +
                            "': expected comma-separated numbers, got '" + item + "'");
    numbers.push_back(value);
  }
  return numbers;
}

DecodeResult Decoder::decode_quantized(const std::vector<QuantizedTensor> &outputs,
                                       const Geometry &geometry) const {
  std::vector<FloatTensor> floats;
  floats.reserve(outputs.size());
  for (const auto &t : outputs) floats.push_back(t.dequantized());
  return decode(floats, geometry);
}

std::unique_ptr<Decoder> Decoder::for_logits(const std::vector<FloatTensor> &,
                                             const std::vector<bool> &) const {
  return nullptr;
}

std::vector<FloatTensor> shapes_of(const std::vector<QuantizedTensor> &outputs) {
  std::vector<FloatTensor> shapes(outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i) {
    shapes[i].name = outputs[i].name;
    shapes[i].shape = outputs[i].shape;
  }
  return shapes;
}

void softmax_inplace(std::vector<float> &values) {
  if (values.empty()) return;
  const float max_value = *std::max_element(values.begin(), values.end());
  double sum = 0;
  for (float &v : values) {
    v = std::exp(v - max_value);
    sum += v;
  }
  for (float &v : values) v = static_cast<float>(v / sum);
}

}  // namespace axstream::decoders
