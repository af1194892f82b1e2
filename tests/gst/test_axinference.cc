// axinference through GstHarness on the seeded resnet_tiny package: outputs equal
// ModelInstance::run, order kept with several frames in flight, EOS drains, flushing, latency,
// shared instances and the error paths.
#include <gst/allocators/gstfdmemory.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <iterator>
#include <random>
#include <vector>

#include "ax_latency_window.h"
#include "axinference_test_util.h"
#include "axstream/gst/axtensormeta.h"
#include "axstream/gst/axtensorpool.h"
#include "axstream/runtime/runtime.h"

namespace {

const auto *gst_environment = ::testing::AddGlobalTestEnvironment(new axtest::GstEnvironment);

using namespace axtest;  // the shared axinference test helpers

Bytes read_file(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Pushes an EOS and drops the events coming out before it; false when no EOS came out.
bool push_eos_and_wait_for_it(GstHarness *h) {
  if (!gst_harness_push_event(h, gst_event_new_eos())) return false;
  GstEvent *event = nullptr;
  while ((event = gst_harness_pull_event(h)) && GST_EVENT_TYPE(event) != GST_EVENT_EOS)
    gst_event_unref(event);
  if (event == nullptr) return false;
  gst_event_unref(event);
  return true;
}

// Pushes the package's reference input as one frame and expects its reference output.
void expect_reference_output(GstHarness *h, const std::string &model) {
  const Bytes input = read_file(model + "/reference/input_0.bin");
  ASSERT_EQ(gst_harness_push(h, frame_with_tensor(model, input, 0)), GST_FLOW_OK);
  GstBuffer *out = gst_harness_pull(h);
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(output_of(out), read_file(model + "/reference/output_0.bin"));
  gst_buffer_unref(out);
}

TEST(AxInference, OutputEqualsModelInstanceRunAndThePackageReference) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  const Bytes input = read_file(model + "/reference/input_0.bin");
  const Bytes reference = read_file(model + "/reference/output_0.bin");
  DirectRun direct(model);
  ASSERT_EQ(input.size(), direct.input_size());
  const Bytes expected = direct.run(input);
  EXPECT_EQ(expected, reference);

  for (const char *mode : {"dmabuf=true", "dmabuf=false"}) {
    for (bool fd_input : {true, false}) {
      GstHarness *h = inference_harness(model, mode);
      ASSERT_EQ(gst_harness_push(h, frame_with_tensor(model, input, 0, fd_input)), GST_FLOW_OK);
      GstBuffer *out = gst_harness_pull(h);
      ASSERT_NE(out, nullptr);
      GstAxTensorMeta *meta =
          gst_buffer_get_ax_tensor_meta(out, GST_AX_TENSOR_OUTPUT, model.c_str(), -1);
      ASSERT_NE(meta, nullptr) << mode;
      EXPECT_TRUE(gst_is_fd_memory(gst_buffer_peek_memory(meta->tensors, 0)));
      EXPECT_EQ(gst_buffer_get_size(meta->tensors), expected.size());
      EXPECT_EQ(output_of(out), expected) << mode << (fd_input ? " fd input" : " heap input");
      gst_buffer_unref(out);
      gst_harness_teardown(h);
    }
  }
}

TEST(AxInference, FdTensorsReachTheDeviceWithoutCopiesHeapTensorsAreCopiedOnce) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  const Bytes input = read_file(model + "/reference/input_0.bin");
  for (bool fd_input : {true, false}) {
    GstHarness *h = inference_harness(model, "dmabuf=true");
    for (int i = 0; i < 3; ++i) {
      ASSERT_EQ(gst_harness_push(h, frame_with_tensor(model, input, i, fd_input)), GST_FLOW_OK);
      gst_buffer_unref(gst_harness_pull(h));
    }
    guint64 copied = 0;
    GstElement *inference = gst_harness_find_element(h, "axinference");
    g_object_get(inference, "bytes-copied", &copied, nullptr);
    gst_object_unref(inference);
    EXPECT_EQ(copied, fd_input ? 0u : 3 * input.size()) << (fd_input ? "fd" : "heap");
    gst_harness_teardown(h);
  }
}

