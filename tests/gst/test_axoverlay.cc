// axoverlay through GstHarness: boxes, labels, keypoints and frame-level classes land as pixels
// where the metas say, in every supported format, and nowhere else.
#include <gst/check/gstharness.h>
#include <gst/controller/gstdirectcontrolbinding.h>
#include <gst/controller/gstinterpolationcontrolsource.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "axstream/gst/axresultmeta.h"
#include "axstream/overlay/overlay.h"
#include "gst_test_util.h"

namespace {

constexpr int kWidth = 64, kHeight = 48;

struct Yuv {
  int y, u, v;
};
// BT.601 limited range of the default colours, worked out once by hand:
// green (0,255,0): Y 16 + 0.504*255 = 144.5, U 128 - 0.291*255 = 53.8, V 128 - 0.368*255 = 34.2.
constexpr Yuv kGreenYuv = {145, 54, 34};
// black background: Y 16, U = V = 128.
constexpr Yuv kBlackYuv = {16, 128, 128};

class Overlay : public ::testing::TestWithParam<const char *> {
 protected:
  void SetUp() override { start(kWidth, kHeight); }
  void start(int width, int height) {
    gst_init(nullptr, nullptr);
    harness_ = gst_harness_new("axoverlay");
    ASSERT_NE(harness_, nullptr) << "axoverlay not found; GST_PLUGIN_PATH must name the build's "
                                    "gst/elements";
    const std::string caps = std::string("video/x-raw,format=") + GetParam() +
                             ",width=" + std::to_string(width) +
                             ",height=" + std::to_string(height) + ",framerate=30/1";
    gst_harness_set_src_caps_str(harness_, caps.c_str());
    GstCaps *parsed = gst_caps_from_string(caps.c_str());
    ASSERT_TRUE(gst_video_info_from_caps(&info_, parsed));
    gst_caps_unref(parsed);
  }
  void TearDown() override {
    if (harness_) gst_harness_teardown(harness_);
  }

  // A black frame of the format.
  GstBuffer *black_frame() {
    GstBuffer *buffer = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(&info_), nullptr);
    GstVideoFrame frame;
    EXPECT_TRUE(gst_video_frame_map(&frame, &info_, buffer, GST_MAP_WRITE));
    const bool yuv = GST_VIDEO_INFO_IS_YUV(&info_);
    if (packed_422()) {
      // Y0 U Y1 V (YUY2) or U Y0 V Y1 (UYVY): luma 16 at the luma bytes, chroma 128 elsewhere.
      auto *data = static_cast<guint8 *>(GST_VIDEO_FRAME_PLANE_DATA(&frame, 0));
      const int stride = GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0);
      const int luma_parity = GST_VIDEO_INFO_FORMAT(&info_) == GST_VIDEO_FORMAT_YUY2 ? 0 : 1;
      for (int i = 0; i < stride * GST_VIDEO_INFO_HEIGHT(&info_); ++i)
        data[i] = (i % stride) % 2 == luma_parity ? kBlackYuv.y : 128;
      gst_video_frame_unmap(&frame);
      return buffer;
    }
    for (guint p = 0; p < GST_VIDEO_FRAME_N_PLANES(&frame); ++p) {
      auto *data = static_cast<guint8 *>(GST_VIDEO_FRAME_PLANE_DATA(&frame, p));
      const int rows = GST_VIDEO_FRAME_COMP_HEIGHT(&frame, p);
      memset(data, yuv ? (p == 0 ? kBlackYuv.y : 128) : 0,
             GST_VIDEO_FRAME_PLANE_STRIDE(&frame, p) * rows);
    }
    gst_video_frame_unmap(&frame);
    return buffer;
  }

  GstBuffer *push_pull(GstBuffer *buffer) {
    EXPECT_EQ(gst_harness_push(harness_, buffer), GST_FLOW_OK);
    return gst_harness_pull(harness_);
  }

  // Colour at frame pixel (x, y): RGB for RGB formats, YUV (chroma of its 2x2 block, or of its
  // pixel pair for YUY2/UYVY) else.
  std::array<int, 3> pixel(GstBuffer *buffer, int x, int y) {
    GstVideoFrame frame;
    EXPECT_TRUE(gst_video_frame_map(&frame, &info_, buffer, GST_MAP_READ));
    std::array<int, 3> colour{};
    if (GST_VIDEO_INFO_IS_YUV(&info_)) {
      auto at = [&](int plane, int px, int py, int pixel_stride, int offset) {
        auto *data = static_cast<guint8 *>(GST_VIDEO_FRAME_PLANE_DATA(&frame, plane));
        return int(
            data[py * GST_VIDEO_FRAME_PLANE_STRIDE(&frame, plane) + px * pixel_stride + offset]);
      };
      colour[0] = at(0, x, y, 1, 0);
      if (packed_422()) {
        // The pixel pair's macropixel: YUY2 Y0 U Y1 V, UYVY U Y0 V Y1.
        const bool yuy2 = GST_VIDEO_INFO_FORMAT(&info_) == GST_VIDEO_FORMAT_YUY2;
        colour[0] = at(0, x, y, 2, yuy2 ? 0 : 1);
        colour[1] = at(0, x / 2, y, 4, yuy2 ? 1 : 0);
        colour[2] = at(0, x / 2, y, 4, yuy2 ? 3 : 2);
      } else if (GST_VIDEO_INFO_FORMAT(&info_) == GST_VIDEO_FORMAT_NV12) {
        colour[1] = at(1, x / 2, y / 2, 2, 0);
        colour[2] = at(1, x / 2, y / 2, 2, 1);
      } else {
        colour[1] = at(1, x / 2, y / 2, 1, 0);
        colour[2] = at(2, x / 2, y / 2, 1, 0);
      }
    } else {
      auto *data = static_cast<guint8 *>(GST_VIDEO_FRAME_PLANE_DATA(&frame, 0));
      const guint8 *p = data + y * GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0) +
                        x * GST_VIDEO_FRAME_COMP_PSTRIDE(&frame, 0);
      colour = {p[GST_VIDEO_INFO_COMP_POFFSET(&info_, GST_VIDEO_COMP_R)],
                p[GST_VIDEO_INFO_COMP_POFFSET(&info_, GST_VIDEO_COMP_G)],
                p[GST_VIDEO_INFO_COMP_POFFSET(&info_, GST_VIDEO_COMP_B)]};
    }
    gst_video_frame_unmap(&frame);
    return colour;
  }

  std::array<int, 3> green() const {
    if (GST_VIDEO_INFO_IS_YUV(&info_)) return {kGreenYuv.y, kGreenYuv.u, kGreenYuv.v};
    return {0, 255, 0};
  }
  std::array<int, 3> black() const {
    if (GST_VIDEO_INFO_IS_YUV(&info_)) return {kBlackYuv.y, kBlackYuv.u, kBlackYuv.v};
    return {0, 0, 0};
  }
  bool yuv() const { return GST_VIDEO_INFO_IS_YUV(&info_); }
  bool packed_422() const {
    return GST_VIDEO_INFO_FORMAT(&info_) == GST_VIDEO_FORMAT_YUY2 ||
           GST_VIDEO_INFO_FORMAT(&info_) == GST_VIDEO_FORMAT_UYVY;
  }

  GstHarness *harness_ = nullptr;
  GstVideoInfo info_;
};

