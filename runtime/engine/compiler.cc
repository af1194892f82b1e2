#include "compiler.h"

#include <algorithm>
#include <cstdlib>
#include <dnnl.hpp>
#include <map>
#include <sstream>

#include "axstream/error.h"
#include "half_compute.h"
#include "passes.h"
#include "sequences.h"

namespace axstream::engine {

dnnl::engine &cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

bool setting_not_zero(const char *name) {
  const char *env = std::getenv(name);
  if (!env) return true;
  const std::string value(env);
  if (value == "1") return true;
  if (value == "0") return false;
  // "off", "false" or "no" must not leave the setting on unnoticed.
  throw InvalidConfiguration(std::string(name) + ": expected 1 or 0, got '" + value + "'");
}

namespace {

const OpDef &find_op(const Graph &graph, const Node &node) {
  const OpDef *def = OpRegistry::instance().find(node.domain, node.op_type, node.opset);
  if (!def) {
    // What it reads too: which tensor, of what type and shape, the user would have to change.
    std::string reads;
    for (int id : node.inputs) {
      if (id < 0) continue;
      const Value &value = graph.values[static_cast<size_t>(id)];
      // Appended piece by piece: GCC 12 misreads `"literal" + std::string&&` as an overlapping
      // memcpy (-Wrestrict, GCC bug 105329).
      reads += reads.empty() ? " reading '" : ", '";
      reads += value.name;
      reads += "' (";
      reads += dtype_name(value.dtype);
      if (value.shape_known) reads.append(" ").append(shape_str(value.shape));
      reads += ")";
    }
    throw NotImplemented(graph.source_name + ": node '" + node.label(graph.values) + "' op " +
                         (node.domain.empty() ? "" : node.domain + ".") + node.op_type + " opset " +
                         std::to_string(node.opset) + reads + " is not supported by the engine");
  }
  return *def;
}

// float16, bfloat16 and float64 are storage types: an op whose kernel computes (not one that
// only moves or casts elements, OpDef::moves_any_dtype) is refused when it reads or writes one,
// rather than reading their bytes as float32 or computing in float and calling it double; the
// few that compute in double (OpDef::computes_float64) take float64. float16/bfloat16 inputs
// never get here (infer_and_fold casts them to float32 first, half_compute.h); a half output
// from other types (an attribute asking for it) does. int16, uint16, uint32 and uint64 go only
// to the ops registered for them (OpDef::computes_opt_in_integers), the same way.
void check_storage_dtype(const Graph &graph, const OpDef &def, const OpContext &ctx,
                         const std::vector<int> &values, const char *kind) {
  if (def.moves_any_dtype) return;
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] < 0) continue;
    const Value &v = graph.values[static_cast<size_t>(values[i])];
    if (is_opt_in_integer_dtype(v.dtype) && !def.computes_opt_in_integers)
      ctx.unsupported(std::string(kind) + " " + std::to_string(i) + " '" + v.name + "' has dtype " +
                      dtype_name(v.dtype) +
                      " (this op computes on float32, int8, uint8, int32, int64 or bool; int16, "
                      "uint16, uint32 and uint64 only go to the ops registered for them, "
                      "docs/runtime.md)");
    if (!is_storage_only_dtype(v.dtype)) continue;
    if (v.dtype == DType::f64 && def.computes_float64) continue;
    ctx.unsupported(std::string(kind) + " " + std::to_string(i) + " '" + v.name + "' has dtype " +
                    dtype_name(v.dtype) +
                    " (expected float32, int8, uint8, int32, int64 or bool: " +
                    (v.dtype == DType::f64
                         ? "this op has no double kernel, and computing float64 in float32 would "
                           "lose its precision"
                         : "float16/bfloat16 are computed in float32 from half inputs, not made "
                           "from other types by this op") +
                    ")");
  }
}

// A value over the size limit is refused before anything that size is allocated or computed.
void check_size(const Graph &graph, const Value &v, const std::string &what,
                size_t max_tensor_bytes) {
  const auto elements = static_cast<size_t>(checked_element_count(v.shape, what));
  if (elements > max_tensor_bytes / dtype_size(v.dtype))
    throw InvalidArgument(graph.source_name + ": " + what + " '" + v.name + "' " +
                          dtype_name(v.dtype) + shape_str(v.shape) + " would take " +
                          std::to_string(elements) + " x " + std::to_string(dtype_size(v.dtype)) +
                          " bytes, over the engine's limit of " + std::to_string(max_tensor_bytes) +
                          " bytes per tensor (CompileOptions::max_tensor_bytes)");
}

