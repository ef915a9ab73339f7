// ops::add_rms_norm (Mamba's block boundary: the residual add of one block fused with the next
// block's norm) must equal, bit for bit, the composition it replaces — add(x, h) then
// rms_norm(s, w, eps, bf16) — in both outputs and every gradient, whichever outputs the loss uses
// and whether x has another use whose gradient the fused backward adds into; plus the fallback
// for other dtypes and argument errors. (tests/models/test_mamba_hf.cc checks a bf16 Mamba's
// fused layer loop against the unfused, recomputed one.)
#include <gtest/gtest.h>

#include <tuple>

#include "lmforge/autograd/tape.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/norm.h"
#include "test_util.h"

using namespace lmf;
using test::random_tensor;

namespace {

struct Result {
  std::vector<float> s, y, gx, gh, gw;
};

// Which outputs feed the loss, and whether x is used again (its gradient then accumulates).
struct Uses {
  bool s = true, y = true, x_again = false;
};

Result run(bool fused, Uses u, const Shape& shape, uint64_t seed) {
  const int64_t C = shape.back();
  Tensor x = random_tensor(shape, DType::f32, seed, -2.f, 3.f);
  Tensor h = ops::cast(random_tensor(shape, DType::f32, seed + 1, -1.f, 1.f), DType::bf16);
  Tensor w = ops::cast(random_tensor({C}, DType::f32, seed + 2, 0.5f, 1.5f), DType::bf16);
  Tensor slot = Tensor::zeros({C}, DType::f32);
  autograd::make_param(w, slot, "norm.weight");
  autograd::set_requires_grad(x, true);
  autograd::set_requires_grad(h, true);
  Tensor s, y;
  if (fused) {
    std::tie(s, y) = ops::add_rms_norm(x, h, w, 1e-5f, DType::bf16);
  } else {
    s = ops::add(x, h);
    y = ops::rms_norm(s, w, 1e-5f, DType::bf16);
  }
  Tensor loss = ops::sum(ops::mul(u.y ? ops::cast(y, DType::f32) : s, random_tensor(shape, DType::f32, seed + 3)));
  if (u.s && u.y) loss = ops::add(loss, ops::sum(ops::mul(s, random_tensor(shape, DType::f32, seed + 4))));
  if (u.x_again) loss = ops::add(loss, ops::sum(ops::mul(x, random_tensor(shape, DType::f32, seed + 5))));
  autograd::backward(loss);
  return {s.to_float_vector(), y.to_float_vector(), autograd::grad(x).to_float_vector(),
          autograd::grad(h).to_float_vector(), slot.to_float_vector()};
}

}  // namespace

TEST(OpsAddRmsNorm, FusedEqualsAddThenNormBitForBit) {
  const std::vector<Uses> uses = {{true, true, false}, {true, true, true}, {false, true, false}, {true, false, false}};
  for (const Shape& sh : std::vector<Shape>{{3, 5}, {4, 130}, {2, 3, 257}, {9, 64}}) {
    for (const Uses& u : uses) {
      SCOPED_TRACE(shape_str(sh) + " s " + std::to_string(u.s) + " y " + std::to_string(u.y) + " x again " +
                   std::to_string(u.x_again));
      const Result a = run(true, u, sh, 51), b = run(false, u, sh, 51);
      EXPECT_EQ(a.s, b.s);
      EXPECT_EQ(a.y, b.y);
      EXPECT_EQ(a.gx, b.gx);
      EXPECT_EQ(a.gh, b.gh);
      EXPECT_EQ(a.gw, b.gw);
      EXPECT_GT(std::abs(a.gh[1]), 0.f);  // gradients actually flowed
      if (u.y) {
        EXPECT_GT(std::abs(a.gw[0]), 0.f);
      } else {
        EXPECT_EQ(a.gw[0], 0.f);  // the norm's output unused: no weight gradient
      }
    }
  }
}

TEST(OpsAddRmsNorm, OtherDtypesFallBackToAddAndNorm) {
  Tensor x = random_tensor({4, 6}, DType::f32, 61), h = random_tensor({4, 6}, DType::f32, 62);
  Tensor w = random_tensor({6}, DType::f32, 63, 0.5f, 1.5f);
  auto [s, y] = ops::add_rms_norm(x, h, w, 1e-5f, DType::f32);
  Tensor s2 = ops::add(x, h);
  EXPECT_EQ(s.to_float_vector(), s2.to_float_vector());
  EXPECT_EQ(y.to_float_vector(), ops::rms_norm(s2, w, 1e-5f).to_float_vector());
}

TEST(OpsAddRmsNorm, BadArgumentsThrow) {
  Tensor x = random_tensor({4, 6}, DType::f32, 71);
  Tensor h = ops::cast(random_tensor({4, 6}, DType::f32, 72), DType::bf16);
  Tensor w = ops::cast(random_tensor({6}, DType::f32, 73), DType::bf16);
  Tensor h_row = ops::cast(random_tensor({1, 6}, DType::f32, 74), DType::bf16);
  Tensor w5 = ops::cast(random_tensor({5}, DType::f32, 75), DType::bf16);
  EXPECT_THROW(ops::add_rms_norm(x, h_row, w, 1e-5f, DType::bf16), Error);  // no broadcast on the fused path
  EXPECT_THROW(ops::add_rms_norm(x, h, w5, 1e-5f, DType::bf16), Error);     // weight length != C
  EXPECT_THROW(ops::add_rms_norm(x, h, w, -1.f, DType::bf16), Error);       // eps < 0
  EXPECT_THROW(ops::add_rms_norm(x, Tensor(), w, 1e-5f, DType::bf16), Error);
  try {
    ops::add_rms_norm(x, h_row, w, 1e-5f, DType::bf16);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("add_rms_norm"), std::string::npos) << e.what();
  }
}
