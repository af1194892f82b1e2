// The zero-copy path through real pipelines: axpreprocess proposes its pool of fd-backed frames
// upstream in the ALLOCATION query, so videotestsrc writes its frames straight into device-visible
// memory; the tensors reach the device with 0 bytes copied; and the results equal those of the
// same frames pushed in plain system memory. Then memory:DMABuf input: only the rows read are
// mapped, drm-format caps (fourcc + modifier) and the DRM fourcc <-> GstVideoFormat table.
#include <drm_fourcc.h>
#include <gst/allocators/gstdmabuf.h>
#include <gst/allocators/gstfdmemory.h>
#include <gst/video/video.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "axstream/gst/axdmabufallocator.h"
#include "axstream/gst/axdrmformat.h"
#include "axstream/gst/axtensormeta.h"
#include "gst_test_util.h"

namespace {

const auto *gst_environment = ::testing::AddGlobalTestEnvironment(new axtest::GstEnvironment);

using Bytes = std::vector<uint8_t>;

Bytes bytes_of(GstBuffer *buffer) { return axtest::buffer_bytes<uint8_t>(buffer); }

Bytes tensor_of(GstBuffer *buffer, GstAxTensorKind kind) {
  GstAxTensorMeta *meta = gst_buffer_get_ax_tensor_meta(buffer, kind, nullptr, -1);
  EXPECT_NE(meta, nullptr) << (kind == GST_AX_TENSOR_INPUT ? "no input" : "no output")
                           << " tensor meta";
  return meta ? bytes_of(meta->tensors) : Bytes{};
}

// What a pad probe saw of the frames going into axpreprocess and of the results coming out.
struct Observed {
  int frames_in = 0;
  int fd_frames = 0;          // every memory of the frame is fd memory
  int dmabuf_frames = 0;      // ... and dmabuf memory
  int video_meta_frames = 0;  // carries GstVideoMeta (offsets + strides)
  std::vector<GstVideoMeta> video_metas;
  std::vector<Bytes> frames;
  std::vector<Bytes> input_tensors;
  std::vector<Bytes> output_tensors;
};

GstPadProbeReturn on_frame_in(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *seen = static_cast<Observed *>(data);
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER(info);
  ++seen->frames_in;
  bool all_fd = gst_buffer_n_memory(buffer) > 0, all_dmabuf = all_fd;
  for (guint i = 0; i < gst_buffer_n_memory(buffer); ++i) {
    GstMemory *memory = gst_buffer_peek_memory(buffer, i);
    all_fd &= bool(gst_is_fd_memory(memory));
    all_dmabuf &= bool(gst_is_dmabuf_memory(memory));
  }
  seen->fd_frames += all_fd;
  seen->dmabuf_frames += all_dmabuf;
  if (GstVideoMeta *meta = gst_buffer_get_video_meta(buffer)) {
    ++seen->video_meta_frames;
    seen->video_metas.push_back(*meta);
  }
  seen->frames.push_back(bytes_of(buffer));
  return GST_PAD_PROBE_OK;
}

GstPadProbeReturn on_result_out(GstPad *, GstPadProbeInfo *info, gpointer data) {
  auto *seen = static_cast<Observed *>(data);
  GstBuffer *buffer = GST_PAD_PROBE_INFO_BUFFER(info);
  seen->input_tensors.push_back(tensor_of(buffer, GST_AX_TENSOR_INPUT));
  seen->output_tensors.push_back(tensor_of(buffer, GST_AX_TENSOR_OUTPUT));
  return GST_PAD_PROBE_OK;
}

constexpr int kFrames = 4;
constexpr const char *kCaps = "video/x-raw,format=NV12,width=96,height=72,framerate=30/1";

// Runs `videotestsrc ! caps ! axpreprocess ! axinference ! fakesink` to EOS; returns what passed
// and axinference's bytes-copied. `error` gets the first error message, if any.
Observed run_pipeline(const std::string &model, const std::string &between, guint64 &bytes_copied,
                      std::string &error, const char *caps = kCaps) {
  const std::string launch = "videotestsrc num-buffers=" + std::to_string(kFrames) +
                             " pattern=ball ! " + caps + " ! " + between +
                             "axpreprocess name=pp model=\"" + model +
                             "\" ! axinference name=inf model=\"" + model + "\" ! fakesink";
  GError *parse_error = nullptr;
  GstElement *pipeline = gst_parse_launch(launch.c_str(), &parse_error);
  Observed seen;
  if (!pipeline || parse_error) {
    error = parse_error ? parse_error->message : "gst_parse_launch failed";
    g_clear_error(&parse_error);
    if (pipeline) gst_object_unref(pipeline);
    return seen;
  }
  GstElement *pp = gst_bin_get_by_name(GST_BIN(pipeline), "pp");
  GstElement *inf = gst_bin_get_by_name(GST_BIN(pipeline), "inf");
  GstPad *pp_sink = gst_element_get_static_pad(pp, "sink");
  GstPad *inf_src = gst_element_get_static_pad(inf, "src");
  gst_pad_add_probe(pp_sink, GST_PAD_PROBE_TYPE_BUFFER, on_frame_in, &seen, nullptr);
  gst_pad_add_probe(inf_src, GST_PAD_PROBE_TYPE_BUFFER, on_result_out, &seen, nullptr);
  error = axtest::play_until_eos(pipeline);
  g_object_get(inf, "bytes-copied", &bytes_copied, nullptr);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(pp_sink);
  gst_object_unref(inf_src);
  gst_object_unref(pp);
  gst_object_unref(inf);
  gst_object_unref(pipeline);
  return seen;
}

TEST(ZeroCopy, UpstreamWritesFramesIntoTheProposedFdPoolAndNothingIsCopied) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  guint64 copied = G_MAXUINT64;
  std::string error;
  Observed seen = run_pipeline(model, "", copied, error);
  ASSERT_EQ(error, "");
  ASSERT_EQ(seen.frames_in, kFrames);
  EXPECT_EQ(seen.fd_frames, kFrames) << "videotestsrc did not take axpreprocess's pool";
  EXPECT_EQ(seen.dmabuf_frames, gst_ax_dmabuf_allocator_makes_dmabufs() ? kFrames : 0);
  ASSERT_EQ(seen.video_meta_frames, kFrames) << "the pool's buffers carry GstVideoMeta";
  GstVideoInfo info;
  GstCaps *caps = gst_caps_from_string(kCaps);
  ASSERT_TRUE(gst_video_info_from_caps(&info, caps));
  gst_caps_unref(caps);
  const GstVideoMeta &meta = seen.video_metas[0];
  EXPECT_EQ(meta.format, GST_VIDEO_FORMAT_NV12);
  EXPECT_EQ(meta.n_planes, 2u);
  for (guint p = 0; p < 2; ++p) {
    EXPECT_EQ(meta.stride[p], GST_VIDEO_INFO_PLANE_STRIDE(&info, p)) << "plane " << p;
    EXPECT_EQ(meta.offset[p], GST_VIDEO_INFO_PLANE_OFFSET(&info, p)) << "plane " << p;
  }
  ASSERT_EQ(seen.output_tensors.size(), size_t(kFrames));
  EXPECT_EQ(copied, 0u) << "fd frames -> fd tensors -> device must not copy";
}

