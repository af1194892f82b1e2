#include "ax_detection_values.h"

#include "axstream/gst/axresultmeta.h"

namespace axstream::gst {
namespace {

void read_keypoints(const GstStructure *params, DetectionValues &values) {
  const GValue *value = gst_structure_get_value(params, "keypoints");
  if (!value) return;
  auto size_of = GST_VALUE_HOLDS_ARRAY(value)  ? gst_value_array_get_size
                 : GST_VALUE_HOLDS_LIST(value) ? gst_value_list_get_size
                                               : nullptr;
  auto value_at =
      GST_VALUE_HOLDS_ARRAY(value) ? gst_value_array_get_value : gst_value_list_get_value;
  if (!size_of) return;
  const guint count = size_of(value);
  for (guint i = 0; i + 1 < count; i += 2) {
    const GValue *x = value_at(value, i);
    const GValue *y = value_at(value, i + 1);
    if (G_VALUE_HOLDS_DOUBLE(x) && G_VALUE_HOLDS_DOUBLE(y))
      values.keypoints.emplace_back(g_value_get_double(x), g_value_get_double(y));
  }
}

DetectionValues from_structure(const GstStructure *params) {
  DetectionValues values;
  if (const gchar *label = gst_structure_get_string(params, "label")) values.label = label;
  gdouble number;
  if (gst_structure_get_double(params, "confidence", &number)) values.confidence = number;
  gint class_id;
  if (gst_structure_get_int(params, "class-id", &class_id)) values.class_id = class_id;
  gint64 track_id;
  gint track_id_int;
  if (gst_structure_get_int64(params, "track-id", &track_id))
    values.track_id = track_id;
  else if (gst_structure_get_int(params, "track-id", &track_id_int))
    values.track_id = track_id_int;
  if (const gchar *text = gst_structure_get_string(params, "text")) values.text = text;
  if (gst_structure_get_double(params, "text-confidence", &number)) values.text_confidence = number;
  gboolean predicted = FALSE;
  if (gst_structure_get_boolean(params, "predicted", &predicted)) values.predicted = predicted;
  read_keypoints(params, values);
  return values;
}

DetectionValues from_meta(const GstAxDetectionMeta *meta) {
  DetectionValues values;
  if (meta->label) values.label = meta->label;
  if (meta->score >= 0) values.confidence = meta->score;
  if (meta->class_id >= 0) values.class_id = meta->class_id;
  if (meta->track_id >= 0) values.track_id = meta->track_id;
  if (meta->text) values.text = meta->text;
  if (meta->text_confidence >= 0) values.text_confidence = meta->text_confidence;
  values.predicted = meta->predicted;
  return values;
}

}  // namespace

std::optional<DetectionValues> read_detection(GstBuffer *buffer,
                                              const GstVideoRegionOfInterestMeta *roi) {
  auto *mutable_roi = const_cast<GstVideoRegionOfInterestMeta *>(roi);  // the getter is not const
  if (const GstStructure *params =
          gst_video_region_of_interest_meta_get_param(mutable_roi, GST_AX_DETECTION_PARAM))
    return from_structure(params);
  const GstAxDetectionMeta *meta = gst_buffer_get_ax_detection_meta(buffer, roi->id);
  if (!meta) return std::nullopt;
  DetectionValues values = from_meta(meta);
  if (const GstAxKeypointsMeta *keypoints = gst_buffer_get_ax_keypoints_meta(buffer, roi->id)) {
    for (guint i = 0; i < keypoints->n_points; ++i)
      values.keypoints.emplace_back(keypoints->points[2 * i], keypoints->points[2 * i + 1]);
  }
  return values;
}

void write_detection(GstBuffer *buffer, GstVideoRegionOfInterestMeta *roi,
                     const DetectionValues &values) {
  GstStructure *params = gst_video_region_of_interest_meta_get_param(roi, GST_AX_DETECTION_PARAM);
  if (!params) {
    params = gst_structure_new_empty(GST_AX_DETECTION_PARAM);
    gst_video_region_of_interest_meta_add_param(roi, params);  // takes it
  }
  GstAxDetectionMeta *meta = gst_buffer_obtain_ax_detection_meta(buffer, roi->id);
  if (values.label) {
    gst_structure_set(params, "label", G_TYPE_STRING, values.label->c_str(), nullptr);
    if (meta) gst_ax_detection_meta_set_label(meta, values.label->c_str());
  }
  if (values.confidence) {
    gst_structure_set(params, "confidence", G_TYPE_DOUBLE, *values.confidence, nullptr);
    if (meta) meta->score = *values.confidence;
  }
  if (values.class_id) {
    gst_structure_set(params, "class-id", G_TYPE_INT, *values.class_id, nullptr);
    if (meta) meta->class_id = *values.class_id;
  }
  if (values.track_id) {
    gst_structure_set(params, "track-id", G_TYPE_INT64, gint64(*values.track_id), nullptr);
    if (meta) meta->track_id = *values.track_id;
  }
  if (values.text) {
    gst_structure_set(params, "text", G_TYPE_STRING, values.text->c_str(), nullptr);
    if (meta) gst_ax_detection_meta_set_text(meta, values.text->c_str());
  }
  if (values.text_confidence) {
    gst_structure_set(params, "text-confidence", G_TYPE_DOUBLE, *values.text_confidence, nullptr);
    if (meta) meta->text_confidence = *values.text_confidence;
  }
  if (values.predicted) {
    gst_structure_set(params, "predicted", G_TYPE_BOOLEAN, TRUE, nullptr);
    if (meta) meta->predicted = TRUE;
  }
}

namespace {
// `roi`'s parameter structure `name`, added empty when missing.
GstStructure *obtain_param(GstVideoRegionOfInterestMeta *roi, const char *name) {
  GstStructure *params = gst_video_region_of_interest_meta_get_param(roi, name);
  if (!params) {
    params = gst_structure_new_empty(name);
    gst_video_region_of_interest_meta_add_param(roi, params);  // takes it
  }
  return params;
}
}  // namespace

void write_dlstreamer_params(GstVideoRegionOfInterestMeta *roi, int frame_width, int frame_height) {
  const GstStructure *ours =
      gst_video_region_of_interest_meta_get_param(roi, GST_AX_DETECTION_PARAM);
  if (!ours) return;
  if (frame_width > 0 && frame_height > 0) {
    GstStructure *detection = obtain_param(roi, "detection");
    // Summed as doubles: guint x + w wraps for a width past the guint range (an application's
    // negative width stored unsigned) into an inverted box inside the frame.
    gst_structure_set(detection, "x_min", G_TYPE_DOUBLE, double(roi->x) / frame_width, "y_min",
                      G_TYPE_DOUBLE, double(roi->y) / frame_height, "x_max", G_TYPE_DOUBLE,
                      (double(roi->x) + roi->w) / frame_width, "y_max", G_TYPE_DOUBLE,
                      (double(roi->y) + roi->h) / frame_height, nullptr);
    double confidence = 0;
    if (gst_structure_get_double(ours, "confidence", &confidence))
      gst_structure_set(detection, "confidence", G_TYPE_DOUBLE, confidence, nullptr);
    gint class_id = 0;
    if (gst_structure_get_int(ours, "class-id", &class_id))
      gst_structure_set(detection, "label_id", G_TYPE_INT, class_id, nullptr);
    if (const gchar *label = gst_structure_get_string(ours, "label"))
      gst_structure_set(detection, "label", G_TYPE_STRING, label, nullptr);
  }
  gint64 track_id = 0;
  if (gst_structure_get_int64(ours, "track-id", &track_id))
    gst_structure_set(obtain_param(roi, "object_id"), "id", G_TYPE_INT, gint(track_id), nullptr);
}

gint next_roi_id(GstBuffer *buffer) {
  gint next = 0;
  gpointer iter = nullptr;
  while (GstMeta *meta = gst_buffer_iterate_meta_filtered(
             buffer, &iter, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))
    next = MAX(next, reinterpret_cast<GstVideoRegionOfInterestMeta *>(meta)->id + 1);
  return next;
}

}  // namespace axstream::gst
