// AdamW (CPU path), global grad norm and clip factor.
// Expected values come from the textbook formulas evaluated in fp64 here (reference_step below,
// or literals printed by a few lines of Python with the same formulas), never from the library.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lmforge/core/error.h"
#include "lmforge/train/adamw.h"
#include "lmforge/train/grad_clip.h"
#include "test_util.h"

using namespace lmf;

namespace {

template <class F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected lmf::Error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// The update as the PyTorch docs write it (fp64):
//   p -= lr*wd*p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
//   p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)
struct RefState {
  std::vector<double> p, m, v;
};
void reference_step(RefState& s, const std::vector<double>& grads, int64_t t, double lr, double wd,
                    double b1, double b2, double eps, double grad_scale, int64_t begin,
                    int64_t end) {
  for (int64_t i = begin; i < end; i++) {
    const double g = grads[i] * grad_scale;
    s.p[i] -= lr * wd * s.p[i];
    s.m[i] = b1 * s.m[i] + (1 - b1) * g;
    s.v[i] = b2 * s.v[i] + (1 - b2) * g * g;
    const double m_hat = s.m[i] / (1 - std::pow(b1, double(t)));
    const double v_hat = s.v[i] / (1 - std::pow(b2, double(t)));
    s.p[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
  }
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double rel,
                  const char* what, double abs = 1e-30) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); i++)
    EXPECT_NEAR(got[i], want[i], rel * std::fabs(want[i]) + abs) << what << "[" << i << "]";
}

std::vector<double> to_double(const std::vector<float>& x) { return {x.begin(), x.end()}; }

}  // namespace

TEST(AdamW, ThreeStepTrajectoryMatchesHandComputed) {
  // Literals: fp64 evaluation of the formulas above (Python), betas (0.9, 0.95), eps 1e-8,
  // wd 0.1, lr 1e-2, 5e-3, 2e-3. Element 2 has |g| ~ 1e-9 < eps, so eps matters there.
  AdamWConfig cfg{0.9, 0.95, 1e-8, 0.1};
  AdamW opt(cfg, 3, Device::cpu());
  Tensor p = Tensor::from_vector<float>({0.5f, -1.25f, 2.0f}, {3});
  const std::vector<std::vector<float>> grads = {
      {0.1f, -0.3f, 1e-9f}, {-0.2f, 0.25f, 2e-9f}, {0.05f, -0.1f, -1e-9f}};
  const double lrs[3] = {1e-2, 5e-3, 2e-3};
  const std::vector<std::vector<double>> want_p = {
      {0.4895000009999999, -1.2387500003333334, 1.997090909090909},
      {0.4910721206378515, -1.237939581584503, 1.9954340861346271},
      {0.49124835248602283, -1.2373129903311841, 1.9949308989222398}};
  const std::vector<std::vector<double>> want_m = {
      {0.01, -0.03, 1e-10}, {-0.011, -0.002, 2.9e-10}, {-0.0049, -0.0118, 1.61e-10}};
  const std::vector<std::vector<double>> want_v = {
      {5e-4, 4.5e-3, 5e-20}, {2.475e-3, 7.4e-3, 2.475e-19}, {2.47625e-3, 7.53e-3, 2.85125e-19}};
  for (int t = 0; t < 3; t++) {
    opt.step(p, Tensor::from_vector<float>(grads[t], {3}), Tensor(), lrs[t]);
    EXPECT_EQ(opt.steps_taken(), t + 1);
    expect_close(p.to_float_vector(), want_p[t], 1e-6, "p");
    // m and v see the fp32-rounded gradients: allow fp32 input rounding (~6e-8) plus arithmetic.
    expect_close(opt.exp_avg().to_float_vector(), want_m[t], 2e-6, "m");
    expect_close(opt.exp_avg_sq().to_float_vector(), want_v[t], 2e-6, "v");
  }
}

