#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "lmforge/core/suggest.h"
#include "lmforge/io/atomic_file.h"
#include "lmforge/io/recipe.h"
#include "test_util.h"

using namespace lmf;

namespace {

const char* kRecipe = R"(# a small pre-training recipe
name = "tiny-mamba"
seed = 1234

[model]
arch = "mamba"
d_model = 64
n_layer = 2
tie_embeddings = true

[optimizer]
lr = 3e-4
betas = [0.9, 0.95]
weight_decay = 0.1
warmup_steps = 10

[data]
langs = ["en", "fr", "de"]
shards = [3, 1, 2]

[[phases]]
name = "stable"
steps = 900

[[phases]]
name = "decay"
steps = 100
tau = 0.5
)";

Recipe sample() { return Recipe::parse(kRecipe, "configs/x.toml"); }

// The message of the lmf::Error (or subclass) thrown by f; "" when nothing is thrown.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Recipe, TypedReads) {
  Recipe r = sample();
  EXPECT_EQ(r.require<std::string>("model.arch"), "mamba");
  EXPECT_EQ(r.require<int>("model.d_model"), 64);
  EXPECT_EQ(r.require<int64_t>("seed"), 1234);
  EXPECT_DOUBLE_EQ(r.require<double>("optimizer.lr"), 3e-4);
  // An integer in the file is a valid number.
  EXPECT_DOUBLE_EQ(r.require<double>("optimizer.warmup_steps"), 10.0);
  EXPECT_TRUE(r.require<bool>("model.tie_embeddings"));
  EXPECT_EQ(r.require<std::vector<std::string>>("data.langs"), (std::vector<std::string>{"en", "fr", "de"}));
  EXPECT_EQ(r.require<std::vector<int64_t>>("data.shards"), (std::vector<int64_t>{3, 1, 2}));
  EXPECT_EQ(r.require<std::vector<double>>("optimizer.betas"), (std::vector<double>{0.9, 0.95}));
  EXPECT_EQ(r.require<std::string>("data.langs[1]"), "fr");
  // Absent keys give the fallback; find gives nullopt.
  EXPECT_DOUBLE_EQ(r.get<double>("optimizer.eps", 1e-8), 1e-8);
  EXPECT_EQ(r.get<std::string>("model.norm", "rms"), "rms");
  EXPECT_EQ(r.get<int>("nothing.at.all", 7), 7);
  EXPECT_FALSE(r.find<bool>("model.bias").has_value());
  EXPECT_TRUE(r.has("optimizer"));
  EXPECT_TRUE(r.has("phases[1].tau"));
  EXPECT_FALSE(r.has("phases[2]"));
  EXPECT_EQ(r.keys("model"), (std::vector<std::string>{"arch", "d_model", "n_layer", "tie_embeddings"}));
}

TEST(Recipe, ViewsAndArraysOfTables) {
  Recipe r = sample();
  auto phases = r.tables("phases");
  ASSERT_EQ(phases.size(), 2u);
  EXPECT_EQ(phases[0].require<std::string>("name"), "stable");
  EXPECT_EQ(phases[1].require<int64_t>("steps"), 100);
  EXPECT_DOUBLE_EQ(phases[1].get<double>("tau", 1.0), 0.5);
  EXPECT_DOUBLE_EQ(phases[0].get<double>("tau", 1.0), 1.0);
  EXPECT_EQ(phases[1].prefix(), "phases[1]");
  EXPECT_TRUE(r.tables("no_such_array").empty());
  Recipe opt = r.table("optimizer");
  EXPECT_DOUBLE_EQ(opt.require<double>("weight_decay"), 0.1);
  // Errors from a view name the full key.
  EXPECT_EQ(error_of([&] { phases[0].require<double>("name"); }),
            "configs/x.toml: phases[0].name: expected a number, got string 'stable'");
  EXPECT_EQ(error_of([&] { r.table("model.arch"); }),
            "configs/x.toml: model.arch: expected a table, got string 'mamba'");
  EXPECT_EQ(error_of([&] { r.table("scheduler"); }), "configs/x.toml: scheduler: missing required table");
  EXPECT_EQ(error_of([&] { r.tables("model"); }),
            "configs/x.toml: model: expected an array of tables ([[...]]), got table");
}

