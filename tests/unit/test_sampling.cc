// Sampling: HF logits-processor rules on hand-made logits (repetition penalty, temperature,
// top-k ties, top-p boundaries, their order), greedy, temperature -> 0, seeded determinism and
// the drawn frequencies.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "lmforge/core/error.h"
#include "lmforge/core/philox.h"
#include "lmforge/eval/sampling.h"

using namespace lmf;

namespace {

using Scores = std::vector<float>;
const float kInf = std::numeric_limits<float>::infinity();

std::vector<int32_t> kept(const Scores& s) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < s.size(); i++)
    if (s[i] != -kInf) ids.push_back(int32_t(i));
  return ids;
}

// Logits whose softmax is `probs`.
Scores log_probs(const std::vector<double>& probs) {
  Scores s;
  for (double p : probs) s.push_back(float(std::log(p)));
  return s;
}

Scores random_logits(int64_t V, uint64_t seed, float scale = 3.f) {
  Scores s(static_cast<size_t>(V), 0.f);
  for (int64_t i = 0; i < V; i++) s[size_t(i)] = scale * philox_normal(seed, 0, uint64_t(i));
  return s;
}

template <class F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected lmf::Error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Sampling, ValidateNamesTheBadOption) {
  SamplingOptions ok;
  EXPECT_NO_THROW(validate_sampling(ok));
  SamplingOptions o = ok;
  o.top_p = 1.5;
  expect_error([&] { validate_sampling(o); }, "[sampling] top_p: expected a value in (0, 1], got 1.5");
  o = ok;
  o.top_p = 0;
  expect_error([&] { validate_sampling(o); }, "top_p");
  o = ok;
  o.temperature = -0.1;
  expect_error([&] { validate_sampling(o); }, "temperature");
  o = ok;
  o.temperature = std::nan("");
  expect_error([&] { validate_sampling(o); }, "temperature");
  o = ok;
  o.top_k = -1;
  expect_error([&] { validate_sampling(o); }, "top_k");
  o = ok;
  o.repetition_penalty = 0;
  expect_error([&] { validate_sampling(o); }, "repetition_penalty");
  o = ok;
  o.top_p = 2;
  expect_error([&] { Sampler s(o, 1); }, "top_p");
}

TEST(Sampling, ArgmaxTakesTheFirstMaximum) {
  EXPECT_EQ(argmax({0.5f, 2.f, -1.f, 2.f}), 1);
  EXPECT_EQ(argmax({-3.f}), 0);
  EXPECT_EQ(argmax({std::nanf(""), -5.f, -4.f}), 2);
  EXPECT_EQ(argmax({-kInf, -kInf, 1.f}), 2);
  expect_error([] { argmax({}); }, "empty");
}

TEST(Sampling, RepetitionPenaltyHandComputed) {
  Scores s = {2.f, -2.f, 1.f, 0.5f, -1.f};
  // id 1 twice (penalized once), 7 and -1 outside the vocabulary (ignored).
  apply_repetition_penalty(s, {0, 1, 1, 7, -1, 4}, 2.0);
  EXPECT_EQ(s, (Scores{1.f, -4.f, 1.f, 0.5f, -2.f}));
  Scores same = {2.f, -2.f};
  apply_repetition_penalty(same, {0, 1}, 1.0);
  EXPECT_EQ(same, (Scores{2.f, -2.f}));
  // A penalty below 1 encourages repetition.
  Scores enc = {2.f, -2.f};
  apply_repetition_penalty(enc, {0, 1}, 0.5);
  EXPECT_EQ(enc, (Scores{4.f, -1.f}));
}

TEST(Sampling, TemperatureDividesScores) {
  Scores s = {1.f, -2.f, 0.25f};
  apply_temperature(s, 0.5);
  EXPECT_EQ(s, (Scores{2.f, -4.f, 0.5f}));
  expect_error([&] { apply_temperature(s, 0); }, "temperature");
}

