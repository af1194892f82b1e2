#include "cpu_features.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <dnnl.hpp>

namespace axstream::engine {

namespace {

// oneDNN's ISA values are bit sets: an ISA includes another when it holds all of its bits.
bool cap_admits(dnnl::cpu_isa wanted) {
  static const unsigned effective = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const unsigned bits = static_cast<unsigned>(wanted);
  return (effective & bits) == bits;
}

// AVX-VNNI: CPUID leaf 7, subleaf 1, EAX bit 4. Read directly: GCC 12 knows "avxvnni" for
// __builtin_cpu_supports, clang 14 (the fuzz build's compiler) does not.
bool cpuid_has_avx_vnni() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) return false;
  return (eax >> 4) & 1u;
}

// AMX-TILE and AMX-INT8: CPUID leaf 7, subleaf 0, EDX bits 24 and 25.
bool cpuid_has_amx_int8() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  return ((edx >> 24) & 1u) && ((edx >> 25) & 1u);
}

// Linux enables the tile data state (XFEATURE_XTILEDATA, 18) for a process only on request;
// without it the first tile instruction faults. The permission covers every thread.
bool amx_permission_granted() {
  constexpr int kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

}  // namespace

bool cpu_allows_avx2_fma() {
  static const bool allowed = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                              cap_admits(dnnl::cpu_isa::avx2);
  return allowed;
}

bool cpu_allows_avx512bw() {
  static const bool allowed =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && cap_admits(dnnl::cpu_isa::avx512_core);
  return allowed;
}

bool cpu_allows_avx512vbmi() {
  static const bool allowed = cpu_allows_avx512bw() && __builtin_cpu_supports("avx512vbmi") &&
                              cap_admits(dnnl::cpu_isa::avx512_core_vnni);
  return allowed;
}

bool cpu_allows_avx512vnni() {
  static const bool allowed = cpu_allows_avx512bw() && __builtin_cpu_supports("avx512vnni") &&
                              cap_admits(dnnl::cpu_isa::avx512_core_vnni);
  return allowed;
}

bool cpu_allows_avx_vnni() {
  static const bool allowed =
      cpu_allows_avx2_fma() && cpuid_has_avx_vnni() &&
      (cap_admits(dnnl::cpu_isa::avx2_vnni) || cap_admits(dnnl::cpu_isa::avx512_core_vnni));
  return allowed;
}

bool cpu_allows_amx_int8() {
  static const bool allowed = cpu_allows_avx512vnni() && cpuid_has_amx_int8() &&
                              cap_admits(dnnl::cpu_isa::avx512_core_amx) &&
                              amx_permission_granted();
  return allowed;
}

}  // namespace axstream::engine
