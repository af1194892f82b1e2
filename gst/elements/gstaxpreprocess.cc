/**
 * SECTION:element-axpreprocess
 * @title: axpreprocess
 *
 * Makes a model's input tensor from each video frame in one fused pass: optional crop, bilinear
 * resize (letterbox keeping the aspect ratio, or stretch), colour conversion to the model's
 * channel order, normalisation ((pixel * pixel_scale - mean) / std), int8 quantisation with the
 * input's scale and zero point, and the device's padding. The tensor (fd memory from a buffer
 * pool) and the frame -> tensor geometry ride on the unchanged video buffer as a GstAxTensorMeta
 * of kind GST_AX_TENSOR_INPUT (axstream/gst/axtensormeta.h), for axinference and axdecode.
 *
 * Zero copy (docs/zero-copy.md): when nothing downstream proposes a buffer pool, the element
 * answers upstream's ALLOCATION query with a video pool of device-visible fd memory (a DMA heap or
 * udmabuf dmabuf where the kernel has one, a sealed memfd otherwise) carrying GstVideoMeta, so a
 * decoder or source writes each frame straight into it. memory:DMABuf frames (a plain format, or
 * format=DMA_DRM with a drm-format field; linear modifier only) are read by mapping just the rows
 * the crop needs; `bytes-mapped` counts the frame bytes mapped. A frame carrying a
 * GstVideoCropMeta (videocrop, or a decoder, attaches one instead of copying when downstream
 * takes it, and the allocation query passes that on) is read in its visible region: the caps'
 * size at the meta's origin, as if it had been cropped out. Not for YUY2/UYVY caps, where an odd
 * origin would split a pixel pair: the query leaves the meta out (videocrop copies instead), and
 * a frame that comes with such a meta anyway is a stream error naming its x.
 *
 * Colour order, pixel scale, mean and std come from the package's `input_preprocess`
 * (docs/model-package.md; RGB, 1/255, 0, 1 when absent); the properties override them.
 * YUV frames (NV12, I420, and the packed 4:2:2 YUY2 and UYVY that USB webcams give through v4l2src,
 * taken without a videoconvert: the fused pass splits each row it reads into luma and chroma, then
 * converts it as NV12) are converted to RGB with the caps' colorimetry: its matrix (BT.601, BT.709,
 * BT.2020, SMPTE 240M or FCC) and range (limited 16..235 or full 0..255), in every path (whole
 * frames, crops, ROIs, rotated crops, preamble pixels, dmabuf rows); the transfer function and
 * primaries are not converted (videoconvert leaves them too unless asked). Odd widths are taken as
 * GStreamer lays them out (YUY2/UYVY rows of ceil(width / 2) pairs). Caps without a colorimetry get
 * GStreamer's defaults (GstVideoInfo's, by frame height): BT.601 up to 576 lines, BT.709 above (4K
 * too, in GStreamer 1.22), limited range; GStreamer puts the same default in place of a matrix the
 * caps leave unknown or an RGB (identity) matrix on YUV caps. An unknown range is read as limited
 * (videoconvert would read it as full). Should a matrix other than these five reach the element, it
 * refuses the caps naming the colorimetry. BT.601 limited range uses OpenCV's constants (bit-exact
 * with cv::cvtColor), the others the standard's coefficients times 2^20, rounded: within 1 level of
 * the standard's formula and 3 of videoconvert's 16-bit output (its own rounding). Gray models take
 * the luma plane as it is (cv::COLOR_YUV2GRAY), whatever the range.
 *
 * Packages with a preamble (`preamble_graph`, the head axcompile split off the model because
 * the int8 core has no kernel for it): the fused pass makes the preamble input's pixels instead,
 * which become the float model input (normalised, in the layout `input_preprocess.layout`
 * names), run through preamble.onnx on the engine; its output is quantised with the core input's
 * scale and zero point (NaN: the zero point), transposed to NHWC when `input_info` says so,
 * and padded. Packages without one keep the single int8 pass.
 *
 * Secondary inference: with `roi=objects` the element makes one tensor per detected object
 * (GstVideoRegionOfInterestMeta from an upstream axdecode) instead of one per frame, each a
 * separate GstAxTensorMeta whose roi_id is the ROI's id and whose transform maps that crop back to
 * frame pixels; axinference runs them all and axdecode attaches each result to its ROI.
 * `object-class` keeps only ROIs with the given labels, `max-objects` caps the count per frame
 * (in meta order). A ROI with exactly 4 keypoints (dbnet's rotated text box corners) is cut
 * along its rotated rectangle and warped upright (PaddleOCR's rotated crop) unless
 * `rotated-crop=false`; its transform is then the axis-aligned approximation (crop origin at the
 * corners' bounding box, crop size the upright crop's).
 *
 * Frame skipping: with `inference-interval=N` (N > 1) only every Nth frame of the stream gets a
 * tensor (frames 0, N, 2N, ...); the frames between pass through at once, untouched except for
 * a marker (the `ax-inference-skipped` GstCustomMeta, axstream/gst/axresultmeta.h) that tells
 * them apart from frames where inference ran and found nothing. Preprocessing, inference and
 * decoding are all saved on them: axinference and axdecode pass marked frames on. An axtracker
 * downstream moves its tracks by their Kalman prediction on marked frames and attaches them as
 * predicted objects, so axoverlay and axmetapublish show objects on every frame. The count
 * starts over (the next frame is inferred) after a flush, a new segment (seek), a new stream and
 * new caps. One element handles one stream, so the count is per stream.
 *
 * |[
 * gst-launch-1.0 videotestsrc num-buffers=30 ! video/x-raw,format=NV12,width=1280,height=720 ! \
 *   axpreprocess model=build/tests/data/models/resnet_tiny ! fakesink
 * gst-launch-1.0 videotestsrc num-buffers=30 ! video/x-raw,format=YUY2,width=640,height=480 ! \
 *   axpreprocess model=build/tests/data/models/resnet_tiny ! fakesink
 * gst-launch-1.0 filesrc \
 *   location=~/.cache/axstream/opencv-doc/usr/share/doc/opencv-doc/examples/data/Megamind.avi ! \
 *   decodebin ! videoconvert ! \
 *   axpreprocess model=~/.cache/axstream/models/blazeface-front resize=letterbox pad-value=0 ! \
 *   axinference model=~/.cache/axstream/models/blazeface-front ! axdecode decoder=blazeface ! \
 *   fakesink
 * gst-launch-1.0 filesrc \
 *   location=~/.cache/axstream/opencv-doc/usr/share/doc/opencv-doc/examples/data/Megamind.avi ! \
 *   decodebin ! videoconvert ! \
 *   axpreprocess model=~/.cache/axstream/models/blazeface-front inference-interval=3 ! \
 *   axinference model=~/.cache/axstream/models/blazeface-front ! axdecode decoder=blazeface ! \
 *   axtracker ! axoverlay ! fakesink
 * ]|
 */
#include "gstaxpreprocess.h"

#include <gst/allocators/gstdmabuf.h>
#include <gst/allocators/gstfdmemory.h>
#include <gst/video/video.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "ax_detection_values.h"
#include "ax_field_properties.h"
#include "ax_preamble_input.h"
#include "ax_refused_caps.h"
#include "ax_transform.h"
#include "ax_video_crop.h"
#include "axstream/gst/axdmabufallocator.h"
#include "axstream/gst/axdrmformat.h"
#include "axstream/gst/axresultmeta.h"
#include "axstream/gst/axtensormeta.h"
#include "axstream/gst/axtensorpool.h"
#include "axstream/hal/dmabuf.h"
#include "axstream/hal/drm.h"
#include "axstream/preprocess/preprocess.h"
#include "axstream/preprocess/rotated_crop.h"
#include "axstream/runtime/model_package.h"
#include "axstream/runtime/runtime.h"

GST_DEBUG_CATEGORY_STATIC(gst_ax_preprocess_debug);
#define GST_CAT_DEFAULT gst_ax_preprocess_debug

