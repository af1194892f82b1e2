/**
 * SECTION:element-axinference
 * @title: axinference
 *
 * Runs the input tensors axpreprocess attached to each video buffer (GstAxTensorMeta of kind
 * GST_AX_TENSOR_INPUT for this model, one per frame or per ROI) through a ModelInstance on an
 * Axelera device, and attaches the raw device outputs (padded int8, one fd memory per output
 * tensor from a buffer pool) as a GstAxTensorMeta of kind GST_AX_TENSOR_OUTPUT with the same
 * geometry and ROI id. The video buffer itself passes unchanged.
 *
 * Inference is asynchronous: up to max-inflight frames are queued for the device or on it at
 * once (the instance computes one at a time, two with double-buffer; a batch > 1 package gathers
 * them into batches), and they go downstream in their original order, with serialized events
 * kept in place: the run thread that finishes the oldest frame pushes it and whatever finished
 * behind it, while another run thread keeps the device busy. A push thread sends what no run
 * thread does: events behind frames already gone, and every frame of a batch > 1 package or
 * when max-inflight leaves no run thread to spare.
 * EOS is forwarded after the last frame finishes; flushing seeks drop the frames in flight (the
 * caps and other sticky events queued behind them are kept for the stream after the seek). A
 * frame downstream refuses after upstream's EOS (not-linked, not-negotiated) is an element error
 * here, since upstream, which posts such errors, no longer pushes.
 * The latency query adds the steady inference time: the longest of the last 64 runs, not
 * counting the first (warm-up) run, so nothing before the second frame. When a run takes longer
 * than the latency last reported, the element posts a latency message and the pipeline queries
 * again. With shared=true, every axinference in the process with the same model, device and
 * instance options uses one ModelInstance, so several streams feed one device. fd memory goes to
 * the device as fds (zero-copy) when `dmabuf` is on.
 *
 * Frames axpreprocess's `inference-interval` skipped (marked `ax-inference-skipped`, no input
 * tensor) are not run and pass on without the missing-tensor warning, as do a cascade second
 * stage's frames when the first stage was skipped; they keep their place in the stream, so they
 * wait only for frames ahead of them still on the device. No interval property is needed here.
 *
 * A package compiled with batch N > 1 (`axcompile --batch N`) runs whole batches: axpreprocess
 * makes one item per frame or ROI, and the instance's batch collector copies up to N items (of
 * any stream, with shared=true) into one batch run, waiting at most `batch-timeout` for a batch
 * to fill; each frame gets back its own items of the outputs (shared from the batch output, no
 * copy), so results never mix between streams. `batch-runs` and `batch-fill` report how full the
 * runs were (also logged at INFO when the element stops).
 *
 * |[
 * gst-launch-1.0 videotestsrc num-buffers=100 ! video/x-raw,width=320,height=240 ! \
 *   axpreprocess model=build/tests/data/models/resnet_tiny ! \
 *   axinference model=build/tests/data/models/resnet_tiny max-inflight=4 ! fakesink
 * gst-launch-1.0 filesrc \
 *   location=~/.cache/axstream/opencv-doc/usr/share/doc/opencv-doc/examples/data/Megamind.avi ! \
 *   decodebin ! videoconvert ! \
 *   axpreprocess model=~/.cache/axstream/models/blazeface-front ! \
 *   axinference model=~/.cache/axstream/models/blazeface-front aipu-cores=1 ! \
 *   axdecode decoder=blazeface ! axoverlay ! videoconvert ! autovideosink
 * gst-launch-1.0 \
 *   videotestsrc num-buffers=50 ! axpreprocess model=build/tests/data/models/resnet_tiny_b4 ! \
 *   axinference model=build/tests/data/models/resnet_tiny_b4 shared=true ! fakesink \
 *   videotestsrc num-buffers=50 pattern=ball ! \
 *   axpreprocess model=build/tests/data/models/resnet_tiny_b4 ! \
 *   axinference model=build/tests/data/models/resnet_tiny_b4 shared=true ! fakesink
 * ]|
 */
#include "gstaxinference.h"

#include <gst/allocators/gstfdmemory.h>
#include <gst/video/video.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ax_batch_collector.h"
#include "ax_field_properties.h"
#include "ax_latency_window.h"
#include "ax_live_check.h"
#include "ax_refused_caps.h"
#include "axstream/gst/axresultmeta.h"
#include "axstream/gst/axtensormeta.h"
#include "axstream/gst/axtensorpool.h"
#include "axstream/runtime/runtime.h"

GST_DEBUG_CATEGORY_STATIC(gst_ax_inference_debug);
#define GST_CAT_DEFAULT gst_ax_inference_debug

namespace rt = axstream::runtime;

#define DEFAULT_PROP_MODEL nullptr
#define DEFAULT_PROP_DEVICE nullptr
#define DEFAULT_PROP_AIPU_CORES 0
#define DEFAULT_PROP_NUM_SUB_DEVICES 1
#define DEFAULT_PROP_DOUBLE_BUFFER FALSE
#define DEFAULT_PROP_MAX_INFLIGHT 4
#define DEFAULT_PROP_SHARED FALSE
#define DEFAULT_PROP_DMABUF TRUE
#define DEFAULT_PROP_BATCH_TIMEOUT 5000

enum {
  PROP_0,
  PROP_MODEL,
  PROP_DEVICE,
  PROP_AIPU_CORES,
  PROP_NUM_SUB_DEVICES,
  PROP_DOUBLE_BUFFER,
  PROP_MAX_INFLIGHT,
  PROP_SHARED,
  PROP_DMABUF,
  PROP_BYTES_COPIED,
  PROP_BATCH_TIMEOUT,
  PROP_BATCH_RUNS,
  PROP_BATCH_FILL,
};

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
                            GST_STATIC_CAPS("video/x-raw; video/x-raw(memory:DMABuf)"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("video/x-raw; video/x-raw(memory:DMABuf)"));

