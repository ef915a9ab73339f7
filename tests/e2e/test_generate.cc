// `lmforge generate` end to end on the tiny Mamba fixture (vocab 64): greedy output equals an
// argmax over full-forward logits computed here through the library, runs are deterministic
// per seed, --json / --print-ids / text output, a tokenizer built on the fly (text prompt,
// --stop-at-eos), and one-line errors for the user's mistakes.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "lmforge/autograd/tape.h"
#include "lmforge/eval/sampling.h"
#include "lmforge/models/mamba.h"
#include "lmforge/models/registry.h"
#include "lmforge/tokenize/tokenizer.h"
#include "test_util.h"

using namespace lmf;
using Json = nlohmann::json;

namespace {

struct GenRun {
  int rc = -1;
  std::string out;
};

// `lmforge generate <args>`; stdout only unless `with_stderr`.
GenRun generate(const std::string& args, bool with_stderr = false) {
  std::string cmd = "{ '";
  cmd.append(test::lmforge_bin()).append("' generate ").append(args);
  if (!with_stderr) cmd.append(" 2>/dev/null");
  cmd.append("; }");
  GenRun r;
  r.rc = test::run_command(cmd, &r.out);
  EXPECT_LT(r.rc, 128) << args << " crashed:\n" << r.out;
  return r;
}

// The tied fixture continues any prompt by repeating its last token (a random tied embedding
// scores itself highest); the untied one wanders, which the EOS test needs.
std::string fixture(const std::string& name) { return test::source_path("tests/fixtures/" + name); }
std::string model_arg(const std::string& name = "mamba_tiny_tied") { return "--model '" + fixture(name) + "'"; }

std::vector<int32_t> parse_ids(const std::string& line) {
  std::vector<int32_t> ids;
  std::stringstream in(line);
  for (std::string s; std::getline(in, s, ',');) ids.push_back(std::stoi(s));
  return ids;
}

std::string join(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s.append(s.empty() ? "" : ",").append(std::to_string(id));
  return s;
}

// Greedy continuation by re-running the whole sequence through the full forward each step.
std::vector<int32_t> library_greedy(const std::string& name, const std::vector<int32_t>& prompt, int n,
                                    double repetition_penalty = 1.0) {
  SamplingOptions greedy;
  greedy.greedy = true;
  greedy.repetition_penalty = repetition_penalty;
  Sampler chooser(greedy, 0);
  LoadedCausalLM l = load_causal_lm(fixture(name), Device::cpu(), DType::f32);
  auto& m = dynamic_cast<MambaModel&>(*l.model);
  autograd::NoGradGuard ng;
  std::vector<int32_t> seq = prompt, gen;
  for (int i = 0; i < n; i++) {
    Tensor ids = Tensor::from_vector<int32_t>(seq, {1, int64_t(seq.size())});
    Tensor logits = m.logits(m.forward_hidden(ids, Tensor(), false));
    const int32_t next = chooser.next(logits.select(1, int64_t(seq.size()) - 1).contiguous().to_float_vector(), seq);
    seq.push_back(next);
    gen.push_back(next);
  }
  return gen;
}

// A character-level BPE tokenizer.json with `n` ids: 'a', 'b', 'c' are 0, 1, 2; "</s>" (special,
// the EOS) sits at `eos`; the other ids get the remaining letters, digits, ' ' and then "tokNN".
std::string write_tokenizer(const std::string& dir, int n, int eos) {
  const std::string pool = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ";
  Json vocab = Json::object();
  size_t next_char = 0;
  for (int id = 0; id < n; id++) {
    if (id == eos)
      vocab["</s>"] = id;
    else if (next_char < pool.size())
      vocab[pool.substr(next_char++, 1)] = id;
    else
      vocab["tok" + std::to_string(id)] = id;
  }
  Json doc = {{"version", "1.0"},
              {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", Json::array()}}},
              {"added_tokens",
               {{{"id", eos}, {"content", "</s>"}, {"special", true}, {"normalized", false}}}}};
  const std::string path = dir + "/tokenizer.json";
  std::ofstream(path) << doc.dump();
  return path;
}

// Exit code `rc`, exactly one line on stderr starting "lmforge: error: " and containing `needle`.
void expect_error(const std::string& args, int rc, const std::string& needle) {
  GenRun r = generate(args, true);
  EXPECT_EQ(r.rc, rc) << args << "\n" << r.out;
  EXPECT_EQ(r.out.rfind("lmforge: error: ", 0), 0u) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_NE(r.out.find(needle), std::string::npos) << "'" << needle << "' not in: " << r.out;
  EXPECT_EQ(generate(args).out, "") << "nothing on stdout: " << args;
}

}  // namespace

TEST(Generate, GreedyIdsEqualFullForwardArgmax) {
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5};
  for (const char* name : {"mamba_tiny_tied", "mamba_tiny_untied"}) {
    const std::vector<int32_t> expected = library_greedy(name, prompt, 10);
    const std::string args = model_arg(name) + " --ids 1,2,3,4,5 --greedy --max-new-tokens 10 --print-ids";
    GenRun a = generate(args);
    ASSERT_EQ(a.rc, 0) << a.out;
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), expected.begin(), expected.end());
    EXPECT_EQ(a.out, join(all) + "\n") << name;
    EXPECT_EQ(generate(args).out, a.out) << name;  // deterministic
  }
  const std::string args = model_arg() + " --ids 1,2,3,4,5 --greedy --max-new-tokens 10 --print-ids";
  GenRun a = generate(args);
  // temperature 0 is greedy too; the rate goes to stderr.
  GenRun t0 = generate(model_arg() + " --ids '1, 2,3,4,5' --temperature 0 --max-new-tokens 10 --print-ids", true);
  ASSERT_EQ(t0.rc, 0) << t0.out;
  EXPECT_EQ(t0.out.rfind(a.out, 0), 0u) << t0.out;
  EXPECT_NE(t0.out.find("10 new tokens"), std::string::npos) << t0.out;
  EXPECT_NE(t0.out.find("tok/s"), std::string::npos) << t0.out;
}

