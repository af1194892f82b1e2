// Concat and Split along one axis (any dtype).
#include "common.h"
#include "copy_runs.h"

namespace axstream::engine {
namespace {

std::unique_ptr<Kernel> compile_concat(OpContext &ctx) {
  ctx.expect_inputs(1, 4096);
  const Shape &first = ctx.in_shape(0);
  int64_t axis = ctx.axis(ctx.attr_i("axis", 1), first.size());
  DType dt = ctx.in_dtype(0);
  Shape out = first;
  out[axis] = 0;
  std::vector<int64_t> widths;
  for (size_t i = 0; i < ctx.input_count(); ++i) {
    const Shape &s = ctx.in_shape(i);
    if (ctx.in_dtype(i) != dt) ctx.fail("input " + std::to_string(i) + " has a different dtype");
    if (s.size() != first.size())
      ctx.fail("input " + std::to_string(i) + " has rank " + std::to_string(s.size()));
    for (size_t d = 0; d < s.size(); ++d)
      if (static_cast<int64_t>(d) != axis && s[d] != first[d])
        ctx.fail("input " + std::to_string(i) + " shape " + shape_str(s) + " does not match " +
                 shape_str(first));
    out[axis] += s[axis];
  }
  ctx.set_output(0, dt, out);
  if (ctx.infer_only()) return nullptr;
  // passes.cc keeps a mixed-precision model's float blocks NHWC: the tensors are then laid out
  // (N,H,W,C), so the copy runs over those dims and along the NCHW axis' place among them. A
  // constant input is still NCHW (constants keep the graph's layout): turned once, here.
  const bool nhwc = ctx.attr_i("_nhwc", 0) != 0;
  if (nhwc && first.size() != 4) ctx.fail("_nhwc needs 4-D inputs, got " + shape_str(first));
  auto laid_out = [nhwc](const Shape &s) { return nhwc ? Shape{s[0], s[2], s[3], s[1]} : s; };
  const int64_t nhwc_axis[4] = {0, 3, 1, 2};
  const Shape first_laid = laid_out(first);
  const int64_t laid_axis = nhwc ? nhwc_axis[axis] : axis;
  const size_t elem = dtype_size(dt);
  int64_t outer = product(first_laid, 0, laid_axis);
  size_t inner_bytes =
      static_cast<size_t>(product(first_laid, laid_axis + 1, first_laid.size())) * elem;
  std::vector<size_t> chunk;
  std::vector<std::shared_ptr<const std::vector<uint8_t>>> turned(ctx.input_count());
  for (size_t i = 0; i < ctx.input_count(); ++i) {
    const Shape &s = ctx.in_shape(i);
    chunk.push_back(s[axis] * inner_bytes);
    const Tensor *constant = nhwc ? ctx.constant(i) : nullptr;
    if (!constant) continue;
    auto bytes = std::make_shared<std::vector<uint8_t>>(constant->bytes.size());
    const int64_t channels = s[1], pixels = s[2] * s[3];
    for (int64_t b = 0; b < s[0]; ++b)
      for (int64_t c = 0; c < channels; ++c)
        for (int64_t p = 0; p < pixels; ++p)
          std::memcpy(bytes->data() + ((b * pixels + p) * channels + c) * elem,
                      constant->bytes.data() + ((b * channels + c) * pixels + p) * elem, elem);
    turned[i] = std::move(bytes);
  }
  size_t row = static_cast<size_t>(out[axis]) * inner_bytes;
  // Each input is a run of chunk[i] bytes per outer step (an NHWC pixel's channels: tens of
  // bytes), copied by copy_runs; an input that is the whole row is one block.
  auto k = make_kernel(
      [outer, chunk, row, turned](ExecContext &, const void *const *in, void *const *o) {
        uint8_t *y = static_cast<uint8_t *>(o[0]);
        size_t offset = 0;
        for (size_t i = 0; i < chunk.size(); ++i) {
          // An empty input may have no buffer at all; memcpy from null is undefined even for 0
          // bytes.
          if (chunk[i] == 0) continue;
          const uint8_t *x = turned[i] ? turned[i]->data() : static_cast<const uint8_t *>(in[i]);
          if (outer == 1 || chunk[i] == row)
            std::memcpy(y + offset, x, chunk[i] * static_cast<size_t>(outer));
          else
            copy_runs(x, static_cast<int64_t>(chunk[i]), y + offset, static_cast<int64_t>(row),
                      static_cast<int64_t>(chunk[i]), outer);
          offset += chunk[i];
        }
      });
  if (nhwc) k->impl = "nhwc";
  return k;
}

std::unique_ptr<Kernel> compile_split(OpContext &ctx) {
  ctx.expect_inputs(1, 2);
  const Shape &in = ctx.in_shape(0);
  int64_t axis = ctx.axis(ctx.attr_i("axis", 0), in.size());
  std::vector<int64_t> split;
  if (ctx.opset() >= 13) {
    if (ctx.has_input(1)) split = ctx.constant_ints(1, "split");
  } else {
    split = ctx.attr_ints("split");
  }
  size_t n = ctx.output_count();
  if (split.empty()) {
    if (in[axis] % static_cast<int64_t>(n))
      ctx.fail("axis " + std::to_string(axis) + " of " + shape_str(in) +
               " does not split evenly into " + std::to_string(n));
    split.assign(n, in[axis] / static_cast<int64_t>(n));
  }
  if (split.size() != n)
    ctx.fail("split has " + std::to_string(split.size()) + " entries for " + std::to_string(n) +
             " outputs");
  int64_t sum = 0;
  for (size_t i = 0; i < n; ++i) {
    Shape s = in;
    s[axis] = split[i];
    sum += split[i];
    ctx.set_output(i, ctx.in_dtype(0), s);
  }
  if (sum != in[axis])
    ctx.fail("split sizes add up to " + std::to_string(sum) + ", axis has " +
             std::to_string(in[axis]));
  if (ctx.infer_only()) return nullptr;
  // passes.cc keeps an int8 Split along channels NHWC with its neighbours (fuse_qdq_split):
  // the tensors are then laid out (N,H,W,C) and each pixel's channels are cut into the parts.
  const bool nhwc = ctx.attr_i("_nhwc", 0) != 0;
  if (nhwc && in.size() != 4) ctx.fail("_nhwc needs a 4-D input, got " + shape_str(in));
  const Shape laid = nhwc ? Shape{in[0], in[2], in[3], in[1]} : in;
  const int64_t nhwc_axis[4] = {0, 3, 1, 2};
  const int64_t laid_axis = nhwc ? nhwc_axis[axis] : axis;
  int64_t outer = product(laid, 0, laid_axis);
  size_t inner_bytes =
      static_cast<size_t>(product(laid, laid_axis + 1, laid.size())) * dtype_size(ctx.in_dtype(0));
  std::vector<size_t> chunk;
  for (int64_t s : split) chunk.push_back(static_cast<size_t>(s) * inner_bytes);
  size_t row = static_cast<size_t>(in[axis]) * inner_bytes;
  auto k = make_kernel([outer, chunk, row](ExecContext &, const void *const *in, void *const *o) {
    const uint8_t *x = static_cast<const uint8_t *>(in[0]);
    size_t offset = 0;
    for (size_t i = 0; i < chunk.size(); ++i) {
      if (chunk[i] == 0) continue;  // empty outputs (and inputs) may have no buffer at all
      uint8_t *y = static_cast<uint8_t *>(o[i]);
      if (outer == 1 || chunk[i] == row)
        std::memcpy(y, x + offset, chunk[i] * static_cast<size_t>(outer));
      else
        copy_runs(x + offset, static_cast<int64_t>(row), y, static_cast<int64_t>(chunk[i]),
                  static_cast<int64_t>(chunk[i]), outer);
      offset += chunk[i];
    }
  });
  if (nhwc) k->impl = "nhwc";
  return k;
}

}  // namespace

AXSTREAM_ENGINE_DATA_OP(Concat, "Concat", 4, 17, compile_concat, false)
AXSTREAM_ENGINE_DATA_OP(Split, "Split", 2, 17, compile_split, false)

}  // namespace axstream::engine
