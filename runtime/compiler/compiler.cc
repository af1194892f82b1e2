// axcompile's pipeline: load and fix the float model, calibrate through the engine, fold
// constants and BatchNorm, split off the float tail, write the QDQ int8 core and the package.
#include "axstream/compiler/compiler.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "../engine/sequences.h"
#include "axstream/error.h"
#include "axstream/runtime/engine.h"
#include "calibration_images.h"
#include "onnx_util.h"
#include "package_writer.h"
#include "quant_math.h"
#include "widen_half.h"

namespace axstream::compiler {
namespace {

namespace fs = std::filesystem;
using Shape = std::vector<int64_t>;

[[noreturn]] void rethrow_with_context(const Error &e, const std::string &context) {
  std::string message = context + ": " + e.what();
  switch (e.kind()) {
    case ErrorKind::NotImplemented:
      throw NotImplemented(message);
    case ErrorKind::InvalidArgument:
      throw InvalidArgument(message);
    case ErrorKind::InternalError:
      throw InternalError(message);
    default:
      throw Error(e.kind(), message);
  }
}

std::string shape_text(const Shape &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? "," : "") + (shape[i] < 0 ? std::string("?") : std::to_string(shape[i]));
  return s + "]";
}

// Ops that only move or select values: their output keeps the input's quantisation.
const std::set<std::string> kDataMovement = {"Reshape",      "Transpose", "Flatten", "Squeeze",
                                             "Unsqueeze",    "Slice",     "Split",   "MaxPool",
                                             "Identity",     "Pad",       "Gather",  "DepthToSpace",
                                             "SpaceToDepth", "Expand",    "Tile"};
// Linear ops the core fuses a following Relu/Clip into.
const std::set<std::string> kFusableProducers = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Add"};
const std::set<std::string> kFusedActivations = {"Relu", "Clip"};
// Ops the compiler may hand to the float postamble when they only feed the model's outputs.
const std::set<std::string> kTailOps = {
    "Sigmoid", "Softmax",  "LogSoftmax", "Reshape", "Transpose", "Squeeze", "Unsqueeze",
    "Flatten", "Identity", "Concat",     "Gather",  "Slice",     "Split",   "Cast",
    "Exp",     "Log",      "Tanh",       "ArgMax",  "ArgMin",    "TopK",    "NonMaxSuppression",
    "Where",   "Greater",  "Less",       "Equal",   "Not",       "And",     "Or",
    "Expand",  "Tile",     "ReduceMax",  "Sqrt",    "Neg",       "Abs",     "Floor",
    "Ceil",    "Round",    "Erf",        "Add",     "Sub",       "Mul",     "Div",
    "Pow"};
const std::set<std::string> kArithmetic = {"Add", "Sub", "Mul", "Div", "Pow"};
// Shape-preserving elementwise ops with no int8 kernel on the core (their other inputs, if any,
// are constants: Pow's exponent, Clip's bounds). A chain of them reading the model input goes to
// the float preamble.
const std::set<std::string> kHeadOps = {
    "Cast",    "Sqrt",  "Pow",  "Exp",         "Log",      "Abs", "Neg", "Reciprocal",
    "Sigmoid", "Tanh",  "Erf",  "HardSigmoid", "Clip",     "Sin", "Cos", "Floor",
    "Ceil",    "Round", "Sign", "Softplus",    "Softsign", "Elu", "Selu"};
const std::set<std::string> kLinear = {"Conv", "ConvTranspose", "Gemm", "MatMul"};

// A node's identity for --float-nodes and the fallback lists: its name, else its first output.
std::string node_id(const onnx::NodeProto &node) {
  return node.name().empty() ? (node.output_size() ? node.output(0) : std::string()) : node.name();
}

// Cosine similarity accumulator (and the largest absolute difference).
struct Acc {
  double dot = 0, aa = 0, bb = 0, max_err = 0;
  void add(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      dot += double(a[i]) * b[i];
      aa += double(a[i]) * a[i];
      bb += double(b[i]) * b[i];
      max_err = std::max(max_err, double(std::fabs(a[i] - b[i])));
    }
  }
  double cosine() const {
    if (aa == 0 && bb == 0) return 1.0;
    if (aa == 0 || bb == 0) return 0.0;
    return dot / std::sqrt(aa * bb);
  }
};

struct Stats {
  double min = std::numeric_limits<double>::infinity();
  double max = -std::numeric_limits<double>::infinity();
  double low_sum = 0, high_sum = 0;  // per-image percentiles, averaged at the end
  int images = 0;
  double raw_min = 0, raw_max = 0;     // min/max over all images, before any range search
  std::vector<double> channel_sum;     // inputs of Conv/Gemm/MatMul: per-channel sums (bias corr.)
  double channel_count = 0;            // values summed per channel
  std::vector<double> channel_absmax;  // inputs of Conv/ConvTranspose: per-channel max |x|
  std::vector<float> samples;          // strided sample of the values, for the MSE range search
};

// Expected squared int8 quantisation error of `samples` (histogrammed over [min, max]) for the
// range [lo, hi]: rounding noise scale^2/12 inside, the distance to the edge outside.
// Returns the range among shrunk candidates (lo*a, hi*b) with the lowest error.
std::pair<double, double> mse_range(const std::vector<float> &samples, double mn, double mx) {
  mn = std::min(mn, 0.0);
  mx = std::max(mx, 0.0);
  if (samples.empty() || !(mx > mn)) return {mn, mx};
  constexpr int kBins = 2048;
  std::vector<double> count(kBins, 0.0);
  const double width = (mx - mn) / kBins;
  for (float v : samples) {
    if (v == 0.0f) continue;  // exact in every range (0 is always on the grid): no error
    int b = static_cast<int>((v - mn) / width);
    count[std::clamp(b, 0, kBins - 1)] += 1;
  }
  std::vector<double> centre(kBins);
  for (int b = 0; b < kBins; ++b) centre[b] = mn + (b + 0.5) * width;
  auto error = [&](double lo, double hi) {
    double scale = (hi - lo) / 255.0, rounding = scale * scale / 12.0, e = 0;
    for (int b = 0; b < kBins; ++b) {
      if (count[b] == 0) continue;
      double x = centre[b];
      double d = x < lo ? lo - x : (x > hi ? x - hi : 0.0);
      e += count[b] * (d * d + rounding);
    }
    return e;
  };
  std::vector<double> factors;
  for (double f = 1.0; f > 0.02; f *= 0.92) factors.push_back(f);
  double best = error(mn, mx), best_lo = mn, best_hi = mx;
  for (double a : factors) {
    if (mn == 0 && a != 1.0) break;
    for (double b : factors) {
      if (mx == 0 && b != 1.0) break;
      double lo = mn * a, hi = mx * b;
      double e = error(lo, hi);
      if (e < best) {
        best = e;
        best_lo = lo;
        best_hi = hi;
      }
    }
  }
  return {best_lo, best_hi};
}

// KL-divergence (entropy) threshold of one sign of the sampled values (TensorRT's calibrator):
// a 2048-bin histogram of |v| over [0, amax]; for each candidate threshold the clipped
// histogram P (outliers folded into its last bin) is compared with Q, P merged into `levels`
// bins and spread back over P's non-empty bins; the threshold with the lowest KL(P||Q) wins.
double entropy_threshold(const std::vector<double> &magnitudes, double amax, int levels) {
  if (magnitudes.empty() || !(amax > 0)) return amax;
  constexpr int kBins = 2048;
  std::vector<double> hist(kBins, 0.0);
  for (double m : magnitudes)
    hist[std::clamp(static_cast<int>(m / amax * kBins), 0, kBins - 1)] += 1;
  double best_kl = std::numeric_limits<double>::infinity();
  int best = kBins;
  std::vector<double> p, q;
  for (int i = levels;; i = std::min(i + 16, kBins)) {
    p.assign(hist.begin(), hist.begin() + i);
    for (int k = i; k < kBins; ++k) p[i - 1] += hist[k];
    q.assign(i, 0.0);
    const double per = static_cast<double>(i) / levels;
    for (int l = 0; l < levels; ++l) {
      int a = static_cast<int>(l * per), b = std::max(a + 1, static_cast<int>((l + 1) * per));
      b = std::min(b, i);
      double sum = 0;
      int nonzero = 0;
      for (int k = a; k < b; ++k) {
        sum += hist[k];
        nonzero += hist[k] > 0;
      }
      for (int k = a; k < b; ++k)
        if (hist[k] > 0) q[k] = sum / nonzero;
    }
    double psum = 0, qsum = 0;
    for (int k = 0; k < i; ++k) {
      psum += p[k];
      qsum += q[k];
    }
    if (psum == 0 || qsum == 0) continue;
    double kl = 0;
    for (int k = 0; k < i; ++k) {
      if (p[k] == 0) continue;
      double pk = p[k] / psum, qk = q[k] / qsum;
      kl += qk > 0 ? pk * std::log(pk / qk) : pk * 30.0;  // an empty Q bin: a large penalty
    }
    if (kl < best_kl) {
      best_kl = kl;
      best = i;
    }
    if (i == kBins) break;
  }
  return (best + 0.5) * amax / kBins;
}

std::pair<double, double> entropy_range(const std::vector<float> &samples, double mn, double mx) {
  std::vector<double> pos, neg;
  for (float v : samples)
    if (v > 0)
      pos.push_back(v);
    else if (v < 0)
      neg.push_back(-v);
  // Both signs share the 256 int8 levels in proportion to their extents.
  double span = std::max(mx, 0.0) - std::min(mn, 0.0);
  auto levels = [&](double extent) {
    return std::clamp(static_cast<int>(256 * extent / span), 16, 255);
  };
  double hi = mx > 0 ? entropy_threshold(pos, mx, levels(mx)) : 0.0;
  double lo = mn < 0 ? -entropy_threshold(neg, -mn, levels(-mn)) : 0.0;
  return {std::min(lo, 0.0), std::max(hi, 0.0)};
}

// Working copy of the model graph that the passes rewrite.
struct Graph {
  std::vector<onnx::NodeProto> nodes;
  std::map<std::string, onnx::TensorProto> initializers;
  std::vector<std::string> outputs;  // model output names, in order

  std::unordered_map<std::string, std::vector<size_t>> consumers() const {
    std::unordered_map<std::string, std::vector<size_t>> map;
    for (size_t i = 0; i < nodes.size(); ++i)
      for (const auto &in : nodes[i].input())
        if (!in.empty()) map[in].push_back(i);
    return map;
  }
  bool is_output(const std::string &name) const {
    return std::find(outputs.begin(), outputs.end(), name) != outputs.end();
  }
};

onnx::TensorProto constant_value(const onnx::NodeProto &node) {
  const std::string name = node.output(0);
  for (const auto &a : node.attribute()) {
    if (a.name() == "value") {
      onnx::TensorProto t = a.t();
      t.set_name(name);
      return t;
    }
    if (a.name() == "value_float") return float_tensor(name, {}, {a.f()});
    if (a.name() == "value_floats")
      return float_tensor(name, {a.floats_size()}, {a.floats().begin(), a.floats().end()});
    if (a.name() == "value_int") return int64_tensor(name, {}, {a.i()});
    if (a.name() == "value_ints")
      return int64_tensor(name, {a.ints_size()}, {a.ints().begin(), a.ints().end()});
  }
  throw NotImplemented(node_label(node) +
                       ": Constant without a value/value_float(s)/value_int(s) "
                       "attribute is not supported");
}

class Compilation {
 public:
  Compilation(const CompileOptions &options, const ProgressFn &progress)
      : options_(options), progress_(progress) {}

  CompileReport run();

 private:
  void load_model();
  void resolve_input();
  // resolve_input's steps.
  const onnx::ValueInfoProto &image_input() const;
  void resolve_input_shape(const onnx::ValueInfoProto &value);
  void resolve_input_layout();
  void resolve_normalisation();
  void build_calibration_program();
  void calibrate();
  void fold_static_tensors();
  void fold_batchnorm_and_bias();
  int equalise_activation_channels();
  // equalise_activation_channels' steps.
  struct ReaderWeights {       // over a tensor's reading convs, per input channel
    std::vector<double> wmax;  // the largest |weight| the channel meets
    bool all_depthwise = true;
  };
  bool has_float_conv_weights(const onnx::NodeProto &node) const;
  std::optional<size_t> equalisable_producer(
      size_t producer_node, int64_t channels,
      const std::unordered_map<std::string, size_t> &producer,
      const std::unordered_map<std::string, std::vector<size_t>> &consumers) const;
  std::optional<ReaderWeights> reader_weights(const std::string &tensor,
                                              const std::vector<size_t> &readers,
                                              int64_t channels) const;
  static std::vector<float> equalisation_scales(const std::vector<double> &absmax,
                                                const ReaderWeights &readers);
  void rescale_initializer(onnx::NodeProto &node, int input,
                           const std::function<int64_t(size_t)> &channel_of,
                           const std::vector<float> &scale, bool divide);
  void divide_producer_channels(onnx::NodeProto &pnode, const std::vector<float> &scale);
  void multiply_reader_channels(onnx::NodeProto &cn, const std::vector<float> &scale);
  void collect_statistics();
  void split_head();
  void find_unary_binaries();
  void find_output_activations();
  void find_flat_function_ranges();
  // find_flat_function_ranges' steps; the chains run on a grid of this many values.
  static constexpr int kFlatRangeGrid = 4097;
  std::map<std::string, std::vector<size_t>> elementwise_chains() const;
  std::optional<std::vector<std::vector<float>>> run_chain(const std::string &tensor,
                                                           const std::vector<size_t> &nodes,
                                                           const std::vector<std::string> &exits,
                                                           const std::vector<float> &grid) const;
  static std::optional<std::pair<double, double>> flat_range_cut(
      const std::vector<std::vector<float>> &values, const std::vector<float> &grid, double lo,
      double hi);
  void split_tail();
  void clip_logit_ranges();
  void plan_quantisation();
  void plan();  // split_tail + plan_quantisation for the current float_nodes_
  bool runs_int8(const onnx::NodeProto &node) const;
  bool is_float_node(const onnx::NodeProto &node) const {
    return float_nodes_.count(node_id(node)) > 0;
  }
  onnx::ModelProto build_core(const std::vector<std::string> &probes = {});
  // The core model as build_core assembles it: its nodes in order (input conversion, body,
  // output conversion) and the initialisers they read.
  struct CoreGraph {
    std::set<std::string> boundaries;  // core outputs: their float values are named "<t>/float"
    std::vector<onnx::NodeProto> nodes;
    std::vector<onnx::TensorProto> inits;
    int weight_counter = 0;  // numbers the quantised weights and biases ("<name>/q<n>")
    std::string scalar_f(const std::string &name, float v);  // adds a float scalar, returns name
    std::string scalar_i8(const std::string &name, int v);   // adds an int8 scalar, returns name
  };
  // A linear op's weights, quantised per channel along `axis` (or with one scale).
  struct LinearWeights {
    Shape shape;
    int axis = 0;
    int64_t group = 1;
    bool per_channel = true;
    std::vector<float> values;  // the float weights
    ChannelQuantized quantised;
  };
  std::string core_float_name(const CoreGraph &core, const std::string &t) const;
  std::string core_read_name(const CoreGraph &core, const std::string &t) const;
  void add_core_input(CoreGraph &core) const;
  std::map<std::string, Shape> core_shapes() const;
  void add_core_body(CoreGraph &core);
  void add_core_node(size_t i, CoreGraph &core, std::vector<onnx::NodeProto> &body);
  LinearWeights quantise_linear_weights(const onnx::NodeProto &node,
                                        const std::string &label) const;
  std::vector<float> bias_correction_shift(const onnx::NodeProto &node,
                                           const onnx::NodeProto &original,
                                           const LinearWeights &w) const;
  static std::vector<float> conv_rounding_shift(const LinearWeights &w,
                                                const std::vector<double> &sum, double count);
  static std::vector<float> gemm_rounding_shift(const LinearWeights &w,
                                                const std::vector<double> &sum, double count);
  void add_quantised_weights(onnx::NodeProto &node, const LinearWeights &w, CoreGraph &core,
                             std::vector<onnx::NodeProto> &body);
  void add_quantised_bias(onnx::NodeProto &node, const onnx::NodeProto &original,
                          const LinearWeights &w, const std::vector<float> &bias_shift,
                          const std::string &label, CoreGraph &core,
                          std::vector<onnx::NodeProto> &body);
  void add_core_outputs(CoreGraph &core);
  onnx::ModelProto assemble_core(CoreGraph &core, const std::vector<std::string> &probes) const;
  std::optional<onnx::ModelProto> build_preamble() const;
  std::optional<onnx::ModelProto> build_postamble();
  struct Evaluation {
    std::vector<Acc> outputs, core, probes;  // model outputs, core outputs, probe tensors
    std::vector<Acc> sigmoid_outputs;        // score-logit model outputs through sigmoid
    std::vector<Acc> core_in_range;  // core outputs vs the float values clamped to their range
    // Min over core outputs of the cosine within the representable range: what quantisation
    // adds, and well-conditioned on images where the outputs are all background.
    double metric = 1;
  };
  Evaluation evaluate(const std::vector<CalibrationFrame> &frames,
                      const std::vector<std::string> &probes, const std::string &stage);
  void resolve_forced_float_nodes();
  void mixed_precision_search();
  void reference_check();
  void write_package(const std::string &core_bytes, const std::string *pre_bytes,
                     const std::string *post_bytes);

