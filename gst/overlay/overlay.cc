#include "axstream/overlay/overlay.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <opencv2/imgproc.hpp>

#include "axstream/error.h"

namespace axstream::overlay {
namespace {

struct Yuv {
  uint8_t y, u, v;
};

// BT.601 limited range, what GStreamer's NV12/I420 default to for SD and what videoconvert
// reads back.
Yuv to_yuv(Rgb c) {
  auto clamp8 = [](double v) { return static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L)); };
  return {clamp8(16 + 0.257 * c.r + 0.504 * c.g + 0.098 * c.b),
          clamp8(128 - 0.148 * c.r - 0.291 * c.g + 0.439 * c.b),
          clamp8(128 + 0.439 * c.r - 0.368 * c.g - 0.071 * c.b)};
}

// A monochrome camera's grey: BT.601 luma, full range (GRAY8 has no footroom).
uint8_t to_gray(Rgb c) {
  return static_cast<uint8_t>(
      std::clamp(std::lround(0.299 * c.r + 0.587 * c.g + 0.114 * c.b), 0L, 255L));
}

// One drawing surface: a plane, how its coordinates relate to frame pixels, and a colour mapper.
struct Surface {
  cv::Mat mat;
  double scale;  // plane pixels per frame pixel (0.5 for chroma planes)
  std::function<cv::Scalar(Rgb)> colour;
  int top = 0;  // plane rows above mat's first row: a band of the plane (draw_packed_422)
};

std::vector<Surface> surfaces_of(const FrameView &f) {
  auto packed = [&](int channels, std::function<cv::Scalar(Rgb)> colour) {
    return std::vector<Surface>{
        {cv::Mat(f.height, f.width, CV_8UC(channels), f.planes[0], f.strides[0]), 1.0, colour}};
  };
  const int chroma_w = (f.width + 1) / 2, chroma_h = (f.height + 1) / 2;
  switch (f.format) {
    case PixelFormat::RGB:
      return packed(3, [](Rgb c) { return cv::Scalar(c.r, c.g, c.b); });
    case PixelFormat::BGR:
      return packed(3, [](Rgb c) { return cv::Scalar(c.b, c.g, c.r); });
    case PixelFormat::RGBx:
    case PixelFormat::RGBA:
      return packed(4, [](Rgb c) { return cv::Scalar(c.r, c.g, c.b, 255); });
    case PixelFormat::BGRx:
    case PixelFormat::BGRA:
      return packed(4, [](Rgb c) { return cv::Scalar(c.b, c.g, c.r, 255); });
    case PixelFormat::xRGB:
      return packed(4, [](Rgb c) { return cv::Scalar(255, c.r, c.g, c.b); });
    case PixelFormat::xBGR:
      return packed(4, [](Rgb c) { return cv::Scalar(255, c.b, c.g, c.r); });
    case PixelFormat::GRAY8:
      return packed(1, [](Rgb c) { return cv::Scalar(to_gray(c)); });
    case PixelFormat::NV12:
      return {{cv::Mat(f.height, f.width, CV_8UC1, f.planes[0], f.strides[0]), 1.0,
               [](Rgb c) { return cv::Scalar(to_yuv(c).y); }},
              {cv::Mat(chroma_h, chroma_w, CV_8UC2, f.planes[1], f.strides[1]), 0.5,
               [](Rgb c) { return cv::Scalar(to_yuv(c).u, to_yuv(c).v); }}};
    case PixelFormat::I420:
      return {{cv::Mat(f.height, f.width, CV_8UC1, f.planes[0], f.strides[0]), 1.0,
               [](Rgb c) { return cv::Scalar(to_yuv(c).y); }},
              {cv::Mat(chroma_h, chroma_w, CV_8UC1, f.planes[1], f.strides[1]), 0.5,
               [](Rgb c) { return cv::Scalar(to_yuv(c).u); }},
              {cv::Mat(chroma_h, chroma_w, CV_8UC1, f.planes[2], f.strides[2]), 0.5,
               [](Rgb c) { return cv::Scalar(to_yuv(c).v); }}};
    case PixelFormat::YUY2:
    case PixelFormat::UYVY:
      break;  // draw_packed_422: OpenCV cannot draw on one channel of an interleaved plane
  }
  return {};
}

// Frame pixel -> plane pixel, floored so a frame pixel lands in the chroma sample that covers
// it, and held within `margin` plane pixels of the plane: whatever lies further out is not drawn
// either way, but OpenCV walks a thick line's whole length (an ROI billions of pixels wide, as
// an application's negative width read as unsigned gives, took seconds a frame) and a
// coordinate beyond int is undefined.
int plane_coordinate(double frame_pixel, double scale, int plane_size, int margin) {
  const double pixel = std::floor(frame_pixel * scale);
  return static_cast<int>(std::clamp(pixel, -double(margin), double(plane_size - 1 + margin)));
}

cv::Point scaled(const Surface &s, double x, double y, int margin) {
  return {plane_coordinate(x, s.scale, s.mat.cols, margin),
          plane_coordinate(y, s.scale, s.mat.rows + s.top, margin + s.top) - s.top};
}

