// Whole-model check of the residual sum post-ops (docs/runtime.md, "residual adds into
// convolutions"): compiles one model with AXSTREAM_ENGINE_SUM_POSTOP=1 and =0 in this process,
// runs both on the same seeded random inputs (and, for a package, images or video frames
// preprocessed as its manifest says), counts the output elements that differ and times both
// sides in alternated rounds (process CPU ms per inference, medians).
//
//   sum-postop-compare PACKAGE_DIR|MODEL.onnx [--random N] [--seed S] [--rounds R] [--runs K]
//                      [--threads T] [--frame-step F] [--require-fused] [--setting NAME]
//                      [--values A,B] [IMAGE|VIDEO ...]
//
// --setting compares another engine setting the same way (NAME=1 as "fused", NAME=0 as
// "unfused"), e.g. AXSTREAM_ENGINE_U8_RETYPE, or AXSTREAM_ENGINE_FLOAT_SUM_POSTOP (the float
// residual adds, which the tool counts apart from the int8 ones). --values A,B compares two
// other values, `unset` meaning the variable removed: a setting whose default is a rule
// (AXSTREAM_ENGINE_OWN_DEPTHWISE, AXSTREAM_ENGINE_ZP_PAD) against one forced value, e.g.
// `--values unset,0`.
//
// Exit status: 0 outputs identical, 1 they differ (or an error, or --require-fused and no
// residual add fused though some convolution summing one runs a kernel checked for the sum
// post-op), 2 usage.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <random>
#include <string>
#include <vector>

#include "axstream/error.h"
#include "axstream/runtime/engine.h"
#include "axstream/runtime/model_package.h"
#include "conv_dnnl.h"

