// Names the element and the caps when a CAPS event is refused on its way through our elements.
// GStreamer drops such an event before the element sees it, and the pipeline then fails only
// with upstream's "streaming stopped, reason not-negotiated", which names neither.
#pragma once

#include <gst/gst.h>

namespace axstream::gst {

// Watches an element's `sinkpad`: a CAPS event it does not accept posts a CORE NEGOTIATION error
// naming the element, the caps and what the pad takes instead. Elements whose source pad sends
// the very caps they receive (in-place transforms) also pass `srcpad`: when the element after
// them refuses the caps, the error names that element (GstBaseTransform checks it before sending
// the event on, so its own pads never see the caps).
void report_refused_caps(GstPad *sinkpad, GstPad *srcpad = nullptr);

}  // namespace axstream::gst
