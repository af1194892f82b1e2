// Real models from the set-up's data (AXSTREAM_DATA_DIR, default ~/.cache/axstream) through
// the engine, compared with OpenCV's DNN module on the same input. Exit 77 when absent.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <opencv2/dnn.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "axstream/runtime/engine.h"

namespace fs = std::filesystem;
using namespace axstream::engine;

namespace {

std::string data_dir() {
  if (const char *env = std::getenv("AXSTREAM_DATA_DIR")) return env;
  const char *home = std::getenv("HOME");
  return std::string(home ? home : "/root") + "/.cache/axstream";
}

std::string blazeface_path() {
  return data_dir() + "/blazeface/package/ONNX/face_detection_front_128x128_barracuda.onnx";
}
std::string ocr_path(const std::string &file) { return data_dir() + "/ocr/package/assets/" + file; }

// An RGB picture (messi5.jpg when the docs are there, else seeded noise) as NCHW or NHWC float.
cv::Mat test_image(int width, int height) {
  std::string jpg = data_dir() + "/opencv-doc/usr/share/doc/opencv-doc/examples/data/messi5.jpg";
  cv::Mat img = cv::imread(jpg);
  if (img.empty()) {
    img = cv::Mat(height, width, CV_8UC3);
    cv::RNG rng(42);
    rng.fill(img, cv::RNG::UNIFORM, 0, 255);
  }
  cv::resize(img, img, cv::Size(width, height));
  cv::cvtColor(img, img, cv::COLOR_BGR2RGB);
  return img;
}

struct Comparison {
  double max_abs_diff = 0;
  double max_abs_ref = 0;
};

// Runs the engine and cv::dnn on `input` (dense float, shape `shape`), compares every output.
std::vector<Comparison> compare_with_opencv(const std::string &path, const cv::Mat &input,
                                            const std::vector<int64_t> &shape,
                                            const CompileOptions &options = {}) {
  auto program = Program::from_file(path, options);
  std::vector<std::vector<float>> outputs;
  std::vector<void *> out_ptrs;
  for (const auto &d : program->outputs()) outputs.emplace_back(d.element_count());
  for (auto &o : outputs) out_ptrs.push_back(o.data());
  EXPECT_EQ(program->inputs()[0].shape, shape);
  program->make_executor()->run({input.ptr<float>()}, out_ptrs);

  cv::dnn::Net net = cv::dnn::readNetFromONNX(path);
  net.setInput(input);
  std::vector<cv::String> names;
  for (const auto &d : program->outputs()) names.push_back(d.name);
  std::vector<cv::Mat> refs;
  net.forward(refs, names);
  std::vector<Comparison> result;
  for (size_t i = 0; i < refs.size(); ++i) {
    cv::Mat ref = refs[i].reshape(1, 1);
    EXPECT_EQ(ref.total(), outputs[i].size()) << names[i];
    Comparison c;
    for (size_t k = 0; k < std::min<size_t>(ref.total(), outputs[i].size()); ++k) {
      double r = ref.at<float>(static_cast<int>(k));
      c.max_abs_diff = std::max(c.max_abs_diff, std::fabs(r - outputs[i][k]));
      c.max_abs_ref = std::max(c.max_abs_ref, std::fabs(r));
    }
    std::printf("%s output %s: max |engine - opencv| = %.3g (max |opencv| = %.3g)\n",
                fs::path(path).filename().c_str(), names[i].c_str(), c.max_abs_diff, c.max_abs_ref);
    result.push_back(c);
  }
  return result;
}

TEST(EngineModels, BlazeFaceFrontFloatMatchesOpenCvDnn) {
  cv::Mat img = test_image(128, 128);
  cv::Mat f;
  img.convertTo(f, CV_32F, 1.0 / 127.5, -1.0);
  int dims[] = {1, 128, 128, 3};
  cv::Mat blob(4, dims, CV_32F, f.data);
  for (const auto &c : compare_with_opencv(blazeface_path(), blob, {1, 128, 128, 3}))
    EXPECT_LE(c.max_abs_diff, 1e-3);
}

}  // namespace

int main(int argc, char **argv) {
  if (!fs::exists(blazeface_path())) {
    std::printf("SKIP: %s not found (set AXSTREAM_DATA_DIR or run the data set-up)\n",
                blazeface_path().c_str());
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
