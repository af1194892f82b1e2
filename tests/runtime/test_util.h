// Helpers shared by the runtime tests: the generated test packages, temporary directories,
// reference tensors.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace axstream::test {

// AXSTREAM_TEST_MODELS, set by meson test to <builddir>/tests/data/models.
inline std::string models_dir() {
  const char *dir = std::getenv("AXSTREAM_TEST_MODELS");
  return dir ? dir : "";
}

inline std::string model_path(const std::string &name) { return models_dir() + "/" + name; }

inline std::string read_text(const std::string &path) {
  std::ifstream stream(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << stream.rdbuf();
  return buffer.str();
}

inline void write_text(const std::string &path, const std::string &text) {
  std::ofstream stream(path, std::ios::binary | std::ios::trunc);
  stream << text;
}

inline std::vector<int8_t> read_bytes(const std::string &path) {
  std::string text = read_text(path);
  return std::vector<int8_t>(text.begin(), text.end());
}

// A fresh directory under TMPDIR, removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "axstream-runtime-test-XXXXXX").string();
    std::vector<char> buffer(pattern.begin(), pattern.end());
    buffer.push_back('\0');
    if (!::mkdtemp(buffer.data())) throw std::runtime_error("mkdtemp failed");
    path_ = buffer.data();
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  const std::string &path() const { return path_; }

 private:
  std::string path_;
};

// Skips the test (GTEST_SKIP) when the generated packages are not there.
#define AXSTREAM_REQUIRE_TEST_MODELS()                                                    \
  do {                                                                                    \
    if (::axstream::test::models_dir().empty() ||                                         \
        !std::filesystem::exists(::axstream::test::model_path("resnet_tiny/model.json"))) \
      GTEST_SKIP() << "AXSTREAM_TEST_MODELS does not point at the generated test models " \
                      "(run through meson test)";                                         \
  } while (0)

// Largest absolute difference between two int8 buffers of equal size.
inline int max_abs_diff(const std::vector<int8_t> &a, const std::vector<int8_t> &b) {
  if (a.size() != b.size()) return 256;
  int worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(int(a[i]) - int(b[i])));
  return worst;
}

}  // namespace axstream::test
