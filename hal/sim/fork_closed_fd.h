// File descriptors that belong to this process alone: the lock files of the simulated device.
// A child forked while one is open closes its copy at once (pthread_atfork), because OFD and
// flock locks belong to the open file, which the child would otherwise share: the lock would
// outlive the parent's release, or the parent itself.
#pragma once

#include <sys/types.h>

#include <string>

namespace axstream::hal::sim {

// An owned fd, registered for closing in forked children from the moment it is opened to the
// moment it is closed (both under the registry's lock, so no fork comes in between).
class ForkClosedFd {
 public:
  // Opens `path` (O_CLOEXEC added). On failure the result is empty and errno says why.
  static ForkClosedFd open(const std::string &path, int flags, mode_t mode);

  ForkClosedFd() = default;
  ForkClosedFd(ForkClosedFd &&other) noexcept;
  ForkClosedFd &operator=(ForkClosedFd &&) = delete;
  ForkClosedFd(const ForkClosedFd &) = delete;
  ForkClosedFd &operator=(const ForkClosedFd &) = delete;
  // Closes the fd in the process that opened it; in a forked child does nothing (the child's
  // copy was closed at fork, and the number may name another file since).
  ~ForkClosedFd();

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  // True in the process that opened the fd, false in a child forked since.
  bool in_owner() const;

 private:
  int fd_ = -1;
  pid_t owner_ = 0;
};

}  // namespace axstream::hal::sim
