#pragma once

#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS
#define GST_TYPE_AX_PREPROCESS (gst_ax_preprocess_get_type())
G_DECLARE_FINAL_TYPE(GstAxPreprocess, gst_ax_preprocess, GST, AX_PREPROCESS, GstBaseTransform)
GST_ELEMENT_REGISTER_DECLARE(axpreprocess);
G_END_DECLS
