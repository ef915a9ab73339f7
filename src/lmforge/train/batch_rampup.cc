#include "lmforge/train/batch_rampup.h"

#include "lmforge/core/error.h"

namespace lmf {

void validate(const BatchRampup& r) {
  constexpr const char* w = "batch_rampup: ";
  if (r.granularity <= 0) fail(w, "granularity: expected > 0, got ", r.granularity);
  auto check_multiple = [&](int64_t v, const char* field) {
    if (v <= 0 || v % r.granularity != 0)
      fail(w, field, ": expected a positive multiple of granularity (", r.granularity, "), got ",
           v);
  };
  check_multiple(r.start_tokens_per_step, "start_tokens_per_step");
  check_multiple(r.target_tokens_per_step, "target_tokens_per_step");
  if (r.start_tokens_per_step > r.target_tokens_per_step)
    fail(w, "start_tokens_per_step: expected <= target_tokens_per_step (", r.target_tokens_per_step,
         "), got ", r.start_tokens_per_step);
  if (r.rampup_tokens < 0) fail(w, "rampup_tokens: expected >= 0, got ", r.rampup_tokens);
}

int64_t tokens_per_step_at(const BatchRampup& r, int64_t tokens_seen) {
  validate(r);
  if (tokens_seen < 0) fail("batch_rampup: tokens_seen: expected >= 0, got ", tokens_seen);
  if (tokens_seen >= r.rampup_tokens) return r.target_tokens_per_step;
  // 128-bit product: (target - start) * tokens_seen can exceed int64 for large runs.
  __int128 delta =
      __int128(r.target_tokens_per_step - r.start_tokens_per_step) * tokens_seen / r.rampup_tokens;
  int64_t raw = r.start_tokens_per_step + int64_t(delta);
  return raw / r.granularity * r.granularity;
}

}  // namespace lmf
