// Device output tensors -> the float model's outputs, per docs/model-package.md:
// dequantize(depad(raw)), transpose back to NCHW when output_info.layout is "NHWC", reshape to
// original_shape, then the package's postamble graph (run through the engine) when it has one.
#pragma once

#include <cstdint>
#include <memory>
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

// Converts all outputs of a package, then runs its postamble when it has one. Not thread-safe
// (one executor); make one converter per streaming thread.
class OutputConverter {
 public:
  explicit OutputConverter(std::vector<OutputSpec> specs, std::string postamble_path = {});
  // Specs from the package's outputs/output_info and its postamble graph.
  static std::unique_ptr<OutputConverter> from_package(const runtime::ModelPackage &package);
  ~OutputConverter();

  const std::vector<OutputSpec> &specs() const { return specs_; }
  bool has_postamble() const { return program_ != nullptr; }
  // raw[i] / raw_bytes[i]: device output i. Returns the float model's outputs of batch `item`.
  std::vector<FloatTensor> convert(const std::vector<const int8_t *> &raw,
                                   const std::vector<size_t> &raw_bytes, int item = 0);

 private:
  std::vector<OutputSpec> specs_;
  std::string postamble_path_;
  std::shared_ptr<const engine::Program> program_;
  std::unique_ptr<engine::Executor> executor_;
};

}  // namespace axstream::decoders
