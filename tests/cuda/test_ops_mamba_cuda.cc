// Mamba primitives on the GPU: causal conv1d and the selective scan, CUDA vs the CPU reference
// (fp32 <= 1e-5 relative, bf16 <= 1e-2; outputs and every gradient, parameters included) on
// shapes with tails (L not a multiple of the 32-step chunk, D not a multiple of the 32-channel
// tile or of the 16-byte vector, N = 16 / 8 / 5 / 4), with and without z / D / dt bias / seq_idx
// (packed documents, a non-monotone id sequence, length-1 documents), without softplus, and a long
// L = 3000 case; the mixed-precision layout (bf16 activations, f32 A_log / D / dt bias, f32
// gradient slots); final_state; determinism of the parameter gradients; CUDA-only argument errors.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/core/device_memory.h"
#include "lmforge/ops/mamba_ops.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;
using test::compare_cpu_cuda;
using test::random_tensor;
using test::rel_error;

namespace {

const Device kGpu = Device::cuda(0);

// Concatenates streamable pieces into a message (GCC 12 warns spuriously on "lit" + std::string).
template <class... A>
std::string cat(const A&... a) {
  std::ostringstream os;
  (os << ... << a);
  return os.str();
}

double tol(DType t) { return t == DType::f32 ? 1e-5 : 1e-2; }

void expect_close(const test::DeviceCompare& r, DType t, const std::string& what) {
  EXPECT_LT(r.out_rel, tol(t)) << what << " output";
  for (size_t i = 0; i < r.grad_rel.size(); i++) EXPECT_LT(r.grad_rel[i], tol(t)) << what << " grad of input " << i;
}

// The values `t` takes after a round trip through bf16, as f32: CPU and GPU then see identical
// inputs in the bf16 comparisons, so only the kernels' own rounding is measured.
Tensor bf16_exact(const Tensor& t) {
  if (!t.defined() || t.dtype() != DType::f32) return t;
  Tensor h = Tensor::from_floats(t.to_float_vector(), t.shape(), DType::bf16);
  return Tensor::from_floats(h.to_float_vector(), t.shape(), DType::f32);
}

// Document ids [B, L]: row 0 has documents of varied lengths (one of length 1), row 1 returns
// to an earlier id (the kernel resets wherever the id changes), other rows one document each.
Tensor doc_ids(int64_t B, int64_t L) {
  std::vector<int32_t> v(size_t(B * L), 0);
  for (int64_t t = 0; t < L; t++) {
    v[size_t(t)] = t < L / 3 ? 0 : (t == L / 3 ? 1 : (t < (2 * L) / 3 ? 2 : 3));
    if (B > 1) v[size_t(L + t)] = (t >= 5 && t < 40) ? 8 : 7;
    for (int64_t b = 2; b < B; b++) v[size_t(b * L + t)] = int32_t(b);
  }
  return Tensor::from_vector<int32_t>(v, {B, L});
}

struct ScanCase {
  const char* name;
  int64_t B, L, D, N;
  bool z, Dskip, bias, seq, softplus;
};

// Inputs in ops::SelectiveScanArgs order: u, delta, A_log, Bm, Cm, Dskip, z, delta_bias, seq_idx.
std::vector<Tensor> scan_inputs(const ScanCase& c, uint64_t seed, bool bf16) {
  const int64_t B = c.B, L = c.L, D = c.D, N = c.N;
  // With softplus dt = softplus(U[-2, 1] + U[-1, 0.5]); without, dt stays positive and small so
  // the recurrence decays (exp(dt A) < 1) as it does in a trained model.
  const float dlo = c.softplus ? -2.f : 0.05f, dhi = c.softplus ? 1.f : 0.6f;
  std::vector<Tensor> in = {random_tensor({B, L, D}, DType::f32, seed + 1),
                            random_tensor({B, L, D}, DType::f32, seed + 2, dlo, dhi),
                            random_tensor({D, N}, DType::f32, seed + 3, -1.f, 1.f),
                            random_tensor({B, L, N}, DType::f32, seed + 4),
                            random_tensor({B, L, N}, DType::f32, seed + 5),
                            c.Dskip ? random_tensor({D}, DType::f32, seed + 6) : Tensor(),
                            c.z ? random_tensor({B, L, D}, DType::f32, seed + 7) : Tensor(),
                            c.bias ? random_tensor({D}, DType::f32, seed + 8, c.softplus ? -1.f : 0.f, 0.5f) : Tensor(),
                            c.seq ? doc_ids(B, L) : Tensor()};
  if (bf16)
    for (auto& t : in) t = bf16_exact(t);
  return in;
}

Tensor run_scan(const std::vector<Tensor>& x, bool softplus) {
  ops::SelectiveScanArgs a{x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], x[8], softplus};
  return ops::selective_scan(a);
}