TEST(AxInference, KeepsFrameOrderWithSeveralFramesInFlight) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  DirectRun direct(model);
  GstHarness *h = inference_harness(model, "max-inflight=4");
  const int frames = 24;
  std::vector<Bytes> expected;
  for (int i = 0; i < frames; ++i) {
    const Bytes input = random_input(direct.input_size(), 100 + i);
    expected.push_back(direct.run(input));
    ASSERT_EQ(gst_harness_push(h, frame_with_tensor(model, input, GstClockTime(i) * GST_MSECOND)),
              GST_FLOW_OK);
  }
  for (int i = 0; i < frames; ++i) {
    GstBuffer *out = gst_harness_pull(h);
    ASSERT_NE(out, nullptr);
    EXPECT_EQ(GST_BUFFER_PTS(out), GstClockTime(i) * GST_MSECOND) << "frame " << i;
    EXPECT_EQ(output_of(out), expected[i]) << "frame " << i;
    gst_buffer_unref(out);
  }
  gst_harness_teardown(h);
}

TEST(AxInference, EosIsForwardedAfterEveryQueuedFrame) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstHarness *h = inference_harness(model, "max-inflight=8");
  const Bytes input = read_file(model + "/reference/input_0.bin");
  const int frames = 8;
  for (int i = 0; i < frames; ++i)
    ASSERT_EQ(gst_harness_push(h, frame_with_tensor(model, input, GstClockTime(i))), GST_FLOW_OK);
  ASSERT_TRUE(push_eos_and_wait_for_it(h)) << "no EOS came out";
  // Buffers reach the harness before the EOS that followed them.
  EXPECT_EQ(gst_harness_buffers_received(h), guint(frames));
  for (int i = 0; i < frames; ++i) gst_buffer_unref(gst_harness_pull(h));
  gst_harness_teardown(h);
}

// After a flush: a new segment, then one frame at 5 s; returns what comes out (nullptr if none).
GstBuffer *push_after_flush(GstHarness *h, const std::string &model, const Bytes &input) {
  GstSegment segment;
  gst_segment_init(&segment, GST_FORMAT_TIME);
  if (!gst_harness_push_event(h, gst_event_new_segment(&segment))) return nullptr;
  if (gst_harness_push(h, frame_with_tensor(model, input, 5 * GST_SECOND)) != GST_FLOW_OK)
    return nullptr;
  return gst_harness_pull(h);
}

TEST(AxInference, FlushDropsQueuedFramesAndStreamingContinues) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstHarness *h = inference_harness(model, "max-inflight=16");
  const Bytes input = read_file(model + "/reference/input_0.bin");
  const int before = 12;
  for (int i = 0; i < before; ++i)
    ASSERT_EQ(gst_harness_push(h, frame_with_tensor(model, input, GstClockTime(i))), GST_FLOW_OK);
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_start()));
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_stop(TRUE)));
  const guint received_at_flush = gst_harness_buffers_received(h);
  EXPECT_LE(received_at_flush, guint(before));
  // Drain whatever was pushed before the flush, then a new segment streams normally.
  while (gst_harness_try_pull(h)) {
  }
  GstBuffer *out = push_after_flush(h, model, input);
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(GST_BUFFER_PTS(out), 5 * GST_SECOND);
  EXPECT_EQ(output_of(out), read_file(model + "/reference/output_0.bin"));
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

// Holds the first buffer on its way out of axinference's source pad for 300 ms (the pushing thread
// descheduled between taking a frame and handing it on), telling the test when it is there.
struct HeldPush {
  std::promise<void> entered;
  std::atomic<bool> first{true};
  static GstPadProbeReturn probe(GstPad *, GstPadProbeInfo *, gpointer data) {
    auto *self = static_cast<HeldPush *>(data);
    if (self->first.exchange(false)) {
      self->entered.set_value();
      g_usleep(300 * 1000);
    }
    return GST_PAD_PROBE_OK;
  }
};

// A flushing seek must not let a frame from before it out after its FLUSH_STOP (downstream would
// take it as the first frame of the new segment): FLUSH_START waits for a push under way, as
// queue's pause of its task does.
TEST(AxInference, FrameBeingPushedAtAFlushDoesNotComeOutAfterIt) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstElement *element = gst_element_factory_make("axinference", nullptr);
  g_object_set(element, "model", model.c_str(), nullptr);
  GstHarness *h = gst_harness_new_with_element(element, "sink", "src");
  gst_harness_set_src_caps_str(h, "video/x-raw,format=RGB,width=16,height=16,framerate=30/1");
  HeldPush held;
  GstPad *src = gst_element_get_static_pad(element, "src");
  gst_pad_add_probe(src, GST_PAD_PROBE_TYPE_BUFFER, HeldPush::probe, &held, nullptr);
  gst_object_unref(src);
  const Bytes input = read_file(model + "/reference/input_0.bin");
  ASSERT_EQ(gst_harness_push(h, frame_with_tensor(model, input, 0)), GST_FLOW_OK);
  ASSERT_EQ(held.entered.get_future().wait_for(std::chrono::seconds(10)),
            std::future_status::ready);
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_start()));
  ASSERT_TRUE(gst_harness_push_event(h, gst_event_new_flush_stop(TRUE)));
  GstBuffer *out = push_after_flush(h, model, input);
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(GST_BUFFER_PTS(out), 5 * GST_SECOND) << "a frame from before the flush came out";
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

