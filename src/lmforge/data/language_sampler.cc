#include "lmforge/data/language_sampler.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "lmforge/core/error.h"
#include "lmforge/core/philox.h"

namespace lmf {

namespace {

// 64-bit FNV-1a of a language name: its window-order stream, independent of the language's
// position in the recipe (adding a language does not reshuffle the others).
uint64_t name_stream(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// Uniform [0, 1) with 53 random bits (probabilities of rare languages are far below 2^-24).
double uniform53(uint64_t key, uint64_t i) {
  const Philox4 r = philox4x32_10(key, i, 0);
  const uint64_t bits = ((uint64_t(r.v[0]) << 32) | r.v[1]) >> 11;
  return double(bits) * (1.0 / 9007199254740992.0);
}

}  // namespace

std::vector<double> temperature_probabilities(const std::vector<double>& counts, double tau) {
  if (!std::isfinite(tau) || tau < 0) fail("language_sampler: tau: expected a number >= 0, got ", tau);
  if (counts.empty()) fail("language_sampler: no languages");
  // n^tau / sum n^tau computed as exp(tau (ln n - ln n_max)): no overflow for large counts.
  double log_max = -INFINITY;
  for (double n : counts) {
    if (!(n > 0) || !std::isfinite(n)) fail("language_sampler: token counts must be positive, got ", n);
    log_max = std::max(log_max, std::log(n));
  }
  std::vector<double> p(counts.size());
  double total = 0;
  for (size_t i = 0; i < counts.size(); i++) total += p[i] = std::exp(tau * (std::log(counts[i]) - log_max));
  for (double& x : p) x /= total;
  return p;
}

LanguageSampler::LanguageSampler(std::vector<LanguageShards> languages, std::vector<LanguagePhase> phases,
                                 int64_t window, uint64_t seed, uint64_t expect_vocab, uint64_t expect_fp)
    : phases_(std::move(phases)), window_(window), seed_(seed) {
  if (languages.empty()) fail("data: no languages given");
  if (phases_.empty()) fail("data: no phases given");
  std::set<std::string> seen;
  for (auto& l : languages) {
    if (l.name.empty()) fail("data: a language has an empty name");
    if (!seen.insert(l.name).second) fail("data: language '", l.name, "' is listed twice");
    Language lang;
    lang.name = l.name;
    lang.windows = std::make_unique<TokenWindows>(l.shard_prefixes, window, seed, name_stream(l.name),
                                                  expect_vocab, expect_fp, "language '" + l.name + "'");
    if (!langs_.empty() && lang.windows->eos_id() != langs_.front().windows->eos_id())
      fail("data: language '", l.name, "': its shards' EOS id ", lang.windows->eos_id(),
           " differs from language '", langs_.front().name, "' (", langs_.front().windows->eos_id(), ")");
    langs_.push_back(std::move(lang));
  }
  for (const auto& ph : phases_) {
    if (ph.languages.empty()) fail("data: phase '", ph.name, "': no languages");
    if (!std::isfinite(ph.tau) || ph.tau < 0)
      fail("data: phase '", ph.name, "': tau: expected a number >= 0, got ", ph.tau);
    std::vector<size_t> idx;
    std::vector<double> counts;
    std::set<std::string> in_phase;
    for (const auto& name : ph.languages) {
      if (!in_phase.insert(name).second)
        fail("data: phase '", ph.name, "': language '", name, "' is listed twice");
      size_t k = 0;
      while (k < langs_.size() && langs_[k].name != name) k++;
      if (k == langs_.size()) fail("data: phase '", ph.name, "': unknown language '", name, "'");
      idx.push_back(k);
      counts.push_back(double(langs_[k].windows->num_tokens()));
    }
    const std::vector<double> p = temperature_probabilities(counts, ph.tau);
    std::vector<double> all(langs_.size(), 0.0);
    for (size_t j = 0; j < idx.size(); j++) all[idx[j]] = p[j];
    std::vector<double> cum(langs_.size());
    double c = 0;
    for (size_t k = 0; k < all.size(); k++) cum[k] = c += all[k];
    probs_.push_back(std::move(all));
    cum_.push_back(std::move(cum));
  }
}

void LanguageSampler::set_phase(size_t phase) {
  if (phase >= phases_.size()) fail("data: phase ", phase, " out of range (", phases_.size(), " phases)");
  phase_ = phase;
}

size_t LanguageSampler::draw(uint64_t sample, size_t phase) const {
  LMF_CHECK(phase < phases_.size());
  const std::vector<double>& cum = cum_[phase];
  const double u = uniform53(seed_ ^ kLanguageStream, sample) * cum.back();
  // The first language whose cumulative probability exceeds u (binary search: 1833 languages in
  // mmBERT's decay phase). Inactive languages add nothing to the cumulative sum, so the first
  // strictly greater entry is always an active language.
  const size_t k = size_t(std::upper_bound(cum.begin(), cum.end(), u) - cum.begin());
  if (k < cum.size()) return k;
  size_t last = cum.size() - 1;  // u rounded up to the total: the last active language
  while (probs_[phase][last] <= 0) last--;
  return last;
}

LanguageSampler::Sequence LanguageSampler::next() {
  Sequence s;
  s.sample = sample_;
  s.language = draw(sample_, phase_);
  s.tokens = langs_[s.language].windows->next();
  sample_++;
  return s;
}

nlohmann::json LanguageSampler::state() const {
  nlohmann::json j;
  j["sample"] = sample_;
  j["window"] = window_;
  j["languages"] = nlohmann::json::object();
  for (const auto& l : langs_) j["languages"][l.name] = l.windows->state();
  return j;
}

void LanguageSampler::load_state(const nlohmann::json& s) {
  if (!s.is_object() || !s.contains("sample") || !s.contains("languages") || !s["languages"].is_object())
    fail("data: saved language cursor is malformed: ", s.dump());
  const int64_t w = s.value("window", int64_t(-1));
  if (w != window_)
    fail("data: saved cursor was made with windows of ", w, " tokens, this run uses ", window_,
         " (data.max_length must not change on resume)");
  sample_ = s["sample"].get<uint64_t>();
  for (auto& l : langs_) {
    if (s["languages"].contains(l.name))
      l.windows->load_state(s["languages"][l.name]);
    else
      l.windows->load_state({{"epoch", 0}, {"index", 0}});
  }
}

}  // namespace lmf
