#include "json.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "axstream/utf8.h"

namespace axstream::runtime::json {

const char *type_name(Type type) noexcept {
  switch (type) {
    case Type::null:
      return "null";
    case Type::boolean:
      return "boolean";
    case Type::number:
      return "number";
    case Type::string:
      return "string";
    case Type::array:
      return "array";
    case Type::object:
      return "object";
  }
  return "?";
}

const Value *Value::find(const std::string &key) const {
  for (const auto &[name, value] : object)
    if (name == key) return &value;
  return nullptr;
}

namespace {

constexpr int kMaxDepth = 64;

class Parser {
 public:
  explicit Parser(const std::string &text) : text_(text) {}

  Value document() {
    skip_whitespace();
    Value value = parse_value(0);
    skip_whitespace();
    if (pos_ != text_.size()) fail("expected end of document");
    return value;
  }

 private:
  [[noreturn]] void fail(const std::string &what) const {
    // A control or non-ASCII byte is shown as hex: the message must stay printable UTF-8.
    std::string found = "end of file";
    if (pos_ < text_.size()) {
      unsigned char byte = static_cast<unsigned char>(text_[pos_]);
      char hex[16];
      std::snprintf(hex, sizeof hex, "byte 0x%02x", byte);
      found = byte >= 0x20 && byte < 0x7f ? std::string("'") + text_[pos_] + "'" : hex;
    }
    throw ParseError(what + ", found " + found + " at line " + std::to_string(line_) + ", column " +
                         std::to_string(column_),
                     line_, column_);
  }

  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool at_end() const { return pos_ >= text_.size(); }

  void advance() {
    if (text_[pos_] == '\n') {
      ++line_;
      column_ = 1;
    } else {
      ++column_;
    }
    ++pos_;
  }

  void skip_whitespace() {
    while (!at_end()) {
      char c = peek();
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      advance();
    }
  }

  void expect_literal(const char *literal) {
    for (const char *p = literal; *p; ++p) {
      if (peek() != *p) fail(std::string("expected '") + literal + "'");
      advance();
    }
  }

  Value parse_value(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than 64 levels");
    Value value;
    value.line = line_;
    value.column = column_;
    switch (peek()) {
      case '{':
        parse_object(value, depth);
        break;
      case '[':
        parse_array(value, depth);
        break;
      case '"':
        value.type = Type::string;
        value.string = parse_string();
        break;
      case 't':
        expect_literal("true");
        value.type = Type::boolean;
        value.boolean = true;
        break;
      case 'f':
        expect_literal("false");
        value.type = Type::boolean;
        break;
      case 'n':
        expect_literal("null");
        break;
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) {
          parse_number(value);
        } else {
          fail("expected a JSON value");
        }
    }
    return value;
  }

  void parse_object(Value &value, int depth) {
    value.type = Type::object;
    advance();  // {
    skip_whitespace();
    if (peek() == '}') {
      advance();
      return;
    }
    for (;;) {
      skip_whitespace();
      if (peek() != '"') fail("expected a string key");
      int key_line = line_, key_column = column_;
      std::string key = parse_string();
      if (value.find(key))
        throw ParseError("duplicate key \"" + key + "\" at line " + std::to_string(key_line) +
                             ", column " + std::to_string(key_column),
                         key_line, key_column);
      skip_whitespace();
      if (peek() != ':') fail("expected ':'");
      advance();
      skip_whitespace();
      Value member = parse_value(depth + 1);
      value.object.emplace_back(std::move(key), std::move(member));
      skip_whitespace();
      if (peek() == ',') {
        advance();
        continue;
      }
      if (peek() == '}') {
        advance();
        return;
      }
      fail("expected ',' or '}'");
    }
  }

  void parse_array(Value &value, int depth) {
    value.type = Type::array;
    advance();  // [
    skip_whitespace();
    if (peek() == ']') {
      advance();
      return;
    }
    for (;;) {
      skip_whitespace();
      value.array.push_back(parse_value(depth + 1));
      skip_whitespace();
      if (peek() == ',') {
        advance();
        continue;
      }
      if (peek() == ']') {
        advance();
        return;
      }
      fail("expected ',' or ']'");
    }
  }

