// Tokenizer: known encodings of the shipped GPT-2 / GPT-NeoX files, round trips, hand-computed
// BPE and added-token cases on tiny tokenizers, special-token roles, fingerprints, threads.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "lmforge/core/error.h"
#include "lmforge/core/philox.h"
#include "lmforge/tokenize/tokenizer.h"
#include "lmforge/tokenize/unicode.h"
#include "test_util.h"

using namespace lmf;
using Json = nlohmann::json;
using Ids = std::vector<int32_t>;

namespace {

const Tokenizer& neox() {
  static const Tokenizer t = Tokenizer::from_file(test::source_path("data/tokenizers/gpt-neox-20b/tokenizer.json"));
  return t;
}

const Tokenizer& gpt2() {
  static const Tokenizer t = Tokenizer::from_gpt2_files(test::source_path("data/tokenizers/gpt2/vocab.json"),
                                                        test::source_path("data/tokenizers/gpt2/merges.txt"));
  return t;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> corpus_texts() {
  std::string corpus = read_text(test::source_path("tests/fixtures/tokenizer/corpus.txt"));
  std::vector<std::string> texts;
  size_t pos = 0;
  while (true) {
    size_t nl = corpus.find('\n', pos);
    texts.push_back(corpus.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos));
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  texts.push_back(corpus);
  return texts;
}

int32_t id_of(const Tokenizer& t, const std::string& token) {
  auto id = t.token_to_id(token);
  EXPECT_TRUE(id.has_value()) << "no token '" << token << "'";
  return id.value_or(-1);
}

// A tokenizer.json around a tiny BPE model; no pre-tokenizer, so the whole text is one word.
Json tiny_doc(Json vocab, Json merges) {
  return Json{{"version", "1.0"},
              {"model", {{"type", "BPE"}, {"vocab", std::move(vocab)}, {"merges", std::move(merges)}}}};
}

Tokenizer load(const Json& doc) { return Tokenizer::from_json_string(doc.dump(), "tiny.json"); }

// Runs f, expects an lmf::Error whose message contains every needle.
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

TEST(TokenizerBpe, Gpt2KnownEncodings) {
  const Tokenizer& t = gpt2();
  EXPECT_EQ(t.encode("Hello world"), (Ids{15496, 995}));
  EXPECT_EQ(t.encode(" Hello"), (Ids{18435}));
  EXPECT_EQ(t.encode("<|endoftext|>"), (Ids{50256}));
  EXPECT_EQ(t.encode("a<|endoftext|>b"), (Ids{id_of(t, "a"), 50256, id_of(t, "b")}));
  EXPECT_EQ(t.decode({15496, 995}), "Hello world");
  EXPECT_EQ(t.vocab_size(), 50257);
  EXPECT_EQ(t.model_type(), "BPE");
  EXPECT_EQ(t.eos_id(), 50256);
  EXPECT_EQ(t.bos_id(), 50256);
  EXPECT_FALSE(t.pad_id().has_value());
  EXPECT_TRUE(t.is_special(50256));
  EXPECT_FALSE(t.is_special(995));
  EXPECT_EQ(t.id_to_token(995), "\xC4\xA0world");  // "Ġworld"
  EXPECT_FALSE(t.id_to_token(50257).has_value());
  EXPECT_TRUE(t.encode("").empty());
}

TEST(TokenizerBpe, Gpt2PreTokenizationSplitsAsTheGpt2Regex) {
  const Tokenizer& t = gpt2();
  // "Hello" "Ġworld" "'s" "Ġ" "Ġend": \s+(?!\S) leaves the last space of a run to the next word.
  EXPECT_EQ(t.encode("Hello world's  end"), (Ids{15496, 995, id_of(t, "'s"), id_of(t, "\xC4\xA0"),
                                                 id_of(t,
                                                       "\xC4\xA0"
                                                       "end")}));
  // Contractions are lowercase only: "'S" is punctuation + letter.
  Ids upper = t.encode("IT'S");
  EXPECT_EQ(upper.size(), 3u);
  EXPECT_EQ(upper[1], id_of(t, "'"));
}

TEST(TokenizerBpe, NeoxKnownEncodingsAndAddedTokens) {
  const Tokenizer& t = neox();
  EXPECT_EQ(t.encode("Hello world"), (Ids{12092, 1533}));
  EXPECT_EQ(t.encode("Hello, I am"), (Ids{12092, 13, 309, 717}));
  EXPECT_EQ(t.vocab_size(), 50277);
  EXPECT_EQ(t.encode("<|endoftext|>"), (Ids{0}));
  EXPECT_EQ(t.encode("x<|padding|>y"), (Ids{id_of(t, "x"), 1, id_of(t, "y")}));
  // Runs of 2..24 spaces are normalized added tokens 50276..50254, matched leftmost-longest;
  // the word after them loses its space prefix.
  EXPECT_EQ(t.encode("a    b"), (Ids{id_of(t, "a"), 50274, id_of(t, "b")}));
  EXPECT_EQ(t.encode("a  b"), (Ids{id_of(t, "a"), 50276, id_of(t, "b")}));
  EXPECT_EQ(t.encode(std::string(30, ' ')), (Ids{50254, 50272}));  // 24 + 6
  EXPECT_EQ(t.decode({id_of(t, "a"), 50274, id_of(t, "b")}), "a    b");
  EXPECT_EQ(t.eos_id(), 0);
  EXPECT_EQ(t.bos_id(), 0);
  EXPECT_EQ(t.pad_id(), 1);
  EXPECT_EQ(t.decode({12092, 0, 1533}, /*skip_special_tokens=*/true), "Hello world");
  EXPECT_EQ(t.decode({12092, 0, 1533}), "Hello<|endoftext|> world");
  EXPECT_EQ(t.num_special_tokens_added(), 0u);
  // NFC normalizer: a decomposed é encodes like the composed one.
  EXPECT_EQ(t.encode("caf"
                     "e\xCC\x81"),
            t.encode("caf\xC3\xA9"));
}

TEST(TokenizerBpe, RoundTripsMultilingualCorpus) {
  std::vector<std::string> texts = corpus_texts();
  ASSERT_GT(texts.size(), 50u);
  for (const std::string& x : texts) {
    EXPECT_EQ(gpt2().decode(gpt2().encode(x)), x) << x;
    // NeoX normalizes with NFC first, so it round-trips to the NFC form.
    EXPECT_EQ(neox().decode(neox().encode(x)), tok::normalize_unicode(x, tok::NormalForm::NFC)) << x;
  }
  // The NFD line really changes under NFC (so the check above is not vacuous).
  bool saw_nfd = false;
  for (const std::string& x : texts) saw_nfd |= tok::normalize_unicode(x, tok::NormalForm::NFC) != x;
  EXPECT_TRUE(saw_nfd);
}

TEST(TokenizerBpe, RoundTripsRandomUnicode) {
  uint64_t counter = 0;
  auto next_u32 = [&] { return philox4x32_10(1234, counter++, 0).v[0]; };
  const char32_t pools[][2] = {{0x20, 0x7E},     {0xA0, 0x2FF},      {0x400, 0x4FF},
                               {0x4E00, 0x9FFF}, {0x1F300, 0x1F6FF}, {0x9, 0xD}};
  for (int doc = 0; doc < 200; doc++) {
    std::string s;
    int len = 1 + static_cast<int>(next_u32() % 60);
    for (int k = 0; k < len; k++) {
      const auto& p = pools[next_u32() % 6];
      tok::append_utf8(s, p[0] + next_u32() % (p[1] - p[0] + 1));
    }
    Ids ids = gpt2().encode(s);
    EXPECT_FALSE(ids.empty());
    EXPECT_EQ(gpt2().decode(ids), s);
  }
}

TEST(TokenizerBpe, DecodeIsLossyOnBrokenUtf8AndSkipsUnknownIds) {
  const Tokenizer& t = gpt2();
  // "â" is the byte-level char of byte 0xE2: alone it is a truncated 3-byte sequence.
  EXPECT_EQ(t.decode({id_of(t, "\xC3\xA2")}), "\xEF\xBF\xBD");
  EXPECT_EQ(t.decode({id_of(t, "\xC3\xA2"), id_of(t, "A")}),
            "\xEF\xBF\xBD"
            "A");
  EXPECT_EQ(t.decode({15496, 1000000, 995}), "Hello world");  // HF drops ids it does not know
  expect_error([&] { t.decode({-1}); }, {"negative id"});
  expect_error([&] { t.encode("ok \xC3\x28 bad"); }, {"not valid UTF-8", "byte offset 3"});
}

TEST(TokenizerBpe, MergesFollowRankThenLeftmost) {
  Json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"aa", 5}, {"aaaa", 6}};
  // Lower rank wins regardless of position.
  EXPECT_EQ(load(tiny_doc(vocab, {"b c", "a b"})).encode("abc"), (Ids{0, 4}));
  EXPECT_EQ(load(tiny_doc(vocab, {"a b", "b c"})).encode("abc"), (Ids{3, 2}));
  // Equal rank: leftmost first, and a symbol merged away cannot merge again.
  Tokenizer aa = load(tiny_doc(vocab, {"a a"}));
  EXPECT_EQ(aa.encode("aaa"), (Ids{5, 0}));
  EXPECT_EQ(aa.encode("aaaaa"), (Ids{5, 5, 0}));
  EXPECT_EQ(load(tiny_doc(vocab, {"a a", "aa aa"})).encode("aaaaa"), (Ids{6, 0}));
  // [a, b] pair form of merges is accepted too.
  EXPECT_EQ(load(tiny_doc(vocab, Json::array({Json::array({"b", "c"})}))).encode("abc"), (Ids{0, 4}));
  // Without unk_token an unknown char is dropped (HF behaviour).
  EXPECT_EQ(load(tiny_doc(vocab, {"a b"})).encode("axb"), (Ids{3}));
}

