#include "lmforge/train/trainer_common.h"

#include <algorithm>

#include "lmforge/core/device_memory.h"
#include "lmforge/io/hf_params.h"
#include "lmforge/train/checkpoint.h"
#include "lmforge/train/grad_clip.h"

namespace lmf {

namespace {
// Dense bf16 peak of an H100 SXM, the MFU denominator bench/ and the peers use too.
constexpr double kPeakFlopsCuda = 989e12;
}  // namespace

size_t phase_at(const std::vector<DataPhase>& phases, int64_t step) {
  size_t k = 0;
  for (size_t i = 0; i < phases.size(); i++)
    if (phases[i].start_step <= step) k = i;
  return k;
}

OptimizerCore::OptimizerCore(const PretrainConfig& cfg, ParamStore& ps, ModelCheckpointing io)
    : cfg_(cfg), ps_(ps), io_(std::move(io)) {
  std::vector<AdamWGroup> groups;
  for (const auto& r : ps.decay_ranges())
    groups.push_back({r.begin, r.end, r.weight_decay ? cfg_.adamw.weight_decay : 0.0, 1.0});
  opt_ = std::make_unique<AdamW>(cfg_.adamw, ps.num_trainable(), ps.device(), groups);
}

double OptimizerCore::step(double lr) {
  const int64_t T = ps_.num_trainable();
  const double norm = grad_norm(ps_.flat_grads().slice(0, 0, std::max<int64_t>(T, 1)));
  const double factor = cfg_.clip_grad_norm > 0 ? clip_factor(norm, cfg_.clip_grad_norm) : 1.0;
  Tensor compute = ps_.flat_compute().defined() ? ps_.flat_compute().slice(0, 0, T) : Tensor();
  if (T > 0)
    opt_->step(ps_.flat_master().slice(0, 0, T), ps_.flat_grads().slice(0, 0, T), compute, lr, factor);
  return norm;
}

std::string OptimizerCore::save(int64_t step, const nlohmann::json& trainer_state) {
  CheckpointPayload p;
  p.model_config = io_.hf_config();
  p.skip = io_.skip_on_save;
  for (auto& [name, t] : opt_->state_tensors()) p.optimizer.emplace_back(name, t);
  p.trainer_state = trainer_state;
  p.trainer_state["optimizer_steps"] = opt_->steps_taken();
  return save_run_checkpoint(cfg_.run_dir, step, ps_, p, cfg_.keep_last);
}

nlohmann::json OptimizerCore::load(const std::string& ckpt) {
  load_hf_params(ps_, ckpt, io_.optional_on_load, io_.renames_on_load);
  std::map<std::string, Tensor> st;
  for (auto& [n, t] : read_optimizer_state(ckpt)) st[n] = t.to(ps_.device());
  opt_->load_state_tensors(st);
  return read_trainer_state(ckpt);
}

void ThroughputMeter::fill(nlohmann::json& rec, int64_t tokens_now, const ParamStore& ps,
                           double flops_per_token) {
  synchronize(ps.device());
  const double dt = std::chrono::duration<double>(Clock::now() - t_).count();
  const double tps = double(tokens_now - tokens_at_) / std::max(dt, 1e-9);
  rec["tokens_per_s"] = tps;
  if (ps.device().is_cuda()) {
    rec["mfu"] = flops_per_token * tps / kPeakFlopsCuda;
    rec["mem_gib"] = double(memory_stats(ps.device()).peak_bytes) / double(1ull << 30);
  }
  t_ = Clock::now();
  tokens_at_ = tokens_now;
}

}  // namespace lmf
