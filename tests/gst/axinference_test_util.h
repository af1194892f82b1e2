// Shared by the axinference tests: the model run directly (the reference the element must
// reproduce), seeded inputs, frames carrying an INPUT tensor meta and reading the OUTPUT meta back.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "axstream/gst/axtensormeta.h"
#include "axstream/gst/axtensorpool.h"
#include "axstream/runtime/runtime.h"
#include "gst_test_util.h"

namespace axtest {

namespace rt = axstream::runtime;
using Bytes = std::vector<int8_t>;

// The model run directly, without GStreamer: what the element must reproduce.
class DirectRun {
 public:
  explicit DirectRun(const std::string &model) : context_(rt::Context::create()) {
    model_ = context_->load_model(model);
    instance_ = context_->device_connect(nullptr, 1)->load_model_instance(model_);
  }
  ~DirectRun() { context_->release(); }
  Bytes run(const Bytes &input) {
    Bytes output(model_->outputs()[0].size());
    instance_->run({{const_cast<int8_t *>(input.data()), -1, 0, input.size()}},
                   {{output.data(), -1, 0, output.size()}});
    return output;
  }
  size_t input_size() const { return model_->inputs()[0].size(); }

 private:
  std::shared_ptr<rt::Context> context_;
  std::shared_ptr<rt::Model> model_;
  std::shared_ptr<rt::ModelInstance> instance_;
};

inline Bytes random_input(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes out(size);
  for (auto &b : out) b = int8_t(rng());
  return out;
}

// A tiny video buffer carrying `input` as an INPUT tensor meta (fd memory unless heap is asked).
inline GstBuffer *frame_with_tensor(const std::string &model, const Bytes &input, GstClockTime pts,
                                    bool fd_memory = true) {
  GstBuffer *frame = gst_buffer_new_allocate(nullptr, 16 * 16 * 3, nullptr);
  GST_BUFFER_PTS(frame) = pts;
  GstBuffer *tensors = nullptr;
  GstBufferPool *pool = nullptr;
  if (fd_memory) {
    const gsize size = input.size();
    pool = gst_ax_tensor_pool_new(&size, 1, 1);
    EXPECT_EQ(gst_buffer_pool_acquire_buffer(pool, &tensors, nullptr), GST_FLOW_OK);
  } else {
    tensors = gst_buffer_new_allocate(nullptr, input.size(), nullptr);
  }
  gst_buffer_fill(tensors, 0, input.data(), input.size());
  GstAxTransform transform{};
  transform.scale_x = transform.scale_y = 1.0;
  transform.tensor_width = transform.tensor_height = 32;
  gst_buffer_add_ax_tensor_meta(frame, GST_AX_TENSOR_INPUT, model.c_str(), -1, &transform, tensors);
  gst_buffer_unref(tensors);
  if (pool) {
    gst_buffer_pool_set_active(pool, FALSE);  // the meta's ref keeps its buffer alive
    gst_object_unref(pool);
  }
  return frame;
}

// The bytes of the buffer's whole-frame tensor meta of `kind` (a failure when it has none).
inline Bytes tensor_bytes(GstBuffer *buffer, GstAxTensorKind kind) {
  GstAxTensorMeta *meta = gst_buffer_get_ax_tensor_meta(buffer, kind, nullptr, -1);
  EXPECT_NE(meta, nullptr);
  if (!meta) return {};
  return buffer_bytes(meta->tensors);
}

inline Bytes output_of(GstBuffer *buffer) { return tensor_bytes(buffer, GST_AX_TENSOR_OUTPUT); }

// axinference on `model` in a harness fed 16x16 RGB frames; `extra` adds properties.
inline GstHarness *inference_harness(const std::string &model, const std::string &extra = "") {
  std::string launch = "axinference model=\"" + model + "\" " + extra;
  GstHarness *h = gst_harness_new_parse(launch.c_str());
  gst_harness_set_src_caps_str(h, "video/x-raw,format=RGB,width=16,height=16,framerate=30/1");
  return h;
}

}  // namespace axtest
