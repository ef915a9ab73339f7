// Cross-entropy losses: the fused, chunked LM/MLM loss over h W^T that never materializes the
// [N, V] logits (256k vocab x 8k tokens would be 8 GB in fp32), and a small-head variant over
// given logits.
//
// Semantics (HF / torch.nn.functional.cross_entropy with ignore_index = -100):
//  row loss  l_n = w_n * (logsumexp_v z_nv - z_n,t_n),  z = h W^T (+ b with cross_entropy_with_bias),
//            w_n = weights[n] (1 if none);
//            rows whose target is -100 are ignored (loss 0, no gradient, not counted).
//  reduction mean (default): sum_n l_n / count, count = number of non-ignored rows. With
//            weights this is Mambaoutai's positional weighting (per-token loss x tanh(pos/10),
//            averaged over tokens); `divide_by_weight_sum` divides by sum of the weights of
//            the non-ignored rows instead (a weighted average). If every row is ignored the
//            loss is 0 with zero gradients (torch would return NaN).
//            sum: sum_n l_n (for callers that normalize by a global token count themselves).
//  top-k     rank_n = number of logits strictly greater than the target's, hit@k iff rank < k,
//            for k = 1, 3, 10, counted over non-ignored rows. Ties count in the target's favour:
//            a target tied with the maximum is a top-1 hit.
#pragma once

#include <array>
#include <cstdint>

#include "lmforge/core/tensor.h"

namespace lmf::ops {

enum class CrossEntropyReduction : uint8_t { mean, sum };

struct CrossEntropyOptions {
  CrossEntropyReduction reduction = CrossEntropyReduction::mean;
  bool divide_by_weight_sum = false;  // mean only: denominator = sum of weights, not count
  bool want_topk = false;             // fill CrossEntropyResult::topk_hits
  // Tile sizes of the fused kernels (0 = backend default; see backend/cross_entropy_chunks.h).
  // Scratch memory is about chunk_rows * chunk_vocab * 4 bytes.
  int64_t chunk_rows = 0;
  int64_t chunk_vocab = 0;
  // CUDA: keep the whole f32 logits matrix between forward and backward (the backward then
  // reads it instead of recomputing it: one GEMM of the four less) when it takes at most this
  // many MiB and no chunk sizes are given. -1: the environment's LMF_CE_LOGITS_CACHE_MB, else
  // 1/16 of the device's memory up to 4096; 0: never (bounded scratch, the tiled path).
  int64_t logits_cache_mb = -1;
};

struct CrossEntropyResult {
  // [1] f32 (f64 for f64 inputs): the reduced loss; differentiable.
  Tensor loss;
  // [1] same dtype: the sum of the weighted row losses; differentiable.
  Tensor sum_loss;
  // [N] per-row weighted losses (0 for ignored rows); not differentiable.
  Tensor row_loss;
  int64_t count = 0;      // non-ignored rows
  double weight_sum = 0;  // sum of the weights of the non-ignored rows (= count without weights)
  // Hits for k = 1, 3, 10 (filled when want_topk).
  std::array<int64_t, 3> topk_hits = {0, 0, 0};
};

// Fused linear + cross-entropy.
//  h        [..., H] floating (f32/bf16/f16; f64 on cpu): hidden states; leading dims are rows.
//  W        [V, H] same dtype and device: the output projection (logits = h W^T); usually a
//           parameter, whose fp32 gradient slot is accumulated into directly.
//  targets  [...] (h's leading shape, or [N]) i32/i64, each in [0, V) or -100 (ignored).
//  weights  optional (undefined = all 1), same numel as targets, any floating dtype (used as f32).
// Differentiable w.r.t. h (gradient in h's dtype) and W (f32 gradient, f64 for f64 inputs).
// Reads targets (and weights and per-row losses) on the host: one host synchronization per call.
// Throws lmf::Error "[cross_entropy] ..." for undefined/mismatched shapes, dtypes or devices and
// for a target outside [0, V) other than -100.
CrossEntropyResult cross_entropy(const Tensor& h, const Tensor& W, const Tensor& targets,
                                 const Tensor& weights = Tensor(),
                                 const CrossEntropyOptions& options = CrossEntropyOptions());

// Fused linear + bias + cross-entropy: logits = h W^T + bias (MLM decoders carry a vocabulary
// bias: BertLMPredictionHead.bias, ModernBertForMaskedLM's decoder bias). Same semantics, options
// and errors as cross_entropy, plus:
//  bias     [V], same dtype and device as W (undefined = no bias: exactly cross_entropy).
// Also differentiable w.r.t. bias: d bias = column sums of d logits, accumulated in f32 (f64 for
// f64 inputs) into bias's parameter gradient slot when it has one.
// Throws lmf::Error "[cross_entropy] bias must be [V] ..." / "bias is <dt> but W is <dt>" /
// a device mismatch.
CrossEntropyResult cross_entropy_with_bias(const Tensor& h, const Tensor& W, const Tensor& bias, const Tensor& targets,
                                           const Tensor& weights = Tensor(),
                                           const CrossEntropyOptions& options = CrossEntropyOptions());

// Cross-entropy over given logits [..., C] (classification heads with few classes: sequence and
// token classification, QA spans). Same semantics, targets and options; differentiable w.r.t.
// logits. Runs the fused kernel with W = identity [C, C], so it costs O(N C^2): meant for
// C up to a few thousand, not for vocabularies.
CrossEntropyResult cross_entropy_logits(const Tensor& logits, const Tensor& targets, const Tensor& weights = Tensor(),
                                        const CrossEntropyOptions& options = CrossEntropyOptions());

}  // namespace lmf::ops
