// Tokenized classification examples and their padded batches (TokenBatch, right padding).
//
// Encoding is the HF tokenizer call `tokenizer(text, text_pair, truncation=..., max_length=...)`
// (Tokenizer::encode_pair): the tokenizer's own special tokens and pair template, truncation of
// content tokens only (from the end; HF tokenizers' rules, see tokenize/tokenizer.h), so every
// sequence has at most max_length ids:
//   longest_first  (HF truncation=True) the longer text loses tokens first (equal split when
//                  both are long)
//   only_first / only_second   cut only that text (an error when that is not enough)
//   none           no truncation (max_length unused)
// Batches: examples in epoch order, right-padded to the longest row with pad_id, attention
// mask 1 for real tokens, token_type_ids 0 for the first text and 1 for the pair's second.
// Order per epoch: a permutation drawn from (seed, epoch) (Philox), so a run is reproducible
// and resuming at an epoch needs only the epoch number. group_by_length (HF
// group_by_length / LengthGroupedSampler) sorts each window of 50 batches by length after
// shuffling and then shuffles the batches, so rows of similar length share a batch (less
// padding) while batches stay random.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lmforge/data/labelled_reader.h"
#include "lmforge/models/token_batch.h"
#include "lmforge/tokenize/tokenizer.h"  // Tokenizer, Truncation

namespace lmf {

// "longest_first" (or "true"), "only_first", "only_second", "none" (or "false"); throws lmf::Error naming
// `field`.
Truncation parse_truncation(const std::string& name, const std::string& field);
const char* truncation_name(Truncation t);

struct SeqEncodeOptions {
  int64_t max_length = 128;  // >= 1 (checked) unless truncation is none
  Truncation truncation = Truncation::longest_first;
};

struct EncodedExample {
  std::vector<int32_t> ids;
  std::vector<int32_t> type_ids;  // same length
  int32_t label = -1;             // -1: unlabelled
  int64_t index = 0;              // position in the source data
};

struct EncodeStats {
  int64_t examples = 0, truncated = 0, tokens = 0, max_len = 0;
};

// Tokenizes every example of `data` (label ids must be assigned when present; unassigned = -1).
// Throws lmf::Error "<source>:<line>: ..." when a text yields no tokens or cannot be cut to
// max_length (only_first / only_second, or more special tokens than max_length).
std::vector<EncodedExample> encode_examples(const Tokenizer& tok, const LabelledData& data,
                                            const SeqEncodeOptions& options, EncodeStats* stats = nullptr);

// One example's ids (the encoding above); throws lmf::Error (no source prefix).
EncodedExample encode_one(const Tokenizer& tok, const std::string& text, const std::string& text_pair,
                          const SeqEncodeOptions& options);

struct ClassificationBatch {
  TokenBatch tokens;             // input_ids / attention_mask / token_type_ids [B, T] i64, cpu
  std::vector<int32_t> labels;   // [B] (-1 for unlabelled examples)
  std::vector<int64_t> indices;  // [B] EncodedExample::index of each row
  int64_t num_tokens = 0;        // real tokens
};

// Pads examples[order[begin..end)] into one batch.
ClassificationBatch make_batch(const std::vector<EncodedExample>& examples, const std::vector<int64_t>& order,
                               int64_t begin, int64_t end, int64_t pad_id);

class ClassificationBatcher {
 public:
  // `examples` must outlive the batcher. batch_size >= 1 (else lmf::Error). shuffle = false
  // keeps the data order (evaluation, prediction); group_by_length needs shuffle.
  ClassificationBatcher(const std::vector<EncodedExample>& examples, int64_t batch_size, int64_t pad_id,
                        bool shuffle, uint64_t seed, bool group_by_length = false);

  // Fixes the example order of `epoch` (0-based). The constructor starts epoch 0.
  void start_epoch(int64_t epoch);
  int64_t num_batches() const;                 // ceil(examples / batch_size); the last batch may be smaller
  ClassificationBatch batch(int64_t i) const;  // the i-th batch of the current epoch
  const std::vector<int64_t>& order() const { return order_; }

 private:
  const std::vector<EncodedExample>& ex_;
  int64_t batch_size_, pad_id_;
  bool shuffle_, group_;
  uint64_t seed_;
  std::vector<int64_t> order_;
};

}  // namespace lmf
