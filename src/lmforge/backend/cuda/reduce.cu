// CUDA reductions (contracts in backend/kernel_list.inc; CPU reference backend/cpu/reduce.cc).
// sum_all accumulates in fp64 like the reference and reduces in a fixed tree (deterministic);
// sum_last_dim runs one warp or block per row with fp32 accumulation.
#include "lmforge/backend/cuda/kernel_util.cuh"
#include "lmforge/backend/kernels.h"

namespace lmf::cuda {

namespace {

constexpr int kSumThreads = 256;
constexpr int kSumMaxBlocks = 1024;

// Each block sums a grid-stride share of x into partial[blockIdx.x]; a single block writes
// out[0] directly.
template <class T, int VEC>
__global__ void sum_partial_kernel(const T* x, int64_t n, double* partial, float* out) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t npk = n / VEC;
  double s = 0;
  for (int64_t p = tid; p < npk; p += stride) {
    float v[VEC];
    load_pack<VEC>(x, p * VEC, v);
#pragma unroll
    for (int k = 0; k < VEC; k++) s += double(v[k]);
  }
  for (int64_t i = npk * VEC + tid; i < n; i += stride) s += double(to_f(x[i]));
  s = row_reduce(s, SumOp{}, 0.0);
  if (threadIdx.x == 0) {
    if (gridDim.x == 1) {
      out[0] = float(s);
    } else {
      partial[blockIdx.x] = s;
    }
  }
}

__global__ void sum_finish_kernel(const double* partial, int n, float* out) {
  double s = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += partial[i];
  s = row_reduce(s, SumOp{}, 0.0);
  if (threadIdx.x == 0) out[0] = float(s);
}

template <class T, int VEC>
__global__ void sum_rows_kernel(const T* x, float* out, int64_t N, int64_t C) {
  const int64_t row = int64_t(blockIdx.x) * blockDim.y + threadIdx.y;
  if (row >= N) return;  // warp mode only (see row_launch)
  const T* xr = x + row * C;
  float s = 0.f;
  for (int64_t p = threadIdx.x; p < C / VEC; p += blockDim.x) {
    float v[VEC];
    load_pack<VEC>(xr, p * VEC, v);
#pragma unroll
    for (int k = 0; k < VEC; k++) s += v[k];
  }
  s = row_sum(s);
  if (threadIdx.x == 0) out[row] = s;
}

}  // namespace

void sum_all(const Tensor& x, const Tensor& out) {
  if (out.dtype() != DType::f32) fail("sum_all: CUDA writes an f32 result, got ", dtype_name(out.dtype()));
  const int64_t n = x.numel();
  float* po = ptr<float>(out);
  if (n == 0) {
    LMF_CUDA_CHECK(cudaMemsetAsync(po, 0, sizeof(float), current_stream()));
    return;
  }
  dispatch_floating(x.dtype(), "sum_all", [&]<class T>() {
    constexpr int P = pack_size<T>();
    const T* px = ptr<T>(x);
    const bool vec = pack_aligned<T, P>(px);
    int blocks = blocks_for(vec ? (n + P - 1) / P : n, kSumThreads);
    blocks = blocks > kSumMaxBlocks ? kSumMaxBlocks : blocks;
    Tensor partial;
    double* pp = nullptr;
    if (blocks > 1) {
      partial = Tensor::empty({blocks}, DType::f64, out.device());
      pp = static_cast<double*>(partial.data_ptr());
    }
    if (vec) {
      sum_partial_kernel<T, P><<<blocks, kSumThreads, 0, current_stream()>>>(px, n, pp, po);
    } else {
      sum_partial_kernel<T, 1><<<blocks, kSumThreads, 0, current_stream()>>>(px, n, pp, po);
    }
    LMF_CUDA_CHECK_LAUNCH();
    if (blocks > 1) {
      sum_finish_kernel<<<1, kSumThreads, 0, current_stream()>>>(pp, blocks, po);
      LMF_CUDA_CHECK_LAUNCH();
    }
  });
}

void sum_last_dim(const Tensor& x, const Tensor& out) {
  if (out.dtype() != DType::f32) fail("sum_last_dim: CUDA writes f32 sums, got ", dtype_name(out.dtype()));
  const int64_t C = x.size(-1), N = out.numel();
  if (N == 0) return;
  if (C == 0) {
    LMF_CUDA_CHECK(cudaMemsetAsync(ptr<float>(out), 0, size_t(N) * sizeof(float), current_stream()));
    return;
  }
  dispatch_floating(x.dtype(), "sum_last_dim", [&]<class T>() {
    constexpr int P = pack_size<T>();
    const T* px = ptr<T>(x);
    const bool vec = C % P == 0 && pack_aligned<T, P>(px);
    const RowLaunch L = row_launch(N, vec ? C / P : C);
    if (vec) {
      sum_rows_kernel<T, P><<<L.grid, L.block, 0, current_stream()>>>(px, ptr<float>(out), N, C);
    } else {
      sum_rows_kernel<T, 1><<<L.grid, L.block, 0, current_stream()>>>(px, ptr<float>(out), N, C);
    }
    LMF_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace lmf::cuda
