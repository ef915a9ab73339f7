// UTF-8 and Unicode helpers shared by the tokenizer stages.
//
// Contract: functions taking "valid" text expect well-formed UTF-8 (checked once at the
// Tokenizer API edge with find_invalid_utf8). The character classes follow what the HF
// `tokenizers` crate uses: Rust `char::is_whitespace` / regex `\s` (Unicode White_Space) and
// the regex crate's Unicode `\w`.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace lmf::tok {

// Decodes the code point starting at s[i] and advances i past it. Precondition: valid UTF-8.
char32_t next_code_point(std::string_view s, size_t& i);
// Decodes the code point that ends at s[i] (exclusive) and moves i back to its first byte.
// Precondition: valid UTF-8 and i > 0.
char32_t prev_code_point(std::string_view s, size_t& i);
// Appends the UTF-8 encoding of cp (cp <= 0x10FFFF, not a surrogate).
void append_utf8(std::string& out, char32_t cp);

// Byte offset of the first ill-formed UTF-8 sequence (overlongs, surrogates and values above
// U+10FFFF are ill-formed), or std::string_view::npos when s is valid.
size_t find_invalid_utf8(std::string_view s);

// Rust `String::from_utf8_lossy`: every maximal ill-formed subpart becomes one U+FFFD.
std::string utf8_lossy(std::string_view bytes);

// Unicode White_Space property (Rust char::is_whitespace, regex \s, Oniguruma \s).
bool is_white_space(char32_t cp);
// Unicode word character as the Rust regex crate's `\w`: Alphabetic, marks, decimal digits,
// connector punctuation, joiners. Alphabetic is approximated by L*, Nl and the circled-letter
// ranges of Other_Alphabetic that are not marks.
bool is_word_char(char32_t cp);
// Unicode general category "Mn" (nonspacing mark).
bool is_nonspacing_mark(char32_t cp);
// General category M* (Mn, Mc, Me): `is_combining_mark` of unicode-normalization.
bool is_mark(char32_t cp);
// General category P* (unicode_categories `is_punctuation`).
bool is_punctuation(char32_t cp);
// BERT punctuation: ASCII punctuation (symbols included) or P* (pre_tokenizers/bert.rs).
bool is_bert_punctuation(char32_t cp);
// General category N* (Rust char::is_numeric).
bool is_numeric(char32_t cp);
// "Other" as BertNormalizer's clean_text deletes it: Cc, Cf, Co (not Cn: the unicode_categories
// tables HF uses list no unassigned code points), except \t \n \r.
bool is_bert_control(char32_t cp);

enum class NormalForm { NFC, NFD, NFKC, NFKD };

// One output char of a text transform and how it relates to the input chars, as HF
// `NormalizedString::transform` takes them: 0 = replaces the next input char, n > 0 = inserted,
// -n = replaces the next input char and removes the n chars after it.
struct CharChange {
  char32_t c;
  int32_t change;
};
// The (char, change) stream of the `unicode-normalization-alignments` crate that HF uses:
// per-char full decomposition (first char 0, the others +1), canonical reordering of each run of
// non-starters (changes travel with their chars), then for NFC/NFKC the canonical composition,
// where a composed char's change is composee + mark - 1.
std::vector<CharChange> unicode_changes(std::string_view s, NormalForm form);
// Unicode canonical combining class of cp.
int combining_class(char32_t cp);
// Unicode normalization (utf8proc). Pure-ASCII input is returned unchanged.
std::string normalize_unicode(std::string_view s, NormalForm form);
// Rust `char::to_lowercase` applied per character (full mapping, no context: U+0130 expands to
// "i\u0307"; final sigma is not special-cased).
std::string to_lowercase(std::string_view s);

}  // namespace lmf::tok
