// Pipeline and memory benchmark (issue 9). Every measurement runs in its own child process, so
// its CPU time (user + system, all threads) and peak RSS (ru_maxrss) are its own; each case runs
// AXSTREAM_BENCH_REPEAT times (rounds interleaved across cases) and the median is printed.
//
//   components    the libraries alone on the same frames, no GStreamer: preprocess
//                 (Preprocessor::run into the device tensor), engine (ModelInstance::run on host
//                 buffers, 1 core), decode (OutputConverter::convert + Decoder::decode)
//   source only   the frame source into fakesink: videotestsrc 1280x720 NV12, or appsrc pushing
//                 Megamind.avi decoded once into memory as NV12 (so decoding is not counted)
//   pipeline      source ! axpreprocess ! axinference ! axdecode ! fakesink
//   streams=K     K videotestsrc face-detect branches, axinference shared=true (one instance)
//   instance RSS  resident memory of one loaded-and-run instance of a package, and what loading
//                 (and running) one more instance of it adds
//
// Element overhead (what the GStreamer elements add beyond the work itself), per frame:
//   overhead = CPU of axpreprocess + axinference's chain (charged per element in the source's
//              thread) + axinference's run and push threads whole (axdecode and the sink run in
//              their pushes) inside the pipeline run - (preprocess + decode + run's caller part)
//              alone
//   overhead % = overhead / engine, engine = the core threads' CPU in the same pipeline run plus
//              what ModelInstance::run costs its caller beyond them (measured alone)
// Each element's CPU comes from GStreamer's tracer hooks (element_cpu.h): a thread's CPU between
// two pad pushes is charged to the element running then, so the source and the work downstream
// of an element are not in its figure. The source element is not counted (printed, with its
// figure alone). The work alone is measured in the pipeline's own process right after the
// pipeline (the same Preprocessor, decoder and a 1-core instance as the components). The older
// measure, pipeline process CPU - source alone - components, is printed for comparison ("by
// subtracting the source alone"): the source alone varies between processes by about as much
// as the overhead. The overhead is the median of the rounds' own overheads, "runs a..b%" their
// range.
// Frames/s and CPU/frame are steady state: from the first frame at a sink to EOS (the whole
// process's CPU over that interval) or over the timed loop of a component.
//
//   bench_pipelines    environment: AXSTREAM_BENCH_FRAMES (frames per face-detect run, 300),
//                      AXSTREAM_BENCH_YOLO_FRAMES (20), AXSTREAM_BENCH_REPEAT (5),
//                      AXSTREAM_BENCH_STREAMS (most streams, 8), AXSTREAM_BENCH_ONLY (comma list
//                      of face,megamind,yolo,yolov8,ssd,ocr,streams,memory; default all),
//                      AXSTREAM_BENCH_PLUGIN_DIR (plugin directory; default this build's),
//                      AXSTREAM_BENCH_BASELINE_PLUGIN_DIR (another build's plugin directory:
//                      each round also runs the pipeline with it, printed as "(baseline)" against
//                      the same components and source; the runtime, preprocess and decoder
//                      libraries stay this build's, the elements and the gstmeta library are
//                      that build's),
//                      AXSTREAM_BENCH_INFERENCE_PROPS (extra axinference properties, e.g.
//                      "dmabuf=false max-inflight=1")
#include <dirent.h>
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "ax_transform.h"
#include "axstream/decoders/decoder.h"
#include "axstream/decoders/output_converter.h"
#include "axstream/preprocess/preprocess.h"
#include "axstream/runtime/model_package.h"
#include "axstream/runtime/runtime.h"
#include "bench_common.h"
#include "element_cpu.h"

namespace ab = axstream::bench;
namespace rt = axstream::runtime;
namespace pp = axstream::preprocess;
namespace dec = axstream::decoders;

namespace {

using Values = std::map<std::string, double>;

// What a child reports: named figures, its peak RSS, or why it failed.
struct ChildResult {
  bool ok = false;
  Values values;
  double maxrss_mb = 0;
  std::string message;
  double get(const std::string &key) const {
    auto it = values.find(key);
    return it == values.end() ? 0.0 : it->second;
  }
};

// Runs `body` in a child process; the parent reads the figures through a pipe and the child's
// rusage (peak RSS) from wait4.
ChildResult in_child(const std::function<Values()> &body) {
  int fds[2];
  if (pipe(fds) != 0) return {false, {}, 0, "pipe failed"};
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    std::ostringstream out;
    try {
      for (const auto &[key, value] : body()) out << key << ' ' << value << '\n';
      out << "=ok";
    } catch (const std::exception &e) {
      out << "=" << e.what();
    }
    const std::string text = out.str();
    if (write(fds[1], text.data(), text.size()) < 0) _exit(3);
    close(fds[1]);
    _exit(0);
  }
  close(fds[1]);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0) text.append(buf, size_t(n));
  close(fds[0]);
  int status = 0;
  rusage u{};
  wait4(pid, &status, 0, &u);
  ChildResult r;
  r.maxrss_mb = double(u.ru_maxrss) / 1024.0;
  // Figures as "key value" lines, then "=" and "ok" or the error.
  const size_t newline_marker = text.find("\n=");
  const size_t marker = text.rfind('=', 0) == 0               ? 0
                        : newline_marker == std::string::npos ? std::string::npos
                                                              : newline_marker + 1;
  if (marker == std::string::npos) {
    r.message = "child exited with status " + std::to_string(status);
    return r;
  }
  std::istringstream lines(text.substr(0, marker));
  std::string key;
  double value;
  while (lines >> key >> value) r.values[key] = value;
  r.message = text.substr(marker + 1);
  r.ok = r.message == "ok";
  return r;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Median of every figure over the successful repeats (peak RSS as "rss_mb").
struct Summary {
  bool ok = false;
  int runs = 0;
  std::string message;
  Values values;
  double operator[](const std::string &key) const {
    auto it = values.find(key);
    return it == values.end() ? 0.0 : it->second;
  }
};

