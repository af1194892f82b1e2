// Raw-head decoders against hand-computed tensors: YOLOv8's DFL heads (softmax expectation of
// 16 bins per side, anchor points per stride) and SSD's prior-encoded boxes (priors from a
// feature-map config or a file, variances, softmax scores), plus their config errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>

#include "axstream/decoders/decoder.h"
#include "axstream/error.h"

namespace dec = axstream::decoders;

namespace {

dec::Geometry tensor_geometry(int width, int height) {
  dec::Geometry g;
  g.tensor_width = width;
  g.tensor_height = height;
  return g;
}

std::string error_of(const std::function<void()> &call) {
  try {
    call();
  } catch (const axstream::InvalidArgument &error) {
    return error.what();
  }
  return "(no InvalidArgument)";
}

// YOLOv8 heads of a 64x64 input, 1 class: (1, 65, s, s) for s = 8, 4, 2, class logits -10,
// every bin logit 0.
std::vector<dec::FloatTensor> empty_dfl_heads() {
  std::vector<dec::FloatTensor> heads;
  for (int size : {4, 8, 2}) {  // any order
    dec::FloatTensor t{"head" + std::to_string(size),
                       {1, 65, size, size},
                       std::vector<float>(65 * size * size, 0.0f)};
    for (int i = 64 * size * size; i < 65 * size * size; ++i) t.data[i] = -10.0f;
    heads.push_back(t);
  }
  return heads;
}

}  // namespace

TEST(YoloV8DflHeads, DecodeTheSoftmaxExpectedDistancesAroundTheAnchorPoint) {
  auto heads = empty_dfl_heads();
  dec::FloatTensor &stride8 = heads[1];    // 8x8
  const int plane = 64, cell = 2 * 8 + 3;  // x 3, y 2: anchor point (3.5, 2.5)
  auto bin = [&](int side, int i) -> float & {
    return stride8.data[(side * 16 + i) * plane + cell];
  };
  // left: bins 1 and 3 equal and dominant -> 2; top: all equal -> 7.5;
  // right: bin 4 dominant -> 4; bottom: bin 0 dominant -> 0.
  for (int i = 0; i < 16; ++i) {
    bin(0, i) = -30.0f;
    bin(2, i) = 0.0f;
    bin(3, i) = 0.0f;
  }
  bin(0, 1) = bin(0, 3) = 10.0f;
  bin(2, 4) = 30.0f;
  bin(3, 0) = 30.0f;
  stride8.data[64 * plane + cell] = 2.0f;  // class logit: score sigmoid(2)
  auto decoder = dec::make_decoder("yolov8", {});
  decoder->check_outputs(heads);
  const auto result = decoder->decode(heads, tensor_geometry(64, 64));
  ASSERT_EQ(result.detections.size(), 1u);
  const dec::Detection &d = result.detections[0];
  EXPECT_EQ(d.class_id, 0);
  EXPECT_NEAR(d.score, 1.0f / (1.0f + std::exp(-2.0f)), 1e-6);
  // ((3.5 - 2) * 8, (2.5 - 7.5) * 8, (3.5 + 4) * 8, (2.5 + 0) * 8)
  EXPECT_NEAR(d.box.x0, 12.0f, 1e-3);
  EXPECT_NEAR(d.box.y0, -40.0f, 1e-3);
  EXPECT_NEAR(d.box.x1, 60.0f, 1e-3);
  EXPECT_NEAR(d.box.y1, 20.0f, 1e-3);
}

TEST(YoloV8DflHeads, UseEachLevelsStride) {
  auto heads = empty_dfl_heads();
  dec::FloatTensor &stride32 = heads[2];  // 2x2
  const int plane = 4, cell = 1 * 2 + 0;  // x 0, y 1: anchor (0.5, 1.5)
  // Every side: bin 1 dominant -> distance 1 stride.
  for (int side = 0; side < 4; ++side) stride32.data[(side * 16 + 1) * plane + cell] = 40.0f;
  stride32.data[64 * plane + cell] = 5.0f;
  const auto result = dec::make_decoder("yolov8", {})->decode(heads, tensor_geometry(64, 64));
  ASSERT_EQ(result.detections.size(), 1u);
  const dec::Box &b = result.detections[0].box;
  EXPECT_NEAR(b.x0, -16.0f, 1e-3);  // (0.5 - 1) * 32
  EXPECT_NEAR(b.y0, 16.0f, 1e-3);   // (1.5 - 1) * 32
  EXPECT_NEAR(b.x1, 48.0f, 1e-3);
  EXPECT_NEAR(b.y1, 80.0f, 1e-3);
}

