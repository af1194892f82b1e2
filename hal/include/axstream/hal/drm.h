// DRM (libdrm) side of the zero-copy path: the fourcc + modifier that describe an imported
// frame's layout, the check that the CPU path can read it, and DRM PRIME buffers (dumb buffers
// exported as dmabufs, dmabufs imported as GEM handles) on a /dev/dri card node.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace axstream::hal {

// A frame layout as DRM names it: a fourcc (drm_fourcc.h, e.g. DRM_FORMAT_NV12) and a format
// modifier (DRM_FORMAT_MOD_LINEAR for plain row-major planes; anything else is a tiled or
// compressed layout, DRM_FORMAT_MOD_INVALID an implicit, driver-private one).
struct DrmFormat {
  uint32_t fourcc = 0;
  uint64_t modifier = 0;  // DRM_FORMAT_MOD_LINEAR
};

// "NV12", "XRGB8888" (libdrm's name) or the fourcc's four characters when libdrm has no name.
std::string drm_fourcc_name(uint32_t fourcc);
// "LINEAR", "I915_Y_TILED", ... as libdrm names it, followed by the value in hex, e.g.
// "I915_Y_TILED (0x0100000000000002)"; just the hex when libdrm does not know it.
std::string drm_modifier_name(uint64_t modifier);

// Parses GStreamer's drm-format caps field: "FOURCC" (linear) or "FOURCC:0xMODIFIER", e.g.
// "NV12:0x0100000000000002". InvalidArgument naming the text when it is not of that form.
DrmFormat parse_drm_format(const std::string &text);
// The inverse of parse_drm_format: "NV12" for linear, "NV12:0x0100000000000002" otherwise.
std::string drm_format_string(const DrmFormat &format);

// The CPU path (preprocessing on the host, the simulator) reads planes row by row and has no
// detiler: any modifier but DRM_FORMAT_MOD_LINEAR is NotImplemented, naming `what`, the fourcc
// and the modifier.
void require_linear_modifier(const DrmFormat &format, const std::string &what);

class DrmBuffer;

// An open DRM primary node (/dev/dri/cardN) able to make dumb buffers and to import and export
// them as dmabufs (PRIME). GEM handles are unique per open file and not reference counted by the
// kernel, so this object counts the references its DrmBuffers hold.
class DrmDevice {
 public:
  // The card nodes /dev/dri holds (empty when there is no /dev/dri).
  static std::vector<std::string> card_nodes();
  // Opens `path`; InvalidArgument when it cannot be opened, NotImplemented when the driver lacks
  // dumb buffers or PRIME import/export, each naming the path.
  static DrmDevice open(const std::string &path);
  // The first card node that opens and offers dumb buffers and PRIME; NotImplemented naming
  // every node tried and why (or that /dev/dri has none).
  static DrmDevice open_first();

  const std::string &path() const noexcept;
  int fd() const noexcept;

  // A dumb (CPU-mappable, linear) buffer of width x height pixels of `bits_per_pixel`.
  DrmBuffer create_dumb(uint32_t width, uint32_t height, uint32_t bits_per_pixel);
  // The GEM buffer behind a dmabuf fd (drmPrimeFDToHandle); the fd stays the caller's. A dmabuf
  // exported from this device gives back the very buffer (same handle) it came from.
  DrmBuffer import_prime(int dmabuf_fd);

  struct Shared;

 private:
  explicit DrmDevice(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}
  std::shared_ptr<Shared> shared_;
};

// One reference to a GEM handle on a DrmDevice (kept open while any DrmBuffer needs it).
class DrmBuffer {
 public:
  DrmBuffer(DrmBuffer &&other) noexcept;
  DrmBuffer &operator=(DrmBuffer &&other) noexcept;
  DrmBuffer(const DrmBuffer &) = delete;
  DrmBuffer &operator=(const DrmBuffer &) = delete;
  ~DrmBuffer();  // drops the reference; the last one closes the GEM handle

  uint32_t handle() const noexcept { return handle_; }
  uint64_t size() const noexcept { return size_; }
  uint32_t pitch() const noexcept { return pitch_; }  // bytes per row (dumb buffers; 0 imported)
  // A new dmabuf fd of the buffer (drmPrimeHandleToFD, read-write, close-on-exec), owned by the
  // caller: what the runtime, GStreamer (GstDmaBufAllocator) or another device imports.
  int export_prime() const;

 private:
  friend class DrmDevice;
  DrmBuffer(std::shared_ptr<DrmDevice::Shared> device, uint32_t handle, uint64_t size,
            uint32_t pitch)
      : device_(std::move(device)), handle_(handle), size_(size), pitch_(pitch) {}
  void release() noexcept;

  std::shared_ptr<DrmDevice::Shared> device_;
  uint32_t handle_ = 0;
  uint64_t size_ = 0;
  uint32_t pitch_ = 0;
};

}  // namespace axstream::hal
