// ModelInstance::run on the simulated device: results against the numpy QDQ reference
// (tests/data/qdq_reference.py, written at build time next to each package), batch splitting over
// cores, threads, fd arguments, argument validation, profiling.
#include <fcntl.h>
#include <onnx/onnx_pb.h>
#include <sys/mman.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "axstream/runtime/model_package.h"
#include "cast_output_package.h"
#include "expected_error.h"
#include "test_util.h"

namespace axstream::runtime {
namespace {

using test::contains_all;
using test::max_abs_diff;
using test::message_of;
using test::read_bytes;

struct Reference {
  std::vector<std::vector<int8_t>> inputs;
  std::vector<std::vector<int8_t>> outputs;
};

Reference load_reference(const std::shared_ptr<Model> &model) {
  Reference reference;
  std::string dir = model->package()->directory + "/reference/";
  for (size_t i = 0; i < model->inputs().size(); ++i)
    reference.inputs.push_back(read_bytes(dir + "input_" + std::to_string(i) + ".bin"));
  for (size_t i = 0; i < model->outputs().size(); ++i)
    reference.outputs.push_back(read_bytes(dir + "output_" + std::to_string(i) + ".bin"));
  return reference;
}

std::vector<std::vector<int8_t>> run_with_pointers(const std::shared_ptr<ModelInstance> &instance,
                                                   const std::vector<std::vector<int8_t>> &inputs) {
  auto model = instance->model();
  std::vector<std::vector<int8_t>> outputs;
  std::vector<Argument> input_args, output_args;
  for (const auto &input : inputs)
    input_args.push_back({const_cast<int8_t *>(input.data()), -1, 0, input.size()});
  for (const auto &info : model->outputs()) outputs.emplace_back(info.size(), int8_t{0x55});
  for (auto &output : outputs) output_args.push_back({output.data(), -1, 0, output.size()});
  instance->run(input_args, output_args);
  return outputs;
}

// An anonymous memfd of `size` bytes, closed on destruction.
class MemFd {
 public:
  explicit MemFd(size_t size) : fd_(::memfd_create("axstream-test", MFD_CLOEXEC)) {
    if (fd_ < 0 || ::ftruncate(fd_, static_cast<off_t>(size)) != 0)
      throw std::runtime_error("memfd_create/ftruncate failed");
  }
  ~MemFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }
  void write(const std::vector<int8_t> &data, size_t offset) const {
    if (::pwrite(fd_, data.data(), data.size(), static_cast<off_t>(offset)) !=
        static_cast<ssize_t>(data.size()))
      throw std::runtime_error("pwrite failed");
  }
  std::vector<int8_t> read(size_t size, size_t offset) const {
    std::vector<int8_t> data(size);
    if (::pread(fd_, data.data(), size, static_cast<off_t>(offset)) != static_cast<ssize_t>(size))
      throw std::runtime_error("pread failed");
    return data;
  }

 private:
  int fd_;
};

class RunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AXSTREAM_REQUIRE_TEST_MODELS();
    context = Context::create();
  }
  void TearDown() override {
    if (context) context->release();
  }
  std::shared_ptr<Context> context;
};

class MatchesReference : public RunTest, public ::testing::WithParamInterface<const char *> {};

TEST_P(MatchesReference, WithinOneLsbOfTheNumpyReference) {
  auto model = context->load_model(test::model_path(GetParam()));
  auto reference = load_reference(model);
  auto connection = context->device_connect(nullptr, 1);
  auto instance = connection->load_model_instance(model);
  auto outputs = run_with_pointers(instance, reference.inputs);
  ASSERT_EQ(outputs.size(), reference.outputs.size());
  for (size_t o = 0; o < outputs.size(); ++o)
    EXPECT_LE(max_abs_diff(outputs[o], reference.outputs[o]), 1) << "output " << o;
}

INSTANTIATE_TEST_SUITE_P(Packages, MatchesReference,
                         ::testing::Values("resnet_tiny", "two_outputs", "resnet_tiny_b4",
                                           "resnet_tiny_post", "resnet_tiny_pre"));

