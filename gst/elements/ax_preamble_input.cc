#include "ax_preamble_input.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "axstream/error.h"

namespace axstream::gst {

namespace pp = axstream::preprocess;

namespace {

std::string shape_text(const std::vector<int64_t> &shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(shape[i]);
  }
  return s + ")";
}

}  // namespace

PreambleInput::PreambleInput(const runtime::ModelPackage &package,
                             const pp::Normalisation &normalisation, pp::ColorOrder color) {
  if (package.preamble_graph.empty())
    throw InternalError("PreambleInput: package '" + package.name + "' has no preamble");
  if (package.inputs.size() != 1)
    throw InvalidArgument("package '" + package.name + "' has " +
                          std::to_string(package.inputs.size()) +
                          " inputs: a preamble is run for single-input packages only");
  preamble_path_ = package.path_of(package.preamble_graph);
  const std::string label = "preamble '" + preamble_path_ + "' of package '" + package.name + "'";
  program_ = engine::Program::from_file(preamble_path_);
  const auto &ins = program_->inputs();
  const auto &outs = program_->outputs();
  if (ins.size() != 1 || outs.size() != 1 || ins[0].dtype != engine::DType::f32 ||
      outs[0].dtype != engine::DType::f32 || ins[0].shape.size() != 4 || ins[0].shape[0] != 1)
    throw NotImplemented(label + ": expected one float32 input of shape (1,C,H,W) or (1,H,W,C) " +
                         "and one float32 output; axpreprocess runs image preambles only");

  // The preamble's input: the model input the float model took, in its layout.
  const auto &pre = package.input_preprocess.empty() ? std::nullopt : package.input_preprocess[0];
  input_nchw_ = pre && pre->layout == "NCHW";
  const auto &in_shape = ins[0].shape;
  channels_ = int(input_nchw_ ? in_shape[1] : in_shape[3]);
  height_ = int(input_nchw_ ? in_shape[2] : in_shape[1]);
  width_ = int(input_nchw_ ? in_shape[3] : in_shape[2]);
  const int colour_channels = color == pp::ColorOrder::GRAY ? 1 : 3;
  if (channels_ != colour_channels)
    throw InvalidArgument(label + ": input '" + ins[0].name + "' " + shape_text(in_shape) + " (" +
                          (input_nchw_ ? "NCHW" : "NHWC") + ") has " + std::to_string(channels_) +
                          " channels but the colour format " + pp::color_order_name(color) +
                          " gives " + std::to_string(colour_channels));
  pixel_spec_.height = height_;
  pixel_spec_.width = width_;
  pixel_spec_.channels = channels_;
  pixel_spec_.scale = 1.0;
  pixel_spec_.zero_point = -128;
  for (int c = 0; c < channels_; ++c)
    for (int v = 0; v < 256; ++v)
      model_value_[c][v] =
          float((v * normalisation.pixel_scale - normalisation.mean[c]) / normalisation.std[c]);

  // The core input the preamble's output becomes.
  const runtime::TensorInfo &device = package.inputs[0];
  if (device.shape.size() != 4 || device.dtype != engine::DType::i8)
    throw InvalidArgument("input 0 '" + device.name + "' of package '" + package.name +
                          "' has shape " + shape_text(device.shape) +
                          ": expected an int8 NHWC image tensor");
  device_height_ = int(device.shape[1]);
  device_width_ = int(device.shape[2]);
  device_channels_ = int(device.shape[3]);
  if (device.padding.size() == 4) {
    pad_top_ = int(device.padding[1].first);
    pad_left_ = int(device.padding[2].first);
    channel_pad_low_ = int(device.padding[3].first);
  }
  const std::vector<int64_t> unpadded = device.unpadded_shape();
  core_height_ = int(unpadded[1]);
  core_width_ = int(unpadded[2]);
  core_channels_ = int(unpadded[3]);
  output_nchw_ = !package.input_info.empty() && package.input_info[0].layout == "NHWC";
  std::vector<int64_t> expected = {1, unpadded[1], unpadded[2], unpadded[3]};
  if (output_nchw_) expected = {1, unpadded[3], unpadded[1], unpadded[2]};
  if (outs[0].shape != expected)
    throw InvalidArgument(label + ": output '" + outs[0].name + "' has shape " +
                          shape_text(outs[0].shape) + " but the core input '" + device.name +
                          "' takes " + shape_text(expected) +
                          (output_nchw_ ? " (NCHW, input_info layout NHWC)" : " (NHWC)"));
  scale_q_ = device.scale;
  zero_point_ = device.zero_point;
  device_size_ = size_t(device_height_) * size_t(device_width_) * size_t(device_channels_);
  executor_ = program_->make_executor();
  model_input_.resize(ins[0].element_count());
  core_input_.resize(outs[0].element_count());
}

pp::Options PreambleInput::pixel_options(pp::Options options) const {
  options.normalisation = pp::Normalisation{1.0, {0.0, 0.0, 0.0}, {1.0, 1.0, 1.0}};
  return options;
}

void PreambleInput::run(const int8_t *pixels, int8_t *device) const {
  const size_t plane = size_t(height_) * size_t(width_);
  for (size_t p = 0; p < plane; ++p)
    for (int c = 0; c < channels_; ++c) {
      const int pixel = int(pixels[p * channels_ + c]) + 128;
      const size_t at = input_nchw_ ? size_t(c) * plane + p : p * channels_ + c;
      model_input_[at] = model_value_[c][pixel];
    }
  executor_->run({model_input_.data()}, {core_input_.data()});
  std::fill(device, device + device_size_, int8_t(zero_point_));
  const size_t core_plane = size_t(core_height_) * size_t(core_width_);
  for (int y = 0; y < core_height_; ++y)
    for (int x = 0; x < core_width_; ++x) {
      int8_t *row =
          device +
          (size_t(y + pad_top_) * device_width_ + size_t(x + pad_left_)) * device_channels_ +
          channel_pad_low_;
      const size_t p = size_t(y) * core_width_ + x;
      for (int c = 0; c < core_channels_; ++c) {
        const float v =
            core_input_[output_nchw_ ? size_t(c) * core_plane + p : p * core_channels_ + c];
        // NaN (e.g. Sqrt of a negative input) has no int8 value: the zero point, i.e. 0.
        row[c] = std::isnan(v) ? int8_t(zero_point_) : pp::quantise(v, scale_q_, zero_point_);
      }
    }
}

}  // namespace axstream::gst
