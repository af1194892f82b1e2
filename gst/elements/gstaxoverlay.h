#pragma once

#include <gst/video/gstvideofilter.h>

G_BEGIN_DECLS
#define GST_TYPE_AX_OVERLAY (gst_ax_overlay_get_type())
G_DECLARE_FINAL_TYPE(GstAxOverlay, gst_ax_overlay, GST, AX_OVERLAY, GstVideoFilter)
GST_ELEMENT_REGISTER_DECLARE(axoverlay);
G_END_DECLS
