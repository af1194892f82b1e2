// axpreprocess through GstHarness: caps for every format, the tensor vs the OpenCV reference
// chain, letterbox geometry, property overrides and the error paths.
#include <glib/gstdio.h>
#include <gst/allocators/gstfdmemory.h>
#include <gst/video/video.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <random>

#include "axstream/gst/axtensormeta.h"
#include "axstream/runtime/runtime.h"
#include "gst_test_util.h"

namespace rt = axstream::runtime;

namespace {

const auto *gst_environment = ::testing::AddGlobalTestEnvironment(new axtest::GstEnvironment);

const char *const kFormats[] = {"NV12", "I420", "YUY2", "UYVY", "RGB",  "BGR",
                                "RGBA", "BGRA", "RGBx", "BGRx", "GRAY8"};

GstElement *make_preprocess(const std::string &model) {
  GstElement *element = gst_element_factory_make("axpreprocess", nullptr);
  EXPECT_NE(element, nullptr) << "axpreprocess not found: is GST_PLUGIN_PATH the build's "
                                 "gst/elements?";
  if (element && !model.empty()) g_object_set(element, "model", model.c_str(), nullptr);
  return element;
}

GstBuffer *random_frame(const GstVideoInfo &info, uint32_t seed) {
  return axtest::random_buffer(GST_VIDEO_INFO_SIZE(&info), seed);
}

// Sets width x height `format` caps on the harness and pushes one seeded random frame of them.
GstFlowReturn push_random_frame(GstHarness *h, GstVideoFormat format, int width, int height,
                                uint32_t seed, bool dmabuf = false) {
  gst_harness_set_src_caps_str(
      h, axtest::video_caps(gst_video_format_to_string(format), width, height, dmabuf).c_str());
  GstVideoInfo info;
  gst_video_info_set_format(&info, format, width, height);
  return gst_harness_push(h, random_frame(info, seed));
}

// The frame in the model's RGB order through cv::cvtColor.
cv::Mat opencv_rgb(const GstVideoInfo &info, const uint8_t *data) {
  const int w = GST_VIDEO_INFO_WIDTH(&info), h = GST_VIDEO_INFO_HEIGHT(&info);
  const std::string format = gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(&info));
  auto plane = [&](int type) {
    return cv::Mat(h, w, type, const_cast<uint8_t *>(data), GST_VIDEO_INFO_PLANE_STRIDE(&info, 0));
  };
  cv::Mat out;
  if (format == "NV12" || format == "I420") {
    // 64x48 frames have packed planes: the buffer is OpenCV's (h * 3 / 2) x w layout.
    cv::Mat yuv(h * 3 / 2, w, CV_8UC1, const_cast<uint8_t *>(data));
    cv::cvtColor(yuv, out, format == "NV12" ? cv::COLOR_YUV2RGB_NV12 : cv::COLOR_YUV2RGB_I420);
  } else if (format == "YUY2" || format == "UYVY") {
    cv::cvtColor(plane(CV_8UC2), out,
                 format == "YUY2" ? cv::COLOR_YUV2RGB_YUY2 : cv::COLOR_YUV2RGB_UYVY);
  } else if (format == "RGB") {
    out = plane(CV_8UC3).clone();
  } else if (format == "BGR") {
    cv::cvtColor(plane(CV_8UC3), out, cv::COLOR_BGR2RGB);
  } else if (format == "RGBA" || format == "RGBx") {
    cv::cvtColor(plane(CV_8UC4), out, cv::COLOR_RGBA2RGB);
  } else if (format == "BGRA" || format == "BGRx") {
    cv::cvtColor(plane(CV_8UC4), out, cv::COLOR_BGRA2RGB);
  } else {
    cv::cvtColor(plane(CV_8UC1), out, cv::COLOR_GRAY2RGB);
  }
  return out;
}

int8_t quantise(double value, const rt::TensorInfo &t) {
  return int8_t(std::clamp(std::nearbyint(value / t.scale) + t.zero_point, -128.0, 127.0));
}

