// Calibration data: finds the images (directory, glob, image or video file) and turns each into
// the float tensor the model expects (resize, colour order, pixel_scale/mean/std, layout).
#pragma once

#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "axstream/compiler/compiler.h"

namespace axstream::compiler {

struct ModelInputSpec {
  std::string name;
  bool nchw = true;
  int channels = 3, height = 0, width = 0;
};

struct PixelNormalisation {
  std::string color_format = "RGB";  // channel order the model wants ("GRAY" for 1 channel)
  double pixel_scale = 1.0 / 255.0;
  std::vector<double> mean, std;  // per channel, already expanded to `channels` entries
};

struct CalibrationFrame {
  std::string source;  // "file.jpg" or "video.avi#frame 12"
  cv::Mat bgr;         // 8-bit BGR (or gray)
};

// Up to `count` frames; throws InvalidArgument naming `spec` when nothing readable is found.
std::vector<CalibrationFrame> load_calibration_frames(const std::string &spec, int count);

// Text-line crops of `scenes`, for calibrating the recogniser of an OCR cascade on the inputs it
// really gets: each scene runs through the float DBNet-style text detector `detector_path` (one
// output: a text probability map; PP-OCR's det normalisation, ImageNet mean/std on BGR 0..1,
// input stretched to its static size or 640x640), regions above 0.3 are boxed, grown as DBNet's
// unclip does (ratio 1.5) and cut from the scene; tall boxes are turned upright. At most `count`
// crops, taken round-robin over the scenes; throws InvalidArgument naming the detector when it
// cannot run or finds no text.
std::vector<CalibrationFrame> text_line_crops(const std::vector<CalibrationFrame> &scenes,
                                              const std::string &detector_path, int count);

// "stretch" / "pad-right" (axcompile's --calib-resize names); automatic is "auto".
const char *calibration_resize_name(CalibrationResize resize);

// Dense float tensor of shape [1,C,H,W] or [1,H,W,C], the image resized as `resize` says
// (stretch or pad_right; automatic must be resolved by the caller).
std::vector<float> frame_to_tensor(const cv::Mat &bgr, const ModelInputSpec &input,
                                   const PixelNormalisation &norm, CalibrationResize resize);

}  // namespace axstream::compiler
