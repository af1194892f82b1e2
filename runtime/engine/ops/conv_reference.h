// The plain float convolution every Conv path can fall back to (NCW/NCHW/NCDHW, groups,
// dilations), and the geometry the float and integer convolutions share.
#pragma once

#include "../parallel.h"
#include "common.h"

namespace axstream::engine {

// 1-D/2-D convolutions directly; a 3-D one adds depth (d* fields) around 2-D planes.
struct ConvShape {
  int64_t n, c, h, w, m, group, kh, kw, oh, ow, sh, sw, dh, dw, pt, pl;
  int64_t d = 1, kd = 1, od = 1, sd = 1, dd = 1, pf = 0;  // depth, front pad
};

// The shape of a convolution of x (N, C, spatial...) by w (M, C/group, kernel...) with the
// window geometry `g`; the last spatial dim is W, the one before it H, the one before that D.
inline ConvShape conv_shape(const Shape &xs, const Shape &ws, const WindowGeometry &g,
                            int64_t group) {
  size_t r = xs.size() - 2, y = r - std::min<size_t>(r, 2);  // index of the H dim, if any
  bool two = r >= 2;
  ConvShape s{xs[0],
              xs[1],
              two ? xs[2 + y] : 1,
              xs.back(),
              ws[0],
              group,
              two ? ws[2 + y] : 1,
              ws.back(),
              two ? g.out[y] : 1,
              g.out.back(),
              two ? g.stride[y] : 1,
              g.stride.back(),
              two ? g.dilation[y] : 1,
              g.dilation.back(),
              two ? g.pad_begin[y] : 0,
              g.pad_begin.back()};
  if (r == 3) {
    s.d = xs[2];
    s.kd = ws[2];
    s.od = g.out[0];
    s.sd = g.stride[0];
    s.dd = g.dilation[0];
    s.pf = g.pad_begin[0];
  }
  return s;
}

// The direct convolution loops over any arithmetic type (float, or int32 for the exact
// integer kernels): y = bias + sum of x * w, then `finish(volume, count)` on each (n, m) output
// volume while it is hot (a fused activation).
template <typename T, typename Finish>
void conv_direct(const ConvShape &s, const T *x, const T *wt, const T *bias, T *y, Finish finish) {
  int64_t cg = s.c / s.group, mg = s.m / s.group;
  int64_t hw = s.h * s.w, ohw = s.oh * s.ow;
  parallel_for_2d(s.n, s.m, worth_splitting(), [&](int64_t n, int64_t m) {
    int64_t g = m / mg;
    T *volume = y + (n * s.m + m) * s.od * ohw;
    std::fill(volume, volume + s.od * ohw, bias ? bias[m] : T(0));
    for (int64_t oz = 0; oz < s.od; ++oz) {
      T *out = volume + oz * ohw;
      for (int64_t ci = 0; ci < cg; ++ci) {
        for (int64_t kz = 0; kz < s.kd; ++kz) {
          int64_t iz = oz * s.sd - s.pf + kz * s.dd;
          if (iz < 0 || iz >= s.d) continue;
          const T *in = x + ((n * s.c + g * cg + ci) * s.d + iz) * hw;
          const T *wk = wt + ((m * cg + ci) * s.kd + kz) * s.kh * s.kw;
          for (int64_t ky = 0; ky < s.kh; ++ky) {
            for (int64_t kx = 0; kx < s.kw; ++kx) {
              T wv = wk[ky * s.kw + kx];
              int64_t xoff = kx * s.dw - s.pl;
              // ow range with 0 <= ow*sw + xoff < w
              int64_t ow_lo = xoff >= 0 ? 0 : (-xoff + s.sw - 1) / s.sw;
              int64_t ow_hi = s.w - xoff <= 0 ? 0 : std::min(s.ow, (s.w - xoff + s.sw - 1) / s.sw);
              for (int64_t oy = 0; oy < s.oh; ++oy) {
                int64_t iy = oy * s.sh - s.pt + ky * s.dh;
                if (iy < 0 || iy >= s.h) continue;
                const T *row = in + iy * s.w + xoff;
                T *orow = out + oy * s.ow;
                if (s.sw == 1)
                  for (int64_t ox = ow_lo; ox < ow_hi; ++ox) orow[ox] += wv * row[ox];
                else
                  for (int64_t ox = ow_lo; ox < ow_hi; ++ox) orow[ox] += wv * row[ox * s.sw];
              }
            }
          }
        }
      }
    }
    finish(volume, s.od * ohw);
  });
}

inline void conv_reference(const ConvShape &s, const float *x, const float *wt, const float *bias,
                           float *y, const FusedActivation &act) {
  conv_direct(s, x, wt, bias, y,
              [&act](float *volume, int64_t count) { act.apply(volume, count); });
}

}  // namespace axstream::engine
