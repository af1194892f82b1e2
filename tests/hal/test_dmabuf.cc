// Buffer allocation (DMA heap / udmabuf / sealed memfd) and the checks of user buffer fds.
// This machine has neither /dev/dma_heap nor /dev/udmabuf: the dmabuf cases skip there.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "axstream/error.h"
#include "axstream/hal/dmabuf.h"
#include "expected_error.h"
#include "hal_test_env.h"

namespace axstream::hal {
namespace {

using axstream::test::message_of;

bool can_open(const char *path) {
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

// A memfd of `size` bytes holding i % 251 at byte i.
int patterned_memfd(size_t size) {
  int fd = ::memfd_create("hal-test", MFD_CLOEXEC);
  EXPECT_GE(fd, 0);
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(i % 251);
  EXPECT_EQ(::write(fd, bytes.data(), size), static_cast<ssize_t>(size));
  return fd;
}

class DmaBufferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("AX_DMABUF_HEAP");
    ::unsetenv("AX_UDMABUF_DEVICE");
    std::string pattern =
        (std::filesystem::temp_directory_path() / "axstream-dmabuf-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    scratch_ = pattern;
  }
  void TearDown() override {
    ::unsetenv("AX_DMABUF_HEAP");
    ::unsetenv("AX_UDMABUF_DEVICE");
    std::error_code ignored;
    std::filesystem::remove_all(scratch_, ignored);
  }
  // An empty regular file standing in for a device node: it opens, and every ioctl on it fails
  // (ENOTTY), as a heap or udmabuf device that cannot give memory would.
  std::string fake_node(const std::string &name) {
    std::filesystem::create_directories(std::filesystem::path(scratch_ + "/" + name).parent_path());
    std::string path = scratch_ + "/" + name;
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    EXPECT_GE(fd, 0) << path;
    ::close(fd);
    return path;
  }
  std::string scratch_;
};

bool contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

// The real-device paths are tried with their own ioctls, then the allocator falls back and says
// why on stderr, without AXSTREAM_DEBUG, once per provider and reason (whatever the size).
TEST_F(DmaBufferTest, ProvidersThatOpenButCannotAllocateAreWarnedAboutOnce) {
  std::string heap = fake_node("dma_heap/system");
  std::string udmabuf = fake_node("udmabuf");
  ::setenv("AX_DMABUF_HEAP", heap.c_str(), 1);
  ::setenv("AX_UDMABUF_DEVICE", udmabuf.c_str(), 1);
  ::testing::internal::CaptureStderr();
  DmaBuffer buffer = DmaBuffer::allocate(5000, "hal-test");
  std::string warning = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(buffer.backend(), DmaBufferBackend::memfd);
  EXPECT_TRUE(contains(
      warning, "axstream hal: warning: " + heap + ": DMA_HEAP_IOCTL_ALLOC of 8192 bytes failed: "))
      << warning;
  EXPECT_TRUE(contains(warning, udmabuf + ": UDMABUF_CREATE of 8192 bytes failed: ")) << warning;
  EXPECT_TRUE(contains(warning, "device buffers come from memfd instead")) << warning;

  ::testing::internal::CaptureStderr();
  DmaBuffer again = DmaBuffer::allocate(50000, "hal-test");  // another size: the same reason
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(again.backend(), DmaBufferBackend::memfd);
}

TEST_F(DmaBufferTest, ANamedHeapThatIsMissingIsWarnedAbout) {
  std::string heap = scratch_ + "/no-such-heap";
  ::setenv("AX_DMABUF_HEAP", heap.c_str(), 1);
  ::setenv("AX_UDMABUF_DEVICE", (scratch_ + "/no-udmabuf").c_str(), 1);
  ::testing::internal::CaptureStderr();
  DmaBuffer buffer = DmaBuffer::allocate(100, "hal-test");
  std::string warning = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(warning, heap + ": No such file or directory")) << warning;
  EXPECT_TRUE(contains(warning, scratch_ + "/no-udmabuf: No such file or directory")) << warning;
}

TEST_F(DmaBufferTest, MachinesWithoutProvidersFallBackSilently) {
  if (can_open("/dev/dma_heap/system") || can_open("/dev/udmabuf"))
    GTEST_SKIP() << "this machine has a dmabuf provider";
  ::testing::internal::CaptureStderr();
  DmaBuffer buffer = DmaBuffer::allocate(100, "hal-test");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(buffer.backend(), DmaBufferBackend::memfd);
}

TEST_F(DmaBufferTest, FallsBackToASealedMemfdWithoutDmabufProviders) {
  if (can_open("/dev/udmabuf")) GTEST_SKIP() << "/dev/udmabuf exists: no fallback to memfd here";
  ::setenv("AX_DMABUF_HEAP", "/nonexistent/heap", 1);
  DmaBuffer buffer = DmaBuffer::allocate(10000, "hal-test");
  EXPECT_EQ(buffer.backend(), DmaBufferBackend::memfd);
  EXPECT_FALSE(buffer.is_dmabuf());
  EXPECT_EQ(buffer.size(), 10000u);
  int seals = ::fcntl(buffer.fd(), F_GET_SEALS);
  EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW), F_SEAL_SHRINK | F_SEAL_GROW);
  EXPECT_NE(::ftruncate(buffer.fd(), 5000), 0) << "a sealed buffer cannot shrink";
  EXPECT_NE(::ftruncate(buffer.fd(), 20000), 0) << "a sealed buffer cannot grow";
  BufferFdInfo info = check_buffer_fd(buffer.fd(), 0, 10000, "buffer");
  EXPECT_EQ(info.kind, BufferFdKind::memfd);
  EXPECT_EQ(info.size, 10000u);
}

