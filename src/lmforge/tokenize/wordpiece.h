// WordPiece model (tokenizers `models/wordpiece/mod.rs`), BERT's subword model.
//
// Algorithm (HF, exactly): a word longer than max_input_chars_per_word chars is one unk token;
// otherwise greedy longest-match-first from the left, pieces after the first looked up with the
// continuing_subword_prefix ("##"); if some position matches nothing, the WHOLE word becomes one
// unk token (the partial pieces are discarded). Offsets are byte ranges inside the word.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lmforge/tokenize/bpe.h"  // Vocab, StringHash
#include "lmforge/tokenize/json_fields.h"
#include "lmforge/tokenize/model.h"

namespace lmf::tok {

struct WordPieceOptions {
  std::string unk_token = "[UNK]";
  std::string continuing_subword_prefix = "##";
  size_t max_input_chars_per_word = 100;
};

class WordPiece final : public Model {
 public:
  // Throws lmf::Error naming `path` when two tokens share an id or when unk_token is not in the
  // vocabulary (HF only fails when the unk is needed; lmforge refuses such a file up front).
  WordPiece(Vocab vocab, WordPieceOptions options, const std::string& path);

  const char* type() const override { return "WordPiece"; }
  void tokenize(std::string_view word, std::vector<Token>& out) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  const std::string* id_to_token(int32_t id) const override;
  size_t vocab_size() const override { return vocab_.size(); }
  int32_t max_id() const override { return static_cast<int32_t>(id_to_token_.size()) - 1; }
  void fingerprint(Fnv1a64& h) const override;
  const WordPieceOptions& options() const { return opt_; }

 private:
  Vocab vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  WordPieceOptions opt_;
  int32_t unk_id_ = -1;
};

// From a tokenizer.json "model" object (type "WordPiece").
std::unique_ptr<WordPiece> wordpiece_from_json(const Json& j, const std::string& path);

// A BERT vocab.txt: one token per line, id = line index, trailing whitespace trimmed (HF
// WordPiece::read_file; a repeated token keeps its last line). Throws lmf::Error naming the file
// (and line) when it cannot be read or is empty.
Vocab read_wordpiece_vocab(const std::string& path);

}  // namespace lmf::tok
