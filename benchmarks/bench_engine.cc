// Engine benchmark: float ONNX models through engine::Program (our f32 path) against OpenCV DNN
// with the same thread count, and int8 packages through the runtime (ModelInstance::run) on 1, 2
// and 4 simulated AIPU cores. One line per case: ours, the baseline of the same run, the ratio.
//
//   bench_engine [--threads 1,2] [--only NAME[,NAME]] [--int8-only]
//
// --int8-only skips the float cases (scripts/bench.sh ort wants the int8 lines only).
//
// Models: $AXSTREAM_BENCH_MODELS (default $AXSTREAM_DATA_DIR/bench) holds float/<name>.onnx and
// pkg/<name>/ from benchmarks/make_bench_models.py + axcompile (scripts/bench.sh makes them);
// the real models come from $AXSTREAM_DATA_DIR (default ~/.cache/axstream) and its models/.
//
//   bench_engine --ceiling resnet50[,yolov5s]
//
// instead compares each int8 package's engine run (1 and 2 one-core instances in parallel) with
// its ceiling: oneDNN's own int8 primitives for the same layers, chained back to back on one
// thread per instance (dnnl_ceiling.h says what the chain holds).
//
//   bench_engine --ceiling-layers resnet50 [--runs 300]
//
// times each primitive of that chain on its own (one thread, thread CPU per run), one line per
// layer named by engine step and node; benchmarks/ceiling_layers.py puts it beside the engine's
// AXSTREAM_ENGINE_PROFILE=steps profile.
//
//   bench_engine --compare-f32 DIR [--only NAME,...]
//
// runs each float model once through our f32 engine on DIR/NAME/input_0.f32 and prints the
// largest difference from DIR/NAME/output_I.f32 (ONNX Runtime's outputs, written by
// benchmarks/bench_ort.mjs --dump-f32): a check that both ran the same model.
#include <omp.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "axstream/runtime/engine.h"
#include "axstream/runtime/model_package.h"
#include "axstream/runtime/runtime.h"
#include "bench_common.h"
#include "compiler.h"
#include "dnnl_ceiling.h"
#include "onnx_import.h"

namespace ab = axstream::bench;
namespace eng = axstream::engine;
namespace rt = axstream::runtime;

namespace {

bool exists(const std::string &path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

std::vector<int> parse_list(const std::string &text) {
  std::vector<int> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stoi(item));
  return out;
}

struct FloatCase {
  std::string name, onnx;
  std::map<std::string, std::vector<int64_t>> input_shapes;  // for dynamic inputs
};

struct PackageCase {
  std::string name, dir;
};

std::string fmt(const ab::Stats &s) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "%8.2f/s p50 %8.2f ms p99 %8.2f ms", s.per_second, s.p50_ms,
                s.p99_ms);
  return buf;
}

