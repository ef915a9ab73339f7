// Activations, softmax, dropout and norms on the CPU: forward values against hand-computed
// numbers (Python math, written out) and naive formulas, dropout statistics, fp64 gradchecks
// for every differentiable input, parameter-slot accumulation and bad arguments.
#include <gtest/gtest.h>

#include <cmath>

#include "lmforge/autograd/tape.h"
#include "lmforge/core/philox.h"
#include "lmforge/ops/activation.h"
#include "lmforge/ops/dropout.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/norm.h"
#include "lmforge/ops/softmax.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;
using test::gradcheck;
using test::random_tensor;

namespace {

Tensor r64(const Shape& s, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  return random_tensor(s, DType::f64, seed, lo, hi);
}
Tensor vec64(const std::vector<double>& v) { return Tensor::from_vector<double>(v, {int64_t(v.size())}); }

// Expects fn() to throw lmf::Error whose message contains `needle`.
template <class F>
void expect_error(F&& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected an lmf::Error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

// ---- forward values -------------------------------------------------------------------------

TEST(OpsPointwise, ActivationValues) {
  struct Row {
    Activation act;
    std::vector<double> x, y;
  };
  // Expected values from Python's math module (erf, tanh, exp, log1p) in double precision.
  std::vector<Row> rows = {
      {Activation::gelu_erf, {-1, 0, 0.5, 1, 2}, {-0.15865525393145707, 0, 0.34573123063700656, 0.8413447460685429, 1.9544997361036416}},
      {Activation::gelu_tanh, {-1, 0, 0.5, 1, 2}, {-0.15880800939172324, 0, 0.34571400982514394, 0.8411919906082768, 1.954597694087775}},
      {Activation::silu, {-2, 0, 1}, {-0.2384058440442351, 0, 0.7310585786300049}},
      {Activation::relu, {-2, -0.5, 0, 0.25, 3}, {0, 0, 0, 0.25, 3}},
      {Activation::tanh_act, {0.5, -0.5, 0}, {0.46211715726000974, -0.46211715726000974, 0}},
      // F.softplus threshold 20: log1p(exp(x)) up to and including 20, x itself above it.
      {Activation::softplus, {-30, 0, 1, 20, 20.001, 50}, {9.357622968839737e-14, 0.6931471805599453, 1.3132616875182228, 20.000000002061153, 20.001, 50}},
  };
  for (const auto& r : rows) {
    auto y = ops::activation(vec64(r.x), r.act).to_double_vector();
    for (size_t i = 0; i < r.x.size(); i++)
      EXPECT_NEAR(y[i], r.y[i], 1e-15 + 1e-14 * std::fabs(r.y[i])) << activation_name(r.act) << " at " << r.x[i];
    // f32 agrees to f32 precision.
    Tensor x32 = Tensor::from_floats(std::vector<float>(r.x.begin(), r.x.end()), {int64_t(r.x.size())}, DType::f32);
    auto y32 = ops::activation(x32, r.act).to_double_vector();
    for (size_t i = 0; i < r.x.size(); i++) EXPECT_NEAR(y32[i], r.y[i], 1e-6 * (1 + std::fabs(r.y[i])));
  }
  // The threshold is exact: softplus(x) == x bit for bit just above 20, and not at 20.
  EXPECT_EQ(ops::softplus(vec64({20.5})).item(), 20.5);
  EXPECT_NE(ops::softplus(vec64({20.0})).item(), 20.0);
  // Convenience wrappers pick the right activation.
  EXPECT_DOUBLE_EQ(ops::gelu(vec64({1.0})).item(), 0.8413447460685429);
  EXPECT_DOUBLE_EQ(ops::gelu(vec64({1.0}), true).item(), 0.8411919906082768);
  EXPECT_DOUBLE_EQ(ops::silu(vec64({1.0})).item(), 0.7310585786300049);
}

TEST(OpsPointwise, SoftplusGradientThreshold) {
  // Derivative: sigmoid(x) up to 20, exactly 1 above (PyTorch softplus_backward).
  Tensor x = vec64({0.0, 20.0, 25.0});
  autograd::set_requires_grad(x, true);
  autograd::backward(ops::sum(ops::softplus(x)));
  auto g = autograd::grad(x).to_double_vector();
  EXPECT_DOUBLE_EQ(g[0], 0.5);
  EXPECT_NEAR(g[1], 0.9999999979388463, 1e-15);
  EXPECT_EQ(g[2], 1.0);
}

TEST(OpsPointwise, SoftmaxValues) {
  const std::vector<double> e = {0.09003057317038046, 0.24472847105479767, 0.6652409557748219};
  auto y = ops::softmax(Tensor::from_vector<double>({1, 2, 3, 1001, 1002, 1003}, {2, 3})).to_double_vector();
  for (int r = 0; r < 2; r++)  // the second row would overflow exp without max subtraction
    for (int c = 0; c < 3; c++) EXPECT_NEAR(y[r * 3 + c], e[c], 1e-15);
  auto z = ops::softmax(Tensor::from_vector<float>({0.f, -INFINITY, -1e30f}, {3})).to_float_vector();
  EXPECT_FLOAT_EQ(z[0], 1.f);
  EXPECT_EQ(z[1], 0.f);
  EXPECT_EQ(z[2], 0.f);
  // Rows sum to 1 on random input with a ragged shape.
  auto w = ops::softmax(random_tensor({5, 37}, DType::f32, 1, -8.f, 8.f)).to_double_vector();
  for (int r = 0; r < 5; r++) {
    double s = 0;
    for (int c = 0; c < 37; c++) s += w[r * 37 + c];
    EXPECT_NEAR(s, 1.0, 1e-6);
  }
}

TEST(OpsPointwise, LayerNormMatchesNaive) {
  const int64_t N = 3, C = 7;
  Tensor x = r64({N, C}, 1, -2.f, 3.f), w = r64({C}, 2), b = r64({C}, 3);
  const float eps = 1e-5f;
  auto xv = x.to_double_vector(), wv = w.to_double_vector(), bv = b.to_double_vector();
  auto y = ops::layer_norm(x, w, b, eps).to_double_vector();
  auto y_nob = ops::layer_norm(x, w, Tensor(), eps).to_double_vector();
  for (int64_t r = 0; r < N; r++) {
    double mu = 0, var = 0;
    for (int64_t c = 0; c < C; c++) mu += xv[r * C + c] / C;
    for (int64_t c = 0; c < C; c++) var += (xv[r * C + c] - mu) * (xv[r * C + c] - mu) / C;  // biased
    for (int64_t c = 0; c < C; c++) {
      double n = (xv[r * C + c] - mu) / std::sqrt(var + double(eps));
      EXPECT_NEAR(y[r * C + c], n * wv[c] + bv[c], 1e-12);
      EXPECT_NEAR(y_nob[r * C + c], n * wv[c], 1e-12);
    }
  }
  // A 3-D input normalises each row of the last dim the same way as its flattened view.
  Tensor x3 = r64({2, 3, C}, 4);
  auto a = ops::layer_norm(x3, w, b, eps).to_double_vector();
  auto f = ops::layer_norm(x3.view({6, C}), w, b, eps).to_double_vector();
  EXPECT_EQ(a, f);
}

TEST(OpsPointwise, RmsNormMatchesNaive) {
  const int64_t N = 4, C = 9;
  Tensor x = r64({N, C}, 5, -2.f, 2.f), w = r64({C}, 6);
  const float eps = 1e-6f;
  auto xv = x.to_double_vector(), wv = w.to_double_vector();
  auto y = ops::rms_norm(x, w, eps).to_double_vector();
  for (int64_t r = 0; r < N; r++) {
    double ms = 0;
    for (int64_t c = 0; c < C; c++) ms += xv[r * C + c] * xv[r * C + c] / C;
    for (int64_t c = 0; c < C; c++)
      EXPECT_NEAR(y[r * C + c], xv[r * C + c] / std::sqrt(ms + eps) * wv[c], 1e-12);
  }
}

TEST(OpsPointwise, RmsNormCastsBackBeforeWeight) {
  // MambaRMSNorm: h = (x.float() * rstd).to(bf16); y = w * h. With an f32 weight the output is
  // f32 but h still carries bf16 rounding; with bf16 everything the product is rounded again.
  const int64_t C = 16;
  Tensor xf = random_tensor({2, C}, DType::f32, 7, -3.f, 3.f);
  Tensor xb = Tensor::from_floats(xf.to_float_vector(), {2, C}, DType::bf16);
  Tensor wf = random_tensor({C}, DType::f32, 8, 0.5f, 1.5f);
  const float eps = 1e-5f;
  Tensor y = ops::rms_norm(xb, wf, eps);
  EXPECT_EQ(y.dtype(), DType::f32);
  Tensor yb = ops::rms_norm(xb, Tensor::from_floats(wf.to_float_vector(), {C}, DType::bf16), eps);
  EXPECT_EQ(yb.dtype(), DType::bf16);
  auto xv = xb.to_float_vector(), wv = wf.to_float_vector(), yv = y.to_float_vector();
  auto wbv = Tensor::from_floats(wv, {C}, DType::bf16).to_float_vector();
  auto ybv = yb.to_float_vector();
  int rounding_mattered = 0;
  for (int r = 0; r < 2; r++) {
    double ms = 0;
    for (int c = 0; c < C; c++) ms += double(xv[r * C + c]) * xv[r * C + c] / C;
    const float rs = float(1.0 / std::sqrt(ms + eps));
    for (int c = 0; c < C; c++) {
      const float h = bf16_to_float(float_to_bf16(xv[r * C + c] * rs));
      EXPECT_FLOAT_EQ(yv[r * C + c], h * wv[c]);
      EXPECT_EQ(ybv[r * C + c], bf16_to_float(float_to_bf16(h * wbv[c])));
      rounding_mattered += std::fabs(h - xv[r * C + c] * rs) > 1e-7f;
    }
  }
  EXPECT_GT(rounding_mattered, 0);
  // f32 input with a bf16 weight promotes to f32 without rounding h.
  Tensor y2 = ops::rms_norm(xf, Tensor::from_floats(wv, {C}, DType::bf16), eps);
  EXPECT_EQ(y2.dtype(), DType::f32);
}

// ---- dropout --------------------------------------------------------------------------------

TEST(OpsPointwise, DropoutStatisticsAndMask) {
  const int64_t n = 100003;  // not a multiple of 4: exercises the last Philox group
  const float p = 0.3f;
  Tensor x = Tensor::full({n}, 1.0, DType::f32);
  Generator gen{1234, 5};
  Tensor y = ops::dropout(x, p, gen, true);
  EXPECT_EQ(gen.offset, 6u);  // one offset drawn
  auto yv = y.to_float_vector();
  const float kept_value = 1.0f / (1.0f - p);
  int64_t zeros = 0;
  for (int64_t i = 0; i < n; i++) {
    const bool keep = philox_uniform(1234, 5, uint64_t(i)) >= p;  // the documented contract
    ASSERT_EQ(yv[i], keep ? kept_value : 0.f) << "element " << i;
    zeros += yv[i] == 0.f;
  }
  // Binomial(n, 0.3): std of the rate is 0.0014; 0.01 is 7 sigma.
  EXPECT_NEAR(double(zeros) / n, p, 0.01);
  // Same (seed, offset) -> same mask; the next offset -> a different one.
  Generator again{1234, 5};
  EXPECT_EQ(ops::dropout(x, p, again, true).to_float_vector(), yv);
  auto other = ops::dropout(x, p, again, true).to_float_vector();
  int64_t differ = 0;
  for (int64_t i = 0; i < n; i++) differ += other[i] != yv[i];
  EXPECT_GT(differ, n / 10);
  // Eval mode and p = 0 return the input itself and draw nothing.
  Generator g2{1, 0};
  EXPECT_EQ(ops::dropout(x, p, g2, false).data_ptr(), x.data_ptr());
  EXPECT_EQ(ops::dropout(x, 0.f, g2, true).data_ptr(), x.data_ptr());
  EXPECT_EQ(g2.offset, 0u);
}

TEST(OpsPointwise, DropoutBackwardUsesTheSameMask) {
  Tensor x = random_tensor({7, 13}, DType::f32, 9, 0.5f, 1.5f);
  autograd::set_requires_grad(x, true);
  Generator gen{99, 0};
  Tensor y = ops::dropout(x, 0.5f, gen, true);
  autograd::backward(ops::sum(y));
  auto g = autograd::grad(x).to_float_vector(), yv = y.to_float_vector();
  for (size_t i = 0; i < g.size(); i++) EXPECT_EQ(g[i], yv[i] == 0.f ? 0.f : 2.f);
}

// ---- gradients ------------------------------------------------------------------------------

struct GradCase {
  const char* name;
  test::OpFn fn;
  std::vector<Tensor> inputs;
};

TEST(OpsPointwise, GradCheck) {
  auto act = [](Activation a) { return [a](const std::vector<Tensor>& x) { return ops::activation(x[0], a); }; };
  std::vector<GradCase> cases = {
      {"gelu_erf", act(Activation::gelu_erf), {r64({3, 5}, 10, -3.f, 3.f)}},
      {"gelu_tanh", act(Activation::gelu_tanh), {r64({3, 5}, 11, -3.f, 3.f)}},
      {"silu", act(Activation::silu), {r64({3, 5}, 12, -4.f, 4.f)}},
      {"relu", act(Activation::relu), {r64({3, 5}, 13, -2.f, 2.f)}},
      {"softplus", act(Activation::softplus), {r64({3, 5}, 14, -6.f, 6.f)}},
      {"softplus_threshold", act(Activation::softplus), {r64({3, 5}, 15, 15.f, 25.f)}},
      {"tanh", act(Activation::tanh_act), {r64({3, 5}, 16, -2.f, 2.f)}},
      {"softmax", [](auto& x) { return ops::softmax(x[0]); }, {r64({4, 7}, 17, -3.f, 3.f)}},
      {"dropout",
       [](auto& x) {
         Generator g{42, 7};  // same stream on every call, so finite differences see one mask
         return ops::dropout(x[0], 0.35f, g, true);
       },
       {r64({5, 9}, 18)}},
      {"layer_norm", [](auto& x) { return ops::layer_norm(x[0], x[1], x[2], 1e-5f); },
       {r64({4, 6}, 19, -2.f, 2.f), r64({6}, 20), r64({6}, 21)}},
      {"layer_norm_no_bias", [](auto& x) { return ops::layer_norm(x[0], x[1], Tensor(), 1e-5f); },
       {r64({2, 3, 5}, 22, -2.f, 2.f), r64({5}, 23)}},
      {"rms_norm", [](auto& x) { return ops::rms_norm(x[0], x[1], 1e-6f); },
       {r64({5, 6}, 24, -2.f, 2.f), r64({6}, 25)}},
      {"rms_norm_3d", [](auto& x) { return ops::rms_norm(x[0], x[1], 1e-5f); },
       {r64({2, 2, 11}, 26, -2.f, 2.f), r64({11}, 27)}},
      {"gated_gelu", [](auto& x) { return ops::gated_activation(x[0], Activation::gelu_erf); },
       {r64({3, 10}, 28, -3.f, 3.f)}},
      {"gated_silu_3d", [](auto& x) { return ops::gated_activation(x[0], Activation::silu); },
       {r64({2, 3, 8}, 29, -3.f, 3.f)}},
  };
  for (auto& c : cases) {
    auto res = gradcheck(c.fn, c.inputs);
    EXPECT_LT(res.max_rel_error, 1e-6) << c.name << ": " << res.worst;
  }
}

TEST(OpsPointwise, NormGradientsAccumulateIntoParamSlots) {
  const int64_t C = 10;
  Tensor x = random_tensor({6, C}, DType::f32, 30, -2.f, 2.f);
  Tensor w = random_tensor({C}, DType::f32, 31), b = random_tensor({C}, DType::f32, 32);
  Tensor r = random_tensor({6, C}, DType::f32, 33);
  // Reference: plain leaves get fresh f32 gradients.
  Tensor wl = w.clone(), bl = b.clone();
  autograd::set_requires_grad(wl, true);
  autograd::set_requires_grad(bl, true);
  autograd::backward(ops::sum(ops::mul(ops::layer_norm(x, wl, bl, 1e-5f), r)));
  auto gw = autograd::grad(wl).to_double_vector(), gb = autograd::grad(bl).to_double_vector();
  // Parameters: two micro-batches add into the slots.
  Tensor ws = Tensor::zeros({C}, DType::f32), bs = Tensor::zeros({C}, DType::f32);
  Tensor wp = w.clone(), bp = b.clone();
  autograd::make_param(wp, ws, "norm.weight");
  autograd::make_param(bp, bs, "norm.bias");
  for (int micro = 0; micro < 2; micro++)
    autograd::backward(ops::sum(ops::mul(ops::layer_norm(x, wp, bp, 1e-5f), r)));
  auto sw = ws.to_double_vector(), sb = bs.to_double_vector();
  for (int64_t c = 0; c < C; c++) {
    EXPECT_NEAR(sw[c], 2 * gw[c], 1e-5);
    EXPECT_NEAR(sb[c], 2 * gb[c], 1e-5);
  }
  // RMSNorm with a parameter weight: same rule.
  Tensor rl = w.clone();
  autograd::set_requires_grad(rl, true);
  autograd::backward(ops::sum(ops::mul(ops::rms_norm(x, rl, 1e-5f), r)));
  auto grl = autograd::grad(rl).to_double_vector();
  Tensor rs = Tensor::zeros({C}, DType::f32), rp = w.clone();
  autograd::make_param(rp, rs, "rms.weight");
  autograd::backward(ops::sum(ops::mul(ops::rms_norm(x, rp, 1e-5f), r)));
  auto srs = rs.to_double_vector();
  for (int64_t c = 0; c < C; c++) EXPECT_NEAR(srs[c], grl[c], 1e-6);
}

TEST(OpsPointwise, MixedDtypeNormGradients) {
  // bf16 activations with f32 weights: gradients match the all-f64 computation to bf16 precision.
  const int64_t C = 24;
  Tensor x = random_tensor({5, C}, DType::f32, 40, -2.f, 2.f);
  Tensor xb = Tensor::from_floats(x.to_float_vector(), {5, C}, DType::bf16);
  Tensor w = random_tensor({C}, DType::f32, 41), r = random_tensor({5, C}, DType::f32, 42);
  for (int which = 0; which < 2; which++) {
    auto run = [&](const Tensor& xin, const Tensor& win) {
      Tensor xi = xin.clone(), wi = win.clone();
      autograd::set_requires_grad(xi, true);
      autograd::set_requires_grad(wi, true);
      Tensor y = which == 0 ? ops::layer_norm(xi, wi, Tensor(), 1e-5f) : ops::rms_norm(xi, wi, 1e-5f);
      Tensor rr = y.dtype() == DType::f64 ? test::to_f64(r) : Tensor::from_floats(r.to_float_vector(), r.shape(), y.dtype());
      autograd::backward(ops::sum(ops::mul(y, rr)));
      return std::vector<Tensor>{y, autograd::grad(xi), autograd::grad(wi)};
    };
    auto ref = run(test::to_f64(Tensor::from_floats(xb.to_float_vector(), x.shape(), DType::f32)), test::to_f64(w));
    auto mix = run(xb, w);
    EXPECT_EQ(mix[1].dtype(), DType::bf16);
    EXPECT_EQ(mix[2].dtype(), DType::f32);
    for (int k = 0; k < 3; k++) EXPECT_LT(test::rel_error(mix[k], ref[k]), 1e-2) << "norm " << which << " tensor " << k;
  }
}

// The fused forms equal the compositions they replace: gated activation = split, act, mul;
// layer_norm into bf16 = layer_norm then cast; an f32 + bf16 add = add after a cast, with the
// bf16 operand's gradient coming back in bf16.
TEST(OpsPointwise, FusedFormsMatchCompositions) {
  Tensor x = random_tensor({4, 2, 12}, DType::f32, 50, -3.f, 3.f);
  for (Activation a : {Activation::gelu_erf, Activation::silu}) {
    Tensor fused = ops::gated_activation(x, a);
    Tensor first = x.slice(2, 0, 6).contiguous(), second = x.slice(2, 6, 12).contiguous();
    EXPECT_EQ(fused.shape(), (Shape{4, 2, 6}));
    EXPECT_LT(test::rel_error(fused, ops::mul(ops::activation(first, a), second)), 1e-6) << activation_name(a);
  }
  Tensor h = random_tensor({6, 20}, DType::f32, 51, -2.f, 3.f), w = random_tensor({20}, DType::f32, 52, 0.5f, 1.5f);
  Tensor b = random_tensor({20}, DType::f32, 53);
  {
    Tensor hi = h.clone();
    autograd::set_requires_grad(hi, true);
    Tensor y = ops::layer_norm(hi, w, b, 1e-5f, DType::bf16);
    EXPECT_EQ(y.dtype(), DType::bf16);
    EXPECT_LT(test::rel_error(y, ops::cast(ops::layer_norm(h, w, b, 1e-5f), DType::bf16)), 1e-2);
    autograd::backward(ops::sum(ops::cast(y, DType::f32)));
    EXPECT_EQ(autograd::grad(hi).dtype(), DType::f32);
  }
  {
    Tensor a = h.clone(), o = Tensor::from_floats(random_tensor({6, 20}, DType::f32, 54).to_float_vector(), {6, 20},
                                                  DType::bf16);
    autograd::set_requires_grad(a, true);
    autograd::set_requires_grad(o, true);
    Tensor s = ops::add(a, o);
    EXPECT_EQ(s.dtype(), DType::f32);
    EXPECT_LT(test::rel_error(s, ops::add(h, ops::cast(o, DType::f32))), 1e-7);
    autograd::backward(ops::sum(ops::mul(s, h)));
    EXPECT_EQ(autograd::grad(o).dtype(), DType::bf16);
    EXPECT_LT(test::rel_error(autograd::grad(o), h), 1e-2);
    EXPECT_LT(test::rel_error(autograd::grad(a), h), 1e-7);
  }
  expect_error([&] { ops::gated_activation(random_tensor({2, 5}, DType::f32, 55), Activation::silu); },
               "[gated_activation] x needs an even last dimension");
  expect_error([&] { ops::layer_norm(h, w, b, 1e-5f, DType::f16); }, "[layer_norm] output dtype f16");
  expect_error([&] { ops::add(Tensor::from_floats({1, 2}, {2}, DType::bf16), h.slice(0, 0, 1).reshape({20}).slice(0, 0, 2)); },
               "[add] dtypes differ");
}

// ---- bad arguments --------------------------------------------------------------------------

TEST(OpsPointwise, BadArguments) {
  Tensor x = random_tensor({3, 4}, DType::f32, 50), w = random_tensor({4}, DType::f32, 51);
  Tensor xi = Tensor::from_vector<int32_t>({1, 2, 3}, {3});
  Generator gen{1, 0};
  expect_error([&] { ops::activation(xi, Activation::silu); }, "[activation] x must be floating");
  expect_error([&] { ops::activation(Tensor(), Activation::relu); }, "[activation] x is undefined");
  expect_error([&] { ops::softmax(Tensor::full({}, 1.0, DType::f32)); }, "[softmax]");
  expect_error([&] { ops::dropout(x, 1.f, gen, true); }, "[dropout] p must be in [0, 1)");
  expect_error([&] { ops::dropout(x, -0.1f, gen, false); }, "[dropout] p must be in [0, 1)");
  expect_error([&] { ops::dropout(x, NAN, gen, true); }, "[dropout] p must be in [0, 1)");
  expect_error([&] { ops::dropout(xi, 0.1f, gen, true); }, "[dropout] x must be floating");
  EXPECT_EQ(gen.offset, 0u);
  expect_error([&] { ops::layer_norm(x, random_tensor({5}, DType::f32, 1), Tensor(), 1e-5f); },
               "[layer_norm] weight last dimension must be 4");
  expect_error([&] { ops::layer_norm(x, random_tensor({1, 4}, DType::f32, 1), Tensor(), 1e-5f); },
               "[layer_norm] weight must have 1 dimension");
  expect_error([&] { ops::layer_norm(x, w, Tensor::from_floats({1, 2, 3, 4}, {4}, DType::bf16), 1e-5f); },
               "[layer_norm] bias must be f32");
  expect_error([&] { ops::layer_norm(x, w, random_tensor({3}, DType::f32, 2), 1e-5f); },
               "[layer_norm] bias last dimension must be 4");
  expect_error([&] { ops::layer_norm(x, Tensor(), Tensor(), 1e-5f); }, "[layer_norm] weight is undefined");
  expect_error([&] { ops::layer_norm(x, w, Tensor(), -1.f); }, "[layer_norm] eps must be finite and >= 0");
  expect_error([&] { ops::layer_norm(x, Tensor::from_floats({1, 2, 3, 4}, {4}, DType::bf16), Tensor(), 1e-5f); },
               "[layer_norm] x is f32 and weight bf16");
  expect_error([&] { ops::layer_norm(Tensor::empty({3, 0}, DType::f32), Tensor::empty({0}, DType::f32), Tensor(), 1e-5f); },
               "[layer_norm] x needs a non-empty last dimension");
  expect_error([&] { ops::rms_norm(x, Tensor::from_floats({1, 2, 3, 4}, {4}, DType::f16), 1e-5f); },
               "[rms_norm] x is f32 and weight f16");
  expect_error([&] { ops::rms_norm(test::to_f64(x), w, 1e-5f); }, "[rms_norm] x is f64 and weight f32");
  expect_error([&] { ops::rms_norm(x, w, NAN); }, "[rms_norm] eps must be finite");
  expect_error([&] { ops::rms_norm(xi, w, 1e-5f); }, "[rms_norm] x must be floating");
}