TEST_F(DmaBufferTest, WritesThroughTheMappingAreSeenThroughTheFd) {
  DmaBuffer buffer = DmaBuffer::allocate(8192);
  {
    CpuAccessScope access(buffer, CpuAccess::write);
    for (size_t i = 0; i < buffer.size(); ++i) buffer.data()[i] = static_cast<uint8_t>(i * 7);
  }
  int copy = buffer.dup_fd();
  ASSERT_GE(copy, 0);
  BufferFdMapping view(copy, 4096, 100, CpuAccess::read, "copy");
  for (size_t i = 0; i < 100; ++i) ASSERT_EQ(view.data()[i], static_cast<uint8_t>((4096 + i) * 7));
  ::close(copy);
}

TEST_F(DmaBufferTest, ZeroSizeIsInvalidArgument) {
  EXPECT_THROW(DmaBuffer::allocate(0), InvalidArgument);
}

TEST_F(DmaBufferTest, MovingHandsOverTheFdAndDestructionClosesIt) {
  DmaBuffer first = DmaBuffer::allocate(100);
  const int fd = first.fd();
  DmaBuffer second = std::move(first);
  EXPECT_FALSE(first);
  EXPECT_EQ(second.fd(), fd);
  second = DmaBuffer();
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST_F(DmaBufferTest, AllocatesFromTheSystemDmaHeapWhenPresent) {
  if (!can_open("/dev/dma_heap/system")) GTEST_SKIP() << "no /dev/dma_heap/system on this machine";
  DmaBuffer buffer = DmaBuffer::allocate(4096);
  EXPECT_EQ(buffer.backend(), DmaBufferBackend::dma_heap);
  EXPECT_EQ(check_buffer_fd(buffer.fd(), 0, 4096, "heap buffer").kind, BufferFdKind::dmabuf);
  CpuAccessScope access(buffer, CpuAccess::read_write);
  buffer.data()[0] = 42;
  EXPECT_EQ(buffer.data()[0], 42);
}

TEST_F(DmaBufferTest, AllocatesFromUdmabufWhenThereIsNoHeap) {
  if (!can_open("/dev/udmabuf")) GTEST_SKIP() << "no /dev/udmabuf on this machine";
  ::setenv("AX_DMABUF_HEAP", "/nonexistent/heap", 1);
  DmaBuffer buffer = DmaBuffer::allocate(5000);
  EXPECT_EQ(buffer.backend(), DmaBufferBackend::udmabuf);
  EXPECT_EQ(check_buffer_fd(buffer.fd(), 0, 5000, "udmabuf").kind, BufferFdKind::dmabuf);
}

TEST(BufferFd, MemfdIsAcceptedWithItsSize) {
  int fd = patterned_memfd(3000);
  BufferFdInfo info = check_buffer_fd(fd, 1000, 2000, "input 0");
  EXPECT_EQ(info.kind, BufferFdKind::memfd);
  EXPECT_EQ(info.size, 3000u);
  ::close(fd);
}

TEST(BufferFd, TooSmallBufferNamesSizesAndOffset) {
  int fd = patterned_memfd(3000);
  std::string message =
      message_of<InvalidArgument>([&] { check_buffer_fd(fd, 1000, 2001, "input 0"); });
  EXPECT_NE(message.find("input 0: fd " + std::to_string(fd)), std::string::npos) << message;
  EXPECT_NE(message.find("holds 3000 bytes; expected at least 2001 from offset 1000"),
            std::string::npos)
      << message;
  EXPECT_THROW(check_buffer_fd(fd, 5000, 0, "input 0"), InvalidArgument);
  ::close(fd);
}

TEST(BufferFd, RegularFilesPipesAndClosedFdsAreRejected) {
  std::string path = (std::filesystem::temp_directory_path() / "axstream-hal-regular-XXXXXX");
  int file = ::mkstemp(path.data());
  ASSERT_GE(file, 0);
  ASSERT_EQ(::ftruncate(file, 4096), 0);
  std::string message =
      message_of<InvalidArgument>([&] { check_buffer_fd(file, 0, 16, "output 1"); });
  ::close(file);
  ::unlink(path.c_str());
  // A disk file may still be on tmpfs where TMPDIR is one; then it counts as shared memory.
  if (message.find("no error") == std::string::npos) {
    EXPECT_NE(message.find("is a regular file"), std::string::npos) << message;
    EXPECT_NE(message.find("output 1"), std::string::npos) << message;
  }

  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  message = message_of<InvalidArgument>([&] { check_buffer_fd(pipe_fds[0], 0, 1, "input 0"); });
  EXPECT_NE(message.find("is a pipe; expected a dmabuf, memfd or shared-memory buffer"),
            std::string::npos)
      << message;
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);

  message = message_of<InvalidArgument>([&] { check_buffer_fd(pipe_fds[0], 0, 1, "input 0"); });
  EXPECT_NE(message.find("is not an open file"), std::string::npos) << message;
  EXPECT_THROW(check_buffer_fd(-1, 0, 1, "input 0"), InvalidArgument);
}