void bench_float(const FloatCase &c, int threads, double seconds) {
  const std::string label = c.name + " f32 threads=" + std::to_string(threads);
  if (!exists(c.onnx)) return ab::skip("engine", label, c.onnx + " missing");
  ab::Stats ours, theirs;
  std::string why_ours, why_theirs;
  std::vector<std::vector<float>> in_data;
  std::vector<std::vector<int64_t>> in_shapes;
  try {
    eng::CompileOptions options;
    options.threads = threads;
    options.input_shapes = c.input_shapes;
    auto program = eng::Program::from_file(c.onnx, options);
    auto exec = program->make_executor();
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> uni(0.f, 1.f);
    std::vector<const void *> ins;
    for (const auto &d : program->inputs()) {
      if (d.dtype != eng::DType::f32) throw std::runtime_error("input " + d.name + " is not f32");
      in_data.emplace_back(d.element_count());
      for (float &v : in_data.back()) v = uni(rng);
      in_shapes.push_back(d.shape);
      ins.push_back(in_data.back().data());
    }
    std::vector<std::vector<uint8_t>> out_data;
    std::vector<void *> outs;
    for (const auto &d : program->outputs()) {
      out_data.emplace_back(d.byte_size());
      outs.push_back(out_data.back().data());
    }
    ours = ab::measure([&] { exec->run(ins, outs); }, seconds, 1, 3);
  } catch (const std::exception &e) {
    why_ours = e.what();
  }
  try {
    cv::setNumThreads(threads);
    cv::dnn::Net net = cv::dnn::readNetFromONNX(c.onnx);
    net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
    if (in_data.size() != 1) throw std::runtime_error("benchmark feeds one input only");
    std::vector<int> dims(in_shapes[0].begin(), in_shapes[0].end());
    cv::Mat blob(int(dims.size()), dims.data(), CV_32F, in_data[0].data());
    auto names = net.getUnconnectedOutLayersNames();
    std::vector<cv::Mat> outs;
    theirs = ab::measure(
        [&] {
          net.setInput(blob);
          net.forward(outs, names);
        },
        seconds, 1, 3);
  } catch (const std::exception &e) {
    why_theirs = e.what();
  }
  auto first_line = [](std::string s) { return s.substr(0, s.find('\n')).substr(0, 140); };
  if (!why_ours.empty()) return ab::skip("engine", label, "ours failed: " + first_line(why_ours));
  if (!why_theirs.empty()) {
    std::printf("%-10s %-34s ours %s | opencv-dnn n/a (%s)\n", "engine", label.c_str(),
                fmt(ours).c_str(), first_line(why_theirs).c_str());
    return;
  }
  std::printf("%-10s %-34s ours %s | opencv-dnn %s | ratio %.2fx\n", "engine", label.c_str(),
              fmt(ours).c_str(), fmt(theirs).c_str(), ours.per_second / theirs.per_second);
  std::fflush(stdout);
}

std::vector<float> read_f32(const std::string &path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) throw std::runtime_error("cannot open " + path);
  const std::streamoff bytes = f.tellg();
  if (bytes < 0 || bytes % std::streamoff(sizeof(float)) != 0)
    throw std::runtime_error(path + ": size " + std::to_string(bytes) + " is not whole float32s");
  std::vector<float> values(size_t(bytes) / sizeof(float));
  f.seekg(0);
  f.read(reinterpret_cast<char *>(values.data()), bytes);
  return values;
}

// Our f32 engine (one thread) on ONNX Runtime's input; the largest |ours - ORT| over all outputs.
void compare_f32(const FloatCase &c, const std::string &dir) {
  const std::string label = c.name + " f32 vs onnxruntime";
  const std::string where = dir + "/" + c.name;
  if (!exists(where + "/input_0.f32")) return ab::skip("compare", label, where + " has no dump");
  try {
    eng::CompileOptions options;
    options.threads = 1;
    options.input_shapes = c.input_shapes;
    auto program = eng::Program::from_file(c.onnx, options);
    auto exec = program->make_executor();
    std::vector<std::vector<float>> in_data;
    std::vector<const void *> ins;
    for (size_t i = 0; i < program->inputs().size(); ++i) {
      const auto &d = program->inputs()[i];
      in_data.push_back(read_f32(where + "/input_" + std::to_string(i) + ".f32"));
      if (d.dtype != eng::DType::f32 || in_data.back().size() != d.element_count())
        throw std::runtime_error("input " + d.name + ": expected " +
                                 std::to_string(d.element_count()) + " float32 values, got " +
                                 std::to_string(in_data.back().size()));
      ins.push_back(in_data.back().data());
    }
    std::vector<std::vector<float>> out_data;
    std::vector<void *> outs;
    for (const auto &d : program->outputs()) {
      if (d.dtype != eng::DType::f32) throw std::runtime_error("output " + d.name + " is not f32");
      out_data.emplace_back(d.element_count());
      outs.push_back(out_data.back().data());
    }
    exec->run(ins, outs);
    double max_diff = 0, max_ref = 0;
    size_t count = 0;
    for (size_t i = 0; i < out_data.size(); ++i) {
      std::vector<float> ref = read_f32(where + "/output_" + std::to_string(i) + ".f32");
      if (ref.size() != out_data[i].size())
        throw std::runtime_error("output " + std::to_string(i) + ": ours has " +
                                 std::to_string(out_data[i].size()) + " values, ORT's " +
                                 std::to_string(ref.size()));
      for (size_t k = 0; k < ref.size(); ++k) {
        max_diff = std::max(max_diff, double(std::fabs(out_data[i][k] - ref[k])));
        max_ref = std::max(max_ref, double(std::fabs(ref[k])));
      }
      count += ref.size();
    }
    std::printf(
        "%-10s %-34s max abs diff %.3g (max |ORT output| %.3g) over %zu values, %zu outputs\n",
        "compare", label.c_str(), max_diff, max_ref, count, out_data.size());
    std::fflush(stdout);
  } catch (const std::exception &e) {
    std::string w = e.what();
    ab::skip("compare", label, w.substr(0, w.find('\n')));
  }
}

