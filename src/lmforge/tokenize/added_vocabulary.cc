#include "lmforge/tokenize/added_vocabulary.h"

#include <algorithm>

#include "lmforge/core/error.h"
#include "lmforge/tokenize/unicode.h"

namespace lmf::tok {

void AddedVocabulary::Trie::insert(std::string_view pattern, int32_t id) {
  int32_t node = 0;
  for (unsigned char b : pattern) {
    auto& next = nodes[node].next;
    auto it = std::find_if(next.begin(), next.end(), [b](const auto& e) { return e.first == b; });
    if (it != next.end()) {
      node = it->second;
    } else {
      auto child = static_cast<int32_t>(nodes.size());
      next.emplace_back(b, child);
      nodes.emplace_back();  // may reallocate `nodes`; `next` is not used after this
      node = child;
    }
  }
  nodes[node].value = id;
  first_byte[static_cast<unsigned char>(pattern[0])] = true;
}

std::pair<size_t, int32_t> AddedVocabulary::Trie::longest_at(std::string_view text, size_t pos) const {
  std::pair<size_t, int32_t> best{0, -1};
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); i++) {
    auto b = static_cast<unsigned char>(text[i]);
    const auto& next = nodes[node].next;
    auto it = std::find_if(next.begin(), next.end(), [b](const auto& e) { return e.first == b; });
    if (it == next.end()) break;
    node = it->second;
    if (nodes[node].value >= 0) best = {i + 1 - pos, nodes[node].value};
  }
  return best;
}

void AddedVocabulary::add_tokens(const std::vector<AddedToken>& tokens, const Model& model,
                                 const Normalizer* normalizer) {
  const auto model_size = static_cast<int64_t>(model.vocab_size());
  int64_t next_id = model_size;
  if (!by_id_.empty()) {
    int64_t mx = by_id_.rbegin()->first;
    next_id = (mx >= model_size || model_size == 0) ? mx + 1 : model_size;
  }
  for (const AddedToken& t : tokens) {
    if (t.content.empty()) continue;
    auto known = by_content_.find(t.content);
    if (known != by_content_.end()) {
      auto it = by_id_.find(known->second);
      if (it != by_id_.end() && it->second == t) continue;
    }
    int32_t id;
    if (known != by_content_.end())
      id = known->second;
    else if (auto mid = model.token_to_id(t.content))
      id = *mid;
    else
      id = static_cast<int32_t>(next_id++);
    if (t.normalized && normalizer) {
      std::string normed = normalizer->normalize(t.content);
      if (normed != t.content) normalized_form_[id] = std::move(normed);
    }
    by_content_[t.content] = id;
    if (t.special) special_.insert(t.content);
    by_id_[id] = t;
  }
  rebuild_tries();
}

void AddedVocabulary::rebuild_tries() {
  raw_trie_ = Trie();
  normalized_trie_ = Trie();
  for (const auto& [id, t] : by_id_) {
    if (t.normalized) {
      auto it = normalized_form_.find(id);
      normalized_trie_.insert(it != normalized_form_.end() ? it->second : t.content, id);
    } else {
      raw_trie_.insert(t.content, id);
    }
  }
}

namespace {

bool ends_with_word_char(std::string_view s) {
  if (s.empty()) return false;
  size_t i = s.size();
  return is_word_char(prev_code_point(s, i));
}

bool starts_with_word_char(std::string_view s) {
  if (s.empty()) return false;
  size_t i = 0;
  return is_word_char(next_code_point(s, i));
}

// Start of the trailing whitespace run of s (regex `\s*$`).
size_t trailing_space_start(std::string_view s) {
  size_t i = s.size();
  while (i > 0) {
    size_t j = i;
    if (!is_white_space(prev_code_point(s, j))) break;
    i = j;
  }
  return i;
}

// Length of the leading whitespace run of s (regex `^\s*`).
size_t leading_space_len(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    if (!is_white_space(next_code_point(s, j))) break;
    i = j;
  }
  return i;
}

}  // namespace

