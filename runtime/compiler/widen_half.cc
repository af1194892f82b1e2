#include "widen_half.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <set>

#include "../engine/float16.h"
#include "axstream/error.h"

namespace axstream::compiler {

namespace {

using onnx::TensorProto;

bool is_reduced(int32_t type) {  // a float type the compiler rewrites to float32
  return type == TensorProto::FLOAT16 || type == TensorProto::BFLOAT16 ||
         type == TensorProto::DOUBLE;
}
bool is_float(int32_t type) { return type == TensorProto::FLOAT || is_reduced(type); }

const char *type_name(int32_t type) {
  switch (type) {
    case TensorProto::FLOAT16:
      return "float16";
    case TensorProto::BFLOAT16:
      return "bfloat16";
    case TensorProto::DOUBLE:
      return "float64";
    default:
      return "float32";
  }
}

// The tensor's values as float32, in place. Half and bfloat16 widen exactly; float64 rounds.
void make_float32(TensorProto &tensor, const std::string &what) {
  const int32_t type = tensor.data_type();
  int64_t count = 1;
  for (int64_t d : tensor.dims()) count *= d;
  if (tensor.data_location() == TensorProto::EXTERNAL)
    throw NotImplemented(what + ": its " + type_name(type) +
                         " data is in an external file; axcompile reads models with their "
                         "weights inside the .onnx");
  std::vector<float> values;
  values.reserve(static_cast<size_t>(count));
  const std::string &raw = tensor.raw_data();
  if (type == TensorProto::DOUBLE) {
    std::vector<double> wide;
    if (tensor.has_raw_data()) {
      wide.resize(raw.size() / sizeof(double));
      std::memcpy(wide.data(), raw.data(), wide.size() * sizeof(double));
    } else {
      wide.assign(tensor.double_data().begin(), tensor.double_data().end());
    }
    for (double v : wide) {
      if (std::isfinite(v) && std::fabs(v) > std::numeric_limits<float>::max())
        throw InvalidArgument(what + ": float64 value " + std::to_string(v) +
                              " is beyond float32's range; the compiler quantises from float32");
      values.push_back(static_cast<float>(v));
    }
  } else {
    auto widen = type == TensorProto::FLOAT16 ? engine::half_to_float : engine::bfloat16_to_float;
    if (tensor.has_raw_data()) {
      for (size_t i = 0; i + 1 < raw.size(); i += 2) {  // little-endian, as ONNX stores it
        uint16_t bits = static_cast<uint8_t>(raw[i]) | static_cast<uint8_t>(raw[i + 1]) << 8;
        values.push_back(widen(bits));
      }
    } else {
      for (int32_t bits : tensor.int32_data()) values.push_back(widen(static_cast<uint16_t>(bits)));
    }
  }
  if (static_cast<int64_t>(values.size()) != count)
    throw InvalidArgument(what + ": " + type_name(type) + " tensor of " + std::to_string(count) +
                          " elements holds " + std::to_string(values.size()) + " values");
  tensor.clear_raw_data();
  tensor.clear_int32_data();
  tensor.clear_double_data();
  tensor.set_data_type(TensorProto::FLOAT);
  tensor.set_raw_data(
      std::string(reinterpret_cast<const char *>(values.data()), values.size() * sizeof(float)));
}

// Ops whose outputs are integers or bools whatever their inputs are.
const std::set<std::string> kIntegerResults = {"Shape",
                                               "Size",
                                               "ArgMax",
                                               "ArgMin",
                                               "NonZero",
                                               "NonMaxSuppression",
                                               "Equal",
                                               "Less",
                                               "LessOrEqual",
                                               "Greater",
                                               "GreaterOrEqual",
                                               "Not",
                                               "And",
                                               "Or",
                                               "Xor",
                                               "IsNaN",
                                               "IsInf",
                                               "QuantizeLinear",
                                               "BitShift",
                                               "ConvInteger",
                                               "MatMulInteger",
                                               "DynamicQuantizeLinear"};

// Element types of the tensors, as the model declares them (inputs, outputs, value_info,
// initializers) or as follows from the node that writes them: a Cast's target, an integer op's
// integers, else its first float input's type (elementwise ops and data movement keep it).
// Unknown types are safe: a Cast is removed only when both of its sides are known floats.
std::map<std::string, int32_t> declared_types(const onnx::GraphProto &g) {
  std::map<std::string, int32_t> types;
  auto declare = [&](const onnx::ValueInfoProto &v) {
    if (v.type().has_tensor_type() && v.type().tensor_type().elem_type() != 0)
      types[v.name()] = v.type().tensor_type().elem_type();
  };
  for (const auto &v : g.input()) declare(v);
  for (const auto &v : g.output()) declare(v);
  for (const auto &v : g.value_info()) declare(v);
  for (const auto &t : g.initializer()) types[t.name()] = t.data_type();
  for (const auto &node : g.node()) {
    int32_t type = 0;
    if (node.op_type() == "Cast") {
      for (const auto &a : node.attribute())
        if (a.name() == "to") type = static_cast<int32_t>(a.i());
    } else if (node.op_type() == "Constant") {
      for (const auto &a : node.attribute())
        if (a.name() == "value") type = a.t().data_type();
    } else if (kIntegerResults.count(node.op_type())) {
      continue;  // not float: never a Cast to remove
    } else {
      for (const auto &in : node.input()) {
        auto it = types.find(in);
        if (it != types.end() && is_float(it->second)) {
          type = it->second;
          break;
        }
      }
    }
    if (type == 0) continue;
    // A second output may be indices (TopK, MaxPool, Unique) or a mask (Dropout): left unknown,
    // a Cast reading it stays. Split's outputs are all pieces of its input.
    const int typed = node.op_type() == "Split" ? node.output_size() : 1;
    for (int k = 0; k < typed && k < node.output_size(); ++k)
      if (!node.output(k).empty() && !types.count(node.output(k))) types[node.output(k)] = type;
  }
  return types;
}

void rename_value(onnx::GraphProto &g, const std::string &from, const std::string &to) {
  for (auto &node : *g.mutable_node()) {
    for (auto &in : *node.mutable_input())
      if (in == from) in = to;
    for (auto &out : *node.mutable_output())
      if (out == from) out = to;
  }
  auto *infos = g.mutable_value_info();
  for (int i = infos->size() - 1; i >= 0; --i)
    if (infos->Get(i).name() == from) infos->DeleteSubrange(i, 1);
}

}  // namespace

PrecisionConversion widen_to_float32(onnx::ModelProto &model, const std::string &label) {
  PrecisionConversion result;
  auto &g = *model.mutable_graph();
  const auto types = declared_types(g);
  std::set<int32_t> found;
  auto note = [&](int32_t type) {
    if (is_reduced(type)) found.insert(type);
    return is_reduced(type);
  };

  for (auto &init : *g.mutable_initializer())
    if (note(init.data_type())) {
      make_float32(init, label + ": initializer '" + init.name() + "'");
      ++result.initializers;
    }
  auto retype = [&](onnx::ValueInfoProto &v, std::vector<std::string> *io) {
    auto *tensor_type = v.mutable_type()->mutable_tensor_type();
    if (!v.type().has_tensor_type() || !note(tensor_type->elem_type())) return;
    if (io) io->push_back("'" + v.name() + "' (" + type_name(tensor_type->elem_type()) + ")");
    tensor_type->set_elem_type(TensorProto::FLOAT);
  };
  for (auto &v : *g.mutable_input()) retype(v, &result.inputs);
  for (auto &v : *g.mutable_output()) retype(v, &result.outputs);
  for (auto &v : *g.mutable_value_info()) retype(v, nullptr);

  // Casts between float types: after the rewrite both sides are float32 (a no-op to drop).
  std::vector<int> precision_casts;
  for (int i = 0; i < g.node_size(); ++i) {
    auto &node = *g.mutable_node(i);
    for (auto &a : *node.mutable_attribute()) {
      if (a.has_t() && note(a.t().data_type())) {  // Constant's value, ConstantOfShape's
        make_float32(*a.mutable_t(), label + ": " + node.op_type() + " node '" + node.name() +
                                         "' attribute '" + a.name() + "'");
        ++result.initializers;
      }
      // Cast's target, RandomNormal/RandomUniform(Like)'s and EyeLike's dtype
      if ((a.name() == "to" || a.name() == "dtype") && a.type() == onnx::AttributeProto::INT &&
          note(static_cast<int32_t>(a.i())))
        a.set_i(TensorProto::FLOAT);
    }
    if (node.op_type() != "Cast" || node.input_size() != 1 || node.output_size() != 1) continue;
    auto source = types.find(node.input(0));
    auto target = types.find(node.output(0));
    if (source == types.end() || target == types.end() || !is_float(source->second) ||
        !is_float(target->second))
      continue;
    // A float32 -> float32 Cast the model had already is not ours to count or remove.
    if (is_reduced(source->second) || is_reduced(target->second)) precision_casts.push_back(i);
  }

  std::set<std::string> graph_inputs, graph_outputs, initializer_names;
  for (const auto &v : g.input()) graph_inputs.insert(v.name());
  for (const auto &v : g.output()) graph_outputs.insert(v.name());
  for (const auto &t : g.initializer()) initializer_names.insert(t.name());
  std::vector<bool> removed(g.node_size(), false);
  for (int i : precision_casts) {
    auto &cast = *g.mutable_node(i);
    const std::string source = cast.input(0), target = cast.output(0);
    if (!graph_outputs.count(target)) {
      rename_value(g, target, source);  // its readers read the source (the Cast's own output too)
      removed[i] = true;
    } else if (graph_inputs.count(source) || graph_outputs.count(source) ||
               initializer_names.count(source)) {
      // Both names belong to the model's interface: keep them apart.
      cast.set_op_type("Identity");
      cast.clear_attribute();
    } else {
      // The graph output keeps its name: whatever wrote the source now writes it.
      rename_value(g, source, target);
      removed[i] = true;
    }
    ++result.casts_removed;
  }
  auto *nodes = g.mutable_node();
  for (int i = nodes->size() - 1; i >= 0; --i)
    if (removed[i]) nodes->DeleteSubrange(i, 1);

  for (int32_t type : {TensorProto::FLOAT16, TensorProto::BFLOAT16, TensorProto::DOUBLE})
    if (found.count(type)) result.source_types.push_back(type_name(type));
  return result;
}

std::string PrecisionConversion::summary() const {
  if (!changed()) return "";
  std::string types;
  for (size_t i = 0; i < source_types.size(); ++i)
    types += (i == 0 ? "" : i + 1 == source_types.size() ? " and " : ", ") + source_types[i];
  const bool only_double = source_types.size() == 1 && source_types[0] == "float64";
  const bool any_double =
      std::find(source_types.begin(), source_types.end(), "float64") != source_types.end();
  std::string line = "model is " + types + ": compiled from its float32 equivalent (" +
                     std::to_string(initializers) + " initializers " +
                     (only_double  ? "narrowed"
                      : any_double ? "widened or narrowed"
                                   : "widened") +
                     ", " + std::to_string(casts_removed) + " casts removed)";
  if (any_double) line += "; float64 rounded to float32 since the core quantises to int8 anyway";
  auto list = [](const std::vector<std::string> &names) {
    std::string s;
    for (size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + names[i];
    return s;
  };
  if (!inputs.empty())
    line += "; input " + list(inputs) +
            " is float32 in the package (preprocessing and preamble; the device input is int8)";
  if (!outputs.empty())
    line += "; output " + list(outputs) +
            " is float32 in the package (dequantised core outputs and postamble)";
  return line;
}

}  // namespace axstream::compiler
