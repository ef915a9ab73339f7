// Annealed language sampling (mmBERT, seed 002 / REFERENCE.md "Encoder recipe"): each
// sequence comes from one language, drawn with probability
//     p_i = n_i^tau / sum_j n_j^tau      over the languages active in the current phase,
// n_i = the language's token count (its shards' tokens). tau = 1 samples in proportion to the
// data, tau = 0 uniformly over languages; mmBERT lowers tau per phase (0.7 -> 0.5 -> 0.3) and
// adds languages per phase (60 -> 110 -> 1833), so low-resource languages are seen more late.
//
// Determinism and resume: the language of global sample s is drawn from the Philox stream
// (seed ^ kLanguageStream, s) with 53-bit uniforms against the phase's cumulative
// probabilities; each language keeps its own window cursor (data/token_windows.h), shared by
// every phase that lists it (a language continues where it stopped when a phase adds others).
// state() = {"sample": s, "window": L, "languages": {name: {"epoch", "index"}}}: restoring it
// reproduces every later sequence exactly.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmforge/data/token_windows.h"

namespace lmf {

inline constexpr uint64_t kLanguageStream = 0x6c616e672d73616dull;  // "lang-sam"

struct LanguageShards {
  std::string name;
  std::vector<std::string> shard_prefixes;
};

// One phase of the language schedule: tau and the languages (names) it samples from.
struct LanguagePhase {
  std::string name;
  double tau = 1.0;
  std::vector<std::string> languages;
};

// p_i = counts_i^tau / sum_j counts_j^tau. Throws lmf::Error for no counts, a count <= 0 or
// tau < 0 / not finite ("language_sampler: tau: expected a number >= 0, got -1").
std::vector<double> temperature_probabilities(const std::vector<double>& counts, double tau);

class LanguageSampler {
 public:
  // Opens every language's shards (each name once, in the given order) into windows of up to
  // `window` tokens. Every phase must name known languages, at least one, each once, with
  // tau >= 0. Throws lmf::Error naming the phase / language / shard.
  LanguageSampler(std::vector<LanguageShards> languages, std::vector<LanguagePhase> phases, int64_t window,
                  uint64_t seed, uint64_t expect_vocab, uint64_t expect_fingerprint);

  struct Sequence {
    size_t language = 0;          // index into languages
    uint64_t sample = 0;          // global sample index (the masking key)
    std::vector<int32_t> tokens;  // up to `window` tokens of one document, no special tokens
  };

  // Selects the phase whose probabilities the next draws use (0-based; throws if out of range).
  void set_phase(size_t phase);
  size_t phase() const { return phase_; }
  // The language of global sample `sample` in phase `phase` (pure function).
  size_t draw(uint64_t sample, size_t phase) const;
  // Draws the next sequence and advances the cursors.
  Sequence next();

  size_t num_languages() const { return langs_.size(); }
  size_t num_phases() const { return phases_.size(); }
  const std::string& language_name(size_t i) const { return langs_[i].name; }
  uint64_t language_tokens(size_t i) const { return langs_[i].windows->num_tokens(); }
  // Probabilities of phase k over all languages (0 for languages the phase does not list).
  const std::vector<double>& probabilities(size_t phase) const { return probs_[phase]; }
  uint32_t eos_id() const { return langs_.front().windows->eos_id(); }
  uint64_t sample() const { return sample_; }

  nlohmann::json state() const;
  // Throws lmf::Error for a cursor saved with another window length or a malformed one.
  // Languages absent from the saved cursor start at their beginning.
  void load_state(const nlohmann::json& s);

 private:
  struct Language {
    std::string name;
    std::unique_ptr<TokenWindows> windows;
  };
  std::vector<Language> langs_;
  std::vector<LanguagePhase> phases_;
  std::vector<std::vector<double>> probs_;  // per phase, over all languages
  std::vector<std::vector<double>> cum_;    // per phase, cumulative
  int64_t window_;
  uint64_t seed_;
  size_t phase_ = 0;
  uint64_t sample_ = 0;
};

}  // namespace lmf