GstVideoRegionOfInterestMeta *add_face(GstBuffer *buffer, guint x, guint y, guint w, guint h,
                                       std::initializer_list<double> keypoints = {}) {
  GstVideoRegionOfInterestMeta *roi =
      gst_buffer_add_video_region_of_interest_meta(buffer, "face", x, y, w, h);
  GValue array = G_VALUE_INIT;
  gst_value_array_init(&array, keypoints.size());
  for (double k : keypoints) {
    GValue v = G_VALUE_INIT;
    g_value_init(&v, G_TYPE_DOUBLE);
    g_value_set_double(&v, k);
    gst_value_array_append_and_take_value(&array, &v);
  }
  GstStructure *params =
      gst_structure_new(GST_AX_DETECTION_PARAM, "label", G_TYPE_STRING, "face", "confidence",
                        G_TYPE_DOUBLE, 0.9, "class-id", G_TYPE_INT, 0, nullptr);
  gst_structure_take_value(params, "keypoints", &array);
  gst_video_region_of_interest_meta_add_param(roi, params);
  return roi;
}

}  // namespace

TEST_P(Overlay, DrawsTheBoxEdgesInTheBoxColourAndLeavesTheRestAlone) {
  g_object_set(gst_harness_find_element(harness_, "axoverlay"), "draw-labels", FALSE, nullptr);
  gst_object_unref(gst_harness_find_element(harness_, "axoverlay"));
  GstBuffer *in = black_frame();
  add_face(in, 10, 8, 30, 20);  // edges x 10 and 39, y 8 and 27
  GstBuffer *out = push_pull(in);
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(pixel(out, 10, 18), green()) << "left edge";
  EXPECT_EQ(pixel(out, 39, 18), green()) << "right edge";
  EXPECT_EQ(pixel(out, 24, 8), green()) << "top edge";
  EXPECT_EQ(pixel(out, 24, 27), green()) << "bottom edge";
  EXPECT_EQ(pixel(out, 24, 18), black()) << "inside the box";
  EXPECT_EQ(pixel(out, 54, 40), black()) << "outside the box";
  EXPECT_EQ(pixel(out, 24, 2), black()) << "above the box, labels off";
  gst_buffer_unref(out);
}

TEST_P(Overlay, DrawsTheLabelBackgroundAboveTheBox) {
  GstBuffer *in = black_frame();
  add_face(in, 10, 30, 40, 12);
  GstBuffer *out = push_pull(in);
  // The label "face 0.90" sits on a box-coloured background right above the top edge.
  int green_pixels = 0;
  for (int y = 18; y < 29; ++y)
    for (int x = 10; x < 50; ++x) green_pixels += pixel(out, x, y)[0] == green()[0];
  EXPECT_GT(green_pixels, 40);
  EXPECT_EQ(pixel(out, 30, 36), black()) << "inside the box";
  gst_buffer_unref(out);
}

