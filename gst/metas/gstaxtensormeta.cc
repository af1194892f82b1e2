// The tensor meta of axtensormeta.h: tensors (a GstBuffer of one memory per tensor) and the
// frame -> tensor geometry, riding on video buffers between axpreprocess, axinference, axdecode.
#include "axstream/gst/axtensormeta.h"

namespace {

// Tensors do not change with the video's memory, colour or size: the geometry is stored
// explicitly, so a transform keeps the meta only on copies.
const gchar *tensor_meta_tags[] = {nullptr};

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

gboolean tensor_meta_transform(GstBuffer *dest, GstMeta *meta, GstBuffer *, GQuark type, gpointer) {
  if (!GST_META_TRANSFORM_IS_COPY(type)) return FALSE;
  auto *m = reinterpret_cast<GstAxTensorMeta *>(meta);
  // The copy shares the tensors (a ref), as buffer copies share their memory.
  GstAxTensorMeta *copy =
      gst_buffer_add_ax_tensor_meta(dest, m->kind, m->model, m->roi_id, &m->transform, m->tensors);
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
