// The C++ API has a counterpart for every class, method, property, kwarg, enum value and
// exception of axelera.runtime (shared/axelera-runtime-api.md), with the same shape: the
// static_asserts fail the build when one goes missing or changes type; the tests check the
// names and defaults the doc gives.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "axstream/runtime/runtime.h"

namespace {

namespace rt = axstream::runtime;
using std::declval;
using std::is_base_of_v;
using std::is_same_v;
using std::shared_ptr;

// Object: context, release()
static_assert(
    is_same_v<decltype(declval<const rt::Object &>().context()), shared_ptr<rt::Context>>);
static_assert(is_same_v<decltype(declval<rt::Object &>().release()), void>);

// Context(Object): configure_device, device_connect, device_ready, list_devices, load_model,
// read_device_configuration, release
static_assert(is_base_of_v<rt::Object, rt::Context>);
static_assert(is_same_v<decltype(rt::Context::create()), shared_ptr<rt::Context>>);
static_assert(is_same_v<decltype(declval<rt::Context &>().configure_device(
                            declval<const rt::DeviceInfo &>(), rt::Properties{})),
                        bool>);
static_assert(
    is_same_v<decltype(declval<rt::Context &>().device_connect()), shared_ptr<rt::Connection>>);
static_assert(is_same_v<decltype(declval<rt::Context &>().device_connect(
                            declval<const rt::DeviceInfo *>(), 1, rt::Properties{})),
                        shared_ptr<rt::Connection>>);
static_assert(is_same_v<decltype(declval<const rt::Context &>().device_ready(
                            declval<const rt::DeviceInfo &>())),
                        bool>);
static_assert(is_same_v<decltype(declval<const rt::Context &>().list_devices()),
                        std::vector<rt::DeviceInfo>>);
static_assert(
    is_same_v<decltype(declval<rt::Context &>().load_model(std::string())), shared_ptr<rt::Model>>);
static_assert(is_same_v<decltype(declval<const rt::Context &>().read_device_configuration(
                            declval<const rt::DeviceInfo &>())),
                        rt::Properties>);
static_assert(is_same_v<rt::Properties, std::map<std::string, std::string>>);  // dict[str, str]

// Connection(Object): load_model_instance(model, **kwargs)
static_assert(is_base_of_v<rt::Object, rt::Connection>);
static_assert(is_same_v<decltype(declval<rt::Connection &>().load_model_instance(
                            declval<const shared_ptr<rt::Model> &>(), rt::Properties{})),
                        shared_ptr<rt::ModelInstance>>);

// Model(Object): properties, inputs(), outputs()
static_assert(is_base_of_v<rt::Object, rt::Model>);
static_assert(is_same_v<decltype(declval<const rt::Model &>().properties()), rt::Properties>);
static_assert(
    is_same_v<decltype(declval<const rt::Model &>().inputs()), std::vector<rt::TensorInfo>>);
static_assert(
    is_same_v<decltype(declval<const rt::Model &>().outputs()), std::vector<rt::TensorInfo>>);

// ModelInstance(Object): run(inputs, outputs) -> None
static_assert(is_base_of_v<rt::Object, rt::ModelInstance>);
static_assert(is_same_v<decltype(declval<rt::ModelInstance &>().run(std::vector<rt::Argument>{},
                                                                    std::vector<rt::Argument>{})),
                        void>);

// DeviceInfo fields
static_assert(is_same_v<decltype(rt::DeviceInfo::name), std::string>);
static_assert(std::is_integral_v<decltype(rt::DeviceInfo::subdevice_count)>);
static_assert(std::is_integral_v<decltype(rt::DeviceInfo::max_memory)>);
static_assert(std::is_integral_v<decltype(rt::DeviceInfo::in_use)>);
static_assert(is_same_v<decltype(rt::DeviceInfo::in_use_by), std::string>);
static_assert(is_same_v<decltype(rt::DeviceInfo::board_type), rt::BoardType>);
static_assert(is_same_v<decltype(rt::DeviceInfo::firmware_version), std::string>);
static_assert(std::is_integral_v<decltype(rt::DeviceInfo::board_revision)>);
static_assert(is_same_v<decltype(rt::DeviceInfo::flashed_firmware_version), std::string>);
static_assert(is_same_v<decltype(rt::DeviceInfo::board_controller_firmware_version), std::string>);
static_assert(is_same_v<decltype(rt::DeviceInfo::board_controller_board_type), std::string>);

// TensorInfo fields and properties
static_assert(is_same_v<decltype(rt::TensorInfo::shape), std::vector<int64_t>>);
static_assert(is_same_v<decltype(rt::TensorInfo::dtype), axstream::engine::DType>);
static_assert(is_same_v<decltype(rt::TensorInfo::name), std::string>);
static_assert(
    is_same_v<decltype(rt::TensorInfo::padding), std::vector<std::pair<int64_t, int64_t>>>);
static_assert(is_same_v<decltype(rt::TensorInfo::scale), double>);
static_assert(is_same_v<decltype(rt::TensorInfo::zero_point), int>);
static_assert(is_same_v<decltype(declval<const rt::TensorInfo &>().size()), size_t>);
static_assert(
    is_same_v<decltype(declval<const rt::TensorInfo &>().unpadded_shape()), std::vector<int64_t>>);

// Exceptions
static_assert(is_base_of_v<axstream::Error, axstream::ConnectionError>);
static_assert(is_base_of_v<axstream::Error, axstream::DeviceInUse>);
static_assert(is_base_of_v<axstream::Error, axstream::IncompatibleDevice>);
static_assert(is_base_of_v<axstream::Error, axstream::InternalError>);
static_assert(is_base_of_v<axstream::Error, axstream::InvalidArgument>);
static_assert(is_base_of_v<axstream::Error, axstream::InvalidConfiguration>);
static_assert(is_base_of_v<axstream::Error, axstream::NotImplemented>);
static_assert(is_base_of_v<axstream::Error, axstream::Pending>);
static_assert(is_base_of_v<axstream::Error, axstream::UnknownError>);

template <class E>
std::string kind_name_of() {
  try {
    throw E("message");
  } catch (const axstream::Error &error) {
    return axstream::error_kind_name(error.kind());
  }
}

TEST(ApiParity, EveryExceptionIsAnErrorNamedAsThePythonException) {
  EXPECT_EQ(kind_name_of<axstream::ConnectionError>(), "ConnectionError");
  EXPECT_EQ(kind_name_of<axstream::DeviceInUse>(), "DeviceInUse");
  EXPECT_EQ(kind_name_of<axstream::IncompatibleDevice>(), "IncompatibleDevice");
  EXPECT_EQ(kind_name_of<axstream::InternalError>(), "InternalError");
  EXPECT_EQ(kind_name_of<axstream::InvalidArgument>(), "InvalidArgument");
  EXPECT_EQ(kind_name_of<axstream::InvalidConfiguration>(), "InvalidConfiguration");
  EXPECT_EQ(kind_name_of<axstream::NotImplemented>(), "NotImplemented");
  EXPECT_EQ(kind_name_of<axstream::Pending>(), "Pending");
  EXPECT_EQ(kind_name_of<axstream::UnknownError>(), "UnknownError");
}

TEST(ApiParity, BoardTypeHasThePythonValuesAndNames) {
  const std::vector<std::pair<rt::BoardType, const char *>> expected = {
      {rt::BoardType::alpha_pcie, "alpha_pcie"},
      {rt::BoardType::alpha_m2, "alpha_m2"},
      {rt::BoardType::pcie, "pcie"},
      {rt::BoardType::m2, "m2"},
      {rt::BoardType::devboard, "devboard"},
      {rt::BoardType::sbc, "sbc"},
      {rt::BoardType::unknown, "unknown"}};
  for (size_t value = 0; value < expected.size(); ++value) {
    EXPECT_EQ(static_cast<size_t>(expected[value].first), value) << expected[value].second;
    EXPECT_STREQ(axstream::hal::board_type_name(expected[value].first), expected[value].second);
  }
}

TEST(ApiParity, LoadModelInstanceTakesEveryDocumentedKwargWithItsDefault) {
  rt::InstanceOptions defaults = rt::InstanceOptions::from_properties({});
  EXPECT_EQ(defaults.aipu_cores, 0);
  EXPECT_EQ(defaults.num_sub_devices, 0);
  EXPECT_FALSE(defaults.input_dmabuf);
  EXPECT_FALSE(defaults.device_profiling);
  EXPECT_FALSE(defaults.host_profiling);
  EXPECT_FALSE(defaults.output_dmabuf);
  EXPECT_FALSE(defaults.double_buffer);
  EXPECT_TRUE(defaults.elf_in_ddr);
  rt::InstanceOptions set = rt::InstanceOptions::from_properties({{"aipu_cores", "2"},
                                                                  {"num_sub_devices", "1"},
                                                                  {"input_dmabuf", "1"},
                                                                  {"device_profiling", "1"},
                                                                  {"host_profiling", "1"},
                                                                  {"output_dmabuf", "1"},
                                                                  {"double_buffer", "1"},
                                                                  {"elf_in_ddr", "0"}});
  EXPECT_EQ(set.aipu_cores, 2);
  EXPECT_EQ(set.num_sub_devices, 1);
  EXPECT_TRUE(set.input_dmabuf && set.device_profiling && set.host_profiling && set.output_dmabuf &&
              set.double_buffer);
  EXPECT_FALSE(set.elf_in_ddr);
}

TEST(ApiParity, DeviceConfigurationHasEveryDocumentedPropertyWithItsDefault) {
  auto context = rt::Context::create();
  auto devices = context->list_devices();
  ASSERT_FALSE(devices.empty());
  auto configuration = context->read_device_configuration(devices[0]);
  EXPECT_EQ(configuration["clock_profile"], "800");
  for (int core = 0; core < 4; ++core) {
    EXPECT_EQ(configuration["clock_profile_core_" + std::to_string(core)], "800") << core;
    EXPECT_EQ(configuration["mvm_utilisation_core_" + std::to_string(core)], "100") << core;
  }
}

TEST(ApiParity, TensorInfoFollowsTheDocsPaddingExamples) {
  rt::TensorInfo input{
      {1, 230, 240, 3}, axstream::engine::DType::i8, "", {{0, 0}, {3, 3}, {3, 13}, {0, 1}}};
  EXPECT_EQ(input.unpadded_shape(), (std::vector<int64_t>{1, 224, 224, 2}));
  EXPECT_EQ(input.size(), 1u * 230 * 240 * 3);
  rt::TensorInfo output{
      {1, 1, 1, 1024}, axstream::engine::DType::i8, "", {{0, 0}, {0, 0}, {0, 0}, {0, 24}}};
  EXPECT_EQ(output.unpadded_shape(), (std::vector<int64_t>{1, 1, 1, 1000}));
  EXPECT_EQ(output.size(), 1024u);
  rt::TensorInfo plain;  // the doc's defaults: int8, '', scale 1.0, zero_point 0
  plain.shape = {2, 3};
  EXPECT_EQ(plain.scale, 1.0);
  EXPECT_EQ(plain.zero_point, 0);
  EXPECT_EQ(plain.name, "");
  EXPECT_EQ(plain.dtype, axstream::engine::DType::i8);
  EXPECT_EQ(plain.unpadded_shape(), (std::vector<int64_t>{2, 3}));
}

}  // namespace