namespace pp = axstream::preprocess;
namespace rt = axstream::runtime;
namespace hal = axstream::hal;
using axstream::gst::transform_of;

typedef enum {
  GST_AX_RESIZE_LETTERBOX = 0,
  GST_AX_RESIZE_STRETCH = 1,
  GST_AX_RESIZE_PAD_RIGHT = 2,
} GstAxResizeMode;

#define DEFAULT_PROP_MODEL nullptr
#define DEFAULT_PROP_RESIZE GST_AX_RESIZE_LETTERBOX
#define DEFAULT_PROP_PAD_VALUE 0
#define DEFAULT_PROP_MEAN nullptr
#define DEFAULT_PROP_STD nullptr
#define DEFAULT_PROP_COLOR_FORMAT nullptr
#define DEFAULT_PROP_CROP nullptr
#define DEFAULT_PROP_ROI GST_AX_ROI_FRAME
#define DEFAULT_PROP_OBJECT_CLASS nullptr
#define DEFAULT_PROP_MAX_OBJECTS 0
#define DEFAULT_PROP_ROTATED_CROP TRUE
#define DEFAULT_PROP_INFERENCE_INTERVAL 1

typedef enum {
  GST_AX_ROI_FRAME = 0,
  GST_AX_ROI_OBJECTS = 1,
} GstAxRoiMode;

enum {
  PROP_0,
  PROP_MODEL,
  PROP_RESIZE,
  PROP_PAD_VALUE,
  PROP_MEAN,
  PROP_STD,
  PROP_COLOR_FORMAT,
  PROP_CROP,
  PROP_ROI,
  PROP_OBJECT_CLASS,
  PROP_MAX_OBJECTS,
  PROP_ROTATED_CROP,
  PROP_INFERENCE_INTERVAL,
  PROP_BYTES_MAPPED,
};

#define AX_PREPROCESS_FORMATS "{ NV12, I420, YUY2, UYVY, RGB, BGR, RGBA, BGRA, RGBx, BGRx, GRAY8 }"
// memory:DMABuf frames come with a plain format (GStreamer 1.22) or as format=DMA_DRM with a
// drm-format field (GStreamer >= 1.24 style); drm-format is checked in set_caps (linear only).
#define AX_PREPROCESS_CAPS                   \
  GST_VIDEO_CAPS_MAKE(AX_PREPROCESS_FORMATS) \
  ";" GST_VIDEO_CAPS_MAKE_WITH_FEATURES("memory:DMABuf", AX_PREPROCESS_FORMATS) ";"        \
  "video/x-raw(memory:DMABuf), format=(string)DMA_DRM, width=" GST_VIDEO_SIZE_RANGE        \
  ", height=" GST_VIDEO_SIZE_RANGE ", framerate=" GST_VIDEO_FPS_RANGE

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(AX_PREPROCESS_CAPS));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(AX_PREPROCESS_CAPS));

struct CapsUnref {
  void operator()(GstCaps *caps) const { gst_caps_unref(caps); }
};

// C++ state, created in _init and deleted in finalize.
struct GstAxPreprocessState {
  std::shared_ptr<rt::Context> context;
  std::shared_ptr<rt::Model> model;
  std::shared_ptr<const rt::ModelPackage> package;
  std::unique_ptr<pp::Preprocessor> preprocessor;
  // Packages with a preamble: the preprocessor makes the preamble input's pixels, this runs the
  // preamble and quantises its output into the device input. Null otherwise (the int8 path).
  std::unique_ptr<axstream::gst::PreambleInput> preamble;
  GstVideoInfo video_info{};
  GstAxTransform transform{};
  GstBufferPool *pool = nullptr;
  bool dmabuf_caps = false;               // the sink caps carry memory:DMABuf
  std::atomic<uint64_t> bytes_mapped{0};  // frame bytes mapped for reading (property)
  // inference-interval: frames skipped since the last inferred one, and whether the next frame
  // must be inferred whatever the count (after start, a flush, a seek, a new stream or new caps).
  guint frames_skipped = 0;
  bool infer_next = true;
  // For roi=objects: what each per-ROI Preprocessor is made from.
  pp::PixelFormat format = pp::PixelFormat::RGB;
  pp::TensorSpec tensor{};
  pp::Options options{};
  // The caps set_caps last refused, its error posted: GstBaseTransform offers the same caps again
  // with every frame upstream pushes after a refusal, and one error says it all.
  std::unique_ptr<GstCaps, CapsUnref> refused_caps;

  void release_pool() {
    if (pool) {
      gst_buffer_pool_set_active(pool, FALSE);
      gst_object_unref(pool);
      pool = nullptr;
    }
  }
};

struct _GstAxPreprocess {
  GstBaseTransform parent;
  gchar *model;
  gint resize;
  guint pad_value;
  gchar *mean;
  gchar *std;
  gchar *color_format;
  gchar *crop;
  gint roi;
  gchar *object_class;
  guint max_objects;
  gboolean rotated_crop;
  guint inference_interval;
  GstAxPreprocessState *state;
};

