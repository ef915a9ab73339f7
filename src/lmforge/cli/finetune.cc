// `lmforge finetune --task seq-cls`: sequence-classification fine-tuning from a TOML recipe
// (configs/finetune-*.toml, docs/finetune.md). Everything the run needs (recipe, data, label
// set, tokenizer, model) is read and checked before the run folder is created, so a bad input
// fails with one error line and leaves nothing behind.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "lmforge/cli/common.h"
#include "lmforge/cli/registry.h"
#include "lmforge/data/classification_batches.h"
#include "lmforge/data/labelled_reader.h"
#include "lmforge/io/atomic_file.h"
#include "lmforge/models/config_json.h"
#include "lmforge/models/task_registry.h"
#include "lmforge/report/format.h"
#include "lmforge/report/metrics_log.h"
#include "lmforge/report/progress.h"
#include "lmforge/report/run_dir.h"
#include "lmforge/tokenize/tokenizer.h"
#include "lmforge/train/finetune_config.h"
#include "lmforge/train/seq_cls_trainer.h"

namespace lmf::cli {

namespace {

namespace fs = std::filesystem;

struct FinetuneOptions {
  std::string task;
  RecipeArgs recipe;
  std::string model, out, device;
};

const char* kTasks = "seq-cls";

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// The tokenizer files copied beside an exported model: the tokenizer itself and the side files
// that exist next to it.
std::vector<std::string> tokenizer_files(const std::string& tokenizer_file) {
  std::vector<std::string> out = {tokenizer_file};
  const fs::path dir = fs::path(tokenizer_file).parent_path();
  for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"})
    if (fs::exists(dir / name)) out.push_back((dir / name).string());
  return out;
}

std::string eval_line(const nlohmann::json& e) {
  char buf[256];
  std::snprintf(
      buf, sizeof buf,
      "eval @ step %lld (epoch %.2f): loss %.4f | accuracy %.4f | macro-F1 %.4f | %lld examples, %.1fs",
      (long long)e["step"].get<int64_t>(), e["epoch"].get<double>(), e["loss"].get<double>(),
      e["accuracy"].get<double>(), e["macro_f1"].get<double>(), (long long)e["num_examples"].get<int64_t>(),
      e["seconds"].get<double>());
  return buf;
}

int run_finetune(const FinetuneOptions& o) {
  if (o.task != "seq-cls")
    throw UsageError("--task: '" + o.task + "' is not supported (supported: " + kTasks + ")");
  Recipe recipe = load_recipe(o.recipe);
  FinetuneConfig cfg = parse_finetune_recipe(recipe);
  if (cfg.task != o.task)
    recipe.fail_at("task.type", "the recipe is for '" + cfg.task + "' but --task is '" + o.task + "'");
  if (!o.model.empty()) cfg.init_from = o.model;
  if (!o.out.empty()) cfg.run_dir = o.out;
  if (!o.device.empty()) cfg.device = o.device;
  warn_unused_keys(recipe);
  if (cfg.run_dir.empty()) throw UsageError("no run folder: give --out runs/NAME (or run.dir in the recipe)");
  if (fs::exists(cfg.run_dir) && !(fs::is_directory(cfg.run_dir) && fs::is_empty(cfg.run_dir)))
    fail(cfg.run_dir, ": run folder already exists and is not empty");
  if (cfg.init_from.empty() && cfg.model_config.empty())
    recipe.fail_at("model",
                   "set model.init_from (a HF folder; or --model DIR) or model.config (a config.json)");
  if (!cfg.init_from.empty() && !cfg.model_config.empty())
    recipe.fail_at("model", "set only one of model.init_from (--model) and model.config");
  const Device dev = parse_device(cfg.device);
  const DType compute = dev.is_cuda() && cfg.bf16 ? DType::bf16 : DType::f32;

  // Tokenizer and data.
  std::string tok_path = cfg.tokenizer;
  if (tok_path.empty() && !cfg.init_from.empty()) {
    tok_path = find_tokenizer_file(cfg.init_from);
    if (tok_path.empty())
      fail(cfg.init_from,
           ": no tokenizer (tokenizer.json, *.model or vocab.txt) in this folder; set model.tokenizer");
  }
  if (tok_path.empty())
    recipe.fail_at("model.tokenizer", "a fresh model needs a tokenizer (a tokenizer.json)");
  if (!fs::is_regular_file(tok_path)) fail(tok_path, ": no tokenizer here");
  Tokenizer tok = Tokenizer::from_file(tok_path);
  LabelledData train = read_labelled(cfg.train_path, cfg.read);
  std::vector<std::string> names = cfg.label_names.empty() ? label_names_from(train) : cfg.label_names;
  if (names.size() < 2)
    fail(cfg.train_path, ": only one label (", join(names), "); classification needs at least two");
  assign_label_ids(train, names);
  LabelledData eval;
  if (!cfg.eval_path.empty()) {
    eval = read_labelled(cfg.eval_path, cfg.read);
    assign_label_ids(eval, names);
  }
  SeqClsData data;
  data.label_names = names;
  EncodeStats train_stats, eval_stats;
  data.train = encode_examples(tok, train, cfg.encode, &train_stats);
  if (!cfg.eval_path.empty()) data.eval = encode_examples(tok, eval, cfg.encode, &eval_stats);
  data.class_weights = resolve_class_weights(cfg.class_weights, label_counts(train, names.size()), names);
  data.tokenizer_files = tokenizer_files(tok_path);

  // Model: a HF folder with a new or existing classification head, or a fresh init.
  TaskModelRequest req;
  req.head = TaskHead::sequence_classification;
  req.num_labels = static_cast<int64_t>(names.size());
  req.pooling = cfg.pooling;
  LoadedTaskModel lm;
  if (!cfg.init_from.empty()) {
    lm = load_task_model(cfg.init_from, dev, compute, req, cfg.seed);
  } else {
    nlohmann::json cj = config_json::read_json_file(cfg.model_config);
    lm.store = std::make_unique<ParamStore>(dev, compute);
    lm.model = make_task_model(cj, cfg.model_config, *lm.store, req);
    lm.store->finalize();
    Generator g{cfg.seed, 0};
    lm.model->init_weights(g);
  }
  auto* model = dynamic_cast<SequenceClassifier*>(lm.model.get());
  if (!model) fail(cfg.init_from, ": ", lm.model->architecture(), " is not a sequence classifier");
  model->set_label_names(names);
  const nlohmann::json mc = model->hf_config();
  const int64_t vocab = mc.value("vocab_size", int64_t(0));
  if (vocab > 0 && tok.vocab_size() > vocab)
    fail(tok_path, ": the tokenizer has ", tok.vocab_size(), " tokens but the model's vocab_size is ", vocab);
  int64_t pad = tok.pad_id() ? *tok.pad_id() : mc.value("pad_token_id", int64_t(0));
  if (pad < 0 || (vocab > 0 && pad >= vocab)) pad = 0;
  data.pad_id = pad;

  // Only now: the run folder.
  RunDir rd = RunDir::open(cfg.run_dir, RunDir::Mode::fresh);
  recipe.write_resolved(rd.config_path());
  std::printf("lmforge finetune: %s, %.2fM parameters (%.2fM trainable), device %s, compute %s, run %s\n",
              model->architecture(), double(lm.store->num_params()) / 1e6,
              double(lm.store->num_trainable()) / 1e6, dev.str().c_str(),
              std::string(dtype_name(compute)).c_str(), cfg.run_dir.c_str());
  if (!lm.missing_tensors.empty()) std::printf("newly initialized: %s\n", join(lm.missing_tensors).c_str());
  if (!lm.unused_tensors.empty())
    std::printf("not used from the checkpoint: %s\n", join(lm.unused_tensors).c_str());
  std::printf(
      "data: %zu train / %zu eval examples, labels [%s], max_length %lld (%lld train / %lld eval truncated), "
      "%s tokens\n",
      data.train.size(), data.eval.size(), join(names).c_str(), (long long)cfg.encode.max_length,
      (long long)train_stats.truncated, (long long)eval_stats.truncated,
      format_si(double(train_stats.tokens)).c_str());
  std::fflush(stdout);

  MetricsLog metrics(rd.metrics_path());
  std::unique_ptr<Progress> progress;
  SeqClsTrainer::Callbacks cb;
  // Training throughput over the whole run (eval time excluded): each log record covers the
  // tokens since the previous one at its tokens_per_s.
  double train_tokens = 0, train_seconds = 0;
  int64_t tokens_seen = 0;
  cb.on_log = [&](const nlohmann::json& rec) {
    metrics.write(rec);
    const int64_t tok = rec["tokens"].get<int64_t>();
    const double tps = rec["tokens_per_s"].get<double>();
    if (tps > 0 && tok > tokens_seen) {
      train_tokens += double(tok - tokens_seen);
      train_seconds += double(tok - tokens_seen) / tps;
    }
    tokens_seen = tok;
    ProgressUpdate u;
    u.step = rec["step"].get<int64_t>();
    u.loss = rec["loss"].is_number() ? rec["loss"].get<double>() : NAN;
    u.lr = rec["lr"].get<double>();
    u.tokens_per_s = rec["tokens_per_s"].get<double>();
    char buf[64];
    std::snprintf(buf, sizeof buf, "epoch %.2f", rec["epoch"].get<double>());
    u.extra = buf;
    if (progress) progress->update(u);
  };
  cb.on_event = [&](const nlohmann::json& ev) {
    metrics.write(ev);
    const std::string kind = ev["event"].get<std::string>();
    auto line = [&](const std::string& s) {
      if (progress)
        progress->print_line(s);
      else
        std::printf("%s\n", s.c_str());
    };
    if (kind == "start") {
      char buf[320];
      std::snprintf(
          buf, sizeof buf,
          "effective batch %lld = per_device_batch %lld x grad_accum %lld x world_size 1; %lld steps "
          "(%lld per epoch), warmup %lld",
          (long long)ev["effective_batch"].get<int64_t>(), (long long)ev["per_device_batch"].get<int64_t>(),
          (long long)ev["grad_accum"].get<int64_t>(), (long long)ev["total_steps"].get<int64_t>(),
          (long long)ev["steps_per_epoch"].get<int64_t>(), (long long)ev["warmup_steps"].get<int64_t>());
      line(buf);
    } else if (kind == "eval") {
      line(eval_line(ev));
    } else if (kind == "best") {
      char buf[256];
      std::snprintf(buf, sizeof buf, "  new best %s %.4f -> %s", ev["metric"].get<std::string>().c_str(),
                    ev["value"].get<double>(), ev["path"].get<std::string>().c_str());
      line(buf);
    } else if (kind == "early_stop") {
      line("early stopping at step " + std::to_string(ev["step"].get<int64_t>()) + ": no improvement of " +
           ev["metric"].get<std::string>() + " in " +
           std::to_string(ev["evals_without_improvement"].get<int64_t>()) + " evaluations (best at step " +
           std::to_string(ev["best_step"].get<int64_t>()) + ")");
    } else if (kind == "skipped_step") {
      line("step " + std::to_string(ev["step"].get<int64_t>()) +
           ": non-finite loss or gradient norm, update skipped");
    }
  };
  SeqClsTrainer trainer(cfg, *model, data, rd.path(), cb);
  ProgressOptions po;
  po.label = "finetune";
  po.total_steps = trainer.total_steps();
  po.every_steps = cfg.log_every;
  progress = std::make_unique<Progress>(po);
  SeqClsSummary s = trainer.train();
  progress->finish();
  nlohmann::json results = {{"steps", s.steps},
                            {"early_stopped", s.early_stopped},
                            {"best_step", s.best_step},
                            {"best_dir", s.best_dir},
                            {"metric", cfg.early_stopping.metric},
                            {"architecture", model->architecture()},
                            {"params", lm.store->num_params()},
                            {"train_tokens_per_s", train_seconds > 0 ? train_tokens / train_seconds : 0.0}};
  if (s.has_eval) results["best_eval"] = s.best_eval;
  write_file_atomic(rd.path() + "/results.json", results.dump(2) + "\n");
  if (s.has_eval && !s.best_eval.is_null())
    std::printf("best model (step %lld, %s %.4f) on %s:\n%s", (long long)s.best_step,
                cfg.early_stopping.metric.c_str(), s.best_metric, cfg.eval_path.c_str(),
                s.best_report.format_table(names).c_str());
  std::printf("done: %lld steps%s; best model in %s\n", (long long)s.steps,
              s.early_stopped ? " (early stopped)" : "", s.best_dir.c_str());
  return 0;
}

}  // namespace

Action setup_finetune(CLI::App& app) {
  auto o = std::make_shared<FinetuneOptions>();
  app.add_option("--task", o->task, "What to fine-tune for: seq-cls (sequence classification)")
      ->required()
      ->type_name("TASK");
  add_recipe_options(app, o->recipe);
  app.add_option("--model", o->model, "Start from this HF folder (overrides model.init_from)")
      ->type_name("DIR");
  app.add_option("--out", o->out, "Run folder to create (overrides run.dir), e.g. runs/sst2")
      ->type_name("DIR");
  app.add_option("--device", o->device, "cpu | cuda | cuda:N | auto (overrides run.device)");
  set_examples(
      app,
      {"lmforge finetune --task seq-cls --config configs/finetune-sst2-tiny-mamba.toml --out runs/sst2-tiny",
       "lmforge finetune --task seq-cls -c configs/finetune-sst2-mamba-130m.toml --model hf/mamba-130m --out "
       "runs/sst2-130m",
       "lmforge finetune --task seq-cls -c configs/finetune-sst2-tiny-mamba.toml --set train.lr=3e-3 --set "
       "train.epochs=2 --out runs/x"});
  return [o]() { return run_finetune(*o); };
}

}  // namespace lmf::cli