// A webcam-like source's packed 4:2:2 frames are written into the proposed pool as well.
TEST(ZeroCopy, Yuy2AndUyvyFramesAreWrittenIntoTheFdPoolAndNothingIsCopied) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  for (const char *caps : {"video/x-raw,format=YUY2,width=96,height=72,framerate=30/1",
                           "video/x-raw,format=UYVY,width=96,height=72,framerate=30/1"}) {
    guint64 copied = G_MAXUINT64;
    std::string error;
    Observed seen = run_pipeline(model, "", copied, error, caps);
    ASSERT_EQ(error, "") << caps;
    ASSERT_EQ(seen.frames_in, kFrames) << caps;
    EXPECT_EQ(seen.fd_frames, kFrames) << caps << ": videotestsrc did not take the pool";
    EXPECT_EQ(seen.output_tensors.size(), size_t(kFrames)) << caps;
    EXPECT_EQ(copied, 0u) << caps;
  }
}

TEST(ZeroCopy, FdPoolFramesGiveTheSameTensorsAsSystemMemoryFrames) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  guint64 copied = 0;
  std::string error;
  Observed fd_run = run_pipeline(model, "", copied, error);
  ASSERT_EQ(error, "");
  ASSERT_EQ(fd_run.fd_frames, kFrames);
  ASSERT_EQ(fd_run.output_tensors.size(), size_t(kFrames));

  // The same frames again, now in plain system memory (gst_buffer_new_allocate).
  GstHarness *h = gst_harness_new_parse(
      ("axpreprocess model=\"" + model + "\" ! axinference model=\"" + model + "\"").c_str());
  gst_harness_set_src_caps_str(h, kCaps);
  for (int i = 0; i < kFrames; ++i) {
    const Bytes &frame = fd_run.frames[size_t(i)];
    GstBuffer *buffer = gst_buffer_new_allocate(nullptr, frame.size(), nullptr);
    gst_buffer_fill(buffer, 0, frame.data(), frame.size());
    ASSERT_FALSE(gst_is_fd_memory(gst_buffer_peek_memory(buffer, 0)));
    GST_BUFFER_PTS(buffer) = GstClockTime(i) * GST_SECOND / 30;
    ASSERT_EQ(gst_harness_push(h, buffer), GST_FLOW_OK);
    GstBuffer *out = gst_harness_pull(h);
    ASSERT_NE(out, nullptr);
    EXPECT_EQ(tensor_of(out, GST_AX_TENSOR_INPUT), fd_run.input_tensors[size_t(i)])
        << "input tensor of frame " << i;
    EXPECT_EQ(tensor_of(out, GST_AX_TENSOR_OUTPUT), fd_run.output_tensors[size_t(i)])
        << "output tensor of frame " << i;
    gst_buffer_unref(out);
  }
  gst_harness_teardown(h);
}

