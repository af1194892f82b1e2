#include "onnx_import.h"

#include <onnx/onnx_pb.h>

#include <fstream>
#include <limits>
#include <set>

#include "axstream/error.h"

namespace axstream::engine {
namespace {

DType dtype_from_onnx(int elem_type, const std::string &what) {
  switch (elem_type) {
    case onnx::TensorProto::FLOAT:
      return DType::f32;
    case onnx::TensorProto::INT8:
      return DType::i8;
    case onnx::TensorProto::UINT8:
      return DType::u8;
    case onnx::TensorProto::INT32:
      return DType::i32;
    case onnx::TensorProto::INT64:
      return DType::i64;
    case onnx::TensorProto::BOOL:
      return DType::bool_;
    case onnx::TensorProto::FLOAT16:
      return DType::f16;
    case onnx::TensorProto::BFLOAT16:
      return DType::bf16;
    case onnx::TensorProto::DOUBLE:
      return DType::f64;
    case onnx::TensorProto::INT16:
      return DType::i16;
    case onnx::TensorProto::UINT16:
      return DType::u16;
    case onnx::TensorProto::UINT32:
      return DType::u32;
    case onnx::TensorProto::UINT64:
      return DType::u64;
    default:
      break;
  }
  throw NotImplemented(what + ": ONNX element type " + std::to_string(elem_type) +
                       " is not supported (expected float, float16, bfloat16, double, int8, uint8, "
                       "int16, uint16, int32, uint32, int64, uint64, bool)");
}

std::string read_external(const onnx::TensorProto &t, const std::string &base_dir, size_t expected,
                          const std::string &what) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto &kv : t.external_data()) {
    if (kv.key() == "location")
      location = kv.value();
    else if (kv.key() == "offset")
      offset = std::stoll(kv.value());
    else if (kv.key() == "length")
      length = std::stoll(kv.value());
  }
  if (location.empty()) throw InvalidArgument(what + ": external data without a location");
  if (location.find("..") != std::string::npos || location[0] == '/')
    throw InvalidArgument(what + ": external data location '" + location +
                          "' must be a file beside the model");
  std::string path = base_dir.empty() ? location : base_dir + "/" + location;
  std::ifstream f(path, std::ios::binary);
  if (!f) throw InvalidArgument(what + ": cannot open external data file '" + path + "'");
  f.seekg(0, std::ios::end);
  int64_t file_size = f.tellg();
  if (length < 0) length = file_size - offset;
  if (offset < 0 || length < 0 || offset + length > file_size ||
      static_cast<size_t>(length) != expected)
    throw InvalidArgument(what + ": external data '" + path + "' offset " + std::to_string(offset) +
                          " length " + std::to_string(length) + " does not hold the " +
                          std::to_string(expected) + " bytes the tensor needs (file has " +
                          std::to_string(file_size) + ")");
  std::string data(static_cast<size_t>(length), '\0');
  f.seekg(offset);
  f.read(data.data(), length);
  if (!f) throw InvalidArgument(what + ": short read from external data '" + path + "'");
  return data;
}