G_DEFINE_TYPE(GstAxPreprocess, gst_ax_preprocess, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE(axpreprocess, "axpreprocess", GST_RANK_NONE, GST_TYPE_AX_PREPROCESS);

// The properties kept as fields of the instance (ax_field_properties.h).
static constexpr axstream::gst::FieldProperty<GstAxPreprocess> kFieldProperties[] = {
    {PROP_MODEL, &GstAxPreprocess::model},
    {PROP_RESIZE, &GstAxPreprocess::resize},
    {PROP_PAD_VALUE, &GstAxPreprocess::pad_value},
    {PROP_MEAN, &GstAxPreprocess::mean},
    {PROP_STD, &GstAxPreprocess::std},
    {PROP_COLOR_FORMAT, &GstAxPreprocess::color_format},
    {PROP_CROP, &GstAxPreprocess::crop},
    {PROP_ROI, &GstAxPreprocess::roi},
    {PROP_OBJECT_CLASS, &GstAxPreprocess::object_class},
    {PROP_MAX_OBJECTS, &GstAxPreprocess::max_objects},
    {PROP_ROTATED_CROP, &GstAxPreprocess::rotated_crop},
    {PROP_INFERENCE_INTERVAL, &GstAxPreprocess::inference_interval},
};

static GType gst_ax_resize_mode_get_type(void) {
  static GType type = 0;
  if (g_once_init_enter(&type)) {
    static const GEnumValue values[] = {
        {GST_AX_RESIZE_LETTERBOX, "Scale keeping the aspect ratio, border filled with pad-value",
         "letterbox"},
        {GST_AX_RESIZE_STRETCH, "Scale each axis to the tensor size (aspect not kept)", "stretch"},
        {GST_AX_RESIZE_PAD_RIGHT,
         "PaddleOCR's recogniser resize: tensor height, aspect kept (width capped at the "
         "tensor's), left-aligned, right border the normalised zero",
         "pad-right"},
        {0, nullptr, nullptr}};
    GType registered = g_enum_register_static("GstAxResizeMode", values);
    g_once_init_leave(&type, registered);
  }
  return type;
}

static GType gst_ax_roi_mode_get_type(void) {
  static GType type = 0;
  if (g_once_init_enter(&type)) {
    static const GEnumValue values[] = {
        {GST_AX_ROI_FRAME, "One tensor per frame (or the crop property's region)", "frame"},
        {GST_AX_ROI_OBJECTS, "One tensor per detected object (GstVideoRegionOfInterestMeta)",
         "objects"},
        {0, nullptr, nullptr}};
    GType registered = g_enum_register_static("GstAxRoiMode", values);
    g_once_init_leave(&type, registered);
  }
  return type;
}

namespace {

// "a,b,c" -> numbers; throws InvalidArgument naming the property and the text.
std::vector<double> parse_numbers(const char *property, const char *text, size_t min_count,
                                  size_t max_count) {
  std::vector<double> values;
  gchar **parts = g_strsplit(text, ",", -1);
  bool ok = true;
  for (gchar **p = parts; *p; ++p) {
    gchar *end = nullptr;
    const gchar *start = g_strstrip(*p);
    const double v = g_ascii_strtod(start, &end);
    if (end == start || *end != '\0') ok = false;
    values.push_back(v);
  }
  g_strfreev(parts);
  if (!ok || values.size() < min_count || values.size() > max_count)
    throw axstream::InvalidArgument(
        std::string("property '") + property + "' = '" + text + "': expected " +
        std::to_string(min_count) +
        (min_count == max_count ? "" : " to " + std::to_string(max_count)) +
        " comma-separated numbers");
  return values;
}

// mean or std: one value for every channel or one per channel (3); std must be non-zero, as it
// divides.
std::vector<double> parse_channel_values(const char *property, const char *text) {
  std::vector<double> values = parse_numbers(property, text, 1, 3);
  if (values.size() == 2)
    throw axstream::InvalidArgument(std::string("property '") + property + "' = '" + text +
                                    "': expected 1 number (every channel) or 3 (one per "
                                    "channel), got 2");
  for (double v : values)
    if (!std::isfinite(v) || (g_str_equal(property, "std") && v == 0))
      throw axstream::InvalidArgument(
          std::string("property '") + property + "' = '" + text + "': expected finite" +
          (g_str_equal(property, "std") ? " non-zero" : "") + " numbers");
  return values;
}

// "x,y,width,height" in whole pixels: x, y >= 0 and a non-empty size (whether it fits the frame is
// only known from the caps).
pp::Rect parse_crop(const char *text) {
  const std::vector<double> r = parse_numbers("crop", text, 4, 4);
  for (size_t i = 0; i < r.size(); ++i)
    if (r[i] != std::floor(r[i]) || r[i] < 0 || r[i] > G_MAXINT || (i >= 2 && r[i] == 0))
      throw axstream::InvalidArgument(std::string("property 'crop' = '") + text +
                                      "': expected whole pixels x,y >= 0 and width,height > 0");
  return pp::Rect{int(r[0]), int(r[1]), int(r[2]), int(r[3])};
}

std::array<double, 3> per_channel(const std::vector<double> &values, double fallback) {
  if (values.empty()) return {fallback, fallback, fallback};
  if (values.size() == 1) return {values[0], values[0], values[0]};
  return {values[0], values[1], values[2]};
}

// The device input as the preprocessing library sees it: one batch item (axinference gathers
// the items of a batch > 1 package); throws InvalidArgument when the tensor is not an int8 NHWC
// image.
pp::TensorSpec tensor_spec(const rt::TensorInfo &info, const std::string &model) {
  std::ostringstream shape;
  for (size_t i = 0; i < info.shape.size(); ++i) shape << (i ? "," : "") << info.shape[i];
  if (info.shape.size() != 4 || info.shape[0] < 1 || info.dtype != axstream::engine::DType::i8)
    throw axstream::InvalidArgument("input 0 '" + info.name + "' of model '" + model +
                                    "' has shape (" + shape.str() +
                                    "): axpreprocess expects an int8 NHWC image tensor");
  pp::TensorSpec t;
  t.height = int(info.shape[1]);
  t.width = int(info.shape[2]);
  t.channels = int(info.shape[3]);
  if (info.padding.size() == 4) {
    if (info.padding[0].first != 0 || info.padding[0].second != 0)
      throw axstream::InvalidArgument("input 0 of model '" + model +
                                      "' pads the batch dimension: expected no batch padding");
    t.pad_top = int(info.padding[1].first);
    t.pad_bottom = int(info.padding[1].second);
    t.pad_left = int(info.padding[2].first);
    t.pad_right = int(info.padding[2].second);
    t.channel_pad_low = int(info.padding[3].first);
    t.channel_pad_high = int(info.padding[3].second);
  } else if (!info.padding.empty()) {
    throw axstream::InvalidArgument("input 0 of model '" + model + "' has " +
                                    std::to_string(info.padding.size()) +
                                    " padding pairs: expected 4 (NHWC)");
  }
  t.scale = info.scale;
  t.zero_point = info.zero_point;
  return t;
}

// The YUV -> RGB matrix and range of NV12/I420/YUY2/UYVY caps. gst_video_info_from_caps has already
// put GStreamer's defaults where the caps name no colorimetry (BT.601 up to 576 lines, BT.709
// above; limited range); a matrix the caps leave unknown gets the same default, an unknown range
// limited. An RGB (identity) matrix on YUV caps is refused naming it.
pp::Colorimetry yuv_colorimetry(const GstVideoInfo &info) {
  pp::Colorimetry c;
  c.range = info.colorimetry.range == GST_VIDEO_COLOR_RANGE_0_255 ? pp::YuvRange::Full
                                                                  : pp::YuvRange::Limited;
  GstVideoColorMatrix matrix = info.colorimetry.matrix;
  if (matrix == GST_VIDEO_COLOR_MATRIX_UNKNOWN) {
    const int height = GST_VIDEO_INFO_HEIGHT(&info);
    matrix = height > 576 ? GST_VIDEO_COLOR_MATRIX_BT709 : GST_VIDEO_COLOR_MATRIX_BT601;
  }
  switch (matrix) {
    case GST_VIDEO_COLOR_MATRIX_BT601:
      c.matrix = pp::YuvMatrix::BT601;
      return c;
    case GST_VIDEO_COLOR_MATRIX_BT709:
      c.matrix = pp::YuvMatrix::BT709;
      return c;
    case GST_VIDEO_COLOR_MATRIX_BT2020:
      c.matrix = pp::YuvMatrix::BT2020;
      return c;
    case GST_VIDEO_COLOR_MATRIX_SMPTE240M:
      c.matrix = pp::YuvMatrix::SMPTE240M;
      return c;
    case GST_VIDEO_COLOR_MATRIX_FCC:
      c.matrix = pp::YuvMatrix::FCC;
      return c;
    default:
      break;
  }
  gchar *text = gst_video_colorimetry_to_string(&info.colorimetry);
  const std::string name = text ? text : "?";
  g_free(text);
  throw axstream::InvalidArgument(
      "colorimetry '" + name + "' (matrix " + std::to_string(int(info.colorimetry.matrix)) +
      "): YUV frames need a YUV matrix, one of bt601, bt709, bt2020, smpte240m, fcc");
}

}  // namespace

static pp::Options make_options(GstAxPreprocess *self);

static gboolean gst_ax_preprocess_start(GstBaseTransform *trans) {
  auto *self = GST_AX_PREPROCESS(trans);
  GstAxPreprocessState *state = self->state;
  if (!self->model || !*self->model) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("axpreprocess needs a model package"),
                      ("the 'model' property is not set: set it to a package directory or its "
                       "model.json"));
    return FALSE;
  }
  state->bytes_mapped = 0;
  state->infer_next = true;
  try {
    state->context = rt::Context::create();
    state->model = state->context->load_model(self->model);
    state->package = state->model->package();
    if (state->model->inputs().size() != 1)
      throw axstream::InvalidArgument(
          "model '" + std::string(self->model) + "' has " +
          std::to_string(state->model->inputs().size()) +
          " inputs: axpreprocess makes one image tensor per frame and expects 1 input");
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, RESOURCE, OPEN_READ,
                      ("axpreprocess could not load model package '%s': %s", self->model, e.what()),
                      ("Context::load_model: %s", e.what()));
    state->model.reset();
    state->package.reset();
    state->context.reset();
    return FALSE;
  }
  // Property values that are wrong whatever the frames are fail here, named, rather than as a
  // caps negotiation error.
  try {
    make_options(self);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("%s", e.what()),
                      ("axpreprocess start: the properties do not make valid options for model "
                       "'%s'",
                       self->model));
    state->model.reset();
    state->package.reset();
    state->context.reset();
    return FALSE;
  }
  return TRUE;
}

