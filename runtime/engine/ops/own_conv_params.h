// What the engine's own NHWC int8 convolution kernels (depthwise_int8.h, stem_int8.h) share: the
// geometry and the requantisation that give oneDNN's bytes for the same convolution, and the
// geometry as their plans hold it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../parallel.h"
#include "../tensor.h"

namespace axstream::engine {

struct OwnConvParams {
  int64_t batch = 1, in_h = 0, in_w = 0, out_h = 0, out_w = 0;
  int64_t kernel_h = 0, kernel_w = 0, stride_h = 1, stride_w = 1, pad_top = 0, pad_left = 0;
  DType src_dtype = DType::u8, dst_dtype = DType::u8;
  int32_t src_zero_point = 0, dst_zero_point = 0;
  // As DnnlQConvParams::rounds_as_int8_zero_point: z added, then -z, in float before rounding.
  int32_t rounds_as_int8_zero_point = 0;
  // y = saturate(round(clamp((float(acc) + bias_acc[c]) * output_scales[c], act_lo, act_hi)
  //                    [+ z - z] + dst_zero_point)), each operation rounded as oneDNN's is.
  std::vector<float> output_scales, bias_acc;
  float act_lo = -INFINITY, act_hi = INFINITY;
};

// The geometry in a kernel's plan, under the short names its loops use.
struct PlanGeometry {
  int64_t batch = 0, in_h = 0, in_w = 0, out_h = 0, out_w = 0, kh = 0, kw = 0, sh = 0, sw = 0;
  int64_t pad_top = 0, pad_left = 0;
};

inline PlanGeometry plan_geometry(const OwnConvParams &d) {
  return {d.batch,    d.in_h,     d.in_w,     d.out_h,   d.out_w,   d.kernel_h,
          d.kernel_w, d.stride_h, d.stride_w, d.pad_top, d.pad_left};
}

// Runs fn(thread, begin, end) over [0, count), split in whole `grain`s over the team the
// compile's `threads` allow where a kernel of `macs` multiply-adds is worth splitting; else once
// on the caller's thread (thread 0).
template <class Fn>
void split_own_kernel(int64_t count, int64_t grain, uint64_t macs, int threads, const Fn &fn) {
  const int team = worth_splitting(static_cast<int64_t>(macs), 262144)
                       ? std::min<int>(threads, omp_get_max_threads())
                       : 1;
  if (team <= 1 || count < 2) {
    fn(0, int64_t{0}, count);
    return;
  }
#pragma omp parallel num_threads(team)
  {
    const int t = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t grains = (count + grain - 1) / grain;
    fn(t, std::min(count, grains * t / n * grain), std::min(count, grains * (t + 1) / n * grain));
  }
}

}  // namespace axstream::engine
