// WordPiece, Unigram, BertNormalizer, Precompiled, Metaspace, the BERT pre-tokenizer and the
// WordPiece / Metaspace decoders, on hand-computed cases that follow HF `tokenizers` semantics
// (PARITY.md 6.2-6.6), alignments (offsets) included.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "lmforge/core/error.h"
#include "lmforge/tokenize/decoder.h"
#include "lmforge/tokenize/normalized_string.h"
#include "lmforge/tokenize/normalizer.h"
#include "lmforge/tokenize/pre_tokenizer.h"
#include "lmforge/tokenize/tokenizer.h"
#include "lmforge/tokenize/unicode.h"
#include "test_util.h"

using namespace lmf;
using namespace lmf::tok;
using Ids = std::vector<int32_t>;
using Offs = std::vector<std::pair<size_t, size_t>>;
using Strings = std::vector<std::string>;

namespace {

template <class F>
void expect_error(F&& f, std::initializer_list<std::string> needles) {
  try {
    f();
    ADD_FAILURE() << "expected lmf::Error";
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }
}

// (char, original span) per char of a normalized string.
std::vector<std::pair<std::string, Span>> chars_with_spans(const NormalizedString& n) {
  std::vector<std::pair<std::string, Span>> out;
  const std::string& s = n.get();
  size_t i = 0;
  while (i < s.size()) {
    size_t b = i;
    next_code_point(s, i);
    out.emplace_back(s.substr(b, i - b), *n.normalized_to_original({b, i}));
  }
  return out;
}

NormalizedString normalized(const Json& j, const std::string& text) {
  NormalizedString n(text);
  normalizer_from_json(j, "normalizer")->apply(n);
  return n;
}

Strings pre_tokenize(const Json& j, const std::string& text, bool at_start = true) {
  auto p = pre_tokenizer_from_json(j, "pre_tokenizer");
  std::vector<PreSplit> splits{{text, at_start}};
  p->pre_tokenize(splits);
  Strings out;
  for (auto& s : splits) out.push_back(s.text);
  return out;
}

Json wp_doc(Json vocab, size_t max_chars = 100) {
  return Json{{"version", "1.0"},
              {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
              {"model",
               {{"type", "WordPiece"},
                {"unk_token", "[UNK]"},
                {"continuing_subword_prefix", "##"},
                {"max_input_chars_per_word", max_chars},
                {"vocab", std::move(vocab)}}}};
}

const Json kWpVocab = {{"[UNK]", 0}, {"un", 1},    {"##aff", 2}, {"##able", 3}, {"a", 4},
                       {"##b", 5},   {"ab", 6},    {",", 7},     {"!", 8},      {"hello", 9},
                       {"##s", 10},  {"unaff", 11}};

// [[piece, score], ...] (a braced list of pairs would become a JSON object).
Json pieces(std::vector<std::pair<std::string, Json>> v) {
  Json a = Json::array();
  for (auto& [p, s] : v) a.push_back(Json::array({p, s}));
  return a;
}

Json unigram_doc(Json vocab, Json unk_id, bool byte_fallback = false) {
  return Json{{"version", "1.0"},
              {"model",
               {{"type", "Unigram"}, {"unk_id", std::move(unk_id)}, {"vocab", std::move(vocab)}, {"byte_fallback", byte_fallback}}}};
}

}  // namespace

TEST(TokenizerWordPiece, GreedyLongestMatchAndWholeWordUnk) {
  Tokenizer t = Tokenizer::from_json_string(wp_doc(kWpVocab).dump(), "wp.json");
  EXPECT_EQ(t.model_type(), "WordPiece");
  Encoding e = t.encode_full("unaffable");
  // "unaff" is longer than "un", so greedy takes it, then "##able".
  EXPECT_EQ(e.ids, (Ids{11, 3}));
  EXPECT_EQ(e.offsets, (Offs{{0, 5}, {5, 9}}));
  EXPECT_EQ(e.tokens, (Strings{"unaff", "##able"}));
  // One failing position makes the whole word [UNK] (offsets: the whole word).
  Encoding u = t.encode_full("hello unaffablex ab!");
  EXPECT_EQ(u.ids, (Ids{9, 0, 6, 8}));
  EXPECT_EQ(u.offsets, (Offs{{0, 5}, {6, 16}, {17, 19}, {19, 20}}));
  // "abs": "ab" then "##s".
  EXPECT_EQ(t.encode("abs"), (Ids{6, 10}));
  // Longer than max_input_chars_per_word (counted in chars, not bytes) -> [UNK].
  Tokenizer short_words = Tokenizer::from_json_string(wp_doc(kWpVocab, 4).dump(), "wp.json");
  EXPECT_EQ(short_words.encode("hello abs"), (Ids{0, 6, 10}));
  expect_error([] { Tokenizer::from_json_string(wp_doc({{"a", 0}}).dump(), "wp.json"); },
               {"wp.json: model.unk_token: '[UNK]' is not in model.vocab"});
  expect_error([] { Tokenizer::from_json_string(wp_doc({{"[UNK]", 0}, {"a", 0}}).dump(), "wp.json"); },
               {"wp.json: model.vocab: id 0 is used by both"});
}

TEST(TokenizerWordPiece, DecoderStripsPrefixAndCleansUp) {
  auto d = decoder_from_json({{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}, "decoder");
  Strings toks{"un", "##aff", "##able", ",", "hello", "!", "I", "do", "not", "'", "m"};
  std::string joined;
  for (const auto& s : d->decode_chain(toks)) joined += s;
  // Per token: " ," -> ",", " !" -> "!"; " do not" never appears inside one token.
  EXPECT_EQ(joined, "unaffable, hello! I do not ' m");  // " '" alone is not a cleanup pattern
  EXPECT_EQ(wordpiece_cleanup("a . b ? c do not it 's x"), "a. b? c don't it's x");
}

TEST(TokenizerBert, NormalizerStepsAndOrder) {
  Json base = {{"type", "BertNormalizer"}, {"clean_text", true}, {"handle_chinese_chars", true}};
  Json lower = base;
  lower["lowercase"] = true;
  lower["strip_accents"] = nullptr;  // follows lowercase
  EXPECT_EQ(normalized(lower, "H\xC3\xA9llo W\xC3\xB6rld").get(), "hello world");
  Json cased = base;
  cased["lowercase"] = false;
  cased["strip_accents"] = nullptr;
  EXPECT_EQ(normalized(cased, "H\xC3\xA9llo").get(), "H\xC3\xA9llo");
  Json strip_only = base;
  strip_only["lowercase"] = false;
  strip_only["strip_accents"] = true;
  EXPECT_EQ(normalized(strip_only, "H\xC3\xA9llo").get(), "Hello");
  // clean_text: NUL, U+FFFD and Cc/Cf (here U+200B) removed, whitespace -> ' '; CJK spaced.
  EXPECT_EQ(normalized(cased, std::string("a\0b\tc\xE2\x80\x8B" "d\xEF\xBF\xBD", 12)).get(), "ab cd");
  EXPECT_EQ(normalized(cased, "ab\xE4\xB8\xAD\xE6\x96\x87" "cd").get(), "ab \xE4\xB8\xAD  \xE6\x96\x87 cd");
  // The sixth CJK range starts at U+2B920 (U+2B820 is not spaced).
  EXPECT_EQ(normalized(cased, "a\xF0\xAB\xA0\xA0" "b").get(), "a\xF0\xAB\xA0\xA0" "b");
  EXPECT_EQ(normalized(cased, "a\xF0\xAB\xA4\xA0" "b").get(), "a \xF0\xAB\xA4\xA0 b");
  // Alignments: the accent-stripped 'e' still covers the two bytes of 'é'; the spaces around a
  // CJK char take that char's span.
  auto cs = chars_with_spans(normalized(lower, "\xC3\xA9\xE4\xB8\xAD"));
  ASSERT_EQ(cs.size(), 4u);
  EXPECT_EQ(cs[0], (std::pair<std::string, Span>{"e", {0, 2}}));
  EXPECT_EQ(cs[1], (std::pair<std::string, Span>{" ", {2, 5}}));
  EXPECT_EQ(cs[2], (std::pair<std::string, Span>{"\xE4\xB8\xAD", {2, 5}}));
  EXPECT_EQ(cs[3], (std::pair<std::string, Span>{" ", {2, 5}}));
}

TEST(TokenizerBert, PreTokenizerSplitsWhitespaceAndPunctuation) {
  Json bert = {{"type", "BertPreTokenizer"}};
  EXPECT_EQ(pre_tokenize(bert, "Hey, you... $5 \xC2\xBFqu\xC3\xA9?\xE3\x80\x80z"),
            (Strings{"Hey", ",", "you", ".", ".", ".", "$", "5", "\xC2\xBF", "qu\xC3\xA9", "?", "z"}));
}

TEST(TokenizerBert, FromVocabFileBuildsTheBertPipeline) {
  std::string dir = test::scratch_dir("wordpiece_vocab");
  std::string path = dir + "/vocab.txt";
  std::ofstream(path) << "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n,\nworld\n!\nw\n##or\n##ld\n\xE4\xB8\xAD\n";
  Tokenizer t = Tokenizer::from_wordpiece_vocab(path, /*lowercase=*/true);
  Encoding e = t.encode_full("H\xC3\xA9llo, W\xC3\xB6rld!\xE4\xB8\xAD");
  // "Héllo" lowercases and loses its accent -> "hello"; offsets are bytes of the input.
  EXPECT_EQ(e.ids, (Ids{2, 5, 6, 7, 8, 12, 3}));
  EXPECT_EQ(e.offsets, (Offs{{0, 0}, {0, 6}, {6, 7}, {8, 14}, {14, 15}, {15, 18}, {0, 0}}));
  EXPECT_EQ(t.mask_id(), 4);
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.decode(e.ids, /*skip_special_tokens=*/true), "hello, world! \xE4\xB8\xAD");
  EXPECT_EQ(t.decode(e.ids), "[CLS] hello, world! \xE4\xB8\xAD [SEP]");
  Encoding p = t.encode_pair("hello", std::string_view("w"));
  EXPECT_EQ(p.ids, (Ids{2, 5, 3, 9, 3}));
  EXPECT_EQ(p.type_ids, (Ids{0, 0, 0, 1, 1}));
  // Cased: "Héllo" stays unknown.
  Tokenizer cased = Tokenizer::from_wordpiece_vocab(path, /*lowercase=*/false);
  EXPECT_EQ(cased.encode("H\xC3\xA9llo world", false), (Ids{1, 7}));

  std::ofstream(dir + "/no_cls.txt") << "[UNK]\n[SEP]\na\n";
  expect_error([&] { Tokenizer::from_wordpiece_vocab(dir + "/no_cls.txt", false); },
               {"no_cls.txt", "'[CLS]' is not in the vocabulary"});
  expect_error([&] { Tokenizer::from_wordpiece_vocab(dir + "/missing.txt", false); }, {"missing.txt", "cannot open"});
  std::ofstream(dir + "/bad.txt") << "[UNK]\n\xFF\xFE\n";
  expect_error([&] { Tokenizer::from_wordpiece_vocab(dir + "/bad.txt", false); }, {"bad.txt", "not valid UTF-8"});
}

TEST(TokenizerUnigram, ViterbiMatchesTheHfDocExample) {
  // tokenizers models/unigram/model.rs doc example: "abcdacdxx" -> abcd, a, cd, xx (fused unk).
  Json vocab = pieces({{"<unk>", 0.0}, {"a", 0.0}, {"b", 0.0}, {"c", 0.0}, {"d", 0.0}, {"cd", 1.0}, {"ab", 2.0}, {"abc", 5.0}, {"abcd", 10.0}});
  Tokenizer t = Tokenizer::from_json_string(unigram_doc(vocab, 0).dump(), "uni.json");
  EXPECT_EQ(t.model_type(), "Unigram");
  Encoding e = t.encode_full("abcdacdxx");
  EXPECT_EQ(e.ids, (Ids{8, 1, 5, 0}));
  EXPECT_EQ(e.offsets, (Offs{{0, 4}, {4, 5}, {5, 7}, {7, 9}}));
}

TEST(TokenizerUnigram, TiesKeepTheEarliestStartAndUnkScoresMinMinusTen) {
  // a + b = -2 = ab: the candidate from start 0 ("ab") came first and is kept.
  Json vocab = pieces({{"<unk>", 0.0}, {"a", -1.0}, {"b", -1.0}, {"ab", -2.0}});
  Tokenizer t = Tokenizer::from_json_string(unigram_doc(vocab, 0).dump(), "uni.json");
  EXPECT_EQ(t.encode("ab"), (Ids{3}));
  // "xa": x has no piece -> unk edge (score -12), fused with nothing; then a.
  EXPECT_EQ(t.encode("xa"), (Ids{0, 1}));
  // Consecutive unknown chars fuse into one unk token covering all their bytes.
  Encoding u = t.encode_full("\xC3\xA9\xC3\xA8" "b");
  EXPECT_EQ(u.ids, (Ids{0, 2}));
  EXPECT_EQ(u.offsets, (Offs{{0, 4}, {4, 5}}));
  // Without unk_id an unknown char is an error.
  Tokenizer no_unk = Tokenizer::from_json_string(unigram_doc(pieces({{"a", -1.0}}), nullptr).dump(), "uni.json");
  expect_error([&] { no_unk.encode("ax"); }, {"no unk_id"});
  expect_error([] { Tokenizer::from_json_string(unigram_doc(pieces({{"a", -1.0}}), 5).dump(), "uni.json"); },
               {"uni.json: model.unk_id: 5 is outside the vocabulary"});
  expect_error([] { Tokenizer::from_json_string(unigram_doc(pieces({{"a", "x"}}), 0).dump(), "uni.json"); },
               {"uni.json: model.vocab[0][1]: expected a number"});
}

TEST(TokenizerUnigram, ByteFallbackGivesOneTokenPerByteSharingTheSpan) {
  Json vocab = pieces({{"<unk>", 0.0}, {"a", -1.0}, {"<0xC3>", -5.0}, {"<0xA9>", -5.0}});
  Tokenizer t = Tokenizer::from_json_string(unigram_doc(vocab, 0, true).dump(), "uni.json");
  Encoding e = t.encode_full("a\xC3\xA9");
  EXPECT_EQ(e.ids, (Ids{1, 2, 3}));
  EXPECT_EQ(e.offsets, (Offs{{0, 1}, {1, 3}, {1, 3}}));
  // A missing byte piece -> unk.
  EXPECT_EQ(t.encode("\xC3\xA8"), (Ids{0}));
}

TEST(TokenizerMetaspace, PrependSchemesAndSplit) {
  Json always = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "always"}, {"split", true}};
  EXPECT_EQ(pre_tokenize(always, "Hey friend"), (Strings{"\xE2\x96\x81Hey", "\xE2\x96\x81" "friend"}));
  EXPECT_EQ(pre_tokenize(always, "a  b"), (Strings{"\xE2\x96\x81" "a", "\xE2\x96\x81", "\xE2\x96\x81" "b"}));
  Json first = always;
  first["prepend_scheme"] = "first";
  EXPECT_EQ(pre_tokenize(first, "Hey", /*at_start=*/false), (Strings{"Hey"}));
  EXPECT_EQ(pre_tokenize(first, "Hey", /*at_start=*/true), (Strings{"\xE2\x96\x81Hey"}));
  Json never = always;
  never["prepend_scheme"] = "never";
  never["split"] = false;
  EXPECT_EQ(pre_tokenize(never, "a b"), (Strings{"a\xE2\x96\x81" "b"}));
  Json legacy = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"add_prefix_space", false}};
  expect_error([&] { pre_tokenizer_from_json(legacy, "pre_tokenizer"); },
               {"pre_tokenizer.add_prefix_space: false does not match prepend_scheme 'always'"});
  legacy["prepend_scheme"] = "never";
  EXPECT_EQ(pre_tokenize(legacy, "a"), (Strings{"a"}));

  auto d = decoder_from_json(always, "decoder");
  EXPECT_EQ(d->decode_chain({"\xE2\x96\x81Hey", "\xE2\x96\x81" "friend", "\xE2\x96\x81"}),
            (Strings{"Hey", " friend", " "}));
  // In token 0 every replacement char goes, not only the first.
  EXPECT_EQ(d->decode_chain({"\xE2\x96\x81" "a\xE2\x96\x81" "b"}), (Strings{"ab"}));
}

