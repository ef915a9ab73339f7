#!/usr/bin/env python3
"""Peer of bench/bench_attention.cc: the same attention cases in PyTorch.

Dense cases use torch.nn.functional.scaled_dot_product_attention restricted to the flash backend
([B, H, T, D], is_causal as the case says). Variable lengths: the padded batch [4, H, 8192, D]
through flash (what a padded model pays; flash takes no mask, so the padded keys are attended
too: timing only), plus, when this torch supports it, the ragged batch as a jagged nested
tensor through SDPA (impl "torch_sdpa_nested"). Sliding window (|i - j| <= 64): FlexAttention
with a block mask when torch.compile works here, else SDPA's memory-efficient backend with a
boolean [T, T] mask. FLOPs count only visible pairs of real tokens (forward 4 D, backward 10 D
per pair per head), exactly as bench_attention does, so padding is charged as time only.
Prints one JSON line per case with bench_attention's keys.

Usage: attention_torch.py [--case NAME] [--iters 20] [--warmup 3] [--dtype bf16|f16]
       [--heads 12] [--head-dim 64]
"""
import argparse
import json

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

CASES = [
    # name, lengths, padded length, causal, window_left, window_right
    ("uniform_32x512", [512] * 32, 512, False, -1, -1),
    ("uniform_32x512_causal", [512] * 32, 512, True, -1, -1),
    ("uniform_4x8192", [8192] * 4, 8192, False, -1, -1),
    ("uniform_4x8192_causal", [8192] * 4, 8192, True, -1, -1),
    ("varlen_4x8192", [8192, 5461, 2731, 1024], 8192, False, -1, -1),
    ("window128_4x8192", [8192] * 4, 8192, False, 64, 64),
]


def visible_pairs(L, causal, wl, wr):
    n = 0
    for i in range(L):
        lo = max(0, i - wl) if wl >= 0 else 0
        hi = L - 1
        if causal:
            hi = min(hi, i)
        if wr >= 0:
            hi = min(hi, i + wr)
        n += max(0, hi - lo + 1)
    return n


def median_ms(fn, iters, warmup):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        fn()
        e1.record()
        e1.synchronize()
        times.append(e0.elapsed_time(e1))
    times.sort()
    return times[len(times) // 2]


def time_pair(attn, make_inputs, dout, iters, warmup):
    """Forward (no grad) and forward + backward medians of attn(q, k, v)."""
    q, k, v = make_inputs()

    def fwd():
        with torch.no_grad():
            attn(q, k, v)

    def fwdbwd():
        qs, ks, vs = (t.detach().requires_grad_() for t in (q, k, v))
        out = attn(qs, ks, vs)
        out.backward(dout)

    return median_ms(fwd, iters, warmup), median_ms(fwdbwd, iters, warmup)


def report(a, name, impl, lens, T, causal, wl, wr, fwd, fwdbwd, pairs):
    H, D = a.heads, a.head_dim
    print(json.dumps({
        "bench": "attention", "impl": impl, "device": "cuda:0", "dtype": a.dtype, "case": name,
        "batch": len(lens), "seqlen": T, "tokens": sum(lens), "heads": H, "head_dim": D,
        "causal": causal, "window_left": wl, "window_right": wr, "iters": a.iters,
        "fwd_ms": round(fwd, 4), "fwdbwd_ms": round(fwdbwd, 4),
        "fwd_tflops": round(4.0 * D * H * pairs / (fwd / 1e3) / 1e12, 2),
        "fwdbwd_tflops": round(14.0 * D * H * pairs / (fwdbwd / 1e3) / 1e12, 2),
    }), flush=True)


def window_attn(T, wl, wr, dev, D, dt):
    """A callable (q, k, v) -> out for |i - j| windows: FlexAttention if it compiles, else SDPA
    (memory-efficient backend) with a boolean mask. Returns (callable, impl name)."""
    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention

        def mask_mod(b, h, q_idx, kv_idx):
            return ((q_idx - kv_idx) <= wl) & ((kv_idx - q_idx) <= wr)

        block_mask = create_block_mask(mask_mod, B=None, H=None, Q_LEN=T, KV_LEN=T, device=dev)
        flex = torch.compile(flex_attention)

        def attn(q, k, v):
            return flex(q, k, v, block_mask=block_mask)

        probe = torch.randn(1, 1, T, D, device=dev, dtype=dt)
        attn(probe, probe, probe)  # compile now; fall back if this torch cannot
        return attn, "torch_flex"
    except Exception:  # noqa: BLE001 - any failure means: use the fallback
        i = torch.arange(T, device=dev)
        d = i[:, None] - i[None, :]
        mask = (d <= wl) & (-d <= wr)

        def attn(q, k, v):
            with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):
                return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

        return attn, "torch_sdpa_efficient_mask"


def run_case(a, case):
    name, lens, T, causal, wl, wr = case
    dev = torch.device("cuda", 0)
    dt = {"bf16": torch.bfloat16, "f16": torch.float16}[a.dtype]
    H, D, B = a.heads, a.head_dim, len(lens)
    g = torch.Generator(device=dev).manual_seed(0)
    pairs = sum(visible_pairs(L, causal, wl, wr) for L in lens)

    def rand(*shape):
        return (torch.rand(*shape, generator=g, device=dev) * 2 - 1).to(dt)

    padded = [rand(B, H, T, D) for _ in range(3)]
    dout = rand(B, H, T, D)
    if wl >= 0 or wr >= 0:
        attn, impl = window_attn(T, wl, wr, dev, D, dt)
    else:
        impl = "torch_sdpa_flash" + ("_padded" if any(L != T for L in lens) else "")

        def attn(q, k, v):
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

    fwd, fwdbwd = time_pair(attn, lambda: padded, dout, a.iters, a.warmup)
    report(a, name, impl, lens, T, causal, wl, wr, fwd, fwdbwd, pairs)

    if any(L != T for L in lens) and wl < 0 and wr < 0:
        # The ragged batch as jagged nested tensors [B, j, H, D] -> [B, H, j, D] (no padding).
        try:
            def nested(seed_list):
                return torch.nested.nested_tensor(seed_list, layout=torch.jagged).transpose(1, 2)

            parts = [[rand(L, H, D) for L in lens] for _ in range(4)]
            qn, kn, vn, don = (nested(p) for p in parts)

            def attn_nested(q, k, v):
                with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

            fwd, fwdbwd = time_pair(attn_nested, lambda: (qn, kn, vn), don, a.iters, a.warmup)
            report(a, name, "torch_sdpa_nested", lens, T, causal, wl, wr, fwd, fwdbwd, pairs)
        except Exception as e:  # noqa: BLE001 - report and go on with the other cases
            print(json.dumps({"bench": "attention", "impl": "torch_sdpa_nested", "case": name,
                              "error": str(e).splitlines()[0] if str(e) else type(e).__name__}), flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--case", default="")
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--dtype", choices=["bf16", "f16"], default="bf16")
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--head-dim", type=int, default=64)
    a = p.parse_args()
    cases = [c for c in CASES if not a.case or c[0] == a.case]
    if not cases:
        raise SystemExit(f"attention_torch.py: unknown case '{a.case}'")
    for c in cases:
        run_case(a, c)


if __name__ == "__main__":
    main()
