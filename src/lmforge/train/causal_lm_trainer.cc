#include "lmforge/train/causal_lm_trainer.h"

#include <cmath>
#include <filesystem>

#include "lmforge/autograd/tape.h"
#include "lmforge/ops/cross_entropy.h"
#include "lmforge/ops/elementwise.h"

namespace lmf {

namespace {

Tensor positional_weights(const Tensor& positions, double scale, Device dev) {
  auto pos = positions.to_float_vector();
  std::vector<float> w(pos.size());
  for (size_t i = 0; i < pos.size(); i++) w[i] = float(std::tanh(double(pos[i]) / scale));
  return Tensor::from_vector<float>(w, positions.shape(), dev);
}

// targets with every row outside [from, to) set to -100 (ignore).
Tensor mask_targets(const Tensor& targets, const Tensor& positions, int64_t from, int64_t to) {
  auto t = targets.to_float_vector(), p = positions.to_float_vector();
  std::vector<int32_t> out(t.size());
  for (size_t i = 0; i < t.size(); i++)
    out[i] = (p[i] >= from && (to < 0 || p[i] < to)) ? int32_t(t[i]) : -100;
  return Tensor::from_vector<int32_t>(out, targets.shape());
}

Tensor hidden_for_head(const Tensor& h, const Tensor& W) {
  return ops::cast(h.reshape({-1, h.size(-1)}), W.dtype());  // HF: lm_head(h.to(lm_head.dtype))
}
}  // namespace

nlohmann::json EvalResult::to_json() const {
  nlohmann::json j = {{"loss", loss}, {"perplexity", perplexity}, {"tokens", tokens},
                      {"top1", top1}, {"top3", top3}, {"top10", top10}};
  j["by_position"] = nlohmann::json::array();
  for (const auto& b : buckets)
    j["by_position"].push_back({{"from", b.from}, {"to", b.to}, {"tokens", b.tokens}, {"loss", b.loss},
                                {"top1", b.top1}, {"top3", b.top3}, {"top10", b.top10}});
  return j;
}

EvalResult evaluate_causal_lm(CausalLM& model, PackedDataset& data, int64_t micro_batch, int64_t max_batches,
                              const std::vector<int64_t>& buckets_from) {
  autograd::NoGradGuard ng;
  const Device dev = model.params().device();
  const int64_t windows = data.total_windows();
  int64_t batches = (windows + micro_batch - 1) / micro_batch;
  if (max_batches > 0) batches = std::min(batches, max_batches);
  struct Acc {
    double loss = 0;
    int64_t n = 0, hits[3] = {0, 0, 0};
  };
  Acc all;
  std::vector<Acc> per(buckets_from.size());
  ops::CrossEntropyOptions opt;
  opt.reduction = ops::CrossEntropyReduction::sum;
  opt.want_topk = true;
  int64_t done = 0;
  for (int64_t b = 0; b < batches; b++) {
    const int64_t rows = std::min(micro_batch, windows - done);
    if (rows <= 0) break;
    PackedBatch batch = data.next(rows);
    done += rows;
    Tensor h = model.forward_hidden(batch.input_ids.to(dev), batch.seq_idx.to(dev), false);
    Tensor W = model.lm_head_weight();
    Tensor hh = hidden_for_head(h, W);
    auto add = [&](Acc& a, const Tensor& targets) {
      auto r = ops::cross_entropy(hh, W, targets.to(dev).reshape({-1}), Tensor(), opt);
      a.loss += r.sum_loss.item();
      a.n += r.count;
      for (int k = 0; k < 3; k++) a.hits[k] += r.topk_hits[size_t(k)];
    };
    add(all, batch.targets);
    if (per.size() > 1)
      for (size_t k = 0; k < per.size(); k++) {
        int64_t to = k + 1 < buckets_from.size() ? buckets_from[k + 1] : -1;
        add(per[k], mask_targets(batch.targets, batch.positions, buckets_from[k], to));
      }
  }
  auto div = [](double a, int64_t n) { return n ? a / double(n) : 0.0; };
  EvalResult r;
  r.tokens = all.n;
  r.loss = div(all.loss, all.n);
  r.perplexity = std::exp(r.loss);
  r.top1 = div(double(all.hits[0]), all.n);
  r.top3 = div(double(all.hits[1]), all.n);
  r.top10 = div(double(all.hits[2]), all.n);
  if (per.size() > 1)
    for (size_t k = 0; k < per.size(); k++) {
      EvalResult::Bucket bk;
      bk.from = buckets_from[k];
      bk.to = k + 1 < buckets_from.size() ? buckets_from[k + 1] : -1;
      bk.tokens = per[k].n;
      bk.loss = div(per[k].loss, per[k].n);
      bk.top1 = div(double(per[k].hits[0]), per[k].n);
      bk.top3 = div(double(per[k].hits[1]), per[k].n);
      bk.top10 = div(double(per[k].hits[2]), per[k].n);
      r.buckets.push_back(bk);
    }
  return r;
}

CausalLMTrainer::CausalLMTrainer(PretrainConfig cfg, CausalLM& model, Callbacks cb)
    : cfg_(std::move(cfg)), model_(model), cb_(std::move(cb)), guard_(cfg_.spike) {
  if (cfg_.phases.empty()) fail("pretrain: no training data given");
  if (cfg_.phases.front().start_step != 0) fail("pretrain: the first data phase must start at step 0");
  if (cfg_.micro_batch < 1 || cfg_.grad_accum < 1) fail("pretrain: micro_batch and grad_accum must be >= 1");
  if (cfg_.max_steps < 1) fail("pretrain: max_steps must be >= 1, got ", cfg_.max_steps);
  ModelCheckpointing io;
  io.hf_config = [this] { return model_.hf_config(); };
  io.skip_on_save = model_.hf_skip_on_save();
  io.optional_on_load = model_.hf_optional_on_load();
  io.renames_on_load = model_.hf_renames_on_load();
  core_ = std::make_unique<OptimizerCore>(cfg_, model_.params(), std::move(io));
  std::filesystem::create_directories(cfg_.run_dir);
}

CausalLMTrainer::~CausalLMTrainer() = default;

void CausalLMTrainer::ensure_phase_data() {
  size_t k = phase_at(cfg_.phases, step_);
  if (k == data_phase_ && data_) return;
  if (data_) phase_cursors_[cfg_.phases[data_phase_].name] = data_->state();
  const DataPhase& ph = cfg_.phases[k];
  data_ = std::make_unique<PackedDataset>(ph.sources, cfg_.seq_len, cfg_.seed + 7919 * k, cfg_.expect_vocab_size,
                                          cfg_.expect_tokenizer_fingerprint);
  if (phase_cursors_.contains(ph.name)) data_->load_state(phase_cursors_[ph.name]);
  if (data_phase_ != size_t(-1) && cb_.on_event)
    cb_.on_event({{"event", "phase"}, {"step", step_}, {"phase", ph.name}});
  data_phase_ = k;
}

CausalLMTrainer::StepResult CausalLMTrainer::run_micro_batches(int64_t n_micro) {
  StepResult res;
  const Device dev = model_.params().device();
  ops::CrossEntropyOptions opt;
  for (int64_t m = 0; m < n_micro; m++) {
    const int64_t first_sample = data_->state()["sample"].get<int64_t>();
    PackedBatch batch = data_->next(cfg_.micro_batch);
    bool poisoned = false;
    for (int64_t s : cfg_.debug_poison_samples)
      poisoned = poisoned || (s >= first_sample && s < first_sample + cfg_.micro_batch);
    res.tokens += batch.num_tokens();
    if (poisoned) {
      res.poisoned = true;
      continue;
    }
    Tensor weights;
    if (cfg_.positional_weighting) weights = positional_weights(batch.positions, cfg_.positional_scale, dev);
    Tensor h = model_.forward_hidden(batch.input_ids.to(dev), batch.seq_idx.to(dev), cfg_.recompute);
    Tensor W = model_.lm_head_weight();
    auto ce = ops::cross_entropy(hidden_for_head(h, W), W, batch.targets.to(dev).reshape({-1}), weights, opt);
    res.loss += ce.loss.item() / double(n_micro);
    autograd::backward(n_micro == 1 ? ce.loss : ops::scale(ce.loss, 1.f / float(n_micro)));
  }
  if (res.poisoned) res.loss = NAN;
  return res;
}

void CausalLMTrainer::train() {
  ParamStore& ps = model_.params();
  if (last_checkpoint_.empty()) last_checkpoint_ = save_checkpoint();  // rollback target
  ThroughputMeter meter(tokens_);
  double loss_acc = 0;
  int64_t loss_n = 0;
  while (step_ < cfg_.max_steps) {
    ensure_phase_data();
    const int64_t tokens_per_micro = cfg_.micro_batch * cfg_.seq_len;
    int64_t n_micro = cfg_.grad_accum;
    if (cfg_.rampup) n_micro = std::max<int64_t>(1, tokens_per_step_at(*cfg_.rampup, tokens_) / tokens_per_micro);
    ps.zero_grad();
    StepResult r = run_micro_batches(n_micro);
    std::string spike = guard_.check(r.loss);
    if (!spike.empty()) {
      rollback(spike, data_->state());
      continue;
    }
    const double lr = lr_at(cfg_.schedule, step_);
    const double norm = core_->step(lr);
    step_++;
    tokens_ += r.tokens;
    loss_acc += r.loss;
    loss_n++;
    if (step_ % cfg_.log_every == 0 || step_ == cfg_.max_steps) {
      nlohmann::json rec = {{"step", step_}, {"tokens", tokens_}, {"loss", loss_acc / double(loss_n)},
                            {"lr", lr}, {"grad_norm", norm},
                            {"phase", cfg_.phases[data_phase_].name}, {"micro_batches", n_micro}};
      meter.fill(rec, tokens_, ps, model_.train_flops_per_token(cfg_.seq_len));
      if (cb_.on_log) cb_.on_log(rec);
      loss_acc = 0;
      loss_n = 0;
    }
    const bool last = step_ == cfg_.max_steps;
    if (!cfg_.eval_sources.empty() && ((cfg_.eval_every > 0 && step_ % cfg_.eval_every == 0) || last)) {
      EvalResult e = evaluate();
      nlohmann::json ev = e.to_json();
      ev["event"] = "eval";
      ev["step"] = step_;
      if (cb_.on_event) cb_.on_event(ev);
    }
    if ((cfg_.checkpoint_every > 0 && step_ % cfg_.checkpoint_every == 0) || last) {
      last_checkpoint_ = save_checkpoint();
      if (cb_.on_event) cb_.on_event({{"event", "checkpoint"}, {"step", step_}, {"path", last_checkpoint_}});
    }
  }
}

EvalResult CausalLMTrainer::evaluate() {
  PackedDataset ev(cfg_.eval_sources, cfg_.seq_len, cfg_.seed, cfg_.expect_vocab_size,
                   cfg_.expect_tokenizer_fingerprint);
  ev.set_shuffle(false);
  return evaluate_causal_lm(model_, ev, cfg_.micro_batch, cfg_.eval_batches, cfg_.eval_position_buckets);
}

nlohmann::json CausalLMTrainer::trainer_state() const {
  nlohmann::json s;
  s["step"] = step_;
  s["tokens"] = tokens_;
  s["rollbacks"] = rollbacks_;
  s["seed"] = cfg_.seed;
  s["data_phase"] = data_phase_ == size_t(-1) ? std::string() : cfg_.phases[data_phase_].name;
  nlohmann::json cursors = phase_cursors_;
  if (data_) cursors[cfg_.phases[data_phase_].name] = data_->state();
  s["data_cursors"] = cursors;
  s["spike_guard"] = guard_.state();
  s["max_steps"] = cfg_.max_steps;
  return s;
}

void CausalLMTrainer::load_trainer_state(const nlohmann::json& s) {
  try {
    step_ = s.at("step").get<int64_t>();
    tokens_ = s.at("tokens").get<int64_t>();
    rollbacks_ = s.value("rollbacks", int64_t(0));
    phase_cursors_ = s.at("data_cursors");
    guard_.load_state(s.at("spike_guard"));
  } catch (const nlohmann::json::exception& e) {
    fail("trainer_state.json: ", e.what());
  }
  data_.reset();
  data_phase_ = size_t(-1);
}

std::string CausalLMTrainer::save_checkpoint() { return core_->save(step_, trainer_state()); }

void CausalLMTrainer::resume_from(const std::string& ckpt) {
  load_trainer_state(core_->load(ckpt));
  last_checkpoint_ = ckpt;
}

void CausalLMTrainer::rollback(const std::string& reason, const nlohmann::json& cursor_after) {
  if (++rollbacks_ > cfg_.spike.max_rollbacks)
    fail("pretrain: loss spike at step ", step_, " (", reason, ") and ", cfg_.spike.max_rollbacks,
         " rollbacks already made; giving up");
  const std::string phase = cfg_.phases[data_phase_].name;
  const int64_t bad_step = step_;
  const int64_t rollbacks = rollbacks_;
  resume_from(last_checkpoint_);
  rollbacks_ = rollbacks;
  // Skip the data seen since the checkpoint, the offending batches included (PaLM's remedy).
  phase_cursors_[phase] = cursor_after;
  if (cb_.on_event)
    cb_.on_event({{"event", "spike_rollback"}, {"step", bad_step}, {"reason", reason},
                  {"restored_step", step_}, {"checkpoint", last_checkpoint_}});
}

}  // namespace lmf