const std::vector<ScanCase> kScanCases = {
    {"tails N16", 2, 70, 40, 16, true, true, true, false, true},
    {"bare N4", 1, 33, 33, 4, false, false, false, false, true},
    {"docs N16", 2, 75, 36, 16, true, true, true, true, true},
    {"docs N8 no softplus", 2, 75, 7, 8, true, false, true, true, false},
    {"odd N5", 1, 41, 3, 5, true, true, false, true, true},
    {"N32", 1, 40, 9, 32, true, true, true, true, true},
    {"aligned docs", 3, 130, 96, 16, true, true, true, true, true},
    {"D only", 2, 64, 64, 16, false, true, false, false, true},
};

}  // namespace

TEST(CudaMamba, ScanMatchesCpu) {
  for (DType dt : {DType::f32, DType::bf16}) {
    for (const auto& c : kScanCases) {
      auto ins = scan_inputs(c, 10, dt == DType::bf16);
      auto r = compare_cpu_cuda([&](const std::vector<Tensor>& x) { return run_scan(x, c.softplus); }, ins, dt);
      expect_close(r, dt, cat("scan ", c.name, " ", dtype_name(dt)));
    }
  }
}

TEST(CudaMamba, ScanLongSequence) {
  // L = 3000 (94 chunks, 375 checkpoints): error growth over a long recurrence, and packed
  // documents far from the start.
  for (DType dt : {DType::f32, DType::bf16}) {
    ScanCase c{"long", 2, 3000, 64, 16, true, true, true, true, true};
    auto ins = scan_inputs(c, 20, dt == DType::bf16);
    auto r = compare_cpu_cuda([&](const std::vector<Tensor>& x) { return run_scan(x, true); }, ins, dt);
    expect_close(r, dt, cat("scan long ", dtype_name(dt)));
  }
}

TEST(CudaMamba, ScanMixedPrecisionLayout) {
  // As a bf16 training step runs it: activations bf16; A_log, D, dt bias f32 parameters whose
  // gradients accumulate into existing f32 slots (added to, not overwritten).
  ScanCase c{"mixed", 2, 90, 72, 16, true, true, true, true, true};
  auto ins = scan_inputs(c, 30, true);
  Tensor dout = bf16_exact(random_tensor({c.B, c.L, c.D}, DType::f32, 31));
  std::vector<std::vector<double>> grads[2];
  std::vector<double> outs[2];
  for (int dev = 0; dev < 2; dev++) {
    const Device device = dev ? kGpu : Device::cpu();
    const DType act = dev ? DType::bf16 : DType::f32;
    std::vector<Tensor> x;
    for (size_t i = 0; i < ins.size(); i++) {
      const bool param = i == 2 || i == 5 || i == 7;
      if (i == 8) {
        x.push_back(ins[i].to(device));
      } else {
        x.push_back(Tensor::from_floats(ins[i].to_float_vector(), ins[i].shape(), param ? DType::f32 : act, device));
        autograd::set_requires_grad(x.back(), true);
      }
    }
    std::vector<Tensor> slots;
    for (int j : {2, 5, 7}) {
      slots.push_back(Tensor::full(x[size_t(j)].shape(), 0.25, DType::f32, device));
      autograd::make_param(x[size_t(j)], slots.back(), cat("p", j));
    }
    Tensor out = run_scan(x, true);
    autograd::backward(out, Tensor::from_floats(dout.to_float_vector(), dout.shape(), act, device));
    outs[dev] = out.to_double_vector();
    for (int j : {0, 1, 3, 4, 6}) grads[dev].push_back(autograd::grad(x[size_t(j)]).to_double_vector());
    for (auto& s : slots) {  // what the backward added to the slot
      auto v = s.to_double_vector();
      for (auto& e : v) e -= 0.25;
      grads[dev].push_back(v);
    }
  }
  EXPECT_LT(rel_error(outs[1], outs[0]), 1e-2);
  // du, ddelta, dBm, dCm, dz, then the accumulated dA_log, dD, ddelta_bias.
  for (size_t k = 0; k < grads[0].size(); k++) EXPECT_LT(rel_error(grads[1][k], grads[0][k]), 1e-2) << "gradient " << k;
}

