/* Results axdecode attaches to video buffers, for apps reading them in pad probes.
 *
 * Every detection is also a standard GstVideoRegionOfInterestMeta (roi_type = the label's quark)
 * carrying a GstStructure param named "ax-detection" with fields
 *   label (string), confidence (double), class-id (int),
 *   keypoints (GstValueArray of doubles, x0, y0, x1, y1, ... in frame pixels; may be empty),
 *   and, on ROIs a text recogniser (ctc) read: text (string), text-confidence (double);
 *   whole-frame text gets its own ROI with roi_type "text";
 * and a classification of a ROI adds a param "ax-classification" with
 *   labels (GstValueArray of strings), class-ids (array of ints), scores (array of doubles).
 * The typed metas below carry the same data for C/C++ users. Public, C-compatible. */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_AX_DETECTION_PARAM "ax-detection"
#define GST_AX_CLASSIFICATION_PARAM "ax-classification"

/* Ranked classes (best first) of the whole frame (roi_id -1) or of one ROI. */
typedef struct {
  GstMeta meta;
  gint roi_id;  /* id of the GstVideoRegionOfInterestMeta classified; -1: whole frame */
  gchar *model; /* model package the result came from, or NULL */
  guint n_classes;
  gint *class_ids; /* n_classes entries */
  gfloat *scores;  /* n_classes entries */
  gchar **labels;  /* n_classes entries, NULL-terminated */
} GstAxClassificationMeta;

/* Keypoints of one detection, in frame pixels. */
typedef struct {
  GstMeta meta;
  gint roi_id; /* id of the detection's GstVideoRegionOfInterestMeta */
  guint n_points;
  gfloat *points; /* 2 * n_points floats: x0, y0, x1, y1, ... */
} GstAxKeypointsMeta;

GType gst_ax_classification_meta_api_get_type(void);
#define GST_AX_CLASSIFICATION_META_API_TYPE (gst_ax_classification_meta_api_get_type())
const GstMetaInfo *gst_ax_classification_meta_get_info(void);
#define GST_AX_CLASSIFICATION_META_INFO (gst_ax_classification_meta_get_info())

GType gst_ax_keypoints_meta_api_get_type(void);
#define GST_AX_KEYPOINTS_META_API_TYPE (gst_ax_keypoints_meta_api_get_type())
const GstMetaInfo *gst_ax_keypoints_meta_get_info(void);
#define GST_AX_KEYPOINTS_META_INFO (gst_ax_keypoints_meta_get_info())

/* Copies the arrays. labels may be NULL (no labels) or hold n_classes strings. */
GstAxClassificationMeta *gst_buffer_add_ax_classification_meta(GstBuffer *buffer, gint roi_id,
                                                               const gchar *model, guint n_classes,
                                                               const gint *class_ids,
                                                               const gfloat *scores,
                                                               const gchar *const *labels);
/* The classification of `roi_id` (-1: whole frame), or NULL. */
GstAxClassificationMeta *gst_buffer_get_ax_classification_meta(GstBuffer *buffer, gint roi_id);

/* Copies 2 * n_points floats. */
GstAxKeypointsMeta *gst_buffer_add_ax_keypoints_meta(GstBuffer *buffer, gint roi_id, guint n_points,
                                                     const gfloat *points);
/* The keypoints of detection `roi_id`, or NULL. */
GstAxKeypointsMeta *gst_buffer_get_ax_keypoints_meta(GstBuffer *buffer, gint roi_id);

/* Getters that check bounds: label of rank `index` (NULL when absent), score, class id (-1). */
const gchar *gst_ax_classification_meta_get_label(const GstAxClassificationMeta *meta, guint index);
gfloat gst_ax_classification_meta_get_score(const GstAxClassificationMeta *meta, guint index);
gint gst_ax_classification_meta_get_class_id(const GstAxClassificationMeta *meta, guint index);
/* Point `index` into *x, *y; FALSE when out of range. */
gboolean gst_ax_keypoints_meta_get_point(const GstAxKeypointsMeta *meta, guint index, gfloat *x,
                                         gfloat *y);

G_END_DECLS
