#include "axstream/runtime/runtime.h"
#include "shape_text.h"

namespace axstream::runtime {

size_t TensorInfo::size() const {
  size_t elements = 1;
  for (int64_t dim : shape) elements *= static_cast<size_t>(dim);
  return elements * engine::dtype_size(dtype);
}

std::vector<int64_t> TensorInfo::unpadded_shape() const {
  std::vector<int64_t> result = shape;
  for (size_t d = 0; d < result.size() && d < padding.size(); ++d)
    result[d] -= padding[d].first + padding[d].second;
  return result;
}

std::string shape_text(const std::vector<int64_t> &shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) text += ',';
    text += std::to_string(shape[i]);
  }
  return text + ")";
}

}  // namespace axstream::runtime
