// Shapes in error messages, written as numpy prints them: "(1,224,224,4)".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace axstream::runtime {

std::string shape_text(const std::vector<int64_t> &shape);

}  // namespace axstream::runtime
