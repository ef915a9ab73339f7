// Rotary position embeddings (ops/rope.h): hand-computed values, HF's rounding of cos/sin to the
// activation dtype, the rotary_dim prefix, the fused-QKV form against the plain one, fp64
// gradchecks (plain, fused, strided views) and bad arguments.
#include <gtest/gtest.h>

#include <cmath>

#include "lmforge/autograd/tape.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/rope.h"
#include "lmforge/ops/slice.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;
using test::random_tensor;

namespace {

Tensor positions(const std::vector<int64_t>& p) { return Tensor::from_vector<int64_t>(p, {int64_t(p.size())}); }

// Independent double-precision reference. hf_angles: the angle is formed in fp32 as HF does
// (inv_freq = 1.0 / (theta ** (arange(0, R, 2).float() / R)) in fp32, times the fp32 position);
// otherwise exactly.
std::vector<double> reference(const std::vector<double>& x, const std::vector<int64_t>& pos, int64_t H, int64_t D,
                              int64_t R, double theta, bool hf_angles) {
  std::vector<double> out = x;
  const int64_t N = int64_t(pos.size()), half = R / 2;
  for (int64_t n = 0; n < N; n++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < half; i++) {
        double ang = double(pos[size_t(n)]) * std::pow(theta, -2.0 * double(i) / double(R));
        if (hf_angles) {
          const float inv = 1.0f / float(std::pow(theta, double(float(2 * i) / float(R))));
          ang = double(float(pos[size_t(n)]) * inv);
        }
        const size_t a = size_t((n * H + h) * D + i), b = a + size_t(half);
        out[a] = x[a] * std::cos(ang) - x[b] * std::sin(ang);
        out[b] = x[b] * std::cos(ang) + x[a] * std::sin(ang);
      }
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(OpsRope, HandComputedValues) {
  // D = 4, theta = 100: inv_freq = [1, 0.1]. Position 2: angles 2 and 0.2.
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4}, {1, 1, 4});
  auto y = ops::rope(x, positions({2}), 100.0).to_float_vector();
  const double c0 = std::cos(2.0), s0 = std::sin(2.0), c1 = std::cos(0.2), s1 = std::sin(0.2);
  const double exp[4] = {1 * c0 - 3 * s0, 2 * c1 - 4 * s1, 3 * c0 + 1 * s0, 4 * c1 + 2 * s1};
  for (int i = 0; i < 4; i++) EXPECT_NEAR(y[size_t(i)], exp[i], 1e-6) << i;
  // Position 0 is the identity.
  EXPECT_EQ(ops::rope(x, positions({0}), 100.0).to_float_vector(), x.to_float_vector());
}

TEST(OpsRope, MatchesDoubleReferenceAndKeepsNorms) {
  const int64_t N = 7, H = 3, D = 16;
  const std::vector<int64_t> pos = {0, 1, 5, 17, 300, 4095, 8191};
  for (double theta : {10000.0, 160000.0}) {
    Tensor x = random_tensor({N, H, D}, DType::f32, 3);
    Tensor y = ops::rope(x, positions(pos), theta);
    // With HF's fp32 angles: only fp32 rounding of cos/sin and of the products remains.
    auto ref = reference(x.to_double_vector(), pos, H, D, D, theta, true);
    EXPECT_LT(test::rel_error(y.to_double_vector(), ref), 1e-6) << theta;
    // Exact angles: fp32 angles at positions up to 8191 are off by ~8191 * 2^-24 rad (HF too).
    auto exact = reference(x.to_double_vector(), pos, H, D, D, theta, false);
    EXPECT_LT(test::rel_error(y.to_double_vector(), exact), 5e-5) << theta;
    // A rotation per (i, i + D/2) pair: the pair's norm is kept.
    auto xv = x.to_double_vector(), yv = y.to_double_vector();
    for (int64_t r = 0; r < N * H; r++)
      for (int64_t i = 0; i < D / 2; i++) {
        const size_t a = size_t(r * D + i), b = a + size_t(D / 2);
        EXPECT_NEAR(yv[a] * yv[a] + yv[b] * yv[b], xv[a] * xv[a] + xv[b] * xv[b], 1e-5);
      }
  }
}

