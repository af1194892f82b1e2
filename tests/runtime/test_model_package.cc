// Model package loading: the good packages, and every corrupt or inconsistent package giving an
// InvalidArgument that names the file and the field.
#include <filesystem>

#include "axstream/runtime/model_package.h"
#include "expected_error.h"
#include "test_util.h"

namespace axstream::runtime {
namespace {

using test::contains_all;
using test::message_of;
using test::read_text;
using test::TempDir;
using test::write_text;

constexpr const char *kModelJson =
    "{\"format_version\": 1, \"name\": \"resnet_tiny\", \"core_graph\": \"core.onnx\",\n"
    " \"batch\": 1, \"input_tensor_layout\": \"NHWC\",\n"
    " \"preamble_graph\": null, \"postamble_graph\": null}\n";

constexpr const char *kManifestJson =
    "{\"manifest_version\": 1, \"model_lib_file\": \"model.json\",\n"
    " \"quantized_model_file\": \"core.onnx\",\n"
    " \"input_shapes\": [[1, 32, 32, 4]], \"output_shapes\": [[1, 1, 1, 1024]],\n"
    " \"quantize_params\": [[0.02, -5]], \"dequantize_params\": [[0.04, -15]],\n"
    " \"n_padded_ch_inputs\": [[0, 0, 0, 0, 0, 0, 0, 1]],\n"
    " \"n_padded_ch_outputs\": [[0, 0, 0, 0, 0, 0, 0, 24]],\n"
    " \"input_names\": [\"input\"], \"output_names\": [\"logits\"],\n"
    " \"input_dtypes\": [\"int8\"], \"output_dtypes\": [\"int8\"],\n"
    " \"output_info\": [{\"original_shape\": [1, 1000], \"layout\": \"none\"}]}\n";

std::string replaced(std::string text, const std::string &from, const std::string &to) {
  size_t at = text.find(from);
  if (at == std::string::npos) throw std::runtime_error("test template lacks '" + from + "'");
  return text.replace(at, from.size(), to);
}

// A copy of resnet_tiny's core.onnx with model.json/manifest.json written from the templates.
class PackageFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    AXSTREAM_REQUIRE_TEST_MODELS();
    std::filesystem::copy_file(test::model_path("resnet_tiny/core.onnx"),
                               dir.path() + "/core.onnx");
    write_text(model_json(), kModelJson);
    write_text(manifest_json(), kManifestJson);
  }
  std::string model_json() const { return dir.path() + "/model.json"; }
  std::string manifest_json() const { return dir.path() + "/manifest.json"; }
  // Loads and returns the InvalidArgument message ("" if it loaded).
  std::string load_error() const {
    try {
      load_model_package(dir.path());
    } catch (const InvalidArgument &error) {
      return error.what();
    }
    return "";
  }
  TempDir dir;
};

TEST_F(PackageFixture, TemplatePackageLoads) { EXPECT_EQ(load_error(), ""); }

TEST_F(PackageFixture, LoadsFromDirectoryAndFromModelJsonAlike) {
  auto from_dir = load_model_package(dir.path());
  auto from_json = load_model_package(model_json());
  auto from_slash = load_model_package(dir.path() + "/");
  EXPECT_EQ(from_dir->directory, from_json->directory);
  EXPECT_EQ(from_dir->directory, from_slash->directory);
  EXPECT_EQ(from_json->core_graph_path(), dir.path() + "/core.onnx");
  EXPECT_EQ(from_json->inputs[0].shape, from_dir->inputs[0].shape);
}

