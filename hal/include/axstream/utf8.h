// UTF-8 well-formedness (Unicode's table 3-7: no overlong forms, surrogates or code points
// beyond U+10FFFF), shared by the JSON writer (runtime/json.cc) and the labels reader
// (gst/decoders/registry.cc). Header-only: the decoders library does not link the runtime.
#pragma once

#include <cstddef>
#include <string>

namespace axstream {

// Bytes of the well-formed UTF-8 sequence starting at text[pos], or 0 when it is not one; then
// `*invalid` is the length of its maximal subpart (at least 1), which U+FFFD replaces.
inline size_t utf8_sequence(const std::string &text, size_t pos, size_t *invalid) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  size_t length;
  unsigned char low = 0x80, high = 0xbf;  // range of the second byte
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead == 0xe0) low = 0xa0;
    if (lead == 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead == 0xf0) low = 0x90;
    if (lead == 0xf4) high = 0x8f;
  } else {
    *invalid = 1;
    return 0;
  }
  for (size_t i = 1; i < length; ++i) {
    const bool in_range = pos + i < text.size() && byte(pos + i) >= (i == 1 ? low : 0x80) &&
                          byte(pos + i) <= (i == 1 ? high : 0xbf);
    if (!in_range) {
      *invalid = i;
      return 0;
    }
  }
  return length;
}

// Whether all of `text` is well-formed UTF-8.
inline bool is_utf8(const std::string &text) {
  size_t invalid = 0;
  for (size_t pos = 0; pos < text.size();) {
    const size_t length = utf8_sequence(text, pos, &invalid);
    if (length == 0) return false;
    pos += length;
  }
  return true;
}

}  // namespace axstream