TEST(YoloV8DflHeads, RejectHeadsWhoseGridsDoNotHalve) {
  auto heads = empty_dfl_heads();
  heads[2] = {"odd", {1, 65, 3, 3}, std::vector<float>(65 * 9)};
  const std::string error =
      error_of([&] { dec::make_decoder("yolov8", {})->check_outputs(heads); });
  EXPECT_NE(error.find("raw DFL heads"), std::string::npos) << error;
  EXPECT_NE(error.find("odd (1,65,3,3)"), std::string::npos) << error;
}

namespace {

// 2x2 feature map of a 100x100 input; per cell: the min square (0.3), the sqrt(min*max) square
// (sqrt(0.3 * 0.6) = 0.42426), and aspect ratio 2: 0.42426 x 0.21213, 0.21213 x 0.42426.
const char *kPriorConfig =
    "feature-maps=2; image-size=100; min-sizes=30; max-sizes=60; aspect-ratios=2; "
    "variances=0.1,0.2";

std::vector<dec::FloatTensor> ssd_outputs(int priors) {
  std::vector<dec::FloatTensor> outputs = {
      {"loc", {1, priors, 4}, std::vector<float>(priors * 4, 0.0f)},
      {"conf", {1, priors, 3}, std::vector<float>(priors * 3, 0.0f)}};
  for (int r = 0; r < priors; ++r) outputs[1].data[r * 3] = 5.0f;  // background wins
  return outputs;
}

}  // namespace

TEST(SsdPriors, DeltasAreAppliedToTheirPriorWithTheVariances) {
  auto outputs = ssd_outputs(16);
  // Row 5: cell (row 0, column 1) -> centre (0.75, 0.25), its second prior (0.42426 square).
  float *loc = outputs[0].data.data() + 5 * 4;
  loc[0] = 1.0f;                   // cx += 1 * 0.1 * 0.42426
  loc[3] = std::log(2.0f) / 0.2f;  // h *= 2
  float *conf = outputs[1].data.data() + 5 * 3;
  conf[0] = 0.0f;
  conf[1] = 3.0f;
  conf[2] = 1.0f;
  dec::DecoderOptions options;
  options.config = dec::parse_decoder_config(kPriorConfig);
  options.labels = {"person", "car"};
  auto decoder = dec::make_decoder("ssd", options);
  decoder->check_outputs(outputs);
  const auto result = decoder->decode(outputs, tensor_geometry(100, 100));
  ASSERT_EQ(result.detections.size(), 1u);
  const dec::Detection &d = result.detections[0];
  EXPECT_EQ(d.class_id, 0);  // score column 1
  EXPECT_EQ(d.label, "person");
  const float e3 = std::exp(3.0f), e1 = std::exp(1.0f);
  EXPECT_NEAR(d.score, e3 / (1 + e3 + e1), 1e-6);  // 0.84379
  const float side = std::sqrt(0.3f * 0.6f), cx = 0.75f + 0.1f * side;
  EXPECT_NEAR(d.box.x0, (cx - side / 2) * 100, 1e-3);  // 58.029
  EXPECT_NEAR(d.box.x1, (cx + side / 2) * 100, 1e-3);  // 100.456
  EXPECT_NEAR(d.box.y0, (0.25f - side) * 100, 1e-3);   // -17.426
  EXPECT_NEAR(d.box.y1, (0.25f + side) * 100, 1e-3);   // 67.426
}

TEST(SsdPriors, AspectRatioPriorsAreWideThenTall) {
  auto outputs = ssd_outputs(16);
  // Rows 14 and 15: cell (1, 1) centre (0.75, 0.75), ratio-2 priors; zero deltas = the prior.
  for (int row : {14, 15}) {
    outputs[1].data[row * 3] = 0.0f;
    outputs[1].data[row * 3 + 2] = 4.0f;
  }
  dec::DecoderOptions options;
  options.config = dec::parse_decoder_config(kPriorConfig);
  options.nms_iou = 0.99f;  // keep both
  const auto result = dec::make_decoder("ssd", options)->decode(outputs, tensor_geometry(100, 100));
  ASSERT_EQ(result.detections.size(), 2u);
  const float wide = 0.3f * std::sqrt(2.0f), narrow = 0.3f / std::sqrt(2.0f);
  bool saw_wide = false, saw_tall = false;
  for (const auto &d : result.detections) {
    EXPECT_EQ(d.class_id, 1);
    EXPECT_NEAR((d.box.x0 + d.box.x1) / 2, 75.0f, 1e-3);
    EXPECT_NEAR((d.box.y0 + d.box.y1) / 2, 75.0f, 1e-3);
    if (std::abs(d.box.width() - wide * 100) < 1e-3 &&
        std::abs(d.box.height() - narrow * 100) < 1e-3)
      saw_wide = true;
    if (std::abs(d.box.width() - narrow * 100) < 1e-3 &&
        std::abs(d.box.height() - wide * 100) < 1e-3)
      saw_tall = true;
  }
  EXPECT_TRUE(saw_wide);
  EXPECT_TRUE(saw_tall);
}