TEST(TokenizerBpe, UnknownCharsUnkFuseAndByteFallback) {
  Json vocab = {{"a", 0}, {"b", 1}, {"<unk>", 2}, {"<0x78>", 3}};
  Json doc = tiny_doc(vocab, Json::array());
  doc["model"]["unk_token"] = "<unk>";
  EXPECT_EQ(load(doc).encode("ayyb"), (Ids{0, 2, 2, 1}));
  doc["model"]["fuse_unk"] = true;
  EXPECT_EQ(load(doc).encode("ayyb"), (Ids{0, 2, 1}));
  doc["model"]["byte_fallback"] = true;
  EXPECT_EQ(load(doc).encode("axb"), (Ids{0, 3, 1}));  // 'x' = 0x78 exists as a byte token
  EXPECT_EQ(load(doc).encode("ayb"), (Ids{0, 2, 1}));  // 0x79 does not: unk
}

TEST(TokenizerBpe, ContinuingSubwordPrefixAndSuffix) {
  Json doc = tiny_doc({{"a", 0}, {"##b", 1}, {"ab", 2}, {"b", 3}}, {"a ##b"});
  doc["model"]["continuing_subword_prefix"] = "##";
  EXPECT_EQ(load(doc).encode("ab"), (Ids{2}));
  EXPECT_EQ(load(doc).encode("ba"), Ids{3});  // "##a" is unknown and dropped
  Json sfx = tiny_doc({{"a", 0}, {"b</w>", 1}, {"ab</w>", 2}}, {"a b</w>"});
  sfx["model"]["end_of_word_suffix"] = "</w>";
  EXPECT_EQ(load(sfx).encode("ab"), (Ids{2}));
}

