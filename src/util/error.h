// One error type for the whole project. It carries its context in the message
// (which file, which tensor or field, what was expected, what was found).
// Library code throws it; the CLI prints it and exits 1; the server maps it to
// an OpenAI-style JSON error.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace pocket {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Concatenates any streamable values into one string: str("tensor ", name, ": ", n).
template <typename... Args>
std::string str(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

template <typename... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(str(std::forward<Args>(args)...));
}

}  // namespace pocket