TEST(Recipe, TypeErrorsNameFileAndKey) {
  Recipe r = Recipe::parse(
      "[optimizer]\nlr = 'abc'\nsteps = 2.5\nbig = 9999999999\nflag = 1\n"
      "betas = [0.9, 'x']\n",
      "configs/x.toml");
  EXPECT_EQ(error_of([&] { r.get<double>("optimizer.lr", 1.0); }),
            "configs/x.toml: optimizer.lr: expected a number, got string 'abc'");
  EXPECT_EQ(error_of([&] { r.require<int64_t>("optimizer.steps"); }),
            "configs/x.toml: optimizer.steps: expected an integer, got float 2.5");
  EXPECT_EQ(error_of([&] { r.require<int>("optimizer.big"); }),
            "configs/x.toml: optimizer.big: expected a 32-bit integer, got integer 9999999999");
  EXPECT_EQ(r.require<int64_t>("optimizer.big"), 9999999999LL);
  EXPECT_EQ(error_of([&] { r.require<bool>("optimizer.flag"); }),
            "configs/x.toml: optimizer.flag: expected a boolean (true or false), got integer 1");
  EXPECT_EQ(error_of([&] { r.require<std::vector<double>>("optimizer.betas"); }),
            "configs/x.toml: optimizer.betas: expected an array of numbers, got string 'x' at [1]");
  EXPECT_EQ(error_of([&] { r.require<std::string>("optimizer.missing"); }),
            "configs/x.toml: optimizer.missing: missing required key");
  EXPECT_EQ(error_of([&] { r.get<double>("optimizer.lr.x", 1.0); }),
            "configs/x.toml: optimizer.lr: expected a table, got string 'abc'");
  EXPECT_EQ(error_of([&] { r.get<double>("optimizer..lr", 1.0); }), "bad key 'optimizer..lr': empty part");
  EXPECT_EQ(error_of([&] { r.get<double>("a[x]", 1.0); }),
            "bad key 'a[x]': an array index must be a non-negative integer");
  EXPECT_EQ(error_of([&] { r.fail_at("optimizer.lr", "must be > 0"); }),
            "configs/x.toml: optimizer.lr: must be > 0");
}

TEST(Recipe, Choices) {
  Recipe r = sample();
  EXPECT_EQ(r.require_choice("model.arch", {"mamba", "gpt_neo", "bert"}), "mamba");
  EXPECT_EQ(r.get_choice("model.pooling", "cls", {"cls", "mean"}), "cls");
  EXPECT_EQ(error_of([&] {
              r.require_choice("model.arch", {"mamb", "bert"});
            }),
            "configs/x.toml: model.arch: expected one of mamb|bert, got 'mamba' (did you mean 'mamb'?)");
}

TEST(Recipe, MalformedTomlGivesFileLineColumn) {
  // Line 3 has an unterminated string; the error must point at line 3.
  std::string msg = error_of([] { Recipe::parse("a = 1\n[b]\nc = \"oops\n", "configs/bad.toml"); });
  EXPECT_EQ(msg.rfind("configs/bad.toml:3:", 0), 0u) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
  msg = error_of([] { Recipe::parse("x = 1\nx = 2\n", "dup.toml"); });
  EXPECT_EQ(msg.rfind("dup.toml:2:", 0), 0u) << msg;
  msg = error_of([] { Recipe::load("/nonexistent/dir/recipe.toml"); });
  EXPECT_EQ(msg, "/nonexistent/dir/recipe.toml: cannot read: No such file or directory");
  std::string dir = test::scratch_dir("recipe_dir");
  EXPECT_EQ(error_of([&] { Recipe::load(dir); }), dir + ": cannot read: is a folder, expected a TOML file");
}

