/* Proves axruntime.h is valid C11: includes it and calls every function from C, checking the
 * results, on the seeded resnet_tiny package. Exit 77 (skipped) without the test packages. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include "axruntime/axruntime.h"

static int failures = 0;

#define CHECK(condition)                                                                  \
  do {                                                                                    \
    if (!(condition)) {                                                                   \
      fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: %s\n", __FILE__, __LINE__,    \
              #condition, axr_last_error_string(NULL));                                   \
      ++failures;                                                                         \
    }                                                                                     \
  } while (0)

static int error_messages = 0;

static void count_errors(void *arg, axrLogLevel level, const char *msg) {
  int *count = (int *)arg;
  if (level == AXR_LOG_ERROR && msg != NULL) ++*count;
}

int main(void) {
  const char *models = getenv("AXSTREAM_TEST_MODELS");
  const char *runtime_dir = getenv("AXSTREAM_RUNTIME_DIR");
  char path[4096];
  if (models == NULL) {
    printf("SKIP: AXSTREAM_TEST_MODELS is not set (the seeded test packages)\n");
    return 77;
  }
  snprintf(path, sizeof path, "%s/resnet_tiny", models);
  if (runtime_dir != NULL && mkdir(runtime_dir, 0700) != 0 && errno != EEXIST) {
    perror(runtime_dir);
    return 1;
  }

  CHECK(axr_api_version() >> 16 == 1);
  CHECK(strcmp(axr_board_type_string(AXR_BOARD_TYPE_PCIE), "pcie") == 0);
  CHECK(axr_error_string(AXR_ERROR_UNKNOWN_ERROR) != NULL);
  {
    /* Any int a C program passes as an enum: never NULL (and under clang's -fsanitize=enum, no
     * load of an out-of-range value as the C++ enum inside the library). */
    static const int out_of_range[] = {-1, 12, 99, INT_MIN, INT_MAX};
    size_t i;
    for (i = 0; i < sizeof out_of_range / sizeof out_of_range[0]; ++i) {
      CHECK(strcmp(axr_error_string((axrResult)out_of_range[i]), "unrecognised axrResult") == 0);
      CHECK(strcmp(axr_board_type_string((axrBoardType)out_of_range[i]), "invalid board type") ==
            0);
    }
  }

  axrContext *ctx = axr_create_context();
  CHECK(ctx != NULL);
  CHECK(axr_get_context(AXR_OBJECT(ctx)) == ctx);
  axr_set_logger(ctx, AXR_LOG_WARNING, count_errors, &error_messages);

  axrProperties *props = axr_create_properties(ctx, "x=1;y=2");
  CHECK(props != NULL);
  axr_set_property(props, "z", "3");
  axr_del_property(props, "x");
  CHECK(strcmp(axr_get_property(props, "z"), "3") == 0);
  CHECK(axr_get_property(props, "x") == NULL);
  CHECK(strcmp(axr_list_properties(props), "y;z") == 0);

  axrDeviceInfo *devices = NULL;
  size_t num_devices = axr_list_devices(ctx, &devices);
  CHECK(num_devices >= 1 && devices != NULL);
  if (num_devices == 0) return 1;
  axrDeviceInfo device = devices[0];
  printf("device %s: %zu sub-devices, board %s\n", device.name, device.subdevice_count,
         axr_board_type_string(device.board_type));

  axrProperties *config = axr_create_properties(ctx, "clock_profile=800");
  axrResult result = axr_configure_device(ctx, &device, config);
  CHECK(result == AXR_SUCCESS || result == AXR_ERROR_PENDING_ERROR);
  const struct timespec poll_interval = {0, 2000000};
  for (int polls = 0; result == AXR_ERROR_PENDING_ERROR && polls < 5000; ++polls) {
    nanosleep(&poll_interval, NULL);
    result = axr_device_ready(ctx, &device);
  }
  CHECK(result == AXR_SUCCESS);
  CHECK(axr_device_ready(ctx, &device) == AXR_SUCCESS);
  axrProperties *read_back = axr_read_device_configuration(ctx, &device);
  CHECK(read_back != NULL && strcmp(axr_get_property(read_back, "clock_profile"), "800") == 0);

  axrConnection *connection = axr_device_connect(ctx, NULL, 1, NULL);
  CHECK(connection != NULL);
  axrModel *model = axr_load_model(ctx, path);
  CHECK(model != NULL);
  if (connection == NULL || model == NULL) {
    axr_destroy(AXR_OBJECT(ctx));
    return 1;
  }
  CHECK(axr_num_model_inputs(model) == 1);
  CHECK(axr_num_model_outputs(model) == 1);
  axrTensorInfo input = axr_get_model_input(model, 0);
  axrTensorInfo output = axr_get_model_output(model, 0);
  CHECK(input.ndims == 4 && input.dims[3] == 4 && input.type == AXR_SIGNED);
  CHECK(output.ndims == 4 && output.dims[3] == 1024);
  axrProperties *model_props = axr_get_model_properties(model);
  CHECK(model_props != NULL &&
        strcmp(axr_get_property(model_props, "input_tensor_layout"), "NHWC") == 0);

  axrModelInstance *instance = axr_load_model_instance(connection, model, NULL);
  CHECK(instance != NULL);
  size_t input_size = axr_tensor_size(&input);
  size_t output_size = axr_tensor_size(&output);
  signed char *input_data = calloc(input_size, 1);
  signed char *output_data = calloc(output_size, 1);
  axrArgument in = {input_data, -1, 0, input_size};
  axrArgument out = {output_data, -1, 0, output_size};
  CHECK(axr_run_model_instance(instance, &in, 1, &out, 1) == AXR_SUCCESS);
  CHECK(axr_last_error(AXR_OBJECT(instance)) == AXR_SUCCESS);

  CHECK(error_messages == 0);
  axrArgument two_inputs[2] = {in, in};
  CHECK(axr_run_model_instance(instance, two_inputs, 2, &out, 1) == AXR_ERROR_INVALID_ARGUMENT);
  CHECK(axr_last_error(AXR_OBJECT(instance)) == AXR_ERROR_INVALID_ARGUMENT);
  CHECK(strlen(axr_last_error_string(AXR_OBJECT(instance))) > 0);
  CHECK(error_messages == 1);

  axr_destroy(AXR_OBJECT(instance));
  axr_destroy(AXR_OBJECT(ctx));
  free(input_data);
  free(output_data);
  if (failures == 0) printf("C API from C11: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
