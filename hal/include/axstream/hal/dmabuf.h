// Device-visible buffers: dmabufs from a DMA heap or /dev/udmabuf where the kernel offers them,
// sealed memfds otherwise; CPU access brackets; and the check of buffer fds users hand in.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace axstream::hal {

enum class DmaBufferBackend {
  dma_heap,  // /dev/dma_heap/<heap> (AX_DMABUF_HEAP: a heap name or a path; default "system")
  udmabuf,   // a sealed memfd turned into a dmabuf by /dev/udmabuf (AX_UDMABUF_DEVICE: its path)
  memfd,     // a sealed memfd (no dmabuf provider on this machine)
};
const char *dma_buffer_backend_name(DmaBufferBackend backend) noexcept;

enum class CpuAccess { read = 1, write = 2, read_write = 3 };

// An allocated buffer: owns its fd and a read-write MAP_SHARED mapping of it. The backend in use
// is written to stderr once per process when AXSTREAM_DEBUG is set; a provider that is there
// (its node opens, or the environment names it) but gives no buffer is a warning on stderr, once
// per provider and reason, naming the node and the failed call.
class DmaBuffer {
 public:
  // `size` bytes (at least 1) from the first backend that works, in the order of the enum.
  // `name` labels the buffer (visible in /proc/<pid>/fd and the dmabuf debug files).
  static DmaBuffer allocate(size_t size, const std::string &name = "axstream-buffer");

  DmaBuffer() = default;
  DmaBuffer(DmaBuffer &&other) noexcept;
  DmaBuffer &operator=(DmaBuffer &&other) noexcept;
  DmaBuffer(const DmaBuffer &) = delete;
  DmaBuffer &operator=(const DmaBuffer &) = delete;
  ~DmaBuffer();  // unmaps, then closes the fd

  explicit operator bool() const noexcept { return fd_ >= 0; }
  int fd() const noexcept { return fd_; }
  // A new fd of the same buffer for an owner that closes it (e.g. GstFdAllocator).
  int dup_fd() const;
  size_t size() const noexcept { return size_; }
  uint8_t *data() noexcept { return static_cast<uint8_t *>(address_); }
  const uint8_t *data() const noexcept { return static_cast<const uint8_t *>(address_); }
  DmaBufferBackend backend() const noexcept { return backend_; }
  bool is_dmabuf() const noexcept { return backend_ != DmaBufferBackend::memfd; }

  // Bracket CPU reads/writes of data() (DMA_BUF_IOCTL_SYNC on dmabufs; nothing on memfd).
  void begin_cpu_access(CpuAccess access) const;
  void end_cpu_access(CpuAccess access) const;

 private:
  void reset() noexcept;

  int fd_ = -1;
  size_t size_ = 0;
  void *address_ = nullptr;
  DmaBufferBackend backend_ = DmaBufferBackend::memfd;
};

// begin_cpu_access() now, end_cpu_access() when destroyed.
class CpuAccessScope {
 public:
  CpuAccessScope(const DmaBuffer &buffer, CpuAccess access) : buffer_(buffer), access_(access) {
    buffer_.begin_cpu_access(access_);
  }
  ~CpuAccessScope();
  CpuAccessScope(const CpuAccessScope &) = delete;
  CpuAccessScope &operator=(const CpuAccessScope &) = delete;

 private:
  const DmaBuffer &buffer_;
  CpuAccess access_;
};

// DMA_BUF_IOCTL_SYNC start/end on a dmabuf fd; throws InternalError naming the fd on failure.
void dma_buf_sync_begin(int fd, CpuAccess access);
void dma_buf_sync_end(int fd, CpuAccess access);

enum class BufferFdKind {
  dmabuf,  // a dmabuf (DMA heap, udmabuf, DRM PRIME, V4L2 export, ...)
  memfd,   // memfd_create()
  shm,     // POSIX shared memory (a tmpfs file, e.g. from shm_open or GstShmAllocator)
};
const char *buffer_fd_kind_name(BufferFdKind kind) noexcept;

struct BufferFdInfo {
  BufferFdKind kind;
  uint64_t size;  // bytes the fd holds
};

// Checks a buffer fd handed in by a user: it must be a dmabuf, memfd or shared-memory file holding
// at least `offset + needed` bytes. Anything else (a regular file on disk, a pipe, a socket, a
// closed fd) is an InvalidArgument naming `what`, the fd and what was found.
BufferFdInfo check_buffer_fd(int fd, uint64_t offset, uint64_t needed, const std::string &what);

// A MAP_SHARED view of [offset, offset + size) of a checked buffer fd, with the CPU access
// bracket held for its lifetime on dmabufs. The fd stays owned by the caller and must outlive
// the mapping.
class BufferFdMapping {
 public:
  BufferFdMapping(int fd, uint64_t offset, size_t size, CpuAccess access, const std::string &what);
  ~BufferFdMapping();
  BufferFdMapping(const BufferFdMapping &) = delete;
  BufferFdMapping &operator=(const BufferFdMapping &) = delete;

  // nullptr when size() is 0.
  uint8_t *data() noexcept {
    return address_ ? static_cast<uint8_t *>(address_) + delta_ : nullptr;
  }
  const uint8_t *data() const noexcept {
    return address_ ? static_cast<const uint8_t *>(address_) + delta_ : nullptr;
  }
  size_t size() const noexcept { return size_; }
  BufferFdKind kind() const noexcept { return kind_; }

 private:
  int fd_;
  CpuAccess access_;
  BufferFdKind kind_;
  void *address_ = nullptr;
  size_t length_ = 0;  // of the mapping, from the page below offset
  size_t delta_ = 0;   // offset - that page
  size_t size_ = 0;
};

}  // namespace axstream::hal
