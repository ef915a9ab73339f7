// ops::rope / ops::rope_qkv on CUDA against the CPU reference: outputs and input gradients, f32
// (<= 1e-5) and bf16 (<= 1e-2), head sizes that are not powers of two, a rotary_dim prefix,
// positions up to 8191 (fp32 angles as large as ModernBERT's), fused QKV views, a large case.
#include <gtest/gtest.h>

#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/rope.h"
#include "lmforge/ops/slice.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;

namespace {
Tensor random_positions(int64_t N, uint64_t seed) {
  auto u = test::random_tensor({N}, DType::f32, seed, 0.f, 8192.f).to_float_vector();
  std::vector<int64_t> p(u.size());
  for (size_t i = 0; i < u.size(); i++) p[i] = i % 5 == 0 ? int64_t(i) : int64_t(u[i]);
  return Tensor::from_vector<int64_t>(p, {N});
}
}  // namespace

TEST(OpsRopeCuda, MatchesCpu) {
  struct Case {
    Shape shape;
    int64_t rotary_dim;
    double theta;
  };
  const std::vector<Case> cases = {{{1, 1, 2}, 0, 10000.0},      {{7, 3, 10}, 6, 500.0},
                                   {{33, 12, 64}, 0, 160000.0},  {{513, 5, 128}, 0, 10000.0},
                                   {{37, 4, 96}, 32, 10000.0},   {{4096, 24, 64}, 0, 160000.0}};
  for (const auto& c : cases) {
    const int64_t R = c.rotary_dim;
    const double theta = c.theta;
    auto fn = [R, theta](const std::vector<Tensor>& in) { return ops::rope(in[0], in[1], theta, R); };
    for (DType dt : {DType::f32, DType::bf16}) {
      auto r = test::compare_cpu_cuda(fn, {test::random_tensor(c.shape, DType::f32, 5), random_positions(c.shape[0], 6)},
                                      dt);
      const double tol = dt == DType::f32 ? 1e-5 : 1e-2;
      EXPECT_LT(r.out_rel, tol) << shape_str(c.shape) << " " << dtype_name(dt);
      EXPECT_LT(r.grad_rel[0], tol) << shape_str(c.shape) << " " << dtype_name(dt) << " dx";
    }
  }
}

TEST(OpsRopeCuda, FusedQkvMatchesCpu) {
  const std::vector<Shape> shapes = {{3, 3, 1, 4}, {17, 3, 4, 16}, {300, 3, 12, 64}, {2049, 3, 6, 128}};
  for (const Shape& s : shapes) {
    auto fn = [](const std::vector<Tensor>& in) {
      auto r = ops::rope_qkv(in[0], in[1], 160000.0);
      // Different weights per output so every gradient path is distinct.
      return ops::concat_last({r.q, ops::scale(r.k, -0.5f), ops::scale(r.v, 2.f)});
    };
    for (DType dt : {DType::f32, DType::bf16}) {
      auto r = test::compare_cpu_cuda(fn, {test::random_tensor(s, DType::f32, 9), random_positions(s[0], 10)}, dt);
      const double tol = dt == DType::f32 ? 1e-5 : 1e-2;
      EXPECT_LT(r.out_rel, tol) << shape_str(s) << " " << dtype_name(dt);
      EXPECT_LT(r.grad_rel[0], tol) << shape_str(s) << " " << dtype_name(dt) << " dqkv";
    }
  }
}

TEST(OpsRopeCuda, StridedViewInput) {
  // rope of the k view of a fused QKV (row stride 3HD) on the device.
  auto fn = [](const std::vector<Tensor>& in) {
    auto r = ops::rope_qkv(in[0], in[1], 10000.0, 8);
    return ops::rope(r.v, in[1], 777.0);
  };
  for (DType dt : {DType::f32, DType::bf16}) {
    auto r = test::compare_cpu_cuda(fn, {test::random_tensor({65, 3, 3, 24}, DType::f32, 12), random_positions(65, 13)},
                                    dt);
    const double tol = dt == DType::f32 ? 1e-5 : 1e-2;
    EXPECT_LT(r.out_rel, tol) << dtype_name(dt);
    EXPECT_LT(r.grad_rel[0], tol) << dtype_name(dt);
  }
}
