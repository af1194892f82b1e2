/**
 * SECTION:element-axfpscounter
 * @title: axfpscounter
 *
 * Counts frames passing through and reports frames per second every `interval` seconds and at
 * EOS, on stdout (unless `silent`) and as an element message "axfpscounter" on the bus (fields
 * stream-id, frames, fps, average-fps, final (TRUE for the report at EOS), latency-ms: the mean
 * time from the buffer's running time to its arrival here over the frames that arrived at or
 * after it, -1 when none did: no clock, not PLAYING (a prerolled frame), or a non-live source
 * whose frames run ahead of the clock until the sink waits). Frames pass through untouched.
 * At EOS it also logs (category axfpscounter, INFO, silent or not) "stream N: F frames in S s
 * (first buffer to end of stream)", the stream's own time.
 *
 * |[
 * D=~/.cache/axstream/opencv-doc/usr/share/doc/opencv-doc/examples/data
 * gst-launch-1.0 filesrc location=$D/vtest.avi ! decodebin ! axfpscounter interval=1 ! fakesink
 * ]|
 */
#include "gstaxfpscounter.h"

#include <cstdio>

#include "ax_field_properties.h"

GST_DEBUG_CATEGORY_STATIC(gst_ax_fps_counter_debug);
#define GST_CAT_DEFAULT gst_ax_fps_counter_debug

#define DEFAULT_PROP_INTERVAL 1.0
#define DEFAULT_PROP_SILENT FALSE
#define DEFAULT_PROP_STREAM_ID 0u

enum { PROP_0, PROP_INTERVAL, PROP_SILENT, PROP_STREAM_ID, PROP_FRAMES, PROP_AVERAGE_FPS };

struct _GstAxFpsCounter {
  GstBaseTransform parent;
  gdouble interval;
  gboolean silent;
  guint stream_id;
  // Counters, guarded by the object lock (the properties are read from other threads).
  guint64 frames;
  guint64 frames_at_report;
  gint64 first_time_us;
  gint64 report_time_us;
  // When the stream ended (EOS), 0 while it runs: average-fps stops there, as the final report
  // does, instead of falling the longer the application waits before reading it.
  gint64 end_time_us;
  gdouble latency_sum_ms;
  guint64 latency_count;
};

G_DEFINE_TYPE(GstAxFpsCounter, gst_ax_fps_counter, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE(axfpscounter, "axfpscounter", GST_RANK_NONE, GST_TYPE_AX_FPS_COUNTER);

// The properties kept as fields of the instance (ax_field_properties.h).
static constexpr axstream::gst::FieldProperty<GstAxFpsCounter> kFieldProperties[] = {
    {PROP_INTERVAL, &GstAxFpsCounter::interval},
    {PROP_SILENT, &GstAxFpsCounter::silent},
    {PROP_STREAM_ID, &GstAxFpsCounter::stream_id},
};

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);
static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

