// axmetapublish: JSON Lines records from ROI metas, through GstHarness, and the record writer.
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "axstream/gst/axresultmeta.h"
#include "gst_test_util.h"
#include "json_lines.h"

const auto *gst_environment = ::testing::AddGlobalTestEnvironment(new axtest::GstEnvironment);

namespace {

using axtest::read_file;

GstBuffer *frame_with_face(GstClockTime pts) {
  GstBuffer *buffer = gst_buffer_new_allocate(nullptr, 64 * 48 * 4, nullptr);
  GST_BUFFER_PTS(buffer) = pts;
  GstVideoRegionOfInterestMeta *roi =
      gst_buffer_add_video_region_of_interest_meta(buffer, "face", 10, 12, 20, 22);
  roi->parent_id = -1;  // top level, as axdecode marks whole-frame detections
  GValue keypoints = G_VALUE_INIT;
  gst_value_array_init(&keypoints, 2);
  for (double v : {15.5, 17.25}) {
    GValue number = G_VALUE_INIT;
    g_value_init(&number, G_TYPE_DOUBLE);
    g_value_set_double(&number, v);
    gst_value_array_append_and_take_value(&keypoints, &number);
  }
  GstStructure *params =
      gst_structure_new("ax-detection", "label", G_TYPE_STRING, "face", "confidence", G_TYPE_DOUBLE,
                        0.875, "class-id", G_TYPE_INT, 0, nullptr);
  gst_structure_take_value(params, "keypoints", &keypoints);
  gst_video_region_of_interest_meta_add_param(roi, params);
  return buffer;
}

}  // namespace