TEST(AdamW, BiasCorrectionAtStepOneGivesSignUpdate) {
  // t = 1: m_hat = g, v_hat = g^2, so p1 = p0 - lr * g / (|g| + eps) ~ p0 - lr * sign(g).
  AdamW opt({0.9, 0.999, 1e-8, 0.0}, 4, Device::cpu());
  Tensor p = Tensor::from_vector<float>({1.f, 1.f, -2.f, 0.25f}, {4});
  std::vector<float> g = {3.f, -0.001f, 1e-4f, -50.f};
  opt.step(p, Tensor::from_vector<float>(g, {4}), Tensor(), 0.1);
  std::vector<double> want = {1.0 - 0.1 * 3 / (3 + 1e-8), 1.0 + 0.1 * 0.001 / (0.001 + 1e-8),
                              -2.0 - 0.1 * 1e-4 / (1e-4 + 1e-8), 0.25 + 0.1 * 50 / (50 + 1e-8)};
  expect_close(p.to_float_vector(), want, 1e-6, "p");
  EXPECT_NEAR(p.to_float_vector()[0], 0.9, 1e-6);
  EXPECT_NEAR(p.to_float_vector()[3], 0.35, 1e-6);
}

TEST(AdamW, GroupsDecayLrScaleAndFrozenGap) {
  // [0, 400) wd 0.1; [400, 700) no decay; [700, 710) frozen (no group); [710, 1000) wd 0.1 at
  // half lr. Random p and g; three steps against the fp64 reference.
  const int64_t n = 1000;
  std::vector<AdamWGroup> groups = {
      {0, 400, 0.1, 1.0}, {400, 700, 0.0, 1.0}, {710, 1000, 0.1, 0.5}};
  AdamWConfig cfg{0.9, 0.95, 1e-8, 123.0};  // config wd unused when groups are given
  AdamW opt(cfg, n, Device::cpu(), groups);
  Tensor p = test::random_tensor({n}, DType::f32, 1);
  Tensor copy = Tensor::zeros({n}, DType::bf16);
  const std::vector<float> p0 = p.to_float_vector();
  RefState ref{to_double(p0), std::vector<double>(n, 0.0), std::vector<double>(n, 0.0)};
  for (int64_t t = 1; t <= 3; t++) {
    Tensor g = test::random_tensor({n}, DType::f32, 100 + t, -0.5f, 0.5f);
    const std::vector<double> gd = to_double(g.to_float_vector());
    const double lr = 3e-3 * double(t);
    opt.step(p, g, copy, lr);
    reference_step(ref, gd, t, lr, 0.1, 0.9, 0.95, 1e-8, 1.0, 0, 400);
    reference_step(ref, gd, t, lr, 0.0, 0.9, 0.95, 1e-8, 1.0, 400, 700);
    reference_step(ref, gd, t, lr * 0.5, 0.1, 0.9, 0.95, 1e-8, 1.0, 710, 1000);
  }
  const std::vector<float> pf = p.to_float_vector(), m = opt.exp_avg().to_float_vector();
  for (int64_t i = 0; i < n; i++) {
    if (i >= 700 && i < 710) {
      EXPECT_EQ(pf[i], p0[i]) << i;  // frozen: untouched
      EXPECT_EQ(m[i], 0.f) << i;
      EXPECT_EQ(copy.to_float_vector()[i], 0.f) << i;
    } else {
      EXPECT_NEAR(pf[i], ref.p[i], 1e-6 * std::fabs(ref.p[i]) + 1e-7) << i;
      // m cancels terms of size ~|g| = 0.5: fp32 error ~ ulp(0.05), hence the absolute part.
      EXPECT_NEAR(m[i], ref.m[i], 1e-6 * std::fabs(ref.m[i]) + 2e-8) << i;
    }
  }
}

TEST(AdamW, SmallBeta1TakesTheOtherLerpBranch) {
  // 1 - beta1 >= 0.5 switches ATen's lerp to end - (end - self) * (1 - w); same math.
  const int64_t n = 64;
  AdamW opt({0.3, 0.9, 1e-8, 0.05}, n, Device::cpu());
  Tensor p = test::random_tensor({n}, DType::f32, 51);
  RefState ref{p.to_double_vector(), std::vector<double>(n, 0.0), std::vector<double>(n, 0.0)};
  for (int64_t t = 1; t <= 3; t++) {
    Tensor g = test::random_tensor({n}, DType::f32, 60 + t);
    opt.step(p, g, Tensor(), 1e-2);
    reference_step(ref, g.to_double_vector(), t, 1e-2, 0.05, 0.3, 0.9, 1e-8, 1.0, 0, n);
  }
  expect_close(p.to_float_vector(), ref.p, 1e-6, "p");
  expect_close(opt.exp_avg().to_float_vector(), ref.m, 1e-6, "m", 1e-7);  // |g| <= 1
}

