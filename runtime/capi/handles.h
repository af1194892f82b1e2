// The objects behind the C API's opaque handles, and the process-wide registry of live handles
// that lets every entry point reject NULL, destroyed or mistyped handles instead of crashing.
// A handle is a number the registry hands out once (never an object's address, which the
// allocator reuses), so a destroyed handle can never name a newer object.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "axruntime/axruntime.h"
#include "axstream/error.h"
#include "axstream/runtime/runtime.h"

namespace axr_capi {

enum class Kind { context, properties, connection, model, model_instance };
const char *kind_name(Kind kind) noexcept;

// Property values of an axrProperties, plus the storage axr_list_properties' result lives in.
// Threads may share one (set in one, read or pass to axr_load_model_instance in others).
struct PropertyStore {
  std::mutex mutex;  // guards the members below
  axstream::runtime::Properties values;
  std::string key_list;
  bool key_list_stale = true;
};

}  // namespace axr_capi

// Every handle is one of these; the runtime object it wraps is reached through `runtime`.
// Parents/children mirror ownership: destroying an object destroys all its descendants.
struct axrObject {
  // `context`: the owning context's handle (a context's own is set when it is registered).
  axrObject(axr_capi::Kind kind, axrContext *context) : kind(kind), context(context) {}
  virtual ~axrObject() = default;
  axrObject(const axrObject &) = delete;
  axrObject &operator=(const axrObject &) = delete;

  // Frees what the wrapped runtime object holds (reservations, worker threads) now, rather than
  // whenever the last shared_ptr to it goes.
  // `owner` is the context object, for reporting a failure to its logger.
  virtual void release_runtime(axrContext *owner) noexcept {}
  virtual std::string describe() const = 0;
  // fork(): the registry takes every live object's own lock before it (each is a leaf lock, never
  // held while taking another), and releases it after in the parent; the child, alone, also
  // forgets whatever the parent's other threads were doing (see axrContext).
  virtual void lock_for_fork() noexcept {}
  virtual void unlock_after_fork(bool in_child) noexcept {}

  const axr_capi::Kind kind;
  axrContext *context;          // handle of the owning context; its own handle for a context
  axrObject *handle = nullptr;  // what the user holds; set once, when registered
  // Guarded by the registry's mutex.
  std::vector<axrObject *> parents;
  std::vector<axrObject *> children;
};

struct axrContext final : axrObject {
  axrContext() : axrObject(axr_capi::Kind::context, nullptr) {}
  void release_runtime(axrContext *owner) noexcept override;
  std::string describe() const override { return "context"; }

  bool wants_log(axrLogLevel level);
  void log(axrLogLevel level, const std::string &message) noexcept;
  // Installs `logger` (NULL: none) and, unless the calling thread is inside a logger callback
  // itself, waits until the callbacks other threads started with the previous one have returned:
  // once this returns the old logger is not running and is never called again, so the program
  // may free its `arg`.
  void set_logger(axrLogLevel level, axr_logger_fn logger, void *arg) noexcept;
  void lock_for_fork() noexcept override { mutex.lock(); }
  // In the child, no callback runs but the forking thread's own: counts of the parent's other
  // threads' callbacks would make set_logger wait for good.
  void unlock_after_fork(bool in_child) noexcept override;

  std::shared_ptr<axstream::runtime::Context> runtime;

  std::mutex mutex;  // guards the members below
  axrLogLevel log_level = AXR_LOG_WARNING;
  axr_logger_fn logger = nullptr;
  void *logger_arg = nullptr;
  std::vector<axrDeviceInfo> devices;  // axr_list_devices' result

 private:
  // Callbacks running now, by the generation of the logger they were started with (a generation
  // per set_logger), so set_logger waits only for the old logger's, not for a new one that other
  // threads keep calling.
  std::condition_variable callback_returned_;
  std::map<uint64_t, int> callbacks_running_;
  uint64_t logger_generation_ = 0;
};

struct axrProperties final : axrObject {
  explicit axrProperties(axrContext *owner)
      : axrObject(axr_capi::Kind::properties, owner),
        runtime(std::make_shared<axr_capi::PropertyStore>()) {}
  std::string describe() const override { return "properties"; }
  void lock_for_fork() noexcept override { runtime->mutex.lock(); }
  void unlock_after_fork(bool) noexcept override { runtime->mutex.unlock(); }
  std::shared_ptr<axr_capi::PropertyStore> runtime;
};

