// MLM data: masking (HF DataCollatorForLanguageModeling semantics, statistics on large samples),
// document windows (coverage, shuffling, exact resume) and annealed language sampling
// (p_i ∝ n_i^tau: proportions, tau = 1 / tau = 0, languages added per phase, exact resume).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <string>

#include "lmforge/core/error.h"
#include "lmforge/data/language_sampler.h"
#include "lmforge/data/mlm_masking.h"
#include "lmforge/data/shard.h"
#include "lmforge/data/token_windows.h"
#include "test_util.h"

using namespace lmf;

namespace {

void expect_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected an lmf::Error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// |x - n p| <= k sqrt(n p (1 - p)): a binomial count within k standard deviations.
void expect_binomial(int64_t x, int64_t n, double p, double k, const std::string& what) {
  const double mean = double(n) * p, sd = std::sqrt(double(n) * p * (1 - p));
  EXPECT_LE(std::abs(double(x) - mean), k * sd)
      << what << ": " << x << " of " << n << ", expected " << mean << " +- " << k << " x " << sd;
}

constexpr int32_t kCls = 1, kSep = 2, kPad = 0, kMask = 3;

MlmMaskingConfig masking_config(int64_t vocab) {
  MlmMaskingConfig c;
  c.mask_id = kMask;
  c.vocab_size = vocab;
  c.special_ids = {kPad, kCls, kSep, kMask};
  return c;
}

// Documents of ids in [10, 10 + span) whose lengths are given; each ends with EOS = kSep.
std::string make_shard(const std::string& dir, const std::string& name, const std::vector<int>& lengths,
                       int base, uint64_t vocab = 1000) {
  const std::string prefix = dir + "/" + name;
  ShardWriter w(prefix, vocab, 42, kSep);
  int k = 0;
  for (int len : lengths) {
    std::vector<int32_t> ids;
    for (int i = 0; i < len; i++) ids.push_back(base + (k++ % 97));
    ids.push_back(kSep);
    w.add_document(ids);
  }
  w.finish();
  return prefix;
}

}  // namespace

// ---- masking -----------------------------------------------------------------------------------

TEST(MlmMasking, RatesSplitAndLabelsOnALargeSample) {
  const int64_t V = 5000;
  MlmMasker masker(masking_config(V));
  // 2000 sequences of 130 tokens: [CLS] 128 ordinary tokens [SEP].
  const int seqs = 2000, L = 130;
  int64_t ordinary = 0, selected = 0, to_mask = 0, to_random = 0, kept = 0;
  for (double rate : {0.3, 0.05}) {
    ordinary = selected = to_mask = to_random = kept = 0;
    for (int s = 0; s < seqs; s++) {
      std::vector<int32_t> ids(L), labels(L);
      ids[0] = kCls;
      ids[L - 1] = kSep;
      for (int t = 1; t < L - 1; t++) ids[size_t(t)] = 10 + (s * 31 + t * 7) % (V - 10);
      const std::vector<int32_t> orig = ids;
      const int64_t n = masker.apply(ids, labels, rate, 1234, uint64_t(s));
      int64_t labelled = 0;
      for (int t = 0; t < L; t++) {
        const size_t i = size_t(t);
        if (masker.is_special(orig[i])) {
          EXPECT_EQ(labels[i], -100) << "special token labelled";
          EXPECT_EQ(ids[i], orig[i]) << "special token changed";
          continue;
        }
        ordinary++;
        if (labels[i] == -100) {
          EXPECT_EQ(ids[i], orig[i]) << "unselected token changed";
          continue;
        }
        labelled++;
        EXPECT_EQ(labels[i], orig[i]);
        if (ids[i] == kMask)
          to_mask++;
        else if (ids[i] == orig[i])
          kept++;  // includes a random draw equal to the original (probability 1/V)
        else
          to_random++;
        EXPECT_GE(ids[i], 0);
        EXPECT_LT(ids[i], V);
      }
      EXPECT_EQ(labelled, n);
      selected += n;
    }
    SCOPED_TRACE("rate " + std::to_string(rate));
    EXPECT_EQ(ordinary, int64_t(seqs) * (L - 2));
    // 5 standard deviations: a false failure has probability ~6e-7 per check.
    expect_binomial(selected, ordinary, rate, 5, "selected");
    expect_binomial(to_mask, selected, 0.8 + 0.1 / V, 5, "[MASK]");
    expect_binomial(to_random, selected, 0.1 * (1 - 2.0 / V), 5, "random");
    expect_binomial(kept, selected, 0.1 + 0.1 / V, 5, "unchanged");
  }
}

