#include "lmforge/train/schedules.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "lmforge/core/error.h"

namespace lmf {

namespace {

constexpr const char* kWhere = "lr_schedule: ";

void check_fraction(const std::optional<double>& v, const char* field) {
  if (v && !(*v >= 0.0 && *v <= 1.0)) fail(kWhere, field, ": expected a value in [0, 1], got ", *v);
}

// Resolves the wsd decay length D from whichever of the three fields is set.
int64_t wsd_decay_steps(const LrSchedule& s, int64_t warmup) {
  int set = int(s.decay_steps.has_value()) + int(s.decay_fraction.has_value()) +
            int(s.stable_fraction.has_value());
  if (set != 1)
    fail(kWhere, "wsd needs exactly one of decay_steps, decay_fraction, stable_fraction; got ",
         set);
  const int64_t total = s.total_steps;
  int64_t decay = 0;
  if (s.decay_steps) {
    if (*s.decay_steps < 0) fail(kWhere, "decay_steps: expected >= 0, got ", *s.decay_steps);
    decay = *s.decay_steps;
  } else if (s.decay_fraction) {
    check_fraction(s.decay_fraction, "decay_fraction");
    decay = std::llround(*s.decay_fraction * double(total));
  } else {
    check_fraction(s.stable_fraction, "stable_fraction");
    decay = total - warmup - std::llround(*s.stable_fraction * double(total));
    if (decay < 0)
      fail(kWhere, "stable_fraction: warmup (", warmup, ") + stable (",
           std::llround(*s.stable_fraction * double(total)), ") exceeds total_steps (", total, ")");
  }
  if (warmup + decay > total)
    fail(kWhere, "decay_steps: warmup (", warmup, ") + decay (", decay, ") exceeds total_steps (",
         total, ")");
  return decay;
}

// Fraction of (P - L) left after the decay progress q in [0, 1] for the linear/cosine/1-sqrt
// shapes.
double decay_factor(DecayShape shape, double q) {
  switch (shape) {
    case DecayShape::linear:
      return 1.0 - q;
    case DecayShape::cosine:
      return 0.5 * (1.0 + std::cos(std::numbers::pi * q));
    case DecayShape::one_minus_sqrt:
      return 1.0 - std::sqrt(q);
    case DecayShape::exponential:
      break;  // handled by the caller (multiplicative form)
  }
  LMF_CHECK(false, "decay_factor: unexpected shape");
  return 0.0;
}

}  // namespace

ResolvedLrSchedule resolve(const LrSchedule& s) {
  if (uint8_t(s.kind) > uint8_t(LrScheduleKind::wsd))
    fail(kWhere, "kind: unknown value ", int(s.kind));
  if (uint8_t(s.decay_shape) > uint8_t(DecayShape::exponential))
    fail(kWhere, "decay_shape: unknown value ", int(s.decay_shape));
  if (!(std::isfinite(s.lr_peak) && s.lr_peak > 0))
    fail(kWhere, "lr_peak: expected a finite value > 0, got ", s.lr_peak);

  double lr_min = s.lr_min;
  if (s.min_ratio) {
    check_fraction(s.min_ratio, "min_ratio");
    if (s.lr_min != 0.0) fail(kWhere, "min_ratio: set either lr_min or min_ratio, not both");
    lr_min = *s.min_ratio * s.lr_peak;
  }
  if (!(std::isfinite(lr_min) && lr_min >= 0))
    fail(kWhere, "lr_min: expected a finite value >= 0, got ", lr_min);
  if (lr_min > s.lr_peak)
    fail(kWhere, "lr_min: expected <= lr_peak (", s.lr_peak, "), got ", lr_min);

  if (s.total_steps < 0) fail(kWhere, "total_steps: expected >= 0, got ", s.total_steps);
  if (s.kind != LrScheduleKind::constant && s.total_steps == 0)
    fail(kWhere, "total_steps: expected > 0 for kind ", lr_schedule_kind_name(s.kind));
  if (s.warmup_steps < 0) fail(kWhere, "warmup_steps: expected >= 0, got ", s.warmup_steps);

  int64_t warmup = s.warmup_steps;
  if (s.warmup_ratio) {
    check_fraction(s.warmup_ratio, "warmup_ratio");
    if (s.warmup_steps != 0)
      fail(kWhere, "warmup_ratio: set either warmup_steps or warmup_ratio, not both");
    if (s.total_steps == 0) fail(kWhere, "warmup_ratio: needs total_steps > 0");
    // transformers TrainingArguments.get_warmup_steps: math.ceil(total * ratio).
    warmup = int64_t(std::ceil(double(s.total_steps) * *s.warmup_ratio));
  }
  if (s.total_steps > 0 && warmup > s.total_steps)
    fail(kWhere, "warmup_steps: expected <= total_steps (", s.total_steps, "), got ", warmup);
  if (s.kind == LrScheduleKind::polynomial && !(std::isfinite(s.power) && s.power > 0))
    fail(kWhere, "power: expected a finite value > 0, got ", s.power);

  ResolvedLrSchedule r{};
  r.kind = s.kind;
  r.decay_shape = s.decay_shape;
  r.lr_peak = s.lr_peak;
  r.lr_min = lr_min;
  r.power = s.power;
  r.warmup_steps = warmup;
  r.total_steps = s.total_steps;
  r.decay_start = warmup;
  r.decay_steps = std::max<int64_t>(0, s.total_steps - warmup);
  if (s.kind == LrScheduleKind::wsd) {
    if (s.decay_shape == DecayShape::exponential && lr_min <= 0)
      fail(kWhere, "lr_min: exponential decay needs lr_min > 0 (it decays as peak*(min/peak)^q)");
    r.decay_steps = wsd_decay_steps(s, warmup);
    r.decay_start = s.total_steps - r.decay_steps;
  }
  return r;
}

double lr_at(const ResolvedLrSchedule& r, int64_t step) {
  if (step < 0) fail(kWhere, "step: expected >= 0, got ", step);
  const double P = r.lr_peak, L = r.lr_min;
  const int64_t W = r.warmup_steps, T = r.total_steps;
  if (step < W) return P * double(step) / double(std::max<int64_t>(1, W));

  switch (r.kind) {
    case LrScheduleKind::constant:
      return P;
    case LrScheduleKind::linear: {
      double f = double(T - step) / double(std::max<int64_t>(1, T - W));
      return L + (P - L) * std::max(0.0, f);
    }
    case LrScheduleKind::cosine: {
      double q = double(step - W) / double(std::max<int64_t>(1, T - W));
      q = std::clamp(q, 0.0, 1.0);
      return L + (P - L) * 0.5 * (1.0 + std::cos(std::numbers::pi * q));
    }
    case LrScheduleKind::polynomial: {
      if (step >= T) return L;
      double remaining = 1.0 - double(step - W) / double(T - W);  // T > step >= W, so T > W
      return L + (P - L) * std::pow(remaining, r.power);
    }
    case LrScheduleKind::wsd: {
      if (step < r.decay_start) return P;
      if (step >= T) return L;
      double q = double(step - r.decay_start) / double(std::max<int64_t>(1, r.decay_steps));
      if (r.decay_shape == DecayShape::exponential) return P * std::pow(L / P, q);
      return L + (P - L) * decay_factor(r.decay_shape, q);
    }
  }
  LMF_CHECK(false, "lr_at: unexpected kind");
  return 0.0;
}

double lr_at(const LrSchedule& s, int64_t step) { return lr_at(resolve(s), step); }

LrScheduleKind parse_lr_schedule_kind(std::string_view name) {
  if (name == "constant") return LrScheduleKind::constant;
  if (name == "linear") return LrScheduleKind::linear;
  if (name == "cosine") return LrScheduleKind::cosine;
  if (name == "polynomial" || name == "poly") return LrScheduleKind::polynomial;
  if (name == "wsd") return LrScheduleKind::wsd;
  fail(kWhere, "kind: unknown schedule '", name,
       "' (expected constant, linear, cosine, polynomial or wsd)");
}

DecayShape parse_decay_shape(std::string_view name) {
  if (name == "linear") return DecayShape::linear;
  if (name == "cosine") return DecayShape::cosine;
  if (name == "1-sqrt" || name == "1_sqrt" || name == "one_minus_sqrt")
    return DecayShape::one_minus_sqrt;
  if (name == "exponential" || name == "exp") return DecayShape::exponential;
  fail(kWhere, "decay_shape: unknown shape '", name,
       "' (expected linear, cosine, 1-sqrt or exponential)");
}

std::string_view lr_schedule_kind_name(LrScheduleKind k) {
  switch (k) {
    case LrScheduleKind::constant:
      return "constant";
    case LrScheduleKind::linear:
      return "linear";
    case LrScheduleKind::cosine:
      return "cosine";
    case LrScheduleKind::polynomial:
      return "polynomial";
    case LrScheduleKind::wsd:
      return "wsd";
  }
  return "unknown";
}

std::string_view decay_shape_name(DecayShape d) {
  switch (d) {
    case DecayShape::linear:
      return "linear";
    case DecayShape::cosine:
      return "cosine";
    case DecayShape::one_minus_sqrt:
      return "1-sqrt";
    case DecayShape::exponential:
      return "exponential";
  }
  return "unknown";
}

}  // namespace lmf
