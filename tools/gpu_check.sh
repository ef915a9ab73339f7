#!/bin/bash
# The GPU check, run on the GPU machine from the repo root with a CUDA build tree made on the
# dev machine (`cmake -B build-shared -DLMF_CUDA=ON -DLMF_SHARED=ON && ninja -C build-shared`,
# the needed files copied into a carried folder, see docs/design.md "GPU machine"):
#   tests          CUDA tests (every op against the CPU reference, model parity with HF
#                  fixtures) + compute-sanitizer on the Mamba and attention kernels
#   bench          our benchmarks beside the peers that need no build (torch, HF transformers)
#   peers          builds mamba-ssm + causal-conv1d from .peers/ (never committed) and runs the
#                  Mamba training peers (a call of its own: the build takes 6-8 minutes)
#   all            tests + bench
# Writes logs and bench.jsonl under $OUT; prints a summary last.
#   usage: bash tools/gpu_check.sh [tests|bench|peers|all]   (BUILD=build-cuda by default)
set -uo pipefail
OUT=${OUT:-/tmp/lmf_out}
B=${BUILD:-build-cuda}
WHAT=${1:-all}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 LMF_TEST_SOURCE_DIR=$PWD LMF_TEST_BINARY_DIR=/tmp/lmf_test_bin
mkdir -p "$LMF_TEST_BINARY_DIR"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv | tee "$OUT/gpu.txt"
date -u +%Y-%m-%dT%H:%MZ >> "$OUT/gpu.txt"
J="$OUT/bench.jsonl"
touch "$J"
# Runs a benchmark if its binary is in this build (the carried tree may hold a subset).
run() {
  case "$2" in python3) ;; *) [ -x "$2" ] || return 0 ;; esac
  timeout "$1" "${@:2}" 2>>"$OUT/bench.err" | grep '^{' | tee -a "$J"
}

if [ "$WHAT" = tests ] || [ "$WHAT" = all ]; then
  timeout 300 "$B/lmf_cuda_tests" --gtest_brief=1 ${GTEST_FILTER:+--gtest_filter=$GTEST_FILTER} 2>&1 \
    | tee "$OUT/cuda_tests.log" | tail -60
  if command -v compute-sanitizer >/dev/null && [ -z "${GTEST_FILTER:-}" ]; then
    timeout 240 compute-sanitizer --tool memcheck --error-exitcode 9 "$B/lmf_cuda_tests" \
      --gtest_filter='CudaMamba*:*Attention*:-*Long*:*Large*' > "$OUT/sanitizer.log" 2>&1
    echo "compute-sanitizer memcheck exit: $?" | tee -a "$OUT/cuda_tests.log"
  fi
fi

if [ "$WHAT" = bench ] || [ "$WHAT" = all ]; then
  run 120 "$B/bin/bench_gemm"
  [ -x "$B/bin/bench_gemm" ] && run 120 python3 bench/peers/gemm_torch.py
  run 120 "$B/bin/bench_adamw"
  run 120 "$B/bin/bench_cross_entropy"
  [ -x "$B/bin/bench_cross_entropy" ] && run 120 python3 bench/peers/cross_entropy_torch.py
  run 120 "$B/bin/bench_mamba_kernels"
  run 120 "$B/bin/bench_attention"
  [ -x "$B/bin/bench_attention" ] && run 120 python3 bench/peers/attention_torch.py
  run 120 "$B/bin/bench_mamba_train" --shape 130m --batch 8 --seqlen 1024
  run 120 "$B/bin/bench_mamba_train" --shape 130m --batch 4 --seqlen 4096
  run 180 "$B/bin/bench_mamba_train" --shape 1.4b --batch 4 --seqlen 2048
  if [ -x "$B/bin/bench_encoder" ]; then
    # Issue 5 shapes: fine-tuning steps and inference, ours then HF (eager+SDPA, compiled).
    enc() {  # config batch seqlen mode [--varlen]
      run 150 "$B/bin/bench_encoder" --config "configs/models/$1" --batch "$2" --seqlen "$3" --mode "$4" ${5:-}
      run 200 python3 bench/peers/encoder_torch.py --config "configs/models/$1" --batch "$2" --seqlen "$3" --mode "$4" ${5:-}
    }
    enc mbert-base.json 32 128 train
    run 300 python3 bench/peers/encoder_torch.py --config configs/models/mbert-base.json --batch 32 --seqlen 128 --mode train --compile
    enc mbert-base.json 16 512 train
    enc xlmr-base.json 32 128 train
    enc mmbert-base.json 32 128 train
    enc mmbert-base.json 4 8192 train --varlen
    run 200 python3 bench/peers/encoder_torch.py --config configs/models/mmbert-base.json --batch 4 --seqlen 8192 --mode train
    enc xlmr-base.json 32 512 infer
    enc mmbert-base.json 32 512 infer
    enc mmbert-base.json 4 8192 infer
    enc mmbert-base.json 4 8192 infer --varlen
  fi
  echo "== bench summary"; cat "$J"
fi

if [ "$WHAT" = peers ]; then
  if [ -x .peers/build_peers.sh ]; then
    timeout 480 bash .peers/build_peers.sh > "$OUT/peers_build.log" 2>&1
    tail -3 .peers/build_*.log >> "$OUT/peers_build.log" 2>/dev/null
    export PYTHONPATH=$PWD/.peers/mamba:$PWD/.peers/causal-conv1d:${PYTHONPATH:-}
    run 100 python3 bench/peers/mamba_train_torch.py --impl mamba_ssm --shape 130m --batch 8 --seqlen 1024
    run 100 python3 bench/peers/mamba_train_torch.py --impl mamba_ssm --shape 130m --batch 4 --seqlen 4096
    run 120 python3 bench/peers/mamba_train_torch.py --impl mamba_ssm --shape 1.4b --batch 4 --seqlen 2048
    run 100 python3 bench/peers/mamba_train_torch.py --impl hf --shape 130m --batch 8 --seqlen 1024
  fi
  echo "== bench summary"; cat "$J"
fi
