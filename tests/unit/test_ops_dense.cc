// Dense ops on the CPU: the matmul kernel against naive loops (every transpose, alpha/beta,
// bias, mixed dtypes, batched), linear/matmul/embedding forward values, fp64 gradchecks for
// every differentiable input, parameter-slot accumulation, and bad-argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/embedding.h"
#include "lmforge/ops/linear.h"
#include "lmforge/ops/matmul.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;
using test::gradcheck;
using test::random_tensor;

namespace {

// C = alpha op(A) op(B) + beta C0 + bias, row-major, in double (the independent reference).
std::vector<double> naive_gemm(const std::vector<double>& a, bool ta, const std::vector<double>& b, bool tb,
                               const std::vector<double>& c0, const std::vector<double>& bias, int64_t M,
                               int64_t N, int64_t K, double alpha, double beta) {
  std::vector<double> c(size_t(M * N));
  for (int64_t m = 0; m < M; m++)
    for (int64_t n = 0; n < N; n++) {
      double s = 0;
      for (int64_t k = 0; k < K; k++) {
        double av = ta ? a[size_t(k * M + m)] : a[size_t(m * K + k)];
        double bv = tb ? b[size_t(n * K + k)] : b[size_t(k * N + n)];
        s += av * bv;
      }
      double v = alpha * s + (bias.empty() ? 0.0 : bias[size_t(n)]);
      if (beta != 0) v += beta * c0[size_t(m * N + n)];
      c[size_t(m * N + n)] = v;
    }
  return c;
}

double max_rel(const std::vector<double>& got, const std::vector<double>& want) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); i++)
    worst = std::max(worst, std::fabs(got[i] - want[i]) / std::max(std::fabs(want[i]), 1e-2));
  return worst;
}

Tensor r64(const Shape& s, uint64_t seed) { return random_tensor(s, DType::f64, seed); }

}  // namespace

TEST(OpsDense, MatmulKernelMatchesNaiveForEveryTranspose) {
  const int64_t M = 5, N = 7, K = 3;
  for (DType dt : {DType::f32, DType::f64}) {
    for (int ta = 0; ta < 2; ta++) {
      for (int tb = 0; tb < 2; tb++) {
        Tensor A = random_tensor(ta ? Shape{K, M} : Shape{M, K}, dt, 1 + ta);
        Tensor B = random_tensor(tb ? Shape{N, K} : Shape{K, N}, dt, 3 + tb);
        Tensor C = random_tensor({M, N}, dt, 5);
        Tensor bias = random_tensor({N}, dt, 6);
        auto c0 = C.to_double_vector();
        cpu::matmul(A, ta, B, tb, C, 0.5f, 2.f, bias);
        auto want = naive_gemm(A.to_double_vector(), ta, B.to_double_vector(), tb, c0, bias.to_double_vector(), M,
                               N, K, 0.5, 2.0);
        EXPECT_LT(max_rel(C.to_double_vector(), want), dt == DType::f32 ? 1e-5 : 1e-12)
            << dtype_name(dt) << " ta=" << ta << " tb=" << tb;
      }
    }
  }
}

TEST(OpsDense, MatmulMixedDtypes) {
  const int64_t M = 4, N = 6, K = 9;
  Tensor A = random_tensor({M, K}, DType::bf16, 11), B = random_tensor({N, K}, DType::bf16, 12);
  auto av = A.to_double_vector(), bv = B.to_double_vector();
  // bf16 operands into an fp32 accumulator with beta = 1 (the weight-gradient GEMM).
  Tensor C = random_tensor({M, N}, DType::f32, 13);
  auto c0 = C.to_double_vector();
  cpu::matmul(A, false, B, true, C, 1.f, 1.f, Tensor());
  EXPECT_LT(max_rel(C.to_double_vector(), naive_gemm(av, false, bv, true, c0, {}, M, N, K, 1, 1)), 1e-5);
  // bf16 output with an f32 bias: rounded once at the end, so within bf16 precision.
  Tensor Cb = Tensor::empty({M, N}, DType::bf16);
  Tensor bias = random_tensor({N}, DType::f32, 14);
  cpu::matmul(A, false, B, true, Cb, 1.f, 0.f, bias);
  EXPECT_LT(max_rel(Cb.to_double_vector(), naive_gemm(av, false, bv, true, {}, bias.to_double_vector(), M, N, K, 1, 0)),
            8e-3);
  // f64 operands into an f32 slot (what a gradcheck parameter would see).
  Tensor A64 = random_tensor({M, K}, DType::f64, 15), B64 = random_tensor({K, N}, DType::f64, 16);
  Tensor C32 = Tensor::zeros({M, N}, DType::f32);
  cpu::matmul(A64, false, B64, false, C32, 1.f, 1.f, Tensor());
  EXPECT_LT(max_rel(C32.to_double_vector(),
                    naive_gemm(A64.to_double_vector(), false, B64.to_double_vector(), false, std::vector<double>(M * N, 0),
                               {}, M, N, K, 1, 1)),
            1e-6);
}