// `cores` threads, each running its own 1-core instance of a 4-core connection (batch-1 packages
// use one core per instance; several instances run in parallel on different cores).
ab::Stats run_instances(const std::shared_ptr<rt::Connection> &conn,
                        const std::shared_ptr<rt::Model> &model, int cores, double seconds) {
  std::vector<std::shared_ptr<rt::ModelInstance>> instances;
  for (int i = 0; i < cores; ++i)
    instances.push_back(conn->load_model_instance(model, rt::Properties{{"aipu_cores", "1"}}));
  std::mutex mutex;
  std::vector<double> all_ms;
  const double cpu0 = ab::cpu_seconds();
  const auto start = ab::Clock::now();
  std::vector<std::thread> threads;
  for (int i = 0; i < cores; ++i) {
    threads.emplace_back([&, i] {
      pthread_setname_np(pthread_self(), ("bench-core" + std::to_string(i)).c_str());
      auto inst = instances[size_t(i)];
      std::vector<std::vector<int8_t>> in, out;
      std::vector<rt::Argument> ia, oa;
      std::mt19937 rng(uint32_t(11 + i));
      for (const auto &t : model->inputs()) {
        in.emplace_back(t.size());
        for (auto &v : in.back()) v = int8_t(rng());
        ia.push_back({in.back().data(), -1, 0, t.size()});
      }
      for (const auto &t : model->outputs()) {
        out.emplace_back(t.size());
        oa.push_back({out.back().data(), -1, 0, t.size()});
      }
      inst->run(ia, oa);  // warm-up
      std::vector<double> ms = ab::timed_runs([&] { inst->run(ia, oa); }, seconds);
      std::lock_guard lock(mutex);
      all_ms.insert(all_ms.end(), ms.begin(), ms.end());
    });
  }
  for (auto &t : threads) t.join();
  const double wall = std::chrono::duration<double>(ab::Clock::now() - start).count();
  ab::Stats s = ab::stats_of(std::move(all_ms), wall, ab::cpu_seconds() - cpu0);
  for (auto &i : instances) i->release();
  return s;
}

void bench_package(const std::shared_ptr<rt::Context> &ctx, const PackageCase &c,
                   const std::vector<int> &core_counts, double seconds) {
  if (!exists(c.dir + "/model.json"))
    return ab::skip("engine", c.name + " int8", c.dir + "/model.json missing");
  try {
    auto model = ctx->load_model(c.dir);
    auto conn = ctx->device_connect(nullptr, 4);
    ab::Stats one;
    for (int cores : core_counts) {
      ab::Stats s = run_instances(conn, model, cores, seconds);
      if (cores == core_counts.front()) one = s;
      std::string label = c.name + " int8 cores=" + std::to_string(cores);
      std::printf("%-10s %-34s ours %s | int8 cores=%d %8.2f/s | ratio %.2fx (cpu %.2f ms/inf)\n",
                  "engine", label.c_str(), fmt(s).c_str(), core_counts.front(), one.per_second,
                  s.per_second / one.per_second, s.cpu_ms_per_run);
      std::fflush(stdout);
    }
    conn->release();
  } catch (const std::exception &e) {
    std::string w = e.what();
    ab::skip("engine", c.name + " int8", w.substr(0, w.find('\n')));
  }
}

