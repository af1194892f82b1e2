// axcompile: compiles a float ONNX model and a few calibration images into a model package.
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <iostream>
#include <sstream>
#include <string>
#include <utility>

#include "axstream/compiler/compiler.h"
#include "axstream/error.h"
#include "stop_signals.h"

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
    "  --min-float-gain G     a round's larger float set is kept only if its cosine is\n"
    "                         higher by G per added float node (default 0.0005)\n"
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
    "  --output-dir PKG, -o   package directory (default: the model's base name)\n"
    "  --name NAME            model name in model.json (default: the model's base name)\n"
    "  --no-check             skip the comparison with the float model\n"
    "  --verbose, -v          print every activation range\n"
    "  --quiet, -q            no progress bars on stderr (they show on a terminal; on a pipe\n"
    "                         only each finished stage)\n"
    "  --help, -h             this text\n"
    "Exit status: 0 package written, 1 failed (the error on stderr: bad model, images or\n"
    "output directory), 2 bad command line, 130 interrupted by Ctrl-C (143 by SIGTERM;\n"
    "nothing is left at --output-dir, an earlier package there is kept).\n"
    "Example (in the source tree, after scripts/setup.sh fetched the model and the video):\n"
    "  build/tools/axcompile \\\n"
    "    ~/.cache/axstream/blazeface/package/ONNX/face_detection_front_128x128_barracuda.onnx \\\n"
    "    --calib ~/.cache/axstream/opencv-doc/usr/share/doc/opencv-doc/examples/data/Megamind.avi "
    "\\\n"
    "    --num-calib 24 --mean 0.5 --std 0.5 -o /tmp/blazeface-front\n";

// The message and where the options are, on one line (the 50-line usage used to follow it and
// pushed the message off the screen; axelera.runtime.compile reads the last "axcompile:" line).
[[noreturn]] void usage_error(const std::string &message) {
  std::fprintf(stderr, "axcompile: %s (axcompile --help lists the options)\n", message.c_str());
  std::exit(2);
}

using axstream::tools::Interrupted;