namespace {

using namespace axstream;
using engine::DType;

const char *kUsage =
    "usage: sum-postop-compare PACKAGE_DIR|MODEL.onnx [--random N] [--seed S] [--rounds R]\n"
    "                          [--runs K] [--threads T] [--frame-step F] [--require-fused]\n"
    "                          [--setting NAME] [--values A,B] [IMAGE|VIDEO ...]\n"
    "  --random N       seeded random inputs (default 20)\n"
    "  --seed S         their seed (default 1)\n"
    "  --rounds R       timing rounds, fused and unfused alternated (default 5; 0: no timing)\n"
    "  --runs K         inferences per side per round (default 50)\n"
    "  --threads T      engine threads per run (default 1)\n"
    "  --frame-step F   every F-th frame of a video (default 10)\n"
    "  --require-fused  fail when no residual add fused though a convolution summing one runs a\n"
    "                   oneDNN kernel checked for the sum post-op (none required where none does)\n"
    "  --setting NAME   the engine setting compared =1 (\"fused\") against =0 (default\n"
    "                   AXSTREAM_ENGINE_SUM_POSTOP)\n"
    "  --values A,B     the setting's two values compared, \"fused\" A against \"unfused\" B\n"
    "                   (default 1,0; unset: the variable removed, the setting's default)\n"
    "  IMAGE|VIDEO      inputs from files (a package with one image input only)\n";

bool parse_int(const char *text, long least, long most, long &value) {
  char *end = nullptr;
  errno = 0;
  value = std::strtol(text, &end, 10);
  return errno == 0 && end != text && *end == '\0' && value >= least && value <= most;
}

bool is_directory(const std::string &path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

size_t count_of(const std::string &text, const std::string &what) {
  size_t n = 0;
  for (size_t at = 0; (at = text.find(what, at)) != std::string::npos; at += what.size()) ++n;
  return n;
}

// How many lines of a program description that start with `step` ("  axstream.QConv '": the
// int8 convolutions, "  Conv '": the float ones) contain `what`.
size_t count_on_steps(const std::string &text, const std::string &step, const std::string &what) {
  size_t n = 0;
  for (size_t at = 0; (at = text.find(step, at)) != std::string::npos; at += step.size()) {
    if (at > 0 && text[at - 1] != '\n') continue;
    n += text.substr(at, text.find('\n', at) - at).find(what) != std::string::npos;
  }
  return n;
}

double cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// `value` kUnset compiles with the setting removed from the environment (its default).
const char *const kUnset = "unset";

std::shared_ptr<const engine::Program> compile(const std::string &model, const std::string &value,
                                               const engine::CompileOptions &options,
                                               const std::string &setting) {
  const char *before = std::getenv(setting.c_str());
  const std::string saved = before ? before : "";
  if (value == kUnset)
    unsetenv(setting.c_str());
  else
    setenv(setting.c_str(), value.c_str(), 1);
  auto program = engine::Program::from_file(model, options);
  if (before)
    setenv(setting.c_str(), saved.c_str(), 1);
  else
    unsetenv(setting.c_str());
  return program;
}

using Inputs = std::vector<std::vector<uint8_t>>;

Inputs random_inputs(const std::vector<engine::TensorDesc> &descs, std::mt19937 &rng) {
  Inputs in;
  for (const auto &d : descs) {
    std::vector<uint8_t> bytes(d.byte_size());
    if (d.dtype == DType::f32) {
      std::normal_distribution<float> normal(0.f, 1.f);
      for (size_t e = 0; e < d.element_count(); ++e) {
        const float v = normal(rng);
        std::memcpy(&bytes[e * 4], &v, 4);
      }
    } else {
      for (auto &b : bytes) b = static_cast<uint8_t>(rng());
    }
    in.push_back(std::move(bytes));
  }
  return in;
}

// The package's int8/uint8 NHWC input for one BGR picture: stretched to the input size,
// normalised as the manifest says, quantised; padded channels hold the zero point.
std::vector<uint8_t> image_input(const runtime::ModelPackage &package, const cv::Mat &bgr) {
  const runtime::TensorInfo &info = package.inputs[0];
  const auto &pre = *package.input_preprocess[0];
  const int64_t h = info.shape[1], w = info.shape[2], c = info.shape[3];
  cv::Mat resized;
  cv::resize(bgr, resized, cv::Size(static_cast<int>(w), static_cast<int>(h)), 0, 0,
             cv::INTER_LINEAR);
  const bool gray = pre.color_format == "GRAY";
  if (gray)
    cv::cvtColor(resized, resized, cv::COLOR_BGR2GRAY);
  else if (pre.color_format == "RGB")
    cv::cvtColor(resized, resized, cv::COLOR_BGR2RGB);
  const int colours = gray ? 1 : 3;
  const bool is_i8 = info.dtype == DType::i8;
  const int lo = is_i8 ? -128 : 0, hi = is_i8 ? 127 : 255;
  std::vector<uint8_t> out(static_cast<size_t>(h * w * c),
                           static_cast<uint8_t>(std::clamp(info.zero_point, lo, hi)));
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int k = 0; k < colours && k < c; ++k) {
        const double pixel = resized.ptr<uint8_t>(static_cast<int>(y))[x * colours + k];
        const double mean = pre.mean.empty() ? 0.0 : pre.mean[k];
        const double sd = pre.std.empty() ? 1.0 : pre.std[k];
        const double real = (pixel * pre.pixel_scale - mean) / sd;
        const long q = std::lrint(real / info.scale) + info.zero_point;
        out[static_cast<size_t>((y * w + x) * c + k)] =
            static_cast<uint8_t>(std::clamp<long>(q, lo, hi));
      }
  return out;
}

bool is_video(const std::string &path) {
  for (const char *ext : {".avi", ".mp4", ".mkv", ".mov", ".webm"}) {
    const size_t n = std::strlen(ext);
    if (path.size() > n && path.compare(path.size() - n, n, ext) == 0) return true;
  }
  return false;
}

}  // namespace

