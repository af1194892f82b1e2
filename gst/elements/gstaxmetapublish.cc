/**
 * SECTION:element-axmetapublish
 * @title: axmetapublish
 *
 * Writes the results riding on each frame (GstVideoRegionOfInterestMeta with axstream's
 * "ax-detection" parameters, or its GstAxDetectionMeta after a videoscale or videoconvert dropped
 * them, and the classes of GstAxClassificationMeta for the whole frame or an object) as JSON
 * Lines, one line per frame, to a file, stdout or a unix socket. Frames pass through unchanged.
 * The schema is in docs/metadata-schema.md.
 *
 * |[
 * D=~/.cache/axstream/opencv-doc/usr/share/doc/opencv-doc/examples/data
 * M=~/.cache/axstream/models/blazeface-front
 * gst-launch-1.0 filesrc location=$D/Megamind.avi ! decodebin ! \
 *   axpreprocess model=$M ! axinference model=$M ! \
 *   axdecode decoder=blazeface ! axmetapublish location=faces.jsonl ! fakesink
 * ]|
 */
#include "gstaxmetapublish.h"

#include <fcntl.h>
#include <gst/video/video.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "ax_detection_values.h"
#include "ax_field_properties.h"
#include "ax_refused_caps.h"
#include "axstream/gst/axresultmeta.h"
#include "json_lines.h"

GST_DEBUG_CATEGORY_STATIC(gst_ax_meta_publish_debug);
#define GST_CAT_DEFAULT gst_ax_meta_publish_debug

#define DEFAULT_PROP_LOCATION nullptr
#define DEFAULT_PROP_SOCKET_PATH nullptr
#define DEFAULT_PROP_STREAM_ID 0u

enum { PROP_0, PROP_LOCATION, PROP_SOCKET_PATH, PROP_STREAM_ID };

struct GstAxMetaPublishState {
  int fd = -1;
  bool owns_fd = false;
  bool is_socket = false;
  uint64_t frame_count = 0;
  GstVideoInfo video_info{};
  bool have_info = false;
};

struct _GstAxMetaPublish {
  GstBaseTransform parent;
  gchar *location;
  gchar *socket_path;
  guint stream_id;
  GstAxMetaPublishState *state;
};

