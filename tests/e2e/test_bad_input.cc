// Bad input end to end: every case runs the `lmforge` binary on one broken recipe, config.json,
// checkpoint, tokenizer, shard or text file and checks the project standard (docs/cli.md):
// exit 1 or 2, exactly one stderr line "lmforge: error: ..." naming the offending file or key,
// never a crash. Pretrain cases must fail before training starts (they would take seconds).
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "cli_runner.h"
#include "lmforge/core/philox.h"
#include "lmforge/data/shard.h"
#include "lmforge/io/safetensors.h"
#include "lmforge/tokenize/tokenizer.h"
#include "test_util.h"

using namespace lmf;
using e2e::shell_quote;
using e2e::write_file;
namespace fs = std::filesystem;

namespace {

const char* kEnFr = "data/tokenizers/enfr-bpe-4k/tokenizer.json";

std::string q(const std::string& s) { return shell_quote(s); }

// Scratch inputs shared by the cases: one folder, built once.
struct Inputs {
  std::string dir, tokenizer, good_shard, other_tok_shard, wide_shard, model_config, forward_input;
  uint64_t fingerprint = 0;
  int64_t vocab = 0;
};

void write_random_shard(const std::string& prefix, uint64_t vocab, uint64_t fingerprint, int32_t max_id, uint64_t seed) {
  ShardWriter w(prefix, vocab, fingerprint, 0);
  for (int d = 0; d < 20; d++) {
    std::vector<int32_t> doc;
    for (int i = 0; i < 40; i++) doc.push_back(1 + int32_t(philox_uniform(seed, uint64_t(d), uint64_t(i)) * float(max_id - 1)));
    doc.push_back(0);
    w.add_document(doc);
  }
  w.finish();
}

const Inputs& inputs() {
  static Inputs in = [] {
    Inputs in;
    in.dir = test::scratch_dir("bad_input");
    in.tokenizer = test::source_path(kEnFr);
    Tokenizer tok = Tokenizer::from_file(in.tokenizer);
    in.vocab = tok.vocab_size();
    in.fingerprint = tok.fingerprint();
    in.good_shard = in.dir + "/good";
    write_random_shard(in.good_shard, uint64_t(in.vocab), in.fingerprint, int32_t(in.vocab), 1);
    // Same vocabulary size, another tokenizer: ids would silently mean other strings.
    Tokenizer other = Tokenizer::from_file(test::source_path("data/tokenizers/gpt-neox-20b/tokenizer.json"));
    in.other_tok_shard = in.dir + "/other_tok";
    write_random_shard(in.other_tok_shard, uint64_t(in.vocab), other.fingerprint(), int32_t(in.vocab), 2);
    // Ids up to 4095, far past the 64-token vocabulary of the tiny fixture model.
    in.wide_shard = in.dir + "/wide";
    write_random_shard(in.wide_shard, uint64_t(in.vocab), in.fingerprint, int32_t(in.vocab), 3);
    nlohmann::json cfg = {{"architectures", {"MambaForCausalLM"}}, {"model_type", "mamba"}, {"vocab_size", in.vocab},
                          {"hidden_size", 16}, {"state_size", 4}, {"num_hidden_layers", 1}, {"expand", 2},
                          {"conv_kernel", 4}, {"time_step_rank", "auto"}};
    in.model_config = write_file(in.dir + "/config.json", cfg.dump(2));
    in.forward_input = in.dir + "/input_ids.safetensors";
    save_safetensors(in.forward_input, {{"input_ids", Tensor::from_vector<int64_t>({1, 5, 9, 2, 63, 0}, {2, 3})}});
    return in;
  }();
  return in;
}

// A pretrain recipe over `shard` (run_dir_line replaces the `dir = ...` line of [run]). Each
// recipe gets its own run folder (a fresh run refuses a non-empty one).
std::string recipe(const std::string& name, const std::string& model_config, const std::string& shard,
                   const std::string& run_dir_line = "", const std::string& max_steps = "10") {
  const Inputs& in = inputs();
  std::string run = run_dir_line.empty() ? "dir = " + nlohmann::json(in.dir + "/runs/" + name).dump() : run_dir_line;
  std::string text = "[run]\n" + run + "\nseed = 1\ndevice = \"cpu\"\n\n[model]\nconfig = " +
                     nlohmann::json(model_config).dump() + "\n\n[data]\ntokenizer = " + nlohmann::json(in.tokenizer).dump() +
                     "\nseq_len = 16\n\n[[data.phases]]\nname = \"stable\"\nstart_step = 0\n[[data.phases.sources]]\n"
                     "name = \"en\"\nshards = [" + nlohmann::json(shard).dump() + "]\n\n[train]\nmicro_batch = 2\n"
                     "max_steps = " + max_steps + "\nlog_every = 1\n";
  return write_file(in.dir + "/" + name + ".toml", text);
}

std::string pretrain(const std::string& recipe_path, const std::string& extra = "") {
  return "pretrain --config " + q(recipe_path) + (extra.empty() ? "" : " " + extra);
}

std::string config_with(const std::string& name, const std::function<void(nlohmann::json&)>& edit) {
  const Inputs& in = inputs();
  nlohmann::json cfg = nlohmann::json::parse(e2e::read_file(in.model_config));
  edit(cfg);
  return write_file(in.dir + "/" + name + ".json", cfg.dump(2));
}

// A copy of the tied fixture folder whose model.safetensors is replaced by `bytes`.
std::string fixture_copy(const std::string& name) {
  std::string dst = inputs().dir + "/" + name;
  fs::remove_all(dst);
  fs::copy(test::source_path("tests/fixtures/mamba_tiny_tied"), dst, fs::copy_options::recursive);
  return dst;
}

std::string forward(const std::string& model) {
  return "forward --model " + q(model) + " --device cpu --input " + q(inputs().forward_input) + " --out " +
         q(inputs().dir + "/logits.safetensors");
}

struct Case {
  std::string name;
  std::function<std::string(const Inputs&)> args;  // builds the inputs, returns the command line
  std::vector<std::string> needles;   // substrings of the error line
};

std::vector<Case> cases() {
  return {
      // --- recipes -------------------------------------------------------------------------
      {"recipe_missing_run_dir",
       [](const Inputs& in) { return pretrain(recipe("no_run_dir", in.model_config, in.good_shard, "name = \"x\"")); },
       {"no_run_dir.toml", "run.dir"}},
      {"recipe_wrong_type",
       [](const Inputs& in) { return pretrain(recipe("wrong_type", in.model_config, in.good_shard, "", "\"ten\"")); },
       {"wrong_type.toml", "train.max_steps", "integer"}},
      {"recipe_unknown_set_key",
       [](const Inputs& in) { return pretrain(recipe("unknown_set", in.model_config, in.good_shard), "--set train.max_stepz=3"); },
       {"train.max_stepz", "did you mean 'train.max_steps'"}},
      {"recipe_bad_table_header",  // toml++ asserted on this (abort in debug builds): recipe_tree.h
       [](const Inputs& in) {
         return pretrain(write_file(in.dir + "/bad_header.toml", "[run]\ndir = \"x\"\n\n[}rain]\nmax_steps = 1\n"));
       },
       {"bad_header.toml:4:"}},
      {"recipe_missing_model_config",
       [](const Inputs& in) { return pretrain(recipe("missing_cfg", in.dir + "/nope/config.json", in.good_shard)); },
       {"nope/config.json"}},
      // --- config.json ---------------------------------------------------------------------
      {"config_negative_hidden_size",
       [](const Inputs& in) {
         return pretrain(recipe("neg_hidden", config_with("neg_hidden", [](auto& j) { j["hidden_size"] = -8; }),
                                in.good_shard));
       },
       {"neg_hidden.json", "hidden_size", "positive"}},
      {"config_missing_vocab_type",
       [](const Inputs& in) {
         return pretrain(recipe("str_vocab", config_with("str_vocab", [](auto& j) { j["vocab_size"] = "4096"; }),
                                in.good_shard));
       },
       {"str_vocab.json", "vocab_size", "integer"}},
      {"config_contradictory_intermediate",
       [](const Inputs& in) {
         return pretrain(recipe("bad_inter", config_with("bad_inter", [](auto& j) { j["intermediate_size"] = 48; }),
                                in.good_shard));
       },
       {"bad_inter.json", "intermediate_size", "expand * hidden_size = 32"}},
      {"config_unsupported_architecture",
       [](const Inputs& in) {
         return pretrain(recipe("bert", config_with("bert", [](auto& j) {
                                  j["architectures"] = {"BertModel"};
                                  j["model_type"] = "bert";
                                }),
                                in.good_shard));
       },
       {"bert.json", "BertModel"}},
      {"config_no_architecture",
       [](const Inputs& in) {
         return pretrain(recipe("no_arch", config_with("no_arch", [](auto& j) {
                                  j.erase("architectures");
                                  j.erase("model_type");
                                }),
                                in.good_shard));
       },
       {"no_arch.json", "architectures"}},
      {"config_not_json",
       [](const Inputs& in) { return pretrain(recipe("not_json", write_file(in.dir + "/not_json.json", "{\"vocab_size\": 12,"), in.good_shard)); },
       {"not_json.json", "invalid JSON"}},
      // --- tokenizer.json ------------------------------------------------------------------
      {"tokenizer_wordpiece",
       [](const Inputs& in) {
         std::string t = write_file(in.dir + "/wordpiece.json",
                                    R"({"version": "1.0", "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "a": 1},)"
                                    R"( "unk_token": "[UNK]", "continuing_subword_prefix": "##"}})");
         return "tokenize --tokenizer " + q(t) + " " + q(test::source_path("data/text/tiny_shakespeare.txt")) + " -o " +
                q(in.dir + "/wp");
       },
       {"wordpiece.json", "WordLevel", "not supported"}},
      {"tokenizer_truncated_json",
       [](const Inputs& in) {
         std::string t = write_file(in.dir + "/trunc_tok.json", e2e::read_file(in.tokenizer).substr(0, 5000));
         return "encode --tokenizer " + q(t) + " < /dev/null";
       },
       {"trunc_tok.json", "invalid JSON"}},
      // --- shards --------------------------------------------------------------------------
      {"shard_other_tokenizer",
       [](const Inputs& in) { return pretrain(recipe("other_tok", in.model_config, in.other_tok_shard)); },
       {"other_tok.idx", "another tokenizer"}},
      {"shard_missing",
       [](const Inputs& in) { return pretrain(recipe("missing_shard", in.model_config, in.dir + "/no_such_shard")); },
       {"no_such_shard"}},
      {"shard_truncated_idx",
       [](const Inputs& in) {
         std::string p = in.dir + "/trunc_idx";
         write_random_shard(p, uint64_t(in.vocab), in.fingerprint, int32_t(in.vocab), 4);
         std::string idx = e2e::read_file(p + ".idx");
         write_file(p + ".idx", idx.substr(0, idx.size() - 12));
         return pretrain(recipe("trunc_idx", in.model_config, p));
       },
       {"trunc_idx.idx"}},
      {"shard_forged_token_count",
       [](const Inputs& in) {
         // num_tokens = 2^62 with an empty .bin: num_tokens * 4 wraps to 0 bytes, which the
         // size check once accepted (then reads ran off the mapping).
         std::string p = in.dir + "/forged";
         const uint64_t n = uint64_t(1) << 62;
         const uint64_t fields[] = {1, 1, n, uint64_t(in.vocab), in.fingerprint, 0, 0, 0, n};
         write_file(p + ".idx", "LMFSHRD1" + std::string(reinterpret_cast<const char*>(fields), sizeof fields));
         write_file(p + ".bin", "");
         return "eval --model " + q(test::source_path("tests/fixtures/mamba_tiny_tied")) + " --device cpu --seq-len 16 --data " +
                q(p);
       },
       {"forged.bin", "does not match", "4611686018427387904 tokens"}},
      {"shard_vocab_larger_than_model",
       [](const Inputs& in) {
         return "eval --model " + q(test::source_path("tests/fixtures/mamba_tiny_tied")) + " --device cpu --seq-len 16 --data " +
                q(in.wide_shard);
       },
       {"wide.idx", "4095", "vocabulary of 64"}},
      // --- tokenize inputs -----------------------------------------------------------------
      {"tokenize_empty_file",
       [](const Inputs& in) { return "tokenize --tokenizer " + q(in.tokenizer) + " " + q(write_file(in.dir + "/empty.txt", "")) + " -o " + q(in.dir + "/t_empty"); },
       {"empty.txt", "empty"}},
      {"tokenize_binary_file",
       [](const Inputs& in) {
         std::string bytes("GIF89a\x01\0\x01\0\x80\0\0\xff\xff\xff\0\0\0!", 20);
         return "tokenize --tokenizer " + q(in.tokenizer) + " " + q(write_file(in.dir + "/image.gif", bytes)) + " -o " + q(in.dir + "/t_bin");
       },
       {"image.gif", "NUL"}},
      {"tokenize_invalid_utf8",
       [](const Inputs& in) {
         return "tokenize --tokenizer " + q(in.tokenizer) + " " + q(write_file(in.dir + "/latin1.txt", "caf\xe9 au lait\n\nna\xefve\n")) + " -o " +
                q(in.dir + "/t_utf8");
       },
       {"latin1.txt:1:", "invalid UTF-8"}},
      {"tokenize_whitespace_only",
       [](const Inputs& in) { return "tokenize --tokenizer " + q(in.tokenizer) + " " + q(write_file(in.dir + "/blank.txt", " \n\n \n")) + " -o " + q(in.dir + "/t_ws"); },
       {"blank.txt", "no documents"}},
      // --- checkpoints ---------------------------------------------------------------------
      {"checkpoint_wrong_shape",
       [](const Inputs&) {
         std::string d = fixture_copy("wrong_shape");
         auto f = SafetensorsFile::open(d + "/model.safetensors");
         NamedTensors ts;
         for (const auto& n : f.names()) {
           Tensor t = f.tensor(n);
           if (n.find("layers.0.mixer.A_log") != std::string::npos) t = test::random_tensor({64, 7}, t.dtype(), 5);
           ts.emplace_back(n, t);
         }
         save_safetensors(d + "/model.safetensors", ts);
         return forward(d);
       },
       {"wrong_shape", "layers.0.mixer.A_log", "[64, 7]", "expects [64, 8]"}},
      {"checkpoint_config_state_size",
       [](const Inputs&) {
         std::string d = fixture_copy("state_size");
         auto cfg = nlohmann::json::parse(e2e::read_file(d + "/config.json"));
         cfg["state_size"] = 16;
         write_file(d + "/config.json", cfg.dump(2));
         return forward(d);
       },
       {"state_size", "x_proj.weight", "[18, 64]", "expects [34, 64]"}},
      {"checkpoint_truncated",
       [](const Inputs&) {
         std::string d = fixture_copy("truncated");
         std::string bytes = e2e::read_file(d + "/model.safetensors");
         write_file(d + "/model.safetensors", bytes.substr(0, bytes.size() / 2));
         return forward(d);
       },
       {"truncated/model.safetensors", "truncated"}},
      {"checkpoint_missing_tensor",
       [](const Inputs&) {
         std::string d = fixture_copy("missing_tensor");
         auto f = SafetensorsFile::open(d + "/model.safetensors");
         NamedTensors ts;
         for (const auto& n : f.names())
           if (n.find("norm_f") == std::string::npos) ts.emplace_back(n, f.tensor(n));
         save_safetensors(d + "/model.safetensors", ts);
         return forward(d);
       },
       {"missing_tensor", "backbone.norm_f.weight", "missing"}},
      {"generate_missing_model_dir",
       [](const Inputs& in) { return "generate --model " + q(in.dir + "/no_model_here") + " --ids 1,2,3 --max-new-tokens 2"; },
       {"no_model_here"}},
      {"generate_missing_config",
       [](const Inputs&) {
         std::string d = fixture_copy("no_config");
         fs::remove(d + "/config.json");
         return "generate --model " + q(d) + " --ids 1,2,3 --max-new-tokens 2";
       },
       {"no_config/config.json"}},
  };
}

// Test names are the case names; gtest prints the parameter with this too.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class BadInput : public ::testing::TestWithParam<Case> {};

TEST_P(BadInput, OneLineErrorNoCrash) {
  const Case& c = GetParam();
  const std::string args = c.args(inputs());
  auto err = e2e::lmforge(args, e2e::Capture::stderr_only);  // records a failure for exit >= 128
  EXPECT_TRUE(err.rc == 1 || err.rc == 2) << "exit " << err.rc << ": lmforge " << args << "\n" << err.out;
  auto lines = e2e::lines_of(err.out);
  ASSERT_EQ(lines.size(), 1u) << "lmforge " << args << "\nstderr:\n" << err.out;
  EXPECT_EQ(lines[0].rfind("lmforge: error: ", 0), 0u) << lines[0];
  for (const auto& n : c.needles) EXPECT_NE(lines[0].find(n), std::string::npos) << "'" << n << "' not in: " << lines[0];
  EXPECT_EQ(lines[0].find("internal error"), std::string::npos) << lines[0];
}

INSTANTIATE_TEST_SUITE_P(Cases, BadInput, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

}  // namespace
