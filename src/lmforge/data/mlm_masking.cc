#include "lmforge/data/mlm_masking.h"

#include <cmath>

#include "lmforge/core/error.h"
#include "lmforge/core/philox.h"

namespace lmf {

namespace {
constexpr int32_t kIgnoreIndex = -100;

bool is_probability(double p) { return std::isfinite(p) && p >= 0.0 && p <= 1.0; }
}  // namespace

void validate_mask_rate(double rate, const char* field) {
  if (!is_probability(rate)) fail(field, ": expected a mask rate in [0, 1], got ", rate);
}

MlmMasker::MlmMasker(MlmMaskingConfig cfg) : cfg_(std::move(cfg)) {
  if (cfg_.vocab_size < 1) fail("mlm_masking: vocab_size: expected a positive number, got ", cfg_.vocab_size);
  if (cfg_.mask_id < 0 || cfg_.mask_id >= cfg_.vocab_size)
    fail("mlm_masking: mask_id: ", cfg_.mask_id, " is outside the vocabulary [0, ", cfg_.vocab_size, ")");
  if (!is_probability(cfg_.mask_replace_prob))
    fail("mlm_masking: mask_replace_prob: expected a number in [0, 1], got ", cfg_.mask_replace_prob);
  if (!is_probability(cfg_.random_replace_prob))
    fail("mlm_masking: random_replace_prob: expected a number in [0, 1], got ", cfg_.random_replace_prob);
  if (cfg_.mask_replace_prob + cfg_.random_replace_prob > 1.0 + 1e-12)
    fail("mlm_masking: mask_replace_prob + random_replace_prob must be <= 1, got ",
         cfg_.mask_replace_prob + cfg_.random_replace_prob);
  special_.assign(size_t(cfg_.vocab_size), false);
  for (int32_t id : cfg_.special_ids) {
    if (id < 0 || id >= cfg_.vocab_size)
      fail("mlm_masking: special id ", id, " is outside the vocabulary [0, ", cfg_.vocab_size, ")");
    special_[size_t(id)] = true;
  }
}

int64_t MlmMasker::apply(std::span<int32_t> ids, std::span<int32_t> labels, double mask_rate, uint64_t seed,
                         uint64_t sequence_key) const {
  validate_mask_rate(mask_rate, "mlm_masking: mask_rate");
  if (labels.size() != ids.size())
    fail("mlm_masking: labels have ", labels.size(), " entries for ", ids.size(), " ids");
  // Thresholds on the 24-bit uniforms of philox_uniform01 (u < p draws with probability p up to
  // 2^-24 rounding).
  const float p_select = float(mask_rate);
  const float p_mask = float(cfg_.mask_replace_prob);
  const float p_mask_or_random = float(cfg_.mask_replace_prob + cfg_.random_replace_prob);
  const uint64_t key = seed ^ kMlmMaskStream;
  int64_t selected = 0;
  for (size_t t = 0; t < ids.size(); t++) {
    const int32_t id = ids[t];
    if (id < 0 || id >= cfg_.vocab_size)
      fail("mlm_masking: token ", t, " has id ", id, ", outside the vocabulary [0, ", cfg_.vocab_size, ")");
    labels[t] = kIgnoreIndex;
    if (special_[size_t(id)]) continue;
    const Philox4 r = philox4x32_10(key, uint64_t(t), sequence_key);
    if (!(philox_uniform01(r.v[0]) < p_select)) continue;
    selected++;
    labels[t] = id;
    const float u = philox_uniform01(r.v[1]);
    if (u < p_mask) {
      ids[t] = cfg_.mask_id;
    } else if (u < p_mask_or_random) {
      // Uniform over [0, vocab_size) from 64 random bits (bias below 2^-32 for any vocabulary).
      const uint64_t bits = (uint64_t(r.v[2]) << 32) | r.v[3];
      ids[t] = int32_t((static_cast<unsigned __int128>(bits) * uint64_t(cfg_.vocab_size)) >> 64);
    }
  }
  return selected;
}

}  // namespace lmf