TEST_F(RunTest, Batch4OverOneTwoAndFourCoresGivesIdenticalResults) {
  auto model = context->load_model(test::model_path("resnet_tiny_b4"));
  auto reference = load_reference(model);
  auto connection = context->device_connect(nullptr, 4);
  std::vector<std::vector<int8_t>> first;
  for (const char *cores : {"1", "2", "4"}) {
    auto instance = connection->load_model_instance(model, {{"aipu_cores", cores}});
    EXPECT_EQ(instance->options().aipu_cores, std::stoi(cores));
    auto outputs = run_with_pointers(instance, reference.inputs);
    EXPECT_LE(max_abs_diff(outputs[0], reference.outputs[0]), 1) << cores << " cores";
    if (first.empty()) first = outputs;
    EXPECT_EQ(outputs, first) << cores << " cores differ from 1 core";
  }
}

// A device reads its inputs before it writes an output: an output in its input's own buffer gets
// the results of separate buffers, also when the batch's cores run at once (before, a core wrote
// its outputs over inputs another core had still to read). Two outputs in one memory are refused.
TEST_F(RunTest, OutputSharingMemoryWithItsInputGetsTheResultsOfSeparateBuffers) {
  auto model = context->load_model(test::model_path("resnet_tiny_b4"));
  auto reference = load_reference(model);
  auto instance =
      context->device_connect(nullptr, 4)
          ->load_model_instance(model, {{"num_sub_devices", "4"}, {"host_profiling", "1"}});
  const auto expected = run_with_pointers(instance, reference.inputs);
  const size_t output_size = model->outputs()[0].size();
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<int8_t> buffer = reference.inputs[0];
    int8_t *output = buffer.data() + (trial % 2) * (buffer.size() - output_size);
    instance->run({{buffer.data()}}, {{output}});
    EXPECT_EQ(std::vector<int8_t>(output, output + output_size), expected[0]) << "trial " << trial;
    EXPECT_EQ(instance->profile().bytes_copied, buffer.size());
  }
}

TEST_F(RunTest, OutputsSharingMemoryAreInvalidArgumentNamingBoth) {
  auto model = context->load_model(test::model_path("two_outputs"));
  auto instance = context->device_connect(nullptr, 1)->load_model_instance(model);
  std::vector<int8_t> input(model->inputs()[0].size());
  std::vector<int8_t> boxes(model->outputs()[0].size());
  std::string message = message_of<InvalidArgument>([&] {
    instance->run({{input.data()}}, {{boxes.data()}, {boxes.data() + 8}});
  });
  EXPECT_TRUE(contains_all(message, {"output 1 ('scores')", "shares memory with output 0"}));
}

TEST_F(RunTest, FourThreadsOnFourInstancesMatchOneRun) {
  auto model = context->load_model(test::model_path("resnet_tiny"));
  auto reference = load_reference(model);
  auto single = run_with_pointers(context->device_connect(nullptr, 1)->load_model_instance(model),
                                  reference.inputs);
  context->release();
  context = Context::create();
  model = context->load_model(test::model_path("resnet_tiny"));

  std::vector<std::shared_ptr<ModelInstance>> instances;
  for (int i = 0; i < 4; ++i)
    instances.push_back(context->device_connect(nullptr, 1)->load_model_instance(model));
  std::vector<int> mismatches(4, 0);
  std::vector<std::string> errors(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      try {
        for (int iteration = 0; iteration < 10; ++iteration)
          if (run_with_pointers(instances[t], reference.inputs) != single) ++mismatches[t];
      } catch (const std::exception &error) {
        errors[t] = error.what();
      }
    });
  for (auto &thread : threads) thread.join();
  for (int t = 0; t < 4; ++t) {
    EXPECT_EQ(errors[t], "") << "thread " << t;
    EXPECT_EQ(mismatches[t], 0) << "thread " << t;
  }
}

