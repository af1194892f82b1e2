#include "axstream/decoders/types.h"

namespace axstream::decoders {

size_t FloatTensor::element_count() const {
  size_t count = 1;
  for (int64_t dim : shape) count *= static_cast<size_t>(dim);
  return count;
}

std::string shape_to_string(const std::vector<int64_t> &shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) text += ",";
    text += std::to_string(shape[i]);
  }
  return text + ")";
}

std::string FloatTensor::shape_string() const { return shape_to_string(shape); }

size_t QuantizedTensor::element_count() const {
  size_t count = 1;
  for (int64_t dim : shape) count *= static_cast<size_t>(dim);
  return count;
}

std::string QuantizedTensor::shape_string() const { return shape_to_string(shape); }

FloatTensor QuantizedTensor::dequantized() const {
  FloatTensor t;
  t.name = name;
  t.shape = shape;
  t.data.resize(element_count());
  for (size_t i = 0; i < t.data.size(); ++i) t.data[i] = dequantize(at(i));
  return t;
}

QuantizedTensor QuantizedTensor::owned() const {
  if (!view) return *this;
  QuantizedTensor copy = *this;
  copy.view = nullptr;
  copy.view_plane = copy.view_row_stride = 0;
  copy.view_rows = false;
  copy.data.resize(element_count());
  for (size_t i = 0; i < copy.data.size(); ++i) copy.data[i] = at(i);
  return copy;
}

}  // namespace axstream::decoders
