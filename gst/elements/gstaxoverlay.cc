/**
 * SECTION:element-axoverlay
 * @title: axoverlay
 *
 * Draws results in place into the video frame: each GstVideoRegionOfInterestMeta as a box with its
 * label and score (from its "ax-detection" parameters, or its GstAxDetectionMeta after a videoscale
 * or videoconvert dropped them, and track id when axtracker set one) followed by the best class of
 * each classifier that ran on it ("face 0.92 | smiling 0.81", as nvdsosd and gvawatermark show a
 * cascade's secondary classes), its keypoints, and whole-frame classifications
 * (GstAxClassificationMeta with roi_id -1) as text in the top-left corner. Works on RGB, BGR, RGBx,
 * BGRx, xRGB, xBGR, RGBA, BGRA, NV12, I420, YUY2, UYVY and GRAY8 (YUV frames: drawn on the luma and
 * chroma with the colour converted, BT.601; a webcam's packed 4:2:2 frames need no videoconvert,
 * their chroma drawn as I420's is, shared by pixel pairs and row pairs; a monochrome camera's GRAY8
 * gets each colour's full-range BT.601 luma). On a frame carrying a GstVideoCropMeta the results
 * are drawn in its visible region's coordinates (the caps' size at the meta's origin; not for
 * YUY2/UYVY, where an odd origin would split a pixel pair: the allocation query leaves the meta
 * out, so videocrop copies, and a frame with such a meta anyway is a stream error). Boxes,
 * labels and keypoints reaching beyond the frame are cut at its edges; keypoints at NaN or infinity
 * are left out.
 *
 * |[
 * D=~/.cache/axstream/opencv-doc/usr/share/doc/opencv-doc/examples/data
 * M=~/.cache/axstream/models/blazeface-front
 * gst-launch-1.0 filesrc location=$D/Megamind.avi ! decodebin ! \
 *   axpreprocess model=$M ! axinference model=$M ! \
 *   axdecode decoder=blazeface ! axoverlay box-color=0xff0000 thickness=3 ! \
 *   videoconvert ! autovideosink
 * ]|
 */
#include "gstaxoverlay.h"

#include <gst/video/video.h>

#include <array>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "ax_detection_values.h"
#include "ax_field_properties.h"
#include "ax_refused_caps.h"
#include "ax_video_crop.h"
#include "axstream/gst/axresultmeta.h"
#include "axstream/overlay/overlay.h"

GST_DEBUG_CATEGORY_STATIC(gst_ax_overlay_debug);
#define GST_CAT_DEFAULT gst_ax_overlay_debug

#define DEFAULT_PROP_BOX_COLOR 0x00ff00
#define DEFAULT_PROP_TEXT_COLOR 0x000000
#define DEFAULT_PROP_KEYPOINT_COLOR 0xff0000
#define DEFAULT_PROP_THICKNESS 2
#define DEFAULT_PROP_FONT_SCALE 0.5
#define DEFAULT_PROP_DRAW_KEYPOINTS TRUE
#define DEFAULT_PROP_DRAW_LABELS TRUE
#define DEFAULT_PROP_DRAW_CLASSES TRUE

enum {
  PROP_0,
  PROP_BOX_COLOR,
  PROP_TEXT_COLOR,
  PROP_KEYPOINT_COLOR,
  PROP_THICKNESS,
  PROP_FONT_SCALE,
  PROP_DRAW_KEYPOINTS,
  PROP_DRAW_LABELS,
  PROP_DRAW_CLASSES,
};

struct _GstAxOverlay {
  GstVideoFilter parent;
  guint box_color;
  guint text_color;
  guint keypoint_color;
  gint thickness;
  gdouble font_scale;
  gboolean draw_keypoints;
  gboolean draw_labels;
  gboolean draw_classes;
};