Tensor tensor_from_proto(const onnx::TensorProto &t, const std::string &base_dir,
                         const std::string &what) {
  Shape shape(t.dims().begin(), t.dims().end());
  int elem = t.data_type();
  DType dtype = dtype_from_onnx(elem, what);
  size_t n = static_cast<size_t>(checked_element_count(shape, what));
  size_t elem_size = dtype_size(dtype);
  // The data present is checked against the dims before the tensor is allocated: a dims field
  // claiming gigabytes over a few bytes of data was an out-of-memory (found by fuzz_onnx_import).
  if (t.data_location() != onnx::TensorProto::EXTERNAL) {
    size_t have = 0;
    if (t.has_raw_data())
      have = t.raw_data().size() % elem_size ? n + 1 : t.raw_data().size() / elem_size;
    else if (elem == onnx::TensorProto::FLOAT)
      have = static_cast<size_t>(t.float_data_size());
    else if (elem == onnx::TensorProto::DOUBLE)
      have = static_cast<size_t>(t.double_data_size());
    else if (elem == onnx::TensorProto::INT64)
      have = static_cast<size_t>(t.int64_data_size());
    else if (elem == onnx::TensorProto::UINT32 || elem == onnx::TensorProto::UINT64)
      have = static_cast<size_t>(t.uint64_data_size());
    else
      have = static_cast<size_t>(t.int32_data_size());
    if (have != n)
      throw InvalidArgument(what + ": holds " +
                            (t.has_raw_data() ? std::to_string(t.raw_data().size()) + " bytes"
                                              : std::to_string(have) + " values") +
                            ", not the " + std::to_string(n) + " elements of shape " +
                            shape_str(shape));
  }
  Tensor out(dtype, shape);
  auto from_raw = [&](const std::string &raw) {
    if (raw.size() != n * elem_size)
      throw InvalidArgument(what + ": raw data has " + std::to_string(raw.size()) +
                            " bytes, expected " + std::to_string(n * elem_size) + " for shape " +
                            shape_str(shape));
    if (n) std::memcpy(out.bytes.data(), raw.data(), raw.size());
    // A bool byte other than 0 or 1 is true, as numpy reads it; the kernels load bool, for which
    // any other byte is undefined behaviour.
    if (dtype == DType::bool_)
      for (uint8_t &byte : out.bytes) byte = byte != 0;
  };
  if (t.data_location() == onnx::TensorProto::EXTERNAL) {
    from_raw(read_external(t, base_dir, n * elem_size, what));
    return out;
  }
  if (t.has_raw_data()) {
    from_raw(t.raw_data());
    return out;
  }
  switch (elem) {
    case onnx::TensorProto::FLOAT:
      for (size_t i = 0; i < n; ++i) out.data<float>()[i] = t.float_data(i);
      break;
    case onnx::TensorProto::DOUBLE:
      for (size_t i = 0; i < n; ++i) out.data<double>()[i] = t.double_data(i);
      break;
    case onnx::TensorProto::INT64:
      for (size_t i = 0; i < n; ++i) out.data<int64_t>()[i] = t.int64_data(i);
      break;
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::BFLOAT16:
      // int32_data holds each element's 16-bit pattern (onnx.proto), not its value.
      for (size_t i = 0; i < n; ++i)
        out.data<uint16_t>()[i] = static_cast<uint16_t>(t.int32_data(static_cast<int>(i)));
      break;
    case onnx::TensorProto::INT32:
    case onnx::TensorProto::INT8:
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::INT16:
    case onnx::TensorProto::UINT16:
    case onnx::TensorProto::BOOL:
      for (size_t i = 0; i < n; ++i)
        store_from_double(out.bytes.data(), out.dtype, i, t.int32_data(i));
      break;
    // uint64_data holds uint32 and uint64 values (onnx.proto); copied as integers, as a double
    // on the way would round a uint64 past 2^53.
    case onnx::TensorProto::UINT64:
      for (size_t i = 0; i < n; ++i) out.data<uint64_t>()[i] = t.uint64_data(static_cast<int>(i));
      break;
    case onnx::TensorProto::UINT32:
      for (size_t i = 0; i < n; ++i) {
        uint64_t v = t.uint64_data(static_cast<int>(i));
        if (v > std::numeric_limits<uint32_t>::max())
          throw InvalidArgument(what + ": uint32 element " + std::to_string(i) + " holds " +
                                std::to_string(v) + ", beyond uint32's range");
        out.data<uint32_t>()[i] = static_cast<uint32_t>(v);
      }
      break;
    default:
      throw NotImplemented(what + ": unsupported element type");
  }
  return out;
}

