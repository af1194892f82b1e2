// axdecode through GstHarness on buffers carrying hand-made GST_AX_TENSOR_OUTPUT metas: results
// as ROI metas / typed metas in frame pixels, and the error paths (unknown decoder, outputs the
// decoder cannot parse).
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "ax_live_check.h"
#include "axstream/gst/axresultmeta.h"
#include "axstream/gst/axtensormeta.h"
#include "axstream/runtime/model_package.h"
#include "gst_test_util.h"

namespace fs = std::filesystem;

namespace {

void write_file(const fs::path &path, const std::string &text) {
  std::ofstream file(path);
  file << text;
}

void add_int8_value(onnx::ValueInfoProto *value, const std::string &name,
                    const std::vector<int64_t> &shape) {
  value->set_name(name);
  auto *tensor_type = value->mutable_type()->mutable_tensor_type();
  tensor_type->set_elem_type(onnx::TensorProto::INT8);
  for (int64_t dim : shape) tensor_type->mutable_shape()->add_dim()->set_dim_value(dim);
}

// A BlazeFace-shaped package: input (1,128,128,4), the four float-model outputs as int8 device
// tensors, scores padded from 1 to 4 channels (so axdecode must depad). axdecode never runs the
// core graph, which only needs the right inputs and outputs for the package loader.
struct BlazeFacePackage {
  static constexpr double kScoreScale = 0.1, kBoxScale = 0.5;
  static constexpr int kScoreZeroPoint = -10;
  fs::path dir;

  explicit BlazeFacePackage(const std::string &name = "blazeface") {
    dir = fs::path(::testing::TempDir()) / ("axdecode_" + name + "_" + std::to_string(getpid()));
    fs::create_directories(dir);
    onnx::ModelProto model;
    model.set_ir_version(8);
    model.add_opset_import()->set_version(13);
    auto *graph = model.mutable_graph();
    graph->set_name("blazeface_shaped");
    add_int8_value(graph->add_input(), "input", {1, 128, 128, 4});
    add_int8_value(graph->add_output(), "scores_16", {1, 512, 4});
    add_int8_value(graph->add_output(), "scores_8", {1, 384, 4});
    add_int8_value(graph->add_output(), "boxes_16", {1, 512, 16});
    add_int8_value(graph->add_output(), "boxes_8", {1, 384, 16});
    std::ofstream(dir / "core.onnx", std::ios::binary) << model.SerializeAsString();
    write_file(dir / "model.json", R"({"format_version": 1, "name": "blazeface_shaped",
      "core_graph": "core.onnx", "batch": 1, "input_tensor_layout": "NHWC",
      "preamble_graph": null, "postamble_graph": null})");
    write_file(dir / "manifest.json", R"({"manifest_version": 1, "model_lib_file": "model.json",
      "quantized_model_file": "core.onnx",
      "input_shapes": [[1, 128, 128, 4]],
      "output_shapes": [[1, 512, 4], [1, 384, 4], [1, 512, 16], [1, 384, 16]],
      "quantize_params": [[0.0078125, 0]],
      "dequantize_params": [[0.1, -10], [0.1, -10], [0.5, 0], [0.5, 0]],
      "n_padded_ch_inputs": [[0, 0, 0, 0, 0, 0, 0, 1]],
      "n_padded_ch_outputs": [[0, 0, 0, 0, 0, 3], [0, 0, 0, 0, 0, 3], [0, 0, 0, 0, 0, 0],
                              [0, 0, 0, 0, 0, 0]],
      "preprocess_graph": null, "postprocess_graph": null,
      "input_names": ["input"],
      "output_names": ["scores_16", "scores_8", "boxes_16", "boxes_8"],
      "output_info": [{"original_shape": [1, 512, 1], "layout": "none"},
                      {"original_shape": [1, 384, 1], "layout": "none"},
                      {"original_shape": [1, 512, 16], "layout": "none"},
                      {"original_shape": [1, 384, 16], "layout": "none"}]})");
  }
  ~BlazeFacePackage() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
};

GstMemory *wrap_bytes(const std::vector<int8_t> &bytes) {
  gpointer copy = g_memdup2(bytes.data(), bytes.size());
  return gst_memory_new_wrapped(GST_MEMORY_FLAG_READONLY, copy, bytes.size(), 0, bytes.size(), copy,
                                g_free);
}

// Device output tensors of the BlazeFace-shaped package with one face at anchor 107 (cell x 5,
// y 3 of the 16x16 grid, centre (44, 28)): logit 2.0, box offset (2, 4), size 20x30, keypoint 0
// at offset (-6, 2). Every other anchor has logit (-128 + 10) * 0.1 = -11.8.
GstBuffer *blazeface_tensors() {
  std::vector<int8_t> scores16(512 * 4, -128), scores8(384 * 4, -128);
  scores16[107 * 4] = 10;  // (10 + 10) * 0.1 = 2.0
  std::vector<int8_t> boxes16(512 * 16, 0), boxes8(384 * 16, 0);
  const int8_t face[16] = {4, 8, 40, 60, -12, 4};  // x 0.5: (2, 4), 20x30, keypoint (-6, 2)
  std::copy(face, face + 16, boxes16.begin() + 107 * 16);
  GstBuffer *tensors = gst_buffer_new();
  for (const auto *bytes : {&scores16, &scores8, &boxes16, &boxes8})
    gst_buffer_append_memory(tensors, wrap_bytes(*bytes));
  return tensors;
}

// 640x480 frame letterboxed into 128x128: scale 0.2, 16 rows of border on top.
GstAxTransform letterbox_640x480() {
  GstAxTransform t{};
  t.crop_width = 640;
  t.crop_height = 480;
  t.scale_x = t.scale_y = 0.2;
  t.offset_y = 16;
  t.tensor_width = t.tensor_height = 128;
  return t;
}

GstBuffer *frame_with_outputs(const std::string &model, GstBuffer *tensors,
                              const GstAxTransform &transform, gint roi_id = -1) {
  GstBuffer *buffer = gst_buffer_new_allocate(nullptr, 640 * 480 * 3, nullptr);
  gst_buffer_add_ax_tensor_meta(buffer, GST_AX_TENSOR_OUTPUT, model.c_str(), roi_id, &transform,
                                tensors);
  gst_buffer_unref(tensors);  // the meta holds its own ref
  return buffer;
}

GstHarness *decode_harness(const std::string &launch) {
  GstHarness *harness = gst_harness_new_parse(launch.c_str());
  gst_harness_set_src_caps_str(harness,
                               "video/x-raw,format=RGB,width=640,height=480,framerate=30/1");
  return harness;
}

// The axdecode in `harness`'s bin, also inside a bin of its own (gst_harness_find_element looks
// only at the bin's own children). A new reference.
GstElement *find_decode(GstHarness *harness) {
  GstIterator *found =
      gst_bin_iterate_all_by_element_factory_name(GST_BIN(harness->element), "axdecode");
  GValue item = G_VALUE_INIT;
  GstElement *decode = nullptr;
  if (gst_iterator_next(found, &item) == GST_ITERATOR_OK)
    decode = GST_ELEMENT(g_value_dup_object(&item));
  g_value_unset(&item);
  gst_iterator_free(found);
  return decode;
}

// `harness`'s axdecode with its own bus, so the warnings and errors it posts can be read back;
// tears the harness down.
struct WatchedDecode {
  explicit WatchedDecode(GstHarness *harness)
      : harness(harness), decode(find_decode(harness)), bus(decode) {}
  ~WatchedDecode() {
    gst_object_unref(decode);
    gst_harness_teardown(harness);
  }
  WatchedDecode(const WatchedDecode &) = delete;
  WatchedDecode &operator=(const WatchedDecode &) = delete;

  GstHarness *const harness;
  GstElement *const decode;
  axtest::BusWatch bus;
};

// Pushes one black 64x48 RGB frame through `watched` (axpreprocess ! axinference ! axdecode)
// and returns the first error or warning axdecode posts, "" when none within 2 s (axinference
// pushes from its own thread).
std::string message_on_one_frame(WatchedDecode &watched) {
  gst_harness_set_src_caps_str(watched.harness,
                               "video/x-raw,format=RGB,width=64,height=48,framerate=30/1");
  gst_harness_push(watched.harness, gst_buffer_new_allocate(nullptr, 64 * 48 * 3, nullptr));
  std::string message;
  for (int i = 0; i < 200 && message.empty(); ++i) {
    if (GstBuffer *out = gst_harness_try_pull(watched.harness)) gst_buffer_unref(out);
    message = watched.bus.error_or_warning();
    if (message.empty()) g_usleep(10000);
  }
  return message;
}

class AxDecode : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { gst_init(nullptr, nullptr); }
};

}  // namespace

