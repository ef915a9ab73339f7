// Classification metrics (scikit-learn's definitions, over a fixed label set 0..k-1):
//   confusion[t][p]  number of examples of true class t predicted as p (rows = truth)
//   precision_c = TP / (TP + FP), recall_c = TP / (TP + FN), F1_c = 2 P R / (P + R);
//   a zero denominator gives 0 (sklearn zero_division=0). support_c = examples of class c.
//   accuracy = trace / n; macro_* = unweighted mean over all k classes (classes absent from
//   both truth and predictions count with 0, as sklearn with labels=range(k));
//   weighted_f1 = support-weighted mean of F1_c.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace lmf {

struct ClassMetrics {
  double precision = 0, recall = 0, f1 = 0;
  int64_t support = 0;
};

struct ClassificationReport {
  int64_t num_examples = 0;
  double accuracy = 0, macro_precision = 0, macro_recall = 0, macro_f1 = 0, weighted_f1 = 0;
  std::vector<ClassMetrics> per_class;          // [k]
  std::vector<std::vector<int64_t>> confusion;  // [k][k], rows = true class

  // {"accuracy", "macro_f1", "macro_precision", "macro_recall", "weighted_f1", "num_examples",
  //  "per_class": {name: {precision, recall, f1, support}}, "labels": [names],
  //  "confusion_matrix": [[...]]}. names.size() must be k (else lmf::Error).
  nlohmann::json to_json(const std::vector<std::string>& names) const;
  // A fixed-width table: one row per class (precision, recall, f1, support), then accuracy,
  // macro avg, weighted avg, then the confusion matrix.
  std::string format_table(const std::vector<std::string>& names) const;
};

// y_true and y_pred: same length, values in [0, num_classes) (else lmf::Error "[metrics] ...").
// An empty input gives zeros everywhere.
ClassificationReport classification_report(const std::vector<int32_t>& y_true,
                                           const std::vector<int32_t>& y_pred, int64_t num_classes);

}  // namespace lmf