TEST(OpsDense, MatmulBetaZeroIgnoresGarbageAndEmptyK) {
  Tensor A = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2}), B = Tensor::from_vector<float>({1, 0, 0, 1}, {2, 2});
  Tensor C = Tensor::full({2, 2}, std::numeric_limits<double>::quiet_NaN(), DType::f32);
  cpu::matmul(A, false, B, false, C, 1.f, 0.f, Tensor());
  EXPECT_EQ(C.to_float_vector(), (std::vector<float>{1, 2, 3, 4}));
  // K = 0: the product is empty, C = beta C + bias.
  Tensor A0 = Tensor::empty({2, 0}, DType::f32), B0 = Tensor::empty({0, 2}, DType::f32);
  Tensor bias = Tensor::from_vector<float>({10, 20}, {2});
  cpu::matmul(A0, false, B0, false, C, 1.f, 2.f, bias);
  EXPECT_EQ(C.to_float_vector(), (std::vector<float>{12, 24, 16, 28}));
}

TEST(OpsDense, MatmulBatchedMatchesNaive) {
  const int64_t Bt = 3, M = 4, N = 5, K = 6;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      Tensor A = random_tensor(ta ? Shape{Bt, K, M} : Shape{Bt, M, K}, DType::f32, 21);
      Tensor B = random_tensor(tb ? Shape{Bt, N, K} : Shape{Bt, K, N}, DType::f32, 22);
      Tensor C = random_tensor({Bt, M, N}, DType::f32, 23);
      auto c0 = C.to_double_vector(), av = A.to_double_vector(), bv = B.to_double_vector();
      cpu::matmul_batched(A, ta, B, tb, C, 1.5f, -1.f);
      auto got = C.to_double_vector();
      for (int64_t i = 0; i < Bt; i++) {
        auto slice = [&](const std::vector<double>& v, int64_t n) {
          return std::vector<double>(v.begin() + i * n, v.begin() + (i + 1) * n);
        };
        auto want = naive_gemm(slice(av, M * K), ta, slice(bv, K * N), tb, slice(c0, M * N), {}, M, N, K, 1.5, -1);
        EXPECT_LT(max_rel(slice(got, M * N), want), 1e-5) << "batch " << i << " ta=" << ta << " tb=" << tb;
      }
    }
}

TEST(OpsDense, LinearForwardHandComputed) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});
  Tensor w = Tensor::from_vector<float>({1, 0, 0, 1, 1, 1}, {3, 2});
  Tensor b = Tensor::from_vector<float>({0.5f, -1, 2}, {3});
  EXPECT_EQ(ops::linear(x, w, b).to_float_vector(), (std::vector<float>{1.5f, 1, 5, 3.5f, 3, 9}));
  EXPECT_EQ(ops::linear(x, w).to_float_vector(), (std::vector<float>{1, 2, 3, 3, 4, 7}));
  // Leading dims are kept: [2, 1, 2] -> [2, 1, 3].
  Tensor y = ops::linear(x.view({2, 1, 2}), w, b);
  EXPECT_EQ(y.shape(), (Shape{2, 1, 3}));
  // A transposed (non-contiguous) input gives the same as its contiguous copy.
  Tensor xt = Tensor::from_vector<float>({1, 3, 2, 4}, {2, 2}).transpose(0, 1);
  EXPECT_EQ(ops::linear(xt, w, b).to_float_vector(), (std::vector<float>{1.5f, 1, 5, 3.5f, 3, 9}));
}

