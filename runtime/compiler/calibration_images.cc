#include "calibration_images.h"

#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "axstream/error.h"

namespace axstream::compiler {
namespace {

std::string lower_extension(const std::string &path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  return ext;
}

bool is_image(const std::string &path) {
  static const char *exts[] = {".jpg", ".jpeg", ".png",  ".bmp", ".ppm",
                               ".pgm", ".tif",  ".tiff", ".webp"};
  std::string ext = lower_extension(path);
  return std::any_of(std::begin(exts), std::end(exts), [&](const char *e) { return ext == e; });
}

bool is_video(const std::string &path) {
  static const char *exts[] = {".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v"};
  std::string ext = lower_extension(path);
  return std::any_of(std::begin(exts), std::end(exts), [&](const char *e) { return ext == e; });
}

std::vector<std::string> expand(const std::string &spec) {
  std::vector<std::string> files;
  std::error_code ec;
  if (std::filesystem::is_directory(spec, ec)) {
    for (const auto &entry : std::filesystem::directory_iterator(spec, ec))
      if (entry.is_regular_file() && (is_image(entry.path()) || is_video(entry.path())))
        files.push_back(entry.path().string());
  } else if (std::filesystem::is_regular_file(spec, ec)) {
    files.push_back(spec);
  } else {
    glob_t g{};
    if (::glob(spec.c_str(), 0, nullptr, &g) == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i)
        if (std::filesystem::is_regular_file(g.gl_pathv[i], ec)) files.push_back(g.gl_pathv[i]);
    globfree(&g);
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

std::vector<CalibrationFrame> load_calibration_frames(const std::string &spec, int count) {
  if (spec.empty()) throw InvalidArgument("--calib: no calibration images given");
  std::vector<CalibrationFrame> frames;
  std::vector<std::string> files = expand(spec);
  for (const auto &file : files) {
    if (static_cast<int>(frames.size()) >= count) break;
    if (is_video(file)) {
      cv::VideoCapture video(file);
      if (!video.isOpened()) continue;
      int total = static_cast<int>(video.get(cv::CAP_PROP_FRAME_COUNT));
      int wanted = count - static_cast<int>(frames.size());
      // Evenly spaced frames over the whole clip, read sequentially (seeking is unreliable).
      int step = std::max(1, total > 0 ? total / wanted : 1);
      cv::Mat frame;
      for (int index = 0; static_cast<int>(frames.size()) < count && video.read(frame); ++index)
        if (index % step == 0)
          frames.push_back({file + "#frame " + std::to_string(index), frame.clone()});
    } else {
      cv::Mat image = cv::imread(file, cv::IMREAD_COLOR);
      if (!image.empty()) frames.push_back({file, image});
    }
  }
  if (frames.empty())
    throw InvalidArgument("--calib '" + spec + "': no readable calibration images found (" +
                          std::to_string(files.size()) +
                          " candidate files; expected a directory, glob, image or video)");
  return frames;
}

std::vector<float> frame_to_tensor(const cv::Mat &bgr, const ModelInputSpec &input,
                                   const PixelNormalisation &norm) {
  cv::Mat converted;
  if (input.channels == 1) {
    if (bgr.channels() == 1)
      converted = bgr;
    else
      cv::cvtColor(bgr, converted, cv::COLOR_BGR2GRAY);
  } else if (input.channels == 3) {
    if (bgr.channels() == 1)
      cv::cvtColor(bgr, converted, cv::COLOR_GRAY2BGR);
    else
      converted = bgr;
    if (norm.color_format == "RGB") cv::cvtColor(converted, converted, cv::COLOR_BGR2RGB);
  } else {
    throw NotImplemented("input '" + input.name +
                         "': calibration images need 1 or 3 channels, "
                         "the model wants " +
                         std::to_string(input.channels));
  }
  cv::Mat resized;
  cv::resize(converted, resized, cv::Size(input.width, input.height), 0, 0, cv::INTER_LINEAR);
  const int c = input.channels, h = input.height, w = input.width;
  std::vector<float> out(static_cast<size_t>(c) * h * w);
  std::vector<float> mul(c), add(c);
  for (int ch = 0; ch < c; ++ch) {
    double mean = norm.mean.empty() ? 0.0 : norm.mean[ch];
    double std = norm.std.empty() ? 1.0 : norm.std[ch];
    mul[ch] = static_cast<float>(norm.pixel_scale / std);
    add[ch] = static_cast<float>(-mean / std);
  }
  for (int y = 0; y < h; ++y) {
    const uint8_t *row = resized.ptr<uint8_t>(y);
    for (int x = 0; x < w; ++x)
      for (int ch = 0; ch < c; ++ch) {
        float v = row[x * c + ch] * mul[ch] + add[ch];
        size_t index = input.nchw ? (static_cast<size_t>(ch) * h + y) * w + x
                                  : (static_cast<size_t>(y) * w + x) * c + ch;
        out[index] = v;
      }
  }
  return out;
}

}  // namespace axstream::compiler
