// ops::attention on CUDA against the CPU reference (f32): outputs and the gradients of q, k, v.
// Shapes exercise every kernel path: tensor cores for bf16/f16 with D <= 128 (D padded to 32,
// 64 or 128: D = 20, 40, 96 too), the CUDA-core path for f32 and for D > 128; sequence lengths
// with tails (1, 17, 200, 1000, an empty one), causal, ModernBERT's 129-key window, GPT-Neo's
// causal + 255 left window, grouped heads, strided views of a fused QKV projection (16-byte
// aligned rows and unaligned ones), more sequences than a grid dimension holds.
//
// Tolerances (relative L2, test_util rel_error): f32 1e-5 for outputs, 5e-5 for gradients (the
// GPU sums in another order; dS = P (dP - D) loses a little to cancellation); bf16/f16 1e-2 (the
// inputs are rounded to 8 / 11 mantissa bits on the GPU side, and P, dS are rounded before the
// tensor-core products, as in FlashAttention).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "lmforge/autograd/tape.h"
#include "lmforge/ops/attention.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;

namespace {

struct Case {
  const char* name;
  std::vector<int32_t> cu;
  int64_t hq, hkv, d;
  bool causal;
  int64_t wl, wr;
};

ops::AttentionOptions opts_of(const Case& c) {
  ops::AttentionOptions o;
  o.causal = c.causal;
  o.window_left = c.wl;
  o.window_right = c.wr;
  return o;
}

const std::vector<Case>& cases() {
  static const std::vector<Case> v = {
      {"lens_1_17_200_full_d64", {0, 1, 18, 218}, 2, 2, 64, false, -1, -1},
      {"causal_d64_empty_seq", {0, 17, 17, 217, 218}, 2, 2, 64, true, -1, -1},
      {"long_causal_gqa_d128", {0, 1000, 1017}, 4, 2, 128, true, -1, -1},
      {"long_full_d128", {0, 1, 1000}, 2, 2, 128, false, -1, -1},
      {"modernbert_window129_d64", {0, 1000, 1200, 1201}, 2, 2, 64, false, 64, 64},
      {"gptneo_causal_left255_d128", {0, 1000, 1017}, 2, 1, 128, true, 255, -1},
      {"d32_mqa", {0, 17, 217, 218}, 4, 1, 32, false, -1, -1},
      {"d20_unaligned_rows_window", {0, 200, 217}, 2, 2, 20, false, 5, 3},
      {"d40_right_window", {0, 130, 131}, 2, 1, 40, false, -1, 2},
      {"d96_causal", {0, 200, 217}, 2, 2, 96, true, -1, -1},
      {"d160_generic", {0, 1, 18, 218}, 2, 1, 160, true, -1, -1},
      {"d256_generic_window", {0, 129, 146}, 2, 2, 256, false, 16, 16},
      // Tile edges of the fast paths (whole-tile visibility tests, 128-query forward tiles at
      // D <= 64, per-warp tile skipping): lengths off the 64 / 128 grid, causal + left window,
      // asymmetric windows, an odd head dim (scalar output writes).
      {"tiles_causal_left150_gqa_d64", {0, 700, 957, 958}, 4, 2, 64, true, 150, -1},
      {"tiles_full_len257_d64", {0, 257, 300, 429}, 2, 2, 64, false, -1, -1},
      {"tiles_window_100_37_d128", {0, 600, 601}, 2, 2, 128, false, 100, 37},
      {"tiles_right70_d64", {0, 270}, 2, 1, 64, false, -1, 70},
      {"d33_causal_odd_head_dim", {0, 150, 160}, 2, 1, 33, true, -1, -1},
      // More sequences than one grid z dimension holds (65535): launched in chunks.
      {"70000_sequences_chunked_grid", [] {
         std::vector<int32_t> cu{0};
         for (int s = 0; s < 70000; s++) cu.push_back(cu.back() + 1 + (s % 3 == 0));
         return cu;
       }(), 2, 1, 64, true, -1, -1},
  };
  return v;
}

double grad_tol(DType dt) { return dt == DType::f32 ? 5e-5 : 1e-2; }
double out_tol(DType dt) { return dt == DType::f32 ? 1e-5 : 1e-2; }

}  // namespace

TEST(OpsAttentionCuda, MatchesCpu) {
  for (const Case& c : cases()) {
    const int64_t N = c.cu.back();
    const ops::AttentionOptions o = opts_of(c);
    auto fn = [&](const std::vector<Tensor>& in) { return ops::attention(in[0], in[1], in[2], c.cu, o); };
    // q, k in U(-2, 2) so the softmax is far from uniform; v in U(-1, 1).
    const std::vector<Tensor> ins = {test::random_tensor({N, c.hq, c.d}, DType::f32, 11, -2.f, 2.f),
                                     test::random_tensor({N, c.hkv, c.d}, DType::f32, 12, -2.f, 2.f),
                                     test::random_tensor({N, c.hkv, c.d}, DType::f32, 13)};
    for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
      if (dt == DType::f16 && c.d != 64 && c.d != 128) continue;  // f16 shares the bf16 kernels
      auto r = test::compare_cpu_cuda(fn, ins, dt);
      const std::string tag = std::string(c.name) + " " + std::string(dtype_name(dt));
      EXPECT_LT(r.out_rel, out_tol(dt)) << tag << " out";
      EXPECT_LT(r.grad_rel[0], grad_tol(dt)) << tag << " dq";
      EXPECT_LT(r.grad_rel[1], grad_tol(dt)) << tag << " dk";
      EXPECT_LT(r.grad_rel[2], grad_tol(dt)) << tag << " dv";
    }
  }
}

