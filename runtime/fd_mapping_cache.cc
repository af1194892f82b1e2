#include "fd_mapping_cache.h"

#include <sys/stat.h>

#include <algorithm>

namespace axstream::runtime {

std::shared_ptr<hal::BufferFdMapping> FdMappingCache::map(
    int fd, uint64_t offset, size_t size, hal::CpuAccess access,
    const std::function<std::string()> &what) {
  struct stat st {};
  // A closed or reused fd number shows up as another inode (or an fstat error: then the full
  // check below names the problem).
  const bool identified = ::fstat(fd, &st) == 0;
  if (identified) {
    std::lock_guard lock(mutex_);
    for (Entry &e : entries_) {
      if (e.fd != fd || e.device != st.st_dev || e.inode != st.st_ino || e.offset != offset ||
          e.size != size || e.access != access)
        continue;
      // A shrunk shared-memory file would fault on access: check it again.
      if (uint64_t(st.st_size) < offset + size) break;
      e.last_use = ++clock_;
      return e.mapping;
    }
  }
  auto mapping = std::make_shared<hal::BufferFdMapping>(fd, offset, size, access, what());
  if (!identified || mapping->kind() == hal::BufferFdKind::dmabuf) return mapping;
  std::lock_guard lock(mutex_);
  // Entries of this fd number for another file are stale (the fd was closed and reused).
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [&](const Entry &e) {
                                  return e.fd == fd &&
                                         (e.device != st.st_dev || e.inode != st.st_ino);
                                }),
                 entries_.end());
  if (entries_.size() >= capacity_) {
    auto oldest =
        std::min_element(entries_.begin(), entries_.end(),
                         [](const Entry &a, const Entry &b) { return a.last_use < b.last_use; });
    entries_.erase(oldest);
  }
  entries_.push_back({fd, st.st_dev, st.st_ino, offset, size, access, ++clock_, mapping});
  return mapping;
}

void FdMappingCache::clear() {
  std::lock_guard lock(mutex_);
  entries_.clear();
}

}  // namespace axstream::runtime