Attribute attribute_from_proto(const onnx::AttributeProto &a, const std::string &base_dir,
                               const std::string &what) {
  Attribute out;
  switch (a.type()) {
    case onnx::AttributeProto::FLOAT:
      out.kind = Attribute::Kind::f;
      out.f = a.f();
      break;
    case onnx::AttributeProto::INT:
      out.kind = Attribute::Kind::i;
      out.i = a.i();
      break;
    case onnx::AttributeProto::STRING:
      out.kind = Attribute::Kind::s;
      out.s = a.s();
      break;
    case onnx::AttributeProto::TENSOR:
      out.kind = Attribute::Kind::t;
      out.t = std::make_shared<Tensor>(tensor_from_proto(a.t(), base_dir, what));
      break;
    case onnx::AttributeProto::FLOATS:
      out.kind = Attribute::Kind::floats;
      out.floats.assign(a.floats().begin(), a.floats().end());
      break;
    case onnx::AttributeProto::INTS:
      out.kind = Attribute::Kind::ints;
      out.ints.assign(a.ints().begin(), a.ints().end());
      break;
    case onnx::AttributeProto::STRINGS:
      out.kind = Attribute::Kind::strings;
      out.strings.assign(a.strings().begin(), a.strings().end());
      break;
    default:
      // Graph lists and sparse tensors: no op the engine runs takes them. (A single graph, an
      // If branch or a Loop/Scan body, is imported by import_graph.)
      out.kind = Attribute::Kind::s;
      break;
  }
  return out;
}

// The tensor a Constant node holds, from whichever value_* attribute it carries.
TensorPtr constant_node_value(const Node &node, const std::string &what) {
  for (const auto &[name, a] : node.attrs) {
    if (name == "value" && a.t) return a.t;
    auto t = std::make_shared<Tensor>();
    if (name == "value_float") {
      *t = Tensor(DType::f32, {});
      t->data<float>()[0] = a.f;
      return t;
    }
    if (name == "value_int") {
      *t = Tensor(DType::i64, {});
      t->data<int64_t>()[0] = a.i;
      return t;
    }
    if (name == "value_floats") {
      *t = Tensor(DType::f32, {static_cast<int64_t>(a.floats.size())});
      std::copy(a.floats.begin(), a.floats.end(), t->data<float>());
      return t;
    }
    if (name == "value_ints") {
      *t = Tensor(DType::i64, {static_cast<int64_t>(a.ints.size())});
      std::copy(a.ints.begin(), a.ints.end(), t->data<int64_t>());
      return t;
    }
  }
  throw NotImplemented(what +
                       ": Constant node without a supported value attribute "
                       "(value, value_float(s), value_int(s))");
}

// A graph input's value: its dtype, and its shape from CompileOptions::input_shapes (checked
// against the model's) or else from the model, which must then fix every dimension.
Value graph_input_value(const onnx::ValueInfoProto &in, const CompileOptions &options,
                        const std::string &what) {
  if (!in.type().has_tensor_type())
    throw NotImplemented(what + ": only tensor inputs are supported");
  const auto &tt = in.type().tensor_type();
  Value v;
  v.name = in.name();
  v.dtype = dtype_from_onnx(tt.elem_type(), what);
  auto fixed = options.input_shapes.find(in.name());
  if (fixed != options.input_shapes.end()) {
    v.shape = fixed->second;
    if (tt.has_shape()) {
      const auto &dims = tt.shape().dim();
      bool ok = dims.size() == static_cast<int>(v.shape.size());
      for (int i = 0; ok && i < dims.size(); ++i)
        if (dims[i].has_dim_value() && dims[i].dim_value() > 0 && dims[i].dim_value() != v.shape[i])
          ok = false;
      if (!ok)
        throw InvalidArgument(what + ": CompileOptions::input_shapes gives " + shape_str(v.shape) +
                              ", which contradicts the model's shape");
    }
    for (int64_t d : v.shape)
      if (d < 0)
        throw InvalidArgument(what + ": CompileOptions::input_shapes gives a negative dim in " +
                              shape_str(v.shape));
  } else {
    if (!tt.has_shape())
      throw InvalidArgument(what + " has no shape; give it in CompileOptions::input_shapes");
    for (const auto &d : tt.shape().dim()) {
      if (!d.has_dim_value() || d.dim_value() < 0)
        throw InvalidArgument(what + " has dynamic dimension '" +
                              (d.has_dim_param() ? d.dim_param() : std::string("?")) +
                              "'; fix it with CompileOptions::input_shapes");
      v.shape.push_back(d.dim_value());
    }
  }
  v.shape_known = true;
  return v;
}

