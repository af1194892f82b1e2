// Helpers the compiler tests share: run axcompile, read images into a model's float input, run
// a float model through the engine and a package through the runtime API (the consumers' side
// of docs/model-package.md: preamble + quantise + pad in, depad + dequantise + NHWC->NCHW +
// postamble out).
#pragma once

#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "axstream/runtime/engine.h"
#include "axstream/runtime/model_package.h"
#include "axstream/runtime/runtime.h"

namespace axtest {

namespace fs = std::filesystem;

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

inline std::string shell_quote(const std::string &s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

inline CommandResult run_command(const std::string &command) {
  CommandResult result;
  FILE *pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return result;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) result.output.append(buf, n);
  int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

inline CommandResult axcompile(const std::vector<std::string> &args) {
  std::string command = shell_quote(AXCOMPILE_PATH);
  for (const auto &a : args) command.append(" ").append(shell_quote(a));
  return run_command(command);
}

// A fresh, empty directory under the system temp dir, removed at scope exit.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string &tag) {
    char pattern[] = "/tmp/axcompile-test-XXXXXX";
    path = fs::path(::mkdtemp(pattern)) / tag;
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path.parent_path(), ec);
  }
};

struct ImageInput {
  int height, width;
  bool nchw;
  bool rgb = true;
  double pixel_scale = 1.0 / 255.0;
  std::vector<double> mean{0, 0, 0}, std{1, 1, 1};
};

inline std::vector<float> image_to_float(const cv::Mat &bgr, const ImageInput &in) {
  cv::Mat rgb, resized;
  if (in.rgb)
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  else
    rgb = bgr;
  cv::resize(rgb, resized, cv::Size(in.width, in.height), 0, 0, cv::INTER_LINEAR);
  std::vector<float> out(3 * in.height * in.width);
  for (int y = 0; y < in.height; ++y)
    for (int x = 0; x < in.width; ++x)
      for (int c = 0; c < 3; ++c) {
        float v = static_cast<float>(
            (resized.at<cv::Vec3b>(y, x)[c] * in.pixel_scale - in.mean[c]) / in.std[c]);
        size_t i = in.nchw ? (size_t(c) * in.height + y) * in.width + x
                           : (size_t(y) * in.width + x) * 3 + c;
        out[i] = v;
      }
  return out;
}

using Outputs = std::vector<std::vector<float>>;

// The float model through the engine (reference).
class FloatModel {
 public:
  FloatModel(const std::string &path,
             const std::map<std::string, std::vector<int64_t>> &shapes = {}) {
    axstream::engine::CompileOptions options;
    options.input_shapes = shapes;
    program_ = axstream::engine::Program::from_file(path, options);
    executor_ = program_->make_executor();
  }
  Outputs run(const std::vector<float> &input) {
    Outputs out;
    std::vector<void *> ptrs;
    for (const auto &d : program_->outputs()) out.emplace_back(d.element_count());
    for (auto &o : out) ptrs.push_back(o.data());
    executor_->run({input.data()}, ptrs);
    return out;
  }

 private:
  std::shared_ptr<const axstream::engine::Program> program_;
  std::unique_ptr<axstream::engine::Executor> executor_;
};

// A compiled package through the runtime C++ API.
class PackageModel {
 public:
  explicit PackageModel(const std::string &dir) {
    using namespace axstream::runtime;
    context_ = Context::create();
    model_ = context_->load_model(dir);
    connection_ = context_->device_connect(nullptr, 1);
    instance_ = connection_->load_model_instance(model_);
    package_ = model_->package();
    if (!package_->preamble_graph.empty()) {
      preamble_ = axstream::engine::Program::from_file(package_->path_of(package_->preamble_graph));
      pre_exec_ = preamble_->make_executor();
    }
    if (!package_->postamble_graph.empty()) {
      postamble_ =
          axstream::engine::Program::from_file(package_->path_of(package_->postamble_graph));
      post_exec_ = postamble_->make_executor();
    }
  }
  const axstream::runtime::ModelPackage &package() const { return *package_; }

