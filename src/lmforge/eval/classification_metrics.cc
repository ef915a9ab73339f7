#include "lmforge/eval/classification_metrics.h"

#include <algorithm>
#include <cstdio>

#include "lmforge/core/error.h"

namespace lmf {

namespace {
double ratio(int64_t a, int64_t b) { return b > 0 ? double(a) / double(b) : 0.0; }
}  // namespace

ClassificationReport classification_report(const std::vector<int32_t>& y_true,
                                           const std::vector<int32_t>& y_pred, int64_t k) {
  if (k < 1) fail("[metrics] num_classes must be >= 1, got ", k);
  if (y_true.size() != y_pred.size())
    fail("[metrics] y_true has ", y_true.size(), " entries but y_pred has ", y_pred.size());
  ClassificationReport r;
  r.num_examples = static_cast<int64_t>(y_true.size());
  r.confusion.assign(size_t(k), std::vector<int64_t>(size_t(k), 0));
  for (size_t i = 0; i < y_true.size(); i++) {
    const int32_t t = y_true[i], p = y_pred[i];
    if (t < 0 || t >= k) fail("[metrics] y_true[", i, "] = ", t, " is outside [0, ", k, ")");
    if (p < 0 || p >= k) fail("[metrics] y_pred[", i, "] = ", p, " is outside [0, ", k, ")");
    r.confusion[size_t(t)][size_t(p)]++;
  }
  int64_t correct = 0;
  r.per_class.resize(size_t(k));
  for (int64_t c = 0; c < k; c++) {
    int64_t tp = r.confusion[size_t(c)][size_t(c)], pred = 0, truth = 0;
    for (int64_t o = 0; o < k; o++) {
      pred += r.confusion[size_t(o)][size_t(c)];
      truth += r.confusion[size_t(c)][size_t(o)];
    }
    ClassMetrics& m = r.per_class[size_t(c)];
    m.precision = ratio(tp, pred);
    m.recall = ratio(tp, truth);
    m.f1 = m.precision + m.recall > 0 ? 2 * m.precision * m.recall / (m.precision + m.recall) : 0.0;
    m.support = truth;
    correct += tp;
    r.macro_precision += m.precision / double(k);
    r.macro_recall += m.recall / double(k);
    r.macro_f1 += m.f1 / double(k);
    r.weighted_f1 += r.num_examples > 0 ? m.f1 * double(truth) / double(r.num_examples) : 0.0;
  }
  r.accuracy = ratio(correct, r.num_examples);
  return r;
}

nlohmann::json ClassificationReport::to_json(const std::vector<std::string>& names) const {
  if (names.size() != per_class.size())
    fail("[metrics] ", names.size(), " label names for ", per_class.size(), " classes");
  nlohmann::json j = {
      {"accuracy", accuracy},         {"macro_f1", macro_f1},       {"macro_precision", macro_precision},
      {"macro_recall", macro_recall}, {"weighted_f1", weighted_f1}, {"num_examples", num_examples}};
  nlohmann::json pc = nlohmann::json::object();
  for (size_t c = 0; c < names.size(); c++)
    pc[names[c]] = {{"precision", per_class[c].precision},
                    {"recall", per_class[c].recall},
                    {"f1", per_class[c].f1},
                    {"support", per_class[c].support}};
  j["per_class"] = pc;
  j["labels"] = names;
  j["confusion_matrix"] = confusion;
  return j;
}

std::string ClassificationReport::format_table(const std::vector<std::string>& names) const {
  if (names.size() != per_class.size())
    fail("[metrics] ", names.size(), " label names for ", per_class.size(), " classes");
  int w = 12;
  for (const auto& n : names) w = std::max(w, static_cast<int>(n.size()));
  char buf[512];
  std::string s;
  std::snprintf(buf, sizeof buf, "%*s  %9s  %9s  %9s  %9s\n", w, "", "precision", "recall", "f1", "support");
  s += buf;
  for (size_t c = 0; c < names.size(); c++) {
    std::snprintf(buf, sizeof buf, "%*s  %9.4f  %9.4f  %9.4f  %9lld\n", w, names[c].c_str(),
                  per_class[c].precision, per_class[c].recall, per_class[c].f1,
                  static_cast<long long>(per_class[c].support));
    s += buf;
  }
  std::snprintf(buf, sizeof buf, "%*s  %9s  %9s  %9.4f  %9lld\n", w, "accuracy", "", "", accuracy,
                static_cast<long long>(num_examples));
  s += buf;
  std::snprintf(buf, sizeof buf, "%*s  %9.4f  %9.4f  %9.4f  %9lld\n", w, "macro avg", macro_precision,
                macro_recall, macro_f1, static_cast<long long>(num_examples));
  s += buf;
  std::snprintf(buf, sizeof buf, "%*s  %9s  %9s  %9.4f  %9lld\n", w, "weighted avg", "", "", weighted_f1,
                static_cast<long long>(num_examples));
  s += buf;
  s += "confusion matrix (rows = true, columns = predicted):\n";
  std::snprintf(buf, sizeof buf, "%*s", w, "");
  s += buf;
  for (const auto& n : names) {
    std::snprintf(buf, sizeof buf, "  %9s", n.substr(0, 9).c_str());
    s += buf;
  }
  s += "\n";
  for (size_t t = 0; t < names.size(); t++) {
    std::snprintf(buf, sizeof buf, "%*s", w, names[t].c_str());
    s += buf;
    for (size_t p = 0; p < names.size(); p++) {
      std::snprintf(buf, sizeof buf, "  %9lld", static_cast<long long>(confusion[t][p]));
      s += buf;
    }
    s += "\n";
  }
  return s;
}

}  // namespace lmf
