// Mamba primitives: forward against a naive sequential recurrence written independently here,
// document-boundary semantics (packed == separate), fp64 gradient checks.
#include <gtest/gtest.h>

#include <cmath>

#include "lmforge/ops/mamba_ops.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;
using test::random_tensor;

namespace {
Tensor seq_ids(const std::vector<int32_t>& v, int64_t B, int64_t L) { return Tensor::from_vector<int32_t>(v, {B, L}); }

ops::SelectiveScanArgs scan_args(int64_t B, int64_t L, int64_t D, int64_t N, DType dt, uint64_t seed) {
  ops::SelectiveScanArgs a;
  a.u = random_tensor({B, L, D}, dt, seed + 1);
  a.delta = random_tensor({B, L, D}, dt, seed + 2, -2.f, 1.f);
  a.A_log = random_tensor({D, N}, dt, seed + 3, -1.f, 1.f);
  a.Bm = random_tensor({B, L, N}, dt, seed + 4);
  a.Cm = random_tensor({B, L, N}, dt, seed + 5);
  a.Dskip = random_tensor({D}, dt, seed + 6);
  a.z = random_tensor({B, L, D}, dt, seed + 7);
  a.delta_bias = random_tensor({D}, dt, seed + 8, -1.f, 0.5f);
  return a;
}
}  // namespace

TEST(OpsMamba, ConvMatchesTorchSemantics) {
  // One channel, K = 3, w = [1, 2, 3]: y[t] = 1*x[t-2] + 2*x[t-1] + 3*x[t] + bias.
  Tensor x = Tensor::from_vector<float>({1, 10, 100, 1000}, {1, 4, 1});
  Tensor w = Tensor::from_vector<float>({1, 2, 3}, {1, 3});
  Tensor b = Tensor::from_vector<float>({0.5f}, {1});
  auto y = ops::causal_conv1d(x, w, b, Tensor(), false).to_float_vector();
  EXPECT_EQ(y, (std::vector<float>{3.5f, 32.5f, 321.5f, 3210.5f}));
  // A document boundary at t = 2 hides x[0], x[1] from t >= 2.
  auto ys = ops::causal_conv1d(x, w, b, seq_ids({0, 0, 1, 1}, 1, 4), false).to_float_vector();
  EXPECT_EQ(ys, (std::vector<float>{3.5f, 32.5f, 300.5f, 3200.5f}));
}

TEST(OpsMamba, ScanMatchesNaiveRecurrence) {
  const int64_t B = 2, L = 5, D = 3, N = 4;
  auto a = scan_args(B, L, D, N, DType::f32, 1);
  auto out = ops::selective_scan(a).to_double_vector();
  auto u = a.u.to_double_vector(), dl = a.delta.to_double_vector(), Al = a.A_log.to_double_vector();
  auto Bv = a.Bm.to_double_vector(), Cv = a.Cm.to_double_vector(), Dv = a.Dskip.to_double_vector();
  auto zv = a.z.to_double_vector(), bias = a.delta_bias.to_double_vector();
  for (int64_t b = 0; b < B; b++)
    for (int64_t d = 0; d < D; d++) {
      std::vector<double> h(N, 0.0);
      for (int64_t t = 0; t < L; t++) {
        size_t i = size_t((b * L + t) * D + d);
        double dt = std::log1p(std::exp(dl[i] + bias[d]));
        double y = 0;
        for (int64_t n = 0; n < N; n++) {
          double A = -std::exp(Al[size_t(d * N + n)]);
          h[n] = std::exp(dt * A) * h[n] + dt * Bv[size_t((b * L + t) * N + n)] * u[i];
          y += h[n] * Cv[size_t((b * L + t) * N + n)];
        }
        y = (y + Dv[d] * u[i]) * zv[i] / (1 + std::exp(-zv[i]));
        EXPECT_NEAR(out[i], y, 1e-5 * (1 + std::fabs(y))) << "b" << b << " d" << d << " t" << t;
      }
    }
}

TEST(OpsMamba, PackedDocumentsEqualSeparateRuns) {
  // Two documents packed into one row of length 7 give the same outputs as two separate rows.
  const int64_t D = 3, N = 2, L1 = 3, L2 = 4;
  auto packed = scan_args(1, L1 + L2, D, N, DType::f32, 5);
  packed.seq_idx = seq_ids({0, 0, 0, 1, 1, 1, 1}, 1, L1 + L2);
  auto out = ops::selective_scan(packed).to_double_vector();
  auto conv_w = random_tensor({D, 4}, DType::f32, 9);
  auto conv = ops::causal_conv1d(packed.u, conv_w, Tensor(), packed.seq_idx, true).to_double_vector();
  for (int doc = 0; doc < 2; doc++) {
    int64_t s = doc == 0 ? 0 : L1, len = doc == 0 ? L1 : L2;
    ops::SelectiveScanArgs one = packed;
    one.seq_idx = Tensor();
    for (Tensor* t : {&one.u, &one.delta, &one.Bm, &one.Cm, &one.z}) *t = t->slice(1, s, s + len).contiguous();
    auto o = ops::selective_scan(one).to_double_vector();
    auto cv = ops::causal_conv1d(one.u, conv_w, Tensor(), Tensor(), true).to_double_vector();
    for (int64_t k = 0; k < len * D; k++) {
      EXPECT_NEAR(out[size_t(s * D + k)], o[size_t(k)], 1e-6);
      EXPECT_NEAR(conv[size_t(s * D + k)], cv[size_t(k)], 1e-6);
    }
  }
}

TEST(OpsMamba, GradCheck) {
  auto a = scan_args(2, 6, 3, 2, DType::f64, 11);
  Tensor seq = seq_ids({0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0}, 2, 6);
  for (bool with_seq : {false, true}) {
    auto fn = [&](const std::vector<Tensor>& x) {
      ops::SelectiveScanArgs s{x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7], with_seq ? seq : Tensor(), true};
      return ops::selective_scan(s);
    };
    auto r = test::gradcheck(fn, {a.u, a.delta, a.A_log, a.Bm, a.Cm, a.Dskip, a.z, a.delta_bias});
    EXPECT_LT(r.max_rel_error, 1e-6) << "scan seq=" << with_seq << ": " << r.worst;
    auto cfn = [&](const std::vector<Tensor>& x) { return ops::causal_conv1d(x[0], x[1], x[2], with_seq ? seq : Tensor(), true); };
    auto rc = test::gradcheck(cfn, {a.u, random_tensor({3, 4}, DType::f64, 3), random_tensor({3}, DType::f64, 4)});
    EXPECT_LT(rc.max_rel_error, 1e-6) << "conv seq=" << with_seq << ": " << rc.worst;
  }
}

TEST(OpsMamba, BadArguments) {
  auto a = scan_args(1, 4, 3, 2, DType::f32, 1);
  a.Bm = random_tensor({1, 4, 3}, DType::f32, 2);
  EXPECT_THROW(ops::selective_scan(a), Error);
  EXPECT_THROW(ops::causal_conv1d(random_tensor({1, 4, 3}, DType::f32, 1), random_tensor({2, 4}, DType::f32, 1), Tensor(), Tensor(), true), Error);
}
