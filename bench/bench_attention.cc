// Benchmark of ragged attention (ops::attention): forward, and forward + backward (q, k, v all
// requiring gradients), bf16 by default, 12 heads of 64. Prints one JSON line per case with the
// keys of bench/peers/attention_torch.py:
//   bench, impl, device, dtype, case, batch, seqlen, tokens, heads, head_dim, causal,
//   window_left, window_right, iters, fwd_ms, fwdbwd_ms (medians), fwd_tflops, fwdbwd_tflops.
// FLOPs count only visible (query, key) pairs of real tokens: forward 4 * D per pair per head
// (Q K^T and P V), backward 10 * D (five products: S, dP, dV, dK, dQ, FlashAttention's count),
// so padded peers are charged for the useful work only.
// Cases (run all by default, or one with --case NAME):
//   uniform_32x512, uniform_32x512_causal, uniform_4x8192, uniform_4x8192_causal,
//   varlen_4x8192 (lengths 8192, 5461, 2731, 1024), window128_4x8192 (|i - j| <= 64: ModernBERT's
//   local attention of 128 = 129 keys).
// Usage: bench_attention [--case NAME] [--iters 20] [--warmup 3] [--device cuda|cpu]
//        [--dtype bf16|f16|f32] [--heads 12] [--head-dim 64] [--variants [0,1,atomic0,...]]
// --variants runs every case once per value: "N" sets LMF_ATTN_BWD_VARIANT=N (CUDA backward
// tile shapes, see backend/cuda/attention_bwd.cu), "atomicN" also sets LMF_ATTN_BWD=atomic;
// each line gets a "variant" key; --variants alone times 0,1,2,3,atomic0,atomic1.
// Times are CUDA events on lmforge's stream (wall clock on cpu).
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <vector>

#include "bench_timing.h"
#include "lmforge/autograd/tape.h"
#include "lmforge/core/device_memory.h"
#include "lmforge/core/rng.h"
#include "lmforge/ops/attention.h"

#if LMF_WITH_CUDA
#include <cuda_runtime.h>

#include "lmforge/backend/cuda/cuda_common.h"
#endif

using namespace lmf;

namespace {

struct Args {
  std::string only, device = "cuda", dtype = "bf16";
  int iters = 20, warmup = 3;
  int64_t heads = 12, head_dim = 64;
  // Backward variants to time ("N": LMF_ATTN_BWD_VARIANT=N, "atomicN": also LMF_ATTN_BWD=atomic);
  // empty: leave the environment alone.
  std::vector<std::string> variants;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; i++) {
    std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) fail("bench_attention: ", k, " needs a value");
      return argv[++i];
    };
    if (k == "--case") a.only = next();
    else if (k == "--iters") a.iters = std::stoi(next());
    else if (k == "--warmup") a.warmup = std::stoi(next());
    else if (k == "--device") a.device = next();
    else if (k == "--dtype") a.dtype = next();
    else if (k == "--heads") a.heads = std::stoll(next());
    else if (k == "--head-dim") a.head_dim = std::stoll(next());
    else if (k == "--variants") {  // without a value (or before another flag): all variants
      const std::string v = (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0)
                                ? std::string(argv[++i])
                                : std::string("0,1,2,3,atomic0,atomic1");
      a.variants.clear();
      for (size_t b = 0; b <= v.size();) {
        const size_t e = std::min(v.find(',', b), v.size());
        if (e > b) a.variants.push_back(v.substr(b, e - b));
        b = e + 1;
      }
    }
    else fail("bench_attention: unknown argument '", k, "'");
  }
  if (a.iters < 1) fail("bench_attention: --iters must be >= 1");
  return a;
}

struct Case {
  std::string name;
  std::vector<int64_t> lens;  // one per sequence
  int64_t seqlen;             // padded length (what a padded peer runs)
  bool causal;
  int64_t wl, wr;
};

std::vector<Case> all_cases() {
  return {
      {"uniform_32x512", std::vector<int64_t>(32, 512), 512, false, -1, -1},
      {"uniform_32x512_causal", std::vector<int64_t>(32, 512), 512, true, -1, -1},
      {"uniform_4x8192", std::vector<int64_t>(4, 8192), 8192, false, -1, -1},
      {"uniform_4x8192_causal", std::vector<int64_t>(4, 8192), 8192, true, -1, -1},
      {"varlen_4x8192", {8192, 5461, 2731, 1024}, 8192, false, -1, -1},
      {"window128_4x8192", std::vector<int64_t>(4, 8192), 8192, false, 64, 64},
  };
}

