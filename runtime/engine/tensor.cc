#include "tensor.h"

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "float16.h"

namespace axstream::engine {

int64_t checked_element_count(const Shape &shape, const std::string &what) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw InvalidArgument(what + ": negative dimension in shape " + shape_str(shape));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / 16 / d)
      throw InvalidArgument(what + ": shape " + shape_str(shape) + " is too large");
    n *= d;
  }
  return n;
}

std::string shape_str(const Shape &shape) {
  std::string s = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(shape[i]);
  }
  return s + ")";
}

Shape strides_of(const Shape &shape) {
  Shape strides(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * shape[i + 1];
  return strides;
}

Shape broadcast_shapes(const Shape &a, const Shape &b, const std::string &what) {
  size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      throw InvalidArgument(what + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                            " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Tensor::Tensor(DType dtype_, Shape shape_) : dtype(dtype_), shape(std::move(shape_)) {
  bytes.resize(static_cast<size_t>(checked_element_count(shape, "tensor")) * dtype_size(dtype));
}

int64_t Tensor::count() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

double load_as_double(const void *data, DType dtype, int64_t i) {
  switch (dtype) {
    case DType::f32:
      return static_cast<const float *>(data)[i];
    case DType::i8:
      return static_cast<const int8_t *>(data)[i];
    case DType::u8:
      return static_cast<const uint8_t *>(data)[i];
    case DType::i32:
      return static_cast<const int32_t *>(data)[i];
    case DType::i64:
      return static_cast<double>(static_cast<const int64_t *>(data)[i]);
    case DType::bool_:
      return static_cast<const bool *>(data)[i] ? 1.0 : 0.0;
    case DType::f16:
      return half_to_float(static_cast<const uint16_t *>(data)[i]);
    case DType::bf16:
      return bfloat16_to_float(static_cast<const uint16_t *>(data)[i]);
    case DType::f64:
      return static_cast<const double *>(data)[i];
    case DType::i16:
      return static_cast<const int16_t *>(data)[i];
    case DType::u16:
      return static_cast<const uint16_t *>(data)[i];
    case DType::u32:
      return static_cast<const uint32_t *>(data)[i];
    case DType::u64:
      return static_cast<double>(static_cast<const uint64_t *>(data)[i]);
  }
  throw InternalError("engine: load_as_double of an unknown dtype " +
                      std::to_string(static_cast<int>(dtype)));
}

void store_from_double(void *data, DType dtype, int64_t i, double v) {
  switch (dtype) {
    case DType::f32:
      static_cast<float *>(data)[i] = static_cast<float>(v);
      return;
    case DType::i8:
      static_cast<int8_t *>(data)[i] = saturating_cast<int8_t>(v);
      return;
    case DType::u8:
      static_cast<uint8_t *>(data)[i] = saturating_cast<uint8_t>(v);
      return;
    case DType::i32:
      static_cast<int32_t *>(data)[i] = saturating_cast<int32_t>(v);
      return;
    case DType::i64:
      static_cast<int64_t *>(data)[i] = saturating_cast<int64_t>(v);
      return;
    case DType::bool_:
      static_cast<bool *>(data)[i] = v != 0;
      return;
    case DType::f16:
      // Straight from the double: through float first would round twice.
      static_cast<uint16_t *>(data)[i] = double_to_half(v);
      return;
    case DType::bf16:
      static_cast<uint16_t *>(data)[i] = double_to_bfloat16(v);
      return;
    case DType::f64:
      static_cast<double *>(data)[i] = v;
      return;
    case DType::i16:
      static_cast<int16_t *>(data)[i] = saturating_cast<int16_t>(v);
      return;
    case DType::u16:
      static_cast<uint16_t *>(data)[i] = saturating_cast<uint16_t>(v);
      return;
    case DType::u32:
      static_cast<uint32_t *>(data)[i] = saturating_cast<uint32_t>(v);
      return;
    case DType::u64:
      static_cast<uint64_t *>(data)[i] = saturating_cast<uint64_t>(v);
      return;
  }
  throw InternalError("engine: store_from_double of an unknown dtype " +
                      std::to_string(static_cast<int>(dtype)));
}

AlignedBuffer::AlignedBuffer(size_t bytes) : size_(bytes) {
  if (bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    data_.reset(static_cast<uint8_t *>(std::aligned_alloc(64, rounded)));
    if (!data_) throw InternalError("engine: cannot allocate " + std::to_string(bytes) + " bytes");
  }
}
void AlignedBuffer::Free::operator()(uint8_t *p) const { std::free(p); }

double Tensor::as_double(int64_t i) const { return load_as_double(bytes.data(), dtype, i); }

bool Tensor::is_one_repeated_int8() const {
  if (bytes.empty() || (dtype != DType::i8 && dtype != DType::u8)) return false;
  return std::all_of(bytes.begin(), bytes.end(), [&](uint8_t b) { return b == bytes.front(); });
}

int64_t Tensor::as_int(int64_t i) const {
  if (dtype == DType::i64) return data<int64_t>()[i];
  return saturating_cast<int64_t>(as_double(i));
}

}  // namespace axstream::engine