// `instances` threads, each building and running its own single-threaded ceiling chain; all
// start timing together once every chain is built.
ab::Stats run_ceiling(const eng::CompiledGraph &graph, int instances, double seconds,
                      bool with_zero_points, std::string *contents) {
  std::mutex mutex;
  std::condition_variable all_built;
  int built = 0;
  std::vector<double> all_ms;
  double cpu0 = 0;
  ab::Clock::time_point start;
  std::string failure;
  std::vector<std::thread> threads;
  for (int i = 0; i < instances; ++i) {
    threads.emplace_back([&, i] {
      pthread_setname_np(pthread_self(), ("bench-dnnl" + std::to_string(i)).c_str());
      omp_set_num_threads(1);
      std::unique_ptr<ab::DnnlCeiling> chain;
      try {
        chain = ab::DnnlCeiling::build(graph, with_zero_points);
        chain->run();  // warm-up
      } catch (const std::exception &e) {
        std::lock_guard lock(mutex);
        failure = e.what();
      }
      {
        std::unique_lock lock(mutex);
        if (++built == instances) {
          cpu0 = ab::cpu_seconds();
          start = ab::Clock::now();
          all_built.notify_all();
        } else {
          all_built.wait(lock, [&] { return built == instances; });
        }
        if (i == 0 && chain) *contents = chain->contents();
      }
      if (!failure.empty()) return;
      std::vector<double> ms = ab::timed_runs([&] { chain->run(); }, seconds);
      std::lock_guard lock(mutex);
      all_ms.insert(all_ms.end(), ms.begin(), ms.end());
    });
  }
  for (auto &t : threads) t.join();
  if (!failure.empty()) throw std::runtime_error("ceiling chain: " + failure);
  const double wall = std::chrono::duration<double>(ab::Clock::now() - start).count();
  return ab::stats_of(std::move(all_ms), wall, ab::cpu_seconds() - cpu0);
}

// The package's core graph as the engine compiles it (its shapes, fusions and step order).
eng::CompiledGraph compile_core(const std::string &package_dir) {
  auto package = rt::load_model_package(package_dir);
  const std::string path = package->core_graph_path();
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  std::ostringstream bytes;
  bytes << f.rdbuf();
  eng::CompileOptions options;
  options.threads = 1;
  return eng::compile_graph(eng::import_onnx(bytes.str(), path, package_dir, options), options);
}

void bench_ceiling(const std::shared_ptr<rt::Context> &ctx, const PackageCase &c, double seconds) {
  if (!exists(c.dir + "/model.json"))
    return ab::skip("ceiling", c.name + " int8", c.dir + "/model.json missing");
  try {
    eng::CompiledGraph graph = compile_core(c.dir);
    auto model = ctx->load_model(c.dir);
    auto conn = ctx->device_connect(nullptr, 2);  // 2 instances of 1 core
    std::string contents, contents_zp;
    for (int instances : {1, 2}) {
      ab::Stats ceiling = run_ceiling(graph, instances, seconds, false, &contents);
      ab::Stats ceiling_zp = run_ceiling(graph, instances, seconds, true, &contents_zp);
      if (instances == 1)
        std::printf(
            "# ceiling of %s: %s\n# zp ceiling: the same with the package's zero points: %s\n",
            c.name.c_str(), contents.c_str(), contents_zp.c_str());
      ab::Stats ours = run_instances(conn, model, instances, seconds);
      std::string label = c.name + " int8 instances=" + std::to_string(instances);
      std::printf(
          "%-10s %-30s engine %7.2f/s (cpu %6.2f ms/inf) | oneDNN alone %7.2f/s (cpu %6.2f "
          "ms/inf) | engine/ceiling %.2fx wall, %.2fx cpu | zp ceiling %7.2f/s (cpu %6.2f "
          "ms/inf) %.2fx cpu\n",
          "ceiling", label.c_str(), ours.per_second, ours.cpu_ms_per_run, ceiling.per_second,
          ceiling.cpu_ms_per_run, ours.per_second / ceiling.per_second,
          ceiling.cpu_ms_per_run / ours.cpu_ms_per_run, ceiling_zp.per_second,
          ceiling_zp.cpu_ms_per_run, ceiling_zp.cpu_ms_per_run / ours.cpu_ms_per_run);
      std::fflush(stdout);
    }
    conn->release();
  } catch (const std::exception &e) {
    std::string w = e.what();
    ab::skip("ceiling", c.name + " int8", w.substr(0, w.find('\n')));
  }
}

