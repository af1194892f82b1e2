// GstAxDetectionMeta: the detection values (class, score, label, track id, text, predicted) that
// outlive GStreamer 1.22's videoscale and videoconvert, which drop the ROI's `ax-detection`
// parameters; the elements' one writer and reader of both (ax_detection_values.h); and
// axmetapublish, axoverlay and axtracker after those elements.
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ax_detection_values.h"
#include "axstream/gst/axresultmeta.h"
#include "gst_test_util.h"

const auto *gst_environment = ::testing::AddGlobalTestEnvironment(new axtest::GstEnvironment);

namespace {

constexpr int kWidth = 64, kHeight = 48;

using axtest::read_file;

// A black 64x48 frame (BGRx, or RGB when bytes_per_pixel is 3) with one "face" ROI (id 0) whose
// values are only in its ax-detection structure, as an application or another decoder attaches
// them; with_values false: the bare ROI.
GstBuffer *frame_with_face(int bytes_per_pixel = 4, bool with_values = true) {
  const gsize size = kWidth * kHeight * bytes_per_pixel;
  GstBuffer *buffer = gst_buffer_new_allocate(nullptr, size, nullptr);
  gst_buffer_memset(buffer, 0, 0, size);
  GST_BUFFER_PTS(buffer) = 0;
  GstVideoRegionOfInterestMeta *roi =
      gst_buffer_add_video_region_of_interest_meta(buffer, "face", 16, 20, 24, 16);
  roi->id = 0;
  roi->parent_id = -1;
  if (with_values)
    gst_video_region_of_interest_meta_add_param(
        roi,
        gst_structure_new(GST_AX_DETECTION_PARAM, "label", G_TYPE_STRING, "person", "confidence",
                          G_TYPE_DOUBLE, 0.875, "class-id", G_TYPE_INT, 3, nullptr));
  return buffer;
}

// Pushes `in` (a 64x48 frame of `format`) through `launch`; returns the one output buffer.
GstBuffer *run(const std::string &launch, GstBuffer *in, const char *format = "BGRx") {
  GstHarness *h = gst_harness_new_parse(launch.c_str());
  gst_harness_set_src_caps_str(h, axtest::video_caps(format, kWidth, kHeight).c_str());
  EXPECT_EQ(gst_harness_push(h, in), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull(h);
  gst_harness_teardown(h);
  return out;
}

GstVideoRegionOfInterestMeta *first_roi(GstBuffer *buffer) {
  return gst_buffer_get_video_region_of_interest_meta(buffer);
}

}  // namespace

TEST(DetectionMeta, CopyAndScaleTransformsKeepEveryValue) {
  GstBuffer *buffer = gst_buffer_new();
  GstAxDetectionMeta *meta = gst_buffer_obtain_ax_detection_meta(buffer, 5);
  ASSERT_NE(meta, nullptr);
  EXPECT_EQ(meta->class_id, -1);
  EXPECT_LT(meta->score, 0);
  EXPECT_EQ(meta->track_id, -1);
  EXPECT_EQ(meta->label, nullptr);
  meta->class_id = 2;
  meta->score = 0.625;
  meta->track_id = G_GINT64_CONSTANT(1) << 40;
  meta->text_confidence = 0.5;
  meta->predicted = TRUE;
  gst_ax_detection_meta_set_label(meta, "car");
  gst_ax_detection_meta_set_text(meta, "AB 123");
  EXPECT_EQ(gst_buffer_obtain_ax_detection_meta(buffer, 5), meta) << "one meta per ROI id";

  GstBuffer *copy = gst_buffer_copy(buffer);
  GstBuffer *scaled = gst_buffer_new();
  GstVideoInfo in_info, out_info;
  gst_video_info_set_format(&in_info, GST_VIDEO_FORMAT_BGRx, 64, 48);
  gst_video_info_set_format(&out_info, GST_VIDEO_FORMAT_RGB, 32, 24);
  GstVideoMetaTransform scale = {&in_info, &out_info};
  ASSERT_TRUE(meta->meta.info->transform_func(scaled, &meta->meta, buffer,
                                              gst_video_meta_transform_scale_get_quark(), &scale));
  for (GstBuffer *out : {copy, scaled}) {
    const GstAxDetectionMeta *kept = gst_buffer_get_ax_detection_meta(out, 5);
    ASSERT_NE(kept, nullptr);
    EXPECT_EQ(kept->class_id, 2);
    EXPECT_DOUBLE_EQ(kept->score, 0.625);
    EXPECT_EQ(kept->track_id, G_GINT64_CONSTANT(1) << 40);
    EXPECT_STREQ(kept->label, "car");
    EXPECT_STREQ(kept->text, "AB 123");
    EXPECT_DOUBLE_EQ(kept->text_confidence, 0.5);
    EXPECT_TRUE(kept->predicted);
    EXPECT_EQ(gst_buffer_get_ax_detection_meta(out, 4), nullptr);
  }
  gst_buffer_unref(scaled);
  gst_buffer_unref(copy);
  gst_buffer_unref(buffer);
}

TEST(DetectionValues, WriterFillsBothAndReaderFallsBackToTheMetaWithoutTheStructure) {
  GstBuffer *buffer = gst_buffer_new();
  GstVideoRegionOfInterestMeta *roi =
      gst_buffer_add_video_region_of_interest_meta(buffer, "face", 1, 2, 3, 4);
  roi->id = 9;
  axstream::gst::DetectionValues values;
  values.label = "face";
  values.confidence = 0.75;
  values.class_id = 0;
  values.track_id = 12;
  axstream::gst::write_detection(buffer, roi, values);
  const GstStructure *params = gst_video_region_of_interest_meta_get_param(roi, "ax-detection");
  ASSERT_NE(params, nullptr);
  gint64 track_id = -1;
  EXPECT_TRUE(gst_structure_get_int64(params, "track-id", &track_id));
  EXPECT_EQ(track_id, 12);
  EXPECT_STREQ(gst_structure_get_string(params, "label"), "face");
  const GstAxDetectionMeta *meta = gst_buffer_get_ax_detection_meta(buffer, 9);
  ASSERT_NE(meta, nullptr);
  EXPECT_EQ(meta->track_id, 12);
  EXPECT_DOUBLE_EQ(meta->score, 0.75);
  EXPECT_EQ(meta->class_id, 0);
  EXPECT_EQ(meta->text, nullptr);

  // The structure wins while it is there: an application may have changed it.
  gst_structure_set(gst_video_region_of_interest_meta_get_param(roi, "ax-detection"), "label",
                    G_TYPE_STRING, "edited", nullptr);
  EXPECT_EQ(axstream::gst::read_detection(buffer, roi)->label, "edited");

  // A ROI as videoscale leaves it: same id, no parameters.
  GstBuffer *scaled = gst_buffer_new();
  GstVideoRegionOfInterestMeta *bare =
      gst_buffer_add_video_region_of_interest_meta(scaled, "face", 0, 1, 1, 2);
  bare->id = 9;
  EXPECT_FALSE(axstream::gst::read_detection(scaled, bare).has_value());
  GstMetaTransformCopy whole_buffer = {FALSE, 0, static_cast<gsize>(-1)};
  ASSERT_TRUE(meta->meta.info->transform_func(scaled, const_cast<GstMeta *>(&meta->meta), buffer,
                                              g_quark_from_static_string("gst-copy"),
                                              &whole_buffer));
  const std::optional<axstream::gst::DetectionValues> read =
      axstream::gst::read_detection(scaled, bare);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->label, "face");
  EXPECT_EQ(read->confidence, 0.75);
  EXPECT_EQ(read->class_id, 0);
  EXPECT_EQ(read->track_id, 12);
  EXPECT_FALSE(read->text.has_value());
  EXPECT_FALSE(read->predicted);
  gst_buffer_unref(scaled);
  gst_buffer_unref(buffer);
}