static gboolean gst_ax_preprocess_stop(GstBaseTransform *trans) {
  GstAxPreprocessState *state = GST_AX_PREPROCESS(trans)->state;
  state->release_pool();
  state->refused_caps.reset();
  state->preprocessor.reset();
  state->preamble.reset();
  state->package.reset();
  state->model.reset();
  if (state->context) state->context->release();
  state->context.reset();
  return TRUE;
}

// The options from the package, overridden by the properties set on the element.
static pp::Options make_options(GstAxPreprocess *self) {
  const rt::ModelPackage &package = *self->state->package;
  std::optional<rt::InputPreprocess> from_package;
  if (!package.input_preprocess.empty()) from_package = package.input_preprocess[0];
  pp::Options o;
  o.resize = self->resize == GST_AX_RESIZE_STRETCH     ? pp::ResizeMode::Stretch
             : self->resize == GST_AX_RESIZE_PAD_RIGHT ? pp::ResizeMode::PadRight
                                                       : pp::ResizeMode::Letterbox;
  o.pad_value = uint8_t(self->pad_value);
  if (self->color_format && *self->color_format) {
    try {
      o.color = pp::color_order_from_string(self->color_format);
    } catch (const std::exception &e) {
      throw axstream::InvalidArgument(std::string("property 'color-format': ") + e.what());
    }
  } else {
    o.color = pp::color_order_from_string(from_package ? from_package->color_format : "RGB");
  }
  o.normalisation.pixel_scale = from_package ? from_package->pixel_scale : 1.0 / 255.0;
  o.normalisation.mean = per_channel(
      self->mean && *self->mean ? parse_channel_values("mean", self->mean)
                                : (from_package ? from_package->mean : std::vector<double>{}),
      0.0);
  o.normalisation.std = per_channel(
      self->std && *self->std ? parse_channel_values("std", self->std)
                              : (from_package ? from_package->std : std::vector<double>{}),
      1.0);
  if (self->crop && *self->crop) o.crop = parse_crop(self->crop);
  return o;
}

// memory:DMABuf caps may give the layout the DRM way (GStreamer >= 1.24 producers, or an app
// importing frames): format=DMA_DRM with drm-format="FOURCC[:0xMODIFIER]", or a drm-format field
// beside a plain format. Returns caps with the plain GStreamer format (a new reference); throws
// NotImplemented for tiled/compressed modifiers (no detiler on the CPU path) and InvalidArgument
// for fourccs without a GStreamer format or contradicting the format field.
static GstCaps *caps_with_plain_format(GstCaps *caps) {
  const GstStructure *structure = gst_caps_get_structure(caps, 0);
  const gchar *drm_text = gst_structure_get_string(structure, "drm-format");
  const gchar *format = gst_structure_get_string(structure, "format");
  const bool drm_placeholder = g_strcmp0(format, "DMA_DRM") == 0;
  if (!drm_text) {
    if (drm_placeholder)
      throw axstream::InvalidArgument(
          "caps with format=DMA_DRM have no drm-format field: expected e.g. drm-format=NV12");
    return gst_caps_ref(caps);
  }
  const hal::DrmFormat drm = hal::parse_drm_format(drm_text);
  hal::require_linear_modifier(drm,
                               std::string("axpreprocess input (drm-format=") + drm_text + ")");
  const GstVideoFormat mapped = gst_ax_video_format_from_drm_fourcc(drm.fourcc);
  if (mapped == GST_VIDEO_FORMAT_UNKNOWN)
    throw axstream::InvalidArgument(
        std::string("drm-format '") + drm_text + "' (" + hal::drm_fourcc_name(drm.fourcc) +
        ") has no GStreamer video format; axpreprocess reads " + AX_PREPROCESS_FORMATS);
  if (format && !drm_placeholder && gst_video_format_from_string(format) != mapped)
    throw axstream::InvalidArgument(std::string("drm-format '") + drm_text + "' is " +
                                    gst_video_format_to_string(mapped) + " but format is " +
                                    format + ": expected both to name the same layout");
  GstCaps *plain = gst_caps_copy(caps);
  GstStructure *out = gst_caps_get_structure(plain, 0);
  gst_structure_set(out, "format", G_TYPE_STRING, gst_video_format_to_string(mapped), nullptr);
  gst_structure_remove_field(out, "drm-format");
  return plain;
}

static gboolean gst_ax_preprocess_set_caps(GstBaseTransform *trans, GstCaps *incaps,
                                           GstCaps *outcaps) {
  auto *self = GST_AX_PREPROCESS(trans);
  GstAxPreprocessState *state = self->state;
  if (!state->model) return FALSE;  // start() failed and posted the error
  if (state->refused_caps && gst_caps_is_equal(incaps, state->refused_caps.get())) {
    GST_DEBUG_OBJECT(self, "refusing %" GST_PTR_FORMAT " again (error posted)", incaps);
    return FALSE;
  }
  // Every return FALSE below posts an error about these caps.
  state->refused_caps.reset(gst_caps_ref(incaps));
  GstCaps *video_caps = nullptr;
  try {
    video_caps = caps_with_plain_format(incaps);
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("axpreprocess cannot read these dmabuf frames"),
                      ("%s (caps %" GST_PTR_FORMAT ")", e.what(), incaps));
    return FALSE;
  }
  GstVideoInfo info;
  const bool parsed = gst_video_info_from_caps(&info, video_caps);
  gst_caps_unref(video_caps);
  if (!parsed) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("axpreprocess got caps it cannot parse"),
                      ("gst_video_info_from_caps failed on %" GST_PTR_FORMAT, incaps));
    return FALSE;
  }
  GstCapsFeatures *features = gst_caps_get_features(incaps, 0);
  state->dmabuf_caps =
      features && gst_caps_features_contains(features, GST_CAPS_FEATURE_MEMORY_DMABUF);
  const char *format_name = gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(&info));
  try {
    const pp::PixelFormat format = pp::pixel_format_from_string(format_name);
    pp::TensorSpec tensor = tensor_spec(state->model->inputs()[0], self->model);
    pp::Options options = make_options(self);
    if (format == pp::PixelFormat::NV12 || format == pp::PixelFormat::I420 ||
        format == pp::PixelFormat::YUY2 || format == pp::PixelFormat::UYVY)
      options.colorimetry = yuv_colorimetry(info);
    gsize device_size = tensor.size();
    std::unique_ptr<axstream::gst::PreambleInput> preamble;
    if (!state->package->preamble_graph.empty()) {
      preamble = std::make_unique<axstream::gst::PreambleInput>(
          *state->package, options.normalisation, options.color);
      tensor = preamble->pixel_spec();
      options = preamble->pixel_options(options);
      device_size = preamble->device_size();
    }
    auto preprocessor = std::make_unique<pp::Preprocessor>(
        format, GST_VIDEO_INFO_WIDTH(&info), GST_VIDEO_INFO_HEIGHT(&info), tensor, options);
    const pp::Geometry &g = preprocessor->geometry();
    state->transform = transform_of(g);

    if (!state->pool) {
      const gsize size = device_size;
      state->pool = gst_ax_tensor_pool_new(&size, 1, 2);
      if (!state->pool)
        throw axstream::InternalError("could not make a pool of " + std::to_string(size) +
                                      "-byte fd tensors (memfd_create failed)");
    }
    state->preprocessor = std::move(preprocessor);
    state->preamble = std::move(preamble);
    state->video_info = info;
    state->format = format;
    state->tensor = tensor;
    state->options = options;
    state->infer_next = true;  // new caps: the first frame in them is inferred
    state->refused_caps.reset();
    GST_INFO_OBJECT(self,
                    "%s %dx%d (%s %s range) -> tensor %dx%d (content %dx%d at %d,%d), colour %s",
                    format_name, GST_VIDEO_INFO_WIDTH(&info), GST_VIDEO_INFO_HEIGHT(&info),
                    pp::yuv_matrix_name(options.colorimetry.matrix),
                    pp::yuv_range_name(options.colorimetry.range), g.tensor_width, g.tensor_height,
                    g.content_width, g.content_height, g.offset_x, g.offset_y,
                    pp::color_order_name(options.color));
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                      ("model '%s' cannot take %s %dx%d frames: %s", self->model, format_name,
                       GST_VIDEO_INFO_WIDTH(&info), GST_VIDEO_INFO_HEIGHT(&info), e.what()),
                      ("axpreprocess set_caps on %" GST_PTR_FORMAT, incaps));
    return FALSE;
  }
  return TRUE;
}

