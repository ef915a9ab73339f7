// Mamba kernel bandwidth: selective scan and causal conv1d, forward and backward, at the
// Mamba-130m (B 8, L 1024 and B 4, L 4096, D 1536) and Mamba-1.4B (B 4, L 2048, D 4096) shapes
// with N = 16,
// K = 4, bf16 activations and f32 A_log / D / dt bias (the training layout; conv weights bf16),
// plus the 130m scan with packed documents (seq_idx). Calls the lmf::cuda kernels directly with
// preallocated outputs, times `runs` calls with CUDA events on lmforge's stream after `warmup`
// calls (median), and times a 1 GiB device-to-device cudaMemcpy in the same run.
// One JSON line per case:
//   {"op":"scan_fwd","shape":"mamba-130m","B":8,"L":1024,"D":1536,"N":16,"K":4,"docs":false,
//    "variant":"auto","median_ms":..,"bytes":..,"gbs":..,"memcpy_gbs":..,"ratio":..,"device":".."}
// Bytes = interface traffic, each tensor once: scan fwd reads u, delta, z, B, C and writes out;
// scan bwd reads u, delta, z, B, C, dout and writes du, ddelta, dz, dB, dC; conv fwd reads x and
// writes y; conv bwd reads x, dy and writes dx. memcpy_gbs counts read + write. ratio = gbs /
// memcpy_gbs (the scan forward targets >= 0.6).
// Peer: mamba-ssm's selective_scan_fn / causal_conv1d_fn at the same shapes (run separately).
// --variants also times the scan with the chunk-parallel walkers (LMF_SCAN_IMPL=chunked: "chunked",
// "chunked rows=1|4" with LMF_SCAN_WALK_ROWS), the row walkers with each lane count forced
// (LMF_SCAN_ROWS_G: "rows G=1|2|4|8") and the backward with fixed segment sizes
// (LMF_SCAN_SEG_CHUNKS, "seg=S"): the data for tuning the automatic choices (variant "auto").
// Usage: bench_mamba_kernels [--runs R] [--warmup W] [--shape 130m|130m-4k|1.4b|all] [--variants]
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "lmforge/core/scoped_env.h"
#include "lmforge/autograd/tape.h"
#include "lmforge/backend/cuda/cuda_common.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/core/device_memory.h"

