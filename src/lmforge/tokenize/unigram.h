// Unigram language-model tokenizer (tokenizers `models/unigram/model.rs`, the SentencePiece
// unigram algorithm as HF runs it).
//
// Algorithm (HF encode_optimized + tokenize, exactly):
//  - Viterbi over byte positions: from each char start (in order), every vocab piece that is a
//    prefix of the rest (trie, shortest first) proposes score(best path to start) + score(piece)
//    for its end; a candidate replaces the current best only when STRICTLY greater, so ties keep
//    the earliest start. Scores are f64 sums.
//  - A char start with no single-char piece also proposes unk with score min_score - 10.
//  - Backtracking fuses consecutive unk pieces into one string (fuse_unk is always on in HF).
//  - Each resulting string maps to its vocab id; a string not in the vocab (a fused unk) becomes,
//    with byte_fallback, one <0xHH> token per byte (all sharing the string's offsets) when all
//    exist, else unk_id.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lmforge/tokenize/bpe.h"  // Vocab
#include "lmforge/tokenize/json_fields.h"
#include "lmforge/tokenize/model.h"

namespace lmf::tok {

class Unigram final : public Model {
 public:
  // pieces[i] = (piece, score) is id i. Throws lmf::Error naming `path` when the vocabulary is
  // empty while unk_id is set, or unk_id is outside it.
  Unigram(std::vector<std::pair<std::string, double>> pieces, std::optional<int32_t> unk_id, bool byte_fallback,
          const std::string& path);

  const char* type() const override { return "Unigram"; }
  // Throws lmf::Error when a char has no piece and the model has no unk_id (HF MissingUnkId).
  void tokenize(std::string_view word, std::vector<Token>& out) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  const std::string* id_to_token(int32_t id) const override;
  size_t vocab_size() const override { return pieces_.size(); }
  int32_t max_id() const override { return static_cast<int32_t>(pieces_.size()) - 1; }
  void fingerprint(Fnv1a64& h) const override;

  // The best segmentation of `s` as piece strings (HF Unigram::encode).
  std::vector<std::string> encode(std::string_view s) const;

 private:
  struct TrieNode {
    std::vector<std::pair<unsigned char, int32_t>> next;  // sorted by byte
    int32_t id = -1;
  };
  // Calls f(length, id) for every piece that is a prefix of s[pos..], shortest first.
  template <class F>
  void common_prefixes(std::string_view s, size_t pos, F f) const;

  std::vector<std::pair<std::string, double>> pieces_;
  Vocab token_to_id_;
  std::vector<TrieNode> trie_;
  std::optional<int32_t> unk_id_;
  bool byte_fallback_;
  double min_score_;
};

// From a tokenizer.json "model" object: {"type": "Unigram", "unk_id", "vocab": [[piece, score],
// ...], "byte_fallback"}.
std::unique_ptr<Unigram> unigram_from_json(const Json& j, const std::string& path);

}  // namespace lmf::tok