TEST(SsdPriors, APriorsFileAndTensorFlowBoxOrderDecodeAlike) {
  const std::string path = ::testing::TempDir() + "/ssd_priors.txt";
  {
    std::ofstream file(path);
    file << "0.5 0.5 0.2 0.4\n\n0.25 0.75 0.5 0.5\n";
  }
  std::vector<dec::FloatTensor> outputs = {
      {"loc", {1, 2, 4}, {0, 0, 0, 0, /* row 1, yxhw: dy, dx, dh, dw */ 1, -1, 0, 0}},
      {"conf", {1, 2, 2}, {5, 0, 0, 5}}};
  dec::DecoderOptions options;
  options.config = dec::parse_decoder_config("priors-file=" + path + "; box-order=yxhw");
  const auto result = dec::make_decoder("ssd", options)->decode(outputs, tensor_geometry(200, 100));
  ASSERT_EQ(result.detections.size(), 1u);
  const dec::Box &b = result.detections[0].box;
  // centre (0.25 - 0.1 * 0.5, 0.75 + 0.1 * 0.5) = (0.2, 0.8), size 0.5 x 0.5; input 200x100.
  EXPECT_NEAR(b.x0, (0.2f - 0.25f) * 200, 1e-3);
  EXPECT_NEAR(b.x1, (0.2f + 0.25f) * 200, 1e-3);
  EXPECT_NEAR(b.y0, (0.8f - 0.25f) * 100, 1e-3);
  EXPECT_NEAR(b.y1, (0.8f + 0.25f) * 100, 1e-3);
  std::remove(path.c_str());
}

TEST(SsdPriors, ConfigErrorsNameTheKeyAndWhatWasExpected) {
  auto make = [](const std::string &config) {
    dec::DecoderOptions options;
    options.config = dec::parse_decoder_config(config);
    return dec::make_decoder("ssd", options);
  };
  EXPECT_NE(error_of([&] { make("feature-map=2"); }).find("unknown config key 'feature-map'"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              make("feature-maps=2,1; image-size=100; min-sizes=30");
            }).find("min-sizes has 1 values, expected 2"),
            std::string::npos);
  EXPECT_NE(error_of([&] { make("variances=0.1"); }).find("expected two positive numbers"),
            std::string::npos);
  EXPECT_NE(error_of([&] { make("feature-maps=2; image-size=1x"); }).find("'1x'"),
            std::string::npos);
  // Refused before gigabytes of priors are made.
  EXPECT_NE(error_of([&] {
              make("feature-maps=100000; image-size=300; min-sizes=30; aspect-ratios=2");
            }).find("make 30000000000 prior boxes, expected at most 10000000"),
            std::string::npos);
  EXPECT_NE(error_of([] { dec::parse_decoder_config("clip"); }).find("expected key=value"),
            std::string::npos);
  // 16 priors against 3 rows of boxes.
  auto decoder = make(kPriorConfig);
  const std::string mismatch = error_of([&] { decoder->check_outputs(ssd_outputs(3)); });
  EXPECT_NE(mismatch.find("gives 16 priors"), std::string::npos) << mismatch;
  // Decoders without config keys reject any; yolov5 lists its one.
  EXPECT_NE(error_of([] {
              dec::DecoderOptions yolo;
              yolo.config = {{"clip", "1"}};
              dec::make_decoder("yolov5", yolo);
            }).find("unknown config key 'clip', expected one of activations"),
            std::string::npos);
  dec::DecoderOptions options;
  options.config = {{"clip", "1"}};
  EXPECT_NE(
      error_of([&] { dec::make_decoder("classification", options); }).find("expected no config"),
      std::string::npos);
}
