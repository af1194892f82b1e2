#include "axstream/preprocess/rotated_crop.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "axstream/error.h"
#include "kernels.h"

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

// NV12/I420/YUY2/UYVY of any colorimetry -> packed RGB with the preprocessor's own row kernels
// (the same fixed-point arithmetic the fused pass uses for that matrix and range; YUY2/UYVY rows
// split into luma and NV12 UV first, as the fused pass does).
cv::Mat yuv_to_rgb(const Frame &frame, const Colorimetry &colorimetry) {
  const int w = frame.width, h = frame.height;
  const YuvCoefficients c = yuv_coefficients(colorimetry);
  const kernels::KernelSet &k = kernels::baseline_kernels();
  cv::Mat rgb(h, w, CV_8UC3);
  std::vector<uint32_t> words(static_cast<size_t>(w));
  const int pairs = (w + 1) / 2;
  std::vector<uint8_t> split(4 * size_t(pairs));
  uint8_t *split_luma = split.data(), *split_chroma = split.data() + 2 * size_t(pairs);
  for (int y = 0; y < h; ++y) {
    const uint8_t *luma = frame.planes[0] + size_t(y) * frame.strides[0];
    const size_t chroma_row = size_t(y / 2);
    if (frame.format == PixelFormat::YUY2 || frame.format == PixelFormat::UYVY) {
      const bool yuy2 = frame.format == PixelFormat::YUY2;
      k.split_bytes(luma, 2 * pairs, yuy2 ? split_luma : split_chroma,
                    yuy2 ? split_chroma : split_luma);
      k.nv12_row_to_rgb0(split_luma, split_chroma, w, c, words.data());
    } else if (frame.format == PixelFormat::NV12)
      k.nv12_row_to_rgb0(luma, frame.planes[1] + chroma_row * frame.strides[1], w, c, words.data());
    else
      k.i420_row_to_rgb0(luma, frame.planes[1] + chroma_row * frame.strides[1],
                         frame.planes[2] + chroma_row * frame.strides[2], w, c, words.data());
    uint8_t *out = rgb.ptr<uint8_t>(y);
    for (int x = 0; x < w; ++x) {
      out[3 * x] = uint8_t(words[x]);
      out[3 * x + 1] = uint8_t(words[x] >> 8);
      out[3 * x + 2] = uint8_t(words[x] >> 16);
    }
  }
  return rgb;
}

// The whole frame as packed RGB (a view when it already is).
cv::Mat to_rgb(const Frame &frame, const Colorimetry &colorimetry) {
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
    case PixelFormat::YUY2:
    case PixelFormat::UYVY:
      return yuv_to_rgb(frame, colorimetry);
    case PixelFormat::NV12:
    case PixelFormat::I420:
      break;
  }
  // cv::cvtColor knows BT.601 video range only.
  if (colorimetry.matrix != YuvMatrix::BT601 || colorimetry.range != YuvRange::Limited)
    return yuv_to_rgb(frame, colorimetry);
  if (frame.format == PixelFormat::NV12 && w % 2 == 0 && h % 2 == 0) {
    cv::cvtColorTwoPlane(plane(0, h, w, CV_8UC1), plane(1, h / 2, w / 2, CV_8UC2), rgb,
                         cv::COLOR_YUV2RGB_NV12);
    return rgb;
  }
  // OpenCV's contiguous layout, which needs even sizes: an odd last column/row of luma is
  // repeated into the padding (converted, then cut off), the chroma planes are already
  // ceil(w / 2) x ceil(h / 2) and cover it.
  const int even_w = w + w % 2, even_h = h + h % 2;
  const int chroma_w = even_w / 2, chroma_h = even_h / 2;
  cv::Mat yuv(even_h * 3 / 2, even_w, CV_8UC1);
  for (int y = 0; y < even_h; ++y) {
    uint8_t *row = yuv.ptr<uint8_t>(y);
    std::memcpy(row, frame.planes[0] + size_t(std::min(y, h - 1)) * frame.strides[0], w);
    if (w % 2) row[w] = row[w - 1];
  }
  uint8_t *chroma = yuv.ptr<uint8_t>(even_h);
  if (frame.format == PixelFormat::NV12) {
    for (int y = 0; y < chroma_h; ++y)
      std::memcpy(chroma + size_t(y) * even_w, frame.planes[1] + size_t(y) * frame.strides[1],
                  size_t(even_w));
    cv::cvtColor(yuv, rgb, cv::COLOR_YUV2RGB_NV12);
  } else {
    uint8_t *v = chroma + size_t(chroma_w) * chroma_h;
    for (int y = 0; y < chroma_h; ++y) {
      std::memcpy(chroma + size_t(y) * chroma_w, frame.planes[1] + size_t(y) * frame.strides[1],
                  size_t(chroma_w));
      std::memcpy(v + size_t(y) * chroma_w, frame.planes[2] + size_t(y) * frame.strides[2],
                  size_t(chroma_w));
    }
    cv::cvtColor(yuv, rgb, cv::COLOR_YUV2RGB_I420);
  }
  if (w == even_w && h == even_h) return rgb;
  // A copy, so the warp's replicated border is the frame's edge, not the padding.
  return rgb(cv::Rect(0, 0, w, h)).clone();
}

}  // namespace

RgbImage rotated_crop(const Frame &frame, const std::array<Point2, 4> &corners,
                      const Colorimetry &colorimetry) {
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
  const cv::Mat rgb = to_rgb(frame, colorimetry);
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
