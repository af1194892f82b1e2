// axoverlay's drawing on a webcam's packed 4:2:2 frame (YUY2) against the way it needed before:
// GStreamer's own conversion to I420, drawing there and converting back (what `videoconvert !
// axoverlay ! videoconvert` does to a frame), and against drawing on an I420 frame alone; ten
// faces over the whole frame and one face (only the rows objects reach are redrawn). One line
// per case (docs/performance.md, "Tracker, overlay and Python metadata").
#include <gst/video/video.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "axstream/overlay/overlay.h"
#include "bench_common.h"

namespace {

namespace ov = axstream::overlay;

// Ten labelled faces with six keypoints each spread over the frame, as blazeface gives them.
std::vector<ov::OverlayObject> faces(int width, int height) {
  std::vector<ov::OverlayObject> objects;
  for (int i = 0; i < 10; ++i) {
    ov::OverlayObject face;
    face.x = float(width) * (0.05f + 0.09f * float(i));
    face.y = float(height) * (0.1f + 0.07f * float(i % 5));
    face.width = float(width) * 0.08f;
    face.height = float(height) * 0.14f;
    face.text = "face 0.9" + std::to_string(i);
    for (int k = 0; k < 6; ++k)
      face.keypoints.emplace_back(face.x + face.width * (0.2f + 0.1f * float(k)),
                                  face.y + face.height * 0.5f);
    objects.push_back(face);
  }
  return objects;
}

struct Frame {
  GstVideoInfo info;
  std::vector<uint8_t> bytes;
  explicit Frame(GstVideoFormat format, int width, int height) {
    gst_video_info_set_format(&info, format, width, height);
    bytes.resize(GST_VIDEO_INFO_SIZE(&info));
    std::mt19937 rng(1);
    for (auto &b : bytes) b = uint8_t(rng());
  }
  ov::FrameView view() {
    ov::FrameView v;
    v.format = ov::pixel_format_from_name(gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(&info)));
    v.width = GST_VIDEO_INFO_WIDTH(&info);
    v.height = GST_VIDEO_INFO_HEIGHT(&info);
    for (guint p = 0; p < GST_VIDEO_INFO_N_PLANES(&info) && p < 3; ++p) {
      v.planes[p] = bytes.data() + GST_VIDEO_INFO_PLANE_OFFSET(&info, p);
      v.strides[p] = GST_VIDEO_INFO_PLANE_STRIDE(&info, p);
    }
    return v;
  }
  GstVideoFrame map() {
    GstVideoFrame frame{};
    frame.info = info;
    for (guint p = 0; p < GST_VIDEO_INFO_N_PLANES(&info); ++p)
      frame.data[p] = bytes.data() + GST_VIDEO_INFO_PLANE_OFFSET(&info, p);
    return frame;
  }
};

}  // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  namespace bench = axstream::bench;
  const double seconds = bench::seconds_per_case();
  const int width = 1920, height = 1080;
  const std::vector<ov::OverlayObject> objects = faces(width, height);
  const ov::OverlayStyle style;
  Frame yuy2(GST_VIDEO_FORMAT_YUY2, width, height), i420(GST_VIDEO_FORMAT_I420, width, height);

  const bench::Stats direct =
      bench::measure([&] { ov::draw_objects(yuy2.view(), objects, style); }, seconds);
  // One face: only the rows it reaches are split into planes and joined again.
  const std::vector<ov::OverlayObject> one_face(objects.begin() + 4, objects.begin() + 5);
  const bench::Stats direct_one =
      bench::measure([&] { ov::draw_objects(yuy2.view(), one_face, style); }, seconds);
  const bench::Stats i420_one =
      bench::measure([&] { ov::draw_objects(i420.view(), one_face, style); }, seconds);
  const bench::Stats i420_only =
      bench::measure([&] { ov::draw_objects(i420.view(), objects, style); }, seconds);
  // GStreamer's converter, as videoconvert configures it by default (one thread).
  GstVideoConverter *to_i420 = gst_video_converter_new(&yuy2.info, &i420.info, nullptr);
  GstVideoConverter *to_yuy2 = gst_video_converter_new(&i420.info, &yuy2.info, nullptr);
  GstVideoFrame yuy2_frame = yuy2.map(), i420_frame = i420.map();
  const bench::Stats converted = bench::measure(
      [&] {
        gst_video_converter_frame(to_i420, &yuy2_frame, &i420_frame);
        ov::draw_objects(i420.view(), objects, style);
        gst_video_converter_frame(to_yuy2, &i420_frame, &yuy2_frame);
      },
      seconds);
  gst_video_converter_free(to_i420);
  gst_video_converter_free(to_yuy2);

  std::printf(
      "%-10s %-34s %8.3f ms p50 (p99 %.3f)  videoconvert YUY2->I420, draw, ->YUY2 %8.3f ms"
      " p50  %.1fx\n",
      "overlay", "YUY2 1080p, 10 labelled faces", direct.p50_ms, direct.p99_ms, converted.p50_ms,
      converted.p50_ms / direct.p50_ms);
  std::printf(
      "%-10s %-34s %8.3f ms p50 (p99 %.3f)  the same objects on an I420 frame %8.3f ms p50"
      "  %.2fx\n",
      "overlay", "YUY2 1080p vs I420", direct.p50_ms, direct.p99_ms, i420_only.p50_ms,
      direct.p50_ms / i420_only.p50_ms);
  std::printf(
      "%-10s %-34s %8.3f ms p50 (p99 %.3f)  the same face on an I420 frame %8.3f ms p50"
      "  %.2fx\n",
      "overlay", "YUY2 1080p, 1 labelled face", direct_one.p50_ms, direct_one.p99_ms,
      i420_one.p50_ms, direct_one.p50_ms / i420_one.p50_ms);
  return 0;
}