TEST(AdamW, ZeroGradientLeavesOnlyDecoupledDecay) {
  // g = 0: m = v = 0 and the Adam term is 0 / eps = 0, so only p *= (1 - lr*wd) remains, and
  // not at all in the no-decay range.
  std::vector<AdamWGroup> groups = {{0, 3, 0.1, 1.0}, {3, 6, 0.0, 1.0}};
  AdamW opt({0.9, 0.95, 1e-8, 0.0}, 6, Device::cpu(), groups);
  Tensor p = Tensor::from_vector<float>({1.f, -2.f, 3.f, 1.f, -2.f, 3.f}, {6});
  opt.step(p, Tensor::zeros({6}, DType::f32), Tensor(), 0.5);
  EXPECT_EQ(p.to_float_vector(), (std::vector<float>{0.95f, -1.9f, 2.85f, 1.f, -2.f, 3.f}));
}

TEST(AdamW, GradScaleIsFoldedIntoTheGradient) {
  const int64_t n = 257;
  Tensor g = test::random_tensor({n}, DType::f32, 7);
  Tensor p1 = test::random_tensor({n}, DType::f32, 8), p2 = p1.clone(), p3 = p1.clone();
  const AdamWConfig cfg{0.9, 0.95, 1e-8, 0.1};
  AdamW a(cfg, n, Device::cpu()), b(cfg, n, Device::cpu()), c(cfg, n, Device::cpu());
  std::vector<float> half = g.to_float_vector();
  for (auto& x : half) x *= 0.5f;  // exact in fp32
  for (int t = 0; t < 3; t++) {
    a.step(p1, g, Tensor(), 1e-2, 0.5);
    b.step(p2, Tensor::from_vector<float>(half, {n}), Tensor(), 1e-2, 1.0);
    c.step(p3, g, Tensor(), 1e-2, 1.0);
  }
  EXPECT_EQ(p1.to_float_vector(), p2.to_float_vector());  // bitwise: same fp32 inputs
  EXPECT_EQ(a.exp_avg().to_float_vector(), b.exp_avg().to_float_vector());
  EXPECT_GT(test::max_abs_diff(p1, p3), 0.0);  // and the scale does change something

  // A non-power-of-two scale against the fp64 reference.
  AdamW d({0.9, 0.95, 1e-8, 0.1}, n, Device::cpu());
  Tensor p4 = test::random_tensor({n}, DType::f32, 9);
  RefState ref{p4.to_double_vector(), std::vector<double>(n, 0.0), std::vector<double>(n, 0.0)};
  d.step(p4, g, Tensor(), 1e-2, 0.3);
  reference_step(ref, g.to_double_vector(), 1, 1e-2, 0.1, 0.9, 0.95, 1e-8, 0.3, 0, n);
  expect_close(p4.to_float_vector(), ref.p, 1e-6, "p");
}

TEST(AdamW, ComputeCopyEqualsRoundedMaster) {
  const int64_t n = 1003;
  AdamW opt({0.9, 0.95, 1e-8, 0.1}, n, Device::cpu());
  Tensor p = test::random_tensor({n}, DType::f32, 11, -3.f, 3.f);
  Tensor cb = Tensor::zeros({n}, DType::bf16), cf = Tensor::zeros({n}, DType::f32);
  opt.step(p, test::random_tensor({n}, DType::f32, 12), cb, 1e-2);
  const float* pm = p.data<float>();
  const bf16* c = cb.data<bf16>();
  int differs_from_truncation = 0;
  for (int64_t i = 0; i < n; i++) {
    ASSERT_EQ(c[i].bits, float_to_bf16(pm[i]).bits) << i;
    uint32_t u;
    std::memcpy(&u, &pm[i], 4);
    differs_from_truncation += (c[i].bits != uint16_t(u >> 16));
  }
  EXPECT_GT(differs_from_truncation, 0);  // round-to-nearest, not truncation
  opt.step(p, test::random_tensor({n}, DType::f32, 13), cf, 1e-2);
  EXPECT_EQ(cf.to_float_vector(), p.to_float_vector());
}

