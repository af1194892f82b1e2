// DRM fourcc/modifier handling and DRM PRIME buffers through libdrm.
#include "axstream/hal/drm.h"

#include <drm_fourcc.h>
#include <fcntl.h>
#include <unistd.h>
#include <xf86drm.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "../unique_fd.h"
#include "axstream/error.h"

namespace axstream::hal {

namespace {

std::string hex64(uint64_t value) {
  char text[32];
  std::snprintf(text, sizeof text, "0x%016" PRIx64, value);
  return text;
}

// libdrm returns malloc'ed names (or NULL when it has none).
std::string take_name(char *name) {
  std::unique_ptr<char, void (*)(void *)> owned(name, std::free);  // freed even if the copy throws
  return owned ? std::string(owned.get()) : std::string();
}

}  // namespace

std::string drm_fourcc_name(uint32_t fourcc) {
  // drm_fourcc.h's macro names (libdrm's drmGetFormatName only gives the four characters back).
  static const std::map<uint32_t, const char *> names = {
      {DRM_FORMAT_NV12, "NV12"},
      {DRM_FORMAT_NV21, "NV21"},
      {DRM_FORMAT_NV16, "NV16"},
      {DRM_FORMAT_NV61, "NV61"},
      {DRM_FORMAT_NV24, "NV24"},
      {DRM_FORMAT_YUV420, "YUV420"},
      {DRM_FORMAT_YVU420, "YVU420"},
      {DRM_FORMAT_YUV422, "YUV422"},
      {DRM_FORMAT_YUV444, "YUV444"},
      {DRM_FORMAT_YUYV, "YUYV"},
      {DRM_FORMAT_YVYU, "YVYU"},
      {DRM_FORMAT_UYVY, "UYVY"},
      {DRM_FORMAT_VYUY, "VYUY"},
      {DRM_FORMAT_P010, "P010"},
      {DRM_FORMAT_XRGB8888, "XRGB8888"},
      {DRM_FORMAT_ARGB8888, "ARGB8888"},
      {DRM_FORMAT_XBGR8888, "XBGR8888"},
      {DRM_FORMAT_ABGR8888, "ABGR8888"},
      {DRM_FORMAT_RGBX8888, "RGBX8888"},
      {DRM_FORMAT_RGBA8888, "RGBA8888"},
      {DRM_FORMAT_BGRX8888, "BGRX8888"},
      {DRM_FORMAT_BGRA8888, "BGRA8888"},
      {DRM_FORMAT_RGB888, "RGB888"},
      {DRM_FORMAT_BGR888, "BGR888"},
      {DRM_FORMAT_RGB565, "RGB565"},
      {DRM_FORMAT_BGR565, "BGR565"},
      {DRM_FORMAT_R8, "R8"},
      {DRM_FORMAT_R16, "R16"},
  };
  std::string chars = take_name(drmGetFormatName(fourcc));
  if (chars.empty()) {
    for (int shift = 0; shift < 32; shift += 8) {
      const char c = static_cast<char>((fourcc >> shift) & 0xff);
      chars += (c >= 0x20 && c < 0x7f) ? c : '?';
    }
  }
  const auto known = names.find(fourcc);
  if (known == names.end() || chars == known->second) return chars;
  return std::string(known->second) + " (" + chars + ")";
}

std::string drm_modifier_name(uint64_t modifier) {
  if (modifier == DRM_FORMAT_MOD_INVALID)
    return "INVALID (implicit, driver-private layout) (" + hex64(modifier) + ")";
  std::string name = take_name(drmGetFormatModifierName(modifier));
  while (!name.empty() && name.back() == ',') name.pop_back();  // libdrm's ARM names end in ','
  if (name.empty()) return hex64(modifier);
  // libdrm names the layout without its vendor ("Y_TILED" is Intel's, "BLOCK_SIZE=16x16" ARM's).
  const std::string vendor = take_name(drmGetFormatModifierVendor(modifier));
  if (!vendor.empty() && vendor != "NONE") name = vendor + " " + name;
  return name + " (" + hex64(modifier) + ")";
}

DrmFormat parse_drm_format(const std::string &text) {
  auto bad = [&](const std::string &why) {
    return InvalidArgument("drm-format '" + text + "': " + why +
                           "; expected FOURCC or FOURCC:0xMODIFIER, e.g. NV12 or "
                           "NV12:0x0100000000000002");
  };
  const size_t colon = text.find(':');
  const std::string code = text.substr(0, colon);
  if (code.size() != 4) throw bad("the fourcc '" + code + "' is not 4 characters");
  DrmFormat format;
  format.fourcc = fourcc_code(code[0], code[1], code[2], code[3]);
  format.modifier = DRM_FORMAT_MOD_LINEAR;
  if (colon != std::string::npos) {
    const std::string value = text.substr(colon + 1);
    if (value.size() < 3 || value.compare(0, 2, "0x") != 0 ||
        value.find_first_not_of("0123456789abcdefABCDEF", 2) != std::string::npos ||
        value.size() > 18)
      throw bad("the modifier '" + value + "' is not a 64-bit hex number");
    format.modifier = std::strtoull(value.c_str() + 2, nullptr, 16);
  }
  return format;
}

std::string drm_format_string(const DrmFormat &format) {
  std::string code;
  for (int shift = 0; shift < 32; shift += 8)
    code += static_cast<char>((format.fourcc >> shift) & 0xff);
  return format.modifier == DRM_FORMAT_MOD_LINEAR ? code : code + ":" + hex64(format.modifier);
}

void require_linear_modifier(const DrmFormat &format, const std::string &what) {
  if (format.modifier == DRM_FORMAT_MOD_LINEAR) return;
  throw NotImplemented(what + ": " + drm_fourcc_name(format.fourcc) + " frames with modifier " +
                       drm_modifier_name(format.modifier) +
                       " are tiled or compressed; the CPU path reads linear planes only "
                       "(DRM_FORMAT_MOD_LINEAR) and has no detiler: ask upstream for linear "
                       "frames");
}

struct DrmDevice::Shared {
  std::string path;
  UniqueFd fd;
  std::mutex mutex;
  std::map<uint32_t, int> references;  // GEM handle -> DrmBuffers holding it

