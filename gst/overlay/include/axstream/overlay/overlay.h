// Draws detection results (boxes, labels with scores, keypoints) in place into a video frame's
// planes with OpenCV. GStreamer-free: the element hands over the mapped planes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace axstream::overlay {

enum class PixelFormat {
  RGB,
  BGR,
  RGBx,
  BGRx,
  RGBA,
  BGRA,
  xRGB,
  xBGR,
  NV12,
  I420,
  YUY2,
  UYVY,
  GRAY8
};

// Parses "RGB", "BGRx", "NV12", ... (GStreamer's format names). Throws InvalidArgument.
PixelFormat pixel_format_from_name(const std::string &name);

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  static Rgb from_hex(uint32_t rgb) {
    return {static_cast<uint8_t>(rgb >> 16), static_cast<uint8_t>(rgb >> 8),
            static_cast<uint8_t>(rgb)};
  }
};

// A frame's planes as mapped: packed formats (RGB family, YUY2, UYVY, GRAY8) use plane 0; NV12
// planes 0 (Y) and 1 (UV); I420 planes 0 (Y), 1 (U) and 2 (V).
struct FrameView {
  PixelFormat format = PixelFormat::RGB;
  int width = 0, height = 0;
  uint8_t *planes[3] = {nullptr, nullptr, nullptr};
  int strides[3] = {0, 0, 0};
};

struct OverlayObject {
  float x = 0, y = 0, width = 0, height = 0;  // frame pixels
  std::string text;                           // e.g. "face 0.93"; empty: no label
  std::vector<std::pair<float, float>> keypoints;
};

struct OverlayStyle {
  Rgb box_color = Rgb::from_hex(0x00ff00);
  Rgb text_color = Rgb::from_hex(0x000000);
  Rgb keypoint_color = Rgb::from_hex(0xff0000);
  int thickness = 2;
  double font_scale = 0.5;
  bool draw_keypoints = true;
  bool draw_labels = true;
};

// Draws every object (boxes clipped to the frame) in place. Frame-level text (e.g. a whole-frame
// classification) is an object covering the frame with width or height 0 and text set: only the
// text is drawn, at (x, y). YUV frames get the colours in BT.601 limited range, GRAY8 their
// full-range BT.601 luma; YUY2 and UYVY are drawn as I420 is (chroma at half the height), each
// drawn chroma sample written to both rows of its pair, the rest of the frame untouched.
void draw_objects(const FrameView &frame, const std::vector<OverlayObject> &objects,
                  const OverlayStyle &style);

// "face 0.93": label and score with two decimals.
std::string format_label(const std::string &label, double score);

}  // namespace axstream::overlay