TEST(AdamW, StateTensorsRoundTripResumesExactly) {
  const int64_t n = 300;
  AdamWConfig cfg{0.9, 0.95, 1e-8, 0.1};
  AdamW a(cfg, n, Device::cpu());
  Tensor pa = test::random_tensor({n}, DType::f32, 21);
  for (int t = 0; t < 2; t++)
    a.step(pa, test::random_tensor({n}, DType::f32, 30 + t), Tensor(), 1e-2);

  std::map<std::string, Tensor> saved;
  for (auto& [name, t] : a.state_tensors()) saved[name] = t.clone();
  ASSERT_EQ(saved.size(), 3u);
  EXPECT_EQ(saved.at("step").item(), 2.0);
  EXPECT_EQ(saved.at("step").dtype(), DType::i64);
  EXPECT_EQ(saved.at("exp_avg").numel(), n);

  AdamW b(cfg, n, Device::cpu());
  b.load_state_tensors(saved);
  EXPECT_EQ(b.steps_taken(), 2);
  Tensor pb = pa.clone();
  Tensor g = test::random_tensor({n}, DType::f32, 40);
  a.step(pa, g, Tensor(), 5e-3);
  b.step(pb, g, Tensor(), 5e-3);
  EXPECT_EQ(pa.to_float_vector(), pb.to_float_vector());

  // torch saves step as an f32 scalar: accepted.
  auto torch_like = saved;
  torch_like["step"] = Tensor::from_vector<float>({7.f}, {});
  b.load_state_tensors(torch_like);
  EXPECT_EQ(b.steps_taken(), 7);

  auto bad = saved;
  bad.erase("exp_avg_sq");
  expect_error([&] { b.load_state_tensors(bad); }, "exp_avg_sq");
  bad = saved;
  bad["exp_avg"] = Tensor::zeros({n + 1}, DType::f32);
  expect_error([&] { b.load_state_tensors(bad); }, "exp_avg");
  bad = saved;
  bad["exp_avg"] = Tensor::zeros({n}, DType::bf16);
  expect_error([&] { b.load_state_tensors(bad); }, "f32");
  bad = saved;
  bad["step"] = Tensor::from_vector<float>({2.5f}, {});
  expect_error([&] { b.load_state_tensors(bad); }, "step");
  EXPECT_EQ(b.steps_taken(), 7);  // unchanged by the failed loads
}

TEST(AdamW, RejectsBadArgumentsWithoutStepping) {
  const int64_t n = 8;
  AdamW opt({0.9, 0.95, 1e-8, 0.1}, n, Device::cpu());
  Tensor p = test::random_tensor({n}, DType::f32, 1), g = test::random_tensor({n}, DType::f32, 2);
  const std::vector<float> p0 = p.to_float_vector();
  expect_error([&] { opt.step(Tensor::zeros({n + 1}, DType::f32), g, Tensor(), 1e-3); }, "master");
  expect_error([&] { opt.step(p, Tensor::zeros({n}, DType::bf16), Tensor(), 1e-3); }, "grads");
  expect_error([&] { opt.step(p, g, Tensor::zeros({n}, DType::f16), 1e-3); }, "compute_copy");
  expect_error([&] { opt.step(p, g, Tensor::zeros({n - 1}, DType::bf16), 1e-3); }, "compute_copy");
  Tensor p2d = test::random_tensor({2, 4}, DType::f32, 3).transpose(0, 1);
  expect_error([&] { opt.step(p2d, g, Tensor(), 1e-3); }, "contiguous");
  expect_error([&] { opt.step(p, g, Tensor(), -1e-3); }, "lr");
  expect_error([&] { opt.step(p, g, Tensor(), std::nan("")); }, "lr");
  expect_error([&] { opt.step(p, g, Tensor(), 1e-3, INFINITY); }, "grad_scale");
  expect_error([&] { opt.step(Tensor(), g, Tensor(), 1e-3); }, "master");

  // A tensor that claims to live on cuda:0 (borrowed host memory, never dereferenced).
  auto host = std::make_shared<std::vector<float>>(n, 1.f);
  auto storage = std::make_shared<Storage>(Device::cuda(0), host->data(), n * sizeof(float), host);
  Tensor on_gpu(storage, {n}, {1}, 0, DType::f32);
  expect_error([&] { opt.step(p, on_gpu, Tensor(), 1e-3); }, "cuda:0");

  EXPECT_EQ(opt.steps_taken(), 0);
  EXPECT_EQ(p.to_float_vector(), p0);
  EXPECT_EQ(opt.exp_avg().to_float_vector(), std::vector<float>(n, 0.f));
}

