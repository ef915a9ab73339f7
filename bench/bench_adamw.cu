// Fused AdamW bandwidth benchmark: 350M fp32 params (+ bf16 compute copy), timed with CUDA
// events (warmup, median of N), against a device-to-device cudaMemcpy in the same run.
//
//   bench_adamw [n_params=350000000] [iters=20]
//
// Bytes per AdamW step: read p, g, m, v (16 B/param) + write p, m, v (12 B) + bf16 copy (2 B)
// = 30 B/param. Bytes per memcpy: read + write of the buffer. Prints one JSON line.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "lmforge/backend/cuda/adamw.h"
#include "lmforge/backend/cuda/cuda_common.h"
#include "lmforge/core/error.h"

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "bench_adamw: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

// Deterministic pseudo-random fill in [lo, hi) (a hash of the index; no RNG state needed).
__global__ void fill_kernel(float* x, int64_t n, uint32_t seed, float lo, float hi) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    x[i] = lo + (hi - lo) * float(h >> 8) * (1.0f / 16777216.0f);
  }
}

void fill(float* x, int64_t n, uint32_t seed, float lo, float hi) {
  fill_kernel<<<1024, 256>>>(x, n, seed, lo, hi);
  check(cudaGetLastError(), "fill");
}

double median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Median milliseconds of `iters` timed calls of f after `warmup` untimed ones.
template <class F>
double time_ms(F&& f, int warmup, int iters) {
  for (int i = 0; i < warmup; i++) f();
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "event");
  check(cudaEventCreate(&b), "event");
  std::vector<float> ms;
  for (int i = 0; i < iters; i++) {
    check(cudaEventRecord(a, lmf::cuda::current_stream()), "record");
    f();
    check(cudaEventRecord(b, lmf::cuda::current_stream()), "record");
    check(cudaEventSynchronize(b), "sync");
    float t = 0;
    check(cudaEventElapsedTime(&t, a, b), "elapsed");
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return median(ms);
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 350000000;
  const int iters = argc > 2 ? std::atoi(argv[2]) : 20;
  if (n <= 0 || iters <= 0) {
    std::fprintf(stderr, "usage: bench_adamw [n_params > 0] [iters > 0]\n");
    return 2;
  }
  check(cudaSetDevice(0), "cudaSetDevice");
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "properties");

  float *p, *g, *m, *v;
  void* copy;
  check(cudaMalloc(&p, n * sizeof(float)), "malloc p");
  check(cudaMalloc(&g, n * sizeof(float)), "malloc g");
  check(cudaMalloc(&m, n * sizeof(float)), "malloc m");
  check(cudaMalloc(&v, n * sizeof(float)), "malloc v");
  check(cudaMalloc(&copy, n * 2), "malloc copy");
  fill(p, n, 1, -1.f, 1.f);
  fill(g, n, 2, -1e-2f, 1e-2f);
  check(cudaMemset(m, 0, n * sizeof(float)), "memset m");
  check(cudaMemset(v, 0, n * sizeof(float)), "memset v");

  // Two groups (decay / no decay) as a real model has; scalars as AdamW::step makes them at t=1.
  const lmf::AdamWRange ranges[2] = {{0, n - n / 100, float(1.0 - 3e-4 * 0.1), float(3e-4 / 0.1)},
                                     {n - n / 100, n, 1.0f, float(3e-4 / 0.1)}};
  lmf::AdamWScalars s;
  s.beta2 = 0.95f;
  s.one_minus_beta1 = float(1.0 - 0.9);
  s.one_minus_beta2 = float(1.0 - 0.95);
  s.eps = 1e-8f;
  s.bias_correction2_sqrt = float(std::sqrt(1.0 - 0.95));
  s.grad_scale = 1.0f;

  double adamw_ms = 0;
  try {
    adamw_ms = time_ms(
        [&] { lmf::cuda::adamw_step(0, p, g, m, v, copy, lmf::DType::bf16, n, ranges, 2, s); }, 3,
        iters);
  } catch (const lmf::Error& e) {
    std::fprintf(stderr, "bench_adamw: %s\n", e.what());
    return 1;
  }
  const double adamw_bytes = double(n) * (16 + 12 + 2);

  // Reference: device-to-device copy of a buffer the size of the AdamW traffic / 2 (capped).
  const size_t copy_bytes = std::min<size_t>(size_t(n) * 8, size_t(4) << 30);
  void *src, *dst;
  check(cudaMalloc(&src, copy_bytes), "malloc src");
  check(cudaMalloc(&dst, copy_bytes), "malloc dst");
  check(cudaMemset(src, 1, copy_bytes), "memset src");
  const double memcpy_ms =
      time_ms([&] { check(cudaMemcpyAsync(dst, src, copy_bytes, cudaMemcpyDeviceToDevice, lmf::cuda::current_stream()), "memcpy"); },
              3, iters);
  const double memcpy_bytes = 2.0 * double(copy_bytes);

  const double adamw_gbps = adamw_bytes / (adamw_ms * 1e-3) / 1e9;
  const double memcpy_gbps = memcpy_bytes / (memcpy_ms * 1e-3) / 1e9;
  std::printf(
      "{\"bench\":\"adamw\",\"device\":\"%s\",\"n_params\":%lld,\"iters\":%d,"
      "\"adamw_ms\":%.4f,\"adamw_bytes\":%.0f,\"adamw_gbps\":%.1f,"
      "\"memcpy_ms\":%.4f,\"memcpy_bytes\":%.0f,\"memcpy_gbps\":%.1f,\"ratio\":%.3f}\n",
      prop.name, (long long)n, iters, adamw_ms, adamw_bytes, adamw_gbps, memcpy_ms, memcpy_bytes,
      memcpy_gbps, adamw_gbps / memcpy_gbps);
  cudaFree(p);
  cudaFree(g);
  cudaFree(m);
  cudaFree(v);
  cudaFree(copy);
  cudaFree(src);
  cudaFree(dst);
  return 0;
}
