// The vector exp of ops/vector_exp.h against double-precision references: exp itself over the
// whole float range it maps to finite non-zero values and beyond, Sigmoid, Softmax and
// LogSoftmax rows, the special values, and AVX2 against AVX-512 bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "ops/softmax.h"
#include "ops/vector_exp.h"

namespace axstream::engine {
namespace {

std::vector<ExpIsa> vector_isas() {
  std::vector<ExpIsa> out;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) out.push_back(ExpIsa::avx2);
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl"))
    out.push_back(ExpIsa::avx512);
  return out;
}

uint32_t bits(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  return b;
}

// Distance in units in the last place between two finite or infinite floats of the same sign
// (the ordered bit patterns; +0 and -0 are one point).
int64_t ulps(float a, float b) {
  auto ordered = [](float v) {
    int64_t i = static_cast<int32_t>(bits(v));
    return i < 0 ? -(i & 0x7fffffff) : i;
  };
  return std::llabs(ordered(a) - ordered(b));
}

float from_bits(uint32_t b) {
  float v;
  std::memcpy(&v, &b, 4);
  return v;
}

// Every 101st float of either sign up to 90 in magnitude and the negatives on to -110 (some
// twenty million inputs: where exp is 0, subnormal, normal and +inf), plus the edges.
std::vector<float> exp_inputs() {
  std::vector<float> xs;
  for (uint32_t b = 0; b <= bits(90.f); b += 101) {
    xs.push_back(from_bits(b));
    xs.push_back(-from_bits(b));
  }
  for (uint32_t b = bits(90.f); b <= bits(110.f); b += 101) xs.push_back(-from_bits(b));
  for (float v : {88.72283f,
                  88.72284f,
                  std::nextafter(88.7228391f, 0.f),
                  88.7228391f,
                  -87.33654f,
                  -87.33655f,
                  -103.2789f,
                  -103.972f,
                  -103.97208f,
                  -103.97209f,
                  -104.f,
                  -1e-30f,
                  1e-30f,
                  0.5f * std::log(2.f),
                  -0.5f * std::log(2.f),
                  1e30f,
                  -1e30f,
                  std::numeric_limits<float>::max(),
                  -std::numeric_limits<float>::max(),
                  std::numeric_limits<float>::denorm_min()})
    xs.push_back(v);
  return xs;
}

TEST(VectorExp, WithinOneUlpOfDoubleExpOverTheWholeRange) {
  const std::vector<float> xs = exp_inputs();
  for (ExpIsa isa : vector_isas()) {
    std::vector<float> y(xs.size());
    exp_row(isa, xs.data(), y.data(), static_cast<int64_t>(xs.size()));
    int64_t worst = 0;
    float worst_x = 0.f;
    for (size_t i = 0; i < xs.size(); ++i) {
      const float want = static_cast<float>(std::exp(static_cast<double>(xs[i])));
      const int64_t e = ulps(y[i], want);
      if (e > worst) worst = e, worst_x = xs[i];
    }
    std::printf("%s exp: worst %lld ulp (at %.9g) over %zu inputs\n", exp_isa_name(isa),
                static_cast<long long>(worst), worst_x, xs.size());
    EXPECT_LE(worst, 1) << exp_isa_name(isa) << ": exp(" << worst_x << ") off by " << worst
                        << " ulp over " << xs.size() << " inputs";
  }
}

TEST(VectorExp, SpecialValuesAsStdExp) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // 17 values: a full AVX-512 vector and a tail, two AVX2 vectors and a tail.
  std::vector<float> xs = {nan,     inf,  -inf,   0.f, -0.f, 89.f,     88.8f,   1000.f, -104.f,
                           -1000.f, -nan, -200.f, 1.f, -1.f, 88.7228f, -103.9f, -87.4f};
  for (ExpIsa isa : vector_isas()) {
    std::vector<float> y(xs.size());
    exp_row(isa, xs.data(), y.data(), static_cast<int64_t>(xs.size()));
    for (size_t i = 0; i < xs.size(); ++i) {
      const float want = std::exp(xs[i]);
      if (std::isnan(want))
        EXPECT_TRUE(std::isnan(y[i])) << exp_isa_name(isa) << " exp(" << xs[i] << ")";
      else if (std::isinf(want) || want == 0.f)
        EXPECT_EQ(y[i], want) << exp_isa_name(isa) << " exp(" << xs[i] << ")";
      else
        EXPECT_LE(ulps(y[i], want), 1) << exp_isa_name(isa) << " exp(" << xs[i] << ")";
    }
  }
}

TEST(VectorExp, Avx2AndAvx512GiveTheSameBits) {
  const std::vector<ExpIsa> isas = vector_isas();
  if (isas.size() < 2) GTEST_SKIP() << "this CPU lacks AVX-512";
  const std::vector<float> xs = exp_inputs();
  std::vector<float> a(xs.size()), b(xs.size());
  exp_row(ExpIsa::avx2, xs.data(), a.data(), static_cast<int64_t>(xs.size()));
  exp_row(ExpIsa::avx512, xs.data(), b.data(), static_cast<int64_t>(xs.size()));
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4));
  sigmoid_row(ExpIsa::avx2, xs.data(), a.data(), static_cast<int64_t>(xs.size()));
  sigmoid_row(ExpIsa::avx512, xs.data(), b.data(), static_cast<int64_t>(xs.size()));
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * 4));
}

