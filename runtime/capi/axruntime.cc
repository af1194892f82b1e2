// axruntime.h over the C++ runtime. Every entry point runs its body through `guarded`, so no
// exception crosses the C boundary: each becomes an axrResult plus the calling thread's last
// error message (and an AXR_LOG_ERROR message to the context's logger).
#include "axruntime/axruntime.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <new>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "handles.h"

namespace runtime = axstream::runtime;
using axr_capi::CapiError;
using axr_capi::Registry;

namespace {

constexpr unsigned int kApiVersionMajor = 1;
constexpr unsigned int kApiVersionMinor = 0;

struct LastError {
  axrResult result = AXR_SUCCESS;
  std::string message;
};
thread_local LastError t_last_error;

void set_last_error(axrResult result, const char *message) noexcept {
  t_last_error.result = result;
  try {
    t_last_error.message = message;
  } catch (const std::bad_alloc &) {
    t_last_error.message.clear();
  }
}

axrResult result_of(axstream::ErrorKind kind) noexcept {
  using axstream::ErrorKind;
  switch (kind) {
    case ErrorKind::ConnectionError:
      return AXR_ERROR_CONNECTION_ERROR;
    case ErrorKind::DeviceInUse:
      return AXR_ERROR_DEVICE_IN_USE;
    case ErrorKind::IncompatibleDevice:
      return AXR_ERROR_INCOMPATIBLE_DEVICE;
    case ErrorKind::InternalError:
      return AXR_ERROR_INTERNAL_ERROR;
    case ErrorKind::InvalidArgument:
      return AXR_ERROR_INVALID_ARGUMENT;
    case ErrorKind::InvalidConfiguration:
      return AXR_ERROR_INVALID_CONFIGURATION;
    case ErrorKind::NotImplemented:
      return AXR_ERROR_NOT_IMPLEMENTED;
    case ErrorKind::Pending:
      return AXR_ERROR_PENDING_ERROR;
    case ErrorKind::UnknownError:
      return AXR_ERROR_UNKNOWN_ERROR;
  }
  return AXR_ERROR_UNKNOWN_ERROR;
}

// State of one API call: its name (prefixed to error messages) and the context whose logger
// hears about it, once a handle has been resolved. Handles are held shared for the whole call,
// so another thread's axr_destroy cannot free them under it.
struct Call {
  explicit Call(const char *function) : function(function) {}

  const char *function;
  std::shared_ptr<axrContext> context;
  // What the call reports as its last error: AXR_SUCCESS, a PENDING result it returns, or the
  // error it failed with. Recorded only after the call's last message to the logger, so calls
  // the logger itself makes (docs/c-api.md allows them) cannot replace it.
  axrResult outcome = AXR_SUCCESS;
  std::string outcome_message;

