// Runs one ONNX backend-test-style case directory (model.onnx + test_data_set_*/input_N.pb,
// output_N.pb) through the engine and compares the outputs.
#pragma once

#include <string>

namespace axstream::engine::testing {

enum class CaseStatus { pass, fail, unsupported };

struct CaseResult {
  CaseStatus status = CaseStatus::fail;
  std::string message;
};

struct Tolerance {
  double rtol = 1e-3;
  double atol = 1e-5;
  int quantized_lsb = 0;  // allowed difference for int8/uint8 outputs
  // float16/bfloat16 outputs: exact (NaN a NaN) unless half_rtol is set, then within
  // half_atol + half_rtol * |expected| (a model computing in half precision).
  double half_rtol = 0;
  double half_atol = 0;
};

CaseResult run_case(const std::string &dir, const Tolerance &tolerance = {});
// The same with every graph input after the first made an initializer holding the case's value
// (weights the backend cases pass as inputs become constants, as exporters write them).
CaseResult run_case_with_constant_parameters(const std::string &dir,
                                             const Tolerance &tolerance = {});

}  // namespace axstream::engine::testing
