// Tensor buffers from the HAL's device-visible allocator (DMA heap / udmabuf dmabufs, sealed
// memfds otherwise) wrapped as GstDmaBufMemory or GstFdMemory: fd memory the runtime can run on
// without a copy, allocated once per pool slot instead of per frame.
#include <vector>

#include "axstream/gst/axdmabufallocator.h"
#include "axstream/gst/axtensorpool.h"

GST_DEBUG_CATEGORY_STATIC(ax_tensor_pool_debug);
#define GST_CAT_DEFAULT ax_tensor_pool_debug

struct _GstAxTensorPool {
  GstBufferPool parent;
  GstAllocator *allocator;  // GstAxDmaBufAllocator
  std::vector<gsize> *sizes;
};

G_DEFINE_TYPE_WITH_CODE(GstAxTensorPool, gst_ax_tensor_pool, GST_TYPE_BUFFER_POOL,
                        GST_DEBUG_CATEGORY_INIT(ax_tensor_pool_debug, "axtensorpool", 0,
                                                "axstream tensor buffer pool"))

static GstMemory *new_fd_memory(GstAxTensorPool *self, gsize size) {
  // The HAL picks the device-visible backend: a DMA heap or udmabuf where the kernel has one
  // (so a real board imports the fd), a sealed memfd otherwise.
  GstMemory *memory = gst_allocator_alloc(self->allocator, size, nullptr);
  if (!memory)
    GST_WARNING_OBJECT(self, "cannot allocate a %" G_GSIZE_FORMAT "-byte tensor buffer", size);
  return memory;
}

static GstFlowReturn gst_ax_tensor_pool_alloc_buffer(GstBufferPool *pool, GstBuffer **buffer,
                                                     GstBufferPoolAcquireParams *) {
  auto *self = GST_AX_TENSOR_POOL(pool);
  GstBuffer *out = gst_buffer_new();
  for (gsize size : *self->sizes) {
    GstMemory *memory = new_fd_memory(self, size);
    if (!memory) {
      gst_buffer_unref(out);
      return GST_FLOW_ERROR;
    }
    gst_buffer_append_memory(out, memory);
  }
  *buffer = out;
  return GST_FLOW_OK;
}

static void gst_ax_tensor_pool_finalize(GObject *object) {
  auto *self = GST_AX_TENSOR_POOL(object);
  gst_clear_object(&self->allocator);
  delete self->sizes;
  G_OBJECT_CLASS(gst_ax_tensor_pool_parent_class)->finalize(object);
}

static void gst_ax_tensor_pool_class_init(GstAxTensorPoolClass *klass) {
  G_OBJECT_CLASS(klass)->finalize = gst_ax_tensor_pool_finalize;
  GST_BUFFER_POOL_CLASS(klass)->alloc_buffer = gst_ax_tensor_pool_alloc_buffer;
}

static void gst_ax_tensor_pool_init(GstAxTensorPool *self) {
  self->allocator = gst_ax_dmabuf_allocator_get();
  self->sizes = new std::vector<gsize>();
}

GstBufferPool *gst_ax_tensor_pool_new(const gsize *sizes, guint n_tensors, guint min_buffers) {
  g_return_val_if_fail(n_tensors > 0 && sizes, nullptr);
  auto *self = GST_AX_TENSOR_POOL(g_object_new(GST_TYPE_AX_TENSOR_POOL, nullptr));
  gst_object_ref_sink(self);
  gsize total = 0;
  for (guint i = 0; i < n_tensors; ++i) {
    self->sizes->push_back(sizes[i]);
    total += sizes[i];
  }
  GstBufferPool *pool = GST_BUFFER_POOL(self);
  GstStructure *config = gst_buffer_pool_get_config(pool);
  gst_buffer_pool_config_set_params(config, nullptr, guint(total), min_buffers, 0);
  if (!gst_buffer_pool_set_config(pool, config) || !gst_buffer_pool_set_active(pool, TRUE)) {
    GST_WARNING_OBJECT(pool, "could not configure and activate the tensor pool");
    gst_object_unref(pool);
    return nullptr;
  }
  return pool;
}
