// Dense tensors the engine owns (initializers, folded constants) and the shape arithmetic
// every pass and kernel shares.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "axstream/runtime/engine.h"

namespace axstream::engine {

using Shape = std::vector<int64_t>;

// Product of dims; throws InvalidArgument naming `what` on negative dims or overflow.
int64_t checked_element_count(const Shape &shape, const std::string &what);
std::string shape_str(const Shape &shape);

// Row-major strides in elements.
Shape strides_of(const Shape &shape);

// Numpy-style broadcast of two shapes; throws InvalidArgument naming `what` if incompatible.
Shape broadcast_shapes(const Shape &a, const Shape &b, const std::string &what);

struct Tensor {
  DType dtype = DType::f32;
  Shape shape;
  std::vector<uint8_t> bytes;

  Tensor() = default;
  Tensor(DType dtype_, Shape shape_);
  int64_t count() const;
  template <typename T>
  T *data() {
    return reinterpret_cast<T *>(bytes.data());
  }
  template <typename T>
  const T *data() const {
    return reinterpret_cast<const T *>(bytes.data());
  }
  // Element i converted to double / int64, whatever the dtype.
  double as_double(int64_t i) const;
  int64_t as_int(int64_t i) const;
  // An int8/uint8 tensor of one byte repeated (a channel Pad's zero points): the same bytes in
  // any layout, so the NHWC pass leaves it out and axstream.QConcat writes it as a fill.
  bool is_one_repeated_int8() const;
};
using TensorPtr = std::shared_ptr<const Tensor>;

// A 64-byte aligned, uninitialised byte buffer (arenas, scratch).
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes);
  uint8_t *data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(uint8_t *p) const;
  };
  std::unique_ptr<uint8_t, Free> data_;
  size_t size_ = 0;
};

// A double as T. For an integer T a value beyond T's range saturates and NaN reads 0: casting
// them is undefined behaviour. A bool is v != 0.
template <typename T>
T saturating_cast(double v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v != 0;
  } else if constexpr (std::is_integral_v<T>) {
    // max + 1, a power of two and so exact as a double (2^(n-1) signed, 2^n unsigned).
    constexpr double above_max = (static_cast<double>(std::numeric_limits<T>::max() / 2) + 1) * 2;
    constexpr double lowest = static_cast<double>(std::numeric_limits<T>::lowest());
    if (std::isnan(v)) return 0;
    if (v >= above_max) return std::numeric_limits<T>::max();
    if (v <= lowest) return std::numeric_limits<T>::lowest();
    return static_cast<T>(v);
  } else {
    return static_cast<T>(v);
  }
}

// float16, bfloat16 and float64: held, moved and cast, never computed on by a kernel (they
// compute in float32 or integers): the compiler runs a float16/bfloat16 op in float32 between
// Casts (half_compute.h) and refuses float64 where no double kernel exists (compiler.cc).
inline bool is_storage_only_dtype(DType dtype) {
  return dtype == DType::f16 || dtype == DType::bf16 || dtype == DType::f64;
}
inline bool is_floating_dtype(DType dtype) {
  return dtype == DType::f32 || is_storage_only_dtype(dtype);
}
// The 8-bit integer types of quantised tensors (QuantizeLinear/DequantizeLinear and their fused
// forms).
inline bool is_int8_or_uint8(DType dtype) { return dtype == DType::i8 || dtype == DType::u8; }
// int16, uint16, uint32 and uint64: every op that moves, selects, casts or compares elements
// takes them, but an op that computes does so only when registered for them
// (OpDef::computes_opt_in_integers), so that a kernel written for the other integers never sees
// a dtype whose arithmetic it was not checked for (uint16 products overflow int, uint64 values
// beyond 2^53 do not survive a double); the compiler refuses them anywhere else (compiler.cc).
inline bool is_opt_in_integer_dtype(DType dtype) {
  return dtype == DType::i16 || dtype == DType::u16 || dtype == DType::u32 || dtype == DType::u64;
}

// A scalar-per-element reader for any dtype (for the odd cold-path loop), and its writer: into
// an integer dtype a value saturates (saturating_cast); into float16/bfloat16 it rounds to
// nearest even (float16.h), past the largest finite value to inf.
double load_as_double(const void *data, DType dtype, int64_t i);
void store_from_double(void *data, DType dtype, int64_t i, double v);

// Calls f(T{}) with T the C++ type of `dtype`; NotImplemented for the storage-only dtypes
// (float16, bfloat16, float64), which no computing kernel takes, and for the opt-in integers
// (int16, uint16, uint32, uint64), which a kernel written for them takes through
// dispatch_dtype_and_opt_in_integers: f is instantiated for them only there.
template <typename F>
void dispatch_dtype(DType dtype, F &&f);
template <typename F>
void dispatch_dtype_and_opt_in_integers(DType dtype, F &&f);

}  // namespace axstream::engine

#include "axstream/error.h"

namespace axstream::engine {
template <typename F>
void dispatch_dtype(DType dtype, F &&f) {
  switch (dtype) {
    case DType::f32:
      f(float{});
      return;
    case DType::i8:
      f(int8_t{});
      return;
    case DType::u8:
      f(uint8_t{});
      return;
    case DType::i32:
      f(int32_t{});
      return;
    case DType::i64:
      f(int64_t{});
      return;
    case DType::bool_:
      f(bool{});
      return;
    case DType::f16:
    case DType::bf16:
    case DType::f64:
    case DType::i16:
    case DType::u16:
    case DType::u32:
    case DType::u64:
      break;
  }
  throw NotImplemented(std::string("engine: dtype ") + dtype_name(dtype) +
                       " is not supported by this kernel");
}

template <typename F>
void dispatch_dtype_and_opt_in_integers(DType dtype, F &&f) {
  switch (dtype) {
    case DType::i16:
      f(int16_t{});
      return;
    case DType::u16:
      f(uint16_t{});
      return;
    case DType::u32:
      f(uint32_t{});
      return;
    case DType::u64:
      f(uint64_t{});
      return;
    default:
      dispatch_dtype(dtype, std::forward<F>(f));
  }
}
}  // namespace axstream::engine
