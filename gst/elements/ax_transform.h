// The frame -> tensor mapping as each layer holds it: the preprocessing library's Geometry, the
// tensor meta's GstAxTransform (axpreprocess writes it) and the decoders' Geometry (axdecode reads
// it), with one conversion each way, so the elements and the benchmark map boxes alike.
#pragma once

#include "axstream/decoders/types.h"
#include "axstream/gst/axtensormeta.h"
#include "axstream/preprocess/preprocess.h"

namespace axstream::gst {

// What axpreprocess records in the tensor meta for a tensor made with geometry `g`.
inline GstAxTransform transform_of(const preprocess::Geometry &g) {
  GstAxTransform t{};
  t.crop_x = g.crop.x;
  t.crop_y = g.crop.y;
  t.crop_width = g.crop.width;
  t.crop_height = g.crop.height;
  t.scale_x = g.scale_x;
  t.scale_y = g.scale_y;
  t.offset_x = g.offset_x;
  t.offset_y = g.offset_y;
  t.tensor_width = g.tensor_width;
  t.tensor_height = g.tensor_height;
  return t;
}

// What the decoders map tensor coordinates back to frame pixels with; a missing (zero) scale in
// a meta from another producer counts as 1.
inline decoders::Geometry decoder_geometry(const GstAxTransform &t) {
  decoders::Geometry g;
  g.crop_x = t.crop_x;
  g.crop_y = t.crop_y;
  g.crop_width = t.crop_width;
  g.crop_height = t.crop_height;
  g.scale_x = t.scale_x > 0 ? t.scale_x : 1.0;
  g.scale_y = t.scale_y > 0 ? t.scale_y : 1.0;
  g.offset_x = t.offset_x;
  g.offset_y = t.offset_y;
  g.tensor_width = t.tensor_width;
  g.tensor_height = t.tensor_height;
  return g;
}

}  // namespace axstream::gst
