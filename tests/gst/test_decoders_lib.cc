// libaxstream-decoders against hand-computed tensors: anchors, box decode, NMS, top-k, output
// conversion (depad, dequantise, layout, reshape).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>

#include "axstream/decoders/blazeface.h"
#include "axstream/decoders/decoder.h"
#include "axstream/decoders/nms.h"
#include "axstream/decoders/output_converter.h"
#include "axstream/error.h"
#include "axstream/runtime/model_package.h"

namespace dec = axstream::decoders;

namespace {

// BlazeFace front outputs (float model order), every anchor far below any threshold.
std::vector<dec::FloatTensor> empty_blazeface_outputs() {
  std::vector<dec::FloatTensor> outputs(4);
  outputs[0] = {"Identity:0", {1, 512, 1}, std::vector<float>(512, -20.0f)};
  outputs[1] = {"Identity_1:0", {1, 384, 1}, std::vector<float>(384, -20.0f)};
  outputs[2] = {"Identity_2:0", {1, 512, 16}, std::vector<float>(512 * 16, 0.0f)};
  outputs[3] = {"Identity_3:0", {1, 384, 16}, std::vector<float>(384 * 16, 0.0f)};
  return outputs;
}

void set_anchor(std::vector<dec::FloatTensor> &outputs, int anchor, float logit,
                std::vector<float> values) {
  const bool first = anchor < 512;
  const int row = first ? anchor : anchor - 512;
  outputs[first ? 0 : 1].data[row] = logit;
  values.resize(16, 0.0f);
  std::copy(values.begin(), values.end(), outputs[first ? 2 : 3].data.begin() + row * 16);
}

dec::Geometry identity_geometry(int size) {
  dec::Geometry g;
  g.crop_width = g.crop_height = size;
  g.tensor_width = g.tensor_height = size;
  return g;
}

float logit_of(float probability) { return std::log(probability / (1.0f - probability)); }

}  // namespace

TEST(BlazeFaceAnchors, Follow16x16x2Then8x8x6GridLayout) {
  const auto anchors = dec::blazeface_anchors();
  ASSERT_EQ(anchors.size(), 896u);
  EXPECT_FLOAT_EQ(anchors[0].x, 0.5f / 16);
  EXPECT_FLOAT_EQ(anchors[0].y, 0.5f / 16);
  EXPECT_FLOAT_EQ(anchors[1].x, 0.5f / 16);  // second anchor of the same cell
  EXPECT_FLOAT_EQ(anchors[2].x, 1.5f / 16);
  EXPECT_FLOAT_EQ(anchors[32].y, 1.5f / 16);  // row 1 starts after 16 cells x 2
  EXPECT_FLOAT_EQ(anchors[107].x, 5.5f / 16);
  EXPECT_FLOAT_EQ(anchors[107].y, 3.5f / 16);
  EXPECT_FLOAT_EQ(anchors[512].x, 0.5f / 8);
  EXPECT_FLOAT_EQ(anchors[517].x, 0.5f / 8);  // 6 anchors per 8x8 cell
  EXPECT_FLOAT_EQ(anchors[518].x, 1.5f / 8);
  EXPECT_FLOAT_EQ(anchors[895].x, 7.5f / 8);
  EXPECT_FLOAT_EQ(anchors[895].y, 7.5f / 8);
}

TEST(BlazeFaceDecoder, DecodesOneFaceIntoLetterboxedFramePixels) {
  auto outputs = empty_blazeface_outputs();
  // Anchor 107: cell (x 5, y 3) of the 16x16 grid, centre (44, 28) in a 128x128 input.
  set_anchor(outputs, 107, 2.0f, {2, 4, 20, 30, -6, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0});
  // A 640x480 frame letterboxed into 128x128: scale 0.2, 16 rows of border on top.
  dec::Geometry geometry;
  geometry.crop_width = 640;
  geometry.crop_height = 480;
  geometry.scale_x = geometry.scale_y = 0.2;
  geometry.offset_y = 16;
  geometry.tensor_width = geometry.tensor_height = 128;
  auto decoder = dec::make_decoder("blazeface", {});
  decoder->check_outputs(outputs);
  const dec::DecodeResult result = decoder->decode(outputs, geometry);
  ASSERT_EQ(result.detections.size(), 1u);
  const dec::Detection &face = result.detections[0];
  // Centre (46, 32), size 20x30 -> tensor box (36,17)-(56,47) -> frame (180,5)-(280,155).
  EXPECT_NEAR(face.box.x0, 180.0f, 1e-3);
  EXPECT_NEAR(face.box.y0, 5.0f, 1e-3);
  EXPECT_NEAR(face.box.x1, 280.0f, 1e-3);
  EXPECT_NEAR(face.box.y1, 155.0f, 1e-3);
  EXPECT_NEAR(face.score, 1.0f / (1.0f + std::exp(-2.0f)), 1e-6);
  EXPECT_EQ(face.class_id, 0);
  EXPECT_EQ(face.label, "face");
  ASSERT_EQ(face.keypoints.size(), 6u);
  // Keypoint 0 at anchor + (-6, 2) = (38, 30) -> frame (190, 70); keypoint 1 (45, 29) -> (225, 65).
  EXPECT_NEAR(face.keypoints[0].x, 190.0f, 1e-3);
  EXPECT_NEAR(face.keypoints[0].y, 70.0f, 1e-3);
  EXPECT_NEAR(face.keypoints[1].x, 225.0f, 1e-3);
  EXPECT_NEAR(face.keypoints[1].y, 65.0f, 1e-3);
}

