// The one typed error hierarchy every axstream layer throws; each subclass maps 1:1 to an
// exception of the axelera.runtime Python API and an axrResult of the C API.
#pragma once

#include <stdexcept>
#include <string>

namespace axstream {

enum class ErrorKind {
  ConnectionError,
  DeviceInUse,
  IncompatibleDevice,
  InternalError,
  InvalidArgument,
  InvalidConfiguration,
  NotImplemented,
  Pending,
  UnknownError,
};

// Name of the Python exception class for `kind`, e.g. "InvalidArgument".
const char *error_kind_name(ErrorKind kind) noexcept;

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string &message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

#define AXSTREAM_DEFINE_ERROR(Name)                                                \
  class Name : public Error {                                                      \
   public:                                                                         \
    explicit Name(const std::string &message) : Error(ErrorKind::Name, message) {} \
  };
AXSTREAM_DEFINE_ERROR(ConnectionError)
AXSTREAM_DEFINE_ERROR(DeviceInUse)
AXSTREAM_DEFINE_ERROR(IncompatibleDevice)
AXSTREAM_DEFINE_ERROR(InternalError)
AXSTREAM_DEFINE_ERROR(InvalidArgument)
AXSTREAM_DEFINE_ERROR(InvalidConfiguration)
AXSTREAM_DEFINE_ERROR(NotImplemented)
AXSTREAM_DEFINE_ERROR(Pending)
AXSTREAM_DEFINE_ERROR(UnknownError)
#undef AXSTREAM_DEFINE_ERROR

}  // namespace axstream
