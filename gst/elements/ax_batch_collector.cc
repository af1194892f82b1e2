#include "ax_batch_collector.h"

#include <gst/allocators/gstfdmemory.h>
#include <pthread.h>

#include <algorithm>
#include <cstring>

#include "axstream/error.h"
#include "axstream/gst/axtensorpool.h"

namespace axstream::gst {

struct BatchCollector::Request {
  GstBuffer *input = nullptr;  // ref held until the request is done
  std::chrono::steady_clock::time_point deadline;
  std::atomic<uint64_t> *bytes_copied = nullptr;
  GstBuffer *output = nullptr;
  std::string error;
  bool done = false;
  ~Request() {
    if (input) gst_buffer_unref(input);
    if (output) gst_buffer_unref(output);
  }
};

namespace {

// A mapped GstMemory, unmapped on destruction.
class MappedMemory {
 public:
  MappedMemory(GstMemory *memory, GstMapFlags flags, const char *what) : memory_(memory) {
    if (!gst_memory_map(memory, &info_, flags))
      throw InternalError(std::string("batch collector: cannot map ") + what);
  }
  ~MappedMemory() { gst_memory_unmap(memory_, &info_); }
  MappedMemory(const MappedMemory &) = delete;
  MappedMemory &operator=(const MappedMemory &) = delete;
  guint8 *data() const { return info_.data; }
  size_t size() const { return info_.size; }

 private:
  GstMemory *memory_;
  GstMapInfo info_{};
};

std::vector<size_t> item_sizes(const std::vector<runtime::TensorInfo> &tensors, int batch,
                               const std::string &model) {
  std::vector<size_t> sizes;
  for (const auto &t : tensors) {
    const bool batch_padded =
        !t.padding.empty() && (t.padding[0].first != 0 || t.padding[0].second != 0);
    if (t.shape.empty() || t.shape[0] != batch || batch_padded)
      throw InvalidArgument("tensor '" + t.name + "' of model '" + model + "': expected batch " +
                            std::to_string(batch) + " in dimension 0 without padding");
    sizes.push_back(t.size() / size_t(batch));
  }
  return sizes;
}

GstBufferPool *make_pool(const std::vector<runtime::TensorInfo> &tensors, const char *what) {
  std::vector<gsize> sizes;
  for (const auto &t : tensors) sizes.push_back(t.size());
  GstBufferPool *pool = gst_ax_tensor_pool_new(sizes.data(), guint(sizes.size()), 1);
  if (!pool)
    throw InternalError(std::string("batch collector: no fd memory for the ") + what +
                        " tensors (memfd_create failed)");
  return pool;
}

void release_pool(GstBufferPool *&pool) {
  if (!pool) return;
  gst_buffer_pool_set_active(pool, FALSE);
  gst_object_unref(pool);
  pool = nullptr;
}

}  // namespace

BatchCollector::BatchCollector(std::shared_ptr<runtime::ModelInstance> instance,
                               std::vector<runtime::TensorInfo> inputs,
                               std::vector<runtime::TensorInfo> outputs, bool dmabuf,
                               std::string model_name)
    : instance_(std::move(instance)),
      inputs_(std::move(inputs)),
      outputs_(std::move(outputs)),
      dmabuf_(dmabuf),
      model_name_(std::move(model_name)),
      batch_(inputs_.empty() || inputs_[0].shape.empty() ? 0 : int(inputs_[0].shape[0])) {
  if (batch_ < 2)
    throw InvalidArgument("batch collector for model '" + model_name_ + "': batch " +
                          std::to_string(batch_) + ", expected a batch above 1");
  input_item_sizes_ = item_sizes(inputs_, batch_, model_name_);
  output_item_sizes_ = item_sizes(outputs_, batch_, model_name_);
  input_pool_ = make_pool(inputs_, "input");
  try {
    output_pool_ = make_pool(outputs_, "output");
  } catch (...) {
    release_pool(input_pool_);
    throw;
  }
  thread_ = std::thread([this] { collect_loop(); });
  // Named here rather than by the thread: it has the name as soon as it exists.
  pthread_setname_np(thread_.native_handle(), "axinf-batch");
}

BatchCollector::~BatchCollector() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    changed_.notify_all();
  }
  thread_.join();
  release_pool(input_pool_);
  release_pool(output_pool_);
}

void BatchCollector::begin_drain() {
  std::lock_guard<std::mutex> lock(mutex_);
  draining_++;
  changed_.notify_all();
}

void BatchCollector::end_drain() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (draining_ > 0) draining_--;
}

BatchStatistics BatchCollector::statistics() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return statistics_;
}

