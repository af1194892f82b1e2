// One core's peak multiply-accumulate rate for int8 (AVX-512 VNNI vpdpbusd) and float32 (FMA),
// at 512 and 256 bits: the hardware bound on what an int8 engine can gain over a float32 one, and
// over another int8 one, on a compute-bound model (docs/performance.md, "AMD EPYC host").
//
//   bench_isa_peak [seconds per case, default 1]
//
// Each case runs twelve independent accumulator chains (more than latency x throughput on the
// CPUs we know), so the loop is bound by the units' throughput, not by a chain's latency.
#include <immintrin.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kChains = 12;
constexpr long kInner = 1 << 16;

// MACs per instruction: vpdpbusd multiplies 4 byte pairs per 32-bit lane; an FMA one per lane.
template <class Body>
double rate(double seconds, double macs_per_instruction, Body body) {
  long rounds = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  do {
    body();
    ++rounds;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < seconds);
  return rounds * double(kInner) * kChains * macs_per_instruction / elapsed;
}

template <class V>
void keep(const V *acc) {
  // The accumulators leave through memory the compiler must assume is read, so the loop stays.
  asm volatile("" : : "r"(acc) : "memory");
}

__attribute__((target("avx512f,avx512vnni"))) void vnni512() {
  __m512i acc[kChains];
  for (auto &a : acc) a = _mm512_set1_epi32(1);
  const __m512i u = _mm512_set1_epi32(0x01020304), s = _mm512_set1_epi32(0x01ff01ff);
  for (long i = 0; i < kInner; ++i)
    for (auto &a : acc) a = _mm512_dpbusd_epi32(a, u, s);
  keep(acc);
}

__attribute__((target("avx512f,avx512vl,avx512vnni"))) void vnni256() {
  __m256i acc[kChains];
  for (auto &a : acc) a = _mm256_set1_epi32(1);
  const __m256i u = _mm256_set1_epi32(0x01020304), s = _mm256_set1_epi32(0x01ff01ff);
  for (long i = 0; i < kInner; ++i)
    for (auto &a : acc) a = _mm256_dpbusd_epi32(a, u, s);
  keep(acc);
}

__attribute__((target("avx512f"))) void fma512() {
  __m512 acc[kChains];
  for (auto &a : acc) a = _mm512_set1_ps(1.f);
  const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-7f);
  for (long i = 0; i < kInner; ++i)
    for (auto &a : acc) a = _mm512_fmadd_ps(a, x, y);
  keep(acc);
}

__attribute__((target("avx2,fma"))) void fma256() {
  __m256 acc[kChains];
  for (auto &a : acc) a = _mm256_set1_ps(1.f);
  const __m256 x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-7f);
  for (long i = 0; i < kInner; ++i)
    for (auto &a : acc) a = _mm256_fmadd_ps(a, x, y);
  keep(acc);
}

}  // namespace

int main(int argc, char **argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 1.0;
  if (!(seconds > 0)) {
    std::fprintf(stderr, "bench_isa_peak: seconds must be a positive number, not '%s'\n", argv[1]);
    return 2;
  }
  __builtin_cpu_init();
  const bool has_vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vl");
  const bool has_avx512 = __builtin_cpu_supports("avx512f");
  const bool has_fma = __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2");
  double vnni_zmm = 0, f32_zmm = 0, f32_ymm = 0;
  if (has_vnni) {
    vnni_zmm = rate(seconds, 16 * 4, vnni512);
    std::printf("int8 vpdpbusd 512-bit: %8.1f GMAC/s\n", vnni_zmm / 1e9);
    std::printf("int8 vpdpbusd 256-bit: %8.1f GMAC/s\n", rate(seconds, 8 * 4, vnni256) / 1e9);
  } else {
    std::printf("int8 vpdpbusd: no AVX-512 VNNI on this CPU\n");
  }
  if (has_avx512) {
    f32_zmm = rate(seconds, 16, fma512);
    std::printf("f32 FMA 512-bit:       %8.1f GMAC/s\n", f32_zmm / 1e9);
  }
  if (has_fma) {
    f32_ymm = rate(seconds, 8, fma256);
    std::printf("f32 FMA 256-bit:       %8.1f GMAC/s\n", f32_ymm / 1e9);
  }
  const double f32 = f32_zmm > f32_ymm ? f32_zmm : f32_ymm;
  if (vnni_zmm > 0 && f32 > 0)
    std::printf(
        "int8 / f32 peak:       %8.2fx (the most an int8 engine gains over a float32 one "
        "that reaches its peak, on a compute-bound model)\n",
        vnni_zmm / f32);
  return 0;
}
