// Test data for MLM pre-training: a BERT-style tokenizer (the shipped 4k BPE plus [PAD] [CLS]
// [SEP] [MASK] and a BertProcessing post-processor, so tests do not depend on WordPiece
// support), English and French shards from the shipped texts, and a tiny BERT config.
#pragma once

#include <string>

namespace lmf::test {

struct MlmCorpus {
  std::string tokenizer;               // tokenizer.json path
  std::string model_config;            // config.json of a tiny BertForMaskedLM (dropout 0.1)
  std::string en, fr, en_val, fr_val;  // shard prefixes
  std::string frwiki;                  // French Wikipedia lines (a language to add in a later phase)
  int64_t vocab = 0;
  uint64_t fingerprint = 0;
  double unigram_entropy = 0;  // nats/token over the content tokens of both training shards
};

// Built once per test binary under the build tree's scratch area.
const MlmCorpus& mlm_corpus();

}  // namespace lmf::test