void publish_outputs(Graph &graph, const Node &node, const OpContext &ctx,
                     size_t max_tensor_bytes) {
  for (size_t i = 0; i < node.outputs.size(); ++i) {
    Value &v = graph.values[node.outputs[i]];
    v.dtype = ctx.out_dtype(i);
    v.shape = ctx.out_shape(i);
    v.shape_known = true;
    v.data_dependent = ctx.out_data_dependent(i);
    check_size(graph, v, ctx.label() + " output", max_tensor_bytes);
  }
}

// A data-dependent value (OpContext::set_output_upper_bound) holds only its upper bound's
// shape until it runs, so a node reading it (even Shape, which would fold that bound) is
// refused, naming both; graph outputs are its only readers.
void refuse_data_dependent_inputs(const Graph &graph, const Node &node) {
  for (int v : node.inputs) {
    if (v < 0) continue;
    const Value &value = graph.values[static_cast<size_t>(v)];
    if (!value.data_dependent || value.constant) continue;
    const int producer = graph.producers()[static_cast<size_t>(v)];
    const std::string made_by =
        producer < 0 ? std::string("its producer")
                     : "node '" + graph.nodes[static_cast<size_t>(producer)].label(graph.values) +
                           "' (" + graph.nodes[static_cast<size_t>(producer)].op_type + ")";
    throw NotImplemented(graph.source_name + ": node '" + node.label(graph.values) + "' (" +
                         node.op_type + ") reads '" + value.name + "', whose shape " + made_by +
                         " knows only when it runs (up to " + shape_str(value.shape) +
                         "); the engine runs such an op only when its output is a graph output, "
                         "not read by other nodes");
  }
}

}  // namespace

namespace {

// Infers node `index`'s outputs and folds it when its inputs allow.
void infer_node(Graph &graph, size_t index, dnnl::stream &stream, size_t max_tensor_bytes,
                bool allow_data_dependent) {
  Node &node = graph.nodes[index];
  const OpDef &def = find_op(graph, node);
  refuse_data_dependent_inputs(graph, node);
  bool all_constant = true;
  for (int v : node.inputs)
    if (v >= 0 && !graph.values[v].constant) all_constant = false;
  bool fold = all_constant || def.folds_on_shapes;
  OpContext ctx(graph, node, !fold);
  check_storage_dtype(graph, def, ctx, node.inputs, "input");
  if (fold) {
    // A folded node's compile builds its kernel at once, and some build maps as long as their
    // output (Pad's): its output shapes are inferred and held to the size limit first (a 7.5 GB
    // Pad of a constant ran out of memory, found by fuzz_onnx_import).
    OpContext shapes(graph, node, true);
    def.compile(shapes);
    publish_outputs(graph, node, shapes, max_tensor_bytes);
  }
  std::unique_ptr<Kernel> kernel = def.compile(ctx);
  publish_outputs(graph, node, ctx, max_tensor_bytes);
  check_storage_dtype(graph, def, ctx, node.outputs, "output");
  if (!fold) {
    for (size_t i = 0; i < node.outputs.size() && !allow_data_dependent; ++i)
      if (ctx.out_data_dependent(i))
        ctx.unsupported("its output '" + graph.values[node.outputs[i]].name +
                        "' has a shape that depends on the input values at run time (up to " +
                        shape_str(ctx.out_shape(i)) +
                        "), and this program's tensors have fixed shapes (a model package's "
                        "graphs and axcompile's models do); export the model without it and do "
                        "this step on the outputs, as axstream's decoders do NMS");
    return;
  }
  if (!kernel) throw InternalError("engine: compile of " + ctx.label() + " returned no kernel");
  std::vector<const void *> in;
  for (int v : node.inputs)
    in.push_back(v >= 0 && graph.values[v].constant ? graph.values[v].constant->bytes.data()
                                                    : nullptr);
  std::vector<std::shared_ptr<Tensor>> results;
  std::vector<void *> out;
  for (int v : node.outputs) {
    results.push_back(std::make_shared<Tensor>(graph.values[v].dtype, graph.values[v].shape));
    out.push_back(results.back()->bytes.data());
  }
  AlignedBuffer scratch(kernel->scratch_bytes);
  std::vector<Shape> run_shapes(node.outputs.size());
  ExecContext exec{scratch.data(), &stream, &cpu_engine(), run_shapes.data()};
  kernel->run(exec, in.data(), out.data());
  for (size_t i = 0; i < node.outputs.size(); ++i) {
    Value &value = graph.values[node.outputs[i]];
    if (value.data_dependent) {
      // Folded, the result is known: the constant takes the shape the kernel wrote.
      results[i]->shape = run_shapes[i];
      results[i]->bytes.resize(static_cast<size_t>(results[i]->count()) *
                               dtype_size(results[i]->dtype));
      value.shape = run_shapes[i];
      value.data_dependent = false;
    }
    value.constant = results[i];
  }
  node.dead = true;
}

}  // namespace

