// The cross-process lock on one AIPU core: an open-file-description (OFD) write lock on a lock
// file in the runtime directory, with the holder's "user:pid" written inside.
//
// OFD locks rather than flock(): both belong to the open file description, so a second
// reservation in the same process (on its own fd) conflicts and the lock dies with the process,
// but OFD locks can be tested with F_OFD_GETLK without being taken. A flock() probe would
// briefly hold the lock itself and make a concurrent reserve() in another process fail.
//
// A lock belongs to the process that took it: a child forked while it is held (multiprocessing,
// a GStreamer app's helper) closes its inherited copies at once, or the shared open file would
// keep the cores locked after the holder released them or died.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "fork_closed_fd.h"

namespace axstream::hal::sim {

class CoreLock {
 public:
  // Takes the lock on `path` (created if missing) and records `holder` in it. Returns nullopt if
  // another open file holds it; then `*current_holder` (if given) names that holder.
  static std::optional<CoreLock> try_acquire(const std::string &path, const std::string &holder,
                                             std::string *current_holder);
  // The holder of `path` if any process (this one included) holds it, without taking the lock.
  static std::optional<std::string> probe(const std::string &path);

  CoreLock(CoreLock &&) noexcept = default;
  CoreLock &operator=(CoreLock &&) = delete;  // would close a registered fd behind its back
  // Clears the holder text, then closing the fd releases the lock. In a forked child it does
  // neither: the child closed its copy of the fd when it was forked.
  ~CoreLock();

 private:
  explicit CoreLock(ForkClosedFd fd);
  ForkClosedFd fd_;
  bool locked_ = false;  // the lock was taken (and the holder text is ours to clear)
};

}  // namespace axstream::hal::sim
