#pragma once

#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS
#define GST_TYPE_AX_FPS_COUNTER (gst_ax_fps_counter_get_type())
G_DECLARE_FINAL_TYPE(GstAxFpsCounter, gst_ax_fps_counter, GST, AX_FPS_COUNTER, GstBaseTransform)
GST_ELEMENT_REGISTER_DECLARE(axfpscounter);
G_END_DECLS
