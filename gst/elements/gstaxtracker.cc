/**
 * SECTION:element-axtracker
 * @title: axtracker
 *
 * Gives detected objects stable ids across frames (SORT: a Kalman filter per track and IoU
 * association). Reads the frame's GstVideoRegionOfInterestMeta results and writes the id as
 * `track-id` into each ROI's `ax-detection` parameters and its GstAxDetectionMeta `track_id`;
 * axoverlay draws it and axmetapublish writes it. After a videoscale or videoconvert (which drop
 * the parameters) it reads classes from the GstAxDetectionMeta and writes the parameters anew.
 * One tracker per element, i.e. per stream: a flushing seek or a new stream starts its tracks
 * over, and a frame size change mid-stream moves them to the new size (the same view scaled), so
 * objects keep their ids.
 *
 * Frame skipping (axpreprocess `inference-interval`): on a frame that carries the
 * `ax-inference-skipped` marker of a whole-frame model (the detector did not run on it), every
 * track moves by its Kalman filter's constant-velocity prediction, and the tracks reported on the
 * last inferred frame are attached as new ROIs at their predicted boxes (clamped to the frame),
 * with the same `track-id`, the label, class and confidence of their last detection and
 * `predicted` TRUE in `ax-detection` (no keypoints). So axoverlay draws and axmetapublish writes
 * objects on every frame. `max-age` and `min-hits` count inferred frames only: a track survives
 * max-age detector runs without a match and is reported after min-hits matched ones, whatever
 * the interval (with inference-interval=3 and min-hits=3 a new object gets its id at its third
 * detection, 6 frames after the first; the first frame's objects at once).
 *
 * With the seeded yolov5s package of docs/pipelines.md, whose heads end in the package's
 * Sigmoid, axdecode needs `activations=sigmoid`: without it the probabilities are decoded as
 * logits, all 25200 anchors pass the threshold and decoding takes the float path, ~10x slower
 * (docs/performance.md, "Detector, tracker and overlay").
 *
 * |[
 * P=$HOME/.cache/axstream/bench/pkg/yolov5s
 * D=~/.cache/axstream/opencv-doc/usr/share/doc/opencv-doc/examples/data
 * gst-launch-1.0 filesrc location=$D/vtest.avi ! decodebin ! \
 *   axpreprocess model=$P ! axinference model=$P ! \
 *   axdecode decoder=yolov5 decoder-config="activations=sigmoid" ! \
 *   axtracker max-age=30 min-hits=3 ! axoverlay ! videoconvert ! autovideosink
 * ]|
 */
#include "gstaxtracker.h"

#include <gst/video/video.h>

#include <algorithm>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "ax_detection_values.h"
#include "ax_field_properties.h"
#include "ax_refused_caps.h"
#include "axstream/gst/axresultmeta.h"
#include "sort_tracker.h"

GST_DEBUG_CATEGORY_STATIC(gst_ax_tracker_debug);
#define GST_CAT_DEFAULT gst_ax_tracker_debug

#define DEFAULT_PROP_MAX_AGE 30
#define DEFAULT_PROP_MIN_HITS 3
#define DEFAULT_PROP_IOU_THRESHOLD 0.3
#define DEFAULT_PROP_PER_CLASS TRUE

enum { PROP_0, PROP_MAX_AGE, PROP_MIN_HITS, PROP_IOU_THRESHOLD, PROP_PER_CLASS };

// What a predicted object repeats of its track's last detection.
struct TrackedObject {
  GQuark roi_type = 0;
  std::string label;
  bool has_label = false;
  double confidence = 0;
};

struct GstAxTrackerState {
  axstream::tracker::SortTracker tracker;
  // The tracks reported on the last inferred frame, by id: the objects of skipped frames.
  std::unordered_map<int64_t, TrackedObject> reported;
  gint frame_width = 0, frame_height = 0;  // from the caps; 0 when they do not say
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
  self->state->reported.clear();
}

static gboolean gst_ax_tracker_set_caps(GstBaseTransform *trans, GstCaps *incaps,
                                        GstCaps *outcaps) {
  auto *self = GST_AX_TRACKER(trans);
  GstAxTrackerState *state = self->state;
  const GstStructure *structure = gst_caps_get_structure(incaps, 0);
  gint width = 0, height = 0;
  gst_structure_get_int(structure, "width", &width);
  gst_structure_get_int(structure, "height", &height);
  // New frame size mid-stream: the tracks' boxes move to its coordinates (the detector's boxes
  // come in them now), so objects keep their ids instead of starting over.
  if (state->frame_width > 0 && state->frame_height > 0 && width > 0 && height > 0 &&
      (width != state->frame_width || height != state->frame_height)) {
    GST_INFO_OBJECT(self, "frames %dx%d -> %dx%d: tracks rescaled", state->frame_width,
                    state->frame_height, width, height);
    state->tracker.rescale(double(width) / state->frame_width,
                           double(height) / state->frame_height);
  }
  state->frame_width = width;
  state->frame_height = height;
  return TRUE;
}