TEST(Recipe, OverridesKeepTypes) {
  Recipe r = sample();
  r.apply_overrides({"optimizer.lr=1e-3", "model.n_layer=4", "model.tie_embeddings=false",
                     "model.arch=gpt_neo", "name=\"quoted name\"", "optimizer.weight_decay=0",
                     "data.langs=[es, it]", "phases[1].steps=250", "optimizer.betas=[0.8, 1]",
                     "  seed = 99 "});
  EXPECT_DOUBLE_EQ(r.require<double>("optimizer.lr"), 1e-3);
  EXPECT_EQ(r.require<int>("model.n_layer"), 4);
  EXPECT_FALSE(r.require<bool>("model.tie_embeddings"));
  EXPECT_EQ(r.require<std::string>("model.arch"), "gpt_neo");
  EXPECT_EQ(r.require<std::string>("name"), "quoted name");
  // An integer given for a float key stays a float (so the file keeps its type).
  EXPECT_DOUBLE_EQ(r.require<double>("optimizer.weight_decay"), 0.0);
  EXPECT_NE(r.to_toml().find("weight_decay = 0.0"), std::string::npos) << r.to_toml();
  EXPECT_EQ(r.require<std::vector<std::string>>("data.langs"), (std::vector<std::string>{"es", "it"}));
  EXPECT_EQ(r.tables("phases")[1].require<int64_t>("steps"), 250);
  EXPECT_EQ(r.require<std::vector<double>>("optimizer.betas"), (std::vector<double>{0.8, 1.0}));
  EXPECT_EQ(r.require<int64_t>("seed"), 99);
  EXPECT_EQ(r.overrides().size(), 10u);
  // A string key takes unquoted text verbatim, even when it looks like a number.
  r.apply_override("name=2024");
  EXPECT_EQ(r.require<std::string>("name"), "2024");
  // C-style floats that TOML itself rejects are accepted for float keys.
  r.apply_override("optimizer.lr=.5");
  EXPECT_DOUBLE_EQ(r.require<double>("optimizer.lr"), 0.5);
  // '+' adds keys, creating parent tables.
  r.apply_override("+eval.every_steps=50");
  r.apply_override("+model.dropout=0.1");
  r.apply_override("+run.tag=nightly");
  r.apply_override("+run.langs=[en, 'fr']");
  EXPECT_EQ(r.require<std::vector<std::string>>("run.langs"), (std::vector<std::string>{"en", "fr"}));
  EXPECT_EQ(r.require<int64_t>("eval.every_steps"), 50);
  EXPECT_DOUBLE_EQ(r.require<double>("model.dropout"), 0.1);
  EXPECT_EQ(r.require<std::string>("run.tag"), "nightly");
}

