#!/usr/bin/env python3
"""Peer for bench/bench_encoder: HF transformers sequence classifiers built from the same
config.json (configs/models/*.json), bf16 autocast over fp32 weights, fused AdamW.

  --mode train   forward + CrossEntropy + backward + optimizer step per batch
  --mode infer   forward under torch.inference_mode
  --attn sdpa|eager|flash_attention_2   attn_implementation (default sdpa)
  --compile      torch.compile(model)
  --varlen       row b has seqlen * (4 - b % 4) / 4 real tokens, right-padded to seqlen (the
                 same rule as bench_encoder); tokens_per_s counts real tokens.

Prints one JSON line like bench_encoder.
"""
import argparse
import json
import os
import time

import torch
import transformers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--mode", choices=["train", "infer"], default="train")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seqlen", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--varlen", action="store_true")
    a = ap.parse_args()
    tag = os.path.basename(a.config)
    impl = "hf-" + a.attn + ("+compile" if a.compile else "")
    res = {"impl": impl, "model": tag, "mode": a.mode, "batch": a.batch, "seqlen": a.seqlen, "varlen": a.varlen}
    try:
        with open(a.config) as f:
            j = json.load(f)
        j.pop("architectures", None)
        j["num_labels"] = 2
        cfg = transformers.CONFIG_MAPPING[j["model_type"]](**j)
        if j["model_type"] == "modernbert":
            cfg.reference_compile = False
        model = transformers.AutoModelForSequenceClassification.from_config(cfg, attn_implementation=a.attn).cuda()
        params = sum(p.numel() for p in model.parameters())
        lengths = [max(1, a.seqlen * (4 - b % 4) // 4) if a.varlen else a.seqlen for b in range(a.batch)]
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(5, cfg.vocab_size, (a.batch, a.seqlen), generator=g)
        mask = torch.zeros(a.batch, a.seqlen, dtype=torch.long)
        for b, n in enumerate(lengths):
            mask[b, :n] = 1
        ids = (ids * mask).cuda()
        mask = mask.cuda()
        labels = (torch.arange(a.batch) % 2).cuda()
        fwd = torch.compile(model) if a.compile else model
        if a.mode == "train":
            model.train()
            opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01, fused=True)

            def step():
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    out = fwd(input_ids=ids, attention_mask=mask, labels=labels)
                out.loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
        else:
            model.eval()

            def step():
                with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                    fwd(input_ids=ids, attention_mask=mask)
        for _ in range(a.warmup):
            step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        torch.cuda.synchronize()
        dt = (time.perf_counter() - t0) / a.steps
        res.update(tokens_per_s=round(sum(lengths) / dt, 1), ms_per_step=round(dt * 1e3, 2),
                   peak_mem_gib=round(torch.cuda.max_memory_allocated() / 2**30, 2), params=params)
    except Exception as e:  # report, do not crash the whole benchmark run
        res["error"] = f"{type(e).__name__}: {e}"[:300]
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