// cvtColor -> resize INTER_LINEAR -> letterbox border -> normalise -> quantise -> pad.
std::vector<int8_t> opencv_reference(const cv::Mat &rgb, const rt::TensorInfo &t,
                                     const GstAxTransform &g, int pad_value) {
  const int content_w = int(std::lround(g.crop_width * g.scale_x));
  const int content_h = int(std::lround(g.crop_height * g.scale_y));
  cv::Mat resized, boxed;
  cv::resize(rgb, resized, cv::Size(content_w, content_h), 0, 0, cv::INTER_LINEAR);
  const int ox = int(g.offset_x), oy = int(g.offset_y);
  cv::copyMakeBorder(resized, boxed, oy, g.tensor_height - content_h - oy, ox,
                     g.tensor_width - content_w - ox, cv::BORDER_CONSTANT,
                     cv::Scalar::all(pad_value));
  const double mean[] = {0.485, 0.456, 0.406}, std_[] = {0.229, 0.224, 0.225};
  const int H = int(t.shape[1]), W = int(t.shape[2]), C = int(t.shape[3]);
  std::vector<int8_t> out(size_t(H) * W * C, int8_t(t.zero_point));
  for (int y = 0; y < boxed.rows; ++y)
    for (int x = 0; x < boxed.cols; ++x)
      for (int c = 0; c < 3; ++c) {
        const double v = (boxed.ptr<uint8_t>(y)[x * 3 + c] / 255.0 - mean[c]) / std_[c];
        out[(size_t(y + t.padding[1].first) * W + x + t.padding[2].first) * C + t.padding[3].first +
            c] = quantise(v, t);
      }
  return out;
}

rt::TensorInfo input_info(const std::string &model) {
  auto context = rt::Context::create();
  rt::TensorInfo info = context->load_model(model)->inputs()[0];
  context->release();
  return info;
}

class AxPreprocessFormat : public ::testing::TestWithParam<const char *> {};