Summary summarise(const std::vector<ChildResult> &results) {
  Summary s;
  std::map<std::string, std::vector<double>> all;
  for (const ChildResult &r : results) {
    if (!r.ok) {
      s.message = r.message;
      continue;
    }
    ++s.runs;
    for (const auto &[key, value] : r.values) all[key].push_back(value);
    all["rss_mb"].push_back(r.maxrss_mb);
  }
  s.ok = s.runs > 0;
  for (auto &[key, values] : all) s.values[key] = median(values);
  return s;
}

int env_int(const char *name, int fallback) {
  const char *v = std::getenv(name);
  return v && std::atoi(v) > 0 ? std::atoi(v) : fallback;
}

bool exists(const std::string &p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0;
}

double current_rss_mb() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return double(resident) * double(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

// Seconds on CPU of this process's threads by role, from /proc/self/task/*/{comm,schedstat}
// (nanosecond run time): "core" = the simulated AIPU core workers (axcore-*, where the engine
// computes), "runner" = axinference's run threads, "push" = its push thread (axdecode and the
// sink run there), "other" = the rest (sources, axpreprocess in the source's streaming thread).
Values thread_cpu_by_role() {
  Values out{{"core", 0}, {"runner", 0}, {"push", 0}, {"other", 0}};
  DIR *dir = opendir("/proc/self/task");
  if (!dir) return out;
  while (dirent *entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const std::string task = std::string("/proc/self/task/") + entry->d_name;
    std::ifstream comm_file(task + "/comm"), sched_file(task + "/schedstat");
    std::string comm;
    double ns = 0;
    if (!std::getline(comm_file, comm) || !(sched_file >> ns)) continue;  // thread gone
    const char *role = comm.rfind("axcore", 0) == 0       ? "core"
                       : comm.rfind("axinf-run", 0) == 0  ? "runner"
                       : comm.rfind("axinf-push", 0) == 0 ? "push"
                                                          : "other";
    out[role] += ns * 1e-9;
  }
  closedir(dir);
  return out;
}

// The plugin directory the pipelines load: AXSTREAM_BENCH_PLUGIN_DIR (another build of the plugin)
// or this build's.
std::string plugin_dir() {
  const char *dir = std::getenv("AXSTREAM_BENCH_PLUGIN_DIR");
  return dir ? dir : AXSTREAM_PLUGIN_DIR;
}

void init_gst(const std::string &plugin = plugin_dir()) {
  std::string path = plugin;
  if (const char *old = std::getenv("GST_PLUGIN_PATH")) path += std::string(":") + old;
  setenv("GST_PLUGIN_PATH", path.c_str(), 1);
  gst_init(nullptr, nullptr);
}

// ---------------------------------------------------------------------------------------------
// Frames in memory

// NV12 frames held in memory, pushed by appsrc or fed to the libraries directly.
struct Clip {
  int width = 0, height = 0;
  GstCaps *caps = nullptr;
  std::vector<GstBuffer *> frames;
  size_t bytes = 0;
  Clip() = default;
  Clip(const Clip &) = delete;
  Clip &operator=(const Clip &) = delete;
  ~Clip() {
    for (GstBuffer *b : frames) gst_buffer_unref(b);
    if (caps) gst_caps_unref(caps);
  }
};

// Pulls up to `max_frames` NV12 frames out of `desc` (a launch line ending in "appsink name=out").
void pull_frames(const std::string &desc, size_t max_frames, Clip &clip) {
  GError *err = nullptr;
  GstElement *pipeline = gst_parse_launch(desc.c_str(), &err);
  if (!pipeline || err)
    throw std::runtime_error("parse '" + desc + "': " + (err ? err->message : "failed"));
  GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "out");
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  while (clip.frames.size() < max_frames) {
    GstSample *sample = gst_app_sink_pull_sample(GST_APP_SINK(sink));
    if (!sample) break;
    if (!clip.caps) {
      clip.caps = gst_caps_ref(gst_sample_get_caps(sample));
      GstStructure *s = gst_caps_get_structure(clip.caps, 0);
      gst_structure_get_int(s, "width", &clip.width);
      gst_structure_get_int(s, "height", &clip.height);
    }
    GstBuffer *b = gst_sample_get_buffer(sample);
    clip.bytes += gst_buffer_get_size(b);
    clip.frames.push_back(gst_buffer_ref(b));
    gst_sample_unref(sample);
  }
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(sink);
  gst_object_unref(pipeline);
  if (clip.frames.empty()) throw std::runtime_error("no frame from '" + desc + "'");
}

const char *kVideoTestCaps = "video/x-raw,format=NV12,width=1280,height=720,framerate=30/1";

void load_source(const std::string &source, Clip &clip) {
  if (source == "videotestsrc")
    pull_frames(std::string("videotestsrc num-buffers=8 ! ") + kVideoTestCaps +
                    " ! appsink name=out sync=false",
                8, clip);
  else
    pull_frames("filesrc location=" + source +
                    " ! decodebin ! videoconvert ! video/x-raw,format=NV12 ! "
                    "appsink name=out sync=false",
                100000, clip);
}

// ---------------------------------------------------------------------------------------------
// Pipelines

struct SinkCount {
  std::mutex mutex;
  uint64_t buffers = 0;
  ab::Clock::time_point t0;
  double cpu0 = 0;
  Values roles0;
  std::map<std::string, double> elements0;  // CPU charged to each element kind
};

GstPadProbeReturn count_buffer(GstPad *, GstPadProbeInfo *, gpointer data) {
  auto *c = static_cast<SinkCount *>(data);
  std::lock_guard lock(c->mutex);
  if (c->buffers++ == 0) {
    c->t0 = ab::Clock::now();
    c->cpu0 = ab::cpu_seconds();
    c->roles0 = thread_cpu_by_role();
    c->elements0 = ab::element_cpu_seconds();
  }
  return GST_PAD_PROBE_OK;
}

