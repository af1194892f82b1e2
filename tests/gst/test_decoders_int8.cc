// The decoders' int8 fast paths (decode_quantized: thresholds on raw int8, 256-entry tables,
// dequantising only candidates) against their float paths (decode of the same tensors
// dequantised): seeded random int8 outputs of every supported layout, several thresholds, and
// the results must be identical — same detections in the same order, bit-equal boxes, scores
// and keypoints, same classes.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <random>

#include "axstream/decoders/decoder.h"
#include "axstream/decoders/output_converter.h"
#include "axstream/error.h"
#include "axstream/runtime/model_package.h"

namespace dec = axstream::decoders;

namespace {

dec::QuantizedTensor random_tensor(const std::string &name, std::vector<int64_t> shape, float scale,
                                   int zero_point, uint32_t seed) {
  dec::QuantizedTensor t;
  t.name = name;
  t.shape = std::move(shape);
  t.scale = scale;
  t.zero_point = zero_point;
  std::mt19937 rng(seed);
  t.data.resize(t.element_count());
  for (auto &q : t.data) q = static_cast<int8_t>(static_cast<int>(rng() % 256) - 128);
  return t;
}

dec::Geometry letterboxed(int width, int height) {
  dec::Geometry g;
  g.crop_x = 3;
  g.crop_y = 5;
  g.crop_width = width * 2;
  g.crop_height = height * 2;
  g.scale_x = g.scale_y = 0.5;
  g.offset_y = 2;
  g.tensor_width = width;
  g.tensor_height = height;
  return g;
}

// The int8 path's detections against the float path's: the same, bit for bit.
void expect_detections_equal(const std::vector<dec::Detection> &got,
                             const std::vector<dec::Detection> &expected, const std::string &what) {
  ASSERT_EQ(got.size(), expected.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    const dec::Detection &a = got[i], &b = expected[i];
    EXPECT_EQ(a.class_id, b.class_id) << what << " detection " << i;
    EXPECT_EQ(a.label, b.label) << what << " detection " << i;
    EXPECT_EQ(a.score, b.score) << what << " detection " << i;
    EXPECT_EQ(a.box.x0, b.box.x0) << what << " detection " << i;
    EXPECT_EQ(a.box.y0, b.box.y0) << what << " detection " << i;
    EXPECT_EQ(a.box.x1, b.box.x1) << what << " detection " << i;
    EXPECT_EQ(a.box.y1, b.box.y1) << what << " detection " << i;
    EXPECT_EQ(a.keypoints.size(), b.keypoints.size()) << what << " detection " << i;
    for (size_t k = 0; k < std::min(a.keypoints.size(), b.keypoints.size()); ++k) {
      EXPECT_EQ(a.keypoints[k].x, b.keypoints[k].x) << what << " detection " << i;
      EXPECT_EQ(a.keypoints[k].y, b.keypoints[k].y) << what << " detection " << i;
    }
  }
}

// Decodes both ways and requires identical, non-empty results. Returns the detection count.
size_t expect_identical(const std::string &decoder_name, dec::DecoderOptions options,
                        const std::vector<dec::QuantizedTensor> &quantized,
                        const dec::Geometry &geometry) {
  auto decoder = dec::make_decoder(decoder_name, options);
  EXPECT_TRUE(decoder->has_int8_path()) << decoder_name;
  std::vector<dec::FloatTensor> floats;
  for (const auto &t : quantized) floats.push_back(t.dequantized());
  decoder->check_outputs(floats);
  const dec::DecodeResult expected = decoder->decode(floats, geometry);
  const dec::DecodeResult got = decoder->decode_quantized(quantized, geometry);
  const std::string what = decoder_name + " threshold " + std::to_string(options.conf_threshold);
  EXPECT_FALSE(expected.detections.empty() && expected.classes.empty())
      << what << ": nothing decoded, the comparison would be vacuous";
  expect_detections_equal(got.detections, expected.detections, what);
  EXPECT_EQ(got.classes.size(), expected.classes.size()) << what;
  for (size_t i = 0; i < std::min(got.classes.size(), expected.classes.size()); ++i) {
    EXPECT_EQ(got.classes[i].class_id, expected.classes[i].class_id) << what << " rank " << i;
    EXPECT_EQ(got.classes[i].score, expected.classes[i].score) << what << " rank " << i;
  }
  return expected.detections.size() + expected.classes.size();
}

// Seeded random bytes for each of a converter's device outputs, padding included, with the
// pointers and sizes that OutputConverter::convert and view_quantized take.
struct RandomDeviceOutputs {
  std::vector<std::vector<int8_t>> raw;
  std::vector<const int8_t *> pointers;
  std::vector<size_t> sizes;

  RandomDeviceOutputs(const std::vector<dec::OutputSpec> &specs, std::mt19937 &rng) {
    for (const auto &spec : specs) {
      raw.emplace_back(spec.padded_bytes());
      for (auto &q : raw.back()) q = int8_t(rng());
    }
    for (const auto &r : raw) {
      pointers.push_back(r.data());
      sizes.push_back(r.size());
    }
  }
};

// The logits path's detections against the float path's: same classes, scores within 1e-6,
// boxes within 1e-3 (the candidates' arithmetic differs in the last bits).
void expect_detections_near(const std::vector<dec::Detection> &got,
                            const std::vector<dec::Detection> &expected, const std::string &what) {
  for (size_t i = 0; i < std::min(got.size(), expected.size()); ++i) {
    EXPECT_EQ(got[i].class_id, expected[i].class_id) << what << " detection " << i;
    EXPECT_NEAR(got[i].score, expected[i].score, 1e-6f) << what << " detection " << i;
    EXPECT_NEAR(got[i].box.x0, expected[i].box.x0, 1e-3f) << what << " detection " << i;
    EXPECT_NEAR(got[i].box.y0, expected[i].box.y0, 1e-3f) << what << " detection " << i;
    EXPECT_NEAR(got[i].box.x1, expected[i].box.x1, 1e-3f) << what << " detection " << i;
    EXPECT_NEAR(got[i].box.y1, expected[i].box.y1, 1e-3f) << what << " detection " << i;
  }
}

dec::DecoderOptions with_threshold(float threshold) {
  dec::DecoderOptions options;
  options.conf_threshold = threshold;
  options.max_detections = 0;
  return options;
}

// Decoder `name`'s detections on the float path, on `floats` (the postamble's outputs), and in
// its for_logits mode for `shapes` / `before_sigmoid` on the int8 `quantized` (what
// view_quantized or convert_quantized give). `got` stays empty, with a failure added, when the
// decoder has no such mode.
struct DecodedBothWays {
  std::vector<dec::Detection> expected, got;
};
DecodedBothWays decode_both_ways(const std::string &name, const dec::DecoderOptions &options,
                                 const std::vector<dec::FloatTensor> &floats,
                                 const std::vector<dec::FloatTensor> &shapes,
                                 const std::vector<bool> &before_sigmoid,
                                 const std::vector<dec::QuantizedTensor> &quantized,
                                 const dec::Geometry &geometry) {
  auto decoder = dec::make_decoder(name, options);
  decoder->check_outputs(floats);
  DecodedBothWays both;
  both.expected = decoder->decode(floats, geometry).detections;
  auto logits_decoder = decoder->for_logits(shapes, before_sigmoid);
  if (!logits_decoder || !logits_decoder->has_int8_path()) {
    ADD_FAILURE() << name << " has no int8 logits or parts mode for these outputs";
    return both;
  }
  both.got = logits_decoder->decode_quantized(quantized, geometry).detections;
  return both;
}

// Where set-up (scripts/setup.sh) caches models: AXSTREAM_DATA_DIR, else ~/.cache/axstream.
std::string cache_dir() {
  const char *data = std::getenv("AXSTREAM_DATA_DIR");
  return data ? data : std::string(std::getenv("HOME")) + "/.cache/axstream";
}

// A package scripts/bench.sh compiles: AXSTREAM_BENCH_MODELS/pkg/NAME, else in the cache.
std::string bench_package_dir(const std::string &name) {
  const char *models = std::getenv("AXSTREAM_BENCH_MODELS");
  return (models ? std::string(models) : cache_dir() + "/bench") + "/pkg/" + name;
}

// A compiled package set-up leaves in the cache, and its output converter; when the package is
// not there both are null and `missing` names it and the script that makes it (the test skips:
// GTEST_SKIP has to stand in the test itself).
struct CachedPackage {
  std::shared_ptr<const axstream::runtime::ModelPackage> package;
  std::unique_ptr<dec::OutputConverter> converter;
  std::string missing;
};

CachedPackage load_cached_package(const std::string &what, const std::string &dir,
                                  const std::string &made_by) {
  CachedPackage cached;
  if (!std::ifstream(dir + "/model.json")) {
    cached.missing = "no " + what + " package at " + dir + " (" + made_by + ")";
    return cached;
  }
  cached.package = axstream::runtime::load_model_package(dir);
  cached.converter = dec::OutputConverter::from_package(*cached.package);
  return cached;
}

}  // namespace

