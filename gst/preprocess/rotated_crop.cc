#include "axstream/preprocess/rotated_crop.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <opencv2/imgproc.hpp>
#include <string>

#include "axstream/error.h"

namespace axstream::preprocess {

Frame RgbImage::frame() const {
  Frame f;
  f.format = PixelFormat::RGB;
  f.width = width;
  f.height = height;
  f.planes[0] = pixels.data();
  f.strides[0] = width * 3;
  return f;
}

namespace {

// The whole frame as packed RGB (a view when it already is).
cv::Mat to_rgb(const Frame &frame) {
  const int w = frame.width, h = frame.height;
  if (w <= 0 || h <= 0 || !frame.planes[0])
    throw InvalidArgument("rotated_crop: frame " + std::to_string(w) + "x" + std::to_string(h) +
                          " has no pixels: expected a non-empty frame");
  auto plane = [&](int p, int rows, int cols, int type) {
    return cv::Mat(rows, cols, type, const_cast<uint8_t *>(frame.planes[p]),
                   static_cast<size_t>(frame.strides[p]));
  };
  cv::Mat rgb;
  switch (frame.format) {
    case PixelFormat::RGB:
      return plane(0, h, w, CV_8UC3);
    case PixelFormat::BGR:
      cv::cvtColor(plane(0, h, w, CV_8UC3), rgb, cv::COLOR_BGR2RGB);
      return rgb;
    case PixelFormat::RGBA:
    case PixelFormat::RGBx:
      cv::cvtColor(plane(0, h, w, CV_8UC4), rgb, cv::COLOR_RGBA2RGB);
      return rgb;
    case PixelFormat::BGRA:
    case PixelFormat::BGRx:
      cv::cvtColor(plane(0, h, w, CV_8UC4), rgb, cv::COLOR_BGRA2RGB);
      return rgb;
    case PixelFormat::GRAY8:
      cv::cvtColor(plane(0, h, w, CV_8UC1), rgb, cv::COLOR_GRAY2RGB);
      return rgb;
    case PixelFormat::NV12:
    case PixelFormat::I420:
      break;
  }
  if (w % 2 || h % 2)
    throw InvalidArgument("rotated_crop: " + std::string(pixel_format_name(frame.format)) +
                          " frame " + std::to_string(w) + "x" + std::to_string(h) +
                          ": expected even width and height");
  if (frame.format == PixelFormat::NV12) {
    cv::cvtColorTwoPlane(plane(0, h, w, CV_8UC1), plane(1, h / 2, w / 2, CV_8UC2), rgb,
                         cv::COLOR_YUV2RGB_NV12);
    return rgb;
  }
  // I420: gather the three planes into OpenCV's contiguous layout.
  cv::Mat yuv(h * 3 / 2, w, CV_8UC1);
  plane(0, h, w, CV_8UC1).copyTo(yuv.rowRange(0, h));
  uint8_t *u = yuv.ptr<uint8_t>(h);
  uint8_t *v = u + (w / 2) * (h / 2);
  for (int y = 0; y < h / 2; ++y) {
    std::memcpy(u + y * (w / 2), frame.planes[1] + size_t(y) * frame.strides[1], w / 2);
    std::memcpy(v + y * (w / 2), frame.planes[2] + size_t(y) * frame.strides[2], w / 2);
  }
  cv::cvtColor(yuv, rgb, cv::COLOR_YUV2RGB_I420);
  return rgb;
}

}  // namespace

RgbImage rotated_crop(const Frame &frame, const std::array<Point2, 4> &corners) {
  std::array<cv::Point2f, 4> p;
  for (int i = 0; i < 4; ++i) {
    if (!std::isfinite(corners[i].x) || !std::isfinite(corners[i].y))
      throw InvalidArgument("rotated_crop: corner " + std::to_string(i) + " (" +
                            std::to_string(corners[i].x) + ", " + std::to_string(corners[i].y) +
                            "): expected finite coordinates");
    p[i] = {corners[i].x, corners[i].y};
  }
  std::sort(p.begin(), p.end(),
            [](const cv::Point2f &a, const cv::Point2f &b) { return a.x < b.x; });
  const cv::Point2f tl = p[0].y <= p[1].y ? p[0] : p[1];
  const cv::Point2f bl = p[0].y <= p[1].y ? p[1] : p[0];
  const cv::Point2f tr = p[2].y <= p[3].y ? p[2] : p[3];
  const cv::Point2f br = p[2].y <= p[3].y ? p[3] : p[2];
  // Corners far outside the frame (a box running off its edge) would ask for a huge upright
  // image: no side needs more pixels than the frame's diagonal, as the tensor resize follows.
  const double longest = std::ceil(std::hypot(double(frame.width), double(frame.height)));
  auto side = [&](double a, double b) {
    return std::max(1, static_cast<int>(std::min(std::max(a, b), longest)));
  };
  const int width = side(cv::norm(tl - tr), cv::norm(bl - br));
  const int height = side(cv::norm(tl - bl), cv::norm(tr - br));
  const cv::Point2f source[4] = {tl, tr, br, bl};
  const cv::Point2f target[4] = {
      {0, 0}, {float(width), 0}, {float(width), float(height)}, {0, float(height)}};
  const cv::Mat rgb = to_rgb(frame);
  cv::Mat upright;
  cv::warpPerspective(rgb, upright, cv::getPerspectiveTransform(source, target),
                      cv::Size(width, height), cv::INTER_CUBIC, cv::BORDER_REPLICATE);
  if (upright.rows >= 1.5 * upright.cols)
    cv::rotate(upright, upright, cv::ROTATE_90_COUNTERCLOCKWISE);
  RgbImage image;
  image.width = upright.cols;
  image.height = upright.rows;
  image.pixels.resize(size_t(image.width) * image.height * 3);
  for (int y = 0; y < image.height; ++y)
    std::memcpy(image.pixels.data() + size_t(y) * image.width * 3, upright.ptr<uint8_t>(y),
                size_t(image.width) * 3);
  return image;
}

}  // namespace axstream::preprocess