TEST(MlmMasking, RandomReplacementsAreUniformOverTheVocabulary) {
  const int64_t V = 10;  // tiny vocabulary: every id, specials included, must appear ~equally
  MlmMaskingConfig c = masking_config(V);
  c.mask_replace_prob = 0.0;
  c.random_replace_prob = 1.0;
  MlmMasker masker(c);
  std::vector<int64_t> hist(size_t(V), 0);
  int64_t total = 0;
  for (int s = 0; s < 400; s++) {
    std::vector<int32_t> ids(100, 7), labels(100);
    masker.apply(ids, labels, 1.0, 9, uint64_t(s));
    for (int32_t x : ids) hist[size_t(x)]++, total++;
  }
  EXPECT_EQ(total, 40000);
  for (int64_t v = 0; v < V; v++) expect_binomial(hist[size_t(v)], total, 0.1, 5, "id " + std::to_string(v));
}

TEST(MlmMasking, DeterministicPerSeedAndSequence) {
  MlmMasker masker(masking_config(300));
  std::vector<int32_t> base(64);
  for (size_t i = 0; i < base.size(); i++) base[i] = int32_t(10 + i);
  auto run = [&](uint64_t seed, uint64_t key) {
    std::vector<int32_t> ids = base, labels(base.size());
    masker.apply(ids, labels, 0.3, seed, key);
    ids.insert(ids.end(), labels.begin(), labels.end());
    return ids;
  };
  EXPECT_EQ(run(1, 5), run(1, 5));
  EXPECT_NE(run(1, 5), run(1, 6));
  EXPECT_NE(run(1, 5), run(2, 5));
  // Rate 0 masks nothing, rate 1 labels every ordinary token.
  std::vector<int32_t> ids = base, labels(base.size());
  EXPECT_EQ(masker.apply(ids, labels, 0.0, 1, 1), 0);
  EXPECT_EQ(ids, base);
  EXPECT_EQ(masker.apply(ids, labels, 1.0, 1, 1), int64_t(base.size()));
}

TEST(MlmMasking, BadConfigsThrow) {
  MlmMasker masker(masking_config(100));
  std::vector<int32_t> ids = {5, 6}, labels(2), short_labels(1);
  expect_error([&] { masker.apply(ids, labels, 1.5, 1, 1); },
               "mask_rate: expected a mask rate in [0, 1], got 1.5");
  expect_error([&] { masker.apply(ids, labels, -0.1, 1, 1); }, "got -0.1");
  expect_error([&] { masker.apply(ids, short_labels, 0.1, 1, 1); }, "labels have 1 entries for 2 ids");
  std::vector<int32_t> bad = {5, 100};
  expect_error([&] { masker.apply(bad, labels, 0.1, 1, 1); },
               "token 1 has id 100, outside the vocabulary [0, 100)");
  auto c = masking_config(100);
  c.mask_id = 100;
  expect_error([&] { MlmMasker m(c); }, "mask_id: 100 is outside the vocabulary");
  c = masking_config(100);
  c.special_ids.push_back(-1);
  expect_error([&] { MlmMasker m(c); }, "special id -1");
  c = masking_config(100);
  c.mask_replace_prob = 0.95;
  expect_error([&] { MlmMasker m(c); }, "mask_replace_prob + random_replace_prob must be <= 1");
  expect_error([] { validate_mask_rate(1.5, "data.phases[0].mask_rate"); },
               "data.phases[0].mask_rate: expected a mask rate in [0, 1], got 1.5");
}

// ---- document windows --------------------------------------------------------------------------

