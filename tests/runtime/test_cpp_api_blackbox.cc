// The C++ API as an application developer meets it (the audit of 7 Dec): only the installed
// headers' names, bad input of every kind -> the Python API's exception class with a message
// naming the problem, object lifetimes, release while other threads run, several threads on one
// instance. (The same bytes as the Python API for the same package and input were checked by
// hand in the audit; tests/python compares Python with the engine.)
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <type_traits>

#include "axstream/runtime/model_package.h"
#include "axstream/runtime/runtime.h"
#include "expected_error.h"
#include "test_util.h"

namespace axstream::runtime {
namespace {

using test::contains_all;
using test::message_of;

// A memfd of `size` bytes, closed on destruction.
class MemFd {
 public:
  explicit MemFd(size_t size) : fd_(::memfd_create("cpp_api_blackbox", 0)) {
    if (fd_ < 0 || ::ftruncate(fd_, static_cast<off_t>(size)) != 0)
      throw std::runtime_error("memfd_create failed");
  }
  ~MemFd() { ::close(fd_); }
  MemFd(const MemFd &) = delete;
  MemFd &operator=(const MemFd &) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

struct Loaded {
  std::shared_ptr<Context> context;
  std::shared_ptr<Model> model;
  std::shared_ptr<Connection> connection;
  std::shared_ptr<ModelInstance> instance;
  std::vector<int8_t> input, output;
};

Loaded load(const std::string &name, const Properties &properties = {}) {
  Loaded l;
  l.context = Context::create();
  l.model = l.context->load_model(test::model_path(name));
  l.connection = l.context->device_connect(nullptr, 1);
  l.instance = l.connection->load_model_instance(l.model, properties);
  l.input.resize(l.model->inputs().at(0).size());
  for (size_t i = 0; i < l.input.size(); ++i) l.input[i] = static_cast<int8_t>(i * 37 + 11);
  l.output.resize(l.model->outputs().at(0).size());
  return l;
}

// Only Context and Connection make Models, Connections and ModelInstances, and adopt them. Before
// the audit their constructors were public: std::make_shared<Model>(context, package) made a Model
// the Context did not release, Model(nullptr, package)'s context() was the Model cast to a
// Context, Model(context, nullptr) crashed in describe(). A program cannot make them (this file
// did not build on the old header).
static_assert(!std::is_default_constructible_v<ObjectKey>);
static_assert(
    !std::is_constructible_v<Model, std::shared_ptr<Context>, std::shared_ptr<const ModelPackage>>);
static_assert(!std::is_constructible_v<Connection, std::shared_ptr<Context>,
                                       std::unique_ptr<Connection::Impl>>);
static_assert(!std::is_constructible_v<ModelInstance, std::shared_ptr<Context>,
                                       std::unique_ptr<ModelInstance::Impl>>);

TEST(CppApiBlackbox, EveryModelAProgramCanHoldIsReleasedWithItsContext) {
  AXSTREAM_REQUIRE_TEST_MODELS();
  auto context = Context::create();
  auto model = context->load_model(test::model_path("resnet_tiny"));
  EXPECT_EQ(model->context(), context);
  context->release();
  EXPECT_TRUE(model->released());
}

// Before the audit the offset was ignored with a host pointer: the run read the bytes at ptr,
// not at ptr + offset, and said nothing.
TEST(CppApiBlackbox, HostArgumentWithAnOffsetIsInvalidArgumentNamingTheTensor) {
  AXSTREAM_REQUIRE_TEST_MODELS();
  auto l = load("resnet_tiny");
  std::vector<int8_t> padded(l.input.size() + 16);
  auto message = message_of<InvalidArgument>([&] {
    l.instance->run({{padded.data(), -1, 16}}, {{l.output.data()}});
  });
  EXPECT_TRUE(
      contains_all(message, {"input 0 'input'", "offset 16", "input_dmabuf=1", "ptr + offset"}));
  message = message_of<InvalidArgument>([&] {
    l.instance->run({{l.input.data()}}, {{l.output.data(), -1, 8}});
  });
  EXPECT_TRUE(contains_all(message, {"output 0 'logits'", "offset 8", "output_dmabuf=1"}));
  // What the message asks for works: the pointer moved by the offset.
  std::copy(l.input.begin(), l.input.end(), padded.begin() + 16);
  std::vector<int8_t> expected(l.output.size());
  l.instance->run({{l.input.data()}}, {{expected.data()}});
  l.instance->run({{padded.data() + 16}}, {{l.output.data()}});
  EXPECT_EQ(l.output, expected);
}

// TensorInfo is a plain value a program may fill in (Python's constructor checks it). Before the
// audit a negative dimension made size() wrap to ~2^64 bytes and padding wider than its
// dimension gave a negative unpadded dimension; padding of fewer dimensions was read as partial.
TEST(CppApiBlackbox, AHandMadeTensorInfoWithABadShapeOrPaddingIsInvalidArgument) {
  TensorInfo info;
  info.name = "x";
  info.shape = {-1, 4};
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] { info.size(); }),
                           {"TensorInfo 'x' shape", "non-negative dimensions", "(-1,4)"}));
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] { info.unpadded_shape(); }),
                           {"non-negative dimensions", "(-1,4)"}));
  info.shape = {2, 4};
  info.padding = {{3, 3}, {0, 0}};
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] { info.unpadded_shape(); }),
                           {"TensorInfo 'x' padding", "within shape (2,4)", "[(3, 3), (0, 0)]"}));
  info.padding = {{-1, 0}, {0, 0}};
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] { info.unpadded_shape(); }),
                           {"non-negative pads"}));
  info.padding = {{1, 0}};
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] { info.unpadded_shape(); }),
                           {"expected 2 (start, end) pairs for shape (2,4)", "[(1, 0)]"}));
  info.shape = {int64_t(1) << 62, 8};
  info.padding.clear();
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] { info.size(); }),
                           {"more bytes than size_t counts"}));
  // Good values still answer as before.
  info.shape = {1, 6, 8, 4};
  info.padding = {{0, 0}, {1, 1}, {0, 2}, {0, 0}};
  info.dtype = engine::DType::f32;
  EXPECT_EQ(info.size(), 1u * 6u * 8u * 4u * 4u);
  EXPECT_EQ(info.unpadded_shape(), (std::vector<int64_t>{1, 4, 6, 4}));
  info.shape = {2, 0};
  info.padding.clear();
  EXPECT_EQ(info.size(), 0u);
}

