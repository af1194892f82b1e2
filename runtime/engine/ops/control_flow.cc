// If, Loop and Scan: each subgraph is compiled as a program of its own (subgraph.h), with static
// shapes from the node's inputs, and run by the node's kernel (If: the branch its condition
// takes; Loop and Scan: the body once per iteration) in the node's scratch memory. The engine
// fixes every shape when it compiles, so what would give an output a shape known only at run
// time is NotImplemented, naming the node and the reason: If branches whose outputs differ in
// shape or type (unless the condition is a constant), Loop scan outputs without a constant trip
// count or with a condition that may end the loop early, Loop-carried or Scan state values whose
// shape changes in the body.
#include <algorithm>
#include <cstring>
#include <limits>

#include "../subgraph.h"
#include "common.h"

namespace axstream::engine {
namespace {

const Graph &graph_attr(const OpContext &ctx, const char *name) {
  auto it = ctx.node().attrs.find(name);
  if (it == ctx.node().attrs.end() || it->second.kind != Attribute::Kind::graph ||
      !it->second.graph)
    ctx.fail(std::string("attribute '") + name + "' (a graph) is missing");
  return *it->second.graph;
}

// The outer-scope values the node's subgraphs read: its last `count` inputs.
std::vector<const Value *> captured_values(const OpContext &ctx, size_t count) {
  std::vector<const Value *> values;
  for (size_t i = ctx.input_count() - count; i < ctx.input_count(); ++i)
    values.push_back(&ctx.input(i));
  return values;
}

Value formal_value(const std::string &name, DType dtype, Shape shape, TensorPtr constant = {}) {
  Value v;
  v.name = name;
  v.dtype = dtype;
  v.shape = std::move(shape);
  v.shape_known = true;
  v.constant = std::move(constant);
  return v;
}

std::string desc_text(const TensorDesc &d) {
  return "'" + d.name + "' " + dtype_name(d.dtype) + " " + shape_str(d.shape);
}

// The scratch a control-flow kernel carves up: the body's workspace first, then its own buffers,
// each at a 64-byte boundary.
struct ScratchLayout {
  size_t bytes = 0;
  size_t add(size_t size) {
    size_t offset = bytes;
    bytes += round_up_64(size);
    return offset;
  }
};

// A tensor seen as `outer` blocks of `length` rows of `row_bytes` along one axis: a Scan input's
// slices and a scan output's rows.
struct AxisRows {
  size_t outer = 1, length = 1, row_bytes = 0;
  AxisRows() = default;
  AxisRows(const Shape &shape, size_t axis, DType dtype) : row_bytes(dtype_size(dtype)) {
    for (size_t d = 0; d < shape.size(); ++d) {
      auto n = static_cast<size_t>(shape[d]);
      if (d < axis)
        outer *= n;
      else if (d == axis)
        length = n;
      else
        row_bytes *= n;
    }
  }
  void read(const uint8_t *tensor, size_t index, uint8_t *row) const {
    if (!row_bytes) return;
    for (size_t o = 0; o < outer; ++o)
      std::memcpy(row + o * row_bytes, tensor + (o * length + index) * row_bytes, row_bytes);
  }
  void write(uint8_t *tensor, size_t index, const uint8_t *row) const {
    if (!row_bytes) return;
    for (size_t o = 0; o < outer; ++o)
      std::memcpy(tensor + (o * length + index) * row_bytes, row + o * row_bytes, row_bytes);
  }
};

void copy_bytes(void *to, const void *from, size_t bytes) {
  if (bytes) std::memcpy(to, from, bytes);
}

// ---- If ------------------------------------------------------------------------------------

class IfKernel final : public Kernel {
 public:
  // A null branch is never taken (the condition is a constant).
  IfKernel(std::shared_ptr<const Subgraph> then_branch, std::shared_ptr<const Subgraph> else_branch,
           size_t captured)
      : then_(std::move(then_branch)), else_(std::move(else_branch)), captured_(captured) {
    for (const auto *branch : {then_.get(), else_.get()})
      if (branch) {
        scratch_bytes = std::max(scratch_bytes, branch->workspace_bytes());
        macs = std::max(macs, branch->macs());
      }
  }
  void run(ExecContext &ctx, const void *const *in, void *const *out) const override {
    const Subgraph *branch = *static_cast<const bool *>(in[0]) ? then_.get() : else_.get();
    std::vector<const void *> inputs(in + 1, in + 1 + captured_);
    std::vector<void *> outputs(out, out + branch->outputs().size());
    branch->run(ctx, static_cast<uint8_t *>(ctx.scratch), inputs, outputs);
  }

