// Fused chunked cross-entropy on CUDA against the CPU reference: loss, dh, dW (f32 <= 1e-5,
// bf16 <= 1e-2), identical top-k counts, parameter-slot accumulation, bounded scratch memory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "lmforge/autograd/tape.h"
#include "lmforge/core/device_memory.h"
#include "lmforge/ops/cross_entropy.h"
#include "op_test_util.h"
#include "test_util.h"

using namespace lmf;
using test::random_tensor;

namespace {

// Targets in [0, V); every `ignore_every`-th row (offset 1) is -100.
Tensor make_targets(int64_t N, int64_t V, int ignore_every, uint64_t seed, DType dt = DType::i64) {
  auto u = random_tensor({N}, DType::f64, seed, 0.f, 1.f).to_double_vector();
  std::vector<float> t(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; n++)
    t[size_t(n)] = (ignore_every > 0 && n % ignore_every == 1)
                       ? -100.f
                       : float(std::min<int64_t>(V - 1, int64_t(u[size_t(n)] * V)));
  return Tensor::from_floats(t, {N}, dt);
}

// Values k/16, k in [-16, 16]: exact in bf16, and every dot product of up to 2^14 terms is exact
// in fp32, so CPU and CUDA logits agree bit for bit whatever the summation order.
Tensor grid_tensor(const Shape& s, uint64_t seed) {
  auto v = random_tensor(s, DType::f32, seed, -1.f, 1.f).to_float_vector();
  for (auto& x : v) x = std::round(x * 16.f) / 16.f;
  return Tensor::from_floats(v, s, DType::f32);
}

struct Case {
  int64_t N, H, V, chunk_rows, chunk_vocab;
  bool weighted, i32_targets;
};

std::string case_name(const Case& c) {
  return detail::concat("N", c.N, " H", c.H, " V", c.V, " tiles ", c.chunk_rows, "x", c.chunk_vocab);
}

}  // namespace

TEST(OpsCrossEntropyCuda, MatchesCpuLossAndGradients) {
  const std::vector<Case> cases = {
      {37, 40, 1000, 0, 0, false, false},   // default tiles: one tile
      {37, 37, 1000, 16, 300, true, true},  // odd H, row and vocabulary tails, vocab % 8 != 0
      {300, 64, 5003, 128, 1024, true, false},
      {2048, 256, 32011, 0, 0, true, false},  // default tiles: two vocabulary chunks with a tail
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(case_name(c));
    Tensor h = random_tensor({c.N, c.H}, DType::f32, 1);
    const float ws = 2.f / std::sqrt(float(c.H));
    Tensor W = random_tensor({c.V, c.H}, DType::f32, 2, -ws, ws);
    Tensor tg = make_targets(c.N, c.V, 7, 3, c.i32_targets ? DType::i32 : DType::i64);
    // Weights on a 1/8 grid: exact in bf16 too, so only the kernels differ between devices.
    Tensor wts;
    if (c.weighted) {
      auto v = random_tensor({c.N}, DType::f32, 4, 0.1f, 1.f).to_float_vector();
      for (auto& x : v) x = std::ceil(x * 8.f) / 8.f;
      wts = Tensor::from_floats(v, {c.N}, DType::f32);
    }
    ops::CrossEntropyOptions opt;
    opt.chunk_rows = c.chunk_rows;
    opt.chunk_vocab = c.chunk_vocab;
    auto fn = [&](const std::vector<Tensor>& x) { return ops::cross_entropy(x[0], x[1], x[2], x[3], opt).loss; };
    for (DType dt : {DType::f32, DType::bf16}) {
      const double tol = dt == DType::f32 ? 1e-5 : 1e-2;
      auto r = test::compare_cpu_cuda(fn, {h, W, tg, wts}, dt);
      EXPECT_LT(r.out_rel, tol) << dtype_name(dt) << " loss";
      EXPECT_LT(r.grad_rel[0], tol) << dtype_name(dt) << " dh";
      EXPECT_LT(r.grad_rel[1], tol) << dtype_name(dt) << " dW";
    }
    // Per-row losses in f32.
    auto cpu = ops::cross_entropy(h, W, tg, wts, opt);
    auto gpu = ops::cross_entropy(h.to(Device::cuda(0)), W.to(Device::cuda(0)), tg.to(Device::cuda(0)),
                                  wts.defined() ? wts.to(Device::cuda(0)) : Tensor(), opt);
    EXPECT_LT(test::rel_error(gpu.row_loss, cpu.row_loss), 1e-5);
    EXPECT_EQ(gpu.count, cpu.count);
  }
}

