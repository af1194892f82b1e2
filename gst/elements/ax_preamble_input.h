// The device input of a package with a preamble (docs/model-package.md): pixels (resized and in
// the model's colour order, made by a pp::Preprocessor as `pixel - 128`) -> the float model input
// (pixel_scale, mean, std, in the preamble input's layout) -> preamble.onnx through the engine ->
// quantised, transposed to NHWC and padded like the package's core input. Used by axpreprocess.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "axstream/preprocess/preprocess.h"
#include "axstream/runtime/engine.h"
#include "axstream/runtime/model_package.h"

namespace axstream::gst {

class PreambleInput {
 public:
  // `package` must have a preamble and one input. `normalisation` and `color` are the ones the
  // element resolved (package input_preprocess, overridden by properties). Throws
  // InvalidArgument / NotImplemented naming the preamble when its graph does not fit the package
  // (not one float rank-4 input and output, output not the core input's shape).
  PreambleInput(const runtime::ModelPackage &package,
                const preprocess::Normalisation &normalisation, preprocess::ColorOrder color);

  // What the Preprocessor has to make: the preamble input's pixels, unpadded NHWC, quantised
  // as pixel - 128 (scale 1, zero point -128), so every 8-bit value survives exactly.
  const preprocess::TensorSpec &pixel_spec() const { return pixel_spec_; }
  // Options for that Preprocessor: `options` with the normalisation made the identity.
  preprocess::Options pixel_options(preprocess::Options options) const;
  // The device input (package input 0, one batch item) in bytes.
  size_t device_size() const { return device_size_; }

  // pixels (pixel_spec().size() bytes) -> device input (device_size() bytes). Not thread-safe
  // (one engine executor); axpreprocess calls it from its streaming thread only.
  void run(const int8_t *pixels, int8_t *device) const;

 private:
  std::string preamble_path_;
  preprocess::TensorSpec pixel_spec_;
  // [channel][pixel]: (pixel * pixel_scale - mean) / std, as docs/model-package.md writes it.
  std::array<std::array<float, 256>, 3> model_value_{};
  bool input_nchw_ = false;  // the preamble's input layout
  int height_ = 0, width_ = 0, channels_ = 0;
  std::shared_ptr<const engine::Program> program_;
  std::unique_ptr<engine::Executor> executor_;
  mutable std::vector<float> model_input_, core_input_;
  // The core input: transpose NCHW -> NHWC, padding, quantisation.
  bool output_nchw_ = false;
  int pad_top_ = 0, pad_left_ = 0, channel_pad_low_ = 0;
  int device_height_ = 0, device_width_ = 0, device_channels_ = 0;  // padded
  int core_height_ = 0, core_width_ = 0, core_channels_ = 0;        // unpadded
  double scale_q_ = 1.0;
  int zero_point_ = 0;
  size_t device_size_ = 0;
};

}  // namespace axstream::gst