TEST(Generate, RepetitionPenaltyChangesGreedy) {
  // The tied fixture repeats its last token; a strong penalty forbids that.
  const std::vector<int32_t> plain = library_greedy("mamba_tiny_tied", {1, 2, 3}, 8);
  const std::vector<int32_t> penalized = library_greedy("mamba_tiny_tied", {1, 2, 3}, 8, 3.0);
  EXPECT_NE(plain, penalized);
  GenRun r = generate(model_arg() + " --ids 1,2,3 --greedy --repetition-penalty 3 --max-new-tokens 8 --json");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(Json::parse(r.out)["ids"].get<std::vector<int32_t>>(), penalized);
}

TEST(Generate, JsonOutput) {
  const std::vector<int32_t> expected = library_greedy("mamba_tiny_untied", {7, 8, 9}, 6);
  GenRun r = generate(model_arg("mamba_tiny_untied") + " --ids 7,8,9 --greedy --max-new-tokens 6 --json");
  ASSERT_EQ(r.rc, 0) << r.out;
  Json j = Json::parse(r.out);
  EXPECT_EQ(j["ids"].get<std::vector<int32_t>>(), expected);
  EXPECT_EQ(j["prompt_ids"].get<std::vector<int32_t>>(), (std::vector<int32_t>{7, 8, 9}));
  EXPECT_EQ(j["prompt"], "");  // no tokenizer: no text
  EXPECT_EQ(j["completion"], "");
  EXPECT_EQ(j["stop_reason"], "max_new_tokens");
  EXPECT_GT(j["tokens_per_s"].get<double>(), 0.0);
}

TEST(Generate, SamplingIsReproduciblePerSeed) {
  auto sample = [&](int seed) {
    GenRun r = generate(model_arg() + " --ids 1,2,3 --temperature 1 --top-k 0 --top-p 1 --max-new-tokens 16 --print-ids --seed " +
                     std::to_string(seed));
    EXPECT_EQ(r.rc, 0) << r.out;
    return r.out;
  };
  const std::string a = sample(5);
  EXPECT_EQ(parse_ids(a).size(), 19u);
  EXPECT_EQ(sample(5), a);
  std::set<std::string> outs;
  for (int s = 1; s <= 4; s++) outs.insert(sample(s));
  EXPECT_GT(outs.size(), 1u) << "different seeds should give different samples";
  // Default sampling options (temperature 0.8, top-k 50, top-p 0.95) are seeded too.
  const std::string d = model_arg() + " --ids 1,2,3 --max-new-tokens 8 --print-ids --seed 9";
  EXPECT_EQ(generate(d).out, generate(d).out);
}

