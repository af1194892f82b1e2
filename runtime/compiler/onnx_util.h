// Small helpers over the onnx protobuf the compiler rewrites: tensor <-> vector conversion,
// node construction, opset upgrade of nodes to the opset the QDQ core graph needs.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "axstream/runtime/engine.h"

namespace axstream::compiler {

onnx::ModelProto load_onnx(const std::string &path);
std::string serialize(const onnx::ModelProto &model, const std::string &what);

std::vector<float> floats_of(const onnx::TensorProto &tensor, const std::string &what);
std::vector<int64_t> int64s_of(const onnx::TensorProto &tensor, const std::string &what);
std::vector<int64_t> dims_of(const onnx::TensorProto &tensor);

onnx::TensorProto make_tensor(const std::string &name, int32_t data_type,
                              const std::vector<int64_t> &dims, const void *data, size_t bytes);
onnx::TensorProto float_tensor(const std::string &name, const std::vector<int64_t> &dims,
                               const std::vector<float> &values);
onnx::TensorProto int64_tensor(const std::string &name, const std::vector<int64_t> &dims,
                               const std::vector<int64_t> &values);
// dense buffer of `desc` (as the engine returns it) -> initializer
onnx::TensorProto tensor_from_engine(const std::string &name, const engine::TensorDesc &desc,
                                     const void *data);
int32_t onnx_type_of(engine::DType dtype);

onnx::NodeProto make_node(const std::string &op, const std::vector<std::string> &inputs,
                          const std::vector<std::string> &outputs, const std::string &name);
void set_attr(onnx::NodeProto &node, const std::string &name, int64_t value);
void set_attr(onnx::NodeProto &node, const std::string &name, const std::vector<int64_t> &value);
const onnx::AttributeProto *find_attr(const onnx::NodeProto &node, const std::string &name);
int64_t attr_int(const onnx::NodeProto &node, const std::string &name, int64_t fallback);
void remove_attr(onnx::NodeProto &node, const std::string &name);

onnx::ValueInfoProto value_info(const std::string &name, int32_t elem_type,
                                const std::vector<int64_t> &shape);

std::string node_label(const onnx::NodeProto &node);  // "Conv node 'conv_1'"

// Default-domain opset of the model (1 when absent).
int64_t default_opset(const onnx::ModelProto &model);

// Rewrites nodes written for `from_opset` into their opset-13 form (attributes that became
// inputs, Softmax's 2-D coercion, Dropout -> Identity), adding initializers to `extra`.
// `shapes` gives tensor shapes where a conversion needs a rank.
std::vector<onnx::NodeProto> upgrade_to_opset13(
    const std::vector<onnx::NodeProto> &nodes, int64_t from_opset,
    const std::map<std::string, std::vector<int64_t>> &shapes,
    std::vector<onnx::TensorProto> &extra);

}  // namespace axstream::compiler
