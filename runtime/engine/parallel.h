// Loops the hand-written kernels share among the executor's OpenMP threads, run inline on the
// calling thread when there is nothing to share them with.
//
// libgomp enters a parallel region even for a team of one (a 1-thread executor, or an `if`
// clause that is false): it sets up the team and, on leaving, makes a futex call that wakes
// nobody. On a 1-thread BlazeFace that was one system call per Concat, MaxPool and
// (de)quantising loop per inference. These helpers open a region only when it can split.
#pragma once

#include <omp.h>

#include <cstdint>

namespace axstream::engine {

// True when a loop of `work` units (elements, bytes or MACs, as the caller measures them)
// should open an OpenMP region: the calling thread may start a team of more than one (the
// executor's thread count, set by omp_set_num_threads on its thread), it is not already in
// one (nested regions run on one thread anyway) and work is more than `too_small`.
inline bool worth_splitting(int64_t work = 1, int64_t too_small = 0) {
  return work > too_small && omp_get_max_threads() > 1 && !omp_in_parallel();
}

// body(i) for i in [0, count): split statically among the threads when `split` and there are
// two or more, else inline.
template <typename Body>
void parallel_for(int64_t count, bool split, Body &&body) {
  if (!split || count < 2) {
    for (int64_t i = 0; i < count; ++i) body(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i) body(i);
}

// body(i, j) for i in [0, outer), j in [0, inner), row-major: the (i, j) pairs split statically
// among the threads when `split` and there are two or more (OpenMP's collapse(2)), else
// inline.
template <typename Body>
void parallel_for_2d(int64_t outer, int64_t inner, bool split, Body &&body) {
  if (!split || outer * inner < 2) {
    for (int64_t i = 0; i < outer; ++i)
      for (int64_t j = 0; j < inner; ++j) body(i, j);
    return;
  }
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t i = 0; i < outer; ++i)
    for (int64_t j = 0; j < inner; ++j) body(i, j);
}

}  // namespace axstream::engine