// Upstream's ALLOCATION query: downstream answers first (axpreprocess passes frames on in place,
// so a sink's pool, e.g. scanout memory, is worth more than ours); when nobody downstream offers a
// pool, ours is proposed: frames in device-visible fd memory (GstAxDmaBufAllocator) with
// GstVideoMeta, so a decoder or source writes each frame once, straight into memory a device can
// import. memory:DMABuf caps get it only where the allocator really makes dmabufs.
static gboolean gst_ax_preprocess_propose_allocation(GstBaseTransform *trans,
                                                     GstQuery *decide_query, GstQuery *query) {
  auto *self = GST_AX_PREPROCESS(trans);
  if (!GST_BASE_TRANSFORM_CLASS(gst_ax_preprocess_parent_class)
           ->propose_allocation(trans, decide_query, query))
    GST_DEBUG_OBJECT(self, "downstream did not answer the allocation query");
  axstream::gst::drop_crop_meta_for_pixel_pairs(query);
  // Strided frames are fine: ask upstream for GstVideoMeta instead of a repacking copy.
  if (!gst_query_find_allocation_meta(query, GST_VIDEO_META_API_TYPE, nullptr))
    gst_query_add_allocation_meta(query, GST_VIDEO_META_API_TYPE, nullptr);
  GstCaps *caps = nullptr;
  gst_query_parse_allocation(query, &caps, nullptr);
  if (!caps || gst_query_get_n_allocation_pools(query) > 0) return TRUE;
  GstCapsFeatures *features = gst_caps_get_features(caps, 0);
  const bool dmabuf_caps =
      features && gst_caps_features_contains(features, GST_CAPS_FEATURE_MEMORY_DMABUF);
  if (dmabuf_caps && !gst_ax_dmabuf_allocator_makes_dmabufs()) {
    GST_DEBUG_OBJECT(self, "memory:DMABuf caps but no dmabuf provider here: no pool proposed");
    return TRUE;
  }
  GstBufferPool *pool = gst_ax_dmabuf_video_pool_new(caps, 0);
  if (!pool) {
    GST_DEBUG_OBJECT(self, "no video pool for %" GST_PTR_FORMAT, caps);
    return TRUE;
  }
  GstVideoInfo info;
  gst_video_info_from_caps(&info, caps);
  gst_query_add_allocation_pool(query, pool, guint(GST_VIDEO_INFO_SIZE(&info)), 0, 0);
  gst_object_unref(pool);
  GstAllocator *allocator = gst_ax_dmabuf_allocator_get();
  gst_query_add_allocation_param(query, allocator, nullptr);
  gst_object_unref(allocator);
  GST_DEBUG_OBJECT(self, "proposed a pool of fd-backed frames for %" GST_PTR_FORMAT, caps);
  return TRUE;
}

// A tensor made while the frame is mapped (the mapping holds a ref, so the buffer is not
// writable then); attached as a meta once the frame is unmapped.
struct PendingTensor {
  GstBuffer *tensors;
  gint roi_id;
  GstAxTransform transform;
};

// Runs `preprocessor` on `input` into a pooled tensor for `roi_id`, appended to `pending`.
static GstFlowReturn make_tensor(GstAxPreprocess *self, std::vector<PendingTensor> &pending,
                                 const pp::Preprocessor &preprocessor, const pp::Frame &input,
                                 gint roi_id, const GstAxTransform &transform) {
  GstAxPreprocessState *state = self->state;
  GstBuffer *tensors = nullptr;
  if (gst_buffer_pool_acquire_buffer(state->pool, &tensors, nullptr) != GST_FLOW_OK) {
    GST_ELEMENT_ERROR(self, RESOURCE, NO_SPACE_LEFT, ("axpreprocess ran out of tensor memory"),
                      ("gst_buffer_pool_acquire_buffer failed"));
    return GST_FLOW_ERROR;
  }
  GstMapInfo map;
  if (!gst_buffer_map(tensors, &map, GST_MAP_WRITE)) {
    gst_buffer_unref(tensors);
    GST_ELEMENT_ERROR(self, RESOURCE, WRITE, ("axpreprocess could not write a tensor"),
                      ("gst_buffer_map(WRITE) failed on the pooled tensor"));
    return GST_FLOW_ERROR;
  }
  GstFlowReturn ret = GST_FLOW_OK;
  try {
    if (state->preamble) {
      std::vector<int8_t> pixels(preprocessor.tensor().size());
      preprocessor.run(input, pixels.data());
      state->preamble->run(pixels.data(), reinterpret_cast<int8_t *>(map.data));
    } else {
      preprocessor.run(input, reinterpret_cast<int8_t *>(map.data));
    }
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(
        self, STREAM, FAILED, ("axpreprocess failed on a frame"),
        ("%s (roi %d): %s", state->preamble ? "Preprocessor::run + preamble" : "Preprocessor::run",
         roi_id, e.what()));
    ret = GST_FLOW_ERROR;
  }
  gst_buffer_unmap(tensors, &map);
  if (ret == GST_FLOW_OK)
    pending.push_back(PendingTensor{tensors, roi_id, transform});
  else
    gst_buffer_unref(tensors);
  return ret;
}

// Whether `label` is one of the comma-separated `classes` (every label when unset).
static bool class_selected(const gchar *classes, const gchar *label) {
  if (!classes || !*classes) return true;
  if (!label) return false;
  gchar **parts = g_strsplit(classes, ",", -1);
  bool found = false;
  for (gchar **p = parts; *p && !found; ++p) found = g_strcmp0(g_strstrip(*p), label) == 0;
  g_strfreev(parts);
  return found;
}