void infer_and_fold(Graph &graph, size_t max_tensor_bytes, bool allow_data_dependent) {
  for (int v : graph.inputs) check_size(graph, graph.values[v], "graph input", max_tensor_bytes);
  dnnl::stream stream(cpu_engine());
  std::map<int, int> widened;  // half value -> its float32 copy, made by an earlier Cast
  bool outputs_expanded = false;
  for (size_t index = 0;; ++index) {
    if (index == graph.nodes.size()) {
      // Every value is known now: sequence and optional outputs become the tensors they hold,
      // through Identity nodes appended here and inferred like the others.
      if (outputs_expanded) break;
      outputs_expanded = true;
      expand_sequence_outputs(graph);
      if (index == graph.nodes.size()) break;
    }
    if (graph.nodes[index].dead) continue;
    if (is_sequence_node(graph, graph.nodes[index])) {
      lower_sequence_node(graph, index);
      if (graph.nodes[index].dead) continue;
    }
    const OpDef &def = find_op(graph, graph.nodes[index]);
    if (!needs_float32_compute(graph, def, graph.nodes[index])) {
      infer_node(graph, index, stream, max_tensor_bytes, allow_data_dependent);
      continue;
    }
    // A float op on float16/bfloat16 runs in float32 between Casts (half_compute.h); the Casts
    // of constant weights fold here, once.
    DType half = first_float_input_dtype(graph, graph.nodes[index]);
    size_t inserted = insert_float32_input_casts(graph, index, widened);
    for (size_t k = 0; k < inserted; ++k)
      infer_node(graph, index + k, stream, max_tensor_bytes, allow_data_dependent);
    index += inserted;
    infer_node(graph, index, stream, max_tensor_bytes, allow_data_dependent);
    size_t narrowing = insert_half_output_casts(graph, index, half);
    for (size_t k = 1; k <= narrowing; ++k)
      infer_node(graph, index + k, stream, max_tensor_bytes, allow_data_dependent);
    index += narrowing;
  }
}

namespace {

std::string value_text(const Value &v) {
  std::string s = "'" + v.name + "' " + dtype_name(v.dtype) + shape_str(v.shape);
  if (v.data_dependent) s += " at most";
  if (v.constant) s += " const";
  return s;
}

std::string attr_text(const Attribute &a) {
  std::ostringstream o;
  switch (a.kind) {
    case Attribute::Kind::f:
      o << a.f;
      break;
    case Attribute::Kind::i:
      o << a.i;
      break;
    case Attribute::Kind::s:
      o << '"' << a.s << '"';
      break;
    case Attribute::Kind::t:
      o << "tensor" << shape_str(a.t->shape);
      break;
    case Attribute::Kind::floats:
      o << '[';
      for (size_t i = 0; i < a.floats.size(); ++i) o << (i ? "," : "") << a.floats[i];
      o << ']';
      break;
    case Attribute::Kind::ints:
      o << shape_str(a.ints);
      break;
    case Attribute::Kind::strings:
      o << "[" << a.strings.size() << " strings]";
      break;
    case Attribute::Kind::graph:
      o << "graph(" << a.graph->nodes.size() << " nodes)";
      break;
  }
  return o.str();
}

// One step per live node, each with its compiled kernel; the largest scratch and the MACs.
void compile_steps(Graph &graph, const CompileOptions &options, CompiledGraph &cg) {
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node &node = graph.nodes[i];
    if (node.dead) continue;
    const OpDef &def = find_op(graph, node);
    OpContext ctx(graph, node, false);
    check_storage_dtype(graph, def, ctx, node.inputs, "input");
    refuse_data_dependent_inputs(graph, node);  // a pass may have added a reader
    Step step;
    step.node = static_cast<int>(i);
    step.kernel = def.compile(ctx);
    if (!step.kernel)
      throw InternalError("engine: compile of " + ctx.label() + " returned no kernel");
    publish_outputs(graph, node, ctx, options.max_tensor_bytes);
    step.inputs = node.inputs;
    step.outputs = node.outputs;
    cg.scratch_bytes = std::max(cg.scratch_bytes, step.kernel->scratch_bytes);
    cg.macs += step.kernel->macs;
    cg.steps.push_back(std::move(step));
  }
}