// A downstream sink pad's query function answering ALLOCATION with the pool set on the pad.
gboolean answer_with_pool(GstPad *pad, GstObject *, GstQuery *query) {
  if (GST_QUERY_TYPE(query) != GST_QUERY_ALLOCATION) return FALSE;
  auto *pool = static_cast<GstBufferPool *>(g_object_get_data(G_OBJECT(pad), "pool"));
  gst_query_add_allocation_pool(query, pool, 4096, 0, 0);
  return TRUE;
}

// The allocation query axpreprocess's sink pad answers for `caps`, after the harness's sink
// (standing for downstream) answered with `downstream_pool` (none when nullptr).
GstQuery *allocation_query(const std::string &model, const char *caps_text,
                           GstBufferPool *downstream_pool) {
  GstHarness *h = gst_harness_new_parse(("axpreprocess model=\"" + model + "\"").c_str());
  gst_harness_set_src_caps_str(h, caps_text);
  if (downstream_pool) {
    g_object_set_data(G_OBJECT(h->sinkpad), "pool", downstream_pool);
    gst_pad_set_query_function(h->sinkpad, answer_with_pool);
  }
  GstCaps *caps = gst_caps_from_string(caps_text);
  GstQuery *query = gst_query_new_allocation(caps, TRUE);
  gst_caps_unref(caps);
  EXPECT_TRUE(gst_pad_peer_query(h->srcpad, query));
  gst_harness_teardown(h);
  return query;
}

TEST(ZeroCopyAllocationQuery, ProposesAnFdVideoPoolWithVideoMetaWhenDownstreamHasNone) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstQuery *query = allocation_query(model, kCaps, nullptr);
  ASSERT_EQ(gst_query_get_n_allocation_pools(query), 1u);
  GstBufferPool *proposed = nullptr;
  guint size = 0;
  gst_query_parse_nth_allocation_pool(query, 0, &proposed, &size, nullptr, nullptr);
  ASSERT_NE(proposed, nullptr);
  EXPECT_EQ(size, 96u * 72 * 3 / 2);
  GstStructure *config = gst_buffer_pool_get_config(proposed);
  GstAllocator *allocator = nullptr;
  ASSERT_TRUE(gst_buffer_pool_config_get_allocator(config, &allocator, nullptr));
  EXPECT_TRUE(GST_IS_AX_DMABUF_ALLOCATOR(allocator));
  EXPECT_TRUE(gst_buffer_pool_config_has_option(config, GST_BUFFER_POOL_OPTION_VIDEO_META));
  gst_structure_free(config);
  EXPECT_TRUE(gst_query_find_allocation_meta(query, GST_VIDEO_META_API_TYPE, nullptr));
  // The allocator is offered on its own too, for upstream elements that allocate themselves.
  bool offered = false;
  for (guint i = 0; i < gst_query_get_n_allocation_params(query); ++i) {
    GstAllocator *param_allocator = nullptr;
    gst_query_parse_nth_allocation_param(query, i, &param_allocator, nullptr);
    offered |= param_allocator && GST_IS_AX_DMABUF_ALLOCATOR(param_allocator);
    if (param_allocator) gst_object_unref(param_allocator);
  }
  EXPECT_TRUE(offered) << "GstAxDmaBufAllocator is not among the allocation params";
  gst_object_unref(proposed);
  gst_query_unref(query);
}

