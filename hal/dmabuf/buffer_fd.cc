// Checking and mapping buffer fds that users hand in (dmabuf, memfd, shared memory).
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "axstream/error.h"
#include "axstream/hal/dmabuf.h"

namespace axstream::hal {

namespace {

std::string fd_target(int fd) {
  char target[256];
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  ssize_t length = ::readlink(link.c_str(), target, sizeof target - 1);
  return length > 0 ? std::string(target, static_cast<size_t>(length)) : std::string();
}

std::string describe_mode(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISFIFO(mode)) return "a pipe";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISDIR(mode)) return "a directory";
  return "an unsupported file";
}

}  // namespace

const char *buffer_fd_kind_name(BufferFdKind kind) noexcept {
  switch (kind) {
    case BufferFdKind::dmabuf:
      return "dmabuf";
    case BufferFdKind::memfd:
      return "memfd";
    case BufferFdKind::shm:
      return "shm";
  }
  return "unknown";
}

BufferFdInfo check_buffer_fd(int fd, uint64_t offset, uint64_t needed, const std::string &what) {
  const std::string named = what + ": fd " + std::to_string(fd);
  if (fd < 0)
    throw InvalidArgument(what + ": expected a dmabuf or memfd file descriptor, got fd " +
                          std::to_string(fd));
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    throw InvalidArgument(named + " is not an open file (" + std::strerror(errno) + ")");
  struct statfs fs {};
  if (::fstatfs(fd, &fs) != 0)
    throw InvalidArgument(named + ": fstatfs failed (" + std::strerror(errno) + ")");

  BufferFdInfo info{};
  const std::string target = fd_target(fd);
  if (static_cast<unsigned long>(fs.f_type) == DMA_BUF_MAGIC) {
    info.kind = BufferFdKind::dmabuf;
    // dmabufs report their size through lseek, not fstat.
    off_t end = ::lseek(fd, 0, SEEK_END);
    if (end < 0)
      throw InvalidArgument(named + " is a dmabuf whose size cannot be read (" +
                            std::strerror(errno) + ")");
    ::lseek(fd, 0, SEEK_SET);
    info.size = static_cast<uint64_t>(end);
  } else if (S_ISREG(st.st_mode) && target.rfind("/memfd:", 0) == 0) {
    info.kind = BufferFdKind::memfd;
    info.size = static_cast<uint64_t>(st.st_size);
  } else if (S_ISREG(st.st_mode) && (static_cast<unsigned long>(fs.f_type) == TMPFS_MAGIC ||
                                     static_cast<unsigned long>(fs.f_type) == HUGETLBFS_MAGIC)) {
    info.kind = BufferFdKind::shm;
    info.size = static_cast<uint64_t>(st.st_size);
  } else {
    throw InvalidArgument(named + (target.empty() ? "" : " ('" + target + "')") + " is " +
                          describe_mode(st.st_mode) +
                          "; expected a dmabuf, memfd or shared-memory buffer");
  }
  if (offset > info.size || info.size - offset < needed)
    throw InvalidArgument(named + " (" + buffer_fd_kind_name(info.kind) + ") holds " +
                          std::to_string(info.size) + " bytes; expected at least " +
                          std::to_string(needed) + " from offset " + std::to_string(offset));
  return info;
}

BufferFdMapping::BufferFdMapping(int fd, uint64_t offset, size_t size, CpuAccess access,
                                 const std::string &what)
    : fd_(fd), access_(access), size_(size) {
  kind_ = check_buffer_fd(fd, offset, size, what).kind;
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t aligned = offset - offset % page;
  delta_ = static_cast<size_t>(offset - aligned);
  length_ = size + delta_;
  if (length_ == 0) return;  // nothing to map (size 0 at a page boundary)
  // Write access maps read-write too: write-only mappings are not portable.
  int protection = PROT_READ | (access == CpuAccess::read ? 0 : PROT_WRITE);
  void *address = ::mmap(nullptr, length_, protection, MAP_SHARED, fd, static_cast<off_t>(aligned));
  if (address == MAP_FAILED)
    throw InvalidArgument(what + ": fd " + std::to_string(fd) + " cannot be mapped " +
                          (access == CpuAccess::read ? "read-only" : "read-write") + " (" +
                          std::strerror(errno) + ")");
  address_ = address;
  if (kind_ == BufferFdKind::dmabuf) {
    try {
      dma_buf_sync_begin(fd_, access_);
    } catch (...) {
      ::munmap(address_, length_);
      throw;
    }
  }
}

BufferFdMapping::~BufferFdMapping() {
  if (!address_) return;
  if (kind_ == BufferFdKind::dmabuf) {
    try {
      dma_buf_sync_end(fd_, access_);
    } catch (...) {
      // Destructors do not throw; the unmap below still happens.
    }
  }
  ::munmap(address_, length_);
}

}  // namespace axstream::hal
