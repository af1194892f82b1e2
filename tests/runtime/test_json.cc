// The strict JSON reader behind the package loader.
#include <gtest/gtest.h>

#include <cmath>

#include "json.h"

namespace axstream::runtime::json {
namespace {

TEST(Json, ParsesEveryValueKindWithPositions) {
  Value root = parse("{\"a\": [1, -2.5e1, true, false, null],\n \"b\": {\"c\": \"x\\u00e9\\n\"}}");
  ASSERT_EQ(root.type, Type::object);
  const Value *a = root.find("a");
  ASSERT_NE(a, nullptr);
  ASSERT_EQ(a->array.size(), 5u);
  EXPECT_TRUE(a->array[0].number_is_integer);
  EXPECT_EQ(a->array[0].integer, 1);
  EXPECT_FALSE(a->array[1].number_is_integer);
  EXPECT_DOUBLE_EQ(a->array[1].number, -25.0);
  EXPECT_TRUE(a->array[2].boolean);
  EXPECT_EQ(a->array[3].type, Type::boolean);
  EXPECT_TRUE(a->array[4].is_null());
  const Value *b = root.find("b");
  EXPECT_EQ(b->line, 2);
  EXPECT_EQ(b->column, 7);
  EXPECT_EQ(b->find("c")->string, "x\xc3\xa9\n");
  EXPECT_EQ(root.find("missing"), nullptr);
}

TEST(Json, DecodesSurrogatePairs) {
  EXPECT_EQ(parse("\"\\ud83d\\ude00\"").string, "\xf0\x9f\x98\x80");
}

TEST(Json, HugeExponentIsInfinityForTheCallerToReject) {
  EXPECT_TRUE(std::isinf(parse("1e999").number));
}

struct BadCase {
  const char *text;
  int line;
  int column;
  const char *message;
};

class JsonBad : public ::testing::TestWithParam<BadCase> {};

TEST_P(JsonBad, FailsWithLineAndColumn) {
  const BadCase &c = GetParam();
  try {
    parse(c.text);
    FAIL() << "parsed " << c.text;
  } catch (const ParseError &error) {
    EXPECT_EQ(error.line, c.line) << error.what();
    EXPECT_EQ(error.column, c.column) << error.what();
    EXPECT_NE(std::string(error.what()).find(c.message), std::string::npos) << error.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, JsonBad,
                         ::testing::Values(BadCase{"", 1, 1, "expected a JSON value"},
                                           BadCase{"{\"a\": 1,}", 1, 9, "expected a string key"},
                                           BadCase{"[1 2]", 1, 4, "expected ',' or ']'"},
                                           BadCase{"{\n  \"a\" 1}", 2, 7, "expected ':'"},
                                           BadCase{"\"abc", 1, 5, "unterminated string"},
                                           BadCase{"\"a\tb\"", 1, 3, "control character"},
                                           BadCase{"01", 1, 2, "expected end of document"},
                                           BadCase{"-", 1, 2, "expected a digit"},
                                           BadCase{"1.", 1, 3, "expected a digit after '.'"},
                                           BadCase{"tru", 1, 4, "expected 'true'"},
                                           BadCase{"{\"a\": 1, \"a\": 2}", 1, 10,
                                                   "duplicate key \"a\""},
                                           BadCase{"'single'", 1, 1, "expected a JSON value"},
                                           BadCase{"\"\\x\"", 1, 3, "invalid escape"},
                                           BadCase{"\"\\udc00\"", 1, 8, "unpaired low surrogate"},
                                           BadCase{"[1] x", 1, 5, "expected end of document"}));

TEST(Json, QuoteEscapesWhatJsonRequiresAndParsesBack) {
  const std::string text = std::string("a \"b\" \\ \n\r\t\x01\x1f caf\xc3\xa9 ") + '\0' + "z";
  const std::string quoted = quote(text);
  EXPECT_EQ(quoted, "\"a \\\"b\\\" \\\\ \\n\\r\\t\\u0001\\u001f caf\xc3\xa9 \\u0000z\"");
  Value back = parse(quoted);
  ASSERT_EQ(back.type, Type::string);
  EXPECT_EQ(back.string, text);
}

// JSON text is UTF-8: a label from a Latin-1 labels file or an application's ROI type made
// axmetapublish's line unreadable to strict readers (Python's json on the decoded line, jq).
// Each ill-formed sequence (its maximal subpart) becomes U+FFFD; well-formed UTF-8 stays.
TEST(Json, QuoteReplacesIllFormedUtf8SoTheLiteralIsAlwaysUtf8) {
  const std::string fffd = "\xef\xbf\xbd";
  struct Case {
    std::string text, expected;
  };
  const Case cases[] = {
      {"caf\xe9", "caf" + fffd},                                           // Latin-1 e-acute
      {"caf\xe9 ok", "caf" + fffd + " ok"},                                // ... followed by ASCII
      {"\xe2\x82\xac \xf0\x9f\x98\x80", "\xe2\x82\xac \xf0\x9f\x98\x80"},  // euro, emoji kept
      {"\xc0\xaf", fffd + fffd},                                           // overlong '/'
      {"\xed\xa0\x80", fffd + fffd + fffd},                                // UTF-16 surrogate
      {"\xf4\x90\x80\x80", fffd + fffd + fffd + fffd},                     // beyond U+10FFFF
      {"x\xe2\x82", "x" + fffd},                                           // truncated at the end
      {"\xe2\x82x", fffd + "x"},                                           // truncated before ASCII
      {"\xff\xfe", fffd + fffd},                                           // UTF-16 byte order mark
      {"\x80", fffd},                                                      // lone continuation byte
  };
  for (const Case &c : cases) {
    const std::string quoted = quote(c.text);
    EXPECT_EQ(quoted, "\"" + c.expected + "\"") << c.text;
    EXPECT_EQ(parse(quoted).string, c.expected) << c.text;
  }
}

TEST(Json, RejectsDeepNesting) {
  std::string deep(100, '[');
  EXPECT_THROW(parse(deep), ParseError);
}

}  // namespace
}  // namespace axstream::runtime::json