TEST_F(PackageFixture, ReadsTensorInfoFromTheManifest) {
  auto package = load_model_package(dir.path());
  EXPECT_EQ(package->name, "resnet_tiny");
  EXPECT_EQ(package->batch, 1);
  ASSERT_EQ(package->inputs.size(), 1u);
  const TensorInfo &input = package->inputs[0];
  EXPECT_EQ(input.name, "input");
  EXPECT_EQ(input.shape, (std::vector<int64_t>{1, 32, 32, 4}));
  EXPECT_EQ(input.unpadded_shape(), (std::vector<int64_t>{1, 32, 32, 3}));
  EXPECT_EQ(input.padding,
            (std::vector<std::pair<int64_t, int64_t>>{{0, 0}, {0, 0}, {0, 0}, {0, 1}}));
  EXPECT_DOUBLE_EQ(input.scale, 0.02);
  EXPECT_EQ(input.zero_point, -5);
  EXPECT_EQ(input.dtype, engine::DType::i8);
  const TensorInfo &output = package->outputs[0];
  EXPECT_EQ(output.name, "logits");
  EXPECT_EQ(output.unpadded_shape(), (std::vector<int64_t>{1, 1, 1, 1000}));
  EXPECT_EQ(package->output_info[0].original_shape, (std::vector<int64_t>{1, 1000}));
  EXPECT_EQ(package->output_info[0].layout, "none");
  EXPECT_FALSE(package->input_preprocess[0].has_value());
  ASSERT_EQ(package->input_info.size(), 1u);  // absent: the unpadded shape, no transpose
  EXPECT_EQ(package->input_info[0].original_shape, (std::vector<int64_t>{1, 32, 32, 3}));
  EXPECT_EQ(package->input_info[0].layout, "none");
  EXPECT_EQ(package->preamble_graph, "");
  EXPECT_EQ(package->postamble_graph, "");
}

TEST_F(PackageFixture, NamesComeFromCoreGraphWhenManifestHasNone) {
  write_text(manifest_json(),
             replaced(kManifestJson,
                      " \"input_names\": [\"input\"], \"output_names\": [\"logits\"],\n", ""));
  auto package = load_model_package(dir.path());
  EXPECT_EQ(package->inputs[0].name, "input");
  EXPECT_EQ(package->outputs[0].name, "logits");
}

TEST_F(PackageFixture, WithoutManifestTheCoreGraphDescribesTheTensors) {
  // Axelera's doc: TensorInfo has quantisation and padding "if manifest.json was found".
  std::filesystem::remove(manifest_json());
  write_text(model_json(), replaced(kModelJson, "\"batch\": 1", "\"batch\": 2"));
  auto package = load_model_package(dir.path());
  ASSERT_EQ(package->inputs.size(), 1u);
  ASSERT_EQ(package->outputs.size(), 1u);
  EXPECT_EQ(package->inputs[0].name, "input");
  EXPECT_EQ(package->inputs[0].shape, (std::vector<int64_t>{2, 32, 32, 4}));
  EXPECT_TRUE(package->inputs[0].padding.empty());
  EXPECT_DOUBLE_EQ(package->inputs[0].scale, 1.0);
  EXPECT_EQ(package->inputs[0].zero_point, 0);
  EXPECT_EQ(package->outputs[0].name, "logits");
  EXPECT_EQ(package->outputs[0].shape, (std::vector<int64_t>{2, 1, 1, 1024}));
  EXPECT_EQ(package->output_info[0].original_shape, package->outputs[0].shape);
  EXPECT_EQ(package->input_preprocess.size(), 1u);
}

TEST_F(PackageFixture, AxeleraOriginalShapeFieldsLoad) {
  // input_shapes_original / output_shapes_original: the float model's shapes, as Axelera's
  // packages carry them (NCHW input: 3 of the 4 padded channels).
  write_text(manifest_json(),
             replaced(kManifestJson, " \"output_info\"",
                      " \"input_shapes_original\": [[1, 3, 32, 32]],"
                      " \"output_shapes_original\": [[1, 1000]], \"output_info\""));
  auto package = load_model_package(dir.path());
  EXPECT_EQ(package->outputs[0].unpadded_shape(), (std::vector<int64_t>{1, 1, 1, 1000}));
}