TEST(OpsCrossEntropyCuda, TopKCountsIdenticalToCpu) {
  const int64_t N = 500, H = 64, V = 3001;
  Tensor h = grid_tensor({N, H}, 11), W = grid_tensor({V, H}, 12);
  // Targets at known ranks 0..14 of each row (ties included), from the exact host logits.
  auto hv = h.to_double_vector(), wv = W.to_double_vector();
  std::vector<float> tg(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; n++) {
    std::vector<std::pair<double, int64_t>> z(static_cast<size_t>(V));
    for (int64_t v = 0; v < V; v++) {
      double s = 0;
      for (int64_t k = 0; k < H; k++) s += hv[size_t(n * H + k)] * wv[size_t(v * H + k)];
      z[size_t(v)] = {-s, v};
    }
    std::sort(z.begin(), z.end());
    tg[size_t(n)] = n % 23 == 5 ? -100.f : float(z[size_t(n % 15)].second);
  }
  Tensor targets = Tensor::from_floats(tg, {N}, DType::i64);
  for (auto tiles : std::vector<std::pair<int64_t, int64_t>>{{0, 0}, {128, 1000}, {77, 333}}) {
    ops::CrossEntropyOptions opt;
    opt.want_topk = true;
    opt.chunk_rows = tiles.first;
    opt.chunk_vocab = tiles.second;
    auto cpu = ops::cross_entropy(h, W, targets, Tensor(), opt);
    EXPECT_GT(cpu.topk_hits[0], 0);
    EXPECT_LT(cpu.topk_hits[2], cpu.count);
    for (DType dt : {DType::f32, DType::bf16}) {  // grid values are exact in bf16 as well
      Tensor hd = Tensor::from_floats(h.to_float_vector(), {N, H}, dt, Device::cuda(0));
      Tensor Wd = Tensor::from_floats(W.to_float_vector(), {V, H}, dt, Device::cuda(0));
      auto gpu = ops::cross_entropy(hd, Wd, targets.to(Device::cuda(0)), Tensor(), opt);
      EXPECT_EQ(gpu.topk_hits, cpu.topk_hits) << dtype_name(dt) << " tiles " << tiles.first << "x" << tiles.second;
      EXPECT_LT(test::rel_error(gpu.row_loss, cpu.row_loss), 1e-5) << dtype_name(dt);
    }
  }
}

TEST(OpsCrossEntropyCuda, ParameterSlotAccumulatesOnDevice) {
  const int64_t N = 200, H = 48, V = 3000;
  Tensor h = random_tensor({N, H}, DType::f32, 21), W = random_tensor({V, H}, DType::f32, 22, -0.3f, 0.3f);
  Tensor tg = make_targets(N, V, 5, 23);
  ops::CrossEntropyOptions opt;
  opt.chunk_vocab = 1024;
  // CPU reference gradient of W (f32).
  Tensor Wc = W.clone();
  autograd::set_requires_grad(Wc);
  autograd::backward(ops::cross_entropy(h, Wc, tg, Tensor(), opt).loss);
  std::vector<double> twice = autograd::grad(Wc).to_double_vector();
  for (auto& x : twice) x *= 2;
  // bf16 compute copy with an fp32 slot on the device, two micro-batches.
  Tensor Wd = Tensor::from_floats(W.to_float_vector(), {V, H}, DType::bf16, Device::cuda(0));
  Tensor slot = Tensor::zeros({V * H}, DType::f32, Device::cuda(0));
  autograd::make_param(Wd, slot, "lm_head.weight");
  Tensor hd = Tensor::from_floats(h.to_float_vector(), {N, H}, DType::bf16, Device::cuda(0));
  for (int micro = 0; micro < 2; micro++)
    autograd::backward(ops::cross_entropy(hd, Wd, tg.to(Device::cuda(0)), Tensor(), opt).loss);
  EXPECT_LT(test::rel_error(slot.to_double_vector(), twice), 1e-2);
}