TEST(OpsRope, RotaryDimPrefixPassesTheRestThrough) {
  const int64_t N = 4, H = 2, D = 10, R = 6;
  const std::vector<int64_t> pos = {3, 0, 9, 2};
  Tensor x = random_tensor({N, H, D}, DType::f32, 4);
  auto y = ops::rope(x, positions(pos), 500.0, R).to_double_vector();
  auto xv = x.to_double_vector();
  // The reference over the prefix (R channels of every head), copy elsewhere.
  for (int64_t r = 0; r < N * H; r++) {
    for (int64_t d = R; d < D; d++) EXPECT_EQ(y[size_t(r * D + d)], xv[size_t(r * D + d)]);
    const int64_t n = r / H;
    for (int64_t i = 0; i < R / 2; i++) {
      const double ang = double(pos[size_t(n)]) * std::pow(500.0, -2.0 * double(i) / double(R));
      const double a = xv[size_t(r * D + i)], b = xv[size_t(r * D + i + R / 2)];
      EXPECT_NEAR(y[size_t(r * D + i)], a * std::cos(ang) - b * std::sin(ang), 1e-5);
      EXPECT_NEAR(y[size_t(r * D + i + R / 2)], b * std::cos(ang) + a * std::sin(ang), 1e-5);
    }
  }
}

TEST(OpsRope, Bf16RoundsCosSinLikeHF) {
  // HF: cos/sin are cast to the activation dtype before multiplying. With bf16 x the result must
  // equal the fp32 formula on bf16-rounded cos/sin (rounded once at the end), which differs from
  // the formula on unrounded cos/sin by far more than fp32 noise at large positions.
  const int64_t N = 3, H = 2, D = 8;
  const std::vector<int64_t> pos = {1000, 2001, 7777};
  Tensor x32 = random_tensor({N, H, D}, DType::f32, 8);
  Tensor xb = Tensor::from_floats(x32.to_float_vector(), x32.shape(), DType::bf16);
  auto xv = xb.to_float_vector();
  auto y = ops::rope(xb, positions(pos), 10000.0).to_float_vector();
  for (int64_t n = 0; n < N; n++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < D / 2; i++) {
        const float inv = 1.0f / float(std::pow(10000.0, double(float(2 * i) / float(D))));
        const float ang = float(pos[size_t(n)]) * inv;
        const float c = bf16_to_float(float_to_bf16(std::cos(ang))), s = bf16_to_float(float_to_bf16(std::sin(ang)));
        const size_t a = size_t((n * H + h) * D + i), b = a + size_t(D / 2);
        const float ea = bf16_to_float(float_to_bf16(xv[a] * c - xv[b] * s));
        const float eb = bf16_to_float(float_to_bf16(xv[b] * c + xv[a] * s));
        EXPECT_NEAR(y[a], ea, 1e-2 * std::fabs(ea) + 1e-6) << n << " " << h << " " << i;
        EXPECT_NEAR(y[b], eb, 1e-2 * std::fabs(eb) + 1e-6) << n << " " << h << " " << i;
      }
}

TEST(OpsRope, FusedQkvEqualsPlainRopeOfTheSlices) {
  const int64_t N = 5, H = 3, D = 8;
  const std::vector<int64_t> pos = {0, 1, 2, 0, 1};
  Tensor flat = random_tensor({N, 3 * H * D}, DType::f32, 11);
  auto r = ops::rope_qkv(flat.view({N, 3, H, D}), positions(pos), 1234.0);
  ASSERT_EQ(r.q.shape(), (Shape{N, H, D}));
  EXPECT_EQ(r.v.strides(), (Shape{3 * H * D, D, 1}));  // a view of qkv, no copy
  EXPECT_EQ(r.v.storage(), flat.storage());
  auto slice = [&](int j) { return ops::slice_last(flat, j * H * D, (j + 1) * H * D).view({N, H, D}); };
  EXPECT_EQ(r.q.contiguous().to_float_vector(), ops::rope(slice(0), positions(pos), 1234.0).to_float_vector());
  EXPECT_EQ(r.k.contiguous().to_float_vector(), ops::rope(slice(1), positions(pos), 1234.0).to_float_vector());
  EXPECT_EQ(r.v.contiguous().to_float_vector(), slice(2).to_float_vector());
  // A non-mergeable layout ([N, H, 3, D] transposed) is copied first and gives the same result.
  Tensor other = flat.view({N, 3, H, D}).contiguous().transpose(1, 2).contiguous().transpose(1, 2);
  auto r2 = ops::rope_qkv(other, positions(pos), 1234.0);
  EXPECT_EQ(r2.q.contiguous().to_float_vector(), r.q.contiguous().to_float_vector());
  EXPECT_EQ(r2.v.contiguous().to_float_vector(), r.v.contiguous().to_float_vector());
}

