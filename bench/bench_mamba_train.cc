// Mamba training throughput: forward + backward + fused AdamW steps of MambaForCausalLM at a
// given shape on CUDA (bf16 compute, fp32 master weights, fp32 residual), random token ids.
// Prints one JSON line: tokens_per_s, ms_per_step, peak_mem_gib, mfu (6 * params * tokens/s /
// 989e12, the definition bench/peers/mamba_train_torch.py uses), mfu_model (our FLOP count).
//   bench_mamba_train --shape 130m --batch 8 --seqlen 1024 [--steps 10] [--warmup 3] [--recompute] [--profile]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "bench_train.h"
#include "lmforge/autograd/tape.h"
#include "lmforge/core/device_memory.h"
#include "lmforge/core/rng.h"
#include "lmforge/models/mamba.h"
#include "lmforge/ops/cross_entropy.h"
#include "lmforge/ops/elementwise.h"
#include "lmforge/train/adamw.h"
#include "lmforge/train/grad_clip.h"

using namespace lmf;

int main(int argc, char** argv) {
  std::string shape = "130m";
  int64_t batch = 8, seqlen = 1024, steps = 10, warmup = 3;
  bool recompute = false, profile = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--shape") shape = next();
    else if (a == "--batch") batch = std::stoll(next());
    else if (a == "--seqlen") seqlen = std::stoll(next());
    else if (a == "--steps") steps = std::stoll(next());
    else if (a == "--warmup") warmup = std::stoll(next());
    else if (a == "--recompute") recompute = true;
    else if (a == "--profile") profile = true;
  }
  try {
    MambaConfig c;
    c.vocab_size = 50280;
    c.state_size = 16;
    c.expand = 2;
    c.conv_kernel = 4;
    c.use_bias = false;
    c.tie_word_embeddings = true;
    if (shape == "130m") { c.hidden_size = 768; c.num_hidden_layers = 24; }
    else if (shape == "370m") { c.hidden_size = 1024; c.num_hidden_layers = 48; }
    else if (shape == "1.4b") { c.hidden_size = 2048; c.num_hidden_layers = 48; }
    else fail("--shape: expected 130m, 370m or 1.4b");
    c.intermediate_size = c.expand * c.hidden_size;
    c.time_step_rank = (c.hidden_size + 15) / 16;
    const Device dev = Device::cuda(0);
    ParamStore store(dev, DType::bf16);
    MambaModel model(c, store);
    store.finalize();
    Generator g{1, 0};
    model.init_weights(g);
    const int64_t T = store.num_trainable();
    std::vector<AdamWGroup> groups;
    for (const auto& r : store.decay_ranges()) groups.push_back({r.begin, r.end, r.weight_decay ? 0.1 : 0.0, 1.0});
    AdamW opt({0.9, 0.95, 1e-8, 0.1}, T, dev, groups);
    Generator dg{2, 0};
    Tensor ids = rand_uniform({batch, seqlen + 1}, DType::f32, dg, 0.f, float(c.vocab_size) - 1.f);
    std::vector<int32_t> v(size_t(ids.numel()));
    auto f = ids.to_float_vector();
    for (size_t k = 0; k < v.size(); k++) v[k] = int32_t(f[k]);
    Tensor all = Tensor::from_vector<int32_t>(v, {batch, seqlen + 1});
    Tensor inp = all.slice(1, 0, seqlen).contiguous().to(dev);
    Tensor tgt = all.slice(1, 1, seqlen + 1).contiguous().reshape({-1}).to(dev);
    auto step = [&] {
      store.zero_grad();
      autograd::profile_mark("zero_grad");
      Tensor h = model.forward_hidden(inp, Tensor(), recompute);
      Tensor W = model.lm_head_weight();
      auto ce = ops::cross_entropy(ops::cast(h.reshape({-1, h.size(-1)}), W.dtype()), W, tgt);
      autograd::profile_mark("fwd:cross_entropy");
      bench::finish_step(store, opt, ce.loss, 1e-4);
    };
    const double dt = bench::time_steps(dev, warmup, steps, step);
    double tps = double(batch * seqlen) / dt;
    double params = double(store.num_params());
    std::printf("{\"impl\":\"lmforge\",\"shape\":\"%s\",\"batch\":%lld,\"seqlen\":%lld,\"tokens_per_s\":%.1f,"
                "\"ms_per_step\":%.2f,\"peak_mem_gib\":%.2f,\"mfu\":%.4f,\"mfu_model\":%.4f,\"params\":%.0f,"
                "\"recompute\":%s}\n",
                shape.c_str(), (long long)batch, (long long)seqlen, tps, dt * 1e3,
                double(memory_stats(dev).peak_bytes) / double(1ull << 30), 6 * params * tps / 989e12,
                model.train_flops_per_token(seqlen) * tps / 989e12, params, recompute ? "true" : "false");
    if (profile)  // where a step goes, with a device sync per op (slower than the timed steps)
      bench::print_step_profile(shape + " " + std::to_string(batch) + "x" + std::to_string(seqlen), dev, step);
  } catch (const std::exception& e) {
    std::printf("{\"impl\":\"lmforge\",\"shape\":\"%s\",\"batch\":%lld,\"seqlen\":%lld,\"error\":\"%s\"}\n",
                shape.c_str(), (long long)batch, (long long)seqlen, e.what());
    return 1;
  }
  return 0;
}