TEST_P(AxPreprocessFormat, NegotiatesAndMatchesOpenCVReferenceWithinOneLsb) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  const char *format = GetParam();
  GstHarness *h = gst_harness_new_with_element(make_preprocess(model), "sink", "src");
  const std::string caps = axtest::video_caps(format, 64, 48);
  gst_harness_set_src_caps_str(h, caps.c_str());
  GstVideoInfo info;
  GstCaps *parsed = gst_caps_from_string(caps.c_str());
  ASSERT_TRUE(gst_video_info_from_caps(&info, parsed));
  gst_caps_unref(parsed);

  GstBuffer *frame = random_frame(info, 11);
  GstMapInfo frame_map;
  gst_buffer_map(frame, &frame_map, GST_MAP_READ);
  const cv::Mat rgb = opencv_rgb(info, frame_map.data);
  gst_buffer_unmap(frame, &frame_map);

  ASSERT_EQ(gst_harness_push(h, frame), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull(h);
  ASSERT_NE(out, nullptr);
  GstCaps *src_caps = gst_pad_get_current_caps(h->sinkpad);
  GstCaps *expected = gst_caps_from_string(caps.c_str());
  EXPECT_TRUE(gst_caps_is_equal(src_caps, expected)) << "video caps must pass unchanged";
  gst_caps_unref(src_caps);
  gst_caps_unref(expected);

  GstAxTensorMeta *meta = gst_buffer_get_ax_tensor_meta(out, GST_AX_TENSOR_INPUT, nullptr, -1);
  ASSERT_NE(meta, nullptr);
  EXPECT_STREQ(meta->model, model.c_str());
  const rt::TensorInfo tensor = input_info(model);
  ASSERT_EQ(gst_buffer_n_memory(meta->tensors), 1u);
  EXPECT_EQ(gst_buffer_get_size(meta->tensors), tensor.size());
  const auto ours = axtest::buffer_bytes(meta->tensors);
  const auto reference = opencv_reference(rgb, tensor, meta->transform, 0);
  ASSERT_EQ(ours.size(), reference.size());
  int worst = 0;
  for (size_t i = 0; i < ours.size(); ++i)
    worst = std::max(worst, std::abs(int(ours[i]) - int(reference[i])));
  EXPECT_LE(worst, 1) << format;
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

INSTANTIATE_TEST_SUITE_P(EveryFormat, AxPreprocessFormat, ::testing::ValuesIn(kFormats),
                         [](const ::testing::TestParamInfo<const char *> &info) {
                           return std::string(info.param);
                         });

struct OddSize {
  const char *format;
  int width, height;
};

// Pushes `frame` (format w x h) through axpreprocess `model` and returns the largest difference
// between its tensor and `rgb` (the same image) resized and quantised through OpenCV; -1 when
// no tensor came out.
int worst_against_opencv(const std::string &model, const char *format, int w, int h,
                         GstBuffer *frame, const cv::Mat &rgb) {
  GstHarness *harness = gst_harness_new_with_element(make_preprocess(model), "sink", "src");
  gst_harness_set_src_caps_str(harness, axtest::video_caps(format, w, h).c_str());
  int worst = -1;
  GstBuffer *out =
      gst_harness_push(harness, frame) == GST_FLOW_OK ? gst_harness_pull(harness) : nullptr;
  GstAxTensorMeta *meta =
      out ? gst_buffer_get_ax_tensor_meta(out, GST_AX_TENSOR_INPUT, nullptr, -1) : nullptr;
  if (meta) {
    const auto ours = axtest::buffer_bytes(meta->tensors);
    const auto reference = opencv_reference(rgb, input_info(model), meta->transform, 0);
    if (ours.size() == reference.size()) {
      worst = 0;
      for (size_t i = 0; i < ours.size(); ++i)
        worst = std::max(worst, std::abs(int(ours[i]) - int(reference[i])));
    }
  }
  if (out) gst_buffer_unref(out);
  gst_harness_teardown(harness);
  return worst;
}

class AxPreprocessOddSize : public ::testing::TestWithParam<OddSize> {};

// Odd-sized 4:2:0 frames as GStreamer lays them out (chroma planes ceil(w / 2) x ceil(h / 2)):
// the frame is the top-left part of a random even frame one pixel larger with the same chroma,
// so its tensor is that frame's cv::cvtColor pixels cut to w x h, resized and quantised.
TEST_P(AxPreprocessOddSize, GivesTheTensorOfTheSameImageConvertedByOpenCV) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  const auto [format, w, h] = GetParam();
  const bool nv12 = std::string(format) == "NV12";
  const int even_w = w + w % 2, even_h = h + h % 2;
  cv::Mat yuv(even_h * 3 / 2, even_w, CV_8UC1);
  cv::setRNGSeed(w * 1000 + h);
  cv::randu(yuv, 0, 256);
  cv::Mat even_rgb;
  cv::cvtColor(yuv, even_rgb, nv12 ? cv::COLOR_YUV2RGB_NV12 : cv::COLOR_YUV2RGB_I420);
  const cv::Mat rgb = even_rgb(cv::Rect(0, 0, w, h)).clone();

  GstVideoInfo info;
  gst_video_info_set_format(&info, gst_video_format_from_string(format), w, h);
  GstBuffer *frame = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(&info), nullptr);
  GstMapInfo map;
  ASSERT_TRUE(gst_buffer_map(frame, &map, GST_MAP_WRITE));
  const uint8_t *even_chroma = yuv.ptr(even_h);
  const int chroma_w = even_w / 2, chroma_h = even_h / 2;
  ASSERT_EQ(GST_VIDEO_INFO_COMP_WIDTH(&info, 1), chroma_w);
  ASSERT_EQ(GST_VIDEO_INFO_COMP_HEIGHT(&info, 1), chroma_h);
  auto plane_row = [&](int plane, int row) {
    return map.data + GST_VIDEO_INFO_PLANE_OFFSET(&info, plane) +
           size_t(row) * GST_VIDEO_INFO_PLANE_STRIDE(&info, plane);
  };
  for (int y = 0; y < h; ++y) std::memcpy(plane_row(0, y), yuv.ptr(y), w);
  for (int y = 0; y < chroma_h; ++y) {
    if (nv12) {
      std::memcpy(plane_row(1, y), even_chroma + size_t(y) * even_w, even_w);
    } else {
      std::memcpy(plane_row(1, y), even_chroma + size_t(y) * chroma_w, chroma_w);
      std::memcpy(plane_row(2, y), even_chroma + size_t(chroma_h + y) * chroma_w, chroma_w);
    }
  }
  gst_buffer_unmap(frame, &map);

  const int worst = worst_against_opencv(model, format, w, h, frame, rgb);
  ASSERT_GE(worst, 0) << "no tensor for " << format << " " << w << "x" << h;
  // Within the 1 LSB the even sizes have against this float reference (quantisation ties).
  EXPECT_LE(worst, 1) << format << " " << w << "x" << h;
}