// Which values live in the arena, and for how long (step indices, inclusive; -1: not made by
// a step). An output bound to the caller's buffer (made by a step, listed once) stays out of
// the arena; another lives to the end, when it is copied out.
struct ValueLifetimes {
  std::vector<int> first, last;
  std::vector<bool> bound;
};

ValueLifetimes value_lifetimes(const Graph &graph, CompiledGraph &cg) {
  size_t nvalues = graph.values.size();
  ValueLifetimes life{std::vector<int>(nvalues, -1), std::vector<int>(nvalues, -1),
                      std::vector<bool>(nvalues, false)};
  std::vector<int> &first = life.first, &last = life.last;
  for (size_t s = 0; s < cg.steps.size(); ++s) {
    for (int v : cg.steps[s].outputs) first[v] = last[v] = static_cast<int>(s);
    for (int v : cg.steps[s].inputs)
      if (v >= 0 && first[v] >= 0) last[v] = static_cast<int>(s);
  }
  std::vector<int> output_uses(nvalues, 0);
  for (int v : graph.outputs) ++output_uses[v];
  cg.output_bound.resize(graph.outputs.size());
  for (size_t o = 0; o < graph.outputs.size(); ++o) {
    int v = graph.outputs[o];
    cg.output_bound[o] = first[v] >= 0 && output_uses[v] == 1;
    if (!cg.output_bound[o] && first[v] >= 0) last[v] = static_cast<int>(cg.steps.size());
  }
  for (size_t o = 0; o < graph.outputs.size(); ++o)
    if (cg.output_bound[o]) life.bound[graph.outputs[o]] = true;
  return life;
}

size_t value_bytes(const Value &val) {
  return static_cast<size_t>(checked_element_count(val.shape, val.name)) * dtype_size(val.dtype);
}

// A step whose kernel may write output 0 over an input (a residual add summed into a
// convolution's destination) gets that input's buffer when the input is an arena value of the
// same size that no later step (nor the copy-out of a graph output) reads and that the step
// reads nowhere else. The two values then share one block: `root` maps each value to the
// value whose block it lives in, and the block's lifetime spans both.
std::vector<int> alias_in_place_outputs(const Graph &graph, ValueLifetimes &life,
                                        CompiledGraph &cg) {
  std::vector<int> root(graph.values.size());
  for (size_t v = 0; v < root.size(); ++v) root[v] = static_cast<int>(v);
  for (size_t s = 0; s < cg.steps.size(); ++s) {
    Step &step = cg.steps[s];
    int slot = step.kernel->output_may_overwrite_input;
    if (slot < 0 || static_cast<size_t>(slot) >= step.inputs.size() || step.outputs.empty())
      continue;
    int in = step.inputs[static_cast<size_t>(slot)], out = step.outputs[0];
    if (in < 0 || out < 0 || life.first[in] < 0 || life.bound[in] || life.bound[out] ||
        life.last[in] != static_cast<int>(s) ||
        std::count(step.inputs.begin(), step.inputs.end(), in) != 1 ||
        value_bytes(graph.values[in]) != value_bytes(graph.values[out]))
      continue;
    root[out] = root[in];
    life.last[root[out]] = life.last[out];
    step.in_place = true;
  }
  return root;
}