static void report(GstAxFpsCounter *self, gint64 now_us, gboolean final) {
  GST_OBJECT_LOCK(self);
  double window_s = (now_us - self->report_time_us) / 1e6;
  double total_s = (now_us - self->first_time_us) / 1e6;
  guint64 window_frames = self->frames - self->frames_at_report;
  double fps = window_s > 0 ? window_frames / window_s : 0.0;
  double average = total_s > 0 ? self->frames / total_s : 0.0;
  double latency = self->latency_count ? self->latency_sum_ms / self->latency_count : -1.0;
  guint64 frames = self->frames;
  const gboolean silent = self->silent;  // changeable while playing
  const guint stream_id = self->stream_id;
  self->frames_at_report = self->frames;
  self->report_time_us = now_us;
  if (final) self->end_time_us = now_us;
  self->latency_sum_ms = 0;
  self->latency_count = 0;
  GST_OBJECT_UNLOCK(self);

  // The stream's own time, also with silent=TRUE: multistream.sh divides each stream's frames by
  // it (the whole run's time made a stream that ended early look slower).
  if (final)
    GST_INFO_OBJECT(self,
                    "stream %u: %" G_GUINT64_FORMAT
                    " frames in %.6f s (first buffer to end of stream), average %.1f fps",
                    stream_id, frames, total_s, average);

  if (!silent) {
    if (latency >= 0)
      g_print("%s: stream %u: %" G_GUINT64_FORMAT
              " frames, %.1f fps, average %.1f fps, "
              "latency %.2f ms%s\n",
              GST_OBJECT_NAME(self), stream_id, frames, fps, average, latency,
              final ? " (end of stream)" : "");
    else
      g_print("%s: stream %u: %" G_GUINT64_FORMAT " frames, %.1f fps, average %.1f fps%s\n",
              GST_OBJECT_NAME(self), stream_id, frames, fps, average,
              final ? " (end of stream)" : "");
  }
  GstStructure *s = gst_structure_new(
      "axfpscounter", "stream-id", G_TYPE_UINT, stream_id, "frames", G_TYPE_UINT64, frames, "fps",
      G_TYPE_DOUBLE, fps, "average-fps", G_TYPE_DOUBLE, average, "latency-ms", G_TYPE_DOUBLE,
      latency, "final", G_TYPE_BOOLEAN, final, nullptr);
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_element(GST_OBJECT(self), s));
}

static gboolean gst_ax_fps_counter_start(GstBaseTransform *trans) {
  auto *self = GST_AX_FPS_COUNTER(trans);
  GST_OBJECT_LOCK(self);
  self->frames = self->frames_at_report = 0;
  self->first_time_us = self->report_time_us = self->end_time_us = 0;
  self->latency_sum_ms = 0;
  self->latency_count = 0;
  GST_OBJECT_UNLOCK(self);
  return TRUE;
}

static GstFlowReturn gst_ax_fps_counter_transform_ip(GstBaseTransform *trans, GstBuffer *buffer) {
  auto *self = GST_AX_FPS_COUNTER(trans);
  gint64 now_us = g_get_monotonic_time();

  // Latency: how far behind its running time the buffer arrives here.
  GstClockTime running_time =
      gst_segment_to_running_time(&trans->segment, GST_FORMAT_TIME, GST_BUFFER_PTS(buffer));
  // Only while PLAYING: going to PLAYING, a pipeline hands out its clock before each element's
  // base time, and a non-live sink releases its prerolled frame before upstream elements change
  // state, so a frame can pass here with a clock but the base time of an earlier run (or 0).
  GST_OBJECT_LOCK(self);
  const bool playing = GST_STATE(self) == GST_STATE_PLAYING;
  GST_OBJECT_UNLOCK(self);
  GstClock *clock = playing ? gst_element_get_clock(GST_ELEMENT(self)) : nullptr;
  double latency_ms = -1;
  if (clock && GST_CLOCK_TIME_IS_VALID(running_time)) {
    GstClockTime now = gst_clock_get_time(clock) - gst_element_get_base_time(GST_ELEMENT(self));
    if (now >= running_time) latency_ms = (now - running_time) / 1e6;
  }
  if (clock) gst_object_unref(clock);

  GST_OBJECT_LOCK(self);
  if (self->frames == 0) self->first_time_us = self->report_time_us = now_us;
  self->end_time_us = 0;  // frames after an EOS (a seek back): the stream runs again
  ++self->frames;
  if (latency_ms >= 0) {
    self->latency_sum_ms += latency_ms;
    ++self->latency_count;
  }
  bool due = (now_us - self->report_time_us) >= self->interval * 1e6 && self->interval > 0;
  GST_OBJECT_UNLOCK(self);
  if (due) report(self, now_us, FALSE);
  return GST_FLOW_OK;
}

static gboolean gst_ax_fps_counter_sink_event(GstBaseTransform *trans, GstEvent *event) {
  auto *self = GST_AX_FPS_COUNTER(trans);
  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS && self->frames > 0)
    report(self, g_get_monotonic_time(), TRUE);
  return GST_BASE_TRANSFORM_CLASS(gst_ax_fps_counter_parent_class)->sink_event(trans, event);
}