  static void append_utf8(std::string &out, uint32_t code) {
    if (code < 0x80) {
      out += static_cast<char>(code);
    } else if (code < 0x800) {
      out += static_cast<char>(0xC0 | (code >> 6));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else if (code < 0x10000) {
      out += static_cast<char>(0xE0 | (code >> 12));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (code >> 18));
      out += static_cast<char>(0x80 | ((code >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((code >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (code & 0x3F));
    }
  }

  uint32_t parse_hex4() {
    uint32_t code = 0;
    for (int i = 0; i < 4; ++i) {
      char c = peek();
      int digit;
      if (c >= '0' && c <= '9')
        digit = c - '0';
      else if (c >= 'a' && c <= 'f')
        digit = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        digit = c - 'A' + 10;
      else
        fail("expected a hex digit in \\u escape");
      code = code * 16 + static_cast<uint32_t>(digit);
      advance();
    }
    return code;
  }

  std::string parse_string() {
    advance();  // opening quote
    std::string out;
    for (;;) {
      if (at_end()) fail("unterminated string");
      char c = peek();
      if (c == '"') {
        advance();
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') {
        out += c;
        advance();
        continue;
      }
      advance();
      char escape = peek();
      switch (escape) {
        case '"':
          out += '"';
          break;
        case '\\':
          out += '\\';
          break;
        case '/':
          out += '/';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          advance();
          uint32_t code = parse_hex4();
          if (code >= 0xD800 && code < 0xDC00) {
            if (peek() != '\\') fail("expected a low surrogate after a high surrogate");
            advance();
            if (peek() != 'u') fail("expected a low surrogate after a high surrogate");
            advance();
            uint32_t low = parse_hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail("invalid low surrogate");
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          } else if (code >= 0xDC00 && code < 0xE000) {
            fail("unpaired low surrogate");
          }
          append_utf8(out, code);
          continue;
        }
        default:
          fail("invalid escape in string");
      }
      advance();
    }
  }

  void parse_number(Value &value) {
    size_t start = pos_;
    bool integer = true;
    if (peek() == '-') advance();
    if (peek() == '0') {
      advance();
    } else if (peek() >= '1' && peek() <= '9') {
      while (peek() >= '0' && peek() <= '9') advance();
    } else {
      fail("expected a digit");
    }
    if (peek() == '.') {
      integer = false;
      advance();
      if (!(peek() >= '0' && peek() <= '9')) fail("expected a digit after '.'");
      while (peek() >= '0' && peek() <= '9') advance();
    }
    if (peek() == 'e' || peek() == 'E') {
      integer = false;
      advance();
      if (peek() == '+' || peek() == '-') advance();
      if (!(peek() >= '0' && peek() <= '9')) fail("expected a digit in the exponent");
      while (peek() >= '0' && peek() <= '9') advance();
    }
    std::string literal = text_.substr(start, pos_ - start);
    value.type = Type::number;
    value.number = std::strtod(literal.c_str(), nullptr);
    if (integer) {
      errno = 0;
      long long parsed = std::strtoll(literal.c_str(), nullptr, 10);
      if (errno != ERANGE) {
        value.number_is_integer = true;
        value.integer = parsed;
      }
    }
  }

  const std::string &text_;
  size_t pos_ = 0;
  int line_ = 1;
  int column_ = 1;
};

}  // namespace

Value parse(const std::string &text) { return Parser(text).document(); }

std::string quote(const std::string &text) {
  std::string out = "\"";
  for (size_t pos = 0; pos < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[pos]);
    if (c >= 0x80) {
      // JSON text is UTF-8 (RFC 8259 8.1): a label read from a Latin-1 file, or any other
      // byte string, must not make the whole line unreadable to a strict reader.
      size_t invalid = 0;
      const size_t length = axstream::utf8_sequence(text, pos, &invalid);
      out += length ? text.substr(pos, length) : std::string("\xef\xbf\xbd");  // U+FFFD
      pos += length ? length : invalid;
      continue;
    }
    ++pos;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
          out += escaped;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

Value::Value() = default;
Value::Value(const Value &) = default;
Value::Value(Value &&) noexcept = default;
Value &Value::operator=(const Value &) = default;
Value &Value::operator=(Value &&) noexcept = default;
Value::~Value() = default;

}  // namespace axstream::runtime::json
