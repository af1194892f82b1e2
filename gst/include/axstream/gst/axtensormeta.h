/* Tensors riding on video buffers: axpreprocess attaches the model's input tensors with the
 * geometry of the frame->tensor transform; axinference attaches the device's output tensors.
 * Public, C-compatible: apps read these in pad probes. */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

/* How tensor pixel coordinates map back to frame pixels:
 *   frame_x = crop_x + (tensor_x - offset_x) / scale_x   (same for y)
 * crop_* is the frame region the tensor was made from, offset_* the letterbox border.
 * The meta carries GstVideoRegionOfInterestMeta's tags: an element scaling the frame (videoscale,
 * videoconvert) rescales crop_* and scale_* to the new frame; one that crops or turns it drops
 * the meta. */
typedef struct {
  gdouble crop_x, crop_y, crop_width, crop_height;
  gdouble scale_x, scale_y;
  gdouble offset_x, offset_y;
  gint tensor_width, tensor_height; /* model input size without padding */
} GstAxTransform;

typedef enum {
  GST_AX_TENSOR_INPUT = 0,  /* device input tensors, made by axpreprocess */
  GST_AX_TENSOR_OUTPUT = 1, /* raw device output tensors, made by axinference */
} GstAxTensorKind;

typedef struct {
  GstMeta meta;
  GstAxTensorKind kind;
  gchar *model;    /* model package path the tensors belong to */
  gint roi_id;     /* -1: whole frame; else id of the GstVideoRegionOfInterestMeta cropped */
  guint stream_id; /* source stream index (multi-stream), 0 by default */
  GstAxTransform transform;
  /* One GstMemory per tensor, in the model's input/output order, each exactly TensorInfo.size
   * bytes in the device layout (padded int8 NHWC). fd/dmabuf memory where the allocator has it. */
  GstBuffer *tensors;
} GstAxTensorMeta;

GType gst_ax_tensor_meta_api_get_type(void);
#define GST_AX_TENSOR_META_API_TYPE (gst_ax_tensor_meta_api_get_type())
const GstMetaInfo *gst_ax_tensor_meta_get_info(void);
#define GST_AX_TENSOR_META_INFO (gst_ax_tensor_meta_get_info())

/* Takes a ref on `tensors`. */
GstAxTensorMeta *gst_buffer_add_ax_tensor_meta(GstBuffer *buffer, GstAxTensorKind kind,
                                               const gchar *model, gint roi_id,
                                               const GstAxTransform *transform, GstBuffer *tensors);
/* First meta of `kind` for `roi_id` (any model when model == NULL), or NULL. */
GstAxTensorMeta *gst_buffer_get_ax_tensor_meta(GstBuffer *buffer, GstAxTensorKind kind,
                                               const gchar *model, gint roi_id);

G_END_DECLS
