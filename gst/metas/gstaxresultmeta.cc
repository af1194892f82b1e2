// Typed result metas (detection, classification, keypoints) for apps: see axresultmeta.h.
#include <gst/video/video.h>

#include <cstring>

#include "axstream/gst/axresultmeta.h"

namespace {

const gchar *result_meta_tags[] = {nullptr};  // not tied to memory, colour or geometry
// Keypoints are frame pixels, like their GstVideoRegionOfInterestMeta: the same tags, so an
// element that scales or turns the frame scales them (below) or drops them, as it does the box;
// untagged, videoscale copied them unscaled next to the scaled box.
const gchar *keypoints_meta_tags[] = {GST_META_TAG_VIDEO_STR, GST_META_TAG_VIDEO_ORIENTATION_STR,
                                      GST_META_TAG_VIDEO_SIZE_STR, nullptr};

gboolean classification_init(GstMeta *meta, gpointer, GstBuffer *) {
  auto *m = reinterpret_cast<GstAxClassificationMeta *>(meta);
  m->roi_id = -1;
  m->model = nullptr;
  m->n_classes = 0;
  m->class_ids = nullptr;
  m->scores = nullptr;
  m->labels = nullptr;
  return TRUE;
}

void classification_free(GstMeta *meta, GstBuffer *) {
  auto *m = reinterpret_cast<GstAxClassificationMeta *>(meta);
  g_free(m->model);
  g_free(m->class_ids);
  g_free(m->scores);
  g_strfreev(m->labels);
}

void classification_fill(GstAxClassificationMeta *m, gint roi_id, const gchar *model,
                         guint n_classes, const gint *class_ids, const gfloat *scores,
                         const gchar *const *labels) {
  m->roi_id = roi_id;
  m->model = g_strdup(model);
  m->n_classes = n_classes;
  m->class_ids = static_cast<gint *>(g_memdup2(class_ids, sizeof(gint) * n_classes));
  m->scores = static_cast<gfloat *>(g_memdup2(scores, sizeof(gfloat) * n_classes));
  m->labels = g_new0(gchar *, n_classes + 1);
  for (guint i = 0; i < n_classes; ++i)
    m->labels[i] = g_strdup(labels && labels[i] ? labels[i] : "");
}

gboolean classification_transform(GstBuffer *dest, GstMeta *meta, GstBuffer *, GQuark type,
                                  gpointer) {
  if (!GST_META_TRANSFORM_IS_COPY(type)) return FALSE;
  auto *m = reinterpret_cast<GstAxClassificationMeta *>(meta);
  return gst_buffer_add_ax_classification_meta(dest, m->roi_id, m->model, m->n_classes,
                                               m->class_ids, m->scores, m->labels) != nullptr;
}

gboolean detection_init(GstMeta *meta, gpointer, GstBuffer *) {
  auto *m = reinterpret_cast<GstAxDetectionMeta *>(meta);
  m->roi_id = -1;
  m->class_id = -1;
  m->score = -1;
  m->label = nullptr;
  m->track_id = -1;
  m->text = nullptr;
  m->text_confidence = -1;
  m->predicted = FALSE;
  return TRUE;
}

void detection_free(GstMeta *meta, GstBuffer *) {
  auto *m = reinterpret_cast<GstAxDetectionMeta *>(meta);
  g_free(m->label);
  g_free(m->text);
}

// The values do not depend on the frame's size or colours: a scaled or converted frame keeps
// them as they are, where GStreamer 1.22 drops the ROI's parameter structures.
gboolean detection_transform(GstBuffer *dest, GstMeta *meta, GstBuffer *, GQuark type, gpointer) {
  if (!GST_META_TRANSFORM_IS_COPY(type) && !GST_VIDEO_META_TRANSFORM_IS_SCALE(type)) return FALSE;
  const auto *m = reinterpret_cast<const GstAxDetectionMeta *>(meta);
  GstAxDetectionMeta *out = gst_buffer_obtain_ax_detection_meta(dest, m->roi_id);
  if (!out) return FALSE;
  out->class_id = m->class_id;
  out->score = m->score;
  gst_ax_detection_meta_set_label(out, m->label);
  out->track_id = m->track_id;
  gst_ax_detection_meta_set_text(out, m->text);
  out->text_confidence = m->text_confidence;
  out->predicted = m->predicted;
  return TRUE;
}

gboolean keypoints_init(GstMeta *meta, gpointer, GstBuffer *) {
  auto *m = reinterpret_cast<GstAxKeypointsMeta *>(meta);
  m->roi_id = -1;
  m->n_points = 0;
  m->points = nullptr;
  return TRUE;
}

void keypoints_free(GstMeta *meta, GstBuffer *) {
  g_free(reinterpret_cast<GstAxKeypointsMeta *>(meta)->points);
}

gboolean keypoints_transform(GstBuffer *dest, GstMeta *meta, GstBuffer *, GQuark type,
                             gpointer data) {
  auto *m = reinterpret_cast<GstAxKeypointsMeta *>(meta);
  if (GST_META_TRANSFORM_IS_COPY(type))
    return gst_buffer_add_ax_keypoints_meta(dest, m->roi_id, m->n_points, m->points) != nullptr;
  if (!GST_VIDEO_META_TRANSFORM_IS_SCALE(type)) return FALSE;
  const auto *scale = static_cast<const GstVideoMetaTransform *>(data);
  const gint in_width = GST_VIDEO_INFO_WIDTH(scale->in_info);
  const gint in_height = GST_VIDEO_INFO_HEIGHT(scale->in_info);
  if (in_width <= 0 || in_height <= 0) return FALSE;
  const gfloat scale_x = gfloat(GST_VIDEO_INFO_WIDTH(scale->out_info)) / gfloat(in_width);
  const gfloat scale_y = gfloat(GST_VIDEO_INFO_HEIGHT(scale->out_info)) / gfloat(in_height);
  GstAxKeypointsMeta *out =
      gst_buffer_add_ax_keypoints_meta(dest, m->roi_id, m->n_points, m->points);
  if (!out) return FALSE;
  for (guint i = 0; i < out->n_points; ++i) {
    out->points[2 * i] *= scale_x;
    out->points[2 * i + 1] *= scale_y;
  }
  return TRUE;
}

}  // namespace

