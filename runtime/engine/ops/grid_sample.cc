// GridSample (opset 16, spatial transformers): each output pixel reads the input at the
// normalised (x, y) its grid holds, by nearest, bilinear or bicubic interpolation, with zeros,
// border or reflection padding. The arithmetic follows ONNX Runtime's kernel.
#include <limits>

#include "common.h"

namespace axstream::engine {
namespace {

enum class Padding { zeros, border, reflection };

// Reflects x by the nearer bound until it lies in [low, high] (ONNX Runtime's rule). The count
// of reflections is a double: a far grid point makes it larger than an int holds (found by
// fuzz_onnx_import), and one pixel (range 0) reflects everything onto it.
float reflect(float x, float low, float high) {
  double range = static_cast<double>(high) - low;
  if (range <= 0) return low;
  if (x < low || x > high) {
    double d = x < low ? static_cast<double>(low) - x : static_cast<double>(x) - high;
    double n = std::floor(d / range), r = d - n * range;
    bool even = std::fmod(n, 2.0) == 0;
    if (x < low) return static_cast<float>(even ? low + r : high - r);
    return static_cast<float>(even ? high - r : low + r);
  }
  return x;
}

// Keys' cubic convolution weights (a = -0.75) of the taps at -1, 0, 1, 2 from floor(x).
void cubic_weights(float t, float w[4]) {
  constexpr float a = -0.75f;
  t = std::fabs(t);
  w[0] = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a;
  w[1] = ((a + 2) * t - (a + 3)) * t * t + 1;
  w[2] = ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1;
  w[3] = ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a;
}

struct Plane {
  const float *data;
  int64_t height, width;
  Padding padding;
  float bounds[4];  // x low, y low, x high, y high (reflection)

