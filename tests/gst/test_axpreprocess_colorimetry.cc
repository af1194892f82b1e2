// axpreprocess honours the caps' colorimetry: the same NV12/I420/YUY2/UYVY frame through
// GStreamer's own videoconvert (which applies the caps' matrix and range) and through axpreprocess,
// at the same size (no resize), gives the same RGB within 2 levels, for every matrix and range.
#include <gst/check/gstharness.h>
#include <gst/video/video.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "axstream/gst/axtensormeta.h"
#include "axstream/runtime/runtime.h"
#include "gst_test_util.h"
#include "tensor_difference.h"

namespace rt = axstream::runtime;

namespace {

const auto *gst_environment = ::testing::AddGlobalTestEnvironment(new axtest::GstEnvironment);

constexpr int kWidth = 32, kHeight = 24;  // letterboxed into resnet_tiny's 32x32: no resize

// A frame of random legal values of the range (video range: Y 16..235, U/V 16..240).
GstBuffer *random_yuv_frame(const GstVideoInfo &info, bool full, uint32_t seed) {
  GstBuffer *buffer = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(&info), nullptr);
  GstVideoFrame frame;
  gst_video_frame_map(&frame, &info, buffer, GST_MAP_WRITE);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> luma(full ? 0 : 16, full ? 255 : 235);
  std::uniform_int_distribution<int> chroma(full ? 0 : 16, full ? 255 : 240);
  const GstVideoFormat format = GST_VIDEO_INFO_FORMAT(&info);
  if (format == GST_VIDEO_FORMAT_YUY2 || format == GST_VIDEO_FORMAT_UYVY) {
    // Packed 4:2:2: luma at even bytes (YUY2) or odd ones (UYVY), U,V at the others.
    auto *data = static_cast<uint8_t *>(GST_VIDEO_FRAME_PLANE_DATA(&frame, 0));
    const int stride = GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0);
    const int luma_parity = format == GST_VIDEO_FORMAT_YUY2 ? 0 : 1;
    for (int y = 0; y < kHeight; ++y)
      for (int x = 0; x < 2 * kWidth; ++x)
        data[size_t(y) * stride + x] = uint8_t(x % 2 == luma_parity ? luma(rng) : chroma(rng));
  } else {
    for (guint plane = 0; plane < GST_VIDEO_FRAME_N_PLANES(&frame); ++plane) {
      auto *data = static_cast<uint8_t *>(GST_VIDEO_FRAME_PLANE_DATA(&frame, plane));
      const int stride = GST_VIDEO_FRAME_PLANE_STRIDE(&frame, plane);
      const int rows = plane == 0 ? kHeight : kHeight / 2;
      const int bytes =
          plane == 0 ? kWidth : (GST_VIDEO_FRAME_N_PLANES(&frame) == 2 ? kWidth : kWidth / 2);
      for (int y = 0; y < rows; ++y)
        for (int x = 0; x < bytes; ++x)
          data[size_t(y) * stride + x] = uint8_t(plane == 0 ? luma(rng) : chroma(rng));
    }
  }
  gst_video_frame_unmap(&frame);
  GST_BUFFER_PTS(buffer) = 0;
  return buffer;
}

struct Case {
  const char *format;
  const char *colorimetry;  // range:matrix:transfer:primaries, or a name
  bool full;
  double kr, kb;  // the matrix's luma weights
};

// The standard's formula for one pixel's R, G or B (k = 0, 1, 2) as an 8-bit value.
int formula_rgb(const Case &c, int y, int u, int v, int k) {
  const double luma = c.full ? y / 255.0 : (y - 16) / 219.0;
  const double cb = (u - 128) / (c.full ? 255.0 : 224.0), cr = (v - 128) / (c.full ? 255.0 : 224.0);
  const double kg = 1.0 - c.kr - c.kb;
  const double value =
      k == 0   ? luma + 2.0 * (1.0 - c.kr) * cr
      : k == 1 ? luma - 2.0 * c.kb * (1.0 - c.kb) / kg * cb - 2.0 * c.kr * (1.0 - c.kr) / kg * cr
               : luma + 2.0 * (1.0 - c.kb) * cb;
  return int(std::clamp(std::lround(value * 255.0), 0L, 255L));
}

class AxPreprocessColorimetry : public ::testing::TestWithParam<Case> {};

