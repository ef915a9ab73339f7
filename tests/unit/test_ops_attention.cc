// Ragged attention (ops/attention.h): forward values against a dense masked softmax computed
// here in double (independent of the kernels' key-range logic), hand-computed values, fp64
// gradchecks of q, k, v for every masking mode, strided views of a fused QKV, bad inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "lmforge/autograd/tape.h"
#include "lmforge/ops/attention.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;
using test::random_tensor;

namespace {

struct Case {
  const char* name;
  std::vector<int32_t> cu;
  int64_t hq, hkv, d;
  ops::AttentionOptions opt;
};

ops::AttentionOptions opts(bool causal, int64_t wl, int64_t wr, float scale = 0.f) {
  ops::AttentionOptions o;
  o.causal = causal;
  o.window_left = wl;
  o.window_right = wr;
  o.scale = scale;
  return o;
}

// Settings every test runs through: an empty sequence, length-1 sequences, causal, ModernBERT
// (|i-j| <= 2), GPT-Neo (causal + left window), right-only window, GQA and MQA, custom scale.
std::vector<Case> cases() {
  return {
      {"plain", {0, 5, 5, 6, 13}, 2, 2, 4, opts(false, -1, -1)},
      {"causal", {0, 5, 5, 6, 13}, 2, 2, 4, opts(true, -1, -1)},
      {"modernbert_window", {0, 9, 10, 16}, 2, 2, 3, opts(false, 2, 2)},
      {"gptneo_window", {0, 10, 11, 18}, 1, 1, 4, opts(true, 3, -1)},
      {"right_window", {0, 1, 8}, 2, 1, 4, opts(false, -1, 1)},
      {"gqa", {0, 7, 12}, 4, 2, 4, opts(false, -1, -1)},
      {"gqa_causal_window", {0, 0, 9, 12}, 4, 2, 3, opts(true, 2, -1)},
      {"mqa_scale", {0, 6, 11}, 3, 1, 5, opts(false, -1, -1, 0.7f)},
  };
}

bool visible(int64_t i, int64_t j, const ops::AttentionOptions& o) {
  if (o.causal && j > i) return false;
  if (o.window_left >= 0 && i - j > o.window_left) return false;
  if (o.window_right >= 0 && j - i > o.window_right) return false;
  return true;
}

// Dense reference: for every (sequence, head) the full [L, L] score matrix with masked entries
// dropped, softmax and P V in double. Returns out [N, Hq, D] flattened.
std::vector<double> naive(const Tensor& q_t, const Tensor& k_t, const Tensor& v_t, const std::vector<int32_t>& cu,
                          const ops::AttentionOptions& o) {
  const auto q = q_t.contiguous().to_double_vector(), k = k_t.contiguous().to_double_vector(),
             v = v_t.contiguous().to_double_vector();
  const int64_t N = q_t.size(0), Hq = q_t.size(1), Hkv = k_t.size(1), D = q_t.size(2);
  // The op's scale is a float (AttentionOptions::scale), so the default is rounded like it.
  const double scale = o.scale != 0.f ? double(o.scale) : double(float(1.0 / std::sqrt(double(D))));
  std::vector<double> out(size_t(N * Hq * D), 0.0);
  for (size_t s = 0; s + 1 < cu.size(); s++) {
    const int64_t t0 = cu[s], L = cu[s + 1] - cu[s];
    for (int64_t h = 0; h < Hq; h++) {
      const int64_t hk = h / (Hq / Hkv);
      for (int64_t i = 0; i < L; i++) {
        std::vector<double> sc(size_t(L), -INFINITY);
        double mx = -INFINITY;
        for (int64_t j = 0; j < L; j++) {
          if (!visible(i, j, o)) continue;
          double dot = 0;
          for (int64_t d = 0; d < D; d++)
            dot += q[size_t(((t0 + i) * Hq + h) * D + d)] * k[size_t(((t0 + j) * Hkv + hk) * D + d)];
          sc[size_t(j)] = scale * dot;
          mx = std::max(mx, sc[size_t(j)]);
        }
        double z = 0;
        for (int64_t j = 0; j < L; j++) z += std::isinf(sc[size_t(j)]) ? 0.0 : std::exp(sc[size_t(j)] - mx);
        for (int64_t j = 0; j < L; j++) {
          if (std::isinf(sc[size_t(j)])) continue;
          const double p = std::exp(sc[size_t(j)] - mx) / z;
          for (int64_t d = 0; d < D; d++)
            out[size_t(((t0 + i) * Hq + h) * D + d)] += p * v[size_t(((t0 + j) * Hkv + hk) * D + d)];
        }
      }
    }
  }
  return out;
}

struct Qkv {
  Tensor q, k, v;
};
Qkv make_qkv(const Case& c, DType dt, uint64_t seed) {
  const int64_t N = c.cu.back();
  // U(-2, 2): scores spread enough that the softmax is far from uniform.
  return {random_tensor({N, c.hq, c.d}, dt, seed, -2.f, 2.f), random_tensor({N, c.hkv, c.d}, dt, seed + 1, -2.f, 2.f),
          random_tensor({N, c.hkv, c.d}, dt, seed + 2, -2.f, 2.f)};
}

void expect_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error, expected one containing: " << needle;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("[attention] ", 0), 0u) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

}  // namespace

