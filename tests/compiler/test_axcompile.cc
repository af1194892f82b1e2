// axcompile on the seeded float models: packages load through the runtime API, agree with the
// float model on held-out images, and bad input fails cleanly without leaving files behind.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "axstream/error.h"
#include "calibration_images.h"
#include "compiler_test_util.h"

namespace {

using namespace axtest;

const fs::path kModels = FLOAT_MODELS_DIR;

std::string read_text(const fs::path &path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool has_leftovers(const fs::path &package) {
  for (const auto &e : fs::directory_iterator(package.parent_path()))
    if (e.path().filename().string().rfind(package.filename().string(), 0) == 0) return true;
  return false;
}

struct SeededCase {
  const char *model;
  ImageInput input;
  std::vector<std::string> extra_args;
};

double compile_and_compare(const SeededCase &c, const fs::path &package,
                           std::string *summary = nullptr) {
  std::vector<std::string> args = {(kModels / c.model).string(), "--calib",
                                   (kModels / "calib").string(), "--output-dir", package.string()};
  args.insert(args.end(), c.extra_args.begin(), c.extra_args.end());
  auto result = axcompile(args);
  if (summary) *summary = result.output;
  EXPECT_EQ(result.exit_code, 0) << result.output;
  if (result.exit_code != 0) return 0;
  std::cout << result.output;
  FloatModel reference((kModels / c.model).string());
  PackageModel compiled(package.string());
  Cosine overall;
  for (const auto &image : images_in(kModels / "heldout")) {
    auto input = image_to_float(cv::imread(image.string()), c.input);
    Outputs want = reference.run(input);
    Outputs got = compiled.run(input, c.input.nchw);
    EXPECT_EQ(got.size(), want.size());
    for (size_t o = 0; o < want.size() && o < got.size(); ++o) {
      EXPECT_EQ(got[o].size(), want[o].size()) << "output " << o;
      overall.add(got[o], want[o]);
    }
  }
  return overall.value();
}

TEST(Axcompile, CompiledClassifierMatchesFloatModelOnHeldOutImages) {
  TempDir dir("classifier");
  double cosine = compile_and_compare({"classifier.onnx", {64, 64, true}, {}}, dir.path / "pkg");
  std::cout << "classifier: cosine(package, float) on held-out images = " << cosine << "\n";
  EXPECT_GE(cosine, 0.99);
}

TEST(Axcompile, CompiledDetectorMatchesFloatModelOnHeldOutImages) {
  TempDir dir("detector");
  double cosine = compile_and_compare({"detector.onnx", {96, 96, false}, {}}, dir.path / "pkg");
  std::cout << "detector: cosine(package, float) on held-out images = " << cosine << "\n";
  EXPECT_GE(cosine, 0.99);
}

TEST(Axcompile, OutputActivationInCoreQuantisesTheProbabilityAndMatchesFloat) {
  // The classifier's Gemm -> Softmax and the detector's score Conv -> Transpose -> Reshape ->
  // Sigmoid: the activation runs in the core, its output is quantised over [0, 1].
  struct Case {
    SeededCase seeded;
    const char *summary_line;
    bool postamble;  // the detector's box head still reshapes on the host
  };
  for (const Case &c : {Case{{"classifier.onnx", {64, 64, true}, {"--output-activation-in-core"}},
                             "output activation in the core: Softmax 'softmax' on Gemm",
                             false},
                        Case{{"detector.onnx", {96, 96, false}, {"--output-activation-in-core"}},
                             "output activation in the core: Sigmoid 'sigmoid' on Conv",
                             true}}) {
    SCOPED_TRACE(c.seeded.model);
    TempDir dir("output_activation");
    std::string summary;
    double cosine = compile_and_compare(c.seeded, dir.path / "pkg", &summary);
    std::cout << c.seeded.model << " (output activation in the core): cosine " << cosine << "\n";
    EXPECT_GE(cosine, 0.99);
    EXPECT_NE(summary.find(c.summary_line), std::string::npos) << summary;
    auto package = axstream::runtime::load_model_package((dir.path / "pkg").string());
    ASSERT_FALSE(package->outputs.empty());
    EXPECT_NEAR(package->outputs[0].scale, 1.0 / 255, 1e-9);
    EXPECT_EQ(package->outputs[0].zero_point, -128);
    EXPECT_EQ(package->postamble_graph.empty(), !c.postamble);
    if (c.postamble) {
      const std::string post = read_text(dir.path / "pkg" / "postamble.onnx");
      EXPECT_EQ(post.find("Sigmoid"), std::string::npos) << "the sigmoid still runs on the host";
    }
  }
}

TEST(Axcompile, PackageRecordsPaddedNhwcIoPreprocessingAndPostamble) {
  TempDir dir("layout");
  fs::path pkg = dir.path / "det";
  auto result = axcompile({(kModels / "detector.onnx").string(), "--calib",
                           (kModels / "calib/*.png").string(), "--num-calib", "6", "--mean", "0.5",
                           "--std", "0.25,0.5,0.5", "--output-dir", pkg.string(), "--no-check"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  auto package = axstream::runtime::load_model_package(pkg.string());
  ASSERT_EQ(package->inputs.size(), 1u);
  EXPECT_EQ(package->inputs[0].shape, (std::vector<int64_t>{1, 96, 96, 4}));
  EXPECT_EQ(package->inputs[0].unpadded_shape(), (std::vector<int64_t>{1, 96, 96, 3}));
  ASSERT_TRUE(package->input_preprocess[0].has_value());
  EXPECT_EQ(package->input_preprocess[0]->std, (std::vector<double>{0.25, 0.5, 0.5}));
  EXPECT_EQ(package->input_preprocess[0]->color_format, "RGB");
  // Input range (0..1 - 0.5) / 0.25 = [-2, 2] over 255 steps.
  EXPECT_NEAR(package->inputs[0].scale, 4.0 / 255, 1e-6);
  // Score head: conv [1,2,12,12] -> NHWC [1,12,12,2]; box head [1,8,12,12] -> [1,12,12,8];
  // the Transpose/Reshape/Sigmoid tails run on the host.
  ASSERT_EQ(package->outputs.size(), 2u);
  EXPECT_EQ(package->outputs[0].shape, (std::vector<int64_t>{1, 12, 12, 2}));
  EXPECT_EQ(package->outputs[1].shape, (std::vector<int64_t>{1, 12, 12, 8}));
  EXPECT_EQ(package->output_info[0].layout, "NHWC");
  EXPECT_EQ(package->output_info[0].original_shape, (std::vector<int64_t>{1, 2, 12, 12}));
  EXPECT_EQ(package->postamble_graph, "postamble.onnx");
  EXPECT_TRUE(fs::exists(pkg / "postamble.onnx"));
  std::string manifest = read_text(pkg / "manifest.json");
  EXPECT_NE(manifest.find("\"calibration_images\": 6"), std::string::npos) << manifest;
  EXPECT_NE(manifest.find("\"calibration_resize\": \"stretch\""), std::string::npos) << manifest;
  // Axelera's field names for the float model's shapes, which scripts for their packages read
  // (this test model's input is NHWC as declared; its heads are NCHW convs).
  EXPECT_NE(manifest.find("\"input_shapes_original\": [[1, 96, 96, 3]]"), std::string::npos)
      << manifest;
  EXPECT_NE(manifest.find("\"output_shapes_original\": [[1, 2, 12, 12], [1, 8, 12, 12]]"),
            std::string::npos)
      << manifest;
  EXPECT_NE(result.output.find("calibration images 6 (resized: stretch)"), std::string::npos)
      << result.output;
  // The NHWC -> NCHW Transpose at the input is the device layout: no preamble.
  EXPECT_EQ(package->preamble_graph, "");
  EXPECT_FALSE(fs::exists(pkg / "preamble.onnx"));
  EXPECT_NE(manifest.find("\"preprocess_graph\": null"), std::string::npos) << manifest;
  EXPECT_EQ(manifest.find("input_info"), std::string::npos) << manifest;
  EXPECT_NE(read_text(pkg / "model.json").find("\"preamble_graph\": null"), std::string::npos);
}

// The float input of the core: the preamble's output, read back from the package.
struct PreambleCase {
  const char *model;
  bool nchw;
  const char *head_op;      // the op the preamble ends with
  const char *core_layout;  // input_info layout
  std::vector<int64_t> shape;
};

void check_preamble_package(const PreambleCase &c) {
  TempDir dir(c.model);
  fs::path pkg = dir.path / "pkg";
  double cosine =
      compile_and_compare({(std::string(c.model) + ".onnx").c_str(), {32, 32, c.nchw}, {}}, pkg);
  std::cout << c.model << ": cosine(preamble + core, float) on held-out images = " << cosine
            << "\n";
  EXPECT_GE(cosine, 0.99);
  ASSERT_TRUE(fs::exists(pkg / "preamble.onnx"));
  auto package = axstream::runtime::load_model_package(pkg.string());
  EXPECT_EQ(package->preamble_graph, "preamble.onnx");
  const std::string manifest = read_text(pkg / "manifest.json");
  EXPECT_NE(manifest.find("\"preprocess_graph\": \"preamble.onnx\""), std::string::npos);
  EXPECT_NE(read_text(pkg / "model.json").find("\"preamble\": {"), std::string::npos);
  // preamble.onnx: the model input in, the core input out (same name, the model input's shape).
  auto preamble = axstream::engine::Program::from_file((pkg / "preamble.onnx").string());
  ASSERT_EQ(preamble->inputs().size(), 1u);
  ASSERT_EQ(preamble->outputs().size(), 1u);
  EXPECT_EQ(preamble->inputs()[0].name, "image");
  EXPECT_EQ(preamble->inputs()[0].shape, c.shape);
  EXPECT_EQ(preamble->outputs()[0].shape, c.shape);
  ASSERT_EQ(package->inputs.size(), 1u);
  EXPECT_EQ(package->inputs[0].name, preamble->outputs()[0].name);
  EXPECT_NE(package->inputs[0].name.find(c.head_op), std::string::npos) << package->inputs[0].name;
  EXPECT_EQ(package->inputs[0].shape, (std::vector<int64_t>{1, 32, 32, 4}));
  ASSERT_EQ(package->input_info.size(), 1u);
  EXPECT_EQ(package->input_info[0].layout, c.core_layout);
  EXPECT_EQ(package->input_info[0].original_shape, c.shape);
  ASSERT_TRUE(package->input_preprocess[0].has_value());
  EXPECT_EQ(package->input_preprocess[0]->layout, c.nchw ? "NCHW" : "NHWC");
}

TEST(Axcompile, CastAndSqrtHeadOfNhwcModelGoesToThePreamble) {
  // Cast + Sqrt are split off; the Transpose to NCHW after them stays on the core.
  check_preamble_package({"preamble_nhwc", false, "sqrt", "none", {1, 32, 32, 3}});
}

TEST(Axcompile, PowHeadOfNchwModelGoesToThePreambleAndTheCoreTakesItTransposed) {
  check_preamble_package({"preamble_nchw", true, "pow", "NHWC", {1, 3, 32, 32}});
}

TEST(Axcompile, ForcedFloatNodesKeepFloatWeightsAndAreRecordedAsHostOps) {
  TempDir dir("float_nodes");
  fs::path pkg = dir.path / "cls";
  auto result =
      axcompile({(kModels / "classifier.onnx").string(), "--calib", (kModels / "calib").string(),
                 "--num-calib", "6", "--float-nodes", "conv_11_node,gemm_72", "--accuracy-target",
                 "0", "--output-dir", pkg.string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("float nodes: conv_11_node gemm_72_node"), std::string::npos)
      << result.output;
  std::string model_json = read_text(pkg / "model.json");
  EXPECT_NE(model_json.find("\"core_float_nodes\": [\"conv_11_node\", \"gemm_72_node\"]"),
            std::string::npos)
      << model_json;
  EXPECT_NE(model_json.find("\"postamble\": {\"Softmax\": 1}"), std::string::npos) << model_json;
  // The float nodes read float weights: the core has no int8 weight tensor for them.
  onnx::ModelProto core;
  std::ifstream in(pkg / "core.onnx", std::ios::binary);
  ASSERT_TRUE(core.ParseFromIstream(&in));
  int float_convs = 0, int8_weight_inputs = 0;
  for (const auto &node : core.graph().node()) {
    if (node.name() == "conv_11_node" || node.name() == "gemm_72_node") {
      ++float_convs;
      EXPECT_EQ(node.input(1).find("/q"), std::string::npos) << node.input(1);
    }
    if (node.op_type() == "DequantizeLinear" && node.input(0).find("/q") != std::string::npos &&
        node.input(0).find("folded_weight") != std::string::npos)
      ++int8_weight_inputs;
  }
  EXPECT_EQ(float_convs, 2);
  EXPECT_GT(int8_weight_inputs, 0) << "the other convs stay int8";
  // The runtime loads and runs it like any package.
  FloatModel reference((kModels / "classifier.onnx").string());
  PackageModel compiled(pkg.string());
  Cosine cos;
  for (const auto &image : images_in(kModels / "heldout")) {
    auto input = image_to_float(cv::imread(image.string()), {64, 64, true});
    cos.add(compiled.run(input, true)[0], reference.run(input)[0]);
  }
  EXPECT_GE(cos.value(), 0.99);
}

TEST(Axcompile, HardSwishIsQuantisedOnceAndConstantScalesFoldIntoTheConv) {
  TempDir dir("hardswish");
  fs::path pkg = dir.path / "pkg";
  double cosine = compile_and_compare({"hardswish.onnx", {32, 32, true}, {}}, pkg);
  std::cout << "hard-swish classifier: cosine(package, float) on held-out images = " << cosine
            << "\n";
  EXPECT_GE(cosine, 0.99);
  onnx::ModelProto core;
  std::ifstream in(pkg / "core.onnx", std::ios::binary);
  ASSERT_TRUE(core.ParseFromIstream(&in));
  int hardswish_muls = 0, other_muls = 0;
  std::set<std::string> quantised;
  for (const auto &node : core.graph().node())
    if (node.op_type() == "QuantizeLinear") quantised.insert(node.input(0));
  for (const auto &node : core.graph().node()) {
    if (node.op_type() != "Mul") continue;
    if (node.name().rfind("hardswish_mul", 0) != 0) {
      ++other_muls;
      continue;
    }
    ++hardswish_muls;
    // x * Clip(x + 3) is a function of x alone: x is the conv's int8 output (dequantised), the
    // Clip branch stays float, and the product is not quantised either (the chain is quantised
    // once, before the next conv).
    int dequantised_inputs = 0;
    for (const auto &input : node.input())
      dequantised_inputs += input.find("/dq") != std::string::npos;
    EXPECT_EQ(dequantised_inputs, 1)
        << node.name() << " reads " << node.input(0) << ", " << node.input(1);
    EXPECT_FALSE(quantised.count(node.output(0))) << node.name();
  }
  EXPECT_EQ(hardswish_muls, 3);
  EXPECT_EQ(other_muls, 0) << "each constant scale should fold into the conv before it";
}

// "  NAME [lo, hi] scale ..." of axcompile --verbose -> {lo, hi}; {0, 0} when not listed.
std::pair<double, double> listed_range(const std::string &output, const std::string &tensor) {
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string name, lo, hi;
    if (words >> name >> lo >> hi && name == tensor && lo.size() > 1 && lo[0] == '[')
      return {std::stod(lo.substr(1)), std::stod(hi)};
  }
  return {0, 0};
}

TEST(Axcompile, HardSwishInputRangesAreCutWhereHardSwishIsFlat) {
  // Hard-swish is 0 below -3: the conv outputs it reads need no int8 levels there. With the cut
  // (--flat-range-cut) their range starts one int8 step below -3 and their scale is finer;
  // without it the calibrated range reaches further down; the package stays accurate.
  TempDir dir("flatcut");
  std::vector<std::string> args = {(kModels / "hardswish.onnx").string(),
                                   "--calib",
                                   (kModels / "calib").string(),
                                   "--accuracy-target",
                                   "0",
                                   "--verbose",
                                   "--no-check"};
  auto cut_args = args, full_args = args;
  cut_args.insert(cut_args.end(),
                  {"--output-dir", (dir.path / "cut").string(), "--flat-range-cut"});
  full_args.insert(full_args.end(), {"--output-dir", (dir.path / "full").string()});
  auto cut = axcompile(cut_args), full = axcompile(full_args);
  ASSERT_EQ(cut.exit_code, 0) << cut.output;
  ASSERT_EQ(full.exit_code, 0) << full.output;
  EXPECT_EQ(full.output.find("ranges cut where"), std::string::npos) << full.output;
  // The hard-swish inputs: what each hardswish_mul reads dequantised.
  onnx::ModelProto core;
  std::ifstream in(dir.path / "cut" / "core.onnx", std::ios::binary);
  ASSERT_TRUE(core.ParseFromIstream(&in));
  std::set<std::string> inputs;
  for (const auto &node : core.graph().node())
    if (node.op_type() == "Mul" && node.name().rfind("hardswish_mul", 0) == 0)
      for (const auto &input : node.input())
        if (auto at = input.find("/dq"); at != std::string::npos)
          inputs.insert(input.substr(0, at));
  ASSERT_EQ(inputs.size(), 3u);
  int cut_below_minus_three = 0;
  for (const auto &tensor : inputs) {
    auto [cut_lo, cut_hi] = listed_range(cut.output, tensor);
    auto [full_lo, full_hi] = listed_range(full.output, tensor);
    ASSERT_LT(full_lo, 0) << tensor << " not listed:\n" << full.output;
    EXPECT_EQ(cut_hi, full_hi) << tensor;  // hard-swish is not flat above
    EXPECT_GE(cut_lo, -3.1) << tensor;     // -3 less one int8 step (~0.03 here)
    if (full_lo < -3.1) {
      ++cut_below_minus_three;
      EXPECT_GT(cut_lo, full_lo) << tensor;
      EXPECT_NE(cut.output.find("ranges cut where the reading function is flat:"),
                std::string::npos);
    } else {
      EXPECT_EQ(cut_lo, full_lo) << tensor;  // nothing to cut
    }
  }
  EXPECT_GE(cut_below_minus_three, 1) << "the seeded model should reach below -3";
  // The readers see the same values: the package still matches the float model.
  FloatModel reference((kModels / "hardswish.onnx").string());
  PackageModel with_cut((dir.path / "cut").string()), without((dir.path / "full").string());
  Cosine cos_cut, cos_full;
  for (const auto &image : images_in(kModels / "heldout")) {
    auto input = image_to_float(cv::imread(image.string()), {32, 32, true});
    auto want = reference.run(input)[0];
    cos_cut.add(with_cut.run(input, true)[0], want);
    cos_full.add(without.run(input, true)[0], want);
  }
  std::cout << "hard-swish classifier: cosine with the flat range cut " << cos_cut.value()
            << ", without " << cos_full.value() << "\n";
  EXPECT_GE(cos_cut.value(), 0.99);
}

TEST(Axcompile, EqualisedActivationChannelsKeepTheDetectorAccurate) {
  // The detector's conv -> Relu -> depthwise/pointwise pairs are equalised per channel (weights
  // rescaled, graph calibrated again); the package still matches the float model.
  TempDir dir("equalised");
  fs::path pkg = dir.path / "pkg";
  auto result =
      axcompile({(kModels / "detector.onnx").string(), "--calib", (kModels / "calib").string(),
                 "--equalise-channels", "--accuracy-target", "0", "--output-dir", pkg.string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("activations per channel"), std::string::npos) << result.output;
  FloatModel reference((kModels / "detector.onnx").string());
  PackageModel compiled(pkg.string());
  Cosine cos;
  for (const auto &image : images_in(kModels / "heldout")) {
    auto input = image_to_float(cv::imread(image.string()), {96, 96, false});
    Outputs want = reference.run(input), got = compiled.run(input, false);
    for (size_t o = 0; o < want.size(); ++o) cos.add(got[o], want[o]);
  }
  std::cout << "equalised detector: cosine " << cos.value() << "\n";
  EXPECT_GE(cos.value(), 0.99);
}

TEST(Axcompile, UnknownFloatNodeIsRejectedNamingIt) {
  TempDir dir("float_nodes_bad");
  fs::path pkg = dir.path / "cls";
  auto result =
      axcompile({(kModels / "classifier.onnx").string(), "--calib", (kModels / "calib").string(),
                 "--float-nodes", "no_such_node", "--output-dir", pkg.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("--float-nodes:"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("no node named 'no_such_node'"), std::string::npos) << result.output;
  EXPECT_FALSE(has_leftovers(pkg));
}

TEST(Axcompile, UnwritableOutputDirFailsBeforeCalibration) {
  // A file where the package's parent folder should be: the error names --output-dir, not the
  // calibration images (which do not exist either and would be read first otherwise).
  TempDir dir("output_dir_bad");
  fs::path blocker = dir.path / "a-file";
  std::ofstream(blocker) << "not a folder";
  auto result = axcompile({(kModels / "classifier.onnx").string(), "--calib",
                           (dir.path / "no-images" / "*.jpg").string(), "--output-dir",
                           (blocker / "pkg").string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("--output-dir " + (blocker / "pkg").string() + ": cannot create"),
            std::string::npos)
      << result.output;
  EXPECT_EQ(result.output.find("--calib"), std::string::npos) << result.output;
}

TEST(Axcompile, TextCropDetectorWithoutAProbabilityMapIsRejectedNamingIt) {
  // --calib-text-crops wants a DBNet-style detector; the classifier's output is a class vector.
  TempDir dir("text_crops_bad");
  fs::path pkg = dir.path / "cls";
  std::string detector = (kModels / "classifier.onnx").string();
  auto result =
      axcompile({(kModels / "classifier.onnx").string(), "--calib", (kModels / "calib").string(),
                 "--calib-text-crops", detector, "--output-dir", pkg.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("--calib-text-crops '" + detector + "'"), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("is not a one-channel float map"), std::string::npos)
      << result.output;
  EXPECT_FALSE(has_leftovers(pkg));
}

TEST(Axcompile, MixedPrecisionSearchRaisesTheCosineUntilTheTarget) {
  // An unreachable target runs every round: the float set grows and the summary logs each
  // round's cosine; the best round is kept.
  TempDir dir("search");
  fs::path pkg = dir.path / "det";
  auto result =
      axcompile({(kModels / "detector.onnx").string(), "--calib", (kModels / "calib").string(),
                 "--accuracy-target", "1", "--fallback-rounds", "2", "--output-dir", pkg.string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("mixed precision round 0: 0 float nodes"), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("mixed precision round 1:"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("expected accuracy: min core-output cosine"), std::string::npos)
      << result.output;
}

TEST(Axcompile, FloatNodesThatDoNotBuyTheirGainAreNotKept) {
  // No set can gain 1 cosine per float node: every later round is logged as not kept and the
  // package keeps round 0's set (no float node), however the rounds' cosines came out.
  TempDir dir("search_gain");
  fs::path pkg = dir.path / "det";
  auto result =
      axcompile({(kModels / "detector.onnx").string(), "--calib", (kModels / "calib").string(),
                 "--accuracy-target", "1", "--fallback-rounds", "2", "--min-float-gain", "1",
                 "--output-dir", pkg.string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("mixed precision round 1:"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("(not kept: below the best round's"), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("(0 of them kept float by mixed precision"), std::string::npos)
      << result.output;
  EXPECT_NE(read_text(pkg / "model.json").find("\"core_float_nodes\": []"), std::string::npos);
}

TEST(Axcompile, EntropyCalibrationMatchesFloatModel) {
  TempDir dir("entropy");
  double cosine = 0;
  {
    fs::path package = dir.path / "pkg";
    auto result =
        axcompile({(kModels / "classifier.onnx").string(), "--calib", (kModels / "calib").string(),
                   "--calib-method", "entropy", "--output-dir", package.string()});
    ASSERT_EQ(result.exit_code, 0) << result.output;
    EXPECT_NE(read_text(package / "manifest.json").find("\"calibration_method\": \"entropy\""),
              std::string::npos);
    FloatModel reference((kModels / "classifier.onnx").string());
    PackageModel compiled(package.string());
    Cosine cos;
    for (const auto &image : images_in(kModels / "heldout")) {
      auto input = image_to_float(cv::imread(image.string()), {64, 64, true});
      cos.add(compiled.run(input, true)[0], reference.run(input)[0]);
    }
    cosine = cos.value();
  }
  std::cout << "classifier, entropy calibration: cosine " << cosine << "\n";
  EXPECT_GE(cosine, 0.99);
}

TEST(Axcompile, BiasCorrectionShiftsConvBiasesAndCanBeDisabled) {
  TempDir dir("bias");
  auto with = axcompile({(kModels / "classifier.onnx").string(), "--calib",
                         (kModels / "calib").string(), "--num-calib", "4", "--accuracy-target", "0",
                         "--output-dir", (dir.path / "a").string(), "--no-check"});
  ASSERT_EQ(with.exit_code, 0) << with.output;
  EXPECT_NE(with.output.find("bias correction: "), std::string::npos) << with.output;
  auto without =
      axcompile({(kModels / "classifier.onnx").string(), "--calib", (kModels / "calib").string(),
                 "--num-calib", "4", "--accuracy-target", "0", "--no-bias-correction",
                 "--output-dir", (dir.path / "b").string(), "--no-check"});
  ASSERT_EQ(without.exit_code, 0) << without.output;
  EXPECT_EQ(without.output.find("bias correction: "), std::string::npos) << without.output;
  EXPECT_NE(read_text(dir.path / "a" / "core.onnx"), read_text(dir.path / "b" / "core.onnx"));
}

TEST(Axcompile, ClassifierOutputIsPaddedToSixteenClassesIn4dNhwc) {
  TempDir dir("pad");
  fs::path pkg = dir.path / "cls";
  auto result =
      axcompile({(kModels / "classifier.onnx").string(), "--calib", (kModels / "calib").string(),
                 "--num-calib", "4", "--output-dir", pkg.string(), "--no-check"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  auto package = axstream::runtime::load_model_package(pkg.string());
  ASSERT_EQ(package->outputs.size(), 1u);
  // The logits (1, 10) leave the core as Axelera's packages give them: (1, 1, 1, C) NHWC.
  EXPECT_EQ(package->outputs[0].shape, (std::vector<int64_t>{1, 1, 1, 16}));
  EXPECT_EQ(package->outputs[0].padding,
            (std::vector<std::pair<int64_t, int64_t>>{{0, 0}, {0, 0}, {0, 0}, {0, 6}}));
  EXPECT_EQ(package->outputs[0].unpadded_shape(), (std::vector<int64_t>{1, 1, 1, 10}));
  EXPECT_EQ(package->output_info[0].layout, "none");
  EXPECT_EQ(package->output_info[0].original_shape, (std::vector<int64_t>{1, 10}));
  const std::string manifest = read_text(pkg / "manifest.json");
  EXPECT_NE(manifest.find("\"output_shapes\": [[1, 1, 1, 16]]"), std::string::npos) << manifest;
  EXPECT_NE(manifest.find("\"n_padded_ch_outputs\": [[0, 0, 0, 0, 0, 0, 0, 6]]"), std::string::npos)
      << manifest;
  EXPECT_NE(manifest.find("\"output_shapes_original\": [[1, 10]]"), std::string::npos) << manifest;
  // core.onnx's graph output is the 4-D tensor: the int8 logits reshaped to (1, 1, 1, 10), then
  // padded.
  onnx::ModelProto core;
  std::ifstream in(pkg / "core.onnx", std::ios::binary);
  ASSERT_TRUE(core.ParseFromIstream(&in));
  ASSERT_EQ(core.graph().output_size(), 1);
  const auto &output = core.graph().output(0);
  std::vector<int64_t> dims;
  for (const auto &d : output.type().tensor_type().shape().dim()) dims.push_back(d.dim_value());
  EXPECT_EQ(dims, (std::vector<int64_t>{1, 1, 1, 16}));
  EXPECT_EQ(output.type().tensor_type().elem_type(), onnx::TensorProto::INT8);
  std::map<std::string, const onnx::NodeProto *> producer;
  for (const auto &node : core.graph().node())
    for (const auto &o : node.output()) producer[o] = &node;
  ASSERT_TRUE(producer.count(output.name()));
  const onnx::NodeProto &pad = *producer[output.name()];
  EXPECT_EQ(pad.op_type(), "Pad");
  ASSERT_TRUE(producer.count(pad.input(0)));
  EXPECT_EQ(producer[pad.input(0)]->op_type(), "Reshape");
}

// The API doc's depad and dequantise (`out[tuple(slice(b, -e or None) for b, e in padding)]`,
// `(q - zero_point) * scale`) on a compiled classifier's 4-D output, reshaped to
// output_info.original_shape, is the float model's output within quantisation error.
TEST(Axcompile, ApiDocDepadAndDequantiseOf4dOutputGivesTheFloatModelsOutput) {
  TempDir dir("depad");
  fs::path pkg = dir.path / "cls";
  // The Softmax stays in the core, so the core output is the model's output ("probs").
  auto result =
      axcompile({(kModels / "classifier.onnx").string(), "--calib", (kModels / "calib").string(),
                 "--num-calib", "12", "--output-activation-in-core", "--output-dir", pkg.string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  using namespace axstream::runtime;
  auto context = Context::create();
  auto model = context->load_model(pkg.string());
  auto connection = context->device_connect(nullptr, 1);
  auto instance = connection->load_model_instance(model);
  const TensorInfo in = model->inputs()[0], out = model->outputs()[0];
  ASSERT_EQ(out.shape, (std::vector<int64_t>{1, 1, 1, 16}));
  ASSERT_EQ(model->package()->output_info[0].original_shape, (std::vector<int64_t>{1, 10}));
  ASSERT_TRUE(model->package()->postamble_graph.empty());
  FloatModel reference((kModels / "classifier.onnx").string());
  double worst = 0;
  int images = 0;
  for (const auto &image : images_in(kModels / "heldout")) {
    const auto nchw = image_to_float(cv::imread(image.string()), {64, 64, true});
    const std::vector<float> want = reference.run(nchw)[0];
    // Quantise and pad the input as the API doc does (NHWC, zero point in the padding).
    std::vector<int8_t> device_in(in.size(), static_cast<int8_t>(in.zero_point));
    const int64_t h = in.shape[1], w = in.shape[2], cp = in.shape[3];
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        for (int64_t c = 0; c < 3; ++c) {
          double q = std::nearbyint(nchw[(c * h + y) * w + x] / in.scale) + in.zero_point;
          device_in[(y * w + x) * cp + c] = static_cast<int8_t>(std::clamp(q, -128.0, 127.0));
        }
    std::vector<int8_t> device_out(out.size());
    instance->run({{device_in.data(), -1, 0, device_in.size()}},
                  {{device_out.data(), -1, 0, device_out.size()}});
    // Depad every dimension by its padding (row-major over the padded 4-D tensor), dequantise.
    std::vector<float> got;
    for (int64_t n = out.padding[0].first; n < out.shape[0] - out.padding[0].second; ++n)
      for (int64_t y = out.padding[1].first; y < out.shape[1] - out.padding[1].second; ++y)
        for (int64_t x = out.padding[2].first; x < out.shape[2] - out.padding[2].second; ++x)
          for (int64_t c = out.padding[3].first; c < out.shape[3] - out.padding[3].second; ++c) {
            const int8_t q =
                device_out[((n * out.shape[1] + y) * out.shape[2] + x) * out.shape[3] + c];
            got.push_back(static_cast<float>((q - out.zero_point) * out.scale));
          }
    // Reshaped to original_shape (1, 10) the row-major order is the float model's.
    ASSERT_EQ(got.size(), want.size());
    for (size_t k = 0; k < want.size(); ++k)
      worst = std::max(worst, static_cast<double>(std::fabs(got[k] - want[k])));
    ++images;
  }
  ASSERT_GT(images, 0);
  std::cout << "max |probability error| over " << images << " images: " << worst << " ("
            << worst / out.scale << " output steps)\n";
  // A few output steps (1/255) of int8 error through the network, not a misplaced element
  // (a wrong depad or order puts another class's probability there: errors near 1).
  EXPECT_LE(worst, 6 * out.scale);
}

TEST(Axcompile, DynamicInputWithoutInputShapeIsRejectedNamingTheInput) {
  TempDir dir("dynamic");
  fs::path pkg = dir.path / "pkg";
  auto result = axcompile({(kModels / "dynamic.onnx").string(), "--calib",
                           (kModels / "calib").string(), "--output-dir", pkg.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("input 'image' has dynamic shape [?,3,?,?]"), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find("--input-shape"), std::string::npos) << result.output;
  EXPECT_FALSE(has_leftovers(pkg));
}

TEST(Axcompile, DynamicInputCompilesWithInputShape) {
  TempDir dir("dynamic_fixed");
  fs::path pkg = dir.path / "pkg";
  auto result = axcompile({(kModels / "dynamic.onnx").string(), "--calib",
                           (kModels / "calib").string(), "--num-calib", "4", "--input-shape",
                           "image=1,3,32,48", "--output-dir", pkg.string()});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  auto package = axstream::runtime::load_model_package(pkg.string());
  EXPECT_EQ(package->inputs[0].shape, (std::vector<int64_t>{1, 32, 48, 4}));
}

TEST(Axcompile, MissingModelFileIsReportedWithItsPath) {
  TempDir dir("missing");
  fs::path pkg = dir.path / "pkg";
  auto result = axcompile({(dir.path / "nope.onnx").string(), "--calib",
                           (kModels / "calib").string(), "--output-dir", pkg.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("nope.onnx': cannot open the file"), std::string::npos)
      << result.output;
  EXPECT_FALSE(has_leftovers(pkg));
  // A directory (say, a package given by mistake) read as nothing: "not a valid protobuf".
  result = axcompile(
      {dir.path.string(), "--calib", (kModels / "calib").string(), "--output-dir", pkg.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(
      result.output.find("model '" + dir.path.string() + "': is a directory, not an ONNX file"),
      std::string::npos)
      << result.output;
  EXPECT_FALSE(has_leftovers(pkg));
}

TEST(Axcompile, CorruptModelFileIsReportedAsInvalidOnnx) {
  TempDir dir("corrupt");
  fs::path model = dir.path / "bad.onnx", pkg = dir.path / "pkg";
  std::ofstream(model) << "this is not a protobuf \x01\x02\xff";
  auto result = axcompile(
      {model.string(), "--calib", (kModels / "calib").string(), "--output-dir", pkg.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("bad.onnx"), std::string::npos) << result.output;
  EXPECT_FALSE(has_leftovers(pkg));
}

TEST(Axcompile, OpNothingCanRunIsReportedNamingTheNode) {
  TempDir dir("unsupported");
  fs::path pkg = dir.path / "pkg";
  auto result = axcompile({(kModels / "unsupported.onnx").string(), "--calib",
                           (kModels / "calib").string(), "--output-dir", pkg.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("unsupported.onnx"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("error (NotImplemented)"), std::string::npos) << result.output;
  // The node, its op and the tensor it reads (name, type and shape).
  EXPECT_NE(result.output.find("node 'frobnicate_node' op axstream.test.Frobnicate opset 1 "
                               "reading 'relu_8' (float32 (1,8,16,16))"),
            std::string::npos)
      << result.output;
  EXPECT_FALSE(has_leftovers(pkg));
}

// NonMaxSuppression in the graph (SSD/TF, YOLO "end2end" exports): its row count depends on the
// scores, and a package's tensors have fixed shapes, so it is refused naming the node and why.
TEST(Axcompile, ModelWithNonMaxSuppressionInsideIsRefusedNamingTheNode) {
  TempDir dir("nms_detector");
  fs::path pkg = dir.path / "pkg";
  const std::string model = (kModels / "nms_detector.onnx").string();
  auto result =
      axcompile({model, "--calib", (kModels / "calib").string(), "--output-dir", pkg.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find(
                "axcompile: error (NotImplemented): model '" + model +
                "' (float graph for calibration): " + model +
                ": node 'nms' (NonMaxSuppression) opset 13: its output 'selected' has a shape "
                "that depends on the input values at run time (up to (20,3)), and this "
                "program's tensors have fixed shapes (a model package's graphs and axcompile's "
                "models do); export the model without it and do this step on the outputs, as "
                "axstream's decoders do NMS\n"),
            std::string::npos)
      << result.output;
  EXPECT_FALSE(has_leftovers(pkg));
}

// An If whose branch holds a conv and its weights: the quantiser does not enter subgraphs, so
// the package is refused, naming the node, instead of made with those weights left float.
TEST(Axcompile, ControlFlowIsRefusedNamingTheNode) {
  TempDir dir("control_flow");
  fs::path pkg = dir.path / "pkg";
  auto result = axcompile({(kModels / "control_flow.onnx").string(), "--calib",
                           (kModels / "calib").string(), "--output-dir", pkg.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("error (NotImplemented)"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("If node 'branch_node': control flow cannot go into a model "
                               "package"),
            std::string::npos)
      << result.output;
  EXPECT_FALSE(has_leftovers(pkg));
}

// SplitToSequence + ConcatFromSequence between convs: the quantiser scales tensors, and a
// sequence is none, so the package is refused naming the node.
TEST(Axcompile, SequenceOpsAreRefusedNamingTheNode) {
  TempDir dir("sequence");
  fs::path pkg = dir.path / "pkg";
  auto result = axcompile({(kModels / "sequence.onnx").string(), "--calib",
                           (kModels / "calib").string(), "--output-dir", pkg.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("error (NotImplemented)"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("SplitToSequence node 'split_node': sequences and optionals "
                               "cannot go into a model package"),
            std::string::npos)
      << result.output;
  EXPECT_FALSE(has_leftovers(pkg));
}

// A CRNN text recogniser (Conv -> bidirectional LSTM -> MatMul -> Softmax): the LSTM runs as
// float between Q/DQ in the core, the package loads and agrees with the float model.
TEST(Axcompile, CrnnWithABidirectionalLstmCompilesAndMatchesFloatModel) {
  TempDir dir("crnn");
  std::string summary;
  double cosine =
      compile_and_compare({"crnn.onnx", {32, 64, true}, {}}, dir.path / "pkg", &summary);
  std::cout << "crnn: cosine(package, float) on held-out images = " << cosine << "\n";
  EXPECT_NE(summary.find("LSTMx1"), std::string::npos) << summary;
  EXPECT_GE(cosine, 0.99);
}

// The same network ending time-major, (T, N, C): a package's outputs are batch-first, so it is
// refused at compile time naming the output (it used to make a package that failed to load).
TEST(Axcompile, CoreOutputThatIsNotBatchFirstIsRefusedNamingIt) {
  TempDir dir("crnn_time_major");
  fs::path pkg = dir.path / "pkg";
  auto result = axcompile({(kModels / "crnn_time_major.onnx").string(), "--calib",
                           (kModels / "calib").string(), "--output-dir", pkg.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("error (NotImplemented)"), std::string::npos) << result.output;
  EXPECT_NE(result.output.find("core output 'logits' has shape [32,1,11], not batch-first"),
            std::string::npos)
      << result.output;
  EXPECT_FALSE(has_leftovers(pkg));
}

TEST(Axcompile, EmptyCalibrationDirectoryIsReported) {
  TempDir dir("empty");
  fs::path calib = dir.path / "calib", pkg = dir.path / "pkg";
  fs::create_directories(calib);
  auto result = axcompile({(kModels / "classifier.onnx").string(), "--calib", calib.string(),
                           "--output-dir", pkg.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("no readable calibration images found"), std::string::npos)
      << result.output;
  EXPECT_NE(result.output.find(calib.string()), std::string::npos) << result.output;
  EXPECT_FALSE(has_leftovers(pkg));
}

TEST(Axcompile, FailedCompileLeavesExistingPackageUntouched) {
  TempDir dir("keep");
  fs::path pkg = dir.path / "pkg";
  fs::create_directories(pkg);
  std::ofstream(pkg / "model.json") << "{\"old\": true}";
  auto result = axcompile({(kModels / "dynamic.onnx").string(), "--calib",
                           (kModels / "calib").string(), "--output-dir", pkg.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(read_text(pkg / "model.json"), "{\"old\": true}");
  size_t entries = 0;
  for ([[maybe_unused]] const auto &e : fs::directory_iterator(dir.path)) ++entries;
  EXPECT_EQ(entries, 1u);
}

TEST(Axcompile, OutputDirHoldingOtherFilesIsRefusedAndKeptWhole) {
  // The package replaces its directory: a folder of the user's (here the calibration images
  // themselves) must not be swapped out and deleted. Refused before calibration starts.
  TempDir dir("output_dir_in_use");
  fs::path calib = dir.path / "calib";
  fs::copy(kModels / "calib", calib);
  size_t images = 0;
  for ([[maybe_unused]] const auto &e : fs::directory_iterator(calib)) ++images;
  auto result = axcompile({(kModels / "classifier.onnx").string(), "--calib", calib.string(),
                           "--output-dir", calib.string() + "/"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find("--output-dir " + calib.string() +
                               ": exists and is not a model package (no model.json; it holds '"),
            std::string::npos)
      << result.output;
  EXPECT_EQ(result.output.find("calibrating"), std::string::npos) << result.output;
  size_t left = 0;
  for ([[maybe_unused]] const auto &e : fs::directory_iterator(calib)) ++left;
  EXPECT_EQ(left, images);
  EXPECT_FALSE(fs::exists(calib / "model.json"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()), 1);
}

TEST(Axcompile, DefaultOutputDirIsCheckedBeforeCalibrationToo) {
  // Without --output-dir the package goes to --name (else the model's stem): a folder of other
  // files there is refused before calibrating, as an explicit --output-dir is.
  TempDir dir("default_output_dir");
  fs::path taken = dir.path / "taken";
  fs::create_directories(taken);
  std::ofstream(taken / "notes.txt") << "mine";
  auto result = axcompile({(kModels / "classifier.onnx").string(), "--calib",
                           (dir.path / "no-images").string(), "--name", taken.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.output.find(taken.string() + ": exists and is not a model package"),
            std::string::npos)
      << result.output;
  EXPECT_EQ(result.output.find("--calib"), std::string::npos) << result.output;
  EXPECT_EQ(read_text(taken / "notes.txt"), "mine");
}

TEST(Axcompile, NonFiniteOrMalformedNumbersAreUsageErrors) {
  // stod alone took "nan", "inf" and "1x": the package then held "pixel_scale": nan, which is
  // not JSON, or pixel_scale 0, which the loader refuses (axcompile had exited 0).
  const std::pair<std::vector<std::string>, std::string> cases[] = {
      {{"--pixel-scale", "nan"}, "--pixel-scale: expected a finite number, got 'nan'"},
      {{"--pixel-scale", "1x/255"}, "--pixel-scale: expected a finite number, got '1x/255'"},
      {{"--pixel-scale", "1/255x"}, "--pixel-scale: expected a finite number, got '1/255x'"},
      {{"--pixel-scale", "0"}, "--pixel-scale: 0 would make every pixel 0"},
      {{"--mean", "0,inf,0"}, "--mean: expected a finite number, got 'inf'"},
      {{"--accuracy-target", "nan"}, "--accuracy-target: expected a finite number, got 'nan'"},
      {{"--num-calib", "1e10"}, "--num-calib: expected an integer in 1..100000"},
      {{"--sensitivity-images", "0"}, "--sensitivity-images: expected an integer in 1..100000"},
      {{"--min-float-gain", "-0.1"},
       "--min-float-gain: expected a cosine gain per float node in [0, 1], got '-0.1'"},
  };
  for (const auto &[option, message] : cases) {
    std::vector<std::string> args = {(kModels / "classifier.onnx").string(), "--calib",
                                     (kModels / "calib").string()};
    args.insert(args.end(), option.begin(), option.end());
    auto result = axcompile(args);
    EXPECT_EQ(result.exit_code, 2) << option[0] << " " << option[1];
    EXPECT_NE(result.output.find(message), std::string::npos) << result.output;
  }
}

TEST(Axcompile, BadOptionValuesAreUsageErrors) {
  auto result = axcompile({(kModels / "classifier.onnx").string(), "--calib",
                           (kModels / "calib").string(), "--input-format", "YUV"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.output.find("--input-format: expected RGB or BGR, got 'YUV'"), std::string::npos)
      << result.output;
  result = axcompile({(kModels / "classifier.onnx").string(), "--calib",
                      (kModels / "calib").string(), "--calib-resize", "letterbox"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.output.find("--calib-resize: expected stretch or pad-right, got 'letterbox'"),
            std::string::npos)
      << result.output;
}

// --calib-resize pad-right is PaddleOCR's recogniser input: the image fills the height, keeps its
// aspect ratio (ceil(48 * 40 / 10) = 192 columns), is left-aligned and the rest of each row is
// the normalised zero; an image wider than 320/48 is squeezed into the width.
TEST(CalibrationImages, PadRightKeepsTheAspectLeftAlignedAndPadsWithNormalisedZero) {
  using namespace axstream::compiler;
  const PixelNormalisation norm{"RGB", 1.0 / 255.0, {0.5, 0.5, 0.5}, {0.5, 0.5, 0.5}};
  const cv::Mat white(10, 40, CV_8UC3, cv::Scalar::all(255)),
      long_line(10, 100, CV_8UC3, cv::Scalar::all(255));
  for (bool nchw : {true, false}) {
    const ModelInputSpec input{"x", nchw, 3, 48, 320};
    auto at = [&](const std::vector<float> &t, int c, int y, int x) {
      return nchw ? t[(size_t(c) * 48 + y) * 320 + x] : t[(size_t(y) * 320 + x) * 3 + c];
    };
    const auto padded = frame_to_tensor(white, input, norm, CalibrationResize::pad_right);
    ASSERT_EQ(padded.size(), 3u * 48 * 320);
    for (int c = 0; c < 3; ++c)
      for (int y : {0, 47}) {
        EXPECT_FLOAT_EQ(at(padded, c, y, 0), 1.f);
        EXPECT_FLOAT_EQ(at(padded, c, y, 191), 1.f);
        EXPECT_FLOAT_EQ(at(padded, c, y, 192), 0.f) << "first padded column, nchw " << nchw;
        EXPECT_FLOAT_EQ(at(padded, c, y, 319), 0.f);
      }
    const auto squeezed = frame_to_tensor(long_line, input, norm, CalibrationResize::pad_right);
    const auto stretched = frame_to_tensor(white, input, norm, CalibrationResize::stretch);
    for (int c = 0; c < 3; ++c) {
      EXPECT_FLOAT_EQ(at(squeezed, c, 20, 319), 1.f);
      EXPECT_FLOAT_EQ(at(stretched, c, 20, 319), 1.f);
    }
  }
  EXPECT_THROW(frame_to_tensor(white, {"x", true, 3, 48, 320}, norm, CalibrationResize::automatic),
               axstream::InternalError);
}

}  // namespace

TEST(Axcompile, BatchOptionWritesTheBatchIntoEveryShapeAndKeepsTheBatchOneCore) {
  TempDir dir("batch");
  fs::path one = dir.path / "one", four = dir.path / "four";
  for (const auto &[pkg, batch] : {std::pair{one, "1"}, std::pair{four, "4"}}) {
    auto result = axcompile({(kModels / "detector.onnx").string(), "--calib",
                             (kModels / "calib").string(), "--num-calib", "4", "--batch", batch,
                             "--output-dir", pkg.string(), "--no-check"});
    ASSERT_EQ(result.exit_code, 0) << result.output;
  }
  auto package = axstream::runtime::load_model_package(four.string());
  EXPECT_EQ(package->batch, 4);
  EXPECT_EQ(package->inputs[0].shape, (std::vector<int64_t>{4, 96, 96, 4}));
  EXPECT_EQ(package->outputs[0].shape, (std::vector<int64_t>{4, 12, 12, 2}));
  EXPECT_EQ(package->output_info[0].original_shape, (std::vector<int64_t>{4, 2, 12, 12}));
  // Same calibration, same batch-1 core graph and postamble: only the tensor batch differs.
  EXPECT_EQ(read_text(four / "core.onnx"), read_text(one / "core.onnx"));
  EXPECT_EQ(read_text(four / "postamble.onnx"), read_text(one / "postamble.onnx"));
  auto bad = axcompile({(kModels / "detector.onnx").string(), "--calib",
                        (kModels / "calib").string(), "--batch", "0"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("--batch: expected an integer in 1..1024"), std::string::npos)
      << bad.output;
}

namespace {

// The float32 classifier's package, compiled once for the half-precision tests to compare with.
const fs::path &float32_classifier_package() {
  static TempDir dir("classifier_f32");
  static const fs::path pkg = [] {
    auto result =
        axcompile({(kModels / "classifier.onnx").string(), "--calib", (kModels / "calib").string(),
                   "--num-calib", "8", "--output-dir", (dir.path / "pkg").string(), "--no-check"});
    EXPECT_EQ(result.exit_code, 0) << result.output;
    EXPECT_EQ(result.output.find("compiled from its float32 equivalent"), std::string::npos)
        << "a float32 model needs no conversion:\n"
        << result.output;
    return dir.path / "pkg";
  }();
  return pkg;
}

// The float16/bfloat16/float64 export compiles to the float32 model's package: the same
// calibration images give (near-)equal scales, and the dequantised outputs agree on the held-out
// images.
void check_half_classifier(const char *model, const std::string &summary_line) {
  TempDir dir("classifier_half");
  fs::path pkg = dir.path / "pkg";
  auto result = axcompile({(kModels / model).string(), "--calib", (kModels / "calib").string(),
                           "--num-calib", "8", "--output-dir", pkg.string(), "--no-check"});
  ASSERT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find(summary_line), std::string::npos) << result.output;
  PackageModel half(pkg.string()), full(float32_classifier_package().string());
  EXPECT_TRUE(half.package().preamble_graph.empty()) << "a Cast was left at the input";
  ASSERT_EQ(half.package().inputs.size(), 1u);
  EXPECT_NEAR(half.package().inputs[0].scale, full.package().inputs[0].scale, 1e-9);
  ASSERT_EQ(half.package().outputs.size(), full.package().outputs.size());
  for (size_t o = 0; o < full.package().outputs.size(); ++o)
    EXPECT_NEAR(half.package().outputs[o].scale, full.package().outputs[o].scale,
                0.02 * full.package().outputs[o].scale)
        << "output " << o;
  Cosine core_cosine, model_cosine;
  const ImageInput input{64, 64, true};
  for (const auto &image : images_in(kModels / "heldout")) {
    auto x = image_to_float(cv::imread(image.string()), input);
    Outputs half_core, full_core;
    Outputs got = half.run(x, input.nchw, &half_core), want = full.run(x, input.nchw, &full_core);
    ASSERT_EQ(half_core.size(), full_core.size());
    for (size_t o = 0; o < full_core.size(); ++o) core_cosine.add(half_core[o], full_core[o]);
    ASSERT_EQ(got.size(), want.size());
    for (size_t o = 0; o < want.size(); ++o) model_cosine.add(got[o], want[o]);
  }
  std::cout << model << ": dequantised core outputs cosine " << core_cosine.value()
            << ", model outputs cosine " << model_cosine.value() << " vs the float32 package\n";
  EXPECT_GE(core_cosine.value(), 0.999);
  EXPECT_GE(model_cosine.value(), 0.999);
}

TEST(Axcompile, Float16ModelCompilesFromItsFloat32EquivalentWithFloat32Io) {
  check_half_classifier("classifier_f16.onnx",
                        "model is float16: compiled from its float32 equivalent (42 initializers "
                        "widened, 0 casts removed); input 'image' (float16) is float32 in the "
                        "package");
}

TEST(Axcompile, Float16KeepIoTypesModelLosesItsIoCasts) {
  check_half_classifier(
      "classifier_f16_io.onnx",
      "model is float16: compiled from its float32 equivalent (42 initializers widened, 2 casts "
      "removed)\n");
}

TEST(Axcompile, Bfloat16KeepIoTypesModelCompilesFromItsFloat32Equivalent) {
  check_half_classifier(
      "classifier_bf16_io.onnx",
      "model is bfloat16: compiled from its float32 equivalent (42 initializers widened, 2 casts "
      "removed)\n");
}

TEST(Axcompile, Float64ModelIsNarrowedToFloat32AndSaysSo) {
  check_half_classifier("classifier_f64.onnx",
                        "model is float64: compiled from its float32 equivalent (42 initializers "
                        "narrowed, 0 casts removed); float64 rounded to float32 since the core "
                        "quantises to int8 anyway; input 'image' (float64) is float32");
}

}  // namespace
