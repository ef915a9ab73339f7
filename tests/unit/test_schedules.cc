// LR schedules and batch-size ramp-up: hand-computed values (the arithmetic is in the comments),
// monotonicity, and config errors that name the field.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "lmforge/core/error.h"
#include "lmforge/train/batch_rampup.h"
#include "lmforge/train/schedules.h"

using namespace lmf;

namespace {

// Relative closeness for lr values (tiny absolute floor for zeros).
void expect_lr(double got, double want) {
  EXPECT_NEAR(got, want, 1e-12 + 1e-12 * std::fabs(want)) << "want " << want;
}

// Runs f, expects an lmf::Error whose message contains `needle`.
template <class F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected lmf::Error containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

LrSchedule make(LrScheduleKind kind, double peak, int64_t warmup, int64_t total) {
  LrSchedule s;
  s.kind = kind;
  s.lr_peak = peak;
  s.warmup_steps = warmup;
  s.total_steps = total;
  return s;
}

}  // namespace

TEST(LrSchedule, ConstantWithWarmupStartsAtZero) {
  LrSchedule s = make(LrScheduleKind::constant, 1e-3, 10, 0);
  expect_lr(lr_at(s, 0), 0.0);   // HF: step / max(1, W) = 0
  expect_lr(lr_at(s, 1), 1e-4);  // 1/10 * 1e-3
  expect_lr(lr_at(s, 5), 5e-4);
  expect_lr(lr_at(s, 10), 1e-3);
  expect_lr(lr_at(s, 123456), 1e-3);
  s.warmup_steps = 0;
  expect_lr(lr_at(s, 0), 1e-3);  // no warmup: peak from the first step
}

TEST(LrSchedule, LinearMatchesHfAndRespectsFloor) {
  LrSchedule s = make(LrScheduleKind::linear, 1e-3, 10, 110);
  expect_lr(lr_at(s, 0), 0.0);
  expect_lr(lr_at(s, 5), 5e-4);
  expect_lr(lr_at(s, 10), 1e-3);
  expect_lr(lr_at(s, 60), 5e-4);   // (110 - 60) / (110 - 10) = 0.5
  expect_lr(lr_at(s, 109), 1e-5);  // 1 / 100 * 1e-3
  expect_lr(lr_at(s, 110), 0.0);
  expect_lr(lr_at(s, 500), 0.0);  // max(0, ...)
  s.lr_min = 1e-4;
  expect_lr(lr_at(s, 60), 5.5e-4);  // 1e-4 + 9e-4 * 0.5
  expect_lr(lr_at(s, 110), 1e-4);
  expect_lr(lr_at(s, 500), 1e-4);
}

TEST(LrSchedule, CosineWithMinRatio) {
  LrSchedule s = make(LrScheduleKind::cosine, 1e-3, 100, 1100);
  s.min_ratio = 0.1;  // lr_min = 1e-4
  expect_lr(lr_at(s, 50), 5e-4);
  expect_lr(lr_at(s, 100), 1e-3);                    // q = 0
  expect_lr(lr_at(s, 350), 8.681980515339464e-4);    // q = .25: 1e-4 + 9e-4 * .5(1 + cos(pi/4))
  expect_lr(lr_at(s, 600), 5.5e-4);                  // q = .5
  expect_lr(lr_at(s, 1099), 1.0000222065916382e-4);  // q = .999
  expect_lr(lr_at(s, 1100), 1e-4);
  expect_lr(lr_at(s, 5000), 1e-4);  // clamped: no second cosine hump past total
}

TEST(LrSchedule, PolynomialPower) {
  LrSchedule s = make(LrScheduleKind::polynomial, 1e-3, 0, 100);
  s.power = 2.0;
  expect_lr(lr_at(s, 0), 1e-3);
  expect_lr(lr_at(s, 50), 2.5e-4);   // (1 - .5)^2 * 1e-3
  expect_lr(lr_at(s, 75), 6.25e-5);  // (.25)^2 * 1e-3
  expect_lr(lr_at(s, 100), 0.0);
  s.lr_min = 1e-5;
  expect_lr(lr_at(s, 50), 2.575e-4);  // 1e-5 + 99e-5 * .25
  expect_lr(lr_at(s, 150), 1e-5);
  s.power = 1.0;
  s.warmup_steps = 20;
  expect_lr(lr_at(s, 10), 5e-4);
  expect_lr(lr_at(s, 60), 1e-5 + 99e-5 * 0.5);  // 1 - 40/80
}

