// Learning-rate schedules: pure functions of the step (no state), so resuming a run needs only
// the step counter.
//
// Step convention (as the Hugging Face Trainer, which calls scheduler.step() after every
// optimizer step): `step` is the number of optimizer updates already applied, i.e. the 0-based
// index of the update about to use the returned lr. The unit is whatever total_steps counts:
// a caller scheduling by tokens (mmBERT: "decay over the last 100B tokens") passes tokens seen
// and gives every *_steps field in tokens.
//
// Warmup (all kinds): lr = lr_peak * step / max(1, W) for step < W, so step 0 gives 0
// (transformers/optimization.py, get_linear_schedule_with_warmup;
// get_constant_schedule_with_warmup). W = warmup_steps, or ceil(total_steps * warmup_ratio) as
// TrainingArguments.get_warmup_steps. HF's get_wsd_schedule instead warms up from
// min_lr_ratio*peak; we keep one warmup for all kinds.
//
// After warmup, with T = total_steps, L = lr_min, P = lr_peak, s = step:
//  - constant:   P.
//  - linear:     L + (P - L) * max(0, (T - s) / max(1, T - W)).
//                With L = 0 this is HF get_linear_schedule_with_warmup exactly.
//  - cosine:     q = clamp((s - W) / max(1, T - W), 0, 1); L + (P - L) * 0.5 * (1 + cos(pi q)).
//                HF get_cosine_with_min_lr_schedule_with_warmup (num_cycles 0.5) with
//                min_lr_rate = L / P; unlike HF, q is clamped so steps past T stay at L.
//  - polynomial: s >= T: L; else L + (P - L) * (1 - (s - W) / (T - W))^power.
//                HF get_polynomial_decay_schedule_with_warmup with lr_end = L.
//  - wsd:        warmup, then P for the stable part, then decay over the last D steps
//                (steps [T - D, T)) with q = (s - (T - D)) / max(1, D), and L from T on
//                (HF get_wsd_schedule's decay; Mambaoutai seed 001, mmBERT seed 002):
//                  linear:      L + (P - L) * (1 - q)
//                  cosine:      L + (P - L) * 0.5 * (1 + cos(pi q))
//                  1-sqrt:      L + (P - L) * (1 - sqrt(q))          (mmBERT, HF "1-sqrt")
//                  exponential: P * (L / P)^q                         (needs L > 0)
//                D = decay_steps, or round(decay_fraction * T), or
//                T - W - round(stable_fraction * T): exactly one of the three is set.
//                The stable part has T - W - D >= 0 steps.
//                Mambaoutai: warmup 480/2000 steps, stable = 80 % of T, linear decay to 2e-4.
//                mmBERT: decay_shape 1-sqrt, lr_min = 0.02 * peak (min_ratio 0.02).
//
// Errors: lr_at / validate throw lmf::Error "lr_schedule: <field>: ..." for lr_peak <= 0 or not
// finite, lr_min < 0 or > lr_peak, min_ratio outside [0, 1] or set together with lr_min, negative
// step counts, warmup > total_steps, total_steps == 0 for a decaying kind, power <= 0, a wsd
// without exactly one decay length or with warmup + decay > total, exponential with lr_min == 0,
// an out-of-range enum value, and step < 0.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace lmf {

enum class LrScheduleKind : uint8_t { constant, linear, cosine, polynomial, wsd };
enum class DecayShape : uint8_t { linear, cosine, one_minus_sqrt, exponential };

struct LrSchedule {
  LrScheduleKind kind = LrScheduleKind::constant;
  double lr_peak = 1e-3;
  double lr_min = 0.0;              // floor reached at the end of the decay
  std::optional<double> min_ratio;  // lr_min = min_ratio * lr_peak (instead of lr_min)
  int64_t warmup_steps = 0;
  std::optional<double> warmup_ratio;  // W = ceil(total_steps * ratio) (instead of warmup_steps)
  int64_t total_steps = 0;             // may be 0 only for kind constant without warmup_ratio
  double power = 1.0;                  // polynomial exponent (HF default 1.0)
  // wsd: exactly one of these three fixes the decay length D.
  std::optional<int64_t> decay_steps;
  std::optional<double> decay_fraction;   // D = round(decay_fraction * total_steps)
  std::optional<double> stable_fraction;  // stable = round(stable_fraction * total_steps)
  DecayShape decay_shape = DecayShape::linear;
};

// The schedule with every derived length made concrete (what lr_at uses).
struct ResolvedLrSchedule {
  LrScheduleKind kind;
  DecayShape decay_shape;
  double lr_peak, lr_min, power;
  int64_t warmup_steps, total_steps;
  int64_t decay_start;  // wsd: first step of the decay (T - D); other kinds: warmup_steps
  int64_t decay_steps;  // wsd: D; other kinds: T - W
};

// Checks the config and derives the lengths; throws lmf::Error naming the field (see above).
ResolvedLrSchedule resolve(const LrSchedule& s);
inline void validate(const LrSchedule& s) { (void)resolve(s); }

// The learning rate for update `step` (>= 0). Throws lmf::Error for an invalid config or step.
double lr_at(const LrSchedule& s, int64_t step);
double lr_at(const ResolvedLrSchedule& r, int64_t step);

// "constant", "linear", "cosine", "polynomial" (or "poly"), "wsd"; throws lmf::Error listing them.
LrScheduleKind parse_lr_schedule_kind(std::string_view name);
// "linear", "cosine", "1-sqrt" (or "1_sqrt", "one_minus_sqrt"), "exponential" (or "exp").
DecayShape parse_decay_shape(std::string_view name);
std::string_view lr_schedule_kind_name(LrScheduleKind k);  // canonical spelling
std::string_view decay_shape_name(DecayShape d);           // "1-sqrt" for one_minus_sqrt

}  // namespace lmf
