// The transposing QuantizeLinear (NCHW float -> NHWC int8) and DequantizeLinear (NHWC int8 ->
// NCHW float) kernels on each path this CPU runs, at the shapes BlazeFace and YOLOv5s give them,
// against plain passes over the same bytes measured in the same run: memcpy of the float tensor
// plus memcpy of the int8 one (what any layout costs at least), and the same arithmetic without
// the transpose (NCHW to NCHW, the loop vectorised by the compiler for AVX-512 where the CPU has
// it).
//
//   bench_nhwc_quantize [repetitions]     (default 300; one core, median µs per call)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ops/nhwc_quantize.h"

namespace {

using axstream::engine::NhwcQuantPath;

template <typename F>
double median_us(int repetitions, F &&run) {
  std::vector<double> us;
  run();  // warm the caches and page tables
  for (int r = 0; r < repetitions; ++r) {
    auto start = std::chrono::steady_clock::now();
    run();
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  std::nth_element(us.begin(), us.begin() + us.size() / 2, us.end());
  return us[us.size() / 2];
}

// The plain (de)quantisation: element i to element i.
template <typename Q>
void quantize_plain(const float *x, Q *y, int64_t n,
                    const axstream::engine::PerTensorQuantizer<Q> &q) {
  for (int64_t i = 0; i < n; ++i) y[i] = q(x[i]);
}
template <typename Q>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void quantize_plain_avx512(
    const float *x, Q *y, int64_t n, const axstream::engine::PerTensorQuantizer<Q> &q) {
  for (int64_t i = 0; i < n; ++i) y[i] = q(x[i]);
}
template <typename T>
void dequantize_plain(const T *x, float *y, int64_t n, float scale, int32_t zero) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = static_cast<float>(static_cast<int32_t>(x[i]) - zero) * scale;
}
template <typename T>
__attribute__((target("avx512f,avx512bw,avx512vl"))) void dequantize_plain_avx512(
    const T *x, float *y, int64_t n, float scale, int32_t zero) {
  for (int64_t i = 0; i < n; ++i)
    y[i] = static_cast<float>(static_cast<int32_t>(x[i]) - zero) * scale;
}

struct Case {
  const char *from;  // the model whose Q/DQ has this shape
  int64_t c, h, w;
};

}  // namespace

int main(int argc, char **argv) {
  using namespace axstream::engine;
  int repetitions = 300;
  if (argc > 2 || (argc == 2 && (repetitions = std::atoi(argv[1])) < 1)) {
    std::fprintf(stderr, "usage: %s [repetitions, at least 1]\n", argv[0]);
    return 2;
  }
  const Case cases[] = {
      {"blazeface-back", 24, 64, 64}, {"blazeface-back", 48, 32, 32}, {"blazeface", 96, 8, 8},
      {"yolov5s", 64, 80, 80},        {"yolov5s", 128, 40, 40},       {"yolov5s", 255, 80, 80},
      {"yolov5s", 256, 20, 20},       {"yolov5s", 512, 40, 40},
  };
  std::vector<NhwcQuantPath> paths;
  for (NhwcQuantPath p : {NhwcQuantPath::sse2, NhwcQuantPath::avx512})
    if (nhwc_quant_path_supported(p)) paths.push_back(p);
  std::mt19937 random(7);
  const bool avx512 = nhwc_quant_path_supported(NhwcQuantPath::avx512);
  std::printf(
      "# median µs per call over %d calls, 1 core; memcpy = of both tensors, plain = the same "
      "arithmetic NCHW -> NCHW%s\n",
      repetitions, avx512 ? " (AVX-512)" : "");
  for (const Case &c : cases) {
    const NhwcQuantShape shape{1, c.c, c.h * c.w};
    const int64_t n = c.c * c.h * c.w;
    std::vector<float> real(n), real_copy(n);
    std::vector<int8_t> q(n), q_copy(n);
    std::normal_distribution<float> values(0.f, 3.f);
    for (float &v : real) v = values(random);
    for (int8_t &v : q) v = static_cast<int8_t>(random());
    const PerTensorQuantizer<int8_t> quantizer(0.05f, 3);
    const double baseline = median_us(repetitions, [&] {
      std::memcpy(real_copy.data(), real.data(), n * sizeof(float));
      std::memcpy(q_copy.data(), q.data(), n);
    });
    for (const char *direction : {"quantize", "dequantize"}) {
      const bool quantizing = direction[0] == 'q';
      const double plain = median_us(repetitions, [&] {
        if (quantizing && avx512)
          quantize_plain_avx512(real.data(), q_copy.data(), n, quantizer);
        else if (quantizing)
          quantize_plain(real.data(), q_copy.data(), n, quantizer);
        else if (avx512)
          dequantize_plain_avx512(q.data(), real_copy.data(), n, 0.05f, 3);
        else
          dequantize_plain(q.data(), real_copy.data(), n, 0.05f, 3);
      });
      std::string figures;
      for (NhwcQuantPath p : paths) {
        const double us = median_us(repetitions, [&] {
          if (quantizing)
            quantize_nchw_to_nhwc(real.data(), q_copy.data(), shape, quantizer, p);
          else
            dequantize_nhwc_to_nchw(q.data(), real_copy.data(), shape, 0.05f, 3, p);
        });
        char text[96];
        std::snprintf(text, sizeof text, "  %s %7.1f µs (%.2fx plain)", nhwc_quant_path_name(p), us,
                      us / plain);
        figures += text;
      }
      std::printf("%-10s %-14s C=%-3lld HxW=%lldx%-3lld memcpy %6.1f µs plain %6.1f µs%s\n",
                  direction, c.from, static_cast<long long>(c.c), static_cast<long long>(c.h),
                  static_cast<long long>(c.w), baseline, plain, figures.c_str());
    }
  }
  return 0;
}