TEST(ZeroCopyAllocationQuery, KeepsADownstreamPoolInsteadOfProposingItsOwn) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  // axpreprocess passes frames on in place, so a downstream pool (say a display sink's scanout
  // memory) saves more than ours would.
  GstBufferPool *downstream = gst_buffer_pool_new();
  GstQuery *query = allocation_query(model, kCaps, downstream);
  ASSERT_EQ(gst_query_get_n_allocation_pools(query), 1u);
  GstBufferPool *proposed = nullptr;
  gst_query_parse_nth_allocation_pool(query, 0, &proposed, nullptr, nullptr, nullptr);
  EXPECT_EQ(proposed, downstream);
  gst_object_unref(proposed);
  gst_query_unref(query);
  gst_object_unref(downstream);
}

TEST(ZeroCopyAllocationQuery, NoPoolForDmabufCapsWithoutADmabufProvider) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  if (gst_ax_dmabuf_allocator_makes_dmabufs())
    GTEST_SKIP() << "this machine has a dmabuf provider: memory:DMABuf caps do get the pool";
  // memfd memory under memory:DMABuf caps would be a lie to the upstream element.
  GstQuery *query = allocation_query(
      model, "video/x-raw(memory:DMABuf),format=NV12,width=96,height=72,framerate=30/1", nullptr);
  EXPECT_EQ(gst_query_get_n_allocation_pools(query), 0u);
  gst_query_unref(query);
}

// The permissions ("rw-s", ...) /proc/self/maps gives the mapping holding `address`.
std::string mapping_permissions(const void *address) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const auto where = reinterpret_cast<uintptr_t>(address);
  while (std::getline(maps, line)) {
    std::istringstream fields(line);
    uintptr_t start = 0, end = 0;
    char dash = 0;
    std::string permissions;
    fields >> std::hex >> start >> dash >> end >> permissions;
    if (where >= start && where < end) return permissions;
  }
  return "unmapped";
}

TEST(ZeroCopyFdMemory, FdFramesStayMappedReadWriteSoASourceAndAReaderNeverRemapThem) {
  // A source maps each pooled frame for writing, axpreprocess for reading. GstFdMemory keeps the
  // first map's protection and mprotect()s the whole frame whenever a map asks for other access,
  // so memory first mapped write-only flipped protection twice per frame.
  GstAllocator *allocator = gst_ax_dmabuf_allocator_get();
  GstMemory *memory = gst_allocator_alloc(allocator, 1 << 20, nullptr);
  gst_object_unref(allocator);
  ASSERT_NE(memory, nullptr);
  if (!gst_is_fd_memory(memory) || gst_is_dmabuf_memory(memory)) {
    gst_memory_unref(memory);
    GTEST_SKIP() << "this machine's frames are dmabufs (mapped per access, with sync ioctls)";
  }
  GstMapInfo write_map, read_map;
  ASSERT_TRUE(gst_memory_map(memory, &write_map, GST_MAP_WRITE));
  write_map.data[0] = 42;
  gst_memory_unmap(memory, &write_map);
  ASSERT_TRUE(gst_memory_map(memory, &read_map, GST_MAP_READ));
  EXPECT_EQ(read_map.data, write_map.data);
  EXPECT_EQ(read_map.data[0], 42);
  EXPECT_EQ(mapping_permissions(read_map.data).substr(0, 2), "rw")
      << "a read map after a write map changed the mapping's protection";
  gst_memory_unmap(memory, &read_map);
  gst_memory_unref(memory);
}

