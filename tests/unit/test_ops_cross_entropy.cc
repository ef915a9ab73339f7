// Fused chunked cross-entropy: forward values, top-k counts and gradients against a naive
// materialized softmax cross-entropy in double; chunk boundaries; fp64 gradcheck; errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>

#include "lmforge/autograd/tape.h"
#include "lmforge/backend/cross_entropy_chunks.h"
#include "lmforge/backend/kernels.h"
#include "lmforge/core/device_memory.h"
#include "lmforge/ops/cross_entropy.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;
using test::random_tensor;

namespace {

// Materialized reference: logits [N, V] in double, softmax, loss, ranks and gradients of
// grad_scale * sum_n row_loss_n.
struct Naive {
  std::vector<double> lse, row_loss, dh, dW, db;
  std::array<int64_t, 3> hits = {0, 0, 0};
  int64_t count = 0;
  double weight_sum = 0, total = 0;
};

// With a bias b (non-empty), logits are h W^T + b and db is filled.
Naive naive_ce(const Tensor& h_t, const Tensor& W_t, const std::vector<int64_t>& tg, const std::vector<double>& w,
               double grad_scale, const std::vector<double>& b = {}) {
  const auto h = h_t.to_double_vector(), W = W_t.to_double_vector();
  const int64_t H = W_t.size(1), V = W_t.size(0), N = int64_t(tg.size());
  Naive r;
  r.lse.assign(size_t(N), 0);
  r.row_loss.assign(size_t(N), 0);
  r.dh.assign(size_t(N * H), 0);
  r.dW.assign(size_t(V * H), 0);
  r.db.assign(size_t(V), 0);
  std::vector<double> z(static_cast<size_t>(V));
  for (int64_t n = 0; n < N; n++) {
    double mx = -INFINITY;
    for (int64_t v = 0; v < V; v++) {
      double s = 0;
      for (int64_t k = 0; k < H; k++) s += h[size_t(n * H + k)] * W[size_t(v * H + k)];
      if (!b.empty()) s += b[size_t(v)];
      z[size_t(v)] = s;
      mx = std::max(mx, s);
    }
    double se = 0;
    for (double x : z) se += std::exp(x - mx);
    const double lse = mx + std::log(se);
    r.lse[size_t(n)] = lse;
    const int64_t t = tg[size_t(n)];
    if (t == -100) continue;
    const double wn = w.empty() ? 1.0 : w[size_t(n)];
    r.count++;
    r.weight_sum += wn;
    r.row_loss[size_t(n)] = wn * (lse - z[size_t(t)]);
    r.total += r.row_loss[size_t(n)];
    int64_t rank = 0;
    for (int64_t v = 0; v < V; v++) rank += z[size_t(v)] > z[size_t(t)];
    r.hits[0] += rank < 1;
    r.hits[1] += rank < 3;
    r.hits[2] += rank < 10;
    for (int64_t v = 0; v < V; v++) {
      const double dz = grad_scale * wn * (std::exp(z[size_t(v)] - lse) - (v == t ? 1.0 : 0.0));
      r.db[size_t(v)] += dz;
      for (int64_t k = 0; k < H; k++) {
        r.dh[size_t(n * H + k)] += dz * W[size_t(v * H + k)];
        r.dW[size_t(v * H + k)] += dz * h[size_t(n * H + k)];
      }
    }
  }
  return r;
}

// Random targets in [0, V) with every `ignore_every`-th row ignored (-100).
std::vector<int64_t> make_targets(int64_t N, int64_t V, int ignore_every, uint64_t seed) {
  auto u = random_tensor({N}, DType::f64, seed, 0.f, 1.f).to_double_vector();
  std::vector<int64_t> t(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; n++)
    t[size_t(n)] =
        (ignore_every > 0 && n % ignore_every == 2) ? -100 : std::min<int64_t>(V - 1, int64_t(u[size_t(n)] * V));
  return t;
}

Tensor i64_tensor(const std::vector<int64_t>& v) { return Tensor::from_vector<int64_t>(v, {int64_t(v.size())}); }

double vec_rel(const std::vector<double>& a, const std::vector<double>& b) { return test::rel_error(a, b); }

void expect_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected an lmf::Error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

struct Chunking {
  int64_t rows, vocab;
};

}  // namespace