TEST_F(AxDecode, BlazeFaceAttachesAFaceRoiInFramePixelsWithKeypoints) {
  BlazeFacePackage package;
  GstHarness *harness = decode_harness("axdecode decoder=blazeface");
  GstBuffer *out = gst_harness_push_and_pull(
      harness, frame_with_outputs(package.dir.string(), blazeface_tensors(), letterbox_640x480()));
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(gst_buffer_get_n_meta(out, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE), 1u);
  GstVideoRegionOfInterestMeta *roi = gst_buffer_get_video_region_of_interest_meta(out);
  ASSERT_NE(roi, nullptr);
  // Tensor box: centre (46, 32), 20x30 -> (36,17)-(56,47) -> frame (180,5)-(280,155).
  EXPECT_STREQ(g_quark_to_string(roi->roi_type), "face");
  EXPECT_EQ(roi->x, 180u);
  EXPECT_EQ(roi->y, 5u);
  EXPECT_EQ(roi->w, 100u);
  EXPECT_EQ(roi->h, 150u);
  EXPECT_EQ(roi->parent_id, -1);
  GstStructure *params = gst_video_region_of_interest_meta_get_param(roi, GST_AX_DETECTION_PARAM);
  ASSERT_NE(params, nullptr);
  EXPECT_STREQ(gst_structure_get_string(params, "label"), "face");
  double confidence = 0;
  ASSERT_TRUE(gst_structure_get_double(params, "confidence", &confidence));
  EXPECT_NEAR(confidence, 1.0 / (1.0 + std::exp(-2.0)), 1e-5);
  gint class_id = -1;
  ASSERT_TRUE(gst_structure_get_int(params, "class-id", &class_id));
  EXPECT_EQ(class_id, 0);
  const GValue *keypoints = gst_structure_get_value(params, "keypoints");
  ASSERT_TRUE(keypoints && GST_VALUE_HOLDS_ARRAY(keypoints));
  ASSERT_EQ(gst_value_array_get_size(keypoints), 12u);
  // Keypoint 0: anchor (44, 28) + (-6, 2) = (38, 30) -> frame (190, 70).
  EXPECT_NEAR(g_value_get_double(gst_value_array_get_value(keypoints, 0)), 190.0, 1e-3);
  EXPECT_NEAR(g_value_get_double(gst_value_array_get_value(keypoints, 1)), 70.0, 1e-3);

  GstAxKeypointsMeta *typed = gst_buffer_get_ax_keypoints_meta(out, roi->id);
  ASSERT_NE(typed, nullptr);
  EXPECT_EQ(typed->n_points, 6u);
  gfloat x = 0, y = 0;
  ASSERT_TRUE(gst_ax_keypoints_meta_get_point(typed, 0, &x, &y));
  EXPECT_NEAR(x, 190.0f, 1e-3);
  EXPECT_NEAR(y, 70.0f, 1e-3);
  EXPECT_FALSE(gst_ax_keypoints_meta_get_point(typed, 6, &x, &y));
  // The same values in the typed meta that survives videoscale (test_detection_meta.cc).
  const GstAxDetectionMeta *detection = gst_buffer_get_ax_detection_meta(out, roi->id);
  ASSERT_NE(detection, nullptr);
  EXPECT_STREQ(detection->label, "face");
  EXPECT_DOUBLE_EQ(detection->score, confidence);
  EXPECT_EQ(detection->class_id, 0);
  EXPECT_EQ(detection->track_id, -1);
  EXPECT_EQ(detection->text, nullptr);
  EXPECT_FALSE(detection->predicted);
  gst_buffer_unref(out);
  gst_harness_teardown(harness);
}

// What a DL Streamer application reads from the same ROI (gstgva's RegionOfInterest and
// GVA::RegionOfInterest, gvametaconvert, gvawatermark): a "detection" structure with the box
// normalised to the 640x480 frame, confidence and label_id (before: none, so confidence() was 0
// and normalized_rect() failed).
TEST_F(AxDecode, DlStreamerConsumersFindTheDetectionStructure) {
  BlazeFacePackage package;
  GstHarness *harness = decode_harness("axdecode decoder=blazeface");
  GstBuffer *out = gst_harness_push_and_pull(
      harness, frame_with_outputs(package.dir.string(), blazeface_tensors(), letterbox_640x480()));
  ASSERT_NE(out, nullptr);
  GstVideoRegionOfInterestMeta *roi = gst_buffer_get_video_region_of_interest_meta(out);
  ASSERT_NE(roi, nullptr);
  const std::optional<axtest::NormalisedBox> box = axtest::dlstreamer_box(roi);
  ASSERT_TRUE(box.has_value());
  // The ROI (180,5) 100x150 of the 640x480 frame.
  EXPECT_DOUBLE_EQ(box->x_min, 180.0 / 640);
  EXPECT_DOUBLE_EQ(box->y_min, 5.0 / 480);
  EXPECT_DOUBLE_EQ(box->x_max, 280.0 / 640);
  EXPECT_DOUBLE_EQ(box->y_max, 155.0 / 480);
  const GstStructure *detection = gst_video_region_of_interest_meta_get_param(roi, "detection");
  double confidence = -1;
  ASSERT_TRUE(gst_structure_get_double(detection, "confidence", &confidence));
  EXPECT_NEAR(confidence, 1.0 / (1.0 + std::exp(-2.0)), 1e-5);
  gint label_id = -1;
  ASSERT_TRUE(gst_structure_get_int(detection, "label_id", &label_id));
  EXPECT_EQ(label_id, 0);
  EXPECT_STREQ(gst_structure_get_string(detection, "label"), "face");
  EXPECT_EQ(gst_video_region_of_interest_meta_get_param(roi, "object_id"), nullptr)
      << "not tracked";
  gst_buffer_unref(out);
  gst_harness_teardown(harness);
}

TEST_F(AxDecode, ConfThresholdAboveTheScoreLeavesTheFrameWithoutResults) {
  BlazeFacePackage package;
  GstHarness *harness = decode_harness("axdecode decoder=blazeface conf-threshold=0.9");
  GstBuffer *out = gst_harness_push_and_pull(
      harness, frame_with_outputs(package.dir.string(), blazeface_tensors(), letterbox_640x480()));
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(gst_buffer_get_n_meta(out, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE), 0u)
      << "sigmoid(2.0) = 0.88 < 0.9";
  gst_buffer_unref(out);
  gst_harness_teardown(harness);
}

TEST_F(AxDecode, BuffersWithoutOutputTensorsPassThroughUntouched) {
  GstHarness *harness = decode_harness("axdecode decoder=blazeface");
  GstBuffer *out =
      gst_harness_push_and_pull(harness, gst_buffer_new_allocate(nullptr, 640 * 480 * 3, nullptr));
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(gst_buffer_get_n_meta(out, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE), 0u);
  gst_buffer_unref(out);
  gst_harness_teardown(harness);
}

// A stream that ended with nothing decoded passed every frame without results and without a
// word: axdecode with no tensors upstream, or after axpreprocess with no axinference between.
// At EOS a warning names the missing step; a stream with outputs, a cascade stage whose frames
// carried another model's tensors only (no ROIs to crop; with no axinference upstream, as in this
// harness, nothing tells it from model= naming the wrong package), or frames with objects but no
// tensors, ends without one.
TEST_F(AxDecode, StreamEndingWithNothingDecodedIsWarnedAboutNamingTheMissingStep) {
  BlazeFacePackage package, other("other");
  const auto warning_at_eos = [&](const std::string &launch, auto make_frame) {
    WatchedDecode watched(decode_harness(launch));
    for (int i = 0; i < 3; ++i)
      gst_buffer_unref(gst_harness_push_and_pull(watched.harness, make_frame()));
    EXPECT_TRUE(gst_harness_push_event(watched.harness, gst_event_new_eos()));
    return watched.bus.warning();
  };
  const auto plain_frame = [] { return gst_buffer_new_allocate(nullptr, 640 * 480 * 3, nullptr); };
  const auto input_only = [&] {
    GstBuffer *buffer = plain_frame();
    const GstAxTransform transform = letterbox_640x480();
    gst_buffer_add_ax_tensor_meta(buffer, GST_AX_TENSOR_INPUT, package.dir.c_str(), -1, &transform,
                                  gst_buffer_new_allocate(nullptr, 16, nullptr));
    return buffer;
  };
  const auto with_outputs = [&] {
    return frame_with_outputs(package.dir.string(), blazeface_tensors(), letterbox_640x480());
  };

  std::string warning = warning_at_eos("axdecode decoder=blazeface", plain_frame);
  EXPECT_NE(warning.find("none of the 3 frames of the stream carried a tensor (is axpreprocess ! "
                         "axinference upstream"),
            std::string::npos)
      << warning;
  warning = warning_at_eos("axdecode decoder=blazeface", input_only);
  EXPECT_NE(warning.find("3 of the 3 frames of the stream carried input tensors of model '" +
                         package.dir.string() + "' and no outputs (is axinference model="),
            std::string::npos)
      << warning;
  EXPECT_EQ(warning_at_eos("axdecode decoder=blazeface", with_outputs), "");
  // Objects axpreprocess roi=objects selected none of (axinference warns if it never does).
  const auto objects_only = [&] {
    GstBuffer *buffer = plain_frame();
    gst_buffer_add_video_region_of_interest_meta(buffer, "person", 10, 10, 50, 50);
    return buffer;
  };
  EXPECT_EQ(warning_at_eos("axdecode decoder=classification", objects_only), "");
  EXPECT_EQ(warning_at_eos("axdecode decoder=blazeface model=" + other.dir.string(), with_outputs),
            "");
}

