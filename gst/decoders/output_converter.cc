#include "axstream/decoders/output_converter.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <optional>
#include <sstream>

#include "axstream/decoders/decoder.h"
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

namespace {

// Checks device output `spec`'s `raw_bytes` and batch `item` (and the spec itself) as every
// conversion of it does; returns its unpadded shape.
std::vector<int64_t> checked_unpadded_shape(const OutputSpec &spec, size_t raw_bytes, int item) {
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
  const size_t count = product(unpadded, 1);
  if (!spec.original_shape.empty() && product(spec.original_shape) != count) {
    std::vector<int64_t> item_shape = unpadded;
    item_shape[0] = 1;
    throw InvalidArgument(
        "output '" + spec.name + "': original_shape " + shape_to_string(spec.original_shape) +
        " has " + std::to_string(product(spec.original_shape)) + " elements, expected " +
        std::to_string(count) + " (unpadded " + shape_to_string(item_shape) + ")");
  }
  return unpadded;
}

// Where batch item `item` starts in a device output: its padded bytes per item times the item
// and the leading padding.
size_t item_offset(const OutputSpec &spec, int item) {
  const int64_t low = spec.padding.empty() ? 0 : spec.padding[0].first;
  return static_cast<size_t>(item + low) * (spec.padded_bytes() / size_t(spec.shape[0]));
}

// convert_output_quantized, or with `may_view` a view of `raw` when the layout allows one
// (QuantizedTensor::view): channels-last with only the channels padded, or dense unpadded.
QuantizedTensor quantized_output(const OutputSpec &spec, const int8_t *raw, size_t raw_bytes,
                                 int item, bool may_view) {
  const size_t rank = spec.shape.size();
  const std::vector<int64_t> unpadded = checked_unpadded_shape(spec, raw_bytes, item);

  // Depad batch item `item` into an unpadded (1, ...) tensor.
  std::vector<int64_t> item_shape = unpadded;
  item_shape[0] = 1;
  const size_t count = product(item_shape);
  auto pad_low = [&](size_t d) { return spec.padding.empty() ? 0 : spec.padding[d].first; };
  auto padded_in = [&](size_t d) { return spec.shape[d] != unpadded[d]; };
  bool spatial_padded = false;
  for (size_t d = 1; d + 1 < rank; ++d) spatial_padded = spatial_padded || padded_in(d);
  const bool channels_last = spec.nhwc_to_nchw && rank >= 3;
  if (may_view && rank >= 2 && !spatial_padded && (channels_last || !padded_in(rank - 1))) {
    QuantizedTensor tensor;
    tensor.name = spec.name;
    tensor.scale = static_cast<float>(spec.scale);
    tensor.zero_point = spec.zero_point;
    const size_t row = static_cast<size_t>(spec.shape[rank - 1]);
    const size_t channels = static_cast<size_t>(item_shape[rank - 1]);
    tensor.view =
        raw +
        static_cast<size_t>(item + pad_low(0)) * (spec.padded_bytes() / size_t(spec.shape[0])) +
        pad_low(rank - 1);
    if (channels_last) {
      // (1, d1, ..., dk, C) read as (1, C, d1, ..., dk)
      tensor.view_plane = count / channels;
      tensor.view_row_stride = row;
      tensor.shape = {1, static_cast<int64_t>(channels)};
      tensor.shape.insert(tensor.shape.end(), item_shape.begin() + 1, item_shape.end() - 1);
    } else {
      tensor.view_plane = count;  // element i at view[i]
      tensor.view_row_stride = 1;
      tensor.shape = item_shape;
    }
    if (!spec.original_shape.empty()) tensor.shape = spec.original_shape;
    return tensor;
  }
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
  if (!spec.original_shape.empty()) tensor.shape = spec.original_shape;
  return tensor;
}

// For each element of quantized_output(spec, ...) (channels-first when the spec transposes
// back), its byte offset from the item's start (item_offset) in the device output; empty when the
// spec is not one the conversion accepts (its errors then come from the conversion, per frame).
std::vector<size_t> element_offsets(const OutputSpec &spec) {
  std::vector<int64_t> unpadded;
  try {
    unpadded = checked_unpadded_shape(spec, spec.padded_bytes(), 0);
  } catch (const InvalidArgument &) {
    return {};
  }
  const size_t rank = spec.shape.size();
  std::vector<size_t> padded_strides(rank, 1);
  for (size_t d = rank - 1; d > 0; --d)
    padded_strides[d - 1] = padded_strides[d] * static_cast<size_t>(spec.shape[d]);
  const size_t count = product(unpadded, 1);
  const size_t channels = static_cast<size_t>(unpadded[rank - 1]);
  const bool channels_last = spec.nhwc_to_nchw && rank >= 3;
  auto low = [&](size_t d) { return spec.padding.empty() ? 0 : spec.padding[d].first; };
  std::vector<size_t> offsets(count);
  std::vector<int64_t> index(rank, 0);  // row-major over the unpadded item, as stored
  for (size_t stored = 0; stored < count; ++stored) {
    size_t offset = 0;  // from the item's start
    for (size_t d = 1; d < rank; ++d)
      offset += static_cast<size_t>(index[d] + low(d)) * padded_strides[d];
    // Channels-last (1, d1, ..., dk, C) is read as (1, C, d1, ..., dk).
    const size_t element =
        channels_last ? (stored % channels) * (count / channels) + stored / channels : stored;
    offsets[element] = offset;
    for (size_t d = rank; d-- > 1;) {
      if (++index[d] < unpadded[d]) break;
      index[d] = 0;
    }
  }
  return offsets;
}

}  // namespace

