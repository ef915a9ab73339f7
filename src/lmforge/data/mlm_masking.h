// Masked-language-model corruption of one sequence (BERT, Devlin et al. 2019 §3.1; the HF
// recipe: transformers DataCollatorForLanguageModeling.torch_mask_tokens).
//
// Semantics (HF's, per token, independently):
//  1. selection: every token that is not special is selected with probability p (the mask rate:
//     a Bernoulli draw per token, as HF's torch.bernoulli over a matrix of p with specials set
//     to 0 — so the number of masked tokens is Binomial(#non-special, p), not exactly p * n).
//     Special tokens ([CLS], [SEP], [PAD], [MASK], <s>, </s>, ...) are never selected.
//  2. of the selected tokens: with probability mask_replace_prob (0.8) the input becomes the
//     mask id; else with probability random_replace_prob (0.1, i.e. 0.1 / 0.2 of the rest, HF's
//     second bernoulli) a token drawn uniformly from [0, vocab_size) (HF torch.randint(len(tokenizer)):
//     it may be a special token or the original token); else the input is left unchanged.
//  3. labels: the original id at selected positions, -100 (ignore_index) elsewhere.
//
// Determinism: every draw comes from the Philox stream (core/philox.h) keyed by (seed, the
// sequence's 64-bit key): token t of a sequence uses the four words of
//   philox4x32_10(seed ^ kMlmMaskStream, block = t, offset = sequence_key)
// word 0: selection, word 1: mask / random / keep, words 2-3: the random token. The trainer passes
// the sequence's global sample index as its key (a function of the data cursor), so a resumed
// run masks every sequence exactly as the uninterrupted one.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace lmf {

inline constexpr uint64_t kMlmMaskStream = 0x6d6c6d2d6d61736bull;  // "mlm-mask"

struct MlmMaskingConfig {
  int32_t mask_id = -1;
  int64_t vocab_size = 0;            // random replacements are drawn from [0, vocab_size)
  std::vector<int32_t> special_ids;  // never selected (any order, duplicates fine)
  double mask_replace_prob = 0.8;    // HF DataCollatorForLanguageModeling defaults
  double random_replace_prob = 0.1;
};

class MlmMasker {
 public:
  // Validates: vocab_size >= 1, mask_id and every special id in [0, vocab_size), both
  // probabilities in [0, 1] with a sum <= 1. Throws lmf::Error "mlm_masking: <field>: ...".
  explicit MlmMasker(MlmMaskingConfig cfg);

  // Corrupts `ids` in place and writes `labels` (same length). mask_rate in [0, 1] (else
  // lmf::Error "mlm_masking: mask_rate: expected a number in [0, 1], got 1.5"); ids must be in
  // [0, vocab_size) (lmf::Error naming the position otherwise). Returns the number of selected
  // (labelled) positions.
  int64_t apply(std::span<int32_t> ids, std::span<int32_t> labels, double mask_rate, uint64_t seed,
                uint64_t sequence_key) const;

  bool is_special(int32_t id) const {
    return id >= 0 && id < int64_t(special_.size()) && special_[size_t(id)];
  }
  const MlmMaskingConfig& config() const { return cfg_; }

 private:
  MlmMaskingConfig cfg_;
  std::vector<bool> special_;  // [vocab_size]
};

// Throws lmf::Error "<field>: expected a mask rate in [0, 1], got <v>" (recipes, CLI).
void validate_mask_rate(double rate, const char* field);

}  // namespace lmf