// A live source (v4l2src, rtspsrc, videotestsrc is-live=true) sends no EOS, so the warning above
// never came: it comes once after LiveCheck::kFrames frames, or once the frames' timestamps span
// LiveCheck::kStreamTime (a 1 fps camera), and not again at an EOS.
TEST_F(AxDecode, LiveStreamWithNothingDecodedIsWarnedAboutAfterABoundedWhileOnce) {
  const int bound = int(axstream::gst::LiveCheck::kFrames);
  struct Case {
    int frames;
    GstClockTime spacing;
  };
  for (const Case c : {Case{bound, GST_MSECOND}, Case{3, 5 * GST_SECOND}}) {
    WatchedDecode watched(decode_harness("axdecode decoder=blazeface"));
    for (int i = 0; i < c.frames; ++i) {
      GstBuffer *frame = gst_buffer_new_allocate(nullptr, 640 * 480 * 3, nullptr);
      GST_BUFFER_PTS(frame) = 1000 * GST_SECOND + i * c.spacing;
      gst_buffer_unref(gst_harness_push_and_pull(watched.harness, frame));
      if (i == c.frames - 2) {
        EXPECT_EQ(watched.bus.warning(), "") << "before the bound, " << c.frames;
      }
    }
    const std::string warning = watched.bus.warning();
    EXPECT_NE(warning.find("axdecode decoded nothing: none of the " + std::to_string(c.frames) +
                           " frames of the stream carried a tensor"),
              std::string::npos)
        << warning;
    EXPECT_NE(warning.find("without an EOS yet (live)"), std::string::npos) << warning;
    EXPECT_TRUE(gst_harness_push_event(watched.harness, gst_event_new_eos()));
    EXPECT_EQ(watched.bus.warning(), "") << "warned again at the EOS";
  }
}

// model= naming another package than the one axinference runs decoded nothing, silently (the
// other model's tensors are skipped as a cascade's other stage's). With an axinference upstream
// that does not run it, the first frame says so, naming both packages: a package of other output
// shapes cannot be decoded (an error, the stream stops), one of the same shapes (the same network
// compiled twice, blazeface front and back) may be the wrong copy named (a warning, the stream
// goes on). A cascade's stage whose package an axinference upstream runs says nothing.
TEST_F(AxDecode, ModelNamingAPackageNoAxinferenceUpstreamRunsIsReportedNamingBoth) {
  AXTEST_REQUIRE_MODEL(ran, "resnet_tiny");
  AXTEST_REQUIRE_MODEL(same_shapes, "resnet_tiny_pre");
  AXTEST_REQUIRE_MODEL(other_shapes, "two_outputs");
  // The first error or warning axdecode posts on one frame ("" within 2 s: none).
  const auto message_on_first_frame = [&](const std::string &decode_model) {
    WatchedDecode watched(
        gst_harness_new_parse(("axpreprocess model=" + ran + " ! axinference model=" + ran +
                               " ! axdecode decoder=classification model=" + decode_model)
                                  .c_str()));
    return message_on_one_frame(watched);
  };
  std::string message = message_on_first_frame(other_shapes);
  EXPECT_EQ(message.find("error: axdecode model='" + other_shapes +
                         "' cannot decode the outputs of model '" + ran +
                         "', the only ones on the frames: '" + other_shapes +
                         "' has outputs (1,16,16,8) (1,1,1,16), '" + ran + "' has (1,1,1,1024)"),
            0u)
      << message;
  message = message_on_first_frame(same_shapes);
  EXPECT_EQ(message.find("warning: axdecode model='" + same_shapes +
                         "' decoded nothing: the frames carry the outputs of model '" + ran +
                         "' only, a different package with the same output shapes (outputs "
                         "(1,1,1,1024)); does axinference run the package meant, or should "
                         "axdecode's model= name '" +
                         ran + "'?"),
            0u)
      << message;
  EXPECT_EQ(message_on_first_frame(ran), "") << "the package axinference runs";
}

// The same search through bins (an application's wrappers): axinference and axdecode each in a
// bin of its own, so axdecode's sink pad meets the internal pad of its bin's ghost sink pad, and
// that ghost pad's peer is the ghost source pad of axinference's bin.
TEST_F(AxDecode, ModelNamingAPackageNoAxinferenceRunsIsFoundThroughBinsGhostPads) {
  AXTEST_REQUIRE_MODEL(ran, "resnet_tiny");
  AXTEST_REQUIRE_MODEL(other_shapes, "two_outputs");
  const auto message_on_first_frame = [&](const std::string &decode_model) {
    GstElement *outer = gst_bin_new(nullptr);
    GstElement *preprocess = gst_element_factory_make("axpreprocess", nullptr);
    g_object_set(preprocess, "model", ran.c_str(), nullptr);
    GstElement *inference_bin =
        gst_parse_bin_from_description(("axinference model=" + ran).c_str(), TRUE, nullptr);
    GstElement *decode_bin = gst_parse_bin_from_description(
        ("axdecode decoder=classification model=" + decode_model).c_str(), TRUE, nullptr);
    EXPECT_TRUE(inference_bin && decode_bin);
    gst_bin_add_many(GST_BIN(outer), preprocess, inference_bin, decode_bin, nullptr);
    EXPECT_TRUE(gst_element_link_many(preprocess, inference_bin, decode_bin, nullptr));
    GstPad *sink = gst_element_get_static_pad(preprocess, "sink");
    GstPad *src = gst_element_get_static_pad(decode_bin, "src");
    gst_element_add_pad(outer, gst_ghost_pad_new("sink", sink));
    gst_element_add_pad(outer, gst_ghost_pad_new("src", src));
    gst_object_unref(sink);
    gst_object_unref(src);
    WatchedDecode watched(gst_harness_new_with_element(outer, "sink", "src"));
    return message_on_one_frame(watched);
  };
  const std::string message = message_on_first_frame(other_shapes);
  EXPECT_EQ(message.find("error: axdecode model='" + other_shapes +
                         "' cannot decode the outputs of model '" + ran + "'"),
            0u)
      << message;
  EXPECT_EQ(message_on_first_frame(ran), "") << "the package axinference runs, inside its bin";
}

TEST_F(AxDecode, ModelPropertySkipsTensorsOfOtherModels) {
  BlazeFacePackage package, other("other");
  GstHarness *harness = decode_harness("axdecode decoder=blazeface model=" + other.dir.string());
  GstBuffer *out = gst_harness_push_and_pull(
      harness, frame_with_outputs(package.dir.string(), blazeface_tensors(), letterbox_640x480()));
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(gst_buffer_get_n_meta(out, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE), 0u);
  gst_buffer_unref(out);
  gst_harness_teardown(harness);
}

// A bare axdecode (default decoder classification) after a detector ranked the detector's first
// head as classes and said nothing; a classifier's axdecode without model= in a cascade did the
// same to the detector's outputs, as whole-frame classes. Without model= such a model is skipped,
// with a warning naming its outputs and the decoders; named by model=, decoded, with the warning.
TEST_F(AxDecode, ClassificationSkipsADetectorsOutputsWithAWarningUnlessModelNamesIt) {
  BlazeFacePackage package;
  for (const bool named : {false, true}) {
    GstHarness *harness =
        decode_harness(named ? "axdecode model=" + package.dir.string() : "axdecode");
    axtest::BusWatch bus(harness->element);
    GstBuffer *out = gst_harness_push_and_pull(
        harness,
        frame_with_outputs(package.dir.string(), blazeface_tensors(), letterbox_640x480()));
    ASSERT_NE(out, nullptr);
    // The face anchor's logit 2.0 leads the first head: ranked, it is "class 107".
    EXPECT_EQ(gst_buffer_get_ax_classification_meta(out, -1) != nullptr, named) << named;
    gst_buffer_unref(out);
    const std::string warning = bus.warning();
    EXPECT_NE(warning.find("model '" + package.dir.string() +
                           "' has 4 outputs (scores_16 (1,512,1), scores_8 (1,384,1), boxes_16 "
                           "(1,512,16), boxes_8 (1,384,16)), not one of class scores"),
              std::string::npos)
        << warning;
    EXPECT_NE(warning.find(named ? "ranks only the first" : "skips them"), std::string::npos)
        << warning;
    EXPECT_NE(warning.find("decoder= one of blazeface,"), std::string::npos) << warning;
    gst_harness_teardown(harness);
  }
}

