// CPU reference: dropout with the Philox mask (core/philox.h). Element i is kept iff
// philox_uniform(seed, offset, i) >= p, and kept values are scaled by 1/(1-p) in fp32, so the
// CUDA kernel (backend/cuda/dropout.cu) produces the same mask and the same f32 values.
#include "lmforge/backend/cpu/cpu_util.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/core/philox.h"

namespace lmf::cpu {

namespace {
// dst = src * mask / (1 - p); forward and backward are the same map.
void apply_mask(const Tensor& src, const Tensor& dst, float p, uint64_t seed, uint64_t offset, const char* op) {
  const float scale = 1.0f / (1.0f - p);
  const int64_t n = src.numel();
  const int64_t groups = (n + 3) / 4;  // one Philox call serves 4 consecutive elements
  dispatch_floating(src.dtype(), op, [&]<class T>() {
    const T* s = src.data<T>();
    T* d = dst.data<T>();
#pragma omp parallel for if (n > 65536)
    for (int64_t g = 0; g < groups; g++) {
      const Philox4 r = philox4x32_10(seed, uint64_t(g), offset);
      for (int k = 0; k < 4 && 4 * g + k < n; k++) {
        const int64_t i = 4 * g + k;
        const bool keep = philox_uniform01(r.v[k]) >= p;
        d[i] = store<T>(keep ? load(s[i]) * acc_t<T>(scale) : acc_t<T>(0));
      }
    }
  });
}
}  // namespace

void dropout_forward(const Tensor& x, const Tensor& y, float p, uint64_t seed, uint64_t offset) {
  apply_mask(x, y, p, seed, offset, "dropout_forward");
}

void dropout_backward(const Tensor& dy, const Tensor& dx, float p, uint64_t seed, uint64_t offset) {
  apply_mask(dy, dx, p, seed, offset, "dropout_backward");
}

}  // namespace lmf::cpu