TEST(Generate, TokenizerTextPromptAndStopAtEos) {
  // Greedy continuation of "abc" (ids 0, 1, 2); make the first generated id >= 3 the EOS.
  const std::vector<int32_t> gen = library_greedy("mamba_tiny_untied", {0, 1, 2}, 24);
  size_t k = 0;
  while (k < gen.size() && gen[k] < 3) k++;
  ASSERT_LT(k, gen.size()) << "the fixture's greedy continuation stays within ids 0..2";
  const int eos = gen[k];
  const std::string dir = test::scratch_dir("generate_tok");
  const std::string tok_path = write_tokenizer(dir, 64, eos);
  Tokenizer tok = Tokenizer::from_file(tok_path);
  ASSERT_EQ(tok.encode("abc"), (std::vector<int32_t>{0, 1, 2}));
  ASSERT_EQ(tok.eos_id(), eos);

  // Text: the prompt as typed, then the continuation (this tokenizer has no decoder: tokens
  // are joined by spaces, so the continuation starts with one).
  const std::vector<int32_t> first8(gen.begin(), gen.begin() + 8);
  std::vector<int32_t> all = {0, 1, 2};
  all.insert(all.end(), first8.begin(), first8.end());
  const std::string cont = tok.decode(all).substr(tok.decode({0, 1, 2}).size());
  GenRun text = generate(model_arg("mamba_tiny_untied") + " --tokenizer '" + tok_path + "' --prompt abc --greedy --max-new-tokens 8");
  ASSERT_EQ(text.rc, 0) << text.out;
  EXPECT_EQ(text.out, "abc" + cont + "\n");

  // --stop-at-eos: stops right after the EOS, which ends "ids" but not the completion text.
  GenRun j = generate(model_arg("mamba_tiny_untied") + " --tokenizer '" + tok_path + "' --prompt abc --greedy --max-new-tokens 24 --stop-at-eos --json");
  ASSERT_EQ(j.rc, 0) << j.out;
  Json out = Json::parse(j.out);
  EXPECT_EQ(out["ids"].get<std::vector<int32_t>>(), std::vector<int32_t>(gen.begin(), gen.begin() + long(k) + 1));
  EXPECT_EQ(out["stop_reason"], "eos");
  EXPECT_EQ(out["prompt"], "abc");
  std::vector<int32_t> before_eos = {0, 1, 2};
  before_eos.insert(before_eos.end(), gen.begin(), gen.begin() + long(k));
  EXPECT_EQ(out["completion"], tok.decode(before_eos).substr(tok.decode({0, 1, 2}).size()));
  EXPECT_EQ(out["completion"].get<std::string>().find("</s>"), std::string::npos);
}

TEST(Generate, ErrorsAreOneClearLine) {
  const std::string dir = test::scratch_dir("generate_err");
  expect_error("--model '" + dir + "/nope' --ids 1", 1, "no such directory");
  expect_error("--model '" + dir + "' --ids 1", 1, "config.json: not found");
  const std::string big = test::scratch_dir("generate_err_big");
  const std::string big_tok = write_tokenizer(big, 100, 50);
  expect_error(model_arg() + " --tokenizer '" + big_tok + "' --prompt abc", 1, "the tokenizer has 100 tokens but the model");
  const std::string ok_tok = write_tokenizer(dir, 64, 63);
  expect_error(model_arg() + " --tokenizer '" + ok_tok + "' --prompt ''", 2, "--prompt: empty prompt");
  std::ofstream(dir + "/empty.txt").close();
  expect_error(model_arg() + " --tokenizer '" + ok_tok + "' --prompt-file '" + dir + "/empty.txt'", 2, "empty prompt file");
  expect_error(model_arg() + " --max-new-tokens 3", 2, "no prompt");
  expect_error(model_arg() + " --ids 1 --prompt abc", 2, "exclusive");
  expect_error(model_arg() + " --ids 1,x", 2, "--ids: expected comma-separated token ids, got 'x'");
  expect_error(model_arg() + " --ids 3,64", 2, "--ids: token id 64 is outside the model's vocabulary [0, 64)");
  expect_error(model_arg() + " --prompt abc", 2, "needs --tokenizer");
  expect_error(model_arg() + " --ids 1 --top-p 1.5", 2, "top_p");
  expect_error(model_arg() + " --ids 1 --max-new-tokens -1", 2, "--max-new-tokens");
}