  void add_reference(uint32_t handle) {
    std::lock_guard<std::mutex> lock(mutex);
    ++references[handle];
  }
  void drop_reference(uint32_t handle) noexcept {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = references.find(handle);
    if (it == references.end() || --it->second > 0) return;
    references.erase(it);
    struct drm_gem_close close_request {};
    close_request.handle = handle;
    drmIoctl(fd.get(), DRM_IOCTL_GEM_CLOSE, &close_request);
  }
};

std::vector<std::string> DrmDevice::card_nodes() {
  std::vector<std::string> nodes;
  std::error_code error;
  for (const auto &entry : std::filesystem::directory_iterator("/dev/dri", error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("card", 0) == 0) nodes.push_back(entry.path().string());
  }
  std::sort(nodes.begin(), nodes.end());
  return nodes;
}

DrmDevice DrmDevice::open(const std::string &path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd)
    throw InvalidArgument("DRM device '" + path + "' cannot be opened: " + std::strerror(errno));
  uint64_t dumb = 0, prime = 0;
  if (drmGetCap(fd.get(), DRM_CAP_DUMB_BUFFER, &dumb) != 0 || !dumb)
    throw NotImplemented("DRM device '" + path + "' has no dumb buffers (DRM_CAP_DUMB_BUFFER)");
  const uint64_t both = DRM_PRIME_CAP_IMPORT | DRM_PRIME_CAP_EXPORT;
  if (drmGetCap(fd.get(), DRM_CAP_PRIME, &prime) != 0 || (prime & both) != both)
    throw NotImplemented(
        "DRM device '" + path +
        "' cannot both import and export dmabufs (DRM_CAP_PRIME = " + std::to_string(prime) + ")");
  auto shared = std::make_shared<Shared>();
  shared->path = path;
  shared->fd = std::move(fd);
  return DrmDevice(std::move(shared));
}