// Places the arena values, largest first, each at the lowest offset free of the values whose
// lifetimes overlap its own; a value aliased to another's block takes its offset.
void plan_arena(const Graph &graph, ValueLifetimes life, CompiledGraph &cg) {
  std::vector<int> root = alias_in_place_outputs(graph, life, cg);
  const std::vector<int> &first = life.first, &last = life.last;
  size_t nvalues = graph.values.size();
  struct Block {
    int value;
    size_t bytes;
  };
  std::vector<Block> blocks;
  for (size_t v = 0; v < nvalues; ++v) {
    if (first[v] < 0 || life.bound[v] || root[v] != static_cast<int>(v)) continue;
    blocks.push_back({static_cast<int>(v), (value_bytes(graph.values[v]) + 63) / 64 * 64});
  }
  std::stable_sort(blocks.begin(), blocks.end(),
                   [](const Block &a, const Block &b) { return a.bytes > b.bytes; });
  cg.arena_offset.assign(nvalues, -1);
  std::vector<Block> placed;
  for (const Block &b : blocks) {
    std::vector<std::pair<size_t, size_t>> busy;  // [offset, end) of overlapping lifetimes
    for (const Block &p : placed)
      if (!(last[p.value] < first[b.value] || last[b.value] < first[p.value]))
        busy.push_back({static_cast<size_t>(cg.arena_offset[p.value]),
                        static_cast<size_t>(cg.arena_offset[p.value]) + p.bytes});
    std::sort(busy.begin(), busy.end());
    size_t offset = 0;
    for (auto [start, end] : busy) {
      if (offset + b.bytes <= start) break;
      offset = std::max(offset, end);
    }
    cg.arena_offset[b.value] = static_cast<int64_t>(offset);
    cg.arena_bytes = std::max(cg.arena_bytes, offset + b.bytes);
    placed.push_back(b);
  }
  // Roots come first in step order, so each alias's root is placed.
  for (size_t v = 0; v < nvalues; ++v)
    if (root[v] != static_cast<int>(v)) cg.arena_offset[v] = cg.arena_offset[root[v]];
}

// The program as text: its sizes, then one line per input, step and output.
std::string describe_program(const Graph &graph, const CompiledGraph &cg) {
  std::ostringstream d;
  d << "program '" << graph.source_name << "': " << cg.steps.size() << " steps, arena "
    << cg.arena_bytes << " bytes, scratch " << cg.scratch_bytes << " bytes, " << cg.macs
    << " MACs\n";
  for (int v : graph.inputs) d << "  input " << value_text(graph.values[v]) << "\n";
  for (const Step &s : cg.steps) {
    const Node &n = graph.nodes[s.node];
    d << "  " << (n.domain.empty() ? "" : n.domain + ".") << n.op_type << " '"
      << n.label(graph.values) << "'";
    for (const auto &[name, a] : n.attrs)
      if (a.kind != Attribute::Kind::t) d << " " << name << "=" << attr_text(a);
    d << " (";
    for (size_t i = 0; i < s.inputs.size(); ++i)
      d << (i ? ", " : "") << (s.inputs[i] >= 0 ? value_text(graph.values[s.inputs[i]]) : "-");
    d << ") -> (";
    for (size_t i = 0; i < s.outputs.size(); ++i)
      d << (i ? ", " : "") << value_text(graph.values[s.outputs[i]]);
    d << ")";
    if (!s.kernel->impl.empty()) d << " [" << s.kernel->impl << "]";
    if (s.in_place)
      d << " in place on '" << graph.values[s.inputs[s.kernel->output_may_overwrite_input]].name
        << "'";
    d << "\n";
  }
  for (int v : graph.outputs) d << "  output " << value_text(graph.values[v]) << "\n";
  return d.str();
}

}  // namespace

CompiledGraph compile_graph(Graph graph, const CompileOptions &options) {
  CompiledGraph cg;
  graph.max_tensor_bytes = options.max_tensor_bytes;  // for the subgraphs of If/Loop/Scan
  run_prefold_passes(graph);
  infer_and_fold(graph, options.max_tensor_bytes, options.allow_data_dependent_shapes);
  run_postfold_passes(graph);
  eliminate_dead_nodes(graph);
  compile_steps(graph, options, cg);
  for (int v : graph.inputs)
    cg.inputs.push_back({graph.values[v].name, graph.values[v].dtype, graph.values[v].shape});
  for (int v : graph.outputs)
    cg.outputs.push_back({graph.values[v].name, graph.values[v].dtype, graph.values[v].shape,
                          graph.values[v].data_dependent});
  plan_arena(graph, value_lifetimes(graph, cg), cg);
  cg.description = describe_program(graph, cg);
  cg.graph = std::move(graph);
  return cg;
}

}  // namespace axstream::engine
