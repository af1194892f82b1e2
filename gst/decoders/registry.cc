// The one table of decoders. Adding a decoder: one .cc file with its make_* function, one line
// here.
#include <algorithm>
#include <cmath>
#include <fstream>

#include "axstream/decoders/decoder.h"
#include "axstream/error.h"

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
      {"blazeface", "MediaPipe BlazeFace: face boxes + 6 keypoints, weighted NMS",
       make_blazeface_decoder},
      {"classification", "top-k classes of a score vector (optional softmax)",
       make_classification_decoder},
      {"ctc", "greedy CTC text over (1,steps,classes) with a dictionary (labels)",
       make_ctc_decoder},
      {"dbnet", "DBNet text regions from a (1,1,H,W) probability map (rotated boxes)",
       make_dbnet_decoder},
      {"ssd", "SSD boxes (1,N,4) + scores (1,N,classes), class 0 background", make_ssd_decoder},
      {"yolov5", "YOLOv5 decoded (1,N,5+classes) or raw heads with COCO anchors",
       make_yolov5_decoder},
      {"yolov8", "YOLOv8 decoded (1,4+classes,N), anchor-free", make_yolov8_decoder},
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

std::unique_ptr<Decoder> make_decoder(const std::string &name, const DecoderOptions &options) {
  for (const auto &entry : decoder_registry())
    if (name == entry.name) return entry.make(options);
  throw InvalidArgument("decoder '" + name + "' is unknown: expected one of " + decoder_names());
}

std::vector<std::string> read_labels(const std::string &path) {
  std::ifstream file(path);
  if (!file) throw InvalidArgument("labels file '" + path + "' cannot be opened for reading");
  std::vector<std::string> labels;
  std::string line;
  while (std::getline(file, line)) {
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    labels.push_back(line);
  }
  return labels;
}

std::string label_of(const std::vector<std::string> &labels, int class_id) {
  if (class_id >= 0 && static_cast<size_t>(class_id) < labels.size()) return labels[class_id];
  return "class " + std::to_string(class_id);
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
