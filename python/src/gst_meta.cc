// The pybind11 extension behind axstream.meta: reads axstream's typed metas (axresultmeta.h,
// axtensormeta.h) off a PyGObject Gst.Buffer and returns them as plain Python values (dicts,
// lists, read-only numpy views of the tensors), which axstream/meta.py wraps in its dataclasses.
#include <gst/gst.h>
#include <gst/video/video.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "ax_detection_values.h"
#include "one_unwinder.h"
#include "axstream/gst/axresultmeta.h"
#include "axstream/gst/axtensormeta.h"

namespace py = pybind11;

namespace {

py::object optional_string(const gchar *text) {
  return text ? py::object(py::str(text)) : py::object(py::none());
}

template <typename T>
py::object optional_value(const std::optional<T> &value) {
  return value ? py::cast(*value) : py::object(py::none());
}

// The GstBuffer* a PyGObject Gst.Buffer wraps. PyGObject hashes a boxed wrapper to the pointer it
// holds (what DL Streamer's gstgva hands to libgstreamer through ctypes as hash(buffer)); the
// hash is taken through the boxed base class's own slot (gi._gi.GBoxed.__hash__), so a Python
// subclass overriding __hash__ cannot hand us another number, and only once the object is known
// to be a Gst.Buffer. The wrapper owns a ref on the buffer, so the pointer stays valid while the
// caller holds the object.
GstBuffer *buffer_of(py::handle object, const char *function) {
  auto wrong_type = [&]() {
    return py::type_error(std::string("axstream.meta.") + function +
                          ": expected a Gst.Buffer (a pad probe's info.get_buffer(), an appsink "
                          "sample's get_buffer()), got " +
                          std::string(py::str(py::type::handle_of(object).attr("__qualname__"))));
  };
  // No Gst.Buffer exists before PyGObject has loaded Gst; importing it here would only pick a
  // version for the application.
  py::dict modules = py::module_::import("sys").attr("modules");
  if (!modules.contains("gi.repository.Gst")) throw wrong_type();
  py::object buffer_type = modules["gi.repository.Gst"].attr("Buffer");
  if (!py::isinstance(object, buffer_type)) throw wrong_type();
  auto address =
      py::module_::import("gi._gi").attr("GBoxed").attr("__hash__")(object).cast<intptr_t>();
  auto *buffer = reinterpret_cast<GstBuffer *>(address);
  // Before gst_init the buffer type (and our metas' API types) are not registered yet.
  if (!gst_is_initialized())
    throw py::value_error(std::string("axstream.meta.") + function +
                          ": GStreamer is not initialised (call Gst.init(None) first)");
  if (buffer == nullptr || !GST_IS_BUFFER(buffer))
    throw py::type_error(std::string("axstream.meta.") + function +
                         ": the Gst.Buffer wrapper holds no GstBuffer");
  return buffer;
}

py::list classes_of(const GstAxClassificationMeta *meta) {
  py::list classes;
  for (guint i = 0; i < meta->n_classes; ++i) {
    const gchar *label = gst_ax_classification_meta_get_label(meta, i);
    py::dict entry;
    entry["class_id"] = gst_ax_classification_meta_get_class_id(meta, i);
    entry["score"] = double(gst_ax_classification_meta_get_score(meta, i));
    entry["label"] = optional_string(label && *label ? label : nullptr);  // "": no label
    entry["model"] = optional_string(meta->model);
    classes.append(std::move(entry));
  }
  return classes;
}

// Every GstAxClassificationMeta of `roi_id` (-1: the whole frame), in the buffer's order: several
// models' classes of one ROI follow each other, as axmetapublish writes them.
py::list classes_of_roi(GstBuffer *buffer, gint roi_id) {
  py::list classes;
  gpointer state = nullptr;
  while (GstMeta *meta = gst_buffer_iterate_meta_filtered(buffer, &state,
                                                          GST_AX_CLASSIFICATION_META_API_TYPE)) {
    const auto *classification = reinterpret_cast<const GstAxClassificationMeta *>(meta);
    if (classification->roi_id == roi_id)
      for (py::handle entry : classes_of(classification)) classes.append(entry);
  }
  return classes;
}

// One ROI as axmetapublish writes it: the values from its ax-detection structure, or from the
// typed metas of its id after an element that made a new frame (axstream::gst::read_detection).
py::dict detection_of(GstBuffer *buffer, const GstVideoRegionOfInterestMeta *roi) {
  py::dict detection;
  detection["roi_id"] = roi->id;
  detection["parent_id"] = roi->parent_id;
  detection["box"] = py::make_tuple(roi->x, roi->y, roi->w, roi->h);
  const gchar *roi_type = roi->roi_type ? g_quark_to_string(roi->roi_type) : nullptr;
  std::optional<axstream::gst::DetectionValues> values = axstream::gst::read_detection(buffer, roi);
  if (!values) values.emplace();  // another element's ROI: no values but its type
  detection["label"] = values->label ? py::str(*values->label) : py::str(roi_type ? roi_type : "");
  detection["class_id"] = values->class_id.value_or(-1);
  detection["score"] = optional_value(values->confidence);
  detection["track_id"] = optional_value(values->track_id);
  py::list keypoints;
  for (const auto &[x, y] : values->keypoints) keypoints.append(py::make_tuple(x, y));
  detection["keypoints"] = py::tuple(keypoints);
  detection["text"] = optional_value(values->text);
  detection["text_confidence"] = optional_value(values->text_confidence);
  detection["predicted"] = values->predicted;
  detection["classes"] = classes_of_roi(buffer, roi->id);
  return detection;
}

py::list detections(py::handle object) {
  GstBuffer *buffer = buffer_of(object, "detections");
  py::list detections;
  gpointer state = nullptr;
  while (GstMeta *meta = gst_buffer_iterate_meta_filtered(
             buffer, &state, GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))
    detections.append(
        detection_of(buffer, reinterpret_cast<const GstVideoRegionOfInterestMeta *>(meta)));
  return detections;
}

py::list frame_classes(py::handle object) {
  return classes_of_roi(buffer_of(object, "frame_classes"), -1);
}

py::object inference_skipped(py::handle object, std::optional<std::string> model) {
  GstBuffer *buffer = buffer_of(object, "inference_skipped");
  const GstStructure *marker =
      gst_buffer_get_ax_inference_skipped(buffer, model ? model->c_str() : nullptr);
  if (!marker) return py::none();
  guint interval = 0;
  gst_structure_get_uint(marker, "interval", &interval);
  py::dict skipped;
  skipped["model"] = optional_string(gst_structure_get_string(marker, "model"));
  skipped["per_object"] = g_strcmp0(gst_structure_get_string(marker, "roi"), "objects") == 0;
  skipped["interval"] = interval;
  return skipped;
}

// One tensor's memory mapped for reading, owning a ref on it and on the tensor buffer it belongs
// to: a pooled tensor buffer goes back to its pool (to be written again) only once its last ref
// is gone, so the numpy view over the mapping stays valid as long as this lives.
class MappedTensor {
 public:
  MappedTensor(GstBuffer *tensors, guint index)
      : tensors_(gst_buffer_ref(tensors)),
        memory_(gst_memory_ref(gst_buffer_peek_memory(tensors, index))) {
    if (!gst_memory_map(memory_, &map_, GST_MAP_READ)) {
      gst_memory_unref(memory_);
      gst_buffer_unref(tensors_);
      throw std::runtime_error("axstream.meta.tensors: cannot map tensor " + std::to_string(index) +
                               " for reading");
    }
  }
  ~MappedTensor() {
    gst_memory_unmap(memory_, &map_);
    gst_memory_unref(memory_);
    gst_buffer_unref(tensors_);
  }
  MappedTensor(const MappedTensor &) = delete;
  MappedTensor &operator=(const MappedTensor &) = delete;

