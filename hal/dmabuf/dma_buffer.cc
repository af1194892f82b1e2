// Allocation of device-visible buffers (DMA heap, udmabuf, sealed memfd) and the dmabuf CPU
// access bracket.
#include <fcntl.h>
#include <linux/dma-buf.h>
#include <linux/dma-heap.h>
#include <linux/udmabuf.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <utility>
#include <vector>

#include "../unique_fd.h"
#include "axstream/error.h"
#include "axstream/hal/dmabuf.h"

namespace axstream::hal {

namespace {

size_t page_size() { return static_cast<size_t>(::sysconf(_SC_PAGESIZE)); }

size_t round_up_to_page(size_t size) {
  size_t page = page_size();
  if (size > SIZE_MAX - page)
    throw InvalidArgument("dmabuf: size " + std::to_string(size) + " is too large");
  return (size + page - 1) / page * page;
}

std::string heap_path() {
  const char *heap = std::getenv("AX_DMABUF_HEAP");
  std::string name = heap && *heap ? heap : "system";
  return name.find('/') == std::string::npos ? "/dev/dma_heap/" + name : name;
}

std::string udmabuf_path() {
  const char *path = std::getenv("AX_UDMABUF_DEVICE");
  return path && *path ? path : "/dev/udmabuf";
}

bool explicitly_set(const char *variable) {
  const char *value = std::getenv(variable);
  return value && *value;
}

// What one backend attempt gave: the buffer's fd, or why not. `broken` says the provider is
// there (its node opened, or the user named it) but did not give a buffer: worth a warning,
// unlike a machine that simply has no such provider.
struct Attempt {
  UniqueFd fd;
  std::string why;
  bool broken = false;
  std::string provider;  // the node tried
  int error = 0;         // errno of the failure
};

int ioctl_retrying(int fd, unsigned long request, void *argument) {
  int result;
  do {
    result = ::ioctl(fd, request, argument);
  } while (result < 0 && (errno == EINTR || errno == EAGAIN));
  return result;
}

// Each attempt returns the buffer's fd, or an invalid fd with `why` saying what failed.
Attempt from_dma_heap(size_t size) {
  Attempt attempt;
  std::string path = heap_path();
  attempt.provider = path;
  UniqueFd heap(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!heap) {
    attempt.error = errno;
    attempt.why = path + ": " + std::strerror(errno);
    attempt.broken = explicitly_set("AX_DMABUF_HEAP");
    return attempt;
  }
  struct dma_heap_allocation_data allocation {};
  allocation.len = round_up_to_page(size);
  allocation.fd_flags = O_RDWR | O_CLOEXEC;
  if (ioctl_retrying(heap.get(), DMA_HEAP_IOCTL_ALLOC, &allocation) < 0) {
    attempt.error = errno;
    attempt.why = path + ": DMA_HEAP_IOCTL_ALLOC of " + std::to_string(allocation.len) +
                  " bytes failed: " + std::strerror(errno);
    attempt.broken = true;
    return attempt;
  }
  attempt.fd = UniqueFd(static_cast<int>(allocation.fd));
  return attempt;
}

UniqueFd sealed_memfd(size_t size, const std::string &name, unsigned int seals, std::string &why) {
  UniqueFd memfd(::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!memfd) {
    why = std::string("memfd_create: ") + std::strerror(errno);
    return {};
  }
  if (::ftruncate(memfd.get(), static_cast<off_t>(size)) != 0) {
    why = "ftruncate(memfd, " + std::to_string(size) + "): " + std::strerror(errno);
    return {};
  }
  if (::fcntl(memfd.get(), F_ADD_SEALS, seals) != 0) {
    why = std::string("F_ADD_SEALS on memfd: ") + std::strerror(errno);
    return {};
  }
  return memfd;
}

Attempt from_udmabuf(size_t size, const std::string &name) {
  Attempt attempt;
  std::string path = udmabuf_path();
  attempt.provider = path;
  UniqueFd device(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!device) {
    attempt.error = errno;
    attempt.why = path + ": " + std::strerror(errno);
    attempt.broken = explicitly_set("AX_UDMABUF_DEVICE");
    return attempt;
  }
  attempt.broken = true;  // from here on, every failure is the device's
  // udmabuf needs whole pages of a memfd that cannot shrink under the device.
  size_t length = round_up_to_page(size);
  UniqueFd memfd = sealed_memfd(length, name, F_SEAL_SHRINK, attempt.why);
  if (!memfd) {
    attempt.error = -1;  // the memfd's failure, not the device's errno
    return attempt;
  }
  struct udmabuf_create create {};
  create.memfd = static_cast<__u32>(memfd.get());
  create.flags = UDMABUF_FLAGS_CLOEXEC;
  create.offset = 0;
  create.size = length;
  int fd = ioctl_retrying(device.get(), UDMABUF_CREATE, &create);
  if (fd < 0) {
    attempt.error = errno;
    attempt.why = path + ": UDMABUF_CREATE of " + std::to_string(length) +
                  " bytes failed: " + std::strerror(errno);
    return attempt;
  }
  attempt.fd = UniqueFd(fd);
  attempt.broken = false;
  return attempt;
}

// A provider that is there but fails is worth saying without AXSTREAM_DEBUG: buffers silently
// coming from memfd instead cost every zero-copy path downstream. Once per provider and errno,
// whatever the size, so a pipeline allocating pools of several sizes says it once.
void warn_provider_failed_once(const Attempt &attempt, DmaBufferBackend instead) {
  static std::mutex mutex;
  static std::set<std::pair<std::string, int>> warned;
  std::lock_guard lock(mutex);
  if (!warned.insert({attempt.provider, attempt.error}).second) return;
  const std::string &why = attempt.why;
  std::fprintf(stderr, "axstream hal: warning: %s; device buffers come from %s instead\n",
               why.c_str(), dma_buffer_backend_name(instead));
}

void log_backend_once(DmaBufferBackend backend, const std::string &skipped) {
  static std::once_flag logged;
  std::call_once(logged, [&] {
    const char *debug = std::getenv("AXSTREAM_DEBUG");
    if (!debug || !*debug || std::strcmp(debug, "0") == 0) return;
    std::fprintf(stderr, "axstream hal: device buffers come from %s%s%s%s\n",
                 dma_buffer_backend_name(backend), skipped.empty() ? "" : " (", skipped.c_str(),
                 skipped.empty() ? "" : ")");
  });
}

unsigned long long sync_flags(CpuAccess access) {
  switch (access) {
    case CpuAccess::read:
      return DMA_BUF_SYNC_READ;
    case CpuAccess::write:
      return DMA_BUF_SYNC_WRITE;
    case CpuAccess::read_write:
      break;
  }
  return DMA_BUF_SYNC_RW;
}

void dma_buf_sync(int fd, unsigned long long flags, const char *phase) {
  struct dma_buf_sync sync {};
  sync.flags = flags;
  if (ioctl_retrying(fd, DMA_BUF_IOCTL_SYNC, &sync) < 0)
    throw InternalError(std::string("DMA_BUF_IOCTL_SYNC ") + phase + " on dmabuf fd " +
                        std::to_string(fd) + " failed: " + std::strerror(errno));
}

}  // namespace

const char *dma_buffer_backend_name(DmaBufferBackend backend) noexcept {
  switch (backend) {
    case DmaBufferBackend::dma_heap:
      return "dma_heap";
    case DmaBufferBackend::udmabuf:
      return "udmabuf";
    case DmaBufferBackend::memfd:
      return "memfd";
  }
  return "unknown";
}

void dma_buf_sync_begin(int fd, CpuAccess access) {
  dma_buf_sync(fd, DMA_BUF_SYNC_START | sync_flags(access), "start");
}

void dma_buf_sync_end(int fd, CpuAccess access) {
  dma_buf_sync(fd, DMA_BUF_SYNC_END | sync_flags(access), "end");
}

DmaBuffer DmaBuffer::allocate(size_t size, const std::string &name) {
  if (size == 0) throw InvalidArgument("dmabuf '" + name + "': size 0, expected at least 1 byte");
  std::string skipped;
  std::vector<Attempt> failures;  // of providers that are there (without their fds)
  auto note = [&](const Attempt &attempt) {
    skipped += (skipped.empty() ? "" : "; ") + attempt.why;
    if (attempt.broken)
      failures.push_back({UniqueFd(), attempt.why, true, attempt.provider, attempt.error});
  };
  DmaBuffer buffer;
  Attempt attempt = from_dma_heap(size);
  buffer.backend_ = DmaBufferBackend::dma_heap;
  if (!attempt.fd) {
    note(attempt);
    attempt = from_udmabuf(size, name);
    buffer.backend_ = DmaBufferBackend::udmabuf;
  }
  if (!attempt.fd) {
    note(attempt);
    // Sealed so that nobody holding the fd can resize the buffer under a mapping.
    attempt.fd = sealed_memfd(size, name, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL, attempt.why);
    buffer.backend_ = DmaBufferBackend::memfd;
    if (!attempt.fd)
      throw InternalError("dmabuf '" + name + "': cannot allocate " + std::to_string(size) +
                          " bytes: " + skipped + "; " + attempt.why);
  }
  for (const auto &failure : failures) warn_provider_failed_once(failure, buffer.backend_);
  UniqueFd fd = std::move(attempt.fd);
  void *address = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (address == MAP_FAILED)
    throw InternalError("dmabuf '" + name + "': mmap of " + std::to_string(size) + " bytes from " +
                        dma_buffer_backend_name(buffer.backend_) +
                        " failed: " + std::strerror(errno));
  buffer.fd_ = fd.release();
  buffer.size_ = size;
  buffer.address_ = address;
  log_backend_once(buffer.backend_, skipped);
  return buffer;
}

DmaBuffer::DmaBuffer(DmaBuffer &&other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      size_(std::exchange(other.size_, 0)),
      address_(std::exchange(other.address_, nullptr)),
      backend_(other.backend_) {}

DmaBuffer &DmaBuffer::operator=(DmaBuffer &&other) noexcept {
  if (this != &other) {
    reset();
    fd_ = std::exchange(other.fd_, -1);
    size_ = std::exchange(other.size_, 0);
    address_ = std::exchange(other.address_, nullptr);
    backend_ = other.backend_;
  }
  return *this;
}

DmaBuffer::~DmaBuffer() { reset(); }

void DmaBuffer::reset() noexcept {
  if (address_) ::munmap(address_, size_);
  if (fd_ >= 0) ::close(fd_);
  address_ = nullptr;
  fd_ = -1;
  size_ = 0;
}

int DmaBuffer::dup_fd() const {
  int copy = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (copy < 0)
    throw InternalError("dmabuf: cannot duplicate fd " + std::to_string(fd_) + ": " +
                        std::strerror(errno));
  return copy;
}

void DmaBuffer::begin_cpu_access(CpuAccess access) const {
  if (is_dmabuf()) dma_buf_sync_begin(fd_, access);
}

void DmaBuffer::end_cpu_access(CpuAccess access) const {
  if (is_dmabuf()) dma_buf_sync_end(fd_, access);
}

CpuAccessScope::~CpuAccessScope() {
  try {
    buffer_.end_cpu_access(access_);
  } catch (...) {
    // Destructors do not throw; a missed end only leaves cache maintenance to the next sync.
  }
}

}  // namespace axstream::hal