TEST(OpsCrossEntropyCuda, ScratchMemoryIsBounded) {
  // Materialized fp32 logits would take N * V * 4 = 800 MB; the default tile is 128 MiB.
  const int64_t N = 4096, H = 64, V = 50000;
  Device dev = Device::cuda(0);
  Tensor h = random_tensor({N, H}, DType::bf16, 31, -1.f, 1.f, dev);
  Tensor W = random_tensor({V, H}, DType::bf16, 32, -0.25f, 0.25f, dev);
  Tensor slot = Tensor::zeros({V * H}, DType::f32, dev);
  autograd::make_param(W, slot, "w");
  autograd::set_requires_grad(h);
  Tensor tg = make_targets(N, V, 0, 33).to(dev);
  synchronize(dev);
  const size_t before = memory_stats(dev).current_bytes;
  reset_peak_memory(dev);
  ops::CrossEntropyOptions tiled;
  tiled.logits_cache_mb = 0;  // the bounded-scratch path (the default keeps <= 2 GiB of logits)
  auto res = ops::cross_entropy(h, W, tg, Tensor(), tiled);
  autograd::backward(res.loss);
  synchronize(dev);
  const size_t extra = memory_stats(dev).peak_bytes - before;
  EXPECT_LT(extra, size_t(200) << 20) << "peak extra bytes " << extra;
  EXPECT_GT(res.loss.item(), 0.0);
  EXPECT_TRUE(test::all_finite(slot));
}

// The whole-logits buffer (kept from the forward, read by the backward instead of a second GEMM)
// gives what the tiled path gives: loss and per-row losses to fp32 rounding, top-k exactly, gradients to the last
// bits of a different GEMM split; with weights, bias, ignored rows and a vocabulary that is not
// a multiple of 8. Its memory is the f32 matrix and no more than that.
TEST(OpsCrossEntropyCuda, CachedLogitsMatchTiledPath) {
  const int64_t N = 1000, H = 96, V = 5003;
  Device dev = Device::cuda(0);
  for (DType dt : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dt));
    Tensor h0 = random_tensor({N, H}, dt, 41, -1.f, 1.f, dev);
    Tensor W0 = random_tensor({V, H}, dt, 42, -0.3f, 0.3f, dev);
    Tensor b0 = random_tensor({V}, dt, 43, -0.5f, 0.5f, dev);
    Tensor tg = make_targets(N, V, 7, 44).to(dev);
    Tensor wts = random_tensor({N}, DType::f32, 45, 0.1f, 1.f, dev);
    struct Out {
      ops::CrossEntropyResult r;
      std::vector<double> dh, dW, db;
      size_t extra;
    };
    auto run = [&](int64_t cache_mb) {
      Tensor h = h0.clone(), W = W0.clone(), b = b0.clone();
      for (Tensor* t : {&h, &W, &b}) autograd::set_requires_grad(*t);
      ops::CrossEntropyOptions opt;
      opt.want_topk = true;
      opt.logits_cache_mb = cache_mb;
      synchronize(dev);
      const size_t before = memory_stats(dev).current_bytes;
      reset_peak_memory(dev);
      Out o;
      o.r = ops::cross_entropy_with_bias(h, W, b, tg, wts, opt);
      autograd::backward(o.r.loss);
      synchronize(dev);
      o.extra = memory_stats(dev).peak_bytes - before;
      o.dh = autograd::grad(h).to_double_vector();
      o.dW = autograd::grad(W).to_double_vector();
      o.db = autograd::grad(b).to_double_vector();
      return o;
    };
    const Out tiled = run(0), cached = run(2048);
    EXPECT_NEAR(cached.r.loss.item(), tiled.r.loss.item(), 1e-6 * std::fabs(tiled.r.loss.item()));
    EXPECT_LT(test::rel_error(cached.r.row_loss.to_double_vector(), tiled.r.row_loss.to_double_vector()), 1e-6);
    EXPECT_EQ(cached.r.topk_hits, tiled.r.topk_hits);
    const double tol = dt == DType::f32 ? 1e-5 : 1e-2;
    EXPECT_LT(test::rel_error(cached.dh, tiled.dh), tol);
    EXPECT_LT(test::rel_error(cached.dW, tiled.dW), tol);
    EXPECT_LT(test::rel_error(cached.db, tiled.db), tol);
    const size_t matrix = size_t(N) * size_t((V + 7) / 8 * 8) * 4;
    EXPECT_GE(cached.extra, matrix);
    EXPECT_LT(cached.extra, matrix + (size_t(64) << 20));
  }
}

