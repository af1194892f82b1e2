#pragma once

#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS
#define GST_TYPE_AX_META_PUBLISH (gst_ax_meta_publish_get_type())
G_DECLARE_FINAL_TYPE(GstAxMetaPublish, gst_ax_meta_publish, GST, AX_META_PUBLISH, GstBaseTransform)
GST_ELEMENT_REGISTER_DECLARE(axmetapublish);
G_END_DECLS