// A sequence or optional graph input: the tensors it holds become graph inputs of their own,
// named "x[0]", "x[1]", ... for sequence "x" (as many as CompileOptions::input_shapes gives
// shapes for, from 0 on) and "o" for an optional tensor "o" (present when input_shapes names it;
// an optional sequence when it names "o[0]"). Adds them to `graph` and returns the container.
int container_graph_input(Graph &graph, const onnx::ValueInfoProto &in,
                          const CompileOptions &options, const std::string &what,
                          std::set<std::string> &fixed_used) {
  const onnx::TypeProto *type = &in.type();
  const bool optional = type->has_optional_type();
  if (optional) type = &type->optional_type().elem_type();
  const bool sequence = type->has_sequence_type();
  if (sequence) type = &type->sequence_type().elem_type();
  if (!type->has_tensor_type())
    throw NotImplemented(what + ": a " + (optional ? "optional " : "") +
                         (sequence ? "sequence of non-tensors" : "non-tensor") +
                         " is not supported (sequences and optionals of tensors are)");
  auto element = [&](const std::string &name) {
    onnx::ValueInfoProto info;
    info.set_name(name);
    *info.mutable_type() = *type;
    fixed_used.insert(name);
    Value v = graph_input_value(info, options, what + " tensor '" + name + "'");
    const int id = graph.add_value(std::move(v));
    graph.inputs.push_back(id);
    return id;
  };
  Value container;
  container.name = in.name();
  container.dtype = dtype_from_onnx(type->tensor_type().elem_type(), what);
  if (sequence) {
    container.kind = Value::Kind::sequence;
    for (size_t i = 0; options.input_shapes.count(in.name() + "[" + std::to_string(i) + "]"); ++i)
      container.elements.push_back(element(in.name() + "[" + std::to_string(i) + "]"));
  } else if (options.input_shapes.count(in.name())) {
    container.elements.push_back(element(in.name()));
  }
  if (optional) {
    if (sequence) {
      const bool present = !container.elements.empty();
      Value inner = container;
      container = Value{};
      container.name = inner.name;
      container.dtype = inner.dtype;
      if (present) container.elements.push_back(graph.add_value(std::move(inner)));
    }
    container.kind = Value::Kind::optional;
  }
  return graph.add_value(std::move(container));
}

std::set<std::string> captured_names(const onnx::NodeProto &node);

// The names a (sub)graph reads from enclosing scopes: what its nodes, and their own subgraphs,
// read that it does not define (inputs, initializers, node outputs).
std::set<std::string> outer_scope_names(const onnx::GraphProto &gp) {
  std::set<std::string> defined, read;
  for (const auto &in : gp.input()) defined.insert(in.name());
  for (const auto &init : gp.initializer()) defined.insert(init.name());
  for (const auto &n : gp.node()) {
    for (const auto &out : n.output()) defined.insert(out);
    for (const auto &in : n.input())
      if (!in.empty()) read.insert(in);
    for (const auto &in : captured_names(n)) read.insert(in);
  }
  for (const auto &out : gp.output()) read.insert(out.name());
  std::set<std::string> outer;
  for (const auto &name : read)
    if (!defined.count(name)) outer.insert(name);
  return outer;
}

// The outer-scope values a node's subgraphs read (If's branches, a Loop or Scan body), sorted:
// the node reads them as inputs after its own.
std::set<std::string> captured_names(const onnx::NodeProto &node) {
  std::set<std::string> names;
  for (const auto &a : node.attribute())
    if (a.type() == onnx::AttributeProto::GRAPH)
      for (const auto &name : outer_scope_names(a.g())) names.insert(name);
  return names;
}