int main(int argc, char **argv) {
  long random_count = 20, seed = 1, rounds = 5, runs = 50, threads = 1, frame_step = 10;
  bool require_fused = false;
  std::string model_arg, setting = "AXSTREAM_ENGINE_SUM_POSTOP";
  std::string fused_value = "1", unfused_value = "0";
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto number = [&](long least, long most, long &value) {
      if (i + 1 >= argc || !parse_int(argv[i + 1], least, most, value)) {
        std::fprintf(stderr, "sum-postop-compare: %s '%s': expected an integer in %ld..%ld\n",
                     arg.c_str(), i + 1 < argc ? argv[i + 1] : "", least, most);
        std::exit(2);
      }
      ++i;
    };
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--random") {
      number(0, 1000000, random_count);
    } else if (arg == "--seed") {
      number(0, 1L << 31, seed);
    } else if (arg == "--rounds") {
      number(0, 1000, rounds);
    } else if (arg == "--runs") {
      number(1, 1000000, runs);
    } else if (arg == "--threads") {
      number(1, 256, threads);
    } else if (arg == "--frame-step") {
      number(1, 100000, frame_step);
    } else if (arg == "--require-fused") {
      require_fused = true;
    } else if (arg == "--setting") {
      if (i + 1 >= argc || std::strncmp(argv[i + 1], "AXSTREAM_", 9) != 0) {
        std::fprintf(stderr, "sum-postop-compare: --setting '%s': expected an AXSTREAM_ name\n",
                     i + 1 < argc ? argv[i + 1] : "");
        return 2;
      }
      setting = argv[++i];
    } else if (arg == "--values") {
      const std::string values = i + 1 < argc ? argv[i + 1] : "";
      const size_t comma = values.find(',');
      if (comma == std::string::npos || comma == 0 || comma + 1 == values.size() ||
          values.find(',', comma + 1) != std::string::npos) {
        std::fprintf(stderr, "sum-postop-compare: --values '%s': expected two values, A,B\n",
                     values.c_str());
        return 2;
      }
      fused_value = values.substr(0, comma);
      unfused_value = values.substr(comma + 1);
      ++i;
    } else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "sum-postop-compare: unknown option '%s'\n%s", arg.c_str(), kUsage);
      return 2;
    } else if (model_arg.empty()) {
      model_arg = arg;
    } else {
      files.push_back(arg);
    }
  }
  if (model_arg.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  try {
    std::shared_ptr<const runtime::ModelPackage> package;
    std::string model = model_arg;
    if (is_directory(model_arg)) {
      package = runtime::load_model_package(model_arg);
      model = package->core_graph_path();
    }
    if (!files.empty() &&
        (!package || package->inputs.size() != 1 || package->input_preprocess.empty() ||
         !package->input_preprocess[0] || package->inputs[0].shape.size() != 4)) {
      std::fprintf(stderr,
                   "sum-postop-compare: %s: image inputs need a package with one image input "
                   "(an NHWC tensor with input_preprocess in its manifest)\n",
                   model_arg.c_str());
      return 2;
    }
    engine::CompileOptions options;
    options.threads = static_cast<int>(threads);
    auto fused = compile(model, fused_value, options, setting);
    auto unfused = compile(model, unfused_value, options, setting);
    if (setting != "AXSTREAM_ENGINE_SUM_POSTOP" || fused_value != "1" || unfused_value != "0")
      std::printf("%s: \"fused\" below is %s=%s, \"unfused\" %s=%s\n", model_arg.c_str(),
                  setting.c_str(), fused_value.c_str(), setting.c_str(), unfused_value.c_str());
    const std::string fused_text = fused->describe(), unfused_text = unfused->describe();
    // The int8 sums (QConv steps) apart from the float ones (Conv steps, `_sum=1`: the float
    // residual fusion, AXSTREAM_ENGINE_FLOAT_SUM_POSTOP).
    const std::string qconv = "  axstream.QConv '", conv = "  Conv '";
    const size_t sums = count_on_steps(fused_text, qconv, "sum post-op]");
    const size_t adds = count_of(unfused_text, "axstream.QAdd");
    if (setting == "AXSTREAM_ENGINE_SUM_POSTOP")
      std::printf("%s: %zu of %zu residual adds fused as sum post-ops\n", model_arg.c_str(), sums,
                  adds);
    else
      std::printf("%s: %zu int8 residual adds fused as sum post-ops with %s=%s, %zu with =%s\n",
                  model_arg.c_str(), sums, setting.c_str(), fused_value.c_str(),
                  count_on_steps(unfused_text, qconv, "sum post-op]"), unfused_value.c_str());
    const size_t float_summing = count_on_steps(fused_text, conv, " _sum=1 ");
    if (float_summing > 0 || count_on_steps(unfused_text, conv, " _sum=1 ") > 0)
      std::printf(
          "%s: float residual adds: %zu fused as sum post-ops, %zu followed by the engine's add "
          "(%zu and %zu with %s=%s)\n",
          model_arg.c_str(), count_on_steps(fused_text, conv, "+ sum post-op]"),
          float_summing - count_on_steps(fused_text, conv, "+ sum post-op]"),
          count_on_steps(unfused_text, conv, "+ sum post-op]"),
          count_on_steps(unfused_text, conv, " _sum=1 ") -
              count_on_steps(unfused_text, conv, "+ sum post-op]"),
          setting.c_str(), unfused_value.c_str());
    // The post-op chain each fused convolution runs, "(<chain>) + sum post-op]" in its line.
    std::map<std::string, int> chains;
    for (size_t end = 0; (end = fused_text.find(") + sum post-op]", end)) != std::string::npos;
         ++end) {
      const size_t open = fused_text.rfind('(', end);
      if (open != std::string::npos) ++chains[fused_text.substr(open + 1, end - open - 1)];
    }
    for (const auto &[chain, n] : chains) std::printf("  %dx post-ops: %s\n", n, chain.c_str());
    // The convolutions that take a residual add (as a sum post-op, or followed by the engine's
    // own add where their kernel is not one checked for the sum post-op) and how many of them
    // run, in the unfused program, a kernel checked for it: those must fuse.
    const auto [summing, checked] = engine::count_residual_sums(fused_text, unfused_text);
    if (summing > 0)
      std::printf(
          "  %zu of %zu summing convolutions run a kernel checked for the sum post-op, the "
          "same with it\n",
          checked, summing);
    if (require_fused && checked == 0)
      std::printf(
          "  --require-fused: none to require here (no summing convolution runs a kernel checked "
          "for the sum post-op, the same with it): outputs compared only\n");
    if (require_fused && checked > 0 && sums == 0) {
      std::fprintf(stderr,
                   "sum-postop-compare: %s: no residual add fused, though %zu run a kernel "
                   "checked for the sum post-op (--require-fused)\n",
                   model_arg.c_str(), checked);
      return 1;
    }

    const auto &in_descs = fused->inputs();
    const auto &out_descs = fused->outputs();
    std::vector<Inputs> samples;
    std::mt19937 rng(static_cast<uint32_t>(seed));
    for (long r = 0; r < random_count; ++r) samples.push_back(random_inputs(in_descs, rng));
    const size_t random_samples = samples.size();
    for (const auto &path : files) {
      if (is_video(path)) {
        cv::VideoCapture video(path);
        if (!video.isOpened()) throw InvalidArgument("video '" + path + "': OpenCV cannot open it");
        cv::Mat frame;
        for (long index = 0; video.read(frame); ++index)
          if (index % frame_step == 0) samples.push_back({image_input(*package, frame)});
      } else {
        cv::Mat image = cv::imread(path, cv::IMREAD_COLOR);
        if (image.empty()) throw InvalidArgument("image '" + path + "': OpenCV cannot read it");
        samples.push_back({image_input(*package, image)});
      }
    }
    for (const auto &sample : samples)
      for (size_t i = 0; i < sample.size(); ++i)
        if (sample[i].size() != in_descs[i].byte_size())
          throw InvalidArgument("input " + std::to_string(i) + " of '" + model_arg + "': made " +
                                std::to_string(sample[i].size()) + " bytes, the model takes " +
                                std::to_string(in_descs[i].byte_size()));

    auto fused_exec = fused->make_executor(), unfused_exec = unfused->make_executor();
    std::vector<std::vector<uint8_t>> fused_out, unfused_out;
    std::vector<void *> fused_ptrs, unfused_ptrs;
    for (const auto &d : out_descs) {
      fused_out.emplace_back(d.byte_size(), 0xAA);
      unfused_out.emplace_back(d.byte_size(), 0x55);
    }
    for (size_t i = 0; i < out_descs.size(); ++i) {
      fused_ptrs.push_back(fused_out[i].data());
      unfused_ptrs.push_back(unfused_out[i].data());
    }
    auto pointers = [](const Inputs &in) {
      std::vector<const void *> p;
      for (const auto &b : in) p.push_back(b.data());
      return p;
    };
    size_t elements = 0, differing = 0;
    long max_steps = 0;
    for (const auto &sample : samples) {
      const auto in = pointers(sample);
      fused_exec->run(in, fused_ptrs);
      unfused_exec->run(in, unfused_ptrs);
      for (size_t i = 0; i < out_descs.size(); ++i) {
        const DType t = out_descs[i].dtype;
        const size_t size = engine::dtype_size(t);
        for (size_t e = 0; e < out_descs[i].element_count(); ++e) {
          ++elements;
          const uint8_t *f = &fused_out[i][e * size], *u = &unfused_out[i][e * size];
          if (std::memcmp(f, u, size) == 0) continue;
          ++differing;
          if (t == DType::i8)
            max_steps = std::max<long>(max_steps, std::abs(int(int8_t(*f)) - int(int8_t(*u))));
          else if (t == DType::u8)
            max_steps = std::max<long>(max_steps, std::abs(int(*f) - int(*u)));
        }
      }
    }
    std::printf(
        "outputs: %zu inputs (%zu random, %zu from files), %zu output elements, %zu "
        "differ",
        samples.size(), random_samples, samples.size() - random_samples, elements, differing);
    if (differing) std::printf(" (max %ld steps in int8 outputs)", max_steps);
    std::printf("\n");

    if (rounds > 0) {
      // Alternated, each round starting with the other side, so that load changes on a shared
      // machine reach both; process CPU time, since wall time mostly measures waiting for a core.
      std::vector<double> fused_ms, unfused_ms, paired;
      // Held by name: the pointers must not outlive the buffers they point into.
      const Inputs timed = samples.empty() ? random_inputs(in_descs, rng) : samples[0];
      const auto in = pointers(timed);
      fused_exec->run(in, fused_ptrs);  // warm-up
      unfused_exec->run(in, unfused_ptrs);
      auto time_side = [&](engine::Executor &exec, std::vector<void *> &out) {
        const double start = cpu_ms();
        for (long k = 0; k < runs; ++k) exec.run(in, out);
        return (cpu_ms() - start) / static_cast<double>(runs);
      };
      for (long r = 0; r < rounds; ++r) {
        double f = 0, u = 0;
        if (r % 2 == 0) {
          f = time_side(*fused_exec, fused_ptrs);
          u = time_side(*unfused_exec, unfused_ptrs);
        } else {
          u = time_side(*unfused_exec, unfused_ptrs);
          f = time_side(*fused_exec, fused_ptrs);
        }
        fused_ms.push_back(f);
        unfused_ms.push_back(u);
        paired.push_back(f - u);
      }
      auto list = [](const std::vector<double> &v) {
        std::string s;
        for (double x : v) s += (s.empty() ? "" : ", ") + std::to_string(x).substr(0, 5);
        return s;
      };
      std::printf(
          "CPU ms per inference (%ld rounds x %ld runs, %ld thread(s), alternated): fused "
          "%.3f (%s), unfused %.3f (%s); fused - unfused paired median %+.3f\n",
          rounds, runs, threads, median(fused_ms), list(fused_ms).c_str(), median(unfused_ms),
          list(unfused_ms).c_str(), median(paired));
    }
    if (differing) {
      std::fprintf(stderr,
                   "sum-postop-compare: %s: %zu of %zu output elements differ fused vs "
                   "unfused\n",
                   model_arg.c_str(), differing, elements);
      return 1;
    }
  } catch (const Error &error) {
    std::fprintf(stderr, "sum-postop-compare: %s: %s\n", model_arg.c_str(), error.what());
    return 1;
  } catch (const cv::Exception &error) {
    std::fprintf(stderr, "sum-postop-compare: %s: OpenCV: %s\n", model_arg.c_str(), error.what());
    return 1;
  }
  return 0;
}
