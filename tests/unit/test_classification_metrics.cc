// eval/classification_metrics against hand-computed confusion matrices (scikit-learn's
// definitions with labels = range(k), zero_division = 0).
#include <gtest/gtest.h>

#include "lmforge/core/error.h"
#include "lmforge/eval/classification_metrics.h"

using namespace lmf;

TEST(ClassificationMetrics, FourClassesByHand) {
  // Class 3 is never true but predicted once; class 2 is never over-predicted.
  const std::vector<int32_t> y = {0, 0, 0, 1, 1, 2, 2, 2, 2, 0};
  const std::vector<int32_t> p = {0, 1, 0, 1, 3, 2, 2, 0, 2, 0};
  ClassificationReport r = classification_report(y, p, 4);
  const std::vector<std::vector<int64_t>> cm = {{3, 1, 0, 0}, {0, 1, 0, 1}, {1, 0, 3, 0}, {0, 0, 0, 0}};
  EXPECT_EQ(r.confusion, cm);
  EXPECT_EQ(r.num_examples, 10);
  EXPECT_DOUBLE_EQ(r.accuracy, 0.7);
  // precision = TP / column sum, recall = TP / row sum.
  EXPECT_DOUBLE_EQ(r.per_class[0].precision, 0.75);
  EXPECT_DOUBLE_EQ(r.per_class[0].recall, 0.75);
  EXPECT_DOUBLE_EQ(r.per_class[1].precision, 0.5);
  EXPECT_DOUBLE_EQ(r.per_class[2].precision, 1.0);
  EXPECT_DOUBLE_EQ(r.per_class[2].recall, 0.75);
  EXPECT_NEAR(r.per_class[2].f1, 6.0 / 7.0, 1e-12);
  EXPECT_DOUBLE_EQ(r.per_class[3].precision, 0.0);
  EXPECT_DOUBLE_EQ(r.per_class[3].recall, 0.0);  // no support: zero_division = 0
  EXPECT_DOUBLE_EQ(r.per_class[3].f1, 0.0);
  EXPECT_EQ(r.per_class[0].support, 4);
  EXPECT_EQ(r.per_class[1].support, 2);
  EXPECT_EQ(r.per_class[3].support, 0);
  EXPECT_DOUBLE_EQ(r.macro_precision, 0.5625);
  EXPECT_DOUBLE_EQ(r.macro_recall, 0.5);
  EXPECT_NEAR(r.macro_f1, (0.75 + 0.5 + 6.0 / 7.0) / 4, 1e-12);
  EXPECT_NEAR(r.weighted_f1, (0.75 * 4 + 0.5 * 2 + 6.0 / 7.0 * 4) / 10, 1e-12);
}

TEST(ClassificationMetrics, BinaryByHand) {
  // TP(1) = 3, FP(1) = 1, FN(1) = 2, TN = 2.
  const std::vector<int32_t> y = {1, 1, 1, 1, 1, 0, 0, 0};
  const std::vector<int32_t> p = {1, 1, 1, 0, 0, 1, 0, 0};
  ClassificationReport r = classification_report(y, p, 2);
  EXPECT_EQ(r.confusion, (std::vector<std::vector<int64_t>>{{2, 1}, {2, 3}}));
  EXPECT_DOUBLE_EQ(r.accuracy, 5.0 / 8.0);
  EXPECT_DOUBLE_EQ(r.per_class[1].precision, 0.75);
  EXPECT_DOUBLE_EQ(r.per_class[1].recall, 0.6);
  EXPECT_NEAR(r.per_class[1].f1, 2 * 0.75 * 0.6 / 1.35, 1e-12);
  EXPECT_NEAR(r.per_class[0].precision, 0.5, 1e-12);
  EXPECT_NEAR(r.per_class[0].recall, 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(r.per_class[0].f1, 2 * 0.5 * (2.0 / 3.0) / (0.5 + 2.0 / 3.0), 1e-12);
  EXPECT_NEAR(r.macro_f1, (r.per_class[0].f1 + r.per_class[1].f1) / 2, 1e-12);

  nlohmann::json j = r.to_json({"neg", "pos"});
  EXPECT_DOUBLE_EQ(j["accuracy"].get<double>(), 0.625);
  EXPECT_EQ(j["per_class"]["pos"]["support"].get<int64_t>(), 5);
  EXPECT_EQ(j["confusion_matrix"][1][0].get<int64_t>(), 2);
  EXPECT_EQ(j["labels"][1].get<std::string>(), "pos");
  const std::string t = r.format_table({"neg", "pos"});
  EXPECT_NE(t.find("pos"), std::string::npos) << t;
  EXPECT_NE(t.find("0.6250"), std::string::npos) << t;
  EXPECT_NE(t.find("confusion matrix"), std::string::npos) << t;
}

TEST(ClassificationMetrics, EmptyAndBadInput) {
  ClassificationReport r = classification_report({}, {}, 3);
  EXPECT_EQ(r.num_examples, 0);
  EXPECT_DOUBLE_EQ(r.accuracy, 0.0);
  EXPECT_THROW(classification_report({0, 1}, {0}, 2), Error);
  EXPECT_THROW(classification_report({0, 2}, {0, 1}, 2), Error);
  EXPECT_THROW(classification_report({0, 1}, {0, -1}, 2), Error);
  EXPECT_THROW(classification_report({0}, {0}, 0), Error);
  EXPECT_THROW(r.to_json({"a", "b"}), Error);
}
