// CUDA: column-block copies (kernel_list.inc). Memory-bound; one thread per element.
#include "lmforge/backend/cuda/cuda_common.h"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

namespace {
template <class T>
__global__ void copy_columns_kernel(const T* src, int64_t Cs, int64_t s0, T* dst, int64_t Cd, int64_t d0,
                                    int64_t ncols, int64_t total, bool accumulate) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = i / ncols, c = i % ncols;
    T v = src[r * Cs + s0 + c];
    T* o = dst + r * Cd + d0 + c;
    *o = accumulate ? from_f<T>(to_f(*o) + to_f(v)) : v;
  }
}
}  // namespace

void copy_columns(const Tensor& src, int64_t src_col0, const Tensor& dst, int64_t dst_col0, int64_t ncols,
                  bool accumulate) {
  const int64_t Cs = src.size(-1), Cd = dst.size(-1), N = src.numel() / Cs, total = N * ncols;
  if (total == 0) return;
  if (src.dtype() == DType::i32 || src.dtype() == DType::i64)
    fail("copy_columns: integer tensors are not supported on CUDA");
  dispatch_floating(src.dtype(), "copy_columns", [&]<class T>() {
    copy_columns_kernel<T><<<blocks_for(total), 256, 0, current_stream()>>>(
        ptr<T>(src), Cs, src_col0, ptr<T>(dst), Cd, dst_col0, ncols, total, accumulate);
    LMF_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace lmf::cuda