  std::vector<float> input_tensor(const cv::Mat &frame) const {
    return frame_to_tensor(frame, input_, norm_, resize_);
  }
  const engine::TensorDesc &desc(const std::string &tensor) const {
    auto it = calib_index_.find(tensor);
    if (it == calib_index_.end())
      throw InternalError("compiler: tensor '" + tensor + "' was not exposed by calibration");
    return calib_program_->outputs()[it->second];
  }
  bool is_float(const std::string &tensor) const {
    auto it = calib_index_.find(tensor);
    return it != calib_index_.end() &&
           calib_program_->outputs()[it->second].dtype == engine::DType::f32;
  }
  bool is_static(const std::string &tensor) const {
    return initializers_or_static_.count(tensor) > 0;
  }

  const CompileOptions &options_;
  const ProgressFn &progress_;
  CompileReport report_;
  std::string model_label_;  // "model 'path'"
  onnx::ModelProto model_;
  int64_t opset_ = 1;
  Graph graph_;

  ModelInputSpec input_;
  Shape input_shape_;
  PixelNormalisation norm_;
  CalibrationResize resize_ = CalibrationResize::stretch;  // options_.resize, resolved
  QuantParams input_params_;
  int64_t input_padded_channels_ = 4;
  // The core's input: the model input, or the preamble's output (same shape and layout).
  ModelInputSpec core_input_;
  QuantParams core_input_params_;

  std::shared_ptr<const engine::Program> calib_program_;
  std::unordered_map<std::string, size_t> calib_index_;
  std::unordered_set<std::string> initializers_or_static_;
  std::vector<CalibrationFrame> frames_;
  std::vector<CalibrationFrame> held_out_;
  std::map<std::string, Stats> stats_;
  std::map<std::string, Stats> calibrated_stats_;  // after calibration, before logit clipping
  std::set<std::string> float_nodes_;              // node_id()s computing in float
  std::set<std::string> logit_outputs_;            // model outputs that are clipped score logits
  // Binary ops whose activation inputs are all computed from one tensor by elementwise ops
  // (x * relu6(x + 3) of hard-swish): unary functions of that tensor, by node_id().
  std::set<std::string> unary_binaries_;
  // Tensors read only through a function of themselves (an elementwise chain: hard-swish,
  // hard-sigmoid) that is constant below/above some value: the range beyond it is not needed.
  std::map<std::string, std::pair<double, double>> flat_ranges_;
  bool flat_ranges_found_ = false;
  std::map<std::string, std::vector<uint8_t>> static_values_;

  std::vector<bool> is_head_;  // per graph_.nodes index: in the preamble
  std::vector<bool> is_tail_;  // per graph_.nodes index: in the postamble
  // Output activations kept in the core (find_output_activations), by graph_.nodes index; the
  // nodes between each and its linear op; the tensors from the linear op's output up to the
  // activation's input, which get no Q/DQ.
  std::set<size_t> output_activations_;
  std::set<size_t> activation_path_nodes_;
  std::set<std::string> activation_path_;
  std::vector<std::string> boundaries_;  // core outputs (float tensors), in output order
  std::map<std::string, std::vector<std::string>> boundaries_of_output_;
  std::map<std::string, std::pair<double, double>> fixed_ranges_;  // by core output
  std::map<std::string, QuantParams> params_;                      // activations with a Q/DQ pair
  std::map<std::string, std::string> fused_;  // linear output -> activation consuming it

  struct CoreOutput {
    std::string name;
    Shape float_shape;   // original
    Shape device_shape;  // padded, NHWC if transposed
    bool transposed = false;
    int64_t pad_high = 0;
    QuantParams params;
  };
  std::vector<CoreOutput> core_outputs_;

  // evaluate()'s steps: the package loaded with the float model, and one frame through both.
  struct PackageRun {
    std::shared_ptr<const engine::Program> core, post, pre;
    std::unique_ptr<engine::Executor> calib_exec, core_exec, post_exec, pre_exec;
    std::vector<std::vector<uint8_t>> float_bufs, core_bufs;  // the float and core runs' outputs
    std::vector<void *> float_ptrs, core_ptrs;
    std::vector<float> core_in;  // the preamble's output
  };
  PackageRun load_package_run(const std::vector<std::string> &probes);
  void run_float_and_core(const cv::Mat &bgr, PackageRun &run) const;
  std::vector<int8_t> device_input(const std::vector<float> &x) const;
  void compare_probes(const std::vector<std::string> &probes, const PackageRun &run,
                      Evaluation &ev) const;
  std::vector<std::vector<float>> compare_core_outputs(const PackageRun &run, Evaluation &ev) const;
  static std::vector<float> consumer_view(const CoreOutput &co, const int8_t *device_out);
  void compare_model_outputs(const std::vector<std::vector<float>> &dequantised,
                             const PackageRun &run, Evaluation &ev) const;
};

void Compilation::load_model() {
  model_label_ = "model '" + options_.model_path + "'";
  model_ = load_onnx(options_.model_path);
  // A float16/bfloat16 (or float64) export is compiled from its float32 equivalent: every
  // later step (calibration, folding, the pre/postamble) then sees a float32 model.
  report_.precision_conversion = widen_to_float32(model_, model_label_).summary();
  opset_ = default_opset(model_);
  const auto &g = model_.graph();
  for (const auto &init : g.initializer()) graph_.initializers[init.name()] = init;
  for (const auto &node : g.node()) {
    if (node.op_type() == "Constant" && (node.domain().empty() || node.domain() == "ai.onnx")) {
      graph_.initializers[node.output(0)] = constant_value(node);
      continue;
    }
    // Calibration, the int8 quantiser and the core/host split walk the main graph only: the
    // weights and activations inside a subgraph would go unquantised, so the package is refused
    // rather than made with them silently left out.
    if (node.op_type() == "If" || node.op_type() == "Loop" || node.op_type() == "Scan")
      throw NotImplemented(model_label_ + ": " + node_label(node) +
                           ": control flow cannot go into a model package (the int8 quantiser "
                           "does not enter its subgraphs); run the ONNX model on the host "
                           "engine, which runs If/Loop/Scan (docs/runtime.md), or export the "
                           "model without it");
    // Calibration and the quantiser give each tensor edge a scale; a sequence or optional is
    // no tensor (the host engine resolves them into tensor ops when it compiles), so a model
    // with them is refused rather than given a package whose core graph would hold them.
    if (engine::is_sequence_op(node.op_type()) &&
        (node.domain().empty() || node.domain() == "ai.onnx"))
      throw NotImplemented(model_label_ + ": " + node_label(node) +
                           ": sequences and optionals cannot go into a model package (the int8 "
                           "quantiser calibrates and scales tensors, and a sequence is none); run "
                           "the ONNX model on the host engine, which resolves them when it "
                           "compiles (docs/runtime.md), or export the model without them");
    graph_.nodes.push_back(node);
  }
  for (const auto &out : g.output()) graph_.outputs.push_back(out.name());
}

// The model's one input that is not an initializer, which --input-shape may name.
const onnx::ValueInfoProto &Compilation::image_input() const {
  const auto &g = model_.graph();
  std::vector<const onnx::ValueInfoProto *> inputs;
  for (const auto &in : g.input())
    if (!graph_.initializers.count(in.name())) inputs.push_back(&in);
  if (inputs.size() != 1)
    throw NotImplemented(model_label_ + ": has " + std::to_string(inputs.size()) +
                         " inputs; axcompile compiles single-image-input models");
  for (const auto &[name, shape] : options_.input_shapes)
    if (name != inputs[0]->name())
      throw InvalidArgument("--input-shape names '" + name + "' but " + model_label_ +
                            " has the input '" + inputs[0]->name() + "'");
  return *inputs[0];
}

// input_shape_: the declared shape, or --input-shape where it agrees with the fixed dims; a
// batch-1 image tensor of rank 4 with positive dims.
void Compilation::resolve_input_shape(const onnx::ValueInfoProto &value) {
  const auto &type = value.type().tensor_type();
  Shape declared;
  for (const auto &d : type.shape().dim())
    declared.push_back(d.has_dim_value() ? d.dim_value() : -1);
  auto given = options_.input_shapes.find(input_.name);
  if (given != options_.input_shapes.end()) {
    if (!declared.empty() && given->second.size() != declared.size())
      throw InvalidArgument("--input-shape " + input_.name + "=" + shape_text(given->second) +
                            ": " + model_label_ + " declares rank " +
                            std::to_string(declared.size()) + " " + shape_text(declared));
    for (size_t d = 0; d < declared.size(); ++d)
      if (declared[d] > 0 && declared[d] != given->second[d])
        throw InvalidArgument("--input-shape " + input_.name + "=" + shape_text(given->second) +
                              " contradicts the fixed dimension " + std::to_string(d) + " of " +
                              shape_text(declared) + " in " + model_label_);
    input_shape_ = given->second;
  } else {
    input_shape_ = declared;
    if (std::any_of(declared.begin(), declared.end(), [](int64_t d) { return d <= 0; }) ||
        declared.empty())
      throw InvalidArgument(model_label_ + ": input '" + input_.name + "' has dynamic shape " +
                            shape_text(declared) + "; pass --input-shape " + input_.name +
                            "=N,C,H,W (e.g. 1,3,640,640)");
  }
  if (input_shape_.size() != 4)
    throw NotImplemented(model_label_ + ": input '" + input_.name + "' has shape " +
                         shape_text(input_shape_) + "; expected an image tensor of rank 4");
  if (input_shape_[0] != 1)
    throw InvalidArgument(model_label_ + ": input '" + input_.name + "' shape " +
                          shape_text(input_shape_) +
                          ": the core graph is batch 1 (use --input-shape with N=1)");
  for (int64_t d : input_shape_)
    if (d <= 0)
      throw InvalidArgument("--input-shape " + input_.name + "=" + shape_text(input_shape_) +
                            ": every dimension must be positive");
}

// NCHW or NHWC (--input-layout, or where the 1 or 3 channels are), and the image size.
void Compilation::resolve_input_layout() {
  auto channel_like = [](int64_t c) { return c == 1 || c == 3; };
  InputLayout layout = options_.input_layout;
  if (layout == InputLayout::autodetect) {
    if (channel_like(input_shape_[1]) && !channel_like(input_shape_[3]))
      layout = InputLayout::nchw;
    else if (channel_like(input_shape_[3]))
      layout = InputLayout::nhwc;
    else
      throw InvalidArgument(model_label_ + ": cannot tell the layout of input '" + input_.name +
                            "' " + shape_text(input_shape_) + "; pass --input-layout NCHW or NHWC");
  }
  input_.nchw = layout == InputLayout::nchw;
  input_.channels = static_cast<int>(input_.nchw ? input_shape_[1] : input_shape_[3]);
  input_.height = static_cast<int>(input_.nchw ? input_shape_[2] : input_shape_[1]);
  input_.width = static_cast<int>(input_.nchw ? input_shape_[3] : input_shape_[2]);
  if (input_.channels != 1 && input_.channels != 3)
    throw NotImplemented(model_label_ + ": input '" + input_.name + "' has " +
                         std::to_string(input_.channels) + " channels; expected 1 or 3");
}

// How frames become the float input: resize, colour order, pixel scale, mean and std (one
// value or one per channel, finite, no std of 0).
void Compilation::resolve_normalisation() {
  // A recogniser calibrating on text lines is fed them as PaddleOCR does, not stretched.
  resize_ = options_.resize != CalibrationResize::automatic ? options_.resize
            : options_.calibration_text_detector.empty()    ? CalibrationResize::stretch
                                                            : CalibrationResize::pad_right;
  report_.calibration_resize = calibration_resize_name(resize_);
  norm_.color_format = input_.channels == 1 ? "GRAY" : options_.color_format;
  norm_.pixel_scale = options_.pixel_scale;
  auto expand = [&](const std::vector<double> &v, double fallback, const char *what) {
    if (v.empty()) return std::vector<double>(input_.channels, fallback);
    if (v.size() == 1) return std::vector<double>(input_.channels, v[0]);
    if (static_cast<int>(v.size()) != input_.channels)
      throw InvalidArgument(std::string("--") + what + ": expected 1 or " +
                            std::to_string(input_.channels) + " values, got " +
                            std::to_string(v.size()));
    return v;
  };
  norm_.mean = expand(options_.mean, 0.0, "mean");
  norm_.std = expand(options_.std, 1.0, "std");
  for (double s : norm_.std)
    if (s == 0) throw InvalidArgument("--std: a standard deviation of 0 divides by zero");
  // manifest.json cannot hold a NaN or an infinity (nor would the package load): refuse them
  // here rather than write a package that does not open.
  auto require_finite = [](const std::vector<double> &values, const char *what) {
    for (double v : values)
      if (!std::isfinite(v))
        throw InvalidArgument(std::string("--") + what + ": expected finite numbers, got " +
                              std::to_string(v));
  };
  require_finite(norm_.mean, "mean");
  require_finite(norm_.std, "std");
  if (!std::isfinite(norm_.pixel_scale) || norm_.pixel_scale == 0)
    throw InvalidArgument("--pixel-scale: expected a finite non-zero number, got " +
                          std::to_string(norm_.pixel_scale));
}