  template <class T>
  std::shared_ptr<T> checked(T *handle, const char *what) {
    return Registry::instance().checked(handle, what, &context);
  }
  template <class T>
  auto runtime_of(T *handle, const char *what) {
    return Registry::instance().runtime_of(handle, what, &context);
  }
  void log(axrLogLevel level, const std::string &message) const noexcept {
    if (context != nullptr) context->log(level, std::string(function) + ": " + message);
  }
  bool wants_log(axrLogLevel level) const {
    return context != nullptr && context->wants_log(level);
  }
  // A non-error result the call returns (AXR_ERROR_PENDING_ERROR), with its message.
  void report(axrResult result, const std::string &message) {
    outcome = result;
    outcome_message = std::string(function) + ": " + message;
  }
  void fail(axrResult result, const char *message) noexcept {
    outcome = result;
    try {
      std::string text = std::string(function) + ": " + message;
      if (context != nullptr) context->log(AXR_LOG_ERROR, text);
      set_last_error(result, text.c_str());
    } catch (const std::bad_alloc &) {
      set_last_error(result, "out of memory while reporting an error");
    }
  }
};

// Runs `body(call)`; on any exception records the last error and returns `failure`.
template <class R, class Body>
R guarded(const char *function, R failure, Body &&body) noexcept {
  Call call(function);
  set_last_error(AXR_SUCCESS, "");
  try {
    R result = body(call);
    set_last_error(call.outcome, call.outcome_message.c_str());
    return result;
  } catch (const CapiError &error) {
    call.fail(error.result(), error.what());
  } catch (const axstream::Error &error) {
    call.fail(result_of(error.kind()), error.what());
  } catch (const std::bad_alloc &) {
    call.fail(AXR_ERROR_RUNTIME_ERROR, "out of memory");
  } catch (const std::exception &error) {
    call.fail(AXR_ERROR_RUNTIME_ERROR, error.what());
  } catch (...) {
    call.fail(AXR_ERROR_UNKNOWN_ERROR, "unknown exception");
  }
  if constexpr (std::is_same_v<R, axrResult>) {
    return call.outcome;  // the mapped error, not a fixed failure value
  } else {
    return failure;
  }
}

template <class Body>
void guarded_void(const char *function, Body &&body) noexcept {
  guarded(function, 0, [&](Call &call) {
    body(call);
    return 0;
  });
}

// An enum argument's value as the int a C caller passed: loading a value outside the enum's range
// as the C++ enum type is undefined (clang's -fsanitize=enum reports it), and C callers may pass
// any int.
template <class Enum>
std::underlying_type_t<Enum> raw_value(const Enum &value) {
  std::underlying_type_t<Enum> raw;
  std::memcpy(&raw, &value, sizeof raw);
  return raw;
}

void require(const void *pointer, const char *what) {
  if (pointer == nullptr)
    throw CapiError(AXR_ERROR_INVALID_ARGUMENT, std::string(what) + " is NULL");
}

template <size_t N>
void copy_string(char (&destination)[N], const std::string &source) {
  std::snprintf(destination, N, "%s", source.c_str());
}

std::string trim(const std::string &text) {
  const char *space = " \t\r\n";
  auto first = text.find_first_not_of(space);
  if (first == std::string::npos) return {};
  return text.substr(first, text.find_last_not_of(space) - first + 1);
}

// "key=value;key=value" (';' or newline between entries, blanks around keys and values ignored).
runtime::Properties parse_properties(const char *text) {
  runtime::Properties properties;
  if (text == nullptr) return properties;
  std::string entry;
  std::istringstream stream(text);
  while (std::getline(stream, entry, ';')) {
    std::istringstream lines(entry);
    std::string line;
    while (std::getline(lines, line)) {
      line = trim(line);
      if (line.empty()) continue;
      auto equals = line.find('=');
      std::string key = trim(line.substr(0, equals));
      if (equals == std::string::npos || key.empty()) {
        throw CapiError(
            AXR_ERROR_VALUE_ERROR,
            "properties entry '" + line + "' is not of the form key=value (in '" + text + "')");
      }
      properties[key] = trim(line.substr(equals + 1));
    }
  }
  return properties;
}

axrProperties *new_properties(axrContext *owner, axrObject *parent, runtime::Properties values) {
  auto properties = std::make_unique<axrProperties>(owner);
  properties->runtime->values = std::move(values);
  return Registry::instance().add(std::move(properties), {parent});
}

runtime::Properties properties_or_empty(Call &call, axrProperties *properties) {
  if (properties == nullptr) return {};
  std::shared_ptr<axrContext> ignored;
  auto store = Registry::instance().runtime_of(properties, "properties", &ignored);
  std::lock_guard lock(store->mutex);
  return store->values;
}

axrDeviceInfo to_c(const runtime::DeviceInfo &device) {
  axrDeviceInfo info{};
  copy_string(info.name, device.name);
  info.subdevice_count = static_cast<size_t>(std::max(device.subdevice_count, 0));
  info.max_memory = static_cast<size_t>(device.max_memory);
  info.in_use = device.in_use;
  copy_string(info.in_use_by, device.in_use_by);
  info.board_type = static_cast<axrBoardType>(device.board_type);
  copy_string(info.firmware_version, device.firmware_version);
  info.board_revision = device.board_revision;
  copy_string(info.flashed_firmware_version, device.flashed_firmware_version);
  copy_string(info.board_controller_firmware_version, device.board_controller_firmware_version);
  copy_string(info.board_controller_board_type, device.board_controller_board_type);
  return info;
}

// The runtime's current DeviceInfo of the device the caller's axrDeviceInfo names.
runtime::DeviceInfo find_device(runtime::Context &context, const axrDeviceInfo *device) {
  require(device, "device");
  std::string name(device->name, strnlen(device->name, sizeof device->name));
  auto devices = context.list_devices();
  for (const auto &candidate : devices) {
    if (candidate.name == name) return candidate;
  }
  std::string known;
  for (const auto &candidate : devices) known += (known.empty() ? "" : ", ") + candidate.name;
  throw CapiError(AXR_ERROR_INVALID_ARGUMENT, "no device named '" + name + "' (devices: " +
                                                  (known.empty() ? "none" : known) + ")");
}

size_t element_bits(axstream::engine::DType dtype) {
  return 8 * axstream::engine::dtype_size(dtype);
}

size_t element_type(axstream::engine::DType dtype) {
  using axstream::engine::DType;
  switch (dtype) {
    case DType::f32:
    case DType::f16:
    case DType::f64:
      return AXR_FLOAT;
    case DType::bf16:
      // 16 bits of AXR_FLOAT already mean IEEE half: the C API has no way to say bfloat16.
      throw CapiError(AXR_ERROR_NOT_IMPLEMENTED,
                      "bfloat16 tensors have no axrTensorInfo type (AXR_FLOAT of 16 bits is IEEE "
                      "float16)");
    case DType::i8:
    case DType::i16:
    case DType::i32:
    case DType::i64:
      return AXR_SIGNED;
    case DType::u8:
    case DType::u16:
    case DType::u32:
    case DType::u64:
    case DType::bool_:
      return AXR_UNSIGNED;
  }
  return AXR_UNSIGNED;
}

axrTensorInfo to_c(const runtime::TensorInfo &tensor) {
  if (tensor.shape.size() > AXR_MAX_TENSOR_DIMS) {
    throw CapiError(AXR_ERROR_NOT_IMPLEMENTED, "tensor '" + tensor.name + "' has " +
                                                   std::to_string(tensor.shape.size()) +
                                                   " dimensions, axrTensorInfo holds at most " +
                                                   std::to_string(AXR_MAX_TENSOR_DIMS));
  }
  axrTensorInfo info{};
  info.ndims = tensor.shape.size();
  for (size_t d = 0; d < info.ndims; ++d) {
    info.dims[d] = static_cast<size_t>(tensor.shape[d]);
    if (d < tensor.padding.size()) {
      info.padding[d][0] = static_cast<size_t>(tensor.padding[d].first);
      info.padding[d][1] = static_cast<size_t>(tensor.padding[d].second);
    }
  }
  info.bits = element_bits(tensor.dtype);
  info.type = element_type(tensor.dtype);
  copy_string(info.name, tensor.name);
  info.scale = tensor.scale;
  info.zero_point = tensor.zero_point;
  return info;
}

axrTensorInfo model_tensor(const char *function, axrModel *model, size_t n, bool input) {
  return guarded(function, axrTensorInfo{}, [&](Call &call) {
    auto tensors = input ? call.runtime_of(model, "model")->inputs()
                         : call.runtime_of(model, "model")->outputs();
    if (n >= tensors.size()) {
      throw CapiError(AXR_ERROR_INVALID_ARGUMENT,
                      std::string(input ? "input " : "output ") + std::to_string(n) +
                          " requested, the model has " + std::to_string(tensors.size()));
    }
    return to_c(tensors[n]);
  });
}

// load_model_instance's documented keys; anything else is an unknown configuration.
const std::set<std::string> kInstanceKeys = {"aipu_cores",    "num_sub_devices",  "input_dmabuf",
                                             "output_dmabuf", "device_profiling", "host_profiling",
                                             "double_buffer", "elf_in_ddr"};

std::string join(const std::set<std::string> &words) {
  std::string joined;
  for (const auto &word : words) joined += (joined.empty() ? "" : ", ") + word;
  return joined;
}

// Bad values of known keys are AXR_ERROR_VALUE_ERROR (the runtime says InvalidArgument).
template <class Body>
auto value_errors(Body &&body) {
  try {
    return body();
  } catch (const axstream::Error &error) {
    if (error.kind() == axstream::ErrorKind::InvalidArgument) {
      throw CapiError(AXR_ERROR_VALUE_ERROR, error.what());
    }
    throw;
  }
}

runtime::Argument to_runtime(const axrArgument &argument, const char *direction, size_t index) {
  // fd 0 or -1 with a pointer means host memory (axruntime.h's convention).
  int fd = argument.fd > 0 ? argument.fd : -1;
  if (argument.ptr == nullptr && fd < 0) {
    throw CapiError(AXR_ERROR_INVALID_ARGUMENT,
                    std::string(direction) + " " + std::to_string(index) +
                        ": ptr is NULL and fd is " + std::to_string(argument.fd) +
                        ", expected host memory in ptr or a dmabuf fd");
  }
  runtime::Argument converted;
  converted.ptr = argument.ptr;
  converted.fd = fd;
  converted.offset = argument.offset;
  converted.size = argument.size;
  return converted;
}

std::vector<runtime::Argument> to_runtime(const axrArgument *arguments, size_t count,
                                          const char *direction) {
  if (arguments == nullptr && count != 0) {
    throw CapiError(AXR_ERROR_INVALID_ARGUMENT, std::string(direction) + "s is NULL but num_" +
                                                    direction + "s is " + std::to_string(count));
  }
  std::vector<runtime::Argument> converted;
  converted.reserve(count);
  for (size_t i = 0; i < count; ++i) converted.push_back(to_runtime(arguments[i], direction, i));
  return converted;
}

}  // namespace

