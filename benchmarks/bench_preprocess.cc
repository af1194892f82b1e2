// Preprocess benchmark: 1080p and 720p NV12 / I420 / YUY2 / UYVY / BGRx frames -> 224x224 and
// 640x640 letterboxed int8 RGB (mean 0.5, std 0.5, scale 1/128), CPU ms per frame (process CPU
// time, all threads, so the shared machine's other load counts as little as possible; wall p50
// too):
//   ours      axstream::preprocess::Preprocessor::run (the library axpreprocess uses) into the
//             packages' device layout (RGB + 1 padding channel, NHWC); "3ch": plain RGB tensor;
//             "base": the same with the x86-64 baseline kernels instead of AVX2; "cold": the
//             same as ours on frames out of cache, as a decoder's frame reaches axpreprocess in a
//             pipeline (copies of the frame cycled through, 64 MB of them, twice the L3)
//             "709full" (YUV): the same as ours for BT.709 full-range frames (ours is
//             BT.601 video range): other colorimetries only change the kernels' constants
//   opencv    cv::cvtColor -> cv::resize into the letterbox canvas -> convertTo(CV_8S)
//   gst       appsrc ! videoconvert ! videoscale ! capsfilter(RGB, WxH, PAR 1/1) ! appsink, and
//             the quantise step (convertTo) on the pulled buffer; both element orders are timed
//             (convert->scale and scale->convert), the faster one is the baseline.
// OpenCV runs with cv::setNumThreads(1); videoconvert/videoscale with n-threads=1.
//
//   bench_preprocess [FILTER]   (AXSTREAM_BENCH_SECONDS per side, default 3; FILTER: run only
//                               the cases whose label contains it, e.g. "1080p NV12 -> 640")
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include <algorithm>
#include <cstring>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "axstream/preprocess/preprocess.h"
#include "bench_common.h"

namespace ab = axstream::bench;
namespace pp = axstream::preprocess;