TEST(Int8FastPath, YoloV5DecodedEqualsTheFloatPath) {
  // One tensor for boxes and scores: values -0.28 .. 2.27.
  const auto t = random_tensor("output0", {1, 400, 5 + 3}, 0.01f, -100, 1);
  for (float threshold : {0.25f, 0.6f, 1.2f})
    expect_identical("yolov5", with_threshold(threshold), {t}, letterboxed(64, 64));
}

TEST(Int8FastPath, YoloV5RawHeadsEqualTheFloatPath) {
  std::vector<dec::QuantizedTensor> heads;
  for (int size : {4, 16, 8})
    heads.push_back(random_tensor("head" + std::to_string(size), {1, 3 * (5 + 2), size, size},
                                  0.03f, 10, uint32_t(size)));
  for (float threshold : {0.25f, 0.5f, 0.8f})
    expect_identical("yolov5", with_threshold(threshold), heads, letterboxed(128, 128));
}

TEST(Int8FastPath, YoloV8DecodedEqualsTheFloatPathInBothLayouts) {
  for (bool channels_first : {true, false}) {
    const auto t = random_tensor(
        "output0",
        channels_first ? std::vector<int64_t>{1, 4 + 5, 300} : std::vector<int64_t>{1, 300, 4 + 5},
        0.004f, -128, channels_first ? 2 : 3);
    for (float threshold : {0.25f, 0.7f})
      expect_identical("yolov8", with_threshold(threshold), {t}, letterboxed(64, 64));
  }
}

TEST(Int8FastPath, YoloV8DflHeadsEqualTheFloatPath) {
  std::vector<dec::QuantizedTensor> heads;
  for (int size : {8, 2, 4})
    heads.push_back(random_tensor("head" + std::to_string(size), {1, 64 + 3, size, size}, 0.05f,
                                  -20, uint32_t(40 + size)));
  for (float threshold : {0.25f, 0.9f})
    expect_identical("yolov8", with_threshold(threshold), heads, letterboxed(64, 64));
}

TEST(Int8FastPath, SsdDecodedBoxesAndProbabilitiesEqualTheFloatPath) {
  const auto boxes = random_tensor("boxes", {1, 200, 4}, 1.0f / 255, -128, 5);
  const auto scores = random_tensor("scores", {1, 200, 4}, 1.0f / 255, -128, 6);
  for (float threshold : {0.5f, 0.95f})
    expect_identical("ssd", with_threshold(threshold), {boxes, scores}, letterboxed(100, 100));
}

TEST(Int8FastPath, SsdPriorDeltasWithSoftmaxOrSigmoidScoresEqualTheFloatPath) {
  // 3x3 and 2x2 maps, 4 priors per cell: 52 rows.
  const auto boxes = random_tensor("loc", {1, 52, 4}, 0.05f, 0, 7);
  const auto scores = random_tensor("conf", {1, 52, 5}, 0.06f, 30, 8);
  for (const char *kind : {"softmax", "sigmoid"}) {
    dec::DecoderOptions options = with_threshold(0.4f);
    options.config = dec::parse_decoder_config(
        "feature-maps=3,2; image-size=90; min-sizes=20,45; max-sizes=45,90; "
        "aspect-ratios=2|2; scores=" +
        std::string(kind));
    expect_identical("ssd", options, {boxes, scores}, letterboxed(90, 90));
  }
}

TEST(Int8FastPath, SsdSoftmaxRowsExactlyAtTheThresholdAreKept) {
  // The int8 path rejects softmax rows on an estimate first: rows whose float softmax is the
  // threshold itself must still pass, as they do on the float path.
  const auto boxes = random_tensor("loc", {1, 52, 4}, 0.05f, 0, 29);
  const auto scores = random_tensor("conf", {1, 52, 6}, 0.02f, -4, 30);
  dec::DecoderOptions options = with_threshold(0.2f);
  options.config = dec::parse_decoder_config(
      "feature-maps=3,2; image-size=90; min-sizes=20,45; max-sizes=45,90; aspect-ratios=2|2");
  const auto all = dec::make_decoder("ssd", options)
                       ->decode({boxes.dequantized(), scores.dequantized()}, letterboxed(90, 90))
                       .detections;
  ASSERT_GE(all.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    options.conf_threshold = all[i].score;
    EXPECT_GT(expect_identical("ssd", options, {boxes, scores}, letterboxed(90, 90)), i)
        << "threshold " << all[i].score;
  }
}

TEST(Int8FastPath, BlazeFaceEqualsTheFloatPathIncludingTheZeroThreshold) {
  const auto scores = random_tensor("scores", {1, 896, 1}, 0.1f, 0, 9);
  const auto boxes = random_tensor("boxes", {1, 896, 16}, 0.25f, 0, 10);
  for (float threshold : {0.0f, 0.75f, 0.99f})
    expect_identical("blazeface", with_threshold(threshold), {boxes, scores},
                     letterboxed(128, 128));
}

TEST(Int8FastPath, ClassificationTopKEqualsTheFloatPathWithAndWithoutSoftmax) {
  const auto logits = random_tensor("logits", {1, 1000}, 0.07f, 3, 11);
  for (bool softmax : {false, true}) {
    dec::DecoderOptions options;
    options.top_k = 7;
    options.softmax = softmax;
    options.labels = {"zero", "one", "two"};
    EXPECT_EQ(expect_identical("classification", options, {logits}, {}), 7u);
  }
}

namespace {

// A decoder without an int8 path: the sum of its first output as one class score.
class SumDecoder final : public dec::Decoder {
 public:
  const char *name() const override { return "sum"; }
  void check_outputs(const std::vector<dec::FloatTensor> &) const override {}
  dec::DecodeResult decode(const std::vector<dec::FloatTensor> &outputs,
                           const dec::Geometry &) const override {
    float sum = 0;
    for (float v : outputs[0].data) sum += v;
    dec::DecodeResult result;
    result.classes.push_back({0, sum, "sum"});
    return result;
  }
};

}  // namespace

