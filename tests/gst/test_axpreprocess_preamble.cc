// axpreprocess on packages with a preamble (docs/model-package.md): the element makes the float
// model input, runs preamble.onnx through the engine and quantises its output into the core
// input. Checked against the package without a preamble (a hand-made normalisation preamble)
// and against the engine path on packages axcompile split (then through axinference).
#include <gst/video/video.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include "axinference_test_util.h"
#include "axstream/gst/axtensormeta.h"
#include "axstream/preprocess/preprocess.h"
#include "axstream/runtime/engine.h"
#include "axstream/runtime/model_package.h"
#include "gst_test_util.h"

namespace fs = std::filesystem;
namespace rt = axstream::runtime;

namespace {

const auto *gst_environment = ::testing::AddGlobalTestEnvironment(new axtest::GstEnvironment);

GstBuffer *random_rgb_frame(int width, int height, uint32_t seed, std::vector<uint8_t> *pixels) {
  GstBuffer *buffer = axtest::random_buffer(gsize(width) * height * 3, seed);
  if (pixels) *pixels = axtest::buffer_bytes<uint8_t>(buffer);
  return buffer;
}

// The INPUT tensor axpreprocess (with `properties`) makes from one seeded RGB frame (or a frame
// of random bytes in `format`).
axtest::Bytes preprocess(const std::string &model, const std::string &properties, int width,
                         int height, uint32_t seed, std::vector<uint8_t> *pixels = nullptr,
                         const char *format = "RGB") {
  const std::string launch = "axpreprocess model=\"" + model + "\" " + properties;
  GstHarness *h = gst_harness_new_parse(launch.c_str());
  gst_harness_set_src_caps_str(h, axtest::video_caps(format, width, height).c_str());
  GstVideoInfo info;
  gst_video_info_set_format(&info, gst_video_format_from_string(format), width, height);
  GstBuffer *frame = std::string(format) == "RGB"
                         ? random_rgb_frame(width, height, seed, pixels)
                         : axtest::random_buffer(GST_VIDEO_INFO_SIZE(&info), seed);
  EXPECT_EQ(gst_harness_push(h, frame), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull(h);
  axtest::Bytes bytes = out ? axtest::tensor_bytes(out, GST_AX_TENSOR_INPUT) : axtest::Bytes{};
  if (out) gst_buffer_unref(out);
  gst_harness_teardown(h);
  return bytes;
}

size_t count_differing(const axtest::Bytes &a, const axtest::Bytes &b, int *max_diff) {
  size_t n = 0;
  *max_diff = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const int d = std::abs(int(a[i]) - int(b[i]));
    n += d != 0;
    *max_diff = std::max(*max_diff, d);
  }
  return n;
}

// resnet_tiny_pre's preamble is resnet_tiny's input normalisation ((pixel / 255 - mean) / std
// on float pixels 0..255); with std 1/255 the element feeds it pixels, so the device tensor must
// be resnet_tiny's (made by the int8 fast path) up to float rounding.
TEST(AxPreprocessPreamble, HandMadeNormalisationPreambleGivesTheFastPathsTensor) {
  AXTEST_REQUIRE_MODEL(with_preamble, "resnet_tiny_pre");
  AXTEST_REQUIRE_MODEL(without, "resnet_tiny");
  const axtest::Bytes got =
      preprocess(with_preamble, "resize=stretch std=0.00392156862745098", 48, 40, 11);
  const axtest::Bytes want = preprocess(without, "resize=stretch", 48, 40, 11);
  ASSERT_EQ(got.size(), want.size());
  ASSERT_EQ(got.size(), 32u * 32u * 4u);
  int max_diff = 0;
  const size_t differing = count_differing(got, want, &max_diff);
  EXPECT_LE(max_diff, 1) << "beyond float rounding at a quantisation step";
  EXPECT_LE(differing, got.size() / 100) << differing << " of " << got.size() << " bytes differ";
}

// A webcam's YUY2/UYVY frames make the preamble's pixels in the same fused pass as RGB ones.
TEST(AxPreprocessPreamble, Yuy2AndUyvyFramesGiveTheFastPathsTensorToo) {
  AXTEST_REQUIRE_MODEL(with_preamble, "resnet_tiny_pre");
  AXTEST_REQUIRE_MODEL(without, "resnet_tiny");
  for (const char *format : {"YUY2", "UYVY"}) {
    const axtest::Bytes got = preprocess(with_preamble, "resize=stretch std=0.00392156862745098",
                                         48, 40, 12, nullptr, format);
    const axtest::Bytes want = preprocess(without, "resize=stretch", 48, 40, 12, nullptr, format);
    ASSERT_EQ(got.size(), want.size()) << format;
    ASSERT_EQ(got.size(), 32u * 32u * 4u) << format;
    int max_diff = 0;
    const size_t differing = count_differing(got, want, &max_diff);
    EXPECT_LE(max_diff, 1) << format;
    EXPECT_LE(differing, got.size() / 100) << format << ": " << differing << " bytes differ";
  }
}

// roi=objects: each ROI's tensor goes through the preamble too (per-ROI preprocessors are made
// from the same pixel spec).
TEST(AxPreprocessPreamble, ObjectTensorsRunThePreambleToo) {
  AXTEST_REQUIRE_MODEL(with_preamble, "resnet_tiny_pre");
  AXTEST_REQUIRE_MODEL(without, "resnet_tiny");
  std::vector<axtest::Bytes> tensors[2];
  const std::string props[2] = {"roi=objects resize=stretch std=0.00392156862745098",
                                "roi=objects resize=stretch"};
  const std::string models[2] = {with_preamble, without};
  for (int k = 0; k < 2; ++k) {
    const std::string launch = "axpreprocess model=\"" + models[k] + "\" " + props[k];
    GstHarness *h = gst_harness_new_parse(launch.c_str());
    gst_harness_set_src_caps_str(h, axtest::video_caps("RGB", 64, 48).c_str());
    GstBuffer *frame = random_rgb_frame(64, 48, 17, nullptr);
    gst_buffer_add_video_region_of_interest_meta(frame, "face", 4, 6, 30, 20);
    gst_buffer_add_video_region_of_interest_meta(frame, "face", 20, 10, 40, 36);
    ASSERT_EQ(gst_harness_push(h, frame), GST_FLOW_OK);
    GstBuffer *out = gst_harness_pull(h);
    ASSERT_NE(out, nullptr);
    gpointer state = nullptr;
    while (GstMeta *meta =
               gst_buffer_iterate_meta_filtered(out, &state, GST_AX_TENSOR_META_API_TYPE)) {
      tensors[k].push_back(
          axtest::buffer_bytes(reinterpret_cast<GstAxTensorMeta *>(meta)->tensors));
    }
    gst_buffer_unref(out);
    gst_harness_teardown(h);
  }
  ASSERT_EQ(tensors[0].size(), 2u);
  ASSERT_EQ(tensors[1].size(), 2u);
  for (size_t r = 0; r < 2; ++r) {
    ASSERT_EQ(tensors[0][r].size(), tensors[1][r].size());
    int max_diff = 0;
    const size_t differing = count_differing(tensors[0][r], tensors[1][r], &max_diff);
    EXPECT_LE(max_diff, 1) << "roi " << r;
    EXPECT_LE(differing, tensors[0][r].size() / 100) << "roi " << r;
  }
}

// A preamble whose output is not the core input's shape is refused at caps time, naming it.
TEST(AxPreprocessPreamble, PreambleNotFittingTheCoreInputIsNotNegotiated) {
  AXTEST_REQUIRE_MODEL(source, "resnet_tiny_pre");
  AXTEST_REQUIRE_MODEL(other, "two_outputs");
  char pattern[] = "/tmp/axpreamble-test-XXXXXX";
  const fs::path dir = fs::path(::mkdtemp(pattern)) / "pkg";
  fs::copy(other, dir, fs::copy_options::recursive);
  // two_outputs takes (1,16,16,4): resnet_tiny_pre's preamble makes (1,32,32,3).
  fs::copy_file(fs::path(source) / "preamble.onnx", dir / "preamble.onnx");
  for (const char *file : {"model.json", "manifest.json"}) {
    std::FILE *f = std::fopen((dir / file).c_str(), "rb");
    std::string text(size_t(fs::file_size(dir / file)), '\0');
    ASSERT_EQ(std::fread(text.data(), 1, text.size(), f), text.size());
    std::fclose(f);
    for (const char *key : {"\"preamble_graph\": null", "\"preprocess_graph\": null"}) {
      const size_t at = text.find(key);
      if (at != std::string::npos)
        text.replace(at, std::string(key).size(),
                     std::string(key).substr(0, std::string(key).size() - 4) + "\"preamble.onnx\"");
    }
    f = std::fopen((dir / file).c_str(), "wb");
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }
  GstElement *element = gst_element_factory_make("axpreprocess", nullptr);
  ASSERT_NE(element, nullptr);
  g_object_set(element, "model", dir.c_str(), nullptr);
  axtest::BusWatch bus(element);
  GstHarness *h = gst_harness_new_with_element(element, "sink", "src");
  gst_harness_set_src_caps_str(h, axtest::video_caps("RGB", 32, 32).c_str());
  EXPECT_NE(gst_harness_push(h, random_rgb_frame(32, 32, 3, nullptr)), GST_FLOW_OK);
  const std::string error = bus.error();
  EXPECT_NE(error.find("preamble"), std::string::npos) << error;
  EXPECT_NE(error.find("(1,16,16,3)"), std::string::npos) << error;
  gst_harness_teardown(h);
  fs::remove_all(dir.parent_path());
}

// The engine path, written out: pixels -> float model input -> preamble.onnx -> quantise,
// transpose to NHWC when input_info says so, pad with the zero point.
axtest::Bytes engine_path(const rt::ModelPackage &package, const std::vector<uint8_t> &rgb,
                          int width, int height) {
  const auto &pre = *package.input_preprocess[0];
  const bool input_nchw = pre.layout == "NCHW";
  std::vector<float> model_input(size_t(width) * height * 3);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c) {
        const double v =
            (rgb[(size_t(y) * width + x) * 3 + c] * pre.pixel_scale - pre.mean[c]) / pre.std[c];
        model_input[input_nchw ? (size_t(c) * height + y) * width + x
                               : (size_t(y) * width + x) * 3 + c] = float(v);
      }
  auto program = axstream::engine::Program::from_file(package.path_of(package.preamble_graph));
  std::vector<float> core_input(program->outputs()[0].element_count());
  program->make_executor()->run({model_input.data()}, {core_input.data()});
  const rt::TensorInfo &device = package.inputs[0];
  const bool transposed = package.input_info[0].layout == "NHWC";
  const int64_t h = device.shape[1], w = device.shape[2], cp = device.shape[3];
  const int64_t c_real = device.unpadded_shape()[3];
  axtest::Bytes out(device.size(), int8_t(device.zero_point));
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int64_t c = 0; c < c_real; ++c) {
        const float v =
            core_input[transposed ? (size_t(c) * h + y) * w + x : (size_t(y) * w + x) * c_real + c];
        out[(size_t(y) * w + x) * cp + c] =
            axstream::preprocess::quantise(v, device.scale, device.zero_point);
      }
  return out;
}

