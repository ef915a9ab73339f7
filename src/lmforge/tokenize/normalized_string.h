// NormalizedString and PreTokenizedString: text that keeps, for every byte of its current
// (normalized) form, the byte range of the original input it came from
// (tokenizers `tokenizer/normalizer.rs`, `tokenizer/pre_tokenizer.rs`). Every normalizer and
// pre-tokenizer edits one of these, so token offsets can be mapped back to the user's text.
//
// The alignment rules are HF's, bit for bit (they decide offsets, and in a few corner cases the
// text itself):
//  - a fresh string aligns every byte of a char to that char's byte range;
//  - transform_range() rewrites a range from a list of (char, change) pairs: change 0 replaces
//    the next old char (and takes its alignment), change > 0 inserts a char (alignment of the
//    previous old byte, or (0,0) at index 0), change -n replaces and also removes the n old
//    chars that follow;
//  - a normalized range maps to (first byte's start, last byte's end) of its alignments.
// All offsets are byte offsets. original_shift() places this string inside the full input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lmforge/tokenize/unicode.h"

namespace lmf::tok {

using Span = std::pair<size_t, size_t>;  // [first, second) byte offsets

class Regex;

class NormalizedString {
 public:
  NormalizedString() = default;
  // `original` must be valid UTF-8; its bytes start at `shift` in the full input.
  explicit NormalizedString(std::string_view original, size_t shift = 0);

  const std::string& get() const { return normalized_; }
  size_t len() const { return normalized_.size(); }
  bool empty() const { return normalized_.empty(); }
  size_t len_original() const { return original_len_; }
  size_t original_shift() const { return shift_; }
  // (shift, shift + len_original): where this string sits in the full input.
  Span offsets_original() const { return {shift_, shift_ + original_len_}; }
  const std::vector<Span>& alignments() const { return align_; }

  // HF convert_offsets(Range::Normalized): original range (relative to this string's original)
  // of normalized bytes [s, e); an empty range maps to itself; nullopt when out of range.
  std::optional<Span> normalized_to_original(Span r) const;
  // HF convert_offsets(Range::Original): normalized range of original bytes [s, e).
  std::optional<Span> original_to_normalized(Span r) const;
  // HF slice(Range::Normalized): nullopt when r is not on char boundaries or out of range.
  std::optional<NormalizedString> slice(Span r) const;

  // HF transform_range(Range::Normalized(r), dest, initial_offset).
  void transform_range(Span r, const std::vector<CharChange>& dest, size_t initial_offset);
  // HF transform(): transform_range over the normalized range of the whole original.
  void transform(const std::vector<CharChange>& dest, size_t initial_offset);

  void normalize_unicode(NormalForm form);
  // Keeps the chars for which keep(c) is true.
  template <class Keep>
  void filter(Keep keep);
  // Replaces every char c by f(c) (one char for one char).
  template <class F>
  void map(F f);
  // Rust char::to_lowercase per char (one char may become several).
  void lowercase();
  void prepend(std::string_view s);
  void append(std::string_view s);
  // Every match of `re` (non-overlapping, left to right) becomes `content`.
  void replace(const Regex& re, std::string_view content);
  // Every occurrence of the char `c` becomes `content` (HF replace with a char pattern).
  void replace(char32_t c, std::string_view content);
  // Every span of `matches` (sorted, non-overlapping) becomes `content`.
  void replace_spans(const std::vector<Span>& matches, std::string_view content);
  // Removes leading (left) / trailing (right) chars with Unicode White_Space.
  void lrstrip(bool left, bool right);

  // ByteLevel's transform: every char becomes table[b] for each of its UTF-8 bytes b (the first
  // replaces the char, the others are inserted), exactly as transform() with those changes.
  void map_bytes_to_chars(const char32_t (&table)[256]);

  // Every char's code point (used by the filter/map templates).
  std::vector<char32_t> chars() const;

 private:
  std::string normalized_;
  std::vector<Span> align_;  // one per byte of normalized_
  size_t original_len_ = 0;
  size_t shift_ = 0;
};

template <class Keep>
void NormalizedString::filter(Keep keep) {
  // HF filter(): each kept char carries -(number of removed chars after it); removed chars
  // before the first kept one become the initial offset.
  std::vector<CharChange> dest;
  dest.reserve(normalized_.size());
  int32_t removed = 0;
  size_t removed_start = 0;
  std::optional<char32_t> last;
  for (char32_t c : chars()) {
    if (keep(c)) {
      if (last)
        dest.push_back({*last, -removed});
      else
        removed_start = static_cast<size_t>(removed);
      last = c;
      removed = 0;
    } else {
      removed++;
    }
  }
  if (last) dest.push_back({*last, -removed});
  transform(dest, removed_start);
}

template <class F>
void NormalizedString::map(F f) {
  std::vector<CharChange> dest;
  for (char32_t c : chars()) dest.push_back({f(c), 0});
  transform(dest, 0);
}

// A model token inside one pre-token: id and normalized byte range within that pre-token.
// `value` is set only for added tokens (the matched text); model tokens take their vocab string.
struct Token {
  int32_t id = 0;
  size_t start = 0, end = 0;
  std::string value;
};

// One piece of a PreTokenizedString; `tokenized` once an added token or the model filled
// `tokens`.
struct Split {
  NormalizedString normalized;
  bool tokenized = false;
  std::vector<Token> tokens;
};

// HF PreTokenizedString: the splits of one input sequence.
struct PreTokenizedString {
  std::vector<Split> splits;

  // HF split(): replaces every split without tokens by fn(index, normalized) (a vector of
  // Split), dropping empty ones. Splits that already have tokens are kept as they are.
  template <class Fn>
  void split(Fn fn) {
    std::vector<Split> out;
    out.reserve(splits.size());
    for (size_t i = 0; i < splits.size(); i++) {
      if (splits[i].tokenized) {
        out.push_back(std::move(splits[i]));
        continue;
      }
      for (Split& s : fn(i, std::move(splits[i].normalized)))
        if (!s.normalized.empty()) out.push_back(std::move(s));
    }
    splits = std::move(out);
  }
};

// HF Pattern::find_matches for a char predicate: every matching char is its own match span.
template <class Pred>
std::vector<std::pair<Span, bool>> find_char_matches(std::string_view s, Pred pred) {
  std::vector<std::pair<Span, bool>> out;
  if (s.empty()) {
    out.push_back({{0, 0}, false});
    return out;
  }
  size_t last = 0, i = 0;
  while (i < s.size()) {
    size_t b = i;
    char32_t c = next_code_point(s, i);
    if (pred(c)) {
      if (last < b) out.push_back({{last, b}, false});
      out.push_back({{b, i}, true});
      last = i;
    }
  }
  if (s.size() > last) out.push_back({{last, s.size()}, false});
  return out;
}

}  // namespace lmf::tok
