// The plain float convolution every Conv path can fall back to (NCHW, groups, dilations).
#pragma once

#include "common.h"

namespace axstream::engine {

struct ConvShape {
  int64_t n, c, h, w, m, group, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl;
};

inline void conv_reference(const ConvShape &s, const float *x, const float *wt, const float *bias,
                           float *y, const FusedActivation &act) {
  int64_t cg = s.c / s.group, mg = s.m / s.group;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < s.n; ++n) {
    for (int64_t m = 0; m < s.m; ++m) {
      int64_t g = m / mg;
      float *out = y + (n * s.m + m) * s.oh * s.ow;
      float b = bias ? bias[m] : 0.f;
      for (int64_t i = 0; i < s.oh * s.ow; ++i) out[i] = b;
      for (int64_t ci = 0; ci < cg; ++ci) {
        const float *in = x + (n * s.c + g * cg + ci) * s.h * s.w;
        for (int64_t ky = 0; ky < s.kh; ++ky) {
          for (int64_t kx = 0; kx < s.kw; ++kx) {
            float wv = wt[((m * cg + ci) * s.kh + ky) * s.kw + kx];
            int64_t xoff = kx * s.dw - s.pl;
            // ow range with 0 <= ow*sw + xoff < w
            int64_t ow_lo = xoff >= 0 ? 0 : (-xoff + s.sw - 1) / s.sw;
            int64_t ow_hi = s.w - xoff <= 0 ? 0 : std::min(s.ow, (s.w - xoff + s.sw - 1) / s.sw);
            for (int64_t oy = 0; oy < s.oh; ++oy) {
              int64_t iy = oy * s.sh - s.pt + ky * s.dh;
              if (iy < 0 || iy >= s.h) continue;
              const float *row = in + iy * s.w + xoff;
              float *orow = out + oy * s.ow;
              if (s.sw == 1)
                for (int64_t ox = ow_lo; ox < ow_hi; ++ox) orow[ox] += wv * row[ox];
              else
                for (int64_t ox = ow_lo; ox < ow_hi; ++ox) orow[ox] += wv * row[ox * s.sw];
            }
          }
        }
      }
      act.apply(out, s.oh * s.ow);
    }
  }
}

}  // namespace axstream::engine
