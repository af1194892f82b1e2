// The softmax family's loop over one axis, shared by Softmax/LogSoftmax/Hardmax and
// SoftmaxCrossEntropyLoss (its log-probabilities).
#pragma once

#include "common.h"

namespace axstream::engine {

enum class SoftmaxKind { softmax, log_softmax, hardmax };

// y = kind(x) over groups of `len` elements spaced `inner` apart, `outer * inner` groups.
template <SoftmaxKind kind>
void softmax_groups(const float *x, float *y, int64_t outer, int64_t len, int64_t inner) {
  if (len == 0) return;  // no element: x and y may be null, and no offset from them is valid
  for (int64_t a = 0; a < outer; ++a)
    for (int64_t b = 0; b < inner; ++b) {
      const float *xs = x + a * len * inner + b;
      float *ys = y + a * len * inner + b;
      float m = -INFINITY;
      int64_t first_max = 0;
      for (int64_t j = 0; j < len; ++j)
        if (xs[j * inner] > m) {
          m = xs[j * inner];
          first_max = j;
        }
      if constexpr (kind == SoftmaxKind::hardmax) {
        for (int64_t j = 0; j < len; ++j) ys[j * inner] = j == first_max ? 1.f : 0.f;
        continue;
      }
      float sum = 0.f;
      for (int64_t j = 0; j < len; ++j) sum += (ys[j * inner] = std::exp(xs[j * inner] - m));
      if constexpr (kind == SoftmaxKind::log_softmax) {
        float log_sum = std::log(sum);
        for (int64_t j = 0; j < len; ++j) ys[j * inner] = xs[j * inner] - m - log_sum;
        continue;
      }
      for (int64_t j = 0; j < len; ++j) ys[j * inner] /= sum;
    }
}

}  // namespace axstream::engine
