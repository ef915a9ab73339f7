#include "lmforge/train/grad_clip.h"

#include <algorithm>
#include <cmath>

#include "lmforge/backend/cpu/reduce_norm.h"
#if LMF_WITH_CUDA
#include "lmforge/backend/cuda/reduce_norm.h"
#endif

namespace lmf {

double grad_norm(const Tensor& g) {
  if (!g.defined()) fail("grad_norm: tensor is undefined");
  if (g.dtype() != DType::f32)
    fail("grad_norm: expected f32 gradients, got ", dtype_name(g.dtype()));
  if (!g.is_contiguous()) fail("grad_norm: expected a contiguous tensor, got ", g.str());
  const float* x = static_cast<const float*>(g.data_ptr());
  if (g.device().is_cpu()) return std::sqrt(cpu::sum_of_squares(x, g.numel()));
#if LMF_WITH_CUDA
  return std::sqrt(cuda::sum_of_squares(g.device().index, x, g.numel()));
#else
  fail("grad_norm: device ", g.device().str(), ": this lmforge was built without CUDA");
#endif
}

double clip_factor(double norm, double max_norm) {
  if (!(std::isfinite(max_norm) && max_norm > 0))
    fail("clip_factor: max_norm: expected a finite value > 0, got ", max_norm);
  if (std::isnan(norm)) return norm;  // torch.clamp keeps NaN
  if (norm < 0) fail("clip_factor: norm: expected >= 0, got ", norm);
  return std::min(1.0, max_norm / (norm + 1e-6));
}

}  // namespace lmf