static void gst_ax_fps_counter_get_property(GObject *object, guint prop_id, GValue *value,
                                            GParamSpec *pspec) {
  auto *self = GST_AX_FPS_COUNTER(object);
  switch (prop_id) {
    case PROP_FRAMES:
      GST_OBJECT_LOCK(self);
      g_value_set_uint64(value, self->frames);
      GST_OBJECT_UNLOCK(self);
      break;
    case PROP_AVERAGE_FPS: {
      GST_OBJECT_LOCK(self);
      const gint64 until_us = self->end_time_us ? self->end_time_us : g_get_monotonic_time();
      double seconds = (until_us - self->first_time_us) / 1e6;
      g_value_set_double(value, self->frames && seconds > 0 ? self->frames / seconds : 0.0);
      GST_OBJECT_UNLOCK(self);
      break;
    }
    default: {
      GST_OBJECT_LOCK(self);
      const bool known = axstream::gst::get_field_property(self, kFieldProperties, prop_id, value);
      GST_OBJECT_UNLOCK(self);
      if (!known) G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
    }
  }
}

static void gst_ax_fps_counter_class_init(GstAxFpsCounterClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS(klass);
  gobject_class->set_property =
      axstream::gst::set_field_properties<GstAxFpsCounter, kFieldProperties>;
  gobject_class->get_property = gst_ax_fps_counter_get_property;

  // Read per frame under the object lock: each can change while playing.
  auto rw = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                     GST_PARAM_MUTABLE_PLAYING);
  auto ro = static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_property(
      gobject_class, PROP_INTERVAL,
      g_param_spec_double("interval", "Interval",
                          "Seconds between reports (0: only at end of stream)", 0.0, 3600.0,
                          DEFAULT_PROP_INTERVAL, rw));
  g_object_class_install_property(
      gobject_class, PROP_SILENT,
      g_param_spec_boolean("silent", "Silent", "Post bus messages only, print nothing",
                           DEFAULT_PROP_SILENT, rw));
  g_object_class_install_property(
      gobject_class, PROP_STREAM_ID,
      g_param_spec_uint("stream-id", "Stream id", "Stream id shown in reports", 0, G_MAXUINT,
                        DEFAULT_PROP_STREAM_ID, rw));
  g_object_class_install_property(
      gobject_class, PROP_FRAMES,
      g_param_spec_uint64("frames", "Frames", "Frames counted so far", 0, G_MAXUINT64, 0, ro));
  g_object_class_install_property(
      gobject_class, PROP_AVERAGE_FPS,
      g_param_spec_double(
          "average-fps", "Average fps",
          "Frames per second from the first frame to now, or to the end of the stream (EOS) "
          "once it ended",
          0.0, G_MAXDOUBLE, 0.0, ro));

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(element_class, "Axelera FPS counter", "Filter/Debug",
                                        "Reports frames per second per stream, and latency "
                                        "when frames meet the clock (a live source or a sink "
                                        "with sync=true; not with fakesink's default)",
                                        "axstream developers");
  trans_class->start = GST_DEBUG_FUNCPTR(gst_ax_fps_counter_start);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR(gst_ax_fps_counter_transform_ip);
  trans_class->sink_event = GST_DEBUG_FUNCPTR(gst_ax_fps_counter_sink_event);
  GST_DEBUG_CATEGORY_INIT(gst_ax_fps_counter_debug, "axfpscounter", 0, "axstream FPS counter");
}

static void gst_ax_fps_counter_init(GstAxFpsCounter *self) {
  self->interval = DEFAULT_PROP_INTERVAL;
  self->silent = DEFAULT_PROP_SILENT;
  self->stream_id = DEFAULT_PROP_STREAM_ID;
  gst_base_transform_set_passthrough(GST_BASE_TRANSFORM(self), TRUE);
}