TEST(BlazeFaceDecoder, UsesThe8x8GridForAnchorsAfter512) {
  auto outputs = empty_blazeface_outputs();
  // Anchor 512 + 6 * (8 * 2 + 3) = 626: cell (x 3, y 2), centre (56, 40).
  set_anchor(outputs, 626, 3.0f, {0, 0, 10, 10});
  const auto result = dec::make_decoder("blazeface", {})->decode(outputs, identity_geometry(128));
  ASSERT_EQ(result.detections.size(), 1u);
  EXPECT_NEAR(result.detections[0].box.x0, 51.0f, 1e-4);
  EXPECT_NEAR(result.detections[0].box.y0, 35.0f, 1e-4);
}

TEST(BlazeFaceDecoder, ScalesAnchorsByTheBackModelsInputSize) {
  auto outputs = empty_blazeface_outputs();
  set_anchor(outputs, 0, 3.0f, {0, 0, 16, 16});  // centre (8, 8) at 256x256
  const auto result = dec::make_decoder("blazeface", {})->decode(outputs, identity_geometry(256));
  ASSERT_EQ(result.detections.size(), 1u);
  EXPECT_NEAR(result.detections[0].box.x0, 0.0f, 1e-4);
  EXPECT_NEAR(result.detections[0].box.x1, 16.0f, 1e-4);
}

TEST(BlazeFaceDecoder, DropsScoresBelowTheThreshold) {
  auto outputs = empty_blazeface_outputs();
  set_anchor(outputs, 10, logit_of(0.7f), {0, 0, 10, 10});
  EXPECT_TRUE(dec::make_decoder("blazeface", {})
                  ->decode(outputs, identity_geometry(128))
                  .detections.empty())
      << "0.7 is below the default threshold 0.75";
  dec::DecoderOptions options;
  options.conf_threshold = 0.6f;
  EXPECT_EQ(dec::make_decoder("blazeface", options)
                ->decode(outputs, identity_geometry(128))
                .detections.size(),
            1u);
}

TEST(BlazeFaceDecoder, WeightedNmsMergesOverlappingAnchorsByScore) {
  auto outputs = empty_blazeface_outputs();
  // Two anchors of the same cell, centre (44, 28): boxes 34..54 and 36..56 (IoU 0.82).
  set_anchor(outputs, 106, logit_of(0.9f), {0, 0, 20, 20, 0, 0});
  set_anchor(outputs, 107, logit_of(0.8f), {2, 0, 20, 20, 2, 0});
  // A separate face far away stays on its own.
  set_anchor(outputs, 600, logit_of(0.85f), {0, 0, 10, 10});
  const auto result = dec::make_decoder("blazeface", {})->decode(outputs, identity_geometry(128));
  ASSERT_EQ(result.detections.size(), 2u);
  const dec::Detection &merged = result.detections[0];
  EXPECT_NEAR(merged.score, 0.9f, 1e-5);
  EXPECT_NEAR(merged.box.x0, (0.9 * 34 + 0.8 * 36) / 1.7, 1e-3);
  EXPECT_NEAR(merged.box.x1, (0.9 * 54 + 0.8 * 56) / 1.7, 1e-3);
  EXPECT_NEAR(merged.box.y0, 18.0f, 1e-3);
  EXPECT_NEAR(merged.keypoints[0].x, (0.9 * 44 + 0.8 * 46) / 1.7, 1e-3);
  EXPECT_NEAR(result.detections[1].score, 0.85f, 1e-5);
}

TEST(BlazeFaceDecoder, AcceptsConcatenated896AnchorOutputs) {
  std::vector<dec::FloatTensor> outputs(2);
  outputs[0] = {"scores", {1, 896, 1}, std::vector<float>(896, -20.0f)};
  outputs[1] = {"boxes", {1, 896, 16}, std::vector<float>(896 * 16, 0.0f)};
  outputs[0].data[895] = 4.0f;
  outputs[1].data[895 * 16 + 2] = outputs[1].data[895 * 16 + 3] = 8.0f;
  auto decoder = dec::make_decoder("blazeface", {});
  decoder->check_outputs(outputs);
  const auto result = decoder->decode(outputs, identity_geometry(128));
  ASSERT_EQ(result.detections.size(), 1u);
  EXPECT_NEAR(result.detections[0].box.x0, 120.0f - 4.0f, 1e-4);  // centre 7.5/8 * 128 = 120
}

TEST(BlazeFaceDecoder, RejectsOutputsNamingTheTensorsAndTheExpectedShape) {
  std::vector<dec::FloatTensor> outputs(1);
  outputs[0] = {"logits", {1, 1000}, std::vector<float>(1000, 0.0f)};
  auto decoder = dec::make_decoder("blazeface", {});
  try {
    decoder->check_outputs(outputs);
    FAIL() << "expected InvalidArgument";
  } catch (const axstream::InvalidArgument &error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("logits (1,1000)"), std::string::npos) << message;
    EXPECT_NE(message.find("(1,512,16)"), std::string::npos) << message;
  }
}