TEST(Int8FastPath, DecodersWithoutOneDequantiseEverything) {
  const auto t = random_tensor("values", {1, 5, 7}, 0.03f, -4, 5);
  const SumDecoder decoder;
  EXPECT_FALSE(decoder.has_int8_path());
  const auto got = decoder.decode_quantized({t}, {});
  const auto expected = decoder.decode({t.dequantized()}, {});
  ASSERT_EQ(got.classes.size(), 1u);
  EXPECT_EQ(got.classes[0].score, expected.classes[0].score);
}

TEST(Int8FastPath, CtcReadsTheInt8ArgmaxLikeTheFloatPath) {
  // Probabilities as the core quantises them (scale 1/255, zero point -128), with ties between
  // classes in some steps: the first maximum wins either way.
  dec::QuantizedTensor probs = random_tensor("probs", {1, 40, 30}, 1.0f / 255, -128, 17);
  for (int s = 0; s < 40; s += 3) probs.data[s * 30 + 1 + s % 7] = probs.data[s * 30 + 9] = 127;
  dec::DecoderOptions options;
  for (char c = 'a'; c < 'a' + 28; ++c) options.labels.push_back(std::string(1, c));
  auto decoder = dec::make_decoder("ctc", options);
  ASSERT_TRUE(decoder->has_int8_path());
  const auto got = decoder->decode_quantized({probs}, {});
  const auto expected = decoder->decode({probs.dequantized()}, {});
  ASSERT_EQ(expected.texts.size(), 1u);
  ASSERT_EQ(got.texts.size(), 1u);
  EXPECT_GE(expected.texts[0].text.size(), 10u);
  EXPECT_EQ(got.texts[0].text, expected.texts[0].text);
  EXPECT_EQ(got.texts[0].confidence, expected.texts[0].confidence);

  // The same on a padded channels-last device output read in place.
  dec::OutputSpec spec;
  spec.name = "probs";
  spec.shape = {1, 40, 32};
  spec.padding = {{0, 0}, {0, 0}, {0, 2}};
  spec.scale = 1.0 / 255;
  spec.zero_point = -128;
  dec::OutputConverter converter({spec});
  std::vector<int8_t> bytes(40 * 32, -128);
  for (int s = 0; s < 40; ++s)
    for (int c = 0; c < 30; ++c) bytes[s * 32 + c] = probs.data[s * 30 + c];
  const auto viewed = converter.view_quantized({bytes.data()}, {bytes.size()});
  const auto from_view = decoder->decode_quantized(viewed, {});
  ASSERT_EQ(from_view.texts.size(), 1u);
  EXPECT_EQ(from_view.texts[0].text, expected.texts[0].text);
}

namespace {

void add_float_value(onnx::ValueInfoProto *value, const std::string &name,
                     const std::vector<int64_t> &shape) {
  value->set_name(name);
  auto *type = value->mutable_type()->mutable_tensor_type();
  type->set_elem_type(onnx::TensorProto::FLOAT);
  for (int64_t dim : shape) type->mutable_shape()->add_dim()->set_dim_value(dim);
}

// An IR 8, opset 13 model whose graph is named `name`: a postamble for OutputConverter.
onnx::ModelProto postamble_model(const std::string &name) {
  onnx::ModelProto model;
  model.set_ir_version(8);
  model.add_opset_import()->set_version(13);
  model.mutable_graph()->set_name(name);
  return model;
}

// An unnamed node op(inputs) -> output.
onnx::NodeProto *add_node(onnx::GraphProto *graph, const std::string &op,
                          const std::vector<std::string> &inputs, const std::string &output) {
  auto *node = graph->add_node();
  node->set_op_type(op);
  for (const auto &input : inputs) node->add_input(input);
  node->add_output(output);
  return node;
}

void set_axis(onnx::NodeProto *node, int64_t axis) {
  auto *attribute = node->add_attribute();
  attribute->set_name("axis");
  attribute->set_type(onnx::AttributeProto::INT);
  attribute->set_i(axis);
}

// Saves `model` as <test temp dir>/<file> and returns that path.
std::string save_model(const onnx::ModelProto &model, const std::string &file) {
  const std::string path = ::testing::TempDir() + "/" + file;
  std::ofstream(path, std::ios::binary) << model.SerializeAsString();
  return path;
}

// A postamble over core outputs a (1,2,3,4) and b (1,6): out_a = Reshape(Transpose(a)) and
// out_b = Reshape(b) (data movement only), plus the unary `extra_op` applied to b (e.g. "Sigmoid",
// "Relu") or, for "Concat", one output joining both.
std::string write_postamble(const std::string &name, const std::string &extra_op) {
  onnx::ModelProto model = postamble_model(name);
  auto *graph = model.mutable_graph();
  add_float_value(graph->add_input(), "a", {1, 2, 3, 4});
  add_float_value(graph->add_input(), "b", {1, 6});
  auto *shape = graph->add_initializer();
  shape->set_name("shape_a");
  shape->set_data_type(onnx::TensorProto::INT64);
  shape->add_dims(3);
  for (int64_t d : {1, 12, 2}) shape->add_int64_data(d);
  auto *shape_b = graph->add_initializer();
  shape_b->set_name("shape_b");
  shape_b->set_data_type(onnx::TensorProto::INT64);
  shape_b->add_dims(3);
  for (int64_t d : {1, 3, 2}) shape_b->add_int64_data(d);
  auto *transpose = add_node(graph, "Transpose", {"a"}, "a_t");
  auto *perm = transpose->add_attribute();
  perm->set_name("perm");
  perm->set_type(onnx::AttributeProto::INTS);
  for (int64_t p : {0, 2, 3, 1}) perm->add_ints(p);
  add_node(graph, "Reshape", {"a_t", "shape_a"}, "out_a");
  std::string b_source = "b";
  if (!extra_op.empty() && extra_op != "Concat") {
    add_node(graph, extra_op, {"b"}, "b_s");
    b_source = "b_s";
  }
  add_node(graph, "Reshape", {b_source, "shape_b"}, "out_b");
  if (extra_op == "Concat") {
    set_axis(add_node(graph, "Concat", {"out_a", "out_b"}, "joined"), 1);
    add_float_value(graph->add_output(), "joined", {1, 15, 2});
  } else {
    add_float_value(graph->add_output(), "out_a", {1, 12, 2});
    add_float_value(graph->add_output(), "out_b", {1, 3, 2});
  }
  return save_model(model, name + ".onnx");
}

std::vector<dec::OutputSpec> postamble_specs() {
  dec::OutputSpec a, b;
  a.name = "a";
  a.shape = {1, 3, 4, 2};  // NHWC device tensor of the (1,2,3,4) NCHW output
  a.nhwc_to_nchw = true;
  a.scale = 0.05;
  a.zero_point = 3;
  b.name = "b";
  b.shape = {1, 8};  // 6 values padded to 8
  b.padding = {{0, 0}, {0, 2}};
  b.scale = 0.2;
  b.zero_point = -7;
  return {a, b};
}

}  // namespace

TEST(Int8FastPath, DataMovementPostamblesAreGatheredInInt8ExactlyAsTheFloatPostamble) {
  dec::OutputConverter converter(postamble_specs(), write_postamble("layout_only", ""));
  ASSERT_TRUE(converter.quantized_outputs_available());
  std::mt19937 rng(12);
  const RandomDeviceOutputs device(converter.specs(), rng);  // a: 24 bytes, b: 8
  const auto floats = converter.convert(device.pointers, device.sizes);
  const auto quantized = converter.convert_quantized(device.pointers, device.sizes);
  ASSERT_EQ(quantized.size(), 2u);
  for (size_t o = 0; o < 2; ++o) {
    EXPECT_EQ(quantized[o].name, floats[o].name);
    EXPECT_EQ(quantized[o].shape, floats[o].shape);
    EXPECT_EQ(quantized[o].dequantized().data, floats[o].data) << floats[o].name;
  }
  EXPECT_EQ(quantized[1].scale, 0.2f);
  EXPECT_EQ(quantized[1].zero_point, -7);
}