// Pushes `count` frames of `clip` (cycled, fresh timestamps; shallow copies share the memory)
// into the appsrc named "src", then EOS.
void feed(GstElement *pipeline, const Clip &clip, int count) {
  pthread_setname_np(pthread_self(), "bench-feed");
  GstElement *src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
  const GstClockTime duration = GST_SECOND / 30;
  for (int i = 0; i < count; ++i) {
    GstBuffer *b = gst_buffer_copy(clip.frames[size_t(i) % clip.frames.size()]);
    GST_BUFFER_PTS(b) = GstClockTime(i) * duration;
    GST_BUFFER_DTS(b) = GST_CLOCK_TIME_NONE;
    GST_BUFFER_DURATION(b) = duration;
    if (gst_app_src_push_buffer(GST_APP_SRC(src), b) != GST_FLOW_OK) break;
  }
  gst_app_src_end_of_stream(GST_APP_SRC(src));
  gst_object_unref(src);
}

// Runs `desc` to EOS; with a clip, its "src" appsrc is fed `feed_frames` frames from a thread.
Values run_pipeline(const std::string &desc, const Clip *clip = nullptr, int feed_frames = 0) {
  // axinference's threads (inference, then axdecode and the sink in its pushes) count whole.
  ab::start_element_cpu({"axinf-"});
  GError *err = nullptr;
  GstElement *pipeline = gst_parse_launch(desc.c_str(), &err);
  if (!pipeline || err)
    throw std::runtime_error(std::string("parse: ") + (err ? err->message : "failed"));
  if (clip) {
    GstElement *src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
    g_object_set(src, "caps", clip->caps, "format", GST_FORMAT_TIME, "block", TRUE, "max-bytes",
                 guint64(4 * clip->bytes / clip->frames.size()), nullptr);
    gst_object_unref(src);
  }
  SinkCount count;
  GstIterator *it = gst_bin_iterate_sinks(GST_BIN(pipeline));
  GValue item = G_VALUE_INIT;
  while (gst_iterator_next(it, &item) == GST_ITERATOR_OK) {
    GstElement *sink = GST_ELEMENT(g_value_get_object(&item));
    GstPad *pad = gst_element_get_static_pad(sink, "sink");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, count_buffer, &count, nullptr);
    gst_object_unref(pad);
    g_value_reset(&item);
  }
  g_value_unset(&item);
  gst_iterator_free(it);
  gst_element_set_state(pipeline, GST_STATE_PLAYING);
  std::thread feeder;
  if (clip) feeder = std::thread(feed, pipeline, std::cref(*clip), feed_frames);
  GstBus *bus = gst_element_get_bus(pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered(bus, GST_CLOCK_TIME_NONE,
                                               GstMessageType(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  Values v;
  {
    std::lock_guard lock(count.mutex);
    const double frames = double(count.buffers) - 1;  // frames after the first one
    const double wall = std::chrono::duration<double>(ab::Clock::now() - count.t0).count();
    v["fps"] = frames / wall;
    v["cpu_ms"] = (ab::cpu_seconds() - count.cpu0) * 1e3 / frames;
    v["frames"] = frames;
    for (const auto &[role, seconds] : thread_cpu_by_role())
      v[role + "_cpu_ms"] = (seconds - count.roles0[role]) * 1e3 / frames;
    for (const auto &[kind, seconds] : ab::element_cpu_seconds())
      v["el_" + kind + "_cpu_ms"] = (seconds - count.elements0[kind]) * 1e3 / frames;
  }
  std::string error;
  if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR) {
    GError *e = nullptr;
    gst_message_parse_error(msg, &e, nullptr);
    error = e->message;
    g_error_free(e);
  }
  gst_message_unref(msg);
  gst_object_unref(bus);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  if (feeder.joinable()) {
    // A feeder blocked on the full appsrc of a pipeline that failed (its streaming thread no
    // longer takes frames) waits on appsrc's condition, which the state change does not always
    // signal: lifting the size limit does, and the feeder's remaining pushes then return at once.
    GstElement *src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
    g_object_set(src, "block", FALSE, "max-bytes", guint64(0), nullptr);
    gst_object_unref(src);
    feeder.join();
  }
  gst_object_unref(pipeline);
  if (!error.empty()) throw std::runtime_error("pipeline error: " + error);
  if (v["frames"] < 1) throw std::runtime_error("fewer than 2 frames reached the sink");
  return v;
}

// A model pipeline: which package, its decoder and the frames it gets.
struct Case {
  std::string name;
  std::string package;
  std::string decode;  // axdecode properties
  std::string source;  // "videotestsrc" or a media file decoded into memory
  int frames = 300;
  // The design's host cost per frame (device compute excluded) to report against; 0: none.
  double host_cost_target_ms = 0;
};

std::string source_head(const Case &c) {
  if (c.source == "videotestsrc")
    return "videotestsrc num-buffers=" + std::to_string(c.frames) + " ! " + kVideoTestCaps;
  return "appsrc name=src";
}

std::string model_chain(const Case &c, bool shared) {
  const char *extra = std::getenv("AXSTREAM_BENCH_INFERENCE_PROPS");
  return " ! axpreprocess model=" + c.package + " ! axinference model=" + c.package +
         (shared ? " shared=true" : "") + (extra ? std::string(" ") + extra : "") + " ! axdecode " +
         c.decode;
}

Values run_case_pipeline(const Case &c, bool with_model, const std::string &plugin = plugin_dir()) {
  init_gst(plugin);
  const std::string desc =
      source_head(c) + (with_model ? model_chain(c, false) : "") + " ! fakesink sync=false";
  if (c.source == "videotestsrc") return run_pipeline(desc);
  Clip clip;
  load_source(c.source, clip);
  Values v = run_pipeline(desc, &clip, c.frames);
  v["clip_mb"] = double(clip.bytes) / (1024.0 * 1024.0);
  return v;
}

// ---------------------------------------------------------------------------------------------
// The libraries alone

pp::TensorSpec tensor_spec_of(const rt::TensorInfo &info) {
  if (info.shape.size() != 4 || info.padding.size() > 4)
    throw std::runtime_error("input '" + info.name + "' is not an NHWC image tensor");
  pp::TensorSpec t;
  t.height = int(info.shape[1]);
  t.width = int(info.shape[2]);
  t.channels = int(info.shape[3]);
  if (info.padding.size() == 4) {
    t.pad_top = int(info.padding[1].first);
    t.pad_bottom = int(info.padding[1].second);
    t.pad_left = int(info.padding[2].first);
    t.pad_right = int(info.padding[2].second);
    t.channel_pad_low = int(info.padding[3].first);
    t.channel_pad_high = int(info.padding[3].second);
  }
  t.scale = info.scale;
  t.zero_point = info.zero_point;
  return t;
}

// The options axpreprocess derives from the package when no property overrides them.
pp::Options options_of(const rt::ModelPackage &package) {
  pp::Options o;
  if (package.input_preprocess.empty() || !package.input_preprocess[0]) return o;
  const rt::InputPreprocess &ip = *package.input_preprocess[0];
  o.color = pp::color_order_from_string(ip.color_format);
  o.normalisation.pixel_scale = ip.pixel_scale;
  auto per_channel = [](const std::vector<double> &v, double fallback) {
    if (v.empty()) return std::array<double, 3>{fallback, fallback, fallback};
    if (v.size() == 1) return std::array<double, 3>{v[0], v[0], v[0]};
    return std::array<double, 3>{v[0], v[1], v[2]};
  };
  o.normalisation.mean = per_channel(ip.mean, 0.0);
  o.normalisation.std = per_channel(ip.std, 1.0);
  return o;
}

dec::DecoderOptions decoder_options_of(const std::string &decode_props) {
  dec::DecoderOptions o;
  const auto at = decode_props.find("conf-threshold=");
  if (at != std::string::npos) o.conf_threshold = std::stof(decode_props.substr(at + 15));
  // decoder-config="key=value; ..." (quoted, as gst-launch takes it)
  const std::string config_key = "decoder-config=\"";
  const auto config_at = decode_props.find(config_key);
  if (config_at != std::string::npos) {
    const size_t from = config_at + config_key.size();
    o.config =
        dec::parse_decoder_config(decode_props.substr(from, decode_props.find('"', from) - from));
  }
  return o;
}

std::string decoder_name_of(const std::string &decode_props) {
  const auto at = decode_props.find("decoder=");
  if (at == std::string::npos) return "classification";
  const auto end = decode_props.find(' ', at);
  return decode_props.substr(at + 8, end == std::string::npos ? end : end - at - 8);
}

// CPU ms and wall ms per call of `fn(i)` for i in [0, n), after one untimed call.
std::pair<double, double> time_per_call(int n, const std::function<void(int)> &fn) {
  fn(0);
  const double cpu0 = ab::cpu_seconds();
  const auto t0 = ab::Clock::now();
  for (int i = 0; i < n; ++i) fn(i);
  const double wall = std::chrono::duration<double>(ab::Clock::now() - t0).count();
  return {(ab::cpu_seconds() - cpu0) * 1e3 / n, wall * 1e3 / n};
}

// Preprocess every frame of the case's source, run the engine on those tensors (host buffers,
// one 1-core instance) and decode the outputs: the work the pipeline does, without GStreamer.
Values run_components(const Case &c) {
  init_gst();
  Clip clip;
  load_source(c.source, clip);
  auto ctx = rt::Context::create();
  auto model = ctx->load_model(c.package);
  auto conn = ctx->device_connect(nullptr, 1);
  auto inst = conn->load_model_instance(model, rt::Properties{});
  const rt::TensorInfo input = model->inputs().at(0);
  pp::Preprocessor preprocessor(pp::PixelFormat::NV12, clip.width, clip.height,
                                tensor_spec_of(input), options_of(*model->package()));
  const size_t distinct = clip.frames.size();
  std::vector<std::vector<int8_t>> tensors(distinct, std::vector<int8_t>(input.size()));
  std::vector<std::vector<std::vector<int8_t>>> outputs(distinct);
  for (auto &o : outputs)
    for (const auto &t : model->outputs()) o.emplace_back(t.size());
  // Frames stay mapped for the whole run, as a decoded frame sits in memory for the element.
  std::vector<GstMapInfo> maps(distinct);
  for (size_t i = 0; i < distinct; ++i)
    if (!gst_buffer_map(clip.frames[i], &maps[i], GST_MAP_READ))
      throw std::runtime_error("cannot map a frame");
  GstVideoInfo layout;
  if (!gst_video_info_from_caps(&layout, clip.caps)) throw std::runtime_error("bad clip caps");
  auto frame_of = [&](size_t i) {
    pp::Frame f;
    f.format = pp::PixelFormat::NV12;
    f.width = clip.width;
    f.height = clip.height;
    const GstVideoMeta *vm = gst_buffer_get_video_meta(clip.frames[i]);
    for (int p = 0; p < 2; ++p) {
      f.planes[size_t(p)] =
          maps[i].data + (vm ? vm->offset[p] : GST_VIDEO_INFO_PLANE_OFFSET(&layout, p));
      f.strides[size_t(p)] = vm ? vm->stride[p] : GST_VIDEO_INFO_PLANE_STRIDE(&layout, p);
    }
    return f;
  };
  const int n = c.frames;
  Values v;
  auto [pre_cpu, pre_wall] = time_per_call(n, [&](int i) {
    preprocessor.run(frame_of(size_t(i) % distinct), tensors[size_t(i) % distinct].data());
  });
  auto run_engine = [&](int i) {
    const size_t k = size_t(i) % distinct;
    std::vector<rt::Argument> ia{{tensors[k].data(), -1, 0, tensors[k].size()}}, oa;
    for (auto &o : outputs[k]) oa.push_back({o.data(), -1, 0, o.size()});
    inst->run(ia, oa);
  };
  run_engine(0);
  Values roles0 = thread_cpu_by_role();
  auto [eng_cpu, eng_wall] = time_per_call(n, run_engine);  // its untimed call: 1 more run
  v["eng_core_cpu_ms"] = (thread_cpu_by_role()["core"] - roles0["core"]) * 1e3 / (n + 1);
  for (size_t k = 0; k < distinct && k < size_t(n); ++k) run_engine(int(k));  // every output set
  auto converter = dec::OutputConverter::from_package(*model->package());
  auto decoder = dec::make_decoder(decoder_name_of(c.decode), decoder_options_of(c.decode));
  // Through the tensor meta's transform, as axpreprocess hands it to axdecode.
  const dec::Geometry geometry =
      axstream::gst::decoder_geometry(axstream::gst::transform_of(preprocessor.geometry()));
  // The path axdecode takes (int8-fast-path=true): quantised outputs when the package and the
  // decoder allow, the postamble's sigmoid left to the decoder when it can apply it.
  std::unique_ptr<dec::Decoder> logits_decoder;
  bool int8_path = decoder->has_int8_path() && converter->quantized_outputs_available() &&
                   c.decode.find("int8-fast-path=false") == std::string::npos;
  {
    std::vector<const int8_t *> raw;
    std::vector<size_t> bytes;
    for (auto &o : outputs[0]) {
      raw.push_back(o.data());
      bytes.push_back(o.size());
    }
    const auto floats = converter->convert(raw, bytes);
    decoder->check_outputs(floats);
    const std::vector<bool> before_sigmoid = converter->outputs_before_sigmoid();
    if (int8_path &&
        (std::find(before_sigmoid.begin(), before_sigmoid.end(), true) != before_sigmoid.end() ||
         converter->splits_outputs())) {
      logits_decoder = decoder->for_logits(converter->quantized_output_shapes(), before_sigmoid);
      int8_path = logits_decoder != nullptr;
    }
  }
  const dec::Decoder &int8_decoder = logits_decoder ? *logits_decoder : *decoder;
  size_t detections = 0;
  std::vector<dec::QuantizedTensor> views;  // refreshed per frame, as axdecode keeps them
  auto [dec_cpu, dec_wall] = time_per_call(n, [&](int i) {
    const size_t k = size_t(i) % std::min(distinct, size_t(n));
    std::vector<const int8_t *> raw;
    std::vector<size_t> bytes;
    for (auto &o : outputs[k]) {
      raw.push_back(o.data());
      bytes.push_back(o.size());
    }
    if (int8_path && !converter->refresh_views(views, raw, bytes))
      views = converter->view_quantized(raw, bytes);
    detections += int8_path
                      ? int8_decoder.decode_quantized(views, geometry).detections.size()
                      : decoder->decode(converter->convert(raw, bytes), geometry).detections.size();
  });
  v["dec_int8"] = int8_path ? 1 : 0;
  for (size_t i = 0; i < distinct; ++i) gst_buffer_unmap(clip.frames[i], &maps[i]);
  v["pre_cpu_ms"] = pre_cpu;
  v["eng_cpu_ms"] = eng_cpu;
  v["eng_fps"] = 1e3 / eng_wall;
  v["dec_cpu_ms"] = dec_cpu;
  v["detections_per_frame"] = double(detections) / (n + 1);
  return v;
}

// The pipeline, then the work alone in the same process right after it ("work_" figures): each
// round's overhead subtracts work measured under that process's conditions, where another
// process's figures drift with the load by about as much as the overhead.
Values run_pipeline_then_work(const Case &c, const std::string &plugin = plugin_dir()) {
  Values v = run_case_pipeline(c, true, plugin);
  for (const auto &[key, value] : run_components(c)) v["work_" + key] = value;
  return v;
}

// ---------------------------------------------------------------------------------------------
// Report

// Element overhead of one pipeline run (or of the medians). Counted directly: the CPU the three
// elements took in the pipeline run itself (charged per element by the tracer hooks in the
// source's thread; axinference's run and push threads whole, with axdecode and the sink, which
// releases the elements' buffers, in their pushes) less their work measured alone
// (Preprocessor::run, convert + decode, and what ModelInstance::run costs its caller beyond the
// core threads). The source never enters it. The older figure, the whole
// process less the source alone and the components, is kept for comparison: it subtracts a
// source measured in another process, whose CPU varies by about the whole overhead.
struct Overhead {
  double engine_here = 0;  // the engine as it ran inside the pipeline
  double ms = 0, percent = 0;
  double subtracted_ms = 0, subtracted_percent = 0;
};

double value_at(const Values &v, const std::string &key) {
  auto it = v.find(key);
  return it == v.end() ? 0.0 : it->second;
}

// What ModelInstance::run costs its caller beyond the core threads (measured alone).
double run_caller_ms(const Values &comp) {
  return std::max(0.0, value_at(comp, "eng_cpu_ms") - value_at(comp, "eng_core_cpu_ms"));
}

// The work alone as measured right after the pipeline in its own process, else `comp`'s.
Values work_of(const Values &comp, const Values &pipe) {
  Values work;
  for (const auto &[key, value] : pipe)
    if (key.rfind("work_", 0) == 0) work[key.substr(5)] = value;
  return work.empty() ? comp : work;
}

Overhead overhead_of(const Values &comp, const Values &source, const Values &pipe) {
  const Values work = work_of(comp, pipe);
  Overhead o;
  o.engine_here = value_at(pipe, "core_cpu_ms") + run_caller_ms(work);
  const double elements = value_at(pipe, "el_axpreprocess_cpu_ms") +
                          value_at(pipe, "el_axinference_cpu_ms") +
                          value_at(pipe, "el_axdecode_cpu_ms") + value_at(pipe, "el_sink_cpu_ms") +
                          value_at(pipe, "runner_cpu_ms") + value_at(pipe, "push_cpu_ms");
  o.ms =
      elements - value_at(work, "pre_cpu_ms") - value_at(work, "dec_cpu_ms") - run_caller_ms(work);
  o.percent = o.ms / o.engine_here * 100.0;
  // As before the tracer hooks: everything against the components and source processes.
  const double engine = value_at(pipe, "core_cpu_ms") + run_caller_ms(comp);
  o.subtracted_ms = value_at(pipe, "cpu_ms") - value_at(source, "cpu_ms") -
                    value_at(comp, "pre_cpu_ms") - value_at(comp, "dec_cpu_ms") - engine;
  o.subtracted_percent = o.subtracted_ms / engine * 100.0;
  return o;
}

// `name`'s lines: throughput, CPU per part and thread, the overhead (median and range of the runs'
// own overheads, each pipeline run against the work measured in its process) and what each
// element took in the pipeline; with a host-cost target one more: the host's CPU per frame
// without the source and the device compute.
void print_case(const std::string &name, const std::vector<ChildResult> &comp_runs,
                const std::vector<ChildResult> &source_runs,
                const std::vector<ChildResult> &pipe_runs, double host_cost_target_ms = 0) {
  const char *area = "pipeline";
  const Summary comp = summarise(comp_runs), source = summarise(source_runs),
                pipe = summarise(pipe_runs);
  if (!comp.ok) return ab::skip(area, name + " components", comp.message.substr(0, 160));
  if (!source.ok) return ab::skip(area, name + " source", source.message.substr(0, 160));
  if (!pipe.ok) return ab::skip(area, name, pipe.message.substr(0, 160));
  std::vector<double> direct, direct_ms, subtracted;
  for (size_t r = 0; r < pipe_runs.size() && r < comp_runs.size() && r < source_runs.size(); ++r) {
    if (!pipe_runs[r].ok || !comp_runs[r].ok || !source_runs[r].ok) continue;
    const Overhead run =
        overhead_of(comp_runs[r].values, source_runs[r].values, pipe_runs[r].values);
    direct.push_back(run.percent);
    direct_ms.push_back(run.ms);
    subtracted.push_back(run.subtracted_percent);
  }
  // Medians of the runs' own figures (each run against its own work and its round's source).
  const Overhead o = overhead_of(comp.values, source.values, pipe.values);
  const Values work = work_of(comp.values, pipe.values);
  const double direct_percent = median(direct), subtracted_percent = median(subtracted);
  const auto [direct_low, direct_high] = std::minmax_element(direct.begin(), direct.end());
  const auto [sub_low, sub_high] = std::minmax_element(subtracted.begin(), subtracted.end());
  const double total = pipe["cpu_ms"];
  std::printf(
      "%-8s %-26s %6.1f frames/s (engine alone %6.1f/s: %.2fx)  cpu %7.3f ms/frame  peak RSS "
      "%6.1f MB%s\n"
      "%-8s %-26s cpu ms/frame: source %.3f + preprocess %.3f + engine %.3f (alone %.3f) + "
      "decode %.3f; threads: other %.3f, axinf-run %.3f, axinf-push %.3f, core %.3f\n"
      "%-8s %-26s overhead %.3f ms/frame = %.1f%% of the engine (runs %.1f..%.1f%%; by "
      "subtracting the source alone: %.1f%%, runs %.1f..%.1f%%)  [medians of %d/%d/%d runs]\n"
      "%-8s %-26s in the pipeline, ms/frame: axpreprocess %.3f (work alone %.3f), axinference "
      "chain %.3f + its threads %.3f (of which axdecode %.3f (work alone %.3f), sink %.3f; run's "
      "caller part alone %.3f); not counted: source element %.3f (alone %.3f)\n",
      area, name.c_str(), pipe["fps"], comp["eng_fps"], pipe["fps"] / comp["eng_fps"], total,
      pipe["rss_mb"],
      pipe["clip_mb"] > 0
          ? (" (clip in memory " + std::to_string(int(pipe["clip_mb"] + 0.5)) + " MB)").c_str()
          : "",
      area, name.c_str(), source["cpu_ms"], comp["pre_cpu_ms"], o.engine_here, comp["eng_cpu_ms"],
      comp["dec_cpu_ms"],
      // The rest of the process's CPU (threads that ended before EOS, like appsrc's feeder, are
      // in the total but not in a per-thread snapshot).
      total - pipe["runner_cpu_ms"] - pipe["push_cpu_ms"] - pipe["core_cpu_ms"],
      pipe["runner_cpu_ms"], pipe["push_cpu_ms"], pipe["core_cpu_ms"], area, name.c_str(),
      median(direct_ms), direct_percent, direct.empty() ? 0.0 : *direct_low,
      direct.empty() ? 0.0 : *direct_high, subtracted_percent, subtracted.empty() ? 0.0 : *sub_low,
      subtracted.empty() ? 0.0 : *sub_high, comp.runs, source.runs, pipe.runs, area, name.c_str(),
      pipe["el_axpreprocess_cpu_ms"], value_at(work, "pre_cpu_ms"), pipe["el_axinference_cpu_ms"],
      pipe["runner_cpu_ms"] + pipe["push_cpu_ms"], pipe["el_axdecode@axinf-_cpu_ms"],
      value_at(work, "dec_cpu_ms"), pipe["el_sink@axinf-_cpu_ms"], run_caller_ms(work),
      pipe["el_source_cpu_ms"], source["el_source_cpu_ms"]);
  {
    // The source's streaming thread runs the source element, axpreprocess and axinference's
    // chain one after another, so it caps the frame rate whatever the engine does: on the AMD
    // EPYC host videotestsrc alone takes ~0.85 ms per 720p NV12 frame, more than BlazeFace
    // front's engine, and the pipeline runs at ~0.4-0.6x of the engine alone for that reason.
    const double streaming =
        pipe["el_source_cpu_ms"] + pipe["el_axpreprocess_cpu_ms"] + pipe["el_axinference_cpu_ms"];
    if (streaming > 0)
      std::printf(
          "%-8s %-26s streaming thread %.3f ms/frame (source element %.3f + axpreprocess %.3f "
          "+ axinference chain %.3f): at most %.0f frames/s with a core to itself (engine alone "
          "%.1f/s)\n",
          area, name.c_str(), streaming, pipe["el_source_cpu_ms"], pipe["el_axpreprocess_cpu_ms"],
          pipe["el_axinference_cpu_ms"], 1000.0 / streaming, comp["eng_fps"]);
  }
  {
    // What the host spends per frame besides decoding the video (the source) and the device's
    // compute (the simulated cores' threads): axpreprocess as charged by the tracer hooks,
    // axinference's chain and its run and push threads whole (plumbing, axdecode, the sink).
    // The older way, the whole process less the source alone and the cores, for comparison.
    const double host = pipe["el_axpreprocess_cpu_ms"] + pipe["el_axinference_cpu_ms"] +
                        pipe["runner_cpu_ms"] + pipe["push_cpu_ms"];
    const double host_subtracted = total - source["cpu_ms"] - pipe["core_cpu_ms"];
    char target[64] = "";
    if (host_cost_target_ms > 0)
      std::snprintf(target, sizeof target, " (target <= %.1f: %s)", host_cost_target_ms,
                    host <= host_cost_target_ms ? "met" : "not met");
    std::printf(
        "%-8s %-26s host cost %.3f ms/frame of one core, device compute excluded%s: "
        "axpreprocess %.3f + axinference chain %.3f + axinf-run %.3f + axinf-push %.3f "
        "(axdecode %.3f); alone: preprocess %.3f, decode %.3f (%s path, %.1f detections/frame); "
        "by subtracting the source alone and the cores: %.3f\n",
        area, name.c_str(), host, target, pipe["el_axpreprocess_cpu_ms"],
        pipe["el_axinference_cpu_ms"], pipe["runner_cpu_ms"], pipe["push_cpu_ms"],
        pipe["el_axdecode@axinf-_cpu_ms"], comp["pre_cpu_ms"], comp["dec_cpu_ms"],
        comp["dec_int8"] > 0 ? "int8" : "float", comp["detections_per_frame"], host_subtracted);
  }
  std::fflush(stdout);
}

bool wanted(const std::string &only, const char *part) {
  if (only.empty()) return true;
  return ("," + only + ",").find("," + std::string(part) + ",") != std::string::npos;
}

}  // namespace

