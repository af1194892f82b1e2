// Which of the engine's hand-written vector kernels may run: the CPU's own features, capped by
// the ISA oneDNN is limited to (ONEDNN_MAX_CPU_ISA), so that one variable makes this machine run
// the engine as an older CPU would — oneDNN's kernels and ours alike (docs/runtime.md, "CPU
// features").
#pragma once

namespace axstream::engine {

// AVX2 and FMA (the cap admits avx2 or above).
bool cpu_allows_avx2_fma();
// AVX-512 F, BW and VL (the cap admits avx512_core).
bool cpu_allows_avx512bw();
// AVX-512 VBMI with F and BW: byte permutes. oneDNN 2.6 names no VBMI ISA, so the cap admits it
// from avx512_core_vnni (Ice Lake on); under AVX512_CORE the engine runs as on Skylake-SP.
bool cpu_allows_avx512vbmi();
// AVX-512 VNNI with F and BW: vpdpbusd on zmm (the cap admits avx512_core_vnni).
bool cpu_allows_avx512vnni();
// AVX-VNNI (the VEX vpdpbusd on ymm, Alder Lake on) with AVX2: the cap admits avx2_vnni, or
// avx512_core_vnni, which the CPU's AVX-512 VNNI path then serves first.
bool cpu_allows_avx_vnni();
// AMX-TILE and AMX-INT8 with AVX-512 VNNI (the cap admits avx512_core_amx), with Linux's
// permission to use the tile data obtained for the process (arch_prctl ARCH_REQ_XCOMP_PERM,
// asked once here: oneDNN asks too, but not necessarily first).
bool cpu_allows_amx_int8();

}  // namespace axstream::engine
