// Registers the elements of the "axelera" plugin.
#include <gst/gst.h>

#include "gstaxdecode.h"
#include "gstaxfpscounter.h"
#include "gstaxinference.h"
#include "gstaxmetapublish.h"
#include "gstaxoverlay.h"
#include "gstaxpreprocess.h"
#include "gstaxtracker.h"

static gboolean plugin_init(GstPlugin *plugin) {
  gboolean ok = TRUE;
  ok &= GST_ELEMENT_REGISTER(axpreprocess, plugin);
  ok &= GST_ELEMENT_REGISTER(axinference, plugin);
  ok &= GST_ELEMENT_REGISTER(axdecode, plugin);
  ok &= GST_ELEMENT_REGISTER(axoverlay, plugin);
  ok &= GST_ELEMENT_REGISTER(axmetapublish, plugin);
  ok &= GST_ELEMENT_REGISTER(axtracker, plugin);
  ok &= GST_ELEMENT_REGISTER(axfpscounter, plugin);
  return ok;
}

#ifndef PACKAGE
#define PACKAGE "axstream"
#endif
GST_PLUGIN_DEFINE(GST_VERSION_MAJOR, GST_VERSION_MINOR, axelera,
                  "Neural-network inference on Axelera Metis AIPUs", plugin_init, "0.1.0", "LGPL",
                  "axstream", "Unknown package origin")
