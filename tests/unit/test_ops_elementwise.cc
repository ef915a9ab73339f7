// Gradient checks (fp64 finite differences) and forward values for element-wise ops.
#include <gtest/gtest.h>

#include "lmforge/autograd/tape.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/slice.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;
using test::gradcheck;
using test::random_tensor;

namespace {
Tensor r64(const Shape& s, uint64_t seed) { return random_tensor(s, DType::f64, seed); }
}  // namespace

TEST(OpsElementwise, Forward) {
  Tensor a = Tensor::from_vector<float>({1, 2, 3}, {3}), b = Tensor::from_vector<float>({4, 5, 6}, {3});
  EXPECT_EQ(ops::add(a, b).to_float_vector(), (std::vector<float>{5, 7, 9}));
  EXPECT_EQ(ops::sub(a, b).to_float_vector(), (std::vector<float>{-3, -3, -3}));
  EXPECT_EQ(ops::mul(a, b).to_float_vector(), (std::vector<float>{4, 10, 18}));
  EXPECT_EQ(ops::scale(a, 2).to_float_vector(), (std::vector<float>{2, 4, 6}));
  EXPECT_DOUBLE_EQ(ops::sum(a).item(), 6.0);
  EXPECT_DOUBLE_EQ(ops::mean(b).item(), 5.0);
  EXPECT_THROW(ops::add(a, Tensor::from_vector<float>({1, 2}, {2})), Error);
  EXPECT_THROW(ops::add(a, Tensor::from_vector<double>({1, 2, 3}, {3})), Error);
}

struct GradCase {
  const char* name;
  test::OpFn fn;
  std::vector<Shape> shapes;
};

TEST(OpsElementwise, GradCheck) {
  std::vector<GradCase> cases = {
      {"add", [](auto& x) { return ops::add(x[0], x[1]); }, {{3, 4}, {3, 4}}},
      {"axpby", [](auto& x) { return ops::axpby(x[0], x[1], 0.5f, -2.f); }, {{5}, {5}}},
      {"mul", [](auto& x) { return ops::mul(x[0], x[1]); }, {{2, 3}, {2, 3}}},
      {"scale", [](auto& x) { return ops::scale(x[0], 3.f); }, {{7}}},
      {"add_row_vector", [](auto& x) { return ops::add_row_vector(x[0], x[1]); }, {{3, 4}, {4}}},
      {"sum", [](auto& x) { return ops::sum(x[0]); }, {{2, 5}}},
      {"mean", [](auto& x) { return ops::mean(x[0]); }, {{2, 5}}},
      {"mul_self", [](auto& x) { return ops::mul(x[0], x[0]); }, {{4}}},
  };
  for (auto& c : cases) {
    std::vector<Tensor> ins;
    for (size_t i = 0; i < c.shapes.size(); i++) ins.push_back(r64(c.shapes[i], 10 + i));
    auto res = gradcheck(c.fn, ins);
    EXPECT_LT(res.max_rel_error, 1e-6) << c.name << ": " << res.worst;
  }
}

TEST(Autograd, AccumulatesAcrossMicrobatchesAndRecompute) {
  Tensor w = random_tensor({4}, DType::f32, 3);
  Tensor slot = Tensor::zeros({4}, DType::f32);
  autograd::make_param(w, slot, "w");
  Tensor x = random_tensor({4}, DType::f32, 4);
  for (int micro = 0; micro < 2; micro++) autograd::backward(ops::sum(ops::mul(w, x)));
  auto g = slot.to_float_vector(), xv = x.to_float_vector();
  for (int i = 0; i < 4; i++) EXPECT_FLOAT_EQ(g[i], 2 * xv[i]);
  // Recomputed block gives the same gradient as the plain one.
  slot.zero_();
  Tensor xr = x.clone();
  autograd::set_requires_grad(xr, true);
  Tensor y = autograd::recompute([&](const Tensor& in) { return ops::mul(ops::mul(in, w), in); }, xr, "block");
  EXPECT_EQ(autograd::tape_size(), 1u);
  autograd::backward(ops::sum(y));
  auto gw = slot.to_float_vector(), gx = autograd::grad(xr).to_float_vector(), wv = w.to_float_vector();
  for (int i = 0; i < 4; i++) {
    EXPECT_NEAR(gw[i], xv[i] * xv[i], 1e-6);
    EXPECT_NEAR(gx[i], 2 * wv[i] * xv[i], 1e-6);
  }
  EXPECT_EQ(autograd::tape_size(), 0u);
}

TEST(OpsSlice, ForwardAndGrad) {
  Tensor x = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5, 6, 7}, {2, 4});
  EXPECT_EQ(ops::slice_last(x, 1, 3).to_float_vector(), (std::vector<float>{1, 2, 5, 6}));
  auto parts = ops::split_last(x, {1, 3});
  EXPECT_EQ(parts[1].shape(), (Shape{2, 3}));
  EXPECT_EQ(ops::concat_last(parts).to_float_vector(), x.to_float_vector());
  // Empty pieces (first, middle) and more pieces than one copy launch takes (8).
  auto many = ops::split_last(x, {0, 1, 0, 1, 1, 0, 0, 0, 0, 1});
  EXPECT_EQ(many[0].shape(), (Shape{2, 0}));
  EXPECT_EQ(ops::concat_last(many).to_float_vector(), x.to_float_vector());
  EXPECT_THROW(ops::slice_last(x, 2, 5), Error);
  EXPECT_THROW(ops::split_last(x, {1, 2}), Error);
  auto r = gradcheck([](auto& v) { return ops::mul(ops::slice_last(v[0], 1, 4), ops::slice_last(v[0], 0, 3)); },
                     {r64({3, 5}, 1)});
  EXPECT_LT(r.max_rel_error, 1e-6) << r.worst;
  auto rc = gradcheck([](auto& v) { return ops::concat_last({v[0], v[1], v[0]}); }, {r64({2, 2}, 1), r64({2, 3}, 2)});
  EXPECT_LT(rc.max_rel_error, 1e-6) << rc.worst;
}