TEST(BufferFd, SharedMemoryFileIsAccepted) {
  if (!std::filesystem::is_directory("/dev/shm")) GTEST_SKIP() << "no /dev/shm";
  std::string name = "/axstream-hal-test-" + std::to_string(::getpid());
  int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ::shm_unlink(name.c_str());
  ASSERT_EQ(::ftruncate(fd, 4096), 0);
  EXPECT_EQ(check_buffer_fd(fd, 0, 4096, "shm").kind, BufferFdKind::shm);
  ::close(fd);
}

TEST(BufferFd, MappingShowsTheBytesFromAnUnalignedOffset) {
  int fd = patterned_memfd(10000);
  {
    BufferFdMapping mapping(fd, 5000, 300, CpuAccess::read_write, "input 0");
    EXPECT_EQ(mapping.kind(), BufferFdKind::memfd);
    EXPECT_EQ(mapping.size(), 300u);
    for (size_t i = 0; i < 300; ++i)
      ASSERT_EQ(mapping.data()[i], static_cast<uint8_t>((5000 + i) % 251));
    mapping.data()[0] = 0xEE;
  }
  uint8_t byte = 0;
  ASSERT_EQ(::pread(fd, &byte, 1, 5000), 1);
  EXPECT_EQ(byte, 0xEE);
  ::close(fd);
}

TEST(BufferFd, ReadOnlyFdCannotBeMappedForWriting) {
  int fd = patterned_memfd(4096);
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  int read_only = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(read_only, 0);
  EXPECT_NO_THROW(BufferFdMapping(read_only, 0, 4096, CpuAccess::read, "input 0"));
  std::string message = message_of<InvalidArgument>(
      [&] { BufferFdMapping(read_only, 0, 4096, CpuAccess::write, "output 0"); });
  EXPECT_NE(
      message.find("output 0: fd " + std::to_string(read_only) + " cannot be mapped read-write"),
      std::string::npos)
      << message;
  ::close(read_only);
  ::close(fd);
}

}  // namespace
}  // namespace axstream::hal
