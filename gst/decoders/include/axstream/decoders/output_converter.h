// Device output tensors -> the float model's outputs, per docs/model-package.md:
// dequantize(depad(raw)), transpose back to NCHW when output_info.layout is "NHWC", reshape to
// original_shape, then the package's postamble graph (run through the engine) when it has one.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "axstream/decoders/types.h"

namespace axstream::runtime {
struct ModelPackage;
}
namespace axstream::engine {
class Program;
class Executor;
}  // namespace axstream::engine

namespace axstream::decoders {

// One device output as the manifest describes it (a GStreamer- and runtime-free copy of
// TensorInfo + OutputInfo, so the conversion is testable on hand-made specs).
struct OutputSpec {
  std::string name;
  std::vector<int64_t> shape;                        // padded device shape, shape[0] = batch
                                                     // (1 from from_package: one item per meta)
  std::vector<std::pair<int64_t, int64_t>> padding;  // per dimension (low, high); empty = none
  double scale = 1.0;
  int zero_point = 0;
  std::vector<int64_t> original_shape;  // float model's shape for one batch item; empty = unpadded
  bool nhwc_to_nchw = false;            // output_info.layout == "NHWC"

  size_t padded_bytes() const;  // int8 bytes of the whole padded tensor
  std::vector<int64_t> unpadded_shape() const;
};

// dequantize(depad(raw)) of batch item `item`, transposed back and reshaped. `raw` must hold
// padded_bytes() bytes; otherwise InvalidArgument naming the tensor, the size expected and got.
FloatTensor convert_output(const OutputSpec &spec, const int8_t *raw, size_t raw_bytes,
                           int item = 0);
// The same layout work without dequantising: int8 values with the spec's scale and zero point.
QuantizedTensor convert_output_quantized(const OutputSpec &spec, const int8_t *raw,
                                         size_t raw_bytes, int item = 0);

// Converts all outputs of a package, then runs its postamble when it has one. Not thread-safe
// (one executor); make one converter per streaming thread.
class OutputConverter {
 public:
  explicit OutputConverter(std::vector<OutputSpec> specs, std::string postamble_path = {});
  // Specs from the package's outputs/output_info and its postamble graph, for one batch item
  // (what axinference attaches per frame or ROI, also for a batch > 1 package).
  static std::unique_ptr<OutputConverter> from_package(const runtime::ModelPackage &package);
  ~OutputConverter();

  const std::vector<OutputSpec> &specs() const { return specs_; }
  bool has_postamble() const { return program_ != nullptr; }
  // Without a postamble, or with one that only moves data (Transpose/Reshape/Concat/... of one
  // core output per model output) and may apply an element-wise Sigmoid to whole outputs, the
  // model's outputs exist quantised (before that sigmoid): decoders with an int8 path can take
  // them from convert_quantized() instead of dequantised.
  bool quantized_outputs_available() const { return !program_ || !layout_gathers_.empty(); }
  // A postamble may also concatenate whole core outputs of different quantisation into one
  // model output (YOLOv8's DFL and class channels; SSD's per-level box and score heads, each
  // transposed back to channels-last first): convert_quantized() then gives that output as its
  // parts, the core outputs in the order the concatenation reads them, each with its own scale
  // (splits_outputs()). A part has the output's shape with the leading dimension the parts
  // are concatenated along cut to its share: (1,64,H,W) of (1,144,H,W), (1,H*W*4,21) of
  // (1,N,21).
  bool splits_outputs() const;
  // Names and shapes of what convert_quantized() gives (the model's outputs, split outputs as
  // their parts), for Decoder::for_logits. Empty without a postamble.
  std::vector<FloatTensor> quantized_output_shapes() const;
  // Per tensor of convert_quantized(): true when the postamble applies a sigmoid to it, so it
  // holds the sigmoid's input (logits) and the decoder must apply it (Decoder::for_logits).
  // Empty without a postamble.
  std::vector<bool> outputs_before_sigmoid() const;
  // InvalidArgument when the postamble computes more than a sigmoid on whole outputs.
  std::vector<QuantizedTensor> convert_quantized(const std::vector<const int8_t *> &raw,
                                                 const std::vector<size_t> &raw_bytes,
                                                 int item = 0) const;
  // convert_quantized() without copying where the device layout allows (channels-last outputs
  // padded in the channels only, unpadded dense ones, reached by no reordering gather): those
  // tensors are views of `raw` (QuantizedTensor::view), valid while `raw` is mapped.
  std::vector<QuantizedTensor> view_quantized(const std::vector<const int8_t *> &raw,
                                              const std::vector<size_t> &raw_bytes,
                                              int item = 0) const;
  // For a caller decoding frame after frame: when every output is a view of the device outputs
  // in place (BlazeFace's are) and `views` is what view_quantized() returned for an earlier set
  // of them, points those views at `raw` (checking its sizes) and returns true, so names, shapes
  // and the vector are not made again per frame. false (nothing changed): call view_quantized().
  // Batch item 0 only (false for others).
  bool refresh_views(std::vector<QuantizedTensor> &views, const std::vector<const int8_t *> &raw,
                     const std::vector<size_t> &raw_bytes, int item = 0) const;
  // raw[i] / raw_bytes[i]: device output i. Returns the float model's outputs of batch `item`.
  std::vector<FloatTensor> convert(const std::vector<const int8_t *> &raw,
                                   const std::vector<size_t> &raw_bytes, int item = 0);