TEST(LrSchedule, WsdMambaoutaiLinearDecay) {
  // Mambaoutai ablation: warmup 480, stable 80 % of total, linear decay to 2e-4, peak 2e-3.
  LrSchedule s = make(LrScheduleKind::wsd, 2e-3, 480, 10000);
  s.lr_min = 2e-4;
  s.stable_fraction = 0.8;  // stable 8000 steps, decay D = 10000 - 480 - 8000 = 1520 from 8480
  ResolvedLrSchedule r = resolve(s);
  EXPECT_EQ(r.decay_steps, 1520);
  EXPECT_EQ(r.decay_start, 8480);
  expect_lr(lr_at(s, 0), 0.0);
  expect_lr(lr_at(s, 240), 1e-3);
  expect_lr(lr_at(s, 480), 2e-3);
  expect_lr(lr_at(s, 5000), 2e-3);
  expect_lr(lr_at(s, 8479), 2e-3);
  expect_lr(lr_at(s, 8480), 2e-3);                  // q = 0
  expect_lr(lr_at(s, 9240), 1.1e-3);                // q = .5: 2e-4 + 1.8e-3 * .5
  expect_lr(lr_at(s, 9999), 2.011842105263158e-4);  // q = 1519/1520
  expect_lr(lr_at(s, 10000), 2e-4);
  expect_lr(lr_at(s, 20000), 2e-4);
}

TEST(LrSchedule, WsdOneMinusSqrtMmBert) {
  // mmBERT: 1-sqrt decay to 0.02 x peak.
  LrSchedule s = make(LrScheduleKind::wsd, 8e-4, 100, 1000);
  s.min_ratio = 0.02;   // 1.6e-5
  s.decay_steps = 400;  // decay over [600, 1000)
  s.decay_shape = DecayShape::one_minus_sqrt;
  expect_lr(lr_at(s, 599), 8e-4);
  expect_lr(lr_at(s, 600), 8e-4);
  expect_lr(lr_at(s, 700), 4.08e-4);                // q = .25: 1.6e-5 + 7.84e-4 * (1 - .5)
  expect_lr(lr_at(s, 900), 1.2103608343300013e-4);  // q = .75: 1 - sqrt(.75)
  expect_lr(lr_at(s, 1000), 1.6e-5);
}

TEST(LrSchedule, WsdExponentialAndCosineShapes) {
  LrSchedule s = make(LrScheduleKind::wsd, 1e-3, 0, 200);
  s.lr_min = 1e-5;
  s.decay_fraction = 0.5;  // D = 100, decay from 100
  s.decay_shape = DecayShape::exponential;
  expect_lr(lr_at(s, 0), 1e-3);  // no warmup
  expect_lr(lr_at(s, 100), 1e-3);
  expect_lr(lr_at(s, 125), 3.1622776601683794e-4);  // 1e-3 * (1e-2)^.25
  expect_lr(lr_at(s, 150), 1e-4);                   // 1e-3 * (1e-2)^.5
  expect_lr(lr_at(s, 200), 1e-5);

  LrSchedule c = make(LrScheduleKind::wsd, 1.0, 0, 100);
  c.decay_steps = 40;  // decay over [60, 100)
  c.decay_shape = DecayShape::cosine;
  expect_lr(lr_at(c, 70), 0.8535533905932737);  // .5 (1 + cos(pi/4))
  expect_lr(lr_at(c, 80), 0.5);
  expect_lr(lr_at(c, 100), 0.0);
}

TEST(LrSchedule, WarmupRatioUsesCeilLikeHf) {
  LrSchedule s = make(LrScheduleKind::linear, 1e-3, 0, 1000);
  s.warmup_ratio = 0.06;  // 1000 * 0.06 = 60.0
  EXPECT_EQ(resolve(s).warmup_steps, 60);
  expect_lr(lr_at(s, 30), 5e-4);
  s.total_steps = 1001;
  s.warmup_ratio = 0.1;  // 1001 * 0.1 = 100.10000000000001 -> ceil 101
  EXPECT_EQ(resolve(s).warmup_steps, 101);
}