// roi=objects: one tensor per selected ROI, in meta order.
static GstFlowReturn preprocess_objects(GstAxPreprocess *self, GstBuffer *buffer,
                                        const pp::Frame &input,
                                        std::vector<PendingTensor> &pending) {
  GstAxPreprocessState *state = self->state;
  // A tensor names its object by ROI id, and axdecode attaches the results to the ROI with that
  // id. ROIs an application attached without setting ids all carry GStreamer's default (0), and
  // every object would get all their results: the repeats of an id get ids no ROI has.
  std::set<gint> ids;
  gint unused_id = -1;
  gpointer iter = nullptr;
  while (GstMeta *meta = gst_buffer_iterate_meta_filtered(
             buffer, &iter, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)) {
    auto *roi = reinterpret_cast<GstVideoRegionOfInterestMeta *>(meta);
    if (ids.insert(roi->id).second) continue;
    if (unused_id < 0) unused_id = axstream::gst::next_roi_id(buffer);
    GST_LOG_OBJECT(self, "roi id %d repeated: renumbered %d", roi->id, unused_id);
    roi->id = unused_id++;
  }
  std::vector<GstVideoRegionOfInterestMeta *> rois;
  iter = nullptr;
  while (GstMeta *meta = gst_buffer_iterate_meta_filtered(
             buffer, &iter, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)) {
    auto *roi = reinterpret_cast<GstVideoRegionOfInterestMeta *>(meta);
    if (!class_selected(self->object_class, g_quark_to_string(roi->roi_type))) continue;
    if (self->max_objects > 0 && rois.size() >= self->max_objects) break;
    rois.push_back(roi);
  }
  for (GstVideoRegionOfInterestMeta *roi : rois) {
    const gint id = roi->id;
    const GstAxKeypointsMeta *corners =
        self->rotated_crop ? gst_buffer_get_ax_keypoints_meta(buffer, id) : nullptr;
    try {
      if (corners && corners->n_points == 4) {
        std::array<pp::Point2, 4> points;
        float min_x = 1e30f, min_y = 1e30f;
        for (int i = 0; i < 4; ++i) {
          points[i] = {corners->points[2 * i], corners->points[2 * i + 1]};
          min_x = std::min(min_x, points[i].x);
          min_y = std::min(min_y, points[i].y);
        }
        const pp::RgbImage upright = pp::rotated_crop(input, points, state->options.colorimetry);
        pp::Options options = state->options;
        options.crop.reset();
        const pp::Preprocessor preprocessor(pp::PixelFormat::RGB, upright.width, upright.height,
                                            state->tensor, options);
        GstAxTransform t = transform_of(preprocessor.geometry());
        t.crop_x = std::max(0.0f, min_x);
        t.crop_y = std::max(0.0f, min_y);
        const GstFlowReturn ret = make_tensor(self, pending, preprocessor, upright.frame(), id, t);
        if (ret != GST_FLOW_OK) return ret;
        continue;
      }
      const int x0 = std::clamp(int(roi->x), 0, input.width);
      const int y0 = std::clamp(int(roi->y), 0, input.height);
      const int x1 = std::clamp(int(roi->x + roi->w), 0, input.width);
      const int y1 = std::clamp(int(roi->y + roi->h), 0, input.height);
      if (x1 - x0 < 1 || y1 - y0 < 1) {
        GST_LOG_OBJECT(self, "roi %d (%u,%u %ux%u) is outside the frame: skipped", id, roi->x,
                       roi->y, roi->w, roi->h);
        continue;
      }
      pp::Options options = state->options;
      options.crop = pp::Rect{x0, y0, x1 - x0, y1 - y0};
      const pp::Preprocessor preprocessor(state->format, input.width, input.height, state->tensor,
                                          options);
      const GstFlowReturn ret = make_tensor(self, pending, preprocessor, input, id,
                                            transform_of(preprocessor.geometry()));
      if (ret != GST_FLOW_OK) return ret;
    } catch (const std::exception &e) {
      GST_ELEMENT_ERROR(self, STREAM, FAILED, ("axpreprocess could not crop object %d", id),
                        ("roi %d (%u,%u %ux%u): %s", id, roi->x, roi->y, roi->w, roi->h, e.what()));
      return GST_FLOW_ERROR;
    }
  }
  GST_LOG_OBJECT(self, "%zu object tensors", rois.size());
  return GST_FLOW_OK;
}

// The rows [first_row, end_row) (in luma rows) of every plane of a frame held in fd memory,
// mapped read-only straight from the fds: only the pages holding those rows are mapped (with the
// DMA_BUF_IOCTL_SYNC read bracket on real dmabufs), never the whole frame. For dmabuf frames
// (memory:DMABuf caps, or dmabuf memory), which GStreamer would mmap whole on every frame.
class RowMappedFrame {
 public:
  // false when a plane's rows do not lie in one fd memory; the caller then maps the whole frame.
  bool map(GstBuffer *buffer, const GstVideoInfo &info, int first_row, int end_row,
           pp::Frame &frame) {
    const GstVideoFormatInfo *format = info.finfo;
    const GstVideoMeta *meta = gst_buffer_get_video_meta(buffer);
    const gsize buffer_size = gst_buffer_get_size(buffer);
    for (guint p = 0; p < GST_VIDEO_INFO_N_PLANES(&info) && p < 3; ++p) {
      guint component = 0;
      while (component + 1 < GST_VIDEO_FORMAT_INFO_N_COMPONENTS(format) &&
             GST_VIDEO_FORMAT_INFO_PLANE(format, component) != p)
        ++component;
      const int sub = GST_VIDEO_FORMAT_INFO_H_SUB(format, component);
      const int plane_height = GST_VIDEO_INFO_COMP_HEIGHT(&info, component);
      const int row0 = first_row >> sub;
      const int row1 = std::min(plane_height, (end_row + (1 << sub) - 1) >> sub);
      const gsize offset = meta ? meta->offset[p] : GST_VIDEO_INFO_PLANE_OFFSET(&info, p);
      const gint stride = meta ? meta->stride[p] : GST_VIDEO_INFO_PLANE_STRIDE(&info, p);
      if (stride <= 0 || row1 <= row0) return false;
      const gsize begin = offset + gsize(row0) * gsize(stride);
      if (begin >= buffer_size) return false;
      const gsize length = std::min(gsize(row1 - row0) * gsize(stride), buffer_size - begin);
      guint index = 0, count = 0;
      gsize skip = 0;
      if (!gst_buffer_find_memory(buffer, begin, length, &index, &count, &skip) || count != 1)
        return false;
      GstMemory *memory = gst_buffer_peek_memory(buffer, index);
      if (!gst_is_fd_memory(memory)) return false;
      auto mapping = std::make_unique<hal::BufferFdMapping>(
          gst_fd_memory_get_fd(memory), uint64_t(memory->offset + skip), length,
          hal::CpuAccess::read, "frame plane " + std::to_string(p));
      // The library addresses rows from the plane's origin; only rows row0..row1-1 are read.
      frame.planes[p] = reinterpret_cast<const uint8_t *>(
          reinterpret_cast<uintptr_t>(mapping->data()) - uintptr_t(row0) * uintptr_t(stride));
      frame.strides[p] = stride;
      mapped_bytes_ += length;
      planes_.push_back(std::move(mapping));
    }
    return true;
  }
  uint64_t mapped_bytes() const { return mapped_bytes_; }

 private:
  std::vector<std::unique_ptr<hal::BufferFdMapping>> planes_;
  uint64_t mapped_bytes_ = 0;
};

// Rows mapped around a crop beyond those it covers: bilinear sampling reads the row below a
// sample (and chroma rows are shared by two luma rows); 4 leaves room for wider filters.
constexpr int kRowMargin = 4;

static bool is_dmabuf_frame(GstAxPreprocessState *state, GstBuffer *buffer) {
  return state->dmabuf_caps || (gst_buffer_n_memory(buffer) > 0 &&
                                gst_is_dmabuf_memory(gst_buffer_peek_memory(buffer, 0)));
}

// Bytes a frame must hold for the planes `info` (or the frame's GstVideoMeta) describes: each
// plane's offset plus its rows up to the last pixel of the last one.
static gsize frame_bytes_needed(const GstVideoInfo &info, const GstVideoMeta *meta) {
  const GstVideoFormatInfo *format = info.finfo;
  gsize needed = 0;
  for (guint p = 0; p < GST_VIDEO_INFO_N_PLANES(&info); ++p) {
    guint component = 0;
    while (component + 1 < GST_VIDEO_FORMAT_INFO_N_COMPONENTS(format) &&
           GST_VIDEO_FORMAT_INFO_PLANE(format, component) != p)
      ++component;
    const gsize rows = gsize(GST_VIDEO_INFO_COMP_HEIGHT(&info, component));
    gsize row_bytes = gsize(GST_VIDEO_INFO_COMP_WIDTH(&info, component)) *
                      gsize(GST_VIDEO_FORMAT_INFO_PSTRIDE(format, component));
    // A plane's other components may reach further: YUY2/UYVY's last pair of an odd-width row
    // holds its U,V past 2 * width bytes.
    for (guint c = 0; c < GST_VIDEO_FORMAT_INFO_N_COMPONENTS(format); ++c)
      if (GST_VIDEO_FORMAT_INFO_PLANE(format, c) == p && GST_VIDEO_INFO_COMP_WIDTH(&info, c) > 0)
        row_bytes = std::max(row_bytes, gsize(GST_VIDEO_FORMAT_INFO_POFFSET(format, c)) +
                                            gsize(GST_VIDEO_INFO_COMP_WIDTH(&info, c) - 1) *
                                                gsize(GST_VIDEO_FORMAT_INFO_PSTRIDE(format, c)) +
                                            1);
    const gsize offset = meta ? meta->offset[p] : GST_VIDEO_INFO_PLANE_OFFSET(&info, p);
    const gint stride = meta ? meta->stride[p] : GST_VIDEO_INFO_PLANE_STRIDE(&info, p);
    if (rows == 0) continue;
    needed = std::max(needed, offset + (rows - 1) * gsize(std::max(stride, 0)) + row_bytes);
  }
  return needed;
}

