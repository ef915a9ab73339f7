#include "lmforge/train/pretrain_recipe.h"

#include <cmath>
#include <map>
#include <sstream>

namespace lmf {

namespace {

std::string format_number(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

// mlm: `languages = { en = ["shards/en"], fr = [...] }` of one phase (or data.eval): one
// component per language, in key order.
std::vector<MixtureComponent> parse_languages(const Recipe& t, const std::string& key) {
  std::vector<MixtureComponent> out;
  for (const std::string& name : t.keys(key)) {
    MixtureComponent c;
    c.name = name;
    c.shard_prefixes = t.require<std::vector<std::string>>(key + "." + name);
    if (c.shard_prefixes.empty()) t.fail_at(key + "." + name, "expected at least one shard prefix");
    out.push_back(std::move(c));
  }
  if (out.empty()) t.fail_at(key, "expected at least one language: { name = [\"shard prefix\", ...] }");
  return out;
}

// mlm phases: start_step, mask_rate, tau and languages; a language listed by several phases
// must name the same shards everywhere (it keeps one data cursor for the whole run).
void parse_mlm_phases(const Recipe& r, PretrainConfig& c) {
  std::map<std::string, std::pair<std::vector<std::string>, std::string>> shards_of;  // name -> (shards, phase)
  for (const Recipe& p : r.tables("data.phases")) {
    DataPhase ph;
    ph.name = p.get<std::string>("name", "phase" + std::to_string(c.phases.size()));
    ph.start_step = p.get<int64_t>("start_step", 0);
    ph.mask_rate = p.get<double>("mask_rate", 0.15);
    if (!std::isfinite(ph.mask_rate) || ph.mask_rate < 0 || ph.mask_rate > 1)
      p.fail_at("mask_rate", "expected a mask rate in [0, 1], got " + format_number(ph.mask_rate));
    ph.tau = p.get<double>("tau", 1.0);
    if (!std::isfinite(ph.tau) || ph.tau < 0)
      p.fail_at("tau", "expected a sampling temperature >= 0 (p_i ∝ n_i^tau), got " + format_number(ph.tau));
    ph.sources = parse_languages(p, "languages");
    for (const auto& l : ph.sources) {
      auto [it, inserted] = shards_of.emplace(l.name, std::pair{l.shard_prefixes, ph.name});
      if (!inserted && it->second.first != l.shard_prefixes)
        p.fail_at("languages." + l.name, "lists other shards than in phase '" + it->second.second +
                                             "' (a language keeps one data cursor across phases)");
    }
    if (!c.phases.empty() && ph.start_step <= c.phases.back().start_step)
      p.fail_at("start_step", "phases must start at increasing steps");
    c.phases.push_back(std::move(ph));
  }
  if (r.has("data.eval")) c.eval_sources = parse_languages(r, "data.eval");
  c.mlm.mask_token = r.get<std::string>("mlm.mask_token", "");
  c.mlm.mask_replace_prob = r.get<double>("mlm.mask_replace_prob", 0.8);
  c.mlm.random_replace_prob = r.get<double>("mlm.random_replace_prob", 0.1);
  for (auto [k, v] : {std::pair{"mlm.mask_replace_prob", c.mlm.mask_replace_prob},
                      {"mlm.random_replace_prob", c.mlm.random_replace_prob}})
    if (!std::isfinite(v) || v < 0 || v > 1) r.fail_at(k, "expected a probability in [0, 1]");
  if (c.mlm.mask_replace_prob + c.mlm.random_replace_prob > 1)
    r.fail_at("mlm.random_replace_prob", "mask_replace_prob + random_replace_prob must be <= 1");
  c.mlm.eval_mask_rate = r.get<double>("eval.mask_rate", 0.15);
  if (!std::isfinite(c.mlm.eval_mask_rate) || !(c.mlm.eval_mask_rate > 0) || c.mlm.eval_mask_rate > 1)
    r.fail_at("eval.mask_rate", "expected a mask rate in (0, 1]");
}

std::vector<MixtureComponent> parse_sources(const Recipe& phase, const std::string& phase_name) {
  std::vector<MixtureComponent> out;
  for (const Recipe& s : phase.tables("sources")) {
    MixtureComponent c;
    c.name = s.get<std::string>("name", phase_name + "-" + std::to_string(out.size()));
    c.shard_prefixes = s.require<std::vector<std::string>>("shards");
    c.weight = s.get<double>("weight", 1.0);
    if (c.shard_prefixes.empty()) s.fail_at("shards", "expected at least one shard prefix");
    if (!(c.weight > 0)) s.fail_at("weight", "expected a positive number");
    out.push_back(std::move(c));
  }
  if (out.empty()) phase.fail_at("sources", "expected at least one [[...sources]] table");
  return out;
}

}  // namespace

PretrainRecipe parse_pretrain_recipe(const Recipe& r) {
  PretrainRecipe out;
  PretrainConfig& c = out.config;
  c.run_dir = r.require<std::string>("run.dir");
  c.seed = uint64_t(r.get<int64_t>("run.seed", 1234));
  out.device = r.get<std::string>("run.device", "auto");
  out.precision = r.get_choice("run.precision", "auto", {"auto", "f32", "bf16"});
  out.model_config = r.get<std::string>("model.config", "");
  out.init_from = r.get<std::string>("model.init_from", "");
  if (out.model_config.empty() && out.init_from.empty())
    r.fail_at("model", "set model.config (a HF config.json) or model.init_from (a HF folder)");
  out.tokenizer = r.require<std::string>("data.tokenizer");
  const bool mlm = r.get_choice("train.objective", "causal_lm", {"causal_lm", "mlm"}) == "mlm";
  c.objective = mlm ? PretrainObjective::mlm : PretrainObjective::causal_lm;
  if (mlm) {
    // Sequences of up to max_length tokens, the tokenizer's special tokens included.
    c.seq_len = r.get<int64_t>("data.max_length", 512);
    if (c.seq_len < 3) r.fail_at("data.max_length", "expected an integer >= 3 (room for [CLS], [SEP] and a token)");
    parse_mlm_phases(r, c);
  } else {
    c.seq_len = r.get<int64_t>("data.seq_len", 256);
    if (c.seq_len < 1) r.fail_at("data.seq_len", "expected a positive integer");
  }
  for (const Recipe& p : mlm ? std::vector<Recipe>{} : r.tables("data.phases")) {
    DataPhase ph;
    ph.name = p.get<std::string>("name", "phase" + std::to_string(c.phases.size()));
    ph.start_step = p.get<int64_t>("start_step", 0);
    ph.sources = parse_sources(p, ph.name);
    if (!c.phases.empty() && ph.start_step <= c.phases.back().start_step)
      p.fail_at("start_step", "phases must start at increasing steps");
    c.phases.push_back(std::move(ph));
  }
  if (c.phases.empty()) r.fail_at("data.phases", "expected at least one [[data.phases]] table");
  if (c.phases.front().start_step != 0) r.fail_at("data.phases", "the first phase must have start_step = 0");
  if (!mlm)
    for (const auto& e : r.get<std::vector<std::string>>("data.eval", {}))
      c.eval_sources.push_back({"eval-" + std::to_string(c.eval_sources.size()), {e}, 1.0});

  c.micro_batch = r.get<int64_t>("train.micro_batch", 8);
  c.grad_accum = r.get<int64_t>("train.grad_accum", 1);
  c.max_steps = r.require<int64_t>("train.max_steps");
  c.recompute = r.get<bool>("train.recompute", false);
  c.log_every = r.get<int64_t>("train.log_every", 10);
  c.eval_every = r.get<int64_t>("train.eval_every", 0);
  c.eval_batches = r.get<int64_t>("train.eval_batches", 20);
  c.checkpoint_every = r.get<int64_t>("train.checkpoint_every", 0);
  c.keep_last = r.get<int>("train.keep_last", 2);
  c.debug_poison_samples = r.get<std::vector<int64_t>>("train.debug_poison_samples", {});
  for (auto [k, v] : {std::pair{"train.micro_batch", c.micro_batch}, {"train.grad_accum", c.grad_accum},
                      {"train.max_steps", c.max_steps}, {"train.log_every", c.log_every}})
    if (v < 1) r.fail_at(k, "expected a positive integer");
  if (r.has("train.batch_rampup")) {
    BatchRampup b;
    b.start_tokens_per_step = r.require<int64_t>("train.batch_rampup.start_tokens_per_step");
    b.target_tokens_per_step = r.require<int64_t>("train.batch_rampup.target_tokens_per_step");
    b.rampup_tokens = r.require<int64_t>("train.batch_rampup.rampup_tokens");
    b.granularity = c.micro_batch * c.seq_len;
    validate(b);
    c.rampup = b;
  }

  c.adamw.weight_decay = r.get<double>("optimizer.weight_decay", 0.1);
  auto betas = r.get<std::vector<double>>("optimizer.betas", {0.9, 0.95});
  if (betas.size() != 2) r.fail_at("optimizer.betas", "expected [beta1, beta2]");
  c.adamw.beta1 = betas[0];
  c.adamw.beta2 = betas[1];
  c.adamw.eps = r.get<double>("optimizer.eps", 1e-8);
  c.clip_grad_norm = r.get<double>("optimizer.clip_grad_norm", 1.0);

  LrSchedule& s = c.schedule;
  s.kind = parse_lr_schedule_kind(r.get<std::string>("schedule.kind", "wsd"));
  s.lr_peak = r.get<double>("optimizer.lr", 3e-4);
  s.lr_min = r.get<double>("schedule.lr_min", 0.0);
  if (r.has("schedule.min_ratio")) s.min_ratio = r.require<double>("schedule.min_ratio");
  s.warmup_steps = r.get<int64_t>("schedule.warmup_steps", 0);
  if (r.has("schedule.warmup_ratio")) s.warmup_ratio = r.require<double>("schedule.warmup_ratio");
  s.total_steps = r.get<int64_t>("schedule.total_steps", c.max_steps);
  s.power = r.get<double>("schedule.power", 1.0);
  if (r.has("schedule.decay_steps")) s.decay_steps = r.require<int64_t>("schedule.decay_steps");
  if (r.has("schedule.decay_fraction")) s.decay_fraction = r.require<double>("schedule.decay_fraction");
  if (r.has("schedule.stable_fraction")) s.stable_fraction = r.require<double>("schedule.stable_fraction");
  if (s.kind == LrScheduleKind::wsd && !s.decay_steps && !s.decay_fraction && !s.stable_fraction) s.decay_fraction = 0.2;
  s.decay_shape = parse_decay_shape(r.get<std::string>("schedule.decay_shape", "linear"));
  validate(s);

  if (!mlm) {  // causal-LM only (an mlm recipe that sets them gets the unused-key warning)
    c.positional_weighting = r.get<bool>("loss.positional_weighting", false);
    c.positional_scale = r.get<double>("loss.positional_scale", 10.0);
    if (!(c.positional_scale > 0)) r.fail_at("loss.positional_scale", "expected a positive number");
    c.eval_position_buckets = r.get<std::vector<int64_t>>("eval.position_buckets", {0, 16, 128, 1024});
  }

  c.spike.enabled = r.get<bool>("spike_guard.enabled", true);
  c.spike.factor = r.get<double>("spike_guard.factor", 3.0);
  c.spike.window = r.get<int>("spike_guard.window", 50);
  c.spike.min_history = r.get<int>("spike_guard.min_history", 20);
  c.spike.max_rollbacks = r.get<int>("spike_guard.max_rollbacks", 10);
  return out;
}

}  // namespace lmf