TEST_F(PackageFixture, MissingPaddingMeansUnpadded) {
  std::string manifest = replaced(kManifestJson, "[1, 32, 32, 4]", "[1, 32, 32, 4]");
  manifest = replaced(manifest, " \"n_padded_ch_inputs\": [[0, 0, 0, 0, 0, 0, 0, 1]],\n", "");
  manifest = replaced(manifest, " \"n_padded_ch_outputs\": [[0, 0, 0, 0, 0, 0, 0, 24]],\n", "");
  manifest = replaced(manifest, "[1, 1000]", "[1, 1024]");
  write_text(manifest_json(), manifest);
  auto package = load_model_package(dir.path());
  EXPECT_TRUE(package->inputs[0].padding.empty());
  EXPECT_EQ(package->inputs[0].unpadded_shape(), package->inputs[0].shape);
}

TEST_F(PackageFixture, CoreGraphOutputCountMustMatchManifest) {
  std::string manifest =
      replaced(kManifestJson, "[[1, 1, 1, 1024]]", "[[1, 1, 1, 1024], [1, 1, 1, 16]]");
  manifest = replaced(manifest, "[[0.04, -15]]", "[[0.04, -15], [0.1, 0]]");
  manifest = replaced(manifest, "[[0, 0, 0, 0, 0, 0, 0, 24]]",
                      "[[0, 0, 0, 0, 0, 0, 0, 24], [0, 0, 0, 0, 0, 0, 0, 6]]");
  manifest = replaced(manifest, "[\"logits\"]", "[\"logits\", \"extra\"]");
  manifest = replaced(manifest, "\"output_dtypes\": [\"int8\"]",
                      "\"output_dtypes\": [\"int8\", \"int8\"]");
  manifest = replaced(manifest, "\"layout\": \"none\"}]", "\"layout\": \"none\"}, null]");
  write_text(manifest_json(), manifest);
  std::string message = load_error();
  EXPECT_TRUE(
      contains_all(message, {"core.onnx: core graph has 1 outputs", "'output_shapes' lists 2"}));
}

struct CorruptCase {
  const char *name;
  const char *file;  // "model.json", "manifest.json" or "core.onnx"
  const char *from;  // text to replace ("" with to == nullptr: delete the file)
  const char *to;    // replacement (nullptr: delete the file; "" with from "": whole file)
  std::vector<std::string> expected;  // substrings of the message
};

class CorruptPackage : public PackageFixture, public ::testing::WithParamInterface<CorruptCase> {};

TEST_P(CorruptPackage, IsInvalidArgumentNamingFileAndField) {
  const CorruptCase &c = GetParam();
  std::string path = dir.path() + "/" + c.file;
  if (!c.to) {
    std::filesystem::remove(path);
  } else if (std::string(c.from).empty()) {
    write_text(path, c.to);
  } else {
    write_text(path, replaced(read_text(path), c.from, c.to));
  }
  std::string message = load_error();
  ASSERT_NE(message, "") << "package loaded although " << c.name;
  for (const auto &part : c.expected)
    EXPECT_NE(message.find(part), std::string::npos)
        << "message lacks '" << part << "': " << message;
}

