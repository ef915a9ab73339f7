// Tokenizer building blocks: regex iteration (Oniguruma semantics), split behaviours, the
// byte-level table, lossy UTF-8, normalizers, pre-tokenizers and decoders, each on
// hand-computed cases taken from the HF `tokenizers` documentation/semantics.
#include <gtest/gtest.h>

#include "lmforge/core/error.h"
#include "lmforge/tokenize/byte_level.h"
#include "lmforge/tokenize/decoder.h"
#include "lmforge/tokenize/normalizer.h"
#include "lmforge/tokenize/pre_tokenizer.h"
#include "lmforge/tokenize/regex.h"
#include "lmforge/tokenize/unicode.h"

using namespace lmf;
using namespace lmf::tok;
using Strings = std::vector<std::string>;
using Spans = std::vector<std::pair<size_t, size_t>>;

namespace {

Strings pre_tokenize(const Json& j, const std::string& text) {
  auto p = pre_tokenizer_from_json(j, "pre_tokenizer");
  std::vector<PreSplit> splits{{text, true}};
  p->pre_tokenize(splits);
  Strings out;
  for (auto& s : splits) out.push_back(s.text);
  return out;
}

std::string normalize(const Json& j, const std::string& text) {
  return normalizer_from_json(j, "normalizer")->normalize(text);
}

Strings decode_chain(const Json& j, Strings tokens) {
  return decoder_from_json(j, "decoder")->decode_chain(std::move(tokens));
}

}  // namespace

TEST(TokenizerRegex, FindAllFollowsOnigurumaEmptyMatchRule) {
  // An empty match glued to the previous match is skipped (onig FindMatches), unlike Python re.
  EXPECT_EQ(Regex::compile("a*", "t").find_all("baaac"), (Spans{{0, 0}, {1, 4}, {5, 5}}));
  EXPECT_EQ(Regex::compile("o", "t").find_all("foo"), (Spans{{1, 2}, {2, 3}}));
  EXPECT_TRUE(Regex::compile("z", "t").find_all("abc").empty());
  // Multi-byte chars: offsets are bytes and empty matches advance one whole char.
  EXPECT_EQ(Regex::compile("x*", "t").find_all("\xC3\xA9x"), (Spans{{0, 0}, {2, 3}}));
}

TEST(TokenizerRegex, WhitespaceClassIsUnicodeWhiteSpace) {
  // \s must include U+0085 (NEL), as Oniguruma's does; PCRE2's UCP \s alone would not.
  EXPECT_EQ(Regex::compile("\\s+", "t")
                .find_all("a\xC2\x85\xE3\x80\x80"
                          "b"),
            (Spans{{1, 6}}));
  EXPECT_EQ(Regex::compile("[^\\s]+", "t")
                .find_all("ab\xC2\x85"
                          "c"),
            (Spans{{0, 2}, {4, 5}}));
  EXPECT_EQ(Regex::compile("\\S+", "t")
                .find_all("ab\xC2\x85"
                          "c"),
            (Spans{{0, 2}, {4, 5}}));
  // Oniguruma \h is a hex digit.
  EXPECT_EQ(Regex::compile("\\h+", "t").find_all("xx1aFgz"), (Spans{{2, 5}}));
  EXPECT_EQ(translate_oniguruma_pattern("[\\]\\s]"),
            "[\\]\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-"
            "\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}]");
  EXPECT_EQ(Regex::literal("a.b", "t").find_all("axb a.b"), (Spans{{4, 7}}));
  EXPECT_THROW(Regex::compile("(", "t"), Error);
}