TEST_P(Overlay, DrawsKeypointsInTheKeypointColour) {
  GstElement *overlay = gst_harness_find_element(harness_, "axoverlay");
  g_object_set(overlay, "draw-labels", FALSE, "keypoint-color", 0xffffffu, nullptr);
  gst_object_unref(overlay);
  GstBuffer *in = black_frame();
  add_face(in, 10, 10, 30, 30, {20.0, 20.0, 30.0, 24.0});
  GstBuffer *out = push_pull(in);
  const int white_luma = yuv() ? 235 : 255;
  EXPECT_EQ(pixel(out, 20, 20)[0], white_luma);
  EXPECT_EQ(pixel(out, 30, 24)[0], white_luma);
  EXPECT_EQ(pixel(out, 25, 32), black()) << "between the keypoints";
  gst_buffer_unref(out);

  overlay = gst_harness_find_element(harness_, "axoverlay");
  g_object_set(overlay, "draw-keypoints", FALSE, nullptr);
  gst_object_unref(overlay);
  in = black_frame();
  add_face(in, 10, 10, 30, 30, {20.0, 20.0});
  out = push_pull(in);
  EXPECT_EQ(pixel(out, 20, 20), black()) << "draw-keypoints=false";
  gst_buffer_unref(out);
}

TEST_P(Overlay, WritesTheWholeFrameClassInTheTopLeftCorner) {
  GstElement *overlay = gst_harness_find_element(harness_, "axoverlay");
  g_object_set(overlay, "text-color", 0xffffffu, nullptr);
  gst_object_unref(overlay);
  GstBuffer *in = black_frame();
  const gint ids[] = {3};
  const gfloat scores[] = {0.75f};
  const gchar *labels[] = {"owl", nullptr};
  gst_buffer_add_ax_classification_meta(in, -1, nullptr, 1, ids, scores, labels);
  GstBuffer *out = push_pull(in);
  int lit = 0;
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 48; ++x) lit += pixel(out, x, y)[0] > black()[0] + 40;
  EXPECT_GT(lit, 20) << "text pixels of 'owl 0.75'";
  EXPECT_EQ(pixel(out, 40, 40), black());
  gst_buffer_unref(out);
}

TEST_P(Overlay, PassesFramesWithoutResultsUnchanged) {
  GstBuffer *out = push_pull(black_frame());
  for (int y = 0; y < kHeight; y += 7)
    for (int x = 0; x < kWidth; x += 5) ASSERT_EQ(pixel(out, x, y), black()) << x << "," << y;
  gst_buffer_unref(out);
}

// ROIs from an application (a negative width read as unsigned, a box of another frame size) may
// reach billions of pixels beyond the frame: only what lies inside is drawn, at once (OpenCV
// walked such a box's whole edges, seconds a frame, and the corner beyond int came out at
// INT_MIN, so the top edge ran left of the box), and a keypoint at NaN is left out.
TEST_P(Overlay, RoisReachingFarBeyondTheFrameDrawOnlyWhatIsInside) {
  GstElement *overlay = gst_harness_find_element(harness_, "axoverlay");
  g_object_set(overlay, "draw-labels", FALSE, "keypoint-color", 0xffffffu, nullptr);
  gst_object_unref(overlay);
  GstBuffer *in = black_frame();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  add_face(in, 10, 10, G_MAXUINT, G_MAXUINT, {nan, 20.0, 30.0, 24.0, 1e300, -1e300});
  const gint64 started = g_get_monotonic_time();
  GstBuffer *out = push_pull(in);
  const double seconds = (g_get_monotonic_time() - started) / 1e6;
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(pixel(out, 20, 10), green()) << "top edge";
  EXPECT_EQ(pixel(out, 10, 30), green()) << "left edge";
  EXPECT_EQ(pixel(out, 4, 10), black()) << "left of the box, on its top edge's row";
  EXPECT_EQ(pixel(out, 10, 4), black()) << "above the box, on its left edge's column";
  EXPECT_EQ(pixel(out, 30, 24)[0], yuv() ? 235 : 255) << "the finite keypoint";
  EXPECT_EQ(pixel(out, 50, 40), black()) << "inside the box";
  EXPECT_LT(seconds, 0.5) << "one frame with one box";
  gst_buffer_unref(out);

  // A box (and its label) starting beyond the right edge leaves the frame untouched.
  overlay = gst_harness_find_element(harness_, "axoverlay");
  g_object_set(overlay, "draw-labels", TRUE, nullptr);
  gst_object_unref(overlay);
  in = black_frame();
  add_face(in, G_MAXUINT - 300, 10, 1000, 10);
  add_face(in, 10, G_MAXUINT - 300, 10, 1000);
  out = push_pull(in);
  for (int y = 0; y < kHeight; ++y)
    for (int x = 0; x < kWidth; ++x) ASSERT_EQ(pixel(out, x, y), black()) << x << "," << y;
  gst_buffer_unref(out);
}

// The properties are flagged controllable (gst-inspect: "controllable"): a control binding sets
// them from each frame's stream time, as a GStreamer application animating an overlay expects.
TEST_P(Overlay, ControlBindingSetsThePropertiesFromEachFramesStreamTime) {
  GstElement *overlay = gst_harness_find_element(harness_, "axoverlay");
  g_object_set(overlay, "draw-labels", FALSE, nullptr);
  GstControlSource *source = gst_interpolation_control_source_new();
  g_object_set(source, "mode", GST_INTERPOLATION_MODE_NONE, nullptr);
  // Black boxes until one second, the default green from then on.
  gst_timed_value_control_source_set(GST_TIMED_VALUE_CONTROL_SOURCE(source), 0, 0.0);
  gst_timed_value_control_source_set(GST_TIMED_VALUE_CONTROL_SOURCE(source), GST_SECOND,
                                     double(0x00ff00));
  ASSERT_TRUE(gst_object_add_control_binding(
      GST_OBJECT(overlay),
      gst_direct_control_binding_new_absolute(GST_OBJECT(overlay), "box-color", source)));
  gst_object_unref(source);
  gst_object_unref(overlay);
  for (GstClockTime pts : std::vector<GstClockTime>{0, GST_SECOND}) {
    GstBuffer *in = black_frame();
    GST_BUFFER_PTS(in) = pts;
    add_face(in, 10, 10, 30, 20);
    GstBuffer *out = push_pull(in);
    ASSERT_NE(out, nullptr);
    EXPECT_EQ(pixel(out, 20, 10), pts == 0 ? black() : green())
        << "top edge of the box at pts " << pts;
    gst_buffer_unref(out);
  }
}

