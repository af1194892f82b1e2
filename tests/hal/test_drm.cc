// DRM fourcc / modifier handling of imported frames: names, GStreamer's drm-format text, the
// refusal of tiled/compressed modifiers, and what DrmDevice says where there is no /dev/dri.
#include <drm_fourcc.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "axstream/error.h"
#include "axstream/hal/drm.h"
#include "expected_error.h"
#include "hal_test_env.h"

namespace axstream::hal {
namespace {

using axstream::test::message_of;

TEST(DrmFormat, FourccNamesAreTheMacroNamesWithTheirCharacters) {
  EXPECT_EQ(drm_fourcc_name(DRM_FORMAT_NV12), "NV12");
  EXPECT_EQ(drm_fourcc_name(DRM_FORMAT_XRGB8888), "XRGB8888 (XR24)");
  EXPECT_EQ(drm_fourcc_name(DRM_FORMAT_YUV420), "YUV420 (YU12)");
  // Not in the table: the four characters themselves.
  EXPECT_EQ(drm_fourcc_name(fourcc_code('Q', 'Z', 'Q', 'Z')), "QZQZ");
}

TEST(DrmFormat, ModifierNamesCarryTheVendorNameAndTheValue) {
  EXPECT_EQ(drm_modifier_name(DRM_FORMAT_MOD_LINEAR), "LINEAR (0x0000000000000000)");
  EXPECT_EQ(drm_modifier_name(I915_FORMAT_MOD_Y_TILED), "INTEL Y_TILED (0x0100000000000002)");
  EXPECT_NE(drm_modifier_name(DRM_FORMAT_MOD_INVALID).find("implicit"), std::string::npos);
}

TEST(DrmFormat, ParsesGStreamersDrmFormatField) {
  DrmFormat linear = parse_drm_format("NV12");
  EXPECT_EQ(linear.fourcc, DRM_FORMAT_NV12);
  EXPECT_EQ(linear.modifier, DRM_FORMAT_MOD_LINEAR);
  DrmFormat tiled = parse_drm_format("XR24:0x0100000000000002");
  EXPECT_EQ(tiled.fourcc, DRM_FORMAT_XRGB8888);
  EXPECT_EQ(tiled.modifier, I915_FORMAT_MOD_Y_TILED);
  EXPECT_EQ(drm_format_string(tiled), "XR24:0x0100000000000002");
  EXPECT_EQ(drm_format_string(linear), "NV12");
}

TEST(DrmFormat, MalformedDrmFormatIsInvalidArgumentNamingTheText) {
  for (const char *text :
       {"", "NV1", "NV12:", "NV12:12", "NV12:0xZZ", "NV12:0x00000000000000001"}) {
    const std::string message = message_of<InvalidArgument>([&] { parse_drm_format(text); });
    EXPECT_NE(message.find(std::string("'") + text + "'"), std::string::npos) << message;
    EXPECT_NE(message.find("expected FOURCC"), std::string::npos) << message;
  }
}

TEST(DrmFormat, LinearModifierIsAccepted) {
  EXPECT_NO_THROW(require_linear_modifier({DRM_FORMAT_NV12, DRM_FORMAT_MOD_LINEAR}, "frame"));
}

TEST(DrmFormat, TiledOrCompressedModifierIsRefusedNamingIt) {
  const std::string tiled = message_of<NotImplemented>([] {
    require_linear_modifier({DRM_FORMAT_NV12, I915_FORMAT_MOD_Y_TILED}, "camera frame");
  });
  EXPECT_NE(tiled.find("camera frame"), std::string::npos) << tiled;
  EXPECT_NE(tiled.find("NV12"), std::string::npos) << tiled;
  EXPECT_NE(tiled.find("INTEL Y_TILED (0x0100000000000002)"), std::string::npos) << tiled;
  EXPECT_NE(tiled.find("DRM_FORMAT_MOD_LINEAR"), std::string::npos) << tiled;
  const uint64_t afbc = DRM_FORMAT_MOD_ARM_AFBC(AFBC_FORMAT_MOD_BLOCK_SIZE_16x16);
  const std::string compressed = message_of<NotImplemented>([&] {
    require_linear_modifier({DRM_FORMAT_XRGB8888, afbc}, "decoder output");
  });
  EXPECT_NE(compressed.find("XRGB8888"), std::string::npos) << compressed;
  EXPECT_NE(compressed.find("ARM BLOCK_SIZE=16x16"), std::string::npos) << compressed;
  // An implicit (driver-private) layout is not known to be linear either.
  EXPECT_THROW(require_linear_modifier({DRM_FORMAT_NV12, DRM_FORMAT_MOD_INVALID}, "frame"),
               NotImplemented);
}

TEST(DrmDevice, OpeningAMissingNodeNamesThePath) {
  const std::string message =
      message_of<InvalidArgument>([] { DrmDevice::open("/nonexistent/dri/card9"); });
  EXPECT_NE(message.find("/nonexistent/dri/card9"), std::string::npos) << message;
}

TEST(DrmDevice, WithoutCardNodesOpenFirstSaysSo) {
  if (!DrmDevice::card_nodes().empty())
    GTEST_SKIP() << "this machine has DRM card nodes (tests/hal/test_drm_prime.cc uses them)";
  const std::string message = message_of<NotImplemented>([] { DrmDevice::open_first(); });
  EXPECT_NE(message.find("/dev/dri"), std::string::npos) << message;
}

}  // namespace
}  // namespace axstream::hal
