// Pre-tokenizers: split each normalized piece into the words the model sees
// (tokenizers `pre_tokenizers/`). They run on every piece between added tokens separately.
//
// Supported "type"s: ByteLevel, Split, Sequence. Others (Whitespace, WhitespaceSplit,
// BertPreTokenizer, Metaspace, Punctuation, Digits, ...) throw "not supported yet"; add one as a
// class (its own file when large) and a line in pre_tokenizer_from_json.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "lmforge/tokenize/json_fields.h"

namespace lmf::tok {

struct PreSplit {
  std::string text;
  // The split begins at byte 0 of the original input (HF `offsets_original().0 == 0`), which
  // Metaspace's prepend_scheme "first" needs.
  bool at_start = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces every split by its sub-splits, in order, dropping empty ones (as HF
  // `PreTokenizedString::split` does). Thread-safe.
  virtual void pre_tokenize(std::vector<PreSplit>& splits) const = 0;
};

// How a Split pre-tokenizer treats the matched delimiter (tokenizer/normalizer.rs).
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Applies `behavior` to the covering spans of one piece; returns [start, end) pieces to keep.
std::vector<std::pair<size_t, size_t>> apply_split_behavior(const std::vector<MatchSpan>& spans,
                                                            SplitBehavior behavior);

// Builds the pre-tokenizer of a tokenizer.json "pre_tokenizer" value; nullptr for null.
std::unique_ptr<PreTokenizer> pre_tokenizer_from_json(const Json& j, const std::string& path);

}  // namespace lmf::tok
