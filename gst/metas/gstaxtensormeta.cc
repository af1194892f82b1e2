// The tensor meta of axtensormeta.h: tensors (a GstBuffer of one memory per tensor) and the
// frame -> tensor geometry, riding on video buffers between axpreprocess, axinference, axdecode.
#include <gst/video/video.h>

#include "axstream/gst/axtensormeta.h"

namespace {

// The tensors do not change with the frame, but the geometry mapping them back to frame pixels
// does: the tags of GstVideoRegionOfInterestMeta, so an element scaling the frame (videoscale, or
// videoconvert at the same size) rescales the geometry (below) and one that crops or turns it
// drops the meta. Untagged, videoscale copied the old geometry and axdecode after it put the
// boxes in the unscaled frame's pixels.
const gchar *tensor_meta_tags[] = {GST_META_TAG_VIDEO_STR, GST_META_TAG_VIDEO_ORIENTATION_STR,
                                   GST_META_TAG_VIDEO_SIZE_STR, nullptr};

gboolean tensor_meta_init(GstMeta *meta, gpointer, GstBuffer *) {
  auto *m = reinterpret_cast<GstAxTensorMeta *>(meta);
  m->kind = GST_AX_TENSOR_INPUT;
  m->model = nullptr;
  m->roi_id = -1;
  m->stream_id = 0;
  m->transform = GstAxTransform{};
  m->tensors = nullptr;
  return TRUE;
}

void tensor_meta_free(GstMeta *meta, GstBuffer *) {
  auto *m = reinterpret_cast<GstAxTensorMeta *>(meta);
  g_free(m->model);
  m->model = nullptr;
  gst_clear_buffer(&m->tensors);
}

gboolean tensor_meta_transform(GstBuffer *dest, GstMeta *meta, GstBuffer *, GQuark type,
                               gpointer data) {
  auto *m = reinterpret_cast<GstAxTensorMeta *>(meta);
  GstAxTransform transform = m->transform;
  if (GST_VIDEO_META_TRANSFORM_IS_SCALE(type)) {
    // frame_x = crop_x + (tensor_x - offset_x) / scale_x, and the frame's x scales by sx.
    const auto *scale = static_cast<const GstVideoMetaTransform *>(data);
    const gint in_width = GST_VIDEO_INFO_WIDTH(scale->in_info);
    const gint in_height = GST_VIDEO_INFO_HEIGHT(scale->in_info);
    if (in_width <= 0 || in_height <= 0) return FALSE;
    const gdouble sx = gdouble(GST_VIDEO_INFO_WIDTH(scale->out_info)) / in_width;
    const gdouble sy = gdouble(GST_VIDEO_INFO_HEIGHT(scale->out_info)) / in_height;
    transform.crop_x *= sx;
    transform.crop_width *= sx;
    transform.scale_x /= sx;
    transform.crop_y *= sy;
    transform.crop_height *= sy;
    transform.scale_y /= sy;
  } else if (!GST_META_TRANSFORM_IS_COPY(type)) {
    return FALSE;
  }
  // The copy shares the tensors (a ref), as buffer copies share their memory.
  GstAxTensorMeta *copy =
      gst_buffer_add_ax_tensor_meta(dest, m->kind, m->model, m->roi_id, &transform, m->tensors);
  if (!copy) return FALSE;
  copy->stream_id = m->stream_id;
  return TRUE;
}

}  // namespace

GType gst_ax_tensor_meta_api_get_type(void) {
  static GType type = 0;
  if (g_once_init_enter(&type)) {
    GType registered = gst_meta_api_type_register("GstAxTensorMetaAPI", tensor_meta_tags);
    g_once_init_leave(&type, registered);
  }
  return type;
}

const GstMetaInfo *gst_ax_tensor_meta_get_info(void) {
  static const GstMetaInfo *info = nullptr;
  if (g_once_init_enter(&info)) {
    const GstMetaInfo *registered =
        gst_meta_register(GST_AX_TENSOR_META_API_TYPE, "GstAxTensorMeta", sizeof(GstAxTensorMeta),
                          tensor_meta_init, tensor_meta_free, tensor_meta_transform);
    g_once_init_leave(&info, registered);
  }
  return info;
}

GstAxTensorMeta *gst_buffer_add_ax_tensor_meta(GstBuffer *buffer, GstAxTensorKind kind,
                                               const gchar *model, gint roi_id,
                                               const GstAxTransform *transform,
                                               GstBuffer *tensors) {
  g_return_val_if_fail(GST_IS_BUFFER(buffer), nullptr);
  auto *m = reinterpret_cast<GstAxTensorMeta *>(
      gst_buffer_add_meta(buffer, GST_AX_TENSOR_META_INFO, nullptr));
  if (!m) return nullptr;
  m->kind = kind;
  m->model = g_strdup(model);
  m->roi_id = roi_id;
  if (transform) m->transform = *transform;
  m->tensors = tensors ? gst_buffer_ref(tensors) : nullptr;
  return m;
}

GstAxTensorMeta *gst_buffer_get_ax_tensor_meta(GstBuffer *buffer, GstAxTensorKind kind,
                                               const gchar *model, gint roi_id) {
  g_return_val_if_fail(GST_IS_BUFFER(buffer), nullptr);
  gpointer state = nullptr;
  GstMeta *meta;
  while ((meta = gst_buffer_iterate_meta_filtered(buffer, &state, GST_AX_TENSOR_META_API_TYPE))) {
    auto *m = reinterpret_cast<GstAxTensorMeta *>(meta);
    if (m->kind == kind && m->roi_id == roi_id && (!model || g_strcmp0(model, m->model) == 0))
      return m;
  }
  return nullptr;
}
