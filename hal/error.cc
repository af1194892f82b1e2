// Names of the error kinds, as the Python API spells its exception classes.
#include "axstream/error.h"

namespace axstream {

const char *error_kind_name(ErrorKind kind) noexcept {
  switch (kind) {
    case ErrorKind::ConnectionError:
      return "ConnectionError";
    case ErrorKind::DeviceInUse:
      return "DeviceInUse";
    case ErrorKind::IncompatibleDevice:
      return "IncompatibleDevice";
    case ErrorKind::InternalError:
      return "InternalError";
    case ErrorKind::InvalidArgument:
      return "InvalidArgument";
    case ErrorKind::InvalidConfiguration:
      return "InvalidConfiguration";
    case ErrorKind::NotImplemented:
      return "NotImplemented";
    case ErrorKind::Pending:
      return "Pending";
    case ErrorKind::UnknownError:
      return "UnknownError";
  }
  return "UnknownError";
}

}  // namespace axstream
