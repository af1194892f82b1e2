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
 * Colour order, pixel scale, mean and std come from the package's `input_preprocess`
 * (docs/model-package.md; RGB, 1/255, 0, 1 when absent); the properties override them.
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
 * |[
 * gst-launch-1.0 videotestsrc num-buffers=30 ! video/x-raw,format=NV12,width=1280,height=720 ! \
 *   axpreprocess model=build/tests/data/models/resnet_tiny ! fakesink
 * gst-launch-1.0 filesrc \
 *   location=~/.cache/axstream/opencv-doc/usr/share/doc/opencv-doc/examples/data/Megamind.avi ! \
 *   decodebin ! videoconvert ! \
 *   axpreprocess model=~/.cache/axstream/models/blazeface-front resize=letterbox pad-value=0 ! \
 *   axinference model=~/.cache/axstream/models/blazeface-front ! axdecode decoder=blazeface !
 * fakesink
 * ]|
 */
#include "gstaxpreprocess.h"

#include <gst/video/video.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "axstream/gst/axresultmeta.h"
#include "axstream/gst/axtensormeta.h"
#include "axstream/gst/axtensorpool.h"
#include "axstream/preprocess/preprocess.h"
#include "axstream/preprocess/rotated_crop.h"
#include "axstream/runtime/model_package.h"
#include "axstream/runtime/runtime.h"

GST_DEBUG_CATEGORY_STATIC(gst_ax_preprocess_debug);
#define GST_CAT_DEFAULT gst_ax_preprocess_debug

namespace pp = axstream::preprocess;
namespace rt = axstream::runtime;

typedef enum {
  GST_AX_RESIZE_LETTERBOX = 0,
  GST_AX_RESIZE_STRETCH = 1,
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
};

#define AX_PREPROCESS_FORMATS "{ NV12, I420, RGB, BGR, RGBA, BGRA, RGBx, BGRx, GRAY8 }"
#define AX_PREPROCESS_CAPS                   \
  GST_VIDEO_CAPS_MAKE(AX_PREPROCESS_FORMATS) \
  ";" GST_VIDEO_CAPS_MAKE_WITH_FEATURES("memory:DMABuf", AX_PREPROCESS_FORMATS)

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(AX_PREPROCESS_CAPS));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(AX_PREPROCESS_CAPS));

// C++ state, created in _init and deleted in finalize.
struct GstAxPreprocessState {
  std::shared_ptr<rt::Context> context;
  std::shared_ptr<rt::Model> model;
  std::shared_ptr<const rt::ModelPackage> package;
  std::unique_ptr<pp::Preprocessor> preprocessor;
  GstVideoInfo video_info{};
  GstAxTransform transform{};
  GstBufferPool *pool = nullptr;
  // For roi=objects: what each per-ROI Preprocessor is made from.
  pp::PixelFormat format = pp::PixelFormat::RGB;
  pp::TensorSpec tensor{};
  pp::Options options{};

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
  GstAxPreprocessState *state;
};