namespace {

// One device instance and everything that keeps it alive. With shared=true one of these serves
// every element with the same key in the process.
struct DeviceInstance {
  std::shared_ptr<rt::Context> context;
  std::shared_ptr<rt::Connection> connection;
  std::shared_ptr<rt::Model> model;
  std::shared_ptr<rt::ModelInstance> instance;
  // Batch > 1 packages: gathers the frames of every element using this instance into batches.
  std::unique_ptr<axstream::gst::BatchCollector> collector;
  ~DeviceInstance() {
    collector.reset();  // joins its thread before the instance goes
    if (context) context->release();
  }
};

struct InstanceRequest {
  std::string model;
  std::string device;  // "" = any
  int aipu_cores = 0;
  int num_sub_devices = 1;
  bool double_buffer = false;
  bool dmabuf = true;
  std::string key() const {
    gchar *canonical = g_canonicalize_filename(model.c_str(), nullptr);
    std::string path = canonical;
    g_free(canonical);
    if (g_str_has_suffix(path.c_str(), "/model.json")) path.resize(path.size() - 11);
    return path + "|" + device + "|" + std::to_string(aipu_cores) + "|" +
           std::to_string(num_sub_devices) + "|" + std::to_string(double_buffer) + "|" +
           std::to_string(dmabuf);
  }
};

std::shared_ptr<DeviceInstance> create_instance(const InstanceRequest &request) {
  auto d = std::make_shared<DeviceInstance>();
  d->context = rt::Context::create();
  d->model = d->context->load_model(request.model);
  std::optional<rt::DeviceInfo> device;
  if (!request.device.empty()) {
    std::string names;
    for (const auto &info : d->context->list_devices()) {
      if (info.name == request.device) device = info;
      names += (names.empty() ? "" : ", ") + info.name;
    }
    if (!device)
      throw axstream::InvalidArgument("device '" + request.device +
                                      "' not found: expected one of " + names);
  }
  // aipu-cores beyond num-sub-devices reserves that many, so "aipu-cores=2" alone runs; with
  // num_sub_devices unset the runtime runs the batch over aipu_cores cores.
  d->connection = d->context->device_connect(
      device ? &*device : nullptr, std::max({1, request.num_sub_devices, request.aipu_cores}));
  rt::InstanceOptions options;
  options.aipu_cores = request.aipu_cores;
  options.num_sub_devices = request.aipu_cores ? 0 : request.num_sub_devices;
  options.double_buffer = request.double_buffer;
  options.input_dmabuf = request.dmabuf;
  options.output_dmabuf = request.dmabuf;
  d->instance = d->connection->load_model_instance(d->model, options);
  const auto inputs = d->model->inputs();
  if (!inputs.empty() && !inputs[0].shape.empty() && inputs[0].shape[0] > 1)
    d->collector = std::make_unique<axstream::gst::BatchCollector>(
        d->instance, inputs, d->model->outputs(), request.dmabuf, request.model);
  return d;
}

// Process-wide registry of shared instances (refcounted by the elements holding them).
std::shared_ptr<DeviceInstance> acquire_instance(const InstanceRequest &request, bool shared) {
  if (!shared) return create_instance(request);
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<DeviceInstance>> registry;
  std::lock_guard<std::mutex> lock(mutex);
  const std::string key = request.key();
  if (auto existing = registry[key].lock()) return existing;
  auto created = create_instance(request);
  registry[key] = created;
  return created;
}

// Named by the creator, as soon as it exists: named by itself, a thread not yet scheduled (a
// loaded machine) carries its creator's name for a while, and whoever lists the threads (top,
// the tests counting them) sees it late or not at all.
void name_thread(std::thread &thread, const std::string &name) {
  pthread_setname_np(thread.native_handle(), name.substr(0, 15).c_str());
}

// A buffer (or serialized event) on its way through the element, in stream order.
struct Item {
  GstBuffer *buffer = nullptr;
  GstEvent *event = nullptr;
  bool done = false;
  std::string error;  // runtime message when the inference failed
  ~Item() {
    if (buffer) gst_buffer_unref(buffer);
    if (event) gst_event_unref(event);
  }
};

}  // namespace

// C++ state, created in _init and deleted in finalize.
struct GstAxInferenceState {
  // Written only by state changes (open_device, the stop in change_state), under `device_mutex`.
  // The streaming, run and push threads read it freely: they run only between READY->PAUSED and
  // the pads' deactivation and stop_threads on the way down, both before it is dropped. Threads
  // a state change does not stop (the batch-runs/batch-fill getters) read it under
  // `device_mutex`: unlocked, a getter could read the pointer while it was replaced and call
  // into the BatchCollector the last reference was destroying (the audit in reliability.md).
  std::shared_ptr<DeviceInstance> device;
  std::mutex device_mutex;
  void set_device(std::shared_ptr<DeviceInstance> replacement) {
    {
      std::lock_guard<std::mutex> lock(device_mutex);
      device.swap(replacement);
    }
    // The old instance (its collector joins a thread, the context releases the cores) is
    // destroyed here, outside the lock, so a getter never waits for that.
  }
  std::vector<rt::TensorInfo> inputs, outputs;
  std::string model_key;  // canonical package path, to match input metas
  GstBufferPool *output_pool = nullptr;
  GstBufferPool *staging_pool = nullptr;  // fd copies of non-fd inputs when dmabuf is on
  std::mutex staging_mutex;
  bool dmabuf = true;
  int max_inflight = DEFAULT_PROP_MAX_INFLIGHT;
  guint batch_timeout_us = DEFAULT_PROP_BATCH_TIMEOUT;

  std::mutex mutex;
  // One condition per kind of waiter, so a state change wakes only the threads that can act on
  // it (a single shared condition woke every runner, the pusher and the chain on each change).
  std::condition_variable work_ready;  // runners: `work` not empty
  std::condition_variable push_ready;  // pusher: the front of `order` is done, nobody pushing
  std::condition_variable space;       // chain and drain queries: fewer in flight, order empty
  std::condition_variable push_ended;  // FLUSH_START: the push under way has returned
  void wake_everyone() {
    work_ready.notify_all();
    push_ready.notify_all();
    space.notify_all();
    push_ended.notify_all();
  }
  std::deque<std::shared_ptr<Item>> order;  // everything not yet pushed, in stream order
  // Sticky events (caps, tags, ...) a flush dropped from `order`: upstream does not send them
  // again, so they are stored on the source pad at FLUSH_STOP for the stream after it.
  std::vector<std::shared_ptr<Item>> sticky_at_flush;
  std::deque<std::shared_ptr<Item>> work;  // buffers waiting for a runner
  int inflight = 0;                        // buffers in `order`
  // A thread (the pusher or a runner) holds an item taken from `order` (wakes `push_ended` when
  // done): one pushes at a time, so frames leave in order. `pushing_thread` is that thread.
  bool pushing = false;
  std::thread::id pushing_thread;
  // Runners push the frames they finish (push_done_items) instead of waking the push thread:
  // one wake-up and hand-off less per frame. Only with a runner to spare: the others keep the
  // instance busy while one pushes (with max-inflight at most concurrent_runs(), the push thread
  // pushes, so the next frame still runs meanwhile). Not with a batch collector either, whose
  // runners wait for each other to fill a batch: one pushing would leave the batch an item short.
  bool runners_push = false;
  bool flushing = false;
  bool stopping = false;
  uint64_t generation = 0;  // bumped by each flush
  GstFlowReturn downstream = GST_FLOW_OK;
  // Whether a chain call returned `downstream` to upstream, which then posts the error itself.
  bool downstream_returned = false;
  bool warned_no_tensor = false;
  // Frames with objects (ROI metas) and no input of ours since start or the last EOS, and whether
  // any frame had one: axpreprocess roi=objects leaves out objects its object-class or
  // max-objects does not select, so such a frame is no mistake unless none ever has an input
  // (warned about at EOS). Under `mutex`.
  uint64_t frames_with_objects_only = 0;
  // The labels of those frames' objects (the first few), for the warning: an object-class that
  // names none of them is the likely mistake, one that names a label not seen yet is not.
  std::vector<std::string> object_labels_seen;
  std::atomic<bool> had_input{false};
  // Those frames counted towards deciding it without an EOS (a live source). Under `mutex`.
  axstream::gst::LiveCheck objects_live_check;
  // Why queued frames must not wait for a full batch (see update_drain): an EOS not yet pushed,
  // a drain query waiting, a flush or shutdown under way. `draining`: the collector was told.
  bool drain_eos = false, drain_query = false, drain_flush = false;
  bool draining = false;
  // Recent inference times (warm-up run excluded): what the latency query reports. Under its own
  // mutex: every run records one, and taking `mutex` for it contended with the chain and the
  // other runner once more per frame.
  std::mutex latency_mutex;
  axstream::gst::LatencyWindow run_latency;
  std::atomic<uint64_t> bytes_copied{0};  // tensor bytes this element copied (staging)