INSTANTIATE_TEST_SUITE_P(EveryFormat, Overlay,
                         ::testing::Values("RGB", "BGR", "RGBx", "BGRx", "xRGB", "xBGR", "RGBA",
                                           "BGRA", "NV12", "I420", "YUY2", "UYVY"));

// Odd-sized frames: NV12/I420 chroma planes are ceil(w/2) x ceil(h/2), YUY2/UYVY rows ceil(w/2)
// macropixels (the last one's second luma is padding); a box on the last column and row colours
// the chroma samples covering them, and nothing is written outside the planes.
class OverlayOddSize : public Overlay {
 protected:
  void SetUp() override { start(65, 49); }
};

TEST_P(OverlayOddSize, DrawsBoxEdgesOnTheLastColumnAndRow) {
  g_object_set(gst_harness_find_element(harness_, "axoverlay"), "draw-labels", FALSE, nullptr);
  gst_object_unref(gst_harness_find_element(harness_, "axoverlay"));
  GstBuffer *in = black_frame();
  add_face(in, 40, 30, 25, 19);  // edges x 40 and 64, y 30 and 48: the last column and row
  GstBuffer *out = push_pull(in);
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(pixel(out, 64, 40), green()) << "right edge, the last column";
  EXPECT_EQ(pixel(out, 50, 48), green()) << "bottom edge, the last row";
  EXPECT_EQ(pixel(out, 64, 48), green()) << "the last pixel";
  EXPECT_EQ(pixel(out, 52, 38), black()) << "inside the box";
  EXPECT_EQ(pixel(out, 10, 10), black()) << "outside the box";
  gst_buffer_unref(out);
}

INSTANTIATE_TEST_SUITE_P(SubsampledAndPacked, OverlayOddSize,
                         ::testing::Values("NV12", "I420", "YUY2", "UYVY", "RGB"));

// A frame cropped by GstVideoCropMeta (videocrop attaches it when the sink takes it): the caps
// give the visible 36x30 region at 20,10 of a 64x48 frame laid out by GstVideoMeta, and the
// results are in the region's coordinates, so a box at 5,5 lands at 25,15 of the whole frame
// (before: at 5,5, off the visible region).
class OverlayCropMeta : public Overlay {
 protected:
  void SetUp() override { start(36, 30); }
};

TEST_P(OverlayCropMeta, DrawsInTheVisibleRegionsCoordinates) {
  g_object_set(gst_harness_find_element(harness_, "axoverlay"), "draw-labels", FALSE, nullptr);
  gst_object_unref(gst_harness_find_element(harness_, "axoverlay"));
  GstVideoInfo whole;
  gst_video_info_set_format(&whole, GST_VIDEO_INFO_FORMAT(&info_), 64, 48);
  GstBuffer *in = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(&whole), nullptr);
  GstVideoFrame frame;
  ASSERT_TRUE(gst_video_frame_map(&frame, &whole, in, GST_MAP_WRITE));
  for (guint p = 0; p < GST_VIDEO_FRAME_N_PLANES(&frame); ++p)
    memset(GST_VIDEO_FRAME_PLANE_DATA(&frame, p), yuv() ? (p == 0 ? kBlackYuv.y : 128) : 0,
           GST_VIDEO_FRAME_PLANE_STRIDE(&frame, p) * GST_VIDEO_FRAME_COMP_HEIGHT(&frame, p));
  if (packed_422()) {  // YUY2: chroma 128 at the odd bytes
    auto *data = static_cast<guint8 *>(GST_VIDEO_FRAME_PLANE_DATA(&frame, 0));
    for (int i = 1; i < GST_VIDEO_FRAME_PLANE_STRIDE(&frame, 0) * 48; i += 2) data[i] = 128;
  }
  gst_video_frame_unmap(&frame);
  gst_buffer_add_video_meta_full(in, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_INFO_FORMAT(&whole), 64,
                                 48, GST_VIDEO_INFO_N_PLANES(&whole), whole.offset, whole.stride);
  GstVideoCropMeta *crop = gst_buffer_add_video_crop_meta(in);
  crop->x = 20;
  crop->y = 10;
  crop->width = 36;
  crop->height = 30;
  add_face(in, 5, 5, 10, 10);
  GstBuffer *out = push_pull(in);
  ASSERT_NE(out, nullptr);
  // pixel() maps the whole frame (GstVideoMeta): whole-frame coordinates.
  EXPECT_EQ(pixel(out, 30, 15), green()) << "top edge, 25..34 at row 15";
  EXPECT_EQ(pixel(out, 25, 20), green()) << "left edge";
  EXPECT_EQ(pixel(out, 10, 5), black()) << "where the box is in the region's coordinates";
  EXPECT_EQ(pixel(out, 30, 20), black()) << "inside the box";
  gst_buffer_unref(out);
}

