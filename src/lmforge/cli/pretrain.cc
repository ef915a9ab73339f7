// `lmforge pretrain`: pre-training from a TOML recipe (configs/*.toml): causal LM (Mamba, ...) or,
// with train.objective = "mlm", masked LM (BERT / ModernBERT encoders, the mmBERT recipe).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "lmforge/cli/common.h"
#include "lmforge/cli/registry.h"
#include "lmforge/core/device_memory.h"
#include "lmforge/data/packed_dataset.h"
#include "lmforge/models/config_json.h"
#include "lmforge/models/mamba.h"
#include "lmforge/models/registry.h"
#include "lmforge/models/task_registry.h"
#include "lmforge/report/format.h"
#include "lmforge/report/metrics_log.h"
#include "lmforge/report/progress.h"
#include "lmforge/report/run_dir.h"
#include "lmforge/tokenize/tokenizer.h"
#include "lmforge/train/causal_lm_trainer.h"
#include "lmforge/train/checkpoint.h"
#include "lmforge/train/mlm_trainer.h"
#include "lmforge/train/pretrain_recipe.h"

namespace lmf::cli {

namespace {

struct PretrainOptions {
  RecipeArgs recipe;
  bool resume = false;
  std::string init_from;
  std::string device;
};

DType precision_of(const std::string& p, Device dev, const Recipe& r) {
  if (p == "auto") return dev.is_cuda() ? DType::bf16 : DType::f32;
  if (p == "f32" || p == "fp32") return DType::f32;
  if (p == "bf16") {
    if (dev.is_cpu()) r.fail_at("run.precision", "bf16 compute needs a CUDA device; use f32 on cpu");
    return DType::bf16;
  }
  r.fail_at("run.precision", "expected auto, f32 or bf16, got '" + p + "'");
}

std::string eval_line(const nlohmann::json& e) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "eval @ step %lld: loss %.4f | ppl %.2f | top1 %.3f | top3 %.3f | top10 %.3f | %lld tokens",
                (long long)e["step"].get<int64_t>(), e["loss"].get<double>(), e["perplexity"].get<double>(),
                e["top1"].get<double>(), e["top3"].get<double>(), e["top10"].get<double>(),
                (long long)e["tokens"].get<int64_t>());
  std::string s = buf;
  for (const auto& b : e["by_position"]) {
    std::snprintf(buf, sizeof buf, "\n    positions [%lld, %s): loss %.4f | top1 %.3f | top10 %.3f", (long long)b["from"].get<int64_t>(),
                  b["to"].get<int64_t>() < 0 ? "inf" : std::to_string(b["to"].get<int64_t>()).c_str(),
                  b["loss"].get<double>(), b["top1"].get<double>(), b["top10"].get<double>());
    s += buf;
  }
  return s;
}

std::string mlm_eval_line(const nlohmann::json& e) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "eval @ step %lld: MLM loss %.4f | accuracy %.3f | %lld masked tokens",
                (long long)e["step"].get<int64_t>(), e["loss"].get<double>(), e["accuracy"].get<double>(),
                (long long)e["tokens"].get<int64_t>());
  std::string s = buf;
  for (const auto& l : e["languages"]) {
    std::snprintf(buf, sizeof buf, "\n    %-10s loss %.4f | accuracy %.3f | %lld masked tokens",
                  l["language"].get<std::string>().c_str(), l["loss"].get<double>(), l["accuracy"].get<double>(),
                  (long long)l["tokens"].get<int64_t>());
    s += buf;
  }
  return s;
}