void draw_on(const Surface &s, const OverlayObject &object, const OverlayStyle &style) {
  if (!std::isfinite(object.x) || !std::isfinite(object.y) || !std::isfinite(object.width) ||
      !std::isfinite(object.height))
    return;
  const int thickness = std::max(1, static_cast<int>(std::lround(style.thickness * s.scale)));
  // Edges clamped this far outside the plane stay wholly outside it.
  const int box_margin = thickness + 1;
  const bool has_box = object.width > 0 && object.height > 0;
  if (has_box) {
    cv::rectangle(s.mat, scaled(s, object.x, object.y, box_margin),
                  scaled(s, double(object.x) + object.width - 1,
                         double(object.y) + object.height - 1, box_margin),
                  s.colour(style.box_color), thickness, cv::LINE_8);
  }
  if (style.draw_keypoints) {
    const int radius = std::max(1, static_cast<int>(std::lround(2 * style.thickness * s.scale)));
    for (const auto &[x, y] : object.keypoints) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;  // a model's NaN: nowhere to draw
      cv::circle(s.mat, scaled(s, x, y, radius + 1), radius, s.colour(style.keypoint_color),
                 cv::FILLED);
    }
  }
  if (style.draw_labels && !object.text.empty()) {
    const double font_scale = style.font_scale * s.scale;
    const int font_thickness = std::max(1, static_cast<int>(std::lround(s.scale)));
    int baseline = 0;
    const cv::Size size = cv::getTextSize(object.text, cv::FONT_HERSHEY_SIMPLEX, font_scale,
                                          font_thickness, &baseline);
    // Label sits above the box, or inside it when the box touches the top edge; one that starts
    // beyond the frame's right or bottom edge (far enough for the whole label) stays unseen.
    const int label_margin = thickness + size.width + size.height + baseline + 1;
    cv::Point origin = scaled(s, object.x, object.y, label_margin);
    if (has_box) origin.y -= thickness;
    if (origin.y + s.top - size.height - baseline < 0) origin.y = size.height + baseline - s.top;
    const cv::Rect background(origin.x, origin.y - size.height - baseline, size.width,
                              size.height + baseline);
    if (has_box) cv::rectangle(s.mat, background, s.colour(style.box_color), cv::FILLED);
    cv::putText(s.mat, object.text, {origin.x, origin.y - baseline}, cv::FONT_HERSHEY_SIMPLEX,
                font_scale, s.colour(style.text_color), font_thickness, cv::LINE_AA);
  }
}

// Frame rows [first, last] that drawing `objects` can touch, generously: each box with its line
// width, label (above the box, or inside it at the frame's top edge; a chroma plane's half-size
// font may round a few rows taller) and keypoints. Empty (first > last) when nothing is drawn.
std::pair<int, int> rows_drawn(const std::vector<OverlayObject> &objects, const OverlayStyle &style,
                               int frame_height) {
  double first = frame_height, last = -1;
  const double line = style.thickness + 2;
  for (const OverlayObject &object : objects) {
    if (!std::isfinite(object.x) || !std::isfinite(object.y) || !std::isfinite(object.width) ||
        !std::isfinite(object.height))
      continue;
    const bool has_box = object.width > 0 && object.height > 0;
    if (has_box) {
      first = std::min(first, double(object.y) - line);
      last = std::max(last, double(object.y) + object.height + line);
    }
    if (style.draw_keypoints)
      for (const auto &[x, y] : object.keypoints)
        if (std::isfinite(y)) {
          first = std::min(first, double(y) - 2 * style.thickness - 2);
          last = std::max(last, double(y) + 2 * style.thickness + 2);
        }
    if (style.draw_labels && !object.text.empty()) {
      int baseline = 0;
      const cv::Size size =
          cv::getTextSize(object.text, cv::FONT_HERSHEY_SIMPLEX, style.font_scale, 1, &baseline);
      const double label = size.height + 2.0 * baseline + line + 8;
      first = std::min(first, double(object.y) - label);
      last = std::max(last, std::max(double(object.y), label) + 8);
    }
  }
  return {static_cast<int>(std::max(0.0, std::floor(first))),
          static_cast<int>(std::min(double(frame_height - 1), std::ceil(last)))};
}