INSTANTIATE_TEST_SUITE_P(SubsampledAndPacked, OverlayCropMeta,
                         ::testing::Values("RGB", "BGRx", "NV12", "I420", "YUY2"));

// videocrop attaches GstVideoCropMeta at its left edge as given; on YUY2/UYVY an odd x starts
// inside a pixel pair, where axoverlay wrote its U into the pair's V and its V into the next
// pair's U (boxes of the wrong colour, without a word). It no longer offers the meta upstream for
// those formats (videocrop copies instead) and refuses a frame that comes with one anyway.
TEST(OverlayCropMetaPixelPairs, CropMetaSplittingAPixelPairIsNotOfferedAndRefused) {
  gst_init(nullptr, nullptr);
  for (const char *format : {"YUY2", "UYVY"})
    EXPECT_FALSE(axtest::offers_crop_meta(gst_element_factory_make("axoverlay", nullptr),
                                          axtest::video_caps(format, 36, 30)))
        << format;
  EXPECT_TRUE(axtest::offers_crop_meta(gst_element_factory_make("axoverlay", nullptr),
                                       axtest::video_caps("I420", 36, 30)));

  GstBuffer *frame = axtest::cropped_frame(GST_VIDEO_FORMAT_UYVY, 21, 10, 36, 30);
  add_face(frame, 5, 5, 10, 10);
  const std::string error = axtest::error_of_push(gst_element_factory_make("axoverlay", nullptr),
                                                  axtest::video_caps("UYVY", 36, 30), frame);
  EXPECT_NE(error.find("axoverlay cannot draw on the frame's crop: GstVideoCropMeta x 21 on a "
                       "UYVY frame splits a pixel pair (its U and V belong to pixels 20 and 21): "
                       "expected an even x"),
            std::string::npos)
      << error;
}

// A cascade's classes on each object: a 320x64 RGB frame, wide enough for the whole label, with
// one face whose classifiers' results are attached as axdecode decoder=classification attaches
// them; the drawn frame must equal the overlay library drawing the expected text itself.
class OverlayClasses : public ::testing::Test {
 protected:
  static constexpr int kWide = 320, kHigh = 64;
  void SetUp() override {
    gst_init(nullptr, nullptr);
    harness_ = gst_harness_new("axoverlay");
    ASSERT_NE(harness_, nullptr) << "axoverlay not found; GST_PLUGIN_PATH must name the build's "
                                    "gst/elements";
    gst_video_info_set_format(&info_, GST_VIDEO_FORMAT_RGB, kWide, kHigh);
    GstCaps *caps = gst_video_info_to_caps(&info_);
    gst_harness_set_src_caps(harness_, caps);
  }
  void TearDown() override {
    if (harness_) gst_harness_teardown(harness_);
  }

  // A black frame with a "face 0.90" ROI (id 0) at (10, 30) 60x20.
  GstBuffer *frame_with_face() {
    GstBuffer *buffer = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(&info_), nullptr);
    gst_buffer_memset(buffer, 0, 0, GST_VIDEO_INFO_SIZE(&info_));
    GstVideoRegionOfInterestMeta *roi = add_face(buffer, 10, 30, 60, 20);
    roi->id = 0;
    return buffer;
  }

  // One classifier's result for ROI `roi_id` (label nullptr: a model without labels), as
  // axdecode writes it: a GstAxClassificationMeta and, with `as_param`, an ax-classification
  // param on the ROI.
  static void classify(GstBuffer *buffer, gint roi_id, const char *label, gint class_id,
                       float score, bool as_param = true) {
    const gchar *const labels[] = {label ? label : "", nullptr};
    gst_buffer_add_ax_classification_meta(buffer, roi_id, nullptr, 1, &class_id, &score, labels);
    if (!as_param) return;
    GValue label_array = G_VALUE_INIT, id_array = G_VALUE_INIT, score_array = G_VALUE_INIT;
    GValue v = G_VALUE_INIT;
    gst_value_array_init(&label_array, 1);
    g_value_init(&v, G_TYPE_STRING);
    g_value_set_string(&v, labels[0]);
    gst_value_array_append_and_take_value(&label_array, &v);
    gst_value_array_init(&id_array, 1);
    g_value_init(&v, G_TYPE_INT);
    g_value_set_int(&v, class_id);
    gst_value_array_append_and_take_value(&id_array, &v);
    gst_value_array_init(&score_array, 1);
    g_value_init(&v, G_TYPE_DOUBLE);
    g_value_set_double(&v, score);
    gst_value_array_append_and_take_value(&score_array, &v);
    GstStructure *params = gst_structure_new_empty(GST_AX_CLASSIFICATION_PARAM);
    gst_structure_take_value(params, "labels", &label_array);
    gst_structure_take_value(params, "class-ids", &id_array);
    gst_structure_take_value(params, "scores", &score_array);
    GstVideoRegionOfInterestMeta *roi = gst_buffer_get_video_region_of_interest_meta(buffer);
    gst_video_region_of_interest_meta_add_param(roi, params);
  }

  std::vector<uint8_t> drawn(GstBuffer *in) {
    EXPECT_EQ(gst_harness_push(harness_, in), GST_FLOW_OK);
    GstBuffer *out = gst_harness_pull(harness_);
    std::vector<uint8_t> bytes;
    if (!out) return bytes;
    GstMapInfo map;
    EXPECT_TRUE(gst_buffer_map(out, &map, GST_MAP_READ));
    bytes.assign(map.data, map.data + map.size);
    gst_buffer_unmap(out, &map);
    gst_buffer_unref(out);
    return bytes;
  }

  // What the overlay library draws for the face box with `text` (the element's default style);
  // with an empty box only the text, at the top-left corner.
  std::vector<uint8_t> expected(const std::string &text, bool box = true) {
    std::vector<uint8_t> bytes(GST_VIDEO_INFO_SIZE(&info_), 0);
    axstream::overlay::FrameView view;
    view.format = axstream::overlay::PixelFormat::RGB;
    view.width = kWide;
    view.height = kHigh;
    view.planes[0] = bytes.data();
    view.strides[0] = GST_VIDEO_INFO_PLANE_STRIDE(&info_, 0);
    axstream::overlay::OverlayObject object;
    object.text = text;
    if (box) {
      object.x = 10;
      object.y = 30;
      object.width = 60;
      object.height = 20;
    }
    axstream::overlay::draw_objects(view, {object}, axstream::overlay::OverlayStyle{});
    return bytes;
  }

  GstHarness *harness_ = nullptr;
  GstVideoInfo info_;
};