TEST(OpsCrossEntropy, ForwardAndBackwardMatchNaiveAcrossChunkings) {
  const int64_t N = 37, H = 16, V = 53;
  // Default tiles (one tile), and tiles whose boundaries fall inside N and V.
  const std::vector<Chunking> chunkings = {{0, 0}, {8, 16}, {5, 7}, {1, 1}, {64, 53}};
  for (DType dt : {DType::f32, DType::f64}) {
    const double tol = dt == DType::f64 ? 1e-12 : 1e-5;
    // The kernel takes the upstream scale as a float (kernel_list.inc), so f64 gradients carry
    // its rounding (~6e-8 relative).
    const double grad_tol = dt == DType::f64 ? 2e-7 : 1e-5;
    Tensor h0 = random_tensor({N, H}, dt, 1), W0 = random_tensor({V, H}, dt, 2);
    auto tg = make_targets(N, V, 5, 3);
    Tensor wts = random_tensor({N}, DType::f32, 4, 0.1f, 1.f);
    std::vector<double> wv = wts.to_double_vector();
    const Naive ref = naive_ce(h0, W0, tg, wv, 1.0 / 30.0);  // 30 non-ignored rows: mean's scale
    ASSERT_EQ(ref.count, 30);
    for (auto ch : chunkings) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " rows " + std::to_string(ch.rows) + " vocab " +
                   std::to_string(ch.vocab));
      Tensor h = h0.clone(), W = W0.clone();
      autograd::set_requires_grad(h);
      autograd::set_requires_grad(W);
      ops::CrossEntropyOptions opt;
      opt.want_topk = true;
      opt.chunk_rows = ch.rows;
      opt.chunk_vocab = ch.vocab;
      auto res = ops::cross_entropy(h, W, i64_tensor(tg), wts, opt);
      EXPECT_EQ(res.loss.dtype(), dt == DType::f64 ? DType::f64 : DType::f32);
      EXPECT_EQ(res.count, 30);
      EXPECT_NEAR(res.weight_sum, ref.weight_sum, 1e-9);
      EXPECT_NEAR(res.loss.item(), ref.total / 30, tol * ref.total);
      EXPECT_NEAR(res.sum_loss.item(), ref.total, tol * ref.total);
      EXPECT_LT(vec_rel(res.row_loss.to_double_vector(), ref.row_loss), tol);
      EXPECT_EQ(res.topk_hits, ref.hits);
      autograd::backward(res.loss);
      EXPECT_LT(vec_rel(autograd::grad(h).to_double_vector(), ref.dh), grad_tol);
      EXPECT_LT(vec_rel(autograd::grad(W).to_double_vector(), ref.dW), grad_tol);
      EXPECT_EQ(autograd::grad(W).dtype(), dt == DType::f64 ? DType::f64 : DType::f32);
    }
  }
}

TEST(OpsCrossEntropy, KernelWritesLseForEveryRow) {
  const int64_t N = 9, H = 6, V = 20;
  Tensor h = random_tensor({N, H}, DType::f32, 5, -2.f, 2.f), W = random_tensor({V, H}, DType::f32, 6);
  auto tg = make_targets(N, V, 4, 7);  // rows 2 and 6 ignored: lse is still defined there
  const Naive ref = naive_ce(h, W, tg, {}, 1.0);
  Tensor lse = Tensor::empty({N}, DType::f32), loss = Tensor::empty({N}, DType::f32);
  Tensor hits = Tensor::empty({3}, DType::i64);
  CrossEntropyChunksGuard guard({4, 6});
  cpu::cross_entropy_forward(h, W, Tensor(), i64_tensor(tg), Tensor(), lse, loss, hits, Tensor());
  EXPECT_LT(vec_rel(lse.to_double_vector(), ref.lse), 1e-6);
  EXPECT_LT(vec_rel(loss.to_double_vector(), ref.row_loss), 1e-5);
  EXPECT_EQ(loss.to_double_vector()[2], 0.0);
  auto hv = hits.to_double_vector();
  EXPECT_EQ((std::array<int64_t, 3>{int64_t(hv[0]), int64_t(hv[1]), int64_t(hv[2])}), ref.hits);
}