void Compilation::resolve_input() {
  const onnx::ValueInfoProto &value = image_input();
  input_.name = value.name();
  const auto &type = value.type().tensor_type();
  if (type.elem_type() != onnx::TensorProto::FLOAT)
    throw NotImplemented(model_label_ + ": input '" + input_.name + "' is not float32 (ONNX type " +
                         std::to_string(type.elem_type()) + ")");
  resolve_input_shape(value);
  resolve_input_layout();
  resolve_normalisation();
  // The device input is quantize(normalised pixel): its range is known without calibration.
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (int c = 0; c < input_.channels; ++c)
    for (double pixel : {0.0, 255.0}) {
      double v = (pixel * norm_.pixel_scale - norm_.mean[c]) / norm_.std[c];
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  input_params_ = asymmetric_int8(lo, hi);
  input_padded_channels_ = (input_.channels + 3) / 4 * 4;
  core_input_ = input_;
  core_input_params_ = input_params_;
}

void Compilation::build_calibration_program() {
  // Statically known tensors: initializers, Shape/Size of anything (the input shape is fixed),
  // and whatever is computed only from those.
  for (const auto &[name, init] : graph_.initializers) initializers_or_static_.insert(name);
  for (const auto &node : graph_.nodes) {
    bool is_static = node.op_type() == "Shape" || node.op_type() == "Size";
    if (!is_static && node.op_type().rfind("Random", 0) != 0) {
      is_static = true;
      for (const auto &in : node.input())
        if (!in.empty() && !initializers_or_static_.count(in)) is_static = false;
    }
    if (is_static)
      for (const auto &out : node.output()) initializers_or_static_.insert(out);
  }

  onnx::ModelProto calib = model_;
  auto *g = calib.mutable_graph();
  g->clear_node();
  for (const auto &node : graph_.nodes) *g->add_node() = node;
  g->clear_initializer();
  for (const auto &[name, init] : graph_.initializers) *g->add_initializer() = init;
  g->clear_value_info();
  for (auto &in : *g->mutable_input())
    if (in.name() == input_.name)
      in = value_info(in.name(), onnx::TensorProto::FLOAT, input_shape_);
  // Every node output becomes a graph output so one run shows every tensor.
  std::set<std::string> seen;
  std::vector<std::string> exposed;
  for (const auto &out : graph_.outputs) seen.insert(out);
  for (const auto &node : graph_.nodes)
    for (const auto &out : node.output())
      if (!out.empty() && seen.insert(out).second) {
        onnx::ValueInfoProto v;
        v.set_name(out);
        *g->add_output() = v;
      }
  if (const char *dump = std::getenv("AXCOMPILE_DUMP_DIR"))  // debugging aid
    std::ofstream(std::string(dump) + "/calibration.onnx", std::ios::binary)
        << serialize(calib, model_label_);
  engine::CompileOptions engine_options;
  engine_options.input_shapes[input_.name] = input_shape_;
  try {
    calib_program_ = engine::Program::from_bytes(serialize(calib, model_label_),
                                                 options_.model_path, engine_options);
  } catch (const Error &e) {
    rethrow_with_context(e, model_label_ + " (float graph for calibration)");
  }
  const auto &outs = calib_program_->outputs();
  for (size_t i = 0; i < outs.size(); ++i) calib_index_[outs[i].name] = i;
}

// Scenes read for --calib-text-crops (each gives several crops).
constexpr int kMaxTextCropScenes = 64;

void Compilation::calibrate() {
  int wanted = std::max(1, options_.num_calibration);
  if (options_.calibration_text_detector.empty())
    frames_ = load_calibration_frames(options_.calibration, wanted + 4);
  else  // an OCR recogniser: calibrate on the text lines the detector finds in the images
    frames_ = text_line_crops(load_calibration_frames(options_.calibration, kMaxTextCropScenes),
                              options_.calibration_text_detector, wanted + 4);
  int total = static_cast<int>(frames_.size());
  int held = total >= 2 ? std::max(1, std::min(4, total / 5)) : 0;
  if (total - held > wanted) held = std::min(4, total - wanted);
  held_out_.assign(frames_.end() - held, frames_.end());
  frames_.resize(std::min(wanted, total - held));
  report_.calibration_images = static_cast<int>(frames_.size());
  if (held_out_.empty() && options_.reference_check) {
    held_out_ = frames_;
    report_.reference_on_calibration_images = true;
  }
  collect_statistics();
}

// Runs the calibration program on every calibration frame and sets each float tensor's range.
void Compilation::collect_statistics() {
  stats_.clear();
  const auto &outs = calib_program_->outputs();
  std::vector<std::vector<uint8_t>> buffers(outs.size());
  std::vector<void *> out_ptrs(outs.size());
  for (size_t i = 0; i < outs.size(); ++i) {
    buffers[i].resize(outs[i].byte_size());
    out_ptrs[i] = buffers[i].data();
  }
  auto executor = calib_program_->make_executor();
  const double pct = options_.percentile / 100.0;
  // Inputs of Conv/Gemm/MatMul and their channel axis: per-channel means for bias correction.
  std::map<std::string, int> channel_axis;
  for (const auto &node : graph_.nodes) {
    if (node.input_size() < 2 || !graph_.initializers.count(node.input(1))) continue;
    if (node.op_type() == "Conv" || node.op_type() == "ConvTranspose")
      channel_axis[node.input(0)] = 1;
    else if ((node.op_type() == "Gemm" && attr_int(node, "transA", 0) == 0) ||
             node.op_type() == "MatMul")
      channel_axis[node.input(0)] = -1;  // the last axis
  }
  const bool sample =
      options_.method == CalibrationMethod::mse || options_.method == CalibrationMethod::entropy;
  std::vector<float> scratch;
  for (size_t f = 0; f < frames_.size(); ++f) {
    if (progress_) progress_("calibrating", static_cast<int>(f), static_cast<int>(frames_.size()));
    std::vector<float> in = input_tensor(frames_[f].bgr);
    try {
      executor->run({in.data()}, out_ptrs);
    } catch (const Error &e) {
      rethrow_with_context(e, model_label_ + ": float run on '" + frames_[f].source + "'");
    }
    for (size_t i = 0; i < outs.size(); ++i) {
      const auto &name = outs[i].name;
      if (is_static(name)) {
        if (f == 0) static_values_[name] = buffers[i];
        continue;
      }
      if (outs[i].dtype != engine::DType::f32) continue;
      const float *v = reinterpret_cast<const float *>(buffers[i].data());
      size_t n = outs[i].element_count();
      if (n == 0) continue;
      Stats &s = stats_[name];
      auto [mn, mx] = std::minmax_element(v, v + n);
      s.min = std::min<double>(s.min, *mn);
      s.max = std::max<double>(s.max, *mx);
      if (auto ax = channel_axis.find(name);
          ax != channel_axis.end() && outs[i].shape.size() >= 2) {
        const auto &shape = outs[i].shape;
        size_t axis = ax->second < 0 ? shape.size() - 1 : static_cast<size_t>(ax->second);
        size_t channels = shape[axis], inner = 1;
        for (size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
        s.channel_sum.resize(channels, 0.0);
        s.channel_absmax.resize(channels, 0.0);
        for (size_t k = 0; k < n; ++k) {
          size_t c = (k / inner) % channels;
          s.channel_sum[c] += v[k];
          s.channel_absmax[c] = std::max<double>(s.channel_absmax[c], std::fabs(v[k]));
        }
        s.channel_count += static_cast<double>(n) / channels;
      }
      if (sample) {
        // Up to kSampleBudget values per tensor over all images, strided with a varying offset.
        constexpr size_t kSampleBudget = 1 << 16;
        size_t per_image = std::max<size_t>(1, kSampleBudget / frames_.size());
        size_t stride = std::max<size_t>(1, n / per_image);
        for (size_t k = (f * 7919) % stride; k < n; k += stride) s.samples.push_back(v[k]);
      }
      if (options_.method == CalibrationMethod::percentile) {
        scratch.assign(v, v + n);
        size_t hi_index = std::min(n - 1, static_cast<size_t>(pct * (n - 1) + 0.5));
        size_t lo_index = n - 1 - hi_index;
        std::nth_element(scratch.begin(), scratch.begin() + hi_index, scratch.end());
        s.high_sum += scratch[hi_index];
        std::nth_element(scratch.begin(), scratch.begin() + lo_index, scratch.end());
        s.low_sum += scratch[lo_index];
      }
      ++s.images;
    }
  }
  if (progress_)
    progress_("calibrating", static_cast<int>(frames_.size()), static_cast<int>(frames_.size()));
  for (auto &[name, s] : stats_) {
    s.raw_min = s.min;
    s.raw_max = s.max;
  }
  if (options_.method == CalibrationMethod::percentile)
    for (auto &[name, s] : stats_) {
      s.min = std::max(s.min, s.low_sum / s.images);
      s.max = std::min(s.max, s.high_sum / s.images);
    }
  if (sample)
    for (auto &[name, s] : stats_) {
      std::tie(s.min, s.max) = options_.method == CalibrationMethod::mse
                                   ? mse_range(s.samples, s.min, s.max)
                                   : entropy_range(s.samples, s.min, s.max);
      std::vector<float>().swap(s.samples);
    }
  calibrated_stats_ = stats_;
}

// Per-channel activation equalisation (SmoothQuant-style migration, cross-layer equalisation of
// the activations). A tensor T made by a Conv/ConvTranspose P (directly or through a Relu, which
// commutes with a positive scale) and read only by Convs/ConvTransposes C is quantised per
// tensor, so channels with a small range lose resolution to the widest one. Dividing channel c
// of P's weights and bias by s_c and multiplying C's weights for input channel c by s_c computes
// the same function with T_c / s_c in between. Weights are quantised per output channel, so
// s_c costs P nothing; for a depthwise C nothing either (s_c = a_c / max a: every channel of T
// spans the same range); for a dense C it scales a column of each weight row, so s_c = sqrt(a_c
// / w_c) balances the two (SmoothQuant's alpha 0.5), a_c = max |T_c| over the calibration
// images, w_c = max |C[:, c]|. Not done through hard-swish/Clip (not positively homogeneous).
int Compilation::equalise_activation_channels() {
  auto consumers = graph_.consumers();
  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < graph_.nodes.size(); ++i)
    for (const auto &o : graph_.nodes[i].output()) producer[o] = i;
  int equalised = 0;
  for (const auto &[tensor, stats] : calibrated_stats_) {
    const auto &absmax = stats.channel_absmax;
    if (absmax.empty() || graph_.is_output(tensor)) continue;
    auto p = producer.find(tensor);
    auto c = consumers.find(tensor);
    if (p == producer.end() || c == consumers.end()) continue;
    const int64_t channels = static_cast<int64_t>(absmax.size());
    const std::optional<size_t> conv =
        equalisable_producer(p->second, channels, producer, consumers);
    if (!conv) continue;
    const std::optional<ReaderWeights> readers = reader_weights(tensor, c->second, channels);
    if (!readers) continue;
    const std::vector<float> scale = equalisation_scales(absmax, *readers);
    if (scale.empty()) continue;
    divide_producer_channels(graph_.nodes[*conv], scale);
    for (size_t k : c->second) multiply_reader_channels(graph_.nodes[k], scale);
    ++equalised;
  }
  report_.equalised_tensors = equalised;
  return equalised;
}

// A Conv/ConvTranspose with float weights (and float bias, if any) in the initialisers.
bool Compilation::has_float_conv_weights(const onnx::NodeProto &node) const {
  return (node.op_type() == "Conv" || node.op_type() == "ConvTranspose") &&
         node.input_size() >= 2 && graph_.initializers.count(node.input(1)) &&
         graph_.initializers.at(node.input(1)).data_type() == onnx::TensorProto::FLOAT &&
         (node.input_size() < 3 || node.input(2).empty() ||
          graph_.initializers.count(node.input(2)));
}

// The conv making a tensor of `channels` channels from node `producer_node`, directly or
// through at most one Relu/LeakyRelu read by nothing else; nullopt when there is none whose
// output channels can be scaled.
std::optional<size_t> Compilation::equalisable_producer(
    size_t producer_node, int64_t channels, const std::unordered_map<std::string, size_t> &producer,
    const std::unordered_map<std::string, std::vector<size_t>> &consumers) const {
  size_t conv = producer_node;
  const std::string op = graph_.nodes[conv].op_type();
  if (op == "Relu" || op == "LeakyRelu") {
    auto pp = producer.find(graph_.nodes[conv].input(0));
    auto pc = consumers.find(graph_.nodes[conv].input(0));
    if (pp == producer.end() || pc == consumers.end() || pc->second.size() != 1 ||
        graph_.is_output(graph_.nodes[conv].input(0)))
      return std::nullopt;
    conv = pp->second;
  }
  const auto &pnode = graph_.nodes[conv];
  if (!has_float_conv_weights(pnode)) return std::nullopt;
  Shape pw = dims_of(graph_.initializers.at(pnode.input(1)));
  const bool p_transpose = pnode.op_type() == "ConvTranspose";
  if (p_transpose && attr_int(pnode, "group", 1) != 1) return std::nullopt;
  if ((p_transpose ? pw[1] : pw[0]) != channels) return std::nullopt;
  return conv;
}

// Every reader of `tensor` must be a conv taking it as its data input: the largest |weight|
// each of its input channels meets; nullopt when some reader is not such a conv.
std::optional<Compilation::ReaderWeights> Compilation::reader_weights(
    const std::string &tensor, const std::vector<size_t> &readers, int64_t channels) const {
  ReaderWeights r;
  r.wmax.assign(channels, 0.0);
  for (size_t k : readers) {
    const auto &cn = graph_.nodes[k];
    if (!has_float_conv_weights(cn) || cn.input(0) != tensor) return std::nullopt;
    Shape ws = dims_of(graph_.initializers.at(cn.input(1)));
    int64_t group = attr_int(cn, "group", 1);
    auto w = floats_of(graph_.initializers.at(cn.input(1)), node_label(cn));
    int64_t inner = 1;
    for (size_t d = 2; d < ws.size(); ++d) inner *= ws[d];
    if (cn.op_type() == "ConvTranspose") {
      if (group != 1 || ws[0] != channels) return std::nullopt;
      r.all_depthwise = false;
      for (size_t i = 0; i < w.size(); ++i)
        r.wmax[i / (ws[1] * inner)] =
            std::max<double>(r.wmax[i / (ws[1] * inner)], std::fabs(w[i]));
    } else {
      if (ws[1] * group != channels) return std::nullopt;
      r.all_depthwise = r.all_depthwise && ws[1] == 1;
      const int64_t out_per_group = ws[0] / group;
      for (size_t i = 0; i < w.size(); ++i) {
        int64_t o = static_cast<int64_t>(i) / (ws[1] * inner);
        int64_t in = (o / out_per_group) * ws[1] + (static_cast<int64_t>(i) / inner) % ws[1];
        r.wmax[in] = std::max<double>(r.wmax[in], std::fabs(w[i]));
      }
    }
  }
  return r;
}

// s_c per channel (see equalise_activation_channels); empty when the tensor is all zero.
std::vector<float> Compilation::equalisation_scales(const std::vector<double> &absmax,
                                                    const ReaderWeights &readers) {
  const int64_t channels = static_cast<int64_t>(absmax.size());
  const double amax = *std::max_element(absmax.begin(), absmax.end());
  if (!(amax > 0)) return {};
  std::vector<float> scale(channels, 1.0f);
  for (int64_t ch = 0; ch < channels; ++ch) {
    double a = std::max(absmax[ch], amax * 1e-3);
    double s = readers.all_depthwise
                   ? a / amax
                   : (readers.wmax[ch] > 0 ? std::sqrt(a / readers.wmax[ch]) : 1.0);
    scale[ch] = static_cast<float>(std::clamp(s, 1e-4, 1e4));
  }
  if (!readers.all_depthwise) {  // keep the scales' geometric mean at 1 (ranges stay comparable)
    double log_sum = 0;
    for (float s : scale) log_sum += std::log(s);
    float mean = static_cast<float>(std::exp(log_sum / channels));
    for (float &s : scale) s /= mean;
  }
  return scale;
}

// Replaces initialiser input `input` of `node` by a copy with element i divided (or multiplied)
// by scale[channel_of(i)].
void Compilation::rescale_initializer(onnx::NodeProto &node, int input,
                                      const std::function<int64_t(size_t)> &channel_of,
                                      const std::vector<float> &scale, bool divide) {
  const auto &init = graph_.initializers.at(node.input(input));
  Shape shape = dims_of(init);
  auto v = floats_of(init, node_label(node));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = divide ? v[i] / scale[channel_of(i)] : v[i] * scale[channel_of(i)];
  std::string name = node_id(node) + "/equalised_" + std::to_string(input);
  graph_.initializers[name] = float_tensor(name, shape, v);
  node.set_input(input, name);
}

// Producer: output channel c (weights and bias) / s_c.
void Compilation::divide_producer_channels(onnx::NodeProto &pnode,
                                           const std::vector<float> &scale) {
  Shape pw = dims_of(graph_.initializers.at(pnode.input(1)));
  int64_t inner = 1;
  for (size_t d = 2; d < pw.size(); ++d) inner *= pw[d];
  if (pnode.op_type() == "ConvTranspose")
    rescale_initializer(
        pnode, 1, [&](size_t i) { return (static_cast<int64_t>(i) / inner) % pw[1]; }, scale, true);
  else
    rescale_initializer(
        pnode, 1, [&](size_t i) { return static_cast<int64_t>(i) / (pw[1] * inner); }, scale, true);
  if (pnode.input_size() > 2 && !pnode.input(2).empty())
    rescale_initializer(
        pnode, 2, [](size_t i) { return static_cast<int64_t>(i); }, scale, true);
}

// Reader: weights of input channel c * s_c.
void Compilation::multiply_reader_channels(onnx::NodeProto &cn, const std::vector<float> &scale) {
  Shape ws = dims_of(graph_.initializers.at(cn.input(1)));
  int64_t group = attr_int(cn, "group", 1), inner = 1;
  for (size_t d = 2; d < ws.size(); ++d) inner *= ws[d];
  if (cn.op_type() == "ConvTranspose") {
    rescale_initializer(
        cn, 1, [&](size_t i) { return static_cast<int64_t>(i) / (ws[1] * inner); }, scale, false);
  } else {
    const int64_t out_per_group = ws[0] / group;
    rescale_initializer(
        cn, 1,
        [&](size_t i) {
          int64_t o = static_cast<int64_t>(i) / (ws[1] * inner);
          return (o / out_per_group) * ws[1] + (static_cast<int64_t>(i) / inner) % ws[1];
        },
        scale, false);
  }
}

void Compilation::fold_static_tensors() {
  std::vector<onnx::NodeProto> kept;
  for (const auto &node : graph_.nodes) {
    bool all_static = node.output_size() > 0;
    for (const auto &out : node.output())
      if (!out.empty() && !is_static(out)) all_static = false;
    if (!all_static) {
      kept.push_back(node);
      continue;
    }
    for (const auto &out : node.output()) {
      if (out.empty()) continue;
      auto it = static_values_.find(out);
      if (it == static_values_.end())
        throw InternalError(model_label_ + ": " + node_label(node) + ": constant output '" + out +
                            "' was not returned by the calibration run");
      graph_.initializers[out] = tensor_from_engine(out, desc(out), it->second.data());
    }
  }
  graph_.nodes = std::move(kept);
}

void Compilation::fold_batchnorm_and_bias() {
  bool changed = true;
  while (changed) {
    changed = false;
    auto consumers = graph_.consumers();
    for (size_t i = 0; i < graph_.nodes.size() && !changed; ++i) {
      auto &conv = graph_.nodes[i];
      if (conv.op_type() != "Conv" && conv.op_type() != "ConvTranspose") continue;
      const std::string out = conv.output(0);
      auto c = consumers.find(out);
      if (c == consumers.end() || c->second.size() != 1 || graph_.is_output(out)) continue;
      auto &next = graph_.nodes[c->second[0]];
      if (conv.input_size() < 2 || !graph_.initializers.count(conv.input(1))) continue;
      const auto &w_init = graph_.initializers.at(conv.input(1));
      if (w_init.data_type() != onnx::TensorProto::FLOAT) continue;
      Shape w_shape = dims_of(w_init);
      int64_t group = attr_int(conv, "group", 1);
      bool transpose = conv.op_type() == "ConvTranspose";
      int64_t out_channels = transpose ? w_shape[1] * group : w_shape[0];
      std::vector<float> scale(out_channels, 1.0f), shift(out_channels, 0.0f);
      if (next.op_type() == "BatchNormalization") {
        bool params_const = next.input_size() == 5;
        for (int k = 1; k < next.input_size() && params_const; ++k)
          params_const = graph_.initializers.count(next.input(k)) > 0;
        if (!params_const || next.output_size() > 1) continue;
        auto get = [&](int k) {
          return floats_of(graph_.initializers.at(next.input(k)), node_label(next));
        };
        auto gamma = get(1), beta = get(2), mean = get(3), var = get(4);
        float eps = 1e-5f;
        if (const auto *a = find_attr(next, "epsilon")) eps = a->f();
        if (static_cast<int64_t>(gamma.size()) != out_channels) continue;
        for (int64_t k = 0; k < out_channels; ++k) {
          scale[k] = gamma[k] / std::sqrt(var[k] + eps);
          shift[k] = beta[k] - mean[k] * scale[k];
        }
      } else if (next.op_type() == "Add") {
        std::string other = next.input(0) == out ? next.input(1) : next.input(0);
        if (!graph_.initializers.count(other)) continue;
        const auto &b = graph_.initializers.at(other);
        if (b.data_type() != onnx::TensorProto::FLOAT) continue;
        Shape bs = dims_of(b);
        int64_t count = 1;
        for (int64_t d : bs) count *= d;
        bool per_channel =
            count == out_channels && ((bs.size() == 4 && bs[0] == 1 && bs[1] == out_channels) ||
                                      (bs.size() == 3 && bs[0] == out_channels) || count == 1);
        if (!per_channel || count != out_channels) continue;
        shift = floats_of(b, node_label(next));
      } else if (next.op_type() == "Mul") {
        // PP-LCNetV3's learnable affine block scales every conv output by one constant: folded,
        // the conv's int8 output is the scaled tensor and no float Mul sits between Q/DQ pairs.
        std::string other = next.input(0) == out ? next.input(1) : next.input(0);
        if (!graph_.initializers.count(other)) continue;
        const auto &m = graph_.initializers.at(other);
        if (m.data_type() != onnx::TensorProto::FLOAT) continue;
        Shape ms = dims_of(m);
        int64_t count = 1;
        for (int64_t d : ms) count *= d;
        auto factors = floats_of(m, node_label(next));
        if (count == 1 && ms.size() <= 4)
          scale.assign(out_channels, factors[0]);
        else if (count == out_channels && ms.size() == 4 && ms[0] == 1 && ms[1] == out_channels)
          scale = factors;
        else
          continue;
      } else {
        continue;
      }
      std::vector<float> w = floats_of(w_init, node_label(conv));
      int64_t inner = 1;
      for (size_t d = transpose ? 2 : 1; d < w_shape.size(); ++d) inner *= w_shape[d];
      for (size_t k = 0; k < w.size(); ++k) {
        int64_t oc;
        if (!transpose) {
          oc = static_cast<int64_t>(k) / inner;
        } else {  // [Cin, Cout/group, kh, kw]
          int64_t per_group_out = w_shape[1];
          int64_t cin = static_cast<int64_t>(k) / (per_group_out * inner);
          int64_t in_per_group = w_shape[0] / group;
          oc = (cin / in_per_group) * per_group_out +
               (static_cast<int64_t>(k) / inner) % per_group_out;
        }
        w[k] *= scale[oc];
      }
      std::vector<float> bias(out_channels, 0.0f);
      if (conv.input_size() > 2 && !conv.input(2).empty()) {
        if (!graph_.initializers.count(conv.input(2))) continue;
        bias = floats_of(graph_.initializers.at(conv.input(2)), node_label(conv));
      }
      for (int64_t k = 0; k < out_channels; ++k) bias[k] = bias[k] * scale[k] + shift[k];
      std::string base = conv.name().empty() ? out : conv.name();
      std::string w_name = base + "/folded_weight", b_name = base + "/folded_bias";
      graph_.initializers[w_name] = float_tensor(w_name, w_shape, w);
      graph_.initializers[b_name] = float_tensor(b_name, {out_channels}, bias);
      conv.set_input(1, w_name);
      if (conv.input_size() > 2)
        conv.set_input(2, b_name);
      else
        conv.add_input(b_name);
      conv.set_output(0, next.output(0));
      graph_.nodes.erase(graph_.nodes.begin() + c->second[0]);
      changed = true;
    }
  }
}

// The preamble: from the model input, the chain of kHeadOps nodes each reading only the previous
// tensor (plus constants), each tensor read by nothing else, cut after its last float tensor.
// That tensor becomes the core's input, with the model input's shape and layout; its range is
// the model input's when the chain only casts to float, else the calibrated one. A Transpose
// NHWC -> NCHW at the input is not split off: the device input is NHWC already, so the core
// absorbs it as it does the NCHW transpose of any NCHW model (BlazeFace keeps its packages).
void Compilation::split_head() {
  is_head_.assign(graph_.nodes.size(), false);
  const auto consumers = graph_.consumers();
  std::vector<size_t> chain;
  size_t cut = 0;  // chain nodes up to the last float tensor
  for (std::string tensor = input_.name;;) {
    auto c = consumers.find(tensor);
    if (graph_.is_output(tensor) || c == consumers.end() || c->second.size() != 1) break;
    const onnx::NodeProto &node = graph_.nodes[c->second[0]];
    if (!kHeadOps.count(node.op_type()) || node.output_size() != 1 || node.input(0) != tensor)
      break;
    bool constant_operands = true;
    for (int k = 1; k < node.input_size(); ++k)
      constant_operands = constant_operands && (node.input(k).empty() || is_static(node.input(k)));
    const std::string &out = node.output(0);
    if (!constant_operands || !calib_index_.count(out) || desc(out).shape != input_shape_) break;
    chain.push_back(c->second[0]);
    if (is_float(out)) cut = chain.size();
    tensor = out;
  }
  chain.resize(cut);
  if (chain.empty()) return;
  bool casts_to_float = true;
  for (size_t i : chain) {
    is_head_[i] = true;
    const auto &node = graph_.nodes[i];
    casts_to_float = casts_to_float && node.op_type() == "Cast" &&
                     attr_int(node, "to", 0) == onnx::TensorProto::FLOAT;
  }
  core_input_.name = graph_.nodes[chain.back()].output(0);
  if (!casts_to_float) {
    auto s = calibrated_stats_.find(core_input_.name);
    if (s == calibrated_stats_.end())
      throw InternalError(model_label_ + ": no calibration statistics for the preamble output '" +
                          core_input_.name + "'");
    core_input_params_ = asymmetric_int8(s->second.min, s->second.max);
  }
}

// Elementwise ops whose other inputs are one-element constants: their output is a function of
// each element of their one activation input.
const std::set<std::string> kElementwise = {
    "Add",       "Sub", "Mul",      "Div",         "Pow",       "Clip",       "Relu",
    "LeakyRelu", "Elu", "Selu",     "HardSigmoid", "HardSwish", "Sigmoid",    "Tanh",
    "Sqrt",      "Exp", "Log",      "Abs",         "Neg",       "Reciprocal", "Erf",
    "Max",       "Min", "Identity", "Softplus",    "Softsign"};

// A binary op whose activation inputs both come from one tensor through elementwise ops (the
// Mul of hard-swish x * relu6(x + 3) / 6, of x * sigmoid(x)) computes a function of that one
// tensor, like the chain around it: quantising its inputs separately adds two rounding points
// and buys nothing, since the whole chain from an int8 tensor to the next Q is one 256-entry
// function (a lookup on the core). Such ops run in float with the chain (runs_int8).
void Compilation::find_unary_binaries() {
  unary_binaries_.clear();
  auto one_element = [&](const std::string &tensor) {
    auto it = graph_.initializers.find(tensor);
    if (it == graph_.initializers.end()) return false;
    int64_t count = 1;
    for (int64_t d : dims_of(it->second)) count *= d;
    return count == 1;
  };
  std::unordered_map<std::string, std::string> root;  // tensor -> tensor it is a function of
  auto root_of = [&](const std::string &tensor) {
    auto it = root.find(tensor);
    return it == root.end() ? tensor : it->second;
  };
  for (size_t i = 0; i < graph_.nodes.size(); ++i) {
    const auto &node = graph_.nodes[i];
    if (is_head_[i] || !kElementwise.count(node.op_type()) || node.output_size() != 1) continue;
    std::set<std::string> roots;
    int activations = 0;
    bool elementwise = true;
    for (const auto &in : node.input()) {
      if (in.empty()) continue;
      if (graph_.initializers.count(in)) {
        elementwise = elementwise && one_element(in);
        continue;
      }
      ++activations;
      roots.insert(root_of(in));
    }
    if (!elementwise || roots.size() != 1) continue;
    root[node.output(0)] = *roots.begin();
    if (activations >= 2) unary_binaries_.insert(node_id(node));
  }
}

// A model output made by a Sigmoid, or a Softmax over the last axis, whose input comes from a
// Conv/ConvTranspose/Gemm/MatMul with constant weights — directly, through the Add of a constant
// bias, or through Reshape/Transpose-like moves, each step read by nothing else — keeps the
// activation in the core: it applies to the linear op's unrounded result and only the
// probability, over [0, 1], is quantised. Quantising the logits instead (per tensor, their wide
// range) was the largest single error on PP-OCR det (docs/compiler.md); an NPU fuses the
// activation into the convolution's requantisation the same way.
void Compilation::find_output_activations() {
  output_activations_.clear();
  activation_path_nodes_.clear();
  activation_path_.clear();
  report_.core_output_activations.clear();
  if (!options_.output_activation_in_core) return;
  const auto consumers = graph_.consumers();
  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < graph_.nodes.size(); ++i)
    for (const auto &out : graph_.nodes[i].output()) producer[out] = i;
  static const std::set<std::string> moves = {"Reshape", "Transpose", "Flatten",
                                              "Squeeze", "Unsqueeze", "Identity"};
  for (size_t i = 0; i < graph_.nodes.size(); ++i) {
    const auto &node = graph_.nodes[i];
    if (is_head_[i] || node.output_size() != 1 || node.input_size() < 1 ||
        !graph_.is_output(node.output(0)) || !is_float(node.input(0)))
      continue;
    if (node.op_type() == "Softmax") {
      // Over the last axis only (opset < 13 coerces to 2-D at `axis`: the same when it is the
      // last one).
      int64_t rank = static_cast<int64_t>(desc(node.input(0)).shape.size());
      int64_t axis = attr_int(node, "axis", opset_ < 13 ? 1 : -1);
      if (axis < 0) axis += rank;
      if (axis != rank - 1) continue;
    } else if (node.op_type() != "Sigmoid") {
      continue;
    }
    std::vector<std::string> path;
    std::vector<size_t> path_nodes;
    const onnx::NodeProto *linear = nullptr;
    for (std::string t = node.input(0); path.size() < 8;) {
      auto c = consumers.find(t);
      auto p = producer.find(t);
      if (c == consumers.end() || c->second.size() != 1 || graph_.is_output(t) || !is_float(t) ||
          p == producer.end() || is_head_[p->second])
        break;
      path.push_back(t);
      const auto &prev = graph_.nodes[p->second];
      if (kLinear.count(prev.op_type())) {
        if (prev.input_size() >= 2 && graph_.initializers.count(prev.input(1))) linear = &prev;
        break;
      }
      std::string next;
      if (prev.op_type() == "Add" && prev.input_size() == 2) {
        bool a_static = is_static(prev.input(0)), b_static = is_static(prev.input(1));
        if (a_static != b_static) next = a_static ? prev.input(1) : prev.input(0);
      } else if (moves.count(prev.op_type())) {
        next = prev.input(0);
      }
      if (next.empty()) break;
      path_nodes.push_back(p->second);
      t = next;
    }
    if (!linear) continue;
    output_activations_.insert(i);
    activation_path_nodes_.insert(path_nodes.begin(), path_nodes.end());
    activation_path_.insert(path.begin(), path.end());
    report_.core_output_activations.push_back(node.op_type() + " '" + node_id(node) + "' on " +
                                              linear->op_type() + " '" + node_id(*linear) + "'");
  }
}