TEST(Recipe, BadOverridesAreUsageErrors) {
  Recipe r = sample();
  auto bad = [&](const std::string& o) {
    try {
      r.apply_override(o);
    } catch (const OverrideError& e) {
      return std::string(e.what());
    } catch (const Error& e) {
      return "not an OverrideError: " + std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(
      bad("optimizer.lrr=1"),
      "configs/x.toml: --set optimizer.lrr=1: unknown key 'optimizer.lrr' (did you mean 'optimizer.lr'?)");
  EXPECT_EQ(bad("zzz.qqq=1"),
            "configs/x.toml: --set zzz.qqq=1: unknown key 'zzz.qqq' (to add it, write --set +zzz.qqq=...)");
  EXPECT_EQ(bad("optimizer.lr=abc"),
            "configs/x.toml: --set optimizer.lr=abc: expected a number, got string 'abc'");
  EXPECT_EQ(bad("model.n_layer=2.5"),
            "configs/x.toml: --set model.n_layer=2.5: expected an integer, got float 2.5");
  EXPECT_EQ(
      bad("model.tie_embeddings=yes"),
      "configs/x.toml: --set model.tie_embeddings=yes: expected a boolean (true or false), got string 'yes'");
  EXPECT_EQ(bad("data.shards=[1, x]"),
            "configs/x.toml: --set data.shards=[1, x]: expected an array, got string '[1, x]'");
  EXPECT_EQ(bad("data.shards=[1, 2.5]"),
            "configs/x.toml: --set data.shards=[1, 2.5]: expected an integer at [1], got float 2.5");
  EXPECT_EQ(bad("optimizer=1"),
            "configs/x.toml: --set optimizer=1: 'optimizer' is a table; set one of its keys instead, e.g. "
            "'optimizer.betas=...'");
  EXPECT_EQ(bad("phases=1"),
            "configs/x.toml: --set phases=1: 'phases' is a table; set one of its keys instead, e.g. "
            "'phases[0].name=...'");
  EXPECT_EQ(
      bad("phases[5].steps=1"),
      "configs/x.toml: --set phases[5].steps=1: 'phases[5]': index out of range (the array has 2 elements)");
  EXPECT_EQ(bad("optimizer.lr"), "configs/x.toml: --set optimizer.lr: expected key=value");
  EXPECT_EQ(bad("optimizer.lr="),
            "configs/x.toml: --set optimizer.lr=: missing value (write \"\" for an empty string)");
  EXPECT_EQ(bad("=3"), "configs/x.toml: --set =3: expected key=value (the key is empty)");
  EXPECT_EQ(bad("+model.arch.x=1"),
            "configs/x.toml: --set +model.arch.x=1: 'model.arch' is string 'mamba', not a table");
  // Failed overrides change nothing.
  EXPECT_DOUBLE_EQ(r.require<double>("optimizer.lr"), 3e-4);
  EXPECT_TRUE(r.overrides().empty());
}

TEST(Recipe, UnusedKeys) {
  Recipe r = Recipe::parse(
      "[optimizer]\nlrr = 0.1\nbeta1 = 0.9\n[model]\narch = 'bert'\n[model.extra]\na = 1\nb = 2\n"
      "[[phases]]\nsteps = 1\nfoo = 2\n",
      "configs/x.toml");
  EXPECT_EQ(r.unused_keys(),
            (std::vector<std::string>{"model.arch", "model.extra.a", "model.extra.b", "optimizer.beta1",
                                      "optimizer.lrr", "phases[0].foo", "phases[0].steps"}));
  // A read with a fallback for a key the file misspells: lr is absent, lrr unused.
  EXPECT_DOUBLE_EQ(r.get<double>("optimizer.lr", 1e-3), 1e-3);
  r.require<double>("optimizer.beta1");
  r.require<std::string>("model.arch");
  r.mark_used("model.extra");
  for (auto& p : r.tables("phases")) p.require<int64_t>("steps");
  EXPECT_EQ(r.unused_keys(), (std::vector<std::string>{"optimizer.lrr", "phases[0].foo"}));
  auto msgs = r.unused_key_messages();
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[0], "configs/x.toml: unused key 'optimizer.lrr' (did you mean 'optimizer.lr'?)");
  EXPECT_EQ(msgs[1], "configs/x.toml: unused key 'phases[0].foo'");
  EXPECT_EQ(error_of([&] { r.reject_unused(); }),
            "configs/x.toml: unused key 'optimizer.lrr' (did you mean 'optimizer.lr'?); unused key "
            "'phases[0].foo'");
  r.mark_used("optimizer.lrr");
  r.mark_used("phases");
  EXPECT_TRUE(r.unused_keys().empty());
  EXPECT_NO_THROW(r.reject_unused());
}

TEST(Recipe, WriteResolvedRoundTripsRandomValues) {
  std::string dir = test::scratch_dir("recipe_resolved");
  std::mt19937_64 gen(20240611);
  std::uniform_real_distribution<double> mant(-1.0, 1.0);
  std::uniform_int_distribution<int> expo(-30, 30);
  std::uniform_int_distribution<int64_t> ints(INT64_MIN / 2, INT64_MAX / 2);
  std::vector<double> doubles;
  std::vector<int64_t> integers;
  std::string text = "[values]\n";
  Recipe r = Recipe::parse("[values]\n", "gen.toml");
  for (int i = 0; i < 40; i++) {
    doubles.push_back(mant(gen) * std::pow(10.0, expo(gen)));
    integers.push_back(ints(gen));
    std::ostringstream d, n;
    d.precision(17);
    d << "+values.d" << i << "=" << doubles.back();
    n << "+values.n" << i << "=" << integers.back();
    r.apply_override(d.str());
    r.apply_override(n.str());
  }
  r.apply_override("+values.s=\"tab\\there \\\"quoted\\\" \\u00e9\"");
  std::string path = dir + "/config.resolved.toml";
  r.write_resolved(path);
  Recipe back = Recipe::load(path);
  for (int i = 0; i < 40; i++) {
    EXPECT_EQ(back.require<double>("values.d" + std::to_string(i)), doubles[i]) << i;
    EXPECT_EQ(back.require<int64_t>("values.n" + std::to_string(i)), integers[i]) << i;
  }
  EXPECT_EQ(back.require<std::string>("values.s"), "tab\there \"quoted\" \u00e9");
  // The header names the source and the overrides; nothing else is left in the folder.
  std::ifstream in(path);
  std::string first, second, third;
  std::getline(in, first);
  std::getline(in, second);
  std::getline(in, third);
  EXPECT_EQ(first.rfind("# Resolved recipe written by lmforge", 0), 0u);
  EXPECT_EQ(second, "# source: gen.toml");
  EXPECT_EQ(third.rfind("# --set +values.d0=", 0), 0u);
  size_t files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1u);
  // Arrays of tables and JSON output survive too.
  Recipe s = sample();
  s.write_resolved(path);
  Recipe s2 = Recipe::load(path);
  EXPECT_EQ(s2.tables("phases").size(), 2u);
  EXPECT_EQ(s2.to_toml(), s.to_toml());
  EXPECT_NE(s.to_json().find("\"arch\": \"mamba\""), std::string::npos) << s.to_json();
  EXPECT_NE(s.to_json().find("\"lr\": 0.0003"), std::string::npos) << s.to_json();
  // Floats are written in shortest round-trip form, integral floats keep a ".0".
  EXPECT_NE(s.to_toml().find("lr = 3e-4\n"), std::string::npos) << s.to_toml();
  EXPECT_NE(s.to_toml().find("betas = [0.9, 0.95]\n"), std::string::npos) << s.to_toml();
}

TEST(AtomicFile, ReplacesContentAndReportsErrors) {
  std::string dir = test::scratch_dir("atomic_file");
  std::string path = dir + "/a.txt";
  write_file_atomic(path, "first");
  write_file_atomic(path, "second, longer content");
  std::ifstream in(path);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(s, "second, longer content");
  std::string msg = error_of([&] { write_file_atomic(dir + "/no/such/dir/b.txt", "x"); });
  EXPECT_EQ(msg.rfind(dir + "/no/such/dir/b.txt", 0), 0u) << msg;
  EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
}

TEST(Suggest, EditDistanceAndClosestMatch) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("flaw", "lawn"), 2u);
  EXPECT_EQ(edit_distance("same", "same"), 0u);
  std::vector<std::string> cmds = {"pretrain", "finetune", "eval", "version"};
  EXPECT_EQ(closest_match("pretrian", cmds), "pretrain");
  EXPECT_EQ(closest_match("evl", cmds), "eval");
  EXPECT_EQ(closest_match("xyzzy", cmds), "");
  EXPECT_EQ(did_you_mean("verson", cmds), " (did you mean 'version'?)");
  EXPECT_EQ(did_you_mean("zz", cmds), "");
}
