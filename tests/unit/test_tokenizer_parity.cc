// Exact parity with HF `tokenizers`: the expected ids and decoded strings are written by
// tools/fixtures/make_tokenizer_fixtures.py (run on a machine with python `tokenizers`); this test
// rebuilds the same three tokenizers and compares every text of tests/fixtures/tokenizer/corpus.txt.
// A missing expected file is a failure, never a skip.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "lmforge/tokenize/tokenizer.h"
#include "test_util.h"

using namespace lmf;
using Json = nlohmann::json;

namespace {

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The corpus lines ("\n"-separated, CR kept, the empty text after the last newline included),
// then the whole file: the same list the Python script encodes.
std::vector<std::string> fixture_texts() {
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

Tokenizer make_tokenizer(const std::string& name) {
  std::string neox = test::source_path("data/tokenizers/gpt-neox-20b/tokenizer.json");
  if (name == "neox") return Tokenizer::from_file(neox);
  if (name == "gpt2")
    return Tokenizer::from_gpt2_files(test::source_path("data/tokenizers/gpt2/vocab.json"),
                                      test::source_path("data/tokenizers/gpt2/merges.txt"));
  // neox_variant: neox with the patch applied as the Python script does.
  Json doc = Json::parse(read_text(neox));
  Json patch = Json::parse(read_text(test::source_path("tests/fixtures/tokenizer/neox_variant_patch.json")));
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    if (it.key().rfind('_', 0) == 0) continue;
    if (it.key() == "append_added_tokens") {
      for (const Json& t : it.value()) doc["added_tokens"].push_back(t);
    } else {
      doc[it.key()] = it.value();
    }
  }
  return Tokenizer::from_json_string(doc.dump(), "neox_variant");
}

void check_against_hf(const std::string& name) {
  std::string expected_path = test::source_path("tests/fixtures/tokenizer/" + name + "_expected.jsonl");
  ASSERT_TRUE(std::filesystem::exists(expected_path))
      << expected_path << " is missing: run `python3 tools/fixtures/make_tokenizer_fixtures.py` on a machine with "
      << "python `tokenizers` installed and commit tests/fixtures/tokenizer/*_expected.jsonl";
  Tokenizer tok = make_tokenizer(name);
  std::vector<std::string> texts = fixture_texts();
  std::ifstream f(expected_path, std::ios::binary);
  std::string line;
  size_t n = 0, id_mismatches = 0;
  while (std::getline(f, line)) {
    ASSERT_LT(n, texts.size()) << expected_path << " has more records than corpus.txt texts: regenerate it";
    Json rec = Json::parse(line);
    const std::string text = rec.at("text").get<std::string>();
    ASSERT_EQ(text, texts[n]) << expected_path << ":" << n + 1 << ": corpus.txt changed since the fixture was made; "
                              << "rerun tools/fixtures/make_tokenizer_fixtures.py";
    auto ids = rec.at("ids").get<std::vector<int32_t>>();
    auto ids_plain = rec.at("ids_no_special").get<std::vector<int32_t>>();
    std::vector<int32_t> got = tok.encode(text);
    if (got != ids) id_mismatches++;
    EXPECT_EQ(got, ids) << name << " record " << n + 1 << " text: " << text;
    EXPECT_EQ(tok.encode(text, /*add_special_tokens=*/false), ids_plain) << name << " record " << n + 1;
    EXPECT_EQ(tok.decode(ids), rec.at("decoded").get<std::string>()) << name << " record " << n + 1;
    EXPECT_EQ(tok.decode(ids, /*skip_special_tokens=*/true), rec.at("decoded_skip_special").get<std::string>())
        << name << " record " << n + 1;
    n++;
  }
  EXPECT_EQ(n, texts.size()) << expected_path << " has fewer records than corpus.txt texts: regenerate it";
  EXPECT_EQ(id_mismatches, 0u) << name << ": " << id_mismatches << " of " << n << " texts encode differently from HF";
}

}  // namespace

TEST(TokenizerParity, GptNeox20bMatchesHf) { check_against_hf("neox"); }
TEST(TokenizerParity, Gpt2VocabMergesMatchesHf) { check_against_hf("gpt2"); }
TEST(TokenizerParity, NeoxVariantStagesMatchHf) { check_against_hf("neox_variant"); }