INSTANTIATE_TEST_SUITE_P(Formats, AxPreprocessOddSize,
                         ::testing::Values(OddSize{"I420", 31, 7}, OddSize{"NV12", 641, 479},
                                           OddSize{"I420", 1, 1}, OddSize{"NV12", 1, 1},
                                           OddSize{"I420", 3, 1}, OddSize{"NV12", 3, 1}),
                         [](const ::testing::TestParamInfo<OddSize> &info) {
                           return std::string(info.param.format) + "_" +
                                  std::to_string(info.param.width) + "x" +
                                  std::to_string(info.param.height);
                         });

// Odd-width YUY2/UYVY as GStreamer lays them out (rows of ceil(w / 2) 4-byte pairs, the last
// pair's second luma unused): the tensor of the even frame one pixel wider, cut to w, through
// cv::cvtColor.
class AxPreprocessOddWidth422 : public ::testing::TestWithParam<OddSize> {};

TEST_P(AxPreprocessOddWidth422, GivesTheTensorOfTheSameImageConvertedByOpenCV) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  const auto [format, w, h] = GetParam();
  const bool yuy2 = std::string(format) == "YUY2";
  const int even_w = w + w % 2;
  GstVideoInfo info;
  gst_video_info_set_format(&info, gst_video_format_from_string(format), w, h);
  ASSERT_GE(GST_VIDEO_INFO_PLANE_STRIDE(&info, 0), 2 * even_w);
  GstBuffer *frame = random_frame(info, uint32_t(w * 1000 + h));
  GstMapInfo map;
  ASSERT_TRUE(gst_buffer_map(frame, &map, GST_MAP_READ));
  cv::Mat even_rgb;
  cv::cvtColor(cv::Mat(h, even_w, CV_8UC2, map.data, GST_VIDEO_INFO_PLANE_STRIDE(&info, 0)),
               even_rgb, yuy2 ? cv::COLOR_YUV2RGB_YUY2 : cv::COLOR_YUV2RGB_UYVY);
  gst_buffer_unmap(frame, &map);
  const cv::Mat rgb = even_rgb(cv::Rect(0, 0, w, h)).clone();

  const int worst = worst_against_opencv(model, format, w, h, frame, rgb);
  ASSERT_GE(worst, 0) << "no tensor for " << format << " " << w << "x" << h;
  EXPECT_LE(worst, 1) << format << " " << w << "x" << h;
}

INSTANTIATE_TEST_SUITE_P(Formats, AxPreprocessOddWidth422,
                         ::testing::Values(OddSize{"YUY2", 31, 7}, OddSize{"UYVY", 641, 479},
                                           OddSize{"YUY2", 1, 1}, OddSize{"UYVY", 3, 1}),
                         [](const ::testing::TestParamInfo<OddSize> &info) {
                           return std::string(info.param.format) + "_" +
                                  std::to_string(info.param.width) + "x" +
                                  std::to_string(info.param.height);
                         });

// A frame cropped by GstVideoCropMeta (videocrop or a decoder attach it instead of copying when
// the sink takes it, and axpreprocess passes that on in the allocation query): the caps give the
// visible size, GstVideoMeta the whole frame's layout, the meta the visible region's origin. Its
// tensor is the tensor of the region copied out as a frame of its own (before: of the frame's
// top-left corner).
class AxPreprocessCropMeta : public ::testing::TestWithParam<const char *> {};

