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

// Whether `format` packs pixel pairs that share their chroma into one plane (YUY2, UYVY, YVYU:
// Y0 U Y1 V): a region there must start on a pair, at an even x. At an odd x the plane's bytes
// from the origin on read as pairs with U and V swapped and taken from two different pairs.
inline bool packs_pixel_pairs(const GstVideoFormatInfo *format) {
  const guint components = GST_VIDEO_FORMAT_INFO_N_COMPONENTS(format);
  for (guint c = 0; c < components; ++c)
    for (guint d = c + 1; d < components; ++d)
      if (GST_VIDEO_FORMAT_INFO_PLANE(format, c) == GST_VIDEO_FORMAT_INFO_PLANE(format, d) &&
          GST_VIDEO_FORMAT_INFO_W_SUB(format, c) != GST_VIDEO_FORMAT_INFO_W_SUB(format, d))
        return true;
  return false;
}

// Our readers' part of upstream's ALLOCATION query: for caps whose format packs pixel pairs,
// GstVideoCropMeta is taken out of what downstream (a sink) offered, so videocrop copies the
// region (its copy of an odd left edge keeps the pairs whole) instead of attaching a meta whose
// odd x no reader of ours can start at.
inline void drop_crop_meta_for_pixel_pairs(GstQuery *query) {
  GstCaps *caps = nullptr;
  gst_query_parse_allocation(query, &caps, nullptr);
  GstVideoInfo info;
  guint index = 0;
  if (caps && gst_video_info_from_caps(&info, caps) && packs_pixel_pairs(info.finfo) &&
      gst_query_find_allocation_meta(query, GST_VIDEO_CROP_META_API_TYPE, &index))
    gst_query_remove_nth_allocation_meta(query, index);
}

// Byte offsets of the crop origin in each plane of `frame`, for a `width` x `height` region (the
// caps) at the meta's x, y; chroma planes start at the sample covering that pixel (as videocrop
// cuts 4:2:0 frames). Empty `error` when the region lies inside the mapped frame and, for a
// format that packs pixel pairs, starts at an even x; otherwise it says why (the offsets are then
// zero).
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
  if (packs_pixel_pairs(format) && crop.x % 2 != 0) {
    error = "GstVideoCropMeta x " + std::to_string(crop.x) + " on a " +
            GST_VIDEO_FORMAT_INFO_NAME(format) +
            " frame splits a pixel pair (its U and V belong to pixels " +
            std::to_string(crop.x - 1) + " and " + std::to_string(crop.x) + "): expected an even x";
    return offsets;
  }
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