  float at(int64_t row, int64_t col) const {
    switch (padding) {
      case Padding::zeros:
        return row >= 0 && row < height && col >= 0 && col < width ? data[row * width + col] : 0.f;
      case Padding::border:
        return data[std::clamp<int64_t>(row, 0, height - 1) * width +
                    std::clamp<int64_t>(col, 0, width - 1)];
      case Padding::reflection:
        col = static_cast<int64_t>(reflect(static_cast<float>(col), bounds[0], bounds[2]));
        row = static_cast<int64_t>(reflect(static_cast<float>(row), bounds[1], bounds[3]));
        return data[std::clamp<int64_t>(row, 0, height - 1) * width +
                    std::clamp<int64_t>(col, 0, width - 1)];
    }
    return 0.f;
  }
};

std::unique_ptr<Kernel> compile_grid_sample(OpContext &ctx) {
  ctx.expect_inputs(2, 2);
  const Shape &xs = ctx.in_shape(0), &gs = ctx.in_shape(1);
  if (xs.size() != 4) ctx.unsupported("only 4-D X (N, C, H, W) is supported, got " + shape_str(xs));
  if (gs.size() != 4 || gs[0] != xs[0] || gs[3] != 2)
    ctx.fail("grid must be (N, H_out, W_out, 2) with N = " + std::to_string(xs[0]) + ", got " +
             shape_str(gs));
  std::string mode = ctx.attr_s("mode", "bilinear"), pad = ctx.attr_s("padding_mode", "zeros");
  bool align_corners = ctx.attr_i("align_corners", 0) != 0;
  if (mode != "bilinear" && mode != "nearest" && mode != "bicubic")
    ctx.fail("mode '" + mode + "' is not bilinear, nearest or bicubic");
  if (pad != "zeros" && pad != "border" && pad != "reflection")
    ctx.fail("padding_mode '" + pad + "' is not zeros, border or reflection");
  int64_t batch = xs[0], channels = xs[1], in_h = xs[2], in_w = xs[3], out_h = gs[1], out_w = gs[2];
  ctx.set_output(0, ctx.in_dtype(0), {batch, channels, out_h, out_w});
  if (ctx.infer_only()) return nullptr;
  if (batch * channels * out_h * out_w == 0)
    return make_kernel([](ExecContext &, const void *const *, void *const *) {});
  if (ctx.in_dtype(0) != DType::f32 || ctx.in_dtype(1) != DType::f32)
    ctx.unsupported("X and grid other than float32");
  if (in_h < 1 || in_w < 1) ctx.fail("X " + shape_str(xs) + " has an empty image");
  Padding padding = pad == "zeros"    ? Padding::zeros
                    : pad == "border" ? Padding::border
                                      : Padding::reflection;
  int interpolation = mode == "nearest" ? 0 : mode == "bilinear" ? 1 : 3;
  auto k = make_kernel([=](ExecContext &, const void *const *in, void *const *o) {
    const float *x = static_cast<const float *>(in[0]), *grid = static_cast<const float *>(in[1]);
    float *y = static_cast<float *>(o[0]);
    // Normalised -1..1 to pixels: the corner pixels' centres, or their outer edges.
    auto denormalize = [align_corners](float v, int64_t len) {
      return align_corners ? (v + 1) / 2.f * static_cast<float>(len - 1)
                           : ((v + 1) * static_cast<float>(len) - 1) / 2.f;
    };
    float low = align_corners ? 0.f : -0.5f;
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t c = 0; c < channels; ++c) {
        // Reflection bounds: the corner pixels' centres, or their outer edges.
        float high_x = static_cast<float>(in_w) - 1.f - low;
        float high_y = static_cast<float>(in_h) - 1.f - low;
        Plane p{
            x + (n * channels + c) * in_h * in_w, in_h, in_w, padding, {low, low, high_x, high_y}};
        const float *g = grid + n * out_h * out_w * 2;
        float *yp = y + (n * channels + c) * out_h * out_w;
        for (int64_t i = 0; i < out_h * out_w; ++i) {
          float sx = denormalize(g[2 * i], in_w), sy = denormalize(g[2 * i + 1], in_h);
          if (std::isnan(sx) || std::isnan(sy)) {
            yp[i] = std::numeric_limits<float>::quiet_NaN();
            continue;
          }
          // Keeps the float -> int64 casts defined; no image is 2^40 pixels wide.
          sx = std::clamp(sx, -1e12f, 1e12f);
          sy = std::clamp(sy, -1e12f, 1e12f);
          if (interpolation == 0) {
            yp[i] = p.at(static_cast<int64_t>(std::nearbyint(sy)),
                         static_cast<int64_t>(std::nearbyint(sx)));
          } else if (interpolation == 1) {
            int64_t x1 = static_cast<int64_t>(std::floor(sx)),
                    y1 = static_cast<int64_t>(std::floor(sy));
            float dx1 = sx - static_cast<float>(x1), dx2 = 1.f - dx1;
            float dy1 = sy - static_cast<float>(y1), dy2 = 1.f - dy1;
            yp[i] = dy2 * (dx2 * p.at(y1, x1) + dx1 * p.at(y1, x1 + 1)) +
                    dy1 * (dx2 * p.at(y1 + 1, x1) + dx1 * p.at(y1 + 1, x1 + 1));
          } else {
            int64_t x0 = static_cast<int64_t>(std::floor(sx)) - 1;
            int64_t y0 = static_cast<int64_t>(std::floor(sy)) - 1;
            float wx[4], wy[4];
            cubic_weights(sx - static_cast<float>(x0) - 1.f, wx);
            cubic_weights(sy - static_cast<float>(y0) - 1.f, wy);
            float sum = 0.f;
            for (int64_t r = 0; r < 4; ++r) {
              float row = 0.f;
              for (int64_t q = 0; q < 4; ++q) row += wx[q] * p.at(y0 + r, x0 + q);
              sum += wy[r] * row;
            }
            yp[i] = sum;
          }
        }
      }
  });
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP(GridSample, "GridSample", 16, 17, compile_grid_sample)

}  // namespace axstream::engine
