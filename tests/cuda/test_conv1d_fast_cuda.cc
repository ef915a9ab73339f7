// The CUDA causal conv1d kernels (backend/cuda/conv1d.cu) called directly against the CPU
// reference: every code path — the forward, the carrying backward (bf16, K = 4, no documents)
// and the recomputing backward (documents, f32, f16, other K), the vector loads and the element
// fallback (D not a multiple of 4, unaligned pointers), partial channel tiles, L tails inside a
// run, several runs per thread (LMF_CONV_FWD_RUNS / LMF_CONV_BWD_RUNS: the register halo carried
// from run to run, a short last run), the partial sum with and without programmatic dependent
// launch (LMF_CONV_PDL), documents (seq_idx) with boundaries on run and block edges and
// length-1 documents, K = 1..8, with / without bias and SiLU, f32 / bf16 / f16 activations, f32
// or bf16 weights, accumulation into non-zero dw / dbias, dx not requested, and bitwise
// determinism of dw / dbias. Checks: relative L2 error (f32 <= 1e-5, bf16 / f16 <= 1e-2) and an
// element-wise bound (so that one wrong halo step cannot hide in a norm).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "lmforge/backend/cuda/cuda_common.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/core/scoped_env.h"
#include "test_util.h"

using namespace lmf;
using test::random_tensor;
using test::rel_error;

