// Shared helpers for the GoogleTest suites.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "lmforge/core/rng.h"
#include "lmforge/core/tensor.h"

namespace lmf::test {

// Absolute path of a file in the source tree / build tree.
std::string source_path(const std::string& rel);
std::string binary_path(const std::string& rel);
// A fresh empty directory under the build tree's test scratch area.
std::string scratch_dir(const std::string& name);

// ||a - b|| / max(||b||, tiny): the relative error used for kernel and fixture comparisons.
double rel_error(const std::vector<double>& a, const std::vector<double>& b);
double rel_error(const Tensor& a, const Tensor& b);
double max_abs_diff(const Tensor& a, const Tensor& b);
bool all_finite(const Tensor& t);

// Random tensor, never all zeros: U[lo, hi) drawn from a fixed per-call seed.
Tensor random_tensor(const Shape& shape, DType dtype, uint64_t seed, float lo = -1.f, float hi = 1.f,
                     Device device = Device::cpu());

// Runs a shell command, returns its exit code and captures stdout+stderr.
int run_command(const std::string& cmd, std::string* output);
// Path of the built lmforge binary.
std::string lmforge_bin();

}  // namespace lmf::test
