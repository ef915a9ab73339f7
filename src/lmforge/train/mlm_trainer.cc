#include "lmforge/train/mlm_trainer.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "lmforge/autograd/tape.h"
#include "lmforge/ops/cross_entropy.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/ops/gather_rows.h"
#include "lmforge/train/checkpoint.h"

namespace lmf {

namespace {

constexpr uint64_t kDropoutStream = 0x64726f706f75746dull;   // "dropoutm"
constexpr uint64_t kEvalMaskStream = 0x6576616c2d6d736bull;  // "eval-msk"

// The languages of every phase (each once, in order of first appearance) and the phases'
// language lists, for the sampler.
std::unique_ptr<LanguageSampler> make_sampler(const PretrainConfig& cfg, const MlmSpecialTokens& sp) {
  std::vector<LanguageShards> langs;
  std::vector<LanguagePhase> phases;
  for (const DataPhase& ph : cfg.phases) {
    LanguagePhase lp{ph.name, ph.tau, {}};
    for (const MixtureComponent& src : ph.sources) {
      lp.languages.push_back(src.name);
      auto it = std::find_if(langs.begin(), langs.end(),
                             [&](const LanguageShards& l) { return l.name == src.name; });
      if (it == langs.end())
        langs.push_back({src.name, src.shard_prefixes});
      else if (it->shard_prefixes != src.shard_prefixes)
        fail("pretrain: language '", src.name, "' lists other shards in phase '", ph.name,
             "' than before (a language keeps one data cursor across phases)");
    }
    phases.push_back(std::move(lp));
  }
  return std::make_unique<LanguageSampler>(std::move(langs), std::move(phases), sp.window_for(cfg.seq_len),
                                           cfg.seed, cfg.expect_vocab_size, cfg.expect_tokenizer_fingerprint);
}

void validate(const PretrainConfig& cfg) {
  if (cfg.objective != PretrainObjective::mlm)
    fail("pretrain: the MLM trainer needs train.objective = \"mlm\"");
  if (cfg.phases.empty()) fail("pretrain: no training data given");
  if (cfg.phases.front().start_step != 0) fail("pretrain: the first data phase must start at step 0");
  if (cfg.micro_batch < 1 || cfg.grad_accum < 1) fail("pretrain: micro_batch and grad_accum must be >= 1");
  if (cfg.max_steps < 1) fail("pretrain: max_steps must be >= 1, got ", cfg.max_steps);
  if (cfg.rampup) fail("pretrain: train.batch_rampup is not supported with objective mlm");
  for (const DataPhase& ph : cfg.phases) {
    validate_mask_rate(ph.mask_rate, ("pretrain: phase '" + ph.name + "': mask_rate").c_str());
    if (ph.sources.empty()) fail("pretrain: phase '", ph.name, "': no languages");
  }
}

// Loss (sum over the masked rows) of one batch: encode unpadded, gather the masked rows, MLM
// head transform, fused cross-entropy against the decoder weight and bias.
ops::CrossEntropyResult mlm_loss(MaskedLM& model, const MlmBatch& mb, const ForwardOptions& fo,
                                 bool want_topk) {
  const Device dev = model.params().device();
  RaggedBatch ragged = unpad(mb.batch);
  LMF_CHECK(ragged.num_tokens() == mb.num_tokens, "MLM batch layout disagrees with unpad()");
  Tensor h = model.encode(ragged, fo);
  Tensor rows = ops::gather_rows(h, to_index_tensor(mb.masked_index, dev));
  Tensor t = model.mlm_transform(rows);
  Tensor W = model.decoder_weight(), b = model.decoder_bias();
  ops::CrossEntropyOptions opt;
  opt.reduction = ops::CrossEntropyReduction::sum;
  opt.want_topk = want_topk;
  // HF: decoder(h.to(decoder.dtype)).
  return ops::cross_entropy_with_bias(ops::cast(t, W.dtype()), W, b, to_index_tensor(mb.masked_label, dev),
                                      Tensor(), opt);
}

}  // namespace

nlohmann::json MlmEvalResult::to_json() const {
  nlohmann::json j = {{"loss", loss}, {"accuracy", accuracy}, {"tokens", tokens}};
  j["languages"] = nlohmann::json::array();
  for (const auto& l : languages)
    j["languages"].push_back({{"language", l.name},
                              {"loss", l.loss},
                              {"accuracy", l.accuracy},
                              {"tokens", l.tokens},
                              {"sequences", l.sequences}});
  return j;
}

MlmEvalResult evaluate_mlm(MaskedLM& model, const std::vector<MixtureComponent>& languages,
                           const MlmSpecialTokens& special, const MlmMasker& masker, double mask_rate,
                           int64_t max_length, int64_t micro_batch, int64_t max_batches, uint64_t seed,
                           uint64_t expect_vocab, uint64_t expect_fp) {
  autograd::NoGradGuard ng;
  const int64_t window = special.window_for(max_length);
  MlmEvalResult r;
  double loss_all = 0;
  int64_t hits_all = 0;
  for (size_t li = 0; li < languages.size(); li++) {
    const MixtureComponent& lang = languages[li];
    TokenWindows w(lang.shard_prefixes, window, seed, 0, expect_vocab, expect_fp,
                   "eval language '" + lang.name + "'");
    w.set_shuffle(false);
    const int64_t n = w.num_windows();
    int64_t batches = (n + micro_batch - 1) / micro_batch;
    if (max_batches > 0) batches = std::min(batches, max_batches);
    MlmEvalResult::Language acc;
    acc.name = lang.name;
    double loss = 0;
    int64_t hits = 0;
    for (int64_t b = 0; b < batches; b++) {
      std::vector<LanguageSampler::Sequence> seqs;
      for (int64_t i = b * micro_batch; i < std::min(n, (b + 1) * micro_batch); i++)
        seqs.push_back({li, uint64_t(i), w.window_tokens(i)});
      acc.sequences += int64_t(seqs.size());
      // The same tokens are scored at every evaluation: the stream depends on the window only.
      MlmBatch mb = make_mlm_batch(seqs, special, masker, mask_rate, seed ^ kEvalMaskStream);
      if (mb.num_masked() == 0) continue;
      auto ce = mlm_loss(model, mb, ForwardOptions{}, true);
      loss += ce.sum_loss.item();
      hits += ce.topk_hits[0];
      acc.tokens += ce.count;
    }
    acc.loss = acc.tokens ? loss / double(acc.tokens) : 0.0;
    acc.accuracy = acc.tokens ? double(hits) / double(acc.tokens) : 0.0;
    loss_all += loss;
    hits_all += hits;
    r.tokens += acc.tokens;
    r.languages.push_back(acc);
  }
  r.loss = r.tokens ? loss_all / double(r.tokens) : 0.0;
  r.accuracy = r.tokens ? double(hits_all) / double(r.tokens) : 0.0;
  return r;
}

void MlmTrainer::check_data(const PretrainConfig& cfg, const MlmSpecialTokens& special) {
  validate(cfg);
  make_sampler(cfg, special);
  const int64_t window = special.window_for(cfg.seq_len);
  for (const auto& l : cfg.eval_sources)
    TokenWindows(l.shard_prefixes, window, cfg.seed, 0, cfg.expect_vocab_size,
                 cfg.expect_tokenizer_fingerprint, "eval language '" + l.name + "'");
}

MlmTrainer::MlmTrainer(PretrainConfig cfg, MaskedLM& model, MlmSpecialTokens special, Callbacks cb)
    : cfg_((validate(cfg), std::move(cfg))),
      model_(model),
      special_(std::move(special)),
      cb_(std::move(cb)),
      masker_(mlm_masking_config(special_, cfg_.mlm.mask_replace_prob, cfg_.mlm.random_replace_prob)),
      sampler_(make_sampler(cfg_, special_)),
      guard_(cfg_.spike),
      dropout_{cfg_.seed ^ kDropoutStream, 0} {
  if (model_.vocab_size() < special_.vocab_size)
    fail("pretrain: the tokenizer has ", special_.vocab_size, " tokens but the model's vocab_size is ",
         model_.vocab_size());
  ModelCheckpointing io;
  io.hf_config = [this] { return model_.hf_config(); };
  io.skip_on_save = model_.hf_skip_on_save();
  io.optional_on_load = model_.hf_optional_on_load();
  io.renames_on_load = model_.hf_renames_on_load();
  core_ = std::make_unique<OptimizerCore>(cfg_, model_.params(), std::move(io));
  std::filesystem::create_directories(cfg_.run_dir);
}

MlmTrainer::~MlmTrainer() = default;

void MlmTrainer::enter_phase() {
  const size_t k = phase_at(cfg_.phases, step_);
  if (k == phase_) return;
  if (phase_ != size_t(-1) && cb_.on_event) {
    const DataPhase& ph = cfg_.phases[k];
    nlohmann::json langs = nlohmann::json::array();
    for (const auto& s : ph.sources) langs.push_back(s.name);
    cb_.on_event({{"event", "phase"},
                  {"step", step_},
                  {"phase", ph.name},
                  {"mask_rate", ph.mask_rate},
                  {"tau", ph.tau},
                  {"languages", langs}});
  }
  sampler_->set_phase(k);
  phase_ = k;
}

MlmTrainer::StepResult MlmTrainer::run_step(std::vector<int64_t>& by_language) {
  StepResult res;
  const double rate = cfg_.phases[phase_].mask_rate;
  // Every micro-batch is drawn first: the loss is the mean over the step's masked tokens.
  std::vector<MlmBatch> micro;
  for (int64_t m = 0; m < cfg_.grad_accum; m++) {
    std::vector<LanguageSampler::Sequence> seqs;
    for (int64_t b = 0; b < cfg_.micro_batch; b++) {
      seqs.push_back(sampler_->next());
      by_language[seqs.back().language]++;
      for (int64_t s : cfg_.debug_poison_samples)
        res.poisoned = res.poisoned || uint64_t(s) == seqs.back().sample;
    }
    micro.push_back(make_mlm_batch(seqs, special_, masker_, rate, cfg_.seed));
    res.tokens += micro.back().num_tokens;
    res.masked += micro.back().num_masked();
  }
  if (res.poisoned) {
    res.loss = NAN;
    return res;
  }
  ForwardOptions fo;
  fo.training = true;
  fo.gen = &dropout_;
  fo.recompute = cfg_.recompute;
  double total = 0;
  for (const MlmBatch& mb : micro) {
    if (mb.num_masked() == 0) continue;
    auto ce = mlm_loss(model_, mb, fo, false);
    total += ce.sum_loss.item();
    autograd::backward(ops::scale(ce.sum_loss, float(1.0 / double(res.masked))));
  }
  res.loss = res.masked ? total / double(res.masked) : 0.0;
  return res;
}

void MlmTrainer::train() {
  ParamStore& ps = model_.params();
  if (last_checkpoint_.empty()) last_checkpoint_ = save_checkpoint();  // rollback target
  ThroughputMeter meter(tokens_);
  double loss_acc = 0;
  int64_t loss_n = 0, masked_at_log = masked_;
  std::vector<int64_t> by_language(sampler_->num_languages(), 0);
  while (step_ < cfg_.max_steps) {
    enter_phase();
    ps.zero_grad();
    StepResult r = run_step(by_language);
    std::string spike = guard_.check(r.loss);
    if (!spike.empty()) {
      rollback(spike, sampler_->state());
      continue;
    }
    const double lr = lr_at(cfg_.schedule, step_);
    const double norm = core_->step(lr);
    step_++;
    tokens_ += r.tokens;
    masked_ += r.masked;
    loss_acc += r.loss;
    loss_n++;
    const bool last = step_ == cfg_.max_steps;
    if (step_ % cfg_.log_every == 0 || last) {
      const DataPhase& ph = cfg_.phases[phase_];
      nlohmann::json seqs = nlohmann::json::object();
      for (size_t k = 0; k < by_language.size(); k++)
        if (by_language[k]) seqs[sampler_->language_name(k)] = by_language[k];
      nlohmann::json rec = {{"step", step_},
                            {"tokens", tokens_},
                            {"masked_tokens", masked_ - masked_at_log},
                            {"loss", loss_acc / double(loss_n)},
                            {"lr", lr},
                            {"grad_norm", norm},
                            {"phase", ph.name},
                            {"mask_rate", ph.mask_rate},
                            {"micro_batches", cfg_.grad_accum},
                            {"sequences_by_language", seqs}};
      meter.fill(rec, tokens_, ps, model_.train_flops_per_token(cfg_.seq_len));
      if (cb_.on_log) cb_.on_log(rec);
      loss_acc = 0;
      loss_n = 0;
      masked_at_log = masked_;
      std::fill(by_language.begin(), by_language.end(), 0);
    }
    if (!cfg_.eval_sources.empty() && ((cfg_.eval_every > 0 && step_ % cfg_.eval_every == 0) || last)) {
      nlohmann::json ev = evaluate().to_json();
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

MlmEvalResult MlmTrainer::evaluate() {
  return evaluate_mlm(model_, cfg_.eval_sources, special_, masker_, cfg_.mlm.eval_mask_rate, cfg_.seq_len,
                      cfg_.micro_batch, cfg_.eval_batches, cfg_.seed, cfg_.expect_vocab_size,
                      cfg_.expect_tokenizer_fingerprint);
}

nlohmann::json MlmTrainer::trainer_state() const {
  nlohmann::json s;
  s["objective"] = "mlm";
  s["step"] = step_;
  s["tokens"] = tokens_;
  s["masked_tokens"] = masked_;
  s["rollbacks"] = rollbacks_;
  s["seed"] = cfg_.seed;
  s["data_phase"] = phase_ == size_t(-1) ? std::string() : cfg_.phases[phase_].name;
  s["data_cursor"] = sampler_->state();
  s["dropout_offset"] = dropout_.offset;
  s["spike_guard"] = guard_.state();
  s["max_steps"] = cfg_.max_steps;
  return s;
}

// Refuses a checkpoint of another objective before anything is loaded from it.
static void check_mlm_checkpoint(const nlohmann::json& s, const std::string& ckpt) {
  const std::string objective = s.is_object() ? s.value("objective", std::string("causal_lm")) : "";
  if (objective != "mlm")
    fail(ckpt, "/trainer_state.json: the checkpoint comes from a ", objective.empty() ? "unknown" : objective,
         " run, not an mlm one");
}

void MlmTrainer::load_trainer_state(const nlohmann::json& s) {
  try {
    step_ = s.at("step").get<int64_t>();
    tokens_ = s.at("tokens").get<int64_t>();
    masked_ = s.at("masked_tokens").get<int64_t>();
    rollbacks_ = s.value("rollbacks", int64_t(0));
    dropout_.offset = s.at("dropout_offset").get<uint64_t>();
    guard_.load_state(s.at("spike_guard"));
    sampler_->load_state(s.at("data_cursor"));
  } catch (const nlohmann::json::exception& e) {
    fail("trainer_state.json: ", e.what());
  }
  phase_ = size_t(-1);
}

std::string MlmTrainer::save_checkpoint() { return core_->save(step_, trainer_state()); }

void MlmTrainer::resume_from(const std::string& ckpt) {
  check_mlm_checkpoint(read_trainer_state(ckpt), ckpt);
  load_trainer_state(core_->load(ckpt));
  last_checkpoint_ = ckpt;
}

void MlmTrainer::rollback(const std::string& reason, const nlohmann::json& cursor_after) {
  if (++rollbacks_ > cfg_.spike.max_rollbacks)
    fail("pretrain: loss spike at step ", step_, " (", reason, ") and ", cfg_.spike.max_rollbacks,
         " rollbacks already made; giving up");
  const int64_t bad_step = step_, rollbacks = rollbacks_;
  resume_from(last_checkpoint_);
  rollbacks_ = rollbacks;
  // Skip the data seen since the checkpoint, the offending batch included (PaLM's remedy).
  sampler_->load_state(cursor_after);
  if (cb_.on_event)
    cb_.on_event({{"event", "spike_rollback"},
                  {"step", bad_step},
                  {"reason", reason},
                  {"restored_step", step_},
                  {"checkpoint", last_checkpoint_}});
}

}  // namespace lmf