TEST(OpsCrossEntropy, Reductions) {
  const int64_t N = 12, H = 8, V = 30;
  Tensor h = random_tensor({N, H}, DType::f64, 11), W = random_tensor({V, H}, DType::f64, 12);
  auto tg = make_targets(N, V, 4, 13);
  Tensor wts = random_tensor({N}, DType::f32, 14, 0.2f, 1.f);
  const Naive ref = naive_ce(h, W, tg, wts.to_double_vector(), 1.0);
  ops::CrossEntropyOptions opt;
  EXPECT_NEAR(ops::cross_entropy(h, W, i64_tensor(tg), wts, opt).loss.item(), ref.total / double(ref.count), 1e-12);
  opt.divide_by_weight_sum = true;
  EXPECT_NEAR(ops::cross_entropy(h, W, i64_tensor(tg), wts, opt).loss.item(), ref.total / ref.weight_sum, 1e-12);
  opt.reduction = ops::CrossEntropyReduction::sum;
  EXPECT_NEAR(ops::cross_entropy(h, W, i64_tensor(tg), wts, opt).loss.item(), ref.total, 1e-12);
  // Without weights the mean is HF's: average over non-ignored rows; i32 targets work the same.
  const Naive plain = naive_ce(h, W, tg, {}, 1.0);
  std::vector<int32_t> tg32(tg.begin(), tg.end());
  auto res = ops::cross_entropy(h, W, Tensor::from_vector<int32_t>(tg32, {N}));
  EXPECT_NEAR(res.loss.item(), plain.total / double(plain.count), 1e-12);
  EXPECT_DOUBLE_EQ(res.weight_sum, double(res.count));
  // Weights of another floating dtype are used as f32.
  auto res64 = ops::cross_entropy(h, W, i64_tensor(tg), test::to_f64(wts));
  EXPECT_NEAR(res64.loss.item(), ref.total / double(ref.count), 1e-12);
}

