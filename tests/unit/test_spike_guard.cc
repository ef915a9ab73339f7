#include <gtest/gtest.h>

#include <cmath>

#include "lmforge/core/error.h"
#include "lmforge/train/spike_guard.h"

using namespace lmf;

TEST(SpikeGuard, FlagsNonFiniteAndRatioSpikes) {
  SpikeGuard g({true, 3.0, 5, 3, 10});
  EXPECT_EQ(g.check(NAN), "loss is NaN");
  EXPECT_EQ(g.check(INFINITY), "loss is infinite");
  // Before min_history losses no ratio test is made.
  EXPECT_EQ(g.check(2.0), "");
  EXPECT_EQ(g.check(100.0), "");  // accepted: history too short
  EXPECT_EQ(g.check(2.2), "");
  // History {2, 100, 2.2}: median 2.2 -> 7 > 6.6 is a spike, 6 is not.
  EXPECT_NE(g.check(7.0), "");
  EXPECT_DOUBLE_EQ(g.median(), 2.2);
  EXPECT_EQ(g.check(6.0), "");
  // Spikes are not recorded: the median stays robust.
  EXPECT_DOUBLE_EQ(g.median(), (2.2 + 6.0) / 2);
  // State round trip.
  SpikeGuard h({true, 3.0, 5, 3, 10});
  h.load_state(g.state());
  EXPECT_DOUBLE_EQ(h.median(), g.median());
  EXPECT_THROW(SpikeGuard({true, 0.5, 5, 3, 10}), Error);
}
