#include "axstream/decoders/output_converter.h"

#include <algorithm>
#include <numeric>
#include <sstream>

#include "axstream/error.h"
#include "axstream/runtime/engine.h"
#include "axstream/runtime/model_package.h"

namespace axstream::decoders {

size_t OutputSpec::padded_bytes() const {
  size_t bytes = 1;
  for (int64_t dim : shape) bytes *= static_cast<size_t>(dim);
  return bytes;
}

std::vector<int64_t> OutputSpec::unpadded_shape() const {
  std::vector<int64_t> unpadded = shape;
  for (size_t i = 0; i < padding.size() && i < unpadded.size(); ++i)
    unpadded[i] -= padding[i].first + padding[i].second;
  return unpadded;
}

static size_t product(const std::vector<int64_t> &shape, size_t from = 0) {
  size_t count = 1;
  for (size_t i = from; i < shape.size(); ++i) count *= static_cast<size_t>(shape[i]);
  return count;
}

QuantizedTensor convert_output_quantized(const OutputSpec &spec, const int8_t *raw,
                                         size_t raw_bytes, int item) {
  const size_t rank = spec.shape.size();
  if (rank == 0)
    throw InvalidArgument("output '" + spec.name + "': expected a shape, got a scalar");
  if (!spec.padding.empty() && spec.padding.size() != rank)
    throw InvalidArgument("output '" + spec.name + "': padding has " +
                          std::to_string(spec.padding.size()) + " dimensions, expected " +
                          std::to_string(rank));
  if (raw_bytes != spec.padded_bytes())
    throw InvalidArgument("output '" + spec.name + "': expected " +
                          std::to_string(spec.padded_bytes()) + " bytes of int8 " +
                          shape_to_string(spec.shape) + ", got " + std::to_string(raw_bytes));
  for (const auto &[low, high] : spec.padding)
    if (low < 0 || high < 0)
      throw InvalidArgument("output '" + spec.name + "': padding (" + std::to_string(low) + ", " +
                            std::to_string(high) + "), expected non-negative amounts");
  const std::vector<int64_t> unpadded = spec.unpadded_shape();
  for (int64_t dim : unpadded)
    if (dim <= 0)
      throw InvalidArgument("output '" + spec.name + "': padding leaves shape " +
                            shape_to_string(unpadded) + ", expected positive dimensions");
  const int64_t batch = unpadded[0];
  if (item < 0 || item >= batch)
    throw InvalidArgument("output '" + spec.name + "': batch item " + std::to_string(item) +
                          " requested, expected 0.." + std::to_string(batch - 1));

  // Depad batch item `item` into an unpadded (1, ...) tensor.
  std::vector<int64_t> item_shape = unpadded;
  item_shape[0] = 1;
  const size_t count = product(item_shape);
  std::vector<int8_t> values(count);
  std::vector<size_t> padded_strides(rank, 1);
  for (size_t d = rank - 1; d > 0; --d)
    padded_strides[d - 1] = padded_strides[d] * static_cast<size_t>(spec.shape[d]);
  auto low = [&](size_t d) { return spec.padding.empty() ? 0 : spec.padding[d].first; };
  const size_t inner = static_cast<size_t>(item_shape[rank - 1]);
  std::vector<int64_t> index(rank, 0);  // over item_shape minus the last dimension
  for (size_t out = 0; out < count; out += inner) {
    size_t offset = static_cast<size_t>(item + low(0)) * padded_strides[0];
    for (size_t d = 1; d < rank; ++d)
      offset += static_cast<size_t>(index[d] + low(d)) * padded_strides[d];
    std::copy(raw + offset, raw + offset + inner, values.begin() + long(out));
    for (size_t d = rank - 1; d-- > 1;) {
      if (++index[d] < item_shape[d]) break;
      index[d] = 0;
    }
  }

  QuantizedTensor tensor;
  tensor.name = spec.name;
  // Dequantised in float (QuantizedTensor::dequantize): a zero point outside int8 must not
  // overflow int (UBSan, fuzz_decoders).
  tensor.scale = static_cast<float>(spec.scale);
  tensor.zero_point = spec.zero_point;
  if (spec.nhwc_to_nchw && rank >= 3) {
    // (1, d1, ..., dk, C) -> (1, C, d1, ..., dk)
    const size_t channels = static_cast<size_t>(item_shape[rank - 1]);
    const size_t spatial = count / channels;
    tensor.data.resize(count);
    for (size_t s = 0; s < spatial; ++s)
      for (size_t c = 0; c < channels; ++c) tensor.data[c * spatial + s] = values[s * channels + c];
    tensor.shape = {1, static_cast<int64_t>(channels)};
    tensor.shape.insert(tensor.shape.end(), item_shape.begin() + 1, item_shape.end() - 1);
  } else {
    tensor.data = std::move(values);
    tensor.shape = item_shape;
  }
  if (!spec.original_shape.empty()) {
    if (product(spec.original_shape) != count)
      throw InvalidArgument(
          "output '" + spec.name + "': original_shape " + shape_to_string(spec.original_shape) +
          " has " + std::to_string(product(spec.original_shape)) + " elements, expected " +
          std::to_string(count) + " (unpadded " + shape_to_string(item_shape) + ")");
    tensor.shape = spec.original_shape;
  }
  return tensor;
}

FloatTensor convert_output(const OutputSpec &spec, const int8_t *raw, size_t raw_bytes, int item) {
  return convert_output_quantized(spec, raw, raw_bytes, item).dequantized();
}

OutputConverter::OutputConverter(std::vector<OutputSpec> specs, std::string postamble_path)
    : specs_(std::move(specs)), postamble_path_(std::move(postamble_path)) {
  if (postamble_path_.empty()) return;
  program_ = engine::Program::from_file(postamble_path_);
  if (program_->inputs().size() != specs_.size())
    throw InvalidArgument("postamble '" + postamble_path_ + "': has " +
                          std::to_string(program_->inputs().size()) + " inputs, expected " +
                          std::to_string(specs_.size()) + " (one per core output)");
  for (const auto &desc : program_->outputs())
    if (desc.dtype != engine::DType::f32)
      throw InvalidArgument("postamble '" + postamble_path_ + "': output '" + desc.name + "' is " +
                            engine::dtype_name(desc.dtype) + ", expected float32");
  executor_ = program_->make_executor();
  find_layout_gathers();
}

// A postamble of data movement only (BlazeFace's Transpose+Reshape per output) maps every output
// element to one element of one core output. Running it once on inputs that hold their own
// element numbers reveals that map, so quantised outputs can be gathered as int8 directly.
void OutputConverter::find_layout_gathers() {
  static const char *const kLayoutOps[] = {"Transpose", "Reshape",  "Squeeze", "Unsqueeze",
                                           "Flatten",   "Identity", "Concat"};
  std::istringstream description(program_->describe());
  std::string line;
  std::getline(description, line);  // "program '...': N steps, ..."
  while (std::getline(description, line)) {
    std::istringstream words(line);
    std::string op;
    words >> op;
    if (op == "input" || op == "output") continue;
    if (std::find(std::begin(kLayoutOps), std::end(kLayoutOps), op) == std::end(kLayoutOps)) return;
  }
  // Element numbers 1.. over all inputs, exact in float up to 2^24.
  std::vector<std::vector<float>> numbered(specs_.size());
  std::vector<size_t> first(specs_.size() + 1, 1);
  for (size_t i = 0; i < specs_.size(); ++i) {
    numbered[i].resize(program_->inputs()[i].element_count());
    first[i + 1] = first[i] + numbered[i].size();
  }
  if (first.back() >= (size_t(1) << 24)) return;
  std::vector<const void *> inputs;
  for (size_t i = 0; i < specs_.size(); ++i) {
    for (size_t j = 0; j < numbered[i].size(); ++j) numbered[i][j] = float(first[i] + j);
    inputs.push_back(numbered[i].data());
  }
  std::vector<std::vector<float>> results(program_->outputs().size());
  std::vector<void *> outputs;
  for (size_t o = 0; o < results.size(); ++o) {
    results[o].resize(program_->outputs()[o].element_count());
    outputs.push_back(results[o].data());
  }
  executor_->run(inputs, outputs);
  std::vector<LayoutGather> gathers(results.size());
  for (size_t o = 0; o < results.size(); ++o) {
    LayoutGather &gather = gathers[o];
    gather.indices.reserve(results[o].size());
    for (float value : results[o]) {
      const size_t number = static_cast<size_t>(value);
      if (value != float(number) || number < 1 || number >= first.back()) return;
      const size_t input =
          size_t(std::upper_bound(first.begin(), first.end(), number) - first.begin()) - 1;
      if (gather.indices.empty()) gather.input = input;
      if (input != gather.input) return;  // mixes core outputs of different quantisation
      gather.indices.push_back(uint32_t(number - first[input]));
    }
  }
  layout_gathers_ = std::move(gathers);
}

OutputConverter::~OutputConverter() = default;

std::unique_ptr<OutputConverter> OutputConverter::from_package(
    const runtime::ModelPackage &package) {
  std::vector<OutputSpec> specs;
  for (size_t i = 0; i < package.outputs.size(); ++i) {
    const runtime::TensorInfo &info = package.outputs[i];
    if (info.dtype != engine::DType::i8)
      throw InvalidArgument("output '" + info.name + "' of '" + package.name + "' is " +
                            engine::dtype_name(info.dtype) + ", expected int8");
    OutputSpec spec;
    spec.name = info.name;
    spec.shape = info.shape;
    spec.padding = info.padding;
    spec.scale = info.scale;
    spec.zero_point = info.zero_point;
    if (i < package.output_info.size()) {
      spec.original_shape = package.output_info[i].original_shape;
      spec.nhwc_to_nchw = package.output_info[i].layout == "NHWC";
    }
    // axinference attaches one batch item per tensor meta (a batch > 1 package's runs are
    // split per frame), so the specs describe one item: shape[0] and original_shape[0] / batch.
    if (package.batch > 1) {
      if (spec.shape.empty() || spec.shape[0] != package.batch ||
          (!spec.padding.empty() && (spec.padding[0].first != 0 || spec.padding[0].second != 0)))
        throw InvalidArgument("output '" + info.name + "' of '" + package.name + "' has shape " +
                              shape_to_string(spec.shape) + ", expected batch " +
                              std::to_string(package.batch) + " unpadded in dimension 0");
      spec.shape[0] = 1;
      if (!spec.original_shape.empty() && spec.original_shape[0] % package.batch == 0)
        spec.original_shape[0] /= package.batch;
    }
    specs.push_back(std::move(spec));
  }
  return std::make_unique<OutputConverter>(
      std::move(specs),
      package.postamble_graph.empty() ? std::string() : package.path_of(package.postamble_graph));
}

std::vector<QuantizedTensor> OutputConverter::convert_quantized(
    const std::vector<const int8_t *> &raw, const std::vector<size_t> &raw_bytes, int item) const {
  if (!quantized_outputs_available())
    throw InvalidArgument("output conversion: postamble '" + postamble_path_ +
                          "' computes on its inputs, so the quantised core outputs are not the "
                          "model's outputs");
  if (raw.size() != specs_.size() || raw_bytes.size() != specs_.size())
    throw InvalidArgument("output conversion: got " + std::to_string(raw.size()) +
                          " tensors, expected " + std::to_string(specs_.size()));
  std::vector<QuantizedTensor> converted;
  converted.reserve(specs_.size());
  for (size_t i = 0; i < specs_.size(); ++i)
    converted.push_back(convert_output_quantized(specs_[i], raw[i], raw_bytes[i], item));
  if (!program_) return converted;
  std::vector<QuantizedTensor> gathered(layout_gathers_.size());
  for (size_t o = 0; o < gathered.size(); ++o) {
    const LayoutGather &gather = layout_gathers_[o];
    const QuantizedTensor &source = converted[gather.input];
    const auto &desc = program_->outputs()[o];
    gathered[o].name = desc.name;
    gathered[o].shape = desc.shape;
    gathered[o].scale = source.scale;
    gathered[o].zero_point = source.zero_point;
    gathered[o].data.resize(gather.indices.size());
    for (size_t k = 0; k < gather.indices.size(); ++k)
      gathered[o].data[k] = source.data[gather.indices[k]];
  }
  return gathered;
}

std::vector<FloatTensor> OutputConverter::convert(const std::vector<const int8_t *> &raw,
                                                  const std::vector<size_t> &raw_bytes, int item) {
  if (raw.size() != specs_.size() || raw_bytes.size() != specs_.size())
    throw InvalidArgument("output conversion: got " + std::to_string(raw.size()) +
                          " tensors, expected " + std::to_string(specs_.size()));
  std::vector<FloatTensor> converted;
  converted.reserve(specs_.size());
  for (size_t i = 0; i < specs_.size(); ++i)
    converted.push_back(convert_output(specs_[i], raw[i], raw_bytes[i], item));
  if (!program_) return converted;

  std::vector<const void *> inputs;
  for (size_t i = 0; i < converted.size(); ++i) {
    const auto &desc = program_->inputs()[i];
    if (desc.dtype != engine::DType::f32 || desc.element_count() != converted[i].data.size())
      throw InvalidArgument("postamble '" + postamble_path_ + "': input '" + desc.name +
                            "' expects " + engine::dtype_name(desc.dtype) + " " +
                            shape_to_string(desc.shape) + ", core output '" + converted[i].name +
                            "' gives float32 " + converted[i].shape_string());
    inputs.push_back(converted[i].data.data());
  }
  std::vector<FloatTensor> results(program_->outputs().size());
  std::vector<void *> outputs;
  for (size_t i = 0; i < results.size(); ++i) {
    const auto &desc = program_->outputs()[i];
    results[i].name = desc.name;
    results[i].shape = desc.shape;
    results[i].data.resize(desc.element_count());
    outputs.push_back(results[i].data.data());
  }
  executor_->run(inputs, outputs);
  return results;
}

}  // namespace axstream::decoders
