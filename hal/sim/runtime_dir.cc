// Runtime directory creation and the holder text of this process.
#include "runtime_dir.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "axstream/error.h"

namespace axstream::hal::sim {

namespace {

[[noreturn]] void unusable(const std::string &path, const std::string &why) {
  throw ConnectionError("simulated device runtime directory '" + path + "' is not usable: " + why +
                        " (set AXSTREAM_RUNTIME_DIR to a writable directory)");
}

}  // namespace

void ensure_runtime_dir(const std::string &path) {
  if (path.empty()) unusable(path, "empty path");
  // mkdir -p: create each missing component.
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    std::string prefix = slash == std::string::npos ? path : path.substr(0, slash);
    if (!prefix.empty() && ::mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST)
      unusable(path, "mkdir '" + prefix + "' failed: " + std::strerror(errno));
    if (slash == std::string::npos) break;
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) unusable(path, std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) unusable(path, "not a directory");
  // The shared /tmp default must be ours: another user's directory (or a planted symlink) there
  // would let them read and forge our lock and configuration files.
  if (path.rfind("/tmp/axstream-", 0) == 0 && st.st_uid != ::getuid())
    unusable(path,
             "owned by uid " + std::to_string(st.st_uid) + ", not " + std::to_string(::getuid()));
  if (::access(path.c_str(), R_OK | W_OK | X_OK) != 0) unusable(path, std::strerror(errno));
}

std::string this_process_holder() {
  std::string user;
  std::vector<char> buffer(4096);
  struct passwd entry {};
  struct passwd *found = nullptr;
  if (::getpwuid_r(::geteuid(), &entry, buffer.data(), buffer.size(), &found) == 0 && found)
    user = found->pw_name;
  else
    user = std::to_string(::geteuid());
  return user + ":" + std::to_string(::getpid());
}

}  // namespace axstream::hal::sim
