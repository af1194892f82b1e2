// Writes a model package (docs/model-package.md) into a temporary directory beside the target
// and renames it into place, so a failed compile never leaves a half-written package.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "quant_math.h"

namespace axstream::compiler {

struct PackageTensor {
  std::string name;
  std::vector<int64_t> shape;    // padded device shape of one item, NHWC, shape[0] == 1
  std::vector<int64_t> padding;  // low, high per dimension
  QuantParams params;
  std::vector<int64_t> original_shape;  // the float model's shape
  std::string layout = "none";          // "NHWC" when the core transposes from/to NCHW
};

struct InputPreprocessInfo {
  std::string color_format;
  double pixel_scale;
  std::vector<double> mean, std;
  std::string layout;  // with a preamble: the layout of its input ("NCHW"/"NHWC"); else empty
};

struct PackageContents {
  std::string name;
  int batch = 1;  // written as model.json batch and as shape[0] of every manifest shape
  std::string core_bytes;
  bool has_preamble = false;  // preamble.onnx; inputs then get manifest "input_info"
  std::string preamble_bytes;
  bool has_postamble = false;
  std::string postamble_bytes;
  std::vector<PackageTensor> inputs, outputs;
  std::vector<InputPreprocessInfo> input_preprocess;
  std::string calibration_method;
  int calibration_images = 0;
  std::string calibration_resize;  // how the images were fitted to the input (stretch, pad-right)
  std::string source_model;
  // Core nodes kept float by mixed precision (a real Metis runs them on the host) and the
  // postamble's op counts: model.json's "host_ops" record.
  std::vector<std::string> float_nodes;
  std::map<std::string, int> host_ops;
  std::map<std::string, int> preamble_ops;  // written only with a preamble
};

std::string model_json_text(const PackageContents &contents);
std::string manifest_json_text(const PackageContents &contents);

// Returns the package's size in bytes. Throws InvalidArgument naming the directory on I/O errors.
uint64_t write_package_atomically(const std::string &directory, const PackageContents &contents);

// Throws the InvalidArgument write_package_atomically would if `directory` cannot take a package
// (not a directory, or its temporary sibling cannot be made): axcompile checks this first so an
// unwritable --output-dir fails before calibration, not after minutes of it.
void check_package_directory(const std::string &directory);

}  // namespace axstream::compiler