namespace {

constexpr double kScale = 1.0 / 128.0;  // int8 quantisation of the normalised input
constexpr int kZeroPoint = 0;

struct Source {
  pp::Frame frame;
  std::vector<uint8_t> bytes;  // contiguous planes (GStreamer's default layout for these sizes)
  const char *gst_format;
  int cv_code;  // cvtColor code to RGB
};

Source make_source(const cv::Mat &bgr, pp::PixelFormat format) {
  Source s;
  const int w = bgr.cols, h = bgr.rows;
  s.frame.format = format;
  s.frame.width = w;
  s.frame.height = h;
  if (format == pp::PixelFormat::BGRx) {
    cv::Mat bgra;
    cv::cvtColor(bgr, bgra, cv::COLOR_BGR2BGRA);
    s.bytes.assign(bgra.data, bgra.data + size_t(w) * h * 4);
    s.frame.planes = {s.bytes.data(), nullptr, nullptr};
    s.frame.strides = {w * 4, 0, 0};
    s.gst_format = "BGRx";
    s.cv_code = cv::COLOR_BGRA2RGB;
    return s;
  }
  cv::Mat i420;
  cv::cvtColor(bgr, i420, cv::COLOR_BGR2YUV_I420);
  const size_t y = size_t(w) * h, q = y / 4;
  s.bytes.assign(i420.data, i420.data + y + 2 * q);
  if (format == pp::PixelFormat::YUY2 || format == pp::PixelFormat::UYVY) {
    // Packed 4:2:2 (a webcam's frames): each 4:2:0 chroma row serves its two luma rows.
    const bool yuy2 = format == pp::PixelFormat::YUY2;
    std::vector<uint8_t> packed(size_t(w) * h * 2);
    for (int row = 0; row < h; ++row)
      for (int x = 0; x < w; x += 2) {
        uint8_t *pair = packed.data() + (size_t(row) * w + x) * 2;
        const size_t c = size_t(row / 2) * (w / 2) + x / 2;
        const uint8_t y0 = s.bytes[size_t(row) * w + x], y1 = s.bytes[size_t(row) * w + x + 1];
        const uint8_t u = s.bytes[y + c], v = s.bytes[y + q + c];
        const uint8_t yuy2_pair[4] = {y0, u, y1, v}, uyvy_pair[4] = {u, y0, v, y1};
        std::memcpy(pair, yuy2 ? yuy2_pair : uyvy_pair, 4);
      }
    s.bytes = std::move(packed);
    s.frame.planes = {s.bytes.data(), nullptr, nullptr};
    s.frame.strides = {2 * w, 0, 0};
    s.gst_format = yuy2 ? "YUY2" : "UYVY";
    s.cv_code = yuy2 ? cv::COLOR_YUV2RGB_YUY2 : cv::COLOR_YUV2RGB_UYVY;
  } else if (format == pp::PixelFormat::NV12) {
    std::vector<uint8_t> uv(2 * q);
    for (size_t i = 0; i < q; ++i) {
      uv[2 * i] = s.bytes[y + i];
      uv[2 * i + 1] = s.bytes[y + q + i];
    }
    std::copy(uv.begin(), uv.end(), s.bytes.begin() + long(y));
    s.frame.planes = {s.bytes.data(), s.bytes.data() + y, nullptr};
    s.frame.strides = {w, w, 0};
    s.gst_format = "NV12";
    s.cv_code = cv::COLOR_YUV2RGB_NV12;
  } else {
    s.frame.planes = {s.bytes.data(), s.bytes.data() + y, s.bytes.data() + y + q};
    s.frame.strides = {w, w / 2, w / 2};
    s.gst_format = "I420";
    s.cv_code = cv::COLOR_YUV2RGB_I420;
  }
  return s;
}

// OpenCV chain with the same letterbox geometry as ours.
struct OpenCvChain {
  cv::Mat rgb, canvas, out;
  cv::Rect content;
  OpenCvChain(const pp::Geometry &g, int tw, int th)
      : canvas(th, tw, CV_8UC3, cv::Scalar::all(0)),
        content(g.offset_x, g.offset_y, g.content_width, g.content_height) {}
  void run(const Source &s) {
    const int w = s.frame.width, h = s.frame.height;
    auto *data = const_cast<uint8_t *>(s.bytes.data());
    const bool packed422 =
        s.frame.format == pp::PixelFormat::YUY2 || s.frame.format == pp::PixelFormat::UYVY;
    cv::Mat src = s.frame.format == pp::PixelFormat::BGRx ? cv::Mat(h, w, CV_8UC4, data)
                  : packed422                             ? cv::Mat(h, w, CV_8UC2, data)
                                                          : cv::Mat(h * 3 / 2, w, CV_8UC1, data);
    cv::cvtColor(src, rgb, s.cv_code);
    cv::Mat roi = canvas(content);
    cv::resize(rgb, roi, roi.size(), 0, 0, cv::INTER_LINEAR);
    // (p/255 - 0.5)/0.5/scale + zp
    canvas.convertTo(out, CV_8S, (1.0 / 255.0) / 0.5 / kScale, -0.5 / 0.5 / kScale + kZeroPoint);
  }
};

struct GstChain {
  GstElement *pipeline = nullptr;
  GstAppSrc *src = nullptr;
  GstAppSink *sink = nullptr;
  cv::Mat out;
  int tw, th;
  GstChain(const Source &s, int tw_, int th_, bool convert_first) : tw(tw_), th(th_) {
    std::string conv = "videoconvert n-threads=1", scale = "videoscale n-threads=1";
    std::string desc =
        "appsrc name=src format=time ! " + (convert_first ? conv : scale) + " ! " +
        (convert_first ? scale : conv) + " ! video/x-raw,format=RGB,width=" + std::to_string(tw) +
        ",height=" + std::to_string(th) + ",pixel-aspect-ratio=1/1 ! appsink name=sink sync=false";
    GError *err = nullptr;
    pipeline = gst_parse_launch(desc.c_str(), &err);
    if (!pipeline) throw std::runtime_error(err ? err->message : "gst_parse_launch failed");
    src = GST_APP_SRC(gst_bin_get_by_name(GST_BIN(pipeline), "src"));
    sink = GST_APP_SINK(gst_bin_get_by_name(GST_BIN(pipeline), "sink"));
    GstCaps *caps = gst_caps_new_simple("video/x-raw", "format", G_TYPE_STRING, s.gst_format,
                                        "width", G_TYPE_INT, s.frame.width, "height", G_TYPE_INT,
                                        s.frame.height, "framerate", GST_TYPE_FRACTION, 30, 1,
                                        "pixel-aspect-ratio", GST_TYPE_FRACTION, 1, 1, nullptr);
    gst_app_src_set_caps(src, caps);
    gst_caps_unref(caps);
    gst_element_set_state(pipeline, GST_STATE_PLAYING);
  }
  ~GstChain() {
    gst_app_src_end_of_stream(src);
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(src);
    gst_object_unref(sink);
    gst_object_unref(pipeline);
  }
  void run(const Source &s, uint64_t n) {
    GstBuffer *buf =
        gst_buffer_new_wrapped_full(GST_MEMORY_FLAG_READONLY, const_cast<uint8_t *>(s.bytes.data()),
                                    s.bytes.size(), 0, s.bytes.size(), nullptr, nullptr);
    GST_BUFFER_PTS(buf) = n * GST_SECOND / 30;
    if (gst_app_src_push_buffer(src, buf) != GST_FLOW_OK) throw std::runtime_error("push failed");
    GstSample *sample = gst_app_sink_pull_sample(sink);
    if (!sample) throw std::runtime_error("pipeline produced no sample");
    GstBuffer *ob = gst_sample_get_buffer(sample);
    GstMapInfo map;
    gst_buffer_map(ob, &map, GST_MAP_READ);
    GstVideoInfo info;
    gst_video_info_from_caps(&info, gst_sample_get_caps(sample));
    cv::Mat rgb(th, tw, CV_8UC3, map.data, size_t(GST_VIDEO_INFO_PLANE_STRIDE(&info, 0)));
    rgb.convertTo(out, CV_8S, (1.0 / 255.0) / 0.5 / kScale, -0.5 / 0.5 / kScale + kZeroPoint);
    gst_buffer_unmap(ob, &map);
    gst_sample_unref(sample);
  }
};

}  // namespace

