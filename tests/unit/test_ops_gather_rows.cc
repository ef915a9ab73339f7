// ops::gather_rows: values, fp64 gradcheck with repeated indices, dtypes, errors.
#include <gtest/gtest.h>

#include "lmforge/autograd/tape.h"
#include "lmforge/core/error.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/gather_rows.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;
using test::random_tensor;

TEST(OpsGatherRows, ValuesAndGradients) {
  Tensor x = random_tensor({6, 5}, DType::f64, 1);
  Tensor idx = Tensor::from_vector<int64_t>({4, 0, 4, 2}, {4});
  Tensor out = ops::gather_rows(x, idx);
  ASSERT_EQ(out.shape(), (Shape{4, 5}));
  auto xv = x.to_double_vector(), ov = out.to_double_vector();
  const int64_t rows[4] = {4, 0, 4, 2};
  for (int m = 0; m < 4; m++)
    for (int k = 0; k < 5; k++) EXPECT_EQ(ov[size_t(m * 5 + k)], xv[size_t(rows[m] * 5 + k)]);
  auto fn = [](const std::vector<Tensor>& in) { return ops::gather_rows(in[0], in[1]); };
  auto res = test::gradcheck(fn, {x, idx}, 1e-6, {true, false});
  EXPECT_LT(res.max_rel_error, 1e-8) << res.worst;

  // dx: row 4 gets two output rows, rows 1, 3, 5 nothing; dtype follows x (f32 here).
  Tensor xf = random_tensor({6, 3}, DType::f32, 2);
  autograd::set_requires_grad(xf);
  Tensor y = ops::gather_rows(xf, Tensor::from_vector<int32_t>({4, 0, 4}, {3}));
  autograd::backward(ops::sum(y));
  Tensor g = autograd::grad(xf);
  EXPECT_EQ(g.dtype(), DType::f32);
  const std::vector<double> expect = {1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 0, 0, 0};
  EXPECT_EQ(g.to_double_vector(), expect);
}

TEST(OpsGatherRows, EmptyIndexAndErrors) {
  Tensor x = random_tensor({3, 2}, DType::f32, 3);
  EXPECT_EQ(ops::gather_rows(x, Tensor::from_vector<int64_t>({}, {0})).shape(), (Shape{0, 2}));
  auto expect_error = [](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "expected an error containing " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(
      [&] {
        ops::gather_rows(x, Tensor::from_vector<int64_t>({0, 3}, {2}));
      },
      "[gather_rows] idx[1] = 3 is out of range for x with 3 rows");
  expect_error([&] { ops::gather_rows(x, Tensor::from_vector<int64_t>({-1}, {1})); }, "idx[0] = -1");
  expect_error(
      [&] { ops::gather_rows(random_tensor({3}, DType::f32, 1), Tensor::from_vector<int64_t>({0}, {1})); },
      "[gather_rows] x");
  expect_error([&] { ops::gather_rows(x, random_tensor({2}, DType::f32, 1)); }, "[gather_rows] idx");
}
