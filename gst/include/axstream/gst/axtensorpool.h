/* A GstBufferPool of tensor buffers: each buffer holds one fd-backed GstMemory per tensor (from
 * GstAxDmaBufAllocator: a dmabuf where the kernel has a provider, a sealed memfd otherwise, so the
 * runtime can take the fds), reused frame after frame.
 * axpreprocess and axinference make their tensor metas' buffers from it. Public, C-compatible. */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_AX_TENSOR_POOL (gst_ax_tensor_pool_get_type())
G_DECLARE_FINAL_TYPE(GstAxTensorPool, gst_ax_tensor_pool, GST, AX_TENSOR_POOL, GstBufferPool)

/* An active pool whose buffers hold `n_tensors` memories of `sizes[i]` bytes each, at least
 * `min_buffers` preallocated, unbounded (buffers stay alive while downstream holds frames).
 * NULL with a GST_WARNING if a memfd cannot be made. Deactivate and unref when done. */
GstBufferPool *gst_ax_tensor_pool_new(const gsize *sizes, guint n_tensors, guint min_buffers);

G_END_DECLS