TEST(CudaMamba, ScanFinalState) {
  for (const auto& c : {ScanCase{"fs", 2, 70, 40, 16, true, true, true, true, true},
                        ScanCase{"fs4", 1, 5, 3, 4, false, false, false, false, true}}) {
    auto ins = scan_inputs(c, 40, false);
    ops::SelectiveScanArgs a{ins[0], ins[1], ins[2], ins[3], ins[4], ins[5], ins[6], ins[7], ins[8], true};
    Tensor fs_cpu, fs_gpu;
    Tensor out_cpu = ops::selective_scan_with_state(a, &fs_cpu);
    ops::SelectiveScanArgs g = a;
    for (Tensor* t : {&g.u, &g.delta, &g.A_log, &g.Bm, &g.Cm, &g.Dskip, &g.z, &g.delta_bias, &g.seq_idx})
      if (t->defined()) *t = t->to(kGpu);
    Tensor out_gpu = ops::selective_scan_with_state(g, &fs_gpu);
    EXPECT_EQ(fs_gpu.shape(), (Shape{c.B, c.D, c.N}));
    EXPECT_LT(rel_error(out_gpu, out_cpu), 1e-5) << c.name;
    EXPECT_LT(rel_error(fs_gpu, fs_cpu), 1e-5) << c.name;
  }
}

TEST(CudaMamba, ScanParameterGradientsAreDeterministic) {
  // dA_log, dD, ddelta_bias are reduced in a fixed order (dB / dC use atomics and may differ in
  // the last bits, so they are only compared with a tolerance).
  ScanCase c{"det", 4, 200, 96, 16, true, true, true, false, true};
  auto ins = scan_inputs(c, 50, false);
  std::vector<std::vector<float>> runs[2];
  for (int rep = 0; rep < 2; rep++) {
    std::vector<Tensor> x;
    for (const auto& t : ins) x.push_back(t.defined() ? t.to(kGpu) : t);
    for (int j : {2, 3, 5, 7}) autograd::set_requires_grad(x[size_t(j)], true);
    Tensor out = run_scan(x, true);
    autograd::backward(out, random_tensor(out.shape(), DType::f32, 51, -1.f, 1.f, kGpu));
    for (int j : {2, 3, 5, 7}) runs[rep].push_back(autograd::grad(x[size_t(j)]).to_float_vector());
  }
  EXPECT_EQ(runs[0][0], runs[1][0]) << "dA_log";
  EXPECT_EQ(runs[0][2], runs[1][2]) << "dD";
  EXPECT_EQ(runs[0][3], runs[1][3]) << "ddelta_bias";
  std::vector<double> b0(runs[0][1].begin(), runs[0][1].end()), b1(runs[1][1].begin(), runs[1][1].end());
  EXPECT_LT(rel_error(b1, b0), 1e-6) << "dBm";
}

