// TopK: the k largest (or smallest) values along an axis and their int64 indices, sorted, ties
// broken by the lower index (ONNX's rule).
#include <algorithm>

#include "common.h"

namespace axstream::engine {
namespace {

std::unique_ptr<Kernel> compile_topk(OpContext &ctx) {
  // Opset 1 has k as an attribute; from opset 10 it is a one-element int64 input.
  int64_t k = 0;
  if (ctx.opset() < 10) {
    ctx.expect_inputs(1, 1);
    if (!ctx.has_attr("k")) ctx.fail("attribute k is required");
    k = ctx.attr_i("k", 0);
  } else {
    ctx.expect_inputs(2, 2);
    std::vector<int64_t> ks = ctx.constant_ints(1, "K");
    if (ks.size() != 1) ctx.fail("K must hold one value, got " + std::to_string(ks.size()));
    k = ks[0];
  }
  const Shape &xs = ctx.in_shape(0);
  if (xs.empty()) ctx.fail("input must have rank >= 1, got a scalar");
  int64_t axis = ctx.axis(ctx.attr_i("axis", -1), xs.size());
  int64_t len = xs[axis];
  if (k < 0 || k > len)
    ctx.fail("K = " + std::to_string(k) + " is outside [0, " + std::to_string(len) +
             "] (the size of axis " + std::to_string(axis) + ")");
  bool largest = ctx.attr_i("largest", 1) != 0;
  // sorted=0 leaves the order unspecified: sorted output is one valid answer.
  DType dt = ctx.in_dtype(0);
  if (dt == DType::bool_) ctx.unsupported("dtype bool");
  Shape out = xs;
  out[axis] = k;
  ctx.set_output(0, dt, out);
  ctx.set_output(1, DType::i64, out);
  if (ctx.infer_only()) return nullptr;
  // An empty output (K = 0 or an empty dim) has nothing to write, and its buffers may be null.
  if (product(out, 0, out.size()) == 0)
    return make_kernel([](ExecContext &, const void *const *, void *const *) {});
  int64_t outer = product(xs, 0, axis), inner = product(xs, axis + 1, xs.size());
  size_t pair_bytes = 0;
  dispatch_numeric_dtype(
      dt, [&](auto zero) { pair_bytes = sizeof(std::pair<decltype(zero), int64_t>); });
  auto kernel = make_kernel([=](ExecContext &ec, const void *const *in, void *const *o) {
    dispatch_numeric_dtype(dt, [&](auto zero) {
      using T = decltype(zero);
      using Entry = std::pair<T, int64_t>;
      const T *x = static_cast<const T *>(in[0]);
      T *values = static_cast<T *>(o[0]);
      int64_t *indices = static_cast<int64_t *>(o[1]);
      Entry *entries = static_cast<Entry *>(ec.scratch);
      // NaN counts as larger than any number (numpy's order), which keeps the order strict.
      auto greater = [](T a, T b) {
        if constexpr (std::is_floating_point_v<T>)
          if (std::isnan(a) || std::isnan(b)) return !std::isnan(b);
        return a > b;
      };
      auto before = [&](const Entry &a, const Entry &b) {
        if (greater(a.first, b.first)) return largest;
        if (greater(b.first, a.first)) return !largest;
        return a.second < b.second;
      };
      for (int64_t r = 0; r < outer; ++r)
        for (int64_t c = 0; c < inner; ++c) {
          const T *line = x + r * len * inner + c;
          // A heap of the k best so far, its worst on top: most values lose one comparison
          // against the top and are never copied (O(len) on random scores, k log k to sort).
          if (k > 0) {
            for (int64_t i = 0; i < k; ++i) entries[i] = {line[i * inner], i};
            std::make_heap(entries, entries + k, before);
            T worst = entries[0].first;
            for (int64_t i = k; i < len; ++i) {
              T v = line[i * inner];
              // Strictly worse than the top: out (false for NaN, which takes the full test).
              if (largest ? v < worst : v > worst) continue;
              Entry candidate{v, i};
              if (!before(candidate, entries[0])) continue;
              std::pop_heap(entries, entries + k, before);
              entries[k - 1] = candidate;
              std::push_heap(entries, entries + k, before);
              worst = entries[0].first;
            }
            std::sort_heap(entries, entries + k, before);
          }
          T *vline = values + r * k * inner + c;
          int64_t *iline = indices + r * k * inner + c;
          for (int64_t i = 0; i < k; ++i) {
            vline[i * inner] = entries[i].first;
            iline[i * inner] = entries[i].second;
          }
        }
    });
  });
  kernel->scratch_bytes = static_cast<size_t>(k) * pair_bytes;
  return kernel;
}

}  // namespace

AXSTREAM_ENGINE_OP(TopK, "TopK", 1, 17, compile_topk)

}  // namespace axstream::engine
