// C++ convenience over axruntime.h: unique_ptr ownership of axr handles (axr_destroy on reset).
#pragma once

#include <memory>

#include "axruntime/axruntime.h"

namespace axr {

struct object_deleter {
  // A named cast to axr_destroy's own `const axrObject *`, not AXR_OBJECT's C cast: programs
  // built with -Wold-style-cast or -Wcast-qual as errors include this header too, and ptr<const T>
  // needs no const_cast.
  void operator()(const axrObject *object) const noexcept { axr_destroy(object); }
  template <class T>
  void operator()(T *object) const noexcept {
    axr_destroy(reinterpret_cast<const axrObject *>(object));
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
