// The CUDA attention backward's alternative kernels (selected by environment variables, see
// docs/attention.md) against the CPU reference: the deterministic two-kernel backward and
// LMF_ATTN_BWD=atomic, each with every tile-shape variant of LMF_ATTN_BWD_VARIANT at D = 64
// (and the atomic path at D = 32, 128), bf16 and f16, on shapes that hit every masking path (causal
// diagonal, windows with tile-edge lengths, grouped heads, sequence tails, a negative scale
// that turns the -inf mask into +inf).
// Tolerances as in test_ops_attention_cuda.cc (relative L2 1e-2 for 16-bit types).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "lmforge/core/scoped_env.h"
#include "lmforge/ops/attention.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;

namespace {


struct Case {
  const char* name;
  std::vector<int32_t> cu;
  int64_t hq, hkv;
  bool causal;
  int64_t wl, wr;
  float scale;
};

const std::vector<Case>& cases() {
  static const std::vector<Case> v = {
      {"full_tails", {0, 1, 18, 300, 557}, 2, 2, false, -1, -1, 0.f},
      {"causal_gqa", {0, 520, 541}, 4, 2, true, -1, -1, 0.f},
      {"window64_tails", {0, 400, 401, 530}, 2, 1, false, 64, 64, 0.f},
      {"causal_left150_mqa", {0, 450, 470}, 3, 1, true, 150, -1, 0.f},
      {"right37_negative_scale", {0, 333}, 2, 2, false, -1, 37, -0.09f},
  };
  return v;
}

}  // namespace

TEST(AttentionBwdVariantsCuda, TileShapesMatchCpu) {
  for (const char* mode : {"deterministic", "atomic"})
  for (const char* variant : {"0", "1", "2", "3"}) {
    ScopedEnv env_mode("LMF_ATTN_BWD", mode);
    ScopedEnv env("LMF_ATTN_BWD_VARIANT", variant);
    for (const Case& c : cases()) {
      const int64_t N = c.cu.back();
      ops::AttentionOptions o;
      o.causal = c.causal;
      o.window_left = c.wl;
      o.window_right = c.wr;
      o.scale = c.scale;
      auto fn = [&](const std::vector<Tensor>& in) { return ops::attention(in[0], in[1], in[2], c.cu, o); };
      const std::vector<Tensor> ins = {test::random_tensor({N, c.hq, 64}, DType::f32, 21, -2.f, 2.f),
                                       test::random_tensor({N, c.hkv, 64}, DType::f32, 22, -2.f, 2.f),
                                       test::random_tensor({N, c.hkv, 64}, DType::f32, 23)};
      for (DType dt : {DType::bf16, DType::f16}) {
        auto r = test::compare_cpu_cuda(fn, ins, dt);
        const std::string tag = std::string(c.name) + " " + std::string(dtype_name(dt)) + " " + mode + " variant " + variant;
        EXPECT_LT(r.out_rel, 1e-2) << tag << " out";
        ASSERT_EQ(r.grad_rel.size(), 3u) << tag;
        EXPECT_LT(r.grad_rel[0], 1e-2) << tag << " dq";
        EXPECT_LT(r.grad_rel[1], 1e-2) << tag << " dk";
        EXPECT_LT(r.grad_rel[2], 1e-2) << tag << " dv";
      }
    }
  }
}

// The atomic single pass at the other padded head sizes (D = 20 -> 32, 96 and 128 -> 128),
// including odd D (scalar atomics).
TEST(AttentionBwdVariantsCuda, AtomicOtherHeadDimsMatchCpu) {
  ScopedEnv env_mode("LMF_ATTN_BWD", "atomic");
  struct DCase {
    int64_t d;
    bool causal;
    int64_t wl;
  };
  for (const DCase& c : {DCase{20, false, 5}, DCase{33, true, -1}, DCase{96, true, -1}, DCase{128, false, 100}}) {
    const std::vector<int32_t> cu{0, 200, 217, 480};
    const int64_t N = cu.back();
    ops::AttentionOptions o;
    o.causal = c.causal;
    o.window_left = c.wl;
    auto fn = [&](const std::vector<Tensor>& in) { return ops::attention(in[0], in[1], in[2], cu, o); };
    const std::vector<Tensor> ins = {test::random_tensor({N, 4, c.d}, DType::f32, 41, -2.f, 2.f),
                                     test::random_tensor({N, 2, c.d}, DType::f32, 42, -2.f, 2.f),
                                     test::random_tensor({N, 2, c.d}, DType::f32, 43)};
    auto r = test::compare_cpu_cuda(fn, ins, DType::bf16);
    const std::string tag = "d " + std::to_string(c.d);
    EXPECT_LT(r.out_rel, 1e-2) << tag << " out";
    ASSERT_EQ(r.grad_rel.size(), 3u) << tag;
    EXPECT_LT(r.grad_rel[0], 1e-2) << tag << " dq";
    EXPECT_LT(r.grad_rel[1], 1e-2) << tag << " dk";
    EXPECT_LT(r.grad_rel[2], 1e-2) << tag << " dv";
  }
}

// The D > 64 dQ kernel variants (64-key tiles; Q / dO fragments from shared memory).
TEST(AttentionBwdVariantsCuda, HeadDim128DqVariantsMatchCpu) {
  for (const char* variant : {"1", "2"}) {
    ScopedEnv env("LMF_ATTN_BWD_VARIANT", variant);
    for (const int64_t d : {96, 128}) {
      for (const bool causal : {false, true}) {
        const std::vector<int32_t> cu{0, 1, 300, 317};
        const int64_t N = cu.back();
        ops::AttentionOptions o;
        o.causal = causal;
        o.window_right = causal ? -1 : 70;
        auto fn = [&](const std::vector<Tensor>& in) { return ops::attention(in[0], in[1], in[2], cu, o); };
        const std::vector<Tensor> ins = {test::random_tensor({N, 2, d}, DType::f32, 51, -2.f, 2.f),
                                         test::random_tensor({N, 1, d}, DType::f32, 52, -2.f, 2.f),
                                         test::random_tensor({N, 1, d}, DType::f32, 53)};
        auto r = test::compare_cpu_cuda(fn, ins, DType::bf16);
        const std::string tag = "d " + std::to_string(d) + (causal ? " causal" : " right70") + " variant " + variant;
        EXPECT_LT(r.out_rel, 1e-2) << tag << " out";
        ASSERT_EQ(r.grad_rel.size(), 3u) << tag;
        EXPECT_LT(r.grad_rel[0], 1e-2) << tag << " dq";
        EXPECT_LT(r.grad_rel[1], 1e-2) << tag << " dk";
        EXPECT_LT(r.grad_rel[2], 1e-2) << tag << " dv";
      }
    }
  }
}
