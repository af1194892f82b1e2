/**
 * SECTION:element-axdecode
 * @title: axdecode
 *
 * Turns the raw device output tensors axinference attaches (GstAxTensorMeta of kind
 * GST_AX_TENSOR_OUTPUT) into results: the tensors are converted to the float model's outputs
 * (depad, dequantise, layout, postamble; see docs/model-package.md), decoded by the decoder
 * named in `decoder`, and mapped back to frame pixels through the preprocess geometry. Each
 * detection becomes a GstVideoRegionOfInterestMeta (roi_type = label) with an "ax-detection"
 * parameter structure (label, confidence, class-id, keypoints), the same values in a
 * GstAxDetectionMeta (it survives videoscale and videoconvert, which drop the parameters) and a
 * GstAxKeypointsMeta when it has keypoints; classifications become a GstAxClassificationMeta (and,
 * for a ROI, an "ax-classification" parameter on that ROI); recognised text (ctc) becomes "text"
 * and "text-confidence" in the "ax-detection" parameters and GstAxDetectionMeta of the ROI it was
 * read from. See
 * axstream/gst/axresultmeta.h.
 *
 * When the package's outputs exist in int8 (no postamble, or one that only moves data) and the
 * decoder has an int8 path, frames are decoded without dequantising every output
 * (`int8-fast-path`): scores are compared with thresholds precomputed in the int8 domain,
 * sigmoids come from a 256-entry table, and only candidates are dequantised — with results
 * identical to the float path. A postamble that also applies a Sigmoid to whole outputs (YOLO
 * heads, SSD scores, a DBNet map) takes that path too when the decoder can apply the sigmoid
 * itself (yolov5 raw heads with `activations=sigmoid`, ssd with `scores=none`, dbnet): it then
 * decodes the logits, with the same results up to a score exactly at the threshold. So does one
 * that concatenates differently quantised core outputs (yolov8 DFL + class heads, SSD's per-level
 * loc and conf heads) when the decoder takes them as parts (yolov8, ssd), each part thresholded
 * in its own int8 domain.
 * `decoder-config` carries decoder settings such as SSD prior boxes.
 *
 * Frames without output tensors pass unchanged, among them those axpreprocess's
 * `inference-interval` skipped (marked `ax-inference-skipped`): axdecode needs no interval of its
 * own, as the skipping upstream leaves it nothing to decode.
 *
 * |[
 * D=~/.cache/axstream/opencv-doc/usr/share/doc/opencv-doc/examples/data
 * M=~/.cache/axstream/models/blazeface-front
 * gst-launch-1.0 filesrc location=$D/Megamind.avi ! decodebin ! \
 *   axpreprocess model=$M ! axinference model=$M ! \
 *   axdecode decoder=blazeface conf-threshold=0.6 ! axoverlay ! videoconvert ! autovideosink
 * ]|
 */
#include "gstaxdecode.h"

#include <gst/video/video.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ax_detection_values.h"
#include "ax_field_properties.h"
#include "ax_live_check.h"
#include "ax_refused_caps.h"
#include "ax_transform.h"
#include "axstream/decoders/decoder.h"
#include "axstream/decoders/output_converter.h"
#include "axstream/gst/axresultmeta.h"
#include "axstream/gst/axtensormeta.h"
#include "axstream/runtime/model_package.h"

GST_DEBUG_CATEGORY_STATIC(gst_ax_decode_debug);
#define GST_CAT_DEFAULT gst_ax_decode_debug

#define DEFAULT_PROP_DECODER "classification"
#define DEFAULT_PROP_LABELS nullptr
#define DEFAULT_PROP_CONF_THRESHOLD -1.0
#define DEFAULT_PROP_NMS_IOU -1.0
#define DEFAULT_PROP_MAX_DETECTIONS 100
#define DEFAULT_PROP_TOP_K 5
#define DEFAULT_PROP_SOFTMAX FALSE
#define DEFAULT_PROP_MODEL nullptr
#define DEFAULT_PROP_INT8_FAST_PATH TRUE
#define DEFAULT_PROP_DECODER_CONFIG nullptr

enum {
  PROP_0,
  PROP_DECODER,
  PROP_LABELS,
  PROP_CONF_THRESHOLD,
  PROP_NMS_IOU,
  PROP_MAX_DETECTIONS,
  PROP_TOP_K,
  PROP_SOFTMAX,
  PROP_MODEL,
  PROP_INT8_FAST_PATH,
  PROP_DECODER_CONFIG,
};

namespace {
namespace dec = axstream::decoders;

// What decoding one model's outputs needs, made on the model's first buffer.
struct ModelDecoding {
  std::unique_ptr<dec::OutputConverter> converter;
  bool outputs_checked = false;
  bool int8_path = false;  // decode_quantized() from the second buffer on
  // model unset and decoder classification: a model of several outputs (a cascade's detector)
  // is skipped.
  bool not_for_decoder = false;
  // The int8 path's decoder when the postamble's sigmoid is left to it (Decoder::for_logits);
  // null: the element's decoder.
  std::unique_ptr<dec::Decoder> logits_decoder;
  // The int8 path's views of the outputs, made on one buffer and pointed at each next one's
  // (OutputConverter::refresh_views) rather than rebuilt per frame.
  std::vector<dec::QuantizedTensor> views;
};
}  // namespace

struct GstAxDecodeState {
  std::unique_ptr<dec::Decoder> decoder;
  std::string model_key;  // package_key of the model property; empty when unset
  std::map<std::string, ModelDecoding> models;  // by model package path
  // The last output meta's model string and its package_key, so a stream of one model makes
  // no key per frame (model property unset).
  std::string last_meta_model, last_meta_key;
  GstVideoInfo video_info;
  bool have_video_info = false;
  // Since start (or the last EOS): frames, those with outputs to decode, with any tensor meta or
  // objects, and with an input tensor of the model decoded (any model when unset) but no output
  // of it. A stream that ends with nothing decoded for one of those two reasons is warned about.
  guint64 frames_seen = 0, frames_with_outputs = 0, frames_with_tensors_or_objects = 0,
          frames_with_inputs_only = 0;
  std::string input_model;  // the model of the first such input
  // model set: frames carrying outputs of other models and none of ours, and the first such
  // model (see report_other_model).
  guint64 frames_with_other_outputs_only = 0;
  std::string other_model;
  // Whether judge_stream ran for this stream (at the live bound; the EOS then says nothing more).
  bool judged = false;
  // Whether the pipeline upstream was searched for an axinference running the model.
  bool upstream_searched = false;
  axstream::gst::LiveCheck live_check;
};