TEST(TokenizerRegex, SplitBehaviorsMatchHfDocs) {
  // tokenizer/normalizer.rs docs: splitting "the-final--countdown" on '-'.
  const std::string text = "the-final--countdown";
  auto spans = Regex::literal("-", "t").split_spans(text);
  auto run = [&](SplitBehavior b) {
    Strings out;
    for (auto [s, e] : apply_split_behavior(spans, b)) out.push_back(text.substr(s, e - s));
    return out;
  };
  EXPECT_EQ(run(SplitBehavior::Removed), (Strings{"the", "final", "countdown"}));
  EXPECT_EQ(run(SplitBehavior::Isolated), (Strings{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(run(SplitBehavior::MergedWithPrevious), (Strings{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(run(SplitBehavior::MergedWithNext), (Strings{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(run(SplitBehavior::Contiguous), (Strings{"the", "-", "final", "--", "countdown"}));
}

TEST(TokenizerPreTokenizers, ByteLevelAndSplit) {
  Json bl = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
  // "Ġ" = U+0120 stands for the space byte.
  EXPECT_EQ(pre_tokenize(bl, "Hello my friend, how's it?"), (Strings{"Hello", "\xC4\xA0my",
                                                                     "\xC4\xA0"
                                                                     "friend",
                                                                     ",", "\xC4\xA0how", "'s", "\xC4\xA0it", "?"}));
  // \s+(?!\S) backs off one char before a non-space, so "\n\nc" gives "\n" (lookahead ok), then
  // "\n" alone (plain \s+), then "c": the prefix in " ?\p{L}+" is U+0020 only.
  EXPECT_EQ(pre_tokenize(bl, "a  b\n\nc"), (Strings{"a", "\xC4\xA0",
                                                    "\xC4\xA0"
                                                    "b",
                                                    "\xC4\x8A", "\xC4\x8A", "c"}));
  EXPECT_EQ(pre_tokenize(bl, "a\n\n"), (Strings{"a", "\xC4\x8A\xC4\x8A"}));
  Json bl_prefix = {{"type", "ByteLevel"}, {"add_prefix_space", true}};
  EXPECT_EQ(pre_tokenize(bl_prefix, "Hi"), (Strings{"\xC4\xA0Hi"}));
  EXPECT_EQ(pre_tokenize(bl_prefix, " Hi"), (Strings{"\xC4\xA0Hi"}));
  Json no_regex = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
  EXPECT_EQ(pre_tokenize(no_regex, "a b"), (Strings{"a\xC4\xA0"
                                                    "b"}));
  // 'é' is two bytes, each mapped to its own table char.
  EXPECT_EQ(pre_tokenize(bl, "\xC3\xA9"), (Strings{"\xC3\x83\xC2\xA9"}));
  Json split = {{"type", "Split"}, {"pattern", {{"Regex", "\\d+"}}}, {"behavior", "Removed"}, {"invert", false}};
  EXPECT_EQ(pre_tokenize(split, "ab12cd345"), (Strings{"ab", "cd"}));
  split["invert"] = true;  // the matches become the kept pieces' complement
  EXPECT_EQ(pre_tokenize(split, "ab12cd345"), (Strings{"12", "345"}));
  Json seq = {{"type", "Sequence"},
              {"pretokenizers", {{{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", "Removed"}}, bl}}};
  EXPECT_EQ(pre_tokenize(seq, "a b-c"), (Strings{"a",
                                                 "\xC4\xA0"
                                                 "b",
                                                 "c"}));
}

TEST(TokenizerStages, ByteTableIsTheGpt2Table) {
  for (int b = 0; b < 256; b++) EXPECT_EQ(char_to_byte(byte_to_char(static_cast<unsigned char>(b))), b);
  EXPECT_EQ(byte_to_char(' '), 0x120u);
  EXPECT_EQ(byte_to_char('\n'), 0x10Au);
  EXPECT_EQ(byte_to_char(0x00), 0x100u);
  EXPECT_EQ(byte_to_char(0x7F), 0x121u);
  EXPECT_EQ(byte_to_char(0xAD), 0x143u);
  EXPECT_EQ(byte_to_char('A'), static_cast<char32_t>('A'));
  EXPECT_EQ(char_to_byte(0x144), -1);
  EXPECT_EQ(char_to_byte(' '), -1);  // a real space is not a table char
}

TEST(TokenizerStages, Utf8ValidationAndLossyDecode) {
  EXPECT_EQ(find_invalid_utf8("ok \xC3\xA9"), std::string_view::npos);
  EXPECT_EQ(find_invalid_utf8("ab\xC0\x80"), 2u);         // overlong
  EXPECT_EQ(find_invalid_utf8("\xED\xA0\x80"), 0u);       // surrogate
  EXPECT_EQ(find_invalid_utf8("x\xF4\x90\x80\x80"), 1u);  // above U+10FFFF
  EXPECT_EQ(find_invalid_utf8("xy\xE2\x82"), 2u);         // truncated
  const std::string R = "\xEF\xBF\xBD";
  // Rust from_utf8_lossy: one U+FFFD per maximal ill-formed subpart.
  EXPECT_EQ(utf8_lossy("\xE2\x82"
                       "A"),
            R + "A");
  EXPECT_EQ(utf8_lossy("\x80\x80"), R + R);
  EXPECT_EQ(utf8_lossy("a\xF0\x9F\x98"), "a" + R);
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), R + R + R);
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
}

TEST(TokenizerNormalizers, UnicodeLowercaseStripReplacePrepend) {
  EXPECT_EQ(normalize({{"type", "NFC"}}, "e\xCC\x81"), "\xC3\xA9");
  EXPECT_EQ(normalize({{"type", "NFD"}}, "\xC3\xA9"), "e\xCC\x81");
  EXPECT_EQ(normalize({{"type", "NFKC"}},
                      "\xEF\xAC\x81"
                      "x \xE2\x91\xA0"),
            "fix 1");  // ﬁx ① -> fix 1
  EXPECT_EQ(normalize({{"type", "NFKD"}}, "\xC2\xBD"),
            "1\xE2\x81\x84"
            "2");  // ½ -> 1⁄2
  // Full per-char lowercase: İ expands to i + combining dot; Σ -> σ without final-sigma context.
  EXPECT_EQ(normalize({{"type", "Lowercase"}}, "ABC \xC4\xB0 \xCE\xA3"), "abc i\xCC\x87 \xCF\x83");
  EXPECT_EQ(normalize({{"type", "Strip"}, {"strip_left", true}, {"strip_right", false}},
                      " \xE3\x80\x80"
                      "a "),
            "a ");
  EXPECT_EQ(normalize({{"type", "Strip"}, {"strip_left", true}, {"strip_right", true}}, "\t a b \n"), "a b");
  EXPECT_EQ(normalize({{"type", "StripAccents"}}, "e\xCC\x81t\xC3\xA9"), "et\xC3\xA9");  // only marks go
  EXPECT_EQ(normalize({{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}, "a b  c"),
            "a\xE2\x96\x81"
            "b\xE2\x96\x81\xE2\x96\x81"
            "c");
  EXPECT_EQ(normalize({{"type", "Replace"}, {"pattern", {{"Regex", " {2,}"}}}, {"content", "_"}}, "a b  c   d"),
            "a b_c_d");
  EXPECT_EQ(normalize({{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}}, "hi"), "\xE2\x96\x81hi");
  EXPECT_EQ(normalize({{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}}, ""), "");
  Json seq = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFKC"}}, {{"type", "Lowercase"}}}}};
  EXPECT_EQ(normalize(seq,
                      "\xEF\xBC\xA1"
                      "B"),
            "ab");  // fullwidth A
  EXPECT_EQ(normalizer_from_json(Json(nullptr), "normalizer"), nullptr);
}

TEST(TokenizerDecoders, ByteLevelByteFallbackStripReplaceFuse) {
  Json bl = {{"type", "ByteLevel"}};
  EXPECT_EQ(decode_chain(bl, {"Hello", "\xC4\xA0world", "\xC4\x8A"}), (Strings{"Hello world\n"}));
  // A token with a char outside the table is taken as its own UTF-8 bytes.
  EXPECT_EQ(decode_chain(bl, {"a", "  ", "\xE4\xB8\xAD"}), (Strings{"a  \xE4\xB8\xAD"}));
  const std::string R = "\xEF\xBF\xBD";
  EXPECT_EQ(decode_chain({{"type", "ByteFallback"}}, {"a", "<0xC3>", "<0xA9>", "b", "<0xC3>", "c"}),
            (Strings{"a", "\xC3\xA9", "b", R, "c"}));
  EXPECT_EQ(decode_chain({{"type", "ByteFallback"}}, {"<0xE2>", "<0x82>"}), (Strings{R, R}));
  EXPECT_EQ(decode_chain({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}, {"  a ", " b"}),
            (Strings{" a ", "b"}));
  Json llama = {{"type", "Sequence"},
                {"decoders",
                 {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                  {{"type", "ByteFallback"}},
                  {{"type", "Fuse"}},
                  {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  EXPECT_EQ(decode_chain(llama, {"\xE2\x96\x81Hello", "\xE2\x96\x81world", "<0x21>"}), (Strings{"Hello world!"}));
  EXPECT_THROW(decoder_from_json({{"type", "Strip"}, {"content", "ab"}, {"start", 1}, {"stop", 0}}, "decoder"), Error);
  EXPECT_THROW(decoder_from_json({{"type", "CTC"}}, "decoder"), Error);
}
