// Proves axruntime.hpp builds warning-free in a program compiled with the casts warnings C++
// projects turn into errors (-Wold-style-cast, -Wcast-qual, -Wuseless-cast): axr::ptr of every
// handle type, const ones included, and that each deleter really destroys its handle.
#include <cstdio>
#include <utility>

#include "axruntime/axruntime.hpp"

namespace {

int failures = 0;

void check(bool condition, const char *what) {
  if (!condition) {
    std::fprintf(stderr, "CHECK(%s) failed; last error: %s\n", what,
                 axr_last_error_string(nullptr));
    ++failures;
  }
}

// A handle axr_destroy has destroyed is no longer live: axr_get_context rejects it.
bool destroyed(axrObject *handle) {
  return axr_get_context(handle) == nullptr &&
         axr_last_error(nullptr) == AXR_ERROR_INVALID_ARGUMENT;
}

}  // namespace

int main() {
  auto context = axr::to_ptr(axr_create_context());
  check(context != nullptr, "context");
  axrObject *properties_handle = nullptr, *const_handle = nullptr, *object_handle = nullptr;
  {
    axr::ptr<axrProperties> properties = axr::to_ptr(axr_create_properties(context.get(), "a=1"));
    axrProperties *const_properties = axr_create_properties(context.get(), "b=2");
    axr::ptr<const axrProperties> read_only(const_properties);
    axrProperties *any = axr_create_properties(context.get(), "c=3");
    axr::ptr<axrObject> object(reinterpret_cast<axrObject *>(any));
    properties_handle = reinterpret_cast<axrObject *>(properties.get());
    const_handle = reinterpret_cast<axrObject *>(const_properties);
    object_handle = reinterpret_cast<axrObject *>(any);
    check(axr_get_context(properties_handle) == context.get(), "properties live");
    auto moved = std::move(properties);
    check(properties == nullptr && moved != nullptr, "moved");
  }
  check(destroyed(properties_handle), "ptr<axrProperties> destroyed its handle");
  check(destroyed(const_handle), "ptr<const axrProperties> destroyed its handle");
  check(destroyed(object_handle), "ptr<axrObject> destroyed its handle");
  axrObject *context_handle = reinterpret_cast<axrObject *>(context.get());
  context.reset();
  check(destroyed(context_handle), "ptr<axrContext> destroyed its handle");
  return failures == 0 ? 0 : 1;
}
