// Tokenizer::encode_pair: type ids, special-token masks, offsets, word/sequence ids, pair
// post-processing (BertProcessing, RobertaProcessing, TemplateProcessing) and truncation
// (longest_first / only_first / only_second), on a tiny hand-computed tokenizer and on GPT-2.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmforge/core/error.h"
#include "lmforge/tokenize/tokenizer.h"
#include "test_util.h"

using namespace lmf;
using Json = nlohmann::json;
using Ids = std::vector<int32_t>;
using Offs = std::vector<std::pair<size_t, size_t>>;
using Mask = std::vector<uint8_t>;

namespace {

// BPE {a, b, c, ab} + [CLS]/[SEP] added tokens, words split on whitespace.
Json tiny_doc(const Json& post) {
  return Json{{"version", "1.0"},
              {"added_tokens",
               {{{"id", 4}, {"content", "[CLS]"}, {"special", true}, {"normalized", false}},
                {{"id", 5}, {"content", "[SEP]"}, {"special", true}, {"normalized", false}}}},
              {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
              {"post_processor", post},
              {"model",
               {{"type", "BPE"},
                {"vocab", {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"[CLS]", 4}, {"[SEP]", 5}}},
                {"merges", {"a b"}}}}};
}

Tokenizer load(const Json& post) { return Tokenizer::from_json_string(tiny_doc(post).dump(), "tiny.json"); }

const Json kBert = {{"type", "BertProcessing"}, {"cls", {"[CLS]", 4}}, {"sep", {"[SEP]", 5}}};
const Json kRoberta = {{"type", "RobertaProcessing"},
                       {"cls", {"[CLS]", 4}},
                       {"sep", {"[SEP]", 5}},
                       {"trim_offsets", true},
                       {"add_prefix_space", false}};

EncodeOptions opts(size_t max_length, Truncation t, bool special = true) {
  EncodeOptions o;
  o.max_length = max_length;
  o.truncation = t;
  o.add_special_tokens = special;
  return o;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

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

}  // namespace

TEST(TokenizerEncoding, SingleSequenceFieldsWithBertProcessing) {
  Tokenizer t = load(kBert);
  Encoding e = t.encode_full("ab c ab");
  EXPECT_EQ(e.ids, (Ids{4, 3, 2, 3, 5}));
  EXPECT_EQ(e.type_ids, (Ids{0, 0, 0, 0, 0}));
  EXPECT_EQ(e.special_tokens_mask, (Mask{1, 0, 0, 0, 1}));
  EXPECT_EQ(e.offsets, (Offs{{0, 0}, {0, 2}, {3, 4}, {5, 7}, {0, 0}}));
  EXPECT_EQ(e.tokens, (std::vector<std::string>{"[CLS]", "ab", "c", "ab", "[SEP]"}));
  EXPECT_EQ(e.word_ids, (Ids{-1, 0, 1, 2, -1}));
  EXPECT_EQ(e.sequence_ids, (Ids{-1, 0, 0, 0, -1}));
  EXPECT_EQ(t.encode("ab c ab"), e.ids);  // encode() is the ids of the same pipeline

  Encoding plain = t.encode_full("ab c ab", opts(0, Truncation::none, false));
  EXPECT_EQ(plain.ids, (Ids{3, 2, 3}));
  EXPECT_EQ(plain.special_tokens_mask, (Mask{0, 0, 0}));
  EXPECT_EQ(t.num_special_tokens_added(false), 2u);
  EXPECT_EQ(t.num_special_tokens_added(true), 3u);
}

TEST(TokenizerEncoding, BertPairTypeIdsOffsetsAndMask) {
  Tokenizer t = load(kBert);
  Encoding e = t.encode_pair("ab c", std::string_view("c ab a"));
  EXPECT_EQ(e.ids, (Ids{4, 3, 2, 5, 2, 3, 0, 5}));
  EXPECT_EQ(e.type_ids, (Ids{0, 0, 0, 0, 1, 1, 1, 1}));
  EXPECT_EQ(e.special_tokens_mask, (Mask{1, 0, 0, 1, 0, 0, 0, 1}));
  // Offsets of the second sequence are into the second string.
  EXPECT_EQ(e.offsets, (Offs{{0, 0}, {0, 2}, {3, 4}, {0, 0}, {0, 1}, {2, 4}, {5, 6}, {0, 0}}));
  EXPECT_EQ(e.sequence_ids, (Ids{-1, 0, 0, -1, 1, 1, 1, -1}));
  // Without special tokens the pair is just concatenated, type ids still 0 / 1.
  Encoding p = t.encode_pair("ab c", std::string_view("c ab a"), opts(0, Truncation::none, false));
  EXPECT_EQ(p.ids, (Ids{3, 2, 2, 3, 0}));
  EXPECT_EQ(p.type_ids, (Ids{0, 0, 1, 1, 1}));
}

TEST(TokenizerEncoding, RobertaPairIsAllTypeZeroWithDoubleSep) {
  Tokenizer t = load(kRoberta);
  Encoding e = t.encode_pair("ab c", std::string_view("c ab a"));
  EXPECT_EQ(e.ids, (Ids{4, 3, 2, 5, 5, 2, 3, 0, 5}));
  EXPECT_EQ(e.type_ids, Ids(9, 0));
  EXPECT_EQ(e.special_tokens_mask, (Mask{1, 0, 0, 1, 1, 0, 0, 0, 1}));
  EXPECT_EQ(e.sequence_ids, (Ids{-1, 0, 0, -1, -1, 1, 1, 1, -1}));
  EXPECT_EQ(t.num_special_tokens_added(true), 4u);
  Encoding p = t.encode_pair("ab", std::string_view("c"), opts(0, Truncation::none, false));
  EXPECT_EQ(p.type_ids, (Ids{0, 0}));  // RobertaProcessing zeroes type ids even without specials
}

TEST(TokenizerEncoding, TemplatePairUsesTemplateTypeIds) {
  Json tpl = {{"type", "TemplateProcessing"},
              {"single",
               {{{"SpecialToken", {{"id", "[CLS]"}, {"type_id", 0}}}},
                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 0}}}}}},
              {"pair",
               {{{"SpecialToken", {{"id", "[CLS]"}, {"type_id", 0}}}},
                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 0}}}},
                {{"Sequence", {{"id", "B"}, {"type_id", 1}}}},
                {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 1}}}}}},
              {"special_tokens",
               {{"[CLS]", {{"id", "[CLS]"}, {"ids", {4}}, {"tokens", {"[CLS]"}}}},
                {"[SEP]", {{"id", "[SEP]"}, {"ids", {5}}, {"tokens", {"[SEP]"}}}}}}};
  Tokenizer t = load(tpl);
  Encoding e = t.encode_pair("ab c", std::string_view("c ab a"));
  EXPECT_EQ(e.ids, (Ids{4, 3, 2, 5, 2, 3, 0, 5}));
  EXPECT_EQ(e.type_ids, (Ids{0, 0, 0, 0, 1, 1, 1, 1}));
  EXPECT_EQ(e.special_tokens_mask, (Mask{1, 0, 0, 1, 0, 0, 0, 1}));
  EXPECT_EQ(t.num_special_tokens_added(true), 3u);

  Json single_only = tpl;
  single_only.erase("pair");
  expect_error([&] { load(single_only).encode_pair("a", std::string_view("b")); }, {"no pair template"});
}

