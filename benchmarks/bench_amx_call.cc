// Per-call time of one int8 convolution on oneDNN's AMX kernel against its first non-AMX one
// (the baseline), oneDNN alone, with and without zero points, and the cost of the CPUID
// instruction the AMX jit kernels run per call (docs/runtime.md, "Where the AMX kernels' fixed
// cost goes").
//
//   bench_amx_call [calls per case, default 3000]
//
// Runs on one thread (the engine's per-worker setting). Prints one line per case; where oneDNN
// offers no AMX kernel (no AMX, or ONEDNN_MAX_CPU_ISA below it) it says so.
#include <cpuid.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;
using Clock = std::chrono::steady_clock;

struct Case {
  const char *name;
  int in_channels, out_channels, height, width, kernel;
};

bool is_amx(const std::string &impl) { return impl.find("amx") != std::string::npos; }

double cpuid_microseconds() {
  const int n = 2000;
  unsigned a = 0, b = 0, c = 0, d = 0, sink = 0;
  const auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    __cpuid_count(0x1d, 0, a, b, c, d);
    sink += a;
  }
  const double us = std::chrono::duration<double, std::micro>(Clock::now() - start).count() / n;
  return sink == 0xffffffffu ? -us : us;  // keeps the loop
}

// Microseconds per execute of the primitive `pd` describes (best of 3 runs of `calls`).
double time_primitive(const dnnl::convolution_forward::primitive_desc &pd, const Case &c,
                      bool zero_points, int calls) {
  const dnnl::engine &eng = pd.get_engine();
  dnnl::stream stream(eng);
  dnnl::convolution_forward conv(pd);
  memory src(pd.src_desc(), eng), dst(pd.dst_desc(), eng), weights(pd.weights_desc(), eng);
  memory bias(pd.bias_desc(), eng), scratch(pd.scratchpad_desc(), eng);
  std::memset(src.get_data_handle(), 3, pd.src_desc().get_size());
  memory user_weights({{c.out_channels, c.in_channels, c.kernel, c.kernel}, dt::s8, tag::ohwi},
                      eng);
  std::memset(user_weights.get_data_handle(), 1, user_weights.get_desc().get_size());
  dnnl::reorder(user_weights, weights).execute(stream, user_weights, weights);
  std::memset(bias.get_data_handle(), 0, pd.bias_desc().get_size());
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src},
                                          {DNNL_ARG_WEIGHTS, weights},
                                          {DNNL_ARG_BIAS, bias},
                                          {DNNL_ARG_DST, dst},
                                          {DNNL_ARG_SCRATCHPAD, scratch}};
  if (zero_points) {
    for (int arg : {DNNL_ARG_SRC, DNNL_ARG_DST}) {
      memory zp({{1}, dt::s32, tag::x}, eng);
      *static_cast<int32_t *>(zp.get_data_handle()) = arg == DNNL_ARG_SRC ? 5 : -3;
      args[DNNL_ARG_ATTR_ZERO_POINTS | arg] = zp;
    }
  }
  for (int i = 0; i < 100; ++i) conv.execute(stream, args);
  stream.wait();
  double best = 1e30;
  for (int run = 0; run < 3; ++run) {
    const auto start = Clock::now();
    for (int i = 0; i < calls; ++i) conv.execute(stream, args);
    stream.wait();
    best = std::min(
        best, std::chrono::duration<double, std::micro>(Clock::now() - start).count() / calls);
  }
  return best;
}

// The case's first AMX implementation and its first non-AMX, non-reference one, as the engine
// walks them (runtime/engine/conv_dnnl.cc, amx_or_vnni_impl); a default-made one where absent.
void bench_case(const dnnl::engine &eng, const Case &c, bool zero_points, int calls) {
  const int pad = c.kernel / 2;
  memory::desc src({1, c.in_channels, c.height, c.width}, dt::u8, tag::nhwc);
  memory::desc weights({c.out_channels, c.in_channels, c.kernel, c.kernel}, dt::s8, tag::any);
  memory::desc dst({1, c.out_channels, c.height, c.width}, dt::s8, tag::nhwc);
  memory::desc bias({c.out_channels}, dt::f32, tag::x);
  dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference,
                                       dnnl::algorithm::convolution_direct, src, weights, bias, dst,
                                       {1, 1}, {pad, pad}, {pad, pad});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  attr.set_output_scales(1 << 1, std::vector<float>(c.out_channels, 0.01f));
  if (zero_points) {
    attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
    attr.set_zero_points(DNNL_ARG_DST, 0, {DNNL_RUNTIME_S32_VAL});
  }
  dnnl::convolution_forward::primitive_desc pd(desc, attr, eng);
  std::vector<dnnl::convolution_forward::primitive_desc> amx, other;
  do {
    const std::string impl = pd.impl_info_str();
    if (is_amx(impl) && amx.empty()) amx.push_back(pd);
    if (!is_amx(impl) && impl.rfind("ref", 0) != 0 && other.empty()) other.push_back(pd);
  } while ((amx.empty() || other.empty()) && pd.next_impl());
  const double macs =
      double(c.in_channels) * c.out_channels * c.height * c.width * c.kernel * c.kernel / 1e6;
  std::printf("%-22s %-8s %7.2f M MACs: ", c.name, zero_points ? "zp" : "no zp", macs);
  if (amx.empty() || other.empty()) {
    std::printf("no %s kernel offered by oneDNN here\n", amx.empty() ? "AMX" : "non-AMX");
    return;
  }
  const double amx_us = time_primitive(amx[0], c, zero_points, calls);
  const double other_us = time_primitive(other[0], c, zero_points, calls);
  std::printf("%-29s %8.2f us/call, baseline %-29s %8.2f us/call, ratio %.2f\n",
              amx[0].impl_info_str(), amx_us, other[0].impl_info_str(), other_us,
              amx_us / other_us);
}

}  // namespace

int main(int argc, char **argv) {
  const int calls = argc > 1 ? std::atoi(argv[1]) : 3000;
  if (calls <= 0) {
    std::fprintf(stderr, "bench_amx_call: calls per case must be a positive number, got '%s'\n",
                 argv[1]);
    return 2;
  }
  omp_set_num_threads(1);
  std::printf("CPUID leaf 0x1D: %.2f us per instruction (a hypervisor exit on a VM)\n",
              cpuid_microseconds());
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  const Case cases[] = {{"1x1 96->96 at 8x8", 96, 96, 8, 8, 1},
                        {"1x1 32->32 at 1x1", 32, 32, 1, 1, 1},
                        {"3x3 64->64 at 16x16", 64, 64, 16, 16, 3},
                        {"3x3 64->64 at 80x80", 64, 64, 80, 80, 3},
                        {"1x1 16->32 at 320x320", 16, 32, 320, 320, 1}};
  for (const Case &c : cases) {
    const int n = c.height * c.width >= 6400 ? std::max(1, calls / 10) : calls;
    for (bool zero_points : {true, false}) bench_case(eng, c, zero_points, n);
  }
  return 0;
}