// A tensor whose readers are all elementwise ops computing a function of it alone (the chain of
// hard-swish x * clip(x + 3, 0, 6) / 6, of hard-sigmoid, of a Relu) needs no range where that
// function is constant: hard-swish is 0 below -3, PaddlePaddle's hard-sigmoid 0 below -2.5 and 1
// above 2.5. Cutting the range there loses nothing the readers see and spends the 256 levels on
// the part they do see (PP-OCRv4 det: hard-swish inputs down to -61, SE-gate inputs -59..15).
// The chain is run through the engine on a grid over the calibrated range; a side is cut to the
// last grid point from which every value the chain hands on stays the same.
void Compilation::find_flat_function_ranges() {
  flat_ranges_.clear();
  auto consumers = graph_.consumers();
  std::set<std::string> boundary_set(boundaries_.begin(), boundaries_.end());
  for (const auto &[tensor, nodes] : elementwise_chains()) {
    auto s = calibrated_stats_.find(tensor);
    if (s == calibrated_stats_.end() || boundary_set.count(tensor) || graph_.is_output(tensor) ||
        tensor == core_input_.name)
      continue;
    const double lo = s->second.min, hi = s->second.max;
    if (!(hi > lo)) continue;
    std::set<size_t> in_chain(nodes.begin(), nodes.end());
    auto c = consumers.find(tensor);
    if (c == consumers.end() || !std::all_of(c->second.begin(), c->second.end(),
                                             [&](size_t k) { return in_chain.count(k); }))
      continue;  // also read as it is (a residual Add, a conv): its whole range is needed
    // What the chain hands on: outputs read outside it, or model/core outputs.
    std::vector<std::string> exits;
    for (size_t i : nodes) {
      const auto &out = graph_.nodes[i].output(0);
      auto r = consumers.find(out);
      bool outside = boundary_set.count(out) || graph_.is_output(out) || r == consumers.end();
      if (r != consumers.end())
        for (size_t k : r->second) outside = outside || !in_chain.count(k);
      if (outside) exits.push_back(out);
    }
    if (exits.empty()) continue;
    std::vector<float> grid(kFlatRangeGrid);
    for (int k = 0; k < kFlatRangeGrid; ++k)
      grid[k] = static_cast<float>(lo + (hi - lo) * k / (kFlatRangeGrid - 1));
    std::optional<std::vector<std::vector<float>>> values = run_chain(tensor, nodes, exits, grid);
    if (!values) continue;
    if (auto cut = flat_range_cut(*values, grid, lo, hi)) flat_ranges_[tensor] = *cut;
  }
  report_.flat_range_cuts.clear();
  for (const auto &[tensor, range] : flat_ranges_) report_.flat_range_cuts.push_back(tensor);
}

// Outside the head and tail: tensor -> the elementwise nodes computing a function of it alone
// (with one-element constants), in graph order (as find_unary_binaries builds them).
std::map<std::string, std::vector<size_t>> Compilation::elementwise_chains() const {
  // tensor -> the tensor it is an elementwise function of
  std::unordered_map<std::string, std::string> root;
  std::vector<std::pair<size_t, std::string>> chain_nodes;  // node index, root
  auto root_of = [&](const std::string &tensor) {
    auto it = root.find(tensor);
    return it == root.end() ? tensor : it->second;
  };
  for (size_t i = 0; i < graph_.nodes.size(); ++i) {
    const auto &node = graph_.nodes[i];
    if (is_head_[i] || is_tail_[i] || !kElementwise.count(node.op_type()) ||
        node.output_size() != 1)
      continue;
    std::set<std::string> roots;
    bool one_element_constants = true;
    for (const auto &in : node.input()) {
      if (in.empty()) continue;
      if (auto init = graph_.initializers.find(in); init != graph_.initializers.end()) {
        int64_t count = 1;
        for (int64_t d : dims_of(init->second)) count *= d;
        one_element_constants = one_element_constants && count == 1;
        continue;
      }
      roots.insert(root_of(in));
    }
    if (!one_element_constants || roots.size() != 1) continue;
    root[node.output(0)] = *roots.begin();
    chain_nodes.push_back({i, *roots.begin()});
  }
  std::map<std::string, std::vector<size_t>> chains;  // root -> its chain's nodes, in order
  for (const auto &[i, r] : chain_nodes) chains[r].push_back(i);
  return chains;
}