 private:
  std::shared_ptr<const Subgraph> then_, else_;
  size_t captured_;
};

std::unique_ptr<Kernel> compile_if(OpContext &ctx) {
  const Graph &then_graph = graph_attr(ctx, "then_branch");
  const Graph &else_graph = graph_attr(ctx, "else_branch");
  const size_t captured = then_graph.captured_inputs;
  if (ctx.input_count() != 1 + captured || else_graph.captured_inputs != captured)
    ctx.fail("expected the condition and " + std::to_string(captured) +
             " outer-scope values as inputs, got " + std::to_string(ctx.input_count()));
  if (ctx.in_dtype(0) != DType::bool_ || checked_element_count(ctx.in_shape(0), "cond") != 1)
    ctx.fail("input 0 (cond) must be one bool, got " + std::string(dtype_name(ctx.in_dtype(0))) +
             " " + shape_str(ctx.in_shape(0)));
  const std::vector<const Value *> outer = captured_values(ctx, captured);
  // A constant condition compiles only the branch it takes: the other may hold what the engine
  // cannot run, or give other shapes, and never runs.
  const Tensor *cond = ctx.constant(0);
  std::shared_ptr<const Subgraph> then_branch, else_branch;
  if (!cond || cond->as_int(0))
    then_branch = std::make_shared<Subgraph>(then_graph, std::vector<Value>{}, outer,
                                             ctx.where() + " then_branch");
  if (!cond || !cond->as_int(0))
    else_branch = std::make_shared<Subgraph>(else_graph, std::vector<Value>{}, outer,
                                             ctx.where() + " else_branch");
  for (const auto *branch : {then_branch.get(), else_branch.get()})
    if (branch && branch->outputs().size() != ctx.output_count())
      ctx.fail("a branch has " + std::to_string(branch->outputs().size()) + " outputs, the node " +
               std::to_string(ctx.output_count()));
  for (size_t i = 0; i < ctx.output_count(); ++i) {
    const TensorDesc &taken = then_branch ? then_branch->outputs()[i] : else_branch->outputs()[i];
    if (then_branch && else_branch) {
      const TensorDesc &other = else_branch->outputs()[i];
      if (taken.dtype != other.dtype || taken.shape != other.shape)
        ctx.unsupported("output " + std::to_string(i) + ": then_branch gives " + desc_text(taken) +
                        ", else_branch " + desc_text(other) +
                        "; the engine fixes every shape and type at compile time, so both "
                        "branches must give the same (or the condition be a constant)");
    }
    ctx.set_output(i, taken.dtype, taken.shape);
  }
  return std::make_unique<IfKernel>(then_branch, else_branch, captured);
}

// ---- Loop ----------------------------------------------------------------------------------

struct LoopPlan {
  bool has_trip_count = false, has_condition = false;
  size_t carried = 0, scan_outputs = 0, captured = 0;
  std::vector<size_t> carried_bytes, scan_row_bytes;
  size_t iteration_at = 0, condition_at = 0, condition_out_at = 0;
  std::vector<size_t> ping_at, pong_at;
};

// A body compiled with its iteration number a constant, once per iteration, when one compile
// for all of them cannot run (a Slice or Range reading the number, torch.jit.script's indexing):
// up to this many iterations.
constexpr int64_t kMaxUnrolledIterations = 64;

class LoopKernel final : public Kernel {
 public:
  // One body for every iteration, or one per iteration (bodies[i] runs iteration i).
  LoopKernel(std::vector<std::shared_ptr<const Subgraph>> bodies, LoopPlan plan, size_t scratch)
      : bodies_(std::move(bodies)), plan_(std::move(plan)) {
    scratch_bytes = scratch;
  }
  void run(ExecContext &ctx, const void *const *in, void *const *out) const override {
    auto *scratch = static_cast<uint8_t *>(ctx.scratch);
    int64_t trip_count = plan_.has_trip_count ? *static_cast<const int64_t *>(in[0])
                                              : std::numeric_limits<int64_t>::max();
    if (bodies_.size() > 1) trip_count = std::min<int64_t>(trip_count, bodies_.size());
    bool condition = plan_.has_condition ? *static_cast<const bool *>(in[1]) : true;
    auto *iteration = reinterpret_cast<int64_t *>(scratch + plan_.iteration_at);
    auto *condition_in = reinterpret_cast<bool *>(scratch + plan_.condition_at);
    auto *condition_out = reinterpret_cast<bool *>(scratch + plan_.condition_out_at);
    *condition_in = true;  // the body only runs while the condition holds
    std::vector<uint8_t *> ping, pong;
    for (size_t j = 0; j < plan_.carried; ++j) {
      ping.push_back(scratch + plan_.ping_at[j]);
      pong.push_back(scratch + plan_.pong_at[j]);
      copy_bytes(ping[j], in[2 + j], plan_.carried_bytes[j]);
    }
    std::vector<const void *> inputs(2 + plan_.carried + plan_.captured);
    std::vector<void *> outputs(1 + plan_.carried + plan_.scan_outputs);
    inputs[0] = iteration;
    inputs[1] = condition_in;
    for (size_t c = 0; c < plan_.captured; ++c)
      inputs[2 + plan_.carried + c] = in[2 + plan_.carried + c];
    outputs[0] = condition_out;
    for (int64_t i = 0; i < trip_count && condition; ++i) {
      *iteration = i;
      for (size_t j = 0; j < plan_.carried; ++j) {
        inputs[2 + j] = ping[j];
        outputs[1 + j] = pong[j];
      }
      // Scan outputs have a static trip count (compile_loop checks it), so row i is theirs.
      for (size_t k = 0; k < plan_.scan_outputs; ++k)
        outputs[1 + plan_.carried + k] = static_cast<uint8_t *>(out[plan_.carried + k]) +
                                         static_cast<size_t>(i) * plan_.scan_row_bytes[k];
      const Subgraph &body = *bodies_[bodies_.size() > 1 ? static_cast<size_t>(i) : 0];
      body.run(ctx, scratch, inputs, outputs);
      if (plan_.has_condition) condition = *condition_out;
      std::swap(ping, pong);
    }
    for (size_t j = 0; j < plan_.carried; ++j) copy_bytes(out[j], ping[j], plan_.carried_bytes[j]);
  }

