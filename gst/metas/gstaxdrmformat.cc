// The DRM fourcc <-> GstVideoFormat table (the same pairs GStreamer >= 1.24's
// gst_video_dma_drm_fourcc_from_format uses; Debian 12's GStreamer 1.22 has no such table).
#include <drm_fourcc.h>

#include <iterator>

#include "axstream/gst/axdrmformat.h"

namespace {

struct FormatPair {
  guint32 fourcc;
  GstVideoFormat format;
};

constexpr FormatPair kFormats[] = {
    {DRM_FORMAT_NV12, GST_VIDEO_FORMAT_NV12},     {DRM_FORMAT_NV21, GST_VIDEO_FORMAT_NV21},
    {DRM_FORMAT_NV16, GST_VIDEO_FORMAT_NV16},     {DRM_FORMAT_NV61, GST_VIDEO_FORMAT_NV61},
    {DRM_FORMAT_NV24, GST_VIDEO_FORMAT_NV24},     {DRM_FORMAT_YUV420, GST_VIDEO_FORMAT_I420},
    {DRM_FORMAT_YVU420, GST_VIDEO_FORMAT_YV12},   {DRM_FORMAT_YUV422, GST_VIDEO_FORMAT_Y42B},
    {DRM_FORMAT_YUV444, GST_VIDEO_FORMAT_Y444},   {DRM_FORMAT_YUYV, GST_VIDEO_FORMAT_YUY2},
    {DRM_FORMAT_YVYU, GST_VIDEO_FORMAT_YVYU},     {DRM_FORMAT_UYVY, GST_VIDEO_FORMAT_UYVY},
    {DRM_FORMAT_VYUY, GST_VIDEO_FORMAT_VYUY},     {DRM_FORMAT_P010, GST_VIDEO_FORMAT_P010_10LE},
    {DRM_FORMAT_XRGB8888, GST_VIDEO_FORMAT_BGRx}, {DRM_FORMAT_ARGB8888, GST_VIDEO_FORMAT_BGRA},
    {DRM_FORMAT_XBGR8888, GST_VIDEO_FORMAT_RGBx}, {DRM_FORMAT_ABGR8888, GST_VIDEO_FORMAT_RGBA},
    {DRM_FORMAT_RGBX8888, GST_VIDEO_FORMAT_xBGR}, {DRM_FORMAT_RGBA8888, GST_VIDEO_FORMAT_ABGR},
    {DRM_FORMAT_BGRX8888, GST_VIDEO_FORMAT_xRGB}, {DRM_FORMAT_BGRA8888, GST_VIDEO_FORMAT_ARGB},
    {DRM_FORMAT_RGB888, GST_VIDEO_FORMAT_BGR},    {DRM_FORMAT_BGR888, GST_VIDEO_FORMAT_RGB},
    {DRM_FORMAT_RGB565, GST_VIDEO_FORMAT_RGB16},  {DRM_FORMAT_BGR565, GST_VIDEO_FORMAT_BGR16},
    {DRM_FORMAT_R8, GST_VIDEO_FORMAT_GRAY8},      {DRM_FORMAT_R16, GST_VIDEO_FORMAT_GRAY16_LE},
};

}  // namespace

GstVideoFormat gst_ax_video_format_from_drm_fourcc(guint32 fourcc) {
  for (const FormatPair &pair : kFormats)
    if (pair.fourcc == fourcc) return pair.format;
  return GST_VIDEO_FORMAT_UNKNOWN;
}

guint32 gst_ax_drm_fourcc_from_video_format(GstVideoFormat format) {
  for (const FormatPair &pair : kFormats)
    if (pair.format == format) return pair.fourcc;
  return DRM_FORMAT_INVALID;
}
