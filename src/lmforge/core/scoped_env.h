// An environment variable set (or cleared) for a scope, then restored: how tests and benchmarks
// force a kernel variant that the CUDA dispatch reads from the environment (LMF_SCAN_IMPL,
// LMF_ATTN_BWD, ...). Not thread-safe (setenv); not for library code.
#pragma once

#include <cstdlib>
#include <string>

namespace lmf {

class ScopedEnv {
 public:
  // value nullptr: the variable is unset for the scope.
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) {
      had_ = true;
      old_ = old;
    }
    if (value)
      setenv(name, value, 1);
    else
      unsetenv(name);
  }
  ~ScopedEnv() {
    if (had_)
      setenv(name_, old_.c_str(), 1);
    else
      unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  bool had_ = false;
  std::string old_;
};

}  // namespace lmf