// Hand-made logits with known ranks (W = I so that logits = h), including ties.
TEST(OpsCrossEntropy, TopKCountsOnKnownRanks) {
  const int64_t V = 12;
  std::vector<std::vector<float>> rows;
  std::vector<int64_t> tg;
  std::vector<float> ramp(V);
  for (int64_t v = 0; v < V; v++) ramp[size_t(v)] = float(v);
  rows.push_back(ramp), tg.push_back(11);  // rank 0
  rows.push_back(ramp), tg.push_back(9);   // rank 2 (10, 11 above)
  rows.push_back(ramp), tg.push_back(6);   // rank 5
  rows.push_back(ramp), tg.push_back(1);   // rank 10: no hit
  std::vector<float> tie3(V, 0.f);
  tie3[0] = tie3[1] = tie3[2] = 5.f;
  rows.push_back(tie3), tg.push_back(1);     // tied with the maximum: rank 0 (ties favour the target)
  rows.push_back(ramp), tg.push_back(-100);  // ignored: never counted
  rows.push_back(std::vector<float>(V, 2.f)), tg.push_back(7);  // all equal: rank 0
  std::vector<float> mixed = {9, 4, 4, 4, 8, 1, 1, 1, 1, 1, 1, 1};
  rows.push_back(mixed), tg.push_back(3);  // 9 and 8 above, ties at 4 not: rank 2
  const std::array<int64_t, 3> expected = {3, 5, 6};

  const int64_t N = int64_t(rows.size());
  std::vector<float> flat;
  for (auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  Tensor logits = Tensor::from_floats(flat, {N, V}, DType::f32);
  std::vector<float> eye(size_t(V * V), 0.f);
  for (int64_t v = 0; v < V; v++) eye[size_t(v * V + v)] = 1.f;
  Tensor I = Tensor::from_floats(eye, {V, V}, DType::f32);

  for (auto ch : std::vector<Chunking>{{0, 0}, {2, 5}, {3, 1}}) {
    ops::CrossEntropyOptions opt;
    opt.want_topk = true;
    opt.chunk_rows = ch.rows;
    opt.chunk_vocab = ch.vocab;
    auto res = ops::cross_entropy(logits, I, i64_tensor(tg), Tensor(), opt);
    EXPECT_EQ(res.topk_hits, expected) << "chunks " << ch.rows << "x" << ch.vocab;
    EXPECT_EQ(res.count, 7);
    auto rl = res.row_loss.to_double_vector();
    double se = 0;
    for (int v = 0; v < V; v++) se += std::exp(double(v));
    EXPECT_NEAR(rl[0], std::log(se) - 11.0, 1e-5);
    EXPECT_NEAR(rl[6], std::log(double(V)), 1e-5);  // uniform logits: log V
    EXPECT_EQ(rl[5], 0.0);
    auto res2 = ops::cross_entropy_logits(logits, i64_tensor(tg), Tensor(), opt);
    EXPECT_EQ(res2.topk_hits, expected);
    EXPECT_NEAR(res2.loss.item(), res.loss.item(), 1e-6);
  }
}

TEST(OpsCrossEntropy, GradCheckFp64) {
  const int64_t N = 7, H = 5, V = 11;
  Tensor h = random_tensor({N, H}, DType::f64, 21, -1.5f, 1.5f), W = random_tensor({V, H}, DType::f64, 22, -1.5f, 1.5f);
  Tensor tg = i64_tensor(make_targets(N, V, 3, 23));  // rows 2 and 5 ignored
  Tensor wts = random_tensor({N}, DType::f32, 24, 0.1f, 1.f);
  struct Case {
    const char* name;
    bool weighted, by_weight_sum, sum, use_sum_output;
  };
  for (Case c : {Case{"mean", false, false, false, false}, Case{"weighted_mean", true, false, false, false},
                 Case{"weight_sum_mean", true, true, false, false}, Case{"sum", true, false, true, false},
                 Case{"sum_output", true, false, false, true}}) {
    for (auto ch : std::vector<Chunking>{{0, 0}, {3, 4}}) {
      ops::CrossEntropyOptions opt;
      opt.divide_by_weight_sum = c.by_weight_sum;
      opt.reduction = c.sum ? ops::CrossEntropyReduction::sum : ops::CrossEntropyReduction::mean;
      opt.chunk_rows = ch.rows;
      opt.chunk_vocab = ch.vocab;
      auto fn = [&](const std::vector<Tensor>& x) {
        auto r = ops::cross_entropy(x[0], x[1], x[2], c.weighted ? x[3] : Tensor(), opt);
        return c.use_sum_output ? r.sum_loss : r.loss;
      };
      auto res = test::gradcheck(fn, {h, W, tg, wts}, 1e-6, {true, true, false, false});
      EXPECT_LT(res.max_rel_error, 1e-6) << c.name << " chunks " << ch.rows << "x" << ch.vocab << ": " << res.worst;
    }
  }
  auto fn_logits = [](const std::vector<Tensor>& x) { return ops::cross_entropy_logits(x[0], x[1], x[2]).loss; };
  auto res = test::gradcheck(fn_logits,
                             {random_tensor({4, 3, 6}, DType::f64, 25, -2.f, 2.f),
                              Tensor::from_vector<int64_t>({0, 5, -100, 2, 3, 3, 1, 0, 4, -100, 5, 2}, {4, 3}),
                              random_tensor({4, 3}, DType::f32, 26, 0.5f, 1.f)},
                             1e-6, {true, false, false});
  EXPECT_LT(res.max_rel_error, 1e-6) << "cross_entropy_logits: " << res.worst;
}

TEST(OpsCrossEntropy, ParameterGradientAccumulatesIntoSlot) {
  const int64_t N = 10, H = 6, V = 25;
  Tensor h = random_tensor({N, H}, DType::f32, 31), W = random_tensor({V, H}, DType::f32, 32);
  Tensor slot = Tensor::zeros({V * H}, DType::f32);
  autograd::make_param(W, slot, "lm_head.weight");
  auto tg = make_targets(N, V, 4, 33);
  const Naive ref = naive_ce(h, W, tg, {}, 1.0);
  ASSERT_EQ(ref.count, 8);  // rows 2 and 6 ignored
  ops::CrossEntropyOptions opt;
  opt.chunk_vocab = 8;
  for (int micro = 0; micro < 2; micro++)
    autograd::backward(ops::cross_entropy(h, W, i64_tensor(tg), Tensor(), opt).loss);
  std::vector<double> twice(ref.dW.size());
  for (size_t i = 0; i < twice.size(); i++) twice[i] = 2 * ref.dW[i] / 8.0;
  EXPECT_LT(vec_rel(slot.to_double_vector(), twice), 1e-5);
}

TEST(OpsCrossEntropy, BatchedShapesAndBf16) {
  const int64_t B = 3, T = 5, H = 8, V = 40;
  Tensor h = random_tensor({B, T, H}, DType::f32, 41), W = random_tensor({V, H}, DType::f32, 42);
  auto tg = make_targets(B * T, V, 6, 43);
  autograd::set_requires_grad(h);
  auto res = ops::cross_entropy(h, W, Tensor::from_vector<int64_t>(tg, {B, T}));
  const Naive ref = naive_ce(h, W, tg, {}, 1.0 / double(res.count));
  EXPECT_NEAR(res.loss.item(), ref.total / double(ref.count), 1e-5);
  autograd::backward(res.loss);
  EXPECT_EQ(autograd::grad(h).shape(), (Shape{B, T, H}));
  EXPECT_LT(vec_rel(autograd::grad(h).to_double_vector(), ref.dh), 1e-5);

  // bf16 storage: compute in f32 on the widened values, so the loss matches the reference on
  // the rounded inputs closely; gradients are rounded to bf16.
  Tensor hb = Tensor::from_floats(h.to_float_vector(), {B * T, H}, DType::bf16);
  Tensor Wb = Tensor::from_floats(W.to_float_vector(), {V, H}, DType::bf16);
  autograd::set_requires_grad(hb);
  autograd::set_requires_grad(Wb);
  ops::CrossEntropyOptions opt;
  opt.chunk_rows = 4;
  opt.chunk_vocab = 16;
  auto rb = ops::cross_entropy(hb, Wb, i64_tensor(tg), Tensor(), opt);
  const Naive refb = naive_ce(hb, Wb, tg, {}, 1.0 / double(rb.count));
  EXPECT_NEAR(rb.loss.item(), refb.total / double(refb.count), 1e-5 * refb.total);
  autograd::backward(rb.loss);
  EXPECT_EQ(autograd::grad(hb).dtype(), DType::bf16);
  EXPECT_EQ(autograd::grad(Wb).dtype(), DType::f32);
  EXPECT_LT(vec_rel(autograd::grad(hb).to_double_vector(), refb.dh), 1e-2);
  EXPECT_LT(vec_rel(autograd::grad(Wb).to_double_vector(), refb.dW), 1e-5);
}

TEST(OpsCrossEntropy, AllRowsIgnoredGivesZeroLossAndGradients) {
  Tensor h = random_tensor({4, 3}, DType::f32, 51), W = random_tensor({6, 3}, DType::f32, 52);
  autograd::set_requires_grad(h);
  auto res = ops::cross_entropy(h, W, i64_tensor({-100, -100, -100, -100}));
  EXPECT_EQ(res.count, 0);
  EXPECT_EQ(res.loss.item(), 0.0);
  autograd::backward(res.loss);
  for (double g : autograd::grad(h).to_double_vector()) EXPECT_EQ(g, 0.0);
}

TEST(OpsCrossEntropy, ScratchMemoryStaysBounded) {
  // Materialized fp32 logits would take N * V * 4 = 24 MB; the tiles need ~2 MB.
  const int64_t N = 300, H = 8, V = 20000;
  Tensor h = random_tensor({N, H}, DType::f32, 61), W = random_tensor({V, H}, DType::f32, 62);
  Tensor slot = Tensor::zeros({V * H}, DType::f32);
  autograd::make_param(W, slot, "w");
  autograd::set_requires_grad(h);
  Tensor tg = i64_tensor(make_targets(N, V, 0, 63));
  const size_t before = memory_stats(Device::cpu()).current_bytes;
  reset_peak_memory(Device::cpu());
  ops::CrossEntropyOptions opt;
  opt.want_topk = true;
  auto res = ops::cross_entropy(h, W, tg, Tensor(), opt);
  autograd::backward(res.loss);
  const size_t extra = memory_stats(Device::cpu()).peak_bytes - before;
  EXPECT_LT(extra, size_t(N * V * 4 / 4)) << "peak extra bytes " << extra;
  EXPECT_GT(res.loss.item(), 0.0);
  EXPECT_TRUE(test::all_finite(slot));
}

TEST(OpsCrossEntropy, BadArgumentsThrow) {
  Tensor h = random_tensor({4, 3}, DType::f32, 71), W = random_tensor({6, 3}, DType::f32, 72);
  Tensor tg = i64_tensor({0, 1, 5, -100});
  expect_error([&] { ops::cross_entropy(random_tensor({3}, DType::f32, 1), W, tg); },
               "[cross_entropy] h must be [..., H]");
  expect_error([&] { ops::cross_entropy(h, random_tensor({6, 4}, DType::f32, 1), tg); }, "W must be [V, 3]");
  expect_error([&] { ops::cross_entropy(h, random_tensor({6, 3}, DType::f64, 1), tg); }, "W is f64 but h is f32");
  expect_error([&] { ops::cross_entropy(h, W, random_tensor({4}, DType::f32, 1)); }, "targets must be i32 or i64");
  expect_error([&] { ops::cross_entropy(h, W, i64_tensor({0, 1, 2})); }, "targets must have 4 elements");
  expect_error(
      [&] {
        ops::cross_entropy(h, W, i64_tensor({0, 6, 1, 2}));
      },
      "targets[1] = 6 is out of range: expected [0, 6) or -100");
  expect_error([&] { ops::cross_entropy(h, W, i64_tensor({0, 1, -1, 2})); }, "targets[2] = -1 is out of range");
  expect_error([&] { ops::cross_entropy(h, W, i64_tensor({-101, 1, 2, 3})); }, "targets[0] = -101");
  expect_error([&] { ops::cross_entropy(h, W, tg, random_tensor({5}, DType::f32, 1)); },
               "weights must have 4 elements");
  expect_error(
      [&] {
        ops::cross_entropy(h, W, tg, Tensor::from_vector<int64_t>({1, 1, 1, 1}, {4}));
      },
      "weights must be floating");
  expect_error([&] { ops::cross_entropy(h, Tensor(), tg); }, "W is undefined");
  expect_error([&] { ops::cross_entropy_logits(random_tensor({5}, DType::f32, 1), i64_tensor({0})); },
               "[cross_entropy_logits] logits must be [..., C]");
  expect_error([&] { ops::cross_entropy_logits(h, i64_tensor({0, 1, 3, 2})); }, "targets[2] = 3 is out of range");
}

// ---- vocabulary bias (MLM decoders): logits = h W^T + b ----------------------------------------

TEST(OpsCrossEntropy, BiasForwardAndBackwardMatchNaiveAcrossChunkings) {
  const int64_t N = 29, H = 12, V = 47;
  for (DType dt : {DType::f32, DType::f64}) {
    const double tol = dt == DType::f64 ? 1e-12 : 1e-5;
    const double grad_tol = dt == DType::f64 ? 2e-7 : 1e-5;
    Tensor h0 = random_tensor({N, H}, dt, 81), W0 = random_tensor({V, H}, dt, 82);
    // A bias large enough to change the softmax noticeably (and the top-k ranks).
    Tensor b0 = random_tensor({V}, dt, 83, -3.f, 3.f);
    auto tg = make_targets(N, V, 6, 84);
    Tensor wts = random_tensor({N}, DType::f32, 85, 0.1f, 1.f);
    const Naive no_bias = naive_ce(h0, W0, tg, wts.to_double_vector(), 1.0);
    const Naive probe = naive_ce(h0, W0, tg, wts.to_double_vector(), 1.0, b0.to_double_vector());
    const Naive ref = naive_ce(h0, W0, tg, wts.to_double_vector(), 1.0 / double(probe.count), b0.to_double_vector());
    ASSERT_GT(std::abs(ref.total - no_bias.total), 0.1 * ref.total);  // the bias matters
    for (auto ch : std::vector<Chunking>{{0, 0}, {8, 16}, {5, 7}, {1, 1}}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " rows " + std::to_string(ch.rows) + " vocab " +
                   std::to_string(ch.vocab));
      Tensor h = h0.clone(), W = W0.clone(), b = b0.clone();
      for (Tensor* t : {&h, &W, &b}) autograd::set_requires_grad(*t);
      ops::CrossEntropyOptions opt;
      opt.want_topk = true;
      opt.chunk_rows = ch.rows;
      opt.chunk_vocab = ch.vocab;
      auto res = ops::cross_entropy_with_bias(h, W, b, i64_tensor(tg), wts, opt);
      EXPECT_NEAR(res.loss.item(), ref.total / double(ref.count), tol * ref.total);
      EXPECT_LT(vec_rel(res.row_loss.to_double_vector(), ref.row_loss), tol);
      EXPECT_EQ(res.topk_hits, ref.hits);
      autograd::backward(res.loss);
      EXPECT_LT(vec_rel(autograd::grad(h).to_double_vector(), ref.dh), grad_tol);
      EXPECT_LT(vec_rel(autograd::grad(W).to_double_vector(), ref.dW), grad_tol);
      EXPECT_LT(vec_rel(autograd::grad(b).to_double_vector(), ref.db), grad_tol);
      EXPECT_EQ(autograd::grad(b).dtype(), dt == DType::f64 ? DType::f64 : DType::f32);
    }
  }
}