 private:
  std::vector<std::shared_ptr<const Subgraph>> bodies_;
  LoopPlan plan_;
};

std::unique_ptr<Kernel> compile_loop(OpContext &ctx) {
  const Graph &body_graph = graph_attr(ctx, "body");
  LoopPlan plan;
  plan.captured = body_graph.captured_inputs;
  if (ctx.input_count() < 2 + plan.captured)
    ctx.fail("expected inputs M, cond, the loop-carried values and " +
             std::to_string(plan.captured) + " outer-scope values, got " +
             std::to_string(ctx.input_count()));
  plan.carried = ctx.input_count() - 2 - plan.captured;
  if (ctx.output_count() < plan.carried)
    ctx.fail("has " + std::to_string(plan.carried) + " loop-carried inputs but only " +
             std::to_string(ctx.output_count()) + " outputs");
  plan.scan_outputs = ctx.output_count() - plan.carried;
  plan.has_trip_count = ctx.has_input(0);
  plan.has_condition = ctx.has_input(1);
  if (!plan.has_trip_count && !plan.has_condition)
    ctx.fail("has neither a trip count M nor a condition: the loop would never end");
  if (plan.has_trip_count &&
      (ctx.in_dtype(0) != DType::i64 || checked_element_count(ctx.in_shape(0), "M") != 1))
    ctx.fail("input 0 (M) must be one int64, got " + std::string(dtype_name(ctx.in_dtype(0))) +
             " " + shape_str(ctx.in_shape(0)));
  if (plan.has_condition &&
      (ctx.in_dtype(1) != DType::bool_ || checked_element_count(ctx.in_shape(1), "cond") != 1))
    ctx.fail("input 1 (cond) must be one bool, got " + std::string(dtype_name(ctx.in_dtype(1))) +
             " " + shape_str(ctx.in_shape(1)));

  // The body's condition input is true whenever the body runs (the loop stops when it is
  // false), so it is a constant there: a body that passes it on gives a constant true.
  auto always_true = std::make_shared<Tensor>(DType::bool_, Shape{});
  always_true->data<bool>()[0] = true;
  const std::vector<const Value *> outer = captured_values(ctx, plan.captured);
  auto compile_body = [&](TensorPtr iteration, const std::string &what) {
    std::vector<Value> formal{formal_value("iteration_num", DType::i64, {}, std::move(iteration)),
                              formal_value("cond", DType::bool_, {}, always_true)};
    for (size_t j = 0; j < plan.carried; ++j)
      formal.push_back(
          formal_value(ctx.input(2 + j).name, ctx.in_dtype(2 + j), ctx.in_shape(2 + j)));
    return std::make_shared<const Subgraph>(body_graph, formal, outer, what);
  };
  std::vector<std::shared_ptr<const Subgraph>> bodies;
  try {
    bodies.push_back(compile_body(nullptr, ctx.where() + " body"));
  } catch (const NotImplemented &e) {
    // The body may need its iteration number when it compiles: with a constant trip count it
    // is compiled once per iteration (the runner's frozen M in the Range/Loop expansions).
    if (!plan.has_trip_count ||
        std::string(e.what()).find("must be a constant") == std::string::npos)
      throw;
    const int64_t iterations =
        ctx.require_scalar(0,
                           "trip count M: the body needs its iteration number as a constant, so "
                           "it is compiled once per iteration")
            .as_int(0);
    if (iterations > kMaxUnrolledIterations)
      ctx.unsupported(std::string(e.what()) +
                      "; compiling the body once per iteration, with its "
                      "iteration number a constant, is done for up to " +
                      std::to_string(kMaxUnrolledIterations) + " iterations, this loop has " +
                      std::to_string(iterations));
    for (int64_t i = 0; i < iterations; ++i) {
      auto number = std::make_shared<Tensor>(DType::i64, Shape{});
      number->data<int64_t>()[0] = i;
      bodies.push_back(
          compile_body(number, ctx.where() + " body (iteration " + std::to_string(i) + ")"));
    }
  }
  if (bodies.empty()) {
    // M is 0: no iteration runs, but the outputs still take the body's types and shapes.
    auto zero = std::make_shared<Tensor>(DType::i64, Shape{});
    zero->data<int64_t>()[0] = 0;
    bodies.push_back(compile_body(zero, ctx.where() + " body"));
  }
  const std::vector<TensorDesc> &body_out = bodies[0]->outputs();
  if (body_out.size() != 1 + ctx.output_count())
    ctx.fail("the body has " + std::to_string(body_out.size()) + " outputs, expected " +
             std::to_string(1 + ctx.output_count()) + " (the condition, then one per output)");
  if (body_out[0].dtype != DType::bool_ || body_out[0].element_count() != 1)
    ctx.fail("the body's output 0 (the condition) must be one bool, got " + desc_text(body_out[0]));
  for (size_t b = 1; b < bodies.size(); ++b)
    for (size_t o = 0; o < body_out.size(); ++o) {
      const TensorDesc &other = bodies[b]->outputs()[o];
      if (other.dtype != body_out[o].dtype || other.shape != body_out[o].shape)
        ctx.unsupported("the body's output " + std::to_string(o) + " is " + desc_text(body_out[o]) +
                        " in iteration 0 and " + desc_text(other) + " in iteration " +
                        std::to_string(b) + "; the engine fixes every shape at compile time");
    }
  for (size_t j = 0; j < plan.carried; ++j) {
    const TensorDesc &leaves = body_out[1 + j];
    if (leaves.dtype != ctx.in_dtype(2 + j) || leaves.shape != ctx.in_shape(2 + j))
      ctx.unsupported("loop-carried value " + std::to_string(j) + " enters as '" +
                      ctx.input(2 + j).name + "' " + dtype_name(ctx.in_dtype(2 + j)) + " " +
                      shape_str(ctx.in_shape(2 + j)) + " and leaves the body as " +
                      desc_text(leaves) +
                      "; the engine fixes every shape at compile time, so it must not change");
    ctx.set_output(j, leaves.dtype, leaves.shape);
    plan.carried_bytes.push_back(leaves.byte_size());
  }
  int64_t trip_count = 0;
  if (plan.scan_outputs) {
    // Scan outputs hold one row per iteration: their shape needs the number of iterations when
    // the program is compiled.
    if (!plan.has_trip_count)
      ctx.unsupported(
          "has scan outputs but no trip count M: how many rows they get depends on "
          "the condition at run time, and the engine fixes every shape at compile "
          "time");
    trip_count = std::max<int64_t>(
        0, ctx.require_scalar(0, "trip count M, which fixes the scan outputs' shape").as_int(0));
    if (plan.has_condition) {
      const Tensor &cond =
          ctx.require_scalar(1,
                             "condition, which could end the loop before M iterations and "
                             "so change its scan outputs' shape");
      if (!cond.as_int(0)) trip_count = 0;
      for (size_t b = 0; trip_count && b < bodies.size(); ++b) {
        const Tensor *cond_out = bodies[b]->constant_output(0);
        if (!cond_out || !cond_out->as_int(0))
          ctx.unsupported("has scan outputs and its body's condition output " +
                          desc_text(body_out[0]) +
                          " is computed at run time: it may end the loop before M = " +
                          std::to_string(trip_count) +
                          " iterations, and the engine fixes the scan outputs' shape at "
                          "compile time");
      }
    }
  }
  for (size_t k = 0; k < plan.scan_outputs; ++k) {
    const TensorDesc &row = body_out[1 + plan.carried + k];
    Shape shape{trip_count};
    shape.insert(shape.end(), row.shape.begin(), row.shape.end());
    ctx.set_output(plan.carried + k, row.dtype, shape);
    plan.scan_row_bytes.push_back(row.byte_size());
  }
  ScratchLayout layout;
  size_t workspace = 0;
  uint64_t macs = 0;
  for (const auto &body : bodies) {
    workspace = std::max(workspace, body->workspace_bytes());
    macs += body->macs();
  }
  layout.add(workspace);
  plan.iteration_at = layout.add(sizeof(int64_t));
  plan.condition_at = layout.add(1);
  plan.condition_out_at = layout.add(1);
  for (size_t j = 0; j < plan.carried; ++j) {
    plan.ping_at.push_back(layout.add(plan.carried_bytes[j]));
    plan.pong_at.push_back(layout.add(plan.carried_bytes[j]));
  }
  // One body for all iterations: its MACs times the static trip count when there is one.
  if (bodies.size() == 1) macs *= static_cast<uint64_t>(std::max<int64_t>(trip_count, 1));
  auto kernel = std::make_unique<LoopKernel>(std::move(bodies), std::move(plan), layout.bytes);
  kernel->macs = macs;
  return kernel;
}

// ---- Scan ----------------------------------------------------------------------------------

struct ScanPlan {
  size_t batches = 1, length = 0, states = 0, scan_inputs = 0, scan_outputs = 0, captured = 0;
  size_t first_state = 0;           // 1 in opset 8 (sequence_lens comes first)
  std::vector<size_t> state_bytes;  // one batch's
  std::vector<AxisRows> input_rows, output_rows;
  std::vector<size_t> input_batch_bytes, output_batch_bytes;
  std::vector<bool> input_reversed, output_reversed;
  std::vector<size_t> ping_at, pong_at, slice_at, row_at;
};

class ScanKernel final : public Kernel {
 public:
  ScanKernel(std::shared_ptr<const Subgraph> body, ScanPlan plan, size_t scratch)
      : body_(std::move(body)), plan_(std::move(plan)) {
    scratch_bytes = scratch;
  }
  void run(ExecContext &ctx, const void *const *in, void *const *out) const override {
    const ScanPlan &p = plan_;
    auto *scratch = static_cast<uint8_t *>(ctx.scratch);
    const size_t first_scan_input = p.first_state + p.states;
    std::vector<const void *> inputs(p.states + p.scan_inputs + p.captured);
    std::vector<void *> outputs(p.states + p.scan_outputs);
    for (size_t c = 0; c < p.captured; ++c)
      inputs[p.states + p.scan_inputs + c] = in[first_scan_input + p.scan_inputs + c];
    for (size_t s = 0; s < p.scan_inputs; ++s) inputs[p.states + s] = scratch + p.slice_at[s];
    for (size_t k = 0; k < p.scan_outputs; ++k) outputs[p.states + k] = scratch + p.row_at[k];
    std::vector<uint8_t *> ping(p.states), pong(p.states);
    for (size_t b = 0; b < p.batches; ++b) {
      for (size_t j = 0; j < p.states; ++j) {
        ping[j] = scratch + p.ping_at[j];
        pong[j] = scratch + p.pong_at[j];
        copy_bytes(ping[j],
                   static_cast<const uint8_t *>(in[p.first_state + j]) + b * p.state_bytes[j],
                   p.state_bytes[j]);
      }
      for (size_t t = 0; t < p.length; ++t) {
        for (size_t s = 0; s < p.scan_inputs; ++s)
          p.input_rows[s].read(
              static_cast<const uint8_t *>(in[first_scan_input + s]) + b * p.input_batch_bytes[s],
              p.input_reversed[s] ? p.length - 1 - t : t, scratch + p.slice_at[s]);
        for (size_t j = 0; j < p.states; ++j) {
          inputs[j] = ping[j];
          outputs[j] = pong[j];
        }
        body_->run(ctx, scratch, inputs, outputs);
        for (size_t k = 0; k < p.scan_outputs; ++k)
          p.output_rows[k].write(
              static_cast<uint8_t *>(out[p.states + k]) + b * p.output_batch_bytes[k],
              p.output_reversed[k] ? p.length - 1 - t : t, scratch + p.row_at[k]);
        std::swap(ping, pong);
      }
      for (size_t j = 0; j < p.states; ++j)
        copy_bytes(static_cast<uint8_t *>(out[j]) + b * p.state_bytes[j], ping[j],
                   p.state_bytes[j]);
    }
  }

