#include "lmforge/eval/sampling.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <unordered_set>

#include "lmforge/core/error.h"
#include "lmforge/core/philox.h"

namespace lmf {

namespace {

constexpr float kRemoved = -std::numeric_limits<float>::infinity();

// A uniform double in [0, 1) with 53 random bits from one Philox block (two 32-bit words).
double uniform53(uint64_t seed, uint64_t block, uint64_t stream) {
  Philox4 r = philox4x32_10(seed, block, stream);
  const uint64_t hi = r.v[0] >> 5, lo = r.v[1] >> 6;  // 27 + 26 bits
  return double(hi * 67108864ull + lo) * (1.0 / 9007199254740992.0);
}

}  // namespace

void validate_sampling(const SamplingOptions& o) {
  if (!std::isfinite(o.temperature) || o.temperature < 0)
    fail("[sampling] temperature: expected a finite value >= 0, got ", o.temperature);
  if (o.top_k < 0) fail("[sampling] top_k: expected an integer >= 0 (0 = off), got ", o.top_k);
  if (!(o.top_p > 0 && o.top_p <= 1)) fail("[sampling] top_p: expected a value in (0, 1], got ", o.top_p);
  if (!std::isfinite(o.repetition_penalty) || o.repetition_penalty <= 0)
    fail("[sampling] repetition_penalty: expected a finite value > 0, got ", o.repetition_penalty);
}

void apply_repetition_penalty(std::vector<float>& scores, const std::vector<int32_t>& history, double penalty) {
  if (penalty == 1.0) return;
  std::unordered_set<int32_t> seen;
  for (int32_t id : history) {
    if (id < 0 || size_t(id) >= scores.size() || !seen.insert(id).second) continue;
    float& s = scores[size_t(id)];
    s = s < 0 ? float(double(s) * penalty) : float(double(s) / penalty);
  }
}

void apply_temperature(std::vector<float>& scores, double temperature) {
  if (!(temperature > 0)) fail("[sampling] temperature: expected a value > 0, got ", temperature);
  for (float& s : scores) s = float(double(s) / temperature);
}

void apply_top_k(std::vector<float>& scores, int64_t k) {
  if (k <= 0 || k >= int64_t(scores.size())) return;
  std::vector<float> sorted = scores;
  std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<float>());
  const float kth = sorted[size_t(k - 1)];
  for (float& s : scores)
    if (s < kth) s = kRemoved;
}

std::vector<double> softmax_probs(const std::vector<float>& scores) {
  double mx = -std::numeric_limits<double>::infinity();
  for (float s : scores)
    if (!std::isnan(s)) mx = std::max(mx, double(s));
  if (!(mx > -std::numeric_limits<double>::infinity())) fail("[sampling] every token has been removed (no finite score)");
  std::vector<double> p(scores.size(), 0.0);
  double total = 0;
  for (size_t i = 0; i < scores.size(); i++) {
    const double s = scores[i];
    if (std::isnan(s)) continue;
    // +inf scores (an extreme temperature) share the mass equally; the rest get none.
    p[i] = std::isinf(mx) ? (s == mx ? 1.0 : 0.0) : std::exp(s - mx);
    total += p[i];
  }
  for (double& v : p) v /= total;
  return p;
}

void apply_top_p(std::vector<float>& scores, double p) {
  if (p >= 1.0) return;
  const std::vector<double> probs = softmax_probs(scores);
  std::vector<int32_t> order(scores.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return probs[size_t(a)] != probs[size_t(b)] ? probs[size_t(a)] > probs[size_t(b)] : a < b;
  });
  double above = 0;  // probability of the tokens ranked above the current one
  for (size_t rank = 0; rank < order.size(); rank++) {
    const size_t id = size_t(order[rank]);
    if (rank > 0 && above >= p) scores[id] = kRemoved;
    above += probs[id];
  }
}

int32_t argmax(const std::vector<float>& scores) {
  if (scores.empty()) fail("[sampling] argmax of an empty score vector");
  int32_t best = -1;
  for (size_t i = 0; i < scores.size(); i++) {
    if (std::isnan(scores[i])) continue;
    if (best < 0 || scores[i] > scores[size_t(best)]) best = int32_t(i);
  }
  return best < 0 ? 0 : best;
}

Sampler::Sampler(const SamplingOptions& options, uint64_t seed) : opt_(options), seed_(seed) {
  validate_sampling(opt_);
}

int32_t Sampler::next(const std::vector<float>& logits, const std::vector<int32_t>& history) {
  return next(logits.data(), int64_t(logits.size()), history);
}

int32_t Sampler::next(const float* logits, int64_t vocab, const std::vector<int32_t>& history) {
  if (vocab <= 0) fail("[sampling] empty logits (vocabulary size ", vocab, ")");
  std::vector<float> scores(logits, logits + vocab);
  for (int64_t i = 0; i < vocab; i++)
    if (std::isnan(scores[size_t(i)])) fail("[sampling] logits contain NaN (token ", i, ")");
  apply_repetition_penalty(scores, history, opt_.repetition_penalty);
  const uint64_t draw = draws_++;  // every call uses up one draw, so streams stay aligned
  if (opt_.greedy || opt_.temperature == 0) return argmax(scores);
  apply_temperature(scores, opt_.temperature);
  apply_top_k(scores, opt_.top_k);
  apply_top_p(scores, opt_.top_p);
  const std::vector<double> probs = softmax_probs(scores);
  const double u = uniform53(seed_, draw, kSamplingStream);
  double cum = 0;
  int32_t last_nonzero = 0;
  for (size_t i = 0; i < probs.size(); i++) {
    if (probs[i] <= 0) continue;
    last_nonzero = int32_t(i);
    cum += probs[i];
    if (u < cum) return int32_t(i);
  }
  return last_nonzero;  // u above the rounded total: the last token with mass
}

}  // namespace lmf
