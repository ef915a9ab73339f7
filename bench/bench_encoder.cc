// Encoder fine-tuning / inference throughput: a sequence classifier built from a HF config.json
// (configs/models/*.json) on CUDA, bf16 compute over fp32 master weights, random token ids.
//   train: classify -> cross-entropy -> backward -> fused AdamW (one optimizer step per batch)
//   infer: classify under NoGradGuard (the encoder + head forward)
// Variable lengths (--varlen): row b has length L_b = seqlen * (4 - b % 4) / 4 (seqlen, 3/4,
// 1/2, 1/4 of it, repeating) — the same rule bench/peers/encoder_torch.py pads to seqlen.
// tokens_per_s counts real tokens. Prints one JSON line.
//   bench_encoder --config configs/models/mbert-base.json --batch 32 --seqlen 128 [--mode train|infer]
//                 [--varlen] [--steps 10] [--warmup 3] [--profile]
// --profile adds a second JSON line: milliseconds per step by op (a device sync per op).
#include <chrono>
#include <cstdio>
#include <string>

#include "bench_train.h"
#include "lmforge/autograd/profile.h"
#include "lmforge/autograd/tape.h"
#include "lmforge/core/device_memory.h"
#include "lmforge/core/rng.h"
#include "lmforge/models/config_json.h"
#include "lmforge/models/task_registry.h"
#include "lmforge/ops/cross_entropy.h"
#include "lmforge/train/adamw.h"
#include "lmforge/train/grad_clip.h"

using namespace lmf;

namespace {

int64_t row_length(int64_t b, int64_t seqlen, bool varlen) {
  return varlen ? std::max<int64_t>(1, seqlen * (4 - b % 4) / 4) : seqlen;
}

TokenBatch random_batch(int64_t batch, int64_t seqlen, bool varlen, int64_t vocab, int64_t low_ids) {
  std::vector<int64_t> ids(size_t(batch * seqlen)), mask(size_t(batch * seqlen), 0);
  uint64_t x = 88172645463325252ull;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < seqlen; ++t) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      const bool real = t < row_length(b, seqlen, varlen);
      ids[size_t(b * seqlen + t)] = real ? low_ids + int64_t(x % uint64_t(vocab - low_ids)) : 0;
      mask[size_t(b * seqlen + t)] = real ? 1 : 0;
    }
  TokenBatch tb;
  tb.input_ids = Tensor::from_vector(ids, {batch, seqlen});
  tb.attention_mask = Tensor::from_vector(mask, {batch, seqlen});
  return tb;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path, mode = "train";
  int64_t batch = 32, seqlen = 128, steps = 10, warmup = 3;
  bool varlen = false, profile = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--config") config_path = next();
    else if (a == "--mode") mode = next();
    else if (a == "--batch") batch = std::stoll(next());
    else if (a == "--seqlen") seqlen = std::stoll(next());
    else if (a == "--steps") steps = std::stoll(next());
    else if (a == "--warmup") warmup = std::stoll(next());
    else if (a == "--varlen") varlen = true;
    else if (a == "--profile") profile = true;
  }
  const std::string tag = config_path.substr(config_path.find_last_of('/') + 1);
  try {
    if (mode != "train" && mode != "infer") fail("--mode: expected train or infer");
    const Device dev = Device::cuda(0);
    nlohmann::json cfg = config_json::read_json_file(config_path);
    ParamStore store(dev, DType::bf16);
    TaskModelRequest req;
    req.head = TaskHead::sequence_classification;
    req.num_labels = 2;
    auto model = make_task_model(cfg, config_path, store, req);
    auto* clf = dynamic_cast<SequenceClassifier*>(model.get());
    if (!clf) fail(config_path, ": not a sequence classifier");
    store.finalize();
    Generator g{1, 0};
    model->init_weights(g);
    store.sync_compute();
    const int64_t T = store.num_trainable();
    std::vector<AdamWGroup> groups;
    for (const auto& r : store.decay_ranges()) groups.push_back({r.begin, r.end, r.weight_decay ? 0.01 : 0.0, 1.0});
    AdamW opt({0.9, 0.999, 1e-8, 0.01}, T, dev, groups);
    const int64_t vocab = cfg.value("vocab_size", int64_t(1000));
    TokenBatch tb = random_batch(batch, seqlen, varlen, vocab, 5);
    std::vector<int64_t> labels(static_cast<size_t>(batch));
    for (int64_t b = 0; b < batch; ++b) labels[size_t(b)] = b % 2;
    Tensor tgt = Tensor::from_vector(labels, {batch}).to(dev);
    Generator dropout_gen{3, 0};
    ForwardOptions train_opts{true, &dropout_gen, false};
    auto step = [&] {
      if (mode == "infer") {
        autograd::NoGradGuard ng;
        (void)clf->classify(tb, ForwardOptions{});
        return;
      }
      store.zero_grad();
      autograd::profile_mark("zero_grad");
      Tensor logits = clf->classify(tb, train_opts);
      auto ce = ops::cross_entropy_logits(logits, tgt);
      autograd::profile_mark("fwd:cross_entropy");
      bench::finish_step(store, opt, ce.loss, 2e-5);
    };
    const double dt = bench::time_steps(dev, warmup, steps, step);
    int64_t real = 0;
    for (int64_t b = 0; b < batch; ++b) real += row_length(b, seqlen, varlen);
    std::printf("{\"impl\":\"lmforge\",\"model\":\"%s\",\"mode\":\"%s\",\"batch\":%lld,\"seqlen\":%lld,\"varlen\":%s,"
                "\"tokens_per_s\":%.1f,\"ms_per_step\":%.2f,\"peak_mem_gib\":%.2f,\"params\":%lld}\n",
                tag.c_str(), mode.c_str(), (long long)batch, (long long)seqlen, varlen ? "true" : "false",
                double(real) / dt, dt * 1e3, double(memory_stats(dev).peak_bytes) / double(1ull << 30),
                (long long)store.num_params());
    if (profile)
      bench::print_step_profile(tag + " " + mode + " " + std::to_string(batch) + "x" + std::to_string(seqlen) +
                                    (varlen ? " varlen" : ""),
                                dev, step);
  } catch (const std::exception& e) {
    std::printf("{\"impl\":\"lmforge\",\"model\":\"%s\",\"mode\":\"%s\",\"batch\":%lld,\"seqlen\":%lld,\"error\":\"%s\"}\n",
                tag.c_str(), mode.c_str(), (long long)batch, (long long)seqlen, e.what());
    return 1;
  }
  return 0;
}