// An application's ROI whose width is a negative number stored unsigned (x 100, width -60) reaches
// past the guint range: its DL Streamer box ended at (100 + 2^32 - 60) mod 2^32 = 40, left of
// its start, an inverted box inside the frame.
TEST(DetectionValues, DlStreamerBoxOfAnRoiPastTheGuintRangeIsNotWrappedIntoTheFrame) {
  GstBuffer *buffer = gst_buffer_new();
  GstVideoRegionOfInterestMeta *roi = gst_buffer_add_video_region_of_interest_meta(
      buffer, "face", 100, 200, static_cast<guint>(-60), static_cast<guint>(-150));
  roi->id = 0;
  axstream::gst::DetectionValues values;
  values.label = "face";
  values.confidence = 0.5;
  axstream::gst::write_detection(buffer, roi, values);
  axstream::gst::write_dlstreamer_params(roi, 640, 480);
  const std::optional<axtest::NormalisedBox> box = axtest::dlstreamer_box(roi);
  ASSERT_TRUE(box.has_value());
  EXPECT_DOUBLE_EQ(box->x_min, 100.0 / 640);
  EXPECT_DOUBLE_EQ(box->y_min, 200.0 / 480);
  EXPECT_DOUBLE_EQ(box->x_max, (100.0 + 4294967236.0) / 640);
  EXPECT_DOUBLE_EQ(box->y_max, (200.0 + 4294967146.0) / 480);
  gst_buffer_unref(buffer);
}