TEST_F(OverlayClasses, AppendsEachClassifiersBestClassToTheObjectsLabel) {
  GstBuffer *in = frame_with_face();
  classify(in, 0, "smiling", 1, 0.81f);
  classify(in, 0, nullptr, 4, 0.62f);      // a classifier without labels: its class id
  classify(in, 7, "cat", 2, 0.5f, false);  // another object's class stays off this one
  const std::vector<uint8_t> out = drawn(in);
  EXPECT_EQ(out, expected("face 0.90 | smiling 0.81 | class 4 0.62"));
  EXPECT_NE(out, expected("face 0.90")) << "the classes must change the drawn label";
}

TEST_F(OverlayClasses, ReadsTheTypedMetasWhenTheParamsAreGone) {
  // As after videoscale or videoconvert, which drop the ROI's params but copy the typed metas.
  GstBuffer *in = frame_with_face();
  classify(in, 0, "smiling", 1, 0.81f, false);
  classify(in, 0, "glasses", 3, 0.5f, false);
  EXPECT_EQ(drawn(in), expected("face 0.90 | smiling 0.81 | glasses 0.50"));
}

TEST_F(OverlayClasses, DrawClassesFalseDrawsTheDetectionLabelOnly) {
  GstElement *overlay = gst_harness_find_element(harness_, "axoverlay");
  g_object_set(overlay, "draw-classes", FALSE, nullptr);
  gst_object_unref(overlay);
  GstBuffer *in = frame_with_face();
  classify(in, 0, "smiling", 1, 0.81f);
  EXPECT_EQ(drawn(in), expected("face 0.90"));
}

TEST_F(OverlayClasses, JoinsTheWholeFrameClassifiersInTheCorner) {
  GstBuffer *in = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(&info_), nullptr);
  gst_buffer_memset(in, 0, 0, GST_VIDEO_INFO_SIZE(&info_));
  classify(in, -1, "owl", 3, 0.75f, false);
  classify(in, -1, "night", 0, 0.5f, false);
  EXPECT_EQ(drawn(in), expected("owl 0.75 | night 0.50", false));
}

// A monochrome camera's GRAY8 (v4l2src on an IR or industrial camera), which axpreprocess takes,
// drawn without a videoconvert (refused before): each colour's full-range BT.601 luma, here the
// green box 0.587 * 255 = 150 on the edges of an odd-sized frame, the rest untouched.
TEST(OverlayGray, DrawsTheBoxInTheColoursLumaOnGray8Frames) {
  gst_init(nullptr, nullptr);
  GstHarness *harness = gst_harness_new("axoverlay");
  ASSERT_NE(harness, nullptr);
  GstElement *overlay = gst_harness_find_element(harness, "axoverlay");
  g_object_set(overlay, "draw-labels", FALSE, nullptr);
  gst_object_unref(overlay);
  gst_harness_set_src_caps_str(harness,
                               "video/x-raw,format=GRAY8,width=65,height=49,framerate=30/1");
  GstVideoInfo info;
  gst_video_info_set_format(&info, GST_VIDEO_FORMAT_GRAY8, 65, 49);
  GstBuffer *in = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(&info), nullptr);
  gst_buffer_memset(in, 0, 7, GST_VIDEO_INFO_SIZE(&info));
  add_face(in, 40, 30, 25, 19);  // right edge on the last column, bottom edge on the last row
  ASSERT_EQ(gst_harness_push(harness, in), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull(harness);
  ASSERT_NE(out, nullptr);
  const std::vector<uint8_t> bytes = axtest::buffer_bytes<uint8_t>(out);
  const int stride = GST_VIDEO_INFO_PLANE_STRIDE(&info, 0);
  EXPECT_EQ(int(bytes[30 * stride + 50]), 150) << "top edge";
  EXPECT_EQ(int(bytes[40 * stride + 64]), 150) << "right edge, the last column";
  EXPECT_EQ(int(bytes[48 * stride + 50]), 150) << "bottom edge, the last row";
  EXPECT_EQ(int(bytes[38 * stride + 52]), 7) << "inside the box";
  EXPECT_EQ(int(bytes[10 * stride + 10]), 7) << "outside the box";
  gst_buffer_unref(out);
  gst_harness_teardown(harness);
}

