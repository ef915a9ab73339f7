// lmforge errors: one exception type for everything a user can cause, one macro for
// programming errors.
//
// Contract
//  - lmf::Error is thrown for bad user input (config, file, flag, shape passed to a public op).
//    Its message is one line that names the thing and what was expected, e.g.
//    "configs/x.toml: optimizer.lr: expected a number, got 'abc'".
//  - LMF_CHECK(cond, msg...) guards internal invariants. It throws lmf::Error too (never aborts
//    inside the library), prefixed "internal error:" and the source location, so the CLI can
//    still print one line and exit non-zero.
//  - lmf::Error::with_context() prepends context ("file.safetensors: ") while the error travels up.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace lmf {

class Error : public std::runtime_error {
 public:
  explicit Error(std::string message) : std::runtime_error(std::move(message)) {}
  // A new Error whose message is `context + ": " + what()`.
  Error with_context(const std::string& context) const { return Error(context + ": " + what()); }
};

namespace detail {
template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

// Throws lmf::Error with the streamed arguments concatenated: fail("expected ", 3, " dims").
template <class... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(detail::concat(std::forward<Args>(args)...));
}

}  // namespace lmf

#define LMF_CHECK(cond, ...)                                                               \
  do {                                                                                     \
    if (!(cond))                                                                           \
      ::lmf::fail("internal error: ", __FILE__, ":", __LINE__, ": check '", #cond,        \
                  "' failed: ", ##__VA_ARGS__);                                             \
  } while (0)
