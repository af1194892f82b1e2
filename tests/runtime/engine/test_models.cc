// Real models from the set-up's data (AXSTREAM_DATA_DIR, default ~/.cache/axstream) through
// the engine, compared with OpenCV's DNN module on the same input. Exit 77 when absent.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <opencv2/dnn.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <sstream>

#include "axstream/runtime/engine.h"
#include "setup_data.h"

namespace fs = std::filesystem;
using namespace axstream::engine;

namespace {

using axstream::test::blazeface_model_path;
using axstream::test::ocr_asset_path;

// An RGB picture (messi5.jpg when the docs are there, else seeded noise) as NCHW or NHWC float.
cv::Mat test_image(int width, int height) {
  std::string jpg = axstream::test::opencv_sample_path("messi5.jpg");
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

  // OpenCV 4.6 cannot import dynamic input dims: give it the model with the shape fixed.
  std::ifstream file(path, std::ios::binary);
  std::stringstream bytes;
  bytes << file.rdbuf();
  onnx::ModelProto model;
  EXPECT_TRUE(model.ParseFromString(bytes.str()));
  auto *dims = model.mutable_graph()
                   ->mutable_input(0)
                   ->mutable_type()
                   ->mutable_tensor_type()
                   ->mutable_shape();
  for (int i = 0; i < dims->dim_size() && i < static_cast<int>(shape.size()); ++i)
    dims->mutable_dim(i)->set_dim_value(shape[i]);
  std::string fixed = model.SerializeAsString();
  cv::dnn::Net net = cv::dnn::readNetFromONNX(fixed.data(), fixed.size());
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
  for (const auto &c : compare_with_opencv(blazeface_model_path(), blob, {1, 128, 128, 3}))
    EXPECT_LE(c.max_abs_diff, 1e-3);
}

// PaddleOCR inputs: RGB normalised to [-1, 1], NCHW, with the dynamic dims fixed.
cv::Mat ocr_blob(int width, int height) {
  cv::Mat img = test_image(width, height);
  return cv::dnn::blobFromImage(img, 1.0 / 127.5, cv::Size(width, height),
                                cv::Scalar(127.5, 127.5, 127.5));
}

void check_ocr(const std::string &file, int width, int height, double tolerance) {
  std::string path = ocr_asset_path(file);
  if (!fs::exists(path)) GTEST_SKIP() << path << " not found";
  CompileOptions options;
  options.input_shapes["x"] = {1, 3, height, width};
  for (const auto &c :
       compare_with_opencv(path, ocr_blob(width, height), {1, 3, height, width}, options))
    EXPECT_LE(c.max_abs_diff, tolerance);
}

// OpenCV 4.6 cannot import PP-OCRv4 det (Clip with min/max inputs): check the engine's
// probability map is well formed instead.
TEST(EngineModels, PaddleOcrDetFloatRunsAndGivesAProbabilityMap) {
  std::string path = ocr_asset_path("ch_PP-OCRv4_det_infer.onnx");
  if (!fs::exists(path)) GTEST_SKIP() << path << " not found";
  CompileOptions options;
  options.input_shapes["x"] = {1, 3, 320, 320};
  auto program = Program::from_file(path, options);
  ASSERT_EQ(program->outputs()[0].shape, (std::vector<int64_t>{1, 1, 320, 320}));
  cv::Mat blob = ocr_blob(320, 320);
  std::vector<float> map(program->outputs()[0].element_count());
  program->make_executor()->run({blob.ptr<float>()}, {map.data()});
  float lo = *std::min_element(map.begin(), map.end()),
        hi = *std::max_element(map.begin(), map.end());
  std::printf("PP-OCRv4 det probability map: min %.4f max %.4f\n", lo, hi);
  EXPECT_GE(lo, 0.f);
  EXPECT_LE(hi, 1.f);
  EXPECT_GT(hi, lo);
}

// OpenCV 4.6 fails inside its own shape code on PP-OCRv4 rec: check the engine's per-step
// character distributions instead (softmax rows summing to 1).
TEST(EngineModels, PaddleOcrRecFloatRunsAndGivesDistributions) {
  std::string path = ocr_asset_path("ch_PP-OCRv4_rec_infer.onnx");
  if (!fs::exists(path)) GTEST_SKIP() << path << " not found";
  CompileOptions options;
  options.input_shapes["x"] = {1, 3, 48, 320};
  auto program = Program::from_file(path, options);
  const auto &shape = program->outputs()[0].shape;
  ASSERT_EQ(shape.size(), 3u);
  EXPECT_EQ(shape[2], 6625);
  cv::Mat blob = ocr_blob(320, 48);
  std::vector<float> probs(program->outputs()[0].element_count());
  program->make_executor()->run({blob.ptr<float>()}, {probs.data()});
  for (int64_t t = 0; t < shape[1]; ++t) {
    double sum = 0;
    for (int64_t c = 0; c < shape[2]; ++c) sum += probs[t * shape[2] + c];
    EXPECT_NEAR(sum, 1.0, 1e-3) << "time step " << t;
  }
}

TEST(EngineModels, PaddleOcrClsFloatMatchesOpenCvDnn) {
  check_ocr("ch_ppocr_mobile_v2.0_cls_infer.onnx", 192, 48, 1e-3);
}

}  // namespace

int main(int argc, char **argv) {
  if (!fs::exists(blazeface_model_path())) {
    std::printf("SKIP: %s not found (set AXSTREAM_DATA_DIR or run the data set-up)\n",
                blazeface_model_path().c_str());
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
