// NonZero and Unique: ops whose output shape depends on the input values. Their outputs are
// upper-bound outputs (OpContext::set_output_upper_bound): the kernel writes the dense result
// at the buffer's start and reports its shape. On a constant input they fold to their exact
// result (NonZero in exported graphs' shape and mask arithmetic).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "common.h"

namespace axstream::engine {
namespace {

// NonZero: the (rank, count) int64 coordinates of the non-zero elements in row-major order
// (NaN is non-zero, -0.0 zero), at most (rank, element count).
std::unique_ptr<Kernel> compile_non_zero(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  const Shape shape = ctx.in_shape(0);
  if (shape.empty()) ctx.unsupported("a scalar input");
  const DType dtype = ctx.in_dtype(0);
  const int64_t rank = static_cast<int64_t>(shape.size());
  const int64_t count = checked_element_count(shape, ctx.label() + " input");
  ctx.set_output_upper_bound(0, DType::i64, {rank, count});
  if (ctx.infer_only()) return nullptr;
  return make_kernel(
      [shape, dtype, rank, count](ExecContext &exec, const void *const *in, void *const *out) {
        std::vector<int64_t> found;
        for (int64_t i = 0; i < count; ++i)
          if (load_as_double(in[0], dtype, i) != 0.0) found.push_back(i);
        const int64_t found_count = static_cast<int64_t>(found.size());
        auto *coordinates = static_cast<int64_t *>(out[0]);
        // Row d holds dimension d of every element: its index divided down to that dimension.
        for (int64_t j = 0; j < found_count; ++j) {
          int64_t rest = found[static_cast<size_t>(j)];
          for (int64_t d = rank - 1; d >= 0; --d) {
            coordinates[d * found_count + j] = rest % shape[static_cast<size_t>(d)];
            rest /= shape[static_cast<size_t>(d)];
          }
        }
        exec.output_shapes[0] = {rank, found_count};
      });
}

// Unique's slices: along `axis` (slice k is every element whose axis coordinate is k, in
// row-major order of the others), or each element of the flattened input without one.
struct UniqueLayout {
  int64_t outer = 1, slices = 1, inner = 1;  // input = (outer, slices, inner)
  size_t element_bytes = 0;
};

// The input's elements as keys compared exactly: integers as int64 (a double would merge large
// int64 values) and uint64 as itself, floating types as double (exact for every one of them).
// NaN sorts last and equals NaN, as numpy.unique orders and merges them.
template <typename Key>
bool key_less(Key a, Key b) {
  if constexpr (std::is_floating_point_v<Key>) {
    if (std::isnan(a)) return false;
    if (std::isnan(b)) return true;
  }
  return a < b;
}
template <typename Key>
bool key_equal(Key a, Key b) {
  if constexpr (std::is_floating_point_v<Key>)
    if (std::isnan(a) && std::isnan(b)) return true;
  return a == b;
}

// Writes Y, indices, inverse_indices and counts (those the node lists) and their shapes.
template <typename Key>
void run_unique(const std::vector<Key> &keys, const UniqueLayout &layout, bool sorted,
                const Shape &y_shape_template, int64_t axis, size_t output_count, ExecContext &exec,
                const void *input, void *const *out) {
  const int64_t n = layout.slices, outer = layout.outer, inner = layout.inner;
  auto key = [&](int64_t slice, int64_t o, int64_t i) {
    return keys[static_cast<size_t>((o * n + slice) * inner + i)];
  };
  auto slice_compare = [&](int64_t x, int64_t y) {  // -1, 0, 1 lexicographically
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const Key a = key(x, o, i), b = key(y, o, i);
        if (key_equal(a, b)) continue;
        return key_less(a, b) ? -1 : 1;
      }
    return 0;
  };
  // Equal slices end up adjacent, the first occurrence first (the sort is stable).
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t x, int64_t y) { return slice_compare(x, y) < 0; });
  std::vector<int64_t> first, counts, group_of(static_cast<size_t>(n));
  for (size_t k = 0; k < order.size(); ++k) {
    if (k == 0 || slice_compare(order[k - 1], order[k]) != 0) {
      first.push_back(order[k]);
      counts.push_back(0);
    }
    group_of[static_cast<size_t>(order[k])] = static_cast<int64_t>(first.size()) - 1;
    ++counts.back();
  }
  const int64_t unique_count = static_cast<int64_t>(first.size());
  // Output position of each group: sorted order, or order of first occurrence.
  std::vector<int64_t> groups(first.size()), position(first.size());
  std::iota(groups.begin(), groups.end(), 0);
  if (!sorted)
    std::sort(groups.begin(), groups.end(), [&](int64_t x, int64_t y) {
      return first[static_cast<size_t>(x)] < first[static_cast<size_t>(y)];
    });
  for (size_t p = 0; p < groups.size(); ++p) position[static_cast<size_t>(groups[p])] = int64_t(p);

  const size_t slice_bytes = static_cast<size_t>(inner) * layout.element_bytes;
  auto *y = static_cast<uint8_t *>(out[0]);
  const auto *x = static_cast<const uint8_t *>(input);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t p = 0; p < unique_count; ++p)
      std::memcpy(
          y + static_cast<size_t>(o * unique_count + p) * slice_bytes,
          x + static_cast<size_t>(o * n + first[static_cast<size_t>(groups[p])]) * slice_bytes,
          slice_bytes);
  Shape y_shape = y_shape_template;
  if (axis >= 0)
    y_shape[static_cast<size_t>(axis)] = unique_count;
  else
    y_shape = {unique_count};
  exec.output_shapes[0] = y_shape;
  if (output_count > 1) {
    auto *indices = static_cast<int64_t *>(out[1]);
    for (int64_t p = 0; p < unique_count; ++p) indices[p] = first[static_cast<size_t>(groups[p])];
    exec.output_shapes[1] = {unique_count};
  }
  if (output_count > 2) {
    auto *inverse = static_cast<int64_t *>(out[2]);
    for (int64_t k = 0; k < n; ++k)
      inverse[k] = position[static_cast<size_t>(group_of[static_cast<size_t>(k)])];
    exec.output_shapes[2] = {n};
  }
  if (output_count > 3) {
    auto *count_out = static_cast<int64_t *>(out[3]);
    for (int64_t p = 0; p < unique_count; ++p)
      count_out[p] = counts[static_cast<size_t>(groups[p])];
    exec.output_shapes[3] = {unique_count};
  }
}