TEST(TokenizerEncoding, TruncationStrategies) {
  Tokenizer t = load(kBert);
  const std::string_view a = "ab c", b = "c ab a";  // 2 and 3 tokens, 3 added for a pair
  // longest_first, 3 slots: n1 = 2, n2 = max(2, 1) = 2, 4 > 3 -> 1 and 2.
  EXPECT_EQ(t.encode_pair(a, b, opts(6, Truncation::longest_first)).ids, (Ids{4, 3, 5, 2, 3, 5}));
  // Enough room: untouched.
  EXPECT_EQ(t.encode_pair(a, b, opts(8, Truncation::longest_first)).ids, (Ids{4, 3, 2, 5, 2, 3, 0, 5}));
  // 4 slots: n1 = 2, n2 = max(2, 2) = 2 -> A whole, B cut to 2.
  EXPECT_EQ(t.encode_pair(a, b, opts(7, Truncation::longest_first)).ids, (Ids{4, 3, 2, 5, 2, 3, 5}));
  // only_second removes 2 from B; only_first cannot (A has only 2 tokens).
  EXPECT_EQ(t.encode_pair(a, b, opts(6, Truncation::only_second)).ids, (Ids{4, 3, 2, 5, 2, 5}));
  expect_error([&] { t.encode_pair(a, b, opts(6, Truncation::only_first)); }, {"first sequence", "too short"});
  EXPECT_EQ(t.encode_pair(b, a, opts(6, Truncation::only_first)).ids, (Ids{4, 2, 5, 3, 2, 5}));
  expect_error([&] { t.encode_full(a, opts(3, Truncation::only_second)); }, {"only_second needs a second sequence"});
  // Exactly the special tokens: both sequences emptied.
  EXPECT_EQ(t.encode_pair(a, b, opts(3, Truncation::longest_first)).ids, (Ids{4, 5, 5}));
  expect_error([&] { t.encode_pair(a, b, opts(2, Truncation::longest_first)); }, {"max_length 2", "3 special tokens"});
  // Single sequence: max_length counts the 2 special tokens; none = no truncation.
  EXPECT_EQ(t.encode_full("ab c ab", opts(4, Truncation::longest_first)).ids, (Ids{4, 3, 2, 5}));
  EXPECT_EQ(t.encode_full("ab c ab", opts(4, Truncation::none)).ids.size(), 5u);
  // Without special tokens nothing is reserved.
  EXPECT_EQ(t.encode_full("ab c ab", opts(2, Truncation::longest_first, false)).ids, (Ids{3, 2}));
  // Truncation keeps every field aligned.
  Encoding e = t.encode_pair(a, b, opts(6, Truncation::longest_first));
  EXPECT_EQ(e.offsets, (Offs{{0, 0}, {0, 2}, {0, 0}, {0, 1}, {2, 4}, {0, 0}}));
  EXPECT_EQ(e.type_ids, (Ids{0, 0, 0, 1, 1, 1}));
}