class CompiledPreamble : public ::testing::TestWithParam<const char *> {};

// axcompile splits the Cast+Sqrt (NHWC) / Pow (NCHW) head off; the pipeline
// axpreprocess ! axinference on a frame of the model's size must give the engine path's input
// tensor and the runtime's outputs for it.
TEST_P(CompiledPreamble, PipelineMatchesTheEnginePath) {
  const std::string model = std::string(GetParam());
  char pattern[] = "/tmp/axpreamble-test-XXXXXX";
  const fs::path dir = fs::path(::mkdtemp(pattern));
  const fs::path pkg = dir / model;
  const std::string command = std::string("'") + AXCOMPILE_PATH + "' '" + FLOAT_MODELS_DIR + "/" +
                              model + ".onnx' --calib '" + FLOAT_MODELS_DIR +
                              "/calib' --num-calib 8 --no-check --output-dir '" + pkg.string() +
                              "' > '" + (dir / "log").string() + "' 2>&1";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  auto package = rt::load_model_package(pkg.string());
  ASSERT_EQ(package->preamble_graph, "preamble.onnx");

  std::vector<uint8_t> rgb;
  const axtest::Bytes tensor = preprocess(pkg.string(), "resize=stretch", 32, 32, 21, &rgb);
  const axtest::Bytes want = engine_path(*package, rgb, 32, 32);
  ASSERT_EQ(tensor.size(), want.size());
  int max_diff = 0;
  const size_t differing = count_differing(tensor, want, &max_diff);
  EXPECT_LE(max_diff, 1) << "beyond float rounding at a quantisation step";
  EXPECT_LE(differing, tensor.size() / 100)
      << differing << " of " << tensor.size() << " bytes differ";

  // Through axinference: its output is the runtime's output for the element's input tensor.
  const std::string launch = "axpreprocess model=\"" + pkg.string() +
                             "\" resize=stretch ! axinference model=\"" + pkg.string() + "\"";
  GstHarness *h = gst_harness_new_parse(launch.c_str());
  gst_harness_set_src_caps_str(h, axtest::video_caps("RGB", 32, 32).c_str());
  ASSERT_EQ(gst_harness_push(h, random_rgb_frame(32, 32, 21, nullptr)), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull(h);
  ASSERT_NE(out, nullptr);
  const axtest::Bytes output = axtest::tensor_bytes(out, GST_AX_TENSOR_OUTPUT);
  gst_buffer_unref(out);
  gst_harness_teardown(h);
  axtest::DirectRun direct(pkg.string());
  EXPECT_EQ(output, direct.run(tensor));
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(AxPreprocessPreamble, CompiledPreamble,
                         ::testing::Values("preamble_nhwc", "preamble_nchw"));

}  // namespace