TEST(CppApiBlackbox, BadContextCallsNameTheProblem) {
  AXSTREAM_REQUIRE_TEST_MODELS();
  auto context = Context::create();
  EXPECT_TRUE(contains_all(
      message_of<InvalidArgument>([&] { context->load_model("/nonexistent-package"); }),
      {"/nonexistent-package", "does not exist"}));
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] { context->load_model(""); }),
                           {"model path is empty"}));
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] {
                             context->load_model(test::model_path("resnet_tiny") + "/core.onnx");
                           }),
                           {"core.onnx", "not a model file"}));
  EXPECT_TRUE(
      contains_all(message_of<InvalidArgument>([&] { context->device_connect(nullptr, 0); }),
                   {"num_sub_devices must be at least 1, got 0"}));
  EXPECT_TRUE(
      contains_all(message_of<InvalidArgument>([&] { context->device_connect(nullptr, 99); }),
                   {"no device has 99 sub-devices"}));
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] {
                             context->device_connect(nullptr, 1, {{"bogus", "1"}});
                           }),
                           {"unknown property 'bogus'", "device_firmware_check"}));
  DeviceInfo unknown;
  unknown.name = "nope";
  for (auto call : std::vector<std::function<void()>>{
           [&] { context->device_connect(&unknown, 1); },
           [&] { context->configure_device(unknown, {}); }, [&] { context->device_ready(unknown); },
           [&] { context->read_device_configuration(unknown); }})
    EXPECT_TRUE(
        contains_all(message_of<InvalidArgument>(call), {"unknown device 'nope'", "metis-0:1:0"}));
  DeviceInfo device = context->list_devices().at(0);
  EXPECT_TRUE(contains_all(message_of<InvalidConfiguration>([&] {
                             context->configure_device(device, {{"bogus", "1"}});
                           }),
                           {"unknown property 'bogus'"}));
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] {
                             context->configure_device(device, {{"clock_profile", "abc"}});
                           }),
                           {"clock_profile='abc'"}));
}

