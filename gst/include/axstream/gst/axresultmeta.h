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
 * The typed metas below carry the same data for C/C++ users, and survive the elements that make
 * new frames (videoscale, videoconvert to another format), which drop the ROI's parameter
 * structures: GstAxDetectionMeta holds a detection's `ax-detection` values. The whole frame's
 * classes (roi_id -1) also ride as a GstCustomMeta named "ax-classification" whose structure has
 * the fields of that ROI param: introspectable, so Python reads them with
 * buffer.get_custom_meta("ax-classification").get_structure(). Public, C-compatible. */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_AX_DETECTION_PARAM "ax-detection"
#define GST_AX_CLASSIFICATION_PARAM "ax-classification"

/* The marker of a frame whose inference was skipped: axpreprocess with inference-interval N > 1
 * makes no input tensor on the frames between every Nth, so no axinference runs them. Such a
 * frame carries a GstCustomMeta named GST_AX_INFERENCE_SKIPPED_META (introspectable: Python reads
 * buffer.get_custom_meta("ax-inference-skipped")) whose structure has the fields
 *   model (string): the package whose inference was skipped, as axpreprocess's model property;
 *   roi (string): "frame" (one tensor per frame, e.g. a detector) or "objects" (a per-object
 *     secondary stage);
 *   interval (uint): the inference-interval.
 * A frame where inference ran and found nothing has no marker (and an output tensor meta).
 * axtracker puts predicted objects (ax-detection param `predicted` TRUE) on marked frames. */
#define GST_AX_INFERENCE_SKIPPED_META "ax-inference-skipped"

/* The GstCustomMeta info of the marker, registered on first call. */
const GstMetaInfo *gst_ax_inference_skipped_meta_get_info(void);
/* Marks `buffer` (writable) as skipped for `model`; per_object: a roi=objects stage. */
void gst_buffer_add_ax_inference_skipped_meta(GstBuffer *buffer, const gchar *model,
                                              gboolean per_object, guint interval);
/* The structure of the first marker for `model` (exact string), or with model NULL of the first
 * whole-frame (roi "frame") marker, or NULL when the frame has none. Owned by the buffer. */
const GstStructure *gst_buffer_get_ax_inference_skipped(GstBuffer *buffer, const gchar *model);

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

/* The `ax-detection` values of one detection, keyed by its ROI's id. Copied by every copy and
 * scale transform (videoscale, videoconvert), so it outlives the ROI's parameter structures. */
typedef struct {
  GstMeta meta;
  gint roi_id;             /* id of the detection's GstVideoRegionOfInterestMeta */
  gint class_id;           /* -1: unknown */
  gdouble score;           /* confidence in [0, 1]; negative: none */
  gchar *label;            /* or NULL */
  gint64 track_id;         /* axtracker's track id; -1: none */
  gchar *text;             /* recognised text (OCR), or NULL */
  gdouble text_confidence; /* of text; negative: none */
  gboolean predicted;      /* axtracker's prediction on a skipped frame, not a detection */
} GstAxDetectionMeta;

GType gst_ax_detection_meta_api_get_type(void);
#define GST_AX_DETECTION_META_API_TYPE (gst_ax_detection_meta_api_get_type())
const GstMetaInfo *gst_ax_detection_meta_get_info(void);
#define GST_AX_DETECTION_META_INFO (gst_ax_detection_meta_get_info())

GType gst_ax_classification_meta_api_get_type(void);
#define GST_AX_CLASSIFICATION_META_API_TYPE (gst_ax_classification_meta_api_get_type())
const GstMetaInfo *gst_ax_classification_meta_get_info(void);
#define GST_AX_CLASSIFICATION_META_INFO (gst_ax_classification_meta_get_info())

GType gst_ax_keypoints_meta_api_get_type(void);
#define GST_AX_KEYPOINTS_META_API_TYPE (gst_ax_keypoints_meta_api_get_type())
const GstMetaInfo *gst_ax_keypoints_meta_get_info(void);
#define GST_AX_KEYPOINTS_META_INFO (gst_ax_keypoints_meta_get_info())

/* The GstCustomMeta of the whole frame's classes, registered as GST_AX_CLASSIFICATION_PARAM on
 * first call: gst_buffer_add_custom_meta() and gst_buffer_get_custom_meta() take that name. */
const GstMetaInfo *gst_ax_classification_custom_meta_get_info(void);

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

/* The detection meta of `roi_id`, added with no values (class_id -1, score -1, track_id -1, no
 * label or text) when the buffer (writable) has none; set its fields with the setters below. */
GstAxDetectionMeta *gst_buffer_obtain_ax_detection_meta(GstBuffer *buffer, gint roi_id);
/* The detection values of `roi_id`, or NULL. */
GstAxDetectionMeta *gst_buffer_get_ax_detection_meta(GstBuffer *buffer, gint roi_id);
/* Replace a string field with a copy of `value` (NULL clears it). */
void gst_ax_detection_meta_set_label(GstAxDetectionMeta *meta, const gchar *label);
void gst_ax_detection_meta_set_text(GstAxDetectionMeta *meta, const gchar *text);

/* Getters that check bounds: label of rank `index` (NULL when absent), score, class id (-1). */
const gchar *gst_ax_classification_meta_get_label(const GstAxClassificationMeta *meta, guint index);
gfloat gst_ax_classification_meta_get_score(const GstAxClassificationMeta *meta, guint index);
gint gst_ax_classification_meta_get_class_id(const GstAxClassificationMeta *meta, guint index);
/* Point `index` into *x, *y; FALSE when out of range. */
gboolean gst_ax_keypoints_meta_get_point(const GstAxKeypointsMeta *meta, guint index, gfloat *x,
                                         gfloat *y);

G_END_DECLS
