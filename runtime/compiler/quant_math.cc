#include "quant_math.h"

#include <algorithm>

namespace axstream::compiler {

QuantParams asymmetric_int8(double lo, double hi) {
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  QuantParams p;
  double range = hi - lo;
  if (!std::isfinite(range) || range <= 1e-12) return p;  // constant zero tensor
  p.scale = range / 255.0;
  p.zero_point = static_cast<int>(std::lround(-128.0 - lo / p.scale));
  p.zero_point = std::clamp(p.zero_point, -128, 127);
  return p;
}

int8_t quantize_int8(float value, const QuantParams &params) {
  double q = std::nearbyint(value / params.scale) + params.zero_point;
  return static_cast<int8_t>(std::clamp(q, -128.0, 127.0));
}

float dequantize_int8(int8_t value, const QuantParams &params) {
  return static_cast<float>((static_cast<int>(value) - params.zero_point) * params.scale);
}

ChannelQuantized quantize_per_channel(const std::vector<float> &weights,
                                      const std::vector<int64_t> &shape, int axis) {
  int64_t channels = shape.empty() ? 1 : shape[axis];
  int64_t inner = 1;
  for (size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
  ChannelQuantized out;
  out.scales.assign(channels, 0.0f);
  for (size_t i = 0; i < weights.size(); ++i) {
    int64_t c = (static_cast<int64_t>(i) / inner) % channels;
    out.scales[c] = std::max(out.scales[c], std::fabs(weights[i]));
  }
  for (float &s : out.scales) s = s > 0 ? s / 127.0f : 1.0f;
  out.values.resize(weights.size());
  for (size_t i = 0; i < weights.size(); ++i) {
    int64_t c = (static_cast<int64_t>(i) / inner) % channels;
    float q = std::nearbyint(weights[i] / out.scales[c]);
    out.values[i] = static_cast<int8_t>(std::clamp(q, -127.0f, 127.0f));
  }
  return out;
}

int64_t padded_channels(int64_t channels) {
  if (channels <= 16) {
    int64_t p = 1;
    while (p < channels) p *= 2;
    return p;
  }
  int64_t multiple = channels <= 256 ? 16 : 64;
  return (channels + multiple - 1) / multiple * multiple;
}

}  // namespace axstream::compiler
