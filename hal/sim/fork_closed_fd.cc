// The registry of fds a forked child closes.
#include "fork_closed_fd.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <set>
#include <utility>

namespace axstream::hal::sim {

namespace {

// The mutex is held across fork() (prepare/parent/child handlers): a fork never falls between
// an open and its registration or a close and its removal, and the child never inherits the
// mutex locked by a thread it does not have.
struct Registry {
  std::mutex mutex;
  std::set<int> fds;

  static Registry &instance() {
    static Registry &registry = *[] {
      static Registry object;
      ::pthread_atfork([] { object.mutex.lock(); }, [] { object.mutex.unlock(); },
                       [] {
                         for (int fd : object.fds) ::close(fd);
                         object.fds.clear();
                         object.mutex.unlock();
                       });
      return &object;
    }();
    return registry;
  }
};

}  // namespace

ForkClosedFd ForkClosedFd::open(const std::string &path, int flags, mode_t mode) {
  Registry &registry = Registry::instance();
  ForkClosedFd opened;
  std::lock_guard lock(registry.mutex);
  opened.fd_ = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  if (opened.fd_ < 0) return opened;
  const int saved_errno = errno;
  registry.fds.insert(opened.fd_);
  opened.owner_ = ::getpid();
  errno = saved_errno;
  return opened;
}

ForkClosedFd::ForkClosedFd(ForkClosedFd &&other) noexcept
    : fd_(std::exchange(other.fd_, -1)), owner_(other.owner_) {}

ForkClosedFd::~ForkClosedFd() {
  if (fd_ < 0 || !in_owner()) return;
  Registry &registry = Registry::instance();
  std::lock_guard lock(registry.mutex);
  registry.fds.erase(fd_);
  ::close(fd_);
}

bool ForkClosedFd::in_owner() const { return owner_ == ::getpid(); }

}  // namespace axstream::hal::sim
