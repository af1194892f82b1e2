// Calibration data: finds the images (directory, glob, image or video file) and turns each into
// the float tensor the model expects (resize, colour order, pixel_scale/mean/std, layout).
#pragma once

#include <opencv2/core.hpp>
#include <string>
#include <vector>

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

// Dense float tensor of shape [1,C,H,W] or [1,H,W,C].
std::vector<float> frame_to_tensor(const cv::Mat &bgr, const ModelInputSpec &input,
                                   const PixelNormalisation &norm);

}  // namespace axstream::compiler