// A layout-only postamble that puts the device's values back in their own order (a's
// Transpose to channels-last undoing the transposition back to channels-first; b's Reshape of
// its values before the padding) is read in place: views of the device outputs, no copies.
TEST(Int8FastPath, GathersOfDeviceValuesInTheirOwnOrderAreViewsOfTheDeviceOutputs) {
  dec::OutputConverter converter(postamble_specs(), write_postamble("layout_in_place", ""));
  std::mt19937 rng(31);
  const RandomDeviceOutputs device(converter.specs(), rng);
  const auto floats = converter.convert(device.pointers, device.sizes);
  const auto views = converter.view_quantized(device.pointers, device.sizes);
  ASSERT_EQ(views.size(), 2u);
  for (size_t o = 0; o < 2; ++o) {
    EXPECT_EQ(views[o].view, device.raw[o].data()) << floats[o].name << " is not read in place";
    EXPECT_EQ(views[o].shape, floats[o].shape);
    EXPECT_EQ(views[o].dequantized().data, floats[o].data) << floats[o].name;
  }
  // A device output of the wrong size is refused as by the conversion.
  std::vector<size_t> short_sizes = device.sizes;
  short_sizes[1] = 7;
  EXPECT_THROW(converter.view_quantized(device.pointers, short_sizes), axstream::InvalidArgument);
}

// axdecode keeps the views of one frame's outputs and points them at the next frame's
// (refresh_views) instead of making names, shapes and the vector again: the refreshed views read
// the next outputs exactly as views made afresh do; anything else is refused untouched.
TEST(Int8FastPath, RefreshedViewsReadTheNextDeviceOutputsLikeNewOnes) {
  dec::OutputConverter converter(postamble_specs(), write_postamble("layout_refresh", ""));
  std::mt19937 rng(37);
  const RandomDeviceOutputs first(converter.specs(), rng), second(converter.specs(), rng);
  auto views = converter.view_quantized(first.pointers, first.sizes);
  ASSERT_TRUE(converter.refresh_views(views, second.pointers, second.sizes));
  const auto fresh = converter.view_quantized(second.pointers, second.sizes);
  ASSERT_EQ(views.size(), fresh.size());
  for (size_t o = 0; o < fresh.size(); ++o) {
    EXPECT_EQ(views[o].view, fresh[o].view) << fresh[o].name;
    EXPECT_EQ(views[o].name, fresh[o].name);
    EXPECT_EQ(views[o].shape, fresh[o].shape);
    EXPECT_EQ(views[o].dequantized().data, fresh[o].dequantized().data) << fresh[o].name;
  }
  // A device output of the wrong size, another batch item, or views it did not make: false,
  // and the views keep pointing at the second outputs.
  std::vector<size_t> short_sizes = second.sizes;
  short_sizes[1] = 7;
  EXPECT_FALSE(converter.refresh_views(views, first.pointers, short_sizes));
  EXPECT_FALSE(converter.refresh_views(views, first.pointers, first.sizes, 1));
  EXPECT_EQ(views[0].view, fresh[0].view);
  std::vector<dec::QuantizedTensor> none;
  EXPECT_FALSE(converter.refresh_views(none, first.pointers, first.sizes));
  // Outputs that are not all views in place (a concatenation handed over as its parts) are
  // never refreshed.
  dec::OutputConverter parts(postamble_specs(), write_postamble("concat_refresh", "Concat"));
  auto joined = parts.view_quantized(first.pointers, first.sizes);
  EXPECT_FALSE(parts.refresh_views(joined, second.pointers, second.sizes));
}

TEST(Int8FastPath, ASigmoidPostambleIsGatheredAsTheSigmoidsLogits) {
  dec::OutputConverter converter(postamble_specs(), write_postamble("sigmoid", "Sigmoid"));
  ASSERT_TRUE(converter.quantized_outputs_available());
  EXPECT_EQ(converter.outputs_before_sigmoid(), (std::vector<bool>{false, true}));
  std::mt19937 rng(14);
  const RandomDeviceOutputs device(converter.specs(), rng);  // a: 24 bytes, b: 8
  const auto floats = converter.convert(device.pointers, device.sizes);
  const auto quantized = converter.convert_quantized(device.pointers, device.sizes);
  ASSERT_EQ(quantized.size(), 2u);
  EXPECT_EQ(quantized[0].dequantized().data, floats[0].data);
  ASSERT_EQ(quantized[1].shape, floats[1].shape);
  for (size_t k = 0; k < floats[1].data.size(); ++k)
    EXPECT_EQ(dec::sigmoid(quantized[1].dequantize(quantized[1].data[k])), floats[1].data[k])
        << "element " << k;
}

TEST(Int8FastPath, PostamblesThatComputeKeepTheFloatPath) {
  // Relu is the identity on the probe's positive values: only the op list can reject it.
  dec::OutputConverter converter(postamble_specs(), write_postamble("with_Relu", "Relu"));
  EXPECT_FALSE(converter.quantized_outputs_available());
  std::vector<int8_t> a(24, 1), b(8, 1);
  EXPECT_THROW(converter.convert_quantized({a.data(), b.data()}, {a.size(), b.size()}),
               axstream::InvalidArgument);
}

TEST(Int8FastPath, AConcatOfDifferentlyQuantisedOutputsIsHandedOverAsItsParts) {
  // joined (1,15,2) = Concat(Reshape(Transpose(a)) (1,12,2), Reshape(b) (1,3,2)): a's part is
  // the NHWC device tensor in its own order, b's its values in order.
  dec::OutputConverter converter(postamble_specs(), write_postamble("with_Concat", "Concat"));
  ASSERT_TRUE(converter.quantized_outputs_available());
  EXPECT_TRUE(converter.splits_outputs());
  EXPECT_EQ(converter.outputs_before_sigmoid(), (std::vector<bool>{false, false}));
  const auto shapes = converter.quantized_output_shapes();
  ASSERT_EQ(shapes.size(), 2u);
  EXPECT_EQ(shapes[0].shape, (std::vector<int64_t>{1, 12, 2}));
  EXPECT_EQ(shapes[1].shape, (std::vector<int64_t>{1, 3, 2}));
  std::mt19937 rng(25);
  const RandomDeviceOutputs device(converter.specs(), rng);
  const auto joined = converter.convert(device.pointers, device.sizes);
  ASSERT_EQ(joined.size(), 1u);
  const auto parts = converter.view_quantized(device.pointers, device.sizes);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[0].view, device.raw[0].data()) << "a's part is the device tensor, not a copy";
  std::vector<float> concatenated;
  for (const auto &part : parts) {
    const auto values = part.dequantized().data;
    concatenated.insert(concatenated.end(), values.begin(), values.end());
  }
  EXPECT_EQ(concatenated, joined[0].data);
  EXPECT_EQ(parts[1].scale, 0.2f);
}

