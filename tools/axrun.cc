// axrun: runs a model package (through the runtime on simulated AIPU cores) or an ONNX model
// (through the engine directly) for a number of iterations after a warm-up, and prints
// inferences/s, p50/p99 latency and the utilisation of each core, for each core count asked.
//
//   axrun MODEL [--iterations N] [--warmup N] [--cores 1,2,4] [--print-graph]
//
// MODEL is a package directory (with model.json) or a .onnx file. With C cores, a package runs
// as C one-core instances of one C-core connection, each fed by its own thread; an ONNX model
// runs as C one-thread executors of one compiled program, each on its own thread. A core's
// utilisation is the CPU time of the thread that does its work (the device's core worker for a
// package, the feeding thread for ONNX) over the wall time of the measurement.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "axstream/error.h"
#include "axstream/runtime/engine.h"
#include "axstream/runtime/runtime.h"

namespace {

namespace eng = axstream::engine;
namespace rt = axstream::runtime;
using Clock = std::chrono::steady_clock;

struct Options {
  std::string model;
  int iterations = 50;
  int warmup = 3;
  std::vector<int> cores = {1, 2, 4};
  bool print_graph = false;
};

// With a reason: on stderr, exit 2 (a bad command line); for --help: on stdout, exit 0.
[[noreturn]] void usage(const char *why) {
  if (why) std::fprintf(stderr, "axrun: %s\n", why);
  std::fprintf(why ? stderr : stdout,
               "usage: axrun MODEL [--iterations N] [--warmup N] [--cores 1,2,4] [--print-graph]\n"
               "  MODEL          a model package directory (model.json) or an .onnx file\n"
               "  --iterations N measured inferences per core (default 50; also -n N)\n"
               "  --warmup N     unmeasured inferences per core first (default 3)\n"
               "  --cores LIST   core counts to run, each 1..64 (default 1,2,4); a package\n"
               "                 needs a device with that many sub-devices (4 by default,\n"
               "                 AXSTREAM_SIM_SUBDEVICES up to 16)\n"
               "  --print-graph  print the optimised graph the engine runs (as "
               "AXSTREAM_PRINT_GRAPH=1)\n");
  std::exit(why ? 2 : 0);
}

int parse_positive(const std::string &flag, const std::string &text, int lo, int hi) {
  char *end = nullptr;
  long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end || v < lo || v > hi)
    usage((flag + " expects an integer in " + std::to_string(lo) + ".." + std::to_string(hi) +
           ", got '" + text + "'")
              .c_str());
  return static_cast<int>(v);
}

Options parse(int argc, char **argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage((a + " needs a value").c_str());
      return argv[++i];
    };
    if (a == "--iterations" || a == "-n") {
      o.iterations = parse_positive(a, value(), 1, 1000000);
    } else if (a == "--warmup") {
      o.warmup = parse_positive(a, value(), 0, 1000000);
    } else if (a == "--cores") {
      o.cores.clear();
      std::stringstream list(value());
      for (std::string item; std::getline(list, item, ',');)
        // The device decides how many cores a package may use (device_connect names the
        // largest); 64 only bounds the threads.
        o.cores.push_back(parse_positive("--cores", item, 1, 64));
      if (o.cores.empty()) usage("--cores needs at least one count");
    } else if (a == "--print-graph") {
      o.print_graph = true;
    } else if (a == "-h" || a == "--help") {
      usage(nullptr);
    } else if (!a.empty() && a[0] == '-') {
      usage(("unknown option " + a).c_str());
    } else if (o.model.empty()) {
      o.model = a;
    } else {
      usage(("more than one MODEL: '" + o.model + "' and '" + a + "'").c_str());
    }
  }
  if (o.model.empty()) usage("MODEL is missing");
  return o;
}

// Per-thread CPU seconds of this process's threads, by thread id, with their names.
struct ThreadTimes {
  std::map<int, std::pair<std::string, double>> by_tid;
};