TEST_P(AxPreprocessCropMeta, TensorIsTheCroppedRegionsTensor) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  const GstVideoFormat format = gst_video_format_from_string(GetParam());
  constexpr int kCropX = 20, kCropY = 10, kCropW = 36, kCropH = 30;
  GstVideoInfo whole_info, region_info;
  gst_video_info_set_format(&whole_info, format, 64, 48);
  gst_video_info_set_format(&region_info, format, kCropW, kCropH);
  GstBuffer *whole = random_frame(whole_info, 5);
  GstBuffer *region = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(&region_info), nullptr);
  GstVideoFrame from, to;
  ASSERT_TRUE(gst_video_frame_map(&from, &whole_info, whole, GST_MAP_READ));
  ASSERT_TRUE(gst_video_frame_map(&to, &region_info, region, GST_MAP_WRITE));
  for (guint p = 0; p < GST_VIDEO_FRAME_N_PLANES(&from); ++p) {
    // Planes p of these formats hold component p first (even offsets: exact chroma).
    const int w_sub = GST_VIDEO_FORMAT_INFO_W_SUB(whole_info.finfo, p);
    const int h_sub = GST_VIDEO_FORMAT_INFO_H_SUB(whole_info.finfo, p);
    const int pixel_stride = GST_VIDEO_FRAME_COMP_PSTRIDE(&from, p);
    for (int y = 0; y < GST_VIDEO_FRAME_COMP_HEIGHT(&to, p); ++y)
      memcpy(static_cast<guint8 *>(GST_VIDEO_FRAME_PLANE_DATA(&to, p)) +
                 y * GST_VIDEO_FRAME_PLANE_STRIDE(&to, p),
             static_cast<const guint8 *>(GST_VIDEO_FRAME_PLANE_DATA(&from, p)) +
                 ((kCropY >> h_sub) + y) * GST_VIDEO_FRAME_PLANE_STRIDE(&from, p) +
                 (kCropX >> w_sub) * pixel_stride,
             GST_VIDEO_FRAME_COMP_WIDTH(&to, p) * pixel_stride);
  }
  gst_video_frame_unmap(&to);
  gst_video_frame_unmap(&from);
  gst_buffer_add_video_meta_full(whole, GST_VIDEO_FRAME_FLAG_NONE, format, 64, 48,
                                 GST_VIDEO_INFO_N_PLANES(&whole_info), whole_info.offset,
                                 whole_info.stride);
  GstVideoCropMeta *crop = gst_buffer_add_video_crop_meta(whole);
  crop->x = kCropX;
  crop->y = kCropY;
  crop->width = kCropW;
  crop->height = kCropH;

  std::vector<int8_t> tensors[2];
  GstBuffer *inputs[2] = {region, whole};
  for (int i = 0; i < 2; ++i) {
    GstHarness *h = gst_harness_new_with_element(make_preprocess(model), "sink", "src");
    gst_harness_set_src_caps_str(h, axtest::video_caps(GetParam(), kCropW, kCropH).c_str());
    ASSERT_EQ(gst_harness_push(h, inputs[i]), GST_FLOW_OK);
    GstBuffer *out = gst_harness_pull(h);
    ASSERT_NE(out, nullptr);
    GstAxTensorMeta *meta = gst_buffer_get_ax_tensor_meta(out, GST_AX_TENSOR_INPUT, nullptr, -1);
    ASSERT_NE(meta, nullptr);
    tensors[i] = axtest::buffer_bytes(meta->tensors);
    gst_buffer_unref(out);
    gst_harness_teardown(h);
  }
  ASSERT_EQ(tensors[1].size(), tensors[0].size());
  size_t differing = 0;
  for (size_t i = 0; i < tensors[0].size(); ++i) differing += tensors[1][i] != tensors[0][i];
  EXPECT_EQ(differing, 0u) << GetParam() << ": bytes unlike the cropped frame's tensor";
}

INSTANTIATE_TEST_SUITE_P(PackedAndPlanar, AxPreprocessCropMeta,
                         ::testing::Values("RGB", "BGRx", "NV12", "I420", "YUY2", "UYVY", "GRAY8"),
                         [](const ::testing::TestParamInfo<const char *> &info) {
                           return std::string(info.param);
                         });

// videocrop attaches GstVideoCropMeta at its left edge as given, and at an odd x a YUY2/UYVY
// region starts inside a pixel pair: read from there, its pairs had U and V swapped and taken
// from two different pairs, a tensor of wrong colours without a word. For those formats
// axpreprocess no longer offers the meta upstream (videocrop then copies the region, pairs kept
// whole) and refuses a frame that comes with such a meta anyway, naming it.
TEST(AxPreprocess, CropMetaSplittingAPixelPairIsNotOfferedAndRefused) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  for (const char *format : {"YUY2", "UYVY"})
    EXPECT_FALSE(
        axtest::offers_crop_meta(make_preprocess(model), axtest::video_caps(format, 36, 30)))
        << format;
  EXPECT_TRUE(axtest::offers_crop_meta(make_preprocess(model), axtest::video_caps("I420", 36, 30)));

  const std::string error =
      axtest::error_of_push(make_preprocess(model), axtest::video_caps("YUY2", 36, 30),
                            axtest::cropped_frame(GST_VIDEO_FORMAT_YUY2, 21, 10, 36, 30));
  EXPECT_NE(error.find("axpreprocess cannot read the frame's crop: GstVideoCropMeta x 21 on a "
                       "YUY2 frame splits a pixel pair (its U and V belong to pixels 20 and 21): "
                       "expected an even x"),
            std::string::npos)
      << error;
}