GType gst_ax_classification_meta_api_get_type(void) {
  static GType type = 0;
  if (g_once_init_enter(&type)) {
    GType registered = gst_meta_api_type_register("GstAxClassificationMetaAPI", result_meta_tags);
    g_once_init_leave(&type, registered);
  }
  return type;
}

const GstMetaInfo *gst_ax_classification_meta_get_info(void) {
  static const GstMetaInfo *info = nullptr;
  if (g_once_init_enter(&info)) {
    const GstMetaInfo *registered =
        gst_meta_register(GST_AX_CLASSIFICATION_META_API_TYPE, "GstAxClassificationMeta",
                          sizeof(GstAxClassificationMeta), classification_init, classification_free,
                          classification_transform);
    g_once_init_leave(&info, registered);
  }
  return info;
}

GType gst_ax_detection_meta_api_get_type(void) {
  static GType type = 0;
  if (g_once_init_enter(&type)) {
    // Untagged: videoscale and videoconvert copy an untagged meta into the new frame.
    GType registered = gst_meta_api_type_register("GstAxDetectionMetaAPI", result_meta_tags);
    g_once_init_leave(&type, registered);
  }
  return type;
}

const GstMetaInfo *gst_ax_detection_meta_get_info(void) {
  static const GstMetaInfo *info = nullptr;
  if (g_once_init_enter(&info)) {
    const GstMetaInfo *registered = gst_meta_register(
        GST_AX_DETECTION_META_API_TYPE, "GstAxDetectionMeta", sizeof(GstAxDetectionMeta),
        detection_init, detection_free, detection_transform);
    g_once_init_leave(&info, registered);
  }
  return info;
}

GType gst_ax_keypoints_meta_api_get_type(void) {
  static GType type = 0;
  if (g_once_init_enter(&type)) {
    GType registered = gst_meta_api_type_register("GstAxKeypointsMetaAPI", keypoints_meta_tags);
    g_once_init_leave(&type, registered);
  }
  return type;
}

