// libFuzzer target: every registered axdecode decoder's tensor parsing (gst/decoders) and the
// device-output conversion (convert_output: depad, dequantize, NHWC->NCHW, reshape).
// The input picks a decoder, builds 1..3 float tensors of fuzzed rank/shape/values (NaN and Inf
// included) and a geometry, then runs check_outputs() and, when it accepts, decode(). A second
// part builds an OutputSpec (shape, padding, original_shape, layout) and a raw buffer of fuzzed
// length for convert_output(). Rejections must be axstream::Error; anything else is a finding.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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

// The output shapes each registered decoder accepts (see its check_outputs), sizes fuzzed.
// A decoder missing here is still fuzzed through the free-shape path, but a new decoder should
// get a line so its decode() is reached quickly.
std::vector<ad::FloatTensor> template_shapes(const std::string &decoder, FuzzedDataProvider &fdp) {
  auto small = [&](int64_t lo, int64_t hi) { return fdp.ConsumeIntegralInRange<int64_t>(lo, hi); };
  auto tensor = [](std::vector<int64_t> shape) {
    ad::FloatTensor t;
    t.shape = std::move(shape);
    return t;
  };
  if (decoder == "blazeface") {
    if (fdp.ConsumeBool()) return {tensor({1, 896, 16}), tensor({1, 896, 1})};
    // Split per grid (16x16x2 and 8x8x6 anchors), in either order.
    return {tensor({1, 512, 16}), tensor({1, 512, 1}), tensor({1, 384, 16}), tensor({1, 384, 1})};
  }
  if (decoder == "classification") return {tensor({1, small(1, 1024)})};
  if (decoder == "ctc") return {tensor({1, small(1, 80), small(2, 200)})};
  if (decoder == "dbnet") return {tensor({1, 1, small(2, 160), small(2, 160)})};
  if (decoder == "ssd") {
    const int64_t rows = small(1, 2000);
    return {tensor({1, rows, 4}), tensor({1, rows, small(2, 32)})};
  }
  if (decoder == "yolov5") {
    const int64_t values = small(6, 40);
    if (fdp.ConsumeBool()) return {tensor({1, small(values, 1600), values})};
    const int64_t h = small(1, 8), w = small(1, 8);
    return {tensor({1, 3 * values, 4 * h, 4 * w}), tensor({1, 3 * values, 2 * h, 2 * w}),
            tensor({1, 3 * values, h, w})};
  }
  if (decoder == "yolov8") {
    if (fdp.ConsumeBool()) {  // raw DFL heads: 64 bins + classes, grids halving
      const int64_t channels = 64 + small(1, 8), h = small(1, 6), w = small(1, 6);
      return {tensor({1, channels, 4 * h, 4 * w}), tensor({1, channels, 2 * h, 2 * w}),
              tensor({1, channels, h, w})};
    }
    const int64_t values = small(5, 40), rows = small(5, 1600);
    return {fdp.ConsumeBool() ? tensor({1, values, rows}) : tensor({1, rows, values})};
  }
  return {};
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
  std::vector<ad::FloatTensor> outputs;
  if (fdp.ConsumeBool()) {
    // The shapes this decoder parses (so the fuzzer spends its time in decode(), not in the
    // shape checks), with fuzzed sizes; sometimes one dimension is nudged off by one.
    outputs = template_shapes(entry.name, fdp);
    if (!outputs.empty() && fdp.ConsumeIntegralInRange<int>(0, 7) == 0) {
      auto &t = outputs[fdp.ConsumeIntegralInRange<size_t>(0, outputs.size() - 1)];
      auto &d = t.shape[fdp.ConsumeIntegralInRange<size_t>(0, t.shape.size() - 1)];
      d = std::max<int64_t>(1, d + (fdp.ConsumeBool() ? 1 : -1));
    }
  } else {
    outputs.resize(fdp.ConsumeIntegralInRange<int>(1, 3));
    for (auto &t : outputs) t.shape = fuzz_shape(fdp, 4, fdp.ConsumeBool() ? 16 : 2304);
  }
  int index = 0;
  for (auto &t : outputs) {
    t.name = "out" + std::to_string(index++);
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
  if (!decoder->has_int8_path()) return;
  // The int8 fast path on the same shapes (scales as the package loader allows: > 0).
  std::vector<ad::QuantizedTensor> quantized(outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i) {
    quantized[i].name = outputs[i].name;
    quantized[i].shape = outputs[i].shape;
    quantized[i].scale = fdp.ConsumeFloatingPointInRange<float>(1e-4f, 4.0f);
    quantized[i].zero_point = fdp.ConsumeIntegral<int8_t>();
    quantized[i].data.resize(outputs[i].data.size());
    for (auto &q : quantized[i].data) q = fdp.ConsumeIntegral<int8_t>();
  }
  try {
    (void)decoder->decode_quantized(quantized, g);
  } catch (const axstream::Error &) {
  }
}

void fuzz_convert(FuzzedDataProvider &fdp) {
  ad::OutputSpec spec;
  spec.name = "out";
  spec.shape = fuzz_shape(fdp, 5, 40);
  if (fdp.ConsumeBool()) {
    spec.padding.resize(fdp.ConsumeBool() ? spec.shape.size()
                                          : fdp.ConsumeIntegralInRange<size_t>(0, 6));
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

// Every registered decoder must have a shape template, so a decoder added later cannot silently
// escape the fuzzer (the regression replay in `meson test --suite fuzz` fails here).
extern "C" int LLVMFuzzerInitialize(int *, char ***) {
  const uint8_t zeros[64] = {};
  for (const auto &entry : ad::decoder_registry()) {
    FuzzedDataProvider fdp(zeros, sizeof zeros);
    if (template_shapes(entry.name, fdp).empty()) {
      std::fprintf(stderr,
                   "fuzz_decoders: decoder '%s' has no shape template in template_shapes()\n",
                   entry.name);
      std::abort();
    }
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  if (fdp.ConsumeBool())
    fuzz_decoder(fdp);
  else
    fuzz_convert(fdp);
  return 0;
}