// The MLM decoder's vocabulary bias: logits = h W^T + b; loss, dh, dW and db against the CPU,
// including vocabulary tails and a bf16 bias with an f32 slot on the device.
TEST(OpsCrossEntropyCuda, BiasMatchesCpu) {
  const std::vector<Case> cases = {
      {37, 40, 1000, 0, 0, false, false},
      {37, 37, 1001, 16, 300, true, true},   // tails: rows, vocabulary chunk, V % 4 != 0
      {300, 64, 5003, 128, 1024, true, false},
      {2048, 128, 32011, 0, 0, false, false},  // default tiles: two vocabulary chunks
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(case_name(c));
    Tensor h = random_tensor({c.N, c.H}, DType::f32, 41);
    const float ws = 2.f / std::sqrt(float(c.H));
    Tensor W = random_tensor({c.V, c.H}, DType::f32, 42, -ws, ws);
    Tensor b = random_tensor({c.V}, DType::f32, 43, -2.f, 2.f);
    Tensor tg = make_targets(c.N, c.V, 7, 44, c.i32_targets ? DType::i32 : DType::i64);
    Tensor wts;
    if (c.weighted) {
      auto v = random_tensor({c.N}, DType::f32, 45, 0.1f, 1.f).to_float_vector();
      for (auto& x : v) x = std::ceil(x * 8.f) / 8.f;
      wts = Tensor::from_floats(v, {c.N}, DType::f32);
    }
    ops::CrossEntropyOptions opt;
    opt.chunk_rows = c.chunk_rows;
    opt.chunk_vocab = c.chunk_vocab;
    auto fn = [&](const std::vector<Tensor>& x) {
      return ops::cross_entropy_with_bias(x[0], x[1], x[2], x[3], x[4], opt).loss;
    };
    for (DType dt : {DType::f32, DType::bf16}) {
      const double tol = dt == DType::f32 ? 1e-5 : 1e-2;
      auto r = test::compare_cpu_cuda(fn, {h, W, b, tg, wts}, dt);
      EXPECT_LT(r.out_rel, tol) << dtype_name(dt) << " loss";
      EXPECT_LT(r.grad_rel[0], tol) << dtype_name(dt) << " dh";
      EXPECT_LT(r.grad_rel[1], tol) << dtype_name(dt) << " dW";
      EXPECT_LT(r.grad_rel[2], tol) << dtype_name(dt) << " db";
    }
  }
  // Top-k with a bias on exact grid values: identical counts on both devices.
  const int64_t N = 300, H = 32, V = 2003;
  Tensor h = grid_tensor({N, H}, 46), W = grid_tensor({V, H}, 47), b = grid_tensor({V}, 48);
  Tensor tg = make_targets(N, V, 9, 49);
  ops::CrossEntropyOptions opt;
  opt.want_topk = true;
  opt.chunk_vocab = 700;
  auto cpu = ops::cross_entropy_with_bias(h, W, b, tg, Tensor(), opt);
  const Device dev = Device::cuda(0);
  auto gpu = ops::cross_entropy_with_bias(h.to(dev), W.to(dev), b.to(dev), tg.to(dev), Tensor(), opt);
  EXPECT_EQ(gpu.topk_hits, cpu.topk_hits);
  EXPECT_LT(test::rel_error(gpu.row_loss, cpu.row_loss), 1e-5);

  // bf16 bias parameter with an fp32 slot: two micro-batches accumulate 2x the CPU gradient.
  Tensor bc = b.clone();
  autograd::set_requires_grad(bc);
  autograd::backward(ops::cross_entropy_with_bias(h, W, bc, tg, Tensor(), opt).loss);
  std::vector<double> twice = autograd::grad(bc).to_double_vector();
  for (auto& x : twice) x *= 2;
  Tensor bd = Tensor::from_floats(b.to_float_vector(), {V}, DType::bf16, dev);
  Tensor slot = Tensor::zeros({V}, DType::f32, dev);
  autograd::make_param(bd, slot, "cls.predictions.bias");
  Tensor hd = Tensor::from_floats(h.to_float_vector(), {N, H}, DType::bf16, dev);
  Tensor Wd = Tensor::from_floats(W.to_float_vector(), {V, H}, DType::bf16, dev);
  for (int micro = 0; micro < 2; micro++)
    autograd::backward(ops::cross_entropy_with_bias(hd, Wd, bd, tg.to(dev), Tensor(), opt).loss);
  EXPECT_LT(test::rel_error(slot.to_double_vector(), twice), 1e-2);
}
