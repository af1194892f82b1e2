// The blazeface decoder on the real float BlazeFace (front 128x128) model's outputs, run by
// OpenCV's dnn on Megamind.avi frames, letterboxed as axpreprocess does. Expected boxes come
// from an independent Python decode of the same outputs (cv2.dnn, numpy), checked by eye once:
// frame 50 the woman's face, 150 the man's face on the right, 250 the close-up face.
// Needs AXSTREAM_DATA_DIR (default ~/.cache/axstream); exits 77 (skipped) without it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <opencv2/dnn.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "axstream/decoders/decoder.h"
#include "setup_data.h"

namespace dec = axstream::decoders;
namespace fs = std::filesystem;

namespace {

using axstream::test::data_dir;
std::string model_path() { return axstream::test::blazeface_model_path(); }
std::string video_path() { return axstream::test::opencv_sample_path("Megamind.avi"); }

struct Expected {
  int frame;
  float score, x0, y0, x1, y1;
};
// 720x528 frames letterboxed into 128x128: scale 128/720, 17 rows of border on top.
constexpr Expected kExpected[] = {
    {50, 0.9450f, 225.8f, 203.6f, 358.4f, 336.2f},
    {150, 0.9423f, 429.6f, 202.8f, 590.7f, 363.9f},
    {250, 0.9571f, 297.5f, 98.0f, 547.3f, 347.8f},
};

}  // namespace

TEST(BlazeFaceReference, FindsTheFacesTheFloatModelSeesInMegamind) {
  cv::dnn::Net net = cv::dnn::readNetFromONNX(model_path());
  const std::vector<std::string> names = net.getUnconnectedOutLayersNames();
  cv::VideoCapture video(video_path());
  ASSERT_TRUE(video.isOpened()) << video_path();
  auto decoder = dec::make_decoder("blazeface", {});
  int frame_index = 0;
  size_t checked = 0;
  cv::Mat frame;
  for (const Expected &expected : kExpected) {
    while (frame_index <= expected.frame) {
      ASSERT_TRUE(video.read(frame)) << "frame " << frame_index;
      ++frame_index;
    }
    // Letterbox: RGB, bilinear resize keeping the aspect, centred, [-1, 1], border -1.
    const double scale = 128.0 / std::max(frame.cols, frame.rows);
    const int width = static_cast<int>(std::lround(frame.cols * scale));
    const int height = static_cast<int>(std::lround(frame.rows * scale));
    const int offset_x = (128 - width) / 2, offset_y = (128 - height) / 2;
    cv::Mat rgb, resized;
    cv::cvtColor(frame, rgb, cv::COLOR_BGR2RGB);
    cv::resize(rgb, resized, {width, height}, 0, 0, cv::INTER_LINEAR);
    cv::Mat input(128, 128, CV_32FC3, cv::Scalar::all(-1.0));
    resized.convertTo(input(cv::Rect(offset_x, offset_y, width, height)), CV_32FC3, 1 / 127.5,
                      -1.0);
    const int shape[] = {1, 128, 128, 3};
    net.setInput(cv::Mat(4, shape, CV_32F, input.data));
    std::vector<cv::Mat> outs;
    net.forward(outs, names);

    std::vector<dec::FloatTensor> outputs;
    for (size_t i = 0; i < outs.size(); ++i) {
      dec::FloatTensor t;
      t.name = names[i];
      for (int d = 0; d < outs[i].dims; ++d) t.shape.push_back(outs[i].size[d]);
      const float *data = outs[i].ptr<float>();
      t.data.assign(data, data + outs[i].total());
      outputs.push_back(std::move(t));
    }
    decoder->check_outputs(outputs);
    dec::Geometry geometry;
    geometry.crop_width = frame.cols;
    geometry.crop_height = frame.rows;
    geometry.scale_x = geometry.scale_y = scale;
    geometry.offset_x = offset_x;
    geometry.offset_y = offset_y;
    geometry.tensor_width = geometry.tensor_height = 128;
    const dec::DecodeResult result = decoder->decode(outputs, geometry);
    ASSERT_EQ(result.detections.size(), 1u) << "frame " << expected.frame;
    const dec::Detection &face = result.detections[0];
    EXPECT_NEAR(face.score, expected.score, 1e-3) << "frame " << expected.frame;
    EXPECT_NEAR(face.box.x0, expected.x0, 1.0) << "frame " << expected.frame;
    EXPECT_NEAR(face.box.y0, expected.y0, 1.0) << "frame " << expected.frame;
    EXPECT_NEAR(face.box.x1, expected.x1, 1.0) << "frame " << expected.frame;
    EXPECT_NEAR(face.box.y1, expected.y1, 1.0) << "frame " << expected.frame;
    // Keypoints 0 and 1 are the eyes: inside the upper half of the box.
    for (int k = 0; k < 2; ++k) {
      EXPECT_GT(face.keypoints[k].x, face.box.x0);
      EXPECT_LT(face.keypoints[k].x, face.box.x1);
      EXPECT_GT(face.keypoints[k].y, face.box.y0);
      EXPECT_LT(face.keypoints[k].y, (face.box.y0 + face.box.y1) / 2);
    }
    ++checked;
  }
  EXPECT_EQ(checked, std::size(kExpected));
}

int main(int argc, char **argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (!fs::exists(model_path()) || !fs::exists(video_path())) {
    std::printf(
        "SKIP: BlazeFace model or Megamind.avi not found under %s (set AXSTREAM_DATA_DIR)\n",
        data_dir().c_str());
    return 77;
  }
  return RUN_ALL_TESTS();
}
