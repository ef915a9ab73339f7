#!/usr/bin/env python3
"""Peer for bench/bench_gemm.cc: bf16 y = x W^T with torch.nn.functional.linear on cuda:0.

Same protocol as the C++ bench (warm-up calls, then `runs` calls each timed with CUDA events,
median) and the same JSON keys, one line:
  {"op": "gemm_bf16_8192", "tflops": ..., "median_ms": ..., "runs": 20, "device": "...", "peer": "torch 2.x"}
"""
import argparse
import json
import statistics

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    # fp32 accumulation, as cuBLASLt with CUBLAS_COMPUTE_32F in lmforge; no reduced-precision
    # reductions so both sides do the same arithmetic.
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = False
    n = args.size
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.rand(n, n, device="cuda", generator=gen).mul_(2).sub_(1).to(torch.bfloat16)
    w = torch.rand(n, n, device="cuda", generator=gen).mul_(2).sub_(1).to(torch.bfloat16)
    with torch.no_grad():
        for _ in range(args.warmup):
            torch.nn.functional.linear(x, w)
        times = []
        for _ in range(args.runs):
            start = torch.cuda.Event(enable_timing=True)
            stop = torch.cuda.Event(enable_timing=True)
            start.record()
            torch.nn.functional.linear(x, w)
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))
    median_ms = statistics.median(times)
    tflops = 2.0 * n * n * n / (median_ms * 1e-3) / 1e12
    print(json.dumps({
        "op": f"gemm_bf16_{n}",
        "tflops": round(tflops, 1),
        "median_ms": round(median_ms, 3),
        "runs": args.runs,
        "device": torch.cuda.get_device_name(0),
        "peer": "torch " + torch.__version__,
    }))


if __name__ == "__main__":
    main()
