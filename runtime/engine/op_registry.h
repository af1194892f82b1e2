// Kernels and the registry that maps (op type, opset) to the function compiling a node into
// one. Each op family registers itself in its own file with AXSTREAM_ENGINE_OP; the explicit
// list in op_list.h is walked once at engine start-up.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "axstream/error.h"
#include "graph.h"

namespace dnnl {
struct engine;
struct stream;
}  // namespace dnnl

namespace axstream::engine {

class Kernel;

// What a kernel keeps between its runs in one executor: objects costly to build on every run
// (oneDNN memory objects and argument lists), rebound to the run's buffers each time.
struct KernelState {
  virtual ~KernelState() = default;
};

// One executor's kernel states, by owner: a kernel, or a part of one that keeps its own (an
// RNN kernel's oneDNN layer, DnnlRnn). Kernels are shared by the executors of a program; their
// states are not, so executors on two threads never touch one state.
class KernelStates {
 public:
  KernelState *find(const void *owner) const {
    auto it = states_.find(owner);
    return it == states_.end() ? nullptr : it->second.get();
  }
  KernelState &insert(const void *owner, std::unique_ptr<KernelState> state) {
    return *(states_[owner] = std::move(state));
  }

 private:
  std::unordered_map<const void *, std::unique_ptr<KernelState>> states_;
};

// Per-executor state a kernel may use while running (never shared between threads).
struct ExecContext {
  void *scratch = nullptr;  // at least Kernel::scratch_bytes, 64-byte aligned
  dnnl::stream *stream = nullptr;
  dnnl::engine *engine = nullptr;
  // One per output of the running step: a kernel whose output shape depends on the input
  // values (OpContext::set_output_upper_bound) stores the shape it wrote there.
  Shape *output_shapes = nullptr;
  // The executor's kernel states (kernel_state()); null where nothing keeps them (a one-off
  // run at compile time), and the kernel then builds its state for that run alone.
  KernelStates *states = nullptr;

  // The context an enclosing kernel hands the kernel it runs: its own scratch, the same
  // stream, engine and states.
  ExecContext inner(void *inner_scratch) const {
    return {inner_scratch, stream, engine, nullptr, states};
  }
};

// The state `owner` (a kernel, or a part of one) keeps in this executor, made by `make()`
// (returning std::unique_ptr<State>) on its first run there; without ctx.states, made into
// `local`.
template <typename State, typename Make>
State &kernel_state(ExecContext &ctx, const void *owner, std::unique_ptr<KernelState> &local,
                    Make &&make) {
  if (ctx.states) {
    if (KernelState *state = ctx.states->find(owner)) return static_cast<State &>(*state);
    return static_cast<State &>(ctx.states->insert(owner, make()));
  }
  local = make();
  return static_cast<State &>(*local);
}

class Kernel {
 public:
  virtual ~Kernel() = default;
  // inputs[i] is nullptr for an omitted optional input. Shapes were fixed at compile time.
  virtual void run(ExecContext &ctx, const void *const *inputs, void *const *outputs) const = 0;
  size_t scratch_bytes = 0;
  uint64_t macs = 0;
  std::string impl;  // implementation name shown by describe(), e.g. oneDNN's
  // An input whose buffer output 0 may be (-1: none): the kernel reads each element of it only
  // where it then writes that element, and copies it over when the buffers differ. The memory
  // plan gives them one buffer when no later step reads the input.
  int output_may_overwrite_input = -1;
};

// What a compile function sees of one node: attributes, input types/shapes/constants, and
// where it writes its outputs' types and shapes.
class OpContext {
 public:
  OpContext(const Graph &graph, const Node &node, bool infer_only);

  const Node &node() const { return node_; }
  int opset() const { return node_.opset; }
  // infer_only: only output types/shapes are wanted (a kernel may skip costly set-up).
  bool infer_only() const { return infer_only_; }
  std::string label() const;
  // "<model file>: node '...' (Op)": the start of a message raised outside fail()/unsupported().
  std::string where() const;

