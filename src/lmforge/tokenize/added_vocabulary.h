// Added tokens: tokens matched in the raw or normalized text before the model runs
// (tokenizers `tokenizer/added_vocabulary.rs`; PARITY.md 6.0-6.1).
//
// - Tokens with normalized=false are matched on the raw input; the text between them is then
//   normalized piece by piece, and tokens with normalized=true are matched (by their normalized
//   content) inside each normalized piece.
// - Matching is leftmost-longest. single_word rejects a match touching a word char (Unicode \w)
//   on either side (a rejected match is not retried shorter); lstrip/rstrip swallow the
//   whitespace on that side into the token.
// - Ids: the model's id when the content is in the model vocab, else the next id after the model
//   vocab size, in list order (the "id" fields of tokenizer.json are not used, as in HF).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "lmforge/tokenize/fnv.h"
#include "lmforge/tokenize/model.h"
#include "lmforge/tokenize/normalizer.h"

namespace lmf::tok {

struct AddedToken {
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;
  bool special = false;
  bool operator==(const AddedToken&) const = default;
};

class AddedVocabulary {
 public:
  // Registers `tokens` in order (HF `AddedVocabulary::add_tokens`). Empty contents are ignored.
  // `normalizer` may be null.
  void add_tokens(const std::vector<AddedToken>& tokens, const Model& model, const Normalizer* normalizer);

  // HF `extract_and_normalize`: splits out added tokens (each a split with one token whose
  // value is the matched text) and normalizes the rest. Empty pieces are dropped. `text` must
  // be valid UTF-8. Thread-safe.
  PreTokenizedString extract_and_normalize(std::string_view text, const Normalizer* normalizer) const;

  std::optional<int32_t> token_to_id(std::string_view content) const;
  // The string an added token decodes to: its normalized content when normalization changed it,
  // else its content. nullptr when `id` is not an added token.
  const std::string* decode_form(int32_t id) const;
  const AddedToken* token(int32_t id) const;
  bool is_special(std::string_view token) const { return special_.count(std::string(token)) != 0; }
  bool empty() const { return by_id_.empty(); }
  int32_t max_id() const { return by_id_.empty() ? -1 : by_id_.rbegin()->first; }
  const std::map<int32_t, AddedToken>& tokens() const { return by_id_; }
  void fingerprint(Fnv1a64& h) const;

 private:
  // Byte trie for leftmost-longest matching (HF uses a daachorse automaton; same result).
  struct Trie {
    struct Node {
      std::vector<std::pair<unsigned char, int32_t>> next;
      int32_t value = -1;
    };
    std::vector<Node> nodes{1};
    std::array<bool, 256> first_byte{};
    void insert(std::string_view pattern, int32_t id);
    bool empty() const { return nodes.size() == 1; }
    // Longest pattern starting at text[pos]: (length, id), or length 0 when none.
    std::pair<size_t, int32_t> longest_at(std::string_view text, size_t pos) const;
  };
  struct Match {
    std::optional<int32_t> id;
    size_t start, end;
  };
  std::vector<Match> find_matches(std::string_view sentence, const Trie& trie) const;
  // HF split_with_indices: `n` cut at the matches of `trie`.
  std::vector<Split> split_with_indices(const NormalizedString& n, const Trie& trie) const;
  void rebuild_tries();

  std::unordered_map<std::string, int32_t> by_content_;
  std::map<int32_t, AddedToken> by_id_;
  std::unordered_map<int32_t, std::string> normalized_form_;
  std::unordered_set<std::string> special_;
  Trie raw_trie_, normalized_trie_;
};

}  // namespace lmf::tok
