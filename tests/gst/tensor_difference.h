// How two int8 tensors differ, element by element: what the preprocessing tests compare a path's
// tensor with its reference by (library, element and colorimetry tests alike).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

namespace axtest {

struct TensorDifference {
  int worst = 0;         // the largest absolute difference, in quantisation levels
  double mean = 0;       // the mean absolute difference
  size_t differing = 0;  // elements that differ at all
};

// `a` against `b` over the elements both have (callers check the sizes match).
inline TensorDifference tensor_difference(const std::vector<int8_t> &a,
                                          const std::vector<int8_t> &b) {
  TensorDifference d;
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const int e = std::abs(int(a[i]) - int(b[i]));
    d.worst = std::max(d.worst, e);
    d.mean += e;
    d.differing += e != 0;
  }
  if (n > 0) d.mean /= double(n);
  return d;
}

}  // namespace axtest
