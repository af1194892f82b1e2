// Indexed reads and writes: GatherND, ScatterND, ScatterElements (and its opset 9-10 name
// Scatter). Indices are int32 or int64, negative ones count from the end; any data dtype.
#include <cstring>
#include <optional>
#include <type_traits>

#include "common.h"

namespace axstream::engine {
namespace {

// Reads index i of an int32 or int64 indices tensor.
inline int64_t index_at(const void *indices, DType dtype, int64_t i) {
  return dtype == DType::i64 ? static_cast<const int64_t *>(indices)[i]
                             : static_cast<const int32_t *>(indices)[i];
}

DType check_indices(OpContext &ctx, size_t input) {
  DType it = ctx.in_dtype(input);
  if (it != DType::i32 && it != DType::i64)
    ctx.fail(std::string("indices must be int32 or int64, got ") + dtype_name(it));
  return it;
}

// Normalises a possibly negative index into [0, len) or throws naming the node.
inline int64_t checked_index(int64_t i, int64_t len, const std::string &where) {
  if (i < 0) i += len;
  if (i < 0 || i >= len)
    throw InvalidArgument(where + ": index " + std::to_string(i < 0 ? i - len : i) +
                          " out of range for a dim of size " + std::to_string(len));
  return i;
}

enum class Reduction { none, add, mul, max, min };

// The `reduction` attribute of a scatter of `data` (bool data takes only none).
Reduction reduction_of(OpContext &ctx, DType data) {
  std::string r = ctx.attr_s("reduction", "none");
  if (data == DType::bool_ && r != "none") ctx.unsupported("reduction on bool data");
  if (r == "none") return Reduction::none;
  if (r == "add") return Reduction::add;
  if (r == "mul") return Reduction::mul;
  if (r == "max") return Reduction::max;
  if (r == "min") return Reduction::min;
  ctx.fail("reduction '" + r + "' is not one of none, add, mul, max, min");
}

// A scatter's output starts as its data: copied unless the planner gave them one buffer (an
// empty tensor's pointers may be null).
template <typename T>
inline void copy_data(T *y, const T *data, int64_t count) {
  if (count && y != data) std::memcpy(y, data, static_cast<size_t>(count) * sizeof(T));
}

// dst = src, or dst combined with src by the reduction; bool data accepts only none.
template <typename T>
inline void combine(T &dst, T src, Reduction reduction) {
  if constexpr (std::is_same_v<T, bool>) {
    dst = src;
  } else {
    switch (reduction) {
      case Reduction::none:
        dst = src;
        return;
      case Reduction::add:
        dst = static_cast<T>(dst + src);
        return;
      case Reduction::mul:
        dst = static_cast<T>(dst * src);
        return;
      case Reduction::max:
        dst = std::max(dst, src);
        return;
      case Reduction::min:
        dst = std::min(dst, src);
        return;
    }
  }
}

struct ScatterTypes {
  DType data, indices;
  Reduction reduction;
};

// The rest of what ScatterND and ScatterElements check alike once their inputs are (updates of
// data's dtype included): the output gets data's dtype and shape; nullopt when only inferring,
// else the indices' dtype and the reduction too.
std::optional<ScatterTypes> scatter_types(OpContext &ctx, const Shape &data_shape) {
  const DType data = ctx.in_dtype(0);
  ctx.set_output(0, data, data_shape);
  if (ctx.infer_only()) return std::nullopt;
  // Braced initialisers run in order: the indices are checked before the reduction.
  return ScatterTypes{data, check_indices(ctx, 1), reduction_of(ctx, data)};
}

// A scatter's kernel: y starts as data (input 0), then `scatter(updates, y, indices)` applies
// updates (input 2) at the indices (input 1), both typed as data's dtype.
template <typename Scatter>
std::unique_ptr<Kernel> make_scatter_kernel(DType dt, int64_t total, Scatter scatter) {
  return make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
    dispatch_dtype(dt, [&](auto zero) {
      using T = decltype(zero);
      T *y = static_cast<T *>(o[0]);
      copy_data(y, static_cast<const T *>(in[0]), total);
      scatter(static_cast<const T *>(in[2]), y, in[1]);
    });
  });
}