// A finite number, or a fraction "A/B" of two (1/255); anything else is a usage error (stod
// alone takes "nan", "inf" and stops quietly at "1x").
double parse_number(const std::string &text, const std::string &option) {
  auto whole = [&](const std::string &part) {
    size_t used = 0;
    double value = std::stod(part, &used);
    if (used != part.size() || !std::isfinite(value)) throw std::invalid_argument(part);
    return value;
  };
  try {
    size_t slash = text.find('/');
    if (slash == std::string::npos) return whole(text);
    double num = whole(text.substr(0, slash)), den = whole(text.substr(slash + 1));
    if (den == 0) usage_error(option + ": division by zero in '" + text + "'");
    return num / den;
  } catch (const std::logic_error &) {
    usage_error(option + ": expected a finite number, got '" + text + "'");
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

// "calibrating [#######       ] 7/24" on stderr: redrawn in place on a terminal, only the
// finished stage on a pipe, nothing with --quiet.
class ProgressBar {
 public:
  explicit ProgressBar(bool quiet) : quiet_(quiet), terminal_(isatty(STDERR_FILENO)) {}
  void show(const std::string &stage, int done, int total) {
    if (quiet_ || (!terminal_ && done != total)) return;
    const int width = 30;
    int filled = total ? done * width / total : width;
    // A carriage return only redraws on a terminal; in a log it is noise.
    std::fprintf(stderr, "%s%-11s [%s%s] %d/%d", terminal_ ? "\r" : "", stage.c_str(),
                 std::string(filled, '#').c_str(), std::string(width - filled, ' ').c_str(), done,
                 total);
    open_ = done != total;
    if (!open_) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }
  // Ends a bar left half drawn, so a message that follows starts on its own line.
  void end_line() {
    if (open_) std::fputc('\n', stderr);
    open_ = false;
  }

 private:
  bool quiet_, terminal_;
  bool open_ = false;
};

// The command line after the program name, one argument at a time.
class ArgumentReader {
 public:
  ArgumentReader(int argc, char **argv) : argc_(argc), argv_(argv) {}
  bool done() const { return next_ >= argc_; }
  std::string next() { return argv_[next_++]; }
  // The value following `option`.
  std::string value_of(const std::string &option) {
    if (next_ >= argc_) usage_error(option + " needs a value");
    return argv_[next_++];
  }

 private:
  int argc_;
  char **argv_;
  int next_ = 1;
};

using axstream::compiler::CompileOptions;

// --calib, --num-calib, --calib-text-crops, --calib-resize. False: not one of them.
bool read_calibration_option(const std::string &arg, ArgumentReader &args,
                             CompileOptions &options) {
  using axstream::compiler::CalibrationResize;
  if (arg == "--calib") {
    options.calibration = args.value_of(arg);
  } else if (arg == "--calib-text-crops") {
    options.calibration_text_detector = args.value_of(arg);
  } else if (arg == "--calib-resize") {
    options.resize = parse_choice<CalibrationResize>(
        args.value_of(arg), arg,
        {{"stretch", CalibrationResize::stretch}, {"pad-right", CalibrationResize::pad_right}});
  } else if (arg == "--num-calib") {
    std::string text = args.value_of(arg);
    double n = parse_number(text, arg);
    if (n < 1 || n > 100000 || n != std::floor(n))
      usage_error("--num-calib: expected an integer in 1..100000, got '" + text + "'");
    options.num_calibration = static_cast<int>(n);
  } else {
    return false;
  }
  return true;
}

// NAME=d0,d1,...: positive integer dims.
void read_input_shape(const std::string &spec, const std::string &arg, CompileOptions &options) {
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
}

// How images become the model input: --mean, --std, --pixel-scale, --input-format,
// --input-shape, --input-layout. False: not one of them.
bool read_input_option(const std::string &arg, ArgumentReader &args, CompileOptions &options) {
  using axstream::compiler::InputLayout;
  if (arg == "--mean") {
    options.mean = parse_numbers(args.value_of(arg), arg);
  } else if (arg == "--std") {
    options.std = parse_numbers(args.value_of(arg), arg);
  } else if (arg == "--pixel-scale") {
    options.pixel_scale = parse_number(args.value_of(arg), arg);
    if (options.pixel_scale == 0) usage_error("--pixel-scale: 0 would make every pixel 0");
  } else if (arg == "--input-format") {
    options.color_format = args.value_of(arg);
    if (options.color_format != "RGB" && options.color_format != "BGR")
      usage_error("--input-format: expected RGB or BGR, got '" + options.color_format + "'");
  } else if (arg == "--input-shape") {
    read_input_shape(args.value_of(arg), arg, options);
  } else if (arg == "--input-layout") {
    options.input_layout = parse_choice<InputLayout>(
        args.value_of(arg), arg, {{"NCHW", InputLayout::nchw}, {"NHWC", InputLayout::nhwc}});
  } else {
    return false;
  }
  return true;
}

// The mixed-precision search: --accuracy-target, --float-nodes, --sensitivity-images,
// --fallback-rounds, --max-float-fraction, --min-float-gain. False: not one of them.
bool read_mixed_precision_option(const std::string &arg, ArgumentReader &args,
                                 CompileOptions &options) {
  if (arg == "--accuracy-target") {
    std::string text = args.value_of(arg);
    options.accuracy_target = parse_number(text, arg);
    if (options.accuracy_target < 0 || options.accuracy_target > 1)
      usage_error("--accuracy-target: expected a cosine in [0, 1] (0 disables), got '" + text +
                  "'");
  } else if (arg == "--float-nodes") {
    std::stringstream names(args.value_of(arg));
    for (std::string n; std::getline(names, n, ',');)
      if (!n.empty()) options.float_nodes.push_back(n);
    if (options.float_nodes.empty()) usage_error("--float-nodes: expected NAME[,NAME...]");
  } else if (arg == "--sensitivity-images" || arg == "--fallback-rounds") {
    std::string text = args.value_of(arg);
    double n = parse_number(text, arg);
    if (n < (arg == "--fallback-rounds" ? 0 : 1) || n > 100000 || n != std::floor(n))
      usage_error(arg + ": expected an integer in " + (arg == "--fallback-rounds" ? "0" : "1") +
                  "..100000, got '" + text + "'");
    (arg == "--fallback-rounds" ? options.max_fallback_rounds : options.sensitivity_images) =
        static_cast<int>(n);
  } else if (arg == "--min-float-gain") {
    std::string text = args.value_of(arg);
    options.min_float_gain = parse_number(text, arg);
    if (options.min_float_gain < 0 || options.min_float_gain > 1)
      usage_error("--min-float-gain: expected a cosine gain per float node in [0, 1], got '" +
                  text + "'");
  } else if (arg == "--max-float-fraction") {
    std::string text = args.value_of(arg);
    options.max_fallback_fraction = parse_number(text, arg);
    if (options.max_fallback_fraction < 0 || options.max_fallback_fraction > 1)
      usage_error("--max-float-fraction: expected a value in [0, 1], got '" + text + "'");
  } else {
    return false;
  }
  return true;
}

// NAME=LOW,HIGH with LOW < HIGH.
void read_output_range(const std::string &spec, const std::string &arg, CompileOptions &options) {
  size_t eq = spec.rfind('=');
  if (eq == std::string::npos || eq == 0)
    usage_error("--output-range: expected NAME=LOW,HIGH, got '" + spec + "'");
  auto range = parse_numbers(spec.substr(eq + 1), arg);
  if (range.size() != 2 || !(range[0] < range[1]))
    usage_error("--output-range: expected NAME=LOW,HIGH with LOW < HIGH, got '" + spec + "'");
  options.output_ranges[spec.substr(0, eq)] = {range[0], range[1]};
}

// How ranges and weights are quantised: --calib-method, --percentile, --logit-clip,
// --output-range, --no-bias-correction, --flat-range-cut, --equalise-channels,
// --output-activation-in-core. False: not one of them.
bool read_quantisation_option(const std::string &arg, ArgumentReader &args,
                              CompileOptions &options) {
  using axstream::compiler::CalibrationMethod;
  if (arg == "--calib-method") {
    options.method = parse_choice<CalibrationMethod>(args.value_of(arg), arg,
                                                     {{"percentile", CalibrationMethod::percentile},
                                                      {"mse", CalibrationMethod::mse},
                                                      {"entropy", CalibrationMethod::entropy},
                                                      {"minmax", CalibrationMethod::minmax}});
  } else if (arg == "--percentile") {
    std::string text = args.value_of(arg);
    options.percentile = parse_number(text, arg);
    if (options.percentile <= 50 || options.percentile > 100)
      usage_error("--percentile: expected a value in (50, 100], got '" + text + "'");
  } else if (arg == "--logit-clip") {
    std::string text = args.value_of(arg);
    options.logit_clip = parse_number(text, arg);
    if (options.logit_clip < 0)
      usage_error("--logit-clip: expected a value >= 0, got '" + text + "'");
  } else if (arg == "--output-range") {
    read_output_range(args.value_of(arg), arg, options);
  } else if (arg == "--no-bias-correction") {
    options.bias_correction = false;
  } else if (arg == "--flat-range-cut") {
    options.flat_range_cut = true;
  } else if (arg == "--equalise-channels") {
    options.equalise_channels = true;
  } else if (arg == "--output-activation-in-core") {
    options.output_activation_in_core = true;
  } else {
    return false;
  }
  return true;
}

// What is written: --batch, --output-dir/-o, --name, --no-check. False: not one of them.
bool read_package_option(const std::string &arg, ArgumentReader &args, CompileOptions &options) {
  if (arg == "--batch") {
    std::string text = args.value_of(arg);
    double n = parse_number(text, arg);
    if (n < 1 || n > 1024 || n != static_cast<int>(n))
      usage_error("--batch: expected an integer in 1..1024, got '" + text + "'");
    options.batch = static_cast<int>(n);
  } else if (arg == "--output-dir" || arg == "-o") {
    options.output_dir = args.value_of(arg);
  } else if (arg == "--name") {
    options.name = args.value_of(arg);
  } else if (arg == "--no-check") {
    options.reference_check = false;
  } else {
    return false;
  }
  return true;
}

struct CommandLine {
  CompileOptions options;
  bool help = false, verbose = false, quiet = false;
};

// The options in order (the first --help wins at once); a bad one is a usage error (exit 2).
CommandLine read_command_line(int argc, char **argv) {
  CommandLine command;
  CompileOptions &options = command.options;
  ArgumentReader args(argc, argv);
  while (!args.done()) {
    std::string arg = args.next();
    if (arg == "-h" || arg == "--help") {
      command.help = true;
      return command;
    }
    if (read_calibration_option(arg, args, options) || read_input_option(arg, args, options) ||
        read_mixed_precision_option(arg, args, options) ||
        read_quantisation_option(arg, args, options) || read_package_option(arg, args, options))
      continue;
    if (arg == "--verbose" || arg == "-v") {
      command.verbose = true;
    } else if (arg == "--quiet" || arg == "-q") {
      command.quiet = true;
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
  return command;
}

// Compiles with progress bars; the report on stdout, an error on stderr. The exit status.
int compile_package(const CommandLine &command) {
  using namespace axstream::compiler;
  // The first Ctrl-C stops at the next image (calibration, search and check report each one).
  axstream::tools::stop_on_signals();
  ProgressBar bar(command.quiet);
  try {
    CompileReport report =
        compile(command.options, [&](const std::string &stage, int done, int total) {
          axstream::tools::stop_if_signalled();  // through compile(), which removes its
                                                 // temporary package
          bar.show(stage, done, total);
        });
    std::fputs(format_report(report, command.verbose).c_str(), stdout);
    return 0;
  } catch (const Interrupted &stop) {
    bar.end_line();
    std::fprintf(stderr, "axcompile: interrupted by %s: no package written\n",
                 axstream::tools::stop_signal_name(stop.signal));
    return 128 + stop.signal;
  } catch (const axstream::Error &e) {
    bar.end_line();
    std::fprintf(stderr, "axcompile: error (%s): %s\n", axstream::error_kind_name(e.kind()),
                 e.what());
  } catch (const std::exception &e) {
    bar.end_line();
    std::fprintf(stderr, "axcompile: error: %s\n", e.what());
  }
  return 1;
}

}  // namespace

int main(int argc, char **argv) {
  CommandLine command = read_command_line(argc, argv);
  if (command.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  return compile_package(command);
}