// Each primitive of the chain timed on its own (one thread, `runs` runs of the whole chain),
// one line per layer named by engine step and node as AXSTREAM_ENGINE_PROFILE=steps names
// them, so benchmarks/ceiling_layers.py can put the two side by side.
void bench_ceiling_layers(const PackageCase &c, int runs) {
  if (!exists(c.dir + "/model.json"))
    return ab::skip("ceiling-layers", c.name + " int8", c.dir + "/model.json missing");
  try {
    eng::CompiledGraph graph = compile_core(c.dir);
    omp_set_num_threads(1);
    auto chain = ab::DnnlCeiling::build(graph, false);
    chain->time_layers(std::max(1, runs / 10));  // warm-up
    std::printf("# ceiling layers of %s: %s; %d runs, thread CPU ms per run\n", c.name.c_str(),
                chain->contents().c_str(), runs);
    double total = 0;
    for (const auto &layer : chain->time_layers(runs)) {
      std::printf("ceiling-layer %4zu %s [%s] '%s' %.4f\n", layer.step, layer.op.c_str(),
                  layer.impl.c_str(), layer.label.c_str(), layer.cpu_ms);
      total += layer.cpu_ms;
    }
    std::printf("ceiling-layers %s total %.4f\n", c.name.c_str(), total);
    std::fflush(stdout);
  } catch (const std::exception &e) {
    std::string w = e.what();
    ab::skip("ceiling-layers", c.name + " int8", w.substr(0, w.find('\n')));
  }
}

}  // namespace

