// axcompile: compiles a float ONNX model and a few calibration images into a model package.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <iostream>
#include <sstream>
#include <string>
#include <utility>

#include "axstream/compiler/compiler.h"
#include "axstream/error.h"

namespace {

const char kUsage[] =
    "usage: axcompile MODEL.onnx --calib DIR_OR_GLOB [options]\n"
    "  --calib PATH           directory, glob ('imgs/*.jpg'), image or video file\n"
    "  --num-calib N          calibration images (default 32; up to 4 more are held out to\n"
    "                         compare the package with the float model)\n"
    "  --calib-text-crops DET.onnx      calibrate on the text lines the float text detector\n"
    "                         DET (PP-OCR det) finds in the --calib images (for an OCR\n"
    "                         recogniser or direction classifier); crops count as images\n"
    "  --calib-resize stretch|pad-right how images are fitted to the input: stretched, or\n"
    "                         PaddleOCR's recogniser resize (input height, aspect kept, width\n"
    "                         capped, right-padded with normalised zeros); default pad-right\n"
    "                         with --calib-text-crops, else stretch\n"
    "  --mean a,b,c           per-channel mean after --pixel-scale (default 0)\n"
    "  --std a,b,c            per-channel std (default 1)\n"
    "  --pixel-scale S        pixel multiplier, e.g. 1/255 (default) or 0.0078125\n"
    "  --input-format RGB|BGR channel order the model expects (default RGB)\n"
    "  --input-shape NAME=1,3,640,640   fix dynamic input dims\n"
    "  --input-layout NCHW|NHWC         default: detected from the input shape\n"
    "  --calib-method percentile|mse|entropy|minmax  per-tensor activation ranges (default\n"
    "                         percentile, 99.99%; mse: the range minimising int8 error;\n"
    "                         entropy: KL-divergence threshold)\n"
    "  --accuracy-target C    mixed precision: keep the most damaging tensors float until the\n"
    "                         min output cosine on calibration images reaches C (default\n"
    "                         0.99; 0 = all int8)\n"
    "  --float-nodes A,B      keep these nodes (names or output names) float\n"
    "  --sensitivity-images N calibration images the mixed-precision search runs (default 3)\n"
    "  --fallback-rounds N    mixed-precision search rounds (default 8)\n"
    "  --max-float-fraction F at most this share of the nodes kept float (default 0.25)\n"
    "  --no-bias-correction   keep the float biases (no weight-rounding shift correction)\n"
    "  --flat-range-cut       cut ranges where the elementwise function reading them is flat\n"
    "                         (hard-swish below -3)\n"
    "  --equalise-channels    equalise activation channels between convs (per-channel\n"
    "                         scales moved into the weights), then calibrate again\n"
    "  --output-activation-in-core      run an output Sigmoid/Softmax (after a conv or\n"
    "                         matmul) in the core on the unquantised result: the output\n"
    "                         is the probability over [0, 1] (default: logits out, the\n"
    "                         activation in the float postamble)\n"
    "  --percentile P         percentile for --calib-method percentile (default 99.99)\n"
    "  --logit-clip L         clip score-logit ranges (sigmoid inputs, 1-channel outputs\n"
    "                         beyond +-64) to +-L (default 16; 0 disables)\n"
    "  --output-range NAME=LOW,HIGH     fix the quantisation range of a core output (or of\n"
    "                         the model output it feeds), e.g. logits a sigmoid saturates\n"
    "  --batch N              package batch (default 1): device tensors carry N items, the\n"
    "                         core graph stays batch 1 (axinference shared=true batches\n"
    "                         frames of several streams into one run)\n"
    "  --output-dir PKG       package directory (default: the model's base name)\n"
    "  --name NAME            model name in model.json (default: the model's base name)\n"
    "  --no-check             skip the comparison with the float model\n"
    "  --verbose              print every activation range\n";

[[noreturn]] void usage_error(const std::string &message) {
  std::fprintf(stderr, "axcompile: %s\n%s", message.c_str(), kUsage);
  std::exit(2);
}

double parse_number(const std::string &text, const std::string &option) {
  size_t slash = text.find('/');
  try {
    if (slash != std::string::npos) {
      size_t used = 0;
      double num = std::stod(text.substr(0, slash), &used);
      double den = std::stod(text.substr(slash + 1));
      if (den == 0) usage_error(option + ": division by zero in '" + text + "'");
      return num / den;
    }
    size_t used = 0;
    double v = std::stod(text, &used);
    if (used != text.size()) throw std::invalid_argument(text);
    return v;
  } catch (const std::logic_error &) {
    usage_error(option + ": expected a number, got '" + text + "'");
  }
}

// The value named `text` among `choices`, or a usage error listing the names ("A, B or C").
template <typename T>
T parse_choice(const std::string &text, const std::string &option,
               std::initializer_list<std::pair<const char *, T>> choices) {
  std::string names;
  size_t i = 0;
  for (const auto &[name, value] : choices) {
    if (text == name) return value;
    if (i > 0) names += i + 1 == choices.size() ? " or " : ", ";
    names += name;
    ++i;
  }
  usage_error(option + ": expected " + names + ", got '" + text + "'");
}

std::vector<double> parse_numbers(const std::string &text, const std::string &option) {
  std::vector<double> values;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) values.push_back(parse_number(item, option));
  if (values.empty()) usage_error(option + ": expected comma-separated numbers");
  return values;
}