ThreadTimes read_thread_times() {
  ThreadTimes t;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  DIR *dir = opendir("/proc/self/task");
  if (!dir) return t;
  while (dirent *e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::string base = std::string("/proc/self/task/") + e->d_name;
    std::ifstream stat(base + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // Fields after the ")" closing the name: state is field 3, utime 14, stime 15.
    size_t close = line.rfind(')');
    std::string name = line.substr(line.find('(') + 1, close - line.find('(') - 1);
    std::istringstream rest(line.substr(close + 2));
    std::vector<std::string> fields;
    for (std::string f; rest >> f;) fields.push_back(f);
    if (fields.size() < 13) continue;
    double cpu = (std::stod(fields[11]) + std::stod(fields[12])) / tick;
    // schedstat's first field is the time on a CPU in ns: finer than stat's clock ticks.
    std::ifstream schedstat(base + "/schedstat");
    double on_cpu_ns = 0;
    if (schedstat >> on_cpu_ns) cpu = on_cpu_ns * 1e-9;
    t.by_tid[std::atoi(e->d_name)] = {name, cpu};
  }
  closedir(dir);
  return t;
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Result {
  double wall_s = 0;
  std::vector<double> latencies_ms;
  std::vector<std::pair<std::string, double>> core_busy_s;  // per core: label, CPU seconds
};

void report(int cores, const Result &r) {
  std::vector<double> ms = r.latencies_ms;
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) {
    return ms[std::min(ms.size() - 1, static_cast<size_t>(p * static_cast<double>(ms.size())))];
  };
  std::printf(
      "cores=%d: %.2f inferences/s, latency p50 %.2f ms, p99 %.2f ms (%zu runs); "
      "utilisation:",
      cores, static_cast<double>(ms.size()) / r.wall_s, pct(0.5), pct(0.99), ms.size());
  for (const auto &[label, busy] : r.core_busy_s)
    std::printf(" %s %.0f%%", label.c_str(), 100.0 * busy / r.wall_s);
  std::printf("\n");
  std::fflush(stdout);
}

// Runs make_runner(core)() on `cores` threads: first opts.warmup unmeasured runs, then
// opts.iterations timed ones, all threads starting the timed part together.
Result run_threads(const Options &opts, int cores,
                   const std::function<std::function<void()>(int)> &make_runner,
                   std::vector<double> *thread_cpu, const std::function<void()> &on_start = {}) {
  std::vector<std::function<void()>> runners;
  for (int c = 0; c < cores; ++c) runners.push_back(make_runner(c));
  std::mutex mutex;
  std::vector<double> latencies;
  int ready = 0;
  std::condition_variable all_ready;
  Clock::time_point start;
  thread_cpu->assign(static_cast<size_t>(cores), 0.0);
  std::vector<std::thread> threads;
  for (int c = 0; c < cores; ++c)
    threads.emplace_back([&, c] {
      std::string name = "axrun-feed-" + std::to_string(c);
      pthread_setname_np(pthread_self(), name.c_str());
      for (int i = 0; i < opts.warmup; ++i) runners[c]();
      {
        std::unique_lock lock(mutex);
        if (++ready == cores) {
          if (on_start) on_start();
          start = Clock::now();
          all_ready.notify_all();
        } else {
          all_ready.wait(lock, [&] { return ready == cores; });
        }
      }
      double cpu0 = thread_cpu_seconds();
      std::vector<double> ms;
      for (int i = 0; i < opts.iterations; ++i) {
        auto t0 = Clock::now();
        runners[c]();
        ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      }
      std::lock_guard lock(mutex);
      (*thread_cpu)[c] = thread_cpu_seconds() - cpu0;
      latencies.insert(latencies.end(), ms.begin(), ms.end());
    });
  for (auto &t : threads) t.join();
  Result r;
  r.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
  r.latencies_ms = std::move(latencies);
  return r;
}

std::vector<uint8_t> random_bytes(size_t n, bool float_values, uint32_t seed) {
  std::vector<uint8_t> b(n);
  std::mt19937 rng(seed);
  if (float_values) {
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    for (size_t i = 0; i + 4 <= n; i += 4) {
      float v = dist(rng);
      std::memcpy(&b[i], &v, 4);
    }
  } else {
    for (auto &v : b) v = static_cast<uint8_t>(rng());
  }
  return b;
}

void run_onnx(const Options &opts) {
  eng::CompileOptions co;
  co.threads = 1;
  co.print_graph = opts.print_graph;
  auto program = eng::Program::from_file(opts.model, co);
  std::printf(
      "axrun: %s (ONNX through the engine), %.2f MMAC per inference, %d warm-up + %d "
      "timed runs per core\n",
      opts.model.c_str(), static_cast<double>(program->macs()) * 1e-6, opts.warmup,
      opts.iterations);
  for (int cores : opts.cores) {
    std::vector<double> cpu;
    Result r = run_threads(
        opts, cores,
        [&](int c) -> std::function<void()> {
          auto exec = std::shared_ptr<eng::Executor>(program->make_executor());
          auto in = std::make_shared<std::vector<std::vector<uint8_t>>>();
          auto out = std::make_shared<std::vector<std::vector<uint8_t>>>();
          auto ins = std::make_shared<std::vector<const void *>>();
          auto outs = std::make_shared<std::vector<void *>>();
          for (const auto &d : program->inputs()) {
            in->push_back(random_bytes(d.element_count() * eng::dtype_size(d.dtype),
                                       d.dtype == eng::DType::f32, 7u + c));
            ins->push_back(in->back().data());
          }
          for (const auto &d : program->outputs()) {
            out->emplace_back(d.element_count() * eng::dtype_size(d.dtype));
            outs->push_back(out->back().data());
          }
          return [exec, in, out, ins, outs] { exec->run(*ins, *outs); };
        },
        &cpu);
    for (int c = 0; c < cores; ++c) r.core_busy_s.push_back({"core" + std::to_string(c), cpu[c]});
    report(cores, r);
  }
}

void run_package(const Options &opts) {
  if (opts.print_graph) setenv("AXSTREAM_PRINT_GRAPH", "1", 1);
  auto ctx = rt::Context::create();
  auto model = ctx->load_model(opts.model);
  int max_cores = *std::max_element(opts.cores.begin(), opts.cores.end());
  auto conn = ctx->device_connect(nullptr, max_cores);
  std::printf("axrun: package %s on %s, %d warm-up + %d timed runs per core\n", opts.model.c_str(),
              conn->describe().c_str(), opts.warmup, opts.iterations);
  for (int cores : opts.cores) {
    std::vector<std::shared_ptr<rt::ModelInstance>> instances;
    for (int c = 0; c < cores; ++c)
      instances.push_back(conn->load_model_instance(model, rt::Properties{{"aipu_cores", "1"}}));
    ThreadTimes before;
    std::vector<double> feed_cpu;
    Result r = run_threads(
        opts, cores,
        [&](int c) -> std::function<void()> {
          auto inst = instances[static_cast<size_t>(c)];
          auto in = std::make_shared<std::vector<std::vector<uint8_t>>>();
          auto out = std::make_shared<std::vector<std::vector<uint8_t>>>();
          auto ia = std::make_shared<std::vector<rt::Argument>>();
          auto oa = std::make_shared<std::vector<rt::Argument>>();
          for (const auto &t : model->inputs()) {
            in->push_back(random_bytes(t.size(), false, 11u + c));
            ia->push_back({in->back().data(), -1, 0, t.size()});
          }
          for (const auto &t : model->outputs()) {
            out->emplace_back(t.size());
            oa->push_back({out->back().data(), -1, 0, t.size()});
          }
          return [inst, in, out, ia, oa] { inst->run(*ia, *oa); };
        },
        &feed_cpu, [&] { before = read_thread_times(); });
    // The device's core workers (threads named axcore-...) do the inference work.
    ThreadTimes after = read_thread_times();
    for (const auto &[tid, entry] : after.by_tid) {
      if (entry.first.rfind("axcore", 0) != 0) continue;
      auto it = before.by_tid.find(tid);
      double busy = entry.second - (it == before.by_tid.end() ? 0.0 : it->second.second);
      r.core_busy_s.push_back({entry.first, busy});
    }
    report(cores, r);
    for (auto &i : instances) i->release();
  }
  conn->release();
}

}  // namespace

int main(int argc, char **argv) {
  Options opts = parse(argc, argv);
  try {
    struct stat st {};
    if (stat(opts.model.c_str(), &st) != 0) {
      std::fprintf(stderr, "axrun: %s: no such file or directory\n", opts.model.c_str());
      return 1;
    }
    if (S_ISDIR(st.st_mode))
      run_package(opts);
    else
      run_onnx(opts);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "axrun: %s\n", e.what());
    return 1;
  }
  return 0;
}
