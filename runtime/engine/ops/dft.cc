// DFT and STFT (opset 17): the discrete Fourier transform of real or complex float32 signals
// along one axis, forward or inverse (scaled by 1/N), optionally one-sided, zero-padded or cut to
// a constant dft_length; STFT's windowed frames. Radix-2 FFT for power-of-two lengths, the direct
// sum otherwise.
#include "common.h"

namespace axstream::engine {
namespace {

struct DftPlan {
  int64_t outer = 1, inner = 1;       // before the axis (batch, ...) and after it (before re/im)
  int64_t in_length = 0, length = 0;  // the signal along the axis, the transform's length
  int64_t out_length = 0;             // length, or length / 2 + 1 one-sided
  bool complex_input = false, inverse = false;
};

// In place on re/im (n = 2^k): iterative radix-2 with the twiddles cos/sin(2 pi m / n) in `tw`.
void fft_radix2(double *re, double *im, int64_t n, const double *tw_cos, const double *tw_sin,
                double sign) {
  for (int64_t i = 1, j = 0; i < n; ++i) {
    int64_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      std::swap(re[i], re[j]);
      std::swap(im[i], im[j]);
    }
  }
  for (int64_t half = 1; half < n; half <<= 1) {
    int64_t step = n / (2 * half);
    for (int64_t start = 0; start < n; start += 2 * half)
      for (int64_t k = 0; k < half; ++k) {
        double c = tw_cos[k * step], s = sign * tw_sin[k * step];
        int64_t a = start + k, b = a + half;
        double br = re[b] * c - im[b] * s, bi = re[b] * s + im[b] * c;
        re[b] = re[a] - br;
        im[b] = im[a] - bi;
        re[a] += br;
        im[a] += bi;
      }
  }
}

// One transform's buffers in scratch (6 n doubles): the twiddles cos/sin(-2 pi m / n), the
// signal's re/im (filled by the caller), the result's re/im.
struct Spectrum {
  int64_t n = 0, out_length = 0;
  bool inverse = false;
  double *tw_cos, *tw_sin, *re, *im, *out_re, *out_im;

  static size_t scratch_bytes(int64_t n) { return static_cast<size_t>(6 * n) * sizeof(double); }
  Spectrum(void *scratch, int64_t length, int64_t bins, bool inverse_transform)
      : n(length), out_length(bins), inverse(inverse_transform) {
    tw_cos = static_cast<double *>(scratch);
    tw_sin = tw_cos + n;
    re = tw_sin + n;
    im = re + n;
    out_re = im + n;
    out_im = out_re + n;
    for (int64_t m = 0; m < n; ++m) {
      double angle = -2.0 * 3.14159265358979323846 * static_cast<double>(m) / n;
      tw_cos[m] = std::cos(angle);
      tw_sin[m] = std::sin(angle);
    }
  }

  // re/im -> out_re/out_im (the first out_length bins), scaled by 1/n when inverse.
  void transform() const {
    double sign = inverse ? -1.0 : 1.0, scale = inverse ? 1.0 / n : 1.0;
    if ((n & (n - 1)) == 0) {
      fft_radix2(re, im, n, tw_cos, tw_sin, sign);
      for (int64_t f = 0; f < out_length; ++f) {
        out_re[f] = re[f] * scale;
        out_im[f] = im[f] * scale;
      }
      return;
    }
    // The direct sum, its twiddle index f * t taken mod n.
    for (int64_t f = 0; f < out_length; ++f) {
      double sr = 0, si = 0;
      for (int64_t t = 0, m = 0; t < n; ++t, m = (m + f) % n) {
        double c = tw_cos[m], s = sign * tw_sin[m];
        sr += re[t] * c - im[t] * s;
        si += re[t] * s + im[t] * c;
      }
      out_re[f] = sr * scale;
      out_im[f] = si * scale;
    }
  }

  static double macs(int64_t n, int64_t bins) {
    return (n & (n - 1)) == 0 ? 5.0 * n * std::log2(static_cast<double>(n)) : 4.0 * n * bins;
  }
};

std::unique_ptr<Kernel> compile_dft(OpContext &ctx) {
  ctx.expect_inputs(1, 2);
  const Shape &in = ctx.in_shape(0);
  if (in.size() < 3 || (in.back() != 1 && in.back() != 2))
    ctx.fail("input must be (batch, signal dims..., 1 or 2), got " + shape_str(in));
  int64_t rank = static_cast<int64_t>(in.size());
  int64_t axis = ctx.axis(ctx.attr_i("axis", 1), in.size());
  if (axis < 1 || axis > rank - 2)
    ctx.fail("axis " + std::to_string(ctx.attr_i("axis", 1)) + " is not a signal dim of " +
             shape_str(in));
  DftPlan p;
  p.in_length = in[axis];
  p.length = p.in_length;
  if (ctx.has_input(1)) {
    const Tensor &t = ctx.require_constant(1, "dft_length");
    if (t.count() != 1 || (t.dtype != DType::i32 && t.dtype != DType::i64))
      ctx.fail("dft_length must be one int32 or int64");
    p.length = t.as_int(0);
  }
  if (p.length <= 0) ctx.fail("dft_length " + std::to_string(p.length) + " is not positive");
  p.inverse = ctx.attr_i("inverse", 0) != 0;
  bool onesided = ctx.attr_i("onesided", 0) != 0;
  if (onesided && p.inverse)
    ctx.unsupported("a one-sided inverse DFT (complex to real) is not supported");
  p.out_length = onesided ? p.length / 2 + 1 : p.length;
  p.complex_input = in.back() == 2;
  p.outer = product(in, 0, axis);
  p.inner = product(in, axis + 1, in.size() - 1);
  Shape out = in;
  out[axis] = p.out_length;
  out.back() = 2;
  ctx.set_output(0, DType::f32, out);
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::f32)
    ctx.unsupported(std::string("input of type ") + dtype_name(ctx.in_dtype(0)) +
                    " (float32 only)");
  auto k = make_kernel([p](ExecContext &ec, const void *const *i, void *const *o) {
    const float *x = static_cast<const float *>(i[0]);
    float *y = static_cast<float *>(o[0]);
    const int64_t comps = p.complex_input ? 2 : 1;
    Spectrum sp(ec.scratch, p.length, p.out_length, p.inverse);
    for (int64_t a = 0; a < p.outer; ++a)
      for (int64_t b = 0; b < p.inner; ++b) {
        for (int64_t t = 0; t < p.length; ++t) {
          bool inside = t < p.in_length;
          const float *xs = x + ((a * p.in_length + t) * p.inner + b) * comps;
          sp.re[t] = inside ? xs[0] : 0.0;
          sp.im[t] = inside && p.complex_input ? xs[1] : 0.0;
        }
        sp.transform();
        for (int64_t f = 0; f < p.out_length; ++f) {
          float *ys = y + ((a * p.out_length + f) * p.inner + b) * 2;
          ys[0] = static_cast<float>(sp.out_re[f]);
          ys[1] = static_cast<float>(sp.out_im[f]);
        }
      }
  });
  k->scratch_bytes = Spectrum::scratch_bytes(p.length);
  k->macs = static_cast<uint64_t>(
      std::min(1.8e19, Spectrum::macs(p.length, p.out_length) * static_cast<double>(p.outer) *
                           static_cast<double>(p.inner)));
  return k;
}

