#include "lmforge/train/seq_cls_trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "lmforge/autograd/tape.h"
#include "lmforge/core/device_memory.h"
#include "lmforge/io/atomic_file.h"
#include "lmforge/io/hf_params.h"
#include "lmforge/ops/cross_entropy.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/train/grad_clip.h"

namespace lmf {

namespace fs = std::filesystem;

namespace {
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double metric_of(const ClassifierEval& e, const std::string& metric) {
  if (metric == "loss") return e.loss;
  if (metric == "macro_f1") return e.report.macro_f1;
  return e.report.accuracy;
}
}  // namespace

void export_classifier(SequenceClassifier& model, const std::string& dir,
                       const std::vector<std::string>& extra_files, const nlohmann::json& info) {
  const fs::path final_dir(dir);
  const fs::path tmp = final_dir.string() + ".tmp-" + std::to_string(::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  save_hf_params(model.params(), tmp.string(), model.hf_config(), DType::f32, model.hf_skip_on_save());
  for (const auto& f : extra_files) write_file_atomic((tmp / fs::path(f).filename()).string(), read_file(f));
  write_file_atomic((tmp / "lmforge_finetune.json").string(), info.dump(2) + "\n");
  // Swap it in: the old folder (if any) moves aside first, so a crash leaves one complete copy.
  if (fs::exists(final_dir)) {
    const fs::path old = final_dir.string() + ".old-" + std::to_string(::getpid());
    fs::remove_all(old);
    fs::rename(final_dir, old);
    fs::rename(tmp, final_dir);
    fs::remove_all(old);
  } else {
    fs::rename(tmp, final_dir);
  }
}

SeqClsTrainer::SeqClsTrainer(const FinetuneConfig& cfg, SequenceClassifier& model, const SeqClsData& data,
                             std::string run_dir, Callbacks cb)
    : cfg_(cfg), model_(model), data_(data), run_dir_(std::move(run_dir)), cb_(std::move(cb)) {
  if (data_.train.empty()) fail("finetune: no training examples");
  const int64_t C = model_.num_labels();
  if (static_cast<int64_t>(data_.label_names.size()) != C)
    fail("finetune: ", data_.label_names.size(), " label names for a model with ", C, " labels");
  if (static_cast<int64_t>(data_.class_weights.size()) != C)
    fail("finetune: ", data_.class_weights.size(), " class weights for ", C, " labels");
  const int64_t n = static_cast<int64_t>(data_.train.size());
  const int64_t batches = (n + cfg_.per_device_batch - 1) / cfg_.per_device_batch;
  steps_per_epoch_ = (batches + cfg_.grad_accum - 1) / cfg_.grad_accum;
  total_steps_ = cfg_.max_steps > 0 ? cfg_.max_steps : cfg_.epochs * steps_per_epoch_;
  schedule_ = resolve(finetune_schedule(cfg_, total_steps_));
  ParamStore& ps = model_.params();
  std::vector<AdamWGroup> groups;
  for (const auto& r : ps.decay_ranges())
    groups.push_back({r.begin, r.end, r.weight_decay ? cfg_.adamw.weight_decay : 0.0, 1.0});
  opt_ = std::make_unique<AdamW>(cfg_.adamw, ps.num_trainable(), ps.device(), groups);
  dropout_gen_ = Generator{cfg_.seed * 0x9E3779B97F4A7C15ull + 0xD1B54A32D192ED03ull, 0};
}

SeqClsTrainer::~SeqClsTrainer() = default;

double SeqClsTrainer::run_step(ClassificationBatcher& batcher, int64_t first, int64_t n_micro,
                               int64_t* tokens) {
  ParamStore& ps = model_.params();
  const Device dev = ps.device();
  bool weighted = false;
  for (double w : data_.class_weights) weighted = weighted || w != 1.0;
  ops::CrossEntropyOptions opt;
  opt.divide_by_weight_sum = weighted;
  double loss = 0;
  for (int64_t m = first; m < first + n_micro; m++) {
    ClassificationBatch b = batcher.batch(m);
    *tokens += b.num_tokens;
    ForwardOptions fo;
    fo.training = cfg_.dropout;
    fo.gen = &dropout_gen_;
    fo.recompute = cfg_.recompute;
    Tensor logits = model_.classify(b.tokens, fo);
    const int64_t B = static_cast<int64_t>(b.labels.size());
    Tensor targets = Tensor::from_vector<int32_t>(b.labels, {B}, dev);
    Tensor weights;
    if (weighted) {
      std::vector<float> w(static_cast<size_t>(B));
      for (int64_t i = 0; i < B; i++) w[size_t(i)] = float(data_.class_weights[size_t(b.labels[size_t(i)])]);
      weights = Tensor::from_vector<float>(w, {B}, dev);
    }
    auto ce = ops::cross_entropy_logits(logits, targets, weights, opt);
    loss += ce.loss.item() / double(n_micro);
    autograd::backward(n_micro == 1 ? ce.loss : ops::scale(ce.loss, 1.f / float(n_micro)));
  }
  return loss;
}

ClassifierEval SeqClsTrainer::evaluate() {
  return evaluate_classifier(model_, data_.eval, cfg_.eval_batch, data_.pad_id, data_.class_weights);
}

nlohmann::json SeqClsTrainer::eval_record(const ClassifierEval& e) const {
  nlohmann::json j = e.report.to_json(data_.label_names);
  j["event"] = "eval";
  j["step"] = step_;
  j["epoch"] = double(step_) / double(steps_per_epoch_);
  j["loss"] = e.loss;
  j["seconds"] = e.seconds;
  j["tokens_per_s"] = e.seconds > 0 ? double(e.tokens) / e.seconds : 0.0;
  return j;
}

void SeqClsTrainer::export_model(const std::string& dir, const nlohmann::json& ev) {
  nlohmann::json info = {{"task", "seq-cls"},
                         {"max_length", cfg_.encode.max_length},
                         {"truncation", truncation_name(cfg_.encode.truncation)},
                         {"eval_batch", cfg_.eval_batch},
                         {"text_column", cfg_.read.text_column},
                         {"text_pair_column", cfg_.read.text_pair_column},
                         {"label_column", cfg_.read.label_column},
                         {"label_names", data_.label_names},
                         {"pad_id", data_.pad_id},
                         {"step", step_},
                         {"metric", cfg_.early_stopping.metric}};
  if (!ev.is_null()) info["eval"] = ev;
  export_classifier(model_, dir, data_.tokenizer_files, info);
}

SeqClsSummary SeqClsTrainer::train() {
  ParamStore& ps = model_.params();
  const int64_t T = ps.num_trainable();
  const bool has_eval = !data_.eval.empty();
  ClassificationBatcher batcher(data_.train, cfg_.per_device_batch, data_.pad_id, true, cfg_.seed,
                                cfg_.group_by_length);
  EarlyStopper stopper(cfg_.early_stopping);
  SeqClsSummary sum;
  sum.has_eval = has_eval;
  sum.best_dir = run_dir_ + "/best";
  if (cb_.on_event)
    cb_.on_event({{"event", "start"},
                  {"train_examples", data_.train.size()},
                  {"eval_examples", data_.eval.size()},
                  {"labels", data_.label_names},
                  {"class_weights", data_.class_weights},
                  {"per_device_batch", cfg_.per_device_batch},
                  {"grad_accum", cfg_.grad_accum},
                  {"world_size", 1},
                  {"effective_batch", effective_batch()},
                  {"epochs", cfg_.max_steps > 0 ? double(total_steps_) / double(steps_per_epoch_)
                                                : double(cfg_.epochs)},
                  {"steps_per_epoch", steps_per_epoch_},
                  {"total_steps", total_steps_},
                  {"warmup_steps", schedule_.warmup_steps},
                  {"trainable_params", T}});
  auto t_log = Clock::now();
  const auto t_start = Clock::now();
  int64_t tokens = 0, tokens_at_log = 0, examples = 0, examples_at_log = 0;
  double loss_acc = 0;
  int64_t loss_n = 0;
  bool stop = false;
  for (int64_t epoch = 0; step_ < total_steps_ && !stop; epoch++) {
    batcher.start_epoch(epoch);
    sum.epochs_started++;
    const int64_t nb = batcher.num_batches();
    for (int64_t s = 0; s < steps_per_epoch_ && step_ < total_steps_ && !stop; s++) {
      const int64_t first = s * cfg_.grad_accum, n_micro = std::min(cfg_.grad_accum, nb - first);
      ps.zero_grad();
      const double loss = run_step(batcher, first, n_micro, &tokens);
      examples += std::min<int64_t>(n_micro * cfg_.per_device_batch,
                                    static_cast<int64_t>(data_.train.size()) - first * cfg_.per_device_batch);
      const double norm = grad_norm(ps.flat_grads().slice(0, 0, std::max<int64_t>(T, 1)));
      const double lr = lr_at(schedule_, step_);
      if (!std::isfinite(norm) || !std::isfinite(loss)) {
        if (cb_.on_event)
          cb_.on_event({{"event", "skipped_step"}, {"step", step_ + 1}, {"loss", loss}, {"grad_norm", norm}});
      } else if (T > 0) {
        const double factor = cfg_.clip > 0 ? clip_factor(norm, cfg_.clip) : 1.0;
        Tensor compute = ps.flat_compute().defined() ? ps.flat_compute().slice(0, 0, T) : Tensor();
        opt_->step(ps.flat_master().slice(0, 0, T), ps.flat_grads().slice(0, 0, T), compute, lr, factor);
        loss_acc += loss;
        loss_n++;
      }
      step_++;
      const bool last = step_ == total_steps_;
      if (step_ % cfg_.log_every == 0 || last) {
        synchronize(ps.device());
        const double dt = std::max(seconds_since(t_log), 1e-9);
        nlohmann::json rec = {{"step", step_},
                              {"epoch", double(step_) / double(steps_per_epoch_)},
                              {"tokens", tokens},
                              {"loss", loss_n ? loss_acc / double(loss_n) : NAN},
                              {"lr", lr},
                              {"grad_norm", norm},
                              {"tokens_per_s", double(tokens - tokens_at_log) / dt},
                              {"examples_per_s", double(examples - examples_at_log) / dt}};
        if (ps.device().is_cuda())
          rec["mem_gib"] = double(memory_stats(ps.device()).peak_bytes) / double(1ull << 30);
        if (cb_.on_log) cb_.on_log(rec);
        t_log = Clock::now();
        tokens_at_log = tokens;
        examples_at_log = examples;
        loss_acc = 0;
        loss_n = 0;
      }
      const bool epoch_end = s == steps_per_epoch_ - 1;
      const bool due = cfg_.eval_per_epoch ? epoch_end : step_ % cfg_.eval_every_steps == 0;
      if (has_eval && (due || last)) {
        ClassifierEval e = evaluate();
        nlohmann::json ev = eval_record(e);
        if (cb_.on_event) cb_.on_event(ev);
        EarlyStopper::Decision d = stopper.update(metric_of(e, cfg_.early_stopping.metric));
        if (d.improved) {
          ev.erase("event");
          export_model(sum.best_dir, ev);
          sum.best_eval = ev;
          sum.best_report = e.report;
          sum.best_metric = stopper.best();
          sum.best_step = step_;
          if (cb_.on_event)
            cb_.on_event({{"event", "best"},
                          {"step", step_},
                          {"metric", cfg_.early_stopping.metric},
                          {"value", stopper.best()},
                          {"path", sum.best_dir}});
        }
        if (d.stop) {
          stop = true;
          sum.early_stopped = true;
          if (cb_.on_event)
            cb_.on_event({{"event", "early_stop"},
                          {"step", step_},
                          {"metric", cfg_.early_stopping.metric},
                          {"best", stopper.best()},
                          {"best_step", sum.best_step},
                          {"evals_without_improvement", stopper.evals_without_improvement()}});
        }
      }
    }
  }
  if (!has_eval) {
    export_model(sum.best_dir, nlohmann::json());
    sum.best_step = step_;
  } else if (!stopper.has_best()) {
    // Every evaluation was NaN: keep the final model so the run still has an output.
    export_model(sum.best_dir, nlohmann::json());
    sum.best_step = step_;
  }
  sum.steps = step_;
  if (cb_.on_event)
    cb_.on_event({{"event", "done"},
                  {"step", step_},
                  {"seconds", seconds_since(t_start)},
                  {"tokens", tokens},
                  {"early_stopped", sum.early_stopped},
                  {"best_step", sum.best_step},
                  {"best_dir", sum.best_dir}});
  return sum;
}

}  // namespace lmf
