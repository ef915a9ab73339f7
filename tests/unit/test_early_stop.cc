// train/early_stop: HF EarlyStoppingCallback semantics on synthetic metric series.
#include <gtest/gtest.h>

#include <cmath>

#include "lmforge/core/error.h"
#include "lmforge/train/early_stop.h"

using namespace lmf;

namespace {
// Feeds `series`; returns the 1-based eval index at which stop was signalled (0 = never) and
// the indices that improved the best.
std::pair<int, std::vector<int>> run(const EarlyStopConfig& c, const std::vector<double>& series) {
  EarlyStopper s(c);
  std::vector<int> improved;
  for (size_t i = 0; i < series.size(); i++) {
    auto d = s.update(series[i]);
    if (d.improved) improved.push_back(int(i) + 1);
    if (d.stop) return {int(i) + 1, improved};
  }
  return {0, improved};
}
}  // namespace

TEST(EarlyStop, StopsAfterPatienceEvalsWithoutImprovement) {
  // accuracy: best 0.71 at eval 3; evals 4 and 5 do not beat it -> stop at 5 with patience 2.
  auto [stop, improved] = run({"accuracy", 2, 0.0}, {0.60, 0.65, 0.71, 0.70, 0.71, 0.90});
  EXPECT_EQ(stop, 5);
  EXPECT_EQ(improved, (std::vector<int>{1, 2, 3}));
  // patience 3: the 0.90 at eval 6 arrives in time.
  auto [stop3, improved3] = run({"accuracy", 3, 0.0}, {0.60, 0.65, 0.71, 0.70, 0.71, 0.90});
  EXPECT_EQ(stop3, 0);
  EXPECT_EQ(improved3, (std::vector<int>{1, 2, 3, 6}));
}

TEST(EarlyStop, MinDeltaAndLossDirection) {
  // Improvements of 0.005 are below min_delta 0.01: they update the best (exported) but do
  // not reset the counter (HF: state.best_metric vs early_stopping_threshold).
  EarlyStopper s({"macro_f1", 2, 0.01});
  EXPECT_TRUE(s.update(0.500).improved);
  auto d = s.update(0.505);
  EXPECT_TRUE(d.improved);
  EXPECT_FALSE(d.stop);
  EXPECT_EQ(s.evals_without_improvement(), 1);
  d = s.update(0.509);
  EXPECT_TRUE(d.improved);
  EXPECT_TRUE(d.stop);
  EXPECT_DOUBLE_EQ(s.best(), 0.509);
  // Loss: lower is better.
  auto [stop, improved] = run({"loss", 1, 0.0}, {0.9, 0.7, 0.8});
  EXPECT_EQ(stop, 3);
  EXPECT_EQ(improved, (std::vector<int>{1, 2}));
  // A counter reset by a large enough improvement.
  auto [stop2, improved2] = run({"loss", 2, 0.05}, {1.0, 0.99, 0.90, 0.89, 0.88});
  EXPECT_EQ(stop2, 5);
  EXPECT_EQ(improved2, (std::vector<int>{1, 2, 3, 4, 5}));
}

TEST(EarlyStop, PatienceZeroNeverStopsAndNaNNeverImproves) {
  auto [stop, improved] = run({"accuracy", 0, 0.0}, {0.5, 0.4, 0.3, 0.2, 0.1});
  EXPECT_EQ(stop, 0);
  EXPECT_EQ(improved, (std::vector<int>{1}));
  EarlyStopper s({"loss", 2, 0.0});
  EXPECT_FALSE(s.update(NAN).improved);
  EXPECT_FALSE(s.has_best());
  EXPECT_TRUE(s.update(1.0).improved);
  EXPECT_FALSE(s.update(NAN).stop);
  EXPECT_TRUE(s.update(NAN).stop);
  EXPECT_DOUBLE_EQ(s.best(), 1.0);
}

TEST(EarlyStop, BadConfigThrows) {
  EXPECT_THROW(EarlyStopper({"f1", 1, 0.0}), Error);
  EXPECT_THROW(EarlyStopper({"accuracy", -1, 0.0}), Error);
  EXPECT_THROW(EarlyStopper({"accuracy", 1, -0.1}), Error);
  EXPECT_TRUE(metric_greater_is_better("accuracy"));
  EXPECT_FALSE(metric_greater_is_better("loss"));
}