// The chain's nodes as a graph of their own run through the engine on `grid` (values of
// `tensor`): the values of each exit; nullopt when the engine cannot run it or it broadcasts to
// another shape (not worth failing the compile over: the range stays as calibrated).
std::optional<std::vector<std::vector<float>>> Compilation::run_chain(
    const std::string &tensor, const std::vector<size_t> &nodes,
    const std::vector<std::string> &exits, const std::vector<float> &grid) const {
  onnx::ModelProto chain;
  *chain.mutable_opset_import() = model_.opset_import();
  chain.set_ir_version(model_.ir_version());
  auto *g = chain.mutable_graph();
  g->set_name("flat_range_probe");
  *g->add_input() = value_info(tensor, onnx::TensorProto::FLOAT, {kFlatRangeGrid});
  std::set<std::string> constants;
  for (size_t i : nodes) {
    *g->add_node() = graph_.nodes[i];
    for (const auto &in : graph_.nodes[i].input())
      if (graph_.initializers.count(in) && constants.insert(in).second)
        *g->add_initializer() = graph_.initializers.at(in);
  }
  for (const auto &e : exits) {
    onnx::ValueInfoProto v;
    v.set_name(e);
    *g->add_output() = v;
  }
  std::vector<std::vector<float>> values(exits.size(), std::vector<float>(kFlatRangeGrid));
  try {
    auto program = engine::Program::from_bytes(serialize(chain, model_label_),
                                               "chain reading '" + tensor + "'");
    if (program->outputs().size() != exits.size()) return std::nullopt;
    bool dense = true;
    for (const auto &d : program->outputs())
      dense = dense && d.dtype == engine::DType::f32 && d.element_count() == size_t(kFlatRangeGrid);
    if (!dense) return std::nullopt;
    std::vector<void *> ptrs;
    for (auto &v : values) ptrs.push_back(v.data());
    program->make_executor()->run({grid.data()}, ptrs);
  } catch (const Error &) {
    return std::nullopt;
  }
  return values;
}

// The range [lo, hi] cut where every exit value stays what it is at the range's ends; nullopt
// when no side is flat by more than an int8 step (or the chain is constant or not finite).
std::optional<std::pair<double, double>> Compilation::flat_range_cut(
    const std::vector<std::vector<float>> &values, const std::vector<float> &grid, double lo,
    double hi) {
  constexpr int kGrid = kFlatRangeGrid;
  // Side cuts: the first/last grid index from which every exit value stays what it is at the
  // range's end (to a millionth of the exit's spread: float rounding, not a real change).
  int first = kGrid - 1, last = 0;
  bool ok = true;
  for (const auto &v : values) {
    auto [mn, mx] = std::minmax_element(v.begin(), v.end());
    if (!std::isfinite(*mn) || !std::isfinite(*mx)) ok = false;
    const float tol = 1e-6f * (*mx - *mn);
    int a = 0;
    while (a + 1 < kGrid && std::fabs(v[a + 1] - v[0]) <= tol) ++a;
    int b = kGrid - 1;
    while (b > 0 && std::fabs(v[b - 1] - v[kGrid - 1]) <= tol) --b;
    first = std::min(first, a);
    last = std::max(last, b);
  }
  if (!ok || first >= last) return std::nullopt;  // constant over the whole range
  // One int8 step past the flat point: the zero point's rounding moves the ends of the
  // int8 grid by up to half a step, and every value beyond the cut lands on that end, which
  // must still be where the function is flat (else they all shift by the same error).
  double flat_lo = grid[first], flat_hi = grid[last];
  double step = (std::max(flat_hi, 0.0) - std::min(flat_lo, 0.0)) / 254.0;
  double cut_lo = first > 0 ? std::min(flat_lo - step, 0.0) : lo;
  double cut_hi = last < kGrid - 1 ? std::max(flat_hi + step, 0.0) : hi;
  // Only a real cut (more than a step): float rounding of the grid's ends is not one.
  if (!(cut_lo > lo + step) && !(cut_hi < hi - step)) return std::nullopt;
  return std::pair{std::max(cut_lo, lo), std::min(cut_hi, hi)};
}

void Compilation::split_tail() {
  find_output_activations();
  auto consumers = graph_.consumers();
  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < graph_.nodes.size(); ++i)
    for (const auto &out : graph_.nodes[i].output()) producer[out] = i;
  is_tail_.assign(graph_.nodes.size(), false);
  boundaries_.clear();
  boundaries_of_output_.clear();
  fixed_ranges_.clear();
  report_.clipped_logits.clear();
  report_.softmax_logits.clear();
  logit_outputs_.clear();
  for (size_t r = graph_.nodes.size(); r-- > 0;) {
    const auto &node = graph_.nodes[r];
    if (is_head_[r] || !kTailOps.count(node.op_type()) || output_activations_.count(r)) continue;
    if (kArithmetic.count(node.op_type())) {
      // A bias or scale right after a conv/matmul belongs with it on the core.
      bool after_linear = false;
      for (const auto &in : node.input()) {
        auto p = producer.find(in);
        if (p != producer.end() && kLinear.count(graph_.nodes[p->second].op_type()))
          after_linear = true;
      }
      if (after_linear) continue;
    }
    bool leads_to_outputs = false, only_tail = true;
    for (const auto &out : node.output()) {
      if (out.empty()) continue;
      if (graph_.is_output(out)) leads_to_outputs = true;
      auto c = consumers.find(out);
      if (c == consumers.end()) continue;
      for (size_t k : c->second) {
        if (!is_tail_[k]) only_tail = false;
        leads_to_outputs = true;
      }
    }
    is_tail_[r] = only_tail && leads_to_outputs;
  }
  // Core outputs in the order the model outputs need them.
  std::set<std::string> seen;
  std::function<void(const std::string &)> visit = [&](const std::string &tensor) {
    if (tensor.empty() || is_static(tensor) || graph_.initializers.count(tensor) ||
        seen.count(tensor))
      return;
    seen.insert(tensor);
    auto p = producer.find(tensor);
    if (p == producer.end() || !is_tail_[p->second]) {
      if (tensor == core_input_.name)
        throw NotImplemented(model_label_ + ": the " +
                             (tensor == input_.name ? "model input '" : "preamble output '") +
                             tensor +
                             "' feeds host-only ops directly; nothing is left for the core");
      if (!is_float(tensor))
        throw NotImplemented(model_label_ + ": core output '" + tensor + "' is not float (" +
                             dtype_name(desc(tensor).dtype) + "); cannot quantise it");
      boundaries_.push_back(tensor);
      return;
    }
    for (const auto &in : graph_.nodes[p->second].input()) visit(in);
  };
  for (const auto &out : graph_.outputs) visit(out);
  // Core outputs each model output depends on (for --output-range by model output name).
  std::set<std::string> boundary_set(boundaries_.begin(), boundaries_.end());
  for (const auto &out : graph_.outputs) {
    std::set<std::string> reached, walked;
    std::function<void(const std::string &)> walk = [&](const std::string &tensor) {
      if (!walked.insert(tensor).second) return;
      if (boundary_set.count(tensor)) {
        reached.insert(tensor);
        return;
      }
      auto p = producer.find(tensor);
      if (p != producer.end() && is_tail_[p->second])
        for (const auto &in : graph_.nodes[p->second].input()) walk(in);
    };
    walk(out);
    boundaries_of_output_[out].assign(reached.begin(), reached.end());
  }
  for (const auto &[name, range] : options_.output_ranges) {
    if (!(range.first < range.second))
      throw InvalidArgument("--output-range " + name + ": expected LOW < HIGH, got " +
                            std::to_string(range.first) + "," + std::to_string(range.second));
    if (std::find(boundaries_.begin(), boundaries_.end(), name) != boundaries_.end()) {
      fixed_ranges_[name] = range;
      continue;
    }
    auto it = boundaries_of_output_.find(name);
    if (it == boundaries_of_output_.end() || it->second.size() != 1)
      throw InvalidArgument(
          "--output-range " + name +
          ": expected a core output or a model "
          "output fed by exactly one core output; " +
          model_label_ +
          (it == boundaries_of_output_.end()
               ? std::string(" has no such output")
               : " computes it from " + std::to_string(it->second.size()) + " core outputs"));
    fixed_ranges_[it->second[0]] = range;
  }
  // A probability in the core: its exact range, with 0 exact (scale 1/255).
  for (size_t i : output_activations_)
    fixed_ranges_.emplace(graph_.nodes[i].output(0), std::pair{0.0, 1.0});
  clip_logit_ranges();
}

// Score logits: a sigmoid is flat beyond +-logit_clip, so a wider range only costs resolution
// (BlazeFace's background anchors reach -30000). Clipped: tensors feeding a Sigmoid directly or
// through data-movement ops, and the core output feeding a model output whose last dimension is
// 1 (one score per anchor/pixel) when its calibrated range exceeds +-64. Softmax inputs instead
// keep their raw maximum (whatever --logit-clip says).
void Compilation::clip_logit_ranges() {
  const double clip = options_.logit_clip;
  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < graph_.nodes.size(); ++i)
    for (const auto &o : graph_.nodes[i].output()) producer[o] = i;
  auto clip_tensor = [&](const std::string &tensor) {
    auto s = stats_.find(tensor);
    if (s == stats_.end() || fixed_ranges_.count(tensor)) return;
    // From the raw min/max: the rare large logits (the detections) are what a range search
    // or a percentile would clip away.
    double lo = std::max(s->second.raw_min, -clip), hi = std::min(s->second.raw_max, clip);
    s->second.min = std::min(lo, 0.0);
    s->second.max = std::max(hi, 0.0);
    if (lo > s->second.raw_min || hi < s->second.raw_max) report_.clipped_logits.push_back(tensor);
  };
  auto consumers = graph_.consumers();
  // Visits `start` and the tensors it is copied from through data movement or Concat (up to 8
  // steps); `visit` returns false to stop there.
  auto walk_up = [&](const std::string &start,
                     const std::function<bool(const std::string &)> &visit) {
    std::function<void(const std::string &, int)> step = [&](const std::string &tensor, int depth) {
      if (!visit(tensor)) return;
      auto p = producer.find(tensor);
      if (p == producer.end() || depth > 8) return;
      const auto &node = graph_.nodes[p->second];
      if (kDataMovement.count(node.op_type()) || node.op_type() == "Concat")
        for (const auto &in : node.input())
          if (!in.empty() && !is_static(in)) step(in, depth + 1);
    };
    step(start, 0);
  };
  // Softmax logits: the largest logit of each row (the class a CTC decoder or a classifier
  // picks) is the rare tail a percentile clips, and clipped top logits tie. Their range keeps
  // the raw maximum.
  auto keep_max = [&](const std::string &tensor) {
    auto s = stats_.find(tensor);
    if (s != stats_.end() && !fixed_ranges_.count(tensor) && s->second.max < s->second.raw_max) {
      s->second.max = s->second.raw_max;
      report_.softmax_logits.push_back(tensor);
    }
    return true;
  };
  // (Not the logits of an output activation kept in the core: they are not quantised.)
  for (size_t i = 0; i < graph_.nodes.size(); ++i) {
    const auto &node = graph_.nodes[i];
    if ((node.op_type() == "Softmax" || node.op_type() == "LogSoftmax") &&
        !output_activations_.count(i))
      walk_up(node.input(0), keep_max);
  }
  if (!(clip > 0)) return;
  auto clip_sigmoid_input = [&](const std::string &tensor) {
    // Only a tensor read by nothing else (x * sigmoid(x) needs the full range of x).
    auto c = consumers.find(tensor);
    if (c == consumers.end() || c->second.size() != 1 || graph_.is_output(tensor)) return false;
    clip_tensor(tensor);
    return true;
  };
  for (size_t i = 0; i < graph_.nodes.size(); ++i)
    if (graph_.nodes[i].op_type() == "Sigmoid" && !output_activations_.count(i))
      walk_up(graph_.nodes[i].input(0), clip_sigmoid_input);
  for (const auto &out : graph_.outputs) {
    auto b = boundaries_of_output_.find(out);
    if (b == boundaries_of_output_.end() || b->second.size() != 1 || !is_float(out)) continue;
    const auto &shape = desc(out).shape;
    if (shape.empty() || shape.back() != 1) continue;
    auto s = stats_.find(b->second[0]);
    if (s == stats_.end() || (s->second.raw_min >= -64 && s->second.raw_max <= 64)) continue;
    clip_tensor(b->second[0]);
    logit_outputs_.insert(out);
  }
}

// Ops the core runs on int8 tensors. Other ops (HardSigmoid, Div, Sqrt, an Add of a constant,
// ...) run in float between a DequantizeLinear and the next QuantizeLinear, so a chain of them
// (hard-swish, layer norm) is quantised once at its end rather than after every step.
bool Compilation::runs_int8(const onnx::NodeProto &node) const {
  if (is_float_node(node)) return false;
  static const std::set<std::string> int8_ops = {
      "Conv",        "ConvTranspose",     "Gemm",   "MatMul", "MaxPool",
      "AveragePool", "GlobalAveragePool", "Concat", "Relu",   "LeakyRelu",
      "Resize"};
  if (int8_ops.count(node.op_type())) return true;
  if (node.op_type() == "Add" || node.op_type() == "Mul" || node.op_type() == "Sub") {
    if (unary_binaries_.count(node_id(node))) return false;
    int activations = 0;
    for (const auto &in : node.input()) activations += !in.empty() && !is_static(in);
    return activations >= 2;
  }
  return false;
}

void Compilation::plan() {
  stats_ = calibrated_stats_;
  split_tail();
  // Once the core's outputs are known (a core output keeps its whole range).
  if (options_.flat_range_cut && !flat_ranges_found_) {
    find_flat_function_ranges();
    flat_ranges_found_ = true;
  }
  for (const auto &[tensor, range] : flat_ranges_) {
    auto s = stats_.find(tensor);
    if (s == stats_.end() || fixed_ranges_.count(tensor)) continue;
    s->second.min = std::max(s->second.min, range.first);
    s->second.max = std::min(s->second.max, range.second);
  }
  plan_quantisation();
}

void Compilation::plan_quantisation() {
  auto consumers = graph_.consumers();
  std::set<std::string> boundary_set(boundaries_.begin(), boundaries_.end());
  params_.clear();
  fused_.clear();
  report_.ranges.clear();
  params_[core_input_.name] = core_input_params_;
  auto needs_qdq = [&](const onnx::NodeProto &producer, const std::string &tensor) {
    if (boundary_set.count(tensor) || runs_int8(producer)) return true;
    auto c = consumers.find(tensor);
    if (c == consumers.end()) return false;
    for (size_t k : c->second)
      if (!is_tail_[k] && !is_float_node(graph_.nodes[k]) &&
          (runs_int8(graph_.nodes[k]) || kDataMovement.count(graph_.nodes[k].op_type())))
        return true;
    return false;
  };
  for (size_t i = 0; i < graph_.nodes.size(); ++i) {
    if (is_head_[i] || is_tail_[i]) continue;
    const auto &node = graph_.nodes[i];
    for (const auto &out : node.output()) {
      if (out.empty() || !is_float(out) || is_static(out) || activation_path_.count(out)) continue;
      auto c = consumers.find(out);
      if (kFusableProducers.count(node.op_type()) && c != consumers.end() &&
          c->second.size() == 1 && !boundary_set.count(out) && !graph_.is_output(out)) {
        const auto &next = graph_.nodes[c->second[0]];
        if (kFusedActivations.count(next.op_type()) && !is_tail_[c->second[0]]) {
          fused_[out] = next.output(0);
          continue;
        }
      }
      bool inherits = kDataMovement.count(node.op_type()) && params_.count(node.input(0));
      if (!inherits && !needs_qdq(node, out)) continue;
      if (auto fixed = fixed_ranges_.find(out); fixed != fixed_ranges_.end()) {
        params_[out] = asymmetric_int8(fixed->second.first, fixed->second.second);
        const auto &p = params_[out];
        report_.ranges.push_back({out, static_cast<float>(fixed->second.first),
                                  static_cast<float>(fixed->second.second), p.scale, p.zero_point});
        continue;
      }
      if (kDataMovement.count(node.op_type()) && params_.count(node.input(0))) {
        params_[out] = params_.at(node.input(0));
        continue;
      }
      auto s = stats_.find(out);
      if (s == stats_.end())
        throw InternalError(model_label_ + ": no calibration statistics for '" + out + "'");
      params_[out] = asymmetric_int8(s->second.min, s->second.max);
      const auto &p = params_[out];
      report_.ranges.push_back({out, static_cast<float>(s->second.min),
                                static_cast<float>(s->second.max), p.scale, p.zero_point});
    }
  }
}

onnx::ModelProto Compilation::build_core(const std::vector<std::string> &probes) {
  core_outputs_.clear();
  report_.core_int8_nodes = 0;
  report_.core_ops.clear();
  report_.bias_corrected = 0;
  report_.core_float_compute_nodes = 0;
  CoreGraph core;
  core.boundaries.insert(boundaries_.begin(), boundaries_.end());
  add_core_input(core);
  add_core_body(core);
  add_core_outputs(core);
  onnx::ModelProto model = assemble_core(core, probes);
  report_.core_nodes = 0;
  for (size_t i = 0; i < graph_.nodes.size(); ++i)
    report_.core_nodes += !is_head_[i] && !is_tail_[i];
  return model;
}