// The graph's nodes in topological order, from the values `defined` before any node runs
// (initializers, graph inputs). ONNX requires that order, but exporters occasionally break it.
std::vector<const onnx::NodeProto *> topological_order(const onnx::GraphProto &gp,
                                                       const std::set<std::string> &defined,
                                                       const std::string &source_name) {
  std::vector<const onnx::NodeProto *> pending;
  for (const auto &n : gp.node()) pending.push_back(&n);
  std::set<std::string> produced = defined;
  std::vector<const onnx::NodeProto *> ordered;
  while (!pending.empty()) {
    std::vector<const onnx::NodeProto *> rest;
    for (const auto *n : pending) {
      bool ready = true;
      for (const auto &in : n->input())
        if (!in.empty() && !produced.count(in)) ready = false;
      // What its subgraphs read from this scope must be there before it too.
      for (const auto &in : captured_names(*n))
        if (!produced.count(in)) ready = false;
      if (ready) {
        ordered.push_back(n);
        for (const auto &out : n->output()) produced.insert(out);
      } else {
        rest.push_back(n);
      }
    }
    if (rest.size() == pending.size()) {
      const auto *n = rest.front();
      std::string missing;
      for (const auto &in : n->input())
        if (!in.empty() && !produced.count(in)) missing = in;
      for (const auto &in : captured_names(*n))
        if (missing.empty() && !produced.count(in)) missing = in;
      throw InvalidArgument(source_name + ": node '" + n->name() + "' (" + n->op_type() +
                            ") reads '" + missing + "', which nothing defines");
    }
    pending.swap(rest);
  }
  return ordered;
}

}  // namespace

Tensor tensor_from_onnx_bytes(const std::string &bytes, const std::string &source_name) {
  onnx::TensorProto t;
  if (!t.ParseFromString(bytes))
    throw InvalidArgument(source_name + ": not a valid ONNX TensorProto");
  return tensor_from_proto(t, "", source_name);
}

