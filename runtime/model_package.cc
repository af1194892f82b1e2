#include "axstream/runtime/model_package.h"

#include <onnx/onnx_pb.h>
#include <sys/stat.h>

#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

#include "json.h"
#include "shape_text.h"

namespace axstream::runtime {

namespace {

bool is_directory(const std::string &path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_regular_file(const std::string &path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// `directory` + "/" + `name` with one separator: the root "/" gave "//model.json" in messages.
std::string join_path(const std::string &directory, const std::string &name) {
  return !directory.empty() && directory.back() == '/' ? directory + name : directory + "/" + name;
}

// Why `path` is not a file that can be read ("does not exist", "is a directory, not a file",
// ...), or "" when it is a regular file. A message says which, not just "does not exist".
std::string file_problem(const std::string &path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISREG(st.st_mode)) return "";
    return S_ISDIR(st.st_mode) ? "is a directory, not a file" : "is not a regular file";
  }
  int error = errno;
  struct stat link {};
  if (error == ELOOP) return "is a symbolic link loop";
  if (error == ENOENT && ::lstat(path.c_str(), &link) == 0)
    return "is a symbolic link to nothing (dangling)";
  if (error == ENOENT || error == ENOTDIR) return "does not exist";
  return "cannot be opened (" + std::string(std::strerror(error)) + ")";
}

// Whether anything (a file, a directory, a dangling symlink) sits at `path`.
bool anything_at(const std::string &path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// `text` with NUL and other control characters shown as \xNN.
std::string display_text(const std::string &text) {
  std::string shown;
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x20) {
      shown += c;
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned char>(c));
      shown += hex;
    }
  }
  return shown;
}

// A relative path that stays inside the package: not absolute, no ".." leaving the directory.
std::string path_outside_package(const std::string &relative) {
  if (relative.empty()) return "expected a relative path, got an empty string";
  // The file system would stop reading the name at the NUL and open another file.
  if (relative.find('\0') != std::string::npos)
    return "expected a path without NUL characters, got '" + display_text(relative) + "'";
  if (relative[0] == '/') return "expected a path relative to the package, got '" + relative + "'";
  int depth = 0;
  size_t start = 0;
  while (start <= relative.size()) {
    size_t end = relative.find('/', start);
    if (end == std::string::npos) end = relative.size();
    std::string part = relative.substr(start, end - start);
    if (part == "..") {
      if (--depth < 0)
        return "expected a path inside the package directory, got '" + relative +
               "' (it leaves the directory)";
    } else if (!part.empty() && part != ".") {
      ++depth;
    }
    start = end + 1;
  }
  return "";
}

