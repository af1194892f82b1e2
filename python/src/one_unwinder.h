// One C++ unwinder per Python process. Debian's libgstreamer links libunwind, which exports
// _Unwind_RaiseException, _Unwind_Resume, ... under the same names and versions as libgcc_s.
// PyGObject loads GStreamer into the global symbol scope, and every library loaded after it
// binds these functions to libunwind, while libstdc++ already bound its throws to libgcc_s:
// an exception raised by one unwinder and resumed by the other aborts the process (seen with
// `import axelera.runtime`, then Gst, then onnx: any onnx or axelera error killed Python).
// With libgcc_s in the global scope first, later libraries bind to it like libstdc++ did.
#pragma once

#include <dlfcn.h>

namespace axstream::python {

inline void put_libgcc_unwinder_first() {
  // libgcc_s is already loaded (libstdc++ needs it): RTLD_NOLOAD only makes it global. The
  // handle is kept for the life of the process, as the extension's own libraries are.
  dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
}

}  // namespace axstream::python
