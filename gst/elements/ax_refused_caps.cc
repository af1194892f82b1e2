#include "ax_refused_caps.h"

#include <string>

namespace axstream::gst {

namespace {

std::string caps_text(GstCaps *caps) {
  gchar *text = gst_caps_to_string(caps);
  std::string out = text;
  g_free(text);
  return out;
}

// The caps whose refusal the pad last posted (pad qdata): upstream's pad sends a refused sticky
// CAPS event again before each frame it pushes after it, and one error says it all.
GQuark refused_caps_quark() {
  static const GQuark quark = g_quark_from_static_string("axstream-refused-caps");
  return quark;
}

// Runs before the pad's own check of the CAPS event (which drops it without a word). Only CAPS
// events are judged, never ACCEPT_CAPS queries: those are how upstream tries caps out, and a
// refusal there is an answer, not an error. Upstream sends caps as an event once it has settled
// on them, so an event refused here ends the stream.
GstPadProbeReturn check_caps_event(GstPad *sinkpad, GstPadProbeInfo *info, gpointer srcpad_data) {
  GstEvent *event = GST_PAD_PROBE_INFO_EVENT(info);
  // A new stream (also a restart) may post a refusal again.
  if (GST_EVENT_TYPE(event) == GST_EVENT_STREAM_START)
    g_object_set_qdata(G_OBJECT(sinkpad), refused_caps_quark(), nullptr);
  if (GST_EVENT_TYPE(event) != GST_EVENT_CAPS) return GST_PAD_PROBE_OK;
  GstCaps *caps = nullptr;
  gst_event_parse_caps(event, &caps);
  auto *posted =
      static_cast<GstCaps *>(g_object_get_qdata(G_OBJECT(sinkpad), refused_caps_quark()));
  auto *srcpad = static_cast<GstPad *>(srcpad_data);
  std::string refusing, taken;
  if (!gst_pad_query_accept_caps(sinkpad, caps)) {
    GstCaps *accepted = gst_pad_query_caps(sinkpad, nullptr);
    taken = caps_text(accepted);
    gst_caps_unref(accepted);
  } else if (srcpad && gst_pad_is_linked(srcpad) && !gst_pad_peer_query_accept_caps(srcpad, caps)) {
    GstPad *peer = gst_pad_get_peer(srcpad);
    GstObject *next = peer ? gst_pad_get_parent(peer) : nullptr;
    refusing = next ? GST_OBJECT_NAME(next) : "the element after it";
    if (next) gst_object_unref(next);
    if (peer) gst_object_unref(peer);
    GstCaps *accepted = gst_pad_peer_query_caps(srcpad, nullptr);
    taken = caps_text(accepted);
    gst_caps_unref(accepted);
  } else {
    g_object_set_qdata(G_OBJECT(sinkpad), refused_caps_quark(), nullptr);
    return GST_PAD_PROBE_OK;
  }
  if (posted && gst_caps_is_equal(posted, caps)) return GST_PAD_PROBE_OK;
  g_object_set_qdata_full(G_OBJECT(sinkpad), refused_caps_quark(), gst_caps_ref(caps),
                          reinterpret_cast<GDestroyNotify>(gst_caps_unref));
  GstElement *element = GST_ELEMENT(gst_pad_get_parent(sinkpad));
  if (!element) return GST_PAD_PROBE_OK;
  if (refusing.empty()) refusing = GST_ELEMENT_NAME(element);
  const std::string refused = caps_text(caps);
  GST_ELEMENT_ERROR(
      element, CORE, NEGOTIATION,
      ("%s cannot take caps %s: it takes %s", refusing.c_str(), refused.c_str(), taken.c_str()),
      ("a CAPS event reaching %s:%s was refused by %s (the caps it takes include "
       "what the elements after it take)",
       GST_DEBUG_PAD_NAME(sinkpad), refusing.c_str()));
  gst_object_unref(element);
  return GST_PAD_PROBE_OK;
}

}  // namespace

void report_refused_caps(GstPad *sinkpad, GstPad *srcpad) {
  gst_pad_add_probe(sinkpad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, check_caps_event, srcpad,
                    nullptr);
}

}  // namespace axstream::gst
