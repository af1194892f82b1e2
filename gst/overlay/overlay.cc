#include "axstream/overlay/overlay.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <opencv2/imgproc.hpp>
#include <vector>

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

// One row of a packed 4:2:2 frame (`width` pixels; macropixel bytes: luma at L and L + 2, U at
// U, V at V) and the planes it is drawn on. Plain loops over whole macropixels with the byte
// offsets fixed at compile time, so the compiler turns them into vector shuffles; no SIMD path
// of our own and no run-time CPU check.
template <int L, int U, int V>
void split_row(const uint8_t *__restrict row, int width, uint8_t *__restrict luma,
               uint8_t *__restrict u, uint8_t *__restrict v) {
  const int pairs = width / 2;
  for (int x = 0; x < pairs; ++x) {
    luma[2 * x] = row[4 * x + L];
    luma[2 * x + 1] = row[4 * x + L + 2];
    u[x] = row[4 * x + U];
    v[x] = row[4 * x + V];
  }
  if (width % 2) {  // an odd-width row's last macropixel: its second luma byte is padding
    luma[2 * pairs] = row[4 * pairs + L];
    u[pairs] = row[4 * pairs + U];
    v[pairs] = row[4 * pairs + V];
  }
}

template <int L>
void split_luma(const uint8_t *__restrict row, int width, uint8_t *__restrict luma) {
  const int pairs = width / 2;
  for (int x = 0; x < pairs; ++x) {
    luma[2 * x] = row[4 * x + L];
    luma[2 * x + 1] = row[4 * x + L + 2];
  }
  if (width % 2) luma[2 * pairs] = row[4 * pairs + L];
}

// The drawn planes back into the row: all the luma, and the chroma where `touched` is set.
// Every byte of a macropixel is stored (the untouched chroma as it was), so the loop is one
// contiguous store the compiler can vectorise.
template <int L, int U, int V>
void join_row(const uint8_t *__restrict luma, const uint8_t *__restrict u,
              const uint8_t *__restrict v, const uint8_t *__restrict touched, int width,
              uint8_t *__restrict row) {
  const int pairs = width / 2;
  for (int x = 0; x < pairs; ++x) {
    // touched ? drawn : old as a bit select (a branch or conditional load stops vectorising).
    const uint8_t drawn = touched[x] ? 0xff : 0;
    const uint8_t new_u = uint8_t((u[x] & drawn) | (row[4 * x + U] & ~drawn));
    const uint8_t new_v = uint8_t((v[x] & drawn) | (row[4 * x + V] & ~drawn));
    row[4 * x + L] = luma[2 * x];
    row[4 * x + L + 2] = luma[2 * x + 1];
    row[4 * x + U] = new_u;
    row[4 * x + V] = new_v;
  }
  if (width % 2) {
    row[4 * pairs + L] = luma[2 * pairs];
    if (touched[pairs]) {
      row[4 * pairs + U] = u[pairs];
      row[4 * pairs + V] = v[pairs];
    }
  }
}

// Planes drawn on for packed 4:2:2, kept per thread between frames: a frame allocates nothing
// once they have grown to its band (1080p: 3 MB, which malloc would map and unmap every frame).
struct PackedScratch {
  std::vector<uint8_t> luma, u, v, touched;
};

// Packed 4:2:2 (YUY2: Y0 U Y1 V, UYVY: U Y0 V Y1; each pixel pair shares its U and V) drawn as
// I420 is: the luma at full size, the chroma on 4:2:0 planes made of the even rows' chroma,
// whatever the drawing touched (a mask drawn alongside; anti-aliased text touches pixels
// partly) written back to both rows of the pair. Pixels not drawn on keep their own chroma, and
// a frame whose row pairs share their chroma comes out as drawing on its I420 form and
// repeating each chroma row. Only the band of rows the objects reach is split and joined again.
template <int L, int U, int V>
void draw_packed_422(const FrameView &f, const std::vector<OverlayObject> &objects,
                     const OverlayStyle &style) {
  auto [first_row, last_row] = rows_drawn(objects, style, f.height);
  if (first_row > last_row) return;
  first_row &= ~1;  // a whole row pair: chroma row first_row / 2
  const int rows = last_row - first_row + 1;
  const int width = f.width, chroma_w = (f.width + 1) / 2, chroma_rows = (rows + 1) / 2;
  uint8_t *band = f.planes[0] + static_cast<std::ptrdiff_t>(first_row) * f.strides[0];
  auto band_row = [&](int r) { return band + static_cast<std::ptrdiff_t>(r) * f.strides[0]; };
  thread_local PackedScratch scratch;
  auto plane = [](std::vector<uint8_t> &bytes, int plane_rows, int cols) {
    const size_t size = size_t(plane_rows) * size_t(cols);
    if (bytes.size() < size) bytes.resize(size);
    return cv::Mat(plane_rows, cols, CV_8UC1, bytes.data());
  };
  cv::Mat luma = plane(scratch.luma, rows, width), u = plane(scratch.u, chroma_rows, chroma_w),
          v = plane(scratch.v, chroma_rows, chroma_w),
          touched = plane(scratch.touched, chroma_rows, chroma_w);
  touched.setTo(0);
  for (int r = 0; r < rows; ++r) {
    if (r % 2)
      split_luma<L>(band_row(r), width, luma.ptr<uint8_t>(r));
    else
      split_row<L, U, V>(band_row(r), width, luma.ptr<uint8_t>(r), u.ptr<uint8_t>(r / 2),
                         v.ptr<uint8_t>(r / 2));
  }
  const int luma_top = first_row, chroma_top = first_row / 2;
  const Surface surfaces[] = {{luma, 1.0, [](Rgb c) { return cv::Scalar(to_yuv(c).y); }, luma_top},
                              {u, 0.5, [](Rgb c) { return cv::Scalar(to_yuv(c).u); }, chroma_top},
                              {v, 0.5, [](Rgb c) { return cv::Scalar(to_yuv(c).v); }, chroma_top},
                              {touched, 0.5, [](Rgb) { return cv::Scalar(255); }, chroma_top}};
  for (const Surface &surface : surfaces)
    for (const OverlayObject &object : objects) draw_on(surface, object, style);
  for (int r = 0; r < rows; ++r)
    join_row<L, U, V>(luma.ptr<uint8_t>(r), u.ptr<uint8_t>(r / 2), v.ptr<uint8_t>(r / 2),
                      touched.ptr<uint8_t>(r / 2), width, band_row(r));
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
    if (objects.empty()) return;
    if (frame.format == PixelFormat::YUY2)
      draw_packed_422<0, 1, 3>(frame, objects, style);
    else
      draw_packed_422<1, 0, 2>(frame, objects, style);
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