// q, k, v as strided views of one fused [N, pad + (Hq + 2 Hkv) D] buffer on the device (what a
// fused QKV projection gives), against the CPU on the same rounded values.
TEST(OpsAttentionCuda, StridedViewsOfFusedQkv) {
  const std::vector<int32_t> cu{0, 77, 78, 300};
  const int64_t N = 300, Hq = 4, Hkv = 2, D = 64, W = Hq + 2 * Hkv;
  for (int64_t pad : {0, 4}) {  // pad 4: rows not 16-byte aligned (scalar tile loads)
    for (DType dt : {DType::bf16, DType::f32}) {
      const int64_t row = pad + W * D;
      Tensor fused_cpu = Tensor::from_floats(test::random_tensor({N, row}, DType::f32, 31, -2.f, 2.f).to_float_vector(),
                                             {N, row}, dt);  // rounded to dt once, for both sides
      auto views = [&](const Tensor& f) {
        auto at = [&](int64_t h0, int64_t H) {
          return Tensor(f.storage(), {N, H, D}, {row, D, 1}, f.offset() + pad + h0 * D, f.dtype());
        };
        return std::vector<Tensor>{at(0, Hq), at(Hq, Hkv), at(Hq + Hkv, Hkv)};
      };
      ops::AttentionOptions o;
      o.causal = true;
      o.window_left = 40;
      Tensor r = test::random_tensor({N, Hq, D}, DType::f32, 32);
      auto run = [&](const Tensor& fused, DType compute) {
        std::vector<Tensor> v = views(fused);
        std::vector<Tensor> in;
        for (auto& t : v) {
          Tensor x = compute == dt ? t : Tensor::from_floats(t.to_float_vector(), t.shape(), compute, t.device());
          autograd::set_requires_grad(x, true);
          in.push_back(x);
        }
        Tensor out = ops::attention(in[0], in[1], in[2], cu, o);
        autograd::backward(out, Tensor::from_floats(r.to_float_vector(), r.shape(), out.dtype(), out.device()));
        return std::vector<Tensor>{out, autograd::grad(in[0]), autograd::grad(in[1]), autograd::grad(in[2])};
      };
      auto gpu = run(fused_cpu.to(Device::cuda(0)), dt);
      auto cpu = run(fused_cpu, DType::f32);  // f32 on the CPU from the same (rounded) values
      const char* names[] = {"out", "dq", "dk", "dv"};
      for (int i = 0; i < 4; i++) {
        ASSERT_TRUE(gpu[size_t(i)].defined()) << names[i];
        const double tol = i == 0 ? out_tol(dt) : grad_tol(dt);
        EXPECT_LT(test::rel_error(gpu[size_t(i)], cpu[size_t(i)]), tol)
            << names[i] << " pad " << pad << " " << dtype_name(dt);
      }
    }
  }
}

TEST(OpsAttentionCuda, HeadDimLimitAndDeviceMismatch) {
  Tensor q = test::random_tensor({4, 1, 264}, DType::bf16, 1, -1.f, 1.f, Device::cuda(0));
  try {
    ops::attention(q, q, q, {0, 4});
    ADD_FAILURE() << "head_dim 264 accepted on CUDA";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[attention] head_dim 264"), std::string::npos) << e.what();
  }
  Tensor qc = test::random_tensor({4, 1, 8}, DType::f32, 2);
  Tensor kg = test::random_tensor({4, 1, 8}, DType::f32, 3, -1.f, 1.f, Device::cuda(0));
  EXPECT_THROW(ops::attention(qc, kg, kg, {0, 4}), Error);
}

// Repeated calls with the same cu_seqlens reuse the uploaded copy; a different one must not.
TEST(OpsAttentionCuda, CuSeqlensChangeBetweenCalls) {
  Tensor q = test::random_tensor({10, 2, 64}, DType::f32, 4, -2.f, 2.f);
  Tensor k = test::random_tensor({10, 2, 64}, DType::f32, 5, -2.f, 2.f);
  Tensor v = test::random_tensor({10, 2, 64}, DType::f32, 6);
  Tensor qg = q.to(Device::cuda(0)), kg = k.to(Device::cuda(0)), vg = v.to(Device::cuda(0));
  for (const auto& cu : {std::vector<int32_t>{0, 4, 10}, std::vector<int32_t>{0, 7, 10}, std::vector<int32_t>{0, 4, 10}}) {
    Tensor a = ops::attention(qg, kg, vg, cu), b = ops::attention(q, k, v, cu);
    EXPECT_LT(test::rel_error(a, b), 1e-5) << cu[1];
  }
}