TEST(AxPreprocess, AcceptsDmabufCapsFeature) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstHarness *h = gst_harness_new_with_element(make_preprocess(model), "sink", "src");
  const std::string caps = axtest::video_caps("NV12", 64, 48, true);
  gst_harness_set_src_caps_str(h, caps.c_str());
  GstVideoInfo info;
  gst_video_info_set_format(&info, GST_VIDEO_FORMAT_NV12, 64, 48);
  ASSERT_EQ(gst_harness_push(h, random_frame(info, 2)), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull(h);
  EXPECT_NE(gst_buffer_get_ax_tensor_meta(out, GST_AX_TENSOR_INPUT, nullptr, -1), nullptr);
  GstCaps *current = gst_pad_get_current_caps(h->sinkpad);
  EXPECT_TRUE(gst_caps_features_contains(gst_caps_get_features(current, 0), "memory:DMABuf"));
  gst_caps_unref(current);
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

TEST(AxPreprocess, LetterboxGeometryMapsTensorBackToFrame) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstHarness *h = gst_harness_new_with_element(make_preprocess(model), "sink", "src");
  ASSERT_EQ(push_random_frame(h, GST_VIDEO_FORMAT_RGB, 64, 48, 3), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull(h);
  GstAxTensorMeta *meta = gst_buffer_get_ax_tensor_meta(out, GST_AX_TENSOR_INPUT, nullptr, -1);
  ASSERT_NE(meta, nullptr);
  const GstAxTransform &t = meta->transform;
  EXPECT_EQ(t.tensor_width, 32);
  EXPECT_EQ(t.tensor_height, 32);
  EXPECT_DOUBLE_EQ(t.scale_x, 0.5);
  EXPECT_DOUBLE_EQ(t.scale_y, 0.5);
  EXPECT_DOUBLE_EQ(t.offset_x, 0.0);
  EXPECT_DOUBLE_EQ(t.offset_y, 4.0);  // 64x48 -> 32x24 centred in 32x32
  EXPECT_DOUBLE_EQ(t.crop_width, 64.0);
  EXPECT_DOUBLE_EQ(t.crop_height, 48.0);
  // The tensor's bottom-right content pixel (31, 27) maps to the frame's bottom-right corner.
  EXPECT_DOUBLE_EQ(t.crop_x + (32.0 - t.offset_x) / t.scale_x, 64.0);
  EXPECT_DOUBLE_EQ(t.crop_y + (28.0 - t.offset_y) / t.scale_y, 48.0);
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

TEST(AxPreprocess, StretchAndCropPropertiesSetTheGeometry) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstElement *element = make_preprocess(model);
  gst_util_set_object_arg(G_OBJECT(element), "resize", "stretch");
  g_object_set(element, "crop", "8,4,40,20", nullptr);
  GstHarness *h = gst_harness_new_with_element(element, "sink", "src");
  ASSERT_EQ(push_random_frame(h, GST_VIDEO_FORMAT_BGRx, 64, 48, 4), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull(h);
  GstAxTensorMeta *meta = gst_buffer_get_ax_tensor_meta(out, GST_AX_TENSOR_INPUT, nullptr, -1);
  ASSERT_NE(meta, nullptr);
  EXPECT_DOUBLE_EQ(meta->transform.crop_x, 8.0);
  EXPECT_DOUBLE_EQ(meta->transform.crop_y, 4.0);
  EXPECT_DOUBLE_EQ(meta->transform.scale_x, 32.0 / 40.0);
  EXPECT_DOUBLE_EQ(meta->transform.scale_y, 32.0 / 20.0);
  EXPECT_DOUBLE_EQ(meta->transform.offset_y, 0.0);
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

TEST(AxPreprocess, PadRightFillsTheHeightLeftAlignedWithANormalisedZeroBorder) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstElement *element = make_preprocess(model);
  gst_util_set_object_arg(G_OBJECT(element), "resize", "pad-right");
  g_object_set(element, "mean", "0.5", "std", "0.5", "pad-value", 255u, nullptr);
  GstHarness *h = gst_harness_new_with_element(element, "sink", "src");
  // 40x80 into 32x32: the full height, ceil(32 * 40 / 80) = 16 columns, then the border.
  ASSERT_EQ(push_random_frame(h, GST_VIDEO_FORMAT_RGB, 40, 80, 3), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull(h);
  GstAxTensorMeta *meta = gst_buffer_get_ax_tensor_meta(out, GST_AX_TENSOR_INPUT, nullptr, -1);
  ASSERT_NE(meta, nullptr);
  EXPECT_DOUBLE_EQ(meta->transform.offset_x, 0.0);
  EXPECT_DOUBLE_EQ(meta->transform.offset_y, 0.0);
  EXPECT_DOUBLE_EQ(meta->transform.scale_x, 16.0 / 40.0);
  EXPECT_DOUBLE_EQ(meta->transform.scale_y, 32.0 / 80.0);
  const rt::TensorInfo tensor = input_info(model);
  const auto bytes = axtest::buffer_bytes(meta->tensors);
  // Columns 16..31 of every row: the normalised zero (the zero point), not pad-value.
  for (int y : {0, 31})
    for (int x : {16, 31})
      for (int c = 0; c < 4; ++c)
        EXPECT_EQ(bytes[(size_t(y) * 32 + x) * 4 + c], tensor.zero_point) << x << "," << y;
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

TEST(AxPreprocess, MeanStdAndPadValuePropertiesOverrideThePackage) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstElement *element = make_preprocess(model);
  g_object_set(element, "mean", "0.5", "std", "0.25,0.25,0.25", "pad-value", 255u, nullptr);
  GstHarness *h = gst_harness_new_with_element(element, "sink", "src");
  // 64x16 into 32x32: letterbox rows above and below.
  ASSERT_EQ(push_random_frame(h, GST_VIDEO_FORMAT_GRAY8, 64, 16, 5), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull(h);
  GstAxTensorMeta *meta = gst_buffer_get_ax_tensor_meta(out, GST_AX_TENSOR_INPUT, nullptr, -1);
  ASSERT_NE(meta, nullptr);
  const rt::TensorInfo tensor = input_info(model);
  const auto bytes = axtest::buffer_bytes(meta->tensors);
  // Row 0 is letterbox border: pixel 255 -> (1.0 - 0.5) / 0.25 = 2.0 in every colour channel.
  const int8_t expected = quantise(2.0, tensor);
  for (int c = 0; c < 3; ++c) EXPECT_EQ(bytes[c], expected) << "channel " << c;
  EXPECT_EQ(bytes[3], tensor.zero_point) << "channel padding holds the zero point";
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

TEST(AxPreprocess, TensorMemoryIsPooledFdMemory) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstHarness *h = gst_harness_new_with_element(make_preprocess(model), "sink", "src");
  gst_harness_set_src_caps_str(h, axtest::video_caps("RGB", 64, 48).c_str());
  GstVideoInfo info;
  gst_video_info_set_format(&info, GST_VIDEO_FORMAT_RGB, 64, 48);
  GstMemory *first = nullptr;
  bool reused = false;
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(gst_harness_push(h, random_frame(info, 6)), GST_FLOW_OK);
    GstBuffer *out = gst_harness_pull(h);
    GstAxTensorMeta *meta = gst_buffer_get_ax_tensor_meta(out, GST_AX_TENSOR_INPUT, nullptr, -1);
    ASSERT_NE(meta, nullptr);
    GstMemory *memory = gst_buffer_peek_memory(meta->tensors, 0);
    EXPECT_TRUE(gst_is_fd_memory(memory));
    if (!first)
      first = memory;
    else
      reused |= memory == first;
    gst_buffer_unref(out);  // returns the tensor to the pool
  }
  EXPECT_TRUE(reused) << "the pool should hand the same tensor memory out again";
  gst_harness_teardown(h);
}

TEST(AxPreprocessErrors, MissingModelFailsAtReadyToPausedWithMessage) {
  GstElement *element = make_preprocess("");
  const std::string error = axtest::error_when_started(element);
  EXPECT_NE(error.find("'model' property is not set"), std::string::npos) << error;
}

TEST(AxPreprocessErrors, BadPackageFailsWithTheLoadersMessage) {
  gchar *dir = g_dir_make_tmp("axpreprocess-bad-XXXXXX", nullptr);
  const std::string model_json = std::string(dir) + "/model.json";
  g_file_set_contents(model_json.c_str(), "{ not json", -1, nullptr);
  GstElement *element = make_preprocess(dir);
  const std::string error = axtest::error_when_started(element);
  EXPECT_NE(error.find("could not load model package"), std::string::npos) << error;
  EXPECT_NE(error.find("model.json"), std::string::npos) << error;
  g_unlink(model_json.c_str());
  g_rmdir(dir);
  g_free(dir);
}

// Values wrong for any frame fail the start, naming the property, before caps are negotiated.
TEST(AxPreprocessErrors, InvalidPropertyValuesFailAtStartNamingTheProperty) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  const struct {
    const char *property, *value, *expected;
  } cases[] = {
      {"crop", "abc", "property 'crop' = 'abc': expected 4 comma-separated numbers"},
      {"crop", "1.5,0,8,8", "property 'crop' = '1.5,0,8,8': expected whole pixels"},
      {"crop", "0,0,0,8", "property 'crop' = '0,0,0,8': expected whole pixels"},
      {"crop", "-4,0,8,8", "property 'crop' = '-4,0,8,8': expected whole pixels"},
      {"mean", "x", "property 'mean' = 'x': expected 1 to 3 comma-separated numbers"},
      {"mean", "1,2", "property 'mean' = '1,2': expected 1 number (every channel) or 3"},
      {"std", "0.5,0,0.5", "property 'std' = '0.5,0,0.5': expected finite non-zero numbers"},
      {"color-format", "XYZ", "property 'color-format': colour format 'XYZ'"},
  };
  for (const auto &c : cases) {
    GstElement *element = make_preprocess(model);
    g_object_set(element, c.property, c.value, nullptr);
    const std::string error = axtest::error_when_started(element);
    EXPECT_NE(error.find(c.expected), std::string::npos)
        << c.property << "=" << c.value << ": " << error;
  }
}

TEST(AxPreprocessErrors, CropOutsideTheFrameIsNotNegotiatedWithMessage) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstElement *element = make_preprocess(model);
  g_object_set(element, "crop", "60,0,32,32", nullptr);
  axtest::BusWatch bus(element);
  GstHarness *h = gst_harness_new_with_element(element, "sink", "src");
  EXPECT_EQ(push_random_frame(h, GST_VIDEO_FORMAT_RGB, 64, 48, 7), GST_FLOW_NOT_NEGOTIATED);
  const std::string error = bus.error();
  EXPECT_NE(error.find("cannot take RGB 64x48 frames"), std::string::npos) << error;
  EXPECT_NE(error.find("crop (60,0,32,32)"), std::string::npos) << error;
  gst_harness_teardown(h);
}

TEST(AxPreprocessErrors, UnsupportedFormatIsRefusedByTheCaps) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstHarness *h = gst_harness_new_with_element(make_preprocess(model), "sink", "src");
  // YVYU: packed 4:2:2 with V first, which axpreprocess does not read (YUY2 and UYVY it does).
  GstCaps *yvyu = gst_caps_from_string(axtest::video_caps("YVYU", 64, 48).c_str());
  GstCaps *accepted = gst_pad_peer_query_caps(h->srcpad, nullptr);
  EXPECT_FALSE(gst_caps_can_intersect(yvyu, accepted));
  gst_caps_unref(accepted);
  gst_caps_unref(yvyu);
  EXPECT_EQ(push_random_frame(h, GST_VIDEO_FORMAT_YVYU, 64, 48, 9), GST_FLOW_NOT_NEGOTIATED);
  gst_harness_teardown(h);
}

TEST(AxPreprocessErrors, ModelThatIsNotAnImageIsNotNegotiated) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstElement *element = make_preprocess(model);
  g_object_set(element, "color-format", "GRAY", nullptr);  // 3-channel model, 1-channel order
  axtest::BusWatch bus(element);
  GstHarness *h = gst_harness_new_with_element(element, "sink", "src");
  EXPECT_EQ(push_random_frame(h, GST_VIDEO_FORMAT_RGB, 64, 48, 8), GST_FLOW_NOT_NEGOTIATED);
  const std::string error = bus.error();
  EXPECT_NE(error.find("3 unpadded channels"), std::string::npos) << error;
  gst_harness_teardown(h);
}

}  // namespace