const CorruptCase kCorruptCases[] = {
    {"missing_model_json", "model.json", "", nullptr, {"model.json", "does not exist"}},
    {"missing_core_graph",
     "core.onnx",
     "",
     nullptr,
     {"model.json", "core_graph", "does not exist"}},
    {"model_json_bad_syntax",
     "model.json",
     "\"batch\": 1,",
     "\"batch\": 1,,",
     {"model.json", "invalid JSON", "line 2, column"}},
    {"manifest_bad_syntax",
     "manifest.json",
     "[[0.02, -5]]",
     "[[0.02, -5]",
     {"manifest.json", "invalid JSON", "line 4"}},
    {"manifest_truncated",
     "manifest.json",
     "",
     "{\"input_shapes\": [[1, 32",
     {"manifest.json", "invalid JSON", "end of file"}},
    {"duplicate_key",
     "model.json",
     "\"batch\": 1,",
     "\"batch\": 1, \"batch\": 1,",
     {"model.json", "duplicate key \"batch\""}},
    {"top_level_array", "manifest.json", "", "[1, 2]", {"manifest.json", "expected a JSON object"}},
    {"unsupported_format_version",
     "model.json",
     "\"format_version\": 1",
     "\"format_version\": 2",
     {"model.json", "'format_version'", "unsupported format version 2"}},
    {"format_version_string",
     "model.json",
     "\"format_version\": 1",
     "\"format_version\": \"1\"",
     {"model.json", "'format_version'", "expected an integer, got string"}},
    {"format_version_missing",
     "model.json",
     "\"format_version\": 1, ",
     "",
     {"model.json", "'format_version' is missing"}},
    {"core_graph_missing_field",
     "model.json",
     "\"core_graph\": \"core.onnx\",",
     "",
     {"model.json", "'core_graph' is missing"}},
    {"core_graph_absent_file",
     "model.json",
     "\"core.onnx\"",
     "\"nothere.onnx\"",
     {"model.json", "'core_graph'", "nothere.onnx", "does not exist"}},
    {"core_graph_not_onnx",
     "core.onnx",
     "",
     "this is not a protobuf at all \xff\xff\xff",
     {"core.onnx", "not a valid ONNX model", "core_graph"}},
    {"batch_zero",
     "model.json",
     "\"batch\": 1",
     "\"batch\": 0",
     {"model.json", "'batch'", "got 0"}},
    {"batch_mismatch",
     "model.json",
     "\"batch\": 1",
     "\"batch\": 2",
     {"manifest.json", "input_shapes[0][0]", "model.json batch 2"}},
    {"layout_nchw",
     "model.json",
     "\"NHWC\"",
     "\"NCHW\"",
     {"model.json", "'input_tensor_layout'", "NCHW"}},
    {"postamble_absent_file",
     "model.json",
     "\"postamble_graph\": null",
     "\"postamble_graph\": \"post.onnx\"",
     {"model.json", "'postamble_graph'", "post.onnx"}},
    {"preamble_absolute",
     "model.json",
     "\"preamble_graph\": null",
     "\"preamble_graph\": \"/etc/passwd\"",
     {"model.json", "'preamble_graph'", "relative"}},
    {"input_shapes_wrong_type",
     "manifest.json",
     "\"input_shapes\": [[1, 32, 32, 4]]",
     "\"input_shapes\": \"1x32x32x4\"",
     {"manifest.json", "'input_shapes'", "expected array, got string"}},
    {"input_shapes_missing",
     "manifest.json",
     "\"input_shapes\": [[1, 32, 32, 4]], ",
     "",
     {"manifest.json", "'input_shapes' is missing"}},
    {"shape_negative_dim",
     "manifest.json",
     "[1, 32, 32, 4]",
     "[1, 32, -32, 4]",
     {"manifest.json", "input_shapes[0][2]", "-32"}},
    {"shape_float_dim",
     "manifest.json",
     "[1, 32, 32, 4]",
     "[1, 32, 32.5, 4]",
     {"manifest.json", "input_shapes[0][2]", "expected an integer"}},
    {"padding_larger_than_shape",
     "manifest.json",
     "[0, 0, 0, 0, 0, 0, 0, 1]",
     "[0, 0, 0, 0, 0, 0, 0, 4]",
     {"manifest.json", "'n_padded_ch_inputs[0]'", "dimension 3"}},
    {"padding_wrong_count",
     "manifest.json",
     "[0, 0, 0, 0, 0, 0, 0, 24]",
     "[0, 0, 0, 0, 0, 24]",
     {"manifest.json", "'n_padded_ch_outputs[0]'", "expected 8 numbers", "got 6"}},
    {"padding_negative",
     "manifest.json",
     "[0, 0, 0, 0, 0, 0, 0, 1]",
     "[0, 0, 0, 0, 0, 0, -1, 2]",
     {"manifest.json", "'n_padded_ch_inputs[0]'", "negative"}},
    {"padding_entry_count",
     "manifest.json",
     "\"n_padded_ch_inputs\": [[0, 0, 0, 0, 0, 0, 0, 1]]",
     "\"n_padded_ch_inputs\": [[0, 0, 0, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 0, 0, 1]]",
     {"manifest.json", "'n_padded_ch_inputs'", "expected 1 entries"}},
    {"quantize_params_count",
     "manifest.json",
     "[[0.02, -5]]",
     "[[0.02, -5], [0.02, -5]]",
     {"manifest.json", "'quantize_params'", "one per input", "got 2"}},
    {"quantize_params_missing",
     "manifest.json",
     "\"quantize_params\": [[0.02, -5]], ",
     "",
     {"manifest.json", "'quantize_params' is missing"}},
    {"dequantize_params_empty",
     "manifest.json",
     "[[0.04, -15]]",
     "[]",
     {"manifest.json", "'dequantize_params'", "one per output", "got 0"}},
    {"scale_zero",
     "manifest.json",
     "[[0.02, -5]]",
     "[[0, -5]]",
     {"manifest.json", "'quantize_params[0][0]'", "scale must be finite and > 0"}},
    {"scale_negative",
     "manifest.json",
     "[[0.04, -15]]",
     "[[-0.04, -15]]",
     {"manifest.json", "'dequantize_params[0][0]'", "scale must be finite and > 0"}},
    {"scale_infinite",
     "manifest.json",
     "[[0.02, -5]]",
     "[[1e999, -5]]",
     {"manifest.json", "'quantize_params[0][0]'", "finite"}},
    {"scale_string",
     "manifest.json",
     "[[0.02, -5]]",
     "[[\"0.02\", -5]]",
     {"manifest.json", "'quantize_params[0][0]'", "expected number, got string"}},
    {"params_not_pair",
     "manifest.json",
     "[[0.02, -5]]",
     "[[0.02]]",
     {"manifest.json", "'quantize_params[0]'", "expected [scale, zero_point]"}},
    {"zero_point_above_int8",
     "manifest.json",
     "[[0.02, -5]]",
     "[[0.02, 200]]",
     {"manifest.json", "'quantize_params[0][1]'", "int8", "200"}},
    {"zero_point_below_int8",
     "manifest.json",
     "[[0.04, -15]]",
     "[[0.04, -129]]",
     {"manifest.json", "'dequantize_params[0][1]'", "int8", "-129"}},
    {"zero_point_fraction",
     "manifest.json",
     "[[0.02, -5]]",
     "[[0.02, -5.5]]",
     {"manifest.json", "'quantize_params[0][1]'", "expected an integer"}},
    {"input_shape_differs_from_core",
     "manifest.json",
     "[[1, 32, 32, 4]]",
     "[[1, 32, 32, 8]]",
     {"core.onnx", "input 0 'input'", "(1,32,32,4)", "input_shapes[0]", "(1,32,32,8)"}},
    {"output_shape_differs_from_core",
     "manifest.json",
     "[[1, 1, 1, 1024]]",
     "[[1, 1, 1, 2048]]",
     {"core.onnx", "output 0 'logits'", "(1,1,1,1024)", "output_shapes[0]"}},
    {"output_padding_entry_count",
     "manifest.json",
     "[[1, 1, 1, 1024]],",
     "[[1, 1, 1, 1024], [1, 1, 1, 16]],",
     {"manifest.json", "'n_padded_ch_outputs'", "expected 2 entries"}},
    {"input_name_differs_from_core",
     "manifest.json",
     "[\"input\"]",
     "[\"data\"]",
     {"manifest.json", "'input_names[0]'", "'data'", "'input'"}},
    {"quantized_model_file_differs",
     "manifest.json",
     "\"quantized_model_file\": \"core.onnx\"",
     "\"quantized_model_file\": \"other.onnx\"",
     {"manifest.json", "'quantized_model_file'"}},
    {"manifest_version_2",
     "manifest.json",
     "\"manifest_version\": 1",
     "\"manifest_version\": 2",
     {"manifest.json", "'manifest_version'"}},
    {"dtype_uint8",
     "manifest.json",
     "\"input_dtypes\": [\"int8\"]",
     "\"input_dtypes\": [\"uint8\"]",
     {"manifest.json", "'input_dtypes[0]'", "uint8"}},
    {"output_info_wrong_elements",
     "manifest.json",
     "[1, 1000]",
     "[1, 999]",
     {"manifest.json", "'output_info[0].original_shape'", "1000 elements"}},
    {"output_info_bad_layout",
     "manifest.json",
     "\"layout\": \"none\"",
     "\"layout\": \"NCHW\"",
     {"manifest.json", "'output_info[0].layout'"}},
    {"preprocess_bad_colour",
     "manifest.json",
     " \"output_info\"",
     " \"input_preprocess\": [{\"color_format\": \"YUV\"}], \"output_info\"",
     {"manifest.json", "'input_preprocess[0].color_format'", "YUV"}},
    {"preprocess_bad_layout",
     "manifest.json",
     " \"output_info\"",
     " \"input_preprocess\": [{\"layout\": \"CHW\"}], \"output_info\"",
     {"manifest.json", "'input_preprocess[0].layout'", "CHW"}},
    {"input_info_wrong_elements",
     "manifest.json",
     " \"output_info\"",
     " \"input_info\": [{\"original_shape\": [1, 3, 32, 31]}], \"output_info\"",
     {"manifest.json", "'input_info[0].original_shape'", "3072 elements of the unpadded input"}},
    {"output_shapes_original_wrong_elements",
     "manifest.json",
     " \"output_info\"",
     " \"output_shapes_original\": [[1, 999]], \"output_info\"",
     {"manifest.json", "'output_shapes_original[0]'", "1000 elements of the unpadded output"}},
    {"input_shapes_original_wrong_count",
     "manifest.json",
     " \"output_info\"",
     " \"input_shapes_original\": [[1, 3, 32, 32], [1, 3, 32, 32]], \"output_info\"",
     {"manifest.json", "'input_shapes_original'", "expected 1 shapes (one per input)"}},
    {"core_graph_leaves_the_directory",
     "model.json",
     "\"core.onnx\"",
     "\"../core.onnx\"",
     {"model.json", "'core_graph'", "'../core.onnx' (it leaves the directory)"}},
    {"postamble_leaves_the_directory",
     "model.json",
     "\"postamble_graph\": null",
     "\"postamble_graph\": \"sub/../../../etc/passwd\"",
     {"model.json", "'postamble_graph'", "it leaves the directory"}},
    {"core_graph_empty_file",
     "core.onnx",
     "",
     "",
     {"core.onnx", "empty file, not an ONNX graph", "'core_graph'"}},
    {"scale_below_float32",
     "manifest.json",
     "[[0.02, -5]]",
     "[[1e-310, -5]]",
     {"manifest.json", "'quantize_params[0][0]'", "outside the normal float32 range"}},
    {"scale_above_float32",
     "manifest.json",
     "[[0.04, -15]]",
     "[[1e39, -15]]",
     {"manifest.json", "'dequantize_params[0][0]'", "outside the normal float32 range"}},
    {"padding_sum_overflows_int64",
     "manifest.json",
     "[[0, 0, 0, 0, 0, 0, 0, 1]]",
     "[[0, 0, 0, 0, 0, 0, 4611686018427387904, 4611686018427387904]]",
     {"manifest.json", "'n_padded_ch_inputs[0]'", "leaves nothing of size 4"}},
    {"original_shape_product_overflows_int64",
     "manifest.json",
     "[1, 1000]",
     "[4611686018427388154, 4]",  // (2^62 + 250) * 4 wraps to 1000 in int64
     {"manifest.json", "'output_info[0].original_shape'", "does not hold the 1000 elements"}},
    {"integer_beyond_int64",
     "manifest.json",
     "[[0.02, -5]]",
     "[[0.02, 99999999999999999999]]",
     {"manifest.json", "'quantize_params[0][1]'", "an integer out of the 64-bit range"}},
    {"nul_in_core_graph",
     "model.json",
     "\"core.onnx\"",
     "\"core.onnx\\u0000junk\"",
     {"model.json", "'core_graph'", "without NUL characters, got 'core.onnx\\x00junk'"}},
    {"non_ascii_byte_in_json",
     "model.json",
     "",
     "\xff\xfe{}",
     {"model.json", "invalid JSON", "found byte 0xff at line 1, column 1"}},
    {"postprocess_differs_from_model",
     "manifest.json",
     " \"output_info\"",
     " \"postprocess_graph\": \"post.onnx\", \"output_info\"",
     {"manifest.json", "'postprocess_graph'", "model.json postamble_graph"}},
};

