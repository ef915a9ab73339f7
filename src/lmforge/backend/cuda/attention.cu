// Placeholder until the flash-attention kernels land (helper/attention step 2): the CUDA
// attention op reports that it is not available yet instead of failing to link.
#include "lmforge/backend/cuda/cuda_common.h"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

void attention_forward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, int64_t, float, bool, int64_t,
                       int64_t, const Tensor&, const Tensor&) {
  fail("[attention] the CUDA attention kernels are not built yet (CPU only in this revision)");
}

void attention_backward(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                        const Tensor&, int64_t, float, bool, int64_t, int64_t, const Tensor&, const Tensor&,
                        const Tensor&) {
  fail("[attention] the CUDA attention kernels are not built yet (CPU only in this revision)");
}

}  // namespace lmf::cuda
