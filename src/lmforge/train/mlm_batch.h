// MLM batches: document windows (data/language_sampler.h) wrapped in the tokenizer's special
// tokens, masked (data/mlm_masking.h) and laid out for an unpadded encoder pass.
//
// The special tokens are the tokenizer's own: what its post-processor puts around a single
// sequence ([CLS] ... [SEP] for BERT / mBERT WordPiece, <s> ... </s> for RoBERTa / XLM-R, none
// for a tokenizer without one), found by encoding a probe text with and without special tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lmforge/data/language_sampler.h"
#include "lmforge/data/mlm_masking.h"
#include "lmforge/models/token_batch.h"
#include "lmforge/tokenize/tokenizer.h"

namespace lmf {

struct MlmSpecialTokens {
  std::vector<int32_t> prefix, suffix;  // around every sequence (e.g. [CLS] / [SEP])
  int32_t mask_id = -1;
  int32_t pad_id = 0;                 // fills padded positions (never attended)
  std::vector<int32_t> never_masked;  // every special id (added tokens marked special, prefix,
                                      // suffix, mask, pad, eos, bos)
  int64_t vocab_size = 0;             // random replacements come from [0, vocab_size)
  // Content tokens per sequence for a max_length: max_length - prefix - suffix. Throws
  // lmf::Error "data.max_length: ..." when that leaves no room for a token.
  int64_t window_for(int64_t max_length) const;
};

// Reads the special tokens of `tok`. mask_token "" takes the tokenizer's mask token
// (Tokenizer::mask_id: tokenizer_config.json, else a special [MASK] / <mask>), else any "[MASK]" /
// "<mask>" token. Throws
// lmf::Error naming the tokenizer when there is no mask token (or the named one is unknown), or
// when the post-processor does more than add tokens around the sequence.
MlmSpecialTokens mlm_special_tokens(const Tokenizer& tok, const std::string& mask_token = "");

// The masking configuration for these special tokens (HF replace probabilities given).
MlmMaskingConfig mlm_masking_config(const MlmSpecialTokens& sp, double mask_replace_prob,
                                    double random_replace_prob);

struct MlmBatch {
  TokenBatch batch;                   // [B, T] i64, right-padded with pad_id; attention_mask
  std::vector<int64_t> masked_index;  // positions of the labelled tokens in the unpadded stream
                                      // (row-major over real tokens, RaggedBatch order)
  std::vector<int64_t> masked_label;  // their original ids
  int64_t num_tokens = 0;             // real tokens (special tokens included)
  int64_t num_masked() const { return int64_t(masked_index.size()); }
};

// Wraps every sequence in prefix/suffix, masks it with rate `mask_rate` keyed by (seed, the
// sequence's sample index) and pads. `sequences` must be non-empty (lmf::Error otherwise).
MlmBatch make_mlm_batch(const std::vector<LanguageSampler::Sequence>& sequences, const MlmSpecialTokens& sp,
                        const MlmMasker& masker, double mask_rate, uint64_t seed);

}  // namespace lmf