TEST(Int8FastPath, TheBlazeFaceDemoPackageDecodesInInt8LikeTheFloatPath) {
  const CachedPackage front =
      load_cached_package("compiled blazeface-front", cache_dir() + "/models/blazeface-front",
                          "scripts/build-demo-models.sh");
  if (!front.converter) GTEST_SKIP() << front.missing;
  const auto &converter = front.converter;
  ASSERT_TRUE(converter->quantized_outputs_available())
      << "its Transpose+Reshape postamble only moves data";
  auto decoder = dec::make_decoder("blazeface", {});
  std::mt19937 rng(13);
  for (int frame = 0; frame < 3; ++frame) {
    const RandomDeviceOutputs device(converter->specs(), rng);
    dec::DecoderOptions options = with_threshold(0.5f);
    const auto quantized = converter->convert_quantized(device.pointers, device.sizes);
    const auto floats = converter->convert(device.pointers, device.sizes);
    ASSERT_EQ(quantized.size(), floats.size());
    for (size_t o = 0; o < floats.size(); ++o)
      EXPECT_EQ(quantized[o].dequantized().data, floats[o].data) << floats[o].name;
    expect_identical("blazeface", options, quantized, letterboxed(128, 128));
  }
}

// BlazeFace front's four outputs are read where the device wrote them, the 8x8 scores (6 of 8
// channels) in rows of 6 at a stride of 8, with the float path's values.
TEST(Int8FastPath, TheBlazeFaceDemoPackagesOutputsAreReadInPlace) {
  const CachedPackage front =
      load_cached_package("compiled blazeface-front", cache_dir() + "/models/blazeface-front",
                          "scripts/build-demo-models.sh");
  if (!front.converter) GTEST_SKIP() << front.missing;
  const auto &converter = front.converter;
  std::mt19937 rng(33);
  const RandomDeviceOutputs device(converter->specs(), rng);
  const auto floats = converter->convert(device.pointers, device.sizes);
  const auto views = converter->view_quantized(device.pointers, device.sizes);
  ASSERT_EQ(views.size(), floats.size());
  int in_rows = 0;
  for (size_t o = 0; o < views.size(); ++o) {
    ASSERT_NE(views[o].view, nullptr) << floats[o].name << " was copied";
    const bool in_some_output =
        std::any_of(device.raw.begin(), device.raw.end(),
                    [&](const auto &raw) { return views[o].view == raw.data(); });
    EXPECT_TRUE(in_some_output) << floats[o].name;
    in_rows += views[o].view_rows ? 1 : 0;
    EXPECT_EQ(views[o].dequantized().data, floats[o].data) << floats[o].name;
  }
  EXPECT_EQ(in_rows, 1) << "the channel-padded 8x8 scores";
  // axdecode's per-frame path: the same views pointed at the next frame's outputs.
  const RandomDeviceOutputs next(converter->specs(), rng);
  auto refreshed = views;
  ASSERT_TRUE(converter->refresh_views(refreshed, next.pointers, next.sizes));
  const auto next_floats = converter->convert(next.pointers, next.sizes);
  for (size_t o = 0; o < refreshed.size(); ++o)
    EXPECT_EQ(refreshed[o].dequantized().data, next_floats[o].data) << next_floats[o].name;
}

namespace {

// A YOLOv5-shaped package's outputs: three raw heads (1, 3 * (5 + 2), S, S), S = 8, 4, 2 of a
// 64x64 input, NHWC on the device with channels 21 padded to 24, and a postamble that is only
// the heads' Sigmoid (what axcompile leaves of yolov5s).
std::vector<dec::OutputSpec> yolo_head_specs() {
  std::vector<dec::OutputSpec> specs;
  const double scales[] = {0.045, 0.05, 0.04};
  const int zero_points[] = {5, -1, -21};
  int i = 0;
  for (int64_t size : {8, 4, 2}) {
    dec::OutputSpec spec;
    spec.name = "head" + std::to_string(size);
    spec.shape = {1, size, size, 24};
    spec.padding = {{0, 0}, {0, 0}, {0, 0}, {0, 3}};
    spec.scale = scales[i];
    spec.zero_point = zero_points[i++];
    spec.original_shape = {1, 21, size, size};
    spec.nhwc_to_nchw = true;
    specs.push_back(spec);
  }
  return specs;
}

std::string write_sigmoid_heads_postamble() {
  onnx::ModelProto model = postamble_model("yolo_sigmoid_heads");
  auto *graph = model.mutable_graph();
  for (int64_t size : {8, 4, 2}) {
    const std::string head = "head" + std::to_string(size);
    add_float_value(graph->add_input(), head, {1, 21, size, size});
    add_node(graph, "Sigmoid", {head}, head + "_sigmoid");
    add_float_value(graph->add_output(), head + "_sigmoid", {1, 21, size, size});
  }
  return save_model(model, "yolo_sigmoid_heads.onnx");
}

}  // namespace

TEST(Int8FastPath, YoloV5HeadsWithASigmoidPostambleDecodeTheLogitsLikeTheFloatPath) {
  dec::OutputConverter converter(yolo_head_specs(), write_sigmoid_heads_postamble());
  ASSERT_TRUE(converter.quantized_outputs_available());
  EXPECT_EQ(converter.outputs_before_sigmoid(), (std::vector<bool>{true, true, true}));
  std::mt19937 rng(15);
  size_t compared = 0;
  for (int frame = 0; frame < 4; ++frame) {
    const RandomDeviceOutputs device(converter.specs(), rng);
    const auto floats =
        converter.convert(device.pointers, device.sizes);  // through the Sigmoid postamble
    const auto logits = converter.convert_quantized(device.pointers, device.sizes);
    for (float threshold : {0.25f, 0.5f, 0.8f}) {
      dec::DecoderOptions options = with_threshold(threshold);
      options.config["activations"] = "sigmoid";  // what the model's outputs are
      const auto [expected, got] =
          decode_both_ways("yolov5", options, floats, floats, converter.outputs_before_sigmoid(),
                           logits, letterboxed(64, 64));
      const std::string what =
          "frame " + std::to_string(frame) + " threshold " + std::to_string(threshold);
      ASSERT_FALSE(expected.empty()) << what << ": nothing decoded, the comparison is vacuous";
      ASSERT_EQ(got.size(), expected.size()) << what;
      expect_detections_near(got, expected, what);
      // Views of the device outputs (what axdecode decodes, no copy) give the copies' results.
      const auto viewed =
          decode_both_ways("yolov5", options, floats, floats, converter.outputs_before_sigmoid(),
                           converter.view_quantized(device.pointers, device.sizes),
                           letterboxed(64, 64))
              .got;
      ASSERT_EQ(viewed.size(), got.size()) << what;
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(viewed[i].score, got[i].score) << what << " detection " << i;
        EXPECT_EQ(viewed[i].box.x0, got[i].box.x0) << what << " detection " << i;
        EXPECT_EQ(viewed[i].box.y1, got[i].box.y1) << what << " detection " << i;
      }
      compared += got.size();
    }
  }
  EXPECT_GT(compared, 20u);
}

TEST(Int8FastPath, ViewsOfPaddedChannelsLastOutputsReadAsTheDepaddedCopies) {
  dec::OutputConverter converter(yolo_head_specs());
  std::mt19937 rng(18);
  const RandomDeviceOutputs device(converter.specs(), rng);
  const auto copies = converter.convert_quantized(device.pointers, device.sizes);
  const auto views = converter.view_quantized(device.pointers, device.sizes);
  ASSERT_EQ(views.size(), copies.size());
  for (size_t o = 0; o < views.size(); ++o) {
    EXPECT_EQ(views[o].view, device.raw[o].data()) << "no copy of " << views[o].name;
    EXPECT_TRUE(views[o].data.empty());
    EXPECT_EQ(views[o].shape, copies[o].shape);
    EXPECT_EQ(views[o].owned().data, copies[o].data) << views[o].name;
    EXPECT_EQ(views[o].dequantized().data, copies[o].dequantized().data) << views[o].name;
  }
  // Spatial padding has no view: copied as before.
  dec::OutputSpec padded = converter.specs()[0];
  padded.shape = {1, 9, 8, 24};
  padded.padding = {{0, 0}, {0, 1}, {0, 0}, {0, 3}};
  std::vector<int8_t> bytes(padded.padded_bytes(), 3);
  const auto tensors =
      dec::OutputConverter({padded}).view_quantized({bytes.data()}, {bytes.size()});
  EXPECT_EQ(tensors[0].view, nullptr);
  EXPECT_EQ(tensors[0].data.size(), 21u * 8 * 8);
}

