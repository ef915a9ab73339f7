// SentencePiece .model files through libsentencepiece, and the other from_file() dispatches
// (BERT vocab.txt), on a tiny char model compiled here with custom normalization rules
// (tests/fixtures/tokenizer/tiny_rules_char.model: ﬁ->fi, Ａ->A, e+U+0301->é, ™->TM, U+001E->"",
// A->a, U+3000->" "; trained on lowercase words by libsentencepiece_train 0.1.97).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "lmforge/core/error.h"
#include "lmforge/tokenize/tokenizer.h"
#include "test_util.h"

using namespace lmf;
using Ids = std::vector<int32_t>;

namespace {

template <class F>
void expect_error(F&& f, std::initializer_list<std::string> needles) {
  try {
    f();
    ADD_FAILURE() << "expected lmf::Error";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
  }
}

}  // namespace

TEST(TokenizerSpm, CharModelAppliesItsNormalizationRules) {
  Tokenizer t = Tokenizer::from_file(test::source_path("tests/fixtures/tokenizer/tiny_rules_char.model"));
  EXPECT_EQ(t.model_type(), "SentencePiece");
  auto id = [&](const char* p) {
    auto v = t.token_to_id(p);
    EXPECT_TRUE(v.has_value()) << p;
    return v.value_or(-1);
  };
  const int32_t space = id("\xE2\x96\x81");
  // "ﬁne" -> "fine" by the rules, then one piece per char after the dummy-prefix ▁.
  Encoding e = t.encode_full("\xEF\xAC\x81ne");
  EXPECT_EQ(e.ids, (Ids{space, id("f"), id("i"), id("n"), id("e")}));
  // "A" -> "a", ideographic space -> ' ' -> ▁.
  EXPECT_EQ(t.encode("A\xE3\x80\x80" "b"), (Ids{space, id("a"), space, id("b")}));
  // Pieces the model lacks are unk, and the token keeps the surface text.
  Encoding u = t.encode_full("a\xE4\xB8\xAD");
  ASSERT_EQ(u.ids.size(), 3u);
  EXPECT_EQ(u.ids[2], 0);  // <unk>
  EXPECT_EQ(u.tokens[2], "\xE4\xB8\xAD");
  EXPECT_EQ(u.offsets[2], (std::pair<size_t, size_t>{1, 4}));
  EXPECT_EQ(t.decode(t.encode("fine alpha")), "fine alpha");
  EXPECT_FALSE(t.token_to_id("no-such-piece").has_value());
  EXPECT_EQ(t.vocab_size(), 25);  // a char model: <unk> <s> </s>, ▁ and the 21 letters of the training words
  EXPECT_TRUE(t.bos_id().has_value());
  EXPECT_TRUE(t.eos_id().has_value());
  // Same file, same fingerprint; another model, another one.
  EXPECT_EQ(t.fingerprint(),
            Tokenizer::from_sentencepiece_file(test::source_path("tests/fixtures/tokenizer/tiny_rules_char.model")).fingerprint());
  EXPECT_NE(t.fingerprint(), Tokenizer::from_file(test::source_path("data/tokenizers/spm-unigram-4k/spm.model")).fingerprint());
}

TEST(TokenizerSpm, CorruptOrMissingModelIsOneLineError) {
  std::string dir = test::scratch_dir("spm_bad");
  std::ofstream(dir + "/junk.model", std::ios::binary) << std::string("\x0a\xff\xff\xff\x0fgarbage", 12);
  expect_error([&] { Tokenizer::from_file(dir + "/junk.model"); }, {"junk.model: model: not a valid SentencePiece model"});
  // A truncated copy of a real model.
  std::ifstream in(test::source_path("data/tokenizers/spm-unigram-4k/spm.model"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(dir + "/cut.model", std::ios::binary) << bytes.substr(0, bytes.size() / 3);
  expect_error([&] { Tokenizer::from_file(dir + "/cut.model"); }, {"cut.model: model: not a valid SentencePiece model"});
  expect_error([&] { Tokenizer::from_file(dir + "/absent.model"); }, {"absent.model: cannot open file"});
}

TEST(TokenizerSpm, VocabTxtFollowsDoLowerCase) {
  std::string dir = test::scratch_dir("vocab_txt_case");
  std::ofstream(dir + "/vocab.txt") << "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nHello\n";
  // No tokenizer_config.json: lowercase (transformers' BertTokenizer default).
  EXPECT_EQ(Tokenizer::from_file(dir + "/vocab.txt").encode("Hello", false), (Ids{5}));
  std::ofstream(dir + "/tokenizer_config.json") << "{\"do_lower_case\": false}";
  EXPECT_EQ(Tokenizer::from_file(dir + "/vocab.txt").encode("Hello", false), (Ids{6}));
  std::ofstream(dir + "/tokenizer_config.json") << "{\"do_lower_case\": \"no\"}";
  expect_error([&] { Tokenizer::from_file(dir + "/vocab.txt"); }, {"tokenizer_config.json: do_lower_case"});
  // The shipped mBERT folder says cased.
  Tokenizer mbert = Tokenizer::from_file(test::source_path("data/tokenizers/bert-base-multilingual-cased/vocab.txt"));
  EXPECT_EQ(mbert.encode("Hello world!"), (Ids{101, 31178, 11356, 106, 102}));
  EXPECT_EQ(mbert.mask_id(), 103);
}
