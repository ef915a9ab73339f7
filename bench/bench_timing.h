// Timing shared by the op benchmarks: elapsed milliseconds of fn on the device (CUDA events on
// lmforge's stream) or the host clock followed by a device synchronize.
#pragma once

#include <chrono>

#include "lmforge/core/device_memory.h"

#if LMF_WITH_CUDA
#include <cuda_runtime.h>

#include "lmforge/backend/cuda/cuda_common.h"
#endif

namespace lmf::bench {

template <class F>
double time_ms(Device dev, F&& fn) {
#if LMF_WITH_CUDA
  if (dev.is_cuda()) {
    cudaEvent_t e0, e1;
    LMF_CUDA_CHECK(cudaEventCreate(&e0));
    LMF_CUDA_CHECK(cudaEventCreate(&e1));
    LMF_CUDA_CHECK(cudaEventRecord(e0, cuda::current_stream()));
    fn();
    LMF_CUDA_CHECK(cudaEventRecord(e1, cuda::current_stream()));
    LMF_CUDA_CHECK(cudaEventSynchronize(e1));
    float ms = 0;
    LMF_CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
    LMF_CUDA_CHECK(cudaEventDestroy(e0));
    LMF_CUDA_CHECK(cudaEventDestroy(e1));
    return ms;
  }
#endif
  auto t0 = std::chrono::steady_clock::now();
  fn();
  synchronize(dev);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace lmf::bench
