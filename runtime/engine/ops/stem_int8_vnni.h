// The AVX-512 VNNI form of the engine's own int8 stem convolution (stem_int8.h), for CPUs
// without AMX: the same convolutions, the same bytes (oneDNN's), by vpdpbusd with the output
// channels in lanes.
#pragma once

#include <omp.h>

#include <algorithm>
#include <memory>
#include <string>

#include "common.h"
#include "stem_int8.h"

namespace axstream::engine {

// The kernel for `p` (which stem_int8.cc's checks admitted) with weights (out_channels,
// in_channels, kernel_h, kernel_w) int8. Needs AVX-512 VNNI (cpu_allows_avx512vnni).
std::unique_ptr<Kernel> make_stem_int8_vnni(const StemInt8Params &p, const Tensor &weights);

// The Kernel of either form: `rows(plan, src, dst, begin, end)` computes output rows [begin,
// end) of the batch, split over the compile's threads; `form` names it in the kernel's impl.
template <class Plan>
std::unique_ptr<Kernel> make_stem_kernel(const StemInt8Params &d, std::shared_ptr<const Plan> plan,
                                         void (*rows)(const Plan &, const uint8_t *, uint8_t *,
                                                      int64_t, int64_t),
                                         const char *form) {
  const int64_t count = d.batch * d.out_h;
  const uint64_t macs = static_cast<uint64_t>(count * d.out_w * d.out_channels * d.in_channels *
                                              d.kernel_h * d.kernel_w);
  const int threads = std::max(1, omp_get_max_threads());
  auto k = make_kernel([plan, rows, count, macs, threads](ExecContext &, const void *const *in,
                                                          void *const *out) {
    const auto *src = static_cast<const uint8_t *>(in[0]);
    auto *dst = static_cast<uint8_t *>(out[0]);
    split_own_kernel(count, 1, macs, threads,
                     [&](int, int64_t begin, int64_t end) { rows(*plan, src, dst, begin, end); });
  });
  k->macs = macs;
  k->impl = "axstream stem int8 " + std::to_string(d.kernel_h) + "x" + std::to_string(d.kernel_w) +
            "/" + std::to_string(d.stride_h) + " (" + form + ")";
  return k;
}

}  // namespace axstream::engine
