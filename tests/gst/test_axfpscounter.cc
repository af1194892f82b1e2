// axfpscounter: counts every frame, reports at EOS on the bus.
#include <gst/gst.h>
#include <gtest/gtest.h>

TEST(AxFpsCounter, CountsEveryFrameAndPostsAFinalReportAtEos) {
  GstElement *pipeline = gst_parse_launch(
      "videotestsrc num-buffers=25 ! video/x-raw,width=64,height=48 ! "
      "axfpscounter name=counter silent=true interval=0 stream-id=3 ! fakesink",
      nullptr);
  ASSERT_NE(pipeline, nullptr);
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  GstBus *bus = gst_element_get_bus(pipeline);
  bool got_final = false;
  for (;;) {
    GstMessage *message = gst_bus_timed_pop_filtered(
        bus, 10 * GST_SECOND,
        static_cast<GstMessageType>(GST_MESSAGE_ELEMENT | GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
    ASSERT_NE(message, nullptr) << "pipeline stalled";
    GstMessageType type = GST_MESSAGE_TYPE(message);
    if (type == GST_MESSAGE_ELEMENT) {
      const GstStructure *s = gst_message_get_structure(message);
      if (gst_structure_has_name(s, "axfpscounter")) {
        guint64 frames = 0;
        guint stream_id = 0;
        gboolean final = FALSE;
        gst_structure_get_uint64(s, "frames", &frames);
        gst_structure_get_uint(s, "stream-id", &stream_id);
        gst_structure_get_boolean(s, "final", &final);
        EXPECT_TRUE(final) << "interval=0 reports only at EOS";
        EXPECT_EQ(frames, 25u);
        EXPECT_EQ(stream_id, 3u);
        got_final = true;
      }
    }
    gst_message_unref(message);
    if (type != GST_MESSAGE_ELEMENT) {
      EXPECT_EQ(type, GST_MESSAGE_EOS);
      break;
    }
  }
  EXPECT_TRUE(got_final);
  GstElement *counter = gst_bin_get_by_name(GST_BIN(pipeline), "counter");
  guint64 frames = 0;
  g_object_get(counter, "frames", &frames, nullptr);
  EXPECT_EQ(frames, 25u);
  gst_object_unref(counter);
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pipeline);
}

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
