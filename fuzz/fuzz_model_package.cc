// libFuzzer target: the model-package loader (runtime/model_package.cc) on fuzzed model.json and
// manifest.json. The input is "<model.json>\n@@MANIFEST@@\n<manifest.json>"; without the separator
// the whole input is manifest.json next to a valid model.json. The core graph is a real test
// package's core.onnx (AXSTREAM_FUZZ_CORE_ONNX, set by scripts/fuzz.sh) so the fuzzer gets past
// the JSON checks into the cross-checks against the graph. Every rejection must be an
// axstream::Error; anything else (crash, sanitizer report, other exception) is a finding.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "axstream/error.h"
#include "axstream/runtime/model_package.h"

namespace {

const std::string kSeparator = "\n@@MANIFEST@@\n";
const std::string kDefaultModelJson =
    R"({"format_version": 1, "name": "fuzz", "core_graph": "core.onnx", "batch": 1,)"
    R"( "input_tensor_layout": "NHWC", "preamble_graph": null, "postamble_graph": null})";

std::string package_dir() {
  static const std::string dir = [] {
    std::string templ = (std::filesystem::temp_directory_path() / "axfuzz_pkg.XXXXXX").string();
    if (!mkdtemp(templ.data())) std::abort();
    const char *core = std::getenv("AXSTREAM_FUZZ_CORE_ONNX");
    std::filesystem::path target = std::filesystem::path(templ) / "core.onnx";
    if (core && *core)
      std::filesystem::copy_file(core, target);
    else
      std::ofstream(target, std::ios::binary) << "";  // loader must reject an empty graph
    return templ;
  }();
  // libFuzzer ends with exit(): remove the directory then rather than leave one per run
  // (registered after `dir` is constructed, so it runs before `dir` is destroyed).
  static const bool cleanup_registered =
      std::atexit([] { std::filesystem::remove_all(package_dir()); }) == 0;
  (void)cleanup_registered;
  return dir;
}

void write(const std::string &path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view input(reinterpret_cast<const char *>(data), size);
  std::string_view model_json = kDefaultModelJson, manifest = input;
  if (size_t at = input.find(kSeparator); at != std::string_view::npos) {
    model_json = input.substr(0, at);
    manifest = input.substr(at + kSeparator.size());
  }
  const std::string dir = package_dir();
  write(dir + "/model.json", model_json);
  write(dir + "/manifest.json", manifest);
  try {
    auto package = axstream::runtime::load_model_package(dir);
    // Touch what consumers read, so inconsistent-but-accepted packages show up under ASan.
    for (const auto &t : package->inputs) (void)t.size();
    for (const auto &t : package->outputs) (void)t.size();
  } catch (const axstream::Error &) {
  }
  return 0;
}