TEST(Int8FastPath, OnlyDecodersWithAMatchingLogitsModeTakeASigmoidPostamble) {
  std::vector<dec::FloatTensor> heads(3);
  for (size_t i = 0; i < 3; ++i) heads[i].shape = {1, 21, 8 >> i, 8 >> i};
  const std::vector<bool> all(3, true);
  dec::DecoderOptions sigmoid_heads;
  sigmoid_heads.config["activations"] = "sigmoid";
  EXPECT_TRUE(dec::make_decoder("yolov5", sigmoid_heads)->for_logits(heads, all));
  // A decoder that applies the sigmoid itself would apply it twice.
  EXPECT_FALSE(dec::make_decoder("yolov5", {})->for_logits(heads, all));
  EXPECT_FALSE(dec::make_decoder("yolov5", sigmoid_heads)->for_logits(heads, {true, false, true}));
  // No logits mode for these outputs: the float path stays.
  EXPECT_FALSE(dec::make_decoder("yolov8", sigmoid_heads)->for_logits(heads, all));
  // dbnet: a probability map (its default) that is the postamble's sigmoid.
  dec::FloatTensor map;
  map.shape = {1, 1, 32, 32};
  EXPECT_TRUE(dec::make_decoder("dbnet", {})->for_logits({map}, {true}));
  dec::DecoderOptions logits_map;
  logits_map.config["activations"] = "logits";
  EXPECT_FALSE(dec::make_decoder("dbnet", logits_map)->for_logits({map}, {true}));
  // ssd: probabilities that are the sigmoid of the scores output.
  dec::FloatTensor boxes, scores;
  boxes.shape = {1, 52, 4};
  scores.shape = {1, 52, 5};
  EXPECT_TRUE(dec::make_decoder("ssd", {})->for_logits({boxes, scores}, {false, true}));
  EXPECT_FALSE(dec::make_decoder("ssd", {})->for_logits({boxes, scores}, {true, true}));
}

TEST(Int8FastPath, SsdProbabilitiesThatAreASigmoidDecodeTheLogitsLikeTheFloatPath) {
  const auto boxes = random_tensor("boxes", {1, 200, 4}, 1.0f / 255, -128, 16);
  const auto scores = random_tensor("scores", {1, 200, 4}, 0.05f, 0, 17);
  dec::FloatTensor probabilities = scores.dequantized();
  for (float &p : probabilities.data) p = dec::sigmoid(p);
  const std::vector<dec::FloatTensor> floats = {boxes.dequantized(), probabilities};
  for (float threshold : {0.5f, 0.9f}) {
    const auto [expected, got] =
        decode_both_ways("ssd", with_threshold(threshold), floats, floats, {false, true},
                         {boxes, scores}, letterboxed(100, 100));
    ASSERT_FALSE(expected.empty());
    expect_detections_equal(got, expected, "threshold " + std::to_string(threshold));
  }
}

TEST(Int8FastPath, TheYoloV5sBenchPackagesSigmoidPostambleDecodesInInt8LikeTheFloatPath) {
  const CachedPackage yolo =
      load_cached_package("yolov5s bench", bench_package_dir("yolov5s"), "scripts/bench.sh");
  if (!yolo.converter) GTEST_SKIP() << yolo.missing;
  const auto &converter = yolo.converter;
  ASSERT_TRUE(converter->has_postamble());
  ASSERT_TRUE(converter->quantized_outputs_available()) << "its postamble is the heads' Sigmoid";
  const std::vector<bool> before_sigmoid = converter->outputs_before_sigmoid();
  EXPECT_EQ(before_sigmoid, std::vector<bool>(3, true));
  std::mt19937 rng(19);
  const RandomDeviceOutputs device(converter->specs(), rng);
  const auto floats = converter->convert(device.pointers, device.sizes);
  dec::DecoderOptions options;
  options.conf_threshold = 0.9f;  // random logits: hundreds of candidates, not thousands
  options.config["activations"] = "sigmoid";
  const auto [expected, got] = decode_both_ways(
      "yolov5", options, floats, floats, before_sigmoid,
      converter->view_quantized(device.pointers, device.sizes), letterboxed(640, 640));
  EXPECT_GT(expected.size(), 10u) << "too few detections for a comparison";
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].class_id, expected[i].class_id) << "detection " << i;
    EXPECT_NEAR(got[i].score, expected[i].score, 1e-6f) << "detection " << i;
    EXPECT_NEAR(got[i].box.x0, expected[i].box.x0, 1e-2f) << "detection " << i;
    EXPECT_NEAR(got[i].box.y1, expected[i].box.y1, 1e-2f) << "detection " << i;
  }
}

namespace {

// A (1,1,64,64) DBNet map as the device gives it, NHWC (1,64,64,1): three text-like bars of high
// values over noise, seeded.
std::vector<int8_t> text_map_bytes(uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int8_t> bytes(64 * 64);
  for (auto &q : bytes) q = static_cast<int8_t>(static_cast<int>(rng() % 100) - 128);
  const int bars[3][4] = {{5, 4, 40, 9}, {10, 30, 50, 38}, {45, 50, 60, 61}};  // x0 y0 x1 y1
  for (const auto &bar : bars)
    for (int y = bar[1]; y < bar[3]; ++y)
      for (int x = bar[0]; x < bar[2]; ++x)
        bytes[size_t(y) * 64 + x] = static_cast<int8_t>(40 + static_cast<int>(rng() % 80));
  return bytes;
}

}  // namespace

TEST(Int8FastPath, DbNetMapsDecodeInInt8LikeTheFloatPathAsProbabilitiesOrLogits) {
  dec::OutputSpec spec;
  spec.name = "map";
  spec.shape = {1, 64, 64, 1};
  spec.nhwc_to_nchw = true;
  spec.original_shape = {1, 1, 64, 64};
  // The default thresholds, and decoder-config's binary-threshold and unclip-ratio.
  for (const char *config : {"", "binary-threshold=0.45; unclip-ratio=2"})
    for (bool logits : {false, true}) {
      SCOPED_TRACE(std::string(logits ? "logits" : "probabilities") + " '" + config + "'");
      spec.scale = logits ? 0.05 : 1.0 / 255;
      spec.zero_point = logits ? 0 : -128;
      dec::OutputConverter converter({spec});
      const std::vector<int8_t> bytes = text_map_bytes(logits ? 23 : 22);
      const auto quantized = converter.view_quantized({bytes.data()}, {bytes.size()});
      ASSERT_NE(quantized[0].view, nullptr);
      dec::FloatTensor map = quantized[0].dequantized();
      if (logits)  // what the Sigmoid postamble would give the float path
        for (float &v : map.data) v = dec::sigmoid(v);
      dec::DecoderOptions options;
      options.conf_threshold = 0.5f;
      options.config = dec::parse_decoder_config(config);
      auto decoder = dec::make_decoder("dbnet", options);
      std::unique_ptr<dec::Decoder> logits_decoder;
      if (logits) logits_decoder = decoder->for_logits({map}, {true});
      const dec::Decoder &int8_decoder = logits ? *logits_decoder : *decoder;
      ASSERT_TRUE(int8_decoder.has_int8_path());
      const auto expected = decoder->decode({map}, letterboxed(64, 64)).detections;
      const auto got = int8_decoder.decode_quantized(quantized, letterboxed(64, 64)).detections;
      if (*config == '\0') ASSERT_EQ(expected.size(), 3u);
      ASSERT_FALSE(expected.empty());
      ASSERT_EQ(got.size(), expected.size());
      for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(got[i].score, expected[i].score) << i;
        EXPECT_EQ(got[i].box.x0, expected[i].box.x0) << i;
        EXPECT_EQ(got[i].box.y0, expected[i].box.y0) << i;
        EXPECT_EQ(got[i].box.x1, expected[i].box.x1) << i;
        EXPECT_EQ(got[i].box.y1, expected[i].box.y1) << i;
        ASSERT_EQ(got[i].keypoints.size(), 4u);
        EXPECT_EQ(got[i].keypoints[2].x, expected[i].keypoints[2].x) << i;
      }
    }
}

