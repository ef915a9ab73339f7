#!/usr/bin/env python3
"""Peer for lmforge's Mamba training benchmark: one training step = forward + backward + fused
AdamW, bf16 autocast over fp32 master weights (the same mixed precision lmforge uses).

  --impl hf         transformers MambaForCausalLM (uses mamba-ssm kernels if importable, else
                    its pure-PyTorch path)
  --impl mamba_ssm  the official mamba_ssm MambaLMHeadModel (needs mamba_ssm + causal_conv1d)

Prints one JSON line: impl, shape, batch, seqlen, tokens_per_s, ms_per_step, peak_mem_gib, mfu,
params. MFU = 6 * params * tokens/s / 989e12 (H100 SXM dense bf16 peak); the same definition
is used by bench/bench_mamba_train.
"""
import argparse
import json
import sys
import time

import torch

SHAPES = {"130m": dict(d_model=768, n_layer=24), "370m": dict(d_model=1024, n_layer=48),
          "1.4b": dict(d_model=2048, n_layer=48)}
VOCAB = 50280
PEAK_FLOPS = 989e12


def build(impl, shape):
    s = SHAPES[shape]
    if impl == "hf":
        from transformers import MambaConfig, MambaForCausalLM
        cfg = MambaConfig(vocab_size=VOCAB, hidden_size=s["d_model"], num_hidden_layers=s["n_layer"],
                          state_size=16, expand=2, conv_kernel=4, use_bias=False, tie_word_embeddings=True)
        return MambaForCausalLM(cfg)
    from mamba_ssm.models.config_mamba import MambaConfig
    from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel
    cfg = MambaConfig(d_model=s["d_model"], n_layer=s["n_layer"], vocab_size=VOCAB, ssm_cfg={"layer": "Mamba1"},
                      rms_norm=True, residual_in_fp32=True, fused_add_norm=True, pad_vocab_size_multiple=8,
                      tie_embeddings=True)
    return MambaLMHeadModel(cfg, device="cuda", dtype=torch.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", choices=["hf", "mamba_ssm"], required=True)
    ap.add_argument("--shape", choices=list(SHAPES), default="130m")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seqlen", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()
    torch.manual_seed(0)
    res = {"impl": a.impl, "shape": a.shape, "batch": a.batch, "seqlen": a.seqlen}
    try:
        model = build(a.impl, a.shape).cuda().train()
        params = sum(p.numel() for p in model.parameters())
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
        ids = torch.randint(0, VOCAB, (a.batch, a.seqlen), device="cuda")
        loss_fn = torch.nn.CrossEntropyLoss()

        def step():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = model(ids)
                logits = out.logits if hasattr(out, "logits") else out[0]
                loss = loss_fn(logits[:, :-1].reshape(-1, logits.size(-1)).float(), ids[:, 1:].reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

        for _ in range(a.warmup):
            step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / a.steps
        tps = a.batch * a.seqlen / dt
        res.update(tokens_per_s=round(tps, 1), ms_per_step=round(dt * 1e3, 2),
                   peak_mem_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2),
                   mfu=round(6 * params * tps / PEAK_FLOPS, 4), params=params)
    except torch.cuda.OutOfMemoryError:
        res["error"] = "out of memory"
    except Exception as e:  # report, never crash the whole benchmark run
        res["error"] = f"{type(e).__name__}: {e}"[:300]
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
