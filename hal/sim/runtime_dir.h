// The directory where simulated devices keep state shared between processes (core lock files,
// configuration), and who this process is to the other processes.
#pragma once

#include <sys/types.h>

#include <string>

namespace axstream::hal::sim {

// Mode the lock and configuration files are created with: the umask decides who else may use
// the device. The per-user default directory is 0700, so there they stay ours; a directory
// shared by several users (AXSTREAM_RUNTIME_DIR, group-writable, umask 002) lets each reserve
// and configure after another has.
inline constexpr mode_t kSharedFileMode = 0666;

// Creates `path` (and missing parents, mode 0700) if needed. Throws ConnectionError when it is
// not a usable directory, or (for the per-user default under /tmp) is owned by another user.
void ensure_runtime_dir(const std::string &path);

// "user:pid" of this process, as lock files record it.
std::string this_process_holder();

}  // namespace axstream::hal::sim