G_DEFINE_TYPE(GstAxOverlay, gst_ax_overlay, GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE(axoverlay, "axoverlay", GST_RANK_NONE, GST_TYPE_AX_OVERLAY);

// The properties kept as fields of the instance (ax_field_properties.h).
static constexpr axstream::gst::FieldProperty<GstAxOverlay> kFieldProperties[] = {
    {PROP_BOX_COLOR, &GstAxOverlay::box_color},
    {PROP_TEXT_COLOR, &GstAxOverlay::text_color},
    {PROP_KEYPOINT_COLOR, &GstAxOverlay::keypoint_color},
    {PROP_THICKNESS, &GstAxOverlay::thickness},
    {PROP_FONT_SCALE, &GstAxOverlay::font_scale},
    {PROP_DRAW_KEYPOINTS, &GstAxOverlay::draw_keypoints},
    {PROP_DRAW_LABELS, &GstAxOverlay::draw_labels},
    {PROP_DRAW_CLASSES, &GstAxOverlay::draw_classes},
};

#define AX_OVERLAY_FORMATS \
  "{ RGB, BGR, RGBx, BGRx, xRGB, xBGR, RGBA, BGRA, NV12, I420, YUY2, UYVY, GRAY8 }"
#define AX_OVERLAY_CAPS                   \
  GST_VIDEO_CAPS_MAKE(AX_OVERLAY_FORMATS) \
  ";" GST_VIDEO_CAPS_MAKE_WITH_FEATURES("memory:DMABuf", AX_OVERLAY_FORMATS)
static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(AX_OVERLAY_CAPS));
static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(AX_OVERLAY_CAPS));

// Appends " | label score" (or "class N score" for a class without a label) to `text`.
static void append_class(std::string &text, const char *label, gint class_id, double score) {
  if (!text.empty()) text.append(" | ");
  if (label && *label)
    text.append(label);
  else
    text.append("class ").append(std::to_string(class_id));
  char score_text[16];
  std::snprintf(score_text, sizeof score_text, " %.2f", score);
  text.append(score_text);
}

// The best class of every classifier that ran on `roi`, each appended to `text`: from the ROI's
// `ax-classification` params (one per classifier), or, when a videoscale or videoconvert dropped
// them, from the GstAxClassificationMetas with the ROI's id.
static void append_roi_classes(std::string &text, GstBuffer *buffer,
                               GstVideoRegionOfInterestMeta *roi) {
  bool from_params = false;
  for (GList *param = roi->params; param; param = param->next) {
    const auto *classes = static_cast<const GstStructure *>(param->data);
    if (!gst_structure_has_name(classes, GST_AX_CLASSIFICATION_PARAM)) continue;
    from_params = true;
    // Rank 0 of each array; a field missing or of another type is left out.
    auto first = [classes](const char *field, GType type) -> const GValue * {
      const GValue *array = gst_structure_get_value(classes, field);
      if (!array || !GST_VALUE_HOLDS_ARRAY(array) || gst_value_array_get_size(array) == 0)
        return nullptr;
      const GValue *value = gst_value_array_get_value(array, 0);
      return G_VALUE_HOLDS(value, type) ? value : nullptr;
    };
    const GValue *score = first("scores", G_TYPE_DOUBLE);
    if (!score) continue;
    const GValue *label = first("labels", G_TYPE_STRING);
    const GValue *class_id = first("class-ids", G_TYPE_INT);
    append_class(text, label ? g_value_get_string(label) : nullptr,
                 class_id ? g_value_get_int(class_id) : -1, g_value_get_double(score));
  }
  if (from_params) return;
  gpointer iter = nullptr;
  while (GstMeta *meta =
             gst_buffer_iterate_meta_filtered(buffer, &iter, GST_AX_CLASSIFICATION_META_API_TYPE)) {
    const auto *classes = reinterpret_cast<const GstAxClassificationMeta *>(meta);
    if (classes->roi_id != roi->id || classes->n_classes == 0) continue;
    append_class(text, classes->labels[0], classes->class_ids[0], classes->scores[0]);
  }
}

