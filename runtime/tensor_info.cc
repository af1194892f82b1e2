#include <limits>

#include "axstream/runtime/runtime.h"
#include "shape_text.h"

namespace axstream::runtime {

namespace {

// TensorInfo is a plain value a program may fill in itself: its shape and padding are checked
// where they are used, with the words of the Python constructor's errors (before, a negative
// dimension made size() wrap to ~2^64 and padding wider than a dimension a negative one).
std::string pads_text(const std::vector<std::pair<int64_t, int64_t>> &padding) {
  std::string text = "[";
  for (size_t d = 0; d < padding.size(); ++d)
    text += (d ? ", (" : "(") + std::to_string(padding[d].first) + ", " +
            std::to_string(padding[d].second) + ")";
  return text + "]";
}

std::string label(const TensorInfo &info, const char *field) {
  return "TensorInfo" + (info.name.empty() ? std::string() : " '" + info.name + "'") + " " + field;
}

void check_shape(const TensorInfo &info) {
  for (int64_t dim : info.shape)
    if (dim < 0)
      throw InvalidArgument(label(info, "shape") + ": expected non-negative dimensions, got " +
                            shape_text(info.shape));
}

}  // namespace

size_t TensorInfo::size() const {
  check_shape(*this);
  size_t elements = engine::dtype_size(dtype);
  for (int64_t dim : shape) {
    size_t extent = static_cast<size_t>(dim);
    if (extent != 0 && elements > std::numeric_limits<size_t>::max() / extent)
      throw InvalidArgument(label(*this, "shape") + ": " + shape_text(shape) +
                            " holds more bytes than size_t counts");
    elements *= extent;
  }
  return elements;
}

std::vector<int64_t> TensorInfo::unpadded_shape() const {
  check_shape(*this);
  if (padding.empty()) return shape;
  if (padding.size() != shape.size())
    throw InvalidArgument(label(*this, "padding") + ": expected " + std::to_string(shape.size()) +
                          " (start, end) pairs for shape " + shape_text(shape) + ", got " +
                          pads_text(padding));
  std::vector<int64_t> result = shape;
  for (size_t d = 0; d < result.size(); ++d) {
    auto [start, end] = padding[d];
    if (start < 0 || end < 0 || start > result[d] || end > result[d] - start)
      throw InvalidArgument(label(*this, "padding") + ": expected non-negative pads within shape " +
                            shape_text(shape) + ", got " + pads_text(padding));
    result[d] -= start + end;
  }
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
