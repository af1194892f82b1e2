// axstream.QLookup: an element-wise int8/uint8 -> int8/uint8 function as a 256-entry table
// (made by passes.cc from DequantizeLinear -> float element-wise ops -> QuantizeLinear, e.g.
// the SiLU x * Sigmoid(x) between quantised convolutions). Inputs: x, table (constant, 256
// values of the output type, indexed by x's value from its lowest).
#include <array>

#include "byte_lookup.h"
#include "common.h"

namespace axstream::engine {
namespace {

std::unique_ptr<Kernel> compile_qlookup(OpContext &ctx) {
  ctx.expect_inputs(2, 2);
  const Shape &shape = ctx.in_shape(0);
  DType in = ctx.in_dtype(0), out = ctx.in_dtype(1);
  ctx.set_output(0, out, shape);
  if (ctx.infer_only()) return nullptr;
  if ((in != DType::i8 && in != DType::u8) || (out != DType::i8 && out != DType::u8))
    ctx.unsupported(std::string("QLookup from ") + dtype_name(in) + " to " + dtype_name(out) +
                    " (expected int8 or uint8)");
  const Tensor &table = ctx.require_constant(1, "table");
  if (table.count() != 256)
    ctx.fail("table has " + std::to_string(table.count()) + " entries, expected 256");
  std::array<uint8_t, 256> entries;
  std::copy(table.bytes.begin(), table.bytes.begin() + 256, entries.begin());
  // int8 x indexes from -128: flipping the sign bit maps -128..127 to 0..255.
  uint8_t flip = in == DType::i8 ? 0x80 : 0;
  int64_t n = product(shape, 0, shape.size());
  auto k = make_kernel(
      [entries, flip, n](ExecContext &, const void *const *inputs, void *const *outputs) {
        const uint8_t *x = static_cast<const uint8_t *>(inputs[0]);
        uint8_t *y = static_cast<uint8_t *>(outputs[0]);
        byte_lookup(x, y, n, entries.data(), flip);
      });
  k->macs = static_cast<uint64_t>(n);
  k->impl = "256-entry table";
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP_EX(AxQLookup, "axstream", "QLookup", 1, 1, compile_qlookup, false)

}  // namespace axstream::engine