// "#track label score | class score | ...": the detection (or its recognised text), then the
// best class of each classifier when `draw_classes`.
static std::string roi_text(GstBuffer *buffer, GstVideoRegionOfInterestMeta *roi,
                            const std::optional<axstream::gst::DetectionValues> &values,
                            bool draw_classes) {
  std::string label = roi->roi_type ? g_quark_to_string(roi->roi_type) : "";
  double confidence = -1;
  if (values) {
    if (values->label) label = *values->label;
    confidence = values->confidence.value_or(-1);
  }
  // Recognised text replaces the label.
  if (values && values->text) {
    label = *values->text;
    confidence = values->text_confidence.value_or(-1);
  }
  std::string text = confidence >= 0 ? axstream::overlay::format_label(label, confidence) : label;
  if (values && values->track_id)
    text = std::string("#").append(std::to_string(*values->track_id)).append(" ").append(text);
  if (draw_classes) append_roi_classes(text, buffer, roi);
  return text;
}

static std::vector<axstream::overlay::OverlayObject> objects_of(GstBuffer *buffer,
                                                                bool draw_classes) {
  std::vector<axstream::overlay::OverlayObject> objects;
  gpointer iter = nullptr;
  while (GstMeta *meta = gst_buffer_iterate_meta_filtered(
             buffer, &iter, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)) {
    auto *roi = reinterpret_cast<GstVideoRegionOfInterestMeta *>(meta);
    axstream::overlay::OverlayObject object;
    object.x = roi->x;
    object.y = roi->y;
    object.width = roi->w;
    object.height = roi->h;
    std::optional<axstream::gst::DetectionValues> values =
        axstream::gst::read_detection(buffer, roi);
    object.text = roi_text(buffer, roi, values, draw_classes);
    if (values) {
      for (const auto &[x, y] : values->keypoints) object.keypoints.emplace_back(x, y);
    }
    objects.push_back(std::move(object));
  }
  // Whole-frame classifications: the best class of each as text at the top-left corner.
  axstream::overlay::OverlayObject frame_classes;
  gpointer class_iter = nullptr;
  while (GstMeta *meta = gst_buffer_iterate_meta_filtered(buffer, &class_iter,
                                                          GST_AX_CLASSIFICATION_META_API_TYPE)) {
    const auto *classes = reinterpret_cast<const GstAxClassificationMeta *>(meta);
    if (classes->roi_id != -1 || classes->n_classes == 0) continue;
    append_class(frame_classes.text, classes->labels[0], classes->class_ids[0], classes->scores[0]);
  }
  if (!frame_classes.text.empty()) objects.push_back(std::move(frame_classes));
  return objects;
}

// The properties are controllable (GstController): each frame takes the values bound to its
// stream time, as GStreamer's own controllable filters (videobalance) do before transforming.
static void gst_ax_overlay_before_transform(GstBaseTransform *trans, GstBuffer *buffer) {
  const GstClockTime stream_time =
      gst_segment_to_stream_time(&trans->segment, GST_FORMAT_TIME, GST_BUFFER_PTS(buffer));
  if (GST_CLOCK_TIME_IS_VALID(stream_time)) gst_object_sync_values(GST_OBJECT(trans), stream_time);
}