TEST(TokenWindows, CoverEveryTokenOnceInsideDocuments) {
  const std::string dir = test::scratch_dir("token_windows");
  // Documents of 0, 5, 8, 9, 1, 20 content tokens with window 4: 0 + 2 + 2 + 3 + 1 + 5 windows.
  const std::string p1 = make_shard(dir, "a", {0, 5, 8}, 10), p2 = make_shard(dir, "b", {9, 1, 20}, 200);
  TokenWindows w({p1, p2}, 4, 7, 1, 1000, 42, "language 'x'");
  ASSERT_EQ(w.num_windows(), 13);
  EXPECT_EQ(w.num_tokens(), uint64_t(0 + 5 + 8 + 9 + 1 + 20 + 6));
  std::multiset<int32_t> seen;
  std::vector<int64_t> lengths;
  for (int64_t i = 0; i < w.num_windows(); i++) {
    auto t = w.window_tokens(i);
    lengths.push_back(int64_t(t.size()));
    for (int32_t x : t) {
      EXPECT_NE(x, kSep) << "EOS inside a window";
      seen.insert(x);
    }
  }
  EXPECT_EQ(lengths, (std::vector<int64_t>{4, 1, 4, 4, 4, 4, 1, 1, 4, 4, 4, 4, 4}));
  EXPECT_EQ(seen.size(), size_t(5 + 8 + 9 + 1 + 20));
  // One shuffled epoch visits each window exactly once, in a different order than storage.
  std::vector<std::vector<int32_t>> epoch, stored;
  for (int64_t i = 0; i < w.num_windows(); i++) {
    epoch.push_back(w.next());
    stored.push_back(w.window_tokens(i));
  }
  EXPECT_NE(epoch, stored);
  auto sorted = [](std::vector<std::vector<int32_t>> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  EXPECT_EQ(sorted(epoch), sorted(stored));
  // The next epoch is another permutation; resume from a saved cursor continues identically.
  w.next();
  const nlohmann::json cursor = w.state();
  EXPECT_EQ(cursor["epoch"], 1);
  std::vector<std::vector<int32_t>> after;
  for (int i = 0; i < 20; i++) after.push_back(w.next());
  TokenWindows w2({p1, p2}, 4, 7, 1, 1000, 42, "language 'x'");
  w2.load_state(cursor);
  for (int i = 0; i < 20; i++) EXPECT_EQ(w2.next(), after[size_t(i)]) << i;
}

TEST(TokenWindows, FeistelIsAPermutation) {
  for (uint64_t n : {1ull, 2ull, 3ull, 17ull, 1000ull, 4097ull}) {
    std::vector<bool> hit(n, false);
    for (uint64_t i = 0; i < n; i++) {
      const uint64_t j = feistel_permute(i, n, 5, 9);
      ASSERT_LT(j, n);
      EXPECT_FALSE(hit[j]) << "n " << n << ": " << j << " twice";
      hit[j] = true;
    }
  }
  // Different streams give different orders.
  int same = 0;
  for (uint64_t i = 0; i < 1000; i++)
    same += feistel_permute(i, 1000, 5, 9) == feistel_permute(i, 1000, 5, 10);
  EXPECT_LT(same, 20);
}

TEST(TokenWindows, Errors) {
  const std::string dir = test::scratch_dir("token_windows_err");
  const std::string p = make_shard(dir, "a", {3}, 10);
  expect_error([&] { TokenWindows w({p}, 4, 1, 1, 999, 0, "language 'fr'"); },
               "made for a vocabulary of 1000");
  expect_error([&] { TokenWindows w({p}, 0, 1, 1, 0, 0, "language 'fr'"); }, "language 'fr': window length");
  expect_error([&] { TokenWindows w({dir + "/missing"}, 4, 1, 1, 0, 0, "language 'fr'"); }, "missing");
  const std::string empty = make_shard(dir, "empty", {0, 0}, 10);
  expect_error([&] { TokenWindows w({empty}, 4, 1, 1, 0, 0, "language 'fr'"); },
               "language 'fr': the shards hold no tokens");
  TokenWindows w({p}, 4, 1, 1, 0, 0, "language 'fr'");
  expect_error([&] { w.load_state({{"epoch", 0}}); }, "language 'fr': saved cursor");
}

// ---- language sampling ---------------------------------------------------------------------------

TEST(LanguageSampler, TemperatureProbabilities) {
  auto p = temperature_probabilities({100, 300, 600}, 1.0);
  EXPECT_NEAR(p[0], 0.1, 1e-12);
  EXPECT_NEAR(p[2], 0.6, 1e-12);
  p = temperature_probabilities({100, 300, 600}, 0.0);
  for (double x : p) EXPECT_NEAR(x, 1.0 / 3, 1e-12);
  // tau = 0.5: sqrt(100) : sqrt(400) = 10 : 20.
  p = temperature_probabilities({100, 400}, 0.5);
  EXPECT_NEAR(p[0], 1.0 / 3, 1e-12);
  // Huge counts do not overflow.
  p = temperature_probabilities({1e300, 1e300}, 3.0);
  EXPECT_NEAR(p[0], 0.5, 1e-12);
  expect_error([] { temperature_probabilities({1, 2}, -0.1); }, "tau: expected a number >= 0, got -0.1");
  expect_error([] { temperature_probabilities({1, 0}, 0.5); }, "token counts must be positive");
}

TEST(LanguageSampler, ProportionsPhasesAndResume) {
  const std::string dir = test::scratch_dir("language_sampler");
  // Token counts (content + one EOS per document): en 4 x 600 + 4, fr 4 x 150 + 4 (ratio ~4),
  // sw 2 x 20 + 2.
  auto docs = [](int n, int len) { return std::vector<int>(size_t(n), len); };
  const std::string en = make_shard(dir, "en", docs(4, 600), 10),
                    fr = make_shard(dir, "fr", docs(4, 150), 300);
  const std::string sw = make_shard(dir, "sw", docs(2, 20), 600);
  std::vector<LanguageShards> langs = {{"en", {en}}, {"fr", {fr}}, {"sw", {sw}}};
  std::vector<LanguagePhase> phases = {
      {"p1", 1.0, {"en", "fr"}}, {"p2", 0.0, {"en", "fr", "sw"}}, {"p3", 0.5, {"fr", "en", "sw"}}};
  LanguageSampler s(langs, phases, 32, 99, 1000, 42);
  const double n_en = 4 * 601, n_fr = 4 * 151, n_sw = 2 * 21;
  EXPECT_EQ(s.language_tokens(0), uint64_t(n_en));
  EXPECT_NEAR(s.probabilities(0)[0], n_en / (n_en + n_fr), 1e-12);
  EXPECT_EQ(s.probabilities(0)[2], 0.0);
  const double z = std::sqrt(n_en) + std::sqrt(n_fr) + std::sqrt(n_sw);
  EXPECT_NEAR(s.probabilities(2)[2], std::sqrt(n_sw) / z, 1e-12);

  const int draws = 20000;
  for (size_t ph = 0; ph < 3; ph++) {
    SCOPED_TRACE("phase " + std::to_string(ph));
    std::vector<int64_t> hist(3, 0);
    for (int i = 0; i < draws; i++) hist[s.draw(uint64_t(i) + 100000 * ph, ph)]++;
    for (size_t k = 0; k < 3; k++) {
      const double p = s.probabilities(ph)[k];
      if (p == 0)
        EXPECT_EQ(hist[k], 0) << "language " << k << " drawn in a phase that does not list it";
      else
        expect_binomial(hist[k], draws, p, 5, s.language_name(k));
    }
  }

  // Sequences carry the drawn language's tokens; a run resumed from a saved state continues
  // exactly (sample counter and per-language cursors), across a phase change.
  auto lang_of_token = [](int32_t t) { return t < 300 ? 0u : t < 600 ? 1u : 2u; };
  std::vector<LanguageSampler::Sequence> ref;
  LanguageSampler a(langs, phases, 32, 99, 1000, 42);
  nlohmann::json saved;
  for (int i = 0; i < 300; i++) {
    if (i == 100) a.set_phase(1);
    if (i == 150) saved = a.state();
    auto q = a.next();
    EXPECT_EQ(q.sample, uint64_t(i));
    ASSERT_FALSE(q.tokens.empty());
    EXPECT_LE(q.tokens.size(), 32u);
    for (int32_t t : q.tokens) EXPECT_EQ(lang_of_token(t), q.language);
    if (i < 100) {
      EXPECT_NE(q.language, 2u) << "phase-2 language in phase 1";
    }
    ref.push_back(q);
  }
  LanguageSampler b(langs, phases, 32, 99, 1000, 42);
  b.load_state(saved);
  b.set_phase(1);
  for (int i = 150; i < 300; i++) {
    auto q = b.next();
    EXPECT_EQ(q.language, ref[size_t(i)].language) << i;
    EXPECT_EQ(q.tokens, ref[size_t(i)].tokens) << i;
  }
  // A cursor from another window length is refused.
  LanguageSampler c(langs, phases, 16, 99, 1000, 42);
  expect_error([&] { c.load_state(saved); }, "windows of 32 tokens, this run uses 16");
}

TEST(LanguageSampler, BadPhasesThrow) {
  const std::string dir = test::scratch_dir("language_sampler_err");
  const std::string en = make_shard(dir, "en", {50, 50}, 10);
  std::vector<LanguageShards> langs = {{"en", {en}}};
  expect_error(
      [&] {
        LanguageSampler s(langs, {{"p1", 0.5, {"en", "de"}}}, 8, 1, 0, 0);
      },
      "phase 'p1': unknown language 'de'");
  expect_error(
      [&] {
        LanguageSampler s(langs, {{"p1", -1.0, {"en"}}}, 8, 1, 0, 0);
      },
      "phase 'p1': tau: expected a number >= 0, got -1");
  expect_error([&] { LanguageSampler s(langs, {{"p1", 0.5, {}}}, 8, 1, 0, 0); }, "phase 'p1': no languages");
  expect_error(
      [&] {
        LanguageSampler s({{"en", {en}}, {"en", {en}}}, {{"p1", 0.5, {"en"}}}, 8, 1, 0, 0);
      },
      "language 'en' is listed twice");
  expect_error(
      [&] {
        LanguageSampler s({{"de", {dir + "/nope"}}}, {{"p1", 0.5, {"de"}}}, 8, 1, 0, 0);
      },
      "nope");
}
