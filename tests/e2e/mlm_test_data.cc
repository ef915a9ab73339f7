#include "mlm_test_data.h"

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "lmforge/data/shard.h"
#include "lmforge/data/text_reader.h"
#include "lmforge/tokenize/tokenizer.h"
#include "test_util.h"

namespace lmf::test {

namespace {

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  if (!f) throw std::runtime_error("cannot write " + path);
}

// The shipped byte-level BPE with BERT's special tokens appended (ids 4096..4099) and
// "[CLS] $A [SEP]" as post-processor.
std::string make_tokenizer(const std::string& dir) {
  std::ifstream in(source_path("data/tokenizers/enfr-bpe-4k/tokenizer.json"));
  nlohmann::json j = nlohmann::json::parse(in);
  const int base = int(j["model"]["vocab"].size());
  int id = base;
  for (const char* t : {"[PAD]", "[CLS]", "[SEP]", "[MASK]"})
    j["added_tokens"].push_back({{"id", id++},
                                 {"content", t},
                                 {"single_word", false},
                                 {"lstrip", false},
                                 {"rstrip", false},
                                 {"normalized", false},
                                 {"special", true}});
  j["post_processor"] = {{"type", "BertProcessing"},
                         {"sep", nlohmann::json::array({"[SEP]", base + 2})},
                         {"cls", nlohmann::json::array({"[CLS]", base + 1})}};
  write_file(dir + "/tokenizer.json", j.dump());
  write_file(dir + "/tokenizer_config.json", R"({"pad_token": "[PAD]", "eos_token": "<|endoftext|>"})");
  return dir + "/tokenizer.json";
}

}  // namespace

const MlmCorpus& mlm_corpus() {
  static MlmCorpus c = [] {
    MlmCorpus c;
    const std::string dir = scratch_dir("mlm_corpus");
    c.tokenizer = make_tokenizer(dir);
    Tokenizer tok = Tokenizer::from_file(c.tokenizer);
    c.vocab = tok.vocab_size();
    c.fingerprint = tok.fingerprint();
    const int32_t eos = *tok.eos_id();
    std::map<int32_t, int64_t> counts;
    int64_t total = 0;
    auto shard = [&](const std::string& text, const std::string& split, size_t max_docs,
                     const std::string& name, std::string& train, std::string& val) {
      TextReadOptions opt;
      opt.split = split;
      auto docs = read_documents(source_path("data/text/" + text), opt);
      train = dir + "/" + name;
      val = dir + "/" + name + "-val";
      ShardWriter tw(train, uint64_t(c.vocab), c.fingerprint, uint64_t(eos));
      ShardWriter vw(val, uint64_t(c.vocab), c.fingerprint, uint64_t(eos));
      for (size_t i = 0; i < std::min(docs.size(), max_docs); i++) {
        auto ids = tok.encode(docs[i], false);
        if (i % 10 == 9) {  // every 10th document held out
          ids.push_back(eos);
          vw.add_document(ids);
          continue;
        }
        for (int32_t t : ids) counts[t]++, total++;
        ids.push_back(eos);
        tw.add_document(ids);
      }
      tw.finish();
      vw.finish();
    };
    // Shakespeare by paragraph (speeches), Moliere by line (the file has no blank lines).
    shard("tiny_shakespeare.txt", "paragraph", 1200, "en", c.en, c.en_val);
    shard("tinymoliere.txt", "line", 2400, "fr", c.fr, c.fr_val);
    std::string frwiki_val;
    shard("wiki-fr-extract.txt", "line", 600, "frwiki", c.frwiki, frwiki_val);
    for (auto& [t, n] : counts)
      c.unigram_entropy -= double(n) / double(total) * std::log(double(n) / double(total));

    nlohmann::json cfg = {{"architectures", {"BertForMaskedLM"}},
                          {"model_type", "bert"},
                          {"vocab_size", c.vocab},
                          {"hidden_size", 64},
                          {"num_hidden_layers", 2},
                          {"num_attention_heads", 2},
                          {"intermediate_size", 256},
                          {"hidden_act", "gelu"},
                          {"hidden_dropout_prob", 0.1},
                          {"attention_probs_dropout_prob", 0.1},
                          {"max_position_embeddings", 128},
                          {"type_vocab_size", 2},
                          {"initializer_range", 0.02},
                          {"layer_norm_eps", 1e-12},
                          {"pad_token_id", c.vocab - 4},
                          {"tie_word_embeddings", true}};
    c.model_config = dir + "/tiny-bert.json";
    write_file(c.model_config, cfg.dump(2));
    return c;
  }();
  return c;
}

}  // namespace lmf::test