TEST(OverlayCaps, RefusesFormatsItCannotDrawOn) {
  gst_init(nullptr, nullptr);
  GstHarness *harness = gst_harness_new("axoverlay");
  ASSERT_NE(harness, nullptr);
  // YVYU: packed 4:2:2 with V first (YUY2 and UYVY it draws on).
  GstCaps *caps = gst_caps_from_string("video/x-raw,format=YVYU,width=64,height=48");
  GstPad *sink = gst_element_get_static_pad(harness->element, "sink");
  EXPECT_FALSE(gst_pad_query_accept_caps(sink, caps));
  caps = gst_caps_make_writable(caps);
  gst_caps_set_simple(caps, "format", G_TYPE_STRING, "NV12", nullptr);
  EXPECT_TRUE(gst_pad_query_accept_caps(sink, caps));
  gst_object_unref(sink);
  gst_caps_unref(caps);
  gst_harness_teardown(harness);
}

// YUY2/UYVY drawn by the overlay library bit for bit as drawing on the frame's I420 form and
// repeating each chroma row (the 4:2:0 -> 4:2:2 conversion that loses nothing when row pairs
// share their chroma, as these frames' do): the same BT.601 colours, chroma shared by the pixel
// pair (and, as I420 draws it, the row pair). Boxes, labels (anti-aliased text), keypoints,
// a whole-frame class and an object reaching beyond the frame, on even and odd sizes.
struct PackedCase {
  const char *format;
  int width, height;
};

class OverlayPacked422 : public ::testing::TestWithParam<PackedCase> {};

TEST_P(OverlayPacked422, DrawsAsOnI420ThenRepeatingEachChromaRow) {
  using namespace axstream::overlay;
  const PackedCase c = GetParam();
  const bool yuy2 = std::string(c.format) == "YUY2";
  const int luma_offset = yuy2 ? 0 : 1, u_offset = yuy2 ? 1 : 0, v_offset = yuy2 ? 3 : 2;
  const int chroma_w = (c.width + 1) / 2, chroma_h = (c.height + 1) / 2;
  const int stride = (chroma_w * 4 + 3) / 4 * 4;  // GStreamer's: 4-byte aligned rows
  // Random luma; random chroma per 2x2 block, so row pairs share it.
  std::mt19937 rng(c.width * 1000 + c.height);
  std::vector<uint8_t> y_plane(c.width * c.height), u_plane(chroma_w * chroma_h),
      v_plane(chroma_w * chroma_h);
  for (auto &b : y_plane) b = uint8_t(rng());
  for (auto &b : u_plane) b = uint8_t(rng());
  for (auto &b : v_plane) b = uint8_t(rng());
  std::vector<uint8_t> packed(stride * c.height, 0);
  auto to_packed = [&](std::vector<uint8_t> &out) {
    for (int y = 0; y < c.height; ++y)
      for (int x = 0; x < c.width; ++x) {
        out[y * stride + 2 * x + luma_offset] = y_plane[y * c.width + x];
        out[y * stride + 4 * (x / 2) + u_offset] = u_plane[(y / 2) * chroma_w + x / 2];
        out[y * stride + 4 * (x / 2) + v_offset] = v_plane[(y / 2) * chroma_w + x / 2];
      }
  };
  to_packed(packed);
  const std::vector<uint8_t> before = packed;

  OverlayObject face;
  face.x = 3;
  face.y = 5;
  face.width = float(c.width) * 0.6f;
  face.height = float(c.height) * 0.5f;
  face.text = "face 0.93";
  face.keypoints = {{float(c.width) * 0.3f, float(c.height) * 0.4f}, {1.5f, 2.5f}};
  OverlayObject beyond;  // reaching past the right and bottom edges
  beyond.x = float(c.width) * 0.7f;
  beyond.y = float(c.height) * 0.6f;
  beyond.width = 1e6f;
  beyond.height = 1e6f;
  beyond.text = "car 0.50";
  OverlayObject frame_class;  // whole-frame text only
  frame_class.text = "owl 0.75";
  OverlayObject lower;  // alone: only the band of rows it reaches is redrawn
  lower.x = float(c.width) * 0.2f;
  lower.y = float(c.height) * 0.55f + 1;
  lower.width = float(c.width) * 0.5f;
  lower.height = float(c.height) * 0.3f;
  lower.text = "dog 0.61";
  lower.keypoints = {{float(c.width) * 0.4f, float(c.height) * 0.7f}};
  for (const std::vector<OverlayObject> &objects :
       {std::vector<OverlayObject>{face, beyond, frame_class}, std::vector<OverlayObject>{lower}}) {
    OverlayStyle style;
    style.thickness = 3;
    style.font_scale = 0.4;

    FrameView i420;
    i420.format = PixelFormat::I420;
    i420.width = c.width;
    i420.height = c.height;
    i420.planes[0] = y_plane.data();
    i420.planes[1] = u_plane.data();
    i420.planes[2] = v_plane.data();
    i420.strides[0] = c.width;
    i420.strides[1] = i420.strides[2] = chroma_w;
    draw_objects(i420, objects, style);
    std::vector<uint8_t> expected(stride * c.height, 0);
    to_packed(expected);

    FrameView view;
    view.format = pixel_format_from_name(c.format);
    view.width = c.width;
    view.height = c.height;
    view.planes[0] = packed.data();
    view.strides[0] = stride;
    draw_objects(view, objects, style);
    EXPECT_NE(packed, before) << "nothing drawn";
    for (int y = 0; y < c.height; ++y)
      for (int x = 0; x < chroma_w * 4; ++x) {
        // The odd width's last macropixel's second luma is padding: neither writes it.
        if (c.width % 2 && x / 4 == chroma_w - 1 && x % 4 == (yuy2 ? 2 : 3)) continue;
        ASSERT_EQ(int(packed[y * stride + x]), int(expected[y * stride + x]))
            << c.format << " " << c.width << "x" << c.height << " row " << y << " byte " << x
            << ", " << objects.size() << " objects";
      }
  }
}