TEST(BlazeFaceDecoder, RejectsAGeometryWithoutTheInputSize) {
  auto outputs = empty_blazeface_outputs();
  EXPECT_THROW(dec::make_decoder("blazeface", {})->decode(outputs, dec::Geometry{}),
               axstream::InvalidArgument);
}

TEST(Nms, IouOfBoxesOverlappingByHalfIsOneThird) {
  EXPECT_NEAR(dec::iou({0, 0, 10, 10}, {5, 0, 15, 10}), 50.0 / 150.0, 1e-6);
  EXPECT_EQ(dec::iou({0, 0, 10, 10}, {20, 20, 30, 30}), 0.0f);
  EXPECT_EQ(dec::iou({0, 0, 0, 0}, {0, 0, 0, 0}), 0.0f);
}

TEST(Nms, KeepsTheBestBoxAndDropsOverlapsOfTheSameClass) {
  std::vector<dec::Detection> detections = {
      {{0, 0, 10, 10}, 0.6f, 0, "", {}},
      {{1, 0, 11, 10}, 0.9f, 0, "", {}},    // IoU 0.82 with the first
      {{1, 0, 11, 10}, 0.7f, 1, "", {}},    // same place, other class
      {{50, 50, 60, 60}, 0.5f, 0, "", {}},  // elsewhere
  };
  const auto kept = dec::nms(detections, 0.5f, 0);
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_FLOAT_EQ(kept[0].score, 0.9f);
  EXPECT_FLOAT_EQ(kept[1].score, 0.7f);
  EXPECT_FLOAT_EQ(kept[2].score, 0.5f);
  EXPECT_EQ(dec::nms(detections, 0.5f, 0, /*class_agnostic=*/true).size(), 2u);
  EXPECT_EQ(dec::nms(detections, 0.5f, 2).size(), 2u);
}

// nms() takes candidates best first from a heap; what it keeps must be what greedy NMS over a
// stable sort by score keeps, ties (equal scores) included, with and without the cap.
TEST(Nms, ManyTiedCandidatesKeepWhatAStableSortByScoreKeeps) {
  std::mt19937 random(7);
  std::uniform_real_distribution<float> position(0, 600), size(5, 80);
  std::vector<dec::Detection> detections;
  for (int i = 0; i < 3000; ++i) {
    const float x = position(random), y = position(random);
    // Scores from 20 levels: most candidates tie with others.
    const float score = 0.25f + 0.03f * static_cast<float>(random() % 20);
    detections.push_back({{x, y, x + size(random), y + size(random)},
                          score,
                          static_cast<int>(random() % 3),
                          "",
                          {}});
  }
  auto reference = [&](int max_detections) {
    std::vector<dec::Detection> sorted = detections;
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto &a, const auto &b) { return a.score > b.score; });
    std::vector<dec::Detection> kept;
    for (const auto &candidate : sorted) {
      if (max_detections > 0 && static_cast<int>(kept.size()) >= max_detections) break;
      if (std::none_of(kept.begin(), kept.end(), [&](const auto &k) {
            return k.class_id == candidate.class_id && dec::iou(k.box, candidate.box) > 0.45f;
          }))
        kept.push_back(candidate);
    }
    return kept;
  };
  for (int max_detections : {0, 1, 100, 1000}) {
    const auto expected = reference(max_detections);
    const auto kept = dec::nms(detections, 0.45f, max_detections);
    ASSERT_EQ(kept.size(), expected.size()) << "max_detections " << max_detections;
    for (size_t i = 0; i < kept.size(); ++i) {
      EXPECT_EQ(kept[i].score, expected[i].score) << i;
      EXPECT_EQ(kept[i].class_id, expected[i].class_id) << i;
      EXPECT_EQ(kept[i].box.x0, expected[i].box.x0) << i;
      EXPECT_EQ(kept[i].box.y1, expected[i].box.y1) << i;
    }
  }
}

TEST(ClassificationDecoder, ReportsTopKBestFirstWithLabels) {
  dec::DecoderOptions options;
  options.top_k = 3;
  options.labels = {"cat", "dog", "fox", "owl"};
  std::vector<dec::FloatTensor> outputs = {{"prob", {1, 5, 1, 1}, {0.1f, 0.5f, 0.2f, 0.9f, 0.3f}}};
  auto decoder = dec::make_decoder("classification", options);
  decoder->check_outputs(outputs);
  const auto result = decoder->decode(outputs, {});
  ASSERT_EQ(result.classes.size(), 3u);
  EXPECT_EQ(result.classes[0].class_id, 3);
  EXPECT_EQ(result.classes[0].label, "owl");
  EXPECT_FLOAT_EQ(result.classes[0].score, 0.9f);
  EXPECT_EQ(result.classes[1].class_id, 1);
  EXPECT_EQ(result.classes[1].label, "dog");
  EXPECT_EQ(result.classes[2].class_id, 4);
  EXPECT_EQ(result.classes[2].label, "class 4");  // beyond the labels file
  EXPECT_TRUE(result.detections.empty());
}

TEST(ClassificationDecoder, SoftmaxTurnsLogitsIntoProbabilities) {
  dec::DecoderOptions options;
  options.top_k = 2;
  options.softmax = true;
  std::vector<dec::FloatTensor> outputs = {{"logits", {1, 3}, {1.0f, 3.0f, 2.0f}}};
  const auto result = dec::make_decoder("classification", options)->decode(outputs, {});
  const double sum = std::exp(1.0) + std::exp(3.0) + std::exp(2.0);
  ASSERT_EQ(result.classes.size(), 2u);
  EXPECT_EQ(result.classes[0].class_id, 1);
  EXPECT_NEAR(result.classes[0].score, std::exp(3.0) / sum, 1e-6);
  EXPECT_NEAR(result.classes[1].score, std::exp(2.0) / sum, 1e-6);
}