std::string Compilation::CoreGraph::scalar_f(const std::string &name, float v) {
  inits.push_back(make_tensor(name, onnx::TensorProto::FLOAT, {}, &v, sizeof v));
  return name;
}

std::string Compilation::CoreGraph::scalar_i8(const std::string &name, int v) {
  int8_t b = static_cast<int8_t>(v);
  inits.push_back(make_tensor(name, onnx::TensorProto::INT8, {}, &b, 1));
  return name;
}

std::string Compilation::core_float_name(const CoreGraph &core, const std::string &t) const {
  return (t == core_input_.name || core.boundaries.count(t)) ? t + "/float" : t;
}

// What core consumers read for tensor t: the dequantised value when t has a Q/DQ pair.
std::string Compilation::core_read_name(const CoreGraph &core, const std::string &t) const {
  if (t == core_input_.name) return t + "/float";
  if (params_.count(t)) return t + "/dq";
  return core_float_name(core, t);
}

// Input: int8 NHWC padded -> drop pad channels -> NCHW if the model wants it -> dequantise.
void Compilation::add_core_input(CoreGraph &core) const {
  auto &nodes = core.nodes;
  auto &inits = core.inits;
  std::string x = core_input_.name;
  if (input_padded_channels_ != core_input_.channels) {
    inits.push_back(int64_tensor(core_input_.name + "/starts", {1}, {0}));
    inits.push_back(int64_tensor(core_input_.name + "/ends", {1}, {core_input_.channels}));
    inits.push_back(int64_tensor(core_input_.name + "/axes", {1}, {3}));
    nodes.push_back(make_node(
        "Slice",
        {x, core_input_.name + "/starts", core_input_.name + "/ends", core_input_.name + "/axes"},
        {core_input_.name + "/unpadded"}, core_input_.name + "/unpad"));
    x = core_input_.name + "/unpadded";
  }
  if (core_input_.nchw) {
    auto t =
        make_node("Transpose", {x}, {core_input_.name + "/nchw"}, core_input_.name + "/to_nchw");
    set_attr(t, "perm", std::vector<int64_t>{0, 3, 1, 2});
    nodes.push_back(t);
    x = core_input_.name + "/nchw";
  }
  nodes.push_back(
      make_node("DequantizeLinear",
                {x, core.scalar_f(core_input_.name + "/scale", core_input_params_.scale),
                 core.scalar_i8(core_input_.name + "/zero_point", core_input_params_.zero_point)},
                {core_input_.name + "/float"}, core_input_.name + "/dequantize"));
}

// Shapes of the float tensors the core's nodes read, for the opset-13 upgrade.
std::map<std::string, Shape> Compilation::core_shapes() const {
  std::map<std::string, Shape> shapes;
  for (const auto &d : calib_program_->outputs())
    for (const char *suffix : {"", "/dq", "/float"}) shapes[d.name + suffix] = d.shape;
  shapes[core_input_.name + "/float"] = input_shape_;
  return shapes;
}

// The core nodes of the float model with their Q/DQ pairs, the float initialisers they read,
// upgraded to opset 13.
void Compilation::add_core_body(CoreGraph &core) {
  std::vector<onnx::NodeProto> body;
  for (size_t i = 0; i < graph_.nodes.size(); ++i) {
    if (is_head_[i] || is_tail_[i]) continue;
    add_core_node(i, core, body);
  }
  // Initializers the core's float ops read.
  std::set<std::string> used_inits;
  for (const auto &node : body)
    for (const auto &in : node.input())
      if (graph_.initializers.count(in)) used_inits.insert(in);
  for (const auto &name : used_inits) core.inits.push_back(graph_.initializers.at(name));
  auto upgraded = upgrade_to_opset13(body, opset_, core_shapes(), core.inits);
  core.nodes.insert(core.nodes.end(), upgraded.begin(), upgraded.end());
}

// Graph node i reading the dequantised values of its inputs, with int8 weights when it is a
// quantised linear op, and a Q/DQ pair after each output that has quantisation parameters.
void Compilation::add_core_node(size_t i, CoreGraph &core, std::vector<onnx::NodeProto> &body) {
  const onnx::NodeProto &original = graph_.nodes[i];
  onnx::NodeProto node = original;
  for (int k = 0; k < node.input_size(); ++k)
    if (!node.input(k).empty() && !graph_.initializers.count(node.input(k)))
      node.set_input(k, core_read_name(core, node.input(k)));
  if (kLinear.count(node.op_type()) && node.input_size() >= 2 &&
      graph_.initializers.count(node.input(1)) &&
      graph_.initializers.at(node.input(1)).data_type() == onnx::TensorProto::FLOAT &&
      params_.count(original.input(0)) && !is_float_node(original)) {
    const std::string label = node_label(original);
    const LinearWeights weights = quantise_linear_weights(node, label);
    const std::vector<float> bias_shift = bias_correction_shift(node, original, weights);
    add_quantised_weights(node, weights, core, body);
    add_quantised_bias(node, original, weights, bias_shift, label, core, body);
    ++report_.core_int8_nodes;
  }
  for (int k = 0; k < node.output_size(); ++k)
    if (!node.output(k).empty()) node.set_output(k, core_float_name(core, node.output(k)));
  ++report_.core_ops[node.op_type()];
  // (An output activation and a bias Add before it are part of the linear op's
  // requantisation, not float steps of their own.)
  if (!runs_int8(original) && !kDataMovement.count(original.op_type()) &&
      !output_activations_.count(i) && !activation_path_nodes_.count(i))
    ++report_.core_float_compute_nodes;
  body.push_back(node);
  for (const auto &out : original.output()) {
    auto p = params_.find(out);
    if (p == params_.end()) continue;
    body.push_back(
        make_node("QuantizeLinear",
                  {core_float_name(core, out), core.scalar_f(out + "/scale", p->second.scale),
                   core.scalar_i8(out + "/zero_point", p->second.zero_point)},
                  {out + "/q"}, out + "/quantize"));
    body.push_back(make_node("DequantizeLinear", {out + "/q", out + "/scale", out + "/zero_point"},
                             {out + "/dq"}, out + "/dequantize"));
  }
}

// Weights of a linear op: per-channel int8 along the op's output-channel axis (one scale for
// grouped ConvTranspose and batched MatMul weights).
Compilation::LinearWeights Compilation::quantise_linear_weights(const onnx::NodeProto &node,
                                                                const std::string &label) const {
  LinearWeights w;
  const auto &w_init = graph_.initializers.at(node.input(1));
  w.shape = dims_of(w_init);
  w.group = attr_int(node, "group", 1);
  w.per_channel = !w.shape.empty();
  if (node.op_type() == "ConvTranspose") {
    w.axis = 1;
    w.per_channel = w.group == 1;
  } else if (node.op_type() == "Gemm") {
    w.axis = attr_int(node, "transB", 0) ? 0 : 1;
  } else if (node.op_type() == "MatMul") {
    w.axis = static_cast<int>(w.shape.size()) - 1;
    w.per_channel = w.shape.size() == 2;
  }
  w.values = floats_of(w_init, label);
  if (w.per_channel)
    w.quantised = quantize_per_channel(w.values, w.shape, w.axis);
  else
    w.quantised = quantize_per_channel(w.values, {1, static_cast<int64_t>(w.values.size())}, 0);
  return w;
}

// Bias correction: the mean output shift of the weight rounding, sum_k (Wq - W) * E[x_k] with
// E[x] the calibration mean of each input channel, to subtract from the bias. Empty when not
// corrected (option off, no channel statistics, or an op other than a per-channel Conv/Gemm).
std::vector<float> Compilation::bias_correction_shift(const onnx::NodeProto &node,
                                                      const onnx::NodeProto &original,
                                                      const LinearWeights &w) const {
  auto in_stats = stats_.find(original.input(0));
  if (!options_.bias_correction || !w.per_channel || in_stats == stats_.end() ||
      in_stats->second.channel_sum.empty() || !(in_stats->second.channel_count > 0) ||
      (node.op_type() != "Conv" && node.op_type() != "Gemm"))
    return {};
  const auto &sum = in_stats->second.channel_sum;
  const double count = in_stats->second.channel_count;
  if (node.op_type() == "Conv" && w.shape.size() >= 3) return conv_rounding_shift(w, sum, count);
  if (node.op_type() == "Gemm" && w.shape.size() == 2) return gemm_rounding_shift(w, sum, count);
  return {};
}

std::vector<float> Compilation::conv_rounding_shift(const LinearWeights &w,
                                                    const std::vector<double> &sum, double count) {
  const int64_t cin_total = static_cast<int64_t>(sum.size());
  const int64_t oc_n = w.shape[0], cin_g = w.shape[1];
  int64_t kernel = 1;
  for (size_t d = 2; d < w.shape.size(); ++d) kernel *= w.shape[d];
  const int64_t oc_per_group = oc_n / std::max<int64_t>(1, w.group);
  if (cin_g * w.group != cin_total) return {};
  const ChannelQuantized &q = w.quantised;
  std::vector<float> bias_shift(oc_n, 0.0f);
  for (int64_t oc = 0; oc < oc_n; ++oc) {
    double shift = 0;
    int64_t g = oc / std::max<int64_t>(1, oc_per_group);
    for (int64_t ic = 0; ic < cin_g; ++ic) {
      double mean = sum[g * cin_g + ic] / count, dw = 0;
      for (int64_t k = 0; k < kernel; ++k) {
        size_t at = static_cast<size_t>((oc * cin_g + ic) * kernel + k);
        dw += q.values[at] * double(q.scales[oc]) - w.values[at];
      }
      shift += dw * mean;
    }
    bias_shift[oc] = static_cast<float>(shift);
  }
  return bias_shift;
}

std::vector<float> Compilation::gemm_rounding_shift(const LinearWeights &w,
                                                    const std::vector<double> &sum, double count) {
  const int64_t cin_total = static_cast<int64_t>(sum.size());
  const bool trans_b = w.axis == 0;  // weights [N,K] when transB
  const int64_t n_out = w.shape[w.axis], k_in = w.shape[1 - w.axis];
  if (k_in != cin_total) return {};
  const ChannelQuantized &q = w.quantised;
  std::vector<float> bias_shift(n_out, 0.0f);
  for (int64_t o = 0; o < n_out; ++o) {
    double shift = 0;
    for (int64_t k = 0; k < k_in; ++k) {
      size_t at = static_cast<size_t>(trans_b ? o * k_in + k : k * n_out + o);
      shift += (q.values[at] * double(q.scales[o]) - w.values[at]) * (sum[k] / count);
    }
    bias_shift[o] = static_cast<float>(shift);
  }
  return bias_shift;
}

// The int8 weights, their scales and zero points behind a DequantizeLinear the node reads.
void Compilation::add_quantised_weights(onnx::NodeProto &node, const LinearWeights &w,
                                        CoreGraph &core, std::vector<onnx::NodeProto> &body) {
  const ChannelQuantized &q = w.quantised;
  std::string base = node.input(1) + "/q" + std::to_string(core.weight_counter++);
  core.inits.push_back(
      make_tensor(base, onnx::TensorProto::INT8, w.shape, q.values.data(), q.values.size()));
  int64_t channels = static_cast<int64_t>(q.scales.size());
  Shape scale_shape = w.per_channel ? Shape{channels} : Shape{};
  core.inits.push_back(float_tensor(base + "/scale", scale_shape, q.scales));
  std::vector<int8_t> zeros(channels, 0);
  core.inits.push_back(make_tensor(base + "/zero_point", onnx::TensorProto::INT8, scale_shape,
                                   zeros.data(), zeros.size()));
  auto dq = make_node("DequantizeLinear", {base, base + "/scale", base + "/zero_point"},
                      {base + "/dq"}, base + "/dequantize");
  if (w.per_channel) set_attr(dq, "axis", int64_t{w.axis});
  body.push_back(dq);
  node.set_input(1, base + "/dq");
}

// Bias: int32 at scale input_scale * weight_scale[c], corrected by bias_shift (a bias input is
// added when the op has none and there is a shift to apply).
void Compilation::add_quantised_bias(onnx::NodeProto &node, const onnx::NodeProto &original,
                                     const LinearWeights &w, const std::vector<float> &bias_shift,
                                     const std::string &label, CoreGraph &core,
                                     std::vector<onnx::NodeProto> &body) {
  const ChannelQuantized &q = w.quantised;
  bool has_bias = node.input_size() > 2 && !node.input(2).empty() &&
                  graph_.initializers.count(node.input(2)) &&
                  graph_.initializers.at(node.input(2)).data_type() == onnx::TensorProto::FLOAT;
  const bool add_bias =
      !has_bias && !bias_shift.empty() && (node.input_size() < 3 || node.input(2).empty());
  if (!has_bias && !add_bias) return;
  std::string bias_name = has_bias ? node.input(2) : node_id(original) + "/bias";
  auto b = has_bias ? floats_of(graph_.initializers.at(node.input(2)), label)
                    : std::vector<float>(bias_shift.size(), 0.0f);
  if (b.size() == bias_shift.size()) {
    for (size_t k = 0; k < b.size(); ++k) b[k] -= bias_shift[k];
    ++report_.bias_corrected;
  }
  const int64_t channels = static_cast<int64_t>(q.scales.size());
  int64_t out_channels = node.op_type() == "ConvTranspose" ? w.shape[1] * w.group
                         : node.op_type() == "Gemm"        ? w.shape[w.axis]
                                                           : (w.per_channel ? channels : 0);
  if (static_cast<int64_t>(b.size()) != out_channels ||
      !(w.per_channel ? channels == out_channels : true))
    return;
  double in_scale = params_.at(original.input(0)).scale;
  std::vector<int32_t> qb(b.size());
  std::vector<float> bias_scales(b.size());
  for (size_t k = 0; k < b.size(); ++k) {
    bias_scales[k] = static_cast<float>(in_scale * q.scales[w.per_channel ? k : 0]);
    double v = std::nearbyint(b[k] / bias_scales[k]);
    qb[k] = static_cast<int32_t>(std::clamp(v, -2147483647.0, 2147483647.0));
  }
  std::string bname = bias_name + "/q" + std::to_string(core.weight_counter++);
  Shape bshape{static_cast<int64_t>(b.size())};
  core.inits.push_back(
      make_tensor(bname, onnx::TensorProto::INT32, bshape, qb.data(), qb.size() * 4));
  core.inits.push_back(float_tensor(bname + "/scale", bshape, bias_scales));
  std::vector<int32_t> bz(b.size(), 0);
  core.inits.push_back(make_tensor(bname + "/zero_point", onnx::TensorProto::INT32, bshape,
                                   bz.data(), bz.size() * 4));
  auto bdq = make_node("DequantizeLinear", {bname, bname + "/scale", bname + "/zero_point"},
                       {bname + "/dq"}, bname + "/dequantize");
  set_attr(bdq, "axis", int64_t{0});
  body.push_back(bdq);
  while (node.input_size() < 3) node.add_input("");
  node.set_input(2, bname + "/dq");
}

