// Device-visible GstMemory from hal::DmaBuffer, and the video pool built on it.
#include <gst/allocators/gstdmabuf.h>
#include <gst/allocators/gstfdmemory.h>
#include <gst/video/gstvideopool.h>

#include <exception>

#include "axstream/gst/axdmabufallocator.h"
#include "axstream/hal/dmabuf.h"

GST_DEBUG_CATEGORY_STATIC(ax_dmabuf_allocator_debug);
#define GST_CAT_DEFAULT ax_dmabuf_allocator_debug

struct _GstAxDmaBufAllocator {
  GstAllocator parent;
  // The memories belong to these (so gst_is_fd_memory / gst_is_dmabuf_memory see them and they
  // close the fds); this allocator only decides which and makes the fds.
  GstAllocator *fd_allocator;
  GstAllocator *dmabuf_allocator;
};

G_DEFINE_TYPE_WITH_CODE(GstAxDmaBufAllocator, gst_ax_dmabuf_allocator, GST_TYPE_ALLOCATOR,
                        GST_DEBUG_CATEGORY_INIT(ax_dmabuf_allocator_debug, "axdmabufallocator", 0,
                                                "axstream device-visible memory allocator"))

// A KEEP_MAPPED GstFdMemory keeps the protection of its first map and, when a later map asks for
// access outside it, mprotect()s the whole mapping to the new access alone. A frame that a source
// maps WRITE and axpreprocess maps READ then flipped twice per frame (two mprotects of the whole
// frame, each rewriting its page table entries, taking write access away also flushing the TLBs
// of the other CPUs). Mapping it once read-write makes every later map a subset of the kept
// protection: no system call after the first.
static bool keep_mapped_read_write(GstMemory *memory) {
  GstMapInfo map;
  if (!gst_memory_map(memory, &map, GST_MAP_READWRITE)) return false;
  gst_memory_unmap(memory, &map);
  return true;
}

static GstMemory *gst_ax_dmabuf_allocator_alloc(GstAllocator *allocator, gsize size,
                                                GstAllocationParams *params) {
  auto *self = GST_AX_DMABUF_ALLOCATOR(allocator);
  const gsize prefix = params ? params->prefix : 0;
  const gsize padding = params ? params->padding : 0;
  const gsize total = prefix + size + padding;
  try {
    // mmap'ed buffers are page aligned, which covers any alignment a GstAllocationParams asks.
    axstream::hal::DmaBuffer buffer = axstream::hal::DmaBuffer::allocate(total, "axstream-gst");
    // The memory owns this duplicate (closed when the memory is freed); `buffer` drops its own.
    const int fd = buffer.dup_fd();
    GstMemory *memory =
        buffer.is_dmabuf()
            ? gst_dmabuf_allocator_alloc(self->dmabuf_allocator, fd, total)
            : gst_fd_allocator_alloc(self->fd_allocator, fd, total, GST_FD_MEMORY_FLAG_KEEP_MAPPED);
    if (!memory) {
      GST_WARNING_OBJECT(self, "cannot wrap fd %d of %" G_GSIZE_FORMAT " bytes as GstMemory", fd,
                         total);
      return nullptr;
    }
    if (!buffer.is_dmabuf() && !keep_mapped_read_write(memory)) {
      GST_WARNING_OBJECT(self, "cannot map fd %d of %" G_GSIZE_FORMAT " bytes", fd, total);
      gst_memory_unref(memory);
      return nullptr;
    }
    if (prefix || padding) gst_memory_resize(memory, gssize(prefix), size);
    // Every backend hands out zero-filled pages.
    GST_MINI_OBJECT_FLAG_SET(memory, GST_MEMORY_FLAG_ZERO_PREFIXED | GST_MEMORY_FLAG_ZERO_PADDED);
    return memory;
  } catch (const std::exception &error) {
    GST_WARNING_OBJECT(self, "cannot allocate %" G_GSIZE_FORMAT " bytes: %s", total, error.what());
    return nullptr;
  }
}

static void gst_ax_dmabuf_allocator_free(GstAllocator *allocator, GstMemory *memory) {
  // Never reached: the memories' allocator is the fd or dmabuf allocator that wrapped them.
  GST_ERROR_OBJECT(allocator, "asked to free memory %p it does not own", memory);
}

static void gst_ax_dmabuf_allocator_finalize(GObject *object) {
  auto *self = GST_AX_DMABUF_ALLOCATOR(object);
  gst_clear_object(&self->fd_allocator);
  gst_clear_object(&self->dmabuf_allocator);
  G_OBJECT_CLASS(gst_ax_dmabuf_allocator_parent_class)->finalize(object);
}

static void gst_ax_dmabuf_allocator_class_init(GstAxDmaBufAllocatorClass *klass) {
  G_OBJECT_CLASS(klass)->finalize = gst_ax_dmabuf_allocator_finalize;
  GST_ALLOCATOR_CLASS(klass)->alloc = gst_ax_dmabuf_allocator_alloc;
  GST_ALLOCATOR_CLASS(klass)->free = gst_ax_dmabuf_allocator_free;
}

static void gst_ax_dmabuf_allocator_init(GstAxDmaBufAllocator *self) {
  self->fd_allocator = gst_fd_allocator_new();
  self->dmabuf_allocator = gst_dmabuf_allocator_new();
}

GstAllocator *gst_ax_dmabuf_allocator_get(void) {
  static gsize registered = 0;
  if (g_once_init_enter(&registered)) {
    auto *allocator = GST_ALLOCATOR(g_object_new(GST_TYPE_AX_DMABUF_ALLOCATOR, nullptr));
    gst_object_ref_sink(allocator);
    // gst_allocator_register takes the reference: the registry keeps it for the process.
    gst_allocator_register(GST_AX_DMABUF_ALLOCATOR_NAME, allocator);
    g_once_init_leave(&registered, 1);
  }
  return gst_allocator_find(GST_AX_DMABUF_ALLOCATOR_NAME);
}

gboolean gst_ax_dmabuf_allocator_makes_dmabufs(void) {
  static gsize answer = 0;  // 1: no, 2: yes
  if (g_once_init_enter(&answer)) {
    GstAllocator *allocator = gst_ax_dmabuf_allocator_get();
    GstMemory *probe = gst_allocator_alloc(allocator, 4096, nullptr);
    const bool dmabuf = probe && gst_is_dmabuf_memory(probe);
    if (probe) gst_memory_unref(probe);
    gst_object_unref(allocator);
    g_once_init_leave(&answer, dmabuf ? 2 : 1);
  }
  return answer == 2;
}

GstBufferPool *gst_ax_dmabuf_video_pool_new(GstCaps *caps, guint min_buffers) {
  GstVideoInfo info;
  if (!caps || !gst_video_info_from_caps(&info, caps)) return nullptr;
  GstBufferPool *pool = gst_video_buffer_pool_new();
  GstStructure *config = gst_buffer_pool_get_config(pool);
  gst_buffer_pool_config_set_params(config, caps, guint(GST_VIDEO_INFO_SIZE(&info)), min_buffers,
                                    0);
  GstAllocator *allocator = gst_ax_dmabuf_allocator_get();
  gst_buffer_pool_config_set_allocator(config, allocator, nullptr);
  gst_object_unref(allocator);
  gst_buffer_pool_config_add_option(config, GST_BUFFER_POOL_OPTION_VIDEO_META);
  if (!gst_buffer_pool_set_config(pool, config)) {
    GST_WARNING("video pool refused the configuration for %" GST_PTR_FORMAT, caps);
    gst_object_unref(pool);
    return nullptr;
  }
  return pool;
}
