// The directory where simulated devices keep state shared between processes (core lock files,
// configuration), and who this process is to the other processes.
#pragma once

#include <string>

namespace axstream::hal::sim {

// Creates `path` (and missing parents, mode 0700) if needed. Throws ConnectionError when it is
// not a usable directory, or (for the per-user default under /tmp) is owned by another user.
void ensure_runtime_dir(const std::string &path);

// "user:pid" of this process, as lock files record it.
std::string this_process_holder();

}  // namespace axstream::hal::sim
