// rms_norm(x, w, eps, bf16) on an fp32 x with a bf16 weight (Mamba's block norm on its fp32
// residual) is one fused kernel whose forward values and gradients must equal, bit for bit, the
// composition rms_norm(cast(x, bf16), w) it replaces — with and without another use of x whose
// gradient the fused backward adds into — plus its fallbacks and argument errors.
#include <gtest/gtest.h>

#include "lmforge/autograd/tape.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/norm.h"
#include "test_util.h"

using namespace lmf;
using test::random_tensor;

namespace {

struct Result {
  std::vector<float> y, gx, gw;
};

// out = rms_norm(x) (or x + f32(rms_norm(x)) with `residual`), loss = sum(out * r), fp32 x,
// bf16 weight as a parameter with an f32 slot.
Result run(bool fused, bool residual, const Shape& shape, uint64_t seed) {
  const int64_t C = shape.back();
  Tensor x = random_tensor(shape, DType::f32, seed, -2.f, 3.f);
  Tensor w = ops::cast(random_tensor({C}, DType::f32, seed + 1, 0.5f, 1.5f), DType::bf16);
  Tensor slot = Tensor::zeros({C}, DType::f32);
  autograd::make_param(w, slot, "norm.weight");
  autograd::set_requires_grad(x, true);
  Tensor y = fused ? ops::rms_norm(x, w, 1e-5f, DType::bf16) : ops::rms_norm(ops::cast(x, DType::bf16), w, 1e-5f);
  Tensor out = residual ? ops::add(x, y) : ops::cast(y, DType::f32);
  Tensor r = random_tensor(out.shape(), DType::f32, seed + 2);
  autograd::backward(ops::sum(ops::mul(out, r)));
  return {y.to_float_vector(), autograd::grad(x).to_float_vector(), slot.to_float_vector()};
}

}  // namespace

TEST(OpsNormRounded, FusedEqualsCastThenNormBitForBit) {
  for (const Shape& s : std::vector<Shape>{{3, 5}, {4, 130}, {2, 3, 257}}) {
    for (bool residual : {false, true}) {
      SCOPED_TRACE(shape_str(s) + (residual ? " with residual" : ""));
      const Result a = run(true, residual, s, 21), b = run(false, residual, s, 21);
      EXPECT_EQ(a.y, b.y);
      EXPECT_EQ(a.gx, b.gx);
      EXPECT_EQ(a.gw, b.gw);
      EXPECT_GT(std::abs(a.gx[1]), 0.f);  // gradients actually flowed
    }
  }
}

TEST(OpsNormRounded, OtherDtypesFallBackToCastAndNorm) {
  Tensor x = random_tensor({4, 6}, DType::f32, 31), w = random_tensor({6}, DType::f32, 32, 0.5f, 1.5f);
  // f32 weight: the plain norm of x (the cast to f32 is a no-op).
  EXPECT_EQ(ops::rms_norm(x, w, 1e-5f, DType::f32).to_float_vector(), ops::rms_norm(x, w, 1e-5f).to_float_vector());
  // bf16 x, f32 weight, requested bf16: cast is a no-op too.
  Tensor xb = ops::cast(x, DType::bf16);
  EXPECT_EQ(ops::rms_norm(xb, w, 1e-5f, DType::bf16).to_float_vector(),
            ops::rms_norm(xb, w, 1e-5f).to_float_vector());
}

TEST(OpsNormRounded, BadArgumentsThrow) {
  Tensor x = random_tensor({4, 6}, DType::f32, 41);
  Tensor w = ops::cast(random_tensor({5}, DType::f32, 42), DType::bf16);
  EXPECT_THROW(ops::rms_norm(x, w, 1e-5f, DType::bf16), Error);  // weight length != C
  Tensor w6 = ops::cast(random_tensor({6}, DType::f32, 43), DType::bf16);
  EXPECT_THROW(ops::rms_norm(x, w6, -1.f, DType::bf16), Error);  // eps < 0
  EXPECT_THROW(ops::rms_norm(Tensor(), w6, 1e-5f, DType::bf16), Error);
}