G_DEFINE_TYPE(GstAxMetaPublish, gst_ax_meta_publish, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE(axmetapublish, "axmetapublish", GST_RANK_NONE,
                            GST_TYPE_AX_META_PUBLISH);

// The properties kept as fields of the instance (ax_field_properties.h).
static constexpr axstream::gst::FieldProperty<GstAxMetaPublish> kFieldProperties[] = {
    {PROP_LOCATION, &GstAxMetaPublish::location},
    {PROP_SOCKET_PATH, &GstAxMetaPublish::socket_path},
    {PROP_STREAM_ID, &GstAxMetaPublish::stream_id},
};

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE(
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS("video/x-raw(ANY)"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS("video/x-raw(ANY)"));

static void close_output(GstAxMetaPublish *self) {
  if (self->state->owns_fd && self->state->fd >= 0) close(self->state->fd);
  self->state->fd = -1;
  self->state->owns_fd = false;
  self->state->is_socket = false;
}

static gboolean gst_ax_meta_publish_start(GstBaseTransform *trans) {
  auto *self = GST_AX_META_PUBLISH(trans);
  GstAxMetaPublishState *state = self->state;
  state->frame_count = 0;
  if (self->socket_path && *self->socket_path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (strlen(self->socket_path) >= sizeof address.sun_path) {
      GST_ELEMENT_ERROR(
          self, RESOURCE, SETTINGS, ("socket-path is too long"),
          ("'%s' has more than %zu bytes", self->socket_path, sizeof address.sun_path - 1));
      return FALSE;
    }
    std::strcpy(address.sun_path, self->socket_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr *>(&address), sizeof address) != 0) {
      int err = errno;
      if (fd >= 0) close(fd);
      GST_ELEMENT_ERROR(
          self, RESOURCE, OPEN_WRITE,
          ("Could not connect to unix socket \"%s\": %s.", self->socket_path, g_strerror(err)),
          ("connect: %s", g_strerror(err)));
      return FALSE;
    }
    state->fd = fd;
    state->owns_fd = true;
    state->is_socket = true;
  } else if (self->location && *self->location && strcmp(self->location, "-") != 0) {
    int fd = open(self->location, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      int err = errno;
      GST_ELEMENT_ERROR(
          self, RESOURCE, OPEN_WRITE,
          ("Could not open file \"%s\" for writing: %s.", self->location, g_strerror(err)),
          ("open: %s", g_strerror(err)));
      return FALSE;
    }
    state->fd = fd;
    state->owns_fd = true;
  } else {
    state->fd = STDOUT_FILENO;
    state->owns_fd = false;
  }
  return TRUE;
}

static gboolean gst_ax_meta_publish_stop(GstBaseTransform *trans) {
  close_output(GST_AX_META_PUBLISH(trans));
  return TRUE;
}

static gboolean gst_ax_meta_publish_set_caps(GstBaseTransform *trans, GstCaps *incaps,
                                             GstCaps *outcaps) {
  auto *self = GST_AX_META_PUBLISH(trans);
  self->state->have_info = gst_video_info_from_caps(&self->state->video_info, incaps);
  return TRUE;
}

static axstream::publish::PublishedObject object_from_roi(GstBuffer *buffer,
                                                          GstVideoRegionOfInterestMeta *roi) {
  axstream::publish::PublishedObject object;
  object.x = roi->x;
  object.y = roi->y;
  object.width = roi->w;
  object.height = roi->h;
  object.roi_id = roi->id;
  if (roi->parent_id >= 0) object.parent_id = roi->parent_id;
  if (roi->roi_type) object.label = g_quark_to_string(roi->roi_type);
  if (std::optional<axstream::gst::DetectionValues> values =
          axstream::gst::read_detection(buffer, roi)) {
    if (values->label) object.label = *values->label;
    if (values->confidence) object.score = *values->confidence;
    if (values->class_id) object.class_id = *values->class_id;
    if (values->track_id) object.track_id = *values->track_id;
    if (values->text) object.text = *values->text;
    object.predicted = values->predicted;
    object.keypoints = std::move(values->keypoints);
  }
  return object;
}

static std::vector<axstream::publish::PublishedClass> classes_of(
    const GstAxClassificationMeta *meta) {
  std::vector<axstream::publish::PublishedClass> classes;
  for (guint i = 0; i < meta->n_classes; ++i) {
    axstream::publish::PublishedClass c;
    c.class_id = gst_ax_classification_meta_get_class_id(meta, i);
    const gchar *label = gst_ax_classification_meta_get_label(meta, i);
    if (label && *label) c.label = label;  // "" when the decoder had no label
    c.score = gst_ax_classification_meta_get_score(meta, i);
    classes.push_back(std::move(c));
  }
  return classes;
}

// A socket whose reader went away gives EPIPE, not SIGPIPE (which would kill the application).
static bool write_all(int fd, bool is_socket, const std::string &line) {
  size_t written = 0;
  while (written < line.size()) {
    ssize_t n = is_socket ? send(fd, line.data() + written, line.size() - written, MSG_NOSIGNAL)
                          : write(fd, line.data() + written, line.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    written += static_cast<size_t>(n);
  }
  return true;
}

static GstFlowReturn gst_ax_meta_publish_transform_ip(GstBaseTransform *trans, GstBuffer *buffer) {
  auto *self = GST_AX_META_PUBLISH(trans);
  GstAxMetaPublishState *state = self->state;
  axstream::publish::PublishedFrame frame;
  frame.frame = state->frame_count++;
  if (GST_BUFFER_PTS_IS_VALID(buffer)) frame.pts_ns = GST_BUFFER_PTS(buffer);
  GST_OBJECT_LOCK(self);  // changeable while playing
  frame.stream_id = self->stream_id;
  GST_OBJECT_UNLOCK(self);
  if (state->have_info) {
    frame.width = GST_VIDEO_INFO_WIDTH(&state->video_info);
    frame.height = GST_VIDEO_INFO_HEIGHT(&state->video_info);
  }
  frame.inference_skipped = gst_buffer_get_ax_inference_skipped(buffer, nullptr) != nullptr;
  gpointer iter = nullptr;
  while (GstMeta *meta = gst_buffer_iterate_meta_filtered(
             buffer, &iter, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE)) {
    frame.objects.push_back(
        object_from_roi(buffer, reinterpret_cast<GstVideoRegionOfInterestMeta *>(meta)));
  }
  // Classifications (axdecode decoder=classification): the whole frame's, or an object's by its
  // ROI id; several models' classes of one object follow each other.
  iter = nullptr;
  while (GstMeta *meta =
             gst_buffer_iterate_meta_filtered(buffer, &iter, GST_AX_CLASSIFICATION_META_API_TYPE)) {
    const auto *classification = reinterpret_cast<const GstAxClassificationMeta *>(meta);
    auto classes = classes_of(classification);
    if (classification->roi_id < 0) {
      frame.classes.insert(frame.classes.end(), classes.begin(), classes.end());
      continue;
    }
    for (auto &object : frame.objects)
      if (object.roi_id == classification->roi_id)
        object.classes.insert(object.classes.end(), classes.begin(), classes.end());
  }
  std::string line = axstream::publish::to_json_line(frame) + "\n";
  if (!write_all(state->fd, state->is_socket, line)) {
    int err = errno;
    const gchar *destination =
        state->is_socket ? self->socket_path : (state->owns_fd ? self->location : "stdout");
    GST_ELEMENT_ERROR(self, RESOURCE, WRITE, ("Could not write results to %s.", destination),
                      ("write to %s: %s", destination, g_strerror(err)));
    return GST_FLOW_ERROR;
  }
  return GST_FLOW_OK;
}

static void gst_ax_meta_publish_finalize(GObject *object) {
  auto *self = GST_AX_META_PUBLISH(object);
  close_output(self);
  axstream::gst::free_field_properties(self, kFieldProperties);
  delete self->state;
  G_OBJECT_CLASS(gst_ax_meta_publish_parent_class)->finalize(object);
}

static void gst_ax_meta_publish_class_init(GstAxMetaPublishClass *klass) {
  GObjectClass *gobject_class = G_OBJECT_CLASS(klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS(klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS(klass);

  gobject_class->set_property =
      axstream::gst::set_field_properties<GstAxMetaPublish, kFieldProperties>;
  gobject_class->get_property =
      axstream::gst::get_field_properties<GstAxMetaPublish, kFieldProperties>;
  gobject_class->finalize = gst_ax_meta_publish_finalize;

  g_object_class_install_property(
      gobject_class, PROP_LOCATION,
      g_param_spec_string("location", "Location",
                          "File to write JSON Lines to (\"-\" or unset: stdout). Ignored when "
                          "socket-path is set",
                          DEFAULT_PROP_LOCATION,
                          static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                   GST_PARAM_MUTABLE_READY)));
  g_object_class_install_property(
      gobject_class, PROP_SOCKET_PATH,
      g_param_spec_string("socket-path", "Socket path",
                          "Unix stream socket to connect to and write JSON Lines to",
                          DEFAULT_PROP_SOCKET_PATH,
                          static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                   GST_PARAM_MUTABLE_READY)));
  g_object_class_install_property(
      gobject_class, PROP_STREAM_ID,
      g_param_spec_uint("stream-id", "Stream id",
                        "Stream id written in every record (a change while playing applies from "
                        "the next frame)",
                        0, G_MAXUINT, DEFAULT_PROP_STREAM_ID,
                        static_cast<GParamFlags>(G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                                 GST_PARAM_MUTABLE_PLAYING)));

  gst_element_class_add_static_pad_template(element_class, &sink_template);
  gst_element_class_add_static_pad_template(element_class, &src_template);
  gst_element_class_set_static_metadata(
      element_class, "Axelera metadata publisher", "Filter/Metadata/Video",
      "Writes per-frame inference results as JSON Lines to a file, stdout or a unix socket",
      "axstream developers");

  trans_class->start = GST_DEBUG_FUNCPTR(gst_ax_meta_publish_start);
  trans_class->stop = GST_DEBUG_FUNCPTR(gst_ax_meta_publish_stop);
  trans_class->set_caps = GST_DEBUG_FUNCPTR(gst_ax_meta_publish_set_caps);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR(gst_ax_meta_publish_transform_ip);

  GST_DEBUG_CATEGORY_INIT(gst_ax_meta_publish_debug, "axmetapublish", 0,
                          "axstream JSON Lines metadata publisher");
}

static void gst_ax_meta_publish_init(GstAxMetaPublish *self) {
  axstream::gst::report_refused_caps(GST_BASE_TRANSFORM_SINK_PAD(self),
                                     GST_BASE_TRANSFORM_SRC_PAD(self));
  self->location = g_strdup(DEFAULT_PROP_LOCATION);
  self->socket_path = g_strdup(DEFAULT_PROP_SOCKET_PATH);
  self->stream_id = DEFAULT_PROP_STREAM_ID;
  self->state = new GstAxMetaPublishState();
  // Reads metas only: never ask for a writable buffer (that could copy the frame).
  gst_base_transform_set_passthrough(GST_BASE_TRANSFORM(self), TRUE);
}
