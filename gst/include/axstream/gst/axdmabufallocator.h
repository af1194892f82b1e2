/* A GstAllocator handing out device-visible memory from the HAL allocator (hal::DmaBuffer: a DMA
 * heap or /dev/udmabuf where the kernel has one, a sealed memfd otherwise). Dmabufs come back as
 * GstDmaBufMemory, memfds as GstFdMemory, so gst_is_fd_memory() holds for every memory it makes
 * and gst_is_dmabuf_memory() tells which kind it is. The tensor pool and the video pool that
 * axpreprocess proposes upstream both allocate through it. Public, C-compatible. */
#pragma once

#include <gst/gst.h>
#include <gst/video/video.h>

G_BEGIN_DECLS

#define GST_AX_DMABUF_ALLOCATOR_NAME "axdmabuf"

#define GST_TYPE_AX_DMABUF_ALLOCATOR (gst_ax_dmabuf_allocator_get_type())
G_DECLARE_FINAL_TYPE(GstAxDmaBufAllocator, gst_ax_dmabuf_allocator, GST, AX_DMABUF_ALLOCATOR,
                     GstAllocator)

/* The process-wide allocator (registered as GST_AX_DMABUF_ALLOCATOR_NAME on first use); a new
 * reference. gst_allocator_alloc() on it honours GstAllocationParams prefix and padding and
 * returns NULL (with a GST_WARNING naming the reason) when no backend can allocate. */
GstAllocator *gst_ax_dmabuf_allocator_get(void);

/* Whether the allocator's memory is GstDmaBufMemory (a DMA heap or udmabuf answered) rather than
 * memfd GstFdMemory; probed once per process with a one-page allocation. */
gboolean gst_ax_dmabuf_allocator_makes_dmabufs(void);

/* A GstVideoBufferPool (not yet active) for frames of `caps` whose memory comes from the
 * allocator above, with GstVideoMeta on every buffer (offsets and strides of the planes), at
 * least `min_buffers` buffers. NULL when the caps are not raw video. */
GstBufferPool *gst_ax_dmabuf_video_pool_new(GstCaps *caps, guint min_buffers);

G_END_DECLS