// Outputs: int8, NCHW tensors transposed to NHWC, last dimension padded with the zero point,
// ranks below 4 given ones after the batch (4-D NHWC like Axelera's packages).
void Compilation::add_core_outputs(CoreGraph &core) {
  for (const auto &b : boundaries_) {
    CoreOutput out;
    out.name = b;
    out.float_shape = desc(b).shape;
    // A package's tensors are batch-first (one item of batch 1 per core run); refused here, such
    // an output made a package that failed to load (manifest batch dimension mismatch).
    if (out.float_shape.empty())
      throw NotImplemented(model_label_ + ": core output '" + b +
                           "' is a scalar: a package's outputs start with the batch (1); give "
                           "the tensor a batch dimension in the model (Unsqueeze axes=[0])");
    if (out.float_shape[0] != 1)
      throw NotImplemented(model_label_ + ": core output '" + b + "' has shape " +
                           shape_text(out.float_shape) +
                           ", not batch-first: a package's outputs start with the batch (1); "
                           "transpose the batch to the front in the model (a time-major RNN "
                           "output (T, N, C) to (N, T, C)) before this tensor");
    out.params = params_.at(b);
    std::string y = b + "/q";
    Shape shape = out.float_shape;
    if (shape.size() == 4) {
      auto t = make_node("Transpose", {y}, {b + "/nhwc"}, b + "/to_nhwc");
      set_attr(t, "perm", std::vector<int64_t>{0, 2, 3, 1});
      core.nodes.push_back(t);
      y = b + "/nhwc";
      shape = {shape[0], shape[2], shape[3], shape[1]};
      out.transposed = true;
    }
    int64_t c = shape.back();
    out.pad_high = padded_channels(c) - c;
    shape.back() += out.pad_high;
    // Device outputs are 4-D NHWC, as Axelera's packages have them: a lower rank gets ones
    // after the batch ((N, C) -> (N, 1, 1, C), (N, L, C) -> (N, 1, L, C); a rank-1 (N) is one
    // value per item, (N, 1, 1, 1)). The order of the elements is unchanged, so output_info's
    // original_shape still reshapes them back. The Reshape comes before the Pad, on the int8
    // tensor the core made: a view in the engine, and the Pad still writes the caller's buffer.
    if (shape.size() < 4) {
      Shape four_d = shape;
      four_d.back() -= out.pad_high;
      if (four_d.size() == 1) four_d.push_back(1);
      four_d.insert(four_d.begin() + 1, 4 - four_d.size(), 1);
      const bool last = out.pad_high == 0;  // the Reshape makes the output itself
      core.inits.push_back(int64_tensor(b + "/nhwc_shape", {4}, four_d));
      core.nodes.push_back(
          make_node("Reshape", {y, b + "/nhwc_shape"}, {last ? b : b + "/4d"}, b + "/to_4d"));
      y = b + "/4d";
      shape = four_d;
      shape.back() += out.pad_high;
      if (last) {
        out.device_shape = shape;
        core_outputs_.push_back(out);
        continue;
      }
    }
    if (out.pad_high > 0) {
      std::vector<int64_t> pads(shape.size() * 2, 0);
      pads[shape.size() * 2 - 1] = out.pad_high;
      core.inits.push_back(int64_tensor(b + "/pads", {static_cast<int64_t>(pads.size())}, pads));
      core.nodes.push_back(make_node(
          "Pad", {y, b + "/pads", core.scalar_i8(b + "/pad_value", out.params.zero_point)}, {b},
          b + "/pad"));
    } else {
      core.nodes.push_back(make_node("Identity", {y}, {b}, b + "/output"));
    }
    out.device_shape = shape;
    core_outputs_.push_back(out);
  }
}

// The core's ModelProto: opset 13 (and the model's other domains), the int8 input and outputs,
// the probes as extra outputs, the nodes and each initialiser once.
onnx::ModelProto Compilation::assemble_core(CoreGraph &core,
                                            const std::vector<std::string> &probes) const {
  onnx::ModelProto model;
  model.set_ir_version(7);
  model.set_producer_name("axcompile");
  model.set_producer_version("0.1.0");
  auto *op = model.add_opset_import();
  op->set_domain("");
  op->set_version(13);
  for (const auto &o : model_.opset_import())
    if (!o.domain().empty() && o.domain() != "ai.onnx") *model.add_opset_import() = o;
  auto *g = model.mutable_graph();
  g->set_name(report_.model_name + "_core");
  Shape in_shape{1, core_input_.height, core_input_.width, input_padded_channels_};
  *g->add_input() = value_info(core_input_.name, onnx::TensorProto::INT8, in_shape);
  for (const auto &o : core_outputs_)
    *g->add_output() = value_info(o.name, onnx::TensorProto::INT8, o.device_shape);
  for (const auto &probe : probes) {  // analysis only: intermediate tensors as extra outputs
    onnx::ValueInfoProto v;
    v.set_name(probe);
    *g->add_output() = v;
  }
  for (auto &n : core.nodes) *g->add_node() = std::move(n);
  std::set<std::string> added;
  for (auto &t : core.inits)
    if (added.insert(t.name()).second) *g->add_initializer() = std::move(t);
  return model;
}

// The float model's head nodes (split_head) as a float graph in the model's opset: the model
// input in, the core's input out.
std::optional<onnx::ModelProto> Compilation::build_preamble() const {
  if (core_input_.name == input_.name) return std::nullopt;
  onnx::ModelProto pre;
  pre.set_ir_version(model_.ir_version());
  pre.set_producer_name("axcompile");
  *pre.mutable_opset_import() = model_.opset_import();
  auto *g = pre.mutable_graph();
  g->set_name(report_.model_name + "_preamble");
  *g->add_input() = value_info(input_.name, onnx::TensorProto::FLOAT, input_shape_);
  std::set<std::string> used;
  for (size_t i = 0; i < graph_.nodes.size(); ++i) {
    if (!is_head_[i]) continue;
    for (const auto &in : graph_.nodes[i].input())
      if (graph_.initializers.count(in)) used.insert(in);
    *g->add_node() = graph_.nodes[i];
  }
  *g->add_output() = value_info(core_input_.name, onnx::TensorProto::FLOAT, input_shape_);
  for (const auto &name : used) *g->add_initializer() = graph_.initializers.at(name);
  return pre;
}

std::optional<onnx::ModelProto> Compilation::build_postamble() {
  bool any_tail = std::find(is_tail_.begin(), is_tail_.end(), true) != is_tail_.end();
  if (!any_tail) return std::nullopt;
  report_.host_ops.clear();
  report_.host_nodes = 0;
  onnx::ModelProto post;
  post.set_ir_version(model_.ir_version());
  post.set_producer_name("axcompile");
  *post.mutable_opset_import() = model_.opset_import();
  auto *g = post.mutable_graph();
  g->set_name(report_.model_name + "_postamble");
  std::map<std::string, std::string> rename;
  for (const auto &b : boundaries_) {
    std::string in = graph_.is_output(b) ? b + "/core" : b;
    rename[b] = in;
    *g->add_input() = value_info(in, onnx::TensorProto::FLOAT, desc(b).shape);
  }
  std::set<std::string> used;
  for (size_t i = 0; i < graph_.nodes.size(); ++i) {
    if (!is_tail_[i]) continue;
    onnx::NodeProto node = graph_.nodes[i];
    for (int k = 0; k < node.input_size(); ++k) {
      auto r = rename.find(node.input(k));
      if (r != rename.end()) node.set_input(k, r->second);
      if (graph_.initializers.count(node.input(k))) used.insert(node.input(k));
    }
    ++report_.host_ops[node.op_type()];
    ++report_.host_nodes;
    *g->add_node() = node;
  }
  for (const auto &out : graph_.outputs) {
    if (rename.count(out) && rename[out] != out) {
      *g->add_node() = make_node("Identity", {rename[out]}, {out}, out + "/passthrough");
    }
    const auto &d = desc(out);
    *g->add_output() = value_info(out, onnx_type_of(d.dtype), d.shape);
  }
  for (const auto &name : used) *g->add_initializer() = graph_.initializers.at(name);
  return post;
}

// Runs the float model and the package (core + postamble, the consumers' path: quantise+pad
// the input, run core.onnx, depad, dequantise, NHWC->NCHW, run the postamble) on `frames` and
// compares them. `probes` are float tensors of the core graph ("t/dq") compared with the float
// run's tensor "t".
Compilation::Evaluation Compilation::evaluate(const std::vector<CalibrationFrame> &frames,
                                              const std::vector<std::string> &probes,
                                              const std::string &stage) {
  PackageRun run = load_package_run(probes);
  Evaluation ev;
  ev.outputs.resize(graph_.outputs.size());
  ev.sigmoid_outputs.resize(graph_.outputs.size());
  ev.core.resize(core_outputs_.size());
  ev.core_in_range.resize(core_outputs_.size());
  ev.probes.resize(probes.size());
  for (size_t f = 0; f < frames.size(); ++f) {
    if (progress_) progress_(stage, static_cast<int>(f), static_cast<int>(frames.size()));
    run_float_and_core(frames[f].bgr, run);
    compare_probes(probes, run, ev);
    std::vector<std::vector<float>> dequantised = compare_core_outputs(run, ev);
    compare_model_outputs(dequantised, run, ev);
  }
  if (progress_) progress_(stage, static_cast<int>(frames.size()), static_cast<int>(frames.size()));
  ev.metric = 1;
  for (const auto &acc : ev.core_in_range) ev.metric = std::min(ev.metric, acc.cosine());
  return ev;
}

// The package as it stands (core with `probes` as extra outputs, preamble, postamble) loaded
// in the engine, with the float model's executor and the output buffers of both.
Compilation::PackageRun Compilation::load_package_run(const std::vector<std::string> &probes) {
  std::vector<std::string> probe_names;
  for (const auto &p : probes) probe_names.push_back(p + "/dq");
  std::string core_bytes = serialize(build_core(probe_names), "core graph of " + model_label_);
  auto post_model = build_postamble();
  std::string post_bytes = post_model ? serialize(*post_model, "postamble of " + model_label_) : "";
  auto pre_model = build_preamble();
  PackageRun run;
  try {
    run.core = engine::Program::from_bytes(core_bytes, "core.onnx of " + report_.model_name);
    if (pre_model)
      run.pre = engine::Program::from_bytes(serialize(*pre_model, "preamble of " + model_label_),
                                            "preamble.onnx of " + report_.model_name);
    if (post_model)
      run.post = engine::Program::from_bytes(post_bytes, "postamble.onnx of " + report_.model_name);
  } catch (const Error &e) {
    rethrow_with_context(e, model_label_ + ": the compiled package does not load in the engine");
  }
  run.calib_exec = calib_program_->make_executor();
  run.core_exec = run.core->make_executor();
  run.post_exec = run.post ? run.post->make_executor() : nullptr;
  run.pre_exec = run.pre ? run.pre->make_executor() : nullptr;
  const auto &outs = calib_program_->outputs();
  run.float_bufs.resize(outs.size());
  for (size_t i = 0; i < outs.size(); ++i) {
    run.float_bufs[i].resize(outs[i].byte_size());
    run.float_ptrs.push_back(run.float_bufs[i].data());
  }
  const auto &core_descs = run.core->outputs();
  run.core_bufs.resize(core_descs.size());
  for (size_t o = 0; o < core_descs.size(); ++o) {
    run.core_bufs[o].resize(core_descs[o].byte_size());
    run.core_ptrs.push_back(run.core_bufs[o].data());
  }
  return run;
}

// One frame through the float model (every tensor into run.float_bufs) and through the
// preamble and the core (outputs and probes into run.core_bufs).
void Compilation::run_float_and_core(const cv::Mat &bgr, PackageRun &run) const {
  std::vector<float> in = input_tensor(bgr);
  run.calib_exec->run({in.data()}, run.float_ptrs);
  if (run.pre_exec) {
    run.core_in.resize(in.size());
    run.pre_exec->run({in.data()}, {run.core_in.data()});
  }
  const std::vector<int8_t> device_in = device_input(run.pre_exec ? run.core_in : in);
  run.core_exec->run({device_in.data()}, run.core_ptrs);
}

// Device input: NHWC, quantised, padded with the zero point.
std::vector<int8_t> Compilation::device_input(const std::vector<float> &x) const {
  const int h = core_input_.height, w = core_input_.width, c = core_input_.channels;
  const int cp = static_cast<int>(input_padded_channels_);
  std::vector<int8_t> device_in(static_cast<size_t>(h) * w * cp,
                                static_cast<int8_t>(core_input_params_.zero_point));
  for (int y = 0; y < h; ++y)
    for (int xx = 0; xx < w; ++xx)
      for (int ch = 0; ch < c; ++ch) {
        size_t src =
            core_input_.nchw ? (size_t(ch) * h + y) * w + xx : (size_t(y) * w + xx) * c + ch;
        device_in[(size_t(y) * w + xx) * cp + ch] = quantize_int8(x[src], core_input_params_);
      }
  return device_in;
}

// The core's probe outputs against the float run's tensors (clamped to a flat range cut).
void Compilation::compare_probes(const std::vector<std::string> &probes, const PackageRun &run,
                                 Evaluation &ev) const {
  const auto &core_descs = run.core->outputs();
  for (size_t p = 0; p < probes.size(); ++p) {
    const auto &d = core_descs[core_outputs_.size() + p];
    const auto &ref = run.float_bufs[calib_index_.at(probes[p])];
    if (d.byte_size() != ref.size() || d.dtype != engine::DType::f32) continue;
    const float *want = reinterpret_cast<const float *>(ref.data());
    std::vector<float> clamped;
    if (auto flat = flat_ranges_.find(probes[p]); flat != flat_ranges_.end()) {
      // Beyond a flat range cut the reader cannot tell the values apart: not an error.
      clamped.assign(want, want + d.element_count());
      for (float &v : clamped)
        v = std::clamp(v, static_cast<float>(flat->second.first),
                       static_cast<float>(flat->second.second));
      want = clamped.data();
    }
    ev.probes[p].add(
        reinterpret_cast<const float *>(run.core_bufs[core_outputs_.size() + p].data()), want,
        d.element_count());
  }
}

// The core outputs as consumers read them (consumer_view), compared with the float run's
// tensors, as they are and within each output's representable range.
std::vector<std::vector<float>> Compilation::compare_core_outputs(const PackageRun &run,
                                                                  Evaluation &ev) const {
  std::vector<std::vector<float>> dequantised(core_outputs_.size());
  for (size_t o = 0; o < core_outputs_.size(); ++o) {
    const auto &co = core_outputs_[o];
    dequantised[o] = consumer_view(co, reinterpret_cast<const int8_t *>(run.core_bufs[o].data()));
    const auto &ref = run.float_bufs[calib_index_.at(co.name)];
    ev.core[o].add(dequantised[o].data(), reinterpret_cast<const float *>(ref.data()),
                   dequantised[o].size());
    // The same within the representable range (clipped score logits stay comparable).
    std::vector<float> clamped(reinterpret_cast<const float *>(ref.data()),
                               reinterpret_cast<const float *>(ref.data()) + dequantised[o].size());
    const float lo = dequantize_int8(-128, co.params), hi = dequantize_int8(127, co.params);
    for (float &v : clamped) v = std::clamp(v, lo, hi);
    ev.core_in_range[o].add(dequantised[o].data(), clamped.data(), clamped.size());
  }
  return dequantised;
}

// The consumers' side of the contract: depad, dequantise, NHWC -> NCHW.
std::vector<float> Compilation::consumer_view(const CoreOutput &co, const int8_t *device_out) {
  const Shape &ds = co.device_shape;
  int64_t cpad = ds.back(), creal = cpad - co.pad_high;
  int64_t rows = 1;
  for (size_t d = 0; d + 1 < ds.size(); ++d) rows *= ds[d];
  std::vector<float> flat(rows * creal);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t ch = 0; ch < creal; ++ch)
      flat[r * creal + ch] = dequantize_int8(device_out[r * cpad + ch], co.params);
  if (co.transposed) {  // [1,H,W,C] -> [1,C,H,W]
    const Shape &fs = co.float_shape;
    int64_t C = fs[1], H = fs[2], W = fs[3];
    std::vector<float> nchw(flat.size());
    for (int64_t ch = 0; ch < C; ++ch)
      for (int64_t y = 0; y < H; ++y)
        for (int64_t xx = 0; xx < W; ++xx)
          nchw[(ch * H + y) * W + xx] = flat[(y * W + xx) * C + ch];
    flat.swap(nchw);
  }
  return flat;
}

// The model outputs (the postamble run on the dequantised core outputs, or those outputs
// themselves) against the float model's, and through a sigmoid for score-logit outputs.
void Compilation::compare_model_outputs(const std::vector<std::vector<float>> &dequantised,
                                        const PackageRun &run, Evaluation &ev) const {
  auto sigmoid = [](const float *v, size_t n) {
    std::vector<float> r(v, v + n);
    for (float &x : r) x = 1.f / (1.f + std::exp(-x));
    return r;
  };
  std::vector<std::vector<uint8_t>> final_out(graph_.outputs.size());
  if (run.post_exec) {
    std::vector<const void *> post_in;
    for (auto &d : dequantised) post_in.push_back(d.data());
    std::vector<void *> post_ptrs;
    for (size_t o = 0; o < graph_.outputs.size(); ++o) {
      final_out[o].resize(run.post->outputs()[o].byte_size());
      post_ptrs.push_back(final_out[o].data());
    }
    run.post_exec->run(post_in, post_ptrs);
  } else {
    for (size_t o = 0; o < graph_.outputs.size(); ++o) {
      size_t k = std::find(boundaries_.begin(), boundaries_.end(), graph_.outputs[o]) -
                 boundaries_.begin();
      const auto *p = reinterpret_cast<const uint8_t *>(dequantised[k].data());
      final_out[o].assign(p, p + dequantised[k].size() * sizeof(float));
    }
  }
  for (size_t o = 0; o < graph_.outputs.size(); ++o) {
    const auto &d = desc(graph_.outputs[o]);
    if (d.dtype != engine::DType::f32) continue;
    const float *got = reinterpret_cast<const float *>(final_out[o].data());
    const float *want =
        reinterpret_cast<const float *>(run.float_bufs[calib_index_.at(d.name)].data());
    ev.outputs[o].add(got, want, d.element_count());
    if (logit_outputs_.count(d.name)) {
      auto a = sigmoid(got, d.element_count()), b = sigmoid(want, d.element_count());
      ev.sigmoid_outputs[o].add(a.data(), b.data(), a.size());
    }
  }
}