namespace {

const Device kGpu = Device::cuda(0);


// `t` rounded through `dt` (bf16 / f16), as f32: the CPU reference then sees exactly the
// values the GPU kernel reads.
Tensor rounded(const Tensor& t, DType dt) {
  if (!t.defined() || dt == DType::f32) return t;
  Tensor h = Tensor::from_floats(t.to_float_vector(), t.shape(), dt);
  return Tensor::from_floats(h.to_float_vector(), t.shape(), DType::f32);
}

Tensor on_gpu(const Tensor& t, DType dt) {
  if (!t.defined()) return t;
  return Tensor::from_floats(t.to_float_vector(), t.shape(), dt, kGpu);
}

// The same values in a [B, L, D] view that starts one element into its buffer: its data pointer
// is not vector-aligned, which must send the kernel down the element path.
Tensor on_gpu_misaligned(const Tensor& t, DType dt) {
  std::vector<float> v = t.to_float_vector();
  v.insert(v.begin(), 0.5f);
  Tensor flat = Tensor::from_floats(v, {int64_t(v.size())}, dt, kGpu);
  return flat.slice(0, 1, int64_t(v.size())).view(t.shape());
}

Tensor empty_misaligned(const Shape& shape, DType dt) {
  Tensor flat = Tensor::zeros({shape_numel(shape) + 1}, dt, kGpu);
  return flat.slice(0, 1, shape_numel(shape) + 1).view(shape);
}

// Document ids [B, L]: row 0 has boundaries on run / block edges (16, 64), next to each other
// (length-1 documents at 1 and 2) and inside runs; row 1 returns to an earlier id; row 2 has
// documents of 1..40 tokens; other rows one document.
Tensor doc_ids(int64_t B, int64_t L) {
  std::vector<int32_t> v(size_t(B * L), 0);
  const std::vector<int64_t> cuts = {1, 2, 16, 17, 30, 63, 64, 65, 100, 129, 130, 200, 257};
  for (int64_t t = 0; t < L; t++) {
    int32_t id = 0;
    for (int64_t c : cuts) id += t >= c ? 1 : 0;
    v[size_t(t)] = id;
    if (B > 1) v[size_t(L + t)] = (t >= 5 && t < 40) ? 8 : 7;
  }
  if (B > 2) {
    int32_t id = 0;
    int64_t next = 1;
    for (int64_t t = 0; t < L; t++) {
      if (t == next) {
        id++;
        next += 1 + (id * 13) % 40;
      }
      v[size_t(2 * L + t)] = id;
    }
  }
  for (int64_t b = 3; b < B; b++)
    for (int64_t t = 0; t < L; t++) v[size_t(b * L + t)] = int32_t(b);
  return Tensor::from_vector<int32_t>(v, {B, L});
}

double tol(DType t) { return t == DType::f32 ? 1e-5 : 1e-2; }

// rel_error <= tol and |got - ref| <= tol_e * (|ref| + rms(ref)) element-wise.
void expect_close(const Tensor& got, const Tensor& ref, double rel_tol, double elem_tol, const std::string& what) {
  ASSERT_EQ(got.shape(), ref.shape()) << what;
  const std::vector<double> g = got.to_double_vector(), r = ref.to_double_vector();
  EXPECT_LT(rel_error(g, r), rel_tol) << what;
  double rms = 0;
  for (double v : r) rms += v * v;
  rms = std::sqrt(rms / double(std::max<size_t>(r.size(), 1)));
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < r.size(); i++) {
    if (!(std::fabs(g[i] - r[i]) <= elem_tol * (std::fabs(r[i]) + rms))) {
      if (bad++ == 0) first = i;
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " elements off, first at flat index " << first << " got "
                     << (bad ? g[first] : 0.0) << " want " << (bad ? r[first] : 0.0);
}

struct Case {
  int64_t B, L, D, K;
  bool bias, seq, silu;
  bool misaligned = false;
  DType wdt = DType::f32;  // weight / bias dtype on the GPU (f32 = the mixed-precision layout)
};

std::string describe(const Case& c, DType dt) {
  return detail::concat("B", c.B, " L", c.L, " D", c.D, " K", c.K, c.bias ? " bias" : "", c.seq ? " docs" : "",
             c.silu ? " silu" : "", c.misaligned ? " misaligned" : "", " ", dtype_name(dt), " w ",
             dtype_name(c.wdt));
}

// Forward and backward on the GPU against the CPU reference (inputs rounded to the GPU dtypes).
void check_case(const Case& c, DType dt, uint64_t seed, const std::string& tag) {
  const std::string what = tag + " " + describe(c, dt);
  const DType wdt = c.wdt == DType::f32 ? DType::f32 : dt;
  Tensor x = rounded(random_tensor({c.B, c.L, c.D}, DType::f32, seed + 1), dt);
  Tensor w = rounded(random_tensor({c.D, c.K}, DType::f32, seed + 2, -0.6f, 0.6f), wdt);
  Tensor bias = c.bias ? rounded(random_tensor({c.D}, DType::f32, seed + 3, -0.5f, 0.5f), wdt) : Tensor();
  Tensor seq = c.seq ? doc_ids(c.B, c.L) : Tensor();
  Tensor dy = rounded(random_tensor({c.B, c.L, c.D}, DType::f32, seed + 4), dt);
  Tensor dw0 = random_tensor({c.D, c.K}, DType::f32, seed + 5), db0 = random_tensor({c.D}, DType::f32, seed + 6);

  // CPU reference (f32 tensors, fp64 accumulation).
  Tensor y_ref = Tensor::empty(x.shape(), DType::f32);
  cpu::causal_conv1d_forward(x, w, bias, seq, y_ref, c.silu);
  Tensor dx_ref = Tensor::empty(x.shape(), DType::f32);
  Tensor dw_ref = Tensor::from_floats(dw0.to_float_vector(), dw0.shape(), DType::f32);
  Tensor db_ref = c.bias ? Tensor::from_floats(db0.to_float_vector(), db0.shape(), DType::f32) : Tensor();
  cpu::causal_conv1d_backward(x, w, bias, seq, dy, dx_ref, dw_ref, db_ref, c.silu);

  Tensor gx = c.misaligned ? on_gpu_misaligned(x, dt) : on_gpu(x, dt);
  Tensor gdy = c.misaligned ? on_gpu_misaligned(dy, dt) : on_gpu(dy, dt);
  Tensor gw = on_gpu(w, wdt), gb = on_gpu(bias, wdt), gseq = seq.defined() ? seq.to(kGpu) : Tensor();
  Tensor gy = c.misaligned ? empty_misaligned(x.shape(), dt) : Tensor::empty(x.shape(), dt, kGpu);
  Tensor gdx = c.misaligned ? empty_misaligned(x.shape(), dt) : Tensor::empty(x.shape(), dt, kGpu);
  Tensor gdw = dw0.to(kGpu), gdb = c.bias ? db0.to(kGpu) : Tensor();
  cuda::causal_conv1d_forward(gx, gw, gb, gseq, gy, c.silu);
  cuda::causal_conv1d_backward(gx, gw, gb, gseq, gdy, gdx, gdw, gdb, c.silu);

  // Element bound: bf16 / f16 outputs carry one rounding (2^-9 / 2^-12 relative).
  const double et = dt == DType::f32 ? 1e-5 : 1e-2;
  expect_close(gy.to(Device::cpu()), y_ref, tol(dt), et, what + " y");
  expect_close(gdx.to(Device::cpu()), dx_ref, tol(dt), et, what + " dx");
  // dw / dbias are f32 sums of fp32 products of the same inputs: tight whatever the dtype.
  expect_close(gdw.to(Device::cpu()), dw_ref, 1e-5, 1e-4, what + " dw");
  if (c.bias) expect_close(gdb.to(Device::cpu()), db_ref, 1e-5, 1e-4, what + " dbias");
}

const std::vector<Case> kCases = {
    {2, 333, 512, 4, true, false, true},                       // vector paths, 2 / 4 channel tiles, L tail
    {3, 300, 264, 4, true, true, true},                        // documents, a partial channel tile
    {2, 97, 20, 4, false, true, false},                        // D % 8 = 4: bf16 forward on the element path
    {1, 150, 13, 3, true, true, true},                         // odd D: element paths everywhere, K = 3
    {2, 130, 64, 4, true, false, true, true},                  // unaligned pointers
    {2, 140, 72, 4, true, true, true, true},                   // unaligned, documents
    {1, 90, 40, 8, true, true, true},                          // K = 8
    {2, 67, 24, 1, false, false, false},                       // K = 1, identity
    {2, 70, 16, 2, true, true, true},                          // K = 2
    {1, 2, 32, 4, true, false, true},                          // L < K
    {2, 200, 128, 5, true, true, true, false, DType::bf16},    // K = 5, weights in the activation dtype
    {3, 257, 96, 4, true, true, true, false, DType::bf16},     // weights bf16 too (f32 cases: f32)
};

}  // namespace

TEST(CudaConv1dFast, MatchesCpu) {
  for (DType dt : {DType::f32, DType::bf16})
    for (size_t i = 0; i < kCases.size(); i++) check_case(kCases[i], dt, 100 + 10 * i, "default");
}

TEST(CudaConv1dFast, F16MatchesCpu) {
  check_case({2, 150, 264, 4, true, true, true}, DType::f16, 300, "f16");
  check_case({1, 77, 20, 4, true, false, true}, DType::f16, 310, "f16");
}

TEST(CudaConv1dFast, SeveralRunsPerThread) {
  // 1..8 runs of 8 steps per thread: the halo moves from run to run in registers while the next
  // run's loads are in flight, and L = 333 / 300 / 257 end inside a run (a short last run);
  // with documents crossing run edges.
  for (const char* runs : {"1", "2", "3", "8"}) {
    ScopedEnv env("LMF_CONV_BWD_RUNS", runs);
    ScopedEnv envf("LMF_CONV_FWD_RUNS", runs);
    for (DType dt : {DType::f32, DType::bf16})
      for (size_t i : {0, 1, 3, 5, 6, 11}) check_case(kCases[i], dt, 200 + 10 * i, detail::concat("runs=", runs));
  }
}

TEST(CudaConv1dFast, WeightGradsWithoutProgrammaticLaunch) {
  // LMF_CONV_PDL=0: the partial sum launched as a plain kernel after the backward (by default it
  // is a programmatic dependent launch that waits for the backward with griddepcontrol).
  ScopedEnv env("LMF_CONV_PDL", "0");
  for (DType dt : {DType::f32, DType::bf16})
    for (size_t i : {0, 1, 3, 4, 6}) check_case(kCases[i], dt, 600 + 10 * i, "no pdl");
}

TEST(CudaConv1dFast, BackwardWithoutDxAndDeterministic) {
  const int64_t B = 4, L = 700, D = 384, K = 4;
  Tensor x = random_tensor({B, L, D}, DType::bf16, 501, -1.f, 1.f, kGpu);
  Tensor dy = random_tensor({B, L, D}, DType::bf16, 502, -1.f, 1.f, kGpu);
  Tensor w = random_tensor({D, K}, DType::f32, 503, -0.5f, 0.5f, kGpu);
  Tensor bias = random_tensor({D}, DType::f32, 504, -0.5f, 0.5f, kGpu);
  Tensor seq = doc_ids(B, L).to(kGpu);
  for (const char* runs : {"1", "4", "4k"}) {
    ScopedEnv env("LMF_CONV_BWD_RUNS", std::string(runs) == "4k" ? "4" : runs);
    ScopedEnv wg("LMF_CONV_PDL", std::string(runs) == "4k" ? "0" : nullptr);
    std::vector<std::vector<float>> dws, dbs;
    for (int rep = 0; rep < 3; rep++) {
      Tensor dw = Tensor::zeros({D, K}, DType::f32, kGpu), db = Tensor::zeros({D}, DType::f32, kGpu);
      Tensor dx = rep == 2 ? Tensor() : Tensor::empty({B, L, D}, DType::bf16, kGpu);
      cuda::causal_conv1d_backward(x, w, bias, seq, dy, dx, dw, db, true);
      dws.push_back(dw.to_float_vector());
      dbs.push_back(db.to_float_vector());
    }
    EXPECT_EQ(dws[0], dws[1]) << "dw not bitwise reproducible, runs=" << runs;
    EXPECT_EQ(dbs[0], dbs[1]) << "dbias not bitwise reproducible, runs=" << runs;
    EXPECT_EQ(dws[0], dws[2]) << "dw differs without dx, runs=" << runs;
    EXPECT_EQ(dbs[0], dbs[2]) << "dbias differs without dx, runs=" << runs;
    double norm = 0;
    for (float v : dws[0]) norm += double(v) * v;
    EXPECT_GT(norm, 0.0);
  }
}

// Tuning aid, not a check (run with --gtest_also_run_disabled_tests): median microseconds of the
// forward and backward at the benchmark shapes (bf16, K 4, SiLU, bias) for each forced run count,
// with and without programmatic dependent launch, and with documents.
TEST(CudaConv1dFast, DISABLED_TimeVariants) {
  struct S {
    const char* name;
    int64_t B, L, D;
  };
  auto median_us = [](auto&& f) {
    cudaStream_t st = cuda::current_stream();
    for (int i = 0; i < 5; i++) f();
    cudaEvent_t a, b;
    cudaEventCreate(&a);
    cudaEventCreate(&b);
    std::vector<float> ms;
    for (int i = 0; i < 20; i++) {
      cudaEventRecord(a, st);
      f();
      cudaEventRecord(b, st);
      cudaEventSynchronize(b);
      float m = 0;
      cudaEventElapsedTime(&m, a, b);
      ms.push_back(m);
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    std::sort(ms.begin(), ms.end());
    return 1000.0 * 0.5 * (ms[9] + ms[10]);
  };
  for (const S& s : {S{"130m", 8, 1024, 1536}, S{"130m-4k", 4, 4096, 1536}, S{"1.4b", 4, 2048, 4096}}) {
    const int64_t K = 4;
    Tensor x = random_tensor({s.B, s.L, s.D}, DType::bf16, 1, -1.f, 1.f, kGpu);
    Tensor dy = random_tensor({s.B, s.L, s.D}, DType::bf16, 2, -1.f, 1.f, kGpu);
    Tensor w = random_tensor({s.D, K}, DType::bf16, 3, -0.5f, 0.5f, kGpu);
    Tensor bias = random_tensor({s.D}, DType::bf16, 4, -0.5f, 0.5f, kGpu);
    Tensor y = Tensor::empty(x.shape(), DType::bf16, kGpu), dx = Tensor::empty(x.shape(), DType::bf16, kGpu);
    Tensor dw = Tensor::zeros({s.D, K}, DType::f32, kGpu), db = Tensor::zeros({s.D}, DType::f32, kGpu);
    Tensor seq = doc_ids(s.B, s.L).to(kGpu);
    const double mb = double(x.nbytes()) / 1e6;
    for (const char* runs : {"auto", "2", "4", "8"}) {
      ScopedEnv r("LMF_CONV_FWD_RUNS", std::string(runs) == "auto" ? nullptr : runs);
      const double us = median_us([&] { cuda::causal_conv1d_forward(x, w, bias, Tensor(), y, true); });
      std::printf("conv_fwd %s runs %s: %.1f us (%.0f GB/s)\n", s.name, runs, us, 2 * mb / us * 1e3);
    }
    const double us_fdoc = median_us([&] { cuda::causal_conv1d_forward(x, w, bias, seq, y, true); });
    std::printf("conv_fwd %s default docs: %.1f us\n", s.name, us_fdoc);
    for (const char* v : {"pdl", "no pdl"}) {
      for (const char* runs : {"auto", "2", "4", "8", "16"}) {
        ScopedEnv wg("LMF_CONV_PDL", std::string(v) == "pdl" ? nullptr : "0");
        ScopedEnv r("LMF_CONV_BWD_RUNS", std::string(runs) == "auto" ? nullptr : runs);
        const double us = median_us([&] { cuda::causal_conv1d_backward(x, w, bias, Tensor(), dy, dx, dw, db, true); });
        std::printf("conv_bwd %s %s runs %s: %.1f us (%.0f GB/s)\n", s.name, v, runs, us, 3 * mb / us * 1e3);
      }
    }
    const double us_doc = median_us([&] { cuda::causal_conv1d_backward(x, w, bias, seq, dy, dx, dw, db, true); });
    std::printf("conv_bwd %s default docs: %.1f us\n", s.name, us_doc);
    std::fflush(stdout);
  }
}
