// Gradients a node adds straight into what its input has collected so far
// (GradContext::activation_grad_to_add_into): a linear's dx written with beta = 1, a cast's
// gradient added into the wider gradient of its source. The results must equal the plain
// "return a fresh gradient, the tape adds it" path, including when the gradient collected so
// far shares storage with the node's own output gradient (add(x, f(x)) hands one tensor to both).
#include <gtest/gtest.h>

#include "lmforge/autograd/tape.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/linear.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;
using test::gradcheck;
using test::random_tensor;

TEST(GradAddInPlace, TwoLinearsOnOneInput) {
  // x feeds two linears (Mamba's in_proj halves): the second dx is added into the first.
  auto fn = [](const std::vector<Tensor>& x) {
    return ops::add(ops::linear(x[0], x[1]), ops::linear(x[0], x[2]));
  };
  auto res = gradcheck(fn, {random_tensor({2, 3, 4}, DType::f64, 1), random_tensor({5, 4}, DType::f64, 2),
                            random_tensor({5, 4}, DType::f64, 3)});
  EXPECT_LT(res.max_rel_error, 1e-6) << res.worst;
}

TEST(GradAddInPlace, LinearWhoseInputGradientAliasesItsOutputGradient) {
  // add(x, linear(x)) with one dtype returns the same gradient tensor for both of its inputs:
  // x's gradient so far IS the linear's output gradient, which it must not overwrite while
  // reading it.
  auto fn = [](const std::vector<Tensor>& x) { return ops::add(x[0], ops::linear(x[0], x[1])); };
  auto res = gradcheck(fn, {random_tensor({3, 4}, DType::f64, 4), random_tensor({4, 4}, DType::f64, 5)});
  EXPECT_LT(res.max_rel_error, 1e-6) << res.worst;
}

TEST(GradAddInPlace, NarrowCastAddsIntoTheWideGradient) {
  // An fp64 "residual" read through an fp32 cast (Mamba's fp32 residual read through bf16):
  // out = x + x*x computed in f32; d out / dx = 1 + 2x.
  Tensor x = random_tensor({4, 6}, DType::f64, 6);
  autograd::set_requires_grad(x, true);
  Tensor xf = ops::cast(x, DType::f32);
  Tensor out = ops::add(x, ops::cast(ops::mul(xf, xf), DType::f64));
  autograd::backward(ops::sum(out));
  Tensor g = autograd::grad(x);
  ASSERT_TRUE(g.defined());
  EXPECT_EQ(g.dtype(), DType::f64);
  auto xv = x.to_double_vector(), gv = g.to_double_vector();
  for (size_t i = 0; i < xv.size(); i++) EXPECT_NEAR(gv[i], 1 + 2 * xv[i], 1e-6 * (1 + std::fabs(gv[i])));
}

TEST(GradAddInPlace, LeafGradientsAddUpOverMicroBatches) {
  // A leaf keeps its gradient between backward calls: the second dx lands in it with beta = 1.
  Tensor x = random_tensor({5, 3}, DType::f32, 7);
  Tensor w = random_tensor({2, 3}, DType::f32, 8);
  autograd::set_requires_grad(x, true);
  for (int micro = 0; micro < 3; micro++) autograd::backward(ops::sum(ops::linear(x, w)));
  auto gx = autograd::grad(x).to_float_vector(), wv = w.to_float_vector();
  for (int n = 0; n < 5; n++)
    for (int i = 0; i < 3; i++) EXPECT_NEAR(gx[size_t(n * 3 + i)], 3 * (wv[size_t(i)] + wv[size_t(3 + i)]), 1e-5);
}
