// axcompile as a library: turns a float ONNX model plus calibration images into a model package
// (docs/model-package.md) with an int8 QDQ core graph and a float postamble.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace axstream::compiler {

enum class CalibrationMethod { minmax, percentile, mse, entropy };
enum class InputLayout { autodetect, nchw, nhwc };
// How a calibration (or held-out) image becomes the model's input size. stretch: each axis scaled
// to the input (aspect not kept). pad_right: PaddleOCR's recogniser resize -- scaled to the input
// height keeping the aspect ratio (width at most the input's: longer images are squeezed),
// left-aligned, the rest of each row filled with normalised zeros. automatic: pad_right with a
// text detector (the crops are a recogniser's text lines), else stretch.
enum class CalibrationResize { automatic, stretch, pad_right };

struct CompileOptions {
  std::string model_path;    // the float ONNX model
  std::string calibration;   // a directory, a glob pattern, one image or one video file
  int num_calibration = 32;  // images used for calibration (the rest, up to 4, are held out)
  // When set, a float DBNet-style text detector (PP-OCR det): the model calibrates on the text
  // lines it finds in the `calibration` images instead of the whole images (an OCR
  // recogniser's real inputs). Crops count as calibration images.
  std::string calibration_text_detector;
  // How each image is resized to the input for calibration, the mixed-precision search and the
  // held-out check: it should be how the model is fed in use.
  CalibrationResize resize = CalibrationResize::automatic;
  std::vector<double> mean;  // per colour channel, applied after pixel_scale; empty = 0
  std::vector<double> std;   // per colour channel; empty = 1
  double pixel_scale = 1.0 / 255.0;
  std::string color_format = "RGB";  // "RGB" or "BGR" (what the model's channels mean)
  std::map<std::string, std::vector<int64_t>> input_shapes;  // fixes dynamic dims, by input name
  InputLayout input_layout = InputLayout::autodetect;
  // percentile (default): per-image percentiles averaged; mse: per tensor, the range that
  // minimises the int8 quantisation error (rounding + clipping) over sampled activations;
  // entropy: the clipping threshold minimising the KL divergence between the sampled value
  // histogram and its 128-level quantised version (TensorRT's method, per sign).
  CalibrationMethod method = CalibrationMethod::percentile;
  double percentile = 99.99;  // for CalibrationMethod::percentile
  // Score logits (tensors feeding a Sigmoid, or a model output with last dimension 1 whose
  // calibrated range exceeds +-64) get their range clipped to +-logit_clip (sigmoid is saturated
  // there); 0 disables.
  double logit_clip = 16;
  // Fixed quantisation ranges for core outputs, by core output name or by the model output fed
  // by exactly one core output (e.g. logits the decoder saturates through a sigmoid).
  std::map<std::string, std::pair<double, double>> output_ranges;
  // Mixed precision: while the float-model cosine on the sensitivity images is below this
  // target, the tensors whose quantisation hurts most (measured against the float run) lose
  // their Q/DQ and the nodes around them compute in float (docs/compiler.md). 0 disables.
  double accuracy_target = 0.99;
  int sensitivity_images = 3;           // calibration images used by the search
  int max_fallback_rounds = 8;          // search rounds (each rebuilds and re-runs the package)
  double max_fallback_fraction = 0.25;  // at most this share of the core nodes kept float
  // A round's larger float set is kept over the best smaller one only if its metric is higher by
  // at least this much per node it adds (a float node must buy accuracy to be worth its cost).
  double min_float_gain = 0.0005;
  // Nodes kept float whatever the search finds (node names or output tensor names).
  std::vector<std::string> float_nodes;
  // Bias correction: each int8-weight Conv/Gemm bias absorbs the mean output shift its weight
  // rounding causes on the calibration data (sum (Wq - W) * mean input channel).
  bool bias_correction = true;
  // Per-channel activation equalisation: between a conv (through a Relu) and the convs reading
  // its output, channel c moves a factor from the activation into the readers' weights so every
  // channel of the per-tensor-quantised tensor uses the int8 range; the equalised graph is then
  // calibrated again (docs/compiler.md). Off by default: not better on the real models.
  bool equalise_channels = false;
  // A model output made by a Sigmoid (or a Softmax over the last axis) straight from a
  // Conv/ConvTranspose/Gemm/MatMul (through a bias Add or data movement) keeps that activation
  // in the core, applied to the unquantised result of the linear op: the core output is the
  // probability, quantised over [0, 1], as an NPU fuses it (axcompile
  // --output-activation-in-core). Off by default: not better on PP-OCR det and rec
  // (docs/compiler.md); the activation then goes to the float postamble and the core outputs
  // the logits.
  bool output_activation_in_core = false;
  // An activation read only through an elementwise function of itself that is constant beyond
  // some value (hard-swish below -3, hard-sigmoid outside +-2.5) gets its range cut there: the
  // readers see the same values, and the int8 levels cover the part they tell apart. Off by
  // default: better on PP-OCRv4 det, not on rec or cls (docs/compiler.md).
  bool flat_range_cut = false;
  // Batch of the package's device tensors (model.json "batch", manifest shape[0]); the core graph
  // stays batch 1 and the runtime runs it once per item. axinference shared=true gathers frames
  // of several streams into one run of a batch > 1 package.
  int batch = 1;
  std::string output_dir;       // default: <model basename without .onnx>
  std::string name;             // default: model basename without .onnx
  bool reference_check = true;  // run held-out images through float model and package
};