TEST(Sampling, TopKKeepsTheKHighest) {
  Scores s = random_logits(50, 11);
  Scores orig = s;
  apply_top_k(s, 5);
  auto ids = kept(s);
  ASSERT_EQ(ids.size(), 5u);
  // Every kept score is >= every removed one, and kept scores are unchanged.
  float min_kept = kInf, max_removed = -kInf;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == -kInf)
      max_removed = std::max(max_removed, orig[i]);
    else {
      EXPECT_EQ(s[i], orig[i]);
      min_kept = std::min(min_kept, orig[i]);
    }
  }
  EXPECT_GT(min_kept, max_removed);
  Scores one = orig;
  apply_top_k(one, 1);
  EXPECT_EQ(kept(one), std::vector<int32_t>{argmax(orig)});
  // k = 0 (off) and k >= V change nothing.
  Scores off = orig, big = orig;
  apply_top_k(off, 0);
  apply_top_k(big, 50);
  EXPECT_EQ(off, orig);
  EXPECT_EQ(big, orig);
  // Ties with the k-th score are kept (HF compares with the k-th value).
  Scores tie = {1.f, 3.f, 3.f, 2.f};
  apply_top_k(tie, 1);
  EXPECT_EQ(kept(tie), (std::vector<int32_t>{1, 2}));
  Scores tie2 = {3.f, 2.f, 2.f, 1.f};
  apply_top_k(tie2, 2);
  EXPECT_EQ(kept(tie2), (std::vector<int32_t>{0, 1, 2}));
}