TEST(OpsCrossEntropy, BiasHandComputedRow) {
  // One row, H = 1, h = 1, W = 0: logits = b = (0, ln 2, ln 3 ... ) -> softmax p_v = (v+1) / 10
  // for V = 4 (1 + 2 + 3 + 4 = 10). Target 2: loss = -ln 0.3; d b = p - onehot.
  Tensor h = Tensor::from_floats({1.f}, {1, 1}, DType::f64);
  Tensor W = Tensor::zeros({4, 1}, DType::f64);
  Tensor b = Tensor::from_floats({0.f, float(std::log(2.0)), float(std::log(3.0)), float(std::log(4.0))}, {4},
                                 DType::f64);
  // (ln k rounded to float; recompute p from the rounded values)
  auto bv = b.to_double_vector();
  double se = 0;
  for (double x : bv) se += std::exp(x);
  autograd::set_requires_grad(b);
  autograd::set_requires_grad(W);
  auto res = ops::cross_entropy_with_bias(h, W, b, i64_tensor({2}));
  EXPECT_NEAR(res.loss.item(), std::log(se) - bv[2], 1e-12);
  EXPECT_NEAR(res.loss.item(), -std::log(0.3), 1e-6);
  autograd::backward(res.loss);
  auto db = autograd::grad(b).to_double_vector();
  for (int v = 0; v < 4; v++) EXPECT_NEAR(db[size_t(v)], std::exp(bv[size_t(v)]) / se - (v == 2), 1e-12);
  EXPECT_NEAR(db[0], 0.1, 1e-6);
  EXPECT_NEAR(db[2], 0.3 - 1.0, 1e-6);
  // dW[v] = dz_v * h = db[v] here.
  auto dW = autograd::grad(W).to_double_vector();
  for (int v = 0; v < 4; v++) EXPECT_NEAR(dW[size_t(v)], db[size_t(v)], 1e-12);
}