QuantizedTensor convert_output_quantized(const OutputSpec &spec, const int8_t *raw,
                                         size_t raw_bytes, int item) {
  return quantized_output(spec, raw, raw_bytes, item, false);
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

namespace {

// Whether every step of the program moves data (or applies an element-wise sigmoid).
bool moves_data_only(const engine::Program &program) {
  static const char *const kLayoutOps[] = {"Transpose", "Reshape",  "Squeeze", "Unsqueeze",
                                           "Flatten",   "Identity", "Concat",  "Sigmoid"};
  std::istringstream description(program.describe());
  std::string line;
  std::getline(description, line);  // "program '...': N steps, ..."
  while (std::getline(description, line)) {
    std::istringstream words(line);
    std::string op;
    words >> op;
    if (op == "input" || op == "output") continue;
    if (std::find(std::begin(kLayoutOps), std::end(kLayoutOps), op) == std::end(kLayoutOps))
      return false;
  }
  return true;
}

// Element numbers 0.. over all inputs, written in base kLevels, one digit per run: digit d is
// the value 2 + d / 16 (exact in float). An output element is either that value (moved) or its
// sigmoid, which lies in [0.88, 0.998) and so apart from the moved values (>= 2), from a double
// sigmoid (< 0.74) and from its neighbours by >= 1.6e-4, thousands of float steps (the
// engine's 1 / (1 + exp(-x)) is decoders' sigmoid(); 1e-5 of slack allows another formula).
constexpr size_t kLevels = 64;

float digit_level(size_t digit) { return 2.0f + float(digit) / 16.0f; }

enum class Mode : uint8_t { moved, sigmoid };

// The digit an output element spells, and whether it went through the sigmoid; nullopt when it
// spells none (the postamble computes something else).
std::optional<std::pair<size_t, Mode>> read_digit(
    float value, const std::array<float, kLevels> &sigmoid_of_level) {
  if (value >= 2.0f) {
    const float scaled = (value - 2.0f) * 16.0f;
    const size_t digit = static_cast<size_t>(scaled);
    if (scaled != float(digit) || digit >= kLevels) return std::nullopt;
    return std::pair{digit, Mode::moved};
  }
  if (value > 0.0f && value < 1.0f) {
    const auto above = std::lower_bound(sigmoid_of_level.begin(), sigmoid_of_level.end(), value);
    size_t digit = size_t(above - sigmoid_of_level.begin());
    if (digit == kLevels ||
        (digit > 0 && value - sigmoid_of_level[digit - 1] < sigmoid_of_level[digit] - value))
      --digit;
    if (std::abs(value - sigmoid_of_level[digit]) > 1e-5f) return std::nullopt;
    return std::pair{digit, Mode::sigmoid};
  }
  return std::nullopt;
}

}  // namespace

// Where each element of each postamble output comes from: its number over all core outputs
// (core output i holds numbers [first[i], first[i + 1])), and whether through the sigmoid.
struct OutputConverter::ElementSources {
  std::vector<size_t> first;
  std::vector<std::vector<uint32_t>> numbers;  // per postamble output, per element
  std::vector<std::vector<Mode>> modes;

  size_t input_of(uint32_t number) const {
    return size_t(std::upper_bound(first.begin(), first.end(), number) - first.begin()) - 1;
  }
};

// A postamble of data movement only (BlazeFace's Transpose+Reshape per output), optionally with
// an element-wise Sigmoid (YOLO heads the compiler left the final Sigmoid of), maps every output
// element to one element of one core output, through the sigmoid or not. Running it on inputs
// that spell their own element numbers reveals that map, so quantised outputs can be gathered as
// int8 directly and the sigmoid left to a decoder that applies it to candidates only.
void OutputConverter::find_layout_gathers() {
  if (!moves_data_only(*program_)) return;
  const std::optional<ElementSources> sources = trace_element_sources();
  if (!sources) return;
  std::vector<LayoutGather> gathers;
  for (size_t o = 0; o < sources->numbers.size(); ++o) {
    std::optional<LayoutGather> gather = layout_gather(*sources, o);
    if (!gather) return;
    gathers.push_back(std::move(*gather));
  }
  mark_only_users(gathers);
  find_device_views(gathers);
  layout_gathers_ = std::move(gathers);
}

// Runs the postamble once per digit of the element numbers; nullopt when some output element
// spells no number or changes between moved and sigmoid.
std::optional<OutputConverter::ElementSources> OutputConverter::trace_element_sources() const {
  std::array<float, kLevels> sigmoid_of_level;
  for (size_t d = 0; d < kLevels; ++d) sigmoid_of_level[d] = sigmoid(digit_level(d));
  ElementSources sources;
  std::vector<size_t> &first = sources.first;
  first.assign(specs_.size() + 1, 0);
  for (size_t i = 0; i < specs_.size(); ++i)
    first[i + 1] = first[i] + program_->inputs()[i].element_count();
  const size_t total = first.back();
  if (total == 0 || total >= (size_t(1) << 31)) return std::nullopt;
  size_t runs = 1;
  for (size_t reach = kLevels; reach < total; reach *= kLevels) ++runs;

  std::vector<std::vector<float>> inputs(specs_.size());
  std::vector<const void *> input_pointers;
  for (size_t i = 0; i < specs_.size(); ++i) {
    inputs[i].resize(program_->inputs()[i].element_count());
    input_pointers.push_back(inputs[i].data());
  }
  std::vector<std::vector<float>> results(program_->outputs().size());
  std::vector<void *> output_pointers;
  for (size_t o = 0; o < results.size(); ++o) {
    results[o].resize(program_->outputs()[o].element_count());
    output_pointers.push_back(results[o].data());
  }
  sources.numbers.resize(results.size());
  sources.modes.resize(results.size());
  for (size_t o = 0; o < results.size(); ++o) {
    sources.numbers[o].assign(results[o].size(), 0);
    sources.modes[o].assign(results[o].size(), Mode::moved);
  }
  size_t place = 1;
  for (size_t run = 0; run < runs; ++run, place *= kLevels) {
    for (size_t i = 0; i < specs_.size(); ++i)
      for (size_t j = 0; j < inputs[i].size(); ++j)
        inputs[i][j] = digit_level((first[i] + j) / place % kLevels);
    executor_->run(input_pointers, output_pointers);
    for (size_t o = 0; o < results.size(); ++o) {
      for (size_t k = 0; k < results[o].size(); ++k) {
        const auto digit = read_digit(results[o][k], sigmoid_of_level);
        if (!digit) return std::nullopt;
        const auto [value, mode] = *digit;
        if (run == 0)
          sources.modes[o][k] = mode;
        else if (mode != sources.modes[o][k])
          return std::nullopt;
        sources.numbers[o][k] += uint32_t(value * place);
      }
    }
  }
  return sources;
}

// Postamble output o as a gather of one core output, or as whole core outputs one after the
// other; nullopt when it is neither.
std::optional<OutputConverter::LayoutGather> OutputConverter::layout_gather(
    const ElementSources &sources, size_t o) const {
  const std::vector<uint32_t> &numbers = sources.numbers[o];
  const std::vector<Mode> &modes = sources.modes[o];
  const std::vector<size_t> &first = sources.first;
  LayoutGather gather;
  if (numbers.empty()) return std::nullopt;
  gather.input = sources.input_of(numbers[0]);
  if (gather.input >= specs_.size()) return std::nullopt;
  const bool one_input = std::all_of(numbers.begin(), numbers.end(), [&](uint32_t n) {
    return n >= first[gather.input] && n < first[gather.input + 1];
  });
  if (!one_input) {
    if (!add_concatenated_parts(sources, o, gather)) return std::nullopt;
    return gather;
  }
  // One core output: all moved or all through the sigmoid (a decoder's logits mode is per
  // tensor).
  if (std::count(modes.begin(), modes.end(), modes[0]) != long(modes.size())) return std::nullopt;
  gather.sigmoid = modes[0] == Mode::sigmoid;
  gather.indices.reserve(numbers.size());
  for (uint32_t number : numbers) gather.indices.push_back(uint32_t(number - first[gather.input]));
  // The same elements in the same order (a Sigmoid or Reshape alone): no gather per frame.
  gather.whole = gather.indices.size() == first[gather.input + 1] - first[gather.input];
  for (size_t k = 0; gather.whole && k < gather.indices.size(); ++k)
    gather.whole = gather.indices[k] == k;
  if (gather.whole) gather.indices.clear();
  return gather;
}

// Whole core outputs one after the other (YOLOv8's Concat of DFL and class channels; SSD's
// Concat of per-level heads, each transposed to channels-last), each of its own quantisation:
// handed to the decoder as separate parts. False when postamble output o is not that.
bool OutputConverter::add_concatenated_parts(const ElementSources &sources, size_t o,
                                             LayoutGather &gather) const {
  const std::vector<uint32_t> &numbers = sources.numbers[o];
  const std::vector<Mode> &modes = sources.modes[o];
  const std::vector<size_t> &first = sources.first;
  const std::vector<int64_t> &output_shape = program_->outputs()[o].shape;
  // The parts are concatenated along the first dimension that is not 1.
  const size_t axis = size_t(
      std::find_if(output_shape.begin(), output_shape.end(), [](int64_t d) { return d != 1; }) -
      output_shape.begin());
  if (axis == output_shape.size()) return false;
  const size_t inner = product(output_shape, axis + 1);
  for (size_t k = 0; k < numbers.size();) {
    const size_t input = sources.input_of(numbers[k]);
    const size_t count = first[input + 1] - first[input];
    if (numbers[k] != first[input] || k + count > numbers.size() || count % inner != 0)
      return false;
    Part part;
    part.input = input;
    part.sigmoid = modes[k] == Mode::sigmoid;
    for (size_t j = 0; j < count; ++j)
      if (modes[k + j] != modes[k]) return false;
    bool in_order = true;
    for (size_t j = 0; in_order && j < count; ++j) in_order = numbers[k + j] == first[input] + j;
    if (!in_order) {
      // (1,C,...) read as (1,...,C): part element s * C + c is core element c * plane + s.
      const std::vector<int64_t> &input_shape = program_->inputs()[input].shape;
      if (input_shape.size() < 3 || input_shape[0] != 1) return false;
      const size_t channels = size_t(input_shape[1]);
      if (channels == 0) return false;
      const size_t plane = count / channels;
      for (size_t j = 0; j < count; ++j)
        if (numbers[k + j] - first[input] != (j % channels) * plane + j / channels) return false;
      part.channels_last = true;
    }
    part.shape = output_shape;
    part.shape[axis] = int64_t(count / inner);
    gather.parts.push_back(std::move(part));
    k += count;
  }
  return true;
}

// How many gathers (or parts) read each core output: a sole reader may take its values.
void OutputConverter::mark_only_users(std::vector<LayoutGather> &gathers) const {
  std::vector<size_t> readers(specs_.size(), 0);
  for (const LayoutGather &gather : gathers) {
    if (gather.parts.empty()) ++readers[gather.input];
    for (const Part &part : gather.parts) ++readers[part.input];
  }
  for (LayoutGather &gather : gathers) {
    gather.only_user = readers[gather.input] == 1;
    for (Part &part : gather.parts) part.only_user = readers[part.input] == 1;
  }
}

// A gather whose elements lie in the device output in order, or in rows of equal length at a
// fixed stride (BlazeFace's Transpose+Reshape undoing the transposition back to channels-first,
// a channel padding skipped), is read there in place (DeviceView): per frame no copy, no
// transposition and no walk over its index table, all of which read memory another core has
// just written or the frame's work has evicted. The core outputs only such gathers read are not
// converted at all (inputs_to_convert_).
void OutputConverter::find_device_views(std::vector<LayoutGather> &gathers) {
  inputs_to_convert_.assign(specs_.size(), false);
  for (LayoutGather &gather : gathers) {
    for (const Part &part : gather.parts) inputs_to_convert_[part.input] = true;
    if (!gather.parts.empty()) continue;
    const std::vector<size_t> offsets = element_offsets(specs_[gather.input]);
    const size_t count = gather.whole ? offsets.size() : gather.indices.size();
    auto offset_of = [&](size_t k) { return offsets[gather.whole ? k : gather.indices[k]]; };
    bool in_range = !offsets.empty() && count > 0;
    for (size_t k = 0; in_range && !gather.whole && k < count; ++k)
      in_range = gather.indices[k] < offsets.size();
    if (!in_range) {
      inputs_to_convert_[gather.input] = true;
      continue;
    }
    // The first row: how many elements lie next to each other; the next row's start: the stride.
    const size_t start = offset_of(0);
    size_t row = 1;
    while (row < count && offset_of(row) == start + row) ++row;
    const size_t stride = row < count ? offset_of(row) - start : row;
    // (Rows of one element would be read through QuantizedTensor::at, slower than a copy.)
    bool fits = row == count || (row >= 2 && count % row == 0 && offset_of(row) > start + row - 1);
    for (size_t k = row; fits && k < count; ++k)
      fits = offset_of(k) == start + (k / row) * stride + k % row;
    if (!fits) {
      inputs_to_convert_[gather.input] = true;
      continue;
    }
    DeviceView view;
    view.offset = start;
    if (row == count) {  // dense: element i at view[i]
      view.plane = count;
      view.row_stride = 1;
    } else {
      view.plane = row;
      view.row_stride = stride;
      view.rows = true;
    }
    gather.device_view = view;
  }
  all_device_views_ =
      !gathers.empty() && std::all_of(gathers.begin(), gathers.end(), [](const LayoutGather &g) {
        return g.parts.empty() && g.device_view.has_value();
      });
}

std::vector<bool> OutputConverter::outputs_before_sigmoid() const {
  std::vector<bool> before;
  for (const LayoutGather &gather : layout_gathers_) {
    if (gather.parts.empty()) before.push_back(gather.sigmoid);
    for (const Part &part : gather.parts) before.push_back(part.sigmoid);
  }
  return before;
}

bool OutputConverter::splits_outputs() const {
  return std::any_of(layout_gathers_.begin(), layout_gathers_.end(),
                     [](const LayoutGather &gather) { return !gather.parts.empty(); });
}

std::vector<FloatTensor> OutputConverter::quantized_output_shapes() const {
  std::vector<FloatTensor> shapes;
  auto add = [&](const std::string &name, const std::vector<int64_t> &shape) {
    FloatTensor t;
    t.name = name;
    t.shape = shape;
    shapes.push_back(std::move(t));
  };
  for (size_t o = 0; o < layout_gathers_.size(); ++o) {
    if (layout_gathers_[o].parts.empty())
      add(program_->outputs()[o].name, program_->outputs()[o].shape);
    for (const Part &part : layout_gathers_[o].parts)
      add(program_->inputs()[part.input].name, part.shape);
  }
  return shapes;
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
  std::vector<QuantizedTensor> tensors = view_quantized(raw, raw_bytes, item);
  for (QuantizedTensor &t : tensors)
    if (t.view) t = t.owned();
  return tensors;
}

std::vector<QuantizedTensor> OutputConverter::view_quantized(const std::vector<const int8_t *> &raw,
                                                             const std::vector<size_t> &raw_bytes,
                                                             int item) const {
  if (!quantized_outputs_available())
    throw InvalidArgument("output conversion: postamble '" + postamble_path_ +
                          "' computes on its inputs, so the quantised core outputs are not the "
                          "model's outputs");
  if (raw.size() != specs_.size() || raw_bytes.size() != specs_.size())
    throw InvalidArgument("output conversion: got " + std::to_string(raw.size()) +
                          " tensors, expected " + std::to_string(specs_.size()));
  std::vector<QuantizedTensor> converted;
  converted.reserve(specs_.size());
  for (size_t i = 0; i < specs_.size(); ++i) {
    if (!inputs_to_convert_.empty() &&
        !inputs_to_convert_[i]) {  // read in place only (find_device_views)
      checked_unpadded_shape(specs_[i], raw_bytes[i], item);
      converted.emplace_back();
      continue;
    }
    // A gather reads elements in its own order: from dense values.
    bool gathered_in_order = true;
    for (const LayoutGather &gather : layout_gathers_)
      if (gather.parts.empty() && gather.input == i && !gather.whole) gathered_in_order = false;
    converted.push_back(quantized_output(specs_[i], raw[i], raw_bytes[i], item, gathered_in_order));
  }
  if (!program_) return converted;
  std::vector<QuantizedTensor> gathered;
  gathered.reserve(layout_gathers_.size());
  for (size_t o = 0; o < layout_gathers_.size(); ++o) {
    const LayoutGather &gather = layout_gathers_[o];
    for (const Part &part : gather.parts) {
      QuantizedTensor &core = converted[part.input];
      QuantizedTensor taken = part.only_user ? std::move(core) : core;
      gathered.push_back(part.channels_last ? channels_last_part(part, std::move(taken))
                                            : std::move(taken));
      gathered.back().name = program_->inputs()[part.input].name;
      gathered.back().shape = part.shape;
    }
    if (!gather.parts.empty()) continue;
    QuantizedTensor &source = converted[gather.input];
    const auto &desc = program_->outputs()[o];
    QuantizedTensor &out = gathered.emplace_back();
    out.name = desc.name;
    out.shape = desc.shape;
    if (gather.device_view) {
      const OutputSpec &spec = specs_[gather.input];
      out.scale = static_cast<float>(spec.scale);
      out.zero_point = spec.zero_point;
      out.view = raw[gather.input] + item_offset(spec, item) + gather.device_view->offset;
      out.view_plane = gather.device_view->plane;
      out.view_row_stride = gather.device_view->row_stride;
      out.view_rows = gather.device_view->rows;
      continue;
    }
    out.scale = source.scale;
    out.zero_point = source.zero_point;
    if (gather.whole) {  // the same values in the same order, maybe reshaped
      if (gather.only_user)
        out.data = std::move(source.data);
      else
        out.data = source.data;
      out.view = source.view;
      out.view_plane = source.view_plane;
      out.view_row_stride = source.view_row_stride;
      continue;
    }
    out.data.resize(gather.indices.size());
    for (size_t k = 0; k < gather.indices.size(); ++k) out.data[k] = source.data[gather.indices[k]];
  }
  return gathered;
}

bool OutputConverter::refresh_views(std::vector<QuantizedTensor> &views,
                                    const std::vector<const int8_t *> &raw,
                                    const std::vector<size_t> &raw_bytes, int item) const {
  if (!all_device_views_ || views.size() != layout_gathers_.size() || raw.size() != specs_.size() ||
      raw_bytes.size() != specs_.size() || item != 0)
    return false;
  // The sizes are the per-frame part of view_quantized()'s checks (the specs, and that item 0
  // exists, were checked when `views` was made); a wrong one goes through it for its error.
  for (const LayoutGather &gather : layout_gathers_)
    if (raw_bytes[gather.input] != specs_[gather.input].padded_bytes()) return false;
  for (size_t o = 0; o < layout_gathers_.size(); ++o) {
    const LayoutGather &gather = layout_gathers_[o];
    views[o].view =
        raw[gather.input] + item_offset(specs_[gather.input], item) + gather.device_view->offset;
  }
  return true;
}

// A channels-last part from its core output `converted` (channels-first): a view of the device
// output in its own order when that is channels-last with as many channels (no copy), else the
// values transposed.
QuantizedTensor OutputConverter::channels_last_part(const Part &part,
                                                    QuantizedTensor &&converted) const {
  const OutputSpec &spec = specs_[part.input];
  const size_t count = converted.element_count();
  const size_t channels = size_t(program_->inputs()[part.input].shape[1]);
  QuantizedTensor tensor;
  tensor.scale = converted.scale;
  tensor.zero_point = converted.zero_point;
  if (converted.view && spec.nhwc_to_nchw && converted.view_plane * channels == count) {
    tensor.view = converted.view;
    if (converted.view_row_stride == channels) {  // no channel padding: dense
      tensor.view_plane = count;
      tensor.view_row_stride = 1;
    } else {
      tensor.view_plane = channels;
      tensor.view_row_stride = converted.view_row_stride;
      tensor.view_rows = true;
    }
    return tensor;
  }
  const QuantizedTensor source = converted.owned();
  const size_t plane = count / channels;
  tensor.data.resize(count);
  for (size_t s = 0; s < plane; ++s)
    for (size_t c = 0; c < channels; ++c)
      tensor.data[s * channels + c] = source.data[c * plane + s];
  return tensor;
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
