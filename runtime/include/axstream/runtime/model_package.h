// A model package as read from disk (model.json + manifest.json + core.onnx, see
// docs/model-package.md): what Model exposes, plus the extra fields other layers need
// (input_preprocess for axpreprocess, output_info for decoders).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "axstream/runtime/runtime.h"

namespace axstream::runtime {

// manifest.json "input_preprocess" entry: float = (pixel * pixel_scale - mean) / std.
struct InputPreprocess {
  std::string color_format = "RGB";  // "RGB", "BGR" or "GRAY"
  double pixel_scale = 1.0;
  std::vector<double> mean;  // one per colour channel (3, or 1 for GRAY); empty = 0
  std::vector<double> std;   // one per colour channel; empty = 1
  // With a preamble: the layout of the float tensor made here, the preamble's input ("NCHW" or
  // "NHWC"). Without one the float tensor is quantised straight into the NHWC device input.
  std::string layout = "NHWC";
};

// manifest.json "output_info" entry: the float model's shape of this output and whether the core
// transposed it from NCHW to NHWC.
struct OutputInfo {
  std::vector<int64_t> original_shape;  // defaults to the unpadded shape
  std::string layout = "none";          // "NHWC" or "none"
};

// manifest.json "input_info" entry (packages with a preamble): the float shape of the preamble
// output this input carries, and "NHWC" when the core takes it transposed from NCHW.
using InputInfo = OutputInfo;

struct ModelPackage {
  std::string directory;        // the package directory, made absolute (no trailing '/')
  std::string model_json_path;  // directory + "/model.json", or the other .json file given
  std::string manifest_path;    // directory + "/manifest.json" (optional: see load_model_package)
  int format_version = 1;
  std::string name;  // model.json "name", else the directory's base name
  int batch = 1;
  std::string input_tensor_layout = "NHWC";
  std::string core_graph;          // relative to directory
  std::string preamble_graph;      // relative, "" when absent
  std::string postamble_graph;     // relative, "" when absent
  std::vector<TensorInfo> inputs;  // padded device tensors, shape[0] == batch
  std::vector<TensorInfo> outputs;
  std::vector<std::optional<InputPreprocess>> input_preprocess;  // one per input
  std::vector<OutputInfo> output_info;                           // one per output
  std::vector<InputInfo> input_info;                             // one per input

  // Absolute-or-as-given path of a file named relative to the package directory.
  // One separator between them, also when `directory` is the root "/".
  std::string path_of(const std::string &relative) const {
    return directory.empty() || directory.back() == '/' ? directory + relative
                                                        : directory + "/" + relative;
  }
  std::string core_graph_path() const { return path_of(core_graph); }
};

// Reads and cross-checks a package (`path` is the directory or its model.json). Anything
// missing, malformed or inconsistent -> InvalidArgument naming the file and the field.
std::shared_ptr<const ModelPackage> load_model_package(const std::string &path);

}  // namespace axstream::runtime