TEST(OpsRope, GradCheck) {
  const std::vector<int64_t> pv = {4, 0, 13, 2, 7, 1};
  Tensor pos = positions(pv);
  struct Case {
    const char* name;
    test::OpFn fn;
    Shape shape;
  };
  std::vector<Case> cases = {
      {"rope", [&](auto& x) { return ops::rope(x[0], pos, 50.0); }, {6, 2, 6}},
      {"rope_prefix", [&](auto& x) { return ops::rope(x[0], pos, 50.0, 4); }, {6, 2, 8}},
      {"rope_qkv", [&](auto& x) {
         auto r = ops::rope_qkv(x[0], pos, 30.0);
         return ops::concat_last({r.q, r.k, ops::scale(r.v, 0.5f)});
       }, {6, 3, 2, 4}},
      // Strided inputs: rope of the k view of a fused QKV (row stride 2HD).
      {"rope_of_view", [&](auto& x) {
         auto r = ops::rope_qkv(x[0], pos, 30.0, 2);
         return ops::rope(r.k, pos, 7.0);
       }, {6, 3, 2, 4}},
  };
  for (auto& c : cases) {
    auto res = test::gradcheck(c.fn, {random_tensor(c.shape, DType::f64, 21)});
    EXPECT_LT(res.max_rel_error, 1e-7) << c.name << ": " << res.worst;
  }
}

TEST(OpsRope, BackwardIsTheInverseRotation) {
  // For an orthogonal map, grad = R^T g = R^-1 g: rotating the gradient back recovers it.
  const std::vector<int64_t> pv = {100, 3, 2047};
  Tensor x = random_tensor({3, 2, 8}, DType::f32, 31);
  autograd::set_requires_grad(x, true);
  Tensor y = ops::rope(x, positions(pv), 10000.0);
  Tensor g = random_tensor({3, 2, 8}, DType::f32, 32);
  autograd::backward(y, g);
  Tensor gx = autograd::grad(x);
  Tensor back = ops::rope(gx, positions(pv), 10000.0);
  EXPECT_LT(test::rel_error(back, g), 1e-6);
}

TEST(OpsRope, BadArguments) {
  Tensor x = random_tensor({3, 2, 8}, DType::f32, 1);
  Tensor p = positions({0, 1, 2});
  EXPECT_NE(error_of([&] { ops::rope(x.view({6, 8}), p, 1e4); }).find("[rope] x [N, heads, head_dim] must have 3"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ops::rope(x, positions({0, 1}), 1e4); }).find("[rope] positions must be [3]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ops::rope(x, Tensor::from_vector<float>({0, 1, 2}, {3}), 1e4); }).find("i32 or i64"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ops::rope(x, p, 1e4, 5); }).find("rotary_dim must be even"), std::string::npos);
  EXPECT_NE(error_of([&] { ops::rope(x, p, 1e4, 10); }).find("head_dim = 8"), std::string::npos);
  EXPECT_NE(error_of([&] { ops::rope(x, p, 0.0); }).find("theta must be positive"), std::string::npos);
  EXPECT_NE(error_of([&] { ops::rope(random_tensor({3, 2, 7}, DType::f32, 2), p, 1e4); }).find("rotary_dim"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ops::rope_qkv(random_tensor({3, 2, 2, 8}, DType::f32, 2), p, 1e4); })
                .find("qkv must be [N, 3, heads, head_dim]"),
            std::string::npos);
  EXPECT_NE(error_of([&] { ops::rope(Tensor::from_vector<int64_t>({1, 2, 3}, {3, 1, 1}), p, 1e4); }).find("floating"),
            std::string::npos);
}