void Compilation::reference_check() {
  if (held_out_.empty()) return;
  Evaluation ev = evaluate(held_out_, {}, "checking");
  for (size_t o = 0; o < graph_.outputs.size(); ++o) {
    OutputSimilarity sim{graph_.outputs[o], ev.outputs[o].cosine(), ev.outputs[o].max_err};
    if (logit_outputs_.count(graph_.outputs[o]))
      sim.sigmoid_cosine = ev.sigmoid_outputs[o].cosine();
    report_.similarity.push_back(sim);
  }
  for (size_t o = 0; o < core_outputs_.size(); ++o)
    report_.core_similarity.push_back({core_outputs_[o].name, ev.core[o].cosine(),
                                       ev.core[o].max_err, -1, ev.core_in_range[o].cosine()});
  report_.held_out_metric = ev.metric;
  report_.reference_images = static_cast<int>(held_out_.size());
}

void Compilation::resolve_forced_float_nodes() {
  for (const auto &wanted : options_.float_nodes) {
    bool found = false;
    for (const auto &node : graph_.nodes) {
      bool match = node.name() == wanted;
      for (const auto &out : node.output()) match = match || out == wanted;
      if (match) {
        float_nodes_.insert(node_id(node));
        found = true;
      }
    }
    if (!found)
      throw InvalidArgument("--float-nodes: " + model_label_ + " has no node named '" + wanted +
                            "' and no node with an output of that name (after constant and "
                            "BatchNormalization folding)");
  }
}

// Mixed-precision fallback. Each round builds the package for the current float set and runs it
// on a few calibration images next to the float model, comparing every quantised tensor ("t/dq"
// of the core against "t" of the float run). A tensor's own damage is its error (1 - cosine)
// minus the largest error of the quantised tensors it is computed from, i.e. what its own
// quantisation (and its producer's weight rounding) adds. The worst tensors lose their Q/DQ: their
// producer and their core consumers compute in float inside core.onnx (a core output keeps its
// Q/DQ: the device output is int8; its producer's weights stay float). The metric is the min over
// core outputs of the cosine within their int8 range. Stops when it reaches the target, after
// max rounds, or when the float share would exceed max_fallback_fraction; keeps the best set,
// where a larger set must beat a smaller one by min_float_gain per node it adds.
void Compilation::mixed_precision_search() {
  const double target = options_.accuracy_target;
  if (!(target > 0) || frames_.empty()) return;
  const size_t n_sens = std::clamp<size_t>(options_.sensitivity_images, 1, frames_.size());
  std::vector<CalibrationFrame> sens;  // spread over the calibration set
  for (size_t k = 0; k < n_sens; ++k) sens.push_back(frames_[k * frames_.size() / n_sens]);
  const auto consumers = graph_.consumers();
  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < graph_.nodes.size(); ++i)
    for (const auto &o : graph_.nodes[i].output()) producer[o] = i;
  const size_t limit = static_cast<size_t>(options_.max_fallback_fraction *
                                           static_cast<double>(graph_.nodes.size()));
  std::set<std::string> best = float_nodes_;
  double best_metric = -2;
  for (int round = 0;; ++round) {
    plan();
    std::vector<std::string> probes;
    for (const auto &[t, p] : params_)
      if (t != core_input_.name && is_float(t)) probes.push_back(t);
    Evaluation ev = evaluate(sens, probes, "sensitivity");
    std::ostringstream line;
    line << "round " << round << ": " << float_nodes_.size()
         << " float nodes, min core-output cosine (within range) " << std::setprecision(5)
         << ev.metric << " on " << sens.size() << " calibration image(s)";
    // A larger float set replaces the best one only if it buys at least min_float_gain of
    // cosine per node it adds: float nodes are host work on a real Metis and slow the
    // simulator, and on 3 images a gain below that is noise (seeded-weight YOLOs wander by
    // ±0.02 from round to round while the float set grows to the limit).
    const double added = static_cast<double>(float_nodes_.size()) -
                         static_cast<double>(std::min(best.size(), float_nodes_.size()));
    const double needed = best_metric + options_.min_float_gain * added;
    if (ev.metric > needed) {
      best_metric = ev.metric;
      best = float_nodes_;
    } else if (round > 0) {
      line << " (not kept: below the best round's " << best_metric << " + "
           << options_.min_float_gain << " per added float node = " << needed << ")";
    }
    report_.fallback_log.push_back(line.str());
    if (ev.metric >= target || round >= options_.max_fallback_rounds) break;

    std::set<std::string> boundary_set(boundaries_.begin(), boundaries_.end());
    std::unordered_map<std::string, double> err;
    for (size_t p = 0; p < probes.size(); ++p) err[probes[p]] = 1 - ev.probes[p].cosine();
    std::unordered_map<std::string, double> upstream_memo;
    std::function<double(const std::string &)> upstream = [&](const std::string &t) -> double {
      if (auto m = upstream_memo.find(t); m != upstream_memo.end()) return m->second;
      double worst = 0;
      auto p = producer.find(t);
      if (p != producer.end())
        for (const auto &in : graph_.nodes[p->second].input()) {
          if (in.empty() || is_static(in) || in == core_input_.name) continue;
          auto e = err.find(in);
          worst = std::max(worst, e != err.end() ? e->second : upstream(in));
        }
      upstream_memo[t] = worst;
      return worst;
    };
    std::vector<std::pair<double, std::string>> ranked;
    for (const auto &t : probes) {
      auto p = producer.find(t);
      if (p == producer.end()) continue;
      double damage = err[t] - upstream(t);
      if (!(damage > 0)) continue;
      ranked.push_back({damage, t});
    }
    std::sort(ranked.rbegin(), ranked.rend());
    if (std::getenv("AXCOMPILE_DEBUG_FALLBACK"))  // debugging aid: the ranking of each round
      for (size_t k = 0; k < ranked.size() && k < 15; ++k)
        std::fprintf(stderr, "  damage %.5f err %.5f %s (%s)\n", ranked[k].first,
                     err[ranked[k].second], ranked[k].second.c_str(),
                     graph_.nodes[producer.at(ranked[k].second)].op_type().c_str());
    const size_t per_round = std::max<size_t>(2, probes.size() / 24);
    std::set<std::string> next = float_nodes_;
    size_t taken = 0;
    for (const auto &[damage, t] : ranked) {
      if (taken >= per_round) break;
      std::set<std::string> add = {node_id(graph_.nodes[producer.at(t)])};
      if (!boundary_set.count(t))
        if (auto c = consumers.find(t); c != consumers.end())
          for (size_t k : c->second)
            if (!is_tail_[k]) add.insert(node_id(graph_.nodes[k]));
      size_t before = next.size();
      next.insert(add.begin(), add.end());
      taken += next.size() > before;
    }
    if (taken == 0 || next.size() > limit) break;
    float_nodes_ = std::move(next);
  }
  float_nodes_ = best;
  plan();
  report_.target_metric = best_metric;
}

void Compilation::write_package(const std::string &core_bytes, const std::string *pre_bytes,
                                const std::string *post_bytes) {
  PackageContents contents;
  contents.name = report_.model_name;
  contents.batch = options_.batch;
  contents.core_bytes = core_bytes;
  if (pre_bytes) contents.preamble_bytes = *pre_bytes;
  contents.has_preamble = pre_bytes != nullptr;
  if (post_bytes) contents.postamble_bytes = *post_bytes;
  contents.has_postamble = post_bytes != nullptr;
  PackageTensor in;
  in.name = core_input_.name;
  in.shape = {1, core_input_.height, core_input_.width, input_padded_channels_};
  in.padding = {0, 0, 0, 0, 0, 0, 0, input_padded_channels_ - core_input_.channels};
  in.params = core_input_params_;
  in.original_shape = input_shape_;
  in.layout = core_input_.nchw ? "NHWC" : "none";
  contents.inputs.push_back(in);
  // With a preamble the preprocessing makes the preamble's input, in the model input's layout.
  contents.input_preprocess.push_back({norm_.color_format, norm_.pixel_scale, norm_.mean, norm_.std,
                                       pre_bytes ? (input_.nchw ? "NCHW" : "NHWC") : ""});
  for (const auto &co : core_outputs_) {
    PackageTensor t;
    t.name = co.name;
    t.shape = co.device_shape;
    t.padding.assign(co.device_shape.size() * 2, 0);
    t.padding.back() = co.pad_high;
    t.params = co.params;
    t.original_shape = co.float_shape;
    t.layout = co.transposed ? "NHWC" : "none";
    contents.outputs.push_back(t);
  }
  contents.calibration_method = options_.method == CalibrationMethod::percentile ? "percentile"
                                : options_.method == CalibrationMethod::mse      ? "mse"
                                : options_.method == CalibrationMethod::entropy  ? "entropy"
                                                                                 : "minmax";
  contents.float_nodes = report_.float_nodes;
  for (const auto &[op, n] : report_.host_ops) contents.host_ops[op] = n;
  for (const auto &[op, n] : report_.preamble_ops) contents.preamble_ops[op] = n;
  contents.calibration_images = report_.calibration_images;
  contents.calibration_resize = report_.calibration_resize;
  contents.source_model = fs::path(options_.model_path).filename().string();
  report_.package_bytes = write_package_atomically(report_.package_dir, contents);
}

CompileReport Compilation::run() {
  fs::path model_path(options_.model_path);
  report_.model_name = options_.name.empty() ? model_path.stem().string() : options_.name;
  report_.package_dir = options_.output_dir.empty() ? report_.model_name : options_.output_dir;
  if (options_.batch < 1 || options_.batch > 1024)
    throw InvalidArgument("--batch: expected a batch in 1..1024, got " +
                          std::to_string(options_.batch));
  if (options_.color_format != "RGB" && options_.color_format != "BGR")
    throw InvalidArgument("--input-format: expected RGB or BGR, got '" + options_.color_format +
                          "'");
  load_model();
  resolve_input();
  // Images first: a missing calibration set is the cheapest error to report.
  load_calibration_frames(options_.calibration, 1);
  build_calibration_program();
  calibrate();
  fold_static_tensors();
  fold_batchnorm_and_bias();
  if (options_.equalise_channels && equalise_activation_channels() > 0) {
    // The rescaled tensors need their own ranges: calibrate the equalised graph again.
    build_calibration_program();
    collect_statistics();
  }
  split_head();
  find_unary_binaries();
  resolve_forced_float_nodes();
  plan();
  mixed_precision_search();
  if (options_.reference_check)
    reference_check();
  else
    report_.reference_check_skipped = true;
  onnx::ModelProto core = build_core();
  std::string core_bytes = serialize(core, "core graph of " + model_label_);
  auto post = build_postamble();
  std::string post_bytes = post ? serialize(*post, "postamble of " + model_label_) : "";
  auto pre = build_preamble();
  std::string pre_bytes = pre ? serialize(*pre, "preamble of " + model_label_) : "";
  report_.preamble_ops.clear();
  for (size_t i = 0; i < graph_.nodes.size(); ++i)
    if (is_head_[i]) ++report_.preamble_ops[graph_.nodes[i].op_type()];
  for (size_t i = 0; i < graph_.nodes.size(); ++i)
    if (is_float_node(graph_.nodes[i]) && !is_head_[i] && !is_tail_[i])
      report_.float_nodes.push_back(node_id(graph_.nodes[i]));
  for (const auto &co : core_outputs_)
    report_.core_outputs.push_back({co.name, 0, 0, co.params.scale, co.params.zero_point});
  report_.core_inputs.push_back(
      {core_input_.name, 0, 0, core_input_params_.scale, core_input_params_.zero_point});
  for (auto &r : report_.core_outputs)
    if (auto f = fixed_ranges_.find(r.name); f != fixed_ranges_.end()) {
      r.min = static_cast<float>(f->second.first);
      r.max = static_cast<float>(f->second.second);
    } else if (auto s = stats_.find(r.name); s != stats_.end()) {
      r.min = static_cast<float>(s->second.min);
      r.max = static_cast<float>(s->second.max);
    }
  write_package(core_bytes, pre ? &pre_bytes : nullptr, post ? &post_bytes : nullptr);
  return report_;
}

}  // namespace

CompileReport compile(const CompileOptions &options, const ProgressFn &progress) {
  // Without --output-dir the package goes into the working directory under the model's name
  // (--name, else the model file's stem): checked before any work, like an explicit one.
  std::string package_dir = options.output_dir;
  if (package_dir.empty())
    package_dir = options.name.empty() ? std::filesystem::path(options.model_path).stem().string()
                                       : options.name;
  if (!package_dir.empty()) check_package_directory(package_dir);
  Compilation compilation(options, progress);
  return compilation.run();
}

std::string format_report(const CompileReport &r, bool all_ranges) {
  std::ostringstream s;
  s << std::setprecision(6);
  s << "package   " << r.package_dir << " (" << r.model_name << ", "
    << (r.package_bytes + 512) / 1024 << " KiB)\n";
  if (!r.precision_conversion.empty()) s << r.precision_conversion << "\n";
  s << "calibration images " << r.calibration_images << " (resized: " << r.calibration_resize
    << ")\n";
  s << "core      " << r.core_nodes << " nodes (" << r.core_int8_nodes
    << " with int8 weights; the rest int8 or float between Q/DQ):";
  for (const auto &[op, n] : r.core_ops) s << " " << op << "x" << n;
  s << "\nhost      " << r.host_nodes << " nodes in postamble.onnx:";
  for (const auto &[op, n] : r.host_ops) s << " " << op << "x" << n;
  s << "\n";
  if (!r.preamble_ops.empty()) {
    s << "preamble ";
    for (const auto &[op, n] : r.preamble_ops) s << " " << op << "x" << n;
    s << " in preamble.onnx (host, before the core)\n";
  }
  s << "precision " << r.core_int8_nodes << " core nodes with int8 weights, "
    << r.core_float_compute_nodes << " core nodes computing in float between Q/DQ ("
    << r.float_nodes.size() << " of them kept float by mixed precision; host ops on a real Metis)"
    << "\n";
  if (!r.float_nodes.empty()) {
    s << "float nodes:";
    for (const auto &n : r.float_nodes) s << " " << n;
    s << "\n";
  }
  for (const auto &line : r.fallback_log) s << "mixed precision " << line << "\n";
  if (r.bias_corrected > 0) s << "bias correction: " << r.bias_corrected << " biases shifted\n";
  if (!r.flat_range_cuts.empty()) {
    s << "ranges cut where the reading function is flat:";
    for (const auto &name : r.flat_range_cuts) s << " " << name;
    s << "\n";
  }
  if (r.equalised_tensors > 0)
    s << "equalised " << r.equalised_tensors << " activations per channel\n";
  for (const auto &t : r.core_inputs)
    s << "input     " << t.name << " scale " << t.scale << " zero_point " << t.zero_point << "\n";
  for (const auto &t : r.core_outputs)
    s << "output    " << t.name << " range [" << t.min << ", " << t.max << "] scale " << t.scale
      << " zero_point " << t.zero_point << "\n";
  s << "activations quantised: " << r.ranges.size() << "\n";
  if (!r.clipped_logits.empty()) {
    s << "score logits clipped:";
    for (const auto &name : r.clipped_logits) s << " " << name;
    s << "\n";
  }
  for (const auto &a : r.core_output_activations)
    s << "output activation in the core: " << a
      << " (applied before requantisation; output quantised over [0, 1])\n";
  if (!r.softmax_logits.empty()) {
    s << "softmax logits keep their maximum:";
    for (const auto &name : r.softmax_logits) s << " " << name;
    s << "\n";
  }
  if (all_ranges)
    for (const auto &t : r.ranges)
      s << "  " << t.name << " [" << t.min << ", " << t.max << "] scale " << t.scale << " zp "
        << t.zero_point << "\n";
  if (r.reference_images > 0) {
    s << "accuracy vs float model on " << r.reference_images
      << (r.reference_on_calibration_images ? " calibration" : " held-out") << " image(s):\n";
    for (const auto &o : r.core_similarity)
      s << "  core output " << o.name << ": cosine " << std::setprecision(5) << o.cosine
        << " (within its int8 range " << o.in_range_cosine << "), max |error| " << o.max_abs_error
        << "\n";
    for (const auto &o : r.similarity) {
      s << "  model output " << o.name << ": cosine " << std::setprecision(5) << o.cosine
        << ", max |error| " << o.max_abs_error;
      if (o.sigmoid_cosine >= -0.5) s << ", sigmoid cosine " << o.sigmoid_cosine;
      s << "\n";
    }
    s << "expected accuracy: min core-output cosine (within range) " << r.held_out_metric;
    if (r.target_metric >= -1) s << " (mixed-precision search reached " << r.target_metric << ")";
    s << "\n";
  } else if (r.reference_check_skipped) {
    // It said "no held-out images" when the images were there and --no-check skipped them.
    s << "accuracy vs float model: not checked (--no-check)\n";
  } else {
    s << "accuracy vs float model: not checked (no held-out images)\n";
  }
  return s.str();
}

}  // namespace axstream::compiler
