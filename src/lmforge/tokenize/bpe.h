// Byte-pair-encoding model (tokenizers `models/bpe/model.rs`, `word.rs`).
//
// Algorithm (must match HF bit for bit): one symbol per char (continuing_subword_prefix on all
// but the first, end_of_word_suffix on the last); a char missing from the vocab becomes
// byte-fallback tokens `<0xHH>` when byte_fallback and all exist, else unk (fused when fuse_unk),
// else it is dropped. Then a min-heap keyed by (merge rank, position) pops merges, skipping stale
// entries, until empty. Rank = index in `merges` (a later duplicate pair overrides an earlier one).
// Dropout must be null or 0. Results are cached per word (thread-safe, bounded).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "lmforge/tokenize/json_fields.h"
#include "lmforge/tokenize/model.h"

namespace lmf::tok {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

// The dense id -> token table of a token -> id vocabulary (BPE, WordPiece): id_to_token[id] and
// has_id[id] for every id up to the largest. Throws lmf::Error naming `path`'s "vocab" for ids
// too sparse to index densely (max id >= 4 * size + 2^20) or an id used by two tokens.
void build_id_table(const Vocab& vocab, const std::string& path, std::vector<std::string>& id_to_token,
                    std::vector<bool>& has_id);

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;
  bool ignore_merges = false;
};

class Bpe final : public Model {
 public:
  // Throws lmf::Error naming `path` when a merge part or merged token is not in the vocab, when two
  // tokens share an id, or when unk_token is set but missing from the vocab.
  Bpe(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options,
      const std::string& path);
  ~Bpe() override;

  const char* type() const override { return "BPE"; }
  void tokenize(std::string_view word, std::vector<Token>& out) const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  const std::string* id_to_token(int32_t id) const override;
  size_t vocab_size() const override { return vocab_.size(); }
  int32_t max_id() const override { return static_cast<int32_t>(id_to_token_.size()) - 1; }
  void fingerprint(Fnv1a64& h) const override;

 private:
  struct Merge {
    int32_t rank;
    int32_t new_id;
  };
  struct Cache;

  // Appends (id, byte length) per final symbol.
  void merge_word(std::string_view word, std::vector<std::pair<int32_t, uint32_t>>& out) const;
  const Merge* find_merge(int32_t a, int32_t b) const;

  Vocab vocab_;
  std::vector<std::string> id_to_token_;  // "" with has_id_ false for holes
  std::vector<bool> has_id_;
  std::unordered_map<uint64_t, Merge> merges_;           // key: (uint64(a) << 32) | b
  std::vector<std::pair<int32_t, int32_t>> merge_list_;  // in rank order, for fingerprints
  BpeOptions opt_;
  std::optional<int32_t> unk_id_;
  std::unique_ptr<Cache> cache_;
};

// Builds a BPE model from a tokenizer.json "model" object (type "BPE" or untyped with merges).
// merges are "a b" strings (lines starting with "#version" skipped) or ["a", "b"] pairs.
std::unique_ptr<Bpe> bpe_from_json(const Json& j, const std::string& path);

}  // namespace lmf::tok
