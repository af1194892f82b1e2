// Image classification through the axruntime C API, the way Metis applications written against
// Axelera's axruntime.h do it: OpenCV preprocessing into the model's padded int8 input, one
// connection + model instance per thread, axr_run_model_instance, top-5 printout.
//
//   classifier <model package> <image> [labels.txt] [--threads N] [--iterations N]
//
// Exits 0 on success (and for --help), 2 on a bad command line, 1 on any other error or if the
// threads disagree on the result.
#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>
#include <thread>
#include <vector>

#include "axruntime/axruntime.hpp"

namespace {

// ImageNet normalisation, RGB order, on pixels scaled to [0, 1].
constexpr float kMean[3] = {0.485f, 0.456f, 0.406f};
constexpr float kStd[3] = {0.229f, 0.224f, 0.225f};

struct Options {
  std::string model;
  std::string image;
  std::string labels;
  int threads = 2;
  int iterations = 10;
};

struct Prediction {
  int class_id;
  float probability;
};

struct ThreadResult {
  std::vector<Prediction> top5;
  double seconds = 0;
  std::string error;
};

void usage(FILE *to) {
  std::fprintf(to,
               "usage: classifier <model package> <image> [labels.txt] [--threads N] "
               "[--iterations N]\n"
               "  --threads N     threads, each with its own connection and instance (default 2)\n"
               "  --iterations N  runs per thread (default 10)\n");
}

enum class Parsed { run, help, bad };

// A bad command line names what is wrong in `problem`.
Parsed parse(int argc, char **argv, Options &options, std::string &problem) {
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") return Parsed::help;
    if (arg == "--threads" || arg == "--iterations") {
      if (i + 1 >= argc) {
        problem = arg + " needs a value";
        return Parsed::bad;
      }
      std::string text = argv[++i];
      char *end = nullptr;
      long value = std::strtol(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || value < 1 || value > 1024) {
        problem = arg + " '" + text + "': expected an integer in 1..1024";
        return Parsed::bad;
      }
      (arg == "--threads" ? options.threads : options.iterations) = static_cast<int>(value);
    } else if (arg.rfind("--", 0) == 0) {
      problem = "unknown option '" + arg + "'";
      return Parsed::bad;
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() < 2 || positional.size() > 3) {
    problem = "expected a model package, an image and optionally a labels file, got " +
              std::to_string(positional.size()) + " argument(s)";
    return Parsed::bad;
  }
  options.model = positional[0];
  options.image = positional[1];
  if (positional.size() == 3) options.labels = positional[2];
  return Parsed::run;
}

std::string error_text(axrObject *object) {
  return std::string(axr_error_string(axr_last_error(object))) + ": " +
         axr_last_error_string(object);
}

// The unpadded extent of dimension `d`.
size_t content(const axrTensorInfo &info, size_t d) {
  return info.dims[d] - info.padding[d][0] - info.padding[d][1];
}

// BGR image -> NHWC int8 tensor with the model's padding (pad value = zero point) and
// quantisation q = round(x / scale + zero_point).
std::vector<int8_t> preprocess(const cv::Mat &bgr, const axrTensorInfo &info) {
  const size_t height = content(info, 1), width = content(info, 2), channels = content(info, 3);
  cv::Mat resized, rgb;
  cv::resize(bgr, resized, cv::Size(static_cast<int>(width), static_cast<int>(height)), 0, 0,
             cv::INTER_LINEAR);
  cv::cvtColor(resized, rgb, cv::COLOR_BGR2RGB);

  std::vector<int8_t> tensor(axr_tensor_size(&info), static_cast<int8_t>(info.zero_point));
  const size_t row_stride = info.dims[2] * info.dims[3];
  for (size_t y = 0; y < height; ++y) {
    const uint8_t *pixel = rgb.ptr<uint8_t>(static_cast<int>(y));
    int8_t *row = tensor.data() + (y + info.padding[1][0]) * row_stride +
                  info.padding[2][0] * info.dims[3] + info.padding[3][0];
    for (size_t x = 0; x < width; ++x) {
      for (size_t c = 0; c < channels && c < 3; ++c) {
        float value = (pixel[x * 3 + c] / 255.0f - kMean[c]) / kStd[c];
        float quantised = std::nearbyint(value / static_cast<float>(info.scale)) + info.zero_point;
        row[x * info.dims[3] + c] = static_cast<int8_t>(std::clamp(quantised, -128.0f, 127.0f));
      }
    }
  }
  return tensor;
}

// Depad the last dimension, dequantise, softmax, best five.
std::vector<Prediction> top5(const std::vector<int8_t> &output, const axrTensorInfo &info) {
  const size_t classes = content(info, info.ndims - 1);
  const size_t first = info.padding[info.ndims - 1][0];
  std::vector<float> scores(classes);
  for (size_t i = 0; i < classes; ++i) {
    scores[i] = static_cast<float>((output[first + i] - info.zero_point) * info.scale);
  }
  const float max_score = *std::max_element(scores.begin(), scores.end());
  float sum = 0;
  for (float &score : scores) sum += (score = std::exp(score - max_score));
  std::vector<int> order(classes);
  std::iota(order.begin(), order.end(), 0);
  const size_t count = std::min<size_t>(5, classes);
  std::partial_sort(order.begin(), order.begin() + count, order.end(), [&](int a, int b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  });
  std::vector<Prediction> best;
  for (size_t i = 0; i < count; ++i) best.push_back({order[i], scores[order[i]] / sum});
  return best;
}

// One thread: its own connection (one sub-device) and model instance, `iterations` runs.
ThreadResult classify(axrContext *ctx, axrModel *model, const std::vector<int8_t> &input,
                      const axrTensorInfo &output_info, int iterations) {
  ThreadResult result;
  axrConnection *connection = axr_device_connect(ctx, nullptr, 1, nullptr);
  if (connection == nullptr) {
    result.error = "axr_device_connect: " + error_text(AXR_OBJECT(ctx));
    return result;
  }
  // Destroyed early so another program can take the sub-device as soon as we are done.
  auto connection_owner = axr::to_ptr(connection);
  auto properties = axr::to_ptr(axr_create_properties(ctx, "aipu_cores=1"));
  axrModelInstance *instance = axr_load_model_instance(connection, model, properties.get());
  if (instance == nullptr) {
    result.error = "axr_load_model_instance: " + error_text(AXR_OBJECT(ctx));
    return result;
  }
  std::vector<int8_t> output(axr_tensor_size(&output_info));
  axrArgument in{const_cast<int8_t *>(input.data()), -1, 0, input.size()};
  axrArgument out{output.data(), -1, 0, output.size()};
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) {
    if (axr_run_model_instance(instance, &in, 1, &out, 1) != AXR_SUCCESS) {
      result.error = "axr_run_model_instance: " + error_text(AXR_OBJECT(instance));
      return result;
    }
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.top5 = top5(output, output_info);
  return result;
}

// False when a labels file was named but cannot be read (no file at all is fine: class ids).
bool read_labels(const std::string &path, std::vector<std::string> &labels) {
  if (path.empty()) return true;
  std::ifstream file(path);
  if (!file) return false;
  for (std::string line; std::getline(file, line);) labels.push_back(line);
  return true;
}

// Every error line names the program first, as the project's tools do.
void fail(const char *format, ...) __attribute__((format(printf, 1, 2)));
void fail(const char *format, ...) {
  std::fputs("classifier: ", stderr);
  va_list args;
  va_start(args, format);
  std::vfprintf(stderr, format, args);
  va_end(args);
  std::fputc('\n', stderr);
}

}  // namespace

