// Gradient checking and CPU-vs-CUDA comparison for ops (ggml's test-backend-ops habit: every op
// joins by adding a case that calls these).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "lmforge/core/tensor.h"

namespace lmf::test {

// A differentiable function of some inputs returning one output tensor.
using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

struct GradCheckResult {
  double max_rel_error = 0;  // over all checked input elements
  std::string worst;         // "input 1 element 7: analytic 0.1 numeric 0.2"
};

// fp64 finite-difference check on the CPU. `inputs` must be f64 (integer inputs are passed
// through untouched and not differentiated). The scalar loss is sum(fn(inputs) * R) for a fixed
// random R, so every output element matters. Central differences with step h; the relative
// error per element is |a - n| / max(|a| + |n|, 1e-3) (the usual symmetric form).
GradCheckResult gradcheck(const OpFn& fn, const std::vector<Tensor>& inputs, double h = 1e-6,
                          const std::vector<bool>& differentiable = {});

// Converts a CPU f32 tensor to f64 (other dtypes returned unchanged).
Tensor to_f64(const Tensor& t);

// Runs fn on the CPU (f32) and on CUDA (inputs converted to `cuda_dtype` where floating), returns
// the relative error of the output and of every floating input gradient (computed with the
// same random R on both devices). Used by tests/cuda/*.
struct DeviceCompare {
  double out_rel = 0;
  std::vector<double> grad_rel;  // one per input (0 for non-differentiable)
};
DeviceCompare compare_cpu_cuda(const OpFn& fn, const std::vector<Tensor>& cpu_inputs, DType cuda_dtype,
                               bool check_grads = true);

}  // namespace lmf::test
