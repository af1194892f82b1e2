#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS
#define GST_TYPE_AX_INFERENCE (gst_ax_inference_get_type())
G_DECLARE_FINAL_TYPE(GstAxInference, gst_ax_inference, GST, AX_INFERENCE, GstElement)
GST_ELEMENT_REGISTER_DECLARE(axinference);
G_END_DECLS
