#include "case_runner.h"

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include "axstream/error.h"
#include "axstream/runtime/engine.h"
#include "onnx_import.h"

namespace axstream::engine::testing {
namespace fs = std::filesystem;

namespace {

std::string read_file(const fs::path &p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string compare(const Tensor &expected, const void *actual, DType actual_dtype,
                    const Tolerance &tol, const std::string &name) {
  if (expected.dtype != actual_dtype)
    return name + ": dtype " + dtype_name(actual_dtype) + ", expected " +
           dtype_name(expected.dtype);
  int64_t n = expected.count();
  int64_t bad = 0, first_bad = -1;
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    double e = expected.as_double(i), a = load_as_double(actual, actual_dtype, i);
    bool ok;
    if (expected.dtype == DType::f32) {
      ok = (std::isnan(e) && std::isnan(a)) || (std::isinf(e) && e == a) ||
           std::fabs(a - e) <= tol.atol + tol.rtol * std::fabs(e);
    } else if (expected.dtype == DType::i8 || expected.dtype == DType::u8) {
      ok = std::fabs(a - e) <= tol.quantized_lsb;
    } else if (expected.dtype != DType::f32 && is_floating_dtype(expected.dtype)) {
      // float16 and bfloat16 exact, any NaN a NaN, unless the caller allows half precision's
      // error (ops computed in float32 and rounded, against a reference that rounded too);
      // float64 from the ops that compute in double: within 1e-12 relative.
      ok = (std::isnan(e) && std::isnan(a)) || a == e ||
           (expected.dtype == DType::f64 && std::fabs(a - e) <= 1e-12 * std::fabs(e)) ||
           (expected.dtype != DType::f64 && tol.half_rtol > 0 && !std::isinf(e) &&
            std::fabs(a - e) <= tol.half_atol + tol.half_rtol * std::fabs(e));
    } else if (expected.dtype == DType::i64 || expected.dtype == DType::u64) {
      // Bit for bit: as doubles, values past 2^53 would compare equal to their neighbours.
      const size_t size = dtype_size(expected.dtype);
      ok = std::memcmp(static_cast<const uint8_t *>(actual) + i * size,
                       expected.bytes.data() + i * size, size) == 0;
    } else {
      ok = a == e;
    }
    if (!ok) {
      if (first_bad < 0) first_bad = i;
      ++bad;
      worst = std::max(worst, std::fabs(a - e));
    }
  }
  if (!bad) return "";
  std::ostringstream m;
  m << name << ": " << bad << " of " << n << " elements differ (max abs diff " << worst
    << "; first at " << first_bad << ": got " << load_as_double(actual, actual_dtype, first_bad)
    << ", expected " << expected.as_double(first_bad) << ")";
  return m.str();
}

// A case's input_N.pb / output_N.pb for a value the program holds as `dtype`. ONNX 1.12's
// generator wrote bfloat16 tensors as UINT16 (data_type 4) holding the same 16-bit patterns.
Tensor read_case_tensor(const fs::path &path, DType dtype, const std::string &what) {
  std::string bytes = read_file(path);
  onnx::TensorProto proto;
  if (dtype == DType::bf16 && proto.ParseFromString(bytes) &&
      proto.data_type() == onnx::TensorProto::UINT16) {
    proto.set_data_type(onnx::TensorProto::BFLOAT16);
    bytes = proto.SerializeAsString();
  }
  return tensor_from_onnx_bytes(bytes, what);
}

}  // namespace

namespace {

// Graph inputs after the first `run_time_inputs` become initializers holding the case's values,
// for ops whose parameters (pads, scales, shapes) the engine needs at compile time.
constexpr size_t kAllInputs = std::numeric_limits<size_t>::max();
CaseResult run_once(const std::string &dir, const Tolerance &tolerance, size_t run_time_inputs) {
  bool freeze_params = run_time_inputs != kAllInputs;
  CaseResult result;
  try {
    // Inputs declared with dynamic dims take the shapes of the case's own input tensors.
    std::string model_path = (fs::path(dir) / "model.onnx").string();
    onnx::ModelProto model;
    CompileOptions options;
    // NonMaxSuppression, NonZero and Unique: compared at the shape each run reports.
    options.allow_data_dependent_shapes = true;
    if (model.ParseFromString(read_file(model_path))) {
      std::set<std::string> initializers;
      for (const auto &t : model.graph().initializer()) initializers.insert(t.name());
      int index = 0;
      onnx::GraphProto *graph = model.mutable_graph();
      for (int k = 0; k < graph->input_size(); ++k) {
        const auto &in = graph->input(k);
        if (initializers.count(in.name())) continue;
        fs::path pb =
            fs::path(dir) / "test_data_set_0" / ("input_" + std::to_string(index++) + ".pb");
        if (freeze_params && static_cast<size_t>(index) > run_time_inputs) {
          onnx::TensorProto *t = graph->add_initializer();
          if (!t->ParseFromString(read_file(pb)))
            throw InvalidArgument(pb.string() + ": unreadable");
          t->set_name(in.name());
          graph->mutable_input()->DeleteSubrange(k, 1);
          --k;
          continue;
        }
        bool dynamic = !in.type().tensor_type().has_shape();
        for (const auto &d : in.type().tensor_type().shape().dim())
          if (!d.has_dim_value()) dynamic = true;
        if (dynamic && fs::exists(pb)) {
          onnx::TensorProto t;
          if (t.ParseFromString(read_file(pb)))
            options.input_shapes[in.name()] =
                std::vector<int64_t>(t.dims().begin(), t.dims().end());
        }
      }
    }
    auto program = freeze_params
                       ? Program::from_bytes(model.SerializeAsString(), model_path, options)
                       : Program::from_file(model_path, options);
    for (int set = 0;; ++set) {
      fs::path data = fs::path(dir) / ("test_data_set_" + std::to_string(set));
      if (!fs::exists(data)) {
        if (set == 0) {
          result.message = "no test_data_set_0";
          return result;
        }
        break;
      }
      std::vector<Tensor> inputs, expected;
      size_t input_count = std::min<size_t>(run_time_inputs, program->inputs().size());
      for (size_t i = 0; i < input_count; ++i)
        inputs.push_back(read_case_tensor(data / ("input_" + std::to_string(i) + ".pb"),
                                          program->inputs()[i].dtype, "input"));
      for (size_t i = 0; i < program->outputs().size(); ++i)
        expected.push_back(read_case_tensor(data / ("output_" + std::to_string(i) + ".pb"),
                                            program->outputs()[i].dtype, "output"));
      std::vector<const void *> in_ptrs;
      for (size_t i = 0; i < inputs.size(); ++i) {
        const TensorDesc &d = program->inputs()[i];
        if (inputs[i].dtype != d.dtype || inputs[i].shape != d.shape) {
          result.message = "input " + std::to_string(i) + " is " + dtype_name(inputs[i].dtype) +
                           shape_str(inputs[i].shape) + ", program expects " + dtype_name(d.dtype) +
                           shape_str(d.shape);
          return result;
        }
        in_ptrs.push_back(inputs[i].bytes.data());
      }
      std::vector<std::vector<uint8_t>> outs;
      std::vector<void *> out_ptrs;
      for (const TensorDesc &d : program->outputs()) outs.emplace_back(d.byte_size() + 1);
      for (auto &o : outs) out_ptrs.push_back(o.data());
      auto executor = program->make_executor();
      executor->run(in_ptrs, out_ptrs);
      for (size_t i = 0; i < outs.size(); ++i) {
        const TensorDesc &d = program->outputs()[i];
        const Shape &shape = executor->output_shape(i);
        if (shape != expected[i].shape) {
          result.message = "output " + d.name + ": shape " + shape_str(shape) +
                           (d.data_dependent_shape ? " (data-dependent)" : "") + ", expected " +
                           shape_str(expected[i].shape);
          return result;
        }
        std::string diff = compare(expected[i], outs[i].data(), d.dtype, tolerance, d.name);
        if (!diff.empty()) {
          result.message = diff;
          return result;
        }
      }
    }
    result.status = CaseStatus::pass;
  } catch (const NotImplemented &e) {
    result.status = CaseStatus::unsupported;
    result.message = e.what();
  } catch (const std::exception &e) {
    result.message = std::string("exception: ") + e.what();
  }
  return result;
}

}  // namespace

CaseResult run_case(const std::string &dir, const Tolerance &tolerance) {
  auto needs_constant = [](const CaseResult &r) {
    return r.status == CaseStatus::unsupported &&
           r.message.find("must be a constant") != std::string::npos;
  };
  CaseResult result = run_once(dir, tolerance, kAllInputs);
  if (needs_constant(result)) {
    result = run_once(dir, tolerance, 1);
    if (result.status == CaseStatus::pass) result.message = "parameter inputs frozen as constants";
  }
  // An op whose first input is itself a shape operand (Range, ConstantOfShape, the windows'
  // size): every input of such a case is a parameter.
  if (needs_constant(result) && result.message.find("input 0 (") != std::string::npos) {
    result = run_once(dir, tolerance, 0);
    if (result.status == CaseStatus::pass)
      result.message = "every input frozen as a constant (the op's input 0 is a shape operand)";
  }
  return result;
}

CaseResult run_case_with_constant_parameters(const std::string &dir, const Tolerance &tolerance) {
  return run_once(dir, tolerance, 1);
}

}  // namespace axstream::engine::testing
