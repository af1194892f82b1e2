// Enumeration of simulated devices, their DeviceInfo, and the name tables of the hal.
#include <gtest/gtest.h>

#include <fstream>

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

class ConfigFile : public SimTest {
 protected:
  // Writes `text` as the simulator's configuration file and enumerates again.
  std::string use_config(const std::string &text) {
    std::string path = runtime_dir_ + "/sim.conf";
    std::ofstream(path) << text;
    set_env(sim::kConfigFileEnv, path);
    return path;
  }
  static std::string enumeration_error() {
    try {
      devices();
    } catch (const InvalidConfiguration &error) {
      return error.what();
    }
    return "(no error)";
  }
};

TEST_F(ConfigFile, SetsTheDevicesAndTheBoardDataOfEveryDeviceOrOfOne) {
  use_config(
      "# a lab rig: two boards, one an M.2 card on newer firmware\n"
      "devices = metis-0:1:0, metis-0:2:0\n"
      "subdevices = 2\n"
      "firmware_version = v1.3.0-lab   # both boards\n"
      "flashed_firmware_version = v1.3.0-lab\n"
      "board_revision = 5\n"
      "max_memory = 1073741824\n"
      "metis-0:2:0.board_type = m2\n"
      "metis-0:2:0.firmware_version = v1.4.0-rc1\n"
      "metis-0:2:0.board_controller_firmware_version = v2.0.0\n");
  ASSERT_EQ(device_names(), (std::vector<std::string>{"metis-0:1:0", "metis-0:2:0"}));
  DeviceInfo first = device("metis-0:1:0")->info();
  EXPECT_EQ(first.subdevice_count, 2);
  EXPECT_EQ(first.board_type, BoardType::pcie);
  EXPECT_EQ(first.firmware_version, "v1.3.0-lab");
  EXPECT_EQ(first.flashed_firmware_version, "v1.3.0-lab");
  EXPECT_EQ(first.board_revision, 5);
  EXPECT_EQ(first.max_memory, 1ull << 30);
  EXPECT_EQ(first.board_controller_board_type, "metis-pcie-bc");
  DeviceInfo second = device("metis-0:2:0")->info();
  EXPECT_EQ(second.subdevice_count, 2);
  EXPECT_EQ(second.board_type, BoardType::m2);
  EXPECT_EQ(second.board_controller_board_type, "metis-m2-bc");
  EXPECT_EQ(second.firmware_version, "v1.4.0-rc1");
  EXPECT_EQ(second.flashed_firmware_version, "v1.3.0-lab");
  EXPECT_EQ(second.board_controller_firmware_version, "v2.0.0");
  EXPECT_EQ(second.board_revision, 5);
}

TEST_F(ConfigFile, EnvironmentVariablesWinOverTheFile) {
  use_config("devices = 3\nboard_type = sbc\nmetis-0:2:0.board_type = m2\npacing = 1\n");
  EXPECT_EQ(devices().size(), 3u);
  EXPECT_EQ(device("metis-0:2:0")->info().board_type, BoardType::m2);
  EXPECT_TRUE(sim::pacing(*device()));
  set_env(sim::kDevicesEnv, "2");
  set_env(sim::kBoardTypeEnv, "devboard");
  set_env(sim::kPacingEnv, "0");
  EXPECT_EQ(devices().size(), 2u);
  EXPECT_EQ(device("metis-0:1:0")->info().board_type, BoardType::devboard);
  EXPECT_EQ(device("metis-0:2:0")->info().board_type, BoardType::devboard);
  EXPECT_FALSE(sim::pacing(*device()));
}

TEST_F(ConfigFile, MistakesAreInvalidConfigurationNamingFileLineKeyAndValue) {
  struct Case {
    const char *text;
    std::vector<std::string> named;
  };
  const Case cases[] = {
      {"devices = 2\nclock = 800\n", {"line 2", "unknown key 'clock'", "firmware_version"}},
      {"subdevices = 0\n", {"line 1: subdevices='0'", "[1, 16]"}},
      {"board_type = pci\n", {"board_type='pci'", "one of alpha_pcie"}},
      {"devices\n", {"line 1", "expected key = value, got 'devices'"}},
      {"metis-0:7:0.firmware_version = v2\n", {"no simulated device 'metis-0:7:0'"}},
      {"metis-0:1:0.devices = 2\n", {"unknown key 'metis-0:1:0.devices'"}},
      {"board_revision = -1\nboard_revision = 2\n", {"line 2", "set twice"}},
      {"board_revision = two\n", {"board_revision='two'"}},
      {"firmware_version =\n", {"firmware_version=''", "printable"}},
  };
  for (const Case &bad : cases) {
    std::string path = use_config(bad.text);
    std::string message = enumeration_error();
    EXPECT_NE(message.find("AXSTREAM_SIM_CONFIG file '" + path + "'"), std::string::npos)
        << bad.text << " -> " << message;
    for (const auto &part : bad.named)
      EXPECT_NE(message.find(part), std::string::npos) << bad.text << " -> " << message;
  }
  set_env(sim::kConfigFileEnv, runtime_dir_ + "/missing.conf");
  EXPECT_NE(enumeration_error().find("AXSTREAM_SIM_CONFIG='" + runtime_dir_ +
                                     "/missing.conf': cannot read the file"),
            std::string::npos)
      << enumeration_error();
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