// GatherND: each index tuple of the last indices dim selects a slice of data (after
// batch_dims leading dims shared by data and indices); one memcpy per tuple.
std::unique_ptr<Kernel> compile_gather_nd(OpContext &ctx) {
  ctx.expect_inputs(2, 2);
  const Shape &ds = ctx.in_shape(0), &is = ctx.in_shape(1);
  int64_t batch_dims = ctx.attr_i("batch_dims", 0);
  int64_t rd = static_cast<int64_t>(ds.size()), ri = static_cast<int64_t>(is.size());
  if (ri < 1 || rd < 1) ctx.fail("data and indices must have rank >= 1");
  if (batch_dims < 0 || batch_dims >= std::min(rd, ri))
    ctx.fail("batch_dims " + std::to_string(batch_dims) + " must be in [0, min(rank(data), " +
             "rank(indices)) = " + std::to_string(std::min(rd, ri)) + ")");
  for (int64_t d = 0; d < batch_dims; ++d)
    if (ds[d] != is[d])
      ctx.fail("batch dim " + std::to_string(d) + " differs: data " + shape_str(ds) + ", indices " +
               shape_str(is));
  int64_t tuple = is.back();
  if (tuple < 1 || tuple > rd - batch_dims)
    ctx.fail("the last indices dim (" + std::to_string(tuple) + ") must be in [1, " +
             std::to_string(rd - batch_dims) + "] for data " + shape_str(ds));
  Shape out(is.begin(), is.end() - 1);
  out.insert(out.end(), ds.begin() + batch_dims + tuple, ds.end());
  ctx.set_output(0, ctx.in_dtype(0), out);
  if (ctx.infer_only()) return nullptr;
  DType it = check_indices(ctx, 1);
  int64_t batches = product(ds, 0, batch_dims);
  int64_t tuples_per_batch = product(is, batch_dims, is.size() - 1);
  int64_t slice = product(ds, batch_dims + tuple, ds.size());
  int64_t batch_stride = product(ds, batch_dims, ds.size());
  Shape dims(ds.begin() + batch_dims, ds.begin() + batch_dims + tuple), steps(tuple);
  for (int64_t j = 0; j < tuple; ++j) steps[j] = product(ds, batch_dims + j + 1, ds.size());
  const int64_t element_bytes = static_cast<int64_t>(dtype_size(ctx.in_dtype(0)));
  size_t slice_bytes = static_cast<size_t>(slice * element_bytes);
  std::string where = ctx.where();
  return make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
    const uint8_t *x = static_cast<const uint8_t *>(in[0]);
    uint8_t *y = static_cast<uint8_t *>(o[0]);
    int64_t t = 0;
    for (int64_t b = 0; b < batches; ++b)
      for (int64_t k = 0; k < tuples_per_batch; ++k, ++t) {
        int64_t offset = b * batch_stride;
        for (int64_t j = 0; j < tuple; ++j)
          offset += checked_index(index_at(in[1], it, t * tuple + j), dims[j], where) * steps[j];
        // An empty slice (a zero dim in data) is no copy: its pointers may be null.
        if (slice_bytes) std::memcpy(y + t * slice_bytes, x + offset * element_bytes, slice_bytes);
      }
  });
}