TEST_F(RunTest, InstancesOnOneConnectionUseDifferentCoresAndShareThePackage) {
  auto model = context->load_model(test::model_path("resnet_tiny"));
  auto reference = load_reference(model);
  auto connection = context->device_connect(nullptr, 4);
  std::vector<std::shared_ptr<ModelInstance>> instances;
  for (int i = 0; i < 4; ++i) instances.push_back(connection->load_model_instance(model));
  std::vector<std::thread> threads;
  std::vector<std::vector<std::vector<int8_t>>> results(4);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back(
        [&, t] { results[t] = run_with_pointers(instances[t], reference.inputs); });
  for (auto &thread : threads) thread.join();
  for (int t = 0; t < 4; ++t) EXPECT_LE(max_abs_diff(results[t][0], reference.outputs[0]), 1);
  // One compiled program serves every instance.
  EXPECT_EQ(model->program(), model->program());
}

TEST_F(RunTest, DoubleBufferedRunsFromTwoThreadsAreCorrect) {
  auto model = context->load_model(test::model_path("resnet_tiny_b4"));
  auto reference = load_reference(model);
  auto instance = context->device_connect(nullptr, 2)
                      ->load_model_instance(model, {{"double_buffer", "1"}, {"elf_in_ddr", "0"}});
  EXPECT_TRUE(instance->options().double_buffer);
  EXPECT_EQ(instance->concurrent_runs(), 2);
  EXPECT_EQ(context->device_connect(nullptr, 1)
                ->load_model_instance(model, axstream::runtime::Properties{})
                ->concurrent_runs(),
            1);
  std::vector<int> bad(2, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i)
        if (max_abs_diff(run_with_pointers(instance, reference.inputs)[0], reference.outputs[0]) >
            1)
          ++bad[t];
    });
  for (auto &thread : threads) thread.join();
  EXPECT_EQ(bad[0] + bad[1], 0);
  EXPECT_EQ(instance->profile().runs, 10u);
}

TEST_F(RunTest, FdInputsAndOutputsGiveTheSameResultsAsPointers) {
  auto model = context->load_model(test::model_path("two_outputs"));
  auto reference = load_reference(model);
  auto connection = context->device_connect(nullptr, 1);
  auto by_pointer = run_with_pointers(connection->load_model_instance(model), reference.inputs);
  auto instance = connection->load_model_instance(
      model, {{"input_dmabuf", "1"}, {"output_dmabuf", "1"}, {"host_profiling", "1"}});

  // Offsets that are not page aligned, to check the mapping arithmetic.
  const size_t input_offset = 4096 + 100, output_offset = 12;
  MemFd input(input_offset + reference.inputs[0].size());
  input.write(reference.inputs[0], input_offset);
  std::vector<std::unique_ptr<MemFd>> outputs;
  std::vector<Argument> output_args;
  for (const auto &info : model->outputs()) {
    outputs.push_back(std::make_unique<MemFd>(output_offset + info.size()));
    output_args.push_back({nullptr, outputs.back()->fd(), output_offset, info.size()});
  }
  instance->run({{nullptr, input.fd(), input_offset, 0}}, output_args);
  for (size_t o = 0; o < outputs.size(); ++o)
    EXPECT_EQ(outputs[o]->read(model->outputs()[o].size(), output_offset), by_pointer[o])
        << "output " << o;
  EXPECT_EQ(instance->profile().bytes_copied, 0u);
  EXPECT_EQ(instance->profile().runs, 1u);

  // Mixed: fd input, pointer outputs.
  auto fd_in = connection->load_model_instance(model, {{"input_dmabuf", "1"}});
  std::vector<std::vector<int8_t>> host_outputs;
  std::vector<Argument> host_args;
  for (const auto &info : model->outputs()) host_outputs.emplace_back(info.size());
  for (auto &output : host_outputs) host_args.push_back({output.data()});
  fd_in->run({{nullptr, input.fd(), input_offset}}, host_args);
  EXPECT_EQ(host_outputs, by_pointer);
}