// A flush, a new segment (a seek) or a new stream breaks the frame sequence: the next frame is
// inferred, as the first one is.
static gboolean gst_ax_preprocess_sink_event(GstBaseTransform *trans, GstEvent *event) {
  switch (GST_EVENT_TYPE(event)) {
    case GST_EVENT_FLUSH_STOP:
    case GST_EVENT_SEGMENT:
    case GST_EVENT_STREAM_START:
      GST_AX_PREPROCESS(trans)->state->infer_next = true;
      break;
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS(gst_ax_preprocess_parent_class)->sink_event(trans, event);
}

// inference-interval: whether this frame is one of the skipped ones (and counts it).
static bool skip_this_frame(GstAxPreprocess *self, guint *interval) {
  GST_OBJECT_LOCK(self);
  *interval = self->inference_interval;
  GST_OBJECT_UNLOCK(self);
  GstAxPreprocessState *state = self->state;
  // Counted from the last inferred frame, so an interval changed while playing applies at once.
  if (state->infer_next || state->frames_skipped + 1 >= *interval) {
    state->infer_next = false;
    state->frames_skipped = 0;
    return false;
  }
  ++state->frames_skipped;
  return true;
}

static GstFlowReturn gst_ax_preprocess_transform_ip(GstBaseTransform *trans, GstBuffer *buffer) {
  auto *self = GST_AX_PREPROCESS(trans);
  GstAxPreprocessState *state = self->state;
  if (!state->preprocessor) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("axpreprocess received a frame before caps"),
                      ("no caps were set, so the preprocessing is not configured"));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  guint interval = 1;
  if (skip_this_frame(self, &interval)) {
    gst_buffer_add_ax_inference_skipped_meta(buffer, self->model, self->roi == GST_AX_ROI_OBJECTS,
                                             interval);
    return GST_FLOW_OK;
  }
  // A short frame (a truncated dmabuf, an empty buffer) would be read beyond its end.
  const gsize frame_size = gst_buffer_get_size(buffer);
  const gsize needed = frame_bytes_needed(state->video_info, gst_buffer_get_video_meta(buffer));
  if (frame_size < needed) {
    GST_ELEMENT_ERROR(self, STREAM, FORMAT,
                      ("axpreprocess got a frame of %" G_GSIZE_FORMAT " bytes: %s %dx%d frames "
                       "need %" G_GSIZE_FORMAT,
                       frame_size, GST_VIDEO_INFO_NAME(&state->video_info),
                       GST_VIDEO_INFO_WIDTH(&state->video_info),
                       GST_VIDEO_INFO_HEIGHT(&state->video_info), needed),
                      ("%" GST_PTR_FORMAT " is smaller than its caps' planes (and GstVideoMeta) "
                       "say",
                       buffer));
    return GST_FLOW_ERROR;
  }
  pp::Frame input;
  input.format = state->format;
  input.width = GST_VIDEO_INFO_WIDTH(&state->video_info);
  input.height = GST_VIDEO_INFO_HEIGHT(&state->video_info);
  std::optional<RowMappedFrame> rows;
  GstVideoFrame frame;
  bool frame_mapped = false;
  // A cropped frame (GstVideoCropMeta) maps whole; its visible region is what the caps describe.
  const GstVideoCropMeta *crop_meta = gst_buffer_get_video_crop_meta(buffer);
  if (self->roi == GST_AX_ROI_FRAME && !crop_meta && is_dmabuf_frame(state, buffer)) {
    const pp::Rect &crop = state->preprocessor->geometry().crop;
    rows.emplace();
    try {
      if (!rows->map(buffer, state->video_info, std::max(0, crop.y - kRowMargin),
                     std::min(input.height, crop.y + crop.height + kRowMargin), input))
        rows.reset();
    } catch (const std::exception &e) {
      GST_ELEMENT_ERROR(self, RESOURCE, READ, ("axpreprocess could not read a dmabuf frame"),
                        ("mapping the rows it reads: %s", e.what()));
      return GST_FLOW_ERROR;
    }
    if (rows) state->bytes_mapped += rows->mapped_bytes();
  }
  if (!rows) {
    if (!gst_video_frame_map(&frame, &state->video_info, buffer, GST_MAP_READ)) {
      GST_ELEMENT_ERROR(self, RESOURCE, READ, ("axpreprocess could not read a video frame"),
                        ("gst_video_frame_map(READ) failed on %" GST_PTR_FORMAT, buffer));
      return GST_FLOW_ERROR;
    }
    frame_mapped = true;
    std::array<gsize, GST_VIDEO_MAX_PLANES> crop_offsets{};
    if (crop_meta) {
      std::string error;
      crop_offsets =
          axstream::gst::video_crop_offsets(frame, *crop_meta, input.width, input.height, error);
      if (!error.empty()) {
        gst_video_frame_unmap(&frame);
        GST_ELEMENT_ERROR(self, STREAM, FORMAT,
                          ("axpreprocess cannot read the frame's crop: %s", error.c_str()),
                          ("GstVideoCropMeta on %" GST_PTR_FORMAT, buffer));
        return GST_FLOW_ERROR;
      }
    }
    for (guint p = 0; p < GST_VIDEO_FRAME_N_PLANES(&frame) && p < 3; ++p) {
      input.planes[p] =
          static_cast<const uint8_t *>(GST_VIDEO_FRAME_PLANE_DATA(&frame, p)) + crop_offsets[p];
      input.strides[p] = GST_VIDEO_FRAME_PLANE_STRIDE(&frame, p);
    }
    state->bytes_mapped += gst_buffer_get_size(buffer);
  }

  std::vector<PendingTensor> pending;
  GstFlowReturn ret;
  if (self->roi == GST_AX_ROI_OBJECTS) {
    ret = preprocess_objects(self, buffer, input, pending);
  } else {
    ret = make_tensor(self, pending, *state->preprocessor, input, -1, state->transform);
  }
  if (frame_mapped) gst_video_frame_unmap(&frame);
  rows.reset();
  for (const PendingTensor &p : pending) {
    if (ret == GST_FLOW_OK)
      gst_buffer_add_ax_tensor_meta(buffer, GST_AX_TENSOR_INPUT, self->model, p.roi_id,
                                    &p.transform, p.tensors);
    gst_buffer_unref(p.tensors);  // the meta holds it; it goes back to the pool with the meta
  }
  return ret;
}

static void gst_ax_preprocess_get_property(GObject *object, guint prop_id, GValue *value,
                                           GParamSpec *pspec) {
  auto *self = GST_AX_PREPROCESS(object);
  GST_OBJECT_LOCK(self);
  if (prop_id == PROP_BYTES_MAPPED)
    g_value_set_uint64(value, self->state->bytes_mapped.load());
  else if (!axstream::gst::get_field_property(self, kFieldProperties, prop_id, value))
    G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
  GST_OBJECT_UNLOCK(self);
}

static void gst_ax_preprocess_finalize(GObject *object) {
  auto *self = GST_AX_PREPROCESS(object);
  self->state->release_pool();
  delete self->state;
  axstream::gst::free_field_properties(self, kFieldProperties);
  G_OBJECT_CLASS(gst_ax_preprocess_parent_class)->finalize(object);
}

