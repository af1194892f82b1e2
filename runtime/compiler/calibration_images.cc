#include "calibration_images.h"

#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <set>

#include "axstream/error.h"
#include "axstream/runtime/engine.h"
#include "onnx_util.h"

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
    // Freed on every way out, push_back's bad_alloc included.
    std::unique_ptr<glob_t, void (*)(glob_t *)> matches(&g, globfree);
    if (::glob(spec.c_str(), 0, nullptr, &g) == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i)
        if (std::filesystem::is_regular_file(g.gl_pathv[i], ec)) files.push_back(g.gl_pathv[i]);
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
  if (frames.empty()) {
    // Say which of the three it was: nothing there, nothing image-like, or nothing decodable.
    std::error_code ec;
    std::string why;
    if (!files.empty())
      why = "none of its " + std::to_string(files.size()) + " image/video files decodes (first: '" +
            files.front() + "')";
    else if (std::filesystem::is_directory(spec, ec))
      why = "the directory holds no image or video files (.jpg, .png, ..., .avi, .mp4, ...)";
    else
      why = "no such file or directory, and no file matches it as a glob";
    throw InvalidArgument("--calib '" + spec + "': no readable calibration images found: " + why +
                          " (expected a directory, glob, image or video)");
  }
  return frames;
}

std::vector<CalibrationFrame> text_line_crops(const std::vector<CalibrationFrame> &scenes,
                                              const std::string &detector_path, int count) {
  const std::string label = "--calib-text-crops '" + detector_path + "'";
  onnx::ModelProto detector = load_onnx(detector_path);
  if (detector.graph().input_size() < 1 || detector.graph().output_size() < 1)
    throw InvalidArgument(label + ": expected a model with an image input and a probability map");
  // The image input (initializers may be listed as inputs in older models).
  std::set<std::string> initializers;
  for (const auto &init : detector.graph().initializer()) initializers.insert(init.name());
  const onnx::ValueInfoProto *image = nullptr;
  for (const auto &in : detector.graph().input())
    if (!initializers.count(in.name())) image = image ? image : &in;
  if (!image || image->type().tensor_type().shape().dim_size() != 4)
    throw InvalidArgument(label + ": expected one rank-4 NCHW image input");
  // Static spatial dims, else 640x640 (PP-OCR det's usual size; multiples of 32).
  std::vector<int64_t> shape = {1, 3, 640, 640};
  const auto &dims = image->type().tensor_type().shape();
  for (int d = 2; d < 4; ++d)
    if (dims.dim(d).has_dim_value() && dims.dim(d).dim_value() > 0)
      shape[d] = dims.dim(d).dim_value();
  if (dims.dim(1).has_dim_value() && dims.dim(1).dim_value() != 3)
    throw InvalidArgument(label + ": input '" + image->name() + "' has " +
                          std::to_string(dims.dim(1).dim_value()) +
                          " channels, expected a 3-channel NCHW image");
  engine::CompileOptions engine_options;
  engine_options.input_shapes[image->name()] = shape;
  auto program = engine::Program::from_file(detector_path, engine_options);
  const auto &map_desc = program->outputs()[0];
  if (map_desc.dtype != engine::DType::f32 ||
      map_desc.element_count() != static_cast<size_t>(shape[2] * shape[3]))
    throw InvalidArgument(label + ": output '" + map_desc.name +
                          "' is not a one-channel float map of the input size " +
                          std::to_string(shape[2]) + "x" + std::to_string(shape[3]));
  auto executor = program->make_executor();
  std::vector<std::vector<uint8_t>> outputs(program->outputs().size());
  std::vector<void *> output_ptrs;
  for (size_t o = 0; o < outputs.size(); ++o) {
    outputs[o].resize(program->outputs()[o].byte_size());
    output_ptrs.push_back(outputs[o].data());
  }
  const ModelInputSpec det_input{image->name(), true, 3, static_cast<int>(shape[2]),
                                 static_cast<int>(shape[3])};
  // PaddleOCR's det preprocessing: BGR, ImageNet mean/std.
  const PixelNormalisation det_norm{
      "BGR", 1.0 / 255.0, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}};
  std::vector<std::vector<CalibrationFrame>> per_scene;
  for (const auto &scene : scenes) {
    std::vector<float> in =
        frame_to_tensor(scene.bgr, det_input, det_norm, CalibrationResize::stretch);
    executor->run({in.data()}, output_ptrs);
    const auto *prob = reinterpret_cast<const float *>(outputs[0].data());
    const int mh = det_input.height, mw = det_input.width;
    cv::Mat text(mh, mw, CV_8U);
    for (int i = 0; i < mh * mw; ++i) text.data[i] = prob[i] > 0.3f ? 255 : 0;
    cv::Mat labels, stats, centroids;
    int regions = cv::connectedComponentsWithStats(text, labels, stats, centroids);
    const double sx = static_cast<double>(scene.bgr.cols) / mw,
                 sy = static_cast<double>(scene.bgr.rows) / mh;
    std::vector<CalibrationFrame> crops;
    for (int k = 1; k < regions; ++k) {
      if (stats.at<int>(k, cv::CC_STAT_AREA) < 16) continue;
      double x = stats.at<int>(k, cv::CC_STAT_LEFT) * sx,
             y = stats.at<int>(k, cv::CC_STAT_TOP) * sy;
      double w = stats.at<int>(k, cv::CC_STAT_WIDTH) * sx,
             h = stats.at<int>(k, cv::CC_STAT_HEIGHT) * sy;
      // DBNet's unclip: the shrunk text kernel grows by area * ratio / perimeter on each side.
      double grow = w * h * 1.5 / (2 * (w + h));
      cv::Rect box(static_cast<int>(std::floor(x - grow)), static_cast<int>(std::floor(y - grow)),
                   static_cast<int>(std::ceil(w + 2 * grow)),
                   static_cast<int>(std::ceil(h + 2 * grow)));
      box &= cv::Rect(0, 0, scene.bgr.cols, scene.bgr.rows);
      if (box.width < 8 || box.height < 8) continue;
      cv::Mat crop = scene.bgr(box).clone();
      // Vertical text (PaddleOCR turns crops with height >= 1.5 x width).
      if (crop.rows >= 1.5 * crop.cols) cv::rotate(crop, crop, cv::ROTATE_90_COUNTERCLOCKWISE);
      crops.push_back({scene.source + "#text " + std::to_string(box.x) + "," +
                           std::to_string(box.y) + " " + std::to_string(box.width) + "x" +
                           std::to_string(box.height),
                       crop});
    }
    per_scene.push_back(std::move(crops));
  }
  // Round-robin over the scenes, so that the held-out crops come from several of them.
  std::vector<CalibrationFrame> crops;
  for (size_t k = 0; static_cast<int>(crops.size()) < count; ++k) {
    bool any = false;
    for (const auto &scene_crops : per_scene)
      if (k < scene_crops.size() && static_cast<int>(crops.size()) < count) {
        crops.push_back(scene_crops[k]);
        any = true;
      }
    if (!any) break;
  }
  if (crops.empty())
    throw InvalidArgument(label + ": the detector found no text in the " +
                          std::to_string(scenes.size()) + " --calib image(s)");
  return crops;
}

