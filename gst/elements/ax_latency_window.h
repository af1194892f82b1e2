// The inference latency axinference reports to a live pipeline: the longest of its recent runs,
// not counting the first (warm-up) run, and when that grew beyond what was last reported.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <vector>

namespace axstream::gst {

// Not thread-safe: axinference calls it with its state mutex held.
class LatencyWindow {
 public:
  // `window` runs are remembered; a slow run stops counting `window` runs later.
  explicit LatencyWindow(size_t window = 64) : window_(std::max<size_t>(window, 1)) {}

  // Records one run. The first run after construction or reset() is the warm-up (first touch
  // of the model's memory, the device's own set-up) and is not counted. Returns true when the
  // steady latency now exceeds the last one reported and no growth was announced since: the
  // caller then posts a latency message (once, until the next report()).
  bool record(std::chrono::nanoseconds took) {
    if (!warmed_up_) {
      warmed_up_ = true;
      return false;
    }
    if (runs_.size() < window_)
      runs_.push_back(took);
    else
      runs_[next_] = took;
    next_ = (next_ + 1) % window_;
    if (announced_ || steady() <= reported_) return false;
    announced_ = true;
    return true;
  }

  // The longest counted run in the window; 0 before any run after the warm-up.
  std::chrono::nanoseconds steady() const {
    std::chrono::nanoseconds longest{0};
    for (const auto &run : runs_) longest = std::max(longest, run);
    return longest;
  }

  // steady(), remembered as what the pipeline was told (answering a latency query).
  std::chrono::nanoseconds report() {
    reported_ = steady();
    announced_ = false;
    return reported_;
  }

  void reset() { *this = LatencyWindow(window_); }

 private:
  size_t window_;
  std::vector<std::chrono::nanoseconds> runs_;
  size_t next_ = 0;  // slot the next run overwrites once the window is full
  bool warmed_up_ = false;
  bool announced_ = false;
  std::chrono::nanoseconds reported_{0};
};

}  // namespace axstream::gst
