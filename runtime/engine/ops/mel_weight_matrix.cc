// MelWeightMatrix (opset 17): the triangular filter bank mapping a one-sided spectrum of
// dft_length / 2 + 1 bins onto num_mel_bins mel bands, from constant parameters.
#include "common.h"

namespace axstream::engine {
namespace {

// ONNX's definition: num_mel_bins + 2 band edges evenly spaced in mel between the two edge
// frequencies, each turned into a spectrum bin floor((dft_length + 1) * hertz / sample_rate);
// band i rises linearly from edge i to edge i + 1 and falls to edge i + 2.
// w (spectrum_bins x mel_bins) is written whole.
template <typename T>
void mel_weights(int64_t mel_bins, int64_t dft_length, int64_t sample_rate, float lower_hertz,
                 float upper_hertz, int64_t spectrum_bins, T *w) {
  // The edge frequencies convert to mel in float (their type), the rest in double.
  float low_mel = 2595.f * std::log10(1.f + lower_hertz / 700.f);
  float high_mel = 2595.f * std::log10(1.f + upper_hertz / 700.f);
  float mel_step = (high_mel - low_mel) / static_cast<float>(mel_bins + 2);
  std::vector<int64_t> edges(static_cast<size_t>(mel_bins + 2));
  for (int64_t i = 0; i < mel_bins + 2; ++i) {
    double hertz =
        700.0 * (std::pow(10.0, (static_cast<double>(i) * mel_step + low_mel) / 2595.0) - 1.0);
    edges[i] = static_cast<int64_t>(
        std::floor(static_cast<double>(dft_length + 1) * hertz / static_cast<double>(sample_rate)));
  }
  std::fill(w, w + spectrum_bins * mel_bins, T(0));
  auto at = [&](int64_t bin, int64_t band) -> T * {
    return bin >= 0 && bin < spectrum_bins ? &w[bin * mel_bins + band] : nullptr;
  };
  for (int64_t band = 0; band < mel_bins; ++band) {
    int64_t left = edges[band], center = edges[band + 1], right = edges[band + 2];
    if (center == left) {
      if (T *v = at(center, band)) *v = T(1);
    } else {
      for (int64_t j = left; j <= center; ++j)
        if (T *v = at(j, band))
          *v = static_cast<T>(static_cast<double>(j - left) / static_cast<double>(center - left));
    }
    for (int64_t j = center; j < right; ++j)
      if (T *v = at(j, band))
        *v = static_cast<T>(static_cast<double>(right - j) / static_cast<double>(right - center));
  }
}

std::unique_ptr<Kernel> compile_mel_weight_matrix(OpContext &ctx) {
  ctx.expect_inputs(5, 5);
  const char *names[] = {"num_mel_bins", "dft_length", "sample_rate", "lower_edge_hertz",
                         "upper_edge_hertz"};
  int64_t ints[3];
  for (size_t i = 0; i < 3; ++i) {
    const Tensor &t = ctx.require_constant(i, names[i]);
    if (t.count() != 1 || (t.dtype != DType::i32 && t.dtype != DType::i64))
      ctx.fail(std::string(names[i]) + " must be one int32 or int64");
    ints[i] = t.as_int(0);
  }
  float hertz[2];
  for (size_t i = 3; i < 5; ++i) {
    const Tensor &t = ctx.require_constant(i, names[i]);
    if (t.count() != 1 || t.dtype != DType::f32)
      ctx.fail(std::string(names[i]) + " must be one float");
    hertz[i - 3] = t.data<float>()[0];
  }
  int64_t mel_bins = ints[0], dft_length = ints[1], sample_rate = ints[2];
  if (mel_bins <= 0 || dft_length <= 0 || sample_rate <= 0)
    ctx.fail("num_mel_bins " + std::to_string(mel_bins) + ", dft_length " +
             std::to_string(dft_length) + " and sample_rate " + std::to_string(sample_rate) +
             " must be positive");
  if (!(hertz[0] >= 0.f && hertz[0] < hertz[1] && hertz[1] <= sample_rate / 2.f))
    ctx.fail("edges " + std::to_string(hertz[0]) + " and " + std::to_string(hertz[1]) +
             " Hz are not 0 <= lower < upper <= sample_rate / 2");
  int64_t elem_type = ctx.attr_i("output_datatype", 1);
  std::optional<DType> dtype = dtype_of_onnx_element_type(elem_type);
  if (!dtype || *dtype == DType::bool_)
    ctx.unsupported("output_datatype " + std::to_string(elem_type) +
                    " (float, uint8, int8, int32, int64 are supported)");
  int64_t spectrum_bins = dft_length / 2 + 1;
  ctx.set_output(0, *dtype, Shape{spectrum_bins, mel_bins});
  if (ctx.infer_only()) return nullptr;
  DType out = *dtype;
  float lower = hertz[0], upper = hertz[1];
  // Computed into the output at run time: a size the compiler later refuses as too large is
  // never allocated here.
  auto k = make_kernel([=](ExecContext &, const void *const *, void *const *o) {
    dispatch_numeric_dtype(out, [&](auto zero) {
      using T = decltype(zero);
      mel_weights(mel_bins, dft_length, sample_rate, lower, upper, spectrum_bins,
                  static_cast<T *>(o[0]));
    });
  });
  k->macs = static_cast<uint64_t>(spectrum_bins * mel_bins);
  return k;
}

}  // namespace

AXSTREAM_ENGINE_OP(MelWeightMatrix, "MelWeightMatrix", 17, 17, compile_mel_weight_matrix)

}  // namespace axstream::engine
