// ops::mul_rows (the attention_mask product of HF's Mamba slow path): hand-computed values,
// strided input, bf16, fp64 gradient check, the mask receiving no gradient, bad arguments.
#include <gtest/gtest.h>

#include "lmforge/autograd/tape.h"
#include "lmforge/ops/mask.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;
using test::random_tensor;

TEST(OpsMask, MulRowsHandValues) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {2, 2, 3});
  Tensor m = Tensor::from_vector<float>({1, 0, 0.5f, -2}, {2, 2});
  EXPECT_EQ(ops::mul_rows(x, m).to_float_vector(), (std::vector<float>{1, 2, 3, 0, 0, 0, 3.5f, 4, 4.5f, -20, -22, -24}));
  // A transposed (non-contiguous) view is read by its logical layout.
  Tensor xt = Tensor::from_vector<float>({1, 4, 2, 5, 3, 6}, {1, 3, 2}).transpose(1, 2);  // [[1,2,3],[4,5,6]]
  EXPECT_EQ(ops::mul_rows(xt, Tensor::from_vector<float>({0, 2}, {1, 2})).to_float_vector(),
            (std::vector<float>{0, 0, 0, 8, 10, 12}));
  // bf16 keeps its dtype; 0/1 masks are exact.
  Tensor xb = random_tensor({3, 4, 5}, DType::bf16, 4);
  Tensor mb = Tensor::from_vector<float>({1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0}, {3, 4});
  Tensor yb = ops::mul_rows(xb, mb);
  EXPECT_EQ(yb.dtype(), DType::bf16);
  auto xv = xb.to_float_vector(), yv = yb.to_float_vector(), mv = mb.to_float_vector();
  for (size_t i = 0; i < xv.size(); i++) EXPECT_EQ(yv[i], xv[i] * mv[i / 5]) << i;
}

TEST(OpsMask, MulRowsGradients) {
  Tensor mask = Tensor::from_vector<float>({1, 0, 1, 0.25f, 0, 1}, {2, 3});
  auto fn = [&](const std::vector<Tensor>& in) { return ops::mul_rows(in[0], mask); };
  auto r = test::gradcheck(fn, {random_tensor({2, 3, 4}, DType::f64, 7)});
  EXPECT_LT(r.max_rel_error, 1e-8) << r.worst;
  // dx = dy * mask; the mask (a constant) gets nothing even when it requires grad.
  Tensor x = random_tensor({2, 3, 4}, DType::f32, 8);
  Tensor m = mask.clone();
  autograd::set_requires_grad(x, true);
  autograd::set_requires_grad(m, true);
  Tensor dy = random_tensor({2, 3, 4}, DType::f32, 9);
  autograd::backward(ops::mul_rows(x, m), dy);
  auto gx = autograd::grad(x).to_float_vector(), g = dy.to_float_vector(), mv = mask.to_float_vector();
  for (size_t i = 0; i < gx.size(); i++) EXPECT_EQ(gx[i], g[i] * mv[i / 4]) << i;
  EXPECT_FALSE(autograd::grad(m).defined());
}

TEST(OpsMask, MulRowsBadArguments) {
  Tensor x = random_tensor({2, 3, 4}, DType::f32, 1);
  auto expect_error = [](auto&& f, const std::string& needle) {
    try {
      f();
      FAIL() << "expected lmf::Error containing " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).rfind("[mul_rows]", 0), 0u) << e.what();
    }
  };
  expect_error([&] { ops::mul_rows(x, Tensor::full({2, 3}, 1, DType::i64)); }, "mask must be f32, got i64");
  expect_error([&] { ops::mul_rows(x, Tensor::full({2, 4}, 1, DType::f32)); }, "mask must be [2, 3]");
  expect_error([&] { ops::mul_rows(x, Tensor::full({6}, 1, DType::f32)); }, "mask must be [2, 3]");
  expect_error([&] { ops::mul_rows(Tensor::full({2, 3}, 1, DType::i32), Tensor::full({2}, 1, DType::f32)); },
               "must be floating");
  expect_error([&] { ops::mul_rows(x, Tensor()); }, "mask is undefined");
}
