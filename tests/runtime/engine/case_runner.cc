#include "case_runner.h"

#include <onnx/onnx_pb.h>
// After onnx_pb.h, which defines the ONNX_API it uses.
#include <onnx/onnx-data.pb.h>

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

// Sequence and optional values reach the engine as the tensors they hold (docs/runtime.md): a
// sequence "x" as inputs or outputs "x[0]", "x[1]", ..., an optional tensor "o" as "o" when it
// has one, an optional sequence as its sequence's.
enum class ValueKind { tensor, sequence, optional };

ValueKind kind_of(const onnx::TypeProto &type) {
  if (type.has_sequence_type()) return ValueKind::sequence;
  if (type.has_optional_type()) return ValueKind::optional;
  return ValueKind::tensor;
}

struct CaseValue {
  std::string name;
  ValueKind kind;
  bool indexed = false;  // its tensors are "name[i]" (a sequence, or an optional sequence)
  std::vector<onnx::TensorProto> tensors;
  std::string tensor_name(size_t i) const {
    return indexed ? name + "[" + std::to_string(i) + "]" : name;
  }
};

// The tensors a case's .pb holds for a value of `kind`: a TensorProto's one, a SequenceProto's
// in order, an OptionalProto's one, its sequence's or none.
CaseValue read_case_value(const fs::path &path, const std::string &name, ValueKind kind) {
  const std::string bytes = read_file(path);
  CaseValue value{name, kind, kind == ValueKind::sequence, {}};
  auto unreadable = [&](const char *what) {
    return InvalidArgument(path.string() + ": not a valid ONNX " + what);
  };
  onnx::SequenceProto sequence;
  if (kind == ValueKind::tensor) {
    onnx::TensorProto t;
    if (!t.ParseFromString(bytes)) throw unreadable("TensorProto");
    value.tensors.push_back(std::move(t));
    return value;
  }
  if (kind == ValueKind::optional) {
    onnx::OptionalProto optional;
    if (!optional.ParseFromString(bytes)) throw unreadable("OptionalProto");
    if (optional.has_tensor_value()) value.tensors.push_back(optional.tensor_value());
    if (!optional.has_sequence_value()) return value;
    sequence = optional.sequence_value();
    value.indexed = true;
  } else if (!sequence.ParseFromString(bytes)) {
    throw unreadable("SequenceProto");
  }
  if (sequence.map_values_size() || sequence.sequence_values_size() ||
      sequence.optional_values_size())
    throw NotImplemented(path.string() + ": a sequence of maps, sequences or optionals");
  for (const auto &t : sequence.tensor_values()) value.tensors.push_back(t);
  return value;
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
    // The graph inputs read at run time (their file's index), and the outputs.
    struct CaseEntry {
      std::string name;
      ValueKind kind;
      int file;
    };
    std::vector<CaseEntry> run_time_values, output_values;
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
        const ValueKind kind = kind_of(in.type());
        if (kind != ValueKind::tensor) {
          // A sequence's length and its tensors' shapes are given by name, from data set 0.
          const CaseValue value = read_case_value(pb, in.name(), kind);
          for (size_t i = 0; i < value.tensors.size(); ++i)
            options.input_shapes[value.tensor_name(i)] = std::vector<int64_t>(
                value.tensors[i].dims().begin(), value.tensors[i].dims().end());
          run_time_values.push_back({in.name(), kind, index - 1});
          continue;
        }
        if (freeze_params && static_cast<size_t>(index) > run_time_inputs) {
          onnx::TensorProto *t = graph->add_initializer();
          if (!t->ParseFromString(read_file(pb)))
            throw InvalidArgument(pb.string() + ": unreadable");
          t->set_name(in.name());
          graph->mutable_input()->DeleteSubrange(k, 1);
          --k;
          continue;
        }
        run_time_values.push_back({in.name(), kind, index - 1});
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
      for (int k = 0; k < graph->output_size(); ++k)
        output_values.push_back({graph->output(k).name(), kind_of(graph->output(k).type()), k});
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
      // Each value's tensors, flattened in the program's order (a sequence's in its order).
      auto read_set = [&](const std::vector<CaseEntry> &entries, const char *kind,
                          const std::vector<TensorDesc> &descs) {
        std::vector<Tensor> tensors;
        for (const CaseEntry &entry : entries) {
          // Appended piece by piece: GCC 12 misreads `"literal" + std::string&&` (-Wrestrict,
          // GCC bug 105329).
          std::string file_name = kind;
          file_name.append("_").append(std::to_string(entry.file)).append(".pb");
          const fs::path pb = data / file_name;
          if (entry.kind == ValueKind::tensor) {
            const size_t i = tensors.size();
            tensors.push_back(
                read_case_tensor(pb, i < descs.size() ? descs[i].dtype : DType::f32, kind));
            continue;
          }
          const CaseValue value = read_case_value(pb, entry.name, entry.kind);
          for (size_t i = 0; i < value.tensors.size(); ++i) {
            const size_t at = tensors.size();
            if (at < descs.size() && descs[at].name != value.tensor_name(i))
              throw InvalidArgument(std::string(kind) + " " + std::to_string(at) +
                                    " of the program is '" + descs[at].name + "', the case's '" +
                                    value.tensor_name(i) + "'");
            tensors.push_back(tensor_from_onnx_bytes(value.tensors[i].SerializeAsString(), kind));
          }
        }
        if (tensors.size() != descs.size())
          throw InvalidArgument(std::string("the case gives ") + std::to_string(tensors.size()) +
                                " " + kind + " tensors, the program has " +
                                std::to_string(descs.size()));
        return tensors;
      };
      std::vector<Tensor> inputs = read_set(run_time_values, "input", program->inputs());
      std::vector<Tensor> expected = read_set(output_values, "output", program->outputs());
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
  // size, a Loop's trip count, the condition of an If choosing between sequences): every input
  // of such a case is a parameter.
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
