// Context, devices, connections and object ownership: release cascades, use after release,
// core reservation, option parsing.
#include <atomic>
#include <thread>

#include "axstream/runtime/model_package.h"
#include "expected_error.h"
#include "test_util.h"

namespace axstream::runtime {
namespace {

using test::contains_all;
using test::message_of;

DeviceInfo default_device(const std::shared_ptr<Context> &context) {
  auto devices = context->list_devices();
  if (devices.empty()) throw std::runtime_error("no devices");
  return devices.front();
}

TEST(Context, ListsTheDefaultSimulatedMetisWithFourCores) {
  auto context = Context::create();
  auto devices = context->list_devices();
  ASSERT_FALSE(devices.empty());
  EXPECT_EQ(devices[0].name, "metis-0:1:0");
  EXPECT_EQ(devices[0].subdevice_count, 4);
}

TEST(Context, ContextOfEveryObjectIsItsCreator) {
  AXSTREAM_REQUIRE_TEST_MODELS();
  auto context = Context::create();
  EXPECT_EQ(context->context(), context);
  auto model = context->load_model(test::model_path("resnet_tiny"));
  EXPECT_EQ(model->context(), context);
  auto connection = context->device_connect(nullptr, 1);
  EXPECT_EQ(connection->context(), context);
}

TEST(Context, FourSingleCoreConnectsSucceedAndTheFifthIsDeviceInUse) {
  auto context = Context::create();
  std::vector<std::shared_ptr<Connection>> connections;
  for (int i = 0; i < 4; ++i) connections.push_back(context->device_connect(nullptr, 1));
  for (const auto &connection : connections) {
    EXPECT_EQ(connection->device_name(), "metis-0:1:0");
    EXPECT_EQ(connection->num_sub_devices(), 1);
  }
  EXPECT_THROW(context->device_connect(nullptr, 1), DeviceInUse);
  auto info = default_device(context);
  EXPECT_EQ(info.in_use, 4);

  // Releasing one connection frees its core for the next connect.
  connections[2]->release();
  EXPECT_NO_THROW(connections[2] = context->device_connect(nullptr, 1));
  EXPECT_THROW(context->device_connect(&info, 1), DeviceInUse);
}

TEST(Context, ReleasingTheContextFreesEveryCore) {
  {
    auto context = Context::create();
    context->device_connect(nullptr, 4);
    context->release();
  }
  auto context = Context::create();
  EXPECT_NO_THROW(context->device_connect(nullptr, 4));
}

TEST(Context, ConnectArgumentsAreValidated) {
  auto context = Context::create();
  EXPECT_THROW(context->device_connect(nullptr, 0), InvalidArgument);
  EXPECT_THROW(context->device_connect(nullptr, 5), InvalidArgument);
  std::string message = message_of<InvalidArgument>([&] {
    context->device_connect(nullptr, 1, {{"speed", "fast"}});
  });
  EXPECT_TRUE(contains_all(message, {"'speed'"}));
  DeviceInfo unknown;
  unknown.name = "metis-9:9:9";
  message = message_of<InvalidArgument>([&] { context->device_connect(&unknown, 1); });
  EXPECT_TRUE(contains_all(message, {"metis-9:9:9"}));
}

TEST(Context, DeviceCallsOnAnUnknownDeviceAreInvalidArgument) {
  auto context = Context::create();
  DeviceInfo unknown;
  unknown.name = "metis-7:0:0";
  EXPECT_THROW(context->configure_device(unknown, {{"clock_profile", "800"}}), InvalidArgument);
  EXPECT_THROW(context->device_ready(unknown), InvalidArgument);
  std::string message =
      message_of<InvalidArgument>([&] { context->read_device_configuration(unknown); });
  EXPECT_TRUE(contains_all(message, {"unknown device 'metis-7:0:0'"}));
}

TEST(Context, ConfigurationGoesToTheDeviceAndReadsBack) {
  auto context = Context::create();
  auto device = default_device(context);
  bool applied = context->configure_device(device, {{"clock_profile", "600"}});
  for (int i = 0; !applied && i < 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    applied = context->device_ready(device);
  }
  EXPECT_TRUE(applied);
  EXPECT_EQ(context->read_device_configuration(device).at("clock_profile"), "600");
  applied = context->configure_device(device, {{"clock_profile", "800"}});
  for (int i = 0; !applied && i < 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    applied = context->device_ready(device);
  }
  EXPECT_THROW(context->configure_device(device, {{"no_such_setting", "1"}}), InvalidConfiguration);
}

TEST(Objects, UseAfterReleaseNamesTheReleasedObject) {
  AXSTREAM_REQUIRE_TEST_MODELS();
  auto context = Context::create();
  auto connection = context->device_connect(nullptr, 1);
  auto model = context->load_model(test::model_path("resnet_tiny"));
  connection->release();
  EXPECT_TRUE(connection->released());
  std::string message =
      message_of<InvalidArgument>([&] { connection->load_model_instance(model); });
  EXPECT_EQ(message, "Connection to metis-0:1:0 was released");
  model->release();
  message = message_of<InvalidArgument>([&] { model->inputs(); });
  EXPECT_EQ(message, "Model 'resnet_tiny' was released");
  context->release();
  message = message_of<InvalidArgument>([&] { context->list_devices(); });
  EXPECT_EQ(message, "Context was released");
  EXPECT_THROW(context->load_model(test::model_path("resnet_tiny")), InvalidArgument);
  EXPECT_THROW(context->device_connect(nullptr, 1), InvalidArgument);
}

TEST(Objects, ReleasingTwiceIsHarmless) {
  auto context = Context::create();
  auto connection = context->device_connect(nullptr, 1);
  connection->release();
  EXPECT_NO_THROW(connection->release());
  context->release();
  EXPECT_NO_THROW(context->release());
  EXPECT_NO_THROW(connection->release());
}

TEST(Objects, ContextReleaseCascadesToEveryChild) {
  AXSTREAM_REQUIRE_TEST_MODELS();
  auto context = Context::create();
  auto model = context->load_model(test::model_path("resnet_tiny"));
  auto connection = context->device_connect(nullptr, 2);
  auto instance = connection->load_model_instance(model);
  std::vector<int8_t> input(model->inputs()[0].size()), output(model->outputs()[0].size());
  context->release();
  EXPECT_TRUE(model->released());
  EXPECT_TRUE(connection->released());
  EXPECT_TRUE(instance->released());
  std::string message =
      message_of<InvalidArgument>([&] { instance->run({{input.data()}}, {{output.data()}}); });
  EXPECT_TRUE(
      contains_all(message, {"ModelInstance of 'resnet_tiny' on metis-0:1:0 was released"}));
}

TEST(Objects, ReleasingAModelReleasesItsInstancesButNotTheConnection) {
  AXSTREAM_REQUIRE_TEST_MODELS();
  auto context = Context::create();
  auto model = context->load_model(test::model_path("resnet_tiny"));
  auto other = context->load_model(test::model_path("two_outputs"));
  auto connection = context->device_connect(nullptr, 1);
  auto instance = connection->load_model_instance(model);
  auto other_instance = connection->load_model_instance(other);
  model->release();
  EXPECT_TRUE(instance->released());
  EXPECT_FALSE(other_instance->released());
  EXPECT_FALSE(connection->released());
  connection->release();
  EXPECT_TRUE(other_instance->released());
  EXPECT_FALSE(other->released());
}

TEST(Objects, ConcurrentReleasesAndCallsAreSafe) {
  AXSTREAM_REQUIRE_TEST_MODELS();
  for (int round = 0; round < 20; ++round) {
    auto context = Context::create();
    auto model = context->load_model(test::model_path("resnet_tiny"));
    std::atomic<int> finished{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&, t] {
        try {
          if (t % 2) {
            context->release();
          } else {
            model->inputs();
            model->release();
          }
        } catch (const InvalidArgument &) {
        }
        ++finished;
      });
    for (auto &thread : threads) thread.join();
    EXPECT_EQ(finished, 4);
    EXPECT_TRUE(model->released());
    EXPECT_TRUE(context->released());
  }
}

TEST(Model, PropertiesAndTensorsComeFromThePackage) {
  AXSTREAM_REQUIRE_TEST_MODELS();
  auto context = Context::create();
  auto model = context->load_model(test::model_path("resnet_tiny_post") + "/model.json");
  EXPECT_EQ(model->name(), "resnet_tiny_post");
  EXPECT_EQ(model->describe(), "Model 'resnet_tiny_post'");
  auto properties = model->properties();
  EXPECT_EQ(properties.at("postamble_graph"), "postamble.onnx");
  EXPECT_EQ(properties.at("preamble_graph"), "");
  EXPECT_EQ(properties.at("input_tensor_layout"), "NHWC");
  ASSERT_EQ(model->inputs().size(), 1u);
  EXPECT_EQ(model->inputs()[0].size(), 32u * 32 * 4);
  EXPECT_EQ(model->outputs()[0].unpadded_shape(), (std::vector<int64_t>{1, 1, 1, 1000}));
  auto pre = context->load_model(test::model_path("resnet_tiny_pre"));
  EXPECT_EQ(pre->properties().at("preamble_graph"), "preamble.onnx");
  std::string message =
      message_of<InvalidArgument>([&] { context->load_model(test::model_path("no_such_model")); });
  EXPECT_TRUE(contains_all(message, {"no_such_model"}));
}

TEST(InstanceOptions, ParsesPythonKeywordValues) {
  auto options = InstanceOptions::from_properties({{"aipu_cores", "2"},
                                                   {"input_dmabuf", "1"},
                                                   {"output_dmabuf", "true"},
                                                   {"device_profiling", "True"},
                                                   {"host_profiling", "0"},
                                                   {"double_buffer", "false"},
                                                   {"elf_in_ddr", "False"}});
  EXPECT_EQ(options.aipu_cores, 2);
  EXPECT_EQ(options.num_sub_devices, 0);
  EXPECT_TRUE(options.input_dmabuf);
  EXPECT_TRUE(options.output_dmabuf);
  EXPECT_TRUE(options.device_profiling);
  EXPECT_FALSE(options.host_profiling);
  EXPECT_FALSE(options.double_buffer);
  EXPECT_FALSE(options.elf_in_ddr);
  auto defaults = InstanceOptions::from_properties({});
  EXPECT_TRUE(defaults.elf_in_ddr);
  EXPECT_EQ(defaults.aipu_cores, 0);
}

TEST(InstanceOptions, UnknownKeyListsTheValidKeys) {
  std::string message = message_of<InvalidArgument>([] {
    InstanceOptions::from_properties({{"batch", "4"}});
  });
  EXPECT_TRUE(contains_all(message, {"unknown property 'batch'"}));
  for (const char *key : {"aipu_cores", "num_sub_devices", "input_dmabuf", "output_dmabuf",
                          "device_profiling", "host_profiling", "double_buffer", "elf_in_ddr"})
    EXPECT_NE(message.find(key), std::string::npos) << key << " missing from: " << message;
}

TEST(InstanceOptions, BadValuesAreInvalidArgument) {
  EXPECT_THROW(InstanceOptions::from_properties({{"input_dmabuf", "yes"}}), InvalidArgument);
  EXPECT_THROW(InstanceOptions::from_properties({{"aipu_cores", "-1"}}), InvalidArgument);
  EXPECT_THROW(InstanceOptions::from_properties({{"aipu_cores", "two"}}), InvalidArgument);
  EXPECT_THROW(InstanceOptions::from_properties({{"num_sub_devices", "3x"}}), InvalidArgument);
  EXPECT_THROW(InstanceOptions::from_properties({{"num_sub_devices", ""}}), InvalidArgument);
}

TEST(Connection, CoreCountsAreCheckedAgainstTheConnection) {
  AXSTREAM_REQUIRE_TEST_MODELS();
  auto context = Context::create();
  auto b4 = context->load_model(test::model_path("resnet_tiny_b4"));
  auto one = context->load_model(test::model_path("resnet_tiny"));
  auto connection = context->device_connect(nullptr, 2);
  std::string message = message_of<InvalidArgument>([&] {
    connection->load_model_instance(b4, {{"num_sub_devices", "3"}});
  });
  EXPECT_TRUE(contains_all(message, {"has 2 sub-devices"}));
  message = message_of<IncompatibleDevice>([&] {
    connection->load_model_instance(b4, {{"aipu_cores", "5"}});
  });
  EXPECT_TRUE(contains_all(message, {"aipu_cores=5", "4 AIPU cores"}));
  // Default: min(batch, connection cores).
  EXPECT_EQ(connection->load_model_instance(b4)->options().aipu_cores, 2);
  EXPECT_EQ(connection->load_model_instance(one)->options().aipu_cores, 1);
  EXPECT_EQ(connection->load_model_instance(b4, {{"num_sub_devices", "1"}})->options().aipu_cores,
            1);
  // aipu_cores is Axelera's L2 allocation: it may differ from num_sub_devices and exceed the
  // connection (then num_sub_devices, or the connection, decides the cores).
  auto l2 = connection->load_model_instance(b4, {{"aipu_cores", "4"}, {"num_sub_devices", "1"}});
  EXPECT_EQ(l2->options().aipu_cores, 4);
  EXPECT_EQ(l2->options().num_sub_devices, 1);
  EXPECT_EQ(connection->load_model_instance(b4, {{"aipu_cores", "3"}})->options().num_sub_devices,
            2);
  EXPECT_EQ(connection->load_model_instance(b4, {{"aipu_cores", "1"}})->options().num_sub_devices,
            1);
  EXPECT_THROW(connection->load_model_instance(nullptr), InvalidArgument);
  auto other_context = Context::create();
  auto foreign = other_context->load_model(test::model_path("resnet_tiny"));
  EXPECT_THROW(connection->load_model_instance(foreign), InvalidArgument);
}

}  // namespace
}  // namespace axstream::runtime