// axpreprocess's int8 tensor made to hold pixel - 128 (mean/std chosen for resnet_tiny's input
// scale 0.02 and zero point -5) against videoconvert's RGB (dither and chroma resampling off:
// axpreprocess, like OpenCV, takes each 2x2 block's chroma sample as it is).
TEST_P(AxPreprocessColorimetry, MatchesVideoconvertWithinTwoLevels) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  const Case c = GetParam();
  auto context = rt::Context::create();
  const rt::TensorInfo tensor = context->load_model(model)->inputs()[0];
  context->release();
  ASSERT_NEAR(tensor.scale, 0.02, 1e-6);
  ASSERT_EQ(tensor.zero_point, -5);

  const std::string caps =
      axtest::video_caps(c.format, kWidth, kHeight) + ",colorimetry=" + c.colorimetry;
  GstVideoInfo info;
  GstCaps *parsed = gst_caps_from_string(caps.c_str());
  ASSERT_TRUE(gst_video_info_from_caps(&info, parsed));
  gst_caps_unref(parsed);
  ASSERT_EQ(info.colorimetry.range == GST_VIDEO_COLOR_RANGE_0_255, c.full) << c.colorimetry;

  GstElement *element = gst_element_factory_make("axpreprocess", nullptr);
  ASSERT_NE(element, nullptr);
  // (p / 255 - mean) / std = 0.02 * (p - 123): the tensor is p - 128.
  g_object_set(element, "model", model.c_str(), "mean",
               "0.4823529411764706,0.4823529411764706,0.4823529411764706", "std",
               "0.19607843137254902,0.19607843137254902,0.19607843137254902", nullptr);
  GstHarness *ours = gst_harness_new_with_element(element, "sink", "src");
  gst_harness_set_src_caps_str(ours, caps.c_str());
  GstHarness *reference = gst_harness_new_parse(
      "videoconvert dither=none chroma-mode=none ! capsfilter caps=video/x-raw,format=RGBA64_LE");
  gst_harness_set_src_caps_str(reference, caps.c_str());

  int worst = 0, worst_formula = 0;
  double total = 0;
  size_t count = 0;
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    GstBuffer *frame = random_yuv_frame(info, c.full, seed);
    GstVideoFrame yuv;
    ASSERT_TRUE(gst_video_frame_map(&yuv, &info, frame, GST_MAP_READ));
    auto sample = [&](int plane, int x, int y) {
      return int(static_cast<const uint8_t *>(GST_VIDEO_FRAME_PLANE_DATA(
          &yuv, plane))[size_t(y) * GST_VIDEO_FRAME_PLANE_STRIDE(&yuv, plane) + x]);
    };
    const bool nv12 = std::string(c.format) == "NV12";
    const bool yuy2 = std::string(c.format) == "YUY2", uyvy = std::string(c.format) == "UYVY";
    auto expected = [&](int x, int y, int k) {
      if (yuy2 || uyvy) {
        // YUY2: Y0 U Y1 V; UYVY: U Y0 V Y1.
        const int pair = 4 * (x / 2);
        return formula_rgb(c, sample(0, 2 * x + (uyvy ? 1 : 0), y),
                           sample(0, pair + (yuy2 ? 1 : 0), y), sample(0, pair + (yuy2 ? 3 : 2), y),
                           k);
      }
      const int u = nv12 ? sample(1, x & ~1, y / 2) : sample(1, x / 2, y / 2);
      const int v = nv12 ? sample(1, (x & ~1) + 1, y / 2) : sample(2, x / 2, y / 2);
      return formula_rgb(c, sample(0, x, y), u, v, k);
    };
    ASSERT_EQ(gst_harness_push(reference, gst_buffer_ref(frame)), GST_FLOW_OK);
    ASSERT_EQ(gst_harness_push(ours, gst_buffer_ref(frame)), GST_FLOW_OK);
    GstBuffer *rgb = gst_harness_pull(reference);
    GstBuffer *out = gst_harness_pull(ours);
    ASSERT_NE(rgb, nullptr);
    ASSERT_NE(out, nullptr);
    GstAxTensorMeta *meta = gst_buffer_get_ax_tensor_meta(out, GST_AX_TENSOR_INPUT, nullptr, -1);
    ASSERT_NE(meta, nullptr);
    ASSERT_EQ(meta->transform.scale_x, 1.0f);
    ASSERT_EQ(meta->transform.scale_y, 1.0f);
    const auto values = axtest::buffer_bytes(meta->tensors);
    const auto bytes = axtest::buffer_bytes<uint8_t>(rgb);
    std::vector<uint16_t> pixels(bytes.size() / 2);
    std::memcpy(pixels.data(), bytes.data(), 2 * pixels.size());
    const int rgb_stride = kWidth * 4;  // 16-bit R, G, B, A
    const int channels = int(tensor.shape[3]), tensor_width = int(tensor.shape[2]);
    for (int y = 0; y < kHeight; ++y)
      for (int x = 0; x < kWidth; ++x)
        for (int k = 0; k < 3; ++k) {
          const size_t at = (size_t(y + int(meta->transform.offset_y)) * tensor_width + x +
                             int(meta->transform.offset_x)) *
                                channels +
                            k;
          const int difference =
              std::abs(int(values[at]) + 128 -
                       int(std::lround(pixels[size_t(y) * rgb_stride + 4 * x + k] / 257.0)));
          worst = std::max(worst, difference);
          worst_formula =
              std::max(worst_formula, std::abs(int(values[at]) + 128 - expected(x, y, k)));
          total += difference;
          ++count;
        }
    gst_video_frame_unmap(&yuv);
    gst_buffer_unref(frame);
    gst_buffer_unref(rgb);
    gst_buffer_unref(out);
  }
  std::printf("%s %s: vs videoconvert worst %d, mean %.3f levels; vs the formula worst %d\n",
              c.format, c.colorimetry, worst, total / count, worst_formula);
  EXPECT_LE(worst, 3) << c.format << " colorimetry=" << c.colorimetry;
  EXPECT_LE(worst_formula, 1) << c.format << " colorimetry=" << c.colorimetry;
  gst_harness_teardown(reference);
  gst_harness_teardown(ours);
}