// What the tensor is made from and how: the package, resize, normalisation, colour order, crop.
static void gst_ax_preprocess_install_tensor_properties(GObjectClass *gobject_class) {
  auto ready_flags = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                              GST_PARAM_MUTABLE_READY);
  g_object_class_install_property(
      gobject_class, PROP_MODEL,
      g_param_spec_string("model", "Model package",
                          "Model package directory (or its model.json) whose input tensor to "
                          "make; required",
                          DEFAULT_PROP_MODEL, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_RESIZE,
      g_param_spec_enum("resize", "Resize mode",
                        "How the frame (or crop) is scaled to the tensor: letterbox keeps the "
                        "aspect ratio and centres it with a pad-value border, stretch scales each "
                        "axis independently, pad-right fills the height keeping the aspect ratio "
                        "(width capped) and pads the right with the normalised zero (PaddleOCR's "
                        "text recogniser input)",
                        gst_ax_resize_mode_get_type(), DEFAULT_PROP_RESIZE, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_PAD_VALUE,
      g_param_spec_uint("pad-value", "Letterbox pad value",
                        "Pixel value (0-255, every channel) of the letterbox border, normalised "
                        "and quantised like the image",
                        0, 255, DEFAULT_PROP_PAD_VALUE, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_MEAN,
      g_param_spec_string("mean", "Mean",
                          "Per-channel mean in the model's channel order after pixel scaling, "
                          "e.g. \"0.485,0.456,0.406\" (one value: every channel); unset: the "
                          "package's input_preprocess mean (0 when absent)",
                          DEFAULT_PROP_MEAN, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_STD,
      g_param_spec_string("std", "Standard deviation",
                          "Per-channel std, e.g. \"0.229,0.224,0.225\" (one value: every "
                          "channel); float = (pixel * pixel_scale - mean) / std; unset: the "
                          "package's input_preprocess std (1 when absent)",
                          DEFAULT_PROP_STD, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_COLOR_FORMAT,
      g_param_spec_string("color-format", "Colour format",
                          "Channel order the model expects: RGB, BGR or GRAY; unset: the "
                          "package's input_preprocess color_format (RGB when absent)",
                          DEFAULT_PROP_COLOR_FORMAT, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_CROP,
      g_param_spec_string("crop", "Crop",
                          "Frame region \"x,y,width,height\" in pixels the tensor is made from; "
                          "unset: the whole frame",
                          DEFAULT_PROP_CROP, ready_flags));
}

// Which regions become tensors with roi=objects.
static void gst_ax_preprocess_install_roi_properties(GObjectClass *gobject_class) {
  auto ready_flags = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                              GST_PARAM_MUTABLE_READY);
  g_object_class_install_property(
      gobject_class, PROP_ROI,
      g_param_spec_enum("roi", "Region of interest",
                        "frame: one tensor per frame; objects: one tensor per detected object "
                        "(GstVideoRegionOfInterestMeta from an upstream axdecode), each tagged "
                        "with the ROI's id for secondary inference",
                        gst_ax_roi_mode_get_type(), DEFAULT_PROP_ROI, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_OBJECT_CLASS,
      g_param_spec_string("object-class", "Object classes",
                          "With roi=objects: comma-separated labels (ROI types) to crop, e.g. "
                          "\"face\" or \"text\"; unset: every ROI",
                          DEFAULT_PROP_OBJECT_CLASS, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_MAX_OBJECTS,
      g_param_spec_uint("max-objects", "Maximum objects",
                        "With roi=objects: most ROIs cropped per frame, first ones in meta order "
                        "(0: no limit)",
                        0, G_MAXUINT, DEFAULT_PROP_MAX_OBJECTS, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_ROTATED_CROP,
      g_param_spec_boolean("rotated-crop", "Rotated crop",
                           "With roi=objects: cut ROIs that have exactly 4 keypoints (dbnet's "
                           "rotated text box corners) along that rotated rectangle, warped "
                           "upright; false: always the axis-aligned box",
                           DEFAULT_PROP_ROTATED_CROP, ready_flags));
}

// Which frames are preprocessed, and what reading them cost.
static void gst_ax_preprocess_install_frame_properties(GObjectClass *gobject_class) {
  g_object_class_install_property(
      gobject_class, PROP_INFERENCE_INTERVAL,
      g_param_spec_uint(
          "inference-interval", "Inference interval",
          "Make a tensor for every Nth frame only (frames 0, N, 2N, ... of the stream; 1: every "
          "frame; 0 is refused): the frames between skip preprocessing, inference and decoding "
          "and pass at once with the ax-inference-skipped marker. An axtracker downstream moves "
          "its tracks by their motion estimate on those frames and attaches them as predicted "
          "objects (its max-age counts inferred frames). The count starts over after a flush, "
          "seek, new stream or new caps; a change while playing applies from the next frame",
          1, G_MAXUINT, DEFAULT_PROP_INFERENCE_INTERVAL,
          static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                   GST_PARAM_MUTABLE_PLAYING)));
  g_object_class_install_property(
      gobject_class, PROP_BYTES_MAPPED,
      g_param_spec_uint64("bytes-mapped", "Frame bytes mapped",
                          "Bytes of input frame memory mapped for reading since start: dmabuf "
                          "frames (memory:DMABuf caps or dmabuf memory, roi=frame) map only the "
                          "rows of each plane the crop reads (plus 4 rows of filter margin); "
                          "other frames count whole",
                          0, G_MAXUINT64, 0,
                          static_cast<GParamFlags>(G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
}

static void gst_ax_preprocess_class_init(GstAxPreprocessClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS(klass);
  gobject_class->set_property =
      axstream::gst::set_field_properties<GstAxPreprocess, kFieldProperties>;
  gobject_class->get_property = gst_ax_preprocess_get_property;
  gobject_class->finalize = gst_ax_preprocess_finalize;
  gst_ax_preprocess_install_tensor_properties(gobject_class);
  gst_ax_preprocess_install_roi_properties(gobject_class);
  gst_ax_preprocess_install_frame_properties(gobject_class);

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Axelera inference preprocessing", "Filter/Converter/Video",
      "Makes a model's quantised, padded input tensor from each video frame (crop, resize, "
      "colour conversion, normalisation) and attaches it as a tensor meta; video passes unchanged",
      "axstream developers");
  trans_class->start = GST_DEBUG_FUNCPTR(gst_ax_preprocess_start);
  trans_class->stop = GST_DEBUG_FUNCPTR(gst_ax_preprocess_stop);
  trans_class->set_caps = GST_DEBUG_FUNCPTR(gst_ax_preprocess_set_caps);
  trans_class->propose_allocation = GST_DEBUG_FUNCPTR(gst_ax_preprocess_propose_allocation);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR(gst_ax_preprocess_transform_ip);
  trans_class->sink_event = GST_DEBUG_FUNCPTR(gst_ax_preprocess_sink_event);
  trans_class->transform_ip_on_passthrough = FALSE;
  gst_type_mark_as_plugin_api(gst_ax_resize_mode_get_type(), GstPluginAPIFlags(0));
  gst_type_mark_as_plugin_api(gst_ax_roi_mode_get_type(), GstPluginAPIFlags(0));
  GST_DEBUG_CATEGORY_INIT(gst_ax_preprocess_debug, "axpreprocess", 0,
                          "axstream frame -> tensor preprocessing");
}

static void gst_ax_preprocess_init(GstAxPreprocess *self) {
  axstream::gst::report_refused_caps(GST_BASE_TRANSFORM_SINK_PAD(self),
                                     GST_BASE_TRANSFORM_SRC_PAD(self));
  self->model = nullptr;
  self->resize = DEFAULT_PROP_RESIZE;
  self->pad_value = DEFAULT_PROP_PAD_VALUE;
  self->mean = nullptr;
  self->std = nullptr;
  self->color_format = nullptr;
  self->crop = nullptr;
  self->roi = DEFAULT_PROP_ROI;
  self->object_class = nullptr;
  self->max_objects = DEFAULT_PROP_MAX_OBJECTS;
  self->rotated_crop = DEFAULT_PROP_ROTATED_CROP;
  self->inference_interval = DEFAULT_PROP_INFERENCE_INTERVAL;
  self->state = new GstAxPreprocessState();
  gst_base_transform_set_in_place(GST_BASE_TRANSFORM(self), TRUE);
}
