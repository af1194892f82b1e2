// axrun: runs a model package (through the runtime on simulated AIPU cores) or an ONNX model
// (through the engine directly) for a number of iterations after a warm-up, and prints
// inferences/s, p50/p99 latency and the utilisation of each core, for each core count asked.
//
//   axrun MODEL [--iterations N] [--warmup N] [--cores 1,2,4] [--print-graph] [--quiet]
//
// MODEL is a package directory (with model.json), its model.json, or a .onnx file. With C cores, a
// package runs as C one-core instances of one C-core connection, each fed by its own thread; an
// ONNX model runs as C one-thread executors of one compiled program, each on its own thread. A
// core's utilisation is the CPU time of the thread that does its work (the device's core worker for
// a package, the feeding thread for ONNX) over the wall time of the measurement.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "axstream/error.h"
#include "axstream/runtime/engine.h"
#include "axstream/runtime/model_package.h"
#include "axstream/runtime/runtime.h"
#include "float16.h"  // runtime/engine/, header only
#include "stop_signals.h"

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
  bool quiet = false;
};

using axstream::tools::g_stop_signal;
using axstream::tools::Interrupted;
using axstream::tools::stop_if_signalled;

// With a reason: on stderr, exit 2 (a bad command line); for --help: on stdout, exit 0.
[[noreturn]] void usage(const char *why) {
  if (why) std::fprintf(stderr, "axrun: %s\n", why);
  std::fprintf(why ? stderr : stdout,
               "usage: axrun MODEL [--iterations N] [--warmup N] [--cores 1,2,4] [--print-graph]\n"
               "             [--quiet]\n"
               "  MODEL          a model package directory, its model.json, or an .onnx file\n"
               "  --iterations N measured inferences per core (default 50; also -n N)\n"
               "  --warmup N     unmeasured inferences per core first (default 3)\n"
               "  --cores LIST   core counts to run, each 1..64 (default 1,2,4); a package\n"
               "                 needs a device with that many sub-devices (4 by default,\n"
               "                 AXSTREAM_SIM_SUBDEVICES up to 16)\n"
               "  --print-graph  print the optimised graph the engine runs (as "
               "AXSTREAM_PRINT_GRAPH=1)\n"
               "  --quiet, -q    no progress line on stderr (it shows on a terminal once a\n"
               "                 round takes over a second)\n"
               "  --help, -h     this text\n"
               "Exit status: 0 done, 1 failed (bad model, no device, not enough memory),\n"
               "2 bad command line, 130 interrupted by Ctrl-C (143 by SIGTERM).\n"
               "Example (in the source tree, after ninja -C build):\n"
               "  build/tools/axrun build/tests/data/models/resnet_tiny -n 200 --cores 1,2\n");
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
    } else if (a == "--quiet" || a == "-q") {
      o.quiet = true;
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
  // Owned: std::stod below throws on a malformed line, and the directory must close then too.
  std::unique_ptr<DIR, int (*)(DIR *)> dir(opendir("/proc/self/task"), closedir);
  if (!dir) return t;
  while (dirent *e = readdir(dir.get())) {
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

// batch: the package's batch; a run of a batch-N package infers N inputs, so its line also
// gives inputs/s (the figure to compare with a batch-1 package's inferences/s).
void report(int cores, const Result &r, int batch = 1) {
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
  if (batch > 1)
    std::printf("  batch %d: %.2f inputs/s\n", batch,
                static_cast<double>(ms.size()) * batch / r.wall_s);
  std::fflush(stdout);
}

// The line "axrun: cores=2: 340/1000 runs" on a terminal's stderr, rewritten in place; gone
// again when the round ends (its result line is on stdout).
class ProgressLine {
 public:
  explicit ProgressLine(bool enabled) : enabled_(enabled) {}
  ~ProgressLine() { clear(); }
  void show(int cores, long done, long total) {
    if (!enabled_) return;
    int length = std::fprintf(stderr, "\raxrun: cores=%d: %ld/%ld runs", cores, done, total);
    if (length > 0) width_ = length;
    std::fflush(stderr);
  }
  void clear() {
    if (width_ == 0) return;
    std::fprintf(stderr, "\r%*s\r", width_, "");
    std::fflush(stderr);
    width_ = 0;
  }

 private:
  bool enabled_;
  int width_ = 0;
};

// Runs make_runner(core)() on `cores` threads: first opts.warmup unmeasured runs, then
// opts.iterations timed ones, all threads starting the timed part together. A stop signal ends
// every thread after its current run (the caller then throws Interrupted). The first error of
// any thread (an inference that throws, no memory for the latencies, no thread) stops the others
// the same way and is rethrown here once they have joined: leaving a thread, it had ended axrun
// in std::terminate's abort.
Result run_threads(const Options &opts, int cores,
                   const std::function<std::function<void()>(int)> &make_runner,
                   std::vector<double> *thread_cpu, const std::function<void()> &on_start = {}) {
  std::vector<std::function<void()>> runners;
  for (int c = 0; c < cores; ++c) runners.push_back(make_runner(c));
  std::mutex mutex;
  std::vector<double> latencies;
  int ready = 0, finished = 0;
  std::condition_variable all_ready, one_finished;
  std::atomic<long> runs_done{0};
  std::exception_ptr first_error;
  std::atomic<bool> failed{false};
  auto stopping = [&] { return g_stop_signal.load() != 0 || failed.load(); };
  auto record_error = [&](std::exception_ptr error) {
    std::lock_guard lock(mutex);
    if (!first_error) first_error = std::move(error);
    failed = true;
    all_ready.notify_all();
  };
  Clock::time_point start;
  thread_cpu->assign(static_cast<size_t>(cores), 0.0);
  auto feed = [&](int c) {
    std::vector<double> ms;
    try {
      std::string name = "axrun-feed-" + std::to_string(c);
      pthread_setname_np(pthread_self(), name.c_str());
      ms.reserve(static_cast<size_t>(opts.iterations));
      for (int i = 0; i < opts.warmup && !stopping(); ++i, ++runs_done) runners[c]();
    } catch (...) {
      record_error(std::current_exception());
    }
    {
      std::unique_lock lock(mutex);
      if (++ready == cores) {
        if (on_start) on_start();
        start = Clock::now();
        all_ready.notify_all();
      } else {
        all_ready.wait(lock, [&] { return ready == cores || failed.load(); });
      }
    }
    try {
      double cpu0 = thread_cpu_seconds();
      for (int i = 0; i < opts.iterations && !stopping(); ++i, ++runs_done) {
        auto t0 = Clock::now();
        runners[c]();
        ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      }
      std::lock_guard lock(mutex);
      (*thread_cpu)[c] = thread_cpu_seconds() - cpu0;
      latencies.insert(latencies.end(), ms.begin(), ms.end());
    } catch (...) {
      record_error(std::current_exception());
    }
    std::lock_guard lock(mutex);
    ++finished;
    one_finished.notify_all();
  };
  std::vector<std::thread> threads;
  try {
    threads.reserve(static_cast<size_t>(cores));
    for (int c = 0; c < cores; ++c) threads.emplace_back(feed, c);
  } catch (const std::system_error &e) {  // the threads started stop at the barrier
    record_error(std::make_exception_ptr(
        std::runtime_error("cannot start feeding thread " + std::to_string(threads.size() + 1) +
                           " of " + std::to_string(cores) + ": " + e.what())));
  } catch (...) {
    record_error(std::current_exception());
  }
  // Progress once a round has run for a second, then every half second.
  ProgressLine progress(!opts.quiet && isatty(STDERR_FILENO));
  const long total_runs = static_cast<long>(cores) * (opts.warmup + opts.iterations);
  auto next_report = Clock::now() + std::chrono::seconds(1);
  {
    std::unique_lock lock(mutex);
    const int started = static_cast<int>(threads.size());
    while (!one_finished.wait_until(lock, next_report, [&] { return finished == started; })) {
      progress.show(cores, runs_done.load(), total_runs);
      next_report += std::chrono::milliseconds(500);
    }
  }
  for (auto &t : threads) t.join();
  progress.clear();
  if (first_error) std::rethrow_exception(first_error);
  Result r;
  r.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
  r.latencies_ms = std::move(latencies);
  return r;
}

// "1.0 TiB", "3.0 MiB", "640 bytes".
std::string byte_text(double bytes) {
  static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"};
  size_t unit = 0;
  while (bytes >= 1024 && unit + 1 < std::size(units)) {
    bytes /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", bytes, units[unit]);
  return text;
}

std::string shape_text(const std::vector<int64_t> &shape) {
  std::string text = "(";
  for (size_t d = 0; d < shape.size(); ++d) {
    if (d) text += ',';  // appended apart: GCC 12's -Wrestrict misfires on "," + to_string
    text += std::to_string(shape[d]);
  }
  return text + ")";
}

// One host buffer axrun feeds or fills per core: "input 'x' int8 (1,224,224,4)" and its size.
struct HostBuffer {
  std::string label;
  size_t bytes;
};

// Refuses, before anything is allocated, buffers that cannot fit in the machine's memory: a
// package may declare tensors of terabytes (std::bad_alloc said neither what nor how much), and
// a size just under the memory would have been zero-filled into the out-of-memory killer.
void check_buffers_fit(const std::string &model, const std::vector<HostBuffer> &buffers,
                       int cores) {
  long double per_core = 0;
  const HostBuffer *largest = &buffers.front();
  for (const auto &b : buffers) {
    per_core += static_cast<long double>(b.bytes);
    if (b.bytes > largest->bytes) largest = &b;
  }
  const long double memory = static_cast<long double>(sysconf(_SC_PHYS_PAGES)) *
                             static_cast<long double>(sysconf(_SC_PAGE_SIZE));
  const long double needed = per_core * cores;
  if (memory > 0 && needed > memory)
    throw std::runtime_error(
        model + ": its inputs and outputs need " + byte_text(static_cast<double>(per_core)) +
        " of host buffers per core (" + byte_text(static_cast<double>(needed)) + " for " +
        std::to_string(cores) + " core(s); the largest is " + largest->label + ", " +
        byte_text(static_cast<double>(largest->bytes)) + "): more than this machine's " +
        byte_text(static_cast<double>(memory)) + " of memory");
}

// A zeroed buffer for `buffer`; failing, an error naming the tensor and the size.
std::vector<uint8_t> allocate(const HostBuffer &buffer) {
  try {
    return std::vector<uint8_t>(buffer.bytes);
  } catch (const std::bad_alloc &) {
    throw std::runtime_error("cannot allocate " + byte_text(static_cast<double>(buffer.bytes)) +
                             " (" + std::to_string(buffer.bytes) + " bytes) for " + buffer.label +
                             ": out of memory");
  }
}

// A buffer of random contents: for a float dtype, values uniform in [-1, 1) stored in that type
// (float16/bfloat16 rounded, float64 widened: random bytes there would be NaN and inf patterns
// that no model sees); for any other (the integers, a package's int8 tensors), random bytes.
std::vector<uint8_t> random_bytes(const HostBuffer &buffer, std::optional<eng::DType> dtype,
                                  uint32_t seed) {
  std::vector<uint8_t> b = allocate(buffer);
  const size_t n = b.size();
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  auto fill = [&](size_t size, auto store) {
    for (size_t i = 0; i + size <= n; i += size) store(&b[i], dist(rng));
  };
  switch (dtype.value_or(eng::DType::u8)) {
    case eng::DType::f32:
      fill(4, [](uint8_t *p, float v) { std::memcpy(p, &v, 4); });
      break;
    case eng::DType::f64:
      fill(8, [](uint8_t *p, float v) {
        double d = v;
        std::memcpy(p, &d, 8);
      });
      break;
    case eng::DType::f16:
      fill(2, [](uint8_t *p, float v) {
        uint16_t h = eng::float_to_half(v);
        std::memcpy(p, &h, 2);
      });
      break;
    case eng::DType::bf16:
      fill(2, [](uint8_t *p, float v) {
        uint16_t h = eng::float_to_bfloat16(v);
        std::memcpy(p, &h, 2);
      });
      break;
    default:
      for (auto &v : b) v = static_cast<uint8_t>(rng());
  }
  return b;
}

void run_onnx(const Options &opts) {
  eng::CompileOptions co;
  co.threads = 1;
  co.print_graph = opts.print_graph;
  // NMS inside a detector runs: its output buffer has the upper bound's size, and axrun never
  // reads the outputs.
  co.allow_data_dependent_shapes = true;
  auto program = eng::Program::from_file(opts.model, co);
  std::printf(
      "axrun: %s (ONNX through the engine), %.2f MMAC per inference, %d warm-up + %d "
      "timed runs per core\n",
      opts.model.c_str(), static_cast<double>(program->macs()) * 1e-6, opts.warmup,
      opts.iterations);
  auto buffers = [](const char *kind, const std::vector<eng::TensorDesc> &tensors) {
    std::vector<HostBuffer> host;
    for (const auto &d : tensors)
      host.push_back({std::string(kind) + " '" + d.name + "' " + eng::dtype_name(d.dtype) + " " +
                          shape_text(d.shape),
                      d.byte_size()});
    return host;
  };
  const std::vector<HostBuffer> inputs = buffers("input", program->inputs()),
                                outputs = buffers("output", program->outputs());
  std::vector<HostBuffer> all = inputs;
  all.insert(all.end(), outputs.begin(), outputs.end());
  check_buffers_fit(opts.model, all, *std::max_element(opts.cores.begin(), opts.cores.end()));
  for (int cores : opts.cores) {
    stop_if_signalled();
    std::vector<double> cpu;
    Result r = run_threads(
        opts, cores,
        [&](int c) -> std::function<void()> {
          auto exec = std::shared_ptr<eng::Executor>(program->make_executor());
          auto in = std::make_shared<std::vector<std::vector<uint8_t>>>();
          auto out = std::make_shared<std::vector<std::vector<uint8_t>>>();
          auto ins = std::make_shared<std::vector<const void *>>();
          auto outs = std::make_shared<std::vector<void *>>();
          for (size_t i = 0; i < inputs.size(); ++i) {
            in->push_back(random_bytes(inputs[i], program->inputs()[i].dtype, 7u + c));
            ins->push_back(in->back().data());
          }
          for (const auto &buffer : outputs) {
            out->push_back(allocate(buffer));
            outs->push_back(out->back().data());
          }
          return [exec, in, out, ins, outs] { exec->run(*ins, *outs); };
        },
        &cpu);
    stop_if_signalled();
    for (int c = 0; c < cores; ++c) r.core_busy_s.push_back({"core" + std::to_string(c), cpu[c]});
    report(cores, r);
  }
}

void run_package(const Options &opts) {
  if (opts.print_graph) setenv("AXSTREAM_PRINT_GRAPH", "1", 1);
  auto ctx = rt::Context::create();
  auto model = ctx->load_model(opts.model);
  int max_cores = *std::max_element(opts.cores.begin(), opts.cores.end());
  auto buffers = [](const char *kind, const std::vector<rt::TensorInfo> &tensors) {
    std::vector<HostBuffer> host;
    for (const auto &t : tensors)
      host.push_back({std::string(kind) + " '" + t.name + "' " + eng::dtype_name(t.dtype) + " " +
                          shape_text(t.shape),
                      t.size()});
    return host;
  };
  const std::vector<HostBuffer> inputs = buffers("input", model->inputs()),
                                outputs = buffers("output", model->outputs());
  std::vector<HostBuffer> all = inputs;
  all.insert(all.end(), outputs.begin(), outputs.end());
  check_buffers_fit(opts.model, all, max_cores);
  auto conn = ctx->device_connect(nullptr, max_cores);
  const int batch = model->package()->batch;
  std::printf("axrun: package %s on %s, %d warm-up + %d timed runs per core%s\n",
              opts.model.c_str(), conn->describe().c_str(), opts.warmup, opts.iterations,
              batch > 1 ? ("; batch " + std::to_string(batch) + ": each run infers " +
                           std::to_string(batch) + " inputs (inferences/s counts runs)")
                              .c_str()
                        : "");
  for (int cores : opts.cores) {
    stop_if_signalled();
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
          for (const auto &buffer : inputs) {
            in->push_back(random_bytes(buffer, std::nullopt, 11u + c));
            ia->push_back({in->back().data(), -1, 0, buffer.bytes});
          }
          for (const auto &buffer : outputs) {
            out->push_back(allocate(buffer));
            oa->push_back({out->back().data(), -1, 0, buffer.bytes});
          }
          return [inst, in, out, ia, oa] { inst->run(*ia, *oa); };
        },
        &feed_cpu, [&] { before = read_thread_times(); });
    stop_if_signalled();
    // The device's core workers (threads named axcore-...) do the inference work.
    ThreadTimes after = read_thread_times();
    for (const auto &[tid, entry] : after.by_tid) {
      if (entry.first.rfind("axcore", 0) != 0) continue;
      auto it = before.by_tid.find(tid);
      double busy = entry.second - (it == before.by_tid.end() ? 0.0 : it->second.second);
      r.core_busy_s.push_back({entry.first, busy});
    }
    report(cores, r, batch);
    for (auto &i : instances) i->release();
  }
  conn->release();
}

}  // namespace