TEST(Sampling, TopPBoundaries) {
  // Four equal scores: probabilities exactly 0.25, ranked by id.
  auto top_p = [](Scores s, double p) {
    apply_top_p(s, p);
    return kept(s);
  };
  const Scores flat = {0.f, 0.f, 0.f, 0.f};
  EXPECT_EQ(top_p(flat, 0.5), (std::vector<int32_t>{0, 1}));          // 0.25 + 0.25 reaches 0.5 exactly
  EXPECT_EQ(top_p(flat, 0.5 + 1e-9), (std::vector<int32_t>{0, 1, 2}));  // just above: one more
  EXPECT_EQ(top_p(flat, 0.25), (std::vector<int32_t>{0}));
  EXPECT_EQ(top_p(flat, 0.75), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(top_p(flat, 1e-6), (std::vector<int32_t>{0}));  // always at least one token
  EXPECT_EQ(top_p(flat, 1.0), (std::vector<int32_t>{0, 1, 2, 3}));
  // Distinct probabilities in shuffled positions: {0.1, 0.6, 0.3} at ids {0, 1, 2}.
  const Scores d = log_probs({0.1, 0.6, 0.3});
  EXPECT_EQ(top_p(d, 0.55), (std::vector<int32_t>{1}));
  EXPECT_EQ(top_p(d, 0.65), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(top_p(d, 0.89), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(top_p(d, 0.91), (std::vector<int32_t>{0, 1, 2}));
  // One dominant token: p below its probability keeps it alone.
  EXPECT_EQ(top_p(log_probs({0.02, 0.97, 0.01}), 0.9), (std::vector<int32_t>{1}));
  // Kept scores are unchanged.
  Scores s = d;
  apply_top_p(s, 0.65);
  EXPECT_EQ(s[1], d[1]);
  EXPECT_EQ(s[2], d[2]);
}

TEST(Sampling, TopPAfterTopKRenormalizes) {
  // probs {0.4, 0.3, 0.2, 0.1}: top-p 0.5 alone keeps 2 tokens (0.4 < 0.5); after top-k 2 the
  // survivors are {4/7, 3/7} and 4/7 >= 0.5 already, so only one remains (HF warper order).
  const Scores base = log_probs({0.4, 0.3, 0.2, 0.1});
  Scores a = base;
  apply_top_p(a, 0.5);
  EXPECT_EQ(kept(a), (std::vector<int32_t>{0, 1}));
  Scores b = base;
  apply_top_k(b, 2);
  apply_top_p(b, 0.5);
  EXPECT_EQ(kept(b), (std::vector<int32_t>{0}));
  // Through the Sampler: with top_k 2 + top_p 0.5 every draw is token 0.
  SamplingOptions o;
  o.top_k = 2;
  o.top_p = 0.5;
  Sampler s(o, 3);
  for (int i = 0; i < 200; i++) ASSERT_EQ(s.next(base, {}), 0);
}

TEST(Sampling, SoftmaxProbs) {
  auto p = softmax_probs({0.f, std::log(3.f), -kInf});
  EXPECT_NEAR(p[0], 0.25, 1e-7);
  EXPECT_NEAR(p[1], 0.75, 1e-7);
  EXPECT_EQ(p[2], 0.0);
  // +inf scores share the mass.
  auto q = softmax_probs({kInf, 1.f, kInf});
  EXPECT_EQ(q, (std::vector<double>{0.5, 0.0, 0.5}));
  expect_error([] { softmax_probs({-kInf, -kInf}); }, "removed");
}

TEST(Sampling, GreedyAndTemperatureToZeroEqualArgmax) {
  for (uint64_t seed = 0; seed < 20; seed++) {
    const Scores logits = random_logits(100, seed + 100);
    const int32_t best = argmax(logits);
    SamplingOptions g;
    g.greedy = true;
    g.temperature = 5.0;  // ignored by greedy
    EXPECT_EQ(Sampler(g, seed).next(logits, {}), best);
    SamplingOptions t0;
    t0.temperature = 0;
    EXPECT_EQ(Sampler(t0, seed).next(logits, {}), best);
    SamplingOptions cold;
    cold.temperature = 1e-4;
    Sampler s(cold, seed);
    for (int i = 0; i < 10; i++) EXPECT_EQ(s.next(logits, {}), best) << "seed " << seed;
  }
  // Greedy sees the repetition penalty (HF applies processors before the argmax).
  SamplingOptions g;
  g.greedy = true;
  g.repetition_penalty = 4.0;
  EXPECT_EQ(Sampler(g, 0).next({3.f, 2.f, 0.f}, {}), 0);
  EXPECT_EQ(Sampler(g, 0).next({3.f, 2.f, 0.f}, {0}), 1);  // 3/4 < 2
}

TEST(Sampling, DeterministicPerSeed) {
  const Scores logits = random_logits(64, 5, 1.f);
  auto run = [&](uint64_t seed) {
    SamplingOptions o;
    o.temperature = 0.9;
    o.top_k = 40;
    o.top_p = 0.95;
    Sampler s(o, seed);
    std::vector<int32_t> out;
    for (int i = 0; i < 300; i++) out.push_back(s.next(logits, out));
    EXPECT_EQ(s.draws(), 300u);
    return out;
  };
  const auto a = run(42), b = run(42), c = run(43);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // Plenty of distinct tokens (this is sampling, not a constant).
  EXPECT_GT(std::set<int32_t>(a.begin(), a.end()).size(), 5u);
}

TEST(Sampling, FrequenciesFollowTheFilteredDistribution) {
  // probs {0.5, 0.3, 0.15, 0.05}; top-k 3 renormalizes to {0.5, 0.3, 0.15} / 0.95.
  const Scores logits = log_probs({0.5, 0.3, 0.15, 0.05});
  SamplingOptions o;
  o.top_k = 3;
  Sampler s(o, 2024);
  const int draws = 40000;
  std::map<int32_t, int> count;
  for (int i = 0; i < draws; i++) count[s.next(logits, {})]++;
  EXPECT_EQ(count[3], 0);
  EXPECT_NEAR(count[0] / double(draws), 0.5 / 0.95, 0.01);
  EXPECT_NEAR(count[1] / double(draws), 0.3 / 0.95, 0.01);
  EXPECT_NEAR(count[2] / double(draws), 0.15 / 0.95, 0.01);
  // Temperature 2 flattens: probs proportional to sqrt(p).
  SamplingOptions hot;
  hot.temperature = 2.0;
  Sampler h(hot, 7);
  std::map<int32_t, int> hc;
  for (int i = 0; i < draws; i++) hc[h.next(logits, {})]++;
  double z = std::sqrt(0.5) + std::sqrt(0.3) + std::sqrt(0.15) + std::sqrt(0.05);
  EXPECT_NEAR(hc[3] / double(draws), std::sqrt(0.05) / z, 0.01);
  EXPECT_NEAR(hc[0] / double(draws), std::sqrt(0.5) / z, 0.01);
}

TEST(Sampling, BadLogitsFailClearly) {
  Sampler s(SamplingOptions{}, 0);
  expect_error([&] { s.next(Scores{}, {}); }, "empty logits");
  expect_error([&] { s.next(Scores{1.f, std::nanf(""), 0.f}, {}); }, "NaN (token 1)");
  expect_error([&] { s.next(Scores{-kInf, -kInf}, {}); }, "removed");
}