TEST(CppApiBlackbox, BadInstanceOptionsNameTheProblem) {
  AXSTREAM_REQUIRE_TEST_MODELS();
  auto context = Context::create();
  auto model = context->load_model(test::model_path("resnet_tiny"));
  auto connection = context->device_connect(nullptr, 1);
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] {
                             connection->load_model_instance(model, {{"bogus", "1"}});
                           }),
                           {"unknown property 'bogus'", "num_sub_devices"}));
  // " 1" and "+1" were counts (std::stol skips blanks and takes a sign) while " 1" was no
  // boolean: both take exact words now.
  for (const char *count : {"-1", "abc", "1x", "99999999999", " 1", "+1", "1 ", "", "0x1", "1025"})
    EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] {
                               connection->load_model_instance(model, {{"num_sub_devices", count}});
                             }),
                             {std::string("num_sub_devices='") + count + "'", "not a count"}));
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] {
                             connection->load_model_instance(model, {{"input_dmabuf", "2"}});
                           }),
                           {"input_dmabuf='2'", "not a boolean"}));
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] {
                             connection->load_model_instance(model, {{"num_sub_devices", "2"}});
                           }),
                           {"has 1 sub-devices", "num_sub_devices=2"}));
  EXPECT_TRUE(contains_all(message_of<IncompatibleDevice>([&] {
                             connection->load_model_instance(model, {{"aipu_cores", "5"}});
                           }),
                           {"aipu_cores=5", "4 AIPU cores"}));
  EXPECT_EQ(InstanceOptions::from_properties({{"aipu_cores", "1024"}}).aipu_cores, 1024);
  EXPECT_EQ(InstanceOptions::from_properties({{"aipu_cores", "01"}}).aipu_cores, 1);
  EXPECT_EQ(InstanceOptions::from_properties({{"num_sub_devices", "0"}}).num_sub_devices, 0);
  InstanceOptions negative;
  negative.num_sub_devices = -3;
  EXPECT_TRUE(contains_all(
      message_of<InvalidArgument>([&] { connection->load_model_instance(model, negative); }),
      {"must be >= 0"}));
  EXPECT_TRUE(
      contains_all(message_of<InvalidArgument>([&] { connection->load_model_instance(nullptr); }),
                   {"needs a model, got none"}));
  auto other_context = Context::create();
  auto foreign = other_context->load_model(test::model_path("resnet_tiny"));
  EXPECT_TRUE(
      contains_all(message_of<InvalidArgument>([&] { connection->load_model_instance(foreign); }),
                   {"belongs to another Context"}));
}

TEST(CppApiBlackbox, BadRunArgumentsNameTheTensorAndWhatWasExpected) {
  AXSTREAM_REQUIRE_TEST_MODELS();
  auto l = load("resnet_tiny");
  auto &instance = *l.instance;
  void *in = l.input.data(), *out = l.output.data();
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] { instance.run({}, {{out}}); }),
                           {"expected 1 inputs, got 0"}));
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] {
                             instance.run({{in}, {in}}, {{out}});
                           }),
                           {"expected 1 inputs, got 2"}));
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] { instance.run({{in}}, {}); }),
                           {"expected 1 outputs, got 0"}));
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] { instance.run({{nullptr}}, {{out}}); }),
                           {"input 0 'input'", "4096 bytes", "null pointer"}));
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] { instance.run({{in}}, {{nullptr}}); }),
                           {"output 0 'logits'", "1024 bytes", "null pointer"}));
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] {
                             instance.run({{in, -1, 0, 5}}, {{out}});
                           }),
                           {"input 0 'input'", "expected 4096 bytes", "got 5"}));
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] {
                             instance.run({{nullptr, 3}}, {{out}});
                           }),
                           {"null pointer", "an fd needs input_dmabuf=1"}));

  auto fds =
      l.connection->load_model_instance(l.model, {{"input_dmabuf", "1"}, {"output_dmabuf", "1"}});
  MemFd small(100), buffer(l.input.size() + l.output.size());
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] { fds->run({{in}}, {{out}}); }),
                           {"input 0 'input'", "dmabuf or memfd", "fd -1"}));
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] {
                             fds->run({{nullptr, 9999}}, {{nullptr, buffer.fd()}});
                           }),
                           {"fd 9999 is not an open file"}));
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] {
                             fds->run({{nullptr, small.fd()}}, {{nullptr, buffer.fd()}});
                           }),
                           {"holds 100 bytes", "expected at least 4096"}));
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] {
                             fds->run({{nullptr, buffer.fd(), SIZE_MAX}}, {{nullptr, buffer.fd()}});
                           }),
                           {"expected at least 4096 from offset"}));
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] {
                             fds->run({{nullptr, buffer.fd(), 0, l.input.size() + 1}},
                                      {{nullptr, buffer.fd(), l.input.size()}});
                           }),
                           {"expected 4096 bytes", "got 4097"}));
  // A good fd run gives the pointer run's bytes.
  ASSERT_EQ(::pwrite(buffer.fd(), l.input.data(), l.input.size(), 0),
            static_cast<ssize_t>(l.input.size()));
  fds->run({{nullptr, buffer.fd(), 0, l.input.size()}},
           {{nullptr, buffer.fd(), l.input.size(), l.output.size()}});
  std::vector<int8_t> by_fd(l.output.size());
  ASSERT_EQ(::pread(buffer.fd(), by_fd.data(), by_fd.size(), static_cast<off_t>(l.input.size())),
            static_cast<ssize_t>(by_fd.size()));
  instance.run({{in}}, {{out}});
  EXPECT_EQ(by_fd, l.output);
}