INSTANTIATE_TEST_SUITE_P(Cases, CorruptPackage, ::testing::ValuesIn(kCorruptCases),
                         [](const auto &info) { return std::string(info.param.name); });

TEST_F(PackageFixture, CorruptHostGraphIsFoundWhenThePackageOpens) {
  // The postamble is run by a decoder, not by the runtime; a corrupt one still fails the load.
  write_text(dir.path() + "/post.onnx", "not a protobuf \xff\xff\xff");
  write_text(model_json(), replaced(kModelJson, "\"postamble_graph\": null",
                                    "\"postamble_graph\": \"post.onnx\""));
  std::string message = load_error();
  EXPECT_TRUE(contains_all(message, {"post.onnx", "not a valid ONNX model", "'postamble_graph'"}));
}

// A file of the package replaced by a directory or a symbolic link loop: the message says which,
// and a manifest.json that is there but unreadable is an error, not a package without manifest.
TEST_F(PackageFixture, PackageFilesThatAreNotFilesAreNamedForWhatTheyAre) {
  namespace fs = std::filesystem;
  const std::string manifest = manifest_json();
  fs::remove(manifest);
  fs::create_directory(manifest);
  std::string message = load_error();
  EXPECT_TRUE(contains_all(message, {manifest + " is a directory, not a file"}));
  fs::remove(manifest);
  fs::create_symlink(manifest, manifest);  // a link to itself: ELOOP
  message = load_error();
  EXPECT_TRUE(contains_all(message, {manifest + " is a symbolic link loop"}));
  fs::remove(manifest);
  fs::create_symlink(dir.path() + "/nothing.json", manifest);
  message = load_error();
  EXPECT_TRUE(contains_all(message, {manifest + " is a symbolic link to nothing"}));
  write_text(manifest, kManifestJson);

  const std::string core = dir.path() + "/core.onnx";
  fs::rename(core, dir.path() + "/real.onnx");
  fs::create_directory(core);
  message = load_error();
  EXPECT_TRUE(contains_all(message, {"model.json", "'core_graph'", "is a directory, not a file"}));
  fs::remove(core);
  fs::create_symlink(core, core);
  message = load_error();
  EXPECT_TRUE(contains_all(message, {"model.json", "'core_graph'", "is a symbolic link loop"}));
  fs::remove(core);
  fs::create_symlink("real.onnx", core);  // a link inside the package is fine
  EXPECT_EQ(load_error(), "");
}