TEST_F(AxDecode, ClassificationOfAnRoiAttachesToThatRoi) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  const auto package = axstream::runtime::load_model_package(model);
  const auto &logits = package->outputs.at(0);
  ASSERT_EQ(logits.size(), 1024u);
  // Classes 7 and 3 stand out; everything else (and the padding) sits at the zero point.
  std::vector<int8_t> bytes(1024, static_cast<int8_t>(logits.zero_point));
  bytes[7] = 127;
  bytes[3] = static_cast<int8_t>(std::min(126, logits.zero_point + 60));
  bytes[1010] = 127;  // padding: must never be reported
  GstBuffer *tensors = gst_buffer_new_memdup(bytes.data(), bytes.size());

  const fs::path labels = fs::path(::testing::TempDir()) / "axdecode_labels.txt";
  {
    std::ofstream file(labels);
    for (int i = 0; i < 1000; ++i) file << "label" << i << "\n";
  }
  GstHarness *harness =
      decode_harness("axdecode decoder=classification top-k=2 labels=" + labels.string());
  GstBuffer *in = gst_buffer_new_allocate(nullptr, 640 * 480 * 3, nullptr);
  GstVideoRegionOfInterestMeta *roi =
      gst_buffer_add_video_region_of_interest_meta(in, "face", 10, 10, 50, 50);
  roi->id = 4;
  GstAxTransform transform{};
  transform.tensor_width = transform.tensor_height = 32;
  gst_buffer_add_ax_tensor_meta(in, GST_AX_TENSOR_OUTPUT, model.c_str(), 4, &transform, tensors);
  gst_buffer_unref(tensors);
  GstBuffer *out = gst_harness_push_and_pull(harness, in);
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(gst_buffer_get_ax_classification_meta(out, -1), nullptr);
  GstAxClassificationMeta *classes = gst_buffer_get_ax_classification_meta(out, 4);
  ASSERT_NE(classes, nullptr);
  ASSERT_EQ(classes->n_classes, 2u);
  EXPECT_EQ(gst_ax_classification_meta_get_class_id(classes, 0), 7);
  EXPECT_STREQ(gst_ax_classification_meta_get_label(classes, 0), "label7");
  EXPECT_NEAR(gst_ax_classification_meta_get_score(classes, 0),
              (127 - logits.zero_point) * logits.scale, 1e-5);
  EXPECT_EQ(gst_ax_classification_meta_get_class_id(classes, 1), 3);
  EXPECT_EQ(gst_ax_classification_meta_get_label(classes, 2), nullptr);
  GstVideoRegionOfInterestMeta *out_roi = gst_buffer_get_video_region_of_interest_meta_id(out, 4);
  ASSERT_NE(out_roi, nullptr);
  GstStructure *params =
      gst_video_region_of_interest_meta_get_param(out_roi, GST_AX_CLASSIFICATION_PARAM);
  ASSERT_NE(params, nullptr);
  const GValue *labels_value = gst_structure_get_value(params, "labels");
  ASSERT_TRUE(labels_value && GST_VALUE_HOLDS_ARRAY(labels_value));
  EXPECT_STREQ(g_value_get_string(gst_value_array_get_value(labels_value, 0)), "label7");
  // A ROI's classes are its param only: the custom meta is the whole frame's.
  EXPECT_EQ(gst_buffer_get_custom_meta(out, GST_AX_CLASSIFICATION_PARAM), nullptr);
  gst_buffer_unref(out);
  gst_harness_teardown(harness);
  fs::remove(labels);
}

TEST_F(AxDecode, UnknownDecoderFailsToStartNamingTheValidOnes) {
  GstElement *element = gst_element_factory_make("axdecode", nullptr);
  ASSERT_NE(element, nullptr);
  g_object_set(element, "decoder", "yolov99", nullptr);
  const std::string error = axtest::error_when_started(element);
  EXPECT_NE(error.find("'yolov99'"), std::string::npos) << error;
  EXPECT_NE(error.find("blazeface"), std::string::npos) << error;
  EXPECT_NE(error.find("classification"), std::string::npos) << error;
}

TEST_F(AxDecode, MissingLabelsFileFailsToStartNamingTheFile) {
  GstElement *element = gst_element_factory_make("axdecode", nullptr);
  g_object_set(element, "labels", "/nonexistent/labels.txt", nullptr);
  const std::string error = axtest::error_when_started(element);
  EXPECT_NE(error.find("/nonexistent/labels.txt"), std::string::npos) << error;
}

// A directory opens as a stream on Linux and reads as nothing: it passed for an empty labels
// file, and every class was reported as "class N" with no word of the mistake.
TEST_F(AxDecode, LabelsPathThatIsADirectoryFailsToStartNamingIt) {
  const std::string directory = ::testing::TempDir();
  GstElement *element = gst_element_factory_make("axdecode", nullptr);
  g_object_set(element, "labels", directory.c_str(), nullptr);
  const std::string error = axtest::error_when_started(element);
  EXPECT_NE(error.find("labels file '" + directory + "'"), std::string::npos) << error;
  EXPECT_NE(error.find("directory"), std::string::npos) << error;
}

TEST_F(AxDecode, LabelsFileThatIsNotUtf8FailsToStartNamingTheLine) {
  const fs::path path =
      fs::path(::testing::TempDir()) / ("axdecode_latin1_" + std::to_string(getpid()) + ".txt");
  write_file(path, "person\ncaf\xe9\n");  // Latin-1
  GstElement *element = gst_element_factory_make("axdecode", nullptr);
  g_object_set(element, "labels", path.c_str(), nullptr);
  const std::string error = axtest::error_when_started(element);
  EXPECT_NE(error.find("labels file '" + path.string() + "' line 2 is not UTF-8"),
            std::string::npos)
      << error;
  fs::remove(path);
}

TEST_F(AxDecode, MissingModelPackageFailsToStartNamingThePath) {
  GstElement *element = gst_element_factory_make("axdecode", nullptr);
  g_object_set(element, "decoder", "blazeface", "model", "/nonexistent/package", nullptr);
  const std::string error = axtest::error_when_started(element);
  EXPECT_NE(error.find("could not load model package '/nonexistent/package'"), std::string::npos)
      << error;
}

TEST_F(AxDecode, CorruptModelPackageFailsToStartNamingTheFile) {
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("axdecode_corrupt_" + std::to_string(getpid()));
  fs::create_directories(dir);
  write_file(dir / "model.json", "{ not json");
  GstElement *element = gst_element_factory_make("axdecode", nullptr);
  g_object_set(element, "model", dir.c_str(), nullptr);
  const std::string error = axtest::error_when_started(element);
  EXPECT_NE(error.find((dir / "model.json").string() + ": invalid JSON"), std::string::npos)
      << error;
  fs::remove_all(dir);
}

TEST_F(AxDecode, RelativeModelPathMatchesTheAbsolutePathTheTensorsName) {
  BlazeFacePackage package;
  const fs::path relative = fs::relative(package.dir);
  ASSERT_TRUE(relative.is_relative()) << relative;
  GstHarness *harness = decode_harness("axdecode decoder=blazeface model=" + relative.string());
  GstBuffer *out = gst_harness_push_and_pull(
      harness, frame_with_outputs(package.dir.string(), blazeface_tensors(), letterbox_640x480()));
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(gst_buffer_get_n_meta(out, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE), 1u);
  gst_buffer_unref(out);
  gst_harness_teardown(harness);
}

TEST_F(AxDecode, OutputsTheDecoderCannotParseAreAnErrorNamingTensorAndShape) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstHarness *harness = decode_harness("axdecode decoder=blazeface");
  axtest::BusWatch bus(harness->element);
  std::vector<int8_t> bytes(1024, 0);
  GstBuffer *tensors = gst_buffer_new_memdup(bytes.data(), bytes.size());
  EXPECT_EQ(gst_harness_push(harness, frame_with_outputs(model, tensors, letterbox_640x480())),
            GST_FLOW_ERROR);
  const std::string error = bus.error();
  EXPECT_NE(error.find("logits (1,1000)"), std::string::npos) << error;
  EXPECT_NE(error.find("(1,512,16)"), std::string::npos) << error;
  gst_harness_teardown(harness);
}

TEST_F(AxDecode, TensorsOfTheWrongSizeAreAnErrorNamingTheOutput) {
  BlazeFacePackage package;
  GstHarness *harness = decode_harness("axdecode decoder=blazeface");
  axtest::BusWatch bus(harness->element);
  GstBuffer *tensors = gst_buffer_new();
  for (int i = 0; i < 4; ++i)
    gst_buffer_append_memory(tensors, wrap_bytes(std::vector<int8_t>(100, 0)));
  EXPECT_EQ(gst_harness_push(
                harness, frame_with_outputs(package.dir.string(), tensors, letterbox_640x480())),
            GST_FLOW_ERROR);
  const std::string error = bus.error();
  EXPECT_NE(error.find("output 'scores_16': expected 2048 bytes"), std::string::npos) << error;
  gst_harness_teardown(harness);
}

