// Rotated crops for secondary inference on text boxes: the quadrilateral given by 4 corners
// (dbnet's rotated rectangle) is cut out of a frame and warped upright, as PaddleOCR's
// get_rotate_crop_image does. GStreamer-free.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "axstream/preprocess/preprocess.h"

namespace axstream::preprocess {

struct Point2 {
  float x = 0, y = 0;
};

// A packed RGB image owning its pixels.
struct RgbImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // width * height * 3, rows packed
  // The image as a Frame for Preprocessor (format RGB), valid while this image lives.
  Frame frame() const;
};

// Corners in any order are sorted into top-left, top-right, bottom-right, bottom-left (the two
// leftmost points are the left side, the upper of each side is its top). The result is
// max(|tl-tr|, |bl-br|) wide and max(|tl-bl|, |tr-br|) high (at least 1 pixel each), sampled with
// a perspective warp (bicubic, replicated border); an upright result at least 1.5 times higher
// than wide is turned 90 degrees counter-clockwise so vertical text lies horizontally.
// YUV frames (NV12, I420, YUY2, UYVY) of odd sizes are read as GStreamer lays them out (chroma
// planes ceil(w / 2) x ceil(h / 2), YUY2/UYVY rows ceil(w / 2) pairs) and converted with
// `colorimetry`'s matrix and range. Throws
// InvalidArgument for an empty frame.
RgbImage rotated_crop(const Frame &frame, const std::array<Point2, 4> &corners,
                      const Colorimetry &colorimetry = {});

}  // namespace axstream::preprocess