// range 2 = 16..235, 1 = 0..255; matrix 4 = BT.601, 3 = BT.709, 6 = BT.2020, 5 = SMPTE 240M, 2 =
// FCC.
constexpr double k601[] = {0.299, 0.114}, k709[] = {0.2126, 0.0722}, k2020[] = {0.2627, 0.0593},
                 k240m[] = {0.212, 0.087}, kFcc[] = {0.30, 0.11};
const Case kCases[] = {
    {"NV12", "bt601", false, k601[0], k601[1]},    {"NV12", "bt709", false, k709[0], k709[1]},
    {"NV12", "bt2020", false, k2020[0], k2020[1]}, {"NV12", "smpte240m", false, k240m[0], k240m[1]},
    {"NV12", "2:2:0:0", false, kFcc[0], kFcc[1]},  {"NV12", "1:4:0:0", true, k601[0], k601[1]},
    {"NV12", "1:3:0:0", true, k709[0], k709[1]},   {"NV12", "1:6:0:0", true, k2020[0], k2020[1]},
    {"NV12", "1:5:0:0", true, k240m[0], k240m[1]}, {"NV12", "1:2:0:0", true, kFcc[0], kFcc[1]},
    {"I420", "bt601", false, k601[0], k601[1]},    {"I420", "bt709", false, k709[0], k709[1]},
    {"I420", "bt2020", false, k2020[0], k2020[1]}, {"I420", "1:4:0:0", true, k601[0], k601[1]},
    {"I420", "1:3:0:0", true, k709[0], k709[1]},   {"I420", "1:6:0:0", true, k2020[0], k2020[1]},
    {"YUY2", "bt601", false, k601[0], k601[1]},    {"YUY2", "bt709", false, k709[0], k709[1]},
    {"YUY2", "bt2020", false, k2020[0], k2020[1]}, {"YUY2", "1:4:0:0", true, k601[0], k601[1]},
    {"YUY2", "1:3:0:0", true, k709[0], k709[1]},   {"UYVY", "bt601", false, k601[0], k601[1]},
    {"UYVY", "bt709", false, k709[0], k709[1]},    {"UYVY", "1:4:0:0", true, k601[0], k601[1]},
    {"UYVY", "1:3:0:0", true, k709[0], k709[1]},
};

