// The kernel list every backend implements: lmf::cpu::X in backend/cpu/*.cc (the readable
// reference, the specification) and lmf::cuda::X in backend/cuda/*.cu (the fast path).
// The same declarations are stamped into both namespaces from kernel_list.inc, so the two can
// never drift apart in signature.
//
// Conventions for every kernel
//  - Callers (the ops/ layer) have validated shapes, dtypes and devices and allocated the
//    outputs; kernels assume contiguous tensors unless the comment says otherwise.
//  - Floating inputs are f32 / bf16 (/ f64 on CPU, for gradient checks). Internal accumulation
//    is fp32 (fp64 on CPU where it matters); statistics (mean, rstd, lse) are always f32 (f64
//    when inputs are f64).
//  - "accumulate" outputs (named d*_acc) are ADDED into (+=) — parameter gradients; all other
//    outputs are overwritten.
#pragma once

#include <cstdint>
#include <vector>

#include "lmforge/core/tensor.h"

namespace lmf {

enum class Activation : uint8_t { gelu_erf, gelu_tanh, silu, relu, softplus, tanh_act };
const char* activation_name(Activation a);
Activation parse_activation(const std::string& hf_name);  // "gelu", "gelu_new", "silu", ...

// Most pieces one copy_column_pieces call takes.
constexpr int kMaxColumnPieces = 8;

namespace cpu {
#include "lmforge/backend/kernel_list.inc"
}
namespace cuda {
#include "lmforge/backend/kernel_list.inc"
// CUDA-only runtime helpers.
void set_device(int index);
// Total memory of CUDA device `index` in bytes (the driver's figure).
size_t device_total_bytes(int index);
}  // namespace cuda

}  // namespace lmf

// Calls cpu::fn or cuda::fn by the device of `dev_tensor`. Throws when CUDA is not built.
#if LMF_WITH_CUDA
#define LMF_DISPATCH(dev_tensor, fn, ...)                                   \
  ((dev_tensor).device().is_cpu() ? ::lmf::cpu::fn(__VA_ARGS__) : ::lmf::cuda::fn(__VA_ARGS__))
#else
#define LMF_DISPATCH(dev_tensor, fn, ...)                                                 \
  ((dev_tensor).device().is_cpu() ? ::lmf::cpu::fn(__VA_ARGS__)                           \
                                  : ::lmf::fail(#fn ": this lmforge was built without CUDA"))
#endif