TEST(TokenizerMetaspace, OffsetsOfPrependedAndReplacedChars) {
  // Unigram over Metaspace: "▁a" covers the original "a" (the prepended ▁ takes a's span) and
  // "▁b" covers " b".
  Json doc = unigram_doc(pieces({{"<unk>", 0.0}, {"\xE2\x96\x81" "a", -1.0}, {"\xE2\x96\x81" "b", -1.0}}), 0);
  doc["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "always"}, {"split", true}};
  Tokenizer t = Tokenizer::from_json_string(doc.dump(), "ms.json");
  Encoding e = t.encode_full("a b");
  EXPECT_EQ(e.ids, (Ids{1, 2}));
  EXPECT_EQ(e.offsets, (Offs{{0, 1}, {1, 3}}));
}

TEST(TokenizerPrecompiled, ShortestPrefixPerGraphemeLikeHf) {
  // A charsmap compiled by libsentencepiece_train from these rules: ﬁ->fi, Ａ->A, e+U+0301->é,
  // ™->TM, U+001E->"", A->a, U+3000->" ".
  const std::string charsmap =
      "AAQAAAB8AAAeDQAAAAAAgAgAAIDMAAIAgQ0AAA0AAICEtAIAogUAAAUAAICABAIAgB0AAAEAAICsCAIAgQUAAAoAAIChBQAAAwAAgBMAAAASAAAAFQAA"
      "ABQAAAAXAAAAFgAAABkAAAAYAAAAGwAAABoAAAAdAAAAvLACAB8AAAAeAAAAIQAAACAAAAAjAAAAIgAAACUAAAAkAAAAJwAAACYAAAApAAAAKAAAACsA"
      "AAAqAAAALQAAACwAAAAvAAAALgAAADEAAAAwAAAAMwAAADIAAAA1AAAANAAAADcAAAA2AAAAOQAAADgAAAA7AAAAOgAAAD0AAAA8AAAAPwAAAD4AAABB"
      "AAAAQAAAAEMAAABCAAAARQAAAEQAAABHAAAARgAAAEkAAABIAAAASwAAAEoAAABNAAAATAAAAE8AAABOAAAAUQAAAFAAAABTAAAAUgAAAFUAAABUAAAA"
      "VwAAAFYAAABZAAAAWAAAAFsAAABaAAAAXQAAAFwAAABBdQEAXgAAAGEAAABgAAAAYwAAAGIAAABlAAAAZAAAAGcAAABmAAAAaQAAAGgAAABrAAAAagAA"
      "AG0AAABsAAAAbwAAAG4AAABxAAAAcAAAAHMAAAByAAAAdQAAAHQAAAB3AAAAdgAAAHkAAAB4AAAAZcgCAHoAAAB9AAAAfAAAAH8AAAB+AAAAgQAAAIAA"
      "AACDAAAAggAAAIUAAACEAAAAhwAAAIYAAACJAAAAiAAAAIsAAACKAAAAjQAAAIwAAACPAAAAjgAAAJEAAACQAAAAkwAAAJIAAACVAAAAlAAAAJcAAACW"
      "AAAAmQAAAJgAAACbAAAAmgAAAJ0AAACcAAAAnwAAAJ4AAAChAAAAoAAAAKMAAACiAAAApQAAAKQAAACnAAAApgAAAKkAAACoAAAAqwAAAKoAAACtAAAA"
      "rAAAAK8AAACuAAAAsQAAALAAAACzAAAAsgAAALUAAAC0AAAAtwAAALYAAAC5AAAAuAAAALsAAAC6AAAAvQAAALwAAAC/AAAAvgAAAMEAAADAAAAAwwAA"
      "AMIAAADFAAAAxAAAAMcAAADGAAAAyQAAAMgAAADLAAAAygAAAM0AAADMAAAAzwAAAM4AAADRAAAA0AAAANMAAADSAAAA1QAAANQAAADXAAAA1gAAANkA"
      "AADYAAAA2wAAANoAAADdAAAA3AAAAN8AAADeAAAA4QAAAOAAAADjAAAA4gAAAOUAAADkAAAA5wAAAOYAAADpAAAA6AAAAOsAAADqAAAA7QAAAOwAAADv"
      "AAAA7gAAAO9EAQDwAAAA8wAAAPIAAAD1AAAA9AAAAPcAAAD2AAAA+QAAAPgAAAD7AAAA+gAAAOPYAQDi+AEA/wAAAP4AAAAAIABBAFRNAGEAZmkAw6kA";
  Json pc = {{"type", "Precompiled"}, {"precompiled_charsmap", charsmap}};
  using CS = std::vector<std::pair<std::string, Span>>;
  // ﬁ -> "fi" (both chars take ﬁ's span), Ａ -> "A" (not "a": one pass only).
  EXPECT_EQ(chars_with_spans(normalized(pc, "\xEF\xAC\x81ne \xEF\xBC\xA1" "b")),
            (CS{{"f", {0, 3}}, {"i", {0, 3}}, {"n", {3, 4}}, {"e", {4, 5}}, {" ", {5, 6}}, {"A", {6, 9}}, {"b", {9, 10}}}));
  // A short grapheme is looked up whole: e+U+0301 -> é, which replaces e (its span) and removes
  // the accent.
  EXPECT_EQ(chars_with_spans(normalized(pc, "e\xCC\x81")), (CS{{"\xC3\xA9", {0, 1}}}));
  // ... by its SHORTEST matching prefix: A+U+0301 -> "a" (the accent is lost), aligned to A.
  EXPECT_EQ(chars_with_spans(normalized(pc, "A\xCC\x81")), (CS{{"a", {0, 1}}}));
  // A removal folds into the previous char's change.
  EXPECT_EQ(chars_with_spans(normalized(pc, "x\x1Ey")), (CS{{"x", {0, 1}}, {"y", {2, 3}}}));
  // ... and at the very start there is no previous char: HF then aligns x to the removed char.
  EXPECT_EQ(chars_with_spans(normalized(pc, "\x1Ex")), (CS{{"x", {0, 1}}}));
  EXPECT_EQ(normalized(pc, "a\xE2\x84\xA2" "b").get(), "aTMb");
  EXPECT_EQ(normalized(pc, "a\xE3\x80\x80" "b").get(), "a b");
  // A grapheme of 6+ bytes is looked up char by char: Ａ -> A, the accents stay.
  EXPECT_EQ(normalized(pc, "\xEF\xBC\xA1\xCC\x81\xCC\x81").get(), "A\xCC\x81\xCC\x81");
  // Unchanged text keeps identity alignments.
  EXPECT_EQ(chars_with_spans(normalized(pc, "bc")), (CS{{"b", {0, 1}}, {"c", {1, 2}}}));

  expect_error([] { normalizer_from_json({{"type", "Precompiled"}, {"precompiled_charsmap", "!!!"}}, "normalizer"); },
               {"normalizer.precompiled_charsmap: not valid base64"});
  expect_error([] { normalizer_from_json({{"type", "Precompiled"}, {"precompiled_charsmap", "AAAAAA=="}}, "normalizer"); },
               {"normalizer.precompiled_charsmap", "trie size 0"});
  expect_error([] { normalizer_from_json({{"type", "Precompiled"}, {"precompiled_charsmap", "/wAAAAAA"}}, "normalizer"); },
               {"normalizer.precompiled_charsmap", "does not fit"});
}

TEST(TokenizerNormalizedString, UnicodeFormsCarryAlignments) {
  // NFD of "é" -> e + U+0301, both aligned to é; NFC of e + U+0301 -> é with change -1: it
  // replaces e (so takes e's span) and removes the accent.
  NormalizedString d("\xC3\xA9x");
  d.normalize_unicode(NormalForm::NFD);
  EXPECT_EQ(d.get(), "e\xCC\x81x");
  EXPECT_EQ(chars_with_spans(d), (std::vector<std::pair<std::string, Span>>{{"e", {0, 2}}, {"\xCC\x81", {0, 2}}, {"x", {2, 3}}}));
  NormalizedString c("e\xCC\x81x");
  c.normalize_unicode(NormalForm::NFC);
  EXPECT_EQ(c.get(), "\xC3\xA9x");
  EXPECT_EQ(chars_with_spans(c), (std::vector<std::pair<std::string, Span>>{{"\xC3\xA9", {0, 1}}, {"x", {3, 4}}}));
  // NFKC: ﬁ -> "fi" (i inserted after f, both on ﬁ); ① -> "1".
  NormalizedString k("\xEF\xAC\x81\xE2\x91\xA0");
  k.normalize_unicode(NormalForm::NFKC);
  EXPECT_EQ(k.get(), "fi1");
  EXPECT_EQ(chars_with_spans(k), (std::vector<std::pair<std::string, Span>>{{"f", {0, 3}}, {"i", {0, 3}}, {"1", {3, 6}}}));
  // Canonical reordering: marks sorted by combining class (U+0323 ccc 220 before U+0302 ccc 230).
  EXPECT_EQ(normalize_unicode("o\xCC\x82\xCC\xA3", NormalForm::NFD), "o\xCC\xA3\xCC\x82");
  NormalizedString r("o\xCC\x82\xCC\xA3");
  r.normalize_unicode(NormalForm::NFC);
  EXPECT_EQ(r.get(), "\xE1\xBB\x99");  // ộ
  // Agreement with utf8proc's whole-string normalization on a mixed sample.
  const std::string sample =
      "Caf\xC3\xA9 \xEF\xAC\x81 \xE2\x84\xA1 A\xCC\x8A \xEA\xB0\x80 \xE1\x84\x80\xE1\x85\xA1 \xC7\x85 \xE2\x91\xA0 "
      "o\xCC\x82\xCC\xA3 \xEF\xBC\xA1";
  for (NormalForm f : {NormalForm::NFC, NormalForm::NFD, NormalForm::NFKC, NormalForm::NFKD}) {
    NormalizedString n(sample);
    n.normalize_unicode(f);
    EXPECT_EQ(n.get(), normalize_unicode(sample, f)) << static_cast<int>(f);
    EXPECT_EQ(n.alignments().size(), n.get().size());
  }
}

TEST(TokenizerNormalizedString, StripReplaceAndLowercaseAlignments) {
  NormalizedString s("  ab  ");
  s.lrstrip(true, true);
  EXPECT_EQ(s.get(), "ab");
  EXPECT_EQ(chars_with_spans(s), (std::vector<std::pair<std::string, Span>>{{"a", {2, 3}}, {"b", {3, 4}}}));
  NormalizedString r("a  b");
  r.replace(Regex::compile(" {2,}", "t"), "\xE2\x96\x81");
  EXPECT_EQ(chars_with_spans(r), (std::vector<std::pair<std::string, Span>>{{"a", {0, 1}}, {"\xE2\x96\x81", {2, 3}}, {"b", {3, 4}}}));
  NormalizedString l("\xC4\xB0x");  // U+0130 lowercases to i + U+0307
  l.lowercase();
  EXPECT_EQ(l.get(), "i\xCC\x87x");
  EXPECT_EQ(chars_with_spans(l), (std::vector<std::pair<std::string, Span>>{{"i", {0, 2}}, {"\xCC\x87", {0, 2}}, {"x", {2, 3}}}));
}