// STFT: frames of frame_length samples every frame_step, each times the window (or 1), each
// transformed; output (batch, frames, bins, 2).
std::unique_ptr<Kernel> compile_stft(OpContext &ctx) {
  ctx.expect_inputs(2, 4);
  const Shape &in = ctx.in_shape(0);
  if (in.size() != 3 || (in[2] != 1 && in[2] != 2))
    ctx.fail("signal must be (batch, length, 1 or 2), got " + shape_str(in));
  auto scalar = [&](size_t i, const char *what) {
    const Tensor &t = ctx.require_constant(i, what);
    if (t.count() != 1 || (t.dtype != DType::i32 && t.dtype != DType::i64))
      ctx.fail(std::string(what) + " must be one int32 or int64");
    return t.as_int(0);
  };
  int64_t step = scalar(1, "frame_step");
  bool has_window = ctx.has_input(2);
  int64_t frame_length = has_window ? product(ctx.in_shape(2), 0, ctx.in_shape(2).size()) : 0;
  if (has_window && ctx.in_shape(2).size() != 1)
    ctx.fail("window must be 1-D, got " + shape_str(ctx.in_shape(2)));
  if (ctx.has_input(3)) {
    int64_t given = scalar(3, "frame_length");
    if (has_window && given != frame_length)
      ctx.fail("frame_length " + std::to_string(given) + " differs from the window's " +
               std::to_string(frame_length));
    frame_length = given;
  } else if (!has_window) {
    ctx.fail("neither a window nor frame_length gives the frame length");
  }
  int64_t length = in[1];
  if (step <= 0 || frame_length <= 0 || frame_length > length)
    ctx.fail("frame_step " + std::to_string(step) + " and frame_length " +
             std::to_string(frame_length) + " do not frame a signal of " + std::to_string(length));
  bool onesided = ctx.attr_i("onesided", 1) != 0;
  int64_t frames = (length - frame_length) / step + 1;
  int64_t bins = onesided ? frame_length / 2 + 1 : frame_length;
  int64_t batch = in[0];
  ctx.set_output(0, DType::f32, Shape{batch, frames, bins, 2});
  if (ctx.infer_only()) return nullptr;
  if (ctx.in_dtype(0) != DType::f32 || (has_window && ctx.in_dtype(2) != DType::f32))
    ctx.unsupported("signal or window not float32");
  bool complex_input = in[2] == 2;
  auto k = make_kernel([=](ExecContext &ec, const void *const *i, void *const *o) {
    const float *x = static_cast<const float *>(i[0]);
    const float *window = has_window ? static_cast<const float *>(i[2]) : nullptr;
    float *y = static_cast<float *>(o[0]);
    const int64_t comps = complex_input ? 2 : 1;
    Spectrum sp(ec.scratch, frame_length, bins, false);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t f = 0; f < frames; ++f) {
        const float *frame = x + (b * length + f * step) * comps;
        for (int64_t t = 0; t < frame_length; ++t) {
          double w = window ? window[t] : 1.0;
          sp.re[t] = frame[t * comps] * w;
          sp.im[t] = complex_input ? frame[t * comps + 1] * w : 0.0;
        }
        sp.transform();
        float *ys = y + (b * frames + f) * bins * 2;
        for (int64_t bin = 0; bin < bins; ++bin) {
          ys[2 * bin] = static_cast<float>(sp.out_re[bin]);
          ys[2 * bin + 1] = static_cast<float>(sp.out_im[bin]);
        }
      }
  });
  k->scratch_bytes = Spectrum::scratch_bytes(frame_length);
  k->macs = static_cast<uint64_t>(
      std::min(1.8e19, Spectrum::macs(frame_length, bins) * static_cast<double>(batch * frames)));
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP(Dft, "DFT", 17, 17, compile_dft)
AXSTREAM_ENGINE_OP(Stft, "STFT", 17, 17, compile_stft)

}  // namespace axstream::engine