// Mappings of fd arguments are kept from run to run: new contents written through the fd, and
// another file behind a reused fd number, must still be what the next run reads.
TEST_F(RunTest, RepeatedFdArgumentsFollowTheirContentsAndTheFileBehindTheFdNumber) {
  auto model = context->load_model(test::model_path("resnet_tiny"));
  auto connection = context->device_connect(nullptr, 1);
  auto by_pointer = connection->load_model_instance(model);
  auto instance =
      connection->load_model_instance(model, {{"input_dmabuf", "1"}, {"output_dmabuf", "1"}});
  const size_t in_size = model->inputs()[0].size(), out_size = model->outputs()[0].size();
  std::vector<int8_t> first(in_size), second(in_size);
  for (size_t i = 0; i < in_size; ++i) {
    first[i] = int8_t(i * 7 % 251 - 120);
    second[i] = int8_t(i * 13 % 241 - 100);
  }
  auto expected = [&](const std::vector<int8_t> &input) {
    std::vector<int8_t> in = input, out(out_size);
    by_pointer->run({{in.data()}}, {{out.data()}});
    return out;
  };
  ASSERT_NE(expected(first), expected(second)) << "the two inputs must give different outputs";
  MemFd input(in_size), output(out_size);
  input.write(first, 0);
  instance->run({{nullptr, input.fd()}}, {{nullptr, output.fd()}});
  EXPECT_EQ(output.read(out_size, 0), expected(first));
  input.write(second, 0);
  instance->run({{nullptr, input.fd()}}, {{nullptr, output.fd()}});
  EXPECT_EQ(output.read(out_size, 0), expected(second)) << "contents rewritten through the fd";

  // Another memfd under the same fd number (as when a pool frees a buffer and makes a new one).
  MemFd other(in_size);
  other.write(first, 0);
  ASSERT_EQ(::dup2(other.fd(), input.fd()), input.fd());
  instance->run({{nullptr, input.fd()}}, {{nullptr, output.fd()}});
  EXPECT_EQ(output.read(out_size, 0), expected(first)) << "a new file behind the same fd number";
}

TEST_F(RunTest, BadFdsAreRejectedNamingTheFd) {
  auto model = context->load_model(test::model_path("resnet_tiny"));
  auto instance = context->device_connect(nullptr, 1)
                      ->load_model_instance(model, {{"input_dmabuf", "1"}, {"output_dmabuf", "1"}});
  const size_t in_size = model->inputs()[0].size(), out_size = model->outputs()[0].size();
  MemFd good_in(in_size), good_out(out_size), small(in_size - 1);

  std::string message = message_of<InvalidArgument>([&] {
    instance->run({{nullptr, small.fd()}}, {{nullptr, good_out.fd()}});
  });
  EXPECT_TRUE(contains_all(
      message, {"input 0 'input'", "fd " + std::to_string(small.fd()) + " (memfd) holds " +
                                       std::to_string(in_size - 1) + " bytes"}));

  message = message_of<InvalidArgument>([&] {
    instance->run({{nullptr, good_in.fd(), 1}}, {{nullptr, good_out.fd()}});
  });
  EXPECT_TRUE(contains_all(message, {"from offset 1"}));

  int closed = ::dup(good_in.fd());
  ::close(closed);
  message = message_of<InvalidArgument>([&] {
    instance->run({{nullptr, closed}}, {{nullptr, good_out.fd()}});
  });
  EXPECT_TRUE(contains_all(message, {"fd " + std::to_string(closed) + " is not an open file"}));

  message = message_of<InvalidArgument>([&] {
    instance->run({{nullptr, good_in.fd()}}, {{nullptr, -1}});
  });
  EXPECT_TRUE(contains_all(message, {"output 0 'logits'", "got fd -1"}));

  // A pipe has no size and cannot be mapped.
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  message = message_of<InvalidArgument>([&] {
    instance->run({{nullptr, pipe_fds[0]}}, {{nullptr, good_out.fd()}});
  });
  EXPECT_TRUE(contains_all(message, {"fd " + std::to_string(pipe_fds[0])}));
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);

  // A file on disk is not a device buffer.
  test::TempDir dir;
  std::string path = dir.path() + "/plain.bin";
  test::write_text(path, std::string(out_size, '\0'));
  int plain = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(plain, 0);
  message = message_of<InvalidArgument>([&] {
    instance->run({{nullptr, good_in.fd()}}, {{nullptr, plain}});
  });
  EXPECT_TRUE(contains_all(message, {"fd " + std::to_string(plain),
                                     "expected a dmabuf, memfd or shared-memory buffer"}));
  ::close(plain);

  // A memfd sealed against writes cannot be mapped for writing the outputs.
  int sealed = ::memfd_create("axstream-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ASSERT_GE(sealed, 0);
  ASSERT_EQ(::ftruncate(sealed, static_cast<off_t>(out_size)), 0);
  ASSERT_EQ(::fcntl(sealed, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW), 0);
  message = message_of<InvalidArgument>([&] {
    instance->run({{nullptr, good_in.fd()}}, {{nullptr, sealed}});
  });
  EXPECT_TRUE(contains_all(message, {"output 0 'logits'", "fd " + std::to_string(sealed) +
                                                              " cannot be mapped read-write"}));
  EXPECT_NO_THROW(instance->run({{nullptr, good_in.fd()}}, {{nullptr, good_out.fd()}}));
  ::close(sealed);
}