int main(int argc, char **argv) {
  Options options;
  std::string problem;
  switch (parse(argc, argv, options, problem)) {
    case Parsed::help:
      usage(stdout);
      return 0;
    case Parsed::bad:
      std::fprintf(stderr, "classifier: %s\n", problem.c_str());
      usage(stderr);
      return 2;
    case Parsed::run:
      break;
  }
  // Silent: OpenCV warns on stderr per decoder it tries; the line below says what failed.
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  cv::Mat image = cv::imread(options.image, cv::IMREAD_COLOR);
  if (image.empty()) {
    fail("cannot read image '%s' (no such file, or not an image OpenCV decodes)",
         options.image.c_str());
    return 1;
  }
  std::vector<std::string> labels;
  if (!read_labels(options.labels, labels)) {
    fail("cannot read labels file '%s'", options.labels.c_str());
    return 1;
  }

  auto ctx = axr::to_ptr(axr_create_context());
  axrModel *model = axr_load_model(ctx.get(), options.model.c_str());
  if (model == nullptr) {
    fail("%s", error_text(AXR_OBJECT(ctx.get())).c_str());
    return 1;
  }
  if (axr_num_model_inputs(model) != 1 || axr_num_model_outputs(model) != 1) {
    fail("model '%s': expected a classifier with 1 input and 1 output, got %zu and %zu",
         options.model.c_str(), axr_num_model_inputs(model), axr_num_model_outputs(model));
    return 1;
  }
  // The image is quantised straight into the core input; a package whose head runs on the host
  // first (preamble.onnx) needs that run, which this example does not do (axpreprocess does).
  const char *preamble = axr_get_property(axr_get_model_properties(model), "preamble_graph");
  if (preamble != nullptr && *preamble != '\0') {
    fail(
        "model '%s' has a preamble (%s) to run on the host before the core; this example "
        "feeds the core directly and does not run preambles",
        options.model.c_str(), preamble);
    return 1;
  }
  const axrTensorInfo input_info = axr_get_model_input(model, 0);
  const axrTensorInfo output_info = axr_get_model_output(model, 0);
  if (input_info.ndims != 4 || input_info.type != AXR_SIGNED || input_info.bits != 8) {
    fail("model '%s': expected an int8 NHWC input", options.model.c_str());
    return 1;
  }
  std::printf("model %s: input %s %zux%zux%zux%zu (scale %g, zero point %d), %zu classes\n",
              options.model.c_str(), input_info.name, input_info.dims[0], input_info.dims[1],
              input_info.dims[2], input_info.dims[3], input_info.scale, input_info.zero_point,
              content(output_info, output_info.ndims - 1));

  const std::vector<int8_t> input = preprocess(image, input_info);

  std::vector<ThreadResult> results(options.threads);
  {
    std::vector<std::thread> workers;
    for (int t = 0; t < options.threads; ++t) {
      workers.emplace_back([&, t] {
        // Named, so `top -H` and gdb tell the workers apart from the runtime's own threads.
        pthread_setname_np(pthread_self(), ("classify-" + std::to_string(t)).c_str());
        results[t] = classify(ctx.get(), model, input, output_info, options.iterations);
      });
    }
    for (auto &worker : workers) worker.join();
  }

  int status = 0;
  for (int t = 0; t < options.threads; ++t) {
    const ThreadResult &result = results[t];
    if (!result.error.empty()) {
      fail("thread %d: %s", t, result.error.c_str());
      status = 1;
      continue;
    }
    std::printf("thread %d: %d runs in %.1f ms (%.1f inferences/s)\n", t, options.iterations,
                result.seconds * 1e3, options.iterations / result.seconds);
    if (result.top5.size() != results[0].top5.size() ||
        !std::equal(result.top5.begin(), result.top5.end(), results[0].top5.begin(),
                    [](const Prediction &a, const Prediction &b) {
                      return a.class_id == b.class_id && a.probability == b.probability;
                    })) {
      fail("thread %d disagrees with thread 0", t);
      status = 1;
    }
  }
  if (status != 0 || results.empty()) return 1;

  std::printf("top-5 for %s:\n", options.image.c_str());
  for (size_t rank = 0; rank < results[0].top5.size(); ++rank) {
    const Prediction &prediction = results[0].top5[rank];
    const std::string label = prediction.class_id < static_cast<int>(labels.size())
                                  ? labels[prediction.class_id]
                                  : "class " + std::to_string(prediction.class_id);
    std::printf("  %zu. %5.1f%%  %4d  %s\n", rank + 1, prediction.probability * 100.0,
                prediction.class_id, label.c_str());
  }
  return 0;
}