INSTANTIATE_TEST_SUITE_P(MatricesAndRanges, AxPreprocessColorimetry, ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case> &info) {
                           std::string name =
                               std::string(info.param.format) + "_" + info.param.colorimetry;
                           std::replace(name.begin(), name.end(), ':', '_');
                           return name;
                         });

// A copy of the first frame `launch` makes (the buffer the sink prerolls on); nullptr with `error`
// set when the pipeline failed. Not "play until EOS after one buffer": identity eos-after=1 ends
// the stream on the first buffer, and a frame gets through only when the decoder's threads push one
// they had already decoded (a flaky test).
GstBuffer *first_frame(const std::string &launch, std::string &error) {
  GError *parse_error = nullptr;
  GstElement *pipeline = gst_parse_launch((launch + " ! fakesink name=out").c_str(), &parse_error);
  if (!pipeline || parse_error) {
    error = parse_error ? parse_error->message : "gst_parse_launch failed";
    g_clear_error(&parse_error);
    if (pipeline) gst_object_unref(pipeline);
    return nullptr;
  }
  GstBuffer *frame = nullptr;
  gst_element_set_state(pipeline, GST_STATE_PAUSED);
  if (gst_element_get_state(pipeline, nullptr, nullptr, 60 * GST_SECOND) !=
      GST_STATE_CHANGE_SUCCESS) {
    GstBus *bus = gst_element_get_bus(pipeline);
    GstMessage *message = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
    error = message ? axtest::message_text(message) : "no preroll within 60 s";
    if (message) gst_message_unref(message);
    gst_object_unref(bus);
  } else {
    GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "out");
    GstSample *sample = nullptr;
    g_object_get(sink, "last-sample", &sample, nullptr);
    if (sample && gst_sample_get_buffer(sample))
      frame = gst_buffer_copy_deep(gst_sample_get_buffer(sample));
    if (sample) gst_sample_unref(sample);
    gst_object_unref(sink);
    if (!frame) error = "the sink prerolled without a frame";
  }
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
  return frame;
}

// axpreprocess's input tensor for `frame` (of `caps`) through `launch` (ending in axpreprocess).
std::vector<int8_t> tensor_through(const std::string &launch, const std::string &caps,
                                   GstBuffer *frame) {
  GstHarness *h = gst_harness_new_parse(launch.c_str());
  gst_harness_set_src_caps_str(h, caps.c_str());
  std::vector<int8_t> tensor;
  if (gst_harness_push(h, gst_buffer_ref(frame)) == GST_FLOW_OK) {
    GstBuffer *out = gst_harness_pull(h);
    GstAxTensorMeta *meta =
        out ? gst_buffer_get_ax_tensor_meta(out, GST_AX_TENSOR_INPUT, nullptr, -1) : nullptr;
    if (meta) tensor = axtest::buffer_bytes(meta->tensors);
    if (out) gst_buffer_unref(out);
  }
  gst_harness_teardown(h);
  return tensor;
}

// The formats a frame is compared in; the first is the 4:2:0 reference.
const char *const kComparedFormats[] = {"I420", "NV12", "YUY2", "UYVY"};
// 720p: its default colorimetry is BT.709, so a YUY2 path ignoring the caps (reading BT.601, the
// library's default) would show.
constexpr const char *kI420Caps = "video/x-raw,format=I420,width=1280,height=720,framerate=10/1";
constexpr const char *kAyuvCaps = "video/x-raw,format=AYUV,width=1280,height=720,framerate=10/1";

// One frame through `videoconvert ! format ! axpreprocess` for each compared format, whole
// frame letterboxed and a 32x32 crop at 1:1 (no resize to hide a pixel's error), checked by
// `check(format, tensor, I420's tensor, launch)`.
template <typename Check>
void compare_formats(GstBuffer *frame, const char *caps, const char *convert,
                     const std::string &model, Check &&check) {
  for (const char *crop : {"", "crop=600,300,32,32 "}) {
    std::vector<int8_t> reference;
    for (const char *format : kComparedFormats) {
      const std::string launch = std::string(convert) + " ! video/x-raw,format=" + format +
                                 " ! axpreprocess " + crop + "model=\"" + model + "\"";
      const std::vector<int8_t> tensor = tensor_through(launch, caps, frame);
      ASSERT_FALSE(tensor.empty()) << launch;
      if (reference.empty()) reference = tensor;
      ASSERT_EQ(tensor.size(), reference.size());
      check(format, tensor, reference, launch);
    }
  }
}