INSTANTIATE_TEST_SUITE_P(EvenAndOddSizes, OverlayPacked422,
                         ::testing::Values(PackedCase{"YUY2", 64, 48}, PackedCase{"UYVY", 64, 48},
                                           PackedCase{"YUY2", 65, 49}, PackedCase{"UYVY", 65, 49},
                                           PackedCase{"YUY2", 97, 31}, PackedCase{"UYVY", 1, 1},
                                           PackedCase{"YUY2", 64, 200}, PackedCase{"UYVY", 33, 151},
                                           PackedCase{"YUY2", 3, 2}),
                         [](const ::testing::TestParamInfo<PackedCase> &info) {
                           return std::string(info.param.format) + "_" +
                                  std::to_string(info.param.width) + "x" +
                                  std::to_string(info.param.height);
                         });

namespace {

std::vector<uint8_t> random_bytes(size_t size, unsigned seed) {
  std::vector<uint8_t> bytes(size);
  std::mt19937 rng(seed);
  for (auto &b : bytes) b = uint8_t(rng());
  return bytes;
}

// A 10x6 box at (8, 4), one pixel thick, drawn on a packed 4:2:2 frame.
void draw_small_box(std::vector<uint8_t> &packed, axstream::overlay::PixelFormat format, int width,
                    int height, int stride) {
  using namespace axstream::overlay;
  OverlayObject box;
  box.x = 8;
  box.y = 4;
  box.width = 10;
  box.height = 6;
  OverlayStyle style;
  style.thickness = 1;
  FrameView view;
  view.format = format;
  view.width = width;
  view.height = height;
  view.planes[0] = packed.data();
  view.strides[0] = stride;
  draw_objects(view, {box}, style);
}

}  // namespace

// A pixel pair whose rows do not share their chroma keeps both rows' own chroma where nothing is
// drawn, and gets the drawn colour in both rows where something is.
TEST(OverlayPacked422Rows, KeepsEachRowsChromaWhereNothingIsDrawn) {
  using namespace axstream::overlay;
  constexpr int kW = 32, kH = 16, kStride = kW * 2;
  std::vector<uint8_t> packed = random_bytes(kStride * kH, 7);
  const std::vector<uint8_t> before = packed;
  draw_small_box(packed, PixelFormat::YUY2, kW, kH, kStride);
  // Row 13, far below the box: untouched, chroma and luma.
  for (int x = 0; x < kStride; ++x) EXPECT_EQ(packed[13 * kStride + x], before[13 * kStride + x]);
  // The top edge (row 4) and its pair row 5 at pixel 12: the box's chroma in both rows.
  const int u = 12 / 2 * 4 + 1;
  EXPECT_EQ(packed[4 * kStride + u], 54) << "green's U, BT.601";
  EXPECT_EQ(packed[5 * kStride + u], 54) << "the row pair shares the drawn chroma";
  EXPECT_EQ(packed[4 * kStride + u + 2], 34) << "green's V";
  EXPECT_EQ(packed[5 * kStride + u + 2], 34);
}

// The same on an odd width, YUY2 and UYVY: the last macropixel (one pixel and a padding byte) is
// joined apart from the rest of the row; where nothing is drawn it keeps every byte of every row.
TEST(OverlayPacked422Rows, OddWidthKeepsTheLastPairsBytesWhereNothingIsDrawn) {
  using namespace axstream::overlay;
  constexpr int kW = 33, kH = 16, kStride = (kW + 1) / 2 * 4;
  for (PixelFormat format : {PixelFormat::YUY2, PixelFormat::UYVY}) {
    std::vector<uint8_t> packed = random_bytes(kStride * kH, 11);
    const std::vector<uint8_t> before = packed;
    draw_small_box(packed, format, kW, kH, kStride);
    bool drew = false;
    for (int y = 0; y < kH; ++y) {
      for (int x = kStride - 4; x < kStride; ++x)
        EXPECT_EQ(packed[y * kStride + x], before[y * kStride + x])
            << (format == PixelFormat::YUY2 ? "YUY2" : "UYVY") << " row " << y << " byte " << x;
      drew = drew || !std::equal(packed.begin() + y * kStride, packed.begin() + (y + 1) * kStride,
                                 before.begin() + y * kStride);
    }
    EXPECT_TRUE(drew) << "the box was drawn";
  }
}
