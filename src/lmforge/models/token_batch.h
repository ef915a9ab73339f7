// The batch the task models (encoders, classifiers, MLM) take, and its unpadded form.
//
// TokenBatch is what a data loader or the `forward` CLI produces: padded [B, T] host tensors.
// Encoders run unpadded end to end (DESIGN.md §4): unpad() keeps only the real tokens, in row
// order, and records where each came from so outputs can be scattered back (repad) and each
// family can derive its own position ids (BERT: the padded column t; RoBERTa/XLM-R:
// padding_idx + 1 + rank among the row's real tokens; ModernBERT unpadded: rank in the row).
#pragma once

#include <cstdint>
#include <vector>

#include "lmforge/core/tensor.h"

namespace lmf {

struct TokenBatch {
  Tensor input_ids;       // [B, T] i64 (i32 accepted), cpu
  Tensor attention_mask;  // [B, T] i64/i32, cpu; 1 = real token, 0 = padding; undefined = all real
  Tensor token_type_ids;  // [B, T] i64/i32, cpu; undefined = zeros
};

struct RaggedBatch {
  int64_t batch = 0, seq_len = 0;   // B, T of the padded batch
  std::vector<int32_t> cu_seqlens;  // [B+1]: row b's real tokens are stream[cu[b], cu[b+1])
  int64_t max_seqlen = 0;
  std::vector<int64_t> ids;          // [N] real token ids, row-major order
  std::vector<int64_t> token_types;  // [N] (zeros when the batch has none)
  std::vector<int64_t> column;       // [N] t: the token's column in the padded batch
  std::vector<int64_t> rank;         // [N] index of the token among its row's real tokens
  int64_t num_tokens() const { return static_cast<int64_t>(ids.size()); }
};

// Validates and unpads. Real tokens need not be contiguous in a row (left and right padding
// both work; HF semantics for interior zeros are "masked key", which unpadding reproduces for
// every real query). Throws lmf::Error "[batch] ..." for shape/dtype mismatches or a mask value
// other than 0/1.
RaggedBatch unpad(const TokenBatch& batch);

// A host i64 tensor [N] from a vector, moved to `device`.
Tensor to_index_tensor(const std::vector<int64_t>& v, Device device);

// Scatters x [N, ...] (stream order) back into a zero-filled padded [B, T, ...] tensor on x's
// device. Not differentiable (for outputs: `forward`, predictions).
Tensor repad(const Tensor& x, const RaggedBatch& ragged);

}  // namespace lmf