TEST(VectorExp, SigmoidWithinThreeUlpOfDouble) {
  std::vector<float> xs = exp_inputs();
  const float inf = std::numeric_limits<float>::infinity();
  xs.insert(xs.end(), {inf, -inf, std::numeric_limits<float>::quiet_NaN()});
  for (ExpIsa isa : {ExpIsa::scalar, ExpIsa::avx2, ExpIsa::avx512}) {
    if (isa != ExpIsa::scalar && [&] {
          for (ExpIsa v : vector_isas())
            if (v == isa) return false;
          return true;
        }())
      continue;
    std::vector<float> y(xs.size());
    sigmoid_row(isa, xs.data(), y.data(), static_cast<int64_t>(xs.size()));
    int64_t worst = 0;
    float worst_x = 0.f;
    for (size_t i = 0; i < xs.size(); ++i) {
      if (std::isnan(xs[i])) {
        EXPECT_TRUE(std::isnan(y[i])) << exp_isa_name(isa);
        continue;
      }
      if (std::isinf(std::exp(-xs[i]))) {
        // The formula's own limit, scalar and vector alike: exp(-x) overflows below x = -88.72,
        // and 1 / (1 + inf) is 0 where the true value is a subnormal below 3e-39.
        EXPECT_EQ(y[i], 0.f) << exp_isa_name(isa) << " sigmoid(" << xs[i] << ")";
        continue;
      }
      const float want = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(xs[i]))));
      const int64_t e = ulps(y[i], want);
      if (e > worst) worst = e, worst_x = xs[i];
    }
    std::printf("%s sigmoid: worst %lld ulp (at %.9g)\n", exp_isa_name(isa),
                static_cast<long long>(worst), worst_x);
    EXPECT_LE(worst, 3) << exp_isa_name(isa) << ": sigmoid(" << worst_x << ") off by " << worst
                        << " ulp";
  }
}

// Softmax and LogSoftmax rows of lengths around the vector widths, against double precision,
// and the NaN/inf rows as the scalar loop (softmax_groups) gives them.
TEST(VectorExp, SoftmaxRowsMatchDoublePrecision) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> wide(-60.f, 60.f);
  for (ExpIsa isa : vector_isas()) {
    for (int64_t len : {1, 3, 7, 8, 9, 15, 16, 17, 31, 40, 100, 1000}) {
      const int64_t rows = 3;
      std::vector<float> x(rows * len), y(rows * len), ly(rows * len);
      for (float &v : x) v = wide(rng);
      softmax_rows(isa, false, x.data(), y.data(), rows, len);
      softmax_rows(isa, true, x.data(), ly.data(), rows, len);
      for (int64_t r = 0; r < rows; ++r) {
        const float *xr = x.data() + r * len;
        double m = -INFINITY, sum = 0.0;
        for (int64_t j = 0; j < len; ++j) m = std::max(m, static_cast<double>(xr[j]));
        for (int64_t j = 0; j < len; ++j) sum += std::exp(xr[j] - m);
        for (int64_t j = 0; j < len; ++j) {
          const double want = std::exp(xr[j] - m) / sum;
          // x - max is rounded to float before exp (in the scalar loop too): a relative error
          // up to |x - max| 2^-24 in exp; then one ulp for exp and for the division, and the
          // float sum's rounding (2^-20 in all), and a few subnormal steps.
          const double tolerance = want * (0x1p-20 + std::fabs(xr[j] - m) * 0x1p-23) + 0x1p-146;
          EXPECT_NEAR(y[r * len + j], want, tolerance)
              << exp_isa_name(isa) << " len " << len << " element " << j;
          const double want_log = (xr[j] - m) - std::log(sum);
          EXPECT_NEAR(ly[r * len + j], want_log, std::fabs(want_log) * 0x1p-21 + 1e-6)
              << exp_isa_name(isa) << " log, len " << len << " element " << j;
        }
      }
    }
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const std::vector<std::vector<float>> specials = {
        {1.f, nan, 2.f},
        {-inf, -inf, -inf},
        {inf, 1.f, 2.f},
        {-inf, 0.f, -inf, 3.f},
        {nan, nan},
        {-1e30f, 0.f, 1e30f, -1e30f, 5.f, 6.f, 7.f, 8.f, 9.f},
        {0.f, -200.f, -1000.f, 0.f}};
    for (const std::vector<float> &row : specials)
      for (bool log : {false, true}) {
        const int64_t len = static_cast<int64_t>(row.size());
        std::vector<float> got(row.size()), want(row.size());
        softmax_rows(isa, log, row.data(), got.data(), 1, len);
        if (log)
          softmax_groups<SoftmaxKind::log_softmax>(row.data(), want.data(), 1, len, 1);
        else
          softmax_groups<SoftmaxKind::softmax>(row.data(), want.data(), 1, len, 1);
        for (int64_t j = 0; j < len; ++j) {
          if (std::isnan(want[j]))
            EXPECT_TRUE(std::isnan(got[j])) << exp_isa_name(isa) << " element " << j;
          else if (std::isinf(want[j]) || want[j] == 0.f)
            EXPECT_EQ(got[j], want[j])
                << exp_isa_name(isa) << (log ? " log" : "") << " element " << j;
          else
            EXPECT_NEAR(got[j], want[j], std::fabs(want[j]) * 1e-6f)
                << exp_isa_name(isa) << (log ? " log" : "") << " element " << j;
        }
      }
  }
}

}  // namespace
}  // namespace axstream::engine
