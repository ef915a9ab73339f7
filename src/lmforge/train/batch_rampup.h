// Batch-size ramp-up: tokens per optimizer step as a function of the tokens already seen.
//
// Mambaoutai (seed 001): "batch 2M tokens linearly ramped up over the first 1B tokens".
// The ramp is linear in tokens seen and floored to a multiple of `granularity`, the smallest
// step the data-parallel loop can take (seq_len x micro_batch x world_size; the trainer varies
// gradient-accumulation steps), giving a staircase like Megatron-LM's --rampup-batch-size:
//
//   raw(x) = start + (target - start) * x / rampup_tokens          for 0 <= x < rampup_tokens
//   tokens_per_step_at(x) = floor(raw(x) / granularity) * granularity
//   tokens_per_step_at(x) = target                                  for x >= rampup_tokens
//
// start and target must both be positive multiples of granularity with start <= target, so the
// result is always in [start, target] and a multiple of granularity. rampup_tokens == 0 (or
// start == target) disables the ramp. Integer arithmetic throughout (exact, no rounding drift).
#pragma once

#include <cstdint>

namespace lmf {

struct BatchRampup {
  int64_t start_tokens_per_step = 0;   // batch of the first step, in tokens
  int64_t target_tokens_per_step = 0;  // batch after the ramp, in tokens (e.g. 2M)
  int64_t rampup_tokens = 0;           // length of the ramp in tokens seen (e.g. 1B)
  int64_t granularity = 1;             // seq_len * micro_batch * world_size, in tokens
};

// Throws lmf::Error "batch_rampup: <field>: ..." for granularity <= 0, start/target not positive
// multiples of granularity, start > target, or rampup_tokens < 0.
void validate(const BatchRampup& r);

// Tokens per step for the step that starts after `tokens_seen` tokens (>= 0). Validates `r` and
// throws lmf::Error for a bad config or tokens_seen < 0.
int64_t tokens_per_step_at(const BatchRampup& r, int64_t tokens_seen);

}  // namespace lmf