// Unique (opset 11): the distinct elements, or slices along `axis`, sorted (default) or in order
// of first occurrence, with the index of each one's first occurrence, each input element's or
// slice's position in Y, and how often each occurs.
std::unique_ptr<Kernel> compile_unique(OpContext &ctx) {
  ctx.expect_inputs(1, 1);
  if (ctx.output_count() < 1 || ctx.output_count() > 4)
    ctx.fail("expected 1..4 outputs, got " + std::to_string(ctx.output_count()));
  const Shape shape = ctx.in_shape(0);
  const DType dtype = ctx.in_dtype(0);
  const bool sorted = ctx.attr_i("sorted", 1) != 0;
  const int64_t total = checked_element_count(shape, ctx.label() + " input");
  UniqueLayout layout;
  layout.element_bytes = dtype_size(dtype);
  int64_t axis = -1;
  if (ctx.has_attr("axis")) {
    if (shape.empty()) ctx.fail("axis given for a scalar input");
    axis = ctx.axis(ctx.attr_i("axis", 0), shape.size());
    for (int64_t d = 0; d < axis; ++d) layout.outer *= shape[static_cast<size_t>(d)];
    layout.slices = shape[static_cast<size_t>(axis)];
    for (size_t d = static_cast<size_t>(axis) + 1; d < shape.size(); ++d) layout.inner *= shape[d];
  } else {
    layout.slices = total;
  }
  const int64_t n = layout.slices;
  ctx.set_output_upper_bound(0, dtype, axis >= 0 ? shape : Shape{total});
  if (ctx.output_count() > 1) ctx.set_output_upper_bound(1, DType::i64, {n});
  if (ctx.output_count() > 2) ctx.set_output(2, DType::i64, {n});
  if (ctx.output_count() > 3) ctx.set_output_upper_bound(3, DType::i64, {n});
  if (ctx.infer_only()) return nullptr;
  const size_t output_count = ctx.output_count();
  const bool floating = is_floating_dtype(dtype);
  return make_kernel([=](ExecContext &exec, const void *const *in, void *const *out) {
    if (floating) {
      std::vector<double> keys(static_cast<size_t>(total));
      for (int64_t i = 0; i < total; ++i)
        keys[static_cast<size_t>(i)] = load_as_double(in[0], dtype, i);
      run_unique(keys, layout, sorted, shape, axis, output_count, exec, in[0], out);
      return;
    }
    if (dtype == DType::u64) {  // above 2^63 as int64 they would sort first
      const auto *x = static_cast<const uint64_t *>(in[0]);
      run_unique(std::vector<uint64_t>(x, x + total), layout, sorted, shape, axis, output_count,
                 exec, in[0], out);
      return;
    }
    std::vector<int64_t> keys(static_cast<size_t>(total));
    dispatch_dtype_and_opt_in_integers(dtype, [&](auto zero) {
      using T = decltype(zero);
      const T *x = static_cast<const T *>(in[0]);
      for (int64_t i = 0; i < total; ++i) keys[static_cast<size_t>(i)] = static_cast<int64_t>(x[i]);
    });
    run_unique(keys, layout, sorted, shape, axis, output_count, exec, in[0], out);
  });
}

}  // namespace

AXSTREAM_ENGINE_DATA_OP(NonZero, "NonZero", 9, 17, compile_non_zero, false)
AXSTREAM_ENGINE_DATA_OP(Unique, "Unique", 11, 17, compile_unique, false)

}  // namespace axstream::engine