TEST(OpsDense, MatmulAndEmbeddingForwardHandComputed) {
  Tensor a = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor b = Tensor::from_vector<float>({1, 0, 2, 1, 0, 1}, {3, 2});
  EXPECT_EQ(ops::matmul(a, b).to_float_vector(), (std::vector<float>{5, 5, 14, 11}));
  // a^T a: [3, 3].
  EXPECT_EQ(ops::matmul(a, a, true, false).to_float_vector(), (std::vector<float>{17, 22, 27, 22, 29, 36, 27, 36, 45}));
  // a a^T: [2, 2].
  EXPECT_EQ(ops::matmul(a, a, false, true).to_float_vector(), (std::vector<float>{14, 32, 32, 77}));

  Tensor table = Tensor::from_vector<float>({0, 1, 10, 11, 20, 21}, {3, 2});
  for (DType idt : {DType::i32, DType::i64}) {
    Tensor ids = Tensor::from_floats({2, 0, 2, 1}, {2, 2}, idt);
    Tensor e = ops::embedding(ids, table);
    EXPECT_EQ(e.shape(), (Shape{2, 2, 2}));
    EXPECT_EQ(e.to_float_vector(), (std::vector<float>{20, 21, 0, 1, 20, 21, 10, 11}));
  }
}

struct DenseGradCase {
  const char* name;
  test::OpFn fn;
  std::vector<Shape> shapes;
};

TEST(OpsDense, GradCheck) {
  std::vector<DenseGradCase> cases = {
      {"linear_bias", [](auto& x) { return ops::linear(x[0], x[1], x[2]); }, {{4, 3}, {5, 3}, {5}}},
      {"linear_nobias", [](auto& x) { return ops::linear(x[0], x[1]); }, {{4, 3}, {5, 3}}},
      {"linear_3d", [](auto& x) { return ops::linear(x[0], x[1], x[2]); }, {{2, 3, 4}, {2, 4}, {2}}},
      {"matmul_nn", [](auto& x) { return ops::matmul(x[0], x[1]); }, {{3, 4}, {4, 5}}},
      {"matmul_tn", [](auto& x) { return ops::matmul(x[0], x[1], true, false); }, {{4, 3}, {4, 5}}},
      {"matmul_nt", [](auto& x) { return ops::matmul(x[0], x[1], false, true); }, {{3, 4}, {5, 4}}},
      {"matmul_tt", [](auto& x) { return ops::matmul(x[0], x[1], true, true); }, {{4, 3}, {5, 4}}},
      {"bmm_nn", [](auto& x) { return ops::matmul(x[0], x[1]); }, {{2, 3, 4}, {2, 4, 5}}},
      {"bmm_tt", [](auto& x) { return ops::matmul(x[0], x[1], true, true); }, {{2, 4, 3}, {2, 5, 4}}},
      {"matmul_self", [](auto& x) { return ops::matmul(x[0], x[0], false, true); }, {{3, 4}}},
  };
  for (auto& c : cases) {
    std::vector<Tensor> ins;
    for (size_t i = 0; i < c.shapes.size(); i++) ins.push_back(r64(c.shapes[i], 40 + i));
    auto res = gradcheck(c.fn, ins);
    EXPECT_LT(res.max_rel_error, 1e-6) << c.name << ": " << res.worst;
  }
  // Embedding: only the table is differentiable; ids repeat so scatter-add sums must be right.
  Tensor ids = Tensor::from_vector<int64_t>({1, 3, 1, 0, 3, 1}, {2, 3});
  auto res = gradcheck([](auto& x) { return ops::embedding(x[0], x[1]); }, {ids, r64({4, 5}, 50)});
  EXPECT_LT(res.max_rel_error, 1e-6) << "embedding: " << res.worst;
}