TEST(JsonLines, EscapesStringsAndWritesNullForNonFiniteNumbers) {
  axstream::publish::PublishedFrame frame;
  frame.frame = 3;
  axstream::publish::PublishedObject object;
  object.label = "a \"quoted\"\nlabel";
  object.score = std::numeric_limits<double>::quiet_NaN();
  frame.objects.push_back(object);
  std::string line = axstream::publish::to_json_line(frame);
  EXPECT_NE(line.find("\"label\":\"a \\\"quoted\\\"\\nlabel\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"score\":null"), std::string::npos) << line;
  EXPECT_NE(line.find("\"pts\":null"), std::string::npos) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

// An application's ROI type (any GQuark string) or a label that is not UTF-8 made the whole
// line invalid JSON for strict readers; the ill-formed bytes are now U+FFFD.
TEST(JsonLines, LabelsThatAreNotUtf8AreReplacedSoTheLineStaysUtf8) {
  axstream::publish::PublishedFrame frame;
  axstream::publish::PublishedObject object;
  object.label = "caf\xe9";
  object.text = std::string("\xc3\xa9t\xc3");
  frame.objects.push_back(object);
  const std::string line = axstream::publish::to_json_line(frame);
  EXPECT_NE(line.find("\"label\":\"caf\xef\xbf\xbd\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"text\":\"\xc3\xa9t\xef\xbf\xbd\""), std::string::npos) << line;
}

TEST(JsonLines, UnknownScoreIsNullAndAScoreOfZeroIsZero) {
  axstream::publish::PublishedFrame frame;
  axstream::publish::PublishedObject unknown, zero;
  zero.score = 0.0;
  frame.objects = {unknown, zero};
  const std::string line = axstream::publish::to_json_line(frame);
  EXPECT_NE(line.find("\"objects\":[{\"label\":\"\",\"class_id\":-1,\"score\":null,"),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("},{\"label\":\"\",\"class_id\":-1,\"score\":0,"), std::string::npos) << line;
}

// A score of 0 is a real score; a ROI without one (an application's ROI with no confidence, a
// typed detection meta with none, i.e. negative) is written as null (docs/metadata-schema.md),
// not as a 0 a reader would take for a real one.
TEST(AxMetaPublish, WritesNullForAnUnknownScoreAndZeroForAScoreOfZero) {
  axtest::TempFile output("axmetapublish");
  GstHarness *h = gst_harness_new_parse(("axmetapublish location=" + output.path()).c_str());
  gst_harness_set_src_caps_str(h, "video/x-raw,format=BGRx,width=64,height=48,framerate=30/1");
  GstBuffer *frame = gst_buffer_new_allocate(nullptr, 64 * 48 * 4, nullptr);
  GST_BUFFER_PTS(frame) = 0;
  auto add_roi = [frame](int x) {
    GstVideoRegionOfInterestMeta *roi =
        gst_buffer_add_video_region_of_interest_meta(frame, "face", x, 1, 2, 2);
    roi->id = x / 10;  // GStreamer leaves every id 0; the typed metas are keyed by it
    roi->parent_id = -1;
    return roi;
  };
  // 0: ax-detection with confidence 0. 1: ax-detection without confidence. 2: no values at all.
  // 3: only a typed meta with score 0. 4: only a typed meta with no score (negative).
  gst_video_region_of_interest_meta_add_param(
      add_roi(0), gst_structure_new(GST_AX_DETECTION_PARAM, "confidence", G_TYPE_DOUBLE, 0.0,
                                    "class-id", G_TYPE_INT, 0, nullptr));
  gst_video_region_of_interest_meta_add_param(
      add_roi(10), gst_structure_new(GST_AX_DETECTION_PARAM, "class-id", G_TYPE_INT, 1, nullptr));
  add_roi(20);
  gst_buffer_obtain_ax_detection_meta(frame, add_roi(30)->id)->score = 0.0;
  gst_buffer_obtain_ax_detection_meta(frame, add_roi(40)->id)->class_id = 2;
  ASSERT_EQ(gst_harness_push(h, frame), GST_FLOW_OK);
  gst_buffer_unref(gst_harness_pull(h));
  gst_harness_teardown(h);
  EXPECT_EQ(read_file(output.path()),
            "{\"frame\":0,\"pts\":0,\"stream_id\":0,\"width\":64,\"height\":48,\"objects\":["
            "{\"label\":\"face\",\"class_id\":0,\"score\":0,\"box\":[0,1,2,2],\"roi_id\":0},"
            "{\"label\":\"face\",\"class_id\":1,\"score\":null,\"box\":[10,1,2,2],\"roi_id\":1},"
            "{\"label\":\"face\",\"class_id\":-1,\"score\":null,\"box\":[20,1,2,2],\"roi_id\":2},"
            "{\"label\":\"face\",\"class_id\":-1,\"score\":0,\"box\":[30,1,2,2],\"roi_id\":3},"
            "{\"label\":\"face\",\"class_id\":2,\"score\":null,\"box\":[40,1,2,2],\"roi_id\":4}"
            "]}\n");
}

TEST(AxMetaPublish, WritesOneLinePerFrameWithEveryObjectField) {
  axtest::TempFile output("axmetapublish");
  GstHarness *h =
      gst_harness_new_parse(("axmetapublish location=" + output.path() + " stream-id=7").c_str());
  gst_harness_set_src_caps_str(h, "video/x-raw,format=BGRx,width=64,height=48,framerate=30/1");
  ASSERT_EQ(gst_harness_push(h, frame_with_face(0)), GST_FLOW_OK);
  ASSERT_EQ(gst_harness_push(h, gst_buffer_new_allocate(nullptr, 64 * 48 * 4, nullptr)),
            GST_FLOW_OK);
  // Frames pass through with their metas.
  GstBuffer *out = gst_harness_pull(h);
  ASSERT_NE(out, nullptr);
  EXPECT_NE(gst_buffer_get_video_region_of_interest_meta(out), nullptr);
  gst_buffer_unref(out);
  gst_buffer_unref(gst_harness_pull(h));
  gst_harness_teardown(h);

  std::string text = read_file(output.path());
  std::string first = text.substr(0, text.find('\n'));
  std::string second = text.substr(text.find('\n') + 1);
  EXPECT_EQ(first,
            "{\"frame\":0,\"pts\":0,\"stream_id\":7,\"width\":64,\"height\":48,\"objects\":"
            "[{\"label\":\"face\",\"class_id\":0,\"score\":0.875,\"box\":[10,12,20,22],"
            "\"keypoints\":[[15.5,17.25]],\"roi_id\":0}]}");
  EXPECT_EQ(second,
            "{\"frame\":1,\"pts\":null,\"stream_id\":7,\"width\":64,\"height\":48,"
            "\"objects\":[]}\n");
}

TEST(AxMetaPublish, WritesTheClassesOfTheFrameAndOfEachObject) {
  axtest::TempFile output("axmetapublish");
  GstHarness *h = gst_harness_new_parse(("axmetapublish location=" + output.path()).c_str());
  gst_harness_set_src_caps_str(h, "video/x-raw,format=BGRx,width=64,height=48,framerate=30/1");
  GstBuffer *frame = frame_with_face(0);
  const gint frame_ids[] = {7, 2};
  const gfloat frame_scores[] = {0.75f, 0.125f};
  const gchar *const frame_labels[] = {"cat", "dog", nullptr};
  gst_buffer_add_ax_classification_meta(frame, -1, "pkg", 2, frame_ids, frame_scores, frame_labels);
  const gint face_ids[] = {1};
  const gfloat face_scores[] = {0.5f};
  gst_buffer_add_ax_classification_meta(frame, 0, "pkg", 1, face_ids, face_scores, nullptr);
  ASSERT_EQ(gst_harness_push(h, frame), GST_FLOW_OK);
  gst_buffer_unref(gst_harness_pull(h));
  gst_harness_teardown(h);
  EXPECT_EQ(read_file(output.path()),
            "{\"frame\":0,\"pts\":0,\"stream_id\":0,\"width\":64,\"height\":48,\"objects\":"
            "[{\"label\":\"face\",\"class_id\":0,\"score\":0.875,\"box\":[10,12,20,22],"
            "\"keypoints\":[[15.5,17.25]],\"classes\":[{\"class_id\":1,\"score\":0.5}],"
            "\"roi_id\":0}],\"classes\":[{\"class_id\":7,\"label\":\"cat\",\"score\":0.75},"
            "{\"class_id\":2,\"label\":\"dog\",\"score\":0.125}]}\n");
}

// Frame skipping: a frame axpreprocess skipped says so, and a tracker's predicted object too,
// so a reader tells them from a frame where the detector ran and found nothing.
TEST(AxMetaPublish, MarksSkippedFramesAndPredictedObjects) {
  axtest::TempFile output("axmetapublish");
  GstHarness *h = gst_harness_new_parse(("axmetapublish location=" + output.path()).c_str());
  gst_harness_set_src_caps_str(h, "video/x-raw,format=BGRx,width=64,height=48,framerate=30/1");
  GstBuffer *frame = gst_buffer_new_allocate(nullptr, 64 * 48 * 4, nullptr);
  GST_BUFFER_PTS(frame) = 0;
  gst_buffer_add_ax_inference_skipped_meta(frame, "pkg", FALSE, 2);
  GstVideoRegionOfInterestMeta *roi =
      gst_buffer_add_video_region_of_interest_meta(frame, "face", 10, 12, 20, 22);
  roi->parent_id = -1;  // top level, as axtracker marks predicted objects
  gst_video_region_of_interest_meta_add_param(
      roi, gst_structure_new(GST_AX_DETECTION_PARAM, "label", G_TYPE_STRING, "face", "confidence",
                             G_TYPE_DOUBLE, 0.5, "class-id", G_TYPE_INT, 0, "track-id",
                             G_TYPE_INT64, gint64(4), "predicted", G_TYPE_BOOLEAN, TRUE, nullptr));
  ASSERT_EQ(gst_harness_push(h, frame), GST_FLOW_OK);
  gst_buffer_unref(gst_harness_pull(h));
  gst_harness_teardown(h);
  EXPECT_EQ(read_file(output.path()),
            "{\"frame\":0,\"pts\":0,\"stream_id\":0,\"width\":64,\"height\":48,\"objects\":"
            "[{\"label\":\"face\",\"class_id\":0,\"score\":0.5,\"box\":[10,12,20,22],"
            "\"track_id\":4,\"predicted\":true,\"roi_id\":0}],\"inference_skipped\":true}\n");
}

// A closed reader gives the write EPIPE: an element error, not SIGPIPE killing the process.
TEST(AxMetaPublish, SocketReaderGoingAwayIsAnErrorNamingTheSocketNotACrash) {
  const std::string path = ::testing::TempDir() + "axmetapublish-" + std::to_string(getpid());
  unlink(path.c_str());
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  ASSERT_LT(path.size(), sizeof address.sun_path);
  path.copy(address.sun_path, path.size());
  const int listener = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr *>(&address), sizeof address), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  GstElement *publish = gst_element_factory_make("axmetapublish", nullptr);
  g_object_set(publish, "socket-path", path.c_str(), nullptr);
  axtest::BusWatch bus(publish);
  GstHarness *h = gst_harness_new_with_element(publish, "sink", "src");
  gst_harness_set_src_caps_str(h, "video/x-raw,format=BGRx,width=64,height=48,framerate=30/1");
  const int reader = accept(listener, nullptr, nullptr);
  ASSERT_GE(reader, 0);
  close(reader);
  close(listener);
  GstFlowReturn ret = GST_FLOW_OK;
  for (int i = 0; i < 10 && ret == GST_FLOW_OK; ++i) ret = gst_harness_push(h, frame_with_face(i));
  EXPECT_EQ(ret, GST_FLOW_ERROR);
  const std::string error = bus.error();
  EXPECT_NE(error.find("Could not write results to " + path), std::string::npos) << error;
  gst_harness_teardown(h);
  unlink(path.c_str());
}

// The reason is in the message itself: gst-launch-1.0 shows the debug text (where it was) only
// after it, and an application showing error->message alone had no reason at all.
TEST(AxMetaPublish, UnwritableLocationIsAnErrorNamingTheFileAndWhy) {
  GstElement *publish = gst_element_factory_make("axmetapublish", nullptr);
  ASSERT_NE(publish, nullptr);
  g_object_set(publish, "location", "/nonexistent-dir/x.jsonl", nullptr);
  const std::string error = axtest::error_when_started(publish);
  EXPECT_NE(error.find("\"/nonexistent-dir/x.jsonl\" for writing: No such file or directory"),
            std::string::npos)
      << error;
}