  size_t input_count() const { return node_.inputs.size(); }
  bool has_input(size_t i) const { return i < node_.inputs.size() && node_.inputs[i] >= 0; }
  const Value &input(size_t i) const;
  const Shape &in_shape(size_t i) const { return input(i).shape; }
  DType in_dtype(size_t i) const { return input(i).dtype; }
  const Tensor *constant(size_t i) const;  // nullptr if the input is not constant
  // The input's constant value; NotImplemented naming the node if it is computed at run time.
  const Tensor &require_constant(size_t i, const char *what) const;
  // require_constant, holding one value (a scalar or a 1-element tensor); InvalidArgument naming
  // the node and input otherwise: an empty tensor has no value to read (its data is null).
  const Tensor &require_scalar(size_t i, const char *what) const;
  std::vector<int64_t> constant_ints(size_t i, const char *what) const;
  // A per-tensor quantisation parameter: the constant one-float scale (InvalidArgument otherwise),
  // and the zero point, 0 when the optional input is absent.
  float scalar_scale(size_t i, const char *what) const;
  int32_t zero_point_or_zero(size_t i, const char *what) const;

  size_t output_count() const { return node_.outputs.size(); }
  void set_output(size_t i, DType dtype, Shape shape);
  // An output whose shape depends on the input values: `max_shape` sizes its buffer, and the
  // kernel writes a dense row-major tensor of the actual shape at the buffer's start and stores
  // that shape in ExecContext::output_shapes[i] on every run.
  void set_output_upper_bound(size_t i, DType dtype, Shape max_shape);
  bool out_data_dependent(size_t i) const { return out_data_dependent_.at(i); }
  DType out_dtype(size_t i) const { return out_dtypes_.at(i); }
  const Shape &out_shape(size_t i) const { return out_shapes_.at(i); }

  bool has_attr(const std::string &name) const { return node_.attrs.count(name) != 0; }
  int64_t attr_i(const std::string &name, int64_t dflt) const;
  float attr_f(const std::string &name, float dflt) const;
  std::string attr_s(const std::string &name, const std::string &dflt) const;
  std::vector<int64_t> attr_ints(const std::string &name, std::vector<int64_t> dflt = {}) const;
  std::vector<float> attr_floats(const std::string &name, std::vector<float> dflt = {}) const;
  const Tensor *attr_t(const std::string &name) const;

  // Throws InvalidArgument "node 'x' (Op): <message>".
  [[noreturn]] void fail(const std::string &message) const;
  [[noreturn]] void unsupported(const std::string &message) const;
  void expect_inputs(size_t min_count, size_t max_count) const;
  // Normalises a possibly negative axis against `rank`; fails when out of range.
  int64_t axis(int64_t axis, size_t rank, const char *what = "axis") const;

  std::vector<DType> out_dtypes_;
  std::vector<Shape> out_shapes_;
  std::vector<bool> out_data_dependent_;

 private:
  const Graph &graph_;
  const Node &node_;
  bool infer_only_;
};

using CompileFn = std::unique_ptr<Kernel> (*)(OpContext &ctx);

struct OpDef {
  std::string op_type;
  std::string domain;
  int first_opset;
  int last_opset;
  CompileFn compile;
  // Shape/Size: foldable once input shapes are known, whatever the input values.
  bool folds_on_shapes = false;
  // The kernel only moves, selects or casts elements (dtype_size bytes at a time), or compares
  // them exactly (as doubles: ArgMax, Equal, Less, ...), so it takes the storage-only dtypes
  // float16, bfloat16 and float64 too; any other op reads float16/bfloat16 through Casts to
  // float32 the compiler inserts (half_compute.h), and float64 is refused, naming the node,
  // before its compile function runs.
  bool moves_any_dtype = false;
  // The kernel computes float64 in double precision (its accumulators are double anyway), so
  // the compiler lets float64 (not float16/bfloat16) through to it.
  bool computes_float64 = false;
  // The kernel computes int16, uint16, uint32 and uint64 in their own type with ONNX's
  // wrap-around (modulo 2^n) semantics (is_opt_in_integer_dtype); the compiler refuses them, naming
  // the node, for any other op that does more than move elements.
  bool computes_opt_in_integers = false;
};

class OpRegistry {
 public:
  // The registry, filled on first use from op_list.h.
  static const OpRegistry &instance();
  void add(OpDef def);
  // nullptr when no kernel covers this op at this opset.
  const OpDef *find(const std::string &domain, const std::string &op_type, int opset) const;

