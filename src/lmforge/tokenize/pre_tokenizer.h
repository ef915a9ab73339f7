// Pre-tokenizers: split each normalized piece into the words the model sees
// (tokenizers `pre_tokenizers/`). They run on every piece between added tokens separately and
// keep the alignments of NormalizedString, so offsets survive.
//
// Supported "type"s: ByteLevel, Split, Sequence, BertPreTokenizer, Metaspace, Whitespace,
// WhitespaceSplit, Punctuation, Digits. Others (UnicodeScripts, CharDelimiterSplit,
// FixedLength) throw "not supported"; add one as a class (its own file when large) and a line in
// pre_tokenizer_from_json.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lmforge/tokenize/json_fields.h"
#include "lmforge/tokenize/normalized_string.h"

namespace lmf::tok {

// A plain-text split, for callers that do not need offsets.
struct PreSplit {
  std::string text;
  // The split begins at byte 0 of the original input (HF `offsets_original().0 == 0`), which
  // Metaspace's prepend_scheme "first" needs.
  bool at_start = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits every split of `pts` that has no tokens yet, dropping empty ones (HF
  // `PreTokenizer::pre_tokenize`). Thread-safe.
  virtual void apply(PreTokenizedString& pts) const = 0;
  // Same on plain strings (each becomes a fresh NormalizedString; at_start is kept).
  void pre_tokenize(std::vector<PreSplit>& splits) const;
};

// How a Split pre-tokenizer treats the matched delimiter (tokenizer/normalizer.rs).
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Applies `behavior` to the covering spans of one piece; returns [start, end) pieces to keep.
std::vector<std::pair<size_t, size_t>> apply_split_behavior(const std::vector<MatchSpan>& spans,
                                                            SplitBehavior behavior);

// HF NormalizedString::split: the pieces of `n` for the covering spans `spans`.
std::vector<Split> split_normalized(const NormalizedString& n, const std::vector<MatchSpan>& spans,
                                    SplitBehavior behavior);

// Builds the pre-tokenizer of a tokenizer.json "pre_tokenizer" value; nullptr for null.
std::unique_ptr<PreTokenizer> pre_tokenizer_from_json(const Json& j, const std::string& path);

}  // namespace lmf::tok