namespace {

// A YOLOv8-shaped package's core outputs as axcompile splits yolov8n: per level S = 8, 4, 2 of a
// 64x64 input, the DFL bins (1,64,S,S) and the class logits (1,3,S,S) as separate NHWC device
// tensors (channels padded to 64 and 4), each its own quantisation; the postamble concatenates
// each pair after a Sigmoid on the classes: (1,67,S,S).
std::vector<dec::OutputSpec> split_head_specs() {
  std::vector<dec::OutputSpec> specs;
  int i = 0;
  for (int64_t size : {8, 4, 2})
    for (bool classes : {false, true}) {
      dec::OutputSpec spec;
      spec.name = (classes ? "cls" : "dfl") + std::to_string(size);
      spec.shape = {1, size, size, classes ? 4 : 64};
      spec.padding = {{0, 0}, {0, 0}, {0, 0}, {0, classes ? 1 : 0}};
      spec.scale = classes ? 0.06 + 0.01 * i : 0.11 + 0.01 * i;
      spec.zero_point = classes ? -10 + i : 3 - i;
      spec.original_shape = {1, classes ? 3 : 64, size, size};
      spec.nhwc_to_nchw = true;
      specs.push_back(spec);
      ++i;
    }
  return specs;
}

std::string write_concat_sigmoid_postamble() {
  onnx::ModelProto model = postamble_model("yolov8_split_heads");
  auto *graph = model.mutable_graph();
  for (int64_t size : {8, 4, 2}) {
    const std::string dfl = "dfl" + std::to_string(size), cls = "cls" + std::to_string(size);
    add_float_value(graph->add_input(), dfl, {1, 64, size, size});
    add_float_value(graph->add_input(), cls, {1, 3, size, size});
    add_node(graph, "Sigmoid", {cls}, cls + "_sigmoid");
    set_axis(add_node(graph, "Concat", {dfl, cls + "_sigmoid"}, "head" + std::to_string(size)), 1);
    add_float_value(graph->add_output(), "head" + std::to_string(size), {1, 67, size, size});
  }
  return save_model(model, "yolov8_split_heads.onnx");
}

}  // namespace

TEST(Int8FastPath, YoloV8HeadsConcatenatedFromDifferentQuantisationsDecodeAsTheirParts) {
  dec::OutputConverter converter(split_head_specs(), write_concat_sigmoid_postamble());
  ASSERT_TRUE(converter.quantized_outputs_available());
  EXPECT_TRUE(converter.splits_outputs());
  const std::vector<bool> before_sigmoid = converter.outputs_before_sigmoid();
  EXPECT_EQ(before_sigmoid, (std::vector<bool>{false, true, false, true, false, true}));
  const auto shapes = converter.quantized_output_shapes();
  ASSERT_EQ(shapes.size(), 6u);
  EXPECT_EQ(shapes[1].shape, (std::vector<int64_t>{1, 3, 8, 8}));
  std::mt19937 rng(24);
  size_t compared = 0;
  for (int frame = 0; frame < 3; ++frame) {
    const RandomDeviceOutputs device(converter.specs(), rng);
    const auto floats =
        converter.convert(device.pointers, device.sizes);  // Concat(DFL, Sigmoid(classes))
    const auto parts = converter.view_quantized(device.pointers, device.sizes);
    ASSERT_EQ(parts.size(), 6u);
    for (size_t p = 0; p < 6; ++p)
      EXPECT_EQ(parts[p].view, device.raw[p].data()) << "no copy of part " << p;
    for (float threshold : {0.3f, 0.6f}) {
      dec::DecoderOptions options = with_threshold(threshold);
      options.config["activations"] = "sigmoid";
      const auto [expected, got] = decode_both_ways("yolov8", options, floats, shapes,
                                                    before_sigmoid, parts, letterboxed(64, 64));
      const std::string what =
          "frame " + std::to_string(frame) + " threshold " + std::to_string(threshold);
      ASSERT_FALSE(expected.empty()) << what;
      ASSERT_EQ(got.size(), expected.size()) << what;
      expect_detections_near(got, expected, what);
      compared += got.size();
    }
  }
  EXPECT_GT(compared, 20u);
  // Without activations=sigmoid the decoder would apply the sigmoid twice: no int8 mode.
  EXPECT_FALSE(dec::make_decoder("yolov8", {})->for_logits(shapes, before_sigmoid));
}

namespace {

// An SSD-shaped package as axcompile splits ssd_mobilenet: per level (3x3 cells with 4 priors,
// 2x2 with 6, of a 90x90 input) a box head (1,4*priors,S,S) and a score head
// (1,5*priors,S,S), NHWC on the device with channels padded to a multiple of 8 and each its own
// quantisation; the postamble turns each head channels-last, reshapes it to rows and
// concatenates the levels: loc (1,60,4) and conf (1,60,5), `Sigmoid` of conf when given.
constexpr const char *kSsdPriors =
    "feature-maps=3,2; image-size=90; min-sizes=20,45; max-sizes=45,90; aspect-ratios=2|2,3";

std::vector<dec::OutputSpec> ssd_head_specs() {
  std::vector<dec::OutputSpec> specs;
  int i = 0;
  for (int width : {4, 5})
    for (auto [size, priors] : {std::pair<int64_t, int64_t>{3, 4}, {2, 6}}) {
      dec::OutputSpec spec;
      const int64_t channels = width * priors, padded = (channels + 7) / 8 * 8;
      spec.name = (width == 4 ? "loc" : "conf") + std::to_string(size);
      spec.shape = {1, size, size, padded};
      spec.padding = {{0, 0}, {0, 0}, {0, 0}, {0, padded - channels}};
      spec.scale = width == 4 ? 0.03 + 0.01 * i : 0.07 + 0.02 * i;
      spec.zero_point = width == 4 ? 2 - i : -9 + 5 * i;
      spec.original_shape = {1, channels, size, size};
      spec.nhwc_to_nchw = true;
      specs.push_back(spec);
      ++i;
    }
  return specs;
}

std::string write_ssd_concat_postamble(const std::string &score_op) {
  const std::string name = "ssd_concat" + score_op;
  onnx::ModelProto model = postamble_model(name);
  auto *graph = model.mutable_graph();
  for (int width : {4, 5}) {
    const std::string output = width == 4 ? "loc" : "conf";
    auto *shape = graph->add_initializer();
    shape->set_name(output + "_rows");
    shape->set_data_type(onnx::TensorProto::INT64);
    shape->add_dims(3);
    for (int64_t d : {1, -1, width}) shape->add_int64_data(d);
    std::vector<std::string> levels;
    for (auto [size, priors] : {std::pair<int64_t, int64_t>{3, 4}, {2, 6}}) {
      const std::string head = output + std::to_string(size);
      add_float_value(graph->add_input(), head, {1, width * priors, size, size});
      auto *perm = add_node(graph, "Transpose", {head}, head + "_t")->add_attribute();
      perm->set_name("perm");
      perm->set_type(onnx::AttributeProto::INTS);
      for (int64_t p : {0, 2, 3, 1}) perm->add_ints(p);
      add_node(graph, "Reshape", {head + "_t", output + "_rows"}, head + "_rows");
      levels.push_back(head + "_rows");
    }
    const bool sigmoid = width == 5 && !score_op.empty();
    set_axis(add_node(graph, "Concat", levels, sigmoid ? "conf_logits" : output), 1);
    if (sigmoid) add_node(graph, score_op, {"conf_logits"}, output);
    add_float_value(graph->add_output(), output, {1, 60, width});
  }
  return save_model(model, name + ".onnx");
}

}  // namespace

