#include "handles.h"

#include <pthread.h>

#include <algorithm>
#include <new>
#include <sstream>

namespace axr_capi {

const char *kind_name(Kind kind) noexcept {
  switch (kind) {
    case Kind::context:
      return "axrContext";
    case Kind::properties:
      return "axrProperties";
    case Kind::connection:
      return "axrConnection";
    case Kind::model:
      return "axrModel";
    case Kind::model_instance:
      return "axrModelInstance";
  }
  return "axrObject";
}

namespace {

// A handle the registry does not hold, named with its address (the same message everywhere).
CapiError not_live(const char *what, const void *handle) {
  std::ostringstream message;
  message << what << " (" << handle
          << ") is not a live axr object: destroyed, or never created by axr_*";
  return CapiError(AXR_ERROR_INVALID_ARGUMENT, message.str());
}

}  // namespace

namespace {
// Never destroyed: contexts a program did not destroy must not be torn down by static
// destructors after the runtime's own statics (device registry) are gone.
Registry *g_registry = nullptr;
}  // namespace

Registry &Registry::instance() {
  static Registry *const registry = [] {
    g_registry = new Registry();
    ::pthread_atfork([] { g_registry->before_fork(); }, [] { g_registry->after_fork(false); },
                     [] { g_registry->after_fork(true); });
    return g_registry;
  }();
  return *registry;
}

void Registry::before_fork() noexcept {
  mutex_.lock();
  for (auto &entry : objects_) entry.second->lock_for_fork();
}

void Registry::after_fork(bool in_child) noexcept {
  for (auto &entry : objects_) entry.second->unlock_after_fork(in_child);
  mutex_.unlock();
}

axrObject *Registry::add_object(std::unique_ptr<axrObject> object,
                                std::initializer_list<axrObject *> parents) {
  std::lock_guard lock(mutex_);
  axrObject *raw = object.get();
  for (axrObject *parent : parents) {
    // A parent destroyed meanwhile by another thread: the new object dies with it.
    if (objects_.count(parent->handle) == 0) {
      throw CapiError(AXR_ERROR_INVALID_ARGUMENT,
                      std::string(kind_name(parent->kind)) + " was destroyed while in use");
    }
  }
  for (axrObject *parent : parents) {
    raw->parents.push_back(parent);
    parent->children.push_back(raw);
  }
  // Spaced and aligned like heap addresses; 2^60 handles before the counter could wrap.
  raw->handle = reinterpret_cast<axrObject *>(next_handle_);
  next_handle_ += 16;
  if (raw->kind == Kind::context) raw->context = reinterpret_cast<axrContext *>(raw->handle);
  objects_.emplace(raw->handle, std::move(object));
  return raw->handle;
}

std::shared_ptr<axrObject> Registry::find_locked(const axrObject *handle, Kind kind,
                                                 const char *what) {
  if (handle == nullptr) {
    throw CapiError(AXR_ERROR_INVALID_ARGUMENT, std::string(what) + " is NULL");
  }
  auto found = objects_.find(handle);
  if (found == objects_.end()) throw not_live(what, handle);
  if (found->second->kind != kind) {
    throw CapiError(AXR_ERROR_INVALID_ARGUMENT, std::string(what) + " is an " +
                                                    kind_name(found->second->kind) +
                                                    ", expected an " + kind_name(kind));
  }
  return found->second;
}

std::shared_ptr<axrContext> Registry::context_of_locked(const axrObject &object) {
  auto found = objects_.find(object.context);
  if (found == objects_.end()) return nullptr;  // not reached: see the declaration
  return std::static_pointer_cast<axrContext>(found->second);
}

std::shared_ptr<axrObject> Registry::checked_any(const axrObject *handle, const char *what,
                                                 std::shared_ptr<axrContext> *context) {
  std::lock_guard lock(mutex_);
  if (handle == nullptr) {
    throw CapiError(AXR_ERROR_INVALID_ARGUMENT, std::string(what) + " is NULL");
  }
  auto found = objects_.find(handle);
  if (found == objects_.end()) throw not_live(what, handle);
  *context = context_of_locked(*found->second);
  return found->second;
}

void Registry::destroy(const axrObject *object) {
  // Children before parents, each with its context object (for release_runtime's logging).
  std::vector<std::pair<std::shared_ptr<axrObject>, std::shared_ptr<axrContext>>> doomed;
  {
    std::lock_guard lock(mutex_);
    if (object == nullptr) {
      throw CapiError(AXR_ERROR_INVALID_ARGUMENT, "object is NULL");
    }
    auto found = objects_.find(object);
    if (found == objects_.end()) throw not_live("object", object);
    // Post-order over the ownership graph: an instance (child of its connection and its model)
    // is released before either of them.
    std::vector<axrObject *> order;
    std::vector<std::pair<axrObject *, size_t>> stack{{found->second.get(), 0}};
    auto visited = [&](axrObject *candidate) {
      return std::find(order.begin(), order.end(), candidate) != order.end() ||
             std::any_of(stack.begin(), stack.end(),
                         [&](const auto &entry) { return entry.first == candidate; });
    };
    while (!stack.empty()) {
      auto &[node, next_child] = stack.back();
      if (next_child < node->children.size()) {
        axrObject *child = node->children[next_child++];
        if (!visited(child)) stack.emplace_back(child, 0);
      } else {
        order.push_back(node);
        stack.pop_back();
      }
    }
    for (axrObject *node : order) {
      for (axrObject *parent : node->parents) {
        auto &siblings = parent->children;
        siblings.erase(std::remove(siblings.begin(), siblings.end(), node), siblings.end());
      }
      auto context = context_of_locked(*node);
      auto entry = objects_.find(node->handle);
      doomed.emplace_back(std::move(entry->second), std::move(context));
      objects_.erase(entry);
    }
  }
  // Outside the lock: releasing joins worker threads and frees device reservations. Calls still
  // in flight on these objects keep them (not their runtime objects) until they return.
  for (auto &[node, context] : doomed) {
    node->release_runtime(context.get());
    node.reset();
  }
}

}  // namespace axr_capi

