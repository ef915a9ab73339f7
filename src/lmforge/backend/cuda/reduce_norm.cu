// Two-pass fp64 sum of squares (contract in reduce_norm.h).
// Pass 1: a fixed grid (depends only on n) of blocks each sums a grid-stride slice (16-byte
// loads when aligned) and reduces it in the block with warp shuffles -> one partial per block.
// Pass 2: one block reduces the partials in a fixed order. No atomics: bitwise reproducible.
#include <cuda_runtime.h>

#include <algorithm>

#include "lmforge/backend/cuda/cuda_common.h"
#include "lmforge/backend/cuda/reduce_norm.h"
#include "lmforge/core/device_memory.h"
#include "lmforge/core/error.h"

namespace lmf::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;

void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("cuda sum_of_squares: ", what, ": ", cudaGetErrorString(e));
}

// Sum over the block; the result is valid in thread 0. blockDim.x is a multiple of 32, <= 1024.
__device__ double block_sum(double x) {
  __shared__ double warp_sums[32];
  for (int off = 16; off > 0; off >>= 1) x += __shfl_down_sync(0xffffffffu, x, off);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = x;
  __syncthreads();
  const int warps = blockDim.x >> 5;
  x = (threadIdx.x < warps) ? warp_sums[threadIdx.x] : 0.0;
  if (warp == 0)
    for (int off = 16; off > 0; off >>= 1) x += __shfl_down_sync(0xffffffffu, x, off);
  return x;
}

template <bool kVec4>
__global__ void __launch_bounds__(kThreads)
    sum_squares_partial(const float* __restrict__ x, int64_t n, double* __restrict__ partial) {
  double acc = 0.0;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  int64_t scalar_from = 0;
  if constexpr (kVec4) {
    const int64_t vecs = n / 4;
    for (int64_t k = tid; k < vecs; k += stride) {
      const float4 v = reinterpret_cast<const float4*>(x)[k];
      acc += double(v.x) * v.x + double(v.y) * v.y + double(v.z) * v.z + double(v.w) * v.w;
    }
    scalar_from = vecs * 4;
  }
  for (int64_t i = scalar_from + tid; i < n; i += stride) acc += double(x[i]) * x[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void __launch_bounds__(kMaxBlocks)
    sum_partials(const double* __restrict__ partial, int count, double* __restrict__ out) {
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc);
  if (threadIdx.x == 0) *out = acc;
}

}  // namespace

double sum_of_squares(int device, const float* x, int64_t n) {
  LMF_CHECK(n >= 0);
  if (n == 0) return 0.0;
  int previous = -1;
  check_cuda(cudaGetDevice(&previous), "cudaGetDevice");
  if (previous != device) check_cuda(cudaSetDevice(device), "cudaSetDevice");

  const int64_t per_block = int64_t(kThreads) * 8;  // ~8 floats per thread before growing the grid
  const int blocks = int(std::clamp<int64_t>((n + per_block - 1) / per_block, 1, kMaxBlocks));
  const Device dev = Device::cuda(device);
  const size_t scratch_bytes = size_t(blocks + 1) * sizeof(double);
  auto* scratch = static_cast<double*>(device_alloc(dev, scratch_bytes));
  double result = 0.0;
  cudaError_t err = cudaSuccess;
  // On lmforge's (non-blocking) stream, after the kernels that wrote x: the legacy default stream
  // would not wait for them.
  cudaStream_t stream = current_stream();
  if (reinterpret_cast<uintptr_t>(x) % 16 == 0)
    sum_squares_partial<true><<<blocks, kThreads, 0, stream>>>(x, n, scratch + 1);
  else
    sum_squares_partial<false><<<blocks, kThreads, 0, stream>>>(x, n, scratch + 1);
  err = cudaGetLastError();
  if (err == cudaSuccess) {
    sum_partials<<<1, kMaxBlocks, 0, stream>>>(scratch + 1, blocks, scratch);
    err = cudaGetLastError();
  }
  if (err == cudaSuccess) err = cudaMemcpyAsync(&result, scratch, sizeof(double), cudaMemcpyDeviceToHost, stream);
  if (err == cudaSuccess) err = cudaStreamSynchronize(stream);
  device_free(dev, scratch, scratch_bytes);
  if (previous != device) (void)cudaSetDevice(previous);
  check_cuda(err, "reduction");
  return result;
}

}  // namespace lmf::cuda
