// CUDA: column-block copies (kernel_list.inc). Memory-bound: one block per row (grid-stride),
// threads across the row's columns, 16-byte accesses when every offset and row length allows.
#include <cstdint>

#include "lmforge/backend/cuda/cuda_common.h"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

namespace {

// V = elements per access (1 for the scalar path, 16 / sizeof(T) for uint4 accesses).
template <class T, int V>
__global__ void copy_columns_kernel(const T* __restrict__ src, int64_t Cs, int64_t s0, T* __restrict__ dst,
                                    int64_t Cd, int64_t d0, int64_t ncols, int64_t rows, bool accumulate) {
  const int64_t nvec = ncols / V;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* s = src + r * Cs + s0;
    T* d = dst + r * Cd + d0;
    for (int64_t c = threadIdx.x; c < nvec; c += blockDim.x) {
      if constexpr (V > 1) {
        reinterpret_cast<uint4*>(d)[c] = reinterpret_cast<const uint4*>(s)[c];
      } else {
        d[c] = accumulate ? from_f<T>(to_f(d[c]) + to_f(s[c])) : s[c];
      }
    }
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace

void copy_columns(const Tensor& src, int64_t src_col0, const Tensor& dst, int64_t dst_col0, int64_t ncols,
                  bool accumulate) {
  const int64_t Cs = src.size(-1), Cd = dst.size(-1), rows = src.numel() / Cs;
  if (rows == 0 || ncols == 0) return;
  if (src.dtype() == DType::i32 || src.dtype() == DType::i64)
    fail("copy_columns: integer tensors are not supported on CUDA");
  const int blocks = int(std::min<int64_t>(rows, int64_t(sm_count()) * 16));
  dispatch_floating(src.dtype(), "copy_columns", [&]<class T>() {
    constexpr int V = int(16 / sizeof(T));
    const T* s = ptr<T>(src);
    T* d = ptr<T>(dst);
    const bool vec = !accumulate && Cs % V == 0 && Cd % V == 0 && src_col0 % V == 0 && dst_col0 % V == 0 &&
                     ncols % V == 0 && aligned16(s) && aligned16(d);
    const int threads = int(std::min<int64_t>(256, std::max<int64_t>(32, (vec ? ncols / V : ncols))));
    if (vec)
      copy_columns_kernel<T, V><<<blocks, threads, 0, current_stream()>>>(s, Cs, src_col0, d, Cd, dst_col0, ncols,
                                                                          rows, false);
    else
      copy_columns_kernel<T, 1><<<blocks, threads, 0, current_stream()>>>(s, Cs, src_col0, d, Cd, dst_col0, ncols,
                                                                          rows, accumulate);
    LMF_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace lmf::cuda
