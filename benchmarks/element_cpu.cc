#include "element_cpu.h"

#include <gst/gst.h>
#include <pthread.h>
#include <time.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace {

uint64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

struct Slot {
  std::atomic<uint64_t> ns{0};
};

// Slots by key (element kind, "@prefix" in a thread of such a name) and each element's slot in
// each thread group; filled as elements first push or receive.
std::mutex slots_mutex;
std::map<std::string, std::unique_ptr<Slot>> slots_by_key;
std::vector<std::string> thread_prefixes;

// "" or "@prefix" for this thread, from its name (threads are named before they push).
const std::string &thread_group() {
  thread_local const std::string group = [] {
    char name[16] = "";
    pthread_getname_np(pthread_self(), name, sizeof name);
    for (const std::string &prefix : thread_prefixes)
      if (std::string(name).rfind(prefix, 0) == 0) return "@" + prefix;
    return std::string();
  }();
  return group;
}

std::string kind_of(GstElement *element) {
  if (!element) return "other";
  if (GST_OBJECT_FLAG_IS_SET(element, GST_ELEMENT_FLAG_SOURCE)) return "source";
  if (GST_OBJECT_FLAG_IS_SET(element, GST_ELEMENT_FLAG_SINK)) return "sink";
  GstElementFactory *factory = gst_element_get_factory(element);
  return factory ? gst_plugin_feature_get_name(GST_PLUGIN_FEATURE(factory))
                 : GST_OBJECT_NAME(element);
}

Slot *slot_of(GstElement *element) {
  // Each thread keeps its own lookups, so the shared maps are locked once per element and thread.
  thread_local std::unordered_map<const GstElement *, Slot *> cache;
  auto cached = cache.find(element);
  if (cached != cache.end()) return cached->second;
  const std::string key = kind_of(element) + thread_group();
  std::lock_guard<std::mutex> lock(slots_mutex);
  std::unique_ptr<Slot> &slot = slots_by_key[key];
  if (!slot) slot = std::make_unique<Slot>();
  cache[element] = slot.get();
  return slot.get();
}

// A pad's element (nullptr for a ghost pad's proxy or an unparented pad).
GstElement *element_of(GstPad *pad) {
  GstObject *parent = pad ? GST_OBJECT_PARENT(pad) : nullptr;
  return parent && GST_IS_ELEMENT(parent) ? GST_ELEMENT(parent) : nullptr;
}

// Per thread: the elements whose pushes it is inside (the first one pushes from the thread's own
// loop: a source's streaming thread, axinference's push thread) and when it last charged.
struct ThreadStack {
  std::vector<Slot *> running;
  uint64_t since_ns = 0;
};
thread_local ThreadStack stack;

void enter_push(GstPad *pad) {
  const uint64_t now = thread_cpu_ns();
  if (stack.running.empty())
    stack.running.push_back(slot_of(element_of(pad)));
  else
    stack.running.back()->ns += now - stack.since_ns;
  stack.running.push_back(slot_of(element_of(GST_PAD_PEER(pad))));
  stack.since_ns = now;
}

void leave_push() {
  const uint64_t now = thread_cpu_ns();
  if (stack.running.size() > 1) {  // else a push that began before the hooks were installed
    stack.running.back()->ns += now - stack.since_ns;
    stack.running.pop_back();
  }
  stack.since_ns = now;
}

void on_push_pre(GObject *, GstClockTime, GstPad *pad, gpointer) { enter_push(pad); }
void on_push_post(GObject *, GstClockTime, GstPad *, GstFlowReturn) { leave_push(); }

// A tracer object to own the hooks (GstTracer is abstract).
struct ElementCpuTracer {
  GstTracer parent;
};
struct ElementCpuTracerClass {
  GstTracerClass parent_class;
};
G_DEFINE_TYPE(ElementCpuTracer, element_cpu_tracer, GST_TYPE_TRACER)
void element_cpu_tracer_class_init(ElementCpuTracerClass *) {}
void element_cpu_tracer_init(ElementCpuTracer *) {}

}  // namespace

namespace axstream::bench {

void start_element_cpu(const std::vector<std::string> &group_threads) {
  static GstTracer *tracer = [&] {
    thread_prefixes = group_threads;
    auto *t = GST_TRACER(g_object_new(element_cpu_tracer_get_type(), nullptr));
    // Buffer and buffer-list pushes: all the data flow of the bench's push-mode pipelines.
    gst_tracing_register_hook(t, "pad-push-pre", G_CALLBACK(on_push_pre));
    gst_tracing_register_hook(t, "pad-push-post", G_CALLBACK(on_push_post));
    gst_tracing_register_hook(t, "pad-push-list-pre", G_CALLBACK(on_push_pre));
    gst_tracing_register_hook(t, "pad-push-list-post", G_CALLBACK(on_push_post));
    return t;
  }();
  (void)tracer;
}

std::map<std::string, double> element_cpu_seconds() {
  std::lock_guard<std::mutex> lock(slots_mutex);
  std::map<std::string, double> out;
  for (const auto &[key, slot] : slots_by_key) out[key] = double(slot->ns.load()) * 1e-9;
  return out;
}

}  // namespace axstream::bench