// A frame the detector skipped: the tracks move by their prediction and are attached as ROIs.
static void attach_predictions(GstAxTracker *self, GstBuffer *buffer) {
  GstAxTrackerState *state = self->state;
  const double width = state->frame_width > 0 ? state->frame_width : G_MAXINT;
  const double height = state->frame_height > 0 ? state->frame_height : G_MAXINT;
  gint id = axstream::gst::next_roi_id(buffer);
  for (const axstream::tracker::PredictedTrack &track : state->tracker.predict()) {
    auto found = state->reported.find(track.track_id);
    if (found == state->reported.end()) continue;
    const TrackedObject &object = found->second;
    const double x0 = std::max(0.0, track.box.x), y0 = std::max(0.0, track.box.y);
    const double x1 = std::min(width, track.box.x + track.box.width);
    const double y1 = std::min(height, track.box.y + track.box.height);
    if (x1 <= x0 || y1 <= y0) continue;  // predicted out of the frame
    GstVideoRegionOfInterestMeta *roi = gst_buffer_add_video_region_of_interest_meta_id(
        buffer, object.roi_type, guint(x0 + 0.5), guint(y0 + 0.5), guint(x1 - x0 + 0.5),
        guint(y1 - y0 + 0.5));
    roi->id = id++;
    roi->parent_id = -1;
    axstream::gst::DetectionValues values;
    values.confidence = object.confidence;
    values.class_id = track.class_id;
    values.track_id = track.track_id;
    values.predicted = true;
    if (object.has_label) values.label = object.label;
    axstream::gst::write_detection(buffer, roi, values);
    axstream::gst::write_dlstreamer_params(roi, state->frame_width, state->frame_height);
  }
}

static gboolean gst_ax_tracker_start(GstBaseTransform *trans) {
  reset_tracker(GST_AX_TRACKER(trans));
  GST_AX_TRACKER(trans)->state->frame_width = GST_AX_TRACKER(trans)->state->frame_height = 0;
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
  if (gst_buffer_get_ax_inference_skipped(buffer, nullptr)) {
    attach_predictions(self, buffer);
    return GST_FLOW_OK;
  }
  std::vector<GstVideoRegionOfInterestMeta *> rois;
  std::vector<axstream::tracker::Detection> detections;
  gpointer iter = nullptr;
  while (GstMeta *meta = gst_buffer_iterate_meta_filtered(
             buffer, &iter, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)) {
    auto *roi = reinterpret_cast<GstVideoRegionOfInterestMeta *>(meta);
    axstream::tracker::Detection detection;
    detection.box = {double(roi->x), double(roi->y), double(roi->w), double(roi->h)};
    std::optional<axstream::gst::DetectionValues> values =
        axstream::gst::read_detection(buffer, roi);
    if (values && values->class_id)
      detection.class_id = *values->class_id;
    else if (!values)
      detection.class_id = static_cast<int>(roi->roi_type);  // label quark stands for the class
    rois.push_back(roi);
    detections.push_back(detection);
  }
  std::vector<axstream::tracker::Assignment> assignments = self->state->tracker.update(detections);
  self->state->reported.clear();
  for (size_t i = 0; i < rois.size(); ++i) {
    if (assignments[i].track_id < 0) continue;  // not confirmed yet
    // Read back (after an element that made a new frame, from the typed meta) and write all
    // values: the ax-detection structure gets them back along with the track id.
    axstream::gst::DetectionValues values =
        axstream::gst::read_detection(buffer, rois[i]).value_or(axstream::gst::DetectionValues{});
    values.track_id = assignments[i].track_id;
    axstream::gst::write_detection(buffer, rois[i], values);
    axstream::gst::write_dlstreamer_params(rois[i], self->state->frame_width,
                                           self->state->frame_height);
    TrackedObject &object = self->state->reported[assignments[i].track_id];
    object.roi_type = rois[i]->roi_type;
    object.has_label = values.label.has_value();
    object.label = values.label.value_or("");
    object.confidence = values.confidence.value_or(0);
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
                       "Inferred frames a track survives without a matching detection "
                       "(occlusions shorter than this keep their id); frames axpreprocess's "
                       "inference-interval skipped do not count",
                       0, G_MAXINT, DEFAULT_PROP_MAX_AGE, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_MIN_HITS,
      g_param_spec_int("min-hits", "Min hits",
                       "Matched detections (inferred frames) before a new track's id is "
                       "reported",
                       1, G_MAXINT, DEFAULT_PROP_MIN_HITS, ready_flags));
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
  trans_class->set_caps = GST_DEBUG_FUNCPTR(gst_ax_tracker_set_caps);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR(gst_ax_tracker_transform_ip);
  GST_DEBUG_CATEGORY_INIT(gst_ax_tracker_debug, "axtracker", 0, "axstream object tracker");
}

static void gst_ax_tracker_init(GstAxTracker *self) {
  axstream::gst::report_refused_caps(GST_BASE_TRANSFORM_SINK_PAD(self),
                                     GST_BASE_TRANSFORM_SRC_PAD(self));
  self->max_age = DEFAULT_PROP_MAX_AGE;
  self->min_hits = DEFAULT_PROP_MIN_HITS;
  self->iou_threshold = DEFAULT_PROP_IOU_THRESHOLD;
  self->per_class = DEFAULT_PROP_PER_CLASS;
  self->state = new GstAxTrackerState();
  gst_base_transform_set_in_place(GST_BASE_TRANSFORM(self), TRUE);
}
