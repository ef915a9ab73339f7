// A compiled regular expression (PCRE2, UTF + UCP) that behaves like the Oniguruma regexes the
// HF `tokenizers` crate uses for tokenizer.json patterns (`utils::SysRegex`).
//
// Oniguruma differences handled here: `\s`/`\S` mean Unicode White_Space (PCRE2's UCP `\s` lacks
// U+0085), `\h`/`\H` mean hex digit. Match iteration follows the `onig` crate's FindMatches: an
// empty match right where the previous match ended is skipped.
// Thread safety: a Regex is immutable after construction; find_all/split_spans may run on many
// threads at once (each call allocates its own match data).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lmf::tok {

struct MatchSpan {
  size_t start = 0, end = 0;  // byte offsets, [start, end)
  bool is_match = false;
};

class Regex {
 public:
  // Compiles an Oniguruma-style pattern. Throws lmf::Error "<where>: invalid regex '<p>': <why>".
  static Regex compile(std::string_view pattern, const std::string& where);
  // A pattern that matches `text` literally (HF escapes string patterns the same way).
  static Regex literal(std::string_view text, const std::string& where);

  // Successive non-overlapping matches [start, end) in `text` (valid UTF-8), left to right.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;
  // HF `Pattern::find_matches`: spans that cover `text` in order, each flagged as a match or
  // the text between matches. Empty text gives one empty non-match span.
  std::vector<MatchSpan> split_spans(std::string_view text) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;  // only the factories above make one
  struct Code;
  std::shared_ptr<const Code> code_;
  std::string pattern_;
};

// Rewrites Oniguruma-only escapes into PCRE2 syntax (exposed for tests).
std::string translate_oniguruma_pattern(std::string_view pattern);

}  // namespace lmf::tok