  const guint8 *data() const { return map_.data; }
  gsize size() const { return map_.size; }

 private:
  GstBuffer *tensors_;
  GstMemory *memory_;
  GstMapInfo map_{};
};

// A read-only flat int8 view of tensor `index`, alive (and its memory mapped) while the array
// or any view of it is.
py::array tensor_array(GstBuffer *tensors, guint index) {
  auto mapped = std::make_unique<MappedTensor>(tensors, index);
  const guint8 *data = mapped->data();
  const auto size = static_cast<py::ssize_t>(mapped->size());
  // The capsule owns the mapping; numpy keeps it as the array's base.
  py::capsule owner(mapped.release(),
                    [](void *pointer) { delete static_cast<MappedTensor *>(pointer); });
  py::array array(py::dtype::of<int8_t>(), {size}, {py::ssize_t(1)}, data, owner);
  array.attr("setflags")(py::arg("write") = false);  // mapped for reading only
  return array;
}

py::dict transform_of(const GstAxTransform &t) {
  py::dict transform;
  transform["crop_x"] = t.crop_x;
  transform["crop_y"] = t.crop_y;
  transform["crop_width"] = t.crop_width;
  transform["crop_height"] = t.crop_height;
  transform["scale_x"] = t.scale_x;
  transform["scale_y"] = t.scale_y;
  transform["offset_x"] = t.offset_x;
  transform["offset_y"] = t.offset_y;
  transform["tensor_width"] = t.tensor_width;
  transform["tensor_height"] = t.tensor_height;
  return transform;
}

py::list tensors(py::handle object) {
  GstBuffer *buffer = buffer_of(object, "tensors");
  py::list metas;
  gpointer state = nullptr;
  while (GstMeta *meta =
             gst_buffer_iterate_meta_filtered(buffer, &state, GST_AX_TENSOR_META_API_TYPE)) {
    const auto *tensor_meta = reinterpret_cast<const GstAxTensorMeta *>(meta);
    py::list arrays;
    if (tensor_meta->tensors)
      for (guint i = 0; i < gst_buffer_n_memory(tensor_meta->tensors); ++i)
        arrays.append(tensor_array(tensor_meta->tensors, i));
    py::dict entry;
    entry["kind"] = tensor_meta->kind == GST_AX_TENSOR_OUTPUT ? "output" : "input";
    entry["model"] = optional_string(tensor_meta->model);
    entry["roi_id"] = tensor_meta->roi_id;
    entry["stream_id"] = tensor_meta->stream_id;
    entry["transform"] = transform_of(tensor_meta->transform);
    entry["arrays"] = py::tuple(arrays);
    metas.append(std::move(entry));
  }
  return metas;
}

}  // namespace

PYBIND11_MODULE(_axstream_meta, module) {
  module.doc() =
      "The compiled part of axstream.meta: axstream's typed metas off a Gst.Buffer as plain "
      "Python values. Use axstream.meta, which wraps them in its dataclasses.";
  axstream::python::put_libgcc_unwinder_first();
  module.def("detections", &detections, py::arg("buffer"),
             "One dict per GstVideoRegionOfInterestMeta of the buffer, in its order.");
  module.def("frame_classes", &frame_classes, py::arg("buffer"),
             "The whole frame's classes (GstAxClassificationMeta roi_id -1), best first.");
  module.def("inference_skipped", &inference_skipped, py::arg("buffer"),
             py::arg("model") = py::none(),
             "The skip marker's values as a dict, or None when inference ran on the frame.");
  module.def("tensors", &tensors, py::arg("buffer"),
             "One dict per GstAxTensorMeta, each with read-only int8 views of its tensors.");
}
