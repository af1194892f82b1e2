// The inference engine's public face: compile an ONNX graph (QDQ int8 or float) once into a
// Program, then run it through Executors, one per worker thread, each with its own buffers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace axstream::engine {

// f16, bf16 and f64 are storage types: graph I/O, initializers, Cast and the ops that only move
// bytes take them; an op that computes refuses them (NotImplemented naming the node). i16, u16,
// u32 and u64 (appended: the values above are fixed) are held and moved everywhere, but only the
// ops registered for them compute on them; any other refuses them (NotImplemented naming the
// node).
enum class DType { f32, i8, u8, i32, i64, bool_, f16, bf16, f64, i16, u16, u32, u64 };
const char *dtype_name(DType dtype) noexcept;
size_t dtype_size(DType dtype) noexcept;

struct TensorDesc {
  std::string name;
  DType dtype = DType::f32;
  std::vector<int64_t> shape;
  // An output of NonMaxSuppression, NonZero or Unique (on run-time values): `shape` is its
  // upper bound, the size of the buffer the caller passes; a run writes a dense row-major
  // tensor of Executor::output_shape() at the buffer's start (only with
  // CompileOptions::allow_data_dependent_shapes).
  bool data_dependent_shape = false;
  size_t element_count() const;
  size_t byte_size() const { return element_count() * dtype_size(dtype); }
};

struct CompileOptions {
  // Fixes dynamic input dims (by input name) — e.g. {"x", {1,3,640,640}}.
  std::map<std::string, std::vector<int64_t>> input_shapes;
  // oneDNN/OpenMP threads an executor uses inside one run (1 per simulated AIPU core); below 1
  // the compile is InvalidArgument.
  int threads = 1;
  // Print the optimised graph to stderr (also enabled by AXSTREAM_PRINT_GRAPH=1).
  bool print_graph = false;
  // The largest tensor (graph value, constant or folded) the engine accepts, in bytes: a graph
  // whose shapes need more is InvalidArgument naming the value, before anything that size is
  // allocated or computed.
  size_t max_tensor_bytes = size_t(4) << 30;
  // Lets an op whose output shape depends on the input values (NonMaxSuppression, NonZero,
  // Unique on run-time values) make a graph output, sized at its upper bound
  // (TensorDesc::data_dependent_shape). Off, such a node is NotImplemented naming it: callers
  // whose tensors have fixed shapes (model packages, their pre/postambles, axcompile) must not
  // read an upper bound as the result. Even on, only graph outputs may be data-dependent: a node
  // reading one is NotImplemented naming both nodes.
  bool allow_data_dependent_shapes = false;
};

class Executor;

class Program {
 public:
  // Throws InvalidArgument (unreadable / malformed file, naming path and node) or
  // NotImplemented (unsupported op or dynamic shape, naming node and op).
  static std::shared_ptr<const Program> from_file(const std::string &onnx_path,
                                                  const CompileOptions &options = {});
  static std::shared_ptr<const Program> from_bytes(const std::string &onnx_bytes,
                                                   const std::string &source_name,
                                                   const CompileOptions &options = {});
  virtual ~Program() = default;
  virtual const std::vector<TensorDesc> &inputs() const = 0;
  virtual const std::vector<TensorDesc> &outputs() const = 0;
  // Multiply-accumulates of one run (for device pacing and reports).
  virtual uint64_t macs() const = 0;
  // The optimised graph as text, one node per line.
  virtual std::string describe() const = 0;
  virtual std::unique_ptr<Executor> make_executor() const = 0;
};

class Executor {
 public:
  virtual ~Executor() = default;
  // inputs[i] / outputs[i] point to dense row-major buffers of inputs()[i] / outputs()[i]
  // (for a data-dependent output, of its upper-bound shape).
  virtual void run(const std::vector<const void *> &inputs, const std::vector<void *> &outputs) = 0;
  // Output o's shape in the last run: outputs()[o].shape, but for a data-dependent output
  // (TensorDesc::data_dependent_shape) the shape of what that run wrote at its buffer's start
  // (before any run: the upper bound).
  virtual const std::vector<int64_t> &output_shape(size_t o) const = 0;
};

}  // namespace axstream::engine