// Once upstream has sent EOS it pushes no more frames, so nobody but axinference sees a fatal
// flow return of its pushes: it must post the error itself (as queue does), or the stream
// "ends" with EOS and its last frames silently gone.
TEST(AxInference, DownstreamRefusingFramesAfterEosIsAnErrorNamingTheReason) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  for (GstFlowReturn refusal : {GST_FLOW_NOT_NEGOTIATED, GST_FLOW_NOT_LINKED}) {
    GstElement *element = gst_element_factory_make("axinference", nullptr);
    g_object_set(element, "model", model.c_str(), nullptr);
    BusWatch bus(element);
    GstHarness *h = gst_harness_new_with_element(element, "sink", "src");
    gst_harness_set_src_caps_str(h, "video/x-raw,format=RGB,width=16,height=16,framerate=30/1");
    gst_pad_add_probe(h->sinkpad, GST_PAD_PROBE_TYPE_BUFFER, axtest::refuse_buffer,
                      GINT_TO_POINTER(refusal), nullptr);
    const Bytes input = read_file(model + "/reference/input_0.bin");
    // The frame is queued at once (its push returns OK): the refusal comes after the EOS.
    ASSERT_EQ(gst_harness_push(h, frame_with_tensor(model, input, 0)), GST_FLOW_OK);
    ASSERT_TRUE(push_eos_and_wait_for_it(h)) << "no EOS came out";
    const std::string error = bus.error();
    EXPECT_NE(error.find(gst_flow_get_name(refusal)), std::string::npos)
        << gst_flow_get_name(refusal) << ": " << error;
    EXPECT_NE(error.find("axinference"), std::string::npos) << error;
    gst_harness_teardown(h);
  }
}

TEST(AxInference, LatencyQueryAddsTheSteadyInferenceTimeAndGrowthIsAnnounced) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstElement *element = gst_element_factory_make("axinference", nullptr);
  ASSERT_NE(element, nullptr);
  g_object_set(element, "model", model.c_str(), nullptr);
  GstBus *bus = gst_bus_new();
  gst_element_set_bus(element, bus);
  GstHarness *h = gst_harness_new_with_element(element, "sink", "src");
  gst_harness_set_src_caps_str(h, "video/x-raw,format=RGB,width=16,height=16,framerate=30/1");
  gst_harness_set_upstream_latency(h, 10 * GST_MSECOND);
  EXPECT_EQ(gst_harness_query_latency(h), 10 * GST_MSECOND) << "nothing measured yet";
  const Bytes input = read_file(model + "/reference/input_0.bin");
  auto run_frame = [&] {
    ASSERT_EQ(gst_harness_push(h, frame_with_tensor(model, input, 0)), GST_FLOW_OK);
    gst_buffer_unref(gst_harness_pull(h));
  };
  auto latency_messages = [&] {
    int count = 0;
    while (GstMessage *message = gst_bus_pop_filtered(bus, GST_MESSAGE_LATENCY)) {
      EXPECT_EQ(GST_MESSAGE_SRC(message), GST_OBJECT(element));
      gst_message_unref(message);
      ++count;
    }
    return count;
  };
  // The first run is the warm-up: not counted, no announcement.
  run_frame();
  EXPECT_EQ(latency_messages(), 0);
  EXPECT_EQ(gst_harness_query_latency(h), 10 * GST_MSECOND);
  // The second run is steady and longer than the 0 reported: announced once.
  run_frame();
  run_frame();
  EXPECT_EQ(latency_messages(), 1);
  const GstClockTime latency = gst_harness_query_latency(h);
  EXPECT_GT(latency, 10 * GST_MSECOND);
  EXPECT_LT(latency, 10 * GST_MSECOND + 10 * GST_SECOND);
  gst_harness_teardown(h);
  gst_object_unref(bus);
}