TEST(LrSchedule, MonotoneWarmupAndDecay) {
  std::vector<LrSchedule> all;
  for (auto kind : {LrScheduleKind::linear, LrScheduleKind::cosine, LrScheduleKind::polynomial}) {
    LrSchedule s = make(kind, 3e-4, 37, 513);
    s.lr_min = 3e-6;
    s.power = 0.7;
    all.push_back(s);
  }
  for (auto shape : {DecayShape::linear, DecayShape::cosine, DecayShape::one_minus_sqrt,
                     DecayShape::exponential}) {
    LrSchedule s = make(LrScheduleKind::wsd, 3e-4, 37, 513);
    s.lr_min = 3e-6;
    s.decay_fraction = 0.3;
    s.decay_shape = shape;
    all.push_back(s);
  }
  for (const LrSchedule& s : all) {
    SCOPED_TRACE(std::string(lr_schedule_kind_name(s.kind)) + "/" +
                 std::string(decay_shape_name(s.decay_shape)));
    double prev = lr_at(s, 0);
    for (int64_t t = 1; t <= 600; t++) {
      double lr = lr_at(s, t);
      if (t <= 37)
        EXPECT_GT(lr, prev) << "step " << t;  // strictly rising warmup
      else
        EXPECT_LE(lr, prev + 1e-18) << "step " << t;  // never rising after
      EXPECT_GE(lr, s.lr_min - 1e-18);
      EXPECT_LE(lr, s.lr_peak + 1e-18);
      prev = lr;
    }
    expect_lr(lr_at(s, 600), s.lr_min);
  }
}

TEST(LrSchedule, InvalidConfigsNameTheField) {
  LrSchedule ok = make(LrScheduleKind::cosine, 1e-3, 10, 100);
  EXPECT_NO_THROW(validate(ok));

  LrSchedule s = ok;
  s.lr_min = 2e-3;
  expect_error([&] { validate(s); }, "lr_min");
  s = ok;
  s.lr_peak = 0;
  expect_error([&] { validate(s); }, "lr_peak");
  s = ok;
  s.lr_peak = std::numeric_limits<double>::quiet_NaN();
  expect_error([&] { validate(s); }, "lr_peak");
  s = ok;
  s.warmup_steps = -1;
  expect_error([&] { validate(s); }, "warmup_steps");
  s = ok;
  s.warmup_steps = 101;
  expect_error([&] { validate(s); }, "warmup_steps");
  s = ok;
  s.total_steps = -5;
  expect_error([&] { validate(s); }, "total_steps");
  s = ok;
  s.total_steps = 0;
  s.warmup_steps = 0;
  expect_error([&] { validate(s); }, "total_steps");
  s = ok;
  s.min_ratio = 1.5;
  expect_error([&] { validate(s); }, "min_ratio");
  s = ok;
  s.min_ratio = 0.1;
  s.lr_min = 1e-5;
  expect_error([&] { validate(s); }, "min_ratio");
  s = ok;
  s.warmup_ratio = 0.1;
  expect_error([&] { validate(s); }, "warmup_ratio");  // with warmup_steps = 10
  s = ok;
  s.kind = static_cast<LrScheduleKind>(17);
  expect_error([&] { validate(s); }, "kind");
  s = ok;
  s.kind = LrScheduleKind::polynomial;
  s.power = 0;
  expect_error([&] { validate(s); }, "power");
  s = ok;
  expect_error([&] { lr_at(s, -1); }, "step");

  LrSchedule w = make(LrScheduleKind::wsd, 1e-3, 10, 100);
  expect_error([&] { validate(w); }, "exactly one of");
  w.decay_steps = 20;
  w.decay_fraction = 0.2;
  expect_error([&] { validate(w); }, "exactly one of");
  w.decay_fraction.reset();
  w.decay_steps = 95;  // 10 + 95 > 100
  expect_error([&] { validate(w); }, "decay_steps");
  w.decay_steps = -1;
  expect_error([&] { validate(w); }, "decay_steps");
  w.decay_steps.reset();
  w.stable_fraction = 0.95;  // 10 + 95 > 100
  expect_error([&] { validate(w); }, "stable_fraction");
  w.stable_fraction = 0.5;
  w.decay_shape = DecayShape::exponential;  // lr_min = 0
  expect_error([&] { validate(w); }, "lr_min");
  w.lr_min = 1e-5;
  EXPECT_NO_THROW(validate(w));
}

