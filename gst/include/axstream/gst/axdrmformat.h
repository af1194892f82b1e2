/* DRM fourcc <-> GstVideoFormat for frames imported as dmabufs (DRM names memory order from the
 * most significant byte of a little-endian word, GStreamer from the first byte in memory:
 * DRM_FORMAT_XRGB8888 is GST_VIDEO_FORMAT_BGRx). Public, C-compatible. */
#pragma once

#include <gst/video/video.h>

G_BEGIN_DECLS

/* GST_VIDEO_FORMAT_UNKNOWN when the fourcc has no GStreamer twin in the table. */
GstVideoFormat gst_ax_video_format_from_drm_fourcc(guint32 fourcc);

/* 0 (DRM_FORMAT_INVALID) when the format has no DRM twin in the table. */
guint32 gst_ax_drm_fourcc_from_video_format(GstVideoFormat format);

G_END_DECLS