TEST(ClassificationDecoder, ThresholdCutsTheRanking) {
  dec::DecoderOptions options;
  options.conf_threshold = 0.4f;
  std::vector<dec::FloatTensor> outputs = {{"prob", {1, 4}, {0.1f, 0.5f, 0.45f, 0.3f}}};
  const auto result = dec::make_decoder("classification", options)->decode(outputs, {});
  ASSERT_EQ(result.classes.size(), 2u);
  EXPECT_EQ(result.classes[1].class_id, 2);
}

TEST(ClassificationDecoder, RejectsABatchOfTwo) {
  std::vector<dec::FloatTensor> outputs = {{"prob", {2, 3}, std::vector<float>(6, 0.0f)}};
  try {
    dec::make_decoder("classification", {})->check_outputs(outputs);
    FAIL() << "expected InvalidArgument";
  } catch (const axstream::InvalidArgument &error) {
    EXPECT_NE(std::string(error.what()).find("'prob' has shape (2,3), expected (1,classes)"),
              std::string::npos)
        << error.what();
  }
}

TEST(DecoderRegistry, UnknownNameListsTheValidDecoders) {
  try {
    dec::make_decoder("yolov99", {});
    FAIL() << "expected InvalidArgument";
  } catch (const axstream::InvalidArgument &error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("'yolov99'"), std::string::npos) << message;
    EXPECT_NE(message.find("blazeface"), std::string::npos) << message;
    EXPECT_NE(message.find("classification"), std::string::npos) << message;
  }
  EXPECT_NE(dec::decoder_names().find("blazeface"), std::string::npos);
}

// axdecode's conf-threshold and nms-iou blurbs are built from these, so they name every decoder's
// default (dbnet's 0.6 was missing from the hand-written text).
TEST(DecoderRegistry, DefaultsTextNamesEachDecoderWithItsDefault) {
  EXPECT_EQ(
      dec::decoder_defaults(&dec::DecoderEntry::default_conf_threshold),
      "blazeface 0.75, classification 0, ctc 0, dbnet 0.6, ssd 0.5, yolov5 0.25, yolov8 0.25");
  EXPECT_EQ(dec::decoder_defaults(&dec::DecoderEntry::default_nms_iou),
            "blazeface 0.3, ssd 0.45, yolov5 0.45, yolov8 0.45");
}

TEST(Labels, ReadOneLabelPerLineKeepingIdsAligned) {
  const std::string path = ::testing::TempDir() + "/axstream_labels.txt";
  {
    std::ofstream file(path);
    file << "person\r\nbicycle \n\ncar\n";
  }
  const auto labels = dec::read_labels(path);
  ASSERT_EQ(labels.size(), 4u);
  EXPECT_EQ(labels[0], "person");
  EXPECT_EQ(labels[1], "bicycle");
  EXPECT_EQ(labels[2], "");
  EXPECT_EQ(labels[3], "car");
  std::remove(path.c_str());
  EXPECT_THROW(dec::read_labels(path), axstream::InvalidArgument);
}

// A UTF-8 file saved by a Windows editor starts with a byte order mark, which was part of label
// 0; a Latin-1 file's labels went into the JSON Lines as invalid UTF-8.
TEST(Labels, ByteOrderMarkIsDroppedAndANonUtf8LineIsRefusedNamingIt) {
  const std::string path = ::testing::TempDir() + "/axstream_labels_utf8.txt";
  {
    std::ofstream file(path, std::ios::binary);
    file << "\xef\xbb\xbfperson\r\ncaf\xc3\xa9\n";
  }
  const auto labels = dec::read_labels(path);
  ASSERT_EQ(labels.size(), 2u);
  EXPECT_EQ(labels[0], "person");
  EXPECT_EQ(labels[1], "caf\xc3\xa9");
  {
    std::ofstream file(path, std::ios::binary);
    file << "person\ncaf\xc3\xa9\nna\xefve\n";
  }
  try {
    dec::read_labels(path);
    ADD_FAILURE() << "a Latin-1 line was accepted";
  } catch (const axstream::InvalidArgument &e) {
    EXPECT_NE(std::string(e.what()).find("labels file '" + path + "' line 3 is not UTF-8"),
              std::string::npos)
        << e.what();
  }
  std::remove(path.c_str());
}

namespace {
// Padded (1,2,3,4) int8 holding 0..23; unpadded (1,1,2,2) sits at h 0, w 1..2, c 0..1.
dec::OutputSpec padded_spec() {
  dec::OutputSpec spec;
  spec.name = "out";
  spec.shape = {1, 2, 3, 4};
  spec.padding = {{0, 0}, {0, 1}, {1, 0}, {0, 2}};
  spec.scale = 0.5;
  spec.zero_point = 3;
  return spec;
}
std::vector<int8_t> counting_bytes(size_t n) {
  std::vector<int8_t> bytes(n);
  for (size_t i = 0; i < n; ++i) bytes[i] = static_cast<int8_t>(i);
  return bytes;
}
}  // namespace

