// AXSTREAM_NO_CONTRACT: floating-point contraction off for a function whose IEEE operations
// must round one by one as oneDNN's (or the scalar formula's) do.
#pragma once

// GCC's intrinsics are plain vector arithmetic, which it would contract (a product and a
// following sum into one fused multiply-add, rounded once where oneDNN rounds twice; on a build
// for a CPU with FMA the scalar code too): contraction stays off in these kernels. clang (the
// fuzz build) has no optimize attribute: there the pragma turns it off for the rest of the
// including file.
#if defined(__clang__)
#pragma clang fp contract(off)
#define AXSTREAM_NO_CONTRACT
#else
#define AXSTREAM_NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#endif