TEST(OpsCrossEntropy, BiasGradCheckFp64) {
  const int64_t N = 6, H = 4, V = 9;
  Tensor h = random_tensor({N, H}, DType::f64, 91, -1.5f, 1.5f), W = random_tensor({V, H}, DType::f64, 92, -1.5f, 1.5f);
  Tensor b = random_tensor({V}, DType::f64, 93, -2.f, 2.f);
  Tensor tg = i64_tensor(make_targets(N, V, 3, 94));  // rows 2 and 5 ignored
  Tensor wts = random_tensor({N}, DType::f32, 95, 0.1f, 1.f);
  for (bool weighted : {false, true})
    for (auto ch : std::vector<Chunking>{{0, 0}, {4, 2}}) {
      ops::CrossEntropyOptions opt;
      opt.chunk_rows = ch.rows;
      opt.chunk_vocab = ch.vocab;
      auto fn = [&](const std::vector<Tensor>& x) {
        return ops::cross_entropy_with_bias(x[0], x[1], x[2], x[3], weighted ? x[4] : Tensor(), opt).loss;
      };
      auto res = test::gradcheck(fn, {h, W, b, tg, wts}, 1e-6, {true, true, true, false, false});
      EXPECT_LT(res.max_rel_error, 1e-6) << "weighted " << weighted << " chunks " << ch.rows << "x" << ch.vocab
                                         << ": " << res.worst;
    }
}

