// bf16 GEMM throughput through the op users call: y = x W^T with ops::linear, x and W
// [size, size] bf16 on cuda:0 (cuBLASLt, fp32 accumulation). Times `runs` calls with CUDA events
// on lmforge's stream after `warmup` calls and prints one JSON line:
//   {"op":"gemm_bf16_8192","tflops":...,"median_ms":...,"runs":20,"device":"..."}
// Peer: bench/peers/gemm_torch.py (torch.nn.functional.linear, same keys).
// Usage: bench_gemm [--size N] [--runs R] [--warmup W]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/cuda/cuda_common.h"
#include "lmforge/core/device_memory.h"
#include "lmforge/ops/linear.h"

namespace {

lmf::Tensor random_bf16(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(size_t(rows * cols));
  for (auto& x : v) x = dist(gen);
  return lmf::Tensor::from_floats(v, {rows, cols}, lmf::DType::bf16, lmf::Device::cuda(0));
}

int run(int64_t size, int runs, int warmup) {
  using namespace lmf;
  if (cuda_device_count() == 0) fail("bench_gemm: no CUDA device visible");
  autograd::NoGradGuard no_grad;
  Tensor x = random_bf16(size, size, 1), w = random_bf16(size, size, 2);
  for (int i = 0; i < warmup; i++) ops::linear(x, w);
  cudaStream_t stream = cuda::current_stream();
  cudaEvent_t start, stop;
  LMF_CUDA_CHECK(cudaEventCreate(&start));
  LMF_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<float> ms(size_t(runs), 0.f);
  for (int i = 0; i < runs; i++) {
    LMF_CUDA_CHECK(cudaEventRecord(start, stream));
    Tensor y = ops::linear(x, w);
    LMF_CUDA_CHECK(cudaEventRecord(stop, stream));
    LMF_CUDA_CHECK(cudaEventSynchronize(stop));
    LMF_CUDA_CHECK(cudaEventElapsedTime(&ms[size_t(i)], start, stop));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  const double median_ms = runs % 2 ? ms[size_t(runs / 2)] : 0.5 * (ms[size_t(runs / 2 - 1)] + ms[size_t(runs / 2)]);
  const double tflops = 2.0 * double(size) * double(size) * double(size) / (median_ms * 1e-3) / 1e12;
  cudaDeviceProp prop{};
  LMF_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("{\"op\":\"gemm_bf16_%lld\",\"tflops\":%.1f,\"median_ms\":%.3f,\"runs\":%d,\"device\":\"%s\"}\n",
              static_cast<long long>(size), tflops, median_ms, runs, prop.name);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t size = 8192;
  int runs = 20, warmup = 5;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "bench_gemm: %s needs a value\nusage: bench_gemm [--size N] [--runs R] [--warmup W]\n",
                   a.c_str());
      return 2;
    }
    long long v = std::atoll(argv[++i]);
    if (a == "--size" && v > 0) {
      size = v;
    } else if (a == "--runs" && v > 0) {
      runs = int(v);
    } else if (a == "--warmup" && v >= 0) {
      warmup = int(v);
    } else {
      std::fprintf(stderr, "bench_gemm: bad argument %s %s\nusage: bench_gemm [--size N] [--runs R] [--warmup W]\n",
                   a.c_str(), argv[i]);
      return 2;
    }
  }
  try {
    return run(size, runs, warmup);
  } catch (const lmf::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
