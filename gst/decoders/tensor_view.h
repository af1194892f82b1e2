// One decoding loop for float and int8 outputs: a decoder written against these views thresholds
// and ranks on keys (the float itself, or the raw int8, whose order is the same since scale > 0),
// and reads values or functions of them (sigmoid, exp) only for candidates. The int8 view
// precomputes the key threshold and 256-entry tables of those functions over every int8 value,
// with the same float arithmetic as the float path, so both give identical results.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "axstream/decoders/types.h"

namespace axstream::decoders::detail {

class FloatView {
 public:
  using Key = float;
  explicit FloatView(const FloatTensor &tensor) : tensor_(&tensor), data_(tensor.data.data()) {}
  const std::string &name() const { return tensor_->name; }
  const std::vector<int64_t> &shape() const { return tensor_->shape; }
  size_t element_count() const { return tensor_->data.size(); }
  Key key(size_t i) const { return data_[i]; }
  float value(size_t i) const { return data_[i]; }
  float value_of_key(Key key) const { return key; }
  // key(i) >= key_at_least(t) exactly when value(i) >= t.
  Key key_at_least(float threshold) const { return threshold; }
  // fn(value(i)) as a callable on indices.
  template <class Fn>
  auto table(Fn fn) const {
    return [data = data_, fn](size_t i) { return fn(data[i]); };
  }

 private:
  const FloatTensor *tensor_;
  const float *data_;
};

// Reads element i of a QuantizedTensor: dense values (or a view of values in order) directly; a
// view (a channels-last device output read channels-first, or in its own order with the channel
// padding skipped) through i / plane and i % plane by multiplication with a precomputed 64-bit
// reciprocal (Lemire's fastmod, exact for 32-bit i and plane) instead of a division per read, the
// scans' hot path.
class QuantizedReader {
 public:
  explicit QuantizedReader(const QuantizedTensor &tensor)
      : data_(tensor.view ? nullptr : tensor.data.data()), tensor_(&tensor) {
    // A view of values in order (element i at view[i]) reads as dense values.
    if (tensor.view && tensor.view_plane == tensor.element_count() &&
        (tensor.view_rows || tensor.view_row_stride == 1)) {
      data_ = tensor.view;
      return;
    }
    // (A plane of 1 would need the reciprocal 2^64.)
    if (!tensor.view || tensor.element_count() > UINT32_MAX || tensor.view_plane < 2) return;
    view_ = tensor.view;
    plane_ = static_cast<uint32_t>(tensor.view_plane);
    rows_ = tensor.view_rows;
    // Address = quotient * quotient_stride_ + remainder * remainder_stride_.
    quotient_stride_ = rows_ ? tensor.view_row_stride : 1;
    remainder_stride_ = rows_ ? 1 : tensor.view_row_stride;
    plane_reciprocal_ = UINT64_MAX / plane_ + 1;
  }
  int8_t operator()(size_t i) const {
    if (data_) return data_[i];
    if (!view_) return tensor_->at(i);
    const uint64_t fraction = plane_reciprocal_ * static_cast<uint32_t>(i);
    const auto quotient = static_cast<uint32_t>(
        (static_cast<unsigned __int128>(plane_reciprocal_) * static_cast<uint32_t>(i)) >> 64);
    const auto remainder =
        static_cast<uint32_t>((static_cast<unsigned __int128>(fraction) * plane_) >> 64);
    return view_[size_t(quotient) * quotient_stride_ + size_t(remainder) * remainder_stride_];
  }
  // Where the `count` elements first, first + stride, ... lie next to each other in memory, their
  // address: dense values read in order, a channels-first view read across channels
  // (stride = plane), i.e. along a channels-last row, or a view in its own order read within one
  // row. nullptr otherwise.
  const int8_t *run(size_t first, size_t stride, size_t count) const {
    if (data_) return stride == 1 ? data_ + first : nullptr;
    if (!view_) return nullptr;
    if (rows_)
      return stride == 1 && first % plane_ + count <= plane_
                 ? &view_[size_t(first / plane_) * quotient_stride_ + first % plane_]
                 : nullptr;
    if (stride != plane_) return nullptr;
    return &view_[size_t(first % plane_) * remainder_stride_ + first / plane_];
  }

 private:
  const int8_t *data_;
  const QuantizedTensor *tensor_;
  const int8_t *view_ = nullptr;
  uint32_t plane_ = 0;
  bool rows_ = false;
  size_t quotient_stride_ = 0, remainder_stride_ = 0;
  uint64_t plane_reciprocal_ = 0;
};

class QuantizedView {
 public:
  using Key = int;
  explicit QuantizedView(const QuantizedTensor &tensor) : tensor_(&tensor), read_(tensor) {}
  const std::string &name() const { return tensor_->name; }
  const std::vector<int64_t> &shape() const { return tensor_->shape; }
  size_t element_count() const { return tensor_->element_count(); }
  Key key(size_t i) const { return read_(i); }
  float value(size_t i) const { return tensor_->dequantize(read_(i)); }
  float value_of_key(Key key) const { return tensor_->dequantize(static_cast<int8_t>(key)); }
  // What one step of the int8 key is worth in value.
  float scale() const { return tensor_->scale; }
  const int8_t *run(size_t first, size_t stride, size_t count) const {
    return read_.run(first, stride, count);
  }
  // The smallest int8 whose value reaches the threshold (128: none does).
  Key key_at_least(float threshold) const {
    for (int q = -128; q <= 127; ++q)
      if (tensor_->dequantize(static_cast<int8_t>(q)) >= threshold) return q;
    return 128;
  }
  template <class Fn>
  auto table(Fn fn) const {
    std::array<float, 256> lut;
    for (int q = -128; q <= 127; ++q)
      lut[q + 128] = fn(tensor_->dequantize(static_cast<int8_t>(q)));
    return [read = read_, lut](size_t i) { return lut[read(i) + 128]; };
  }

 private:
  const QuantizedTensor *tensor_;
  QuantizedReader read_;
};

template <class View, class Tensor>
std::vector<View> views_of(const std::vector<Tensor> &tensors) {
  std::vector<View> views;
  views.reserve(tensors.size());
  for (const auto &t : tensors) views.emplace_back(t);
  return views;
}

// Index (0..count-1) of the largest of `count` keys strided by `stride` from `first`; the first
// of equal ones, as a float argmax over the dequantised values would pick.
template <class View>
int best_key(const View &view, size_t first, int count, size_t stride = 1);

// On int8 elements next to each other in memory (a channels-last row read across channels): a
// plain scan the compiler vectorises, then the first index of the maximum.
inline int best_key(const QuantizedView &view, size_t first, int count, size_t stride = 1) {
  if (const int8_t *run = view.run(first, stride, size_t(count))) {
    int8_t most = run[0];
    for (int c = 1; c < count; ++c) most = std::max(most, run[c]);
    int best = 0;
    while (run[best] != most) ++best;
    return best;
  }
  return best_key<QuantizedView>(view, first, count, stride);
}

template <class View>
int best_key(const View &view, size_t first, int count, size_t stride) {
  int best = 0;
  auto best_key = view.key(first);
  for (int c = 1; c < count; ++c) {
    const auto k = view.key(first + size_t(c) * stride);
    if (k > best_key) {
      best_key = k;
      best = c;
    }
  }
  return best;
}

}  // namespace axstream::decoders::detail