  std::vector<std::thread> runners;
  std::thread pusher;

  void release_pools() {
    for (GstBufferPool **pool : {&output_pool, &staging_pool})
      if (*pool) {
        gst_buffer_pool_set_active(*pool, FALSE);
        gst_object_unref(*pool);
        *pool = nullptr;
      }
  }
};

struct _GstAxInference {
  GstElement parent;
  GstPad *sinkpad;
  GstPad *srcpad;
  gchar *model;
  gchar *device;
  gint aipu_cores;
  gint num_sub_devices;
  gboolean double_buffer;
  guint max_inflight;
  gboolean shared;
  gboolean dmabuf;
  guint batch_timeout;
  GstAxInferenceState *state;
};

G_DEFINE_TYPE(GstAxInference, gst_ax_inference, GST_TYPE_ELEMENT);
GST_ELEMENT_REGISTER_DEFINE(axinference, "axinference", GST_RANK_NONE, GST_TYPE_AX_INFERENCE);

// The properties kept as fields of the instance (ax_field_properties.h).
static constexpr axstream::gst::FieldProperty<GstAxInference> kFieldProperties[] = {
    {PROP_MODEL, &GstAxInference::model},
    {PROP_DEVICE, &GstAxInference::device},
    {PROP_AIPU_CORES, &GstAxInference::aipu_cores},
    {PROP_NUM_SUB_DEVICES, &GstAxInference::num_sub_devices},
    {PROP_DOUBLE_BUFFER, &GstAxInference::double_buffer},
    {PROP_MAX_INFLIGHT, &GstAxInference::max_inflight},
    {PROP_SHARED, &GstAxInference::shared},
    {PROP_DMABUF, &GstAxInference::dmabuf},
    {PROP_BATCH_TIMEOUT, &GstAxInference::batch_timeout},
};

static std::string canonical_package(const char *path) {
  if (!path) return {};
  gchar *canonical = g_canonicalize_filename(path, nullptr);
  std::string out = canonical;
  g_free(canonical);
  if (g_str_has_suffix(out.c_str(), "/model.json")) out.resize(out.size() - 11);
  return out;
}

// One tensor argument for run(): the fd when the instance takes fds (copying non-fd memory into a
// pooled fd buffer first), else a mapped pointer. Owns what it maps or acquires.
class TensorArgument {
 public:
  TensorArgument(GstMemory *memory, bool as_fd, bool writable, GstBufferPool *staging,
                 size_t staging_index, std::atomic<uint64_t> *bytes_copied)
      : memory_(gst_memory_ref(memory)) {
    if (as_fd && gst_is_fd_memory(memory)) {
      argument_.fd = gst_fd_memory_get_fd(memory);
      argument_.offset = size_t(memory->offset);
      argument_.size = gst_memory_get_sizes(memory, nullptr, nullptr);
      return;
    }
    if (as_fd) {
      // The instance takes fds; an app handed us heap memory: one counted copy into fd memory.
      if (!staging || gst_buffer_pool_acquire_buffer(staging, &staging_, nullptr) != GST_FLOW_OK)
        throw axstream::InternalError("no fd staging buffer for a non-fd input tensor");
      GstMemory *fd_memory = gst_buffer_peek_memory(staging_, guint(staging_index));
      GstMapInfo src, dst;
      if (!gst_memory_map(memory, &src, GST_MAP_READ))
        throw axstream::InternalError("cannot map an input tensor for reading");
      if (!gst_memory_map(fd_memory, &dst, GST_MAP_WRITE)) {
        gst_memory_unmap(memory, &src);
        throw axstream::InternalError("cannot map an fd staging tensor for writing");
      }
      memcpy(dst.data, src.data, std::min(src.size, dst.size));
      if (bytes_copied) *bytes_copied += std::min(src.size, dst.size);
      gst_memory_unmap(fd_memory, &dst);
      gst_memory_unmap(memory, &src);
      argument_.fd = gst_fd_memory_get_fd(fd_memory);
      argument_.offset = size_t(fd_memory->offset);
      argument_.size = src.size;
      return;
    }
    if (!gst_memory_map(memory, &map_, writable ? GST_MAP_READWRITE : GST_MAP_READ))
      throw axstream::InternalError("cannot map a tensor memory");
    mapped_ = true;
    argument_.ptr = map_.data;
    argument_.size = map_.size;
  }
  ~TensorArgument() {
    if (mapped_) gst_memory_unmap(memory_, &map_);
    if (staging_) gst_buffer_unref(staging_);
    gst_memory_unref(memory_);
  }
  TensorArgument(const TensorArgument &) = delete;
  TensorArgument &operator=(const TensorArgument &) = delete;
  const rt::Argument &argument() const { return argument_; }

 private:
  GstMemory *memory_;
  GstMapInfo map_{};
  bool mapped_ = false;
  GstBuffer *staging_ = nullptr;
  rt::Argument argument_;
};

// Counts one run in the reported latency; when that grew beyond what the last latency query
// was told, tells the pipeline to query again (a live pipeline otherwise keeps a latency its
// frames now exceed, and its sink drops them as late), as GStreamer elements do.
static void record_latency(GstAxInference *self, std::chrono::steady_clock::duration took) {
  bool grew;
  std::chrono::nanoseconds steady;
  {
    std::lock_guard<std::mutex> lock(self->state->latency_mutex);
    grew =
        self->state->run_latency.record(std::chrono::duration_cast<std::chrono::nanoseconds>(took));
    steady = self->state->run_latency.steady();
  }
  if (!grew) return;
  GST_INFO_OBJECT(self, "inference latency grew to %" GST_TIME_FORMAT ": posting a latency message",
                  GST_TIME_ARGS(GstClockTime(steady.count())));
  gst_element_post_message(GST_ELEMENT(self), gst_message_new_latency(GST_OBJECT(self)));
}

// Whether axpreprocess skipped `buffer` (inference-interval) for this element's model, or for a
// whole-frame model upstream of it.
static bool skipped_for(GstAxInference *self, GstBuffer *buffer) {
  const GstMetaInfo *info = gst_ax_inference_skipped_meta_get_info();
  gpointer iter = nullptr;
  while (GstMeta *meta = gst_buffer_iterate_meta_filtered(buffer, &iter, info->api)) {
    const GstStructure *marker =
        gst_custom_meta_get_structure(reinterpret_cast<GstCustomMeta *>(meta));
    const gchar *model = gst_structure_get_string(marker, "model");
    if (g_strcmp0(gst_structure_get_string(marker, "roi"), "frame") == 0 ||
        g_strcmp0(model, self->model) == 0 || canonical_package(model) == self->state->model_key)
      return true;
  }
  return false;
}

// A frame's tensor metas: the inputs for our model, other models' inputs and the outputs of
// models already run.
struct FrameTensorMetas {
  std::vector<GstAxTensorMeta *> inputs;
  std::vector<const GstAxTensorMeta *> other_inputs, output_metas;
};

static FrameTensorMetas frame_tensor_metas(GstAxInference *self, GstBuffer *buffer) {
  GstAxInferenceState *state = self->state;
  FrameTensorMetas metas;
  gpointer iter = nullptr;
  GstMeta *meta;
  while ((meta = gst_buffer_iterate_meta_filtered(buffer, &iter, GST_AX_TENSOR_META_API_TYPE))) {
    auto *m = reinterpret_cast<GstAxTensorMeta *>(meta);
    if (m->kind == GST_AX_TENSOR_OUTPUT) {
      metas.output_metas.push_back(m);
      continue;
    }
    // The same path string as our property is the usual case: no per-frame canonicalisation.
    if (m->tensors && (!m->model || g_strcmp0(m->model, self->model) == 0 ||
                       canonical_package(m->model) == state->model_key))
      metas.inputs.push_back(m);
    else
      metas.other_inputs.push_back(m);
  }
  return metas;
}