// One I420 frame as I420, NV12, YUY2 and UYVY (videoconvert with chroma-mode=none copies each
// 4:2:0 chroma row into both of its rows of 4:2:2, nothing interpolated): the same picture, so
// bit-identical tensors. A swapped U/V, the YUY2/UYVY byte order, a wrong range or matrix all
// change them.
void expect_identical_tensors(GstBuffer *i420_frame, const std::string &model) {
  compare_formats(i420_frame, kI420Caps, "videoconvert dither=none chroma-mode=none", model,
                  [](const char *format, const std::vector<int8_t> &tensor,
                     const std::vector<int8_t> &i420, const std::string &launch) {
                    const axtest::TensorDifference d = axtest::tensor_difference(tensor, i420);
                    std::printf("%s vs I420 from an I420 frame: worst %d\n", format, d.worst);
                    EXPECT_EQ(d.worst, 0) << launch;
                  });
}

// One 4:4:4 frame subsampled by videoconvert to 4:2:0 (I420, NV12) and 4:2:2 (YUY2, UYVY):
// UYVY's tensor is YUY2's, bit for bit; the others differ from I420's by what chroma
// subsampling explains alone (videoconvert's own NV12 and I420 paths site the 4:2:0 chroma
// differently, up to 7 levels at colour edges of a vtest.avi frame), within the caller's bounds.
void expect_subsampling_differences(GstBuffer *ayuv_frame, const std::string &model,
                                    double mean_bound, int worst_bound) {
  std::vector<int8_t> yuy2;
  compare_formats(ayuv_frame, kAyuvCaps, "videoconvert dither=none", model,
                  [&](const char *format, const std::vector<int8_t> &tensor,
                      const std::vector<int8_t> &i420, const std::string &launch) {
                    if (std::string(format) == "YUY2") yuy2 = tensor;
                    if (std::string(format) == "UYVY") {
                      EXPECT_EQ(axtest::tensor_difference(tensor, yuy2).worst, 0) << launch;
                    }
                    const axtest::TensorDifference d = axtest::tensor_difference(tensor, i420);
                    std::printf("%s vs I420 from a 4:4:4 frame: worst %d, mean %.4f levels\n",
                                format, d.worst, d.mean);
                    EXPECT_LE(d.mean, mean_bound) << launch;
                    EXPECT_LE(d.worst, worst_bound) << launch;
                  });
}

// The first frame of `source` ! caps, taken as I420 (its four forms give the same tensor) and as
// 4:4:4 AYUV (they differ by what 4:2:2 and 4:2:0 subsampling lose).
void expect_the_forms_agree(const std::string &source, const std::string &model) {
  for (const char *caps : {kI420Caps, kAyuvCaps}) {
    std::string error;
    GstBuffer *frame = first_frame(source + " ! " + caps, error);
    ASSERT_NE(frame, nullptr) << error;
    if (caps == kI420Caps)
      expect_identical_tensors(frame, model);
    else
      expect_subsampling_differences(frame, model, 0.5, 8);
    gst_buffer_unref(frame);
  }
}

TEST(AxPreprocessPackedYuv, VideotestsrcFrameGivesTheTensorOfItsI420AndNv12Forms) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  expect_the_forms_agree("videotestsrc num-buffers=1 pattern=smpte", model);
}

TEST(AxPreprocessPackedYuv, RealVideoFrameGivesTheTensorOfItsI420AndNv12Forms) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  const gchar *cache = g_getenv("AXSTREAM_CACHE");
  const std::string video =
      (cache ? std::string(cache) : std::string(g_get_home_dir()) + "/.cache/axstream") +
      "/opencv-doc/usr/share/doc/opencv-doc/examples/data/vtest.avi";
  if (!g_file_test(video.c_str(), G_FILE_TEST_EXISTS))
    GTEST_SKIP() << video << " is absent (scripts/setup.sh fetches it)";
  // A frame of vtest.avi (768x576) scaled to 1280x720.
  expect_the_forms_agree(
      "filesrc location=\"" + video + "\" ! decodebin ! videoconvert ! videoscale", model);
}

}  // namespace