int main(int argc, char **argv) {
  std::vector<int> threads = {1};
  std::vector<std::string> only, ceiling, ceiling_layers;
  std::string compare_dir;
  bool int8_only = false;
  int layer_runs = 300;
  const auto usage = [&](FILE *to) {
    std::fprintf(to,
                 "usage: %s [--threads 1,2] [--only NAME,...] [--int8-only] [--ceiling NAME,...] "
                 "[--ceiling-layers NAME,... [--runs N]] [--compare-f32 DIR]\n",
                 argv[0]);
  };
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    } else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
      threads = parse_list(argv[++i]);
    } else if (!std::strcmp(argv[i], "--only") && i + 1 < argc) {
      std::stringstream ss(argv[++i]);
      std::string item;
      while (std::getline(ss, item, ',')) only.push_back(item);
    } else if (!std::strcmp(argv[i], "--ceiling") && i + 1 < argc) {
      std::stringstream ss(argv[++i]);
      std::string item;
      while (std::getline(ss, item, ',')) ceiling.push_back(item);
    } else if (!std::strcmp(argv[i], "--ceiling-layers") && i + 1 < argc) {
      std::stringstream ss(argv[++i]);
      std::string item;
      while (std::getline(ss, item, ',')) ceiling_layers.push_back(item);
    } else if (!std::strcmp(argv[i], "--int8-only")) {
      int8_only = true;
    } else if (!std::strcmp(argv[i], "--compare-f32") && i + 1 < argc) {
      compare_dir = argv[++i];
    } else if (!std::strcmp(argv[i], "--runs") && i + 1 < argc) {
      layer_runs = std::atoi(argv[++i]);
      if (layer_runs < 1) {
        std::fprintf(stderr, "bench_engine: --runs '%s': expected an integer >= 1\n", argv[i]);
        return 2;
      }
    } else {
      usage(stderr);
      return 2;
    }
  }
  auto wanted = [&](const std::string &name) {
    return only.empty() || std::find(only.begin(), only.end(), name) != only.end();
  };
  const std::string data = ab::data_dir();
  const char *bm = std::getenv("AXSTREAM_BENCH_MODELS");
  const std::string bench = bm ? bm : data + "/bench";
  const double seconds = ab::seconds_per_case();

  std::vector<FloatCase> floats = {
      {"resnet50", bench + "/float/resnet50.onnx", {}},
      {"mobilenetv2", bench + "/float/mobilenetv2.onnx", {}},
      {"yolov5s", bench + "/float/yolov5s.onnx", {}},
      {"yolov8n", bench + "/float/yolov8n.onnx", {}},
      {"crnn-lstm", bench + "/float/crnn_lstm.onnx", {}},
      {"deconv2d", bench + "/float/deconv2d.onnx", {}},
      {"deconv3d", bench + "/float/deconv3d.onnx", {}},
      {"blazeface-front",
       data + "/blazeface/package/ONNX/face_detection_front_128x128_barracuda.onnx",
       {}},
      {"blazeface-back",
       data + "/blazeface/package/ONNX/face_detection_back_256x256_barracuda.onnx",
       {}},
      {"ppocr-det",
       data + "/ocr/package/assets/ch_PP-OCRv4_det_infer.onnx",
       {{"x", {1, 3, 640, 640}}}},
      {"ppocr-rec",
       data + "/ocr/package/assets/ch_PP-OCRv4_rec_infer.onnx",
       {{"x", {1, 3, 48, 320}}}},
  };
  std::vector<PackageCase> packages;
  for (const char *n : {"resnet50", "mobilenetv2", "yolov5s", "yolov8n"})
    packages.push_back({n, bench + "/pkg/" + n});
  for (const char *n : {"blazeface-front", "blazeface-back", "ppocr-det", "ppocr-rec"})
    packages.push_back({n, data + "/models/" + n});

  if (!compare_dir.empty()) {
    for (const auto &c : floats)
      if (wanted(c.name)) compare_f32(c, compare_dir);
    return 0;
  }
  if (!ceiling_layers.empty()) {
    for (const auto &name : ceiling_layers)
      bench_ceiling_layers({name, bench + "/pkg/" + name}, layer_runs);
    return 0;
  }
  if (!ceiling.empty()) {
    std::printf(
        "# ceiling: %.1f s per side per case; N instances = N threads in parallel, each a "
        "1-core engine instance or a single-threaded oneDNN chain; cpu = process CPU time per "
        "inference\n",
        seconds);
    auto ctx = rt::Context::create();
    for (const auto &name : ceiling) bench_ceiling(ctx, {name, bench + "/pkg/" + name}, seconds);
    return 0;
  }
  std::printf(
      "# engine: %.1f s per side per case; f32: ours = engine::Program, baseline = OpenCV "
      "DNN %s (cv::setNumThreads = threads); int8: N cores = N 1-core instances in "
      "parallel, baseline = 1 core\n",
      seconds, CV_VERSION);
  // Each float case in its own process: OpenMP/OpenCV thread pools of earlier cases otherwise
  // slow later ones down (seen as a 5-50x order effect).
  for (const auto &c : floats)
    if (wanted(c.name) && !int8_only)
      for (int t : threads) {
        std::fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
          bench_float(c, t, seconds);
          std::fflush(stdout);
          _exit(0);
        }
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
          ab::skip("engine", c.name + " f32",
                   "benchmark process died (status " + std::to_string(status) + ")");
      }
  auto ctx = rt::Context::create();
  for (const auto &c : packages)
    if (wanted(c.name)) bench_package(ctx, c, {1, 2, 4}, seconds);
  return 0;
}