int main(int argc, char **argv) {
  gst_init(&argc, &argv);
  // The one argument is a filter, so an option would otherwise match no case and print nothing.
  const bool help = argc == 2 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h"));
  if (help || argc > 2 || (argc == 2 && argv[1][0] == '-')) {
    std::fprintf(help ? stdout : stderr,
                 "usage: %s [FILTER]   (FILTER: only the cases whose label contains it, e.g. "
                 "\"1080p NV12 -> 640\"; AXSTREAM_BENCH_SECONDS per side, default 3)\n",
                 argv[0]);
    return help ? 0 : 2;
  }
  cv::setNumThreads(1);
  const double seconds = ab::seconds_per_case();
  cv::Mat image =
      cv::imread(ab::data_dir() + "/opencv-doc/usr/share/doc/opencv-doc/examples/data/messi5.jpg");
  if (image.empty()) {  // content does not change the work; a gradient will do
    image = cv::Mat(480, 640, CV_8UC3);
    cv::randu(image, 0, 255);
  }
  const std::string filter = argc > 1 ? argv[1] : "";
  std::printf(
      "# preprocess: CPU ms per frame, %.1f s per side; -> int8 RGB letterbox "
      "(mean 0.5 std 0.5 scale 1/128); ratio = baseline CPU ms / ours (4ch, AVX2) CPU ms\n",
      seconds);
  for (auto [fw, fh] : {std::pair{1920, 1080}, std::pair{1280, 720}}) {
    cv::Mat bgr;
    cv::resize(image, bgr, cv::Size(fw, fh));
    for (auto format : {pp::PixelFormat::NV12, pp::PixelFormat::I420, pp::PixelFormat::YUY2,
                        pp::PixelFormat::UYVY, pp::PixelFormat::BGRx}) {
      Source s = make_source(bgr, format);
      for (int t : {224, 640}) {
        std::string label = std::to_string(fh) + "p " + pp::pixel_format_name(format) + " -> " +
                            std::to_string(t) + "x" + std::to_string(t);
        if (label.find(filter) == std::string::npos) continue;
        pp::TensorSpec spec;
        spec.height = spec.width = t;
        spec.channels = 3;
        spec.scale = kScale;
        spec.zero_point = kZeroPoint;
        pp::Options opt;
        opt.resize = pp::ResizeMode::Letterbox;
        opt.color = pp::ColorOrder::RGB;
        opt.normalisation.pixel_scale = 1.0 / 255.0;
        opt.normalisation.mean = {0.5, 0.5, 0.5};
        opt.normalisation.std = {0.5, 0.5, 0.5};
        pp::Preprocessor ours3(format, fw, fh, spec, opt);
        std::vector<int8_t> tensor(spec.size());
        ab::Stats s3 = ab::measure([&] { ours3.run(s.frame, tensor.data()); }, seconds);
        // The device layout packages use (and axpreprocess writes): RGB + 1 padding channel.
        pp::TensorSpec spec4 = spec;
        spec4.channels = 4;
        spec4.channel_pad_high = 1;
        pp::Preprocessor ours(format, fw, fh, spec4, opt);
        std::vector<int8_t> tensor4(spec4.size());
        ab::Stats so = ab::measure([&] { ours.run(s.frame, tensor4.data()); }, seconds);
        // Frames out of cache: copies of the frame, more bytes of them than the L3 holds.
        const size_t copies = std::max<size_t>(2, (size_t(64) << 20) / s.bytes.size() + 1);
        std::vector<std::vector<uint8_t>> cold_bytes(copies, s.bytes);
        std::vector<pp::Frame> cold_frames(copies, s.frame);
        for (size_t c = 0; c < copies; ++c)
          for (int p = 0; p < 3; ++p)
            if (s.frame.planes[size_t(p)])
              cold_frames[c].planes[size_t(p)] =
                  cold_bytes[c].data() + (s.frame.planes[size_t(p)] - s.bytes.data());
        size_t next_cold = 0;
        ab::Stats sk = ab::measure(
            [&] { ours.run(cold_frames[next_cold++ % copies], tensor4.data()); }, seconds);
        cold_bytes.clear();
        pp::Options base_opt = opt;
        base_opt.use_avx2 = false;
        pp::Preprocessor base(format, fw, fh, spec4, base_opt);
        ab::Stats sb = ab::measure([&] { base.run(s.frame, tensor4.data()); }, seconds);
        // YUV frames of another colorimetry: the same kernels with other constants (BT.709 full
        // range here; the default above is BT.601 video range, OpenCV's).
        const bool yuv = format != pp::PixelFormat::BGRx;
        ab::Stats s709{};
        if (yuv) {
          pp::Options opt709 = opt;
          opt709.colorimetry = {pp::YuvMatrix::BT709, pp::YuvRange::Full};
          pp::Preprocessor ours709(format, fw, fh, spec4, opt709);
          s709 = ab::measure([&] { ours709.run(s.frame, tensor4.data()); }, seconds);
        }
        char colorimetry_text[32] = "";
        if (yuv)
          std::snprintf(colorimetry_text, sizeof colorimetry_text, ", 709full %6.3f",
                        s709.cpu_ms_per_run);
        OpenCvChain cvc(ours.geometry(), t, t);
        ab::Stats sc = ab::measure([&] { cvc.run(s); }, seconds);
        double best_gst = 0;
        std::string gst_text;
        for (bool convert_first : {true, false}) {
          try {
            GstChain g(s, t, t, convert_first);
            uint64_t n = 0;
            ab::Stats sg = ab::measure([&] { g.run(s, n++); }, seconds);
            char buf[96];
            std::snprintf(buf, sizeof buf, " %s %.3f", convert_first ? "conv>scale" : "scale>conv",
                          sg.cpu_ms_per_run);
            gst_text += buf;
            if (best_gst == 0 || sg.cpu_ms_per_run < best_gst) best_gst = sg.cpu_ms_per_run;
          } catch (const std::exception &e) {
            gst_text += std::string(" ") + (convert_first ? "conv>scale" : "scale>conv") +
                        " failed: " + e.what();
          }
        }
        std::printf(
            "%-10s %-22s ours %6.3f ms (p50 %6.3f, 3ch %6.3f, base %6.3f, cold %6.3f%s) | opencv "
            "%6.3f ms (%.2fx) | gst%s ms (%.2fx)\n",
            "preprocess", label.c_str(), so.cpu_ms_per_run, so.p50_ms, s3.cpu_ms_per_run,
            sb.cpu_ms_per_run, sk.cpu_ms_per_run, colorimetry_text, sc.cpu_ms_per_run,
            sc.cpu_ms_per_run / so.cpu_ms_per_run, gst_text.c_str(),
            best_gst > 0 ? best_gst / so.cpu_ms_per_run : 0.0);
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
