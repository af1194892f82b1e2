#pragma once

#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS
#define GST_TYPE_AX_TRACKER (gst_ax_tracker_get_type())
G_DECLARE_FINAL_TYPE(GstAxTracker, gst_ax_tracker, GST, AX_TRACKER, GstBaseTransform)
GST_ELEMENT_REGISTER_DECLARE(axtracker);
G_END_DECLS