static GstFlowReturn gst_ax_overlay_transform_frame_ip(GstVideoFilter *filter,
                                                       GstVideoFrame *frame) {
  auto *self = GST_AX_OVERLAY(filter);
  axstream::overlay::OverlayStyle style;
  GST_OBJECT_LOCK(self);  // the properties change while playing
  style.box_color = axstream::overlay::Rgb::from_hex(self->box_color);
  style.text_color = axstream::overlay::Rgb::from_hex(self->text_color);
  style.keypoint_color = axstream::overlay::Rgb::from_hex(self->keypoint_color);
  style.thickness = self->thickness;
  style.font_scale = self->font_scale;
  style.draw_keypoints = self->draw_keypoints;
  style.draw_labels = self->draw_labels;
  const bool draw_classes = self->draw_labels && self->draw_classes;
  GST_OBJECT_UNLOCK(self);
  std::vector<axstream::overlay::OverlayObject> objects = objects_of(frame->buffer, draw_classes);
  if (objects.empty()) return GST_FLOW_OK;
  // The caps' size: a frame cropped by GstVideoCropMeta maps whole, and the results are in the
  // coordinates of its visible region.
  const int width = GST_VIDEO_INFO_WIDTH(&filter->in_info);
  const int height = GST_VIDEO_INFO_HEIGHT(&filter->in_info);
  std::array<gsize, GST_VIDEO_MAX_PLANES> crop_offsets{};
  if (const GstVideoCropMeta *crop = gst_buffer_get_video_crop_meta(frame->buffer)) {
    std::string error;
    crop_offsets = axstream::gst::video_crop_offsets(*frame, *crop, width, height, error);
    if (!error.empty()) {
      GST_ELEMENT_ERROR(self, STREAM, FORMAT,
                        ("axoverlay cannot draw on the frame's crop: %s", error.c_str()),
                        ("GstVideoCropMeta on %" GST_PTR_FORMAT, frame->buffer));
      return GST_FLOW_ERROR;
    }
  }
  try {
    axstream::overlay::FrameView view;
    view.format = axstream::overlay::pixel_format_from_name(
        gst_video_format_to_string(GST_VIDEO_FRAME_FORMAT(frame)));
    view.width = width;
    view.height = height;
    for (guint p = 0; p < GST_VIDEO_FRAME_N_PLANES(frame) && p < 3; ++p) {
      view.planes[p] =
          static_cast<uint8_t *>(GST_VIDEO_FRAME_PLANE_DATA(frame, p)) + crop_offsets[p];
      view.strides[p] = GST_VIDEO_FRAME_PLANE_STRIDE(frame, p);
    }
    axstream::overlay::draw_objects(view, objects, style);
  } catch (const std::exception &error) {
    GST_ELEMENT_ERROR(self, STREAM, FAILED, ("%s", error.what()),
                      ("axoverlay drawing %zu objects", objects.size()));
    return GST_FLOW_ERROR;
  }
  return GST_FLOW_OK;
}

// Upstream's ALLOCATION query as GstBaseTransform answers it in place (downstream's metas, the
// sink's GstVideoCropMeta support among them), but no crop meta for YUY2/UYVY, whose odd x
// would split a pixel pair (ax_video_crop.h).
static gboolean gst_ax_overlay_propose_allocation(GstBaseTransform *trans, GstQuery *decide_query,
                                                  GstQuery *query) {
  const gboolean answered = GST_BASE_TRANSFORM_CLASS(gst_ax_overlay_parent_class)
                                ->propose_allocation(trans, decide_query, query);
  axstream::gst::drop_crop_meta_for_pixel_pairs(query);
  return answered;
}