struct TensorRange {
  std::string name;
  float min = 0, max = 0;  // calibrated (after percentile clipping)
  double scale = 1;
  int zero_point = 0;
};

struct OutputSimilarity {
  std::string name;   // float model output
  double cosine = 0;  // over all held-out images
  double max_abs_error = 0;
  double sigmoid_cosine = -1;   // score-logit outputs: cosine of sigmoid(x) (-1: not a logit)
  double in_range_cosine = -1;  // core outputs: vs the float values clamped to the int8 range
};

struct CompileReport {
  std::string package_dir;
  std::string model_name;
  // "model is float16: compiled from its float32 equivalent (...)"; empty for a float32 model
  std::string precision_conversion;
  int calibration_images = 0;
  std::string calibration_resize;                // "stretch" or "pad-right"
  int reference_images = 0;                      // held-out images compared (0: no check)
  bool reference_check_skipped = false;          // --no-check (reference_check false)
  bool reference_on_calibration_images = false;  // too few images to hold any out
  int core_nodes = 0, core_int8_nodes = 0, host_nodes = 0;
  std::map<std::string, int> core_ops, host_ops;  // op type -> count
  std::map<std::string, int> preamble_ops;        // op type -> count in preamble.onnx
  std::vector<TensorRange> ranges;                // every quantised activation
  std::vector<std::string> clipped_logits;        // ranges clipped to +-logit_clip
  std::vector<std::string> softmax_logits;        // Softmax inputs keeping their raw maximum
  // Output activations kept in the core (output_activation_in_core): "Sigmoid 'node' on
  // 'linear node'" per model output.
  std::vector<std::string> core_output_activations;
  std::vector<std::string> flat_range_cuts;  // ranges cut where their reader is flat
  std::vector<TensorRange> core_inputs, core_outputs;
  std::vector<std::string> float_nodes;   // core nodes computing in float (fallback / forced)
  std::vector<std::string> fallback_log;  // one line per search round
  int bias_corrected = 0;                 // Conv/Gemm biases shifted by bias correction
  int equalised_tensors = 0;              // activations equalised per channel
  int core_float_compute_nodes = 0;       // core nodes computing in float between Q/DQ
  double target_metric = -1;    // min core-output in-range cosine on the sensitivity images
  double held_out_metric = -1;  // the same on the held-out images (expected accuracy)
  std::vector<OutputSimilarity> similarity;       // per float model output
  std::vector<OutputSimilarity> core_similarity;  // per core output (dequantised vs float)
  uint64_t package_bytes = 0;
};

// Progress of calibration and checks: stage ("calibrating", "checking"), done, total.
using ProgressFn = std::function<void(const std::string &stage, int done, int total)>;

// Throws axstream::InvalidArgument (bad file, shape, option, no images) or NotImplemented (an
// op neither the core nor the host can run), naming the file, tensor or node. On error nothing
// is left at output_dir; an existing package there is replaced only on success.
CompileReport compile(const CompileOptions &options, const ProgressFn &progress = {});

// The report as the human-readable summary axcompile prints.
std::string format_report(const CompileReport &report, bool all_ranges);

}  // namespace axstream::compiler
