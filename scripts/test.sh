#!/usr/bin/env bash
# Builds lmforge and runs the test suite. The CUDA tests (ctest label 'cuda') run only where a
# GPU is visible; everything else runs everywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh "$@"
BUILD_DIR=${LMF_BUILD_DIR:-build}
EXCLUDE=()
if ! nvidia-smi -L >/dev/null 2>&1; then EXCLUDE=(-LE cuda); fi
cd "$BUILD_DIR"
ctest --output-on-failure -j2 "${EXCLUDE[@]}"