TEST(CppApiBlackbox, ReleasedObjectsThrowButTheirNamesStillAnswer) {
  AXSTREAM_REQUIRE_TEST_MODELS();
  auto l = load("resnet_tiny");
  l.instance->release();
  l.instance->release();  // twice is harmless
  const std::string released = "ModelInstance of 'resnet_tiny' on metis-0:1:0 was released";
  EXPECT_EQ(message_of<InvalidArgument>(
                [&] { l.instance->run({{l.input.data()}}, {{l.output.data()}}); }),
            released);
  EXPECT_EQ(message_of<InvalidArgument>([&] { l.instance->model(); }), released);
  EXPECT_EQ(message_of<InvalidArgument>([&] { l.instance->profile(); }), released);
  // As in Python: what names the object (and its options) still answers.
  EXPECT_TRUE(l.instance->released());
  EXPECT_EQ(l.instance->options().num_sub_devices, 1);
  EXPECT_EQ(l.instance->concurrent_runs(), 1);
  EXPECT_EQ(l.instance->context(), l.context);
  l.model->release();
  EXPECT_EQ(l.model->name(), "resnet_tiny");
  EXPECT_EQ(message_of<InvalidArgument>([&] { l.model->inputs(); }),
            "Model 'resnet_tiny' was released");
  EXPECT_EQ(message_of<InvalidArgument>([&] { l.connection->load_model_instance(l.model); }),
            "Model 'resnet_tiny' was released");
  l.context->release();
  EXPECT_TRUE(l.connection->released());
  EXPECT_EQ(l.connection->device_name(), "metis-0:1:0");
  EXPECT_EQ(l.connection->num_sub_devices(), 1);
  EXPECT_EQ(message_of<InvalidArgument>([&] { l.context->list_devices(); }),
            "Context was released");
  EXPECT_EQ(message_of<InvalidArgument>([&] { l.context->device_connect(); }),
            "Context was released");
  // The released connection gave its core back: all four are free again.
  auto context = Context::create();
  EXPECT_EQ(context->device_connect(nullptr, 4)->num_sub_devices(), 4);
}

// As in Python: a released object says so before any check of the call's arguments.
TEST(CppApiBlackbox, ReleasedComesBeforeBadArguments) {
  AXSTREAM_REQUIRE_TEST_MODELS();
  auto l = load("resnet_tiny");
  l.instance->release();
  EXPECT_TRUE(contains_all(message_of<InvalidArgument>([&] { l.instance->run({}, {}); }),
                           {"ModelInstance of 'resnet_tiny'", "was released"}));
  l.connection->release();
  InstanceOptions negative;
  negative.num_sub_devices = -1;
  for (auto call : std::vector<std::function<void()>>{
           [&] { l.connection->load_model_instance(nullptr); },
           [&] {
             l.connection->load_model_instance(l.model, {{"bogus", "1"}});
           },
           [&] { l.connection->load_model_instance(l.model, negative); }})
    EXPECT_EQ(message_of<InvalidArgument>(call), "Connection to metis-0:1:0 was released");
  l.context->release();
  DeviceInfo unknown;
  unknown.name = "nope";
  for (auto call :
       std::vector<std::function<void()>>{[&] {
                                            l.context->configure_device(unknown, {{"bogus", "1"}});
                                          },
                                          [&] { l.context->device_ready(unknown); },
                                          [&] { l.context->read_device_configuration(unknown); },
                                          [&] { l.context->device_connect(nullptr, 0); },
                                          [&] {
                                            l.context->device_connect(nullptr, 1, {{"bogus", "1"}});
                                          },
                                          [&] { l.context->load_model(""); }})
    EXPECT_EQ(message_of<InvalidArgument>(call), "Context was released");
}