TEST_F(AxDecode, DecoderBlurbListsTheRegisteredDecoders) {
  GstElement *element = gst_element_factory_make("axdecode", nullptr);
  ASSERT_NE(element, nullptr);
  GParamSpec *pspec = g_object_class_find_property(G_OBJECT_GET_CLASS(element), "decoder");
  ASSERT_NE(pspec, nullptr);
  const std::string blurb = g_param_spec_get_blurb(pspec);
  EXPECT_NE(blurb.find("blazeface"), std::string::npos) << blurb;
  EXPECT_NE(blurb.find("classification"), std::string::npos) << blurb;
  gst_object_unref(element);
}

TEST_F(AxDecode, RunsThePackagesPostambleBeforeDecoding) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny_post");
  const auto package = axstream::runtime::load_model_package(model);
  const auto &logits = package->outputs.at(0);
  std::vector<int8_t> bytes(1024, static_cast<int8_t>(logits.zero_point));
  bytes[42] = 127;
  GstBuffer *tensors = gst_buffer_new_memdup(bytes.data(), bytes.size());
  GstAxTransform transform{};
  GstHarness *harness = decode_harness("axdecode decoder=classification top-k=1");
  axtest::BusWatch bus(harness->element);
  ASSERT_EQ(gst_harness_push(harness, frame_with_outputs(model, tensors, transform)), GST_FLOW_OK)
      << bus.error();
  GstBuffer *out = gst_harness_pull(harness);
  ASSERT_NE(out, nullptr);
  GstAxClassificationMeta *classes = gst_buffer_get_ax_classification_meta(out, -1);
  ASSERT_NE(classes, nullptr);
  ASSERT_EQ(classes->n_classes, 1u);
  EXPECT_EQ(classes->class_ids[0], 42);
  // The postamble is a softmax over 1000 logits: one at (127 - zp) * scale, 999 at 0.
  const double hot = std::exp((127 - logits.zero_point) * logits.scale);
  EXPECT_NEAR(classes->scores[0], hot / (hot + 999.0), 1e-4);
  EXPECT_STREQ(classes->labels[0], "class 42");
  // The same classes as an introspectable custom meta (what Python reads), kept by a copy.
  GstBuffer *copy = gst_buffer_copy(out);
  GstCustomMeta *custom = gst_buffer_get_custom_meta(copy, GST_AX_CLASSIFICATION_PARAM);
  ASSERT_NE(custom, nullptr);
  const GstStructure *params = gst_custom_meta_get_structure(custom);
  const GValue *ids = gst_structure_get_value(params, "class-ids");
  const GValue *scores = gst_structure_get_value(params, "scores");
  const GValue *labels = gst_structure_get_value(params, "labels");
  ASSERT_TRUE(ids && scores && labels && GST_VALUE_HOLDS_ARRAY(ids))
      << gst_structure_to_string(params);
  ASSERT_EQ(gst_value_array_get_size(ids), 1u);
  EXPECT_EQ(g_value_get_int(gst_value_array_get_value(ids, 0)), 42);
  EXPECT_NEAR(g_value_get_double(gst_value_array_get_value(scores, 0)), classes->scores[0], 1e-6);
  EXPECT_STREQ(g_value_get_string(gst_value_array_get_value(labels, 0)), "class 42");
  gst_buffer_unref(copy);
  gst_buffer_unref(out);
  gst_harness_teardown(harness);
}

TEST_F(AxDecode, ResultMetasSurviveABufferCopy) {
  GstBuffer *buffer = gst_buffer_new();
  const gint ids[] = {5, 2};
  const gfloat scores[] = {0.6f, 0.3f};
  const gchar *labels[] = {"owl", "fox", nullptr};
  gst_buffer_add_ax_classification_meta(buffer, -1, "/models/x", 2, ids, scores, labels);
  const gfloat points[] = {1.0f, 2.0f, 3.0f, 4.0f};
  gst_buffer_add_ax_keypoints_meta(buffer, 7, 2, points);
  GstBuffer *copy = gst_buffer_copy(buffer);
  gst_buffer_unref(buffer);
  GstAxClassificationMeta *classes = gst_buffer_get_ax_classification_meta(copy, -1);
  ASSERT_NE(classes, nullptr);
  EXPECT_STREQ(classes->model, "/models/x");
  EXPECT_EQ(gst_ax_classification_meta_get_class_id(classes, 1), 2);
  EXPECT_STREQ(gst_ax_classification_meta_get_label(classes, 1), "fox");
  EXPECT_EQ(gst_buffer_get_ax_keypoints_meta(copy, 6), nullptr);
  GstAxKeypointsMeta *keypoints = gst_buffer_get_ax_keypoints_meta(copy, 7);
  ASSERT_NE(keypoints, nullptr);
  gfloat x = 0, y = 0;
  ASSERT_TRUE(gst_ax_keypoints_meta_get_point(keypoints, 1, &x, &y));
  EXPECT_EQ(x, 3.0f);
  EXPECT_EQ(y, 4.0f);
  gst_buffer_unref(copy);
}

// videoscale (and any element scaling the frame) scales the ROI box; the detection's keypoints
// must follow it, not stay in the old frame's pixels (they did: untagged metas are copied as is).
TEST_F(AxDecode, KeypointsScaleWithTheFrameLikeTheirRoi) {
  EXPECT_TRUE(gst_meta_api_type_has_tag(GST_AX_KEYPOINTS_META_API_TYPE,
                                        g_quark_from_string(GST_META_TAG_VIDEO_SIZE_STR)));
  GstBuffer *frame = gst_buffer_new();
  GstVideoRegionOfInterestMeta *roi =
      gst_buffer_add_video_region_of_interest_meta(frame, "face", 100, 50, 40, 20);
  roi->id = 7;
  const gfloat points[] = {110.0f, 60.0f, 130.0f, 65.0f};
  gst_buffer_add_ax_keypoints_meta(frame, 7, 2, points);
  GstVideoInfo in_info, out_info;
  gst_video_info_set_format(&in_info, GST_VIDEO_FORMAT_RGB, 640, 480);
  gst_video_info_set_format(&out_info, GST_VIDEO_FORMAT_RGB, 320, 240);
  GstVideoMetaTransform scale = {&in_info, &out_info};
  GstBuffer *scaled = gst_buffer_new();
  gpointer state = nullptr;
  while (GstMeta *meta = gst_buffer_iterate_meta(frame, &state))
    meta->info->transform_func(scaled, meta, frame, gst_video_meta_transform_scale_get_quark(),
                               &scale);
  GstVideoRegionOfInterestMeta *scaled_roi =
      gst_buffer_get_video_region_of_interest_meta_id(scaled, 7);
  ASSERT_NE(scaled_roi, nullptr);
  EXPECT_EQ(scaled_roi->x, 50u);
  EXPECT_EQ(scaled_roi->w, 20u);
  GstAxKeypointsMeta *keypoints = gst_buffer_get_ax_keypoints_meta(scaled, 7);
  ASSERT_NE(keypoints, nullptr);
  gfloat x = 0, y = 0;
  ASSERT_TRUE(gst_ax_keypoints_meta_get_point(keypoints, 0, &x, &y));
  EXPECT_FLOAT_EQ(x, 55.0f);
  EXPECT_FLOAT_EQ(y, 30.0f);
  ASSERT_TRUE(gst_ax_keypoints_meta_get_point(keypoints, 1, &x, &y));
  EXPECT_FLOAT_EQ(x, 65.0f);
  EXPECT_FLOAT_EQ(y, 32.5f);
  // A transform it does not know (a flip, a crop) drops them rather than misplace them.
  GstBuffer *other = gst_buffer_new();
  GstMeta *meta = &gst_buffer_get_ax_keypoints_meta(frame, 7)->meta;
  EXPECT_FALSE(
      meta->info->transform_func(other, meta, frame, g_quark_from_static_string("other"), nullptr));
  EXPECT_EQ(gst_buffer_get_ax_keypoints_meta(other, 7), nullptr);
  gst_buffer_unref(other);
  gst_buffer_unref(scaled);
  gst_buffer_unref(frame);
}