TEST(LrSchedule, ParsesNames) {
  EXPECT_EQ(parse_lr_schedule_kind("wsd"), LrScheduleKind::wsd);
  EXPECT_EQ(parse_lr_schedule_kind("cosine"), LrScheduleKind::cosine);
  EXPECT_EQ(parse_lr_schedule_kind("poly"), LrScheduleKind::polynomial);
  EXPECT_EQ(parse_lr_schedule_kind("constant"), LrScheduleKind::constant);
  EXPECT_EQ(parse_lr_schedule_kind("linear"), LrScheduleKind::linear);
  EXPECT_EQ(parse_decay_shape("1-sqrt"), DecayShape::one_minus_sqrt);
  EXPECT_EQ(parse_decay_shape("exp"), DecayShape::exponential);
  EXPECT_EQ(parse_decay_shape("cosine"), DecayShape::cosine);
  for (auto k : {LrScheduleKind::constant, LrScheduleKind::linear, LrScheduleKind::cosine,
                 LrScheduleKind::polynomial, LrScheduleKind::wsd})
    EXPECT_EQ(parse_lr_schedule_kind(lr_schedule_kind_name(k)), k);
  for (auto d : {DecayShape::linear, DecayShape::cosine, DecayShape::one_minus_sqrt,
                 DecayShape::exponential})
    EXPECT_EQ(parse_decay_shape(decay_shape_name(d)), d);
  expect_error([] { parse_lr_schedule_kind("cosin"); }, "cosin");
  expect_error([] { parse_decay_shape("sqrt"); }, "decay_shape");
}

TEST(BatchRampup, LinearStaircaseToTarget) {
  // 256K -> 2M tokens per step over the first 1B tokens, granularity 4096 x 16.
  BatchRampup r{262144, 2097152, 1000000000, 65536};
  EXPECT_EQ(tokens_per_step_at(r, 0), 262144);
  // 262144 + 1835008 * 0.1 = 445644.8 -> floor to 6 x 65536
  EXPECT_EQ(tokens_per_step_at(r, 100000000), 393216);
  // 262144 + 1835008 * 0.5 = 1179648 = 18 x 65536 exactly
  EXPECT_EQ(tokens_per_step_at(r, 500000000), 1179648);
  // 262144 + 1835007 = 2097151 -> 31 x 65536
  EXPECT_EQ(tokens_per_step_at(r, 999999999), 2031616);
  EXPECT_EQ(tokens_per_step_at(r, 1000000000), 2097152);
  EXPECT_EQ(tokens_per_step_at(r, 5000000000), 2097152);

  int64_t prev = 0;
  for (int64_t x = 0; x <= 1100000000; x += 7777777) {
    int64_t t = tokens_per_step_at(r, x);
    EXPECT_EQ(t % 65536, 0);
    EXPECT_GE(t, prev);
    EXPECT_GE(t, 262144);
    EXPECT_LE(t, 2097152);
    prev = t;
  }
  BatchRampup off{65536, 2097152, 0, 65536};  // no ramp
  EXPECT_EQ(tokens_per_step_at(off, 0), 2097152);
}

TEST(BatchRampup, NoOverflowOnHugeRuns) {
  // (target - start) * tokens_seen = 1e12 * 5e14 overflows int64; the result must not.
  BatchRampup r{1, 1000000000001, 1000000000000000, 1};
  EXPECT_EQ(tokens_per_step_at(r, 500000000000000), 500000000001);
}

TEST(BatchRampup, InvalidConfigs) {
  BatchRampup ok{65536, 2097152, 1000, 65536};
  BatchRampup r = ok;
  r.granularity = 0;
  expect_error([&] { validate(r); }, "granularity");
  r = ok;
  r.target_tokens_per_step = 2097153;
  expect_error([&] { validate(r); }, "target_tokens_per_step");
  r = ok;
  r.start_tokens_per_step = 0;
  expect_error([&] { validate(r); }, "start_tokens_per_step");
  r = ok;
  r.start_tokens_per_step = 4194304;
  expect_error([&] { validate(r); }, "start_tokens_per_step");
  r = ok;
  r.rampup_tokens = -1;
  expect_error([&] { validate(r); }, "rampup_tokens");
  expect_error([&] { tokens_per_step_at(ok, -3); }, "tokens_seen");
}