const GstMetaInfo *gst_ax_keypoints_meta_get_info(void) {
  static const GstMetaInfo *info = nullptr;
  if (g_once_init_enter(&info)) {
    const GstMetaInfo *registered = gst_meta_register(
        GST_AX_KEYPOINTS_META_API_TYPE, "GstAxKeypointsMeta", sizeof(GstAxKeypointsMeta),
        keypoints_init, keypoints_free, keypoints_transform);
    g_once_init_leave(&info, registered);
  }
  return info;
}

const GstMetaInfo *gst_ax_classification_custom_meta_get_info(void) {
  static const GstMetaInfo *info = nullptr;
  if (g_once_init_enter(&info)) {
    // No transform function: GStreamer's default copies the structure with the buffer.
    const GstMetaInfo *registered = gst_meta_register_custom(
        GST_AX_CLASSIFICATION_PARAM, result_meta_tags, nullptr, nullptr, nullptr);
    g_once_init_leave(&info, registered);
  }
  return info;
}

const GstMetaInfo *gst_ax_inference_skipped_meta_get_info(void) {
  static const GstMetaInfo *info = nullptr;
  if (g_once_init_enter(&info)) {
    // Untagged with no transform function: copied with the buffer by every transform, as a
    // skipped frame stays skipped whatever its size or colours become.
    const GstMetaInfo *registered = gst_meta_register_custom(
        GST_AX_INFERENCE_SKIPPED_META, result_meta_tags, nullptr, nullptr, nullptr);
    g_once_init_leave(&info, registered);
  }
  return info;
}

void gst_buffer_add_ax_inference_skipped_meta(GstBuffer *buffer, const gchar *model,
                                              gboolean per_object, guint interval) {
  g_return_if_fail(GST_IS_BUFFER(buffer));
  gst_ax_inference_skipped_meta_get_info();
  GstCustomMeta *meta = gst_buffer_add_custom_meta(buffer, GST_AX_INFERENCE_SKIPPED_META);
  if (!meta) return;
  gst_structure_set(gst_custom_meta_get_structure(meta), "model", G_TYPE_STRING, model ? model : "",
                    "roi", G_TYPE_STRING, per_object ? "objects" : "frame", "interval", G_TYPE_UINT,
                    interval, nullptr);
}

const GstStructure *gst_buffer_get_ax_inference_skipped(GstBuffer *buffer, const gchar *model) {
  g_return_val_if_fail(GST_IS_BUFFER(buffer), nullptr);
  const GstMetaInfo *info = gst_ax_inference_skipped_meta_get_info();
  gpointer iter = nullptr;
  while (GstMeta *meta = gst_buffer_iterate_meta_filtered(buffer, &iter, info->api)) {
    const GstStructure *marker =
        gst_custom_meta_get_structure(reinterpret_cast<GstCustomMeta *>(meta));
    if (model ? g_strcmp0(gst_structure_get_string(marker, "model"), model) == 0
              : g_strcmp0(gst_structure_get_string(marker, "roi"), "frame") == 0)
      return marker;
  }
  return nullptr;
}

GstAxClassificationMeta *gst_buffer_add_ax_classification_meta(GstBuffer *buffer, gint roi_id,
                                                               const gchar *model, guint n_classes,
                                                               const gint *class_ids,
                                                               const gfloat *scores,
                                                               const gchar *const *labels) {
  g_return_val_if_fail(GST_IS_BUFFER(buffer), nullptr);
  g_return_val_if_fail(n_classes == 0 || (class_ids && scores), nullptr);
  auto *m = reinterpret_cast<GstAxClassificationMeta *>(
      gst_buffer_add_meta(buffer, GST_AX_CLASSIFICATION_META_INFO, nullptr));
  if (m) classification_fill(m, roi_id, model, n_classes, class_ids, scores, labels);
  return m;
}

GstAxClassificationMeta *gst_buffer_get_ax_classification_meta(GstBuffer *buffer, gint roi_id) {
  gpointer state = nullptr;
  while (GstMeta *meta = gst_buffer_iterate_meta_filtered(buffer, &state,
                                                          GST_AX_CLASSIFICATION_META_API_TYPE)) {
    auto *m = reinterpret_cast<GstAxClassificationMeta *>(meta);
    if (m->roi_id == roi_id) return m;
  }
  return nullptr;
}