TEST(OutputConversion, DepadsAndDequantises) {
  const auto raw = counting_bytes(24);
  const dec::FloatTensor tensor = dec::convert_output(padded_spec(), raw.data(), raw.size());
  EXPECT_EQ(tensor.shape, (std::vector<int64_t>{1, 1, 2, 2}));
  // Padded offsets h*12 + (w+1)*4 + c: 4, 5, 8, 9 -> (v - 3) * 0.5
  EXPECT_EQ(tensor.data, (std::vector<float>{0.5f, 1.0f, 2.5f, 3.0f}));
}

TEST(OutputConversion, TransposesNhwcBackToNchwAndReshapesToTheOriginalShape) {
  auto spec = padded_spec();
  spec.nhwc_to_nchw = true;
  const auto raw = counting_bytes(24);
  dec::FloatTensor tensor = dec::convert_output(spec, raw.data(), raw.size());
  EXPECT_EQ(tensor.shape, (std::vector<int64_t>{1, 2, 1, 2}));
  EXPECT_EQ(tensor.data, (std::vector<float>{0.5f, 2.5f, 1.0f, 3.0f}));
  spec.original_shape = {1, 4};
  tensor = dec::convert_output(spec, raw.data(), raw.size());
  EXPECT_EQ(tensor.shape, (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(tensor.data, (std::vector<float>{0.5f, 2.5f, 1.0f, 3.0f}));
}

TEST(OutputConversion, PicksTheRequestedBatchItem) {
  dec::OutputSpec spec;
  spec.name = "batched";
  spec.shape = {2, 3};
  spec.padding = {{0, 0}, {0, 1}};
  const std::vector<int8_t> raw = {1, 2, 0, 4, 5, 0};
  EXPECT_EQ(dec::convert_output(spec, raw.data(), raw.size(), 1).data,
            (std::vector<float>{4.0f, 5.0f}));
  EXPECT_THROW(dec::convert_output(spec, raw.data(), raw.size(), 2), axstream::InvalidArgument);
}

TEST(OutputConversion, RejectsAWrongByteCountNamingTheTensor) {
  const auto raw = counting_bytes(20);
  try {
    dec::convert_output(padded_spec(), raw.data(), raw.size());
    FAIL() << "expected InvalidArgument";
  } catch (const axstream::InvalidArgument &error) {
    EXPECT_NE(
        std::string(error.what()).find("output 'out': expected 24 bytes of int8 (1,2,3,4), got 20"),
        std::string::npos)
        << error.what();
  }
}

TEST(OutputConversion, RejectsAnOriginalShapeOfTheWrongSize) {
  auto spec = padded_spec();
  spec.original_shape = {1, 5};
  const auto raw = counting_bytes(24);
  EXPECT_THROW(dec::convert_output(spec, raw.data(), raw.size()), axstream::InvalidArgument);
}

TEST(OutputConverter, ConvertsEveryOutputWithoutAPostamble) {
  dec::OutputConverter converter({padded_spec(), padded_spec()});
  EXPECT_FALSE(converter.has_postamble());
  const auto raw = counting_bytes(24);
  const auto outputs = converter.convert({raw.data(), raw.data()}, {24, 24});
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_EQ(outputs[1].data, (std::vector<float>{0.5f, 1.0f, 2.5f, 3.0f}));
  EXPECT_THROW(converter.convert({raw.data()}, {24}), axstream::InvalidArgument);
}

namespace {
dec::Geometry tensor_geometry(int width, int height, double scale = 1.0) {
  dec::Geometry g;
  g.scale_x = g.scale_y = scale;
  g.tensor_width = width;
  g.tensor_height = height;
  return g;
}
}  // namespace

TEST(YoloV5Decoder, DecodedOutputScoresObjectnessTimesClassAndSuppressesOverlaps) {
  // (1, 8, 5 + 2 classes): cx, cy, w, h, objectness, class 0, class 1; rows 3.. all zero.
  std::vector<float> rows = {50, 40, 20, 10, 0.9f, 0.2f, 0.8f,   //
                             51, 40, 20, 10, 0.6f, 0.1f, 0.9f,   // overlaps row 0
                             10, 10, 5,  5,  0.1f, 0.0f, 1.0f};  // low objectness
  rows.resize(8 * 7, 0.0f);
  std::vector<dec::FloatTensor> outputs = {{"output0", {1, 8, 7}, rows}};
  dec::DecoderOptions options;
  options.labels = {"cat", "dog"};
  auto decoder = dec::make_decoder("yolov5", options);
  decoder->check_outputs(outputs);
  const auto result = decoder->decode(outputs, tensor_geometry(64, 64, 0.5));
  ASSERT_EQ(result.detections.size(), 1u);
  const dec::Detection &d = result.detections[0];
  EXPECT_EQ(d.class_id, 1);
  EXPECT_EQ(d.label, "dog");
  EXPECT_NEAR(d.score, 0.72f, 1e-6);
  // Tensor box (40,35)-(60,45), scale 0.5 -> frame (80,70)-(120,90).
  EXPECT_NEAR(d.box.x0, 80.0f, 1e-4);
  EXPECT_NEAR(d.box.y0, 70.0f, 1e-4);
  EXPECT_NEAR(d.box.x1, 120.0f, 1e-4);
  EXPECT_NEAR(d.box.y1, 90.0f, 1e-4);
}

TEST(YoloV5Decoder, RawHeadsUseGridAndAnchors) {
  // 64x64 input, 1 class: heads (1, 3 * 6, H, W) for strides 8, 16, 32, all logits -10.
  std::vector<dec::FloatTensor> outputs;
  for (int size : {2, 8, 4})  // any order
    outputs.push_back({"head" + std::to_string(size),
                       {1, 18, size, size},
                       std::vector<float>(18 * size * size, -10.0f)});
  dec::FloatTensor &stride8 = outputs[1];
  // Anchor 1 (16x30) of the stride-8 head, cell x 3 y 2: tx = ty = tw = th = 0, obj = cls = 3.
  const int plane = 64, cell = 2 * 8 + 3, anchor_base = 1 * 6 * plane;
  for (int k = 0; k < 4; ++k) stride8.data[anchor_base + k * plane + cell] = 0.0f;
  stride8.data[anchor_base + 4 * plane + cell] = 3.0f;
  stride8.data[anchor_base + 5 * plane + cell] = 3.0f;
  auto decoder = dec::make_decoder("yolov5", {});
  decoder->check_outputs(outputs);
  const auto result = decoder->decode(outputs, tensor_geometry(64, 64));
  ASSERT_EQ(result.detections.size(), 1u);
  const dec::Detection &d = result.detections[0];
  const float s3 = 1.0f / (1.0f + std::exp(-3.0f));
  EXPECT_NEAR(d.score, s3 * s3, 1e-5);
  // Centre ((2*0.5 - 0.5 + 3) * 8, (2*0.5 - 0.5 + 2) * 8) = (28, 20); size (2*0.5)^2 * (16, 30).
  EXPECT_NEAR(d.box.x0, 20.0f, 1e-4);
  EXPECT_NEAR(d.box.y0, 5.0f, 1e-4);
  EXPECT_NEAR(d.box.x1, 36.0f, 1e-4);
  EXPECT_NEAR(d.box.y1, 35.0f, 1e-4);
}

TEST(YoloV5Decoder, RejectsOtherOutputsNamingThem) {
  std::vector<dec::FloatTensor> outputs = {{"logits", {1, 1000}, std::vector<float>(1000)}};
  try {
    dec::make_decoder("yolov5", {})->check_outputs(outputs);
    FAIL() << "expected InvalidArgument";
  } catch (const axstream::InvalidArgument &error) {
    EXPECT_NE(std::string(error.what()).find("logits (1,1000)"), std::string::npos) << error.what();
  }
}

TEST(YoloV8Decoder, DecodesChannelsFirstAndTransposedOutputsAlike) {
  // 10 candidates, 4 + 2 values; candidate 2: box centre (30, 30) size 10x20, class 1 at 0.7.
  const int rows = 10, values = 6;
  std::vector<float> channels_first(values * rows, 0.0f), rows_first(rows * values, 0.0f);
  const float candidate[values] = {30, 30, 10, 20, 0.1f, 0.7f};
  for (int v = 0; v < values; ++v) {
    channels_first[v * rows + 2] = candidate[v];
    rows_first[2 * values + v] = candidate[v];
  }
  for (const auto &outputs :
       {std::vector<dec::FloatTensor>{{"output0", {1, values, rows}, channels_first}},
        std::vector<dec::FloatTensor>{{"output0", {1, rows, values}, rows_first}}}) {
    auto decoder = dec::make_decoder("yolov8", {});
    decoder->check_outputs(outputs);
    const auto result = decoder->decode(outputs, tensor_geometry(64, 64));
    ASSERT_EQ(result.detections.size(), 1u) << outputs[0].shape_string();
    EXPECT_EQ(result.detections[0].class_id, 1);
    EXPECT_NEAR(result.detections[0].score, 0.7f, 1e-6);
    EXPECT_NEAR(result.detections[0].box.x0, 25.0f, 1e-4);
    EXPECT_NEAR(result.detections[0].box.y1, 40.0f, 1e-4);
  }
}

TEST(SsdDecoder, SkipsTheBackgroundAndScalesNormalisedBoxes) {
  std::vector<dec::FloatTensor> outputs = {
      {"boxes", {1, 3, 4}, {0, 0, 1, 1, 0.25f, 0.5f, 0.5f, 0.75f, 0.1f, 0.1f, 0.2f, 0.2f}},
      {"scores", {1, 3, 3}, {0.9f, 0.05f, 0.05f, 0.1f, 0.2f, 0.7f, 0.6f, 0.3f, 0.1f}}};
  dec::DecoderOptions options;
  options.labels = {"person", "bicycle"};
  auto decoder = dec::make_decoder("ssd", options);
  decoder->check_outputs(outputs);
  const auto result = decoder->decode(outputs, tensor_geometry(100, 100));
  ASSERT_EQ(result.detections.size(), 1u);
  EXPECT_EQ(result.detections[0].class_id, 1);  // score column 2
  EXPECT_EQ(result.detections[0].label, "bicycle");
  EXPECT_NEAR(result.detections[0].box.x0, 25.0f, 1e-4);
  EXPECT_NEAR(result.detections[0].box.y0, 50.0f, 1e-4);
  EXPECT_NEAR(result.detections[0].box.x1, 50.0f, 1e-4);
  EXPECT_NEAR(result.detections[0].box.y1, 75.0f, 1e-4);
}

TEST(SsdDecoder, RejectsOutputsWithoutBoxesAndScores) {
  std::vector<dec::FloatTensor> outputs = {{"boxes", {1, 3, 4}, std::vector<float>(12)}};
  EXPECT_THROW(dec::make_decoder("ssd", {})->check_outputs(outputs), axstream::InvalidArgument);
}

// The converter on a generated package whose first output the core transposed to NHWC and
// padded (6 -> 8 channels): its reference device output must come back as the float model's
// (1,6,16,16) NCHW tensor, element (c, y, x) = (raw[y][x][c] - zero_point) * scale.
TEST(OutputConverter, RestoresTheFloatModelsLayoutOfAGeneratedPackage) {
  const char *models = std::getenv("AXSTREAM_TEST_MODELS");
  const std::string dir = models ? std::string(models) + "/two_outputs" : "";
  std::ifstream raw_file(dir + "/reference/output_0.bin", std::ios::binary);
  std::ifstream scores_file(dir + "/reference/output_1.bin", std::ios::binary);
  if (dir.empty() || !raw_file || !scores_file)
    GTEST_SKIP() << "two_outputs test package not found (AXSTREAM_TEST_MODELS)";
  const std::vector<int8_t> raw((std::istreambuf_iterator<char>(raw_file)), {});
  const std::vector<int8_t> scores((std::istreambuf_iterator<char>(scores_file)), {});
  const auto package = axstream::runtime::load_model_package(dir);
  auto converter = dec::OutputConverter::from_package(*package);
  ASSERT_FALSE(converter->has_postamble());
  const auto outputs = converter->convert({raw.data(), scores.data()}, {raw.size(), scores.size()});
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_EQ(outputs[0].shape, (std::vector<int64_t>{1, 6, 16, 16}));
  EXPECT_EQ(outputs[1].shape, (std::vector<int64_t>{1, 10}));
  const auto &info = package->outputs[0];
  for (int c = 0; c < 6; ++c)
    for (int y = 0; y < 16; ++y)
      for (int x = 0; x < 16; ++x) {
        const float expected = (raw[(y * 16 + x) * 8 + c] - info.zero_point) * info.scale;
        ASSERT_FLOAT_EQ(outputs[0].data[(c * 16 + y) * 16 + x], expected)
            << "c " << c << " y " << y << " x " << x;
      }
  const auto &score_info = package->outputs[1];
  EXPECT_FLOAT_EQ(outputs[1].data[9], (scores[9] - score_info.zero_point) * score_info.scale);
}

namespace {
// (1, steps, classes) probabilities with `best[s]` at 0.9 in step s, the rest sharing 0.1.
dec::FloatTensor ctc_steps(const std::vector<int> &best, int classes) {
  dec::FloatTensor t{"softmax", {1, static_cast<int64_t>(best.size()), classes}, {}};
  for (int b : best)
    for (int c = 0; c < classes; ++c) t.data.push_back(c == b ? 0.9f : 0.1f / (classes - 1));
  return t;
}
}  // namespace

TEST(CtcDecoder, MergesRepeatsDropsBlanksAndMapsTheDictionary) {
  dec::DecoderOptions options;
  options.labels = {"a", "b", "c"};  // classes: 0 blank, 1 a, 2 b, 3 c, 4 space
  auto decoder = dec::make_decoder("ctc", options);
  // a a _ a b b _ space c -> "aab c"
  std::vector<dec::FloatTensor> outputs = {ctc_steps({1, 1, 0, 1, 2, 2, 0, 4, 3}, 5)};
  decoder->check_outputs(outputs);
  const auto result = decoder->decode(outputs, {});
  ASSERT_EQ(result.texts.size(), 1u);
  EXPECT_EQ(result.texts[0].text, "aab c");
  EXPECT_NEAR(result.texts[0].confidence, 0.9f, 1e-6);
}

TEST(CtcDecoder, AllBlankGivesNoText) {
  dec::DecoderOptions options;
  options.labels = {"a"};
  const auto result =
      dec::make_decoder("ctc", options)->decode({ctc_steps({0, 0, 0}, 2)}, dec::Geometry{});
  EXPECT_TRUE(result.texts.empty());
}

TEST(CtcDecoder, RejectsADictionaryOfTheWrongSize) {
  dec::DecoderOptions options;
  options.labels = {"a", "b", "c"};
  try {
    dec::make_decoder("ctc", options)->check_outputs({ctc_steps({1}, 9)});
    FAIL() << "expected InvalidArgument";
  } catch (const axstream::InvalidArgument &error) {
    EXPECT_NE(std::string(error.what()).find("has 9 classes, expected"), std::string::npos)
        << error.what();
  }
}

TEST(DbNetDecoder, TurnsAProbabilityBlockIntoAnUnclippedTextBox) {
  // 32x64 map, a 10x30 block of 0.9 at rows 10..19, columns 20..49, plus a faint 0.5 block
  // (above the 0.3 binarisation, below the 0.6 box score) at rows 25..29.
  dec::FloatTensor map{"sigmoid_0.tmp_0", {1, 1, 32, 64}, std::vector<float>(32 * 64, 0.0f)};
  for (int y = 10; y < 20; ++y)
    for (int x = 20; x < 50; ++x) map.data[y * 64 + x] = 0.9f;
  for (int y = 25; y < 30; ++y)
    for (int x = 5; x < 20; ++x) map.data[y * 64 + x] = 0.5f;
  auto decoder = dec::make_decoder("dbnet", {});
  decoder->check_outputs({map});
  dec::Geometry geometry = tensor_geometry(64, 32, 0.5);  // frame twice the tensor size
  const auto result = decoder->decode({map}, geometry);
  ASSERT_EQ(result.detections.size(), 1u);
  const dec::Detection &text = result.detections[0];
  EXPECT_EQ(text.label, "text");
  EXPECT_NEAR(text.score, 0.9f, 1e-5);
  // Contour rectangle: centre (34.5, 14.5), 29 x 9; unclip distance 261 * 1.5 / 76 = 5.151
  // -> 39.30 x 19.30 -> tensor (14.85, 4.85)-(54.15, 24.15) -> frame x 2.
  const double d = 29.0 * 9.0 * 1.5 / (2 * (29.0 + 9.0));
  EXPECT_NEAR(text.box.x0, 2 * (34.5 - 14.5 - d), 0.2);
  EXPECT_NEAR(text.box.x1, 2 * (34.5 + 14.5 + d), 0.2);
  EXPECT_NEAR(text.box.y0, 2 * (14.5 - 4.5 - d), 0.2);
  EXPECT_NEAR(text.box.y1, 2 * (14.5 + 4.5 + d), 0.2);
  ASSERT_EQ(text.keypoints.size(), 4u);  // the rotated rectangle's corners
}

// design.md gives DBNet three thresholds (binarisation ~0.3, box ~0.6, unclip ~1.5); the first
// and the last are decoder-config keys, as conf-threshold is the box score.
TEST(DbNetDecoder, BinaryThresholdAndUnclipRatioComeFromTheConfig) {
  // A 0.5 block at rows 10..19, columns 20..49: a region at the default 0.3 binarisation.
  dec::FloatTensor map{"sigmoid_0.tmp_0", {1, 1, 32, 64}, std::vector<float>(32 * 64, 0.0f)};
  for (int y = 10; y < 20; ++y)
    for (int x = 20; x < 50; ++x) map.data[y * 64 + x] = 0.5f;
  const dec::Geometry geometry = tensor_geometry(64, 32);
  dec::DecoderOptions options;
  options.conf_threshold = 0.4f;
  const auto by_default = dec::make_decoder("dbnet", options)->decode({map}, geometry);
  ASSERT_EQ(by_default.detections.size(), 1u);
  const double d = 29.0 * 9.0 * 1.5 / (2 * (29.0 + 9.0));
  EXPECT_NEAR(by_default.detections[0].box.x0, 34.5 - 14.5 - d, 0.2);

  options.config = dec::parse_decoder_config("binary-threshold=0.55");
  EXPECT_TRUE(dec::make_decoder("dbnet", options)->decode({map}, geometry).detections.empty());

  options.config = dec::parse_decoder_config("unclip-ratio=0");
  const auto unclipped = dec::make_decoder("dbnet", options)->decode({map}, geometry);
  ASSERT_EQ(unclipped.detections.size(), 1u);
  EXPECT_NEAR(unclipped.detections[0].box.x0, 34.5 - 14.5, 0.2);
  EXPECT_NEAR(unclipped.detections[0].box.y1, 14.5 + 4.5, 0.2);

  for (const char *bad : {"binary-threshold=1", "binary-threshold=-0.1", "binary-threshold=0.2,0.3",
                          "unclip-ratio=-1", "unclip-ratio=abc"}) {
    options.config = dec::parse_decoder_config(bad);
    try {
      dec::make_decoder("dbnet", options);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const axstream::InvalidArgument &error) {
      const std::string key = std::string(bad).substr(0, std::string(bad).find('='));
      EXPECT_NE(std::string(error.what()).find(key), std::string::npos) << error.what();
    }
  }
}

TEST(DbNetDecoder, RejectsAnythingButAProbabilityMap) {
  std::vector<dec::FloatTensor> outputs = {{"logits", {1, 1000}, std::vector<float>(1000)}};
  EXPECT_THROW(dec::make_decoder("dbnet", {})->check_outputs(outputs), axstream::InvalidArgument);
}

TEST(DecoderConfig, EntriesAndNumbersAreTrimmedAndEmptyEntriesSkipped) {
  const auto config = dec::parse_decoder_config(" min-sizes = 20, 45 ,90 ;; clip=1; ");
  ASSERT_EQ(config.size(), 2u);
  EXPECT_EQ(config.at("min-sizes"), "20, 45 ,90");
  EXPECT_EQ(config.at("clip"), "1");
  EXPECT_EQ(dec::config_numbers(config, "min-sizes"), (std::vector<double>{20, 45, 90}));
  EXPECT_TRUE(dec::config_numbers(config, "max-sizes").empty());
  EXPECT_THROW(dec::parse_decoder_config("clip=1; clip=0"), axstream::InvalidArgument);
  // An empty number between commas is an error naming the key, not a zero.
  try {
    dec::config_numbers({{"steps", "8,,32"}}, "steps");
    ADD_FAILURE() << "steps=8,,32 was accepted";
  } catch (const axstream::InvalidArgument &error) {
    EXPECT_NE(std::string(error.what()).find("steps=8,,32"), std::string::npos) << error.what();
  }
}