std::vector<AddedVocabulary::Match> AddedVocabulary::find_matches(std::string_view sentence, const Trie& trie) const {
  std::vector<Match> splits;
  if (sentence.empty()) {
    splits.push_back({std::nullopt, 0, 0});
    return splits;
  }
  if (trie.empty()) {
    splits.push_back({std::nullopt, 0, sentence.size()});
    return splits;
  }
  size_t start_offset = 0;  // end of the previous accepted split
  size_t pos = 0;           // where the automaton resumes (end of the previous raw match)
  while (pos < sentence.size()) {
    if (!trie.first_byte[static_cast<unsigned char>(sentence[pos])]) {
      pos++;
      continue;
    }
    auto [len, id] = trie.longest_at(sentence, pos);
    if (len == 0) {
      pos++;
      continue;
    }
    size_t start = pos, stop = pos + len;
    pos = stop;
    const AddedToken& tok = by_id_.at(id);
    if (tok.single_word) {
      bool start_space = start == 0 || !ends_with_word_char(sentence.substr(0, start));
      bool stop_space = stop == sentence.size() || !starts_with_word_char(sentence.substr(stop));
      if (!start_space || !stop_space) continue;
    }
    if (tok.lstrip) start = std::max(trailing_space_start(sentence.substr(0, start)), start_offset);
    if (tok.rstrip) stop += leading_space_len(sentence.substr(stop));
    if (start_offset < start) splits.push_back({std::nullopt, start_offset, start});
    splits.push_back({id, start, stop});
    start_offset = stop;
  }
  if (start_offset != sentence.size()) splits.push_back({std::nullopt, start_offset, sentence.size()});
  return splits;
}

std::vector<Split> AddedVocabulary::split_with_indices(const NormalizedString& n, const Trie& trie) const {
  std::vector<Split> out;
  for (const Match& m : find_matches(n.get(), trie)) {
    std::optional<NormalizedString> piece = n.slice({m.start, m.end});
    LMF_CHECK(piece.has_value(), "AddedVocabulary bad split");
    Split s{std::move(*piece), false, {}};
    if (m.id) {
      s.tokenized = true;
      s.tokens.push_back(Token{*m.id, 0, s.normalized.len(), s.normalized.get()});
    }
    out.push_back(std::move(s));
  }
  return out;
}

PreTokenizedString AddedVocabulary::extract_and_normalize(std::string_view text, const Normalizer* normalizer) const {
  PreTokenizedString pts;
  pts.splits.push_back(Split{NormalizedString(text), false, {}});
  pts.split([&](size_t, NormalizedString n) { return split_with_indices(n, raw_trie_); });
  pts.split([&](size_t, NormalizedString n) {
    if (normalizer) normalizer->apply(n);
    return split_with_indices(n, normalized_trie_);
  });
  return pts;
}

std::optional<int32_t> AddedVocabulary::token_to_id(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  if (it == by_content_.end()) return std::nullopt;
  return it->second;
}

const std::string* AddedVocabulary::decode_form(int32_t id) const {
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return nullptr;
  auto n = normalized_form_.find(id);
  return n != normalized_form_.end() ? &n->second : &it->second.content;
}

const AddedToken* AddedVocabulary::token(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &it->second;
}

void AddedVocabulary::fingerprint(Fnv1a64& h) const {
  h.add_u64(by_id_.size());
  for (const auto& [id, t] : by_id_) {
    h.add_u64(static_cast<uint64_t>(id));
    h.add_string(t.content);
    h.add_string(*decode_form(id));
    h.add_u64((t.single_word ? 1 : 0) | (t.lstrip ? 2 : 0) | (t.rstrip ? 4 : 0) | (t.normalized ? 8 : 0) |
              (t.special ? 16 : 0));
  }
}

}  // namespace lmf::tok
