// Shared helpers of the benchmark programs: timing loops, percentiles, one-line reports.
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

namespace axstream::bench {

using Clock = std::chrono::steady_clock;

// Seconds each measured side runs (after warm-up): AXSTREAM_BENCH_SECONDS, default 3.
inline double seconds_per_case() {
  const char *v = std::getenv("AXSTREAM_BENCH_SECONDS");
  double s = v ? std::atof(v) : 3.0;
  return s > 0 ? s : 3.0;
}

inline std::string data_dir() {
  if (const char *v = std::getenv("AXSTREAM_DATA_DIR")) return v;
  const char *home = std::getenv("HOME");
  return std::string(home ? home : "/root") + "/.cache/axstream";
}

inline double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

struct Stats {
  size_t runs = 0;
  double per_second = 0;  // runs / wall seconds
  double p50_ms = 0, p99_ms = 0, mean_ms = 0;
  double cpu_ms_per_run = 0;  // process CPU time (all threads) per run
};

// Latencies in ms of `fn` run repeatedly for about `seconds` (at least `min_runs` times).
inline std::vector<double> timed_runs(const std::function<void()> &fn, double seconds,
                                      size_t min_runs = 5) {
  std::vector<double> ms;
  const auto until = Clock::now() + std::chrono::duration<double>(seconds);
  for (;;) {
    auto t0 = Clock::now();
    fn();
    auto t1 = Clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    if (ms.size() >= min_runs && t1 >= until) break;
  }
  return ms;
}

// Stats of the runs `ms` (of every thread), which took `wall` seconds and `cpu` seconds of
// process CPU time.
inline Stats stats_of(std::vector<double> ms, double wall, double cpu) {
  Stats s;
  s.runs = ms.size();
  s.per_second = double(ms.size()) / wall;
  s.cpu_ms_per_run = cpu * 1e3 / double(ms.size());
  double sum = 0;
  for (double v : ms) sum += v;
  s.mean_ms = sum / double(ms.size());
  std::sort(ms.begin(), ms.end());
  s.p50_ms = ms[ms.size() / 2];
  s.p99_ms = ms[std::min(ms.size() - 1, size_t(double(ms.size()) * 0.99))];
  return s;
}

// Runs `fn` `warmup` times, then repeatedly for about `seconds` (at least `min_runs` times).
inline Stats measure(const std::function<void()> &fn, double seconds, int warmup = 2,
                     size_t min_runs = 5) {
  for (int i = 0; i < warmup; ++i) fn();
  const double cpu0 = cpu_seconds();
  const auto start = Clock::now();
  std::vector<double> ms = timed_runs(fn, seconds, min_runs);
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  return stats_of(std::move(ms), wall, cpu_seconds() - cpu0);
}

inline void skip(const std::string &area, const std::string &name, const std::string &why) {
  std::printf("%-10s %-34s SKIPPED: %s\n", area.c_str(), name.c_str(), why.c_str());
  std::fflush(stdout);
}

}  // namespace axstream::bench