static constexpr size_t kObjectLabelsShown = 8;

static void note_object_labels(GstAxInferenceState *state, GstBuffer *buffer) {
  gpointer iter = nullptr;
  while (state->object_labels_seen.size() < kObjectLabelsShown) {
    GstMeta *meta =
        gst_buffer_iterate_meta_filtered(buffer, &iter, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE);
    if (!meta) break;
    const gchar *label =
        g_quark_to_string(reinterpret_cast<GstVideoRegionOfInterestMeta *>(meta)->roi_type);
    const std::string text = label ? label : "";
    if (std::find(state->object_labels_seen.begin(), state->object_labels_seen.end(), text) ==
        state->object_labels_seen.end())
      state->object_labels_seen.push_back(text);
  }
}

// What the "ran nothing: frames had objects" check counts, for a new stream (EOS, or a stop).
static void reset_object_counts(GstAxInferenceState *state) {
  state->frames_with_objects_only = 0;
  state->object_labels_seen.clear();
  state->objects_live_check.reset();
  state->had_input = false;
}

// "person, car": the labels noted, for a warning.
static std::string object_labels_text(const GstAxInferenceState *state) {
  std::string text;
  for (const std::string &label : state->object_labels_seen)
    text += (text.empty() ? "'" : ", '") + label + "'";
  return text;
}

// `frames` frames had objects and none an input tensor of ours, decided at the EOS or, for a
// live source, after LiveCheck's bound (`when` says which): no axpreprocess roi=objects
// upstream, or an object-class naming none of the `labels` seen.
static void warn_objects_never_run(GstAxInference *self, uint64_t frames, const std::string &labels,
                                   const char *when) {
  GST_ELEMENT_WARNING(self, STREAM, FORMAT,
                      ("axinference ran nothing: %" G_GUINT64_FORMAT
                       " frames had objects (labels %s) and none carried an input tensor for "
                       "model '%s' (is axpreprocess model=%s roi=objects upstream, and does its "
                       "object-class name the objects' labels?)",
                       frames, labels.c_str(), self->model, self->model),
                      ("ROI metas without an input GstAxTensorMeta of this model %s", when));
}

// A frame without an input for our model (and not skipped by inference-interval), warned
// about once. Another model's input tensor that no axinference ran (no output of that model
// for that ROI on the frame) is a misconfiguration: axpreprocess and axinference name
// different packages. Inputs that were run are a cascade's first stage, and a frame where it
// found no object leaves the second stage nothing to crop: nothing to warn about.
static void warn_no_input_tensor(GstAxInference *self, GstBuffer *buffer,
                                 const FrameTensorMetas &metas) {
  GstAxInferenceState *state = self->state;
  std::lock_guard<std::mutex> lock(state->mutex);
  if (state->warned_no_tensor) return;
  const GstAxTensorMeta *not_run = nullptr;
  for (const GstAxTensorMeta *input : metas.other_inputs) {
    bool run = false;
    for (const GstAxTensorMeta *output : metas.output_metas)
      run = run || (output->roi_id == input->roi_id &&
                    (g_strcmp0(output->model, input->model) == 0 ||
                     canonical_package(output->model) == canonical_package(input->model)));
    if (!run) {
      not_run = input;
      break;
    }
  }
  const bool has_objects = gst_buffer_get_meta(buffer, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE);
  const bool no_objects_in_cascade =
      !(metas.other_inputs.empty() && metas.output_metas.empty()) && !not_run && !has_objects;
  if (!not_run && has_objects) {
    // Objects axpreprocess roi=objects may have left out: decided at EOS (push_done_items,
    // when the EOS leaves), or, for a stream that may not end (a live source), once enough
    // such frames came without any input of ours.
    state->frames_with_objects_only++;
    note_object_labels(state, buffer);
    if (state->objects_live_check.due(buffer) && !state->had_input) {
      state->warned_no_tensor = true;
      warn_objects_never_run(self, state->frames_with_objects_only, object_labels_text(state),
                             "on the first frames of a stream without an EOS yet (live)");
    }
    return;
  }
  if (not_run) {
    state->warned_no_tensor = true;
    GST_ELEMENT_WARNING(self, STREAM, FORMAT,
                        ("a frame has no input tensor for model '%s', only one for model '%s' "
                         "that no axinference ran: do axpreprocess and axinference name the same "
                         "package?",
                         self->model, GST_STR_NULL(not_run->model)),
                        ("input GstAxTensorMeta of '%s' (roi %d) on %" GST_PTR_FORMAT
                         " and no output of it; frames pass without outputs",
                         GST_STR_NULL(not_run->model), not_run->roi_id, buffer));
  } else if (!no_objects_in_cascade) {
    state->warned_no_tensor = true;
    GST_ELEMENT_WARNING(self, STREAM, FORMAT,
                        ("a frame has no input tensor for model '%s'", self->model),
                        ("no GstAxTensorMeta of kind INPUT for this model on %" GST_PTR_FORMAT
                         "; is axpreprocess model=%s upstream? Frames pass without outputs",
                         buffer, self->model));
  }
}

// Batch > 1: every tensor set of this frame joins the instance's next batches (with other
// streams' frames when shared); each comes back as its own item of the outputs.
static void run_batched(GstAxInference *self, GstBuffer *buffer,
                        axstream::gst::BatchCollector &collector,
                        const std::vector<GstAxTensorMeta *> &inputs) {
  GstAxInferenceState *state = self->state;
  std::vector<GstBuffer *> items;
  for (GstAxTensorMeta *input : inputs) items.push_back(input->tensors);
  const auto start = std::chrono::steady_clock::now();
  std::vector<GstBuffer *> outputs = collector.run_items(
      items, std::chrono::microseconds(state->batch_timeout_us), &state->bytes_copied);
  record_latency(self, std::chrono::steady_clock::now() - start);
  for (size_t i = 0; i < inputs.size(); ++i) {
    gst_buffer_add_ax_tensor_meta(buffer, GST_AX_TENSOR_OUTPUT, self->model, inputs[i]->roi_id,
                                  &inputs[i]->transform, outputs[i]);
    gst_buffer_unref(outputs[i]);
  }
}

