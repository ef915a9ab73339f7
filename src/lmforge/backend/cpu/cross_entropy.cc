// CPU reference: fused, chunked cross-entropy over logits = h W^T + b (contract in
// kernel_list.inc; the bias b is optional: MLM decoders have one, LM heads do not).
//
// The algorithm, which the CUDA path follows step by step:
//  forward, for each tile of R rows x Vc vocabulary entries:
//    z = h[rows] W[chunk]^T + b[chunk]           (one GEMM into an R x Vc scratch buffer)
//    per row, fold the tile into a running max m and sum s = sum exp(z - m): the online
//    log-sum-exp ("Online normalizer calculation for softmax", Milakov & Gimelshein 2018);
//    count the tile's logits strictly greater than the target logit.
//  then lse = m + log s and loss = w (lse - z_target); ignored rows (target -100) get loss 0.
//  backward recomputes every tile: dz = g w (softmax - onehot) = g w (exp(z - lse) - [v = t]),
//  dh[rows] += dz W[chunk] (overwritten output, accumulated over chunks in the compute type),
//  dW_acc[chunk] += dz^T h[rows], dbias_acc[chunk] += column sums of dz.
// Scratch memory is R x Vc + (R + Vc) x H elements whatever N and V are (tile sizes: see
// backend/cross_entropy_chunks.h); it is allocated as CPU Tensors so memory_stats(cpu) sees it.
//
// Top-k: z_target is computed once per row by a direct dot product before the vocabulary sweep,
// so one pass suffices: rank = #{v != target : z_v > z_target}, hit@k iff rank < k. Ties count
// in the target's favour (strictly greater), and the target's own tile entry is skipped by index
// so that rounding differences between the GEMM and the dot product never let the target outrank
// itself. Ignored rows are not counted.
//
// The bias enters in the compute type (added to each GEMM tile entry; the target dot product adds
// it in fp64 before rounding).
// Compute type: f32 for f32/bf16/f16 inputs (bf16/f16 tiles are widened to f32 for cblas_sgemm),
// f64 for f64 inputs (cblas_dgemm); exponentials are taken in the compute type, the running
// sums and the target dot products are fp64.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "lmforge/backend/cpu/cpu_util.h"
#include "lmforge/backend/cross_entropy_chunks.h"
#include "lmforge/backend/kernels.h"

namespace lmf {

namespace {
thread_local CrossEntropyChunks g_chunks;
}  // namespace

void set_cross_entropy_chunks(CrossEntropyChunks c) { g_chunks = c; }
CrossEntropyChunks cross_entropy_chunks() { return g_chunks; }

namespace cpu {
namespace {

constexpr int64_t kIgnoreIndex = -100;
constexpr int64_t kDefaultRows = 128, kDefaultVocab = 4096;
constexpr int kTopK[3] = {1, 3, 10};

struct Tiles {
  int64_t rows, vocab;
};

Tiles tiles_for(int64_t N, int64_t V) {
  CrossEntropyChunks c = cross_entropy_chunks();
  int64_t r = c.rows > 0 ? c.rows : kDefaultRows;
  int64_t v = c.vocab > 0 ? c.vocab : kDefaultVocab;
  return {std::max<int64_t>(1, std::min(r, N)), std::max<int64_t>(1, std::min(v, V))};
}

// Row-major C = alpha op(A) op(B) + beta C for the two compute types.
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb,
          float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(M), int(N), int(K),
              1.f, A, int(lda), B, int(ldb), beta, C, int(ldc));
}
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const double* A, int64_t lda, const double* B, int64_t ldb,
          double beta, double* C, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(M), int(N), int(K),
              1.0, A, int(lda), B, int(ldb), beta, C, int(ldc));
}

// A scratch buffer of n elements of type C, held by a CPU Tensor (counted by memory_stats).
template <class C>
struct Scratch {
  explicit Scratch(int64_t n) : t(Tensor::empty({std::max<int64_t>(n, 1)}, dtype_of<C>::value)), p(t.data<C>()) {}
  Tensor t;
  C* p;
};

// src[0, n) in the compute type C: src itself when T is C, else widened into buf.
template <class T, class C>
const C* as_compute(const T* src, int64_t n, C* buf) {
  if constexpr (std::is_same_v<T, C>) {
    (void)n;
    (void)buf;
    return src;
  } else {
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) buf[i] = load(src[i]);
    return buf;
  }
}

