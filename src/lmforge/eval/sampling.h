// Choosing the next token from logits: greedy, or sampling with temperature, top-k and top-p
// (nucleus), after an optional repetition penalty. The processing order and each rule follow
// HF transformers' generation/logits_process.py as `generate(do_sample=True)` applies them:
//   RepetitionPenaltyLogitsProcessor -> TemperatureLogitsWarper -> TopKLogitsWarper
//   -> TopPLogitsWarper -> softmax -> one draw.
// Removed tokens get -inf. Draws come from the Philox stream (core/philox.h): the same seed and
// the same logits give the same tokens on every machine.
#pragma once

#include <cstdint>
#include <vector>

namespace lmf {

struct SamplingOptions {
  bool greedy = false;             // argmax (after the repetition penalty); ignores the rest
  double temperature = 1.0;        // > 0; 0 means greedy
  int64_t top_k = 0;               // keep the k highest scores; 0 = off
  double top_p = 1.0;              // nucleus in (0, 1]; 1 = off
  double repetition_penalty = 1.0; // > 0; 1 = off
};

// Throws lmf::Error "[sampling] top_p: expected a value in (0, 1], got 1.5" (and alike for
// temperature < 0 or not finite, top_k < 0, repetition_penalty <= 0).
void validate_sampling(const SamplingOptions& o);

// HF RepetitionPenaltyLogitsProcessor: for every distinct id in `history` (ids outside
// [0, scores.size()) are ignored), a negative score is multiplied by `penalty`, a positive
// one divided by it. penalty > 0.
void apply_repetition_penalty(std::vector<float>& scores, const std::vector<int32_t>& history, double penalty);
// HF TemperatureLogitsWarper: scores / temperature (temperature > 0).
void apply_temperature(std::vector<float>& scores, double temperature);
// HF TopKLogitsWarper: k' = min(k, V); scores strictly below the k'-th highest become -inf, so
// ties with the k'-th score are all kept. k == 0 leaves scores unchanged.
void apply_top_k(std::vector<float>& scores, int64_t k);
// HF TopPLogitsWarper: with probabilities softmax(scores) in decreasing order, keeps the
// smallest prefix whose cumulative probability reaches p (a token is kept iff the tokens
// ranked above it sum to less than p), always at least the top token; the rest become -inf.
// Equal probabilities are ranked by increasing id. p in (0, 1]; p == 1 leaves scores unchanged.
void apply_top_p(std::vector<float>& scores, double p);

// Index of the largest score, the first one on ties (torch.argmax). Throws lmf::Error for an
// empty vector. NaN scores are never chosen unless all are NaN (then 0).
int32_t argmax(const std::vector<float>& scores);

// Softmax of scores in double (-inf -> 0). Throws lmf::Error when no score is finite.
std::vector<double> softmax_probs(const std::vector<float>& scores);

// A seeded token chooser. Draw number d (0, 1, ...) uses Philox block d of (seed, stream
// kSamplingStream): 53-bit uniform u in [0, 1), token = the first id (in id order) whose
// cumulative probability exceeds u.
class Sampler {
 public:
  static constexpr uint64_t kSamplingStream = 0x5A4D504C;  // "ZMPL": apart from init / dropout streams

  // Validates `options` (see validate_sampling).
  Sampler(const SamplingOptions& options, uint64_t seed);

  // The next token for `logits` [V] (V >= 1) given the ids so far (prompt + generated; read only
  // for the repetition penalty). Throws lmf::Error for V == 0 or when every token is removed.
  int32_t next(const std::vector<float>& logits, const std::vector<int32_t>& history);
  int32_t next(const float* logits, int64_t vocab, const std::vector<int32_t>& history);

  const SamplingOptions& options() const { return opt_; }
  uint64_t draws() const { return draws_; }

 private:
  SamplingOptions opt_;
  uint64_t seed_ = 0;
  uint64_t draws_ = 0;
};

}  // namespace lmf