// One input tensor set through the instance into a pooled output buffer, attached to the
// frame as our model's output for that ROI.
static void run_input(GstAxInference *self, GstBuffer *buffer, GstAxTensorMeta *input) {
  GstAxInferenceState *state = self->state;
  const guint n_in = gst_buffer_n_memory(input->tensors);
  if (n_in != state->inputs.size())
    throw axstream::InvalidArgument("input tensor meta of model '" + std::string(self->model) +
                                    "' holds " + std::to_string(n_in) + " tensors: expected " +
                                    std::to_string(state->inputs.size()));
  GstBuffer *outputs = nullptr;
  if (gst_buffer_pool_acquire_buffer(state->output_pool, &outputs, nullptr) != GST_FLOW_OK)
    throw axstream::InternalError("no output tensor buffer from the pool");
  try {
    const guint n_out = gst_buffer_n_memory(outputs);
    // One allocation for all of them (a heap object each was ~5 more per frame).
    std::vector<std::optional<TensorArgument>> held(n_in + n_out);
    std::vector<rt::Argument> in_args, out_args;
    in_args.reserve(n_in);
    out_args.reserve(n_out);
    for (guint i = 0; i < n_in; ++i) {
      held[i].emplace(gst_buffer_peek_memory(input->tensors, i), state->dmabuf, false,
                      state->staging_pool, i, &state->bytes_copied);
      in_args.push_back(held[i]->argument());
    }
    for (guint i = 0; i < n_out; ++i) {
      held[n_in + i].emplace(gst_buffer_peek_memory(outputs, i), state->dmabuf, true, nullptr, 0,
                             nullptr);
      out_args.push_back(held[n_in + i]->argument());
    }
    const auto start = std::chrono::steady_clock::now();
    state->device->instance->run(in_args, out_args);
    record_latency(self, std::chrono::steady_clock::now() - start);
  } catch (...) {
    gst_buffer_unref(outputs);
    throw;
  }
  gst_buffer_add_ax_tensor_meta(buffer, GST_AX_TENSOR_OUTPUT, self->model, input->roi_id,
                                &input->transform, outputs);
  gst_buffer_unref(outputs);
}

// Runs every matching input meta of `buffer`; throws the runtime's error.
static void infer_buffer(GstAxInference *self, GstBuffer *buffer) {
  GstAxInferenceState *state = self->state;
  FrameTensorMetas metas = frame_tensor_metas(self, buffer);
  if (!metas.inputs.empty() && !state->had_input.load(std::memory_order_relaxed))
    state->had_input = true;
  if (metas.inputs.empty()) {
    // axpreprocess inference-interval skipped this frame for our model (or a first stage's
    // skip left a cascade's second stage nothing to crop): passed on as it is, nothing to warn.
    if (!skipped_for(self, buffer)) warn_no_input_tensor(self, buffer, metas);
    return;
  }
  if (axstream::gst::BatchCollector *collector = state->device->collector.get()) {
    run_batched(self, buffer, *collector, metas.inputs);
    return;
  }
  for (GstAxTensorMeta *input : metas.inputs) run_input(self, buffer, input);
}

// While an EOS, a drain query or a flush/shutdown waits for this element's queued frames, a
// batch > 1 instance's collector runs partial batches at once: the frames will get no company,
// and waiting batch-timeout (which may be long) would hold up the end of the stream, a seek or a
// state change. With state->mutex held, after changing a drain_* flag.
static void update_drain(GstAxInferenceState *state) {
  const bool wanted = state->drain_eos || state->drain_query || state->drain_flush;
  if (wanted == state->draining || !state->device || !state->device->collector) return;
  state->draining = wanted;
  if (wanted)
    state->device->collector->begin_drain();
  else
    state->device->collector->end_drain();
}

static void push_done_items(GstAxInference *self, std::unique_lock<std::mutex> &lock);

static void runner_loop(GstAxInference *self, int index) {
  GstAxInferenceState *state = self->state;
  std::unique_lock<std::mutex> lock(state->mutex);
  for (;;) {
    state->work_ready.wait(lock, [&] { return state->stopping || !state->work.empty(); });
    if (state->stopping) return;
    std::shared_ptr<Item> item = state->work.front();
    state->work.pop_front();
    lock.unlock();
    std::string error;
    try {
      infer_buffer(self, item->buffer);
    } catch (const std::exception &e) {
      error = e.what();
    }
    lock.lock();
    item->error = std::move(error);
    item->done = true;
    // Only the front item lets pushing go on (a flush may have emptied `order` meanwhile); a
    // thread pushing already takes it after its own push.
    if (state->order.empty() || item != state->order.front() || state->pushing) continue;
    item.reset();
    if (state->runners_push)
      push_done_items(self, lock);
    else
      state->push_ready.notify_one();
  }
}

// Pushes the front of `order` while it is done, in order, from the calling thread (a runner
// that just finished it, or the push thread), which holds the pushing role meanwhile. With
// state->mutex held through `lock`; returns with it held.
static void push_done_items(GstAxInference *self, std::unique_lock<std::mutex> &lock) {
  GstAxInferenceState *state = self->state;
  while (!state->stopping && !state->pushing && !state->order.empty() &&
         state->order.front()->done) {
    std::shared_ptr<Item> item = state->order.front();
    state->order.pop_front();
    // Every frame before the EOS is done: later batches may wait for a full batch again.
    GstFlowReturn untold = GST_FLOW_OK;
    uint64_t objects_never_run = 0;
    std::string labels_never_run;
    if (item->event && GST_EVENT_TYPE(item->event) == GST_EVENT_EOS) {
      state->drain_eos = false;
      update_drain(state);
      if (!state->had_input && !state->warned_no_tensor)
        objects_never_run = state->frames_with_objects_only;
      labels_never_run = object_labels_text(state);
      reset_object_counts(state);
      // After its EOS upstream pushes no frame that could return a fatal flow return of this
      // element's pushes to it, so nobody would post it (queue's rule: not-linked or worse;
      // GST_FLOW_ERROR comes with the error message of whoever returned it, our inference
      // failures included).
      const GstFlowReturn failed = state->downstream;
      if ((failed == GST_FLOW_NOT_LINKED || (failed < GST_FLOW_EOS && failed != GST_FLOW_ERROR)) &&
          !state->downstream_returned) {
        untold = failed;
        state->downstream_returned = true;
      }
    }
    const uint64_t generation = state->generation;
    // Downstream refused a frame before this one (since the last flush): it would refuse this
    // one too, and an element posting an error per frame (axdecode on outputs it cannot decode)
    // would post it once more per frame in flight. Upstream gets that flow return at its next
    // push and stops, as from queue; events still go on (an EOS after downstream's EOS ends the
    // stream).
    const GstFlowReturn refused = state->downstream;
    if (item->buffer) state->inflight--;
    state->pushing = true;
    state->pushing_thread = std::this_thread::get_id();
    lock.unlock();
    // After unlocking: a chain woken while the mutex is still held blocks on it at once, one
    // more sleep and wake-up per frame.
    state->space.notify_all();

    if (objects_never_run > 0)
      warn_objects_never_run(self, objects_never_run, labels_never_run,
                             "on every frame before the EOS; frames passed without outputs");
    if (untold != GST_FLOW_OK)
      GST_ELEMENT_ERROR(self, STREAM, FAILED,
                        ("axinference could not hand frames of model '%s' downstream: %s",
                         self->model, gst_flow_get_name(untold)),
                        ("gst_pad_push returned %s after upstream's EOS; frames before the EOS "
                         "were not delivered",
                         gst_flow_get_name(untold)));
    GstFlowReturn ret = GST_FLOW_OK;
    if (item->event) {
      GstEvent *event = item->event;
      item->event = nullptr;
      gst_pad_push_event(self->srcpad, event);
    } else if (refused != GST_FLOW_OK) {
      GST_DEBUG_OBJECT(self, "dropping a frame: downstream returned %s",
                       gst_flow_get_name(refused));
    } else if (!item->error.empty()) {
      GST_ELEMENT_ERROR(self, STREAM, FAILED,
                        ("inference of model '%s' failed: %s", self->model, item->error.c_str()),
                        ("ModelInstance::run: %s", item->error.c_str()));
      ret = GST_FLOW_ERROR;
    } else {
      GstBuffer *buffer = item->buffer;
      item->buffer = nullptr;
      ret = gst_pad_push(self->srcpad, buffer);
    }
    item.reset();
    lock.lock();
    state->pushing = false;
    state->pushing_thread = std::thread::id();
    // Its own condition: on `space` it woke a chain waiting for a slot once more per frame.
    state->push_ended.notify_all();
    // A flush since the pop makes this result stale.
    if (ret != GST_FLOW_OK && generation == state->generation && state->downstream == GST_FLOW_OK) {
      state->downstream = ret;
      state->space.notify_all();  // a chain waiting for a slot returns the error
    }
  }
}