 private:
  std::vector<OpDef> defs_;
};

// A kernel that is just a function of the inputs/outputs and captured compile-time state.
class LambdaKernel : public Kernel {
 public:
  using Fn = std::function<void(ExecContext &, const void *const *, void *const *)>;
  explicit LambdaKernel(Fn fn) : fn_(std::move(fn)) {}
  void run(ExecContext &ctx, const void *const *in, void *const *out) const override {
    fn_(ctx, in, out);
  }

 private:
  Fn fn_;
};
template <typename F>
std::unique_ptr<Kernel> make_kernel(F &&f) {
  return std::make_unique<LambdaKernel>(std::forward<F>(f));
}

}  // namespace axstream::engine

// Defines axstream_engine_register_<Id>(OpRegistry&), called from the list in op_list.h.
#define AXSTREAM_ENGINE_OP(Id, op_type, first_opset, last_opset, compile_fn)     \
  void axstream_engine_register_##Id(::axstream::engine::OpRegistry &registry) { \
    registry.add({op_type, "", first_opset, last_opset, compile_fn, false});     \
  }
#define AXSTREAM_ENGINE_OP_EX(Id, domain, op_type, first_opset, last_opset, compile_fn,    \
                              folds_on_shapes)                                             \
  void axstream_engine_register_##Id(::axstream::engine::OpRegistry &registry) {           \
    registry.add({op_type, domain, first_opset, last_opset, compile_fn, folds_on_shapes}); \
  }
// An op whose kernel computes float64 in double as well as float32 and the integers
// (OpDef::computes_float64).
#define AXSTREAM_ENGINE_FLOAT64_OP(Id, op_type, first_opset, last_opset, compile_fn)      \
  void axstream_engine_register_##Id(::axstream::engine::OpRegistry &registry) {          \
    registry.add({op_type, "", first_opset, last_opset, compile_fn, false, false, true}); \
  }
// An op whose kernel also computes int16, uint16, uint32 and uint64
// (OpDef::computes_opt_in_integers), and float64 in double with the _FLOAT64 form.
#define AXSTREAM_ENGINE_ALL_INTEGERS_OP(Id, op_type, first_opset, last_opset, compile_fn)        \
  void axstream_engine_register_##Id(::axstream::engine::OpRegistry &registry) {                 \
    registry.add({op_type, "", first_opset, last_opset, compile_fn, false, false, false, true}); \
  }
#define AXSTREAM_ENGINE_FLOAT64_ALL_INTEGERS_OP(Id, op_type, first_opset, last_opset, compile_fn) \
  void axstream_engine_register_##Id(::axstream::engine::OpRegistry &registry) {                  \
    registry.add({op_type, "", first_opset, last_opset, compile_fn, false, false, true, true});   \
  }
// An op whose kernel only moves, selects, casts or compares elements, whatever their dtype
// (OpDef::moves_any_dtype); folds_on_shapes as in AXSTREAM_ENGINE_OP_EX.
#define AXSTREAM_ENGINE_DATA_OP(Id, op_type, first_opset, last_opset, compile_fn, folds_on_shapes) \
  void axstream_engine_register_##Id(::axstream::engine::OpRegistry &registry) {                   \
    registry.add({op_type, "", first_opset, last_opset, compile_fn, folds_on_shapes, true});       \
  }
