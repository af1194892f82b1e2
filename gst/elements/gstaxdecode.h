#pragma once

#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS
#define GST_TYPE_AX_DECODE (gst_ax_decode_get_type())
G_DECLARE_FINAL_TYPE(GstAxDecode, gst_ax_decode, GST, AX_DECODE, GstBaseTransform)
GST_ELEMENT_REGISTER_DECLARE(axdecode);
G_END_DECLS
