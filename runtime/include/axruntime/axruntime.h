/* The C API of the Metis runtime, source-compatible with Axelera's axruntime.h: programs written
 * against it compile and link against axstream (libaxruntime) unchanged.
 *
 * Every object is owned by the axrContext it was made from: axr_destroy() on the context destroys
 * everything, axr_destroy() on any other object destroys it and its children early. No function
 * crashes on a NULL handle; failures return NULL, 0 or an axrResult and record a per-thread last
 * error (axr_last_error / axr_last_error_string). */
#ifndef AXRUNTIME_AXRUNTIME_H
#define AXRUNTIME_AXRUNTIME_H

#include <stddef.h>

#if defined(_WIN32)
#define AXR_EXPORT __declspec(dllexport)
#else
#define AXR_EXPORT __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct axrObject axrObject;
typedef struct axrContext axrContext;
typedef struct axrConnection axrConnection;
typedef struct axrModel axrModel;
typedef struct axrModelInstance axrModelInstance;
typedef struct axrProperties axrProperties;

/* Any handle as the axrObject it is, e.g. axr_last_error_string(AXR_OBJECT(ctx)). */
#define AXR_OBJECT(x) ((axrObject *)(x))

typedef enum axrResult {
  AXR_SUCCESS,
  AXR_ERROR_RUNTIME_ERROR,
  AXR_ERROR_VALUE_ERROR,
  AXR_ERROR_INVALID_ARGUMENT,
  AXR_ERROR_CONNECTION_ERROR,
  AXR_ERROR_DEVICE_IN_USE,
  AXR_ERROR_INCOMPATIBLE_DEVICE,
  AXR_ERROR_INVALID_CONFIGURATION,
  AXR_ERROR_NOT_IMPLEMENTED,
  AXR_ERROR_INTERNAL_ERROR,
  AXR_ERROR_PENDING_ERROR,
  AXR_ERROR_UNKNOWN_ERROR
} axrResult;

typedef enum axrLogLevel {
  AXR_LOG_TRACE,
  AXR_LOG_LOG,
  AXR_LOG_DEBUG,
  AXR_LOG_INFO,
  AXR_LOG_FIXME,
  AXR_LOG_WARNING,
  AXR_LOG_ERROR
} axrLogLevel;

/* Values mirror axelera.runtime.BoardType. The AXR_BOARD_METIS_* spellings are the names
 * Axelera's header uses for the same values. */
typedef enum axrBoardType {
  AXR_BOARD_TYPE_ALPHA_PCIE = 0,
  AXR_BOARD_TYPE_ALPHA_M2 = 1,
  AXR_BOARD_TYPE_PCIE = 2,
  AXR_BOARD_TYPE_M2 = 3,
  AXR_BOARD_TYPE_DEVBOARD = 4,
  AXR_BOARD_TYPE_SBC = 5,
  AXR_BOARD_TYPE_UNKNOWN = 6,

  AXR_BOARD_METIS_UNUSED1 = AXR_BOARD_TYPE_ALPHA_PCIE,
  AXR_BOARD_METIS_UNUSED2 = AXR_BOARD_TYPE_ALPHA_M2,
  AXR_BOARD_METIS_OMEGA_PCIE = AXR_BOARD_TYPE_PCIE,
  AXR_BOARD_METIS_OMEGA_M2 = AXR_BOARD_TYPE_M2,
  AXR_BOARD_METIS_UNUSED3 = AXR_BOARD_TYPE_DEVBOARD,
  AXR_BOARD_METIS_UNUSED4 = AXR_BOARD_TYPE_SBC,
  AXR_BOARD_METIS_MAX = AXR_BOARD_TYPE_UNKNOWN
} axrBoardType;

#define AXR_MAX_TENSOR_DIMS 8

enum AXR_TENSOR_DATA_TYPE { AXR_UNSIGNED = 0, AXR_SIGNED = 1, AXR_FLOAT = 2 };

typedef struct axrTensorInfo {
  size_t dims[AXR_MAX_TENSOR_DIMS]; /* padded shape; dims[0..ndims) */
  size_t ndims;                     /* 0 when the call that returned it failed */
  size_t bits;                      /* bits per element */
  size_t type;                      /* one of AXR_TENSOR_DATA_TYPE */
  char name[256];
  size_t padding[AXR_MAX_TENSOR_DIMS][2]; /* (before, after) per dimension, as numpy.pad */
  double scale;
  int zero_point;
} axrTensorInfo;

typedef struct axrDeviceInfo {
  char name[256]; /* e.g. "metis-0:1:0" */
  size_t subdevice_count;
  size_t max_memory;
  int in_use;          /* number of sub-devices reserved (by any process) */
  char in_use_by[256]; /* "user:pid" of each holder, comma separated */
  axrBoardType board_type;
  char firmware_version[256];
  int board_revision;
  char flashed_firmware_version[256];
  char board_controller_firmware_version[256];
  char board_controller_board_type[256];
} axrDeviceInfo;

/* One input or output of axr_run_model_instance: host memory in `ptr` (fd 0 or -1), or a
 * dmabuf/memfd in `fd` starting at `offset` (ptr NULL). `size` 0 means unchecked, otherwise it
 * must equal the tensor's axr_tensor_size. */