TEST(OpsDense, LinearAccumulatesIntoParameterSlots) {
  Tensor x = random_tensor({6, 4}, DType::f32, 60);
  Tensor w = random_tensor({3, 4}, DType::f32, 61), b = random_tensor({3}, DType::f32, 62);
  Tensor gw = Tensor::zeros({3, 4}, DType::f32), gb = Tensor::zeros({3}, DType::f32);
  autograd::make_param(w, gw, "w");
  autograd::make_param(b, gb, "b");
  Tensor xr = x.clone();
  autograd::set_requires_grad(xr, true);
  for (int micro = 0; micro < 2; micro++) autograd::backward(ops::sum(ops::linear(xr, w, b)));
  // d sum(xW^T+b)/dW[o,i] = sum_n x[n,i]; db[o] = rows; summed over two micro-batches.
  auto xv = x.to_float_vector(), wv = w.to_float_vector();
  auto gwv = gw.to_float_vector(), gbv = gb.to_float_vector(), gx = autograd::grad(xr).to_float_vector();
  for (int o = 0; o < 3; o++) {
    EXPECT_FLOAT_EQ(gbv[o], 12.f);
    for (int i = 0; i < 4; i++) {
      float colsum = 0;
      for (int n = 0; n < 6; n++) colsum += xv[n * 4 + i];
      EXPECT_NEAR(gwv[o * 4 + i], 2 * colsum, 1e-5);
    }
  }
  // dx[n, i] = sum_o W[o, i], twice.
  for (int i = 0; i < 4; i++) EXPECT_NEAR(gx[i], 2 * (wv[i] + wv[4 + i] + wv[8 + i]), 1e-5);
}

TEST(OpsDense, EmbeddingBackwardSumsRepeatedIdsIntoSlot) {
  Tensor table = random_tensor({4, 3}, DType::f32, 70);
  Tensor slot = Tensor::full({4, 3}, 1.0, DType::f32);  // pre-existing gradient: added to, not replaced
  autograd::make_param(table, slot, "embed");
  Tensor ids = Tensor::from_vector<int32_t>({2, 0, 2, 2}, {4});
  Tensor scale = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {4, 3});
  autograd::backward(ops::sum(ops::mul(ops::embedding(ids, table), scale)));
  // Row 2 gets rows 0, 2, 3 of `scale`; row 0 gets row 1; rows 1 and 3 only keep the 1s.
  EXPECT_EQ(slot.to_float_vector(),
            (std::vector<float>{1 + 4, 1 + 5, 1 + 6, 1, 1, 1, 1 + 1 + 7 + 10, 1 + 2 + 8 + 11, 1 + 3 + 9 + 12, 1, 1, 1}));
}

TEST(OpsDense, Errors) {
  Tensor x = random_tensor({2, 3}, DType::f32, 80);
  Tensor w = random_tensor({4, 3}, DType::f32, 81);
  auto expect_error = [](auto fn, const std::string& needle) {
    try {
      fn();
      ADD_FAILURE() << "no error thrown, expected '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([&] { ops::linear(x, random_tensor({4, 5}, DType::f32, 1)); }, "[linear] x last dimension must be 5");
  expect_error([&] { ops::linear(x, random_tensor({3}, DType::f32, 1)); }, "[linear] w must have 2 dimension");
  expect_error([&] { ops::linear(x, random_tensor({4, 3}, DType::f64, 1)); }, "[linear] w dtype must equal x dtype");
  expect_error([&] { ops::linear(x, w, random_tensor({3}, DType::f32, 1)); }, "[linear] b must have 4 elements");
  expect_error([&] { ops::linear(x, w, random_tensor({4}, DType::f64, 1)); }, "[linear] b dtype must be f32");
  expect_error([&] { ops::matmul(x, x); }, "[matmul] inner dimensions differ");
  expect_error([&] { ops::matmul(x, random_tensor({2, 3, 4}, DType::f32, 1)); }, "[matmul] expected two 2-D");
  expect_error([&] { ops::matmul(random_tensor({2, 3, 4}, DType::f32, 1), random_tensor({3, 4, 5}, DType::f32, 2)); },
               "[matmul] batch sizes differ");
  Tensor table = random_tensor({50280, 2}, DType::f32, 82);
  expect_error([&] { ops::embedding(Tensor::from_vector<int64_t>({5, 70000}, {2}), table); },
               "[embedding] id 70000 out of range for vocabulary 50280");
  expect_error([&] { ops::embedding(Tensor::from_vector<int32_t>({-1}, {1}), table); },
               "[embedding] id -1 out of range for vocabulary 50280");
  expect_error([&] { ops::embedding(Tensor::from_vector<float>({1}, {1}), table); }, "[embedding] ids must be i32 or i64");
  expect_error([&] { ops::embedding(Tensor::from_vector<int32_t>({1}, {1}), random_tensor({4}, DType::f32, 1)); },
               "[embedding] table must have 2 dimension");
}