// What forward and backward share: sizes, targets and weights.
struct Rows {
  int64_t N, H, V;
  const void* targets;
  DType target_dtype;
  const float* weights;  // null: every weight is 1
  bool has_bias;

  // All targets as int64, checked serially (an exception must not leave an OpenMP region).
  std::vector<int64_t> load_targets() const {
    std::vector<int64_t> t(static_cast<size_t>(N));
    for (int64_t n = 0; n < N; n++) {
      t[n] = load_index(targets, n, target_dtype);
      LMF_CHECK(t[n] == kIgnoreIndex || (t[n] >= 0 && t[n] < V), "cross_entropy: target ", t[n],
                " out of range (the ops layer validates)");
    }
    return t;
  }
  double weight(int64_t n) const { return weights ? double(weights[n]) : 1.0; }
};

Rows make_rows(const Tensor& h, const Tensor& W, const Tensor& bias, const Tensor& targets, const Tensor& weights) {
  LMF_CHECK(h.dim() == 2 && W.dim() == 2 && h.size(1) == W.size(1) && targets.numel() == h.size(0));
  LMF_CHECK(h.dtype() == W.dtype());
  LMF_CHECK(!bias.defined() || (bias.dtype() == h.dtype() && bias.numel() == W.size(0) && bias.is_contiguous()));
  LMF_CHECK(!weights.defined() || (weights.dtype() == DType::f32 && weights.numel() == h.size(0)));
  return {h.size(0),       h.size(1),
          W.size(0),       targets.data_ptr(),
          targets.dtype(), weights.defined() ? weights.data<float>() : nullptr,
          bias.defined()};
}

// The bias in the compute type (empty when there is none).
template <class T, class C = acc_t<T>>
std::vector<C> bias_in_compute_type(const Tensor& bias) {
  std::vector<C> b;
  if (!bias.defined()) return b;
  const T* pb = bias.data<T>();
  b.resize(size_t(bias.numel()));
  for (size_t i = 0; i < b.size(); i++) b[i] = C(load(pb[i]));
  return b;
}

// z[i * vc + c] += b[v0 + c] for the rb x vc tile.
template <class C>
void add_bias(C* z, int64_t rb, int64_t vc, const C* b) {
#pragma omp parallel for if (rb * vc > 16384)
  for (int64_t i = 0; i < rb; i++)
    for (int64_t c = 0; c < vc; c++) z[i * vc + c] += b[c];
}

