// BlazeFace's fixed anchor layout, exposed so tests and tools can check box decoding by hand.
#pragma once

#include <vector>

#include "axstream/decoders/types.h"

namespace axstream::decoders {

// 896 normalised anchor centres in the models' output order: 16x16 grid x 2, then 8x8 grid x 6,
// row-major, centre (cell + 0.5) / grid.
std::vector<Point> blazeface_anchors();

}  // namespace axstream::decoders
