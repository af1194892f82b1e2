// Plain data the decoders exchange: float tensors in, detections / class scores out, and the
// geometry that maps tensor pixels back to frame pixels. No GStreamer here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace axstream::decoders {

// A dense row-major float32 tensor of the float model (after depad/dequantise/postamble).
struct FloatTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;

  size_t element_count() const;
  // "(1,512,16)" for messages.
  std::string shape_string() const;
};

std::string shape_to_string(const std::vector<int64_t> &shape);

// A device output in the float model's layout (depadded, transposed back, reshaped) but still
// quantised: value = (data[i] - zero_point) * scale, computed exactly as the float conversion
// does, so a decoder can threshold in int8 and dequantise only candidates.
struct QuantizedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<int8_t> data;  // row-major values; empty when `view` holds them
  float scale = 1.0f;
  int zero_point = 0;
  // Values left where they are (OutputConverter::view_quantized: the mapped device output, no
  // copy): element i = c * view_plane + s is view[s * view_row_stride + c], i.e. a channels-last
  // (padded) device tensor read in the float model's channels-first order; with `view_rows`,
  // element i = s * view_plane + c is view[s * view_row_stride + c], i.e. that tensor read in its
  // own order, its channel padding skipped (a postamble that transposes it back to channels-last,
  // as SSD heads do). Valid only while that memory is.
  const int8_t *view = nullptr;
  size_t view_plane = 0, view_row_stride = 0;
  bool view_rows = false;

  int8_t at(size_t i) const {
    if (!view) return data[i];
    const size_t quotient = i / view_plane, remainder = i % view_plane;
    return view_rows ? view[quotient * view_row_stride + remainder]
                     : view[remainder * view_row_stride + quotient];
  }
  float dequantize(int8_t q) const {
    return (static_cast<float>(q) - static_cast<float>(zero_point)) * scale;
  }
  size_t element_count() const;
  std::string shape_string() const;
  FloatTensor dequantized() const;
  // The same tensor with its values in `data` (a copy out of a view; itself otherwise).
  QuantizedTensor owned() const;
};

// Frame <- tensor mapping, the same numbers as GstAxTransform:
//   frame_x = crop_x + (tensor_x - offset_x) / scale_x   (same for y)
struct Geometry {
  double crop_x = 0, crop_y = 0, crop_width = 0, crop_height = 0;
  double scale_x = 1, scale_y = 1;
  double offset_x = 0, offset_y = 0;
  int tensor_width = 0, tensor_height = 0;  // model input size without padding

  double frame_x(double tensor_x) const { return crop_x + (tensor_x - offset_x) / scale_x; }
  double frame_y(double tensor_y) const { return crop_y + (tensor_y - offset_y) / scale_y; }
};

struct Point {
  float x = 0, y = 0;
};

// Axis-aligned box, corners (x0, y0) top-left and (x1, y1) bottom-right.
struct Box {
  float x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  float width() const { return x1 - x0; }
  float height() const { return y1 - y0; }
  float area() const { return width() > 0 && height() > 0 ? width() * height() : 0.0f; }
};

struct Detection {
  Box box;  // in frame pixels once decoded
  float score = 0;
  int class_id = 0;
  std::string label;
  std::vector<Point> keypoints;  // frame pixels; empty when the model has none
};

struct ClassScore {
  int class_id = 0;
  float score = 0;
  std::string label;
};

// Recognised text (e.g. CTC over a text line crop) and its confidence (mean character score).
struct TextResult {
  std::string text;
  float confidence = 0;
};

// What one decode of one tensor set gives: detections (detectors), ranked classes
// (classifiers, best first) or text (recognisers).
struct DecodeResult {
  std::vector<Detection> detections;
  std::vector<ClassScore> classes;
  std::vector<TextResult> texts;  // empty, or one per recognised line
};

}  // namespace axstream::decoders
