// libFuzzer target: every registered axdecode decoder's tensor parsing (gst/decoders) and the
// device-output conversion (convert_output: depad, dequantize, NHWC->NCHW, reshape).
// The input picks a decoder, builds 1..3 float tensors of fuzzed rank/shape/values (NaN and Inf
// included) and a geometry, then runs check_outputs() and, when it accepts, decode(). A second
// part builds an OutputSpec (shape, padding, original_shape, layout) and a raw buffer of fuzzed
// length for convert_output(). Rejections must be axstream::Error; anything else is a finding.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>
#include <vector>

#include "axstream/decoders/decoder.h"
#include "axstream/decoders/output_converter.h"
#include "axstream/error.h"

namespace ad = axstream::decoders;

namespace {

constexpr size_t kMaxElements = 1 << 16;

std::vector<int64_t> fuzz_shape(FuzzedDataProvider &fdp, int max_rank, int64_t max_dim) {
  std::vector<int64_t> shape(fdp.ConsumeIntegralInRange<int>(1, max_rank));
  for (auto &d : shape) d = fdp.ConsumeIntegralInRange<int64_t>(1, max_dim);
  return shape;
}

size_t count(const std::vector<int64_t> &shape) {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

void fuzz_decoder(FuzzedDataProvider &fdp) {
  const auto &registry = ad::decoder_registry();
  if (registry.empty()) return;
  const auto &entry = registry[fdp.ConsumeIntegralInRange<size_t>(0, registry.size() - 1)];
  ad::DecoderOptions options;
  options.conf_threshold = fdp.ConsumeBool() ? -1.0f : fdp.ConsumeFloatingPoint<float>();
  options.nms_iou = fdp.ConsumeBool() ? -1.0f : fdp.ConsumeFloatingPointInRange<float>(-1, 2);
  options.max_detections = fdp.ConsumeIntegralInRange<int>(-1, 300);
  options.top_k = fdp.ConsumeIntegralInRange<int>(-1, 20);
  options.softmax = fdp.ConsumeBool();
  for (int i = fdp.ConsumeIntegralInRange<int>(0, 4); i > 0; --i) options.labels.push_back("l");
  std::unique_ptr<ad::Decoder> decoder;
  try {
    decoder = entry.make(options);
  } catch (const axstream::Error &) {
    return;
  }
  std::vector<ad::FloatTensor> outputs(fdp.ConsumeIntegralInRange<int>(1, 3));
  int index = 0;
  for (auto &t : outputs) {
    t.name = "out" + std::to_string(index++);
    // Mostly shapes the real decoders expect (small ranks, some large dims), sometimes anything.
    t.shape = fuzz_shape(fdp, 4, fdp.ConsumeBool() ? 16 : 2304);
    if (count(t.shape) > kMaxElements) return;
    t.data.resize(count(t.shape));
    const int mode = fdp.ConsumeIntegralInRange<int>(0, 2);
    for (auto &v : t.data) {
      if (fdp.remaining_bytes() == 0) break;
      v = mode == 0   ? fdp.ConsumeFloatingPoint<float>()
          : mode == 1 ? fdp.ConsumeFloatingPointInRange<float>(-10, 10)
                      : static_cast<float>(fdp.ConsumeIntegral<int8_t>()) / 16.0f;
    }
  }
  ad::Geometry g;
  g.tensor_width = fdp.ConsumeIntegralInRange<int>(0, 1024);
  g.tensor_height = fdp.ConsumeIntegralInRange<int>(0, 1024);
  g.crop_width = fdp.ConsumeFloatingPointInRange<double>(0, 8192);
  g.crop_height = fdp.ConsumeFloatingPointInRange<double>(0, 8192);
  g.scale_x = fdp.ConsumeFloatingPointInRange<double>(0, 4);
  g.scale_y = fdp.ConsumeFloatingPointInRange<double>(0, 4);
  try {
    decoder->check_outputs(outputs);
  } catch (const axstream::Error &) {
    return;
  }
  try {
    ad::DecodeResult r = decoder->decode(outputs, g);
    for (const auto &d : r.detections) (void)ad::label_of(options.labels, d.class_id);
  } catch (const axstream::Error &) {
  }
}

void fuzz_convert(FuzzedDataProvider &fdp) {
  ad::OutputSpec spec;
  spec.name = "out";
  spec.shape = fuzz_shape(fdp, 5, 40);
  if (fdp.ConsumeBool()) {
    spec.padding.resize(fdp.ConsumeBool() ? spec.shape.size() : fdp.ConsumeIntegralInRange<size_t>(0, 6));
    for (auto &p : spec.padding)
      p = {fdp.ConsumeIntegralInRange<int64_t>(-2, 8), fdp.ConsumeIntegralInRange<int64_t>(-2, 8)};
  }
  spec.scale = fdp.ConsumeFloatingPoint<double>();
  spec.zero_point = fdp.ConsumeIntegral<int>();
  if (fdp.ConsumeBool()) spec.original_shape = fuzz_shape(fdp, 5, 40);
  spec.nhwc_to_nchw = fdp.ConsumeBool();
  const int item = fdp.ConsumeIntegralInRange<int>(-1, 4);
  std::vector<int8_t> raw;
  try {
    const size_t want = spec.padded_bytes();
    if (want > kMaxElements * 4) return;
    raw.resize(fdp.ConsumeBool() ? want : fdp.ConsumeIntegralInRange<size_t>(0, want + 8));
    auto bytes = fdp.ConsumeBytes<int8_t>(raw.size());
    std::copy(bytes.begin(), bytes.end(), raw.begin());
    ad::FloatTensor t = ad::convert_output(spec, raw.data(), raw.size(), item);
    if (t.data.size() != count(t.shape)) __builtin_trap();  // shape and data must agree
  } catch (const axstream::Error &) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  if (fdp.ConsumeBool())
    fuzz_decoder(fdp);
  else
    fuzz_convert(fdp);
  return 0;
}
