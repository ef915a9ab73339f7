// `lmforge eval`: loss / perplexity / top-k / by-position buckets on a shard written here with
// ShardWriter, checked against a direct computation (library forward + fp64 log-softmax);
// --text equals tokenize + --data; refusals of mismatched data and bad flags.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "lmforge/autograd/tape.h"
#include "lmforge/core/philox.h"
#include "lmforge/data/shard.h"
#include "lmforge/io/hf_params.h"
#include "lmforge/models/config_json.h"
#include "lmforge/models/mamba.h"
#include "lmforge/models/registry.h"
#include "lmforge/tokenize/tokenizer.h"
#include "test_util.h"

using namespace lmf;
using e2e::lmforge;
using e2e::shell_quote;

namespace {

constexpr int32_t kEos = 0;
const char* kEnFr = "data/tokenizers/enfr-bpe-4k/tokenizer.json";

std::string tied_model() { return test::source_path("tests/fixtures/mamba_tiny_tied"); }

// Random documents of ids in [1, vocab) each ending with EOS, back to back.
std::vector<int32_t> random_stream(int n_docs, int32_t vocab, uint64_t seed) {
  std::vector<int32_t> s;
  for (int d = 0; d < n_docs; d++) {
    const int len = 9 + int(philox_uniform(seed, 1, uint64_t(d)) * 50);
    for (int i = 0; i < len; i++)
      s.push_back(1 + int32_t(philox_uniform(seed, 2 + uint64_t(d), uint64_t(i)) * float(vocab - 1)));
    s.push_back(kEos);
  }
  return s;
}

// Writes `stream` (split after every EOS) as shard `prefix`.
void write_shard(const std::string& prefix, const std::vector<int32_t>& stream, uint64_t vocab, uint64_t fingerprint) {
  ShardWriter w(prefix, vocab, fingerprint, uint64_t(kEos));
  std::vector<int32_t> doc;
  for (int32_t t : stream) {
    doc.push_back(t);
    if (t == kEos) {
      w.add_document(doc);
      doc.clear();
    }
  }
  if (!doc.empty()) w.add_document(doc);
  w.finish();
}

nlohmann::json eval_json(const std::string& args) {
  auto r = lmforge("eval " + args + " --json", e2e::Capture::stdout_only);
  EXPECT_EQ(r.rc, 0) << "eval " << args << "\n" << lmforge("eval " + args + " --json").out;
  auto lines = e2e::lines_of(r.out);
  EXPECT_EQ(lines.size(), 1u) << r.out;
  if (r.rc != 0 || lines.size() != 1) return nlohmann::json::object();
  return nlohmann::json::parse(lines[0]);
}

// What evaluation must give, computed independently: windows of seq_len + 1 tokens overlapping
// by one, document index / in-document position restarting after every EOS, fp64 log-softmax.
struct Direct {
  double loss = 0;
  int64_t tokens = 0, top1 = 0;
  std::vector<int64_t> bucket_tokens;
};
Direct direct_eval(MambaModel& m, const std::vector<int32_t>& stream, int64_t S, const std::vector<int64_t>& buckets) {
  autograd::NoGradGuard ng;
  Direct d;
  d.bucket_tokens.assign(buckets.size(), 0);
  const int64_t windows = int64_t(stream.size() - 1) / S;
  for (int64_t w = 0; w < windows; w++) {
    std::vector<int32_t> ids(static_cast<size_t>(S), 0), seq(static_cast<size_t>(S), 0);
    int32_t doc = 0, pos = 0;
    for (int64_t t = 0; t < S; t++) {
      ids[size_t(t)] = stream[size_t(w * S + t)];
      seq[size_t(t)] = doc;
      int64_t k = int64_t(buckets.size()) - 1;
      while (k > 0 && buckets[size_t(k)] > pos) k--;
      d.bucket_tokens[size_t(k)]++;
      pos++;
      if (ids[size_t(t)] == kEos) {
        doc++;
        pos = 0;
      }
    }
    Tensor h = m.forward_hidden(Tensor::from_vector<int32_t>(ids, {1, S}), Tensor::from_vector<int32_t>(seq, {1, S}), false);
    auto logits = m.logits(h).to_double_vector();
    const int64_t V = m.vocab_size();
    for (int64_t t = 0; t < S; t++) {
      const double* row = logits.data() + t * V;
      const int32_t target = stream[size_t(w * S + t + 1)];
      double mx = row[0];
      int64_t arg = 0;
      for (int64_t v = 1; v < V; v++)
        if (row[v] > mx) mx = row[v], arg = v;
      double se = 0;
      for (int64_t v = 0; v < V; v++) se += std::exp(row[v] - mx);
      d.loss += mx + std::log(se) - row[target];
      d.top1 += arg == target;
      d.tokens++;
    }
  }
  d.loss /= double(d.tokens);
  return d;
}

// A randomly initialized one-layer Mamba with the enfr tokenizer's vocabulary, saved as a HF folder.
std::string make_text_model(const std::string& dir, int32_t vocab) {
  nlohmann::json cfg = {{"architectures", {"MambaForCausalLM"}},
                        {"model_type", "mamba"},
                        {"vocab_size", vocab},
                        {"hidden_size", 16},
                        {"state_size", 4},
                        {"num_hidden_layers", 1},
                        {"expand", 2},
                        {"conv_kernel", 4},
                        {"use_bias", false},
                        {"tie_word_embeddings", true}};
  ParamStore store(Device::cpu(), DType::f32);
  MambaModel model(parse_mamba_config(cfg, "test config"), store);
  store.finalize();
  Generator g{99, 0};
  model.init_weights(g);
  save_hf_params(store, dir, model.hf_config());
  return dir;
}

const char* kText =
    "The quick brown fox jumps over the lazy dog. It was the best of times, it was the worst of times.\n\n"
    "Le vif renard brun saute par-dessus le chien paresseux. Où est la bibliothèque ? Ça va très bien, merci.\n\n"
    "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer the slings and arrows.\n\n"
    "Maître Corbeau, sur un arbre perché, tenait en son bec un fromage. Maître Renard, par l'odeur alléché.\n\n"
    "Numbers 12345 and symbols #@! mixed with words, then Grüße aus München and 東京 and emoji 🙂.\n";

}  // namespace