GstAxDetectionMeta *gst_buffer_get_ax_detection_meta(GstBuffer *buffer, gint roi_id) {
  g_return_val_if_fail(GST_IS_BUFFER(buffer), nullptr);
  gpointer state = nullptr;
  while (GstMeta *meta =
             gst_buffer_iterate_meta_filtered(buffer, &state, GST_AX_DETECTION_META_API_TYPE)) {
    auto *m = reinterpret_cast<GstAxDetectionMeta *>(meta);
    if (m->roi_id == roi_id) return m;
  }
  return nullptr;
}

GstAxDetectionMeta *gst_buffer_obtain_ax_detection_meta(GstBuffer *buffer, gint roi_id) {
  g_return_val_if_fail(GST_IS_BUFFER(buffer), nullptr);
  if (GstAxDetectionMeta *existing = gst_buffer_get_ax_detection_meta(buffer, roi_id))
    return existing;
  auto *m = reinterpret_cast<GstAxDetectionMeta *>(
      gst_buffer_add_meta(buffer, GST_AX_DETECTION_META_INFO, nullptr));
  if (m) m->roi_id = roi_id;
  return m;
}

void gst_ax_detection_meta_set_label(GstAxDetectionMeta *meta, const gchar *label) {
  g_return_if_fail(meta != nullptr);
  if (meta->label == label) return;
  g_free(meta->label);
  meta->label = g_strdup(label);
}

void gst_ax_detection_meta_set_text(GstAxDetectionMeta *meta, const gchar *text) {
  g_return_if_fail(meta != nullptr);
  if (meta->text == text) return;
  g_free(meta->text);
  meta->text = g_strdup(text);
}

GstAxKeypointsMeta *gst_buffer_add_ax_keypoints_meta(GstBuffer *buffer, gint roi_id, guint n_points,
                                                     const gfloat *points) {
  g_return_val_if_fail(GST_IS_BUFFER(buffer), nullptr);
  g_return_val_if_fail(n_points == 0 || points, nullptr);
  auto *m = reinterpret_cast<GstAxKeypointsMeta *>(
      gst_buffer_add_meta(buffer, GST_AX_KEYPOINTS_META_INFO, nullptr));
  if (!m) return nullptr;
  m->roi_id = roi_id;
  m->n_points = n_points;
  m->points = static_cast<gfloat *>(g_memdup2(points, sizeof(gfloat) * 2 * n_points));
  return m;
}

GstAxKeypointsMeta *gst_buffer_get_ax_keypoints_meta(GstBuffer *buffer, gint roi_id) {
  gpointer state = nullptr;
  while (GstMeta *meta =
             gst_buffer_iterate_meta_filtered(buffer, &state, GST_AX_KEYPOINTS_META_API_TYPE)) {
    auto *m = reinterpret_cast<GstAxKeypointsMeta *>(meta);
    if (m->roi_id == roi_id) return m;
  }
  return nullptr;
}

const gchar *gst_ax_classification_meta_get_label(const GstAxClassificationMeta *meta,
                                                  guint index) {
  g_return_val_if_fail(meta != nullptr, nullptr);
  return index < meta->n_classes ? meta->labels[index] : nullptr;
}

gfloat gst_ax_classification_meta_get_score(const GstAxClassificationMeta *meta, guint index) {
  g_return_val_if_fail(meta != nullptr, 0.0f);
  return index < meta->n_classes ? meta->scores[index] : 0.0f;
}

gint gst_ax_classification_meta_get_class_id(const GstAxClassificationMeta *meta, guint index) {
  g_return_val_if_fail(meta != nullptr, -1);
  return index < meta->n_classes ? meta->class_ids[index] : -1;
}

gboolean gst_ax_keypoints_meta_get_point(const GstAxKeypointsMeta *meta, guint index, gfloat *x,
                                         gfloat *y) {
  g_return_val_if_fail(meta != nullptr, FALSE);
  if (index >= meta->n_points) return FALSE;
  if (x) *x = meta->points[2 * index];
  if (y) *y = meta->points[2 * index + 1];
  return TRUE;
}
