// The decoders' int8 fast paths (decode_quantized: thresholds on raw int8, 256-entry tables,
// dequantising only candidates) against their float paths (decode of the same tensors
// dequantised): seeded random int8 outputs of every supported layout, several thresholds, and
// the results must be identical — same detections in the same order, bit-equal boxes, scores
// and keypoints, same classes.
#include <gtest/gtest.h>

#include <random>

#include "axstream/decoders/decoder.h"

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
  EXPECT_EQ(got.detections.size(), expected.detections.size()) << what;
  for (size_t i = 0; i < std::min(got.detections.size(), expected.detections.size()); ++i) {
    const dec::Detection &a = got.detections[i], &b = expected.detections[i];
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
  EXPECT_EQ(got.classes.size(), expected.classes.size()) << what;
  for (size_t i = 0; i < std::min(got.classes.size(), expected.classes.size()); ++i) {
    EXPECT_EQ(got.classes[i].class_id, expected.classes[i].class_id) << what << " rank " << i;
    EXPECT_EQ(got.classes[i].score, expected.classes[i].score) << what << " rank " << i;
  }
  return expected.detections.size() + expected.classes.size();
}

dec::DecoderOptions with_threshold(float threshold) {
  dec::DecoderOptions options;
  options.conf_threshold = threshold;
  options.max_detections = 0;
  return options;
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

TEST(Int8FastPath, DecodersWithoutOneDequantiseEverything) {
  // ctc has no int8 path: decode_quantized must still give decode()'s text.
  dec::QuantizedTensor t;
  t.name = "probs";
  t.shape = {1, 3, 3};
  t.scale = 1.0f / 127;
  t.data = {127, 0, 0, 0, 127, 0, 0, 0, 127};  // blank, 'a', 'b'
  dec::DecoderOptions options;
  options.labels = {"a", "b"};
  auto decoder = dec::make_decoder("ctc", options);
  EXPECT_FALSE(decoder->has_int8_path());
  const auto got = decoder->decode_quantized({t}, {});
  const auto expected = decoder->decode({t.dequantized()}, {});
  ASSERT_EQ(got.texts.size(), 1u);
  ASSERT_EQ(expected.texts.size(), 1u);
  EXPECT_EQ(got.texts[0].text, expected.texts[0].text);
  EXPECT_EQ(got.texts[0].text, "ab");
}