// ScatterND: a copy of data with the slice each index tuple selects replaced by (or reduced
// with) the matching slice of updates, tuples applied in order.
std::unique_ptr<Kernel> compile_scatter_nd(OpContext &ctx) {
  ctx.expect_inputs(3, 3);
  const Shape &ds = ctx.in_shape(0), &is = ctx.in_shape(1), &us = ctx.in_shape(2);
  if (is.empty()) ctx.fail("indices must have rank >= 1");
  int64_t tuple = is.back(), rd = static_cast<int64_t>(ds.size());
  if (tuple < 1 || tuple > rd)
    ctx.fail("the last indices dim (" + std::to_string(tuple) + ") must be in [1, " +
             std::to_string(rd) + "] for data " + shape_str(ds));
  Shape expected(is.begin(), is.end() - 1);
  expected.insert(expected.end(), ds.begin() + tuple, ds.end());
  if (us != expected)
    ctx.fail("updates " + shape_str(us) + " must have shape " + shape_str(expected) + " (indices " +
             shape_str(is) + ", data " + shape_str(ds) + ")");
  if (ctx.in_dtype(2) != ctx.in_dtype(0)) ctx.fail("updates and data dtypes differ");
  std::optional<ScatterTypes> types = scatter_types(ctx, ds);
  if (!types) return nullptr;
  const DType dt = types->data, it = types->indices;
  const Reduction reduction = types->reduction;
  int64_t tuples = product(is, 0, is.size() - 1), slice = product(ds, tuple, ds.size());
  int64_t total = product(ds, 0, ds.size());
  Shape dims(ds.begin(), ds.begin() + tuple), steps(tuple);
  for (int64_t j = 0; j < tuple; ++j) steps[j] = product(ds, j + 1, ds.size());
  std::string where = ctx.where();
  return make_scatter_kernel(dt, total, [=](const auto *updates, auto *y, const void *indices) {
    using T = std::remove_pointer_t<decltype(y)>;
    for (int64_t t = 0; t < tuples; ++t) {
      int64_t offset = 0;
      for (int64_t j = 0; j < tuple; ++j)
        offset += checked_index(index_at(indices, it, t * tuple + j), dims[j], where) * steps[j];
      const T *u = updates + t * slice;
      if (reduction == Reduction::none && slice)
        std::memcpy(y + offset, u, static_cast<size_t>(slice) * sizeof(T));
      else
        for (int64_t e = 0; e < slice; ++e) combine(y[offset + e], u[e], reduction);
    }
  });
}

// ScatterElements (and Scatter): y = data, then y[idx with idx[axis] = indices[idx]] =
// updates[idx] (or reduced with it) for every idx of indices, in order.
std::unique_ptr<Kernel> compile_scatter_elements(OpContext &ctx) {
  ctx.expect_inputs(3, 3);
  const Shape &ds = ctx.in_shape(0), &is = ctx.in_shape(1), &us = ctx.in_shape(2);
  if (is != us) ctx.fail("indices " + shape_str(is) + " and updates " + shape_str(us) + " differ");
  if (is.size() != ds.size())
    ctx.fail("indices " + shape_str(is) + " and data " + shape_str(ds) + " ranks differ");
  if (ds.empty()) ctx.fail("data must have rank >= 1");
  for (size_t d = 0; d < ds.size(); ++d)
    if (is[d] > ds[d])
      ctx.fail("indices " + shape_str(is) + " exceed data " + shape_str(ds) + " in dim " +
               std::to_string(d));
  if (ctx.in_dtype(2) != ctx.in_dtype(0)) ctx.fail("updates and data dtypes differ");
  int64_t axis = ctx.axis(ctx.attr_i("axis", 0), ds.size());
  std::optional<ScatterTypes> types = scatter_types(ctx, ds);
  if (!types) return nullptr;
  const DType dt = types->data, it = types->indices;
  const Reduction reduction = types->reduction;
  Shape dstride = strides_of(ds);
  int64_t total = product(ds, 0, ds.size()), count = product(is, 0, is.size());
  int64_t len = ds[axis], rank = static_cast<int64_t>(is.size());
  std::string where = ctx.where();
  return make_scatter_kernel(dt, total, [=](const auto *updates, auto *y, const void *indices) {
    // Walk indices' coordinates incrementally; `base` is the data offset without the axis.
    Shape coord(static_cast<size_t>(rank), 0);
    int64_t base = 0;
    for (int64_t i = 0; i < count; ++i) {
      int64_t target = checked_index(index_at(indices, it, i), len, where);
      combine(y[base + target * dstride[axis]], updates[i], reduction);
      for (int64_t d = rank - 1; d >= 0; --d) {
        int64_t step = d == axis ? 0 : dstride[d];
        if (++coord[d] < is[d]) {
          base += step;
          break;
        }
        base -= step * (is[d] - 1);
        coord[d] = 0;
      }
    }
  });
}

}  // namespace

AXSTREAM_ENGINE_DATA_OP(GatherND, "GatherND", 11, 17, compile_gather_nd, false)
AXSTREAM_ENGINE_OP(ScatterND, "ScatterND", 11, 17, compile_scatter_nd)
AXSTREAM_ENGINE_OP(ScatterElements, "ScatterElements", 11, 17, compile_scatter_elements)
AXSTREAM_ENGINE_OP(Scatter, "Scatter", 9, 10, compile_scatter_elements)

}  // namespace axstream::engine
