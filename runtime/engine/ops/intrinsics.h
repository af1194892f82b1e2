// <immintrin.h> for the engine's vector kernels. GCC 12's AVX-512 intrinsics trip
// -Wmaybe-uninitialized and -Wuninitialized on their own _mm*_undefined_* values where they are
// inlined (its bug 105593, fixed in the headers of GCC 13): silenced for the header's lines
// only. Include it before anything else that includes <immintrin.h>: the first inclusion decides.
#pragma once

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