bool ends_with(const std::string &text, const std::string &suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string read_file(const std::string &path, const std::string &what) {
  std::string problem = file_problem(path);
  if (!problem.empty()) throw InvalidArgument(what + " " + path + " " + problem);
  std::ifstream stream(path, std::ios::binary);
  if (!stream) throw InvalidArgument("cannot read " + what + " " + path);
  std::ostringstream buffer;
  buffer << stream.rdbuf();
  if (stream.bad()) throw InvalidArgument("cannot read " + what + " " + path);
  return buffer.str();
}

// Reads fields of one JSON file, every error naming the file and the field's path.
class JsonFile {
 public:
  JsonFile(std::string path, const std::string &what) : path_(std::move(path)) {
    std::string text = read_file(path_, what);
    try {
      root_ = json::parse(text);
    } catch (const json::ParseError &error) {
      throw InvalidArgument(path_ + ": invalid JSON: " + error.what());
    }
    if (root_.type != json::Type::object)
      fail("(top level)", root_,
           "expected a JSON object, got " + std::string(json::type_name(root_.type)));
  }

  const json::Value &root() const { return root_; }
  const std::string &path() const { return path_; }

  [[noreturn]] void fail(const std::string &field, const json::Value &value,
                         const std::string &problem) const {
    std::string where = value.line ? " (line " + std::to_string(value.line) + ", column " +
                                         std::to_string(value.column) + ")"
                                   : "";
    throw InvalidArgument(path_ + ": field '" + field + "'" + where + ": " + problem);
  }
  [[noreturn]] void fail_missing(const std::string &field) const {
    throw InvalidArgument(path_ + ": field '" + field + "' is missing");
  }

  const json::Value *optional(const std::string &key) const {
    const json::Value *value = root_.find(key);
    return value && !value->is_null() ? value : nullptr;
  }
  const json::Value &required(const std::string &key) const {
    const json::Value *value = root_.find(key);
    if (!value) fail_missing(key);
    return *value;
  }

  void expect_type(const std::string &field, const json::Value &value, json::Type type) const {
    if (value.type != type)
      fail(field, value,
           std::string("expected ") + json::type_name(type) + ", got " +
               json::type_name(value.type));
  }

  int64_t integer(const std::string &field, const json::Value &value) const {
    if (value.type != json::Type::number || !value.number_is_integer) {
      // An integer literal beyond int64 is parsed as a (whole) double only.
      bool whole = value.type == json::Type::number && std::isfinite(value.number) &&
                   std::floor(value.number) == value.number;
      fail(field, value,
           std::string("expected an integer, got ") +
               (value.type != json::Type::number ? json::type_name(value.type)
                : whole                          ? "an integer out of the 64-bit range"
                                                 : "a non-integer number"));
    }
    return value.integer;
  }

  double number(const std::string &field, const json::Value &value) const {
    expect_type(field, value, json::Type::number);
    return value.number;
  }

  std::string string(const std::string &field, const json::Value &value) const {
    expect_type(field, value, json::Type::string);
    return value.string;
  }

  const std::vector<json::Value> &array(const std::string &field, const json::Value &value) const {
    expect_type(field, value, json::Type::array);
    return value.array;
  }

  std::vector<int64_t> integer_list(const std::string &field, const json::Value &value) const {
    std::vector<int64_t> result;
    const auto &items = array(field, value);
    for (size_t i = 0; i < items.size(); ++i)
      result.push_back(integer(field + "[" + std::to_string(i) + "]", items[i]));
    return result;
  }

  std::vector<double> number_list(const std::string &field, const json::Value &value) const {
    std::vector<double> result;
    const auto &items = array(field, value);
    for (size_t i = 0; i < items.size(); ++i)
      result.push_back(number(field + "[" + std::to_string(i) + "]", items[i]));
    return result;
  }

  // A relative path to an existing file of the package, or "" for null/absent.
  std::string optional_graph(const std::string &key, const std::string &directory) const {
    const json::Value *value = optional(key);
    if (!value) return "";
    std::string relative = string(key, *value);
    std::string outside = path_outside_package(relative);
    if (!outside.empty()) fail(key, *value, outside);
    std::string problem = file_problem(join_path(directory, relative));
    if (!problem.empty()) fail(key, *value, "'" + relative + "' in " + directory + " " + problem);
    return relative;
  }

 private:
  std::string path_;
  json::Value root_;
};

std::string number_text(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

std::string index_field(const std::string &field, size_t index) {
  return field + "[" + std::to_string(index) + "]";
}

// The tensors' shapes (shapes_key: "input_shapes"/"output_shapes"): non-empty, batch first,
// each dimension in 1..2^31 and the whole small enough for size().
std::vector<TensorInfo> read_tensor_shapes(const JsonFile &manifest, int batch,
                                           const std::string &shapes_key) {
  const auto &shapes = manifest.array(shapes_key, manifest.required(shapes_key));
  if (shapes.empty())
    manifest.fail(shapes_key, manifest.required(shapes_key), "expected at least one tensor");
  std::vector<TensorInfo> tensors(shapes.size());

  for (size_t t = 0; t < shapes.size(); ++t) {
    std::string field = index_field(shapes_key, t);
    tensors[t].shape = manifest.integer_list(field, shapes[t]);
    const auto &shape = tensors[t].shape;
    if (shape.empty()) manifest.fail(field, shapes[t], "expected a non-empty shape");
    for (size_t d = 0; d < shape.size(); ++d)
      if (shape[d] <= 0 || shape[d] > (int64_t{1} << 31))
        manifest.fail(index_field(field, d), shapes[t].array[d],
                      "expected a dimension in 1..2^31, got " + std::to_string(shape[d]));
    if (shape[0] != batch)
      manifest.fail(index_field(field, 0), shapes[t].array[0],
                    "batch dimension " + std::to_string(shape[0]) +
                        " does not match model.json batch " + std::to_string(batch));
    // Overflow guard for size(): the product must fit comfortably.
    long double elements = 1;
    for (int64_t dim : shape) elements *= static_cast<long double>(dim);
    if (elements > static_cast<long double>(int64_t{1} << 40))
      manifest.fail(field, shapes[t], "tensor " + shape_text(shape) + " is too large");
  }
  return tensors;
}

// Per-dimension (low, high) padding (padding_key, optional), kept when any is non-zero.
void read_tensor_padding(const JsonFile &manifest, const std::string &padding_key,
                         const std::string &shapes_key, std::vector<TensorInfo> &tensors) {
  if (const json::Value *paddings = manifest.optional(padding_key)) {
    const auto &items = manifest.array(padding_key, *paddings);
    if (items.size() != tensors.size())
      manifest.fail(padding_key, *paddings,
                    "expected " + std::to_string(tensors.size()) + " entries (one per " +
                        shapes_key + "), got " + std::to_string(items.size()));
    for (size_t t = 0; t < items.size(); ++t) {
      std::string field = index_field(padding_key, t);
      std::vector<int64_t> flat = manifest.integer_list(field, items[t]);
      const auto &shape = tensors[t].shape;
      if (flat.size() != 2 * shape.size())
        manifest.fail(field, items[t],
                      "expected " + std::to_string(2 * shape.size()) +
                          " numbers (low, high per dimension of " + shape_text(shape) + "), got " +
                          std::to_string(flat.size()));
      bool any = false;
      std::vector<std::pair<int64_t, int64_t>> padding;
      for (size_t d = 0; d < shape.size(); ++d) {
        int64_t low = flat[2 * d], high = flat[2 * d + 1];
        if (low < 0 || high < 0)
          manifest.fail(field, items[t], "negative padding in dimension " + std::to_string(d));
        if (low >= shape[d] || high >= shape[d] - low)
          manifest.fail(field, items[t],
                        "padding " + std::to_string(low) + "+" + std::to_string(high) +
                            " in dimension " + std::to_string(d) + " leaves nothing of size " +
                            std::to_string(shape[d]) + " of shape " + shape_text(shape));
        any = any || low || high;
        padding.emplace_back(low, high);
      }
      if (any) tensors[t].padding = std::move(padding);
    }
  }
}

// [scale, zero_point] per tensor (params_key): a normal float32 scale, an int8 zero point.
void read_quantisation_params(const JsonFile &manifest, const std::string &params_key,
                              bool is_input, std::vector<TensorInfo> &tensors) {
  const json::Value &params_value = manifest.required(params_key);
  const auto &params = manifest.array(params_key, params_value);
  if (params.size() != tensors.size())
    manifest.fail(
        params_key, params_value,
        "expected " + std::to_string(tensors.size()) + " [scale, zero_point] pairs (one per " +
            std::string(is_input ? "input" : "output") + "), got " + std::to_string(params.size()));
  for (size_t t = 0; t < params.size(); ++t) {
    std::string field = index_field(params_key, t);
    const auto &pair = manifest.array(field, params[t]);
    if (pair.size() != 2)
      manifest.fail(
          field, params[t],
          "expected [scale, zero_point], got " + std::to_string(pair.size()) + " numbers");
    double scale = manifest.number(index_field(field, 0), pair[0]);
    // ONNX scales are float32: a double the float cannot hold would become 0 or inf there.
    if (!std::isfinite(scale) || scale <= 0)
      manifest.fail(index_field(field, 0), pair[0],
                    "scale must be finite and > 0, got " + number_text(scale));
    if (scale < FLT_MIN || scale > FLT_MAX)
      manifest.fail(index_field(field, 0), pair[0],
                    "scale " + number_text(scale) +
                        " is outside the normal float32 range (1.18e-38..3.40e+38)");
    int64_t zero_point = manifest.integer(index_field(field, 1), pair[1]);
    if (zero_point < -128 || zero_point > 127)
      manifest.fail(
          index_field(field, 1), pair[1],
          "zero_point must be in the int8 range -128..127, got " + std::to_string(zero_point));
    tensors[t].scale = scale;
    tensors[t].zero_point = static_cast<int>(zero_point);
  }
}

// The tensors' names (names_key, optional).
void read_tensor_names(const JsonFile &manifest, const std::string &names_key,
                       std::vector<TensorInfo> &tensors) {
  if (const json::Value *names = manifest.optional(names_key)) {
    const auto &items = manifest.array(names_key, *names);
    if (items.size() != tensors.size())
      manifest.fail(names_key, *names,
                    "expected " + std::to_string(tensors.size()) + " names, got " +
                        std::to_string(items.size()));
    for (size_t t = 0; t < items.size(); ++t)
      tensors[t].name = manifest.string(index_field(names_key, t), items[t]);
  }
}

// The tensors' dtypes (dtypes_key, optional): "int8", the only device dtype.
void check_tensor_dtypes(const JsonFile &manifest, const std::string &dtypes_key,
                         const std::vector<TensorInfo> &tensors) {
  if (const json::Value *dtypes = manifest.optional(dtypes_key)) {
    const auto &items = manifest.array(dtypes_key, *dtypes);
    if (items.size() != tensors.size())
      manifest.fail(dtypes_key, *dtypes,
                    "expected " + std::to_string(tensors.size()) + " dtypes, got " +
                        std::to_string(items.size()));
    for (size_t t = 0; t < items.size(); ++t) {
      std::string dtype = manifest.string(index_field(dtypes_key, t), items[t]);
      if (dtype != "int8")
        manifest.fail(index_field(dtypes_key, t), items[t],
                      "expected \"int8\" (the only device dtype), got \"" + dtype + "\"");
    }
  }
}

// Shapes and padding of the inputs or the outputs ("inputs"/"outputs").
std::vector<TensorInfo> read_tensors(const JsonFile &manifest, int batch, bool is_input) {
  const std::string shapes_key = is_input ? "input_shapes" : "output_shapes";
  const std::string padding_key = is_input ? "n_padded_ch_inputs" : "n_padded_ch_outputs";
  const std::string params_key = is_input ? "quantize_params" : "dequantize_params";
  const std::string names_key = is_input ? "input_names" : "output_names";
  const std::string dtypes_key = is_input ? "input_dtypes" : "output_dtypes";
  std::vector<TensorInfo> tensors = read_tensor_shapes(manifest, batch, shapes_key);
  read_tensor_padding(manifest, padding_key, shapes_key, tensors);
  read_quantisation_params(manifest, params_key, is_input, tensors);
  read_tensor_names(manifest, names_key, tensors);
  check_tensor_dtypes(manifest, dtypes_key, tensors);
  return tensors;
}

std::vector<std::optional<InputPreprocess>> read_input_preprocess(const JsonFile &manifest,
                                                                  size_t count) {
  std::vector<std::optional<InputPreprocess>> result(count);
  const json::Value *value = manifest.optional("input_preprocess");
  if (!value) return result;
  const auto &items = manifest.array("input_preprocess", *value);
  if (items.size() != count)
    manifest.fail("input_preprocess", *value,
                  "expected " + std::to_string(count) + " entries (one per input), got " +
                      std::to_string(items.size()));
  for (size_t t = 0; t < count; ++t) {
    std::string field = index_field("input_preprocess", t);
    if (items[t].is_null()) continue;
    manifest.expect_type(field, items[t], json::Type::object);
    InputPreprocess pre;
    size_t channels = 3;
    if (const json::Value *format = items[t].find("color_format")) {
      pre.color_format = manifest.string(field + ".color_format", *format);
      if (pre.color_format != "RGB" && pre.color_format != "BGR" && pre.color_format != "GRAY")
        manifest.fail(field + ".color_format", *format,
                      "expected \"RGB\", \"BGR\" or \"GRAY\", got \"" + pre.color_format + "\"");
      if (pre.color_format == "GRAY") channels = 1;
    }
    if (const json::Value *scale = items[t].find("pixel_scale")) {
      pre.pixel_scale = manifest.number(field + ".pixel_scale", *scale);
      if (!std::isfinite(pre.pixel_scale) || pre.pixel_scale == 0)
        manifest.fail(field + ".pixel_scale", *scale, "expected a finite non-zero number");
    }
    if (const json::Value *mean = items[t].find("mean")) {
      pre.mean = manifest.number_list(field + ".mean", *mean);
      if (pre.mean.size() != channels)
        manifest.fail(field + ".mean", *mean,
                      "expected " + std::to_string(channels) + " values for " + pre.color_format +
                          ", got " + std::to_string(pre.mean.size()));
    }
    if (const json::Value *std_dev = items[t].find("std")) {
      pre.std = manifest.number_list(field + ".std", *std_dev);
      if (pre.std.size() != channels)
        manifest.fail(field + ".std", *std_dev,
                      "expected " + std::to_string(channels) + " values for " + pre.color_format +
                          ", got " + std::to_string(pre.std.size()));
      for (size_t c = 0; c < pre.std.size(); ++c)
        if (!std::isfinite(pre.std[c]) || pre.std[c] == 0)
          manifest.fail(index_field(field + ".std", c), std_dev->array[c],
                        "expected a finite non-zero number");
    }
    if (const json::Value *layout = items[t].find("layout")) {
      pre.layout = manifest.string(field + ".layout", *layout);
      if (pre.layout != "NCHW" && pre.layout != "NHWC")
        manifest.fail(field + ".layout", *layout,
                      "expected \"NCHW\" or \"NHWC\", got \"" + pre.layout + "\"");
    }
    result[t] = std::move(pre);
  }
  return result;
}

// A float-model shape of `tensor` at manifest `field`: positive dims holding exactly the
// elements of the unpadded tensor (`kind` "input" or "output", for the message).
std::vector<int64_t> read_original_shape(const JsonFile &manifest, const std::string &field,
                                         const json::Value &shape, const TensorInfo &tensor,
                                         const std::string &kind) {
  std::vector<int64_t> original = manifest.integer_list(field, shape);
  int64_t unpadded_elements = 1;
  for (int64_t dim : tensor.unpadded_shape()) unpadded_elements *= dim;
  // Multiplied only while it can still equal the unpadded count (no int64 overflow).
  int64_t original_elements = 1;
  for (int64_t dim : original) {
    if (dim <= 0) manifest.fail(field, shape, "expected positive dimensions");
    original_elements = original_elements > unpadded_elements / dim ? unpadded_elements + 1
                                                                    : original_elements * dim;
  }
  if (original.empty() || original_elements != unpadded_elements)
    manifest.fail(field, shape,
                  "shape " + shape_text(original) + " does not hold the " +
                      std::to_string(unpadded_elements) + " elements of the unpadded " + kind +
                      " " + shape_text(tensor.unpadded_shape()));
  return original;
}

// Axelera's "input_shapes_original" / "output_shapes_original" (optional): one float-model
// shape per tensor, checked like original_shape; informational (scripts written for Axelera's
// packages read them), so nothing is kept.
void check_shapes_original(const JsonFile &manifest, const std::vector<TensorInfo> &tensors,
                           const std::string &key, const std::string &kind) {
  const json::Value *value = manifest.optional(key);
  if (!value) return;
  const auto &items = manifest.array(key, *value);
  if (items.size() != tensors.size())
    manifest.fail(key, *value,
                  "expected " + std::to_string(tensors.size()) + " shapes (one per " + kind +
                      "), got " + std::to_string(items.size()));
  for (size_t t = 0; t < items.size(); ++t)
    read_original_shape(manifest, index_field(key, t), items[t], tensors[t], kind);
}

// "output_info" (key "output_info", kind "output") or "input_info" ("input_info", "input").
std::vector<OutputInfo> read_tensor_info(const JsonFile &manifest,
                                         const std::vector<TensorInfo> &outputs,
                                         const std::string &key, const std::string &kind) {
  std::vector<OutputInfo> result(outputs.size());
  for (size_t t = 0; t < outputs.size(); ++t)
    result[t].original_shape = outputs[t].unpadded_shape();
  const json::Value *value = manifest.optional(key);
  if (!value) return result;
  const auto &items = manifest.array(key, *value);
  if (items.size() != outputs.size())
    manifest.fail(key, *value,
                  "expected " + std::to_string(outputs.size()) + " entries (one per " + kind +
                      "), got " + std::to_string(items.size()));
  for (size_t t = 0; t < items.size(); ++t) {
    std::string field = index_field(key, t);
    if (items[t].is_null()) continue;
    manifest.expect_type(field, items[t], json::Type::object);
    if (const json::Value *layout = items[t].find("layout")) {
      result[t].layout = manifest.string(field + ".layout", *layout);
      if (result[t].layout != "NHWC" && result[t].layout != "none")
        manifest.fail(field + ".layout", *layout,
                      "expected \"NHWC\" or \"none\", got \"" + result[t].layout + "\"");
    }
    if (const json::Value *shape = items[t].find("original_shape"))
      result[t].original_shape =
          read_original_shape(manifest, field + ".original_shape", *shape, outputs[t], kind);
  }
  return result;
}

// The ONNX graph at `path`, which model.json's `field` names (`what` says what it is).
onnx::ModelProto read_onnx_graph(const std::string &path, const std::string &field,
                                 const std::string &what) {
  std::string bytes = read_file(path, what + " (model.json field '" + field + "')");
  onnx::ModelProto model;
  if (!model.ParseFromString(bytes))
    throw InvalidArgument(path +
                          ": not a valid ONNX model (protobuf parse failed); model.json "
                          "field '" +
                          field + "' must name the " + what);
  // An empty file parses as an empty ModelProto: still no graph to run.
  if (!model.has_graph())
    throw InvalidArgument(
        path + ": " + (bytes.empty() ? std::string("empty file") : "ONNX model without a graph") +
        ", not an ONNX graph; model.json field '" + field + "' must name the " + what);
  return model;
}

onnx::ModelProto read_core_graph(const ModelPackage &package) {
  return read_onnx_graph(package.core_graph_path(), "core_graph", "core ONNX graph");
}

// The graph's real inputs: its inputs that are not initializers.
std::vector<const onnx::ValueInfoProto *> real_inputs(const onnx::GraphProto &graph) {
  std::vector<const onnx::ValueInfoProto *> inputs;
  for (const auto &input : graph.input()) {
    bool is_initializer = false;
    for (const auto &init : graph.initializer())
      if (init.name() == input.name()) {
        is_initializer = true;
        break;
      }
    if (!is_initializer) inputs.push_back(&input);
  }
  return inputs;
}

std::vector<const onnx::ValueInfoProto *> outputs_of(const onnx::GraphProto &graph) {
  std::vector<const onnx::ValueInfoProto *> outputs;
  for (const auto &output : graph.output()) outputs.push_back(&output);
  return outputs;
}

// The value's shape when every dimension is a fixed number, else nothing.
std::optional<std::vector<int64_t>> fixed_shape(const onnx::ValueInfoProto &value) {
  const auto &tensor_type = value.type().tensor_type();
  if (!tensor_type.has_shape()) return std::nullopt;
  std::vector<int64_t> shape;
  for (const auto &dim : tensor_type.shape().dim()) {
    if (!dim.has_dim_value()) return std::nullopt;
    shape.push_back(dim.dim_value());
  }
  return shape;
}

bool is_int8_tensor(const onnx::ValueInfoProto &value) {
  return value.type().has_tensor_type() &&
         value.type().tensor_type().elem_type() == onnx::TensorProto::INT8;
}

// A package without manifest.json: Axelera's TensorInfo carries quantisation and padding only
// "if manifest.json was found in the model", so the core graph's own int8 inputs and outputs
// describe the tensors (batch from model.json, no padding, scale 1, zero point 0).
void tensors_from_core_graph(ModelPackage &package) {
  const std::string path = package.core_graph_path();
  const onnx::ModelProto model = read_core_graph(package);
  auto describe = [&](const std::vector<const onnx::ValueInfoProto *> &values, const char *kind) {
    if (values.empty())
      throw InvalidArgument(path + ": core graph has no " + kind + "s (and the package has no " +
                            package.manifest_path + " to describe them)");
    std::vector<TensorInfo> tensors;
    for (size_t t = 0; t < values.size(); ++t) {
      const onnx::ValueInfoProto &value = *values[t];
      std::string where = std::string(kind) + " " + std::to_string(t) + " '" + value.name() + "'";
      if (!is_int8_tensor(value))
        throw InvalidArgument(path + ": " + where +
                              " must be an int8 tensor (the device's tensors; the package has no " +
                              package.manifest_path + ")");
      auto shape = fixed_shape(value);
      if (!shape || shape->empty() || (*shape)[0] != 1)
        throw InvalidArgument(path + ": " + where +
                              " needs a fixed batch-1 shape when the package has no " +
                              package.manifest_path);
      for (int64_t dim : *shape)
        if (dim <= 0 || dim > (int64_t{1} << 31))
          throw InvalidArgument(path + ": " + where + " has dimension " + std::to_string(dim) +
                                "; expected 1..2^31");
      TensorInfo tensor;
      tensor.name = value.name();
      tensor.shape = *shape;
      tensor.shape[0] = package.batch;
      tensors.push_back(std::move(tensor));
    }
    return tensors;
  };
  package.inputs = describe(real_inputs(model.graph()), "input");
  package.outputs = describe(outputs_of(model.graph()), "output");
  // What an absent manifest entry means: no preprocessing recipe, the tensors' own shapes.
  package.input_preprocess.assign(package.inputs.size(), std::nullopt);
  for (const auto &input : package.inputs) package.input_info.push_back({input.shape, "none"});
  for (const auto &output : package.outputs) package.output_info.push_back({output.shape, "none"});
}

// The core graph's real inputs (initializers excluded) and outputs must be int8 tensors of the
// manifest's padded shapes with batch 1.
void check_core_graph(ModelPackage &package) {
  const std::string path = package.core_graph_path();
  const onnx::ModelProto model = read_core_graph(package);
  const onnx::GraphProto &graph = model.graph();
  std::vector<const onnx::ValueInfoProto *> graph_inputs = real_inputs(graph);
  std::vector<const onnx::ValueInfoProto *> graph_outputs = outputs_of(graph);

  auto check = [&](const std::vector<const onnx::ValueInfoProto *> &values,
                   std::vector<TensorInfo> &tensors, const char *kind, const char *manifest_field) {
    if (values.size() != tensors.size())
      throw InvalidArgument(path + ": core graph has " + std::to_string(values.size()) + " " +
                            kind + "s but " + package.manifest_path + " field '" + manifest_field +
                            "' lists " + std::to_string(tensors.size()));
    for (size_t t = 0; t < values.size(); ++t) {
      const onnx::ValueInfoProto &value = *values[t];
      std::string where = std::string(kind) + " " + std::to_string(t) + " '" + value.name() + "'";
      if (!tensors[t].name.empty() && tensors[t].name != value.name())
        throw InvalidArgument(package.manifest_path + ": field '" + kind + "_names[" +
                              std::to_string(t) + "]' is '" + tensors[t].name + "' but " + path +
                              " names its " + kind + " " + std::to_string(t) + " '" + value.name() +
                              "'");
      if (tensors[t].name.empty()) tensors[t].name = value.name();
      if (!is_int8_tensor(value))
        throw InvalidArgument(path + ": " + where + " must be an int8 tensor (manifest.json '" +
                              manifest_field + "' describes int8 device tensors)");
      std::vector<int64_t> expected = tensors[t].shape;
      expected[0] = 1;
      auto actual = fixed_shape(value);
      if (!actual)
        throw InvalidArgument(path + ": " + where + " has no fixed shape; expected " +
                              shape_text(expected) + " (batch 1 of " + package.manifest_path +
                              " field '" + manifest_field + "[" + std::to_string(t) + "]')");
      if (*actual != expected)
        throw InvalidArgument(path + ": " + where + " has shape " + shape_text(*actual) + " but " +
                              package.manifest_path + " field '" + manifest_field + "[" +
                              std::to_string(t) + "]' " + shape_text(tensors[t].shape) +
                              " needs the batch-1 core shape " + shape_text(expected));
    }
  };
  check(graph_inputs, package.inputs, "input", "input_shapes");
  check(graph_outputs, package.outputs, "output", "output_shapes");
}

// Where a package's files are: its directory, and the model file in it ("model.json", or the
// other .json file given in its place).
struct PackageLocation {
  std::string directory;
  std::string model_file = "model.json";
};

// `path` as a package directory or its model file; InvalidArgument saying what to pass when it
// is neither (empty, a NUL, a missing path, an ONNX file, the manifest).
PackageLocation locate_package(const std::string &path) {
  PackageLocation where;
  std::string &directory = where.directory;
  directory = path;
  while (directory.size() > 1 && directory.back() == '/') directory.pop_back();
  if (directory.empty())
    throw InvalidArgument("model path is empty; expected a package directory or its model.json");
  if (path.find('\0') != std::string::npos)
    throw InvalidArgument("model path '" + display_text(path) +
                          "' contains a NUL character; expected a package directory or its "
                          "model.json");
  // A package directory, or its model file: model.json, or any other .json naming the same
  // package (Axelera's load_model takes "a file"), read in place of model.json.
  if (!is_directory(directory)) {
    if (ends_with(directory, ".json") && is_regular_file(directory)) {
      size_t slash = directory.rfind('/');
      where.model_file = slash == std::string::npos ? directory : directory.substr(slash + 1);
      directory = slash == std::string::npos ? "." : slash == 0 ? "/" : directory.substr(0, slash);
    } else if (ends_with(directory, ".json")) {
      throw InvalidArgument("model file " + path + " " + file_problem(directory));
    } else if (is_regular_file(directory)) {
      throw InvalidArgument("model path " + path +
                            " is a file but not a model file; expected a package directory or "
                            "its model.json (an ONNX model needs axcompile first)");
    } else {
      throw InvalidArgument("model package " + path + " " + file_problem(directory) +
                            " (expected a package directory or its model.json)");
    }
  }
  // Axelera's packages also hold a manifest.json; given in place of the model file it would only
  // fail for lacking model.json's fields, so say what to pass instead.
  if (where.model_file == "manifest.json")
    throw InvalidArgument("model file " + path +
                          " is the package's manifest, not its model file: pass the package "
                          "directory " +
                          directory + " or its model.json");
  return where;
}

// `directory` (an existing directory, no trailing '/') as an absolute path: the working
// directory prepended to a relative one, a trailing "/." dropped ("." is the working directory's
// own name). Nothing else is resolved, so symlinks stay as given.
std::string absolute_directory(const std::string &directory) {
  if (directory.front() == '/') return directory;
  std::error_code error;
  std::string absolute = std::filesystem::absolute(directory, error).string();
  if (error) return directory;  // no working directory to resolve against: keep it as given
  while (absolute.size() > 2 && absolute.compare(absolute.size() - 2, 2, "/.") == 0)
    absolute.resize(absolute.size() - 2);
  return absolute;
}

// model.json's fields into `package`: format version, name, core graph (which must exist),
// batch, input layout and the host graphs (which must parse).
void read_model_file(ModelPackage &package) {
  const std::string &directory = package.directory;
  const JsonFile model(package.model_json_path, "model file");
  {
    const json::Value &version = model.required("format_version");
    int64_t format_version = model.integer("format_version", version);
    if (format_version != 1)
      model.fail("format_version", version,
                 "unsupported format version " + std::to_string(format_version) +
                     " (this runtime reads version 1)");
    package.format_version = 1;
  }
  if (const json::Value *name = model.optional("name")) {
    package.name = model.string("name", *name);
  } else {
    size_t slash = directory.rfind('/');
    package.name = slash == std::string::npos ? directory : directory.substr(slash + 1);
  }
  {
    const json::Value &core = model.required("core_graph");
    package.core_graph = model.string("core_graph", core);
    std::string outside = path_outside_package(package.core_graph);
    if (!outside.empty()) model.fail("core_graph", core, outside);
    std::string problem = file_problem(package.core_graph_path());
    if (!problem.empty())
      model.fail("core_graph", core,
                 "core graph '" + package.core_graph + "' in " + directory + " " + problem);
  }
  if (const json::Value *batch = model.optional("batch")) {
    int64_t value = model.integer("batch", *batch);
    if (value < 1 || value > 1024)
      model.fail("batch", *batch, "expected a batch in 1..1024, got " + std::to_string(value));
    package.batch = static_cast<int>(value);
  }
  if (const json::Value *layout = model.optional("input_tensor_layout")) {
    package.input_tensor_layout = model.string("input_tensor_layout", *layout);
    if (package.input_tensor_layout != "NHWC")
      model.fail("input_tensor_layout", *layout,
                 "expected \"NHWC\" (the only device layout), got \"" +
                     package.input_tensor_layout + "\"");
  }
  package.preamble_graph = model.optional_graph("preamble_graph", directory);
  package.postamble_graph = model.optional_graph("postamble_graph", directory);
  // Host graphs are run by their consumers (axpreprocess, a decoder); a corrupt one is still
  // the package's fault, reported when it is opened rather than at the first frame.
  if (!package.preamble_graph.empty())
    read_onnx_graph(join_path(directory, package.preamble_graph), "preamble_graph",
                    "host preamble ONNX graph");
  if (!package.postamble_graph.empty())
    read_onnx_graph(join_path(directory, package.postamble_graph), "postamble_graph",
                    "host postamble ONNX graph");
}

// manifest.json's fields into `package`: its version, the file names it shares with model.json
// (which must agree), the device tensors (checked against the core graph) and their
// preprocessing and quantisation.
void read_manifest(ModelPackage &package, const std::string &model_file) {
  const JsonFile manifest(package.manifest_path, "manifest file");
  if (const json::Value *version = manifest.optional("manifest_version")) {
    int64_t value = manifest.integer("manifest_version", *version);
    if (value != 1)
      manifest.fail("manifest_version", *version,
                    "unsupported manifest version " + std::to_string(value) + " (expected 1)");
  }
  if (const json::Value *lib = manifest.optional("model_lib_file")) {
    std::string value = manifest.string("model_lib_file", *lib);
    if (value != "model.json" && value != model_file)
      manifest.fail("model_lib_file", *lib,
                    "expected \"model.json\"" +
                        (model_file == "model.json" ? "" : " or \"" + model_file + "\"") +
                        ", got \"" + value + "\"");
  }
  if (const json::Value *quantized = manifest.optional("quantized_model_file")) {
    std::string value = manifest.string("quantized_model_file", *quantized);
    if (value != package.core_graph)
      manifest.fail(
          "quantized_model_file", *quantized,
          "\"" + value + "\" differs from model.json core_graph \"" + package.core_graph + "\"");
  }
  auto check_same_graph = [&](const char *key, const std::string &model_value,
                              const char *model_key) {
    const json::Value *value = manifest.root().find(key);
    if (!value) return;
    std::string manifest_value = value->is_null() ? "" : manifest.string(key, *value);
    if (manifest_value != model_value)
      manifest.fail(key, *value,
                    "\"" + manifest_value + "\" differs from model.json " + model_key + " \"" +
                        model_value + "\"");
  };
  check_same_graph("preprocess_graph", package.preamble_graph, "preamble_graph");
  check_same_graph("postprocess_graph", package.postamble_graph, "postamble_graph");

  package.inputs = read_tensors(manifest, package.batch, true);
  package.outputs = read_tensors(manifest, package.batch, false);
  check_core_graph(package);
  package.input_preprocess = read_input_preprocess(manifest, package.inputs.size());
  package.output_info = read_tensor_info(manifest, package.outputs, "output_info", "output");
  package.input_info = read_tensor_info(manifest, package.inputs, "input_info", "input");
  check_shapes_original(manifest, package.inputs, "input_shapes_original", "input");
  check_shapes_original(manifest, package.outputs, "output_shapes_original", "output");
}

}  // namespace

std::shared_ptr<const ModelPackage> load_model_package(const std::string &path) {
  auto package = std::make_shared<ModelPackage>();
  const PackageLocation where = locate_package(path);
  // Files of the package are read again after this (the core graph when an instance is made,
  // the host graphs by the elements): from the directory found now, even once the process has
  // changed its working directory.
  package->directory = absolute_directory(where.directory);
  package->model_json_path = join_path(where.directory, where.model_file);
  package->manifest_path = join_path(where.directory, "manifest.json");
  read_model_file(*package);
  // No manifest.json at all: the core graph describes the tensors. Something else in its place
  // (a directory, a dangling or looping symlink) is a broken package, not a missing manifest.
  if (!anything_at(package->manifest_path)) {
    tensors_from_core_graph(*package);
    return package;
  }
  read_manifest(*package, where.model_file);
  return package;
}

}  // namespace axstream::runtime
