// The message of an error a test expects and the words it must hold, shared by the C++ tests of
// every layer (hal, runtime, engine): every test checks an error's type and its words the same way.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <utility>

namespace axstream::test {

// The message of the `E` that `call` throws; "(no error thrown)" when it returns, so a check for
// words of the message fails and says why. An error of another type is not caught: GoogleTest
// fails the test with that error's message.
template <typename E, typename Call>
std::string message_of(Call &&call) {
  try {
    std::forward<Call>(call)();
  } catch (const E &error) {
    return error.what();
  }
  return "(no error thrown)";
}

// Whether `text` (an error message, a description) holds every one of `parts`; a failure names
// each part it lacks and shows the text. For EXPECT_TRUE(contains_all(msg, {"node 'n'", ...})).
inline ::testing::AssertionResult contains_all(const std::string &text,
                                               std::initializer_list<std::string> parts) {
  std::string missing;
  for (const std::string &part : parts)
    if (text.find(part) == std::string::npos) missing += " '" + part + "'";
  if (missing.empty()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "lacks" << missing << " in: " << text;
}

}  // namespace axstream::test
