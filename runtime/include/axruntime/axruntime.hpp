// C++ convenience over axruntime.h: unique_ptr ownership of axr handles (axr_destroy on reset).
#pragma once

#include <memory>

#include "axruntime/axruntime.h"

namespace axr {

struct object_deleter {
  template <class T>
  void operator()(T *object) const noexcept {
    axr_destroy(AXR_OBJECT(object));
  }
};

template <class T>
using ptr = std::unique_ptr<T, object_deleter>;

// auto ctx = axr::to_ptr(axr_create_context());
template <class T>
ptr<T> to_ptr(T *object) {
  return ptr<T>(object);
}

}  // namespace axr
