// Keeps the CPU mappings of a model instance's fd arguments (memfd / shared memory) from run to
// run, so a pipeline cycling a few pooled tensor buffers pays one fstat per argument instead of
// a check, an mmap, page faults and an munmap on every run.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "axstream/hal/dmabuf.h"
#include "axstream/hal/fork_reset.h"

namespace axstream::runtime {

class FdMappingCache {
 public:
  // At most `capacity` mappings stay cached (least recently used evicted). A cached mapping
  // keeps its buffer's pages alive after the caller frees the buffer, until it is evicted or
  // the cache goes.
  explicit FdMappingCache(size_t capacity = 32) : capacity_(capacity) {}

  // A mapping of [offset, offset + size) of `fd` with `access`; `what` names the argument in
  // errors (built only when the fd is checked, on a miss). dmabufs are mapped anew on every call:
  // their CPU access bracket has to enclose each access. The returned mapping stays valid while
  // held, even when evicted meanwhile.
  std::shared_ptr<hal::BufferFdMapping> map(int fd, uint64_t offset, size_t size,
                                            hal::CpuAccess access,
                                            const std::function<std::string()> &what);
  void clear();
  // In a forked child only (hal/fork_reset.h): the parent's threads may have held the lock.
  void renew_lock_after_fork() { hal::renew_lock(mutex_); }

 private:
  struct Entry {
    int fd;
    dev_t device;
    ino_t inode;
    uint64_t offset;
    size_t size;
    hal::CpuAccess access;
    uint64_t last_use;
    std::shared_ptr<hal::BufferFdMapping> mapping;
  };
  std::mutex mutex_;
  std::vector<Entry> entries_;
  uint64_t clock_ = 0;
  size_t capacity_;
};

}  // namespace axstream::runtime