const char *calibration_resize_name(CalibrationResize resize) {
  switch (resize) {
    case CalibrationResize::stretch:
      return "stretch";
    case CalibrationResize::pad_right:
      return "pad-right";
    case CalibrationResize::automatic:
      break;
  }
  return "auto";
}

std::vector<float> frame_to_tensor(const cv::Mat &bgr, const ModelInputSpec &input,
                                   const PixelNormalisation &norm, CalibrationResize resize) {
  if (resize == CalibrationResize::automatic)
    throw InternalError("frame_to_tensor: the calibration resize mode was not resolved");
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
  // PaddleOCR's recogniser resize (resize_norm_img): the full height, width ceil(h * aspect)
  // capped at the input width, left-aligned; the columns right of it stay normalised zeros.
  int content_width = input.width;
  if (resize == CalibrationResize::pad_right)
    content_width = static_cast<int>(std::clamp(
        std::ceil(static_cast<double>(input.height) * converted.cols / std::max(1, converted.rows)),
        1.0, static_cast<double>(input.width)));
  cv::Mat resized;
  cv::resize(converted, resized, cv::Size(content_width, input.height), 0, 0, cv::INTER_LINEAR);
  const int c = input.channels, h = input.height, w = input.width;
  std::vector<float> out(static_cast<size_t>(c) * h * w, 0.f);
  std::vector<float> mul(c), add(c);
  for (int ch = 0; ch < c; ++ch) {
    double mean = norm.mean.empty() ? 0.0 : norm.mean[ch];
    double std = norm.std.empty() ? 1.0 : norm.std[ch];
    mul[ch] = static_cast<float>(norm.pixel_scale / std);
    add[ch] = static_cast<float>(-mean / std);
  }
  for (int y = 0; y < h; ++y) {
    const uint8_t *row = resized.ptr<uint8_t>(y);
    for (int x = 0; x < content_width; ++x)
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
