// Enumeration of simulated devices, their DeviceInfo, and the name tables of the hal.
#include <gtest/gtest.h>

#include "axstream/error.h"
#include "hal_test_env.h"

namespace axstream::hal::testing {
namespace {

std::vector<std::string> device_names() {
  std::vector<std::string> names;
  for (const auto &device : devices()) names.push_back(device->info().name);
  return names;
}

using Enumeration = SimTest;

TEST_F(Enumeration, DefaultIsOneMetisWithFourCores) {
  ASSERT_EQ(device_names(), std::vector<std::string>{"metis-0:1:0"});
  EXPECT_EQ(devices()[0]->info().subdevice_count, 4);
}

TEST_F(Enumeration, CountFromEnvironmentNamesDevicesByBus) {
  set_env(sim::kDevicesEnv, "2");
  EXPECT_EQ(device_names(), (std::vector<std::string>{"metis-0:1:0", "metis-0:2:0"}));
}

TEST_F(Enumeration, ZeroDevicesIsAnEmptyList) {
  set_env(sim::kDevicesEnv, "0");
  EXPECT_TRUE(devices().empty());
  EXPECT_EQ(find_device("metis-0:1:0"), nullptr);
}

TEST_F(Enumeration, NameListAndSubdeviceCountFromEnvironment) {
  set_env(sim::kDevicesEnv, "metis-0:3:0, lab-board_1");
  set_env(sim::kSubdevicesEnv, "2");
  EXPECT_EQ(device_names(), (std::vector<std::string>{"metis-0:3:0", "lab-board_1"}));
  for (const auto &device : devices()) EXPECT_EQ(device->info().subdevice_count, 2);
}

TEST_F(Enumeration, MalformedEnvironmentIsInvalidConfigurationNamingTheVariable) {
  for (const char *bad : {"a,,b", "x/y", "dup,dup", "99"}) {
    set_env(sim::kDevicesEnv, bad);
    try {
      devices();
      FAIL() << "AXSTREAM_SIM_DEVICES=" << bad << " was accepted";
    } catch (const InvalidConfiguration &error) {
      EXPECT_NE(std::string(error.what()).find("AXSTREAM_SIM_DEVICES"), std::string::npos);
      EXPECT_NE(std::string(error.what()).find(bad), std::string::npos) << error.what();
    }
  }
  set_env(sim::kDevicesEnv, "1");
  set_env(sim::kSubdevicesEnv, "0");
  EXPECT_THROW(devices(), InvalidConfiguration);
  set_env(sim::kSubdevicesEnv, "4");
  set_env(sim::kPacingEnv, "maybe");
  EXPECT_THROW(devices(), InvalidConfiguration);
}

TEST_F(Enumeration, EveryDeviceInfoFieldIsPopulated) {
  DeviceInfo info = device()->info();
  EXPECT_EQ(info.name, "metis-0:1:0");
  EXPECT_EQ(info.subdevice_count, 4);
  EXPECT_EQ(info.max_memory, 4ull << 30);
  EXPECT_EQ(info.in_use, 0);
  EXPECT_EQ(info.in_use_by, "");
  EXPECT_EQ(info.board_type, BoardType::pcie);
  EXPECT_EQ(info.firmware_version, "v1.2.0-sim");
  EXPECT_GT(info.board_revision, 0);
  EXPECT_EQ(info.flashed_firmware_version, info.firmware_version);
  EXPECT_FALSE(info.board_controller_firmware_version.empty());
  EXPECT_EQ(info.board_controller_board_type, "metis-pcie-bc");
}

TEST_F(Enumeration, BoardTypeFromEnvironment) {
  set_env(sim::kBoardTypeEnv, "m2");
  DeviceInfo info = device()->info();
  EXPECT_EQ(info.board_type, BoardType::m2);
  EXPECT_EQ(info.board_controller_board_type, "metis-m2-bc");
}

TEST_F(Enumeration, DevicesAreEnumeratedOncePerProcessUntilReset) {
  const auto *first = &devices();
  auto before = devices()[0];
  ::setenv(sim::kDevicesEnv, "3", 1);
  EXPECT_EQ(devices().size(), 1u) << "the environment is read once";
  EXPECT_EQ(&devices(), first);
  EXPECT_EQ(devices()[0], before);
  reset_devices_for_testing();
  EXPECT_EQ(devices().size(), 3u);
}

TEST_F(Enumeration, FindDeviceByName) {
  set_env(sim::kDevicesEnv, "2");
  ASSERT_NE(find_device("metis-0:2:0"), nullptr);
  EXPECT_EQ(find_device("metis-0:2:0"), devices()[1]);
  EXPECT_EQ(find_device("metis-0:9:0"), nullptr);
}

TEST_F(Enumeration, SimDevicesAreRecognisedAndPacingDefaultsOff) {
  EXPECT_TRUE(sim::is_sim_device(*device()));
  EXPECT_FALSE(sim::pacing(*device()));
  set_env(sim::kPacingEnv, "1");
  EXPECT_TRUE(sim::pacing(*device()));
}

TEST(Names, BoardTypeNamesMatchThePythonEnum) {
  EXPECT_STREQ(board_type_name(BoardType::alpha_pcie), "alpha_pcie");
  EXPECT_STREQ(board_type_name(BoardType::alpha_m2), "alpha_m2");
  EXPECT_STREQ(board_type_name(BoardType::pcie), "pcie");
  EXPECT_STREQ(board_type_name(BoardType::m2), "m2");
  EXPECT_STREQ(board_type_name(BoardType::devboard), "devboard");
  EXPECT_STREQ(board_type_name(BoardType::sbc), "sbc");
  EXPECT_STREQ(board_type_name(BoardType::unknown), "unknown");
}

TEST(Names, ErrorKindNamesMatchThePythonExceptions) {
  EXPECT_STREQ(error_kind_name(ErrorKind::ConnectionError), "ConnectionError");
  EXPECT_STREQ(error_kind_name(ErrorKind::DeviceInUse), "DeviceInUse");
  EXPECT_STREQ(error_kind_name(ErrorKind::IncompatibleDevice), "IncompatibleDevice");
  EXPECT_STREQ(error_kind_name(ErrorKind::InternalError), "InternalError");
  EXPECT_STREQ(error_kind_name(ErrorKind::InvalidArgument), "InvalidArgument");
  EXPECT_STREQ(error_kind_name(ErrorKind::InvalidConfiguration), "InvalidConfiguration");
  EXPECT_STREQ(error_kind_name(ErrorKind::NotImplemented), "NotImplemented");
  EXPECT_STREQ(error_kind_name(ErrorKind::Pending), "Pending");
  EXPECT_STREQ(error_kind_name(ErrorKind::UnknownError), "UnknownError");
  EXPECT_EQ(DeviceInUse("x").kind(), ErrorKind::DeviceInUse);
}

}  // namespace
}  // namespace axstream::hal::testing
