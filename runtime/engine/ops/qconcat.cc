// axstream.QConcat: Concat of int8/uint8 tensors into one quantised output (made by passes.cc
// from DequantizeLinear -> Concat -> QuantizeLinear). Inputs: x_0..x_{k-1}, then per input a
// 256-entry requantisation table (constant, the output's type) or none when x_i already has
// the output's parameters. With _nhwc=1 the 4-D tensors are NHWC and the axis is C (1); a
// constant input of one byte repeated (a channel Pad's zero points) is a fill, the same in
// either layout.
#include <algorithm>
#include <array>
#include <cstring>

#include "byte_lookup.h"
#include "common.h"

namespace axstream::engine {
namespace {

std::unique_ptr<Kernel> compile_qconcat(OpContext &ctx) {
  if (ctx.input_count() < 2 || ctx.input_count() % 2)
    ctx.fail("QConcat takes k inputs and k tables, got " + std::to_string(ctx.input_count()));
  size_t k = ctx.input_count() / 2;
  for (size_t i = 0; i < k; ++i)
    if (!ctx.has_input(i)) ctx.fail("QConcat input " + std::to_string(i) + " is missing");
  const Shape &first = ctx.in_shape(0);
  int64_t axis = ctx.axis(ctx.attr_i("axis", 0), first.size());
  Shape out = first;
  out[axis] = 0;
  for (size_t i = 0; i < k; ++i) {
    const Shape &s = ctx.in_shape(i);
    bool fits = s.size() == first.size();
    for (size_t d = 0; fits && d < s.size(); ++d)
      fits = static_cast<int64_t>(d) == axis || s[d] == first[d];
    if (!fits)
      ctx.fail("input " + std::to_string(i) + " " + shape_str(s) + " does not concatenate with " +
               shape_str(first) + " on axis " + std::to_string(axis));
    out[axis] += s[axis];
  }
  DType y_type = ctx.attr_i("_out_int8", 1) ? DType::i8 : DType::u8;
  ctx.set_output(0, y_type, out);
  if (ctx.infer_only()) return nullptr;
  bool nhwc = ctx.attr_i("_nhwc", 0) != 0;
  if (nhwc && (first.size() != 4 || axis != 1)) ctx.fail("_nhwc needs 4-D inputs and axis 1");
  struct Part {
    int64_t bytes;  // per outer step
    bool lookup;
    bool fill;  // a constant of one byte repeated, `fill_byte`
    uint8_t fill_byte;
    uint8_t flip;
    std::array<uint8_t, 256> table;
  };
  std::vector<Part> parts(k);
  for (size_t i = 0; i < k; ++i) {
    DType t = ctx.in_dtype(i);
    if (t != DType::i8 && t != DType::u8)
      ctx.unsupported("QConcat of " + std::string(dtype_name(t)));
    const Shape &s = ctx.in_shape(i);
    parts[i].bytes = nhwc ? s[1] : product(s, axis, s.size());
    parts[i].lookup = ctx.has_input(k + i);
    parts[i].flip = t == DType::i8 ? 0x80 : 0;  // int8 x indexes from -128
    if (parts[i].lookup) {
      const Tensor &table = ctx.require_constant(k + i, "table");
      if (table.count() != 256 || table.dtype != y_type)
        ctx.fail("table " + std::to_string(i) + " must hold 256 values of the output type");
      std::copy(table.bytes.begin(), table.bytes.begin() + 256, parts[i].table.begin());
    } else if (t != y_type) {
      ctx.fail("input " + std::to_string(i) + " has another type than the output and no table");
    } else if (const Tensor *c = ctx.constant(i); c && c->is_one_repeated_int8()) {
      parts[i].fill = true;
      parts[i].fill_byte = c->bytes.front();
    }
  }
  int64_t outer = nhwc ? out[0] * out[2] * out[3] : product(out, 0, axis);
  int64_t count = product(out, 0, out.size());
  auto kern = make_kernel([parts, outer, k](ExecContext &, const void *const *in, void *const *o) {
    uint8_t *y = static_cast<uint8_t *>(o[0]);
    for (int64_t step = 0; step < outer; ++step)
      for (size_t i = 0; i < k; ++i) {
        const Part &p = parts[i];
        const uint8_t *x = static_cast<const uint8_t *>(in[i]) + step * p.bytes;
        if (p.fill)
          std::memset(y, p.fill_byte, static_cast<size_t>(p.bytes));
        else if (p.lookup)
          byte_lookup(x, y, p.bytes, p.table.data(), p.flip);
        else
          std::memcpy(y, x, static_cast<size_t>(p.bytes));
        y += p.bytes;
      }
  });
  kern->macs = static_cast<uint64_t>(count);
  kern->impl = nhwc ? "int8 copy/requantise nhwc" : "int8 copy/requantise";
  return kern;
}

}  // namespace

AXSTREAM_ENGINE_OP_EX(AxQConcat, "axstream", "QConcat", 1, 1, compile_qconcat, false)

}  // namespace axstream::engine
