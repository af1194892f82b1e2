/**
 * SECTION:element-axtracker
 * @title: axtracker
 *
 * Gives detected objects stable ids across frames (SORT: a Kalman filter per track and IoU
 * association). Reads the frame's GstVideoRegionOfInterestMeta results and writes the id as
 * `track-id` into each ROI's `ax-detection` parameters; axoverlay draws it and axmetapublish
 * writes it. One tracker per element, i.e. per stream.
 *
 * With the seeded yolov5s package of docs/pipelines.md, whose heads end in the package's
 * Sigmoid, axdecode needs `activations=sigmoid`: without it the probabilities are decoded as
 * logits, all 25200 anchors pass the threshold and decoding takes the float path, ~10x slower
 * (docs/performance.md, "Detector, tracker and overlay").
 *
 * |[
 * P=$HOME/.cache/axstream/bench/pkg/yolov5s
 * gst-launch-1.0 filesrc location=vtest.avi ! decodebin ! \
 *   axpreprocess model=$P ! axinference model=$P ! \
 *   axdecode decoder=yolov5 decoder-config="activations=sigmoid" ! \
 *   axtracker max-age=30 min-hits=3 ! axoverlay ! videoconvert ! autovideosink
 * ]|
 */
#include "gstaxtracker.h"

#include <gst/video/video.h>

#include <vector>

#include "ax_field_properties.h"
#include "sort_tracker.h"

GST_DEBUG_CATEGORY_STATIC(gst_ax_tracker_debug);
#define GST_CAT_DEFAULT gst_ax_tracker_debug

#define DEFAULT_PROP_MAX_AGE 30
#define DEFAULT_PROP_MIN_HITS 3
#define DEFAULT_PROP_IOU_THRESHOLD 0.3
#define DEFAULT_PROP_PER_CLASS TRUE

enum { PROP_0, PROP_MAX_AGE, PROP_MIN_HITS, PROP_IOU_THRESHOLD, PROP_PER_CLASS };

struct GstAxTrackerState {
  axstream::tracker::SortTracker tracker;
};

struct _GstAxTracker {
  GstBaseTransform parent;
  gint max_age;
  gint min_hits;
  gdouble iou_threshold;
  gboolean per_class;
  GstAxTrackerState *state;
};