TEST_F(PackageFixture, ManifestGivenAsTheModelFileSaysWhatToPass) {
  EXPECT_EQ(message_of<InvalidArgument>([&] { load_model_package(manifest_json()); }),
            "model file " + manifest_json() +
                " is the package's manifest, not its model file: pass the package directory " +
                dir.path() + " or its model.json");
}

TEST_F(PackageFixture, EmptyHostGraphIsFoundWhenThePackageOpens) {
  write_text(dir.path() + "/pre.onnx", "");
  write_text(model_json(),
             replaced(kModelJson, "\"preamble_graph\": null", "\"preamble_graph\": \"pre.onnx\""));
  std::string message = load_error();
  EXPECT_TRUE(
      contains_all(message, {"pre.onnx", "empty file, not an ONNX graph", "'preamble_graph'"}));
}

TEST_F(PackageFixture, RelativePathsMayGoDownAndBackInsideThePackage) {
  std::filesystem::create_directory(dir.path() + "/graphs");
  std::filesystem::rename(dir.path() + "/core.onnx", dir.path() + "/graphs/core.onnx");
  write_text(model_json(), replaced(kModelJson, "\"core.onnx\"", "\"graphs/../graphs/core.onnx\""));
  write_text(manifest_json(),
             replaced(kManifestJson, "\"core.onnx\"", "\"graphs/../graphs/core.onnx\""));
  EXPECT_EQ(load_error(), "");
}