// The run folder, metrics.jsonl, progress and event lines around either trainer, then train.
template <class Trainer, class Make>
void run_trainer(const PretrainOptions& o, const Recipe& recipe, const PretrainConfig& cfg, const std::string& arch,
                 const ParamStore& store, Make make_trainer) {
  const std::string run_dir = cfg.run_dir;
  RunDir rd = RunDir::open(run_dir, o.resume ? RunDir::Mode::resume : RunDir::Mode::fresh);
  if (!o.resume) recipe.write_resolved(rd.config_path());

  std::printf("lmforge pretrain: %s, %.2fM parameters, device %s, compute %s, run %s\n", arch.c_str(),
              double(store.num_params()) / 1e6, cfg.device.str().c_str(), std::string(dtype_name(cfg.compute_dtype)).c_str(),
              run_dir.c_str());
  std::fflush(stdout);

  // Opened after a resume has cut metrics.jsonl back to the checkpoint's step (the cut rewrites
  // the file: a log opened before it would append to the replaced one).
  std::unique_ptr<MetricsLog> metrics;
  ProgressOptions po;
  po.label = "pretrain";
  po.total_steps = cfg.max_steps;
  po.every_steps = cfg.log_every;
  Progress progress(po);
  TrainerCallbacks cb;
  cb.on_log = [&](const nlohmann::json& rec) {
    metrics->write(rec);
    ProgressUpdate u;
    u.step = rec["step"].get<int64_t>();
    u.loss = rec["loss"].get<double>();
    u.lr = rec["lr"].get<double>();
    u.tokens_per_s = rec["tokens_per_s"].get<double>();
    if (rec.contains("mem_gib")) u.extra = format_bytes(rec["mem_gib"].get<double>() * double(1ull << 30));
    progress.update(u);
  };
  const bool mlm = cfg.objective == PretrainObjective::mlm;
  cb.on_event = [&](const nlohmann::json& ev) {
    metrics->write(ev);
    const std::string kind = ev["event"].get<std::string>();
    if (kind == "eval") progress.print_line(mlm ? mlm_eval_line(ev) : eval_line(ev));
    else if (kind == "spike_rollback")
      progress.print_line("loss spike at step " + std::to_string(ev["step"].get<int64_t>()) + " (" +
                          ev["reason"].get<std::string>() + "): rolled back to step " +
                          std::to_string(ev["restored_step"].get<int64_t>()) + ", skipping the offending data");
    else if (kind == "phase") progress.print_line("data phase '" + ev["phase"].get<std::string>() + "' from step " + std::to_string(ev["step"].get<int64_t>()));
    else if (kind == "checkpoint") progress.print_line("checkpoint: " + ev["path"].get<std::string>());
  };
  std::unique_ptr<Trainer> trainer = make_trainer(cb);
  if (o.resume) {
    std::string ck = latest_run_checkpoint(run_dir);
    if (ck.empty()) fail(run_dir, ": no checkpoint to resume from");
    trainer->resume_from(ck);
    MetricsLog::truncate_after_step(rd.metrics_path(), trainer->step());
    progress.print_line("resumed from " + ck + " at step " + std::to_string(trainer->step()));
  }
  metrics = std::make_unique<MetricsLog>(rd.metrics_path());
  trainer->train();
  progress.finish();
  std::printf("done: %lld steps, %lld tokens, %lld spike rollbacks; model in %s\n", (long long)trainer->step(),
              (long long)trainer->tokens_seen(), (long long)trainer->rollbacks(), latest_run_checkpoint(run_dir).c_str());
}

// Masked-LM pre-training: a task model with the masked_lm head (fresh from config.json, or a
// HF folder's weights), the tokenizer's special tokens, the MLM trainer.
int run_mlm_pretrain(const PretrainOptions& o, const Recipe& recipe, PretrainRecipe& pr, const Tokenizer& tok) {
  const PretrainConfig& cfg = pr.config;
  const std::string init = !o.init_from.empty() ? o.init_from : pr.init_from;
  TaskModelRequest req;
  req.head = TaskHead::masked_lm;
  std::unique_ptr<ParamStore> store;
  std::unique_ptr<HfModel> model;
  if (!init.empty()) {
    LoadedTaskModel l = load_task_model(init, cfg.device, cfg.compute_dtype, req, cfg.seed);
    store = std::move(l.store);
    model = std::move(l.model);
  } else {
    nlohmann::json cj = config_json::read_json_file(pr.model_config);
    store = std::make_unique<ParamStore>(cfg.device, cfg.compute_dtype);
    model = make_task_model(cj, pr.model_config, *store, req);
    store->finalize();
    Generator g{cfg.seed, 1000};
    model->init_weights(g);
    store->sync_compute();
  }
  auto* mlm = dynamic_cast<MaskedLM*>(model.get());
  if (!mlm) fail(init.empty() ? pr.model_config : init, ": ", model->architecture(), " is not a masked LM");
  MlmSpecialTokens special = mlm_special_tokens(tok, cfg.mlm.mask_token);
  // Every shard opens and matches the tokenizer before anything is written.
  MlmTrainer::check_data(cfg, special);
  run_trainer<MlmTrainer>(o, recipe, cfg, model->architecture(), *store, [&](const TrainerCallbacks& cb) {
    return std::make_unique<MlmTrainer>(cfg, *mlm, special, cb);
  });
  return 0;
}