void progress_bar(const std::string &stage, int done, int total) {
  if (!isatty(STDERR_FILENO) && done != total) return;
  const int width = 30;
  int filled = total ? done * width / total : width;
  std::fprintf(stderr, "\r%-11s [%s%s] %d/%d", stage.c_str(), std::string(filled, '#').c_str(),
               std::string(width - filled, ' ').c_str(), done, total);
  if (done == total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

}  // namespace

int main(int argc, char **argv) {
  using namespace axstream::compiler;
  CompileOptions options;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--calib") {
      options.calibration = value();
    } else if (arg == "--calib-text-crops") {
      options.calibration_text_detector = value();
    } else if (arg == "--calib-resize") {
      options.resize = parse_choice<CalibrationResize>(
          value(), arg,
          {{"stretch", CalibrationResize::stretch}, {"pad-right", CalibrationResize::pad_right}});
    } else if (arg == "--num-calib") {
      double n = parse_number(value(), arg);
      if (n < 1 || n != static_cast<int>(n))
        usage_error("--num-calib: expected a positive integer");
      options.num_calibration = static_cast<int>(n);
    } else if (arg == "--mean") {
      options.mean = parse_numbers(value(), arg);
    } else if (arg == "--std") {
      options.std = parse_numbers(value(), arg);
    } else if (arg == "--pixel-scale") {
      options.pixel_scale = parse_number(value(), arg);
    } else if (arg == "--input-format") {
      options.color_format = value();
      if (options.color_format != "RGB" && options.color_format != "BGR")
        usage_error("--input-format: expected RGB or BGR, got '" + options.color_format + "'");
    } else if (arg == "--input-shape") {
      std::string spec = value();
      size_t eq = spec.rfind('=');
      if (eq == std::string::npos || eq == 0)
        usage_error("--input-shape: expected NAME=d0,d1,..., got '" + spec + "'");
      std::vector<int64_t> dims;
      for (double d : parse_numbers(spec.substr(eq + 1), arg)) {
        if (d < 1 || d != static_cast<int64_t>(d))
          usage_error("--input-shape: dimensions must be positive integers in '" + spec + "'");
        dims.push_back(static_cast<int64_t>(d));
      }
      options.input_shapes[spec.substr(0, eq)] = dims;
    } else if (arg == "--input-layout") {
      options.input_layout = parse_choice<InputLayout>(
          value(), arg, {{"NCHW", InputLayout::nchw}, {"NHWC", InputLayout::nhwc}});
    } else if (arg == "--calib-method") {
      options.method =
          parse_choice<CalibrationMethod>(value(), arg,
                                          {{"percentile", CalibrationMethod::percentile},
                                           {"mse", CalibrationMethod::mse},
                                           {"entropy", CalibrationMethod::entropy},
                                           {"minmax", CalibrationMethod::minmax}});
    } else if (arg == "--accuracy-target") {
      options.accuracy_target = parse_number(value(), arg);
      if (options.accuracy_target < 0 || options.accuracy_target > 1)
        usage_error("--accuracy-target: expected a cosine in [0, 1] (0 disables)");
    } else if (arg == "--float-nodes") {
      std::stringstream names(value());
      for (std::string n; std::getline(names, n, ',');)
        if (!n.empty()) options.float_nodes.push_back(n);
      if (options.float_nodes.empty()) usage_error("--float-nodes: expected NAME[,NAME...]");
    } else if (arg == "--sensitivity-images" || arg == "--fallback-rounds") {
      double n = parse_number(value(), arg);
      if (n < (arg == "--fallback-rounds" ? 0 : 1) || n != static_cast<int>(n))
        usage_error(arg + ": expected a non-negative integer");
      (arg == "--fallback-rounds" ? options.max_fallback_rounds : options.sensitivity_images) =
          static_cast<int>(n);
    } else if (arg == "--max-float-fraction") {
      options.max_fallback_fraction = parse_number(value(), arg);
      if (options.max_fallback_fraction < 0 || options.max_fallback_fraction > 1)
        usage_error("--max-float-fraction: expected a value in [0, 1]");
    } else if (arg == "--equalise-channels") {
      options.equalise_channels = true;
    } else if (arg == "--output-activation-in-core") {
      options.output_activation_in_core = true;
    } else if (arg == "--no-bias-correction") {
      options.bias_correction = false;
    } else if (arg == "--flat-range-cut") {
      options.flat_range_cut = true;
    } else if (arg == "--logit-clip") {
      options.logit_clip = parse_number(value(), arg);
      if (options.logit_clip < 0) usage_error("--logit-clip: expected a value >= 0");
    } else if (arg == "--percentile") {
      options.percentile = parse_number(value(), arg);
      if (options.percentile <= 50 || options.percentile > 100)
        usage_error("--percentile: expected a value in (50, 100]");
    } else if (arg == "--output-range") {
      std::string spec = value();
      size_t eq = spec.rfind('=');
      if (eq == std::string::npos || eq == 0)
        usage_error("--output-range: expected NAME=LOW,HIGH, got '" + spec + "'");
      auto range = parse_numbers(spec.substr(eq + 1), arg);
      if (range.size() != 2 || !(range[0] < range[1]))
        usage_error("--output-range: expected NAME=LOW,HIGH with LOW < HIGH, got '" + spec + "'");
      options.output_ranges[spec.substr(0, eq)] = {range[0], range[1]};
    } else if (arg == "--batch") {
      double n = parse_number(value(), arg);
      if (n < 1 || n > 1024 || n != static_cast<int>(n))
        usage_error("--batch: expected an integer in 1..1024");
      options.batch = static_cast<int>(n);
    } else if (arg == "--output-dir" || arg == "-o") {
      options.output_dir = value();
    } else if (arg == "--name") {
      options.name = value();
    } else if (arg == "--no-check") {
      options.reference_check = false;
    } else if (arg == "--verbose" || arg == "-v") {
      verbose = true;
    } else if (!arg.empty() && arg[0] == '-') {
      usage_error("unknown option " + arg);
    } else if (options.model_path.empty()) {
      options.model_path = arg;
    } else {
      usage_error("more than one model given ('" + options.model_path + "' and '" + arg + "')");
    }
  }
  if (options.model_path.empty()) usage_error("no model given");
  if (options.calibration.empty()) usage_error("--calib is required");
  try {
    CompileReport report = compile(options, progress_bar);
    std::fputs(format_report(report, verbose).c_str(), stdout);
    return 0;
  } catch (const axstream::Error &e) {
    std::fprintf(stderr, "\naxcompile: error (%s): %s\n", axstream::error_kind_name(e.kind()),
                 e.what());
  } catch (const std::exception &e) {
    std::fprintf(stderr, "\naxcompile: error: %s\n", e.what());
  }
  return 1;
}