extern "C" {

unsigned int axr_api_version(void) { return (kApiVersionMajor << 16) | kApiVersionMinor; }

const char *axr_board_type_string(axrBoardType type) {
  switch (raw_value(type)) {
    case AXR_BOARD_TYPE_ALPHA_PCIE:
      return "alpha_pcie";
    case AXR_BOARD_TYPE_ALPHA_M2:
      return "alpha_m2";
    case AXR_BOARD_TYPE_PCIE:
      return "pcie";
    case AXR_BOARD_TYPE_M2:
      return "m2";
    case AXR_BOARD_TYPE_DEVBOARD:
      return "devboard";
    case AXR_BOARD_TYPE_SBC:
      return "sbc";
    case AXR_BOARD_TYPE_UNKNOWN:
      return "unknown";
  }
  return "invalid board type";
}

const char *axr_error_string(axrResult result) {
  switch (raw_value(result)) {
    case AXR_SUCCESS:
      return "success";
    case AXR_ERROR_RUNTIME_ERROR:
      return "runtime error";
    case AXR_ERROR_VALUE_ERROR:
      return "value error";
    case AXR_ERROR_INVALID_ARGUMENT:
      return "invalid argument";
    case AXR_ERROR_CONNECTION_ERROR:
      return "connection error";
    case AXR_ERROR_DEVICE_IN_USE:
      return "device in use";
    case AXR_ERROR_INCOMPATIBLE_DEVICE:
      return "incompatible device";
    case AXR_ERROR_INVALID_CONFIGURATION:
      return "invalid configuration";
    case AXR_ERROR_NOT_IMPLEMENTED:
      return "not implemented";
    case AXR_ERROR_INTERNAL_ERROR:
      return "internal error";
    case AXR_ERROR_PENDING_ERROR:
      return "pending";
    case AXR_ERROR_UNKNOWN_ERROR:
      return "unknown error";
  }
  return "unrecognised axrResult";
}

axrContext *axr_create_context(void) {
  return guarded(__func__, static_cast<axrContext *>(nullptr), [](Call &) {
    auto context = std::make_unique<axrContext>();
    context->runtime = runtime::Context::create();
    return Registry::instance().add(std::move(context), {});
  });
}

void axr_destroy(const axrObject *obj) {
  if (obj == nullptr) {
    set_last_error(AXR_SUCCESS, "");
    return;
  }
  guarded_void(__func__, [&](Call &call) {
    std::shared_ptr<axrContext> context;
    auto object = Registry::instance().checked_any(obj, "object", &context);
    if (object->kind != axr_capi::Kind::context) {
      call.context = std::move(context);
      if (call.wants_log(AXR_LOG_DEBUG))
        call.log(AXR_LOG_DEBUG, "destroying " + object->describe());
    }
    Registry::instance().destroy(obj);
  });
}

axrContext *axr_get_context(axrObject *obj) {
  return guarded(__func__, static_cast<axrContext *>(nullptr), [&](Call &call) {
    return Registry::instance().checked_any(obj, "object", &call.context)->context;
  });
}

axrResult axr_last_error(const axrObject *obj) { return t_last_error.result; }

const char *axr_last_error_string(const axrObject *obj) { return t_last_error.message.c_str(); }

void axr_set_logger(axrContext *context, axrLogLevel level, axr_logger_fn logger, void *arg) {
  guarded_void(__func__, [&](Call &call) {
    auto checked = call.checked(context, "context");
    const auto raw_level = raw_value(level);
    if (raw_level < AXR_LOG_TRACE || raw_level > AXR_LOG_ERROR) {
      throw CapiError(AXR_ERROR_VALUE_ERROR,
                      "log level " + std::to_string(raw_level) + " is not an axrLogLevel (0..6)");
    }
    checked->set_logger(level, logger, arg);
  });
}

axrProperties *axr_create_properties(axrContext *context, const char *initial) {
  return guarded(__func__, static_cast<axrProperties *>(nullptr), [&](Call &call) {
    auto owner = call.checked(context, "context");
    return new_properties(owner->context, owner.get(), parse_properties(initial));
  });
}

const char *axr_get_property(axrProperties *properties, const char *key) {
  return guarded(__func__, static_cast<const char *>(nullptr), [&](Call &call) -> const char * {
    auto store = call.runtime_of(properties, "properties");
    require(key, "key");
    std::lock_guard lock(store->mutex);
    auto found = store->values.find(key);
    return found == store->values.end() ? nullptr : found->second.c_str();
  });
}

void axr_set_property(axrProperties *properties, const char *key, const char *value) {
  guarded_void(__func__, [&](Call &call) {
    auto store = call.runtime_of(properties, "properties");
    require(key, "key");
    require(value, "value");
    const std::string name(key);
    if (trim(name).empty()) throw CapiError(AXR_ERROR_VALUE_ERROR, "key is empty");
    // Such a key would list as other keys in axr_list_properties, or never match the same key
    // given in a key=value string (blanks around keys are dropped there).
    if (name.find_first_of(";=\r\n") != std::string::npos || trim(name) != name) {
      throw CapiError(AXR_ERROR_VALUE_ERROR,
                      "key '" + name +
                          "' cannot be held in the key=value;key=value form: expected no ';', "
                          "'=', line break or surrounding blanks");
    }
    std::lock_guard lock(store->mutex);
    store->values[name] = value;
    store->key_list_stale = true;
  });
}

void axr_del_property(axrProperties *properties, const char *key) {
  guarded_void(__func__, [&](Call &call) {
    auto store = call.runtime_of(properties, "properties");
    require(key, "key");
    std::lock_guard lock(store->mutex);
    if (store->values.erase(key) != 0) store->key_list_stale = true;
  });
}

const char *axr_list_properties(axrProperties *properties) {
  return guarded(__func__, static_cast<const char *>(nullptr), [&](Call &call) {
    auto store = call.runtime_of(properties, "properties");
    std::lock_guard lock(store->mutex);
    // Rebuilt only after a change, so a list another thread is reading stays put.
    if (store->key_list_stale) {
      store->key_list.clear();
      for (const auto &[key, value] : store->values) {
        store->key_list += (store->key_list.empty() ? "" : ";") + key;
      }
      store->key_list_stale = false;
    }
    return store->key_list.c_str();
  });
}

size_t axr_list_devices(axrContext *context, axrDeviceInfo **devices) {
  return guarded(__func__, size_t{0}, [&](Call &call) {
    auto checked = call.checked(context, "context");
    auto found = checked->runtime->list_devices();
    if (devices == nullptr) return found.size();
    std::lock_guard lock(checked->mutex);
    checked->devices.clear();
    for (const auto &device : found) checked->devices.push_back(to_c(device));
    *devices = checked->devices.empty() ? nullptr : checked->devices.data();
    return checked->devices.size();
  });
}

axrResult axr_configure_device(axrContext *context, axrDeviceInfo *device,
                               axrProperties *properties) {
  return guarded(__func__, AXR_ERROR_UNKNOWN_ERROR, [&](Call &call) -> axrResult {
    auto runtime_context = call.runtime_of(context, "context");
    auto target = find_device(*runtime_context, device);
    auto settings = properties_or_empty(call, properties);
    bool applied =
        value_errors([&] { return runtime_context->configure_device(target, settings); });
    if (applied) {
      call.log(AXR_LOG_INFO, "configured " + target.name);
      return AXR_SUCCESS;
    }
    call.log(AXR_LOG_INFO, "configuration of " + target.name + " pending");
    call.report(AXR_ERROR_PENDING_ERROR,
                "configuration of " + target.name + " is being applied; poll axr_device_ready");
    return AXR_ERROR_PENDING_ERROR;
  });
}

axrResult axr_device_ready(axrContext *context, axrDeviceInfo *device) {
  return guarded(__func__, AXR_ERROR_UNKNOWN_ERROR, [&](Call &call) -> axrResult {
    auto runtime_context = call.runtime_of(context, "context");
    auto target = find_device(*runtime_context, device);
    if (runtime_context->device_ready(target)) return AXR_SUCCESS;
    call.report(AXR_ERROR_PENDING_ERROR,
                "configuration of " + target.name + " is still being applied");
    return AXR_ERROR_PENDING_ERROR;
  });
}

axrProperties *axr_read_device_configuration(axrContext *context, axrDeviceInfo *device) {
  return guarded(__func__, static_cast<axrProperties *>(nullptr), [&](Call &call) {
    auto owner = call.checked(context, "context");
    auto target = find_device(*owner->runtime, device);
    return new_properties(owner->context, owner.get(),
                          owner->runtime->read_device_configuration(target));
  });
}

axrConnection *axr_device_connect(axrContext *context, axrDeviceInfo *device,
                                  size_t num_sub_devices, axrProperties *properties) {
  return guarded(__func__, static_cast<axrConnection *>(nullptr), [&](Call &call) {
    auto owner = call.checked(context, "context");
    if (num_sub_devices > static_cast<size_t>(INT_MAX)) {
      throw CapiError(AXR_ERROR_INVALID_ARGUMENT,
                      "num_sub_devices " + std::to_string(num_sub_devices) + " is out of range");
    }
    // axruntime.h's one connect option. The device's firmware is the one this runtime drives,
    // so there is nothing to check or reload; the value is validated and consumed here.
    auto settings = properties_or_empty(call, properties);
    for (const auto &[key, value] : settings) {
      if (key != "device_firmware_check") {
        throw CapiError(AXR_ERROR_INVALID_CONFIGURATION,
                        "unknown connection property '" + key + "' (valid: device_firmware_check)");
      }
      if (value != "0" && value != "1") {
        throw CapiError(AXR_ERROR_VALUE_ERROR,
                        "device_firmware_check='" + value + "': expected 0 or 1");
      }
    }
    std::shared_ptr<runtime::Connection> connection;
    if (device == nullptr) {
      connection = owner->runtime->device_connect(nullptr, static_cast<int>(num_sub_devices));
    } else {
      auto target = find_device(*owner->runtime, device);
      connection = owner->runtime->device_connect(&target, static_cast<int>(num_sub_devices));
    }
    call.log(AXR_LOG_INFO, "connected: " + connection->describe());
    return Registry::instance().add(std::make_unique<axrConnection>(owner->context, connection),
                                    {owner.get()});
  });
}

axrModel *axr_load_model(axrContext *context, const char *path) {
  return guarded(__func__, static_cast<axrModel *>(nullptr), [&](Call &call) {
    auto owner = call.checked(context, "context");
    require(path, "path");
    auto model = owner->runtime->load_model(path);
    call.log(AXR_LOG_INFO, "loaded " + model->describe() + " from " + path);
    return Registry::instance().add(std::make_unique<axrModel>(owner->context, model),
                                    {owner.get()});
  });
}

size_t axr_num_model_inputs(axrModel *model) {
  return guarded(__func__, size_t{0},
                 [&](Call &call) { return call.runtime_of(model, "model")->inputs().size(); });
}

size_t axr_num_model_outputs(axrModel *model) {
  return guarded(__func__, size_t{0},
                 [&](Call &call) { return call.runtime_of(model, "model")->outputs().size(); });
}

axrTensorInfo axr_get_model_input(axrModel *model, size_t n) {
  return model_tensor(__func__, model, n, true);
}

axrTensorInfo axr_get_model_output(axrModel *model, size_t n) {
  return model_tensor(__func__, model, n, false);
}

axrProperties *axr_get_model_properties(axrModel *model) {
  return guarded(__func__, static_cast<axrProperties *>(nullptr), [&](Call &call) {
    auto checked = call.checked(model, "model");
    return new_properties(checked->context, checked.get(), checked->runtime->properties());
  });
}

size_t axr_tensor_size(const axrTensorInfo *info) {
  return guarded(__func__, size_t{0}, [&](Call &) -> size_t {
    require(info, "info");
    if (info->ndims > AXR_MAX_TENSOR_DIMS) {
      throw CapiError(AXR_ERROR_INVALID_ARGUMENT,
                      "ndims " + std::to_string(info->ndims) + " exceeds AXR_MAX_TENSOR_DIMS (8)");
    }
    size_t bits = info->bits;
    for (size_t d = 0; d < info->ndims; ++d) {
      if (__builtin_mul_overflow(bits, info->dims[d], &bits)) {
        std::string dims;
        for (size_t i = 0; i < info->ndims; ++i) {
          if (i) dims += ',';
          dims += std::to_string(info->dims[i]);
        }
        throw CapiError(AXR_ERROR_VALUE_ERROR,
                        "tensor of " + std::to_string(info->bits) + "-bit elements and dims (" +
                            dims + ") overflows size_t at dim " + std::to_string(d) +
                            ", expected a size in bits below 2^64");
      }
    }
    return bits / 8 + (bits % 8 != 0);
  });
}

axrModelInstance *axr_load_model_instance(axrConnection *connection, axrModel *model,
                                          axrProperties *properties) {
  return guarded(__func__, static_cast<axrModelInstance *>(nullptr), [&](Call &call) {
    auto checked_connection = call.checked(connection, "connection");
    auto checked_model = call.checked(model, "model");
    if (checked_model->context != checked_connection->context) {
      throw CapiError(AXR_ERROR_INVALID_ARGUMENT,
                      "model and connection belong to different contexts");
    }
    auto settings = properties_or_empty(call, properties);
    for (const auto &[key, value] : settings) {
      if (kInstanceKeys.count(key) == 0) {
        throw CapiError(
            AXR_ERROR_INVALID_CONFIGURATION,
            "unknown model instance property '" + key + "' (valid: " + join(kInstanceKeys) + ")");
      }
    }
    auto options =
        value_errors([&] { return runtime::InstanceOptions::from_properties(settings); });
    auto instance =
        checked_connection->runtime->load_model_instance(checked_model->runtime, options);
    call.log(AXR_LOG_INFO, "loaded " + instance->describe());
    return Registry::instance().add(
        std::make_unique<axrModelInstance>(checked_connection->context, instance),
        {checked_connection.get(), checked_model.get()});
  });
}

axrResult axr_run_model_instance(axrModelInstance *instance, axrArgument *inputs, size_t num_inputs,
                                 axrArgument *outputs, size_t num_outputs) {
  return guarded(__func__, AXR_ERROR_UNKNOWN_ERROR, [&](Call &call) {
    auto runtime_instance = call.runtime_of(instance, "instance");
    auto input_arguments = to_runtime(inputs, num_inputs, "input");
    auto output_arguments = to_runtime(outputs, num_outputs, "output");
    runtime_instance->run(input_arguments, output_arguments);
    if (call.wants_log(AXR_LOG_TRACE))
      call.log(AXR_LOG_TRACE, "ran " + runtime_instance->describe());
    return AXR_SUCCESS;
  });
}

}  // extern "C"