int run_pretrain(const PretrainOptions& o) {
  Recipe recipe = load_recipe(o.recipe);
  PretrainRecipe pr = parse_pretrain_recipe(recipe);
  const std::string dev_str = o.device.empty() ? pr.device : o.device;
  Device dev = parse_device(dev_str);
  DType compute = precision_of(pr.precision, dev, recipe);
  pr.config.device = dev;
  pr.config.compute_dtype = compute;
  warn_unused_keys(recipe);

  Tokenizer tok = Tokenizer::from_file(pr.tokenizer);
  pr.config.expect_vocab_size = uint64_t(tok.vocab_size());
  pr.config.expect_tokenizer_fingerprint = tok.fingerprint();
  if (pr.config.objective == PretrainObjective::mlm) return run_mlm_pretrain(o, recipe, pr, tok);

  // The model: a fresh one from config.json, or the weights of a HF folder (--init-from /
  // model.init_from: WSD's "continue any pre-decay checkpoint with a new schedule").
  const std::string init = !o.init_from.empty() ? o.init_from : pr.init_from;
  std::unique_ptr<ParamStore> store;
  std::unique_ptr<CausalLM> model;
  if (!init.empty()) {
    LoadedCausalLM l = load_causal_lm(init, dev, compute);
    store = std::move(l.store);
    model = std::move(l.model);
  } else {
    nlohmann::json cj = config_json::read_json_file(pr.model_config);
    store = std::make_unique<ParamStore>(dev, compute);
    model = make_causal_lm(cj, pr.model_config, *store);
    store->finalize();
  }
  if (model->vocab_size() < tok.vocab_size())
    fail(pr.tokenizer, ": the tokenizer has ", tok.vocab_size(), " tokens but the model's vocab_size is ",
         model->vocab_size());
  if (init.empty()) {
    if (auto* m = dynamic_cast<MambaModel*>(model.get())) {
      Generator g{pr.config.seed, 1000};
      m->init_weights(g);
    }
  }

  // Every shard opens and matches the tokenizer before anything is written, so a failed start
  // leaves no run folder behind.
  for (const auto& ph : pr.config.phases)
    PackedDataset(ph.sources, pr.config.seq_len, pr.config.seed, pr.config.expect_vocab_size,
                  pr.config.expect_tokenizer_fingerprint);
  if (!pr.config.eval_sources.empty())
    PackedDataset(pr.config.eval_sources, pr.config.seq_len, pr.config.seed, pr.config.expect_vocab_size,
                  pr.config.expect_tokenizer_fingerprint);
  run_trainer<CausalLMTrainer>(o, recipe, pr.config, model->architecture(), *store, [&](const TrainerCallbacks& cb) {
    return std::make_unique<CausalLMTrainer>(pr.config, *model, cb);
  });
  return 0;
}

}  // namespace

Action setup_pretrain(CLI::App& app) {
  auto o = std::make_shared<PretrainOptions>();
  add_recipe_options(app, o->recipe);
  app.add_flag("--resume", o->resume, "Continue the run in [run] dir from its latest checkpoint (exactly)");
  app.add_option("--init-from", o->init_from, "Start from the weights of a HF folder or checkpoint (new optimizer and schedule)");
  app.add_option("--device", o->device, "cpu | cuda | cuda:N | auto (overrides [run] device)");
  set_examples(app, {"lmforge pretrain --config configs/tiny-mamba.toml",
                     "lmforge pretrain -c configs/tiny-mamba.toml --set train.max_steps=50 --set run.dir=runs/quick",
                     "lmforge pretrain -c configs/tiny-mamba.toml --resume",
                     "lmforge pretrain -c configs/mambaoutai-decay.toml --init-from runs/m/checkpoints/step_008000",
                     "lmforge pretrain -c configs/tiny-mlm.toml   (train.objective = \"mlm\": BERT / ModernBERT)"});
  return [o]() { return run_pretrain(*o); };
}

}  // namespace lmf::cli