std::vector<GstBuffer *> BatchCollector::run_items(const std::vector<GstBuffer *> &items,
                                                   std::chrono::microseconds max_wait,
                                                   std::atomic<uint64_t> *bytes_copied) {
  std::vector<std::shared_ptr<Request>> requests;
  const auto deadline = std::chrono::steady_clock::now() + max_wait;
  for (GstBuffer *item : items) {
    if (gst_buffer_n_memory(item) != inputs_.size())
      throw InvalidArgument("input tensor meta of model '" + model_name_ + "' holds " +
                            std::to_string(gst_buffer_n_memory(item)) + " tensors: expected " +
                            std::to_string(inputs_.size()));
    for (guint i = 0; i < gst_buffer_n_memory(item); ++i) {
      const gsize size = gst_memory_get_sizes(gst_buffer_peek_memory(item, i), nullptr, nullptr);
      if (size != input_item_sizes_[i])
        throw InvalidArgument("input " + std::to_string(i) + " '" + inputs_[i].name +
                              "' of model '" + model_name_ + "': expected one batch item of " +
                              std::to_string(input_item_sizes_[i]) + " bytes, got " +
                              std::to_string(size));
    }
    auto request = std::make_shared<Request>();
    request->input = gst_buffer_ref(item);
    request->deadline = deadline;
    request->bytes_copied = bytes_copied;
    requests.push_back(std::move(request));
  }
  std::unique_lock<std::mutex> lock(mutex_);
  if (stopping_) throw InternalError("batch collector of '" + model_name_ + "' is stopping");
  for (auto &request : requests) queue_.push_back(request);
  changed_.notify_all();
  changed_.wait(lock, [&] {
    return std::all_of(requests.begin(), requests.end(), [](auto &r) { return r->done; });
  });
  std::vector<GstBuffer *> outputs;
  std::string error;
  for (auto &request : requests) {
    if (!request->error.empty() && error.empty()) error = request->error;
    outputs.push_back(request->output);
    request->output = nullptr;
  }
  if (!error.empty()) {
    for (GstBuffer *b : outputs)
      if (b) gst_buffer_unref(b);
    throw InternalError(error);
  }
  return outputs;
}

void BatchCollector::collect_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (stopping_) break;
    // Wait for a full batch, or until the oldest queued request's wait is over, or a drain.
    while (!stopping_ && draining_ == 0 && int(queue_.size()) < batch_) {
      auto oldest = std::min_element(queue_.begin(), queue_.end(),
                                     [](auto &a, auto &b) { return a->deadline < b->deadline; })
                        ->get()
                        ->deadline;
      if (changed_.wait_until(lock, oldest) == std::cv_status::timeout) break;
    }
    if (stopping_) break;
    const size_t take = std::min(queue_.size(), size_t(batch_));
    std::vector<std::shared_ptr<Request>> batch(queue_.begin(), queue_.begin() + long(take));
    queue_.erase(queue_.begin(), queue_.begin() + long(take));
    lock.unlock();
    std::string error;
    try {
      run_batch(batch);
    } catch (const std::exception &e) {
      error = e.what();
    }
    lock.lock();
    statistics_.runs++;
    statistics_.items += take;
    for (auto &request : batch) {
      if (!error.empty()) request->error = error;
      request->done = true;
    }
    changed_.notify_all();
  }
  for (auto &request : queue_) {
    request->error = "batch collector of '" + model_name_ + "' stopped before the run";
    request->done = true;
  }
  queue_.clear();
  changed_.notify_all();
}

void BatchCollector::run_batch(const std::vector<std::shared_ptr<Request>> &batch) {
  GstBuffer *inputs = nullptr, *outputs = nullptr;
  if (gst_buffer_pool_acquire_buffer(input_pool_, &inputs, nullptr) != GST_FLOW_OK)
    throw InternalError("batch collector: no batch input buffer from the pool");
  if (gst_buffer_pool_acquire_buffer(output_pool_, &outputs, nullptr) != GST_FLOW_OK) {
    gst_buffer_unref(inputs);
    throw InternalError("batch collector: no batch output buffer from the pool");
  }
  struct Unref {
    GstBuffer *a, *b;
    ~Unref() {
      gst_buffer_unref(a);
      gst_buffer_unref(b);
    }
  } unref{inputs, outputs};

  // Gather: item k's tensors go to slot k of the batch tensors. Slots past the last request
  // keep old data; their outputs are never handed out.
  for (guint i = 0; i < inputs_.size(); ++i) {
    MappedMemory slots(gst_buffer_peek_memory(inputs, i), GST_MAP_WRITE, "a batch input tensor");
    for (size_t k = 0; k < batch.size(); ++k) {
      MappedMemory item(gst_buffer_peek_memory(batch[k]->input, i), GST_MAP_READ,
                        "an input tensor");
      std::memcpy(slots.data() + k * input_item_sizes_[i], item.data(), input_item_sizes_[i]);
      if (batch[k]->bytes_copied) *batch[k]->bytes_copied += input_item_sizes_[i];
    }
  }

  {
    std::vector<std::unique_ptr<MappedMemory>> mapped;
    auto argument = [&](GstMemory *memory, bool output) {
      runtime::Argument a;
      if (dmabuf_ && gst_is_fd_memory(memory)) {
        a.fd = gst_fd_memory_get_fd(memory);
        a.offset = size_t(memory->offset);
        a.size = gst_memory_get_sizes(memory, nullptr, nullptr);
        return a;
      }
      mapped.push_back(std::make_unique<MappedMemory>(
          memory, output ? GST_MAP_READWRITE : GST_MAP_READ, "a batch tensor"));
      a.ptr = mapped.back()->data();
      a.size = mapped.back()->size();
      return a;
    };
    std::vector<runtime::Argument> in_args, out_args;
    for (guint i = 0; i < gst_buffer_n_memory(inputs); ++i)
      in_args.push_back(argument(gst_buffer_peek_memory(inputs, i), false));
    for (guint i = 0; i < gst_buffer_n_memory(outputs); ++i)
      out_args.push_back(argument(gst_buffer_peek_memory(outputs, i), true));
    instance_->run(in_args, out_args);
  }

  // Split: each request gets sub-memories of its slot (they keep the batch memory alive).
  for (size_t k = 0; k < batch.size(); ++k) {
    GstBuffer *item = gst_buffer_new();
    for (guint i = 0; i < outputs_.size(); ++i)
      gst_buffer_append_memory(
          item, gst_memory_share(gst_buffer_peek_memory(outputs, i),
                                 gssize(k * output_item_sizes_[i]), gssize(output_item_sizes_[i])));
    batch[k]->output = item;
  }
}

}  // namespace axstream::gst