namespace {

using namespace lmf;

// Deterministic U[lo, hi) from a hash of the index (fast enough for 10^8 values).
Tensor random_tensor(const Shape& shape, DType dtype, uint32_t seed, float lo, float hi) {
  std::vector<float> v(size_t(shape_numel(shape)));
  for (size_t i = 0; i < v.size(); i++) {
    uint32_t h = uint32_t(i) * 2654435761u ^ (seed * 0x9e3779b9u);
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    v[i] = lo + (hi - lo) * float(h >> 8) * (1.0f / 16777216.0f);
  }
  return Tensor::from_floats(v, shape, dtype, Device::cuda(0));
}

// Median milliseconds of `runs` timed calls of f after `warmup` untimed ones.
double time_ms(const std::function<void()>& f, int runs, int warmup) {
  cudaStream_t stream = cuda::current_stream();
  for (int i = 0; i < warmup; i++) f();
  cudaEvent_t start, stop;
  LMF_CUDA_CHECK(cudaEventCreate(&start));
  LMF_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<float> ms(size_t(runs), 0.f);
  for (int i = 0; i < runs; i++) {
    LMF_CUDA_CHECK(cudaEventRecord(start, stream));
    f();
    LMF_CUDA_CHECK(cudaEventRecord(stop, stream));
    LMF_CUDA_CHECK(cudaEventSynchronize(stop));
    LMF_CUDA_CHECK(cudaEventElapsedTime(&ms[size_t(i)], start, stop));
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(ms.begin(), ms.end());
  return runs % 2 ? ms[size_t(runs / 2)] : 0.5 * (ms[size_t(runs / 2 - 1)] + ms[size_t(runs / 2)]);
}

// Device-to-device copy bandwidth (read + write bytes) of a 1 GiB buffer.
double memcpy_gbs(int runs, int warmup) {
  const int64_t n = int64_t(1) << 28;  // f32 elements: 1 GiB
  Tensor a = Tensor::empty({n}, DType::f32, Device::cuda(0)), b = Tensor::empty({n}, DType::f32, Device::cuda(0));
  LMF_CUDA_CHECK(cudaMemsetAsync(a.data_ptr(), 0, a.nbytes(), cuda::current_stream()));
  const double ms = time_ms(
      [&] {
        LMF_CUDA_CHECK(cudaMemcpyAsync(b.data_ptr(), a.data_ptr(), a.nbytes(), cudaMemcpyDeviceToDevice,
                                       cuda::current_stream()));
      },
      runs, warmup);
  return 2.0 * double(a.nbytes()) / (ms * 1e-3) / 1e9;
}

struct Shape4 {
  const char* name;
  int64_t B, L, D, N, K;
};

struct Ctx {
  int runs, warmup;
  double copy_gbs;
  std::string device;
  bool variants;
};

void report(const Ctx& c, const char* op, const Shape4& s, bool docs, double ms, double bytes,
            const std::string& variant = "auto") {
  const double gbs = bytes / (ms * 1e-3) / 1e9;
  std::printf(
      "{\"op\":\"%s\",\"shape\":\"%s\",\"B\":%lld,\"L\":%lld,\"D\":%lld,\"N\":%lld,\"K\":%lld,\"docs\":%s,"
      "\"variant\":\"%s\",\"median_ms\":%.4f,\"bytes\":%.0f,\"gbs\":%.1f,\"memcpy_gbs\":%.1f,\"ratio\":%.3f,"
      "\"device\":\"%s\"}\n",
      op, s.name, static_cast<long long>(s.B), static_cast<long long>(s.L), static_cast<long long>(s.D),
      static_cast<long long>(s.N), static_cast<long long>(s.K), docs ? "true" : "false", variant.c_str(), ms, bytes,
      gbs, c.copy_gbs, gbs / c.copy_gbs, c.device.c_str());
  std::fflush(stdout);
}


// Packed documents of 100..400 tokens (a realistic packing density).
Tensor doc_ids(int64_t B, int64_t L) {
  std::vector<int32_t> v(size_t(B * L));
  for (int64_t b = 0; b < B; b++) {
    int32_t id = 0;
    int64_t next = 100 + (b * 37) % 300;
    for (int64_t t = 0; t < L; t++) {
      if (t == next) {
        id++;
        next += 100 + (id * 53 + b * 17) % 300;
      }
      v[size_t(b * L + t)] = id;
    }
  }
  return Tensor::from_vector<int32_t>(v, {B, L}, Device::cuda(0));
}

void bench_shape(const Ctx& c, const Shape4& s, bool with_docs_variant) {
  const int64_t B = s.B, L = s.L, D = s.D, N = s.N, K = s.K;
  const DType bf = DType::bf16;
  Tensor u = random_tensor({B, L, D}, bf, 1, -1.f, 1.f), delta = random_tensor({B, L, D}, bf, 2, -4.f, 0.f);
  Tensor z = random_tensor({B, L, D}, bf, 3, -1.f, 1.f);
  Tensor Bm = random_tensor({B, L, N}, bf, 4, -1.f, 1.f), Cm = random_tensor({B, L, N}, bf, 5, -1.f, 1.f);
  Tensor A_log = random_tensor({D, N}, DType::f32, 6, 0.f, 2.8f);  // log(1..16), S4D-real init range
  Tensor Dskip = random_tensor({D}, DType::f32, 7, 0.5f, 1.5f);
  Tensor dt_bias = random_tensor({D}, DType::f32, 8, -4.f, -2.f);
  Tensor out = Tensor::empty({B, L, D}, bf, Device::cuda(0));
  Tensor dout = random_tensor({B, L, D}, bf, 9, -1.f, 1.f);
  Tensor du = Tensor::empty({B, L, D}, bf, Device::cuda(0)), ddelta = Tensor::empty({B, L, D}, bf, Device::cuda(0));
  Tensor dz = Tensor::empty({B, L, D}, bf, Device::cuda(0));
  Tensor dB = Tensor::empty({B, L, N}, bf, Device::cuda(0)), dC = Tensor::empty({B, L, N}, bf, Device::cuda(0));
  Tensor dA = Tensor::zeros({D, N}, DType::f32, Device::cuda(0)), dD = Tensor::zeros({D}, DType::f32, Device::cuda(0));
  Tensor dbias = Tensor::zeros({D}, DType::f32, Device::cuda(0));

  const double act = double(B * L * D) * 2, bc = double(B * L * N) * 2;
  for (int docs = 0; docs < (with_docs_variant ? 2 : 1); docs++) {
    Tensor seq = docs ? doc_ids(B, L) : Tensor();
    auto fwd = [&] {
      return time_ms(
          [&] { cuda::selective_scan_forward(u, delta, A_log, Bm, Cm, Dskip, z, dt_bias, seq, true, out, Tensor()); },
          c.runs, c.warmup);
    };
    auto bwd = [&] {
      return time_ms(
          [&] {
            cuda::selective_scan_backward(u, delta, A_log, Bm, Cm, Dskip, z, dt_bias, seq, true, dout, du, ddelta, dB,
                                          dC, dz, dA, dD, dbias);
          },
          c.runs, c.warmup);
    };
    report(c, "scan_fwd", s, docs, fwd(), 4 * act + 2 * bc);
    report(c, "scan_bwd", s, docs, bwd(), 7 * act + 4 * bc);
    if (c.variants && !docs) {
      {
        ScopedEnv gi("LMF_SCAN_IMPL", "chunked");
        report(c, "scan_fwd", s, docs, fwd(), 4 * act + 2 * bc, "chunked");
        report(c, "scan_bwd", s, docs, bwd(), 7 * act + 4 * bc, "chunked");
        for (const char* rows : {"1", "4"}) {
          ScopedEnv g("LMF_SCAN_WALK_ROWS", rows);
          report(c, "scan_fwd", s, docs, fwd(), 4 * act + 2 * bc, std::string("chunked rows=") + rows);
          report(c, "scan_bwd", s, docs, bwd(), 7 * act + 4 * bc, std::string("chunked rows=") + rows);
        }
      }
      for (const char* G : {"1", "2", "4", "8"}) {
        ScopedEnv gi("LMF_SCAN_IMPL", "rows");
        ScopedEnv g("LMF_SCAN_ROWS_G", G);
        report(c, "scan_fwd", s, docs, fwd(), 4 * act + 2 * bc, std::string("rows G=") + G);
        report(c, "scan_bwd", s, docs, bwd(), 7 * act + 4 * bc, std::string("rows G=") + G);
      }
      for (const char* seg : {"1", "2", "4", "8", "16"}) {
        ScopedEnv g("LMF_SCAN_SEG_CHUNKS", seg);
        report(c, "scan_bwd", s, docs, bwd(), 7 * act + 4 * bc, std::string("seg=") + seg);
      }
    }
  }

  Tensor w = random_tensor({D, K}, bf, 10, -0.5f, 0.5f), cb = random_tensor({D}, bf, 11, -0.5f, 0.5f);
  Tensor dw = Tensor::zeros({D, K}, DType::f32, Device::cuda(0)), dcb = Tensor::zeros({D}, DType::f32, Device::cuda(0));
  const double cf = time_ms([&] { cuda::causal_conv1d_forward(u, w, cb, Tensor(), out, true); }, c.runs, c.warmup);
  report(c, "conv_fwd", s, false, cf, 2 * act);
  const double cbw =
      time_ms([&] { cuda::causal_conv1d_backward(u, w, cb, Tensor(), dout, du, dw, dcb, true); }, c.runs, c.warmup);
  report(c, "conv_bwd", s, false, cbw, 3 * act);
}

int run(const std::string& which, int runs, int warmup, bool variants) {
  if (cuda_device_count() == 0) fail("bench_mamba_kernels: no CUDA device visible");
  autograd::NoGradGuard no_grad;
  cudaDeviceProp prop{};
  LMF_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  Ctx c{runs, warmup, memcpy_gbs(runs, warmup), prop.name, variants};
  const Shape4 small{"mamba-130m", 8, 1024, 1536, 16, 4}, small_long{"mamba-130m", 4, 4096, 1536, 16, 4},
      large{"mamba-1.4b", 4, 2048, 4096, 16, 4};
  if (which == "130m" || which == "all") bench_shape(c, small, true);
  if (which == "130m-4k" || which == "all") bench_shape(c, small_long, false);
  if (which == "1.4b" || which == "all") bench_shape(c, large, false);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const char* usage =
      "usage: bench_mamba_kernels [--runs R] [--warmup W] [--shape 130m|130m-4k|1.4b|all] [--variants]\n";
  std::string shape = "all";
  int runs = 20, warmup = 5;
  bool variants = false;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a == "--variants") {
      variants = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "bench_mamba_kernels: %s needs a value\n%s", a.c_str(), usage);
      return 2;
    }
    const std::string v = argv[++i];
    if (a == "--shape" && (v == "130m" || v == "130m-4k" || v == "1.4b" || v == "all")) {
      shape = v;
    } else if (a == "--runs" && std::atoi(v.c_str()) > 0) {
      runs = std::atoi(v.c_str());
    } else if (a == "--warmup" && std::atoi(v.c_str()) >= 0) {
      warmup = std::atoi(v.c_str());
    } else {
      std::fprintf(stderr, "bench_mamba_kernels: bad argument %s %s\n%s", a.c_str(), v.c_str(), usage);
      return 2;
    }
  }
  try {
    return run(shape, runs, warmup, variants);
  } catch (const lmf::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
