// GstVideoCropMeta on a mapped frame: where the visible region (the caps' size, at the meta's
// origin) starts in each plane. Upstream (videocrop, decoders of streams coded larger than
// shown) attaches the meta instead of copying when downstream takes it, which our elements
// pass on in the allocation query; the frame then maps whole (GstVideoMeta's size) and the
// caps describe the cropped region.
#pragma once

#include <gst/video/video.h>

#include <array>
#include <string>

namespace axstream::gst {

// Byte offsets of the crop origin in each plane of `frame`, for a `width` x `height` region (the
// caps) at the meta's x, y; chroma planes start at the sample covering that pixel (as videocrop
// cuts 4:2:0 frames). Empty `error` when the region lies inside the mapped frame; otherwise it
// says why (the offsets are then zero).
inline std::array<gsize, GST_VIDEO_MAX_PLANES> video_crop_offsets(const GstVideoFrame &frame,
                                                                  const GstVideoCropMeta &crop,
                                                                  int width, int height,
                                                                  std::string &error) {
  std::array<gsize, GST_VIDEO_MAX_PLANES> offsets{};
  const guint64 right = guint64(crop.x) + guint64(width);
  const guint64 bottom = guint64(crop.y) + guint64(height);
  if (right > guint64(GST_VIDEO_FRAME_WIDTH(&frame)) ||
      bottom > guint64(GST_VIDEO_FRAME_HEIGHT(&frame))) {
    error = "GstVideoCropMeta " + std::to_string(crop.x) + "," + std::to_string(crop.y) + " " +
            std::to_string(width) + "x" + std::to_string(height) + " (the caps' size) reaches " +
            "beyond the " + std::to_string(GST_VIDEO_FRAME_WIDTH(&frame)) + "x" +
            std::to_string(GST_VIDEO_FRAME_HEIGHT(&frame)) + " frame";
    return offsets;
  }
  const GstVideoFormatInfo *format = frame.info.finfo;
  for (guint p = 0; p < GST_VIDEO_FRAME_N_PLANES(&frame); ++p) {
    // The first component held in plane p gives its subsampling and pixel stride.
    guint component = 0;
    while (component + 1 < GST_VIDEO_FORMAT_INFO_N_COMPONENTS(format) &&
           GST_VIDEO_FORMAT_INFO_PLANE(format, component) != p)
      ++component;
    const gsize column = crop.x >> GST_VIDEO_FORMAT_INFO_W_SUB(format, component);
    const gsize row = crop.y >> GST_VIDEO_FORMAT_INFO_H_SUB(format, component);
    offsets[p] = row * gsize(GST_VIDEO_FRAME_PLANE_STRIDE(&frame, p)) +
                 column * gsize(GST_VIDEO_FORMAT_INFO_PSTRIDE(format, component));
  }
  return offsets;
}

}  // namespace axstream::gst