TEST(Int8FastPath, SsdHeadsConcatenatedFromDifferentQuantisationsDecodeAsTheirParts) {
  dec::OutputConverter converter(ssd_head_specs(), write_ssd_concat_postamble(""));
  ASSERT_TRUE(converter.quantized_outputs_available());
  EXPECT_TRUE(converter.splits_outputs());
  const auto shapes = converter.quantized_output_shapes();
  ASSERT_EQ(shapes.size(), 4u);
  EXPECT_EQ(shapes[1].shape, (std::vector<int64_t>{1, 24, 4}));
  EXPECT_EQ(shapes[2].shape, (std::vector<int64_t>{1, 36, 5}));
  std::mt19937 rng(26);
  size_t compared = 0;
  for (int frame = 0; frame < 3; ++frame) {
    const RandomDeviceOutputs device(converter.specs(), rng);
    const auto floats = converter.convert(device.pointers, device.sizes);  // loc, conf
    const auto parts = converter.view_quantized(device.pointers, device.sizes);
    ASSERT_EQ(parts.size(), 4u);
    for (size_t p = 0; p < 4; ++p)
      EXPECT_EQ(parts[p].view, device.raw[p].data()) << "no copy of part " << p;
    for (const char *scores : {"softmax", "sigmoid"})
      for (float threshold : {0.4f, 0.7f}) {
        dec::DecoderOptions options = with_threshold(threshold);
        options.config = dec::parse_decoder_config(kSsdPriors + std::string("; scores=") + scores);
        const std::string what = "frame " + std::to_string(frame) + " " + scores + " threshold " +
                                 std::to_string(threshold);
        // The same values, thresholds and arithmetic as the float path: identical, on the views
        // and on copies.
        for (const auto &tensors :
             {parts, converter.convert_quantized(device.pointers, device.sizes)}) {
          const auto [expected, got] =
              decode_both_ways("ssd", options, floats, shapes, converter.outputs_before_sigmoid(),
                               tensors, letterboxed(90, 90));
          ASSERT_FALSE(expected.empty()) << what << ": nothing decoded, the comparison is vacuous";
          expect_detections_equal(got, expected, what);
          compared += expected.size();
        }
      }
  }
  EXPECT_GT(compared, 20u);
  // Parts of other shapes than for_logits was given are refused by name.
  dec::DecoderOptions options;
  options.config = dec::parse_decoder_config(kSsdPriors);
  auto parts_decoder =
      dec::make_decoder("ssd", options)->for_logits(shapes, {false, false, false, false});
  ASSERT_TRUE(parts_decoder);
  std::vector<dec::QuantizedTensor> wrong = {random_tensor("loc", {1, 60, 4}, 0.1f, 0, 1),
                                             random_tensor("conf", {1, 60, 5}, 0.1f, 0, 2)};
  EXPECT_THROW(parts_decoder->decode_quantized(wrong, letterboxed(90, 90)),
               axstream::InvalidArgument);
}

TEST(Int8FastPath, SsdProbabilityPartsThatAreASigmoidDecodeTheLogitsLikeTheFloatPath) {
  dec::OutputConverter converter(ssd_head_specs(), write_ssd_concat_postamble("Sigmoid"));
  ASSERT_TRUE(converter.quantized_outputs_available());
  const std::vector<bool> before_sigmoid = converter.outputs_before_sigmoid();
  EXPECT_EQ(before_sigmoid, (std::vector<bool>{false, false, true, true}));
  const auto shapes = converter.quantized_output_shapes();
  std::mt19937 rng(27);
  const RandomDeviceOutputs device(converter.specs(), rng);
  const auto floats = converter.convert(device.pointers, device.sizes);  // conf: probabilities
  for (float threshold : {0.5f, 0.8f}) {
    dec::DecoderOptions options = with_threshold(threshold);
    options.config = dec::parse_decoder_config(kSsdPriors + std::string("; scores=none"));
    const auto [expected, got] = decode_both_ways(
        "ssd", options, floats, shapes, before_sigmoid,
        converter.view_quantized(device.pointers, device.sizes), letterboxed(90, 90));
    const std::string what = "threshold " + std::to_string(threshold);
    ASSERT_FALSE(expected.empty()) << what;
    ASSERT_EQ(got.size(), expected.size()) << what;
    expect_detections_near(got, expected, what);
  }
  // Softmax scores are not a sigmoid's: no logits mode for them.
  dec::DecoderOptions softmax;
  softmax.config = dec::parse_decoder_config(kSsdPriors);
  EXPECT_FALSE(dec::make_decoder("ssd", softmax)->for_logits(shapes, before_sigmoid));
}

TEST(Int8FastPath, TheSsdMobilenetBenchPackageDecodesItsPartsInInt8LikeTheFloatPath) {
  const CachedPackage ssd = load_cached_package(
      "ssd_mobilenet bench", bench_package_dir("ssd_mobilenet"), "scripts/bench.sh");
  if (!ssd.converter) GTEST_SKIP() << ssd.missing;
  const auto &converter = ssd.converter;
  ASSERT_TRUE(converter->quantized_outputs_available()) << "its postamble only moves data";
  ASSERT_TRUE(converter->splits_outputs()) << "loc and conf are Concats of 6 heads each";
  std::mt19937 rng(28);
  const RandomDeviceOutputs device(converter->specs(), rng);
  const auto floats = converter->convert(device.pointers, device.sizes);
  dec::DecoderOptions options = with_threshold(0.1f);  // random weights: few rows reach more
  options.config = dec::parse_decoder_config(
      "feature-maps=19,10,5,3,2,1; image-size=300; min-sizes=60,105,150,195,240,285; "
      "max-sizes=105,150,195,240,285,300; aspect-ratios=2|2,3|2,3|2,3|2|2; variances=0.1,0.2; "
      "clip=1");  // make_bench_models.py's SSD_MOBILENET_PRIORS
  const auto [expected, got] = decode_both_ways(
      "ssd", options, floats, converter->quantized_output_shapes(),
      converter->outputs_before_sigmoid(), converter->view_quantized(device.pointers, device.sizes),
      letterboxed(300, 300));
  EXPECT_GT(expected.size(), 10u) << "too few detections for a comparison";
  expect_detections_equal(got, expected, "ssd_mobilenet");
}
