#!/bin/bash
# GPU machine: regenerate every reference fixture with PyTorch + transformers + tokenizers and
# pack them into $OUT/fixtures.tgz (unpack at the repo root). Usage: bash tools/device_fixtures.sh
set -uo pipefail
OUT=${OUT:-/tmp/lmf_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
{
  python3 -c "import torch, transformers, tokenizers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'tokenizers', tokenizers.__version__)"
  for s in tools/fixtures/make_*.py; do echo "== $s"; python3 "$s" || echo "FAILED: $s"; done
} 2>&1 | tee "$OUT/fixtures.log"
tar czf "$OUT/fixtures.tgz" tests/fixtures data/tokenizers 2>/dev/null
ls -la "$OUT"