DrmDevice DrmDevice::open_first() {
  const std::vector<std::string> nodes = card_nodes();
  if (nodes.empty()) throw NotImplemented("no DRM card node: /dev/dri is absent or holds no card*");
  std::string tried;
  for (const std::string &node : nodes) {
    try {
      return open(node);
    } catch (const Error &error) {
      tried += (tried.empty() ? "" : "; ") + std::string(error.what());
    }
  }
  throw NotImplemented("no usable DRM card node: " + tried);
}

const std::string &DrmDevice::path() const noexcept { return shared_->path; }
int DrmDevice::fd() const noexcept { return shared_->fd.get(); }

DrmBuffer DrmDevice::create_dumb(uint32_t width, uint32_t height, uint32_t bits_per_pixel) {
  if (width == 0 || height == 0 || bits_per_pixel == 0)
    throw InvalidArgument("dumb buffer on '" + shared_->path + "': " + std::to_string(width) + "x" +
                          std::to_string(height) + " at " + std::to_string(bits_per_pixel) +
                          " bits per pixel; expected every value above 0");
  struct drm_mode_create_dumb create {};
  create.width = width;
  create.height = height;
  create.bpp = bits_per_pixel;
  if (drmIoctl(fd(), DRM_IOCTL_MODE_CREATE_DUMB, &create) != 0)
    throw InternalError("DRM_IOCTL_MODE_CREATE_DUMB " + std::to_string(width) + "x" +
                        std::to_string(height) + "x" + std::to_string(bits_per_pixel) + " on '" +
                        shared_->path + "' failed: " + std::strerror(errno));
  shared_->add_reference(create.handle);
  return DrmBuffer(shared_, create.handle, create.size, create.pitch);
}

DrmBuffer DrmDevice::import_prime(int dmabuf_fd) {
  uint32_t handle = 0;
  if (drmPrimeFDToHandle(fd(), dmabuf_fd, &handle) != 0)
    throw InvalidArgument("fd " + std::to_string(dmabuf_fd) + " cannot be imported into '" +
                          shared_->path + "' (drmPrimeFDToHandle: " + std::strerror(errno) +
                          "); expected a dmabuf");
  const off_t end = ::lseek(dmabuf_fd, 0, SEEK_END);
  ::lseek(dmabuf_fd, 0, SEEK_SET);
  shared_->add_reference(handle);
  return DrmBuffer(shared_, handle, end > 0 ? uint64_t(end) : 0, 0);
}

DrmBuffer::DrmBuffer(DrmBuffer &&other) noexcept
    : device_(std::move(other.device_)),
      handle_(std::exchange(other.handle_, 0)),
      size_(std::exchange(other.size_, 0)),
      pitch_(std::exchange(other.pitch_, 0)) {}

DrmBuffer &DrmBuffer::operator=(DrmBuffer &&other) noexcept {
  if (this != &other) {
    release();
    device_ = std::move(other.device_);
    handle_ = std::exchange(other.handle_, 0);
    size_ = std::exchange(other.size_, 0);
    pitch_ = std::exchange(other.pitch_, 0);
  }
  return *this;
}

DrmBuffer::~DrmBuffer() { release(); }

void DrmBuffer::release() noexcept {
  if (device_) device_->drop_reference(handle_);
  device_.reset();
}

int DrmBuffer::export_prime() const {
  int prime_fd = -1;
  if (drmPrimeHandleToFD(device_->fd.get(), handle_, DRM_CLOEXEC | DRM_RDWR, &prime_fd) != 0)
    throw InternalError("drmPrimeHandleToFD of GEM handle " + std::to_string(handle_) + " on '" +
                        device_->path + "' failed: " + std::strerror(errno));
  return prime_fd;
}

}  // namespace axstream::hal