TEST_F(RunTest, WrongArgumentsAreInvalidArgumentNamingTheTensor) {
  auto model = context->load_model(test::model_path("two_outputs"));
  auto instance = context->device_connect(nullptr, 1)->load_model_instance(model);
  std::vector<int8_t> input(model->inputs()[0].size());
  std::vector<int8_t> boxes(model->outputs()[0].size()), scores(model->outputs()[1].size());

  std::string message = message_of<InvalidArgument>([&] {
    instance->run({}, {{boxes.data()}, {scores.data()}});
  });
  EXPECT_TRUE(contains_all(message, {"expected 1 inputs, got 0"}));
  message = message_of<InvalidArgument>([&] { instance->run({{input.data()}}, {{boxes.data()}}); });
  EXPECT_TRUE(contains_all(message, {"expected 2 outputs, got 1"}));
  message = message_of<InvalidArgument>([&] {
    instance->run({{input.data(), -1, 0, input.size() - 1}}, {{boxes.data()}, {scores.data()}});
  });
  EXPECT_TRUE(contains_all(message, {"input 0 'image'", "expected 1024 bytes", "got 1023"}));
  message = message_of<InvalidArgument>([&] {
    instance->run({{input.data()}}, {{boxes.data()}, {scores.data(), -1, 0, 17}});
  });
  EXPECT_TRUE(contains_all(message, {"output 1 'scores'"}));
  message = message_of<InvalidArgument>([&] {
    instance->run({{nullptr}}, {{boxes.data()}, {scores.data()}});
  });
  EXPECT_TRUE(contains_all(message, {"input 0 'image'", "null pointer"}));
}

TEST_F(RunTest, ProfilingReportsHostAndPerCoreDeviceTime) {
  auto model = context->load_model(test::model_path("resnet_tiny_b4"));
  auto reference = load_reference(model);
  auto connection = context->device_connect(nullptr, 2);
  auto profiled = connection->load_model_instance(model, {{"device_profiling", "1"}});
  run_with_pointers(profiled, reference.inputs);
  run_with_pointers(profiled, reference.inputs);
  RunProfile profile = profiled->profile();
  EXPECT_EQ(profile.runs, 2u);
  ASSERT_EQ(profile.per_core.size(), 2u);
  EXPECT_GT(profile.per_core[0].count(), 0);
  EXPECT_GT(profile.per_core[1].count(), 0);
  EXPECT_EQ(profile.device_compute, profile.per_core[0] + profile.per_core[1]);
  EXPECT_GT(profile.host_total.count(), 0);
  EXPECT_EQ(profile.bytes_copied, 0u);

  auto plain = connection->load_model_instance(model);
  run_with_pointers(plain, reference.inputs);
  EXPECT_EQ(plain->profile().runs, 1u);
  EXPECT_EQ(plain->profile().host_total.count(), 0);
  EXPECT_TRUE(plain->profile().per_core.empty());
}

