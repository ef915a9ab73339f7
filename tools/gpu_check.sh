#!/bin/bash
# The GPU check, run on the GPU machine from the repo root with a CUDA build tree made on the
# dev machine (`cmake -B build-cuda -DLMF_CUDA=ON && ninja -C build-cuda`, carried along):
#   1. CUDA tests (every op against the CPU reference, model parity with HF fixtures),
#   2. compute-sanitizer on the Mamba kernels,
#   3. benchmarks, each beside its peer measured in the same run on the same GPU.
# Writes logs and bench.jsonl under $OUT; prints a summary last.
#   usage: bash tools/gpu_check.sh [tests|bench|all]   (BUILD=build-cuda by default)
set -uo pipefail
OUT=${OUT:-/tmp/lmf_out}
B=${BUILD:-build-cuda}
WHAT=${1:-all}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 LMF_TEST_SOURCE_DIR=$PWD LMF_TEST_BINARY_DIR=/tmp/lmf_test_bin
mkdir -p "$LMF_TEST_BINARY_DIR"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv | tee "$OUT/gpu.txt"
date -u +%Y-%m-%dT%H:%MZ >> "$OUT/gpu.txt"

# Peers (mamba-ssm, causal-conv1d) are built from their public sources in .peers/, which is
# never committed; start early, they build while our tests run.
PEERS_PID=""
if [ "$WHAT" != tests ] && [ -x .peers/build_peers.sh ] && [ -x "$B/bin/bench_mamba_train" ]; then
  (bash .peers/build_peers.sh > "$OUT/peers_build.log" 2>&1) &
  PEERS_PID=$!
fi

if [ "$WHAT" != bench ]; then
  timeout 300 "$B/lmf_cuda_tests" --gtest_brief=1 2>&1 | tee "$OUT/cuda_tests.log" | tail -40
  if command -v compute-sanitizer >/dev/null; then
    timeout 200 compute-sanitizer --tool memcheck --error-exitcode 9 "$B/lmf_cuda_tests" --gtest_filter='CudaMamba*:-*Long*' \
      > "$OUT/sanitizer.log" 2>&1; echo "compute-sanitizer memcheck exit: $?" | tee -a "$OUT/cuda_tests.log"
  fi
fi

if [ "$WHAT" != tests ]; then
  J="$OUT/bench.jsonl"
  : > "$J"
  # Runs a benchmark if its binary is in this build (the carried tree may hold a subset).
  run() {
    case "$2" in python3) ;; *) [ -x "$2" ] || return 0 ;; esac
    timeout "$1" "${@:2}" 2>>"$OUT/bench.err" | grep '^{' | tee -a "$J"
  }
  run 120 "$B/bin/bench_gemm"
  [ -x "$B/bin/bench_gemm" ] && run 120 python3 bench/peers/gemm_torch.py
  run 120 "$B/bin/bench_adamw"
  run 120 "$B/bin/bench_cross_entropy"
  [ -x "$B/bin/bench_cross_entropy" ] && run 120 python3 bench/peers/cross_entropy_torch.py
  run 120 "$B/bin/bench_mamba_kernels"
  run 120 "$B/bin/bench_mamba_train" --shape 130m --batch 8 --seqlen 1024
  run 120 "$B/bin/bench_mamba_train" --shape 130m --batch 4 --seqlen 4096
  run 180 "$B/bin/bench_mamba_train" --shape 1.4b --batch 4 --seqlen 2048
  if [ -n "$PEERS_PID" ] && [ -x "$B/bin/bench_mamba_train" ]; then
    wait "$PEERS_PID"
    export PYTHONPATH=$PWD/.peers/mamba:$PWD/.peers/causal-conv1d:${PYTHONPATH:-}
    run 150 python3 bench/peers/mamba_train_torch.py --impl mamba_ssm --shape 130m --batch 8 --seqlen 1024
    run 150 python3 bench/peers/mamba_train_torch.py --impl mamba_ssm --shape 130m --batch 4 --seqlen 4096
    run 200 python3 bench/peers/mamba_train_torch.py --impl mamba_ssm --shape 1.4b --batch 4 --seqlen 2048
    run 150 python3 bench/peers/mamba_train_torch.py --impl hf --shape 130m --batch 8 --seqlen 1024
  fi
  echo "== bench summary"; cat "$J"
fi