// A frame of `size` random bytes in a memfd wrapped as GstDmaBufMemory (what a memory:DMABuf
// producer hands over; a memfd maps like a dmabuf, without the sync ioctls).
GstBuffer *dmabuf_frame(const Bytes &content) {
  const int fd = memfd_create("zero-copy-test-frame", MFD_CLOEXEC);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(write(fd, content.data(), content.size()), ssize_t(content.size()));
  GstAllocator *allocator = gst_dmabuf_allocator_new();
  GstBuffer *buffer = gst_buffer_new();
  gst_buffer_append_memory(buffer, gst_dmabuf_allocator_alloc(allocator, fd, content.size()));
  gst_object_unref(allocator);
  GST_BUFFER_PTS(buffer) = 0;
  return buffer;
}

GstBuffer *system_frame(const Bytes &content) {
  GstBuffer *buffer = gst_buffer_new_allocate(nullptr, content.size(), nullptr);
  gst_buffer_fill(buffer, 0, content.data(), content.size());
  GST_BUFFER_PTS(buffer) = 0;
  return buffer;
}

Bytes random_bytes(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes out(size);
  for (auto &b : out) b = uint8_t(rng());
  return out;
}

// Pushes `frame` through `axpreprocess model=.. EXTRA` with `caps`; the input tensor, and the
// element's bytes-mapped after it. Empty tensor when the push failed (`flow` says how).
Bytes preprocess_once(const std::string &model, const std::string &extra, const std::string &caps,
                      GstBuffer *frame, guint64 *bytes_mapped = nullptr,
                      GstFlowReturn *flow = nullptr, std::string *error = nullptr) {
  GstElement *element = gst_element_factory_make("axpreprocess", nullptr);
  g_object_set(element, "model", model.c_str(), nullptr);
  if (!extra.empty()) gst_util_set_object_arg(G_OBJECT(element), "crop", extra.c_str());
  axtest::BusWatch bus(element);
  GstHarness *h = gst_harness_new_with_element(element, "sink", "src");
  gst_harness_set_src_caps_str(h, caps.c_str());
  const GstFlowReturn ret = gst_harness_push(h, frame);
  if (flow) *flow = ret;
  Bytes tensor;
  if (ret == GST_FLOW_OK) {
    GstBuffer *out = gst_harness_pull(h);
    tensor = tensor_of(out, GST_AX_TENSOR_INPUT);
    gst_buffer_unref(out);
  }
  if (bytes_mapped) g_object_get(element, "bytes-mapped", bytes_mapped, nullptr);
  if (error) *error = bus.error();
  gst_harness_teardown(h);
  return tensor;
}

std::string nv12_caps(const char *features_and_format, int width, int height) {
  return std::string("video/x-raw") + features_and_format + ",width=" + std::to_string(width) +
         ",height=" + std::to_string(height) + ",framerate=30/1";
}

TEST(ZeroCopyDmabufInput, OnlyTheRowsTheCropReadsAreMappedAndTheTensorIsUnchanged) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  const int width = 320, height = 240;
  const Bytes content = random_bytes(size_t(width) * height * 3 / 2, 11);
  const std::string crop = "40,0,200,60";  // the top quarter
  guint64 mapped = 0;
  const Bytes from_dmabuf =
      preprocess_once(model, crop, nv12_caps("(memory:DMABuf),format=NV12", width, height),
                      dmabuf_frame(content), &mapped);
  ASSERT_FALSE(from_dmabuf.empty());
  // Luma rows 0..63 (60 cropped + 4 of filter margin), chroma rows 0..31, whole rows each.
  EXPECT_EQ(mapped, guint64(64 + 32) * width);
  EXPECT_LT(mapped, content.size() / 3);
  guint64 system_mapped = 0;
  const Bytes from_system = preprocess_once(model, crop, nv12_caps(",format=NV12", width, height),
                                            system_frame(content), &system_mapped);
  EXPECT_EQ(from_dmabuf, from_system) << "mapping only the rows read must not change the tensor";
  EXPECT_EQ(system_mapped, content.size()) << "system-memory frames are mapped whole";
}

