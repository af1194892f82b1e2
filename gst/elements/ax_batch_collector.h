// Gathers single-item inference requests (one frame or ROI each, possibly from different
// streams) into whole-batch runs of a batch > 1 model instance, and hands each request back its
// own item of the outputs. Used by axinference for packages whose batch is above 1.
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "axstream/runtime/runtime.h"

namespace axstream::gst {

struct BatchStatistics {
  uint64_t runs = 0;   // whole-batch run() calls
  uint64_t items = 0;  // requests served by them
  double average_fill() const { return runs ? double(items) / double(runs) : 0.0; }
};

class BatchCollector {
 public:
  // `inputs` / `outputs`: the model's tensors (shape[0] = batch > 1, no batch padding). `dmabuf`:
  // the instance takes fds (input_dmabuf/output_dmabuf), else pointers. Starts the named
  // collector thread; throws InvalidArgument when the model is not batch > 1.
  BatchCollector(std::shared_ptr<runtime::ModelInstance> instance,
                 std::vector<runtime::TensorInfo> inputs, std::vector<runtime::TensorInfo> outputs,
                 bool dmabuf, std::string model_name);
  ~BatchCollector();  // stops and joins the thread; requests still queued fail
  BatchCollector(const BatchCollector &) = delete;
  BatchCollector &operator=(const BatchCollector &) = delete;

  int batch() const { return batch_; }
  size_t item_input_size(size_t tensor) const { return input_item_sizes_[tensor]; }
  size_t item_output_size(size_t tensor) const { return output_item_sizes_[tensor]; }

  // Queues one request per element of `items` (each a buffer of one memory per model input,
  // exactly item_input_size(i) bytes) and waits until all have run. A batch starts when it is
  // full, or when its oldest request has waited `max_wait`, so a lone stream is not stalled.
  // Returns, in order, one new buffer per request holding one memory per model output
  // (item_output_size(i) bytes, shared from the batch output without copying). Throws the
  // run's error. Input bytes copied into the batch tensors are added to `bytes_copied`.
  std::vector<GstBuffer *> run_items(const std::vector<GstBuffer *> &items,
                                     std::chrono::microseconds max_wait,
                                     std::atomic<uint64_t> *bytes_copied);

  // While any user drains (EOS or a drain query on its stream: begin_drain, then end_drain once
  // its frames are out), queued requests run at once instead of waiting for a full batch, so the
  // last frames of a stream do not sit out max_wait.
  void begin_drain();
  void end_drain();

  BatchStatistics statistics() const;

 private:
  struct Request;
  void collect_loop();
  void run_batch(const std::vector<std::shared_ptr<Request>> &batch);

  std::shared_ptr<runtime::ModelInstance> instance_;
  std::vector<runtime::TensorInfo> inputs_, outputs_;
  bool dmabuf_;
  std::string model_name_;
  int batch_;
  std::vector<size_t> input_item_sizes_, output_item_sizes_;
  GstBufferPool *input_pool_ = nullptr;   // whole-batch input tensors, reused
  GstBufferPool *output_pool_ = nullptr;  // whole-batch outputs (dropped while items share them)

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::shared_ptr<Request>> queue_;
  bool stopping_ = false;
  int draining_ = 0;  // users between begin_drain and end_drain
  BatchStatistics statistics_;
  std::thread thread_;
};

}  // namespace axstream::gst
