#include "test_util.h"

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sys/wait.h>
#include <unistd.h>

namespace lmf::test {

// LMF_TEST_SOURCE_DIR / LMF_TEST_BINARY_DIR override the configure-time paths, so a build
// tree copied to another machine (the GPU check) still finds its fixtures.
static std::string dir_from_env(const char* env, const char* fallback) {
  const char* e = std::getenv(env);
  return e && *e ? e : fallback;
}
std::string source_path(const std::string& rel) { return dir_from_env("LMF_TEST_SOURCE_DIR", LMF_SOURCE_DIR) + "/" + rel; }
std::string binary_path(const std::string& rel) { return dir_from_env("LMF_TEST_BINARY_DIR", LMF_BINARY_DIR) + "/" + rel; }

std::string scratch_dir(const std::string& name) {
  // Per process: ctest runs tests of one binary in parallel processes.
  auto p = std::filesystem::path(binary_path("test_scratch")) / (name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

double rel_error(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); i++) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

double rel_error(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return INFINITY;
  return rel_error(a.to_double_vector(), b.to_double_vector());
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto x = a.to_double_vector(), y = b.to_double_vector();
  if (x.size() != y.size()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < x.size(); i++) m = std::max(m, std::fabs(x[i] - y[i]));
  return m;
}

bool all_finite(const Tensor& t) {
  for (double v : t.to_double_vector())
    if (!std::isfinite(v)) return false;
  return true;
}

Tensor random_tensor(const Shape& shape, DType dtype, uint64_t seed, float lo, float hi, Device device) {
  Tensor t = Tensor::empty(shape, is_floating(dtype) ? dtype : DType::f32);
  fill_uniform_cpu(t, seed, 12345, lo, hi);
  if (!is_floating(dtype)) {
    auto v = t.to_float_vector();
    for (auto& x : v) x = std::floor(x);
    t = Tensor::from_floats(v, shape, dtype);
  }
  return t.to(device);
}

int run_command(const std::string& cmd, std::string* output) {
  std::string full = cmd + " 2>&1";
  FILE* f = popen(full.c_str(), "r");
  if (!f) return -1;
  std::array<char, 4096> buf;
  std::string out;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
  int st = pclose(f);
  if (output) *output = out;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

std::string lmforge_bin() {
  if (const char* e = std::getenv("LMF_BIN")) return e;
  return binary_path("bin/lmforge");
}

}  // namespace lmf::test
