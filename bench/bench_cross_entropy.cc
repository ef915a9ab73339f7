// Benchmark of the fused chunked cross-entropy (ops::cross_entropy): forward + backward of the
// LM loss over h [tokens, hidden] and W [vocab, hidden] as a parameter with an fp32 gradient slot.
// Prints one JSON line with the keys of bench/peers/cross_entropy_torch.py:
//   bench, impl, device, dtype, tokens, vocab, hidden, iters, median_ms, min_ms, tokens_per_s,
//   model_tflops (6 * tokens * vocab * hidden FLOPs of the unfused computation / median time),
//   peak_bytes (allocator high-water mark during the timed steps), peak_extra_bytes (that minus
//   what inputs, parameters and gradient buffers already held), loss.
// Usage: bench_cross_entropy [--tokens 8192] [--vocab 262144] [--hidden 1024] [--iters 10]
//        [--warmup 3] [--device cuda|cpu] [--dtype bf16|f32] [--chunk-rows R] [--chunk-vocab C]
//        [--weighted] [--topk]
// Times are CUDA events on lmforge's stream (wall clock on cpu); the median is reported.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_timing.h"
#include "lmforge/autograd/tape.h"
#include "lmforge/core/device_memory.h"
#include "lmforge/core/rng.h"
#include "lmforge/ops/cross_entropy.h"

#if LMF_WITH_CUDA
#include <cuda_runtime.h>

#include "lmforge/backend/cuda/cuda_common.h"
#endif

using namespace lmf;

namespace {

struct Args {
  int64_t tokens = 8192, vocab = 262144, hidden = 1024;
  int iters = 10, warmup = 3;
  std::string device = "cuda", dtype = "bf16";
  int64_t chunk_rows = 0, chunk_vocab = 0;
  bool weighted = false, topk = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i++) {
    std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) fail("bench_cross_entropy: ", k, " needs a value");
      return argv[++i];
    };
    if (k == "--tokens")
      a.tokens = std::stoll(next());
    else if (k == "--vocab")
      a.vocab = std::stoll(next());
    else if (k == "--hidden")
      a.hidden = std::stoll(next());
    else if (k == "--iters")
      a.iters = std::stoi(next());
    else if (k == "--warmup")
      a.warmup = std::stoi(next());
    else if (k == "--device")
      a.device = next();
    else if (k == "--dtype")
      a.dtype = next();
    else if (k == "--chunk-rows")
      a.chunk_rows = std::stoll(next());
    else if (k == "--chunk-vocab")
      a.chunk_vocab = std::stoll(next());
    else if (k == "--weighted")
      a.weighted = true;
    else if (k == "--topk")
      a.topk = true;
    else
      fail("bench_cross_entropy: unknown argument '", k, "'");
  }
  if (a.iters < 1) fail("bench_cross_entropy: --iters must be >= 1");
  return a;
}

Tensor uniform(const Shape& s, DType dt, Device dev, uint64_t seed, float lo, float hi) {
  Tensor t = Tensor::empty(s, DType::f32);
  fill_uniform_cpu(t, seed, 0, lo, hi);
  return Tensor::from_floats(t.to_float_vector(), s, dt, dev);
}

using bench::time_ms;

int run(const Args& a) {
  const Device dev = a.device == "cpu" ? Device::cpu() : Device::cuda(0);
  const DType dt = parse_dtype(a.dtype);
  const int64_t N = a.tokens, V = a.vocab, H = a.hidden;
  // Typical scales: unit-variance hidden states, W ~ U(+-1/sqrt(H)) -> logits of order 1.
  const float ws = 1.f / std::sqrt(float(H));
  Tensor h = uniform({N, H}, dt, dev, 1, -1.7f, 1.7f);
  Tensor W = uniform({V, H}, dt, dev, 2, -ws, ws);
  Tensor slot = Tensor::zeros({V * H}, DType::f32, dev);
  autograd::make_param(W, slot, "lm_head.weight");
  std::vector<int64_t> tg(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; n++) tg[size_t(n)] = (n * 2654435761LL) % V;
  Tensor targets = Tensor::from_vector<int64_t>(tg, {N}, dev);
  Tensor weights;
  if (a.weighted) {  // Mambaoutai's positional weighting tanh(pos / 10) over 4096-token sequences
    std::vector<float> w(static_cast<size_t>(N));
    for (int64_t n = 0; n < N; n++) w[size_t(n)] = std::tanh(float(n % 4096) / 10.f);
    weights = Tensor::from_floats(w, {N}, DType::f32, dev);
  }
  ops::CrossEntropyOptions opt;
  opt.want_topk = a.topk;
  opt.chunk_rows = a.chunk_rows;
  opt.chunk_vocab = a.chunk_vocab;

  double loss = 0;
  auto step = [&] {
    Tensor hs = h;  // fresh leaf each step so its gradient is assigned, not accumulated
    autograd::set_requires_grad(hs);
    auto res = ops::cross_entropy(hs, W, targets, weights, opt);
    autograd::backward(res.loss);
    loss = res.loss.item();
  };
  for (int i = 0; i < a.warmup; i++) step();
  synchronize(dev);
  const size_t baseline = memory_stats(dev).current_bytes;
  reset_peak_memory(dev);
  std::vector<double> ms;
  for (int i = 0; i < a.iters; i++) ms.push_back(time_ms(dev, step));
  const size_t peak = memory_stats(dev).peak_bytes;
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2];
  const double flops = 6.0 * double(N) * double(V) * double(H);
  std::printf(
      "{\"bench\": \"cross_entropy\", \"impl\": \"lmforge\", \"device\": \"%s\", \"dtype\": \"%s\", \"tokens\": %lld, "
      "\"vocab\": %lld, \"hidden\": %lld, \"iters\": %d, \"median_ms\": %.4f, \"min_ms\": %.4f, \"tokens_per_s\": "
      "%.1f, "
      "\"model_tflops\": %.2f, \"peak_bytes\": %zu, \"peak_extra_bytes\": %zu, \"loss\": %.6f}\n",
      dev.str().c_str(), a.dtype.c_str(), (long long)N, (long long)V, (long long)H, a.iters, median, ms.front(),
      double(N) / (median / 1e3), flops / (median / 1e3) / 1e12, peak, peak > baseline ? peak - baseline : size_t(0),
      loss);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cross_entropy: %s\n", e.what());
    return 1;
  }
}