G_DEFINE_TYPE(GstAxPreprocess, gst_ax_preprocess, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE(axpreprocess, "axpreprocess", GST_RANK_NONE, GST_TYPE_AX_PREPROCESS);

static GType gst_ax_resize_mode_get_type(void) {
  static GType type = 0;
  if (g_once_init_enter(&type)) {
    static const GEnumValue values[] = {
        {GST_AX_RESIZE_LETTERBOX, "Scale keeping the aspect ratio, border filled with pad-value",
         "letterbox"},
        {GST_AX_RESIZE_STRETCH, "Scale each axis to the tensor size (aspect not kept)", "stretch"},
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

std::array<double, 3> per_channel(const std::vector<double> &values, double fallback) {
  if (values.empty()) return {fallback, fallback, fallback};
  if (values.size() == 1) return {values[0], values[0], values[0]};
  return {values[0], values[1], values[2]};
}

// The device input as the preprocessing library sees it; throws InvalidArgument when the
// tensor is not a batch-1 int8 NHWC image.
pp::TensorSpec tensor_spec(const rt::TensorInfo &info, const std::string &model) {
  std::ostringstream shape;
  for (size_t i = 0; i < info.shape.size(); ++i) shape << (i ? "," : "") << info.shape[i];
  if (info.shape.size() != 4 || info.shape[0] != 1 || info.dtype != axstream::engine::DType::i8)
    throw axstream::InvalidArgument("input 0 '" + info.name + "' of model '" + model +
                                    "' has shape (" + shape.str() +
                                    "): axpreprocess expects a batch-1 int8 NHWC image tensor");
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

}  // namespace

static gboolean gst_ax_preprocess_start(GstBaseTransform *trans) {
  auto *self = GST_AX_PREPROCESS(trans);
  GstAxPreprocessState *state = self->state;
  if (!self->model || !*self->model) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("axpreprocess needs a model package"),
                      ("the 'model' property is not set: set it to a package directory or its "
                       "model.json"));
    return FALSE;
  }
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
                      ("axpreprocess could not load model package '%s'", self->model),
                      ("Context::load_model: %s", e.what()));
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
  state->preprocessor.reset();
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
  o.resize =
      self->resize == GST_AX_RESIZE_STRETCH ? pp::ResizeMode::Stretch : pp::ResizeMode::Letterbox;
  o.pad_value = uint8_t(self->pad_value);
  o.color = pp::color_order_from_string(
      self->color_format && *self->color_format
          ? self->color_format
          : (from_package ? from_package->color_format : std::string("RGB")));
  o.normalisation.pixel_scale = from_package ? from_package->pixel_scale : 1.0 / 255.0;
  o.normalisation.mean = per_channel(
      self->mean && *self->mean ? parse_numbers("mean", self->mean, 1, 3)
                                : (from_package ? from_package->mean : std::vector<double>{}),
      0.0);
  o.normalisation.std = per_channel(
      self->std && *self->std ? parse_numbers("std", self->std, 1, 3)
                              : (from_package ? from_package->std : std::vector<double>{}),
      1.0);
  if (self->crop && *self->crop) {
    const auto r = parse_numbers("crop", self->crop, 4, 4);
    o.crop = pp::Rect{int(r[0]), int(r[1]), int(r[2]), int(r[3])};
  }
  return o;
}

static gboolean gst_ax_preprocess_set_caps(GstBaseTransform *trans, GstCaps *incaps,
                                           GstCaps *outcaps) {
  auto *self = GST_AX_PREPROCESS(trans);
  GstAxPreprocessState *state = self->state;
  if (!state->model) return FALSE;  // start() failed and posted the error
  GstVideoInfo info;
  if (!gst_video_info_from_caps(&info, incaps)) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("axpreprocess got caps it cannot parse"),
                      ("gst_video_info_from_caps failed on %" GST_PTR_FORMAT, incaps));
    return FALSE;
  }
  const char *format_name = gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(&info));
  try {
    const pp::PixelFormat format = pp::pixel_format_from_string(format_name);
    const pp::TensorSpec tensor = tensor_spec(state->model->inputs()[0], self->model);
    const pp::Options options = make_options(self);
    auto preprocessor = std::make_unique<pp::Preprocessor>(
        format, GST_VIDEO_INFO_WIDTH(&info), GST_VIDEO_INFO_HEIGHT(&info), tensor, options);
    const pp::Geometry &g = preprocessor->geometry();
    GstAxTransform &t = state->transform;
    t.crop_x = g.crop.x;
    t.crop_y = g.crop.y;
    t.crop_width = g.crop.width;
    t.crop_height = g.crop.height;
    t.scale_x = g.scale_x;
    t.scale_y = g.scale_y;
    t.offset_x = g.offset_x;
    t.offset_y = g.offset_y;
    t.tensor_width = g.tensor_width;
    t.tensor_height = g.tensor_height;

    if (!state->pool) {
      const gsize size = tensor.size();
      state->pool = gst_ax_tensor_pool_new(&size, 1, 2);
      if (!state->pool)
        throw axstream::InternalError("could not make a pool of " + std::to_string(size) +
                                      "-byte fd tensors (memfd_create failed)");
    }
    state->preprocessor = std::move(preprocessor);
    state->video_info = info;
    state->format = format;
    state->tensor = tensor;
    state->options = options;
    GST_INFO_OBJECT(self, "%s %dx%d -> tensor %dx%d (content %dx%d at %d,%d), colour %s",
                    format_name, GST_VIDEO_INFO_WIDTH(&info), GST_VIDEO_INFO_HEIGHT(&info),
                    g.tensor_width, g.tensor_height, g.content_width, g.content_height, g.offset_x,
                    g.offset_y, pp::color_order_name(options.color));
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION,
                      ("model '%s' cannot take %s %dx%d frames", self->model, format_name,
                       GST_VIDEO_INFO_WIDTH(&info), GST_VIDEO_INFO_HEIGHT(&info)),
                      ("%s", e.what()));
    return FALSE;
  }
  return TRUE;
}