template <class T>
void forward_impl(const Tensor& h, const Tensor& W, const Tensor& bias, const Rows& P, const Tensor& lse,
                  const Tensor& row_loss, const Tensor& topk_hits) {
  using C = acc_t<T>;
  const int64_t N = P.N, H = P.H, V = P.V;
  const Tiles tiles = tiles_for(N, V);
  const T* ph = h.data<T>();
  const T* pw = W.data<T>();
  const bool want_topk = topk_hits.defined();
  const std::vector<C> b = bias_in_compute_type<T>(bias);

  // Target logits by direct dot products, rounded to the compute type like a tile entry.
  const std::vector<int64_t> tgt = P.load_targets();
  std::vector<C> z_target(size_t(N), C(0));
#pragma omp parallel for if (N * H > 65536)
  for (int64_t n = 0; n < N; n++) {
    if (tgt[n] == kIgnoreIndex) continue;
    double acc = 0;
    for (int64_t k = 0; k < H; k++) acc += double(load(ph[n * H + k])) * double(load(pw[tgt[n] * H + k]));
    if (P.has_bias) acc += double(b[size_t(tgt[n])]);
    z_target[n] = C(acc);
  }

  std::vector<double> run_max(size_t(N), -std::numeric_limits<double>::infinity()), run_sum(size_t(N), 0.0);
  std::vector<int64_t> greater(size_t(N), 0);
  constexpr bool widen = !std::is_same_v<T, C>;
  Scratch<C> hbuf(widen ? tiles.rows * H : 0), wbuf(widen ? tiles.vocab * H : 0);
  Scratch<C> logits(tiles.rows * tiles.vocab);

  for (int64_t r0 = 0; r0 < N; r0 += tiles.rows) {
    const int64_t rb = std::min(tiles.rows, N - r0);
    const C* hb = as_compute(ph + r0 * H, rb * H, hbuf.p);
    for (int64_t v0 = 0; v0 < V; v0 += tiles.vocab) {
      const int64_t vc = std::min(tiles.vocab, V - v0);
      const C* wb = as_compute(pw + v0 * H, vc * H, wbuf.p);
      gemm(false, true, rb, vc, H, hb, H, wb, H, C(0), logits.p, vc);
      if (P.has_bias) add_bias(logits.p, rb, vc, b.data() + v0);
#pragma omp parallel for if (rb * vc > 16384)
      for (int64_t i = 0; i < rb; i++) {
        const int64_t n = r0 + i;
        const C* z = logits.p + i * vc;
        C tile_max = -std::numeric_limits<C>::infinity();
        for (int64_t c = 0; c < vc; c++) tile_max = std::max(tile_max, z[c]);
        // exp in the compute type (float exp is much cheaper; each term is in (0, 1]), sums in fp64.
        double tile_sum = 0;
        for (int64_t c = 0; c < vc; c++) tile_sum += double(std::exp(z[c] - tile_max));
        const double m = std::max(run_max[n], double(tile_max));
        run_sum[n] = run_sum[n] * std::exp(run_max[n] - m) + tile_sum * std::exp(double(tile_max) - m);
        run_max[n] = m;
        if (want_topk && tgt[n] != kIgnoreIndex) {
          const int64_t own = tgt[n] - v0;  // the target's column in this tile (may be outside)
          int64_t cnt = 0;
          for (int64_t c = 0; c < vc; c++) cnt += (c != own && z[c] > z_target[n]);
          greater[n] += cnt;
        }
      }
    }
  }

  C* plse = lse.data<C>();
  C* ploss = row_loss.data<C>();
  int64_t hits[3] = {0, 0, 0};
  for (int64_t n = 0; n < N; n++) {
    const double l = run_max[n] + std::log(run_sum[n]);
    plse[n] = C(l);
    const bool valid = tgt[n] != kIgnoreIndex;
    ploss[n] = valid ? C(P.weight(n) * (l - double(z_target[n]))) : C(0);
    if (want_topk && valid)
      for (int j = 0; j < 3; j++) hits[j] += greater[n] < kTopK[j];
  }
  if (want_topk) {
    LMF_CHECK(topk_hits.dtype() == DType::i64 && topk_hits.numel() == 3);
    for (int j = 0; j < 3; j++) topk_hits.data<int64_t>()[j] = hits[j];
  }
}