TEST(AdamW, RejectsBadConfigAndGroups) {
  expect_error([] { AdamW({1.0, 0.95, 1e-8, 0.1}, 4, Device::cpu()); }, "beta1");
  expect_error([] { AdamW({0.9, -0.1, 1e-8, 0.1}, 4, Device::cpu()); }, "beta2");
  expect_error([] { AdamW({0.9, 0.95, -1.0, 0.1}, 4, Device::cpu()); }, "eps");
  expect_error([] { AdamW({0.9, 0.95, 1e-8, -0.1}, 4, Device::cpu()); }, "weight_decay");
  expect_error([] { AdamW({}, -1, Device::cpu()); }, "numel");
  expect_error([] { AdamW({}, 10, Device::cpu(), {{0, 11, 0.1, 1.0}}); }, "groups[0]");
  expect_error(
      [] {
        AdamW({}, 10, Device::cpu(), {{0, 6, 0.1, 1.0}, {5, 10, 0.0, 1.0}});
      },
      "groups[1]");
  expect_error(
      [] {
        AdamW({}, 10, Device::cpu(), {{5, 10, 0.1, 1.0}, {0, 5, 0.0, 1.0}});
      },
      "groups[1]");
  expect_error([] { AdamW({}, 10, Device::cpu(), {{4, 2, 0.1, 1.0}}); }, "groups[0]");
  expect_error(
      [] {
        AdamW({}, 10, Device::cpu(), {{0, 10, -0.1, 1.0}});
      },
      "groups[0].weight_decay");
  expect_error([] { AdamW({}, 10, Device::cpu(), {{0, 10, 0.1, -1.0}}); }, "groups[0].lr_scale");
}

TEST(GradNorm, MatchesFp64SumAndIsThreadCountInvariant) {
  const int64_t n = 200003;  // several 64K chunks plus a tail
  Tensor g = test::random_tensor({n}, DType::f32, 5, -2.f, 2.f);
  double want = 0;
  for (double x : g.to_double_vector()) want += x * x;
  want = std::sqrt(want);
  const double got = grad_norm(g);
  EXPECT_NEAR(got, want, 1e-12 * want);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = grad_norm(g);
  omp_set_num_threads(3);
  const double three = grad_norm(g);
  omp_set_num_threads(threads);
  EXPECT_EQ(one, got);
  EXPECT_EQ(three, got);
  EXPECT_EQ(grad_norm(g.view({1, n})), got);  // any shape

  EXPECT_EQ(grad_norm(Tensor::from_vector<float>({3.f, -4.f}, {2})), 5.0);
  EXPECT_TRUE(std::isinf(grad_norm(Tensor::from_vector<float>({1.f, INFINITY}, {2}))));
  expect_error([] { grad_norm(Tensor::zeros({4}, DType::bf16)); }, "f32");
  expect_error(
      [] {
        grad_norm(test::random_tensor({2, 3}, DType::f32, 1).transpose(0, 1));
      },
      "contiguous");
}

TEST(GradNorm, ClipFactorAsTorch) {
  EXPECT_DOUBLE_EQ(clip_factor(2.0, 1.0), 1.0 / (2.0 + 1e-6));
  EXPECT_EQ(clip_factor(0.5, 1.0), 1.0);  // below max: no scaling
  EXPECT_EQ(clip_factor(0.0, 1.0), 1.0);
  EXPECT_EQ(clip_factor(INFINITY, 1.0), 0.0);
  EXPECT_TRUE(std::isnan(clip_factor(std::nan(""), 1.0)));
  expect_error([] { clip_factor(1.0, 0.0); }, "max_norm");
  expect_error([] { clip_factor(1.0, INFINITY); }, "max_norm");
  expect_error([] { clip_factor(-1.0, 1.0); }, "norm");
}