TEST(TokenizerEncoding, LongestFirstSplitsEvenlyWhenBothAreLong) {
  Tokenizer t = load(kBert);
  std::string a = "a a a a a a a", b = "c c c c c c c c c";  // 7 and 9 tokens
  Encoding e = t.encode_pair(a, std::string_view(b), opts(10, Truncation::longest_first));
  // 7 slots: n1 = 7 > 7 - 7... -> n2 = max(7, 0) = 7; 14 > 7 -> 3 and 4 (the longer gets the odd one).
  EXPECT_EQ(e.ids, (Ids{4, 0, 0, 0, 5, 2, 2, 2, 2, 5}));
}

TEST(TokenizerEncoding, AddedTokenInTextHasItsOffsetsAndNoSpecialMask) {
  Tokenizer t = load(kBert);
  Encoding e = t.encode_full("ab[CLS]c", opts(0, Truncation::none, false));
  EXPECT_EQ(e.ids, (Ids{3, 4, 2}));
  EXPECT_EQ(e.offsets, (Offs{{0, 2}, {2, 7}, {7, 8}}));
  EXPECT_EQ(e.special_tokens_mask, (Mask{0, 0, 0}));
  EXPECT_EQ(e.word_ids, (Ids{0, 1, 2}));
}

TEST(TokenizerEncoding, Gpt2ByteLevelOffsetsAreBytesOfTheInput) {
  Tokenizer t = Tokenizer::from_gpt2_files(test::source_path("data/tokenizers/gpt2/vocab.json"),
                                           test::source_path("data/tokenizers/gpt2/merges.txt"));
  Encoding e = t.encode_full("Hello world");
  EXPECT_EQ(e.ids, (Ids{15496, 995}));
  EXPECT_EQ(e.tokens, (std::vector<std::string>{"Hello", "\xC4\xA0world"}));
  // The GPT-2 post-processor does not trim offsets, so the space stays in " world".
  EXPECT_EQ(e.offsets, (Offs{{0, 5}, {5, 11}}));
  // Every byte-level token of a multi-byte char maps to the whole char.
  const std::string text = "h\xC3\xA9 \xE8\xAF\xAD";  // "hé 语"
  Encoding m = t.encode_full(text);
  ASSERT_FALSE(m.ids.empty());
  for (auto [s, en] : m.offsets) {
    EXPECT_LE(s, en);
    EXPECT_LE(en, text.size());
    for (size_t x : {s, en}) EXPECT_TRUE(x == text.size() || (static_cast<unsigned char>(text[x]) & 0xC0) != 0x80);
  }
  EXPECT_EQ(m.offsets.back().second, text.size());
  // A pair with the byte-level processor: type ids 0 / 1, nothing added.
  Encoding p = t.encode_pair("Hello", std::string_view(" world"));
  EXPECT_EQ(p.ids, (Ids{15496, 995}));
  EXPECT_EQ(p.type_ids, (Ids{0, 1}));
  EXPECT_EQ(p.offsets, (Offs{{0, 5}, {0, 6}}));
}

TEST(TokenizerEncoding, RobertaTrimOffsetsDropsTheSpace) {
  Json doc = Json::parse(read_text(test::source_path("data/tokenizers/gpt-neox-20b/tokenizer.json")));
  doc["post_processor"] = {{"type", "RobertaProcessing"},
                           {"cls", {"<|endoftext|>", 0}},
                           {"sep", {"<|endoftext|>", 0}},
                           {"trim_offsets", true},
                           {"add_prefix_space", false}};
  Tokenizer t = Tokenizer::from_json_string(doc.dump(), "neox-roberta.json");
  Encoding e = t.encode_full("Hello world");
  ASSERT_EQ(e.ids.size(), 4u);
  EXPECT_EQ(e.offsets, (Offs{{0, 0}, {0, 5}, {6, 11}, {0, 0}}));
}

TEST(TokenizerEncoding, InvalidUtf8NamesTheSequence) {
  Tokenizer t = load(kBert);
  expect_error([&] { t.encode_pair("ab", std::string_view("a\xFF")); }, {"second sequence", "byte offset 1"});
}
