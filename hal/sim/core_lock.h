// The cross-process lock on one AIPU core: an open-file-description (OFD) write lock on a lock
// file in the runtime directory, with the holder's "user:pid" written inside.
//
// OFD locks rather than flock(): both belong to the open file description, so a second
// reservation in the same process (on its own fd) conflicts and the lock dies with the process,
// but OFD locks can be tested with F_OFD_GETLK without being taken. A flock() probe would
// briefly hold the lock itself and make a concurrent reserve() in another process fail.
#pragma once

#include <optional>
#include <string>

#include "../unique_fd.h"

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
  CoreLock &operator=(CoreLock &&) noexcept = default;
  ~CoreLock();  // clears the holder text, then closing the fd releases the lock

 private:
  explicit CoreLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace axstream::hal::sim
