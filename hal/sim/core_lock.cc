// OFD lock files for AIPU cores.
#include "core_lock.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "../unique_fd.h"
#include "axstream/error.h"
#include "runtime_dir.h"

namespace axstream::hal::sim {

namespace {

struct flock whole_file_lock(short type) {
  struct flock lock {};
  lock.l_type = type;
  lock.l_whence = SEEK_SET;
  lock.l_start = 0;
  lock.l_len = 0;  // to the end of the file, however long
  lock.l_pid = 0;  // must be 0 for OFD locks
  return lock;
}

// For probing only: a read-only fd takes no lock, so a forked child may inherit it.
UniqueFd open_lock_file_to_probe(const std::string &path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  // A missing file, or a runtime directory that is not one (reserve() says so), holds no lock.
  if (!fd && errno != ENOENT && errno != ENOTDIR)
    throw ConnectionError("cannot open core lock file '" + path + "': " + std::strerror(errno));
  return fd;
}

std::string read_holder(int fd) {
  char text[256];
  ssize_t length = ::pread(fd, text, sizeof text - 1, 0);
  if (length <= 0) return {};
  std::string holder(text, static_cast<size_t>(length));
  while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0')) holder.pop_back();
  return holder;
}

// A holder writes its name just after taking the lock; give it a moment before saying unknown.
std::string read_holder_of_held_lock(int fd) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::string holder = read_holder(fd);
    if (!holder.empty()) return holder;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return "unknown";
}

}  // namespace

CoreLock::CoreLock(ForkClosedFd fd) : fd_(std::move(fd)) {}

std::optional<CoreLock> CoreLock::try_acquire(const std::string &path, const std::string &holder,
                                              std::string *current_holder) {
  // Registered as it opens, so a fork from another thread meanwhile leaves no copy in the child.
  ForkClosedFd opened = ForkClosedFd::open(path, O_RDWR | O_CREAT, kSharedFileMode);
  if (!opened)
    throw ConnectionError("cannot open core lock file '" + path + "': " + std::strerror(errno));
  CoreLock candidate(std::move(opened));
  const int fd = candidate.fd_.get();
  struct flock lock = whole_file_lock(F_WRLCK);
  if (::fcntl(fd, F_OFD_SETLK, &lock) != 0) {
    if (errno != EAGAIN && errno != EACCES)
      throw ConnectionError("cannot lock core lock file '" + path + "': " + std::strerror(errno));
    if (current_holder) *current_holder = read_holder_of_held_lock(fd);
    return std::nullopt;
  }
  candidate.locked_ = true;
  std::string text = holder + "\n";
  if (::ftruncate(fd, 0) != 0 ||
      ::pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
    throw ConnectionError("cannot record holder in core lock file '" + path +
                          "': " + std::strerror(errno));
  return std::optional<CoreLock>(std::move(candidate));
}

std::optional<std::string> CoreLock::probe(const std::string &path) {
  UniqueFd fd = open_lock_file_to_probe(path);
  if (!fd) return std::nullopt;  // never created: never held
  struct flock lock = whole_file_lock(F_WRLCK);
  if (::fcntl(fd.get(), F_OFD_GETLK, &lock) != 0)
    throw ConnectionError("cannot test core lock file '" + path + "': " + std::strerror(errno));
  if (lock.l_type == F_UNLCK) return std::nullopt;
  return read_holder_of_held_lock(fd.get());
}

CoreLock::~CoreLock() {
  // Moved from, or a forked child (whose copy of the fd was closed at fork; the holder text is
  // the parent's, still true).
  if (!fd_ || !fd_.in_owner()) return;
  // Best effort: a stale name in an unlocked file is harmless, as only the lock counts.
  if (locked_) {
    [[maybe_unused]] int cleared = ::ftruncate(fd_.get(), 0);
  }
}

}  // namespace axstream::hal::sim