// Pushes what no runner does: events queued while the frames before them are already out, and
// (batch > 1) every frame.
static void pusher_loop(GstAxInference *self) {
  GstAxInferenceState *state = self->state;
  std::unique_lock<std::mutex> lock(state->mutex);
  for (;;) {
    state->push_ready.wait(lock, [&] {
      return state->stopping ||
             (!state->pushing && !state->order.empty() && state->order.front()->done);
    });
    if (state->stopping) return;
    push_done_items(self, lock);
  }
}

static void start_threads(GstAxInference *self) {
  GstAxInferenceState *state = self->state;
  state->stopping = false;
  state->flushing = false;
  state->downstream = GST_FLOW_OK;
  state->downstream_returned = false;
  state->max_inflight = int(self->max_inflight);
  state->batch_timeout_us = self->batch_timeout;
  // A batch > 1 instance's collector fills its batches from concurrent runners (one frame each).
  // Otherwise the instance executes concurrent_runs() runs at once and further run() calls wait
  // in it. One runner more than that keeps the next run prepared at the slot, so the device
  // starts it as the last one ends; any more would only be woken per frame to block again.
  const int runners =
      state->device->collector
          ? state->max_inflight
          : std::min(state->max_inflight, state->device->instance->concurrent_runs() + 1);
  state->runners_push =
      !state->device->collector && runners > state->device->instance->concurrent_runs();
  for (int i = 0; i < runners; ++i) {
    state->runners.emplace_back(runner_loop, self, i);
    name_thread(state->runners.back(), "axinf-run" + std::to_string(i));
  }
  state->pusher = std::thread(pusher_loop, self);
  name_thread(state->pusher, "axinf-push");
}

static void stop_threads(GstAxInference *self) {
  GstAxInferenceState *state = self->state;
  {
    std::lock_guard<std::mutex> lock(state->mutex);
    state->stopping = true;
    state->wake_everyone();
  }
  for (auto &t : state->runners) t.join();
  state->runners.clear();
  if (state->pusher.joinable()) state->pusher.join();
  std::lock_guard<std::mutex> lock(state->mutex);
  state->drain_eos = state->drain_query = state->drain_flush = false;
  update_drain(state);
  state->order.clear();
  state->work.clear();
  state->sticky_at_flush.clear();
  state->inflight = 0;
}

// Drops everything queued (flush-start / shutdown) and wakes a blocked chain. The sticky events
// among it but segments and EOS (which a flush ends) are kept for FLUSH_STOP, as queue does.
static void flush_queue(GstAxInferenceState *state) {
  std::lock_guard<std::mutex> lock(state->mutex);
  state->flushing = true;
  state->drain_flush = true;  // runners waiting in the collector come back at once
  update_drain(state);
  state->generation++;
  for (const std::shared_ptr<Item> &item : state->order)
    if (item->event && GST_EVENT_IS_STICKY(item->event) &&
        GST_EVENT_TYPE(item->event) != GST_EVENT_SEGMENT &&
        GST_EVENT_TYPE(item->event) != GST_EVENT_EOS)
      state->sticky_at_flush.push_back(item);
  state->order.clear();
  state->work.clear();
  state->inflight = 0;
  state->wake_everyone();
}

static GstFlowReturn gst_ax_inference_chain(GstPad *pad, GstObject *parent, GstBuffer *buffer) {
  auto *self = GST_AX_INFERENCE(parent);
  GstAxInferenceState *state = self->state;
  // Outputs are added as metas, which needs a writable buffer (a shallow copy shares the memory).
  buffer = gst_buffer_make_writable(buffer);
  std::unique_lock<std::mutex> lock(state->mutex);
  state->space.wait(lock, [&] {
    return state->flushing || state->stopping || state->downstream != GST_FLOW_OK ||
           state->inflight < state->max_inflight;
  });
  if (state->flushing || state->stopping) {
    gst_buffer_unref(buffer);
    return GST_FLOW_FLUSHING;
  }
  if (state->downstream != GST_FLOW_OK) {
    gst_buffer_unref(buffer);
    state->downstream_returned = true;
    return state->downstream;
  }
  auto item = std::make_shared<Item>();
  item->buffer = buffer;
  state->order.push_back(item);
  state->work.push_back(item);
  state->inflight++;
  lock.unlock();
  // After unlocking: a runner woken while the mutex is still held blocks on it at once (one
  // more sleep and wake-up per frame, and a switch back to this thread to release it).
  state->work_ready.notify_one();
  return GST_FLOW_OK;
}

// Waits until every queued item has been pushed (drain query); false if flushed meanwhile.
static bool wait_drained(GstAxInferenceState *state) {
  std::unique_lock<std::mutex> lock(state->mutex);
  state->drain_query = true;
  update_drain(state);
  state->space.wait(lock,
                    [&] { return state->order.empty() || state->flushing || state->stopping; });
  state->drain_query = false;
  update_drain(state);
  return state->order.empty();
}

static gboolean gst_ax_inference_sink_event(GstPad *pad, GstObject *parent, GstEvent *event) {
  auto *self = GST_AX_INFERENCE(parent);
  GstAxInferenceState *state = self->state;
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_FLUSH_START: {
      flush_queue(state);
      const gboolean forwarded = gst_pad_push_event(self->srcpad, event);
      // An item a thread took for pushing before the flush could otherwise still go out after
      // the FLUSH_STOP, as the first frame of the new segment: wait for that push to end
      // (downstream is flushing now, so it returns at once), as queue pauses its task here. Not
      // when the seek came from the pushing thread itself (an application seeking in a pad
      // probe).
      {
        std::unique_lock<std::mutex> lock(state->mutex);
        const std::thread::id me = std::this_thread::get_id();
        state->push_ended.wait(lock, [&] {
          return !state->pushing || state->pushing_thread == me || state->stopping;
        });
      }
      return forwarded;
    }
    case GST_EVENT_FLUSH_STOP: {
      std::vector<std::shared_ptr<Item>> sticky;
      {
        std::lock_guard<std::mutex> lock(state->mutex);
        state->order.clear();
        state->work.clear();
        state->inflight = 0;
        state->flushing = false;
        state->downstream = GST_FLOW_OK;
        state->downstream_returned = false;
        state->drain_eos = state->drain_flush = false;
        update_drain(state);
        sticky.swap(state->sticky_at_flush);
      }
      const gboolean forwarded = gst_pad_push_event(self->srcpad, event);
      // Stored once the source pad no longer flushes; sent before the next frame or event.
      for (const std::shared_ptr<Item> &item : sticky)
        gst_pad_store_sticky_event(self->srcpad, item->event);
      return forwarded;
    }
    default:
      break;
  }
  if (!GST_EVENT_IS_SERIALIZED(event)) return gst_pad_event_default(pad, parent, event);
  // Serialized events (caps, segment, EOS, ...) keep their place among the frames: the push
  // thread sends them after every frame queued before them, so EOS leaves after the last frame.
  std::lock_guard<std::mutex> lock(state->mutex);
  if (state->flushing || state->stopping) {
    gst_event_unref(event);
    return FALSE;
  }
  auto item = std::make_shared<Item>();
  item->event = event;
  item->done = true;
  state->order.push_back(item);
  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS) {
    state->drain_eos = true;
    update_drain(state);
  }
  state->push_ready.notify_one();
  return TRUE;
}

