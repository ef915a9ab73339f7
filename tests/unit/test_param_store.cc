// ParamStore row views (param_rows): a parameter's rows used as a parameter of their own. A
// matmul on each half of a weight must give the same output and the same weight gradient as a
// matmul on the whole weight followed by a split of the output.
#include <gtest/gtest.h>

#include "lmforge/autograd/tape.h"
#include "lmforge/core/rng.h"
#include "lmforge/nn/param_store.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/linear.h"
#include "lmforge/ops/slice.h"
#include "test_util.h"

using namespace lmf;

namespace {

// A store with one [6, 4] weight and a [6] bias, filled with random values.
void fill(ParamStore& store) {
  store.add({"w", {6, 4}});
  store.add({"b", {6}});
  store.finalize();
  store.master("w").copy_from(test::random_tensor({6, 4}, DType::f32, 1));
  store.master("b").copy_from(test::random_tensor({6}, DType::f32, 2));
  store.sync_compute();
}

}  // namespace

TEST(ParamStore, RowViewsMatchTheWholeParameter) {
  Tensor x = test::random_tensor({5, 4}, DType::f32, 3), r = test::random_tensor({5, 6}, DType::f32, 4);
  ParamStore whole(Device::cpu(), DType::f32), halves(Device::cpu(), DType::f32);
  fill(whole);
  fill(halves);
  Tensor y = ops::linear(x, whole.param("w"), whole.param("b"));
  autograd::backward(ops::sum(ops::mul(y, r)));
  std::vector<Tensor> parts;
  for (int h = 0; h < 2; h++)
    parts.push_back(ops::linear(x, halves.param_rows("w", 3 * h, 3 * h + 3), halves.param_rows("b", 3 * h, 3 * h + 3)));
  autograd::backward(ops::sum(ops::add(ops::mul(parts[0], r.slice(1, 0, 3).contiguous()),
                                       ops::mul(parts[1], r.slice(1, 3, 6).contiguous()))));
  EXPECT_LT(test::rel_error(parts[0], y.slice(1, 0, 3).contiguous()), 1e-6);
  EXPECT_LT(test::rel_error(parts[1], y.slice(1, 3, 6).contiguous()), 1e-6);
  EXPECT_LT(test::rel_error(halves.grad("w"), whole.grad("w")), 1e-6);
  EXPECT_LT(test::rel_error(halves.grad("b"), whole.grad("b")), 1e-6);
  EXPECT_GT(test::rel_error(halves.grad("w"), Tensor::zeros({6, 4}, DType::f32)), 0.5);  // non-trivial
  // The same view object on every call (its autograd identity is stable).
  EXPECT_EQ(halves.param_rows("w", 0, 3).data_ptr(), halves.param_rows("w", 0, 3).data_ptr());
  EXPECT_THROW(halves.param_rows("w", 4, 7), Error);
  EXPECT_THROW(halves.param_rows("w", 2, 2), Error);
  EXPECT_THROW(halves.param_rows("nope", 0, 1), Error);
}