  // `input` is the model's float input in its own layout (`nchw` says which). With a preamble,
  // that runs first and its output (NCHW when input_info's layout is NHWC) is what is quantised.
  Outputs run(const std::vector<float> &model_input, bool nchw, Outputs *core_outputs = nullptr) {
    std::vector<float> preamble_output;
    if (preamble_) {
      preamble_output.resize(preamble_->outputs()[0].element_count());
      pre_exec_->run({model_input.data()}, {preamble_output.data()});
      nchw = package_->input_info[0].layout == "NHWC";
    }
    const std::vector<float> &input = preamble_ ? preamble_output : model_input;
    const auto inputs = model_->inputs();  // by value
    const auto &info = inputs[0];
    const int64_t h = info.shape[1], w = info.shape[2], cp = info.shape[3];
    const int64_t c = info.unpadded_shape()[3];
    std::vector<int8_t> device_in(info.size(), static_cast<int8_t>(info.zero_point));
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x)
        for (int64_t ch = 0; ch < c; ++ch) {
          size_t src = nchw ? (size_t(ch) * h + y) * w + x : (size_t(y) * w + x) * c + ch;
          double q = std::nearbyint(input[src] / info.scale) + info.zero_point;
          device_in[(size_t(y) * w + x) * cp + ch] =
              static_cast<int8_t>(std::clamp(q, -128.0, 127.0));
        }
    auto outputs = model_->outputs();
    std::vector<std::vector<int8_t>> device_out;
    std::vector<axstream::runtime::Argument> in_args{{device_in.data(), -1, 0, device_in.size()}},
        out_args;
    for (const auto &o : outputs) device_out.emplace_back(o.size());
    for (auto &o : device_out) out_args.push_back({o.data(), -1, 0, o.size()});
    instance_->run(in_args, out_args);
    Outputs floats;
    for (size_t k = 0; k < outputs.size(); ++k) {
      const auto &o = outputs[k];
      auto unpadded = o.unpadded_shape();
      int64_t cpad = o.shape.back(), creal = unpadded.back();
      int64_t rows = 1;
      for (size_t d = 0; d + 1 < unpadded.size(); ++d) rows *= unpadded[d];
      // Outputs are padded only in the last dimension (axcompile's layout).
      std::vector<float> flat(rows * creal);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t ch = 0; ch < creal; ++ch)
          flat[r * creal + ch] =
              static_cast<float>((device_out[k][r * cpad + ch] - o.zero_point) * o.scale);
      const auto &oi = package_->output_info[k];
      if (oi.layout == "NHWC") {
        int64_t C = oi.original_shape[1], H = oi.original_shape[2], W = oi.original_shape[3];
        std::vector<float> nchw_out(flat.size());
        for (int64_t ch = 0; ch < C; ++ch)
          for (int64_t y = 0; y < H; ++y)
            for (int64_t x = 0; x < W; ++x)
              nchw_out[(ch * H + y) * W + x] = flat[(y * W + x) * C + ch];
        flat.swap(nchw_out);
      }
      floats.push_back(std::move(flat));
    }
    if (core_outputs) *core_outputs = floats;
    if (!postamble_) return floats;
    Outputs final_out;
    std::vector<const void *> ins;
    std::vector<void *> ptrs;
    for (const auto &f : floats) ins.push_back(f.data());
    for (const auto &d : postamble_->outputs()) final_out.emplace_back(d.element_count());
    for (auto &o : final_out) ptrs.push_back(o.data());
    post_exec_->run(ins, ptrs);
    return final_out;
  }

 private:
  std::shared_ptr<axstream::runtime::Context> context_;
  std::shared_ptr<axstream::runtime::Model> model_;
  std::shared_ptr<axstream::runtime::Connection> connection_;
  std::shared_ptr<axstream::runtime::ModelInstance> instance_;
  std::shared_ptr<const axstream::runtime::ModelPackage> package_;
  std::shared_ptr<const axstream::engine::Program> preamble_, postamble_;
  std::unique_ptr<axstream::engine::Executor> pre_exec_;
  std::unique_ptr<axstream::engine::Executor> post_exec_;
};

struct Cosine {
  double dot = 0, aa = 0, bb = 0;
  void add(const std::vector<float> &a, const std::vector<float> &b) {
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
      dot += double(a[i]) * b[i];
      aa += double(a[i]) * a[i];
      bb += double(b[i]) * b[i];
    }
  }
  double value() const { return aa > 0 && bb > 0 ? dot / std::sqrt(aa * bb) : (aa == bb ? 1 : 0); }
};

inline std::vector<fs::path> images_in(const fs::path &dir) {
  std::vector<fs::path> files;
  for (const auto &e : fs::directory_iterator(dir)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace axtest
