// DRM PRIME on a real /dev/dri card node: a dumb buffer exported as a dmabuf, written through the
// fd, imported back (same GEM handle on the same device) and into a second open of the device.
// Exits 77 (skipped) with the reason where there is no usable card node, as on our CI machines.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

#include "axstream/error.h"
#include "axstream/hal/dmabuf.h"
#include "axstream/hal/drm.h"

namespace axstream::hal {
namespace {

struct OwnedFd {
  int fd;
  ~OwnedFd() {
    if (fd >= 0) ::close(fd);
  }
};

TEST(DrmPrime, DumbBufferExportsAsADmabufTheRuntimeAccepts) {
  DrmDevice device = DrmDevice::open_first();
  DrmBuffer dumb = device.create_dumb(64, 32, 32);
  EXPECT_GE(dumb.pitch(), 64u * 4);
  EXPECT_GE(dumb.size(), uint64_t(dumb.pitch()) * 32);
  OwnedFd exported{dumb.export_prime()};
  ASSERT_GE(exported.fd, 0);
  BufferFdInfo info = check_buffer_fd(exported.fd, 0, dumb.size(), "exported dumb buffer");
  EXPECT_EQ(info.kind, BufferFdKind::dmabuf);
  {
    BufferFdMapping view(exported.fd, 0, size_t(dumb.size()), CpuAccess::write, "dumb");
    for (size_t i = 0; i < view.size(); ++i) view.data()[i] = uint8_t(i * 13);
  }
  // Imported on the device it came from: the very same GEM buffer.
  DrmBuffer again = device.import_prime(exported.fd);
  EXPECT_EQ(again.handle(), dumb.handle());
  // Imported through another open of the node, exported again: the same memory.
  DrmDevice other = DrmDevice::open(device.path());
  DrmBuffer imported = other.import_prime(exported.fd);
  OwnedFd reexported{imported.export_prime()};
  BufferFdMapping view(reexported.fd, 0, size_t(dumb.size()), CpuAccess::read, "re-exported");
  for (size_t i = 0; i < view.size(); ++i) ASSERT_EQ(view.data()[i], uint8_t(i * 13)) << i;
}

TEST(DrmPrime, ImportingSomethingThatIsNotADmabufIsInvalidArgument) {
  DrmDevice device = DrmDevice::open_first();
  DmaBuffer memfd_backed = DmaBuffer::allocate(4096);
  if (memfd_backed.is_dmabuf()) GTEST_SKIP() << "the allocator gave a real dmabuf here";
  EXPECT_THROW(device.import_prime(memfd_backed.fd()), InvalidArgument);
}

}  // namespace
}  // namespace axstream::hal

int main(int argc, char **argv) {
  try {
    axstream::hal::DrmDevice::open_first();
  } catch (const axstream::Error &error) {
    std::printf("SKIP: DRM PRIME needs a usable /dev/dri card node: %s\n", error.what());
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
