// axcompile on the real models the set-up fetches (BlazeFace, PP-OCR): the packages find the
// same faces as the float model and their raw outputs agree. Exits 77 (skipped) without data.
#include <gtest/gtest.h>

#include <cstdlib>
#include <opencv2/videoio.hpp>

#include "compiler_test_util.h"

namespace {

using namespace axtest;

fs::path data_dir() {
  const char *env = std::getenv("AXSTREAM_DATA_DIR");
  if (env && *env) return env;
  const char *home = std::getenv("HOME");
  return fs::path(home ? home : "/root") / ".cache/axstream";
}

const fs::path kData = data_dir();
const fs::path kBlazeface = kData / "blazeface/package/ONNX";
const fs::path kOpencvData = kData / "opencv-doc/usr/share/doc/opencv-doc/examples/data";
const fs::path kOcr = kData / "ocr/package/assets";

struct Face {
  float x0, y0, x1, y1, score;
};

float iou(const Face &a, const Face &b) {
  float ix = std::max(0.f, std::min(a.x1, b.x1) - std::max(a.x0, b.x0));
  float iy = std::max(0.f, std::min(a.y1, b.y1) - std::max(a.y0, b.y0));
  float inter = ix * iy;
  float uni = (a.x1 - a.x0) * (a.y1 - a.y0) + (b.x1 - b.x0) * (b.y1 - b.y0) - inter;
  return uni > 0 ? inter / uni : 0;
}

// BlazeFace outputs (scores 512, scores 384, boxes 512x16, boxes 384x16) -> faces after NMS.
std::vector<Face> decode_faces(const Outputs &out, float size) {
  std::vector<Face> faces;
  auto decode = [&](const std::vector<float> &scores, const std::vector<float> &boxes, int grid,
                    int per_cell) {
    for (int cell = 0; cell < grid * grid; ++cell)
      for (int a = 0; a < per_cell; ++a) {
        int i = cell * per_cell + a;
        float score = 1.f / (1.f + std::exp(-scores[i]));
        if (score < 0.75f) continue;
        float ax = (cell % grid + 0.5f) / grid, ay = (cell / grid + 0.5f) / grid;
        const float *b = &boxes[i * 16];
        float cx = ax + b[0] / size, cy = ay + b[1] / size, w = b[2] / size, h = b[3] / size;
        faces.push_back({cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, score});
      }
  };
  decode(out[0], out[2], 16, 2);
  decode(out[1], out[3], 8, 6);
  std::sort(faces.begin(), faces.end(), [](auto &a, auto &b) { return a.score > b.score; });
  std::vector<Face> kept;
  for (const auto &f : faces)
    if (std::none_of(kept.begin(), kept.end(), [&](const Face &k) { return iou(k, f) > 0.3f; }))
      kept.push_back(f);
  return kept;
}

void check_blazeface(const std::string &variant, int size) {
  fs::path model = kBlazeface / ("face_detection_" + variant + "_barracuda.onnx");
  fs::path video = kOpencvData / "Megamind.avi";
  TempDir dir("blazeface_" + variant);
  fs::path pkg = dir.path / "pkg";
  auto result = axcompile({model.string(), "--calib", video.string(), "--num-calib", "20", "--mean",
                           "0.5", "--std", "0.5", "--calib-method", "percentile",
                           // score logits: the decoder's sigmoid is flat beyond +-20
                           "--output-range", "Identity:0=-20,20", "--output-range",
                           "Identity_1:0=-20,20", "--output-dir", pkg.string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  std::cout << result.output;
  FloatModel reference(model.string());
  PackageModel compiled(pkg.string());
  ImageInput input{size, size, false};
  input.mean = {0.5, 0.5, 0.5};
  input.std = {0.5, 0.5, 0.5};
  // Held-out frames: offset from the calibration sampling.
  cv::VideoCapture capture(video.string());
  cv::Mat frame;
  Cosine raw, scores, boxes;
  auto sigmoid = [](std::vector<float> v) {
    for (float &x : v) x = 1.f / (1.f + std::exp(-x));
    return v;
  };
  int float_faces = 0, matched = 0, package_faces = 0, frames = 0;
  for (int index = 0; capture.read(frame) && frames < 8; ++index) {
    if (index % 29 != 7) continue;
    ++frames;
    auto tensor = image_to_float(frame, input);
    Outputs want = reference.run(tensor), got = compiled.run(tensor, false);
    ASSERT_EQ(got.size(), 4u);
    for (int o = 0; o < 4; ++o) raw.add(got[o], want[o]);
    for (int o = 0; o < 2; ++o) scores.add(sigmoid(got[o]), sigmoid(want[o]));
    for (int o = 2; o < 4; ++o) boxes.add(got[o], want[o]);
    auto a = decode_faces(want, size), b = decode_faces(got, size);
    float_faces += static_cast<int>(a.size());
    package_faces += static_cast<int>(b.size());
    for (const auto &f : a)
      if (std::any_of(b.begin(), b.end(), [&](const Face &g) { return iou(f, g) >= 0.5f; }))
        ++matched;
  }
  std::cout << "blazeface " << variant << ": " << frames << " held-out frames, raw-output cosine "
            << raw.value() << ", sigmoid(scores) cosine " << scores.value() << ", boxes cosine "
            << boxes.value() << ", float faces " << float_faces << ", package faces "
            << package_faces << ", matched (IoU>=0.5) " << matched << "\n";
  EXPECT_GT(float_faces, 0) << "the float model should find faces in Megamind.avi";
  EXPECT_EQ(matched, float_faces);
  EXPECT_EQ(package_faces, float_faces);
  EXPECT_GE(scores.value(), 0.95);
  EXPECT_GE(boxes.value(), 0.98);
}

TEST(AxcompileRealModels, BlazefaceFrontFindsTheSameFacesAsFloat) {
  check_blazeface("front_128x128", 128);
}
TEST(AxcompileRealModels, BlazefaceBackFindsTheSameFacesAsFloat) {
  check_blazeface("back_256x256", 256);
}

void check_ocr(const std::string &file, int h, int w, double mean, double std, double min_cosine,
               const char *method) {
  fs::path model = kOcr / file;
  fs::path text = kOpencvData.parent_path() / "text";
  TempDir dir("ocr");
  fs::path pkg = dir.path / "pkg";
  std::string shape = "x=1,3," + std::to_string(h) + "," + std::to_string(w);
  auto result = axcompile(
      {model.string(), "--calib", (kOpencvData / "*.jpg").string(), "--num-calib", "8",
       "--calib-method", method, "--input-shape", shape, "--mean",
       std::to_string(mean == 0.5 ? 0.5 : 0.485) + (mean == 0.5 ? "" : ",0.456,0.406"), "--std",
       std::to_string(std == 0.5 ? 0.5 : 0.229) + (std == 0.5 ? "" : ",0.224,0.225"),
       "--output-dir", pkg.string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  std::cout << result.output;
  FloatModel reference(model.string(), {{"x", {1, 3, h, w}}});
  PackageModel compiled(pkg.string());
  ImageInput input{h, w, true};
  input.mean =
      mean == 0.5 ? std::vector<double>{0.5, 0.5, 0.5} : std::vector<double>{0.485, 0.456, 0.406};
  input.std =
      std == 0.5 ? std::vector<double>{0.5, 0.5, 0.5} : std::vector<double>{0.229, 0.224, 0.225};
  Cosine cos;
  int images = 0;
  for (const auto &e : fs::directory_iterator(text)) {
    if (e.path().filename().string().rfind("scenetext", 0) != 0) continue;
    auto tensor = image_to_float(cv::imread(e.path().string()), input);
    Outputs want = reference.run(tensor), got = compiled.run(tensor, true);
    cos.add(got[0], want[0]);
    ++images;
  }
  std::cout << file << ": cosine(package, float) on " << images
            << " scenetext images = " << cos.value() << "\n";
  EXPECT_GT(images, 0);
  EXPECT_GE(cos.value(), min_cosine);
}

TEST(AxcompileRealModels, PpOcrDetectorAgreesWithFloat) {
  check_ocr("ch_PP-OCRv4_det_infer.onnx", 640, 640, 0.485, 0.229, 0.95, "minmax");
}
TEST(AxcompileRealModels, PpOcrRecognizerAgreesWithFloat) {
  check_ocr("ch_PP-OCRv4_rec_infer.onnx", 48, 320, 0.5, 0.5, 0.95, "percentile");
}
TEST(AxcompileRealModels, PpOcrDirectionClassifierAgreesWithFloat) {
  check_ocr("ch_ppocr_mobile_v2.0_cls_infer.onnx", 48, 192, 0.5, 0.5, 0.95, "minmax");
}

}  // namespace

int main(int argc, char **argv) {
  if (!fs::exists(kBlazeface) || !fs::exists(kOpencvData / "Megamind.avi") || !fs::exists(kOcr)) {
    std::cout << "SKIP: real models/media not found under " << kData
              << " (set AXSTREAM_DATA_DIR or run scripts/setup.sh)\n";
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