namespace {

// Letters, space and brackets as single-char tokens; added tokens are appended by each test.
Json added_doc() {
  Json vocab = Json::object();
  int id = 0;
  for (const char* c : {"a", "b", "c", "d", " ", "<", ">", "[", "]", "w", "m", "r", "h", "e", "y", "x"})
    vocab[c] = id++;
  Json doc = tiny_doc(vocab, Json::array());
  doc["added_tokens"] = Json::array();
  return doc;
}

void add_token(Json& doc, const std::string& content, Json flags) {
  flags["content"] = content;
  flags["id"] = 999;  // ignored: ids are recomputed as HF does
  doc["added_tokens"].push_back(flags);
}

}  // namespace

TEST(TokenizerAddedTokens, StripSingleWordAndIds) {
  Json doc = added_doc();  // 16 model tokens: ids 0..15
  add_token(doc, "<m>", {{"lstrip", true}, {"special", true}, {"normalized", false}});
  add_token(doc, "<r>", {{"rstrip", true}, {"normalized", false}});
  add_token(doc, "[w]", {{"single_word", true}, {"normalized", false}});
  add_token(doc, "b", {{"special", true}, {"normalized", false}});  // already in the vocab
  Tokenizer t = load(doc);
  const int32_t a = 0, b = 1, sp = 4, lb = 7, w = 9, rb = 8, M = 16, R = 17, W = 18;
  EXPECT_EQ(t.token_to_id("<m>"), M);
  EXPECT_EQ(t.token_to_id("b"), b);
  EXPECT_EQ(t.vocab_size(), 19);
  EXPECT_EQ(t.encode("a  <m>a"), (Ids{a, M, a}));  // lstrip swallows the spaces before
  EXPECT_EQ(t.encode("a<r>  a"), (Ids{a, R, a}));  // rstrip swallows the spaces after
  EXPECT_EQ(t.encode("a [w] a"), (Ids{a, sp, W, sp, a}));
  EXPECT_EQ(t.encode("a[w] a"), (Ids{a, lb, w, rb, sp, a}));  // touches a word char: not a match
  EXPECT_EQ(t.encode("[w]"), (Ids{W}));
  EXPECT_EQ(t.decode({a, M, b, a}, /*skip_special_tokens=*/true), "a a");  // tokens joined with " " (no decoder)
  EXPECT_EQ(t.decode({a, M, b, a}), "a <m> b a");
  EXPECT_TRUE(t.is_special(M));
  EXPECT_FALSE(t.is_special(R));
}

