// y[i] = table[x[i] ^ flip] over bytes: the int8/uint8 lookup tables of QLookup, QConcat and
// QBinary's per-channel gate (flip = 0x80 maps int8 -128..127 to indices 0..255).
#pragma once

#include <cstdint>

namespace axstream::engine {

// AVX-512 VBMI permutes (64 lookups per two vpermi2b) where the CPU has them, else a plain loop.
void byte_lookup(const uint8_t *x, uint8_t *y, int64_t count, const uint8_t table[256],
                 uint8_t flip);

// The same over `runs` runs of `run` bytes, packed in x and every `y_stride` bytes in y (an
// NHWC concat's channel slice): the table stays in registers across runs, so short runs (a
// pixel's 24 channels) cost a permute each instead of a call.
void byte_lookup_runs(const uint8_t *x, int64_t run, uint8_t *y, int64_t y_stride, int64_t runs,
                      const uint8_t table[256], uint8_t flip);

}  // namespace axstream::engine
