// The pybind11 extension behind axelera.runtime: binds the C++ runtime (runtime.h) to Python,
// converts its structs into the pure-Python BoardType/DeviceInfo/TensorInfo of
// axelera/runtime/_types.py and maps every axstream::Error kind to its Python exception.
#include <cxxabi.h>
#include <pthread.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "axstream/error.h"
#include "axstream/hal/dmabuf.h"
#include "axstream/runtime/runtime.h"
#include "one_unwinder.h"

namespace py = pybind11;
namespace rt = axstream::runtime;
namespace engine = axstream::engine;
namespace hal = axstream::hal;
using axstream::ErrorKind;

namespace {

constexpr size_t kErrorKindCount = static_cast<size_t>(ErrorKind::UnknownError) + 1;

// Python exception class per ErrorKind; filled once at import (module-lifetime references).
std::array<PyObject *, kErrorKindCount> g_exception_classes{};

struct ExceptionSpec {
  ErrorKind kind;
  const char *name;
  PyObject *builtin_base;  // so `except ValueError` etc. also catches it
  const char *doc;
};

void register_exceptions(py::module_ &module) {
  const std::string prefix = "axelera.runtime.";
  PyObject *base = PyErr_NewExceptionWithDoc(
      (prefix + "Error").c_str(),
      "Base class of every exception raised by axelera.runtime (axstream extension; the "
      "documented exceptions all derive from it). A RuntimeError, so code that guards runtime "
      "calls with `except RuntimeError` catches every one of them.",
      PyExc_RuntimeError, nullptr);
  if (base == nullptr) throw py::error_already_set();
  module.add_object("Error", py::handle(base));

  const ExceptionSpec specs[] = {
      {ErrorKind::ConnectionError, "ConnectionError", PyExc_ConnectionError,
       "The device could not be reached or the connection to it failed."},
      {ErrorKind::DeviceInUse, "DeviceInUse", PyExc_RuntimeError,
       "The requested sub-devices are reserved by another connection or process; the message "
       "names the holder (user:pid)."},
      {ErrorKind::IncompatibleDevice, "IncompatibleDevice", PyExc_RuntimeError,
       "The model does not fit the device: load_model_instance's aipu_cores asks for more AIPU "
       "cores' L2 than the device has."},
      {ErrorKind::InternalError, "InternalError", PyExc_RuntimeError,
       "An internal failure of the runtime or the device."},
      {ErrorKind::InvalidArgument, "InvalidArgument", PyExc_ValueError,
       "An argument is wrong: wrong count, shape, dtype or value, a corrupt model package, or "
       "an object that was already released. Also a ValueError."},
      {ErrorKind::InvalidConfiguration, "InvalidConfiguration", PyExc_ValueError,
       "An unknown configuration key or a configuration that cannot be applied. Also a "
       "ValueError."},
      {ErrorKind::NotImplemented, "NotImplemented", PyExc_NotImplementedError,
       "The operation or model feature is not supported. Also a NotImplementedError."},
      {ErrorKind::Pending, "Pending", PyExc_RuntimeError,
       "The operation needs a configuration that is still being applied; retry once "
       "Context.device_ready() returns True."},
      {ErrorKind::UnknownError, "UnknownError", PyExc_RuntimeError,
       "A failure the runtime could not classify."},
  };
  for (const auto &spec : specs) {
    py::tuple bases = py::make_tuple(py::handle(base), py::handle(spec.builtin_base));
    PyObject *cls =
        PyErr_NewExceptionWithDoc((prefix + spec.name).c_str(), spec.doc, bases.ptr(), nullptr);
    if (cls == nullptr) throw py::error_already_set();
    module.add_object(spec.name, py::handle(cls));
    g_exception_classes[static_cast<size_t>(spec.kind)] = cls;
  }

  // Local: other pybind11 modules' functions never run this, and our errors are translated
  // before any other module's (global) translator could see them.
  py::register_local_exception_translator([](std::exception_ptr error) {
    try {
      if (error) std::rethrow_exception(error);
    } catch (const axstream::Error &e) {
      auto index = static_cast<size_t>(e.kind());
      PyObject *cls = index < kErrorKindCount ? g_exception_classes[index] : nullptr;
      PyObject *type =
          cls ? cls : g_exception_classes[static_cast<size_t>(ErrorKind::UnknownError)];
      // Messages quote paths and file contents, which need not be UTF-8: PyErr_SetString would
      // then raise the exception with no message at all, so undecodable bytes become \xNN.
      const std::string text = e.what();
      PyObject *message = PyUnicode_DecodeUTF8(text.data(), static_cast<Py_ssize_t>(text.size()),
                                               "backslashreplace");
      if (message) {
        PyErr_SetObject(type, message);
        Py_DECREF(message);
      } else {
        PyErr_SetString(type, "(undecodable error message)");
      }
    }
  });
}

// Runtime calls in progress without the GIL (ReleasedGil scopes). At interpreter exit the main
// thread waits for them (wait_for_calls_without_gil, a Py_AtExit function): a daemon thread still
// inside the runtime when exit() ran the libraries' static destructors crashed there (oneDNN's,
// under a daemon thread's load_model_instance). An atomic, trivially destructible, so a thread
// leaving a call during exit never finds it destroyed.
std::atomic<int> g_calls_without_gil{0};

bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing();
#else
  return _Py_IsFinalizing();
#endif
}

// Bounded, so that a call that never ends (none should) cannot hang the exit.
constexpr auto kExitWaitForCalls = std::chrono::seconds(10);