int main(int argc, char **argv) {
  Options opts = parse(argc, argv);
  // The first Ctrl-C stops the feeding threads after the inference each is in (instances and
  // connection released, exit 130).
  axstream::tools::stop_on_signals();
  try {
    struct stat st {};
    if (stat(opts.model.c_str(), &st) != 0) {
      std::fprintf(stderr, "axrun: %s: no such file or directory\n", opts.model.c_str());
      return 1;
    }
    // A package is its directory or its model file (a .json, as load_model takes); anything
    // else is an ONNX model run through the engine.
    bool json_file =
        opts.model.size() > 5 && opts.model.compare(opts.model.size() - 5, 5, ".json") == 0;
    if (S_ISDIR(st.st_mode) || json_file)
      run_package(opts);
    else
      run_onnx(opts);
  } catch (const Interrupted &stop) {
    // Every feeding thread has stopped and the instances and connection are released: the
    // device's cores are free again. Rounds that finished were printed; the cut one is not.
    std::fprintf(stderr, "axrun: interrupted by %s: stopped after the inferences in progress\n",
                 axstream::tools::stop_signal_name(stop.signal));
    return 128 + stop.signal;
  } catch (const std::bad_alloc &) {
    // The tensor buffers name themselves (allocate); anything else is the runtime's own memory
    // or the latency records (8 bytes per run).
    std::fprintf(stderr,
                 "axrun: %s: out of memory (not in a tensor buffer: the runtime's own, or %d "
                 "latency records per core; fewer --iterations or --cores need less)\n",
                 opts.model.c_str(), opts.iterations);
    return 1;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "axrun: %s\n", e.what());
    return 1;
  }
  return 0;
}