template <class T>
void backward_impl(const Tensor& h, const Tensor& W, const Tensor& bias, const Rows& P, const Tensor& lse,
                   float grad_scale, const Tensor& dh, const Tensor& dW_acc, const Tensor& dbias_acc) {
  using C = acc_t<T>;
  const int64_t N = P.N, H = P.H, V = P.V;
  const Tiles tiles = tiles_for(N, V);
  const T* ph = h.data<T>();
  const T* pw = W.data<T>();
  const C* plse = lse.data<C>();
  T* pdh = dh.defined() ? dh.data<T>() : nullptr;
  C* pdw = dW_acc.defined() ? dW_acc.data<C>() : nullptr;
  C* pdb = dbias_acc.defined() ? dbias_acc.data<C>() : nullptr;
  if (!pdh && !pdw && !pdb) return;

  const std::vector<int64_t> tgt = P.load_targets();
  const std::vector<C> b = bias_in_compute_type<T>(bias);
  constexpr bool widen = !std::is_same_v<T, C>;
  Scratch<C> hbuf(widen ? tiles.rows * H : 0), wbuf(widen ? tiles.vocab * H : 0);
  Scratch<C> dh_buf(widen && pdh ? tiles.rows * H : 0);
  Scratch<C> logits(tiles.rows * tiles.vocab);

  for (int64_t r0 = 0; r0 < N; r0 += tiles.rows) {
    const int64_t rb = std::min(tiles.rows, N - r0);
    const C* hb = as_compute(ph + r0 * H, rb * H, hbuf.p);
    // dh of these rows accumulates over the chunks in the compute type, then is stored once.
    C* dh_acc = nullptr;
    if (pdh) {
      if constexpr (widen)
        dh_acc = dh_buf.p;
      else
        dh_acc = pdh + r0 * H;
      std::fill(dh_acc, dh_acc + rb * H, C(0));
    }
    for (int64_t v0 = 0; v0 < V; v0 += tiles.vocab) {
      const int64_t vc = std::min(tiles.vocab, V - v0);
      const C* wb = as_compute(pw + v0 * H, vc * H, wbuf.p);
      gemm(false, true, rb, vc, H, hb, H, wb, H, C(0), logits.p, vc);
      if (P.has_bias) add_bias(logits.p, rb, vc, b.data() + v0);
#pragma omp parallel for if (rb * vc > 16384)
      for (int64_t i = 0; i < rb; i++) {
        const int64_t n = r0 + i;
        const int64_t t = tgt[n];
        C* z = logits.p + i * vc;  // overwritten by dz in place
        const double coef = t == kIgnoreIndex ? 0.0 : double(grad_scale) * P.weight(n);
        if (coef == 0.0) {
          std::fill(z, z + vc, C(0));
          continue;
        }
        const C l = plse[n], cf = C(coef);
        for (int64_t c = 0; c < vc; c++) z[c] = cf * (std::exp(z[c] - l) - (v0 + c == t ? C(1) : C(0)));
      }
      if (dh_acc) gemm(false, false, rb, H, vc, logits.p, vc, wb, H, C(1), dh_acc, H);
      if (pdw) gemm(true, false, vc, H, rb, logits.p, vc, hb, H, C(1), pdw + v0 * H, H);
      if (pdb) {
        // Column sums of dz, rows in order (deterministic), into the accumulator.
#pragma omp parallel for if (rb * vc > 16384)
        for (int64_t c = 0; c < vc; c++) {
          C s = 0;
          for (int64_t i = 0; i < rb; i++) s += logits.p[i * vc + c];
          pdb[v0 + c] += s;
        }
      }
    }
    if constexpr (widen) {
      if (pdh)
        for (int64_t i = 0; i < rb * H; i++) pdh[r0 * H + i] = store<T>(dh_acc[i]);
    }
  }
}

DType acc_dtype_of(DType t) { return t == DType::f64 ? DType::f64 : DType::f32; }

}  // namespace

void cross_entropy_forward(const Tensor& h, const Tensor& W, const Tensor& bias, const Tensor& targets,
                           const Tensor& weights, const Tensor& lse, const Tensor& row_loss, const Tensor& topk_hits,
                           const Tensor& /*logits: a CUDA buffer; the reference always tiles*/) {
  const Rows P = make_rows(h, W, bias, targets, weights);
  LMF_CHECK(lse.dtype() == acc_dtype_of(h.dtype()) && row_loss.dtype() == lse.dtype());
  LMF_CHECK(lse.numel() == P.N && row_loss.numel() == P.N);
  dispatch_floating(h.dtype(), "cross_entropy_forward",
                    [&]<class T>() { forward_impl<T>(h, W, bias, P, lse, row_loss, topk_hits); });
}

void cross_entropy_backward(const Tensor& h, const Tensor& W, const Tensor& bias, const Tensor& targets,
                            const Tensor& weights, const Tensor& lse, float grad_scale, const Tensor& dh,
                            const Tensor& dW_acc, const Tensor& dbias_acc, const Tensor& /*logits*/) {
  const Rows P = make_rows(h, W, bias, targets, weights);
  LMF_CHECK(lse.dtype() == acc_dtype_of(h.dtype()) && lse.numel() == P.N);
  LMF_CHECK(!dh.defined() || (dh.dtype() == h.dtype() && dh.numel() == h.numel()));
  LMF_CHECK(!dW_acc.defined() || (dW_acc.dtype() == acc_dtype_of(h.dtype()) && dW_acc.numel() == W.numel()));
  LMF_CHECK(!dbias_acc.defined() ||
            (dbias_acc.dtype() == acc_dtype_of(h.dtype()) && dbias_acc.numel() == W.size(0) && dbias_acc.is_contiguous()));
  dispatch_floating(h.dtype(), "cross_entropy_backward", [&]<class T>() {
    backward_impl<T>(h, W, bias, P, lse, grad_scale, dh, dW_acc, dbias_acc);
  });
}

}  // namespace cpu
}  // namespace lmf
