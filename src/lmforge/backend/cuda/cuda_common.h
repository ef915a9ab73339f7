// Shared by every CUDA backend file (.cu and .cc under backend/cuda): error checking, the
// per-device stream, and bf16/float element access. Only backend/cuda includes CUDA headers.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "lmforge/core/error.h"
#include "lmforge/core/tensor.h"

namespace lmf::cuda {

// Throws lmf::Error "CUDA error at file:line: <op>: <cudaGetErrorString>".
void throw_cuda_error(cudaError_t e, const char* what, const char* file, int line);

#define LMF_CUDA_CHECK(expr)                                                          \
  do {                                                                                \
    cudaError_t lmf_e_ = (expr);                                                      \
    if (lmf_e_ != cudaSuccess) ::lmf::cuda::throw_cuda_error(lmf_e_, #expr, __FILE__, __LINE__); \
  } while (0)
// After every kernel launch.
#define LMF_CUDA_CHECK_LAUNCH() LMF_CUDA_CHECK(cudaGetLastError())

// The stream all lmforge kernels of this thread run on (one per device, non-blocking).
cudaStream_t current_stream();

// Number of multiprocessors of the current device (cached).
int sm_count();

// kReduceCounters u32 counters of the current device, zero when no kernel is using them: for
// reductions whose last block finishes the sum (it sees the count reach the grid size and
// resets its counter to 0). Allocated on first use; ordered by lmforge's one stream per device.
constexpr int64_t kReduceCounters = 65536;
unsigned int* reduce_counters();

// Blocks for a grid-stride loop over n elements.
inline int blocks_for(int64_t n, int threads = 256) {
  int64_t b = (n + threads - 1) / threads;
  int64_t cap = int64_t(sm_count()) * 32;
  return int(b < 1 ? 1 : (b > cap ? cap : b));
}

// Element access through float for the dtypes kernels template over.
template <class T> __device__ __forceinline__ float to_f(T v) { return float(v); }
template <> __device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <> __device__ __forceinline__ float to_f<__half>(__half v) { return __half2float(v); }
template <class T> __device__ __forceinline__ T from_f(float v) { return T(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16(v); }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half(v); }

// Calls f.template operator()<T>() with T = float / __nv_bfloat16 / __half for f32/bf16/f16.
template <class F>
void dispatch_floating(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::f32: f.template operator()<float>(); break;
    case DType::bf16: f.template operator()<__nv_bfloat16>(); break;
    case DType::f16: f.template operator()<__half>(); break;
    default: fail(op, ": CUDA kernels take f32, bf16 or f16, got ", dtype_name(t));
  }
}

template <class T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}

}  // namespace lmf::cuda