// Odd-sized 4:2:0 frames: the chroma planes have ceil(h / 2) rows, and a crop down to the last
// luma row needs the last chroma row mapped too (the rows past it are not in the fd).
TEST(ZeroCopyDmabufInput, OddSizedFramesMapTheLastChromaRowAndGiveTheSystemMemoryTensor) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  for (const char *format : {"NV12", "I420", "YUY2", "UYVY"}) {
    GstVideoInfo info;
    gst_video_info_set_format(&info, gst_video_format_from_string(format), 641, 479);
    const Bytes content = random_bytes(GST_VIDEO_INFO_SIZE(&info), 14);
    const std::string crop = "1,400,640,79";  // down to the last row and column
    const std::string format_field = std::string(",format=") + format;
    guint64 mapped = 0;
    const Bytes from_dmabuf = preprocess_once(
        model, crop, nv12_caps(("(memory:DMABuf)" + format_field).c_str(), 641, 479),
        dmabuf_frame(content), &mapped);
    ASSERT_FALSE(from_dmabuf.empty()) << format;
    EXPECT_LT(mapped, content.size() / 2) << format << ": only the rows read are mapped";
    const Bytes from_system = preprocess_once(
        model, crop, nv12_caps(format_field.c_str(), 641, 479), system_frame(content));
    EXPECT_EQ(from_dmabuf, from_system) << format;
  }
}

TEST(ZeroCopyDmabufInput, DrmFormatCapsAreReadLikeTheirGStreamerFormat) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  const Bytes content = random_bytes(64 * 48 * 3 / 2, 12);
  const Bytes plain =
      preprocess_once(model, "", nv12_caps(",format=NV12", 64, 48), system_frame(content));
  ASSERT_FALSE(plain.empty());
  // GStreamer >= 1.24's way of describing dmabuf frames, and a linear modifier spelt out.
  for (const char *drm : {"NV12", "NV12:0x0000000000000000"}) {
    const std::string caps = nv12_caps(
        (std::string("(memory:DMABuf),format=DMA_DRM,drm-format=") + drm).c_str(), 64, 48);
    EXPECT_EQ(preprocess_once(model, "", caps, dmabuf_frame(content)), plain) << drm;
  }
}

// A webcam's packed 4:2:2 frames in dmabufs (v4l2src io-mode=dmabuf): YUYV and UYVY fourccs are
// read as YUY2 and UYVY, and a crop maps only its rows (2 bytes per pixel, one plane).
TEST(ZeroCopyDmabufInput, PackedYuv422FramesMapOnlyTheCroppedRowsLikeTheirPlainFormat) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  const struct { const char *drm, *format; } cases[] = {{"YUYV", "YUY2"}, {"UYVY", "UYVY"}};
  for (const auto &c : cases) {
    const int width = 320, height = 240;
    const Bytes content = random_bytes(size_t(width) * height * 2, 16);
    const Bytes plain = preprocess_once(
        model, "", nv12_caps((std::string(",format=") + c.format).c_str(), width, height),
        system_frame(content));
    ASSERT_FALSE(plain.empty()) << c.format;
    const std::string drm_caps = nv12_caps(
        (std::string("(memory:DMABuf),format=DMA_DRM,drm-format=") + c.drm).c_str(), width, height);
    EXPECT_EQ(preprocess_once(model, "", drm_caps, dmabuf_frame(content)), plain) << c.drm;
    const std::string crop = "40,0,200,60";  // the top quarter
    guint64 mapped = 0;
    const Bytes cropped = preprocess_once(model, crop, drm_caps, dmabuf_frame(content), &mapped);
    ASSERT_FALSE(cropped.empty()) << c.drm;
    // Rows 0..63 (60 cropped + 4 of filter margin), whole rows of 2 bytes per pixel.
    EXPECT_EQ(mapped, guint64(64) * width * 2) << c.drm;
    EXPECT_EQ(cropped, preprocess_once(
                           model, crop,
                           nv12_caps((std::string(",format=") + c.format).c_str(), width, height),
                           system_frame(content)))
        << c.drm;
  }
}

TEST(ZeroCopyDmabufInput, TiledModifierIsRefusedWithAnErrorNamingIt) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstFlowReturn flow = GST_FLOW_OK;
  std::string error;
  const Bytes tensor = preprocess_once(
      model, "",
      nv12_caps("(memory:DMABuf),format=DMA_DRM,drm-format=NV12:0x0100000000000002", 64, 48),
      dmabuf_frame(random_bytes(64 * 48 * 3 / 2, 13)), nullptr, &flow, &error);
  EXPECT_TRUE(tensor.empty());
  EXPECT_EQ(flow, GST_FLOW_NOT_NEGOTIATED);
  EXPECT_NE(error.find("INTEL Y_TILED (0x0100000000000002)"), std::string::npos) << error;
  EXPECT_NE(error.find("DRM_FORMAT_MOD_LINEAR"), std::string::npos) << error;
}