// axtracker writes the values into both; videoscale (and videoconvert to another format) drops
// the structure; axmetapublish still writes every value.
TEST(DetectionMeta, AxMetaPublishWritesTheValuesAfterVideoscaleAndVideoconvert) {
  const std::string scaled_line =
      "{\"frame\":0,\"pts\":0,\"stream_id\":0,\"width\":32,\"height\":24,\"objects\":"
      "[{\"label\":\"person\",\"class_id\":3,\"score\":0.875,\"box\":[8,10,12,8],"
      "\"track_id\":1,\"roi_id\":0}]}\n";
  const std::string converted_line =
      "{\"frame\":0,\"pts\":0,\"stream_id\":0,\"width\":64,\"height\":48,\"objects\":"
      "[{\"label\":\"person\",\"class_id\":3,\"score\":0.875,\"box\":[16,20,24,16],"
      "\"track_id\":1,\"roi_id\":0}]}\n";
  struct Case {
    std::string between;
    std::string expected;
  };
  for (const Case &c :
       {Case{"videoscale ! video/x-raw,width=32,height=24", scaled_line},
        Case{"videoconvert ! video/x-raw,format=RGB", converted_line},
        Case{"videoconvert ! videoscale ! video/x-raw,format=I420,width=32,height=24",
             scaled_line}}) {
    SCOPED_TRACE(c.between);
    axtest::TempFile output("axdetectionmeta");
    GstBuffer *out = run("axtracker ! " + c.between + " ! axmetapublish location=" + output.path(),
                         frame_with_face());
    ASSERT_NE(out, nullptr);
    GstVideoRegionOfInterestMeta *roi = first_roi(out);
    ASSERT_NE(roi, nullptr);
    EXPECT_EQ(gst_video_region_of_interest_meta_get_param(roi, "ax-detection"), nullptr)
        << "GStreamer now keeps the parameters: the typed meta is no longer needed here";
    gst_buffer_unref(out);
    EXPECT_EQ(read_file(output.path()), c.expected);
  }
}

// axtracker after videoscale: classes from the typed meta, and its track id written back into a
// new ax-detection structure with the other values.
TEST(DetectionMeta, AxTrackerAfterVideoscaleKeepsClassesAndRestoresTheStructure) {
  GstBuffer *in = frame_with_face();
  axstream::gst::DetectionValues values;
  values.label = "person";
  values.confidence = 0.875;
  values.class_id = 3;
  axstream::gst::write_detection(in, first_roi(in), values);
  GstBuffer *out = run("videoscale ! video/x-raw,width=32,height=24 ! axtracker", in);
  ASSERT_NE(out, nullptr);
  const GstStructure *params =
      gst_video_region_of_interest_meta_get_param(first_roi(out), "ax-detection");
  ASSERT_NE(params, nullptr);
  gint class_id = -1;
  gint64 track_id = -1;
  double confidence = 0;
  EXPECT_TRUE(gst_structure_get_int(params, "class-id", &class_id));
  EXPECT_EQ(class_id, 3);
  EXPECT_TRUE(gst_structure_get_int64(params, "track-id", &track_id));
  EXPECT_EQ(track_id, 1);
  EXPECT_TRUE(gst_structure_get_double(params, "confidence", &confidence));
  EXPECT_DOUBLE_EQ(confidence, 0.875);
  EXPECT_STREQ(gst_structure_get_string(params, "label"), "person");
  gst_buffer_unref(out);
}

