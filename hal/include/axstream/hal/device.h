// The device abstraction: what a Metis-class board offers to the runtime (enumeration,
// cross-process reservation of AIPU cores, asynchronous configuration, one execution queue
// per core). Backends (`sim` today, a driver backend later) implement `Device`.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace axstream::hal {

// Values mirror axelera.runtime.BoardType and axrBoardType.
enum class BoardType : int {
  alpha_pcie = 0,
  alpha_m2 = 1,
  pcie = 2,
  m2 = 3,
  devboard = 4,
  sbc = 5,
  unknown = 6,
};
const char *board_type_name(BoardType type) noexcept;

struct DeviceInfo {
  std::string name;  // e.g. "metis-0:1:0"
  int subdevice_count = 0;
  uint64_t max_memory = 0;
  int in_use = 0;         // number of sub-devices currently reserved (any process)
  std::string in_use_by;  // "user:pid" of each holder, comma separated
  BoardType board_type = BoardType::unknown;
  std::string firmware_version;
  int board_revision = 0;
  std::string flashed_firmware_version;
  std::string board_controller_firmware_version;
  std::string board_controller_board_type;
};

// Work for one AIPU core. `macs` is the multiply-accumulate count the job stands for; in pacing
// mode the core takes as long as a real core would at its clock and MVM utilisation.
struct CoreJob {
  std::function<void()> work;
  uint64_t macs = 0;
};

// Timing of one finished job, for device profiling.
struct CoreJobTiming {
  std::chrono::nanoseconds compute{0};  // host time spent in `work`
  std::chrono::nanoseconds device{0};   // modelled device time (== compute unless pacing)
};

// Holds a set of reserved cores of one device; releasing (destruction) frees them for other
// processes. Jobs are queued to a core's worker thread and complete in submission order.
class Reservation {
 public:
  virtual ~Reservation() = default;
  virtual const std::string &device_name() const = 0;
  virtual const std::vector<int> &cores() const = 0;
  // Queue `job` on reserved core `core_index` (an index into cores()). The future carries the
  // job's exception, if any.
  virtual std::future<CoreJobTiming> submit(size_t core_index, CoreJob job) = 0;
};

class Device {
 public:
  virtual ~Device() = default;
  virtual DeviceInfo info() const = 0;  // in_use / in_use_by read fresh
  // Reserve `count` free cores (lowest first). Throws DeviceInUse naming the holders when fewer
  // than `count` are free, InvalidArgument when count is 0 or above the core count.
  virtual std::unique_ptr<Reservation> reserve(int count) = 0;
  // Validate and start applying settings. Unknown key -> InvalidConfiguration; bad value ->
  // InvalidArgument. Returns true if already applied, false while the change is pending.
  virtual bool configure(const std::map<std::string, std::string> &settings) = 0;
  virtual bool ready() const = 0;
  virtual std::map<std::string, std::string> read_configuration() const = 0;
};

// All devices of all backends, enumerated once per process (registry initialised once).
const std::vector<std::shared_ptr<Device>> &devices();
std::shared_ptr<Device> find_device(const std::string &name);  // nullptr if absent

// Forget the enumerated devices so that the next devices() enumerates again, reading the
// backends' environment (AXSTREAM_SIM_*, AXSTREAM_RUNTIME_DIR) afresh. For tests only: it
// invalidates references returned by devices(); Device objects still held by shared_ptr (and
// their reservations) stay valid.
void reset_devices_for_testing();

}  // namespace axstream::hal
