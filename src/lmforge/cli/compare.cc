// `lmforge compare RUN...`: the side-by-side table of fine-tuning runs (the fair-comparison
// view of the fine-tuning seed): per run its architecture, parameters, best-eval accuracy and
// macro-F1, and training throughput, read from RUN/results.json (written by `finetune`).
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lmforge/cli/common.h"
#include "lmforge/cli/registry.h"
#include "lmforge/models/config_json.h"
#include "lmforge/report/format.h"

namespace lmf::cli {

namespace {

struct CompareOptions {
  std::vector<std::string> runs;
  bool json = false;
};

double number_or(const nlohmann::json& j, const char* key, double fallback) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : fallback;
}

int run_compare(const CompareOptions& o) {
  struct Row {
    std::string run, arch;
    double params, accuracy, macro_f1, tokens_per_s;
  };
  std::vector<Row> rows;
  for (const auto& run : o.runs) {
    const std::string path = (std::filesystem::path(run) / "results.json").string();
    if (!std::filesystem::exists(path)) fail(path, ": not found (expected a finished `lmforge finetune` run folder)");
    nlohmann::json j = config_json::read_json_file(path);
    if (!j.contains("best_eval") || !j["best_eval"].is_object())
      fail(path, ": best_eval: missing (the run had no eval data)");
    const auto& e = j["best_eval"];
    rows.push_back({std::filesystem::path(run).filename().string(), j.value("architecture", std::string("?")),
                    number_or(j, "params", 0), number_or(e, "accuracy", NAN), number_or(e, "macro_f1", NAN),
                    number_or(j, "train_tokens_per_s", 0)});
  }
  if (o.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : rows)
      out.push_back({{"run", r.run}, {"architecture", r.arch}, {"params", r.params}, {"accuracy", r.accuracy},
                     {"macro_f1", r.macro_f1}, {"train_tokens_per_s", r.tokens_per_s}});
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf("%-28s %-34s %10s %9s %9s %12s\n", "run", "architecture", "params", "accuracy", "macro-F1",
              "train tok/s");
  for (const auto& r : rows)
    std::printf("%-28s %-34s %10s %9.4f %9.4f %12s\n", r.run.c_str(), r.arch.c_str(), format_si(r.params).c_str(),
                r.accuracy, r.macro_f1, format_si(r.tokens_per_s).c_str());
  return 0;
}

}  // namespace

Action setup_compare(CLI::App& app) {
  auto o = std::make_shared<CompareOptions>();
  app.add_option("runs", o->runs, "Fine-tuning run folders (each with results.json)")->required();
  app.add_flag("--json", o->json, "Print one JSON array instead of the table");
  set_examples(app, {"lmforge compare runs/sst2-tiny-mamba runs/sst2-tiny-bert"});
  return [o]() { return run_compare(*o); };
}

}  // namespace lmf::cli