struct axrConnection final : axrObject {
  axrConnection(axrContext *owner, std::shared_ptr<axstream::runtime::Connection> connection)
      : axrObject(axr_capi::Kind::connection, owner), runtime(std::move(connection)) {}
  void release_runtime(axrContext *owner) noexcept override;
  std::string describe() const override;
  std::shared_ptr<axstream::runtime::Connection> runtime;
};

struct axrModel final : axrObject {
  axrModel(axrContext *owner, std::shared_ptr<axstream::runtime::Model> model)
      : axrObject(axr_capi::Kind::model, owner), runtime(std::move(model)) {}
  void release_runtime(axrContext *owner) noexcept override;
  std::string describe() const override;
  std::shared_ptr<axstream::runtime::Model> runtime;
};

struct axrModelInstance final : axrObject {
  axrModelInstance(axrContext *owner, std::shared_ptr<axstream::runtime::ModelInstance> instance)
      : axrObject(axr_capi::Kind::model_instance, owner), runtime(std::move(instance)) {}
  void release_runtime(axrContext *owner) noexcept override;
  std::string describe() const override;
  std::shared_ptr<axstream::runtime::ModelInstance> runtime;
};

namespace axr_capi {

template <class T>
constexpr Kind kind_of();
template <>
constexpr Kind kind_of<axrContext>() {
  return Kind::context;
}
template <>
constexpr Kind kind_of<axrProperties>() {
  return Kind::properties;
}
template <>
constexpr Kind kind_of<axrConnection>() {
  return Kind::connection;
}
template <>
constexpr Kind kind_of<axrModel>() {
  return Kind::model;
}
template <>
constexpr Kind kind_of<axrModelInstance>() {
  return Kind::model_instance;
}

// An error the C layer itself decides the axrResult of (NULL arguments, value errors).
class CapiError : public std::runtime_error {
 public:
  CapiError(axrResult result, const std::string &message)
      : std::runtime_error(message), result_(result) {}
  axrResult result() const noexcept { return result_; }

 private:
  axrResult result_;
};

// All live handles of the process. Handles are owned here; each belongs to one context.
class Registry {
 public:
  static Registry &instance();

  // Registers `object` as a child of `parents` (objects, kept alive by the caller) and returns
  // its new handle.
  template <class T>
  T *add(std::unique_ptr<T> object, std::initializer_list<axrObject *> parents) {
    return reinterpret_cast<T *>(add_object(std::move(object), parents));
  }

  // The handle if it is live and a T; throws CapiError(INVALID_ARGUMENT) naming `what` otherwise.
  // Shared, so an axr_destroy in another thread cannot free the object (or, through `context`,
  // its context) while the calling thread still uses it; the destroyed object's runtime object
  // is released at once, so the call then fails with "... was released".
  template <class T>
  std::shared_ptr<T> checked(const T *handle, const char *what,
                             std::shared_ptr<axrContext> *context) {
    std::lock_guard lock(mutex_);
    auto object = find_locked(handle, kind_of<T>(), what);
    *context = context_of_locked(*object);
    return std::static_pointer_cast<T>(std::move(object));
  }

  // A copy of the handle's runtime pointer, taken under the lock so a concurrent axr_destroy
  // cannot free it mid-copy; `context` receives the owning context (for logging).
  template <class T>
  auto runtime_of(const T *handle, const char *what, std::shared_ptr<axrContext> *context) {
    return checked(handle, what, context)->runtime;
  }

  // Any live handle, whatever its kind.
  std::shared_ptr<axrObject> checked_any(const axrObject *handle, const char *what,
                                         std::shared_ptr<axrContext> *context);

  // Unregisters `object` and its descendants, releases their runtime objects (children first)
  // and deletes them.
  void destroy(const axrObject *object);

  // pthread_atfork handlers: the registry's lock and every live object's are held across fork(),
  // so the child finds them all unlocked and what they guard whole, whatever the parent's other
  // threads were doing (they are not in the child to release a lock they held).
  void before_fork() noexcept;
  void after_fork(bool in_child) noexcept;

 private:
  axrObject *add_object(std::unique_ptr<axrObject> object,
                        std::initializer_list<axrObject *> parents);
  std::shared_ptr<axrObject> find_locked(const axrObject *handle, Kind kind, const char *what);
  // A live object's context: live too, since destroying a context destroys its objects.
  std::shared_ptr<axrContext> context_of_locked(const axrObject &object);

  std::mutex mutex_;
  // Calls in flight share ownership (see checked), so an object outlives its destroy until
  // they return.
  std::map<const axrObject *, std::shared_ptr<axrObject>> objects_;  // by handle
  uintptr_t next_handle_ = 0x10000;
};

}  // namespace axr_capi