// videoscale between axinference and axdecode: the tensor meta's geometry must map the tensor to
// the scaled frame (it kept the old frame's, so boxes landed in unscaled pixels).
TEST_F(AxDecode, TensorGeometryScalesWithTheFrame) {
  EXPECT_TRUE(gst_meta_api_type_has_tag(GST_AX_TENSOR_META_API_TYPE,
                                        g_quark_from_string(GST_META_TAG_VIDEO_SIZE_STR)));
  GstBuffer *frame = gst_buffer_new();
  GstAxTransform transform{};
  transform.crop_x = 40;
  transform.crop_y = 20;
  transform.crop_width = 600;
  transform.crop_height = 440;
  transform.scale_x = transform.scale_y = 0.25;
  transform.offset_x = 8;
  transform.offset_y = 4;
  transform.tensor_width = transform.tensor_height = 128;
  GstBuffer *tensors = gst_buffer_new_allocate(nullptr, 16, nullptr);
  GstAxTensorMeta *meta = gst_buffer_add_ax_tensor_meta(frame, GST_AX_TENSOR_OUTPUT, "/models/m", 3,
                                                        &transform, tensors);
  meta->stream_id = 2;
  GstVideoInfo in_info, out_info;
  gst_video_info_set_format(&in_info, GST_VIDEO_FORMAT_RGB, 640, 480);
  gst_video_info_set_format(&out_info, GST_VIDEO_FORMAT_RGB, 320, 120);
  GstVideoMetaTransform scale = {&in_info, &out_info};
  GstBuffer *scaled = gst_buffer_new();
  ASSERT_TRUE(meta->meta.info->transform_func(scaled, &meta->meta, frame,
                                              gst_video_meta_transform_scale_get_quark(), &scale));
  GstAxTensorMeta *out = gst_buffer_get_ax_tensor_meta(scaled, GST_AX_TENSOR_OUTPUT, nullptr, 3);
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(out->tensors, tensors);
  EXPECT_EQ(out->stream_id, 2u);
  // Tensor pixel (72, 36) is frame pixel (40 + 64 / 0.25, 20 + 32 / 0.25) = (296, 148) before,
  // (148, 37) in the 320x120 frame.
  const GstAxTransform &t = out->transform;
  EXPECT_DOUBLE_EQ(t.crop_x + (72 - t.offset_x) / t.scale_x, 148.0);
  EXPECT_DOUBLE_EQ(t.crop_y + (36 - t.offset_y) / t.scale_y, 37.0);
  EXPECT_DOUBLE_EQ(t.crop_width, 300.0);
  EXPECT_DOUBLE_EQ(t.crop_height, 110.0);
  EXPECT_EQ(t.tensor_width, 128);
  gst_buffer_unref(scaled);
  gst_buffer_unref(tensors);
  gst_buffer_unref(frame);
}

TEST_F(AxDecode, ModelPropertyMatchesThePackageWrittenAsItsModelJson) {
  BlazeFacePackage package;
  GstHarness *harness =
      decode_harness("axdecode decoder=blazeface model=" + (package.dir / "model.json").string());
  GstBuffer *out = gst_harness_push_and_pull(
      harness,
      frame_with_outputs(package.dir.string() + "/", blazeface_tensors(), letterbox_640x480()));
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(gst_buffer_get_n_meta(out, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE), 1u);
  gst_buffer_unref(out);
  gst_harness_teardown(harness);
}

TEST_F(AxDecode, CtcTextLandsOnTheRoiItWasReadFrom) {
  // A (1,4,4) "recogniser": classes blank, x, y + space; device tensor = float / 0.01.
  const fs::path dir =
      fs::path(::testing::TempDir()) / ("axdecode_ctc_" + std::to_string(getpid()));
  fs::create_directories(dir);
  onnx::ModelProto model;
  model.set_ir_version(8);
  model.add_opset_import()->set_version(13);
  add_int8_value(model.mutable_graph()->add_input(), "x", {1, 8, 32, 4});
  add_int8_value(model.mutable_graph()->add_output(), "probs", {1, 4, 4});
  std::ofstream(dir / "core.onnx", std::ios::binary) << model.SerializeAsString();
  std::ofstream(dir / "model.json") << R"({"format_version": 1, "core_graph": "core.onnx",
    "batch": 1, "input_tensor_layout": "NHWC", "preamble_graph": null, "postamble_graph": null})";
  std::ofstream(dir / "manifest.json") << R"({"manifest_version": 1,
    "model_lib_file": "model.json", "quantized_model_file": "core.onnx",
    "input_shapes": [[1, 8, 32, 4]], "output_shapes": [[1, 4, 4]],
    "quantize_params": [[0.01, 0]], "dequantize_params": [[0.01, 0]],
    "n_padded_ch_inputs": [[0, 0, 0, 0, 0, 0, 0, 1]], "n_padded_ch_outputs": [[0, 0, 0, 0, 0, 0]],
    "preprocess_graph": null, "postprocess_graph": null,
    "input_names": ["x"], "output_names": ["probs"]})";
  const fs::path labels = dir / "keys.txt";
  std::ofstream(labels) << "x\ny\n";
  // steps: x, x, blank, y -> "xy"
  const std::vector<int8_t> bytes = {5, 90, 5, 0, 5, 90, 5, 0, 90, 5, 5, 0, 5, 5, 80, 10};
  GstBuffer *tensors = gst_buffer_new_memdup(bytes.data(), bytes.size());

  GstHarness *harness = decode_harness("axdecode decoder=ctc labels=" + labels.string());
  GstBuffer *in = gst_buffer_new_allocate(nullptr, 640 * 480 * 3, nullptr);
  GstVideoRegionOfInterestMeta *roi =
      gst_buffer_add_video_region_of_interest_meta(in, "text", 100, 50, 200, 40);
  roi->id = 3;
  GstAxTransform transform{};
  gst_buffer_add_ax_tensor_meta(in, GST_AX_TENSOR_OUTPUT, dir.c_str(), 3, &transform, tensors);
  gst_buffer_unref(tensors);
  GstBuffer *out = gst_harness_push_and_pull(harness, in);
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(gst_buffer_get_n_meta(out, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE), 1u);
  GstVideoRegionOfInterestMeta *read = gst_buffer_get_video_region_of_interest_meta_id(out, 3);
  ASSERT_NE(read, nullptr);
  GstStructure *params = gst_video_region_of_interest_meta_get_param(read, GST_AX_DETECTION_PARAM);
  ASSERT_NE(params, nullptr);
  EXPECT_STREQ(gst_structure_get_string(params, "text"), "xy");
  double confidence = 0;
  ASSERT_TRUE(gst_structure_get_double(params, "text-confidence", &confidence));
  EXPECT_NEAR(confidence, (0.9 + 0.8) / 2, 1e-5);  // first x and the y
  const GstAxDetectionMeta *detection = gst_buffer_get_ax_detection_meta(out, 3);
  ASSERT_NE(detection, nullptr);
  EXPECT_STREQ(detection->text, "xy");
  EXPECT_DOUBLE_EQ(detection->text_confidence, confidence);
  EXPECT_STREQ(detection->label, "text");
  gst_buffer_unref(out);
  gst_harness_teardown(harness);
  fs::remove_all(dir);
}

namespace {

// Box, score and keypoints of every ROI, for comparing two decodes of the same tensors.
std::vector<std::string> describe_rois(GstBuffer *buffer) {
  std::vector<std::string> rois;
  gpointer iter = nullptr;
  while (GstMeta *meta = gst_buffer_iterate_meta_filtered(
             buffer, &iter, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)) {
    auto *roi = reinterpret_cast<GstVideoRegionOfInterestMeta *>(meta);
    GstStructure *params = gst_video_region_of_interest_meta_get_param(roi, GST_AX_DETECTION_PARAM);
    gchar *text = params ? gst_structure_to_string(params) : g_strdup("-");
    rois.push_back(std::to_string(roi->x) + "," + std::to_string(roi->y) + "," +
                   std::to_string(roi->w) + "," + std::to_string(roi->h) + " " + text);
    g_free(text);
  }
  return rois;
}

}  // namespace