// Visible (query, key) pairs of one sequence, summed exactly.
double visible_pairs(int64_t L, bool causal, int64_t wl, int64_t wr) {
  double n = 0;
  for (int64_t i = 0; i < L; i++) {
    int64_t lo = wl >= 0 ? std::max<int64_t>(0, i - wl) : 0, hi = L - 1;
    if (causal) hi = std::min(hi, i);
    if (wr >= 0) hi = std::min(hi, i + wr);
    if (hi >= lo) n += double(hi - lo + 1);
  }
  return n;
}

Tensor uniform(const Shape& s, DType dt, Device dev, uint64_t seed) {
  Tensor t = Tensor::empty(s, DType::f32);
  fill_uniform_cpu(t, seed, 0, -1.f, 1.f);
  return Tensor::from_floats(t.to_float_vector(), s, dt, dev);
}

using bench::time_ms;

template <class F>
double median_ms(const Args& a, Device dev, F&& fn) {
  for (int i = 0; i < a.warmup; i++) fn();
  synchronize(dev);
  std::vector<double> ms;
  for (int i = 0; i < a.iters; i++) ms.push_back(time_ms(dev, fn));
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

void run_case(const Args& a, const Case& c, const std::string& variant) {
  const Device dev = a.device == "cpu" ? Device::cpu() : Device::cuda(0);
  const DType dt = parse_dtype(a.dtype);
  const int64_t H = a.heads, D = a.head_dim;
  std::vector<int32_t> cu{0};
  double pairs = 0;
  for (int64_t L : c.lens) {
    cu.push_back(cu.back() + int32_t(L));
    pairs += visible_pairs(L, c.causal, c.wl, c.wr);
  }
  const int64_t N = cu.back();
  Tensor q = uniform({N, H, D}, dt, dev, 1), k = uniform({N, H, D}, dt, dev, 2), v = uniform({N, H, D}, dt, dev, 3);
  Tensor dout = uniform({N, H, D}, dt, dev, 4);
  ops::AttentionOptions o;
  o.causal = c.causal;
  o.window_left = c.wl;
  o.window_right = c.wr;

  const double fwd = median_ms(a, dev, [&] {
    autograd::NoGradGuard ng;
    (void)ops::attention(q, k, v, cu, o);
  });
  const double fwdbwd = median_ms(a, dev, [&] {
    Tensor qs = q, ks = k, vs = v;  // fresh leaves: gradients assigned, not accumulated
    autograd::set_requires_grad(qs);
    autograd::set_requires_grad(ks);
    autograd::set_requires_grad(vs);
    Tensor out = ops::attention(qs, ks, vs, cu, o);
    autograd::backward(out, dout);
  });
  const double f_fwd = 4.0 * double(D) * double(H) * pairs, f_all = 14.0 * double(D) * double(H) * pairs;
  std::printf(
      "{\"bench\": \"attention\", \"impl\": \"lmforge\", \"device\": \"%s\", \"dtype\": \"%s\", \"case\": \"%s\", "
      "\"batch\": %zu, \"seqlen\": %lld, \"tokens\": %lld, \"heads\": %lld, \"head_dim\": %lld, \"causal\": %s, "
      "\"window_left\": %lld, \"window_right\": %lld, \"iters\": %d, \"fwd_ms\": %.4f, \"fwdbwd_ms\": %.4f, "
      "\"fwd_tflops\": %.3f, \"fwdbwd_tflops\": %.3f%s}\n",
      dev.str().c_str(), a.dtype.c_str(), c.name.c_str(), c.lens.size(), (long long)c.seqlen, (long long)N,
      (long long)H, (long long)D, c.causal ? "true" : "false", (long long)c.wl, (long long)c.wr, a.iters, fwd, fwdbwd,
      f_fwd / (fwd / 1e3) / 1e12, f_all / (fwdbwd / 1e3) / 1e12,
      variant.empty() ? "" : (", \"variant\": \"" + variant + "\"").c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Args a = parse(argc, argv);
    bool any = false;
    for (const Case& c : all_cases()) {
      if (!a.only.empty() && a.only != c.name) continue;
      if (a.variants.empty()) run_case(a, c, "");
      for (const std::string& v : a.variants) {  // "N" or "atomicN" (LMF_ATTN_BWD=atomic)
        const bool atomic = v.rfind("atomic", 0) == 0;
        if (atomic) setenv("LMF_ATTN_BWD", "atomic", 1);
        else unsetenv("LMF_ATTN_BWD");
        setenv("LMF_ATTN_BWD_VARIANT", atomic ? v.substr(6).c_str() : v.c_str(), 1);
        run_case(a, c, v);
      }
      any = true;
    }
    if (!any) fail("bench_attention: unknown case '", a.only, "'");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_attention: %s\n", e.what());
    return 1;
  }
}
