// ops::mul_rows on CUDA against the CPU reference: outputs and input gradients, f32 and bf16,
// row widths that are not multiples of a pack, and a large case.
#include <gtest/gtest.h>

#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/mask.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;

TEST(OpsMaskCuda, MulRowsMatchesCpu) {
  const std::vector<Shape> shapes = {{1, 1, 1}, {2, 5, 3}, {3, 17, 33}, {4, 64, 1536}, {2, 513, 7}};
  for (const Shape& s : shapes) {
    // 0/1 plus a few exact non-binary values (representable in bf16).
    auto mv = test::random_tensor({s[0], s[1]}, DType::f32, 5, 0.f, 2.f).to_float_vector();
    for (size_t i = 0; i < mv.size(); i++) mv[i] = i % 7 == 3 ? 0.5f : float(int(mv[i]));
    Tensor mask = Tensor::from_vector<float>(mv, {s[0], s[1]});
    // The mask travels as an input (converted to the device dtype), cast back to f32 as the op needs.
    auto fn = [](const std::vector<Tensor>& in) { return ops::mul_rows(in[0], ops::cast(in[1], DType::f32)); };
    for (DType dt : {DType::f32, DType::bf16}) {
      auto r = test::compare_cpu_cuda(fn, {test::random_tensor(s, DType::f32, 6), mask}, dt);
      const double tol = dt == DType::f32 ? 1e-6 : 1e-2;
      EXPECT_LT(r.out_rel, tol) << shape_str(s) << " " << dtype_name(dt);
      EXPECT_LT(r.grad_rel[0], tol) << shape_str(s) << " " << dtype_name(dt) << " dx";
    }
  }
}