typedef struct axrArgument {
  void *ptr;
  int fd;
  size_t offset;
  size_t size;
} axrArgument;

typedef void (*axr_logger_fn)(void *arg, axrLogLevel level, const char *msg);

/* Major version in the upper 16 bits, minor in the lower 16. */
AXR_EXPORT unsigned int axr_api_version(void);

/* "alpha_pcie", "pcie", ... as the Python BoardType names; never NULL. */
AXR_EXPORT const char *axr_board_type_string(axrBoardType type);

/* Statically allocated, never NULL. */
AXR_EXPORT const char *axr_error_string(axrResult result);

/* Never NULL. Owns every object made from it. */
AXR_EXPORT axrContext *axr_create_context(void);

/* Destroys `obj` and its children (for a context: everything made from it). NULL is ignored. */
AXR_EXPORT void axr_destroy(const axrObject *obj);

/* The context owning `obj` (the context itself for a context), NULL if obj is NULL. */
AXR_EXPORT axrContext *axr_get_context(axrObject *obj);

/* The last error of an axr call made by the calling thread (AXR_SUCCESS after a call that
 * succeeded), and its message (valid until the next axr call in this thread, never NULL). */
AXR_EXPORT axrResult axr_last_error(const axrObject *obj);
AXR_EXPORT const char *axr_last_error_string(const axrObject *obj);

/* Messages of `context` at or above `level` go to `logger(arg, level, msg)`; NULL logger: none.
 * On return the previous logger is not running in another thread and is not called again. */
AXR_EXPORT void axr_set_logger(axrContext *context, axrLogLevel level, axr_logger_fn logger,
                               void *arg);

/* `initial` is "key=value;key=value" (newlines also separate entries), may be NULL or empty. */
AXR_EXPORT axrProperties *axr_create_properties(axrContext *context, const char *initial);
/* NULL if absent; valid until the key is next set or deleted. */
AXR_EXPORT const char *axr_get_property(axrProperties *properties, const char *key);
AXR_EXPORT void axr_set_property(axrProperties *properties, const char *key, const char *value);
AXR_EXPORT void axr_del_property(axrProperties *properties, const char *key);
/* The keys, semicolon separated; valid until the next change of `properties`. */
AXR_EXPORT const char *axr_list_properties(axrProperties *properties);

/* Stores into *devices an array owned by the context, valid until the next call; returns the
 * count. NULL `devices` just counts. */
AXR_EXPORT size_t axr_list_devices(axrContext *context, axrDeviceInfo **devices);
/* AXR_SUCCESS when applied, AXR_ERROR_PENDING_ERROR while the change takes effect (poll
 * axr_device_ready), AXR_ERROR_INVALID_CONFIGURATION for an unknown key, AXR_ERROR_VALUE_ERROR
 * for a bad value. */
AXR_EXPORT axrResult axr_configure_device(axrContext *context, axrDeviceInfo *device,
                                          axrProperties *properties);
/* AXR_SUCCESS when ready, AXR_ERROR_PENDING_ERROR while a configuration is being applied. */
AXR_EXPORT axrResult axr_device_ready(axrContext *context, axrDeviceInfo *device);
AXR_EXPORT axrProperties *axr_read_device_configuration(axrContext *context, axrDeviceInfo *device);
/* device NULL: the first device with num_sub_devices free sub-devices. */
AXR_EXPORT axrConnection *axr_device_connect(axrContext *context, axrDeviceInfo *device,
                                             size_t num_sub_devices, axrProperties *properties);

/* `path` is a model package directory or its model.json. */
AXR_EXPORT axrModel *axr_load_model(axrContext *context, const char *path);
AXR_EXPORT size_t axr_num_model_inputs(axrModel *model);
AXR_EXPORT size_t axr_num_model_outputs(axrModel *model);
/* n out of range: AXR_ERROR_INVALID_ARGUMENT and a zeroed result (ndims 0). */
AXR_EXPORT axrTensorInfo axr_get_model_input(axrModel *model, size_t n);
AXR_EXPORT axrTensorInfo axr_get_model_output(axrModel *model, size_t n);
/* preamble_graph, postamble_graph, input_tensor_layout. */
AXR_EXPORT axrProperties *axr_get_model_properties(axrModel *model);
/* Bytes of the (padded) tensor; 0 for NULL. */
AXR_EXPORT size_t axr_tensor_size(const axrTensorInfo *info);

/* properties NULL: defaults. Keys as the Python kwargs: aipu_cores, num_sub_devices,
 * input_dmabuf, output_dmabuf, device_profiling, host_profiling, double_buffer, elf_in_ddr. */
AXR_EXPORT axrModelInstance *axr_load_model_instance(axrConnection *connection, axrModel *model,
                                                     axrProperties *properties);
/* Runs one batch; thread-safe; returns when the outputs are written. */
AXR_EXPORT axrResult axr_run_model_instance(axrModelInstance *instance, axrArgument *inputs,
                                            size_t num_inputs, axrArgument *outputs,
                                            size_t num_outputs);

#ifdef __cplusplus
}
#endif

#endif /* AXRUNTIME_AXRUNTIME_H */