// axoverlay after videoconvert to another format draws the same label ("#1 person 0.88") as on
// a frame of that format whose ROI still has its structure, not the bare ROI type.
TEST(DetectionMeta, AxOverlayDrawsTheLabelAfterVideoconvert) {
  const std::string overlay = "axoverlay";
  GstBuffer *after_convert =
      run("axtracker ! videoconvert ! video/x-raw,format=RGB ! " + overlay, frame_with_face());
  GstBuffer *with_structure = run("axtracker ! " + overlay, frame_with_face(3), "RGB");
  GstBuffer *bare = run(overlay, frame_with_face(3, false), "RGB");
  ASSERT_TRUE(after_convert && with_structure && bare);
  const std::vector<uint8_t> drawn = axtest::buffer_bytes<uint8_t>(after_convert);
  EXPECT_EQ(drawn, axtest::buffer_bytes<uint8_t>(with_structure));
  EXPECT_NE(drawn, axtest::buffer_bytes<uint8_t>(bare));
  gst_buffer_unref(after_convert);
  gst_buffer_unref(with_structure);
  gst_buffer_unref(bare);
}

namespace {

// frame_with_face(bytes_per_pixel) with its values also in the GstAxDetectionMeta, as axdecode
// writes them, and when `classified` a classification of the ROI ("cat" 0.5) as a parameter and
// a GstAxClassificationMeta, as axdecode's classification decoder writes it.
GstBuffer *decoded_face(int bytes_per_pixel, bool classified) {
  GstBuffer *buffer = frame_with_face(bytes_per_pixel);
  axstream::gst::DetectionValues values;
  values.label = "person";
  values.confidence = 0.875;
  values.class_id = 3;
  axstream::gst::write_detection(buffer, first_roi(buffer), values);
  if (!classified) return buffer;
  const gint ids[] = {7};
  const gfloat scores[] = {0.5f};
  const gchar *const labels[] = {"cat", nullptr};
  gst_buffer_add_ax_classification_meta(buffer, 0, nullptr, 1, ids, scores, labels);
  GValue label_array = G_VALUE_INIT, score_array = G_VALUE_INIT, v = G_VALUE_INIT;
  gst_value_array_init(&label_array, 1);
  gst_value_array_init(&score_array, 1);
  g_value_init(&v, G_TYPE_STRING);
  g_value_set_string(&v, "cat");
  gst_value_array_append_and_take_value(&label_array, &v);
  g_value_init(&v, G_TYPE_DOUBLE);
  g_value_set_double(&v, 0.5);
  gst_value_array_append_and_take_value(&score_array, &v);
  GstStructure *classes = gst_structure_new_empty(GST_AX_CLASSIFICATION_PARAM);
  gst_structure_take_value(classes, "labels", &label_array);
  gst_structure_take_value(classes, "scores", &score_array);
  gst_video_region_of_interest_meta_add_param(first_roi(buffer), classes);
  return buffer;
}

}  // namespace

// An object's class follows its label ("person 0.88 | cat 0.50") in axoverlay after videoconvert
// too, read from the GstAxClassificationMeta of its ROI id once the parameter is gone. The font is
// the smallest so that the whole label fits in the 64-pixel frame.
TEST(DetectionMeta, AxOverlayDrawsTheObjectsClassAfterVideoconvert) {
  const std::string overlay = "axoverlay font-scale=0.1";
  GstBuffer *after_convert =
      run("videoconvert ! video/x-raw,format=RGB ! " + overlay, decoded_face(4, true));
  GstBuffer *with_param = run(overlay, decoded_face(3, true), "RGB");
  GstBuffer *unclassified = run(overlay, decoded_face(3, false), "RGB");
  ASSERT_TRUE(after_convert && with_param && unclassified);
  const std::vector<uint8_t> drawn = axtest::buffer_bytes<uint8_t>(after_convert);
  EXPECT_EQ(drawn, axtest::buffer_bytes<uint8_t>(with_param));
  EXPECT_NE(drawn, axtest::buffer_bytes<uint8_t>(unclassified));
  gst_buffer_unref(after_convert);
  gst_buffer_unref(with_param);
  gst_buffer_unref(unclassified);
}