TEST(CudaMamba, ConvMatchesCpu) {
  struct Case {
    int64_t B, L, D, K;
    bool bias, seq, silu;
  };
  const std::vector<Case> cases = {
      {2, 70, 9, 4, true, false, true},      // tails: D % 4 != 0, L % 32 != 0
      {1, 5, 3, 1, false, false, false},     // K = 1, identity activation
      {1, 200, 130, 8, true, true, true},    // K = 8, documents
      {2, 40, 6, 3, true, true, false},      // non-monotone document ids
      {1, 2, 5, 4, true, false, true},       // L < K
      {2, 129, 64, 4, true, true, true},     // vector path with a document boundary
      {2, 1024, 256, 4, true, false, true},  // large-ish
  };
  for (DType dt : {DType::f32, DType::bf16}) {
    for (const auto& c : cases) {
      std::vector<Tensor> ins = {random_tensor({c.B, c.L, c.D}, DType::f32, 61),
                                 random_tensor({c.D, c.K}, DType::f32, 62, -0.5f, 0.5f),
                                 c.bias ? random_tensor({c.D}, DType::f32, 63) : Tensor(),
                                 c.seq ? doc_ids(c.B, c.L) : Tensor()};
      if (dt == DType::bf16)
        for (auto& t : ins) t = bf16_exact(t);
      const bool silu = c.silu;
      auto r = compare_cpu_cuda(
          [&](const std::vector<Tensor>& x) { return ops::causal_conv1d(x[0], x[1], x[2], x[3], silu); }, ins, dt);
      expect_close(r, dt, cat("conv B", c.B, " L", c.L, " D", c.D, " K", c.K, " ", dtype_name(dt)));
    }
  }
}

TEST(CudaMamba, ConvWeightGradientsAreDeterministic) {
  Tensor x = random_tensor({4, 300, 96}, DType::f32, 71, -1.f, 1.f, kGpu);
  std::vector<std::vector<float>> g;
  for (int rep = 0; rep < 2; rep++) {
    Tensor w = random_tensor({96, 4}, DType::f32, 72, -1.f, 1.f, kGpu);
    Tensor b = random_tensor({96}, DType::f32, 73, -1.f, 1.f, kGpu);
    autograd::set_requires_grad(w, true);
    autograd::set_requires_grad(b, true);
    Tensor y = ops::causal_conv1d(x, w, b, Tensor(), true);
    autograd::backward(y, random_tensor(y.shape(), DType::f32, 74, -1.f, 1.f, kGpu));
    g.push_back(autograd::grad(w).to_float_vector());
    g.push_back(autograd::grad(b).to_float_vector());
  }
  EXPECT_EQ(g[0], g[2]);
  EXPECT_EQ(g[1], g[3]);
}

TEST(CudaMamba, CudaOnlyArgumentErrors) {
  // N > 32 is a CPU-only configuration.
  {
    ScanCase c{"bigN", 1, 8, 4, 33, false, false, false, false, true};
    auto ins = scan_inputs(c, 80, false);
    for (auto& t : ins)
      if (t.defined()) t = t.to(kGpu);
    try {
      run_scan(ins, true);
      ADD_FAILURE() << "N = 33 accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("N <= 32"), std::string::npos) << e.what();
    }
  }
  // u and delta of different dtypes.
  {
    ScanCase c{"mixed dtypes", 1, 8, 4, 4, false, false, false, false, true};
    auto ins = scan_inputs(c, 81, false);
    for (auto& t : ins)
      if (t.defined()) t = t.to(kGpu);
    ins[1] = Tensor::from_floats(ins[1].to_float_vector(), ins[1].shape(), DType::bf16, kGpu);
    try {
      run_scan(ins, true);
      ADD_FAILURE() << "mixed u / delta dtypes accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("one dtype"), std::string::npos) << e.what();
    }
  }
  // Kernel sizes above 8.
  try {
    ops::causal_conv1d(random_tensor({1, 8, 4}, DType::f32, 82, -1.f, 1.f, kGpu),
                       random_tensor({4, 9}, DType::f32, 83, -1.f, 1.f, kGpu), Tensor(), Tensor(), true);
    ADD_FAILURE() << "K = 9 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("kernel sizes 1..8"), std::string::npos) << e.what();
  }
}