// Packed 4:2:2 (YUY2: Y0 U Y1 V, UYVY: U Y0 V Y1; each pixel pair shares its U and V) drawn as
// I420 is: the luma at full size, the chroma on 4:2:0 planes made of the even rows' chroma,
// whatever the drawing touched (a mask drawn alongside; anti-aliased text touches pixels
// partly) written back to both rows of the pair. Pixels not drawn on keep their own chroma, and
// a frame whose row pairs share their chroma comes out as drawing on its I420 form and
// repeating each chroma row. Only the band of rows the objects reach is split and joined again
// (a 1080p frame costs 2.4-14 ms whole, under load).
void draw_packed_422(const FrameView &f, const std::vector<OverlayObject> &objects,
                     const OverlayStyle &style) {
  auto [first_row, last_row] = rows_drawn(objects, style, f.height);
  if (first_row > last_row) return;
  first_row &= ~1;  // a whole row pair: chroma row first_row / 2
  const int rows = last_row - first_row + 1;
  const bool yuy2 = f.format == PixelFormat::YUY2;
  const int luma_offset = yuy2 ? 0 : 1, u_offset = yuy2 ? 1 : 0, v_offset = yuy2 ? 3 : 2;
  const int chroma_w = (f.width + 1) / 2, chroma_rows = (rows + 1) / 2;
  uint8_t *band = f.planes[0] + static_cast<std::ptrdiff_t>(first_row) * f.strides[0];
  // The band as pixels (Y, chroma byte) and as macropixels; the even rows' macropixels.
  const cv::Mat pixels(rows, f.width, CV_8UC2, band, f.strides[0]);
  const cv::Mat even_pairs(chroma_rows, chroma_w, CV_8UC4, band, 2 * size_t(f.strides[0]));
  cv::Mat luma, u, v, touched(chroma_rows, chroma_w, CV_8UC1, cv::Scalar(0));
  cv::extractChannel(pixels, luma, luma_offset);
  cv::extractChannel(even_pairs, u, u_offset);
  cv::extractChannel(even_pairs, v, v_offset);
  const int luma_top = first_row, chroma_top = first_row / 2;
  const Surface surfaces[] = {{luma, 1.0, [](Rgb c) { return cv::Scalar(to_yuv(c).y); }, luma_top},
                              {u, 0.5, [](Rgb c) { return cv::Scalar(to_yuv(c).u); }, chroma_top},
                              {v, 0.5, [](Rgb c) { return cv::Scalar(to_yuv(c).v); }, chroma_top},
                              {touched, 0.5, [](Rgb) { return cv::Scalar(255); }, chroma_top}};
  for (const Surface &surface : surfaces)
    for (const OverlayObject &object : objects) draw_on(surface, object, style);
  // insertChannel needs an owning destination; the band is written through a header over it.
  cv::Mat pixels_out = pixels;
  cv::insertChannel(luma, pixels_out, luma_offset);
  for (int cy = 0; cy < chroma_rows; ++cy) {
    const uint8_t *mask = touched.ptr<uint8_t>(cy);
    if (!cv::countNonZero(touched.row(cy))) continue;
    const uint8_t *in_u = u.ptr<uint8_t>(cy), *in_v = v.ptr<uint8_t>(cy);
    for (int pair_row = 2 * cy; pair_row < std::min(2 * cy + 2, rows); ++pair_row) {
      uint8_t *out = band + static_cast<std::ptrdiff_t>(pair_row) * f.strides[0];
      for (int cx = 0; cx < chroma_w; ++cx) {
        if (!mask[cx]) continue;
        out[4 * cx + u_offset] = in_u[cx];
        out[4 * cx + v_offset] = in_v[cx];
      }
    }
  }
}

}  // namespace

PixelFormat pixel_format_from_name(const std::string &name) {
  static const std::pair<const char *, PixelFormat> names[] = {
      {"RGB", PixelFormat::RGB},    {"BGR", PixelFormat::BGR},   {"RGBx", PixelFormat::RGBx},
      {"BGRx", PixelFormat::BGRx},  {"RGBA", PixelFormat::RGBA}, {"BGRA", PixelFormat::BGRA},
      {"xRGB", PixelFormat::xRGB},  {"xBGR", PixelFormat::xBGR}, {"NV12", PixelFormat::NV12},
      {"I420", PixelFormat::I420},  {"YUY2", PixelFormat::YUY2}, {"UYVY", PixelFormat::UYVY},
      {"GRAY8", PixelFormat::GRAY8}};
  for (const auto &[n, format] : names)
    if (name == n) return format;
  throw InvalidArgument("overlay pixel format '" + name +
                        "' is not supported: expected RGB, BGR, RGBx, BGRx, RGBA, BGRA, xRGB, "
                        "xBGR, NV12, I420, YUY2, UYVY or GRAY8");
}

void draw_objects(const FrameView &frame, const std::vector<OverlayObject> &objects,
                  const OverlayStyle &style) {
  if (frame.width <= 0 || frame.height <= 0 || !frame.planes[0])
    throw InvalidArgument("overlay frame " + std::to_string(frame.width) + "x" +
                          std::to_string(frame.height) + ": expected a mapped, non-empty frame");
  if (frame.format == PixelFormat::YUY2 || frame.format == PixelFormat::UYVY) {
    if (!objects.empty()) draw_packed_422(frame, objects, style);
    return;
  }
  for (const Surface &surface : surfaces_of(frame))
    for (const OverlayObject &object : objects) draw_on(surface, object, style);
}

std::string format_label(const std::string &label, double score) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", score);
  return label.empty() ? std::string(text) : label + " " + text;
}

}  // namespace axstream::overlay