static gboolean gst_ax_preprocess_propose_allocation(GstBaseTransform *trans,
                                                     GstQuery *decide_query, GstQuery *query) {
  // Strided frames are fine: ask upstream for GstVideoMeta instead of a repacking copy.
  gst_query_add_allocation_meta(query, GST_VIDEO_META_API_TYPE, nullptr);
  return GST_BASE_TRANSFORM_CLASS(gst_ax_preprocess_parent_class)
      ->propose_allocation(trans, decide_query, query);
}

static GstAxTransform transform_of(const pp::Geometry &g) {
  GstAxTransform t{};
  t.crop_x = g.crop.x;
  t.crop_y = g.crop.y;
  t.crop_width = g.crop.width;
  t.crop_height = g.crop.height;
  t.scale_x = g.scale_x;
  t.scale_y = g.scale_y;
  t.offset_x = g.offset_x;
  t.offset_y = g.offset_y;
  t.tensor_width = g.tensor_width;
  t.tensor_height = g.tensor_height;
  return t;
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
    preprocessor.run(input, reinterpret_cast<int8_t *>(map.data));
  } catch (const std::exception &e) {
    GST_ELEMENT_ERROR(self, STREAM, FAILED, ("axpreprocess failed on a frame"),
                      ("Preprocessor::run (roi %d): %s", roi_id, e.what()));
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
  std::vector<GstVideoRegionOfInterestMeta *> rois;
  gpointer iter = nullptr;
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
        const pp::RgbImage upright = pp::rotated_crop(input, points);
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

static GstFlowReturn gst_ax_preprocess_transform_ip(GstBaseTransform *trans, GstBuffer *buffer) {
  auto *self = GST_AX_PREPROCESS(trans);
  GstAxPreprocessState *state = self->state;
  if (!state->preprocessor) {
    GST_ELEMENT_ERROR(self, CORE, NEGOTIATION, ("axpreprocess received a frame before caps"),
                      ("no caps were set, so the preprocessing is not configured"));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  GstVideoFrame frame;
  if (!gst_video_frame_map(&frame, &state->video_info, buffer, GST_MAP_READ)) {
    GST_ELEMENT_ERROR(self, RESOURCE, READ, ("axpreprocess could not read a video frame"),
                      ("gst_video_frame_map(READ) failed on %" GST_PTR_FORMAT, buffer));
    return GST_FLOW_ERROR;
  }
  pp::Frame input;
  input.format =
      pp::pixel_format_from_string(gst_video_format_to_string(GST_VIDEO_FRAME_FORMAT(&frame)));
  input.width = GST_VIDEO_FRAME_WIDTH(&frame);
  input.height = GST_VIDEO_FRAME_HEIGHT(&frame);
  for (guint p = 0; p < GST_VIDEO_FRAME_N_PLANES(&frame) && p < 3; ++p) {
    input.planes[p] = static_cast<const uint8_t *>(GST_VIDEO_FRAME_PLANE_DATA(&frame, p));
    input.strides[p] = GST_VIDEO_FRAME_PLANE_STRIDE(&frame, p);
  }

  std::vector<PendingTensor> pending;
  GstFlowReturn ret;
  if (self->roi == GST_AX_ROI_OBJECTS) {
    ret = preprocess_objects(self, buffer, input, pending);
  } else {
    ret = make_tensor(self, pending, *state->preprocessor, input, -1, state->transform);
  }
  gst_video_frame_unmap(&frame);
  for (const PendingTensor &p : pending) {
    if (ret == GST_FLOW_OK)
      gst_buffer_add_ax_tensor_meta(buffer, GST_AX_TENSOR_INPUT, self->model, p.roi_id,
                                    &p.transform, p.tensors);
    gst_buffer_unref(p.tensors);  // the meta holds it; it goes back to the pool with the meta
  }
  return ret;
}

static void gst_ax_preprocess_set_property(GObject *object, guint prop_id, const GValue *value,
                                           GParamSpec *pspec) {
  auto *self = GST_AX_PREPROCESS(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_MODEL:
      g_free(self->model);
      self->model = g_value_dup_string(value);
      break;
    case PROP_RESIZE:
      self->resize = g_value_get_enum(value);
      break;
    case PROP_PAD_VALUE:
      self->pad_value = g_value_get_uint(value);
      break;
    case PROP_MEAN:
      g_free(self->mean);
      self->mean = g_value_dup_string(value);
      break;
    case PROP_STD:
      g_free(self->std);
      self->std = g_value_dup_string(value);
      break;
    case PROP_COLOR_FORMAT:
      g_free(self->color_format);
      self->color_format = g_value_dup_string(value);
      break;
    case PROP_CROP:
      g_free(self->crop);
      self->crop = g_value_dup_string(value);
      break;
    case PROP_ROI:
      self->roi = g_value_get_enum(value);
      break;
    case PROP_OBJECT_CLASS:
      g_free(self->object_class);
      self->object_class = g_value_dup_string(value);
      break;
    case PROP_MAX_OBJECTS:
      self->max_objects = g_value_get_uint(value);
      break;
    case PROP_ROTATED_CROP:
      self->rotated_crop = g_value_get_boolean(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_ax_preprocess_get_property(GObject *object, guint prop_id, GValue *value,
                                           GParamSpec *pspec) {
  auto *self = GST_AX_PREPROCESS(object);
  GST_OBJECT_LOCK(self);
  switch (prop_id) {
    case PROP_MODEL:
      g_value_set_string(value, self->model);
      break;
    case PROP_RESIZE:
      g_value_set_enum(value, self->resize);
      break;
    case PROP_PAD_VALUE:
      g_value_set_uint(value, self->pad_value);
      break;
    case PROP_MEAN:
      g_value_set_string(value, self->mean);
      break;
    case PROP_STD:
      g_value_set_string(value, self->std);
      break;
    case PROP_COLOR_FORMAT:
      g_value_set_string(value, self->color_format);
      break;
    case PROP_CROP:
      g_value_set_string(value, self->crop);
      break;
    case PROP_ROI:
      g_value_set_enum(value, self->roi);
      break;
    case PROP_OBJECT_CLASS:
      g_value_set_string(value, self->object_class);
      break;
    case PROP_MAX_OBJECTS:
      g_value_set_uint(value, self->max_objects);
      break;
    case PROP_ROTATED_CROP:
      g_value_set_boolean(value, self->rotated_crop);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK(self);
}

static void gst_ax_preprocess_finalize(GObject *object) {
  auto *self = GST_AX_PREPROCESS(object);
  self->state->release_pool();
  delete self->state;
  g_free(self->model);
  g_free(self->mean);
  g_free(self->std);
  g_free(self->color_format);
  g_free(self->crop);
  g_free(self->object_class);
  G_OBJECT_CLASS(gst_ax_preprocess_parent_class)->finalize(object);
}

static void gst_ax_preprocess_class_init(GstAxPreprocessClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS(klass);
  gobject_class->set_property = gst_ax_preprocess_set_property;
  gobject_class->get_property = gst_ax_preprocess_get_property;
  gobject_class->finalize = gst_ax_preprocess_finalize;

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
                        "axis independently",
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
  trans_class->transform_ip_on_passthrough = FALSE;
  gst_type_mark_as_plugin_api(gst_ax_resize_mode_get_type(), GstPluginAPIFlags(0));
  gst_type_mark_as_plugin_api(gst_ax_roi_mode_get_type(), GstPluginAPIFlags(0));
  GST_DEBUG_CATEGORY_INIT(gst_ax_preprocess_debug, "axpreprocess", 0,
                          "axstream frame -> tensor preprocessing");
}

static void gst_ax_preprocess_init(GstAxPreprocess *self) {
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
  self->state = new GstAxPreprocessState();
  gst_base_transform_set_in_place(GST_BASE_TRANSFORM(self), TRUE);
}