void wait_for_calls_without_gil() {
  const auto deadline = std::chrono::steady_clock::now() + kExitWaitForCalls;
  while (g_calls_without_gil.load() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

// Releases the GIL for a long call (like py::gil_scoped_release), counted in
// g_calls_without_gil. A daemon thread whose call ends while the interpreter exits does not take
// the GIL back: CPython would end it with pthread_exit, unwinding through pybind11's frames
// (whose noexcept GIL guard aborted, and whose Python objects are gone); it stays here, touching
// nothing, until the process ends. Also when the exit begins just after it looked: CPython then
// ends the thread inside PyEval_RestoreThread (pthread_exit), whose forced unwinding would drop
// pybind11's Python objects without the GIL (SIGSEGV in ~function_call, about one exit in 20 of
// test_api_doc_blackbox7's program); the unwinding is caught and the thread stays here likewise.
class ReleasedGil {
 public:
  ReleasedGil() : began_finalizing_(interpreter_finalizing()), state_(PyEval_SaveThread()) {
    ++g_calls_without_gil;
  }
  ~ReleasedGil() noexcept(false) {
    --g_calls_without_gil;
    // A call made during finalisation is the finalising thread's own: it goes on.
    if (!began_finalizing_ && interpreter_finalizing())
      for (;;) ::pause();
    try {
      PyEval_RestoreThread(state_);
    } catch (abi::__forced_unwind &) {
      for (;;) ::pause();  // never rethrown, never returns: the process is exiting
    }
  }
  ReleasedGil(const ReleasedGil &) = delete;
  ReleasedGil &operator=(const ReleasedGil &) = delete;

 private:
  bool began_finalizing_;
  PyThreadState *state_;
};

// The pure-Python value types live in axelera/runtime/_types.py; imported on use (sys.modules
// makes this a dict lookup) so that the extension module has no import-time cycle.
py::object types_attr(const char *name) {
  return py::module_::import("axelera.runtime._types").attr(name);
}

std::string type_name(py::handle object) {
  return py::str(py::type::handle_of(object).attr("__name__"));
}

// A released object says so before any of its arguments is looked at (docs/python-api.md); the
// runtime's calls check that first, but these bindings convert their arguments before calling
// them. The same message as the runtime's Object::ensure_alive.
void ensure_alive(const rt::Object &object) {
  if (object.released()) throw axstream::InvalidArgument(object.describe() + " was released");
}

std::string shape_text(const std::vector<int64_t> &shape) {
  std::ostringstream out;
  out << '(';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? "," : "") << shape[i];
  if (shape.size() == 1) out << ',';
  out << ')';
  return out.str();
}

py::dtype numpy_dtype(engine::DType dtype) {
  switch (dtype) {
    case engine::DType::f32:
      return py::dtype::of<float>();
    case engine::DType::i8:
      return py::dtype::of<int8_t>();
    case engine::DType::u8:
      return py::dtype::of<uint8_t>();
    case engine::DType::i32:
      return py::dtype::of<int32_t>();
    case engine::DType::i64:
      return py::dtype::of<int64_t>();
    case engine::DType::bool_:
      return py::dtype("bool");
    case engine::DType::f16:
      return py::dtype("float16");
    case engine::DType::f64:
      return py::dtype::of<double>();
    case engine::DType::i16:
      return py::dtype::of<int16_t>();
    case engine::DType::u16:
      return py::dtype::of<uint16_t>();
    case engine::DType::u32:
      return py::dtype::of<uint32_t>();
    case engine::DType::u64:
      return py::dtype::of<uint64_t>();
    case engine::DType::bf16:
      throw axstream::NotImplemented("bfloat16 tensors have no numpy dtype");
  }
  throw axstream::InternalError("tensor dtype " + std::to_string(static_cast<int>(dtype)) +
                                " has no numpy equivalent");
}

py::object to_python(const hal::DeviceInfo &info) {
  py::object board_type = types_attr("BoardType")(static_cast<int>(info.board_type));
  return types_attr("DeviceInfo")(
      py::arg("name") = info.name, py::arg("subdevice_count") = info.subdevice_count,
      py::arg("max_memory") = info.max_memory, py::arg("in_use") = info.in_use > 0,
      py::arg("in_use_by") = info.in_use_by, py::arg("board_type") = board_type,
      py::arg("firmware_version") = info.firmware_version,
      py::arg("board_revision") = info.board_revision,
      py::arg("flashed_firmware_version") = info.flashed_firmware_version,
      py::arg("board_controller_firmware_version") = info.board_controller_firmware_version,
      py::arg("board_controller_board_type") = info.board_controller_board_type,
      py::arg("in_use_count") = info.in_use);
}

py::object to_python(const rt::TensorInfo &info) {
  py::list padding;
  for (const auto &[begin, end] : info.padding) padding.append(py::make_tuple(begin, end));
  py::tuple shape(info.shape.size());
  for (size_t i = 0; i < info.shape.size(); ++i) shape[i] = py::int_(info.shape[i]);
  return types_attr("TensorInfo")(
      py::arg("shape") = shape, py::arg("dtype") = numpy_dtype(info.dtype),
      py::arg("name") = info.name,
      py::arg("padding") = info.padding.empty() ? py::object(py::none()) : py::object(padding),
      py::arg("scale") = info.scale, py::arg("zero_point") = info.zero_point);
}

py::list to_python(const std::vector<rt::TensorInfo> &infos) {
  py::list result;
  for (const auto &info : infos) result.append(to_python(info));
  return result;
}

// A Python str as the UTF-8 text the runtime takes. A str UTF-8 cannot hold (a lone surrogate,
// as os.fsdecode makes of undecodable bytes) or one with a NUL (the runtime's messages are C
// strings, which would end there) is passed on escaped (as \udcff, \x00): no device or
// property has such a name or value, so the runtime refuses it with its usual error type and a
// message that shows it whole (pybind11's caster raised a bare RuntimeError "Unable to cast").
std::string text_from_python(py::handle text) {
  Py_ssize_t size = 0;
  const char *data = PyUnicode_AsUTF8AndSize(text.ptr(), &size);
  if (data != nullptr && std::find(data, data + size, '\0') == data + size)
    return std::string(data, static_cast<size_t>(size));
  PyErr_Clear();
  py::bytes escaped = py::reinterpret_borrow<py::str>(text)
                          .attr("encode")("utf-8", "backslashreplace")
                          .attr("replace")(py::bytes("\0", 1), py::bytes("\\x00"));
  return std::string(escaped);
}

// A DeviceInfo (from list_devices, or made by hand: only its name is read, as
// docs/python-api.md says, so a hand-made one with the doc's 0 in in_use_by is fine) or the
// device's name.
hal::DeviceInfo device_info_from_python(py::handle device, const char *call) {
  hal::DeviceInfo info;
  if (py::isinstance<py::str>(device)) {
    info.name = text_from_python(device);
    return info;
  }
  if (!py::hasattr(device, "name") || !py::isinstance<py::str>(device.attr("name")))
    throw axstream::InvalidArgument(
        std::string(call) +
        ": device must be a DeviceInfo from list_devices(), a device name or an index into "
        "list_devices(), got " +
        type_name(device) +
        (py::hasattr(device, "name")
             ? " whose name is " + type_name(device.attr("name")) + ", not a str"
             : std::string()));
  info.name = text_from_python(device.attr("name"));
  return info;
}

// A Python bool or a numpy.bool_ (what comparisons and config arrays give): both mean a flag.
// numpy.bool_ is no int subclass, and its __index__ is deprecated (numpy 1.25 warns).
bool is_bool(py::handle object) {
  if (py::isinstance<py::bool_>(object)) return true;
  auto numpy = py::module_::import("numpy");  // a sys.modules lookup once numpy is imported
  return py::isinstance(object, numpy.attr("bool_"));
}

// The integer value of `object` through __index__ (int, numpy integers), or nothing. bool is
// not an index here: True as an fd or a count is a mistake.
std::optional<py::int_> as_index(py::handle object) {
  if (is_bool(object) || !PyIndex_Check(object.ptr())) return std::nullopt;
  PyObject *index = PyNumber_Index(object.ptr());
  if (index == nullptr) {
    PyErr_Clear();  // e.g. a float numpy array: has __index__ but refuses
    return std::nullopt;
  }
  return py::reinterpret_steal<py::int_>(index);
}

// A count argument (an int or numpy integer) as an int; anything else, or a value no int holds,
// is InvalidArgument naming the argument (pybind11's own int caster would give a TypeError
// listing the signature, which does not say which argument is wrong).
int count_from_python(py::handle value, const std::string &what) {
  auto index = as_index(value);
  int overflow = 0;
  long long count = index ? PyLong_AsLongLongAndOverflow(index->ptr(), &overflow) : 0;
  if (!index || overflow != 0 || count < std::numeric_limits<int>::min() ||
      count > std::numeric_limits<int>::max())
    throw axstream::InvalidArgument(what + ": expected a count (an integer), got " +
                                    type_name(value) + " " + std::string(py::repr(value)));
  return static_cast<int>(count);
}

// `device` arguments: a DeviceInfo, the device's name, or its index in list_devices() (Axelera's
// reference for device_connect: "int: device index, e.g. 0 for the first device").
hal::DeviceInfo device_from_python(rt::Context &context, py::handle device, const char *call) {
  auto index = as_index(device);
  if (!index) return device_info_from_python(device, call);
  auto devices = context.list_devices();
  int overflow = 0;
  long long position = PyLong_AsLongLongAndOverflow(index->ptr(), &overflow);
  if (overflow != 0 || position < 0 || position >= static_cast<long long>(devices.size())) {
    std::string names;
    for (const auto &info : devices) names += (names.empty() ? "" : ", ") + info.name;
    throw axstream::InvalidArgument(
        std::string(call) + ": device index " + std::string(py::str(*index)) +
        " is out of range: list_devices() has " + std::to_string(devices.size()) + " device(s)" +
        (names.empty() ? std::string() : " (" + names + ")"));
  }
  return devices[static_cast<size_t>(position)];
}

// A Python float, or a numpy floating point scalar as the float it holds: float32 and float16
// (what arithmetic on config arrays gives) are no float subclass, unlike float64, and were
// refused as "not a float". Anything else: nothing.
std::optional<py::float_> as_float(py::handle object) {
  if (PyFloat_Check(object.ptr())) return py::reinterpret_borrow<py::float_>(object);
  auto numpy = py::module_::import("numpy");  // a sys.modules lookup once numpy is imported
  if (py::isinstance(object, numpy.attr("floating")))
    return py::float_(py::reinterpret_borrow<py::object>(object));
  return std::nullopt;
}

// kwargs -> the runtime's string properties. bool -> "1"/"0" (the doc's tables use 0/1),
// integers (also numpy integers) and integral floats in decimal, other floats via repr, str
// as text_from_python gives it. A value of another type is InvalidArgument; with `type_error`,
// its message goes there instead and the value becomes text no property takes (configure_device:
// the runtime reports an unknown key before any value, so it has to see the keys first).
// With `given`, each value whose text differs from its repr (True -> "1", 1000.0 -> "1000")
// gets that repr, for messages to name the value as the user wrote it.
rt::Properties properties_from_kwargs(const py::kwargs &kwargs, const std::string &call,
                                      std::optional<std::string> *type_error = nullptr,
                                      std::map<std::string, std::string> *given = nullptr) {
  rt::Properties properties;
  for (const auto &[key_handle, value] : kwargs) {
    std::string key = text_from_python(key_handle);
    std::string text;
    if (is_bool(value)) {
      text.assign(1, PyObject_IsTrue(value.ptr()) ? '1' : '0');
    } else if (auto index = as_index(value)) {
      text = py::str(*index);
    } else if (auto real = as_float(value)) {
      // An integral float is its integer (clock_profile=1000.0 is 1000 MHz), as TensorInfo
      // takes JSON's 3.0; any other float (1e30 too) goes as its repr, for the property to judge.
      double number = PyFloat_AsDouble(real->ptr());
      text = std::trunc(number) == number && std::fabs(number) < 0x1p63
                 ? std::string(py::str(py::int_(*real)))
                 : std::string(py::str(py::repr(*real)));
    } else if (py::isinstance<py::str>(value)) {
      text = text_from_python(value);
    } else {
      std::string message = call + ": value of '" + key +
                            "' must be a bool, int, float or str, got " + type_name(value) + " " +
                            std::string(py::repr(value));
      if (type_error == nullptr) throw axstream::InvalidArgument(message);
      if (!*type_error) *type_error = message;
      text = "<" + type_name(value) + ">";
    }
    if (given && !py::isinstance<py::str>(value)) {
      std::string repr = py::repr(value);
      if (repr != text) (*given)[key] = repr + " (" + type_name(value) + ", taken as " + text + ")";
    }
    properties[key] = text;
  }
  return properties;
}

// The runtime's message about key='text' with the value as the user gave it (`given` from
// properties_from_kwargs): clock_profile=True was reported as clock_profile='1'.
std::string with_given_values(std::string message,
                              const std::map<std::string, std::string> &given) {
  for (const auto &[key, repr] : given) {
    auto found = message.find(key + "='");
    if (found == std::string::npos) continue;
    size_t value_start = found + key.size() + 2;
    size_t value_end = message.find('\'', value_start);
    if (value_end == std::string::npos) continue;
    message.replace(found, value_end + 1 - found, key + "=" + repr);
  }
  return message;
}

// run()'s lists: a list or tuple, or any other collections.abc.Sequence (a deque, a custom
// sequence: the stubs type them Sequence), but no text, bytes-like object or numpy array, whose
// items are characters, bytes or rows rather than tensors.
bool is_tensor_list(py::handle object) {
  if (py::isinstance<py::list>(object) || py::isinstance<py::tuple>(object)) return true;
  if (py::isinstance<py::str>(object) || PyObject_CheckBuffer(object.ptr())) return false;
  auto sequence = py::module_::import("collections.abc").attr("Sequence");
  return py::isinstance(object, sequence);
}

std::string tensor_label(const char *direction, size_t index, const rt::TensorInfo &info,
                         const std::string &model_name) {
  std::string label = std::string(direction) + " " + std::to_string(index);
  if (!info.name.empty()) label += " ('" + info.name + "')";
  return label + " of '" + model_name + "'";
}

// Checks one numpy argument against its TensorInfo and describes it for the runtime. The array
// must be exactly the bytes the device reads/writes: the tensor's dtype, its padded element
// count, C-contiguous (and writeable for outputs) so the runtime can use its memory directly.
// The shape itself may differ (a flat or squeezed view of the tensor), as Axelera's runtime,
// which sees only the buffer, takes it: their own programs pass 1-D output arrays.
rt::Argument array_argument(py::handle item, const rt::TensorInfo &info, const std::string &label,
                            bool is_output) {
  py::dtype expected_dtype = numpy_dtype(info.dtype);
  std::string expected_text =
      std::string(py::str(expected_dtype)) + " array of shape " + shape_text(info.shape);
  if (!py::isinstance<py::array>(item)) {
    // A numpy scalar's type name is its dtype's ("int8"), which read as if an array was given.
    auto numpy = py::module_::import("numpy");
    bool scalar = py::isinstance(item, numpy.attr("generic"));
    throw axstream::InvalidArgument(
        label + ": expected " + expected_text + ", got " +
        (scalar ? "a numpy " + type_name(item) + " scalar" : type_name(item)));
  }
  auto array = py::reinterpret_borrow<py::array>(item);
  std::vector<int64_t> shape(array.shape(), array.shape() + array.ndim());
  bool dtype_ok = PyObject_RichCompareBool(array.dtype().ptr(), expected_dtype.ptr(), Py_EQ) == 1;
  auto element_count = [](const std::vector<int64_t> &dims) {
    int64_t count = 1;
    for (int64_t dim : dims) count *= dim;
    return count;
  };
  if (!dtype_ok || (shape != info.shape && element_count(shape) != element_count(info.shape)))
    throw axstream::InvalidArgument(label + ": expected " + expected_text + ", got " +
                                    std::string(py::str(array.dtype())) + " " + shape_text(shape));
  if (!(array.flags() & py::array::c_style))
    throw axstream::InvalidArgument(label + ": expected a C-contiguous " + expected_text +
                                    ", got a non-contiguous view (use numpy.ascontiguousarray)");
  rt::Argument argument;
  if (is_output) {
    if (!array.writeable())
      throw axstream::InvalidArgument(label + ": expected a writeable " + expected_text +
                                      ", got a read-only array");
    argument.ptr = array.mutable_data();
  } else {
    argument.ptr = const_cast<void *>(array.data());
  }
  argument.size = static_cast<size_t>(array.nbytes());
  return argument;
}

// A dmabuf/memfd argument: an int fd, any object with fileno() (e.g. DmaBuffer), or a tuple
// (fd, offset) for a tensor that starts `offset` bytes into the buffer.
rt::Argument fd_argument(py::handle item, const std::string &label) {
  py::handle fd_item = item;
  std::optional<py::int_> offset = py::int_(0);
  if (py::isinstance<py::tuple>(item) && py::len(item) == 2) {
    fd_item = item[py::int_(0)];
    offset = as_index(item[py::int_(1)]);
  }
  auto index = as_index(fd_item);
  if (!index && !py::isinstance<py::bool_>(fd_item) && py::hasattr(fd_item, "fileno"))
    index = as_index(fd_item.attr("fileno")());
  if (!index || !offset)
    throw axstream::InvalidArgument(label +
                                    ": expected a file descriptor (int, object with fileno() or "
                                    "(fd, offset)) because the instance was loaded with dmabuf "
                                    "I/O, got " +
                                    type_name(item));
  int overflow = 0;
  long long fd = PyLong_AsLongLongAndOverflow(index->ptr(), &overflow);
  if (overflow != 0 || fd < 0 || fd > INT32_MAX)
    throw axstream::InvalidArgument(label + ": expected a non-negative file descriptor, got " +
                                    std::string(py::str(*index)));
  long long offset_value = PyLong_AsLongLongAndOverflow(offset->ptr(), &overflow);
  if (overflow != 0 || offset_value < 0)
    throw axstream::InvalidArgument(label + ": expected a non-negative offset, got " +
                                    std::string(py::str(*offset)));
  rt::Argument argument;
  argument.fd = static_cast<int>(fd);
  argument.offset = static_cast<size_t>(offset_value);
  return argument;
}

// run()'s list of inputs or outputs as a tuple, which holds the items for the whole call: the
// run goes on without the GIL, so another thread may empty the caller's list meanwhile, and a
// sequence may make its items on the fly.
py::tuple tensor_items(py::handle list, const char *direction, const std::string &model_name,
                       bool dmabuf) {
  if (!is_tensor_list(list))
    throw axstream::InvalidArgument(
        "run() " + std::string(direction) + "s of '" + model_name + "': expected a list of " +
        (dmabuf ? "file descriptors" : "numpy arrays") + ", got " + type_name(list));
  if (py::isinstance<py::tuple>(list)) return py::reinterpret_borrow<py::tuple>(list);
  return py::tuple(py::reinterpret_borrow<py::object>(list));
}

std::vector<rt::Argument> collect_arguments(const py::tuple &sequence, const char *direction,
                                            const std::vector<rt::TensorInfo> &infos,
                                            const std::string &model_name, bool dmabuf,
                                            bool is_output) {
  const std::string plural = std::string(direction) + "s";
  if (sequence.size() != infos.size())
    throw axstream::InvalidArgument("run() " + plural + " of '" + model_name + "': expected " +
                                    std::to_string(infos.size()) + " " +
                                    (infos.size() == 1 ? direction : plural) + ", got " +
                                    std::to_string(sequence.size()));
  std::vector<rt::Argument> arguments;
  arguments.reserve(infos.size());
  for (size_t i = 0; i < infos.size(); ++i) {
    const std::string label = tensor_label(direction, i, infos[i], model_name);
    py::object item = sequence[i];
    arguments.push_back(dmabuf ? fd_argument(item, label)
                               : array_argument(item, infos[i], label, is_output));
  }
  return arguments;
}

void run_instance(rt::ModelInstance &instance, py::handle inputs, py::handle outputs) {
  const auto model = instance.model();  // throws InvalidArgument once released
  const auto &options = instance.options();
  const std::string &model_name = model->name();
  const py::tuple input_items = tensor_items(inputs, "input", model_name, options.input_dmabuf);
  const py::tuple output_items = tensor_items(outputs, "output", model_name, options.output_dmabuf);
  auto input_arguments = collect_arguments(input_items, "input", model->inputs(), model_name,
                                           options.input_dmabuf, false);
  auto output_arguments = collect_arguments(output_items, "output", model->outputs(), model_name,
                                            options.output_dmabuf, true);
  // The tuples keep the arrays alive for the call; they are not touched without the GIL.
  ReleasedGil release_gil;
  instance.run(input_arguments, output_arguments);
}

double seconds(std::chrono::nanoseconds duration) {
  return std::chrono::duration<double>(duration).count();
}

py::dict options_to_python(const rt::InstanceOptions &options) {
  py::dict result;
  result["aipu_cores"] = options.aipu_cores;
  result["num_sub_devices"] = options.num_sub_devices;
  result["input_dmabuf"] = options.input_dmabuf;
  result["output_dmabuf"] = options.output_dmabuf;
  result["device_profiling"] = options.device_profiling;
  result["host_profiling"] = options.host_profiling;
  result["double_buffer"] = options.double_buffer;
  result["elf_in_ddr"] = options.elf_in_ddr;
  return result;
}

hal::CpuAccess cpu_access_from(const std::string &mode) {
  if (mode == "read") return hal::CpuAccess::read;
  if (mode == "write") return hal::CpuAccess::write;
  if (mode == "read_write") return hal::CpuAccess::read_write;
  throw axstream::InvalidArgument("DmaBuffer CPU access '" + mode +
                                  "': expected 'read', 'write' or 'read_write'");
}

// str, bytes or os.PathLike -> the path's bytes as the file system has them (os.fsencode: a
// name that is not UTF-8, held in a str as surrogate escapes, still names its file).
// Anything else is InvalidArgument naming the call, as every other bad argument (os.fsencode's
// own TypeError would not say which call it came from).
std::string fspath(py::handle path, const char *call) {
  try {
    return py::bytes(py::module_::import("os").attr("fsencode")(path));
  } catch (py::error_already_set &error) {
    if (!error.matches(PyExc_TypeError)) throw;
    throw axstream::InvalidArgument(std::string(call) +
                                    ": path must be a str, bytes or os.PathLike, got " +
                                    type_name(path) + " " + std::string(py::repr(path)));
  }
}

// What a Python Context owns besides its C++ Context: every object made through it. Axelera's
// doc says "All objects created by the runtime are owned by the Context that created them" (and
// the C API's context owns its handles), so an object the program kept no reference to lives on
// until the Context is released or collected: `context.device_connect(num_sub_devices=4)` alone
// keeps all four sub-devices reserved. Held as C++ references, which Python's garbage collector
// does not follow, so with the children's keep_alive on their Context they make no cycle.
class OwnedObjects {
 public:
  void add(std::shared_ptr<rt::Object> object) {
    std::vector<std::shared_ptr<rt::Object>> released;
    std::lock_guard lock(mutex_);
    // Released objects have freed their resources already; forgetting them keeps a Context
    // that connects and releases in a loop from growing. (`released` is declared before the
    // lock, so they go after it is unlocked.)
    auto first_released =
        std::stable_partition(objects_.begin(), objects_.end(),
                              [](const std::shared_ptr<rt::Object> &o) { return !o->released(); });
    std::move(first_released, objects_.end(), std::back_inserter(released));
    objects_.erase(first_released, objects_.end());
    objects_.push_back(std::move(object));
  }

  void clear() {
    std::vector<std::shared_ptr<rt::Object>> objects;
    {
      std::lock_guard lock(mutex_);
      objects.swap(objects_);
    }
  }  // the objects go here, outside the lock

 private:
  std::mutex mutex_;
  std::vector<std::shared_ptr<rt::Object>> objects_;
};

constexpr const char *kOwnedObjectsAttribute = "_owned_objects";

// make() (a Context's or Connection's factory, run without the GIL) gives an object, which
// becomes owned by its Context's Python object (see OwnedObjects) and is returned. Called with
// the GIL held, from a method of that Context or of one of its children, so the Context's
// Python object exists (children keep it alive) and py::cast finds it.
template <class Make>
auto made_by_context(Make &&make) {
  decltype(make()) object;
  {
    ReleasedGil release_gil;  // making it may wait for the device or load a model
    object = make();
  }
  py::object context = py::cast(object->context());
  // dict.setdefault: one OwnedObjects per Context even if two threads make its first child.
  py::object owned =
      context.attr("__dict__")
          .attr("setdefault")(kOwnedObjectsAttribute, py::type::of<OwnedObjects>()());
  owned.cast<OwnedObjects &>().add(object);
  return object;
}

// Context.release() and the end of its with block: release the Context and every child, then
// drop the Context's references to them.
void release_context(py::handle context_object) {
  auto &context = context_object.cast<rt::Context &>();
  py::object owned = py::getattr(context_object, kOwnedObjectsAttribute, py::none());
  OwnedObjects *owned_objects = owned.is_none() ? nullptr : owned.cast<OwnedObjects *>();
  ReleasedGil release_gil;  // may wait for runs of other threads
  context.release();
  if (owned_objects != nullptr) owned_objects->clear();
}

// The bound classes (declared together in PYBIND11_MODULE, defined by the functions below).
using ObjectClass = py::class_<rt::Object, std::shared_ptr<rt::Object>>;
using ContextClass = py::class_<rt::Context, rt::Object, std::shared_ptr<rt::Context>>;
using ConnectionClass = py::class_<rt::Connection, rt::Object, std::shared_ptr<rt::Connection>>;
using ModelClass = py::class_<rt::Model, rt::Object, std::shared_ptr<rt::Model>>;
using InstanceClass = py::class_<rt::ModelInstance, rt::Object, std::shared_ptr<rt::ModelInstance>>;
using RunProfileClass = py::class_<rt::RunProfile>;
using DmaBufferClass = py::class_<hal::DmaBuffer>;
using OwnedObjectsClass = py::class_<OwnedObjects>;

// DmaBuffer: allocation, its fd, CPU access and numpy views.
void define_dma_buffer(DmaBufferClass &dma_buffer) {
  dma_buffer
      .def(py::init([](size_t size, const std::string &name) {
             return std::make_unique<hal::DmaBuffer>(hal::DmaBuffer::allocate(size, name));
           }),
           py::arg("size"), py::arg("name") = "axstream-buffer",
           "Allocate `size` bytes (at least 1); `name` labels the buffer in /proc/<pid>/fd.")
      .def_property_readonly("fd", &hal::DmaBuffer::fd,
                             "The buffer's file descriptor (owned by this object).")
      .def("fileno", &hal::DmaBuffer::fd, "The buffer's file descriptor, so run() accepts it.")
      .def("dup_fd", &hal::DmaBuffer::dup_fd,
           "A new file descriptor of the same buffer, for an owner that closes it.")
      .def_property_readonly("size", &hal::DmaBuffer::size, "Size in bytes.")
      .def_property_readonly(
          "backend",
          [](const hal::DmaBuffer &self) {
            return std::string(hal::dma_buffer_backend_name(self.backend()));
          },
          "Where the memory comes from: 'dma_heap', 'udmabuf' or 'memfd'.")
      .def_property_readonly("is_dmabuf", &hal::DmaBuffer::is_dmabuf,
                             "True for a real dmabuf (False for the memfd fallback).")
      .def(
          "begin_cpu_access",
          [](const hal::DmaBuffer &self, const std::string &mode) {
            self.begin_cpu_access(cpu_access_from(mode));
          },
          py::arg("mode") = "read_write",
          "Start CPU access ('read', 'write' or 'read_write'): DMA_BUF_IOCTL_SYNC on dmabufs.")
      .def(
          "end_cpu_access",
          [](const hal::DmaBuffer &self, const std::string &mode) {
            self.end_cpu_access(cpu_access_from(mode));
          },
          py::arg("mode") = "read_write", "End CPU access started with begin_cpu_access().")
      .def(
          "array",
          [](py::object self, py::object shape, py::object dtype) {
            auto numpy = py::module_::import("numpy");
            py::dtype type = py::dtype::from_args(dtype);
            py::tuple dims = py::tuple(numpy.attr("atleast_1d")(shape).attr("tolist")());
            auto &buffer = self.cast<hal::DmaBuffer &>();
            // Dimensions from the caller: non-negative ints, and a product that no size_t
            // wrap-around can make fit (pybind11's caster raised a bare RuntimeError for -1).
            size_t bytes = static_cast<size_t>(type.itemsize());
            size_t count = 1;
            bool fits = true;
            for (auto dim : dims) {
              auto index = as_index(dim);
              if (!index || *index < py::int_(0))
                throw axstream::InvalidArgument("DmaBuffer.array: shape " +
                                                std::string(py::repr(shape)) +
                                                ": expected non-negative integer dimensions");
              unsigned long long value = PyLong_AsUnsignedLongLong(index->ptr());
              if (PyErr_Occurred()) {  // beyond 64 bits: fits no buffer
                PyErr_Clear();
                fits = false;
              }
              fits = fits && !__builtin_mul_overflow(count, value, &count);
            }
            fits = fits && !__builtin_mul_overflow(count, bytes, &bytes);
            std::string what = std::string(py::str(type)) + " " + std::string(py::str(shape));
            if (!fits)
              throw axstream::InvalidArgument("DmaBuffer.array: " + what +
                                              " needs more than 2^64 bytes, the buffer has " +
                                              std::to_string(buffer.size()));
            if (bytes > buffer.size())
              throw axstream::InvalidArgument("DmaBuffer.array: " + std::to_string(bytes) +
                                              " bytes of " + what + " do not fit the buffer's " +
                                              std::to_string(buffer.size()) + " bytes");
            return numpy.attr("frombuffer")(self, type, py::int_(count)).attr("reshape")(dims);
          },
          py::arg("shape"), py::arg("dtype") = py::dtype::of<int8_t>(),
          "A writeable numpy view of the start of the buffer with `shape` and `dtype` (int8 by "
          "default), e.g. buffer.array(info.shape, info.dtype). The view keeps the buffer alive.")
      .def("__repr__", [](const hal::DmaBuffer &self) {
        return "<axelera.runtime.DmaBuffer fd=" + std::to_string(self.fd()) +
               " size=" + std::to_string(self.size()) +
               " backend=" + hal::dma_buffer_backend_name(self.backend()) + ">";
      });
  dma_buffer.def_buffer([](hal::DmaBuffer &self) {
    return py::buffer_info(self.data(), 1, py::format_descriptor<uint8_t>::format(), 1,
                           {static_cast<py::ssize_t>(self.size())}, {1});
  });
}

// Object: what every runtime object has (its context, release).
void define_object(ObjectClass &object) {
  object
      .def_property_readonly(
          "context",
          [](rt::Object &self) -> std::shared_ptr<rt::Context> {
            if (auto owner = self.context()) return owner;
            // The Context owns itself.
            return std::dynamic_pointer_cast<rt::Context>(self.shared_from_this());
          },
          "Reference to the Context that owns this object.")
      .def(
          "release",
          [](rt::Object &self) {
            ReleasedGil release_gil;  // may wait for runs of other threads
            self.release();
          },
          "release(self)\n--\n\nRelease the object and all its children.")
      // Every object, not only the Context, releases itself at the end of a with block, so
      // `with context.device_connect() as connection:` frees the sub-devices when it ends.
      .def(
          "__enter__", [](py::object self) { return self; },
          "__enter__(self)\n--\n\nReturn the object itself (for use in a with statement).")
      .def(
          "__exit__",
          [](rt::Object &self, py::args) {
            ReleasedGil release_gil;
            self.release();
            return false;
          },
          "__exit__(self, *args)\n--\n\nRelease the object and all its children at the end of "
          "the with block.")
      .def_property_readonly("released", &rt::Object::released,
                             "True once release() was called on this object or an owner "
                             "(axstream extension).")
      .def("__repr__", [](rt::Object &self) {
        return "<axelera.runtime." + self.describe() + (self.released() ? " (released)>" : ">");
      });
}

// Context: devices, their configuration, connections and models.
// Context's lifetime: construction, the with statement and release.
void define_context_lifetime(ContextClass &context) {
  context
      .def(py::init([] { return rt::Context::create(); }),
           "__init__(self)\n--\n\nCreate a new runtime Context.")
      .def(
          "__enter__", [](std::shared_ptr<rt::Context> self) { return self; },
          "__enter__(self)\n--\n\nReturn the context itself (for use in a with statement).")
      .def(
          "__exit__",
          [](py::object self, py::args) {
            release_context(self);
            return false;
          },
          "__exit__(self, *args)\n--\n\n"
          "Release the context and all its children at the end of the with block.")
      .def(
          "release", [](py::object self) { release_context(self); },
          "release(self)\n--\n\nRelease the context and all its children.\n\n"
          "This function is called automatically when Context is used as a context manager.");
}

// Context's devices: listing, configuring and reading their configuration.
void define_context_devices(ContextClass &context) {
  context
      .def(
          "list_devices",
          [](rt::Context &self) {
            py::list result;
            for (const auto &info : self.list_devices()) result.append(to_python(info));
            return result;
          },
          "list_devices(self)\n--\n\nList all devices on the system.\n\n:rtype: "
          "list[DeviceInfo]")
      .def(
          "configure_device",
          [](rt::Context &self, py::object device, py::kwargs kwargs) {
            ensure_alive(self);
            auto info = device_from_python(self, device, "configure_device");
            std::optional<std::string> type_error;
            std::map<std::string, std::string> given;
            auto settings = properties_from_kwargs(kwargs, "configure_device(" + info.name + ")",
                                                   &type_error, &given);
            try {
              ReleasedGil release_gil;
              return self.configure_device(info, settings);
            } catch (const axstream::InvalidArgument &error) {
              // Every key is known (else InvalidConfiguration): the value's type is the problem.
              if (type_error) throw axstream::InvalidArgument(*type_error);
              if (given.empty()) throw;
              throw axstream::InvalidArgument(with_given_values(error.what(), given));
            }
          },
          py::arg("device"),
          "configure_device(self, device, **kwargs)\n--\n\n"
          "Configure a device. Returns True if the configuration setting is complete, False if "
          "it is pending (poll device_ready()).\n\n"
          "Valid properties: clock_profile (MHz, default 800), clock_profile_core_0..3 (MHz, "
          "default 800), mvm_utilisation_core_0..3 (percent, default 100), ddr_size (bytes of "
          "the board's DDR to use, default all of it: DeviceInfo.max_memory), device_firmware (0 "
          "or 1: reload the firmware; the simulated device has nothing to reload). An unknown key "
          "raises InvalidConfiguration, an out-of-range value InvalidArgument.\n\n:rtype: bool")
      .def(
          "device_ready",
          [](rt::Context &self, py::object device) {
            ensure_alive(self);
            return self.device_ready(device_from_python(self, device, "device_ready"));
          },
          py::arg("device"),
          "device_ready(self, device)\n--\n\n"
          "Returns True if the configuration setting is complete, False if it is pending.\n\n"
          ":rtype: bool")
      .def(
          "read_device_configuration",
          [](rt::Context &self, py::object device) {
            ensure_alive(self);
            return self.read_device_configuration(
                device_from_python(self, device, "read_device_configuration"));
          },
          py::arg("device"),
          "read_device_configuration(self, device)\n--\n\n"
          "Read all available configuration properties of the device.\n\n:rtype: dict[str, str]");
}

// What a Context makes: connections to sub-devices and loaded models.
void define_context_connections_and_models(ContextClass &context) {
  context
      .def(
          "device_connect",
          [](rt::Context &self, py::object device, py::object num_sub_devices_object,
             py::kwargs kwargs) {
            ensure_alive(self);
            int num_sub_devices =
                count_from_python(num_sub_devices_object, "device_connect: num_sub_devices");
            std::unique_ptr<hal::DeviceInfo> info;
            if (!device.is_none())
              info = std::make_unique<hal::DeviceInfo>(
                  device_from_python(self, device, "device_connect"));
            auto properties = properties_from_kwargs(kwargs, "device_connect");
            return made_by_context(
                [&] { return self.device_connect(info.get(), num_sub_devices, properties); });
          },
          // keep_alive<0, 1>: the Python Context lives as long as the Connection, so
          // `connection.context` returns the very same Python object.
          py::keep_alive<0, 1>(), py::arg("device") = py::none(),
          py::arg("num_sub_devices") = py::int_(1),
          "device_connect(self, device=None, num_sub_devices=1, **kwargs)\n--\n\n"
          "Connect to one or more sub-devices.\n\n"
          "This reserves the sub-devices so that other processes cannot use them (DeviceInUse "
          "names the holder otherwise). device is a DeviceInfo, a device name or an index into "
          "list_devices(); None picks the first device with num_sub_devices free sub-devices. "
          "device_firmware_check (0 or 1) is the one kwarg. The returned Connection is used to "
          "load models and run them on the sub-devices.\n\n:rtype: Connection")
      .def(
          "load_model",
          [](rt::Context &self, py::object path) {
            ensure_alive(self);
            auto path_text = fspath(path, "load_model");
            return made_by_context([&] { return self.load_model(path_text); });
          },
          // keep_alive<0, 1>: the Python Context lives as long as the Model, so
          // `model.context` returns the very same Python object.
          py::keep_alive<0, 1>(), py::arg("path"),
          "load_model(self, path)\n--\n\n"
          "Load a model from a file: a model package directory or its model.json.\n\n"
          "The returned model can be loaded onto multiple Connection objects using "
          "Connection.load_model_instance(). A missing or corrupt package raises InvalidArgument "
          "naming the file and field.\n\n:rtype: Model");
}

void define_context(ContextClass &context) {
  define_context_lifetime(context);
  define_context_devices(context);
  define_context_connections_and_models(context);
}

// Connection: loading model instances onto the reserved sub-devices.
void define_connection(ConnectionClass &connection) {
  connection
      .def(
          "load_model_instance",
          [](rt::Connection &self, py::object model_object, py::kwargs kwargs) {
            // Not a typed parameter: pybind11 would answer a str or a Connection with a
            // TypeError listing the signature, where every other bad argument is an
            // InvalidArgument naming it. None goes on to the runtime's own "needs a model".
            ensure_alive(self);
            std::shared_ptr<rt::Model> model;
            if (py::isinstance<rt::Model>(model_object))
              model = model_object.cast<std::shared_ptr<rt::Model>>();
            else if (!model_object.is_none())
              throw axstream::InvalidArgument(self.describe() +
                                              ": load_model_instance: model must be a Model from "
                                              "Context.load_model(), got " +
                                              type_name(model_object) + " " +
                                              std::string(py::repr(model_object)));
            auto properties = properties_from_kwargs(kwargs, "load_model_instance");
            return made_by_context([&] { return self.load_model_instance(model, properties); });
          },
          // keep_alive<0, 1>: the instance runs on this connection's sub-devices; keep the
          // Python Connection alive while the instance is.
          // keep_alive<0, 2>: likewise the Python Model, so `instance.model` is the same object.
          py::keep_alive<0, 1>(), py::keep_alive<0, 2>(), py::arg("model"),
          "load_model_instance(self, model, **kwargs)\n--\n\n"
          "Load a model onto the sub-devices.\n\n"
          "Valid kwargs (bool or int values): aipu_cores (0: L2 resources to allocate, set to "
          "batch size), num_sub_devices (0: sub-devices to use, set to the batch size of the "
          "model), input_dmabuf (False: inputs are dmabuf file descriptors), output_dmabuf "
          "(False: outputs are dmabuf file descriptors), device_profiling (False), "
          "host_profiling (False), double_buffer (False), elf_in_ddr (True). Unknown keys or bad "
          "values raise InvalidArgument.\n\n:rtype: ModelInstance")
      .def_property_readonly("device_name", &rt::Connection::device_name,
                             "Name of the connected device (axstream extension).")
      .def_property_readonly("num_sub_devices", &rt::Connection::num_sub_devices,
                             "Number of reserved sub-devices (axstream extension).");
}

// Model: its properties and tensors.
void define_model(ModelClass &model) {
  model
      .def_property_readonly(
          "properties", &rt::Model::properties,
          "dict of the model's properties:\n\n"
          "* preamble_graph: relative path to a preamble ONNX file containing the initial nodes "
          "of the model, run on the host ('' when absent).\n"
          "* postamble_graph: relative path to a postamble ONNX file containing the final nodes "
          "of the model, run on the host ('' when absent).\n"
          "* input_tensor_layout: always NHWC in this version.")
      // The documented properties are also attributes: the doc lists them under the heading
      // "properties" as a class lists its members, so programs may read model.preamble_graph.
      .def_property_readonly(
          "preamble_graph", [](rt::Model &self) { return self.properties().at("preamble_graph"); },
          "Relative path to the preamble ONNX file ('' when absent); as "
          "properties['preamble_graph'].")
      .def_property_readonly(
          "postamble_graph",
          [](rt::Model &self) { return self.properties().at("postamble_graph"); },
          "Relative path to the postamble ONNX file ('' when absent); as "
          "properties['postamble_graph'].")
      .def_property_readonly(
          "input_tensor_layout",
          [](rt::Model &self) { return self.properties().at("input_tensor_layout"); },
          "Always 'NHWC' in this version; as properties['input_tensor_layout'].")
      .def_property_readonly("name", &rt::Model::name, "Name of the model (axstream extension).")
      .def(
          "inputs", [](rt::Model &self) { return to_python(self.inputs()); },
          "inputs(self)\n--\n\n"
          "Return information about the input tensors to the model.\n\n:rtype: list[TensorInfo]")
      .def(
          "outputs", [](rt::Model &self) { return to_python(self.outputs()); },
          "outputs(self)\n--\n\n"
          "Return information about the output tensors of the model.\n\n"
          ":rtype: list[TensorInfo]");
}

// ModelInstance: run() and what it was loaded with.
void define_instance(InstanceClass &instance) {
  instance
      .def("run", &run_instance, py::arg("inputs"), py::arg("outputs"),
           "run(self, inputs, outputs)\n--\n\n"
           "Run the model instance.\n\n"
           "If the model instance was created with input_dmabuf=True then inputs must be a list "
           "of file descriptors. Otherwise it should be a list of numpy arrays, one per model "
           "input, each C-contiguous with the TensorInfo's dtype and (padded) shape, or any "
           "shape with as many elements (e.g. flat).\n\n"
           "If the model instance was created with output_dmabuf=True then outputs must be a "
           "list of file descriptors. Otherwise it should be a list of writeable numpy arrays "
           "that receive the results in place.\n\n"
           "The GIL is released while the device runs, so several threads can run instances in "
           "parallel. On failure an exception is raised (InvalidArgument naming the tensor and "
           "what was expected for bad arguments).\n\n:rtype: None")
      .def("profile", &rt::ModelInstance::profile,
           "profile(self)\n--\n\n"
           "Timing of the last run (axstream extension): a RunProfile. Host timing needs "
           "host_profiling=True, device timing device_profiling=True at load_model_instance.")
      .def_property_readonly(
          "options", [](rt::ModelInstance &self) { return options_to_python(self.options()); },
          "The load_model_instance options in effect, as a dict (axstream extension).")
      .def_property_readonly("model", &rt::ModelInstance::model,
                             "The Model this instance runs (axstream extension).");
}

// RunProfile: the timing of the last run.
void define_run_profile(RunProfileClass &run_profile) {
  run_profile
      .def_property_readonly(
          "host_total", [](const rt::RunProfile &p) { return seconds(p.host_total); },
          "Seconds the whole run() took on the host.")
      .def_property_readonly(
          "device_compute", [](const rt::RunProfile &p) { return seconds(p.device_compute); },
          "Device compute seconds, summed over the cores.")
      .def_property_readonly(
          "per_core",
          [](const rt::RunProfile &p) {
            std::vector<double> result;
            for (auto duration : p.per_core) result.push_back(seconds(duration));
            return result;
          },
          "Device compute seconds per core (list of float).")
      .def_readonly("bytes_copied", &rt::RunProfile::bytes_copied,
                    "Bytes the runtime copied on the host for the last run (0 when zero-copy).")
      .def_readonly("runs", &rt::RunProfile::runs, "Runs of this instance so far.")
      .def("__repr__", [](const rt::RunProfile &p) {
        std::ostringstream out;
        out << "RunProfile(host_total=" << seconds(p.host_total)
            << ", device_compute=" << seconds(p.device_compute) << ", per_core=[";
        for (size_t i = 0; i < p.per_core.size(); ++i)
          out << (i ? ", " : "") << seconds(p.per_core[i]);
        out << "], bytes_copied=" << p.bytes_copied << ", runs=" << p.runs << ")";
        return out.str();
      });
}

}  // namespace

