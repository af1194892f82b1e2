// Secondary inference through GstHarness: axpreprocess roi=objects makes one input tensor per
// detected object (tagged with the ROI's id, geometry per ROI, rotated crops for 4-corner text
// boxes), axinference runs every one of them, and axdecode attaches each result to its ROI.
#include <gst/video/video.h>

#include <cmath>
#include <cstring>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <string>
#include <vector>

#include "ax_live_check.h"
#include "axstream/error.h"
#include "axstream/gst/axresultmeta.h"
#include "axstream/gst/axtensormeta.h"
#include "axstream/preprocess/rotated_crop.h"
#include "gst_test_util.h"

namespace pp = axstream::preprocess;

namespace {

const auto *gst_environment = ::testing::AddGlobalTestEnvironment(new axtest::GstEnvironment);

constexpr int kWidth = 96, kHeight = 64;

GstBuffer *random_rgb_frame(uint32_t seed) {
  return axtest::random_buffer(size_t(kWidth) * kHeight * 3, seed);
}

GstVideoRegionOfInterestMeta *add_roi(GstBuffer *buffer, const char *label, gint id, guint x,
                                      guint y, guint w, guint h) {
  GstVideoRegionOfInterestMeta *roi =
      gst_buffer_add_video_region_of_interest_meta(buffer, label, x, y, w, h);
  roi->id = id;
  return roi;
}

GstHarness *preprocess_harness(const std::string &model, const char *properties) {
  const std::string launch = "axpreprocess model=\"" + model + "\" " + properties;
  GstHarness *h = gst_harness_new_parse(launch.c_str());
  gst_harness_set_src_caps_str(h, axtest::video_caps("RGB", kWidth, kHeight).c_str());
  return h;
}

std::vector<GstAxTensorMeta *> input_metas(GstBuffer *buffer) {
  std::vector<GstAxTensorMeta *> metas;
  gpointer iter = nullptr;
  while (GstMeta *meta =
             gst_buffer_iterate_meta_filtered(buffer, &iter, GST_AX_TENSOR_META_API_TYPE)) {
    auto *m = reinterpret_cast<GstAxTensorMeta *>(meta);
    if (m->kind == GST_AX_TENSOR_INPUT) metas.push_back(m);
  }
  return metas;
}

std::vector<uint8_t> tensor_bytes(const GstAxTensorMeta *meta) {
  return axtest::buffer_bytes<uint8_t>(meta->tensors);
}

// The tensor axpreprocess makes for the whole-frame path with crop=x,y,w,h on the same frame.
std::vector<uint8_t> cropped_tensor(const std::string &model, uint32_t seed, int x, int y, int w,
                                    int h) {
  const std::string crop = "crop=" + std::to_string(x) + "," + std::to_string(y) + "," +
                           std::to_string(w) + "," + std::to_string(h);
  GstHarness *harness = preprocess_harness(model, crop.c_str());
  EXPECT_EQ(gst_harness_push(harness, random_rgb_frame(seed)), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull(harness);
  std::vector<GstAxTensorMeta *> metas = input_metas(out);
  std::vector<uint8_t> bytes;
  if (metas.size() == 1) bytes = tensor_bytes(metas[0]);
  gst_buffer_unref(out);
  gst_harness_teardown(harness);
  EXPECT_FALSE(bytes.empty()) << "whole-frame run with " << crop << " gave no tensor";
  return bytes;
}

TEST(RoiPreprocess, ObjectsModeMakesOneTensorPerRoiEqualToTheCroppedFrameTensor) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstHarness *h = preprocess_harness(model, "roi=objects");
  GstBuffer *frame = random_rgb_frame(11);
  add_roi(frame, "face", 3, 4, 6, 20, 16);
  add_roi(frame, "text", 7, 30, 10, 50, 20);
  add_roi(frame, "face", 9, 60, 40, 30, 20);
  ASSERT_EQ(gst_harness_push(h, frame), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull(h);
  std::vector<GstAxTensorMeta *> metas = input_metas(out);
  ASSERT_EQ(metas.size(), 3u);
  const int expected[3][5] = {{3, 4, 6, 20, 16}, {7, 30, 10, 50, 20}, {9, 60, 40, 30, 20}};
  for (size_t i = 0; i < 3; ++i) {
    const auto &e = expected[i];
    EXPECT_EQ(metas[i]->roi_id, e[0]);
    EXPECT_DOUBLE_EQ(metas[i]->transform.crop_x, e[1]);
    EXPECT_DOUBLE_EQ(metas[i]->transform.crop_y, e[2]);
    EXPECT_DOUBLE_EQ(metas[i]->transform.crop_width, e[3]);
    EXPECT_DOUBLE_EQ(metas[i]->transform.crop_height, e[4]);
    EXPECT_EQ(tensor_bytes(metas[i]), cropped_tensor(model, 11, e[1], e[2], e[3], e[4]))
        << "roi " << e[0];
  }
  // The frame passes unchanged and no whole-frame tensor is made.
  EXPECT_EQ(gst_buffer_get_ax_tensor_meta(out, GST_AX_TENSOR_INPUT, nullptr, -1), nullptr);
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

// A webcam's packed 4:2:2 frames: object tensors (odd origins and sizes, so crops start inside a
// Y,U,Y,V pair) are the whole-frame tensors with that crop, and a four-corner ROI's rotated crop
// is cut from the frame's converted pixels.
TEST(RoiPreprocess, Yuy2AndUyvyObjectTensorsAreTheCroppedFrameTensors) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  for (const char *format : {"YUY2", "UYVY"}) {
    const std::string caps = axtest::video_caps(format, kWidth, kHeight);
    auto run = [&](const std::string &properties, const std::vector<std::array<int, 5>> &rois,
                   bool corners) {
      GstHarness *h =
          gst_harness_new_parse(("axpreprocess model=\"" + model + "\" " + properties).c_str());
      gst_harness_set_src_caps_str(h, caps.c_str());
      GstBuffer *frame = axtest::random_buffer(size_t(kWidth) * kHeight * 2, 21);
      for (const auto &r : rois) {
        add_roi(frame, "face", r[0], r[1], r[2], r[3], r[4]);
        if (corners) {
          const float x0 = float(r[1]), y0 = float(r[2]), x1 = float(r[1] + r[3]),
                      y1 = float(r[2] + r[4]);
          const float points[8] = {x0, y0, x1, y0, x1, y1, x0, y1};
          gst_buffer_add_ax_keypoints_meta(frame, r[0], 4, points);
        }
      }
      EXPECT_EQ(gst_harness_push(h, frame), GST_FLOW_OK);
      GstBuffer *out = gst_harness_pull(h);
      std::vector<std::vector<uint8_t>> tensors;
      for (GstAxTensorMeta *meta : input_metas(out)) tensors.push_back(tensor_bytes(meta));
      gst_buffer_unref(out);
      gst_harness_teardown(h);
      return tensors;
    };
    const std::vector<std::array<int, 5>> rois = {{3, 5, 6, 21, 17}, {7, 30, 11, 50, 20}};
    const auto objects = run("roi=objects", rois, false);
    ASSERT_EQ(objects.size(), rois.size()) << format;
    for (size_t i = 0; i < rois.size(); ++i) {
      const auto &r = rois[i];
      const std::string crop = "crop=" + std::to_string(r[1]) + "," + std::to_string(r[2]) + "," +
                               std::to_string(r[3]) + "," + std::to_string(r[4]);
      const auto whole = run(crop, {}, false);
      ASSERT_EQ(whole.size(), 1u) << format;
      EXPECT_EQ(objects[i], whole[0]) << format << " roi " << r[0];
    }
    // Axis-aligned corners: the rotated crop is an exact copy of the ROI's converted pixels, so
    // its tensor is the plain ROI's.
    const auto rotated = run("roi=objects", rois, true);
    ASSERT_EQ(rotated.size(), rois.size()) << format;
    for (size_t i = 0; i < rois.size(); ++i) {
      ASSERT_EQ(rotated[i].size(), objects[i].size());
      int worst = 0;
      for (size_t b = 0; b < rotated[i].size(); ++b)
        worst = std::max(worst, std::abs(int(int8_t(rotated[i][b])) - int(int8_t(objects[i][b]))));
      EXPECT_EQ(worst, 0) << format << " roi " << rois[i][0];
    }
  }
}

// ROIs an application attached without setting their ids all carry GStreamer's default, 0; the
// results axdecode attaches by id then went to every object alike (both objects of a frame listed
// both classifications). Repeated ids are renumbered, so each tensor names its own ROI.
TEST(RoiPreprocess, RoisSharingAnIdAreRenumberedSoEachTensorNamesItsOwn) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstHarness *h = preprocess_harness(model, "roi=objects");
  GstBuffer *frame = random_rgb_frame(13);
  add_roi(frame, "face", 0, 4, 6, 20, 16);
  add_roi(frame, "face", 0, 30, 10, 50, 20);
  add_roi(frame, "face", 5, 60, 40, 30, 20);
  add_roi(frame, "face", 5, 10, 40, 30, 20);
  ASSERT_EQ(gst_harness_push(h, frame), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull(h);
  std::vector<GstAxTensorMeta *> metas = input_metas(out);
  ASSERT_EQ(metas.size(), 4u);
  std::vector<gint> roi_ids;
  gpointer iter = nullptr;
  while (GstMeta *meta = gst_buffer_iterate_meta_filtered(
             out, &iter, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))
    roi_ids.push_back(reinterpret_cast<GstVideoRegionOfInterestMeta *>(meta)->id);
  ASSERT_EQ(roi_ids.size(), 4u);
  // The first of each id keeps it; the repeats get ids no ROI has.
  EXPECT_EQ(roi_ids[0], 0);
  EXPECT_EQ(roi_ids[2], 5);
  EXPECT_EQ(roi_ids[1], 6);
  EXPECT_EQ(roi_ids[3], 7);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(metas[i]->roi_id, roi_ids[i]) << "tensor " << i;
  EXPECT_DOUBLE_EQ(metas[1]->transform.crop_x, 30);
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

TEST(RoiPreprocess, ObjectClassAndMaxObjectsSelectTheRois) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstHarness *h = preprocess_harness(model, "roi=objects object-class=face,person max-objects=2");
  GstBuffer *frame = random_rgb_frame(12);
  add_roi(frame, "text", 1, 0, 0, 10, 10);
  add_roi(frame, "face", 2, 10, 10, 10, 10);
  add_roi(frame, "person", 3, 20, 20, 10, 10);
  add_roi(frame, "face", 4, 30, 30, 10, 10);
  ASSERT_EQ(gst_harness_push(h, frame), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull(h);
  std::vector<GstAxTensorMeta *> metas = input_metas(out);
  ASSERT_EQ(metas.size(), 2u);
  EXPECT_EQ(metas[0]->roi_id, 2);
  EXPECT_EQ(metas[1]->roi_id, 3);
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

TEST(RoiPreprocess, FrameWithoutRoisOrWithRoisOutsideGetsNoTensor) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstHarness *h = preprocess_harness(model, "roi=objects");
  ASSERT_EQ(gst_harness_push(h, random_rgb_frame(13)), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull(h);
  EXPECT_TRUE(input_metas(out).empty());
  gst_buffer_unref(out);
  GstBuffer *frame = random_rgb_frame(14);
  add_roi(frame, "face", 5, 200, 100, 10, 10);  // beyond the 96x64 frame
  ASSERT_EQ(gst_harness_push(h, frame), GST_FLOW_OK);
  out = gst_harness_pull(h);
  EXPECT_TRUE(input_metas(out).empty());
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

TEST(RoiPreprocess, FourCornerRoiIsCutAlongItsCornersUnlessRotatedCropIsOff) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  // Corners of an axis-aligned 30x20 box at (20,10), shuffled: the upright warp of an
  // unrotated box samples whole pixels, so the tensor equals the plain crop's.
  const gfloat corners[8] = {50, 30, 20, 10, 20, 30, 50, 10};
  for (const char *properties : {"roi=objects", "roi=objects rotated-crop=false"}) {
    GstHarness *h = preprocess_harness(model, properties);
    GstBuffer *frame = random_rgb_frame(15);
    add_roi(frame, "text", 0, 20, 10, 30, 20);
    gst_buffer_add_ax_keypoints_meta(frame, 0, 4, corners);
    ASSERT_EQ(gst_harness_push(h, frame), GST_FLOW_OK);
    GstBuffer *out = gst_harness_pull(h);
    std::vector<GstAxTensorMeta *> metas = input_metas(out);
    ASSERT_EQ(metas.size(), 1u) << properties;
    EXPECT_EQ(metas[0]->roi_id, 0);
    EXPECT_DOUBLE_EQ(metas[0]->transform.crop_x, 20.0);
    EXPECT_DOUBLE_EQ(metas[0]->transform.crop_y, 10.0);
    EXPECT_EQ(tensor_bytes(metas[0]), cropped_tensor(model, 15, 20, 10, 30, 20)) << properties;
    gst_buffer_unref(out);
    gst_harness_teardown(h);
  }
}

// An RGB frame over `rgb`'s pixels (not copied).
pp::Frame rgb_frame(const cv::Mat &rgb) {
  pp::Frame frame;
  frame.format = pp::PixelFormat::RGB;
  frame.width = rgb.cols;
  frame.height = rgb.rows;
  frame.planes[0] = rgb.data;
  frame.strides[0] = int(rgb.step);
  return frame;
}

TEST(RotatedCrop, RotatedBoxComesOutUprightAndTallBoxesAreTurned) {
  cv::Mat rgb(64, 96, CV_8UC3);
  cv::randu(rgb, 0, 256);
  pp::Frame frame = rgb_frame(rgb);
  // A 10 wide, 30 high box: 1.5 times higher than wide, so turned 90 degrees counter-clockwise.
  const pp::RgbImage tall = pp::rotated_crop(frame, {{{40, 50}, {30, 20}, {40, 20}, {30, 50}}});
  ASSERT_EQ(tall.width, 30);
  ASSERT_EQ(tall.height, 10);
  cv::Mat expected;
  cv::rotate(rgb(cv::Rect(30, 20, 10, 30)), expected, cv::ROTATE_90_COUNTERCLOCKWISE);
  const cv::Mat got(tall.height, tall.width, CV_8UC3, const_cast<uint8_t *>(tall.pixels.data()));
  EXPECT_EQ(cv::norm(got, expected, cv::NORM_INF), 0.0);

  // A 40x12 box rotated by 30 degrees: upright 40x12, its centre pixel the frame's centre pixel.
  cv::Mat flat(64, 96, CV_8UC3, cv::Scalar(0, 0, 0));
  const cv::RotatedRect box({48, 32}, {40, 12}, 30);
  cv::Point2f p[4];
  box.points(p);
  std::vector<cv::Point> polygon(p, p + 4);
  cv::fillConvexPoly(flat, polygon, cv::Scalar(200, 100, 50));
  frame.planes[0] = flat.data;
  const pp::RgbImage upright = pp::rotated_crop(
      frame, {{{p[0].x, p[0].y}, {p[1].x, p[1].y}, {p[2].x, p[2].y}, {p[3].x, p[3].y}}});
  EXPECT_NEAR(upright.width, 40, 1);
  EXPECT_NEAR(upright.height, 12, 1);
  const uint8_t *centre =
      upright.pixels.data() + (size_t(upright.height / 2) * upright.width + upright.width / 2) * 3;
  EXPECT_EQ(centre[0], 200);
  EXPECT_EQ(centre[1], 100);
  EXPECT_EQ(centre[2], 50);
}

// An odd-sized 4:2:0 frame is the top-left part of the even frame one pixel larger with the
// same chroma planes (ceil(w / 2) x ceil(h / 2)): its crops are that frame's converted pixels.
TEST(RotatedCrop, OddSizedNv12AndI420FramesAreCutFromTheirOwnPixels) {
  for (const auto format : {pp::PixelFormat::NV12, pp::PixelFormat::I420}) {
    for (const auto &[w, h] : {std::pair{31, 7}, std::pair{1, 1}, std::pair{3, 1}}) {
      const int even_w = w + 1, even_h = h + 1;
      cv::Mat yuv(even_h * 3 / 2, even_w, CV_8UC1);
      cv::randu(yuv, 0, 256);
      cv::Mat rgb;
      cv::cvtColor(
          yuv, rgb,
          format == pp::PixelFormat::NV12 ? cv::COLOR_YUV2RGB_NV12 : cv::COLOR_YUV2RGB_I420);
      // The odd frame's own planes, each allocated to its last pixel.
      std::vector<uint8_t> luma(size_t(even_w) * (h - 1) + w);
      for (int y = 0; y < h; ++y) std::memcpy(&luma[size_t(y) * even_w], yuv.ptr(y), w);
      const size_t chroma_size = size_t(even_w / 2) * (even_h / 2);
      std::vector<uint8_t> u(yuv.ptr(even_h), yuv.ptr(even_h) + chroma_size);
      std::vector<uint8_t> v(yuv.ptr(even_h) + chroma_size, yuv.ptr(even_h) + 2 * chroma_size);
      std::vector<uint8_t> uv(yuv.ptr(even_h), yuv.ptr(even_h) + 2 * chroma_size);
      pp::Frame frame;
      frame.format = format;
      frame.width = w;
      frame.height = h;
      frame.planes = {luma.data(), format == pp::PixelFormat::NV12 ? uv.data() : u.data(),
                      v.data()};
      frame.strides = {even_w, format == pp::PixelFormat::NV12 ? even_w : even_w / 2, even_w / 2};
      // An axis-aligned box up to the last column and row: an exact copy of those pixels.
      const float x0 = float(w > 11 ? w - 11 : 0);
      const pp::RgbImage crop =
          pp::rotated_crop(frame, {{{x0, 0}, {float(w), 0}, {float(w), float(h)}, {x0, float(h)}}});
      const cv::Rect box(int(x0), 0, w - int(x0), h);
      ASSERT_EQ(crop.width, box.width);
      ASSERT_EQ(crop.height, box.height);
      const cv::Mat got(crop.height, crop.width, CV_8UC3,
                        const_cast<uint8_t *>(crop.pixels.data()));
      EXPECT_EQ(cv::norm(got, rgb(box), cv::NORM_INF), 0.0)
          << pp::pixel_format_name(format) << " " << w << "x" << h;
    }
  }
}

TEST(RotatedCrop, CornersFarOutsideTheFrameGiveAtMostTheDiagonalAndNanIsAnError) {
  cv::Mat rgb(48, 64, CV_8UC3, cv::Scalar(1, 2, 3));
  pp::Frame frame = rgb_frame(rgb);
  // A detector's box 1e9 pixels wide asked for a 3e18-byte image before.
  const pp::RgbImage huge = pp::rotated_crop(frame, {{{0, 0}, {1e9f, 0}, {1e9f, 1e9f}, {0, 1e9f}}});
  EXPECT_EQ(huge.width, 80);  // ceil(hypot(64, 48))
  EXPECT_EQ(huge.height, 80);
  const float nan = std::nanf("");
  EXPECT_THROW(pp::rotated_crop(frame, {{{0, 0}, {nan, 0}, {10, 10}, {0, 10}}}),
               axstream::InvalidArgument);
}

TEST(RoiCascade, EveryRoiIsInferredAndClassifiedOnItsOwnRoi) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  const std::string launch = "axpreprocess roi=objects model=\"" + model +
                             "\" ! axinference model=\"" + model +
                             "\" ! axdecode decoder=classification top-k=1";
  GstHarness *h = gst_harness_new_parse(launch.c_str());
  gst_harness_set_src_caps_str(h, axtest::video_caps("RGB", kWidth, kHeight).c_str());
  GstBuffer *frame = random_rgb_frame(16);
  add_roi(frame, "face", 1, 0, 0, 40, 30);
  add_roi(frame, "face", 2, 50, 20, 40, 40);
  ASSERT_EQ(gst_harness_push(h, frame), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull(h);
  ASSERT_NE(out, nullptr);
  for (gint id : {1, 2}) {
    EXPECT_NE(gst_buffer_get_ax_tensor_meta(out, GST_AX_TENSOR_OUTPUT, nullptr, id), nullptr)
        << "roi " << id;
    GstAxClassificationMeta *classes = gst_buffer_get_ax_classification_meta(out, id);
    ASSERT_NE(classes, nullptr) << "roi " << id;
    EXPECT_EQ(classes->n_classes, 1u);
    GstVideoRegionOfInterestMeta *roi = gst_buffer_get_video_region_of_interest_meta_id(out, id);
    ASSERT_NE(roi, nullptr);
    EXPECT_NE(gst_video_region_of_interest_meta_get_param(roi, GST_AX_CLASSIFICATION_PARAM),
              nullptr)
        << "roi " << id;
  }
  EXPECT_EQ(gst_buffer_get_ax_classification_meta(out, -1), nullptr);
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

// A classifier stage with object-class: frames whose objects it does not select get no tensor,
// and axinference warned on the first of them "a frame has no input tensor for model X ... is
// axpreprocess model=X upstream?", though it was and the selected objects were classified. Such
// frames are counted instead; only a stream where no frame ever had an input (object-class
// naming no object's label, here "Face" for "face") is warned about, once, at its EOS, naming the
// labels the objects had.
TEST(RoiCascade, FramesWhoseObjectsObjectClassLeavesOutAreNoMistakeUnlessNoneIsEverSelected) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  for (const char *object_class : {"face", "Face"}) {
    const std::string launch =
        "axpreprocess roi=objects object-class=" + std::string(object_class) + " model=\"" + model +
        "\" ! axinference name=classifier model=\"" + model + "\"";
    GstHarness *h = gst_harness_new_parse(launch.c_str());
    GstElement *inference = gst_harness_find_element(h, "axinference");
    axtest::BusWatch bus(inference);
    gst_harness_set_src_caps_str(h, axtest::video_caps("RGB", kWidth, kHeight).c_str());
    int outputs = 0;
    for (int i = 0; i < 4; ++i) {
      GstBuffer *frame = random_rgb_frame(20 + i);
      add_roi(frame, i % 2 ? "face" : "person", 1, 4, 4, 40, 30);
      ASSERT_EQ(gst_harness_push(h, frame), GST_FLOW_OK);
      GstBuffer *out = gst_harness_pull(h);
      outputs += gst_buffer_get_ax_tensor_meta(out, GST_AX_TENSOR_OUTPUT, nullptr, 1) != nullptr;
      gst_buffer_unref(out);
    }
    EXPECT_EQ(bus.warning(), "") << object_class << ": a warning before the EOS";
    EXPECT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
    for (GstEvent *event;
         (event = gst_harness_pull_event(h)) && GST_EVENT_TYPE(event) != GST_EVENT_EOS;)
      gst_event_unref(event);
    const std::string warning = bus.warning();
    if (std::string(object_class) == "face") {
      EXPECT_EQ(outputs, 2);
      EXPECT_EQ(warning, "");
    } else {
      EXPECT_EQ(outputs, 0);
      EXPECT_NE(warning.find("axinference ran nothing: 4 frames had objects (labels 'person', "
                             "'face') and none carried an input tensor for model '" +
                             model + "' (is axpreprocess model=" + model +
                             " roi=objects upstream, and does its object-class name"),
                std::string::npos)
          << warning;
    }
    gst_object_unref(inference);
    gst_harness_teardown(h);
  }
}

// The same stream from a live source (v4l2src, rtspsrc, videotestsrc is-live=true) has no EOS:
// the warning comes once, after LiveCheck::kFrames frames with objects and no input (before: only
// at an EOS, so never), and not again at a later EOS.
TEST(RoiCascade, ALiveStreamIsWarnedAboutAfterABoundedNumberOfFramesOnce) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  const std::string launch = "axpreprocess roi=objects object-class=Face model=\"" + model +
                             "\" ! axinference name=classifier model=\"" + model + "\"";
  GstHarness *h = gst_harness_new_parse(launch.c_str());
  GstElement *inference = gst_harness_find_element(h, "axinference");
  axtest::BusWatch bus(inference);
  gst_harness_set_src_caps_str(h, axtest::video_caps("RGB", kWidth, kHeight).c_str());
  const int bound = int(axstream::gst::LiveCheck::kFrames);
  for (int i = 0; i < bound; ++i) {
    GstBuffer *frame = gst_buffer_new_allocate(nullptr, kWidth * kHeight * 3, nullptr);
    GST_BUFFER_PTS(frame) = i * GST_MSECOND;  // 0.3 s in all: the frame bound decides
    add_roi(frame, "face", 1, 4, 4, 40, 30);
    ASSERT_EQ(gst_harness_push(h, frame), GST_FLOW_OK);
    gst_buffer_unref(gst_harness_pull(h));
    if (i == bound - 2) {
      EXPECT_EQ(bus.warning(), "") << "a warning before the bound";
    }
  }
  const std::string warning = bus.warning();
  EXPECT_NE(warning.find("axinference ran nothing: " + std::to_string(bound) +
                         " frames had objects (labels 'face') and none carried an input tensor "
                         "for model '" +
                         model + "'"),
            std::string::npos)
      << warning;
  EXPECT_NE(warning.find("without an EOS yet (live)"), std::string::npos) << warning;
  EXPECT_TRUE(gst_harness_push_event(h, gst_event_new_eos()));
  for (GstEvent *event;
       (event = gst_harness_pull_event(h)) && GST_EVENT_TYPE(event) != GST_EVENT_EOS;)
    gst_event_unref(event);
  EXPECT_EQ(bus.warning(), "") << "warned twice";
  gst_object_unref(inference);
  gst_harness_teardown(h);
}

}  // namespace