 private:
  std::shared_ptr<const Subgraph> body_;
  ScanPlan plan_;
};

std::unique_ptr<Kernel> compile_scan(OpContext &ctx) {
  const Graph &body_graph = graph_attr(ctx, "body");
  const bool batched = ctx.opset() < 9;  // opset 8: axis 0 is a batch, axis 1 the sequence
  ScanPlan p;
  p.captured = body_graph.captured_inputs;
  p.first_state = batched ? 1 : 0;
  const int64_t num_scan_inputs = ctx.attr_i("num_scan_inputs", 0);
  if (num_scan_inputs < 1 ||
      static_cast<size_t>(num_scan_inputs) + p.first_state + p.captured > ctx.input_count())
    ctx.fail("num_scan_inputs " + std::to_string(num_scan_inputs) + " must be from 1 to the " +
             std::to_string(ctx.input_count() - p.first_state - p.captured) + " inputs it has");
  p.scan_inputs = static_cast<size_t>(num_scan_inputs);
  p.states = ctx.input_count() - p.first_state - p.captured - p.scan_inputs;
  if (ctx.output_count() < p.states)
    ctx.fail("has " + std::to_string(p.states) + " state inputs but only " +
             std::to_string(ctx.output_count()) + " outputs");
  p.scan_outputs = ctx.output_count() - p.states;
  const size_t first_scan_input = p.first_state + p.states;

  auto attr_per = [&](const char *name, size_t count) {
    std::vector<int64_t> values = ctx.attr_ints(name, std::vector<int64_t>(count, 0));
    if (values.size() != count)
      ctx.fail(std::string("attribute ") + name + " has " + std::to_string(values.size()) +
               " values, expected " + std::to_string(count));
    return values;
  };
  std::vector<int64_t> input_axes(p.scan_inputs, 0), output_axes(p.scan_outputs, 0);
  std::vector<int64_t> input_directions, output_directions(p.scan_outputs, 0);
  if (batched) {
    input_directions = attr_per("directions", p.scan_inputs);
  } else {
    input_axes = attr_per("scan_input_axes", p.scan_inputs);
    input_directions = attr_per("scan_input_directions", p.scan_inputs);
    output_axes = attr_per("scan_output_axes", p.scan_outputs);
    output_directions = attr_per("scan_output_directions", p.scan_outputs);
  }

  // One batch's shape of input i (opset 8 drops the batch axis; every input must have it).
  auto batch_shape = [&](size_t i) {
    Shape shape = ctx.in_shape(i);
    if (!batched) return shape;
    if (shape.empty() || static_cast<size_t>(shape[0]) != p.batches)
      ctx.fail("input " + std::to_string(i) + " '" + ctx.input(i).name + "' " + shape_str(shape) +
               " must have the batch size " + std::to_string(p.batches) +
               " as its axis 0 (opset 8 Scan)");
    shape.erase(shape.begin());
    return shape;
  };
  if (batched) {
    const Shape &first = ctx.in_shape(first_scan_input);
    if (first.empty()) ctx.fail("scan input 0 is a scalar; opset 8 Scan needs a batch axis");
    p.batches = static_cast<size_t>(first[0]);
  }
  std::vector<Value> formal;
  for (size_t j = 0; j < p.states; ++j) {
    const size_t i = p.first_state + j;
    Shape shape = batch_shape(i);
    formal.push_back(formal_value(ctx.input(i).name, ctx.in_dtype(i), shape));
    p.state_bytes.push_back(static_cast<size_t>(checked_element_count(shape, "state")) *
                            dtype_size(ctx.in_dtype(i)));
  }
  bool length_known = false;
  for (size_t s = 0; s < p.scan_inputs; ++s) {
    const size_t i = first_scan_input + s;
    Shape shape = batch_shape(i);
    const auto axis =
        static_cast<size_t>(ctx.axis(input_axes[s], shape.size(), "scan_input_axes value"));
    if (length_known && static_cast<size_t>(shape[axis]) != p.length)
      ctx.fail("scan input " + std::to_string(s) + " '" + ctx.input(i).name + "' " +
               shape_str(ctx.in_shape(i)) + " has " + std::to_string(shape[axis]) +
               " steps along its scan axis, scan input 0 has " + std::to_string(p.length));
    p.length = static_cast<size_t>(shape[axis]);
    length_known = true;
    p.input_rows.emplace_back(shape, axis, ctx.in_dtype(i));
    p.input_batch_bytes.push_back(static_cast<size_t>(checked_element_count(shape, "input")) *
                                  dtype_size(ctx.in_dtype(i)));
    p.input_reversed.push_back(input_directions[s] != 0);
    Shape slice = shape;
    slice.erase(slice.begin() + static_cast<std::ptrdiff_t>(axis));
    formal.push_back(formal_value(ctx.input(i).name + " slice", ctx.in_dtype(i), slice));
  }
  if (batched && ctx.has_input(0)) {
    // Rows shorter than the sequence would leave their scan outputs' tail undefined-by-shape
    // (ONNX pads them); only the full length runs.
    const Tensor &lengths = ctx.require_constant(0, "sequence_lens");
    for (int64_t b = 0; b < lengths.count(); ++b)
      if (static_cast<size_t>(lengths.as_int(b)) != p.length)
        ctx.unsupported("sequence_lens[" + std::to_string(b) + "] is " +
                        std::to_string(lengths.as_int(b)) + ", shorter than the sequence's " +
                        std::to_string(p.length) + " steps: only full-length rows run");
  }
  auto body = std::make_shared<Subgraph>(body_graph, formal, captured_values(ctx, p.captured),
                                         ctx.where() + " body");
  const std::vector<TensorDesc> &body_out = body->outputs();
  if (body_out.size() != ctx.output_count())
    ctx.fail("the body has " + std::to_string(body_out.size()) + " outputs, the node " +
             std::to_string(ctx.output_count()));
  for (size_t j = 0; j < p.states; ++j) {
    const Value &state = formal[j];
    if (body_out[j].dtype != state.dtype || body_out[j].shape != state.shape)
      ctx.unsupported("state " + std::to_string(j) + " enters as '" + state.name + "' " +
                      dtype_name(state.dtype) + " " + shape_str(state.shape) +
                      " and leaves the body as " + desc_text(body_out[j]) +
                      "; the engine fixes every shape at compile time, so it must not change");
    ctx.set_output(j, ctx.in_dtype(p.first_state + j), ctx.in_shape(p.first_state + j));
  }
  for (size_t k = 0; k < p.scan_outputs; ++k) {
    const TensorDesc &row = body_out[p.states + k];
    const auto axis = static_cast<size_t>(
        ctx.axis(output_axes[k], row.shape.size() + 1, "scan_output_axes value"));
    Shape shape = row.shape;
    shape.insert(shape.begin() + static_cast<std::ptrdiff_t>(axis), static_cast<int64_t>(p.length));
    p.output_rows.emplace_back(shape, axis, row.dtype);
    p.output_batch_bytes.push_back(static_cast<size_t>(checked_element_count(shape, "output")) *
                                   dtype_size(row.dtype));
    p.output_reversed.push_back(output_directions[k] != 0);
    if (batched) shape.insert(shape.begin(), static_cast<int64_t>(p.batches));
    ctx.set_output(p.states + k, row.dtype, shape);
  }
  ScratchLayout layout;
  layout.add(body->workspace_bytes());
  for (size_t j = 0; j < p.states; ++j) {
    p.ping_at.push_back(layout.add(p.state_bytes[j]));
    p.pong_at.push_back(layout.add(p.state_bytes[j]));
  }
  for (size_t s = 0; s < p.scan_inputs; ++s) {
    const Value &slice = formal[p.states + s];
    p.slice_at.push_back(
        layout.add(static_cast<size_t>(checked_element_count(slice.shape, slice.name)) *
                   dtype_size(slice.dtype)));
  }
  for (size_t k = 0; k < p.scan_outputs; ++k)
    p.row_at.push_back(layout.add(body_out[p.states + k].byte_size()));
  const uint64_t macs = body->macs() * p.length * p.batches;
  auto kernel = std::make_unique<ScanKernel>(body, std::move(p), layout.bytes);
  kernel->macs = macs;
  return kernel;
}

}  // namespace

AXSTREAM_ENGINE_DATA_OP(If, "If", 1, 17, compile_if, false)
AXSTREAM_ENGINE_DATA_OP(Loop, "Loop", 1, 17, compile_loop, false)
AXSTREAM_ENGINE_DATA_OP(Scan, "Scan", 8, 17, compile_scan, false)

}  // namespace axstream::engine
