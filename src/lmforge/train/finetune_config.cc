#include "lmforge/train/finetune_config.h"

#include <cmath>
#include <filesystem>
#include <optional>

namespace lmf {

namespace {

// The recipe API has no type query: a key that may hold a string or another type is read as
// a string first, and as the other type when that fails.
std::optional<std::string> find_string_or_nothing(const Recipe& r, std::string_view key) {
  try {
    return r.find<std::string>(key);
  } catch (const OverrideError&) {
    throw;
  } catch (const Error&) {
    return std::nullopt;
  }
}

void require_positive(const Recipe& r, const char* key, int64_t v) {
  if (v < 1) r.fail_at(key, "expected a positive integer, got " + std::to_string(v));
}

}  // namespace

FinetuneConfig parse_finetune_recipe(const Recipe& r) {
  FinetuneConfig c;
  c.task = r.get_choice("task.type", "seq-cls", {"seq-cls"});
  c.run_dir = r.get<std::string>("run.dir", "");
  c.device = r.get<std::string>("run.device", "auto");

  c.train_path = r.require<std::string>("data.train");
  c.eval_path = r.get<std::string>("data.eval", "");
  c.read.format = r.get_choice("data.format", "auto", {"auto", "csv", "tsv", "jsonl"});
  c.read.text_column = r.get<std::string>("data.text_column", "text");
  c.read.text_pair_column = r.get<std::string>("data.text_pair_column", "");
  c.read.label_column = r.get<std::string>("data.label_column", "label");
  c.read.header = r.get<bool>("data.header", true);
  c.read.quoting = r.get<bool>("data.quoting", true);
  if (c.read.text_column.empty()) r.fail_at("data.text_column", "expected a column name");
  if (c.read.label_column.empty())
    r.fail_at("data.label_column", "expected a column name (training needs labels)");
  c.label_names = r.get<std::vector<std::string>>("data.labels", {});
  c.encode.max_length = r.get<int64_t>("data.max_length", 128);
  require_positive(r, "data.max_length", c.encode.max_length);
  try {
    c.encode.truncation =
        parse_truncation(r.get<std::string>("data.truncation", "longest_first"), "truncation");
  } catch (const OverrideError&) {
    throw;
  } catch (const Error& e) {
    r.fail_at("data.truncation", e.what());
  }
  c.group_by_length = r.get<bool>("data.group_by_length", false);

  c.init_from = r.get<std::string>("model.init_from", "");
  c.model_config = r.get<std::string>("model.config", "");
  c.tokenizer = r.get<std::string>("model.tokenizer", "");
  c.pooling = r.get_choice("model.pooling", "", {"", "last", "mean", "cls"});

  c.seed = static_cast<uint64_t>(r.get<int64_t>("train.seed", 42));
  c.lr = r.get<double>("train.lr", 2e-5);
  if (!(c.lr > 0) || !std::isfinite(c.lr)) r.fail_at("train.lr", "expected a positive number");
  c.epochs = r.get<int64_t>("train.epochs", 3);
  require_positive(r, "train.epochs", c.epochs);
  c.max_steps = r.get<int64_t>("train.max_steps", 0);
  if (c.max_steps < 0) r.fail_at("train.max_steps", "expected >= 0 (0: the epochs decide)");
  c.per_device_batch = r.get<int64_t>("train.per_device_batch", 32);
  require_positive(r, "train.per_device_batch", c.per_device_batch);
  c.grad_accum = r.get<int64_t>("train.grad_accum", 1);
  require_positive(r, "train.grad_accum", c.grad_accum);
  c.eval_batch = r.get<int64_t>("train.eval_batch", c.per_device_batch);
  require_positive(r, "train.eval_batch", c.eval_batch);
  c.warmup_ratio = r.get<double>("train.warmup_ratio", 0.06);
  if (!(c.warmup_ratio >= 0 && c.warmup_ratio <= 1))
    r.fail_at("train.warmup_ratio", "expected a number in [0, 1]");
  const std::string sched = r.get_choice("train.schedule", "linear", {"linear", "cosine", "wsd", "constant"});
  c.schedule = parse_lr_schedule_kind(sched);
  c.lr_min = r.get<double>("train.lr_min", 0.0);
  if (!(c.lr_min >= 0 && c.lr_min <= c.lr)) r.fail_at("train.lr_min", "expected a number in [0, train.lr]");
  c.wsd_decay_fraction = r.get<double>("train.wsd_decay_fraction", 0.2);
  if (!(c.wsd_decay_fraction > 0 && c.wsd_decay_fraction <= 1))
    r.fail_at("train.wsd_decay_fraction", "expected a number in (0, 1]");
  c.adamw.weight_decay = r.get<double>("train.weight_decay", 0.01);
  if (!(c.adamw.weight_decay >= 0)) r.fail_at("train.weight_decay", "expected a number >= 0");
  auto betas = r.get<std::vector<double>>("train.betas", {0.9, 0.999});
  if (betas.size() != 2 || !(betas[0] >= 0 && betas[0] < 1) || !(betas[1] >= 0 && betas[1] < 1))
    r.fail_at("train.betas", "expected [beta1, beta2], each in [0, 1)");
  c.adamw.beta1 = betas[0];
  c.adamw.beta2 = betas[1];
  c.adamw.eps = r.get<double>("train.eps", 1e-8);
  if (!(c.adamw.eps >= 0)) r.fail_at("train.eps", "expected a number >= 0");
  c.clip = r.get<double>("train.clip", 1.0);

  if (r.has("train.class_weights")) {
    if (auto s = find_string_or_nothing(r, "train.class_weights")) {
      if (*s == "none")
        c.class_weights.mode = ClassWeightsSpec::Mode::none;
      else if (*s == "balanced")
        c.class_weights.mode = ClassWeightsSpec::Mode::balanced;
      else
        r.fail_at("train.class_weights",
                  "expected \"none\", \"balanced\" or a list of numbers, got '" + *s + "'");
    } else {
      std::optional<std::vector<double>> w;
      try {
        w = r.find<std::vector<double>>("train.class_weights");
      } catch (const OverrideError&) {
        throw;
      } catch (const Error&) {
        r.fail_at("train.class_weights", "expected \"none\", \"balanced\" or a list of numbers");
      }
      c.class_weights.mode = ClassWeightsSpec::Mode::given;
      c.class_weights.given = *w;
      if (w->empty()) r.fail_at("train.class_weights", "expected one weight per label, got an empty list");
      for (double x : *w)
        if (!(x > 0) || !std::isfinite(x))
          r.fail_at("train.class_weights", "every weight must be a positive number");
    }
  }

  if (r.has("train.eval_every")) {
    if (auto s = find_string_or_nothing(r, "train.eval_every")) {
      if (*s != "epoch")
        r.fail_at("train.eval_every", "expected \"epoch\" or a number of steps, got '" + *s + "'");
    } else {
      std::optional<int64_t> n;
      try {
        n = r.find<int64_t>("train.eval_every");
      } catch (const OverrideError&) {
        throw;
      } catch (const Error&) {
        r.fail_at("train.eval_every", "expected \"epoch\" or a number of steps");
      }
      require_positive(r, "train.eval_every", *n);
      c.eval_per_epoch = false;
      c.eval_every_steps = *n;
    }
  }
  c.log_every = r.get<int64_t>("train.log_every", 10);
  require_positive(r, "train.log_every", c.log_every);
  c.bf16 = r.get<bool>("train.bf16", true);
  c.dropout = r.get<bool>("train.dropout", true);
  c.recompute = r.get<bool>("train.recompute", false);

  c.early_stopping.metric =
      r.get_choice("train.early_stopping.metric", "accuracy", {"accuracy", "macro_f1", "loss"});
  c.early_stopping.patience = r.get<int64_t>("train.early_stopping.patience", 0);
  if (c.early_stopping.patience < 0) r.fail_at("train.early_stopping.patience", "expected >= 0 (0: off)");
  c.early_stopping.min_delta = r.get<double>("train.early_stopping.min_delta", 0.0);
  if (!(c.early_stopping.min_delta >= 0))
    r.fail_at("train.early_stopping.min_delta", "expected a number >= 0");
  if (c.early_stopping.patience > 0 && c.eval_path.empty())
    r.fail_at("train.early_stopping.patience", "early stopping needs evaluation data (data.eval)");
  return c;
}

std::vector<double> resolve_class_weights(const ClassWeightsSpec& spec, const std::vector<int64_t>& counts,
                                          const std::vector<std::string>& names) {
  const size_t k = counts.size();
  switch (spec.mode) {
    case ClassWeightsSpec::Mode::none:
      return std::vector<double>(k, 1.0);
    case ClassWeightsSpec::Mode::given:
      if (spec.given.size() != k)
        fail("train.class_weights: ", spec.given.size(), " weights for ", k, " labels");
      return spec.given;
    case ClassWeightsSpec::Mode::balanced: {
      int64_t n = 0;
      for (int64_t c : counts) n += c;
      std::vector<double> w(k);
      for (size_t c = 0; c < k; c++) {
        if (counts[c] == 0)
          fail("train.class_weights: balanced: label '", c < names.size() ? names[c] : std::to_string(c),
               "' has no training example");
        w[c] = double(n) / (double(k) * double(counts[c]));  // sklearn compute_class_weight("balanced")
      }
      return w;
    }
  }
  return {};
}

std::string find_tokenizer_file(const std::string& dir) {
  for (const char* name :
       {"tokenizer.json", "tokenizer.model", "sentencepiece.bpe.model", "spiece.model", "vocab.txt"}) {
    const std::string p = dir + "/" + name;
    if (std::filesystem::is_regular_file(p)) return p;
  }
  return "";
}

LrSchedule finetune_schedule(const FinetuneConfig& c, int64_t total_steps) {
  LrSchedule s;
  s.kind = c.schedule;
  s.lr_peak = c.lr;
  s.lr_min = c.lr_min;
  s.warmup_ratio = c.warmup_ratio;
  s.total_steps = total_steps;
  if (s.kind == LrScheduleKind::wsd) s.decay_fraction = c.wsd_decay_fraction;
  return s;
}

}  // namespace lmf