TEST(OpsAttention, HandComputed) {
  // One sequence of 2 tokens, D = 1, scale 1: q = 1, k = (0, ln 3), v = (1, 5).
  // Full: P = (1/4, 3/4) for both queries, out = 1/4 + 15/4 = 4. Causal: query 0 sees key 0 only.
  Tensor q = Tensor::from_vector<float>({1, 1}, {2, 1, 1});
  Tensor k = Tensor::from_vector<float>({0, std::log(3.f)}, {2, 1, 1});
  Tensor v = Tensor::from_vector<float>({1, 5}, {2, 1, 1});
  auto full = ops::attention(q, k, v, {0, 2}, opts(false, -1, -1, 1.f)).to_float_vector();
  EXPECT_NEAR(full[0], 4.f, 1e-6);
  EXPECT_NEAR(full[1], 4.f, 1e-6);
  auto causal = ops::attention(q, k, v, {0, 2}, opts(true, -1, -1, 1.f)).to_float_vector();
  EXPECT_NEAR(causal[0], 1.f, 1e-6);
  EXPECT_NEAR(causal[1], 4.f, 1e-6);
  // Two sequences of one token each: every query sees only itself, out = v.
  auto split = ops::attention(q, k, v, {0, 1, 2}, opts(false, -1, -1, 1.f)).to_float_vector();
  EXPECT_NEAR(split[0], 1.f, 1e-6);
  EXPECT_NEAR(split[1], 5.f, 1e-6);
  // Window 0 on both sides: the same.
  auto diag = ops::attention(q, k, v, {0, 2}, opts(false, 0, 0, 1.f)).to_float_vector();
  EXPECT_NEAR(diag[0], 1.f, 1e-6);
  EXPECT_NEAR(diag[1], 5.f, 1e-6);
}

TEST(OpsAttention, ForwardMatchesDenseReference) {
  for (const Case& c : cases()) {
    for (DType dt : {DType::f64, DType::f32, DType::bf16}) {
      Qkv x = make_qkv(c, dt, 7);
      Tensor out = ops::attention(x.q, x.k, x.v, c.cu, c.opt);
      ASSERT_EQ(out.shape(), x.q.shape()) << c.name;
      EXPECT_EQ(out.dtype(), dt);
      // The reference reads the same (rounded) inputs, so only the arithmetic differs.
      const double err = test::rel_error(out.to_double_vector(), naive(x.q, x.k, x.v, c.cu, c.opt));
      const double tol = dt == DType::f64 ? 1e-13 : dt == DType::f32 ? 1e-6 : 1e-2;
      EXPECT_LT(err, tol) << c.name << " " << dtype_name(dt);
    }
  }
}

TEST(OpsAttention, WindowsCoveringTheSequenceEqualUnlimited) {
  Case c{"w", {0, 6, 13}, 2, 2, 4, opts(false, -1, -1)};
  Qkv x = make_qkv(c, DType::f64, 3);
  auto full = ops::attention(x.q, x.k, x.v, c.cu, opts(false, -1, -1)).to_double_vector();
  auto wide = ops::attention(x.q, x.k, x.v, c.cu, opts(false, 7, 100)).to_double_vector();
  EXPECT_LT(test::rel_error(wide, full), 1e-15);
  // Causal equals a right window of 0.
  auto causal = ops::attention(x.q, x.k, x.v, c.cu, opts(true, -1, -1)).to_double_vector();
  auto right0 = ops::attention(x.q, x.k, x.v, c.cu, opts(false, -1, 0)).to_double_vector();
  EXPECT_LT(test::rel_error(right0, causal), 1e-15);
  EXPECT_GT(test::rel_error(causal, full), 1e-2);  // the masks matter on these inputs
}

TEST(OpsAttention, GradCheck) {
  for (const Case& c : cases()) {
    Qkv x = make_qkv(c, DType::f64, 21);
    auto fn = [&](const std::vector<Tensor>& in) { return ops::attention(in[0], in[1], in[2], c.cu, c.opt); };
    auto res = test::gradcheck(fn, {x.q, x.k, x.v});
    EXPECT_LT(res.max_rel_error, 1e-6) << c.name << ": " << res.worst;
  }
}

