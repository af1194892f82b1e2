// Allocates a buffer through hal::DmaBuffer with the default backend order and proves it usable
// (written through its mapping, read back through a second mapping of a duplicated fd, accepted
// by check_buffer_fd), then prints what the process could reach, one key=value per line:
//   backend=dma_heap|udmabuf|memfd   heap_openable=0|1   udmabuf_openable=0|1
//   cap_sys_admin=0|1                user_namespace=0|1
// for tests/hal/test_dmabuf_unprivileged.sh, which runs it in a user namespace and without
// CAP_SYS_ADMIN. Exit 0 when the buffer works, 1 otherwise (the error on stderr).
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "axstream/error.h"
#include "axstream/hal/dmabuf.h"

namespace {

bool openable(const std::string &path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

bool has_cap_sys_admin() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    const uint64_t effective = std::stoull(line.substr(7), nullptr, 16);
    return (effective >> 21) & 1;  // CAP_SYS_ADMIN
  }
  return false;
}

// The initial namespace maps the whole uid range onto itself: "0 0 4294967295".
bool in_user_namespace() {
  std::ifstream map("/proc/self/uid_map");
  uint64_t inside = 0, outside = 0, count = 0;
  map >> inside >> outside >> count;
  return !(inside == 0 && outside == 0 && count == 4294967295ull);
}

std::string heap_path() {
  const char *heap = std::getenv("AX_DMABUF_HEAP");
  std::string name = heap && *heap ? heap : "system";
  return name.find('/') == std::string::npos ? "/dev/dma_heap/" + name : name;
}

}  // namespace

int main() {
  using namespace axstream::hal;
  try {
    const size_t size = 3 * 4096 + 100;
    DmaBuffer buffer = DmaBuffer::allocate(size, "dmabuf-probe");
    {
      CpuAccessScope access(buffer, CpuAccess::write);
      for (size_t i = 0; i < size; ++i) buffer.data()[i] = static_cast<uint8_t>(i % 241);
    }
    const int copy = buffer.dup_fd();
    {
      BufferFdMapping view(copy, 4096, size - 4096, CpuAccess::read, "probe copy");
      for (size_t i = 0; i < view.size(); ++i)
        if (view.data()[i] != static_cast<uint8_t>((4096 + i) % 241)) {
          std::fprintf(stderr, "byte %zu read back through the fd differs\n", 4096 + i);
          return 1;
        }
    }
    ::close(copy);
    std::printf(
        "backend=%s\nheap_openable=%d\nudmabuf_openable=%d\ncap_sys_admin=%d\n"
        "user_namespace=%d\n",
        dma_buffer_backend_name(buffer.backend()), openable(heap_path(), O_RDONLY),
        openable("/dev/udmabuf", O_RDWR), has_cap_sys_admin(), in_user_namespace());
    return 0;
  } catch (const axstream::Error &error) {
    std::fprintf(stderr, "dmabuf probe: %s\n", error.what());
    return 1;
  }
}