TEST(ZeroCopyDmabufInput, FourccWithoutASupportedFormatIsRefused) {
  AXTEST_REQUIRE_MODEL(model, "resnet_tiny");
  GstFlowReturn flow = GST_FLOW_OK;
  std::string error;
  // YVYU maps to YVYU, which the preprocessing does not read (YUYV and UYVY it does); Q401 maps
  // to nothing at all.
  preprocess_once(model, "", nv12_caps("(memory:DMABuf),format=DMA_DRM,drm-format=YVYU", 64, 48),
                  dmabuf_frame(random_bytes(64 * 48 * 2, 14)), nullptr, &flow, &error);
  EXPECT_EQ(flow, GST_FLOW_NOT_NEGOTIATED);
  EXPECT_NE(error.find("YVYU"), std::string::npos) << error;
  preprocess_once(model, "", nv12_caps("(memory:DMABuf),format=DMA_DRM,drm-format=Q401", 64, 48),
                  dmabuf_frame(random_bytes(64 * 48 * 2, 15)), nullptr, &flow, &error);
  EXPECT_EQ(flow, GST_FLOW_NOT_NEGOTIATED);
  EXPECT_NE(error.find("has no GStreamer video format"), std::string::npos) << error;
}

TEST(ZeroCopyDrmFormat, FourccsMapToGStreamerFormatsAndBack) {
  struct Pair {
    guint32 fourcc;
    GstVideoFormat format;
  };
  const Pair pairs[] = {
      {DRM_FORMAT_NV12, GST_VIDEO_FORMAT_NV12},     {DRM_FORMAT_YUV420, GST_VIDEO_FORMAT_I420},
      {DRM_FORMAT_XRGB8888, GST_VIDEO_FORMAT_BGRx}, {DRM_FORMAT_XBGR8888, GST_VIDEO_FORMAT_RGBx},
      {DRM_FORMAT_ARGB8888, GST_VIDEO_FORMAT_BGRA}, {DRM_FORMAT_ABGR8888, GST_VIDEO_FORMAT_RGBA},
      {DRM_FORMAT_BGR888, GST_VIDEO_FORMAT_RGB},    {DRM_FORMAT_RGB888, GST_VIDEO_FORMAT_BGR},
      {DRM_FORMAT_R8, GST_VIDEO_FORMAT_GRAY8},      {DRM_FORMAT_YUYV, GST_VIDEO_FORMAT_YUY2},
  };
  for (const Pair &pair : pairs) {
    EXPECT_EQ(gst_ax_video_format_from_drm_fourcc(pair.fourcc), pair.format)
        << gst_video_format_to_string(pair.format);
    EXPECT_EQ(gst_ax_drm_fourcc_from_video_format(pair.format), pair.fourcc)
        << gst_video_format_to_string(pair.format);
  }
  EXPECT_EQ(gst_ax_video_format_from_drm_fourcc(fourcc_code('Q', '4', '0', '1')),
            GST_VIDEO_FORMAT_UNKNOWN);
  EXPECT_EQ(gst_ax_drm_fourcc_from_video_format(GST_VIDEO_FORMAT_v210),
            guint32(DRM_FORMAT_INVALID));
}

// The byte layout behind the table: a BGRx frame's first pixel is B,G,R,X in memory, which DRM
// calls XRGB8888 (a little-endian 32-bit word 0xXXRRGGBB).
TEST(ZeroCopyDrmFormat, XRGB8888IsBGRxInMemoryOrder) {
  const uint32_t pixel = 0x00112233;  // X=00 R=11 G=22 B=33 as DRM_FORMAT_XRGB8888
  uint8_t bytes[4];
  std::memcpy(bytes, &pixel, 4);
  GstVideoInfo info;
  gst_video_info_set_format(&info, gst_ax_video_format_from_drm_fourcc(DRM_FORMAT_XRGB8888), 1, 1);
  EXPECT_EQ(bytes[GST_VIDEO_INFO_COMP_OFFSET(&info, GST_VIDEO_COMP_R)], 0x11);
  EXPECT_EQ(bytes[GST_VIDEO_INFO_COMP_OFFSET(&info, GST_VIDEO_COMP_G)], 0x22);
  EXPECT_EQ(bytes[GST_VIDEO_INFO_COMP_OFFSET(&info, GST_VIDEO_COMP_B)], 0x33);
}

}  // namespace