static void gst_ax_overlay_class_init(GstAxOverlayClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS(klass);
  gobject_class->set_property = axstream::gst::set_field_properties<GstAxOverlay, kFieldProperties>;
  gobject_class->get_property = axstream::gst::get_field_properties<GstAxOverlay, kFieldProperties>;

  auto flags = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                        GST_PARAM_CONTROLLABLE | GST_PARAM_MUTABLE_PLAYING);
  g_object_class_install_property(
      gobject_class, PROP_BOX_COLOR,
      g_param_spec_uint("box-color", "Box colour",
                        "Colour of boxes and label backgrounds as 0xRRGGBB", 0, 0xffffff,
                        DEFAULT_PROP_BOX_COLOR, flags));
  g_object_class_install_property(
      gobject_class, PROP_TEXT_COLOR,
      g_param_spec_uint("text-color", "Text colour", "Colour of label text as 0xRRGGBB", 0,
                        0xffffff, DEFAULT_PROP_TEXT_COLOR, flags));
  g_object_class_install_property(
      gobject_class, PROP_KEYPOINT_COLOR,
      g_param_spec_uint("keypoint-color", "Keypoint colour", "Colour of keypoints as 0xRRGGBB", 0,
                        0xffffff, DEFAULT_PROP_KEYPOINT_COLOR, flags));
  g_object_class_install_property(
      gobject_class, PROP_THICKNESS,
      g_param_spec_int("thickness", "Thickness",
                       "Line thickness of boxes in pixels (keypoint radius is twice this)", 1, 64,
                       DEFAULT_PROP_THICKNESS, flags));
  g_object_class_install_property(
      gobject_class, PROP_FONT_SCALE,
      g_param_spec_double("font-scale", "Font scale",
                          "Scale of the label font (1.0: about 22 pixels high)", 0.1, 10.0,
                          DEFAULT_PROP_FONT_SCALE, flags));
  g_object_class_install_property(
      gobject_class, PROP_DRAW_KEYPOINTS,
      g_param_spec_boolean("draw-keypoints", "Draw keypoints",
                           "Draw the detections' keypoints as filled dots",
                           DEFAULT_PROP_DRAW_KEYPOINTS, flags));
  g_object_class_install_property(
      gobject_class, PROP_DRAW_LABELS,
      g_param_spec_boolean("draw-labels", "Draw labels",
                           "Draw label, score and track id above each box, and whole-frame "
                           "classes in the top-left corner",
                           DEFAULT_PROP_DRAW_LABELS, flags));
  g_object_class_install_property(
      gobject_class, PROP_DRAW_CLASSES,
      g_param_spec_boolean("draw-classes", "Draw classes",
                           "Append to each object's label the best class and score of every "
                           "classifier that ran on it (axdecode decoder=classification after "
                           "axpreprocess roi=objects), e.g. \"face 0.92 | smiling 0.81\"; a class "
                           "without a label shows as \"class N\". Needs draw-labels",
                           DEFAULT_PROP_DRAW_CLASSES, flags));

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Axelera result overlay", "Filter/Effect/Video",
      "Draws detection boxes, labels with scores and keypoints into video frames in place",
      "axstream developers");
  filter_class->transform_frame_ip = GST_DEBUG_FUNCPTR(gst_ax_overlay_transform_frame_ip);
  GST_BASE_TRANSFORM_CLASS(klass)->before_transform =
      GST_DEBUG_FUNCPTR(gst_ax_overlay_before_transform);
  GST_BASE_TRANSFORM_CLASS(klass)->propose_allocation =
      GST_DEBUG_FUNCPTR(gst_ax_overlay_propose_allocation);
  GST_DEBUG_CATEGORY_INIT(gst_ax_overlay_debug, "axoverlay", 0, "axstream result overlay");
}

static void gst_ax_overlay_init(GstAxOverlay *self) {
  axstream::gst::report_refused_caps(GST_BASE_TRANSFORM_SINK_PAD(self),
                                     GST_BASE_TRANSFORM_SRC_PAD(self));
  self->box_color = DEFAULT_PROP_BOX_COLOR;
  self->text_color = DEFAULT_PROP_TEXT_COLOR;
  self->keypoint_color = DEFAULT_PROP_KEYPOINT_COLOR;
  self->thickness = DEFAULT_PROP_THICKNESS;
  self->font_scale = DEFAULT_PROP_FONT_SCALE;
  self->draw_keypoints = DEFAULT_PROP_DRAW_KEYPOINTS;
  self->draw_labels = DEFAULT_PROP_DRAW_LABELS;
  self->draw_classes = DEFAULT_PROP_DRAW_CLASSES;
}