namespace {

void release_quietly(axstream::runtime::Object *object, axrContext *context) noexcept {
  if (object == nullptr) return;
  try {
    if (!object->released()) object->release();
  } catch (const std::exception &error) {
    // Nothing to return to from a destructor path: the context's logger is told instead.
    if (context != nullptr) context->log(AXR_LOG_ERROR, std::string("release: ") + error.what());
  }
}

}  // namespace

void axrContext::release_runtime(axrContext *) noexcept {
  // A call still in flight in another thread holds this context and may yet report an error: it
  // must not reach the logger of a context whose destroy has returned.
  set_logger(AXR_LOG_WARNING, nullptr, nullptr);
  release_quietly(runtime.get(), nullptr);
}

bool axrContext::wants_log(axrLogLevel level) {
  std::lock_guard lock(mutex);
  return logger != nullptr && level >= log_level;
}

namespace {
// Set while this thread runs a logger callback: the messages of calls the logger itself makes are
// not delivered back to it, so a logger whose own call fails cannot recurse without end.
thread_local bool t_in_logger = false;
}  // namespace

void axrContext::log(axrLogLevel level, const std::string &message) noexcept {
  if (t_in_logger) return;
  axr_logger_fn callback;
  void *argument;
  uint64_t generation;
  {
    std::lock_guard lock(mutex);
    if (logger == nullptr || level < log_level) return;
    callback = logger;
    argument = logger_arg;
    generation = logger_generation_;
    ++callbacks_running_[generation];
  }
  // Called without the lock: the callback may call back into the API.
  t_in_logger = true;
  callback(argument, level, message.c_str());
  t_in_logger = false;
  std::lock_guard lock(mutex);
  // Absent when this thread forked inside the callback: the child's count started over.
  auto running = callbacks_running_.find(generation);
  if (running != callbacks_running_.end() && --running->second == 0) {
    callbacks_running_.erase(running);
    callback_returned_.notify_all();
  }
}

void axrContext::unlock_after_fork(bool in_child) noexcept {
  if (in_child) {
    callbacks_running_.clear();
    // Waiters of the parent's threads are not in the child; start the condition over too.
    new (&callback_returned_) std::condition_variable();
  }
  mutex.unlock();
}

void axrContext::set_logger(axrLogLevel level, axr_logger_fn new_logger, void *arg) noexcept {
  std::unique_lock lock(mutex);
  log_level = level;
  logger = new_logger;
  logger_arg = arg;
  const uint64_t replaced = logger_generation_++;
  // Inside a callback (of this context or another) the wait could be for this very thread.
  if (t_in_logger) return;
  callback_returned_.wait(lock, [&] {
    return callbacks_running_.empty() || callbacks_running_.begin()->first > replaced;
  });
}

void axrConnection::release_runtime(axrContext *owner) noexcept {
  release_quietly(runtime.get(), owner);
}
void axrModel::release_runtime(axrContext *owner) noexcept {
  release_quietly(runtime.get(), owner);
}
void axrModelInstance::release_runtime(axrContext *owner) noexcept {
  release_quietly(runtime.get(), owner);
}

std::string axrConnection::describe() const { return runtime ? runtime->describe() : "connection"; }
std::string axrModel::describe() const { return runtime ? runtime->describe() : "model"; }
std::string axrModelInstance::describe() const {
  return runtime ? runtime->describe() : "model instance";
}