PYBIND11_MODULE(_axelera_runtime, m) {
  m.doc() =
      "C++ core of axelera.runtime (import axelera.runtime instead). Binds the axstream C++ "
      "runtime: Context, Connection, Model, ModelInstance and the runtime's exceptions.";
  axstream::python::put_libgcc_unwinder_first();
  // At the end of Py_FinalizeEx, before exit() runs the libraries' static destructors.
  Py_AtExit(wait_for_calls_without_gil);
  // A forked child has none of the parent's threads, so none of their calls to wait for.
  ::pthread_atfork(nullptr, nullptr, [] { g_calls_without_gil = 0; });
  register_exceptions(m);
  m.attr("__version__") = AXSTREAM_VERSION;
  // Classes take their __module__ and the type names in signatures from the module's name at
  // creation: make them read axelera.runtime.X (the public name), restored at the end.
  py::object extension_name = m.attr("__name__");
  m.attr("__name__") = "axelera.runtime";

  m.def("_reset_devices_for_testing", &hal::reset_devices_for_testing,
        "Tests only: forget the enumerated devices so the next call re-reads AXSTREAM_SIM_* and "
        "AXSTREAM_RUNTIME_DIR. Objects created before keep their devices.");

  // Every class is declared before any method so docstrings name the right types.
  ObjectClass object(
      m, "Object",
      "Abstract base class for all objects in the runtime.\n\n"
      "All objects created by the runtime are owned by the Context that created them. When the "
      "Context is released, all objects created by it are also released; using a released object "
      "raises InvalidArgument.");
  // py::dynamic_attr: the Context's Python object holds what it owns (OwnedObjects).
  ContextClass context(
      m, "Context", py::dynamic_attr(),
      "The Context object is the root object of the runtime.\n\n"
      "A Context is used to create and manage all other objects in the runtime. Normally you "
      "would create it in a with statement::\n\n"
      "    with axr.Context() as context:\n"
      "        devices = context.list_devices()\n\n"
      "Alternatively, call release() to release the context and all its children.");
  ConnectionClass connection(
      m, "Connection",
      "A connection to one or more sub-devices (AIPU cores), reserved for this process until the "
      "connection is released.");
  ModelClass model(m, "Model", "A model object that can be loaded onto a Connection object.");
  InstanceClass instance(m, "ModelInstance",
                         "A model instance that has been loaded onto a Connection object.");
  RunProfileClass run_profile(
      m, "RunProfile",
      "Timing of the last ModelInstance.run() (axstream extension), filled when the instance "
      "was loaded with host_profiling=True and/or device_profiling=True. Durations are in "
      "seconds.");

  DmaBufferClass dma_buffer(
      m, "DmaBuffer", py::buffer_protocol(),
      "A device-visible buffer for zero-copy run() (axstream extension): a dmabuf from a DMA heap "
      "or /dev/udmabuf where the kernel offers one, a sealed memfd otherwise. Pass it (or its "
      "fd, or (fd, offset)) to run() of an instance loaded with input_dmabuf/output_dmabuf; "
      "read and write it from numpy through array(). Freed when the object and every array "
      "viewing it are gone.");

  define_dma_buffer(dma_buffer);
  OwnedObjectsClass(m, "_OwnedObjects",
                    "What a Context owns: every object made through it (internal).")
      .def(py::init<>());

  // The documented objects carry their signatures as CPython text signatures ("name(self, ...)"
  // then "\n--\n\n" heading the docstring), so inspect.signature() reads the documented
  // parameters and defaults (pybind11's own "name(self: T, ...) -> R" line is not parseable).
  py::options text_signatures;
  text_signatures.disable_function_signatures();
  define_object(object);
  define_context(context);
  define_connection(connection);
  define_model(model);
  define_instance(instance);
  text_signatures.enable_function_signatures();
  define_run_profile(run_profile);

  m.attr("__name__") = extension_name;
}