namespace {

struct ImportContext {
  std::string base_dir;
  const CompileOptions &options;
  std::map<std::string, int> opsets;
};

// One graph's values and nodes. The main graph (`captured` null) takes its inputs' shapes from
// the model or CompileOptions::input_shapes; a subgraph's inputs (its own, then the `captured`
// outer-scope names) get their types and shapes when its node compiles it.
Graph import_graph(const onnx::GraphProto &gp, const std::string &source_name,
                   const ImportContext &context, const std::vector<std::string> *captured) {
  Graph g;
  g.source_name = source_name;
  g.opsets = context.opsets;
  g.max_tensor_bytes = context.options.max_tensor_bytes;
  g.is_subgraph = captured != nullptr;
  std::map<std::string, int> by_name;
  auto lookup = [&](const std::string &name, const std::string &who) {
    auto it = by_name.find(name);
    if (it == by_name.end())
      throw InvalidArgument(source_name + ": " + who + " reads '" + name +
                            "', which no initializer, graph input or earlier node defines");
    return it->second;
  };

  for (const auto &init : gp.initializer()) {
    Value v;
    v.name = init.name();
    auto t = std::make_shared<Tensor>(tensor_from_proto(
        init, context.base_dir, source_name + ": initializer '" + init.name() + "'"));
    v.dtype = t->dtype;
    v.shape = t->shape;
    v.shape_known = true;
    v.constant = std::move(t);
    {
      std::string value_name = v.name;
      by_name[value_name] = g.add_value(std::move(v));
    }
  }
  std::set<std::string> fixed_used;
  for (const auto &in : gp.input()) {
    if (by_name.count(in.name())) continue;  // an initializer listed as input (IR < 4)
    std::string what = source_name + ": input '" + in.name() + "'";
    Value v;
    if (captured) {
      // A body input may leave its type out (the node's inputs give it); one that declares a
      // sequence or optional makes its node resolved when the program compiles (sequences.h).
      // The declared kind stays on the input: a value passed to an optional input is wrapped.
      if (in.type().has_sequence_type() || in.type().has_optional_type()) {
        g.has_container_io = true;
        v.kind = in.type().has_sequence_type() ? Value::Kind::sequence : Value::Kind::optional;
      } else if (in.type().value_case() != onnx::TypeProto::VALUE_NOT_SET &&
                 !in.type().has_tensor_type())
        throw NotImplemented(what + ": only tensor, sequence and optional inputs are supported");
      v.name = in.name();
      if (in.type().has_tensor_type() && in.type().tensor_type().elem_type() != 0)
        v.dtype = dtype_from_onnx(in.type().tensor_type().elem_type(), what);
    } else if (in.type().has_sequence_type() || in.type().has_optional_type()) {
      by_name[in.name()] = container_graph_input(g, in, context.options, what, fixed_used);
      continue;
    } else {
      if (context.options.input_shapes.count(in.name())) fixed_used.insert(in.name());
      v = graph_input_value(in, context.options, what);
    }
    int id = g.add_value(std::move(v));
    by_name[in.name()] = id;
    g.inputs.push_back(id);
  }
  if (captured) {
    for (const std::string &name : *captured) {
      Value v;
      v.name = name;
      int id = g.add_value(std::move(v));
      by_name[name] = id;
      g.inputs.push_back(id);
    }
    g.captured_inputs = captured->size();
  } else {
    for (const auto &[name, shape] : context.options.input_shapes)
      if (!fixed_used.count(name))
        throw InvalidArgument(source_name + ": CompileOptions::input_shapes names '" + name +
                              "', which is not a graph input");
  }

  std::set<std::string> defined;
  for (const auto &[name, id] : by_name) defined.insert(name);
  const std::vector<const onnx::NodeProto *> ordered = topological_order(gp, defined, source_name);

  for (const auto *np : ordered) {
    Node node;
    node.name = np->name();
    node.op_type = np->op_type();
    node.domain = np->domain() == "ai.onnx" ? "" : np->domain();
    auto op = g.opsets.find(node.domain);
    node.opset = op == g.opsets.end() ? 0 : op->second;
    std::string what = source_name + ": node '" + node.name + "' (" + node.op_type + ")";
    const std::set<std::string> node_captures = captured_names(*np);
    const std::vector<std::string> capture_list(node_captures.begin(), node_captures.end());
    for (const auto &a : np->attribute()) {
      if (a.type() == onnx::AttributeProto::GRAPH) {
        Attribute sub;
        sub.kind = Attribute::Kind::graph;
        sub.graph = std::make_shared<const Graph>(
            import_graph(a.g(), what + " " + a.name(), context, &capture_list));
        node.attrs[a.name()] = std::move(sub);
        continue;
      }
      node.attrs[a.name()] =
          attribute_from_proto(a, context.base_dir, what + " attribute " + a.name());
    }
    if (node.op_type == "Constant" && node.domain.empty()) {
      if (np->output_size() != 1) throw InvalidArgument(what + ": expected 1 output");
      Value v;
      v.name = np->output(0);
      v.constant = constant_node_value(node, what);
      v.dtype = v.constant->dtype;
      v.shape = v.constant->shape;
      v.shape_known = true;
      {
        std::string value_name = v.name;
        by_name[value_name] = g.add_value(std::move(v));
      }
      continue;
    }
    for (const auto &in : np->input()) node.inputs.push_back(in.empty() ? -1 : lookup(in, what));
    for (const auto &name : capture_list) node.inputs.push_back(lookup(name, what));
    for (const auto &out : np->output()) {
      Value v;
      // Omitted optional outputs still get a value, so kernels always have a buffer.
      v.name = out.empty() ? what + " unused output " + std::to_string(node.outputs.size()) : out;
      int id = g.add_value(std::move(v));
      if (!out.empty()) by_name[out] = id;
      node.outputs.push_back(id);
    }
    g.nodes.push_back(std::move(node));
  }
  for (const auto &out : gp.output()) {
    g.outputs.push_back(lookup(out.name(), "graph output"));
    if (captured && (out.type().has_sequence_type() || out.type().has_optional_type()))
      g.has_container_io = true;
  }
  return g;
}

}  // namespace

Graph import_onnx(const std::string &onnx_bytes, const std::string &source_name,
                  const std::string &base_dir, const CompileOptions &options) {
  onnx::ModelProto model;
  if (onnx_bytes.empty() || !model.ParseFromString(onnx_bytes))
    throw InvalidArgument(source_name + ": not a valid ONNX model (protobuf parse failed, " +
                          std::to_string(onnx_bytes.size()) + " bytes)");
  if (!model.has_graph() || model.graph().output_size() == 0)
    throw InvalidArgument(source_name + ": ONNX model has no graph or no graph outputs");
  ImportContext context{base_dir, options, {}};
  for (const auto &op : model.opset_import()) {
    std::string domain = op.domain() == "ai.onnx" ? "" : op.domain();
    context.opsets[domain] = static_cast<int>(op.version());
  }
  return import_graph(model.graph(), source_name, context, nullptr);
}

}  // namespace axstream::engine