static gboolean gst_ax_inference_sink_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  auto *self = GST_AX_INFERENCE(parent);
  // Serialized queries (drain, allocation, ...) see the stream as it is after the queued frames.
  if (GST_QUERY_IS_SERIALIZED(query) && !wait_drained(self->state)) return FALSE;
  return gst_pad_query_default(pad, parent, query);
}

static gboolean gst_ax_inference_src_query(GstPad *pad, GstObject *parent, GstQuery *query) {
  auto *self = GST_AX_INFERENCE(parent);
  if (GST_QUERY_TYPE(query) == GST_QUERY_LATENCY) {
    if (!gst_pad_peer_query(self->sinkpad, query)) return FALSE;
    gboolean live;
    GstClockTime min_latency, max_latency;
    gst_query_parse_latency(query, &live, &min_latency, &max_latency);
    GstClockTime ours;
    guint inflight;
    {
      std::lock_guard<std::mutex> lock(self->state->latency_mutex);
      ours = GstClockTime(self->state->run_latency.report().count());
    }
    {
      std::lock_guard<std::mutex> lock(self->state->mutex);
      inflight = guint(self->state->max_inflight);
    }
    // A frame leaves at least one inference after it came; the queue holds up to max-inflight.
    min_latency += ours;
    if (GST_CLOCK_TIME_IS_VALID(max_latency)) max_latency += ours * inflight;
    GST_DEBUG_OBJECT(self, "latency: live %d min %" GST_TIME_FORMAT " max %" GST_TIME_FORMAT, live,
                     GST_TIME_ARGS(min_latency), GST_TIME_ARGS(max_latency));
    gst_query_set_latency(query, live, min_latency, max_latency);
    return TRUE;
  }
  return gst_pad_query_default(pad, parent, query);
}

// For a DeviceInUse whose holders ("held by user:pid", as the runtime names them) include this
// process: the cores are other axinference elements' of the same application, which can share one
// instance.
static std::string same_process_hint(const std::string &reason, gboolean shared) {
  const std::string held_by = "held by ", me = ":" + std::to_string(getpid());
  for (size_t at = reason.find(held_by); at != std::string::npos;
       at = reason.find(held_by, at + 1)) {
    const size_t start = at + held_by.size();
    const std::string holder = reason.substr(start, reason.find_first_of(",) ", start) - start);
    if (holder.size() > me.size() && holder.compare(holder.size() - me.size(), me.size(), me) == 0)
      return shared ? std::string(
                          "; the holders in this process are axinference elements with "
                          "another model or other instance options")
                    : std::string(
                          "; the holders in this process are other axinference "
                          "elements: set shared=true on those with the same model to "
                          "run them on one instance");
  }
  return {};
}

static gboolean open_device(GstAxInference *self) {
  GstAxInferenceState *state = self->state;
  if (!self->model || !*self->model) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("axinference needs a model package"),
                      ("the 'model' property is not set: set it to a package directory or its "
                       "model.json"));
    return FALSE;
  }
  InstanceRequest request;
  request.model = self->model;
  request.device = self->device ? self->device : "";
  request.aipu_cores = self->aipu_cores;
  request.num_sub_devices = self->num_sub_devices;
  request.double_buffer = self->double_buffer;
  request.dmabuf = self->dmabuf;
  try {
    state->set_device(acquire_instance(request, self->shared));
    state->inputs = state->device->model->inputs();
    state->outputs = state->device->model->outputs();
  } catch (const std::exception &e) {
    // The runtime's reason goes into the message itself: applications show only that text, and
    // "every core held by pid N" is what the user needs to see. Cores held by others: BUSY.
    const char *device = self->device ? self->device : "(any)";
    if (dynamic_cast<const axstream::DeviceInUse *>(&e))
      GST_ELEMENT_ERROR(self, RESOURCE, BUSY,
                        ("axinference could not load model '%s' on device '%s': %s%s", self->model,
                         device, e.what(), same_process_hint(e.what(), self->shared).c_str()),
                        ("acquire_instance: %s", e.what()));
    else
      GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ_WRITE,
                        ("axinference could not load model '%s' on device '%s': %s", self->model,
                         device, e.what()),
                        ("acquire_instance: %s", e.what()));
    state->set_device(nullptr);
    return FALSE;
  }
  state->model_key = canonical_package(self->model);
  state->dmabuf = self->dmabuf;
  std::vector<gsize> out_sizes, in_sizes;
  for (const auto &t : state->outputs) out_sizes.push_back(t.size());
  for (const auto &t : state->inputs) in_sizes.push_back(t.size());
  state->output_pool = gst_ax_tensor_pool_new(out_sizes.data(), guint(out_sizes.size()),
                                              state->device->collector ? 1 : self->max_inflight);
  if (self->dmabuf)
    state->staging_pool = gst_ax_tensor_pool_new(in_sizes.data(), guint(in_sizes.size()), 1);
  if (!state->output_pool || (self->dmabuf && !state->staging_pool)) {
    GST_ELEMENT_ERROR(self, RESOURCE, NO_SPACE_LEFT, ("axinference has no tensor memory"),
                      ("could not make fd tensor pools (memfd_create failed)"));
    state->release_pools();
    state->set_device(nullptr);
    return FALSE;
  }
  return TRUE;
}

static GstStateChangeReturn gst_ax_inference_change_state(GstElement *element,
                                                          GstStateChange transition) {
  auto *self = GST_AX_INFERENCE(element);
  GstAxInferenceState *state = self->state;
  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!open_device(self)) return GST_STATE_CHANGE_FAILURE;
      start_threads(self);
      break;
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      // Unblock a chain waiting for a free slot so the pads can deactivate.
      flush_queue(state);
      break;
    default:
      break;
  }
  GstStateChangeReturn ret =
      GST_ELEMENT_CLASS(gst_ax_inference_parent_class)->change_state(element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY ||
      (transition == GST_STATE_CHANGE_READY_TO_PAUSED && ret == GST_STATE_CHANGE_FAILURE)) {
    stop_threads(self);
    if (state->device && state->device->collector) {
      const auto stats = state->device->collector->statistics();
      GST_INFO_OBJECT(self,
                      "batch statistics of '%s': %" G_GUINT64_FORMAT " runs, %" G_GUINT64_FORMAT
                      " items, average fill %.2f of %d",
                      self->model, stats.runs, stats.items, stats.average_fill(),
                      state->device->collector->batch());
    }
    state->release_pools();
    state->set_device(nullptr);
    {
      std::lock_guard<std::mutex> lock(state->latency_mutex);
      state->run_latency.reset();
    }
    state->warned_no_tensor = false;
    reset_object_counts(state);
    state->bytes_copied = 0;
  }
  return ret;
}

