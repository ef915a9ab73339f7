#!/usr/bin/env python3
"""Peer of bench/bench_cross_entropy.cc: the unfused LM loss in PyTorch.

logits = h @ W.T materialized in the input dtype, torch.nn.functional.cross_entropy
(ignore_index=-100, mean over tokens), forward + backward, with W a parameter whose gradient
buffer exists before timing (as lmforge's fp32 slot does). Prints one JSON line with the same keys
as bench_cross_entropy: bench, impl, device, dtype, tokens, vocab, hidden, iters, median_ms,
min_ms, tokens_per_s, model_tflops (6 * tokens * vocab * hidden / median time), peak_bytes
(torch.cuda.max_memory_allocated during the timed steps), peak_extra_bytes (that minus what was
allocated before them), loss. Same inputs: h ~ U(-1.7, 1.7), W ~ U(+-1/sqrt(hidden)),
targets[n] = n * 2654435761 mod vocab, optional weights tanh((n mod 4096) / 10).

Usage: cross_entropy_torch.py [--tokens 8192] [--vocab 262144] [--hidden 1024] [--iters 10]
       [--warmup 3] [--dtype bf16|f32] [--weighted]
"""
import argparse
import json
import math

import torch
import torch.nn.functional as F


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tokens", type=int, default=8192)
    p.add_argument("--vocab", type=int, default=262144)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    p.add_argument("--weighted", action="store_true")
    a = p.parse_args()

    dev = torch.device("cuda", 0)
    dt = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    n, v, hd = a.tokens, a.vocab, a.hidden
    g = torch.Generator(device=dev).manual_seed(0)
    h = ((torch.rand(n, hd, generator=g, device=dev) * 3.4 - 1.7)).to(dt)
    ws = 1.0 / math.sqrt(hd)
    W = ((torch.rand(v, hd, generator=g, device=dev) * 2 - 1) * ws).to(dt).requires_grad_()
    W.grad = torch.zeros_like(W)
    targets = (torch.arange(n, device=dev, dtype=torch.int64) * 2654435761) % v
    weights = torch.tanh((torch.arange(n, device=dev) % 4096).float() / 10) if a.weighted else None

    def step():
        hs = h.detach().requires_grad_()
        logits = hs @ W.t()
        if weights is None:
            loss = F.cross_entropy(logits, targets, ignore_index=-100)
        else:  # Mambaoutai: per-token loss x weight, averaged over the non-ignored tokens
            per = F.cross_entropy(logits, targets, ignore_index=-100, reduction="none")
            loss = (per.float() * weights).sum() / (targets != -100).sum()
        loss.backward()
        return loss.item()

    loss = 0.0
    for _ in range(a.warmup):
        loss = step()
    torch.cuda.synchronize()
    baseline = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(a.iters):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        loss = step()
        e1.record()
        e1.synchronize()
        times.append(e0.elapsed_time(e1))
    peak = torch.cuda.max_memory_allocated()
    times.sort()
    median = times[len(times) // 2]
    flops = 6.0 * n * v * hd
    print(json.dumps({
        "bench": "cross_entropy", "impl": "torch", "device": "cuda:0", "dtype": a.dtype,
        "tokens": n, "vocab": v, "hidden": hd, "iters": a.iters,
        "median_ms": round(median, 4), "min_ms": round(times[0], 4),
        "tokens_per_s": round(n / (median / 1e3), 1),
        "model_tflops": round(flops / (median / 1e3) / 1e12, 2),
        "peak_bytes": peak, "peak_extra_bytes": max(0, peak - baseline), "loss": round(loss, 6),
    }))


if __name__ == "__main__":
    main()