TEST(ModelPackage, MissingDirectoryIsInvalidArgument) {
  EXPECT_TRUE(contains_all(
      message_of<InvalidArgument>([] { load_model_package("/nonexistent/axstream/package"); }),
      {"/nonexistent/axstream/package", "does not exist"}));
  EXPECT_THROW(load_model_package("/nonexistent/model.json"), InvalidArgument);
  EXPECT_THROW(load_model_package(""), InvalidArgument);
  // A NUL would cut the name short for the file system: "<package>\0junk" must not open it.
  EXPECT_TRUE(contains_all(
      message_of<InvalidArgument>([] { load_model_package(std::string("/tmp\0junk", 9)); }),
      {"'/tmp\\x00junk' contains a NUL character"}));
}

TEST(ModelPackage, GeneratedPackagesLoadWithTheirExtras) {
  AXSTREAM_REQUIRE_TEST_MODELS();
  auto two = load_model_package(test::model_path("two_outputs"));
  ASSERT_EQ(two->outputs.size(), 2u);
  EXPECT_EQ(two->outputs[0].name, "boxes");
  EXPECT_EQ(two->outputs[0].shape, (std::vector<int64_t>{1, 16, 16, 8}));
  EXPECT_EQ(two->outputs[1].shape, (std::vector<int64_t>{1, 1, 1, 16}));
  EXPECT_NE(two->outputs[0].scale, two->outputs[1].scale);
  EXPECT_EQ(two->output_info[0].layout, "NHWC");
  EXPECT_EQ(two->output_info[0].original_shape, (std::vector<int64_t>{1, 6, 16, 16}));
  ASSERT_TRUE(two->input_preprocess[0].has_value());
  EXPECT_EQ(two->input_preprocess[0]->color_format, "BGR");
  EXPECT_EQ(two->input_preprocess[0]->mean.size(), 3u);

  auto b4 = load_model_package(test::model_path("resnet_tiny_b4") + "/model.json");
  EXPECT_EQ(b4->batch, 4);
  EXPECT_EQ(b4->inputs[0].shape, (std::vector<int64_t>{4, 32, 32, 4}));
  EXPECT_EQ(b4->inputs[0].size(), 4u * 32 * 32 * 4);

  auto post = load_model_package(test::model_path("resnet_tiny_post"));
  EXPECT_EQ(post->postamble_graph, "postamble.onnx");
  EXPECT_EQ(post->preamble_graph, "");
  auto pre = load_model_package(test::model_path("resnet_tiny_pre"));
  EXPECT_EQ(pre->preamble_graph, "preamble.onnx");
}

}  // namespace
}  // namespace axstream::runtime