G_DEFINE_TYPE(GstAxTracker, gst_ax_tracker, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE(axtracker, "axtracker", GST_RANK_NONE, GST_TYPE_AX_TRACKER);

// The properties kept as fields of the instance (ax_field_properties.h).
static constexpr axstream::gst::FieldProperty<GstAxTracker> kFieldProperties[] = {
    {PROP_MAX_AGE, &GstAxTracker::max_age},
    {PROP_MIN_HITS, &GstAxTracker::min_hits},
    {PROP_IOU_THRESHOLD, &GstAxTracker::iou_threshold},
    {PROP_PER_CLASS, &GstAxTracker::per_class},
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS("video/x-raw(ANY)"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("video/x-raw(ANY)"));

static void reset_tracker(GstAxTracker *self) {
  axstream::tracker::TrackerConfig config;
  config.max_age = self->max_age;
  config.min_hits = self->min_hits;
  config.iou_threshold = self->iou_threshold;
  config.per_class = self->per_class;
  self->state->tracker = axstream::tracker::SortTracker(config);
}

static gboolean gst_ax_tracker_start(GstBaseTransform *trans) {
  reset_tracker(GST_AX_TRACKER(trans));
  return TRUE;
}

static gboolean gst_ax_tracker_sink_event(GstBaseTransform *trans, GstEvent *event) {
  // A new stream or a flushing seek breaks object continuity: start over.
  if (GST_EVENT_TYPE(event) == GST_EVENT_FLUSH_STOP ||
      GST_EVENT_TYPE(event) == GST_EVENT_STREAM_START)
    reset_tracker(GST_AX_TRACKER(trans));
  return GST_BASE_TRANSFORM_CLASS(gst_ax_tracker_parent_class)->sink_event(trans, event);
}

static GstFlowReturn gst_ax_tracker_transform_ip(GstBaseTransform *trans, GstBuffer *buffer) {
  auto *self = GST_AX_TRACKER(trans);
  std::vector<GstVideoRegionOfInterestMeta *> rois;
  std::vector<axstream::tracker::Detection> detections;
  gpointer iter = nullptr;
  while (GstMeta *meta = gst_buffer_iterate_meta_filtered(
             buffer, &iter, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)) {
    auto *roi = reinterpret_cast<GstVideoRegionOfInterestMeta *>(meta);
    axstream::tracker::Detection detection;
    detection.box = {double(roi->x), double(roi->y), double(roi->w), double(roi->h)};
    if (const GstStructure *params = gst_video_region_of_interest_meta_get_param(roi, "ax-detection"))
      gst_structure_get_int(params, "class-id", &detection.class_id);
    else
      detection.class_id = static_cast<int>(roi->roi_type);  // label quark stands for the class
    rois.push_back(roi);
    detections.push_back(detection);
  }
  std::vector<axstream::tracker::Assignment> assignments = self->state->tracker.update(detections);
  for (size_t i = 0; i < rois.size(); ++i) {
    if (assignments[i].track_id < 0) continue;  // not confirmed yet
    GstStructure *params = gst_video_region_of_interest_meta_get_param(rois[i], "ax-detection");
    if (!params) {
      params = gst_structure_new_empty("ax-detection");
      gst_video_region_of_interest_meta_add_param(rois[i], params);
    }
    gst_structure_set(params, "track-id", G_TYPE_INT64, gint64(assignments[i].track_id), nullptr);
  }
  return GST_FLOW_OK;
}

static void gst_ax_tracker_finalize(GObject *object) {
  delete GST_AX_TRACKER(object)->state;
  G_OBJECT_CLASS(gst_ax_tracker_parent_class)->finalize(object);
}

static void gst_ax_tracker_class_init(GstAxTrackerClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS(klass);
  gobject_class->set_property = axstream::gst::set_field_properties<GstAxTracker, kFieldProperties>;
  gobject_class->get_property = axstream::gst::get_field_properties<GstAxTracker, kFieldProperties>;
  gobject_class->finalize = gst_ax_tracker_finalize;

  auto ready_flags = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                              GST_PARAM_MUTABLE_READY);
  g_object_class_install_property(
      gobject_class, PROP_MAX_AGE,
      g_param_spec_int("max-age", "Max age",
                       "Frames a track survives without a matching detection (occlusions "
                       "shorter than this keep their id)",
                       0, G_MAXINT, DEFAULT_PROP_MAX_AGE, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_MIN_HITS,
      g_param_spec_int("min-hits", "Min hits",
                       "Matched detections before a new track's id is reported", 1, G_MAXINT,
                       DEFAULT_PROP_MIN_HITS, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_IOU_THRESHOLD,
      g_param_spec_double("iou-threshold", "IoU threshold",
                          "Minimum overlap between a track's predicted box and a detection to "
                          "match them",
                          0.0, 1.0, DEFAULT_PROP_IOU_THRESHOLD, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_PER_CLASS,
      g_param_spec_boolean("per-class", "Per class",
                           "Only match detections of the same class as the track",
                           DEFAULT_PROP_PER_CLASS, ready_flags));

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Axelera object tracker", "Filter/Analyzer/Video",
      "Gives detected objects stable track ids across frames (Kalman filter + IoU, SORT)",
      "axstream developers");
  trans_class->start = GST_DEBUG_FUNCPTR(gst_ax_tracker_start);
  trans_class->sink_event = GST_DEBUG_FUNCPTR(gst_ax_tracker_sink_event);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR(gst_ax_tracker_transform_ip);
  GST_DEBUG_CATEGORY_INIT(gst_ax_tracker_debug, "axtracker", 0, "axstream object tracker");
}

static void gst_ax_tracker_init(GstAxTracker *self) {
  self->max_age = DEFAULT_PROP_MAX_AGE;
  self->min_hits = DEFAULT_PROP_MIN_HITS;
  self->iou_threshold = DEFAULT_PROP_IOU_THRESHOLD;
  self->per_class = DEFAULT_PROP_PER_CLASS;
  self->state = new GstAxTrackerState();
  gst_base_transform_set_in_place(GST_BASE_TRANSFORM(self), TRUE);
}