// The window itself, with made-up run times.
TEST(LatencyWindow, ReportsTheLongestRecentRunWithoutTheWarmUpAndAnnouncesGrowthOnce) {
  using std::chrono::milliseconds;
  axstream::gst::LatencyWindow window(4);
  EXPECT_FALSE(window.record(milliseconds(900)));  // warm-up: not counted
  EXPECT_EQ(window.report(), milliseconds(0));
  EXPECT_TRUE(window.record(milliseconds(10)));   // beyond the 0 reported
  EXPECT_FALSE(window.record(milliseconds(12)));  // already announced, not yet queried
  EXPECT_EQ(window.report(), milliseconds(12));
  EXPECT_FALSE(window.record(milliseconds(11)));  // within what was reported
  EXPECT_TRUE(window.record(milliseconds(20)));
  EXPECT_EQ(window.report(), milliseconds(20));
  // Four shorter runs push the 20 ms run out of the window: the next report is lower, unasked.
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(window.record(milliseconds(5)));
  EXPECT_EQ(window.report(), milliseconds(5));
  window.reset();  // a new start has its own warm-up
  EXPECT_FALSE(window.record(milliseconds(300)));
  EXPECT_EQ(window.steady(), milliseconds(0));
}

TEST(AxInference, SharedElementsUseOneInstanceAndItsReservation) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  // Each asks for all 4 sub-devices of the default device: only possible if they share.
  GstHarness *a = inference_harness(model, "shared=true num-sub-devices=4");
  GstHarness *b = inference_harness(model, "shared=true num-sub-devices=4");
  const Bytes input = read_file(model + "/reference/input_0.bin");
  const Bytes reference = read_file(model + "/reference/output_0.bin");
  ASSERT_EQ(gst_harness_push(a, frame_with_tensor(model, input, 0)), GST_FLOW_OK);
  ASSERT_EQ(gst_harness_push(b, frame_with_tensor(model, input, 0)), GST_FLOW_OK);
  GstBuffer *out_a = gst_harness_pull(a), *out_b = gst_harness_pull(b);
  EXPECT_EQ(output_of(out_a), reference);
  EXPECT_EQ(output_of(out_b), reference);
  gst_buffer_unref(out_a);
  gst_buffer_unref(out_b);
  gst_harness_teardown(a);
  gst_harness_teardown(b);
}

TEST(AxInference, UnsharedElementsCannotBothReserveEveryCore) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstHarness *a = inference_harness(model, "num-sub-devices=4");
  GstElement *second = gst_element_factory_make("axinference", nullptr);
  g_object_set(second, "model", model.c_str(), "num-sub-devices", 4, nullptr);
  const std::string error = axtest::error_when_started(second);
  // The reason, naming the holder, is in the message applications show, not only the debug text.
  const std::string message = error.substr(0, error.find(" | "));
  EXPECT_NE(message.find("could not load model"), std::string::npos) << error;
  EXPECT_NE(message.find("held by"), std::string::npos) << error;
  // The holder is this process: an application running one stream per pipeline is told how its
  // elements can share the device instead.
  EXPECT_NE(message.find("set shared=true on those with the same model"), std::string::npos)
      << error;
  gst_harness_teardown(a);
}

TEST(AxInference, AipuCoresAloneReservesThatManySubDevices) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  // num-sub-devices stays at its default 1: the instance still gets its 4 cores.
  GstHarness *h = inference_harness(model, "aipu-cores=4");
  expect_reference_output(h, model);
  // Every core is held: another element cannot reserve one.
  GstElement *second = gst_element_factory_make("axinference", nullptr);
  g_object_set(second, "model", model.c_str(), nullptr);
  const std::string error = axtest::error_when_started(second);
  EXPECT_NE(error.find("could not load model"), std::string::npos) << error;
  gst_harness_teardown(h);
}

TEST(AxInference, AipuCoresBelowNumSubDevicesRuns) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstHarness *h = inference_harness(model, "num-sub-devices=2 aipu-cores=1");
  expect_reference_output(h, model);
  gst_harness_teardown(h);
}

TEST(AxInference, FrameWithoutItsInputTensorWarnsNamingTheModel) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  axtest::WatchedInference inference(model, 16, 16);
  GstHarness *h = inference.h;
  axtest::BusWatch &bus = inference.bus;
  GstBuffer *out =
      gst_harness_push_and_pull(h, gst_buffer_new_allocate(nullptr, 16 * 16 * 3, nullptr));
  ASSERT_NE(out, nullptr);
  gst_buffer_unref(out);
  const std::string warning = bus.warning();
  EXPECT_NE(warning.find("a frame has no input tensor for model '" + model + "'"),
            std::string::npos)
      << warning;
}

