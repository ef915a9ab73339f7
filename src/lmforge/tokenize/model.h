// The tokenization model: turns one pre-tokenized word into ids (tokenizers `models/`).
// BPE (bpe.h), WordPiece (wordpiece.h) and Unigram (unigram.h) implement this interface.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lmforge/tokenize/fnv.h"
#include "lmforge/tokenize/normalized_string.h"

namespace lmf::tok {

class Model {
 public:
  virtual ~Model() = default;
  // "BPE", "WordPiece", ...
  virtual const char* type() const = 0;
  // Appends the tokens of `word` (a non-empty pre-token) to `out`, with byte offsets inside
  // `word` (HF `Model::tokenize`). Thread-safe.
  virtual void tokenize(std::string_view word, std::vector<Token>& out) const = 0;
  // Only the ids.
  void tokenize_ids(std::string_view word, std::vector<int32_t>& out) const {
    std::vector<Token> toks;
    tokenize(word, toks);
    for (const Token& t : toks) out.push_back(t.id);
  }
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  // The token of `id`, or nullptr when the model has no such id.
  virtual const std::string* id_to_token(int32_t id) const = 0;
  // Number of vocabulary entries (HF `Model::get_vocab_size`: the map size, not max id + 1).
  virtual size_t vocab_size() const = 0;
  // Largest id in the vocabulary, -1 when empty.
  virtual int32_t max_id() const = 0;
  // Feeds everything that determines the model's output (vocab, merges, options) to `h`.
  virtual void fingerprint(Fnv1a64& h) const = 0;
};

}  // namespace lmf::tok