TEST_F(RunTest, EngineErrorsPropagateWithTheirType) {
  // A package whose core graph uses an op no engine has: compiling it must fail with the
  // engine's NotImplemented, not a crash or a generic error.
  test::TempDir dir;
  std::string source = test::model_path("resnet_tiny");
  for (const char *file : {"model.json", "manifest.json"})
    std::filesystem::copy_file(source + "/" + file, dir.path() + "/" + file);
  onnx::ModelProto proto;
  std::string bytes = test::read_text(source + "/core.onnx");
  ASSERT_TRUE(proto.ParseFromString(bytes));
  for (auto &node : *proto.mutable_graph()->mutable_node())
    if (node.op_type() == "Relu") node.set_op_type("AxstreamNoSuchOp");
  test::write_text(dir.path() + "/core.onnx", proto.SerializeAsString());
  auto model = context->load_model(dir.path());
  auto connection = context->device_connect(nullptr, 1);
  EXPECT_TRUE(
      contains_all(message_of<NotImplemented>([&] { connection->load_model_instance(model); }),
                   {"AxstreamNoSuchOp"}));
}

TEST_F(RunTest, CoreGraphWithADataDependentShapeIsRefusedNamingTheNode) {
  // A package's tensors have the fixed shapes of its manifest, so an op whose output shape
  // depends on the values (NonZero here, NonMaxSuppression in detection exports) is refused when
  // the core graph compiles, naming it, rather than run into an upper-bound buffer.
  test::TempDir dir;
  std::string source = test::model_path("resnet_tiny");
  for (const char *file : {"model.json", "manifest.json"})
    std::filesystem::copy_file(source + "/" + file, dir.path() + "/" + file);
  onnx::ModelProto proto;
  ASSERT_TRUE(proto.ParseFromString(test::read_text(source + "/core.onnx")));
  auto *graph = proto.mutable_graph();
  auto *non_zero = graph->add_node();
  non_zero->set_op_type("NonZero");
  non_zero->set_name("nonzero_node");
  non_zero->add_input(graph->output(0).name());
  non_zero->add_output("nonzero_coordinates");
  const std::string core = dir.path() + "/core.onnx";
  test::write_text(core, proto.SerializeAsString());
  auto model = context->load_model(dir.path());
  std::string message = message_of<NotImplemented>([&] { model->program(); });
  EXPECT_EQ(message, core +
                         ": node 'nonzero_node' (NonZero) opset 13: its output "
                         "'nonzero_coordinates' has a shape that depends on the input values at "
                         "run time (up to (4,1024)), and this program's tensors have fixed shapes "
                         "(a model package's graphs and axcompile's models do); export the model "
                         "without it and do this step on the outputs, as axstream's decoders do "
                         "NMS");
}

TEST_F(RunTest, CoreGraphComputingAFloat16OutputIsRefusedNamingTheTensor) {
  // The loader checks the int8 types core.onnx declares; a graph whose last step makes float16
  // all the same (a Cast) compiles to a float16 output, which no int8 device tensor holds: the
  // compiled program is refused naming the output and the dtype, not for its byte size.
  test::TempDir dir;
  std::string source = test::model_path("resnet_tiny");
  const std::string output =
      test::write_package_with_cast_output(source, dir.path(), onnx::TensorProto::FLOAT16);
  auto model = context->load_model(dir.path());
  std::string message = message_of<InvalidArgument>([&] { model->program(); });
  EXPECT_TRUE(
      contains_all(message, {"output 0 '" + output + "' is float16", "device tensors are int8"}));
}

TEST_F(RunTest, CoreGraphComputingAUint16OutputIsRefusedNamingTheTensor) {
  // The engine holds uint16 (and int16, uint32, uint64) tensors, but a device tensor is int8:
  // a core graph casting its output to one is refused the same way.
  test::TempDir dir;
  const std::string output = test::write_package_with_cast_output(
      test::model_path("resnet_tiny"), dir.path(), onnx::TensorProto::UINT16);
  auto model = context->load_model(dir.path());
  std::string message = message_of<InvalidArgument>([&] { model->program(); });
  EXPECT_TRUE(
      contains_all(message, {"output 0 '" + output + "' is uint16", "device tensors are int8"}));
}

}  // namespace
}  // namespace axstream::runtime