TEST(EvalCli, ShardMetricsMatchDirectComputation) {
  const std::string dir = test::scratch_dir("eval_shard");
  const std::vector<int32_t> stream = random_stream(6, 64, 5);
  write_shard(dir + "/data", stream, 64, 0x1234);
  const int64_t S = 16;
  const std::vector<int64_t> buckets = {0, 4, 16};
  nlohmann::json j = eval_json("--model " + shell_quote(tied_model()) + " --data " + shell_quote(dir + "/data") +
                               " --seq-len 16 --batch 3 --device cpu --buckets 0,4,16");
  ASSERT_TRUE(j.contains("loss")) << j.dump();
  const double loss = j["loss"].get<double>(), ppl = j["perplexity"].get<double>();
  ASSERT_TRUE(std::isfinite(loss) && std::isfinite(ppl));
  EXPECT_GT(loss, 0.5);
  EXPECT_NEAR(ppl, std::exp(loss), 1e-12 * ppl);
  const int64_t windows = int64_t(stream.size() - 1) / S;
  EXPECT_EQ(j["tokens"].get<int64_t>(), windows * S);
  EXPECT_EQ(j["windows"].get<int64_t>(), windows);
  EXPECT_EQ(j["seq_len"].get<int64_t>(), S);
  EXPECT_EQ(j["architecture"], "MambaForCausalLM");
  const double top1 = j["top1"], top3 = j["top3"], top10 = j["top10"];
  EXPECT_LE(0.0, top1);
  EXPECT_LE(top1, top3);
  EXPECT_LE(top3, top10);
  EXPECT_LE(top10, 1.0);
  EXPECT_GT(top10, 0.0);

  LoadedCausalLM l = load_causal_lm(tied_model(), Device::cpu(), DType::f32);
  Direct d = direct_eval(*dynamic_cast<MambaModel*>(l.model.get()), stream, S, buckets);
  EXPECT_EQ(d.tokens, j["tokens"].get<int64_t>());
  EXPECT_NEAR(loss, d.loss, 1e-5 * d.loss);
  EXPECT_NEAR(top1, double(d.top1) / double(d.tokens), 1.5 / double(d.tokens));  // an argmax tie at most

  ASSERT_EQ(j["by_position"].size(), buckets.size());
  double weighted = 0;
  int64_t total = 0;
  for (size_t k = 0; k < buckets.size(); k++) {
    const auto& b = j["by_position"][k];
    EXPECT_EQ(b["from"].get<int64_t>(), buckets[k]);
    EXPECT_EQ(b["to"].get<int64_t>(), k + 1 < buckets.size() ? buckets[k + 1] : -1);
    EXPECT_EQ(b["tokens"].get<int64_t>(), d.bucket_tokens[k]) << "bucket " << k;
    weighted += b["loss"].get<double>() * double(b["tokens"].get<int64_t>());
    total += b["tokens"].get<int64_t>();
  }
  EXPECT_EQ(total, d.tokens);
  EXPECT_NEAR(weighted / double(total), loss, 1e-6 * loss);
}