 private:
  std::vector<OutputSpec> specs_;
  std::string postamble_path_;
  std::shared_ptr<const engine::Program> program_;
  std::unique_ptr<engine::Executor> executor_;
  // One whole core output `input` within a concatenated model output, through the postamble's
  // sigmoid or not, in its own order or (channels_last) in the order of its channels-first
  // shape (1,C,...) transposed to (1,...,C); `shape`: its share of the model output.
  struct Part {
    size_t input = 0;
    bool sigmoid = false;
    bool channels_last = false;
    bool only_user = false;  // no other model output reads that core output
    std::vector<int64_t> shape;
  };
  // Layout-only postamble: model output o is core output `input` gathered at `indices`, then
  // maybe a sigmoid.
  // sigmoid: the postamble applies a sigmoid to it; whole: all of the core output in its own
  // order (indices then empty); only_user: no other model output reads that core output.
  // parts: a concatenation of whole core outputs, the rest unused.
  // Where a gather's elements lie in its device output when they can be read there in place,
  // as a QuantizedTensor view (offset from the batch item's start).
  struct DeviceView {
    size_t offset = 0, plane = 0, row_stride = 0;
    bool rows = false;
  };
  struct LayoutGather {
    size_t input = 0;
    std::vector<uint32_t> indices;
    bool sigmoid = false;
    bool whole = false;
    bool only_user = false;
    std::vector<Part> parts;
    std::optional<DeviceView> device_view;  // parts empty: read in place (find_device_views)
  };
  QuantizedTensor channels_last_part(const Part &part, QuantizedTensor &&converted) const;
  std::vector<LayoutGather> layout_gathers_;
  void find_layout_gathers();
  // find_layout_gathers' steps (output_converter.cc).
  struct ElementSources;
  std::optional<ElementSources> trace_element_sources() const;
  std::optional<LayoutGather> layout_gather(const ElementSources &sources, size_t o) const;
  bool add_concatenated_parts(const ElementSources &sources, size_t o, LayoutGather &gather) const;
  void mark_only_users(std::vector<LayoutGather> &gathers) const;
  void find_device_views(std::vector<LayoutGather> &gathers);
  // Per core output: whether view_quantized converts it (some gather reads it other than in
  // place). With a postamble only.
  std::vector<bool> inputs_to_convert_;
  // Every model output is a device view (find_device_views): refresh_views() applies.
  bool all_device_views_ = false;
};

}  // namespace axstream::decoders