static void gst_ax_inference_get_property(GObject *object, guint prop_id, GValue *value,
                                          GParamSpec *pspec) {
  auto *self = GST_AX_INFERENCE(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_BYTES_COPIED:
      g_value_set_uint64(value, self->state->bytes_copied.load());
      break;
    case PROP_BATCH_RUNS:
    case PROP_BATCH_FILL: {
      // Under device_mutex: a state change on another thread replaces or drops `device` (and
      // with the last reference, its collector) under it. statistics() takes only the
      // collector's own short-held mutex.
      axstream::gst::BatchStatistics stats;
      {
        std::lock_guard<std::mutex> lock(self->state->device_mutex);
        if (self->state->device && self->state->device->collector)
          stats = self->state->device->collector->statistics();
      }
      if (prop_id == PROP_BATCH_RUNS)
        g_value_set_uint64(value, stats.runs);
      else
        g_value_set_double(value, stats.average_fill());
      break;
    }
    default:
      if (!axstream::gst::get_field_property(self, kFieldProperties, prop_id, value))
        G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_ax_inference_finalize(GObject *object) {
  auto *self = GST_AX_INFERENCE(object);
  stop_threads(self);
  self->state->release_pools();
  delete self->state;
  axstream::gst::free_field_properties(self, kFieldProperties);
  G_OBJECT_CLASS(gst_ax_inference_parent_class)->finalize(object);
}

static void gst_ax_inference_class_init(GstAxInferenceClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  gobject_class->set_property =
      axstream::gst::set_field_properties<GstAxInference, kFieldProperties>;
  gobject_class->get_property = gst_ax_inference_get_property;
  gobject_class->finalize = gst_ax_inference_finalize;
  element_class->change_state = GST_DEBUG_FUNCPTR(gst_ax_inference_change_state);

  auto ready_flags = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                              GST_PARAM_MUTABLE_READY);
  g_object_class_install_property(
      gobject_class, PROP_MODEL,
      g_param_spec_string("model", "Model package",
                          "Model package directory (or its model.json) to run; required. Input "
                          "tensor metas of this package are run",
                          DEFAULT_PROP_MODEL, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_DEVICE,
      g_param_spec_string(
          "device", "Device",
          "Device name to run on, e.g. \"metis-0:1:0\" (as Context.list_devices names it); unset: "
          "the first device with enough free sub-devices",
          DEFAULT_PROP_DEVICE, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_AIPU_CORES,
      g_param_spec_int("aipu-cores", "AIPU cores",
                       "AIPU cores (L2 resources) the model instance uses, at most the model's "
                       "batch; 0: as many as num-sub-devices",
                       0, 64, DEFAULT_PROP_AIPU_CORES, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_NUM_SUB_DEVICES,
      g_param_spec_int("num-sub-devices", "Sub-devices",
                       "Sub-devices (AIPU cores) reserved on the device for this element; "
                       "aipu-cores above it reserves that many",
                       1, 64, DEFAULT_PROP_NUM_SUB_DEVICES, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_DOUBLE_BUFFER,
      g_param_spec_boolean("double-buffer", "Double buffer",
                           "Make the instance with double buffering (inputs of the next run "
                           "load while the current one computes)",
                           DEFAULT_PROP_DOUBLE_BUFFER, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_MAX_INFLIGHT,
      g_param_spec_uint("max-inflight", "Frames in flight",
                        "Most frames being inferred or waiting to be pushed at once; upstream "
                        "blocks beyond it. Output order is always kept",
                        1, 64, DEFAULT_PROP_MAX_INFLIGHT, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_SHARED,
      g_param_spec_boolean("shared", "Shared instance",
                           "Share one model instance with every other shared axinference in the "
                           "process that has the same model, device and instance options",
                           DEFAULT_PROP_SHARED, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_DMABUF,
      g_param_spec_boolean("dmabuf", "dmabuf I/O",
                           "Make the instance with input_dmabuf/output_dmabuf and hand fd "
                           "tensor memory to the device as fds, without mapping or copying; off: "
                           "map the tensors and pass pointers",
                           DEFAULT_PROP_DMABUF, ready_flags));

  g_object_class_install_property(
      gobject_class, PROP_BYTES_COPIED,
      g_param_spec_uint64("bytes-copied", "Bytes copied",
                          "Tensor bytes this element copied on their way to the device since it "
                          "started (0 on the zero-copy path: fd tensors from axpreprocess with "
                          "dmabuf on; heap tensors are copied into fd memory)",
                          0, G_MAXUINT64, 0,
                          static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  g_object_class_install_property(
      gobject_class, PROP_BATCH_TIMEOUT,
      g_param_spec_uint(
          "batch-timeout", "Batch timeout",
          "Packages with batch N > 1: microseconds a frame waits for others (of any stream on a "
          "shared instance) to fill the batch before a partial batch runs; 0: run what is "
          "queued at once; at EOS queued frames run at once. Batch-1 packages ignore it",
          0, G_MAXUINT, DEFAULT_PROP_BATCH_TIMEOUT, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_BATCH_RUNS,
      g_param_spec_uint64("batch-runs", "Batch runs",
                          "Packages with batch N > 1: whole-batch runs of this element's model "
                          "instance so far (shared: all its elements together); 0 otherwise",
                          0, G_MAXUINT64, 0,
                          static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  g_object_class_install_property(
      gobject_class, PROP_BATCH_FILL,
      g_param_spec_double("batch-fill", "Average batch fill",
                          "Packages with batch N > 1: frames (or ROIs) per run of this element's "
                          "model instance on average, 1..N (shared: all its elements together); "
                          "0 before the first run or for batch-1 packages",
                          0, G_MAXDOUBLE, 0,
                          static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Axelera inference", "Filter/Analyzer/Video",
      "Runs a model's input tensors on an Axelera AIPU asynchronously, frame order kept, and "
      "attaches the output tensors as a tensor meta; video passes unchanged",
      "axstream developers");
  GST_DEBUG_CATEGORY_INIT(gst_ax_inference_debug, "axinference", 0, "axstream inference");
}

static void gst_ax_inference_init(GstAxInference *self) {
  self->sinkpad = gst_pad_new_from_static_template(&sink_template, "sink");
  gst_pad_set_chain_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_ax_inference_chain));
  gst_pad_set_event_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_ax_inference_sink_event));
  gst_pad_set_query_function(self->sinkpad, GST_DEBUG_FUNCPTR(gst_ax_inference_sink_query));
  GST_PAD_SET_PROXY_CAPS(self->sinkpad);
  GST_PAD_SET_PROXY_ALLOCATION(self->sinkpad);
  axstream::gst::report_refused_caps(self->sinkpad);
  gst_element_add_pad(GST_ELEMENT(self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template(&src_template, "src");
  gst_pad_set_query_function(self->srcpad, GST_DEBUG_FUNCPTR(gst_ax_inference_src_query));
  GST_PAD_SET_PROXY_CAPS(self->srcpad);
  gst_element_add_pad(GST_ELEMENT(self), self->srcpad);

  self->model = nullptr;
  self->device = nullptr;
  self->aipu_cores = DEFAULT_PROP_AIPU_CORES;
  self->num_sub_devices = DEFAULT_PROP_NUM_SUB_DEVICES;
  self->double_buffer = DEFAULT_PROP_DOUBLE_BUFFER;
  self->max_inflight = DEFAULT_PROP_MAX_INFLIGHT;
  self->shared = DEFAULT_PROP_SHARED;
  self->dmabuf = DEFAULT_PROP_DMABUF;
  self->batch_timeout = DEFAULT_PROP_BATCH_TIMEOUT;
  self->state = new GstAxInferenceState();
}