TEST(EvalCli, MaxBatchesAndTextReport) {
  const std::string dir = test::scratch_dir("eval_text_report");
  write_shard(dir + "/data", random_stream(6, 64, 8), 64, 0x1234);
  const std::string base = "--model " + shell_quote(tied_model()) + " --data " + shell_quote(dir + "/data") +
                           " --seq-len 16 --device cpu";
  nlohmann::json j = eval_json(base + " --batch 2 --max-batches 1");
  EXPECT_EQ(j["tokens"].get<int64_t>(), 2 * 16);
  EXPECT_EQ(j["windows"].get<int64_t>(), 2);
  EXPECT_EQ(j["by_position"].size(), 4u) << "default buckets 0,16,128,1024";
  EXPECT_EQ(eval_json(base + " --buckets 0")["by_position"].size(), 0u) << "a single bound: no breakdown";

  auto r = lmforge("eval " + base + " --batch 2 --max-batches 1 --buckets 0,8");
  ASSERT_EQ(r.rc, 0) << r.out;
  char expect[64];
  std::snprintf(expect, sizeof expect, "loss %.4f | perplexity", j["loss"].get<double>());
  EXPECT_NE(r.out.find(expect), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("positions [0, 8): loss"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("positions [8, inf): loss"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MambaForCausalLM"), std::string::npos) << r.out;
}

TEST(EvalCli, TextEqualsTokenizeThenData) {
  const std::string dir = test::scratch_dir("eval_text");
  const std::string tok_path = test::source_path(kEnFr);
  Tokenizer tok = Tokenizer::from_file(tok_path);
  const std::string model = make_text_model(dir + "/model", tok.vocab_size());
  std::string text;
  for (int i = 0; i < 4; i++) text += kText;
  const std::string txt = e2e::write_file(dir + "/corpus.txt", text);
  auto t = lmforge("tokenize --tokenizer " + shell_quote(tok_path) + " " + shell_quote(txt) + " -o " +
                   shell_quote(dir + "/shard"));
  ASSERT_EQ(t.rc, 0) << t.out;
  const std::string common = "--model " + shell_quote(model) + " --tokenizer " + shell_quote(tok_path) +
                             " --seq-len 32 --batch 4 --device cpu";
  nlohmann::json from_data = eval_json(common + " --data " + shell_quote(dir + "/shard"));
  nlohmann::json from_text = eval_json(common + " --text " + shell_quote(txt));
  // --text tokenizes into a temporary shard under TMPDIR, removed afterwards.
  std::filesystem::create_directories(dir + "/tmp");
  std::string out;
  const int rc = test::run_command("TMPDIR=" + shell_quote(dir + "/tmp") + " " + shell_quote(test::lmforge_bin()) +
                                       " eval " + common + " --text " + shell_quote(txt) + " --json",
                                   &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_TRUE(std::filesystem::is_empty(dir + "/tmp")) << "the temporary shard is removed";
  ASSERT_TRUE(from_data.contains("loss") && from_text.contains("loss"));
  EXPECT_GT(from_data["tokens"].get<int64_t>(), 0);
  EXPECT_EQ(from_text["tokens"], from_data["tokens"]);
  EXPECT_EQ(from_text["loss"], from_data["loss"]);
  EXPECT_EQ(from_text["top1"], from_data["top1"]);
  EXPECT_EQ(from_text["by_position"], from_data["by_position"]);
  EXPECT_EQ(from_text["data"], nlohmann::json::array({txt}));
  // A randomly initialized model is close to uniform over the vocabulary.
  EXPECT_NEAR(from_data["loss"].get<double>(), std::log(double(tok.vocab_size())), 1.0);
}

TEST(EvalCli, RefusesMismatchedDataAndBadFlags) {
  const std::string dir = test::scratch_dir("eval_bad");
  const std::string tok_path = test::source_path(kEnFr);
  Tokenizer tok = Tokenizer::from_file(tok_path);
  const std::string big = make_text_model(dir + "/model", tok.vocab_size());
  const std::vector<int32_t> stream = random_stream(4, 64, 11);
  write_shard(dir + "/v64", stream, 64, 0x1234);
  write_shard(dir + "/otherfp", stream, uint64_t(tok.vocab_size()), 0xdeadbeefull);
  write_shard(dir + "/v4096", stream, uint64_t(tok.vocab_size()), tok.fingerprint());
  const std::string tied = " --model " + shell_quote(tied_model());
  const std::string bigm = " --model " + shell_quote(big);
  const std::string tk = " --tokenizer " + shell_quote(tok_path);
  auto data = [&](const std::string& p) { return " --data " + shell_quote(dir + "/" + p) + " --seq-len 8"; };

  e2e::expect_one_line_error("eval" + bigm + data("otherfp") + tk, 1, {"otherfp.idx", "made with another tokenizer", "00000000deadbeef"});
  e2e::expect_one_line_error("eval" + bigm + data("v64") + tk, 1, {"v64.idx", "vocabulary of 64 tokens", "4096"});
  e2e::expect_one_line_error("eval" + tied + data("v64") + tk, 1, {"the tokenizer has 4096 tokens", "vocabulary of 64"});
  e2e::expect_one_line_error("eval" + tied + data("v4096"), 1, {"v4096.idx", "token ids go up to 4095", "vocabulary of 64"});
  e2e::expect_one_line_error("eval" + tied + " --data " + shell_quote(dir + "/v64") + " --seq-len 100000", 1,
                             {"fewer than one window", "--seq-len"});
  e2e::expect_one_line_error("eval" + tied + data("missing"), 1, {"missing."});
  // The same shard and tokenizer pass.
  EXPECT_EQ(lmforge("eval" + bigm + data("v4096") + tk + " --max-batches 1").rc, 0);

  // Usage errors: exit 2.
  const std::string txt = e2e::write_file(dir + "/t.txt", kText);
  e2e::expect_one_line_error("eval" + tied, 2, {"--data", "--text"});
  e2e::expect_one_line_error("eval" + bigm + data("v4096") + " --text " + shell_quote(txt) + tk, 2, {"--data", "--text"});
  e2e::expect_one_line_error("eval" + bigm + " --text " + shell_quote(txt), 2, {"--tokenizer"});
  e2e::expect_one_line_error("eval" + tied + data("v64") + " --buckets 16,4", 2, {"--buckets", "increase"});
  e2e::expect_one_line_error("eval" + tied + data("v64") + " --buckets 0,x", 2, {"--buckets", "0,x"});
  e2e::expect_one_line_error("eval" + tied + " --data " + shell_quote(dir + "/v64") + " --seq-len 0", 2, {"--seq-len"});
  e2e::expect_one_line_error("eval" + tied + data("v64") + " --batch 0", 2, {"--batch"});
  e2e::expect_one_line_error("eval" + tied + data("v64") + " --device cpu --precision bf16", 2, {"--precision", "cpu"});
}
