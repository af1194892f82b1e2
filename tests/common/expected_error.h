// The message of an error a test expects, shared by the C++ tests of every layer (hal, runtime,
// engine): one helper so every test checks an error's type and its words the same way.
#pragma once

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

}  // namespace axstream::test
