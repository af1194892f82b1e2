// Pipeline and memory benchmark. Every case runs in its own child process, so its CPU time
// (user + system, all threads) and peak RSS (ru_maxrss) are its own.
//   engine alone    ModelInstance::run on blazeface-front, N runs (1 core)
//   source only     videotestsrc ! 720p NV12 ! fakesink (the frame source's own cost)
//   face-detect     videotestsrc ! 720p NV12 ! axpreprocess ! axinference ! axdecode ! fakesink
//   streams=K       K such branches in one pipeline, axinference shared=true (one instance)
//   instance RSS    peak RSS of a process that loads one instance of a package and runs it once,
//                   minus that of a process that only creates the Context
// Frames/s and CPU/frame are steady state: from the first frame at a sink to EOS (CPU time of
// the whole process over that interval, all threads). Peak RSS is the child's ru_maxrss.
// overhead % = (pipeline CPU/frame - source CPU/frame - engine CPU/run) / engine CPU/run.
//
//   bench_pipelines     (AXSTREAM_BENCH_FRAMES frames per stream, default 300)
#include <gst/gst.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "axstream/runtime/runtime.h"
#include "bench_common.h"

namespace ab = axstream::bench;
namespace rt = axstream::runtime;

namespace {

// Steady-state interval measured inside the child: from the first frame at a sink (or the first
// run) to the end, so start-up (plugin load, model compile, negotiation) is not counted.
struct Timing {
  double wall_s = -1, cpu_s = 0, frames = 0;
};

struct ChildResult {
  bool ok = false;
  double frames = 0;
  double wall_s = 0;
  double cpu_s = 0;
  double maxrss_mb = 0;
  std::string message;
};

// Runs `body` in a child; body returns its wall seconds (or throws). The parent reads the child's
// rusage.
ChildResult in_child(const std::function<Timing()> &body) {
  int fds[2];
  if (pipe(fds) != 0) return {false, 0, 0, 0, 0, "pipe failed"};
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    std::string msg;
    Timing t;
    try {
      t = body();
      msg = "ok";
    } catch (const std::exception &e) {
      msg = e.what();
    }
    std::string out = std::to_string(t.wall_s) + " " + std::to_string(t.cpu_s) + " " +
                      std::to_string(t.frames) + "\n" + msg;
    if (write(fds[1], out.data(), out.size()) < 0) _exit(3);
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
  auto nl = text.find('\n');
  if (nl == std::string::npos) {
    r.message = "child exited with status " + std::to_string(status);
    return r;
  }
  std::sscanf(text.c_str(), "%lf %lf %lf", &r.wall_s, &r.cpu_s, &r.frames);
  r.message = text.substr(nl + 1);
  r.ok = r.wall_s > 0 && r.frames > 0 && r.message == "ok";
  return r;
}

struct SinkCount {
  std::mutex mutex;
  uint64_t buffers = 0;
  ab::Clock::time_point t0;
  double cpu0 = 0;
};

GstPadProbeReturn count_buffer(GstPad *, GstPadProbeInfo *, gpointer data) {
  auto *c = static_cast<SinkCount *>(data);
  std::lock_guard lock(c->mutex);
  if (c->buffers++ == 0) {
    c->t0 = ab::Clock::now();
    c->cpu0 = ab::cpu_seconds();
  }
  return GST_PAD_PROBE_OK;
}

Timing run_pipeline(const std::string &desc) {
  std::string path = AXSTREAM_PLUGIN_DIR;
  if (const char *old = std::getenv("GST_PLUGIN_PATH")) path += std::string(":") + old;
  setenv("GST_PLUGIN_PATH", path.c_str(), 1);
  gst_init(nullptr, nullptr);
  GError *err = nullptr;
  GstElement *pipeline = gst_parse_launch(desc.c_str(), &err);
  if (!pipeline || err)
    throw std::runtime_error(std::string("parse: ") + (err ? err->message : "failed"));
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
  GstBus *bus = gst_element_get_bus(pipeline);
  GstMessage *msg = gst_bus_timed_pop_filtered(bus, GST_CLOCK_TIME_NONE,
                                               GstMessageType(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  Timing t;
  {
    std::lock_guard lock(count.mutex);
    t.wall_s = std::chrono::duration<double>(ab::Clock::now() - count.t0).count();
    t.cpu_s = ab::cpu_seconds() - count.cpu0;
    t.frames = double(count.buffers) - 1;  // frames after the first one
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
  gst_object_unref(pipeline);
  if (!error.empty()) throw std::runtime_error("pipeline error: " + error);
  return t;
}

std::string branch(const std::string &pkg, int frames, bool shared, bool with_model) {
  std::string s = "videotestsrc num-buffers=" + std::to_string(frames) +
                  " ! video/x-raw,format=NV12,width=1280,height=720,framerate=30/1";
  if (with_model)
    s += " ! axpreprocess model=" + pkg + " ! axinference model=" + pkg +
         (shared ? " shared=true" : "") + " ! axdecode decoder=blazeface";
  return s + " ! fakesink sync=false";
}

Timing engine_alone(const std::string &pkg, int runs) {
  auto ctx = rt::Context::create();
  auto model = ctx->load_model(pkg);
  auto conn = ctx->device_connect(nullptr, 1);
  auto inst = conn->load_model_instance(model, rt::Properties{});
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
  inst->run(ia, oa);  // first run (as the pipelines' first frame) is not counted
  Timing t;
  const double cpu0 = ab::cpu_seconds();
  auto start = ab::Clock::now();
  for (int i = 1; i < runs; ++i) inst->run(ia, oa);
  t.wall_s = std::chrono::duration<double>(ab::Clock::now() - start).count();
  t.cpu_s = ab::cpu_seconds() - cpu0;
  t.frames = runs - 1;
  return t;
}

void line(const char *name, const ChildResult &r, const std::string &extra) {
  if (!r.ok) return ab::skip("pipeline", name, r.message.substr(0, 160));
  std::printf("%-10s %-34s %8.1f frames/s  cpu %7.3f ms/frame  peak RSS %7.1f MB%s\n", "pipeline",
              name, r.frames / r.wall_s, r.cpu_s * 1e3 / r.frames, r.maxrss_mb, extra.c_str());
  std::fflush(stdout);
}

bool exists(const std::string &p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0;
}

}  // namespace

int main() {
  const std::string data = ab::data_dir();
  const char *fv = std::getenv("AXSTREAM_BENCH_FRAMES");
  const int frames = fv && std::atoi(fv) > 0 ? std::atoi(fv) : 300;
  const std::string pkg = data + "/models/blazeface-front";
  std::printf(
      "# pipelines: %d frames per stream, 1280x720 NV12 videotestsrc, blazeface-front "
      "int8; CPU = user+system of the case's process\n",
      frames);
  if (!exists(pkg + "/model.json")) {
    ab::skip("pipeline", "face-detect", pkg + " missing (run scripts/build-demo-models.sh)");
  } else {
    ChildResult engine = in_child([&] { return engine_alone(pkg, frames); });
    line("engine alone (ModelInstance::run)", engine, "");
    ChildResult source = in_child([&] { return run_pipeline(branch(pkg, frames, false, false)); });
    line("source only (videotestsrc)", source, "");
    ChildResult face = in_child([&] { return run_pipeline(branch(pkg, frames, false, true)); });
    std::string extra;
    if (engine.ok && source.ok && face.ok) {
      double e = engine.cpu_s / engine.frames, s = source.cpu_s / source.frames,
             p = face.cpu_s / face.frames;
      char buf[160];
      std::snprintf(buf, sizeof buf, "  | engine %.3f ms/run: overhead %.1f%% CPU, fps ratio %.2f",
                    e * 1e3, (p - s - e) / e * 100.0,
                    (face.frames / face.wall_s) / (engine.frames / engine.wall_s));
      extra = buf;
    }
    line("face-detect", face, extra);
    double one_fps = 0;
    for (int k = 1; k <= 4; ++k) {
      std::string desc;
      for (int i = 0; i < k; ++i) desc += branch(pkg, frames, true, true) + " ";
      ChildResult r = in_child([&] { return run_pipeline(desc); });
      std::string name = "face-detect streams=" + std::to_string(k) + " shared";
      std::string x;
      if (r.ok) {
        double fps = r.frames / r.wall_s;
        if (k == 1) one_fps = fps;
        char buf[96];
        std::snprintf(buf, sizeof buf, "  | total %.1f frames/s, %.2fx of 1 stream", fps,
                      one_fps > 0 ? fps / one_fps : 0.0);
        x = buf;
      }
      line(name.c_str(), r, x);
    }
  }
  // Memory per model instance.
  ChildResult base = in_child([] {
    auto ctx = rt::Context::create();
    return Timing{1, 0, 1};
  });
  const char *bm = std::getenv("AXSTREAM_BENCH_MODELS");
  const std::string bench = bm ? bm : data + "/bench";
  std::vector<std::pair<std::string, std::string>> pkgs;
  for (const char *n : {"resnet50", "mobilenetv2", "yolov5s", "yolov8n"})
    pkgs.push_back({n, bench + "/pkg/" + n});
  for (const char *n : {"blazeface-front", "blazeface-back", "ppocr-det", "ppocr-rec"})
    pkgs.push_back({n, data + "/models/" + n});
  for (const auto &[name, dir] : pkgs) {
    std::string label = "instance RSS " + name;
    if (!exists(dir + "/model.json")) {
      ab::skip("memory", label, dir + " missing");
      continue;
    }
    ChildResult r = in_child([&] { return engine_alone(dir, 2); });
    if (!r.ok || !base.ok) {
      ab::skip("memory", label, r.message.substr(0, 160));
      continue;
    }
    std::printf("%-10s %-34s peak RSS %7.1f MB (context-only process %.1f MB, instance +%.1f MB)\n",
                "memory", label.c_str(), r.maxrss_mb, base.maxrss_mb, r.maxrss_mb - base.maxrss_mb);
    std::fflush(stdout);
  }
  return 0;
}