TEST_F(AxDecode, Int8FastPathGivesExactlyTheFloatPathsResults) {
  BlazeFacePackage package;
  // Three faces of different scores at different anchors, frame after frame (the int8 path
  // takes over from the second buffer, after the outputs were checked on the first).
  auto tensors = [](int frame) {
    std::vector<int8_t> scores16(512 * 4, -128), scores8(384 * 4, -128);
    std::vector<int8_t> boxes16(512 * 16, 0), boxes8(384 * 16, 0);
    for (int face = 0; face < 3; ++face) {
      const int anchor = 40 + 150 * face + frame;
      scores16[anchor * 4] = int8_t(5 + 7 * face + frame);
      const int8_t box[16] = {int8_t(4 + face), 8, 40, int8_t(60 - frame), -12, 4, 7, 7};
      std::copy(box, box + 16, boxes16.begin() + anchor * 16);
    }
    scores8[100 * 4] = 30;
    const int8_t box8[16] = {0, 0, 50, 50, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    std::copy(box8, box8 + 16, boxes8.begin() + 100 * 16);
    GstBuffer *buffer = gst_buffer_new();
    for (const auto *bytes : {&scores16, &scores8, &boxes16, &boxes8})
      gst_buffer_append_memory(buffer, wrap_bytes(*bytes));
    return buffer;
  };
  std::vector<std::vector<std::string>> results[2];
  for (int fast = 0; fast < 2; ++fast) {
    GstHarness *harness =
        decode_harness(std::string("axdecode decoder=blazeface ") +
                       "conf-threshold=0.6 int8-fast-path=" + (fast ? "true" : "false"));
    for (int frame = 0; frame < 4; ++frame) {
      GstBuffer *out = gst_harness_push_and_pull(
          harness, frame_with_outputs(package.dir.string(), tensors(frame), letterbox_640x480()));
      ASSERT_NE(out, nullptr);
      results[fast].push_back(describe_rois(out));
      gst_buffer_unref(out);
    }
    gst_harness_teardown(harness);
  }
  for (int frame = 0; frame < 4; ++frame) {
    EXPECT_GE(results[0][frame].size(), 2u) << "frame " << frame;  // not a vacuous comparison
    EXPECT_EQ(results[1][frame], results[0][frame]) << "frame " << frame;
  }
}

TEST_F(AxDecode, DecoderConfigWithAKeyTheDecoderDoesNotKnowFailsToStart) {
  GstElement *element = gst_element_factory_make("axdecode", nullptr);
  ASSERT_NE(element, nullptr);
  g_object_set(element, "decoder", "classification", "decoder-config", "clip=1", nullptr);
  const std::string error = axtest::error_when_started(element);
  EXPECT_NE(error.find("decoder 'classification': unknown config key 'clip', expected no config"),
            std::string::npos)
      << error;
}

namespace {

void add_float_value(onnx::ValueInfoProto *value, const std::string &name,
                     const std::vector<int64_t> &shape) {
  add_int8_value(value, name, shape);
  value->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
}

// A YOLOv5-shaped package as axcompile makes yolov5s: three raw heads (1,21,S,S), S = 8, 4, 2
// of a 64x64 input (2 classes), NHWC int8 on the device with channels padded to 24, and a
// postamble that is only the heads' Sigmoid.
struct SigmoidHeadsPackage {
  fs::path dir;

  SigmoidHeadsPackage() {
    dir = fs::path(::testing::TempDir()) / ("axdecode_yolo_" + std::to_string(getpid()));
    fs::create_directories(dir);
    onnx::ModelProto core, postamble;
    for (auto *model : {&core, &postamble}) {
      model->set_ir_version(8);
      model->add_opset_import()->set_version(13);
    }
    core.mutable_graph()->set_name("yolo_shaped");
    add_int8_value(core.mutable_graph()->add_input(), "images", {1, 64, 64, 4});
    auto *graph = postamble.mutable_graph();
    graph->set_name("yolo_shaped_postamble");
    for (int64_t size : {8, 4, 2}) {
      const std::string head = "head" + std::to_string(size);
      add_int8_value(core.mutable_graph()->add_output(), head, {1, size, size, 24});
      add_float_value(graph->add_input(), head, {1, 21, size, size});
      auto *sigmoid = graph->add_node();
      sigmoid->set_op_type("Sigmoid");
      sigmoid->add_input(head);
      sigmoid->add_output(head + "_sigmoid");
      add_float_value(graph->add_output(), head + "_sigmoid", {1, 21, size, size});
    }
    std::ofstream(dir / "core.onnx", std::ios::binary) << core.SerializeAsString();
    std::ofstream(dir / "postamble.onnx", std::ios::binary) << postamble.SerializeAsString();
    write_file(dir / "model.json", R"({"format_version": 1, "name": "yolo_shaped",
      "core_graph": "core.onnx", "batch": 1, "input_tensor_layout": "NHWC",
      "preamble_graph": null, "postamble_graph": "postamble.onnx"})");
    write_file(dir / "manifest.json", R"({"manifest_version": 1, "model_lib_file": "model.json",
      "quantized_model_file": "core.onnx",
      "input_shapes": [[1, 64, 64, 4]],
      "output_shapes": [[1, 8, 8, 24], [1, 4, 4, 24], [1, 2, 2, 24]],
      "quantize_params": [[0.0078125, 0]],
      "dequantize_params": [[0.045, 5], [0.05, -1], [0.04, -21]],
      "n_padded_ch_inputs": [[0, 0, 0, 0, 0, 0, 0, 1]],
      "n_padded_ch_outputs": [[0, 0, 0, 0, 0, 0, 0, 3], [0, 0, 0, 0, 0, 0, 0, 3],
                              [0, 0, 0, 0, 0, 0, 0, 3]],
      "preprocess_graph": null, "postprocess_graph": "postamble.onnx",
      "input_names": ["images"], "output_names": ["head8", "head4", "head2"],
      "output_info": [{"original_shape": [1, 21, 8, 8], "layout": "NHWC"},
                      {"original_shape": [1, 21, 4, 4], "layout": "NHWC"},
                      {"original_shape": [1, 21, 2, 2], "layout": "NHWC"}]})");
  }
  ~SigmoidHeadsPackage() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
};

struct RoiBox {
  guint x, y, w, h;
  std::string label;
};

std::vector<RoiBox> rois_of(GstBuffer *buffer) {
  std::vector<RoiBox> boxes;
  gpointer iter = nullptr;
  while (GstMeta *meta = gst_buffer_iterate_meta_filtered(
             buffer, &iter, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)) {
    auto *roi = reinterpret_cast<GstVideoRegionOfInterestMeta *>(meta);
    boxes.push_back({roi->x, roi->y, roi->w, roi->h, g_quark_to_string(roi->roi_type)});
  }
  return boxes;
}

// axdecode's log lines (its INFO says which path a model's outputs take).
struct AxDecodeLog {
  std::vector<std::string> lines;
  AxDecodeLog() {
    gst_debug_set_threshold_for_name("axdecode", GST_LEVEL_INFO);
    gst_debug_add_log_function(&AxDecodeLog::collect, this, nullptr);
  }
  ~AxDecodeLog() {
    gst_debug_remove_log_function_by_data(this);
    gst_debug_set_threshold_for_name("axdecode", GST_LEVEL_NONE);
  }
  static void collect(GstDebugCategory *category, GstDebugLevel, const gchar *, const gchar *, gint,
                      GObject *, GstDebugMessage *message, gpointer self) {
    if (g_strcmp0(gst_debug_category_get_name(category), "axdecode") == 0)
      static_cast<AxDecodeLog *>(self)->lines.push_back(gst_debug_message_get(message));
  }
  bool says(const std::string &text) const {
    for (const auto &line : lines)
      if (line.find(text) != std::string::npos) return true;
    return false;
  }
};

// Decodes `frames` frames of seeded random device outputs (per frame one byte vector of each size
// in `output_bytes`) of `package` with axdecode `launch` + "int8-fast-path=true" and "=false" side
// by side, and hands each frame's two output buffers to `compare(frame, fast, slow)`. The first
// frame decodes in float either way (the outputs are checked on it); with the fast path on, the
// rest take the int8 path.
template <class Compare>
void decode_fast_and_slow(const std::string &package, const std::string &launch,
                          const GstAxTransform &transform, const std::vector<size_t> &output_bytes,
                          uint32_t seed, int frames, Compare compare) {
  GstHarness *fast = decode_harness(launch + " int8-fast-path=true");
  GstHarness *slow = decode_harness(launch + " int8-fast-path=false");
  axtest::BusWatch fast_bus(fast->element), slow_bus(slow->element);
  std::mt19937 rng(seed);
  for (int frame = 0; frame < frames; ++frame) {
    std::vector<std::vector<int8_t>> outputs;
    for (size_t bytes : output_bytes) {
      outputs.emplace_back(bytes);
      for (auto &q : outputs.back()) q = int8_t(rng());
    }
    auto tensors = [&] {
      GstBuffer *buffer = gst_buffer_new();
      for (const auto &bytes : outputs) gst_buffer_append_memory(buffer, wrap_bytes(bytes));
      return buffer;
    };
    ASSERT_EQ(gst_harness_push(fast, frame_with_outputs(package, tensors(), transform)),
              GST_FLOW_OK)
        << fast_bus.error();
    ASSERT_EQ(gst_harness_push(slow, frame_with_outputs(package, tensors(), transform)),
              GST_FLOW_OK)
        << slow_bus.error();
    GstBuffer *fast_out = gst_harness_pull(fast);
    GstBuffer *slow_out = gst_harness_pull(slow);
    compare(frame, fast_out, slow_out);
    gst_buffer_unref(fast_out);
    gst_buffer_unref(slow_out);
  }
  gst_harness_teardown(fast);
  gst_harness_teardown(slow);
}

}  // namespace

TEST_F(AxDecode, YoloHeadsWithASigmoidPostambleDecodeInInt8LikeTheFloatPath) {
  SigmoidHeadsPackage package;
  AxDecodeLog log;
  GstAxTransform transform{};
  transform.crop_width = transform.crop_height = 64;
  transform.scale_x = transform.scale_y = 1;
  transform.tensor_width = transform.tensor_height = 64;
  size_t compared = 0;
  decode_fast_and_slow(
      package.dir.string(),
      "axdecode decoder=yolov5 conf-threshold=0.5 max-detections=0 "
      "decoder-config=\"activations=sigmoid\"",
      transform, {8 * 8 * 24, 4 * 4 * 24, 2 * 2 * 24}, 21, 3,
      [&](int frame, GstBuffer *fast, GstBuffer *slow) {
        const auto got = rois_of(fast), expected = rois_of(slow);
        ASSERT_FALSE(expected.empty()) << "frame " << frame << ": nothing decoded";
        ASSERT_EQ(got.size(), expected.size()) << "frame " << frame;
        for (size_t i = 0; i < got.size(); ++i) {
          EXPECT_EQ(got[i].label, expected[i].label) << "frame " << frame << " box " << i;
          EXPECT_NEAR(got[i].x, expected[i].x, 1) << "frame " << frame << " box " << i;
          EXPECT_NEAR(got[i].y, expected[i].y, 1) << "frame " << frame << " box " << i;
          EXPECT_NEAR(got[i].w, expected[i].w, 1) << "frame " << frame << " box " << i;
          EXPECT_NEAR(got[i].h, expected[i].h, 1) << "frame " << frame << " box " << i;
        }
        compared += got.size();
      });
  EXPECT_GT(compared, 10u);
  EXPECT_TRUE(log.says("decoder yolov5 uses its int8 path")) << "the fast harness stayed on float";
}