// A cascade's second stage: the first model's tensors ride on the frame but it found no object,
// so there is nothing to crop and nothing to warn about.
TEST(AxInference, CascadeFrameWithoutObjectsPassesWithoutAWarning) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  axtest::WatchedInference inference(model, 16, 16);
  GstHarness *h = inference.h;
  axtest::BusWatch &bus = inference.bus;
  GstBuffer *frame = gst_buffer_new_allocate(nullptr, 16 * 16 * 3, nullptr);
  GstBuffer *detector_inputs = gst_buffer_new_allocate(nullptr, 8, nullptr);
  gst_buffer_add_ax_tensor_meta(frame, GST_AX_TENSOR_INPUT, "/models/detector", -1, nullptr,
                                detector_inputs);
  gst_buffer_unref(detector_inputs);
  GstBuffer *detector_outputs = gst_buffer_new_allocate(nullptr, 8, nullptr);
  gst_buffer_add_ax_tensor_meta(frame, GST_AX_TENSOR_OUTPUT, "/models/detector/model.json", -1,
                                nullptr, detector_outputs);
  gst_buffer_unref(detector_outputs);
  GstBuffer *out = gst_harness_push_and_pull(h, frame);
  ASSERT_NE(out, nullptr);
  gst_buffer_unref(out);
  EXPECT_EQ(bus.warning(), "");
}

// axpreprocess and axinference naming different packages: the frame carries the other package's
// input tensor, which nothing ran. Before, that passed as "a cascade without objects", silently.
TEST(AxInference, FrameWithAnotherPackagesInputThatNothingRanWarnsNamingBoth) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  axtest::WatchedInference inference(model, 16, 16);
  GstHarness *h = inference.h;
  axtest::BusWatch &bus = inference.bus;
  GstBuffer *frame = gst_buffer_new_allocate(nullptr, 16 * 16 * 3, nullptr);
  GstBuffer *other_inputs = gst_buffer_new_allocate(nullptr, 8, nullptr);
  gst_buffer_add_ax_tensor_meta(frame, GST_AX_TENSOR_INPUT, "/models/other", -1, nullptr,
                                other_inputs);
  gst_buffer_unref(other_inputs);
  GstBuffer *out = gst_harness_push_and_pull(h, frame);
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(gst_buffer_get_ax_tensor_meta(out, GST_AX_TENSOR_OUTPUT, nullptr, -1), nullptr);
  gst_buffer_unref(out);
  const std::string warning = bus.warning();
  EXPECT_NE(warning.find("no input tensor for model '" + model +
                         "', only one for model "
                         "'/models/other' that no axinference ran"),
            std::string::npos)
      << warning;
}

TEST(AxInferenceErrors, MissingModelFailsAtReadyToPausedWithMessage) {
  GstElement *element = gst_element_factory_make("axinference", nullptr);
  ASSERT_NE(element, nullptr);
  const std::string error = axtest::error_when_started(element);
  EXPECT_NE(error.find("'model' property is not set"), std::string::npos) << error;
}

TEST(AxInferenceErrors, UnknownDeviceNamesTheAvailableOnes) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstElement *element = gst_element_factory_make("axinference", nullptr);
  g_object_set(element, "model", model.c_str(), "device", "metis-9:9:9", nullptr);
  const std::string error = axtest::error_when_started(element);
  EXPECT_NE(error.find("device 'metis-9:9:9' not found"), std::string::npos) << error;
}

TEST(AxInferenceErrors, WrongTensorSizeIsAnElementErrorWithTheRuntimeMessage) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstElement *element = gst_element_factory_make("axinference", nullptr);
  g_object_set(element, "model", model.c_str(), "dmabuf", FALSE, nullptr);
  axtest::BusWatch bus(element);
  GstHarness *h = gst_harness_new_with_element(element, "sink", "src");
  gst_harness_set_src_caps_str(h, "video/x-raw,format=RGB,width=16,height=16,framerate=30/1");
  ASSERT_EQ(gst_harness_push(h, frame_with_tensor(model, Bytes(100), 0, false)), GST_FLOW_OK);
  // The failure surfaces when the frame is pushed: later pushes return the error.
  GstFlowReturn ret = GST_FLOW_OK;
  for (int i = 0; i < 200 && ret == GST_FLOW_OK; ++i) {
    g_usleep(10000);
    ret = gst_harness_push(h, frame_with_tensor(model, Bytes(100), 0, false));
  }
  EXPECT_EQ(ret, GST_FLOW_ERROR);
  const std::string error = bus.error();
  EXPECT_NE(error.find("inference of model"), std::string::npos) << error;
  // The runtime's reason is in the message itself, not only in the debug text.
  EXPECT_NE(error.substr(0, error.find(" | ")).find("bytes"), std::string::npos) << error;
  EXPECT_NE(error.find("ModelInstance::run"), std::string::npos) << error;
  gst_harness_teardown(h);
}

}  // namespace