TEST(OpsAttention, StridedViewsOfFusedQkv) {
  // A fused projection [N, (Hq + 2 Hkv) * D] viewed as [N, Hq + 2 Hkv, D] and sliced into q, k,
  // v: token stride (Hq + 2 Hkv) * D, head stride D. Same values and gradients as contiguous.
  const std::vector<int32_t> cu{0, 4, 5, 11};
  const int64_t N = 11, Hq = 4, Hkv = 2, D = 3, W = Hq + 2 * Hkv;
  for (const auto& o : {opts(false, -1, -1), opts(true, 2, -1), opts(false, 1, 1)}) {
    Tensor fused = random_tensor({N, W * D}, DType::f64, 5, -2.f, 2.f).view({N, W, D});
    Tensor q = fused.slice(1, 0, Hq), k = fused.slice(1, Hq, Hq + Hkv), v = fused.slice(1, Hq + Hkv, W);
    ASSERT_FALSE(q.is_contiguous());
    ASSERT_EQ(q.strides()[0], W * D);
    Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
    autograd::set_requires_grad(q);
    autograd::set_requires_grad(k);
    autograd::set_requires_grad(v);
    autograd::set_requires_grad(qc);
    autograd::set_requires_grad(kc);
    autograd::set_requires_grad(vc);
    // backward() clears the whole tape: one forward/backward at a time.
    Tensor r = random_tensor({N, Hq, D}, DType::f64, 8);
    Tensor a = ops::attention(q, k, v, cu, o);
    autograd::backward(a, r);
    Tensor b = ops::attention(qc, kc, vc, cu, o);
    autograd::backward(b, r);
    EXPECT_LT(test::rel_error(a, b), 1e-15);
    EXPECT_LT(test::rel_error(a.to_double_vector(), naive(qc, kc, vc, cu, o)), 1e-13);
    EXPECT_LT(test::rel_error(autograd::grad(q), autograd::grad(qc)), 1e-15);
    EXPECT_LT(test::rel_error(autograd::grad(k), autograd::grad(kc)), 1e-15);
    EXPECT_LT(test::rel_error(autograd::grad(v), autograd::grad(vc)), 1e-15);
  }
}

TEST(OpsAttention, GradientsOnlyForInputsThatNeedThem) {
  Case c{"g", {0, 3, 8}, 2, 1, 4, opts(true, -1, -1)};
  Qkv x = make_qkv(c, DType::f32, 9);
  autograd::set_requires_grad(x.k);
  Tensor out = ops::attention(x.q, x.k, x.v, c.cu, c.opt);
  autograd::backward(out, random_tensor(out.shape(), DType::f32, 4));
  EXPECT_FALSE(autograd::grad(x.q).defined());
  EXPECT_FALSE(autograd::grad(x.v).defined());
  Tensor gk = autograd::grad(x.k);
  ASSERT_TRUE(gk.defined());
  EXPECT_EQ(gk.shape(), x.k.shape());
  EXPECT_TRUE(test::all_finite(gk));
  EXPECT_GT(test::max_abs_diff(gk, Tensor::zeros(gk.shape(), DType::f32)), 1e-3);
}

TEST(OpsAttention, NoTokens) {
  Tensor q = Tensor::zeros({0, 2, 4}, DType::f32), k = Tensor::zeros({0, 1, 4}, DType::f32);
  Tensor out = ops::attention(q, k, k, {0, 0, 0}, opts(true, -1, -1));
  EXPECT_EQ(out.shape(), (Shape{0, 2, 4}));
}

TEST(OpsAttention, BadInputs) {
  Tensor q = random_tensor({5, 4, 8}, DType::f32, 1), k = random_tensor({5, 2, 8}, DType::f32, 2);
  const std::vector<int32_t> cu{0, 2, 5};
  expect_error([&] { ops::attention(q.view({5, 32}), k, k, cu); }, "q must be [N, heads, head_dim]");
  expect_error([&] { ops::attention(q, k, random_tensor({5, 2, 8}, DType::f64, 3), cu); }, "dtypes differ");
  expect_error([&] { ops::attention(q, k, random_tensor({5, 2, 7}, DType::f32, 3), cu); }, "k and v shapes differ");
  expect_error([&] { ops::attention(q, random_tensor({5, 3, 8}, DType::f32, 3), random_tensor({5, 3, 8}, DType::f32, 4), cu); },
               "multiple of kv heads");
  expect_error([&] { ops::attention(q, random_tensor({4, 2, 8}, DType::f32, 3), random_tensor({4, 2, 8}, DType::f32, 4), cu); },
               "k must be [5, heads_kv, 8]");
  expect_error([&] { ops::attention(q, k, k, {1, 2, 5}); }, "must start with 0");
  expect_error([&] { ops::attention(q, k, k, {}); }, "must start with 0");
  expect_error([&] { ops::attention(q, k, k, {0, 3, 2, 5}); }, "non-decreasing");
  expect_error([&] { ops::attention(q, k, k, {0, 2, 4}); }, "end with the number of tokens 5");
  expect_error([&] { ops::attention(q, k, k, cu, opts(true, -2, -1)); }, "windows must be -1");
  expect_error([&] { ops::attention(q, k, k, cu, opts(false, -1, -1, NAN)); }, "scale must be finite");
  expect_error([&] { ops::attention(Tensor(), k, k, cu); }, "q is undefined");
  Tensor qi = Tensor::zeros({5, 4, 8}, DType::i32);
  expect_error([&] { ops::attention(qi, k, k, cu); }, "must be floating");
}