int main(int argc, char **argv) {
  // Configured by the environment only; an argument (--help too) would otherwise start the
  // whole run, several minutes of it.
  if (argc > 1) {
    const bool help = !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h");
    std::fprintf(help ? stdout : stderr,
                 "usage: %s   (no arguments; environment: AXSTREAM_BENCH_FRAMES, "
                 "AXSTREAM_BENCH_YOLO_FRAMES, AXSTREAM_BENCH_REPEAT, AXSTREAM_BENCH_STREAMS,\n"
                 "  AXSTREAM_BENCH_ONLY (face,megamind,yolo,yolov8,ssd,ocr,streams,memory), "
                 "AXSTREAM_BENCH_PLUGIN_DIR, AXSTREAM_BENCH_BASELINE_PLUGIN_DIR,\n"
                 "  AXSTREAM_BENCH_INFERENCE_PROPS; docs/performance.md)\n",
                 argv[0]);
    return help ? 0 : 2;
  }
  const std::string data = ab::data_dir();
  const int frames = env_int("AXSTREAM_BENCH_FRAMES", 300);
  const int yolo_frames = env_int("AXSTREAM_BENCH_YOLO_FRAMES", 20);
  const int repeat = env_int("AXSTREAM_BENCH_REPEAT", 5);
  const int max_streams = env_int("AXSTREAM_BENCH_STREAMS", 8);
  const char *baseline_env = std::getenv("AXSTREAM_BENCH_BASELINE_PLUGIN_DIR");
  const std::string baseline_plugin = baseline_env ? baseline_env : "";
  const char *only_env = std::getenv("AXSTREAM_BENCH_ONLY");
  const std::string only = only_env ? only_env : "";
  const char *bm = std::getenv("AXSTREAM_BENCH_MODELS");
  const std::string bench = bm ? bm : data + "/bench";
  const std::string face = data + "/models/blazeface-front";
  const std::string megamind =
      data + "/opencv-doc/usr/share/doc/opencv-doc/examples/data/Megamind.avi";
  std::printf(
      "# pipelines: medians of %d runs per case, each run its own process; CPU = user+system of "
      "that process (all threads); overhead = the elements' own CPU in the pipeline (tracer hooks, "
      "plus axinference's run threads and the sink) - their work alone, per frame, in %% of the "
      "engine's\n",
      repeat);

  std::vector<Case> cases;
  if (wanted(only, "face"))
    cases.push_back(
        {"face-detect videotestsrc", face, "decoder=blazeface", "videotestsrc", frames});
  if (wanted(only, "megamind"))
    cases.push_back({"face-detect Megamind.avi", face, "decoder=blazeface", megamind, frames});
  // The package's postamble is the heads' Sigmoid, so the outputs are probabilities
  // (activations=sigmoid); axdecode leaves that sigmoid to the decoder's int8 logits path.
  // The same with int8-fast-path=false: the float path (dequantise everything, run the
  // postamble), as axdecode decoded this package before, for the before/after in one run.
  if (wanted(only, "yolo")) {
    const std::string yolo_decode =
        "decoder=yolov5 conf-threshold=0.6 decoder-config=\"activations=sigmoid\"";
    cases.push_back({"yolov5s videotestsrc", bench + "/pkg/yolov5s", yolo_decode, "videotestsrc",
                     yolo_frames, 2.3});
    cases.push_back({"yolov5s float decode", bench + "/pkg/yolov5s",
                     yolo_decode + " int8-fast-path=false", "videotestsrc", yolo_frames, 2.3});
  }
  // yolov8n: its postamble concatenates the DFL bins with the class sigmoids (two quantisations
  // per head), so the int8 path gets the parts and the classes as logits.
  if (wanted(only, "yolov8")) {
    const std::string v8_decode =
        "decoder=yolov8 conf-threshold=0.6 decoder-config=\"activations=sigmoid\"";
    cases.push_back(
        {"yolov8n videotestsrc", bench + "/pkg/yolov8n", v8_decode, "videotestsrc", yolo_frames});
    cases.push_back({"yolov8n float decode", bench + "/pkg/yolov8n",
                     v8_decode + " int8-fast-path=false", "videotestsrc", yolo_frames});
  }
  // ssd_mobilenet: its postamble concatenates 6 per-level heads (each its own quantisation)
  // into loc and conf, so the int8 path gets the 12 heads as parts, read in place.
  if (wanted(only, "ssd")) {
    const std::string ssd_decode =
        "decoder=ssd decoder-config=\"feature-maps=19,10,5,3,2,1; image-size=300; "
        "min-sizes=60,105,150,195,240,285; max-sizes=105,150,195,240,285,300; "
        "aspect-ratios=2|2,3|2,3|2,3|2|2; variances=0.1,0.2; clip=1\"";  // SSD_MOBILENET_PRIORS
    cases.push_back({"ssd_mobilenet videotestsrc", bench + "/pkg/ssd_mobilenet", ssd_decode,
                     "videotestsrc", yolo_frames});
    cases.push_back({"ssd_mobilenet float decode", bench + "/pkg/ssd_mobilenet",
                     ssd_decode + " int8-fast-path=false", "videotestsrc", yolo_frames});
  }
  // PP-OCRv4 det on a still image with text (one frame, pushed again and again): dbnet on the
  // logits (its postamble is the map's Sigmoid) against the float path.
  if (wanted(only, "ocr")) {
    const std::string det = data + "/models/ppocr-det";
    const std::string image =
        data + "/opencv-doc/usr/share/doc/opencv-doc/examples/text/scenetext01.jpg";
    cases.push_back({"ppocr-det scenetext01.jpg", det, "decoder=dbnet", image, yolo_frames});
    cases.push_back(
        {"ppocr-det float decode", det, "decoder=dbnet int8-fast-path=false", image, yolo_frames});
  }
  for (const Case &c : cases) {
    std::string missing;
    if (!exists(c.package + "/model.json")) missing = c.package + " missing (scripts/bench.sh)";
    if (c.source != "videotestsrc" && !exists(c.source))
      missing = c.source + " missing (scripts/setup.sh)";
    if (!missing.empty()) {
      ab::skip("pipeline", c.name, missing);
      continue;
    }
    std::vector<ChildResult> comp, source, pipe, baseline_pipe;
    for (int r = 0; r < repeat; ++r) {  // rounds interleaved, so load drifts hit every case
      comp.push_back(in_child([&] { return run_components(c); }));
      source.push_back(in_child([&] { return run_case_pipeline(c, false); }));
      pipe.push_back(in_child([&] { return run_pipeline_then_work(c); }));
      if (!baseline_plugin.empty())
        baseline_pipe.push_back(
            in_child([&] { return run_pipeline_then_work(c, baseline_plugin); }));
    }
    print_case(c.name, comp, source, pipe, c.host_cost_target_ms);
    if (!baseline_plugin.empty())
      print_case(c.name + " (baseline)", comp, source, baseline_pipe, c.host_cost_target_ms);
  }

  if (wanted(only, "streams")) {
    if (!exists(face + "/model.json")) {
      ab::skip("streams", "face-detect", face + " missing");
    } else {
      double one = 0;
      for (int k = 1; k <= max_streams; ++k) {
        Case c{"", face, "decoder=blazeface", "videotestsrc", std::max(30, frames / k)};
        std::string desc;
        for (int i = 0; i < k; ++i)
          desc += source_head(c) + model_chain(c, true) + " ! fakesink sync=false ";
        std::vector<ChildResult> runs;
        for (int r = 0; r < repeat; ++r)
          runs.push_back(in_child([&] {
            init_gst();
            return run_pipeline(desc);
          }));
        Summary s = summarise(runs);
        const std::string name = "face-detect streams=" + std::to_string(k);
        if (!s.ok) {
          ab::skip("streams", name, s.message.substr(0, 160));
          continue;
        }
        if (k == 1) one = s["fps"];
        std::printf(
            "%-8s %-28s %7.1f frames/s total (%.2fx of 1 stream)  cpu %7.3f ms/frame  peak RSS "
            "%6.1f MB  [%d frames per stream, shared instance, median of %d]\n",
            "streams", name.c_str(), s["fps"], one > 0 ? s["fps"] / one : 0.0, s["cpu_ms"],
            s["rss_mb"], c.frames, s.runs);
        std::fflush(stdout);
      }
    }
  }

  if (wanted(only, "memory")) {
    // Resident memory of instances: after loading and running one, then one more of the same
    // package on the same connection (what another stream with shared=false costs).
    std::vector<std::pair<std::string, std::string>> pkgs;
    for (const char *n : {"resnet50", "mobilenetv2", "yolov5s", "yolov8n"})
      pkgs.push_back({n, bench + "/pkg/" + n});
    for (const char *n : {"blazeface-front", "blazeface-back", "ppocr-det", "ppocr-rec"})
      pkgs.push_back({n, data + "/models/" + n});
    for (const auto &[name, dir] : pkgs) {
      const std::string label = "instance " + name;
      if (!exists(dir + "/model.json")) {
        ab::skip("memory", label, dir + " missing");
        continue;
      }
      ChildResult r = in_child([dir = dir] {
        auto ctx = rt::Context::create();
        Values v;
        v["context_mb"] = current_rss_mb();
        auto model = ctx->load_model(dir);
        auto conn = ctx->device_connect(nullptr, 2);
        std::vector<std::vector<int8_t>> in, out;
        std::vector<rt::Argument> ia, oa;
        for (const auto &t : model->inputs()) {
          in.emplace_back(t.size(), int8_t(3));
          ia.push_back({in.back().data(), -1, 0, t.size()});
        }
        for (const auto &t : model->outputs()) {
          out.emplace_back(t.size());
          oa.push_back({out.back().data(), -1, 0, t.size()});
        }
        rt::InstanceOptions options;
        options.aipu_cores = 1;
        options.num_sub_devices = 1;
        auto first = conn->load_model_instance(model, options);
        first->run(ia, oa);
        v["one_mb"] = current_rss_mb();
        auto second = conn->load_model_instance(model, options);
        second->run(ia, oa);
        v["two_mb"] = current_rss_mb();
        return v;
      });
      if (!r.ok) {
        ab::skip("memory", label, r.message.substr(0, 160));
        continue;
      }
      std::printf(
          "%-8s %-28s RSS: context %.1f MB, +first instance %.1f MB, +one more instance %.1f MB, "
          "process peak %.1f MB\n",
          "memory", label.c_str(), r.get("context_mb"), r.get("one_mb") - r.get("context_mb"),
          r.get("two_mb") - r.get("one_mb"), r.maxrss_mb);
      std::fflush(stdout);
    }
  }
  return 0;
}