struct _GstAxDecode {
  GstBaseTransform parent;
  gchar *decoder;
  gchar *labels;
  gdouble conf_threshold;
  gdouble nms_iou;
  gint max_detections;
  gint top_k;
  gboolean softmax;
  gchar *model;
  gboolean int8_fast_path;
  gchar *decoder_config;
  GstAxDecodeState *state;
};

G_DEFINE_TYPE(GstAxDecode, gst_ax_decode, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE(axdecode, "axdecode", GST_RANK_NONE, GST_TYPE_AX_DECODE);

// The properties kept as fields of the instance (ax_field_properties.h).
static constexpr axstream::gst::FieldProperty<GstAxDecode> kFieldProperties[] = {
    {PROP_DECODER, &GstAxDecode::decoder},
    {PROP_LABELS, &GstAxDecode::labels},
    {PROP_CONF_THRESHOLD, &GstAxDecode::conf_threshold},
    {PROP_NMS_IOU, &GstAxDecode::nms_iou},
    {PROP_MAX_DETECTIONS, &GstAxDecode::max_detections},
    {PROP_TOP_K, &GstAxDecode::top_k},
    {PROP_SOFTMAX, &GstAxDecode::softmax},
    {PROP_MODEL, &GstAxDecode::model},
    {PROP_INT8_FAST_PATH, &GstAxDecode::int8_fast_path},
    {PROP_DECODER_CONFIG, &GstAxDecode::decoder_config},
};

#define AX_DECODE_CAPS "video/x-raw(ANY)"
static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS(AX_DECODE_CAPS));
static GstStaticPadTemplate src_template =
    GST_STATIC_PAD_TEMPLATE("src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS(AX_DECODE_CAPS));

// "pkg", "pkg/" and "pkg/model.json" name the same package.
static std::string package_key(const gchar *path) {
  std::string key = path ? path : "";
  if (g_str_has_suffix(key.c_str(), "/model.json")) key.resize(key.size() - 11);
  while (key.size() > 1 && key.back() == '/') key.pop_back();
  return key;
}

// Whether a tensor meta's model names the same package as the model property, also when one path
// is relative and the other absolute, as axinference matches its input metas.
static bool same_package(const std::string &model_key, const gchar *meta_model) {
  const std::string meta_key = package_key(meta_model);
  if (meta_key == model_key) return true;
  gchar *a = g_canonicalize_filename(model_key.c_str(), nullptr);
  gchar *b = g_canonicalize_filename(meta_key.c_str(), nullptr);
  const bool same = g_strcmp0(a, b) == 0;
  g_free(a);
  g_free(b);
  return same;
}

// What the end-of-stream checks count, for a new stream.
static void reset_stream_counts(GstAxDecodeState *state) {
  state->frames_seen = state->frames_with_outputs = state->frames_with_tensors_or_objects =
      state->frames_with_inputs_only = state->frames_with_other_outputs_only = 0;
  state->input_model.clear();
  state->other_model.clear();
  state->judged = false;
  state->live_check.reset();
}

static gboolean gst_ax_decode_start(GstBaseTransform *trans) {
  auto *self = GST_AX_DECODE(trans);
  GstAxDecodeState *state = self->state;
  state->models.clear();
  reset_stream_counts(state);
  state->upstream_searched = false;
  try {
    dec::DecoderOptions options;
    options.conf_threshold = static_cast<float>(self->conf_threshold);
    options.nms_iou = static_cast<float>(self->nms_iou);
    options.max_detections = self->max_detections;
    options.top_k = self->top_k;
    options.softmax = self->softmax;
    if (self->labels && *self->labels) options.labels = dec::read_labels(self->labels);
    if (self->decoder_config) options.config = dec::parse_decoder_config(self->decoder_config);
    state->decoder = dec::make_decoder(self->decoder ? self->decoder : "", options);
  } catch (const std::exception &error) {
    GST_ELEMENT_ERROR(self, RESOURCE, SETTINGS, ("%s", error.what()),
                      ("axdecode start: decoder='%s' labels='%s'", GST_STR_NULL(self->decoder),
                       GST_STR_NULL(self->labels)));
    return FALSE;
  }
  state->model_key = self->model && *self->model ? package_key(self->model) : std::string();
  if (!state->model_key.empty()) {
    // A named package is read now: a wrong path fails the start instead of every frame passing
    // undecoded.
    try {
      auto package = axstream::runtime::load_model_package(state->model_key);
      state->models[state->model_key].converter = dec::OutputConverter::from_package(*package);
    } catch (const std::exception &error) {
      GST_ELEMENT_ERROR(
          self, RESOURCE, OPEN_READ,
          ("axdecode could not load model package '%s': %s", self->model, error.what()),
          ("load_model_package: %s", error.what()));
      state->models.clear();
      state->decoder.reset();
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean gst_ax_decode_stop(GstBaseTransform *trans) {
  auto *self = GST_AX_DECODE(trans);
  self->state->decoder.reset();
  self->state->models.clear();
  self->state->have_video_info = false;
  return TRUE;
}

static gboolean gst_ax_decode_set_caps(GstBaseTransform *trans, GstCaps *incaps, GstCaps *outcaps) {
  auto *self = GST_AX_DECODE(trans);
  self->state->have_video_info = gst_video_info_from_caps(&self->state->video_info, incaps);
  return TRUE;
}

// Maps every tensor of `tensors` and hands the raw bytes to `convert` (float conversion, or
// quantised views decoded before the memories are unmapped).
template <class Convert>
static auto convert_tensors(dec::OutputConverter &converter, GstBuffer *tensors, Convert convert) {
  const guint count = gst_buffer_n_memory(tensors);
  if (count != converter.specs().size())
    throw axstream::InvalidArgument(
        "output tensor meta carries " + std::to_string(count) + " tensors, expected " +
        std::to_string(converter.specs().size()) + " (one per model output)");
  std::vector<GstMapInfo> maps(count);
  std::vector<GstMemory *> memories(count);
  guint mapped = 0;
  struct Unmap {
    std::vector<GstMemory *> &memories;
    std::vector<GstMapInfo> &maps;
    guint &mapped;
    ~Unmap() {
      for (guint i = 0; i < mapped; ++i) gst_memory_unmap(memories[i], &maps[i]);
    }
  } unmap{memories, maps, mapped};
  std::vector<const int8_t *> raw(count);
  std::vector<size_t> raw_bytes(count);
  for (guint i = 0; i < count; ++i) {
    memories[i] = gst_buffer_peek_memory(tensors, i);
    if (!gst_memory_map(memories[i], &maps[i], GST_MAP_READ))
      throw axstream::InternalError("output tensor " + std::to_string(i) + " ('" +
                                    converter.specs()[i].name +
                                    "'): its memory cannot be mapped for reading");
    mapped = i + 1;
    raw[i] = reinterpret_cast<const int8_t *>(maps[i].data);
    raw_bytes[i] = maps[i].size;
  }
  return convert(raw, raw_bytes);
}

static GstVideoRegionOfInterestMeta *find_roi(GstBuffer *buffer, gint id) {
  gpointer iter = nullptr;
  while (GstMeta *meta = gst_buffer_iterate_meta_filtered(
             buffer, &iter, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)) {
    auto *roi = reinterpret_cast<GstVideoRegionOfInterestMeta *>(meta);
    if (roi->id == id) return roi;
  }
  return nullptr;
}

static void attach_detections(GstAxDecode *self, GstBuffer *buffer,
                              const std::vector<dec::Detection> &detections, gint parent_id) {
  const GstAxDecodeState *state = self->state;
  const double frame_w = state->have_video_info ? GST_VIDEO_INFO_WIDTH(&state->video_info) : 0;
  const double frame_h = state->have_video_info ? GST_VIDEO_INFO_HEIGHT(&state->video_info) : 0;
  gint id = axstream::gst::next_roi_id(buffer);
  for (const dec::Detection &d : detections) {
    double x0 = MAX(0.0, d.box.x0), y0 = MAX(0.0, d.box.y0);
    double x1 = d.box.x1, y1 = d.box.y1;
    if (frame_w > 0) x1 = MIN(x1, frame_w);
    if (frame_h > 0) y1 = MIN(y1, frame_h);
    if (x1 <= x0 || y1 <= y0) continue;  // entirely outside the frame
    GstVideoRegionOfInterestMeta *roi = gst_buffer_add_video_region_of_interest_meta(
        buffer, d.label.c_str(), static_cast<guint>(x0 + 0.5), static_cast<guint>(y0 + 0.5),
        static_cast<guint>(x1 - x0 + 0.5), static_cast<guint>(y1 - y0 + 0.5));
    roi->id = id++;
    roi->parent_id = parent_id;
    GValue keypoints = G_VALUE_INIT;
    gst_value_array_init(&keypoints, d.keypoints.size() * 2);
    std::vector<gfloat> flat;
    for (const dec::Point &p : d.keypoints) {
      for (double coordinate : {static_cast<double>(p.x), static_cast<double>(p.y)}) {
        GValue v = G_VALUE_INIT;
        g_value_init(&v, G_TYPE_DOUBLE);
        g_value_set_double(&v, coordinate);
        gst_value_array_append_and_take_value(&keypoints, &v);
      }
      flat.push_back(p.x);
      flat.push_back(p.y);
    }
    axstream::gst::DetectionValues values;
    values.label = d.label;
    values.confidence = static_cast<double>(d.score);
    values.class_id = d.class_id;
    axstream::gst::write_detection(buffer, roi, values);
    gst_structure_take_value(
        gst_video_region_of_interest_meta_get_param(roi, GST_AX_DETECTION_PARAM), "keypoints",
        &keypoints);
    if (!d.keypoints.empty())
      gst_buffer_add_ax_keypoints_meta(buffer, roi->id, d.keypoints.size(), flat.data());
    axstream::gst::write_dlstreamer_params(roi, int(frame_w), int(frame_h));
  }
}

static void attach_classes(GstBuffer *buffer, const std::vector<dec::ClassScore> &classes,
                           gint roi_id, const gchar *model) {
  std::vector<gint> ids;
  std::vector<gfloat> scores;
  std::vector<const gchar *> labels;
  GValue label_array = G_VALUE_INIT, id_array = G_VALUE_INIT, score_array = G_VALUE_INIT;
  gst_value_array_init(&label_array, classes.size());
  gst_value_array_init(&id_array, classes.size());
  gst_value_array_init(&score_array, classes.size());
  for (const dec::ClassScore &c : classes) {
    ids.push_back(c.class_id);
    scores.push_back(c.score);
    labels.push_back(c.label.c_str());
    GValue v = G_VALUE_INIT;
    g_value_init(&v, G_TYPE_STRING);
    g_value_set_string(&v, c.label.c_str());
    gst_value_array_append_and_take_value(&label_array, &v);
    g_value_init(&v, G_TYPE_INT);
    g_value_set_int(&v, c.class_id);
    gst_value_array_append_and_take_value(&id_array, &v);
    g_value_init(&v, G_TYPE_DOUBLE);
    g_value_set_double(&v, c.score);
    gst_value_array_append_and_take_value(&score_array, &v);
  }
  labels.push_back(nullptr);
  gst_buffer_add_ax_classification_meta(buffer, roi_id, model, classes.size(), ids.data(),
                                        scores.data(), labels.data());
  GstVideoRegionOfInterestMeta *roi = roi_id >= 0 ? find_roi(buffer, roi_id) : nullptr;
  GstStructure *params = nullptr;
  if (roi) {
    params = gst_structure_new_empty(GST_AX_CLASSIFICATION_PARAM);
    gst_video_region_of_interest_meta_add_param(roi, params);
  } else if (roi_id < 0) {
    // The whole frame's classes also as a custom meta: the typed one is not introspectable, this
    // one Python reads (Gst.Buffer.get_custom_meta).
    gst_ax_classification_custom_meta_get_info();
    params = gst_custom_meta_get_structure(
        gst_buffer_add_custom_meta(buffer, GST_AX_CLASSIFICATION_PARAM));
  }
  if (params) {
    gst_structure_take_value(params, "labels", &label_array);
    gst_structure_take_value(params, "class-ids", &id_array);
    gst_structure_take_value(params, "scores", &score_array);
  } else {
    g_value_unset(&label_array);
    g_value_unset(&id_array);
    g_value_unset(&score_array);
  }
}

// Text goes on the ROI it was read from; whole-frame text gets a "text" ROI over the region the
// tensor was made from.
static void attach_texts(GstAxDecode *self, GstBuffer *buffer,
                         const std::vector<dec::TextResult> &texts, gint roi_id,
                         const GstAxTransform &transform) {
  for (const dec::TextResult &line : texts) {
    GstVideoRegionOfInterestMeta *roi = roi_id >= 0 ? find_roi(buffer, roi_id) : nullptr;
    if (!roi) {
      const GstVideoInfo *info = &self->state->video_info;
      const bool have_info = self->state->have_video_info;
      const double width = transform.crop_width > 0 ? transform.crop_width
                           : have_info              ? GST_VIDEO_INFO_WIDTH(info)
                                                    : 0;
      const double height = transform.crop_height > 0 ? transform.crop_height
                            : have_info               ? GST_VIDEO_INFO_HEIGHT(info)
                                                      : 0;
      const gint id = axstream::gst::next_roi_id(buffer);
      roi = gst_buffer_add_video_region_of_interest_meta(
          buffer, "text", static_cast<guint>(MAX(0.0, transform.crop_x)),
          static_cast<guint>(MAX(0.0, transform.crop_y)), static_cast<guint>(width),
          static_cast<guint>(height));
      roi->id = id;
      roi->parent_id = roi_id;
    }
    // A ROI without detection values (the "text" ROI just made) is labelled "text".
    std::optional<axstream::gst::DetectionValues> read = axstream::gst::read_detection(buffer, roi);
    axstream::gst::DetectionValues values = read.value_or(axstream::gst::DetectionValues{});
    if (!read) values.label = "text";
    values.text = line.text;
    values.text_confidence = static_cast<double>(line.confidence);
    axstream::gst::write_detection(buffer, roi, values);
  }
}

// The buffer's output tensor metas this element decodes (its model's, or every model's when
// model is unset), collected first: attaching results adds metas while we iterate. The same pass
// counts the frame for the stream checks (judge_stream, check_upstream_runs_model): with outputs
// of ours, with only an input of ours, or with only other models' outputs.
static std::vector<GstAxTensorMeta *> decodable_outputs(GstAxDecodeState *state,
                                                        GstBuffer *buffer) {
  std::vector<GstAxTensorMeta *> outputs;
  const GstAxTensorMeta *input = nullptr, *other_output = nullptr;
  bool any_tensor = false;
  gpointer iter = nullptr;
  while (GstMeta *meta =
             gst_buffer_iterate_meta_filtered(buffer, &iter, GST_AX_TENSOR_META_API_TYPE)) {
    auto *tensor_meta = reinterpret_cast<GstAxTensorMeta *>(meta);
    any_tensor = true;
    const bool ours =
        state->model_key.empty() || same_package(state->model_key, tensor_meta->model);
    if (tensor_meta->kind == GST_AX_TENSOR_INPUT && ours && !input) input = tensor_meta;
    if (tensor_meta->kind != GST_AX_TENSOR_OUTPUT || !tensor_meta->tensors) continue;
    if (ours)
      outputs.push_back(tensor_meta);
    else if (!other_output)
      other_output = tensor_meta;
  }
  state->frames_seen++;
  // A frame with objects (ROI metas) counts too: axpreprocess roi=objects makes no tensor when it
  // selects none of them (axinference warns when it never does).
  if (any_tensor || gst_buffer_get_meta(buffer, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))
    state->frames_with_tensors_or_objects++;
  if (!outputs.empty()) {
    state->frames_with_outputs++;
  } else if (input) {
    if (state->frames_with_inputs_only++ == 0) state->input_model = GST_STR_NULL(input->model);
  } else if (other_output) {
    if (state->frames_with_other_outputs_only++ == 0)
      state->other_model = GST_STR_NULL(other_output->model);
  }
  return outputs;
}

// The element whose source pad feeds `sinkpad` (a new reference; nullptr when unlinked), through
// bins: a ghost source pad leads to its target inside, a ghost sink pad's internal pad to the
// ghost pad's own peer outside.
static GstElement *upstream_element(GstPad *sinkpad) {
  GstPad *peer = gst_pad_get_peer(sinkpad);
  for (int hops = 0; peer && hops < 16; ++hops) {
    GstPad *next = nullptr;
    if (GST_IS_GHOST_PAD(peer)) {
      next = gst_ghost_pad_get_target(GST_GHOST_PAD(peer));
    } else if (GST_IS_PROXY_PAD(peer)) {
      GstProxyPad *ghost = gst_proxy_pad_get_internal(GST_PROXY_PAD(peer));
      if (ghost) {
        next = gst_pad_get_peer(GST_PAD(ghost));
        gst_object_unref(ghost);
      }
    } else {
      break;
    }
    gst_object_unref(peer);
    peer = next;
  }
  if (!peer) return nullptr;
  GstElement *upstream = gst_pad_get_parent_element(peer);
  gst_object_unref(peer);
  return upstream;
}

// The models of the axinference elements upstream (through queues, tees, bins' ghost pads),
// and whether there was any: a cascade's stage runs its model there even while no object came.
static std::vector<std::string> upstream_inference_models(GstAxDecode *self, bool &found_any) {
  std::vector<std::string> models;
  found_any = false;
  std::vector<GstElement *> todo{GST_ELEMENT(gst_object_ref(self))};
  std::vector<GstElement *> seen;
  GType inference_type = g_type_from_name("GstAxInference");
  while (!todo.empty() && seen.size() < 256) {
    GstElement *element = todo.back();
    todo.pop_back();
    if (std::find(seen.begin(), seen.end(), element) != seen.end()) {
      gst_object_unref(element);
      continue;
    }
    seen.push_back(element);
    if (inference_type && G_TYPE_CHECK_INSTANCE_TYPE(element, inference_type)) {
      found_any = true;
      gchar *model = nullptr;
      g_object_get(element, "model", &model, nullptr);
      if (model) models.push_back(model);
      g_free(model);
    }
    GstIterator *pads = gst_element_iterate_sink_pads(element);
    GValue item = G_VALUE_INIT;
    while (gst_iterator_next(pads, &item) == GST_ITERATOR_OK) {
      if (GstElement *upstream = upstream_element(GST_PAD(g_value_get_object(&item))))
        todo.push_back(upstream);
      g_value_reset(&item);
    }
    g_value_unset(&item);
    gst_iterator_free(pads);
  }
  for (GstElement *element : todo) gst_object_unref(element);
  for (GstElement *element : seen) gst_object_unref(element);
  return models;
}

static std::string shapes_text(const std::vector<axstream::runtime::TensorInfo> &tensors) {
  std::string text;
  for (const auto &tensor : tensors) {
    text += text.empty() ? "(" : " (";
    for (size_t i = 0; i < tensor.shape.size(); ++i)
      text += (i ? "," : "") + std::to_string(tensor.shape[i]);
    text += ")";
  }
  return text;
}

// model= names one package and the frames carry the outputs of another only (axinference runs
// blazeface-back, axdecode names blazeface-front): nothing is decoded, and whether the other's
// tensors could be is told by the two packages' outputs. The same shapes (the same network
// compiled twice, front and back of one family): a warning, model= may just name the wrong
// copy. Other shapes cannot be decoded as this package's: an error. Returns GST_FLOW_ERROR after
// posting the error.
static GstFlowReturn report_other_model(GstAxDecode *self, const char *when) {
  GstAxDecodeState *state = self->state;
  std::shared_ptr<const axstream::runtime::ModelPackage> ours, other;
  std::string other_error;
  try {
    ours = axstream::runtime::load_model_package(state->model_key);
  } catch (const std::exception &) {
    // Read at start; changed on disk since. Judged by the other package alone: a warning.
  }
  try {
    other = axstream::runtime::load_model_package(package_key(state->other_model.c_str()));
  } catch (const std::exception &error) {
    other_error = error.what();
  }
  bool same_shapes = ours && other && ours->outputs.size() == other->outputs.size();
  for (size_t i = 0; same_shapes && i < ours->outputs.size(); ++i)
    same_shapes = ours->outputs[i].shape == other->outputs[i].shape &&
                  ours->outputs[i].dtype == other->outputs[i].dtype;
  const std::string ours_text = ours ? shapes_text(ours->outputs) : "unreadable";
  const std::string other_text = other ? shapes_text(other->outputs) : other_error;
  const std::string frames_text = std::to_string(state->frames_with_other_outputs_only) +
                                  " frames with output GstAxTensorMeta of '" + state->other_model +
                                  "' and none of '" + state->model_key + "' (" + when + ")";
  if (ours && other && !same_shapes) {
    GST_ELEMENT_ERROR(self, STREAM, DECODE,
                      ("axdecode model='%s' cannot decode the outputs of model '%s', the only "
                       "ones on the frames: '%s' has outputs %s, '%s' has %s (does axdecode's "
                       "model= name the package axinference runs?)",
                       self->model, state->other_model.c_str(), self->model, ours_text.c_str(),
                       state->other_model.c_str(), other_text.c_str()),
                      ("%s", frames_text.c_str()));
    return GST_FLOW_ERROR;
  }
  GST_ELEMENT_WARNING(
      self, STREAM, DECODE,
      ("axdecode model='%s' decoded nothing: the frames carry the outputs of "
       "model '%s' only, %s (outputs %s); does axinference run the package "
       "meant, or should axdecode's model= name '%s'?",
       self->model, state->other_model.c_str(),
       same_shapes ? "a different package with the same output shapes" : "a different package",
       other_text.c_str(), state->other_model.c_str()),
      ("%s", frames_text.c_str()));
  return GST_FLOW_OK;
}

// At EOS, or after LiveCheck's bound for a stream without one (a live source): a stream of which
// no frame had outputs to decode, because no axinference ran the tensors axpreprocess made or
// there were no tensors (nor objects) at all, passed every frame without results and without a
// word. (A cascade's stage whose ROIs never came looks like an empty stream here: not warned
// about; model= naming a package no axinference upstream runs: check_upstream_runs_model.) Once
// per stream.
static void judge_stream(GstAxDecode *self, bool at_eos) {
  GstAxDecodeState *state = self->state;
  if (state->judged || state->frames_seen == 0 || state->frames_with_outputs > 0) return;
  state->judged = true;
  const char *when =
      at_eos ? "before the EOS" : "in the first frames of a stream without an EOS yet (live)";
  if (state->frames_with_tensors_or_objects == 0) {
    GST_ELEMENT_WARNING(self, STREAM, DECODE,
                        ("axdecode decoded nothing: none of the %" G_GUINT64_FORMAT
                         " frames of the stream carried a tensor (is axpreprocess ! "
                         "axinference upstream of it?)",
                         state->frames_seen),
                        ("no GstAxTensorMeta on any frame %s", when));
  } else if (state->frames_with_inputs_only > 0) {
    GST_ELEMENT_WARNING(self, STREAM, DECODE,
                        ("axdecode decoded nothing: %" G_GUINT64_FORMAT " of the %" G_GUINT64_FORMAT
                         " frames of the stream carried input tensors of model '%s' and no "
                         "outputs (is axinference model=%s between axpreprocess and axdecode?)",
                         state->frames_with_inputs_only, state->frames_seen,
                         state->input_model.c_str(), state->input_model.c_str()),
                        ("input GstAxTensorMeta without output GstAxTensorMeta %s", when));
  }
}

// model= set and a frame with only other models' outputs: when the pipeline upstream holds
// axinference elements and none runs the model, its outputs never come; said at once. (One that
// runs it: a cascade's stage whose objects have not come yet. None at all, e.g. tensors from an
// appsrc or a test harness: nothing to tell them apart by, nothing said.)
static GstFlowReturn check_upstream_runs_model(GstAxDecode *self) {
  GstAxDecodeState *state = self->state;
  if (state->upstream_searched || state->model_key.empty() || state->frames_with_outputs > 0 ||
      state->frames_with_other_outputs_only == 0)
    return GST_FLOW_OK;
  state->upstream_searched = true;
  bool found_any = false;
  const std::vector<std::string> models = upstream_inference_models(self, found_any);
  if (!found_any) return GST_FLOW_OK;
  for (const std::string &model : models)
    if (same_package(state->model_key, model.c_str())) return GST_FLOW_OK;
  return report_other_model(self, "no axinference upstream runs it");
}

static gboolean gst_ax_decode_sink_event(GstBaseTransform *trans, GstEvent *event) {
  if (GST_EVENT_TYPE(event) == GST_EVENT_EOS) {
    auto *self = GST_AX_DECODE(trans);
    judge_stream(self, true);
    reset_stream_counts(self->state);
  }
  return GST_BASE_TRANSFORM_CLASS(gst_ax_decode_parent_class)->sink_event(trans, event);
}

// The default decoder takes any model and ranks its first output as classes: a bare axdecode
// after a detector gave no results or meaningless ones, and no word; a classifier's axdecode
// without model= in a cascade also ranked the detector's first head as whole-frame classes.
// Without model= such a model is skipped (true); with it (the user named that package) decoded;
// a warning either way.
static bool skip_as_not_class_scores(GstAxDecode *self, const std::string &model_path,
                                     const std::vector<dec::FloatTensor> &floats) {
  GstAxDecodeState *state = self->state;
  if (floats.size() <= 1 || std::string(state->decoder->name()) != "classification") return false;
  std::string outputs_text;
  for (const dec::FloatTensor &output : floats)
    outputs_text += (outputs_text.empty() ? "" : ", ") + output.name + " " + output.shape_string();
  const bool skip = state->model_key.empty();
  GST_ELEMENT_WARNING(
      self, STREAM, DECODE,
      ("model '%s' has %zu outputs (%s), not one of class scores: decoder "
       "classification %s; a detector needs its own decoder (decoder= one of %s)",
       model_path.c_str(), floats.size(), outputs_text.c_str(),
       skip ? "skips them (model unset; in a cascade, model= names the package each "
              "axdecode decodes)"
            : "ranks only the first as classes",
       dec::decoder_names().c_str()),
      ("a classifier has one output of class scores"));
  return skip;
}

// On a model's first buffer: whether later buffers take the int8 path (and with which
// decoder: the postamble's sigmoid moves into it), with a warning when a Sigmoid would be
// applied twice.
static void choose_decode_path(GstAxDecode *self, const std::string &model_path,
                               ModelDecoding &decoding, dec::OutputConverter &converter,
                               const std::vector<dec::FloatTensor> &floats) {
  GstAxDecodeState *state = self->state;
  decoding.int8_path = self->int8_fast_path && state->decoder->has_int8_path() &&
                       converter.quantized_outputs_available();
  const std::vector<bool> before_sigmoid = converter.outputs_before_sigmoid();
  const bool postamble_sigmoid =
      std::find(before_sigmoid.begin(), before_sigmoid.end(), true) != before_sigmoid.end();
  if (!before_sigmoid.empty() &&
      std::find(before_sigmoid.begin(), before_sigmoid.end(), false) == before_sigmoid.end() &&
      state->decoder->applies_sigmoid(floats))
    GST_ELEMENT_WARNING(
        self, STREAM, DECODE,
        ("model '%s' ends its outputs in a Sigmoid and decoder %s applies one again: "
         "every score passes its threshold; set decoder-config=\"activations=sigmoid\"",
         model_path.c_str(), state->decoder->name()),
        ("the package's postamble gives probabilities; decoding them as logits "
         "(activations=logits, the default) makes every anchor a candidate"));
  if (decoding.int8_path && (postamble_sigmoid || converter.splits_outputs())) {
    // The postamble's sigmoid moves into the decoder, applied to candidates only (and
    // outputs it concatenates from differently quantised parts come as those parts).
    decoding.logits_decoder =
        state->decoder->for_logits(converter.quantized_output_shapes(), before_sigmoid);
    decoding.int8_path = decoding.logits_decoder && decoding.logits_decoder->has_int8_path();
  }
  GST_INFO_OBJECT(self, "model %s: decoder %s uses its %s path%s", model_path.c_str(),
                  state->decoder->name(), decoding.int8_path ? "int8" : "float",
                  decoding.int8_path && postamble_sigmoid
                      ? " on logits (the postamble's sigmoid applied to candidates)"
                      : "");
}

// One model's outputs decoded: on the int8 path from the raw tensors, otherwise converted to
// float (the first buffer also checks the outputs and picks the path). Nothing when the model
// is skipped.
static std::optional<dec::DecodeResult> decode_outputs(GstAxDecode *self,
                                                       GstAxTensorMeta *tensor_meta,
                                                       const std::string &model_path) {
  GstAxDecodeState *state = self->state;
  ModelDecoding &decoding = state->models[model_path];
  if (decoding.not_for_decoder) return std::nullopt;
  if (!decoding.converter) {
    auto package = axstream::runtime::load_model_package(model_path);
    decoding.converter = dec::OutputConverter::from_package(*package);
  }
  dec::OutputConverter &converter = *decoding.converter;
  const dec::Geometry geometry = axstream::gst::decoder_geometry(tensor_meta->transform);
  if (decoding.outputs_checked && decoding.int8_path) {
    // Thresholds on the raw int8; only candidates are dequantised.
    const dec::Decoder &decoder =
        decoding.logits_decoder ? *decoding.logits_decoder : *state->decoder;
    // Decoded while mapped: the tensors are views of the device outputs where the layout
    // allows, so nothing is copied.
    return convert_tensors(converter, tensor_meta->tensors,
                           [&](const auto &raw, const auto &bytes) {
                             if (!converter.refresh_views(decoding.views, raw, bytes))
                               decoding.views = converter.view_quantized(raw, bytes);
                             return decoder.decode_quantized(decoding.views, geometry);
                           });
  }
  std::vector<dec::FloatTensor> floats = convert_tensors(
      converter, tensor_meta->tensors,
      [&](const auto &raw, const auto &bytes) { return converter.convert(raw, bytes); });
  if (!decoding.outputs_checked) {
    state->decoder->check_outputs(floats);
    if (skip_as_not_class_scores(self, model_path, floats)) {
      decoding.not_for_decoder = true;
      return std::nullopt;
    }
    decoding.outputs_checked = true;
    choose_decode_path(self, model_path, decoding, converter, floats);
  }
  return state->decoder->decode(floats, geometry);
}

static void attach_results(GstAxDecode *self, GstBuffer *buffer, const dec::DecodeResult &result,
                           const GstAxTensorMeta *tensor_meta, const std::string &model_path) {
  if (!result.detections.empty())
    attach_detections(self, buffer, result.detections, tensor_meta->roi_id);
  if (!result.classes.empty())
    attach_classes(buffer, result.classes, tensor_meta->roi_id, model_path.c_str());
  if (!result.texts.empty())
    attach_texts(self, buffer, result.texts, tensor_meta->roi_id, tensor_meta->transform);
  GST_LOG_OBJECT(self, "model %s roi %d: %zu detections, %zu classes", model_path.c_str(),
                 tensor_meta->roi_id, result.detections.size(), result.classes.size());
}

static GstFlowReturn gst_ax_decode_transform_ip(GstBaseTransform *trans, GstBuffer *buffer) {
  auto *self = GST_AX_DECODE(trans);
  GstAxDecodeState *state = self->state;
  std::vector<GstAxTensorMeta *> outputs = decodable_outputs(state, buffer);
  // Counted on every frame: a stream without an EOS is judged after a bounded while.
  if (state->live_check.due(buffer)) judge_stream(self, false);
  if (outputs.empty()) {
    GST_LOG_OBJECT(self, "buffer %" GST_TIME_FORMAT " has no output tensors to decode",
                   GST_TIME_ARGS(GST_BUFFER_PTS(buffer)));
    return check_upstream_runs_model(self);
  }
  for (GstAxTensorMeta *tensor_meta : outputs) {
    if (state->model_key.empty() &&
        (state->last_meta_key.empty() ||
         g_strcmp0(state->last_meta_model.c_str(), tensor_meta->model) != 0)) {
      state->last_meta_model = tensor_meta->model ? tensor_meta->model : "";
      state->last_meta_key = package_key(tensor_meta->model);
    }
    // Not a map key: erasing the model's entry on an error below leaves it valid.
    const std::string &model_path =
        state->model_key.empty() ? state->last_meta_key : state->model_key;
    try {
      if (std::optional<dec::DecodeResult> result = decode_outputs(self, tensor_meta, model_path))
        attach_results(self, buffer, *result, tensor_meta, model_path);
    } catch (const std::exception &error) {
      state->models.erase(model_path);
      GST_ELEMENT_ERROR(self, STREAM, DECODE, ("%s", error.what()),
                        ("axdecode decoder '%s' on the outputs of model '%s'",
                         state->decoder ? state->decoder->name() : "?", model_path.c_str()));
      return GST_FLOW_ERROR;
    }
  }
  return GST_FLOW_OK;
}

static void gst_ax_decode_finalize(GObject *object) {
  auto *self = GST_AX_DECODE(object);
  axstream::gst::free_field_properties(self, kFieldProperties);
  delete self->state;
  G_OBJECT_CLASS(gst_ax_decode_parent_class)->finalize(object);
}

static void gst_ax_decode_class_init(GstAxDecodeClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS(klass);
  gobject_class->set_property = axstream::gst::set_field_properties<GstAxDecode, kFieldProperties>;
  gobject_class->get_property = axstream::gst::get_field_properties<GstAxDecode, kFieldProperties>;
  gobject_class->finalize = gst_ax_decode_finalize;

  auto ready_flags = static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                              GST_PARAM_MUTABLE_READY);
  // The blurb lists the registered decoders; GParamSpec keeps the pointer, so intern it.
  const gchar *decoder_blurb =
      g_intern_string(("Decoder turning the model's outputs into results, one of: " +
                       axstream::decoders::decoder_names())
                          .c_str());
  g_object_class_install_property(
      gobject_class, PROP_DECODER,
      g_param_spec_string("decoder", "Decoder", decoder_blurb, DEFAULT_PROP_DECODER, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_LABELS,
      g_param_spec_string("labels", "Labels file",
                          "UTF-8 text file with one class label per line (line N = class id N; a "
                          "byte order mark is skipped, other encodings fail to start); unset: the "
                          "decoder's default ('face' for blazeface, 'class N')",
                          DEFAULT_PROP_LABELS, ready_flags));
  // The defaults come from the decoder registry (interned: GParamSpec keeps the pointers).
  using axstream::decoders::DecoderEntry;
  const gchar *conf_blurb = g_intern_string(
      ("Minimum score of a reported detection, class or text; negative: the decoder's default (" +
       axstream::decoders::decoder_defaults(&DecoderEntry::default_conf_threshold) + ")")
          .c_str());
  const gchar *nms_blurb = g_intern_string(
      ("Overlap (intersection over union) above which non-maximum suppression merges or drops "
       "boxes; negative: the decoder's default (" +
       axstream::decoders::decoder_defaults(&DecoderEntry::default_nms_iou) + ")")
          .c_str());
  g_object_class_install_property(
      gobject_class, PROP_CONF_THRESHOLD,
      g_param_spec_double("conf-threshold", "Confidence threshold", conf_blurb, -1.0, 1.0,
                          DEFAULT_PROP_CONF_THRESHOLD, ready_flags));
  g_object_class_install_property(gobject_class, PROP_NMS_IOU,
                                  g_param_spec_double("nms-iou", "NMS IoU", nms_blurb, -1.0, 1.0,
                                                      DEFAULT_PROP_NMS_IOU, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_MAX_DETECTIONS,
      g_param_spec_int("max-detections", "Max detections",
                       "Most detections reported per frame or ROI, best first (0: no limit)", 0,
                       G_MAXINT, DEFAULT_PROP_MAX_DETECTIONS, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_TOP_K,
      g_param_spec_int("top-k", "Top k", "Classes reported per frame or ROI by classification", 1,
                       G_MAXINT, DEFAULT_PROP_TOP_K, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_SOFTMAX,
      g_param_spec_boolean("softmax", "Softmax",
                           "classification: apply softmax to the model's scores first (for "
                           "models that output logits)",
                           DEFAULT_PROP_SOFTMAX, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_MODEL,
      g_param_spec_string("model", "Model",
                          "Model package whose output tensors to decode, read at start (a "
                          "missing or corrupt package fails it); other packages' outputs are "
                          "skipped, and when axinference elements upstream run none of it, the "
                          "first frame says so naming both (an error when their output shapes "
                          "differ, a warning when they match); unset: every output tensor meta, "
                          "with the model it names (decoder classification skips a model with "
                          "several outputs, e.g. a cascade's detector, with a warning)",
                          DEFAULT_PROP_MODEL, ready_flags));

  g_object_class_install_property(
      gobject_class, PROP_INT8_FAST_PATH,
      g_param_spec_boolean(
          "int8-fast-path", "int8 fast path",
          "Decode the quantised outputs directly when the package has no postamble (or one "
          "that only moves data, e.g. Transpose+Reshape, concatenates differently quantised "
          "outputs the decoder takes as parts: yolov8 heads, ssd loc/conf, or also applies a "
          "Sigmoid the decoder can apply itself: yolov5 heads, ssd scores, dbnet map) and the "
          "decoder has an int8 path (blazeface, classification, ctc, dbnet, ssd, yolov5, "
          "yolov8): thresholds compared in int8, sigmoid/exp from 256-entry tables, only "
          "candidates dequantised; results equal the float path. Off: always dequantise every "
          "output first",
          DEFAULT_PROP_INT8_FAST_PATH, ready_flags));
  g_object_class_install_property(
      gobject_class, PROP_DECODER_CONFIG,
      g_param_spec_string(
          "decoder-config", "Decoder config",
          "Decoder settings as \"key=value; key=value\". ssd prior boxes: \"feature-maps=19,10,5;"
          " image-size=300; min-sizes=...; max-sizes=...; aspect-ratios=2|2,3|2,3 (per level, "
          "'|'); steps=...; variances=0.1,0.2; clip=0|1\" or \"priors-file=FILE\" (cx cy w h "
          "per line), plus box-order=xywh|yxhw and scores=softmax|sigmoid|none (see "
          "docs/pipelines.md); yolov5, yolov8 and dbnet: activations=logits|sigmoid (whether "
          "the model's outputs went through their sigmoid); dbnet also binary-threshold=0.3 "
          "(map probability a text pixel exceeds) and unclip-ratio=1.5 (box growth: area * "
          "ratio / perimeter; conf-threshold is its box score); the others take none",
          DEFAULT_PROP_DECODER_CONFIG, ready_flags));
  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Axelera result decoder", "Filter/Analyzer/Video",
      "Decodes a model's output tensors into detections or classes attached as region-of-"
      "interest and axstream result metas",
      "axstream developers");
  trans_class->start = GST_DEBUG_FUNCPTR(gst_ax_decode_start);
  trans_class->stop = GST_DEBUG_FUNCPTR(gst_ax_decode_stop);
  trans_class->set_caps = GST_DEBUG_FUNCPTR(gst_ax_decode_set_caps);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR(gst_ax_decode_transform_ip);
  trans_class->sink_event = GST_DEBUG_FUNCPTR(gst_ax_decode_sink_event);
  GST_DEBUG_CATEGORY_INIT(gst_ax_decode_debug, "axdecode", 0, "axstream result decoder");
}

static void gst_ax_decode_init(GstAxDecode *self) {
  axstream::gst::report_refused_caps(GST_BASE_TRANSFORM_SINK_PAD(self),
                                     GST_BASE_TRANSFORM_SRC_PAD(self));
  self->decoder = g_strdup(DEFAULT_PROP_DECODER);
  self->labels = nullptr;
  self->conf_threshold = DEFAULT_PROP_CONF_THRESHOLD;
  self->nms_iou = DEFAULT_PROP_NMS_IOU;
  self->max_detections = DEFAULT_PROP_MAX_DETECTIONS;
  self->top_k = DEFAULT_PROP_TOP_K;
  self->softmax = DEFAULT_PROP_SOFTMAX;
  self->model = nullptr;
  self->int8_fast_path = DEFAULT_PROP_INT8_FAST_PATH;
  self->decoder_config = nullptr;
  self->state = new GstAxDecodeState();
  gst_base_transform_set_in_place(GST_BASE_TRANSFORM(self), TRUE);
}
