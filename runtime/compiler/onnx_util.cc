#include "onnx_util.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "axstream/error.h"

namespace axstream::compiler {

onnx::ModelProto load_onnx(const std::string &path) {
  // A directory opens as a stream but reads as nothing: say what it is (a package, perhaps).
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw InvalidArgument("model '" + path +
                          "': is a directory, not an ONNX file (axcompile takes the float "
                          ".onnx model; a package directory is already compiled)");
  // A FIFO blocks the open until some writer comes; a device is no model either.
  const auto status = std::filesystem::status(path, ec);
  if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
    throw InvalidArgument("model '" + path + "': not a regular file (a device, FIFO or socket)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InvalidArgument("model '" + path + "': cannot open the file");
  onnx::ModelProto model;
  if (!model.ParseFromIstream(&in))
    throw InvalidArgument("model '" + path + "': not a valid ONNX protobuf");
  if (!model.has_graph() || model.graph().node_size() == 0)
    throw InvalidArgument("model '" + path + "': the ONNX file has no graph nodes");
  return model;
}

std::string serialize(const onnx::ModelProto &model, const std::string &what) {
  std::string bytes;
  if (!model.SerializeToString(&bytes))
    throw InternalError(what + ": protobuf serialisation failed (model over 2 GB?)");
  return bytes;
}

namespace {
template <typename T>
std::vector<T> raw_as(const onnx::TensorProto &tensor, const std::string &what) {
  const std::string &raw = tensor.raw_data();
  if (raw.size() % sizeof(T) != 0)
    throw InvalidArgument(what + ": raw_data of " + std::to_string(raw.size()) +
                          " bytes is not a whole number of elements");
  std::vector<T> out(raw.size() / sizeof(T));
  std::memcpy(out.data(), raw.data(), raw.size());
  return out;
}
}  // namespace

std::vector<float> floats_of(const onnx::TensorProto &tensor, const std::string &what) {
  if (tensor.data_type() != onnx::TensorProto::FLOAT)
    throw InvalidArgument(what + ": expected a float tensor, got ONNX data type " +
                          std::to_string(tensor.data_type()));
  if (tensor.has_raw_data()) return raw_as<float>(tensor, what);
  return {tensor.float_data().begin(), tensor.float_data().end()};
}

std::vector<int64_t> int64s_of(const onnx::TensorProto &tensor, const std::string &what) {
  switch (tensor.data_type()) {
    case onnx::TensorProto::INT64:
      if (tensor.has_raw_data()) return raw_as<int64_t>(tensor, what);
      return {tensor.int64_data().begin(), tensor.int64_data().end()};
    case onnx::TensorProto::INT32: {
      if (tensor.has_raw_data()) {
        auto v = raw_as<int32_t>(tensor, what);
        return {v.begin(), v.end()};
      }
      return {tensor.int32_data().begin(), tensor.int32_data().end()};
    }
    default:
      throw InvalidArgument(what + ": expected an int64 tensor, got ONNX data type " +
                            std::to_string(tensor.data_type()));
  }
}

std::vector<int64_t> dims_of(const onnx::TensorProto &tensor) {
  return {tensor.dims().begin(), tensor.dims().end()};
}

onnx::TensorProto make_tensor(const std::string &name, int32_t data_type,
                              const std::vector<int64_t> &dims, const void *data, size_t bytes) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(data_type);
  for (int64_t d : dims) t.add_dims(d);
  t.set_raw_data(std::string(static_cast<const char *>(data), bytes));
  return t;
}

onnx::TensorProto float_tensor(const std::string &name, const std::vector<int64_t> &dims,
                               const std::vector<float> &values) {
  return make_tensor(name, onnx::TensorProto::FLOAT, dims, values.data(),
                     values.size() * sizeof(float));
}

onnx::TensorProto int64_tensor(const std::string &name, const std::vector<int64_t> &dims,
                               const std::vector<int64_t> &values) {
  return make_tensor(name, onnx::TensorProto::INT64, dims, values.data(),
                     values.size() * sizeof(int64_t));
}

int32_t onnx_type_of(engine::DType dtype) {
  switch (dtype) {
    case engine::DType::f32:
      return onnx::TensorProto::FLOAT;
    case engine::DType::i8:
      return onnx::TensorProto::INT8;
    case engine::DType::u8:
      return onnx::TensorProto::UINT8;
    case engine::DType::i32:
      return onnx::TensorProto::INT32;
    case engine::DType::i64:
      return onnx::TensorProto::INT64;
    case engine::DType::bool_:
      return onnx::TensorProto::BOOL;
    case engine::DType::f16:
      return onnx::TensorProto::FLOAT16;
    case engine::DType::bf16:
      return onnx::TensorProto::BFLOAT16;
    case engine::DType::f64:
      return onnx::TensorProto::DOUBLE;
    case engine::DType::i16:
      return onnx::TensorProto::INT16;
    case engine::DType::u16:
      return onnx::TensorProto::UINT16;
    case engine::DType::u32:
      return onnx::TensorProto::UINT32;
    case engine::DType::u64:
      return onnx::TensorProto::UINT64;
  }
  return onnx::TensorProto::UNDEFINED;
}

onnx::TensorProto tensor_from_engine(const std::string &name, const engine::TensorDesc &desc,
                                     const void *data) {
  return make_tensor(name, onnx_type_of(desc.dtype), desc.shape, data, desc.byte_size());
}

onnx::NodeProto make_node(const std::string &op, const std::vector<std::string> &inputs,
                          const std::vector<std::string> &outputs, const std::string &name) {
  onnx::NodeProto node;
  node.set_op_type(op);
  node.set_name(name);
  for (const auto &i : inputs) node.add_input(i);
  for (const auto &o : outputs) node.add_output(o);
  return node;
}

void set_attr(onnx::NodeProto &node, const std::string &name, int64_t value) {
  remove_attr(node, name);
  auto *a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

void set_attr(onnx::NodeProto &node, const std::string &name, const std::vector<int64_t> &value) {
  remove_attr(node, name);
  auto *a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t v : value) a->add_ints(v);
}

const onnx::AttributeProto *find_attr(const onnx::NodeProto &node, const std::string &name) {
  for (const auto &a : node.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

int64_t attr_int(const onnx::NodeProto &node, const std::string &name, int64_t fallback) {
  const auto *a = find_attr(node, name);
  return a ? a->i() : fallback;
}

void remove_attr(onnx::NodeProto &node, const std::string &name) {
  auto *attrs = node.mutable_attribute();
  for (int i = 0; i < attrs->size(); ++i)
    if (attrs->Get(i).name() == name) {
      attrs->DeleteSubrange(i, 1);
      return;
    }
}

onnx::ValueInfoProto value_info(const std::string &name, int32_t elem_type,
                                const std::vector<int64_t> &shape) {
  onnx::ValueInfoProto v;
  v.set_name(name);
  auto *tt = v.mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem_type);
  auto *s = tt->mutable_shape();
  for (int64_t d : shape) s->add_dim()->set_dim_value(d);
  return v;
}

std::string node_label(const onnx::NodeProto &node) {
  std::string name =
      node.name().empty() ? (node.output_size() ? node.output(0) : "?") : node.name();
  return node.op_type() + " node '" + name + "'";
}

int64_t default_opset(const onnx::ModelProto &model) {
  for (const auto &o : model.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") return o.version();
  return 1;
}

namespace {

// upgrade_to_opset13's state: the nodes written so far and the constants the former
// attributes become (numbered in the order they are made).
struct OpsetUpgrade {
  int64_t from_opset;
  const std::map<std::string, std::vector<int64_t>> &shapes;
  std::vector<onnx::TensorProto> &extra;
  std::vector<onnx::NodeProto> out;
  int counter = 0;

  // A new int64 constant; its name.
  std::string constant(const std::string &hint, const std::vector<int64_t> &values) {
    std::string name = hint + "/opset13_" + std::to_string(counter++);
    extra.push_back(int64_tensor(name, {static_cast<int64_t>(values.size())}, values));
    return name;
  }
  // A new float scalar constant named `name`.
  void float_constant(const std::string &name, float v) {
    extra.push_back(make_tensor(name, onnx::TensorProto::FLOAT, {}, &v, sizeof v));
  }
  static std::vector<int64_t> ints(const onnx::AttributeProto *a) {
    return a ? std::vector<int64_t>(a->ints().begin(), a->ints().end()) : std::vector<int64_t>{};
  }

  // opset < 11: min and max attributes -> inputs.
  void clip(onnx::NodeProto &node, const std::string &hint) {
    const auto *lo = find_attr(node, "min");
    const auto *hi = find_attr(node, "max");
    std::string lo_name, hi_name;
    if (lo) {
      lo_name = hint + "/min";
      float_constant(lo_name, lo->f());
    }
    if (hi) {
      hi_name = hint + "/max";
      float_constant(hi_name, hi->f());
    }
    remove_attr(node, "min");
    remove_attr(node, "max");
    if (lo || hi) node.add_input(lo_name);
    if (hi) node.add_input(hi_name);
  }

  // opset < 10: starts, ends and axes attributes -> inputs.
  void slice(onnx::NodeProto &node, const std::string &hint) {
    auto starts = ints(find_attr(node, "starts")), ends = ints(find_attr(node, "ends"));
    auto axes = ints(find_attr(node, "axes"));
    for (const char *a : {"starts", "ends", "axes"}) remove_attr(node, a);
    node.add_input(constant(hint, starts));
    node.add_input(constant(hint, ends));
    if (!axes.empty()) node.add_input(constant(hint, axes));
  }

  // An optional ints attribute (Squeeze's axes, Split's split) -> the next input.
  void ints_attribute_to_input(onnx::NodeProto &node, const std::string &hint,
                               const char *attribute) {
    const auto *a = find_attr(node, attribute);
    if (a) {
      auto values = ints(a);
      remove_attr(node, attribute);
      node.add_input(constant(hint, values));
    }
  }

  // opset < 11: pads and value attributes -> inputs.
  void pad(onnx::NodeProto &node, const std::string &hint) {
    auto pads = ints(find_attr(node, "pads"));
    const auto *value = find_attr(node, "value");
    float v = value ? value->f() : 0.0f;
    remove_attr(node, "pads");
    remove_attr(node, "value");
    node.add_input(constant(hint, pads));
    std::string v_name = hint + "/value";
    float_constant(v_name, v);
    node.add_input(v_name);
  }

  static void dropout_to_identity(onnx::NodeProto &node) {
    node.set_op_type("Identity");
    node.clear_attribute();
    while (node.input_size() > 1) node.mutable_input()->RemoveLast();
    while (node.output_size() > 1) node.mutable_output()->RemoveLast();
  }

  // Softmax, LogSoftmax, Hardmax (opset < 13). True when the node was written here as
  // Flatten -> op over the last axis -> Reshape (an axis other than the last); otherwise the
  // node's axis becomes -1.
  bool softmax_family(onnx::NodeProto &node, const std::string &hint) {
    auto it = shapes.find(node.input(0));
    if (it == shapes.end())
      throw InternalError(node_label(node) + ": input shape unknown for the opset upgrade");
    const auto &shape = it->second;
    int64_t rank = static_cast<int64_t>(shape.size());
    int64_t axis = attr_int(node, "axis", 1);
    if (axis < 0) axis += rank;
    if (axis == rank - 1) {
      set_attr(node, "axis", int64_t{-1});
      return false;
    }
    // opset < 13 coerces to 2-D at `axis`: flatten, normalise the last axis, reshape back.
    std::string flat = hint + "/flat", soft = hint + "/soft2d";
    auto flatten = make_node("Flatten", {node.input(0)}, {flat}, hint + "/flatten");
    set_attr(flatten, "axis", axis);
    out.push_back(flatten);
    auto softmax = make_node(node.op_type(), {flat}, {soft}, hint);
    set_attr(softmax, "axis", int64_t{-1});
    out.push_back(softmax);
    out.push_back(
        make_node("Reshape", {soft, constant(hint, shape)}, {node.output(0)}, hint + "/reshape"));
    return true;
  }

  // opset 10: (X, scales), asymmetric coordinates, nearest rounds down.
  static void resize(onnx::NodeProto &node) {
    std::string scales = node.input(1);
    node.mutable_input()->RemoveLast();
    node.add_input("");
    node.add_input(scales);
    auto *a = node.add_attribute();
    a->set_name("coordinate_transformation_mode");
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s("asymmetric");
    auto *n = node.add_attribute();
    n->set_name("nearest_mode");
    n->set_type(onnx::AttributeProto::STRING);
    n->set_s("floor");
  }

  void add(onnx::NodeProto node) {
    const std::string &op = node.op_type();
    const std::string hint = node.name().empty() ? node.output(0) : node.name();
    if (!node.domain().empty() && node.domain() != "ai.onnx") {
      out.push_back(node);
      return;
    }
    if (op == "Upsample")
      throw NotImplemented(node_label(node) +
                           ": Upsample (opset < 10) is not supported; "
                           "re-export the model with Resize");
    if (op == "Clip" && from_opset < 11) {
      clip(node, hint);
    } else if (op == "Slice" && from_opset < 10) {
      slice(node, hint);
    } else if ((op == "Squeeze" || op == "Unsqueeze" || op == "ReduceSum") && from_opset < 13) {
      ints_attribute_to_input(node, hint, "axes");
    } else if (op == "Split" && from_opset < 13) {
      ints_attribute_to_input(node, hint, "split");
    } else if (op == "Pad" && from_opset < 11) {
      pad(node, hint);
    } else if (op == "Dropout") {
      dropout_to_identity(node);
    } else if ((op == "Softmax" || op == "LogSoftmax" || op == "Hardmax") && from_opset < 13) {
      if (softmax_family(node, hint)) return;
    } else if (op == "Resize" && from_opset < 11) {
      resize(node);
    }
    out.push_back(node);
  }
};

}  // namespace

std::vector<onnx::NodeProto> upgrade_to_opset13(
    const std::vector<onnx::NodeProto> &nodes, int64_t from_opset,
    const std::map<std::string, std::vector<int64_t>> &shapes,
    std::vector<onnx::TensorProto> &extra) {
  OpsetUpgrade upgrade{from_opset, shapes, extra, {}};
  for (const onnx::NodeProto &node : nodes) upgrade.add(node);
  return std::move(upgrade.out);
}

}  // namespace axstream::compiler
