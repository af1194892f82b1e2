// A compact, strict JSON reader (RFC 8259) for the model package files: values keep their
// source line/column so the loader's errors can point at the offending field.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace axstream::runtime::json {

// Thrown by parse() on malformed text; the message says what was expected at line:column.
class ParseError : public std::runtime_error {
 public:
  ParseError(const std::string &what, int line, int column)
      : std::runtime_error(what), line(line), column(column) {}
  int line;
  int column;
};

enum class Type { null, boolean, number, string, array, object };
const char *type_name(Type type) noexcept;

class Value {
 public:
  Type type = Type::null;
  bool boolean = false;
  double number = 0.0;
  bool number_is_integer = false;  // written without fraction or exponent
  int64_t integer = 0;             // valid when number_is_integer and it fits
  std::string string;
  std::vector<Value> array;
  // Keys in file order; duplicates are rejected by the parser.
  std::vector<std::pair<std::string, Value>> object;
  int line = 0;
  int column = 0;

  // Out of line: `object` holds pair<string, Value>, which needs the complete type (clang).
  Value();
  Value(const Value &);
  Value(Value &&) noexcept;
  Value &operator=(const Value &);
  Value &operator=(Value &&) noexcept;
  ~Value();

  bool is_null() const { return type == Type::null; }
  // Object member or nullptr.
  const Value *find(const std::string &key) const;
};

// Parses a whole document (trailing non-whitespace is an error). Nesting depth is limited.
Value parse(const std::string &text);

// `text` as a JSON string literal, quotes included: '"', '\\' and control characters escaped
// (RFC 8259), well-formed UTF-8 unchanged, each ill-formed sequence (its maximal subpart, as
// Unicode recommends) replaced by U+FFFD, so the result is always valid UTF-8 JSON. The writers
// of packages and metadata share it.
std::string quote(const std::string &text);

}  // namespace axstream::runtime::json
