// Typed result metas (classification, keypoints) for apps: see axresultmeta.h.
#include <cstring>

#include "axstream/gst/axresultmeta.h"

namespace {

const gchar *result_meta_tags[] = {nullptr};  // not tied to memory, colour or geometry

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

gboolean keypoints_transform(GstBuffer *dest, GstMeta *meta, GstBuffer *, GQuark type, gpointer) {
  if (!GST_META_TRANSFORM_IS_COPY(type)) return FALSE;
  auto *m = reinterpret_cast<GstAxKeypointsMeta *>(meta);
  return gst_buffer_add_ax_keypoints_meta(dest, m->roi_id, m->n_points, m->points) != nullptr;
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

GType gst_ax_keypoints_meta_api_get_type(void) {
  static GType type = 0;
  if (g_once_init_enter(&type)) {
    GType registered = gst_meta_api_type_register("GstAxKeypointsMetaAPI", result_meta_tags);
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