TEST(TokenizerAddedTokens, LeftmostLongestAndNormalizedMatching) {
  Json doc = added_doc();
  doc["normalizer"] = {{"type", "Lowercase"}};
  add_token(doc, "ab", {{"normalized", true}});
  add_token(doc, "abc", {{"normalized", true}});
  add_token(doc, "<H>", {{"normalized", false}, {"special", true}});
  add_token(doc, "HEY", {{"normalized", true}});  // matched by its normalized form "hey"
  Tokenizer t = load(doc);
  const int32_t AB = 16, ABC = 17, H = 18, HEY = 19, d = 3, lt = 5, gt = 6, h = 12;
  EXPECT_EQ(t.encode("abcd"), (Ids{ABC, d}));
  EXPECT_EQ(t.encode("ABd"), (Ids{AB, d}));            // lowercased first, then matched
  EXPECT_EQ(t.encode("<H><h>"), (Ids{H, lt, h, gt}));  // raw match is case-sensitive
  EXPECT_EQ(t.encode("Hey"), (Ids{HEY}));
  EXPECT_EQ(t.id_to_token(HEY), "hey");  // an added token decodes to its normalized form
  EXPECT_EQ(t.decode({HEY}), "hey");
}

TEST(TokenizerBpe, TemplatePostProcessorAddsSpecialTokens) {
  Json doc = added_doc();
  add_token(doc, "<s>", {{"special", true}, {"normalized", false}});
  add_token(doc, "</s>", {{"special", true}, {"normalized", false}});
  doc["post_processor"] = {{"type", "TemplateProcessing"},
                           {"single",
                            {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                             {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                             {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
                           {"pair", Json::array()},
                           {"special_tokens",
                            {{"<s>", {{"id", "<s>"}, {"ids", {16}}, {"tokens", {"<s>"}}}},
                             {"</s>", {{"id", "</s>"}, {"ids", {17}}, {"tokens", {"</s>"}}}}}}};
  Tokenizer t = load(doc);
  EXPECT_EQ(t.encode("ab"), (Ids{16, 0, 1, 17}));
  EXPECT_EQ(t.encode("ab", /*add_special_tokens=*/false), (Ids{0, 1}));
  EXPECT_EQ(t.num_special_tokens_added(), 2u);
  EXPECT_EQ(t.bos_id(), 16);
  EXPECT_EQ(t.eos_id(), 17);
  doc["post_processor"] = {{"type", "BertProcessing"}, {"cls", {"<s>", 16}}, {"sep", {"</s>", 17}}};
  EXPECT_EQ(load(doc).encode("a"), (Ids{16, 0, 17}));
}

TEST(TokenizerBpe, RolesComeFromTokenizerConfig) {
  std::string dir = test::scratch_dir("tokenizer_roles");
  Json doc = added_doc();
  add_token(doc, "<|endoftext|>", {{"special", true}, {"normalized", false}});
  std::ofstream(dir + "/tokenizer.json") << doc.dump();
  Tokenizer plain = Tokenizer::from_file(dir + "/tokenizer.json");
  EXPECT_EQ(plain.eos_id(), 16);  // well-known name
  std::ofstream(dir + "/tokenizer_config.json")
      << Json{{"eos_token", {{"content", "x"}, {"special", true}}}, {"pad_token", "y"}, {"bos_token", nullptr}}.dump();
  Tokenizer t = Tokenizer::from_file(dir + "/tokenizer.json");
  EXPECT_EQ(t.eos_id(), 15);
  EXPECT_EQ(t.pad_id(), 14);
  EXPECT_FALSE(t.bos_id().has_value());  // explicitly null
  t.set_pad_id(3);
  EXPECT_EQ(t.pad_id(), 3);
  expect_error([&] { t.set_eos_id(17); }, {"set_eos_id", "outside [0, 17)"});
  std::ofstream(dir + "/tokenizer_config.json") << Json{{"eos_token", "<nope>"}}.dump();
  expect_error([&] { Tokenizer::from_file(dir + "/tokenizer.json"); },
               {"tokenizer_config.json", "eos_token", "'<nope>' is not in the vocabulary"});
}

TEST(TokenizerBpe, FingerprintIsStableAndContentSensitive) {
  // Pinned: shards store this value. If it changes on purpose, bump the version string in
  // compute_fingerprint (tokenizer_json.cc) so old shards are refused loudly.
  EXPECT_EQ(neox().fingerprint_hex(), "23dd279945005531");
  EXPECT_EQ(gpt2().fingerprint_hex(), "a82247cfbcac627b");
  Json vocab = {{"a", 0}, {"b", 1}, {"ab", 2}, {"ba", 3}};
  Json doc = tiny_doc(vocab, {"a b", "b a"});
  uint64_t base = load(doc).fingerprint();
  EXPECT_EQ(load(doc).fingerprint(), base);
  EXPECT_NE(load(tiny_doc(vocab, {"b a", "a b"})).fingerprint(), base);  // merge order
  Json vocab2 = vocab;
  vocab2["ab"] = 3;
  vocab2["ba"] = 2;
  EXPECT_NE(load(tiny_doc(vocab2, {"a b", "b a"})).fingerprint(), base);  // ids
  Json with_norm = doc;
  with_norm["normalizer"] = {{"type", "NFC"}};
  EXPECT_NE(load(with_norm).fingerprint(), base);
  Json with_decoder = doc;
  with_decoder["decoder"] = {{"type", "ByteLevel"}};
  EXPECT_EQ(load(with_decoder).fingerprint(), base);  // decoding does not change ids
}

TEST(TokenizerBpe, ConcurrentEncodeMatchesSerial) {
  std::vector<std::string> texts = corpus_texts();
  std::vector<Ids> serial;
  for (const auto& x : texts) serial.push_back(neox().encode(x));
  std::vector<int> mismatches(8, 0);
  std::vector<std::thread> threads;
  for (int th = 0; th < 8; th++) {
    threads.emplace_back([&, th] {
      for (int rep = 0; rep < 5; rep++)
        for (size_t i = 0; i < texts.size(); i++) {
          size_t k = (i + th * 7) % texts.size();
          if (neox().encode(texts[k]) != serial[k]) mismatches[th]++;
        }
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

TEST(TokenizerErrors, MalformedAndUnsupportedFiles) {
  std::string dir = test::scratch_dir("tokenizer_errors");
  auto write = [&](const Json& doc) {
    std::ofstream(dir + "/tokenizer.json") << doc.dump();
    return dir + "/tokenizer.json";
  };
  Json base = tiny_doc({{"a", 0}, {"b", 1}, {"ab", 2}}, {"a b"});

  Json wp = base;
  wp["model"]["type"] = "WordLevel";
  std::string p = write(wp);
  expect_error([&] { Tokenizer::from_file(p); }, {p + ": model.type: 'WordLevel' is not supported"});

  Json bad_norm = base;
  bad_norm["normalizer"] = {{"type", "ByteLevel"}};
  expect_error([&] { Tokenizer::from_file(write(bad_norm)); }, {"tokenizer.json: normalizer.type: 'ByteLevel'"});

  Json bad_seq = base;
  bad_seq["pre_tokenizer"] = {{"type", "Sequence"},
                              {"pretokenizers", {{{"type", "ByteLevel"}}, {{"type", "UnicodeScripts"}}}}};
  expect_error([&] { load(bad_seq); }, {"tiny.json: pre_tokenizer.pretokenizers[1].type: 'UnicodeScripts'"});

  Json bad_regex = base;
  bad_regex["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  expect_error([&] { load(bad_regex); }, {"pre_tokenizer.pattern: invalid regex '(unclosed'"});

  Json bad_behavior = base;
  bad_behavior["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"String", " "}}}, {"behavior", "Sideways"}};
  expect_error([&] { load(bad_behavior); }, {"pre_tokenizer.behavior: unknown split behavior 'Sideways'"});

  expect_error([&] { load(tiny_doc({{"a", 0}}, {"a q"})); }, {"model.merges[0]: merge part 'q' is not in model.vocab"});
  expect_error([&] { load(tiny_doc({{"a", 0}, {"b", 1}}, {"a b"})); }, {"merged token 'ab' is not in model.vocab"});
  expect_error([&] { load(tiny_doc({{"a", 0}}, {"a b c"})); }, {"model.merges[0]: expected \"a b\""});
  expect_error([&] { load(tiny_doc({{"a", 0}, {"b", 0}}, Json::array())); }, {"model.vocab: id 0 is used by both"});
  expect_error(
      [&] {
        load(tiny_doc({{"a", -3}}, Json::array()));
      },
      {"model.vocab['a']: expected a non-negative integer id"});
  expect_error([&] { load(tiny_doc({{"a", 0}}, Json::object())); }, {"model.merges: expected an array"});

  Json dropout = base;
  dropout["model"]["dropout"] = 0.1;
  expect_error([&] { load(dropout); }, {"model.dropout: BPE dropout 0.1 is not supported"});
  Json unk = base;
  unk["model"]["unk_token"] = "<unk>";
  expect_error([&] { load(unk); }, {"model.unk_token: '<unk>' is not in model.vocab"});
  Json version = base;
  version["version"] = "2.0";
  expect_error([&] { load(version); }, {"version: unsupported tokenizer.json version '2.0'"});
  Json no_model = base;
  no_model.erase("model");
  expect_error([&] { load(no_model); }, {"tiny.json: model: missing"});
  Json bad_added = base;
  bad_added["added_tokens"] = {{{"id", 5}, {"special", true}}};
  expect_error([&] { load(bad_added); }, {"added_tokens[0].content: missing"});
  Json bad_template = base;
  bad_template["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
      {"special_tokens", Json::object()}};
  expect_error([&] { load(bad_template); }, {"post_processor.single[0]: special token '<s>' is missing"});

  expect_error([&] { Tokenizer::from_file(dir + "/nope.json"); }, {dir + "/nope.json: cannot open file"});
  std::ofstream(dir + "/broken.json") << "{\"model\": ";
  expect_error([&] { Tokenizer::from_file(dir + "/broken.json"); }, {"broken.json: invalid JSON"});
}

TEST(TokenizerErrors, Gpt2FilePair) {
  std::string dir = test::scratch_dir("tokenizer_gpt2_errors");
  std::ofstream(dir + "/vocab.json") << Json{{"a", 0}, {"b", 1}, {"ab", 2}, {"<|endoftext|>", 3}}.dump();
  std::ofstream(dir + "/merges.txt") << "#version: 0.2\r\na b\r\n";
  Tokenizer ok = Tokenizer::from_gpt2_files(dir + "/vocab.json", dir + "/merges.txt");
  EXPECT_EQ(ok.encode("ab<|endoftext|>"), (Ids{2, 3}));
  EXPECT_EQ(ok.eos_id(), 3);
  std::ofstream(dir + "/merges.txt") << "#version: 0.2\na b\n\nb a\n";
  expect_error([&] { Tokenizer::from_gpt2_files(dir + "/vocab.json", dir + "/merges.txt"); },
               {"merges.txt:3: expected \"a b\""});
  std::ofstream(dir + "/merges.txt") << "a q\n";
  expect_error([&] { Tokenizer::from_gpt2_files(dir + "/vocab.json", dir + "/merges.txt"); },
               {"vocab.json + ", "merges.txt: model.merges[0]: merge part 'q'"});
  std::ofstream(dir + "/vocab.json") << "[1, 2]";
  expect_error([&] { Tokenizer::from_gpt2_files(dir + "/vocab.json", dir + "/merges.txt"); },
               {"vocab.json: expected a JSON object"});
}
