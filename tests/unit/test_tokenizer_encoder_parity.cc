// Exact parity of the encoder-model tokenizers with HF `tokenizers` / python `sentencepiece`:
// tools/fixtures/make_encoder_tokenizer_fixtures.py wrote the expected encodings of every line
// of tests/fixtures/tokenizer/encoder_corpus.txt (and the whole file), of consecutive pairs, and
// of truncated pairs; this test rebuilds the same tokenizers and compares every field. A
// missing expected file is a failure, never a skip.
//
// HF Python reports character offsets: each byte offset is mapped to the index of the char that
// contains it (tokenizers BytesToCharOffsetConverter); our byte offsets are mapped the same way.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmforge/core/error.h"
#include "lmforge/tokenize/tokenizer.h"
#include "test_util.h"

using namespace lmf;
using Json = nlohmann::json;

namespace {

std::string read_text(const std::string& rel) {
  std::ifstream f(test::source_path(rel), std::ios::binary);
  EXPECT_TRUE(f.good()) << "missing " << rel << " (run tools/fixtures/make_encoder_tokenizer_fixtures.py)";
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<Json> read_jsonl(const std::string& rel) {
  std::vector<Json> out;
  std::istringstream in(read_text(rel));
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(Json::parse(line));
  return out;
}

// tokenizers pre_tokenizer.rs BytesToCharOffsetConverter::convert.
std::pair<size_t, size_t> to_char_offsets(const std::string& text, std::pair<size_t, size_t> off) {
  std::map<size_t, size_t> map;
  size_t ci = 0;
  for (size_t b = 0; b < text.size(); ci++) {
    auto lead = static_cast<unsigned char>(text[b]);
    size_t len = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    for (size_t k = 0; k < len; k++) map[b + k] = ci;
    b += len;
  }
  auto s = map.find(off.first), e = map.find(off.second);
  if (s != map.end() && e != map.end()) return {s->second, e->second};
  if (s != map.end()) {
    auto last = off.second > 0 ? map.find(off.second - 1) : map.end();
    size_t l = last != map.end() ? last->second : s->second + 1;
    return {s->second, l + 1};
  }
  return off;
}

Json char_offsets(const Encoding& e, const std::string& a, const std::string* b) {
  Json out = Json::array();
  for (size_t i = 0; i < e.size(); i++) {
    const std::string& text = (b && e.sequence_ids[i] == 1) ? *b : a;
    auto [s, en] = e.special_tokens_mask[i] ? e.offsets[i] : to_char_offsets(text, e.offsets[i]);
    out.push_back(Json::array({s, en}));
  }
  return out;
}

Truncation strategy(const std::string& s) {
  if (s == "longest_first") return Truncation::longest_first;
  if (s == "only_first") return Truncation::only_first;
  return Truncation::only_second;
}

// The same pieces in another order over the same text: an exact score tie broken differently.
bool is_tie_resegmentation(const Json& want, const std::vector<std::string>& got) {
  std::vector<std::string> w = want.get<std::vector<std::string>>(), g = got;
  std::string ws, gs;
  for (const auto& x : w) ws += x;
  for (const auto& x : g) gs += x;
  std::sort(w.begin(), w.end());
  std::sort(g.begin(), g.end());
  return ws == gs && w == g && w.size() == want.size();
}

// Compares every record; returns the number of mismatching fields (details for the first few).
// With tie_resegmentations, spm records whose pieces are the expected pieces in another order
// are counted there instead of failing.
int check(const Tokenizer& t, const std::string& expected_rel, int* tie_resegmentations = nullptr) {
  int bad = 0;
  auto mismatch = [&](const Json& rec, const std::string& field, const Json& want, const Json& got) {
    if (want == got) return;
    if (++bad <= 8)
      ADD_FAILURE() << expected_rel << ": " << rec["kind"] << " " << field << " differs for text " << rec["text"].dump()
                    << (rec.contains("pair") && !rec["pair"].is_null() ? " / " + rec["pair"].dump() : "")
                    << (rec.contains("max_length") ? " max_length " + rec["max_length"].dump() + " " + rec["strategy"].dump() : "")
                    << "\n  want " << want.dump() << "\n  got  " << got.dump();
  };
  std::vector<Json> recs = read_jsonl(expected_rel);
  EXPECT_GT(recs.size(), 40u) << expected_rel;
  for (const Json& rec : recs) {
    const std::string kind = rec["kind"];
    const std::string a = rec["text"];
    if (kind == "single") {
      Encoding e = t.encode_full(a);
      mismatch(rec, "ids", rec["ids"], Json(e.ids));
      mismatch(rec, "type_ids", rec["type_ids"], Json(e.type_ids));
      mismatch(rec, "special_tokens_mask", rec["special_tokens_mask"], Json(e.special_tokens_mask));
      mismatch(rec, "offsets", rec["offsets"], char_offsets(e, a, nullptr));
      mismatch(rec, "tokens", rec["tokens"], Json(e.tokens));
      mismatch(rec, "word_ids", rec["word_ids"], Json(e.word_ids));
      mismatch(rec, "ids_no_special", rec["ids_no_special"], Json(t.encode(a, false)));
      mismatch(rec, "decoded", rec["decoded"], Json(t.decode(e.ids)));
      mismatch(rec, "decoded_skip_special", rec["decoded_skip_special"], Json(t.decode(e.ids, true)));
    } else if (kind == "pair") {
      const std::string b = rec["pair"];
      Encoding e = t.encode_pair(a, std::string_view(b));
      mismatch(rec, "ids", rec["ids"], Json(e.ids));
      mismatch(rec, "type_ids", rec["type_ids"], Json(e.type_ids));
      mismatch(rec, "special_tokens_mask", rec["special_tokens_mask"], Json(e.special_tokens_mask));
      mismatch(rec, "offsets", rec["offsets"], char_offsets(e, a, &b));
      mismatch(rec, "sequence_ids", rec["sequence_ids"], Json(e.sequence_ids));
    } else if (kind == "trunc") {
      EncodeOptions o;
      o.max_length = rec["max_length"];
      o.truncation = strategy(rec["strategy"]);
      std::optional<std::string> b;
      if (!rec["pair"].is_null()) b = rec["pair"].get<std::string>();
      Encoding e;
      bool error = false;
      try {
        e = b ? t.encode_pair(a, std::string_view(*b), o) : t.encode_full(a, o);
      } catch (const Error&) {
        error = true;
      }
      mismatch(rec, "error", rec["error"], Json(error));
      if (error || rec["error"].get<bool>()) continue;
      mismatch(rec, "ids", rec["ids"], Json(e.ids));
      mismatch(rec, "type_ids", rec["type_ids"], Json(e.type_ids));
      mismatch(rec, "special_tokens_mask", rec["special_tokens_mask"], Json(e.special_tokens_mask));
      mismatch(rec, "offsets", rec["offsets"], char_offsets(e, a, b ? &*b : nullptr));
    } else if (kind == "spm") {
      Encoding e = t.encode_full(a);
      if (tie_resegmentations && Json(e.ids) != rec["ids"] && is_tie_resegmentation(rec["pieces"], e.tokens)) {
        ++*tie_resegmentations;  // see SentencePieceUnigramModel
        continue;
      }
      mismatch(rec, "ids", rec["ids"], Json(e.ids));
      mismatch(rec, "pieces", rec["pieces"], Json(e.tokens));
      mismatch(rec, "decoded", rec["decoded"], Json(t.decode(e.ids)));
      if (!rec["offsets"].is_null()) {
        Json offs = Json::array();
        for (auto [s, en] : e.offsets) offs.push_back(Json::array({s, en}));
        mismatch(rec, "offsets", rec["offsets"], offs);
      }
    } else {
      ADD_FAILURE() << "unknown record kind " << kind;
    }
  }
  return bad;
}

const std::string kFix = "tests/fixtures/tokenizer/";

}  // namespace

TEST(TokenizerEncoderParity, MultilingualBertTokenizerJson) {
  Tokenizer t = Tokenizer::from_file(test::source_path("data/tokenizers/bert-base-multilingual-cased/tokenizer.json"));
  EXPECT_EQ(t.model_type(), "WordPiece");
  EXPECT_EQ(check(t, kFix + "mbert_encoder_expected.jsonl"), 0);
}

TEST(TokenizerEncoderParity, MultilingualBertFromVocabTxt) {
  const std::string vocab = test::source_path("data/tokenizers/bert-base-multilingual-cased/vocab.txt");
  EXPECT_EQ(check(Tokenizer::from_wordpiece_vocab(vocab, false), kFix + "mbert_encoder_expected.jsonl"), 0);
  EXPECT_EQ(check(Tokenizer::from_wordpiece_vocab(vocab, true), kFix + "mbert_lower_encoder_expected.jsonl"), 0);
}

TEST(TokenizerEncoderParity, UnigramTrainedByTokenizers) {
  Tokenizer t = Tokenizer::from_file(test::source_path("data/tokenizers/unigram-3k/tokenizer.json"));
  EXPECT_EQ(t.model_type(), "Unigram");
  EXPECT_EQ(check(t, kFix + "unigram_encoder_expected.jsonl"), 0);
}

TEST(TokenizerEncoderParity, UnigramByteFallback) {
  Tokenizer t = Tokenizer::from_file(test::source_path(kFix + "unigram_bytefallback_tokenizer.json"));
  EXPECT_EQ(check(t, kFix + "unigram_bytefallback_encoder_expected.jsonl"), 0);
}

TEST(TokenizerEncoderParity, XlmRobertaStyleConvertedFromSpm) {
  Tokenizer t = Tokenizer::from_file(test::source_path("data/tokenizers/xlmr-style-4k/tokenizer.json"));
  EXPECT_EQ(t.model_type(), "Unigram");
  EXPECT_EQ(t.mask_id(), 4001);
  EXPECT_EQ(check(t, kFix + "xlmr_encoder_expected.jsonl"), 0);
}

TEST(TokenizerEncoderParity, XlmRobertaStyleWithRobertaProcessing) {
  // The fixture script's roberta_variant(): same tokenizer, RobertaProcessing post-processor.
  Json doc = Json::parse(read_text("data/tokenizers/xlmr-style-4k/tokenizer.json"));
  doc["post_processor"] = {{"type", "RobertaProcessing"},
                           {"sep", {"</s>", 2}},
                           {"cls", {"<s>", 0}},
                           {"trim_offsets", true},
                           {"add_prefix_space", true}};
  Tokenizer t = Tokenizer::from_json_string(doc.dump(), "xlmr-roberta.json");
  EXPECT_EQ(check(t, kFix + "xlmr_roberta_encoder_expected.jsonl"), 0);
}

TEST(TokenizerEncoderParity, SentencePieceUnigramModel) {
  Tokenizer t = Tokenizer::from_file(test::source_path("data/tokenizers/spm-unigram-4k/spm.model"));
  EXPECT_EQ(t.model_type(), "SentencePiece");
  // Debian's libsentencepiece 0.1.97 and the python sentencepiece 0.2.2 that wrote the fixture
  // break exact Viterbi ties differently: ",000" is "00" + "0" here and "0" + "00" there (same
  // two scores; 0.2.2 even differs between the two ",000" of one line, float rounding of the
  // running sum). That one line is allowed as a reordering of the same pieces, nothing else.
  int ties = 0;
  EXPECT_EQ(check(t, kFix + "spm_unigram_encoder_expected.jsonl", &ties), 0);
  EXPECT_LE(ties, 1);
}

TEST(TokenizerEncoderParity, SentencePieceBpeByteFallbackModel) {
  Tokenizer t = Tokenizer::from_file(test::source_path("data/tokenizers/spm-bpe-2k-bytefallback/spm.model"));
  EXPECT_EQ(check(t, kFix + "spm_bpe_encoder_expected.jsonl"), 0);
}