TEST(CppApiBlackbox, AnInstanceAloneKeepsItsContextAndDroppingItFreesTheCores) {
  AXSTREAM_REQUIRE_TEST_MODELS();
  std::vector<int8_t> input(4096, 3), output(1024), again(1024);
  std::shared_ptr<ModelInstance> instance;
  {
    auto context = Context::create();
    instance = context->device_connect(nullptr, 4)
                   ->load_model_instance(context->load_model(test::model_path("resnet_tiny")));
  }
  instance->run({{input.data()}}, {{output.data()}});
  EXPECT_FALSE(instance->context()->released());
  {
    auto other = Context::create();
    EXPECT_TRUE(contains_all(message_of<DeviceInUse>([&] { other->device_connect(); }),
                             {"0 of 4 cores free"}));
  }
  instance->context()->release();
  EXPECT_TRUE(instance->released());
  instance.reset();
  auto context = Context::create();
  auto connection = context->device_connect(nullptr, 4);
  auto model = context->load_model(test::model_path("resnet_tiny"));
  connection->load_model_instance(model, {{"num_sub_devices", "1"}})
      ->run({{input.data()}}, {{again.data()}});
  EXPECT_EQ(again, output);
  // Dropped without release(): the last reference frees the cores.
  connection.reset();
  model.reset();
  context.reset();
  EXPECT_EQ(Context::create()->device_connect(nullptr, 4)->num_sub_devices(), 4);
}

TEST(CppApiBlackbox, ThreadsOnOneInstanceAndOnSeveralInstancesOfOneModelGiveOneResult) {
  AXSTREAM_REQUIRE_TEST_MODELS();
  auto context = Context::create();
  auto model = context->load_model(test::model_path("resnet_tiny"));
  auto connection = context->device_connect(nullptr, 4);
  std::vector<std::shared_ptr<ModelInstance>> instances;
  for (int i = 0; i < 3; ++i)
    instances.push_back(connection->load_model_instance(model, {{"num_sub_devices", "1"}}));
  std::vector<int8_t> input(4096), expected(1024);
  for (size_t i = 0; i < input.size(); ++i) input[i] = static_cast<int8_t>(i * 7);
  instances[0]->run({{input.data()}}, {{expected.data()}});
  std::atomic<int> mismatches{0}, failures{0};
  std::vector<std::thread> threads;
  for (size_t t = 0; t < 6; ++t)
    threads.emplace_back([&, t] {
      std::vector<int8_t> output(1024);
      for (int k = 0; k < 20; ++k) {
        try {
          instances[t % 3]->run({{input.data()}}, {{output.data()}});
          if (output != expected) ++mismatches;
        } catch (...) {
          ++failures;
        }
      }
    });
  // configure_device while they run: the runs go on (with either clock).
  DeviceInfo device = context->list_devices().at(0);
  for (const char *clock : {"400", "800", "400"})
    context->configure_device(device, {{"clock_profile", clock}});
  for (auto &thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_EQ(failures.load(), 0);
  uint64_t runs = 0;
  for (auto &instance : instances) runs += instance->profile().runs;
  EXPECT_EQ(runs, 6u * 20u + 1u);
}

TEST(CppApiBlackbox, ReleaseWhileOtherThreadsRunEndsEachRunOrSaysReleased) {
  AXSTREAM_REQUIRE_TEST_MODELS();
  auto l = load("resnet_tiny_b4");
  std::atomic<int> completed{0}, released{0}, other{0};
  std::atomic<bool> started{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t)
    threads.emplace_back([&] {
      std::vector<int8_t> input(l.input.size()), output(l.output.size());
      for (int k = 0; k < 200; ++k) {
        try {
          l.instance->run({{input.data()}}, {{output.data()}});
          ++completed;
          started = true;
        } catch (const InvalidArgument &error) {
          if (std::string(error.what()).find("was released") != std::string::npos)
            ++released;
          else
            ++other;
        } catch (...) {
          ++other;
        }
      }
    });
  while (!started) std::this_thread::yield();
  l.context->release();
  for (auto &thread : threads) thread.join();
  EXPECT_GT(completed.load(), 0);
  EXPECT_GT(released.load(), 0);
  EXPECT_EQ(other.load(), 0);
}

}  // namespace
}  // namespace axstream::runtime