TEST(OpsCrossEntropy, BiasGradientAccumulatesIntoSlotAndUndefinedBiasIsPlain) {
  const int64_t N = 10, H = 6, V = 25;
  Tensor h = random_tensor({N, H}, DType::f32, 101), W = random_tensor({V, H}, DType::f32, 102);
  Tensor b = random_tensor({V}, DType::f32, 103, -1.f, 1.f);
  Tensor w_slot = Tensor::zeros({V * H}, DType::f32), b_slot = Tensor::zeros({V}, DType::f32);
  autograd::make_param(W, w_slot, "cls.predictions.decoder.weight");
  autograd::make_param(b, b_slot, "cls.predictions.bias");
  auto tg = make_targets(N, V, 4, 104);
  const Naive ref = naive_ce(h, W, tg, {}, 1.0, b.to_double_vector());
  ops::CrossEntropyOptions opt;
  opt.chunk_vocab = 8;
  opt.chunk_rows = 3;
  for (int micro = 0; micro < 2; micro++)
    autograd::backward(ops::cross_entropy_with_bias(h, W, b, i64_tensor(tg), Tensor(), opt).loss);
  std::vector<double> twice_db(ref.db.size()), twice_dW(ref.dW.size());
  for (size_t i = 0; i < twice_db.size(); i++) twice_db[i] = 2 * ref.db[i] / double(ref.count);
  for (size_t i = 0; i < twice_dW.size(); i++) twice_dW[i] = 2 * ref.dW[i] / double(ref.count);
  EXPECT_LT(vec_rel(b_slot.to_double_vector(), twice_db), 1e-5);
  EXPECT_LT(vec_rel(w_slot.to_double_vector(), twice_dW), 1e-5);
  // The column sums of softmax - onehot over the non-ignored rows sum to 0 over the vocabulary.
  double total = 0;
  for (double x : b_slot.to_double_vector()) total += x;
  EXPECT_NEAR(total, 0.0, 1e-5);

  // An undefined bias is exactly cross_entropy (same loss bits).
  Tensor h2 = random_tensor({N, H}, DType::f32, 105);
  auto plain = ops::cross_entropy(h2, W, i64_tensor(tg), Tensor(), opt);
  auto none = ops::cross_entropy_with_bias(h2, W, Tensor(), i64_tensor(tg), Tensor(), opt);
  EXPECT_EQ(plain.loss.item(), none.loss.item());
  autograd::clear_tape();
}

TEST(OpsCrossEntropy, BiasBadArgumentsThrow) {
  Tensor h = random_tensor({4, 3}, DType::f32, 111), W = random_tensor({6, 3}, DType::f32, 112);
  Tensor tg = i64_tensor({0, 1, 5, -100});
  expect_error([&] { ops::cross_entropy_with_bias(h, W, random_tensor({5}, DType::f32, 1), tg); },
               "[cross_entropy] bias must be [6] (one per row of W), got [5]");
  expect_error([&] { ops::cross_entropy_with_bias(h, W, random_tensor({6, 1}, DType::f32, 1), tg); },
               "bias must be [6]");
  expect_error([&] { ops::cross_entropy_with_bias(h, W, random_tensor({6}, DType::f64, 1), tg); },
               "bias is f64 but W is f32");
  expect_error([&] { ops::cross_entropy_with_bias(h, W, Tensor::from_vector<int64_t>({1, 2, 3, 4, 5, 6}, {6}), tg); },
               "bias must be floating");
}
