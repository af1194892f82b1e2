#include "json_lines.h"

#include <cmath>
#include <cstdio>

#include "json.h"

namespace axstream::publish {

namespace json = runtime::json;

namespace {

void append_number(std::string &out, double value) {
  if (!std::isfinite(value)) {
    out += "null";
    return;
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", value);
  out += text;
}

// ,"classes":[{"class_id":..,"label":..,"score":..},...] when there are any.
void append_classes(std::string &out, const std::vector<PublishedClass> &classes) {
  if (classes.empty()) return;
  out += ",\"classes\":[";
  for (size_t i = 0; i < classes.size(); ++i) {
    if (i) out += ',';
    out += "{\"class_id\":" + std::to_string(classes[i].class_id);
    if (classes[i].label) out += ",\"label\":" + json::quote(*classes[i].label);
    out += ",\"score\":";
    append_number(out, classes[i].score);
    out += '}';
  }
  out += ']';
}

}  // namespace

std::string to_json_line(const PublishedFrame &frame) {
  std::string out = "{\"frame\":" + std::to_string(frame.frame);
  out += ",\"pts\":";
  out += frame.pts_ns ? std::to_string(*frame.pts_ns) : "null";
  out += ",\"stream_id\":" + std::to_string(frame.stream_id);
  out += ",\"width\":" + std::to_string(frame.width);
  out += ",\"height\":" + std::to_string(frame.height);
  out += ",\"objects\":[";
  for (size_t i = 0; i < frame.objects.size(); ++i) {
    const PublishedObject &object = frame.objects[i];
    if (i) out += ',';
    out += "{\"label\":" + json::quote(object.label);
    out += ",\"class_id\":" + std::to_string(object.class_id);
    out += ",\"score\":";
    if (object.score)
      append_number(out, *object.score);
    else
      out += "null";
    out += ",\"box\":[";
    append_number(out, object.x);
    out += ',';
    append_number(out, object.y);
    out += ',';
    append_number(out, object.width);
    out += ',';
    append_number(out, object.height);
    out += ']';
    if (!object.keypoints.empty()) {
      out += ",\"keypoints\":[";
      for (size_t k = 0; k < object.keypoints.size(); ++k) {
        if (k) out += ',';
        out += '[';
        append_number(out, object.keypoints[k].first);
        out += ',';
        append_number(out, object.keypoints[k].second);
        out += ']';
      }
      out += ']';
    }
    if (object.track_id) out += ",\"track_id\":" + std::to_string(*object.track_id);
    if (object.predicted) out += ",\"predicted\":true";
    if (object.text) out += ",\"text\":" + json::quote(*object.text);
    append_classes(out, object.classes);
    if (object.roi_id) out += ",\"roi_id\":" + std::to_string(*object.roi_id);
    if (object.parent_id) out += ",\"parent_id\":" + std::to_string(*object.parent_id);
    out += '}';
  }
  out += ']';
  append_classes(out, frame.classes);
  if (frame.inference_skipped) out += ",\"inference_skipped\":true";
  out += '}';
  return out;
}

}  // namespace axstream::publish
