/**
 * SECTION:element-axoverlay
 * @title: axoverlay
 *
 * Draws results in place into the video frame: each GstVideoRegionOfInterestMeta as a box with
 * its label and score (from its "ax-detection" parameters, and track id when axtracker set one),
 * its keypoints, and whole-frame classifications (GstAxClassificationMeta with roi_id -1) as text
 * in the top-left corner. Works on RGB, BGR, RGBx, BGRx, xRGB, xBGR, RGBA, BGRA, NV12 and I420
 * (YUV frames: drawn on the luma and chroma planes with the colour converted, BT.601).
 *
 * |[
 * gst-launch-1.0 filesrc location=Megamind.avi ! decodebin ! \
 *   axpreprocess model=models/blazeface ! axinference model=models/blazeface ! \
 *   axdecode decoder=blazeface ! axoverlay box-color=0xff0000 thickness=3 ! \
 *   videoconvert ! autovideosink
 * ]|
 */
#include "gstaxoverlay.h"

#include <gst/video/video.h>

#include <string>
#include <vector>

#include "ax_field_properties.h"
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

enum {
  PROP_0,
  PROP_BOX_COLOR,
  PROP_TEXT_COLOR,
  PROP_KEYPOINT_COLOR,
  PROP_THICKNESS,
  PROP_FONT_SCALE,
  PROP_DRAW_KEYPOINTS,
  PROP_DRAW_LABELS,
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
};

#define AX_OVERLAY_FORMATS "{ RGB, BGR, RGBx, BGRx, xRGB, xBGR, RGBA, BGRA, NV12, I420 }"
#define AX_OVERLAY_CAPS                   \
  GST_VIDEO_CAPS_MAKE(AX_OVERLAY_FORMATS) \
  ";" GST_VIDEO_CAPS_MAKE_WITH_FEATURES("memory:DMABuf", AX_OVERLAY_FORMATS)
static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(AX_OVERLAY_CAPS));
static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(AX_OVERLAY_CAPS));

static void read_keypoints(const GstStructure *params, axstream::overlay::OverlayObject &object) {
  const GValue *value = gst_structure_get_value(params, "keypoints");
  if (!value || !GST_VALUE_HOLDS_ARRAY(value)) return;
  const guint count = gst_value_array_get_size(value);
  for (guint i = 0; i + 1 < count; i += 2) {
    const GValue *x = gst_value_array_get_value(value, i);
    const GValue *y = gst_value_array_get_value(value, i + 1);
    if (G_VALUE_HOLDS_DOUBLE(x) && G_VALUE_HOLDS_DOUBLE(y))
      object.keypoints.emplace_back(g_value_get_double(x), g_value_get_double(y));
  }
}

static std::string roi_text(GstVideoRegionOfInterestMeta *roi) {
  std::string label = roi->roi_type ? g_quark_to_string(roi->roi_type) : "";
  const GstStructure *params = gst_video_region_of_interest_meta_get_param(roi, "ax-detection");
  double confidence = -1;
  if (params) {
    if (const gchar *l = gst_structure_get_string(params, "label")) label = l;
    gst_structure_get_double(params, "confidence", &confidence);
  }
  // A classified ROI shows its best class.
  if (const GstStructure *classes =
          gst_video_region_of_interest_meta_get_param(roi, GST_AX_CLASSIFICATION_PARAM)) {
    const GValue *labels = gst_structure_get_value(classes, "labels");
    const GValue *scores = gst_structure_get_value(classes, "scores");
    if (labels && scores && gst_value_array_get_size(labels) > 0 &&
        gst_value_array_get_size(scores) > 0) {
      label = g_value_get_string(gst_value_array_get_value(labels, 0));
      confidence = g_value_get_double(gst_value_array_get_value(scores, 0));
    }
  }
  // Recognised text replaces the label.
  if (const gchar *recognised = params ? gst_structure_get_string(params, "text") : nullptr) {
    label = recognised;
    confidence = -1;
    gst_structure_get_double(params, "text-confidence", &confidence);
  }
  std::string text = confidence >= 0 ? axstream::overlay::format_label(label, confidence) : label;
  gint64 track_id;
  if (params && gst_structure_get_int64(params, "track-id", &track_id))
    text = std::string("#").append(std::to_string(track_id)).append(" ").append(text);
  return text;
}

static std::vector<axstream::overlay::OverlayObject> objects_of(GstBuffer *buffer) {
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
    object.text = roi_text(roi);
    if (const GstStructure *params =
            gst_video_region_of_interest_meta_get_param(roi, GST_AX_DETECTION_PARAM))
      read_keypoints(params, object);
    objects.push_back(std::move(object));
  }
  // Whole-frame classification: best class as text at the top-left corner.
  if (GstAxClassificationMeta *classes = gst_buffer_get_ax_classification_meta(buffer, -1)) {
    if (classes->n_classes > 0) {
      axstream::overlay::OverlayObject object;
      object.text = axstream::overlay::format_label(classes->labels[0], classes->scores[0]);
      objects.push_back(std::move(object));
    }
  }
  return objects;
}

static GstFlowReturn gst_ax_overlay_transform_frame_ip(GstVideoFilter *filter,
                                                       GstVideoFrame *frame) {
  auto *self = GST_AX_OVERLAY(filter);
  std::vector<axstream::overlay::OverlayObject> objects = objects_of(frame->buffer);
  if (objects.empty()) return GST_FLOW_OK;
  axstream::overlay::OverlayStyle style;
  style.box_color = axstream::overlay::Rgb::from_hex(self->box_color);
  style.text_color = axstream::overlay::Rgb::from_hex(self->text_color);
  style.keypoint_color = axstream::overlay::Rgb::from_hex(self->keypoint_color);
  style.thickness = self->thickness;
  style.font_scale = self->font_scale;
  style.draw_keypoints = self->draw_keypoints;
  style.draw_labels = self->draw_labels;
  try {
    axstream::overlay::FrameView view;
    view.format = axstream::overlay::pixel_format_from_name(
        gst_video_format_to_string(GST_VIDEO_FRAME_FORMAT(frame)));
    view.width = GST_VIDEO_FRAME_WIDTH(frame);
    view.height = GST_VIDEO_FRAME_HEIGHT(frame);
    for (guint p = 0; p < GST_VIDEO_FRAME_N_PLANES(frame) && p < 3; ++p) {
      view.planes[p] = static_cast<uint8_t *>(GST_VIDEO_FRAME_PLANE_DATA(frame, p));
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

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Axelera result overlay", "Filter/Effect/Video",
      "Draws detection boxes, labels with scores and keypoints into video frames in place",
      "axstream developers");
  filter_class->transform_frame_ip = GST_DEBUG_FUNCPTR(gst_ax_overlay_transform_frame_ip);
  GST_DEBUG_CATEGORY_INIT(gst_ax_overlay_debug, "axoverlay", 0, "axstream result overlay");
}

static void gst_ax_overlay_init(GstAxOverlay *self) {
  self->box_color = DEFAULT_PROP_BOX_COLOR;
  self->text_color = DEFAULT_PROP_TEXT_COLOR;
  self->keypoint_color = DEFAULT_PROP_KEYPOINT_COLOR;
  self->thickness = DEFAULT_PROP_THICKNESS;
  self->font_scale = DEFAULT_PROP_FONT_SCALE;
  self->draw_keypoints = DEFAULT_PROP_DRAW_KEYPOINTS;
  self->draw_labels = DEFAULT_PROP_DRAW_LABELS;
}
