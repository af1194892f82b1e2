#include "op_registry.h"

#include <mutex>

#include "op_list.h"

namespace axstream::engine {

#define AXSTREAM_DECLARE_REGISTER(Id) \
  void axstream_engine_register_##Id(::axstream::engine::OpRegistry &registry);
AXSTREAM_ENGINE_OP_LIST(AXSTREAM_DECLARE_REGISTER)
#undef AXSTREAM_DECLARE_REGISTER

const OpRegistry &OpRegistry::instance() {
  static const OpRegistry registry = [] {
    OpRegistry r;
#define AXSTREAM_CALL_REGISTER(Id) axstream_engine_register_##Id(r);
    AXSTREAM_ENGINE_OP_LIST(AXSTREAM_CALL_REGISTER)
#undef AXSTREAM_CALL_REGISTER
    return r;
  }();
  return registry;
}

void OpRegistry::add(OpDef def) { defs_.push_back(std::move(def)); }

const OpDef *OpRegistry::find(const std::string &domain, const std::string &op_type,
                              int opset) const {
  for (const OpDef &d : defs_)
    if (d.op_type == op_type && d.domain == domain && opset >= d.first_opset &&
        opset <= d.last_opset)
      return &d;
  return nullptr;
}

OpContext::OpContext(const Graph &graph, const Node &node, bool infer_only)
    : out_dtypes_(node.outputs.size(), DType::f32),
      out_shapes_(node.outputs.size()),
      out_data_dependent_(node.outputs.size(), false),
      graph_(graph),
      node_(node),
      infer_only_(infer_only) {}

std::string OpContext::label() const {
  return "node '" + node_.label(graph_.values) + "' (" + node_.op_type + ")";
}

std::string OpContext::where() const { return graph_.source_name + ": " + label(); }

const Value &OpContext::input(size_t i) const {
  if (!has_input(i)) fail("input " + std::to_string(i) + " is required but missing");
  return graph_.values[node_.inputs[i]];
}

const Tensor *OpContext::constant(size_t i) const {
  if (!has_input(i)) return nullptr;
  return graph_.values[node_.inputs[i]].constant.get();
}

const Tensor &OpContext::require_constant(size_t i, const char *what) const {
  const Tensor *t = constant(i);
  if (!t)
    unsupported(std::string("input ") + std::to_string(i) + " (" + what +
                ") must be a constant (computed at run time here, i.e. a dynamic shape)");
  return *t;
}

const Tensor &OpContext::require_scalar(size_t i, const char *what) const {
  const Tensor &t = require_constant(i, what);
  if (t.count() != 1)
    fail(std::string("input ") + std::to_string(i) + " (" + what + ") must hold one value, got " +
         std::to_string(t.count()) + " (shape " + shape_str(t.shape) + ")");
  return t;
}

std::vector<int64_t> OpContext::constant_ints(size_t i, const char *what) const {
  const Tensor &t = require_constant(i, what);
  if (is_floating_dtype(t.dtype))
    fail(std::string("input ") + std::to_string(i) + " (" + what + ") must be integers, got " +
         dtype_name(t.dtype));
  std::vector<int64_t> v(static_cast<size_t>(t.count()));
  for (size_t k = 0; k < v.size(); ++k) v[k] = t.as_int(static_cast<int64_t>(k));
  return v;
}

float OpContext::scalar_scale(size_t i, const char *what) const {
  const Tensor &t = require_constant(i, what);
  if (t.dtype != DType::f32 || t.count() != 1) fail(std::string(what) + " must be one float");
  return t.data<float>()[0];
}

int32_t OpContext::zero_point_or_zero(size_t i, const char *what) const {
  return has_input(i) ? static_cast<int32_t>(require_constant(i, what).as_int(0)) : 0;
}

void OpContext::set_output(size_t i, DType dtype, Shape shape) {
  // A node listing fewer outputs than its op writes (a malformed file) is refused naming it, not
  // a std::out_of_range (found by fuzz_onnx_import).
  if (i >= out_dtypes_.size())
    fail("it writes output " + std::to_string(i) + " but the node lists " +
         std::to_string(out_dtypes_.size()) + " output(s)");
  checked_element_count(shape, label() + " output " + std::to_string(i));
  out_dtypes_.at(i) = dtype;
  out_shapes_.at(i) = std::move(shape);
}

void OpContext::set_output_upper_bound(size_t i, DType dtype, Shape max_shape) {
  set_output(i, dtype, std::move(max_shape));
  out_data_dependent_.at(i) = true;
}

int64_t OpContext::attr_i(const std::string &name, int64_t dflt) const {
  auto it = node_.attrs.find(name);
  return it == node_.attrs.end() ? dflt : it->second.i;
}
float OpContext::attr_f(const std::string &name, float dflt) const {
  auto it = node_.attrs.find(name);
  return it == node_.attrs.end() ? dflt : it->second.f;
}
std::string OpContext::attr_s(const std::string &name, const std::string &dflt) const {
  auto it = node_.attrs.find(name);
  return it == node_.attrs.end() ? dflt : it->second.s;
}
std::vector<int64_t> OpContext::attr_ints(const std::string &name,
                                          std::vector<int64_t> dflt) const {
  auto it = node_.attrs.find(name);
  return it == node_.attrs.end() ? dflt : it->second.ints;
}
std::vector<float> OpContext::attr_floats(const std::string &name, std::vector<float> dflt) const {
  auto it = node_.attrs.find(name);
  return it == node_.attrs.end() ? dflt : it->second.floats;
}
const Tensor *OpContext::attr_t(const std::string &name) const {
  auto it = node_.attrs.find(name);
  return it == node_.attrs.end() ? nullptr : it->second.t.get();
}

void OpContext::fail(const std::string &message) const {
  throw InvalidArgument(graph_.source_name + ": " + label() + ": " + message);
}
void OpContext::unsupported(const std::string &message) const {
  throw NotImplemented(graph_.source_name + ": " + label() + " opset " +
                       std::to_string(node_.opset) + ": " + message);
}

void OpContext::expect_inputs(size_t min_count, size_t max_count) const {
  size_t n = node_.inputs.size();
  while (n > 0 && node_.inputs[n - 1] < 0) --n;
  if (n < min_count || n > max_count)
    fail("expected " + std::to_string(min_count) + ".." + std::to_string(max_count) +
         " inputs, got " + std::to_string(n));
  for (size_t i = 0; i < min_count; ++i)
    if (node_.inputs[i] < 0) fail("input " + std::to_string(i) + " is required but missing");
}

int64_t OpContext::axis(int64_t axis, size_t rank, const char *what) const {
  int64_t r = static_cast<int64_t>(rank);
  if (axis < -r || axis >= r)
    fail(std::string(what) + " " + std::to_string(axis) + " is out of range for rank " +
         std::to_string(rank));
  return axis < 0 ? axis + r : axis;
}

}  // namespace axstream::engine