// The package's postamble already applies the heads' Sigmoid: decoding them as logits (the
// default) would pass every anchor, so axdecode warns and names the setting; with it, no warning.
TEST_F(AxDecode, YoloHeadsAfterAPostambleSigmoidWithoutActivationsSigmoidWarn) {
  SigmoidHeadsPackage package;
  GstAxTransform transform{};
  transform.crop_width = transform.crop_height = 64;
  transform.scale_x = transform.scale_y = 1;
  transform.tensor_width = transform.tensor_height = 64;
  for (const bool configured : {false, true}) {
    GstHarness *harness =
        decode_harness(std::string("axdecode decoder=yolov5") +
                       (configured ? " decoder-config=\"activations=sigmoid\"" : ""));
    axtest::BusWatch bus(harness->element);
    std::vector<std::vector<int8_t>> outputs;
    for (size_t bytes : {8 * 8 * 24, 4 * 4 * 24, 2 * 2 * 24}) outputs.emplace_back(bytes, 0);
    GstBuffer *tensors = gst_buffer_new();
    for (const auto &bytes : outputs) gst_buffer_append_memory(tensors, wrap_bytes(bytes));
    ASSERT_EQ(
        gst_harness_push(harness, frame_with_outputs(package.dir.string(), tensors, transform)),
        GST_FLOW_OK)
        << bus.error();
    gst_buffer_unref(gst_harness_pull(harness));
    const std::string warning = bus.warning();
    if (configured) {
      EXPECT_EQ(warning, "");
    } else {
      EXPECT_NE(warning.find("ends its outputs in a Sigmoid and decoder yolov5 applies one"),
                std::string::npos)
          << warning;
      EXPECT_NE(warning.find("activations=sigmoid"), std::string::npos) << warning;
    }
    gst_harness_teardown(harness);
  }
}

namespace {

// An SSD-shaped package as axcompile makes ssd_mobilenet: per level (3x3 cells with 4 priors,
// 2x2 with 6, of a 90x90 input) a box head (1,4*priors,S,S) and a score head (1,5*priors,S,S),
// NHWC int8 on the device with channels padded to a multiple of 8, each its own quantisation;
// the postamble turns each head channels-last, reshapes it to rows and concatenates the levels:
// loc (1,60,4) and conf (1,60,5).
struct ConcatHeadsPackage {
  static constexpr const char *kPriors =
      "feature-maps=3,2; image-size=90; min-sizes=20,45; max-sizes=45,90; aspect-ratios=2|2,3";
  fs::path dir;

  ConcatHeadsPackage() {
    dir = fs::path(::testing::TempDir()) / ("axdecode_ssd_" + std::to_string(getpid()));
    fs::create_directories(dir);
    onnx::ModelProto core, postamble;
    for (auto *model : {&core, &postamble}) {
      model->set_ir_version(8);
      model->add_opset_import()->set_version(13);
    }
    core.mutable_graph()->set_name("ssd_shaped");
    add_int8_value(core.mutable_graph()->add_input(), "input", {1, 90, 90, 4});
    auto *graph = postamble.mutable_graph();
    graph->set_name("ssd_shaped_postamble");
    auto add_node = [&](const std::string &op, const std::vector<std::string> &inputs,
                        const std::string &output) {
      auto *node = graph->add_node();
      node->set_op_type(op);
      for (const auto &input : inputs) node->add_input(input);
      node->add_output(output);
      return node;
    };
    for (int64_t width : {4, 5}) {
      const std::string output = width == 4 ? "loc" : "conf";
      auto *rows = graph->add_initializer();
      rows->set_name(output + "_rows");
      rows->set_data_type(onnx::TensorProto::INT64);
      rows->add_dims(3);
      for (int64_t d : {int64_t(1), int64_t(-1), width}) rows->add_int64_data(d);
      std::vector<std::string> levels;
      for (auto [size, priors] : {std::pair<int64_t, int64_t>{3, 4}, {2, 6}}) {
        const std::string head = output + std::to_string(size);
        const int64_t channels = width * priors;
        add_int8_value(core.mutable_graph()->add_output(), head,
                       {1, size, size, (channels + 7) / 8 * 8});
        add_float_value(graph->add_input(), head, {1, channels, size, size});
        auto *perm = add_node("Transpose", {head}, head + "_t")->add_attribute();
        perm->set_name("perm");
        perm->set_type(onnx::AttributeProto::INTS);
        for (int64_t p : {0, 2, 3, 1}) perm->add_ints(p);
        add_node("Reshape", {head + "_t", output + "_rows"}, head + "_rows");
        levels.push_back(head + "_rows");
      }
      auto *axis = add_node("Concat", levels, output)->add_attribute();
      axis->set_name("axis");
      axis->set_type(onnx::AttributeProto::INT);
      axis->set_i(1);
      add_float_value(graph->add_output(), output, {1, 60, width});
    }
    std::ofstream(dir / "core.onnx", std::ios::binary) << core.SerializeAsString();
    std::ofstream(dir / "postamble.onnx", std::ios::binary) << postamble.SerializeAsString();
    write_file(dir / "model.json", R"({"format_version": 1, "name": "ssd_shaped",
      "core_graph": "core.onnx", "batch": 1, "input_tensor_layout": "NHWC",
      "preamble_graph": null, "postamble_graph": "postamble.onnx"})");
    write_file(dir / "manifest.json", R"({"manifest_version": 1, "model_lib_file": "model.json",
      "quantized_model_file": "core.onnx",
      "input_shapes": [[1, 90, 90, 4]],
      "output_shapes": [[1, 3, 3, 16], [1, 2, 2, 24], [1, 3, 3, 24], [1, 2, 2, 32]],
      "quantize_params": [[0.0078125, 0]],
      "dequantize_params": [[0.03, 2], [0.04, 1], [0.07, -9], [0.09, -4]],
      "n_padded_ch_inputs": [[0, 0, 0, 0, 0, 0, 0, 1]],
      "n_padded_ch_outputs": [[0, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0],
                              [0, 0, 0, 0, 0, 0, 0, 4], [0, 0, 0, 0, 0, 0, 0, 2]],
      "preprocess_graph": null, "postprocess_graph": "postamble.onnx",
      "input_names": ["input"], "output_names": ["loc3", "loc2", "conf3", "conf2"],
      "output_info": [{"original_shape": [1, 16, 3, 3], "layout": "NHWC"},
                      {"original_shape": [1, 24, 2, 2], "layout": "NHWC"},
                      {"original_shape": [1, 20, 3, 3], "layout": "NHWC"},
                      {"original_shape": [1, 30, 2, 2], "layout": "NHWC"}]})");
  }
  ~ConcatHeadsPackage() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
};

}  // namespace

TEST_F(AxDecode, SsdHeadsConcatenatedByThePostambleDecodeInInt8ExactlyLikeTheFloatPath) {
  ConcatHeadsPackage package;
  AxDecodeLog log;
  GstAxTransform transform{};
  transform.crop_width = transform.crop_height = 90;
  transform.scale_x = transform.scale_y = 1;
  transform.tensor_width = transform.tensor_height = 90;
  size_t compared = 0;
  decode_fast_and_slow(package.dir.string(),
                       std::string("axdecode decoder=ssd conf-threshold=0.4 max-detections=0 ") +
                           "decoder-config=\"" + package.kPriors + "\"",
                       transform, {3 * 3 * 16, 2 * 2 * 24, 3 * 3 * 24, 2 * 2 * 32}, 31, 3,
                       [&](int frame, GstBuffer *fast, GstBuffer *slow) {
                         const auto expected = describe_rois(slow);
                         ASSERT_FALSE(expected.empty()) << "frame " << frame << ": nothing decoded";
                         EXPECT_EQ(describe_rois(fast), expected) << "frame " << frame;
                         compared += expected.size();
                       });
  EXPECT_GT(compared, 10u);
  EXPECT_TRUE(log.says("decoder ssd uses its int8 path")) << "the fast harness stayed on float";
  EXPECT_TRUE(log.says("decoder ssd uses its float path")) << "int8-fast-path=false";
}
